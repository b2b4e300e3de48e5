/* test_runtime.c — the runtime's RNG, fill helpers, GEMM and gradient
 * check. The gradient check runs on a linear model written by hand here
 * (the compiler is not involved), in float and double, correct and with a
 * deliberately broken backward. */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ RNG */

static void test_rng_reference(void)
{
    /* Values from an independent implementation of splitmix64 +
     * xoshiro256**: the stream must be the same on every machine. */
    bp_rng r;
    bp_rng_seed(&r, 42);
    CU_ASSERT_EQUAL(bp_rng_next(&r), 0x15780b2e0c2ec716ULL);
    CU_ASSERT_EQUAL(bp_rng_next(&r), 0x6104d9866d113a7eULL);
    CU_ASSERT_EQUAL(bp_rng_next(&r), 0xae17533239e499a1ULL);
    CU_ASSERT_EQUAL(bp_rng_next(&r), 0xecb8ad4703b360a1ULL);
    bp_rng_seed(&r, 0);
    CU_ASSERT_EQUAL(bp_rng_next(&r), 0x99ec5f36cb75f2b4ULL);
    CU_ASSERT_EQUAL(bp_rng_next(&r), 0xbf6e1f784956452aULL);
    bp_rng_seed(&r, 42);
    CU_ASSERT_EQUAL(bp_rng_uniform(&r, 2, 5), 2.2515889131796465);
}

static void test_rng_reproducible(void)
{
    bp_rng a, b, c;
    bp_rng_seed(&a, 7);
    bp_rng_seed(&b, 7);
    bp_rng_seed(&c, 8);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        double x = bp_rng_normal(&a, 0, 1), y = bp_rng_normal(&b, 0, 1);
        CU_ASSERT_EQUAL(x, y);
        differ += x != bp_rng_normal(&c, 0, 1);
    }
    CU_ASSERT(differ > 990);
}

static void test_rng_uniform(void)
{
    bp_rng r;
    bp_rng_seed(&r, 1);
    double sum = 0, lo = 1e9, hi = -1e9;
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        double v = bp_rng_uniform(&r, -2, 3);
        CU_ASSERT_FATAL(v >= -2 && v < 3);
        sum += v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    CU_ASSERT(fabs(sum / N - 0.5) < 0.02);
    CU_ASSERT(lo < -1.99 && hi > 2.99);
}

static void test_rng_normal(void)
{
    bp_rng r;
    bp_rng_seed(&r, 2);
    double s = 0, s2 = 0;
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        double v = bp_rng_normal(&r, 3, 2);
        CU_ASSERT_FATAL(isfinite(v));
        s += v;
        s2 += v * v;
    }
    double mean = s / N, var = s2 / N - mean * mean;
    CU_ASSERT(fabs(mean - 3) < 0.03);
    CU_ASSERT(fabs(sqrt(var) - 2) < 0.03);
}

static void test_fill(void)
{
    float f[100];
    double d[100];
    bp_rng r;
    bp_fill_value(f, 4, 100, 0.25);
    bp_fill_value(d, 8, 100, -1.5);
    for (int i = 0; i < 100; i++) {
        CU_ASSERT_EQUAL(f[i], 0.25f);
        CU_ASSERT_EQUAL(d[i], -1.5);
    }
    /* The same seed gives the same values in both precisions. */
    bp_rng_seed(&r, 5);
    bp_fill_normal(&r, d, 8, 100, 0, 0.5);
    bp_rng_seed(&r, 5);
    bp_fill_normal(&r, f, 4, 100, 0, 0.5);
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(f[i], (float)d[i]);
    bp_rng_seed(&r, 6);
    bp_fill_uniform(&r, d, 8, 100, -0.1, 0.1);
    for (int i = 0; i < 100; i++)
        CU_ASSERT(d[i] >= -0.1 && d[i] < 0.1);
    /* A range only a few floats wide: rounding to float must not reach hi. */
    float hi = 1.0f + 1.0f / 1048576;
    bp_rng_seed(&r, 7);
    for (int k = 0; k < 100; k++) {
        bp_fill_uniform(&r, f, 4, 100, 1.0, hi);
        for (int i = 0; i < 100; i++)
            CU_ASSERT_FATAL(f[i] >= 1.0f && f[i] < hi);
    }
    /* Nor fall below lo: (float)0.7 < 0.7, so draws just above 0.7 round
     * down below it unless moved back inside. */
    bp_rng_seed(&r, 8);
    for (int k = 0; k < 20; k++) {
        bp_fill_uniform(&r, f, 4, 100, 0.7, 0.7 + 1e-7);
        for (int i = 0; i < 100; i++)
            CU_ASSERT_FATAL((double)f[i] >= 0.7 && (double)f[i] < 0.7 + 1e-7);
    }
    bp_fill_uniform(&r, f, 4, 100, -0.7 - 1e-7, -0.7);
    for (int i = 0; i < 100; i++)
        CU_ASSERT_FATAL((double)f[i] >= -0.7 - 1e-7 && (double)f[i] < -0.7);
}

/* ------------------------------------------------------------------ GEMM */

/* The reference: op(A)·op(B) by the definition, in double. */
static void naive(int ta, int tb, int m, int n, int k, double alpha,
                  const double *a, int lda, const double *b, int ldb,
                  double beta, double *c, int ldc)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++)
                s += (ta ? a[p * lda + i] : a[i * lda + p])
                     * (tb ? b[j * ldb + p] : b[p * ldb + j]);
            c[i * ldc + j] = alpha * s + (beta == 0 ? 0 : beta * c[i * ldc + j]);
        }
}

static int gemm_case(int prec, int ta, int tb, int m, int n, int k, int pad,
                     double alpha, double beta)
{
    bp_rng r;
    bp_rng_seed(&r, (unsigned long long)(m * 1000 + n * 10 + k));
    int arows = ta ? k : m, acols = ta ? m : k;
    int brows = tb ? n : k, bcols = tb ? k : n;
    int lda = acols + pad, ldb = bcols + 2 * pad, ldc = n + 3 * pad;
    size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb,
           nc = (size_t)m * ldc + 1;
    double *a = malloc(na * 8), *b = malloc(nb * 8), *c = malloc(nc * 8),
           *want = malloc(nc * 8);
    float *af = malloc(na * 4), *bf = malloc(nb * 4), *cf = malloc(nc * 4);
    bp_fill_uniform(&r, a, 8, na, -1, 1);
    bp_fill_uniform(&r, b, 8, nb, -1, 1);
    bp_fill_uniform(&r, c, 8, nc, -1, 1);
    for (size_t i = 0; i < na; i++) af[i] = (float)(a[i] = (float)a[i]);
    for (size_t i = 0; i < nb; i++) bf[i] = (float)(b[i] = (float)b[i]);
    for (size_t i = 0; i < nc; i++) cf[i] = (float)(c[i] = (float)c[i]);
    if (beta == 0) /* must not be read */
        for (size_t i = 0; i < nc; i++)
            if (i % (size_t)ldc < (size_t)n) cf[i] = (float)(c[i] = NAN);
    memcpy(want, c, nc * 8);
    naive(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, want, ldc);
    if (prec == 8)
        bp_gemm_d(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        bp_gemm_f(ta, tb, m, n, k, (float)alpha, af, lda, bf, ldb,
                  (float)beta, cf, ldc);
    int bad = 0;
    double tol = (prec == 8 ? 1e-13 : 2e-6) * (k + 4);
    for (size_t i = 0; i < nc; i++) {
        double got = prec == 8 ? c[i] : cf[i];
        int in_c = i / (size_t)ldc < (size_t)m && i % (size_t)ldc < (size_t)n;
        if (!in_c) {
            /* Padding between rows is never touched. */
            if (!(got == want[i] || (isnan(got) && isnan(want[i]))))
                bad++;
        } else if (!(fabs(got - want[i]) <= tol)) {
            bad++;
        }
    }
    free(a); free(b); free(c); free(want); free(af); free(bf); free(cf);
    return bad;
}

static void test_gemm_all(void)
{
    static const int sizes[][3] = {
        {1, 1, 1}, {3, 5, 7}, {64, 16, 4}, {16, 4, 64}, {5, 1, 9},
        {1, 7, 3}, {67, 130, 71}, {130, 3, 97}, {33, 65, 129}, {70, 70, 1}};
    static const double coef[][2] = {{1, 0}, {1, 1}, {-0.5, 0.75}, {2, 0}};
    for (int prec = 4; prec <= 8; prec += 4)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
                    for (int pad = 0; pad <= 3; pad += 3)
                        for (int cf = 0; cf < 4; cf++) {
                            int bad = gemm_case(prec, ta, tb, sizes[s][0],
                                                sizes[s][1], sizes[s][2], pad,
                                                coef[cf][0], coef[cf][1]);
                            if (bad)
                                CU_FAIL("gemm differs from the naive product");
                            if (bad)
                                fprintf(stderr, "gemm prec %d ta %d tb %d "
                                        "%dx%dx%d pad %d alpha %g beta %g: "
                                        "%d bad\n", prec, ta, tb, sizes[s][0],
                                        sizes[s][1], sizes[s][2], pad,
                                        coef[cf][0], coef[cf][1], bad);
                        }
}

static void test_gemm_degenerate(void)
{
    double c[4] = {NAN, NAN, NAN, NAN}, a[1] = {NAN}, b[1] = {NAN};
    /* k == 0 with beta 0: C becomes 0, nothing read. */
    bp_gemm_d(0, 0, 2, 2, 0, 1.0, a, 1, b, 1, 0.0, c, 2);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(c[i], 0.0);
    /* alpha == 0: only beta * C. */
    double d[4] = {1, 2, 3, 4};
    bp_gemm_d(0, 0, 2, 2, 1, 0.0, a, 1, b, 2, 2.0, d, 2);
    CU_ASSERT_EQUAL(d[3], 8.0);
    /* m == 0: nothing at all. */
    float e[1] = {5};
    bp_gemm_f(0, 0, 0, 1, 1, 1.0f, NULL, 1, NULL, 1, 0.0f, e, 1);
    CU_ASSERT_EQUAL(e[0], 5.0f);
}

/* Shapes for the fast paths (rank-1, matrix-vector, short k), including
 * vectors longer than the internal buffers (512 entries) so the pieces
 * are stitched together, and strided vectors that get gathered. */
static void test_gemm_paths(void)
{
    static const int sizes[][3] = {
        {1, 600, 1}, {600, 3, 1}, {1, 37, 700}, {9, 1, 700}, {600, 1, 3},
        {700, 5, 20}, {5, 600, 6}, {1, 1, 40}, {2, 700, 17}, {40, 9, 7}};
    static const double coef[][2] = {{1, 0}, {-0.5, 0.75}, {2, 1}};
    for (int prec = 4; prec <= 8; prec += 4)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
                    for (int pad = 0; pad <= 3; pad += 3)
                        for (int cf = 0; cf < 3; cf++) {
                            int bad = gemm_case(prec, ta, tb, sizes[s][0],
                                                sizes[s][1], sizes[s][2], pad,
                                                coef[cf][0], coef[cf][1]);
                            if (bad)
                                CU_FAIL("gemm fast path differs");
                            if (bad)
                                fprintf(stderr, "gemm path prec %d ta %d tb %d "
                                        "%dx%dx%d pad %d alpha %g beta %g: "
                                        "%d bad\n", prec, ta, tb, sizes[s][0],
                                        sizes[s][1], sizes[s][2], pad,
                                        coef[cf][0], coef[cf][1], bad);
                        }
}

/* ------------------------------------------------------- gradient check */

/* L = mean_i (w·x_i + b - y_i)^2 with w[3], b scalar; inputs x[3] (wrt)
 * and y. bug 1: backward gets dw[0] wrong; bug 2: writes a gradient into
 * a frozen b; bug 3: forgets to write dx. */
#define LIN_DEFINE(T, S)                                                      \
    static size_t lin_ws_##S(int n) { return (size_t)n * sizeof(T); }         \
    static double lin_fwd_##S(const void *th_, const void *const in[], int n, \
                              void *ws)                                       \
    {                                                                         \
        const T *th = th_, *x = in[0], *y = in[1];                            \
        T *r = ws, L = 0;                                                     \
        for (int i = 0; i < n; i++) {                                         \
            T s = th[3] - y[i];                                               \
            for (int j = 0; j < 3; j++)                                       \
                s += th[j] * x[3 * i + j];                                    \
            r[i] = s;                                                         \
            L += s * s;                                                       \
        }                                                                     \
        return (double)(L / (T)n);                                            \
    }                                                                         \
    static void lin_bwd_##S(const void *th_, const void *const in[], int n,   \
                            void *ws, void *g_, void *const gin[], int bug,   \
                            int b_frozen)                                     \
    {                                                                         \
        const T *th = th_, *x = in[0], *r = ws;                               \
        T *g = g_, *gx = gin ? gin[0] : NULL;                                 \
        for (int j = 0; j < 4; j++)                                           \
            g[j] = 0;                                                         \
        for (int i = 0; i < n; i++) {                                         \
            T d = 2 * r[i] / (T)n;                                            \
            for (int j = 0; j < 3; j++) {                                     \
                g[j] += d * x[3 * i + j];                                     \
                if (gx && bug != 3)                                           \
                    gx[3 * i + j] = d * th[j];                                \
            }                                                                 \
            if (!b_frozen)                                                    \
                g[3] += d;                                                    \
        }                                                                     \
        if (bug == 1)                                                         \
            g[0] *= (T)1.5;                                                   \
        if (bug == 2)                                                         \
            g[3] = (T)0.5;                                                    \
    }                                                                         \
    static void lin_ok_##S(const void *th, const void *const in[], int n,     \
                           void *ws, void *g, void *const gin[])              \
    { lin_bwd_##S(th, in, n, ws, g, gin, 0, 0); }                             \
    static void lin_bad_##S(const void *th, const void *const in[], int n,    \
                            void *ws, void *g, void *const gin[])             \
    { lin_bwd_##S(th, in, n, ws, g, gin, 1, 0); }                             \
    static void lin_frz_##S(const void *th, const void *const in[], int n,    \
                            void *ws, void *g, void *const gin[])             \
    { lin_bwd_##S(th, in, n, ws, g, gin, 0, 1); }                             \
    static void lin_frzbad_##S(const void *th, const void *const in[], int n, \
                               void *ws, void *g, void *const gin[])          \
    { lin_bwd_##S(th, in, n, ws, g, gin, 2, 1); }                             \
    static void lin_nodx_##S(const void *th, const void *const in[], int n,   \
                             void *ws, void *g, void *const gin[])            \
    { lin_bwd_##S(th, in, n, ws, g, gin, 3, 0); }

LIN_DEFINE(float, f)
LIN_DEFINE(double, d)

static const bp_tensor_info lin_params[] = {
    {"w", 1, {3, 1, 1, 1}, 3, 0, 0, 0}, {"b", 0, {1, 1, 1, 1}, 1, 3, 0, 0}};
static const bp_tensor_info lin_params_frozen[] = {
    {"w", 1, {3, 1, 1, 1}, 3, 0, 0, 0}, {"b", 0, {1, 1, 1, 1}, 1, 3, 1, 0}};
static const bp_tensor_info lin_inputs[] = {
    {"x", 1, {3, 1, 1, 1}, 3, 0, 0, 1}, {"y", 0, {1, 1, 1, 1}, 1, 0, 0, 0}};

static bp_model lin_model(int rs, const bp_tensor_info *params,
                          void (*bwd_f)(const void *, const void *const[], int,
                                        void *, void *, void *const[]),
                          void (*bwd_d)(const void *, const void *const[], int,
                                        void *, void *, void *const[]))
{
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = "lin";
    m.real_size = rs;
    m.num_params = 4;
    m.num_param_tensors = 2;
    m.params = params;
    m.num_inputs = 2;
    m.inputs = lin_inputs;
    m.loss_name = "L";
    m.workspace_size = rs == 4 ? lin_ws_f : lin_ws_d;
    m.forward = rs == 4 ? lin_fwd_f : lin_fwd_d;
    m.backward = rs == 4 ? bwd_f : bwd_d;
    return m;
}

/* Runs bp_gradcheck on a batch of 5 with random theta and data. */
static double run_check(const bp_model *m, char *where, size_t size)
{
    enum { N = 5 };
    double th[4], x[3 * N], y[N];
    float thf[4], xf[3 * N], yf[N];
    bp_rng r;
    bp_rng_seed(&r, 11);
    bp_fill_normal(&r, th, 8, 4, 0, 1);
    bp_fill_normal(&r, x, 8, 3 * N, 0, 1);
    bp_fill_normal(&r, y, 8, N, 0, 1);
    for (int i = 0; i < 4; i++) thf[i] = (float)th[i];
    for (int i = 0; i < 3 * N; i++) xf[i] = (float)x[i];
    for (int i = 0; i < N; i++) yf[i] = (float)y[i];
    double x0 = x[0];
    const void *in_d[2] = {x, y}, *in_f[2] = {xf, yf};
    double e = -1;
    int rc = m->real_size == 8 ? bp_gradcheck(m, th, in_d, N, 0, &e, where, size)
                               : bp_gradcheck(m, thf, in_f, N, 0, &e, where, size);
    CU_ASSERT_EQUAL(rc, BP_OK);
    CU_ASSERT_EQUAL(x[0], x0); /* the caller's data is not touched */
    return e;
}

static void test_gradcheck_correct(void)
{
    char where[128];
    bp_model md = lin_model(8, lin_params, lin_ok_f, lin_ok_d);
    bp_model mf = lin_model(4, lin_params, lin_ok_f, lin_ok_d);
    double ed = run_check(&md, where, sizeof where);
    CU_ASSERT(ed >= 0 && ed < 1e-6);
    CU_ASSERT(strstr(where, "analytic") && strstr(where, "numeric"));
    double ef = run_check(&mf, where, sizeof where);
    CU_ASSERT(ef >= 0 && ef < 1e-3);
    /* Frozen b whose gradient is left at 0 is fine. */
    bp_model fz = lin_model(8, lin_params_frozen, lin_frz_f, lin_frz_d);
    CU_ASSERT(run_check(&fz, where, sizeof where) < 1e-6);
}

static void test_gradcheck_broken(void)
{
    char where[128];
    for (int rs = 4; rs <= 8; rs += 4) {
        bp_model m = lin_model(rs, lin_params, lin_bad_f, lin_bad_d);
        double e = run_check(&m, where, sizeof where);
        CU_ASSERT(e > 0.05);
        CU_ASSERT(strncmp(where, "w[0] analytic", 13) == 0);

        m = lin_model(rs, lin_params_frozen, lin_frzbad_f, lin_frzbad_d);
        CU_ASSERT(run_check(&m, where, sizeof where) >= 1.0);
        CU_ASSERT(strncmp(where, "b[0] analytic 0.5", 17) == 0);

        m = lin_model(rs, lin_params, lin_nodx_f, lin_nodx_d);
        CU_ASSERT(run_check(&m, where, sizeof where) > 1e30);
        CU_ASSERT(strncmp(where, "x[", 2) == 0);
    }
    /* No `where`: still works. */
    bp_model m = lin_model(8, lin_params, lin_ok_f, lin_ok_d);
    CU_ASSERT(run_check(&m, NULL, 0) < 1e-6);
}

/* A model with no parameters: L = mean over samples of sum x^2, x wrt. */
static size_t sq_ws(int n)
{
    (void)n;
    return 0;
}

static double sq_fwd(const void *th, const void *const in[], int n, void *ws)
{
    (void)th;
    (void)ws;
    const double *x = in[0];
    double L = 0;
    for (int i = 0; i < 2 * n; i++)
        L += x[i] * x[i];
    return L / n;
}

static void sq_bwd(const void *th, const void *const in[], int n, void *ws,
                   void *g, void *const gin[])
{
    (void)th;
    (void)ws;
    (void)g;
    const double *x = in[0];
    if (gin && gin[0])
        for (int i = 0; i < 2 * n; i++)
            ((double *)gin[0])[i] = 2 * x[i] / n;
}

static const bp_tensor_info sq_inputs[] = {{"x", 1, {2, 1, 1, 1}, 2, 0, 0, 1}};

/* Review fixes: NULL theta is fine without parameters; NULL inputs that
 * forward would read give -1 rather than a crash. */
static void test_gradcheck_null_args(void)
{
    char where[128];
    bp_model sq;
    memset(&sq, 0, sizeof sq);
    sq.abi_version = BP_ABI_VERSION;
    sq.name = "sq";
    sq.real_size = 8;
    sq.num_inputs = 1;
    sq.inputs = sq_inputs;
    sq.loss_name = "L";
    sq.workspace_size = sq_ws;
    sq.forward = sq_fwd;
    sq.backward = sq_bwd;
    double x[4] = {3, -1, 0.5, 2};
    const void *in[1] = {x};
    double e = -1;
    CU_ASSERT_EQUAL(bp_gradcheck(&sq, NULL, in, 2, 0, &e, where, sizeof where), BP_OK);
    CU_ASSERT(e >= 0 && e < 1e-6);
    CU_ASSERT(strncmp(where, "x[", 2) == 0);
    /* A wrt input that is NULL, or no inputs array at all: BP_ERR_ARG, the
     * message in `where`, *worst untouched. */
    const void *none[1] = {NULL};
    e = 42;
    CU_ASSERT_EQUAL(bp_gradcheck(&sq, NULL, none, 2, 0, &e, where, sizeof where),
                    BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(where, "bp_gradcheck: input 'x' is differentiated (wrt) but NULL");
    CU_ASSERT_EQUAL(e, 42);
    CU_ASSERT_EQUAL(bp_gradcheck(&sq, NULL, NULL, 2, 0, &e, where, sizeof where),
                    BP_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(where, "inputs is NULL but model"));
    CU_ASSERT_EQUAL(bp_gradcheck(&sq, NULL, in, 2, 0, NULL, where, sizeof where),
                    BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(where, "bp_gradcheck: missing argument (worst is NULL)");
    CU_ASSERT_EQUAL(bp_gradcheck(&sq, NULL, in, 0, 0, &e, where, sizeof where),
                    BP_ERR_ARG);
    /* theta NULL for a model that has parameters. */
    bp_model m = lin_model(8, lin_params, lin_ok_f, lin_ok_d);
    double xx[3] = {1, 2, 3}, y = 1;
    const void *in2[2] = {xx, &y};
    CU_ASSERT_EQUAL(bp_gradcheck(&m, NULL, in2, 1, 0, &e, where, sizeof where),
                    BP_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(where, "theta is NULL but model"));
    double th[4] = {0.1, 0.2, 0.3, 0.4};
    CU_ASSERT_EQUAL(bp_gradcheck(&m, th, NULL, 1, 0, &e, where, sizeof where), BP_ERR_ARG);
    const void *in3[2] = {NULL, &y};   /* x is wrt */
    CU_ASSERT_EQUAL(bp_gradcheck(&m, th, in3, 1, 0, &e, where, sizeof where), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_gradcheck(&m, th, in2, 1, 0, &e, where, sizeof where), BP_OK);
    CU_ASSERT(e < 1e-6);
}

void register_runtime(void);
void register_runtime(void)
{
    CU_pSuite s = CU_add_suite("runtime", NULL, NULL);
    CU_add_test(s, "rng reference stream", test_rng_reference);
    CU_add_test(s, "rng reproducible", test_rng_reproducible);
    CU_add_test(s, "rng uniform", test_rng_uniform);
    CU_add_test(s, "rng normal", test_rng_normal);
    CU_add_test(s, "fill helpers", test_fill);
    CU_add_test(s, "gemm vs naive", test_gemm_all);
    CU_add_test(s, "gemm degenerate", test_gemm_degenerate);
    CU_add_test(s, "gemm fast paths", test_gemm_paths);
    CU_add_test(s, "gradcheck correct", test_gradcheck_correct);
    CU_add_test(s, "gradcheck broken", test_gradcheck_broken);
    CU_add_test(s, "gradcheck NULL theta and inputs",
                test_gradcheck_null_args);
}
