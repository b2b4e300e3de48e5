/* step.c — the fused training step M_step (bpgen --step) against
 * M_forward + M_backward + bp_optim_step: memory and time per step.
 *
 * Built by bench/step.sh with -DM=<model> (a model compiled with --step,
 * float) and -DBATCH=<n>. Prints the bytes each way needs besides theta
 * and the optimiser's state (the workspace and the gradient vector, or
 * M_step's workspace), then for SGD and Adam the median over ROUNDS
 * rounds of the µs per step of each way and of their ratio, formed
 * within each round; in each round the two ways alternate, each timed
 * over about BENCH_MS ms of CPU time (default 300). Both ways first run 3 steps from
 * the same start and must agree (largest difference of theta printed). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bp.h"

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define MODEL CAT(M, _model)
#define STEP CAT(M, _step)
#define STEP_WS CAT(M, _step_workspace_size)

extern const bp_model MODEL;
float STEP(float *theta, const float *const inputs[], int n, void *ws, bp_optimizer *opt);
size_t STEP_WS(int n);

enum { ROUNDS = 7 };

/* CPU time of the process (one thread: the runtime's default), which
 * other processes on a loaded machine disturb less than wall time. */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    const bp_model *m;
    float *theta, *grad;
    const float *in[2];
    void *ws, *step_ws;
    bp_optimizer opt;
} Run;

static void separate(Run *r)
{
    r->m->forward(r->theta, (const void *const *)r->in, BATCH, r->ws);
    r->m->backward(r->theta, (const void *const *)r->in, BATCH, r->ws, r->grad, NULL);
    bp_optim_step(&r->opt, r->theta, r->grad, NULL, 0);
}

static void fused(Run *r)
{
    STEP(r->theta, r->in, BATCH, r->step_ws, &r->opt);
}

/* µs per step of `way`, over about `ms` milliseconds. */
static double time_way(Run *r, void (*way)(Run *), double ms)
{
    long steps = 0;
    double start = now(), t;
    do {
        for (int k = 0; k < 10; k++)
            way(r);
        steps += 10;
        t = now() - start;
    } while (t < ms / 1000);
    return t / (double)steps * 1e6;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int count)
{
    qsort(v, (size_t)count, sizeof *v, by_value);
    return v[count / 2];
}

static void setup(Run *r, const bp_model *m, const float *theta0, bp_optim_kind kind, void *state)
{
    bp_optim_config c = bp_optim_defaults(kind);
    memcpy(r->theta, theta0, m->num_params * sizeof(float));
    bp_optim_init(&r->opt, &c, m, m->num_params, 4, state);
}

int main(void)
{
    const bp_model *m = &MODEL;
    const char *env = getenv("BENCH_MS");
    double ms = env ? atof(env) : 300;
    size_t P = m->num_params;
    size_t ws_bytes = m->workspace_size(BATCH), grad_bytes = P * sizeof(float);
    size_t step_bytes = STEP_WS(BATCH);
    printf("model %s, batch %d: %zu parameters\n", m->name, BATCH, P);
    printf("memory besides theta and the optimiser's state:\n");
    printf("  forward + backward + bp_optim_step: workspace %zu + gradient %zu = %zu bytes\n",
           ws_bytes, grad_bytes, ws_bytes + grad_bytes);
    printf("  M_step: workspace %zu bytes (%zu of them gradients)\n", step_bytes,
           step_bytes - ws_bytes);
    printf("  saved: %zu bytes (%.1f%%)\n", ws_bytes + grad_bytes - step_bytes,
           100.0 * (double)(ws_bytes + grad_bytes - step_bytes) / (double)(ws_bytes + grad_bytes));

    float *theta0 = malloc(P * sizeof(float));
    m->init(theta0, 42);
    Run a;
    memset(&a, 0, sizeof a);
    a.m = m;
    a.theta = malloc(P * sizeof(float));
    a.grad = malloc(P * sizeof(float));
    a.ws = malloc(ws_bytes);
    a.step_ws = malloc(step_bytes);
    Run b = a;
    b.theta = malloc(P * sizeof(float));
    float *x = malloc((size_t)m->inputs[0].size * BATCH * sizeof(float));
    float *y = calloc((size_t)m->inputs[1].size * BATCH, sizeof(float));
    bp_rng rng;
    bp_rng_seed(&rng, 1);
    bp_fill_normal(&rng, x, 4, m->inputs[0].size * BATCH, 0, 1);
    for (int s = 0; s < BATCH; s++)
        y[(size_t)s * m->inputs[1].size + (size_t)s % m->inputs[1].size] = 1;
    a.in[0] = b.in[0] = x;
    a.in[1] = b.in[1] = y;
    bp_optim_config adam = bp_optim_defaults(BP_ADAM);
    void *sa = malloc(bp_optim_state_size(&adam, P, 4)), *sb = malloc(bp_optim_state_size(&adam, P, 4));

    static const bp_optim_kind kinds[2] = {BP_SGD, BP_ADAM};
    static const char *const names[2] = {"SGD", "Adam"};
    for (int q = 0; q < 2; q++) {
        setup(&a, m, theta0, kinds[q], sa);
        setup(&b, m, theta0, kinds[q], sb);
        for (int t = 0; t < 3; t++) {
            separate(&a);
            fused(&b);
        }
        double worst = 0;
        for (size_t i = 0; i < P; i++)
            worst = fmax(worst, fabs((double)a.theta[i] - (double)b.theta[i]));
        double ts[ROUNDS], tf[ROUNDS], ratio[ROUNDS];
        for (int k = 0; k < ROUNDS; k++) {
            if (k % 2 == 0) {
                ts[k] = time_way(&a, separate, ms);
                tf[k] = time_way(&b, fused, ms);
            } else {
                tf[k] = time_way(&b, fused, ms);
                ts[k] = time_way(&a, separate, ms);
            }
            ratio[k] = tf[k] / ts[k];
        }
        printf("%s: theta after 3 steps differs by at most %.3g; forward + backward + "
               "bp_optim_step %.1f us, M_step %.1f us, M_step / separate %.3f "
               "(medians of %d rounds)\n", names[q], worst, median(ts, ROUNDS),
               median(tf, ROUNDS), median(ratio, ROUNDS), ROUNDS);
    }
    return 0;
}
