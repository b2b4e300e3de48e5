/* fuzz_idx.c — the IDX reader (idx.c) on any bytes: two files, images and
 * labels, plain or gzip-compressed, then the data-set functions on what
 * it loaded.
 *
 * Input: a control byte, two bytes (big-endian) giving the length of the
 * images file, the images file, and the rest as the labels file.
 * The control byte:
 *   bits 0-1  storage: bytes, float, double (3: bytes)
 *   bit  2    scaling: raw bytes 0..255, else pixel / 255
 *   bit  3    classes fixed at 10, else counted from the labels
 *   bit  4    no labels file (images only)
 *   bit  5    gzip the images file here before writing it
 *   bit  6    gzip the labels file likewise
 *   bit  7    small caps (50 rows, 4000 values), else the defaults
 * Bits 5 and 6 let the fuzzer reach the parser through zlib: mutated gzip
 * bytes almost never pass the stream's checksum, so without them the
 * gzip path would only ever see damaged streams (which the other inputs,
 * gzip seeds written as they are, still cover).
 *
 * Promises checked: on failure the data set is zeroed and the message
 * starts with the name of one of the two files; on success the shape
 * agrees with the caps, every value lies in [0, 1] (or [0, 255] raw), the
 * labels are below `classes` and y is their one-hot row; a batch can be
 * assembled, and subsetting, standardisation and splitting work on it. */
#include "fuzz.h"

#include "bp.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void fail(const char *what)
{
    fuzz_fail("fuzz_idx", what);
}

/* data gzip-compressed into a malloc'd buffer (*out_size bytes). */
static unsigned char *gzip(const unsigned char *data, size_t size, size_t *out_size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 15 + 16: a gzip header and trailer around the deflate stream */
    if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        fail("deflateInit2 failed");
    size_t cap = deflateBound(&z, (uLong)size) + 32;
    unsigned char *buf = malloc(cap);
    if (!buf)
        fail("out of memory");
    z.next_in = (Bytef *)(uintptr_t)data;   /* zlib does not write through next_in */
    z.avail_in = (uInt)size;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END)
        fail("deflate did not finish");
    *out_size = cap - z.avail_out;
    deflateEnd(&z);
    return buf;
}

/* Writes data to scratch slot `slot`, gzip-compressed when asked. */
static const char *write_file(int slot, const unsigned char *data, size_t size, bool compress)
{
    if (!compress)
        return fuzz_file_at(slot, data, size);
    size_t n;
    unsigned char *z = gzip(data, size, &n);
    const char *path = fuzz_file_at(slot, z, n);
    free(z);
    return path;
}

static bool zeroed(const bp_dataset *d)
{
    return !d->rows && !d->features && !d->targets && !d->classes && !d->x && !d->y &&
           !d->label && !d->xf && !d->xb && !d->xb_scale && !d->xb_shift;
}

static void check_loaded(const bp_dataset *d, const bp_idx_options *o, bool with_labels)
{
    if (d->rows > o->max_rows || d->rows * (size_t)d->features > o->max_values)
        fail("a loaded set is larger than the caps");
    if (d->features < 1)
        fail("a loaded set has no features");
    if (d->storage != o->storage)
        fail("the storage is not the one asked for");
    double top = o->scaling == BP_IDX_RAW ? 255 : 1;
    float *row = malloc(sizeof *row * (size_t)d->features);
    float *y = malloc(sizeof *y * (size_t)(d->targets ? d->targets : 1));
    if (!row || !y)
        fail("out of memory");
    for (size_t r = 0; r < d->rows; r++) {
        /* one row at a time, as training assembles batches */
        bp_batch_fill(d, &r, 1, (int)sizeof(float), row, d->targets ? (void *)y : NULL);
        for (int j = 0; j < d->features; j++)
            if (!(row[j] >= 0 && row[j] <= top))
                fail("a loaded value lies outside [0, 1] (or [0, 255] raw)");
    }
    free(row);
    free(y);
    if (!with_labels) {
        if (d->classes || d->label || d->y)
            fail("labels without a labels file");
        return;
    }
    if (d->classes < 1 || d->targets != d->classes || (o->classes && d->classes != o->classes))
        fail("classes do not follow the options");
    for (size_t r = 0; r < d->rows; r++) {
        int c = d->label[r];
        if (c < 0 || c >= d->classes)
            fail("a loaded label is out of range");
        for (int k = 0; k < d->classes; k++)
            if (d->y[r * (size_t)d->classes + (size_t)k] != (k == c))
                fail("y is not the one-hot row of the label");
    }
}

/* The data-set functions on the loaded set; each must succeed. */
static void use_dataset(const bp_dataset *d)
{
    if (d->rows == 0)
        return;
    char err[256];
    bp_dataset copy = {0}, train = {0}, test = {0};
    size_t *idx = malloc(d->rows * sizeof *idx);
    if (!idx)
        fail("out of memory");
    bp_rng r;
    bp_rng_seed(&r, d->rows);
    bp_shuffle_indices(idx, d->rows, &r);
    if (bp_data_subset(&copy, d, idx, d->rows, err, sizeof err))
        fail("bp_data_subset failed on a loaded set");
    bp_standardizer s = {0};
    if (bp_standardize_fit(&s, &copy, err, sizeof err))
        fail("bp_standardize_fit failed on a loaded set");
    if (bp_standardize_apply(&s, &copy, err, sizeof err))
        fail("bp_standardize_apply failed on a loaded set");
    bp_standardize_free(&s);
    if (bp_data_split(&copy, d->rows > 1 ? 0.25 : 0, 7, &train, &test, err, sizeof err))
        fail("bp_data_split failed on a loaded set");
    if (train.rows + test.rows != d->rows)
        fail("bp_data_split lost rows");
    bp_data_free(&test);
    bp_data_free(&train);
    bp_data_free(&copy);
    free(idx);
}

int fuzz_idx(const unsigned char *data, size_t size)
{
    if (size < 3)
        return 0;
    unsigned ctl = data[0];
    size_t images_size = (size_t)data[1] << 8 | data[2];
    data += 3, size -= 3;
    if (images_size > size)
        images_size = size;

    bp_idx_options o = bp_idx_defaults();
    static const bp_storage storages[4] = {BP_STORE_BYTE, BP_STORE_FLOAT, BP_STORE_DOUBLE,
                                           BP_STORE_BYTE};
    o.storage = storages[ctl & 3];
    o.scaling = ctl & 4 ? BP_IDX_RAW : BP_IDX_UNIT;
    o.classes = ctl & 8 ? 10 : 0;
    bool with_labels = !(ctl & 16);
    if (ctl & 128) {
        o.max_rows = 50;
        o.max_values = 4000;
    }
    const char *images = write_file(0, data, images_size, ctl & 32);
    const char *labels = with_labels ? write_file(1, data + images_size, size - images_size,
                                                  ctl & 64)
                                     : NULL;

    char err[512] = "";
    bp_dataset d;
    memset(&d, 0xAB, sizeof d);   /* not owned: the loader must overwrite it */
    if (bp_data_load_idx(&d, images, labels, &o, err, sizeof err)) {
        if (!zeroed(&d))
            fail("a failed load left data in the data set");
        if (strncmp(err, images, strlen(images)) != 0 &&
            !(labels && strncmp(err, labels, strlen(labels)) == 0))
            fail("the error message does not start with a file's name");
        return 0;
    }
    check_loaded(&d, &o, with_labels);
    use_dataset(&d);
    bp_data_free(&d);
    return 0;
}
