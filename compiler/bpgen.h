/* bpgen.h — the compiler's one header, and its table of contents.
 *
 * bpgen is a pipeline of passes, each in its own file, run in this order by
 * main.c:
 *
 *   grammar/lexer.l, grammar/parser.y   text        -> AST (Program)
 *   check.c                             AST         -> Model (names, shapes)
 *   graph.c                             Model       -> Graph (hash-consed)
 *   diff.c                              Graph       -> Graph + gradient nodes
 *   simplify.c                          Graph       -> Graph, simplified
 *   print.c                             Graph       -> --derivatives text
 *   lower.c                             Graph       -> Plan (schedules, buffers)
 *   lower_steps.c                       Plan        -> Plan + each function's steps
 *   plan.c                              Plan        -> checked, --dump=lower
 *   report.c                            Plan        -> --report (costs)
 *   emit/ (entry point emit/emit.c)     Plan        -> C source and header
 *
 * Each section below is owned by the file it is named after. Everything a
 * compilation allocates comes from one Arena and is freed at once.
 */
#ifndef BPGEN_H
#define BPGEN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "ops.h"
/* The version and ABI numbers have one home, the runtime's header: the
 * compiler is released with the runtime it generates code for. */
#include "../runtime/bp.h"

#define BPGEN_VERSION BP_VERSION_STRING

/* ------------------------------------------------------------------------ */
/* arena.c — bump allocation; everything lives until arena_free().          */

typedef struct Arena Arena;

Arena *arena_new(void);
void  *arena_alloc(Arena *a, size_t size);          /* zeroed; never NULL */
char  *arena_strdup(Arena *a, const char *s);
char  *arena_strndup(Arena *a, const char *s, size_t n);
char  *arena_printf(Arena *a, const char *fmt, ...);
void   arena_free(Arena *a);
/* What every allocation failure in the compiler ends in: prints "bpgen:
 * out of memory" and exits with status 2 (main.c's exit handler then
 * removes any temporary output file). */
void   arena_out_of_memory(void);

/* ------------------------------------------------------------------------ */
/* diag.c — user-facing messages.                                           */

/* A place in the source. Lines and columns count from 1; columns count
 * characters (UTF-8 code points), not bytes. line 0 means "no place". */
typedef struct {
    int line, col;
} Loc;

typedef struct Diag Diag;

/* The diagnostics sink of one compilation: it knows the file name and the
 * text so that each message can quote its line with a caret under it.
 * Messages are collected and printed sorted by place by diag_flush(). */
Diag *diag_new(Arena *a, const char *path, const char *text, size_t len);
void  diag_error(Diag *d, Loc at, const char *fmt, ...);
void  diag_note(Diag *d, Loc at, const char *fmt, ...);
int   diag_count(const Diag *d);                    /* errors so far */
void  diag_flush(Diag *d, FILE *out);
/* Colours diag_flush's output with ANSI escapes, as gcc and clang do: bold
 * location, bold red `error:`, bold cyan `note:`, bold green caret. */
void  diag_set_color(Diag *d, bool on);

/* ------------------------------------------------------------------------ */
/* grammar/parser.y — the AST.                                              */

enum { MAX_RANK = 4 };

typedef struct {
    int rank;     /* 0 to 4 */
    int dim[4];   /* dim[0] outermost (rows, channels); unused entries are 1 */
} Shape;

typedef enum { EX_NUM, EX_NAME, EX_NEG, EX_BINARY, EX_CALL } ExprKind;
typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_POW, BIN_MATMUL } BinOp;

/* The built-in functions of the .net language, in the order of ops.c's
 * function table (which holds each one's name, arguments, shape rule and
 * how it is built from graph operations). Expr.func holds one. */
typedef enum {
    FN_EXP, FN_LOG, FN_SQRT, FN_ABS, FN_SIN, FN_COS, FN_TANH, FN_SIGMOID,
    FN_RELU, FN_SOFTPLUS, FN_STEP, FN_SIGN, FN_MAX, FN_MIN, FN_TRANSPOSE,
    FN_OUTER, FN_SUM, FN_MEAN, FN_DOT, FN_LOGSUMEXP, FN_SOFTMAX,
    FN_LOG_SOFTMAX, FN_MSE, FN_CROSS_ENTROPY, FN_SOFTMAX_CROSS_ENTROPY,
    FN_BCE, FN_FLATTEN, FN_CONV2D, FN_MAXPOOL2D, FN_AVGPOOL2D, FN_LAYERNORM,
    FN__COUNT
} Func;

typedef struct Symbol Symbol;
typedef struct Expr Expr;
struct Expr {
    ExprKind kind;
    Loc loc;          /* first character of the expression / the operator */
    double num;       /* EX_NUM */
    const char *name; /* EX_NAME; EX_CALL: the function's name */
    BinOp op;         /* EX_BINARY */
    Expr *lhs, *rhs;  /* EX_BINARY; EX_NEG uses lhs */
    Expr **args;      /* EX_CALL: positional arguments, then keyword ones */
    int nargs;
    const char *keyword; /* an argument written `keyword=expr`; else NULL */
    Loc keyword_loc;
    int depth;        /* levels of the tree from here down (1 for a leaf) */
    /* filled in by check.c */
    Symbol *sym;      /* EX_NAME */
    Func func;        /* EX_CALL: which built-in (check.c's table) */
    Shape shape;
};

typedef enum {
    ST_MODEL, ST_INPUT, ST_PARAM, ST_CONST, ST_ASSIGN, ST_LOSS, ST_OUTPUT,
    ST_WRT
} StmtKind;

typedef enum {
    INIT_DEFAULT, INIT_ZEROS, INIT_ONES, INIT_VALUE, INIT_NORMAL,
    INIT_UNIFORM, INIT_XAVIER, INIT_HE
} InitKind;

typedef struct {
    InitKind kind;
    double a, b;      /* INIT_VALUE: a; NORMAL: mean a, std b; UNIFORM: lo a, hi b */
    Loc loc;
} Init;

typedef struct {
    const char *name;
    Loc loc;
} NameRef;

typedef struct Stmt Stmt;
struct Stmt {
    StmtKind kind;
    Loc loc;             /* the statement's first token */
    const char *name;    /* MODEL, INPUT, PARAM, CONST, ASSIGN, LOSS */
    Loc name_loc;
    int rank;            /* INPUT, PARAM: number of dims written (check.c
                            rejects more than 4; only 4 are kept) */
    double dims[4];      /* as written; check.c verifies they are positive integers */
    Loc dim_loc[4];
    Loc excess_dim_loc;  /* the fifth dimension, where rank > 4 */
    bool frozen;         /* PARAM: `param frozen NAME ...` */
    Init init;           /* PARAM */
    double value;        /* CONST */
    Expr *expr;          /* ASSIGN, LOSS */
    NameRef *names;      /* OUTPUT, WRT */
    int nnames;
    bool broken;         /* a syntax error cut it short: only kind, loc and
                            name are known (check.c defines the name but
                            checks nothing else about it) */
    Stmt *next;
};

typedef struct {
    const char *path;
    Stmt *first;         /* statements in source order */
} Program;

/* Parses `text` (len bytes, the whole file). Always returns a Program
 * holding every statement that could be read; syntax errors go to `diag`.
 * Limits (name length, nesting depth) are reported, not crashed on. */
Program *parse_program(Arena *a, Diag *diag, const char *path,
                       const char *text, size_t len);

/* ------------------------------------------------------------------------ */
/* check.c — names and shapes; AST -> Model.                                */

typedef enum { SYM_INPUT, SYM_PARAM, SYM_CONST, SYM_VALUE } SymKind;

struct Symbol {
    SymKind kind;
    const char *name;
    Loc loc;
    Shape shape;
    int index;      /* INPUT: among inputs; PARAM: among params; else -1 */
    bool wrt;       /* INPUT named in `wrt` */
    bool is_loss;   /* VALUE defined by `loss` */
    Stmt *stmt;     /* the defining statement (init, frozen, value, expr) */
};

typedef struct {
    const char *name;        /* the C prefix: `model NAME` or from the path */
    const char *path;
    Symbol **inputs;  int ninputs;
    Symbol **params;  int nparams;
    Symbol **outputs; int noutputs;
    Symbol **values;  int nvalues;   /* every `NAME = EXPR` and the loss, in order */
    Symbol *loss;
    long *param_offsets;  /* nparams + 1: where each parameter starts in
                             theta, then theta's size (set by a clean check) */
} Model;

/* Resolves names, checks shapes and every rule of the language. Returns
 * NULL when there were errors (all of them reported to `diag`). */
Model *check_program(Arena *a, Diag *diag, Program *prog);

/* The C identifier a path's file name gives (`nets/my-model.net` -> `my_model`). */
const char *check_default_model_name(Arena *a, const char *path);

/* The .net spelling of a built-in function ("softmax"). */
const char *check_func_name(Func f);

/* ------------------------------------------------------------------------ */
/* graph.c — the expression graph.                                          */

typedef enum {
#define X(op) OP_##op,
    BP_OPS(X)
#undef X
    OP__COUNT
} Op;

typedef enum {
    OPK_LEAF,         /* no operands */
    OPK_ELEMENTWISE,  /* one loop over the elements; scalar operands broadcast */
    OPK_LINALG,       /* matmul, transpose, outer (rank 1 and 2) */
    OPK_REDUCE,       /* one sample to a scalar */
    OPK_VECTOR,       /* every element to every element (softmax) */
    OPK_KERNEL,       /* a call of a runtime kernel (convolution, pooling) */
    OPK_BATCH         /* the batch to one shared value */
} OpKind;

/* Flags of an operation (OpInfo.flags). */
enum {
    OPF_COMMUTATIVE = 1 << 0,  /* operands sorted: constants first, then by id */
    OPF_FOLDS = 1 << 1,        /* constant operands fold (OpInfo.fold) */
    OPF_IN_MEMORY = 1 << 2     /* its step reads every operand from memory
                                  (a gemm or a kernel): constants get buffers */
};

enum { MAX_OPERANDS = 4, MAX_ATTRS = 4 };

typedef struct Node Node;
typedef struct Graph Graph;
typedef struct Diff Diff;

/* Why operands do not fit an operation: `arg` is the operand (or, for a
 * .net call, the argument) at fault, -1 for the call as a whole. */
typedef struct {
    int arg;
    char msg[200];
} ShapeError;

/* The shape of an operation's result from its operands' shapes and its
 * attributes, or rank -1 with *err filled in. */
typedef Shape (*ShapeRule)(const Shape *in, int nin, const int *attr, ShapeError *err);

/* One row of ops.c's table: everything about one graph operation. */
typedef struct {
    const char *name;         /* in dumps and --derivatives (`exp`, `·`) */
    int min_in, max_in;       /* operand count */
    OpKind kind;
    unsigned flags;
    const char *attr_names[MAX_ATTRS];  /* integer attributes, e.g. stride */
    ShapeRule shape;          /* NULL: the shape is given (leaves) */
    double (*fold)(double x, double y); /* OPF_FOLDS: the value on constants */
    /* The vector-Jacobian product: hands each operand of y its share of
     * dy through diff_give(). The formula is in a comment beside it. */
    void (*grad)(Diff *d, Graph *g, Node *y, Node *dy);
    const char *c_fn;         /* elementwise: the C function in double
                                 ("bp_exp" from bp.h's fast math, "sin"
                                 from libm; float adds an f), or NULL
                                 where emit writes an expression;
                                 kernels: the runtime function's stem */
    /* The floating-point operations of computing y for one sample (for
     * batch_mean: what each sample adds), from its operands' shapes; for
     * --report (report.c). The rule is in a comment beside it. */
    double (*flops)(const Node *y);
    const char *c_array_fn;   /* elementwise: the runtime's array form
                                 ("bp_vtanh", float adds an f), or NULL */
} OpInfo;

extern const OpInfo op_info[OP__COUNT];

struct Node {
    Op op;
    Shape shape;          /* per sample */
    bool batched;         /* varies from sample to sample (depends on an input) */
    int nin;
    Node *in[MAX_OPERANDS];
    int attr[MAX_ATTRS];  /* integer attributes (stride, pad, window, ...) */
    double value;         /* OP_CONST: every element has this value */
    int index;            /* OP_INPUT / OP_PARAM: declaration index */
    const char *name;     /* a name from the .net file, when it has one */
    const char *label;    /* for comments: "h", "dL/dh" (diff.c names adjoints) */
    int line;             /* the .net line it was made for (0: none): a value's
                             statement, a parameter's or input's declaration;
                             for a derivative, the statement it differentiates */
    int id;               /* creation order, so a topological order */
    Node *hash_next;      /* hash-consing chain */
    void *aux;            /* scratch for the pass that runs now */
};

/* ------------------------------------------------------------------------ */
/* ops.c — the .net functions, each built from graph operations.            */

typedef struct {
    const char *name;         /* in .net */
    int min_args, max_args;   /* positional arguments */
    unsigned int_args;        /* bit k: positional argument k is a positive
                                 integer literal (an attribute), not a tensor */
    const char *keywords[2];  /* keyword arguments, each a non-negative
                                 integer literal (NULL-terminated list) */
    const char *usage;        /* e.g. "conv2d(x, K[, b], stride=s, pad=p)" */
    /* The result's shape from the tensor arguments' shapes; attributes are
     * the integer arguments then the keywords, in table order (absent
     * keywords have their defaults). */
    ShapeRule shape;
    /* The graph of the call, from tensor arguments and attributes. */
    Node *(*build)(Graph *g, Node *const *args, int nargs, const int *attr);
    int defaults[2];          /* of the keywords */
} FuncInfo;

extern const FuncInfo func_info[FN__COUNT];

/* Index in func_info of a .net function name, or -1. */
int func_find(const char *name);

/* "scalar", "[16]", "[3, 4]" */
const char *shape_text(Arena *a, Shape s);

/* Shapes of rank r with the given dims (the others 1). */
Shape shape_of(int rank, const int *dims);

struct Graph {
    Arena *arena;
    Model *model;
    bool batched_inputs;  /* inputs vary per sample (false for --derivatives) */
    Node **table;         /* hash-consing buckets */
    int table_cap;
    Node **nodes;         /* every node, in creation order */
    int nnodes, nodes_cap;
    Node **input_nodes;   /* [model->ninputs] */
    Node **param_nodes;   /* [model->nparams] */
    Node **value_nodes;   /* [model->nvalues] */
    Node **output_nodes;  /* [model->noutputs] */
    Node *loss;
    int line;             /* the .net line node_new stamps on new nodes: the
                             statement being built, differentiated or simplified */
    /* filled by diff.c: per-sample gradient of the loss (batched nodes) or
     * gradient of the batch-mean loss (unbatched nodes). NULL: no gradient
     * wanted (frozen param, input not in wrt); a CONST 0: gradient is zero. */
    Node **grad_params;   /* [model->nparams] */
    Node **grad_inputs;   /* [model->ninputs] */
};

/* Builds the graph of the model's values. With batched_inputs, every node
 * depending on an input is marked batched. */
Graph *graph_build(Arena *a, Model *m, bool batched_inputs);

/* The single door into the graph: folds constants, applies local
 * identities, orders commutative operands and returns the existing node
 * when an equal one exists. Shapes must already be valid (check.c saw to
 * that for user expressions; diff.c builds only valid ones). */
Node *node_new(Graph *g, Op op, Node *a, Node *b);
/* The same for any number of operands and integer attributes: attr holds
 * MAX_ATTRS values (NULL: all 0; a shorter array is read past its end);
 * attributes are part of what makes two nodes equal. */
Node *node_new_n(Graph *g, Op op, int nin, Node *const *in, const int *attr);
/* base^q like node_new, but a power base stays whole: node_new turns
 * (x^p)^q into x^(pq) for an integer q, which computes x^p again where it
 * is computed anyway (a derivative reading a stored output: 1 / P for
 * P = sqrt(S)). simplify.c opens such a power where x^p has no other
 * user. */
Node *node_pow_of(Graph *g, Node *base, Node *q);
/* x with another shape of the same size (flatten, and its adjoint). */
Node *node_reshape(Graph *g, Node *x, Shape shape);
Node *node_const(Graph *g, double value, Shape shape);
Node *node_scalar(Graph *g, double value);
Node *node_broadcast(Graph *g, Node *scalar, Shape shape);

bool shape_eq(Shape a, Shape b);
long shape_size(Shape s);
extern const Shape SHAPE_SCALAR;

bool node_is_const(const Node *n, double value);    /* a CONST of this value */

/* Verifies the graph's invariants (shapes, arity, ids topological). Returns
 * false and describes the first violation on stderr: an internal error. */
bool graph_check(const Graph *g);
void graph_dump(const Graph *g, FILE *out);

/* ------------------------------------------------------------------------ */
/* diff.c — reverse-mode differentiation on the graph.                      */

/* Fills g->grad_params and g->grad_inputs. Only nodes on a path from a
 * wanted leaf to the loss get adjoints. */
void diff_graph(Graph *g);

/* For the derivative rules in ops.c: adds `contribution` to the adjoint
 * of operand x (reduced to x's shape and batching); whether x needs one;
 * whether rules may use the operation's output in place of its input. */
void diff_give(Diff *d, Node *x, Node *contribution);
bool diff_needs(const Diff *d, const Node *x);
bool diff_from_outputs(const Diff *d);

/* ------------------------------------------------------------------------ */
/* simplify.c — global simplification.                                      */

/* Rewrites every root (loss, outputs, gradients) through node_new with
 * sums and products flattened, like terms and constant factors collected. */
void simp_graph(Graph *g);

/* ------------------------------------------------------------------------ */
/* print.c — expressions in .net syntax.                                    */

/* Writes `n` as a .net expression. With inline_values, named intermediates
 * are written out in full; otherwise they appear by name. */
void print_expr(FILE *out, const Node *n, bool inline_values);

/* The same with intermediates by name, cut after about `limit` characters
 * (then ending in " ..."): for comments, at a cost bounded by the limit. */
void print_expr_brief(FILE *out, const Node *n, size_t limit);

/* n's text (malloc'd), or NULL when it would be longer than limit
 * characters; the work stops at the limit. */
char *print_expr_within(const Node *n, bool inline_values, size_t limit);

/* The shortest decimal that reads back as the same double, without an
 * exponent where a person would not write one (25000, not 2.5e+04). */
void print_number(char out[64], double v);

/* The --derivatives listing: `dL/dX = EXPR`, one line per gradient. */
void print_derivatives(FILE *out, const Graph *g);

/* ------------------------------------------------------------------------ */
/* lower.c / emit/ — from graph to C.                                       */

typedef enum { PREC_FLOAT, PREC_DOUBLE } Precision;

/* How lowering places buffers in the workspace: by size (the tightest
 * packing, O(n²)) up to a few thousand buffers and in time order (O(n log
 * n)) beyond, unless a test asks for one of them. */
typedef enum { PLACE_AUTO, PLACE_BY_SIZE, PLACE_IN_TIME_ORDER } Placement;

typedef struct {
    Precision precision;
    bool with_main;             /* --main */
    const char *header_name;    /* what the .c file #includes, e.g. "model.h" */
    Placement placement;        /* PLACE_AUTO but in tests */
    /* --line-directives: `#line N "model.net"` before every line of a step
     * made for a .net statement, and `#line` back to c_path after it */
    bool line_directives;
    const char *c_path;         /* the .c file as -o names it */
    bool selftest;              /* --selftest: M_selftest and its scratch size */
    bool check_finite;          /* --check-finite: every value written is checked */
    bool step;                  /* --step: M_step, the fused training step */
} EmitOptions;

/* The functions the generated file defines from steps. PF_OUTPUTS is
 * predict's outputs computed after forward, from what forward keeps (as
 * backward reads it), so that evaluation runs the layers once. */
typedef enum { PF_FORWARD, PF_BACKWARD, PF_PREDICT, PF_OUTPUTS, PF__COUNT } PlanFn;

/* Whether f runs after forward, on the same workspace, and reads the values
 * forward keeps for it (NodeInfo.kept) instead of computing them. */
static inline bool after_forward(PlanFn f)
{
    return f == PF_BACKWARD || f == PF_OUTPUTS;
}

/* How a node is computed inside one function. */
typedef enum {
    NODE_ABSENT,   /* not computed here: a leaf, a literal constant, not
                      needed, or (in backward) already kept by forward */
    NODE_BUFFER,   /* its own step writes it to a buffer */
    NODE_INLINE,   /* an elementwise expression evaluated inside the loop of
                      its only user, never stored */
    NODE_VIRTUAL   /* folded into its users' steps: a transpose read as a
                      gemm flag; an outer, matmul or convolution kernel or
                      bias gradient under batch_mean; a
                      matmul under a bias add (W·x + b: the add's step
                      pre-fills its rows with b, then gemm, beta = 1); a
                      batch mean under a constant factor (c · mean: the
                      product's step is the mean's, scaled by c) */
} NodeMode;

/* Where a buffer lives. */
typedef enum {
    POOL_NONE,
    POOL_BATCHED,  /* workspace, n rows: offset counts reals per sample */
    POOL_SHARED,   /* workspace after the batched part: offset in reals */
    POOL_GRAD,     /* written straight into `grad`: offset in theta */
    POOL_LOCAL,    /* a scalar local of its merged loop (Step.joined), never
                      stored: every reader is a statement of that loop */
    POOL_OUTPUT,   /* predict: written straight into outputs[offset] */
    POOL_GRAD_INPUT /* backward: written straight into grad_inputs[offset],
                      divided by n, when the caller asks for it */
} Pool;

typedef struct {
    Pool pool;
    long offset;
} Buffer;

typedef struct {
    NodeMode mode[PF__COUNT];
    Buffer buf[PF__COUNT];    /* for NODE_BUFFER */
    bool root[PF__COUNT];     /* read by the function's epilogue */
    int uses[PF__COUNT];      /* operand slots (and roots) reading it */
    Node *user[PF__COUNT];    /* the user, when there is exactly one */
    bool kept;                /* forward stores it for backward or outputs */
    bool joined[PF__COUNT];   /* its loop step and the next step are one loop
                                 (in forward, the last may join the loss) */
    long scratch_size;        /* reals of scratch its kernel step needs */
    Buffer scratch[PF__COUNT];/* ... and where (POOL_SHARED) */
} NodeInfo;

/* ---- the plan's steps: every decision lowering made, for emission to
 * print. Each generated function is an ordered list of steps; the node a
 * step computes (its buffer, its equation for the comment) is Step.node. */

typedef enum {
    STEP_GEMM,    /* one gemm call, or one per sample */
    STEP_KERNEL,  /* a runtime kernel: convolution, pooling and gradients */
    STEP_LOOP,    /* an elementwise loop over one fused expression */
    STEP_REDUCE,  /* sums over an axis or over the batch */
    STEP_COPY,    /* a transposing copy; a function's results to the caller */
    STEP_UPDATE   /* M_step only: the optimiser's update of one parameter */
} StepKind;

/* A row or column count: `count`, times the batch size n when times_n. */
typedef struct {
    long count;
    bool times_n;
} Extent;

/* A scalar argument of gemm or a kernel. FIRST_ZERO is 0 in the first
 * sample's call and 1 after it, so that per-sample calls accumulate. */
typedef enum { SCALE_ZERO, SCALE_ONE, SCALE_INV_N, SCALE_FIRST_ZERO } Scale;

/* An operand in memory: a node's buffer (an input, a parameter, a buffer
 * of an earlier step), or none (node NULL). at_sample: inside the step's
 * per-sample loop it starts at sample s (s · its size reals in). */
typedef struct {
    Node *node;
    bool at_sample;
} Operand;

/* C = alpha · op(A) · op(B) + beta · C, op the transpose where ta (tb);
 * m × k times k × n, leading dimensions lda, ldb, ldc. */
typedef struct {
    bool sample_loop;     /* one call per sample, s = 0 .. n-1 */
    bool ta, tb;
    Extent m, n, k;
    Scale alpha, beta;
    Operand a, b, c;
    long lda, ldb, ldc;
    Node *prefill;        /* a bias copied into each of c's n rows first */
    int loops_below;      /* a batch below this: loops, not a bp_gemm call
                             (0 never; LOOPS_ALWAYS: no batch dimension) */
    int partial_sums;     /* as loops: each dot product in this many
                             partial sums, added pairwise (0 or 1: one) */
} GemmStep;

enum { LOOPS_ALWAYS = -1 };

/* A convolution's shape, as the runtime's bp_conv2d_shape. */
typedef struct {
    int c, h, w, o, kh, kw, stride, pad, oh, ow;
} ConvShape;

typedef struct {
    Op op;                /* which kernel (op_info's c_fn is its stem) */
    bool sample_loop;     /* one call per sample */
    Extent count;         /* samples per call: n or 1 */
    Operand arg[3];       /* in the kernel's order; node NULL: none */
    Operand out;
    Scale alpha, beta;    /* the gradient kernels' accumulation */
    bool conv;            /* takes `shape` */
    ConvShape shape;
    int pool_c, pool_h, pool_w, window;  /* the pooling kernels' input */
    const Buffer *scratch;               /* NULL: none */
} KernelStep;

typedef enum {
    LOOP_SCALAR,  /* an unbatched scalar: no loop */
    LOOP_FLAT,    /* i over every value: each operand has the loop's shape
                     and batching, or is a shared scalar */
    LOOP_NESTED,  /* s over the samples, j over one sample's elements */
    LOOP_OUTER,   /* per sample, k over a's and j over b's elements: a_k b_j */
    LOOP_ARRAY    /* y = f(x) over a whole stored buffer, one call of the
                     runtime's array form (OpInfo.c_array_fn): vectorised
                     in any build, where a loop calling f inline is so only
                     at -O3 or with -march */
} LoopForm;

typedef struct {
    LoopForm form;
    long size;            /* elements per sample */
} LoopStep;

typedef enum {
    REDUCE_SUM,           /* the elements of one sample (a fused expression) */
    REDUCE_DOT,           /* a · b of two vectors */
    REDUCE_LOGSUMEXP,     /* max + log Σ exp(x - max) */
    REDUCE_SOFTMAX,       /* exp(x - max) / Σ exp(x - max) */
    REDUCE_LOG_SOFTMAX,   /* x - max - log Σ exp(x - max) */
    REDUCE_BATCH_MEAN,    /* the mean over the samples of a fused expression */
    REDUCE_LOSS           /* forward's result: the batch mean of the loss, or
                             the loss itself when shared */
} ReduceForm;

typedef struct {
    ReduceForm form;
    Node *x;              /* what is reduced */
    long size;            /* elements of x reduced per sample (result's, for
                             BATCH_MEAN) */
} ReduceStep;

typedef enum {
    COPY_TRANSPOSE,   /* node = transpose(src) into node's buffer */
    COPY_ZERO,        /* dst = 0 (src a zero constant, or none: frozen) */
    COPY_FILL,        /* dst = a constant */
    COPY_MEMCPY,      /* the same layout */
    COPY_ROWS,        /* one shared copy to each of the n rows */
    COPY_EACH,        /* value by value, the same layout (with per_n) */
    COPY_BROADCAST,   /* a shared value or scalar to each row, element-wise */
    COPY_SHARED       /* into an unbatched destination, element-wise */
} CopyForm;

typedef enum {
    DEST_NODE,        /* node's buffer (COPY_TRANSPOSE) */
    DEST_GRAD,        /* grad + offset: the gradient of parameter `index` */
    DEST_GRAD_INPUT,  /* grad_inputs[index], when the caller asks for it */
    DEST_OUTPUT       /* outputs[index] */
} CopyDest;

typedef struct {
    CopyForm form;
    CopyDest dest;
    int index;
    long offset;          /* DEST_GRAD: in reals */
    long size;            /* reals per destination row */
    bool batched_dst;     /* n rows */
    bool per_n;           /* divided by n */
    Node *src;            /* NULL: a frozen parameter's zero gradient */
} CopyStep;

/* M_step's update of parameters index .. index + count - 1 (consecutive
 * in theta; `size` reals in all) from their gradients, which lie at
 * `offset` in M_step's gradient pool, in the same order. With
 * `gemm`, the gradient's own step (a gemm that nothing after it reads)
 * runs here instead, `tile_rows` rows of the gradient at a time into a
 * block at `offset`, each block's update right after it: the pool holds
 * one block, not the whole gradient. */
typedef struct Step Step;
typedef struct {
    int index, count;
    long offset;
    long size;
    const Step *gemm;   /* count is 1 */
    long tile_rows;
} UpdateStep;

struct Step {
    StepKind kind;
    Node *node;           /* the value computed (NULL for copies out and
                             updates but a tiled one's: its gradient) */
    bool check_finite;    /* --check-finite: every value it wrote is then
                             checked (emit/debug.c) */
    Node *factor;         /* y = c · batch_mean(...): the constant c, folded
                             into the mean's step (alpha c/n of a gemm or
                             kernel; the batch mean's last division), or NULL */
    bool joined;          /* a loop whose statement shares one loop with the
                             next step's: a loop of the same form, extent and
                             batching, or forward's loss, accumulated in it */
    GemmStep gemm;
    KernelStep kernel;
    LoopStep loop;
    ReduceStep reduce;
    CopyStep copy;
    UpdateStep update;
};

/* A run of consecutive steps of one function. A function of many steps is
 * split into groups, each printed as a static C function of its own that
 * the public function calls in order, so that the C compiler's time grows
 * with the model's depth linearly (its optimisers are superlinear in the
 * size of one function). A group `in_caller` is printed in the public
 * function's own body instead: the whole of a small function (one group,
 * no call), and forward's loss, which the public function returns. */
typedef struct {
    int first, count;     /* steps[first .. first + count) */
    Node *title;          /* the first value with a name it computes (the
                             static function is named after it), or NULL */
    bool in_caller;
} StepGroup;

/* Most steps a group holds; a function of at most this many steps is one
 * group. */
enum { GROUP_STEPS = 32 };

typedef struct Plan {
    Arena *arena;
    Graph *graph;
    EmitOptions opt;
    NodeInfo *info;               /* by node id */
    Node **order[PF__COUNT];      /* NODE_BUFFER nodes, in execution order */
    int norder[PF__COUNT];
    Step *steps[PF__COUNT];       /* what each function does, in order */
    int nsteps[PF__COUNT];
    StepGroup *groups[PF__COUNT]; /* the steps, cut into groups, in order */
    int ngroups[PF__COUNT];
    long ws_batched;              /* workspace: reals per sample ... */
    long ws_shared;               /* ... plus reals shared by the batch */
    /* --step: M_step, the fused training step (lower.c, lower_fused):
     * forward, then backward's steps with each gradient written to a
     * gradient pool after the workspace instead of `grad` (a DEST_GRAD
     * copy's offset, and fused_grad of a POOL_GRAD node, are places in
     * that pool), input gradients left out, and a STEP_UPDATE right after
     * the last step that writes a parameter's gradient or reads the
     * parameter. Gradients whose lifetimes do not overlap share the pool.
     * A small model's (fused_whole) instead lie as their parameters do in
     * theta, and are applied after backward's last step, a run of
     * consecutive parameters per update. */
    Step *fused_steps;
    int nfused_steps;
    StepGroup *fused_groups;
    int nfused_groups;
    long ws_fused;                /* the gradient pool's reals */
    bool fused_whole;             /* the whole gradient, updated at the end */
    long *fused_grad;             /* by node id: its place in the pool (a
                                     POOL_GRAD buffer of backward), or -1 */
    /* M_forward_backward (lower.c, lower_forward_backward): forward's
     * steps, then backward's, with forward's last merged loop (from step
     * fb_first, summing the loss) also running backward's first fb_joined
     * steps, elementwise loops over the same values and batch means of
     * one value per sample (summed in the loop, divided after it).
     * fb_joined 0: no loop is shared, and the function calls M_forward,
     * then M_backward. fb_local (by node id, or NULL): a value forward or
     * backward stores that only that loop reads, a local of it there. */
    int fb_first, fb_joined;
    bool *fb_local;
    /* Functions also printed for one sample (lower.c, lower_one_sample):
     * their body again as a static function with n the constant 1, which
     * the public function calls when n is 1; for forward, backward,
     * predict and outputs_after_forward by PlanFn, and M_step. */
    bool one_sample[PF__COUNT];
    bool one_sample_step;
} Plan;

/* Whether n is a local of a merged loop of function f, never stored; with
 * fb_local (Plan.fb_local, while M_forward_backward's loop is concerned),
 * also a value that loop keeps as a local. */
static inline bool loop_local(const Plan *p, PlanFn f, const Node *n, const bool *fb_local)
{
    if (n->op == OP_INPUT || n->op == OP_PARAM)
        return false;
    if (fb_local && fb_local[n->id])
        return true;
    return p->info[n->id].mode[f] == NODE_BUFFER && p->info[n->id].buf[f].pool == POOL_LOCAL;
}

/* Decides what forward, backward and predict compute, in what order, which
 * nodes are fused into one loop and where each buffer lives in the
 * workspace (lower.c), then each function's steps (lower_steps.c). */
Plan *lower_graph(Arena *a, Graph *g, const EmitOptions *opt);
/* lower_steps.c: the steps of every function, from the modes and places
 * lower_graph() decided; then their groups (after lower_graph has decided
 * M_forward_backward's loop, where backward's groups are cut). */
void lower_steps(Plan *p);
void lower_groups(Plan *p);
/* Whether node y's step in function f is an elementwise loop (not a bias
 * gemm, not an outer product); if so, its form and size (lower_steps.c). */
bool loop_step_of(const Plan *p, PlanFn f, const Node *y, LoopStep *loop);
/* Whether batched matrix product mm (not a dot) is one gemm over the whole
 * batch in function f: the samples stack as rows of one operand while the
 * other is shared (lower.c fuses a bias only into such a gemm). */
bool gemm_over_batch(const Plan *p, PlanFn f, const Node *mm);

/* plan.c: verifies the plan (every buffer inside its pool, every
 * convolution step its scratch, operands computed before they are read,
 * gemm and kernel operands inside their buffers). Returns false and
 * describes the first violation on stderr: an internal error. */
bool plan_check(const Plan *p);
/* --dump=lower: each function's steps, what is fused into them, and where
 * every buffer lives. */
void plan_dump(const Plan *p, FILE *out);

/* report.c: --report, what each function and step of the plan costs at
 * batch size n (batch_given: the user chose it; else the report says it
 * is the default): FLOPs, bytes moved, arithmetic intensity, workspace
 * and peak memory. Returns false on a write error. */
bool report_plan(const Plan *p, long batch, bool batch_given, FILE *out);

/* Writes the generated C file and its header. Returns false on a write
 * error (the caller then removes the files). */
bool emit_c(const Plan *p, FILE *c_out, FILE *h_out);

/* ------------------------------------------------------------------------ */
/* explain.c — the derivation step by step (--explain, --explain=markdown). */

/* A derivation expression: what one line of --explain says. Leaves are
 * graph nodes (forward values, printed by print_expr in the model's names)
 * and adjoint tokens `dL/dY`; products keep their factors in the order the
 * chain rule produced them, so the text reads like the blackboard. */
typedef enum { DX_NUM, DX_NODE, DX_ADJ, DX_PROD, DX_SUM, DX_MATMUL, DX_FN } DxKind;

typedef struct Dx Dx;
struct Dx {
    DxKind kind;
    Shape shape;
    double num;          /* NUM: the value (every element); PROD: coefficient */
    const Node *node;    /* NODE */
    int var;             /* ADJ: the variable whose adjoint this is */
    int n;               /* PROD: factors; SUM: terms; MATMUL: 2; FN: arguments */
    Dx **kid;
    double *power;       /* PROD: the exponent of each factor */
    const char *fn;      /* FN: "transpose", "outer", "sum", "ones", or an
                            operation's own name (conv2d_grad_input) */
    const char *extra;   /* FN: text after the arguments (", stride=1") */
};

/* One use of a variable X: the variable Y whose expression reads X, and
 * the adjoint flowing back, `contribution` (with Y's token in it), or for
 * a scalar Y the local derivative dY/dX alone (then scalar_local). */
typedef struct {
    int user;
    Dx *dx;
    bool scalar_local;
} DxUse;

/* A name the derivation has a block for: the loss, a named value, a
 * parameter or a `wrt` input. */
typedef struct {
    const char *name;
    Node *node;
    bool leaf;           /* parameter or input */
    DxUse *uses;  int nuses, uses_cap;
    Dx *closed;          /* the adjoint in the model's names, no tokens (NULL
                            when derived without closed forms); past
                            EXPLAIN_CLOSED_LIMIT characters, the variable's
                            own token (then closed_cut) */
    bool closed_cut;
    const char *closed_text;   /* closed as dx_text writes it, when not cut */
} DxVar;

typedef struct {
    Graph *graph;        /* unbatched forward graph the derivation reads */
    DxVar *vars;  int nvars;   /* vars[0] is the loss; block order */
    const char *loss_name;
    int *by_name;        /* indices of vars[1..] sorted by name, so that a
                            lookup by name (explain_chain_rule) is a
                            binary search */
} Derivation;

/* Derives every adjoint the loss needs, one chain-rule step per named
 * value, and with closed_forms each variable's closed form (DxVar.closed,
 * else NULL). Closed forms can grow with the model's depth: --explain
 * prints them; --dot and the comments of generated code need only the
 * chain rule. */
Derivation *explain_derive(Arena *a, Model *m, bool closed_forms);

/* The longest closed form --explain writes out, in characters. A longer
 * one (a deep model's: each layer adds factors, and a value used twice
 * can double the text) is not written; the closed forms after it name
 * that adjoint, dL/dh, instead, so each stays below the limit and the
 * output grows with the model's size, not exponentially with its depth. */
enum { EXPLAIN_CLOSED_LIMIT = 4096 };

/* `dL/dX = ...`: the chain rule for the variable named X, as the first
 * line of its --explain block says it; NULL when X has no block. */
const char *explain_chain_rule(Arena *a, const Derivation *d, const char *name);

typedef enum { EXPLAIN_TEXT, EXPLAIN_MARKDOWN } ExplainFormat;

/* Writes the forward equations and one block per variable (CONTRACT
 * section 7). Returns false on a write error. */
bool explain_model(Arena *a, Model *m, ExplainFormat format, FILE *out);

/* A derivation expression as .net text with `dL/dY` tokens, and its
 * precedence (1 sum ... 5 atom). */
const char *dx_text(Arena *a, const Derivation *d, const Dx *x, int *prec);

/* ------------------------------------------------------------------------ */
/* dot.c — the model's graph as Graphviz DOT (--dot, --dot=backward).       */

/* Writes the forward graph; with backward, the gradient computations of
 * explain_derive() too. Returns false on a write error. */
bool dot_model(Arena *a, Model *m, bool backward, FILE *out);

#endif
