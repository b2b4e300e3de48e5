/* workloads.h — the workloads of issue 7's table (workloads.c), and the
 * hand-written OpenBLAS step (blas.c) and plain chain loop (chain_plain.c)
 * they are compared with. */
#ifndef WORKLOADS_H
#define WORKLOADS_H

#include <stddef.h>

#define WL_MAX_LAYERS 3

typedef struct {
    int layers;                       /* weight layers, 2 or 3 */
    int size[WL_MAX_LAYERS + 1];      /* size[0] inputs .. size[layers] classes */
    int tanh;                         /* hidden activation: 1 tanh, 0 relu */
} wl_arch;

size_t blas_ws_floats(const wl_arch *a, int n);
float blas_step(const wl_arch *a, float *theta, const float *x,
                const float *y, int n, float *ws, float *grad, float lr);

/* The 4-16-3 tanh step at batch 1 written by hand (tiny.c): the loss, and
 * the gradient into grad; or with plain SGD folded in, theta updated. */
float tiny_step(const float *theta, const float *x, const float *y,
                float *grad);
float tiny_step_sgd(float *theta, const float *x, const float *y, float lr);

/* The scalar chain S = L^2 + 2, P = sqrt(S) over n samples: returns the
 * mean of P and writes dL[i] = d mean / d L[i] = L[i] / P[i] / n. */
double chain_plain(const double *L, double *dL, long n);
/* The same loop compiled with -O2, as generated code is built. */
double chain_plain_o2(const double *L, double *dL, long n);

#endif
