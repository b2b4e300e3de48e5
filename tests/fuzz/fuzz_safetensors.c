/* fuzz_safetensors.c — the safetensors reader (safetensors.c) on any
 * bytes: its JSON header parser and its layout checks.
 *
 * The first byte of the input steers the target, the rest is the file
 * (the format has no checksum, so nothing needs fixing up):
 *   bits 0-1  unused (seeds set them, as fuzz_weights' seeds do)
 *   bit  2    a float model, else double
 *   bit  3    load two named tensors (bp_safetensors_load_tensors),
 *             else all
 *   bits 4-5  the model (models.h): iris, tiny, none, conv
 *
 * Promises checked: a failed load leaves theta untouched and names the
 * file in its message; a successful one writes only finite values (in
 * float range for a float model). */
#include "fuzz.h"
#include "models.h"

#include "bp.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define SENTINEL 12345.0

static void fail(const char *what)
{
    fuzz_fail("fuzz_safetensors", what);
}

int fuzz_safetensors(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned ctl = data[0];
    const char *path = fuzz_file(data + 1, size - 1);

    int rs = ctl & 4 ? 4 : 8;
    bp_tensor_info params[4];
    bp_model m = fuzz_model((ctl >> 4) & 3, rs, params);
    double theta[FUZZ_MAX_PARAMS];
    float theta_f[FUZZ_MAX_PARAMS];
    void *th = rs == 4 ? (void *)theta_f : (void *)theta;
    for (int i = 0; i < FUZZ_MAX_PARAMS; i++) {
        theta[i] = SENTINEL;
        theta_f[i] = (float)SENTINEL;
    }

    char err[512] = "";
    int rc;
    if (ctl & 8) {
        const char *names[2] = {m.num_param_tensors ? params[0].name : "x",
                                m.num_param_tensors ? params[m.num_param_tensors - 1].name : "y"};
        rc = bp_safetensors_load_tensors(path, &m, th, names, 2, err, sizeof err);
    } else {
        rc = bp_safetensors_load(path, &m, th, err, sizeof err);
    }
    for (int i = 0; i < FUZZ_MAX_PARAMS; i++) {
        double v = rs == 4 ? (double)theta_f[i] : theta[i];
        if (rc != 0 && v != SENTINEL)
            fail("a failed load changed theta");
        if (rc == 0 && (!isfinite(v) || (rs == 4 && fabs(v) > FLT_MAX)))
            fail("a load succeeded with a value that is not finite");
    }
    if (rc != 0 && strncmp(err, path, strlen(path)) != 0)
        fail("the error message does not start with the file's name");
    return 0;
}
