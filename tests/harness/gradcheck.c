/* gradcheck.c — a test harness linked with one generated model.
 *
 * Compiled with -DMODEL=<name>_model. Sets every parameter and input to
 * pseudo-random values in (-0.9, 0.9), then compares M_backward with
 * finite differences (bp_gradcheck) for batches of 1, 7 and 9, printing
 * one line per batch size:  n=7 loss=0.123 err=1.2e-09 at W[3] ...
 * With -DFORWARD_BACKWARD=<name>_forward_backward_any, also compares
 * M_forward_backward with M_forward then M_backward, bit for bit:
 *   n=7 forward_backward same  */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp.h"

extern const bp_model MODEL;

#ifdef FORWARD_BACKWARD
double FORWARD_BACKWARD(const void *theta, const void *const inputs[], int n, void *ws,
                        void *grad, void *const grad_inputs[]);

/* M_forward_backward against M_forward then M_backward, each on a
 * workspace of NaN: the same loss, gradients and input gradients, bit for
 * bit (the same operations in the same order), with and without input
 * gradients. Returns the first difference's name, or NULL. */
static const char *forward_backward_differs(const bp_model *m, const void *theta,
                                            const void *const inputs[], int n)
{
    size_t rs = (size_t)m->real_size, gbytes = m->num_params * rs + 1;
    size_t wbytes = m->workspace_size(n) + 1;
    void *ws[2] = {malloc(wbytes), malloc(wbytes)};
    void *grad[2] = {calloc(1, gbytes), calloc(1, gbytes)};
    void *gi[2][16] = {{0}};
    const char *why = NULL;
    for (int v = 0; v < 2; v++) {
        memset(ws[v], 0xff, wbytes);   /* NaN in float and double */
        for (int k = 0; k < m->num_inputs && k < 16; k++)
            gi[v][k] = calloc(m->inputs[k].size * (size_t)n, rs);
    }
    double la = m->forward(theta, inputs, n, ws[0]);
    m->backward(theta, inputs, n, ws[0], grad[0], gi[0]);
    double lb = FORWARD_BACKWARD(theta, inputs, n, ws[1], grad[1], gi[1]);
    if (memcmp(&la, &lb, sizeof la) != 0)
        why = "the loss";
    else if (memcmp(grad[0], grad[1], gbytes) != 0)
        why = "the gradient";
    for (int k = 0; k < m->num_inputs && k < 16 && !why; k++)
        if (memcmp(gi[0][k], gi[1][k], m->inputs[k].size * (size_t)n * rs) != 0)
            why = "an input gradient";
    /* without input gradients, on a workspace of NaN again */
    memset(ws[1], 0xff, wbytes);
    memset(grad[1], 0, gbytes);
    lb = FORWARD_BACKWARD(theta, inputs, n, ws[1], grad[1], NULL);
    if (!why && (memcmp(&la, &lb, sizeof la) != 0 || memcmp(grad[0], grad[1], gbytes) != 0))
        why = "the loss or gradient without input gradients";
    for (int v = 0; v < 2; v++) {
        for (int k = 0; k < 16; k++)
            free(gi[v][k]);
        free(grad[v]);
        free(ws[v]);
    }
    return why;
}
#endif

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
#ifdef FORWARD_BACKWARD
        const char *why = forward_backward_differs(m, theta, cinputs, n);
        printf("n=%d forward_backward %s%s\n", n, why ? "differs in " : "same", why ? why : "");
        if (why)
            status = 1;
#endif
        free(ws);
        for (int k = 0; k < m->num_inputs && k < 16; k++)
            free(inputs[k]);
    }
    free(theta);
    return status;
}
