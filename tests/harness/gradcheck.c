/* gradcheck.c — a test harness linked with one generated model.
 *
 * Compiled with -DMODEL=<name>_model. Sets every parameter and input to
 * pseudo-random values in (-0.9, 0.9), then compares M_backward with
 * finite differences (bp_gradcheck) for batches of 1, 7 and 9, printing
 * one line per batch size:  n=7 loss=0.123 err=1.2e-09 at W[3] ...
 * With -DFORWARD_BACKWARD=<name>_forward_backward_any, also compares
 * M_forward_backward with M_forward then M_backward, bit for bit:
 *   n=7 forward_backward same
 * At batch 1 a small model runs copies of its functions with n the
 * constant 1 (lowering's one_sample); the harness also compares them with
 * the general functions on that sample twice, up to round-off:
 *   n=1 one_sample agrees  */
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

/* Largest |a[i] - b[i] * scale| over the largest |b[i] * scale|, of count
 * reals of size rs. */
static double relative_difference(const void *a, const void *b, double scale, size_t count,
                                  size_t rs)
{
    double worst = 0, largest = 0;
    for (size_t i = 0; i < count; i++) {
        double x = rs == 8 ? ((const double *)a)[i] : ((const float *)a)[i];
        double y = (rs == 8 ? ((const double *)b)[i] : ((const float *)b)[i]) * scale;
        double d = fabs(x - y);
        worst = d > worst || d != d ? d : worst;
        largest = fabs(y) > largest ? fabs(y) : largest;
    }
    return largest > 0 ? worst / largest : worst;
}

/* The loss and gradients at batch 1 against those of the same sample
 * twice, which no copy for one sample computes: the same mean, and each
 * input gradient twice the batch of two's first row (1/n of a sample's),
 * up to round-off (a sum over two samples' terms may round otherwise).
 * Returns the first difference's name, or NULL. */
static const char *one_sample_differs(const bp_model *m, const void *theta,
                                      const void *const inputs[])
{
    size_t rs = (size_t)m->real_size, gbytes = m->num_params * rs + 1;
    double tol = rs == 8 ? 1e-12 : 2e-5;
    void *ws[2] = {malloc(m->workspace_size(1) + 1), malloc(m->workspace_size(2) + 1)};
    void *grad[2] = {calloc(1, gbytes), calloc(1, gbytes)};
    void *gi[2][16] = {{0}};
    void *twice[16] = {0};
    const void *twice_in[16] = {0};
    for (int k = 0; k < m->num_inputs && k < 16; k++) {
        size_t row = m->inputs[k].size * rs;
        twice[k] = malloc(2 * row + 1);
        memcpy(twice[k], inputs[k], row);
        memcpy((char *)twice[k] + row, inputs[k], row);
        twice_in[k] = twice[k];
        gi[0][k] = calloc(1, row + 1);
        gi[1][k] = calloc(1, 2 * row + 1);
    }
    double one = m->forward(theta, inputs, 1, ws[0]);
    m->backward(theta, inputs, 1, ws[0], grad[0], gi[0]);
    double two = m->forward(theta, twice_in, 2, ws[1]);
    m->backward(theta, twice_in, 2, ws[1], grad[1], gi[1]);
    const char *why = NULL;
    if (!(fabs(one - two) <= tol * fmax(1, fabs(two))))
        why = "the loss";
    else if (!(relative_difference(grad[0], grad[1], 1, m->num_params, rs) <= tol))
        why = "the gradient";
    for (int k = 0; k < m->num_inputs && k < 16 && !why; k++)
        if (!(relative_difference(gi[0][k], gi[1][k], 2, m->inputs[k].size, rs) <= tol))
            why = "an input gradient";
    for (int k = 0; k < 16; k++) {
        free(twice[k]);
        free(gi[0][k]);
        free(gi[1][k]);
    }
    for (int v = 0; v < 2; v++) {
        free(grad[v]);
        free(ws[v]);
    }
    return why;
}

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
        if (n == 1) {
            const char *why = one_sample_differs(m, theta, cinputs);
            printf("n=1 one_sample %s%s\n", why ? "differs in " : "agrees", why ? why : "");
            if (why)
                status = 1;
        }
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
