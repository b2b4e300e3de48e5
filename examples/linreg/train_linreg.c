/* train_linreg.c — linear regression by gradient descent.
 *
 * 200 samples y = 2 x1 - 3 x2 + 0.5 x3 + 1 + noise are drawn with a fixed
 * seed. linreg.net (yhat = w · x + b, loss (yhat - y)^2, averaged over the
 * batch) is trained by full-batch gradient descent with the runtime's SGD
 * optimiser. Gradient descent on this convex loss converges to the
 * least-squares solution, which the program also computes directly from
 * the normal equations (A^T A) beta = A^T y, A = [x 1], and compares.
 * Ends with `result: linreg max_abs_diff_from_least_squares D` and exits 1
 * when D > 1e-6.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bp.h"
#include "linreg.h"

enum { N = 200, D = 3, EPOCHS = 200 };

/* Solves the k x k system M z = r in place (Gaussian elimination with
 * partial pivoting); returns 0, or -1 when M is singular. */
static int solve(int k, double M[][D + 1], double *r, double *z)
{
    for (int c = 0; c < k; c++) {
        int piv = c;
        for (int i = c + 1; i < k; i++)
            if (fabs(M[i][c]) > fabs(M[piv][c]))
                piv = i;
        if (fabs(M[piv][c]) < 1e-12)
            return -1;
        for (int j = 0; j < k; j++) {
            double t = M[c][j];
            M[c][j] = M[piv][j];
            M[piv][j] = t;
        }
        double t = r[c];
        r[c] = r[piv];
        r[piv] = t;
        for (int i = c + 1; i < k; i++) {
            double f = M[i][c] / M[c][c];
            for (int j = c; j < k; j++)
                M[i][j] -= f * M[c][j];
            r[i] -= f * r[c];
        }
    }
    for (int c = k - 1; c >= 0; c--) {
        double s = r[c];
        for (int j = c + 1; j < k; j++)
            s -= M[c][j] * z[j];
        z[c] = s / M[c][c];
    }
    return 0;
}

int main(void)
{
    static double x[N * D], y[N];
    const double w_true[D] = {2, -3, 0.5}, b_true = 1;
    bp_rng rng;
    bp_rng_seed(&rng, 2024);
    for (int i = 0; i < N; i++) {
        double s = b_true;
        for (int j = 0; j < D; j++) {
            x[i * D + j] = bp_rng_normal(&rng, 0, 1);
            s += w_true[j] * x[i * D + j];
        }
        y[i] = s + bp_rng_normal(&rng, 0, 0.1);
    }

    /* Train: theta = [w1 w2 w3 b], full batch, plain gradient descent. */
    double theta[linreg_NUM_PARAMS], grad[linreg_NUM_PARAMS];
    linreg_init(theta, 1);
    bp_optim_config cfg = bp_optim_defaults(BP_SGD);
    cfg.lr = 0.1;
    size_t state_size = bp_optim_state_size(&cfg, linreg_NUM_PARAMS, sizeof(double));
    void *state = malloc(state_size + 1);
    void *ws = malloc(linreg_workspace_size(N) + 1);
    if (!state || !ws) {
        fprintf(stderr, "train_linreg: out of memory\n");
        return 1;
    }
    bp_optimizer opt;
    bp_optim_init(&opt, &cfg, &linreg_model, linreg_NUM_PARAMS, sizeof(double), state);
    const double *inputs[2] = {x, y};
    double first = 0, loss = 0;
    for (int epoch = 0; epoch <= EPOCHS; epoch++) {
        loss = linreg_forward(theta, inputs, N, ws);
        if (epoch == 0)
            first = loss;
        if (epoch % 25 == 0)
            printf("epoch %3d  loss %.6f\n", epoch, loss);
        if (epoch == EPOCHS)
            break;
        linreg_backward(theta, inputs, N, ws, grad, NULL);
        bp_optim_step(&opt, theta, grad, NULL, 0);
    }
    free(ws);
    free(state);

    /* Least squares from the normal equations, in double. */
    double M[D + 1][D + 1] = {{0}}, r[D + 1] = {0}, beta[D + 1];
    for (int i = 0; i < N; i++) {
        double a[D + 1];
        for (int j = 0; j < D; j++)
            a[j] = x[i * D + j];
        a[D] = 1;
        for (int p = 0; p <= D; p++) {
            r[p] += a[p] * y[i];
            for (int q = 0; q <= D; q++)
                M[p][q] += a[p] * a[q];
        }
    }
    if (solve(D + 1, M, r, beta) != 0) {
        fprintf(stderr, "train_linreg: singular normal equations\n");
        return 1;
    }

    const double *w = theta + linreg_w_OFFSET, *b = theta + linreg_b_OFFSET;
    double worst = 0;
    printf("\n%-16s %10s %10s %10s %10s\n", "", "w1", "w2", "w3", "b");
    printf("%-16s %10.6f %10.6f %10.6f %10.6f\n", "true", w_true[0], w_true[1], w_true[2], b_true);
    printf("%-16s %10.6f %10.6f %10.6f %10.6f\n", "least squares", beta[0], beta[1], beta[2], beta[3]);
    printf("%-16s %10.6f %10.6f %10.6f %10.6f\n", "gradient descent", w[0], w[1], w[2], b[0]);
    for (int j = 0; j <= D; j++) {
        double d = fabs((j < D ? w[j] : b[0]) - beta[j]);
        if (!(d <= worst))
            worst = d;
    }
    printf("loss %.6f -> %.6f\n", first, loss);
    printf("result: linreg max_abs_diff_from_least_squares %.3g\n", worst);
    return worst <= 1e-6 ? 0 : 1;
}
