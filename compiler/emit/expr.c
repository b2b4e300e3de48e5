/* expr.c — node expressions rendered to C, and the references they read.
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
 */
#include "emit.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static Ex ex(const char *s, int prec, bool simple)
{
    Ex x = {s, prec, simple};
    return x;
}

/* x as an operand that must bind at least as tightly as `need`. */
const char *at(Emit *e, Ex x, int need)
{
    return x.prec >= need ? x.s : fmt(e, "(%s)", x.s);
}

/* A math function of the chosen precision: "sin" -> "sinf", "bp_exp" ->
 * "bp_expf". */
const char *fn(Emit *e, const char *name)
{
    return e->dbl ? name : fmt(e, "%sf", name);
}

/* A literal of the chosen type: the shortest decimal that reads back. */
const char *lit_str(Emit *e, double v)
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
const char *dlit(Emit *e, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    if (!strpbrk(buf, ".eEn"))
        strcat(buf, ".0");
    return arena_strdup(e->a, buf);
}


/* ---------------------------------------------------------------- references */

const NodeInfo *info(const Emit *e, const Node *n)
{
    return &e->p->info[n->id];
}

bool is_leaf(const Node *n)
{
    return n->op == OP_INPUT || n->op == OP_PARAM;
}

bool is_local(const Emit *e, const Node *n)
{
    return loop_local(e->p, e->f, n, e->fb_local);
}

/* The buffer holding n in the current function, noted as used. */
const char *buf_name(Emit *e, Node *n)
{
    const NodeInfo *in = info(e, n);
    if (!(is_leaf(n) || (in->mode[e->f] == NODE_BUFFER && in->buf[e->f].pool != POOL_LOCAL) ||
          (after_forward(e->f) && in->kept)))
        die(fmt(e, "node %d (%s) has no buffer", n->id, op_info[n->op].name));
    if (!e->used[n->id]) {
        e->used[n->id] = true;
        e->used_ids[e->nused++] = n->id;
    }
    return e->cname[n->id];
}

/* Element `j` of sample `s` of n. */
Ex elem(Emit *e, Node *n, const char *s, const char *j)
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

/* n's buffer at the index of loop c (a local of a merged loop: itself). */
Ex ref_buf(Emit *e, const Ctx *c, Node *n)
{
    if (is_local(e, n))
        return ex(e->cname[n->id], PR_ATOM, true);
    switch (c->mode) {
    case LOOP_SCALAR:
        return ex(fmt(e, "%s[0]", buf_name(e, n)), PR_ATOM, true);
    case LOOP_FLAT:
        if (n->batched == c->batched && shape_size(n->shape) == c->size)
            return ex(fmt(e, "%s[i]", buf_name(e, n)), PR_ATOM, true);
        if (!n->batched && shape_size(n->shape) == 1)
            return ex(fmt(e, "%s[0]", buf_name(e, n)), PR_ATOM, true);
        die("operand does not fit a flat loop");
        break;
    case LOOP_NESTED:
        return elem(e, n, "s", "j");
    case LOOP_OUTER:
        die("an expression in an outer product's loop");
        break;
    case LOOP_ARRAY:
        die("an expression in an array call");
        break;
    }
    return ex("0", PR_ATOM, true);
}

/* n read inside the loop c: a literal, or its buffer. */
static Ex ref(Emit *e, const Ctx *c, Node *n)
{
    return n->op == OP_CONST ? lit(e, n->value) : ref_buf(e, c, n);
}

/* ---------------------------------------------------------------- elementwise */

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

/* Whether render_add() writes n as `a + b` (no operand it turns into a
 * subtraction). */
static bool plain_sum(const Emit *e, Node *n)
{
    double k;
    Node *t;
    return !negated(e, n->in[1], &k, &t) && !negated(e, n->in[0], &k, &t) &&
           !(n->in[0]->op == OP_CONST && n->in[0]->value < 0 && n->in[0]->shape.rank == 0);
}

/* `a + b` where a is itself a plain sum fused here: the whole left-leaning
 * chain `t1 + t2 + ... + tk` in one growing text, rendered in the order
 * render_add() would (t1, then t2, ...). A parameter shared by many layers
 * has a gradient of one term per use; rebuilding the text at each level
 * cost time and memory quadratic in the terms. */
static Ex render_long_sum(Emit *e, Ctx *c, Node *n)
{
    int count = 1;
    Node *bottom = n->in[0];
    while (bottom->op == OP_ADD && plain_sum(e, bottom) && is_inline(e, bottom) &&
           !has_title(e, bottom)) {
        count++;
        bottom = bottom->in[0];
    }
    Node **levels = arena_alloc(e->a, sizeof *levels * (size_t)count);
    Node *level = n;
    for (int k = count - 1; k >= 0; k--, level = level->in[0])
        levels[k] = level;          /* levels[0] is the deepest */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        die("out of memory");
    fputs(at(e, render(e, c, bottom, false), PR_ADD), out);
    for (int k = 0; k < count; k++)
        fprintf(out, " + %s", at(e, render(e, c, levels[k]->in[1], false), PR_MUL));
    fclose(out);
    const char *s = arena_strndup(e->a, text, len);
    free(text);
    return ex(s, PR_ADD, false);
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
    if (a->op == OP_ADD && plain_sum(e, a) && is_inline(e, a) && !has_title(e, a))
        return render_long_sum(e, c, n);
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
Ex render(Emit *e, Ctx *c, Node *n, bool top)
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

void open_ctx(Ctx *c, char **pre, size_t *npre, char **notes, size_t *nnotes)
{
    c->pre = open_memstream(pre, npre);
    c->notes = open_memstream(notes, nnotes);
    if (!c->pre || !c->notes)
        die("out of memory");
}

/* Closes the streams; writes the notes as comments at `depth`. The
 * temporaries in `pre` are the caller's to place. */
void close_ctx(Emit *e, Ctx *c, char **notes, int depth)
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

/* ---------------------------------------------------------------- helpers */

void emit_helpers(Emit *e, FILE *out)
{
    const char *r = e->real, *M = e->M;
    const char *zero = lit_str(e, 0);
    const char *exp_fn = fn(e, op_info[OP_EXP].c_fn);
    if (e->need_softplus)
        fprintf(out,
            "/* log(1 + exp(x)), without overflow for large |x| */\n"
            "static %s %s_softplus(%s x)\n{\n"
            "    return x > %s ? x + %s(%s(-x)) : %s(%s(x));\n}\n\n",
            r, M, r, zero, fn(e, "log1p"), exp_fn, fn(e, "log1p"), exp_fn);
}
