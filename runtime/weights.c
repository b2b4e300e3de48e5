/* weights.c — saving and loading a model's parameter vector.
 *
 * File format, version 2. Every integer is little-endian and every value
 * IEEE-754 little-endian, written byte by byte, so files move between
 * machines unchanged:
 *
 *   "BPGW"                      magic, 4 bytes
 *   u32 version                 2
 *   u64 file_size               total bytes, checksum included
 *   u32 real_size               4 (float values) or 8 (double values)
 *   u32 len, len bytes          model name
 *   u32 num_tensors
 *   num_tensors times:
 *     u32 len, len bytes        tensor name
 *     u32 rank                  0 to 4
 *     u32 dims[rank]
 *   values                      every tensor in the order above, row-major
 *   u64 checksum                FNV-1a 64 of every byte before it
 *
 * Version 1 (bpgen 0.1) is the same layout with ranks up to 2; it is still
 * read. The version went up with the ranks so that a runtime of 0.1 meeting
 * a rank-4 tensor says "unsupported weights format version 2" rather than
 * calling a good file malformed.
 *
 * Saving writes a temporary file beside PATH (a unique name per save, so
 * concurrent saves never collide), flushes it to disk and renames it over
 * PATH, so PATH always holds either the old file or the complete new one.
 *
 * Loading never trusts the file: the size the header claims is compared
 * with the real size before anything else (so truncation is named as
 * such), the checksum is verified next (so damage is named as such), and
 * only then is the structure parsed, with every length bounded by what is
 * really in the file. Memory allocated while loading is bounded by the
 * file's real size and the model's size, never by a number read from the
 * file. theta is written only after everything has been checked. */
#include "bp.h"
#include "internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define MAGIC "BPGW"
#define VERSION 2u           /* written; versions 1 and 2 are read */
#define MAX_RANK 4
#define MAX_RANK_V1 2
#define PREAMBLE 16u         /* magic, version, file_size */
#define MAX_NAME 4096u       /* longest model or tensor name accepted */
#define MAX_ELEMS 2147483647ull
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull
#define CHUNK 8192

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Value i of a float or double array as the bits of the same value in
 * `file_rs` bytes (converting precision when they differ). */
static uint64_t encode_value(const void *theta, int rs, size_t i, int file_rs)
{
    double d = rs == 4 ? (double)((const float *)theta)[i]
                       : ((const double *)theta)[i];
    if (file_rs == 4) {
        float f = (float)d;
        uint32_t u;
        memcpy(&u, &f, 4);
        return u;
    }
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

/* The value whose bits, `file_rs` bytes of them, are `bits`. */
static double decode_value(uint64_t bits, int file_rs)
{
    double d;
    if (file_rs == 4) {
        uint32_t u = (uint32_t)bits;
        float f;
        memcpy(&f, &u, 4);
        d = f;
    } else {
        memcpy(&d, &bits, 8);
    }
    return d;
}

/* "[8, 1, 3, 3]", "[16]" or "[]" for a scalar; buf holds at least 64. */
static const char *shape_str(char *buf, size_t size, int rank,
                             const uint64_t dims[MAX_RANK])
{
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu",
                                 d ? ", " : "", (unsigned long long)dims[d]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

/* Checks a model's descriptor before trusting it with a file. */
static int check_model(const char *path, const bp_model *m, const void *theta,
                       char *err, size_t err_size)
{
    if (!path || !m || !theta)
        return bp_fail(err, err_size, "%s: invalid argument (NULL)",
                    path ? path : "(null)");
    char why[256];
    if (bp_model_check_abi(m, why, sizeof why))
        return bp_fail(err, err_size, "%s: %s", path, why);
    if (m->real_size != 4 && m->real_size != 8)
        return bp_fail(err, err_size, "%s: model '%s' has real_size %d (need 4 or 8)",
                    path, m->name ? m->name : "?", m->real_size);
    if (m->num_param_tensors < 0 || (m->num_param_tensors > 0 && !m->params))
        return bp_fail(err, err_size, "%s: model '%s' has no parameter table",
                    path, m->name ? m->name : "?");
    for (int p = 0; p < m->num_param_tensors; p++) {
        const bp_tensor_info *t = &m->params[p];
        int dims_ok = t->rank >= 0 && t->rank <= MAX_RANK;
        uint64_t elems = 1;
        for (int d = 0; dims_ok && d < t->rank; d++) {
            dims_ok = t->dims[d] >= 1;
            elems *= dims_ok ? (uint64_t)t->dims[d] : 0;
            dims_ok = dims_ok && elems <= MAX_ELEMS;  /* no overflow */
        }
        if (!t->name || !t->name[0] || strlen(t->name) > MAX_NAME
            || !dims_ok || elems != t->size || t->offset > m->num_params
            || t->size > m->num_params - t->offset)
            return bp_fail(err, err_size,
                        "%s: model '%s': descriptor of parameter %d is "
                        "inconsistent", path, m->name ? m->name : "?", p);
    }
    if (!m->name || strlen(m->name) > MAX_NAME)
        return bp_fail(err, err_size, "%s: model has no usable name", path);
    return 0;
}

/* ---------------------------------------------------------------- save */

typedef struct {
    FILE *f;
    uint64_t hash;
    int bad;        /* the errno of the first failed write, or 0 */
} writer;

static void w_bytes(writer *w, const void *p, size_t n)
{
    w->hash = fnv(w->hash, p, n);
    if (!w->bad && fwrite(p, 1, n, w->f) != n)
        w->bad = errno ? errno : EIO;
}

static void w_uint(writer *w, uint64_t v, int bytes)
{
    unsigned char b[8];
    put_le(b, v, bytes);
    w_bytes(w, b, (size_t)bytes);
}

static void w_str(writer *w, const char *s)
{
    size_t n = strlen(s);
    w_uint(w, n, 4);
    w_bytes(w, s, n);
}

/* Reads theta (caller-owned, m->num_params values of m->real_size); writes
 * a temporary file beside PATH (bp_create_temp) and renames it to PATH. On
 * failure PATH is untouched and the temporary file removed. */
int bp_weights_save(const char *path, const bp_model *m, const void *theta,
                    char *err, size_t err_size)
{
    int bad_model = check_model(path, m, theta, err, err_size);
    if (bad_model)
        return bad_model;
    int rs = m->real_size;

    uint64_t total = PREAMBLE + 4 + 4 + strlen(m->name) + 4 + 8;
    for (int p = 0; p < m->num_param_tensors; p++) {
        const bp_tensor_info *t = &m->params[p];
        total += 4 + strlen(t->name) + 4 + 4 * (uint64_t)t->rank
                 + (uint64_t)t->size * rs;
    }

    char *tmp;
    writer w = {bp_create_temp(path, &tmp), FNV_OFFSET, 0};
    if (!w.f) {
        int e = errno;
        if (e == ENOMEM)
            return bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot write a temporary file "
                       "beside it: %s", path, strerror(e));
    }
    errno = 0;      /* so that a failed write's errno is its own */
    w_bytes(&w, MAGIC, 4);
    w_uint(&w, VERSION, 4);
    w_uint(&w, total, 8);
    w_uint(&w, (uint64_t)rs, 4);
    w_str(&w, m->name);
    w_uint(&w, (uint64_t)m->num_param_tensors, 4);
    for (int p = 0; p < m->num_param_tensors; p++) {
        const bp_tensor_info *t = &m->params[p];
        w_str(&w, t->name);
        w_uint(&w, (uint64_t)t->rank, 4);
        for (int d = 0; d < t->rank; d++)
            w_uint(&w, (uint64_t)t->dims[d], 4);
    }
    unsigned char buf[CHUNK];
    for (int p = 0; p < m->num_param_tensors; p++) {
        const bp_tensor_info *t = &m->params[p];
        size_t fill = 0;
        for (size_t i = 0; i < t->size; i++) {
            put_le(buf + fill, encode_value(theta, rs, t->offset + i, rs), rs);
            fill += (size_t)rs;
            if (fill == sizeof buf) {
                w_bytes(&w, buf, fill);
                fill = 0;
            }
        }
        w_bytes(&w, buf, fill);
    }
    uint64_t sum = w.hash;
    w_uint(&w, sum, 8);

    return bp_commit_temp(w.f, tmp, path, w.bad, err, err_size);
}

/* ---------------------------------------------------------------- load */

/* One tensor's entry in the file's header. */
typedef struct {
    size_t name;          /* offset in the name pool */
    size_t name_len;
    int rank;
    uint64_t dims[MAX_RANK];
    uint64_t size;        /* elements */
    uint64_t data;        /* file offset of its first value */
} entry;

typedef struct {
    FILE *f;
    uint64_t pos, end;    /* end: where the checksum starts */
    int io_error;
} reader;

/* 0, or -1 when the bytes would run past `end` or cannot be read. */
static int r_bytes(reader *r, void *p, uint64_t n)
{
    if (n > r->end - r->pos)
        return -1;
    if (n && fread(p, 1, (size_t)n, r->f) != n) {
        r->io_error = 1;
        return -1;
    }
    r->pos += n;
    return 0;
}

static int r_u32(reader *r, uint64_t *v)
{
    unsigned char b[4];
    if (r_bytes(r, b, 4))
        return -1;
    *v = get_le(b, 4);
    return 0;
}

typedef struct {
    int real_size;
    char *pool;           /* every name, each NUL-terminated */
    entry *e;
    uint64_t count;
    size_t model_name;    /* offset in pool */
} header;

static void free_header(header *h)
{
    free(h->pool);
    free(h->e);
}

/* Reads a u32 length and that many bytes into the pool, which grows only
 * by bytes really read from the file. */
static int r_name(reader *r, header *h, size_t *pool_cap, size_t *pool_used,
                  size_t *off, size_t *len)
{
    uint64_t n;
    if (r_u32(r, &n) || n > MAX_NAME || n > r->end - r->pos)
        return -1;
    if (*pool_cap - *pool_used < n + 1) {
        size_t cap = 2 * *pool_cap + (size_t)n + 1;
        char *p = realloc(h->pool, cap);
        if (!p)
            return -2;
        h->pool = p;
        *pool_cap = cap;
    }
    if (r_bytes(r, h->pool + *pool_used, n)
        || memchr(h->pool + *pool_used, '\0', (size_t)n))
        return -1;
    h->pool[*pool_used + n] = '\0';
    *off = *pool_used;
    *len = (size_t)n;
    *pool_used += (size_t)n + 1;
    return 0;
}

/* Opens PATH, checks size, checksum and structure; fills h and leaves the
 * file open in *fp. Every failure is a message in err. */
static int read_header(const char *path, FILE **fp, header *h, char *err,
                       size_t err_size)
{
    memset(h, 0, sizeof *h);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot open: %s", path, strerror(e));
    }
    *fp = f;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))
        return bp_error(BP_ERR_IO, err, err_size, "%s: not a regular file", path);
    off_t end;
    if (fseeko(f, 0, SEEK_END) != 0 || (end = ftello(f)) < 0
        || fseeko(f, 0, SEEK_SET) != 0)
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot read (not a regular file?)",
                    path);
    uint64_t actual = (uint64_t)end;

    unsigned char pre[PREAMBLE];
    size_t got = fread(pre, 1, PREAMBLE, f);
    size_t cmp = got < 4 ? got : 4;
    if (memcmp(pre, MAGIC, cmp) != 0)
        return bp_error(BP_ERR_FORMAT, err, err_size, "%s: not a bpgen weights file (bad magic)",
                    path);
    if (got < PREAMBLE)
        return bp_error(BP_ERR_FORMAT, err, err_size,
                    "%s: truncated: %llu bytes, too short for a weights file",
                    path, (unsigned long long)actual);
    uint64_t version = get_le(pre + 4, 4);
    if (version < 1 || version > VERSION)
        return bp_error(BP_ERR_FORMAT, err, err_size,
                    "%s: unsupported weights format version %llu (this "
                    "runtime reads versions 1 to %u)", path,
                    (unsigned long long)version, VERSION);
    int max_rank = version == 1 ? MAX_RANK_V1 : MAX_RANK;
    uint64_t claimed = get_le(pre + 8, 8);
    if (actual < claimed)
        return bp_error(BP_ERR_FORMAT, err, err_size,
                    "%s: truncated: the file has %llu bytes but its header "
                    "says %llu", path, (unsigned long long)actual,
                    (unsigned long long)claimed);
    if (actual > claimed)
        return bp_error(BP_ERR_FORMAT, err, err_size,
                    "%s: damaged: the file has %llu bytes but its header says "
                    "%llu", path, (unsigned long long)actual,
                    (unsigned long long)claimed);
    if (claimed < PREAMBLE + 4 + 4 + 4 + 8)
        return bp_error(BP_ERR_FORMAT, err, err_size, "%s: damaged: impossible file size %llu",
                    path, (unsigned long long)claimed);

    /* Checksum before structure, so a flipped byte anywhere reads as
     * damage rather than as whatever the flip happens to mean. */
    unsigned char buf[CHUNK];
    uint64_t hash = fnv(FNV_OFFSET, pre, PREAMBLE);
    uint64_t left = claimed - 8 - PREAMBLE;
    while (left) {
        size_t n = left < sizeof buf ? (size_t)left : sizeof buf;
        if (fread(buf, 1, n, f) != n)
            return bp_error(BP_ERR_IO, err, err_size, "%s: read error", path);
        hash = fnv(hash, buf, n);
        left -= n;
    }
    if (fread(buf, 1, 8, f) != 8)
        return bp_error(BP_ERR_IO, err, err_size, "%s: read error", path);
    if (get_le(buf, 8) != hash)
        return bp_error(BP_ERR_FORMAT, err, err_size, "%s: checksum mismatch (file damaged)", path);

    /* The file is what its writer wrote; still parse it defensively, since
     * anyone can write a valid checksum. */
    if (fseeko(f, (off_t)PREAMBLE, SEEK_SET) != 0)
        return bp_error(BP_ERR_IO, err, err_size, "%s: read error", path);
    reader r = {f, PREAMBLE, claimed - 8, 0};
    uint64_t v;
    const char *why = NULL;
    if (r_u32(&r, &v) || (v != 4 && v != 8)) {
        why = "bad real_size";
        goto malformed;
    }
    h->real_size = (int)v;
    size_t pool_cap = 0, used = 0, len;
    int bad = r_name(&r, h, &pool_cap, &used, &h->model_name, &len);
    if (bad == -2)
        return bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
    if (bad) {
        why = "bad model name";
        goto malformed;
    }
    /* Each tensor entry takes at least 9 bytes (length, one-byte name,
     * rank), which bounds the count by the real file size; the entry
     * array still grows only as entries are really read. */
    if (r_u32(&r, &h->count) || h->count > (r.end - r.pos) / 9) {
        why = "bad tensor count";
        goto malformed;
    }
    size_t cap = 0;
    uint64_t values = 0;
    for (uint64_t i = 0; i < h->count; i++) {
        if (i == cap) {
            cap = cap ? 2 * cap : 16;
            entry *grown = realloc(h->e, cap * sizeof *grown);
            if (!grown)
                return bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
            h->e = grown;
        }
        entry *e = &h->e[i];
        bad = r_name(&r, h, &pool_cap, &used, &e->name, &e->name_len);
        if (bad == -2)
            return bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
        if (bad || e->name_len == 0) {
            why = "bad tensor name";
            goto malformed;
        }
        if (r_u32(&r, &v) || v > (uint64_t)max_rank) {
            why = "bad tensor rank";
            goto malformed;
        }
        e->rank = (int)v;
        for (int d = 0; d < MAX_RANK; d++)
            e->dims[d] = 1;
        e->size = 1;
        for (int d = 0; d < e->rank; d++) {
            if (r_u32(&r, &e->dims[d]) || e->dims[d] == 0) {
                why = "bad tensor dimension";
                goto malformed;
            }
            /* at most 2^31 - 1 times a u32 before this: cannot overflow */
            e->size *= e->dims[d];
            if (e->size > MAX_ELEMS) {
                why = "tensor too large";
                goto malformed;
            }
        }
        values += e->size;
        if (values > claimed) {      /* also keeps the sum from overflowing */
            why = "the values do not fit the file";
            goto malformed;
        }
    }
    if (r.io_error)
        return bp_error(BP_ERR_IO, err, err_size, "%s: read error", path);
    if (values > (r.end - r.pos) / (uint64_t)h->real_size
        || values * (uint64_t)h->real_size != r.end - r.pos) {
        why = "the values do not fill the file";
        goto malformed;
    }
    uint64_t at = r.pos;
    for (uint64_t i = 0; i < h->count; i++) {
        h->e[i].data = at;
        at += h->e[i].size * (uint64_t)h->real_size;
    }
    return 0;

malformed:
    if (r.io_error)
        return bp_error(BP_ERR_IO, err, err_size, "%s: read error", path);
    return bp_error(BP_ERR_FORMAT, err, err_size, "%s: malformed weights file (%s)", path, why);
}

static const entry *find_entry(const header *h, const char *name)
{
    for (uint64_t i = 0; i < h->count; i++)
        if (strcmp(h->pool + h->e[i].name, name) == 0)
            return &h->e[i];
    return NULL;
}

static const bp_tensor_info *find_param(const bp_model *m, const char *name)
{
    for (int p = 0; p < m->num_param_tensors; p++)
        if (strcmp(m->params[p].name, name) == 0)
            return &m->params[p];
    return NULL;
}

/* Checks that tensor t of model m has the same shape as file entry e. */
static int same_shape(const char *path, const bp_model *m,
                      const bp_tensor_info *t, const entry *e, char *err,
                      size_t err_size)
{
    uint64_t md[MAX_RANK];
    for (int d = 0; d < MAX_RANK; d++)
        md[d] = d < t->rank ? (uint64_t)t->dims[d] : 1;
    int same = e->rank == t->rank;
    for (int d = 0; same && d < t->rank; d++)
        same = e->dims[d] == md[d];
    if (same)
        return 0;
    char a[64], b[64];
    return bp_error(BP_ERR_MISMATCH, err, err_size,
                "%s: parameter '%s' has shape %s in the file but %s in model "
                "'%s'", path, t->name, shape_str(a, sizeof a, e->rank, e->dims),
                shape_str(b, sizeof b, t->rank, md), m->name);
}

/* Copies the values of file entry e into tensor t of staging (model
 * precision), converting from the file's precision. Every value must be
 * finite, and within float range for a float model (a double file's 1e300
 * would become inf): a parameter that is not a number is never loaded. */
static int read_values(const char *path, FILE *f, const header *h,
                       const entry *e, const bp_tensor_info *t, void *staging,
                       int rs, char *err, size_t err_size)
{
    unsigned char buf[CHUNK];
    int frs = h->real_size;
    if (fseeko(f, (off_t)e->data, SEEK_SET) != 0)
        return bp_error(BP_ERR_IO, err, err_size, "%s: read error", path);
    size_t per = sizeof buf / (size_t)frs;
    for (size_t i = 0; i < t->size;) {
        size_t n = t->size - i < per ? t->size - i : per;
        if (fread(buf, (size_t)frs, n, f) != n)
            return bp_error(BP_ERR_IO, err, err_size, "%s: read error", path);
        for (size_t j = 0; j < n; j++, i++) {
            double d = decode_value(get_le(buf + j * (size_t)frs, frs), frs);
            if (!isfinite(d))
                return bp_error(BP_ERR_FORMAT, err, err_size,
                            "%s: parameter '%s' value [%zu] is %s (not a "
                            "finite number)", path, t->name, i,
                            isnan(d) ? "nan" : (d > 0 ? "inf" : "-inf"));
            if (rs == 4 && fabs(d) > FLT_MAX)
                return bp_error(BP_ERR_FORMAT, err, err_size,
                            "%s: parameter '%s' value [%zu] is %.9g, out of "
                            "range for a float model (largest %.9g)", path,
                            t->name, i, d, (double)FLT_MAX);
            if (rs == 4)
                ((float *)staging)[t->offset + i] = (float)d;
            else
                ((double *)staging)[t->offset + i] = d;
        }
    }
    return 0;
}

/* Shared by both loaders: `names` NULL means every parameter of the model,
 * with the model's name and the file's tensor list checked as well. */
static int load(const char *path, const bp_model *m, void *theta,
                const char *const names[], int count, char *err,
                size_t err_size)
{
    int bad_model = check_model(path, m, theta, err, err_size);
    if (bad_model)
        return bad_model;
    FILE *f = NULL;
    header h;
    void *staging = NULL;
    int rc = read_header(path, &f, &h, err, err_size);
    if (rc)
        goto done;
    int full = names == NULL;
    int n = full ? m->num_param_tensors : count;
    if (full) {
        const char *fname = h.pool + h.model_name;
        if (strcmp(fname, m->name) != 0) {
            rc = bp_error(BP_ERR_MISMATCH, err, err_size,
                 "%s: the file holds weights for model '%s', not '%s'", path,
                 fname, m->name);
            goto done;
        }
        for (uint64_t i = 0; i < h.count; i++)
            if (!find_param(m, h.pool + h.e[i].name)) {
                rc = bp_error(BP_ERR_MISMATCH, err, err_size,
                     "%s: the file has parameter '%s', which model '%s' "
                     "does not", path, h.pool + h.e[i].name, m->name);
                goto done;
            }
        /* With every name on both sides present on the other, equal
         * counts also rule out a name stored twice. */
        if (h.count > (uint64_t)m->num_param_tensors) {
            rc = bp_error(BP_ERR_MISMATCH, err, err_size,
                 "%s: the file has %llu parameters but model '%s' has %d",
                 path, (unsigned long long)h.count, m->name, m->num_param_tensors);
            goto done;
        }
    }
    /* Check every requested tensor before reading any value. */
    for (int k = 0; k < n; k++) {
        const char *name = full ? m->params[k].name : names[k];
        if (!name) {
            rc = bp_fail(err, err_size, "%s: invalid argument (NULL name)", path);
            goto done;
        }
        const bp_tensor_info *t = full ? &m->params[k] : find_param(m, name);
        if (!t) {
            rc = bp_fail(err, err_size, "%s: model '%s' has no parameter '%s'", path,
                 m->name, name);
            goto done;
        }
        const entry *e = find_entry(&h, name);
        if (!e) {
            rc = bp_error(BP_ERR_MISMATCH, err, err_size,
                 "%s: parameter '%s' of model '%s' is not in the file", path,
                 name, m->name);
            goto done;
        }
        if ((rc = same_shape(path, m, t, e, err, err_size)) != 0)
            goto done;
    }
    int rs = m->real_size;
    staging = malloc(m->num_params ? m->num_params * (size_t)rs : 1);
    if (!staging) {
        rc = bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
        goto done;
    }
    for (int k = 0; k < n; k++) {
        const bp_tensor_info *t = full ? &m->params[k] : find_param(m, names[k]);
        if ((rc = read_values(path, f, &h, find_entry(&h, t->name), t, staging,
                              rs, err, err_size)) != 0)
            goto done;
    }
    /* Everything read: only now touch the caller's theta. */
    for (int k = 0; k < n; k++) {
        const bp_tensor_info *t = full ? &m->params[k] : find_param(m, names[k]);
        memcpy((char *)theta + t->offset * rs, (char *)staging + t->offset * rs,
               t->size * rs);
    }
    rc = 0;
done:
    free(staging);
    free_header(&h);
    if (f)
        fclose(f);
    return rc;
}

int bp_weights_load(const char *path, const bp_model *m, void *theta,
                    char *err, size_t err_size)
{
    return load(path, m, theta, NULL, 0, err, err_size);
}

int bp_weights_load_tensors(const char *path, const bp_model *m, void *theta,
                            const char *const names[], int count, char *err,
                            size_t err_size)
{
    static const char *const none[1] = {NULL};
    if (count < 0 || (count > 0 && !names))
        return bp_fail(err, err_size, "%s: invalid argument", path ? path : "(null)");
    return load(path, m, theta, count ? names : none, count, err, err_size);
}
