/* float_vs_double.c — a test harness linked with the float and the double
 * build of one model.
 *
 * Compiled with -DMODEL_F=<float model> -DMODEL_D=<double model>. Sets every
 * parameter and input to the same pseudo-random values in (-0.9, 0.9) in
 * both (drawn in double, rounded to float), runs forward and backward in
 * each for batches of 1 and 7, and prints one line per batch size with the
 * worst difference of the loss and of every gradient (parameters and wrt
 * inputs), relative to max(1, |double value|):
 *   n=7 err=1.2e-06 at W[3] float 0.1 double 0.1
 * Unlike finite differences in float, this does not step across the kinks
 * of relu and max pooling, so it holds for whole networks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp.h"

extern const bp_model MODEL_F;
extern const bp_model MODEL_D;

static void compare(double f, double d, const char *what, int index, double *worst, char *where,
                    size_t cap)
{
    double err = fabs(f - d) / (fabs(d) > 1 ? fabs(d) : 1);
    if (!(err <= *worst)) {
        *worst = isnan(err) ? INFINITY : err;
        snprintf(where, cap, "%s[%d] float %.9g double %.17g", what, index, f, d);
    }
}

int main(void)
{
    const bp_model *mf = &MODEL_F, *md = &MODEL_D;
    if (mf->num_params != md->num_params || mf->num_inputs != md->num_inputs ||
        mf->real_size != 4 || md->real_size != 8 || mf->num_inputs > 16) {
        printf("models differ\n");
        return 1;
    }
    bp_rng rng;
    bp_rng_seed(&rng, 42);
    size_t np = mf->num_params;
    double *theta_d = malloc(np * sizeof(double) + 8), *grad_d = malloc(np * sizeof(double) + 8);
    float *theta_f = malloc(np * sizeof(float) + 8), *grad_f = malloc(np * sizeof(float) + 8);
    bp_fill_uniform(&rng, theta_d, 8, np, -0.9, 0.9);
    for (size_t i = 0; i < np; i++)
        theta_f[i] = (float)theta_d[i];
    const int sizes[3] = {1, 7, 9};   /* 9: tiny products by bp_gemm again */
    int status = 0;
    for (int t = 0; t < 3; t++) {
        int n = sizes[t];
        double *in_d[16] = {0}, *gi_d[16] = {0};
        float *in_f[16] = {0}, *gi_f[16] = {0};
        const void *cin_d[16], *cin_f[16];
        void *gd[16], *gf[16];
        for (int k = 0; k < md->num_inputs; k++) {
            size_t count = md->inputs[k].size * (size_t)n;
            in_d[k] = malloc(count * sizeof(double) + 8);
            in_f[k] = malloc(count * sizeof(float) + 8);
            gi_d[k] = malloc(count * sizeof(double) + 8);
            gi_f[k] = malloc(count * sizeof(float) + 8);
            bp_fill_uniform(&rng, in_d[k], 8, count, -0.9, 0.9);
            for (size_t i = 0; i < count; i++)
                in_f[k][i] = (float)in_d[k][i];
            cin_d[k] = in_d[k];
            cin_f[k] = in_f[k];
            gd[k] = gi_d[k];
            gf[k] = gi_f[k];
        }
        void *ws_d = malloc(md->workspace_size(n) + 8), *ws_f = malloc(mf->workspace_size(n) + 8);
        double loss_d = md->forward(theta_d, cin_d, n, ws_d);
        double loss_f = mf->forward(theta_f, cin_f, n, ws_f);
        md->backward(theta_d, cin_d, n, ws_d, grad_d, gd);
        mf->backward(theta_f, cin_f, n, ws_f, grad_f, gf);
        double worst = 0;
        char where[256] = "nowhere";
        compare(loss_f, loss_d, "loss", 0, &worst, where, sizeof where);
        for (int p = 0; p < md->num_param_tensors; p++)
            for (size_t i = 0; i < md->params[p].size; i++)
                compare(grad_f[md->params[p].offset + i], grad_d[md->params[p].offset + i],
                        md->params[p].name, (int)i, &worst, where, sizeof where);
        for (int k = 0; k < md->num_inputs; k++)
            if (md->inputs[k].wrt)
                for (size_t i = 0; i < md->inputs[k].size * (size_t)n; i++)
                    compare(gi_f[k][i], gi_d[k][i], md->inputs[k].name, (int)i, &worst, where,
                            sizeof where);
        printf("n=%d err=%.3g at %s\n", n, worst, where);
        if (!isfinite(loss_d) || !isfinite(worst))
            status = 1;
        free(ws_d);
        free(ws_f);
        for (int k = 0; k < md->num_inputs; k++) {
            free(in_d[k]);
            free(in_f[k]);
            free(gi_d[k]);
            free(gi_f[k]);
        }
    }
    free(theta_d);
    free(theta_f);
    free(grad_d);
    free(grad_f);
    return status;
}
