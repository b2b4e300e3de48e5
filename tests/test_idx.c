/* test_idx.c — the IDX reader (idx.c) and data sets held as float or as
 * bytes: small IDX files written here, plain and gzip-compressed (through
 * zlib), read back value for value; every damaged-file case with its exact
 * message (wrong magic, unsupported type, overflowing and lying
 * dimensions, truncation, damaged gzip streams, label counts that differ,
 * trailing data); and every data-set function on byte and float storage
 * against the same data held as double. The real Fashion-MNIST files are
 * read when the package is installed (make test installs it). */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FASHION "/usr/share/datasets/fashion-mnist/"

/* An IDX header: type 0x08, dims[0..ndims), big-endian, into h; returns
 * its length. */
static size_t header(unsigned char *h, int ndims, const unsigned long *dims)
{
    h[0] = h[1] = 0;
    h[2] = 0x08;
    h[3] = (unsigned char)ndims;
    for (int k = 0; k < ndims; k++) {
        h[4 + 4 * k] = (unsigned char)(dims[k] >> 24);
        h[5 + 4 * k] = (unsigned char)(dims[k] >> 16);
        h[6 + 4 * k] = (unsigned char)(dims[k] >> 8);
        h[7 + 4 * k] = (unsigned char)dims[k];
    }
    return 4 + 4 * (size_t)ndims;
}

/* Writes bytes to TEST_TMP/name, gzip-compressed when gz; returns the
 * path (caller frees). */
static char *write_bytes(const char *name, const void *data, size_t len, int gz)
{
    char *path = test_tmp_path(name);
    if (gz) {
        gzFile f = gzopen(path, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(gzwrite(f, data, (unsigned)len), (int)len);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
        fclose(f);
    }
    return path;
}

/* 3 images of 2 x 2 pixels (0, 51, ..., 255 and so on), labels 2, 0, 1. */
static const unsigned char pixels[12] = {0, 51, 102, 255, 1, 2, 3, 4, 250, 0, 128, 17};
static const unsigned char labels[3] = {2, 0, 1};

/* The images (rows of them) and labels files; gz compresses both. */
static void sample_files(const char *tag, int gz, unsigned long rows,
                         unsigned long nlabels, char **images, char **labs)
{
    unsigned char buf[64];
    unsigned long dims[3] = {rows, 2, 2};
    size_t n = header(buf, 3, dims);
    memcpy(buf + n, pixels, rows * 4);
    char *name = test_format("%s-images.idx%s", tag, gz ? ".gz" : "");
    *images = write_bytes(name, buf, n + rows * 4, gz);
    free(name);
    unsigned long ldims[1] = {nlabels};
    n = header(buf, 1, ldims);
    memcpy(buf + n, labels, nlabels);
    name = test_format("%s-labels.idx%s", tag, gz ? ".gz" : "");
    *labs = write_bytes(name, buf, n + nlabels, gz);
    free(name);
}

/* Loading fails with exactly `want` (with PATH replaced by path). */
static int fails_with(const char *images, const char *labs, const bp_idx_options *o,
                      const char *want)
{
    bp_dataset d;
    char err[512] = "";
    int rc = bp_data_load_idx(&d, images, labs, o, err, sizeof err);
    int ok = rc < 0 && strcmp(err, want) == 0 && d.rows == 0 && !d.xb && !d.x;
    /* The status names the kind of failure (bp_status). */
    int kind = strstr(want, "cannot open") || strstr(want, "is a directory") ? BP_ERR_IO
               : strstr(want, " images but ")                              ? BP_ERR_MISMATCH
                                                                            : BP_ERR_FORMAT;
    ok = ok && rc == kind;
    if (!ok)
        fprintf(stderr, "\nrc %d\n  got  '%s'\n  want '%s'\n", rc, err, want);
    bp_data_free(&d);
    return ok;
}

static void check_sample(const bp_dataset *d)
{
    CU_ASSERT_EQUAL(d->rows, 3);
    CU_ASSERT_EQUAL(d->features, 4);
    CU_ASSERT_EQUAL(d->classes, 3);
    CU_ASSERT_EQUAL(d->targets, 3);
    for (size_t r = 0; r < 3; r++) {
        for (int j = 0; j < 4; j++)
            CU_ASSERT_DOUBLE_EQUAL(bp_data_value(d, r, j), pixels[r * 4 + (size_t)j] / 255.0,
                                   1e-7);
        CU_ASSERT_EQUAL(d->label[r], labels[r]);
        for (int c = 0; c < 3; c++)
            CU_ASSERT_EQUAL(d->y[r * 3 + (size_t)c], c == labels[r] ? 1.0 : 0.0);
    }
}

static void test_plain_and_gzip(void)
{
    for (int gz = 0; gz < 2; gz++) {
        char *images, *labs;
        sample_files("ok", gz, 3, 3, &images, &labs);
        bp_dataset d;
        char err[256] = "";
        CU_ASSERT_EQUAL_FATAL(bp_data_load_idx(&d, images, labs, NULL, err, sizeof err), 0);
        CU_ASSERT_EQUAL(d.storage, BP_STORE_BYTE);
        CU_ASSERT(d.xb && !d.x && !d.xf);
        CU_ASSERT(memcmp(d.xb, pixels, 12) == 0);   /* the bytes as they are */
        check_sample(&d);
        bp_data_free(&d);

        /* Stored as float and as double, raw or scaled. */
        bp_idx_options o = bp_idx_defaults();
        o.storage = BP_STORE_FLOAT;
        CU_ASSERT_EQUAL_FATAL(bp_data_load_idx(&d, images, labs, &o, err, sizeof err), 0);
        CU_ASSERT(d.xf && !d.x && !d.xb && d.xf[3] == 1.0f && d.xf[1] == (float)(51 / 255.0));
        check_sample(&d);
        bp_data_free(&d);
        o.storage = BP_STORE_DOUBLE;
        o.scaling = BP_IDX_RAW;
        CU_ASSERT_EQUAL_FATAL(bp_data_load_idx(&d, images, labs, &o, err, sizeof err), 0);
        CU_ASSERT(d.x && d.x[3] == 255 && d.x[11] == 17);
        bp_data_free(&d);

        /* Without labels: no classes. */
        CU_ASSERT_EQUAL_FATAL(bp_data_load_idx(&d, images, NULL, NULL, err, sizeof err), 0);
        CU_ASSERT(d.rows == 3 && d.classes == 0 && d.targets == 0 && !d.y && !d.label);
        bp_data_free(&d);
        free(images);
        free(labs);
    }
}

static void test_bad_headers(void)
{
    unsigned char buf[64] = {0};
    /* A zip file is not an IDX file. */
    memcpy(buf, "PK\x03\x04rest", 8);
    char *p = write_bytes("zip.idx", buf, 8, 0);
    char *want = test_format("%s: not an IDX file (it starts with 50 4B 03 04, not 00 00)", p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    /* The same inside gzip: the magic is checked after decompression. */
    p = write_bytes("zip.idx.gz", buf, 8, 1);
    want = test_format("%s: not an IDX file (it starts with 50 4B 03 04, not 00 00)", p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    /* Floats (type 0x0D) are not read. */
    unsigned long dims[2] = {1, 1};
    size_t n = header(buf, 2, dims);
    buf[2] = 0x0D;
    p = write_bytes("float.idx", buf, n + 4, 0);
    want = test_format("%s: IDX values of type 0x0D are not supported (only unsigned bytes, 0x08)",
                       p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    /* Too many dimensions, and none. */
    buf[2] = 0x08;
    buf[3] = 5;
    p = write_bytes("dims5.idx", buf, 40, 0);
    want = test_format("%s: IDX file with 5 dimensions (1 to 4 are supported)", p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    /* Empty, and a header cut short. */
    p = write_bytes("empty.idx", buf, 0, 0);
    want = test_format("%s: not an IDX file (it is empty)", p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    unsigned long d3[3] = {60000, 28, 28};
    n = header(buf, 3, d3);
    p = write_bytes("cut-header.idx.gz", buf, 10, 1);
    want = test_format("%s: truncated: the header ends after 10 of its 16 bytes", p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
}

static void test_sizes(void)
{
    unsigned char buf[64] = {0};
    /* 4294967295^3 overflows any size. */
    unsigned long huge[3] = {4294967295UL, 4294967295UL, 4294967295UL};
    size_t n = header(buf, 3, huge);
    char *p = write_bytes("overflow.idx", buf, n, 0);
    char *want = test_format("%s: dimensions too large: 4294967295 images of 4294967295 x "
                             "4294967295 bytes overflow",
                             p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    /* A header that promises a million images in a file of 10: truncated,
     * and memory grew only with the data read. */
    unsigned long many[3] = {1000000, 28, 28};
    n = header(buf, 3, many);
    p = write_bytes("lying.idx.gz", buf, n + 10, 1);
    want = test_format("%s: truncated: the header promises 1000000 images of 28 x 28 bytes "
                       "(784000000 bytes) but the file holds 10",
                       p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    /* Caps. */
    bp_idx_options o = bp_idx_defaults();
    o.max_rows = 1000;
    want = test_format("%s: 1000000 rows are more than 1000 (max_rows)", p);
    CU_ASSERT(fails_with(p, NULL, &o, want));
    free(want);
    free(p);
    /* No images at all. */
    unsigned long none[3] = {0, 28, 28};
    n = header(buf, 3, none);
    p = write_bytes("none.idx", buf, n, 0);
    want = test_format("%s: no data (the header promises 0 images of 28 x 28 bytes)", p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    /* Truncated plain file: 3 images promised, 2 and a bit there. */
    unsigned long three[3] = {3, 2, 2};
    n = header(buf, 3, three);
    p = write_bytes("short.idx", buf, n + 9, 0);
    want = test_format("%s: truncated: the header promises 3 images of 2 x 2 bytes (12 bytes) "
                       "but the file holds 9",
                       p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    /* More data than promised. */
    p = write_bytes("long.idx", buf, n + 13, 0);
    want = test_format("%s: more data than the header promises (3 images of 2 x 2 bytes)", p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
}

/* The gzip-compressed sample images file's bytes. */
static unsigned char *gz_sample(size_t *len)
{
    char *images, *labs;
    sample_files("gzraw", 1, 3, 3, &images, &labs);
    unsigned char *bytes = (unsigned char *)test_read_file(images, len);
    free(images);
    free(labs);
    return bytes;
}

static void test_damaged_gzip(void)
{
    size_t len;
    unsigned char *gz = gz_sample(&len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gz);
    CU_ASSERT_FATAL(len > 20 && gz[0] == 0x1f && gz[1] == 0x8b);
    unsigned char *bad = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);

    /* The CRC in the trailer is wrong. */
    memcpy(bad, gz, len);
    bad[len - 8] ^= 0xFF;
    char *p = write_bytes("crc.idx.gz", bad, len, 0);
    char *want = test_format("%s: damaged gzip stream (incorrect data check)", p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    /* An unknown compression method in the gzip header. */
    memcpy(bad, gz, len);
    bad[2] = 7;
    p = write_bytes("method.idx.gz", bad, len, 0);
    want = test_format("%s: damaged gzip stream (unknown compression method)", p);
    CU_ASSERT(fails_with(p, NULL, NULL, want));
    free(want);
    free(p);
    /* The stream cut in the middle of the compressed data. */
    p = write_bytes("cut.idx.gz", gz, len - 12, 0);
    bp_dataset d;
    char err[512] = "";
    CU_ASSERT(bp_data_load_idx(&d, p, NULL, NULL, err, sizeof err) != 0);
    CU_ASSERT(strncmp(err, p, strlen(p)) == 0 &&
              (strstr(err, ": truncated:") || strstr(err, ": damaged gzip stream")));
    CU_ASSERT(d.rows == 0 && !d.xb);
    free(p);
    /* Every single-byte change of the stream fails with a message or
     * (when the change is in a field zlib does not check, like the file
     * time) loads the right values; nothing crashes. */
    for (size_t i = 0; i < len; i++) {
        memcpy(bad, gz, len);
        bad[i] ^= 0x5A;
        p = write_bytes("flip.idx.gz", bad, len, 0);
        err[0] = '\0';
        int rc = bp_data_load_idx(&d, p, NULL, NULL, err, sizeof err);
        if (rc == 0) {
            CU_ASSERT(d.rows == 3 && memcmp(d.xb, pixels, 12) == 0);
        } else {
            CU_ASSERT(strncmp(err, p, strlen(p)) == 0 && d.rows == 0);
        }
        bp_data_free(&d);
        free(p);
    }
    free(bad);
    free(gz);
}

static void test_labels(void)
{
    char *images, *labs;
    /* 3 images, 2 labels. */
    sample_files("count", 1, 3, 2, &images, &labs);
    char *want = test_format("%s has 3 images but %s has 2 labels", images, labs);
    CU_ASSERT(fails_with(images, labs, NULL, want));
    free(want);
    free(labs);
    free(images);
    /* A label outside the classes asked for. */
    sample_files("range", 0, 3, 3, &images, &labs);
    bp_idx_options o = bp_idx_defaults();
    o.classes = 2;
    want = test_format("%s: label 2 (of image 0) is out of range: 2 classes (0 to 1)", labs);
    CU_ASSERT(fails_with(images, labs, &o, want));
    free(want);
    /* A labels file given for images, and images for labels. */
    want = test_format("%s: a labels file has one dimension, this one has 3", images);
    CU_ASSERT(fails_with(images, images, NULL, want));
    free(want);
    /* Missing files and folders. */
    char *missing = test_tmp_path("no-such.idx.gz");
    want = test_format("%s: cannot open: No such file or directory", missing);
    CU_ASSERT(fails_with(missing, labs, NULL, want));
    free(want);
    want = test_format("%s: cannot open: No such file or directory", missing);
    CU_ASSERT(fails_with(images, missing, NULL, want));
    free(want);
    CU_ASSERT(fails_with("tests", NULL, NULL, "tests: is a directory, not an IDX file"));
    free(missing);
    free(labs);
    free(images);
}

/* The same 40 x 3 data as double, float and bytes. */
static void three_ways(bp_dataset d[3])
{
    CU_ASSERT_EQUAL_FATAL(bp_data_create(&d[0], 40, 3, 0, 4, NULL, 0), 0);
    CU_ASSERT_EQUAL_FATAL(bp_data_create_stored(&d[1], 40, 3, 0, 4, BP_STORE_FLOAT, NULL, 0), 0);
    CU_ASSERT_EQUAL_FATAL(bp_data_create_stored(&d[2], 40, 3, 0, 4, BP_STORE_BYTE, NULL, 0), 0);
    for (int j = 0; j < 3; j++) {
        d[2].xb_scale[j] = 0.5;
        d[2].xb_shift[j] = (double)j;
    }
    for (size_t r = 0; r < 40; r++) {
        for (size_t j = 0; j < 3; j++) {
            unsigned char b = (unsigned char)((r * 37 + j * 11) % 256);
            d[2].xb[r * 3 + j] = b;
            d[0].x[r * 3 + j] = b * 0.5 + (double)j;
            d[1].xf[r * 3 + j] = (float)(b * 0.5 + (double)j);
        }
        for (int k = 0; k < 3; k++) {
            d[k].label[r] = (int)(r % 4);
            d[k].y[r * 4 + r % 4] = 1;
        }
    }
}

static int same_values(const bp_dataset *a, const bp_dataset *b, double tol)
{
    if (a->rows != b->rows || a->features != b->features)
        return 0;
    for (size_t r = 0; r < a->rows; r++) {
        for (int j = 0; j < a->features; j++)
            if (fabs(bp_data_value(a, r, j) - bp_data_value(b, r, j)) > tol)
                return 0;
        if (a->label[r] != b->label[r])
            return 0;
    }
    return 1;
}

static void test_storage(void)
{
    bp_dataset d[3];
    three_ways(d);
    char err[256] = "";
    for (int k = 1; k < 3; k++)
        CU_ASSERT(same_values(&d[0], &d[k], 0));

    /* Split, shuffle, subset and filter agree across storages and keep
     * theirs (bytes keep their map). */
    bp_dataset tr[3], te[3];
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL_FATAL(bp_data_split(&d[k], 0.25, 7, &tr[k], &te[k], err, sizeof err), 0);
        CU_ASSERT(tr[k].storage == d[k].storage && te[k].storage == d[k].storage);
        bp_rng r;
        bp_rng_seed(&r, 3);
        bp_data_shuffle(&tr[k], &r);
    }
    for (int k = 1; k < 3; k++) {
        CU_ASSERT(same_values(&tr[0], &tr[k], 0));
        CU_ASSERT(same_values(&te[0], &te[k], 0));
    }
    int keep[2] = {3, 1};
    bp_dataset f[3];
    for (int k = 0; k < 3; k++)
        CU_ASSERT_EQUAL_FATAL(bp_data_filter_labels(&f[k], &tr[k], keep, 2, 1, err, sizeof err),
                              0);
    for (int k = 1; k < 3; k++)
        CU_ASSERT(same_values(&f[0], &f[k], 0));

    /* Standardisation fitted on each: bytes keep their bytes and fold it
     * into the map. */
    bp_standardizer s[3];
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL_FATAL(bp_standardize_fit(&s[k], &tr[k], err, sizeof err), 0);
        CU_ASSERT_EQUAL(bp_standardize_apply(&s[k], &tr[k], err, sizeof err), 0);
        CU_ASSERT_EQUAL(bp_standardize_apply(&s[k], &te[k], err, sizeof err), 0);
    }
    CU_ASSERT(tr[2].xb && !tr[2].x && !tr[2].xf);
    CU_ASSERT(same_values(&tr[0], &tr[1], 1e-5));
    CU_ASSERT(same_values(&tr[0], &tr[2], 1e-12));
    CU_ASSERT(same_values(&te[0], &te[2], 1e-12));

    /* Batches in either precision. */
    size_t idx[3] = {5, 0, 7};
    float xf[3][9], yf[3][12];
    double xd[3][9];
    for (int k = 0; k < 3; k++) {
        bp_batch_fill(&te[k], idx, 3, 4, xf[k], yf[k]);
        bp_batch_fill(&te[k], idx, 3, 8, xd[k], NULL);
    }
    for (int i = 0; i < 9; i++) {
        CU_ASSERT_DOUBLE_EQUAL(xf[1][i], xf[0][i], 1e-5);
        CU_ASSERT_DOUBLE_EQUAL(xf[2][i], xf[0][i], 1e-5);
        CU_ASSERT_DOUBLE_EQUAL(xd[2][i], xd[0][i], 1e-12);
        CU_ASSERT_EQUAL(xd[0][i], bp_data_value(&te[0], idx[i / 3], i % 3));
    }
    CU_ASSERT(memcmp(yf[0], yf[2], sizeof yf[0]) == 0);

    /* Conversion: bytes to float and double, float to double; never to
     * bytes. */
    CU_ASSERT_EQUAL(bp_data_convert(&te[2], BP_STORE_FLOAT, err, sizeof err), 0);
    CU_ASSERT(te[2].storage == BP_STORE_FLOAT && te[2].xf && !te[2].xb && !te[2].xb_scale);
    CU_ASSERT(same_values(&te[0], &te[2], 1e-5));
    CU_ASSERT_EQUAL(bp_data_convert(&te[2], BP_STORE_DOUBLE, err, sizeof err), 0);
    CU_ASSERT(te[2].storage == BP_STORE_DOUBLE && te[2].x && !te[2].xf);
    CU_ASSERT(bp_data_convert(&te[2], BP_STORE_BYTE, err, sizeof err) != 0);
    CU_ASSERT_STRING_EQUAL(err, "bp_data_convert: converting to storage 2 is not supported "
                                "(only to BP_STORE_DOUBLE or BP_STORE_FLOAT)");
    CU_ASSERT(te[2].storage == BP_STORE_DOUBLE && te[2].x);

    for (int k = 0; k < 3; k++) {
        bp_standardize_free(&s[k]);
        bp_data_free(&d[k]);
        bp_data_free(&tr[k]);
        bp_data_free(&te[k]);
        bp_data_free(&f[k]);
    }
}

/* CSV straight into floats. */
static void test_csv_float(void)
{
    bp_csv_options o = bp_csv_defaults();
    o.storage = BP_STORE_FLOAT;
    bp_dataset d, e;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, "examples/iris/iris.csv", &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&e, "examples/iris/iris.csv", NULL, err, sizeof err),
                          0);
    CU_ASSERT(d.storage == BP_STORE_FLOAT && d.xf && !d.x && d.rows == 150);
    int same = 1;
    for (size_t i = 0; i < 150 * 4; i++)
        same &= d.xf[i] == (float)e.x[i];
    CU_ASSERT(same);
    bp_data_free(&d);
    bp_data_free(&e);
    o.storage = BP_STORE_BYTE;
    CU_ASSERT(bp_data_load_csv(&d, "examples/iris/iris.csv", &o, err, sizeof err) != 0);
    CU_ASSERT_STRING_EQUAL(err, "examples/iris/iris.csv: bad options (storage 2: expected "
                                "BP_STORE_DOUBLE or BP_STORE_FLOAT)");
}

static void test_fashion(void)
{
    FILE *probe = fopen(FASHION "t10k-images-idx3-ubyte.gz", "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(probe); /* make test installs the package */
    fclose(probe);
    bp_dataset d;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_data_load_idx(&d, FASHION "t10k-images-idx3-ubyte.gz",
                                           FASHION "t10k-labels-idx1-ubyte.gz", NULL, err,
                                           sizeof err),
                          0);
    CU_ASSERT(d.rows == 10000 && d.features == 784 && d.classes == 10);
    size_t count[10] = {0};
    double sum = 0;
    for (size_t r = 0; r < d.rows; r++) {
        count[d.label[r]]++;
        for (int j = 0; j < 784; j++)
            sum += bp_data_value(&d, r, j);
    }
    for (int c = 0; c < 10; c++)
        CU_ASSERT_EQUAL(count[c], 1000); /* the test set is balanced */
    /* The mean pixel of the test set, 0.2868 (published: 0.2860 for the
     * training set). */
    CU_ASSERT_DOUBLE_EQUAL(sum / (10000.0 * 784), 0.2868, 0.001);
    bp_data_free(&d);
}

void register_idx(void)
{
    CU_pSuite s = CU_add_suite("idx", NULL, NULL);
    CU_add_test(s, "IDX plain and gzip, every storage", test_plain_and_gzip);
    CU_add_test(s, "IDX bad headers: exact messages", test_bad_headers);
    CU_add_test(s, "IDX overflowing, lying, short, long sizes", test_sizes);
    CU_add_test(s, "IDX damaged gzip streams", test_damaged_gzip);
    CU_add_test(s, "IDX labels: counts, range, missing files", test_labels);
    CU_add_test(s, "float and byte storage agree with double", test_storage);
    CU_add_test(s, "CSV into floats", test_csv_float);
    CU_add_test(s, "Fashion-MNIST test set", test_fashion);
}
