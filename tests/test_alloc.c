/* test_alloc.c — allocation failure. Every runtime function that
 * allocates, and bpgen itself, is run once to count its allocations (N),
 * then again for every k in 1..N with the k-th allocation failing
 * (tests/failalloc.h): once with only that one failing, once with every
 * allocation from the k-th on failing. Each time the call must fail with
 * a clear "out of memory" message, leave its outputs as the API promises
 * (zeroed data sets, theta and files untouched) and leak nothing: the
 * blocks it allocated are all freed again (counted by the wrappers; under
 * SANITIZE=1 LeakSanitizer checks the same at exit). */
#include "bp.h"
#include "failalloc.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* One call under test: returns its status, checks its own outputs, frees
 * what it made on success. */
typedef int (*alloc_call)(char *err, size_t err_size);

static bool says_out_of_memory(const char *err)
{
    return strstr(err, "out of memory") || strstr(err, strerror(ENOMEM));
}

/* Runs `call` for every failing allocation; returns N. */
static long every_failure(const char *what, alloc_call call)
{
    char err[512] = "";
    long live = failalloc_live();
    failalloc_start(0, false);
    int rc = call(err, sizeof err);
    long n = failalloc_stop();
    if (rc != 0)
        fprintf(stderr, "\n  %s: fails without allocation failure: %s\n", what, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT(n > 0);
    CU_ASSERT_EQUAL(failalloc_live(), live);
    for (int persistent = 0; persistent < 2; persistent++)
        for (long k = 1; k <= n; k++) {
            strcpy(err, "(no message)");
            live = failalloc_live();
            failalloc_start(k, persistent);
            rc = call(err, sizeof err);
            failalloc_stop();
            /* the status says so too: BP_ERR_NOMEM, or BP_ERR_IO for a
             * file that could not be opened for want of memory */
            bool clean = (rc == BP_ERR_NOMEM || (rc == BP_ERR_IO &&
                                                 strstr(err, strerror(ENOMEM)))) &&
                         says_out_of_memory(err) && failalloc_live() == live;
            if (!clean)
                fprintf(stderr, "\n  %s: allocation %ld of %ld failing%s: "
                        "status %d, %ld blocks leaked, message: %s\n", what,
                        k, n, persistent ? " (and all after it)" : "", rc,
                        failalloc_live() - live, err);
            CU_ASSERT(clean);
        }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Data */

static char *small_csv, *wide_csv;

static int write_csvs(void)
{
    small_csv = test_tmp_path("alloc_small.csv");
    wide_csv = test_tmp_path("alloc_wide.csv");
    FILE *f = fopen(small_csv, "w");
    FILE *g = fopen(wide_csv, "w");
    if (!f || !g)
        return -1;
    fputs("a,b,c,label\n", f);
    for (int r = 0; r < 20; r++)
        fprintf(f, "%d.5,%d,%d,%d\n", r, r * 2 % 7, r % 5, r % 3);
    /* more than the first guess of columns (64) and rows (256), so the
     * reader's buffers grow */
    for (int r = 0; r < 300; r++)
        for (int c = 0; c <= 70; c++)
            fprintf(g, c < 70 ? "%d," : "%d\n", c < 70 ? (r + c) % 17 : r % 4);
    int bad = fclose(f) != 0;
    bad |= fclose(g) != 0;
    return bad ? -1 : 0;
}

static int free_csvs(void)
{
    remove(small_csv);
    remove(wide_csv);
    free(small_csv);
    free(wide_csv);
    return 0;
}

static bool zeroed(const bp_dataset *d)
{
    return !d->rows && !d->features && !d->targets && !d->classes && !d->x &&
           !d->y && !d->label;
}

static int load(const char *path, char *err, size_t size)
{
    bp_dataset d;
    memset(&d, 0xAB, sizeof d);   /* not owned: the loader must overwrite */
    int rc = bp_data_load_csv(&d, path, NULL, err, size);
    if (rc != 0) {
        CU_ASSERT(zeroed(&d));
        return rc;
    }
    CU_ASSERT(d.rows > 0);
    bp_data_free(&d);
    return 0;
}

static int load_small(char *err, size_t size) { return load(small_csv, err, size); }
static int load_wide(char *err, size_t size) { return load(wide_csv, err, size); }

static void test_csv(void)
{
    every_failure("bp_data_load_csv (20 rows)", load_small);
    long n = every_failure("bp_data_load_csv (300 rows, 71 columns)", load_wide);
    CU_ASSERT(n >= 6);   /* the buffers really grew */
}

static int create(char *err, size_t size)
{
    bp_dataset d;
    int rc = bp_data_create(&d, 10, 3, 0, 4, err, size);
    if (rc != 0) {
        CU_ASSERT(zeroed(&d));
        return rc;
    }
    bp_data_free(&d);
    return 0;
}

/* A source data set, made outside the failing window. */
static bp_dataset source;

static int make_source(void)
{
    if (bp_data_create(&source, 12, 2, 0, 3, NULL, 0) != 0)
        return -1;
    for (size_t r = 0; r < source.rows; r++) {
        source.x[2 * r] = (double)r;
        source.x[2 * r + 1] = (double)(r % 5);
        source.label[r] = (int)(r % 3);
        source.y[3 * r + r % 3] = 1;
    }
    return 0;
}

static int subset(char *err, size_t size)
{
    static const size_t idx[4] = {3, 1, 3, 7};
    bp_dataset d;
    int rc = bp_data_subset(&d, &source, idx, 4, err, size);
    if (rc != 0) {
        CU_ASSERT(zeroed(&d));
        return rc;
    }
    CU_ASSERT_EQUAL(d.rows, 4);
    bp_data_free(&d);
    return 0;
}

static int filter(char *err, size_t size)
{
    static const int labels[2] = {2, 0};
    bp_dataset d;
    int rc = bp_data_filter_labels(&d, &source, labels, 2, 1, err, size);
    if (rc != 0) {
        CU_ASSERT(zeroed(&d));
        return rc;
    }
    CU_ASSERT_EQUAL(d.rows, 8);
    bp_data_free(&d);
    return 0;
}

static int split(char *err, size_t size)
{
    bp_dataset train, test;
    int rc = bp_data_split(&source, 0.25, 3, &train, &test, err, size);
    if (rc != 0) {
        CU_ASSERT(zeroed(&train) && zeroed(&test));
        return rc;
    }
    CU_ASSERT_EQUAL(train.rows + test.rows, source.rows);
    bp_data_free(&train);
    bp_data_free(&test);
    return 0;
}

static int standardize(char *err, size_t size)
{
    bp_standardizer s;
    int rc = bp_standardize_fit(&s, &source, err, size);
    if (rc != 0) {
        CU_ASSERT(!s.mean && !s.std);
        return rc;
    }
    CU_ASSERT_EQUAL(s.features, 2);
    bp_standardize_free(&s);
    return 0;
}

static void test_data_sets(void)
{
    CU_ASSERT_EQUAL_FATAL(make_source(), 0);
    every_failure("bp_data_create", create);
    every_failure("bp_data_subset", subset);
    every_failure("bp_data_filter_labels", filter);
    every_failure("bp_data_split", split);
    every_failure("bp_standardize_fit", standardize);
    bp_data_free(&source);
}

/* ------------------------------------------------------------------------ */
/* IDX files: a small pair compressed with gzip, and a plain images file of
 * more than the reader's first buffer (4 MiB), so that the buffer grows. */

static char *idx_images_gz, *idx_labels_gz, *idx_images_big, *idx_labels_big;

enum { IDX_BIG_ROWS = 5500, IDX_SIDE = 28 };

/* An IDX file of unsigned bytes: dims[0..ndims), then count values
 * value(i) = (i * 7 + 3) % modulo; gzip-compressed when gz. */
static char *write_idx(const char *name, int ndims, const unsigned long *dims, int modulo,
                       int gz)
{
    char *path = test_tmp_path(name);
    size_t count = 1;
    unsigned char h[4 + 4 * 3] = {0, 0, 0x08, (unsigned char)ndims};
    for (int k = 0; k < ndims; k++) {
        count *= dims[k];
        for (int b = 0; b < 4; b++)
            h[4 + 4 * k + b] = (unsigned char)(dims[k] >> (24 - 8 * b));
    }
    unsigned char *data = malloc(count);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    for (size_t i = 0; i < count; i++)
        data[i] = (unsigned char)((i * 7 + 3) % (size_t)modulo);
    int ok;
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ok = f && gzwrite(f, h, 4 + 4 * (unsigned)ndims) == 4 + 4 * ndims &&
             gzwrite(f, data, (unsigned)count) == (int)count;
        ok = (f && gzclose(f) == Z_OK) && ok;
    } else {
        FILE *f = fopen(path, "wb");
        ok = f && fwrite(h, 1, 4 + 4 * (size_t)ndims, f) == 4 + 4 * (size_t)ndims &&
             fwrite(data, 1, count, f) == count;
        ok = (f && fclose(f) == 0) && ok;
    }
    free(data);
    CU_ASSERT_FATAL(ok);
    return path;
}

static int idx_load(const char *images, const char *labels, bp_storage storage,
                    size_t want_rows, char *err, size_t size)
{
    bp_dataset d;
    memset(&d, 0xAB, sizeof d);   /* not owned: the loader must overwrite */
    bp_idx_options o = bp_idx_defaults();
    o.storage = storage;
    int rc = bp_data_load_idx(&d, images, labels, &o, err, size);
    if (rc != 0) {
        CU_ASSERT(zeroed(&d));
        /* the message names the file it was reading */
        if (!(strstr(err, images) || (labels && strstr(err, labels))))
            fprintf(stderr, "\n  bp_data_load_idx: the message does not name the file: %s\n", err);
        CU_ASSERT(strstr(err, images) || (labels && strstr(err, labels)));
        return rc;
    }
    CU_ASSERT_EQUAL(d.rows, want_rows);
    CU_ASSERT_EQUAL(d.classes, labels ? 10 : 0);
    bp_data_free(&d);
    return 0;
}

static int idx_gz_bytes(char *err, size_t size)
{
    return idx_load(idx_images_gz, idx_labels_gz, BP_STORE_BYTE, 30, err, size);
}

static int idx_gz_float(char *err, size_t size)
{
    return idx_load(idx_images_gz, idx_labels_gz, BP_STORE_FLOAT, 30, err, size);
}

static int idx_gz_double(char *err, size_t size)
{
    return idx_load(idx_images_gz, idx_labels_gz, BP_STORE_DOUBLE, 30, err, size);
}

static int idx_gz_no_labels(char *err, size_t size)
{
    return idx_load(idx_images_gz, NULL, BP_STORE_FLOAT, 30, err, size);
}

static int idx_big(char *err, size_t size)
{
    return idx_load(idx_images_big, idx_labels_big, BP_STORE_BYTE, IDX_BIG_ROWS, err, size);
}

static void test_idx(void)
{
    unsigned long small[3] = {30, 4, 4}, small_labels[1] = {30};
    unsigned long big[3] = {IDX_BIG_ROWS, IDX_SIDE, IDX_SIDE}, big_labels[1] = {IDX_BIG_ROWS};
    idx_images_gz = write_idx("alloc_images.idx.gz", 3, small, 256, 1);
    idx_labels_gz = write_idx("alloc_labels.idx.gz", 1, small_labels, 10, 1);
    idx_images_big = write_idx("alloc_images_big.idx", 3, big, 256, 0);
    idx_labels_big = write_idx("alloc_labels_big.idx", 1, big_labels, 10, 0);

    every_failure("bp_data_load_idx (gzip, bytes)", idx_gz_bytes);
    every_failure("bp_data_load_idx (gzip, float)", idx_gz_float);
    every_failure("bp_data_load_idx (gzip, double)", idx_gz_double);
    every_failure("bp_data_load_idx (gzip, images only)", idx_gz_no_labels);
    /* the images' buffer grows past its first 4 MiB: one more allocation */
    long n_big = every_failure("bp_data_load_idx (4.3 MB of pixels)", idx_big);
    failalloc_start(0, false);
    char err[512];
    CU_ASSERT_EQUAL(idx_gz_bytes(err, sizeof err), 0);
    long n_small = failalloc_stop();
    CU_ASSERT(n_big > n_small);

    char *paths[4] = {idx_images_gz, idx_labels_gz, idx_images_big, idx_labels_big};
    for (int i = 0; i < 4; i++) {
        remove(paths[i]);
        free(paths[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* A model written by hand: out = W·x + b, W[2,2], b[2], loss the mean of
 * 0.5 |out - y|^2; double precision; workspace: the residuals. */

static bp_tensor_info tensor(const char *name, int rank, int d0, int d1,
                             size_t offset)
{
    bp_tensor_info t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.rank = rank;
    for (size_t k = 0; k < sizeof t.dims / sizeof t.dims[0]; k++)
        t.dims[k] = 1;
    if (rank >= 1)
        t.dims[0] = d0;
    if (rank >= 2)
        t.dims[1] = d1;
    t.size = (size_t)d0 * (size_t)d1;
    t.offset = offset;
    return t;
}

static void lin_out(const double *th, const double *x, double *out)
{
    for (int i = 0; i < 2; i++)
        out[i] = th[2 * i] * x[0] + th[2 * i + 1] * x[1] + th[4 + i];
}

static size_t lin_ws(int n)
{
    return (size_t)(n > 0 ? n : 0) * 2 * sizeof(double);
}

static double lin_forward(const void *theta, const void *const in[], int n,
                          void *ws)
{
    const double *th = theta, *x = in[0], *y = in[1];
    double *res = ws, loss = 0;
    for (int s = 0; s < n; s++) {
        double out[2];
        lin_out(th, x + 2 * s, out);
        for (int i = 0; i < 2; i++) {
            res[2 * s + i] = out[i] - y[2 * s + i];
            loss += 0.5 * res[2 * s + i] * res[2 * s + i];
        }
    }
    return loss / n;
}

static void lin_backward(const void *theta, const void *const in[], int n,
                         void *ws, void *grad, void *const grad_in[])
{
    const double *th = theta, *x = in[0], *res = ws;
    double *g = grad;
    double *gx = grad_in && grad_in[0] ? grad_in[0] : NULL;
    memset(g, 0, 6 * sizeof *g);
    for (int s = 0; s < n; s++)
        for (int i = 0; i < 2; i++) {
            double r = res[2 * s + i] / n;
            g[2 * i] += r * x[2 * s];
            g[2 * i + 1] += r * x[2 * s + 1];
            g[4 + i] += r;
        }
    /* per-sample gradient of the batch-mean loss with respect to x */
    for (int s = 0; gx && s < n; s++)
        for (int j = 0; j < 2; j++)
            gx[2 * s + j] = (res[2 * s] * th[j] + res[2 * s + 1] * th[2 + j]) / n;
}

static void lin_predict(const void *theta, const void *const in[], int n,
                        void *ws, void *const out[])
{
    (void)ws;
    for (int s = 0; s < n; s++)
        lin_out(theta, (const double *)in[0] + 2 * s, (double *)out[0] + 2 * s);
}

static bp_tensor_info lin_params[2], lin_inputs[2], lin_outputs[1];
static bp_model lin;
static double lin_theta[6] = {0.5, -0.25, 0.125, 1, 0, 0.5};

static void make_model(void)
{
    lin_params[0] = tensor("W", 2, 2, 2, 0);
    lin_params[1] = tensor("b", 1, 2, 1, 4);
    lin_inputs[0] = tensor("x", 1, 2, 1, 0);
    lin_inputs[1] = tensor("y", 1, 2, 1, 0);
    lin_outputs[0] = tensor("out", 1, 2, 1, 0);
    memset(&lin, 0, sizeof lin);
    lin.abi_version = BP_ABI_VERSION;
    lin.name = "alloc_lin";
    lin.real_size = 8;
    lin.num_params = 6;
    lin.num_param_tensors = 2;
    lin.params = lin_params;
    lin.num_inputs = 2;
    lin.inputs = lin_inputs;
    lin.num_outputs = 1;
    lin.outputs = lin_outputs;
    lin.loss_name = "L";
    lin.workspace_size = lin_ws;
    lin.forward = lin_forward;
    lin.backward = lin_backward;
    lin.predict = lin_predict;
}

static bp_dataset two_class;

static int make_two_class(void)
{
    if (bp_data_create(&two_class, 10, 2, 0, 2, NULL, 0) != 0)
        return -1;
    for (size_t r = 0; r < two_class.rows; r++) {
        int c = (int)(r % 2);
        two_class.x[2 * r] = c ? 1.0 + 0.1 * (double)r : -1.0;
        two_class.x[2 * r + 1] = 0.5;
        two_class.label[r] = c;
        two_class.y[2 * r + (size_t)c] = 1;
    }
    return 0;
}

static bp_train_config quiet(void)
{
    bp_train_config c = bp_train_defaults();
    c.epochs = 2;
    c.batch_size = 4;
    c.verbose = 0;
    return c;
}

static int train(char *err, size_t size)
{
    double theta[6];
    memcpy(theta, lin_theta, sizeof theta);
    bp_train_config c = quiet();
    int rc = bp_train(&lin, theta, &two_class, &two_class, &c, NULL, err, size);
    if (rc != 0)
        CU_ASSERT(memcmp(theta, lin_theta, sizeof theta) == 0);
    return rc;
}

static int evaluate(char *err, size_t size)
{
    double loss = -1, acc = -1;
    bp_train_config c = quiet();
    int rc = bp_evaluate(&lin, lin_theta, &two_class, &c, &loss, &acc, err, size);
    if (rc == 0)
        CU_ASSERT(isfinite(loss) && acc >= 0 && acc <= 1);
    return rc;
}

static int predict(char *err, size_t size)
{
    int pred[10];
    bp_train_config c = quiet();
    return bp_predict_argmax(&lin, lin_theta, &two_class, &c, pred, err, size);
}

/* bp_gradcheck reports failure as a status (BP_ERR_NOMEM for memory) and
 * its message in `where`. */
static int gradcheck(char *err, size_t size)
{
    double x[4] = {1, 2, -1, 0.5}, y[4] = {0, 1, 1, 0};
    const void *in[2] = {x, y};
    char where[128] = "";
    double worst = -1;
    int rc = bp_gradcheck(&lin, lin_theta, in, 2, 0, &worst, where, sizeof where);
    if (rc != 0) {
        snprintf(err, size, "%s", where);   /* where is its err */
        return rc;
    }
    if (!(worst < 1e-6))
        fprintf(stderr, "\n  gradcheck: %g at %s\n", worst, where);
    CU_ASSERT(worst < 1e-6);
    return 0;
}

static void test_training(void)
{
    make_model();
    CU_ASSERT_EQUAL_FATAL(make_two_class(), 0);
    every_failure("bp_train", train);
    every_failure("bp_evaluate", evaluate);
    every_failure("bp_predict_argmax", predict);
    /* with an input in wrt, gradcheck copies it too */
    every_failure("bp_gradcheck", gradcheck);
    lin_inputs[0].wrt = 1;
    every_failure("bp_gradcheck (wrt x)", gradcheck);
    lin_inputs[0].wrt = 0;
    bp_data_free(&two_class);
}

/* ------------------------------------------------------------------------ */
/* Weights */

static char *weights_path;

/* The format under test: weights, then safetensors. */
static int (*save_fn)(const char *, const bp_model *, const void *, char *, size_t) =
    bp_weights_save;
static int (*load_fn)(const char *, const bp_model *, void *, char *, size_t) =
    bp_weights_load;
static int (*load_some_fn)(const char *, const bp_model *, void *, const char *const[],
                           int, char *, size_t) = bp_weights_load_tensors;

static int save(char *err, size_t size)
{
    size_t before_len = 0, len = 0;
    failalloc_hold(true);   /* the test's own reading is not under test */
    char *before = test_read_file(weights_path, &before_len);
    failalloc_hold(false);
    int rc = save_fn(weights_path, &lin, lin_theta, err, size);
    failalloc_hold(true);
    char *now = test_read_file(weights_path, &len);
    failalloc_hold(false);
    /* a failed save leaves the old file intact */
    if (rc != 0)
        CU_ASSERT(before && now && len == before_len &&
                  memcmp(now, before, len) == 0);
    free(before);
    free(now);
    return rc;
}

static int load_weights(char *err, size_t size)
{
    double theta[6] = {9, 9, 9, 9, 9, 9};
    int rc = load_fn(weights_path, &lin, theta, err, size);
    if (rc != 0) {
        for (int i = 0; i < 6; i++)
            CU_ASSERT_EQUAL(theta[i], 9);
    } else {
        CU_ASSERT(memcmp(theta, lin_theta, sizeof theta) == 0);
    }
    return rc;
}

static int load_one(char *err, size_t size)
{
    static const char *const names[1] = {"b"};
    double theta[6] = {9, 9, 9, 9, 9, 9};
    int rc = load_some_fn(weights_path, &lin, theta, names, 1, err, size);
    if (rc != 0)
        CU_ASSERT_EQUAL(theta[4], 9);
    return rc;
}

/* Files in TEST_TMP whose names start with `prefix`. */
static int count_files(const char *prefix)
{
    DIR *dir = opendir(TEST_TMP);
    if (!dir)
        return -1;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(dir)))
        n += strncmp(ent->d_name, prefix, strlen(prefix)) == 0;
    closedir(dir);
    return n;
}

static void weights_format(const char *file, const char *what)
{
    make_model();
    weights_path = test_tmp_path(file);
    char err[256];
    double other[6] = {1, 2, 3, 4, 5, 6};
    CU_ASSERT_EQUAL_FATAL(save_fn(weights_path, &lin, other, err, sizeof err), 0);
    char *name = test_format("%s save", what);
    every_failure(name, save);
    CU_ASSERT_EQUAL(count_files(file), 1);   /* no temporary left */
    free(name);
    CU_ASSERT_EQUAL(save_fn(weights_path, &lin, lin_theta, err, sizeof err), 0);
    name = test_format("%s load", what);
    every_failure(name, load_weights);
    free(name);
    name = test_format("%s load of one tensor", what);
    every_failure(name, load_one);
    free(name);
    remove(weights_path);
    free(weights_path);
}

static void test_weights(void)
{
    weights_format("alloc.weights", "bp_weights");
    save_fn = bp_safetensors_save;
    load_fn = bp_safetensors_load;
    load_some_fn = bp_safetensors_load_tensors;
    weights_format("alloc.safetensors", "bp_safetensors");
    save_fn = bp_weights_save;
    load_fn = bp_weights_load;
    load_some_fn = bp_weights_load_tensors;
}

/* ------------------------------------------------------------------------ */
/* bpgen: a compiler whose allocations fail exits with status 2 and "bpgen:
 * out of memory", leaves the old output as it was and no temporary file. */

static const char *alloc_model =
    "# a small model with most of what the pipeline handles\n"
    "input x[3]\ninput y[2]\n"
    "param W[2, 3] = normal(0, 0.5)\nparam b[2]\n"
    "h = tanh(W · x + b)\np = softmax(h)\noutput p\n"
    "loss L = cross_entropy(p, y)\n";

static void bpgen_every_failure(const char *name, const char *source,
                                const char *args, bool writes)
{
    char *model = test_format("%s/%s.net", TEST_TMP, name);
    char *out_c = test_format("%s/%s_out.c", TEST_TMP, name);
    char *out_h = test_format("%s/%s_out.h", TEST_TMP, name);
    char *c_temps = test_format("%s_out.c.tmp", name);
    char *h_temps = test_format("%s_out.h.tmp", name);
    CU_ASSERT_EQUAL_FATAL(test_write_file(model, source), 0);
    char *cmd = test_format("FAILALLOC=0 FAILALLOC_REPORT=1 %s %s %s %s",
                            TEST_BPGEN_FAILALLOC, model, args, writes ? "-o" : "");
    char *full = test_format("%s %s", cmd, writes ? out_c : "");
    char *err = NULL;
    int expect = strstr(args, "--check") && strstr(source, "oops") ? 1 : 0;
    CU_ASSERT_EQUAL(test_run(full, NULL, &err), expect);
    long n = 0;
    const char *count = err ? strstr(err, "failalloc: ") : NULL;
    if (count)
        n = atol(count + strlen("failalloc: "));
    CU_ASSERT(n > 0);
    free(err);
    for (long k = 1; k <= n; k++) {
        test_write_file(out_c, "/* precious */\n");
        remove(out_h);
        int temps = count_files(c_temps) + count_files(h_temps);
        char *run = test_format("FAILALLOC=%ld %s %s %s %s", k, TEST_BPGEN_FAILALLOC,
                                model, args, writes ? "-o" : "");
        char *run_full = test_format("%s %s", run, writes ? out_c : "");
        int rc = test_run(run_full, NULL, &err);
        char *kept = test_read_file(out_c, NULL);
        struct stat st;
        bool clean = rc == 2 && err &&
                     (strstr(err, "bpgen: out of memory") ||
                      strstr(err, strerror(ENOMEM))) &&
                     !strstr(err, "internal error") && kept &&
                     strcmp(kept, "/* precious */\n") == 0 &&
                     stat(out_h, &st) != 0 &&
                     count_files(c_temps) + count_files(h_temps) == temps;
        if (!clean)
            fprintf(stderr, "\n  bpgen %s %s: allocation %ld of %ld failing: "
                    "status %d, stderr: %s\n", name, args, k, n, rc, err ? err : "");
        CU_ASSERT(clean);
        free(kept);
        free(err);
        free(run_full);
        free(run);
    }
    remove(out_c);
    remove(out_h);
    remove(model);
    free(full);
    free(cmd);
    free(h_temps);
    free(c_temps);
    free(out_h);
    free(out_c);
    free(model);
}

static void test_compiler(void)
{
    bpgen_every_failure("alloc_code", alloc_model, "--main", true);
    bpgen_every_failure("alloc_double", alloc_model, "--precision=double", true);
    bpgen_every_failure("alloc_derivatives", alloc_model, "--derivatives", false);
    bpgen_every_failure("alloc_errors",
                        "input x[2]\nparam w[3]\nloss L = sum(w * x) + oops\n",
                        "--check", false);
}

void register_alloc(void)
{
    CU_pSuite s = CU_add_suite("allocation failure", write_csvs, free_csvs);
    CU_add_test(s, "CSV loading", test_csv);
    CU_add_test(s, "data sets: create, subset, filter, split, standardise", test_data_sets);
    CU_add_test(s, "IDX loading: gzip, bytes, float, double, a growing buffer", test_idx);
    CU_add_test(s, "training, evaluation, prediction, gradient check", test_training);
    CU_add_test(s, "weights and safetensors: save keeps the old file, load keeps theta",
                test_weights);
    CU_add_test(s, "bpgen: out of memory, no output, no temporary file", test_compiler);
}
