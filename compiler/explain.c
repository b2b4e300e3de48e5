/* explain.c — the derivation written out step by step (--explain).
 *
 * In:  a checked Model.
 * Out: text (or Markdown with LaTeX): the forward equations, then for the
 *      loss and every value, parameter and `wrt` input it depends on,
 *      latest first, a block
 *
 *          dP/dL = dP/dS * 2 * L          the chain rule, one term per use
 *                = L / sqrt(S)            closed form, in the model's names
 *                = L / sqrt(L^2 + 2)      (scalar models: --derivatives' line)
 *
 * How: the model's unbatched graph is cut at its named values, so each
 * named value is one step of the chain rule. For every variable Y, latest
 * first, a reverse walk over Y's own expression (stopping at other
 * variables) hands each variable X that Y reads its share: for a scalar Y
 * the local derivative dY/dX, for a tensor Y the vector-Jacobian product
 * with Y's adjoint token inside (transpose(W2) · dL/dz). X's chain-rule
 * line is the sum of those shares; its closed form substitutes each token
 * by the closed form of its variable and simplifies.
 *
 * The derivation is kept in its own small expression type (Dx) rather
 * than in graph nodes: graph nodes are hash-consed and put in canonical
 * order, which would shuffle the factors; a Dx product keeps them in the
 * order the chain rule produced them, so `(y - t) * y * (1 - y) * x` reads
 * as a lecturer writes it. Forward values inside a Dx are graph nodes,
 * printed by print_expr in the model's names.
 */
#include "bpgen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { P_SUM = 1, P_PRODUCT = 2, P_UNARY = 3, P_POWER = 4, P_ATOM = 5 };

/* ---------------------------------------------------------------- building */

static Shape wider(Shape x, Shape y)
{
    return x.rank >= y.rank ? x : y;
}

static Dx *dx_new(Arena *a, DxKind kind, Shape shape, int n)
{
    Dx *x = arena_alloc(a, sizeof *x);
    x->kind = kind;
    x->shape = shape;
    x->n = n;
    x->num = kind == DX_PROD ? 1 : 0;
    x->var = -1;
    if (n > 0) {
        x->kid = arena_alloc(a, sizeof *x->kid * (size_t)n);
        x->power = arena_alloc(a, sizeof *x->power * (size_t)n);
        for (int i = 0; i < n; i++)
            x->power[i] = 1;
    }
    return x;
}

static Dx *dx_num(Arena *a, double v, Shape shape)
{
    Dx *x = dx_new(a, DX_NUM, shape, 0);
    x->num = v + 0.0;
    return x;
}

static Dx *dx_node(Arena *a, const Node *n)
{
    if (n->op == OP_CONST)
        return dx_num(a, n->value, n->shape);
    Dx *x = dx_new(a, DX_NODE, n->shape, 0);
    x->node = n;
    return x;
}

static Dx *dx_adj(Arena *a, int var, Shape shape)
{
    Dx *x = dx_new(a, DX_ADJ, shape, 0);
    x->var = var;
    return x;
}

static Dx *dx_mul(Arena *a, Dx *x, Dx *y)
{
    Dx *p = dx_new(a, DX_PROD, wider(x->shape, y->shape), 2);
    p->kid[0] = x;
    p->kid[1] = y;
    return p;
}

static Dx *dx_scale(Arena *a, double c, Dx *x)
{
    Dx *p = dx_new(a, DX_PROD, x->shape, 1);
    p->num = c;
    p->kid[0] = x;
    return p;
}

static Dx *dx_pow(Arena *a, Dx *x, double power)
{
    Dx *p = dx_new(a, DX_PROD, x->shape, 1);
    p->kid[0] = x;
    p->power[0] = power;
    return p;
}

static Dx *dx_add(Arena *a, Dx *x, Dx *y)
{
    Dx *s = dx_new(a, DX_SUM, wider(x->shape, y->shape), 2);
    s->kid[0] = x;
    s->kid[1] = y;
    return s;
}

static Dx *dx_fn(Arena *a, const char *fn, Shape shape, Dx *x, Dx *y)
{
    Dx *f = dx_new(a, DX_FN, shape, y ? 2 : 1);
    f->fn = fn;
    f->kid[0] = x;
    if (y)
        f->kid[1] = y;
    return f;
}

/* An operation that has no .net spelling (the gradients of convolution and
 * pooling, a reshape): written as a call of the compiler's own name with
 * its attributes, `conv2d_grad_input(dL/dy, K, stride=1, pad=0, h=8, w=8)`. */
static Dx *dx_kernel(Arena *a, Op op, Shape shape, int n, Dx *const *kids, const int *attr)
{
    Dx *f = dx_new(a, DX_FN, shape, n);
    f->fn = op_info[op].name;
    for (int i = 0; i < n; i++)
        f->kid[i] = kids[i];
    const char *extra = "";
    for (int i = 0; i < MAX_ATTRS && attr && op_info[op].attr_names[i]; i++)
        extra = arena_printf(a, "%s, %s=%d", extra, op_info[op].attr_names[i], attr[i]);
    f->extra = extra;
    return f;
}

static Dx *dx_matmul(Arena *a, Shape shape, Dx *x, Dx *y)
{
    Dx *m = dx_new(a, DX_MATMUL, shape, 2);
    m->kid[0] = x;
    m->kid[1] = y;
    return m;
}

static Shape mat_shape(int rows, int cols)
{
    return shape_of(2, (int[]){rows, cols});
}

/* transpose(x), written transpose(transpose(A)) = A at once */
static Dx *dx_transpose(Arena *a, Dx *x)
{
    Shape t = x->shape.rank == 2 ? mat_shape(x->shape.dim[1], x->shape.dim[0]) : x->shape;
    if (x->kind == DX_NODE && x->node->op == OP_TRANSPOSE)
        return dx_node(a, x->node->in[0]);
    if (x->kind == DX_FN && !strcmp(x->fn, "transpose"))
        return x->kid[0];
    return dx_fn(a, "transpose", t, x, NULL);
}

/* v^0: a shape filled with ones. It is spelled with the first input,
 * parameter or named value of that shape (x^0, not (transpose(W) · k)^0),
 * so that every ones of one shape is the same factor; `like` (of that
 * shape) when there is none. */
static Dx *dx_ones(Arena *a, const Graph *g, const Node *like)
{
    const Model *m = g->model;
    const Node *spelling = NULL;
    for (int i = 0; !spelling && i < m->ninputs; i++)
        if (shape_eq(g->input_nodes[i]->shape, like->shape))
            spelling = g->input_nodes[i];
    for (int i = 0; !spelling && i < m->nparams; i++)
        if (shape_eq(g->param_nodes[i]->shape, like->shape))
            spelling = g->param_nodes[i];
    for (int i = 0; !spelling && i < m->nvalues; i++) {
        const Node *v = g->value_nodes[i];
        if (v->name && !strcmp(v->name, m->values[i]->name) && v->op != OP_CONST &&
            shape_eq(v->shape, like->shape))
            spelling = v;
    }
    return dx_fn(a, "ones", like->shape, dx_node(a, spelling ? spelling : like), NULL);
}

/* ---------------------------------------------------------------- simplifying */

static bool dx_equal(const Dx *x, const Dx *y)
{
    if (x == y)
        return true;
    if (x->kind != y->kind || x->n != y->n || !shape_eq(x->shape, y->shape))
        return false;
    switch (x->kind) {
    case DX_NUM: return x->num == y->num;
    case DX_NODE: return x->node == y->node;
    case DX_ADJ: return x->var == y->var;
    case DX_FN:
        if (strcmp(x->fn, y->fn) != 0 || strcmp(x->extra ? x->extra : "", y->extra ? y->extra : ""))
            return false;
        break;
    case DX_PROD:
        if (x->num != y->num)
            return false;
        break;
    default:
        break;
    }
    for (int i = 0; i < x->n; i++)
        if (!dx_equal(x->kid[i], y->kid[i]) || x->power[i] != y->power[i])
            return false;
    return true;
}

static bool is_num(const Dx *x, double v)
{
    return x->kind == DX_NUM && x->num == v;
}

/* A growable list of factors or terms. */
typedef struct {
    Dx **kid;
    double *power;
    int n, cap;
} List;

static void list_push(Arena *a, List *l, Dx *x, double power)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        Dx **kid = arena_alloc(a, sizeof *kid * (size_t)cap);
        double *pw = arena_alloc(a, sizeof *pw * (size_t)cap);
        for (int i = 0; i < l->n; i++) {
            kid[i] = l->kid[i];
            pw[i] = l->power[i];
        }
        l->kid = kid;
        l->power = pw;
        l->cap = cap;
    }
    l->kid[l->n] = x;
    l->power[l->n] = power;
    l->n++;
}

static Dx *simplify(Arena *a, Dx *x);

/* Gathers the factors of x^p into l (and its coefficient into *coef),
 * merging equal factors; nested products open. */
static void gather_factors(Arena *a, List *l, double *coef, Dx *x, double p)
{
    if (x->kind == DX_NUM) {
        *coef *= pow(x->num, p);
        return;
    }
    if (x->kind == DX_PROD && (p == 1 || p == floor(p))) {
        *coef *= pow(x->num, p);
        for (int i = 0; i < x->n; i++)
            gather_factors(a, l, coef, x->kid[i], x->power[i] * p);
        return;
    }
    for (int i = 0; i < l->n; i++)
        if (dx_equal(l->kid[i], x)) {
            l->power[i] += p;
            return;
        }
    list_push(a, l, x, p);
}

static Dx *simplify_product(Arena *a, Dx *x)
{
    List l = {0};
    double coef = x->num;
    for (int i = 0; i < x->n; i++)
        gather_factors(a, &l, &coef, simplify(a, x->kid[i]), x->power[i]);
    if (coef == 0 || !isfinite(coef))
        return dx_num(a, coef, x->shape);
    int kept = 0;
    for (int i = 0; i < l.n; i++)
        if (l.power[i] != 0)
            kept++;
    if (kept == 0)
        return dx_num(a, coef, x->shape);
    Dx *p = dx_new(a, DX_PROD, x->shape, kept);
    p->num = coef;
    for (int i = 0, k = 0; i < l.n; i++)
        if (l.power[i] != 0) {
            p->kid[k] = l.kid[i];
            p->power[k++] = l.power[i];
        }
    if (kept == 1 && coef == 1 && p->power[0] == 1 && p->kid[0]->shape.rank >= x->shape.rank)
        return p->kid[0];
    return p;
}

/* A term as coefficient * rest. */
static Dx *split_term(Arena *a, Dx *t, double *coef)
{
    if (t->kind == DX_PROD && t->num != 1) {
        *coef = t->num;
        if (t->n == 1 && t->power[0] == 1 && t->kid[0]->shape.rank >= t->shape.rank)
            return t->kid[0];
        Dx *rest = dx_new(a, DX_PROD, t->shape, t->n);
        for (int i = 0; i < t->n; i++) {
            rest->kid[i] = t->kid[i];
            rest->power[i] = t->power[i];
        }
        return rest;
    }
    *coef = 1;
    return t;
}

static void gather_terms(Arena *a, List *l, double *constant, Dx *x, double k)
{
    if (x->kind == DX_NUM) {
        *constant += k * x->num;
        return;
    }
    if (x->kind == DX_SUM) {
        for (int i = 0; i < x->n; i++)
            gather_terms(a, l, constant, x->kid[i], k);
        return;
    }
    double c;
    Dx *rest = split_term(a, x, &c);
    for (int i = 0; i < l->n; i++)
        if (dx_equal(l->kid[i], rest)) {
            l->power[i] += k * c;
            return;
        }
    list_push(a, l, rest, k * c);
}

/* The factors of a term: a product's own, or the term itself (then in
 * the caller's *self, power *one). */
static int term_factors(Dx *t, Dx **self, Dx ***kid, double **power, double *one)
{
    if (t->kind == DX_PROD) {
        *kid = t->kid;
        *power = t->power;
        return t->n;
    }
    *self = t;
    *kid = self;
    *one = 1;
    *power = one;
    return 1;
}

static bool has_factor(Dx *t, const Dx *f, double p)
{
    Dx **kid, *self;
    double *power, one;
    int n = term_factors(t, &self, &kid, &power, &one);
    for (int i = 0; i < n; i++)
        if (power[i] == p && dx_equal(kid[i], f))
            return true;
    return false;
}

/* A * u + A * v = A * (u + v): the factors every term shares come out, so
 * an adjoint that reaches a value along two paths is written once, not
 * once per path (which would double the text with every such step). */
static Dx *factor_out(Arena *a, Dx *s)
{
    Dx **kid, *self;
    double *power, one;
    int n = term_factors(s->kid[0], &self, &kid, &power, &one);
    List common = {0};
    for (int i = 0; i < n; i++) {
        bool everywhere = kid[i]->kind != DX_NUM;
        for (int t = 1; t < s->n && everywhere; t++)
            everywhere = has_factor(s->kid[t], kid[i], power[i]);
        for (int c = 0; c < common.n && everywhere; c++)
            everywhere = !(dx_equal(common.kid[c], kid[i]) && common.power[c] == power[i]);
        if (everywhere)
            list_push(a, &common, kid[i], power[i]);
    }
    if (common.n == 0)
        return s;
    Dx *rests = dx_new(a, DX_SUM, s->shape, s->n);
    for (int t = 0; t < s->n; t++) {
        Dx **tk, *tself;
        double *tp, tone;
        int tn = term_factors(s->kid[t], &tself, &tk, &tp, &tone);
        Dx *rest = dx_new(a, DX_PROD, s->kid[t]->shape, tn);
        rest->num = s->kid[t]->kind == DX_PROD ? s->kid[t]->num : 1;
        bool *taken = arena_alloc(a, sizeof *taken * (size_t)(common.n + 1));
        int k = 0;
        for (int i = 0; i < tn; i++) {
            bool drop = false;
            for (int c = 0; c < common.n && !drop; c++)
                if (!taken[c] && common.power[c] == tp[i] && dx_equal(common.kid[c], tk[i]))
                    drop = taken[c] = true;
            if (!drop) {
                rest->kid[k] = tk[i];
                rest->power[k++] = tp[i];
            }
        }
        rest->n = k;
        rests->kid[t] = rest;
    }
    Dx *p = dx_new(a, DX_PROD, s->shape, common.n + 1);
    for (int c = 0; c < common.n; c++) {
        p->kid[c] = common.kid[c];
        p->power[c] = common.power[c];
    }
    p->kid[common.n] = rests;
    return simplify(a, p);
}

static Dx *simplify_sum(Arena *a, Dx *x)
{
    List l = {0};
    double constant = 0;
    for (int i = 0; i < x->n; i++)
        gather_terms(a, &l, &constant, simplify(a, x->kid[i]), 1);
    List kept = {0};
    for (int i = 0; i < l.n; i++)
        if (l.power[i] != 0)
            list_push(a, &kept, l.power[i] == 1 ? l.kid[i]
                                                : simplify(a, dx_scale(a, l.power[i], l.kid[i])),
                      1);
    if (constant != 0)
        list_push(a, &kept, dx_num(a, constant, x->shape), 1);
    if (kept.n == 0)
        return dx_num(a, 0, x->shape);
    if (kept.n == 1 && kept.kid[0]->shape.rank >= x->shape.rank)
        return kept.kid[0];
    Dx *s = dx_new(a, DX_SUM, x->shape, kept.n);
    for (int i = 0; i < kept.n; i++)
        s->kid[i] = kept.kid[i];
    return factor_out(a, s);
}

/* Pulls a product's coefficient out of a linear operation: f(c x) = c f(x). */
static Dx *pull_coefficient(Arena *a, Dx *x, int arg)
{
    Dx *k = x->kid[arg];
    if (k->kind != DX_PROD || k->num == 1)
        return x;
    double c;
    Dx *copy = dx_new(a, x->kind, x->shape, x->n);
    *copy = *x;
    copy->kid = arena_alloc(a, sizeof *copy->kid * (size_t)x->n);
    for (int i = 0; i < x->n; i++)
        copy->kid[i] = x->kid[i];
    copy->kid[arg] = split_term(a, k, &c);
    return simplify(a, dx_scale(a, c, copy));
}

static Dx *simplify_fn(Arena *a, Dx *x)
{
    Dx *f = dx_new(a, DX_FN, x->shape, x->n);
    f->fn = x->fn;
    f->extra = x->extra;
    for (int i = 0; i < x->n; i++) {
        f->kid[i] = simplify(a, x->kid[i]);
        if (is_num(f->kid[i], 0))
            return dx_num(a, 0, x->shape);
    }
    Dx *k = f->kid[0];
    if (!strcmp(f->fn, "sum")) {
        if (k->shape.rank == 0)
            return k;
        bool ones = k->kind == DX_FN && !strcmp(k->fn, "ones");
        if (k->kind == DX_NUM || ones)
            return dx_num(a, (ones ? 1 : k->num) * (double)shape_size(k->shape), x->shape);
        /* sum(c * s * v) = c * s * sum(v) for scalars c, s */
        if (k->kind == DX_PROD) {
            Dx *outside = dx_new(a, DX_PROD, x->shape, k->n + 1);
            Dx *inside = dx_new(a, DX_PROD, k->shape, k->n);
            outside->num = k->num;
            int no = 0, ni = 0;
            for (int i = 0; i < k->n; i++) {
                if (k->kid[i]->shape.rank == 0) {
                    outside->kid[no] = k->kid[i];
                    outside->power[no++] = k->power[i];
                } else {
                    inside->kid[ni] = k->kid[i];
                    inside->power[ni++] = k->power[i];
                }
            }
            if (no > 0 || k->num != 1) {
                inside->n = ni;
                outside->kid[no] = dx_fn(a, "sum", x->shape, inside, NULL);
                outside->n = no + 1;
                return simplify(a, outside);
            }
        }
        return f;
    }
    if (!strcmp(f->fn, "transpose")) {
        if (k->kind == DX_NUM)
            return dx_num(a, k->num, x->shape);
        if (k->kind == DX_FN && !strcmp(k->fn, "transpose"))
            return k->kid[0];
        return pull_coefficient(a, f, 0);
    }
    if (!strcmp(f->fn, "outer")) {
        Dx *g = pull_coefficient(a, f, 0);
        return g == f ? pull_coefficient(a, f, 1) : g;
    }
    return f;
}

static Dx *simplify(Arena *a, Dx *x)
{
    switch (x->kind) {
    case DX_NUM: case DX_ADJ:
        return x;
    case DX_NODE:
        return x->node->op == OP_CONST ? dx_num(a, x->node->value, x->shape) : x;
    case DX_PROD:
        return simplify_product(a, x);
    case DX_SUM:
        return simplify_sum(a, x);
    case DX_MATMUL: {
        Dx *m = dx_matmul(a, x->shape, simplify(a, x->kid[0]), simplify(a, x->kid[1]));
        if (is_num(m->kid[0], 0) || is_num(m->kid[1], 0))
            return dx_num(a, 0, x->shape);
        Dx *g = pull_coefficient(a, m, 0);
        return g == m ? pull_coefficient(a, m, 1) : g;
    }
    case DX_FN:
        return simplify_fn(a, x);
    }
    return x;
}

/* Whether x's text is a single number even where its shape is a tensor's
 * (a scalar adjoint repeated over a tensor, as sum() hands it down). With
 * closed, tokens count as their closed forms. */
static bool is_scalar_valued(const Derivation *d, const Dx *x, bool closed)
{
    switch (x->kind) {
    case DX_NUM: return true;
    case DX_NODE: return x->node->shape.rank == 0;
    case DX_ADJ:
        return d->vars[x->var].node->shape.rank == 0 ||
               (closed && is_scalar_valued(d, d->vars[x->var].closed, false));
    case DX_PROD: case DX_SUM:
        for (int i = 0; i < x->n; i++)
            if (!is_scalar_valued(d, x->kid[i], closed))
                return false;
        return true;
    case DX_FN: return !strcmp(x->fn, "sum");
    case DX_MATMUL: return false;
    }
    return false;
}

/* A tensor variable among x's tokens with x's shape, or NULL. */
static const Node *tensor_token(const Derivation *d, const Dx *x)
{
    if (x->kind == DX_ADJ)
        return shape_eq(d->vars[x->var].node->shape, x->shape) ? d->vars[x->var].node : NULL;
    for (int i = 0; i < x->n; i++) {
        const Node *n = tensor_token(d, x->kid[i]);
        if (n && shape_eq(n->shape, x->shape))
            return n;
    }
    return NULL;
}

/* Replaces every adjoint token by its variable's closed form. An operand
 * of a linear operation must stay a tensor: where the closed form is a
 * repeated scalar s there, it becomes s * v^0 (v the token's variable). */
static Dx *substitute(Arena *a, const Derivation *d, Dx *x)
{
    if (x->kind == DX_ADJ)
        return d->vars[x->var].closed;
    if (x->n == 0)
        return x;
    bool linear = x->kind == DX_MATMUL || (x->kind == DX_FN && strcmp(x->fn, "sum") != 0 &&
                                            strcmp(x->fn, "ones") != 0);
    Dx *copy = dx_new(a, x->kind, x->shape, x->n);
    *copy = *x;
    copy->kid = arena_alloc(a, sizeof *copy->kid * (size_t)x->n);
    for (int i = 0; i < x->n; i++) {
        Dx *k = x->kid[i];
        const Node *v;
        if (linear && k->shape.rank > 0 && !is_scalar_valued(d, k, false) &&
            is_scalar_valued(d, k, true) && (v = tensor_token(d, k)))
            copy->kid[i] = dx_mul(a, substitute(a, d, k), dx_ones(a, d->graph, v));
        else
            copy->kid[i] = substitute(a, d, k);
    }
    return copy;
}

/* ---------------------------------------------------------------- text */

static const char *number_text(Arena *a, double v)
{
    char tmp[64];
    print_number(tmp, v);
    return arena_strdup(a, tmp);
}

/* The precedence of .net text: its loosest operator outside parentheses. */
static int text_prec(const char *s)
{
    int depth = 0, prec = P_ATOM;
    if (s[0] == '-')
        prec = P_UNARY;
    for (const char *p = s; *p; p++) {
        if (*p == '(' || *p == '[')
            depth++;
        else if (*p == ')' || *p == ']')
            depth--;
        else if (depth == 0) {
            if (p[0] == ' ' && (p[1] == '+' || p[1] == '-') && p[2] == ' ')
                return P_SUM;
            if (p[0] == ' ' && (p[1] == '*' || p[1] == '/' || p[1] == '@') && p[2] == ' ')
                prec = P_PRODUCT;
            if (!strncmp(p, " \xc2\xb7 ", 4))
                prec = P_PRODUCT;
            if (*p == '^' && prec > P_POWER)
                prec = P_POWER;
        }
    }
    return prec;
}

static const char *node_text(Arena *a, const Node *n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return "?";
    print_expr(f, n, false);
    fclose(f);
    char *s = arena_strdup(a, buf ? buf : "");
    free(buf);
    return s;
}

static const char *paren(Arena *a, const char *s, int prec, int need)
{
    return prec < need ? arena_printf(a, "(%s)", s) : s;
}

static const char *token(Arena *a, const Derivation *d, int var)
{
    return arena_printf(a, "d%s/d%s", d->loss_name, d->vars[var].name);
}

static bool dx_negative(const Dx *x)
{
    return (x->kind == DX_NUM && x->num < 0) || (x->kind == DX_PROD && x->num < 0);
}

static Dx *dx_negate(Arena *a, Dx *x)
{
    if (x->kind == DX_NUM)
        return dx_num(a, -x->num, x->shape);
    Dx *copy = dx_new(a, x->kind, x->shape, 0);
    *copy = *x;
    copy->num = -x->num;
    return copy;
}

/* base^power for power > 0, as a factor of a product. */
static const char *factor_text(Arena *a, const Derivation *d, const Dx *base, double power,
                               int *prec)
{
    int bp;
    const char *b = dx_text(a, d, base, &bp);
    if (power == 1) {
        *prec = bp;
        return b;
    }
    if (power == 0.5) {
        *prec = P_ATOM;
        return arena_printf(a, "sqrt(%s)", b);
    }
    *prec = P_POWER;
    return arena_printf(a, "%s^%s", paren(a, b, bp, P_ATOM), number_text(a, power));
}

static const char *product_text(Arena *a, const Derivation *d, const Dx *x, int *prec)
{
    double c = x->num;
    bool negative = c < 0;
    c = fabs(c);
    int nnum = 0, nden = 0;
    for (int i = 0; i < x->n; i++)
        x->power[i] > 0 ? nnum++ : nden++;
    if (!negative && c == 1 && nnum == 1 && nden == 0 && x->power[0] == 1)
        return dx_text(a, d, x->kid[0], prec);
    /* 1 / (2 * sqrt(S)) rather than 0.5 / sqrt(S) */
    double k = 0;
    if (nden > 0 && c != 1 && c < 1 && 1 / c == floor(1 / c) && 1 / c <= 1e6) {
        k = 1 / c;
        c = 1;
    }
    const char *num = NULL;
    int pieces = 0, lone = P_ATOM;
    if (c != 1 || nnum == 0) {
        num = number_text(a, c);
        pieces++;
    }
    for (int i = 0; i < x->n; i++) {
        if (x->power[i] <= 0)
            continue;
        int fp;
        const char *f = factor_text(a, d, x->kid[i], x->power[i], &fp);
        f = paren(a, f, fp, P_POWER);
        lone = fp < P_POWER ? P_ATOM : fp;
        num = num ? arena_printf(a, "%s * %s", num, f) : f;
        pieces++;
    }
    const char *den = NULL;
    int dpieces = 0;
    if (k) {
        den = number_text(a, k);
        dpieces++;
    }
    for (int i = 0; i < x->n; i++) {
        if (x->power[i] >= 0)
            continue;
        int fp;
        const char *f = factor_text(a, d, x->kid[i], -x->power[i], &fp);
        f = paren(a, f, fp, P_POWER);
        den = den ? arena_printf(a, "%s * %s", den, f) : f;
        dpieces++;
    }
    const char *s = num;
    *prec = pieces > 1 ? P_PRODUCT : (c != 1 || nnum == 0 ? P_ATOM : lone);
    if (dpieces) {
        s = arena_printf(a, dpieces > 1 ? "%s / (%s)" : "%s / %s", num, den);
        *prec = P_PRODUCT;
    }
    if (negative) {
        s = arena_printf(a, "-%s", s);
        if (*prec > P_UNARY)
            *prec = P_UNARY;
    }
    return s;
}

static const char *sum_text(Arena *a, const Derivation *d, const Dx *x, int *prec)
{
    int n = x->n;
    const Dx **order = arena_alloc(a, sizeof *order * (size_t)n);
    for (int i = 0; i < n; i++)
        order[i] = x->kid[i];
    /* 1 - y reads better than -y + 1: lead with a positive term */
    for (int i = 0; i < n && dx_negative(order[0]); i++)
        if (!dx_negative(order[i])) {
            const Dx *t = order[i];
            memmove(order + 1, order, sizeof *order * (size_t)i);
            order[0] = t;
            break;
        }
    const char *s = "";
    for (int i = 0; i < n; i++) {
        bool negative = dx_negative(order[i]);
        const Dx *t = negative ? dx_negate(a, (Dx *)order[i]) : order[i];
        int tp;
        const char *tt = dx_text(a, d, t, &tp);
        tt = paren(a, tt, tp, P_PRODUCT);
        if (i == 0)
            s = negative ? arena_printf(a, "-%s", tt) : tt;
        else
            s = arena_printf(a, "%s %s %s", s, negative ? "-" : "+", tt);
    }
    *prec = n > 1 ? P_SUM : P_UNARY;
    return s;
}

const char *dx_text(Arena *a, const Derivation *d, const Dx *x, int *prec)
{
    int ignored;
    if (!prec)
        prec = &ignored;
    switch (x->kind) {
    case DX_NUM:
        *prec = x->num < 0 ? P_UNARY : P_ATOM;
        return number_text(a, x->num);
    case DX_NODE: {
        const char *s = node_text(a, x->node);
        *prec = text_prec(s);
        return s;
    }
    case DX_ADJ:
        *prec = P_ATOM;
        return token(a, d, x->var);
    case DX_PROD:
        return product_text(a, d, x, prec);
    case DX_SUM:
        return sum_text(a, d, x, prec);
    case DX_MATMUL: {
        int lp, rp;
        const char *l = dx_text(a, d, x->kid[0], &lp);
        const char *r = dx_text(a, d, x->kid[1], &rp);
        *prec = P_PRODUCT;
        return arena_printf(a, "%s \xc2\xb7 %s", paren(a, l, lp, P_PRODUCT), paren(a, r, rp, P_UNARY));
    }
    case DX_FN: {
        if (!strcmp(x->fn, "ones")) {   /* y^0: y's shape, every element 1 */
            int kp;
            const char *k = dx_text(a, d, x->kid[0], &kp);
            *prec = P_POWER;
            return arena_printf(a, "%s^0", paren(a, k, kp, P_ATOM));
        }
        const char *s = dx_text(a, d, x->kid[0], NULL);
        for (int i = 1; i < x->n; i++)
            s = arena_printf(a, "%s, %s", s, dx_text(a, d, x->kid[i], NULL));
        *prec = P_ATOM;
        return arena_printf(a, "%s(%s%s)", x->fn, s, x->extra ? x->extra : "");
    }
    }
    *prec = P_ATOM;
    return "?";
}

/* ---------------------------------------------------------------- deriving */

typedef struct {
    Arena *a;
    Derivation *d;
    Graph *g;
    int count;          /* forward nodes */
    bool *needed;       /* by node id: a differentiated leaf lies below */
    int *var_of;        /* by node id: its variable, or -1 */
    Dx **adj;           /* by node id: adjoint within the current walk */
    int *seen;          /* by node id: walk stamp */
    int stamp;
} Deriver;

static Node *nn(Graph *g, Op op, Node *x, Node *y) { return node_new(g, op, x, y); }

static Node *one_minus(Graph *g, Node *x)
{
    return nn(g, OP_ADD, node_scalar(g, 1), nn(g, OP_MUL, node_scalar(g, -1), x));
}

/* Adds a contribution to x's adjoint within the current walk, reduced to
 * x's shape (a scalar read by a tensor operation receives the sum). */
static void give(Deriver *r, Node *x, Dx *c)
{
    if (!r->needed[x->id])
        return;
    Arena *a = r->a;
    if (x->shape.rank == 0 && c->shape.rank > 0)
        c = dx_fn(a, "sum", SHAPE_SCALAR, c, NULL);
    else if (x->shape.rank > 0 && c->shape.rank == 0) {
        /* a scalar repeated over x: it keeps its text (as --derivatives) */
        Dx *copy = dx_new(a, c->kind, x->shape, 0);
        *copy = *c;
        copy->shape = x->shape;
        c = copy;
    }
    r->adj[x->id] = r->adj[x->id] ? dx_add(a, r->adj[x->id], c) : c;
}

static bool scalar_valued(const Deriver *r, const Dx *x)
{
    return is_scalar_valued(r->d, x, false);
}

/* A linear operation needs its adjoint as a tensor: a repeated scalar s
 * becomes s * y^0 (y^0 is y's shape filled with ones). */
static Dx *as_tensor(Deriver *r, Node *y, Dx *D)
{
    if (y->shape.rank == 0 || !scalar_valued(r, D))
        return D;
    return dx_mul(r->a, D, dx_ones(r->a, r->g, y));
}

/* The vector-Jacobian product of y = op(a, b): the same rules as diff.c,
 * written as Dx so that the adjoint D stays a separate factor in front. */
static void backprop(Deriver *r, Node *y, Dx *D)
{
    Arena *a = r->a;
    Graph *g = r->g;
    Node *p = y->nin > 0 ? y->in[0] : NULL;
    Node *q = y->nin > 1 ? y->in[1] : NULL;
    switch (y->op) {
    case OP_ADD:
        give(r, p, D);
        give(r, q, D);
        break;
    case OP_MUL:
        give(r, p, dx_mul(a, D, dx_node(a, q)));
        give(r, q, dx_mul(a, D, dx_node(a, p)));
        break;
    case OP_POW:
        if (q->op == OP_CONST) {
            Dx *c = dx_mul(a, D, dx_pow(a, dx_node(a, p), q->value - 1));
            give(r, p, dx_scale(a, q->value, c));
        } else {
            Node *pm1 = nn(g, OP_POW, p, nn(g, OP_ADD, q, node_scalar(g, -1)));
            give(r, p, dx_mul(a, dx_mul(a, D, dx_node(a, q)), dx_node(a, pm1)));
            give(r, q, dx_mul(a, dx_mul(a, D, dx_node(a, y)), dx_node(a, nn(g, OP_LOG, p, NULL))));
        }
        break;
    case OP_MAX: case OP_MIN: {
        /* ties go to the first operand */
        Node *diff = y->op == OP_MAX ? nn(g, OP_ADD, q, nn(g, OP_MUL, node_scalar(g, -1), p))
                                     : nn(g, OP_ADD, p, nn(g, OP_MUL, node_scalar(g, -1), q));
        Node *to_q = nn(g, OP_STEP, diff, NULL);
        give(r, p, dx_mul(a, D, dx_node(a, one_minus(g, to_q))));
        give(r, q, dx_mul(a, D, dx_node(a, to_q)));
        break;
    }
    case OP_EXP:
        give(r, p, dx_mul(a, D, dx_node(a, y)));
        break;
    case OP_LOG:
        give(r, p, dx_mul(a, D, dx_pow(a, dx_node(a, p), -1)));
        break;
    case OP_ABS:
        give(r, p, dx_mul(a, D, dx_node(a, nn(g, OP_SIGN, p, NULL))));
        break;
    case OP_SIN:
        give(r, p, dx_mul(a, D, dx_node(a, nn(g, OP_COS, p, NULL))));
        break;
    case OP_COS:
        give(r, p, dx_scale(a, -1, dx_mul(a, D, dx_node(a, nn(g, OP_SIN, p, NULL)))));
        break;
    case OP_TANH:
        give(r, p, dx_mul(a, D, dx_node(a, one_minus(g, nn(g, OP_POW, y, node_scalar(g, 2))))));
        break;
    case OP_SIGMOID:
        give(r, p, dx_mul(a, dx_mul(a, D, dx_node(a, y)), dx_node(a, one_minus(g, y))));
        break;
    case OP_RELU:
        give(r, p, dx_mul(a, D, dx_node(a, nn(g, OP_STEP, p, NULL))));
        break;
    case OP_SOFTPLUS:
        give(r, p, dx_mul(a, D, dx_node(a, nn(g, OP_SIGMOID, p, NULL))));
        break;
    case OP_BROADCAST:
        give(r, p, dx_fn(a, "sum", SHAPE_SCALAR, D, NULL));
        break;
    case OP_MATMUL:
        if (q->shape.rank > 0 || p->shape.rank > 0)
            D = as_tensor(r, y, D);
        if (p->shape.rank == 2 && q->shape.rank == 1) {        /* A x */
            give(r, p, dx_fn(a, "outer", p->shape, D, dx_node(a, q)));
            give(r, q, dx_matmul(a, q->shape, dx_transpose(a, dx_node(a, p)), D));
        } else if (p->shape.rank == 2) {                        /* A B */
            give(r, p, dx_matmul(a, p->shape, D, dx_transpose(a, dx_node(a, q))));
            give(r, q, dx_matmul(a, q->shape, dx_transpose(a, dx_node(a, p)), D));
        } else if (q->shape.rank == 2) {                        /* x B */
            give(r, p, dx_matmul(a, p->shape, dx_node(a, q), D));
            give(r, q, dx_fn(a, "outer", q->shape, dx_node(a, p), D));
        } else {                                                /* x · z */
            give(r, p, dx_mul(a, D, dx_node(a, q)));
            give(r, q, dx_mul(a, D, dx_node(a, p)));
        }
        break;
    case OP_TRANSPOSE:
        give(r, p, dx_transpose(a, as_tensor(r, y, D)));
        break;
    case OP_OUTER:
        D = as_tensor(r, y, D);
        give(r, p, dx_matmul(a, p->shape, D, dx_node(a, q)));
        give(r, q, dx_matmul(a, q->shape, dx_transpose(a, D), dx_node(a, p)));
        break;
    case OP_SUM:
        give(r, p, D);
        break;
    case OP_LOGSUMEXP:   /* of one number: the number itself */
        give(r, p, p->shape.rank == 0 ? D : dx_mul(a, D, dx_node(a, nn(g, OP_SOFTMAX, p, NULL))));
        break;
    case OP_SOFTMAX: {  /* y * (D - sum(D * y)) */
        Dx *inner = dx_fn(a, "sum", SHAPE_SCALAR, dx_mul(a, D, dx_node(a, y)), NULL);
        give(r, p, dx_mul(a, dx_node(a, y), dx_add(a, D, dx_scale(a, -1, inner))));
        break;
    }
    case OP_LOG_SOFTMAX: {  /* D - softmax(p) * sum(D) */
        Dx *s = dx_mul(a, dx_node(a, nn(g, OP_SOFTMAX, p, NULL)), dx_fn(a, "sum", SHAPE_SCALAR, D, NULL));
        give(r, p, dx_add(a, D, dx_scale(a, -1, s)));
        break;
    }
    case OP_RESHAPE: {
        Shape sh = p->shape;
        give(r, p, dx_kernel(a, OP_RESHAPE, p->shape, 1, &D, sh.dim));
        break;
    }
    case OP_CONV2D: {
        Node *x = p, *K = q;
        int s = y->attr[0], pad = y->attr[1];
        give(r, x, dx_kernel(a, OP_CONV2D_GRAD_INPUT, x->shape, 2, (Dx *[]){D, dx_node(a, K)},
                             (int[]){s, pad, x->shape.dim[1], x->shape.dim[2]}));
        give(r, K, dx_kernel(a, OP_CONV2D_GRAD_KERNEL, K->shape, 2, (Dx *[]){D, dx_node(a, x)},
                             (int[]){s, pad, K->shape.dim[2], K->shape.dim[3]}));
        if (y->nin > 2)
            give(r, y->in[2], dx_kernel(a, OP_CONV2D_GRAD_BIAS, y->in[2]->shape, 1, &D, NULL));
        break;
    }
    case OP_MAXPOOL2D:
        give(r, p, dx_kernel(a, OP_MAXPOOL2D_GRAD, p->shape, 2, (Dx *[]){dx_node(a, p), D}, y->attr));
        break;
    case OP_AVGPOOL2D:
        give(r, p, dx_kernel(a, OP_AVGPOOL2D_GRAD, p->shape, 1, &D,
                             (int[]){y->attr[0], p->shape.dim[1], p->shape.dim[2]}));
        break;
    case OP_BATCH_MEAN:
        give(r, p, D);
        break;
    default:   /* leaves, step, sign: no gradient */
        break;
    }
}

static int by_id_desc(const void *pa, const void *pb)
{
    const Node *x = *(Node *const *)pa, *y = *(Node *const *)pb;
    return (x->id < y->id) - (x->id > y->id);
}

static void add_use(Arena *a, DxVar *v, int user, Dx *dx, bool scalar_local)
{
    if (v->nuses == v->uses_cap) {
        /* doubling: a value used by every layer has thousands of uses */
        v->uses_cap = v->uses_cap ? 2 * v->uses_cap : 4;
        DxUse *uses = arena_alloc(a, sizeof *uses * (size_t)v->uses_cap);
        for (int i = 0; i < v->nuses; i++)
            uses[i] = v->uses[i];
        v->uses = uses;
    }
    v->uses[v->nuses].user = user;
    v->uses[v->nuses].dx = dx;
    v->uses[v->nuses].scalar_local = scalar_local;
    v->nuses++;
}

/* One step of the chain rule: the shares variable `vi` hands the variables
 * its own expression reads. */
static void walk(Deriver *r, int vi)
{
    Arena *a = r->a;
    Derivation *d = r->d;
    Node *top = d->vars[vi].node;
    int stamp = ++r->stamp;
    /* both lists grow as needed: sized by the graph, they would cost
     * O(variables x nodes) over a derivation */
    int cap = 16, n = 0, atoms_cap = 16, natoms = 0;
    Node **inner = arena_alloc(a, sizeof *inner * (size_t)cap);
    Node **atoms = arena_alloc(a, sizeof *atoms * (size_t)atoms_cap);
    inner[n++] = top;
    r->seen[top->id] = stamp;
    r->adj[top->id] = NULL;
    for (int i = 0; i < n; i++) {
        Node *x = inner[i];
        for (int k = 0; k < x->nin; k++) {
            Node *in = x->in[k];
            if (!r->needed[in->id] || r->seen[in->id] == stamp)
                continue;
            r->seen[in->id] = stamp;
            r->adj[in->id] = NULL;
            if (r->var_of[in->id] >= 0) {
                if (natoms == atoms_cap) {
                    Node **more = arena_alloc(a, sizeof *more * (size_t)atoms_cap * 2);
                    memcpy(more, atoms, sizeof *atoms * (size_t)natoms);
                    atoms = more;
                    atoms_cap *= 2;
                }
                atoms[natoms++] = in;
                continue;
            }
            if (n == cap) {
                Node **more = arena_alloc(a, sizeof *more * (size_t)cap * 2);
                memcpy(more, inner, sizeof *inner * (size_t)n);
                inner = more;
                cap *= 2;
            }
            inner[n++] = in;
        }
    }
    qsort(inner, (size_t)n, sizeof *inner, by_id_desc);
    bool scalar = top->shape.rank == 0;
    r->adj[top->id] = scalar ? dx_num(a, 1, SHAPE_SCALAR) : dx_adj(a, vi, top->shape);
    for (int i = 0; i < n; i++)
        if (r->adj[inner[i]->id])
            backprop(r, inner[i], simplify(a, r->adj[inner[i]->id]));
    for (int i = 0; i < natoms; i++) {
        Dx *share = r->adj[atoms[i]->id];
        if (share)
            add_use(a, &d->vars[r->var_of[atoms[i]->id]], vi, simplify(a, share), scalar);
    }
}

static int by_user(const void *pa, const void *pb, const Derivation *d)
{
    const DxUse *x = pa, *y = pb;
    int ix = d->vars[x->user].node->id, iy = d->vars[y->user].node->id;
    return (ix > iy) - (ix < iy);
}

/* Sorts uses by their user's place in the forward order (insertion sort:
 * there are few). */
static void sort_uses(const Derivation *d, DxVar *v)
{
    for (int i = 1; i < v->nuses; i++)
        for (int j = i; j > 0 && by_user(&v->uses[j - 1], &v->uses[j], d) > 0; j--) {
            DxUse t = v->uses[j];
            v->uses[j] = v->uses[j - 1];
            v->uses[j - 1] = t;
        }
}

/* A use as it enters the chain rule: adjoint token times local derivative. */
static Dx *use_term(Arena *a, const DxUse *u)
{
    if (!u->scalar_local)
        return u->dx;
    return dx_mul(a, dx_adj(a, u->user, SHAPE_SCALAR), u->dx);
}

static void add_var(Derivation *d, Deriver *r, const char *name, Node *node, bool leaf)
{
    DxVar *v = &d->vars[d->nvars];
    v->name = name;
    v->node = node;
    v->leaf = leaf;
    if (r->var_of[node->id] < 0)
        r->var_of[node->id] = d->nvars;
    d->nvars++;
}

/* The derivation being sorted (C99's qsort passes no context). */
static const Derivation *sorting;

static int by_var_name(const void *pa, const void *pb)
{
    return strcmp(sorting->vars[*(const int *)pa].name, sorting->vars[*(const int *)pb].name);
}

static void sort_by_name(Arena *a, Derivation *d)
{
    d->by_name = arena_alloc(a, sizeof *d->by_name * (size_t)(d->nvars + 1));
    for (int vi = 1; vi < d->nvars; vi++)
        d->by_name[vi - 1] = vi;
    sorting = d;
    if (d->nvars > 2)
        qsort(d->by_name, (size_t)(d->nvars - 1), sizeof *d->by_name, by_var_name);
    sorting = NULL;
}

Derivation *explain_derive(Arena *a, Model *m, bool closed_forms)
{
    Graph *g = graph_build(a, m, false);
    Derivation *d = arena_alloc(a, sizeof *d);
    d->graph = g;
    d->loss_name = m->loss->name;
    d->vars = arena_alloc(a, sizeof *d->vars * (size_t)(1 + m->nvalues + m->nparams + m->ninputs));

    Deriver r = {a, d, g, g->nnodes, NULL, NULL, NULL, NULL, 0};
    size_t count = (size_t)g->nnodes + 1;
    r.needed = arena_alloc(a, sizeof *r.needed * count);
    r.var_of = arena_alloc(a, sizeof *r.var_of * count);
    r.adj = arena_alloc(a, sizeof *r.adj * count);
    r.seen = arena_alloc(a, sizeof *r.seen * count);
    bool *live = arena_alloc(a, sizeof *live * count);
    for (int i = 0; i < m->nparams; i++)
        if (!m->params[i]->stmt->frozen)
            r.needed[g->param_nodes[i]->id] = true;
    for (int k = 0; k < m->ninputs; k++)
        if (m->inputs[k]->wrt)
            r.needed[g->input_nodes[k]->id] = true;
    for (int i = 0; i < r.count; i++) {
        Node *n = g->nodes[i];
        r.var_of[i] = -1;
        for (int k = 0; k < n->nin; k++)
            r.needed[i] = r.needed[i] || r.needed[n->in[k]->id];
    }
    live[g->loss->id] = true;
    for (int i = g->loss->id; i >= 0; i--)
        if (live[i])
            for (int k = 0; k < g->nodes[i]->nin; k++)
                live[g->nodes[i]->in[k]->id] = true;

    Node *loss = g->loss;
    add_var(d, &r, m->loss->name, loss, loss->nin == 0);
    for (int i = m->nvalues - 1; i >= 0; i--) {
        Node *n = g->value_nodes[i];
        const char *name = m->values[i]->name;
        if (n->nin == 0 || !r.needed[n->id] || !live[n->id] || r.var_of[n->id] >= 0 ||
            !n->name || strcmp(n->name, name) != 0)
            continue;
        add_var(d, &r, name, n, false);
    }
    for (int i = 0; i < m->nparams; i++)
        if (!m->params[i]->stmt->frozen)
            add_var(d, &r, m->params[i]->name, g->param_nodes[i], true);
    for (int k = 0; k < m->ninputs; k++)
        if (m->inputs[k]->wrt)
            add_var(d, &r, m->inputs[k]->name, g->input_nodes[k], true);

    for (int vi = 0; vi < d->nvars; vi++) {
        DxVar *v = &d->vars[vi];
        if (vi == 0) {
            v->closed = dx_num(a, 1, SHAPE_SCALAR);
        } else {
            if (v->node == loss)   /* a leaf that is the loss itself */
                add_use(a, v, 0, dx_num(a, 1, SHAPE_SCALAR), true);
            sort_uses(d, v);
        }
        if (vi > 0 && closed_forms) {
            Dx *sum = dx_num(a, 0, v->node->shape);
            for (int u = 0; u < v->nuses; u++)
                sum = dx_add(a, sum, substitute(a, d, use_term(a, &v->uses[u])));
            v->closed = simplify(a, sum);
            /* the text is built by concatenation, its garbage quadratic
             * in its length: only the result is kept */
            Arena *scratch = arena_new();
            const char *text = dx_text(scratch, d, v->closed, NULL);
            if (strlen(text) > EXPLAIN_CLOSED_LIMIT) {
                v->closed = dx_adj(a, vi, v->node->shape);
                v->closed_cut = true;
            } else {
                v->closed_text = arena_strdup(a, text);
            }
            arena_free(scratch);
        }
        if (!v->leaf && r.var_of[v->node->id] == vi)
            walk(&r, vi);
    }
    sort_by_name(a, d);
    return d;
}

/* ---------------------------------------------------------------- blocks */

typedef struct {
    const char *lhs;        /* dL/dX */
    const char **lines;     /* right-hand sides */
    int nlines;
    const char *note;       /* why a form is missing, or NULL */
} Block;

static void block_add(Arena *a, Block *b, const char *rhs)
{
    if (b->nlines > 0 && !strcmp(b->lines[b->nlines - 1], rhs))
        return;
    const char **lines = arena_alloc(a, sizeof *lines * (size_t)(b->nlines + 1));
    for (int i = 0; i < b->nlines; i++)
        lines[i] = b->lines[i];
    lines[b->nlines++] = rhs;
    b->lines = lines;
}

/* The chain rule for v: the sum over its uses of adjoint times local
 * derivative, each term as the rule produced it. */
/* Text that grows by doubling: a sum of many uses (a parameter shared by
 * every layer) is written in linear time and memory, not rebuilt whole at
 * each term. */
typedef struct {
    char *text;
    size_t len, cap;
} Growing;

static void grow_add(Arena *a, Growing *g, const char *part)
{
    size_t n = strlen(part);
    if (g->len + n + 1 > g->cap) {
        size_t cap = g->cap ? g->cap : 64;
        while (g->len + n + 1 > cap)
            cap *= 2;
        char *more = arena_alloc(a, cap);
        if (g->len)
            memcpy(more, g->text, g->len);
        g->text = more;
        g->cap = cap;
    }
    memcpy(g->text + g->len, part, n + 1);
    g->len += n;
}

static const char *chain_text(Arena *a, const Derivation *d, const DxVar *v)
{
    Growing s = {NULL, 0, 0};
    for (int i = 0; i < v->nuses; i++) {
        const DxUse *u = &v->uses[i];
        if (is_num(u->dx, 0))
            continue;
        bool negative = dx_negative(u->dx);
        Dx *x = negative ? dx_negate(a, u->dx) : u->dx;
        const char *t;
        int prec;
        if (u->scalar_local) {
            t = token(a, d, u->user);
            if (!is_num(x, 1)) {
                const char *local = dx_text(a, d, x, &prec);
                t = arena_printf(a, "%s * %s", t, paren(a, local, prec, P_PRODUCT));
            }
            prec = P_PRODUCT;
        } else {
            t = dx_text(a, d, x, &prec);
        }
        if (!s.len) {
            grow_add(a, &s, negative ? "-" : "");
            grow_add(a, &s, negative ? paren(a, t, prec, P_PRODUCT) : t);
        } else {
            grow_add(a, &s, negative ? " - " : " + ");
            grow_add(a, &s, paren(a, t, prec, P_PRODUCT));
        }
    }
    return s.len ? s.text : "0";
}

const char *explain_chain_rule(Arena *a, const Derivation *d, const char *name)
{
    /* binary search in by_name: generated code asks once per gradient
     * step, so a scan of every variable would make emission quadratic */
    int lo = 0, hi = d->nvars - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(d->vars[d->by_name[mid]].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < d->nvars - 1 && !strcmp(d->vars[d->by_name[lo]].name, name)) {
        int vi = d->by_name[lo];
        return arena_printf(a, "%s = %s", token(a, d, vi), chain_text(a, d, &d->vars[vi]));
    }
    return NULL;
}

static bool all_scalar(const Model *m)
{
    for (int i = 0; i < m->ninputs; i++)
        if (m->inputs[i]->shape.rank)
            return false;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i]->shape.rank)
            return false;
    for (int i = 0; i < m->nvalues; i++)
        if (m->values[i]->shape.rank)
            return false;
    return true;
}

/* The number of operations in n written out in full, at most cap: a
 * node used twice counts twice, as the text repeats it. Every operation
 * writes at least a character, so this tells in time linear in the graph
 * that a text is too long, where rendering it first could take time
 * exponential in the model's depth. size[] (one per node, 0 = not yet)
 * carries what is known between calls. */
static size_t tree_size(const Node *n, size_t *size, size_t cap)
{
    if (size[n->id])
        return size[n->id];
    size_t total = 1;
    if (n->op != OP_INPUT && n->op != OP_PARAM)
        for (int k = 0; k < n->nin && total <= cap; k++)
            total += tree_size(n->in[k], size, cap);
    return size[n->id] = total < cap ? total : cap + 1;
}

/* What --derivatives prints for a parameter or an input, by name; NULL
 * when it is longer than EXPLAIN_CLOSED_LIMIT characters. size: for
 * tree_size, one per node of g, shared by the calls. */
static const char *derivative_line(Arena *a, const Graph *g, const char *name, size_t *size)
{
    const Model *m = g->model;
    const Node *grad = NULL;
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i]->name, name))
            grad = g->grad_params[i];
    for (int k = 0; k < m->ninputs; k++)
        if (!strcmp(m->inputs[k]->name, name))
            grad = g->grad_inputs[k];
    if (!grad)
        return NULL;
    if (tree_size(grad, size, EXPLAIN_CLOSED_LIMIT) > EXPLAIN_CLOSED_LIMIT)
        return NULL;
    char *text = print_expr_within(grad, true, EXPLAIN_CLOSED_LIMIT);
    if (!text)
        return NULL;
    char *s = arena_strdup(a, text);
    free(text);
    return s;
}

/* `L = -sum(y * log_softmax(z))`: cross_entropy(softmax(z), y) as the graph
 * keeps it. Returns the target's text, or NULL. */
static const char *softmax_cross_entropy_target(Arena *a, const Node *loss)
{
    if (loss->op != OP_MUL || !node_is_const(loss->in[0], -1) || loss->in[1]->op != OP_SUM)
        return NULL;
    const Node *prod = loss->in[1]->in[0];
    if (prod->op != OP_MUL)
        return NULL;
    for (int k = 0; k < 2; k++)
        if (prod->in[k]->op == OP_LOG_SOFTMAX)
            return node_text(a, prod->in[1 - k]);
    return NULL;
}

typedef struct {
    const char *name, *rhs, *note;
} Equation;

/* A forward equation as the user wrote it (from the checked AST), so the
 * derivation starts from the model's own text. */
static const char *expr_text(Arena *a, const Expr *e, int *prec)
{
    static const int bin_prec[] = {P_SUM, P_SUM, P_PRODUCT, P_PRODUCT, P_POWER, P_PRODUCT};
    static const char *const bin_op[] = {" + ", " - ", " * ", " / ", "^", " \xc2\xb7 "};
    int lp, rp;
    switch (e->kind) {
    case EX_NUM:
        *prec = P_ATOM;
        return number_text(a, e->num);
    case EX_NAME:
        *prec = P_ATOM;
        return e->name;
    case EX_NEG: {
        const char *x = expr_text(a, e->lhs, &lp);
        *prec = P_UNARY;
        return arena_printf(a, "-%s", paren(a, x, lp, P_UNARY));
    }
    case EX_BINARY: {
        int op = (int)e->op, p = bin_prec[op];
        const char *l = expr_text(a, e->lhs, &lp);
        const char *r = expr_text(a, e->rhs, &rp);
        *prec = p;
        if (op == BIN_POW)   /* right-associative */
            return arena_printf(a, "%s^%s", paren(a, l, lp, P_ATOM), paren(a, r, rp, P_POWER));
        return arena_printf(a, "%s%s%s", paren(a, l, lp, p), bin_op[op], paren(a, r, rp, p + 1));
    }
    case EX_CALL: {
        const char *s = "";
        for (int i = 0; i < e->nargs; i++)
            s = arena_printf(a, i ? "%s, %s%s%s" : "%s%s%s%s", s,
                             e->args[i]->keyword ? e->args[i]->keyword : "",
                             e->args[i]->keyword ? "=" : "", expr_text(a, e->args[i], &lp));
        *prec = P_ATOM;
        return arena_printf(a, "%s(%s)", e->name, s);
    }
    }
    *prec = P_ATOM;
    return "?";
}

/* ---------------------------------------------------------------- LaTeX */

/* Markdown output parses each line of .net text (with its dL/dY tokens)
 * and writes it as LaTeX. */
typedef struct {
    Arena *a;
    const char *p;
} Tex;

static void tex_space(Tex *t)
{
    while (*t->p == ' ')
        t->p++;
}

static const char *tex_sum(Tex *t, int *prec);

static bool is_ident_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_ident(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static const char *tex_name(Arena *a, const char *name)
{
    static const char *const greek[] = {
        "alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa",
        "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "phi", "chi", "psi", "omega"};
    size_t len = strlen(name), letters = len;
    while (letters > 0 && name[letters - 1] >= '0' && name[letters - 1] <= '9')
        letters--;
    const char *base = arena_strndup(a, name, letters);
    const char *sub = letters < len ? name + letters : NULL;
    const char *tb = NULL;
    for (size_t i = 0; i < sizeof greek / sizeof *greek; i++)
        if (!strcmp(base, greek[i]))
            tb = arena_printf(a, "\\%s", base);
    if (!tb && letters > 3 && !strcmp(base + letters - 3, "hat") && letters == 4)
        tb = arena_printf(a, "\\hat{%c}", base[0]);
    if (!tb && letters == 1)
        tb = base;
    if (!tb || letters == 0) {
        /* \mathrm{} for words; underscores escaped */
        char *esc = arena_alloc(a, len * 2 + 1), *o = esc;
        for (const char *s = name; *s; s++) {
            if (*s == '_')
                *o++ = '\\';
            *o++ = *s;
        }
        return arena_printf(a, "\\mathrm{%s}", esc);
    }
    return sub ? arena_printf(a, "%s_{%s}", tb, sub) : tb;
}

static const char *tex_group(Arena *a, const char *s, int prec, int need)
{
    return prec < need ? arena_printf(a, "\\left(%s\\right)", s) : s;
}

static const char *tex_atom(Tex *t, int *prec)
{
    Arena *a = t->a;
    tex_space(t);
    *prec = P_ATOM;
    if (*t->p == '(') {
        t->p++;
        int inner;
        const char *s = tex_sum(t, &inner);
        tex_space(t);
        if (*t->p == ')')
            t->p++;
        /* keep the grouping the text had */
        *prec = P_ATOM;
        return arena_printf(a, "\\left(%s\\right)", s);
    }
    if ((*t->p >= '0' && *t->p <= '9') || *t->p == '.') {
        char *end;
        strtod(t->p, &end);
        const char *s = arena_strndup(a, t->p, (size_t)(end - t->p));
        t->p = end;
        return s;
    }
    if (!is_ident_start(*t->p)) {
        /* not .net text we know: pass the rest through */
        const char *s = arena_printf(a, "\\text{%s}", t->p);
        t->p += strlen(t->p);
        return s;
    }
    const char *start = t->p;
    while (is_ident(*t->p))
        t->p++;
    const char *name = arena_strndup(a, start, (size_t)(t->p - start));
    /* an adjoint token dL/dY */
    if (*t->p == '/' && t->p[1] == 'd' && name[0] == 'd' && is_ident_start(t->p[2])) {
        const char *ystart = t->p + 2, *q = ystart;
        while (is_ident(*q))
            q++;
        const char *y = arena_strndup(a, ystart, (size_t)(q - ystart));
        t->p = q;
        return arena_printf(a, "\\frac{\\partial %s}{\\partial %s}", tex_name(a, name + 1),
                            tex_name(a, y));
    }
    if (*t->p != '(')
        return tex_name(a, name);
    /* a call */
    t->p++;
    const char *args[2] = {NULL, NULL};
    int precs[2] = {P_ATOM, P_ATOM}, nargs = 0;
    for (;;) {
        tex_space(t);
        if (*t->p == ')' || !*t->p)
            break;
        const char *s = tex_sum(t, &precs[nargs < 2 ? nargs : 1]);
        if (nargs < 2)
            args[nargs] = s;
        nargs++;
        tex_space(t);
        if (*t->p == ',')
            t->p++;
    }
    if (*t->p == ')')
        t->p++;
    const char *x = args[0] ? args[0] : "";
    if (!strcmp(name, "sqrt"))
        return arena_printf(a, "\\sqrt{%s}", x);
    if (!strcmp(name, "transpose")) {
        *prec = P_POWER;
        return arena_printf(a, "%s^{\\top}", tex_group(a, x, precs[0], P_ATOM));
    }
    if (!strcmp(name, "outer") && nargs == 2) {
        *prec = P_PRODUCT;
        return arena_printf(a, "%s \\, %s^{\\top}", tex_group(a, x, precs[0], P_UNARY),
                            tex_group(a, args[1], precs[1], P_ATOM));
    }
    static const char *const known[] = {"exp", "log", "sin", "cos", "tanh"};
    const char *fn = NULL;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(name, known[i]))
            fn = arena_printf(a, "\\%s", name);
    if (!strcmp(name, "sigmoid"))
        fn = "\\sigma";
    if (!fn) {
        char *esc = arena_alloc(a, strlen(name) * 2 + 1), *o = esc;
        for (const char *s = name; *s; s++) {
            if (*s == '_')
                *o++ = '\\';
            *o++ = *s;
        }
        fn = arena_printf(a, "\\operatorname{%s}", esc);
    }
    if (nargs == 2)
        return arena_printf(a, "%s\\left(%s, %s\\right)", fn, x, args[1]);
    return arena_printf(a, "%s\\left(%s\\right)", fn, x);
}

static const char *tex_power(Tex *t, int *prec)
{
    const char *base = tex_atom(t, prec);
    tex_space(t);
    if (*t->p != '^')
        return base;
    t->p++;
    tex_space(t);
    int ep;
    const char *e;
    if (*t->p == '-') {
        t->p++;
        e = arena_printf(t->a, "-%s", tex_power(t, &ep));
    } else {
        e = tex_power(t, &ep);
    }
    *prec = P_POWER;
    bool plain = true;
    for (const char *c = base; *c; c++)
        plain = plain && is_ident(*c);
    return arena_printf(t->a, plain ? "%s^{%s}" : "{%s}^{%s}", base, e);
}

static const char *tex_unary(Tex *t, int *prec)
{
    tex_space(t);
    if (*t->p == '-') {
        t->p++;
        int inner;
        const char *s = tex_unary(t, &inner);
        *prec = P_UNARY;
        return arena_printf(t->a, "-%s", s);
    }
    return tex_power(t, prec);
}

/* `a * b / c` is written a · b/c: the fraction takes the factor before
 * it, which is what the left-to-right reading means. */
static const char *tex_product(Tex *t, int *prec)
{
    const char *before = "", *last = tex_unary(t, prec);
    for (;;) {
        tex_space(t);
        int rp;
        if (*t->p == '*') {
            t->p++;
            before = arena_printf(t->a, "%s%s \\cdot ", before, last);
            last = tex_unary(t, &rp);
        } else if (*t->p == '@' || !strncmp(t->p, "\xc2\xb7", 2)) {
            t->p += *t->p == '@' ? 1 : 2;
            before = arena_printf(t->a, "%s%s \\, ", before, last);
            last = tex_unary(t, &rp);
        } else if (*t->p == '/') {
            t->p++;
            const char *den = tex_unary(t, &rp);
            /* \frac groups by itself: outer parentheses are not needed */
            size_t dl = strlen(den);
            if (!strncmp(den, "\\left(", 6) && dl > 13 && !strcmp(den + dl - 7, "\\right)"))
                den = arena_strndup(t->a, den + 6, dl - 13);
            last = arena_printf(t->a, "\\frac{%s}{%s}", last, den);
        } else {
            return arena_printf(t->a, "%s%s", before, last);
        }
        *prec = P_PRODUCT;
    }
}

static const char *tex_sum(Tex *t, int *prec)
{
    const char *s = tex_product(t, prec);
    for (;;) {
        tex_space(t);
        if (*t->p != '+' && *t->p != '-')
            return s;
        char op = *t->p++;
        int rp;
        s = arena_printf(t->a, "%s %c %s", s, op, tex_product(t, &rp));
        *prec = P_SUM;
    }
}

static const char *tex_of(Arena *a, const char *text)
{
    Tex t = {a, text};
    int prec;
    const char *s = tex_sum(&t, &prec);
    if (*t.p)
        s = arena_printf(a, "%s \\text{%s}", s, t.p);
    return s;
}

/* ---------------------------------------------------------------- output */

bool explain_model(Arena *a, Model *m, ExplainFormat format, FILE *out)
{
    Derivation *d = explain_derive(a, m, true);
    Graph *g = d->graph;

    /* the forward equations, in evaluation order */
    Equation *eq = arena_alloc(a, sizeof *eq * (size_t)(m->nvalues + 1));
    for (int i = 0; i < m->nvalues; i++) {
        Node *n = g->value_nodes[i];
        int prec;
        eq[i].name = m->values[i]->name;
        eq[i].rhs = expr_text(a, m->values[i]->stmt->expr, &prec);
        const char *target = m->values[i] == m->loss ? softmax_cross_entropy_target(a, n) : NULL;
        if (target) {
            /* the graph holds it as -sum(y * log_softmax(z)): say so */
            const char *saved = n->name;
            n->name = NULL;
            eq[i].note = arena_printf(a, "computed as %s; sum(%s) = 1 when %s is one-hot",
                                      node_text(a, n), target, target);
            n->name = saved;
        }
    }

    /* the blocks */
    Graph *full = NULL;
    if (all_scalar(m)) {
        full = graph_build(a, m, false);
        diff_graph(full);
        simp_graph(full);
    }
    size_t *size = full ? arena_alloc(a, sizeof *size * (size_t)full->nnodes) : NULL;
    Block *blocks = arena_alloc(a, sizeof *blocks * (size_t)(d->nvars + 1));
    for (int vi = 0; vi < d->nvars; vi++) {
        DxVar *v = &d->vars[vi];
        Block *b = &blocks[vi];
        b->lhs = token(a, d, vi);
        if (vi == 0) {
            block_add(a, b, "1");
            continue;
        }
        block_add(a, b, chain_text(a, d, v));
        if (v->closed_cut) {
            b->note = v->leaf ? arena_printf(a, "closed form not written: longer than %d "
                                                "characters",
                                             EXPLAIN_CLOSED_LIMIT)
                              : arena_printf(a, "closed form not written: longer than %d "
                                                "characters; the closed forms below name %s",
                                             EXPLAIN_CLOSED_LIMIT, b->lhs);
            continue;
        }
        block_add(a, b, v->closed_text);
        const char *last = full && v->leaf ? derivative_line(a, full, v->name, size) : NULL;
        if (last)
            block_add(a, b, last);
        else if (full && v->leaf)
            b->note = arena_printf(a, "in inputs and parameters alone it is longer than %d "
                                      "characters: not written",
                                   EXPLAIN_CLOSED_LIMIT);
    }

    if (format == EXPLAIN_TEXT) {
        for (int i = 0; i < m->nvalues; i++) {
            fprintf(out, "%s = %s", eq[i].name, eq[i].rhs);
            if (eq[i].note)
                fprintf(out, "   # %s", eq[i].note);
            fputc('\n', out);
        }
        fputc('\n', out);
        for (int vi = 0; vi < d->nvars; vi++) {
            Block *b = &blocks[vi];
            int indent = (int)strlen(b->lhs);
            for (int k = 0; k < b->nlines; k++) {
                if (k == 0)
                    fprintf(out, "%s = %s\n", b->lhs, b->lines[k]);
                else
                    fprintf(out, "%*s = %s\n", indent, "", b->lines[k]);
            }
            if (b->note)
                fprintf(out, "%*s # %s\n", indent, "", b->note);
        }
    } else {
        fprintf(out, "## How reverse mode differentiates %s\n\n", d->loss_name);
        fputs("Forward, in evaluation order:\n\n", out);
        for (int i = 0; i < m->nvalues; i++)
            fprintf(out, "$$ %s = %s $$\n", tex_name(a, eq[i].name), tex_of(a, eq[i].rhs));
        for (int i = 0; i < m->nvalues; i++)
            if (eq[i].note)
                fprintf(out, "\nNote: %s.\n", eq[i].note);
        fputs("\nBackward, latest first: each adjoint is the sum, over the values that use "
              "it, of their adjoint times the local derivative.\n",
              out);
        for (int vi = 0; vi < d->nvars; vi++) {
            Block *b = &blocks[vi];
            const char *lhs = tex_of(a, b->lhs);
            fputc('\n', out);
            for (int k = 0; k < b->nlines; k++)
                fprintf(out, "$$ %s = %s $$\n", lhs, tex_of(a, b->lines[k]));
            if (b->note)
                fprintf(out, "\nNote: %s.\n", b->note);
        }
    }
    return fflush(out) == 0 && !ferror(out);
}
