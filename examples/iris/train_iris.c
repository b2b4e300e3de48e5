/* train_iris.c — the 4-16-3 iris classifier, end to end.
 *
 *   1. load iris.csv (150 rows: four measurements and a class 0-2),
 *   2. split it 80/20 with a fixed seed, standardise the features with
 *      statistics of the training split,
 *   3. train with Adam in mini-batches, one report line per epoch, and
 *      record the training curves (WEIGHTS_FILE's folder gets
 *      iris-curves.csv and iris-curves.svg),
 *   4. save the weights, load them into a fresh parameter vector and
 *      evaluate that on the test split,
 *   5. check the generated gradients against finite differences on a batch.
 *
 * Usage: train_iris WEIGHTS_FILE   (run from examples/iris, or give the
 *        CSV's path as a second argument)
 * Ends with `result: iris test_accuracy A`; exits 1 on any error, or when
 * the reloaded weights do not reproduce the trained model's accuracy.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bp.h"
#include "iris.h"

enum { GRADCHECK_ROWS = 8, EPOCHS = 30 };

/* `dir/iris.weights` -> `dir/iris-curves.EXT` */
static void curves_path(char *out, size_t size, const char *weights_path, const char *ext)
{
    const char *slash = strrchr(weights_path, '/');
    int dir = slash ? (int)(slash - weights_path + 1) : 0;
    snprintf(out, size, "%.*siris-curves.%s", dir, weights_path, ext);
}

static const char *const class_names[3] = {"setosa", "versicolor", "virginica"};

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s WEIGHTS_FILE [iris.csv]\n", argv[0]);
        return 2;
    }
    const char *weights_path = argv[1];
    const char *csv_path = argc > 2 ? argv[2] : "iris.csv";
    char err[512];
    int status = 1;
    bp_dataset all = {0}, train = {0}, test = {0};
    bp_standardizer stdz = {0};
    float *theta = NULL, *loaded = NULL;

    if (bp_data_load_csv(&all, csv_path, NULL, err, sizeof err) != 0 ||
        bp_data_split(&all, 0.2, 1, &train, &test, err, sizeof err) != 0 ||
        bp_standardize_fit(&stdz, &train, err, sizeof err) != 0 ||
        bp_standardize_apply(&stdz, &train, err, sizeof err) != 0 ||
        bp_standardize_apply(&stdz, &test, err, sizeof err) != 0) {
        fprintf(stderr, "train_iris: %s\n", err);
        goto done;
    }
    printf("iris: %zu rows, %d features, %d classes; %zu for training, %zu for testing\n",
           all.rows, all.features, all.classes, train.rows, test.rows);

    theta = malloc(sizeof *theta * iris_NUM_PARAMS);
    loaded = calloc(iris_NUM_PARAMS, sizeof *loaded);
    if (!theta || !loaded) {
        fprintf(stderr, "train_iris: out of memory\n");
        goto done;
    }
    iris_init(theta, 1);

    /* Train: Adam, batches of 16. */
    bp_train_config cfg = bp_train_defaults();
    cfg.epochs = EPOCHS;
    cfg.batch_size = 16;
    cfg.seed = 7;
    cfg.optim = bp_optim_defaults(BP_ADAM);
    cfg.forward_outputs = iris_forward_outputs_any;   /* evaluation: one pass a batch */
    cfg.forward_backward = iris_forward_backward_any;   /* training: one call a step */
    cfg.optim.lr = 0.01;
    cfg.eval_train = 1;   /* the training split's loss and accuracy after each epoch */
    /* Each epoch's report is recorded for the curves, then printed. */
    bp_curve_point points[EPOCHS];
    bp_curves curves;
    bp_curves_init(&curves, points, EPOCHS);
    curves.then = bp_epoch_print;
    cfg.on_epoch = bp_curves_record;
    cfg.user = &curves;
    if (bp_train(&iris_model, theta, &train, &test, &cfg, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "train_iris: %s\n", err);
        goto done;
    }
    char csv[1024], svg[1024];
    curves_path(csv, sizeof csv, weights_path, "csv");
    curves_path(svg, sizeof svg, weights_path, "svg");
    if (bp_curves_write_csv(&curves, csv, err, sizeof err) != 0 ||
        bp_curves_write_svg(&curves, svg, "iris: 4-16-3 MLP, Adam", err, sizeof err) != 0) {
        fprintf(stderr, "train_iris: %s\n", err);
        goto done;
    }
    printf("training curves: %s (chart), %s (numbers)\n", svg, csv);

    /* Save, then reload into a fresh, zeroed parameter vector. */
    if (bp_weights_save(weights_path, &iris_model, theta, err, sizeof err) != 0 ||
        bp_weights_load(weights_path, &iris_model, loaded, err, sizeof err) != 0) {
        fprintf(stderr, "train_iris: %s\n", err);
        goto done;
    }
    double loss, acc;
    if (bp_evaluate(&iris_model, loaded, &test, &cfg, &loss, &acc, err, sizeof err) != 0) {
        fprintf(stderr, "train_iris: %s\n", err);
        goto done;
    }
    printf("\nsaved %s and loaded it again: test loss %.4f, test accuracy %.3f (%d of %zu)\n",
           weights_path, loss, acc, (int)lround(acc * (double)test.rows), test.rows);
    if (memcmp(theta, loaded, sizeof *theta * iris_NUM_PARAMS) != 0) {
        fprintf(stderr, "train_iris: the reloaded weights differ from the trained ones\n");
        goto done;
    }

    /* Confusion matrix of the reloaded model on the test split. */
    int pred[150];
    if (test.rows > 150 ||
        bp_predict_argmax(&iris_model, loaded, &test, &cfg, pred, err, sizeof err) != 0) {
        fprintf(stderr, "train_iris: %s\n", test.rows > 150 ? "test split too large" : err);
        goto done;
    }
    int confusion[3][3] = {{0}};
    for (size_t i = 0; i < test.rows; i++)
        if (test.label[i] >= 0 && test.label[i] < 3 && pred[i] >= 0 && pred[i] < 3)
            confusion[test.label[i]][pred[i]]++;
    printf("%-12s %10s %10s %10s   (rows: true class, columns: predicted)\n", "", class_names[0],
           class_names[1], class_names[2]);
    for (int c = 0; c < 3; c++)
        printf("%-12s %10d %10d %10d\n", class_names[c], confusion[c][0], confusion[c][1],
               confusion[c][2]);

    /* Gradient check on a batch of test rows (float: finite differences
     * with the float default step, so agreement to about 1e-3). */
    {
        size_t idx[GRADCHECK_ROWS];
        float x[GRADCHECK_ROWS * 4], y[GRADCHECK_ROWS * 3];
        for (int i = 0; i < GRADCHECK_ROWS; i++)
            idx[i] = (size_t)i;
        bp_batch_fill(&test, idx, GRADCHECK_ROWS, sizeof(float), x, y);
        const void *inputs[2] = {x, y};
        char where[256] = "";
        double worst;
        if (bp_gradcheck(&iris_model, loaded, inputs, GRADCHECK_ROWS, 0, &worst, where,
                         sizeof where) != BP_OK) {
            fprintf(stderr, "train_iris: %s\n", where);
            goto done;
        }
        printf("gradient check on a batch of %d: worst relative error %.2g (%s)\n",
               GRADCHECK_ROWS, worst, where);
    }

    printf("result: iris test_accuracy %.3f\n", acc);
    status = 0;
done:
    free(theta);
    free(loaded);
    bp_standardize_free(&stdz);
    bp_data_free(&all);
    bp_data_free(&train);
    bp_data_free(&test);
    return status;
}
