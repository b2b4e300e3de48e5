/* main.c — the benchmark driver behind `make bench`.
 *
 * For every model and batch size it
 *   1. checks that the three training steps (bpgen-generated, hand-written
 *      around bp_gemm_f, naive loops) compute the same loss and gradients
 *      from the same parameters and data (one step with lr = 0), and the
 *      same parameters after three SGD steps; any disagreement beyond float
 *      rounding stops the benchmark with exit status 1;
 *   2. times each step: a timed loop of `iters` steps (chosen so one loop
 *      takes about --ms milliseconds) is repeated --reps times, the three
 *      implementations taking turns so that a noisy neighbour hurts them
 *      alike, and the median loop gives microseconds per step;
 *   3. prints one row: the three times, generated / hand-written, the
 *      GFLOP/s of the matrix products (the flop count is that of the five
 *      matrix products of a step: 4*n*NI*NH + 6*n*NH*NO), and "check",
 *      the largest relative difference step 1 found.
 * Then a second table compares the workspace each implementation needs.
 *
 * Usage: bench [--label TEXT] [--reps R] [--ms T] [--batches 1,32,128]
 *              [--models mnist,digits,iris] [--no-workspace]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bp.h"
#include "bench.h"

extern const bench_model bench_model_mnist, bench_model_digits, bench_model_iris;
static const bench_model *const models[] = {
    &bench_model_mnist, &bench_model_digits, &bench_model_iris,
};
#define NMODELS (int)(sizeof models / sizeof models[0])

enum { GEN, HAND, NAIVE, NIMPL };
static const char *const impl_name[NIMPL] = {"generated", "hand-written", "naive"};

#define MAX_BATCHES 16
#define MAX_REPS 101

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes > 0 ? bytes : 1);
    if (p == NULL) {
        fprintf(stderr, "bench: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bench_step_fn impl_fn(const bench_model *m, int k)
{
    return k == GEN ? m->gen : k == HAND ? m->hand : m->naive;
}

/* ------------------------------------------------------------ checking */

/* Largest |a - b| over the largest |b|, for one tensor. */
static double rel_diff(const float *a, const float *b, size_t count)
{
    double d = 0, scale = 0;
    for (size_t i = 0; i < count; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= d))   /* also catches NaN */
            d = e;
        if (fabs((double)b[i]) > scale)
            scale = fabs((double)b[i]);
    }
    if (d != d)
        return INFINITY;
    return scale > 0 ? d / scale : d;
}

static double rel1(double a, double b)
{
    double s = fabs(b) > 1e-30 ? fabs(b) : 1e-30;
    return fabs(a - b) / s;
}

/* The largest relative difference between two parameter-sized vectors,
 * tensor by tensor (W1, b1, W2, b2), each relative to its own scale. */
static double rel_diff_tensors(const bench_model *m, const float *a,
                               const float *b, const char **which)
{
    static const char *const names[4] = {"W1", "b1", "W2", "b2"};
    size_t sizes[4];
    sizes[0] = (size_t)m->nh * m->ni;
    sizes[1] = (size_t)m->nh;
    sizes[2] = (size_t)m->no * m->nh;
    sizes[3] = (size_t)m->no;
    double worst = 0;
    size_t off = 0;
    for (int t = 0; t < 4; t++) {
        double d = rel_diff(a + off, b + off, sizes[t]);
        if (!(d <= worst)) {
            worst = d;
            *which = names[t];
        }
        off += sizes[t];
    }
    return worst;
}

#define TOL_GRAD 1e-4     /* loss and gradients, one step */
#define TOL_THETA 1e-4    /* parameter change after three steps */

/* Checks the three steps against each other on batch b of the pool.
 * Returns 0 when they agree; otherwise prints what differs, returns 1. */
static int check(const bench_model *m, int n, const float *theta0,
                 const float *xs, const float *ys, void *ws, double *worst)
{
    size_t np = m->nparams;
    float *theta[NIMPL], *grad[NIMPL];
    float loss[NIMPL];
    int bad = 0;

    for (int k = 0; k < NIMPL; k++) {
        theta[k] = xmalloc(np * sizeof(float));
        grad[k] = xmalloc(np * sizeof(float));
        memcpy(theta[k], theta0, np * sizeof(float));
        for (size_t i = 0; i < np; i++)
            grad[k][i] = NAN;    /* every entry must be written */
        loss[k] = impl_fn(m, k)(theta[k], xs, ys, n, ws, grad[k], 0.0f);
    }
    for (int k = GEN; k < NIMPL; k++) {
        if (k == HAND)
            continue;
        int ref = k == GEN ? HAND : GEN;
        const char *which = "?";
        double dl = rel1(loss[k], loss[ref]);
        double dg = rel_diff_tensors(m, grad[k], grad[ref], &which);
        *worst = fmax(*worst, fmax(dl, dg));
        if (!(dl <= TOL_GRAD) || !(dg <= TOL_GRAD)) {
            fprintf(stderr,
                    "bench: MISMATCH %s n=%d: %s vs %s: loss %.9g vs %.9g "
                    "(rel %.2g), worst gradient rel diff %.2g in d%s "
                    "(tolerance %.0e)\n",
                    m->name, n, impl_name[k], impl_name[ref], loss[k],
                    loss[ref], dl, dg, which, TOL_GRAD);
            bad = 1;
        }
    }

    /* Three SGD steps on three batches: the parameters must move alike. */
    const float lr = 0.05f;
    for (int k = 0; k < NIMPL; k++)
        for (int b = 0; b < 3; b++)
            impl_fn(m, k)(theta[k], xs + (size_t)b * n * m->ni,
                          ys + (size_t)b * n * m->no, n, ws, grad[k], lr);
    for (int k = 0; k < NIMPL; k++)   /* compare the change, not theta */
        for (size_t i = 0; i < np; i++)
            theta[k][i] -= theta0[i];
    for (int k = GEN; k < NIMPL; k++) {
        if (k == HAND)
            continue;
        int ref = k == GEN ? HAND : GEN;
        const char *which = "?";
        double dt = rel_diff_tensors(m, theta[k], theta[ref], &which);
        *worst = fmax(*worst, dt);
        if (!(dt <= TOL_THETA)) {
            fprintf(stderr,
                    "bench: MISMATCH %s n=%d: %s vs %s after 3 SGD steps: "
                    "change of %s differs by %.2g relative (tolerance %.0e)\n",
                    m->name, n, impl_name[k], impl_name[ref], which, dt,
                    TOL_THETA);
            bad = 1;
        }
    }
    for (int k = 0; k < NIMPL; k++) {
        free(theta[k]);
        free(grad[k]);
    }
    return bad;
}

/* ------------------------------------------------------------ timing */

/* Runs `iters` steps from theta0, cycling through the pool's batches.
 * Returns seconds. theta is reset first (outside the timed region) so
 * every loop does the same work. */
static double timed_loop(const bench_model *m, bench_step_fn f, int n,
                         long iters, float *theta, const float *theta0,
                         const float *xs, const float *ys, int nbatches,
                         void *ws, float *grad)
{
    memcpy(theta, theta0, m->nparams * sizeof(float));
    volatile float sink = 0;
    int b = 0;
    double t0 = now();
    for (long it = 0; it < iters; it++) {
        sink += f(theta, xs + (size_t)b * n * m->ni,
                  ys + (size_t)b * n * m->no, n, ws, grad, 1e-3f);
        if (++b == nbatches)
            b = 0;
    }
    double t = now() - t0;
    (void)sink;
    return t;
}

static void parse_list(const char *s, int *out, int *count, int max)
{
    *count = 0;
    while (*s && *count < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 100000) {
            fprintf(stderr, "bench: bad batch list\n");
            exit(2);
        }
        out[(*count)++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') {
            fprintf(stderr, "bench: bad batch list\n");
            exit(2);
        }
    }
}

int main(int argc, char **argv)
{
    const char *label = "bench";
    const char *only = NULL;
    int show_ws = 1;
    int reps = 7;
    double ms = 40;
    int batches[MAX_BATCHES] = {1, 32, 128};
    int nb = 3;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--label") == 0 && i + 1 < argc)
            label = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc)
            ms = atof(argv[++i]);
        else if (strcmp(argv[i], "--batches") == 0 && i + 1 < argc)
            parse_list(argv[++i], batches, &nb, MAX_BATCHES);
        else if (strcmp(argv[i], "--models") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--no-workspace") == 0)
            show_ws = 0;
        else {
            fprintf(stderr, "usage: %s [--label TEXT] [--reps R] [--ms T] "
                    "[--batches 1,32,128] [--models mnist,digits,iris] "
                    "[--no-workspace]\n",
                    argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS || !(ms > 0)) {
        fprintf(stderr, "bench: --reps must be 1..%d and --ms positive\n",
                MAX_REPS);
        return 2;
    }

    printf("%s: median of %d timed loops of ~%.0f ms each, one thread\n\n",
           label, reps, ms);
    printf("%-7s %-4s %5s | %10s %10s %10s | %8s %8s | %7s %7s %7s | %7s\n",
           "model", "act", "batch", "gen us", "hand us", "naive us",
           "gen/hand", "gen/nai", "GF/s g", "GF/s h", "GF/s n", "check");
    for (int i = 0; i < 116; i++)
        putchar('-');
    putchar('\n');

    /* memory rows are printed after the timing table */
    char memrows[NMODELS * MAX_BATCHES][160];
    int nmem = 0;
    int failed = 0;

    for (int mi = 0; mi < NMODELS; mi++) {
        const bench_model *m = models[mi];
        if (only != NULL) {
            const char *p = strstr(only, m->name);
            size_t len = strlen(m->name);
            if (p == NULL || (p != only && p[-1] != ',') ||
                (p[len] != '\0' && p[len] != ','))
                continue;
        }
        size_t np = m->nparams;
        float *theta0 = xmalloc(np * sizeof(float));
        float *theta = xmalloc(np * sizeof(float));
        float *grad = xmalloc(np * sizeof(float));
        m->init(theta0, 42);

        for (int bi = 0; bi < nb; bi++) {
            int n = batches[bi];
            /* a pool of distinct batches, stepped through in turn, so the
             * random labels can not be learnt and the loss stays away from
             * zero (no denormals) */
            int nbatches = n >= 128 ? 4 : 8;
            size_t rows = (size_t)n * nbatches;
            float *xs = xmalloc(rows * m->ni * sizeof(float));
            float *ys = xmalloc(rows * m->no * sizeof(float));
            bp_rng rng;
            bp_rng_seed(&rng, 1000 + (unsigned long long)n);
            for (size_t i = 0; i < rows * m->ni; i++)
                xs[i] = (float)bp_rng_normal(&rng, 0.0, 1.0);
            memset(ys, 0, rows * m->no * sizeof(float));
            for (size_t r = 0; r < rows; r++)
                ys[r * m->no + (bp_rng_next(&rng) % (unsigned)m->no)] = 1.0f;

            size_t wsb[NIMPL] = {m->gen_ws(n), m->hand_ws(n), m->naive_ws(n)};
            size_t wsmax = 0;
            for (int k = 0; k < NIMPL; k++)
                if (wsb[k] > wsmax)
                    wsmax = wsb[k];
            void *ws = xmalloc(wsmax);

            double worst = 0;
            if (check(m, n, theta0, xs, ys, ws, &worst)) {
                failed = 1;
                free(ws);
                free(xs);
                free(ys);
                continue;
            }

            /* calibrate: steps per loop so that one loop takes ~ms */
            long iters[NIMPL];
            for (int k = 0; k < NIMPL; k++) {
                long it = 1;
                double t;
                for (;;) {
                    t = timed_loop(m, impl_fn(m, k), n, it, theta, theta0, xs,
                                   ys, nbatches, ws, grad);
                    if (t >= 0.005 || it >= (1L << 30))
                        break;
                    it *= 4;
                }
                double per = t / (double)it;
                long want = (long)(ms * 1e-3 / per);
                iters[k] = want < 1 ? 1 : want;
            }
            double times[NIMPL][MAX_REPS];
            for (int r = 0; r < reps; r++)
                for (int k = 0; k < NIMPL; k++)
                    times[k][r] = timed_loop(m, impl_fn(m, k), n, iters[k],
                                             theta, theta0, xs, ys, nbatches,
                                             ws, grad) / (double)iters[k];
            double us[NIMPL], gf[NIMPL];
            double flops = 4.0 * n * m->ni * m->nh + 6.0 * n * m->nh * m->no;
            for (int k = 0; k < NIMPL; k++) {
                qsort(times[k], (size_t)reps, sizeof(double), cmp_double);
                double med = times[k][reps / 2];
                if (reps % 2 == 0)
                    med = 0.5 * (times[k][reps / 2 - 1] + times[k][reps / 2]);
                us[k] = med * 1e6;
                gf[k] = flops / med * 1e-9;
            }
            printf("%-7s %-4s %5d | %10.2f %10.2f %10.2f | %8.2f %8.2f | "
                   "%7.2f %7.2f %7.2f | %7.1e\n",
                   m->name, m->act, n, us[GEN], us[HAND], us[NAIVE],
                   us[GEN] / us[HAND], us[GEN] / us[NAIVE], gf[GEN], gf[HAND],
                   gf[NAIVE], worst);
            fflush(stdout);

            snprintf(memrows[nmem++], sizeof memrows[0],
                     "%-7s %5d | %12zu %12zu %12zu | %8.2f | %10.1f %10.1f",
                     m->name, n, wsb[GEN], wsb[HAND], wsb[NAIVE],
                     (double)wsb[GEN] / (double)wsb[HAND],
                     (double)wsb[GEN] / (double)n / sizeof(float),
                     (double)wsb[HAND] / (double)n / sizeof(float));
            free(ws);
            free(xs);
            free(ys);
        }
        free(theta0);
        free(theta);
        free(grad);
    }

    if (show_ws)
        printf("\nworkspace (bytes; the gradient vector, theta and the data are "
           "not counted)\n");
    if (show_ws)
        printf("%-7s %5s | %12s %12s %12s | %8s | %10s %10s\n", "model",
               "batch", "generated", "hand", "naive", "gen/hand",
               "gen fl/smp", "hand fl/smp");
    for (int i = 0; show_ws && i < nmem; i++)
        printf("%s\n", memrows[i]);

    if (failed) {
        fprintf(stderr, "bench: FAILED: the implementations disagree (see "
                "above); the timings of those rows were not taken\n");
        return 1;
    }
    return 0;
}
