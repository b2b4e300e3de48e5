/* values.c — a test harness linked with one generated model (double).
 *
 * Compiled with -DMODEL=<name>_model. Sets every parameter and input to
 * pseudo-random values in (-0.9, 0.9) (seed: argv[1]), runs forward,
 * backward and predict for one sample and prints
 *   grad NAME v1 v2 ...      every parameter and wrt input
 *   output NAME v1 v2 ...    every output
 * with %.17g, so a test can compare what the model computes. */
#include <stdio.h>
#include <stdlib.h>

#include "bp.h"

extern const bp_model MODEL;

static void print(const char *tag, const char *name, const double *v, size_t n)
{
    printf("%s %s", tag, name);
    for (size_t i = 0; i < n; i++)
        printf(" %.17g", v[i]);
    putchar('\n');
}

int main(int argc, char **argv)
{
    const bp_model *m = &MODEL;
    if (m->real_size != 8 || m->num_inputs > 16 || m->num_outputs > 256)
        return 2;
    bp_rng rng;
    bp_rng_seed(&rng, argc > 1 ? strtoull(argv[1], NULL, 10) : 1);
    double *theta = malloc(sizeof *theta * (m->num_params + 1));
    double *grad = malloc(sizeof *grad * (m->num_params + 1));
    void *inputs[16] = {0}, *grads[16] = {0}, *outputs[256] = {0};
    const void *cinputs[16] = {0};
    bp_fill_uniform(&rng, theta, 8, m->num_params, -0.9, 0.9);
    for (int k = 0; k < m->num_inputs; k++) {
        inputs[k] = malloc(sizeof(double) * m->inputs[k].size);
        grads[k] = malloc(sizeof(double) * m->inputs[k].size);
        bp_fill_uniform(&rng, inputs[k], 8, m->inputs[k].size, -0.9, 0.9);
        cinputs[k] = inputs[k];
    }
    for (int k = 0; k < m->num_outputs; k++)
        outputs[k] = malloc(sizeof(double) * m->outputs[k].size);
    void *ws = malloc(m->workspace_size(1) + 8);
    m->forward(theta, cinputs, 1, ws);
    m->backward(theta, cinputs, 1, ws, grad, grads);
    m->predict(theta, cinputs, 1, ws, outputs);
    for (int p = 0; p < m->num_param_tensors; p++)
        if (!m->params[p].frozen)
            print("grad", m->params[p].name, grad + m->params[p].offset, m->params[p].size);
    for (int k = 0; k < m->num_inputs; k++)
        if (m->inputs[k].wrt)
            print("grad", m->inputs[k].name, grads[k], m->inputs[k].size);
    for (int k = 0; k < m->num_outputs; k++)
        print("output", m->outputs[k].name, outputs[k], m->outputs[k].size);
    for (int k = 0; k < m->num_inputs; k++) {
        free(inputs[k]);
        free(grads[k]);
    }
    for (int k = 0; k < m->num_outputs; k++)
        free(outputs[k]);
    free(ws);
    free(theta);
    free(grad);
    return 0;
}
