/* train.c — a training loop, evaluation and prediction for any bp_model
 * (see bp.h). The model is reached only through its descriptor, so one
 * loop serves float and double models of any shape.
 *
 * Determinism: the only randomness is the shuffle, drawn from a bp_rng
 * seeded with cfg->seed, and every sum runs in a fixed order in double, so
 * the same seed, data and model give bit-identical losses and parameters.
 *
 * Memory: all scratch (model workspace, batch arrays, gradient, outputs,
 * index order, optimiser state) is carved out of one block, the caller's
 * or one malloc'd here and freed before returning. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L     /* isatty, fileno, clock_gettime */
#endif
#include "bp.h"
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define ALIGN 64
#define BAR_WIDTH 30

bp_train_config bp_train_defaults(void)
{
    bp_train_config c;
    memset(&c, 0, sizeof c);
    c.epochs = 10;
    c.batch_size = 32;
    c.seed = 1;
    c.shuffle = 1;
    c.optim = bp_optim_defaults(BP_ADAM);
    c.optimizer = NULL;
    c.x_input = 0;
    c.y_input = 1;
    c.accuracy = 1;
    c.pred_output = 0;
    c.eval_train = 0;
    c.stop_on_nan = 1;
    c.verbose = 1;
    c.on_epoch = NULL;
    c.user = NULL;
    c.scratch = NULL;
    c.scratch_size = 0;
    c.forward_outputs = NULL;
    c.forward_backward = NULL;
    return c;
}

static double now(void)
{
    struct timespec t;
    if (clock_gettime(CLOCK_MONOTONIC, &t) != 0)
        return 0;
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* The scratch block */

enum { NEED_TRAIN = 1, NEED_Y = 2, NEED_OUT = 4 };

typedef struct {
    size_t ws, x, y, grad, out, idx, state, inputs, outputs, total;
    size_t ws_bytes;
} layout;

/* Adds `bytes` at the next aligned offset; *over is set on overflow. */
static size_t take(size_t *at, size_t bytes, int *over)
{
    size_t start = (*at + ALIGN - 1) / ALIGN * ALIGN;
    if (start < *at || bytes > (size_t)-1 - start) {
        *over = 1;
        return 0;
    }
    *at = start + bytes;
    return start;
}

static size_t mul(size_t a, size_t b, int *over)
{
    if (a && b > (size_t)-1 / a) {
        *over = 1;
        return 0;
    }
    return a * b;
}

/* Plans the block for batches of up to B samples. Returns 0, or -1 on
 * overflow. The model and indices are assumed checked. */
static int plan(const bp_model *m, const bp_train_config *c, size_t rows,
                int need, layout *l)
{
    size_t rs = (size_t)m->real_size, B = (size_t)c->batch_size, at = 0;
    int over = 0;
    memset(l, 0, sizeof *l);
    l->ws_bytes = m->workspace_size ? m->workspace_size(c->batch_size) : 0;
    l->ws = take(&at, l->ws_bytes, &over);
    l->x = take(&at, mul(mul(B, m->inputs[c->x_input].size, &over), rs,
                         &over), &over);
    if ((need & NEED_Y) && c->y_input >= 0)
        l->y = take(&at, mul(mul(B, m->inputs[c->y_input].size, &over), rs,
                             &over), &over);
    l->inputs = take(&at, mul((size_t)m->num_inputs, sizeof(void *), &over),
                     &over);
    if (need & NEED_OUT) {
        size_t per = 0;
        for (int j = 0; j < m->num_outputs; j++) {
            per += m->outputs[j].size;
            if (per < m->outputs[j].size)
                over = 1;
        }
        l->out = take(&at, mul(mul(B, per, &over), rs, &over), &over);
        l->outputs = take(&at, mul((size_t)m->num_outputs, sizeof(void *),
                                   &over), &over);
    }
    if (need & NEED_TRAIN) {
        /* In parallel, one more slot carries the loss (parallel.c). */
        size_t slots = m->num_params +
                       (c->parallel && c->parallel->size > 1 ? 1 : 0);
        l->grad = take(&at, mul(slots, rs, &over), &over);
        l->idx = take(&at, mul(rows, sizeof(size_t), &over), &over);
        if (!c->optimizer)
            l->state = take(&at, bp_optim_state_size(&c->optim,
                                                     m->num_params,
                                                     m->real_size), &over);
    }
    l->total = take(&at, 0, &over) + ALIGN;   /* slack to align the base */
    return over ? -1 : 0;
}

/* Does accuracy apply to d? -1: no; 0: yes; error written when the
 * chosen output cannot be compared with d's classes. */
static int accuracy_applies(const bp_model *m, const bp_train_config *c,
                            const bp_dataset *d, int *applies, char *err,
                            size_t err_size)
{
    *applies = 0;
    if (!c->accuracy || !d || d->classes <= 0 || !m->predict ||
        m->num_outputs <= 0)
        return 0;
    if (c->pred_output < 0 || c->pred_output >= m->num_outputs)
        return bp_fail(err, err_size,
                    "pred_output %d is not an output of model '%s' (it has "
                    "%d)", c->pred_output, m->name ? m->name : "?",
                    m->num_outputs);
    const bp_tensor_info *o = &m->outputs[c->pred_output];
    if (o->size != (size_t)d->classes && !(o->size == 1 && d->classes <= 2))
        return bp_error(BP_ERR_MISMATCH, err, err_size,
                    "output '%s' has %zu values per sample but the data set "
                    "has %d classes: accuracy cannot compare them (set "
                    "accuracy = 0 or pred_output)", o->name ? o->name : "?",
                    o->size, d->classes);
    *applies = 1;
    return 0;
}

/* Common checks on the model and config. */
static int check_model(const bp_model *m, const bp_train_config *c,
                       char *err, size_t err_size)
{
    int abi = bp_model_check_abi(m, err, err_size);
    if (abi != BP_OK)
        return abi;
    const char *mn = m->name ? m->name : "?";
    if (m->real_size != 4 && m->real_size != 8)
        return bp_fail(err, err_size, "model '%s': real_size %d is not 4 or 8",
                    mn, m->real_size);
    if (!m->forward || !m->inputs || m->num_inputs < 1)
        return bp_fail(err, err_size, "model '%s' has no forward pass or inputs",
                    mn);
    if (m->num_outputs > 0 && !m->outputs)
        return bp_fail(err, err_size, "model '%s' lists no outputs", mn);
    if (c->batch_size < 1)
        return bp_fail(err, err_size, "batch size %d is below 1",
                    c->batch_size);
    return 0;
}

typedef struct {
    const bp_model *m;
    const bp_train_config *c;
    layout l;
    unsigned char *base;
    void *ws, *x, *y, *grad, *out;
    size_t *idx;
    const void **inputs;
    void **outputs;
    int pred_size;
} run;

static void bind(run *r, void *block)
{
    unsigned char *b = block;
    size_t mis = (size_t)((uintptr_t)b % ALIGN);
    if (mis)
        b += ALIGN - mis;
    r->base = b;
    r->ws = b + r->l.ws;
    r->x = b + r->l.x;
    r->y = r->l.y ? b + r->l.y : NULL;
    r->grad = r->l.grad ? b + r->l.grad : NULL;
    r->out = r->l.out ? b + r->l.out : NULL;
    r->idx = r->l.idx ? (size_t *)(void *)(b + r->l.idx) : NULL;
    r->inputs = (const void **)(void *)(b + r->l.inputs);
    r->outputs = r->l.outputs ? (void **)(void *)(b + r->l.outputs) : NULL;
    for (int k = 0; k < r->m->num_inputs; k++)
        r->inputs[k] = NULL;
    r->inputs[r->c->x_input] = r->x;
    if (r->y)
        r->inputs[r->c->y_input] = r->y;
    if (r->outputs) {
        size_t at = 0, rs = (size_t)r->m->real_size;
        for (int j = 0; j < r->m->num_outputs; j++) {
            r->outputs[j] = (unsigned char *)r->out + at;
            at += (size_t)r->c->batch_size * r->m->outputs[j].size * rs;
        }
    }
}

static double get(const void *p, int rs, size_t i)
{
    return rs == 4 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

/* The class a row of `size` values predicts: argmax (first of equal
 * maxima; NaN never wins), or value > 0.5 for a single value. */
static int argmax(const void *p, int rs, size_t row, size_t size)
{
    if (size == 1)
        return get(p, rs, row) > 0.5;
    size_t best = 0;
    double bv = get(p, rs, row * size);
    for (size_t j = 1; j < size; j++) {
        double v = get(p, rs, row * size + j);
        if (v > bv || (bv != bv && v == v)) {
            bv = v;
            best = j;
        }
    }
    return (int)best;
}

/* The summed per-sample loss and the number of correct predictions (when
 * acc_on) over rows [from, to) of d, in order, batched. */
static void eval_sums(run *r, const void *theta, const bp_dataset *d,
                      size_t from, size_t to, int acc_on, double *loss_sum,
                      size_t *correct_count)
{
    const bp_model *m = r->m;
    int B = r->c->batch_size, rs = m->real_size;
    double sum = 0;
    size_t correct = 0;
    size_t osize = acc_on ? m->outputs[r->c->pred_output].size : 0;
    for (size_t at = from; at < to; at += (size_t)B) {
        size_t left = to - at;
        int n = left < (size_t)B ? (int)left : B;
        bp_batch_fill_from(d, at, NULL, n, rs, r->x, r->y);
        if (acc_on && r->c->forward_outputs)   /* one pass for both */
            sum += r->c->forward_outputs(theta, r->inputs, n, r->ws,
                                      r->outputs) * (double)n;
        else
            sum += m->forward(theta, r->inputs, n, r->ws) * (double)n;
        if (acc_on) {
            if (!r->c->forward_outputs)
                m->predict(theta, r->inputs, n, r->ws, r->outputs);
            const void *o = r->outputs[r->c->pred_output];
            for (int i = 0; i < n; i++)
                correct += argmax(o, rs, (size_t)i, osize) ==
                           d->label[at + (size_t)i];
        }
    }
    *loss_sum = sum;
    *correct_count = correct;
}

/* Loss (mean per sample) and accuracy (NaN unless acc_on) over d; NaN for
 * both when d has no rows. */
static void eval_split(run *r, const void *theta, const bp_dataset *d,
                       int acc_on, double *loss, double *acc)
{
    double sum;
    size_t correct;
    eval_sums(r, theta, d, 0, d->rows, acc_on, &sum, &correct);
    *loss = d->rows ? sum / (double)d->rows : NAN;
    *acc = (acc_on && d->rows) ? (double)correct / (double)d->rows : NAN;
}

/* What bp_train's scratch holds: output buffers whenever accuracy might
 * apply, so that the size does not depend on the data. */
static int train_needs(const bp_model *m, const bp_train_config *c)
{
    int out = c->accuracy && m->predict && m->num_outputs > 0;
    return NEED_TRAIN | NEED_Y | (out ? NEED_OUT : 0);
}

int bp_train_scratch_size(const bp_model *m, const bp_train_config *cfg,
                          size_t train_rows, size_t *size, char *err,
                          size_t err_size)
{
    bp_train_config c = cfg ? *cfg : bp_train_defaults();
    layout l;
    if (!size)
        return bp_fail(err, err_size, "bp_train_scratch_size: missing argument (size)");
    int status = check_model(m, &c, err, err_size);
    if (status != 0)
        return status;
    if (c.x_input < 0 || c.x_input >= m->num_inputs || c.y_input >= m->num_inputs)
        return bp_fail(err, err_size, "x_input %d or y_input %d is not an input of "
                       "model '%s' (it has %d)", c.x_input, c.y_input,
                       m->name ? m->name : "?", m->num_inputs);
    if (plan(m, &c, train_rows, train_needs(m, &c), &l) != 0)
        return bp_error(BP_ERR_NOMEM, err, err_size,
                        "bp_train_scratch_size: scratch size overflows");
    *size = l.total;
    return BP_OK;
}

/* ------------------------------------------------------------------------ */
/* Reporting */

int bp_epoch_print(const bp_epoch_report *r, void *user)
{
    FILE *f = user ? (FILE *)user : stdout;
    fprintf(f, "epoch %d/%d  train loss %.4f", r->epoch, r->epochs,
            r->train_loss);
    if (!isnan(r->train_acc))
        fprintf(f, "  train acc %.3f", r->train_acc);
    if (!isnan(r->test_loss))
        fprintf(f, "  test loss %.4f", r->test_loss);
    if (!isnan(r->test_acc))
        fprintf(f, "  test acc %.3f", r->test_acc);
    fprintf(f, "  (train %.2f s, eval %.2f s)\n", r->train_seconds,
            r->eval_seconds);
    fflush(f);
    return 0;
}

static void progress(int epoch, int epochs, size_t done, size_t total,
                     double loss)
{
    int fill = total ? (int)(done * BAR_WIDTH / total) : BAR_WIDTH;
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\repoch %d/%d [%s] %3d%%  loss %.4f", epoch, epochs,
            bar, total ? (int)(done * 100 / total) : 100, loss);
    fflush(stderr);
}

static void progress_clear(void)
{
    fprintf(stderr, "\r%*s\r", BAR_WIDTH + 40, "");
    fflush(stderr);
}

/* ------------------------------------------------------------------------ */
/* Training */

/* A caller-supplied optimiser must belong to m: its model gives the frozen
 * ranges (a NULL model would let weight decay move frozen parameters), and
 * a kind that keeps state needs its state buffer. */
static int check_optimizer(const bp_model *m, const bp_optimizer *o,
                           char *err, size_t err_size)
{
    const char *mn = m->name ? m->name : "?";
    if (o->model && o->model != m)
        return bp_fail(err, err_size,
                    "the optimiser was set up for model '%s', not for model "
                    "'%s' (bp_optim_init with the model being trained)",
                    o->model->name ? o->model->name : "?", mn);
    if (!o->model)
        for (int p = 0; p < m->num_param_tensors; p++)
            if (m->params && m->params[p].frozen)
                return bp_fail(err, err_size,
                            "the optimiser was set up without a model, but "
                            "model '%s' has frozen parameters ('%s'), which "
                            "it would change (bp_optim_init with the model)",
                            mn, m->params[p].name ? m->params[p].name : "?");
    if (!o->state && bp_optim_state_size(&o->cfg, o->num_params,
                                         o->real_size) > 0)
        return bp_fail(err, err_size,
                    "the optimiser has no state buffer, but its kind needs "
                    "%zu bytes (bp_optim_state_size)",
                    bp_optim_state_size(&o->cfg, o->num_params,
                                        o->real_size));
    return 0;
}

/* Data-parallel evaluation after an epoch: each rank evaluates its share
 * of the rows, the sums are added over the ranks, and the same all-reduce
 * checks that every rank holds the same theta. */
static int par_epoch(run *r, const bp_parallel *p, const void *theta,
                     const bp_dataset *train, const bp_dataset *test,
                     int acc_train, int acc_test, bp_epoch_report *rep,
                     char *err, size_t err_size)
{
    const bp_model *m = r->m;
    double sums[4] = {0, 0, 0, 0};
    size_t lo, count, correct;
    if (r->c->eval_train) {
        bp_par_share(p, train->rows, &lo, &count);
        eval_sums(r, theta, train, lo, lo + count, acc_train, &sums[0],
                  &correct);
        sums[1] = (double)correct;
    }
    if (test) {
        bp_par_share(p, test->rows, &lo, &count);
        eval_sums(r, theta, test, lo, lo + count, acc_test, &sums[2],
                  &correct);
        sums[3] = (double)correct;
    }
    unsigned long long h = bp_par_hash(BP_HASH_START, theta,
                                       m->num_params *
                                           (size_t)m->real_size);
    int same = 0, st = bp_par_sum_agree(p, sums, 4, h, &same);
    if (st != 0)
        return bp_error(BP_ERR_IO, err, err_size, "parallel: the all-reduce failed "
                       "(status %d) after epoch %d", st, rep->epoch);
    if (!same)
        return bp_error(BP_ERR_MISMATCH, err, err_size,
                       "parallel: the ranks' parameters differ after epoch "
                       "%d (the all-reduce must give every rank the same "
                       "sum, bit for bit)", rep->epoch);
    if (r->c->eval_train) {
        rep->train_loss = sums[0] / (double)train->rows;
        rep->train_acc = acc_train ? sums[1] / (double)train->rows : NAN;
    }
    if (test) {
        rep->test_loss = sums[2] / (double)test->rows;
        rep->test_acc = acc_test ? sums[3] / (double)test->rows : NAN;
    }
    return 0;
}

int bp_train(const bp_model *m, void *theta, const bp_dataset *train,
             const bp_dataset *test, const bp_train_config *cfg,
             bp_epoch_report *last, char *err, size_t err_size)
{
    bp_train_config c = cfg ? *cfg : bp_train_defaults();
    int status = check_model(m, &c, err, err_size);
    if (status != 0)
        return status;
    const char *mn = m->name ? m->name : "?";
    if (!theta || !train)
        return bp_fail(err, err_size, "bp_train: no parameters or training set");
    if (!m->backward)
        return bp_fail(err, err_size, "model '%s' has no backward pass", mn);
    if (c.epochs < 0)
        return bp_fail(err, err_size, "epochs %d is below 0", c.epochs);
    if (train->rows == 0)
        return bp_fail(err, err_size, "the training set has no rows");
    if ((status = bp_batch_check(m, train, c.x_input, c.y_input, err, err_size)) != 0)
        return status;
    if (test && test->rows == 0)
        test = NULL;
    if (test && (test->features != train->features ||
                 test->targets != train->targets ||
                 test->classes != train->classes))
        return bp_fail(err, err_size,
                    "the test set (%d features, %d targets) does not match "
                    "the training set (%d features, %d targets)",
                    test->features, test->targets, train->features,
                    train->targets);
    int acc_train, acc_test;
    if ((status = accuracy_applies(m, &c, train, &acc_train, err, err_size)) != 0 ||
        (status = accuracy_applies(m, &c, test, &acc_test, err, err_size)) != 0)
        return status;
    if (c.optimizer && (c.optimizer->num_params != m->num_params ||
                        c.optimizer->real_size != m->real_size))
        return bp_fail(err, err_size,
                    "the optimiser was set up for %zu parameters of %d "
                    "bytes, but model '%s' has %zu of %d", c.optimizer->
                    num_params, c.optimizer->real_size, mn, m->num_params,
                    m->real_size);
    if (c.optimizer && (status = check_optimizer(m, c.optimizer, err, err_size)) != 0)
        return status;
    if ((status = bp_par_check(c.parallel, err, err_size)) != 0)
        return status;
    /* One rank alone trains exactly as without the hook. */
    const bp_parallel *par =
        c.parallel && c.parallel->size > 1 ? c.parallel : NULL;
    int rank0 = !c.parallel || c.parallel->rank == 0;

    /* Internal scratch need not hold batches larger than the data. */
    if (!c.scratch) {
        size_t most = test && test->rows > train->rows ? test->rows
                                                       : train->rows;
        if ((size_t)c.batch_size > most)
            c.batch_size = (int)most;
    }
    run r;
    memset(&r, 0, sizeof r);
    r.m = m;
    r.c = &c;
    if (plan(m, &c, train->rows, train_needs(m, &c), &r.l) != 0)
        return bp_error(BP_ERR_NOMEM, err, err_size, "bp_train: scratch size overflows");
    void *block = c.scratch;
    if (block) {
        if (c.scratch_size < r.l.total)
            return bp_fail(err, err_size,
                        "bp_train: scratch holds %zu bytes but %zu are "
                        "needed (bp_train_scratch_size)", c.scratch_size,
                        r.l.total);
    } else {
        block = malloc(r.l.total);
        if (!block)
            return bp_error(BP_ERR_NOMEM, err, err_size,
                        "bp_train: out of memory (%zu bytes of scratch)",
                        r.l.total);
    }
    bind(&r, block);

    bp_optimizer own, *opt = c.optimizer;
    if (!opt) {
        bp_optim_init(&own, &c.optim, m, m->num_params, m->real_size,
                      r.base + r.l.state);
        opt = &own;
    }
    bp_rng rng;
    bp_rng_seed(&rng, c.seed);
    for (size_t i = 0; i < train->rows; i++)
        r.idx[i] = i;

    /* The bar is gone before on_epoch runs, so a callback that prints
     * its own line (or reshapes the data, as examples/fashion_cnn does)
     * keeps it. */
    int bar = c.verbose && rank0 && isatty(fileno(stderr));
    int B = c.batch_size, rc = 0;
    size_t batches = (train->rows + (size_t)B - 1) / (size_t)B;
    bp_epoch_report rep;
    memset(&rep, 0, sizeof rep);
    rep.train_loss = rep.train_acc = rep.test_loss = rep.test_acc = NAN;
    rep.grad_norm = rep.lr = NAN;
    rep.epochs = c.epochs;
    if (par && (rc = bp_par_start(par, m, theta, train, test, &c, opt, err,
                                  err_size)) != 0)
        goto out;
    for (int e = 1; e <= c.epochs; e++) {
        double t0 = now(), drawn = t0;
        if (c.shuffle)
            bp_shuffle_indices(r.idx, train->rows, &rng);
        double sum = 0, gn = NAN, lr = NAN;
        size_t b = 0;
        for (size_t at = 0; at < train->rows; at += (size_t)B, b++) {
            size_t left = train->rows - at;
            int n = left < (size_t)B ? (int)left : B;
            /* In parallel this rank takes its share of the batch, and the
             * loss checked below is the whole batch's, the same on every
             * rank, so that all ranks stop together. */
            size_t lo = 0, share = (size_t)n;
            if (par)
                bp_par_share(par, (size_t)n, &lo, &share);
            double loss = 0;
            /* with forward_backward, the gradient comes with the loss; a
             * diverged loss then stops training all the same, before
             * the update */
            const int one_call = c.forward_backward != NULL;
            if (share > 0) {
                bp_batch_fill(train, r.idx + at + lo, (int)share,
                              m->real_size, r.x, r.y);
                loss = one_call
                       ? c.forward_backward(theta, r.inputs, (int)share,
                                            r.ws, r.grad, NULL)
                       : m->forward(theta, r.inputs, (int)share, r.ws);
            }
            if (par) {
                if (share > 0 && !one_call)
                    m->backward(theta, r.inputs, (int)share, r.ws, r.grad,
                                NULL);
                int st = bp_par_step(par, r.grad, m->num_params,
                                     m->real_size, share, (size_t)n, &loss);
                if (st != 0) {
                    rc = bp_error(BP_ERR_IO, err, err_size, "parallel: the all-reduce "
                                 "failed (status %d) at epoch %d, step %ld",
                                 st, e, opt->step + 1);
                    goto out;
                }
            }
            if (!isfinite(loss) && c.stop_on_nan) {
                if (bar)
                    progress_clear();
                rc = bp_error(BP_ERR_DIVERGED, err, err_size,
                          "training diverged: loss is %s at epoch %d, step "
                          "%ld (try a lower learning rate)",
                          isnan(loss) ? "nan" : "infinite", e,
                          opt->step + 1);
                goto out;
            }
            if (!par && !one_call)
                m->backward(theta, r.inputs, n, r.ws, r.grad, NULL);
            lr = bp_optim_lr(opt);
            if ((rc = bp_optim_step(opt, theta, r.grad, err, err_size)) != 0)
                goto out;   /* not reached: check_optimizer ruled it out */
            gn = opt->grad_norm;
            sum += loss * (double)n;
            /* Redrawn at most 10 times a second: a fast epoch draws no
             * bar at all. */
            if (bar && b + 1 < batches && now() - drawn >= 0.1) {
                progress(e, c.epochs, b + 1, batches,
                         sum / (double)(at + (size_t)n));
                drawn = now();
            }
        }
        if (bar && drawn != t0)
            progress_clear();
        double t1 = now();
        rep.epoch = e;
        rep.step = opt->step;
        rep.lr = lr;
        rep.grad_norm = gn;
        rep.train_loss = sum / (double)train->rows;
        rep.train_acc = NAN;
        rep.test_loss = rep.test_acc = NAN;
        if (par) {
            if ((rc = par_epoch(&r, par, theta, train, test, acc_train, acc_test,
                                &rep, err, err_size)) != 0)
                goto out;
        } else {
            if (c.eval_train)
                eval_split(&r, theta, train, acc_train, &rep.train_loss,
                           &rep.train_acc);
            if (test)
                eval_split(&r, theta, test, acc_test, &rep.test_loss,
                           &rep.test_acc);
        }
        double t2 = now();
        rep.train_seconds = t1 - t0;
        rep.eval_seconds = t2 - t1;
        rep.seconds = t2 - t0;
        int stop = c.on_epoch ? c.on_epoch(&rep, c.user)
                   : (c.verbose && rank0 ? bp_epoch_print(&rep, NULL) : 0);
        if (par) {
            /* Stop everywhere when any rank's callback asks. */
            double asked = stop != 0;
            int st = par->allreduce(&asked, 1, 8, par->user);
            if (st != 0) {
                rc = bp_error(BP_ERR_IO, err, err_size, "parallel: the all-reduce "
                             "failed (status %d) after epoch %d", st, e);
                goto out;
            }
            stop = asked > 0;
        }
        if (stop) {
            rep.stopped = 1;
            break;
        }
    }
out:
    if (last)
        *last = rep;
    if (block != c.scratch)
        free(block);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Evaluation and prediction */

int bp_evaluate(const bp_model *m, const void *theta, const bp_dataset *d,
                const bp_train_config *cfg, double *loss, double *acc,
                char *err, size_t err_size)
{
    bp_train_config c = cfg ? *cfg : bp_train_defaults();
    int status = check_model(m, &c, err, err_size);
    if (status != 0)
        return status;
    if (!theta || !d || !loss)
        return bp_fail(err, err_size, "bp_evaluate: missing argument");
    if ((status = bp_batch_check(m, d, c.x_input, c.y_input, err, err_size)) != 0)
        return status;
    int acc_on;
    if ((status = accuracy_applies(m, &c, d, &acc_on, err, err_size)) != 0)
        return status;
    if ((size_t)c.batch_size > d->rows)
        c.batch_size = d->rows ? (int)d->rows : 1;
    run r;
    memset(&r, 0, sizeof r);
    r.m = m;
    r.c = &c;
    if (plan(m, &c, 0, NEED_Y | (acc_on ? NEED_OUT : 0), &r.l) != 0)
        return bp_error(BP_ERR_NOMEM, err, err_size, "bp_evaluate: scratch size overflows");
    void *block = malloc(r.l.total);
    if (!block)
        return bp_error(BP_ERR_NOMEM, err, err_size, "bp_evaluate: out of memory");
    bind(&r, block);
    double a;
    eval_split(&r, theta, d, acc_on, loss, &a);
    if (acc)
        *acc = a;
    free(block);
    return 0;
}

int bp_predict_argmax(const bp_model *m, const void *theta,
                      const bp_dataset *d, const bp_train_config *cfg,
                      int *pred, char *err, size_t err_size)
{
    bp_train_config c = cfg ? *cfg : bp_train_defaults();
    int status = check_model(m, &c, err, err_size);
    if (status != 0)
        return status;
    if (!theta || !d || (d->rows && !pred))
        return bp_fail(err, err_size, "bp_predict_argmax: missing argument");
    const char *mn = m->name ? m->name : "?";
    if (!m->predict || m->num_outputs <= 0)
        return bp_fail(err, err_size, "model '%s' has no outputs to predict",
                    mn);
    if (c.pred_output < 0 || c.pred_output >= m->num_outputs)
        return bp_fail(err, err_size,
                    "pred_output %d is not an output of model '%s' (it has "
                    "%d)", c.pred_output, mn, m->num_outputs);
    /* Only the features are fed: inputs no output depends on may be NULL,
     * so the targets' input is left out of the check. */
    c.y_input = -1;
    if ((size_t)c.batch_size > d->rows)
        c.batch_size = d->rows ? (int)d->rows : 1;
    if (c.x_input < 0 || c.x_input >= m->num_inputs)
        return bp_fail(err, err_size,
                    "x_input %d is not an input of model '%s' (it has %d)",
                    c.x_input, mn, m->num_inputs);
    const bp_tensor_info *xi = &m->inputs[c.x_input];
    if (xi->size != (size_t)d->features)
        return bp_error(BP_ERR_MISMATCH, err, err_size,
                    "model input '%s' holds %zu values per sample but the "
                    "data set has %d features", xi->name ? xi->name : "?",
                    xi->size, d->features);
    run r;
    memset(&r, 0, sizeof r);
    r.m = m;
    r.c = &c;
    if (plan(m, &c, 0, NEED_OUT, &r.l) != 0)
        return bp_error(BP_ERR_NOMEM, err, err_size, "bp_predict_argmax: scratch overflows");
    void *block = malloc(r.l.total);
    if (!block)
        return bp_error(BP_ERR_NOMEM, err, err_size, "bp_predict_argmax: out of memory");
    bind(&r, block);
    int B = c.batch_size, rs = m->real_size;
    size_t osize = m->outputs[c.pred_output].size;
    for (size_t at = 0; at < d->rows; at += (size_t)B) {
        size_t left = d->rows - at;
        int n = left < (size_t)B ? (int)left : B;
        bp_batch_fill_from(d, at, NULL, n, rs, r.x, NULL);
        m->predict(theta, r.inputs, n, r.ws, r.outputs);
        for (int i = 0; i < n; i++)
            pred[at + (size_t)i] =
                argmax(r.outputs[c.pred_output], rs, (size_t)i, osize);
    }
    free(block);
    return 0;
}
