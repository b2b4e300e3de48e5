/* finite.c — the record of the first value that is not finite, for code
 * generated with bpgen --check-finite (see bp_nonfinite in bp.h). */
#include "bp.h"
#include "internal.h"

#include <math.h>
#include <stdio.h>

void bp_nonfinite_clear(bp_nonfinite *found)
{
    found->function = NULL;
    found->name = NULL;
    found->equation = NULL;
    found->sample = -1;
    found->index = 0;
    found->value = 0;
}

void bp_nonfinite_note(bp_nonfinite *found, const char *function, const char *name,
                       const char *equation, double value, long sample, long index)
{
    if (found->function)
        return;
    found->function = function ? function : "?";
    found->name = name ? name : "?";
    found->equation = equation;
    found->sample = sample;
    found->index = index;
    found->value = value;
}

void bp_nonfinite_scan(bp_nonfinite *found, const char *function, const char *name,
                       const char *equation, const void *values, int real_size, long rows,
                       long size)
{
    if (found->function || size <= 0)
        return;
    size_t count = (size_t)size * (size_t)(rows > 0 ? rows : 1);
    /* the scan runs after every step: one loop per type, so the common
     * case (all finite) is a tight loop the compiler can vectorize */
    size_t i = count;
    if (real_size == 4) {
        const float *f = values;
        for (i = 0; i < count && isfinite(f[i]); i++)
            ;
    } else {
        const double *d = values;
        for (i = 0; i < count && isfinite(d[i]); i++)
            ;
    }
    if (i < count)
        bp_nonfinite_note(found, function, name, equation, bp_real_get(values, real_size, i),
                          rows > 0 ? (long)(i / (size_t)size) : -1, (long)(i % (size_t)size));
}

void bp_nonfinite_message(const bp_nonfinite *found, char *out, size_t out_size)
{
    if (!out || !out_size)
        return;
    if (!found || !found->function) {
        snprintf(out, out_size, "every value was finite");
        return;
    }
    const char *what = isnan(found->value) ? "nan" : found->value > 0 ? "inf" : "-inf";
    char sample[48] = "";
    if (found->sample >= 0)
        snprintf(sample, sizeof sample, " of sample %ld", found->sample);
    if (found->equation && found->equation[0])
        snprintf(out, out_size, "%s: %s[%ld]%s is %s (%s)", found->function, found->name,
                 found->index, sample, what, found->equation);
    else
        snprintf(out, out_size, "%s: %s[%ld]%s is %s", found->function, found->name,
                 found->index, sample, what);
}
