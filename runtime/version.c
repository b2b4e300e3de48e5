/* version.c — the version of the runtime library that was linked in, and
 * the check that a model descriptor was generated for this runtime's ABI. */
#include "bp.h"
#include "internal.h"

#include <stdint.h>
#include <string.h>

const char *bp_version(void)
{
    return BP_VERSION_STRING;
}

/* Versions above this are taken for what they say; any other value in the
 * first int is not a version at all (see below). */
#define MAX_PLAUSIBLE_ABI 1000

/* A name pointer is trusted only when it is not a small integer: an ABI 1
 * descriptor read with today's layout puts real_size (4 or 8) there. */
static const char *plausible_name(const char *p)
{
    return (uintptr_t)p >= 4096 ? p : NULL;
}

/* ABI 1 descriptors had no version field, and there are two ways to meet
 * one: generated code of ABI 1 compiled against today's bp.h (its
 * designated initialisers leave abi_version 0, the other fields in place),
 * or an object file compiled against the old bp.h (its first field is the
 * name pointer, whose bits then read as an implausible version). */
int bp_model_check_abi(const bp_model *m, char *err, size_t err_size)
{
    if (!m)
        return bp_fail(err, err_size, "no model given");
    int abi = m->abi_version;
    if (abi == BP_ABI_VERSION)
        return 0;
    const char *name;
    if (abi == 0) {
        abi = 1;
        name = plausible_name(m->name);
    } else if (abi >= 1 && abi <= MAX_PLAUSIBLE_ABI) {
        name = plausible_name(m->name);
    } else {
        abi = 1;
        const char *first;
        memcpy(&first, (const void *)m, sizeof first);
        name = plausible_name(first);
    }
    return bp_fail(err, err_size,
                   "model '%s' was generated for runtime ABI %d but this "
                   "runtime has ABI %d: regenerate it with this bpgen",
                   name ? name : "?", abi, BP_ABI_VERSION);
}
