/* step.c — a test harness for the fused training step M_step (bpgen
 * --step), linked with one generated model.
 *
 * Compiled with -DMODEL=<name>_model -DSTEP=<name>_step
 * -DSTEP_WS=<name>_step_workspace_size -DREAL=float|double. For each
 * optimiser kind, with and without weight decay, runs a few steps of
 * M_step on one copy of theta and of M_forward + M_backward +
 * bp_optim_step on another, from the same start and batches (of BATCH
 * samples, the last of one: a small model's functions have copies for one
 * sample), and prints one line per run:
 *   adam wd=0.01 loss=3.2e-17 theta=0 state=0 frozen=0 err=3.2e-17
 * the largest relative differences of the losses, theta and the state,
 * the frozen entries M_step changed (counted), and the worst of them. A
 * last line checks that a clipping optimiser is refused:
 *   clip refused=1 unchanged=1
 * Both workspaces start filled with NaN, so that a step reading memory
 * no step wrote shows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp.h"

extern const bp_model MODEL;
REAL STEP(REAL *theta, const REAL *const inputs[], int n, void *ws, bp_optimizer *opt);
size_t STEP_WS(int n);

enum { MAX_INPUTS = 16, STEPS = 4, BATCH = 5 };

static double rel(double a, double b)
{
    if (a == b)
        return 0;
    return fabs(a - b) / (1 + fabs(b));
}

static double worst_rel(const REAL *a, const REAL *b, size_t count)
{
    double w = 0;
    for (size_t i = 0; i < count; i++) {
        double d = rel(a[i], b[i]);
        if (!(d <= w))
            w = d;   /* NaN wins */
    }
    return w;
}

static double worst_rel_d(const double *a, const double *b, size_t count)
{
    double w = 0;
    for (size_t i = 0; i < count; i++) {
        double d = rel(a[i], b[i]);
        if (!(d <= w))
            w = d;
    }
    return w;
}

static const char *const kind_names[] = {"sgd", "momentum", "nesterov", "rmsprop", "adam",
                                         "adamw"};

int main(void)
{
    const bp_model *m = &MODEL;
    size_t P = m->num_params;
    REAL *theta0 = malloc(P * sizeof(REAL) + 1);
    REAL *a = malloc(P * sizeof(REAL) + 1), *b = malloc(P * sizeof(REAL) + 1);
    REAL *grad = malloc(P * sizeof(REAL) + 1);
    size_t ws_size = m->workspace_size(BATCH), step_size = STEP_WS(BATCH);
    void *ws = malloc(ws_size + 1), *step_ws = malloc(step_size + 1);
    REAL *inputs[MAX_INPUTS] = {0};
    for (int k = 0; k < m->num_inputs && k < MAX_INPUTS; k++)
        inputs[k] = malloc(m->inputs[k].size * BATCH * sizeof(REAL) + 1);
    bp_rng rng;
    bp_rng_seed(&rng, 7);
    bp_fill_uniform(&rng, theta0, m->real_size, P, -0.9, 0.9);

    for (int kind = BP_SGD; kind <= BP_ADAMW; kind++) {
        for (int with_wd = 0; with_wd < 2; with_wd++) {
            bp_optim_config c = bp_optim_defaults((bp_optim_kind)kind);
            c.lr = 0.05;
            c.weight_decay = with_wd ? 0.01 : 0;
            size_t state_size = bp_optim_state_size(&c, P, m->real_size);
            void *sa = malloc(state_size + 1), *sb = malloc(state_size + 1);
            bp_optimizer oa, ob;
            bp_optim_init(&oa, &c, m, P, m->real_size, sa);
            bp_optim_init(&ob, &c, m, P, m->real_size, sb);
            memcpy(a, theta0, P * sizeof(REAL));
            memcpy(b, theta0, P * sizeof(REAL));
            memset(ws, 0xff, ws_size);
            memset(step_ws, 0xff, step_size);
            bp_rng_seed(&rng, 11);
            double loss_err = 0;
            for (int t = 0; t < STEPS; t++) {
                int n = t == STEPS - 1 ? 1 : BATCH;
                const REAL *in[MAX_INPUTS];
                for (int k = 0; k < m->num_inputs && k < MAX_INPUTS; k++) {
                    bp_fill_uniform(&rng, inputs[k], m->real_size, m->inputs[k].size * n,
                                    -0.9, 0.9);
                    in[k] = inputs[k];
                }
                double lb = m->forward(b, (const void *const *)in, n, ws);
                m->backward(b, (const void *const *)in, n, ws, grad, NULL);
                if (bp_optim_step(&ob, b, grad, NULL, 0) != BP_OK)
                    return 2;
                double la = STEP(a, in, n, step_ws, &oa);
                double d = rel(la, lb);
                if (!(d <= loss_err))
                    loss_err = d;
            }
            double theta_err = worst_rel(a, b, P);
            /* the state's entries are doubles or, where the runtime keeps
             * them in the model's precision, reals */
            int arrays = kind == BP_SGD ? 0 : kind == BP_ADAM || kind == BP_ADAMW ? 2 : 1;
            size_t entries = (size_t)arrays * P;
            double state_err = 0;
            if (entries && state_size == entries * sizeof(double))
                state_err = worst_rel_d(sa, sb, entries);
            else if (entries && state_size == entries * sizeof(REAL))
                state_err = worst_rel(sa, sb, entries);
            else if (entries)
                state_err = INFINITY;
            if (oa.step != ob.step)
                state_err = INFINITY;
            long frozen_changed = 0;
            for (int i = 0; i < m->num_param_tensors; i++)
                if (m->params[i].frozen)
                    for (size_t j = 0; j < m->params[i].size; j++)
                        frozen_changed += memcmp(&a[m->params[i].offset + j],
                                                 &theta0[m->params[i].offset + j],
                                                 sizeof(REAL)) != 0;
            double err = loss_err > theta_err ? loss_err : theta_err;
            err = state_err > err ? state_err : err;
            if (frozen_changed)
                err = INFINITY;
            printf("%s wd=%g loss=%.3g theta=%.3g state=%.3g frozen=%ld err=%.3g\n",
                   kind_names[kind], c.weight_decay, loss_err, theta_err, state_err,
                   frozen_changed, err);
            free(sa);
            free(sb);
        }
    }

    /* clipping needs the whole gradient's norm: M_step refuses it */
    bp_optim_config c = bp_optim_defaults(BP_SGD);
    c.clip_norm = 1;
    bp_optimizer oc;
    bp_optim_init(&oc, &c, m, P, m->real_size, NULL);
    memcpy(a, theta0, P * sizeof(REAL));
    const REAL *in[MAX_INPUTS];
    for (int k = 0; k < m->num_inputs && k < MAX_INPUTS; k++)
        in[k] = inputs[k];
    double l = STEP(a, in, BATCH, step_ws, &oc);
    int refused = isnan(l) && oc.step == 0 &&
                  bp_optim_update(&oc, a, grad, 0, P) == BP_ERR_ARG;
    printf("clip refused=%d unchanged=%d\n", refused, !memcmp(a, theta0, P * sizeof(REAL)));

    for (int k = 0; k < m->num_inputs && k < MAX_INPUTS; k++)
        free(inputs[k]);
    free(theta0);
    free(a);
    free(b);
    free(grad);
    free(ws);
    free(step_ws);
    return 0;
}
