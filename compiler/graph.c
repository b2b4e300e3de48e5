/* graph.c — the expression graph, and the AST -> graph pass.
 *
 * In:  a checked Model (every expression has its shape, every name its
 *      symbol).
 * Out: a Graph whose nodes are the model's values, with g->loss and
 *      g->output_nodes set.
 *
 * Every node is made by node_new(), the single door into the graph. It
 * computes the node's shape, folds constants (never to NaN, infinity or
 * -0), applies local identities (x*1, x+0, 0*x, x^1, log(exp x), ...),
 * puts constants first in commutative operations, and then looks the node
 * up in a hash table: an equal node that exists already is returned
 * instead, so equal sub-expressions are one node (CSE for free) and later
 * passes can compare sub-expressions by pointer.
 *
 * The graph keeps a small canonical algebra (see ops.h): subtraction,
 * division, negation, sqrt, mean, dot and the losses are spelled with ADD,
 * MUL, POW, SUM, LOG and LOG_SOFTMAX, so that the simplifier and the
 * differentiator have fewer cases to know.
 */
#include "bpgen.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

const Shape SHAPE_SCALAR = {0, {1, 1, 1, 1}};

bool shape_eq(Shape a, Shape b)
{
    if (a.rank != b.rank)
        return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[i])
            return false;
    return true;
}

long shape_size(Shape s)
{
    long n = 1;
    for (int i = 0; i < s.rank; i++)
        n *= s.dim[i];
    return n;
}

bool node_is_const(const Node *n, double value)
{
    return n && n->op == OP_CONST && n->value == value;
}

static bool is_const(const Node *n)
{
    return n->op == OP_CONST;
}

/* ---------------------------------------------------------------- hashing */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

static uint64_t node_hash(Op op, Shape shape, int nin, Node *const *in, const int *attr,
                          double value, int index)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    uint64_t h = (uint64_t)op;
    h = mix(h, (uint64_t)shape.rank);
    for (int i = 0; i < shape.rank; i++)
        h = mix(h, (uint64_t)shape.dim[i]);
    h = mix(h, (uint64_t)nin);
    for (int k = 0; k < nin; k++)
        h = mix(h, (uint64_t)in[k]->id + 1);
    for (int k = 0; k < MAX_ATTRS; k++)
        h = mix(h, (uint64_t)(unsigned)attr[k]);
    h = mix(h, bits);
    h = mix(h, (uint64_t)(index + 1));
    return h;
}

static void table_grow(Graph *g)
{
    int cap = g->table_cap ? g->table_cap * 2 : 1024;
    Node **table = arena_alloc(g->arena, sizeof *table * (size_t)cap);
    for (int i = 0; i < g->nnodes; i++) {
        Node *n = g->nodes[i];
        uint64_t h = node_hash(n->op, n->shape, n->nin, n->in, n->attr, n->value, n->index);
        size_t slot = (size_t)(h % (uint64_t)cap);
        n->hash_next = table[slot];
        table[slot] = n;
    }
    g->table = table;
    g->table_cap = cap;
}

static const int NO_ATTRS[MAX_ATTRS];

static bool same_node(const Node *n, Op op, Shape shape, int nin, Node *const *in,
                      const int *attr, double value, int index)
{
    if (n->op != op || !shape_eq(n->shape, shape) || n->nin != nin || n->value != value ||
        n->index != index)
        return false;
    for (int k = 0; k < nin; k++)
        if (n->in[k] != in[k])
            return false;
    for (int k = 0; k < MAX_ATTRS; k++)
        if (n->attr[k] != attr[k])
            return false;
    return true;
}

/* Returns the node with these fields, creating it when it is new. */
static Node *intern(Graph *g, Op op, Shape shape, int nin, Node *const *in, const int *attr,
                    double value, int index)
{
    if (value == 0)
        value = 0; /* -0 and 0 are one constant */
    if (!attr)
        attr = NO_ATTRS;
    if (g->nnodes >= g->table_cap / 2)
        table_grow(g);
    uint64_t h = node_hash(op, shape, nin, in, attr, value, index);
    size_t slot = (size_t)(h % (uint64_t)g->table_cap);
    for (Node *n = g->table[slot]; n; n = n->hash_next)
        if (same_node(n, op, shape, nin, in, attr, value, index))
            return n;

    Node *n = arena_alloc(g->arena, sizeof *n);
    n->op = op;
    n->shape = shape;
    for (int i = shape.rank; i < MAX_RANK; i++)
        n->shape.dim[i] = 1;
    n->nin = nin;
    n->batched = op == OP_INPUT && g->batched_inputs;
    for (int k = 0; k < nin; k++) {
        n->in[k] = in[k];
        n->batched = n->batched || (op != OP_BATCH_MEAN && in[k]->batched);
    }
    memcpy(n->attr, attr, sizeof n->attr);
    n->value = value;
    n->index = index;
    n->id = g->nnodes;
    n->line = g->line;
    if (g->nnodes == g->nodes_cap) {
        int cap = g->nodes_cap ? g->nodes_cap * 2 : 1024;
        Node **nodes = arena_alloc(g->arena, sizeof *nodes * (size_t)cap);
        if (g->nnodes)
            memcpy(nodes, g->nodes, sizeof *nodes * (size_t)g->nnodes);
        g->nodes = nodes;
        g->nodes_cap = cap;
    }
    g->nodes[g->nnodes++] = n;
    n->hash_next = g->table[slot];
    g->table[slot] = n;
    return n;
}

static Node *intern2(Graph *g, Op op, Shape shape, Node *a, Node *b)
{
    Node *in[2] = {a, b};
    return intern(g, op, shape, b ? 2 : a ? 1 : 0, in, NULL, 0, -1);
}

Node *node_const(Graph *g, double value, Shape shape)
{
    return intern(g, OP_CONST, shape, 0, NULL, NULL, value, -1);
}

Node *node_scalar(Graph *g, double value)
{
    return node_const(g, value, SHAPE_SCALAR);
}

Node *node_broadcast(Graph *g, Node *scalar, Shape shape)
{
    if (shape.rank == 0)
        return scalar;
    if (is_const(scalar))
        return node_const(g, scalar->value, shape);
    return intern2(g, OP_BROADCAST, shape, scalar, NULL);
}

/* ---------------------------------------------------------------- shapes */

/* The shape of op(in...), by the operation's rule in ops.c; operands are
 * assumed valid (check.c or diff.c saw to it). */
static Shape result_shape(Op op, int nin, Node *const *in, const int *attr, ShapeError *err)
{
    Shape shapes[MAX_OPERANDS];
    for (int k = 0; k < nin; k++)
        shapes[k] = in[k]->shape;
    return op_info[op].shape(shapes, nin, attr ? attr : NO_ATTRS, err);
}

/* ---------------------------------------------------------------- folding */

/* Evaluates an elementwise op on constants. Returns false when the result
 * would not be a finite, non-negative-zero number: such folds could change
 * what the program means (a NaN at compile time, a -0 that prints as 0). */
static bool fold(Op op, double x, double y, double *out)
{
    double r = op_info[op].fold(x, y);
    if (!isfinite(r) || (r == 0 && signbit(r)))
        return false;
    /* nor to a 0 that is only an underflow of a nonzero product */
    if (r == 0 && (op == OP_MUL || op == OP_POW) && x != 0 && (op == OP_POW || y != 0))
        return false;
    *out = r;
    return true;
}

/* A constant scalar factor c of `n` = MUL(c, rest), or NULL. */
static Node *const_factor(Node *n, Node **rest)
{
    if (n->op == OP_MUL && is_const(n->in[0])) {
        *rest = n->in[1];
        return n->in[0];
    }
    return NULL;
}

static bool is_integer(double v)
{
    return v == floor(v) && fabs(v) < 1e15;
}

/* Local rewrites that make `op(a, b)` simpler, or NULL when none applies.
 * Each returns a node of the same shape as op(a, b) would have. */
static Node *rewrite(Graph *g, Op op, Node *a, Node *b, Shape shape)
{
    Node *rest;
    switch (op) {
    case OP_ADD:
        if (node_is_const(a, 0) && shape_eq(b->shape, shape))
            return b;
        break;
    case OP_MUL:
        if (node_is_const(a, 1) && shape_eq(b->shape, shape))
            return b;
        if (node_is_const(a, 0) || node_is_const(b, 0))
            return node_const(g, 0, shape);
        /* c1 * (c2 * x) = (c1 c2) * x */
        if (is_const(a) && b->op == OP_MUL && is_const(b->in[0])) {
            double v = a->value * b->in[0]->value;
            if (isfinite(v) && (v != 0 || a->value == 0 || b->in[0]->value == 0))
                return node_new(g, OP_MUL, node_scalar(g, v), b->in[1]);
        }
        /* a broadcast scalar needs no broadcast inside an elementwise op */
        if (a->op == OP_BROADCAST && shape_eq(b->shape, shape))
            return node_new(g, OP_MUL, a->in[0], b);
        if (b->op == OP_BROADCAST && shape_eq(a->shape, shape))
            return node_new(g, OP_MUL, a, b->in[0]);
        /* a scalar constant's tensor form is the scalar */
        if (is_const(a) && a->shape.rank > 0 && shape_eq(b->shape, shape))
            return node_new(g, OP_MUL, node_scalar(g, a->value), b);
        break;
    case OP_POW:
        if (node_is_const(b, 1))
            return a;
        if (node_is_const(b, 0))
            return node_const(g, 1, shape);
        /* (x^p)^q = x^(pq) when q is an integer */
        if (a->op == OP_POW && is_const(a->in[1]) && is_const(b) && is_integer(b->value))
            return node_new(g, OP_POW, a->in[0], node_scalar(g, a->in[1]->value * b->value));
        break;
    case OP_LOG:
        if (a->op == OP_EXP)
            return a->in[0];
        if (a->op == OP_SOFTMAX)   /* the stable form */
            return node_new(g, OP_LOG_SOFTMAX, a->in[0], NULL);
        if (a->op == OP_SIGMOID)   /* log sigmoid(x) = -softplus(-x), finite everywhere */
            return node_new(g, OP_MUL, node_scalar(g, -1),
                            node_new(g, OP_SOFTPLUS,
                                     node_new(g, OP_MUL, node_scalar(g, -1), a->in[0]),
                                     NULL));
        /* log(1 - sigmoid(x)) = -softplus(x): bce on a sigmoid stays finite */
        if (a->op == OP_ADD && node_is_const(a->in[0], 1) && a->in[1]->op == OP_MUL &&
            node_is_const(a->in[1]->in[0], -1) && a->in[1]->in[1]->op == OP_SIGMOID)
            return node_new(g, OP_MUL, node_scalar(g, -1),
                            node_new(g, OP_SOFTPLUS, a->in[1]->in[1]->in[0], NULL));
        break;
    case OP_BROADCAST:
        break;
    /* of one number: logsumexp(x) = log(exp x) = x, softmax(x) = exp(x) / exp(x)
     * = 1, log_softmax(x) = 0 (so their derivatives are 1, 0 and 0) */
    case OP_LOGSUMEXP:
        if (a->shape.rank == 0)
            return a;
        break;
    case OP_SOFTMAX:
    case OP_LOG_SOFTMAX:
        if (a->shape.rank == 0)
            return node_scalar(g, op == OP_SOFTMAX ? 1 : 0);
        break;
    case OP_TRANSPOSE:
        if (a->op == OP_TRANSPOSE)
            return a->in[0];
        if ((rest = NULL, const_factor(a, &rest)) && a->in[0]->shape.rank == 0)
            return node_new(g, OP_MUL, a->in[0], node_new(g, OP_TRANSPOSE, rest, NULL));
        break;
    case OP_SUM:
        if (a->shape.rank == 0)
            return a;
        if (a->op == OP_BROADCAST)
            return node_new(g, OP_MUL, node_scalar(g, (double)shape_size(a->shape)), a->in[0]);
        if (const_factor(a, &rest) && a->in[0]->shape.rank == 0)
            return node_new(g, OP_MUL, a->in[0], node_new(g, OP_SUM, rest, NULL));
        break;
    case OP_BATCH_MEAN:
        if (!a->batched)
            return a;
        if (const_factor(a, &rest) && a->in[0]->shape.rank == 0)
            return node_new(g, OP_MUL, a->in[0], node_new(g, OP_BATCH_MEAN, rest, NULL));
        break;
    case OP_MATMUL:
    case OP_OUTER:
        /* constant factors move out of linear operations so they collect */
        if (const_factor(a, &rest) && a->in[0]->shape.rank == 0)
            return node_new(g, OP_MUL, a->in[0], node_new(g, op, rest, b));
        if (const_factor(b, &rest) && b->in[0]->shape.rank == 0)
            return node_new(g, OP_MUL, b->in[0], node_new(g, op, a, rest));
        break;
    default:
        break;
    }
    return NULL;
}

Node *node_new_n(Graph *g, Op op, int nin, Node *const *in, const int *attr)
{
    if (!attr)
        attr = NO_ATTRS;
    ShapeError err = {-1, ""};
    if (nin < op_info[op].min_in || nin > op_info[op].max_in || !op_info[op].shape) {
        fprintf(stderr, "bpgen: internal error: %s with %d operands\n", op_info[op].name, nin);
        abort();
    }
    Shape shape = result_shape(op, nin, in, attr, &err);
    if (shape.rank < 0) {
        fprintf(stderr, "bpgen: internal error: %s %s\n", op_info[op].name, err.msg);
        abort();
    }
    if (op == OP_RESHAPE)
        return node_reshape(g, in[0], shape);
    if (op_info[op].kind == OPK_KERNEL)
        return intern(g, op, shape, nin, in, attr, 0, -1);

    Node *a = in[0], *b = nin > 1 ? in[1] : NULL;
    /* constants fold when every input is a constant */
    if ((op_info[op].flags & OPF_FOLDS) && is_const(a) && (!b || is_const(b))) {
        double v;
        if (fold(op, a->value, b ? b->value : 0, &v))
            return node_const(g, v, shape);
    }
    if (op == OP_SUM && is_const(a)) {
        double v = a->value * (double)shape_size(a->shape);
        if (isfinite(v))
            return node_scalar(g, v + 0.0);
    }
    if ((op == OP_TRANSPOSE || op == OP_BATCH_MEAN) && is_const(a))
        return node_const(g, a->value, shape);

    /* commutative operations: constants first, then by id */
    if ((op_info[op].flags & OPF_COMMUTATIVE) &&
        (is_const(b) ? (!is_const(a) || b->id < a->id) : (!is_const(a) && b->id < a->id))) {
        Node *t = a;
        a = b;
        b = t;
    }

    /* A rewrite may lose a broadcast (c * x with c a tensor constant and x
     * a scalar): put it back, so a node's shape never changes. */
    Node *simpler = rewrite(g, op, a, b, shape);
    if (simpler && shape_eq(simpler->shape, shape))
        return simpler;
    if (simpler && simpler->shape.rank == 0)
        return node_broadcast(g, simpler, shape);
    return intern2(g, op, shape, a, b);
}

Node *node_new(Graph *g, Op op, Node *a, Node *b)
{
    Node *in[2] = {a, b};
    return node_new_n(g, op, b ? 2 : 1, in, NULL);
}

Node *node_pow_of(Graph *g, Node *base, Node *q)
{
    if (base->op == OP_POW && is_const(base->in[1]) && is_const(q) && q->shape.rank == 0 &&
        q->value != 0 && q->value != 1)
        return intern2(g, OP_POW, base->shape, base, q);
    return node_new(g, OP_POW, base, q);
}

Node *node_reshape(Graph *g, Node *x, Shape shape)
{
    if (shape_eq(x->shape, shape))
        return x;
    if (is_const(x))
        return node_const(g, x->value, shape);
    if (x->op == OP_RESHAPE)
        x = x->in[0];
    if (shape_eq(x->shape, shape))
        return x;
    int attr[MAX_ATTRS] = {0};
    for (int i = 0; i < shape.rank; i++)
        attr[i] = shape.dim[i];
    return intern(g, OP_RESHAPE, shape, 1, &x, attr, 0, -1);
}

/* ---------------------------------------------------------------- AST -> graph */

typedef struct {
    Graph *g;
    Symbol **syms;   /* value symbols built so far, and their nodes */
    Node **nodes;
    int count;
} Builder;

static Node *symbol_node(Builder *b, Symbol *s)
{
    switch (s->kind) {
    case SYM_INPUT: return b->g->input_nodes[s->index];
    case SYM_PARAM: return b->g->param_nodes[s->index];
    case SYM_CONST: return node_scalar(b->g, s->stmt->value);
    case SYM_VALUE:
        for (int i = b->count - 1; i >= 0; i--)
            if (b->syms[i] == s)
                return b->nodes[i];
        break;
    }
    fprintf(stderr, "bpgen: internal error: '%s' used before it was built\n", s->name);
    abort();
}

static Node *neg(Graph *g, Node *x)
{
    return node_new(g, OP_MUL, node_scalar(g, -1), x);
}

static Node *sub(Graph *g, Node *x, Node *y)
{
    return node_new(g, OP_ADD, x, neg(g, y));
}

static Node *build_expr(Builder *b, Expr *e);

/* The value of an integer literal argument (check.c saw that it is one). */
static double int_literal(const Expr *e)
{
    return e->kind == EX_NEG ? -int_literal(e->lhs) : e->num;
}

/* A call: its tensor arguments, then its integer arguments (positional
 * ones marked in func_info, then keywords) as attributes. */
static Node *build_call(Builder *b, Expr *e)
{
    const FuncInfo *f = &func_info[e->func];
    Node *args[MAX_OPERANDS];
    int attr[MAX_ATTRS] = {0}, nargs = 0, nattr = 0;
    for (int i = 0; i < e->nargs && !e->args[i]->keyword; i++) {
        if (i < 32 && (f->int_args & (1u << i)))
            attr[nattr++] = (int)int_literal(e->args[i]);
        else
            args[nargs++] = build_expr(b, e->args[i]);
    }
    for (int k = 0; k < 2 && f->keywords[k]; k++) {
        attr[nattr + k] = f->defaults[k];
        for (int i = 0; i < e->nargs; i++)
            if (e->args[i]->keyword && !strcmp(e->args[i]->keyword, f->keywords[k]))
                attr[nattr + k] = (int)int_literal(e->args[i]);
    }
    return f->build(b->g, args, nargs, attr);
}

static Node *build_expr(Builder *b, Expr *e)
{
    Graph *g = b->g;
    switch (e->kind) {
    case EX_NUM:
        return node_scalar(g, e->num);
    case EX_NAME:
        return symbol_node(b, e->sym);
    case EX_NEG:
        return neg(g, build_expr(b, e->lhs));
    case EX_CALL:
        return build_call(b, e);
    case EX_BINARY: {
        Node *x = build_expr(b, e->lhs);
        Node *y = build_expr(b, e->rhs);
        switch (e->op) {
        case BIN_ADD: return node_new(g, OP_ADD, x, y);
        case BIN_SUB: return sub(g, x, y);
        case BIN_MUL: return node_new(g, OP_MUL, x, y);
        case BIN_DIV: return node_new(g, OP_MUL, x, node_new(g, OP_POW, y, node_scalar(g, -1)));
        case BIN_POW: return node_new(g, OP_POW, x, y);
        case BIN_MATMUL: return node_new(g, OP_MATMUL, x, y);
        }
    }
    }
    fprintf(stderr, "bpgen: internal error: unknown expression kind %d\n", (int)e->kind);
    abort();
}

Graph *graph_build(Arena *a, Model *m, bool batched_inputs)
{
    Graph *g = arena_alloc(a, sizeof *g);
    g->arena = a;
    g->model = m;
    g->batched_inputs = batched_inputs;
    g->input_nodes = arena_alloc(a, sizeof(Node *) * (size_t)(m->ninputs + 1));
    g->param_nodes = arena_alloc(a, sizeof(Node *) * (size_t)(m->nparams + 1));
    g->value_nodes = arena_alloc(a, sizeof(Node *) * (size_t)(m->nvalues + 1));
    g->output_nodes = arena_alloc(a, sizeof(Node *) * (size_t)(m->noutputs + 1));
    g->grad_params = arena_alloc(a, sizeof(Node *) * (size_t)(m->nparams + 1));
    g->grad_inputs = arena_alloc(a, sizeof(Node *) * (size_t)(m->ninputs + 1));

    for (int i = 0; i < m->ninputs; i++) {
        g->line = m->inputs[i]->loc.line;
        Node *n = intern(g, OP_INPUT, m->inputs[i]->shape, 0, NULL, NULL, 0, i);
        n->name = n->label = m->inputs[i]->name;
        g->input_nodes[i] = n;
    }
    for (int i = 0; i < m->nparams; i++) {
        g->line = m->params[i]->loc.line;
        Node *n = intern(g, OP_PARAM, m->params[i]->shape, 0, NULL, NULL, 0, i);
        n->name = n->label = m->params[i]->name;
        g->param_nodes[i] = n;
    }

    Builder b = {g, arena_alloc(a, sizeof(Symbol *) * (size_t)(m->nvalues + 1)),
                 arena_alloc(a, sizeof(Node *) * (size_t)(m->nvalues + 1)), 0};
    for (int i = 0; i < m->nvalues; i++) {
        Symbol *s = m->values[i];
        g->line = s->stmt->loc.line;
        Node *n = build_expr(&b, s->stmt->expr);
        if (!n->name && !is_const(n))
            n->name = n->label = s->name;
        b.syms[b.count] = s;
        b.nodes[b.count++] = n;
        g->value_nodes[i] = n;
        if (s == m->loss)
            g->loss = n;
    }
    g->line = 0;
    for (int i = 0; i < m->noutputs; i++)
        g->output_nodes[i] = symbol_node(&b, m->outputs[i]);
    return g;
}

/* ---------------------------------------------------------------- checks, dumps */

bool graph_check(const Graph *g)
{
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        const char *why = NULL;
        if (n->id != i)
            why = "id is not its position";
        else if (n->nin < op_info[n->op].min_in || n->nin > op_info[n->op].max_in)
            why = "wrong number of inputs";
        for (int k = 0; !why && k < n->nin; k++)
            if (!n->in[k] || n->in[k]->id >= n->id)
                why = "input missing or not before the node";
        if (!why && n->nin > 0 && n->op != OP_BROADCAST) {
            Shape s = result_shape(n->op, n->nin, n->in, n->attr, NULL);
            if (!shape_eq(s, n->shape))
                why = "shape does not follow from the inputs";
        }
        if (why) {
            fprintf(stderr, "bpgen: internal error: node %d (%s): %s\n", n->id,
                    op_info[n->op].name, why);
            return false;
        }
    }
    return true;
}

static void dump_shape(FILE *out, Shape s)
{
    if (s.rank == 0) {
        fputs("scalar", out);
        return;
    }
    for (int i = 0; i < s.rank; i++)
        fprintf(out, "%s%d", i ? ", " : "[", s.dim[i]);
    fputc(']', out);
}

void graph_dump(const Graph *g, FILE *out)
{
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        fprintf(out, "%%%d = %s", n->id, op_info[n->op].name);
        if (n->op == OP_CONST)
            fprintf(out, " %.17g", n->value);
        if (n->op == OP_INPUT || n->op == OP_PARAM)
            fprintf(out, " #%d", n->index);
        for (int k = 0; k < n->nin; k++)
            fprintf(out, " %%%d", n->in[k]->id);
        for (int k = 0; k < MAX_ATTRS; k++)
            if (op_info[n->op].attr_names[k])
                fprintf(out, " %s=%d", op_info[n->op].attr_names[k], n->attr[k]);
        fputs("  : ", out);
        dump_shape(out, n->shape);
        if (n->batched)
            fputs(" batched", out);
        if (n->label)
            fprintf(out, "  ; %s", n->label);
        fputc('\n', out);
    }
}
