/* emit.c — a Plan written out as C: the model's header and its source.
 *
 * In:  a Plan (lower.c has decided every step, mode and buffer).
 * Out: M.h (sizes, offsets, prototypes, the bp_model) and M.c (the
 *      functions of CONTRACT section 4, the bp_model descriptor with its
 *      untyped wrappers, and with --main a driver).
 *
 * How: each function's body is written to memory first, step by step;
 * while it is written, every buffer, leaf and helper it names is noted, so
 * that only those get declared (nothing unused, so -Wall -Wextra stay
 * quiet). A step is one loop nest or one gemm call, preceded by a comment
 * with the equation it computes, printed by print.c.
 *
 * Elementwise code is rendered by render(): an inline node becomes part of
 * its user's expression (named intermediates and adjoints become `const`
 * locals named after them), everything else is read from its buffer with
 * the index the loop provides:
 *   flat    one index i over all n·size values (every operand has the
 *           loop's shape and batching, or is a shared scalar);
 *   nested  s over the samples, j over the elements of one sample;
 *   none    an unbatched scalar.
 * The canonical algebra is turned back into C: a + (-1)·b is `a - b`,
 * a·b^-1 is `a / b`, x^2 is `x * x`, x^0.5 is sqrt(x), and so on.
 *
 * Names: every .net name is used as it is where it can be, and mangled
 * where it is a C keyword, a name the generated code itself uses (`n`,
 * `theta`, `s`, ...), a library name, or taken: a trailing `_`, then `_2`,
 * `_3`, ... Adjoints `dL/dh` are called `d_h`, nameless buffers after
 * their operation (`matmul_7`).
 */
#include "bpgen.h"

/* The runtime ABI (BP_ABI_VERSION in runtime/bp.h) the emitted code is for:
 * the layout of bp_model and bp_tensor_info it fills in. */
#define EMIT_ABI_VERSION 2

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum { PR_COND = 1, PR_ADD, PR_MUL, PR_UNARY, PR_ATOM };

/* A C expression and how tightly it binds; `simple` ones (names, array
 * elements, literals) may be written twice at no cost. */
typedef struct {
    const char *s;
    int prec;
    bool simple;
} Ex;

typedef enum { IX_NONE, IX_FLAT, IX_NESTED } IxMode;

/* The loop an expression is rendered in. */
typedef struct {
    IxMode mode;
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
    bool need_sigmoid, need_softplus;
    bool ws_direct;         /* a step addresses the workspace itself (scratch) */
    const char *found;      /* --check-finite: the local pointing at the record */
    /* the function being written */
    PlanFn f;
    FILE *out;
    bool *used;             /* by node id: its buffer or leaf is named */
} Emit;

static void die(const char *what)
{
    fprintf(stderr, "bpgen: internal error: emit: %s\n", what);
    abort();
}

/* ---------------------------------------------------------------- names */

static const char *const reserved[] = {
    /* C keywords (C89 to C11) and common extensions */
    "auto", "break", "case", "char", "const", "continue", "default", "do",
    "double", "else", "enum", "extern", "float", "for", "goto", "if",
    "inline", "int", "long", "register", "restrict", "return", "short",
    "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "asm", "typeof", "bool",
    "true", "false", "alignas", "alignof", "noreturn", "static_assert",
    "thread_local", "complex", "imaginary",
    /* predefined macros in GNU modes */
    "linux", "unix", "i386", "i686", "x86_64", "amd64", "sun", "vax",
    /* what the generated code names itself */
    "theta", "inputs", "n", "ws", "grad", "grad_inputs", "outputs", "seed",
    "rng", "wsr", "s", "i", "j", "k", "acc", "mx", "lacc", "main",
    /* the C library: types, macros and functions the code uses */
    "size_t", "ptrdiff_t", "NULL", "offsetof", "wchar_t", "FILE", "EOF",
    "errno", "stdin", "stdout", "stderr", "assert", "memcpy", "memset",
    "strtod", "printf", "fprintf", "fputs", "fputc", "putchar", "getchar",
    "getc", "putc", "malloc", "calloc", "free", "exit", "abort",
    "EXIT_SUCCESS", "EXIT_FAILURE", "RAND_MAX", "BUFSIZ", "INFINITY",
    "NAN", "HUGE_VAL", "HUGE_VALF", "HUGE_VALL", "HUGE", "MAXFLOAT",
    "DOMAIN", "SING", "OVERFLOW", "UNDERFLOW", "TLOSS", "PLOSS",
    "isnan", "isinf", "isfinite", "signbit", "fpclassify", "isnormal",
    "exp", "expf", "log", "logf", "fabs", "fabsf", "sin", "sinf", "cos",
    "cosf", "tanh", "tanhf", "sqrt", "sqrtf", "pow", "powf", "log1p",
    "log1pf", "floor", "ceil", "fmax", "fmin", "isspace",
};

static const char *reserved_prefixes[] = {"bp_", "BP_", "M_", "FP_", "FLT_", "DBL_",
                                          "INT_", "SIZE_"};

static unsigned long hash_str(const char *s)
{
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

static bool name_taken(const NameSet *ns, const char *s)
{
    if (!ns->cap)
        return false;
    for (size_t i = hash_str(s) % ns->cap; ns->slots[i]; i = (i + 1) % ns->cap)
        if (!strcmp(ns->slots[i], s))
            return true;
    return false;
}

static void name_add(Arena *a, NameSet *ns, char *s)
{
    if (2 * (ns->count + 1) > ns->cap) {
        NameSet bigger = {NULL, ns->cap ? ns->cap * 2 : 256, 0};
        bigger.slots = arena_alloc(a, sizeof(char *) * bigger.cap);
        for (size_t i = 0; i < ns->cap; i++)
            if (ns->slots[i])
                name_add(a, &bigger, ns->slots[i]);
        *ns = bigger;
    }
    size_t i = hash_str(s) % ns->cap;
    while (ns->slots[i])
        i = (i + 1) % ns->cap;
    ns->slots[i] = s;
    ns->count++;
}

static bool is_reserved(const Emit *e, const char *s)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (!strcmp(s, reserved[i]))
            return true;
    for (size_t i = 0; i < sizeof reserved_prefixes / sizeof reserved_prefixes[0]; i++)
        if (!strncmp(s, reserved_prefixes[i], strlen(reserved_prefixes[i])))
            return true;
    size_t mlen = strlen(e->M);
    return !strncmp(s, e->M, mlen) && s[mlen] == '_';
}

/* A fresh C identifier made from `base` (any text). */
static const char *unique_name(Emit *e, const char *base)
{
    size_t len = strlen(base);
    char *s = arena_alloc(e->a, len + 4);
    size_t k = 0;
    if (len == 0 || !((base[0] >= 'A' && base[0] <= 'Z') || (base[0] >= 'a' && base[0] <= 'z')))
        s[k++] = 'v';
    for (size_t i = 0; i < len; i++) {
        char c = base[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        s[k++] = ok ? c : '_';
    }
    s[k] = '\0';
    if (is_reserved(e, s)) {
        s[k++] = '_';
        s[k] = '\0';
    }
    char *name = s;
    for (int i = 2; name_taken(&e->names, name); i++)
        name = arena_printf(e->a, "%s_%d", s, i);
    name_add(e->a, &e->names, name);
    return name;
}

static bool has_title(const Emit *e, const Node *n)
{
    return e->orig[n->id] || n->label;
}

/* The C name for a node's buffer or local: its .net name, an adjoint
 * `dL/dh` as `d_h`, else its operation and id. */
static const char *make_cname(Emit *e, Node *n)
{
    const char *base = e->orig[n->id];
    if (!base && n->label) {
        const char *loss = e->m->loss ? e->m->loss->name : "";
        size_t ll = strlen(loss);
        if (n->label[0] == 'd' && !strncmp(n->label + 1, loss, ll) && n->label[1 + ll] == '/' &&
            n->label[2 + ll] == 'd' && n->label[3 + ll])
            base = arena_printf(e->a, "d_%s", n->label + 3 + ll);
        else
            base = n->label;
    }
    if (!base) {
        switch (n->op) {
        case OP_CONST: base = arena_printf(e->a, "c%d", n->id); break;
        case OP_MATMUL: base = arena_printf(e->a, "matmul_%d", n->id); break;
        default:
            if (op_info[n->op].kind == OPK_ELEMENTWISE)
                base = arena_printf(e->a, "t%d", n->id);
            else
                base = arena_printf(e->a, "%s_%d", op_info[n->op].name, n->id);
            break;
        }
    }
    return unique_name(e, base);
}

/* ---------------------------------------------------------------- small helpers */

#define fmt(e, ...) arena_printf((e)->a, __VA_ARGS__)

static void line(Emit *e, int depth, const char *format, ...)
{
    for (int i = 0; i < depth; i++)
        fputs("    ", e->out);
    va_list ap;
    va_start(ap, format);
    vfprintf(e->out, format, ap);
    va_end(ap);
    fputc('\n', e->out);
}

static void indent_to(FILE *out, int depth)
{
    for (int i = 0; i < depth; i++)
        fputs("    ", out);
}

static Ex ex(const char *s, int prec, bool simple)
{
    Ex x = {s, prec, simple};
    return x;
}

/* x as an operand that must bind at least as tightly as `need`. */
static const char *at(Emit *e, Ex x, int need)
{
    return x.prec >= need ? x.s : fmt(e, "(%s)", x.s);
}

/* A math function of the chosen precision: "exp" -> "expf". */
static const char *fn(Emit *e, const char *name)
{
    return e->dbl ? name : fmt(e, "%sf", name);
}

/* A literal of the chosen type: the shortest decimal that reads back. */
static const char *lit_str(Emit *e, double v)
{
    char buf[64];
    if (!e->dbl) {
        float f = (float)v;
        if (isinf(f))
            return f > 0 ? "INFINITY" : "(-INFINITY)";
        if (f != 0 && fabsf(f) < FLT_MIN) {
            snprintf(buf, sizeof buf, "%.17g", v);
            return fmt(e, "((float)%s)", buf);
        }
        for (int d = 1; d <= 9; d++) {
            snprintf(buf, sizeof buf, "%.*g", d, (double)f);
            if ((float)strtod(buf, NULL) == f)
                break;
        }
    } else {
        if (isinf(v))
            return v > 0 ? "HUGE_VAL" : "(-HUGE_VAL)";
        for (int d = 1; d <= 17; d++) {
            snprintf(buf, sizeof buf, "%.*g", d, v);
            if (strtod(buf, NULL) == v)
                break;
        }
    }
    if (!strpbrk(buf, ".eEn"))
        strcat(buf, ".0");
    return fmt(e, "%s%s", buf, e->dbl ? "" : "f");
}

static Ex lit(Emit *e, double v)
{
    return ex(lit_str(e, v), v < 0 ? PR_UNARY : PR_ATOM, true);
}

/* A double literal for arguments of type double (init). */
static const char *dlit(Emit *e, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    if (!strpbrk(buf, ".eEn"))
        strcat(buf, ".0");
    return arena_strdup(e->a, buf);
}

static const char *gemm_fn(Emit *e)
{
    return e->dbl ? "bp_gemm_d" : "bp_gemm_f";
}

static const char *inv_n(Emit *e)
{
    return fmt(e, "%s / (%s)n", lit_str(e, 1), e->real);
}

/* "SIZE * (size_t)n": the count of a batched buffer's reals. */
static const char *batch_count(Emit *e, long size)
{
    return size == 1 ? "(size_t)n" : fmt(e, "%ld * (size_t)n", size);
}

/* ---------------------------------------------------------------- comments */

/* One line of comment text: no newline, no comment delimiters, bounded. */
static const char *comment_text(Emit *e, const char *text)
{
    enum { LIMIT = 160 };
    size_t len = strlen(text);
    char *s = arena_alloc(e->a, len * 2 + 8);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        s[k++] = c;
        if ((c == '*' && text[i + 1] == '/') || (c == '/' && text[i + 1] == '*'))
            s[k++] = ' ';
    }
    s[k] = '\0';
    if (k > LIMIT) {
        size_t cut = LIMIT;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
        strcpy(s + cut, " ...");
    }
    return s;
}

/* `NAME = EXPR` for the comment above the step computing n. */
static const char *equation(Emit *e, Node *n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        die("out of memory");
    Node copy = *n;
    copy.name = NULL;
    fprintf(f, "%s = ", n->name ? n->name : e->cname[n->id]);
    print_expr_brief(f, &copy, 200);
    fclose(f);
    const char *s = comment_text(e, text ? text : "");
    free(text);
    return s;
}

static void comment(Emit *e, int depth, const char *text)
{
    line(e, depth, "/* %s */", text);
}

/* ---------------------------------------------------------------- references */

static const NodeInfo *info(const Emit *e, const Node *n)
{
    return &e->p->info[n->id];
}

static bool is_leaf(const Node *n)
{
    return n->op == OP_INPUT || n->op == OP_PARAM;
}

/* The buffer holding n in the current function, noted as used. */
static const char *buf_name(Emit *e, Node *n)
{
    const NodeInfo *in = info(e, n);
    if (!(is_leaf(n) || in->mode[e->f] == NODE_BUFFER ||
          (e->f == PF_BACKWARD && in->kept)))
        die(fmt(e, "node %d (%s) has no buffer", n->id, op_info[n->op].name));
    e->used[n->id] = true;
    return e->cname[n->id];
}

/* Element `j` of sample `s` of n. */
static Ex elem(Emit *e, Node *n, const char *s, const char *j)
{
    if (n->op == OP_CONST)
        return lit(e, n->value);
    const char *b = buf_name(e, n);
    long size = shape_size(n->shape);
    if (size == 1)
        return ex(fmt(e, "%s[%s]", b, n->batched ? s : "0"), PR_ATOM, true);
    if (n->batched)
        return ex(fmt(e, "%s[%s * %ld + %s]", b, s, size, j), PR_ATOM, true);
    return ex(fmt(e, "%s[%s]", b, j), PR_ATOM, true);
}

/* n's buffer at the index of loop c. */
static Ex ref_buf(Emit *e, const Ctx *c, Node *n)
{
    switch (c->mode) {
    case IX_NONE:
        return ex(fmt(e, "%s[0]", buf_name(e, n)), PR_ATOM, true);
    case IX_FLAT:
        if (n->batched == c->batched && shape_size(n->shape) == c->size)
            return ex(fmt(e, "%s[i]", buf_name(e, n)), PR_ATOM, true);
        if (!n->batched && shape_size(n->shape) == 1)
            return ex(fmt(e, "%s[0]", buf_name(e, n)), PR_ATOM, true);
        die("operand does not fit a flat loop");
        break;
    case IX_NESTED:
        return elem(e, n, "s", "j");
    }
    return ex("0", PR_ATOM, true);
}

/* n read inside the loop c: a literal, or its buffer. */
static Ex ref(Emit *e, const Ctx *c, Node *n)
{
    return n->op == OP_CONST ? lit(e, n->value) : ref_buf(e, c, n);
}

/* ---------------------------------------------------------------- elementwise */

static Ex render(Emit *e, Ctx *c, Node *n, bool top);
static void check_local(Emit *e, Ctx *c, Node *n);
static void check_step(Emit *e, Node *y);

static bool is_inline(const Emit *e, const Node *n)
{
    return info(e, n)->mode[e->f] == NODE_INLINE;
}

/* An inline, nameless node rendered into its user's expression. */
static bool folds_into_user(const Emit *e, const Node *n)
{
    return is_inline(e, n) && !has_title(e, n);
}

/* x as a temporary when it is not simple (it is about to be used twice). */
static Ex simple(Emit *e, Ctx *c, Ex x)
{
    if (x.simple)
        return x;
    const char *name = unique_name(e, "tmp");
    indent_to(c->pre, c->depth);
    fprintf(c->pre, "const %s %s = %s;\n", e->real, name, x.s);
    return ex(name, PR_ATOM, true);
}

static Ex call1(Emit *e, const char *name, Ex x)
{
    return ex(fmt(e, "%s(%s)", name, x.s), PR_ATOM, false);
}

/* n = MUL(c, t) with c a negative constant, fused into its user:
 * returns c, with *t the other factor. */
static bool negated(const Emit *e, Node *n, double *c, Node **t)
{
    if (n->op == OP_MUL && n->in[0]->op == OP_CONST && n->in[0]->value < 0 &&
        n->in[0]->shape.rank == 0 && folds_into_user(e, n)) {
        *c = n->in[0]->value;
        *t = n->in[1];
        return true;
    }
    return false;
}

/* n = POW(y, -1) fused into its user: *y the denominator. */
static bool reciprocal(const Emit *e, Node *n, Node **y)
{
    if (n->op == OP_POW && node_is_const(n->in[1], -1) && folds_into_user(e, n)) {
        *y = n->in[0];
        return true;
    }
    return false;
}

/* |c| · t, as the right operand of a subtraction */
static Ex scaled(Emit *e, Ctx *c, double k, Node *t)
{
    Ex x = render(e, c, t, false);
    if (k == 1)
        return x;
    return ex(fmt(e, "%s * %s", lit_str(e, k), at(e, x, PR_UNARY)), PR_MUL, false);
}

static Ex render_add(Emit *e, Ctx *c, Node *n)
{
    Node *a = n->in[0], *b = n->in[1], *t = NULL, *keep = NULL;
    double k = 0;
    if (negated(e, b, &k, &t))
        keep = a;
    else if (negated(e, a, &k, &t))
        keep = b;
    if (keep) {
        Ex x = render(e, c, keep, false);
        Ex sub = scaled(e, c, -k, t);
        return ex(fmt(e, "%s - %s", at(e, x, PR_ADD), at(e, sub, PR_MUL)), PR_ADD, false);
    }
    if (a->op == OP_CONST && a->value < 0 && a->shape.rank == 0) {
        Ex x = render(e, c, b, false);
        return ex(fmt(e, "%s - %s", at(e, x, PR_ADD), lit_str(e, -a->value)), PR_ADD, false);
    }
    Ex x = render(e, c, a, false), y = render(e, c, b, false);
    return ex(fmt(e, "%s + %s", at(e, x, PR_ADD), at(e, y, PR_MUL)), PR_ADD, false);
}

static Ex render_mul(Emit *e, Ctx *c, Node *n)
{
    Node *a = n->in[0], *b = n->in[1], *y = NULL, *num = NULL;
    if (node_is_const(a, -1)) {
        Ex x = render(e, c, b, false);
        return ex(fmt(e, "-%s", at(e, x, PR_ATOM)), PR_UNARY, false);
    }
    if (reciprocal(e, b, &y))
        num = a;
    else if (reciprocal(e, a, &y))
        num = b;
    if (num) {
        Ex x = render(e, c, num, false), d = render(e, c, y, false);
        return ex(fmt(e, "%s / %s", at(e, x, PR_MUL), at(e, d, PR_UNARY)), PR_MUL, false);
    }
    Ex x = render(e, c, a, false), z = render(e, c, b, false);
    return ex(fmt(e, "%s * %s", at(e, x, PR_MUL), at(e, z, PR_UNARY)), PR_MUL, false);
}

static Ex render_pow(Emit *e, Ctx *c, Node *n)
{
    Ex x = render(e, c, n->in[0], false);
    Node *p = n->in[1];
    if (p->op != OP_CONST) {
        Ex y = render(e, c, p, false);
        return ex(fmt(e, "%s(%s, %s)", fn(e, "pow"), x.s, y.s), PR_ATOM, false);
    }
    double v = p->value;
    const char *one = lit_str(e, 1);
    if (v == 2 || v == 3 || v == 4 || v == -2) {
        x = simple(e, c, x);
        const char *b = at(e, x, PR_UNARY);
        const char *prod = v == 3 ? fmt(e, "%s * %s * %s", b, b, b)
                         : v == 4 ? fmt(e, "%s * %s * %s * %s", b, b, b, b)
                                  : fmt(e, "%s * %s", b, b);
        if (v < 0)
            return ex(fmt(e, "%s / (%s)", one, prod), PR_MUL, false);
        return ex(prod, PR_MUL, false);
    }
    if (v == -1)
        return ex(fmt(e, "%s / %s", one, at(e, x, PR_UNARY)), PR_MUL, false);
    if (v == 0.5)
        return call1(e, fn(e, "sqrt"), x);
    if (v == -0.5)
        return ex(fmt(e, "%s / %s(%s)", one, fn(e, "sqrt"), x.s), PR_MUL, false);
    if (v == 1.5 || v == -1.5) {
        x = simple(e, c, x);
        const char *prod = fmt(e, "%s * %s(%s)", at(e, x, PR_UNARY), fn(e, "sqrt"), x.s);
        if (v < 0)
            return ex(fmt(e, "%s / (%s)", one, prod), PR_MUL, false);
        return ex(prod, PR_MUL, false);
    }
    return ex(fmt(e, "%s(%s, %s)", fn(e, "pow"), x.s, lit_str(e, v)), PR_ATOM, false);
}

/* The expression computing n from its operands. */
static Ex define(Emit *e, Ctx *c, Node *n)
{
    const char *zero = lit_str(e, 0), *one = lit_str(e, 1);
    Ex x, y;
    switch (n->op) {
    case OP_CONST:
        return lit(e, n->value);
    case OP_ADD:
        return render_add(e, c, n);
    case OP_MUL:
        return render_mul(e, c, n);
    case OP_POW:
        return render_pow(e, c, n);
    case OP_MAX: case OP_MIN:
        x = simple(e, c, render(e, c, n->in[0], false));
        y = simple(e, c, render(e, c, n->in[1], false));
        return ex(fmt(e, "(%s %s %s ? %s : %s)", x.s, n->op == OP_MAX ? ">=" : "<=", y.s, x.s, y.s),
                  PR_ATOM, false);
    case OP_SIGMOID:
        e->need_sigmoid = true;
        return call1(e, fmt(e, "%s_sigmoid", e->M), render(e, c, n->in[0], false));
    case OP_SOFTPLUS:
        e->need_softplus = true;
        return call1(e, fmt(e, "%s_softplus", e->M), render(e, c, n->in[0], false));
    case OP_RELU:
        x = simple(e, c, render(e, c, n->in[0], false));
        return ex(fmt(e, "(%s > %s ? %s : %s)", x.s, zero, x.s, zero), PR_ATOM, false);
    case OP_STEP:
        x = render(e, c, n->in[0], false);
        return ex(fmt(e, "(%s > %s ? %s : %s)", at(e, x, PR_ADD), zero, one, zero), PR_ATOM, false);
    case OP_SIGN:
        x = simple(e, c, render(e, c, n->in[0], false));
        return ex(fmt(e, "(%s > %s ? %s : %s < %s ? %s : %s)", x.s, zero, one, x.s, zero,
                      lit_str(e, -1), zero), PR_ATOM, false);
    case OP_BROADCAST:
    case OP_RESHAPE:    /* the same elements in the same order */
        return render(e, c, n->in[0], false);
    default:
        if (op_info[n->op].c_fn)
            return call1(e, fn(e, op_info[n->op].c_fn), render(e, c, n->in[0], false));
        die(fmt(e, "%s is not elementwise", op_info[n->op].name));
    }
    return ex("0", PR_ATOM, true);
}

/* n's value in loop c: its definition when it is fused here (top: the
 * step's own node), else a read of its buffer. */
static Ex render(Emit *e, Ctx *c, Node *n, bool top)
{
    if (n->op == OP_CONST)
        return lit(e, n->value);
    if (!top && !is_inline(e, n))
        return ref(e, c, n);
    Ex d = define(e, c, n);
    if (top || !has_title(e, n))
        return d;
    /* a named value or adjoint fused into the loop: a local of its name */
    indent_to(c->pre, c->depth);
    fprintf(c->pre, "const %s %s = %s;\n", e->real, e->cname[n->id], d.s);
    fprintf(c->notes, "%s\n", equation(e, n));
    if (e->found)
        check_local(e, c, n);
    return ex(e->cname[n->id], PR_ATOM, true);
}

/* Can every memory read of n's fused expression use the flat index? */
static bool flat_ok(const Emit *e, const Ctx *c, const Node *n, bool top)
{
    if (n->op == OP_CONST)
        return true;
    if (!top && !is_inline(e, n)) {
        long size = shape_size(n->shape);
        return (n->batched == c->batched && size == c->size) || (!n->batched && size == 1);
    }
    for (int k = 0; k < n->nin; k++)
        if (!flat_ok(e, c, n->in[k], false))
            return false;
    return true;
}

static void open_ctx(Ctx *c, char **pre, size_t *npre, char **notes, size_t *nnotes)
{
    c->pre = open_memstream(pre, npre);
    c->notes = open_memstream(notes, nnotes);
    if (!c->pre || !c->notes)
        die("out of memory");
}

/* Closes the streams; writes the notes as comments at `depth`. The
 * temporaries in `pre` are the caller's to place. */
static void close_ctx(Emit *e, Ctx *c, char **notes, int depth)
{
    fclose(c->pre);
    fclose(c->notes);
    for (char *p = *notes; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        comment(e, depth, p);
        p = nl ? nl + 1 : p + strlen(p);
    }
}

static void step_elementwise(Emit *e, Node *y)
{
    long size = shape_size(y->shape);
    Ctx c;
    memset(&c, 0, sizeof c);
    c.batched = y->batched;
    c.size = size;
    if (!y->batched && size == 1)
        c.mode = IX_NONE;
    else
        c.mode = flat_ok(e, &c, y, true) ? IX_FLAT : IX_NESTED;
    c.depth = c.mode == IX_NONE ? 2 : c.mode == IX_FLAT ? 2 : 3;
    char *pre = NULL, *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, &pre, &npre, &notes, &nnotes);
    Ex value = render(e, &c, y, true);
    Ex dest = ref_buf(e, &c, y);
    close_ctx(e, &c, &notes, 1);
    comment(e, 1, equation(e, y));
    bool block = npre > 0;
    switch (c.mode) {
    case IX_NONE:
        if (block)
            line(e, 1, "{");
        fputs(pre ? pre : "", e->out);
        line(e, block ? 2 : 1, "%s = %s;", dest.s, value.s);
        if (block)
            line(e, 1, "}");
        break;
    case IX_FLAT:
        line(e, 1, "for (size_t i = 0; i < %s; i++) {",
             y->batched ? batch_count(e, size) : fmt(e, "%ld", size));
        fputs(pre ? pre : "", e->out);
        line(e, 2, "%s = %s;", dest.s, value.s);
        line(e, 1, "}");
        break;
    case IX_NESTED:
        line(e, 1, "for (size_t s = 0; s < (size_t)n; s++) {");
        line(e, 2, "for (size_t j = 0; j < %ld; j++) {", size);
        fputs(pre ? pre : "", e->out);
        line(e, 3, "%s = %s;", dest.s, value.s);
        line(e, 2, "}");
        line(e, 1, "}");
        break;
    }
    free(pre);
    free(notes);
}

/* ---------------------------------------------------------------- reductions */

/* Opens `for s` when batched (else a block); returns the body's depth. */
static int open_samples(Emit *e, bool batched)
{
    line(e, 1, batched ? "for (size_t s = 0; s < (size_t)n; s++) {" : "{");
    return 2;
}

static void step_sum(Emit *e, Node *y)
{
    Node *x = y->in[0];
    Ctx c;
    memset(&c, 0, sizeof c);
    c.mode = IX_NESTED;
    c.batched = y->batched;
    c.size = shape_size(x->shape);
    c.depth = 3;
    char *pre = NULL, *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, &pre, &npre, &notes, &nnotes);
    Ex v = render(e, &c, x, false);
    Ex dest = elem(e, y, "s", "0");
    close_ctx(e, &c, &notes, 1);
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "%s acc = %s;", e->real, lit_str(e, 0));
    line(e, d, "for (size_t j = 0; j < %ld; j++) {", c.size);
    fputs(pre ? pre : "", e->out);
    line(e, d + 1, "acc += %s;", v.s);
    line(e, d, "}");
    line(e, d, "%s = acc;", dest.s);
    line(e, 1, "}");
    free(pre);
    free(notes);
}

/* max over the sample, then the sum of exp(x - max) into acc */
static void max_and_sum(Emit *e, int d, Node *x, long k, const char *store)
{
    line(e, d, "%s mx = %s;", e->real, elem(e, x, "s", "0").s);
    line(e, d, "for (size_t j = 1; j < %ld; j++)", k);
    line(e, d + 1, "mx = %s > mx ? %s : mx;", elem(e, x, "s", "j").s, elem(e, x, "s", "j").s);
    line(e, d, "%s acc = %s;", e->real, lit_str(e, 0));
    line(e, d, "for (size_t j = 0; j < %ld; j++) {", k);
    if (store) {
        line(e, d + 1, "%s = %s(%s - mx);", store, fn(e, "exp"), elem(e, x, "s", "j").s);
        line(e, d + 1, "acc += %s;", store);
    } else {
        line(e, d + 1, "acc += %s(%s - mx);", fn(e, "exp"), elem(e, x, "s", "j").s);
    }
    line(e, d, "}");
}

static void step_vector(Emit *e, Node *y)
{
    Node *x = y->in[0];
    long k = shape_size(x->shape);
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    switch (y->op) {
    case OP_LOGSUMEXP:   /* max + log sum exp(x - max) */
        max_and_sum(e, d, x, k, NULL);
        line(e, d, "%s = mx + %s(acc);", elem(e, y, "s", "0").s, fn(e, "log"));
        break;
    case OP_SOFTMAX:     /* exp(x - max) / sum exp(x - max) */
        max_and_sum(e, d, x, k, elem(e, y, "s", "j").s);
        line(e, d, "for (size_t j = 0; j < %ld; j++)", k);
        line(e, d + 1, "%s /= acc;", elem(e, y, "s", "j").s);
        break;
    case OP_LOG_SOFTMAX: /* x - max - log sum exp(x - max) */
        max_and_sum(e, d, x, k, NULL);
        line(e, d, "const %s lacc = %s(acc);", e->real, fn(e, "log"));
        line(e, d, "for (size_t j = 0; j < %ld; j++)", k);
        line(e, d + 1, "%s = %s - mx - lacc;", elem(e, y, "s", "j").s, elem(e, x, "s", "j").s);
        break;
    default:
        die("not a vector operation");
    }
    line(e, 1, "}");
}

/* ---------------------------------------------------------------- linear algebra */

/* A matmul operand as gemm sees it, for one sample. */
typedef struct {
    Node *base;      /* what is in memory */
    bool trans;      /* base is stored transposed */
    long rows, cols; /* the operand's shape in the product */
    long ld;         /* row stride of base */
} View;

static View view_of(Emit *e, Node *v, bool left)
{
    View w;
    w.base = v;
    w.trans = false;
    if (v->op == OP_TRANSPOSE && info(e, v)->mode[e->f] == NODE_VIRTUAL) {
        w.base = v->in[0];
        w.trans = true;
    }
    if (v->shape.rank == 2) {
        w.rows = v->shape.dim[0];
        w.cols = v->shape.dim[1];
        w.ld = w.base->shape.dim[1];
    } else {
        long k = v->shape.dim[0];
        w.rows = left ? 1 : k;
        w.cols = left ? k : 1;
        w.ld = left ? k : 1;
    }
    return w;
}

/* The view's data for sample s (or the whole batch). */
static const char *view_ptr(Emit *e, const View *w, bool per_sample)
{
    const char *b = buf_name(e, w->base);
    if (per_sample && w->base->batched)
        return fmt(e, "%s + s * %ld", b, shape_size(w->base->shape));
    return b;
}

static void gemm(Emit *e, int d, bool ta, bool tb, const char *m, const char *n, const char *k,
                 const char *alpha, const char *a, long lda, const char *b, long ldb,
                 const char *beta, const char *c, long ldc)
{
    line(e, d, "%s(%d, %d, %s, %s, %s, %s, %s, %ld, %s, %ld, %s, %s, %ld);", gemm_fn(e), ta, tb, m,
         n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* y = a · b over the batch, as one gemm where the batch stacks, else one
 * gemm per sample (lower.c's one_gemm_over_batch() tells the two apart
 * the same way). With `mean`, y is batch_mean(a · b): per-sample gemms
 * accumulate alpha = 1/n into y. With `add`, y += a · b (beta = 1). */
static void matmul(Emit *e, Node *y, Node *mm, bool mean, bool add)
{
    View A = view_of(e, mm->in[0], true), B = view_of(e, mm->in[1], false);
    long M = A.rows, K = A.cols, N = B.cols;
    bool ab = A.base->batched, bb = B.base->batched;
    const char *Y = buf_name(e, y);
    const char *one = lit_str(e, 1), *zero = add ? one : lit_str(e, 0);
    const char *sM = fmt(e, "%ld", M), *sN = fmt(e, "%ld", N), *sK = fmt(e, "%ld", K);
    if (mean) {
        line(e, 1, "for (size_t s = 0; s < (size_t)n; s++)");
        gemm(e, 2, A.trans, B.trans, sM, sN, sK, inv_n(e), view_ptr(e, &A, true), A.ld,
             view_ptr(e, &B, true), B.ld, fmt(e, "s == 0 ? %s : %s", zero, one), Y, N);
    } else if (!ab && !bb) {
        gemm(e, 1, A.trans, B.trans, sM, sN, sK, one, view_ptr(e, &A, false), A.ld,
             view_ptr(e, &B, false), B.ld, zero, Y, N);
    } else if (ab && !A.trans && !bb) {
        /* samples of a stack as rows: Y (n·M × N) = A (n·M × K) · B */
        gemm(e, 1, false, B.trans, M == 1 ? "n" : fmt(e, "%ld * n", M), sN, sK, one,
             view_ptr(e, &A, false), A.ld, view_ptr(e, &B, false), B.ld, zero, Y, N);
    } else if (!ab && bb && N == 1) {
        /* y_s = A x_s for every s: Y (n × M) = X (n × K) · Aᵀ */
        gemm(e, 1, false, !A.trans, "n", sM, sK, one, view_ptr(e, &B, false), K,
             view_ptr(e, &A, false), A.ld, zero, Y, M);
    } else {
        line(e, 1, "for (size_t s = 0; s < (size_t)n; s++)");
        gemm(e, 2, A.trans, B.trans, sM, sN, sK, one, view_ptr(e, &A, true), A.ld,
             view_ptr(e, &B, true), B.ld, zero, fmt(e, "%s + s * %ld", Y, M * N), N);
    }
}

static void step_matmul(Emit *e, Node *y)
{
    comment(e, 1, equation(e, y));
    Node *a = y->in[0], *b = y->in[1];
    if (a->shape.rank == 1 && b->shape.rank == 1) {   /* dot product */
        int d = open_samples(e, y->batched);
        line(e, d, "%s acc = %s;", e->real, lit_str(e, 0));
        line(e, d, "for (size_t j = 0; j < %d; j++)", a->shape.dim[0]);
        line(e, d + 1, "acc += %s * %s;", elem(e, a, "s", "j").s, elem(e, b, "s", "j").s);
        line(e, d, "%s = acc;", elem(e, y, "s", "0").s);
        line(e, 1, "}");
        return;
    }
    matmul(e, y, y, false, false);
}

/* y = mm + bias, mm a virtual matrix product (lower.c's fuse_bias): each
 * of y's n rows starts as the bias, then the gemm adds mm (beta = 1). */
static void step_bias_gemm(Emit *e, Node *y, Node *mm, Node *bias)
{
    long size = shape_size(y->shape);
    comment(e, 1, equation(e, y));
    const char *Y = buf_name(e, y);
    line(e, 1, "for (size_t s = 0; s < (size_t)n; s++)");
    if (bias->op == OP_CONST) {
        line(e, 2, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, 3, "%s = %s;", elem(e, y, "s", "j").s, lit_str(e, bias->value));
    } else {
        line(e, 2, "memcpy(%s + s * %ld, %s, %ld * sizeof(%s));", Y, size, buf_name(e, bias),
             size, e->real);
    }
    matmul(e, y, mm, false, true);
}

/* The matrix product a bias is added to in y's own step, or NULL. */
static Node *bias_gemm_of(const Emit *e, const Node *y, Node **bias)
{
    if (y->op != OP_ADD)
        return NULL;
    for (int k = 0; k < 2; k++)
        if (y->in[k]->op == OP_MATMUL && info(e, y->in[k])->mode[e->f] == NODE_VIRTUAL) {
            *bias = y->in[1 - k];
            return y->in[k];
        }
    return NULL;
}

static void step_transpose(Emit *e, Node *y)
{
    Node *x = y->in[0];
    long rows = y->shape.dim[0], cols = y->shape.dim[1];
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "for (size_t k = 0; k < %ld; k++)", rows);
    line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", cols);
    line(e, d + 2, "%s = %s;", elem(e, y, "s", fmt(e, "k * %ld + j", cols)).s,
         elem(e, x, "s", fmt(e, "j * %ld + k", rows)).s);
    line(e, 1, "}");
}

static void step_outer(Emit *e, Node *y)
{
    Node *a = y->in[0], *b = y->in[1];
    long rows = y->shape.dim[0], cols = y->shape.dim[1];
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "for (size_t k = 0; k < %ld; k++)", rows);
    line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", cols);
    line(e, d + 2, "%s = %s * %s;", elem(e, y, "s", fmt(e, "k * %ld + j", cols)).s,
         elem(e, a, "s", "k").s, elem(e, b, "s", "j").s);
    line(e, 1, "}");
}

static void step_kernel(Emit *e, Node *y, Node *v, bool mean);

static void step_batch_mean(Emit *e, Node *y)
{
    Node *x = y->in[0];
    long size = shape_size(y->shape);
    if (x->op == OP_OUTER && info(e, x)->mode[e->f] == NODE_VIRTUAL) {
        comment(e, 1, equation(e, y));
        /* mean of outer(a_s, b_s) = (1/n) Aᵀ B, A (n × m) and B (n × p) */
        Node *a = x->in[0], *b = x->in[1];
        long m = a->shape.dim[0], p = b->shape.dim[0];
        gemm(e, 1, true, false, fmt(e, "%ld", m), fmt(e, "%ld", p), "n", inv_n(e),
             buf_name(e, a), m, buf_name(e, b), p, lit_str(e, 0), buf_name(e, y), p);
        return;
    }
    if (x->op == OP_MATMUL && info(e, x)->mode[e->f] == NODE_VIRTUAL) {
        comment(e, 1, equation(e, y));
        matmul(e, y, x, true, false);
        return;
    }
    if (op_info[x->op].kind == OPK_KERNEL && info(e, x)->mode[e->f] == NODE_VIRTUAL) {
        step_kernel(e, y, x, true);
        return;
    }
    Ctx c;
    memset(&c, 0, sizeof c);
    c.mode = IX_NESTED;
    c.batched = true;
    c.size = size;
    c.depth = 3;
    char *pre = NULL, *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, &pre, &npre, &notes, &nnotes);
    Ex v = render(e, &c, x, false);
    const char *dest = buf_name(e, y);
    close_ctx(e, &c, &notes, 1);
    comment(e, 1, equation(e, y));
    if (size == 1) {
        line(e, 1, "{");
        line(e, 2, "%s acc = %s;", e->real, lit_str(e, 0));
        line(e, 2, "for (size_t s = 0; s < (size_t)n; s++) {");
        fputs(pre ? pre : "", e->out);
        line(e, 3, "acc += %s;", v.s);
        line(e, 2, "}");
        line(e, 2, "%s[0] = acc / (%s)n;", dest, e->real);
        line(e, 1, "}");
    } else {
        line(e, 1, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, 2, "%s[j] = %s;", dest, lit_str(e, 0));
        line(e, 1, "for (size_t s = 0; s < (size_t)n; s++) {");
        line(e, 2, "for (size_t j = 0; j < %ld; j++) {", size);
        fputs(pre ? pre : "", e->out);
        line(e, 3, "%s[j] += %s;", dest, v.s);
        line(e, 2, "}");
        line(e, 1, "}");
        line(e, 1, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, 2, "%s[j] /= (%s)n;", dest, e->real);
    }
    free(pre);
    free(notes);
}

/* ---------------------------------------------------------------- kernels */

/* The runtime kernel of an operation in the chosen precision:
 * "bp_conv2d" -> "bp_conv2d_f". */
static const char *kernel_fn(Emit *e, Op op)
{
    return fmt(e, "%s_%s", op_info[op].c_fn, e->dbl ? "d" : "f");
}

/* Where the scratch of y's step lies (shared workspace). */
static const char *scratch_ptr(Emit *e, const Node *y)
{
    const Buffer *b = &info(e, y)->scratch[e->f];
    if (b->pool != POOL_SHARED)
        die("a kernel step without scratch");
    e->ws_direct = true;
    const char *base = e->p->ws_batched ? fmt(e, "wsr + %ld * (size_t)n", e->p->ws_batched) : "wsr";
    return b->offset ? fmt(e, "%s + %ld", base, b->offset) : base;
}

/* The shape of a convolution, as the runtime's bp_conv2d_shape. */
static void conv_shape(Emit *e, int d, const Shape *x, const Shape *K, const Shape *y, int stride,
                       int pad)
{
    line(e, d, "const bp_conv2d_shape cs = {.c = %d, .h = %d, .w = %d, .o = %d, .kh = %d, .kw = %d,",
         x->dim[0], x->dim[1], x->dim[2], K->dim[0], K->dim[2], K->dim[3]);
    line(e, d, "                             .stride = %d, .pad = %d, .oh = %d, .ow = %d};", stride,
         pad, y->dim[1], y->dim[2]);
}

/* The operands of a kernel call: per-sample ones (stacked n deep when the
 * call runs over the batch) and shared ones. When every per-sample operand
 * is batched and every shared one is not, one call runs over the whole
 * batch; otherwise one call per sample. */
typedef struct {
    Node *node;
    bool per_sample;
} KArg;

static bool one_call(const KArg *args, int nargs, bool out_batched)
{
    for (int i = 0; i < nargs; i++) {
        if (!args[i].node)
            continue;
        if (args[i].per_sample ? args[i].node->batched != out_batched : args[i].node->batched)
            return false;
    }
    return true;
}

/* A kernel operand's pointer: its buffer, offset to sample s in a
 * per-sample loop. */
static const char *karg(Emit *e, Node *n, bool loop)
{
    if (!n)
        return "NULL";
    const char *b = buf_name(e, n);
    return loop && n->batched ? fmt(e, "%s + s * %ld", b, shape_size(n->shape)) : b;
}

/* y = a kernel of the runtime (convolution or pooling), or, with `mean`,
 * y = batch_mean(v) of a convolution's kernel or bias gradient v: one
 * call with alpha = 1/n, beta = 0, summing the samples' gradients. */
static void step_kernel(Emit *e, Node *y, Node *v, bool mean)
{
    const char *fnname = kernel_fn(e, v->op);
    Node *a = v->in[0], *b = v->nin > 1 ? v->in[1] : NULL, *c = v->nin > 2 ? v->in[2] : NULL;
    KArg args[3] = {{a, true}, {b, false}, {c, false}};
    const Shape *ys = &v->shape;
    bool out_batched = mean ? true : y->batched;
    bool conv = v->op == OP_CONV2D || v->op == OP_CONV2D_GRAD_INPUT ||
                v->op == OP_CONV2D_GRAD_KERNEL || v->op == OP_CONV2D_GRAD_BIAS;
    comment(e, 1, equation(e, y));
    if (conv)
        line(e, 1, "{");
    switch (v->op) {
    case OP_CONV2D:
        conv_shape(e, 2, &a->shape, &b->shape, ys, v->attr[0], v->attr[1]);
        break;
    case OP_CONV2D_GRAD_INPUT:   /* dy [o,oh,ow], K -> dx [c,h,w] */
        conv_shape(e, 2, ys, &b->shape, &a->shape, v->attr[0], v->attr[1]);
        break;
    case OP_CONV2D_GRAD_KERNEL:  /* dy, x [c,h,w] -> dK [o,c,kh,kw] */
        args[1].per_sample = true;
        conv_shape(e, 2, &b->shape, ys, &a->shape, v->attr[0], v->attr[1]);
        break;
    case OP_CONV2D_GRAD_BIAS: {  /* dy [o,oh,ow] -> db [o] */
        const Shape *dy = &a->shape;
        line(e, 2, "const bp_conv2d_shape cs = {.c = 1, .h = %d, .w = %d, .o = %d, .kh = 1, .kw = 1,",
             dy->dim[1], dy->dim[2], dy->dim[0]);
        line(e, 2, "                             .stride = 1, .pad = 0, .oh = %d, .ow = %d};",
             dy->dim[1], dy->dim[2]);
        break;
    }
    case OP_MAXPOOL2D_GRAD:
        args[1].per_sample = true;
        break;
    default:
        break;
    }
    bool once = one_call(args, 3, out_batched);
    /* a per-sample gradient of a shared kernel or bias is a sum over one
     * sample: the loop's own call with n = 1 */
    if (!mean && (v->op == OP_CONV2D_GRAD_KERNEL || v->op == OP_CONV2D_GRAD_BIAS) && y->batched)
        once = false;
    int d = conv ? 2 : 1;
    if (!once) {
        line(e, d, "for (size_t s = 0; s < (size_t)n; s++) {");
        d++;
    }
    const char *count = once && out_batched ? "n" : "1";
    const char *out = buf_name(e, y);
    if (!once && y->batched)
        out = fmt(e, "%s + s * %ld", out, shape_size(y->shape));
    const char *A = karg(e, a, !once), *B = karg(e, b, !once), *C = karg(e, c, !once);
    const char *one = lit_str(e, 1), *zero = lit_str(e, 0);
    const char *alpha = mean ? inv_n(e) : one;
    const char *beta = mean && !once ? fmt(e, "s == 0 ? %s : %s", zero, one) : zero;
    if (mean && !once)
        alpha = inv_n(e);
    int k = v->attr[0];
    switch (v->op) {
    case OP_CONV2D:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s, %s);", fnname, count, A, B, C, out, scratch_ptr(e, y));
        break;
    case OP_CONV2D_GRAD_INPUT:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s);", fnname, count, A, B, out, scratch_ptr(e, y));
        break;
    case OP_CONV2D_GRAD_KERNEL:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s, %s, %s);", fnname, count, A, B, alpha, beta, out,
             scratch_ptr(e, y));
        break;
    case OP_CONV2D_GRAD_BIAS:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s);", fnname, count, A, alpha, beta, out);
        break;
    case OP_MAXPOOL2D:
    case OP_AVGPOOL2D:
        line(e, d, "%s(%s, %d, %d, %d, %d, %s, %s);", fnname, count, a->shape.dim[0],
             a->shape.dim[1], a->shape.dim[2], k, A, out);
        break;
    case OP_MAXPOOL2D_GRAD:     /* x, dy -> dx */
        line(e, d, "%s(%s, %d, %d, %d, %d, %s, %s, %s);", fnname, count, a->shape.dim[0],
             a->shape.dim[1], a->shape.dim[2], k, A, B, out);
        break;
    case OP_AVGPOOL2D_GRAD:     /* dy -> dx [c, h, w] */
        line(e, d, "%s(%s, %d, %d, %d, %d, %s, %s);", fnname, count, ys->dim[0], ys->dim[1],
             ys->dim[2], k, A, out);
        break;
    default:
        die("not a kernel");
    }
    if (!once)
        line(e, d - 1, "}");
    if (conv)
        line(e, 1, "}");
}

static void emit_step(Emit *e, Node *y)
{
    switch (op_info[y->op].kind) {
    case OPK_LEAF:
    case OPK_ELEMENTWISE: {
        Node *bias = NULL, *mm = bias_gemm_of(e, y, &bias);
        if (mm)
            step_bias_gemm(e, y, mm, bias);
        else
            step_elementwise(e, y);
        break;
    }
    case OPK_LINALG:
        if (y->op == OP_MATMUL)
            step_matmul(e, y);
        else if (y->op == OP_TRANSPOSE)
            step_transpose(e, y);
        else
            step_outer(e, y);
        break;
    case OPK_REDUCE:
        if (y->op == OP_SUM)
            step_sum(e, y);
        else
            step_vector(e, y);
        break;
    case OPK_VECTOR:
        step_vector(e, y);
        break;
    case OPK_KERNEL:
        step_kernel(e, y, y, false);
        break;
    case OPK_BATCH:
        step_batch_mean(e, y);
        break;
    }
}

/* ---------------------------------------------------------------- epilogues */

/* dst[0 .. rows·size) = src (replicated over rows when src is shared),
 * divided by n when `per_n`; dst is base + offset, base an expression of
 * type real *. */
static void copy_out(Emit *e, int d, const char *base, long offset, Node *src, long size,
                     bool batched_dst, bool per_n)
{
    const char *count = batched_dst ? batch_count(e, size) : fmt(e, "%ld", size);
    const char *dst = offset ? fmt(e, "%s + %ld", base, offset) : base;
    const char *at_i = offset ? fmt(e, "%s[%ld + i]", base, offset) : fmt(e, "%s[i]", base);
    if (src->op == OP_CONST && src->value == 0) {
        line(e, d, "memset(%s, 0, %s * sizeof(%s));", dst, count, e->real);
        return;
    }
    const char *div = per_n ? fmt(e, " / (%s)n", e->real) : "";
    if (src->op == OP_CONST) {
        line(e, d, "for (size_t i = 0; i < %s; i++)", count);
        line(e, d + 1, "%s = %s%s;", at_i, lit_str(e, src->value), div);
        return;
    }
    long ssize = shape_size(src->shape);
    const char *b = buf_name(e, src);
    if (!per_n && src->batched == batched_dst && ssize == size) {
        line(e, d, "memcpy(%s, %s, %s * sizeof(%s));", dst, b, count, e->real);
    } else if (!per_n && !src->batched && batched_dst && ssize == size) {
        line(e, d, "for (size_t s = 0; s < (size_t)n; s++)");
        line(e, d + 1, "memcpy(%s + s * %ld, %s, %ld * sizeof(%s));", dst, size, b, size, e->real);
    } else if (src->batched == batched_dst && ssize == size) {
        line(e, d, "for (size_t i = 0; i < %s; i++)", count);
        line(e, d + 1, "%s = %s[i]%s;", at_i, b, div);
    } else if (batched_dst) {
        /* a shared value, or a scalar broadcast, to every row */
        line(e, d, "for (size_t s = 0; s < (size_t)n; s++)");
        line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, d + 2, "%s[%ss * %ld + j] = %s%s;", base, offset ? fmt(e, "%ld + ", offset) : "",
             size, elem(e, src, "s", ssize == 1 ? "0" : "j").s, div);
    } else {
        line(e, d, "for (size_t i = 0; i < %ld; i++)", size);
        line(e, d + 1, "%s = %s%s;", at_i, elem(e, src, "0", ssize == 1 ? "0" : "i").s, div);
    }
}

static void forward_return(Emit *e)
{
    Node *L = e->g->loss;
    const char *name = e->m->loss ? e->m->loss->name : "loss";
    if (!L->batched) {
        comment(e, 1, comment_text(e, fmt(e, "the loss %s, shared by every sample", name)));
        line(e, 1, "return %s;", elem(e, L, "0", "0").s);
        return;
    }
    comment(e, 1, comment_text(e, fmt(e, "the batch loss: the mean of %s over the samples", name)));
    line(e, 1, "double acc = 0;");
    line(e, 1, "for (size_t s = 0; s < (size_t)n; s++)");
    line(e, 2, "acc += %s;", elem(e, L, "s", "0").s);
    line(e, 1, "return (%s)(acc / n);", e->real);
}

static void backward_outputs(Emit *e)
{
    Model *m = e->m;
    const char *loss = m->loss ? m->loss->name : "L";
    long offset = 0;
    for (int i = 0; i < m->nparams; i++) {
        Node *d = e->g->grad_params[i];
        long size = shape_size(m->params[i]->shape);
        const char *what = comment_text(e, fmt(e, "d%s/d%s", loss, m->params[i]->name));
        const char *dst = offset ? fmt(e, "grad + %ld", offset) : "grad";
        if (!d) {
            comment(e, 1, fmt(e, "%s: frozen, no gradient", what));
            line(e, 1, "memset(%s, 0, %ld * sizeof(%s));", dst, size, e->real);
        } else if (d->op != OP_CONST && info(e, d)->mode[PF_BACKWARD] == NODE_BUFFER &&
                   info(e, d)->buf[PF_BACKWARD].pool == POOL_GRAD &&
                   info(e, d)->buf[PF_BACKWARD].offset == offset) {
            /* computed in place */
        } else {
            comment(e, 1, d->op == OP_CONST && d->value == 0 ? fmt(e, "%s = 0", what) : what);
            copy_out(e, 1, "grad", offset, d, size, false, false);
        }
        offset += size;
    }
    for (int k = 0; k < m->ninputs; k++) {
        Node *d = e->g->grad_inputs[k];
        if (!d)
            continue;
        comment(e, 1, comment_text(e, fmt(e, "d%s/d%s, row s scaled by 1/n (the batch mean)", loss,
                                          m->inputs[k]->name)));
        line(e, 1, "if (grad_inputs != NULL && grad_inputs[%d] != NULL) {", k);
        copy_out(e, 2, fmt(e, "grad_inputs[%d]", k), 0, d, shape_size(m->inputs[k]->shape), true,
                 true);
        line(e, 1, "}");
    }
}

static void predict_outputs(Emit *e)
{
    Model *m = e->m;
    for (int j = 0; j < m->noutputs; j++) {
        comment(e, 1, comment_text(e, fmt(e, "output %s", m->outputs[j]->name)));
        copy_out(e, 1, fmt(e, "outputs[%d]", j), 0, e->g->output_nodes[j],
                 shape_size(m->outputs[j]->shape), true, false);
    }
}

/* ---------------------------------------------------------------- functions */

static const char *fn_signature(Emit *e, PlanFn f)
{
    const char *r = e->real, *M = e->M;
    switch (f) {
    case PF_FORWARD:
        return fmt(e, "%s %s_forward(const %s *theta, const %s *const inputs[], int n, void *ws)",
                   r, M, r, r);
    case PF_BACKWARD:
        return fmt(e, "void %s_backward(const %s *theta, const %s *const inputs[], int n, void *ws,\n"
                      "    %s *grad, %s *const grad_inputs[])", M, r, r, r, r);
    default:
        return fmt(e, "void %s_predict(const %s *theta, const %s *const inputs[], int n, void *ws,\n"
                      "    %s *const outputs[])", M, r, r, r);
    }
}

static long param_offset(const Model *m, int index)
{
    long offset = 0;
    for (int i = 0; i < index; i++)
        offset += shape_size(m->params[i]->shape);
    return offset;
}

static void declare(Emit *e, FILE *out, Node *n)
{
    const char *r = e->real, *name = e->cname[n->id];
    if (n->op == OP_INPUT) {
        fprintf(out, "    const %s *const %s = inputs[%d];\n", r, name, n->index);
        return;
    }
    if (n->op == OP_PARAM) {
        long off = param_offset(e->m, n->index);
        fprintf(out, "    const %s *const %s = theta%s;\n", r, name,
                off ? fmt(e, " + %ld", off) : "");
        return;
    }
    const NodeInfo *in = info(e, n);
    Buffer b = in->mode[e->f] == NODE_BUFFER ? in->buf[e->f] : in->buf[PF_FORWARD];
    const char *where = "";
    switch (b.pool) {
    case POOL_BATCHED:
        where = b.offset ? fmt(e, "wsr + %ld * (size_t)n", b.offset) : "wsr";
        break;
    case POOL_SHARED:
        where = e->p->ws_batched ? fmt(e, "wsr + %ld * (size_t)n", e->p->ws_batched) : "wsr";
        if (b.offset)
            where = fmt(e, "%s + %ld", where, b.offset);
        break;
    case POOL_GRAD:
        where = b.offset ? fmt(e, "grad + %ld", b.offset) : "grad";
        break;
    case POOL_NONE:
        die("a buffer without a place");
    }
    fprintf(out, "    %s *const %s = %s;\n", r, name, where);
}

static void emit_function(Emit *e, FILE *out, PlanFn f, const char *doc)
{
    const Plan *p = e->p;
    e->f = f;
    e->ws_direct = false;
    memset(e->used, 0, sizeof(bool) * (size_t)(e->g->nnodes + 1));
    char *body = NULL;
    size_t nbody = 0;
    e->out = open_memstream(&body, &nbody);
    if (!e->out)
        die("out of memory");
    if (e->found && f != PF_BACKWARD)
        line(e, 1, "bp_nonfinite_clear(%s);", e->found);
    for (int k = 0; k < p->nsteps[f]; k++) {
        emit_step(e, p->steps[f][k]);
        if (e->found)
            check_step(e, p->steps[f][k]);
    }
    if (f == PF_FORWARD)
        forward_return(e);
    else if (f == PF_BACKWARD)
        backward_outputs(e);
    else
        predict_outputs(e);
    fclose(e->out);

    fprintf(out, "%s\n%s\n{\n", doc, fn_signature(e, f));
    bool ws_used = false;
    for (int id = 0; id < e->g->nnodes; id++) {
        Node *n = e->g->nodes[id];
        if (!e->used[id] || is_leaf(n))
            continue;
        const NodeInfo *in = info(e, n);
        Pool pool = in->mode[f] == NODE_BUFFER ? in->buf[f].pool : in->buf[PF_FORWARD].pool;
        if (pool == POOL_BATCHED || pool == POOL_SHARED)
            ws_used = true;
    }
    if (e->found)
        fprintf(out, "    bp_nonfinite *const %s = (bp_nonfinite *)ws;\n", e->found);
    if ((ws_used || e->ws_direct) && e->found)   /* the record comes first */
        fprintf(out, "    %s *const wsr = (%s *)((char *)ws + BP_NONFINITE_BYTES);\n", e->real,
                e->real);
    else if (ws_used || e->ws_direct)
        fprintf(out, "    %s *const wsr = (%s *)ws;\n", e->real, e->real);
    for (int k = 0; k < e->m->ninputs; k++)
        if (e->used[e->g->input_nodes[k]->id])
            declare(e, out, e->g->input_nodes[k]);
    for (int k = 0; k < e->m->nparams; k++)
        if (e->used[e->g->param_nodes[k]->id])
            declare(e, out, e->g->param_nodes[k]);
    for (int id = 0; id < e->g->nnodes; id++)
        if (e->used[id] && !is_leaf(e->g->nodes[id]))
            declare(e, out, e->g->nodes[id]);
    fputs("    (void)theta;\n    (void)inputs;\n    (void)n;\n    (void)ws;\n", out);
    if (e->found)
        fprintf(out, "    (void)%s;\n", e->found);
    if (f == PF_BACKWARD)
        fputs("    (void)grad;\n    (void)grad_inputs;\n", out);
    if (f == PF_PREDICT)
        fputs("    (void)outputs;\n", out);
    fputs("\n", out);
    fwrite(body, 1, nbody, out);
    fputs("}\n\n", out);
    free(body);
}

/* ---------------------------------------------------------------- init */

static void emit_init(Emit *e, FILE *out)
{
    Model *m = e->m;
    const char *r = e->real;
    int rs = e->dbl ? 8 : 4;
    fprintf(out, "/* Applies every parameter's INIT, in declaration order, with one generator\n"
                 " * seeded by `seed`. */\n");
    fprintf(out, "void %s_init(%s *theta, unsigned long long seed)\n{\n", e->M, r);
    fputs("    bp_rng rng;\n    bp_rng_seed(&rng, seed);\n    (void)theta;\n", out);
    long off = 0;
    for (int i = 0; i < m->nparams; i++) {
        Symbol *s = m->params[i];
        Init init = s->stmt->init;
        long size = shape_size(s->shape);
        /* fan-out d1 and fan-in d2: [d1, d2] as W in W·x; a vector or scalar
         * counts its size for both; rank 3 and 4 count d1·r and d2·r, r the
         * product of the other dimensions (as PyTorch counts a kernel) */
        double r = s->shape.rank > 2 ? (double)size / s->shape.dim[0] / s->shape.dim[1] : 1;
        double d1 = s->shape.rank >= 2 ? s->shape.dim[0] * r : (double)size;
        double d2 = s->shape.rank >= 2 ? s->shape.dim[1] * r : (double)size;
        const char *dst = off ? fmt(e, "theta + %ld", off) : "theta";
        const char *what = NULL, *call = NULL;
        switch (init.kind) {
        case INIT_DEFAULT:
            if (s->shape.rank >= 2) {
                what = fmt(e, "default for rank %d: normal(0, 1/sqrt(%g))", s->shape.rank, d2);
                call = fmt(e, "bp_fill_normal(&rng, %s, %d, %ld, 0.0, %s)", dst, rs, size,
                           dlit(e, 1 / sqrt(d2)));
            } else {
                what = "default: zeros";
                call = fmt(e, "bp_fill_value(%s, %d, %ld, 0.0)", dst, rs, size);
            }
            break;
        case INIT_ZEROS:
            what = "zeros";
            call = fmt(e, "bp_fill_value(%s, %d, %ld, 0.0)", dst, rs, size);
            break;
        case INIT_ONES:
            what = "ones";
            call = fmt(e, "bp_fill_value(%s, %d, %ld, 1.0)", dst, rs, size);
            break;
        case INIT_VALUE:
            what = fmt(e, "%.17g", init.a);
            call = fmt(e, "bp_fill_value(%s, %d, %ld, %s)", dst, rs, size, dlit(e, init.a));
            break;
        case INIT_NORMAL:
            what = fmt(e, "normal(%.17g, %.17g)", init.a, init.b);
            call = fmt(e, "bp_fill_normal(&rng, %s, %d, %ld, %s, %s)", dst, rs, size,
                       dlit(e, init.a), dlit(e, init.b));
            break;
        case INIT_UNIFORM:
            what = fmt(e, "uniform(%.17g, %.17g)", init.a, init.b);
            call = fmt(e, "bp_fill_uniform(&rng, %s, %d, %ld, %s, %s)", dst, rs, size,
                       dlit(e, init.a), dlit(e, init.b));
            break;
        case INIT_XAVIER: {
            double lim = sqrt(6.0 / (d1 + d2));
            what = fmt(e, "xavier: uniform(-sqrt(6/(%g+%g)), +sqrt(6/(%g+%g)))", d1, d2, d1, d2);
            call = fmt(e, "bp_fill_uniform(&rng, %s, %d, %ld, %s, %s)", dst, rs, size,
                       dlit(e, -lim), dlit(e, lim));
            break;
        }
        case INIT_HE:
            what = fmt(e, "he: normal(0, sqrt(2/%g))", d2);
            call = fmt(e, "bp_fill_normal(&rng, %s, %d, %ld, 0.0, %s)", dst, rs, size,
                       dlit(e, sqrt(2.0 / d2)));
            break;
        }
        fprintf(out, "    /* %s */\n", comment_text(e, fmt(e, "%s: %s", s->name, what)));
        fprintf(out, "    %s;\n", call);
        off += size;
    }
    fputs("}\n\n", out);
}

/* ---------------------------------------------------------------- --selftest, --check-finite */

/* text as a C string literal: quotes and backslashes escaped, and every
 * byte outside printable ASCII (the `·` of a matrix product) and `?` (no
 * trigraphs) written in octal. */
static const char *c_string(Emit *e, const char *text)
{
    size_t len = strlen(text);
    char *s = arena_alloc(e->a, len * 4 + 3);
    size_t k = 0;
    s[k++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            s[k++] = '\\';
            s[k++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f || c == '?') {
            k += (size_t)sprintf(s + k, "\\%03o", c);
        } else {
            s[k++] = (char)c;
        }
    }
    s[k++] = '"';
    s[k] = '\0';
    return s;
}

static const char *function_name(PlanFn f)
{
    return f == PF_FORWARD ? "forward" : f == PF_BACKWARD ? "backward" : "predict";
}

/* The name a value is reported by: the gradient it is (`dL/dW`, also
 * when the step's own name is its operation's, `batch_mean_17`), else its
 * .net name or adjoint label, else its C name. */
static const char *value_name(Emit *e, const Node *n)
{
    const char *loss = e->m->loss ? e->m->loss->name : "L";
    for (int i = 0; i < e->m->nparams; i++)
        if (e->g->grad_params[i] == n)
            return fmt(e, "d%s/d%s", loss, e->m->params[i]->name);
    for (int k = 0; k < e->m->ninputs; k++)
        if (e->g->grad_inputs[k] == n)
            return fmt(e, "d%s/d%s", loss, e->m->inputs[k]->name);
    return n->name ? n->name : e->cname[n->id];
}

/* --check-finite, after a named value computed inside a loop (the local
 * just defined): notes it when it is not finite, at its sample and
 * element in the loop's indexing. */
static void check_local(Emit *e, Ctx *c, Node *n)
{
    long size = shape_size(n->shape);
    const char *sample = "-1", *index = "0";
    if (c->mode == IX_FLAT && n->batched) {
        sample = size == 1 ? "(long)i" : fmt(e, "(long)(i / %ld)", size);
        index = size == 1 ? "0" : fmt(e, "(long)(i %% %ld)", size);
    } else if (c->mode == IX_FLAT) {
        index = size == 1 ? "0" : "(long)i";
    } else if (c->mode == IX_NESTED) {
        sample = n->batched ? "(long)s" : "-1";
        index = size == 1 ? "0" : "(long)j";
    }
    const char *name = e->cname[n->id];
    indent_to(c->pre, c->depth);
    fprintf(c->pre, "if (!isfinite(%s))\n", name);
    indent_to(c->pre, c->depth + 1);
    fprintf(c->pre, "bp_nonfinite_note(%s, \"%s\", %s, %s,\n", e->found, function_name(e->f),
            c_string(e, value_name(e, n)), c_string(e, equation(e, n)));
    indent_to(c->pre, c->depth + 1);
    fprintf(c->pre, "                  (double)%s, %s, %s);\n", name, sample, index);
}

/* --check-finite, after a step: every value it wrote. */
static void check_step(Emit *e, Node *y)
{
    line(e, 1, "bp_nonfinite_scan(%s, \"%s\", %s,", e->found, function_name(e->f),
         c_string(e, value_name(e, y)));
    line(e, 1, "                  %s,", c_string(e, equation(e, y)));
    line(e, 1, "                  %s, %d, %s, %ld);", buf_name(e, y), e->dbl ? 8 : 4,
         y->batched ? "n" : "0", shape_size(y->shape));
}

/* --check-finite: the workspace starts with the record (BP_NONFINITE_BYTES),
 * and M_nonfinite reads it. Continues M_workspace_size after its first
 * line. */
static void nonfinite_workspace_size(Emit *e, FILE *out)
{
    fprintf(out, "    return (%ld * rows + %ld) * sizeof(%s) + BP_NONFINITE_BYTES;\n}\n\n",
            e->p->ws_batched, e->p->ws_shared, e->real);
    fprintf(out, "/* --check-finite: the first value forward, backward or predict wrote that\n"
                 " * was NaN or infinite since the last forward or predict, or NULL. It\n"
                 " * lives at the start of ws (BP_NONFINITE_BYTES). */\n"
                 "const bp_nonfinite *%s_nonfinite(const void *ws)\n{\n"
                 "    const bp_nonfinite *found = (const bp_nonfinite *)ws;\n"
                 "    return found->function != NULL ? found : NULL;\n}\n\n", e->M);
}

static void nonfinite_header(Emit *e, FILE *h)
{
    fprintf(h, "/* --check-finite: forward, backward and predict check every value they\n"
               " * write; this is the first NaN or infinity since the last forward or\n"
               " * predict (by its .net name), or NULL. bp_nonfinite_message() words it. */\n");
    fprintf(h, "const bp_nonfinite *%s_nonfinite(const void *ws);\n\n", e->M);
}

/* The header's part of --selftest: the scratch size (as the runtime's
 * bp_selftest_scratch_size computes it), the tolerance and the function. */
static void selftest_header(Emit *e, FILE *h)
{
    Model *m = e->m;
    const char *M = e->M, *r = e->real;
    long wrt = 0;
    for (int k = 0; k < m->ninputs; k++)
        if (m->inputs[k]->wrt)
            wrt += shape_size(m->inputs[k]->shape);
    int slots = 2 * (m->ninputs ? m->ninputs : 1);
    fprintf(h, "/* --selftest: %s_selftest checks the gradients against finite differences\n"
               " * in scratch of %s_SELFTEST_SCRATCH_SIZE(n) bytes for a batch of n: two\n"
               " * arrays of pointers (inputs, input gradients; %d each), then a copy of\n"
               " * theta, the gradient and, for the wrt inputs, a copy and a gradient\n"
               " * (values per sample: %ld). A correct backward scores at most\n"
               " * %s_SELFTEST_TOLERANCE. */\n",
            M, M, m->ninputs ? m->ninputs : 1, wrt, M);
    fprintf(h, "#define %s_SELFTEST_SCRATCH_SIZE(n) \\\n"
               "    ((%d * sizeof(void *) + 15) / 16 * 16 + \\\n"
               "     (2 * (size_t)%s_NUM_PARAMS + %ld * (size_t)(n)) * sizeof(%s))\n",
            M, slots, M, 2 * wrt, r);
    fprintf(h, "#define %s_SELFTEST_TOLERANCE %s\n", M, e->dbl ? "1e-6" : "1e-2");
    fprintf(h, "double %s_selftest(const %s *theta, const %s *const inputs[], int n, void *ws,\n"
               "                  void *scratch, bp_selftest_report *report);\n\n", M, r, r);
}

/* M_selftest: the runtime's bp_selftest on this model, every entry. */
static void emit_selftest(Emit *e, FILE *out)
{
    Model *m = e->m;
    const char *M = e->M, *r = e->real;
    int nin = m->ninputs ? m->ninputs : 1;
    fprintf(out, "\n/* ---- --selftest ---- */\n\n");
    fprintf(out,
        "/* Checks %s_backward against central differences of %s_forward at (theta,\n"
        " * inputs), batch n, for every entry of every parameter and wrt input.\n"
        " * Returns the worst relative error |g - fd| / max(1, |g|, |fd|) (at most\n"
        " * %s_SELFTEST_TOLERANCE when backward is right), HUGE_VAL when the\n"
        " * arguments are unusable; report (may be NULL) says where, or why. ws:\n"
        " * %s_workspace_size(n) bytes; scratch: %s_SELFTEST_SCRATCH_SIZE(n) bytes.\n"
        " * Allocates nothing; theta and inputs are only read. */\n", M, M, M, M, M);
    fprintf(out, "double %s_selftest(const %s *theta, const %s *const inputs[], int n, void *ws,\n"
                 "    void *scratch, bp_selftest_report *report)\n{\n", M, r, r);
    fprintf(out, "    const void *in[%d];\n", nin);
    if (!m->ninputs)
        fputs("    in[0] = NULL;\n", out);
    for (int k = 0; k < m->ninputs; k++)
        fprintf(out, "    in[%d] = inputs != NULL ? (const void *)inputs[%d] : NULL;\n", k, k);
    fputs("    bp_selftest_report local;\n"
          "    bp_selftest_report *const r = report != NULL ? report : &local;\n", out);
    fprintf(out, "    if (bp_selftest(&%s_model, theta, inputs != NULL ? in : NULL, n, ws, scratch,\n"
                 "                    0.0, 0, r) != BP_OK)\n"
                 "        return HUGE_VAL;\n"
                 "    return r->worst;\n}\n", M);
}

/* ---------------------------------------------------------------- header */

static void emit_header(Emit *e, FILE *h)
{
    Model *m = e->m;
    const char *M = e->M, *r = e->real;
    const char *file = m->path ? m->path : "a model";
    fprintf(h, "/* Generated by bpgen %s from %s — do not edit. */\n", BPGEN_VERSION,
            comment_text(e, file));
    fprintf(h, "#ifndef BPGEN_%s_H\n#define BPGEN_%s_H\n\n", M, M);
    fputs("#include <stddef.h>\n\n#include \"bp.h\"\n\n", h);
    /* generated code and the runtime must agree on bp_model's layout; #error
     * cannot print a macro's value, so the second message names the macro */
    fprintf(h, "#if !defined(BP_ABI_VERSION)\n"
               "#error \"generated by bpgen %s for runtime ABI %d, but this bp.h is of ABI 1: "
               "use the bp.h and libbp.a of bpgen %s, or regenerate with the bpgen of this bp.h\"\n"
               "#elif BP_ABI_VERSION != %d\n"
               "#error \"generated by bpgen %s for runtime ABI %d, but this bp.h has another ABI "
               "(BP_ABI_VERSION): use the bp.h and libbp.a of bpgen %s, or regenerate with the "
               "bpgen of this bp.h\"\n"
               "#endif\n\n", BPGEN_VERSION, EMIT_ABI_VERSION, BPGEN_VERSION, EMIT_ABI_VERSION,
            BPGEN_VERSION, EMIT_ABI_VERSION, BPGEN_VERSION);
    fputs("#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n", h);
    fprintf(h, "/* Model %s, in %s: theta holds every parameter, row-major, in\n"
               " * declaration order; inputs[k] holds n samples of input k. */\n", M, r);
    fprintf(h, "#define %s_NUM_PARAMS %ld\n", M, param_offset(m, m->nparams));
    fprintf(h, "#define %s_NUM_INPUTS %d\n", M, m->ninputs);
    fprintf(h, "#define %s_NUM_OUTPUTS %d\n\n", M, m->noutputs);
    fputs("/* parameters: offset and length in theta (and in grad) */\n", h);
    for (int i = 0; i < m->nparams; i++) {
        fprintf(h, "#define %s_%s_OFFSET %ld\n", M, m->params[i]->name, param_offset(m, i));
        fprintf(h, "#define %s_%s_SIZE %ld\n", M, m->params[i]->name,
                shape_size(m->params[i]->shape));
    }
    fputs("/* inputs: index in inputs[] and values per sample */\n", h);
    for (int k = 0; k < m->ninputs; k++) {
        fprintf(h, "#define %s_%s_INDEX %d\n", M, m->inputs[k]->name, k);
        fprintf(h, "#define %s_%s_SIZE %ld\n", M, m->inputs[k]->name,
                shape_size(m->inputs[k]->shape));
    }
    if (m->noutputs)
        fputs("/* outputs: values per sample (outputs[j] is the j-th declared) */\n", h);
    for (int j = 0; j < m->noutputs; j++) {
        Symbol *s = m->outputs[j];
        bool seen = s->kind == SYM_INPUT || s->kind == SYM_PARAM;
        for (int k = 0; k < j; k++)
            seen = seen || m->outputs[k] == s;
        if (!seen)
            fprintf(h, "#define %s_%s_SIZE %ld\n", M, s->name, shape_size(s->shape));
    }
    fputs("\n", h);
    fprintf(h, "void   %s_init(%s *theta, unsigned long long seed);\n", M, r);
    fprintf(h, "size_t %s_workspace_size(int n);\n", M);
    fprintf(h, "%s %s_forward(const %s *theta, const %s *const inputs[], int n, void *ws);\n",
            r, M, r, r);
    fprintf(h, "void   %s_backward(const %s *theta, const %s *const inputs[], int n, void *ws,\n"
               "                   %s *grad, %s *const grad_inputs[]);\n", M, r, r, r, r);
    fprintf(h, "void   %s_predict(const %s *theta, const %s *const inputs[], int n, void *ws,\n"
               "                  %s *const outputs[]);\n", M, r, r, r);
    fprintf(h, "extern const bp_model %s_model;\n\n", M);
    if (e->p->opt.selftest)
        selftest_header(e, h);
    if (e->found)
        nonfinite_header(e, h);
    fputs("#ifdef __cplusplus\n}\n#endif\n\n", h);
    fprintf(h, "#endif\n");
}

/* ---------------------------------------------------------------- bp_model */

static void tensor_table(Emit *e, FILE *out, const char *what, Symbol **syms, int count,
                         bool params)
{
    if (!count)
        return;
    fprintf(out, "static const bp_tensor_info %s_%s_info[%d] = {\n", e->M, what, count);
    long off = 0;
    for (int i = 0; i < count; i++) {
        Symbol *s = syms[i];
        long size = shape_size(s->shape);
        /* bp_tensor_info.dims has 4 entries (runtime ABI 2), unused ones 1 */
        int dims[4] = {1, 1, 1, 1};
        int have = (int)(sizeof s->shape.dim / sizeof s->shape.dim[0]);
        for (int d = 0; d < s->shape.rank && d < have && d < 4; d++)
            dims[d] = s->shape.dim[d];
        fprintf(out, "    {\"%s\", %d, {%d, %d, %d, %d}, %ld, %ld, %d, %d},\n", s->name,
                s->shape.rank, dims[0], dims[1], dims[2], dims[3], size, params ? off : 0L,
                params && s->stmt && s->stmt->frozen ? 1 : 0, !params && s->wrt ? 1 : 0);
        off += size;
    }
    fputs("};\n", out);
}

static void emit_model(Emit *e, FILE *out)
{
    Model *m = e->m;
    const char *M = e->M, *r = e->real;
    int nin = m->ninputs ? m->ninputs : 1, nout = m->noutputs ? m->noutputs : 1;
    fputs("/* ---- the model descriptor: untyped wrappers for the runtime ---- */\n\n", out);
    tensor_table(e, out, "param", m->params, m->nparams, true);
    tensor_table(e, out, "input", m->inputs, m->ninputs, false);
    tensor_table(e, out, "output", m->outputs, m->noutputs, false);
    fputs("\n", out);

    fprintf(out, "static void %s_init_any(void *theta, unsigned long long seed)\n{\n"
                 "    %s_init((%s *)theta, seed);\n}\n\n", M, M, r);

    /* the typed array of input pointers every wrapper starts with */
    char *conv = NULL;
    size_t nconv = 0;
    FILE *cv = open_memstream(&conv, &nconv);
    if (!cv)
        die("out of memory");
    fprintf(cv, "    const %s *in[%d];\n", r, nin);
    if (!m->ninputs)
        fputs("    in[0] = NULL;\n    (void)inputs;\n", cv);
    for (int k = 0; k < m->ninputs; k++)
        fprintf(cv, "    in[%d] = (const %s *)inputs[%d];\n", k, r, k);
    fclose(cv);

    fprintf(out, "static double %s_forward_any(const void *theta, const void *const inputs[], int n,\n"
                 "    void *ws)\n{\n%s", M, conv);
    fprintf(out, "    return (double)%s_forward((const %s *)theta, in, n, ws);\n}\n\n", M, r);

    fprintf(out, "static void %s_backward_any(const void *theta, const void *const inputs[], int n,\n"
                 "    void *ws, void *grad, void *const grad_inputs[])\n{\n%s", M, conv);
    fprintf(out, "    %s *gi[%d];\n", r, nin);
    if (!m->ninputs)
        fputs("    gi[0] = NULL;\n", out);
    for (int k = 0; k < m->ninputs; k++)
        fprintf(out, "    gi[%d] = grad_inputs != NULL ? (%s *)grad_inputs[%d] : NULL;\n", k, r, k);
    fprintf(out, "    %s_backward((const %s *)theta, in, n, ws, (%s *)grad,\n"
                 "        grad_inputs != NULL ? gi : NULL);\n}\n\n", M, r, r);

    fprintf(out, "static void %s_predict_any(const void *theta, const void *const inputs[], int n,\n"
                 "    void *ws, void *const outputs[])\n{\n%s", M, conv);
    fprintf(out, "    %s *out[%d];\n", r, nout);
    if (!m->noutputs)
        fputs("    out[0] = NULL;\n    (void)outputs;\n", out);
    for (int j = 0; j < m->noutputs; j++)
        fprintf(out, "    out[%d] = (%s *)outputs[%d];\n", j, r, j);
    fprintf(out, "    %s_predict((const %s *)theta, in, n, ws, out);\n}\n\n", M, r);
    free(conv);

    fprintf(out, "const bp_model %s_model = {\n", M);
    fprintf(out, "    .abi_version = %d, /* BP_ABI_VERSION: checked by the header */\n",
            EMIT_ABI_VERSION);
    fprintf(out, "    .name = \"%s\",\n    .real_size = %d,\n", M, e->dbl ? 8 : 4);
    fprintf(out, "    .num_params = %s_NUM_PARAMS,\n    .num_param_tensors = %d,\n", M, m->nparams);
    fprintf(out, "    .params = %s,\n", m->nparams ? fmt(e, "%s_param_info", M) : "NULL");
    fprintf(out, "    .num_inputs = %d,\n    .inputs = %s,\n", m->ninputs,
            m->ninputs ? fmt(e, "%s_input_info", M) : "NULL");
    fprintf(out, "    .num_outputs = %d,\n    .outputs = %s,\n", m->noutputs,
            m->noutputs ? fmt(e, "%s_output_info", M) : "NULL");
    fprintf(out, "    .loss_name = \"%s\",\n", m->loss ? m->loss->name : "");
    fprintf(out, "    .init = %s_init_any,\n    .workspace_size = %s_workspace_size,\n", M, M);
    fprintf(out, "    .forward = %s_forward_any,\n    .backward = %s_backward_any,\n", M, M);
    fprintf(out, "    .predict = %s_predict_any,\n};\n", M);
}

/* ---------------------------------------------------------------- --main */

/* --main with --check-finite: the first value that was not finite, on
 * standard error (the values are printed all the same). */
static void main_report_nonfinite(Emit *e, FILE *out)
{
    fprintf(out, "    if (%s_nonfinite(ws) != NULL) {\n"
                 "        char why[512];\n"
                 "        bp_nonfinite_message(%s_nonfinite(ws), why, sizeof why);\n"
                 "        fprintf(stderr, \"%s: warning: %%s\\n\", why);\n"
                 "    }\n", e->M, e->M, e->M);
}

static void emit_main(Emit *e, FILE *out)
{
    Model *m = e->m;
    const char *M = e->M, *r = e->real;
    int nin = m->ninputs ? m->ninputs : 1, nout = m->noutputs ? m->noutputs : 1;
    const char *pf = e->dbl ? "%.17g" : "%.9g";
    fputs("\n/* ---- --main: parameters, n and n samples on stdin; loss, gradients and\n"
          " * outputs on stdout (CONTRACT section 5). Exit status 2 on bad input. ---- */\n\n", out);
    fprintf(out,
        "/* Reads the next whitespace-separated number into *v: 1 when one was read,\n"
        " * 0 at the end of the input, -1 when the next word is not a number. */\n"
        "static int %s_main_read(double *v, char *word, size_t cap)\n{\n"
        "    int c;\n"
        "    size_t len = 0;\n"
        "    do\n"
        "        c = getchar();\n"
        "    while (c == ' ' || c == '\\t' || c == '\\n' || c == '\\r' || c == '\\v' || c == '\\f');\n"
        "    if (c == EOF)\n"
        "        return 0;\n"
        "    while (c != EOF && c != ' ' && c != '\\t' && c != '\\n' && c != '\\r' && c != '\\v' &&\n"
        "           c != '\\f') {\n"
        "        if (len + 1 < cap)\n"
        "            word[len] = (char)c;\n"
        "        len++;\n"
        "        c = getchar();\n"
        "    }\n"
        "    if (len + 1 > cap) {\n"
        "        word[cap - 1] = '\\0';\n"
        "        return -1;\n"
        "    }\n"
        "    word[len] = '\\0';\n"
        "    char *end = NULL;\n"
        "    errno = 0;\n"
        "    *v = strtod(word, &end);\n"
        "    if (errno == ERANGE && (*v == HUGE_VAL || *v == -HUGE_VAL))\n"
        "        return -1; /* too large for a double */\n"
        "    return end == word + len ? 1 : -1;\n"
        "}\n\n", M);
    fprintf(out,
        "/* Reads count values into dst; `what` names them in messages. */\n"
        "static int %s_main_values(%s *dst, size_t count, const char *what)\n{\n"
        "    char word[512];\n"
        "    for (size_t i = 0; i < count; i++) {\n"
        "        double v = 0;\n"
        "        int got = %s_main_read(&v, word, sizeof word);\n"
        "        if (got == 0) {\n"
        "            fprintf(stderr, \"%s: error: input ends early: %%zu of %%zu values of %%s read\\n\",\n"
        "                    i, count, what);\n"
        "            return -1;\n"
        "        }\n"
        "        if (got < 0) {\n"
        "            fprintf(stderr, \"%s: error: '%%s' is not a number (in %%s)\\n\", word, what);\n"
        "            return -1;\n"
        "        }\n"
        "        dst[i] = (%s)v;\n"
        "    }\n"
        "    return 0;\n"
        "}\n\n", M, r, M, M, M, r);
    fprintf(out,
        "static void %s_main_print(const char *tag, const char *name, const %s *v, size_t count)\n{\n"
        "    printf(\"%%s %%s\", tag, name);\n"
        "    for (size_t i = 0; i < count; i++)\n"
        "        printf(\" %s\", (double)v[i]);\n"
        "    putchar('\\n');\n"
        "}\n\n", M, r, pf);

    fputs("int main(void)\n{\n", out);
    fputs("    int status = 2;\n", out);
    fprintf(out, "    const bp_model *const model = &%s_model;\n", M);
    fprintf(out, "    %s *theta = malloc(sizeof(%s) * (%s_NUM_PARAMS + 1));\n", r, r, M);
    fprintf(out, "    %s *grad = malloc(sizeof(%s) * (%s_NUM_PARAMS + 1));\n", r, r, M);
    fprintf(out, "    %s *data[%d] = {NULL};\n", r, nin);
    fprintf(out, "    const %s *in[%d] = {NULL};\n", r, nin);
    fprintf(out, "    %s *gi[%d] = {NULL};\n", r, nin);
    fprintf(out, "    %s *out[%d] = {NULL};\n", r, nout);
    fputs("    void *ws = NULL;\n", out);
    fputs("    char word[512];\n    double v = 0;\n    int n = 0;\n", out);
    fputs("    if (!theta || !grad)\n        goto out_of_memory;\n", out);
    fputs("    for (int p = 0; p < model->num_param_tensors; p++)\n"
          "        if (", out);
    fprintf(out, "%s_main_values(theta + model->params[p].offset, model->params[p].size,\n"
                 "                           model->params[p].name) != 0)\n"
                 "            goto done;\n", M);
    fprintf(out,
        "    int got = %s_main_read(&v, word, sizeof word);\n"
        "    if (got <= 0 || !(v >= 1 && v <= 1e9) || v != (double)(int)v) {\n"
        "        fprintf(stderr, \"%s: error: expected the batch size n (an integer >= 1) after the %%lu parameter values, found %%s\\n\",\n"
        "                (unsigned long)%s_NUM_PARAMS, got == 0 ? \"the end of the input\" : word);\n"
        "        goto done;\n"
        "    }\n"
        "    n = (int)v;\n", M, M, M);
    fputs("    for (int k = 0; k < model->num_inputs; k++) {\n"
          "        size_t count = model->inputs[k].size * (size_t)n;\n", out);
    fprintf(out, "        data[k] = malloc(sizeof(%s) * count);\n", r);
    fputs("        in[k] = data[k];\n"
          "        if (!data[k])\n            goto out_of_memory;\n"
          "        if (model->inputs[k].wrt) {\n", out);
    fprintf(out, "            gi[k] = malloc(sizeof(%s) * count);\n", r);
    fputs("            if (!gi[k])\n                goto out_of_memory;\n        }\n    }\n", out);
    fputs("    for (int k = 0; k < model->num_outputs; k++) {\n", out);
    fprintf(out, "        out[k] = malloc(sizeof(%s) * model->outputs[k].size * (size_t)n);\n", r);
    fputs("        if (!out[k])\n            goto out_of_memory;\n    }\n", out);
    fputs("    for (int s = 0; s < n; s++)\n"
          "        for (int k = 0; k < model->num_inputs; k++) {\n"
          "            size_t size = model->inputs[k].size;\n"
          "            char what[256];\n"
          "            snprintf(what, sizeof what, \"input %s of sample %d\", model->inputs[k].name, s + 1);\n", out);
    fprintf(out, "            if (%s_main_values(data[k] + (size_t)s * size, size, what) != 0)\n"
                 "                goto done;\n        }\n", M);
    fprintf(out,
        "    got = %s_main_read(&v, word, sizeof word);\n"
        "    if (got != 0) {\n"
        "        fprintf(stderr, \"%s: error: unexpected '%%s' after the last sample\\n\", word);\n"
        "        goto done;\n"
        "    }\n", M, M);
    fprintf(out, "    ws = malloc(%s_workspace_size(n) + 1);\n", M);
    fputs("    if (!ws)\n        goto out_of_memory;\n", out);
    fprintf(out, "    %s loss = %s_forward(theta, in, n, ws);\n", r, M);
    fprintf(out, "    %s_backward(theta, in, n, ws, grad, gi);\n", M);
    if (e->found)
        main_report_nonfinite(e, out);
    fprintf(out, "    printf(\"loss %s\\n\", (double)loss);\n", pf);
    fputs("    for (int p = 0; p < model->num_param_tensors; p++)\n", out);
    fprintf(out, "        %s_main_print(\"grad\", model->params[p].name, grad + model->params[p].offset,\n"
                 "                      model->params[p].size);\n", M);
    fputs("    for (int k = 0; k < model->num_inputs; k++)\n"
          "        if (model->inputs[k].wrt)\n", out);
    fprintf(out, "            %s_main_print(\"grad\", model->inputs[k].name, gi[k],\n"
                 "                          model->inputs[k].size * (size_t)n);\n", M);
    fprintf(out, "    %s_predict(theta, in, n, ws, out);\n", M);
    if (e->found)
        main_report_nonfinite(e, out);
    fputs("    for (int k = 0; k < model->num_outputs; k++)\n", out);
    fprintf(out, "        %s_main_print(\"output\", model->outputs[k].name, out[k],\n"
                 "                      model->outputs[k].size * (size_t)n);\n", M);
    fputs("    status = fflush(stdout) == 0 && !ferror(stdout) ? 0 : 2;\n", out);
    fputs("    goto done;\nout_of_memory:\n", out);
    fprintf(out, "    fprintf(stderr, \"%s: error: out of memory\\n\");\n", M);
    fputs("done:\n", out);
    fprintf(out, "    for (int k = 0; k < %d; k++) {\n"
                 "        free(data[k]);\n        free(gi[k]);\n    }\n"
                 "    for (int k = 0; k < %d; k++)\n        free(out[k]);\n", nin, nout);
    fputs("    free(ws);\n    free(grad);\n    free(theta);\n    return status;\n}\n", out);
}

/* ---------------------------------------------------------------- helpers */

static void emit_helpers(Emit *e, FILE *out)
{
    const char *r = e->real, *M = e->M;
    const char *one = lit_str(e, 1), *zero = lit_str(e, 0);
    if (e->need_sigmoid)
        fprintf(out,
            "/* 1 / (1 + exp(-x)), without overflow for large |x| */\n"
            "static %s %s_sigmoid(%s x)\n{\n"
            "    if (x >= %s)\n        return %s / (%s + %s(-x));\n"
            "    const %s e = %s(x);\n    return e / (%s + e);\n}\n\n",
            r, M, r, zero, one, one, fn(e, "exp"), r, fn(e, "exp"), one);
    if (e->need_softplus)
        fprintf(out,
            "/* log(1 + exp(x)), without overflow for large |x| */\n"
            "static %s %s_softplus(%s x)\n{\n"
            "    return x > %s ? x + %s(%s(-x)) : %s(%s(x));\n}\n\n",
            r, M, r, zero, fn(e, "log1p"), fn(e, "exp"), fn(e, "log1p"), fn(e, "exp"));
}

/* ---------------------------------------------------------------- entry */

/* Gives every node the functions name a C name (leaves first, so that
 * inputs and parameters keep theirs), and every buffer without a .net
 * name a name for comments (print.c shows named nodes by name): its
 * label (`dL/dh`), else its C name. Labelled nodes fused into a loop are
 * locals of that name, so comments name them too. */
static void assign_names(Emit *e)
{
    Graph *g = e->g;
    for (int id = 0; id < g->nnodes; id++)
        e->orig[id] = g->nodes[id]->name;
    for (int k = 0; k < e->m->ninputs; k++)
        e->cname[g->input_nodes[k]->id] = unique_name(e, e->m->inputs[k]->name);
    for (int k = 0; k < e->m->nparams; k++)
        e->cname[g->param_nodes[k]->id] = unique_name(e, e->m->params[k]->name);
    for (int id = 0; id < g->nnodes; id++) {
        Node *n = g->nodes[id];
        if (is_leaf(n))
            continue;
        const NodeInfo *in = &e->p->info[id];
        bool present = false, buffer = false;
        for (int f = 0; f < PF__COUNT; f++) {
            present = present || in->mode[f] != NODE_ABSENT;
            buffer = buffer || in->mode[f] == NODE_BUFFER;
        }
        if (!present)
            continue;
        e->cname[id] = make_cname(e, n);
        if (!n->name && n->op != OP_CONST && (buffer || n->label))
            n->name = n->label ? n->label : e->cname[id];
    }
}

bool emit_c(const Plan *p, FILE *c_out, FILE *h_out)
{
    Emit e;
    memset(&e, 0, sizeof e);
    e.p = p;
    e.g = p->graph;
    e.m = p->graph->model;
    e.a = p->arena;
    e.M = e.m->name;
    e.dbl = p->opt.precision == PREC_DOUBLE;
    e.real = e.dbl ? "double" : "float";
    size_t count = (size_t)e.g->nnodes + 1;
    e.cname = arena_alloc(e.a, sizeof(char *) * count);
    e.orig = arena_alloc(e.a, sizeof(char *) * count);
    e.used = arena_alloc(e.a, sizeof(bool) * count);
    assign_names(&e);
    if (p->opt.check_finite)    /* after every .net name, so it takes none */
        e.found = unique_name(&e, "found");

    /* the functions first, into memory: they decide which helpers exist */
    char *fns = NULL;
    size_t nfns = 0;
    FILE *body = open_memstream(&fns, &nfns);
    if (!body)
        die("out of memory");
    emit_function(&e, body, PF_FORWARD,
                  "/* The batch loss: the mean over the n samples of the per-sample loss.\n"
                  " * Keeps in ws what backward needs. */");
    emit_function(&e, body, PF_BACKWARD,
                  "/* Every gradient of the batch loss. Call after forward, with the same\n"
                  " * arguments: it reads what forward left in ws. */");
    emit_function(&e, body, PF_PREDICT,
                  "/* The outputs, n rows each. Reads only the inputs the outputs depend on. */");
    fclose(body);

    Model *m = e.m;
    const char *file = m->path ? m->path : "a model";
    fprintf(c_out, "/* Generated by bpgen %s from %s — do not edit. */\n", BPGEN_VERSION,
            comment_text(&e, file));
    fprintf(c_out, "#include <math.h>\n#include <string.h>\n");
    if (p->opt.with_main)
        fprintf(c_out, "#include <errno.h>\n#include <stdio.h>\n#include <stdlib.h>\n");
    fprintf(c_out, "\n#include \"%s\"\n\n",
            p->opt.header_name ? p->opt.header_name : fmt(&e, "%s.h", e.M));
    emit_helpers(&e, c_out);
    emit_init(&e, c_out);
    fprintf(c_out, "/* Bytes of workspace for a batch of n: %ld reals per sample and %ld\n"
                   " * shared%s. */\n", p->ws_batched, p->ws_shared,
            e.found ? ", after the record of --check-finite" : "");
    fprintf(c_out, "size_t %s_workspace_size(int n)\n{\n", e.M);
    fprintf(c_out, "    size_t rows = n > 0 ? (size_t)n : 0;\n");
    if (e.found)
        nonfinite_workspace_size(&e, c_out);
    else
        fprintf(c_out, "    return (%ld * rows + %ld) * sizeof(%s);\n}\n\n", p->ws_batched,
                p->ws_shared, e.real);
    fwrite(fns, 1, nfns, c_out);
    free(fns);
    emit_model(&e, c_out);
    if (p->opt.selftest)
        emit_selftest(&e, c_out);
    if (p->opt.with_main)
        emit_main(&e, c_out);
    emit_header(&e, h_out);
    return !ferror(c_out) && !ferror(h_out);
}
