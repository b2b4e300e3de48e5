/* test_status.c — the runtime's one error convention (bp.h, "Errors"):
 * each kind of failure returns its documented bp_status, with a message,
 * and bp_strerror names every code. The other suites check the messages
 * in detail; this one checks the codes, one or more paths per function
 * and per code (BP_ERR_NOMEM cannot be provoked portably and is checked
 * only for a size that overflows). */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bp_tensor_info params[] = {
    {"W", 2, {2, 3}, 6, 0, 0, 0}, {"b", 1, {2, 1}, 2, 6, 0, 0}};
static const bp_tensor_info params_other[] = {
    {"W", 2, {3, 2}, 6, 0, 0, 0}, {"b", 1, {2, 1}, 2, 6, 0, 0}};

static bp_model model(const char *name, const bp_tensor_info *p)
{
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = name;
    m.real_size = 8;
    m.num_params = 8;
    m.num_param_tensors = 2;
    m.params = p;
    return m;
}

static void test_strerror(void)
{
    CU_ASSERT_STRING_EQUAL(bp_strerror(BP_OK), "success");
    CU_ASSERT_STRING_EQUAL(bp_strerror(BP_ERR_ARG), "invalid argument");
    CU_ASSERT_STRING_EQUAL(bp_strerror(BP_ERR_IO), "I/O error");
    CU_ASSERT_STRING_EQUAL(bp_strerror(BP_ERR_FORMAT), "malformed file or data");
    CU_ASSERT_STRING_EQUAL(bp_strerror(BP_ERR_MISMATCH), "file or data does not fit the model");
    CU_ASSERT_STRING_EQUAL(bp_strerror(BP_ERR_NOMEM), "out of memory");
    CU_ASSERT_STRING_EQUAL(bp_strerror(BP_ERR_DIVERGED), "training diverged");
    CU_ASSERT_STRING_EQUAL(bp_strerror(-99), "unknown error");
    CU_ASSERT_STRING_EQUAL(bp_strerror(7), "unknown error");
    /* the earlier "0 or -1" convention still reads right */
    CU_ASSERT_EQUAL(BP_ERR_ARG, -1);
}

typedef int (*save_fn)(const char *, const bp_model *, const void *, char *, size_t);
typedef int (*load_fn)(const char *, const bp_model *, void *, char *, size_t);

/* The same paths through both weights formats. */
static void weights_codes(const char *ext, save_fn save, load_fn load)
{
    bp_model m = model("stat", params), other = model("stat", params_other);
    double th[8] = {1, 2, 3, 4, 5, 6, 7, 8}, back[8];
    char err[256] = "";
    char *path = test_format("%s/status.%s", TEST_TMP, ext);
    char *nodir = test_format("%s/no/such/dir/status.%s", TEST_TMP, ext);
    char *missing = test_format("%s/missing.%s", TEST_TMP, ext);

    CU_ASSERT_EQUAL(save(path, &m, th, err, sizeof err), BP_OK);
    CU_ASSERT_EQUAL(load(path, &m, back, err, sizeof err), BP_OK);
    /* ARG */
    CU_ASSERT_EQUAL(save(path, &m, NULL, err, sizeof err), BP_ERR_ARG);
    CU_ASSERT_EQUAL(load(path, NULL, back, err, sizeof err), BP_ERR_ARG);
    bp_model bad = m;
    bad.real_size = 3;
    CU_ASSERT_EQUAL(load(path, &bad, back, err, sizeof err), BP_ERR_ARG);
    /* IO */
    CU_ASSERT_EQUAL(save(nodir, &m, th, err, sizeof err), BP_ERR_IO);
    CU_ASSERT_EQUAL(load(missing, &m, back, err, sizeof err), BP_ERR_IO);
    CU_ASSERT_EQUAL(load(TEST_TMP, &m, back, err, sizeof err), BP_ERR_IO);
    /* MISMATCH: well formed, another shape */
    CU_ASSERT_EQUAL(load(path, &other, back, err, sizeof err), BP_ERR_MISMATCH);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "has shape [2, 3] in the file but [3, 2]"));
    /* FORMAT: the file cut short */
    size_t len = 0;
    char *bytes = test_read_file(path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, len - 3, f);
    fclose(f);
    CU_ASSERT_EQUAL(load(path, &m, back, err, sizeof err), BP_ERR_FORMAT);
    free(bytes);
    /* FORMAT: a NaN */
    th[2] = NAN;
    CU_ASSERT_EQUAL(save(path, &m, th, err, sizeof err), BP_OK);
    CU_ASSERT_EQUAL(load(path, &m, back, err, sizeof err), BP_ERR_FORMAT);
    free(missing);
    free(nodir);
    free(path);
}

static void test_weights(void)
{
    weights_codes("bin", bp_weights_save, bp_weights_load);
    /* another model's file */
    bp_model m = model("stat", params), renamed = model("renamed", params);
    double th[8] = {0}, back[8];
    char err[256];
    char *path = test_format("%s/status-name.bin", TEST_TMP);
    CU_ASSERT_EQUAL(bp_weights_save(path, &m, th, err, sizeof err), BP_OK);
    CU_ASSERT_EQUAL(bp_weights_load(path, &renamed, back, err, sizeof err), BP_ERR_MISMATCH);
    const char *unknown[] = {"nope"};
    CU_ASSERT_EQUAL(bp_weights_load_tensors(path, &m, back, unknown, 1, err, sizeof err),
                    BP_ERR_ARG);
    free(path);
}

static void test_safetensors(void)
{
    weights_codes("safetensors", bp_safetensors_save, bp_safetensors_load);
    char *path = test_format("%s/status-json.safetensors", TEST_TMP);
    FILE *f = fopen(path, "wb");
    const char header[] = "{\"W\":[]}";
    unsigned char len[8] = {sizeof header - 1, 0, 0, 0, 0, 0, 0, 0};
    fwrite(len, 1, 8, f);
    fwrite(header, 1, sizeof header - 1, f);
    fclose(f);
    bp_model m = model("stat", params);
    double back[8];
    char err[256];
    CU_ASSERT_EQUAL(bp_safetensors_load(path, &m, back, err, sizeof err), BP_ERR_FORMAT);
    const char *unknown[] = {"nope"};
    CU_ASSERT_EQUAL(bp_safetensors_load_tensors(path, &m, back, unknown, 1, err, sizeof err),
                    BP_ERR_ARG);
    free(path);
}

static void test_data(void)
{
    bp_dataset d = {0}, out = {0};
    char err[256];
    char *csv = test_format("%s/status.csv", TEST_TMP);
    char *missing = test_format("%s/missing.csv", TEST_TMP);
    CU_ASSERT_EQUAL(test_write_file(csv, "1,2,0\n3,x,1\n"), 0);
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, csv, NULL, err, sizeof err), BP_ERR_FORMAT);
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, missing, NULL, err, sizeof err), BP_ERR_IO);
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, TEST_TMP, NULL, err, sizeof err), BP_ERR_IO);
    CU_ASSERT_EQUAL(bp_data_load_csv(NULL, csv, NULL, err, sizeof err), BP_ERR_ARG);
    bp_csv_options o = bp_csv_defaults();
    o.label_column = -2;
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, csv, &o, err, sizeof err), BP_ERR_ARG);
    /* a NUL byte: not text */
    FILE *f = fopen(csv, "wb");
    fwrite("1,2,0\n3,\0,1\n", 1, 12, f);
    fclose(f);
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, csv, NULL, err, sizeof err), BP_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a text file (NUL byte)"));
    CU_ASSERT_EQUAL(test_write_file(csv, "1,2,0\n3,4,1\n"), 0);
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, csv, NULL, err, sizeof err), BP_OK);

    CU_ASSERT_EQUAL(bp_data_create(&out, 2, -1, 0, 0, err, sizeof err), BP_ERR_ARG);
    size_t idx[1] = {5};
    CU_ASSERT_EQUAL(bp_data_subset(&out, &d, idx, 1, err, sizeof err), BP_ERR_ARG);
    bp_dataset train = {0}, test = {0};
    CU_ASSERT_EQUAL(bp_data_split(&d, 1.5, 1, &train, &test, err, sizeof err), BP_ERR_ARG);

    /* MISMATCH: a model input of 3 values, 2 features */
    static const bp_tensor_info inputs[] = {{"x", 1, {3, 1}, 3, 0, 0, 0},
                                            {"y", 1, {2, 1}, 2, 0, 0, 0}};
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = "stat";
    m.real_size = 8;
    m.num_inputs = 2;
    m.inputs = inputs;
    CU_ASSERT_EQUAL(bp_batch_check(&m, &d, 0, 1, err, sizeof err), BP_ERR_MISMATCH);
    CU_ASSERT_EQUAL(bp_batch_check(&m, &d, 4, 1, err, sizeof err), BP_ERR_ARG);
    bp_data_free(&d);
    free(missing);
    free(csv);
}

void register_status(void)
{
    CU_pSuite s = CU_add_suite("status codes", NULL, NULL);
    CU_add_test(s, "bp_strerror", test_strerror);
    CU_add_test(s, "weights files", test_weights);
    CU_add_test(s, "safetensors files", test_safetensors);
    CU_add_test(s, "data", test_data);
}
