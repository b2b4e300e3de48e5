/* steps.c — each kind of step of a function's body: elementwise loops,
 * reductions, matrix products as gemm calls, the runtime's kernels
 * (convolution, pooling), and the copies into outputs and gradients.
 */
#include "emit.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- runtime calls */

static const char *gemm_fn(Emit *e)
{
    return e->dbl ? "bp_gemm_d" : "bp_gemm_f";
}

static const char *inv_n(Emit *e)
{
    return fmt(e, "%s / (%s)n", lit_str(e, 1), e->real);
}

/* "SIZE * (size_t)n": the count of a batched buffer's reals. */
static const char *batch_count(Emit *e, long size)
{
    return size == 1 ? "(size_t)n" : fmt(e, "%ld * (size_t)n", size);
}

static void step_elementwise(Emit *e, Node *y)
{
    long size = shape_size(y->shape);
    Ctx c;
    memset(&c, 0, sizeof c);
    c.batched = y->batched;
    c.size = size;
    if (!y->batched && size == 1)
        c.mode = IX_NONE;
    else
        c.mode = flat_ok(e, &c, y, true) ? IX_FLAT : IX_NESTED;
    c.depth = c.mode == IX_NONE ? 2 : c.mode == IX_FLAT ? 2 : 3;
    char *pre = NULL, *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, &pre, &npre, &notes, &nnotes);
    Ex value = render(e, &c, y, true);
    Ex dest = ref_buf(e, &c, y);
    close_ctx(e, &c, &notes, 1);
    comment(e, 1, equation(e, y));
    bool block = npre > 0;
    switch (c.mode) {
    case IX_NONE:
        if (block)
            line(e, 1, "{");
        fputs(pre ? pre : "", e->out);
        line(e, block ? 2 : 1, "%s = %s;", dest.s, value.s);
        if (block)
            line(e, 1, "}");
        break;
    case IX_FLAT:
        line(e, 1, "for (size_t i = 0; i < %s; i++) {",
             y->batched ? batch_count(e, size) : fmt(e, "%ld", size));
        fputs(pre ? pre : "", e->out);
        line(e, 2, "%s = %s;", dest.s, value.s);
        line(e, 1, "}");
        break;
    case IX_NESTED:
        line(e, 1, "for (size_t s = 0; s < (size_t)n; s++) {");
        line(e, 2, "for (size_t j = 0; j < %ld; j++) {", size);
        fputs(pre ? pre : "", e->out);
        line(e, 3, "%s = %s;", dest.s, value.s);
        line(e, 2, "}");
        line(e, 1, "}");
        break;
    }
    free(pre);
    free(notes);
}

/* ---------------------------------------------------------------- reductions */

/* Opens `for s` when batched (else a block); returns the body's depth. */
static int open_samples(Emit *e, bool batched)
{
    line(e, 1, batched ? "for (size_t s = 0; s < (size_t)n; s++) {" : "{");
    return 2;
}

static void step_sum(Emit *e, Node *y)
{
    Node *x = y->in[0];
    Ctx c;
    memset(&c, 0, sizeof c);
    c.mode = IX_NESTED;
    c.batched = y->batched;
    c.size = shape_size(x->shape);
    c.depth = 3;
    char *pre = NULL, *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, &pre, &npre, &notes, &nnotes);
    Ex v = render(e, &c, x, false);
    Ex dest = elem(e, y, "s", "0");
    close_ctx(e, &c, &notes, 1);
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "%s acc = %s;", e->real, lit_str(e, 0));
    line(e, d, "for (size_t j = 0; j < %ld; j++) {", c.size);
    fputs(pre ? pre : "", e->out);
    line(e, d + 1, "acc += %s;", v.s);
    line(e, d, "}");
    line(e, d, "%s = acc;", dest.s);
    line(e, 1, "}");
    free(pre);
    free(notes);
}

/* max over the sample, then the sum of exp(x - max) into acc */
static void max_and_sum(Emit *e, int d, Node *x, long k, const char *store)
{
    line(e, d, "%s mx = %s;", e->real, elem(e, x, "s", "0").s);
    line(e, d, "for (size_t j = 1; j < %ld; j++)", k);
    line(e, d + 1, "mx = %s > mx ? %s : mx;", elem(e, x, "s", "j").s, elem(e, x, "s", "j").s);
    line(e, d, "%s acc = %s;", e->real, lit_str(e, 0));
    line(e, d, "for (size_t j = 0; j < %ld; j++) {", k);
    if (store) {
        line(e, d + 1, "%s = %s(%s - mx);", store, fn(e, "exp"), elem(e, x, "s", "j").s);
        line(e, d + 1, "acc += %s;", store);
    } else {
        line(e, d + 1, "acc += %s(%s - mx);", fn(e, "exp"), elem(e, x, "s", "j").s);
    }
    line(e, d, "}");
}

static void step_vector(Emit *e, Node *y)
{
    Node *x = y->in[0];
    long k = shape_size(x->shape);
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    switch (y->op) {
    case OP_LOGSUMEXP:   /* max + log sum exp(x - max) */
        max_and_sum(e, d, x, k, NULL);
        line(e, d, "%s = mx + %s(acc);", elem(e, y, "s", "0").s, fn(e, "log"));
        break;
    case OP_SOFTMAX:     /* exp(x - max) / sum exp(x - max) */
        max_and_sum(e, d, x, k, elem(e, y, "s", "j").s);
        line(e, d, "for (size_t j = 0; j < %ld; j++)", k);
        line(e, d + 1, "%s /= acc;", elem(e, y, "s", "j").s);
        break;
    case OP_LOG_SOFTMAX: /* x - max - log sum exp(x - max) */
        max_and_sum(e, d, x, k, NULL);
        line(e, d, "const %s lacc = %s(acc);", e->real, fn(e, "log"));
        line(e, d, "for (size_t j = 0; j < %ld; j++)", k);
        line(e, d + 1, "%s = %s - mx - lacc;", elem(e, y, "s", "j").s, elem(e, x, "s", "j").s);
        break;
    default:
        die("not a vector operation");
    }
    line(e, 1, "}");
}

/* ---------------------------------------------------------------- linear algebra */

/* A matmul operand as gemm sees it, for one sample. */
typedef struct {
    Node *base;      /* what is in memory */
    bool trans;      /* base is stored transposed */
    long rows, cols; /* the operand's shape in the product */
    long ld;         /* row stride of base */
} View;

static View view_of(Emit *e, Node *v, bool left)
{
    View w;
    w.base = v;
    w.trans = false;
    if (v->op == OP_TRANSPOSE && info(e, v)->mode[e->f] == NODE_VIRTUAL) {
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

/* The view's data for sample s (or the whole batch). */
static const char *view_ptr(Emit *e, const View *w, bool per_sample)
{
    const char *b = buf_name(e, w->base);
    if (per_sample && w->base->batched)
        return fmt(e, "%s + s * %ld", b, shape_size(w->base->shape));
    return b;
}

static void gemm(Emit *e, int d, bool ta, bool tb, const char *m, const char *n, const char *k,
                 const char *alpha, const char *a, long lda, const char *b, long ldb,
                 const char *beta, const char *c, long ldc)
{
    line(e, d, "%s(%d, %d, %s, %s, %s, %s, %s, %ld, %s, %ld, %s, %s, %ld);", gemm_fn(e), ta, tb, m,
         n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* y = a · b over the batch, as one gemm where the batch stacks, else one
 * gemm per sample (lower.c's one_gemm_over_batch() tells the two apart
 * the same way). With `mean`, y is batch_mean(a · b): per-sample gemms
 * accumulate alpha = 1/n into y. With `add`, y += a · b (beta = 1). */
static void matmul(Emit *e, Node *y, Node *mm, bool mean, bool add)
{
    View A = view_of(e, mm->in[0], true), B = view_of(e, mm->in[1], false);
    long M = A.rows, K = A.cols, N = B.cols;
    bool ab = A.base->batched, bb = B.base->batched;
    const char *Y = buf_name(e, y);
    const char *one = lit_str(e, 1), *zero = add ? one : lit_str(e, 0);
    const char *sM = fmt(e, "%ld", M), *sN = fmt(e, "%ld", N), *sK = fmt(e, "%ld", K);
    if (mean) {
        line(e, 1, "for (size_t s = 0; s < (size_t)n; s++)");
        gemm(e, 2, A.trans, B.trans, sM, sN, sK, inv_n(e), view_ptr(e, &A, true), A.ld,
             view_ptr(e, &B, true), B.ld, fmt(e, "s == 0 ? %s : %s", zero, one), Y, N);
    } else if (!ab && !bb) {
        gemm(e, 1, A.trans, B.trans, sM, sN, sK, one, view_ptr(e, &A, false), A.ld,
             view_ptr(e, &B, false), B.ld, zero, Y, N);
    } else if (ab && !A.trans && !bb) {
        /* samples of a stack as rows: Y (n·M × N) = A (n·M × K) · B */
        gemm(e, 1, false, B.trans, M == 1 ? "n" : fmt(e, "%ld * n", M), sN, sK, one,
             view_ptr(e, &A, false), A.ld, view_ptr(e, &B, false), B.ld, zero, Y, N);
    } else if (!ab && bb && N == 1) {
        /* y_s = A x_s for every s: Y (n × M) = X (n × K) · Aᵀ */
        gemm(e, 1, false, !A.trans, "n", sM, sK, one, view_ptr(e, &B, false), K,
             view_ptr(e, &A, false), A.ld, zero, Y, M);
    } else {
        line(e, 1, "for (size_t s = 0; s < (size_t)n; s++)");
        gemm(e, 2, A.trans, B.trans, sM, sN, sK, one, view_ptr(e, &A, true), A.ld,
             view_ptr(e, &B, true), B.ld, zero, fmt(e, "%s + s * %ld", Y, M * N), N);
    }
}

static void step_matmul(Emit *e, Node *y)
{
    comment(e, 1, equation(e, y));
    Node *a = y->in[0], *b = y->in[1];
    if (a->shape.rank == 1 && b->shape.rank == 1) {   /* dot product */
        int d = open_samples(e, y->batched);
        line(e, d, "%s acc = %s;", e->real, lit_str(e, 0));
        line(e, d, "for (size_t j = 0; j < %d; j++)", a->shape.dim[0]);
        line(e, d + 1, "acc += %s * %s;", elem(e, a, "s", "j").s, elem(e, b, "s", "j").s);
        line(e, d, "%s = acc;", elem(e, y, "s", "0").s);
        line(e, 1, "}");
        return;
    }
    matmul(e, y, y, false, false);
}

/* y = mm + bias, mm a virtual matrix product (lower.c's fuse_bias): each
 * of y's n rows starts as the bias, then the gemm adds mm (beta = 1). */
static void step_bias_gemm(Emit *e, Node *y, Node *mm, Node *bias)
{
    long size = shape_size(y->shape);
    comment(e, 1, equation(e, y));
    const char *Y = buf_name(e, y);
    line(e, 1, "for (size_t s = 0; s < (size_t)n; s++)");
    if (bias->op == OP_CONST) {
        line(e, 2, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, 3, "%s = %s;", elem(e, y, "s", "j").s, lit_str(e, bias->value));
    } else {
        line(e, 2, "memcpy(%s + s * %ld, %s, %ld * sizeof(%s));", Y, size, buf_name(e, bias),
             size, e->real);
    }
    matmul(e, y, mm, false, true);
}

/* The matrix product a bias is added to in y's own step, or NULL. */
static Node *bias_gemm_of(const Emit *e, const Node *y, Node **bias)
{
    if (y->op != OP_ADD)
        return NULL;
    for (int k = 0; k < 2; k++)
        if (y->in[k]->op == OP_MATMUL && info(e, y->in[k])->mode[e->f] == NODE_VIRTUAL) {
            *bias = y->in[1 - k];
            return y->in[k];
        }
    return NULL;
}

static void step_transpose(Emit *e, Node *y)
{
    Node *x = y->in[0];
    long rows = y->shape.dim[0], cols = y->shape.dim[1];
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "for (size_t k = 0; k < %ld; k++)", rows);
    line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", cols);
    line(e, d + 2, "%s = %s;", elem(e, y, "s", fmt(e, "k * %ld + j", cols)).s,
         elem(e, x, "s", fmt(e, "j * %ld + k", rows)).s);
    line(e, 1, "}");
}

static void step_outer(Emit *e, Node *y)
{
    Node *a = y->in[0], *b = y->in[1];
    long rows = y->shape.dim[0], cols = y->shape.dim[1];
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "for (size_t k = 0; k < %ld; k++)", rows);
    line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", cols);
    line(e, d + 2, "%s = %s * %s;", elem(e, y, "s", fmt(e, "k * %ld + j", cols)).s,
         elem(e, a, "s", "k").s, elem(e, b, "s", "j").s);
    line(e, 1, "}");
}

static void step_kernel(Emit *e, Node *y, Node *v, bool mean);

static void step_batch_mean(Emit *e, Node *y)
{
    Node *x = y->in[0];
    long size = shape_size(y->shape);
    if (x->op == OP_OUTER && info(e, x)->mode[e->f] == NODE_VIRTUAL) {
        comment(e, 1, equation(e, y));
        /* mean of outer(a_s, b_s) = (1/n) Aᵀ B, A (n × m) and B (n × p) */
        Node *a = x->in[0], *b = x->in[1];
        long m = a->shape.dim[0], p = b->shape.dim[0];
        gemm(e, 1, true, false, fmt(e, "%ld", m), fmt(e, "%ld", p), "n", inv_n(e),
             buf_name(e, a), m, buf_name(e, b), p, lit_str(e, 0), buf_name(e, y), p);
        return;
    }
    if (x->op == OP_MATMUL && info(e, x)->mode[e->f] == NODE_VIRTUAL) {
        comment(e, 1, equation(e, y));
        matmul(e, y, x, true, false);
        return;
    }
    if (op_info[x->op].kind == OPK_KERNEL && info(e, x)->mode[e->f] == NODE_VIRTUAL) {
        step_kernel(e, y, x, true);
        return;
    }
    Ctx c;
    memset(&c, 0, sizeof c);
    c.mode = IX_NESTED;
    c.batched = true;
    c.size = size;
    c.depth = 3;
    char *pre = NULL, *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, &pre, &npre, &notes, &nnotes);
    Ex v = render(e, &c, x, false);
    const char *dest = buf_name(e, y);
    close_ctx(e, &c, &notes, 1);
    comment(e, 1, equation(e, y));
    if (size == 1) {
        line(e, 1, "{");
        line(e, 2, "%s acc = %s;", e->real, lit_str(e, 0));
        line(e, 2, "for (size_t s = 0; s < (size_t)n; s++) {");
        fputs(pre ? pre : "", e->out);
        line(e, 3, "acc += %s;", v.s);
        line(e, 2, "}");
        line(e, 2, "%s[0] = acc / (%s)n;", dest, e->real);
        line(e, 1, "}");
    } else {
        line(e, 1, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, 2, "%s[j] = %s;", dest, lit_str(e, 0));
        line(e, 1, "for (size_t s = 0; s < (size_t)n; s++) {");
        line(e, 2, "for (size_t j = 0; j < %ld; j++) {", size);
        fputs(pre ? pre : "", e->out);
        line(e, 3, "%s[j] += %s;", dest, v.s);
        line(e, 2, "}");
        line(e, 1, "}");
        line(e, 1, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, 2, "%s[j] /= (%s)n;", dest, e->real);
    }
    free(pre);
    free(notes);
}

/* ---------------------------------------------------------------- kernels */

/* The runtime kernel of an operation in the chosen precision:
 * "bp_conv2d" -> "bp_conv2d_f". */
static const char *kernel_fn(Emit *e, Op op)
{
    return fmt(e, "%s_%s", op_info[op].c_fn, e->dbl ? "d" : "f");
}

/* Where the scratch of y's step lies (shared workspace). */
static const char *scratch_ptr(Emit *e, const Node *y)
{
    const Buffer *b = &info(e, y)->scratch[e->f];
    if (b->pool != POOL_SHARED)
        die("a kernel step without scratch");
    e->ws_direct = true;
    const char *base = e->p->ws_batched ? fmt(e, "wsr + %ld * (size_t)n", e->p->ws_batched) : "wsr";
    return b->offset ? fmt(e, "%s + %ld", base, b->offset) : base;
}

/* The shape of a convolution, as the runtime's bp_conv2d_shape. */
static void conv_shape(Emit *e, int d, const Shape *x, const Shape *K, const Shape *y, int stride,
                       int pad)
{
    line(e, d, "const bp_conv2d_shape cs = {.c = %d, .h = %d, .w = %d, .o = %d, .kh = %d, .kw = %d,",
         x->dim[0], x->dim[1], x->dim[2], K->dim[0], K->dim[2], K->dim[3]);
    line(e, d, "                             .stride = %d, .pad = %d, .oh = %d, .ow = %d};", stride,
         pad, y->dim[1], y->dim[2]);
}

/* The operands of a kernel call: per-sample ones (stacked n deep when the
 * call runs over the batch) and shared ones. When every per-sample operand
 * is batched and every shared one is not, one call runs over the whole
 * batch; otherwise one call per sample. */
typedef struct {
    Node *node;
    bool per_sample;
} KArg;

static bool one_call(const KArg *args, int nargs, bool out_batched)
{
    for (int i = 0; i < nargs; i++) {
        if (!args[i].node)
            continue;
        if (args[i].per_sample ? args[i].node->batched != out_batched : args[i].node->batched)
            return false;
    }
    return true;
}

/* A kernel operand's pointer: its buffer, offset to sample s in a
 * per-sample loop. */
static const char *karg(Emit *e, Node *n, bool loop)
{
    if (!n)
        return "NULL";
    const char *b = buf_name(e, n);
    return loop && n->batched ? fmt(e, "%s + s * %ld", b, shape_size(n->shape)) : b;
}

/* y = a kernel of the runtime (convolution or pooling), or, with `mean`,
 * y = batch_mean(v) of a convolution's kernel or bias gradient v: one
 * call with alpha = 1/n, beta = 0, summing the samples' gradients. */
static void step_kernel(Emit *e, Node *y, Node *v, bool mean)
{
    const char *fnname = kernel_fn(e, v->op);
    Node *a = v->in[0], *b = v->nin > 1 ? v->in[1] : NULL, *c = v->nin > 2 ? v->in[2] : NULL;
    KArg args[3] = {{a, true}, {b, false}, {c, false}};
    const Shape *ys = &v->shape;
    bool out_batched = mean ? true : y->batched;
    bool conv = v->op == OP_CONV2D || v->op == OP_CONV2D_GRAD_INPUT ||
                v->op == OP_CONV2D_GRAD_KERNEL || v->op == OP_CONV2D_GRAD_BIAS;
    comment(e, 1, equation(e, y));
    if (conv)
        line(e, 1, "{");
    switch (v->op) {
    case OP_CONV2D:
        conv_shape(e, 2, &a->shape, &b->shape, ys, v->attr[0], v->attr[1]);
        break;
    case OP_CONV2D_GRAD_INPUT:   /* dy [o,oh,ow], K -> dx [c,h,w] */
        conv_shape(e, 2, ys, &b->shape, &a->shape, v->attr[0], v->attr[1]);
        break;
    case OP_CONV2D_GRAD_KERNEL:  /* dy, x [c,h,w] -> dK [o,c,kh,kw] */
        args[1].per_sample = true;
        conv_shape(e, 2, &b->shape, ys, &a->shape, v->attr[0], v->attr[1]);
        break;
    case OP_CONV2D_GRAD_BIAS: {  /* dy [o,oh,ow] -> db [o] */
        const Shape *dy = &a->shape;
        line(e, 2, "const bp_conv2d_shape cs = {.c = 1, .h = %d, .w = %d, .o = %d, .kh = 1, .kw = 1,",
             dy->dim[1], dy->dim[2], dy->dim[0]);
        line(e, 2, "                             .stride = 1, .pad = 0, .oh = %d, .ow = %d};",
             dy->dim[1], dy->dim[2]);
        break;
    }
    case OP_MAXPOOL2D_GRAD:
        args[1].per_sample = true;
        break;
    default:
        break;
    }
    bool once = one_call(args, 3, out_batched);
    /* a per-sample gradient of a shared kernel or bias is a sum over one
     * sample: the loop's own call with n = 1 */
    if (!mean && (v->op == OP_CONV2D_GRAD_KERNEL || v->op == OP_CONV2D_GRAD_BIAS) && y->batched)
        once = false;
    int d = conv ? 2 : 1;
    if (!once) {
        line(e, d, "for (size_t s = 0; s < (size_t)n; s++) {");
        d++;
    }
    const char *count = once && out_batched ? "n" : "1";
    const char *out = buf_name(e, y);
    if (!once && y->batched)
        out = fmt(e, "%s + s * %ld", out, shape_size(y->shape));
    const char *A = karg(e, a, !once), *B = karg(e, b, !once), *C = karg(e, c, !once);
    const char *one = lit_str(e, 1), *zero = lit_str(e, 0);
    const char *alpha = mean ? inv_n(e) : one;
    const char *beta = mean && !once ? fmt(e, "s == 0 ? %s : %s", zero, one) : zero;
    if (mean && !once)
        alpha = inv_n(e);
    int k = v->attr[0];
    switch (v->op) {
    case OP_CONV2D:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s, %s);", fnname, count, A, B, C, out, scratch_ptr(e, y));
        break;
    case OP_CONV2D_GRAD_INPUT:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s);", fnname, count, A, B, out, scratch_ptr(e, y));
        break;
    case OP_CONV2D_GRAD_KERNEL:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s, %s, %s);", fnname, count, A, B, alpha, beta, out,
             scratch_ptr(e, y));
        break;
    case OP_CONV2D_GRAD_BIAS:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s);", fnname, count, A, alpha, beta, out);
        break;
    case OP_MAXPOOL2D:
    case OP_AVGPOOL2D:
        line(e, d, "%s(%s, %d, %d, %d, %d, %s, %s);", fnname, count, a->shape.dim[0],
             a->shape.dim[1], a->shape.dim[2], k, A, out);
        break;
    case OP_MAXPOOL2D_GRAD:     /* x, dy -> dx */
        line(e, d, "%s(%s, %d, %d, %d, %d, %s, %s, %s);", fnname, count, a->shape.dim[0],
             a->shape.dim[1], a->shape.dim[2], k, A, B, out);
        break;
    case OP_AVGPOOL2D_GRAD:     /* dy -> dx [c, h, w] */
        line(e, d, "%s(%s, %d, %d, %d, %d, %s, %s);", fnname, count, ys->dim[0], ys->dim[1],
             ys->dim[2], k, A, out);
        break;
    default:
        die("not a kernel");
    }
    if (!once)
        line(e, d - 1, "}");
    if (conv)
        line(e, 1, "}");
}

void emit_step(Emit *e, Node *y)
{
    switch (op_info[y->op].kind) {
    case OPK_LEAF:
    case OPK_ELEMENTWISE: {
        Node *bias = NULL, *mm = bias_gemm_of(e, y, &bias);
        if (mm)
            step_bias_gemm(e, y, mm, bias);
        else
            step_elementwise(e, y);
        break;
    }
    case OPK_LINALG:
        if (y->op == OP_MATMUL)
            step_matmul(e, y);
        else if (y->op == OP_TRANSPOSE)
            step_transpose(e, y);
        else
            step_outer(e, y);
        break;
    case OPK_REDUCE:
        if (y->op == OP_SUM)
            step_sum(e, y);
        else
            step_vector(e, y);
        break;
    case OPK_VECTOR:
        step_vector(e, y);
        break;
    case OPK_KERNEL:
        step_kernel(e, y, y, false);
        break;
    case OPK_BATCH:
        step_batch_mean(e, y);
        break;
    }
}

/* ---------------------------------------------------------------- epilogues */

/* dst[0 .. rows·size) = src (replicated over rows when src is shared),
 * divided by n when `per_n`; dst is base + offset, base an expression of
 * type real *. */
static void copy_out(Emit *e, int d, const char *base, long offset, Node *src, long size,
                     bool batched_dst, bool per_n)
{
    const char *count = batched_dst ? batch_count(e, size) : fmt(e, "%ld", size);
    const char *dst = offset ? fmt(e, "%s + %ld", base, offset) : base;
    const char *at_i = offset ? fmt(e, "%s[%ld + i]", base, offset) : fmt(e, "%s[i]", base);
    if (src->op == OP_CONST && src->value == 0) {
        line(e, d, "memset(%s, 0, %s * sizeof(%s));", dst, count, e->real);
        return;
    }
    const char *div = per_n ? fmt(e, " / (%s)n", e->real) : "";
    if (src->op == OP_CONST) {
        line(e, d, "for (size_t i = 0; i < %s; i++)", count);
        line(e, d + 1, "%s = %s%s;", at_i, lit_str(e, src->value), div);
        return;
    }
    long ssize = shape_size(src->shape);
    const char *b = buf_name(e, src);
    if (!per_n && src->batched == batched_dst && ssize == size) {
        line(e, d, "memcpy(%s, %s, %s * sizeof(%s));", dst, b, count, e->real);
    } else if (!per_n && !src->batched && batched_dst && ssize == size) {
        line(e, d, "for (size_t s = 0; s < (size_t)n; s++)");
        line(e, d + 1, "memcpy(%s + s * %ld, %s, %ld * sizeof(%s));", dst, size, b, size, e->real);
    } else if (src->batched == batched_dst && ssize == size) {
        line(e, d, "for (size_t i = 0; i < %s; i++)", count);
        line(e, d + 1, "%s = %s[i]%s;", at_i, b, div);
    } else if (batched_dst) {
        /* a shared value, or a scalar broadcast, to every row */
        line(e, d, "for (size_t s = 0; s < (size_t)n; s++)");
        line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, d + 2, "%s[%ss * %ld + j] = %s%s;", base, offset ? fmt(e, "%ld + ", offset) : "",
             size, elem(e, src, "s", ssize == 1 ? "0" : "j").s, div);
    } else {
        line(e, d, "for (size_t i = 0; i < %ld; i++)", size);
        line(e, d + 1, "%s = %s%s;", at_i, elem(e, src, "0", ssize == 1 ? "0" : "i").s, div);
    }
}

void forward_return(Emit *e)
{
    Node *L = e->g->loss;
    const char *name = e->m->loss ? e->m->loss->name : "loss";
    if (!L->batched) {
        comment(e, 1, comment_text(e, fmt(e, "the loss %s, shared by every sample", name)));
        line(e, 1, "return %s;", elem(e, L, "0", "0").s);
        return;
    }
    comment(e, 1, comment_text(e, fmt(e, "the batch loss: the mean of %s over the samples", name)));
    line(e, 1, "double acc = 0;");
    line(e, 1, "for (size_t s = 0; s < (size_t)n; s++)");
    line(e, 2, "acc += %s;", elem(e, L, "s", "0").s);
    line(e, 1, "return (%s)(acc / n);", e->real);
}

void backward_outputs(Emit *e)
{
    Model *m = e->m;
    const char *loss = m->loss ? m->loss->name : "L";
    long offset = 0;
    for (int i = 0; i < m->nparams; i++) {
        Node *d = e->g->grad_params[i];
        long size = shape_size(m->params[i]->shape);
        const char *what = comment_text(e, fmt(e, "d%s/d%s", loss, m->params[i]->name));
        const char *dst = offset ? fmt(e, "grad + %ld", offset) : "grad";
        if (!d) {
            comment(e, 1, fmt(e, "%s: frozen, no gradient", what));
            line(e, 1, "memset(%s, 0, %ld * sizeof(%s));", dst, size, e->real);
        } else if (d->op != OP_CONST && info(e, d)->mode[PF_BACKWARD] == NODE_BUFFER &&
                   info(e, d)->buf[PF_BACKWARD].pool == POOL_GRAD &&
                   info(e, d)->buf[PF_BACKWARD].offset == offset) {
            /* computed in place */
        } else {
            comment(e, 1, d->op == OP_CONST && d->value == 0 ? fmt(e, "%s = 0", what) : what);
            copy_out(e, 1, "grad", offset, d, size, false, false);
        }
        offset += size;
    }
    for (int k = 0; k < m->ninputs; k++) {
        Node *d = e->g->grad_inputs[k];
        if (!d)
            continue;
        comment(e, 1, comment_text(e, fmt(e, "d%s/d%s, row s scaled by 1/n (the batch mean)", loss,
                                          m->inputs[k]->name)));
        line(e, 1, "if (grad_inputs != NULL && grad_inputs[%d] != NULL) {", k);
        copy_out(e, 2, fmt(e, "grad_inputs[%d]", k), 0, d, shape_size(m->inputs[k]->shape), true,
                 true);
        line(e, 1, "}");
    }
}

void predict_outputs(Emit *e)
{
    Model *m = e->m;
    for (int j = 0; j < m->noutputs; j++) {
        comment(e, 1, comment_text(e, fmt(e, "output %s", m->outputs[j]->name)));
        copy_out(e, 1, fmt(e, "outputs[%d]", j), 0, e->g->output_nodes[j],
                 shape_size(m->outputs[j]->shape), true, false);
    }
}
