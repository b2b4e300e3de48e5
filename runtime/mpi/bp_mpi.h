/* bp_mpi.h — data-parallel training over MPI: the all-reduce hook of
 * bp_parallel (bp.h) implemented with MPI_Allreduce.
 *
 * Build with mpicc and link build/libbp_mpi.a before build/libbp.a:
 *
 *     mpicc -O2 -Iruntime -Iruntime/mpi M.c app.c build/libbp_mpi.a \
 *           build/libbp.a -lm
 *     mpirun -np 4 ./app
 *
 * libbp.a and generated code stay free of MPI; only this library and the
 * application see it. The caller initialises and finalises MPI. */
#ifndef BP_MPI_H
#define BP_MPI_H

#include <mpi.h>

#include "bp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    bp_parallel parallel;   /* give &parallel to bp_train_config.parallel */
    MPI_Comm comm;
    /* Time spent inside MPI_Allreduce by the hook, and its calls (for
     * measuring; waiting for the slowest rank counts as all-reduce). */
    double seconds;
    long calls;
} bp_mpi;

/* Sets m up for the ranks of comm (MPI_COMM_WORLD: every process mpirun
 * started): parallel.rank and .size from MPI, parallel.allreduce =
 * bp_mpi_allreduce, parallel.user = m. comm must stay valid while m is in
 * use, and m must not move. Returns BP_OK, BP_ERR_ARG (m NULL, MPI not
 * initialised) or BP_ERR_IO (an MPI call failed), with a message in err. */
int bp_mpi_init(bp_mpi *m, MPI_Comm comm, char *err, size_t err_size);

/* The hook: MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT or
 * MPI_DOUBLE, MPI_SUM, comm), in pieces of at most INT_MAX values. user is
 * the bp_mpi. Returns 0, or the MPI error code (only when comm's error
 * handler returns errors; by default MPI aborts on an error). */
int bp_mpi_allreduce(void *buf, size_t count, int real_size, void *user);

#ifdef __cplusplus
}
#endif

#endif
