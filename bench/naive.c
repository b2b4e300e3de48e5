/* naive.c — the plain-loops baseline: the same training step as hand.c
 * (see bench.h), written sample by sample with nested loops and no gemm,
 * as a textbook would: for each sample, forward through both layers, then
 * backpropagate and accumulate into the gradient. The weights are walked
 * once per sample, so nothing is reused across the batch.
 *
 * Compiled once per model with the sizes as macros:
 *   -DBM_NAME=mnist -DNI=784 -DNH=256 -DNO=10 -DACT_TANH=0
 * Workspace: 2*NH + NO floats, whatever the batch.
 */
#include <math.h>
#include <string.h>

#include "bench.h"

#if !defined(BM_NAME) || !defined(NI) || !defined(NH) || !defined(NO) || !defined(ACT_TANH)
#error "compile with -DBM_NAME=... -DNI=... -DNH=... -DNO=... -DACT_TANH=0|1"
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define NAIVE_STEP CAT(naive_step_, BM_NAME)
#define NAIVE_WS CAT(naive_ws_, BM_NAME)

size_t NAIVE_WS(int n);
float NAIVE_STEP(float *theta, const float *x, const float *y, int n, void *ws,
                 float *grad, float lr);

size_t NAIVE_WS(int n)
{
    (void)n;
    return (2 * NH + NO) * sizeof(float);
}

float NAIVE_STEP(float *theta, const float *x, const float *y, int n, void *ws,
                 float *grad, float lr)
{
    const float *W1 = theta;
    const float *b1 = W1 + NH * NI;
    const float *W2 = b1 + NH;
    const float *b2 = W2 + NO * NH;
    float *gW1 = grad;
    float *gb1 = gW1 + NH * NI;
    float *gW2 = gb1 + NH;
    float *gb2 = gW2 + NO * NH;
    const size_t np = (size_t)NH * NI + NH + (size_t)NO * NH + NO;
    float *h = (float *)ws;
    float *dh = h + NH;
    float *z = dh + NH;
    double loss = 0.0;

    for (size_t i = 0; i < np; i++)
        grad[i] = 0.0f;

    for (int s = 0; s < n; s++) {
        const float *xs = x + (size_t)s * NI;
        const float *ys = y + (size_t)s * NO;

        /* forward */
        for (int j = 0; j < NH; j++) {
            float a = b1[j];
            for (int k = 0; k < NI; k++)
                a += W1[j * NI + k] * xs[k];
#if ACT_TANH
            h[j] = tanhf(a);
#else
            h[j] = a > 0.0f ? a : 0.0f;
#endif
        }
        for (int o = 0; o < NO; o++) {
            float a = b2[o];
            for (int j = 0; j < NH; j++)
                a += W2[o * NH + j] * h[j];
            z[o] = a;
        }

        /* softmax cross-entropy; z becomes dL/dz of the batch mean */
        float mx = z[0];
        for (int o = 1; o < NO; o++)
            if (z[o] > mx)
                mx = z[o];
        float sum = 0.0f;
        for (int o = 0; o < NO; o++)
            sum += expf(z[o] - mx);
        float lse = mx + logf(sum);
        for (int o = 0; o < NO; o++) {
            loss -= ys[o] * (z[o] - lse);
            z[o] = (expf(z[o] - lse) - ys[o]) / (float)n;
        }

        /* backward */
        for (int o = 0; o < NO; o++) {
            gb2[o] += z[o];
            for (int j = 0; j < NH; j++)
                gW2[o * NH + j] += z[o] * h[j];
        }
        for (int j = 0; j < NH; j++) {
            float a = 0.0f;
            for (int o = 0; o < NO; o++)
                a += W2[o * NH + j] * z[o];
#if ACT_TANH
            dh[j] = a * (1.0f - h[j] * h[j]);
#else
            dh[j] = h[j] > 0.0f ? a : 0.0f;
#endif
        }
        for (int j = 0; j < NH; j++) {
            gb1[j] += dh[j];
            for (int k = 0; k < NI; k++)
                gW1[j * NI + k] += dh[j] * xs[k];
        }
    }

    bench_sgd(theta, grad, np, lr);
    return (float)(loss / n);
}
