/* tiny.c — the 4-16-3 tanh step at batch 1 written by hand for this one
 * net: how fast the tightest C99 we can write is at the README's build
 * line (cc -O2), the yardstick for issue 7's batch-1 target. Sizes are
 * constants, the layers live in local arrays, every pointer is restrict,
 * softmax's exponentials are kept for backward, and the math is the
 * runtime's, as in generated code (bp_vtanhf over the 16 hidden units,
 * bp_expf, bp_logf). theta is laid out as the generated code's: W1[16,4],
 * b1[16], W2[3,16], b2[3].
 *
 * tiny_step writes the gradient, like forward + backward (workloads.c then
 * applies bp_optim_step, as for the generated step); tiny_step_sgd folds
 * plain SGD into backward, each parameter updated where its gradient is
 * computed, with no gradient vector. */
#include "bp.h"
#include "workloads.h"

enum { NI = 4, NH = 16, NO = 3 };
enum { W1_AT = 0, B1_AT = NH * NI, W2_AT = B1_AT + NH, B2_AT = W2_AT + NO * NH };

/* Forward for one sample: h = tanh(W1 x + b1), z = W2 h + b2; returns
 * the loss -sum(y * log_softmax(z)) and leaves dL/dz in dz. */
static float forward(const float *restrict theta, const float *restrict x,
                     const float *restrict y, float h[NH], float dz[NO])
{
    const float *W1 = theta + W1_AT, *b1 = theta + B1_AT;
    const float *W2 = theta + W2_AT, *b2 = theta + B2_AT;
    float z[NO], e[NO];
    for (int j = 0; j < NH; j++) {
        float a = b1[j];
        for (int p = 0; p < NI; p++)
            a += W1[j * NI + p] * x[p];
        h[j] = a;
    }
    bp_vtanhf(NH, h, h);
    for (int j = 0; j < NO; j++) {
        float a = b2[j];
        for (int p = 0; p < NH; p++)
            a += W2[j * NH + p] * h[p];
        z[j] = a;
    }
    float mx = z[0];
    for (int j = 1; j < NO; j++)
        mx = z[j] > mx ? z[j] : mx;
    float sum = 0, ysum = 0;
    for (int j = 0; j < NO; j++) {
        e[j] = bp_expf(z[j] - mx);
        sum += e[j];
        ysum += y[j];
    }
    float log_sum = bp_logf(sum), loss = 0;
    for (int j = 0; j < NO; j++) {
        loss -= y[j] * (z[j] - mx - log_sum);
        dz[j] = e[j] / sum * ysum - y[j];
    }
    return loss;
}

float tiny_step(const float *restrict theta, const float *restrict x,
                const float *restrict y, float *restrict grad)
{
    const float *W2 = theta + W2_AT;
    float h[NH], dz[NO], dh[NH];
    float loss = forward(theta, x, y, h, dz);
    for (int p = 0; p < NH; p++)
        dh[p] = 0;
    for (int j = 0; j < NO; j++) {
        for (int p = 0; p < NH; p++) {
            dh[p] += dz[j] * W2[j * NH + p];
            grad[W2_AT + j * NH + p] = dz[j] * h[p];
        }
        grad[B2_AT + j] = dz[j];
    }
    for (int j = 0; j < NH; j++) {
        float t = dh[j] * (1 - h[j] * h[j]);
        for (int p = 0; p < NI; p++)
            grad[W1_AT + j * NI + p] = t * x[p];
        grad[B1_AT + j] = t;
    }
    return loss;
}

float tiny_step_sgd(float *restrict theta, const float *restrict x,
                    const float *restrict y, float lr)
{
    float *W1 = theta + W1_AT, *b1 = theta + B1_AT;
    float *W2 = theta + W2_AT, *b2 = theta + B2_AT;
    float h[NH], dz[NO], dh[NH];
    float loss = forward(theta, x, y, h, dz);
    for (int p = 0; p < NH; p++)
        dh[p] = 0;
    for (int j = 0; j < NO; j++) {
        for (int p = 0; p < NH; p++) {
            dh[p] += dz[j] * W2[j * NH + p];     /* W2 read before its update */
            W2[j * NH + p] -= lr * (dz[j] * h[p]);
        }
        b2[j] -= lr * dz[j];
    }
    for (int j = 0; j < NH; j++) {
        float t = dh[j] * (1 - h[j] * h[j]);
        for (int p = 0; p < NI; p++)
            W1[j * NI + p] -= lr * (t * x[p]);
        b1[j] -= lr * t;
    }
    return loss;
}
