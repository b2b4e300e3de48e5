/* test_fastmath.c — bp.h's fast exp, log, tanh and sigmoid against libm:
 * the error in ulp over the whole range (every 1021st float bit pattern,
 * a million random double bit patterns, dense sweeps where the functions
 * change, and the edges: ±0, subnormals, overflow and underflow
 * thresholds, ±inf, NaN), against the bound bp.h states; and the array
 * forms against the scalar ones on every instruction set this CPU runs.
 * References: double libm for the float functions, long double for the
 * double ones. */
#include "bp.h"
#include "internal.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bounds stated in bp.h, in ulp. */
#define ULP_EXP 2.0
#define ULP_LOG 2.0
#define ULP_TANH 3.0
#define ULP_SIGMOID 3.0

enum { F_EXP, F_LOG, F_TANH, F_SIGMOID, NFUNCS };
static const char *const fname[NFUNCS] = {"exp", "log", "tanh", "sigmoid"};
static const double bound[NFUNCS] = {ULP_EXP, ULP_LOG, ULP_TANH, ULP_SIGMOID};

static float fast_f(int f, float x)
{
    switch (f) {
    case F_EXP: return bp_expf(x);
    case F_LOG: return bp_logf(x);
    case F_TANH: return bp_tanhf(x);
    default: return bp_sigmoidf(x);
    }
}

static double fast_d(int f, double x)
{
    switch (f) {
    case F_EXP: return bp_exp(x);
    case F_LOG: return bp_log(x);
    case F_TANH: return bp_tanh(x);
    default: return bp_sigmoid(x);
    }
}

static double ref_f(int f, float xf)
{
    double x = xf;
    switch (f) {
    case F_EXP: return exp(x);
    case F_LOG: return log(x);
    case F_TANH: return tanh(x);
    default: return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
    }
}

static long double ref_d(int f, double xd)
{
    long double x = xd;
    switch (f) {
    case F_EXP: return expl(x);
    case F_LOG: return logl(x);
    case F_TANH: return tanhl(x);
    default: return x >= 0 ? 1 / (1 + expl(-x)) : expl(x) / (1 + expl(x));
    }
}

/* Error of got in ulp of the precision with `mant` mantissa bits and
 * smallest normal exponent emin, against the exact-ish ref. Infinities,
 * NaN and values that round to infinity must match exactly (else the
 * error is infinite). */
static double ulp_err(long double got, long double ref, long double rounded,
                      int mant, int emin)
{
    if (isnan(rounded) || isnan(got))
        return isnan(rounded) && isnan(got) ? 0 : INFINITY;
    if (isinf(rounded) || isinf(got))
        return got == rounded ? 0 : INFINITY;
    int e;
    frexpl(ref, &e);            /* ref = m 2^e, 0.5 <= |m| < 1 */
    e -= 1;
    if (e < emin || ref == 0)
        e = emin;
    long double ulp = ldexpl(1.0L, e - mant);
    return (double)(fabsl(got - ref) / ulp);
}

typedef struct {
    double worst;
    double at;
} worst_t;

static void note(worst_t *w, double err, double x)
{
    if (!(err <= w->worst)) {
        w->worst = err;
        w->at = x;
    }
}

static void check_float(int f, float x, worst_t *w)
{
    double ref = ref_f(f, x);
    float got = fast_f(f, x);
    note(w, ulp_err(got, ref, (float)ref, 23, -126), x);
}

static void check_double(int f, double x, worst_t *w)
{
    long double ref = ref_d(f, x);
    double got = fast_d(f, x);
    note(w, ulp_err(got, ref, (double)ref, 52, -1022), x);
}

static const double edges[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-300, -1e-300, 4.9e-324, -4.9e-324,
    1e-45, 1.4e-45, 1.17549435e-38, 2.2250738585072014e-308, 88.72283,
    88.7228394, 88.73, 88.8, 89.0, -87.33654, -103.2789, -103.97, -104.0,
    -110, 709.78, 709.782712893384, 709.79, 710, -708.39, -745.13, -745.14,
    -746, -800, 9.0, -9.0, 9.01, 19.06, 20, 40, -40, 1e10, -1e10, 3.4e38,
    -3.4e38, 1.7e308, -1.7e308, 0.34657359, -0.34657359, 1e-8, -1e-8,
    1.0000001, 0.99999994, 0.70710678, 1.41421356};

static void test_accuracy_float(void)
{
    for (int f = 0; f < NFUNCS; f++) {
        worst_t w = {0, 0};
        /* every 1021st bit pattern: the whole range, both signs, NaNs */
        for (unsigned long long u = 0; u < 0x100000000ull; u += 1021) {
            float x;
            uint32_t b = (uint32_t)u;
            memcpy(&x, &b, 4);
            check_float(f, x, &w);
        }
        /* dense where the functions change */
        for (int i = -200000; i <= 200000; i++)
            check_float(f, (float)i * (f == F_LOG ? 1e-5f : 5e-4f) +
                               (f == F_LOG ? 2.0f : 0.0f), &w);
        for (size_t i = 0; i < sizeof edges / sizeof *edges; i++)
            check_float(f, (float)edges[i], &w);
        check_float(f, INFINITY, &w);
        check_float(f, -INFINITY, &w);
        check_float(f, NAN, &w);
        check_float(f, -NAN, &w);
        check_float(f, FLT_MAX, &w);
        check_float(f, FLT_MIN, &w);
        check_float(f, 1.40129846e-45f, &w);
        printf("  float %-7s max error %.2f ulp at %.9g (bound %.0f)\n",
               fname[f], w.worst, w.at, bound[f]);
        CU_ASSERT(w.worst <= bound[f]);
    }
}

static void test_accuracy_double(void)
{
    bp_rng r;
    bp_rng_seed(&r, 2024);
    for (int f = 0; f < NFUNCS; f++) {
        worst_t w = {0, 0};
        /* random bit patterns: every exponent, both signs, NaNs */
        for (int i = 0; i < 400000; i++) {
            uint64_t b = bp_rng_next(&r);
            double x;
            memcpy(&x, &b, 8);
            check_double(f, x, &w);
        }
        /* uniform over the ranges where the value is neither 0, 1 nor
         * infinite */
        double lo = f == F_EXP ? -750 : f == F_LOG ? 0 : -40;
        double hi = f == F_EXP ? 750 : f == F_LOG ? 4 : 40;
        for (int i = 0; i < 400000; i++)
            check_double(f, bp_rng_uniform(&r, lo, hi), &w);
        /* near 0 (and near 1 for log) at every scale */
        for (int i = 0; i < 200000; i++) {
            double x = ldexp(bp_rng_uniform(&r, 0.5, 1), -(int)(i % 1080));
            check_double(f, f == F_LOG ? 1 + x : i % 2 ? x : -x, &w);
        }
        for (size_t i = 0; i < sizeof edges / sizeof *edges; i++)
            check_double(f, edges[i], &w);
        check_double(f, INFINITY, &w);
        check_double(f, -INFINITY, &w);
        check_double(f, NAN, &w);
        check_double(f, DBL_MAX, &w);
        check_double(f, DBL_MIN, &w);
        printf("  double %-7s max error %.2f ulp at %.17g (bound %.0f)\n",
               fname[f], w.worst, w.at, bound[f]);
        CU_ASSERT(w.worst <= bound[f]);
    }
}

/* The special values bp.h promises, exactly. */
static void test_special_values(void)
{
    CU_ASSERT_EQUAL(bp_expf(-INFINITY), 0.0f);
    CU_ASSERT(isinf(bp_expf(INFINITY)) && bp_expf(INFINITY) > 0);
    CU_ASSERT(isinf(bp_expf(89.0f)));
    CU_ASSERT_EQUAL(bp_expf(-104.0f), 0.0f);
    CU_ASSERT(bp_expf(-100.0f) > 0 && bp_expf(-100.0f) < FLT_MIN);
    CU_ASSERT_EQUAL(bp_expf(0.0f), 1.0f);
    CU_ASSERT_EQUAL(bp_exp(0.0), 1.0);
    CU_ASSERT_EQUAL(bp_exp(-INFINITY), 0.0);
    CU_ASSERT(isinf(bp_exp(710.0)));
    CU_ASSERT(bp_exp(-740.0) > 0 && bp_exp(-740.0) < DBL_MIN);
    CU_ASSERT(isnan(bp_expf(NAN)) && isnan(bp_exp(NAN)));

    CU_ASSERT(isinf(bp_logf(0.0f)) && bp_logf(0.0f) < 0);
    CU_ASSERT(isinf(bp_logf(-0.0f)) && bp_logf(-0.0f) < 0);
    CU_ASSERT(isnan(bp_logf(-1.0f)) && isnan(bp_log(-1e-300)));
    CU_ASSERT(isinf(bp_log(INFINITY)) && bp_log(INFINITY) > 0);
    CU_ASSERT(isnan(bp_logf(-INFINITY)));
    CU_ASSERT_EQUAL(bp_logf(1.0f), 0.0f);
    CU_ASSERT_EQUAL(bp_log(1.0), 0.0);
    CU_ASSERT(isnan(bp_log(NAN)));

    CU_ASSERT_EQUAL(bp_tanhf(INFINITY), 1.0f);
    CU_ASSERT_EQUAL(bp_tanhf(-INFINITY), -1.0f);
    CU_ASSERT_EQUAL(bp_tanh(-INFINITY), -1.0);
    CU_ASSERT(bp_tanhf(-0.0f) == 0 && signbit(bp_tanhf(-0.0f)));
    CU_ASSERT(bp_tanh(-0.0) == 0 && signbit(bp_tanh(-0.0)));
    CU_ASSERT_EQUAL(bp_tanh(1e-300), 1e-300);
    CU_ASSERT(isnan(bp_tanhf(NAN)) && isnan(bp_tanh(NAN)));

    CU_ASSERT_EQUAL(bp_sigmoidf(-INFINITY), 0.0f);
    CU_ASSERT_EQUAL(bp_sigmoidf(INFINITY), 1.0f);
    CU_ASSERT_EQUAL(bp_sigmoid(0.0), 0.5);
    CU_ASSERT_EQUAL(bp_sigmoid(-0.0), 0.5);
    CU_ASSERT(bp_sigmoidf(-100.0f) > 0);       /* e^-100, not 0 */
    CU_ASSERT(isnan(bp_sigmoidf(NAN)) && isnan(bp_sigmoid(NAN)));
}

/* The array forms, on every instruction set this CPU runs, at lengths
 * around the block size and its half (the last block's two paths) and
 * past the length that is split among threads (at 1, 2 and 3 threads),
 * in place and not: the scalar functions' bits
 * (gcc, which does not contract a * b + c into fused multiply-adds under
 * -std=c99), or within the stated bound of them (other compilers). */
static void test_arrays(void)
{
    static const size_t lens[] = {0, 1, 15, 16, 17, 31, 32, 33, 48, 49, 100, 1000,
                                  16383, 16384, 40001};
    int best = bp_isa(), isas = 0, mismatches = 0;
    for (int isa = 0; isa < BP_ISA_COUNT; isa++) {
        if (bp_isa_force(isa) != 0)
            continue;
        isas++;
        for (size_t run = 0; run < sizeof lens / sizeof *lens + 6; run++) {
            /* every length at one thread, then the three longest at 2 and 3 */
            size_t nlens = sizeof lens / sizeof *lens;
            size_t li = run < nlens ? run : nlens - 3 + (run - nlens) % 3;
            bp_set_num_threads(run < nlens ? 1 : run < nlens + 3 ? 2 : 3);
            size_t n = lens[li];
            float *xf = malloc((n + 1) * 4), *yf = malloc((n + 1) * 4);
            double *xd = malloc((n + 1) * 8), *yd = malloc((n + 1) * 8);
            for (size_t i = 0; i <= n; i++) {
                xd[i] = (double)((long)(i * 7919 % 2001) - 1000) / 50.0;
                if (i % 97 == 5)
                    xd[i] = i % 2 ? NAN : -INFINITY;
                xf[i] = (float)xd[i];
            }
            for (int f = 0; f < NFUNCS; f++) {
                void (*vf)(size_t, const float *, float *) =
                    f == F_EXP ? bp_vexpf : f == F_LOG ? bp_vlogf
                    : f == F_TANH ? bp_vtanhf : bp_vsigmoidf;
                void (*vd)(size_t, const double *, double *) =
                    f == F_EXP ? bp_vexp : f == F_LOG ? bp_vlog
                    : f == F_TANH ? bp_vtanh : bp_vsigmoid;
                yf[n] = 42.0f;
                yd[n] = 42.0;
                vf(n, xf, yf);
                vd(n, xd, yd);
                CU_ASSERT(yf[n] == 42.0f && yd[n] == 42.0);  /* no overrun */
                for (size_t i = 0; i < n; i++) {
                    float sf = fast_f(f, xf[i]);
                    double sd = fast_d(f, xd[i]);
#if defined(__GNUC__) && !defined(__clang__)
                    int same = (memcmp(&sf, &yf[i], 4) == 0 || (isnan(sf) && isnan(yf[i])))
                               && (memcmp(&sd, &yd[i], 8) == 0 || (isnan(sd) && isnan(yd[i])));
#else
                    int same = ulp_err(yf[i], sf, sf, 23, -126) <= 2 * bound[f]
                               && ulp_err(yd[i], sd, sd, 52, -1022) <= 2 * bound[f];
#endif
                    mismatches += !same;
                }
                /* in place */
                float *cf = malloc((n + 1) * 4);
                memcpy(cf, xf, (n + 1) * 4);
                vf(n, cf, cf);
                CU_ASSERT(n == 0 || memcmp(cf, yf, n * 4) == 0);
                free(cf);
            }
            free(xf); free(yf); free(xd); free(yd);
        }
    }
    bp_set_num_threads(1);
    bp_isa_force(-1);
    CU_ASSERT_EQUAL(bp_isa(), best);
    CU_ASSERT(isas >= 1);
    CU_ASSERT_EQUAL(mismatches, 0);
}

void register_fastmath(void);
void register_fastmath(void)
{
    CU_pSuite s = CU_add_suite("fastmath", NULL, NULL);
    CU_add_test(s, "float: error in ulp over the whole range", test_accuracy_float);
    CU_add_test(s, "double: error in ulp over the whole range", test_accuracy_double);
    CU_add_test(s, "special values", test_special_values);
    CU_add_test(s, "array forms equal the scalar ones, every ISA", test_arrays);
}
