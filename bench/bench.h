/* bench.h — what the benchmark driver (main.c) knows about one model.
 *
 * Every benchmarked model is a two-layer perceptron
 *
 *     h = ACT(W1 · x + b1)        W1[NH, NI], b1[NH]
 *     z = W2 · h + b2             W2[NO, NH], b2[NO]
 *     loss L = softmax_cross_entropy(z, y)   (mean over the batch)
 *
 * with ACT relu or tanh, and theta laid out as bpgen lays it out:
 * W1, b1, W2, b2, each row-major. model.c is compiled once per model (its
 * sizes come in as -D flags) and fills one bench_model with three
 * implementations of the same training step:
 *
 *   gen    the bpgen-generated M_forward + M_backward, then SGD;
 *   hand   hand-written C around bp_gemm_f (hand.c);
 *   naive  hand-written C with plain loops, no gemm (naive.c).
 *
 * A step takes one batch, returns its loss, leaves the gradient of the
 * batch loss in grad (length nparams) and then does theta -= lr * grad
 * (lr == 0 leaves theta as it was).
 */
#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>

typedef float (*bench_step_fn)(float *theta, const float *x, const float *y,
                               int n, void *ws, float *grad, float lr);

typedef struct {
    const char *name;        /* "mnist", ... */
    int ni, nh, no;          /* layer sizes */
    const char *act;         /* "relu" or "tanh" */
    size_t nparams;          /* M_NUM_PARAMS */
    void (*init)(float *theta, unsigned long long seed);   /* M_init */
    size_t (*gen_ws)(int n);      /* M_workspace_size */
    size_t (*hand_ws)(int n);     /* bytes hand.c needs for batch n */
    size_t (*naive_ws)(int n);    /* bytes naive.c needs for batch n */
    bench_step_fn gen, hand, naive;
} bench_model;

/* theta -= lr * grad: the same update for every implementation. */
static inline void bench_sgd(float *restrict theta, const float *restrict grad,
                             size_t count, float lr)
{
    if (lr == 0.0f)
        return;
    for (size_t i = 0; i < count; i++)
        theta[i] -= lr * grad[i];
}

#endif
