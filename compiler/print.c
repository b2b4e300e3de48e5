/* print.c — graph nodes written back as .net expressions.
 *
 * In:  a node (usually a simplified gradient).
 * Out: text in the .net expression syntax, e.g. `L / sqrt(L^2 + 2)`.
 *
 * The graph's canonical algebra is turned back into what a person writes:
 * a sum whose terms carry negative coefficients prints with `-`, factors
 * with negative exponents go under a `/`, `x^0.5` prints as `sqrt(x)`.
 * Each rendering returns its precedence, and a parent puts parentheses
 * around a child only when the child binds more loosely than its position
 * needs. Shared sub-expressions print once per use; when written out in
 * full that could grow without bound, so text past a limit is abandoned
 * and the expression is written with its named intermediates instead.
 */
#include "bpgen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { PREC_SUM = 1, PREC_PRODUCT = 2, PREC_UNARY = 3, PREC_POWER = 4, PREC_ATOM = 5 };
enum { INLINE_LIMIT = 1 << 20 };

typedef struct {
    char *s;
    size_t n, cap, limit;
    bool overflow;
} Buf;

static void put(Buf *b, const char *s)
{
    size_t len = strlen(s);
    if (b->overflow || b->n + len > b->limit) {
        b->overflow = true;
        return;
    }
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + len + 1)
            cap *= 2;
        char *s2 = realloc(b->s, cap);
        if (!s2)
            arena_out_of_memory();   /* not a cut: the text would be wrong */
        b->s = s2;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, len + 1);
    b->n += len;
}

static Buf buf_new(size_t limit)
{
    Buf b = {NULL, 0, 0, limit, false};
    put(&b, "");
    return b;
}

void print_number(char out[64], double v)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, 64, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (strchr(out, 'e') && fabs(v) >= 1e-4 && fabs(v) < 1e15) {
        char fixed[64];
        for (int decimals = 0; decimals <= 17; decimals++) {
            snprintf(fixed, sizeof fixed, "%.*f", decimals, v);
            if (strtod(fixed, NULL) == v) {
                memcpy(out, fixed, sizeof fixed);
                break;
            }
        }
    }
}

static void put_number(Buf *b, double v)
{
    char tmp[64];
    print_number(tmp, v);
    put(b, tmp);
}

typedef struct {
    bool inline_values;
    const char *const *names;   /* by node id: a name to show instead of the
                                   expression (NULL: none), or NULL */
    const Node *defining;       /* the node whose definition is written now */
} Printer;

static int render(const Printer *p, Buf *b, const Node *n);

/* Renders `n`, in parentheses when it binds looser than `need`; returns
 * the precedence of what was written. */
static int render_at(const Printer *p, Buf *b, const Node *n, int need)
{
    /* the child gets only what is left of the parent's budget, so that a
     * shared sub-expression used many times stops being rendered once the
     * whole is past its limit, instead of once per use */
    if (b->overflow)
        return PREC_ATOM;
    Buf tmp = buf_new(b->limit - b->n);
    int prec = render(p, &tmp, n);
    if (tmp.overflow)
        b->overflow = true;
    if (prec < need)
        put(b, "(");
    put(b, tmp.s ? tmp.s : "");
    if (prec < need)
        put(b, ")");
    free(tmp.s);
    return prec < need ? PREC_ATOM : prec;
}

static bool shown_by_name(const Printer *p, const Node *n)
{
    if (p->names && p->names[n->id] && n != p->defining)
        return true;
    return n->op == OP_INPUT || n->op == OP_PARAM ||
           (!p->inline_values && n->name && n->op != OP_CONST);
}

static const char *name_of(const Printer *p, const Node *n)
{
    if (p->names && p->names[n->id] && n != p->defining)
        return p->names[n->id];
    return n->name ? n->name : "?";
}

/* ---------------------------------------------------------------- products */

typedef struct {
    const Node *base;
    double power;
} Factor;

typedef struct {
    Factor *f;        /* malloc'd */
    int n, cap;
    double coef;
    bool overflow;    /* out of memory */
    size_t most;      /* factors worth gathering: the text's limit */
} Factors;

/* Every factor takes at least one character of the text, so past `most`
 * of them the text is cut anyway: gathering stops there (the product is
 * then cut where it starts, since its coefficient and order are unknown),
 * and a brief print of a product with a million factors costs what its
 * limit allows. */
static void gather_factors(const Printer *p, Factors *fs, const Node *n, double power)
{
    if ((size_t)fs->n > fs->most)
        return;
    if (n->op == OP_CONST) {
        fs->coef *= pow(n->value, power);
    } else if (n->op == OP_MUL && power == 1 && !shown_by_name(p, n)) {
        gather_factors(p, fs, n->in[0], 1);
        gather_factors(p, fs, n->in[1], 1);
    } else if (n->op == OP_POW && n->in[1]->op == OP_CONST && power == 1 &&
               !shown_by_name(p, n)) {
        gather_factors(p, fs, n->in[0], n->in[1]->value);
    } else {
        if (fs->n == fs->cap) {
            int cap = fs->cap ? fs->cap * 2 : 16;
            Factor *f = realloc(fs->f, sizeof *f * (size_t)cap);
            if (!f)
                arena_out_of_memory();
            fs->f = f;
            fs->cap = cap;
        }
        fs->f[fs->n].base = n;
        fs->f[fs->n].power = power;
        fs->n++;
    }
}

/* Later nodes first: compound factors lead and the leaves they multiply
 * follow, and leaves come in reverse declaration order, so parameters
 * (declared after inputs, as a rule) precede inputs: `theta1 * x`. */
static int by_later_factor(const void *pa, const void *pb)
{
    const Factor *a = pa, *b = pb;
    if (a->base->id != b->base->id)
        return (a->base->id < b->base->id) - (a->base->id > b->base->id);
    return (a->power < b->power) - (a->power > b->power);
}

static void sort_factors(Factors *fs)
{
    if (fs->n > 1)
        qsort(fs->f, (size_t)fs->n, sizeof *fs->f, by_later_factor);
}

/* base^power with power > 0; returns the precedence written */
static int render_power(const Printer *p, Buf *b, const Node *base, double power)
{
    if (power == 1)
        return render_at(p, b, base, PREC_UNARY);
    if (power == 0.5) {
        put(b, "sqrt(");
        render_at(p, b, base, 0);
        put(b, ")");
        return PREC_ATOM;
    }
    render_at(p, b, base, PREC_ATOM);
    put(b, "^");
    put_number(b, power);
    return PREC_POWER;
}

/* The factors on one side of the `/`, joined by ` * `. Returns how many
 * there were; *prec gets the precedence of a lone factor. */
static int render_list(const Printer *p, Buf *b, const Factors *fs, bool numerator, int *prec)
{
    int count = 0;
    for (int i = 0; i < fs->n; i++) {
        double e = fs->f[i].power;
        if ((e > 0) != numerator)
            continue;
        if (count++)
            put(b, " * ");
        *prec = render_power(p, b, fs->f[i].base, numerator ? e : -e);
    }
    return count;
}

/* coef * n, written as a product; returns the precedence. */
static int render_product(const Printer *p, Buf *b, double coef, const Node *n)
{
    Factors fs = {NULL, 0, 0, coef, false, b->limit};
    gather_factors(p, &fs, n, 1);
    sort_factors(&fs);
    if (fs.overflow || (size_t)fs.n > fs.most) {
        free(fs.f);
        b->overflow = true;
        return PREC_ATOM;
    }
    /* a lone factor is no product: it needs no parentheses of its own, so
     * a sum reads `W · x + b`, not `(W · x) + b` */
    if (fs.n == 1 && fs.f[0].power == 1 && fs.coef == 1) {
        const Node *only = fs.f[0].base;
        free(fs.f);
        return render(p, b, only);
    }
    int nnum = 0, nden = 0;
    for (int i = 0; i < fs.n; i++)
        fs.f[i].power > 0 ? nnum++ : nden++;
    double c = fs.coef;
    bool negative = c < 0;
    if (negative) {
        put(b, "-");
        c = -c;
    }
    int prec = PREC_ATOM;
    bool show_coef = c != 1 || nnum == 0;
    if (show_coef) {
        put_number(b, c);
        if (nnum)
            put(b, " * ");
    }
    if (nnum) {
        int lone = PREC_ATOM;
        int count = render_list(p, b, &fs, true, &lone);
        prec = (count > 1 || show_coef) ? PREC_PRODUCT : lone;
    }
    if (nden) {
        int lone = PREC_ATOM;
        put(b, " / ");
        if (nden > 1)
            put(b, "(");
        render_list(p, b, &fs, false, &lone);
        if (nden > 1)
            put(b, ")");
        prec = PREC_PRODUCT;
    }
    if (negative && prec > PREC_UNARY)
        prec = PREC_UNARY;
    free(fs.f);
    return prec;
}

/* ---------------------------------------------------------------- sums */

typedef struct {
    const Node **t;   /* malloc'd */
    int n, cap;
    bool overflow;    /* out of memory */
    size_t most;      /* terms worth gathering: the text's limit */
} TermList;

/* As with factors, gathering stops where the text would be cut. */
static void gather_terms(const Printer *p, TermList *tl, const Node *n)
{
    if ((size_t)tl->n > tl->most)
        return;
    if (n->op == OP_ADD && !shown_by_name(p, n)) {
        gather_terms(p, tl, n->in[0]);
        gather_terms(p, tl, n->in[1]);
        return;
    }
    if (tl->n == tl->cap) {
        int cap = tl->cap ? tl->cap * 2 : 16;
        const Node **t = realloc(tl->t, sizeof *t * (size_t)cap);
        if (!t)
            arena_out_of_memory();
        tl->t = t;
        tl->cap = cap;
    }
    tl->t[tl->n++] = n;
}

static bool term_negative(const Printer *p, const Node *t)
{
    if (t->op == OP_CONST)
        return t->value < 0;
    return t->op == OP_MUL && t->in[0]->op == OP_CONST && !shown_by_name(p, t) &&
           t->in[0]->value < 0;
}

/* Compound terms first, later nodes first; constants last. */
static int by_later_term(const void *pa, const void *pb)
{
    const Node *a = *(const Node *const *)pa, *b = *(const Node *const *)pb;
    bool ca = a->op == OP_CONST, cb = b->op == OP_CONST;
    if (ca != cb)
        return ca - cb;
    int ia = a->op == OP_MUL && a->in[0]->op == OP_CONST ? a->in[1]->id : a->id;
    int ib = b->op == OP_MUL && b->in[0]->op == OP_CONST ? b->in[1]->id : b->id;
    return (ia < ib) - (ia > ib);
}

static int render_sum(const Printer *p, Buf *b, const Node *n)
{
    TermList tl = {NULL, 0, 0, false, b->limit};
    gather_terms(p, &tl, n);
    if (tl.overflow || (size_t)tl.n > tl.most) {
        free(tl.t);
        b->overflow = true;
        return PREC_ATOM;
    }
    qsort(tl.t, (size_t)tl.n, sizeof *tl.t, by_later_term);
    const Node **ordered = tl.t;
    int k = tl.n, count = tl.n;
    /* 1 - x reads better than -x + 1: lead with a positive term */
    for (int i = 0; i < k && term_negative(p, ordered[0]); i++)
        if (!term_negative(p, ordered[i])) {
            const Node *t = ordered[i];
            memmove(ordered + 1, ordered, sizeof *ordered * (size_t)i);
            ordered[0] = t;
            break;
        }
    for (int i = 0; i < k; i++) {
        const Node *t = ordered[i];
        double coef = 1;
        const Node *rest = t;
        if (t->op == OP_MUL && t->in[0]->op == OP_CONST && !shown_by_name(p, t)) {
            coef = t->in[0]->value;
            rest = t->in[1];
        }
        bool negative = term_negative(p, t);
        if (i == 0 && negative)
            put(b, "-");
        else if (i > 0)
            put(b, negative ? " - " : " + ");
        if (t->op == OP_CONST) {
            put_number(b, fabs(t->value));
        } else {
            Buf tmp = buf_new(b->limit - b->n);
            int prec = render_product(p, &tmp, fabs(coef), rest);
            bool paren = prec < PREC_PRODUCT; /* a - (b + c) */
            if (paren)
                put(b, "(");
            put(b, tmp.s);
            if (paren)
                put(b, ")");
            if (tmp.overflow)
                b->overflow = true;
            free(tmp.s);
        }
    }
    free(tl.t);
    return count > 1 ? PREC_SUM : PREC_UNARY;
}

/* ---------------------------------------------------------------- nodes */

/* name(operands, attributes): attributes as keyword arguments, as the
 * .net file writes stride= and pad= */
static int render_call(const Printer *p, Buf *b, const Node *n)
{
    const OpInfo *op = &op_info[n->op];
    bool flatten = n->op == OP_RESHAPE && n->shape.rank == 1;
    put(b, flatten ? "flatten" : op->name);
    put(b, "(");
    for (int k = 0; k < n->nin; k++) {
        if (k)
            put(b, ", ");
        render_at(p, b, n->in[k], 0);
    }
    for (int k = 0; k < MAX_ATTRS && op->attr_names[k] && !flatten; k++) {
        char tmp[64];
        if (n->op == OP_RESHAPE && n->attr[k] == 0)
            break;
        if (n->op == OP_MAXPOOL2D || n->op == OP_AVGPOOL2D) { /* as .net writes it */
            snprintf(tmp, sizeof tmp, ", %d", n->attr[k]);
            put(b, tmp);
            continue;
        }
        snprintf(tmp, sizeof tmp, ", %s=%d", op->attr_names[k], n->attr[k]);
        put(b, tmp);
    }
    put(b, ")");
    return PREC_ATOM;
}

static int render(const Printer *p, Buf *b, const Node *n)
{
    if (b->overflow)
        return PREC_ATOM;
    if (shown_by_name(p, n)) {
        put(b, name_of(p, n));
        return PREC_ATOM;
    }
    switch (n->op) {
    case OP_CONST:
        put_number(b, n->value);
        return n->value < 0 ? PREC_UNARY : PREC_ATOM;
    case OP_INPUT: case OP_PARAM:
        put(b, n->name ? n->name : "?");
        return PREC_ATOM;
    case OP_ADD:
        return render_sum(p, b, n);
    case OP_MUL:
        return render_product(p, b, 1, n);
    case OP_POW:
        if (n->in[1]->op == OP_CONST)
            return render_product(p, b, 1, n);
        render_at(p, b, n->in[0], PREC_ATOM);
        put(b, "^");
        render_at(p, b, n->in[1], PREC_ATOM);
        return PREC_POWER;
    case OP_MATMUL:
        render_at(p, b, n->in[0], PREC_PRODUCT);
        put(b, " · ");
        render_at(p, b, n->in[1], PREC_UNARY);
        return PREC_PRODUCT;
    case OP_BROADCAST:
        return render(p, b, n->in[0]);
    default:
        return render_call(p, b, n);
    }
}

static char *to_text(const Node *n, bool inline_values)
{
    Printer p = {inline_values, NULL, NULL};
    Buf b = buf_new(inline_values ? INLINE_LIMIT : (size_t)1 << 30);
    render(&p, &b, n);
    if (b.overflow && inline_values) {
        free(b.s);
        return to_text(n, false);
    }
    return b.s;
}

void print_expr_brief(FILE *out, const Node *n, size_t limit)
{
    Printer p = {false, NULL, NULL};
    Buf b = buf_new(limit);
    render(&p, &b, n);
    fputs(b.s ? b.s : "", out);
    if (b.overflow)
        fputs(" ...", out);
    free(b.s);
}

char *print_expr_within(const Node *n, bool inline_values, size_t limit)
{
    Printer p = {inline_values, NULL, NULL};
    Buf b = buf_new(limit);
    render(&p, &b, n);
    if (b.overflow) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

void print_expr(FILE *out, const Node *n, bool inline_values)
{
    char *s = to_text(n, inline_values);
    fputs(s ? s : "", out);
    free(s);
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

/* The number of nodes in n written out as a tree (shared operands once per
 * use), at most `cap`: each takes at least a character of text, so past
 * the limit there is no need to render it (rendering would take as long as
 * the tree is big, which can be exponential in the size of the graph). */
static size_t tree_size(const Graph *g, const Node *n, bool inline_values, size_t cap,
                        size_t *memo)
{
    if (memo[n->id])
        return memo[n->id];
    size_t size = 1;
    bool named = n->op == OP_INPUT || n->op == OP_PARAM || (!inline_values && n->name);
    for (int k = 0; k < n->nin && !named && size <= cap; k++)
        size += tree_size(g, n->in[k], inline_values, cap, memo);
    if (size > cap)
        size = cap + 1;
    memo[n->id] = size;
    return size;
}

static char *text_within(const Graph *g, const Node *n, bool inline_values, size_t limit)
{
    size_t *memo = calloc((size_t)g->nnodes + 1, sizeof *memo);
    if (!memo)
        arena_out_of_memory();
    bool fits = tree_size(g, n, inline_values, limit, memo) <= limit;
    free(memo);
    return fits ? print_expr_within(n, inline_values, limit) : NULL;
}

/* The gradients of the model, one per line, each written in full; NULL
 * when one of them is past `limit` characters even with the model's
 * values named. */
static char **gradient_texts(const Graph *g, bool inline_values, size_t limit)
{
    const Model *m = g->model;
    int count = m->nparams + m->ninputs;
    char **texts = calloc((size_t)count + 1, sizeof *texts);
    if (!texts)
        arena_out_of_memory();
    for (int k = 0; k < count; k++) {
        const Node *grad = k < m->nparams ? g->grad_params[k] : g->grad_inputs[k - m->nparams];
        if (!grad)
            continue;
        texts[k] = inline_values ? text_within(g, grad, true, limit) : NULL;
        if (!texts[k])
            texts[k] = text_within(g, grad, false, limit);
        if (!texts[k]) {
            for (int j = 0; j < k; j++)
                free(texts[j]);
            free(texts);
            return NULL;
        }
    }
    return texts;
}

/* Adds to uses[] (by node id) the uses of each node reachable from root,
 * each edge of the DAG once, so that shared sub-expressions stand out. */
static void count_uses(const Graph *g, const Node *root, int *uses, bool *seen)
{
    const Node **stack = malloc(sizeof *stack * (size_t)(g->nnodes + 1));
    if (!stack)
        arena_out_of_memory();
    int top = 0;
    if (!seen[root->id]) {
        seen[root->id] = true;
        stack[top++] = root;
    }
    while (top) {
        const Node *n = stack[--top];
        for (int k = 0; k < n->nin; k++) {
            const Node *in = n->in[k];
            uses[in->id]++;
            if (!seen[in->id]) {
                seen[in->id] = true;
                stack[top++] = in;
            }
        }
    }
    free(stack);
}

/* Where every layer uses the one before twice, a gradient written in full
 * doubles with each layer. Then the derivation is written as a lecturer
 * would: the adjoints that are used more than once (dL/dv, as diff.c
 * labels them) and shared sums without a label (t1, t2, ...) get a line
 * of their own, in the order they are computed, and the gradients use
 * those names. Those lines are .net comments, so that the output still
 * has one `dL/dX = ` line per differentiated name and nothing else. */
static void print_with_named_adjoints(FILE *out, const Graph *g)
{
    const Model *m = g->model;
    int count = m->nparams + m->ninputs;
    int *uses = calloc((size_t)g->nnodes + 1, sizeof *uses);
    bool *seen = calloc((size_t)g->nnodes + 1, sizeof *seen);
    const char **names = calloc((size_t)g->nnodes + 1, sizeof *names);
    char (*made)[24] = calloc((size_t)g->nnodes + 1, sizeof *made);
    if (!uses || !seen || !names || !made)
        arena_out_of_memory();
    for (int k = 0; k < count; k++) {
        const Node *grad = k < m->nparams ? g->grad_params[k] : g->grad_inputs[k - m->nparams];
        if (grad)
            count_uses(g, grad, uses, seen);
    }
    int fresh = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        bool compound = n->nin > 0 && n->op != OP_BROADCAST;
        if (!seen[n->id] || uses[n->id] < 2 || !compound || n->name)
            continue;
        bool label_taken = false;
        for (int j = 0; j < i && n->label && !label_taken; j++)
            label_taken = names[g->nodes[j]->id] && strcmp(names[g->nodes[j]->id], n->label) == 0;
        if (n->label && !label_taken) {
            names[n->id] = n->label;
        } else if (n->op == OP_ADD) {
            snprintf(made[n->id], sizeof made[n->id], "t%d", ++fresh);
            names[n->id] = made[n->id];
        }
    }
    Printer p = {false, names, NULL};
    fprintf(out, "# written in full, these derivatives would pass %d MiB: the adjoints used\n"
                 "# more than once are named, and defined here in the order they are computed\n",
            INLINE_LIMIT >> 20);
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        if (!names[n->id])
            continue;
        Buf b = buf_new((size_t)1 << 30);
        p.defining = n;
        render(&p, &b, n);
        fprintf(out, "# %s = %s\n", names[n->id], b.s ? b.s : "");
        free(b.s);
    }
    p.defining = NULL;
    const char *loss = m->loss->name;
    for (int k = 0; k < count; k++) {
        const Node *grad = k < m->nparams ? g->grad_params[k] : g->grad_inputs[k - m->nparams];
        if (!grad)
            continue;
        const char *wrt = k < m->nparams ? m->params[k]->name : m->inputs[k - m->nparams]->name;
        Buf b = buf_new((size_t)1 << 30);
        render(&p, &b, grad);
        fprintf(out, "d%s/d%s = %s\n", loss, wrt, b.s ? b.s : "");
        free(b.s);
    }
    free(uses);
    free(seen);
    free(names);
    free(made);
}

void print_derivatives(FILE *out, const Graph *g)
{
    const Model *m = g->model;
    char **texts = gradient_texts(g, all_scalar(m), INLINE_LIMIT);
    if (!texts) {
        print_with_named_adjoints(out, g);
        return;
    }
    const char *loss = m->loss->name;
    for (int k = 0; k < m->nparams + m->ninputs; k++) {
        if (!texts[k])
            continue;
        const char *wrt = k < m->nparams ? m->params[k]->name : m->inputs[k - m->nparams]->name;
        fprintf(out, "d%s/d%s = %s\n", loss, wrt, texts[k]);
        free(texts[k]);
    }
    free(texts);
}
