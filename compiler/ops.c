/* ops.c — the one table of operations.
 *
 * op_info has one row per graph operation (the names are in ops.h): its
 * name, operand count, attributes, flags, shape rule, constant folding,
 * derivative rule and C spelling. Next to each row's functions stands the
 * math they implement. check.c, graph.c, diff.c, simplify.c, print.c,
 * lower.c and the emitter (emit/) all read this table.
 *
 * func_info has one row per .net function: its arguments (tensors,
 * integer attributes, keyword arguments), the shape rule check.c applies
 * to its arguments (and reports errors from, at the argument at fault),
 * and how graph.c builds it from graph operations. Most functions are one
 * operation; the others (mean, mse, layernorm, ...) are written with
 * them, so their derivatives come from the operations' own.
 */
#include "bpgen.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- shapes */

static const Shape BAD = {-1, {1, 1, 1, 1}};

Shape shape_of(int rank, const int *dims)
{
    Shape s = {rank, {1, 1, 1, 1}};
    for (int i = 0; i < rank && i < MAX_RANK; i++)
        s.dim[i] = dims[i];
    return s;
}

static Shape vec(int n) { return shape_of(1, (int[]){n}); }
static Shape mat(int m, int n) { return shape_of(2, (int[]){m, n}); }
static Shape rank3(int c, int h, int w) { return shape_of(3, (int[]){c, h, w}); }
static Shape rank4(int o, int c, int h, int w) { return shape_of(4, (int[]){o, c, h, w}); }
static const Shape SCALAR = {0, {1, 1, 1, 1}};

static bool same(Shape a, Shape b)
{
    if (a.rank != b.rank)
        return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[i])
            return false;
    return true;
}

const char *shape_text(Arena *a, Shape s)
{
    switch (s.rank) {
    case 0: return "scalar";
    case 1: return arena_printf(a, "[%d]", s.dim[0]);
    case 2: return arena_printf(a, "[%d, %d]", s.dim[0], s.dim[1]);
    case 3: return arena_printf(a, "[%d, %d, %d]", s.dim[0], s.dim[1], s.dim[2]);
    case 4: return arena_printf(a, "[%d, %d, %d, %d]", s.dim[0], s.dim[1], s.dim[2], s.dim[3]);
    default: return "unknown";
    }
}

/* shape_text without an arena, into one of a few static slots (messages
 * are formatted at once into ShapeError.msg). */
static const char *st(Shape s)
{
    static char slots[4][64];
    static int next;
    char *b = slots[next++ % 4];
    switch (s.rank) {
    case 0: snprintf(b, 64, "scalar"); break;
    case 1: snprintf(b, 64, "[%d]", s.dim[0]); break;
    case 2: snprintf(b, 64, "[%d, %d]", s.dim[0], s.dim[1]); break;
    case 3: snprintf(b, 64, "[%d, %d, %d]", s.dim[0], s.dim[1], s.dim[2]); break;
    default: snprintf(b, 64, "[%d, %d, %d, %d]", s.dim[0], s.dim[1], s.dim[2], s.dim[3]); break;
    }
    return b;
}

static Shape fail(ShapeError *err, int arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static Shape fail(ShapeError *err, int arg, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->arg = arg;
    }
    return BAD;
}

/* ---------------------------------------------------------------- shape rules */
/* Messages read after the function's name: "'max' needs ...". */

/* any shape -> the same shape */
static Shape sh_same(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr, (void)err;
    return in[0];
}

/* equal shapes, or either a scalar -> the larger */
static Shape sh_broadcast(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr;
    if (same(in[0], in[1]) || in[1].rank == 0)
        return in[0];
    if (in[0].rank == 0)
        return in[1];
    return fail(err, -1, "needs arguments of the same shape, or a scalar, but got %s and %s",
                st(in[0]), st(in[1]));
}

/* base any shape, exponent a scalar */
static Shape sh_pow(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr;
    if (in[1].rank != 0)
        return fail(err, 1, "needs a scalar exponent, but it has shape %s", st(in[1]));
    return in[0];
}

/* [m,n]·[n]→[m], [m,n]·[n,p]→[m,p], [n]·[n,p]→[p], [n]·[n]→scalar */
static Shape sh_matmul(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr;
    Shape a = in[0], b = in[1];
    if (a.rank == 0 || b.rank == 0)
        return fail(err, -1, "'·' needs vectors or matrices; use '*' to scale");
    if (a.rank > 2 || b.rank > 2)
        return fail(err, a.rank > 2 ? 0 : 1, "'·' takes vectors and matrices, not %s",
                    st(a.rank > 2 ? a : b));
    int inner_a = a.rank == 1 ? a.dim[0] : a.dim[1];
    if (inner_a != b.dim[0])
        return fail(err, -1, "inner dimensions %d and %d differ", inner_a, b.dim[0]);
    if (a.rank == 1 && b.rank == 1)
        return SCALAR;
    if (a.rank == 2 && b.rank == 1)
        return vec(a.dim[0]);
    if (a.rank == 1)
        return vec(b.dim[1]);
    return mat(a.dim[0], b.dim[1]);
}

static Shape sh_transpose(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr;
    if (in[0].rank != 2)
        return fail(err, -1, "needs a matrix, but got %s", st(in[0]));
    return mat(in[0].dim[1], in[0].dim[0]);
}

static Shape sh_outer(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr;
    if (in[0].rank != 1 || in[1].rank != 1)
        return fail(err, -1, "needs two vectors, but got %s and %s", st(in[0]), st(in[1]));
    return mat(in[0].dim[0], in[1].dim[0]);
}

/* any shape -> scalar */
static Shape sh_reduce(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)in, (void)nin, (void)attr, (void)err;
    return SCALAR;
}

/* attributes d0..d3 (0 past the rank) -> that shape */
static Shape sh_reshape(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin;
    int rank = 0;
    while (rank < MAX_ATTRS && attr[rank] > 0)
        rank++;
    Shape s = shape_of(rank, attr);
    long size = 1, from = 1;
    for (int i = 0; i < rank; i++)
        size *= s.dim[i];
    for (int i = 0; i < in[0].rank; i++)
        from *= in[0].dim[i];
    if (size != from)
        return fail(err, 0, "cannot reshape %s to %s", st(in[0]), st(s));
    return s;
}

/* A [c, h, w] argument, or a message at argument k. */
static bool image(const Shape *in, int k, const char *what, ShapeError *err)
{
    if (in[k].rank == 3)
        return true;
    fail(err, k, "needs %s of shape [c, h, w], but got %s", what, st(in[k]));
    return false;
}

/* conv2d(x [c,h,w], K [o,c,kh,kw], b [o]; stride, pad) -> [o, oh, ow] */
static Shape sh_conv2d(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    int stride = attr[0], pad = attr[1];
    if (!image(in, 0, "an input", err))
        return BAD;
    Shape x = in[0], K = in[1];
    if (K.rank != 4)
        return fail(err, 1, "needs a kernel of shape [o, c, kh, kw], but got %s", st(K));
    if (K.dim[1] != x.dim[0])
        return fail(err, 1, "needs a kernel with as many input channels as its input: the "
                    "kernel %s has %d, the input %s has %d", st(K), K.dim[1], st(x), x.dim[0]);
    long ph = (long)x.dim[1] + 2L * pad, pw = (long)x.dim[2] + 2L * pad;
    if (K.dim[2] > ph || K.dim[3] > pw)
        return fail(err, 1, "needs a kernel that fits its %sinput (%ldx%ld), but it is %dx%d",
                    pad ? "padded " : "", ph, pw, K.dim[2], K.dim[3]);
    if (nin > 2 && !(in[2].rank == 1 && in[2].dim[0] == K.dim[0]))
        return fail(err, 2, "needs a bias of shape [%d] (one per output channel), but got %s",
                    K.dim[0], st(in[2]));
    if (stride < 1)
        return fail(err, -1, "needs a positive stride");
    if ((ph - K.dim[2]) / stride + 1 > 2147483647L || (pw - K.dim[3]) / stride + 1 > 2147483647L)
        return fail(err, -1, "gives a result of more than 2147483647 elements");
    return rank3(K.dim[0], (int)((ph - K.dim[2]) / stride + 1), (int)((pw - K.dim[3]) / stride + 1));
}

/* dx = conv2d_grad_input(dy [o,oh,ow], K [o,c,kh,kw]; stride, pad, h, w) -> [c, h, w] */
static Shape sh_conv2d_grad_input(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)err;
    return rank3(in[1].dim[1], attr[2], attr[3]);
}

/* dK = conv2d_grad_kernel(dy [o,oh,ow], x [c,h,w]; stride, pad, kh, kw) -> [o, c, kh, kw] */
static Shape sh_conv2d_grad_kernel(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)err;
    return rank4(in[0].dim[0], in[1].dim[0], attr[2], attr[3]);
}

/* db = conv2d_grad_bias(dy [o,oh,ow]) -> [o] */
static Shape sh_conv2d_grad_bias(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr, (void)err;
    return vec(in[0].dim[0]);
}

/* maxpool2d / avgpool2d(x [c,h,w]; k) -> [c, h/k, w/k] */
static Shape sh_pool(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin;
    int k = attr[0];
    if (!image(in, 0, "an input", err))
        return BAD;
    if (k < 1)
        return fail(err, 1, "needs a positive window");
    if (k > in[0].dim[1] || k > in[0].dim[2])
        return fail(err, 1, "needs a window that fits its input (%dx%d), but it is %dx%d",
                    in[0].dim[1], in[0].dim[2], k, k);
    return rank3(in[0].dim[0], in[0].dim[1] / k, in[0].dim[2] / k);
}

/* maxpool2d_grad(x, dy; k) -> x's shape */
static Shape sh_maxpool_grad(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr, (void)err;
    return in[0];
}

/* avgpool2d_grad(dy [c,oh,ow]; k, h, w) -> [c, h, w] */
static Shape sh_avgpool_grad(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)err;
    return rank3(in[0].dim[0], attr[1], attr[2]);
}

/* ---------------------------------------------------------------- folding */

static double sigmoid(double x)
{
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

static double f_add(double x, double y) { return x + y; }
static double f_mul(double x, double y) { return x * y; }
static double f_pow(double x, double y) { return pow(x, y); }
static double f_max(double x, double y) { return x >= y ? x : y; }
static double f_min(double x, double y) { return x <= y ? x : y; }
static double f_exp(double x, double y) { (void)y; return exp(x); }
static double f_log(double x, double y) { (void)y; return x > 0 ? log(x) : NAN; }
static double f_abs(double x, double y) { (void)y; return fabs(x); }
static double f_sin(double x, double y) { (void)y; return sin(x); }
static double f_cos(double x, double y) { (void)y; return cos(x); }
static double f_tanh(double x, double y) { (void)y; return tanh(x); }
static double f_sigmoid(double x, double y) { (void)y; return sigmoid(x); }
static double f_relu(double x, double y) { (void)y; return x > 0 ? x : 0; }
static double f_softplus(double x, double y)
{
    (void)y;
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}
static double f_step(double x, double y) { (void)y; return x > 0 ? 1 : 0; }
static double f_sign(double x, double y) { (void)y; return (x > 0) - (x < 0); }

/* ---------------------------------------------------------------- derivatives */
/* Each rule hands the operands of y = op(a, b, ...) their share of the
 * adjoint dy; each states its math. */

static Node *add(Graph *g, Node *a, Node *b) { return node_new(g, OP_ADD, a, b); }
static Node *mul(Graph *g, Node *a, Node *b) { return node_new(g, OP_MUL, a, b); }
static Node *neg(Graph *g, Node *a) { return mul(g, node_scalar(g, -1), a); }
static Node *one_minus(Graph *g, Node *a) { return add(g, node_scalar(g, 1), neg(g, a)); }
static Node *op1(Graph *g, Op op, Node *a) { return node_new(g, op, a, NULL); }
static Node *power(Graph *g, Node *a, double p) { return node_new(g, OP_POW, a, node_scalar(g, p)); }

/* da = dy, db = dy */
static void d_add(Diff *d, Graph *g, Node *y, Node *dy)
{
    (void)g;
    diff_give(d, y->in[0], dy);
    diff_give(d, y->in[1], dy);
}

/* da = dy b, db = dy a */
static void d_mul(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], mul(g, dy, y->in[1]));
    diff_give(d, y->in[1], mul(g, dy, y->in[0]));
}

/* a^(p-1) for y = a^p, p a constant, from y where that is exact and
 * cheaper than from a (generated code reads the stored y; the first two
 * spare a sqrt, the others a division or a pow): p = 0.5: 1 / y (sqrt'),
 * p = -0.5: y^3, p = -1: y^2, other p < 0: y / a. Each has the old
 * form's value at a = 0 (+inf) and a = +inf (0). Not for 0 < p < 1 (y / a
 * would be 0 / 0 at a = 0, not +inf) nor p > 1 (a^(p-1) is finite there,
 * y / a is not). NULL where a^(p-1) stays. */
static Node *pow_less_one_from_output(Graph *g, Node *y, double p)
{
    if (p == 0.5)
        return node_pow_of(g, y, node_scalar(g, -1));
    if (p == -0.5)
        return node_pow_of(g, y, node_scalar(g, 3));
    if (p == -1)
        return node_pow_of(g, y, node_scalar(g, 2));
    if (p < 0)
        return mul(g, y, power(g, y->in[0], -1));
    return NULL;
}

/* da = dy p a^(p-1), dp = dy y log a; generated code takes a^(p-1) from
 * y where pow_less_one_from_output() can */
static void d_pow(Diff *d, Graph *g, Node *y, Node *dy)
{
    Node *a = y->in[0], *p = y->in[1];
    if (diff_needs(d, a)) {
        Node *less_one = NULL;
        if (diff_from_outputs(d) && p->op == OP_CONST)
            less_one = pow_less_one_from_output(g, y, p->value);
        if (!less_one)
            less_one = node_new(g, OP_POW, a, add(g, p, node_scalar(g, -1)));
        diff_give(d, a, mul(g, dy, mul(g, p, less_one)));
    }
    if (diff_needs(d, p))
        diff_give(d, p, mul(g, dy, mul(g, y, op1(g, OP_LOG, a))));
}

/* ties go to a: da = dy (1 - step(b - a)), db = dy step(b - a) */
static void d_max(Diff *d, Graph *g, Node *y, Node *dy)
{
    Node *to_b = op1(g, OP_STEP, add(g, y->in[1], neg(g, y->in[0])));
    diff_give(d, y->in[0], mul(g, dy, one_minus(g, to_b)));
    diff_give(d, y->in[1], mul(g, dy, to_b));
}

/* ties go to a: da = dy (1 - step(a - b)), db = dy step(a - b) */
static void d_min(Diff *d, Graph *g, Node *y, Node *dy)
{
    Node *to_b = op1(g, OP_STEP, add(g, y->in[0], neg(g, y->in[1])));
    diff_give(d, y->in[0], mul(g, dy, one_minus(g, to_b)));
    diff_give(d, y->in[1], mul(g, dy, to_b));
}

/* da = dy exp(a) = dy y */
static void d_exp(Diff *d, Graph *g, Node *y, Node *dy) { diff_give(d, y->in[0], mul(g, dy, y)); }

/* da = dy / a */
static void d_log(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], mul(g, dy, power(g, y->in[0], -1)));
}

/* da = dy sign(a); abs'(0) = 0 */
static void d_abs(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], mul(g, dy, op1(g, OP_SIGN, y->in[0])));
}

/* da = dy cos(a) */
static void d_sin(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], mul(g, dy, op1(g, OP_COS, y->in[0])));
}

/* da = -dy sin(a) */
static void d_cos(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], neg(g, mul(g, dy, op1(g, OP_SIN, y->in[0]))));
}

/* da = dy (1 - y^2) */
static void d_tanh(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], mul(g, dy, one_minus(g, power(g, y, 2))));
}

/* da = dy y (1 - y) */
static void d_sigmoid(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], mul(g, dy, mul(g, y, one_minus(g, y))));
}

/* da = dy step(a); relu'(0) = 0; step(a) = step(y) */
static void d_relu(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], mul(g, dy, op1(g, OP_STEP, diff_from_outputs(d) ? y : y->in[0])));
}

/* da = dy sigmoid(a) */
static void d_softplus(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], mul(g, dy, op1(g, OP_SIGMOID, y->in[0])));
}

/* piecewise constant: no gradient (step, sign) */
static void d_none(Diff *d, Graph *g, Node *y, Node *dy) { (void)d, (void)g, (void)y, (void)dy; }

/* da = sum(dy) */
static void d_broadcast(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], op1(g, OP_SUM, dy));
}

/* da = dy, in a's shape */
static void d_reshape(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], node_reshape(g, dy, y->in[0]->shape));
}

static void d_matmul(Diff *d, Graph *g, Node *y, Node *dy)
{
    Node *a = y->in[0], *b = y->in[1];
    if (a->shape.rank == 2 && b->shape.rank == 1) {
        /* y = A x:  dA = outer(dy, x),  dx = Aᵀ dy */
        diff_give(d, a, node_new(g, OP_OUTER, dy, b));
        diff_give(d, b, node_new(g, OP_MATMUL, op1(g, OP_TRANSPOSE, a), dy));
    } else if (a->shape.rank == 2) {
        /* Y = A B:  dA = dY Bᵀ,  dB = Aᵀ dY */
        diff_give(d, a, node_new(g, OP_MATMUL, dy, op1(g, OP_TRANSPOSE, b)));
        diff_give(d, b, node_new(g, OP_MATMUL, op1(g, OP_TRANSPOSE, a), dy));
    } else if (b->shape.rank == 2) {
        /* y = x B:  dx = B dy,  dB = outer(x, dy) */
        diff_give(d, a, node_new(g, OP_MATMUL, b, dy));
        diff_give(d, b, node_new(g, OP_OUTER, a, dy));
    } else {
        /* y = x · z:  dx = dy z,  dz = dy x */
        diff_give(d, a, mul(g, dy, b));
        diff_give(d, b, mul(g, dy, a));
    }
}

/* dA = dYᵀ */
static void d_transpose(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], op1(g, OP_TRANSPOSE, dy));
}

/* Y = a bᵀ:  da = dY b,  db = dYᵀ a */
static void d_outer(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], node_new(g, OP_MATMUL, dy, y->in[1]));
    diff_give(d, y->in[1], node_new(g, OP_MATMUL, op1(g, OP_TRANSPOSE, dy), y->in[0]));
}

/* da = dy, repeated over a */
static void d_sum(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], node_broadcast(g, dy, y->in[0]->shape));
}

/* da = dy softmax(a); softmax(a) = exp(a - y), one elementwise exp in
 * place of softmax's own max, sum and division */
static void d_logsumexp(Diff *d, Graph *g, Node *y, Node *dy)
{
    Node *a = y->in[0];
    Node *p = diff_from_outputs(d)
                  ? op1(g, OP_EXP, add(g, a, neg(g, node_broadcast(g, y, a->shape))))
                  : op1(g, OP_SOFTMAX, a);
    diff_give(d, a, mul(g, dy, p));
}

/* da = y ⊙ (dy - sum(dy ⊙ y)) */
static void d_softmax(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], mul(g, y, add(g, dy, neg(g, op1(g, OP_SUM, mul(g, dy, y))))));
}

/* da = dy - softmax(a) sum(dy); softmax(a) = exp(y) */
static void d_log_softmax(Diff *d, Graph *g, Node *y, Node *dy)
{
    Node *p = diff_from_outputs(d) ? op1(g, OP_EXP, y) : op1(g, OP_SOFTMAX, y->in[0]);
    diff_give(d, y->in[0], add(g, dy, neg(g, mul(g, p, op1(g, OP_SUM, dy)))));
}

/* y[p,i,j] = b[p] + Σ_{q,u,v} K[p,q,u,v] x[q, i·s+u-pad, j·s+v-pad]:
 *   dx[q,r,t] = Σ_{p,u,v} K[p,q,u,v] dy[p,i,j] over r = i·s+u-pad, t = j·s+v-pad
 *             (the transposed convolution: conv2d_grad_input),
 *   dK[p,q,u,v] = Σ_{i,j} dy[p,i,j] x[q, i·s+u-pad, j·s+v-pad] (conv2d_grad_kernel),
 *   db[p] = Σ_{i,j} dy[p,i,j] (conv2d_grad_bias) */
static void d_conv2d(Diff *d, Graph *g, Node *y, Node *dy)
{
    Node *x = y->in[0], *K = y->in[1];
    int s = y->attr[0], pad = y->attr[1];
    if (diff_needs(d, x))
        diff_give(d, x, node_new_n(g, OP_CONV2D_GRAD_INPUT, 2, (Node *[]){dy, K},
                                   (int[MAX_ATTRS]){s, pad, x->shape.dim[1], x->shape.dim[2]}));
    if (diff_needs(d, K))
        diff_give(d, K, node_new_n(g, OP_CONV2D_GRAD_KERNEL, 2, (Node *[]){dy, x},
                                   (int[MAX_ATTRS]){s, pad, K->shape.dim[2], K->shape.dim[3]}));
    if (y->nin > 2 && diff_needs(d, y->in[2]))
        diff_give(d, y->in[2], node_new_n(g, OP_CONV2D_GRAD_BIAS, 1, &dy, NULL));
}

/* y[c,i,j] = max of x over window (i, j): dx is dy at the first maximal
 * element of each window in row-major order, 0 elsewhere */
static void d_maxpool2d(Diff *d, Graph *g, Node *y, Node *dy)
{
    diff_give(d, y->in[0], node_new_n(g, OP_MAXPOOL2D_GRAD, 2, (Node *[]){y->in[0], dy}, y->attr));
}

/* y[c,i,j] = mean of x over window (i, j): dx[c,r,t] = dy[c, r/k, t/k] / k²
 * inside the windows, 0 in the rows and columns left over */
static void d_avgpool2d(Diff *d, Graph *g, Node *y, Node *dy)
{
    Node *x = y->in[0];
    diff_give(d, x, node_new_n(g, OP_AVGPOOL2D_GRAD, 1, &dy,
                               (int[MAX_ATTRS]){y->attr[0], x->shape.dim[1], x->shape.dim[2]}));
}

/* each sample gets the shared adjoint */
static void d_batch_mean(Diff *d, Graph *g, Node *y, Node *dy)
{
    (void)g;
    diff_give(d, y->in[0], dy);
}

/* ---------------------------------------------------------------- costs */
/* The floating-point operations of one sample of y = op(...), as
 * --report counts them: every arithmetic operation, comparison and
 * function evaluation (exp, tanh, ...) is one; a multiply-add is two;
 * scalings by 1/n are not counted. */

static double size_of(const Node *x) { return (double)shape_size(x->shape); }

/* moving values only (reshape, transpose, broadcast), or a leaf */
static double c_none(const Node *y) { (void)y; return 0; }

/* one operation per element of y (every elementwise operation, outer) */
static double c_each(const Node *y) { return size_of(y); }

/* one per element of the operand: sum, conv2d_grad_bias, and what each
 * sample adds to a batch mean */
static double c_operand(const Node *y) { return size_of(y->in[0]); }

/* y = A · B: a multiply and an add for each of the k terms of each
 * element of y, k the inner dimension */
static double c_matmul(const Node *y)
{
    const Shape *a = &y->in[0]->shape;
    double k = a->rank == 1 ? a->dim[0] : a->dim[1];
    return 2 * size_of(y) * k;
}

/* logsumexp(x) = m + log Σ exp(x - m), m = max x: a comparison, a
 * subtraction, an exp and an add per element, then a log and an add */
static double c_logsumexp(const Node *y) { return 4 * size_of(y->in[0]) + 2; }

/* softmax: logsumexp's sum, then a division per element */
static double c_softmax(const Node *y) { return 5 * size_of(y->in[0]); }

/* log_softmax: logsumexp's sum, a log, then two subtractions per element */
static double c_log_softmax(const Node *y) { return 6 * size_of(y->in[0]) + 1; }

/* conv2d: a multiply-add per kernel element per output element, and the
 * bias's add */
static double c_conv2d(const Node *y)
{
    const Shape *K = &y->in[1]->shape;
    double taps = (double)K->dim[1] * K->dim[2] * K->dim[3];
    return size_of(y) * (2 * taps + (y->nin > 2 ? 1 : 0));
}

/* conv2d_grad_input(dy, K), conv2d_grad_kernel(dy, x): the convolution's
 * multiply-adds, each term once */
static double c_conv2d_grad_input(const Node *y)
{
    const Shape *K = &y->in[1]->shape;
    return 2 * size_of(y->in[0]) * K->dim[1] * K->dim[2] * K->dim[3];
}

static double c_conv2d_grad_kernel(const Node *y)
{
    const Shape *K = &y->shape;
    return 2 * size_of(y->in[0]) * K->dim[1] * K->dim[2] * K->dim[3];
}

/* pooling with window k: a comparison (max) or an add (avg) per window
 * element per output, avg's division once per output; maxpool's gradient
 * finds each window's maximum again; avgpool's divides each dx by k² */
static double c_maxpool2d(const Node *y) { return size_of(y) * y->attr[0] * y->attr[0]; }
static double c_avgpool2d(const Node *y) { return size_of(y) * (y->attr[0] * y->attr[0] + 1); }
static double c_maxpool2d_grad(const Node *y)
{
    return size_of(y->in[1]) * y->attr[0] * y->attr[0];
}

/* ---------------------------------------------------------------- the table */

#define EW OPK_ELEMENTWISE
#define ARGS(a, b) .min_in = a, .max_in = b

const OpInfo op_info[OP__COUNT] = {
    [OP_CONST] = {"const", ARGS(0, 0), OPK_LEAF, 0, {0}, NULL, NULL, d_none, NULL, c_none},
    [OP_INPUT] = {"input", ARGS(0, 0), OPK_LEAF, 0, {0}, NULL, NULL, d_none, NULL, c_none},
    [OP_PARAM] = {"param", ARGS(0, 0), OPK_LEAF, 0, {0}, NULL, NULL, d_none, NULL, c_none},
    [OP_ADD] = {"+", ARGS(2, 2), EW, OPF_COMMUTATIVE | OPF_FOLDS, {0}, sh_broadcast, f_add,
                d_add, NULL, c_each},
    [OP_MUL] = {"*", ARGS(2, 2), EW, OPF_COMMUTATIVE | OPF_FOLDS, {0}, sh_broadcast, f_mul,
                d_mul, NULL, c_each},
    [OP_POW] = {"^", ARGS(2, 2), EW, OPF_FOLDS, {0}, sh_pow, f_pow, d_pow, NULL, c_each},
    [OP_MAX] = {"max", ARGS(2, 2), EW, OPF_FOLDS, {0}, sh_broadcast, f_max, d_max, NULL, c_each},
    [OP_MIN] = {"min", ARGS(2, 2), EW, OPF_FOLDS, {0}, sh_broadcast, f_min, d_min, NULL, c_each},
    /* exp, log, tanh, sigmoid: the runtime's fast math (bp.h), no errno;
     * abs, sin, cos: libm */
    [OP_EXP] = {"exp", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_exp, d_exp, "bp_exp",
                c_each, "bp_vexp"},
    [OP_LOG] = {"log", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_log, d_log, "bp_log",
                c_each, "bp_vlog"},
    [OP_ABS] = {"abs", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_abs, d_abs, "fabs", c_each},
    [OP_SIN] = {"sin", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_sin, d_sin, "sin", c_each},
    [OP_COS] = {"cos", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_cos, d_cos, "cos", c_each},
    [OP_TANH] = {"tanh", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_tanh, d_tanh, "bp_tanh",
                 c_each, "bp_vtanh"},
    [OP_SIGMOID] = {"sigmoid", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_sigmoid,
                    d_sigmoid, "bp_sigmoid", c_each, "bp_vsigmoid"},
    [OP_RELU] = {"relu", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_relu, d_relu, NULL, c_each},
    [OP_SOFTPLUS] = {"softplus", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_softplus,
                     d_softplus, NULL, c_each},
    [OP_STEP] = {"step", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_step, d_none, NULL, c_each},
    [OP_SIGN] = {"sign", ARGS(1, 1), EW, OPF_FOLDS, {0}, sh_same, f_sign, d_none, NULL, c_each},
    /* a scalar repeated to node->shape (adjoint of sum, of a broadcast) */
    [OP_BROADCAST] = {"broadcast", ARGS(1, 1), EW, 0, {0}, NULL, NULL, d_broadcast, NULL, c_none},
    /* the same elements in another shape: flatten(x), and its adjoint */
    [OP_RESHAPE] = {"reshape", ARGS(1, 1), EW, 0, {"d0", "d1", "d2", "d3"}, sh_reshape, NULL,
                    d_reshape, NULL, c_none},
    [OP_MATMUL] = {"·", ARGS(2, 2), OPK_LINALG, OPF_IN_MEMORY, {0}, sh_matmul, NULL,
                   d_matmul, NULL, c_matmul},
    [OP_TRANSPOSE] = {"transpose", ARGS(1, 1), OPK_LINALG, 0, {0}, sh_transpose, NULL,
                      d_transpose, NULL, c_none},
    [OP_OUTER] = {"outer", ARGS(2, 2), OPK_LINALG, 0, {0}, sh_outer, NULL, d_outer, NULL, c_each},
    [OP_SUM] = {"sum", ARGS(1, 1), OPK_REDUCE, 0, {0}, sh_reduce, NULL, d_sum, NULL, c_operand},
    [OP_LOGSUMEXP] = {"logsumexp", ARGS(1, 1), OPK_REDUCE, 0, {0}, sh_reduce, NULL,
                      d_logsumexp, NULL, c_logsumexp},
    [OP_SOFTMAX] = {"softmax", ARGS(1, 1), OPK_VECTOR, 0, {0}, sh_same, NULL,
                    d_softmax, NULL, c_softmax},
    [OP_LOG_SOFTMAX] = {"log_softmax", ARGS(1, 1), OPK_VECTOR, 0, {0}, sh_same, NULL,
                        d_log_softmax, NULL, c_log_softmax},
    [OP_CONV2D] = {"conv2d", ARGS(2, 3), OPK_KERNEL, OPF_IN_MEMORY, {"stride", "pad"}, sh_conv2d,
                   NULL, d_conv2d, "bp_conv2d", c_conv2d},
    [OP_CONV2D_GRAD_INPUT] = {"conv2d_grad_input", ARGS(2, 2), OPK_KERNEL, OPF_IN_MEMORY,
                              {"stride", "pad", "h", "w"}, sh_conv2d_grad_input, NULL, NULL,
                              "bp_conv2d_grad_input", c_conv2d_grad_input},
    [OP_CONV2D_GRAD_KERNEL] = {"conv2d_grad_kernel", ARGS(2, 2), OPK_KERNEL, OPF_IN_MEMORY,
                               {"stride", "pad", "kh", "kw"}, sh_conv2d_grad_kernel, NULL, NULL,
                               "bp_conv2d_grad_kernel", c_conv2d_grad_kernel},
    [OP_CONV2D_GRAD_BIAS] = {"conv2d_grad_bias", ARGS(1, 1), OPK_KERNEL, OPF_IN_MEMORY, {0},
                             sh_conv2d_grad_bias, NULL, NULL, "bp_conv2d_grad_bias", c_operand},
    [OP_MAXPOOL2D] = {"maxpool2d", ARGS(1, 1), OPK_KERNEL, OPF_IN_MEMORY, {"k"}, sh_pool, NULL,
                      d_maxpool2d, "bp_maxpool2d", c_maxpool2d},
    [OP_MAXPOOL2D_GRAD] = {"maxpool2d_grad", ARGS(2, 2), OPK_KERNEL, OPF_IN_MEMORY, {"k"},
                           sh_maxpool_grad, NULL, NULL, "bp_maxpool2d_grad", c_maxpool2d_grad},
    [OP_AVGPOOL2D] = {"avgpool2d", ARGS(1, 1), OPK_KERNEL, OPF_IN_MEMORY, {"k"}, sh_pool, NULL,
                      d_avgpool2d, "bp_avgpool2d", c_avgpool2d},
    [OP_AVGPOOL2D_GRAD] = {"avgpool2d_grad", ARGS(1, 1), OPK_KERNEL, OPF_IN_MEMORY, {"k", "h", "w"},
                           sh_avgpool_grad, NULL, NULL, "bp_avgpool2d_grad", c_each},
    [OP_BATCH_MEAN] = {"batch_mean", ARGS(1, 1), OPK_BATCH, 0, {0}, sh_same, NULL,
                       d_batch_mean, NULL, c_operand},
};

/* ---------------------------------------------------------------- .net functions */

static Node *scale(Graph *g, double c, Node *x) { return mul(g, node_scalar(g, c), x); }
static Node *sub(Graph *g, Node *x, Node *y) { return add(g, x, neg(g, y)); }
static double inv_size(const Node *x)
{
    double n = 1;
    for (int i = 0; i < x->shape.rank; i++)
        n *= x->shape.dim[i];
    return 1 / n;
}

/* Functions that are one operation. */
#define ONE(name, op)                                                              \
    static Node *b_##name(Graph *g, Node *const *x, int n, const int *attr)        \
    {                                                                              \
        return node_new_n(g, op, n, x, attr);                                      \
    }
ONE(exp, OP_EXP) ONE(log, OP_LOG) ONE(abs, OP_ABS) ONE(sin, OP_SIN) ONE(cos, OP_COS)
ONE(tanh, OP_TANH) ONE(sigmoid, OP_SIGMOID) ONE(relu, OP_RELU) ONE(softplus, OP_SOFTPLUS)
ONE(step, OP_STEP) ONE(sign, OP_SIGN) ONE(max, OP_MAX) ONE(min, OP_MIN)
ONE(transpose, OP_TRANSPOSE) ONE(outer, OP_OUTER) ONE(sum, OP_SUM) ONE(logsumexp, OP_LOGSUMEXP)
ONE(softmax, OP_SOFTMAX) ONE(log_softmax, OP_LOG_SOFTMAX) ONE(conv2d, OP_CONV2D)
ONE(maxpool2d, OP_MAXPOOL2D) ONE(avgpool2d, OP_AVGPOOL2D)
#undef ONE

/* sqrt(a) = a^0.5 */
static Node *b_sqrt(Graph *g, Node *const *x, int n, const int *attr)
{
    (void)n, (void)attr;
    return power(g, x[0], 0.5);
}

/* mean(a) = sum(a) / size */
static Node *b_mean(Graph *g, Node *const *x, int n, const int *attr)
{
    (void)n, (void)attr;
    return scale(g, inv_size(x[0]), op1(g, OP_SUM, x[0]));
}

/* dot(a, b) = sum(a * b) */
static Node *b_dot(Graph *g, Node *const *x, int n, const int *attr)
{
    (void)n, (void)attr;
    return op1(g, OP_SUM, mul(g, x[0], x[1]));
}

/* mse(yhat, y) = mean((yhat - y)^2) */
static Node *b_mse(Graph *g, Node *const *x, int n, const int *attr)
{
    (void)n, (void)attr;
    return scale(g, inv_size(x[0]), op1(g, OP_SUM, power(g, sub(g, x[0], x[1]), 2)));
}

/* cross_entropy(p, y) = -sum(y * log(p)); log(softmax z) becomes log_softmax z */
static Node *b_cross_entropy(Graph *g, Node *const *x, int n, const int *attr)
{
    (void)n, (void)attr;
    return neg(g, op1(g, OP_SUM, mul(g, x[1], op1(g, OP_LOG, x[0]))));
}

/* softmax_cross_entropy(z, y) = -sum(y * log_softmax(z)) */
static Node *b_softmax_cross_entropy(Graph *g, Node *const *x, int n, const int *attr)
{
    (void)n, (void)attr;
    return neg(g, op1(g, OP_SUM, mul(g, x[1], op1(g, OP_LOG_SOFTMAX, x[0]))));
}

/* bce(p, y) = -mean(y log p + (1 - y) log(1 - p)) */
static Node *b_bce(Graph *g, Node *const *x, int n, const int *attr)
{
    (void)n, (void)attr;
    Node *p = x[0], *y = x[1], *one = node_scalar(g, 1);
    Node *pos = mul(g, y, op1(g, OP_LOG, p));
    Node *negv = mul(g, sub(g, one, y), op1(g, OP_LOG, sub(g, one, p)));
    return scale(g, -inv_size(p), op1(g, OP_SUM, add(g, pos, negv)));
}

/* flatten(a) = a as a vector, row-major */
static Node *b_flatten(Graph *g, Node *const *x, int n, const int *attr)
{
    (void)n, (void)attr;
    return node_reshape(g, x[0], vec((int)(1 / inv_size(x[0]) + 0.5)));
}

/* layernorm(a) = (a - mean(a)) / sqrt(mean((a - mean(a))^2) + 1e-5): its
 * derivative comes from those of its parts */
static Node *b_layernorm(Graph *g, Node *const *x, int n, const int *attr)
{
    (void)n, (void)attr;
    double k = inv_size(x[0]);
    Node *centered = sub(g, x[0], scale(g, k, op1(g, OP_SUM, x[0])));
    Node *var = scale(g, k, op1(g, OP_SUM, power(g, centered, 2)));
    return mul(g, centered, power(g, add(g, var, node_scalar(g, 1e-5)), -0.5));
}

/* shapes of the .net functions that are not one operation */

static Shape sh_same_to_scalar(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr;
    if (same(in[0], in[1]))
        return SCALAR;
    return fail(err, -1, "needs arguments of the same shape, but got %s and %s", st(in[0]), st(in[1]));
}

static Shape sh_same_tensor_to_scalar(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr;
    if (same(in[0], in[1]) && in[0].rank >= 1)
        return SCALAR;
    return fail(err, -1, "needs two tensors of the same shape, but got %s and %s", st(in[0]),
                st(in[1]));
}

static Shape sh_flatten(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    (void)nin, (void)attr, (void)err;
    long n = 1;
    for (int i = 0; i < in[0].rank; i++)
        n *= in[0].dim[i];
    return vec((int)n);
}

/* maxpool2d(x, k): the window is argument 1, an attribute */
static Shape sh_pool_call(const Shape *in, int nin, const int *attr, ShapeError *err)
{
    return sh_pool(in, nin, attr, err);
}

#define F(fn, lo, hi, ints, kw, use, shp, bld) {fn, lo, hi, ints, kw, use, shp, bld, {0, 0}}
#define NOKW {NULL, NULL}

const FuncInfo func_info[FN__COUNT] = {
    [FN_EXP] = F("exp", 1, 1, 0, NOKW, "exp(x)", sh_same, b_exp),
    [FN_LOG] = F("log", 1, 1, 0, NOKW, "log(x)", sh_same, b_log),
    [FN_SQRT] = F("sqrt", 1, 1, 0, NOKW, "sqrt(x)", sh_same, b_sqrt),
    [FN_ABS] = F("abs", 1, 1, 0, NOKW, "abs(x)", sh_same, b_abs),
    [FN_SIN] = F("sin", 1, 1, 0, NOKW, "sin(x)", sh_same, b_sin),
    [FN_COS] = F("cos", 1, 1, 0, NOKW, "cos(x)", sh_same, b_cos),
    [FN_TANH] = F("tanh", 1, 1, 0, NOKW, "tanh(x)", sh_same, b_tanh),
    [FN_SIGMOID] = F("sigmoid", 1, 1, 0, NOKW, "sigmoid(x)", sh_same, b_sigmoid),
    [FN_RELU] = F("relu", 1, 1, 0, NOKW, "relu(x)", sh_same, b_relu),
    [FN_SOFTPLUS] = F("softplus", 1, 1, 0, NOKW, "softplus(x)", sh_same, b_softplus),
    [FN_STEP] = F("step", 1, 1, 0, NOKW, "step(x)", sh_same, b_step),
    [FN_SIGN] = F("sign", 1, 1, 0, NOKW, "sign(x)", sh_same, b_sign),
    [FN_MAX] = F("max", 2, 2, 0, NOKW, "max(a, b)", sh_broadcast, b_max),
    [FN_MIN] = F("min", 2, 2, 0, NOKW, "min(a, b)", sh_broadcast, b_min),
    [FN_TRANSPOSE] = F("transpose", 1, 1, 0, NOKW, "transpose(A)", sh_transpose, b_transpose),
    [FN_OUTER] = F("outer", 2, 2, 0, NOKW, "outer(a, b)", sh_outer, b_outer),
    [FN_SUM] = F("sum", 1, 1, 0, NOKW, "sum(x)", sh_reduce, b_sum),
    [FN_MEAN] = F("mean", 1, 1, 0, NOKW, "mean(x)", sh_reduce, b_mean),
    [FN_DOT] = F("dot", 2, 2, 0, NOKW, "dot(a, b)", sh_same_to_scalar, b_dot),
    [FN_LOGSUMEXP] = F("logsumexp", 1, 1, 0, NOKW, "logsumexp(x)", sh_reduce, b_logsumexp),
    [FN_SOFTMAX] = F("softmax", 1, 1, 0, NOKW, "softmax(x)", sh_same, b_softmax),
    [FN_LOG_SOFTMAX] = F("log_softmax", 1, 1, 0, NOKW, "log_softmax(x)", sh_same, b_log_softmax),
    [FN_MSE] = F("mse", 2, 2, 0, NOKW, "mse(yhat, y)", sh_same_to_scalar, b_mse),
    [FN_CROSS_ENTROPY] = F("cross_entropy", 2, 2, 0, NOKW, "cross_entropy(p, y)",
                           sh_same_tensor_to_scalar, b_cross_entropy),
    [FN_SOFTMAX_CROSS_ENTROPY] = F("softmax_cross_entropy", 2, 2, 0, NOKW,
                                   "softmax_cross_entropy(z, y)", sh_same_tensor_to_scalar,
                                   b_softmax_cross_entropy),
    [FN_BCE] = F("bce", 2, 2, 0, NOKW, "bce(p, y)", sh_same_to_scalar, b_bce),
    [FN_FLATTEN] = F("flatten", 1, 1, 0, NOKW, "flatten(x)", sh_flatten, b_flatten),
    [FN_CONV2D] = {"conv2d", 2, 3, 0, {"stride", "pad"}, "conv2d(x, K, b, stride=s, pad=p)",
                   sh_conv2d, b_conv2d, {1, 0}},
    [FN_MAXPOOL2D] = F("maxpool2d", 2, 2, 1u << 1, NOKW, "maxpool2d(x, k)", sh_pool_call, b_maxpool2d),
    [FN_AVGPOOL2D] = F("avgpool2d", 2, 2, 1u << 1, NOKW, "avgpool2d(x, k)", sh_pool_call, b_avgpool2d),
    [FN_LAYERNORM] = F("layernorm", 1, 1, 0, NOKW, "layernorm(x)", sh_same, b_layernorm),
};

int func_find(const char *name)
{
    for (int f = 0; f < FN__COUNT; f++)
        if (strcmp(func_info[f].name, name) == 0)
            return f;
    return -1;
}
