/* data.c — data sets for training: a CSV loader, standardisation, seeded
 * shuffling and splitting, subsetting by label, and mini-batch assembly
 * (see bp.h for the API and its ownership rules).
 *
 * The CSV reader never trusts the file. It reads one character at a time
 * through stdio and keeps at most one row in memory, each stored field cut
 * to 255 characters (a longer field is an error only where its value is
 * needed), so memory stays bounded by the caps in bp_csv_options and by a
 * line-length cap, whatever the file says or holds. A NUL byte stops the
 * read at once: a binary file (or a 10 GB file of zeros) fails on its first
 * byte. Sizes a file may claim (iris.csv's "150,4,...") are ignored. */
#include "bp.h"
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The vector loops and their scalar tails must round alike: clang would
 * otherwise fuse a * b + c in a tail inlined into an FMA-enabled loop
 * (GCC in ISO C mode never contracts). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define FIELD_MAX 255               /* characters kept of a field */
#define LINE_MAX_CHARS (1L << 26)   /* 64 MiB: far above any real row */
#define COUNTED_CLASSES_MAX 65536   /* when classes are counted from data */
#define SHOW_MAX 40                 /* characters of a field in a message */
#define BLOCK ((size_t)1 << 20)     /* bytes read from a CSV file at once */

/* a * b, or 0 with *overflow set when it does not fit a size_t. */
static size_t mul(size_t a, size_t b, int *overflow)
{
    if (a && b > (size_t)-1 / a) {
        *overflow = 1;
        return 0;
    }
    return a * b;
}

/* ------------------------------------------------------------------------ */
/* Data set basics */

bp_csv_options bp_csv_defaults(void)
{
    bp_csv_options o;
    memset(&o, 0, sizeof o);
    o.skip_lines = 0;
    o.header = BP_HEADER_AUTO;
    o.label = BP_LABEL_CLASS;
    o.label_column = -1;
    o.classes = 0;
    o.feature_columns = NULL;
    o.num_feature_columns = 0;
    o.max_rows = 10000000;
    o.max_columns = 100000;
    o.max_values = (size_t)1 << 27;
    o.storage = BP_STORE_DOUBLE;
    return o;
}

void bp_data_free(bp_dataset *d)
{
    if (!d)
        return;
    free(d->x);
    free(d->xf);
    free(d->xb);
    free(d->xb_scale);
    free(d->xb_shift);
    free(d->y);
    free(d->label);
    memset(d, 0, sizeof *d);
}

/* Bytes of one stored feature value. */
static size_t value_size(bp_storage s)
{
    return s == BP_STORE_BYTE ? 1 : s == BP_STORE_FLOAT ? sizeof(float)
                                                        : sizeof(double);
}

/* The start of d's feature array, whatever the storage. */
static unsigned char *features_of(const bp_dataset *d)
{
    switch (d->storage) {
    case BP_STORE_FLOAT:
        return (unsigned char *)d->xf;
    case BP_STORE_BYTE:
        return d->xb;
    default:
        return (unsigned char *)d->x;
    }
}

double bp_data_value(const bp_dataset *d, size_t r, int j)
{
    size_t i = r * (size_t)d->features + (size_t)j;
    switch (d->storage) {
    case BP_STORE_FLOAT:
        return (double)d->xf[i];
    case BP_STORE_BYTE:
        return (double)d->xb[i] * d->xb_scale[j] + d->xb_shift[j];
    default:
        return d->x[i];
    }
}

/* Row r of d's features as doubles, into row[0..features). */
static void row_values(const bp_dataset *d, size_t r, double *row)
{
    size_t f = (size_t)d->features, at = r * f;
    switch (d->storage) {
    case BP_STORE_FLOAT:
        for (size_t j = 0; j < f; j++)
            row[j] = (double)d->xf[at + j];
        break;
    case BP_STORE_BYTE:
        for (size_t j = 0; j < f; j++)
            row[j] = (double)d->xb[at + j] * d->xb_scale[j] + d->xb_shift[j];
        break;
    default:
        memcpy(row, d->x + at, f * sizeof(double));
    }
}

/* calloc that never returns NULL for a zero count (so a created data set's
 * x is always usable), and that checks count * size. */
static void *alloc_zero(size_t count, size_t size)
{
    int over = 0;
    mul(count, size, &over);
    if (over)
        return NULL;
    return calloc(count ? count : 1, size);
}

int bp_data_create(bp_dataset *out, size_t rows, int features, int targets,
                   int classes, char *err, size_t err_size)
{
    return bp_data_create_stored(out, rows, features, targets, classes,
                                 BP_STORE_DOUBLE, err, err_size);
}

int bp_data_create_stored(bp_dataset *out, size_t rows, int features,
                          int targets, int classes, bp_storage storage,
                          char *err, size_t err_size)
{
    if (!out)
        return bp_fail(err, err_size, "bp_data_create: no data set given");
    memset(out, 0, sizeof *out);
    if (storage != BP_STORE_DOUBLE && storage != BP_STORE_FLOAT &&
        storage != BP_STORE_BYTE)
        return bp_fail(err, err_size,
                    "bp_data_create: storage %d is not BP_STORE_DOUBLE, "
                    "BP_STORE_FLOAT or BP_STORE_BYTE", (int)storage);
    if (features < 0 || targets < 0 || classes < 0)
        return bp_fail(err, err_size,
                    "bp_data_create: negative size (features %d, targets %d, "
                    "classes %d)", features, targets, classes);
    if (classes > 0)
        targets = classes;
    int over = 0;
    size_t nx = mul(rows, (size_t)features, &over);
    size_t ny = mul(rows, (size_t)targets, &over);
    if (over)
        return bp_fail(err, err_size, "bp_data_create: %zu rows are too many",
                    rows);
    void *x = alloc_zero(nx, value_size(storage));
    out->storage = storage;
    if (storage == BP_STORE_FLOAT)
        out->xf = x;
    else if (storage == BP_STORE_BYTE) {
        out->xb = x;
        out->xb_scale = alloc_zero((size_t)features, sizeof(double));
        out->xb_shift = alloc_zero((size_t)features, sizeof(double));
        for (int j = 0; out->xb_scale && j < features; j++)
            out->xb_scale[j] = 1.0;
    } else
        out->x = x;
    out->y = targets ? alloc_zero(ny, sizeof(double)) : NULL;
    out->label = classes ? alloc_zero(rows, sizeof(int)) : NULL;
    if (!x || (storage == BP_STORE_BYTE && (!out->xb_scale || !out->xb_shift)) ||
        (targets && !out->y) || (classes && !out->label)) {
        if (!out->x && !out->xf && !out->xb)
            free(x);
        bp_data_free(out);
        return bp_error(BP_ERR_NOMEM, err, err_size,
                    "bp_data_create: out of memory for %zu rows", rows);
    }
    out->rows = rows;
    out->features = features;
    out->targets = targets;
    out->classes = classes;
    return 0;
}

/* A data set like d (storage, byte map) with `rows` zeroed rows and
 * `classes` classes. */
static int create_like(bp_dataset *out, const bp_dataset *d, size_t rows,
                       int targets, int classes, char *err, size_t err_size)
{
    int rc = bp_data_create_stored(out, rows, d->features, targets, classes,
                                   d->storage, err, err_size);
    if (rc != 0)
        return rc;
    if (d->storage == BP_STORE_BYTE && d->features) {
        memcpy(out->xb_scale, d->xb_scale, (size_t)d->features * sizeof(double));
        memcpy(out->xb_shift, d->xb_shift, (size_t)d->features * sizeof(double));
    }
    return 0;
}

/* Copies the features of row `from` of d into row `to` of out (same
 * storage and width). */
static void copy_features(bp_dataset *out, size_t to, const bp_dataset *d,
                          size_t from)
{
    size_t w = (size_t)d->features * value_size(d->storage);
    if (w)
        memcpy(features_of(out) + to * w, features_of(d) + from * w, w);
}

/* Copies row `from` of d into row `to` of out (same layout). */
static void copy_row(bp_dataset *out, size_t to, const bp_dataset *d,
                     size_t from)
{
    size_t t = (size_t)d->targets;
    copy_features(out, to, d, from);
    if (t)
        memcpy(out->y + to * t, d->y + from * t, t * sizeof(double));
    if (d->classes)
        out->label[to] = d->label[from];
}

int bp_data_subset(bp_dataset *out, const bp_dataset *d, const size_t *idx,
                   size_t count, char *err, size_t err_size)
{
    if (!out || !d || (count && !idx))
        return bp_fail(err, err_size, "bp_data_subset: missing argument");
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < count; i++)
        if (idx[i] >= d->rows)
            return bp_fail(err, err_size,
                        "bp_data_subset: row index %zu is out of range "
                        "(%zu rows)", idx[i], d->rows);
    int rc = create_like(out, d, count, d->targets, d->classes, err, err_size);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < count; i++)
        copy_row(out, i, d, idx[i]);
    return 0;
}

int bp_data_filter_labels(bp_dataset *out, const bp_dataset *d,
                          const int *labels, int count, int relabel,
                          char *err, size_t err_size)
{
    if (!out || !d || count < 0 || (count && !labels))
        return bp_fail(err, err_size, "bp_data_filter_labels: missing argument");
    memset(out, 0, sizeof *out);
    if (d->classes <= 0)
        return bp_fail(err, err_size,
                    "bp_data_filter_labels: the data set has no class labels");
    if (relabel && count == 0)
        return bp_fail(err, err_size,
                    "bp_data_filter_labels: relabelling needs at least one "
                    "label");
    /* map[c]: the position of class c in labels, or -1 when not wanted. */
    int *map = malloc((size_t)d->classes * sizeof *map);
    if (!map)
        return bp_error(BP_ERR_NOMEM, err, err_size, "bp_data_filter_labels: out of memory");
    for (int c = 0; c < d->classes; c++)
        map[c] = -1;
    for (int i = 0; i < count; i++) {
        int c = labels[i];
        if (c < 0 || c >= d->classes) {
            free(map);
            return bp_fail(err, err_size,
                        "bp_data_filter_labels: label %d is out of range: "
                        "%d classes (0 to %d)", c, d->classes,
                        d->classes - 1);
        }
        if (map[c] >= 0 && relabel) {
            free(map);
            return bp_fail(err, err_size,
                        "bp_data_filter_labels: label %d is listed twice", c);
        }
        if (map[c] < 0)
            map[c] = i;
    }
    size_t kept = 0;
    for (size_t r = 0; r < d->rows; r++)
        kept += map[d->label[r]] >= 0;
    int classes = relabel ? count : d->classes;
    int rc = create_like(out, d, kept, classes, classes, err, err_size);
    if (rc != 0) {
        free(map);
        return rc;
    }
    size_t k = 0;
    for (size_t r = 0; r < d->rows; r++) {
        int pos = map[d->label[r]];
        if (pos < 0)
            continue;
        copy_features(out, k, d, r);
        int c = relabel ? pos : d->label[r];
        out->label[k] = c;
        out->y[k * (size_t)classes + (size_t)c] = 1.0;
        k++;
    }
    free(map);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Shuffling and splitting */

/* A uniform integer in [0, bound), bound >= 1, without modulo bias:
 * draws below 2^64 mod bound are rejected. */
static size_t below(bp_rng *r, size_t bound)
{
    unsigned long long b = bound;
    unsigned long long threshold = (0 - b) % b;
    unsigned long long v;
    do
        v = bp_rng_next(r);
    while (v < threshold);
    return (size_t)(v % b);
}

void bp_shuffle_indices(size_t *idx, size_t n, bp_rng *r)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = n; i > 1; i--) {
        size_t j = below(r, i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

static void swap_bytes(void *a, void *b, size_t n)
{
    unsigned char *p = a, *q = b;
    for (size_t i = 0; i < n; i++) {
        unsigned char t = p[i];
        p[i] = q[i];
        q[i] = t;
    }
}

void bp_data_shuffle(bp_dataset *d, bp_rng *r)
{
    if (!d || !r)
        return;
    size_t t = (size_t)d->targets;
    size_t w = (size_t)d->features * value_size(d->storage);
    unsigned char *x = features_of(d);
    /* Same draws as bp_shuffle_indices, so both give the same order. */
    for (size_t i = d->rows; i > 1; i--) {
        size_t j = below(r, i);
        size_t a = i - 1;
        if (j == a)
            continue;
        swap_bytes(x + a * w, x + j * w, w);
        if (t)
            swap_bytes(d->y + a * t, d->y + j * t, t * sizeof(double));
        if (d->classes) {
            int l = d->label[a];
            d->label[a] = d->label[j];
            d->label[j] = l;
        }
    }
}

int bp_data_split(const bp_dataset *d, double test_fraction,
                  unsigned long long seed, bp_dataset *train,
                  bp_dataset *test, char *err, size_t err_size)
{
    if (!d || !train || !test)
        return bp_fail(err, err_size, "bp_data_split: missing argument");
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (!(test_fraction >= 0 && test_fraction < 1))
        return bp_fail(err, err_size,
                    "bp_data_split: test fraction %g is not in [0, 1)",
                    test_fraction);
    size_t n_test = (size_t)floor(test_fraction * (double)d->rows + 0.5);
    if (n_test > d->rows)
        n_test = d->rows;
    if (d->rows - n_test < 1)
        return bp_fail(err, err_size,
                    "bp_data_split: %zu rows leave none for training",
                    d->rows);
    size_t *idx = malloc((d->rows ? d->rows : 1) * sizeof *idx);
    if (!idx)
        return bp_error(BP_ERR_NOMEM, err, err_size, "bp_data_split: out of memory");
    bp_rng r;
    bp_rng_seed(&r, seed);
    bp_shuffle_indices(idx, d->rows, &r);
    int rc = bp_data_subset(test, d, idx, n_test, err, err_size);
    if (rc == 0) {
        rc = bp_data_subset(train, d, idx + n_test, d->rows - n_test, err,
                            err_size);
        if (rc != 0)
            bp_data_free(test);
    }
    free(idx);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Standardisation */

int bp_standardize_fit(bp_standardizer *s, const bp_dataset *train,
                       char *err, size_t err_size)
{
    if (!s || !train)
        return bp_fail(err, err_size, "bp_standardize_fit: missing argument");
    memset(s, 0, sizeof *s);
    if (train->rows == 0)
        return bp_fail(err, err_size,
                    "bp_standardize_fit: the data set has no rows");
    size_t f = (size_t)train->features, n = train->rows;
    s->mean = alloc_zero(f, sizeof(double));
    s->std = alloc_zero(f, sizeof(double));
    double *row = alloc_zero(f, sizeof(double));
    double *first = alloc_zero(f, sizeof(double));
    unsigned char *constant = alloc_zero(f, 1);
    if (!s->mean || !s->std || !row || !first || !constant) {
        free(row);
        free(first);
        free(constant);
        bp_standardize_free(s);
        return bp_error(BP_ERR_NOMEM, err, err_size, "bp_standardize_fit: out of memory");
    }
    s->features = train->features;
    /* Two passes: the mean first, then squared deviations from it, which
     * is accurate where sum(x^2) - n mean^2 would cancel. */
    row_values(train, 0, first);
    memset(constant, 1, f);
    for (size_t r = 0; r < n; r++) {
        row_values(train, r, row);
        for (size_t j = 0; j < f; j++) {
            s->mean[j] += row[j];
            constant[j] &= row[j] == first[j];
        }
    }
    for (size_t j = 0; j < f; j++)
        s->mean[j] /= (double)n;
    for (size_t r = 0; r < n; r++) {
        row_values(train, r, row);
        for (size_t j = 0; j < f; j++) {
            double e = row[j] - s->mean[j];
            s->std[j] += e * e;
        }
    }
    /* A constant feature gets std 1. Rounding makes the computed mean of a
     * constant that is not exactly representable (ten rows of 0.1) differ
     * from it by an ulp or so, which leaves sd ~1e-17 rather than 0:
     * dividing by that would blow any other value up to ~1e16. So a feature
     * counts as constant when all its training values are equal, or when
     * sd is at the level of rounding error relative to the mean. */
    for (size_t j = 0; j < f; j++) {
        double sd = sqrt(s->std[j] / (double)n);
        double scale = fabs(s->mean[j]);
        if (!(scale > 1.0))
            scale = 1.0;
        if (constant[j])
            s->mean[j] = first[j];   /* so its values become exactly 0 */
        if (constant[j] || !(sd > 1e-12 * scale) || !isfinite(sd))
            sd = 1.0;
        s->std[j] = sd;
    }
    free(row);
    free(first);
    free(constant);
    return 0;
}

int bp_standardize_apply(const bp_standardizer *s, bp_dataset *d, char *err,
                         size_t err_size)
{
    if (!s || !d || (s->features && (!s->mean || !s->std)))
        return bp_fail(err, err_size, "bp_standardize_apply: missing argument");
    if (s->features != d->features)
        return bp_fail(err, err_size,
                    "bp_standardize_apply: the standardizer has %d features "
                    "but the data set has %d", s->features, d->features);
    switch (d->storage) {
    case BP_STORE_FLOAT:
        bp_standardize_rows(s, d->xf, 4, d->rows);
        break;
    case BP_STORE_BYTE:
        /* (b * scale + shift - mean) / std, folded into the map. */
        for (int j = 0; j < d->features; j++) {
            d->xb_scale[j] /= s->std[j];
            d->xb_shift[j] = (d->xb_shift[j] - s->mean[j]) / s->std[j];
        }
        break;
    default:
        bp_standardize_rows(s, d->x, 8, d->rows);
    }
    return 0;
}

int bp_data_convert(bp_dataset *d, bp_storage storage, char *err,
                    size_t err_size)
{
    if (!d)
        return bp_fail(err, err_size, "bp_data_convert: no data set given");
    if (storage == d->storage)
        return 0;
    if (storage != BP_STORE_DOUBLE && storage != BP_STORE_FLOAT)
        return bp_fail(err, err_size,
                    "bp_data_convert: converting to storage %d is not "
                    "supported (only to BP_STORE_DOUBLE or BP_STORE_FLOAT)",
                    (int)storage);
    int over = 0;
    size_t count = mul(d->rows, (size_t)d->features, &over);
    void *to = over ? NULL : alloc_zero(count, value_size(storage));
    if (!to)
        return bp_error(BP_ERR_NOMEM, err, err_size,
                        "bp_data_convert: out of memory for %zu rows", d->rows);
    size_t f = (size_t)d->features;
    for (size_t r = 0; r < d->rows; r++)
        for (size_t j = 0; j < f; j++) {
            double v = bp_data_value(d, r, (int)j);
            if (storage == BP_STORE_FLOAT)
                ((float *)to)[r * f + j] = (float)v;
            else
                ((double *)to)[r * f + j] = v;
        }
    free(d->x);
    free(d->xf);
    free(d->xb);
    free(d->xb_scale);
    free(d->xb_shift);
    d->x = NULL;
    d->xf = NULL;
    d->xb = NULL;
    d->xb_scale = d->xb_shift = NULL;
    if (storage == BP_STORE_FLOAT)
        d->xf = to;
    else
        d->x = to;
    d->storage = storage;
    return 0;
}

void bp_standardize_rows(const bp_standardizer *s, void *x, int real_size,
                         size_t n)
{
    if (!s || !x || !s->mean || !s->std)
        return;
    size_t f = (size_t)s->features;
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < f; j++) {
            size_t i = r * f + j;
            if (real_size == 4) {
                float *p = x;
                p[i] = (float)(((double)p[i] - s->mean[j]) / s->std[j]);
            } else {
                double *p = x;
                p[i] = (p[i] - s->mean[j]) / s->std[j];
            }
        }
}

void bp_standardize_free(bp_standardizer *s)
{
    if (!s)
        return;
    free(s->mean);
    free(s->std);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------------ */
/* Batches */

int bp_batch_check(const bp_model *m, const bp_dataset *d, int x_input,
                   int y_input, char *err, size_t err_size)
{
    if (!m || !d)
        return bp_fail(err, err_size, "bp_batch_check: missing argument");
    int abi = bp_model_check_abi(m, err, err_size);
    if (abi != BP_OK)
        return abi;
    const char *mn = m->name ? m->name : "?";
    if (m->real_size != 4 && m->real_size != 8)
        return bp_fail(err, err_size, "model '%s': real_size %d is not 4 or 8",
                    mn, m->real_size);
    if (x_input < 0 || x_input >= m->num_inputs || !m->inputs)
        return bp_fail(err, err_size,
                    "x_input %d is not an input of model '%s' (it has %d)",
                    x_input, mn, m->num_inputs);
    if (y_input >= m->num_inputs || y_input < -1)
        return bp_fail(err, err_size,
                    "y_input %d is not an input of model '%s' (it has %d)",
                    y_input, mn, m->num_inputs);
    if (y_input == x_input)
        return bp_fail(err, err_size,
                    "x_input and y_input are both model input %d", x_input);
    const bp_tensor_info *xi = &m->inputs[x_input];
    if (xi->size != (size_t)d->features)
        return bp_error(BP_ERR_MISMATCH, err, err_size,
                    "model input '%s' holds %zu values per sample but the "
                    "data set has %d feature%s", xi->name ? xi->name : "?",
                    xi->size, d->features, d->features == 1 ? "" : "s");
    if (y_input >= 0) {
        const bp_tensor_info *yi = &m->inputs[y_input];
        const char *yn = yi->name ? yi->name : "?";
        if (d->targets == 0)
            return bp_error(BP_ERR_MISMATCH, err, err_size,
                        "model input '%s' needs targets but the data set has "
                        "none (loaded without a label)", yn);
        if (yi->size != (size_t)d->targets) {
            if (d->classes > 0)
                return bp_error(BP_ERR_MISMATCH, err, err_size,
                            "model input '%s' holds %zu values per sample but "
                            "the data set has %d classes (one-hot)", yn,
                            yi->size, d->classes);
            return bp_error(BP_ERR_MISMATCH, err, err_size,
                        "model input '%s' holds %zu values per sample but the "
                        "data set has %d target%s per row", yn, yi->size,
                        d->targets, d->targets == 1 ? "" : "s");
        }
    }
    for (int k = 0; k < m->num_inputs; k++)
        if (k != x_input && k != y_input)
            return bp_fail(err, err_size,
                        "model input '%s' (input %d) is not fed by the data "
                        "set: only x_input (%d) and y_input (%d) are",
                        m->inputs[k].name ? m->inputs[k].name : "?", k,
                        x_input, y_input);
    return 0;
}

/* Writes n rows of `width` doubles (rows first + idx[i] of src, or rows
 * first..first+n-1 when idx is NULL) as real_size values into dst. */
static void gather(const double *src, size_t width, size_t first,
                   const size_t *idx, int n, int real_size, void *dst)
{
    for (int i = 0; i < n; i++) {
        size_t r = first + (idx ? idx[i] : (size_t)i);
        const double *s = src + r * width;
        if (real_size == 4) {
            float *p = (float *)dst + (size_t)i * width;
            for (size_t j = 0; j < width; j++)
                p[j] = (float)s[j];
        } else {
            double *p = (double *)dst + (size_t)i * width;
            memcpy(p, s, width * sizeof(double));
        }
    }
}

/* The same for float features. */
static void gather_float(const float *src, size_t width, size_t first,
                         const size_t *idx, int n, int real_size, void *dst)
{
    for (int i = 0; i < n; i++) {
        size_t r = first + (idx ? idx[i] : (size_t)i);
        const float *s = src + r * width;
        if (real_size == 4)
            memcpy((float *)dst + (size_t)i * width, s, width * sizeof(float));
        else {
            double *p = (double *)dst + (size_t)i * width;
            for (size_t j = 0; j < width; j++)
                p[j] = (double)s[j];
        }
    }
}

/* One row of bytes through the per-feature map, from feature j on:
 * p[j] = s[j] * scale[j] + shift[j], in double (and rounded once to
 * float for a float model). The vector versions do the same multiply and
 * add per value, never fused, so every path gives these bits. */
static void map_row_f_port(const unsigned char *s, const double *scale,
                           const double *shift, size_t j, size_t w, float *p)
{
    for (; j < w; j++)
        p[j] = (float)((double)s[j] * scale[j] + shift[j]);
}

static void map_row_d_port(const unsigned char *s, const double *scale,
                           const double *shift, size_t j, size_t w, double *p)
{
    for (; j < w; j++)
        p[j] = (double)s[j] * scale[j] + shift[j];
}

#ifdef BP_X86_KERNELS
#include <immintrin.h>

/* 8 bytes as 8 doubles, mapped. */
BP_TARGET_AVX512 static __m512d map8(const unsigned char *s,
                                     const double *scale, const double *shift)
{
    __m512d x = _mm512_cvtepi32_pd(
        _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)s)));
    return _mm512_add_pd(_mm512_mul_pd(x, _mm512_loadu_pd(scale)),
                         _mm512_loadu_pd(shift));
}

BP_TARGET_AVX512 static void map_row_f_avx512(const unsigned char *s,
                                              const double *scale,
                                              const double *shift, size_t w,
                                              float *p)
{
    size_t j = 0;
    for (; j + 8 <= w; j += 8)
        _mm256_storeu_ps(p + j, _mm512_cvtpd_ps(map8(s + j, scale + j,
                                                     shift + j)));
    map_row_f_port(s, scale, shift, j, w, p);
}

BP_TARGET_AVX512 static void map_row_d_avx512(const unsigned char *s,
                                              const double *scale,
                                              const double *shift, size_t w,
                                              double *p)
{
    size_t j = 0;
    for (; j + 8 <= w; j += 8)
        _mm512_storeu_pd(p + j, map8(s + j, scale + j, shift + j));
    map_row_d_port(s, scale, shift, j, w, p);
}

/* 4 bytes as 4 doubles, mapped. */
BP_TARGET_AVX2 static __m256d map4(const unsigned char *s,
                                   const double *scale, const double *shift)
{
    int four;
    memcpy(&four, s, sizeof four);
    __m256d x = _mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four)));
    return _mm256_add_pd(_mm256_mul_pd(x, _mm256_loadu_pd(scale)),
                         _mm256_loadu_pd(shift));
}

BP_TARGET_AVX2 static void map_row_f_avx2(const unsigned char *s,
                                          const double *scale,
                                          const double *shift, size_t w,
                                          float *p)
{
    size_t j = 0;
    for (; j + 4 <= w; j += 4)
        _mm_storeu_ps(p + j, _mm256_cvtpd_ps(map4(s + j, scale + j,
                                                  shift + j)));
    map_row_f_port(s, scale, shift, j, w, p);
}

BP_TARGET_AVX2 static void map_row_d_avx2(const unsigned char *s,
                                          const double *scale,
                                          const double *shift, size_t w,
                                          double *p)
{
    size_t j = 0;
    for (; j + 4 <= w; j += 4)
        _mm256_storeu_pd(p + j, map4(s + j, scale + j, shift + j));
    map_row_d_port(s, scale, shift, j, w, p);
}
#endif

#ifdef BP_X86_KERNELS
/* Rows asked for ahead of the one being converted. */
#define GATHER_AHEAD 2

static void prefetch_row(const unsigned char *p, size_t width)
{
    for (size_t j = 0; j < width; j += 64)
        _mm_prefetch((const char *)p + j, _MM_HINT_T0);
}
#endif

/* The same as gather for bytes through the per-feature map, vectorised
 * per instruction set (the batch gather is per step, like the update). */
static void gather_byte(const bp_dataset *d, size_t first, const size_t *idx,
                        int n, int real_size, void *dst)
{
    size_t width = (size_t)d->features;
    const double *scale = d->xb_scale, *shift = d->xb_shift;
    int isa = bp_isa();
    (void)isa;
    for (int i = 0; i < n; i++) {
        size_t r = first + (idx ? idx[i] : (size_t)i);
        const unsigned char *s = d->xb + r * width;
#ifdef BP_X86_KERNELS
        /* Shuffled rows are far apart: the loads of a row wait on memory
         * unless it was asked for while earlier rows were converted. */
        if (i == 0)
            for (int k = 1; k <= GATHER_AHEAD && k < n; k++)
                prefetch_row(d->xb + (first + (idx ? idx[k] : (size_t)k)) * width,
                             width);
        if (i + GATHER_AHEAD < n)
            prefetch_row(d->xb + (first + (idx ? idx[i + GATHER_AHEAD]
                                               : (size_t)(i + GATHER_AHEAD)))
                                     * width,
                         width);
#endif
        if (real_size == 4) {
            float *p = (float *)dst + (size_t)i * width;
#ifdef BP_X86_KERNELS
            if (isa == BP_ISA_AVX512)
                map_row_f_avx512(s, scale, shift, width, p);
            else if (isa == BP_ISA_AVX2)
                map_row_f_avx2(s, scale, shift, width, p);
            else
#endif
                map_row_f_port(s, scale, shift, 0, width, p);
        } else {
            double *p = (double *)dst + (size_t)i * width;
#ifdef BP_X86_KERNELS
            if (isa == BP_ISA_AVX512)
                map_row_d_avx512(s, scale, shift, width, p);
            else if (isa == BP_ISA_AVX2)
                map_row_d_avx2(s, scale, shift, width, p);
            else
#endif
                map_row_d_port(s, scale, shift, 0, width, p);
        }
    }
}

void bp_batch_fill_from(const bp_dataset *d, size_t first, const size_t *idx,
                        int n, int real_size, void *x, void *y)
{
    if (!d || n <= 0)
        return;
    if (x && d->features) {
        size_t f = (size_t)d->features;
        switch (d->storage) {
        case BP_STORE_FLOAT:
            gather_float(d->xf, f, first, idx, n, real_size, x);
            break;
        case BP_STORE_BYTE:
            gather_byte(d, first, idx, n, real_size, x);
            break;
        default:
            gather(d->x, f, first, idx, n, real_size, x);
        }
    }
    if (y && d->targets)
        gather(d->y, (size_t)d->targets, first, idx, n, real_size, y);
}

void bp_batch_fill(const bp_dataset *d, const size_t *idx, int n,
                   int real_size, void *x, void *y)
{
    bp_batch_fill_from(d, 0, idx, n, real_size, x, y);
}

/* ------------------------------------------------------------------------ */
/* The CSV reader */

typedef struct {
    FILE *f;
    /* The file is read in blocks of BLOCK bytes and parsed from memory:
     * block[pos..len) is what is left of the current one. */
    unsigned char *block;
    size_t pos, len;
    int eof;
    const char *path;
    char *err;
    size_t err_size;
    long line;              /* line of the next character, 1-based */
    long line_chars;        /* characters read on that line so far */
    /* The current row: fields stored one after another in buf, each
     * NUL-terminated and cut to FIELD_MAX characters. */
    char *buf;
    size_t *off;            /* where each stored field starts in buf */
    unsigned char *over;    /* the field was longer than FIELD_MAX */
    int cap;                /* fields buf, off and over have room for; they
                               grow with the widest row, up to max_columns */
    int nfields;
    long row_line;          /* line the row starts on */
    int max_columns;
    int status;             /* the bp_status of the error reported */
} csv_reader;

/* Reports an error of the reader (as bp_error does) and returns -1. */
static int rd_fail(csv_reader *rd, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (rd->err && rd->err_size)
        vsnprintf(rd->err, rd->err_size, fmt, ap);
    va_end(ap);
    rd->status = status;
    return -1;
}

/* The field text made printable for a message: control bytes become '?',
 * and long text is cut with "...". */
static void show(const char *s, char *dst, size_t dst_size)
{
    size_t n = 0, i = 0;
    for (; s[i] && n + 4 < dst_size && i < SHOW_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (s[i] && n + 4 < dst_size) {
        memcpy(dst + n, "...", 3);
        n += 3;
    }
    dst[n] = '\0';
}

/* Refills the block. Returns the next byte, EOF at the end, or -2 after a
 * read error (reported). */
static int refill(csv_reader *rd)
{
    if (rd->eof)
        return EOF;
    rd->pos = 0;
    rd->len = fread(rd->block, 1, BLOCK, rd->f);
    if (rd->len == 0) {
        rd->eof = 1;
        if (ferror(rd->f))
            return rd_fail(rd, BP_ERR_IO, "%s:%ld: read error: %s",
                        rd->path, rd->line, strerror(errno)) - 1;
        return EOF;
    }
    return rd->block[rd->pos++];
}

/* The next byte without the checks of rd_getc (for the byte-order mark). */
static int raw_getc(csv_reader *rd)
{
    return rd->pos < rd->len ? rd->block[rd->pos++] : refill(rd);
}

/* The next character, EOF at the end, or -2 after an error (reported). */
static int rd_getc(csv_reader *rd)
{
    int c = raw_getc(rd);
    if (c < 0)
        return c;
    if (c == '\n') {
        rd->line++;
        rd->line_chars = 0;
        return c;
    }
    if (c == '\0')
        return rd_fail(rd, BP_ERR_FORMAT, "%s:%ld:%d: not a text file (NUL byte)", rd->path,
                    rd->line, rd->nfields + 1) - 1;
    if (++rd->line_chars > LINE_MAX_CHARS)
        return rd_fail(rd, BP_ERR_FORMAT, "%s:%ld: line longer than %ld characters", rd->path,
                    rd->line, LINE_MAX_CHARS) - 1;
    return c;
}

/* Skips the rest of the current line. Returns 0, 1 at the end of the
 * file, or -1 on error. */
static int skip_line(csv_reader *rd)
{
    int c;
    do
        c = rd_getc(rd);
    while (c != '\n' && c != EOF && c != -2);
    return c == -2 ? -1 : c == EOF;
}

static int is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Makes room for field number `k` (0-based): each field takes at most
 * FIELD_MAX + 1 bytes of buf. Returns 0, or -1 when out of memory. */
static int room_for(csv_reader *rd, int k)
{
    if (k < rd->cap)
        return 0;
    int cap = rd->cap ? rd->cap * 2 : 64;
    if (cap > rd->max_columns)
        cap = rd->max_columns;
    char *buf = realloc(rd->buf, (size_t)cap * (FIELD_MAX + 1));
    if (buf)
        rd->buf = buf;
    size_t *off = realloc(rd->off, (size_t)cap * sizeof *off);
    if (off)
        rd->off = off;
    unsigned char *over = realloc(rd->over, (size_t)cap);
    if (over)
        rd->over = over;
    if (!buf || !off || !over)
        return rd_fail(rd, BP_ERR_NOMEM, "%s:%ld: out of memory",
                    rd->path, rd->line);
    rd->cap = cap;
    return 0;
}

/* Reads the next non-blank row into rd. Returns 1 for a row, 0 at the end
 * of the file, -1 on error (reported). */
static int read_row(csv_reader *rd)
{
    for (;;) {
        rd->nfields = 0;
        rd->row_line = rd->line;
        size_t used = 0;
        int c, quoted_any = 0;
        for (;;) {
            /* One field: leading blanks, then quoted or plain text. */
            if (room_for(rd, rd->nfields) != 0)
                return -1;
            size_t start = used, len = 0;
            int over = 0;
            do
                c = rd_getc(rd);
            while (is_blank(c));
            if (c == -2)
                return -1;
            if (c == '"') {
                quoted_any = 1;
                long qline = rd->line;
                for (;;) {
                    c = rd_getc(rd);
                    if (c == -2)
                        return -1;
                    if (c == EOF)
                        return rd_fail(rd, BP_ERR_FORMAT, "%s:%ld:%d: unterminated quoted field",
                                    rd->path, qline, rd->nfields + 1);
                    if (c == '"') {
                        c = rd_getc(rd);
                        if (c != '"')
                            break;
                    }
                    if (len < FIELD_MAX)
                        rd->buf[start + len++] = (char)c;
                    else
                        over = 1;
                }
                while (is_blank(c))
                    c = rd_getc(rd);
                if (c == -2)
                    return -1;
                if (c != ',' && c != '\n' && c != EOF) {
                    char s[2] = {(char)c, 0}, shown[8];
                    show(s, shown, sizeof shown);
                    return rd_fail(rd, BP_ERR_FORMAT, "%s:%ld:%d: unexpected '%s' after a quoted "
                                "field", rd->path, rd->line, rd->nfields + 1,
                                shown);
                }
            } else {
                while (c != ',' && c != '\n' && c != EOF) {
                    if (len < FIELD_MAX)
                        rd->buf[start + len++] = (char)c;
                    else
                        over = 1;
                    c = rd_getc(rd);
                    if (c == -2)
                        return -1;
                }
                /* Trailing blanks are not part of the value. */
                if (!over)
                    while (len > 0 && is_blank(rd->buf[start + len - 1]))
                        len--;
            }
            rd->buf[start + len] = '\0';
            rd->off[rd->nfields] = start;
            rd->over[rd->nfields] = (unsigned char)over;
            used = start + len + 1;
            rd->nfields++;
            if (c != ',')
                break;
            if (rd->nfields >= rd->max_columns)
                return rd_fail(rd, BP_ERR_FORMAT, "%s:%ld:%d: more than %d columns (max_columns)",
                            rd->path, rd->row_line, rd->nfields + 1,
                            rd->max_columns);
        }
        int blank = rd->nfields == 1 && !quoted_any && rd->buf[0] == '\0';
        if (!blank)
            return 1;
        if (c == EOF)
            return 0;
    }
}

static const char *field(const csv_reader *rd, int k)
{
    return rd->buf + rd->off[k];
}

/* Parses a whole field as a number. 0: ok; 1: not a number; 2: not finite
 * (nan, inf, or too large for a double). */
static int parse_number(const char *s, double *v)
{
    if (!*s)
        return 1;
    /* Most data are short integers (pixels, labels): up to 15 digits are
     * exact in a double, and strtod would give the same value. */
    const char *p = s + (*s == '-' || *s == '+');
    size_t digits = 0;
    long long whole = 0;
    while (p[digits] >= '0' && p[digits] <= '9' && digits < 16)
        whole = whole * 10 + (p[digits++] - '0');
    if (digits > 0 && digits <= 15 && p[digits] == '\0') {
        *v = *s == '-' ? -(double)whole : (double)whole;
        return 0;
    }
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end)
        return 1;
    if (!isfinite(x))
        return 2;
    *v = x;
    return 0;
}

/* The value of field k of the current row, or -1 with the error written. */
static int number_at(csv_reader *rd, int k, double *v)
{
    if (rd->over[k])
        return rd_fail(rd, BP_ERR_FORMAT, "%s:%ld:%d: expected a number, found a field of more "
                    "than %d characters", rd->path, rd->row_line, k + 1,
                    FIELD_MAX);
    const char *s = field(rd, k);
    int got = parse_number(s, v);
    if (got == 0)
        return 0;
    char shown[SHOW_MAX + 8];   /* only for a message */
    show(s, shown, sizeof shown);
    switch (got) {
    case 2:
        return rd_fail(rd, BP_ERR_FORMAT, "%s:%ld:%d: expected a finite number, found '%s'",
                    rd->path, rd->row_line, k + 1, shown);
    default:
        if (!*s)
            return rd_fail(rd, BP_ERR_FORMAT, "%s:%ld:%d: expected a number, found an empty field",
                        rd->path, rd->row_line, k + 1);
        return rd_fail(rd, BP_ERR_FORMAT, "%s:%ld:%d: expected a number, found '%s'", rd->path,
                    rd->row_line, k + 1, shown);
    }
}

/* Growable arrays for the values read so far, the features already in
 * the storage asked for (x holds doubles or floats), so the data set can
 * adopt them without a copy. */
typedef struct {
    void *x;
    double *t;
    int *lab;
    size_t cap;         /* rows the arrays hold */
    size_t vsize;       /* bytes of a feature value */
} csv_store;

static int store_grow(csv_store *st, size_t rows, size_t f, int numeric,
                      int cls)
{
    if (rows < st->cap)
        return 0;
    size_t cap = st->cap ? st->cap * 2 : 256;
    int over = 0;
    size_t nx = mul(cap, f ? f : 1, &over);
    mul(nx, st->vsize, &over);
    if (over)
        return -1;
    void *x = realloc(st->x, nx * st->vsize);
    if (!x)
        return -1;
    st->x = x;
    if (numeric) {
        double *t = realloc(st->t, cap * sizeof(double));
        if (!t)
            return -1;
        st->t = t;
    }
    if (cls) {
        int *l = realloc(st->lab, cap * sizeof(int));
        if (!l)
            return -1;
        st->lab = l;
    }
    st->cap = cap;
    return 0;
}

/* Fills `out` from an open file (see bp_data_load_csv). */
static int load(csv_reader *rd, bp_dataset *out, const bp_csv_options *o)
{
    const char *path = rd->path;
    char *err = rd->err;
    size_t err_size = rd->err_size;
    if (o->skip_lines < 0 || o->max_columns < 1 || o->classes < 0)
        return bp_fail(err, err_size,
                    "%s: bad options (skip_lines %d, max_columns %d, "
                    "classes %d)", path, o->skip_lines, o->max_columns,
                    o->classes);
    if (o->num_feature_columns < 0 ||
        (o->num_feature_columns > 0 && !o->feature_columns))
        return bp_fail(err, err_size, "%s: bad options (feature columns)", path);
    if (o->header != BP_HEADER_AUTO && o->header != BP_HEADER_NONE &&
        o->header != BP_HEADER_PRESENT)
        return bp_fail(err, err_size,
                    "%s: bad options (header %d: expected BP_HEADER_AUTO, "
                    "BP_HEADER_NONE or BP_HEADER_PRESENT)", path,
                    (int)o->header);
    if (o->label != BP_LABEL_CLASS && o->label != BP_LABEL_NUMERIC &&
        o->label != BP_LABEL_NONE)
        return bp_fail(err, err_size,
                    "%s: bad options (label %d: expected BP_LABEL_CLASS, "
                    "BP_LABEL_NUMERIC or BP_LABEL_NONE)", path, (int)o->label);
    if (o->storage != BP_STORE_DOUBLE && o->storage != BP_STORE_FLOAT)
        return bp_fail(err, err_size,
                    "%s: bad options (storage %d: expected BP_STORE_DOUBLE "
                    "or BP_STORE_FLOAT)", path, (int)o->storage);
    if (o->label_column < -1)
        return bp_fail(err, err_size,
                    "%s: bad options (label_column %d: expected -1 for the "
                    "last column, or a column index from 0)", path,
                    o->label_column);

    /* A UTF-8 byte-order mark is not data. */
    int c0 = raw_getc(rd);
    if (c0 == -2)
        return rd->status;
    if (c0 == 0xEF) {
        int c1 = raw_getc(rd), c2 = raw_getc(rd);
        if (c1 != 0xBB || c2 != 0xBF)   /* cannot push 3 bytes back */
            return bp_error(BP_ERR_FORMAT, err, err_size, "%s:1:1: not a CSV file (it starts "
                        "with the bytes EF %02X %02X)", path,
                        (unsigned)c1 & 0xFF, (unsigned)c2 & 0xFF);
    } else if (c0 != EOF)
        rd->pos--;                  /* it is still in the block */

    for (int i = 0, s = 0; i < o->skip_lines && s == 0; i++)
        if ((s = skip_line(rd)) < 0)
            return rd->status;

    int got = read_row(rd);
    if (got < 0)
        return rd->status;
    if (got == 0)
        return bp_error(BP_ERR_FORMAT, err, err_size, "%s: no data rows (the file is empty)",
                    path);
    int ncols = rd->nfields;
    long first_line = rd->row_line;

    /* Columns. */
    int has_label = o->label != BP_LABEL_NONE;
    int label_col = -1;
    if (has_label) {
        label_col = o->label_column < 0 ? ncols - 1 : o->label_column;
        if (label_col >= ncols)
            return bp_error(BP_ERR_FORMAT, err, err_size,
                        "%s:%ld: label column %d does not exist: the file has "
                        "%d column%s (columns count from 0)", path,
                        first_line, label_col, ncols, ncols == 1 ? "" : "s");
    }
    int nf = o->feature_columns ? o->num_feature_columns
                                : ncols - (has_label ? 1 : 0);
    if (nf <= 0)
        return bp_error(BP_ERR_FORMAT, err, err_size, "%s:%ld: no feature columns", path,
                    first_line);
    int *fcol = malloc((size_t)nf * sizeof *fcol);
    if (!fcol)
        return bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
    if (o->feature_columns) {
        for (int j = 0; j < nf; j++) {
            int k = o->feature_columns[j];
            if (k < 0 || k >= ncols) {
                free(fcol);
                return bp_error(BP_ERR_FORMAT, err, err_size,
                            "%s:%ld: feature column %d does not exist: the "
                            "file has %d column%s (columns count from 0)",
                            path, first_line, k, ncols,
                            ncols == 1 ? "" : "s");
            }
            if (k == label_col) {
                free(fcol);
                return bp_fail(err, err_size,
                            "%s:%ld: column %d is both the label and a "
                            "feature", path, first_line, k);
            }
            fcol[j] = k;
        }
    } else {
        for (int k = 0, j = 0; k < ncols; k++)
            if (k != label_col)
                fcol[j++] = k;
    }

    /* Header. AUTO looks only at the columns that are parsed (the selected
     * features and the label): an unselected column may hold text in every
     * row, so text there says nothing about a header. */
    int header = o->header == BP_HEADER_PRESENT;
    if (o->header == BP_HEADER_AUTO) {
        for (int j = 0; j < nf && !header; j++) {
            double v;
            header = rd->over[fcol[j]] ||
                     parse_number(field(rd, fcol[j]), &v) == 1;
        }
        if (has_label && !header) {
            double v;
            header = rd->over[label_col] ||
                     parse_number(field(rd, label_col), &v) == 1;
        }
    }

    int numeric = o->label == BP_LABEL_NUMERIC;
    int cls = o->label == BP_LABEL_CLASS;
    size_t width = (size_t)nf + (numeric ? 1 : 0);
    size_t max_rows = o->max_rows ? o->max_rows : 10000000;
    size_t max_values = o->max_values ? o->max_values : (size_t)1 << 27;
    csv_store st = {NULL, NULL, NULL, 0, value_size(o->storage)};
    size_t rows = 0;
    int max_label = -1, rc = -1;
    if (header)
        got = read_row(rd);
    for (; got == 1; got = read_row(rd)) {
        if (rd->nfields != ncols) {
            int col = rd->nfields < ncols ? rd->nfields + 1 : ncols + 1;
            rc = bp_error(BP_ERR_FORMAT, err, err_size, "%s:%ld:%d: expected %d column%s, found %d",
                 path, rd->row_line, col, ncols, ncols == 1 ? "" : "s",
                 rd->nfields);
            goto done;
        }
        if (rows >= max_rows) {
            rc = bp_error(BP_ERR_FORMAT, err, err_size, "%s:%ld: more than %zu rows (max_rows)",
                 path, rd->row_line, max_rows);
            goto done;
        }
        int over = 0;
        if (mul(rows + 1, width, &over) > max_values || over) {
            rc = bp_error(BP_ERR_FORMAT, err, err_size,
                 "%s:%ld: more than %zu values in all (max_values)", path,
                 rd->row_line, max_values);
            goto done;
        }
        if (store_grow(&st, rows, (size_t)nf, numeric, cls) != 0) {
            rc = bp_error(BP_ERR_NOMEM, err, err_size, "%s:%ld: out of memory after %zu rows", path,
                 rd->row_line, rows);
            goto done;
        }
        for (int j = 0; j < nf; j++) {
            double v;
            if (number_at(rd, fcol[j], &v)) {
                rc = rd->status;
                goto done;
            }
            size_t at = rows * (size_t)nf + (size_t)j;
            if (o->storage == BP_STORE_FLOAT)
                ((float *)st.x)[at] = (float)v;
            else
                ((double *)st.x)[at] = v;
        }
        if (has_label) {
            double v;
            if (number_at(rd, label_col, &v)) {
                rc = rd->status;
                goto done;
            }
            if (numeric)
                st.t[rows] = v;
            else if (v != floor(v) || v < 0 ||
                     (o->classes > 0 && v >= o->classes) ||
                     (o->classes == 0 && v >= COUNTED_CLASSES_MAX)) {
                char shown[SHOW_MAX + 8];   /* only for a message */
                show(field(rd, label_col), shown, sizeof shown);
                if (v != floor(v)) {
                    rc = bp_error(BP_ERR_FORMAT, err, err_size,
                         "%s:%ld:%d: expected a whole-number class label, "
                         "found '%s'", path, rd->row_line, label_col + 1,
                         shown);
                    goto done;
                }
                if (v < 0 || (o->classes > 0 && v >= o->classes)) {
                    if (o->classes > 0)
                        rc = bp_error(BP_ERR_FORMAT, err, err_size,
                             "%s:%ld:%d: label %s is out of range: %d "
                             "classes (0 to %d)", path, rd->row_line,
                             label_col + 1, shown, o->classes,
                             o->classes - 1);
                    else
                        rc = bp_error(BP_ERR_FORMAT, err, err_size,
                             "%s:%ld:%d: label %s is out of range: labels "
                             "are 0 or more", path, rd->row_line,
                             label_col + 1, shown);
                    goto done;
                }
                if (o->classes == 0 && v >= COUNTED_CLASSES_MAX) {
                    rc = bp_error(BP_ERR_FORMAT, err, err_size,
                         "%s:%ld:%d: label %s is too large: at most %d "
                         "classes are counted (set classes to allow more)",
                         path, rd->row_line, label_col + 1, shown,
                         COUNTED_CLASSES_MAX);
                    goto done;
                }
            } else {
                st.lab[rows] = (int)v;
                if ((int)v > max_label)
                    max_label = (int)v;
            }
        }
        rows++;
    }
    if (got < 0) {
        rc = rd->status;
        goto done;
    }
    if (rows == 0) {
        rc = bp_error(BP_ERR_FORMAT, err, err_size, "%s: no data rows (only a header)", path);
        goto done;
    }

    {
        int classes = cls ? (o->classes > 0 ? o->classes : max_label + 1) : 0;
        int targets = cls ? classes : (numeric ? 1 : 0);
        int over = 0;
        if (mul(rows, (size_t)nf + (size_t)targets, &over) > max_values ||
            over) {
            rc = bp_error(BP_ERR_FORMAT, err, err_size,
                 "%s: %zu rows of %d features and %d classes are more than "
                 "%zu values (max_values)", path, rows, nf, classes,
                 max_values);
            goto done;
        }
        /* The data set adopts the arrays read, trimmed to size (a failed
         * trim is reported like any allocation that fails). */
        void *x = realloc(st.x, rows * (size_t)nf * st.vsize);
        if (!x || bp_data_create_stored(out, 0, nf, 0, 0, o->storage, NULL, 0) != 0) {
            if (x)
                st.x = x;
            rc = bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory for %zu rows", path, rows);
            goto done;
        }
        st.x = x;
        free(o->storage == BP_STORE_FLOAT ? (void *)out->xf : (void *)out->x);
        if (o->storage == BP_STORE_FLOAT)
            out->xf = st.x;
        else
            out->x = st.x;
        st.x = NULL;
        out->rows = rows;
        out->targets = targets;
        out->classes = classes;
        if (numeric) {
            out->y = st.t;
            st.t = NULL;
        }
        if (cls) {
            out->label = st.lab;
            st.lab = NULL;
            out->y = alloc_zero(rows * (size_t)classes, sizeof(double));
            if (!out->y) {
                rc = bp_error(BP_ERR_NOMEM, err, err_size,
                              "%s: out of memory for %zu rows", path, rows);
                bp_data_free(out);
                goto done;
            }
            for (size_t r = 0; r < rows; r++)
                out->y[r * (size_t)classes + (size_t)out->label[r]] = 1.0;
        }
        rc = 0;
    }
done:
    free(st.x);
    free(st.t);
    free(st.lab);
    free(fcol);
    return rc;
}

int bp_data_load_csv(bp_dataset *out, const char *path,
                     const bp_csv_options *opt, char *err, size_t err_size)
{
    if (!out || !path)
        return bp_fail(err, err_size, "bp_data_load_csv: missing argument");
    memset(out, 0, sizeof *out);
    bp_csv_options o = opt ? *opt : bp_csv_defaults();
    if (o.max_columns <= 0)
        o.max_columns = 100000;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return bp_error(BP_ERR_IO, err, err_size, "%s: is a directory, not a CSV file",
                    path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot open: %s", path,
                    strerror(errno));
    csv_reader rd;
    memset(&rd, 0, sizeof rd);
    rd.f = f;
    rd.path = path;
    rd.err = err;
    rd.err_size = err_size;
    rd.line = 1;
    rd.max_columns = o.max_columns;
    rd.block = malloc(BLOCK);
    int rc = !rd.block ? bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path)
             : room_for(&rd, 0) ? rd.status : load(&rd, out, &o);
    free(rd.block);
    free(rd.buf);
    free(rd.off);
    free(rd.over);
    fclose(f);
    if (rc != 0)
        bp_data_free(out);
    return rc;
}
