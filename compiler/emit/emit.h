/* emit.h — the emitter's shared state and the functions its files share.
 * Private to compiler/emit/; the pass's one entry point is emit_c() in
 * bpgen.h.
 *
 * The emitter writes a Plan out as C, one file per responsibility:
 *   emit.c    the entry point: the order of the C file; printing lines
 *             and comments
 *   names.c   C identifiers for the model's values (reserved words,
 *             mangling, uniqueness)
 *   expr.c    node expressions rendered to C, literals, buffer references;
 *             the inline helpers (sigmoid, softplus) they call
 *   steps.c   each kind of step: elementwise loops, reductions, gemm calls,
 *             the runtime's kernels; copies of outputs and gradients
 *   frames.c  the functions around the steps: signatures, declarations,
 *             prologue and epilogue; init and its INIT calls
 *   abi.c     the header M.h and the bp_model descriptor (runtime ABI)
 *   driver.c  the main() of --main
 *   trace.c   each step traced to its .net statement: the file and line
 *             in its comment, a gradient's chain rule, #line directives
 *   debug.c   what --selftest and --check-finite add: M_selftest, the
 *             checks after each step and of each named local, M_nonfinite
 */
#ifndef BPGEN_EMIT_H
#define BPGEN_EMIT_H

#include "bpgen.h"

#include <stdio.h>

/* Binding strength of a C expression, loosest first. */
enum { PR_COND = 1, PR_ADD, PR_MUL, PR_UNARY, PR_ATOM };

/* A C expression and how tightly it binds; `simple` ones (names, array
 * elements, literals) may be written twice at no cost. */
typedef struct {
    const char *s;
    int prec;
    bool simple;
} Ex;

/* The loop an expression is rendered in. */
typedef struct {
    LoopForm mode;  /* SCALAR, FLAT or NESTED */
    bool batched;   /* the loop runs over samples */
    long size;      /* elements per sample it runs over */
    FILE *pre;      /* local temporaries, written before the expression */
    FILE *notes;    /* comments of the named values fused into the loop */
    int depth;      /* indentation of the loop body */
} Ctx;

typedef struct {
    char **slots;
    size_t cap, count;
} NameSet;

typedef struct {
    const Plan *p;
    Graph *g;
    Model *m;
    Arena *a;
    const char *M;          /* the model's prefix */
    bool dbl;
    const char *real;       /* "float" or "double" */
    const char **cname;     /* by node id */
    const char **orig;      /* node names from the .net file, by id */
    NameSet names;
    bool need_softplus;
    const Derivation *derivation;   /* the chain rule, for gradients' comments */
    const char *source_name;        /* the .net file's name, for comments */
    bool ws_direct;         /* a step addresses the workspace itself (scratch) */
    const char *found;      /* --check-finite: the local pointing at the record */
    /* --step: M_step's body is being written (backward's steps with the
     * gradients in M_step's pool, e->f is PF_BACKWARD); its optimiser
     * argument's and loss's C names */
    bool fused;
    const char *opt_name, *loss_name;
    /* M_step with a copy for one sample: the gradients are named from a
     * pointer to the pool (pool_name), a `restrict` parameter of the copy,
     * so that gcc knows them apart from the workspace's buffers and
     * vectorises the small outer products that make them (the public
     * function computes it first) */
    bool pool_param;
    const char *pool_name;
    /* M_forward_backward: the local holding 1/n that gradients into
     * grad_inputs are scaled by, or NULL (each says 1/n itself); the
     * static functions of each function's groups (NULL: in the caller) */
    const char *inv_n, *inv_n_name;
    const bool *fb_local;   /* Plan.fb_local, while its loop is written */
    const char **group_names[PF__COUNT];
    /* the function being written */
    PlanFn f;
    FILE *out;
    bool *used;             /* by node id: its buffer or leaf is named */
    int *used_ids;          /* ... and those ids, in the order first named,
                               so a function's frame costs what it names,
                               not the whole graph (a deep model has many) */
    int nused;
} Emit;

#define fmt(e, ...) arena_printf((e)->a, __VA_ARGS__)

/* ---- emit.c: printing */
void die(const char *what);
void line(Emit *e, int depth, const char *format, ...);
void indent_to(FILE *out, int depth);
const char *comment_text(Emit *e, const char *text);
const char *equation(Emit *e, Node *n);
void comment(Emit *e, int depth, const char *text);

/* ---- names.c */
void assign_names(Emit *e);
const char *unique_name(Emit *e, const char *base);
bool has_title(const Emit *e, const Node *n);

/* ---- expr.c: expressions and references */
const char *at(Emit *e, Ex x, int need);
const char *fn(Emit *e, const char *name);
const char *lit_str(Emit *e, double v);
const char *dlit(Emit *e, double v);
const NodeInfo *info(const Emit *e, const Node *n);
bool is_leaf(const Node *n);
/* Whether n is a local of the merged loop being written, never stored. */
bool is_local(const Emit *e, const Node *n);
const char *buf_name(Emit *e, Node *n);
Ex elem(Emit *e, Node *n, const char *s, const char *j);
Ex ref_buf(Emit *e, const Ctx *c, Node *n);
Ex render(Emit *e, Ctx *c, Node *n, bool top);
void open_ctx(Ctx *c, char **pre, size_t *npre, char **notes, size_t *nnotes);
void close_ctx(Emit *e, Ctx *c, char **notes, int depth);
void emit_helpers(Emit *e, FILE *out);

/* ---- steps.c */
void emit_step(Emit *e, const Step *st);
void gemm_rows(Emit *e, int depth, const Step *st, const char *rows, const char *dst);
/* Steps st[0 .. count): one step (traced), or a merged loop (Step.joined
 * on all but the last), forward's loss perhaps its last. */
void emit_run(Emit *e, const Step *st, int count);
/* M_forward_backward's loop: forward's last merged loop fw[0 .. nfw)
 * (fw[nfw - 1] the loss summed in it), then backward's first steps
 * bw[0 .. nbw) at the same index; the loss into a local named `loss`.
 * Leaves e->f at PF_BACKWARD. */
void emit_joined_run(Emit *e, const Step *fw, int nfw, const Step *bw, int nbw,
                     const char *loss);

/* ---- frames.c */
long param_offset(const Model *m, int index);
void emit_function(Emit *e, FILE *out, PlanFn f, const char *doc);
/* M_forward_backward: forward's steps, the loop lowering joined, backward's
 * steps (after forward's and backward's functions, whose groups it calls) */
void emit_forward_backward(Emit *e, FILE *out);
void emit_init(Emit *e, FILE *out);
/* --step: M_step and M_step_workspace_size; the update step; a place in
 * M_step's gradient pool (a real * expression) */
void emit_fused_step(Emit *e, FILE *out);
void emit_update(Emit *e, const Step *st);
const char *fused_place(Emit *e, long offset);

/* ---- abi.c */
void emit_header(Emit *e, FILE *h);
void emit_model(Emit *e, FILE *out);
void emit_forward_outputs(Emit *e, FILE *out);
void emit_forward_backward_any(Emit *e, FILE *out);

/* ---- driver.c */
void emit_main(Emit *e, FILE *out);

/* ---- debug.c: --selftest and --check-finite (e->found is set when the
 * latter is on) */
void check_local(Emit *e, Ctx *c, Node *n);
void check_step(Emit *e, Node *y);
void nonfinite_workspace_size(Emit *e, FILE *out);
void nonfinite_header(Emit *e, FILE *h);
void main_report_nonfinite(Emit *e, FILE *out);
void selftest_header(Emit *e, FILE *h);
void emit_selftest(Emit *e, FILE *out);

/* ---- trace.c */
/* `model.net:7  `: the place of something made on .net line `line`
 * (0: none, ""). */
const char *source_place(Emit *e, int line);
/* For a gradient's step, the chain-rule step it computes as --explain's
 * block begins (`dL/dh = transpose(W2) · dL/dz`); NULL for other steps. */
const char *chain_rule(Emit *e, const Node *n);
/* With --line-directives, `#line N "model.net"` and a newline; else NULL. */
const char *source_directive(Emit *e, int line);
/* The line a traced piece of code ends with, for the #line back. */
extern const char BACK_TO_C[];
/* emit_step(), with --line-directives every line of its code after a
 * source_directive() and the step followed by BACK_TO_C. */
void emit_traced_step(Emit *e, const Step *st);
/* Writes text (len bytes) of code made for .net line `line`: with
 * --line-directives each code line after a source_directive() and the
 * whole followed by BACK_TO_C; else as it is. */
void emit_traced_text(Emit *e, int line, const char *text, size_t len);
/* Copies the C file to `out`, each BACK_TO_C line replaced by
 * `#line N "OUT.c"`, N the number of the line after it. */
void resolve_back_to_c(Emit *e, const char *text, size_t len, FILE *out);

#endif
