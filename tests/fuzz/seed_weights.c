/* seed_weights.c — writes the seed corpus of fuzz_weights: a valid file
 * for each model and precision of that target, saved by bp_weights_save,
 * each behind the control byte that makes the target load it that way.
 *
 *   cc -std=c99 -D_POSIX_C_SOURCE=200809L -Iruntime -Itests/fuzz \
 *      tests/fuzz/seed_weights.c tests/fuzz/harness.c build/libbp.a -lm \
 *      -o build/seed_weights && build/seed_weights tests/fuzz/corpus/weights
 */
#include "fuzz_weights.c"

#include <stdio.h>

static int write_seed(const char *dir, unsigned ctl, const bp_model *m)
{
    char tmp[4096], out[4096], err[256];
    snprintf(tmp, sizeof tmp, "%s/.seed.tmp", dir);
    double theta[131];
    float theta_f[131];
    for (int i = 0; i < 131; i++) {
        theta[i] = (i % 7 - 3) * 0.25;
        theta_f[i] = (float)theta[i];
    }
    const void *th = m->real_size == 4 ? (const void *)theta_f : (const void *)theta;
    if (bp_weights_save(tmp, m, th, err, sizeof err)) {
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
    if (argc != 2) {
        fprintf(stderr, "usage: seed_weights DIR\n");
        return 2;
    }
    int bad = 0;
    for (unsigned which = 0; which < 3; which++)
        for (unsigned f = 0; f < 2; f++)
            for (unsigned subset = 0; subset < 2; subset++) {
                unsigned ctl = 3u | (f ? 4u : 0u) | (subset ? 8u : 0u) | which << 4;
                bp_tensor_info p[4];
                bp_model m = model((int)which, f ? 4 : 8, p);
                bad |= write_seed(argv[1], ctl, &m);
            }
    return bad;
}
