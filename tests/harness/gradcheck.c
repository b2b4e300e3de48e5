/* gradcheck.c — a test harness linked with one generated model.
 *
 * Compiled with -DMODEL=<name>_model. Sets every parameter and input to
 * pseudo-random values in (-0.9, 0.9), then compares M_backward with
 * finite differences (bp_gradcheck) for batches of 1, 7 and 9, printing
 * one line per batch size:  n=7 loss=0.123 err=1.2e-09 at W[3] ...  */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bp.h"

extern const bp_model MODEL;

/* argv[1], when given, is the finite-difference step (0: the runtime's
 * default for the model's precision). */
int main(int argc, char **argv)
{
    double step = argc > 1 ? strtod(argv[1], NULL) : 0;
    const bp_model *m = &MODEL;
    int status = 0;
    bp_rng rng;
    bp_rng_seed(&rng, 42);
    void *theta = malloc(m->num_params * (size_t)m->real_size + 8);
    bp_fill_uniform(&rng, theta, m->real_size, m->num_params, -0.9, 0.9);
    /* 9: past the batch below which tiny products are written as loops
     * (lower_steps.c), so both forms of such a product are checked */
    const int sizes[3] = {1, 7, 9};
    for (int t = 0; t < 3; t++) {
        int n = sizes[t];
        void *inputs[16] = {0};
        const void *cinputs[16] = {0};
        for (int k = 0; k < m->num_inputs && k < 16; k++) {
            size_t count = m->inputs[k].size * (size_t)n;
            inputs[k] = malloc(count * (size_t)m->real_size);
            bp_fill_uniform(&rng, inputs[k], m->real_size, count, -0.9, 0.9);
            cinputs[k] = inputs[k];
        }
        void *ws = malloc(m->workspace_size(n) + 1);
        double loss = m->forward(theta, cinputs, n, ws);
        char where[256] = "";
        double err = NAN;
        int rc = bp_gradcheck(m, theta, cinputs, n, step, &err, where, sizeof where);
        printf("n=%d loss=%.17g err=%.3g at %s\n", n, loss, err, where);
        if (!isfinite(loss) || rc != BP_OK || !(err >= 0))
            status = 1;
        free(ws);
        for (int k = 0; k < m->num_inputs && k < 16; k++)
            free(inputs[k]);
    }
    free(theta);
    return status;
}
