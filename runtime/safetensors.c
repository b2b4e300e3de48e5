/* safetensors.c — a model's parameters in the safetensors format, the one
 * PyTorch, JAX and the Hugging Face tools exchange:
 *
 *   u64 N                 little-endian: the header's length in bytes
 *   N bytes               a JSON object, UTF-8, maybe padded with spaces:
 *                         {"W1":{"dtype":"F32","shape":[16,4],
 *                                "data_offsets":[0,256]}, ...,
 *                          "__metadata__":{"key":"value", ...}}
 *   data                  each tensor's values, row-major, little-endian,
 *                         at [begin, end) counted from the data's start
 *
 * Tensor names are the parameters' names in the .net file.
 *
 * The header is read by a strict parser of exactly this form, written
 * here rather than taken from a JSON library (cJSON, say): the runtime
 * must link with `cc ... libbp.a -lm` and nothing more, and the form is
 * small enough that a parser of it is shorter than the glue to a general
 * one. It accepts what RFC 8259 accepts for this form (whitespace, every
 * string escape, \u with surrogate pairs) and rejects everything else:
 * other value types where the form wants a string, an array or an
 * integer, numbers with fractions or exponents, duplicate keys, trailing
 * bytes other than spaces. The layout is checked as the format's reference
 * implementation checks it: the tensors' byte ranges, sorted, must tile the
 * data exactly (no gap, no overlap, nothing left over), and each range
 * must be the tensor's element count times its dtype's size.
 *
 * Nothing read is trusted: the header length is bounded by the file's real
 * size and by MAX_HEADER, every allocation by the header's real length or
 * by the model's size, and theta is written only once everything has been
 * checked. F32 and F64 tensors load into float or double models alike;
 * other dtypes (F16 and BF16 included: convert them in PyTorch with
 * .float() before saving) are refused with their name.
 */
#include "bp.h"
#include "internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u << 20)   /* as the reference implementation's 100 MB */
#define MAX_FILE_RANK 8           /* dimensions accepted in a file's shape */
#define CHUNK 8192

/* ---------------------------------------------------------------- dtypes */

typedef struct {
    const char *name;
    int size;               /* bytes per element */
} dtype_info;

/* Every dtype of the format, so that a file is laid out and checked whole
 * even when it holds tensors bpgen will not read. */
static const dtype_info dtypes[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"U64", 8},
    {"I32", 4}, {"U32", 4}, {"I16", 2}, {"U16", 2}, {"I8", 1}, {"U8", 1},
    {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"C64", 8},
};

/* ---------------------------------------------------------------- little-endian */

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

/* ---------------------------------------------------------------- the model */

static size_t elements(const bp_tensor_info *t)
{
    size_t n = 1;
    for (int d = 0; d < t->rank; d++)
        n *= (size_t)t->dims[d];
    return n;
}

static int check_model(const char *path, const bp_model *m, const void *theta,
                       char *err, size_t err_size)
{
    if (!path || !m || !theta)
        return bp_fail(err, err_size, "%s: invalid argument (NULL)", path ? path : "(null)");
    char why[256];
    if (bp_model_check_abi(m, why, sizeof why))
        return bp_fail(err, err_size, "%s: %s", path, why);
    if (m->real_size != 4 && m->real_size != 8)
        return bp_fail(err, err_size, "%s: model '%s' has real_size %d (need 4 or 8)",
                       path, m->name ? m->name : "?", m->real_size);
    if (m->num_param_tensors < 0 || (m->num_param_tensors > 0 && !m->params))
        return bp_fail(err, err_size, "%s: model '%s' has no parameter table",
                       path, m->name ? m->name : "?");
    const int max_rank = (int)(sizeof m->params[0].dims / sizeof m->params[0].dims[0]);
    for (int p = 0; p < m->num_param_tensors; p++) {
        const bp_tensor_info *t = &m->params[p];
        bool ok = t->name && t->name[0] && t->rank >= 0 && t->rank <= max_rank;
        for (int d = 0; ok && d < t->rank; d++)
            ok = t->dims[d] >= 1;
        if (!ok || elements(t) != t->size || t->offset > m->num_params ||
            t->size > m->num_params - t->offset)
            return bp_fail(err, err_size, "%s: model '%s': descriptor of parameter %d "
                           "is inconsistent", path, m->name ? m->name : "?", p);
    }
    return 0;
}

/* "[16, 4]", "[]" for a scalar. */
static const char *shape_str(char *buf, size_t size, int rank, const uint64_t *dims)
{
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < rank && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, "%s%llu", d ? ", " : "",
                              (unsigned long long)dims[d]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
    return buf;
}

/* ---------------------------------------------------------------- save */

/* Appends s to the header as a JSON string. */
static void json_string(char **buf, size_t *len, size_t *cap, const char *s, int *bad)
{
    size_t need = *len + 6 * strlen(s) + 3;
    if (need > *cap) {
        size_t c = 2 * need;
        char *b = realloc(*buf, c);
        if (!b) {
            *bad = 1;
            return;
        }
        *buf = b;
        *cap = c;
    }
    char *o = *buf + *len;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20) {
            o += sprintf(o, "\\u%04x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    *len = (size_t)(o - *buf);
}

static void append(char **buf, size_t *len, size_t *cap, const char *s, int *bad)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t c = 2 * (*len + n + 1);
        char *b = realloc(*buf, c);
        if (!b) {
            *bad = 1;
            return;
        }
        *buf = b;
        *cap = c;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

int bp_safetensors_save(const char *path, const bp_model *m, const void *theta,
                        char *err, size_t err_size)
{
    int bad_model = check_model(path, m, theta, err, err_size);
    if (bad_model)
        return bad_model;
    const int rs = m->real_size;
    const char *dtype = rs == 4 ? "F32" : "F64";

    /* The header: tensors in declaration order, laid out one after another. */
    char *h = NULL;
    size_t len = 0, cap = 0;
    int bad = 0;
    char num[96];
    append(&h, &len, &cap, "{", &bad);
    uint64_t offset = 0;
    for (int p = 0; p < m->num_param_tensors; p++) {
        const bp_tensor_info *t = &m->params[p];
        if (p)
            append(&h, &len, &cap, ",", &bad);
        json_string(&h, &len, &cap, t->name, &bad);
        append(&h, &len, &cap, ":{\"dtype\":\"", &bad);
        append(&h, &len, &cap, dtype, &bad);
        append(&h, &len, &cap, "\",\"shape\":[", &bad);
        for (int d = 0; d < t->rank; d++) {
            snprintf(num, sizeof num, "%s%d", d ? "," : "", t->dims[d]);
            append(&h, &len, &cap, num, &bad);
        }
        uint64_t bytes = (uint64_t)t->size * (uint64_t)rs;
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}",
                 (unsigned long long)offset, (unsigned long long)(offset + bytes));
        append(&h, &len, &cap, num, &bad);
        offset += bytes;
    }
    append(&h, &len, &cap, m->num_param_tensors ? "," : "", &bad);
    append(&h, &len, &cap, "\"__metadata__\":{\"format\":\"pt\",\"bpgen_model\":", &bad);
    json_string(&h, &len, &cap, m->name ? m->name : "", &bad);
    append(&h, &len, &cap, "}}", &bad);
    /* padded with spaces so the data starts 8-byte aligned, as other
     * writers do */
    while (!bad && (8 + len) % 8)
        append(&h, &len, &cap, " ", &bad);
    if (bad) {
        free(h);
        return bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
    }

    char *tmp;
    FILE *f = bp_create_temp(path, &tmp);
    if (!f) {
        int e = errno;
        free(h);
        if (e == ENOMEM)
            return bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot write a temporary file "
                        "beside it: %s", path, strerror(e));
    }
    errno = 0;      /* so that a failed write's errno is its own */
    unsigned char buf[CHUNK];
    put_le(buf, len, 8);
    bad = fwrite(buf, 1, 8, f) != 8 || fwrite(h, 1, len, f) != len;
    free(h);
    for (int p = 0; p < m->num_param_tensors && !bad; p++) {
        const bp_tensor_info *t = &m->params[p];
        size_t fill = 0;
        for (size_t i = 0; i < t->size && !bad; i++) {
            uint64_t bits;
            if (rs == 4) {
                uint32_t u;
                memcpy(&u, (const float *)theta + t->offset + i, 4);
                bits = u;
            } else {
                memcpy(&bits, (const double *)theta + t->offset + i, 8);
            }
            put_le(buf + fill, bits, rs);
            fill += (size_t)rs;
            if (fill == sizeof buf) {
                bad = fwrite(buf, 1, fill, f) != fill;
                fill = 0;
            }
        }
        if (!bad && fill)
            bad = fwrite(buf, 1, fill, f) != fill;
    }
    return bp_commit_temp(f, tmp, path, bad ? (errno ? errno : EIO) : 0, err, err_size);
}

/* ---------------------------------------------------------------- the header parser */

typedef struct {
    char *name;                     /* decoded, NUL-terminated, malloc'd */
    const dtype_info *dtype;
    int rank;
    uint64_t dims[MAX_FILE_RANK];
    uint64_t begin, end;            /* in the data, from its start */
    int used;                       /* matched to a model parameter */
} tensor;

typedef struct {
    const char *text, *p, *end;     /* the header */
    const char *path;
    char *err;
    size_t err_size;
    int failed;
    int status;                     /* the bp_status of the first error */
    tensor *t;
    size_t count, cap;
} parser;

/* Records the first error, "PATH: bad safetensors header at byte K: ...". */
static void syntax(parser *ps, const char *what)
{
    if (!ps->failed)
        ps->status = bp_error(strcmp(what, "out of memory") ? BP_ERR_FORMAT : BP_ERR_NOMEM,
                              ps->err, ps->err_size,
                              "%s: bad safetensors header at byte %lu: %s", ps->path,
                              (unsigned long)(8 + (ps->p - ps->text)), what);
    ps->failed = 1;
}

static void skip_space(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' ||
                               *ps->p == '\r'))
        ps->p++;
}

static int expect(parser *ps, char c, const char *what)
{
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return 0;
    }
    syntax(ps, what);
    return -1;
}

static int peek(parser *ps, char c)
{
    skip_space(ps);
    return ps->p < ps->end && *ps->p == c;
}

static int hex4(parser *ps, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        if (ps->p >= ps->end) {
            syntax(ps, "a \\u escape is cut short");
            return -1;
        }
        char c = *ps->p++;
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                   : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16) {
            syntax(ps, "a \\u escape needs four hexadecimal digits");
            return -1;
        }
        *v = *v << 4 | d;
    }
    return 0;
}

/* A JSON string, decoded into a malloc'd UTF-8 string (never longer than
 * its source). Returns NULL after an error. */
static char *parse_string(parser *ps)
{
    skip_space(ps);
    if (ps->p >= ps->end || *ps->p != '"') {
        syntax(ps, "expected a string");
        return NULL;
    }
    ps->p++;
    const char *start = ps->p;
    char *out = malloc((size_t)(ps->end - start) + 1);
    if (!out) {
        syntax(ps, "out of memory");
        return NULL;
    }
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p++;
        if (c < 0x20) {
            ps->p--;
            syntax(ps, "a control character in a string");
            free(out);
            return NULL;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            continue;
        }
        if (ps->p >= ps->end)
            break;
        char e = *ps->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            out[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        if (e != 'u') {
            ps->p--;
            syntax(ps, "an unknown escape in a string");
            free(out);
            return NULL;
        }
        unsigned cp;
        if (hex4(ps, &cp)) {
            free(out);
            return NULL;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                syntax(ps, "a high surrogate without its low surrogate");
                free(out);
                return NULL;
            }
            ps->p += 2;
            if (hex4(ps, &lo)) {
                free(out);
                return NULL;
            }
            if (lo < 0xDC00 || lo > 0xDFFF) {
                syntax(ps, "a high surrogate without its low surrogate");
                free(out);
                return NULL;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            syntax(ps, "a low surrogate on its own");
            free(out);
            return NULL;
        } else if (cp == 0) {
            syntax(ps, "a NUL character in a string");
            free(out);
            return NULL;
        }
        /* \uXXXX takes 6 bytes, its UTF-8 at most 3; a pair 12 and 4 */
        if (cp < 0x80) {
            out[n++] = (char)cp;
        } else if (cp < 0x800) {
            out[n++] = (char)(0xC0 | cp >> 6);
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[n++] = (char)(0xE0 | cp >> 12);
            out[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | cp >> 18);
            out[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
            out[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
            out[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (ps->p >= ps->end) {
        syntax(ps, "a string is not closed");
        free(out);
        return NULL;
    }
    ps->p++;    /* the closing quote */
    out[n] = '\0';
    return out;
}

/* A non-negative integer without sign, fraction or exponent, below 2^63. */
static int parse_uint(parser *ps, uint64_t *v)
{
    skip_space(ps);
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
        syntax(ps, "expected a non-negative integer");
        return -1;
    }
    if (*ps->p == '0' && ps->end - ps->p > 1 && ps->p[1] >= '0' && ps->p[1] <= '9') {
        syntax(ps, "a number with a leading zero");
        return -1;
    }
    *v = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        if (*v > (UINT64_C(1) << 59)) {
            syntax(ps, "a number too large");
            return -1;
        }
        *v = *v * 10 + (uint64_t)(*ps->p++ - '0');
    }
    if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E')) {
        syntax(ps, "expected an integer, found a fraction or exponent");
        return -1;
    }
    return 0;
}

/* "__metadata__": an object of strings, kept by nobody. */
static int parse_metadata(parser *ps)
{
    if (expect(ps, '{', "__metadata__ must be an object of strings"))
        return -1;
    if (peek(ps, '}'))
        return expect(ps, '}', "");
    do {
        char *key = parse_string(ps);
        if (!key)
            return -1;
        free(key);
        if (expect(ps, ':', "expected ':' after a key"))
            return -1;
        char *value = parse_string(ps);
        if (!value)
            return -1;
        free(value);
    } while (peek(ps, ',') && !expect(ps, ',', ""));
    return expect(ps, '}', "expected ',' or '}' in __metadata__");
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, keys in any
 * order, each exactly once. */
static int parse_tensor(parser *ps, tensor *t)
{
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    if (expect(ps, '{', "a tensor's entry must be an object"))
        return -1;
    do {
        char *key = parse_string(ps);
        if (!key)
            return -1;
        if (expect(ps, ':', "expected ':' after a key")) {
            free(key);
            return -1;
        }
        if (!strcmp(key, "dtype") && !have_dtype) {
            have_dtype = 1;
            const char *at = ps->p;
            char *name = parse_string(ps);
            if (!name) {
                free(key);
                return -1;
            }
            for (size_t i = 0; i < sizeof dtypes / sizeof *dtypes; i++)
                if (!strcmp(name, dtypes[i].name))
                    t->dtype = &dtypes[i];
            if (!t->dtype) {
                char msg[160];
                snprintf(msg, sizeof msg, "tensor '%.40s' has unknown dtype '%.40s'",
                         t->name, name);
                ps->p = at;
                syntax(ps, msg);
            }
            free(name);
        } else if (!strcmp(key, "shape") && !have_shape) {
            have_shape = 1;
            if (!expect(ps, '[', "a shape must be an array of integers") && !peek(ps, ']')) {
                do {
                    if (t->rank == MAX_FILE_RANK) {
                        syntax(ps, "a shape of more than 8 dimensions");
                        break;
                    }
                    if (parse_uint(ps, &t->dims[t->rank++]))
                        break;
                } while (peek(ps, ',') && !expect(ps, ',', ""));
            }
            expect(ps, ']', "expected ',' or ']' in a shape");
        } else if (!strcmp(key, "data_offsets") && !have_offsets) {
            have_offsets = 1;
            if (!expect(ps, '[', "data_offsets must be an array of two integers") &&
                !parse_uint(ps, &t->begin) &&
                !expect(ps, ',', "data_offsets must be an array of two integers") &&
                !parse_uint(ps, &t->end))
                expect(ps, ']', "data_offsets must be an array of two integers");
        } else {
            char msg[160];
            snprintf(msg, sizeof msg, "tensor '%.40s': %s key '%.40s'", t->name,
                     strcmp(key, "dtype") && strcmp(key, "shape") &&
                     strcmp(key, "data_offsets") ? "unknown" : "repeated", key);
            syntax(ps, msg);
        }
        free(key);
        if (ps->failed)
            return -1;
    } while (peek(ps, ',') && !expect(ps, ',', ""));
    if (expect(ps, '}', "expected ',' or '}' in a tensor's entry"))
        return -1;
    if (!have_dtype || !have_shape || !have_offsets) {
        char msg[160];
        snprintf(msg, sizeof msg, "tensor '%.40s' lacks '%s'", t->name,
                 !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
        syntax(ps, msg);
        return -1;
    }
    return 0;
}

static void free_tensors(parser *ps)
{
    for (size_t i = 0; i < ps->count; i++)
        free(ps->t[i].name);
    free(ps->t);
    ps->t = NULL;
    ps->count = ps->cap = 0;
}

static int parse_header(parser *ps)
{
    int have_metadata = 0;
    if (expect(ps, '{', "the header must be a JSON object"))
        return -1;
    if (!peek(ps, '}')) {
        do {
            const char *at = (skip_space(ps), ps->p);
            char *key = parse_string(ps);
            if (!key)
                return -1;
            if (expect(ps, ':', "expected ':' after a key")) {
                free(key);
                return -1;
            }
            if (!strcmp(key, "__metadata__")) {
                free(key);
                if (have_metadata) {
                    ps->p = at;
                    syntax(ps, "__metadata__ appears twice");
                    return -1;
                }
                have_metadata = 1;
                if (parse_metadata(ps))
                    return -1;
                continue;
            }
            for (size_t i = 0; i < ps->count; i++)
                if (!strcmp(ps->t[i].name, key)) {
                    char msg[120];
                    snprintf(msg, sizeof msg, "tensor '%.60s' appears twice", key);
                    free(key);
                    ps->p = at;
                    syntax(ps, msg);
                    return -1;
                }
            if (ps->count == ps->cap) {
                size_t cap = ps->cap ? 2 * ps->cap : 16;
                tensor *t = realloc(ps->t, cap * sizeof *t);
                if (!t) {
                    free(key);
                    syntax(ps, "out of memory");
                    return -1;
                }
                ps->t = t;
                ps->cap = cap;
            }
            tensor *t = &ps->t[ps->count++];
            memset(t, 0, sizeof *t);
            t->name = key;
            if (parse_tensor(ps, t))
                return -1;
        } while (peek(ps, ',') && !expect(ps, ',', ""));
    }
    if (expect(ps, '}', "expected ',' or '}' after a tensor's entry"))
        return -1;
    /* writers pad the header with spaces; nothing else may follow */
    while (ps->p < ps->end && *ps->p == ' ')
        ps->p++;
    if (ps->p < ps->end) {
        syntax(ps, "something follows the header's closing '}'");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- layout */

static int by_begin(const void *a, const void *b)
{
    const tensor *x = *(const tensor *const *)a, *y = *(const tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Every range is its tensor's size, and the ranges tile [0, data_size). */
static int check_layout(parser *ps, uint64_t data_size)
{
    char shape[160];
    for (size_t i = 0; i < ps->count; i++) {
        tensor *t = &ps->t[i];
        uint64_t n = 1;
        for (int d = 0; d < t->rank; d++) {
            if (t->dims[d] && n > UINT64_MAX / 16 / t->dims[d])
                return bp_error(BP_ERR_FORMAT, ps->err, ps->err_size, "%s: tensor '%s' has shape %s, "
                               "too large", ps->path, t->name,
                               shape_str(shape, sizeof shape, t->rank, t->dims));
            n *= t->dims[d];
        }
        if (t->begin > t->end || t->end > data_size)
            return bp_error(BP_ERR_FORMAT, ps->err, ps->err_size, "%s: tensor '%s' has data_offsets "
                           "[%llu, %llu] outside the %llu bytes of data", ps->path,
                           t->name, (unsigned long long)t->begin,
                           (unsigned long long)t->end, (unsigned long long)data_size);
        if (t->end - t->begin != n * (uint64_t)t->dtype->size)
            return bp_error(BP_ERR_FORMAT, ps->err, ps->err_size, "%s: tensor '%s' (%s %s) needs %llu "
                           "bytes but its data_offsets [%llu, %llu] hold %llu", ps->path,
                           t->name, t->dtype->name,
                           shape_str(shape, sizeof shape, t->rank, t->dims),
                           (unsigned long long)(n * (uint64_t)t->dtype->size),
                           (unsigned long long)t->begin, (unsigned long long)t->end,
                           (unsigned long long)(t->end - t->begin));
    }
    tensor **order = malloc((ps->count ? ps->count : 1) * sizeof *order);
    if (!order)
        return bp_error(BP_ERR_NOMEM, ps->err, ps->err_size, "%s: out of memory", ps->path);
    for (size_t i = 0; i < ps->count; i++)
        order[i] = &ps->t[i];
    qsort(order, ps->count, sizeof *order, by_begin);
    uint64_t at = 0;
    int rc = 0;
    for (size_t i = 0; i < ps->count && !rc; i++) {
        if (order[i]->begin > at)
            rc = bp_error(BP_ERR_FORMAT, ps->err, ps->err_size, "%s: bytes [%llu, %llu) of the data "
                         "belong to no tensor (a gap before '%s')", ps->path,
                         (unsigned long long)at, (unsigned long long)order[i]->begin,
                         order[i]->name);
        else if (order[i]->begin < at)
            rc = bp_error(BP_ERR_FORMAT, ps->err, ps->err_size, "%s: tensors '%s' and '%s' overlap "
                         "in the data", ps->path, order[i - 1]->name, order[i]->name);
        at = order[i]->end;
    }
    if (!rc && at != data_size)
        rc = bp_error(BP_ERR_FORMAT, ps->err, ps->err_size, "%s: the last %llu bytes of the data "
                     "belong to no tensor", ps->path,
                     (unsigned long long)(data_size - at));
    free(order);
    return rc;
}

/* ---------------------------------------------------------------- load */

static tensor *find(parser *ps, const char *name)
{
    for (size_t i = 0; i < ps->count; i++)
        if (!strcmp(ps->t[i].name, name))
            return &ps->t[i];
    return NULL;
}

/* Loads the parameters of m named in names[0..count) (names NULL: all of
 * them, and then the file may hold nothing else). */
static int load(const char *path, const bp_model *m, void *theta,
                const char *const names[], int count, char *err, size_t err_size)
{
    int bad_model = check_model(path, m, theta, err, err_size);
    if (bad_model)
        return bad_model;
    if (names && count < 0)
        return bp_fail(err, err_size, "%s: invalid argument (count %d)", path, count);
    for (int i = 0; names && i < count; i++) {
        int known = 0;
        for (int p = 0; names[i] && p < m->num_param_tensors; p++)
            known = known || !strcmp(m->params[p].name, names[i]);
        if (!known)
            return bp_fail(err, err_size, "%s: '%s' is not a parameter of model '%s'",
                           path, names[i] ? names[i] : "(null)", m->name ? m->name : "?");
    }

    FILE *f = fopen(path, "rb");
    if (!f)
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return bp_error(BP_ERR_IO, err, err_size, "%s: not a regular file", path);
    }
    uint64_t file_size = (uint64_t)st.st_size;
    unsigned char b8[8];
    if (file_size < 8 || fread(b8, 1, 8, f) != 8) {
        fclose(f);
        return bp_error(BP_ERR_FORMAT, err, err_size, "%s: not a safetensors file: shorter than its "
                       "8-byte header length", path);
    }
    uint64_t hlen = get_le(b8, 8);
    if (hlen > file_size - 8) {
        fclose(f);
        return bp_error(BP_ERR_FORMAT, err, err_size, "%s: header length %llu runs past the end of the "
                       "file (%llu bytes): truncated, or not a safetensors file", path,
                       (unsigned long long)hlen, (unsigned long long)file_size);
    }
    if (hlen > MAX_HEADER) {
        fclose(f);
        return bp_error(BP_ERR_FORMAT, err, err_size, "%s: header length %llu is over the limit of "
                       "%u bytes", path, (unsigned long long)hlen, MAX_HEADER);
    }
    if (hlen < 2) {
        fclose(f);
        return bp_error(BP_ERR_FORMAT, err, err_size, "%s: header of %llu bytes cannot hold a JSON object",
                       path, (unsigned long long)hlen);
    }
    char *text = malloc((size_t)hlen);
    if (!text) {
        fclose(f);
        return bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
    }
    if (fread(text, 1, (size_t)hlen, f) != hlen) {
        free(text);
        fclose(f);
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot read the header", path);
    }
    parser ps = {text, text, text + hlen, path, err, err_size, 0, BP_OK, NULL, 0, 0};
    int rc = parse_header(&ps) ? ps.status : check_layout(&ps, file_size - 8 - hlen);
    if (rc) {
        free_tensors(&ps);
        free(text);
        fclose(f);
        return rc;
    }
    free(text);

    /* Which tensors, and do they fit the model? */
    char fshape[160], mshape[160];
    for (int p = 0; p < m->num_param_tensors && !rc; p++) {
        const bp_tensor_info *mt = &m->params[p];
        int wanted = !names;
        for (int i = 0; names && i < count; i++)
            wanted = wanted || !strcmp(names[i], mt->name);
        if (!wanted)
            continue;
        tensor *t = find(&ps, mt->name);
        uint64_t dims[8];
        for (int d = 0; d < mt->rank; d++)
            dims[d] = (uint64_t)mt->dims[d];
        if (!t) {
            rc = bp_error(BP_ERR_MISMATCH, err, err_size, "%s: has no tensor '%s' (a parameter of model '%s')",
                         path, mt->name, m->name ? m->name : "?");
            break;
        }
        t->used = 1;
        int same = t->rank == mt->rank;
        for (int d = 0; same && d < t->rank; d++)
            same = t->dims[d] == dims[d];
        if (!same)
            rc = bp_error(BP_ERR_MISMATCH, err, err_size, "%s: tensor '%s' has shape %s in the file but %s "
                         "in model '%s'", path, mt->name,
                         shape_str(fshape, sizeof fshape, t->rank, t->dims),
                         shape_str(mshape, sizeof mshape, mt->rank, dims),
                         m->name ? m->name : "?");
        else if (!strcmp(t->dtype->name, "F16") || !strcmp(t->dtype->name, "BF16"))
            rc = bp_error(BP_ERR_FORMAT, err, err_size, "%s: tensor '%s' is %s, which bpgen does not read "
                         "(it reads F32 and F64; in PyTorch, save tensor.float())",
                         path, mt->name, t->dtype->name);
        else if (strcmp(t->dtype->name, "F32") && strcmp(t->dtype->name, "F64"))
            rc = bp_error(BP_ERR_FORMAT, err, err_size, "%s: tensor '%s' is %s, which bpgen does not read "
                         "(it reads F32 and F64)", path, mt->name, t->dtype->name);
    }
    for (size_t i = 0; i < ps.count && !rc && !names; i++)
        if (!ps.t[i].used)
            rc = bp_error(BP_ERR_MISMATCH, err, err_size, "%s: tensor '%s' is not a parameter of model '%s'",
                         path, ps.t[i].name, m->name ? m->name : "?");

    /* The values, into a copy of theta that replaces it only at the end. */
    const int rs = m->real_size;
    void *staged = NULL;
    if (!rc) {
        staged = malloc(m->num_params ? m->num_params * (size_t)rs : 1);
        if (!staged)
            rc = bp_error(BP_ERR_NOMEM, err, err_size, "%s: out of memory", path);
        else if (m->num_params)
            memcpy(staged, theta, m->num_params * (size_t)rs);
    }
    unsigned char buf[CHUNK];
    for (int p = 0; p < m->num_param_tensors && !rc; p++) {
        const bp_tensor_info *mt = &m->params[p];
        tensor *t = find(&ps, mt->name);
        if (!t || !t->used)
            continue;
        int fs = t->dtype->size;
        if (fseeko(f, (off_t)(8 + hlen + t->begin), SEEK_SET) != 0) {
            rc = bp_error(BP_ERR_IO, err, err_size, "%s: cannot seek: %s", path, strerror(errno));
            break;
        }
        size_t done = 0;
        while (done < mt->size && !rc) {
            size_t n = mt->size - done < CHUNK / 8 ? mt->size - done : CHUNK / 8;
            if (fread(buf, (size_t)fs, n, f) != n) {
                rc = bp_error(BP_ERR_IO, err, err_size, "%s: cannot read tensor '%s'", path, mt->name);
                break;
            }
            for (size_t i = 0; i < n; i++) {
                uint64_t bits = get_le(buf + i * (size_t)fs, fs);
                double v;
                if (fs == 4) {
                    uint32_t u = (uint32_t)bits;
                    float x;
                    memcpy(&x, &u, 4);
                    v = x;
                } else {
                    memcpy(&v, &bits, 8);
                }
                if (!isfinite(v) || (rs == 4 && fabs(v) > FLT_MAX)) {
                    rc = bp_error(BP_ERR_FORMAT, err, err_size, "%s: tensor '%s' value [%lu] is %g, %s",
                                 path, mt->name, (unsigned long)(done + i), v,
                                 isfinite(v) ? "out of float range" : "not a finite number");
                    break;
                }
                bp_real_set(staged, rs, mt->offset + done + i, v);
            }
            done += n;
        }
    }
    if (!rc && m->num_params)
        memcpy(theta, staged, m->num_params * (size_t)rs);
    free(staged);
    free_tensors(&ps);
    fclose(f);
    return rc;
}

int bp_safetensors_load(const char *path, const bp_model *m, void *theta,
                        char *err, size_t err_size)
{
    return load(path, m, theta, NULL, 0, err, err_size);
}

int bp_safetensors_load_tensors(const char *path, const bp_model *m, void *theta,
                                const char *const names[], int count, char *err,
                                size_t err_size)
{
    if (!names && count != 0)
        return bp_fail(err, err_size, "%s: invalid argument (names NULL)",
                       path ? path : "(null)");
    static const char *const none[1] = {NULL};
    return load(path, m, theta, names ? names : none, count, err, err_size);
}
