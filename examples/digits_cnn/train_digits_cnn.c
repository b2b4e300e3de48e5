/* train_digits_cnn.c — a small convolutional network on the 8x8 digits.
 *
 * The same data, scaling (pixels / 16), 80/20 split (seed 1) and training
 * (Adam, 20 epochs of batches of 32) as examples/digits, but the model is
 * digits_cnn.net: 16 filters of 3x3 over the image, relu, 2x2 max pooling,
 * then one dense layer to the 10 classes. Each row of the CSV holds the 64
 * pixels row-major, which is exactly an input of shape [1, 8, 8], so the
 * data need no reshaping. Prints the confusion matrix and the test
 * accuracy, and saves the weights.
 *
 * Usage: train_digits_cnn WEIGHTS_FILE [../digits/digits.csv]
 * Ends with `result: digits_cnn test_accuracy A`.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bp.h"
#include "digits_cnn.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s WEIGHTS_FILE [../digits/digits.csv]\n", argv[0]);
        return 2;
    }
    const char *weights_path = argv[1];
    const char *csv_path = argc > 2 ? argv[2] : "../digits/digits.csv";
    char err[512];
    int status = 1;
    bp_dataset all = {0}, train = {0}, test = {0};
    float *theta = NULL;
    int *pred = NULL;

    if (bp_data_load_csv(&all, csv_path, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "train_digits_cnn: %s\n", err);
        goto done;
    }
    if (all.features != 64 || all.classes != 10) {
        fprintf(stderr, "train_digits_cnn: %s: expected 64 pixels and 10 classes, found %d and %d\n",
                csv_path, all.features, all.classes);
        goto done;
    }
    for (size_t i = 0; i < all.rows * 64; i++)
        all.x[i] /= 16;
    if (bp_data_split(&all, 0.2, 1, &train, &test, err, sizeof err) != 0) {
        fprintf(stderr, "train_digits_cnn: %s\n", err);
        goto done;
    }
    printf("digits: %zu images; %zu for training, %zu for testing\n", all.rows, train.rows,
           test.rows);

    theta = malloc(sizeof *theta * digits_cnn_NUM_PARAMS);
    pred = malloc(sizeof *pred * (test.rows + 1));
    if (!theta || !pred) {
        fprintf(stderr, "train_digits_cnn: out of memory\n");
        goto done;
    }
    digits_cnn_init(theta, 1);

    bp_train_config cfg = bp_train_defaults();
    cfg.epochs = 20;
    cfg.batch_size = 32;
    cfg.seed = 3;
    cfg.optim = bp_optim_defaults(BP_ADAM);
    cfg.forward_outputs = digits_cnn_forward_outputs_any;   /* evaluation: one pass a batch */
    cfg.forward_backward = digits_cnn_forward_backward_any;   /* training: one call a step */
    cfg.optim.lr = 0.005;
    if (bp_train(&digits_cnn_model, theta, &train, &test, &cfg, NULL, err, sizeof err) != 0 ||
        bp_weights_save(weights_path, &digits_cnn_model, theta, err, sizeof err) != 0 ||
        bp_predict_argmax(&digits_cnn_model, theta, &test, &cfg, pred, err, sizeof err) != 0) {
        fprintf(stderr, "train_digits_cnn: %s\n", err);
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
    printf("result: digits_cnn test_accuracy %.3f\n", acc);
    status = 0;
done:
    free(theta);
    free(pred);
    bp_data_free(&all);
    bp_data_free(&train);
    bp_data_free(&test);
    return status;
}
