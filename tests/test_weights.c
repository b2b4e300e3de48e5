/* test_weights.c — weights files: round trips in both precisions and
 * across them, the exact bytes of the format, loading a subset of tensors
 * into another model, and every kind of damage (each byte flipped, each
 * possible truncation, wrong magic, model, names and shapes, hostile
 * headers with valid checksums), which must give a precise message, leave
 * theta alone and never crash. Models are descriptors written by hand. */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* iris: the contract's example. */
static const bp_tensor_info iris_params[] = {
    {"W1", 2, {16, 4, 1, 1}, 64, 0, 0, 0},  {"b1", 1, {16, 1, 1, 1}, 16, 64, 0, 0},
    {"W2", 2, {3, 16, 1, 1}, 48, 80, 0, 0}, {"b2", 1, {3, 1, 1, 1}, 3, 128, 0, 0},
    {"s", 0, {1, 1, 1, 1}, 1, 131, 0, 0}};
/* The same with W1 [16, 5]. */
static const bp_tensor_info iris5_params[] = {
    {"W1", 2, {16, 5, 1, 1}, 80, 0, 0, 0},  {"b1", 1, {16, 1, 1, 1}, 16, 80, 0, 0},
    {"W2", 2, {3, 16, 1, 1}, 48, 96, 0, 0}, {"b2", 1, {3, 1, 1, 1}, 3, 144, 0, 0}};
/* A 2-class head on the same hidden layer. */
static const bp_tensor_info other_params[] = {
    {"W1", 2, {16, 4, 1, 1}, 64, 0, 0, 0},  {"b1", 1, {16, 1, 1, 1}, 16, 64, 0, 0},
    {"W2", 2, {2, 16, 1, 1}, 32, 80, 0, 0}, {"b2", 1, {2, 1, 1, 1}, 2, 112, 0, 0}};

enum { IRIS_N = 131, IRIS_PLUS_N = 132, IRIS5_N = 147, OTHER_N = 114 };

static bp_model model(const char *name, int rs, const bp_tensor_info *p,
                      int count, size_t n)
{
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = name;
    m.real_size = rs;
    m.num_params = n;
    m.num_param_tensors = count;
    m.params = p;
    return m;
}

/* iris has 4 tensors; iris_params[4] ("s") makes iris_plus, 3 makes
 * iris_less. */
static bp_model iris(int rs) { return model("iris", rs, iris_params, 4, IRIS_N); }

static void fill(double *d, float *f, size_t n, unsigned long long seed)
{
    bp_rng r;
    bp_rng_seed(&r, seed);
    if (d) bp_fill_normal(&r, d, 8, n, 0, 1);
    bp_rng_seed(&r, seed);
    if (f) bp_fill_normal(&r, f, 4, n, 0, 1);
}

static char *path_of(const char *name)
{
    return test_tmp_path(name);
}

static int write_bin(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int bad = fwrite(p, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

/* Expects loading `path` into iris (double) to fail with a message that
 * contains `want`, leaving theta as it was. */
static int fails_with(const char *path, const char *want)
{
    double th[IRIS_N], before[IRIS_N];
    fill(th, NULL, IRIS_N, 99);
    memcpy(before, th, sizeof th);
    bp_model m = iris(8);
    char err[512] = "";
    int rc = bp_weights_load(path, &m, th, err, sizeof err);
    int ok = rc != 0 && strstr(err, want) && strncmp(err, path, strlen(path)) == 0
             && memcmp(th, before, sizeof th) == 0;
    if (!ok)
        fprintf(stderr, "\nload %s: rc %d, err '%s', wanted '%s'\n", path, rc,
                err, want);
    return ok;
}

static void test_round_trip(void)
{
    char *path = path_of("rt.bin");
    char err[256];
    for (int rs = 4; rs <= 8; rs += 4) {
        double d[IRIS_N], d2[IRIS_N];
        float f[IRIS_N], f2[IRIS_N];
        fill(d, f, IRIS_N, 1);
        bp_model m = iris(rs);
        CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &m, rs == 8 ? (void *)d
                                                                : (void *)f,
                                              err, sizeof err), 0);
        char *tmp = test_format("%s.tmp", path);
        struct stat st;
        CU_ASSERT(stat(tmp, &st) != 0); /* the temporary is gone */
        free(tmp);
        /* Same precision: exact. */
        memset(d2, 0, sizeof d2);
        memset(f2, 0, sizeof f2);
        CU_ASSERT_EQUAL(bp_weights_load(path, &m, rs == 8 ? (void *)d2
                                                         : (void *)f2,
                                        err, sizeof err), 0);
        if (rs == 8)
            CU_ASSERT(memcmp(d, d2, sizeof d) == 0);
        if (rs == 4)
            CU_ASSERT(memcmp(f, f2, sizeof f) == 0);
        /* Other precision: converted. */
        bp_model o = iris(12 - rs);
        CU_ASSERT_EQUAL(bp_weights_load(path, &o, rs == 8 ? (void *)f2
                                                         : (void *)d2,
                                        err, sizeof err), 0);
        for (int i = 0; i < IRIS_N; i++) {
            if (rs == 8)
                CU_ASSERT_EQUAL(f2[i], (float)d[i]);
            if (rs == 4)
                CU_ASSERT_EQUAL(d2[i], (double)f[i]);
        }
    }
    /* Saving again replaces the file. */
    double z[IRIS_N] = {0}, back[IRIS_N];
    bp_model m = iris(8);
    CU_ASSERT_EQUAL(bp_weights_save(path, &m, z, err, sizeof err), 0);
    back[5] = 1;
    CU_ASSERT_EQUAL(bp_weights_load(path, &m, back, err, sizeof err), 0);
    CU_ASSERT_EQUAL(back[5], 0.0);
    free(path);
}

static void test_format_bytes(void)
{
    char *path = path_of("fmt.bin");
    char err[256];
    double th[IRIS_N] = {0};
    th[0] = 1.5;
    bp_model m = iris(8);
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &m, th, err, sizeof err), 0);
    size_t len;
    unsigned char *b = (unsigned char *)test_read_file(path, &len);
    CU_ASSERT_FATAL(b != NULL);
    /* header: magic, version 2, file size, real_size 8, "iris", 4 tensors */
    CU_ASSERT(memcmp(b, "BPGW\2\0\0\0", 8) == 0);
    uint64_t size = 0;
    for (int i = 7; i >= 0; i--)
        size = size << 8 | b[8 + i];
    CU_ASSERT_EQUAL(size, len);
    CU_ASSERT(memcmp(b + 16, "\10\0\0\0\4\0\0\0iris\4\0\0\0", 16) == 0);
    /* first tensor: "W1", rank 2, 16 x 4 */
    CU_ASSERT(memcmp(b + 32, "\2\0\0\0W1\2\0\0\0\20\0\0\0\4\0\0\0", 18) == 0);
    /* values start after the 4 tensor headers; 1.5 little-endian */
    size_t values = 32 + 18 + (4 + 2 + 4 + 4) + 18 + (4 + 2 + 4 + 4);
    CU_ASSERT_EQUAL(len, values + IRIS_N * 8 + 8);
    CU_ASSERT(memcmp(b + values, "\0\0\0\0\0\0\370\77", 8) == 0);
    free(b);
    free(path);
}

static void test_every_flip(void)
{
    char *path = path_of("flip.bin"), *bad = path_of("flipped.bin");
    char err[256];
    double th[IRIS_N];
    fill(th, NULL, IRIS_N, 3);
    bp_model m = iris(8);
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &m, th, err, sizeof err), 0);
    size_t len;
    unsigned char *b = (unsigned char *)test_read_file(path, &len);
    CU_ASSERT_FATAL(b != NULL);
    int wrong = 0;
    for (size_t i = 0; i < len; i++) {
        b[i] ^= 0x10;
        write_bin(bad, b, len);
        const char *want = i < 4 ? "bad magic"
                         : i < 8 ? "unsupported weights format version"
                         : i < 16 ? (b[i] > (b[i] ^ 0x10) ? "truncated" : "damaged")
                                  : "checksum mismatch (file damaged)";
        wrong += !fails_with(bad, want);
        b[i] ^= 0x10;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    free(b);
    free(path);
    free(bad);
}

static void test_every_truncation(void)
{
    char *path = path_of("trunc.bin"), *cut = path_of("cut.bin");
    char err[256];
    float th[IRIS_N];
    fill(NULL, th, IRIS_N, 4);
    bp_model m = iris(4);
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &m, th, err, sizeof err), 0);
    size_t len;
    char *b = test_read_file(path, &len);
    CU_ASSERT_FATAL(b != NULL);
    int wrong = 0;
    for (size_t n = 0; n < len; n++) {
        write_bin(cut, b, n);
        wrong += !fails_with(cut, "truncated");
    }
    CU_ASSERT_EQUAL(wrong, 0);
    /* One byte too many is damage, not truncation. */
    char *longer = malloc(len + 1);
    memcpy(longer, b, len);
    longer[len] = 0;
    write_bin(cut, longer, len + 1);
    CU_ASSERT(fails_with(cut, "damaged"));
    free(longer);
    free(b);
    free(path);
    free(cut);
}

static void test_wrong_model(void)
{
    char *path = path_of("wrong.bin");
    char err[512];
    double th[IRIS_PLUS_N];
    fill(th, NULL, IRIS_PLUS_N, 5);
    bp_model m = iris(8);
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &m, th, err, sizeof err), 0);

    /* Wrong magic. */
    size_t len;
    char *b = test_read_file(path, &len);
    char *magic = path_of("magic.bin");
    memcpy(b, "GIF8", 4);
    write_bin(magic, b, len);
    CU_ASSERT(fails_with(magic, "not a bpgen weights file (bad magic)"));
    test_write_file(magic, "hello, world, this is text\n");
    CU_ASSERT(fails_with(magic, "bad magic"));
    free(b);
    free(magic);

    /* Another model's name. */
    double o[OTHER_N];
    bp_model om = model("other", 8, iris_params, 4, IRIS_N);
    CU_ASSERT(bp_weights_load(path, &om, o, err, sizeof err) != 0);
    char *want = test_format("%s: the file holds weights for model 'iris', not "
                             "'other'", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);

    /* A shape that differs: the message of the brief, word for word. */
    double t5[IRIS5_N];
    bp_model m5 = model("iris", 8, iris5_params, 4, IRIS5_N);
    CU_ASSERT(bp_weights_load(path, &m5, t5, err, sizeof err) != 0);
    want = test_format("%s: parameter 'W1' has shape [16, 4] in the file but "
                       "[16, 5] in model 'iris'", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);

    /* A parameter missing from the file; one missing from the model. */
    bp_model plus = model("iris", 8, iris_params, 5, IRIS_PLUS_N);
    CU_ASSERT(bp_weights_load(path, &plus, th, err, sizeof err) != 0);
    CU_ASSERT(strstr(err, "parameter 's' of model 'iris' is not in the file") != NULL);
    bp_model less = model("iris", 8, iris_params, 3, 128);
    CU_ASSERT(bp_weights_load(path, &less, th, err, sizeof err) != 0);
    CU_ASSERT(strstr(err, "the file has parameter 'b2', which model 'iris' does not") != NULL);

    /* Missing file, a folder, an unwritable destination. */
    char *missing = path_of("no-such-file.bin");
    CU_ASSERT(fails_with(missing, "cannot open"));
    CU_ASSERT(fails_with(TEST_TMP, "not a regular file"));
    char *nodir = path_of("no-such-dir/w.bin");
    CU_ASSERT(bp_weights_save(nodir, &m, th, err, sizeof err) != 0);
    CU_ASSERT(strstr(err, "cannot write") != NULL);
    /* A tiny err buffer is cut, not overrun; NULL is allowed. */
    char tiny[8];
    CU_ASSERT(bp_weights_load(missing, &m, th, tiny, sizeof tiny) != 0);
    CU_ASSERT_EQUAL(strlen(tiny), 7);
    CU_ASSERT(bp_weights_load(missing, &m, th, NULL, 0) != 0);
    free(missing);
    free(nodir);
    free(path);
}

/* ---------------------------------------------- hostile, valid checksum */

typedef struct {
    unsigned char b[4096];
    size_t n;
} buf;

static void put(buf *w, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        w->b[w->n++] = (unsigned char)(v >> (8 * i));
}

static void put_str(buf *w, const char *s)
{
    put(w, strlen(s), 4);
    memcpy(w->b + w->n, s, strlen(s));
    w->n += strlen(s);
}

/* Patches the size field and appends a valid checksum, then writes. */
static void finish(buf *w, const char *path)
{
    uint64_t size = w->n + 8;
    for (int i = 0; i < 8; i++)
        w->b[8 + i] = (unsigned char)(size >> (8 * i));
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < w->n; i++) {
        h ^= w->b[i];
        h *= 0x100000001b3ull;
    }
    put(w, h, 8);
    write_bin(path, w->b, w->n);
}

/* The preamble of a file of format `version`. */
static void start_version(buf *w, uint64_t version, uint64_t real_size)
{
    w->n = 0;
    memcpy(w->b, "BPGW", 4);
    w->n = 4;
    put(w, version, 4);
    put(w, 0, 8);
    put(w, real_size, 4);
}

/* Format 1, as bpgen 0.1 wrote it (ranks up to 2): what the hostile
 * headers below are written in, and every one must still be read so. */
static void start(buf *w, uint64_t real_size)
{
    start_version(w, 1, real_size);
}

static void test_hostile(void)
{
    char *path = path_of("hostile.bin");
    buf w;

    /* A well-formed file built here loads: the test writer is right, and
     * format 1, which bpgen 0.1 wrote, is still read. */
    start(&w, 8);
    put_str(&w, "iris");
    put(&w, 4, 4);
    static const char *names[] = {"W1", "b1", "W2", "b2"};
    static const int dims[4][3] = {{2, 16, 4}, {1, 16, 0}, {2, 3, 16}, {1, 3, 0}};
    for (int t = 0; t < 4; t++) {
        put_str(&w, names[t]);
        put(&w, (uint64_t)dims[t][0], 4);
        for (int d = 0; d < dims[t][0]; d++)
            put(&w, (uint64_t)dims[t][1 + d], 4);
    }
    for (int i = 0; i < IRIS_N; i++)
        put(&w, 0x3ff0000000000000ull, 8); /* 1.0 */
    finish(&w, path);
    double th[IRIS_N];
    bp_model m = iris(8);
    char err[256];
    CU_ASSERT_EQUAL(bp_weights_load(path, &m, th, err, sizeof err), 0);
    CU_ASSERT_EQUAL(th[130], 1.0);

    /* Real size 3. */
    start(&w, 3);
    put_str(&w, "iris");
    put(&w, 0, 4);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "malformed weights file (bad real_size)"));

    /* A model name of 4 GB. */
    start(&w, 8);
    put(&w, 0xFFFFFFF0u, 4);
    put(&w, 0, 4);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "malformed weights file (bad model name)"));

    /* Four billion tensors. */
    start(&w, 8);
    put_str(&w, "iris");
    put(&w, 0xFFFFFFFFu, 4);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "malformed weights file (bad tensor count)"));

    /* A 65536 x 65536 tensor, and a 40000 x 40000 one (1.6e9 values, some
     * 12 GB) with no values behind it. */
    for (int k = 0; k < 2; k++) {
        start(&w, 8);
        put_str(&w, "iris");
        put(&w, 1, 4);
        put_str(&w, "W1");
        put(&w, 2, 4);
        put(&w, k ? 40000 : 65536, 4);
        put(&w, k ? 40000 : 65536, 4);
        finish(&w, path);
        CU_ASSERT(fails_with(path, k ? "values do not fit the file"
                                     : "tensor too large"));
    }

    /* Rank 7; a zero dimension; a name with a NUL in it. */
    start(&w, 8);
    put_str(&w, "iris");
    put(&w, 1, 4);
    put_str(&w, "W1");
    put(&w, 7, 4);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "bad tensor rank"));
    start(&w, 8);
    put_str(&w, "iris");
    put(&w, 1, 4);
    put_str(&w, "W1");
    put(&w, 1, 4);
    put(&w, 0, 4);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "bad tensor dimension"));
    start(&w, 8);
    put(&w, 3, 4);
    memcpy(w.b + w.n, "i\0s", 3);
    w.n += 3;
    put(&w, 0, 4);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "bad model name"));

    /* A preamble that claims a 10 GB file. */
    start(&w, 8);
    uint64_t huge = 10000000000ull;
    for (int i = 0; i < 8; i++)
        w.b[8 + i] = (unsigned char)(huge >> (8 * i));
    write_bin(path, w.b, w.n);
    CU_ASSERT(fails_with(path, "truncated: the file has 20 bytes but its header "
                               "says 10000000000"));

    /* The same tensor twice (and nothing else): a full load refuses it. */
    start(&w, 8);
    put_str(&w, "iris");
    put(&w, 5, 4);
    for (int t = 0; t < 5; t++) {
        int k = t < 4 ? t : 0;
        put_str(&w, names[k]);
        put(&w, (uint64_t)dims[k][0], 4);
        for (int d = 0; d < dims[k][0]; d++)
            put(&w, (uint64_t)dims[k][1 + d], 4);
    }
    for (int i = 0; i < IRIS_N + 64; i++)
        put(&w, 0, 8);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "the file has 5 parameters"));
    free(path);
}

/* ------------------------------------------------------ transfer learning */

static void test_load_tensors(void)
{
    char *path = path_of("pretrained.bin");
    char err[512];
    double src[IRIS_N];
    fill(src, NULL, IRIS_N, 7);
    bp_model m = iris(8);
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &m, src, err, sizeof err), 0);

    /* The hidden layer into a float model with another head. */
    bp_model o = model("other", 4, other_params, 4, OTHER_N);
    float dst[OTHER_N];
    for (int i = 0; i < OTHER_N; i++)
        dst[i] = -7;
    const char *const hidden[] = {"W1", "b1"};
    CU_ASSERT_EQUAL(bp_weights_load_tensors(path, &o, dst, hidden, 2, err,
                                            sizeof err), 0);
    for (int i = 0; i < 80; i++)
        CU_ASSERT_EQUAL(dst[i], (float)src[i]);
    for (int i = 80; i < OTHER_N; i++)
        CU_ASSERT_EQUAL(dst[i], -7.0f);

    /* A head of another shape; a name the model lacks; nothing at all. */
    float before[OTHER_N];
    memcpy(before, dst, sizeof dst);
    const char *const head[] = {"b1", "W2"};
    CU_ASSERT(bp_weights_load_tensors(path, &o, dst, head, 2, err, sizeof err) != 0);
    char *want = test_format("%s: parameter 'W2' has shape [3, 16] in the file "
                             "but [2, 16] in model 'other'", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);
    CU_ASSERT(memcmp(before, dst, sizeof dst) == 0); /* b1 not half-loaded */
    const char *const nope[] = {"nope"};
    CU_ASSERT(bp_weights_load_tensors(path, &o, dst, nope, 1, err, sizeof err) != 0);
    CU_ASSERT(strstr(err, "model 'other' has no parameter 'nope'") != NULL);
    CU_ASSERT_EQUAL(bp_weights_load_tensors(path, &o, dst, NULL, 0, err,
                                            sizeof err), 0);
    CU_ASSERT(memcmp(before, dst, sizeof dst) == 0);

    /* A parameter of the model that the file lacks. */
    bp_model plus = model("iris", 8, iris_params, 5, IRIS_PLUS_N);
    double tp[IRIS_PLUS_N];
    const char *const s[] = {"W2", "s"};
    CU_ASSERT(bp_weights_load_tensors(path, &plus, tp, s, 2, err, sizeof err) != 0);
    CU_ASSERT(strstr(err, "parameter 's' of model 'iris' is not in the file") != NULL);

    /* A damaged file is refused here too. */
    size_t len;
    char *b = test_read_file(path, &len);
    b[len - 20] ^= 1;
    write_bin(path, b, len);
    free(b);
    CU_ASSERT(bp_weights_load_tensors(path, &o, dst, hidden, 2, err, sizeof err) != 0);
    CU_ASSERT(strstr(err, "checksum mismatch (file damaged)") != NULL);
    free(path);
}

/* Review fixes: values that are not finite, or out of float range for a
 * float model, are refused, naming the tensor and index; theta untouched. */
static void test_bad_values(void)
{
    char *path = path_of("badval.bin");
    char err[512] = "";
    double d[IRIS_N], dl[IRIS_N], dbefore[IRIS_N];
    float f[IRIS_N], fl[IRIS_N], fbefore[IRIS_N];
    bp_model md = iris(8), mf = iris(4);
    fill(dl, fl, IRIS_N, 5);
    memcpy(dbefore, dl, sizeof dl);
    memcpy(fbefore, fl, sizeof fl);

    /* A double far beyond float range: fine for double, not for float. */
    fill(d, NULL, IRIS_N, 3);
    d[5] = -1e300;
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &md, d, err, sizeof err), 0);
    CU_ASSERT_EQUAL(bp_weights_load(path, &md, dl, err, sizeof err), 0);
    CU_ASSERT_EQUAL(dl[5], -1e300);
    memcpy(dl, dbefore, sizeof dl);
    CU_ASSERT_NOT_EQUAL(bp_weights_load(path, &mf, fl, err, sizeof err), 0);
    char *want = test_format("%s: parameter 'W1' value [5] is -1e+300, out "
                             "of range for a float model (largest "
                             "3.40282347e+38)", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);
    CU_ASSERT(memcmp(fl, fbefore, sizeof fl) == 0);
    /* Just above FLT_MAX too; FLT_MAX itself loads. */
    d[5] = 3.5e38;
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &md, d, err, sizeof err), 0);
    CU_ASSERT_NOT_EQUAL(bp_weights_load(path, &mf, fl, err, sizeof err), 0);
    CU_ASSERT(strstr(err, "'W1' value [5]") != NULL);
    CU_ASSERT(memcmp(fl, fbefore, sizeof fl) == 0);
    d[5] = 3.4028234663852886e38;   /* FLT_MAX */
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &md, d, err, sizeof err), 0);
    CU_ASSERT_EQUAL(bp_weights_load(path, &mf, fl, err, sizeof err), 0);
    CU_ASSERT(isfinite(fl[5]) && fl[5] > 3e38f);
    memcpy(fl, fbefore, sizeof fl);

    /* NaN and infinities, into either precision. */
    fill(d, NULL, IRIS_N, 3);
    d[64 + 6] = NAN;   /* b1[6] */
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &md, d, err, sizeof err), 0);
    CU_ASSERT_NOT_EQUAL(bp_weights_load(path, &md, dl, err, sizeof err), 0);
    want = test_format("%s: parameter 'b1' value [6] is nan (not a finite "
                       "number)", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);
    CU_ASSERT(memcmp(dl, dbefore, sizeof dl) == 0);
    CU_ASSERT_NOT_EQUAL(bp_weights_load(path, &mf, fl, err, sizeof err), 0);
    CU_ASSERT(memcmp(fl, fbefore, sizeof fl) == 0);
    fill(NULL, f, IRIS_N, 3);
    f[128 + 2] = -INFINITY;   /* b2[2] */
    CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &mf, f, err, sizeof err), 0);
    CU_ASSERT_NOT_EQUAL(bp_weights_load(path, &md, dl, err, sizeof err), 0);
    want = test_format("%s: parameter 'b2' value [2] is -inf (not a finite "
                       "number)", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);
    CU_ASSERT(memcmp(dl, dbefore, sizeof dl) == 0);
    /* Loading only some tensors checks them the same way. */
    static const char *const names[] = {"b2"};
    CU_ASSERT_NOT_EQUAL(bp_weights_load_tensors(path, &mf, fl, names, 1, err,
                                                sizeof err), 0);
    CU_ASSERT(strstr(err, "'b2' value [2] is -inf") != NULL);
    CU_ASSERT(memcmp(fl, fbefore, sizeof fl) == 0);
    free(path);
}

/* ------------------------------------------------- rank 3 and 4, format 2 */

/* A small CNN's parameters: K[4, 1, 3, 2] (rank 4), b[4], a rank-3 gain
 * G[2, 3, 5] and W[10, 6]. */
static const bp_tensor_info cnn_params[] = {
    {"K", 4, {4, 1, 3, 2}, 24, 0, 0, 0},  {"b", 1, {4, 1, 1, 1}, 4, 24, 0, 0},
    {"G", 3, {2, 3, 5, 1}, 30, 28, 0, 0}, {"W", 2, {10, 6, 1, 1}, 60, 58, 0, 0}};
static const bp_tensor_info cnn_other_k[] = {
    {"K", 4, {4, 1, 2, 3}, 24, 0, 0, 0},  {"b", 1, {4, 1, 1, 1}, 4, 24, 0, 0},
    {"G", 3, {2, 3, 5, 1}, 30, 28, 0, 0}, {"W", 2, {10, 6, 1, 1}, 60, 58, 0, 0}};
enum { CNN_N = 118 };

static void test_rank4(void)
{
    char *path = path_of("cnn.bin");
    char err[256] = "";
    for (int rs = 4; rs <= 8; rs += 4) {
        double d[CNN_N], d2[CNN_N];
        float f[CNN_N], f2[CNN_N];
        fill(d, f, CNN_N, 3);
        bp_model m = model("cnn", rs, cnn_params, 4, CNN_N);
        CU_ASSERT_EQUAL_FATAL(bp_weights_save(path, &m, rs == 8 ? (void *)d : (void *)f, err,
                                              sizeof err), 0);
        memset(d2, 0, sizeof d2);
        memset(f2, 0, sizeof f2);
        CU_ASSERT_EQUAL(bp_weights_load(path, &m, rs == 8 ? (void *)d2 : (void *)f2, err,
                                        sizeof err), 0);
        CU_ASSERT(rs == 8 ? memcmp(d, d2, sizeof d) == 0 : memcmp(f, f2, sizeof f) == 0);
    }
    /* the bytes (of the double file): version 2, real_size 8, and K's entry: rank 4, 4 x 1 x 3 x 2 */
    size_t len;
    unsigned char *b = (unsigned char *)test_read_file(path, &len);
    CU_ASSERT_FATAL(b != NULL);
    CU_ASSERT(memcmp(b, "BPGW\2\0\0\0", 8) == 0);
    CU_ASSERT(memcmp(b + 16, "\10\0\0\0\3\0\0\0cnn\4\0\0\0", 15) == 0);
    CU_ASSERT(memcmp(b + 31, "\1\0\0\0K\4\0\0\0\4\0\0\0\1\0\0\0\3\0\0\0\2\0\0\0", 25) == 0);
    free(b);

    /* a kernel of another shape, named with all four dimensions */
    double th[CNN_N] = {0};
    bp_model other = model("cnn", 8, cnn_other_k, 4, CNN_N);
    CU_ASSERT_NOT_EQUAL(bp_weights_load(path, &other, th, err, sizeof err), 0);
    char *want = test_format("%s: parameter 'K' has shape [4, 1, 3, 2] in the file but "
                             "[4, 1, 2, 3] in model 'cnn'", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);
    CU_ASSERT_EQUAL(th[0], 0.0);

    /* a descriptor whose rank-4 size disagrees with its dims is refused */
    static const bp_tensor_info bad[] = {{"K", 4, {4, 1, 3, 2}, 23, 0, 0, 0}};
    bp_model bm = model("bad", 8, bad, 1, 23);
    CU_ASSERT_NOT_EQUAL(bp_weights_save(path, &bm, th, err, sizeof err), 0);
    CU_ASSERT(strstr(err, "descriptor of parameter 0 is inconsistent") != NULL);
    free(path);
}

/* Format 2's limits, and format 1's: rank 3 and 4 only from version 2 on. */
static void test_versions(void)
{
    char *path = path_of("versions.bin");
    buf w;
    static const bp_tensor_info k_only[] = {{"K", 4, {2, 1, 1, 2}, 4, 0, 0, 0}};
    bp_model m = model("k", 8, k_only, 1, 4);
    char err[256] = "";
    for (int version = 1; version <= 2; version++) {
        start_version(&w, (uint64_t)version, 8);
        put_str(&w, "k");
        put(&w, 1, 4);
        put_str(&w, "K");
        put(&w, 4, 4);
        put(&w, 2, 4), put(&w, 1, 4), put(&w, 1, 4), put(&w, 2, 4);
        for (int i = 0; i < 4; i++)
            put(&w, 0x4000000000000000ull, 8); /* 2.0 */
        finish(&w, path);
        double th[4] = {0};
        int rc = bp_weights_load(path, &m, th, err, sizeof err);
        if (version == 1) {
            CU_ASSERT_NOT_EQUAL(rc, 0);
            CU_ASSERT(strstr(err, "malformed weights file (bad tensor rank)") != NULL);
            CU_ASSERT_EQUAL(th[3], 0.0);
        } else {
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_EQUAL(th[3], 2.0);
        }
    }
    /* rank 5 */
    start_version(&w, 2, 8);
    put_str(&w, "iris");
    put(&w, 1, 4);
    put_str(&w, "W1");
    put(&w, 5, 4);
    for (int d = 0; d < 5; d++)
        put(&w, 1, 4);
    put(&w, 0, 8);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "malformed weights file (bad tensor rank)"));
    /* four dimensions of 2^32 - 1: the element count must not wrap */
    start_version(&w, 2, 8);
    put_str(&w, "iris");
    put(&w, 1, 4);
    put_str(&w, "W1");
    put(&w, 4, 4);
    for (int d = 0; d < 4; d++)
        put(&w, 0xFFFFFFFFu, 4);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "malformed weights file (tensor too large)"));
    /* 1 x 65536 x 65536 x 1: too large as well */
    start_version(&w, 2, 8);
    put_str(&w, "iris");
    put(&w, 1, 4);
    put_str(&w, "W1");
    put(&w, 4, 4);
    put(&w, 1, 4), put(&w, 65536, 4), put(&w, 65536, 4), put(&w, 1, 4);
    finish(&w, path);
    CU_ASSERT(fails_with(path, "malformed weights file (tensor too large)"));
    /* versions 0 and 3 */
    for (int version = 0; version <= 3; version += 3) {
        start_version(&w, (uint64_t)version, 8);
        put_str(&w, "iris");
        put(&w, 0, 4);
        finish(&w, path);
        char *want = test_format("unsupported weights format version %d (this runtime reads "
                                 "versions 1 to 2)", version);
        CU_ASSERT(fails_with(path, want));
        free(want);
    }
    free(path);
}

void register_weights(void);
void register_weights(void)
{
    CU_pSuite s = CU_add_suite("weights", NULL, NULL);
    CU_add_test(s, "round trip", test_round_trip);
    CU_add_test(s, "format bytes", test_format_bytes);
    CU_add_test(s, "every flipped byte", test_every_flip);
    CU_add_test(s, "every truncation", test_every_truncation);
    CU_add_test(s, "wrong file or model", test_wrong_model);
    CU_add_test(s, "hostile headers", test_hostile);
    CU_add_test(s, "load tensors (transfer)", test_load_tensors);
    CU_add_test(s, "non-finite or out-of-range values", test_bad_values);
    CU_add_test(s, "rank 3 and 4 (format 2)", test_rank4);
    CU_add_test(s, "format versions 1 and 2, rank limits", test_versions);
}
