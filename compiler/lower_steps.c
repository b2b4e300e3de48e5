/* lower_steps.c — the second half of lowering: each function's steps.
 *
 * In:  a Plan whose modes, buffer places and execution order lower.c has
 *      decided.
 * Out: Plan.steps: per function, an ordered list of Steps (bpgen.h) that
 *      the emitter prints as they are, with no decision left.
 *
 * Every node with a buffer is one step, in execution order, then the
 * function's epilogue: forward's loss (a REDUCE), backward's gradients and
 * predict's outputs (COPYs to the caller's arrays). The choices made here:
 *   - a matrix product is one gemm over the batch where the samples stack
 *     as the rows of one operand and the other is shared, else one gemm
 *     per sample (a shared matrix times batched vectors is one gemm with
 *     the operands swapped: Y (n × M) = X (n × K) · Aᵀ);
 *   - W·x + b (lower.c's bias fusion): the gemm's rows are pre-filled with
 *     b and it adds with beta = 1;
 *   - batch_mean of a virtual outer product: one gemm Aᵀ B with alpha
 *     1/n; of a virtual matmul: per-sample gemms accumulating with alpha
 *     1/n; of a virtual kernel gradient: one kernel call over the batch
 *     with alpha 1/n;
 *   - a kernel runs once over the batch when its per-sample operands are
 *     batched and its shared ones are not, else once per sample;
 *   - an elementwise loop is flat (one index over n·size values) when
 *     every value it reads has its shape and batching or is a shared
 *     scalar, else nested (samples, then elements);
 *   - a copy out is a memset, a memcpy, a copy to each row, or a loop;
 *   - a function of more than GROUP_STEPS steps is cut into groups of
 *     whole layers, each printed as a C function of its own.
 */
#include "bpgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static NodeMode mode_in(const Plan *p, PlanFn f, const Node *n)
{
    return p->info[n->id].mode[f];
}

static Extent extent(long count)
{
    Extent x = {count, false};
    return x;
}

static Extent times_n(long count)
{
    Extent x = {count, true};
    return x;
}

static Operand operand(Node *n, bool at_sample)
{
    Operand o = {n, at_sample && n && n->batched};
    return o;
}

/* ---------------------------------------------------------------- matrix products */

/* A matmul operand as gemm sees it, for one sample. */
typedef struct {
    Node *base;      /* what is in memory */
    bool trans;      /* base is stored transposed */
    long rows, cols; /* the operand's shape in the product */
    long ld;         /* row stride of base */
} View;

static View view_of(const Plan *p, PlanFn f, Node *v, bool left)
{
    View w;
    w.base = v;
    w.trans = false;
    if (v->op == OP_TRANSPOSE && mode_in(p, f, v) == NODE_VIRTUAL) {
        w.base = v->in[0];
        w.trans = true;
    }
    if (v->shape.rank == 2) {
        w.rows = v->shape.dim[0];
        w.cols = v->shape.dim[1];
        w.ld = w.base->shape.dim[1];
    } else {
        long k = v->shape.dim[0];
        w.rows = left ? 1 : k;
        w.cols = left ? k : 1;
        w.ld = left ? k : 1;
    }
    return w;
}

bool gemm_over_batch(const Plan *p, PlanFn f, const Node *mm)
{
    const Node *a = mm->in[0], *b = mm->in[1];
    bool a_trans = a->op == OP_TRANSPOSE && mode_in(p, f, a) == NODE_VIRTUAL;
    long cols_b = b->shape.rank == 2 ? b->shape.dim[1] : 1;
    return (a->batched && !a_trans && !b->batched) || (!a->batched && b->batched && cols_b == 1);
}

/* y = mm = a · b (or, with `mean`, y = batch_mean(a · b); with `add`,
 * y += a · b into rows already holding the bias). */
static void gemm_of(const Plan *p, PlanFn f, GemmStep *g, Node *y, Node *mm, bool mean, bool add)
{
    View A = view_of(p, f, mm->in[0], true), B = view_of(p, f, mm->in[1], false);
    long M = A.rows, K = A.cols, N = B.cols;
    bool ab = A.base->batched, bb = B.base->batched;
    g->ta = A.trans;
    g->tb = B.trans;
    g->m = extent(M);
    g->n = extent(N);
    g->k = extent(K);
    g->alpha = SCALE_ONE;
    g->beta = add ? SCALE_ONE : SCALE_ZERO;
    g->a = operand(A.base, false);
    g->lda = A.ld;
    g->b = operand(B.base, false);
    g->ldb = B.ld;
    g->c = operand(y, false);
    g->ldc = N;
    if (mean) {
        /* per-sample products summed into y with alpha = 1/n */
        g->sample_loop = true;
        g->alpha = SCALE_INV_N;
        g->beta = SCALE_FIRST_ZERO;
        g->a = operand(A.base, true);
        g->b = operand(B.base, true);
    } else if (!ab && !bb) {
        /* one product, shared */
    } else if (gemm_over_batch(p, f, mm) && ab) {
        /* samples of a stack as rows: Y (n·M × N) = A (n·M × K) · B */
        g->m = times_n(M);
    } else if (gemm_over_batch(p, f, mm)) {
        /* y_s = A x_s for every s: Y (n × M) = X (n × K) · Aᵀ */
        g->ta = false;
        g->tb = !A.trans;
        g->m = times_n(1);
        g->n = extent(M);
        g->a = operand(B.base, false);
        g->lda = K;
        g->b = operand(A.base, false);
        g->ldb = A.ld;
        g->ldc = M;
    } else {
        g->sample_loop = true;
        g->a = operand(A.base, true);
        g->b = operand(B.base, true);
        g->c = operand(y, true);
    }
}

/* The matrix product a bias is added to in y's own step, or NULL. */
static Node *bias_gemm_of(const Plan *p, PlanFn f, const Node *y, Node **bias)
{
    if (y->op != OP_ADD)
        return NULL;
    for (int k = 0; k < 2; k++)
        if (y->in[k]->op == OP_MATMUL && mode_in(p, f, y->in[k]) == NODE_VIRTUAL) {
            *bias = y->in[1 - k];
            return y->in[k];
        }
    return NULL;
}

/* ---------------------------------------------------------------- kernels */

static ConvShape conv_shape(const Shape *x, const Shape *K, const Shape *y, int stride, int pad)
{
    ConvShape cs = {x->dim[0], x->dim[1], x->dim[2], K->dim[0], K->dim[2], K->dim[3],
                    stride, pad, y->dim[1], y->dim[2]};
    return cs;
}

/* y = kernel v (v = y), or, with `mean`, y = batch_mean(v) of a
 * convolution's kernel or bias gradient v: one call with alpha = 1/n,
 * beta = 0, summing the samples' gradients. */
static void kernel_of(const Plan *p, PlanFn f, KernelStep *k, Node *y, Node *v, bool mean)
{
    Node *a = v->in[0], *b = v->nin > 1 ? v->in[1] : NULL, *c = v->nin > 2 ? v->in[2] : NULL;
    /* per-sample operands (stacked n deep when the call runs over the
     * batch) and shared ones: one call over the batch when every
     * per-sample operand is batched like the result and every shared one
     * is not, else one call per sample */
    bool per_sample[3] = {true, false, false};
    Node *args[3] = {a, b, c};
    const Shape *ys = &v->shape;
    bool out_batched = mean ? true : y->batched;
    k->op = v->op;
    switch (v->op) {
    case OP_CONV2D:
        k->conv = true;
        k->shape = conv_shape(&a->shape, &b->shape, ys, v->attr[0], v->attr[1]);
        break;
    case OP_CONV2D_GRAD_INPUT:   /* dy [o,oh,ow], K -> dx [c,h,w] */
        k->conv = true;
        k->shape = conv_shape(ys, &b->shape, &a->shape, v->attr[0], v->attr[1]);
        break;
    case OP_CONV2D_GRAD_KERNEL:  /* dy, x [c,h,w] -> dK [o,c,kh,kw] */
        per_sample[1] = true;
        k->conv = true;
        k->shape = conv_shape(&b->shape, ys, &a->shape, v->attr[0], v->attr[1]);
        break;
    case OP_CONV2D_GRAD_BIAS: {  /* dy [o,oh,ow] -> db [o]: a 1×1 convolution's */
        const Shape *dy = &a->shape;
        ConvShape cs = {1, dy->dim[1], dy->dim[2], dy->dim[0], 1, 1, 1, 0, dy->dim[1], dy->dim[2]};
        k->conv = true;
        k->shape = cs;
        break;
    }
    case OP_MAXPOOL2D_GRAD:      /* x, dy -> dx */
        per_sample[1] = true;
        /* fall through */
    case OP_MAXPOOL2D:
    case OP_AVGPOOL2D:
        k->pool_c = a->shape.dim[0];
        k->pool_h = a->shape.dim[1];
        k->pool_w = a->shape.dim[2];
        k->window = v->attr[0];
        break;
    case OP_AVGPOOL2D_GRAD:      /* dy -> dx [c, h, w] */
        k->pool_c = ys->dim[0];
        k->pool_h = ys->dim[1];
        k->pool_w = ys->dim[2];
        k->window = v->attr[0];
        break;
    default:
        break;
    }
    bool once = true;
    for (int i = 0; i < 3; i++)
        if (args[i] && (per_sample[i] ? args[i]->batched != out_batched : args[i]->batched))
            once = false;
    /* a per-sample gradient of a shared kernel or bias is a sum over one
     * sample: the loop's own call with n = 1 */
    if (!mean && (v->op == OP_CONV2D_GRAD_KERNEL || v->op == OP_CONV2D_GRAD_BIAS) && y->batched)
        once = false;
    k->sample_loop = !once;
    k->count = once && out_batched ? times_n(1) : extent(1);
    for (int i = 0; i < 3; i++)
        k->arg[i] = operand(args[i], !once);
    k->out = operand(y, !once);
    k->alpha = mean ? SCALE_INV_N : SCALE_ONE;
    k->beta = mean && !once ? SCALE_FIRST_ZERO : SCALE_ZERO;
    const NodeInfo *in = &p->info[y->id];
    k->scratch = in->scratch_size > 0 ? &in->scratch[f] : NULL;
}

/* ---------------------------------------------------------------- loops */

/* Can every memory read of n's fused expression use the flat index of a
 * loop over `size` values per sample, batched or not? */
static bool flat_ok(const Plan *p, PlanFn f, const Node *n, bool top, bool batched, long size)
{
    if (n->op == OP_CONST)
        return true;
    if (!top && mode_in(p, f, n) != NODE_INLINE) {
        long own = shape_size(n->shape);
        return (n->batched == batched && own == size) || (!n->batched && own == 1);
    }
    for (int k = 0; k < n->nin; k++)
        if (!flat_ok(p, f, n->in[k], false, batched, size))
            return false;
    return true;
}

/* Whether function f reads n from memory as it is: an input, a
 * parameter, a buffer of its own, or what forward kept for it. */
static bool stored_in(const Plan *p, PlanFn f, const Node *n)
{
    const NodeInfo *in = &p->info[n->id];
    return n->op == OP_INPUT || n->op == OP_PARAM || in->mode[f] == NODE_BUFFER ||
           (after_forward(f) && in->kept);
}

/* y = f(x), f with an array form in the runtime, x stored whole with y's
 * size and batching and made by no elementwise loop of f: one call over
 * the buffer (LOOP_ARRAY) instead of a loop. Where an elementwise loop
 * makes x, y's loop merges with it instead (one pass, lower.c's
 * join_loops); nor where y is written elsewhere (grad_inputs divided by
 * n). */
static bool array_call(const Plan *p, PlanFn f, const Node *y, long size)
{
    const Node *x = y->nin == 1 ? y->in[0] : NULL;
    LoopStep made;
    if (!op_info[y->op].c_array_fn || !x || x->batched != y->batched ||
        shape_size(x->shape) != size || x->op == OP_CONST || !stored_in(p, f, x) ||
        p->info[y->id].buf[f].pool == POOL_GRAD_INPUT)
        return false;
    bool own_loop = p->info[x->id].mode[f] == NODE_BUFFER && loop_step_of(p, f, x, &made) &&
                    made.form != LOOP_ARRAY;
    return !own_loop;
}

static void loop_of(const Plan *p, PlanFn f, Step *st, Node *y)
{
    long size = shape_size(y->shape);
    st->kind = STEP_LOOP;
    st->loop.size = size;
    if (!y->batched && size == 1)
        st->loop.form = LOOP_SCALAR;
    else if (array_call(p, f, y, size))
        st->loop.form = LOOP_ARRAY;
    else
        st->loop.form = flat_ok(p, f, y, true, y->batched, size) ? LOOP_FLAT : LOOP_NESTED;
}

/* y = c · m with m a batch mean folded into y's step (lower.c's
 * fuse_scale): m, with *c the constant; else NULL. */
static Node *scaled_mean_of(const Plan *p, PlanFn f, const Node *y, Node **c)
{
    if (y->op != OP_MUL)
        return NULL;
    for (int k = 0; k < 2; k++)
        if (y->in[k]->op == OP_BATCH_MEAN && mode_in(p, f, y->in[k]) == NODE_VIRTUAL &&
            y->in[1 - k]->op == OP_CONST) {
            *c = y->in[1 - k];
            return y->in[k];
        }
    return NULL;
}

bool loop_step_of(const Plan *p, PlanFn f, const Node *y, LoopStep *loop)
{
    Node *bias = NULL, *c = NULL;
    if (op_info[y->op].kind != OPK_ELEMENTWISE || bias_gemm_of(p, f, y, &bias) ||
        scaled_mean_of(p, f, y, &c))
        return false;
    Step st;
    memset(&st, 0, sizeof st);
    loop_of(p, f, &st, (Node *)y);
    *loop = st.loop;
    return true;
}

static void reduce_of(Step *st, ReduceForm form, Node *x, long size)
{
    st->kind = STEP_REDUCE;
    st->reduce.form = form;
    st->reduce.x = x;
    st->reduce.size = size;
}

/* out = batch_mean(x), m = batch_mean(x) being out itself or folded into
 * out's step (out = c · m). */
static void mean_step(const Plan *p, PlanFn f, Step *st, Node *out, Node *mean)
{
    Node *x = mean->in[0];
    if (x->op == OP_OUTER && mode_in(p, f, x) == NODE_VIRTUAL) {
        /* mean of outer(a_s, b_s) = (1/n) Aᵀ B, A (n × m) and B (n × q) */
        Node *a = x->in[0], *b = x->in[1];
        long m = a->shape.dim[0], q = b->shape.dim[0];
        GemmStep *g = &st->gemm;
        st->kind = STEP_GEMM;
        g->ta = true;
        g->m = extent(m);
        g->n = extent(q);
        g->k = times_n(1);
        g->alpha = SCALE_INV_N;
        g->beta = SCALE_ZERO;
        g->a = operand(a, false);
        g->lda = m;
        g->b = operand(b, false);
        g->ldb = q;
        g->c = operand(out, false);
        g->ldc = q;
    } else if (x->op == OP_MATMUL && mode_in(p, f, x) == NODE_VIRTUAL) {
        st->kind = STEP_GEMM;
        gemm_of(p, f, &st->gemm, out, x, true, false);
    } else if (op_info[x->op].kind == OPK_KERNEL && mode_in(p, f, x) == NODE_VIRTUAL) {
        st->kind = STEP_KERNEL;
        kernel_of(p, f, &st->kernel, out, x, true);
    } else {
        reduce_of(st, REDUCE_BATCH_MEAN, x, shape_size(out->shape));
    }
}

/* A product of at most INLINE_PRODUCT_MACS multiply-adds per sample is
 * written as loops in place of a bp_gemm call when the batch is below
 * INLINE_BATCH_BELOW (always, when it has no batch dimension): at batch 1
 * the call's dispatch costs more than the arithmetic (issue 7's 4-16-3
 * step: 0.50 -> 0.32 us), while at batch 32 the runtime's vector kernels
 * win (4.0 us against 5.4 as loops). Every dimension but the batch is
 * known here, so the loops have constant bounds the C compiler unrolls. */
enum { INLINE_PRODUCT_MACS = 256, INLINE_BATCH_BELOW = 8, INLINE_PRODUCTS_MAX = 32 };

static int loops_below(const GemmStep *g)
{
    if (g->sample_loop || g->m.count * g->n.count * g->k.count > INLINE_PRODUCT_MACS)
        return 0;
    return g->m.times_n || g->n.times_n || g->k.times_n ? INLINE_BATCH_BELOW : LOOPS_ALWAYS;
}

/* A dot product of a product written as loops runs in DOT_PARTS partial
 * sums where its length is a constant multiple of DOT_PARTS of at least
 * 2 · DOT_PARTS: four add chains a quarter as long, where one long chain
 * bounded a small product's time at batch 1 (the 4-16-3 forward, whose
 * 3 logits are dot products of 16: 0.133 -> 0.126 us; its step with
 * bp_optim_step 0.232 -> 0.219 us). */
enum { DOT_PARTS = 4 };

static int partial_sums(const GemmStep *g)
{
    if (g->loops_below == 0 || g->k.times_n || g->k.count < 2 * DOT_PARTS ||
        g->k.count % DOT_PARTS != 0)
        return 1;
    return DOT_PARTS;
}

/* A function with more than INLINE_PRODUCTS_MAX products written as loops
 * keeps every product a call: each costs the C compiler two forms, and
 * `cc -O2` on 1 000 layers of width 4 went from 11.5 to 32 s; a model
 * that deep is not one whose step is call overhead. */
static void limit_inline_products(Step *steps, int count)
{
    int inlined = 0;
    for (int k = 0; k < count; k++)
        inlined += steps[k].kind == STEP_GEMM && steps[k].gemm.loops_below != 0;
    if (inlined <= INLINE_PRODUCTS_MAX)
        return;
    for (int k = 0; k < count; k++)
        if (steps[k].kind == STEP_GEMM)
            steps[k].gemm.loops_below = 0;
}

/* ---------------------------------------------------------------- one step */

static ReduceForm reduce_form(Op op)
{
    switch (op) {
    case OP_SUM: return REDUCE_SUM;
    case OP_LOGSUMEXP: return REDUCE_LOGSUMEXP;
    case OP_SOFTMAX: return REDUCE_SOFTMAX;
    case OP_LOG_SOFTMAX: return REDUCE_LOG_SOFTMAX;
    default:
        fprintf(stderr, "bpgen: internal error: lower: %s is not a reduction\n", op_info[op].name);
        abort();
    }
}

static void step_of(const Plan *p, PlanFn f, Step *st, Node *y)
{
    memset(st, 0, sizeof *st);
    st->node = y;
    Node *x = y->nin > 0 ? y->in[0] : NULL;
    switch (op_info[y->op].kind) {
    case OPK_LEAF:
    case OPK_ELEMENTWISE: {
        Node *bias = NULL, *mm = bias_gemm_of(p, f, y, &bias), *c = NULL;
        Node *mean = scaled_mean_of(p, f, y, &c);
        if (mean) {
            mean_step(p, f, st, y, mean);
            st->factor = c;
        } else if (mm) {
            st->kind = STEP_GEMM;
            gemm_of(p, f, &st->gemm, y, mm, false, true);
            st->gemm.prefill = bias;
        } else {
            loop_of(p, f, st, y);
        }
        break;
    }
    case OPK_LINALG:
        if (y->op == OP_MATMUL && x->shape.rank == 1 && y->in[1]->shape.rank == 1) {
            reduce_of(st, REDUCE_DOT, x, x->shape.dim[0]);
        } else if (y->op == OP_MATMUL) {
            st->kind = STEP_GEMM;
            gemm_of(p, f, &st->gemm, y, y, false, false);
        } else if (y->op == OP_TRANSPOSE) {
            st->kind = STEP_COPY;
            st->copy.form = COPY_TRANSPOSE;
            st->copy.dest = DEST_NODE;
            st->copy.src = x;
            st->copy.size = shape_size(y->shape);
        } else {
            st->kind = STEP_LOOP;
            st->loop.form = LOOP_OUTER;
            st->loop.size = shape_size(y->shape);
        }
        break;
    case OPK_REDUCE:
    case OPK_VECTOR:
        reduce_of(st, reduce_form(y->op), x, shape_size(x->shape));
        break;
    case OPK_KERNEL:
        st->kind = STEP_KERNEL;
        kernel_of(p, f, &st->kernel, y, y, false);
        break;
    case OPK_BATCH:
        mean_step(p, f, st, y, y);
        break;
    }
    if (st->kind == STEP_GEMM) {
        st->gemm.loops_below = loops_below(&st->gemm);
        st->gemm.partial_sums = partial_sums(&st->gemm);
    }
}

/* ---------------------------------------------------------------- epilogues */

/* dst (size reals a row, n rows when batched_dst) = src, divided by n
 * when per_n. */
static void copy_of(Step *st, CopyDest dest, int index, long offset, Node *src, long size,
                    bool batched_dst, bool per_n)
{
    CopyStep *c = &st->copy;
    memset(st, 0, sizeof *st);
    st->kind = STEP_COPY;
    c->dest = dest;
    c->index = index;
    c->offset = offset;
    c->size = size;
    c->batched_dst = batched_dst;
    c->per_n = per_n;
    c->src = src;
    if (!src || (src->op == OP_CONST && src->value == 0)) {
        c->form = COPY_ZERO;
        return;
    }
    if (src->op == OP_CONST) {
        c->form = COPY_FILL;
        return;
    }
    long ssize = shape_size(src->shape);
    if (!per_n && src->batched == batched_dst && ssize == size)
        c->form = COPY_MEMCPY;
    else if (!per_n && !src->batched && batched_dst && ssize == size)
        c->form = COPY_ROWS;
    else if (src->batched == batched_dst && ssize == size)
        c->form = COPY_EACH;
    else if (batched_dst)
        c->form = COPY_BROADCAST;
    else
        c->form = COPY_SHARED;
}

/* Whether y's own step writes it straight into the caller's array `pool`
 * (outputs, grad_inputs) at index `index`: then no copy is needed. */
static bool written_to(const Plan *p, PlanFn f, const Node *y, Pool pool, int index)
{
    const NodeInfo *in = &p->info[y->id];
    return in->mode[f] == NODE_BUFFER && in->buf[f].pool == pool && in->buf[f].offset == index;
}

/* Appends function f's epilogue to steps (room for it is counted by
 * epilogue_count); returns the new count. */
static int epilogue(const Plan *p, PlanFn f, Step *steps, int count)
{
    const Graph *g = p->graph;
    const Model *m = g->model;
    if (f == PF_FORWARD) {
        Step *st = &steps[count++];
        memset(st, 0, sizeof *st);
        reduce_of(st, REDUCE_LOSS, g->loss, 1);
        return count;
    }
    if (f == PF_PREDICT || f == PF_OUTPUTS) {
        for (int j = 0; j < m->noutputs; j++)
            if (!written_to(p, f, g->output_nodes[j], POOL_OUTPUT, j))
                copy_of(&steps[count++], DEST_OUTPUT, j, 0, g->output_nodes[j],
                        shape_size(m->outputs[j]->shape), true, false);
        return count;
    }
    long offset = 0;
    for (int i = 0; i < m->nparams; i++) {
        Node *d = g->grad_params[i];
        long size = shape_size(m->params[i]->shape);
        const NodeInfo *in = d ? &p->info[d->id] : NULL;
        bool in_place = d && d->op != OP_CONST && in->mode[PF_BACKWARD] == NODE_BUFFER &&
                        in->buf[PF_BACKWARD].pool == POOL_GRAD &&
                        in->buf[PF_BACKWARD].offset == offset;
        if (!in_place)
            copy_of(&steps[count++], DEST_GRAD, i, offset, d, size, false, false);
        offset += size;
    }
    for (int k = 0; k < m->ninputs; k++)
        if (g->grad_inputs[k] && !written_to(p, f, g->grad_inputs[k], POOL_GRAD_INPUT, k))
            copy_of(&steps[count++], DEST_GRAD_INPUT, k, 0, g->grad_inputs[k],
                    shape_size(m->inputs[k]->shape), true, true);
    return count;
}

static int epilogue_count(const Plan *p, PlanFn f)
{
    const Model *m = p->graph->model;
    return f == PF_FORWARD ? 1 : f == PF_BACKWARD ? m->nparams + m->ninputs : m->noutputs;
}

/* ---------------------------------------------------------------- groups */

/* Whether a step computes a value with a name: a value the model names, or
 * an adjoint (`dL/dh`). */
static bool names_a_value(const Step *st)
{
    return st->node && (st->node->name || st->node->label);
}

/* Cuts function f's steps into groups (bpgen.h, StepGroup). A function of
 * at most GROUP_STEPS steps is one group, printed in place, as before
 * there were groups. A longer one is cut into runs of at most GROUP_STEPS
 * steps, each cut preferably just after a step that completes a named
 * value (the end of a layer) once the run holds half its maximum, so
 * that a group is a few whole layers; forward's loss, which the public
 * function returns, is a group of its own in the caller. Backward's groups
 * are also cut after the steps M_forward_backward runs in its loop
 * (Plan.fb_joined, a merged loop's end), which then calls the rest. */
static void group_steps(Plan *p, PlanFn f)
{
    int total = p->nsteps[f];
    StepGroup *groups = arena_alloc(p->arena, sizeof(StepGroup) * (size_t)(total + 1));
    int count = 0;
    if (total == 0) {
        /* predict of a model without outputs */
    } else if (total <= GROUP_STEPS) {
        groups[count++] = (StepGroup){0, total, NULL, true};
    } else {
        /* forward's last step returns the loss, with the loop the loss
         * is accumulated in, if any */
        int body = f == PF_FORWARD ? total - 1 : total;
        while (f == PF_FORWARD && body > 0 && p->steps[f][body - 1].joined)
            body--;
        Step *steps = p->steps[f];
        /* M_forward_backward calls backward's groups after its loop */
        int cut = f == PF_BACKWARD ? p->fb_joined : 0;
        for (int k = 0; k < body;) {
            StepGroup *g = &groups[count++];
            g->first = k;
            g->in_caller = false;
            do {
                const Step *st = &steps[k++];
                if (k == cut ||
                    (k - g->first >= GROUP_STEPS / 2 && names_a_value(st) && !st->joined))
                    break;
            } while (k < body && k - g->first < GROUP_STEPS);
            /* a merged loop is never cut: back up to where it starts */
            int end = k;
            while (end - 1 > g->first && steps[end - 1].joined)
                end--;
            if (steps[end - 1].joined)
                end = k;    /* a run of more than GROUP_STEPS (lowering prevents it) */
            k = end;
            g->count = k - g->first;
            for (int j = g->first; j < k && !g->title; j++)
                if (names_a_value(&steps[j]))
                    g->title = steps[j].node;
        }
        if (body < total)
            groups[count++] = (StepGroup){body, total - body, NULL, true};
    }
    p->groups[f] = groups;
    p->ngroups[f] = count;
}

/* ---------------------------------------------------------------- entry */

void lower_steps(Plan *p)
{
    for (int f = 0; f < PF__COUNT; f++) {
        int cap = p->norder[f] + epilogue_count(p, (PlanFn)f);
        p->steps[f] = arena_alloc(p->arena, sizeof(Step) * (size_t)(cap + 1));
        int count = 0;
        for (int k = 0; k < p->norder[f]; k++) {
            Node *y = p->order[f][k];
            step_of(p, (PlanFn)f, &p->steps[f][count], y);
            /* every step computing a value writes it to its buffer */
            p->steps[f][count].check_finite = p->opt.check_finite;
            p->steps[f][count++].joined = p->info[y->id].joined[f];
        }
        p->nsteps[f] = epilogue(p, (PlanFn)f, p->steps[f], count);
        limit_inline_products(p->steps[f], p->nsteps[f]);
    }
}

void lower_groups(Plan *p)
{
    for (int f = 0; f < PF__COUNT; f++)
        group_steps(p, (PlanFn)f);
}
