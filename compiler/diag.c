/* diag.c — collecting and printing the messages a user sees.
 *
 * In: errors and notes, each with a place (Loc) and a printf-style text,
 * reported in whatever order the passes find them. Out: on diag_flush(),
 *
 *     FILE:LINE:COL: error: MESSAGE
 *     the source line, quoted
 *           ^
 *     FILE:LINE:COL: note: MESSAGE        (each note of that error)
 *     ...
 *
 * Errors are sorted by place (line, then column; equal places keep the order
 * they were reported in), and errors without a place (line 0) come last,
 * written `FILE: error: MESSAGE`. A note belongs to the error reported just
 * before it and is printed right after it. An error reported twice with the
 * same place and text is printed once.
 *
 * Columns count characters (UTF-8 code points) from 1, as the lexer does.
 * The caret line repeats each tab of the source line (so the caret lines up
 * in any terminal) and uses spaces for everything else. The quoted line is
 * made printable: a byte that is not valid UTF-8 or a control character
 * becomes '?', one column as the lexer counts it; a very long line is
 * quoted as a window around the column, cut ends marked with "...". At most
 * MAX_ERRORS errors are printed, then one line saying how many were left.
 *
 * With colour on (diag_set_color; main.c decides, from --color, isatty and
 * NO_COLOR) the same text gets ANSI escapes as gcc and clang draw it: the
 * location bold, `error:` bold red, `note:` bold cyan, the caret bold
 * green. Only escapes are added, so stripping them gives the plain text.
 */
#include "bpgen.h"

#include <stdlib.h>
#include <string.h>

#define SGR_BOLD  "\033[1m"
#define SGR_ERROR "\033[1;31m"
#define SGR_NOTE  "\033[1;36m"
#define SGR_CARET "\033[1;32m"
#define SGR_RESET "\033[0m"

enum {
    MAX_ERRORS = 1000,     /* errors printed by one flush */
    QUOTE_MAX = 240,       /* lines longer than this (in characters) ... */
    QUOTE_CONTEXT = 100,   /* ... are quoted this far either side of the caret */
};

typedef struct {
    Loc at;
    bool is_note;
    int owner;          /* index of the error a note belongs to; -1 for none */
    int seq;            /* report order, for a stable sort */
    const char *text;
} Message;

struct Diag {
    Arena *arena;
    const char *path;
    const char *text;
    size_t len;
    Message *msgs;
    int nmsgs, cap;
    int nerrors;        /* every error reported, flushed or not */
    int last_error;     /* index in msgs of the latest error, or -1 */
    bool color;         /* ANSI escapes in diag_flush's output */
};

Diag *diag_new(Arena *a, const char *path, const char *text, size_t len)
{
    Diag *d = arena_alloc(a, sizeof *d);
    d->arena = a;
    d->path = path ? path : "<input>";
    d->text = text ? text : "";
    d->len = text ? len : 0;
    d->last_error = -1;
    return d;
}

static Message *add(Diag *d, Loc at, const char *fmt, va_list ap)
{
    if (d->nmsgs == d->cap) {
        int cap = d->cap ? 2 * d->cap : 32;
        Message *bigger = arena_alloc(d->arena, (size_t)cap * sizeof *bigger);
        if (d->nmsgs)
            memcpy(bigger, d->msgs, (size_t)d->nmsgs * sizeof *bigger);
        d->msgs = bigger;
        d->cap = cap;
    }
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *text = arena_alloc(d->arena, (size_t)(n < 0 ? 0 : n) + 1);
    if (n > 0)
        vsnprintf(text, (size_t)n + 1, fmt, ap);
    Message *m = &d->msgs[d->nmsgs];
    m->at = at;
    m->text = text;
    m->seq = d->nmsgs++;
    m->owner = -1;
    return m;
}

void diag_error(Diag *d, Loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    Message *m = add(d, at, fmt, ap);
    va_end(ap);
    m->is_note = false;
    d->last_error = m->seq;
    d->nerrors++;
}

void diag_note(Diag *d, Loc at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    Message *m = add(d, at, fmt, ap);
    va_end(ap);
    m->is_note = true;
    m->owner = d->last_error;
}

void diag_set_color(Diag *d, bool on)
{
    d->color = on;
}

int diag_count(const Diag *d)
{
    return d->nerrors;
}

/* ---------------------------------------------------------------- sorting */

/* Where an error sorts: by place, placeless ones last, then report order. */
static int compare_errors(const void *pa, const void *pb)
{
    const Message *a = *(const Message *const *)pa;
    const Message *b = *(const Message *const *)pb;
    long la = a->at.line > 0 ? a->at.line : 0x7fffffffL;
    long lb = b->at.line > 0 ? b->at.line : 0x7fffffffL;
    if (la != lb)
        return la < lb ? -1 : 1;
    if (a->at.col != b->at.col)
        return a->at.col < b->at.col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* ---------------------------------------------------------------- quoting */

/* Length in bytes of the valid UTF-8 character at s (n bytes left), or 0
 * when the bytes there are not one. */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    else if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    unsigned long cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* One character of a quoted line: its bytes as printed, and whether it is
 * a tab (which the caret line repeats). */
typedef struct {
    const char *bytes;
    size_t len;
} Char;

/* Bytes of the column starting at s (n bytes left): a UTF-8 character,
 * or one byte that is not one (quoted as '?'). */
static size_t column_bytes(const char *s, size_t n)
{
    size_t len = utf8_char_len((const unsigned char *)s, n);
    return len ? len : 1;
}

/* Splits the bytes [s, s+n) into at most `most` printable characters,
 * one per column. */
static Char *split_line(const char *s, size_t n, size_t most, size_t *count)
{
    if (most > n)
        most = n;
    Char *chars = malloc((most + 1) * sizeof *chars);
    if (!chars) {
        fputs("bpgen: out of memory\n", stderr);
        exit(2);
    }
    size_t k = 0;
    for (size_t i = 0; i < n && k < most;) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t len = utf8_char_len(u, n - i);
        if (len == 0 || (len == 1 && ((*u < 0x20 && *u != '\t') || *u == 0x7F))) {
            chars[k].bytes = "?";
            chars[k].len = 1;
            i += 1;
        } else {
            chars[k].bytes = s + i;
            chars[k].len = len;
            i += len;
        }
        k++;
    }
    *count = k;
    return chars;
}

static void put_chars(FILE *out, const Char *chars, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        fwrite(chars[i].bytes, 1, chars[i].len, out);
}

/* Where the lines start, and a place remembered in the latest quoted
 * line: the errors of one very long line come sorted by column, so the
 * columns are counted in one pass over it, not one pass per error. */
typedef struct {
    const size_t *line_start;
    int nlines;
    int line;           /* the line below is about; 0: none yet */
    size_t columns;     /* its length in columns */
    size_t column;      /* a column in it ... */
    size_t byte;        /* ... and the offset in the text where it starts */
} Lines;

/* Prints source line `line` (1-based) and a caret under column `col`. A
 * line longer than QUOTE_MAX columns is quoted around the caret only. */
static void quote(FILE *out, const Diag *d, Lines *lines, int line, int col)
{
    if (line < 1 || line > lines->nlines)
        return;
    size_t start = lines->line_start[line - 1];
    size_t end = line < lines->nlines ? lines->line_start[line] - 1 : d->len;
    if (end > start && d->text[end - 1] == '\r')
        end--;
    if (lines->line != line) {
        lines->line = line;
        lines->columns = 0;
        for (size_t i = start; i < end; i += column_bytes(d->text + i, end - i))
            lines->columns++;
        lines->column = 0;
        lines->byte = start;
    }
    size_t n = lines->columns;
    size_t caret = col > 0 ? (size_t)col - 1 : 0;   /* 0-based column */
    size_t from = 0, to = n;
    if (n > QUOTE_MAX) {
        from = caret > QUOTE_CONTEXT ? caret - QUOTE_CONTEXT : 0;
        if (from > n)
            from = n;
        to = caret + QUOTE_CONTEXT < n ? caret + QUOTE_CONTEXT : n;
    }
    if (lines->column > from) {     /* behind the remembered place */
        lines->column = 0;
        lines->byte = start;
    }
    while (lines->column < from) {
        lines->byte += column_bytes(d->text + lines->byte, end - lines->byte);
        lines->column++;
    }
    size_t count;
    Char *chars = split_line(d->text + lines->byte, end - lines->byte, to - from, &count);
    if (from > 0)
        fputs("...", out);
    put_chars(out, chars, 0, count);
    if (to < n)
        fputs("...", out);
    fputc('\n', out);
    if (from > 0)
        fputs("   ", out);
    for (size_t i = from; i < caret; i++)
        fputc(i - from < count && chars[i - from].bytes[0] == '\t' ? '\t' : ' ', out);
    fputs(d->color ? SGR_CARET "^" SGR_RESET "\n" : "^\n", out);
    free(chars);
}

static void print_message(FILE *out, const Diag *d, const Message *m, Lines *lines)
{
    const char *what = m->is_note ? "note" : "error";
    const char *bold = d->color ? SGR_BOLD : "";
    const char *kind = !d->color ? "" : m->is_note ? SGR_NOTE : SGR_ERROR;
    const char *reset = d->color ? SGR_RESET : "";
    if (m->at.line > 0) {
        fprintf(out, "%s%s:%d:%d:%s %s%s:%s %s\n", bold, d->path, m->at.line,
                m->at.col, reset, kind, what, reset, m->text);
        quote(out, d, lines, m->at.line, m->at.col);
    } else {
        fprintf(out, "%s%s:%s %s%s:%s %s\n", bold, d->path, reset, kind, what,
                reset, m->text);
    }
}

void diag_flush(Diag *d, FILE *out)
{
    if (d->nmsgs == 0)
        return;
    /* Where each line starts, so quoting is not quadratic. */
    int nlines = 1;
    for (size_t i = 0; i < d->len; i++)
        nlines += d->text[i] == '\n';
    size_t *line_start = malloc((size_t)nlines * sizeof *line_start);
    Message **order = malloc((size_t)d->nmsgs * sizeof *order);
    if (!line_start || !order) {
        fputs("bpgen: out of memory\n", stderr);
        exit(2);
    }
    line_start[0] = 0;
    for (size_t i = 0, k = 1; i < d->len; i++)
        if (d->text[i] == '\n')
            line_start[k++] = i + 1;

    Lines lines = {line_start, nlines, 0, 0, 0, 0};

    /* Errors and loose notes sort by place; attached notes follow. */
    int ntop = 0;
    for (int i = 0; i < d->nmsgs; i++)
        if (!d->msgs[i].is_note || d->msgs[i].owner < 0)
            order[ntop++] = &d->msgs[i];
    qsort(order, (size_t)ntop, sizeof *order, compare_errors);

    int printed = 0, dropped = 0;
    const Message *prev = NULL;
    for (int i = 0; i < ntop; i++) {
        const Message *m = order[i];
        if (prev && !m->is_note && !prev->is_note &&
            m->at.line == prev->at.line && m->at.col == prev->at.col &&
            strcmp(m->text, prev->text) == 0)
            continue;   /* the same error twice */
        prev = m;
        if (!m->is_note && printed == MAX_ERRORS) {
            dropped++;
            continue;
        }
        if (!m->is_note)
            printed++;
        else if (printed == MAX_ERRORS)
            continue;
        print_message(out, d, m, &lines);
        /* an error's notes are the messages right after it (a note
         * belongs to the error before it), so this stays linear */
        for (int j = m->seq + 1; j < d->nmsgs && d->msgs[j].is_note; j++)
            if (d->msgs[j].owner == m->seq)
                print_message(out, d, &d->msgs[j], &lines);
    }
    if (dropped)
        fprintf(out, "%s%s:%s %serror:%s too many errors; %d more not shown\n",
                d->color ? SGR_BOLD : "", d->path, d->color ? SGR_RESET : "",
                d->color ? SGR_ERROR : "", d->color ? SGR_RESET : "", dropped);
    free(order);
    free(line_start);
    d->nmsgs = 0;
    d->last_error = -1;
}
