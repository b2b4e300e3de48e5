/* gradcheck.c — checks a model's backward pass against central finite
 * differences of its forward pass: bp_gradcheck (allocates its own
 * buffers) and bp_selftest (works in a caller-owned scratch buffer, for
 * generated M_selftest functions and targets without malloc). Both run the
 * same comparison, compare() below.
 *
 * Works on float and double models alike: values are read and written
 * through the model's real_size, and all arithmetic on them is in double.
 * The caller's theta and inputs are never modified: perturbations happen
 * on private copies. */
#include "bp.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The buffers one comparison works in. theta and grad hold num_params
 * reals; in[k] is what forward reads for input k (a private copy for a wrt
 * input, the caller's data otherwise); gin[k] is a wrt input's gradient
 * buffer, NULL for the others. */
typedef struct {
    void *theta, *grad, *ws;
    const void **in;
    void **gin;
} check_buffers;

static void note(bp_selftest_report *r, double err, const char *name, size_t index,
                 double g, double fd)
{
    r->checked++;
    if (!r->name || err > r->worst) {
        r->worst = err;
        r->name = name ? name : "?";
        r->index = index;
        r->analytic = g;
        r->numeric = fd;
    }
}

/* |g - fd| / max(1, |g|, |fd|); anything non-finite is as bad as it gets. */
static double rel_error(double g, double fd)
{
    if (!isfinite(g) || !isfinite(fd))
        return HUGE_VAL;
    double scale = 1.0;
    if (fabs(g) > scale)
        scale = fabs(g);
    if (fabs(fd) > scale)
        scale = fabs(fd);
    return fabs(g - fd) / scale;
}

/* Central difference of the loss with respect to element i of `buf` (a
 * copy that forward reads). The step grows with |value| so that large
 * values are still perturbed visibly; the denominator is the difference
 * actually stored, which matters in float where v ± h rounds. */
static double central(const bp_model *m, const check_buffers *b, int n, void *buf, size_t i,
                      double step)
{
    int rs = m->real_size;
    double v = bp_real_get(buf, rs, i);
    double h = step * (fabs(v) > 1.0 ? fabs(v) : 1.0);
    bp_real_set(buf, rs, i, v + h);
    double vp = bp_real_get(buf, rs, i);
    double fp = m->forward(b->theta, b->in, n, b->ws);
    bp_real_set(buf, rs, i, v - h);
    double vm = bp_real_get(buf, rs, i);
    double fm = m->forward(b->theta, b->in, n, b->ws);
    bp_real_set(buf, rs, i, v);
    return (fp - fm) / (vp - vm);
}

/* The relative error of g against the central difference at `step`; where
 * it is above `recheck`, also at step / 4, and the smaller of the two: a
 * relu, max or pooling kink between v - step and v + step spoils one
 * difference, rarely both, while a wrong g disagrees with both. */
static double checked_error(const bp_model *m, const check_buffers *b, int n, void *buf,
                            size_t i, double step, double recheck, double g, double *fd)
{
    *fd = central(m, b, n, buf, i, step);
    double err = rel_error(g, *fd);
    if (err > recheck) {
        double fd2 = central(m, b, n, buf, i, step / 4);
        double err2 = rel_error(g, fd2);
        if (err2 < err) {
            err = err2;
            *fd = fd2;
        }
    }
    return err;
}

/* The k-th of `count` entries checked out of `size`: every entry when
 * count >= size, else count entries spread evenly, first and last
 * included. */
static size_t spread(size_t k, size_t count, size_t size)
{
    if (count >= size || count < 2)
        return count >= size ? k : 0;
    return (size_t)((double)k * (double)(size - 1) / (double)(count - 1) + 0.5);
}

/* Copies theta and the wrt inputs into b, runs forward and backward, and
 * compares every gradient entry (at most max_per_tensor per tensor, 0: no
 * limit) with a central difference. The arguments were checked. */
static void compare(const bp_model *m, const void *theta, const void *const inputs[], int n,
                    const check_buffers *b, double step, size_t max_per_tensor,
                    bp_selftest_report *r)
{
    int rs = m->real_size;
    size_t np = m->num_params;
    /* a tenth of the self-test's tolerance: errors below it stand */
    double recheck = rs == 4 ? 1e-3 : 1e-7;
    if (np)
        memcpy(b->theta, theta, np * rs);
    /* NaN shows up any entry that backward forgets to write. */
    for (int k = 0; k < m->num_inputs; k++) {
        if (!b->gin[k])
            continue;
        size_t len = (size_t)n * m->inputs[k].size;
        memcpy((void *)b->in[k], inputs[k], len * rs);
        for (size_t i = 0; i < len; i++)
            bp_real_set(b->gin[k], rs, i, NAN);
    }
    /* Same for parameters, except frozen ones start at 0: backward may
     * leave them alone, but must not put anything else there. */
    for (size_t i = 0; i < np; i++)
        bp_real_set(b->grad, rs, i, NAN);
    for (int p = 0; p < m->num_param_tensors; p++)
        if (m->params[p].frozen)
            for (size_t i = 0; i < m->params[p].size; i++)
                bp_real_set(b->grad, rs, m->params[p].offset + i, 0.0);

    m->forward(b->theta, b->in, n, b->ws);
    m->backward(b->theta, b->in, n, b->ws, b->grad, b->gin);

    for (int p = 0; p < m->num_param_tensors; p++) {
        const bp_tensor_info *t = &m->params[p];
        size_t count = max_per_tensor && max_per_tensor < t->size ? max_per_tensor : t->size;
        for (size_t k = 0; k < count; k++) {
            size_t i = spread(k, count, t->size), at = t->offset + i;
            double g = bp_real_get(b->grad, rs, at);
            if (t->frozen) {
                note(r, g == 0 ? 0.0 : 1.0, t->name, i, g, 0.0);
                continue;
            }
            double fd;
            double err = checked_error(m, b, n, b->theta, at, step, recheck, g, &fd);
            note(r, err, t->name, i, g, fd);
        }
    }
    for (int k = 0; k < m->num_inputs; k++) {
        if (!b->gin[k])
            continue;
        const bp_tensor_info *t = &m->inputs[k];
        size_t len = (size_t)n * t->size;
        size_t count = max_per_tensor && max_per_tensor < len ? max_per_tensor : len;
        for (size_t c = 0; c < count; c++) {
            size_t i = spread(c, count, len);
            double g = bp_real_get(b->gin[k], rs, i);
            double fd;
            double err = checked_error(m, b, n, (void *)b->in[k], i, step, recheck, g, &fd);
            note(r, err, t->name, i, g, fd);
        }
    }
    if (r->name)
        snprintf(r->message, sizeof r->message, "%s[%zu] analytic %.9g numeric %.9g", r->name,
                 r->index, r->analytic, r->numeric);
    else
        snprintf(r->message, sizeof r->message, "nothing to compare: model '%s' has no "
                 "gradient", m->name ? m->name : "?");
}

/* What both entry points refuse, with `who` naming the function in the
 * message. */
static int check_args(const bp_model *m, const void *theta, const void *const inputs[], int n,
                      const char *who, char *err, size_t err_size)
{
    int abi = bp_model_check_abi(m, err, err_size);
    if (abi != BP_OK)
        return abi;
    if (n < 1 || (m->real_size != 4 && m->real_size != 8)
        || !m->forward || !m->backward || !m->workspace_size)
        return bp_fail(err, err_size, "%s: model '%s' or batch size %d is unusable", who,
                       m->name ? m->name : "?", n);
    /* theta may be NULL only when there is nothing in it; inputs may be
     * NULL only when there are none, and a wrt input (which forward reads,
     * since its gradient is computed) must be given. */
    if (!theta && m->num_params > 0)
        return bp_fail(err, err_size, "%s: theta is NULL but model '%s' has parameters", who,
                       m->name ? m->name : "?");
    if (m->num_inputs < 0 || m->num_param_tensors < 0 ||
        (m->num_inputs > 0 && (!inputs || !m->inputs)) ||
        (m->num_param_tensors > 0 && !m->params))
        return bp_fail(err, err_size, "%s: inputs is NULL but model '%s' has inputs", who,
                       m->name ? m->name : "?");
    for (int k = 0; k < m->num_inputs; k++)
        if (m->inputs[k].wrt && !inputs[k])
            return bp_fail(err, err_size, "%s: input '%s' is differentiated (wrt) but NULL",
                           who, m->inputs[k].name ? m->inputs[k].name : "?");
    return BP_OK;
}

static double default_step(const bp_model *m, double step, double float_step)
{
    return step > 0 ? step : m->real_size == 4 ? float_step : 1e-6;
}

static void report_clear(bp_selftest_report *r)
{
    memset(r, 0, sizeof *r);
}

/* Owns everything it allocates; reads theta and inputs (caller-owned) only
 * to copy them. Default step: 1e-6 for double, 1e-2 for float — float's
 * 7 digits leave 1e-2 as the best trade between truncation and rounding
 * error. */
int bp_gradcheck(const bp_model *m, const void *theta,
                 const void *const inputs[], int n, double step, double *worst,
                 char *where, size_t where_size)
{
    if (where && where_size)
        where[0] = '\0';
    if (!m || !worst)
        return bp_fail(where, where_size, "bp_gradcheck: missing argument (%s is NULL)",
                       !m ? "the model" : "worst");
    int rc = check_args(m, theta, inputs, n, "bp_gradcheck", where, where_size);
    if (rc != BP_OK)
        return rc;
    int rs = m->real_size;
    int ni = m->num_inputs;
    size_t np = m->num_params;
    int result = bp_error(BP_ERR_NOMEM, where, where_size, "bp_gradcheck: out of memory");
    check_buffers b;
    b.theta = malloc(np ? np * rs : 1);
    b.grad = malloc(np ? np * rs : 1);
    size_t wsz = m->workspace_size(n);
    b.ws = malloc(wsz ? wsz : 1);
    b.in = calloc(ni > 0 ? (size_t)ni : 1, sizeof *b.in);
    b.gin = calloc(ni > 0 ? (size_t)ni : 1, sizeof *b.gin);
    bp_selftest_report report;
    bp_selftest_report *r = &report;
    if (!b.theta || !b.grad || !b.ws || !b.in || !b.gin)
        goto done;
    /* wrt inputs get private copies (to perturb) and gradient buffers;
     * the rest are passed through as given. */
    for (int k = 0; k < ni; k++) {
        const bp_tensor_info *t = &m->inputs[k];
        size_t len = (size_t)n * t->size;
        b.in[k] = inputs[k];
        if (!t->wrt)
            continue;
        b.in[k] = malloc(len ? len * rs : 1);   /* freed at done, as wrt */
        b.gin[k] = malloc(len ? len * rs : 1);
        if (!b.in[k] || !b.gin[k])
            goto done;
    }
    report_clear(r);
    compare(m, theta, inputs, n, &b, default_step(m, step, 1e-2), 0, r);
    result = BP_OK;
    *worst = r->worst;
    if (where && where_size)
        where[0] = '\0';
    if (where && where_size && r->name)
        snprintf(where, where_size, "%s", r->message);

done:
    for (int k = 0; k < ni && b.in && b.gin; k++)
        if (m->inputs[k].wrt) {
            free((void *)b.in[k]);
            free(b.gin[k]);
        }
    free(b.gin);
    free(b.in);
    free(b.ws);
    free(b.grad);
    free(b.theta);
    return result;
}

/* ------------------------------------------------------------------------ */
/* The self-test: the same comparison in the caller's scratch. Layout:
 * two arrays of num_inputs pointers (what forward reads, the wrt inputs'
 * gradients), padded to 16 bytes, then reals: the copy of theta, grad,
 * and for each wrt input in declaration order its copy and its gradient,
 * n rows each. The generated M_SELFTEST_SCRATCH_SIZE(n) is the same sum. */

static size_t pointer_bytes(const bp_model *m)
{
    size_t count = 2 * (size_t)(m->num_inputs > 0 ? m->num_inputs : 1);
    return (count * sizeof(void *) + 15) / 16 * 16;
}

static size_t wrt_reals_per_sample(const bp_model *m)
{
    size_t total = 0;
    for (int k = 0; k < m->num_inputs; k++)
        if (m->inputs[k].wrt)
            total += m->inputs[k].size;
    return total;
}

size_t bp_selftest_scratch_size(const bp_model *m, int n)
{
    if (!m || n < 1 || (m->real_size != 4 && m->real_size != 8) ||
        (m->num_inputs > 0 && !m->inputs))
        return 0;
    size_t reals = 2 * m->num_params + 2 * wrt_reals_per_sample(m) * (size_t)n;
    return pointer_bytes(m) + reals * (size_t)m->real_size;
}

int bp_selftest(const bp_model *m, const void *theta, const void *const inputs[], int n,
                void *ws, void *scratch, double step, size_t max_per_tensor,
                bp_selftest_report *report)
{
    if (!report)
        return BP_ERR_ARG;
    report_clear(report);
    report->worst = HUGE_VAL;
    report->status = BP_ERR_ARG;
    char *msg = report->message;
    size_t msg_size = sizeof report->message;
    if (!m)
        return bp_fail(msg, msg_size, "bp_selftest: missing argument (the model is NULL)");
    int rc = check_args(m, theta, inputs, n, "bp_selftest", msg, msg_size);
    if (rc != BP_OK)
        return report->status = rc;
    if (!scratch)
        return bp_fail(msg, msg_size, "bp_selftest: scratch is NULL (it needs %zu bytes for "
                       "a batch of %d)", bp_selftest_scratch_size(m, n), n);
    if (!ws && m->workspace_size(n) > 0)
        return bp_fail(msg, msg_size, "bp_selftest: ws is NULL (it needs %zu bytes for a "
                       "batch of %d)", m->workspace_size(n), n);

    int rs = m->real_size;
    char *at = scratch;
    check_buffers b;
    size_t slots = (size_t)(m->num_inputs > 0 ? m->num_inputs : 1);
    b.in = (const void **)(void *)at;
    b.gin = (void **)(void *)(at + slots * sizeof(void *));
    at += pointer_bytes(m);
    b.theta = at;
    at += m->num_params * rs;
    b.grad = at;
    at += m->num_params * rs;
    b.ws = ws;
    for (int k = 0; k < m->num_inputs; k++) {
        b.in[k] = inputs[k];
        b.gin[k] = NULL;
        if (!m->inputs[k].wrt)
            continue;
        size_t len = (size_t)n * m->inputs[k].size * rs;
        b.in[k] = at;
        b.gin[k] = at + len;
        at += 2 * len;
    }
    report->worst = 0;
    compare(m, theta, inputs, n, &b, default_step(m, step, 1e-3), max_per_tensor, report);
    report->status = BP_OK;
    return BP_OK;
}
