/* idx.c — the IDX reader (MNIST, Fashion-MNIST), plain or gzip-compressed.
 *
 * It lives in an object of its own because it needs zlib: a static
 * archive member is linked only when referenced, so a program that never
 * calls bp_data_load_idx links with -lm alone, and one that does adds -lz.
 * zlib's gzread reads plain files as they are, so one path serves both.
 *
 * Nothing in the file is trusted. The header's dimensions are checked for
 * overflow and against caps, and the values are read in chunks into a
 * buffer that grows with what has actually been read, so a header that
 * claims four billion images costs nothing until they appear. After the
 * promised values one more read must find the end of the data: that makes
 * zlib check the gzip trailer (CRC and length), and catches a file with
 * more values than its header says. */
#include "bp.h"
#include "internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_UBYTE 0x08
#define IDX_MAX_DIMS 4
#define CHUNK ((size_t)1 << 22)             /* 4 MiB per read */
#define CLASSES_MAX 65536

bp_idx_options bp_idx_defaults(void)
{
    bp_idx_options o;
    memset(&o, 0, sizeof o);
    o.storage = BP_STORE_BYTE;
    o.scaling = BP_IDX_UNIT;
    o.classes = 0;
    o.max_rows = 10000000;
    o.max_values = (size_t)1 << 32;
    return o;
}

typedef struct {
    gzFile f;
    const char *path;
    char *err;
    size_t err_size;
    int status;         /* the bp_status of the error reported */
} idx_file;

/* zlib's message for the stream's error, without the "PATH: " it puts in
 * front. */
static const char *zlib_message(idx_file *in, int *code)
{
    const char *msg = gzerror(in->f, code);
    size_t n = strlen(in->path);
    if (msg && strncmp(msg, in->path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        msg += n + 2;
    return msg && *msg ? msg : "zlib error";
}

/* Reads up to n bytes. Returns the count read (short only at the end of
 * the data), or -1 with the error written for a damaged stream. */
static long long read_some(idx_file *in, void *dst, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < CHUNK ? n - got : CHUNK;
        int r = gzread(in->f, (unsigned char *)dst + got, (unsigned)want);
        if (r < 0) {
            int code;
            const char *msg = zlib_message(in, &code);
            if (code == Z_ERRNO)
                return bp_error(BP_ERR_IO, in->err, in->err_size, "%s: read error: %s",
                            in->path, strerror(errno));
            return bp_error(BP_ERR_FORMAT, in->err, in->err_size,
                        "%s: damaged gzip stream (%s)", in->path, msg);
        }
        if (r == 0) {
            /* A gzip stream cut short reads as a short count with
             * Z_BUF_ERROR ("unexpected end of file"): that is truncation,
             * which the caller reports with the sizes. */
            int code;
            const char *msg = zlib_message(in, &code);
            if (code != Z_OK && code != Z_BUF_ERROR)
                return bp_error(BP_ERR_FORMAT, in->err, in->err_size,
                            "%s: damaged gzip stream (%s)", in->path, msg);
            break;
        }
        got += (size_t)r;
    }
    return (long long)got;
}

/* Opens path, checking it is a file first (gzopen would open a folder). */
static int open_idx(idx_file *in, const char *path, char *err,
                    size_t err_size)
{
    memset(in, 0, sizeof *in);
    in->path = path;
    in->err = err;
    in->err_size = err_size;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot open: %s", path,
                    strerror(errno));
    if (S_ISDIR(sb.st_mode))
        return bp_error(BP_ERR_IO, err, err_size, "%s: is a directory, not an IDX file",
                    path);
    errno = 0;
    in->f = gzopen(path, "rb");
    if (!in->f)
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot open: %s", path,
                    errno ? strerror(errno) : "out of memory");
    gzbuffer(in->f, 1 << 17);
    return 0;
}

/* Reads and checks the header: unsigned bytes, 1..IDX_MAX_DIMS
 * dimensions. dims[0..*ndims) receive the counts. */
static int read_header(idx_file *in, int *ndims, uint32_t dims[IDX_MAX_DIMS])
{
    unsigned char h[4];
    long long got = read_some(in, h, 4);
    if (got < 0)
        return (int)got;
    if (got < 4)
        return bp_error(BP_ERR_FORMAT, in->err, in->err_size,
                    "%s: not an IDX file (%s)", in->path,
                    got == 0 ? "it is empty" : "shorter than a header");
    if (h[0] != 0 || h[1] != 0)
        return bp_error(BP_ERR_FORMAT, in->err, in->err_size,
                    "%s: not an IDX file (it starts with %02X %02X %02X "
                    "%02X, not 00 00)", in->path, h[0], h[1], h[2], h[3]);
    if (h[2] != IDX_UBYTE)
        return bp_error(BP_ERR_FORMAT, in->err, in->err_size,
                    "%s: IDX values of type 0x%02X are not supported (only "
                    "unsigned bytes, 0x08)", in->path, h[2]);
    if (h[3] < 1 || h[3] > IDX_MAX_DIMS)
        return bp_error(BP_ERR_FORMAT, in->err, in->err_size,
                    "%s: IDX file with %d dimensions (1 to %d are supported)",
                    in->path, h[3], IDX_MAX_DIMS);
    *ndims = h[3];
    unsigned char d[4 * IDX_MAX_DIMS];
    got = read_some(in, d, 4 * (size_t)*ndims);
    if (got < 0)
        return (int)got;
    if (got < 4 * (long long)*ndims)
        return bp_error(BP_ERR_FORMAT, in->err, in->err_size,
                    "%s: truncated: the header ends after %lld of its %d "
                    "bytes", in->path, got + 4, 4 + 4 * *ndims);
    for (int k = 0; k < *ndims; k++)
        dims[k] = (uint32_t)d[4 * k] << 24 | (uint32_t)d[4 * k + 1] << 16 |
                  (uint32_t)d[4 * k + 2] << 8 | (uint32_t)d[4 * k + 3];
    return 0;
}

/* "60000 images of 28 x 28 bytes" */
static void describe(char *dst, size_t size, int ndims,
                     const uint32_t dims[IDX_MAX_DIMS], const char *what)
{
    int n = snprintf(dst, size, "%lu %s", (unsigned long)dims[0], what);
    for (int k = 1; k < ndims && n > 0 && (size_t)n < size; k++)
        n += snprintf(dst + n, size - (size_t)n, "%s%lu",
                      k == 1 ? " of " : " x ", (unsigned long)dims[k]);
    if (ndims > 1 && n > 0 && (size_t)n < size)
        snprintf(dst + n, size - (size_t)n, " bytes");
}

/* Reads exactly `total` value bytes into a malloc'd buffer grown as data
 * arrives, then checks the data ends there. */
static unsigned char *read_values(idx_file *in, size_t total,
                                  const char *promised)
{
    size_t cap = total < CHUNK ? total : CHUNK, have = 0;
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf) {
        in->status = bp_error(BP_ERR_NOMEM, in->err, in->err_size, "%s: out of memory", in->path);
        return NULL;
    }
    while (have < total) {
        if (have == cap) {
            size_t grow = cap > total - cap ? total : cap * 2;
            unsigned char *b = realloc(buf, grow);
            if (!b) {
                free(buf);
                in->status = bp_error(BP_ERR_NOMEM, in->err, in->err_size,
                        "%s: out of memory after %zu bytes", in->path, have);
                return NULL;
            }
            buf = b;
            cap = grow;
        }
        long long got = read_some(in, buf + have, cap - have);
        if (got < 0) {
            in->status = (int)got;
            free(buf);
            return NULL;
        }
        have += (size_t)got;
        if (have < cap)
            break;
    }
    if (have < total) {
        free(buf);
        in->status = bp_error(BP_ERR_FORMAT, in->err, in->err_size,
                "%s: truncated: the header promises %s (%zu bytes) but the "
                "file holds %zu", in->path, promised, total, have);
        return NULL;
    }
    unsigned char extra;
    long long more = read_some(in, &extra, 1);
    if (more != 0) {
        if (more < 0)
            in->status = (int)more;
        free(buf);
        if (more > 0)
            in->status = bp_error(BP_ERR_FORMAT, in->err, in->err_size,
                    "%s: more data than the header promises (%s)", in->path,
                    promised);
        return NULL;
    }
    return buf;
}

/* The images: rows and features from the header, bytes into *values. */
static int load_images(const char *path, const bp_idx_options *o,
                       size_t *rows, int *features, unsigned char **values,
                       char *err, size_t err_size)
{
    idx_file in;
    int rc = open_idx(&in, path, err, err_size);
    if (rc != 0)
        return rc;
    int ndims;
    uint32_t dims[IDX_MAX_DIMS];
    if ((rc = read_header(&in, &ndims, dims)) != 0)
        goto done;
    rc = BP_ERR_FORMAT;
    /* The product of the dimensions, with overflow checked in 64 bits
     * (each is below 2^32, so one product of two fits). */
    uint64_t per = 1;
    int over = 0;
    for (int k = 1; k < ndims; k++) {
        if (dims[k] && per > UINT64_MAX / dims[k])
            over = 1;
        else
            per *= dims[k];
    }
    if (!over && per && dims[0] > UINT64_MAX / per)
        over = 1;
    char promised[160];
    describe(promised, sizeof promised, ndims, dims,
             ndims == 1 ? "values" : "images");
    if (over || per > (uint64_t)INT32_MAX ||
        (per && dims[0] > SIZE_MAX / per)) {
        rc = bp_error(BP_ERR_FORMAT, err, err_size, "%s: dimensions too large: %s overflow",
                path, promised);
        goto done;
    }
    uint64_t total = (uint64_t)dims[0] * per;
    if (dims[0] == 0 || per == 0) {
        rc = bp_error(BP_ERR_FORMAT, err, err_size, "%s: no data (the header promises %s)", path,
                promised);
        goto done;
    }
    if (dims[0] > o->max_rows) {
        rc = bp_error(BP_ERR_FORMAT, err, err_size, "%s: %lu rows are more than %zu (max_rows)",
                path, (unsigned long)dims[0], o->max_rows);
        goto done;
    }
    if (total > o->max_values) {
        rc = bp_error(BP_ERR_FORMAT, err, err_size,
                "%s: %s are more than %zu values (max_values)", path,
                promised, o->max_values);
        goto done;
    }
    *values = read_values(&in, (size_t)total, promised);
    if (!*values) {
        rc = in.status;
        goto done;
    }
    *rows = dims[0];
    *features = (int)per;
    rc = 0;
done:
    gzclose(in.f);
    return rc;
}

/* The labels: one dimension, as many as expected_rows. */
static int load_labels(const char *path, const char *images_path,
                       size_t expected_rows, unsigned char **values,
                       char *err, size_t err_size)
{
    idx_file in;
    int rc = open_idx(&in, path, err, err_size);
    if (rc != 0)
        return rc;
    int ndims;
    uint32_t dims[IDX_MAX_DIMS];
    if ((rc = read_header(&in, &ndims, dims)) != 0)
        goto done;
    rc = BP_ERR_FORMAT;
    if (ndims != 1) {
        rc = bp_error(BP_ERR_FORMAT, err, err_size,
                "%s: a labels file has one dimension, this one has %d", path,
                ndims);
        goto done;
    }
    if ((size_t)dims[0] != expected_rows) {
        rc = bp_error(BP_ERR_MISMATCH, err, err_size, "%s has %zu images but %s has %lu labels",
                images_path, expected_rows, path, (unsigned long)dims[0]);
        goto done;
    }
    char promised[64];
    describe(promised, sizeof promised, 1, dims, "labels");
    *values = read_values(&in, (size_t)dims[0], promised);
    rc = *values ? 0 : in.status;
done:
    gzclose(in.f);
    return rc;
}

int bp_data_load_idx(bp_dataset *out, const char *images_path,
                     const char *labels_path, const bp_idx_options *opt,
                     char *err, size_t err_size)
{
    if (!out || !images_path)
        return bp_fail(err, err_size, "bp_data_load_idx: missing argument");
    memset(out, 0, sizeof *out);
    bp_idx_options o = opt ? *opt : bp_idx_defaults();
    if (o.storage != BP_STORE_BYTE && o.storage != BP_STORE_FLOAT &&
        o.storage != BP_STORE_DOUBLE)
        return bp_fail(err, err_size, "%s: bad options (storage %d)",
                    images_path, (int)o.storage);
    if (o.scaling != BP_IDX_UNIT && o.scaling != BP_IDX_RAW)
        return bp_fail(err, err_size,
                    "%s: bad options (scaling %d: expected BP_IDX_UNIT or "
                    "BP_IDX_RAW)", images_path, (int)o.scaling);
    if (o.classes < 0 || o.classes > CLASSES_MAX)
        return bp_fail(err, err_size, "%s: bad options (classes %d)",
                    labels_path ? labels_path : images_path, o.classes);
    if (!o.max_rows)
        o.max_rows = bp_idx_defaults().max_rows;
    if (!o.max_values)
        o.max_values = bp_idx_defaults().max_values;

    size_t rows = 0;
    int features = 0, classes = 0;
    unsigned char *pixels = NULL, *labels = NULL;
    int rc = load_images(images_path, &o, &rows, &features, &pixels, err,
                         err_size);
    if (rc != 0)
        return rc;
    if (labels_path) {
        rc = load_labels(labels_path, images_path, rows, &labels, err,
                         err_size);
        if (rc != 0)
            goto done;
        int largest = 0;
        for (size_t r = 0; r < rows; r++)
            if (labels[r] > largest)
                largest = labels[r];
        classes = o.classes ? o.classes : largest + 1;
        if (largest >= classes) {
            size_t r = 0;
            while (labels[r] < classes)
                r++;
            rc = bp_error(BP_ERR_FORMAT, err, err_size,
                    "%s: label %d (of image %zu) is out of range: %d classes "
                    "(0 to %d)", labels_path, labels[r], r, classes,
                    classes - 1);
            goto done;
        }
    }
    /* With 0 rows this can only fail for want of memory; the message says
     * so with the file's name, as every other one here does. */
    rc = bp_data_create_stored(out, 0, features, classes, classes, o.storage,
                               NULL, 0);
    if (rc != 0) {
        rc = bp_error(rc, err, err_size, "%s: out of memory for %zu rows", images_path, rows);
        goto done;
    }
    double unit = o.scaling == BP_IDX_UNIT ? 1.0 / 255.0 : 1.0;
    size_t count = rows * (size_t)features;
    if (o.storage == BP_STORE_BYTE) {
        /* The pixel buffer becomes the data set's: no copy. */
        free(out->xb);
        out->xb = pixels;
        pixels = NULL;
        for (int j = 0; j < features; j++)
            out->xb_scale[j] = unit;
    } else {
        void *x = malloc(count * (o.storage == BP_STORE_FLOAT ? sizeof(float)
                                                              : sizeof(double)));
        if (!x) {
            bp_data_free(out);
            rc = bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory for %zu rows",
                    images_path, rows);
            goto done;
        }
        for (size_t i = 0; i < count; i++) {
            if (o.storage == BP_STORE_FLOAT)
                ((float *)x)[i] = (float)(pixels[i] * unit);
            else
                ((double *)x)[i] = pixels[i] * unit;
        }
        if (o.storage == BP_STORE_FLOAT) {
            free(out->xf);
            out->xf = x;
        } else {
            free(out->x);
            out->x = x;
        }
    }
    if (classes) {
        free(out->y);
        free(out->label);
        out->y = calloc(rows * (size_t)classes, sizeof(double));
        out->label = malloc(rows * sizeof(int));
        if (!out->y || !out->label) {
            bp_data_free(out);
            rc = bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory for %zu labels",
                    labels_path, rows);
            goto done;
        }
        for (size_t r = 0; r < rows; r++) {
            out->label[r] = labels[r];
            out->y[r * (size_t)classes + labels[r]] = 1.0;
        }
    }
    out->rows = rows;
    rc = 0;
done:
    free(pixels);
    free(labels);
    return rc;
}
