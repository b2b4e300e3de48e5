/* fail.c — the runtime's one way of reporting an error (see "Errors" in
 * bp.h and internal.h). */
#include <stdarg.h>
#include <stdio.h>

#include "bp.h"
#include "internal.h"

static int report(int status, char *err, size_t err_size, const char *fmt, va_list ap)
{
    if (err && err_size)
        vsnprintf(err, err_size, fmt, ap);
    return status;
}

int bp_error(int status, char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(status, err, err_size, fmt, ap);
    va_end(ap);
    return status;
}

int bp_fail(char *err, size_t err_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(BP_ERR_ARG, err, err_size, fmt, ap);
    va_end(ap);
    return BP_ERR_ARG;
}

const char *bp_strerror(int status)
{
    switch (status) {
    case BP_OK: return "success";
    case BP_ERR_ARG: return "invalid argument";
    case BP_ERR_IO: return "I/O error";
    case BP_ERR_FORMAT: return "malformed file or data";
    case BP_ERR_MISMATCH: return "file or data does not fit the model";
    case BP_ERR_NOMEM: return "out of memory";
    case BP_ERR_DIVERGED: return "training diverged";
    default: return "unknown error";
    }
}
