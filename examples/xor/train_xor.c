/* train_xor.c — a 2-2-1 sigmoid network learns XOR.
 *
 * XOR is the classic function one layer cannot represent: the hidden layer
 * must learn two features (roughly OR and AND) that the output neuron then
 * combines. The four cases form one batch; the network is trained by
 * full-batch gradient descent with momentum. A 2-2-1 network has a few
 * poor local minima, so when a run ends with a case still wrong the program
 * starts again from the next seed (at most five tries; it says so).
 * Ends with `result: xor cases_correct K` (K of 4 cases whose output is on
 * the right side of 0.5) and exits 1 unless K is 4.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bp.h"
#include "xor.h"

enum { N = 4, EPOCHS = 2000, TRIES = 5 };

static const double x[N * 2] = {0, 0, 0, 1, 1, 0, 1, 1};
static const double t[N] = {0, 1, 1, 0};

int main(void)
{
    double theta[xor_NUM_PARAMS], grad[xor_NUM_PARAMS];
    bp_optim_config cfg = bp_optim_defaults(BP_MOMENTUM);
    cfg.lr = 2.0;
    cfg.momentum = 0.9;
    void *state = malloc(bp_optim_state_size(&cfg, xor_NUM_PARAMS, sizeof(double)) + 1);
    void *ws = malloc(xor_workspace_size(N) + 1);
    if (!state || !ws) {
        fprintf(stderr, "train_xor: out of memory\n");
        return 1;
    }
    const double *inputs[2] = {x, t};
    double y[N];
    double *outputs[1] = {y};
    int correct = 0;
    for (unsigned long long seed = 1; seed <= TRIES && correct < N; seed++) {
        xor_init(theta, seed);
        bp_optimizer opt;
        bp_optim_init(&opt, &cfg, &xor_model, xor_NUM_PARAMS, sizeof(double), state);
        printf("seed %llu\n", seed);
        for (int epoch = 0; epoch <= EPOCHS; epoch++) {
            double loss = xor_forward(theta, inputs, N, ws);
            if (epoch % 500 == 0)
                printf("  epoch %4d  loss %.6f\n", epoch, loss);
            if (epoch == EPOCHS)
                break;
            xor_backward(theta, inputs, N, ws, grad, NULL);
            bp_optim_step(&opt, theta, grad, NULL, 0);
        }
        xor_predict(theta, inputs, N, ws, outputs);
        correct = 0;
        for (int i = 0; i < N; i++)
            correct += (y[i] > 0.5) == (t[i] > 0.5);
        if (correct < N)
            printf("  stuck in a local minimum (%d of 4 right); next seed\n", correct);
    }
    printf("\n x1 x2  target  output\n");
    for (int i = 0; i < N; i++)
        printf("  %g  %g  %6g  %6.3f\n", x[2 * i], x[2 * i + 1], t[i], y[i]);
    const double *W1 = theta + xor_W1_OFFSET, *b1 = theta + xor_b1_OFFSET;
    printf("hidden layer: h1 = sigmoid(%.2f x1 %+.2f x2 %+.2f), h2 = sigmoid(%.2f x1 %+.2f x2 %+.2f)\n",
           W1[0], W1[1], b1[0], W1[2], W1[3], b1[1]);
    free(state);
    free(ws);
    printf("result: xor cases_correct %d\n", correct);
    return correct == N ? 0 : 1;
}
