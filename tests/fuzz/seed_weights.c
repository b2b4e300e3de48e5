/* seed_weights.c — writes the seed corpus of a weights-reader fuzz target
 * (fuzz_weights, fuzz_safetensors): a valid file for each model of
 * models.h in each precision, saved by the format's own writer, each
 * behind the control byte that makes the target load it that way.
 *
 *   cc -std=c99 -D_POSIX_C_SOURCE=200809L -Iruntime -Itests/fuzz \
 *      tests/fuzz/seed_weights.c tests/fuzz/models.c build/libbp.a -lm \
 *      -lpthread -o build/seed_weights
 *   build/seed_weights weights tests/fuzz/corpus/weights
 *   build/seed_weights safetensors tests/fuzz/corpus/safetensors
 */
#include "models.h"

#include <stdio.h>
#include <string.h>

typedef int (*save_fn)(const char *, const bp_model *, const void *, char *,
                       size_t);

static int write_seed(save_fn save, const char *dir, unsigned ctl,
                      const bp_model *m)
{
    char tmp[4096], out[4096], err[256];
    snprintf(tmp, sizeof tmp, "%s/.seed.tmp", dir);
    double theta[FUZZ_MAX_PARAMS];
    float theta_f[FUZZ_MAX_PARAMS];
    for (int i = 0; i < FUZZ_MAX_PARAMS; i++) {
        theta[i] = (i % 7 - 3) * 0.25;
        theta_f[i] = (float)theta[i];
    }
    const void *th = m->real_size == 4 ? (const void *)theta_f : (const void *)theta;
    if (save(tmp, m, th, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    FILE *in = fopen(tmp, "rb");
    snprintf(out, sizeof out, "%s/%s-%s-%02x.bin", dir, m->name,
             m->real_size == 4 ? "float" : "double", ctl);
    FILE *o = fopen(out, "wb");
    if (!in || !o)
        return 1;
    fputc((int)ctl, o);
    int c;
    while ((c = fgetc(in)) != EOF)
        fputc(c, o);
    fclose(in);
    remove(tmp);
    return fclose(o) != 0;
}

int main(int argc, char **argv)
{
    save_fn save = argc == 3 && !strcmp(argv[1], "weights") ? bp_weights_save
                 : argc == 3 && !strcmp(argv[1], "safetensors") ? bp_safetensors_save
                 : NULL;
    if (!save) {
        fprintf(stderr, "usage: seed_weights weights|safetensors DIR\n");
        return 2;
    }
    int bad = 0;
    for (unsigned which = 0; which < 4; which++)
        for (unsigned f = 0; f < 2; f++)
            for (unsigned subset = 0; subset < 2; subset++) {
                unsigned ctl = 3u | (f ? 4u : 0u) | (subset ? 8u : 0u) | which << 4;
                bp_tensor_info p[4];
                bp_model m = fuzz_model((int)which, f ? 4 : 8, p);
                bad |= write_seed(save, argv[2], ctl, &m);
            }
    return bad;
}
