/* internal.h — helpers shared by the runtime's files; not installed, not
 * part of the API in bp.h. */
#ifndef BP_INTERNAL_H
#define BP_INTERNAL_H

#include <stddef.h>

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
 * may be NULL) and returns -1. */
int bp_fail(char *err, size_t err_size, const char *fmt, ...);

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

#endif
