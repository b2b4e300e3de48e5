/* fuzz_csv.c — the CSV reader (data.c) on any bytes, then the data-set
 * functions on what it loaded.
 *
 * The first byte of the input chooses the options, the rest is the file:
 *   bits 0-1  header: auto, none, present (3: auto)
 *   bits 2-3  label: class, numeric, none (3: class)
 *   bits 4-5  label column: -1 (last), 0, 1, 2
 *   bit  6    feature columns given (0 and 2) instead of every other column
 *   bit  7    classes fixed at 3 instead of counted
 * Caps are small (1000 rows, 64 columns, 20000 values) so that an input
 * is quick.
 *
 * Promises checked: on failure the data set is zeroed and the message
 * names the file; on success every value is finite, labels are in range
 * and y is their one-hot row; standardisation, splitting, subsetting and
 * filtering then work on the result and keep its shape. */
#include "fuzz.h"

#include "bp.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what)
{
    fuzz_fail("fuzz_csv", what);
}

static void check_dataset(const bp_dataset *d)
{
    size_t nx = d->rows * (size_t)d->features;
    for (size_t i = 0; i < nx; i++)
        if (!isfinite(d->x[i]))
            fail("a loaded feature is not finite");
    if (d->targets && !d->y)
        fail("targets without y");
    for (size_t r = 0; r < d->rows && d->classes; r++) {
        int c = d->label[r];
        if (c < 0 || c >= d->classes)
            fail("a loaded label is out of range");
        for (int k = 0; k < d->targets; k++)
            if (d->y[r * (size_t)d->targets + (size_t)k] != (k == c))
                fail("y is not the one-hot row of the label");
    }
}

static bool zeroed(const bp_dataset *d)
{
    return !d->rows && !d->features && !d->targets && !d->classes && !d->x &&
           !d->y && !d->label;
}

/* Everything data.c offers for a loaded set; each must succeed. */
static void use_dataset(const bp_dataset *d)
{
    char err[256];
    bp_dataset copy = {0}, train = {0}, test = {0}, sub = {0};
    size_t *idx = malloc(d->rows * sizeof *idx);
    if (!idx)
        fail("out of memory");
    bp_rng r;
    bp_rng_seed(&r, d->rows);
    bp_shuffle_indices(idx, d->rows, &r);
    if (bp_data_subset(&copy, d, idx, d->rows, err, sizeof err))
        fail("bp_data_subset failed on a loaded set");
    if (copy.rows != d->rows || copy.features != d->features)
        fail("bp_data_subset changed the shape");
    bp_data_shuffle(&copy, &r);
    double fraction = d->rows > 1 ? 0.25 : 0;
    if (bp_data_split(&copy, fraction, 7, &train, &test, err, sizeof err))
        fail("bp_data_split failed on a loaded set");
    if (train.rows + test.rows != d->rows)
        fail("bp_data_split lost rows");
    bp_standardizer s = {0};
    if (bp_standardize_fit(&s, &train, err, sizeof err))
        fail("bp_standardize_fit failed on a loaded set");
    if (bp_standardize_apply(&s, &test, err, sizeof err))
        fail("bp_standardize_apply failed");
    bp_standardize_free(&s);
    if (d->classes > 0) {
        int labels[2] = {0, d->classes - 1};
        if (bp_data_filter_labels(&sub, d, labels, 2, d->classes > 1, err,
                                  sizeof err))
            fail("bp_data_filter_labels failed on a loaded set");
        for (size_t i = 0; i < sub.rows; i++)
            if (sub.label[i] < 0 || sub.label[i] >= sub.classes)
                fail("bp_data_filter_labels made a label out of range");
    }
    bp_data_free(&sub);
    bp_data_free(&test);
    bp_data_free(&train);
    bp_data_free(&copy);
    free(idx);
}

int fuzz_csv(const unsigned char *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned ctl = data[0];
    static const int features[2] = {0, 2};
    bp_csv_options o = bp_csv_defaults();
    o.header = (bp_header_mode)((ctl & 3) % 3);
    o.label = (bp_label_kind)(((ctl >> 2) & 3) % 3);
    o.label_column = (int)((ctl >> 4) & 3) - 1;
    if (ctl & 64) {
        o.feature_columns = features;
        o.num_feature_columns = 2;
    }
    o.classes = ctl & 128 ? 3 : 0;
    o.max_rows = 1000;
    o.max_columns = 64;
    o.max_values = 20000;

    const char *path = fuzz_file(data + 1, size - 1);
    char err[512] = "";
    bp_dataset d = {0};
    if (bp_data_load_csv(&d, path, &o, err, sizeof err)) {
        if (!zeroed(&d))
            fail("a failed load left data in the data set");
        if (strncmp(err, path, strlen(path)) != 0)
            fail("the error message does not start with the file's name");
        return 0;
    }
    if (d.rows == 0 || d.rows > o.max_rows)
        fail("a loaded set has 0 rows or more than max_rows");
    check_dataset(&d);
    use_dataset(&d);
    bp_data_free(&d);
    return 0;
}
