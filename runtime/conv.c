/* conv.c — 2-D convolution and pooling for generated code, float and
 * double (see bp.h for the interface and contract section 1 for the
 * semantics). Tensors are row-major: x[n][c][h][w], K[o][c][kh][kw],
 * y[n][o][oh][ow].
 *
 * A convolution is a matrix product per sample. im2col lays one sample's
 * receptive fields out as the columns of col[c·kh·kw][oh·ow] (row (q,u,v),
 * column (i,j) holds x[q][i·s+u-pad][j·s+v-pad], 0 in the padding), so
 *   forward      y[o][oh·ow]      = K[o][c·kh·kw] · col             (+ b)
 *   input grad   dcol             = Kᵀ · dy,  then col2im sums dcol into dx
 *   kernel grad  dK[o][c·kh·kw]  += dy · colᵀ
 * each one bp_gemm call; bp_gemm does the arithmetic, this file only moves
 * data. A 1×1 kernel at stride 1 without padding needs no col at all: x
 * itself is the matrix. Rows of col are copied as runs: for a row (q,u,v)
 * the columns j that fall inside x form one interval, found by division
 * once per row rather than tested per element, and at stride 1 a run is a
 * memcpy.
 *
 * Sums run in a fixed order (samples in order, then bp_gemm's own order),
 * so results are bit-for-bit repeatable. Nothing is allocated: the caller
 * passes scratch of bp_conv2d_scratch_reals() values. */
#ifndef CONV_T

#include "bp.h"
#include "internal.h"

#include <string.h>

/* The output columns j whose input column j·s+v-pad lies in [0, w):
 * [*j0, *j1), possibly empty. */
static void conv_valid_range(int w, int ow, int stride, int pad, int v, int *j0, int *j1)
{
    /* j·s + v - pad >= 0  <=>  j >= ceil((pad - v) / s) */
    int lo = pad - v <= 0 ? 0 : (pad - v + stride - 1) / stride;
    /* j·s + v - pad <= w - 1  <=>  j <= floor((w - 1 + pad - v) / s) */
    int top = w - 1 + pad - v;
    int hi = top < 0 ? 0 : top / stride + 1;
    if (hi > ow)
        hi = ow;
    if (lo > hi)
        lo = hi;
    *j0 = lo;
    *j1 = hi;
}

static int conv_is_pointwise(const bp_conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && s->pad == 0;
}

size_t bp_conv2d_scratch_reals(const bp_conv2d_shape *s)
{
    return (size_t)s->c * (size_t)s->kh * (size_t)s->kw * (size_t)s->oh * (size_t)s->ow;
}

int bp_conv2d_shape_init(bp_conv2d_shape *s, int c, int h, int w, int o, int kh, int kw,
                         int stride, int pad, char *err, size_t err_size)
{
    if (!s)
        return bp_fail(err, err_size, "bp_conv2d_shape_init: missing argument (s)");
    if (c < 1 || h < 1 || w < 1 || o < 1 || kh < 1 || kw < 1 || stride < 1 || pad < 0
        || kh > h + 2 * pad || kw > w + 2 * pad)
        return bp_fail(err, err_size, "bp_conv2d_shape_init: input [%d, %d, %d], kernel "
                       "[%d, %d, %d, %d], stride %d, pad %d: a size below 1, a stride "
                       "below 1, a negative pad, or a kernel larger than the padded input",
                       c, h, w, o, c, kh, kw, stride, pad);
    s->c = c, s->h = h, s->w = w;
    s->o = o, s->kh = kh, s->kw = kw;
    s->stride = stride, s->pad = pad;
    s->oh = (h + 2 * pad - kh) / stride + 1;
    s->ow = (w + 2 * pad - kw) / stride + 1;
    return 0;
}

#define CONV_T float
#define CONV_(x) x##_f
#define CONV_GEMM bp_gemm_f
#include "conv.c"
#undef CONV_T
#undef CONV_
#undef CONV_GEMM

#define CONV_T double
#define CONV_(x) x##_d
#define CONV_GEMM bp_gemm_d
#include "conv.c"
#undef CONV_T
#undef CONV_
#undef CONV_GEMM

#else /* template body: CONV_T, CONV_() and CONV_GEMM are defined */

/* col = im2col(x) for one sample x[c][h][w]. */
static void CONV_(im2col)(const bp_conv2d_shape *s, const CONV_T *restrict x,
                          CONV_T *restrict col)
{
    const int st = s->stride, oh = s->oh, ow = s->ow;
    const size_t plane = (size_t)oh * (size_t)ow;
    for (int q = 0; q < s->c; q++)
        for (int u = 0; u < s->kh; u++)
            for (int v = 0; v < s->kw; v++) {
                CONV_T *row = col + ((size_t)(q * s->kh + u) * (size_t)s->kw + (size_t)v) * plane;
                int j0, j1;
                conv_valid_range(s->w, ow, st, s->pad, v, &j0, &j1);
                for (int i = 0; i < oh; i++) {
                    CONV_T *out = row + (size_t)i * (size_t)ow;
                    int ih = i * st + u - s->pad;
                    if (ih < 0 || ih >= s->h || j0 == j1) {
                        memset(out, 0, (size_t)ow * sizeof *out);
                        continue;
                    }
                    /* input column of output column j: j·st + off, >= 0 from j0 on */
                    const CONV_T *in = x + ((size_t)q * (size_t)s->h + (size_t)ih) * (size_t)s->w;
                    const int off = v - s->pad;
                    for (int j = 0; j < j0; j++)
                        out[j] = 0;
                    if (st == 1)
                        memcpy(out + j0, in + (j0 + off), (size_t)(j1 - j0) * sizeof *out);
                    else
                        for (int j = j0; j < j1; j++)
                            out[j] = in[j * st + off];
                    for (int j = j1; j < ow; j++)
                        out[j] = 0;
                }
            }
}

/* dx = col2im(dcol): every entry of dcol added to the input position it
 * was copied from (padding positions are dropped). dx is overwritten. */
static void CONV_(col2im)(const bp_conv2d_shape *s, const CONV_T *restrict dcol,
                          CONV_T *restrict dx)
{
    const int st = s->stride, oh = s->oh, ow = s->ow;
    const size_t plane = (size_t)oh * (size_t)ow;
    memset(dx, 0, (size_t)s->c * (size_t)s->h * (size_t)s->w * sizeof *dx);
    for (int q = 0; q < s->c; q++)
        for (int u = 0; u < s->kh; u++)
            for (int v = 0; v < s->kw; v++) {
                const CONV_T *row =
                    dcol + ((size_t)(q * s->kh + u) * (size_t)s->kw + (size_t)v) * plane;
                int j0, j1;
                conv_valid_range(s->w, ow, st, s->pad, v, &j0, &j1);
                if (j0 == j1)
                    continue;
                for (int i = 0; i < oh; i++) {
                    int ih = i * st + u - s->pad;
                    if (ih < 0 || ih >= s->h)
                        continue;
                    const CONV_T *in = row + (size_t)i * (size_t)ow;
                    CONV_T *out = dx + ((size_t)q * (size_t)s->h + (size_t)ih) * (size_t)s->w;
                    const int off = v - s->pad;
                    if (st == 1)
                        for (int j = j0; j < j1; j++)
                            out[j + off] += in[j];
                    else
                        for (int j = j0; j < j1; j++)
                            out[j * st + off] += in[j];
                }
            }
}

void CONV_(bp_conv2d)(const bp_conv2d_shape *s, int n, const CONV_T *x, const CONV_T *k,
                      const CONV_T *b, CONV_T *y, CONV_T *scratch)
{
    const int ckk = s->c * s->kh * s->kw, plane = s->oh * s->ow;
    const size_t xs = (size_t)s->c * (size_t)s->h * (size_t)s->w;
    const size_t ys = (size_t)s->o * (size_t)plane;
    const int pointwise = conv_is_pointwise(s);
    for (int t = 0; t < n; t++) {
        const CONV_T *xt = x + (size_t)t * xs;
        CONV_T *yt = y + (size_t)t * ys;
        const CONV_T *col = xt;
        if (!pointwise) {
            CONV_(im2col)(s, xt, scratch);
            col = scratch;
        }
        /* the bias goes in first and the product is added to it (beta 1) */
        if (b)
            for (int p = 0; p < s->o; p++)
                for (int i = 0; i < plane; i++)
                    yt[(size_t)p * (size_t)plane + (size_t)i] = b[p];
        CONV_GEMM(0, 0, s->o, plane, ckk, 1, k, ckk, col, plane, b ? 1 : 0, yt, plane);
    }
}

void CONV_(bp_conv2d_grad_input)(const bp_conv2d_shape *s, int n, const CONV_T *dy,
                                 const CONV_T *k, CONV_T *dx, CONV_T *scratch)
{
    const int ckk = s->c * s->kh * s->kw, plane = s->oh * s->ow;
    const size_t xs = (size_t)s->c * (size_t)s->h * (size_t)s->w;
    const size_t ys = (size_t)s->o * (size_t)plane;
    const int pointwise = conv_is_pointwise(s);
    for (int t = 0; t < n; t++) {
        const CONV_T *dyt = dy + (size_t)t * ys;
        CONV_T *dxt = dx + (size_t)t * xs;
        /* dcol = Kᵀ · dy; pointwise, dcol is dx itself */
        CONV_GEMM(1, 0, ckk, plane, s->o, 1, k, ckk, dyt, plane, 0, pointwise ? dxt : scratch,
                  plane);
        if (!pointwise)
            CONV_(col2im)(s, scratch, dxt);
    }
}

void CONV_(bp_conv2d_grad_kernel)(const bp_conv2d_shape *s, int n, const CONV_T *dy,
                                  const CONV_T *x, CONV_T alpha, CONV_T beta, CONV_T *dk,
                                  CONV_T *scratch)
{
    const int ckk = s->c * s->kh * s->kw, plane = s->oh * s->ow;
    const size_t xs = (size_t)s->c * (size_t)s->h * (size_t)s->w;
    const size_t ys = (size_t)s->o * (size_t)plane;
    const int pointwise = conv_is_pointwise(s);
    if (n < 1) {
        /* an empty sum: dk = beta * dk, not read when beta is 0 */
        for (size_t i = 0; i < (size_t)s->o * (size_t)ckk; i++)
            dk[i] = beta == 0 ? 0 : beta * dk[i];
        return;
    }
    for (int t = 0; t < n; t++) {
        const CONV_T *col = x + (size_t)t * xs;
        if (!pointwise) {
            CONV_(im2col)(s, col, scratch);
            col = scratch;
        }
        /* dk = alpha · dy · colᵀ + (beta for the first sample, then 1) · dk */
        CONV_GEMM(0, 1, s->o, ckk, plane, alpha, dy + (size_t)t * ys, plane, col, plane,
                  t ? 1 : beta, dk, ckk);
    }
}

void CONV_(bp_conv2d_grad_bias)(const bp_conv2d_shape *s, int n, const CONV_T *dy,
                                 CONV_T alpha, CONV_T beta, CONV_T *db)
{
    const size_t plane = (size_t)s->oh * (size_t)s->ow;
    for (int p = 0; p < s->o; p++) {
        /* summed in double whatever CONV_T is, samples in order */
        double sum = 0;
        for (int t = 0; t < n; t++) {
            const CONV_T *row = dy + ((size_t)t * (size_t)s->o + (size_t)p) * plane;
            for (size_t i = 0; i < plane; i++)
                sum += row[i];
        }
        CONV_T v = alpha * (CONV_T)sum;
        db[p] = beta == 0 ? v : v + beta * db[p];
    }
}

/* The index in x's plane [h][w] of the maximum of the k×k window at
 * (i, j): the first maximal element in row-major order, and the first
 * NaN if there is one (a NaN propagates, as in PyTorch). */
static size_t CONV_(window_argmax)(const CONV_T *plane, int w, int k, int i, int j)
{
    size_t best = (size_t)i * (size_t)k * (size_t)w + (size_t)j * (size_t)k;
    CONV_T m = plane[best];
    if (m != m)
        return best;
    for (int u = 0; u < k; u++) {
        const CONV_T *row = plane + ((size_t)i * (size_t)k + (size_t)u) * (size_t)w
                            + (size_t)j * (size_t)k;
        for (int v = 0; v < k; v++) {
            CONV_T a = row[v];
            if (a > m || a != a) {
                best = (size_t)(row - plane) + (size_t)v;
                if (a != a)
                    return best;
                m = a;
            }
        }
    }
    return best;
}

/* Whether a plane holds a NaN. */
static int CONV_(has_nan)(const CONV_T *p, size_t count)
{
    int nan = 0;
    for (size_t i = 0; i < count; i++)
        nan |= p[i] != p[i];
    return nan;
}

/* Rows 2i and 2i+1 of a NaN-free plane pooled by 2×2 windows: the common
 * case, written as plain loops the compiler turns into max and compare
 * instructions. Which value wins is data, not a pattern the processor can
 * predict: the general loop's mispredicted branches and index arithmetic
 * made max pooling 40 % of a small CNN's training. `a > m ? a : m` keeps
 * the first of equal values, as window_argmax does (-0 before +0). */
static void CONV_(max2_row)(const CONV_T *r0, const CONV_T *r1, int ow, CONV_T *y)
{
    for (int j = 0; j < ow; j++) {
        CONV_T m = r0[2 * j], a = r0[2 * j + 1], b = r1[2 * j], c = r1[2 * j + 1];
        m = a > m ? a : m;
        m = b > m ? b : m;
        y[j] = c > m ? c : m;
    }
}

/* The gradient of max2_row: dy[j] goes to the first of the window's four
 * values (row-major) equal to its maximum, 0 to the others. */
static void CONV_(max2_row_grad)(const CONV_T *r0, const CONV_T *r1, const CONV_T *dy, int ow,
                                 CONV_T *d0, CONV_T *d1)
{
    for (int j = 0; j < ow; j++) {
        CONV_T m = r0[2 * j], a = r0[2 * j + 1], b = r1[2 * j], c = r1[2 * j + 1];
        CONV_T top = a > m ? a : m, max = b > top ? b : top;
        max = c > max ? c : max;
        int first = r0[2 * j] == max, second = !first & (a == max);
        int third = !first & !second & (b == max), fourth = !first & !second & !third;
        CONV_T g = dy[j];
        d0[2 * j] = first ? g : 0;
        d0[2 * j + 1] = second ? g : 0;
        d1[2 * j] = third ? g : 0;
        d1[2 * j + 1] = fourth ? g : 0;
    }
}

void CONV_(bp_maxpool2d)(int n, int c, int h, int w, int k, const CONV_T *x, CONV_T *y)
{
    const int oh = h / k, ow = w / k;
    const size_t in = (size_t)h * (size_t)w, out = (size_t)oh * (size_t)ow;
    for (size_t pl = 0; pl < (size_t)n * (size_t)c; pl++) {
        const CONV_T *xp = x + pl * in;
        CONV_T *yp = y + pl * out;
        if (k == 2 && !CONV_(has_nan)(xp, in)) {
            for (int i = 0; i < oh; i++)
                CONV_(max2_row)(xp + (size_t)(2 * i) * (size_t)w,
                                xp + (size_t)(2 * i + 1) * (size_t)w, ow,
                                yp + (size_t)i * (size_t)ow);
            continue;
        }
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++)
                yp[(size_t)i * (size_t)ow + (size_t)j] = xp[CONV_(window_argmax)(xp, w, k, i, j)];
    }
}

void CONV_(bp_maxpool2d_grad)(int n, int c, int h, int w, int k, const CONV_T *x,
                              const CONV_T *dy, CONV_T *dx)
{
    const int oh = h / k, ow = w / k;
    const size_t in = (size_t)h * (size_t)w, out = (size_t)oh * (size_t)ow;
    memset(dx, 0, (size_t)n * (size_t)c * in * sizeof *dx);
    for (size_t pl = 0; pl < (size_t)n * (size_t)c; pl++) {
        const CONV_T *xp = x + pl * in;
        CONV_T *dxp = dx + pl * in;
        const CONV_T *dyp = dy + pl * out;
        if (k == 2 && !CONV_(has_nan)(xp, in)) {
            for (int i = 0; i < oh; i++) {
                size_t row = (size_t)(2 * i) * (size_t)w;
                CONV_(max2_row_grad)(xp + row, xp + row + (size_t)w, dyp + (size_t)i * (size_t)ow,
                                     ow, dxp + row, dxp + row + (size_t)w);
            }
            continue;
        }
        /* windows do not overlap: each dx entry gets at most one dy */
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++)
                dxp[CONV_(window_argmax)(xp, w, k, i, j)] = dyp[(size_t)i * (size_t)ow + (size_t)j];
    }
}

void CONV_(bp_avgpool2d)(int n, int c, int h, int w, int k, const CONV_T *x, CONV_T *y)
{
    const int oh = h / k, ow = w / k;
    const size_t in = (size_t)h * (size_t)w, out = (size_t)oh * (size_t)ow;
    const CONV_T scale = (CONV_T)1 / ((CONV_T)k * (CONV_T)k);
    for (size_t pl = 0; pl < (size_t)n * (size_t)c; pl++) {
        const CONV_T *xp = x + pl * in;
        CONV_T *yp = y + pl * out;
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                CONV_T sum = 0;
                for (int u = 0; u < k; u++) {
                    const CONV_T *row = xp + ((size_t)i * (size_t)k + (size_t)u) * (size_t)w
                                        + (size_t)j * (size_t)k;
                    for (int v = 0; v < k; v++)
                        sum += row[v];
                }
                yp[(size_t)i * (size_t)ow + (size_t)j] = sum * scale;
            }
    }
}

void CONV_(bp_avgpool2d_grad)(int n, int c, int h, int w, int k, const CONV_T *dy, CONV_T *dx)
{
    const int oh = h / k, ow = w / k;
    const size_t in = (size_t)h * (size_t)w, out = (size_t)oh * (size_t)ow;
    const CONV_T scale = (CONV_T)1 / ((CONV_T)k * (CONV_T)k);
    memset(dx, 0, (size_t)n * (size_t)c * in * sizeof *dx);
    for (size_t pl = 0; pl < (size_t)n * (size_t)c; pl++) {
        CONV_T *dxp = dx + pl * in;
        const CONV_T *dyp = dy + pl * out;
        for (int i = 0; i < oh; i++)
            for (int u = 0; u < k; u++) {
                CONV_T *row = dxp + ((size_t)i * (size_t)k + (size_t)u) * (size_t)w;
                for (int j = 0; j < ow; j++) {
                    CONV_T g = dyp[(size_t)i * (size_t)ow + (size_t)j] * scale;
                    for (int v = 0; v < k; v++)
                        row[(size_t)j * (size_t)k + (size_t)v] = g;
                }
            }
    }
}

#endif
