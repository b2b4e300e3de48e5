/* hand.c — the "hand-written BLAS code" baseline: one training step of the
 * two-layer perceptron (see bench.h), written the way a C programmer who
 * knows the maths would write it by hand around the runtime's bp_gemm_f.
 *
 * Compiled once per model with the sizes as macros:
 *   -DBM_NAME=mnist -DNI=784 -DNH=256 -DNO=10 -DACT_TANH=0
 *
 * Tricks a careful hand-writer uses (and the generated code may not):
 *   - the bias is copied into the output rows first and gemm accumulates
 *     onto it (beta = 1), so there is no separate bias pass;
 *   - the activation is applied in place, and its derivative is taken from
 *     the activation itself (relu: h > 0; tanh: 1 - h^2), so the
 *     pre-activation is never stored;
 *   - softmax, the loss and dL/dz = (p - y) / n are one pass over the
 *     logits, in place (the targets are one-hot, so sum(y) = 1 and the
 *     general p * sum(y) - y is just p - y);
 *   - the 1/n of the batch mean is folded into dL/dz once.
 * Workspace: n * (2*NH + NO) floats: H (activations), D (dL/d pre-act.),
 * P (logits, then probabilities, then dL/dz).
 */
#include <math.h>
#include <string.h>

#include "bp.h"
#include "bench.h"

#if !defined(BM_NAME) || !defined(NI) || !defined(NH) || !defined(NO) || !defined(ACT_TANH)
#error "compile with -DBM_NAME=... -DNI=... -DNH=... -DNO=... -DACT_TANH=0|1"
#endif

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define HAND_STEP CAT(hand_step_, BM_NAME)
#define HAND_WS CAT(hand_ws_, BM_NAME)

size_t HAND_WS(int n);
float HAND_STEP(float *theta, const float *x, const float *y, int n, void *ws,
                float *grad, float lr);

size_t HAND_WS(int n)
{
    return (size_t)n * (2 * NH + NO) * sizeof(float);
}

float HAND_STEP(float *theta, const float *x, const float *y, int n, void *ws,
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
    float *H = (float *)ws;
    float *D = H + (size_t)n * NH;
    float *P = D + (size_t)n * NH;
    const float inv_n = 1.0f / (float)n;

    /* ---- forward ---- */
    /* H = act(X · W1ᵀ + b1) */
    for (int s = 0; s < n; s++)
        memcpy(H + (size_t)s * NH, b1, NH * sizeof(float));
    bp_gemm_f(0, 1, n, NH, NI, 1.0f, x, NI, W1, NI, 1.0f, H, NH);
    for (size_t i = 0; i < (size_t)n * NH; i++)
#if ACT_TANH
        H[i] = tanhf(H[i]);
#else
        H[i] = H[i] > 0.0f ? H[i] : 0.0f;
#endif
    /* P = H · W2ᵀ + b2 (logits) */
    for (int s = 0; s < n; s++)
        memcpy(P + (size_t)s * NO, b2, NO * sizeof(float));
    bp_gemm_f(0, 1, n, NO, NH, 1.0f, H, NH, W2, NH, 1.0f, P, NO);

    /* loss and dL/dz = (softmax(z) - y) / n, in place */
    double loss = 0.0;
    for (int s = 0; s < n; s++) {
        float *z = P + (size_t)s * NO;
        const float *ys = y + (size_t)s * NO;
        float mx = z[0];
        for (int j = 1; j < NO; j++)
            mx = z[j] > mx ? z[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < NO; j++)
            sum += expf(z[j] - mx);
        const float lse = mx + logf(sum);
        float ls = 0.0f;
        for (int j = 0; j < NO; j++) {
            ls += ys[j] * (z[j] - lse);
            z[j] = (expf(z[j] - lse) - ys[j]) * inv_n;
        }
        loss -= ls;
    }

    /* ---- backward ---- */
    /* db2 = column sums of dZ; dW2 = dZᵀ · H */
    memset(gb2, 0, NO * sizeof(float));
    for (int s = 0; s < n; s++)
        for (int j = 0; j < NO; j++)
            gb2[j] += P[(size_t)s * NO + j];
    bp_gemm_f(1, 0, NO, NH, n, 1.0f, P, NO, H, NH, 0.0f, gW2, NH);
    /* D = (dZ · W2) * act'(H) */
    bp_gemm_f(0, 0, n, NH, NO, 1.0f, P, NO, W2, NH, 0.0f, D, NH);
    for (size_t i = 0; i < (size_t)n * NH; i++)
#if ACT_TANH
        D[i] *= 1.0f - H[i] * H[i];
#else
        D[i] = H[i] > 0.0f ? D[i] : 0.0f;
#endif
    /* db1 = column sums of D; dW1 = Dᵀ · X */
    memset(gb1, 0, NH * sizeof(float));
    for (int s = 0; s < n; s++)
        for (int j = 0; j < NH; j++)
            gb1[j] += D[(size_t)s * NH + j];
    bp_gemm_f(1, 0, NH, NI, n, 1.0f, D, NH, x, NI, 0.0f, gW1, NI);

    /* ---- update ---- */
    bench_sgd(theta, grad, (size_t)NH * NI + NH + (size_t)NO * NH + NO, lr);
    return (float)(loss / n);
}
