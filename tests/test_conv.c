/* test_conv.c — the runtime's convolution and pooling kernels (conv.c),
 * float and double, against plain double-precision loops written straight
 * from contract section 1, against finite differences of the forward pass
 * (double), and against PyTorch when /usr/bin/python3 has torch.
 *
 * Shapes are odd on purpose: stride 1, 2 and 3, pad 0, 1 and 2, kernels
 * taller than the unpadded input, non-square inputs and kernels, 1×1
 * kernels (the path without im2col), several channels in and out, batches
 * of 1 and 3. Outputs and scratch are filled with NaN before each call, so
 * a kernel that reads what it should overwrite, or an entry it forgets to
 * write, shows; buffers are allocated at their exact size, so the
 * sanitizers catch a write past one. */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int c, h, w, o, kh, kw, stride, pad;
} conv_case;

static const conv_case cases[] = {
    {1, 5, 5, 1, 3, 3, 1, 0},
    {2, 7, 5, 3, 3, 2, 2, 1},
    {3, 6, 9, 4, 2, 3, 1, 2},
    {2, 4, 4, 2, 1, 1, 1, 0}, /* 1×1, stride 1, no pad: x is the matrix */
    {1, 3, 8, 2, 5, 3, 2, 2}, /* kernel taller than x, fits the padding */
    {3, 5, 6, 2, 1, 1, 2, 1}, /* 1×1 with stride and pad */
    {2, 9, 7, 5, 4, 4, 3, 1},
    {4, 8, 8, 3, 3, 3, 2, 0},
    {2, 2, 3, 3, 1, 2, 1, 2}, /* whole output rows from padding only */
};
enum { NCASES = sizeof cases / sizeof cases[0] };

static bp_conv2d_shape shape_of(const conv_case *k)
{
    bp_conv2d_shape s;
    memset(&s, 0, sizeof s);
    CU_ASSERT_EQUAL(bp_conv2d_shape_init(&s, k->c, k->h, k->w, k->o, k->kh, k->kw, k->stride,
                                         k->pad, NULL, 0), 0);
    return s;
}

static size_t x_len(const bp_conv2d_shape *s, int n) { return (size_t)n * s->c * s->h * s->w; }
static size_t y_len(const bp_conv2d_shape *s, int n) { return (size_t)n * s->o * s->oh * s->ow; }
static size_t k_len(const bp_conv2d_shape *s) { return (size_t)s->o * s->c * s->kh * s->kw; }

static double *dalloc(size_t n)
{
    double *p = malloc((n ? n : 1) * sizeof *p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

static float *falloc(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
    return p;
}

static void randn(bp_rng *r, double *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = bp_rng_normal(r, 0, 1);
}

/* Rounds d to float and back, so float and double runs see the same
 * numbers; f may be NULL. */
static void to_float(double *d, float *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = (float)d[i];
        d[i] = v;
        if (f)
            f[i] = v;
    }
}

static void fill_nan_f(float *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        f[i] = NAN;
}

static void fill_nan_d(double *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        d[i] = NAN;
}

/* ------------------------------------------------------------ references */

/* x[q, ih, iw], 0 outside x (the padding). */
static double at(const bp_conv2d_shape *s, const double *x, int q, int ih, int iw)
{
    if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
        return 0;
    return x[((size_t)q * s->h + ih) * s->w + iw];
}

/* y[p,i,j] = b[p] + sum_{q,u,v} K[p,q,u,v] x[q, i*s+u-pad, j*s+v-pad], the
 * contract's formula; with `absolute`, the sum of absolute values of the
 * terms (the scale of the rounding error). */
static void ref_conv(const bp_conv2d_shape *s, int n, const double *x, const double *k,
                     const double *b, double *y, int absolute)
{
    for (int t = 0; t < n; t++)
        for (int p = 0; p < s->o; p++)
            for (int i = 0; i < s->oh; i++)
                for (int j = 0; j < s->ow; j++) {
                    double sum = b ? (absolute ? fabs(b[p]) : b[p]) : 0;
                    for (int q = 0; q < s->c; q++)
                        for (int u = 0; u < s->kh; u++)
                            for (int v = 0; v < s->kw; v++) {
                                double kv = k[(((size_t)p * s->c + q) * s->kh + u) * s->kw + v];
                                double xv = at(s, x + (size_t)t * s->c * s->h * s->w, q,
                                               i * s->stride + u - s->pad,
                                               j * s->stride + v - s->pad);
                                sum += absolute ? fabs(kv * xv) : kv * xv;
                            }
                    y[(((size_t)t * s->o + p) * s->oh + i) * s->ow + j] = sum;
                }
}

/* The adjoint of ref_conv, term by term: dx, dk, db of sum(dy * y). */
static void ref_conv_grads(const bp_conv2d_shape *s, int n, const double *x, const double *k,
                           const double *dy, double *dx, double *dk, double *db, int absolute)
{
    memset(dx, 0, x_len(s, n) * sizeof *dx);
    memset(dk, 0, k_len(s) * sizeof *dk);
    memset(db, 0, (size_t)s->o * sizeof *db);
    for (int t = 0; t < n; t++)
        for (int p = 0; p < s->o; p++)
            for (int i = 0; i < s->oh; i++)
                for (int j = 0; j < s->ow; j++) {
                    double g = dy[(((size_t)t * s->o + p) * s->oh + i) * s->ow + j];
                    db[p] += absolute ? fabs(g) : g;
                    for (int q = 0; q < s->c; q++)
                        for (int u = 0; u < s->kh; u++)
                            for (int v = 0; v < s->kw; v++) {
                                int ih = i * s->stride + u - s->pad;
                                int iw = j * s->stride + v - s->pad;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w)
                                    continue;
                                size_t xi = (((size_t)t * s->c + q) * s->h + ih) * s->w + iw;
                                size_t ki = (((size_t)p * s->c + q) * s->kh + u) * s->kw + v;
                                dk[ki] += absolute ? fabs(g * x[xi]) : g * x[xi];
                                dx[xi] += absolute ? fabs(g * k[ki]) : g * k[ki];
                            }
                }
}

/* Largest |got - want| / tol_i over i, tol_i = rel * scale_i + abs_tol;
 * below 1 passes. Prints the worst entry when it fails. */
static int close_d(const char *what, const double *got, const double *want,
                   const double *scale, size_t n, double rel, double abs_tol)
{
    double worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        double tol = rel * (scale ? scale[i] : fabs(want[i])) + abs_tol;
        double e = fabs(got[i] - want[i]) / tol;
        if (!(e <= worst)) { /* NaN counts as the worst */
            worst = e;
            wi = i;
            if (isnan(e))
                break;
        }
    }
    if (!(worst < 1)) {
        fprintf(stderr, "\n%s: entry %zu is %.17g, want %.17g\n", what, wi, got[wi], want[wi]);
        return 0;
    }
    return 1;
}

static int close_f(const char *what, const float *got, const double *want,
                   const double *scale, size_t n, double rel, double abs_tol)
{
    double *g = malloc((n ? n : 1) * sizeof *g);
    for (size_t i = 0; i < n; i++)
        g[i] = got[i];
    int ok = close_d(what, g, want, scale, n, rel, abs_tol);
    free(g);
    return ok;
}

/* ------------------------------------------------------------ convolution */

/* Every kernel of one case and batch, double and float, against the
 * references. */
static void check_case(const conv_case *cc, int n, unsigned long long seed)
{
    bp_conv2d_shape s = shape_of(cc);
    size_t nx = x_len(&s, n), ny = y_len(&s, n), nk = k_len(&s), no = (size_t)s.o;
    size_t ns = bp_conv2d_scratch_reals(&s);
    CU_ASSERT_EQUAL(ns, (size_t)s.c * s.kh * s.kw * s.oh * s.ow);
    bp_rng r;
    bp_rng_seed(&r, seed);
    double *x = dalloc(nx), *k = dalloc(nk), *b = dalloc(no), *dy = dalloc(ny);
    float *xf = falloc(nx), *kf = falloc(nk), *bf = falloc(no), *dyf = falloc(ny);
    randn(&r, x, nx), randn(&r, k, nk), randn(&r, b, no), randn(&r, dy, ny);
    to_float(x, xf, nx), to_float(k, kf, nk), to_float(b, bf, no), to_float(dy, dyf, ny);

    double *want = dalloc(ny), *scale = dalloc(ny), *y = dalloc(ny), *sd = dalloc(ns);
    float *yf = falloc(ny), *sf = falloc(ns);
    char what[128];
    for (int bias = 0; bias <= 1; bias++) {
        ref_conv(&s, n, x, k, bias ? b : NULL, want, 0);
        ref_conv(&s, n, x, k, bias ? b : NULL, scale, 1);
        fill_nan_d(y, ny), fill_nan_d(sd, ns);
        bp_conv2d_d(&s, n, x, k, bias ? b : NULL, y, sd);
        snprintf(what, sizeof what, "conv2d_d case %d,%d,%d,%d,%d,%d,%d,%d n %d bias %d", cc->c,
                 cc->h, cc->w, cc->o, cc->kh, cc->kw, cc->stride, cc->pad, n, bias);
        CU_ASSERT(close_d(what, y, want, scale, ny, 1e-14, 1e-300));
        fill_nan_f(yf, ny), fill_nan_f(sf, ns);
        bp_conv2d_f(&s, n, xf, kf, bias ? bf : NULL, yf, sf);
        what[7] = 'f';
        CU_ASSERT(close_f(what, yf, want, scale, ny, 1e-6, 1e-30));
    }

    /* gradients */
    double *dx = dalloc(nx), *dk = dalloc(nk), *db = dalloc(no);
    double *wdx = dalloc(nx), *wdk = dalloc(nk), *wdb = dalloc(no);
    double *adx = dalloc(nx), *adk = dalloc(nk), *adb = dalloc(no);
    float *dxf = falloc(nx), *dkf = falloc(nk), *dbf = falloc(no);
    ref_conv_grads(&s, n, x, k, dy, wdx, wdk, wdb, 0);
    ref_conv_grads(&s, n, x, k, dy, adx, adk, adb, 1);
    /* a dx entry no output reads is exactly 0; scale it by 1 */
    fill_nan_d(sd, ns);
    bp_conv2d_grad_input_d(&s, n, dy, k, dx, sd);
    CU_ASSERT(close_d("grad_input_d", dx, wdx, adx, nx, 1e-14, 1e-300));
    fill_nan_d(sd, ns);
    bp_conv2d_grad_kernel_d(&s, n, dy, x, 1, 0, dk, sd);
    CU_ASSERT(close_d("grad_kernel_d", dk, wdk, adk, nk, 1e-14, 1e-300));
    bp_conv2d_grad_bias_d(&s, n, dy, 1, 0, db);
    CU_ASSERT(close_d("grad_bias_d", db, wdb, adb, no, 1e-14, 1e-300));

    fill_nan_f(sf, ns);
    bp_conv2d_grad_input_f(&s, n, dyf, kf, dxf, sf);
    CU_ASSERT(close_f("grad_input_f", dxf, wdx, adx, nx, 1e-6, 1e-30));
    fill_nan_f(sf, ns);
    bp_conv2d_grad_kernel_f(&s, n, dyf, xf, 1, 0, dkf, sf);
    CU_ASSERT(close_f("grad_kernel_f", dkf, wdk, adk, nk, 1e-6, 1e-30));
    bp_conv2d_grad_bias_f(&s, n, dyf, 1, 0, dbf);
    CU_ASSERT(close_f("grad_bias_f", dbf, wdb, adb, no, 1e-6, 1e-30));

    /* Repeatable to the bit. */
    double *dx2 = dalloc(nx);
    bp_conv2d_grad_input_d(&s, n, dy, k, dx2, sd);
    CU_ASSERT(memcmp(dx, dx2, nx * sizeof *dx) == 0);

    free(dx2);
    free(x), free(k), free(b), free(dy), free(xf), free(kf), free(bf), free(dyf);
    free(want), free(scale), free(y), free(sd), free(yf), free(sf);
    free(dx), free(dk), free(db), free(wdx), free(wdk), free(wdb), free(adx), free(adk);
    free(adb), free(dxf), free(dkf), free(dbf);
}

static void test_conv_reference(void)
{
    for (int c = 0; c < NCASES; c++)
        for (int n = 1; n <= 3; n += 2)
            check_case(&cases[c], n, 100 + (unsigned long long)(10 * c + n));
}

/* L = sum(g * conv2d(x, K, b)) in double. */
static double conv_loss(const bp_conv2d_shape *s, int n, const double *x, const double *k,
                        const double *b, const double *g, double *y, double *scratch)
{
    bp_conv2d_d(s, n, x, k, b, y, scratch);
    double l = 0;
    for (size_t i = 0; i < y_len(s, n); i++)
        l += g[i] * y[i];
    return l;
}

/* Central differences of the forward pass, entry by entry of x, K and b,
 * against the three gradient kernels with dy = g. */
static void test_conv_finite_differences(void)
{
    const double h = 1e-6;
    for (int c = 0; c < NCASES; c++)
        for (int n = 1; n <= 3; n += 2) {
            bp_conv2d_shape s = shape_of(&cases[c]);
            size_t nx = x_len(&s, n), ny = y_len(&s, n), nk = k_len(&s), no = (size_t)s.o;
            size_t ns = bp_conv2d_scratch_reals(&s);
            bp_rng r;
            bp_rng_seed(&r, 7 + (unsigned long long)c);
            double *x = dalloc(nx), *k = dalloc(nk), *b = dalloc(no), *g = dalloc(ny);
            double *y = dalloc(ny), *sd = dalloc(ns);
            double *dx = dalloc(nx), *dk = dalloc(nk), *db = dalloc(no);
            randn(&r, x, nx), randn(&r, k, nk), randn(&r, b, no), randn(&r, g, ny);
            bp_conv2d_grad_input_d(&s, n, g, k, dx, sd);
            bp_conv2d_grad_kernel_d(&s, n, g, x, 1, 0, dk, sd);
            bp_conv2d_grad_bias_d(&s, n, g, 1, 0, db);
            double *vars[3] = {x, k, b}, *grads[3] = {dx, dk, db};
            size_t lens[3] = {nx, nk, no};
            double worst = 0;
            for (int v = 0; v < 3; v++)
                for (size_t i = 0; i < lens[v]; i++) {
                    double keep = vars[v][i];
                    vars[v][i] = keep + h;
                    double lp = conv_loss(&s, n, x, k, b, g, y, sd);
                    vars[v][i] = keep - h;
                    double lm = conv_loss(&s, n, x, k, b, g, y, sd);
                    vars[v][i] = keep;
                    double fd = (lp - lm) / (2 * h);
                    double e = fabs(fd - grads[v][i]) / fmax(1, fabs(fd));
                    if (!(e <= worst))
                        worst = e;
                }
            if (!(worst < 1e-7))
                fprintf(stderr, "\nconv case %d n %d: finite differences off by %g\n", c, n,
                        worst);
            CU_ASSERT(worst < 1e-7);
            free(x), free(k), free(b), free(g), free(y), free(sd), free(dx), free(dk), free(db);
        }
}

/* dk = alpha·sum + beta·dk and db likewise: beta 0 never reads (NaN stays
 * out), beta 1 accumulates, n = 0 only scales. */
static void test_alpha_beta(void)
{
    const conv_case *cc = &cases[1];
    bp_conv2d_shape s = shape_of(cc);
    const int n = 3;
    size_t nx = x_len(&s, n), ny = y_len(&s, n), nk = k_len(&s), no = (size_t)s.o;
    size_t ns = bp_conv2d_scratch_reals(&s);
    bp_rng r;
    bp_rng_seed(&r, 5);
    double *x = dalloc(nx), *dy = dalloc(ny), *sd = dalloc(ns);
    double *ref = dalloc(nk), *dk = dalloc(nk), *prior = dalloc(nk);
    double *refb = dalloc(no), *db = dalloc(no), *priorb = dalloc(no);
    randn(&r, x, nx), randn(&r, dy, ny), randn(&r, prior, nk), randn(&r, priorb, no);
    bp_conv2d_grad_kernel_d(&s, n, dy, x, 1, 0, ref, sd);
    bp_conv2d_grad_bias_d(&s, n, dy, 1, 0, refb);

    /* beta 0 over NaN */
    fill_nan_d(dk, nk), fill_nan_d(db, no);
    bp_conv2d_grad_kernel_d(&s, n, dy, x, 0.5, 0, dk, sd);
    bp_conv2d_grad_bias_d(&s, n, dy, 0.5, 0, db);
    for (size_t i = 0; i < nk; i++)
        CU_ASSERT_DOUBLE_EQUAL(dk[i], 0.5 * ref[i], 1e-13 * (1 + fabs(ref[i])));
    for (size_t i = 0; i < no; i++)
        CU_ASSERT_DOUBLE_EQUAL(db[i], 0.5 * refb[i], 1e-13 * (1 + fabs(refb[i])));

    /* alpha -1, beta 2 over known values */
    memcpy(dk, prior, nk * sizeof *dk);
    memcpy(db, priorb, no * sizeof *db);
    bp_conv2d_grad_kernel_d(&s, n, dy, x, -1, 2, dk, sd);
    bp_conv2d_grad_bias_d(&s, n, dy, -1, 2, db);
    for (size_t i = 0; i < nk; i++)
        CU_ASSERT_DOUBLE_EQUAL(dk[i], -ref[i] + 2 * prior[i], 1e-13 * (1 + fabs(ref[i])));
    for (size_t i = 0; i < no; i++)
        CU_ASSERT_DOUBLE_EQUAL(db[i], -refb[i] + 2 * priorb[i], 1e-13 * (1 + fabs(refb[i])));

    /* beta 1 accumulates: two halves of the batch give the whole */
    bp_conv2d_grad_kernel_d(&s, 1, dy, x, 1, 0, dk, sd);
    bp_conv2d_grad_kernel_d(&s, 2, dy + y_len(&s, 1), x + x_len(&s, 1), 1, 1, dk, sd);
    for (size_t i = 0; i < nk; i++)
        CU_ASSERT_DOUBLE_EQUAL(dk[i], ref[i], 1e-13 * (1 + fabs(ref[i])));

    /* n = 0: an empty sum */
    memcpy(dk, prior, nk * sizeof *dk);
    memcpy(db, priorb, no * sizeof *db);
    bp_conv2d_grad_kernel_d(&s, 0, dy, x, 1, 3, dk, sd);
    bp_conv2d_grad_bias_d(&s, 0, dy, 1, 3, db);
    CU_ASSERT_EQUAL(dk[0], 3 * prior[0]);
    CU_ASSERT_EQUAL(db[0], 3 * priorb[0]);
    fill_nan_d(dk, nk);
    bp_conv2d_grad_kernel_d(&s, 0, dy, x, 1, 0, dk, sd);
    for (size_t i = 0; i < nk; i++)
        CU_ASSERT_EQUAL(dk[i], 0.0);

    /* the same in float, beta 0 over NaN */
    float *xf = falloc(nx), *dyf = falloc(ny), *sf = falloc(ns), *dkf = falloc(nk);
    float *dbf = falloc(no);
    for (size_t i = 0; i < nx; i++)
        xf[i] = (float)x[i];
    for (size_t i = 0; i < ny; i++)
        dyf[i] = (float)dy[i];
    bp_conv2d_grad_kernel_f(&s, n, dyf, xf, 2, 0, dkf, sf);
    bp_conv2d_grad_bias_f(&s, n, dyf, 2, 0, dbf);
    for (size_t i = 0; i < nk; i++)
        CU_ASSERT_DOUBLE_EQUAL(dkf[i], 2 * ref[i], 1e-4 * (1 + fabs(ref[i])));
    for (size_t i = 0; i < no; i++)
        CU_ASSERT_DOUBLE_EQUAL(dbf[i], 2 * refb[i], 1e-4 * (1 + fabs(refb[i])));

    free(x), free(dy), free(sd), free(ref), free(dk), free(prior), free(refb), free(db);
    free(priorb), free(xf), free(dyf), free(sf), free(dkf), free(dbf);
}

static void test_shape_init(void)
{
    bp_conv2d_shape s;
    CU_ASSERT_EQUAL(bp_conv2d_shape_init(&s, 3, 7, 5, 4, 3, 2, 2, 1, NULL, 0), 0);
    CU_ASSERT_EQUAL(s.oh, 4); /* (7 + 2 - 3) / 2 + 1 */
    CU_ASSERT_EQUAL(s.ow, 3); /* (5 + 2 - 2) / 2 + 1, floored */
    CU_ASSERT_EQUAL(bp_conv2d_scratch_reals(&s), (size_t)3 * 3 * 2 * 4 * 3);
    CU_ASSERT_EQUAL(bp_conv2d_shape_init(&s, 1, 3, 3, 1, 5, 1, 1, 1, NULL, 0), 0); /* 5 <= 3 + 2 */
    CU_ASSERT_EQUAL(s.oh, 1);
    s.oh = 42;
    CU_ASSERT_EQUAL(bp_conv2d_shape_init(&s, 1, 3, 3, 1, 6, 1, 1, 1, NULL, 0), BP_ERR_ARG); /* larger than padded */
    CU_ASSERT_EQUAL(s.oh, 42);
    CU_ASSERT_EQUAL(bp_conv2d_shape_init(&s, 1, 3, 3, 1, 1, 1, 0, 0, NULL, 0), BP_ERR_ARG); /* stride 0 */
    CU_ASSERT_EQUAL(bp_conv2d_shape_init(&s, 1, 3, 3, 1, 1, 1, 1, -1, NULL, 0), BP_ERR_ARG); /* negative pad */
    CU_ASSERT_EQUAL(bp_conv2d_shape_init(&s, 0, 3, 3, 1, 1, 1, 1, 0, NULL, 0), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_conv2d_shape_init(&s, 1, 3, 3, 0, 1, 1, 1, 0, NULL, 0), BP_ERR_ARG);
}

/* ------------------------------------------------------------------ pooling */

typedef struct {
    int n, c, h, w, k;
} pool_case;

static const pool_case pools[] = {
    {1, 2, 5, 7, 2}, /* a row and a column left over */
    {3, 2, 6, 6, 3},
    {1, 3, 4, 9, 4}, /* one window high, two wide, one column left */
    {3, 1, 3, 5, 1}, /* k = 1: every element its own window */
    {1, 1, 7, 3, 3}, /* one column of windows, a row left over */
};
enum { NPOOLS = sizeof pools / sizeof pools[0] };

/* Window (i, j) of plane pl: its first maximal element in row-major order
 * (the index in x), and its mean. */
static size_t ref_argmax(const pool_case *p, const double *x, size_t pl, int i, int j)
{
    size_t best = 0;
    double m = -INFINITY;
    for (int u = 0; u < p->k; u++)
        for (int v = 0; v < p->k; v++) {
            size_t at_ = (pl * p->h + (size_t)(i * p->k + u)) * p->w + (size_t)(j * p->k + v);
            if (x[at_] > m) {
                m = x[at_];
                best = at_;
            }
        }
    return best;
}

static double ref_mean(const pool_case *p, const double *x, size_t pl, int i, int j)
{
    double sum = 0;
    for (int u = 0; u < p->k; u++)
        for (int v = 0; v < p->k; v++)
            sum += x[(pl * p->h + (size_t)(i * p->k + u)) * p->w + (size_t)(j * p->k + v)];
    return sum / (p->k * p->k);
}

static double pool_loss(const pool_case *p, int maxp, const double *x, const double *g, double *y)
{
    if (maxp)
        bp_maxpool2d_d(p->n, p->c, p->h, p->w, p->k, x, y);
    else
        bp_avgpool2d_d(p->n, p->c, p->h, p->w, p->k, x, y);
    size_t ny = (size_t)p->n * p->c * (p->h / p->k) * (p->w / p->k);
    double l = 0;
    for (size_t i = 0; i < ny; i++)
        l += g[i] * y[i];
    return l;
}

static void test_pool_reference(void)
{
    for (int pc = 0; pc < NPOOLS; pc++) {
        const pool_case *p = &pools[pc];
        int oh = p->h / p->k, ow = p->w / p->k;
        size_t nx = (size_t)p->n * p->c * p->h * p->w, ny = (size_t)p->n * p->c * oh * ow;
        bp_rng r;
        bp_rng_seed(&r, 50 + (unsigned long long)pc);
        double *x = dalloc(nx), *g = dalloc(ny), *y = dalloc(ny), *dx = dalloc(nx);
        double *want = dalloc(ny), *wdx = dalloc(nx);
        float *xf = falloc(nx), *gf = falloc(ny), *yf = falloc(ny), *dxf = falloc(nx);
        randn(&r, x, nx), randn(&r, g, ny);
        to_float(x, xf, nx), to_float(g, gf, ny);
        for (int maxp = 0; maxp <= 1; maxp++) {
            memset(wdx, 0, nx * sizeof *wdx);
            for (size_t pl = 0; pl < (size_t)p->n * p->c; pl++)
                for (int i = 0; i < oh; i++)
                    for (int j = 0; j < ow; j++) {
                        size_t yi = (pl * oh + (size_t)i) * ow + (size_t)j;
                        if (maxp) {
                            size_t a = ref_argmax(p, x, pl, i, j);
                            want[yi] = x[a];
                            wdx[a] = g[yi];
                        } else {
                            want[yi] = ref_mean(p, x, pl, i, j);
                            for (int u = 0; u < p->k; u++)
                                for (int v = 0; v < p->k; v++)
                                    wdx[(pl * p->h + (size_t)(i * p->k + u)) * p->w
                                        + (size_t)(j * p->k + v)] = g[yi] / (p->k * p->k);
                        }
                    }
            fill_nan_d(y, ny), fill_nan_d(dx, nx);
            fill_nan_f(yf, ny), fill_nan_f(dxf, nx);
            if (maxp) {
                bp_maxpool2d_d(p->n, p->c, p->h, p->w, p->k, x, y);
                bp_maxpool2d_grad_d(p->n, p->c, p->h, p->w, p->k, x, g, dx);
                bp_maxpool2d_f(p->n, p->c, p->h, p->w, p->k, xf, yf);
                bp_maxpool2d_grad_f(p->n, p->c, p->h, p->w, p->k, xf, gf, dxf);
            } else {
                bp_avgpool2d_d(p->n, p->c, p->h, p->w, p->k, x, y);
                bp_avgpool2d_grad_d(p->n, p->c, p->h, p->w, p->k, g, dx);
                bp_avgpool2d_f(p->n, p->c, p->h, p->w, p->k, xf, yf);
                bp_avgpool2d_grad_f(p->n, p->c, p->h, p->w, p->k, gf, dxf);
            }
            const char *nm = maxp ? "maxpool" : "avgpool";
            CU_ASSERT(close_d(nm, y, want, NULL, ny, 1e-15, 1e-15));
            CU_ASSERT(close_d(nm, dx, wdx, NULL, nx, 1e-15, 1e-15));
            CU_ASSERT(close_f(nm, yf, want, NULL, ny, 1e-6, 1e-6));
            CU_ASSERT(close_f(nm, dxf, wdx, NULL, nx, 1e-6, 1e-6));
            /* rows and columns left over: dx exactly 0 there */
            for (size_t pl = 0; pl < (size_t)p->n * p->c; pl++)
                for (int ih = 0; ih < p->h; ih++)
                    for (int iw = 0; iw < p->w; iw++)
                        if (ih >= oh * p->k || iw >= ow * p->k) {
                            size_t i = (pl * p->h + (size_t)ih) * p->w + (size_t)iw;
                            CU_ASSERT(dx[i] == 0 && dxf[i] == 0);
                        }
            /* finite differences of the forward pass (distinct values:
             * the argmax does not move within the step) */
            const double h = 1e-6;
            double worst = 0;
            for (size_t i = 0; i < nx; i++) {
                double keep = x[i];
                x[i] = keep + h;
                double lp = pool_loss(p, maxp, x, g, y);
                x[i] = keep - h;
                double lm = pool_loss(p, maxp, x, g, y);
                x[i] = keep;
                double e = fabs((lp - lm) / (2 * h) - dx[i]);
                if (!(e <= worst))
                    worst = e;
            }
            if (!(worst < 1e-8))
                fprintf(stderr, "\n%s case %d: finite differences off by %g\n", nm, pc, worst);
            CU_ASSERT(worst < 1e-8);
        }
        free(x), free(g), free(y), free(dx), free(want), free(wdx);
        free(xf), free(gf), free(yf), free(dxf);
    }
}

/* Ties go to the first maximal element in row-major order; a NaN is a
 * window's maximum. */
static void test_maxpool_ties(void)
{
    /* one 4×5 plane, k = 2: four windows and a column left over */
    static const double x[20] = {
        1,  1, 0, 5,  9,
        1,  1, 5, 5,  9,
        -1, -2, 2, 2, 9,
        -1, -3, 3, 3, 9,
    };
    static const double g[4] = {10, 20, 30, 40};
    double y[4], dx[20];
    float xf[20], gf[4], yf[4], dxf[20];
    for (int i = 0; i < 20; i++)
        xf[i] = (float)x[i];
    for (int i = 0; i < 4; i++)
        gf[i] = (float)g[i];
    bp_maxpool2d_d(1, 1, 4, 5, 2, x, y);
    bp_maxpool2d_grad_d(1, 1, 4, 5, 2, x, g, dx);
    bp_maxpool2d_f(1, 1, 4, 5, 2, xf, yf);
    bp_maxpool2d_grad_f(1, 1, 4, 5, 2, xf, gf, dxf);
    static const double want_y[4] = {1, 5, -1, 3};
    double want_dx[20] = {0};
    want_dx[0] = 10;  /* all four equal: (0,0) */
    want_dx[3] = 20;  /* 5 at (0,3), (1,2), (1,3): (0,3) */
    want_dx[10] = 30; /* -1 at (2,0) and (3,0): (2,0) */
    want_dx[17] = 40; /* 3 at (3,2) and (3,3): (3,2) */
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(y[i], want_y[i]);
        CU_ASSERT_EQUAL(yf[i], (float)want_y[i]);
    }
    for (int i = 0; i < 20; i++) {
        CU_ASSERT_EQUAL(dx[i], want_dx[i]);
        CU_ASSERT_EQUAL(dxf[i], (float)want_dx[i]);
    }

    /* NaN: it is the maximum and gets the gradient (the first NaN) */
    double xn[4] = {1, NAN, 7, NAN}, yn[1], dxn[4], gn[1] = {2};
    bp_maxpool2d_d(1, 1, 2, 2, 2, xn, yn);
    bp_maxpool2d_grad_d(1, 1, 2, 2, 2, xn, gn, dxn);
    CU_ASSERT(isnan(yn[0]));
    CU_ASSERT(dxn[0] == 0 && dxn[1] == 2 && dxn[2] == 0 && dxn[3] == 0);
}

/* ---------------------------------------------------------------- PyTorch */

static const char torch_script[] =
    "import sys\n"
    "import torch\n"
    "import torch.nn.functional as F\n"
    "torch.set_default_dtype(torch.float64)\n"
    "vals = [float(v) for v in open(sys.argv[1]).read().split()]\n"
    "pos = 0\n"
    "def take(count):\n"
    "    global pos\n"
    "    out = vals[pos:pos + count]\n"
    "    pos += count\n"
    "    return out\n"
    "out = open(sys.argv[2], 'w')\n"
    "def emit(t):\n"
    "    out.write(' '.join(repr(v) for v in t.detach().reshape(-1).tolist()) + '\\n')\n"
    "ncases = int(take(1)[0])\n"
    "for _ in range(ncases):\n"
    "    n, c, h, w, o, kh, kw, s, p, pk = [int(v) for v in take(10)]\n"
    "    x = torch.tensor(take(n * c * h * w)).reshape(n, c, h, w).requires_grad_()\n"
    "    k = torch.tensor(take(o * c * kh * kw)).reshape(o, c, kh, kw).requires_grad_()\n"
    "    b = torch.tensor(take(o)).requires_grad_()\n"
    "    y = F.conv2d(x, k, b, stride=s, padding=p)\n"
    "    g = torch.tensor(take(y.numel())).reshape(y.shape)\n"
    "    y.backward(g)\n"
    "    for t in (y, x.grad, k.grad, b.grad):\n"
    "        emit(t)\n"
    "    xp = x.detach().clone().requires_grad_()\n"
    "    for pool in (F.max_pool2d, F.avg_pool2d):\n"
    "        xp.grad = None\n"
    "        yp = pool(xp, pk)\n"
    "        yp.backward(torch.ones_like(yp) * 0.5)\n"
    "        emit(yp)\n"
    "        emit(xp.grad)\n";

static void put_values(FILE *f, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%.17g\n", v[i]);
}

/* The window's winner by the contract's rule, in double: the first NaN,
 * else the first maximal value in row-major order. */
static size_t rule_argmax(const double *plane, int w, int k, int i, int j)
{
    size_t best = SIZE_MAX;
    for (int u = 0; u < k; u++)
        for (int v = 0; v < k; v++) {
            size_t at = (size_t)(i * k + u) * (size_t)w + (size_t)(j * k + v);
            if (isnan(plane[at]))
                return at;
            if (best == SIZE_MAX || plane[at] > plane[best])
                best = at;
        }
    return best;
}

/* 2×2 windows have a path of their own (plain loops, without branches);
 * it must choose exactly as the rule does where choosing is hard: values
 * from {-1, -0, +0, 1} (ties everywhere, and -0 against +0, which compare
 * equal but differ in sign), with a NaN in some planes. Odd sizes leave a
 * row and a column over. Float and double, value and gradient bit for bit
 * (the sign of a zero included). */
static void test_maxpool2_ties(void)
{
    enum { N = 2, C = 3, H = 7, W = 9, OH = H / 2, OW = W / 2 };
    enum { NX = N * C * H * W, NY = N * C * OH * OW };
    static const double values[4] = {-1, -0.0, 0.0, 1};
    double x[NX], g[NY], y[NY], dx[NX], want_y[NY], want_dx[NX];
    float xf[NX], gf[NY], yf[NY], dxf[NX];
    bp_rng r;
    bp_rng_seed(&r, 77);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < NX; i++)
            x[i] = values[bp_rng_next(&r) % 4];
        /* a NaN in plane 1 (first in its window) and plane 4 (last) */
        x[1 * H * W + 2 * W + 2] = NAN;
        x[4 * H * W + 3 * W + 5] = NAN;
        for (int i = 0; i < NY; i++)
            g[i] = i + 1;
        memset(want_dx, 0, sizeof want_dx);
        for (int pl = 0; pl < N * C; pl++)
            for (int i = 0; i < OH; i++)
                for (int j = 0; j < OW; j++) {
                    size_t a = rule_argmax(x + pl * H * W, W, 2, i, j);
                    int yi = (pl * OH + i) * OW + j;
                    want_y[yi] = x[pl * H * W + (int)a];
                    want_dx[pl * H * W + (int)a] = g[yi];
                }
        for (int i = 0; i < NX; i++)
            xf[i] = (float)x[i];
        for (int i = 0; i < NY; i++)
            gf[i] = (float)g[i];
        fill_nan_d(y, NY), fill_nan_d(dx, NX), fill_nan_f(yf, NY), fill_nan_f(dxf, NX);
        bp_maxpool2d_d(N, C, H, W, 2, x, y);
        bp_maxpool2d_grad_d(N, C, H, W, 2, x, g, dx);
        bp_maxpool2d_f(N, C, H, W, 2, xf, yf);
        bp_maxpool2d_grad_f(N, C, H, W, 2, xf, gf, dxf);
        int wrong = 0;
        for (int i = 0; i < NY; i++) {
            if (isnan(want_y[i]))
                wrong += !isnan(y[i]) || !isnan(yf[i]);
            else
                wrong += y[i] != want_y[i] || signbit(y[i]) != signbit(want_y[i]) ||
                         yf[i] != (float)want_y[i] || !signbit(yf[i]) != !signbit(want_y[i]);
        }
        for (int i = 0; i < NX; i++)
            wrong += dx[i] != want_dx[i] || dxf[i] != (float)want_dx[i];
        if (wrong)
            fprintf(stderr, "\nmaxpool 2x2, round %d: %d values differ from the rule\n", round,
                    wrong);
        CU_ASSERT_EQUAL(wrong, 0);
    }
}

/* Reads the next line of numbers into v (n of them); 0 on success. */
static int get_line(FILE *f, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fscanf(f, "%lf", &v[i]) != 1)
            return -1;
    return 0;
}

static void test_pytorch(void)
{
    if (test_run("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1", NULL, NULL) != 0) {
        /* make test installs python3-torch (scripts/install-deps.sh); say
         * plainly that this comparison did not run */
        fprintf(stderr, "\nNOTE: conv kernels NOT compared with PyTorch: /usr/bin/python3 "
                        "cannot import torch (sh scripts/install-deps.sh installs it)\n");
        return;
    }
    char *script = test_tmp_path("conv_torch.py");
    char *in = test_tmp_path("conv_torch.in");
    char *outp = test_tmp_path("conv_torch.out");
    CU_ASSERT_EQUAL_FATAL(test_write_file(script, torch_script), 0);
    FILE *f = fopen(in, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static const int pool_k[NCASES] = {2, 3, 2, 4, 3, 2, 3, 2, 2};
    fprintf(f, "%d\n", NCASES * 2);
    bp_rng r;
    bp_rng_seed(&r, 2024);
    double *data[NCASES * 2][4];
    for (int c = 0; c < NCASES; c++)
        for (int n = 1; n <= 3; n += 2) {
            const conv_case *cc = &cases[c];
            bp_conv2d_shape s = shape_of(cc);
            int pk = pool_k[c] <= cc->h && pool_k[c] <= cc->w ? pool_k[c] : 1;
            double **d = data[2 * c + n / 2];
            d[0] = dalloc(x_len(&s, n)), d[1] = dalloc(k_len(&s)), d[2] = dalloc((size_t)s.o);
            d[3] = dalloc(y_len(&s, n));
            randn(&r, d[0], x_len(&s, n)), randn(&r, d[1], k_len(&s));
            randn(&r, d[2], (size_t)s.o), randn(&r, d[3], y_len(&s, n));
            fprintf(f, "%d %d %d %d %d %d %d %d %d %d\n", n, cc->c, cc->h, cc->w, cc->o, cc->kh,
                    cc->kw, cc->stride, cc->pad, pk);
            put_values(f, d[0], x_len(&s, n));
            put_values(f, d[1], k_len(&s));
            put_values(f, d[2], (size_t)s.o);
            put_values(f, d[3], y_len(&s, n));
        }
    CU_ASSERT_EQUAL(fclose(f), 0);
    char *cmd = test_format("/usr/bin/python3 %s %s %s", script, in, outp);
    char *err = NULL;
    int rc = test_run(cmd, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "\n%s failed: %s\n", cmd, err ? err : "");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    FILE *res = fopen(outp, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(res);
    for (int c = 0; c < NCASES; c++)
        for (int n = 1; n <= 3; n += 2) {
            const conv_case *cc = &cases[c];
            bp_conv2d_shape s = shape_of(cc);
            int pk = pool_k[c] <= cc->h && pool_k[c] <= cc->w ? pool_k[c] : 1;
            double **d = data[2 * c + n / 2];
            size_t nx = x_len(&s, n), ny = y_len(&s, n), nk = k_len(&s), no = (size_t)s.o;
            size_t np = (size_t)n * s.c * (s.h / pk) * (s.w / pk);
            double *want = dalloc(nx > ny ? (nx > nk ? nx : nk) : (ny > nk ? ny : nk));
            double *got = dalloc(nx > ny ? (nx > nk ? nx : nk) : (ny > nk ? ny : nk));
            double *sd = dalloc(bp_conv2d_scratch_reals(&s));
            char what[96];
            snprintf(what, sizeof what, "vs PyTorch: conv case %d n %d", c, n);
            CU_ASSERT_FATAL(get_line(res, want, ny) == 0);
            bp_conv2d_d(&s, n, d[0], d[1], d[2], got, sd);
            CU_ASSERT(close_d(what, got, want, NULL, ny, 1e-12, 1e-12));
            CU_ASSERT_FATAL(get_line(res, want, nx) == 0);
            bp_conv2d_grad_input_d(&s, n, d[3], d[1], got, sd);
            CU_ASSERT(close_d(what, got, want, NULL, nx, 1e-12, 1e-12));
            CU_ASSERT_FATAL(get_line(res, want, nk) == 0);
            bp_conv2d_grad_kernel_d(&s, n, d[3], d[0], 1, 0, got, sd);
            CU_ASSERT(close_d(what, got, want, NULL, nk, 1e-12, 1e-12));
            CU_ASSERT_FATAL(get_line(res, want, no) == 0);
            bp_conv2d_grad_bias_d(&s, n, d[3], 1, 0, got);
            CU_ASSERT(close_d(what, got, want, NULL, no, 1e-12, 1e-12));
            double *half = dalloc(np);
            for (size_t i = 0; i < np; i++)
                half[i] = 0.5;
            for (int maxp = 1; maxp >= 0; maxp--) {
                snprintf(what, sizeof what, "vs PyTorch: %s case %d n %d k %d",
                         maxp ? "maxpool" : "avgpool", c, n, pk);
                CU_ASSERT_FATAL(get_line(res, want, np) == 0);
                if (maxp)
                    bp_maxpool2d_d(n, s.c, s.h, s.w, pk, d[0], got);
                else
                    bp_avgpool2d_d(n, s.c, s.h, s.w, pk, d[0], got);
                CU_ASSERT(close_d(what, got, want, NULL, np, 1e-14, 1e-14));
                CU_ASSERT_FATAL(get_line(res, want, nx) == 0);
                if (maxp)
                    bp_maxpool2d_grad_d(n, s.c, s.h, s.w, pk, d[0], half, got);
                else
                    bp_avgpool2d_grad_d(n, s.c, s.h, s.w, pk, half, got);
                CU_ASSERT(close_d(what, got, want, NULL, nx, 1e-14, 1e-14));
            }
            free(half), free(want), free(got), free(sd);
            for (int i = 0; i < 4; i++)
                free(d[i]);
        }
    fclose(res);
    free(err), free(cmd), free(script), free(in), free(outp);
}

void register_conv(void);
void register_conv(void)
{
    CU_pSuite s = CU_add_suite("conv", NULL, NULL);
    CU_add_test(s, "shapes", test_shape_init);
    CU_add_test(s, "conv2d, float and double, against the formula", test_conv_reference);
    CU_add_test(s, "conv2d gradients against finite differences", test_conv_finite_differences);
    CU_add_test(s, "grad_kernel, grad_bias: alpha and beta", test_alpha_beta);
    CU_add_test(s, "pooling against the formula and finite differences", test_pool_reference);
    CU_add_test(s, "maxpool ties and NaN", test_maxpool_ties);
    CU_add_test(s, "maxpool 2x2: ties, signed zeros, NaN", test_maxpool2_ties);
    CU_add_test(s, "against PyTorch", test_pytorch);
}
