/* fashion.c — the bpgen side of `make bench-fashion` (see README.md here).
 *
 *   fashion DATA_DIR epoch THETA_OUT [THREADS_IGNORED]
 *       loads Fashion-MNIST (IDX, bytes scaled on the fly), initialises
 *       the 784-256-10 MLP (fashion_init, seed 1), writes the initial
 *       parameters to THETA_OUT (raw little-endian float32, theta's order,
 *       so PyTorch starts from the same weights), prints the initial test
 *       loss, trains one epoch (Adam 1e-3, batch 64, shuffled) and prints
 *       the epoch's training time and the test loss and accuracy.
 *   fashion csv FILE
 *       times bp_data_load_csv on FILE.
 *   fashion idx DATA_DIR
 *       times bp_data_load_idx on the 60 000 training images.
 * Output lines are `key value` pairs that bench/fashion.sh reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bp.h"
#include "fashion.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

static int load(bp_dataset *d, const char *dir, const char *set, char *err, size_t err_size)
{
    char images[1024], labels[1024];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, set);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, set);
    bp_idx_options o = bp_idx_defaults();
    o.classes = 10;
    return bp_data_load_idx(d, images, labels, &o, err, err_size);
}

static int fail(const char *err)
{
    fprintf(stderr, "bench fashion: %s\n", err);
    return 1;
}

int main(int argc, char **argv)
{
    char err[512];
    if (argc == 3 && strcmp(argv[1], "csv") == 0) {
        bp_dataset d;
        double t0 = now(), c0 = cpu();
        if (bp_data_load_csv(&d, argv[2], NULL, err, sizeof err) != 0)
            return fail(err);
        printf("csv_seconds %.4f\ncsv_cpu %.4f\ncsv_rows %zu\n", now() - t0, cpu() - c0, d.rows);
        bp_data_free(&d);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "idx") == 0) {
        bp_dataset d;
        double t0 = now(), c0 = cpu();
        if (load(&d, argv[2], "train", err, sizeof err) != 0)
            return fail(err);
        printf("idx_seconds %.4f\nidx_cpu %.4f\nidx_rows %zu\n", now() - t0, cpu() - c0, d.rows);
        bp_data_free(&d);
        return 0;
    }
    if (argc != 4 || strcmp(argv[2], "epoch") != 0) {
        fprintf(stderr, "usage: %s DATA_DIR epoch THETA_OUT | csv FILE | idx DATA_DIR\n", argv[0]);
        return 2;
    }
    bp_dataset train = {0}, test = {0};
    if (load(&train, argv[1], "train", err, sizeof err) != 0 ||
        load(&test, argv[1], "t10k", err, sizeof err) != 0)
        return fail(err);
    static float theta[fashion_NUM_PARAMS];
    fashion_init(theta, 1);
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(theta, sizeof theta, 1, f) != 1 || fclose(f) != 0)
        return fail("cannot write the initial parameters");
    bp_train_config cfg = bp_train_defaults();
    cfg.batch_size = 64;
    cfg.epochs = 1;
    cfg.verbose = 0;
    cfg.optim = bp_optim_defaults(BP_ADAM);
    cfg.optim.lr = 1e-3;
    double loss0, acc0;
    if (bp_evaluate(&fashion_model, theta, &test, &cfg, &loss0, &acc0, err, sizeof err) != 0)
        return fail(err);
    bp_epoch_report r;
    double c0 = cpu();
    if (bp_train(&fashion_model, theta, &train, NULL, &cfg, &r, err, sizeof err) != 0)
        return fail(err);
    double c1 = cpu(), t1 = now(), loss, acc;
    if (bp_evaluate(&fashion_model, theta, &test, &cfg, &loss, &acc, err, sizeof err) != 0)
        return fail(err);
    printf("initial_test_loss %.6f\nepoch_seconds %.4f\nepoch_cpu %.4f\neval_seconds %.4f\n"
           "test_loss %.6f\ntest_acc %.4f\n",
           loss0, r.train_seconds, c1 - c0, now() - t1, loss, acc);
    bp_data_free(&train);
    bp_data_free(&test);
    return 0;
}
