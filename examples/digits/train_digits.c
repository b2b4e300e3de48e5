/* train_digits.c — a 64-32-10 classifier of 8x8 hand-written digits.
 *
 * digits.csv holds 1797 images of 8x8 pixels with values 0..16 and the
 * digit (0-9) as the last column. The pixels are scaled to 0..1 by a fixed
 * factor (1/16) rather than standardised, so that a program classifying a
 * new image (classify_digit.c) needs nothing but the weights file. The data
 * are split 80/20 with a fixed seed, the network (relu hidden layer, softmax
 * cross-entropy) is trained with Adam, the weights are saved, and the test
 * accuracy and confusion matrix are printed.
 *
 * Usage: train_digits WEIGHTS_FILE [digits.csv]
 * Ends with `result: digits test_accuracy A`.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bp.h"
#include "digits.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s WEIGHTS_FILE [digits.csv]\n", argv[0]);
        return 2;
    }
    const char *weights_path = argv[1];
    const char *csv_path = argc > 2 ? argv[2] : "digits.csv";
    char err[512];
    int status = 1;
    bp_dataset all = {0}, train = {0}, test = {0};
    float *theta = NULL;
    int *pred = NULL;

    if (bp_data_load_csv(&all, csv_path, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "train_digits: %s\n", err);
        goto done;
    }
    if (all.features != 64 || all.classes != 10) {
        fprintf(stderr, "train_digits: %s: expected 64 pixels and 10 classes, found %d and %d\n",
                csv_path, all.features, all.classes);
        goto done;
    }
    for (size_t i = 0; i < all.rows * 64; i++)
        all.x[i] /= 16;
    if (bp_data_split(&all, 0.2, 1, &train, &test, err, sizeof err) != 0) {
        fprintf(stderr, "train_digits: %s\n", err);
        goto done;
    }
    printf("digits: %zu images; %zu for training, %zu for testing\n", all.rows, train.rows,
           test.rows);

    theta = malloc(sizeof *theta * digits_NUM_PARAMS);
    pred = malloc(sizeof *pred * (test.rows + 1));
    if (!theta || !pred) {
        fprintf(stderr, "train_digits: out of memory\n");
        goto done;
    }
    digits_init(theta, 1);

    bp_train_config cfg = bp_train_defaults();
    cfg.epochs = 20;
    cfg.batch_size = 32;
    cfg.seed = 3;
    cfg.optim = bp_optim_defaults(BP_ADAM);
    cfg.forward_outputs = digits_forward_outputs_any;   /* evaluation: one pass a batch */
    cfg.forward_backward = digits_forward_backward_any;   /* training: one call a step */
    cfg.optim.lr = 0.005;
    if (bp_train(&digits_model, theta, &train, &test, &cfg, NULL, err, sizeof err) != 0 ||
        bp_weights_save(weights_path, &digits_model, theta, err, sizeof err) != 0 ||
        bp_predict_argmax(&digits_model, theta, &test, &cfg, pred, err, sizeof err) != 0) {
        fprintf(stderr, "train_digits: %s\n", err);
        goto done;
    }
    printf("\nweights saved to %s\n", weights_path);

    int confusion[10][10] = {{0}};
    size_t right = 0;
    for (size_t i = 0; i < test.rows; i++) {
        if (pred[i] >= 0 && pred[i] < 10 && test.label[i] >= 0 && test.label[i] < 10)
            confusion[test.label[i]][pred[i]]++;
        right += pred[i] == test.label[i];
    }
    printf("confusion matrix (rows: true digit, columns: predicted)\n     ");
    for (int c = 0; c < 10; c++)
        printf("%4d", c);
    printf("\n");
    for (int r = 0; r < 10; r++) {
        printf("%4d ", r);
        for (int c = 0; c < 10; c++)
            printf("%4d", confusion[r][c]);
        printf("\n");
    }
    double acc = (double)right / (double)test.rows;
    printf("test accuracy %.3f (%zu of %zu)\n", acc, right, test.rows);
    printf("result: digits test_accuracy %.3f\n", acc);
    status = 0;
done:
    free(theta);
    free(pred);
    bp_data_free(&all);
    bp_data_free(&train);
    bp_data_free(&test);
    return status;
}
