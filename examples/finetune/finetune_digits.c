/* finetune_digits.c — transfer learning with a frozen layer.
 *
 *   1. Train digits.net (64-32-10) on the digits 0-4 only, and save it.
 *   2. finetune.net has the same layers, but declares the hidden layer
 *      `param frozen W1`, `param frozen b1`: its generated backward pass
 *      computes no gradient for them, and the optimiser leaves them alone.
 *      Load W1 and b1 from the saved file (bp_weights_load_tensors: only
 *      the tensors named, from another model's file), and train only the
 *      new output layer W2, b2 on the digits 5-9.
 *   3. Check that W1 and b1 are bit for bit what digits.net learned, and
 *      compare with the same output layer trained on an untrained (random)
 *      frozen hidden layer.
 *
 * Both models keep 10 outputs; the labels are not renumbered.
 * Usage: finetune_digits WEIGHTS_FILE [digits.csv]  (WEIGHTS_FILE receives
 *        the 0-4 model; run from examples/finetune, which reads
 *        ../digits/digits.csv by default)
 * Ends with `result: finetune test_accuracy_5_9 A`; exits 1 on any error or
 * when the frozen layer changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp.h"
#include "digits.h"
#include "finetune.h"

typedef struct {
    const char *what;
} Stage;

/* Prints every 10th epoch and the last, prefixed by the stage's name. */
static int report(const bp_epoch_report *r, void *user)
{
    const Stage *s = user;
    if (r->epoch % 10 == 0 || r->epoch == r->epochs)
        printf("  %s: epoch %2d/%d  train loss %.4f  test loss %.4f  test acc %.3f\n", s->what,
               r->epoch, r->epochs, r->train_loss, r->test_loss, r->test_acc);
    return 0;
}

/* Number of values that differ between two float arrays (bitwise). */
static size_t count_changed(const float *a, const float *b, size_t n)
{
    size_t changed = 0;
    for (size_t i = 0; i < n; i++)
        changed += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
    return changed;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s WEIGHTS_FILE [digits.csv]\n", argv[0]);
        return 2;
    }
    const char *weights_path = argv[1];
    const char *csv_path = argc > 2 ? argv[2] : "../digits/digits.csv";
    static const int low[5] = {0, 1, 2, 3, 4}, high[5] = {5, 6, 7, 8, 9};
    static const char *const hidden[2] = {"W1", "b1"};
    char err[512];
    int status = 1;
    bp_dataset all = {0}, train = {0}, test = {0};
    bp_dataset train04 = {0}, test04 = {0}, train59 = {0}, test59 = {0};
    float *base = NULL, *ft = NULL, *snapshot = NULL, *scratch = NULL;
    const size_t nfrozen = finetune_W1_SIZE + finetune_b1_SIZE;

    if (bp_data_load_csv(&all, csv_path, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "finetune_digits: %s\n", err);
        goto done;
    }
    if (all.features != 64 || all.classes != 10) {
        fprintf(stderr, "finetune_digits: %s: expected 64 pixels and 10 classes\n", csv_path);
        goto done;
    }
    for (size_t i = 0; i < all.rows * 64; i++)
        all.x[i] /= 16; /* as in train_digits.c */
    if (bp_data_split(&all, 0.2, 1, &train, &test, err, sizeof err) != 0 ||
        bp_data_filter_labels(&train04, &train, low, 5, 0, err, sizeof err) != 0 ||
        bp_data_filter_labels(&test04, &test, low, 5, 0, err, sizeof err) != 0 ||
        bp_data_filter_labels(&train59, &train, high, 5, 0, err, sizeof err) != 0 ||
        bp_data_filter_labels(&test59, &test, high, 5, 0, err, sizeof err) != 0) {
        fprintf(stderr, "finetune_digits: %s\n", err);
        goto done;
    }
    printf("digits 0-4: %zu training, %zu test images; digits 5-9: %zu training, %zu test\n",
           train04.rows, test04.rows, train59.rows, test59.rows);

    base = malloc(sizeof *base * digits_NUM_PARAMS);
    ft = malloc(sizeof *ft * finetune_NUM_PARAMS);
    scratch = malloc(sizeof *scratch * finetune_NUM_PARAMS);
    snapshot = malloc(sizeof *snapshot * nfrozen);
    if (!base || !ft || !scratch || !snapshot) {
        fprintf(stderr, "finetune_digits: out of memory\n");
        goto done;
    }

    /* 1. The base model on 0-4. */
    bp_train_config cfg = bp_train_defaults();
    cfg.epochs = 15;
    cfg.batch_size = 32;
    cfg.seed = 3;
    cfg.optim = bp_optim_defaults(BP_ADAM);
    cfg.optim.lr = 0.005;
    cfg.on_epoch = report;
    Stage s1 = {"digits.net on 0-4"};
    cfg.user = &s1;
    digits_init(base, 1);
    double acc04 = 0, acc59_before = 0, loss = 0;
    if (bp_train(&digits_model, base, &train04, &test04, &cfg, NULL, err, sizeof err) != 0 ||
        bp_weights_save(weights_path, &digits_model, base, err, sizeof err) != 0 ||
        bp_evaluate(&digits_model, base, &test04, &cfg, &loss, &acc04, err, sizeof err) != 0 ||
        bp_evaluate(&digits_model, base, &test59, &cfg, &loss, &acc59_before, err,
                    sizeof err) != 0) {
        fprintf(stderr, "finetune_digits: %s\n", err);
        goto done;
    }
    printf("saved %s: accuracy on 0-4 %.3f, on 5-9 %.3f (never seen)\n\n", weights_path, acc04,
           acc59_before);

    /* 2. The new output layer on 5-9, hidden layer loaded and frozen. */
    finetune_init(ft, 2);
    if (bp_weights_load_tensors(weights_path, &finetune_model, ft, hidden, 2, err,
                                sizeof err) != 0) {
        fprintf(stderr, "finetune_digits: %s\n", err);
        goto done;
    }
    memcpy(snapshot, ft + finetune_W1_OFFSET, sizeof *ft * finetune_W1_SIZE);
    memcpy(snapshot + finetune_W1_SIZE, ft + finetune_b1_OFFSET, sizeof *ft * finetune_b1_SIZE);
    Stage s2 = {"finetune.net on 5-9"};
    cfg.user = &s2;
    cfg.epochs = 30;
    cfg.optim.lr = 0.01;
    double acc59 = 0;
    if (bp_train(&finetune_model, ft, &train59, &test59, &cfg, NULL, err, sizeof err) != 0 ||
        bp_evaluate(&finetune_model, ft, &test59, &cfg, &loss, &acc59, err, sizeof err) != 0) {
        fprintf(stderr, "finetune_digits: %s\n", err);
        goto done;
    }

    /* 3. Did the frozen layer stay as digits.net learned it? */
    size_t changed = count_changed(snapshot, ft + finetune_W1_OFFSET, finetune_W1_SIZE) +
                     count_changed(snapshot + finetune_W1_SIZE, ft + finetune_b1_OFFSET,
                                   finetune_b1_SIZE);
    size_t differ_from_base =
        count_changed(base + digits_W1_OFFSET, ft + finetune_W1_OFFSET, finetune_W1_SIZE) +
        count_changed(base + digits_b1_OFFSET, ft + finetune_b1_OFFSET, finetune_b1_SIZE);
    printf("frozen layer: %zu of %zu values of W1, b1 changed during training; "
           "%zu differ from digits.net's\n", changed, nfrozen, differ_from_base);

    /* For comparison: the same output layer on a random, untrained hidden
     * layer (finetune.net's default initialisation of W1, b1). */
    finetune_init(scratch, 2);
    Stage s3 = {"random hidden layer"};
    cfg.user = &s3;
    cfg.on_epoch = NULL;
    cfg.verbose = 0;
    double acc_random = 0;
    if (bp_train(&finetune_model, scratch, &train59, &test59, &cfg, NULL, err, sizeof err) != 0 ||
        bp_evaluate(&finetune_model, scratch, &test59, &cfg, &loss, &acc_random, err,
                    sizeof err) != 0) {
        fprintf(stderr, "finetune_digits: %s\n", err);
        goto done;
    }
    printf("accuracy on 5-9: %.3f with the hidden layer learned on 0-4, %.3f with a random one\n",
           acc59, acc_random);
    if (changed != 0 || differ_from_base != 0) {
        fprintf(stderr, "finetune_digits: the frozen layer changed\n");
        goto done;
    }
    printf("result: finetune test_accuracy_5_9 %.3f\n", acc59);
    status = 0;
done:
    free(base);
    free(ft);
    free(scratch);
    free(snapshot);
    bp_data_free(&all);
    bp_data_free(&train);
    bp_data_free(&test);
    bp_data_free(&train04);
    bp_data_free(&test04);
    bp_data_free(&train59);
    bp_data_free(&test59);
    return status;
}
