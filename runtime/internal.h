/* internal.h — helpers shared by the runtime's files; not installed, not
 * part of the API in bp.h. */
#ifndef BP_INTERNAL_H
#define BP_INTERNAL_H

#include <stddef.h>

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

#endif
