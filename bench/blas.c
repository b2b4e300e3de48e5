/* blas.c — the "hand-written C over OpenBLAS" column of the workloads
 * table (workloads.c): one SGD training step of a multilayer perceptron
 *
 *     h_l = act(W_l · h_(l-1) + b_l)   l < L     (act relu or tanh)
 *     z   = W_L · h_(L-1) + b_L
 *     loss = softmax_cross_entropy(z, y), mean over the batch
 *
 * the way a careful C programmer writes it around cblas_sgemm: biases
 * preloaded into the product's output (beta = 1), activations in place,
 * derivatives taken from the activations, softmax + loss + (p - y)/n in
 * one pass, bias gradients as column sums. theta is laid out as bpgen
 * lays it out: W1, b1, W2, b2, ..., each row-major. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "workloads.h"

size_t blas_ws_floats(const wl_arch *a, int n)
{
    size_t sum = 0, widest = 0;
    for (int l = 1; l <= a->layers; l++) {
        sum += (size_t)n * a->size[l];
        if ((size_t)a->size[l] > widest)
            widest = (size_t)a->size[l];
    }
    return sum + 2 * (size_t)n * widest;
}

float blas_step(const wl_arch *a, float *theta, const float *x,
                const float *y, int n, float *ws, float *grad, float lr)
{
    const int L = a->layers;
    const float *W[WL_MAX_LAYERS + 1], *b[WL_MAX_LAYERS + 1];
    float *gW[WL_MAX_LAYERS + 1], *gb[WL_MAX_LAYERS + 1];
    float *H[WL_MAX_LAYERS + 1];
    size_t off = 0, widest = 0;
    float *h = ws;
    for (int l = 1; l <= L; l++) {
        W[l] = theta + off;
        gW[l] = grad + off;
        off += (size_t)a->size[l] * a->size[l - 1];
        b[l] = theta + off;
        gb[l] = grad + off;
        off += (size_t)a->size[l];
        H[l] = h;
        h += (size_t)n * a->size[l];
        if ((size_t)a->size[l] > widest)
            widest = (size_t)a->size[l];
    }
    float *D[2] = {h, h + (size_t)n * widest};
    const float inv_n = 1.0f / (float)n;

    /* forward */
    const float *in = x;
    for (int l = 1; l <= L; l++) {
        int no = a->size[l], ni = a->size[l - 1];
        for (int s = 0; s < n; s++)
            memcpy(H[l] + (size_t)s * no, b[l], (size_t)no * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, no, ni, 1.0f,
                    in, ni, W[l], ni, 1.0f, H[l], no);
        if (l < L) {
            float *hl = H[l];
            size_t count = (size_t)n * no;
            if (a->tanh)
                for (size_t i = 0; i < count; i++)
                    hl[i] = tanhf(hl[i]);
            else
                for (size_t i = 0; i < count; i++)
                    hl[i] = hl[i] > 0.0f ? hl[i] : 0.0f;
        }
        in = H[l];
    }

    /* loss, and dL/dz = (softmax(z) - y) / n in place */
    const int no = a->size[L];
    double loss = 0.0;
    for (int s = 0; s < n; s++) {
        float *z = H[L] + (size_t)s * no;
        const float *ys = y + (size_t)s * no;
        float mx = z[0];
        for (int j = 1; j < no; j++)
            mx = z[j] > mx ? z[j] : mx;
        float sum = 0.0f;
        for (int j = 0; j < no; j++)
            sum += expf(z[j] - mx);
        const float lse = mx + logf(sum);
        float ls = 0.0f;
        for (int j = 0; j < no; j++) {
            ls += ys[j] * (z[j] - lse);
            z[j] = (expf(z[j] - lse) - ys[j]) * inv_n;
        }
        loss -= ls;
    }

    /* backward */
    float *dz = H[L];
    for (int l = L; l >= 1; l--) {
        int nout = a->size[l], nin = a->size[l - 1];
        const float *prev = l > 1 ? H[l - 1] : x;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nout, nin, n,
                    1.0f, dz, nout, prev, nin, 0.0f, gW[l], nin);
        memset(gb[l], 0, (size_t)nout * sizeof(float));
        for (int s = 0; s < n; s++)
            for (int j = 0; j < nout; j++)
                gb[l][j] += dz[(size_t)s * nout + j];
        if (l == 1)
            break;
        float *d = D[l % 2];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, nin, nout,
                    1.0f, dz, nout, W[l], nin, 0.0f, d, nin);
        const float *hp = H[l - 1];
        size_t count = (size_t)n * nin;
        if (a->tanh)
            for (size_t i = 0; i < count; i++)
                d[i] *= 1.0f - hp[i] * hp[i];
        else
            for (size_t i = 0; i < count; i++)
                d[i] = hp[i] > 0.0f ? d[i] : 0.0f;
        dz = d;
    }

    /* update: theta -= lr grad, by OpenBLAS (threaded as the products are) */
    if (lr != 0.0f)
        cblas_saxpy((int)off, -lr, grad, 1, theta, 1);
    return (float)(loss / n);
}
