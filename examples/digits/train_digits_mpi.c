/* train_digits_mpi.c — train_digits.c's model, data and settings, trained
 * by several processes at once over MPI (data parallelism).
 *
 * Every rank loads the same data, splits it with the same seed and starts
 * from the same weights (digits_init with seed 1). bp_train then gives
 * each rank its share of every global batch of 32 rows (16 each on 2
 * ranks), sums the gradients with MPI_Allreduce (build/libbp_mpi.a), and
 * every rank takes the same Adam step, so the ranks hold the same weights
 * throughout, and the same weights, within float round-off, as one process
 * training on the whole batch (train_digits). Only rank 0 prints and saves.
 *
 * Usage: mpirun -np 2 train_digits_mpi WEIGHTS_FILE [EPOCHS [digits.csv]]
 * (EPOCHS defaults to train_digits's 20). Ends with
 * `result: digits_mpi test_accuracy A`.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bp.h"
#include "bp_mpi.h"
#include "digits.h"

/* On any rank, an error ends every rank: the others would otherwise wait
 * in their next all-reduce for ever. */
static void die(int rank, const char *what)
{
    if (rank >= 0)
        fprintf(stderr, "train_digits_mpi: rank %d: %s\n", rank, what);
    else
        fprintf(stderr, "train_digits_mpi: %s\n", what);
    MPI_Abort(MPI_COMM_WORLD, 1);
    exit(1);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    char err[512];
    bp_mpi mpi;
    if (bp_mpi_init(&mpi, MPI_COMM_WORLD, err, sizeof err) != 0)
        die(-1, err);
    int rank = mpi.parallel.rank, ranks = mpi.parallel.size;
    if (argc < 2 || argc > 4) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np N %s WEIGHTS_FILE [EPOCHS [digits.csv]]\n",
                    argv[0]);
        MPI_Finalize();
        return 2;
    }
    const char *weights_path = argv[1];
    int epochs = argc > 2 ? atoi(argv[2]) : 20;
    const char *csv_path = argc > 3 ? argv[3] : "digits.csv";
    if (epochs < 1)
        die(rank, "EPOCHS must be a number above 0");

    /* The same data on every rank: loaded, scaled and split alike. */
    bp_dataset all = {0}, train = {0}, test = {0};
    if (bp_data_load_csv(&all, csv_path, NULL, err, sizeof err) != 0)
        die(rank, err);
    if (all.features != 64 || all.classes != 10)
        die(rank, "expected 64 pixels and 10 classes");
    for (size_t i = 0; i < all.rows * 64; i++)
        all.x[i] /= 16;
    if (bp_data_split(&all, 0.2, 1, &train, &test, err, sizeof err) != 0)
        die(rank, err);

    float *theta = malloc(sizeof *theta * digits_NUM_PARAMS);
    if (!theta)
        die(rank, "out of memory");
    digits_init(theta, 1);

    bp_train_config cfg = bp_train_defaults();
    cfg.epochs = epochs;
    cfg.batch_size = 32;    /* the global batch: 32 rows whatever the ranks */
    cfg.seed = 3;
    cfg.optim = bp_optim_defaults(BP_ADAM);
    cfg.optim.lr = 0.005;
    cfg.parallel = &mpi.parallel;
    cfg.forward_backward = digits_forward_backward_any;   /* one call a step, each rank */
    if (rank == 0)
        printf("digits_mpi: %d rank%s; global batch %d (%d to %d rows per rank); "
               "%zu images for training, %zu for testing\n",
               ranks, ranks == 1 ? "" : "s", cfg.batch_size, cfg.batch_size / ranks,
               (cfg.batch_size + ranks - 1) / ranks, train.rows, test.rows);
    bp_epoch_report last;
    if (bp_train(&digits_model, theta, &train, &test, &cfg, &last, err, sizeof err) != 0)
        die(rank, err);

    if (rank == 0) {
        if (bp_weights_save(weights_path, &digits_model, theta, err, sizeof err) != 0)
            die(rank, err);
        long steps = last.step;
        printf("\n%ld steps; weights saved to %s\n", steps, weights_path);
        printf("all-reduce on rank 0: %ld calls, %.1f ms in all (%.1f us per step)\n",
               mpi.calls, 1e3 * mpi.seconds, steps ? 1e6 * mpi.seconds / (double)steps : 0.0);
        printf("test accuracy %.3f\n", last.test_acc);
        printf("result: digits_mpi test_accuracy %.3f\n", last.test_acc);
        fflush(stdout);
    }
    free(theta);
    bp_data_free(&all);
    bp_data_free(&train);
    bp_data_free(&test);
    MPI_Finalize();
    return 0;
}
