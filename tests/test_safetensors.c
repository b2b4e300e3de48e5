/* test_safetensors.c — safetensors files: round trips in both precisions
 * and across them, the exact bytes written, loading a subset, and hostile
 * files (bad JSON, lengths, offsets out of range, overlapping or with gaps,
 * wrong shapes, unread dtypes, duplicate and missing names, non-finite
 * values, every truncation and every flipped byte), each of which must
 * fail with a message naming the file, leave theta alone and never crash.
 * Models are descriptors written by hand; test_torch.c does the round
 * trip with PyTorch and generated code. */
#define _XOPEN_SOURCE 700   /* ftruncate */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* W [2, 3], b [2], s a scalar: 9 values. */
static const bp_tensor_info small_params[] = {
    {"W", 2, {2, 3}, 6, 0, 0, 0}, {"b", 1, {2, 1}, 2, 6, 0, 0}, {"s", 0, {1, 1}, 1, 8, 0, 0}};
enum { SMALL_N = 9 };

static bp_model small(int rs)
{
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = "small";
    m.real_size = rs;
    m.num_params = SMALL_N;
    m.num_param_tensors = 3;
    m.params = small_params;
    return m;
}

/* A file: the u64 length of `header`, the header, then `data_len` bytes
 * of data: float 1, 2, 3, ... (F32) when f32_data, else zeros. */
static char *write_st(const char *name, const char *header, size_t data_len, int f32_data)
{
    char *path = test_tmp_path(name);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t n = strlen(header);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)n >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_len; i++) {
        unsigned char byte = 0;
        if (f32_data) {
            float v = (float)(i / 4 + 1);
            uint32_t u;
            memcpy(&u, &v, 4);
            byte = (unsigned char)(u >> (8 * (i % 4)));
        }
        fputc(byte, f);
    }
    fclose(f);
    return path;
}

/* A valid header for `small` in F32, with its three tensors. */
#define GOOD_HEADER                                                                   \
    "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"             \
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"               \
    "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[32,36]}}"

/* Loading `path` into small (double) fails, with a message that starts
 * with the path and contains `want`, and theta is untouched. */
static int fails_with(const char *path, const char *want)
{
    double th[SMALL_N], before[SMALL_N];
    for (int i = 0; i < SMALL_N; i++)
        th[i] = before[i] = -7.5 + i;
    bp_model m = small(8);
    char err[512] = "";
    int rc = bp_safetensors_load(path, &m, th, err, sizeof err);
    int ok = rc != 0 && strstr(err, want) && strncmp(err, path, strlen(path)) == 0 &&
             memcmp(th, before, sizeof th) == 0;
    if (!ok)
        fprintf(stderr, "\nload %s: rc %d, err '%s', wanted '%s'\n", path, rc, err, want);
    return ok;
}

static int header_fails_with(const char *header, size_t data_len, const char *want)
{
    char *path = write_st("hostile.safetensors", header, data_len, 1);
    int ok = fails_with(path, want);
    free(path);
    return ok;
}

static void test_round_trip(void)
{
    char *path = test_tmp_path("rt.safetensors");
    char err[256] = "";
    for (int rs = 4; rs <= 8; rs += 4) {
        double d[SMALL_N], d2[SMALL_N];
        float f[SMALL_N], f2[SMALL_N];
        for (int i = 0; i < SMALL_N; i++) {
            d[i] = 1.0 / (i + 3) - 0.25;
            f[i] = (float)d[i];
        }
        bp_model m = small(rs);
        CU_ASSERT_EQUAL_FATAL(bp_safetensors_save(path, &m, rs == 8 ? (void *)d : (void *)f,
                                                  err, sizeof err), 0);
        char *tmp = test_format("%s.tmp", path);
        struct stat st;
        CU_ASSERT(stat(tmp, &st) != 0);
        free(tmp);
        memset(d2, 0, sizeof d2);
        memset(f2, 0, sizeof f2);
        CU_ASSERT_EQUAL(bp_safetensors_load(path, &m, rs == 8 ? (void *)d2 : (void *)f2,
                                            err, sizeof err), 0);
        if (rs == 8)
            CU_ASSERT(memcmp(d, d2, sizeof d) == 0);
        if (rs == 4)
            CU_ASSERT(memcmp(f, f2, sizeof f) == 0);
        /* into the other precision */
        bp_model o = small(12 - rs);
        CU_ASSERT_EQUAL(bp_safetensors_load(path, &o, rs == 8 ? (void *)f2 : (void *)d2,
                                            err, sizeof err), 0);
        for (int i = 0; i < SMALL_N; i++) {
            if (rs == 8)
                CU_ASSERT_EQUAL(f2[i], (float)d[i]);
            if (rs == 4)
                CU_ASSERT_EQUAL(d2[i], (double)f[i]);
        }
    }
    free(path);
}

/* The bytes are the format's: length, JSON (8-byte aligned with spaces),
 * values little-endian in declaration order. */
static void test_bytes(void)
{
    char *path = test_tmp_path("bytes.safetensors");
    float f[SMALL_N] = {1, 2, 3, 4, 5, 6, -1, -2, 0.5f};
    bp_model m = small(4);
    char err[256];
    CU_ASSERT_EQUAL_FATAL(bp_safetensors_save(path, &m, f, err, sizeof err), 0);
    size_t len = 0;
    char *bytes = test_read_file(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    const char *want =
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[32,36]},"
        "\"__metadata__\":{\"format\":\"pt\",\"bpgen_model\":\"small\"}}";
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | (unsigned char)bytes[i];
    CU_ASSERT_EQUAL((8 + hlen) % 8, 0);
    CU_ASSERT(hlen >= strlen(want) && hlen < strlen(want) + 8);
    CU_ASSERT_EQUAL(strncmp(bytes + 8, want, strlen(want)), 0);
    for (size_t i = 8 + strlen(want); i < 8 + hlen; i++)
        CU_ASSERT_EQUAL(bytes[i], ' ');
    CU_ASSERT_EQUAL(len, 8 + hlen + 36);
    /* 0.5f is 0x3f000000, little-endian last */
    const unsigned char *last = (const unsigned char *)bytes + len - 4;
    CU_ASSERT(last[0] == 0 && last[1] == 0 && last[2] == 0 && last[3] == 0x3f);
    free(bytes);
    free(path);
}

/* Written by other tools: spaces, any key order, escapes, metadata, a
 * different layout order, F64 and F32 mixed. */
static void test_other_writers(void)
{
    char *path = write_st(
        "other.safetensors",
        " { \"__metadata__\" : { \"a\\\"b\" : \"\\u00e9\\ud83d\\ude00\" } ,\n"
        "  \"\\u0057\" : { \"data_offsets\" : [ 12 , 36 ] , \"shape\" : [ 2 , 3 ] ,"
        " \"dtype\" : \"F32\" } ,\n"
        "  \"b\" : { \"dtype\" : \"F32\" , \"shape\" : [ 2 ] , \"data_offsets\" : [ 0 , 8 ] } ,"
        "  \"s\" : { \"dtype\" : \"F32\" , \"shape\" : [ ] , \"data_offsets\" : [ 8 , 12 ] } }   ",
        36, 1);
    double th[SMALL_N];
    bp_model m = small(8);
    char err[256] = "";
    CU_ASSERT_EQUAL(bp_safetensors_load(path, &m, th, err, sizeof err), 0);
    if (err[0])
        fprintf(stderr, "%s\n", err);
    /* data holds 1, 2, ..., 9: b = 1, 2; s = 3; W = 4..9 */
    CU_ASSERT_EQUAL(th[6], 1.0);
    CU_ASSERT_EQUAL(th[7], 2.0);
    CU_ASSERT_EQUAL(th[8], 3.0);
    CU_ASSERT_EQUAL(th[0], 4.0);
    CU_ASSERT_EQUAL(th[5], 9.0);
    free(path);
}

static void test_bad_json(void)
{
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",}}", 36,
                                "bad safetensors header at byte 28: expected a string"));
    CU_ASSERT(header_fails_with("[]", 36, "bad safetensors header at byte 8: the header "
                                          "must be a JSON object"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                                "\"data_offsets\":[0,24]}", 36,
                                "expected ',' or '}' after a tensor's entry"));
    CU_ASSERT(header_fails_with(GOOD_HEADER "x", 36, "something follows the header's "
                                                     "closing '}'"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"shape\":[2.0,3],"
                                "\"data_offsets\":[0,24]}}", 36,
                                "expected an integer, found a fraction or exponent"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"shape\":[2,-3],"
                                "\"data_offsets\":[0,24]}}", 36,
                                "expected a non-negative integer"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"shape\":[02,3],"
                                "\"data_offsets\":[0,24]}}", 36, "a number with a leading zero"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                                "\"data_offsets\":[0,99999999999999999999]}}", 36,
                                "a number too large"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0]}}",
                                36, "data_offsets must be an array of two integers"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3]}}", 36,
                                "tensor 'W' lacks 'data_offsets'"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", 36,
                                "tensor 'W': repeated key 'dtype'"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"stride\":[1]}}", 36,
                                "tensor 'W': unknown key 'stride'"));
    CU_ASSERT(header_fails_with("{\"W\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1]}}", 36,
                                "a shape of more than 8 dimensions"));
    CU_ASSERT(header_fails_with("{\"__metadata__\":{\"a\":1}}", 36, "expected a string"));
    CU_ASSERT(header_fails_with("{\"W\\x\":{}}", 36, "an unknown escape in a string"));
    CU_ASSERT(header_fails_with("{\"W\\ud800\":{}}", 36,
                                "a high surrogate without its low surrogate"));
    CU_ASSERT(header_fails_with("{\"W\\u0000\":{}}", 36, "a NUL character in a string"));
    CU_ASSERT(header_fails_with("{\"W\\u12\":{}}", 36, "a \\u escape needs four hexadecimal"));
    CU_ASSERT(header_fails_with("{\"W\n\":{}}", 36, "a control character in a string"));
    CU_ASSERT(header_fails_with("{\"W", 36, "a string is not closed"));
    CU_ASSERT(header_fails_with("{", 36, "cannot hold a JSON object") ||
              header_fails_with("{", 36, "expected a string"));
    CU_ASSERT(header_fails_with("{}", 36, "the last 36 bytes of the data belong to no tensor"));
}

static void test_bad_lengths(void)
{
    char *path = test_tmp_path("short.safetensors");
    CU_ASSERT_EQUAL(test_write_file(path, "1234567"), 0);
    CU_ASSERT(fails_with(path, "shorter than its 8-byte header length"));
    CU_ASSERT_EQUAL(test_write_file(path, ""), 0);
    CU_ASSERT(fails_with(path, "shorter than its 8-byte header length"));
    /* a huge length */
    FILE *f = fopen(path, "wb");
    const unsigned char huge[8] = {0, 0, 0, 0, 0, 0, 0, 0x40};
    fwrite(huge, 1, 8, f);
    fputs(GOOD_HEADER, f);
    fclose(f);
    CU_ASSERT(fails_with(path, "header length 4611686018427387904 runs past the end of the "
                               "file"));
    /* a length over the limit in a (sparse) file long enough to hold it */
    f = fopen(path, "wb");
    const unsigned char big[8] = {0, 0, 0, 0x07, 0, 0, 0, 0};   /* 112 MiB */
    fwrite(big, 1, 8, f);
    fputs("{", f);
    CU_ASSERT_EQUAL(ftruncate(fileno(f), 8 + (120 << 20)), 0);
    fclose(f);
    CU_ASSERT(fails_with(path, "header length 117440512 is over the limit of 104857600 bytes"));
    remove(path);
    free(path);
    CU_ASSERT(fails_with(TEST_TMP, "not a regular file"));
    char *missing = test_tmp_path("no-such.safetensors");
    CU_ASSERT(fails_with(missing, "cannot open: No such file or directory"));
    free(missing);
}

static void test_bad_layout(void)
{
    /* out of range */
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[36,40]}}",
        36, "tensor 's' has data_offsets [36, 40] outside the 36 bytes of data"));
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,0]}}",
        36, "tensor 'W' has data_offsets [24, 0] outside"));
    /* a range that is not the shape's size */
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[20,28]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[28,36]}}",
        36, "tensor 'W' (F32 [2, 3]) needs 24 bytes but its data_offsets [0, 20] hold 20"));
    /* overlap */
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[20,28]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[32,36]}}",
        36, "tensors 'W' and 'b' overlap in the data"));
    /* a gap */
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[28,36]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[36,40]}}",
        40, "bytes [24, 28) of the data belong to no tensor (a gap before 'b')"));
    /* bytes left over */
    CU_ASSERT(header_fails_with(GOOD_HEADER, 40, "the last 4 bytes of the data belong to no "
                                                 "tensor"));
    /* a shape whose size overflows */
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,24]}}",
        36, "tensor 'W' has shape [4294967296, 4294967296], too large"));
}

static void test_wrong_for_the_model(void)
{
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[32,36]}}",
        36, "tensor 'W' has shape [3, 2] in the file but [2, 3] in model 'small'"));
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[32,36]}}",
        36, "tensor 's' has shape [1] in the file but [] in model 'small'"));
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}",
        32, "has no tensor 's' (a parameter of model 'small')"));
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[32,36]},"
        "\"extra\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[36,40]}}",
        40, "tensor 'extra' is not a parameter of model 'small'"));
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
        "\"W\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]}}",
        32, "tensor 'W' appears twice"));
    CU_ASSERT(header_fails_with(
        "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__ appears twice"));
    /* dtypes */
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[20,24]}}",
        24, "tensor 'W' is F16, which bpgen does not read (it reads F32 and F64; in "
            "PyTorch, save tensor.float())"));
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[20,24]}}",
        24, "tensor 'W' is BF16, which bpgen does not read"));
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"I64\",\"shape\":[2,3],\"data_offsets\":[0,48]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[48,56]},"
        "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[56,60]}}",
        60, "tensor 'W' is I64, which bpgen does not read (it reads F32 and F64)"));
    CU_ASSERT(header_fails_with(
        "{\"W\":{\"dtype\":\"F33\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
        24, "tensor 'W' has unknown dtype 'F33'"));
}

static void test_bad_values(void)
{
    /* NaN in s */
    char *path = test_tmp_path("nan.safetensors");
    float f[SMALL_N] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    bp_model m = small(4);
    char err[256];
    f[8] = NAN;
    CU_ASSERT_EQUAL(bp_safetensors_save(path, &m, f, err, sizeof err), 0);
    CU_ASSERT(fails_with(path, "tensor 's' value [0] is nan, not a finite number"));
    /* a double too large for a float model */
    double d[SMALL_N] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    d[7] = 1e300;
    bp_model md = small(8);
    CU_ASSERT_EQUAL(bp_safetensors_save(path, &md, d, err, sizeof err), 0);
    float back[SMALL_N] = {0};
    err[0] = '\0';
    CU_ASSERT_NOT_EQUAL(bp_safetensors_load(path, &m, back, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "tensor 'b' value [1] is 1e+300, out of float range"));
    CU_ASSERT_EQUAL(back[0], 0.0f);
    free(path);
}

/* Every truncation and every flipped byte of a good file: a message or a
 * load, never a crash (the sanitizers watch). */
static void test_every_truncation_and_flip(void)
{
    char *good = write_st("good.safetensors", GOOD_HEADER, 36, 1);
    size_t len = 0;
    char *bytes = test_read_file(good, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    double th[SMALL_N];
    bp_model m = small(8);
    char err[512];
    CU_ASSERT_EQUAL(bp_safetensors_load(good, &m, th, err, sizeof err), 0);
    char *path = test_tmp_path("cut.safetensors");
    int quiet_failures = 0, truncations_loaded = 0;
    for (size_t cut = 0; cut < len; cut++) {
        FILE *f = fopen(path, "wb");
        fwrite(bytes, 1, cut, f);
        fclose(f);
        err[0] = '\0';
        if (bp_safetensors_load(path, &m, th, err, sizeof err) == 0)
            truncations_loaded++;
        else if (strncmp(err, path, strlen(path)))
            quiet_failures++;
    }
    CU_ASSERT_EQUAL(truncations_loaded, 0);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            bytes[i] ^= (char)(1 << bit);
            FILE *f = fopen(path, "wb");
            fwrite(bytes, 1, len, f);
            fclose(f);
            bytes[i] ^= (char)(1 << bit);
            err[0] = '\0';
            if (bp_safetensors_load(path, &m, th, err, sizeof err) != 0 &&
                strncmp(err, path, strlen(path)))
                quiet_failures++;
        }
    }
    CU_ASSERT_EQUAL(quiet_failures, 0);
    free(path);
    free(bytes);
    free(good);
}

static void test_load_tensors(void)
{
    /* a file with W, b, s and an extra tensor: take b only */
    char *path = write_st("subset.safetensors",
                          "{\"W\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                          "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[24,32]},"
                          "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[32,36]},"
                          "\"extra\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[36,40]}}",
                          40, 1);
    double th[SMALL_N] = {0};
    bp_model m = small(8);
    char err[256] = "";
    const char *names[] = {"b"};
    CU_ASSERT_EQUAL(bp_safetensors_load_tensors(path, &m, th, names, 1, err, sizeof err), 0);
    CU_ASSERT_EQUAL(th[6], 7.0);
    CU_ASSERT_EQUAL(th[7], 8.0);
    CU_ASSERT_EQUAL(th[0], 0.0);
    CU_ASSERT_EQUAL(th[8], 0.0);
    const char *bad[] = {"nope"};
    CU_ASSERT_NOT_EQUAL(bp_safetensors_load_tensors(path, &m, th, bad, 1, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'nope' is not a parameter of model 'small'"));
    free(path);
}

void register_safetensors(void)
{
    CU_pSuite s = CU_add_suite("safetensors", NULL, NULL);
    CU_add_test(s, "round trip", test_round_trip);
    CU_add_test(s, "the bytes written", test_bytes);
    CU_add_test(s, "files from other writers", test_other_writers);
    CU_add_test(s, "bad JSON", test_bad_json);
    CU_add_test(s, "bad lengths", test_bad_lengths);
    CU_add_test(s, "bad layouts", test_bad_layout);
    CU_add_test(s, "wrong for the model", test_wrong_for_the_model);
    CU_add_test(s, "non-finite or out-of-range values", test_bad_values);
    CU_add_test(s, "every truncation and flipped byte", test_every_truncation_and_flip);
    CU_add_test(s, "load tensors", test_load_tensors);
}
