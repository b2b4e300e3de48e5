/* optim.c — the optimiser update alone (bench/README.md, "Optimiser"):
 *
 *   optim [N [ROUNDS]]
 *
 * times bp_optim_step on N parameters (default 200 000, the size of the
 * Fashion MLP) with no model (nothing frozen, no clipping): Adam and SGD
 * on float parameters, Adam on double ones; and the floor of a float
 * Adam step, its loads and stores with one addition each (traffic()).
 * Each round runs steps for
 * about 20 ms of CPU time; the median over ROUNDS (default 7) rounds is
 * printed as nanoseconds per parameter per step, one `key value` line
 * per case.
 * Gradients are drawn once (normal, sd 1e-3) and reused, so the moments
 * stay in the normal range (no denormals). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bp.h"

/* CPU time of this process: on a shared machine, time spent waiting for
 * a core is left out (cache contention is not). */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *xalloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "bench optim: out of memory\n");
        exit(1);
    }
    return p;
}

/* Median ns per parameter (n of them) over `rounds` rounds of run(ctx),
 * each round as many runs as take about 20 ms. */
static double median_ns(void (*run)(void *), void *ctx, size_t n, int rounds)
{
    double *t = xalloc((size_t)rounds * sizeof *t);
    long steps = 1;
    for (;;) {
        double t0 = now();
        for (long s = 0; s < steps; s++)
            run(ctx);
        if (now() - t0 > 0.02 || steps > (1L << 20))
            break;
        steps *= 2;
    }
    for (int k = 0; k < rounds; k++) {
        double t0 = now();
        for (long s = 0; s < steps; s++)
            run(ctx);
        t[k] = (now() - t0) / ((double)steps * (double)n) * 1e9;
    }
    qsort(t, (size_t)rounds, sizeof *t, cmp);
    double med = t[rounds / 2];
    free(t);
    return med;
}

typedef struct {
    bp_optimizer o;
    void *theta, *grad;
} step_ctx;

static void run_step(void *ctx)
{
    step_ctx *c = ctx;
    bp_optim_step(&c->o, c->theta, c->grad, NULL, 0);
}

/* Median ns per parameter of bp_optim_step of this kind and precision. */
static double time_kind(bp_optim_kind kind, int rs, size_t n, int rounds)
{
    bp_optim_config c = bp_optim_defaults(kind);
    void *state = xalloc(bp_optim_state_size(&c, n, rs));
    step_ctx s;
    s.theta = xalloc(n * (size_t)rs);
    s.grad = xalloc(n * (size_t)rs);
    bp_rng r;
    bp_rng_seed(&r, 1);
    bp_fill_normal(&r, s.theta, rs, n, 0, 0.05);
    bp_fill_normal(&r, s.grad, rs, n, 0, 1e-3);
    bp_optim_init(&s.o, &c, NULL, n, rs, state);
    double med = median_ns(run_step, &s, n, rounds);
    free(state);
    free(s.theta);
    free(s.grad);
    return med;
}

/* The memory traffic of a float Adam step with next to no arithmetic:
 * theta, g, m and v read, theta, m and v written (28 bytes a parameter),
 * one addition each. Blocks of 32 with restrict pointers, so gcc
 * vectorises it at -O2 (a fixed trip count, no alias checks). What this
 * takes is a floor for any update rule that keeps two float moments. */
static void traffic(size_t n, float *restrict th, const float *restrict g,
                    float *restrict m, float *restrict v)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (size_t j = i; j < i + 32; j++) {
            float gj = g[j];
            m[j] += gj;
            v[j] += gj;
            th[j] += gj;
        }
    for (; i < n; i++) {
        m[i] += g[i];
        v[i] += g[i];
        th[i] += g[i];
    }
}

typedef struct {
    size_t n;
    float *th, *g, *m, *v;
} traffic_ctx;

static void run_traffic(void *ctx)
{
    traffic_ctx *c = ctx;
    traffic(c->n, c->th, c->g, c->m, c->v);
}

/* Median ns per parameter of traffic() over n floats. */
static double time_floor(size_t n, int rounds)
{
    traffic_ctx c = {n, xalloc(n * 4), xalloc(n * 4), xalloc(n * 4), xalloc(n * 4)};
    double med = median_ns(run_traffic, &c, n, rounds);
    volatile float sink = c.th[n / 2];
    (void)sink;
    free(c.th);
    free(c.g);
    free(c.m);
    free(c.v);
    return med;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 200000;
    int rounds = argc > 2 ? atoi(argv[2]) : 7;
    if (n == 0 || rounds < 1) {
        fprintf(stderr, "usage: %s [N [ROUNDS]]\n", argv[0]);
        return 2;
    }
    printf("params %zu\n", n);
    printf("adam_float_ns %.3f\n", time_kind(BP_ADAM, 4, n, rounds));
    printf("traffic_floor_float_ns %.3f\n", time_floor(n, rounds));
    printf("sgd_float_ns %.3f\n", time_kind(BP_SGD, 4, n, rounds));
    printf("adam_double_ns %.3f\n", time_kind(BP_ADAM, 8, n, rounds));
    return 0;
}
