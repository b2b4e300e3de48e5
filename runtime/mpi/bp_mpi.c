/* bp_mpi.c — the MPI all-reduce hook for data-parallel training (see
 * bp_mpi.h). The only file of the project that includes mpi.h, apart from
 * the programs that use it. */
#include "bp_mpi.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* The runtime's error convention (bp.h), without reaching into libbp's
 * internals: BP_ERR_ARG for the caller's mistakes, BP_ERR_IO when an MPI
 * call fails. */
static int fail(char *err, size_t err_size, const char *what, int code)
{
    if (err && err_size) {
        char msg[MPI_MAX_ERROR_STRING] = "";
        int len = 0;
        if (code != MPI_SUCCESS)
            MPI_Error_string(code, msg, &len);
        snprintf(err, err_size, "bp_mpi: %s%s%s", what, len ? ": " : "", msg);
    }
    return code == MPI_SUCCESS ? BP_ERR_ARG : BP_ERR_IO;
}

int bp_mpi_init(bp_mpi *m, MPI_Comm comm, char *err, size_t err_size)
{
    int ready = 0, finished = 0, rank = 0, size = 0, rc;
    if (!m)
        return fail(err, err_size, "no bp_mpi given", MPI_SUCCESS);
    memset(m, 0, sizeof *m);
    MPI_Initialized(&ready);
    MPI_Finalized(&finished);
    if (!ready || finished)
        return fail(err, err_size,
                    "MPI is not running (call MPI_Init first, and "
                    "MPI_Finalize only after training)", MPI_SUCCESS);
    if ((rc = MPI_Comm_rank(comm, &rank)) != MPI_SUCCESS ||
        (rc = MPI_Comm_size(comm, &size)) != MPI_SUCCESS)
        return fail(err, err_size, "cannot query the communicator", rc);
    m->comm = comm;
    m->parallel.rank = rank;
    m->parallel.size = size;
    m->parallel.allreduce = bp_mpi_allreduce;
    m->parallel.user = m;
    return BP_OK;
}

int bp_mpi_allreduce(void *buf, size_t count, int real_size, void *user)
{
    bp_mpi *m = user;
    MPI_Datatype type = real_size == 4 ? MPI_FLOAT : MPI_DOUBLE;
    if (real_size != 4 && real_size != 8)
        return -1;
    double t0 = MPI_Wtime();
    unsigned char *at = buf;
    while (count > 0) {
        int piece = count > (size_t)INT_MAX ? INT_MAX : (int)count;
        int rc = MPI_Allreduce(MPI_IN_PLACE, at, piece, type, MPI_SUM,
                               m->comm);
        if (rc != MPI_SUCCESS)
            return rc;
        at += (size_t)piece * (size_t)real_size;
        count -= (size_t)piece;
    }
    m->seconds += MPI_Wtime() - t0;
    m->calls++;
    return 0;
}
