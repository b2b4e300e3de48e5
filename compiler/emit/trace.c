/* trace.c — generated code traced back to its equations.
 *
 * Every step's comment starts with the .net file and line it was made for
 * (`iris.net:9  h = tanh(t7)`): a value's step, the statement defining it;
 * a gradient's step, the statement whose derivative it applies (graph.c,
 * diff.c and simplify.c stamp every node with that line). A gradient's
 * comment also gives the chain-rule step it computes in --explain's words
 * (explain_chain_rule), where the equation the code computes reads
 * otherwise.
 *
 * With --line-directives every line of such a step's code is preceded by
 * `#line N "model.net"`, so compiler messages, __LINE__ and debuggers point
 * at the statement; a directive numbers only the line after it, and every
 * line of a step belongs to the one statement. After the step a
 * placeholder line (BACK_TO_C) stands for the `#line` back into the C
 * file, whose number is known only once the whole file is written:
 * emit_c writes the file to memory and resolve_back_to_c() numbers them.
 */
#include "emit.h"

#include <stdlib.h>
#include <string.h>

const char BACK_TO_C[] = "#line (back to the C file)\n";

const char *source_place(Emit *e, int line)
{
    return line > 0 ? fmt(e, "%s:%d  ", e->source_name, line) : "";
}

const char *chain_rule(Emit *e, const Node *n)
{
    const char *loss = e->m->loss ? e->m->loss->name : "", *l = n->label;
    size_t ll = strlen(loss);
    if (!e->derivation || !l || l[0] != 'd' || strncmp(l + 1, loss, ll) != 0 ||
        strncmp(l + 1 + ll, "/d", 2) != 0 || !l[3 + ll])
        return NULL;
    return explain_chain_rule(e->a, e->derivation, l + 3 + ll);
}

/* A file name as a C string literal. */
static const char *c_string(Emit *e, const char *s)
{
    char *out = arena_alloc(e->a, strlen(s) * 4 + 3), *o = out;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            *o++ = '\\';
            *o++ = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += sprintf(o, "\\%03o", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

const char *source_directive(Emit *e, int line)
{
    if (!e->p->opt.line_directives || line <= 0 || !e->m->path)
        return NULL;
    return fmt(e, "#line %d %s\n", line, c_string(e, e->m->path));
}

void emit_traced_text(Emit *e, int line, const char *text, size_t len)
{
    const char *directive = source_directive(e, line);
    if (!directive) {
        fwrite(text, 1, len, e->out);
        return;
    }
    for (size_t at = 0; at < len;) {
        const char *p = text + at, *nl = memchr(p, '\n', len - at);
        size_t n = nl ? (size_t)(nl - p) + 1 : len - at;
        size_t lead = strspn(p, " ");
        /* a comment line (opening, or the second line of one) needs none */
        if (strncmp(p + lead, "/*", 2) != 0 && strncmp(p + lead, "* ", 2) != 0)
            fputs(directive, e->out);
        fwrite(p, 1, n, e->out);
        at += n;
    }
    fputs(BACK_TO_C, e->out);
}

void emit_traced_step(Emit *e, const Step *st)
{
    /* copies out to the caller (no node) are glue */
    const char *directive = st->node ? source_directive(e, st->node->line) : NULL;
    if (!directive) {
        emit_step(e, st);
        return;
    }
    FILE *out = e->out;
    char *text = NULL;
    size_t len = 0;
    e->out = open_memstream(&text, &len);
    if (!e->out)
        die("out of memory");
    emit_step(e, st);
    fclose(e->out);
    e->out = out;
    emit_traced_text(e, st->node->line, text, len);
    free(text);
}

void resolve_back_to_c(Emit *e, const char *text, size_t len, FILE *out)
{
    const char *c_path = c_string(e, e->p->opt.c_path ? e->p->opt.c_path : "");
    size_t mark = strlen(BACK_TO_C);
    long number = 1;
    for (size_t at = 0; at < len; number++) {
        const char *p = text + at, *nl = memchr(p, '\n', len - at);
        size_t n = nl ? (size_t)(nl - p) + 1 : len - at;
        if (n == mark && !memcmp(p, BACK_TO_C, mark))
            fprintf(out, "#line %ld %s\n", number + 1, c_path);
        else
            fwrite(p, 1, n, out);
        at += n;
    }
}
