/* lower.c — from the graph to a Plan: what each generated function
 * computes, in what order, what is fused, and where every buffer lives.
 *
 * In:  a Graph after diff.c and simplify.c (loss, outputs, gradients set).
 * Out: a Plan: each node's mode and buffer per function, and (from
 *      lower_steps.c, called last) each function's steps, which the
 *      emitter (emit/) prints with no decision left to make.
 *
 * The generated file has three functions, each with its own roots:
 *   forward   the loss;
 *   backward  every wanted gradient, computing only what forward did not
 *             (what it needs from forward, forward keeps in the workspace);
 *   predict   the outputs, on its own.
 * A function computes the nodes reachable from its roots, walking down
 * until it meets a leaf (inputs and parameters are read where they are;
 * constants are literals) or, in backward, a node forward computed.
 *
 * Each such node gets a mode:
 *   INLINE   an elementwise node with exactly one user, that user being a
 *            loop over the same index space (another elementwise node of
 *            the same shape and batching, a sum, a batch mean): it becomes
 *            an expression inside that loop and is never stored, so a
 *            chain like tanh(W·x + b) is one loop;
 *   VIRTUAL  a transpose whose users are all matrix products (a gemm
 *            flag, never materialised); outer(a, b) or a per-sample
 *            matmul whose only user is batch_mean (one gemm over the
 *            batch, or per-sample gemms accumulating into the mean); a
 *            batched matmul whose only user adds a shared bias vector to
 *            it, W·x + b (the add's step pre-fills its rows with b and
 *            runs the one gemm over the batch with beta = 1 into them:
 *            no temporary, no separate bias pass);
 *   BUFFER   everything else, and always the roots and what forward keeps
 *            for backward: one step that writes a buffer.
 * Constants are literals, except where a gemm needs them in memory.
 *
 * Buffers: a batched node has n rows, an unbatched one a single copy, so
 * the workspace is two pools — reals per sample (times n) and shared
 * reals — and M_workspace_size(n) is (batched · n + shared) reals. Forward
 * and backward share one timeline (backward's steps after forward's); each
 * buffer lives from its step to its last reader, and buffers whose
 * lifetimes do not overlap share memory; an elementwise step may also
 * write over an operand it is the last to read. Up to a few thousand
 * buffers a pool, they are placed largest first, each at the lowest offset
 * free for its whole lifetime (the tightest packing; O(n²)); beyond, in
 * time order with a free list (O(n log n)). Predict has a timeline of
 * its own over the same pools. A gradient that backward computes itself is
 * written straight into its slice of `grad` instead of the workspace.
 *
 * This is the one place to grow: alpha folding, tiling, threads.
 */
#include "bpgen.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    Plan *p;
    Graph *g;
    bool *member[PF__COUNT];      /* computed by the function */
    bool *gemm_mem[PF__COUNT];    /* a constant a gemm reads from memory */
    bool *non_gemm_user[PF__COUNT];
    long *step_time[PF__COUNT];
    long *user_time[PF__COUNT];   /* latest step that evaluates the node */
    long *read_end[PF__COUNT];    /* latest step that reads its buffer */
    int modes_done;               /* functions below it have their modes */
    long *read_time[PF__COUNT];   /* when its step's reads count as done:
                                     the last step of its merged loop */
    long end[PF__COUNT];          /* the time of the function's epilogue */
} Lower;

static bool is_leaf(const Node *n)
{
    return n->op == OP_INPUT || n->op == OP_PARAM;
}

static bool is_dot(const Node *n)
{
    return n->op == OP_MATMUL && n->in[0]->shape.rank == 1 && n->in[1]->shape.rank == 1;
}

static bool is_gemm(const Node *n)
{
    return n->op == OP_MATMUL && !is_dot(n);
}

static bool is_elementwise(const Node *n)
{
    return op_info[n->op].kind == OPK_ELEMENTWISE;
}

static long max_l(long a, long b)
{
    return a > b ? a : b;
}

/* ---------------------------------------------------------------- membership */

static void want_root(Lower *L, PlanFn f, bool *want, Node *root)
{
    if (!root)
        return;
    NodeInfo *in = &L->p->info[root->id];
    in->root[f] = true;
    in->uses[f]++;
    in->user[f] = NULL;
    want[root->id] = true;
}

/* Marks the nodes function f computes, counting their uses; walks ids
 * downwards, which visits every user before the node it uses. */
static void collect(Lower *L, PlanFn f, bool *want)
{
    Graph *g = L->g;
    NodeInfo *info = L->p->info;
    for (int id = g->nnodes - 1; id >= 0; id--) {
        if (!want[id])
            continue;
        Node *n = g->nodes[id];
        if (is_leaf(n))
            continue;
        if (n->op == OP_CONST) {
            L->member[f][id] = L->gemm_mem[f][id];
            continue;
        }
        /* backward reads whatever forward computed, which forward then
         * keeps; outputs only what forward keeps for backward anyway (its
         * modes are chosen by then), so that training stays as it was */
        if (after_forward(f) && L->member[PF_FORWARD][id] &&
            (f == PF_BACKWARD ||
             (info[id].kept && info[id].mode[PF_FORWARD] == NODE_BUFFER))) {
            info[id].kept = true;
            continue;
        }
        L->member[f][id] = true;
        for (int k = 0; k < n->nin; k++) {
            Node *x = n->in[k];
            want[x->id] = true;
            info[x->id].uses[f]++;
            info[x->id].user[f] = n;
            if (!is_gemm(n))
                L->non_gemm_user[f][x->id] = true;
            if (x->op == OP_CONST && (is_gemm(n) || op_info[n->op].kind == OPK_KERNEL))
                L->gemm_mem[f][x->id] = true;
        }
    }
}

/* ---------------------------------------------------------------- modes */

/* Can elementwise node v be evaluated inside the loop of its user u? */
static bool fits_loop_of(const Node *v, const Node *u)
{
    if (is_elementwise(u))
        return u->batched == v->batched && shape_size(u->shape) == shape_size(v->shape);
    if (u->op == OP_SUM)
        return u->batched == v->batched;
    if (u->op == OP_BATCH_MEAN)
        return v->batched;
    return false;
}

static NodeMode choose_mode(Lower *L, PlanFn f, Node *n)
{
    NodeInfo *in = &L->p->info[n->id];
    if (n->op == OP_CONST || in->root[f] || (f == PF_FORWARD && in->kept))
        return NODE_BUFFER;
    Node *u = in->uses[f] == 1 ? in->user[f] : NULL;
    switch (n->op) {
    case OP_TRANSPOSE:
        return L->non_gemm_user[f][n->id] ? NODE_BUFFER : NODE_VIRTUAL;
    case OP_OUTER:
        if (u && u->op == OP_BATCH_MEAN && n->in[0]->batched && n->in[1]->batched)
            return NODE_VIRTUAL;
        return NODE_BUFFER;
    case OP_MATMUL:
        if (u && u->op == OP_BATCH_MEAN && n->batched && !is_dot(n))
            return NODE_VIRTUAL;
        return NODE_BUFFER;
    case OP_CONV2D_GRAD_KERNEL:
    case OP_CONV2D_GRAD_BIAS: {
        /* batch_mean of per-sample kernel (bias) gradients: one kernel
         * call over the batch with alpha = 1/n */
        bool all_batched = true;
        for (int k = 0; k < n->nin; k++)
            all_batched = all_batched && n->in[k]->batched;
        if (u && u->op == OP_BATCH_MEAN && all_batched)
            return NODE_VIRTUAL;
        return NODE_BUFFER;
    }
    default:
        if (is_elementwise(n) && u && fits_loop_of(n, u))
            return NODE_INLINE;
        return NODE_BUFFER;
    }
}

/* ---------------------------------------------------------------- bias fusion */

/* y = ADD(mm, bias) in either order, with mm a batched matrix product
 * written as one gemm over the batch and used only here, and bias an
 * unbatched vector of y's length or a constant (W·x + 1): y's step fills
 * each of its n rows with the bias and runs the gemm with beta = 1 into
 * them, so mm becomes VIRTUAL and y a BUFFER (even where it could have
 * been fused into the loop of an elementwise user: the sum is then the
 * gemm's output itself, and that user reads it, or overwrites it in
 * place). */
static void fuse_bias(Lower *L, PlanFn f, Node *y)
{
    NodeInfo *info = L->p->info;
    if (y->op != OP_ADD || !y->batched || y->shape.rank != 1)
        return;
    for (int k = 0; k < 2; k++) {
        Node *mm = y->in[k], *bias = y->in[1 - k];
        if (!is_gemm(mm) || !mm->batched || !L->member[f][mm->id] ||
            info[mm->id].mode[f] != NODE_BUFFER || info[mm->id].root[f] ||
            (f == PF_FORWARD && info[mm->id].kept) || info[mm->id].uses[f] != 1 ||
            info[mm->id].user[f] != y || !gemm_over_batch(L->p, f, mm))
            continue;
        if (bias->batched || !(shape_eq(bias->shape, y->shape) || bias->op == OP_CONST))
            continue;
        info[mm->id].mode[f] = NODE_VIRTUAL;
        info[y->id].mode[f] = NODE_BUFFER;
        return;
    }
}

/* ---------------------------------------------------------------- scale fusion */

/* y = c · m, c a constant and m a batch mean of y's shape used only here:
 * y's step is m's, scaled by c (a gemm's or kernel's alpha c/n, or c
 * times the mean's last division), so m becomes VIRTUAL and no pass only
 * rescales it (a loss averaged over its elements, mse's 2/k, scales
 * every parameter's gradient). */
static void fuse_scale(Lower *L, PlanFn f, Node *y)
{
    NodeInfo *info = L->p->info;
    if (y->op != OP_MUL || y->batched || info[y->id].mode[f] != NODE_BUFFER)
        return;
    Node *c = y->in[0], *m = y->in[1];
    if (m->op == OP_CONST) {
        c = y->in[1];
        m = y->in[0];
    }
    if (c->op != OP_CONST || m->op != OP_BATCH_MEAN || !shape_eq(m->shape, y->shape))
        return;
    NodeInfo *mi = &info[m->id];
    if (!L->member[f][m->id] || mi->mode[f] != NODE_BUFFER || mi->root[f] ||
        (f == PF_FORWARD && mi->kept) || mi->uses[f] != 1 || mi->user[f] != y)
        return;
    mi->mode[f] = NODE_VIRTUAL;
}

/* Modes, then bias fusion, of the functions before `end` whose modes are
 * not chosen yet. */
static void choose_modes(Lower *L, int end)
{
    for (int f = L->modes_done; f < end; f++)
        for (int id = 0; id < L->g->nnodes; id++)
            if (L->member[f][id])
                L->p->info[id].mode[f] = choose_mode(L, (PlanFn)f, L->g->nodes[id]);
    for (int f = L->modes_done; f < end; f++)
        for (int id = 0; id < L->g->nnodes; id++)
            if (L->member[f][id]) {
                fuse_bias(L, (PlanFn)f, L->g->nodes[id]);
                fuse_scale(L, (PlanFn)f, L->g->nodes[id]);
            }
    L->modes_done = end;
}

/* ---------------------------------------------------------------- timing */

/* Where the last read of a value forward keeps is noted for function f:
 * backward's times follow forward's, so its reads make forward's buffers
 * live longer; outputs has a timeline of its own, its reads noted apart
 * (allocate_outputs). */
static PlanFn kept_by(PlanFn f)
{
    return f == PF_BACKWARD ? PF_FORWARD : f;
}

/* Step times of function f start at `base`; returns the time of its
 * epilogue (return value, gradient and output copies). */
static long order_steps(Lower *L, PlanFn f, long base)
{
    Plan *p = L->p;
    Graph *g = L->g;
    int count = 0;
    for (int id = 0; id < g->nnodes; id++)
        if (L->member[f][id] && p->info[id].mode[f] == NODE_BUFFER)
            count++;
    p->order[f] = arena_alloc(p->arena, sizeof(Node *) * (size_t)(count + 1));
    p->norder[f] = 0;
    for (int id = 0; id < g->nnodes; id++)
        if (L->member[f][id] && p->info[id].mode[f] == NODE_BUFFER) {
            L->step_time[f][id] = base + p->norder[f];
            p->order[f][p->norder[f]++] = g->nodes[id];
        }
    L->end[f] = base + count;
    return base + count;
}

/* The reads of function f: a node is evaluated at its own step, or
 * (inline, virtual) wherever its users are; its operands are read then.
 * Inside a merged loop every statement runs at every index, so what any
 * of them reads is read until the loop's last step (read_time): no value
 * the loop writes may take the place of one it reads, except in place at
 * the same index by its last statement (may_overwrite). */
static void schedule_reads(Lower *L, PlanFn f)
{
    Plan *p = L->p;
    Graph *g = L->g;
    long end = L->end[f];
    for (int id = g->nnodes - 1; id >= 0; id--) {
        if (!L->member[f][id])
            continue;
        Node *n = g->nodes[id];
        NodeInfo *in = &p->info[id];
        long t = in->mode[f] == NODE_BUFFER ? L->read_time[f][id] : L->user_time[f][id];
        if (in->root[f] && in->mode[f] == NODE_BUFFER)
            L->read_end[f][id] = max_l(L->read_end[f][id], end);
        for (int k = 0; k < n->nin; k++) {
            int x = n->in[k]->id;
            if (L->member[f][x] && p->info[x].mode[f] != NODE_BUFFER)
                L->user_time[f][x] = max_l(L->user_time[f][x], t);
            else if (L->member[f][x])
                L->read_end[f][x] = max_l(L->read_end[f][x], t);
            else if (after_forward(f) && p->info[x].kept)
                L->read_end[kept_by(f)][x] = max_l(L->read_end[kept_by(f)][x], t);
        }
    }
    /* backward's (outputs') roots that forward computed are read at its end */
    if (after_forward(f))
        for (int id = 0; id < g->nnodes; id++)
            if (p->info[id].root[f] && p->info[id].kept)
                L->read_end[kept_by(f)][id] = max_l(L->read_end[kept_by(f)][id], end);
}

/* ---------------------------------------------------------------- results in place */

/* A result its own step can write straight into the caller's array: a
 * batched value of the array's size, computed here and not yet placed
 * (another output, a gradient). */
static bool direct_result(Lower *L, PlanFn f, const Node *y, long size)
{
    if (!y)
        return false;
    const NodeInfo *in = &L->p->info[y->id];
    return L->member[f][y->id] && y->batched && shape_size(y->shape) == size &&
           in->mode[f] == NODE_BUFFER && in->buf[f].pool == POOL_NONE;
}

/* predict's (and outputs after forward's) outputs are written where the
 * caller wants them (later steps read them there), so predict copies
 * nothing but values it does not compute or that are not one row per
 * sample; a wrt input's gradient computed by an elementwise loop and read
 * by nothing else is written into grad_inputs divided by n in that loop,
 * when the caller asks for it, so no pass only rescales. */
static void place_results(Lower *L)
{
    Plan *p = L->p;
    Graph *g = L->g;
    Model *m = g->model;
    for (int j = 0; j < m->noutputs; j++) {
        Node *y = g->output_nodes[j];
        for (PlanFn f = PF_PREDICT; f <= PF_OUTPUTS; f++)
            if (direct_result(L, f, y, shape_size(m->outputs[j]->shape))) {
                p->info[y->id].buf[f].pool = POOL_OUTPUT;
                p->info[y->id].buf[f].offset = j;
            }
    }
    for (int k = 0; k < m->ninputs; k++) {
        Node *d = g->grad_inputs[k];
        LoopStep loop;
        if (d && direct_result(L, PF_BACKWARD, d, shape_size(m->inputs[k]->shape)) &&
            p->info[d->id].uses[PF_BACKWARD] == 1 && loop_step_of(p, PF_BACKWARD, d, &loop) &&
            loop.form != LOOP_ARRAY) {
            p->info[d->id].buf[PF_BACKWARD].pool = POOL_GRAD_INPUT;
            p->info[d->id].buf[PF_BACKWARD].offset = k;
        }
    }
}

/* ---------------------------------------------------------------- merged loops */

/* The most steps one merged loop holds (far below GROUP_STEPS / 2, so a
 * group of steps can always be cut between loops). */
enum { JOIN_STEPS = 8 };

/* Consecutive elementwise loops of one form over the same values (the
 * same size and batching: one trip count) become one loop, each step a
 * statement of it in order. It is legal because every value such a loop
 * writes has the loop's shape and batching, so any statement reading it
 * reads it at the index the loop is at, after the statement that wrote
 * it; nothing else (a reduction, a product) lies between. A step writing
 * into grad_inputs stays alone: its loop runs only when the caller asks.
 * Forward's loss, a per-sample scalar from a flat loop, is summed in the
 * loop that computes it. */
static void join_loops(Lower *L, PlanFn f)
{
    Plan *p = L->p;
    NodeInfo *info = p->info;
    int count = p->norder[f], run = 0;
    LoopStep prev = {LOOP_SCALAR, 0}, cur = {LOOP_SCALAR, 0};
    Node *before = NULL;
    for (int k = 0; k < count; k++) {
        Node *y = p->order[f][k];
        bool ok = loop_step_of(p, f, y, &cur) && (cur.form == LOOP_FLAT || cur.form == LOOP_NESTED) &&
                  info[y->id].buf[f].pool != POOL_GRAD_INPUT;
        if (ok && before && cur.form == prev.form && cur.size == prev.size &&
            y->batched == before->batched && run < JOIN_STEPS) {
            info[before->id].joined[f] = true;
            run++;
        } else {
            run = 1;
        }
        before = ok ? y : NULL;
        prev = cur;
    }
    Node *loss = L->g->loss;
    if (f == PF_FORWARD && before && before == loss && loss->batched && prev.form == LOOP_FLAT &&
        prev.size == 1)
        info[loss->id].joined[f] = true;
    /* the reads of a merged loop's steps count at its last step */
    for (int k = count - 1; k >= 0; k--) {
        Node *y = p->order[f][k];
        bool last = !info[y->id].joined[f] || k == count - 1;
        L->read_time[f][y->id] = last ? L->step_time[f][y->id]
                                      : L->read_time[f][p->order[f][k + 1]->id];
    }
}

/* A value a merged loop writes and only its own statements read is a
 * local of the loop, never stored (so is forward's loss summed in its
 * loop), unless backward needs it, it is a result, or --check-finite
 * scans it in memory. */
static void choose_locals(Lower *L, PlanFn f)
{
    Plan *p = L->p;
    NodeInfo *info = p->info;
    int count = p->norder[f];
    if (p->opt.check_finite)
        return;
    for (int k = 0; k < count; k++) {
        Node *y = p->order[f][k];
        NodeInfo *in = &info[y->id];
        bool in_run = in->joined[f] || (k > 0 && info[p->order[f][k - 1]->id].joined[f]);
        if (!in_run || in->buf[f].pool != POOL_NONE || (f == PF_FORWARD && in->kept))
            continue;
        bool summed = f == PF_FORWARD && y == L->g->loss && in->joined[f];
        if (in->root[f] && !summed)
            continue;
        if (L->read_end[f][y->id] <= L->read_time[f][y->id] ||
            (summed && L->read_end[f][y->id] <= L->end[f]))
            in->buf[f].pool = POOL_LOCAL;
    }
}

/* ---------------------------------------------------------------- scratch */

/* Reals of scratch the step computing y in f needs: one sample's im2col matrix
 * (c·kh·kw × oh·ow) for the convolutions' steps, as
 * bp_conv2d_scratch_reals() counts it; 0 for every other step. */
static long scratch_reals(const Plan *p, PlanFn f, const Node *y)
{
    /* c · batch_mean(...) folded: the mean's step (fuse_scale) */
    for (int k = 0; y->op == OP_MUL && k < 2; k++)
        if (y->in[k]->op == OP_BATCH_MEAN && p->info[y->in[k]->id].mode[f] == NODE_VIRTUAL)
            y = y->in[k];
    if (y->op == OP_BATCH_MEAN && y->in[0]->op == OP_CONV2D_GRAD_KERNEL)
        y = y->in[0];
    const Shape *o, *k;
    switch (y->op) {
    case OP_CONV2D:              /* x, K -> y */
        o = &y->shape;
        k = &y->in[1]->shape;
        return (long)k->dim[1] * k->dim[2] * k->dim[3] * o->dim[1] * o->dim[2];
    case OP_CONV2D_GRAD_INPUT:   /* dy, K -> dx */
        o = &y->in[0]->shape;
        k = &y->in[1]->shape;
        return (long)k->dim[1] * k->dim[2] * k->dim[3] * o->dim[1] * o->dim[2];
    case OP_CONV2D_GRAD_KERNEL:  /* dy, x -> dK */
        o = &y->in[0]->shape;
        return (long)y->in[1]->shape.dim[0] * y->attr[2] * y->attr[3] * o->dim[1] * o->dim[2];
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------- placement */

typedef struct {
    long start, end, size, offset;
    Buffer *buf;
    Node *node;
    bool scratch;     /* a kernel's scratch, not node's value */
    bool handed_on;   /* an in-place successor owns its place now */
    bool pinned;      /* placed already (offset given): only avoided */
    int seq;          /* creation order: the last tie-break */
} Interval;

/* Whether the step computing `y` may write over `x`'s buffer when it is
 * x's last reader: an elementwise loop reads x[i] before it writes y[i],
 * at the same index, so sharing one place is safe when both have the same
 * size. (This is how d_h * step(h) overwrites d_h.) */
static bool may_overwrite(const Interval *y, const Interval *x)
{
    if (x->scratch || y->scratch || x->end != y->start || x->size != y->size ||
        op_info[y->node->op].kind != OPK_ELEMENTWISE)
        return false;
    for (int k = 0; k < y->node->nin; k++)
        if (y->node->in[k] == x->node)
            return true;
    return false;
}

/* The free places of a pool: a treap (a binary search tree by offset,
 * balanced by random priorities) whose nodes know the largest free block
 * below them, so that the lowest block that fits is found, and a freed
 * block joined to its neighbours, in O(log n). */
typedef struct Free Free;
struct Free {
    long offset, size;
    long largest;         /* the largest size in this subtree */
    unsigned priority;
    Free *left, *right;
};

typedef struct {
    Arena *arena;
    Free *root;
    Free *spare;          /* removed nodes, for reuse */
    unsigned seed;        /* fixed: the same plan on every run */
    long top;             /* the pool's size so far */
} FreeList;

static long largest(const Free *t)
{
    return t ? t->largest : 0;
}

static void update(Free *t)
{
    t->largest = max_l(t->size, max_l(largest(t->left), largest(t->right)));
}

/* Splits t into the blocks below `offset` and the others. */
static void split(Free *t, long offset, Free **below, Free **rest)
{
    if (!t) {
        *below = *rest = NULL;
    } else if (t->offset < offset) {
        split(t->right, offset, &t->right, rest);
        update(t);
        *below = t;
    } else {
        split(t->left, offset, below, &t->left);
        update(t);
        *rest = t;
    }
}

/* Joins a and b, every offset of a below every offset of b. */
static Free *join(Free *a, Free *b)
{
    if (!a || !b)
        return a ? a : b;
    if (a->priority > b->priority) {
        a->right = join(a->right, b);
        update(a);
        return a;
    }
    b->left = join(a, b->left);
    update(b);
    return b;
}

static void free_insert(FreeList *fl, long offset, long size)
{
    Free *n = fl->spare;
    if (n)
        fl->spare = n->left;
    else
        n = arena_alloc(fl->arena, sizeof *n);
    fl->seed = fl->seed * 1103515245u + 12345u;
    n->offset = offset;
    n->size = n->largest = size;
    n->priority = fl->seed;
    n->left = n->right = NULL;
    Free *below, *rest;
    split(fl->root, offset, &below, &rest);
    fl->root = join(join(below, n), rest);
}

/* Removes the block at `offset`, if there is one; returns its size or 0. */
static long free_remove(FreeList *fl, long offset)
{
    Free *below, *rest, *at, *above;
    split(fl->root, offset, &below, &rest);
    split(rest, offset + 1, &at, &above);
    fl->root = join(below, above);
    if (!at)
        return 0;
    at->left = fl->spare;
    fl->spare = at;
    return at->size;
}

/* The block just below `offset`, or NULL. */
static const Free *free_below(const FreeList *fl, long offset)
{
    const Free *best = NULL;
    for (const Free *t = fl->root; t;) {
        if (t->offset < offset) {
            best = t;
            t = t->right;
        } else {
            t = t->left;
        }
    }
    return best;
}

/* Gives [offset, offset + size) back, joined with free neighbours. */
static void release(FreeList *fl, long offset, long size)
{
    const Free *prev = free_below(fl, offset);
    if (prev && prev->offset + prev->size == offset) {
        offset = prev->offset;
        size += free_remove(fl, offset);
    }
    size += free_remove(fl, offset + size);
    free_insert(fl, offset, size);
}

/* The lowest place for `size` reals: the first free block that fits, else
 * the free block at the top of the pool grown, else the top. */
static long take(FreeList *fl, long size)
{
    const Free *t = fl->root;
    while (t && largest(t) >= size) {
        if (largest(t->left) >= size)
            t = t->left;
        else if (t->size >= size)
            break;
        else
            t = t->right;
    }
    if (t && largest(t) >= size) {
        long offset = t->offset, have = t->size;
        free_remove(fl, offset);
        if (have > size)
            free_insert(fl, offset + size, have - size);
        return offset;
    }
    const Free *last = free_below(fl, fl->top);
    long offset = fl->top;
    if (last && last->offset + last->size == fl->top) {
        offset = last->offset;
        free_remove(fl, offset);
    }
    fl->top = offset + size;
    return offset;
}

static int by_start(const void *pa, const void *pb)
{
    const Interval *a = *(Interval *const *)pa, *b = *(Interval *const *)pb;
    if (a->start != b->start)
        return (a->start > b->start) - (a->start < b->start);
    if (a->size != b->size)
        return (a->size < b->size) - (a->size > b->size);
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* A binary heap of the live intervals, the first to end on top. */
typedef struct {
    Interval **at;
    int count;
} Live;

static bool ends_before(const Interval *a, const Interval *b)
{
    return a->end < b->end || (a->end == b->end && a->seq < b->seq);
}

static void live_push(Live *h, Interval *iv)
{
    int i = h->count++;
    for (; i > 0 && ends_before(iv, h->at[(i - 1) / 2]); i = (i - 1) / 2)
        h->at[i] = h->at[(i - 1) / 2];
    h->at[i] = iv;
}

static Interval *live_pop(Live *h)
{
    Interval *top = h->at[0], *last = h->at[--h->count];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->count)
            break;
        if (c + 1 < h->count && ends_before(h->at[c + 1], h->at[c]))
            c++;
        if (!ends_before(h->at[c], last))
            break;
        h->at[i] = h->at[c];
        i = c;
    }
    if (h->count > 0)
        h->at[i] = last;
    return top;
}

/* Whether [off, off + size) is free of every live interval. */
static bool free_at(Interval **live, int nlive, long off, long size)
{
    for (int j = 0; j < nlive; j++)
        if (off < live[j]->offset + live[j]->size && live[j]->offset < off + size)
            return false;
    return true;
}

static int by_offset(const void *pa, const void *pb)
{
    const Interval *a = *(Interval *const *)pa, *b = *(Interval *const *)pb;
    return (a->offset > b->offset) - (a->offset < b->offset);
}

/* Larger buffers first, then in order of start: placing the big ones
 * first leaves fewer holes too small for them. */
static int by_size_then_start(const void *pa, const void *pb)
{
    const Interval *a = *(Interval *const *)pa, *b = *(Interval *const *)pb;
    if (a->pinned != b->pinned)
        return (a->pinned < b->pinned) - (a->pinned > b->pinned);
    if (a->size != b->size)
        return (a->size < b->size) - (a->size > b->size);
    if (a->start != b->start)
        return (a->start > b->start) - (a->start < b->start);
    return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Larger buffers first: each takes the lowest offset that no buffer
 * placed before it and alive at the same time occupies, or the place of
 * the operand it overwrites. The tightest packing, but each buffer looks
 * at every buffer placed before it: O(n²). Returns the pool's size. */
static long place_by_size(Arena *a, Interval *iv, int count)
{
    Interval **order = arena_alloc(a, sizeof *order * (size_t)(count + 1));
    for (int i = 0; i < count; i++) {
        iv[i].seq = i;
        order[i] = &iv[i];
    }
    qsort(order, (size_t)count, sizeof *order, by_size_then_start);
    Interval **live = arena_alloc(a, sizeof *live * (size_t)(count + 1));
    long total = 0;
    for (int i = 0; i < count; i++) {
        Interval *y = order[i];
        if (y->pinned) {
            total = max_l(total, y->offset + y->size);
            continue;
        }
        int nlive = 0;
        Interval *in_place = NULL;
        for (int j = 0; j < i; j++) {
            Interval *x = order[j];
            if (!(x->start <= y->end && y->start <= x->end))
                continue;
            if (!in_place && may_overwrite(y, x))
                in_place = x;
            else
                live[nlive++] = x;
        }
        long off = 0;
        if (in_place && free_at(live, nlive, in_place->offset, y->size)) {
            off = in_place->offset;
        } else {
            if (in_place)
                live[nlive++] = in_place;
            qsort(live, (size_t)nlive, sizeof *live, by_offset);
            for (int j = 0; j < nlive; j++) {
                if (off + y->size <= live[j]->offset)
                    break;
                off = max_l(off, live[j]->offset + live[j]->size);
            }
        }
        y->offset = off;
        y->buf->offset = off;
        total = max_l(total, off + y->size);
    }
    return total;
}

/* Linear scan over the timeline: at each step, the places of the buffers
 * whose last reader has run are freed, then the buffers starting there
 * (larger first) take the lowest free place that fits, or the place of
 * the operand they overwrite (may_overwrite). O(n log n) in the number of
 * buffers. Returns the pool's size. */
static long place_in_time_order(Arena *a, Interval *iv, int count, int nnodes)
{
    Interval **order = arena_alloc(a, sizeof *order * (size_t)(count + 1));
    Interval **value_of = arena_alloc(a, sizeof *value_of * (size_t)(nnodes + 1));
    for (int i = 0; i < count; i++) {
        iv[i].seq = i;
        order[i] = &iv[i];
        if (!iv[i].scratch)
            value_of[iv[i].node->id] = &iv[i];
    }
    qsort(order, (size_t)count, sizeof *order, by_start);
    Live live = {arena_alloc(a, sizeof(Interval *) * (size_t)(count + 1)), 0};
    FreeList fl = {a, NULL, NULL, 12345u, 0};
    for (int i = 0; i < count; i++) {
        Interval *y = order[i];
        while (live.count > 0 && live.at[0]->end < y->start) {
            Interval *done = live_pop(&live);
            if (!done->handed_on)
                release(&fl, done->offset, done->size);
        }
        Interval *in_place = NULL;
        for (int k = 0; !y->scratch && k < y->node->nin && !in_place; k++) {
            Interval *x = value_of[y->node->in[k]->id];
            if (x && x != y && !x->handed_on && may_overwrite(y, x))
                in_place = x;
        }
        if (in_place) {
            in_place->handed_on = true;
            y->offset = in_place->offset;
        } else {
            y->offset = take(&fl, y->size);
        }
        y->buf->offset = y->offset;
        live_push(&live, y);
    }
    return fl.top;
}

/* Up to this many buffers in a pool (every model of examples/ and tests/
 * has fewer than a thousand), they are placed by size; beyond it, where
 * O(n²) would dominate the compilation, in time order. */
enum { PLACE_BY_SIZE_LIMIT = 4096 };

static long place(Arena *a, Placement how, Interval *iv, int count, int nnodes)
{
    if (how == PLACE_BY_SIZE || (how == PLACE_AUTO && count <= PLACE_BY_SIZE_LIMIT))
        return place_by_size(a, iv, count);
    return place_in_time_order(a, iv, count, nnodes);
}

/* Places the workspace buffers of the functions fns[0..nfns) (one
 * timeline); adds to the pools' sizes. */
static void allocate(Lower *L, const PlanFn *fns, int nfns)
{
    Plan *p = L->p;
    int cap = 0;
    for (int k = 0; k < nfns; k++)
        cap += 2 * p->norder[fns[k]];
    Interval *pools[2];
    int counts[2] = {0, 0};
    pools[0] = arena_alloc(p->arena, sizeof(Interval) * (size_t)(cap + 1));
    pools[1] = arena_alloc(p->arena, sizeof(Interval) * (size_t)(cap + 1));
    for (int k = 0; k < nfns; k++) {
        PlanFn f = fns[k];
        for (int s = 0; s < p->norder[f]; s++) {
            Node *n = p->order[f][s];
            Buffer *b = &p->info[n->id].buf[f];
            long scratch = scratch_reals(p, f, n);
            if (scratch > 0) {
                /* lives during its step only */
                Interval *iv = &pools[1][counts[1]++];
                p->info[n->id].scratch_size = scratch;
                p->info[n->id].scratch[f].pool = POOL_SHARED;
                iv->start = iv->end = L->step_time[f][n->id];
                iv->size = scratch;
                iv->buf = &p->info[n->id].scratch[f];
                iv->node = n;
                iv->scratch = true;
            }
            if (b->pool != POOL_NONE)   /* grad, a loop's local, the caller's arrays */
                continue;
            b->pool = n->batched ? POOL_BATCHED : POOL_SHARED;
            int which = n->batched ? 0 : 1;
            Interval *iv = &pools[which][counts[which]++];
            iv->start = L->step_time[f][n->id];
            iv->end = max_l(iv->start, L->read_end[f][n->id]);
            iv->size = shape_size(n->shape);
            iv->buf = b;
            iv->node = n;
        }
    }
    Placement how = p->opt.placement;
    p->ws_batched = max_l(p->ws_batched, place(p->arena, how, pools[0], counts[0], L->g->nnodes));
    p->ws_shared = max_l(p->ws_shared, place(p->arena, how, pools[1], counts[1], L->g->nnodes));
}

/* Places outputs' buffers. It runs after forward, which leaves in the
 * workspace what it keeps for backward; outputs reads some of it, so its
 * own buffers avoid those (pinned where forward put them, alive until
 * outputs' last read of them) and may take any other place, forward's
 * other values being dead by then. Few buffers as a rule: placed by size. */
static void allocate_outputs(Lower *L)
{
    Plan *p = L->p;
    Graph *g = L->g;
    const PlanFn f = PF_OUTPUTS;
    int cap = 2 * p->norder[f];
    for (int id = 0; id < g->nnodes; id++)
        cap += p->info[id].kept && L->read_end[f][id] > 0;
    Interval *pools[2];
    int counts[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        pools[k] = arena_alloc(p->arena, sizeof(Interval) * (size_t)(cap + 1));
    for (int id = 0; id < g->nnodes; id++) {
        NodeInfo *in = &p->info[id];
        if (!in->kept || L->read_end[f][id] <= 0 || L->member[f][id])
            continue;
        const Buffer *b = &in->buf[PF_FORWARD];
        int which = b->pool == POOL_BATCHED ? 0 : 1;
        Interval *iv = &pools[which][counts[which]++];
        memset(iv, 0, sizeof *iv);
        iv->start = 0;
        iv->end = L->read_end[f][id];
        iv->size = shape_size(g->nodes[id]->shape);
        iv->offset = b->offset;
        iv->node = g->nodes[id];
        iv->pinned = true;
    }
    for (int s = 0; s < p->norder[f]; s++) {
        Node *n = p->order[f][s];
        long scratch = scratch_reals(p, f, n);
        if (scratch > 0) {
            Interval *iv = &pools[1][counts[1]++];
            memset(iv, 0, sizeof *iv);
            p->info[n->id].scratch_size = scratch;
            p->info[n->id].scratch[f].pool = POOL_SHARED;
            iv->start = iv->end = L->step_time[f][n->id];
            iv->size = scratch;
            iv->buf = &p->info[n->id].scratch[f];
            iv->node = n;
            iv->scratch = true;
        }
        Buffer *b = &p->info[n->id].buf[f];
        if (b->pool != POOL_NONE)   /* a loop's local, the caller's outputs */
            continue;
        b->pool = n->batched ? POOL_BATCHED : POOL_SHARED;
        int which = n->batched ? 0 : 1;
        Interval *iv = &pools[which][counts[which]++];
        memset(iv, 0, sizeof *iv);
        iv->start = L->step_time[f][n->id];
        iv->end = max_l(iv->start, L->read_end[f][n->id]);
        iv->size = shape_size(n->shape);
        iv->buf = b;
        iv->node = n;
    }
    p->ws_batched = max_l(p->ws_batched, place_by_size(p->arena, pools[0], counts[0]));
    p->ws_shared = max_l(p->ws_shared, place_by_size(p->arena, pools[1], counts[1]));
}

/* ---------------------------------------------------------------- fused step */

/* What one step of function f reads, for lower_fused (backward's steps)
 * and lower_forward_backward: the parameters and the stored values
 * (buffers, kept values) it evaluates its node from, walking through what
 * is fused into it (inline and virtual nodes). Each step's reads are
 * listed once, so planning M_step is linear in the size of backward. */
typedef struct {
    Node **read;      /* parameters and stored values read, with duplicates */
    int count, cap;
} StepReads;

static void read_node(const Plan *p, PlanFn f, StepReads *r, Node *x)
{
    if (x->op == OP_INPUT || x->op == OP_CONST)
        return;
    NodeMode mode = p->info[x->id].mode[f];
    if (x->op != OP_PARAM && (mode == NODE_INLINE || mode == NODE_VIRTUAL)) {
        for (int k = 0; k < x->nin; k++)
            read_node(p, f, r, x->in[k]);
        return;
    }
    if (r->count == r->cap) {
        int cap = r->cap ? 2 * r->cap : 16;
        Node **more = arena_alloc(p->arena, sizeof *more * (size_t)cap);
        if (r->count)
            memcpy(more, r->read, sizeof *more * (size_t)r->count);
        r->read = more;
        r->cap = cap;
    }
    r->read[r->count++] = x;
}

static void step_reads(const Plan *p, PlanFn f, const Step *st, StepReads *r)
{
    r->count = 0;
    if (st->node)
        for (int k = 0; k < st->node->nin; k++)
            read_node(p, f, r, st->node->in[k]);
    else if (st->kind == STEP_COPY && st->copy.src)
        read_node(p, f, r, st->copy.src);
}

/* The reals of the block a large gradient computed by a gemm is made in,
 * in M_step: a few of its rows at a time, each block updated at once. */
enum { FUSED_TILE_REALS = 16384 };

/* A model whose updated parameters hold this many reals or fewer keeps
 * every gradient in M_step's pool until backward ends, then updates each
 * run of them in one call: a call per tensor, each with its own checks and
 * coefficients, cost more than the update itself (the 4-16-3 classifier's
 * four calls took 0.075 µs, its M_step 0.29 µs at batch 1 against 0.22 for
 * forward + backward + bp_optim_step), and a gradient this small is not
 * worth the memory saved. The runtime's bp_optim_step likewise updates up
 * to 16 384 entries in one piece. */
enum { FUSED_WHOLE_REALS = 16384 };

/* How many rows of gradient d (size reals) step st computes at a time in
 * M_step, or 0 for all at once: a gemm writing d alone (no bias, no
 * per-sample calls, no accumulation), its rows contiguous, larger than
 * a block. Rows count in sixteens, for the kernels' register blocks. */
static long tile_rows(const Step *st, const Node *d, long size)
{
    const GemmStep *gm = &st->gemm;
    if (st->kind != STEP_GEMM || st->node != d || gm->sample_loop || gm->prefill ||
        gm->c.node != d || gm->c.at_sample || gm->m.times_n || gm->n.times_n ||
        gm->beta != SCALE_ZERO || gm->ldc != gm->n.count || gm->m.count * gm->n.count != size ||
        size <= FUSED_TILE_REALS)
        return 0;
    long rows = FUSED_TILE_REALS / gm->n.count;
    if (rows >= 16)
        rows -= rows % 16;
    rows = rows < 1 ? 1 : rows;
    return rows < gm->m.count ? rows : 0;
}

/* Where the stored value x lies in the workspace (false: an input or
 * parameter, which no step writes, or a gradient of M_step's pool). */
static bool stored_place(const Plan *p, const Node *x, Buffer *b, long *size)
{
    const NodeInfo *in = &p->info[x->id];
    if (in->mode[PF_BACKWARD] == NODE_BUFFER)
        *b = in->buf[PF_BACKWARD];
    else if (in->kept)
        *b = in->buf[PF_FORWARD];
    else
        return false;
    *size = shape_size(x->shape);
    return b->pool == POOL_BATCHED || b->pool == POOL_SHARED;
}

static bool overlap(Buffer a, long asize, Buffer b, long bsize)
{
    return a.pool == b.pool && a.offset < b.offset + bsize && b.offset < a.offset + asize;
}

/* Whether step `st`, run after the steps kept[t + 1 .. u], would read what
 * it reads at t: none of those steps writes a workspace place it reads
 * (their values, their kernels' scratch). st reads no parameter. */
static bool may_defer(const Plan *p, const Step *const *kept, int t, int u, StepReads *r)
{
    step_reads(p, PF_BACKWARD, kept[t], r);
    int nread = r->count;
    Buffer *b = arena_alloc(p->arena, sizeof(Buffer) * (size_t)(nread + 1));
    long *size = arena_alloc(p->arena, sizeof(long) * (size_t)(nread + 1));
    for (int k = 0; k < nread; k++)
        if (r->read[k]->op == OP_PARAM || !stored_place(p, r->read[k], &b[k], &size[k]))
            return false;
    for (int s = t + 1; s <= u; s++) {
        const Node *y = kept[s]->node;
        if (!y)
            continue;
        const NodeInfo *in = &p->info[y->id];
        for (int k = 0; k < nread; k++) {
            if (in->mode[PF_BACKWARD] == NODE_BUFFER &&
                overlap(in->buf[PF_BACKWARD], shape_size(y->shape), b[k], size[k]))
                return false;
            if (in->scratch_size > 0 &&
                overlap(in->scratch[PF_BACKWARD], in->scratch_size, b[k], size[k]))
                return false;
        }
    }
    return true;
}

/* M_step's plan (--step; bpgen.h, Plan.fused_steps): backward's steps,
 * with the updates placed and the gradients in a pool of their own.
 * Parameter P's update comes right after the last step that writes dP or
 * reads P (backward of an earlier layer reads W2 after dW2 is complete:
 * updating W2 before that read would change what it computes). A
 * gradient lives from the step that writes it to its update (or to its
 * last reader, if later); the pool is packed as the workspace is. A small
 * model (FUSED_WHOLE_REALS) instead keeps each gradient where its
 * parameter lies in theta and updates after backward's last step.
 * Updates at one place of parameters next to each other in theta, whose
 * gradients are next to each other in the pool, are one call. */
static void lower_fused(Plan *p)
{
    const Graph *g = p->graph;
    const Model *m = g->model;
    const Step *bw = p->steps[PF_BACKWARD];
    int nb = p->nsteps[PF_BACKWARD];
    int np = m->nparams;

    /* backward's steps that M_step runs: not the input gradients (no one
     * asks for them: neither their copies out nor the loops that write them
     * straight into grad_inputs), not a frozen parameter's zeros */
    int *kept_at = arena_alloc(p->arena, sizeof(int) * (size_t)(nb + 1));  /* fused index */
    const Step **kept = arena_alloc(p->arena, sizeof(Step *) * (size_t)(nb + 1));
    int nk = 0;
    for (int s = 0; s < nb; s++) {
        const CopyStep *c = &bw[s].copy;
        bool dropped = (bw[s].kind == STEP_COPY &&
                        (c->dest == DEST_GRAD_INPUT || (c->dest == DEST_GRAD && !c->src))) ||
                       (bw[s].node &&
                        p->info[bw[s].node->id].buf[PF_BACKWARD].pool == POOL_GRAD_INPUT);
        kept_at[s] = nk;
        if (!dropped)
            kept[nk++] = &bw[s];
    }

    /* which step writes each gradient: its own buffer's (POOL_GRAD at the
     * parameter's offset), else the copy out */
    int *writer = arena_alloc(p->arena, sizeof(int) * (size_t)(np + 1));
    int *last = arena_alloc(p->arena, sizeof(int) * (size_t)(np + 1));
    int *owner = arena_alloc(p->arena, sizeof(int) * (size_t)(g->nnodes + 1));
    for (int id = 0; id < g->nnodes; id++)
        owner[id] = -1;
    for (int i = 0; i < np; i++) {
        writer[i] = last[i] = -1;
        Node *d = g->grad_params[i];
        const NodeInfo *in = d ? &p->info[d->id] : NULL;
        if (in && in->mode[PF_BACKWARD] == NODE_BUFFER && in->buf[PF_BACKWARD].pool == POOL_GRAD &&
            in->buf[PF_BACKWARD].offset == m->param_offsets[i])
            owner[d->id] = i;
    }
    for (int t = 0; t < nk; t++) {
        const Step *st = kept[t];
        if (st->kind == STEP_COPY && st->copy.dest == DEST_GRAD) {
            writer[st->copy.index] = t;
            continue;
        }
        if (st->node && owner[st->node->id] >= 0)
            writer[owner[st->node->id]] = t;
    }

    /* the last step reading each parameter, and each gradient buffer */
    StepReads r = {NULL, 0, 0};
    long *read_end = arena_alloc(p->arena, sizeof(long) * (size_t)(g->nnodes + 1));
    for (int id = 0; id < g->nnodes; id++)
        read_end[id] = -1;
    for (int t = 0; t < nk; t++) {
        step_reads(p, PF_BACKWARD, kept[t], &r);
        for (int k = 0; k < r.count; k++) {
            if (r.read[k]->op == OP_PARAM)
                last[r.read[k]->index] = t;
            else
                read_end[r.read[k]->id] = t;
        }
    }

    long updated = 0;
    for (int i = 0; i < np; i++)
        if (writer[i] >= 0)
            updated += shape_size(m->params[i]->shape);
    bool whole = updated <= FUSED_WHOLE_REALS;
    p->fused_whole = whole;

    /* each updated parameter's gradient: an interval of the pool */
    Interval *iv = arena_alloc(p->arena, sizeof(Interval) * (size_t)(np + 1));
    Buffer *place_of = arena_alloc(p->arena, sizeof(Buffer) * (size_t)(np + 1));
    int *update_after = arena_alloc(p->arena, sizeof(int) * (size_t)(np + 1));
    long *tiles = arena_alloc(p->arena, sizeof(long) * (size_t)(np + 1));
    int count = 0;
    for (int i = 0; i < np; i++) {
        update_after[i] = -1;
        if (writer[i] < 0)
            continue;   /* frozen */
        tiles[i] = 0;
        if (whole) {   /* no interval: its place is its parameter's in theta */
            update_after[i] = nk - 1;
            count++;
            continue;
        }
        update_after[i] = writer[i] > last[i] ? writer[i] : last[i];
        /* a merged loop's statements run at every index: an update
         * follows its last one */
        while (kept[update_after[i]]->joined && update_after[i] + 1 < nk)
            update_after[i]++;
        Node *d = g->grad_params[i];
        long size = shape_size(m->params[i]->shape);
        Interval *v = &iv[count++];
        v->start = writer[i];
        v->end = update_after[i];
        if (kept[writer[i]]->kind != STEP_COPY)
            v->end = max_l(v->end, read_end[d->id]);
        /* a gradient read by nothing after its own step, whose parameter
         * that step does not read either, may be made and applied a block
         * at a time */
        if (v->end == writer[i] && last[i] < writer[i])
            tiles[i] = tile_rows(kept[writer[i]], d, size);
        /* or, where the layer before reads P after dP is made (dh =
         * transpose(W)·dz after dW), once the step is moved past that
         * read: it writes M_step's pool only, so moving it is safe when
         * nothing in between overwrites what it reads */
        else if (last[i] > writer[i] && read_end[d->id] <= writer[i] &&
                 kept[writer[i]]->kind != STEP_COPY && tile_rows(kept[writer[i]], d, size) &&
                 may_defer(p, kept, writer[i], last[i], &r))
            tiles[i] = tile_rows(kept[writer[i]], d, size);
        if (tiles[i])
            v->start = v->end = update_after[i];
        v->size = tiles[i] ? tiles[i] * kept[writer[i]]->gemm.n.count : size;
        v->buf = &place_of[i];
        v->node = kept[writer[i]]->node ? kept[writer[i]]->node : d;
        v->scratch = true;   /* never written in place of another */
    }
    if (whole) {   /* theta's layout: each run of gradients is one update's */
        for (int i = 0; i < np; i++)
            place_of[i].offset = m->param_offsets[i];
        p->ws_fused = count ? m->param_offsets[np] : 0;
    } else {
        p->ws_fused = place(p->arena, p->opt.placement, iv, count, g->nnodes);
    }

    p->fused_grad = arena_alloc(p->arena, sizeof(long) * (size_t)(g->nnodes + 1));
    for (int id = 0; id < g->nnodes; id++)
        p->fused_grad[id] = -1;
    for (int i = 0; i < np; i++)
        if (writer[i] >= 0 && kept[writer[i]]->kind != STEP_COPY)
            p->fused_grad[kept[writer[i]]->node->id] = place_of[i].offset;

    /* the steps, each followed by the updates it makes possible (listed
     * per step, in parameter order) */
    Step *steps = arena_alloc(p->arena, sizeof(Step) * (size_t)(nk + np + 1));
    int *fused_at = arena_alloc(p->arena, sizeof(int) * (size_t)(nk + 1));
    bool *runs_later = arena_alloc(p->arena, sizeof(bool) * (size_t)(nk + 1));
    int *first_update = arena_alloc(p->arena, sizeof(int) * (size_t)(nk + 1));
    int *next_update = arena_alloc(p->arena, sizeof(int) * (size_t)(np + 1));
    for (int t = 0; t < nk; t++)
        first_update[t] = -1;
    for (int i = np - 1; i >= 0; i--) {
        if (update_after[i] < 0)
            continue;
        next_update[i] = first_update[update_after[i]];
        first_update[update_after[i]] = i;
        if (tiles[i])
            runs_later[writer[i]] = true;
    }
    int n = 0;
    for (int t = 0; t < nk; t++) {
        fused_at[t] = n;
        if (!runs_later[t]) {   /* else its update runs it, at its own place */
            Step *st = &steps[n++];
            *st = *kept[t];
            if (st->kind == STEP_COPY && st->copy.dest == DEST_GRAD)
                st->copy.offset = place_of[st->copy.index].offset;
        }
        for (int i = first_update[t]; i >= 0; i = next_update[i]) {
            long size = shape_size(m->params[i]->shape);
            Step *prev = n > 0 ? &steps[n - 1] : NULL;
            if (prev && prev->kind == STEP_UPDATE && !prev->update.gemm && !tiles[i] &&
                fused_at[t] < n && prev->update.index + prev->update.count == i &&
                m->param_offsets[i] == m->param_offsets[prev->update.index] + prev->update.size &&
                place_of[i].offset == prev->update.offset + prev->update.size) {
                prev->update.count++;   /* the next parameter, the next gradient */
                prev->update.size += size;
                continue;
            }
            Step *u = &steps[n++];
            memset(u, 0, sizeof *u);
            u->kind = STEP_UPDATE;
            u->update.index = i;
            u->update.count = 1;
            u->update.offset = place_of[i].offset;
            u->update.size = size;
            if (tiles[i]) {
                u->node = kept[writer[i]]->node;
                u->update.gemm = kept[writer[i]];
                u->update.tile_rows = tiles[i];
            }
        }
    }
    p->fused_steps = steps;
    p->nfused_steps = n;

    /* backward's groups, each with the updates that follow its steps */
    StepGroup *groups = arena_alloc(p->arena, sizeof(StepGroup) * (size_t)(p->ngroups[PF_BACKWARD] + 1));
    int ng = 0;
    for (int k = 0; k < p->ngroups[PF_BACKWARD]; k++) {
        const StepGroup *b = &p->groups[PF_BACKWARD][k];
        int first = kept_at[b->first];
        int end = b->first + b->count < nb ? kept_at[b->first + b->count] : nk;
        if (first == end)
            continue;   /* only input gradients */
        StepGroup *f = &groups[ng++];
        *f = *b;
        f->first = fused_at[first];
        f->count = (end < nk ? fused_at[end] : n) - f->first;
    }
    p->fused_groups = groups;
    p->nfused_groups = ng;
}

/* --step, before the workspace is placed: where the layer before reads a
 * parameter W after the gemm making its large gradient dW, what that gemm
 * reads stays until just after that read, so that M_step can move the
 * gemm past it and make dW a block at a time (lower_fused, may_defer).
 * Only lifetimes grow: M_forward and M_backward are unchanged but for
 * where some buffers lie. */
static void keep_for_fused(Lower *L)
{
    Plan *p = L->p;
    Graph *g = L->g;
    Model *m = g->model;
    int np = m->nparams;
    StepReads r = {NULL, 0, 0};
    long *last = arena_alloc(p->arena, sizeof(long) * (size_t)(np + 1));
    bool *copied = arena_alloc(p->arena, sizeof(bool) * (size_t)(np + 1));
    for (int i = 0; i < np; i++) {
        last[i] = -1;
        /* a gradient that is a parameter: read at backward's end */
        if (g->grad_params[i] && g->grad_params[i]->op == OP_PARAM)
            copied[g->grad_params[i]->index] = true;
    }
    for (int id = 0; id < g->nnodes; id++) {
        if (!L->member[PF_BACKWARD][id] || p->info[id].mode[PF_BACKWARD] != NODE_BUFFER)
            continue;
        Node *y = g->nodes[id];
        r.count = 0;
        for (int k = 0; k < y->nin; k++)
            read_node(p, PF_BACKWARD, &r, y->in[k]);
        for (int k = 0; k < r.count; k++)
            if (r.read[k]->op == OP_PARAM)
                last[r.read[k]->index] = max_l(last[r.read[k]->index], L->step_time[PF_BACKWARD][id]);
    }
    for (int i = 0; i < np; i++) {
        Node *d = g->grad_params[i];
        if (copied[i] || !d || !L->member[PF_BACKWARD][d->id] ||
            p->info[d->id].mode[PF_BACKWARD] != NODE_BUFFER ||
            (d->op != OP_BATCH_MEAN && d->op != OP_MATMUL) ||
            shape_size(d->shape) <= FUSED_TILE_REALS ||
            last[i] <= L->step_time[PF_BACKWARD][d->id])
            continue;
        r.count = 0;
        for (int k = 0; k < d->nin; k++)
            read_node(p, PF_BACKWARD, &r, d->in[k]);
        bool reads_param = false;
        for (int k = 0; k < r.count; k++)
            reads_param = reads_param || r.read[k]->op == OP_PARAM;
        if (reads_param)
            continue;
        for (int k = 0; k < r.count; k++) {
            int x = r.read[k]->id;
            if (L->member[PF_BACKWARD][x] && p->info[x].mode[PF_BACKWARD] == NODE_BUFFER)
                L->read_end[PF_BACKWARD][x] = max_l(L->read_end[PF_BACKWARD][x], last[i] + 1);
            else if (p->info[x].kept)
                L->read_end[PF_FORWARD][x] = max_l(L->read_end[PF_FORWARD][x], last[i] + 1);
        }
    }
}

/* ------------------------------------------------- forward and backward in one call */

/* Marks in `seen` (by node id, bit 1 << f) the value step st of function f
 * computes and the stored values it reads. */
static void mark_step(const Plan *p, PlanFn f, const Step *st, StepReads *r, unsigned char *seen)
{
    step_reads(p, f, st, r);
    for (int k = 0; k < r->count; k++)
        seen[r->read[k]->id] |= (unsigned char)(1u << f);
    seen[st->node->id] |= (unsigned char)(1u << f);
}

/* Most statements M_forward_backward's loop holds, forward's and
 * backward's together (below GROUP_STEPS: group_steps cuts backward's
 * groups after its part, which then lies in one or two groups). */
enum { FB_STEPS = 24 };

/* Whether backward's step st may run in forward's loss loop, whose first
 * step is `lead` (a flat loop over the samples, one value each): a loop of
 * the same form and trip count, or a batch mean of one value per sample,
 * summed in the loop and divided after it. */
static bool joins_loss_loop(const Step *st, const Step *lead)
{
    if (st->kind == STEP_LOOP)
        return st->loop.form == lead->loop.form && st->loop.size == lead->loop.size &&
               st->node->batched == lead->node->batched;
    return st->kind == STEP_REDUCE && st->reduce.form == REDUCE_BATCH_MEAN &&
           st->reduce.size == 1 && st->reduce.x->batched && !st->node->batched &&
           lead->loop.form == LOOP_FLAT && lead->loop.size == 1 && lead->node->batched;
}

/* M_forward_backward: where forward ends in a merged loop that sums the
 * loss over the samples, and backward begins with elementwise loops of the
 * same form over the same values (or batch means of one value per sample,
 * summed there as the loss is), backward's steps run inside forward's:
 * a value such as P = sqrt(S) is then read back while it is still in a
 * register, and its inputs are read from memory once, not twice.
 *
 * It is legal for the reason merged loops are (join_loops): each
 * statement of the one loop reads the values it shares with the others at
 * the index the loop is at, after the statement that wrote them. Backward's
 * statements read what forward keeps for them, and forward's loss is not
 * one of them (its gradient's seed is 1/n), so they need nothing forward
 * has not written by then. Two more conditions: no value is a buffer of
 * both functions (it has one C name), and backward's statements write no
 * workspace place forward's statements read or write (backward's places
 * were chosen for after forward, not during it). */
static void lower_forward_backward(Plan *p)
{
    p->fb_first = p->fb_joined = 0;
    p->fb_local = NULL;
    const Step *fw = p->steps[PF_FORWARD], *bw = p->steps[PF_BACKWARD];
    int nf = p->nsteps[PF_FORWARD], nb = p->nsteps[PF_BACKWARD];
    /* --check-finite checks each function's buffers after its loops */
    if (p->opt.check_finite || nf < 2 || nb < 1 || fw[nf - 1].kind != STEP_REDUCE ||
        fw[nf - 1].reduce.form != REDUCE_LOSS || !fw[nf - 2].joined)
        return;
    int first = nf - 2;
    while (first > 0 && fw[first - 1].joined)
        first--;
    const Step *lead = &fw[first];
    int k = 0;
    while (k < nb && (nf - 1 - first) + k < FB_STEPS && joins_loss_loop(&bw[k], lead))
        k++;
    /* a merged loop of backward's is taken whole: its locals are its own */
    while (k > 0 && k < nb && bw[k - 1].joined)
        k--;
    if (k == 0)
        return;

    const Graph *g = p->graph;
    StepReads r = {NULL, 0, 0};
    /* a batch mean is final only after the loop: no statement in it may
     * read one */
    for (int t = 0; t < k; t++) {
        step_reads(p, PF_BACKWARD, &bw[t], &r);
        for (int j = 0; j < r.count; j++)
            for (int u = 0; u < t; u++)
                if (bw[u].kind == STEP_REDUCE && r.read[j] == bw[u].node)
                    k = u;   /* stop before the mean it reads */
    }
    while (k > 0 && k < nb && bw[k - 1].joined)
        k--;
    if (k == 0)
        return;
    unsigned char *seen = arena_alloc(p->arena, (size_t)g->nnodes + 1);
    memset(seen, 0, (size_t)g->nnodes + 1);
    for (int t = first; t < nf - 1; t++)
        mark_step(p, PF_FORWARD, &fw[t], &r, seen);
    for (int t = 0; t < k; t++)
        mark_step(p, PF_BACKWARD, &bw[t], &r, seen);
    const unsigned char both = (1u << PF_FORWARD) | (1u << PF_BACKWARD);
    for (int id = 0; id < g->nnodes; id++) {
        const NodeInfo *in = &p->info[id];
        if (seen[id] == both && in->mode[PF_FORWARD] == NODE_BUFFER &&
            in->mode[PF_BACKWARD] == NODE_BUFFER)
            return;
    }
    for (int t = 0; t < k; t++) {
        const NodeInfo *w = &p->info[bw[t].node->id];
        Buffer wb = w->buf[PF_BACKWARD];
        if (wb.pool != POOL_BATCHED && wb.pool != POOL_SHARED)
            continue;
        long wsize = shape_size(bw[t].node->shape);
        for (int id = 0; id < g->nnodes; id++) {
            if (!(seen[id] & (1u << PF_FORWARD)) || is_leaf(g->nodes[id]))
                continue;
            const NodeInfo *in = &p->info[id];
            Buffer fb = in->buf[PF_FORWARD];
            long fsize = shape_size(g->nodes[id]->shape);
            /* the very same places, a loop's step writing each at the
             * index its loop is at: the value there is dead in backward
             * from this step on (placement put one over the other), and
             * every statement before it in the loop has read it */
            bool in_place = bw[t].kind == STEP_LOOP && wb.pool == POOL_BATCHED &&
                            fb.pool == POOL_BATCHED && wb.offset == fb.offset && wsize == fsize;
            if (in->mode[PF_FORWARD] == NODE_BUFFER && !in_place &&
                overlap(wb, wsize, fb, fsize))
                return;
        }
    }
    p->fb_first = first;
    p->fb_joined = k;
    /* what a loop of forward's or backward's stores only for the joined
     * statements is a local of the loop there: nothing after it reads it,
     * and the workspace after M_forward_backward is scratch */
    unsigned char *later = arena_alloc(p->arena, (size_t)g->nnodes + 1);
    memset(later, 0, (size_t)g->nnodes + 1);
    for (int t = k; t < nb; t++) {
        step_reads(p, PF_BACKWARD, &bw[t], &r);
        for (int j = 0; j < r.count; j++)
            later[r.read[j]->id] = 1;
    }
    for (int t = first; t < nf - 1 + k; t++) {
        bool forward = t < nf - 1;
        const Step *st = forward ? &fw[t] : &bw[t - (nf - 1)];
        const Node *y = st->node;
        Pool pool = p->info[y->id].buf[forward ? PF_FORWARD : PF_BACKWARD].pool;
        if (st->kind == STEP_LOOP && !later[y->id] &&
            (pool == POOL_BATCHED || pool == POOL_SHARED)) {
            if (!p->fb_local) {
                p->fb_local = arena_alloc(p->arena, (size_t)g->nnodes + 1);
                memset(p->fb_local, 0, (size_t)g->nnodes + 1);
            }
            p->fb_local[y->id] = true;
        }
    }
}

/* ---------------------------------------------------------------- entry */

/* Which functions are also printed for one sample (Plan.one_sample): those
 * of one group in the public function's body, so a small model's. With n
 * the constant 1, the C compiler unrolls and folds the loops over the
 * batch, its sums over samples and its divisions by n, where a tiny model
 * at batch 1 spends most of its time; a split function's groups would need
 * copies of their own, and its model is large enough not to notice. */
static void lower_one_sample(Plan *p)
{
    for (int f = 0; f < PF__COUNT; f++)
        p->one_sample[f] = p->ngroups[f] == 1 && p->groups[f][0].in_caller;
    p->one_sample_step = p->fused_steps && p->nfused_groups == 1 &&
                         p->fused_groups[0].in_caller;
}

Plan *lower_graph(Arena *a, Graph *g, const EmitOptions *opt)
{
    Plan *p = arena_alloc(a, sizeof *p);
    p->arena = a;
    p->graph = g;
    p->opt = *opt;
    p->info = arena_alloc(a, sizeof(NodeInfo) * (size_t)(g->nnodes + 1));
    Model *m = g->model;

    Lower L;
    memset(&L, 0, sizeof L);
    L.p = p;
    L.g = g;
    size_t nb = sizeof(bool) * (size_t)(g->nnodes + 1);
    size_t nl = sizeof(long) * (size_t)(g->nnodes + 1);
    bool *want[PF__COUNT];
    for (int f = 0; f < PF__COUNT; f++) {
        L.member[f] = arena_alloc(a, nb);
        L.gemm_mem[f] = arena_alloc(a, nb);
        L.non_gemm_user[f] = arena_alloc(a, nb);
        L.step_time[f] = arena_alloc(a, nl);
        L.user_time[f] = arena_alloc(a, nl);
        L.read_end[f] = arena_alloc(a, nl);
        L.read_time[f] = arena_alloc(a, nl);
        want[f] = arena_alloc(a, nb);
    }

    /* what each function computes; forward first, since backward stops
     * at what forward has */
    want_root(&L, PF_FORWARD, want[PF_FORWARD], g->loss);
    collect(&L, PF_FORWARD, want[PF_FORWARD]);
    for (int i = 0; i < m->nparams; i++)
        want_root(&L, PF_BACKWARD, want[PF_BACKWARD], g->grad_params[i]);
    for (int k = 0; k < m->ninputs; k++)
        want_root(&L, PF_BACKWARD, want[PF_BACKWARD], g->grad_inputs[k]);
    collect(&L, PF_BACKWARD, want[PF_BACKWARD]);
    for (int j = 0; j < m->noutputs; j++)
        want_root(&L, PF_PREDICT, want[PF_PREDICT], g->output_nodes[j]);
    collect(&L, PF_PREDICT, want[PF_PREDICT]);
    choose_modes(&L, PF_OUTPUTS);
    for (int j = 0; j < m->noutputs; j++)
        want_root(&L, PF_OUTPUTS, want[PF_OUTPUTS], g->output_nodes[j]);
    collect(&L, PF_OUTPUTS, want[PF_OUTPUTS]);
    choose_modes(&L, PF_OUTPUTS + 1);

    /* a gradient backward computes is written where it is wanted */
    long offset = 0;
    for (int i = 0; i < m->nparams; i++) {
        Node *d = g->grad_params[i];
        if (d && L.member[PF_BACKWARD][d->id] && d->op != OP_CONST &&
            p->info[d->id].mode[PF_BACKWARD] == NODE_BUFFER &&
            p->info[d->id].buf[PF_BACKWARD].pool == POOL_NONE) {
            p->info[d->id].buf[PF_BACKWARD].pool = POOL_GRAD;
            p->info[d->id].buf[PF_BACKWARD].offset = offset;
        }
        offset += shape_size(m->params[i]->shape);
    }

    place_results(&L);
    long fwd_end = order_steps(&L, PF_FORWARD, 0);
    order_steps(&L, PF_BACKWARD, fwd_end + 1);
    order_steps(&L, PF_PREDICT, 0);
    order_steps(&L, PF_OUTPUTS, 1);
    for (int f = 0; f < PF__COUNT; f++) {
        join_loops(&L, (PlanFn)f);
        schedule_reads(&L, (PlanFn)f);
    }
    if (opt->step)
        keep_for_fused(&L);
    for (int f = 0; f < PF__COUNT; f++)
        choose_locals(&L, (PlanFn)f);
    const PlanFn train[2] = {PF_FORWARD, PF_BACKWARD};
    const PlanFn infer[1] = {PF_PREDICT};
    allocate(&L, train, 2);
    allocate_outputs(&L);
    allocate(&L, infer, 1);
    lower_steps(p);
    lower_forward_backward(p);
    lower_groups(p);
    if (opt->step)
        lower_fused(p);
    lower_one_sample(p);
    return p;
}
