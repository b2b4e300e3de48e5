/* gemm.c — the raw matrix-product table of `make bench`: bp_gemm_f
 * against OpenBLAS's cblas_sgemm on the shapes of the benchmark's
 * training steps (every product of forward and backward), at 1 and 2
 * threads (bp_set_num_threads / openblas_set_num_threads).
 *
 * For each shape: first the two results are compared (largest difference
 * relative to the largest entry, must be below 1e-5 · sqrt(k)); then
 * timed loops of about --ms milliseconds alternate between the two, --reps
 * times; the median gives GFLOP/s (2·m·n·k per product). run.sh sets
 * OPENBLAS_THREAD_TIMEOUT=4: by default OpenBLAS's idle workers spin with
 * sched_yield for about 0.1 s after its loop, and at 2 threads that took
 * the second core from bp_gemm_f's loop (20 GFLOP/s instead of 90-160);
 * OpenBLAS's own figures were the same either way.
 *
 * Usage: gemm [--reps R] [--ms T] [--threads 1,2] [--quick] [--kernels] */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bp.h"

/* OpenBLAS's own; declared again in case cblas.h is another BLAS's. */
void openblas_set_num_threads(int num_threads);

typedef struct {
    const char *what;
    int ta, tb, m, n, k;
} shape;

/* The products of the workloads' steps. X·W1ᵀ is forward, dZᵀ·H the
 * weight gradient, dZ·W the input gradient of a layer. */
static const shape shapes[] = {
    {"784-128-10 b64  X·W1ᵀ", 0, 1, 64, 128, 784},
    {"784-128-10 b64  dH1ᵀ·X", 1, 0, 128, 784, 64},
    {"784-128-10 b64  H1·W2ᵀ", 0, 1, 64, 10, 128},
    {"784-128-10 b64  dZ·W2", 0, 0, 64, 128, 10},
    {"784-512-.. b128 X·W1ᵀ", 0, 1, 128, 512, 784},
    {"784-512-.. b128 H1·W2ᵀ", 0, 1, 128, 512, 512},
    {"784-512-.. b128 H2·W3ᵀ", 0, 1, 128, 10, 512},
    {"784-512-.. b128 dZᵀ·H2", 1, 0, 10, 512, 128},
    {"784-512-.. b128 dZ·W3", 0, 0, 128, 512, 10},
    {"784-512-.. b128 dH2ᵀ·H1", 1, 0, 512, 512, 128},
    {"784-512-.. b128 dH2·W2", 0, 0, 128, 512, 512},
    {"784-512-.. b128 dH1ᵀ·X", 1, 0, 512, 784, 128},
    {"4-16-3 b32      X·W1ᵀ", 0, 1, 32, 16, 4},
    {"square 512", 0, 0, 512, 512, 512},
    {"square 1024", 0, 0, 1024, 1024, 1024},
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(int which, const shape *s, long iters, const float *a,
                const float *b, float *c)
{
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
    for (long it = 0; it < iters; it++) {
        if (which == 0)
            bp_gemm_f(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb,
                      0.0f, c, s->n);
        else
            cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                        s->tb ? CblasTrans : CblasNoTrans, s->m, s->n, s->k,
                        1.0f, a, lda, b, ldb, 0.0f, c, s->n);
    }
}

int main(int argc, char **argv)
{
    int reps = 7, nthreads = 2, threads[2] = {1, 2};
    double ms = 30;
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc)
            ms = atof(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            nthreads = sscanf(argv[++i], "%d,%d", &threads[0], &threads[1]);
            if (nthreads < 1)
                nthreads = 1;
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--kernels") == 0) {
            printf("%s\n", bp_kernels());   /* for run.sh's header line */
            return 0;
        } else {
            fprintf(stderr, "usage: %s [--reps R] [--ms T] [--threads 1,2] "
                    "[--quick] [--kernels]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 101 || !(ms > 0)) {
        fprintf(stderr, "gemm: bad --reps or --ms\n");
        return 2;
    }
    int failed = 0;
    printf("raw products: bp_gemm_f (kernels: %s) vs OpenBLAS cblas_sgemm, "
           "GFLOP/s, median of %d loops of ~%.0f ms\n\n", bp_kernels(), reps,
           ms);
    for (int ti = 0; ti < nthreads; ti++) {
        int nt = threads[ti];
        bp_set_num_threads(nt);
        openblas_set_num_threads(nt);
        printf("%d thread%s\n", nt, nt > 1 ? "s" : "");
        printf("%-24s %2s %2s %5s %5s %5s | %8s %8s | %8s | %7s\n", "product",
               "tA", "tB", "m", "n", "k", "bp", "OpenBLAS", "bp/OB", "check");
        for (int si = 0; si < NSHAPES; si++) {
            const shape *s = &shapes[si];
            if (quick && s->m * (double)s->n * s->k > 3e8)
                continue;
            size_t na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n,
                   nc = (size_t)s->m * s->n;
            float *a = malloc(na * 4), *b = malloc(nb * 4),
                  *c[2] = {malloc(nc * 4), malloc(nc * 4)};
            if (!a || !b || !c[0] || !c[1]) {
                fprintf(stderr, "gemm: out of memory\n");
                return 2;
            }
            bp_rng r;
            bp_rng_seed(&r, 7 + (unsigned long long)si);
            bp_fill_uniform(&r, a, 4, na, -1, 1);
            bp_fill_uniform(&r, b, 4, nb, -1, 1);
            for (int w = 0; w < 2; w++)
                run(w, s, 1, a, b, c[w]);
            double d = 0, scale = 0;
            for (size_t i = 0; i < nc; i++) {
                double e = fabs((double)c[0][i] - c[1][i]);
                d = e > d || e != e ? e : d;
                scale = fabs(c[1][i]) > scale ? fabs(c[1][i]) : scale;
            }
            double rel = scale > 0 ? d / scale : d;
            if (!(rel <= 1e-5 * sqrt((double)s->k))) {
                fprintf(stderr, "bench: MISMATCH gemm %s: bp_gemm_f and "
                        "cblas_sgemm differ by %.2g relative\n", s->what, rel);
                failed = 1;
                continue;
            }
            long iters[2];
            for (int w = 0; w < 2; w++) {
                long it = 1;
                double t;
                for (;;) {
                    double t0 = now();
                    run(w, s, it, a, b, c[w]);
                    t = now() - t0;
                    if (t >= 0.003 || it >= (1L << 28))
                        break;
                    it *= 4;
                }
                iters[w] = (long)(ms * 1e-3 / (t / (double)it));
                if (iters[w] < 1)
                    iters[w] = 1;
            }
            double times[2][101];
            for (int rep = 0; rep < reps; rep++)
                for (int w = 0; w < 2; w++) {
                    double t0 = now();
                    run(w, s, iters[w], a, b, c[w]);
                    times[w][rep] = (now() - t0) / (double)iters[w];
                }
            double gf[2];
            for (int w = 0; w < 2; w++) {
                qsort(times[w], (size_t)reps, sizeof(double), cmp_double);
                gf[w] = 2.0 * s->m * s->n * s->k / times[w][reps / 2] * 1e-9;
            }
            printf("%-24s %2d %2d %5d %5d %5d | %8.1f %8.1f | %8.2f | %7.1e\n",
                   s->what, s->ta, s->tb, s->m, s->n, s->k, gf[0], gf[1],
                   gf[0] / gf[1], rel);
            fflush(stdout);
            free(a);
            free(b);
            free(c[0]);
            free(c[1]);
        }
        printf("\n");
    }
    bp_threads_shutdown();
    return failed;
}
