/* report.c — what a model costs (--report): per generated function and
 * per step, the floating-point operations, the bytes moved, the
 * arithmetic intensity, the workspace and the peak memory, at a batch
 * size the user gives.
 *
 * In:  a checked Plan (lower.c, lower_steps.c) and the batch size n.
 * Out: a table on `out`, in the model's names.
 *
 * The counts are read off the plan, so they describe the code bpgen
 * writes, fusion included:
 *   FLOPs  of a step: the sum, over the nodes it evaluates (its own and
 *          those fused into it, inline or virtual), of the operation's
 *          count for one sample (op_info's `flops`, ops.c), times n for a
 *          per-sample node and for a batch mean; an epilogue copy that
 *          divides by n counts one division per value, forward's loss n
 *          adds and a division;
 *   bytes  of a step: every value it reads from memory (inputs,
 *          parameters, buffers of earlier steps) counted once, whole, and
 *          the value it writes once, whole: the traffic a step cannot
 *          avoid, whatever its caches do (a convolution's im2col scratch
 *          is not counted; it shows in the workspace; a local of a merged
 *          loop is never in memory);
 *   workspace of a function: how much of M_workspace_size(n) it reaches
 *          (the end of the last buffer it reads or writes);
 *   peak memory of a function: that workspace plus the caller's arrays
 *          it reads or writes (theta, the inputs it reads, grad and
 *          grad_inputs, outputs).
 * Where M_forward_backward runs forward's last loop and backward's first
 * as one loop, a last line gives that loop's bytes (each value read once,
 * the values only it reads never stored) against its steps' apart.
 */
#include "bpgen.h"

#include <string.h>

static const char *const fn_names[PF__COUNT] = {"forward", "backward", "predict",
                                                "outputs after forward"};

typedef struct {
    const Plan *p;
    PlanFn f;
    double n;           /* the batch size */
    double real;        /* bytes of one value */
    int *seen;          /* by node id: the step that last counted its read */
    int step;           /* the step being counted, from 1 */
    double flops, read, written;
    double ws_end;      /* reals of workspace reached by the function */
    bool *input_read;   /* by input index */
    const bool *fb_local;   /* M_forward_backward's loop: Plan.fb_local */
} Count;

/* Values of node x in memory: one sample's, times n when per sample. */
static double values_of(const Count *c, const Node *x)
{
    return (double)shape_size(x->shape) * (x->batched ? c->n : 1);
}

static bool is_leaf(const Node *x)
{
    return x->op == OP_INPUT || x->op == OP_PARAM;
}

/* Notes how far into the workspace buffer b of node x reaches. */
static void reach(Count *c, const Buffer *b, double size)
{
    const Plan *p = c->p;
    double end = 0;
    if (b->pool == POOL_BATCHED)
        end = ((double)b->offset + size) * c->n;
    else if (b->pool == POOL_SHARED)
        end = (double)p->ws_batched * c->n + (double)b->offset + size;
    if (end > c->ws_end)
        c->ws_end = end;
}

/* Where node x, not a leaf, is kept while function f runs: its own
 * buffer, or (in backward) the one forward kept it in. */
static const Buffer *buffer_of(const Count *c, const Node *x)
{
    const NodeInfo *in = &c->p->info[x->id];
    return in->mode[c->f] == NODE_BUFFER ? &in->buf[c->f] : &in->buf[PF_FORWARD];
}

/* Whether x is a local of a merged loop: never in memory. */
static bool is_local(const Count *c, const Node *x)
{
    return loop_local(c->p, c->f, x, c->fb_local);
}

/* One read of x from memory, counted once per step. */
static void read_value(Count *c, const Node *x)
{
    if (c->seen[x->id] == c->step || is_local(c, x))
        return;
    c->seen[x->id] = c->step;
    c->read += values_of(c, x);
    if (x->op == OP_INPUT)
        c->input_read[x->index] = true;
    else if (!is_leaf(x))
        reach(c, buffer_of(c, x), (double)shape_size(x->shape));
}

/* The operations of node y, and of every node fused into its step below
 * it; the values they read from memory. */
static void evaluate(Count *c, const Node *y)
{
    double per_sample = op_info[y->op].flops(y);
    c->flops += per_sample * (y->batched || y->op == OP_BATCH_MEAN ? c->n : 1);
    for (int k = 0; k < y->nin; k++) {
        const Node *x = y->in[k];
        NodeMode mode = c->p->info[x->id].mode[c->f];
        if (x->op == OP_CONST && mode != NODE_BUFFER)
            continue;   /* a literal in the code */
        if (!is_leaf(x) && (mode == NODE_INLINE || mode == NODE_VIRTUAL))
            evaluate(c, x);
        else
            read_value(c, x);
    }
}

/* Counts the epilogue's copies and forward's loss. */
static void finish(Count *c, const Step *st)
{
    if (st->kind == STEP_REDUCE) {
        const Node *L = st->reduce.x;
        read_value(c, L);
        if (L->batched)
            c->flops += c->n + 1;
        return;
    }
    const CopyStep *cp = &st->copy;
    double rows = cp->batched_dst ? c->n : 1;
    if (cp->src && cp->src->op != OP_CONST)
        read_value(c, cp->src);
    c->written += (double)cp->size * rows;
    if (cp->per_n)
        c->flops += (double)cp->size * rows;
}

/* The step's text: `NAME = EXPR` in the model's names (an adjoint by its
 * label), the expression alone for an unnamed intermediate; the caller's
 * array for a copy out. */
static void describe(FILE *out, const Plan *p, const Step *st)
{
    const Model *m = p->graph->model;
    const char *loss = m->loss ? m->loss->name : "L";
    const Node *y = st->node;
    if (y) {
        Node copy = *y;
        copy.name = NULL;
        copy.label = NULL;
        if (y->name || y->label)
            fprintf(out, "%s = ", y->name ? y->name : y->label);
        print_expr_brief(out, &copy, 72);
        return;
    }
    if (st->kind == STEP_REDUCE) {
        fprintf(out, "the loss %s%s", loss,
                st->reduce.x->batched ? ", the mean over the batch" : "");
        return;
    }
    const CopyStep *cp = &st->copy;
    switch (cp->dest) {
    case DEST_GRAD:
        fprintf(out, "d%s/d%s into grad%s", loss, m->params[cp->index]->name,
                cp->src ? "" : " (frozen: zeros)");
        break;
    case DEST_GRAD_INPUT:
        fprintf(out, "d%s/d%s into grad_inputs[%d]", loss, m->inputs[cp->index]->name, cp->index);
        break;
    case DEST_OUTPUT:
        fprintf(out, "output %s into outputs[%d]", m->outputs[cp->index]->name, cp->index);
        break;
    case DEST_NODE:
        break;
    }
}

/* Adds step st of function c->f to c's FLOPs and values read and written
 * (reads already counted under the same c->step are not counted again). */
static void count_step(Count *c, const Step *st)
{
    if (!st->node) {
        finish(c, st);
        return;
    }
    evaluate(c, st->node);
    const NodeInfo *in = &c->p->info[st->node->id];
    double written = is_local(c, st->node) ? 0 : values_of(c, st->node);
    c->written += written;
    if (in->buf[c->f].pool == POOL_GRAD_INPUT)
        c->flops += written;    /* each divided by n */
    reach(c, &in->buf[c->f], (double)shape_size(st->node->shape));
    if (in->scratch_size > 0)
        reach(c, &in->scratch[c->f], (double)in->scratch_size);
}

/* M_forward_backward's one loop (lower.c, lower_forward_backward), as its
 * steps count in forward and backward apart and as the one loop moves
 * them: each value read once, forward's values that only the loop reads
 * never stored. */
static void report_joined(Count *c, FILE *out)
{
    const Plan *p = c->p;
    int nf = p->nsteps[PF_FORWARD];
    double apart = 0, flops = 0;
    for (int pass = 0; pass < 2; pass++) {
        memset(c->seen, 0, sizeof(int) * (size_t)(p->graph->nnodes + 1));
        c->fb_local = pass ? p->fb_local : NULL;
        c->flops = c->read = c->written = 0;
        c->step = 1;
        for (int k = p->fb_first; k < nf + p->fb_joined; k++) {
            c->f = k < nf ? PF_FORWARD : PF_BACKWARD;
            c->step = pass ? 1 : c->step + 1;
            count_step(c, k < nf ? &p->steps[PF_FORWARD][k] : &p->steps[PF_BACKWARD][k - nf]);
        }
        if (!pass) {
            apart = (c->read + c->written) * c->real;
            flops = c->flops;
        }
    }
    double joined = (c->read + c->written) * c->real;
    c->fb_local = NULL;
    fprintf(out, "\nforward_backward: forward's steps %d to %d and backward's 1 to %d run as one "
                 "loop\n  (%.0f FLOPs): %.0f bytes where they move %.0f apart\n",
            p->fb_first + 1, nf, p->fb_joined, flops, joined, apart);
}

static void print_intensity(FILE *out, double flops, double bytes)
{
    if (bytes > 0)
        fprintf(out, "%10.3f", flops / bytes);
    else
        fprintf(out, "%10s", "-");
}

/* Bytes of the caller's arrays function f reads or writes. */
static double caller_bytes(const Count *c, const Model *m, double grad_values)
{
    double values = grad_values;   /* theta */
    for (int k = 0; k < m->ninputs; k++)
        if (c->input_read[k])
            values += (double)shape_size(m->inputs[k]->shape) * c->n;
    if (c->f == PF_BACKWARD) {
        values += grad_values;
        for (int k = 0; k < m->ninputs; k++)
            if (c->p->graph->grad_inputs[k])
                values += (double)shape_size(m->inputs[k]->shape) * c->n;
    }
    if (c->f == PF_PREDICT || c->f == PF_OUTPUTS)
        for (int j = 0; j < m->noutputs; j++)
            values += (double)shape_size(m->outputs[j]->shape) * c->n;
    return values * c->real;
}

bool report_plan(const Plan *p, long batch, bool batch_given, FILE *out)
{
    const Graph *g = p->graph;
    const Model *m = g->model;
    double real = p->opt.precision == PREC_DOUBLE ? 8 : 4, n = (double)batch;
    double params = 0;
    for (int i = 0; i < m->nparams; i++)
        params += (double)shape_size(m->params[i]->shape);
    double ws = ((double)p->ws_batched * n + (double)p->ws_shared) * real;

    fprintf(out, "# cost of model %s at batch size n = %ld%s, %s (%g bytes a value)\n", m->name,
            batch, batch_given ? "" : " (the default; --batch N for another)",
            p->opt.precision == PREC_DOUBLE ? "double" : "float", real);
    fprintf(out, "# parameters: %.0f values, %.0f bytes; %s_workspace_size(%ld) = %.0f bytes\n",
            params, params * real, m->name, batch, ws);
    fputs("# FLOPs: each arithmetic operation, comparison or function call (exp, tanh)\n"
          "# is 1, a multiply-add 2; bytes: each value a step reads, once, and the value\n"
          "# it writes, once; FLOP/byte: the arithmetic intensity\n", out);

    Count c;
    memset(&c, 0, sizeof c);
    c.p = p;
    c.n = n;
    c.real = real;
    c.seen = arena_alloc(p->arena, sizeof(int) * (size_t)(g->nnodes + 1));
    c.input_read = arena_alloc(p->arena, sizeof(bool) * (size_t)(m->ninputs + 1));
    double train_flops = 0, train_bytes = 0;
    for (int f = 0; f < PF__COUNT; f++) {
        c.f = (PlanFn)f;
        c.ws_end = 0;
        memset(c.seen, 0, sizeof(int) * (size_t)(g->nnodes + 1));
        memset(c.input_read, 0, sizeof(bool) * (size_t)(m->ninputs + 1));
        double total_flops = 0, total_bytes = 0;
        fprintf(out, "\n%s: %d steps\n", fn_names[f], p->nsteps[f]);
        fprintf(out, "  %4s  %-6s %14s %14s %10s  %s\n", "step", "kind", "FLOPs", "bytes",
                "FLOP/byte", "computes");
        for (int k = 0; k < p->nsteps[f]; k++) {
            static const char *const kinds[] = {"gemm", "kernel", "loop", "reduce", "copy"};
            const Step *st = &p->steps[f][k];
            c.step = k + 1;
            c.flops = c.read = c.written = 0;
            count_step(&c, st);
            double bytes = (c.read + c.written) * real;
            fprintf(out, "  %4d  %-6s %14.0f %14.0f ", k + 1, kinds[st->kind], c.flops, bytes);
            print_intensity(out, c.flops, bytes);
            fputs("  ", out);
            describe(out, p, st);
            fputc('\n', out);
            total_flops += c.flops;
            total_bytes += bytes;
        }
        fprintf(out, "  %-12s %14.0f %14.0f ", "total", total_flops, total_bytes);
        print_intensity(out, total_flops, total_bytes);
        double ws_bytes = c.ws_end * real;
        fprintf(out, "\n  workspace %.0f bytes; peak memory %.0f bytes (the workspace, "
                     "parameters,\n  inputs and results)\n",
                ws_bytes, ws_bytes + caller_bytes(&c, m, params));
        if (f == PF_FORWARD || f == PF_BACKWARD) {
            train_flops += total_flops;
            train_bytes += total_bytes;
        }
    }
    fprintf(out, "\ntraining step (forward + backward): %.0f FLOPs, %.0f bytes, ", train_flops,
            train_bytes);
    if (train_bytes > 0)
        fprintf(out, "%.3f FLOP/byte\n", train_flops / train_bytes);
    else
        fputs("- FLOP/byte\n", out);
    if (p->fb_joined)
        report_joined(&c, out);
    return fflush(out) == 0 && !ferror(out);
}
