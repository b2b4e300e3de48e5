/* plan.c — the plan's check and its dump (--dump=lower).
 *
 * plan_check() runs after lowering and before emission: every buffer has
 * a place inside its pool, every convolution step its scratch, every step
 * reads only values that exist by then (leaves, literals, earlier steps of
 * its function, or what forward kept for backward), and every gemm and
 * kernel operand lies inside its buffer. A violation is an internal error
 * of lowering, reported before any C is written.
 */
#include "bpgen.h"

#include <string.h>

static const char *const fn_names[PF__COUNT] = {"forward", "backward", "predict",
                                                "outputs after forward"};

static long grad_size(const Plan *p)
{
    const Model *m = p->graph->model;
    return m->param_offsets[m->nparams];
}

static long pool_size(const Plan *p, Pool pool)
{
    return pool == POOL_BATCHED ? p->ws_batched : pool == POOL_SHARED ? p->ws_shared
                                                                       : grad_size(p);
}

/* ---------------------------------------------------------------- check */

typedef struct {
    const Plan *p;
    PlanFn f;
    const bool *defined;      /* by node id: its buffer holds its value now */
    const bool *forward_done; /* ... at the end of forward (for backward, outputs) */
} Reads;

/* Whether the step may read n from memory now. */
static bool readable(const Reads *r, const Node *n)
{
    if (n->op == OP_INPUT || n->op == OP_PARAM)
        return true;
    if (r->defined[n->id])
        return true;
    return after_forward(r->f) && r->p->info[n->id].kept && r->forward_done[n->id];
}

/* Whether n's value is available in a loop: a literal, a read, or (fused
 * into the loop) computed from available values. */
static bool available(const Reads *r, const Node *n, bool top)
{
    if (n->op == OP_CONST && r->p->info[n->id].mode[r->f] != NODE_BUFFER)
        return true;
    if (!top && r->p->info[n->id].mode[r->f] != NODE_INLINE)
        return readable(r, n);
    for (int k = 0; k < n->nin; k++)
        if (!available(r, n->in[k], false))
            return false;
    return true;
}

static long extent_at(Extent x, long n)
{
    return x.times_n ? x.count * n : x.count;
}

/* Whether a rows × cols matrix with row stride ld lies inside o's buffer
 * (one sample's part when at_sample, all n rows of a batched one else). */
static bool view_fits(Operand o, long rows, long cols, long ld, long n)
{
    if (!o.node || rows < 1 || cols < 1 || cols > ld)
        return false;
    long reals = shape_size(o.node->shape) * (o.node->batched && !o.at_sample ? n : 1);
    return (rows - 1) * ld + cols <= reals;
}

static const char *check_gemm(const Reads *r, const GemmStep *g)
{
    if (!readable(r, g->a.node) || !readable(r, g->b.node) ||
        (g->prefill && g->prefill->op != OP_CONST && !readable(r, g->prefill)))
        return "a gemm operand read before it is computed";
    if (g->loops_below != 0 && g->sample_loop)
        return "a gemm written as loops inside a loop over the samples";
    if (g->partial_sums > 1 && (g->k.times_n || g->k.count % g->partial_sums != 0))
        return "a dot product in partial sums that do not divide it";
    /* the sizes at two batch sizes: an extent that should scale with n and
     * does not shows at the second */
    for (long n = 1; n <= 5; n += 4) {
        long m = extent_at(g->m, n), cols = extent_at(g->n, n), k = extent_at(g->k, n);
        if (!view_fits(g->a, g->ta ? k : m, g->ta ? m : k, g->lda, n) ||
            !view_fits(g->b, g->tb ? cols : k, g->tb ? k : cols, g->ldb, n) ||
            !view_fits(g->c, m, cols, g->ldc, n))
            return "a gemm operand outside its buffer";
    }
    return NULL;
}

/* Whether the operand holds `reals` per sample (none: reals is 0). */
static bool sized(Operand o, long reals)
{
    return o.node ? shape_size(o.node->shape) == reals : reals == 0;
}

static const char *check_kernel(const Reads *r, const KernelStep *k)
{
    for (int i = 0; i < 3; i++)
        if (k->arg[i].node && !readable(r, k->arg[i].node))
            return "a kernel operand read before it is computed";
    const ConvShape *s = &k->shape;
    long x = (long)s->c * s->h * s->w, w = (long)s->o * s->c * s->kh * s->kw,
         y = (long)s->o * s->oh * s->ow;
    long px = (long)k->pool_c * k->pool_h * k->pool_w, py = 0;
    if (k->window > 0)
        py = (long)k->pool_c * (k->pool_h / k->window) * (k->pool_w / k->window);
    bool ok = false;
    switch (k->op) {
    case OP_CONV2D:
        ok = sized(k->arg[0], x) && sized(k->arg[1], w) && (!k->arg[2].node || sized(k->arg[2], s->o)) &&
             sized(k->out, y);
        break;
    case OP_CONV2D_GRAD_INPUT:
        ok = sized(k->arg[0], y) && sized(k->arg[1], w) && sized(k->out, x);
        break;
    case OP_CONV2D_GRAD_KERNEL:
        ok = sized(k->arg[0], y) && sized(k->arg[1], x) && sized(k->out, w);
        break;
    case OP_CONV2D_GRAD_BIAS:
        ok = sized(k->arg[0], y) && sized(k->out, s->o);
        break;
    case OP_MAXPOOL2D:
    case OP_AVGPOOL2D:
        ok = sized(k->arg[0], px) && sized(k->out, py);
        break;
    case OP_MAXPOOL2D_GRAD:
        ok = sized(k->arg[0], px) && sized(k->arg[1], py) && sized(k->out, px);
        break;
    case OP_AVGPOOL2D_GRAD:
        ok = sized(k->arg[0], py) && sized(k->out, px);
        break;
    default:
        return "a kernel step of an operation without a kernel";
    }
    if (!ok)
        return "a kernel operand of the wrong size";
    if (k->conv && k->op != OP_CONV2D_GRAD_BIAS &&
        (!k->scratch || k->scratch->pool != POOL_SHARED))
        return "a convolution without scratch";
    return NULL;
}

static const char *check_copy(const Reads *r, const Plan *p, const CopyStep *c)
{
    Node *src = c->src;
    if (src && !available(r, src, false))
        return "a copy of a value before it is computed";
    if ((c->form == COPY_MEMCPY || c->form == COPY_ROWS || c->form == COPY_EACH) &&
        shape_size(src->shape) != c->size)
        return "a copy between buffers of different sizes";
    if (c->dest == DEST_GRAD && (c->offset < 0 || c->offset + c->size > grad_size(p)))
        return "a gradient copied outside grad";
    return NULL;
}

/* Why step st, joined to `next` (the next step), does not make one loop
 * with it, or NULL: both elementwise loops of one form, trip count and
 * batching, or forward's loss after a flat loop over the samples. */
static const char *check_join(const Step *st, const Step *next)
{
    if (st->kind != STEP_LOOP || (st->loop.form != LOOP_FLAT && st->loop.form != LOOP_NESTED))
        return "a merged loop with a step that is not an elementwise loop";
    if (!next)
        return "a merged loop joined to no step";
    if (next->kind == STEP_REDUCE && next->reduce.form == REDUCE_LOSS)
        return st->loop.form == LOOP_FLAT && st->loop.size == 1 && st->node->batched &&
               next->reduce.x == st->node ? NULL : "a loss summed in a loop that is not its own";
    if (next->kind != STEP_LOOP || next->loop.form != st->loop.form ||
        next->loop.size != st->loop.size || next->node->batched != st->node->batched)
        return "a merged loop over steps of different trip counts";
    return NULL;
}

/* Why step st of function f is wrong, or NULL. */
static const char *check_step(const Reads *r, const Step *st)
{
    Node *y = st->node;
    switch (st->kind) {
    case STEP_GEMM:
        return check_gemm(r, &st->gemm);
    case STEP_KERNEL:
        return check_kernel(r, &st->kernel);
    case STEP_LOOP:
        if (st->loop.form == LOOP_OUTER)
            return available(r, y->in[0], false) && available(r, y->in[1], false) ? NULL
                   : "an outer product of values not computed yet";
        return available(r, y, true) ? NULL : "a loop reading a value not computed yet";
    case STEP_REDUCE:
        if (st->reduce.form == REDUCE_DOT)
            return available(r, y->in[0], false) && available(r, y->in[1], false) ? NULL
                   : "a dot product of values not computed yet";
        return available(r, st->reduce.x, false) ? NULL
               : "a reduction of a value not computed yet";
    case STEP_COPY:
        if (st->copy.form == COPY_TRANSPOSE)
            return available(r, st->copy.src, false) ? NULL
                   : "a transpose of a value not computed yet";
        return check_copy(r, r->p, &st->copy);
    case STEP_UPDATE:
        return "an update outside M_step";
    }
    return "a step of no kind";
}

/* Why the buffer of node n, computed in function f, is misplaced, or NULL. */
static const char *check_buffer(const Plan *p, PlanFn f, const Node *n)
{
    const NodeInfo *in = &p->info[n->id];
    if (in->mode[f] != NODE_BUFFER)
        return "a step that is not a buffer";
    if (in->buf[f].pool == POOL_NONE)
        return "a buffer without a place";
    if (in->buf[f].pool == POOL_LOCAL)
        return NULL;    /* in a merged loop: checked with the steps */
    if (in->buf[f].pool == POOL_OUTPUT)
        return (f == PF_PREDICT || f == PF_OUTPUTS) && in->buf[f].offset >= 0 &&
               in->buf[f].offset < p->graph->model->noutputs &&
               p->graph->output_nodes[in->buf[f].offset] == n && n->batched
               ? NULL : "a value written into outputs that is not that output";
    if (in->buf[f].pool == POOL_GRAD_INPUT)
        return f == PF_BACKWARD && in->buf[f].offset >= 0 &&
               in->buf[f].offset < p->graph->model->ninputs &&
               p->graph->grad_inputs[in->buf[f].offset] == n && n->batched && !in->joined[f]
               ? NULL : "a value written into grad_inputs that is not that gradient";
    if (in->buf[f].offset < 0 ||
        in->buf[f].offset + shape_size(n->shape) > pool_size(p, in->buf[f].pool))
        return "a buffer outside its pool";
    if (in->scratch_size > 0 &&
        (in->scratch[f].pool != POOL_SHARED ||
         in->scratch[f].offset + in->scratch_size > p->ws_shared))
        return "scratch without a place";
    return NULL;
}

static bool fail(PlanFn f, int k, const Node *n, const char *why)
{
    if (n)
        fprintf(stderr, "bpgen: internal error: plan: %s: node %d (%s) in %s\n", why, n->id,
                op_info[n->op].name, fn_names[f]);
    else
        fprintf(stderr, "bpgen: internal error: plan: %s: step %d of %s\n", why, k, fn_names[f]);
    return false;
}

/* Why function f's groups do not cut its steps as bpgen.h says, or NULL. */
static const char *check_groups(const Plan *p, PlanFn f)
{
    int next = 0, count = p->ngroups[f];
    for (int k = 0; k < count; k++) {
        const StepGroup *g = &p->groups[f][k];
        if (g->first != next || g->count < 1)
            return "groups that do not cover the steps in order";
        if (count > 1 && g->count > GROUP_STEPS)
            return "a group of more than GROUP_STEPS steps";
        /* forward's loss, with the merged loop it is summed in */
        if (count > 1 && g->in_caller &&
            !(f == PF_FORWARD && k == count - 1 &&
              (g->count == 1 || p->steps[f][g->first + g->count - 2].joined)))
            return "a step left in the caller of a split function";
        if (g->first > 0 && p->steps[f][g->first - 1].joined)
            return "a merged loop cut between groups";
        next += g->count;
    }
    return next == p->nsteps[f] ? NULL : "groups that do not cover the steps";
}

bool plan_check(const Plan *p)
{
    size_t count = (size_t)p->graph->nnodes + 1;
    bool *done[PF__COUNT];
    for (int f = 0; f < PF__COUNT; f++) {
        done[f] = arena_alloc(p->arena, sizeof(bool) * count);
        memset(done[f], 0, sizeof(bool) * count);
    }
    for (int f = 0; f < PF__COUNT; f++) {
        for (int k = 0; k < p->norder[f]; k++) {
            const Node *n = p->order[f][k];
            const char *why = check_buffer(p, (PlanFn)f, n);
            if (!why && k > 0 && p->order[f][k - 1]->id >= n->id)
                why = "steps out of order";
            if (why)
                return fail((PlanFn)f, k, n, why);
        }
        if (p->nsteps[f] < p->norder[f])
            return fail((PlanFn)f, p->nsteps[f], NULL, "fewer steps than buffers");
        const char *group_why = check_groups(p, (PlanFn)f);
        if (!group_why && p->one_sample[f] && !(p->ngroups[f] == 1 && p->groups[f][0].in_caller))
            group_why = "a split function copied for one sample";
        if (group_why)
            return fail((PlanFn)f, 0, NULL, group_why);
        Reads r = {p, (PlanFn)f, done[f], done[PF_FORWARD]};
        int run = 0;    /* where the merged loop step k is in starts */
        for (int k = 0; k < p->nsteps[f]; k++) {
            const Step *st = &p->steps[f][k];
            /* the buffered nodes' steps first, in their order; the
             * epilogue after them writes nothing of the workspace */
            if (k < p->norder[f] ? st->node != p->order[f][k] : st->node != NULL)
                return fail((PlanFn)f, k, st->node, "a step that is not its buffer's");
            if (st->node && p->info[st->node->id].buf[f].pool == POOL_LOCAL &&
                !(st->joined || (k > 0 && p->steps[f][k - 1].joined)))
                return fail((PlanFn)f, k, st->node, "a local of no merged loop");
            if (st->joined) {
                const char *why = check_join(st, k + 1 < p->nsteps[f] ? &p->steps[f][k + 1] : NULL);
                if (why)
                    return fail((PlanFn)f, k, st->node, why);
            }
            const char *why = check_step(&r, st);
            if (why)
                return fail((PlanFn)f, k, st->node, why);
            if (st->node)
                done[f][st->node->id] = true;
            if (!st->joined) {
                /* a loop's locals are gone after it */
                for (int j = run; j <= k; j++) {
                    const Node *y = p->steps[f][j].node;
                    if (y && p->info[y->id].buf[f].pool == POOL_LOCAL)
                        done[f][y->id] = false;
                }
                run = k + 1;
            }
        }
    }
    /* M_forward_backward's loop: forward's last merged loop, then
     * backward's first steps, all of one form and trip count */
    if (p->fb_joined) {
        const Step *fw = p->steps[PF_FORWARD], *bw = p->steps[PF_BACKWARD];
        int nf = p->nsteps[PF_FORWARD];
        if (p->fb_first < 0 || p->fb_first >= nf - 1 || p->fb_joined > p->nsteps[PF_BACKWARD])
            return fail(PF_BACKWARD, 0, NULL, "a forward_backward loop out of range");
        for (int k = p->fb_first; k < nf - 1; k++)
            if (!fw[k].joined)
                return fail(PF_FORWARD, k, fw[k].node, "a forward_backward loop not forward's last");
        const Step *lead = &fw[p->fb_first];
        for (int k = 0; k < p->fb_joined; k++) {
            /* a batch mean of one value per sample is summed in the loop */
            bool summed = bw[k].kind == STEP_REDUCE && bw[k].reduce.form == REDUCE_BATCH_MEAN &&
                          bw[k].reduce.size == 1 && lead->loop.form == LOOP_FLAT &&
                          lead->loop.size == 1;
            const char *why = bw[k].kind == STEP_REDUCE
                              ? (summed ? NULL : "a forward_backward loop with a reduction it "
                                                 "cannot sum")
                              : check_join(lead, &bw[k]);
            if (why)
                return fail(PF_BACKWARD, k, bw[k].node, why);
        }
    }
    if (p->one_sample_step &&
        !(p->fused_steps && p->nfused_groups == 1 && p->fused_groups[0].in_caller))
        return fail(PF_BACKWARD, 0, NULL, "a split M_step copied for one sample");
    return true;
}

/* ---------------------------------------------------------------- dump */

static void dump_place(FILE *out, Buffer b)
{
    static const char *const pools[] = {"?", "ws per sample", "ws shared", "grad"};
    if (b.pool == POOL_LOCAL)
        fputs("a local of the loop", out);
    else if (b.pool == POOL_OUTPUT)
        fprintf(out, "outputs[%ld]", b.offset);
    else if (b.pool == POOL_GRAD_INPUT)
        fprintf(out, "grad_inputs[%ld] / n, if wanted", b.offset);
    else
        fprintf(out, "%s @%ld", pools[b.pool], b.offset);
}

static void dump_extent(FILE *out, Extent x)
{
    if (!x.times_n)
        fprintf(out, "%ld", x.count);
    else if (x.count == 1)
        fputs("n", out);
    else
        fprintf(out, "%ld·n", x.count);
}

/* s, with a folded constant factor (NULL: none) in 1/n */
static void dump_scale(FILE *out, Scale s, const Node *factor)
{
    static const char *const text[] = {"0", "1", "1/n", "0 for s = 0, then 1"};
    if (s == SCALE_INV_N && factor)
        fprintf(out, "%g/n", factor->value);
    else
        fputs(text[s], out);
}

static void dump_operand(FILE *out, Operand o)
{
    if (!o.node)
        fputs("none", out);
    else
        fprintf(out, "%%%d%s", o.node->id, o.at_sample ? "[s]" : "");
}

/* A gemm operand: op(X) of rows × cols, X stored with row stride ld. */
static void dump_matrix(FILE *out, Operand o, bool trans, Extent rows, Extent cols, long ld)
{
    dump_operand(out, o);
    fputs(trans ? "ᵀ (" : " (", out);
    dump_extent(out, rows);
    fputs(" × ", out);
    dump_extent(out, cols);
    fprintf(out, ", ld %ld)", ld);
}

static void dump_gemm(FILE *out, const GemmStep *g, const Node *factor)
{
    fputs("      gemm", out);
    const char *sums = g->loops_below != 0 && g->partial_sums > 1 ? ", dot products in" : "";
    if (g->loops_below == LOOPS_ALWAYS)
        fprintf(out, " as loops%s", sums);
    else if (g->loops_below > 0)
        fprintf(out, " (loops below batch %d%s", g->loops_below, sums);
    if (*sums)
        fprintf(out, " %d partial sums", g->partial_sums);
    if (g->loops_below > 0)
        fputc(')', out);
    fprintf(out, "%s: ", g->sample_loop ? " per sample s" : "");
    dump_matrix(out, g->c, false, g->m, g->n, g->ldc);
    fputs(" = ", out);
    if (g->alpha != SCALE_ONE) {
        dump_scale(out, g->alpha, factor);
        fputs(" · ", out);
    }
    dump_matrix(out, g->a, g->ta, g->m, g->k, g->lda);
    fputs(" · ", out);
    dump_matrix(out, g->b, g->tb, g->k, g->n, g->ldb);
    if (g->beta == SCALE_ONE)
        fputs(" + itself", out);
    else if (g->beta == SCALE_FIRST_ZERO)
        fputs(" + itself after s = 0", out);
    if (g->prefill && g->prefill->op == OP_CONST)
        fprintf(out, "; its rows start as %g", g->prefill->value);
    else if (g->prefill)
        fprintf(out, "; its rows start as %%%d", g->prefill->id);
    fputc('\n', out);
}

static void dump_kernel(FILE *out, const KernelStep *k, const Node *factor)
{
    fprintf(out, "      %s %s: ", op_info[k->op].c_fn, k->sample_loop ? "per sample s" :
                 k->count.times_n ? "over the batch" : "once");
    bool first = true;
    for (int i = 0; i < 3; i++) {
        if (!k->arg[i].node)
            continue;
        fputs(first ? "" : ", ", out);
        dump_operand(out, k->arg[i]);
        first = false;
    }
    fputs(" -> ", out);
    dump_operand(out, k->out);
    if (k->conv) {
        const ConvShape *s = &k->shape;
        fprintf(out, "; %d × %d × %d, %d kernels %d × %d, stride %d, pad %d -> %d × %d", s->c, s->h,
                s->w, s->o, s->kh, s->kw, s->stride, s->pad, s->oh, s->ow);
    } else {
        fprintf(out, "; %d × %d × %d, window %d", k->pool_c, k->pool_h, k->pool_w, k->window);
    }
    if (k->alpha != SCALE_ONE || k->beta != SCALE_ZERO) {
        fputs(", alpha ", out);
        dump_scale(out, k->alpha, factor);
        fputs(", beta ", out);
        dump_scale(out, k->beta, NULL);
    }
    fputc('\n', out);
}

static void dump_detail(FILE *out, const Step *st)
{
    static const char *const loops[] = {"scalar", "flat", "nested", "outer product",
                                        "as one call"};
    static const char *const reductions[] = {"sum", "dot", "logsumexp", "softmax", "log_softmax",
                                             "batch mean", "loss"};
    const Node *y = st->node;
    switch (st->kind) {
    case STEP_GEMM:
        dump_gemm(out, &st->gemm, st->factor);
        break;
    case STEP_KERNEL:
        dump_kernel(out, &st->kernel, st->factor);
        break;
    case STEP_LOOP:
        fprintf(out, "      loop %s", loops[st->loop.form]);
        if (st->loop.form == LOOP_FLAT)
            fprintf(out, ": i < %ld%s", st->loop.size, y->batched ? "·n" : "");
        else if (st->loop.form == LOOP_NESTED)
            fprintf(out, ": s < n, j < %ld", st->loop.size);
        else if (st->loop.form == LOOP_OUTER)
            fprintf(out, "%s: k < %d, j < %d", y->batched ? " per sample" : "", y->shape.dim[0],
                    y->shape.dim[1]);
        fputc('\n', out);
        break;
    case STEP_REDUCE:
        fprintf(out, "      %s of %%%d: %ld %s", reductions[st->reduce.form], st->reduce.x->id,
                st->reduce.size,
                st->reduce.form == REDUCE_BATCH_MEAN ? "per sample, over n samples"
                : y->batched ? "per sample, n samples" : "once");
        if (st->factor)
            fprintf(out, ", times %g", st->factor->value);
        fputc('\n', out);
        break;
    case STEP_COPY:
        fprintf(out, "      transpose of %%%d: %d × %d%s\n", st->copy.src->id, y->shape.dim[0],
                y->shape.dim[1], y->batched ? " per sample" : "");
        break;
    case STEP_UPDATE:
        break;
    }
}

static void dump_copy_out(FILE *out, const Plan *p, const CopyStep *c)
{
    static const char *const forms[] = {"transpose", "memset 0", "fill", "memcpy", "copy to each row",
                                        "value by value", "broadcast to each row", "value by value"};
    const Model *m = p->graph->model;
    fputs("  copy    ", out);
    if (!c->src)
        fputs("0 (frozen)", out);
    else if (c->src->op == OP_CONST)
        fprintf(out, "%g", c->src->value);
    else
        fprintf(out, "%%%d", c->src->id);
    switch (c->dest) {
    case DEST_GRAD:
        fprintf(out, " -> grad @%ld [%ld]  ; d%s/d%s", c->offset, c->size,
                m->loss ? m->loss->name : "L", m->params[c->index]->name);
        break;
    case DEST_GRAD_INPUT:
        fprintf(out, " -> grad_inputs[%d] [%ld per sample]  ; d%s/d%s", c->index, c->size,
                m->loss ? m->loss->name : "L", m->inputs[c->index]->name);
        break;
    case DEST_OUTPUT:
        fprintf(out, " -> outputs[%d] [%ld per sample]  ; %s", c->index, c->size,
                m->outputs[c->index]->name);
        break;
    case DEST_NODE:
        break;
    }
    fprintf(out, "\n      %s%s\n", forms[c->form], c->per_n ? ", divided by n" : "");
}

static void dump_node_step(FILE *out, const Plan *p, PlanFn f, const Step *st)
{
    static const char *const kinds[] = {"gemm", "kernel", "loop", "reduce", "copy"};
    const Node *n = st->node;
    const NodeInfo *in = &p->info[n->id];
    fprintf(out, "  %-7s %%%d = %s", kinds[st->kind], n->id, op_info[n->op].name);
    for (int j = 0; j < n->nin; j++) {
        const NodeInfo *x = &p->info[n->in[j]->id];
        const char *how = x->mode[f] == NODE_INLINE ? "~" : x->mode[f] == NODE_VIRTUAL ? "^" : "";
        fprintf(out, " %s%%%d", how, n->in[j]->id);
    }
    fprintf(out, "%s  -> ", n->batched ? " (batched)" : "");
    dump_place(out, in->buf[f]);
    fprintf(out, " [%ld]", shape_size(n->shape));
    if (in->scratch_size > 0) {
        fputs(", scratch ", out);
        dump_place(out, in->scratch[f]);
        fprintf(out, " [%ld]", in->scratch_size);
    }
    if (n->label)
        fprintf(out, "  ; %s", n->label);
    fputc('\n', out);
    dump_detail(out, st);
    if (st->joined)
        fputs("      one loop with the next step\n", out);
    if (st->check_finite)
        fputs("      then every value checked (--check-finite)\n", out);
}

static void dump_group(FILE *out, const StepGroup *g)
{
    fprintf(out, " group: steps %d to %d", g->first + 1, g->first + g->count);
    if (g->in_caller)
        fputs(", in the caller", out);
    else if (g->title)
        fprintf(out, ", a function named after %%%d", g->title->id);
    fputc('\n', out);
}

void plan_dump(const Plan *p, FILE *out)
{
    const Graph *g = p->graph;
    fprintf(out, "# plan: workspace %ld reals per sample + %ld shared\n", p->ws_batched,
            p->ws_shared);
    for (int f = 0; f < PF__COUNT; f++) {
        fprintf(out, "%s: %d steps\n", fn_names[f], p->nsteps[f]);
        int group = 0;
        for (int k = 0; k < p->nsteps[f]; k++) {
            const Step *st = &p->steps[f][k];
            if (p->ngroups[f] > 1 && group < p->ngroups[f] && p->groups[f][group].first == k)
                dump_group(out, &p->groups[f][group++]);
            if (st->node)
                dump_node_step(out, p, (PlanFn)f, st);
            else if (st->kind == STEP_REDUCE)
                fprintf(out, "  return  %%%d\n      %s%s\n", st->reduce.x->id,
                        st->reduce.x->batched ? "the mean over the n samples" : "shared",
                        k > 0 && p->steps[f][k - 1].joined ? ", summed in the loop before" : "");
            else
                dump_copy_out(out, p, &st->copy);
        }
        for (int pass = 0; pass < 2; pass++) {
            NodeMode want = pass == 0 ? NODE_INLINE : NODE_VIRTUAL;
            int fused = 0;
            for (int id = 0; id < g->nnodes; id++) {
                if (p->info[id].mode[f] != want)
                    continue;
                fprintf(out, "%s%%%d %s", fused++ ? ", " : pass == 0 ? "  in loops (~): "
                                                                       : "  in calls (^): ",
                        id, op_info[g->nodes[id]->op].name);
            }
            if (fused)
                fputc('\n', out);
        }
    }
    /* M_forward_backward */
    if (p->fb_joined) {
        fputs("forward_backward: ", out);
        if (p->fb_first > 0)
            fprintf(out, "forward's steps 1 to %d, then ", p->fb_first);
        fprintf(out, "one loop of forward's steps %d to %d and backward's 1 to %d",
                p->fb_first + 1, p->nsteps[PF_FORWARD], p->fb_joined);
        if (p->fb_joined < p->nsteps[PF_BACKWARD])
            fprintf(out, ", then backward's %d to %d", p->fb_joined + 1, p->nsteps[PF_BACKWARD]);
        fputc('\n', out);
    } else
        fputs("forward_backward: forward, then backward (no loop of both)\n", out);
    /* the functions printed again with n = 1 */
    fputs("one_sample:", out);
    int copies = 0;
    for (int f = 0; f < PF__COUNT; f++)
        if (p->one_sample[f])
            fprintf(out, "%s %s", copies++ ? "," : "", fn_names[f]);
    if (p->one_sample_step)
        fprintf(out, "%s step", copies++ ? "," : "");
    fputs(copies ? "\n" : " none\n", out);
    if (!p->fused_steps)
        return;
    /* --step: M_step after its call of forward */
    const Model *m = g->model;
    fprintf(out, "step: forward, then %d steps; gradients in a pool of %ld reals%s\n",
            p->nfused_steps, p->ws_fused,
            p->fused_whole ? " (all of them, as theta: a small model updates at the end)" : "");
    for (int k = 0; k < p->nfused_steps; k++) {
        const Step *st = &p->fused_steps[k];
        if (st->kind == STEP_UPDATE) {
            const UpdateStep *u = &st->update;
            if (u->gemm)
                dump_node_step(out, p, PF_BACKWARD, u->gemm);
            fprintf(out, "  update  %s", m->params[u->index]->name);
            if (u->count > 1)
                fprintf(out, " .. %s (%d tensors)", m->params[u->index + u->count - 1]->name,
                        u->count);
            fprintf(out, " [%ld] from the pool at %ld", u->size, u->offset);
            if (u->gemm)
                fprintf(out, ", made by the gemm above %ld rows at a time", u->tile_rows);
            fputc('\n', out);
        } else if (st->node) {
            dump_node_step(out, p, PF_BACKWARD, st);
        } else if (st->kind == STEP_COPY && st->copy.dest == DEST_GRAD) {
            fprintf(out, "  copy    d%s/d%s into the pool at %ld\n", m->loss ? m->loss->name : "L",
                    m->params[st->copy.index]->name, st->copy.offset);
        } else {
            dump_copy_out(out, p, &st->copy);
        }
    }
}
