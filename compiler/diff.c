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

struct Diff {
    Graph *g;
    /* For generated code, write derivatives in terms of an operation's own
     * output where that spares forward from keeping its input for backward,
     * or backward from computing again what forward stored (relu' from
     * y > 0, log_softmax' from exp(y), logsumexp' from exp(x - y), sqrt'
     * from 0.5 / y); --derivatives keeps the textbook forms, which read
     * better. */
    bool from_outputs;
    Node **adjoint;   /* by node id, for the nodes that existed at the start */
    bool *needed;     /* by node id: a wanted leaf lies below */
    int count;        /* number of nodes at the start */
};

static Node *add(Graph *g, Node *a, Node *b) { return node_new(g, OP_ADD, a, b); }
static Node *op1(Graph *g, Op op, Node *a) { return node_new(g, op, a, NULL); }

bool diff_needs(const Diff *d, const Node *x)
{
    return x->id < d->count && d->needed[x->id];
}

bool diff_from_outputs(const Diff *d)
{
    return d->from_outputs;
}

/* Adds `contribution` to the adjoint of `x`, first reducing it to x's
 * shape (a scalar operand broadcast over a tensor receives the sum) and to
 * x's batching (a shared node receives the batch mean). */
void diff_give(Diff *d, Node *x, Node *contribution)
{
    Graph *g = d->g;
    if (!diff_needs(d, x) || !contribution)
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

/* Hands y's operands their shares of dy, by the derivative rule of y's
 * operation in ops.c. */
static void backprop(Diff *d, Node *y, Node *dy)
{
    void (*rule)(Diff *, Graph *, Node *, Node *) = op_info[y->op].grad;
    if (!rule) {
        fprintf(stderr, "bpgen: internal error: no derivative for %s\n", op_info[y->op].name);
        abort();
    }
    rule(d, d->g, y, dy);
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
        /* what y's rule builds belongs to y's statement */
        g->line = y->line;
        backprop(&d, y, dy);
    }
    g->line = 0;

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
