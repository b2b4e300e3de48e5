/* fuzz_weights.c — the weights reader (weights.c) on any bytes, with the
 * checksum out of the fuzzer's way.
 *
 * A weights file ends in an FNV-1a checksum of everything before it and
 * starts with its own size, so almost every mutation would stop at those
 * two checks. The first byte of the input steers the target, the rest is
 * the file:
 *   bit 0     write the file's real size into its size field (bytes 8-15)
 *   bit 1     recompute the checksum (the last 8 bytes)
 *   bit 2     a float model, else double
 *   bit 3     load two named tensors (bp_weights_load_tensors), else all
 *   bits 4-5  the model: 0 "iris" (W1[16,4] b1[16] W2[3,16] b2[3]),
 *             1 "tiny" (s, v[3], M[2,2]), 2 "none" (no parameters),
 *             3 "conv" (K[2,1,3,3] c[2] T[2,2,2]: ranks 3 and 4)
 * Seeds (corpus/weights/) start with 0x03, so mutations of the structure
 * reach the parser; clearing the bits fuzzes the two checks themselves.
 *
 * Promises checked: a failed load leaves theta untouched and names the
 * file in its message; a successful one writes only finite values (in
 * float range for a float model). */
#include "fuzz.h"
#include "models.h"

#include "bp.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 12345.0

static void fail(const char *what)
{
    fuzz_fail("fuzz_weights", what);
}

static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int fuzz_weights(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned ctl = data[0];
    size_t n = size - 1;
    unsigned char *file = malloc(n ? n : 1);
    if (!file)
        fail("out of memory");
    if (n)
        memcpy(file, data + 1, n);
    if ((ctl & 1) && n >= 16)
        put_le64(file + 8, n);
    if ((ctl & 2) && n >= 8)
        put_le64(file + n - 8, fnv1a(file, n - 8));
    const char *path = fuzz_file(file, n);
    free(file);

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
        rc = bp_weights_load_tensors(path, &m, th, names, 2, err, sizeof err);
    } else {
        rc = bp_weights_load(path, &m, th, err, sizeof err);
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
