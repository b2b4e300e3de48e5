/* dot.c — the model's graph as Graphviz DOT (--dot, --dot=backward).
 *
 * In:  a checked Model.
 * Out: a `digraph`: a node for every input (blue box), parameter (orange
 *      rounded box), constant (grey text), operation (ellipse) and named
 *      value (green box, fed by the operation that computes it), an edge
 *      from each operand to its result; the loss's node is red and doubly
 *      outlined. With backward, the chain rule of explain_derive() is drawn
 *      too: one pink box per adjoint, labelled `dL/dX`, fed by the
 *      operations (red outlines) that compute it from the adjoints of the
 *      values that use X and from forward values.
 *
 * The graph is the one --explain derives on (unbatched, simplified by
 * node_new only), so the two tell the same story.
 */
#include "bpgen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    Arena *a;
    FILE *out;
    const Derivation *d;
    const Graph *g;
    bool *drawn;        /* by node id */
    int fresh;          /* counter for nodes that are not graph nodes */
} Dot;

static const char *escape(Arena *a, const char *s)
{
    char *e = arena_alloc(a, strlen(s) * 2 + 1), *o = e;
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            *o++ = '\\';
        *o++ = *s;
    }
    return e;
}

/* " [16, 4]" after a name; nothing for a scalar */
static const char *dims_text(Arena *a, Shape s)
{
    const char *t = "";
    for (int i = 0; i < s.rank; i++)
        t = arena_printf(a, "%s%s%d", t, i ? ", " : " [", s.dim[i]);
    return s.rank ? arena_printf(a, "%s]", t) : t;
}

static const char *number(Arena *a, double v)
{
    char tmp[64];
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(tmp, sizeof tmp, "%.*g", digits, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    return arena_strdup(a, tmp);
}

/* The DOT id under which node n's value can be read. */
static const char *value_id(const Dot *t, const Node *n)
{
    if (n->nin > 0 && n->name)
        return arena_printf(t->a, "v%d", n->id);
    return arena_printf(t->a, "n%d", n->id);
}

static const char *constant_node(Dot *t, double v, bool backward)
{
    const char *id = arena_printf(t->a, "c%d", t->fresh++);
    fprintf(t->out, "  %s [label=\"%s\", shape=plaintext, fontcolor=\"#555555\"%s];\n", id,
            number(t->a, v), backward ? ", fontsize=10" : "");
    return id;
}

/* The label of an operation; *skip says which operand the label already
 * shows (a constant exponent, the -1 of a negation), or -1. */
static const char *op_label(const Node *n, int *skip)
{
    *skip = -1;
    if (n->op == OP_POW && n->in[1]->op == OP_CONST) {
        *skip = 1;
        double p = n->in[1]->value;
        if (p == 0.5)
            return "sqrt";
        if (p == -1)
            return "1 / x";
        if (p == 2)
            return "x^2";
        return NULL;   /* the caller writes x^p */
    }
    if (n->op == OP_MUL && node_is_const(n->in[0], -1)) {
        *skip = 0;
        return "negate";
    }
    if (n->op == OP_MATMUL)   /* a lone dot is too small to read */
        return "matmul \xc2\xb7";
    return op_info[n->op].name;
}

static void draw_node(Dot *t, const Node *n, bool backward);

static void edge(Dot *t, const char *from, const char *to, bool backward)
{
    fprintf(t->out, "  %s -> %s%s;\n", from, to, backward ? " [color=\"#c0392b\"]" : "");
}

/* Draws n (and what it reads) once; returns nothing, its id is value_id. */
static void draw_node(Dot *t, const Node *n, bool backward)
{
    if (t->drawn[n->id])
        return;
    t->drawn[n->id] = true;
    Arena *a = t->a;
    const char *id = arena_printf(a, "n%d", n->id);
    bool is_loss = n == t->g->loss;
    switch (n->op) {
    case OP_INPUT:
        fprintf(t->out, "  %s [label=\"%s%s\", shape=box, style=filled, fillcolor=\"#cfe2ff\"%s];\n",
                id, escape(a, n->name), dims_text(a, n->shape),
                is_loss ? ", peripheries=2, color=\"#c0392b\"" : "");
        return;
    case OP_PARAM:
        fprintf(t->out, "  %s [label=\"%s%s\", shape=box, style=\"rounded,filled\", "
                        "fillcolor=\"#ffd8a8\"%s];\n",
                id, escape(a, n->name), dims_text(a, n->shape),
                is_loss ? ", peripheries=2, color=\"#c0392b\"" : "");
        return;
    case OP_CONST:
        fprintf(t->out, "  %s [label=\"%s\", shape=plaintext, fontcolor=\"#555555\"];\n", id,
                number(a, n->value));
        return;
    default:
        break;
    }
    /* a - b and a / b are drawn as what they are, not as a + (-1 * b)
     * and a * b^-1; the edge of the second operand says which it is */
    const Node *operand[MAX_OPERANDS];
    for (int k = 0; k < n->nin && k < MAX_OPERANDS; k++)
        operand[k] = n->in[k];
    const char *label = NULL, *second = NULL;
    int skip = -1;
    for (int k = 0; k < 2 && n->nin == 2 && !label; k++) {
        const Node *x = n->in[1 - k], *y = n->in[k];
        if (n->op == OP_ADD && y->op == OP_MUL && node_is_const(y->in[0], -1) && !y->name &&
            !(x->op == OP_MUL && node_is_const(x->in[0], -1))) {
            label = "-";
            second = "\xe2\x88\x92";   /* the minus sign */
        } else if (n->op == OP_MUL && y->op == OP_POW && node_is_const(y->in[1], -1) &&
                   !y->name && x->op != OP_CONST) {
            label = "/";
            second = "\xc3\xb7";        /* the division sign */
        } else {
            continue;
        }
        operand[0] = x;
        operand[1] = y->in[label[0] == '-' ? 1 : 0];
    }
    if (!label) {
        label = op_label(n, &skip);
        if (!label)
            label = arena_printf(a, "x^%s", number(a, n->in[1]->value));
    }
    fprintf(t->out, "  %s [label=\"%s\", shape=ellipse%s];\n", id, escape(a, label),
            backward ? ", style=dashed" : "");
    for (int k = 0; k < n->nin; k++) {
        if (k == skip)
            continue;
        const Node *in = operand[k];
        const char *from;
        if (in->op == OP_CONST) {
            from = constant_node(t, in->value, backward);
        } else {
            draw_node(t, in, backward);
            from = value_id(t, in);
        }
        if (k == 1 && second)
            fprintf(t->out, "  %s -> %s [label=\"%s\", fontsize=11];\n", from, id, second);
        else
            edge(t, from, id, false);
    }
    if (n->name) {
        fprintf(t->out, "  v%d [label=\"%s%s%s\", shape=box, style=filled, fillcolor=\"%s\"%s];\n",
                n->id, is_loss ? "loss " : "", escape(a, n->name), dims_text(a, n->shape),
                is_loss ? "#f8c8c8" : "#d3f9d8",
                is_loss ? ", peripheries=2, color=\"#c0392b\", penwidth=2" : "");
        edge(t, id, arena_printf(a, "v%d", n->id), false);
    }
}

/* ---------------------------------------------------------------- backward */

static const char *adjoint_id(Arena *a, int var)
{
    return arena_printf(a, "a%d", var);
}

static const char *backward_op(Dot *t, const char *label)
{
    const char *id = arena_printf(t->a, "b%d", t->fresh++);
    fprintf(t->out, "  %s [label=\"%s\", shape=ellipse, color=\"#c0392b\", fontcolor=\"#c0392b\"];\n",
            id, escape(t->a, label));
    return id;
}

/* Draws a derivation expression; returns the id of its result. */
static const char *draw_dx(Dot *t, const Dx *x)
{
    Arena *a = t->a;
    switch (x->kind) {
    case DX_NUM:
        return constant_node(t, x->num, true);
    case DX_NODE:
        draw_node(t, x->node, true);
        return value_id(t, x->node);
    case DX_ADJ:
        return adjoint_id(a, x->var);
    case DX_PROD: {
        const char *id = backward_op(t, "*");
        if (x->num != 1)
            edge(t, constant_node(t, x->num, true), id, true);
        for (int i = 0; i < x->n; i++) {
            const char *f = draw_dx(t, x->kid[i]);
            if (x->power[i] != 1) {
                const char *p = backward_op(t, x->power[i] == -1 ? "1 / x"
                                               : x->power[i] == 0.5 ? "sqrt"
                                               : arena_printf(a, "x^%s", number(a, x->power[i])));
                edge(t, f, p, true);
                f = p;
            }
            edge(t, f, id, true);
        }
        return id;
    }
    case DX_SUM: {
        const char *id = backward_op(t, "+");
        for (int i = 0; i < x->n; i++)
            edge(t, draw_dx(t, x->kid[i]), id, true);
        return id;
    }
    case DX_MATMUL: case DX_FN: {
        const char *id = backward_op(t, x->kind == DX_MATMUL ? "matmul \xc2\xb7" : x->fn);
        for (int i = 0; i < x->n; i++)
            edge(t, draw_dx(t, x->kid[i]), id, true);
        return id;
    }
    }
    return constant_node(t, 0, true);
}

static void draw_backward(Dot *t)
{
    const Derivation *d = t->d;
    Arena *a = t->a;
    fputs("  subgraph adjoints {\n    node [shape=box, style=filled, fillcolor=\"#fcc2d7\"];\n", t->out);
    for (int vi = 0; vi < d->nvars; vi++)
        fprintf(t->out, "    %s [label=\"d%s/d%s%s\"];\n", adjoint_id(a, vi), escape(a, d->loss_name),
                escape(a, d->vars[vi].name), vi == 0 ? " = 1" : "");
    fputs("  }\n", t->out);
    for (int vi = 1; vi < d->nvars; vi++) {
        const DxVar *v = &d->vars[vi];
        const char **terms = arena_alloc(a, sizeof *terms * (size_t)(v->nuses + 1));
        int n = 0;
        for (int u = 0; u < v->nuses; u++) {
            const DxUse *use = &v->uses[u];
            if (use->dx->kind == DX_NUM && use->dx->num == 0)
                continue;
            if (!use->scalar_local) {
                terms[n++] = draw_dx(t, use->dx);
            } else if (use->dx->kind == DX_NUM && use->dx->num == 1) {
                terms[n++] = adjoint_id(a, use->user);
            } else {
                /* one product: the user's adjoint, then the local factors */
                const Dx *local = use->dx;
                int nf = local->kind == DX_PROD ? local->n : 1;
                Dx *prod = arena_alloc(a, sizeof *prod);
                prod->kind = DX_PROD;
                prod->shape = local->shape;
                prod->num = local->kind == DX_PROD ? local->num : 1;
                prod->n = nf + 1;
                prod->kid = arena_alloc(a, sizeof *prod->kid * (size_t)(nf + 1));
                prod->power = arena_alloc(a, sizeof *prod->power * (size_t)(nf + 1));
                Dx *adj = arena_alloc(a, sizeof *adj);
                adj->kind = DX_ADJ;
                adj->var = use->user;
                prod->kid[0] = adj;
                prod->power[0] = 1;
                for (int f = 0; f < nf; f++) {
                    prod->kid[f + 1] = local->kind == DX_PROD ? local->kid[f] : (Dx *)local;
                    prod->power[f + 1] = local->kind == DX_PROD ? local->power[f] : 1;
                }
                terms[n++] = draw_dx(t, prod);
            }
        }
        if (n == 0)
            edge(t, constant_node(t, 0, true), adjoint_id(a, vi), true);
        else if (n == 1)
            edge(t, terms[0], adjoint_id(a, vi), true);
        else {
            const char *id = backward_op(t, "+");
            for (int k = 0; k < n; k++)
                edge(t, terms[k], id, true);
            edge(t, id, adjoint_id(a, vi), true);
        }
    }
}

bool dot_model(Arena *a, Model *m, bool backward, FILE *out)
{
    Derivation *d = explain_derive(a, m, false);
    const Graph *g = d->graph;
    Dot t = {a, out, d, g, arena_alloc(a, sizeof(bool) * (size_t)(g->nnodes + 1)), 0};
    /* nodes made after this (while drawing) never need marks: the
     * derivation made every node it refers to already */
    fprintf(out, "digraph \"%s\" {\n", escape(a, m->name));
    fputs("  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=12];\n"
          "  edge [color=\"#555555\", arrowsize=0.7];\n",
          out);
    /* inputs and parameters first, in declaration order, so they lead */
    for (int k = 0; k < m->ninputs; k++)
        draw_node(&t, g->input_nodes[k], false);
    for (int i = 0; i < m->nparams; i++)
        draw_node(&t, g->param_nodes[i], false);
    for (int i = 0; i < m->nvalues; i++)
        draw_node(&t, g->value_nodes[i], false);
    for (int i = 0; i < m->noutputs; i++)
        draw_node(&t, g->output_nodes[i], false);
    draw_node(&t, g->loss, false);
    if (backward)
        draw_backward(&t);
    fputs("}\n", out);
    return fflush(out) == 0 && !ferror(out);
}
