/* simplify.c — global simplification of the roots.
 *
 * In:  a Graph after diff.c: loss, outputs and gradients set.
 * Out: the same roots, rewritten; nodes no root reaches are left behind as
 *      dead (lowering walks from the roots, so they cost nothing).
 *
 * node_new() already folds constants and applies identities where nodes
 * are born; what it cannot see is the shape of a whole sum or product.
 * This pass rebuilds every node reachable from a root, in creation order,
 * and for each sum, product or power:
 *   - flattens nested ADDs (MULs) that have no other user, so that
 *     a + (b + a) is seen as one sum of three terms;
 *   - collects like terms (2x + 3x = 5x, x - x = 0) and constant terms
 *     into one constant, and constant factors into one coefficient
 *     (2 · (0.5 · y) = y);
 *   - merges equal bases whose exponents are constants of the same sign
 *     (x · x = x^2), but not x / x, which is not 1 where x = 0;
 *   - turns (x^c)^p into x^(cp) for an integer p only where x^c has no
 *     other user, in products and alone (node_pow_of() built it whole:
 *     1 / P reads a stored P = sqrt(S) rather than computing
 *     1 / sqrt(S));
 *   - rebuilds through node_new in a canonical order (by node id), so
 *     equal sums and products become one node.
 * In generated code a sub-sum that has another user is kept whole:
 * flattening it would compute it twice. For --derivatives it is opened.
 */
#include "bpgen.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    Graph *g;
    /* For --derivatives (an unbatched graph) shared sub-sums are opened
     * too: the text should be as simple as it can be, and computing a
     * term twice costs nothing there. */
    bool open_shared;
    int *uses;        /* by old node id: users among reachable nodes */
    Node **rebuilt;   /* by old node id */
    int count;        /* nodes before this pass */
    /* Users of the nodes this pass made (by id - count): a node that
     * replaces an old one inherits the old one's users, so a shared
     * sub-product stays shared after its operands were rebuilt. Nodes
     * made inside a rebuilt sum or product have that one user. */
    int *new_uses;
    int new_uses_cap;
} Simp;

typedef struct {
    Node *node;
    double k;         /* coefficient (sums) or exponent (products) */
} Term;

typedef struct {
    Term *items;
    int n, cap;
    double constant;  /* sums: constant term; products: coefficient */
    int opened;       /* nested sums (products) opened so far */
} Terms;

static void terms_add(Graph *g, Terms *t, Node *node, double k)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 8;
        Term *items = arena_alloc(g->arena, sizeof *items * (size_t)cap);
        for (int i = 0; i < t->n; i++)
            items[i] = t->items[i];
        t->items = items;
        t->cap = cap;
    }
    t->items[t->n].node = node;
    t->items[t->n].k = k;
    t->n++;
}

static int by_id(const void *pa, const void *pb)
{
    const Term *a = pa, *b = pb;
    return (a->node->id > b->node->id) - (a->node->id < b->node->id);
}

static bool is_const(const Node *n) { return n->op == OP_CONST; }

/* Whether a nested sum (product) may be opened into its parent: it has no
 * other user, and the parent has not opened MAX_OPEN of them already. The
 * cap keeps long chains (a product nested a thousand deep) linear to
 * simplify: without it every level would flatten everything below it
 * again. */
enum { MAX_OPEN = 64 };

static bool single_use(const Simp *s, const Node *n)
{
    if (s->open_shared)
        return true;
    if (n->id < s->count)
        return s->uses[n->id] <= 1;
    int k = n->id - s->count;
    return k >= s->new_uses_cap || s->new_uses[k] <= 1;
}

/* `fresh` replaces an old node that had `uses` users. */
static void inherit_uses(Simp *s, const Node *fresh, int uses)
{
    if (fresh->id < s->count)
        return;     /* an old node: its own count already holds */
    int k = fresh->id - s->count;
    if (k >= s->new_uses_cap) {
        int cap = s->new_uses_cap ? s->new_uses_cap : 1024;
        while (cap <= k)
            cap *= 2;
        int *bigger = arena_alloc(s->g->arena, sizeof *bigger * (size_t)cap);
        for (int i = 0; i < s->new_uses_cap; i++)
            bigger[i] = s->new_uses[i];
        s->new_uses = bigger;
        s->new_uses_cap = cap;
    }
    s->new_uses[k] += uses;
}

static bool may_open(const Simp *s, Terms *t, const Node *n)
{
    if (t->opened >= MAX_OPEN || !single_use(s, n))
        return false;
    t->opened++;
    return true;
}

/* Gathers the terms of `n` (already rebuilt) times `k`; `open` says
 * whether a nested sum may be opened (it has no other user). */
static void collect_sum(Simp *s, Terms *t, Node *n, double k, bool open)
{
    if (is_const(n)) {
        t->constant += k * n->value;
    } else if (n->op == OP_MUL && is_const(n->in[0])) {
        collect_sum(s, t, n->in[1], k * n->in[0]->value, open && may_open(s, t, n->in[1]));
    } else if (n->op == OP_ADD && open) {
        collect_sum(s, t, n->in[0], k, may_open(s, t, n->in[0]));
        collect_sum(s, t, n->in[1], k, may_open(s, t, n->in[1]));
    } else {
        /* sums of like terms merge whatever the sign */
        for (int i = 0; i < t->n; i++)
            if (t->items[i].node == n) {
                t->items[i].k += k;
                return;
            }
        terms_add(s->g, t, n, k);
    }
}

/* Whether (x^c)^p may become x^(cp): p an integer ((x^2)^0.5 is |x|, not
 * x), and x^c has no other user. A shared x^c is computed anyway (in
 * generated code it is usually stored), and reading it is cheaper than
 * computing x^(cp) afresh: the derivative of P = sqrt(S), 0.5 / P, stays
 * that instead of 0.5 / sqrt(S). */
static bool may_open_power(const Simp *s, const Node *n, double p)
{
    return n->op == OP_POW && is_const(n->in[1]) && p == floor(p) && fabs(p) < 1e15 &&
           single_use(s, n);
}

/* Gathers the factors of `n` raised to `p`. (a b)^e opens into a^e b^e
 * only for integer e, (x^c)^p into x^(cp) where may_open_power() says. */
static void collect_product(Simp *s, Terms *t, Node *n, double p, bool open)
{
    if (is_const(n)) {
        t->constant *= pow(n->value, p);
    } else if (may_open_power(s, n, p)) {
        double e = p * n->in[1]->value;
        Node *base = n->in[0];
        if (base->op == OP_MUL && e == floor(e) && open && may_open(s, t, base))
            collect_product(s, t, base, e, true);
        else
            collect_product(s, t, base, e, false);
    } else if (n->op == OP_MUL && open) {
        collect_product(s, t, n->in[0], p, may_open(s, t, n->in[0]));
        collect_product(s, t, n->in[1], p, may_open(s, t, n->in[1]));
    } else {
        /* x^a x^b = x^(a+b) only when a and b have one sign */
        for (int i = 0; i < t->n; i++)
            if (t->items[i].node == n && (t->items[i].k > 0) == (p > 0)) {
                t->items[i].k += p;
                return;
            }
        terms_add(s->g, t, n, p);
    }
}

static bool has_zero_factor(const Node *n)
{
    if (n->op == OP_MUL)
        return has_zero_factor(n->in[0]) || has_zero_factor(n->in[1]);
    return node_is_const(n, 0);
}

static Node *rebuild_sum(Simp *s, Node *n)
{
    Graph *g = s->g;
    Terms t = {NULL, 0, 0, 0, 0};
    collect_sum(s, &t, n, 1, true);
    if (!isfinite(t.constant))
        return n;
    qsort(t.items, (size_t)t.n, sizeof *t.items, by_id);
    Node *sum = NULL;
    for (int i = 0; i < t.n; i++) {
        if (t.items[i].k == 0)
            continue;
        Node *term = node_new(g, OP_MUL, node_scalar(g, t.items[i].k), t.items[i].node);
        sum = sum ? node_new(g, OP_ADD, sum, term) : term;
    }
    Node *c = node_scalar(g, t.constant + 0.0);
    sum = sum ? node_new(g, OP_ADD, sum, c) : c;
    if (!shape_eq(sum->shape, n->shape))
        sum = node_broadcast(g, sum, n->shape);
    return sum;
}

static Node *rebuild_product(Simp *s, Node *n)
{
    Graph *g = s->g;
    Terms t = {NULL, 0, 0, 1, 0};
    collect_product(s, &t, n, 1, true);
    /* a coefficient that overflowed, or underflowed to 0 from nonzero
     * factors, would change what the program computes */
    if (!isfinite(t.constant) || (t.constant == 0 && !has_zero_factor(n)))
        return n;
    qsort(t.items, (size_t)t.n, sizeof *t.items, by_id);
    Node *prod = NULL;
    for (int i = 0; i < t.n; i++) {
        if (t.items[i].k == 0)
            continue;
        Node *f = node_pow_of(g, t.items[i].node, node_scalar(g, t.items[i].k));
        prod = prod ? node_new(g, OP_MUL, prod, f) : f;
    }
    Node *c = node_scalar(g, t.constant + 0.0);
    prod = prod ? node_new(g, OP_MUL, c, prod) : c;
    if (!shape_eq(prod->shape, n->shape))
        prod = node_broadcast(g, prod, n->shape);
    return prod;
}

/* (x^c)^q = x^(cq) for a power outside any product, by the same rule. */
static Node *rebuild_power(Simp *s, Node *n)
{
    Node *inner = n->in[0], *q = n->in[1];
    if (!is_const(q) || !may_open_power(s, inner, q->value))
        return n;
    return node_pow_of(s->g, inner->in[0], node_scalar(s->g, inner->in[1]->value * q->value));
}

static Node *rebuild(Simp *s, Node *n)
{
    if (n->nin == 0)
        return n;
    Node *in[MAX_OPERANDS];
    for (int k = 0; k < n->nin; k++)
        in[k] = s->rebuilt[n->in[k]->id];
    s->g->line = n->line;   /* the rebuilt form stays with n's statement */
    Node *fresh = n->op == OP_BROADCAST ? node_broadcast(s->g, in[0], n->shape)
                : n->op == OP_POW       ? node_pow_of(s->g, in[0], in[1])
                                        : node_new_n(s->g, n->op, n->nin, in, n->attr);
    if (fresh->op == OP_ADD)
        fresh = rebuild_sum(s, fresh);
    else if (fresh->op == OP_MUL)
        fresh = rebuild_product(s, fresh);
    else if (fresh->op == OP_POW)
        fresh = rebuild_power(s, fresh);
    if (!fresh->name)
        fresh->name = n->name;
    if (!fresh->label)
        fresh->label = n->label;
    return fresh;
}

static void mark(Node *root, bool *live)
{
    if (root)
        live[root->id] = true;
}

void simp_graph(Graph *g)
{
    Model *m = g->model;
    Simp s = {g, !g->batched_inputs, NULL, NULL, g->nnodes, NULL, 0};
    s.uses = arena_alloc(g->arena, sizeof(int) * (size_t)(s.count + 1));
    s.rebuilt = arena_alloc(g->arena, sizeof(Node *) * (size_t)(s.count + 1));
    bool *live = arena_alloc(g->arena, sizeof(bool) * (size_t)(s.count + 1));

    mark(g->loss, live);
    for (int i = 0; i < m->noutputs; i++)
        mark(g->output_nodes[i], live);
    for (int i = 0; i < m->nparams; i++)
        mark(g->grad_params[i], live);
    for (int k = 0; k < m->ninputs; k++)
        mark(g->grad_inputs[k], live);
    for (int i = s.count - 1; i >= 0; i--) {
        Node *n = g->nodes[i];
        if (!live[i])
            continue;
        for (int k = 0; k < n->nin; k++) {
            live[n->in[k]->id] = true;
            s.uses[n->in[k]->id]++;
        }
    }
    /* a root is a user too: its sum must stay whole for whoever reads it */
    if (g->loss)
        s.uses[g->loss->id]++;

    for (int i = 0; i < s.count; i++) {
        s.rebuilt[i] = live[i] ? rebuild(&s, g->nodes[i]) : g->nodes[i];
        if (live[i])
            inherit_uses(&s, s.rebuilt[i], s.uses[i]);
    }
    g->line = 0;

    if (g->loss)
        g->loss = s.rebuilt[g->loss->id];
    for (int i = 0; i < m->noutputs; i++)
        g->output_nodes[i] = s.rebuilt[g->output_nodes[i]->id];
    for (int i = 0; i < m->nparams; i++)
        if (g->grad_params[i])
            g->grad_params[i] = s.rebuilt[g->grad_params[i]->id];
    for (int k = 0; k < m->ninputs; k++)
        if (g->grad_inputs[k])
            g->grad_inputs[k] = s.rebuilt[g->grad_inputs[k]->id];
    for (int i = 0; i < m->nvalues; i++)
        if (g->value_nodes[i]->id < s.count && live[g->value_nodes[i]->id])
            g->value_nodes[i] = s.rebuilt[g->value_nodes[i]->id];
}
