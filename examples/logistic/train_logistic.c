/* train_logistic.c — one logistic neuron, by hand and by bpgen.
 *
 *     z = θ1·x + θ2,   y = σ(z),   J = ½(y − t)²
 *
 * The chain rule by hand, with σ'(z) = σ(z)(1 − σ(z)) = y(1 − y):
 *     dJ/dθ1 = (y − t) · y(1 − y) · x
 *     dJ/dθ2 = (y − t) · y(1 − y)
 *     dJ/dx  = (y − t) · y(1 − y) · θ1      (x is named in `wrt`)
 *
 * The program first checks the generated backward pass against these
 * formulas on one sample, then fits θ to 21 points whose targets come from
 * the curve t = σ(2x − 1), by full-batch gradient descent with momentum.
 * Ends with `result: logistic loss_ratio R` (final loss / initial loss) and
 * exits 1 when the hand and generated gradients disagree or the loss did not
 * fall by a factor of 100.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bp.h"
#include "logistic.h"

enum { N = 21, EPOCHS = 300 };

static double sigma(double z)
{
    return 1 / (1 + exp(-z));
}

int main(void)
{
    double theta[logistic_NUM_PARAMS], grad[logistic_NUM_PARAMS];
    logistic_init(theta, 1); /* θ1 = 0.5, θ2 = 0 as in logistic.net */
    double *th1 = theta + logistic_theta1_OFFSET, *th2 = theta + logistic_theta2_OFFSET;

    void *ws = malloc(logistic_workspace_size(N) + 1);
    if (!ws) {
        fprintf(stderr, "train_logistic: out of memory\n");
        return 1;
    }

    /* 1. One sample: generated gradients next to the hand-derived ones. */
    double x1 = 1.5, t1 = 0.8, dx1 = 0;
    const double *in1[2] = {&x1, &t1};
    double *gin1[2] = {&dx1, NULL};
    double J = logistic_forward(theta, in1, 1, ws);
    logistic_backward(theta, in1, 1, ws, grad, gin1);
    double y = sigma(*th1 * x1 + *th2);
    double hand[3] = {(y - t1) * y * (1 - y) * x1, (y - t1) * y * (1 - y),
                      (y - t1) * y * (1 - y) * *th1};
    double gen[3] = {grad[logistic_theta1_OFFSET], grad[logistic_theta2_OFFSET], dx1};
    const char *names[3] = {"dJ/dtheta1", "dJ/dtheta2", "dJ/dx"};
    printf("one sample x = %g, t = %g, theta1 = %g, theta2 = %g: y = %.6f, J = %.6f\n",
           x1, t1, *th1, *th2, y, J);
    printf("%-12s %14s %14s\n", "", "generated", "by hand");
    double worst = 0;
    for (int k = 0; k < 3; k++) {
        printf("%-12s %14.10f %14.10f\n", names[k], gen[k], hand[k]);
        double e = fabs(gen[k] - hand[k]);
        if (!(e <= worst))
            worst = e;
    }
    if (!(worst <= 1e-12)) {
        fprintf(stderr, "train_logistic: generated and hand gradients differ by %g\n", worst);
        free(ws);
        return 1;
    }

    /* 2. Fit θ to t = σ(2x − 1) on x = -3, -2.7, ..., 3. */
    double x[N], t[N];
    for (int i = 0; i < N; i++) {
        x[i] = -3 + 0.3 * i;
        t[i] = sigma(2 * x[i] - 1);
    }
    bp_optim_config cfg = bp_optim_defaults(BP_MOMENTUM);
    cfg.lr = 2.0;
    cfg.momentum = 0.9;
    void *state = malloc(bp_optim_state_size(&cfg, logistic_NUM_PARAMS, sizeof(double)) + 1);
    if (!state) {
        fprintf(stderr, "train_logistic: out of memory\n");
        free(ws);
        return 1;
    }
    bp_optimizer opt;
    bp_optim_init(&opt, &cfg, &logistic_model, logistic_NUM_PARAMS, sizeof(double), state);
    const double *inputs[2] = {x, t};
    double first = 0, loss = 0;
    printf("\nfitting t = sigmoid(2x - 1) from theta1 = %g, theta2 = %g\n", *th1, *th2);
    for (int epoch = 0; epoch <= EPOCHS; epoch++) {
        loss = logistic_forward(theta, inputs, N, ws);
        if (epoch == 0)
            first = loss;
        if (epoch % 50 == 0)
            printf("epoch %4d  J %.3e  theta1 %.4f  theta2 %.4f\n", epoch, loss, *th1, *th2);
        if (epoch == EPOCHS)
            break;
        logistic_backward(theta, inputs, N, ws, grad, NULL); /* no dJ/dx needed */
        bp_optim_step(&opt, theta, grad, NULL, 0);
    }
    free(state);
    free(ws);
    double ratio = loss / first;
    printf("learned theta1 %.4f theta2 %.4f (the curve's: 2, -1)\n", *th1, *th2);
    printf("result: logistic loss_ratio %.3g\n", ratio);
    return ratio <= 0.01 ? 0 : 1;
}
