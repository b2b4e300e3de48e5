/* test_data.c — the data-set runtime (data.c): CSV loading with and
 * without headers, column selection, one-hot and numeric labels, every
 * malformed-file case with its exact message, standardisation fitted on
 * the training split only, seeded splitting and shuffling, filtering by
 * label, and mini-batch assembly. Files are written to TEST_TMP; the real
 * data sets are read from examples/ (tests run from the repository root). */
#include "bp.h"
#include "internal.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes `text` to TEST_TMP/name; returns the path (caller frees). */
static char *csv_file(const char *name, const char *text)
{
    char *path = test_tmp_path(name);
    if (test_write_file(path, text) != 0)
        CU_FAIL("cannot write a test file");
    return path;
}

/* Loads `text` (as TEST_TMP/name) with options o; expects failure with
 * exactly "PATH" + want as the message. */
static int load_fails(const char *name, const char *text,
                      const bp_csv_options *o, const char *want)
{
    char *path = csv_file(name, text);
    bp_dataset d;
    char err[512] = "";
    int rc = bp_data_load_csv(&d, path, o, err, sizeof err);
    char *full = test_format("%s%s", path, want);
    int ok = rc != 0 && strcmp(err, full) == 0 && d.rows == 0 && !d.x;
    if (!ok)
        fprintf(stderr, "\n%s: rc %d\n  got  '%s'\n  want '%s'\n", name, rc,
                err, full);
    free(full);
    free(path);
    return ok;
}

static void test_iris(void)
{
    bp_dataset d;
    char err[256] = "";
    int rc = bp_data_load_csv(&d, "examples/iris/iris.csv", NULL, err,
                              sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    /* The first line, 150,4,setosa,..., is taken for a header. */
    CU_ASSERT_EQUAL(d.rows, 150);
    CU_ASSERT_EQUAL(d.features, 4);
    CU_ASSERT_EQUAL(d.classes, 3);
    CU_ASSERT_EQUAL(d.targets, 3);
    CU_ASSERT_DOUBLE_EQUAL(d.x[0], 5.1, 0);
    CU_ASSERT_DOUBLE_EQUAL(d.x[3], 0.2, 0);
    CU_ASSERT_EQUAL(d.label[0], 0);
    CU_ASSERT_EQUAL(d.label[149], 2);
    CU_ASSERT(d.y[0] == 1 && d.y[1] == 0 && d.y[2] == 0);
    CU_ASSERT(d.y[149 * 3 + 2] == 1);
    int count[3] = {0, 0, 0};
    for (size_t r = 0; r < d.rows; r++)
        count[d.label[r]]++;
    CU_ASSERT(count[0] == 50 && count[1] == 50 && count[2] == 50);
    bp_data_free(&d);
    bp_data_free(&d); /* twice is harmless */

    /* Skipping the line explicitly, with no header, gives the same. */
    bp_csv_options o = bp_csv_defaults();
    o.skip_lines = 1;
    o.header = BP_HEADER_NONE;
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, "examples/iris/iris.csv", &o,
                                           err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 150);
    bp_data_free(&d);
}

static void test_digits(void)
{
    bp_dataset d;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, "examples/digits/digits.csv",
                                           NULL, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 1797);
    CU_ASSERT_EQUAL(d.features, 64);
    CU_ASSERT_EQUAL(d.classes, 10);
    CU_ASSERT_EQUAL(d.label[0], 0);
    CU_ASSERT_DOUBLE_EQUAL(d.x[2], 5, 0);
    /* Fine-tuning subsets: digits 0-4, then 5-9, keep 10 classes. */
    int lo[] = {0, 1, 2, 3, 4}, hi[] = {5, 6, 7, 8, 9};
    bp_dataset a, b;
    CU_ASSERT_EQUAL_FATAL(bp_data_filter_labels(&a, &d, lo, 5, 0, err,
                                                sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(bp_data_filter_labels(&b, &d, hi, 5, 0, err,
                                                sizeof err), 0);
    CU_ASSERT_EQUAL(a.rows + b.rows, d.rows);
    CU_ASSERT_EQUAL(a.classes, 10);
    CU_ASSERT_EQUAL(b.targets, 10);
    int bad = 0;
    for (size_t r = 0; r < a.rows; r++)
        bad += a.label[r] > 4 || a.y[r * 10 + (size_t)a.label[r]] != 1;
    for (size_t r = 0; r < b.rows; r++)
        bad += b.label[r] < 5 || b.y[r * 10 + (size_t)b.label[r]] != 1;
    CU_ASSERT_EQUAL(bad, 0);
    bp_data_free(&a);
    bp_data_free(&b);
    bp_data_free(&d);
}

static void test_headers(void)
{
    const char *text = "a, b ,label\n1,2,0\n3,4,1\n";
    char *path = csv_file("h.csv", text);
    bp_dataset d;
    char err[256] = "";
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, path, NULL, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 2);
    CU_ASSERT_EQUAL(d.classes, 2);
    CU_ASSERT_DOUBLE_EQUAL(d.x[2], 3, 0);
    bp_data_free(&d);
    bp_csv_options o = bp_csv_defaults();
    o.header = BP_HEADER_PRESENT;
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 2);
    bp_data_free(&d);
    free(path);

    /* A numeric first line: auto keeps it, "present" drops it. */
    path = csv_file("nh.csv", "1,2,0\n3,4,1\n5,6,2");
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, path, NULL, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 3);
    CU_ASSERT_EQUAL(d.classes, 3);
    CU_ASSERT_DOUBLE_EQUAL(d.x[5], 6, 0); /* no final newline is fine */
    bp_data_free(&d);
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 2);
    bp_data_free(&d);
    free(path);

    o = bp_csv_defaults();
    o.header = BP_HEADER_NONE;
    CU_ASSERT(load_fails("hn.csv", text, &o,
                         ":1:1: expected a number, found 'a'"));
}

static void test_format_details(void)
{
    /* BOM, CRLF, blank lines, blanks around values, quoted fields. */
    char *path = csv_file("fmt.csv",
                          "\xEF\xBB\xBF x , \"y, quoted\" ,c\r\n"
                          "\r\n"
                          "  1 ,\t2.5e1 , 0 \r\n"
                          "\n"
                          "\"-3\",  \"4\"  ,\"1\"\r\n"
                          "   \n");
    bp_dataset d;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, path, NULL, err, sizeof err),
                          0);
    CU_ASSERT_EQUAL(d.rows, 2);
    CU_ASSERT_EQUAL(d.features, 2);
    CU_ASSERT_DOUBLE_EQUAL(d.x[1], 25, 0);
    CU_ASSERT_DOUBLE_EQUAL(d.x[2], -3, 0);
    CU_ASSERT_EQUAL(d.label[1], 1);
    bp_data_free(&d);
    free(path);
}

static void test_columns(void)
{
    char *path = csv_file("cols.csv", "id,x1,x2,y\n"
                                      "A,1,2,0.5\n"
                                      "B text,3,4,1.5\n");
    bp_dataset d;
    char err[256] = "";
    bp_csv_options o = bp_csv_defaults();
    int fc[] = {2, 1};
    o.feature_columns = fc;
    o.num_feature_columns = 2;
    o.label_column = 3;
    o.label = BP_LABEL_NUMERIC;
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 2);
    CU_ASSERT_EQUAL(d.features, 2);
    CU_ASSERT_EQUAL(d.targets, 1);
    CU_ASSERT_EQUAL(d.classes, 0);
    CU_ASSERT_PTR_NULL(d.label);
    CU_ASSERT(d.x[0] == 2 && d.x[1] == 1 && d.x[2] == 4 && d.x[3] == 3);
    CU_ASSERT(d.y[0] == 0.5 && d.y[1] == 1.5);
    bp_data_free(&d);

    /* No label: every selected column is a feature. */
    int fc2[] = {1, 2, 3};
    o.feature_columns = fc2;
    o.num_feature_columns = 3;
    o.label = BP_LABEL_NONE;
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.features, 3);
    CU_ASSERT_EQUAL(d.targets, 0);
    CU_ASSERT_PTR_NULL(d.y);
    bp_data_free(&d);

    /* A label column in the middle, the rest default to features. */
    o = bp_csv_defaults();
    o.label_column = 0;
    o.classes = 4;
    free(path);
    path = csv_file("cols2.csv", "1,7,8\n3,9,10\n");
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.classes, 4);
    CU_ASSERT_EQUAL(d.targets, 4);
    CU_ASSERT(d.x[0] == 7 && d.x[3] == 10 && d.label[1] == 3);
    CU_ASSERT(d.y[4 + 3] == 1);
    bp_data_free(&d);
    free(path);

    o = bp_csv_defaults();
    o.label_column = 7;
    CU_ASSERT(load_fails("c3.csv", "1,2,0\n", &o,
                         ":1: label column 7 does not exist: the file has 3 "
                         "columns (columns count from 0)"));
    o = bp_csv_defaults();
    int fc3[] = {0, 2};
    o.feature_columns = fc3;
    o.num_feature_columns = 2;
    CU_ASSERT(load_fails("c4.csv", "1,2,0\n", &o,
                         ":1: column 2 is both the label and a feature"));
    int fc4[] = {5};
    o.feature_columns = fc4;
    o.num_feature_columns = 1;
    CU_ASSERT(load_fails("c5.csv", "1,2,0\n", &o,
                         ":1: feature column 5 does not exist: the file has "
                         "3 columns (columns count from 0)"));
    CU_ASSERT(load_fails("c6.csv", "1\n2\n", NULL, ":1: no feature columns"));
}

static void test_malformed(void)
{
    bp_csv_options o = bp_csv_defaults();
    CU_ASSERT(load_fails("m1.csv", "1,2,0\n3,4\n", NULL,
                         ":2:3: expected 3 columns, found 2"));
    CU_ASSERT(load_fails("m2.csv", "1,2,0\n3,4,1,9\n", NULL,
                         ":2:4: expected 3 columns, found 4"));
    CU_ASSERT(load_fails("m3.csv", "1,2,0\n\n1,abc,0\n", NULL,
                         ":3:2: expected a number, found 'abc'"));
    CU_ASSERT(load_fails("m4.csv", "1,2,0\n1,,0\n", NULL,
                         ":2:2: expected a number, found an empty field"));
    CU_ASSERT(load_fails("m5.csv", "", NULL,
                         ": no data rows (the file is empty)"));
    CU_ASSERT(load_fails("m6.csv", "\n  \n\r\n", NULL,
                         ": no data rows (the file is empty)"));
    CU_ASSERT(load_fails("m7.csv", "a,b,c\n", NULL,
                         ": no data rows (only a header)"));
    CU_ASSERT(load_fails("m8.csv", "1,nan,0\n", NULL,
                         ":1:2: expected a finite number, found 'nan'"));
    CU_ASSERT(load_fails("m9.csv", "1,2,0\n-inf,2,0\n", NULL,
                         ":2:1: expected a finite number, found '-inf'"));
    CU_ASSERT(load_fails("m10.csv", "1,2,0\n1e999,2,0\n", NULL,
                         ":2:1: expected a finite number, found '1e999'"));
    CU_ASSERT(load_fails("m11.csv", "1,2,0\n1,2,1.5\n", NULL,
                         ":2:3: expected a whole-number class label, found "
                         "'1.5'"));
    CU_ASSERT(load_fails("m12.csv", "1,2,0\n1,2,-1\n", NULL,
                         ":2:3: label -1 is out of range: labels are 0 or "
                         "more"));
    o.classes = 3;
    CU_ASSERT(load_fails("m13.csv", "1,2,0\n1,2,2\n4,5,7\n", &o,
                         ":3:3: label 7 is out of range: 3 classes (0 to 2)"));
    CU_ASSERT(load_fails("m14.csv", "1,2,1e9\n", NULL,
                         ":1:3: label 1e9 is too large: at most 65536 classes "
                         "are counted (set classes to allow more)"));
    CU_ASSERT(load_fails("m15.csv", "1,\"2,0\n3,4,1\n", NULL,
                         ":1:2: unterminated quoted field"));
    CU_ASSERT(load_fails("m16.csv", "1,\"2\"x,0\n", NULL,
                         ":1:2: unexpected 'x' after a quoted field"));
    /* test_write_file stops at the NUL, so write it by hand. */
    {
        char *path = test_tmp_path("nul.csv");
        FILE *f = fopen(path, "wb");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        fwrite("1,2,0\n1,2\0,0\n", 1, 13, f);
        fclose(f);
        bp_dataset d;
        char err[256] = "";
        CU_ASSERT_NOT_EQUAL(bp_data_load_csv(&d, path, NULL, err, sizeof err),
                            0);
        char *want = test_format("%s:2:2: not a text file (NUL byte)", path);
        CU_ASSERT_STRING_EQUAL(err, want);
        free(want);
        free(path);
    }
    /* A field too long to be a number, and text with control bytes. */
    {
        char text[400] = "1,2,0\n";
        memset(text + 6, '1', 300);
        strcpy(text + 306, ",2,0\n");
        CU_ASSERT(load_fails("m18.csv", text, NULL,
                             ":2:1: expected a number, found a field of more "
                             "than 255 characters"));
        CU_ASSERT(load_fails("m19.csv", "1,2,0\n1,\x01\x02zz,0\n", NULL,
                             ":2:2: expected a number, found '??zz'"));
    }
    /* Caps: rows, columns and values. */
    o = bp_csv_defaults();
    o.max_rows = 3;
    CU_ASSERT(load_fails("m20.csv", "1,0\n2,0\n3,0\n4,0\n5,0\n", &o,
                         ":4: more than 3 rows (max_rows)"));
    o = bp_csv_defaults();
    o.max_columns = 2;
    CU_ASSERT(load_fails("m21.csv", "1,2,0\n", &o,
                         ":1:3: more than 2 columns (max_columns)"));
    o = bp_csv_defaults();
    o.max_values = 5;
    CU_ASSERT(load_fails("m22.csv", "1,0\n2,0\n3,0\n4,0\n5,0\n6,0\n", &o,
                         ":6: more than 5 values in all (max_values)"));
    o.max_values = 8;
    CU_ASSERT(load_fails("m23.csv", "1,0\n2,0\n3,0\n4,9\n", &o,
                         ": 4 rows of 1 features and 10 classes are more "
                         "than 8 values (max_values)"));
    o = bp_csv_defaults();
    o.skip_lines = 2147483647; /* stops at the end of the file */
    CU_ASSERT(load_fails("m24.csv", "1,0\n2,0\n", &o,
                         ": no data rows (the file is empty)"));
    /* A header claiming a huge size is not trusted. */
    {
        char *path = csv_file("claim.csv", "99999999999999,4,a,b,c\n1,2,3,4,0\n");
        bp_dataset d;
        char err[256] = "";
        CU_ASSERT_EQUAL(bp_data_load_csv(&d, path, NULL, err, sizeof err), 0);
        CU_ASSERT_EQUAL(d.rows, 1);
        bp_data_free(&d);
        free(path);
    }
}

static void test_missing_and_huge(void)
{
    bp_dataset d;
    char err[256] = "";
    char *path = test_tmp_path("does-not-exist.csv");
    CU_ASSERT_NOT_EQUAL(bp_data_load_csv(&d, path, NULL, err, sizeof err), 0);
    char *want = test_format("%s: cannot open: No such file or directory",
                             path);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);
    free(path);
    CU_ASSERT_NOT_EQUAL(bp_data_load_csv(&d, TEST_TMP, NULL, err, sizeof err),
                        0);
    want = test_format("%s: is a directory, not a CSV file", TEST_TMP);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);

    /* A 10 GB file (sparse: zeros) fails on its first byte. */
    path = test_tmp_path("huge.csv");
    FILE *f = fopen(path, "wb");
    if (f) {
        fclose(f);
        if (truncate(path, 10LL * 1000 * 1000 * 1000) == 0) {
            CU_ASSERT_NOT_EQUAL(bp_data_load_csv(&d, path, NULL, err,
                                                 sizeof err), 0);
            want = test_format("%s:1:1: not a text file (NUL byte)", path);
            CU_ASSERT_STRING_EQUAL(err, want);
            free(want);
        }
        remove(path);
    }
    free(path);

    /* A tiny err buffer is cut, never overrun; NULL err is fine. */
    char small[8];
    CU_ASSERT_NOT_EQUAL(bp_data_load_csv(&d, "/nonexistent/x.csv", NULL,
                                         small, sizeof small), 0);
    CU_ASSERT_EQUAL(strlen(small), 7);
    CU_ASSERT_NOT_EQUAL(bp_data_load_csv(&d, "/nonexistent/x.csv", NULL,
                                         NULL, 0), 0);
}

/* Random byte soup from CSV-ish characters: every file either loads or
 * fails with a message naming the file; nothing crashes (run this under
 * ASan/UBSan via SANITIZE=1). */
static void test_fuzz(void)
{
    static const char alphabet[] = "0123456789,,,,..--+e\n\n\r \t\"\"abnN\xEF";
    bp_rng r;
    bp_rng_seed(&r, 7);
    char *path = test_tmp_path("fuzz.csv");
    int crashes = 0;
    for (int t = 0; t < 400; t++) {
        char text[120];
        int n = (int)bp_rng_uniform(&r, 0, sizeof text - 1);
        for (int i = 0; i < n; i++)
            text[i] = alphabet[bp_rng_next(&r) % (sizeof alphabet - 1)];
        text[n] = '\0';
        if (test_write_file(path, text) != 0)
            break;
        bp_csv_options o = bp_csv_defaults();
        o.header = (bp_header_mode)(t % 3);
        o.label = (bp_label_kind)((t / 3) % 3);
        o.skip_lines = t % 2;
        bp_dataset d;
        char err[256] = "";
        int rc = bp_data_load_csv(&d, path, &o, err, sizeof err);
        if (rc != 0 && strncmp(err, path, strlen(path)) != 0)
            crashes++;
        if (rc == 0 && (d.rows == 0 || !d.x))
            crashes++;
        bp_data_free(&d);
    }
    CU_ASSERT_EQUAL(crashes, 0);
    free(path);
}

/* 10 rows: x = (r, 10 r + 1), label r % 3. */
static bp_dataset ten_rows(void)
{
    bp_dataset d;
    if (bp_data_create(&d, 10, 2, 0, 3, NULL, 0) != 0)
        CU_FAIL("bp_data_create");
    for (size_t r = 0; r < 10; r++) {
        d.x[2 * r] = (double)r;
        d.x[2 * r + 1] = 10.0 * (double)r + 1;
        d.label[r] = (int)(r % 3);
        d.y[3 * r + r % 3] = 1;
    }
    return d;
}

/* Every row of d is an intact row of ten_rows(); returns a bitmask of the
 * rows present. */
static unsigned rows_of(const bp_dataset *d)
{
    unsigned mask = 0;
    for (size_t i = 0; i < d->rows; i++) {
        double r = d->x[2 * i];
        int k = (int)r;
        if (d->x[2 * i + 1] != 10 * r + 1 || d->label[i] != k % 3 ||
            d->y[3 * i + (size_t)(k % 3)] != 1)
            return 0xFFFFFFFFu;
        mask |= 1u << k;
    }
    return mask;
}

static void test_split_shuffle(void)
{
    bp_dataset d = ten_rows(), tr, te, tr2, te2;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_data_split(&d, 0.3, 42, &tr, &te, err,
                                        sizeof err), 0);
    CU_ASSERT_EQUAL(tr.rows, 7);
    CU_ASSERT_EQUAL(te.rows, 3);
    unsigned a = rows_of(&tr), b = rows_of(&te);
    CU_ASSERT((a & b) == 0);
    CU_ASSERT((a | b) == 0x3FF);
    /* Same seed, same split; bit-identical. */
    CU_ASSERT_EQUAL_FATAL(bp_data_split(&d, 0.3, 42, &tr2, &te2, err,
                                        sizeof err), 0);
    CU_ASSERT(memcmp(tr.x, tr2.x, 14 * sizeof(double)) == 0);
    CU_ASSERT(memcmp(te.x, te2.x, 6 * sizeof(double)) == 0);
    bp_data_free(&tr2);
    bp_data_free(&te2);
    /* Another seed, another split (for these seeds). */
    CU_ASSERT_EQUAL_FATAL(bp_data_split(&d, 0.3, 43, &tr2, &te2, err,
                                        sizeof err), 0);
    CU_ASSERT(rows_of(&te2) != b);
    bp_data_free(&tr2);
    bp_data_free(&te2);
    bp_data_free(&tr);
    bp_data_free(&te);

    /* Rounding, and bad fractions. */
    CU_ASSERT_EQUAL(bp_data_split(&d, 0.25, 1, &tr, &te, err, sizeof err), 0);
    CU_ASSERT(te.rows == 3 && tr.rows == 7); /* 2.5 rounds up */
    bp_data_free(&tr);
    bp_data_free(&te);
    CU_ASSERT_EQUAL(bp_data_split(&d, 0, 1, &tr, &te, err, sizeof err), 0);
    CU_ASSERT(te.rows == 0 && tr.rows == 10);
    bp_data_free(&tr);
    bp_data_free(&te);
    CU_ASSERT_NOT_EQUAL(bp_data_split(&d, 1.0, 1, &tr, &te, err, sizeof err),
                        0);
    CU_ASSERT_STRING_EQUAL(err,
                           "bp_data_split: test fraction 1 is not in [0, 1)");
    CU_ASSERT_NOT_EQUAL(bp_data_split(&d, NAN, 1, &tr, &te, err, sizeof err),
                        0);
    CU_ASSERT_NOT_EQUAL(bp_data_split(&d, 0.96, 1, &tr, &te, err, sizeof err),
                        0);
    CU_ASSERT_STRING_EQUAL(err,
                           "bp_data_split: 10 rows leave none for training");

    /* Shuffling: rows stay intact, same seed same order, and it agrees
     * with bp_shuffle_indices. */
    bp_dataset s1 = ten_rows(), s2 = ten_rows();
    bp_rng r1, r2;
    bp_rng_seed(&r1, 9);
    bp_rng_seed(&r2, 9);
    bp_data_shuffle(&s1, &r1);
    bp_data_shuffle(&s2, &r2);
    CU_ASSERT_EQUAL(rows_of(&s1), 0x3FF);
    CU_ASSERT(memcmp(s1.x, s2.x, 20 * sizeof(double)) == 0);
    size_t idx[10];
    bp_rng_seed(&r1, 9);
    bp_shuffle_indices(idx, 10, &r1);
    int same = 1, moved = 0;
    for (int i = 0; i < 10; i++) {
        same &= s1.x[2 * i] == (double)idx[i];
        moved += idx[i] != (size_t)i;
    }
    CU_ASSERT(same);
    CU_ASSERT(moved > 0);
    bp_data_free(&s1);
    bp_data_free(&s2);
    bp_data_free(&d);
}

static void test_standardize(void)
{
    bp_dataset d = ten_rows(), tr, te;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_data_split(&d, 0.3, 5, &tr, &te, err,
                                        sizeof err), 0);
    /* Expected statistics from the training rows only. */
    double mean[2] = {0, 0}, var[2] = {0, 0};
    for (size_t r = 0; r < tr.rows; r++)
        for (int j = 0; j < 2; j++)
            mean[j] += tr.x[2 * r + (size_t)j] / (double)tr.rows;
    for (size_t r = 0; r < tr.rows; r++)
        for (int j = 0; j < 2; j++) {
            double e = tr.x[2 * r + (size_t)j] - mean[j];
            var[j] += e * e / (double)tr.rows;
        }
    double te0 = te.x[0], te1 = te.x[1];
    bp_standardizer s;
    CU_ASSERT_EQUAL_FATAL(bp_standardize_fit(&s, &tr, err, sizeof err), 0);
    CU_ASSERT_DOUBLE_EQUAL(s.mean[0], mean[0], 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(s.std[1], sqrt(var[1]), 1e-12);
    CU_ASSERT_EQUAL(bp_standardize_apply(&s, &tr, err, sizeof err), 0);
    CU_ASSERT_EQUAL(bp_standardize_apply(&s, &te, err, sizeof err), 0);
    double m0 = 0, v0 = 0;
    for (size_t r = 0; r < tr.rows; r++)
        m0 += tr.x[2 * r];
    m0 /= (double)tr.rows;
    for (size_t r = 0; r < tr.rows; r++)
        v0 += (tr.x[2 * r] - m0) * (tr.x[2 * r] - m0);
    CU_ASSERT_DOUBLE_EQUAL(m0, 0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(v0 / (double)tr.rows, 1, 1e-12);
    /* The test split uses the training statistics. */
    CU_ASSERT_DOUBLE_EQUAL(te.x[0], (te0 - mean[0]) / sqrt(var[0]), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(te.x[1], (te1 - mean[1]) / sqrt(var[1]), 1e-12);
    /* At inference time, on float rows. */
    float row[2] = {(float)te0, (float)te1};
    bp_standardize_rows(&s, row, 4, 1);
    CU_ASSERT_DOUBLE_EQUAL(row[0], te.x[0], 1e-5);
    /* Mismatched features. */
    bp_dataset other;
    bp_data_create(&other, 1, 3, 1, 0, NULL, 0);
    CU_ASSERT_NOT_EQUAL(bp_standardize_apply(&s, &other, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "bp_standardize_apply: the standardizer has "
                                "2 features but the data set has 3");
    bp_data_free(&other);
    bp_standardize_free(&s);

    /* A constant feature gets std 1. */
    bp_dataset c;
    bp_data_create(&c, 3, 1, 0, 0, NULL, 0);
    c.x[0] = c.x[1] = c.x[2] = 4;
    CU_ASSERT_EQUAL(bp_standardize_fit(&s, &c, err, sizeof err), 0);
    CU_ASSERT(s.std[0] == 1 && s.mean[0] == 4);
    bp_standardize_apply(&s, &c, NULL, 0);
    CU_ASSERT(c.x[2] == 0);
    bp_standardize_free(&s);
    bp_data_free(&c);
    bp_data_create(&c, 0, 1, 0, 0, NULL, 0);
    CU_ASSERT_NOT_EQUAL(bp_standardize_fit(&s, &c, err, sizeof err), 0);
    bp_data_free(&c);
    bp_data_free(&tr);
    bp_data_free(&te);
    bp_data_free(&d);
}

static void test_filter_subset(void)
{
    bp_dataset d = ten_rows(), out;
    char err[256] = "";
    int want[] = {2, 0};
    CU_ASSERT_EQUAL_FATAL(bp_data_filter_labels(&out, &d, want, 2, 1, err,
                                                sizeof err), 0);
    /* Rows 0,2,3,5,6,8,9 (labels 0,2,0,2,0,2,0); 2 -> 0 and 0 -> 1. */
    CU_ASSERT_EQUAL(out.rows, 7);
    CU_ASSERT_EQUAL(out.classes, 2);
    CU_ASSERT(out.x[2] == 2 && out.label[1] == 0 && out.label[0] == 1);
    CU_ASSERT(out.y[0] == 0 && out.y[1] == 1 && out.y[2] == 1);
    bp_data_free(&out);
    int bad[] = {3};
    CU_ASSERT_NOT_EQUAL(bp_data_filter_labels(&out, &d, bad, 1, 0, err,
                                              sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "bp_data_filter_labels: label 3 is out of "
                                "range: 3 classes (0 to 2)");
    int twice[] = {1, 1};
    CU_ASSERT_NOT_EQUAL(bp_data_filter_labels(&out, &d, twice, 2, 1, err,
                                              sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err,
                           "bp_data_filter_labels: label 1 is listed twice");

    size_t idx[] = {9, 9, 1};
    CU_ASSERT_EQUAL_FATAL(bp_data_subset(&out, &d, idx, 3, err, sizeof err),
                          0);
    CU_ASSERT(out.rows == 3 && out.x[2] == 9 && out.x[4] == 1 &&
              out.label[2] == 1);
    bp_data_free(&out);
    size_t far[] = {10};
    CU_ASSERT_NOT_EQUAL(bp_data_subset(&out, &d, far, 1, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "bp_data_subset: row index 10 is out of range "
                                "(10 rows)");

    /* Numeric data has no labels to filter. */
    bp_dataset num;
    bp_data_create(&num, 2, 1, 1, 0, NULL, 0);
    CU_ASSERT_NOT_EQUAL(bp_data_filter_labels(&out, &num, want, 1, 0, err,
                                              sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "bp_data_filter_labels: the data set has no "
                                "class labels");
    bp_data_free(&num);
    bp_data_free(&d);
}

static const bp_tensor_info in_xy[] = {
    {"x", 1, {2, 1, 1, 1}, 2, 0, 0, 0},
    {"y", 1, {3, 1, 1, 1}, 3, 0, 0, 0},
    {"z", 0, {1, 1, 1, 1}, 1, 0, 0, 0},
};

static void test_batches(void)
{
    bp_dataset d = ten_rows();
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = "t";
    m.real_size = 4;
    m.num_inputs = 2;
    m.inputs = in_xy;
    char err[256] = "";
    CU_ASSERT_EQUAL(bp_batch_check(&m, &d, 0, 1, err, sizeof err), 0);
    CU_ASSERT_NOT_EQUAL(bp_batch_check(&m, &d, 1, 0, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "model input 'y' holds 3 values per sample "
                                "but the data set has 2 features");
    CU_ASSERT_NOT_EQUAL(bp_batch_check(&m, &d, 0, 2, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "y_input 2 is not an input of model 't' (it "
                                "has 2)");
    CU_ASSERT_NOT_EQUAL(bp_batch_check(&m, &d, 0, -1, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "model input 'y' (input 1) is not fed by the "
                                "data set: only x_input (0) and y_input (-1) "
                                "are");
    m.num_inputs = 3;
    CU_ASSERT_NOT_EQUAL(bp_batch_check(&m, &d, 0, 1, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "model input 'z' (input 2) is not fed by the "
                                "data set: only x_input (0) and y_input (1) "
                                "are");
    m.num_inputs = 2;
    bp_dataset four;
    bp_data_create(&four, 1, 2, 0, 4, NULL, 0);
    CU_ASSERT_NOT_EQUAL(bp_batch_check(&m, &four, 0, 1, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "model input 'y' holds 3 values per sample "
                                "but the data set has 4 classes (one-hot)");
    bp_data_free(&four);

    size_t idx[] = {4, 1};
    float xf[4], yf[6];
    bp_batch_fill(&d, idx, 2, 4, xf, yf);
    CU_ASSERT(xf[0] == 4 && xf[1] == 41 && xf[2] == 1 && xf[3] == 11);
    CU_ASSERT(yf[0] == 0 && yf[1] == 1 && yf[3] == 0 && yf[4] == 1);
    double xd[4];
    bp_batch_fill(&d, NULL, 2, 8, xd, NULL);
    CU_ASSERT(xd[0] == 0 && xd[1] == 1 && xd[2] == 1 && xd[3] == 11);
    bp_data_free(&d);
}

/* The reference below must round as the runtime's scalar rule does. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Rows of bytes through the per-feature map, gathered by every
 * instruction set this CPU runs: exactly the scalar map's values,
 * (float)(b * scale + shift) in double, for a float and a double batch.
 * 789 features (not a multiple of 8 or 4, so the vector loops have
 * tails), scales and shifts that are not round numbers. */
static void test_byte_gather_every_isa(void)
{
    enum { ROWS = 50, F = 789, N = 7 };
    bp_dataset d;
    CU_ASSERT_EQUAL_FATAL(bp_data_create_stored(&d, ROWS, F, 0, 3,
                                                BP_STORE_BYTE, NULL, 0), 0);
    for (size_t r = 0; r < ROWS; r++)
        for (size_t j = 0; j < F; j++)
            d.xb[r * F + j] = (unsigned char)((r * 131 + j * 29 + r * j) % 256);
    for (size_t j = 0; j < F; j++) {
        d.xb_scale[j] = (1 + 0.013 * (double)(j % 7)) / 255.0;
        d.xb_shift[j] = -0.1 * (double)(j % 5) / 3.0;
    }
    static const size_t idx[N] = {49, 0, 17, 17, 3, 48, 25};
    float want_f[N * F], got_f[N * F];
    double want_d[N * F], got_d[N * F];
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < F; j++) {
            double v = (double)d.xb[idx[i] * F + j] * d.xb_scale[j]
                       + d.xb_shift[j];
            want_d[i * F + j] = v;
            want_f[i * F + j] = (float)v;
        }
    int best = bp_isa(), isas = 0;
    for (int isa = 0; isa < 3; isa++) {
        if (bp_isa_force(isa) != 0)
            continue;
        isas++;
        memset(got_f, 0xff, sizeof got_f);
        memset(got_d, 0xff, sizeof got_d);
        bp_batch_fill(&d, idx, N, 4, got_f, NULL);
        bp_batch_fill(&d, idx, N, 8, got_d, NULL);
        CU_ASSERT(memcmp(got_f, want_f, sizeof want_f) == 0);
        CU_ASSERT(memcmp(got_d, want_d, sizeof want_d) == 0);
    }
    bp_isa_force(-1);
    CU_ASSERT_EQUAL(bp_isa(), best);
    CU_ASSERT(isas >= 1);
    /* not a trivial map: the values are not all representable bytes */
    CU_ASSERT(want_f[1] != (float)d.xb[49 * F + 1]);
    bp_data_free(&d);
}

/* Review fixes: a constant feature that is not exactly representable is
 * still constant (its computed std is ~1e-17, not 0). */
static void test_standardize_near_constant(void)
{
    bp_dataset c;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_data_create(&c, 10, 2, 0, 0, NULL, 0), 0);
    for (size_t r = 0; r < 10; r++) {
        c.x[2 * r] = 0.1;
        c.x[2 * r + 1] = 1e6 + (double)(r % 2); /* a real, small spread */
    }
    bp_standardizer s;
    CU_ASSERT_EQUAL_FATAL(bp_standardize_fit(&s, &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(s.std[0], 1.0);
    CU_ASSERT_DOUBLE_EQUAL(s.std[1], 0.5, 1e-9);
    CU_ASSERT_EQUAL(bp_standardize_apply(&s, &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(s.mean[0], 0.1);
    for (size_t r = 0; r < 10; r++) {
        CU_ASSERT_EQUAL(c.x[2 * r], 0.0);
        CU_ASSERT_DOUBLE_EQUAL(fabs(c.x[2 * r + 1]), 1.0, 1e-9);
    }
    /* Another value of the feature at inference time stays moderate. */
    double row[2] = {0.2, 1e6};
    bp_standardize_rows(&s, row, 8, 1);
    CU_ASSERT_DOUBLE_EQUAL(row[0], 0.1, 1e-15);
    bp_standardize_free(&s);
    bp_data_free(&c);

    /* Values that are not all equal but differ only by rounding error. */
    CU_ASSERT_EQUAL_FATAL(bp_data_create(&c, 3, 1, 0, 0, NULL, 0), 0);
    c.x[0] = 1e6;
    c.x[1] = nextafter(1e6, 2e6);
    c.x[2] = 1e6;
    CU_ASSERT_EQUAL_FATAL(bp_standardize_fit(&s, &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(s.std[0], 1.0);
    bp_standardize_free(&s);
    bp_data_free(&c);
}

/* Review fixes: AUTO header detection ignores unselected columns, which may
 * hold text in every row. */
static void test_header_auto_selected_only(void)
{
    char *path = csv_file("hdr_unsel.csv", "alice,1,0\nbob,2,1\ncarol,3,0\n");
    bp_dataset d;
    char err[256] = "";
    bp_csv_options o = bp_csv_defaults();
    static const int fc[] = {1};
    o.feature_columns = fc;
    o.num_feature_columns = 1;
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 3);
    CU_ASSERT(d.x[0] == 1 && d.x[2] == 3 && d.label[1] == 1);
    bp_data_free(&d);
    free(path);
    /* An empty unselected field in the first row is not a header either. */
    path = csv_file("hdr_unsel2.csv", ",1,0\nx,2,1\n,3,0\n");
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 3);
    bp_data_free(&d);
    free(path);
    /* Text in a selected feature column or the label column still is. */
    path = csv_file("hdr_sel.csv", "name,x,y\nalice,1,0\nbob,2,1\n");
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 2);
    CU_ASSERT(d.x[0] == 1);
    bp_data_free(&d);
    free(path);
    path = csv_file("hdr_lab.csv", "name,7,y\nalice,1,0\nbob,2,1\n");
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(d.rows, 2);
    CU_ASSERT(d.x[0] == 1);
    bp_data_free(&d);
    free(path);
}

/* Review fixes: out-of-range enum options and label_column < -1 are errors,
 * not a crash or a silent "last column". */
static void test_bad_options(void)
{
    bp_csv_options o = bp_csv_defaults();
    o.label = (bp_label_kind)7;
    CU_ASSERT(load_fails("opt1.csv", "1,2,1\n3,4,0\n", &o,
                         ": bad options (label 7: expected BP_LABEL_CLASS, "
                         "BP_LABEL_NUMERIC or BP_LABEL_NONE)"));
    o = bp_csv_defaults();
    o.label = (bp_label_kind)-1;
    CU_ASSERT(load_fails("opt2.csv", "1,2,1\n3,4,0\n", &o,
                         ": bad options (label -1: expected BP_LABEL_CLASS, "
                         "BP_LABEL_NUMERIC or BP_LABEL_NONE)"));
    o = bp_csv_defaults();
    o.header = (bp_header_mode)5;
    CU_ASSERT(load_fails("opt3.csv", "1,2,1\n3,4,0\n", &o,
                         ": bad options (header 5: expected BP_HEADER_AUTO, "
                         "BP_HEADER_NONE or BP_HEADER_PRESENT)"));
    o = bp_csv_defaults();
    o.label_column = -7;
    CU_ASSERT(load_fails("opt4.csv", "1,2,1\n3,4,0\n", &o,
                         ": bad options (label_column -7: expected -1 for "
                         "the last column, or a column index from 0)"));
    /* -1 is still the last column. */
    o = bp_csv_defaults();
    o.label_column = -1;
    char *path = csv_file("opt5.csv", "1,2,1\n3,4,0\n");
    bp_dataset d;
    char err[256] = "";
    CU_ASSERT_EQUAL(bp_data_load_csv(&d, path, &o, err, sizeof err), 0);
    CU_ASSERT(d.rows == 2 && d.features == 2 && d.classes == 2);
    bp_data_free(&d);
    free(path);
}

/* A file of several read blocks (1 MiB each): rows and numbers that
 * straddle block ends load like any other, integers (the fast path) and
 * decimals (strtod) alike, and an error far into the file has its line. */
static void test_large_file(void)
{
    char *path = test_tmp_path("large.csv");
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    const size_t rows = 100000;
    for (size_t r = 0; r < rows; r++)
        fprintf(f, "%zu,-%zu.25,%zu,1e-3,%d\n", r * 7919 % 100003, r % 977, r * r, (int)(r % 3));
    fclose(f);
    bp_dataset d;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_data_load_csv(&d, path, NULL, err, sizeof err), 0);
    CU_ASSERT(d.rows == rows && d.features == 4 && d.classes == 3);
    int same = 1;
    for (size_t r = 0; r < rows; r++) {
        same &= d.x[4 * r] == (double)(r * 7919 % 100003);
        same &= d.x[4 * r + 1] == -((double)(r % 977) + 0.25);
        same &= d.x[4 * r + 2] == (double)(r * r);
        same &= d.x[4 * r + 3] == 1e-3;
        same &= d.label[r] == (int)(r % 3);
    }
    CU_ASSERT(same);
    bp_data_free(&d);
    /* A bad value on the last line. */
    f = fopen(path, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("1,2,x3,4,0\n", f);
    fclose(f);
    CU_ASSERT(bp_data_load_csv(&d, path, NULL, err, sizeof err) != 0);
    char *want = test_format("%s:100001:3: expected a number, found 'x3'", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);
    free(path);
}

void register_data(void)
{
    CU_pSuite s = CU_add_suite("data", NULL, NULL);
    CU_add_test(s, "iris.csv loads with the defaults", test_iris);
    CU_add_test(s, "digits.csv and filtering by label", test_digits);
    CU_add_test(s, "header: auto, present, none", test_headers);
    CU_add_test(s, "BOM, CRLF, blanks, quotes", test_format_details);
    CU_add_test(s, "feature and label columns", test_columns);
    CU_add_test(s, "malformed files: exact messages", test_malformed);
    CU_add_test(s, "missing, directory, 10 GB file", test_missing_and_huge);
    CU_add_test(s, "random files never crash", test_fuzz);
    CU_add_test(s, "split and shuffle are seeded", test_split_shuffle);
    CU_add_test(s, "standardisation uses training stats", test_standardize);
    CU_add_test(s, "filter by label, subset", test_filter_subset);
    CU_add_test(s, "batch checks and assembly", test_batches);
    CU_add_test(s, "byte rows gathered: the scalar map's bits, every ISA",
                test_byte_gather_every_isa);
    CU_add_test(s, "near-constant feature gets std 1",
                test_standardize_near_constant);
    CU_add_test(s, "auto header: selected columns only",
                test_header_auto_selected_only);
    CU_add_test(s, "bad enum options and label_column", test_bad_options);
    CU_add_test(s, "a file of many read blocks", test_large_file);
}
