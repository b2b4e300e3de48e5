/* diff.c — reverse-mode differentiation, symbolically, on the graph.
 *
 * In:  a Graph with g->loss set.
 * Out: g->grad_params[i] for every parameter that is not frozen and
 *      g->grad_inputs[k] for every input named in `wrt`; all new nodes.
 *
 * How: the loss's adjoint is seeded with 1, then nodes are visited in
 * reverse creation order (a reverse topological order, since a node is
 * always created after its inputs). Each visited node hands each of its
 * inputs a contribution — the vector-Jacobian product of its operation,
 * written as new graph nodes — and contributions to one node are summed.
 * Only nodes that lie on a path from a wanted leaf get adjoints, so no work
 * is spent on inputs outside `wrt`, frozen parameters, or constants.
 *
 * Batches: a batched node's adjoint is the per-sample gradient of that
 * sample's loss. Where a per-sample contribution flows into a node shared
 * by all samples (a parameter, or a value computed only from parameters)
 * it is wrapped in BATCH_MEAN, so shared nodes receive the gradient of the
 * batch-mean loss. With unbatched graphs (--derivatives) no BATCH_MEAN
 * ever appears.
 */
#include "bpgen.h"

#include <stdlib.h>

typedef struct {
    Graph *g;
    /* For generated code, write derivatives in terms of an operation's own
     * output where that spares forward from keeping its input for backward
     * (relu' from y > 0, log_softmax' from exp(y)); --derivatives keeps the
     * textbook forms, which read better. */
    bool from_outputs;
    Node **adjoint;   /* by node id, for the nodes that existed at the start */
    bool *needed;     /* by node id: a wanted leaf lies below */
    int count;        /* number of nodes at the start */
} Diff;

static Node *add(Graph *g, Node *a, Node *b) { return node_new(g, OP_ADD, a, b); }
static Node *mul(Graph *g, Node *a, Node *b) { return node_new(g, OP_MUL, a, b); }
static Node *neg(Graph *g, Node *a) { return mul(g, node_scalar(g, -1), a); }
static Node *one_minus(Graph *g, Node *a) { return add(g, node_scalar(g, 1), neg(g, a)); }
static Node *op1(Graph *g, Op op, Node *a) { return node_new(g, op, a, NULL); }

/* Adds `contribution` to the adjoint of `x`, first reducing it to x's
 * shape (a scalar operand broadcast over a tensor receives the sum) and to
 * x's batching (a shared node receives the batch mean). */
static void contribute(Diff *d, Node *x, Node *contribution)
{
    Graph *g = d->g;
    if (!d->needed[x->id] || !contribution)
        return;
    if (x->shape.rank == 0 && contribution->shape.rank > 0)
        contribution = op1(g, OP_SUM, contribution);
    else if (x->shape.rank > 0 && contribution->shape.rank == 0)
        contribution = node_broadcast(g, contribution, x->shape);
    if (!x->batched && contribution->batched)
        contribution = op1(g, OP_BATCH_MEAN, contribution);
    Node **adj = &d->adjoint[x->id];
    *adj = *adj ? add(g, *adj, contribution) : contribution;
}

/* The vector-Jacobian products: given the adjoint `dy` of y = op(a, b),
 * hand a and b their shares. Each rule states its math. */
static void backprop(Diff *d, Node *y, Node *dy)
{
    Graph *g = d->g;
    Node *a = y->nin > 0 ? y->in[0] : NULL;
    Node *b = y->nin > 1 ? y->in[1] : NULL;
    switch (y->op) {
    case OP_CONST: case OP_INPUT: case OP_PARAM:
        break;
    case OP_ADD:        /* da = dy, db = dy */
        contribute(d, a, dy);
        contribute(d, b, dy);
        break;
    case OP_MUL:        /* da = dy b, db = dy a */
        contribute(d, a, mul(g, dy, b));
        contribute(d, b, mul(g, dy, a));
        break;
    case OP_POW:        /* da = dy p a^(p-1), dp = dy y log a */
        if (d->needed[a->id])
            contribute(d, a, mul(g, dy, mul(g, b, node_new(g, OP_POW, a,
                                     add(g, b, node_scalar(g, -1))))));
        if (d->needed[b->id])
            contribute(d, b, mul(g, dy, mul(g, y, op1(g, OP_LOG, a))));
        break;
    case OP_MAX: {      /* ties go to a: da = dy (1 - step(b - a)), db = dy step(b - a) */
        Node *to_b = op1(g, OP_STEP, add(g, b, neg(g, a)));
        contribute(d, a, mul(g, dy, one_minus(g, to_b)));
        contribute(d, b, mul(g, dy, to_b));
        break;
    }
    case OP_MIN: {      /* ties go to a: da = dy (1 - step(a - b)), db = dy step(a - b) */
        Node *to_b = op1(g, OP_STEP, add(g, a, neg(g, b)));
        contribute(d, a, mul(g, dy, one_minus(g, to_b)));
        contribute(d, b, mul(g, dy, to_b));
        break;
    }
    case OP_EXP:        /* da = dy exp(a) */
        contribute(d, a, mul(g, dy, y));
        break;
    case OP_LOG:        /* da = dy / a */
        contribute(d, a, mul(g, dy, node_new(g, OP_POW, a, node_scalar(g, -1))));
        break;
    case OP_ABS:        /* da = dy sign(a); abs'(0) = 0 */
        contribute(d, a, mul(g, dy, op1(g, OP_SIGN, a)));
        break;
    case OP_SIN:        /* da = dy cos(a) */
        contribute(d, a, mul(g, dy, op1(g, OP_COS, a)));
        break;
    case OP_COS:        /* da = -dy sin(a) */
        contribute(d, a, neg(g, mul(g, dy, op1(g, OP_SIN, a))));
        break;
    case OP_TANH:       /* da = dy (1 - y^2) */
        contribute(d, a, mul(g, dy, one_minus(g, node_new(g, OP_POW, y, node_scalar(g, 2)))));
        break;
    case OP_SIGMOID:    /* da = dy y (1 - y) */
        contribute(d, a, mul(g, dy, mul(g, y, one_minus(g, y))));
        break;
    case OP_RELU:       /* da = dy step(a); relu'(0) = 0; step(a) = step(y) */
        contribute(d, a, mul(g, dy, op1(g, OP_STEP, d->from_outputs ? y : a)));
        break;
    case OP_SOFTPLUS:   /* da = dy sigmoid(a) */
        contribute(d, a, mul(g, dy, op1(g, OP_SIGMOID, a)));
        break;
    case OP_STEP: case OP_SIGN:   /* piecewise constant: no gradient */
        break;
    case OP_BROADCAST:  /* da = sum(dy) */
        contribute(d, a, op1(g, OP_SUM, dy));
        break;
    case OP_MATMUL:
        if (a->shape.rank == 2 && b->shape.rank == 1) {
            /* y = A x:  dA = outer(dy, x),  dx = Aᵀ dy */
            contribute(d, a, node_new(g, OP_OUTER, dy, b));
            contribute(d, b, node_new(g, OP_MATMUL, op1(g, OP_TRANSPOSE, a), dy));
        } else if (a->shape.rank == 2) {
            /* Y = A B:  dA = dY Bᵀ,  dB = Aᵀ dY */
            contribute(d, a, node_new(g, OP_MATMUL, dy, op1(g, OP_TRANSPOSE, b)));
            contribute(d, b, node_new(g, OP_MATMUL, op1(g, OP_TRANSPOSE, a), dy));
        } else if (b->shape.rank == 2) {
            /* y = x B:  dx = B dy,  dB = outer(x, dy) */
            contribute(d, a, node_new(g, OP_MATMUL, b, dy));
            contribute(d, b, node_new(g, OP_OUTER, a, dy));
        } else {
            /* y = x · z:  dx = dy z,  dz = dy x */
            contribute(d, a, mul(g, dy, b));
            contribute(d, b, mul(g, dy, a));
        }
        break;
    case OP_TRANSPOSE:  /* dA = dYᵀ */
        contribute(d, a, op1(g, OP_TRANSPOSE, dy));
        break;
    case OP_OUTER:      /* Y = a bᵀ:  da = dY b,  db = dYᵀ a */
        contribute(d, a, node_new(g, OP_MATMUL, dy, b));
        contribute(d, b, node_new(g, OP_MATMUL, op1(g, OP_TRANSPOSE, dy), a));
        break;
    case OP_SUM:        /* da = dy, repeated over a */
        contribute(d, a, node_broadcast(g, dy, a->shape));
        break;
    case OP_LOGSUMEXP:  /* da = dy softmax(a) */
        contribute(d, a, mul(g, dy, op1(g, OP_SOFTMAX, a)));
        break;
    case OP_SOFTMAX:    /* da = y ⊙ (dy - sum(dy ⊙ y)) */
        contribute(d, a, mul(g, y, add(g, dy, neg(g, op1(g, OP_SUM, mul(g, dy, y))))));
        break;
    case OP_LOG_SOFTMAX: { /* da = dy - softmax(a) sum(dy); softmax(a) = exp(y) */
        Node *p = d->from_outputs ? op1(g, OP_EXP, y) : op1(g, OP_SOFTMAX, a);
        contribute(d, a, add(g, dy, neg(g, mul(g, p, op1(g, OP_SUM, dy)))));
        break;
    }
    case OP_BATCH_MEAN: /* each sample gets the shared adjoint */
        contribute(d, a, dy);
        break;
    case OP__COUNT:
        break;
    }
}

void diff_graph(Graph *g)
{
    Model *m = g->model;
    Diff d = {g, g->batched_inputs, NULL, NULL, g->nnodes};
    d.adjoint = arena_alloc(g->arena, sizeof(Node *) * (size_t)(d.count + 1));
    d.needed = arena_alloc(g->arena, sizeof(bool) * (size_t)(d.count + 1));

    for (int i = 0; i < m->nparams; i++)
        if (!m->params[i]->stmt->frozen)
            d.needed[g->param_nodes[i]->id] = true;
    for (int k = 0; k < m->ninputs; k++)
        if (m->inputs[k]->wrt)
            d.needed[g->input_nodes[k]->id] = true;
    for (int i = 0; i < d.count; i++) {
        Node *n = g->nodes[i];
        for (int k = 0; k < n->nin; k++)
            d.needed[i] = d.needed[i] || d.needed[n->in[k]->id];
    }

    const char *loss_name = m->loss->name;
    d.adjoint[g->loss->id] = node_scalar(g, 1);
    for (int i = g->loss->id; i >= 0; i--) {
        Node *y = g->nodes[i];
        Node *dy = d.adjoint[i];
        if (!dy || !d.needed[i])
            continue;
        /* name the adjoint after its node, unless it is a value forward
         * computes anyway (dJ/dy = y - t): that keeps its own name */
        if (y->name && !dy->label && dy->op != OP_CONST && dy->id >= d.count)
            dy->label = arena_printf(g->arena, "d%s/d%s", loss_name, y->name);
        backprop(&d, y, dy);
    }

    for (int i = 0; i < m->nparams; i++) {
        Node *p = g->param_nodes[i];
        if (m->params[i]->stmt->frozen)
            g->grad_params[i] = NULL;
        else
            g->grad_params[i] = d.adjoint[p->id] ? d.adjoint[p->id]
                                                 : node_const(g, 0, p->shape);
    }
    for (int k = 0; k < m->ninputs; k++) {
        Node *x = g->input_nodes[k];
        if (!m->inputs[k]->wrt)
            g->grad_inputs[k] = NULL;
        else
            g->grad_inputs[k] = d.adjoint[x->id] ? d.adjoint[x->id]
                                                 : node_const(g, 0, x->shape);
    }
}
