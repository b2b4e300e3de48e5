/* version.c — the version of the runtime library that was linked in. */
#include "bp.h"

const char *bp_version(void)
{
    return BP_VERSION_STRING;
}
