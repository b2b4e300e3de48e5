/* gradcheck.c — checks a model's backward pass against central finite
 * differences of its forward pass (see bp_gradcheck in bp.h).
 *
 * Works on float and double models alike: values are read and written
 * through the model's real_size, and all arithmetic on them is in double.
 * The caller's theta and inputs are never modified: perturbations happen
 * on private copies, freed before returning. */
#include "bp.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The worst entry seen so far. */
typedef struct {
    double err;
    const char *name;
    size_t index;
    double analytic, numeric;
    int found;
} worst_entry;

static void note(worst_entry *w, double err, const char *name, size_t index,
                 double g, double fd)
{
    if (!w->found || err > w->err) {
        w->found = 1;
        w->err = err;
        w->name = name;
        w->index = index;
        w->analytic = g;
        w->numeric = fd;
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
static double central(const bp_model *m, void *theta, const void **inputs,
                      int n, void *ws, void *buf, size_t i, double step)
{
    int rs = m->real_size;
    double v = bp_real_get(buf, rs, i);
    double h = step * (fabs(v) > 1.0 ? fabs(v) : 1.0);
    bp_real_set(buf, rs, i, v + h);
    double vp = bp_real_get(buf, rs, i);
    double fp = m->forward(theta, (const void *const *)inputs, n, ws);
    bp_real_set(buf, rs, i, v - h);
    double vm = bp_real_get(buf, rs, i);
    double fm = m->forward(theta, (const void *const *)inputs, n, ws);
    bp_real_set(buf, rs, i, v);
    return (fp - fm) / (vp - vm);
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
    int abi = bp_model_check_abi(m, where, where_size);
    if (abi != BP_OK)
        return abi;
    if (n < 1 || (m->real_size != 4 && m->real_size != 8)
        || !m->forward || !m->backward || !m->workspace_size)
        return bp_fail(where, where_size, "bp_gradcheck: model '%s' or batch size %d "
                       "is unusable", m->name ? m->name : "?", n);
    /* theta may be NULL only when there is nothing in it; inputs may be
     * NULL only when there are none, and a wrt input (which forward reads,
     * since its gradient is computed) must be given. */
    if (!theta && m->num_params > 0)
        return bp_fail(where, where_size, "bp_gradcheck: theta is NULL but model '%s' "
                       "has parameters", m->name ? m->name : "?");
    if (m->num_inputs < 0 || m->num_param_tensors < 0 ||
        (m->num_inputs > 0 && (!inputs || !m->inputs)) ||
        (m->num_param_tensors > 0 && !m->params))
        return bp_fail(where, where_size, "bp_gradcheck: inputs is NULL but model '%s' "
                       "has inputs", m->name ? m->name : "?");
    for (int k = 0; k < m->num_inputs; k++)
        if (m->inputs[k].wrt && !inputs[k])
            return bp_fail(where, where_size, "bp_gradcheck: input '%s' is differentiated "
                           "(wrt) but NULL", m->inputs[k].name ? m->inputs[k].name : "?");
    int rs = m->real_size;
    if (step <= 0)
        step = rs == 4 ? 1e-2 : 1e-6;

    int ni = m->num_inputs;
    size_t np = m->num_params;
    int result = bp_error(BP_ERR_NOMEM, where, where_size, "bp_gradcheck: out of memory");
    void *th = malloc(np ? np * rs : 1);
    void *grad = malloc(np ? np * rs : 1);
    size_t wsz = m->workspace_size(n);
    void *ws = malloc(wsz ? wsz : 1);
    const void **in = calloc(ni > 0 ? (size_t)ni : 1, sizeof *in);
    void **gin = calloc(ni > 0 ? (size_t)ni : 1, sizeof *gin);
    void **copies = calloc(ni > 0 ? (size_t)ni : 1, sizeof *copies);
    if (!th || !grad || !ws || !in || !gin || !copies)
        goto done;
    if (np)
        memcpy(th, theta, np * rs);

    /* wrt inputs get private copies (to perturb) and gradient buffers;
     * the rest are passed through as given. */
    for (int k = 0; k < ni; k++) {
        const bp_tensor_info *t = &m->inputs[k];
        size_t len = (size_t)n * t->size;
        in[k] = inputs[k];
        if (!t->wrt || !inputs[k])
            continue;
        copies[k] = malloc(len ? len * rs : 1);
        gin[k] = malloc(len ? len * rs : 1);
        if (!copies[k] || !gin[k])
            goto done;
        memcpy(copies[k], inputs[k], len * rs);
        in[k] = copies[k];
        /* NaN shows up any entry that backward forgets to write. */
        for (size_t i = 0; i < len; i++)
            bp_real_set(gin[k], rs, i, NAN);
    }
    /* Same for parameters, except frozen ones start at 0: backward may
     * leave them alone, but must not put anything else there. */
    for (size_t i = 0; i < np; i++)
        bp_real_set(grad, rs, i, NAN);
    for (int p = 0; p < m->num_param_tensors; p++)
        if (m->params[p].frozen)
            for (size_t i = 0; i < m->params[p].size; i++)
                bp_real_set(grad, rs, m->params[p].offset + i, 0.0);

    m->forward(th, (const void *const *)in, n, ws);
    m->backward(th, (const void *const *)in, n, ws, grad, gin);

    worst_entry w = {0, NULL, 0, 0, 0, 0};
    for (int p = 0; p < m->num_param_tensors; p++) {
        const bp_tensor_info *t = &m->params[p];
        for (size_t i = 0; i < t->size; i++) {
            size_t at = t->offset + i;
            double g = bp_real_get(grad, rs, at);
            if (t->frozen) {
                note(&w, g == 0 ? 0.0 : 1.0, t->name, i, g, 0.0);
                continue;
            }
            double fd = central(m, th, in, n, ws, th, at, step);
            note(&w, rel_error(g, fd), t->name, i, g, fd);
        }
    }
    for (int k = 0; k < ni; k++) {
        if (!copies[k])
            continue;
        const bp_tensor_info *t = &m->inputs[k];
        size_t len = (size_t)n * t->size;
        for (size_t i = 0; i < len; i++) {
            double g = bp_real_get(gin[k], rs, i);
            double fd = central(m, th, in, n, ws, copies[k], i, step);
            note(&w, rel_error(g, fd), t->name, i, g, fd);
        }
    }
    result = BP_OK;
    *worst = w.err;
    if (where && where_size)
        where[0] = '\0';
    if (where && where_size && w.found)
        snprintf(where, where_size, "%s[%zu] analytic %.9g numeric %.9g",
                 w.name ? w.name : "?", w.index, w.analytic, w.numeric);

done:
    if (copies)
        for (int k = 0; k < ni; k++)
            free(copies[k]);
    if (gin)
        for (int k = 0; k < ni; k++)
            free(gin[k]);
    free(copies);
    free(gin);
    free(in);
    free(ws);
    free(grad);
    free(th);
    return result;
}
