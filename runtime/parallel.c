/* parallel.c — the part of data-parallel training that bp_train runs
 * (bp_parallel in bp.h, the loop in train.c).
 *
 * Every rank walks the same shuffled global batches. A batch of n rows is
 * cut into `size` contiguous shares, rank r taking rows [n r / size,
 * n (r + 1) / size). The generated backward pass gives the mean gradient
 * g_r of a share of n_r rows, and the batch's mean gradient is
 * sum_r (n_r / n) g_r, so each rank scales its g_r by n_r / n and the hook
 * sums: shares of unequal size (the last, partial batch) are weighted
 * exactly. The share's loss (times n_r) rides in one extra slot of the
 * same all-reduce, so a step costs one call.
 *
 * The hook only sums. To check that all ranks hold the same 64-bit value
 * v (a hash of their settings, data or parameters), each rank adds its
 * eight bytes b_k and their squares: by Cauchy–Schwarz,
 * size * sum(b_k^2) == (sum b_k)^2 exactly when every rank's b_k is the
 * same, and these sums are exact in double for up to 2^18 ranks. */
#include "bp.h"
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define HASH_PRIME 1099511628211ULL
#define HASH_BYTES 8
#define MAX_SUMS 16

int bp_par_check(const bp_parallel *p, char *err, size_t err_size)
{
    if (!p)
        return 0;
    if (p->size < 1)
        return bp_fail(err, err_size, "parallel: size %d is below 1",
                       p->size);
    if (p->rank < 0 || p->rank >= p->size)
        return bp_fail(err, err_size,
                       "parallel: rank %d is not in 0..%d (size %d)",
                       p->rank, p->size - 1, p->size);
    if (p->size > 1 && !p->allreduce)
        return bp_fail(err, err_size,
                       "parallel: %d ranks but no allreduce function",
                       p->size);
    return 0;
}

void bp_par_share(const bp_parallel *p, size_t n, size_t *lo, size_t *count)
{
    unsigned long long nn = n, r = (unsigned long long)p->rank,
                       s = (unsigned long long)p->size;
    unsigned long long a = nn * r / s, b = nn * (r + 1) / s;
    *lo = (size_t)a;
    *count = (size_t)(b - a);
}

unsigned long long bp_par_hash(unsigned long long h, const void *bytes,
                               size_t n)
{
    const unsigned char *b = bytes;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= HASH_PRIME;
    }
    return h;
}

int bp_par_sum_agree(const bp_parallel *p, double *sums, int count,
                     unsigned long long hash, int *same)
{
    double buf[MAX_SUMS + 2 * HASH_BYTES];
    if (count < 0 || count > MAX_SUMS)
        return -1;
    if (count)
        memcpy(buf, sums, (size_t)count * sizeof *buf);
    for (int k = 0; k < HASH_BYTES; k++) {
        double b = (double)((hash >> (8 * k)) & 0xff);
        buf[count + k] = b;
        buf[count + HASH_BYTES + k] = b * b;
    }
    int rc = p->allreduce(buf, (size_t)(count + 2 * HASH_BYTES), 8,
                          p->user);
    if (rc != 0)
        return rc;
    if (count)
        memcpy(sums, buf, (size_t)count * sizeof *buf);
    *same = 1;
    for (int k = 0; k < HASH_BYTES; k++) {
        double s = buf[count + k], sq = buf[count + HASH_BYTES + k];
        if ((double)p->size * sq != s * s)
            *same = 0;
    }
    return 0;
}

int bp_par_step(const bp_parallel *p, void *grad, size_t num_params,
                int real_size, size_t share, size_t n, double *loss)
{
    if (share == 0) {
        memset(grad, 0, num_params * (size_t)real_size);
        *loss = 0;
    } else if (share != n) {
        double w = (double)share / (double)n;
        for (size_t i = 0; i < num_params; i++)
            bp_real_set(grad, real_size, i,
                        w * bp_real_get(grad, real_size, i));
    }
    bp_real_set(grad, real_size, num_params, *loss * (double)share);
    int rc = p->allreduce(grad, num_params + 1, real_size, p->user);
    if (rc == 0)
        *loss = bp_real_get(grad, real_size, num_params) / (double)n;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Agreement before training */

#define HASH_FIELD(h, v) ((h) = bp_par_hash((h), &(v), sizeof(v)))

static unsigned long long hash_data(unsigned long long h,
                                    const bp_dataset *d)
{
    unsigned long long rows = d ? d->rows : 0;
    HASH_FIELD(h, rows);
    if (!d)
        return h;
    HASH_FIELD(h, d->features);
    HASH_FIELD(h, d->targets);
    HASH_FIELD(h, d->classes);
    /* The features in whichever storage holds them (data.c): doubles,
     * floats, or bytes with their per-feature map. */
    int storage = (int)d->storage;
    HASH_FIELD(h, storage);
    size_t values = d->rows * (size_t)d->features;
    if (d->storage == BP_STORE_FLOAT)
        h = bp_par_hash(h, d->xf, values * sizeof *d->xf);
    else if (d->storage == BP_STORE_BYTE) {
        h = bp_par_hash(h, d->xb, values);
        h = bp_par_hash(h, d->xb_scale, (size_t)d->features * sizeof *d->xb_scale);
        h = bp_par_hash(h, d->xb_shift, (size_t)d->features * sizeof *d->xb_shift);
    } else
        h = bp_par_hash(h, d->x, values * sizeof *d->x);
    if (d->y)
        h = bp_par_hash(h, d->y, d->rows * (size_t)d->targets * sizeof *d->y);
    if (d->label)
        h = bp_par_hash(h, d->label, d->rows * sizeof *d->label);
    return h;
}

/* Field by field: structs may hold padding bytes of any value. */
static unsigned long long hash_optim(unsigned long long h,
                                     const bp_optim_config *o)
{
    int kind = (int)o->kind, schedule = (int)o->schedule;
    HASH_FIELD(h, kind);
    HASH_FIELD(h, o->lr);
    HASH_FIELD(h, o->momentum);
    HASH_FIELD(h, o->rho);
    HASH_FIELD(h, o->beta1);
    HASH_FIELD(h, o->beta2);
    HASH_FIELD(h, o->eps);
    HASH_FIELD(h, o->weight_decay);
    HASH_FIELD(h, o->clip_norm);
    HASH_FIELD(h, schedule);
    HASH_FIELD(h, o->step_size);
    HASH_FIELD(h, o->gamma);
    HASH_FIELD(h, o->total_steps);
    HASH_FIELD(h, o->lr_min);
    return h;
}

int bp_par_start(const bp_parallel *p, const bp_model *m, const void *theta,
                 const bp_dataset *train, const bp_dataset *test,
                 const bp_train_config *c, const bp_optimizer *opt,
                 char *err, size_t err_size)
{
    unsigned long long h = BP_HASH_START;
    HASH_FIELD(h, p->size);
    HASH_FIELD(h, m->num_params);
    HASH_FIELD(h, m->real_size);
    HASH_FIELD(h, c->epochs);
    HASH_FIELD(h, c->batch_size);
    HASH_FIELD(h, c->seed);
    HASH_FIELD(h, c->shuffle);
    HASH_FIELD(h, c->x_input);
    HASH_FIELD(h, c->y_input);
    HASH_FIELD(h, c->accuracy);
    HASH_FIELD(h, c->pred_output);
    HASH_FIELD(h, c->eval_train);
    HASH_FIELD(h, c->stop_on_nan);
    h = hash_optim(h, &opt->cfg);
    HASH_FIELD(h, opt->step);
    if (opt->state)
        h = bp_par_hash(h, opt->state,
                        bp_optim_state_size(&opt->cfg, opt->num_params,
                                            opt->real_size));
    h = hash_data(h, train);
    h = hash_data(h, test);
    int same = 0, st = bp_par_sum_agree(p, NULL, 0, h, &same);
    if (st != 0)
        return bp_error(BP_ERR_IO, err, err_size, "parallel: the all-reduce failed "
                       "(status %d) before training", st);
    if (!same)
        return bp_error(BP_ERR_MISMATCH, err, err_size,
                       "parallel: the ranks were given different data or "
                       "settings (every rank must call bp_train with the "
                       "same training and test sets, config and optimiser "
                       "state)");
    h = bp_par_hash(BP_HASH_START, theta,
                    m->num_params * (size_t)m->real_size);
    st = bp_par_sum_agree(p, NULL, 0, h, &same);
    if (st != 0)
        return bp_error(BP_ERR_IO, err, err_size, "parallel: the all-reduce failed "
                       "(status %d) before training", st);
    if (!same)
        return bp_error(BP_ERR_MISMATCH, err, err_size,
                       "parallel: the ranks start from different parameters "
                       "(initialise theta the same way on every rank: the "
                       "same seed or the same weights file)");
    return 0;
}
