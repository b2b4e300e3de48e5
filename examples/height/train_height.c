/* train_height.c — the textbook two-input, two-hidden-neuron network.
 *
 *     h1 = σ(W1·weight + W2·shoulder + b1)
 *     h2 = σ(W3·weight + W4·shoulder + b2)
 *     ŷ  = W5·h1 + W6·h2 + b3,          E = ½(ŷ − height)²
 *
 * predicts a person's height (feet) from weight (kg) and shoulder width
 * (inches). The chain rule by hand gives, for example,
 *     dE/dW5 = (ŷ − height) · h1
 *     dE/dW1 = (ŷ − height) · W5 · h1(1 − h1) · weight
 *     dE/db3 = (ŷ − height)
 * The program checks the generated backward pass against these on the first
 * row, then trains on ten rows (features standardised to mean 0, standard
 * deviation 1 first, so the sigmoids do not start saturated) by full-batch
 * gradient descent with momentum. Ends with `result: height loss_ratio R`
 * (final loss / initial loss); exits 1 when the gradients disagree or the
 * loss did not fall by a factor of 100.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bp.h"
#include "height.h"

enum { N = 10, EPOCHS = 2000 };

static const double rows[N][3] = {
    /* weight, shoulder, height */
    {68, 14, 5.7},   {89, 18, 6.0},   {55, 13, 5.3},   {60, 13.5, 5.4},
    {72, 15, 5.8},   {75, 15.5, 5.9}, {80, 16, 5.9},   {85, 17, 6.0},
    {95, 18.5, 6.2}, {62, 14.5, 5.6},
};

static double sigma(double z)
{
    return 1 / (1 + exp(-z));
}

int main(void)
{
    double weight[N], shoulder[N], height[N];
    double mean[2] = {0, 0}, sd[2] = {0, 0};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 2; j++)
            mean[j] += rows[i][j] / N;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 2; j++)
            sd[j] += (rows[i][j] - mean[j]) * (rows[i][j] - mean[j]) / N;
    for (int j = 0; j < 2; j++)
        sd[j] = sqrt(sd[j]);
    for (int i = 0; i < N; i++) {
        weight[i] = (rows[i][0] - mean[0]) / sd[0];
        shoulder[i] = (rows[i][1] - mean[1]) / sd[1];
        height[i] = rows[i][2];
    }

    double theta[height_NUM_PARAMS], grad[height_NUM_PARAMS];
    height_init(theta, 1); /* W1..W6 as in height.net, biases 0 */
    void *ws = malloc(height_workspace_size(N) + 1);
    if (!ws) {
        fprintf(stderr, "train_height: out of memory\n");
        return 1;
    }

    /* 1. The first row: generated gradients next to the hand-derived ones. */
    const double *in1[3] = {&weight[0], &shoulder[0], &height[0]};
    height_forward(theta, in1, 1, ws);
    height_backward(theta, in1, 1, ws, grad, NULL);
    const double *P = theta;
    double W1 = P[height_W1_OFFSET], W2 = P[height_W2_OFFSET], W5 = P[height_W5_OFFSET];
    double W3 = P[height_W3_OFFSET], W4 = P[height_W4_OFFSET], W6 = P[height_W6_OFFSET];
    double b1 = P[height_b1_OFFSET], b2 = P[height_b2_OFFSET], b3 = P[height_b3_OFFSET];
    double h1 = sigma(W1 * weight[0] + W2 * shoulder[0] + b1);
    double h2 = sigma(W3 * weight[0] + W4 * shoulder[0] + b2);
    double err = W5 * h1 + W6 * h2 + b3 - height[0];
    struct {
        const char *name;
        double generated, hand;
    } checks[] = {
        {"dE/dW1", grad[height_W1_OFFSET], err * W5 * h1 * (1 - h1) * weight[0]},
        {"dE/dW4", grad[height_W4_OFFSET], err * W6 * h2 * (1 - h2) * shoulder[0]},
        {"dE/dW5", grad[height_W5_OFFSET], err * h1},
        {"dE/db1", grad[height_b1_OFFSET], err * W5 * h1 * (1 - h1)},
        {"dE/db3", grad[height_b3_OFFSET], err},
    };
    printf("row 1 (weight 68, shoulder 14 -> 5.7), standardised, initial weights:\n");
    printf("%-8s %14s %14s\n", "", "generated", "by hand");
    double worst = 0;
    for (size_t k = 0; k < sizeof checks / sizeof checks[0]; k++) {
        printf("%-8s %14.10f %14.10f\n", checks[k].name, checks[k].generated, checks[k].hand);
        double e = fabs(checks[k].generated - checks[k].hand);
        if (!(e <= worst))
            worst = e;
    }
    if (!(worst <= 1e-12)) {
        fprintf(stderr, "train_height: generated and hand gradients differ by %g\n", worst);
        free(ws);
        return 1;
    }

    /* 2. Train on all rows. */
    bp_optim_config cfg = bp_optim_defaults(BP_MOMENTUM);
    cfg.lr = 0.05;
    cfg.momentum = 0.9;
    void *state = malloc(bp_optim_state_size(&cfg, height_NUM_PARAMS, sizeof(double)) + 1);
    if (!state) {
        fprintf(stderr, "train_height: out of memory\n");
        free(ws);
        return 1;
    }
    bp_optimizer opt;
    bp_optim_init(&opt, &cfg, &height_model, height_NUM_PARAMS, sizeof(double), state);
    const double *inputs[3] = {weight, shoulder, height};
    double first = 0, loss = 0;
    printf("\n");
    for (int epoch = 0; epoch <= EPOCHS; epoch++) {
        loss = height_forward(theta, inputs, N, ws);
        if (epoch == 0)
            first = loss;
        if (epoch % 400 == 0)
            printf("epoch %4d  E %.6f\n", epoch, loss);
        if (epoch == EPOCHS)
            break;
        height_backward(theta, inputs, N, ws, grad, NULL);
        bp_optim_step(&opt, theta, grad, NULL, 0);
    }

    double yhat[N];
    double *outputs[1] = {yhat};
    height_predict(theta, inputs, N, ws, outputs);
    printf("\n%8s %9s %8s %9s\n", "weight", "shoulder", "height", "predicted");
    for (int i = 0; i < N; i++)
        printf("%8g %9g %8g %9.3f\n", rows[i][0], rows[i][1], rows[i][2], yhat[i]);
    free(state);
    free(ws);
    double ratio = loss / first;
    printf("result: height loss_ratio %.3g\n", ratio);
    return ratio <= 0.01 ? 0 : 1;
}
