/* internal.h — helpers shared by the runtime's files; not installed, not
 * part of the API in bp.h. */
#ifndef BP_INTERNAL_H
#define BP_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "bp.h"

/* Element i of a float (real_size 4) or double (8) buffer, as a double. */
static inline double bp_real_get(const void *p, int real_size, size_t i)
{
    return real_size == 4 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static inline void bp_real_set(void *p, int real_size, size_t i, double v)
{
    if (real_size == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

/* The error convention of bp.h: writes the message into err (caller-owned,
 * may be NULL) and returns `status` (a negative bp_status). */
int bp_error(int status, char *err, size_t err_size, const char *fmt, ...);
/* The same for the commonest case, an unusable argument: BP_ERR_ARG. */
int bp_fail(char *err, size_t err_size, const char *fmt, ...);

/* tempfile.c — a new temporary file beside PATH, for saves that write it
 * and rename it over PATH: named PATH.tmp<pid>-<n> and created with O_EXCL,
 * so no two saves, from two processes or two threads, ever write the same
 * one. Returns the stream (and the malloc'd name in *tmp_path), or NULL
 * with errno set (ENOMEM when out of memory) and *tmp_path NULL. */
FILE *bp_create_temp(const char *path, char **tmp_path);

/* parallel.c — data-parallel training's part of bp_train (bp_parallel in
 * bp.h). p may be NULL or of size 1 (one process) in bp_par_check only;
 * the others are called for size > 1. They return the hook's status (0,
 * or nonzero when the all-reduce failed) unless said otherwise. */
int bp_par_check(const bp_parallel *p, char *err, size_t err_size);
/* This rank's rows of a global batch of n rows: [*lo, *lo + *count). */
void bp_par_share(const bp_parallel *p, size_t n, size_t *lo, size_t *count);
/* FNV-1a, 64 bits, of n bytes, continuing from h (start with
 * BP_HASH_START). */
#define BP_HASH_START 14695981039346656037ULL
unsigned long long bp_par_hash(unsigned long long h, const void *bytes,
                               size_t n);
/* Sums sums[0..count) over the ranks and, in the same all-reduce, finds
 * whether every rank passed the same `hash`: *same = 1 or 0. */
int bp_par_sum_agree(const bp_parallel *p, double *sums, int count,
                     unsigned long long hash, int *same);
/* Before the first epoch: fails (on every rank alike) unless all ranks
 * got the same data, settings and optimiser state (c, opt) and the same
 * theta. */
int bp_par_start(const bp_parallel *p, const bp_model *m, const void *theta,
                 const bp_dataset *train, const bp_dataset *test,
                 const bp_train_config *c, const bp_optimizer *opt,
                 char *err, size_t err_size);
/* After the backward pass of this rank's `share` rows of a global batch of
 * n rows (share may be 0: grad is then not read): scales grad (num_params
 * values of real_size) by share / n and sums it over the ranks, so every
 * rank holds the gradient of the batch's mean loss; *loss goes in as this
 * share's mean loss and comes out as the batch's. grad must have room for
 * num_params + 1 values (the last carries the loss). */
int bp_par_step(const bp_parallel *p, void *grad, size_t num_params,
                int real_size, size_t share, size_t n, double *loss);

/* ---- threads.c: the pool behind bp_set_num_threads ---- */

#define BP_MAX_THREADS 64

/* One piece of a job: part is in [0, parts). */
typedef void bp_part_fn(void *ctx, int part);

/* Runs fn(ctx, p) for every p in [0, parts), spread over the pool's
 * threads (the caller's included). Pieces must not depend on which
 * thread runs them or in what order. Returns when all are done. When the
 * pool is busy or the setting is 1 thread, the caller runs them all. */
void bp_parallel_run(int parts, bp_part_fn *fn, void *ctx);

/* A 64-byte aligned scratch block of at least `bytes` owned by the calling
 * thread (kept between calls, freed when the thread exits); NULL when
 * memory is short. The same thread must not use two at once. */
void *bp_thread_scratch(size_t bytes);

/* ---- cpu.c: which kernels run ---- */

/* x86-64 kernels are compiled with target attributes (GCC and clang) and
 * chosen at run time; other compilers and machines get portable C, as
 * does a build with -DBP_NO_SIMD. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) \
    && !defined(BP_NO_SIMD)
#define BP_X86_KERNELS 1
#define BP_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define BP_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma")))
#endif

enum { BP_ISA_PORTABLE, BP_ISA_AVX2, BP_ISA_AVX512, BP_ISA_COUNT };

/* The instruction set the kernels use now: the best the CPU (and the OS)
 * supports, unless bp_isa_force chose one. */
int bp_isa(void);
/* For tests and benchmarks: use `isa` from now on (-1: back to
 * detection). Returns 0, or -1 (and changes nothing) when this CPU or
 * build cannot run it. Not for use while other threads compute. */
int bp_isa_force(int isa);

/* bp_batch_fill for rows first + idx[i] (first + i when idx is NULL), so
 * callers can walk a data set in order without a view of its arrays. */
#include "bp.h"
void bp_batch_fill_from(const bp_dataset *d, size_t first, const size_t *idx,
                        int n, int real_size, void *x, void *y);

#endif
