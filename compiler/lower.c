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
        if (f == PF_BACKWARD && L->member[PF_FORWARD][id]) {
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

/* ---------------------------------------------------------------- timing */

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
            else if (f == PF_BACKWARD && p->info[x].kept)
                L->read_end[PF_FORWARD][x] = max_l(L->read_end[PF_FORWARD][x], t);
        }
    }
    /* backward's roots that forward computed are read at its end */
    if (f == PF_BACKWARD)
        for (int id = 0; id < g->nnodes; id++)
            if (p->info[id].root[f] && p->info[id].kept)
                L->read_end[PF_FORWARD][id] = max_l(L->read_end[PF_FORWARD][id], end);
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

/* predict's outputs are written where the caller wants them (later steps
 * read them there), so predict copies nothing but values it does not
 * compute or that are not one row per sample; a wrt input's gradient
 * computed by an elementwise loop and read by nothing else is written
 * into grad_inputs divided by n in that loop, when the caller asks for
 * it, so no pass only rescales. */
static void place_results(Lower *L)
{
    Plan *p = L->p;
    Graph *g = L->g;
    Model *m = g->model;
    for (int j = 0; j < m->noutputs; j++) {
        Node *y = g->output_nodes[j];
        if (direct_result(L, PF_PREDICT, y, shape_size(m->outputs[j]->shape))) {
            p->info[y->id].buf[PF_PREDICT].pool = POOL_OUTPUT;
            p->info[y->id].buf[PF_PREDICT].offset = j;
        }
    }
    for (int k = 0; k < m->ninputs; k++) {
        Node *d = g->grad_inputs[k];
        LoopStep loop;
        if (d && direct_result(L, PF_BACKWARD, d, shape_size(m->inputs[k]->shape)) &&
            p->info[d->id].uses[PF_BACKWARD] == 1 && loop_step_of(p, PF_BACKWARD, d, &loop)) {
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

/* ---------------------------------------------------------------- entry */

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

    for (int f = 0; f < PF__COUNT; f++)
        for (int id = 0; id < g->nnodes; id++)
            if (L.member[f][id])
                p->info[id].mode[f] = choose_mode(&L, (PlanFn)f, g->nodes[id]);
    for (int f = 0; f < PF__COUNT; f++)
        for (int id = 0; id < g->nnodes; id++)
            if (L.member[f][id]) {
                fuse_bias(&L, (PlanFn)f, g->nodes[id]);
                fuse_scale(&L, (PlanFn)f, g->nodes[id]);
            }

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
    for (int f = 0; f < PF__COUNT; f++) {
        join_loops(&L, (PlanFn)f);
        schedule_reads(&L, (PlanFn)f);
    }
    for (int f = 0; f < PF__COUNT; f++)
        choose_locals(&L, (PlanFn)f);
    const PlanFn train[2] = {PF_FORWARD, PF_BACKWARD};
    const PlanFn infer[1] = {PF_PREDICT};
    allocate(&L, train, 2);
    allocate(&L, infer, 1);
    lower_steps(p);
    return p;
}
