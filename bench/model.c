/* model.c — glue for one benchmarked model: wraps the bpgen-generated
 * functions of model mlp_BM_NAME into a training step and describes the
 * model to the driver (bench.h).
 *
 * Compiled once per model, with the generated header on the include path:
 *   -DBM_NAME=mnist -DBM_HEADER='"mlp_mnist.h"' -DNI=784 -DNH=256 -DNO=10
 *   -DACT_TANH=0
 */
#include <stddef.h>

#include "bench.h"
#include BM_HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define GEN(suffix) CAT(CAT(mlp_, BM_NAME), suffix)

size_t CAT(hand_ws_, BM_NAME)(int n);
size_t CAT(naive_ws_, BM_NAME)(int n);
float CAT(hand_step_, BM_NAME)(float *theta, const float *x, const float *y,
                               int n, void *ws, float *grad, float lr);
float CAT(naive_step_, BM_NAME)(float *theta, const float *x, const float *y,
                                int n, void *ws, float *grad, float lr);

#if GEN(_NUM_PARAMS) != NH * NI + NH + NO * NH + NO
#error "the generated model does not have the sizes given on the command line"
#endif

/* The generated step: exactly what a user of bpgen writes. */
static float gen_step(float *theta, const float *x, const float *y, int n,
                      void *ws, float *grad, float lr)
{
    const float *const in[2] = {x, y};
    float loss = GEN(_forward)(theta, in, n, ws);
    GEN(_backward)(theta, in, n, ws, grad, NULL);
    bench_sgd(theta, grad, GEN(_NUM_PARAMS), lr);
    return loss;
}

#define STR_(x) #x
#define STR(x) STR_(x)

const bench_model CAT(bench_model_, BM_NAME) = {
    STR(BM_NAME), NI, NH, NO, ACT_TANH ? "tanh" : "relu",
    GEN(_NUM_PARAMS),
    GEN(_init), GEN(_workspace_size),
    CAT(hand_ws_, BM_NAME), CAT(naive_ws_, BM_NAME),
    gen_step, CAT(hand_step_, BM_NAME), CAT(naive_step_, BM_NAME),
};
