/* emit.c — a Plan written out as C: the model's header and its source.
 *
 * In:  a Plan (lower.c has decided every step, mode and buffer).
 * Out: M.h (sizes, offsets, prototypes, the bp_model) and M.c (the
 *      functions of CONTRACT section 4, the bp_model descriptor with its
 *      untyped wrappers, and with --main a driver).
 *
 * How: each function's body is written to memory first, step by step;
 * while it is written, every buffer, leaf and helper it names is noted, so
 * that only those get declared (nothing unused, so -Wall -Wextra stay
 * quiet). A step is one loop nest or one gemm call, preceded by a comment
 * with the equation it computes, printed by print.c. emit.h lists which
 * file of compiler/emit/ does what.
 */
#include "emit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void die(const char *what)
{
    fprintf(stderr, "bpgen: internal error: emit: %s\n", what);
    abort();
}

/* ---------------------------------------------------------------- printing */

void line(Emit *e, int depth, const char *format, ...)
{
    for (int i = 0; i < depth; i++)
        fputs("    ", e->out);
    va_list ap;
    va_start(ap, format);
    vfprintf(e->out, format, ap);
    va_end(ap);
    fputc('\n', e->out);
}

void indent_to(FILE *out, int depth)
{
    for (int i = 0; i < depth; i++)
        fputs("    ", out);
}

/* ---------------------------------------------------------------- comments */

/* One line of comment text: no newline, no comment delimiters, bounded. */
const char *comment_text(Emit *e, const char *text)
{
    enum { LIMIT = 160 };
    size_t len = strlen(text);
    char *s = arena_alloc(e->a, len * 2 + 8);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        s[k++] = c;
        if ((c == '*' && text[i + 1] == '/') || (c == '/' && text[i + 1] == '*'))
            s[k++] = ' ';
    }
    s[k] = '\0';
    if (k > LIMIT) {
        size_t cut = LIMIT;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
        strcpy(s + cut, " ...");
    }
    return s;
}

/* `model.net:7  NAME = EXPR` for the comment above the step computing n;
 * for a gradient whose chain rule reads otherwise, a tab and
 * `chain rule: dL/dX = ...` (comment() writes it as a second line). */
const char *equation(Emit *e, Node *n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        die("out of memory");
    Node copy = *n;
    copy.name = NULL;
    const char *place = source_place(e, n->line);
    fprintf(f, "%s%s = ", place, n->name ? n->name : e->cname[n->id]);
    print_expr_brief(f, &copy, 200);
    fclose(f);
    const char *s = comment_text(e, text ? text : "");
    const char *rule = chain_rule(e, n);
    if (rule && text && strcmp(rule, text + strlen(place)) != 0)
        s = fmt(e, "%s\tchain rule: %s", s, comment_text(e, rule));
    free(text);
    return s;
}

/* A comment; a tab in `text` starts its second line. */
void comment(Emit *e, int depth, const char *text)
{
    const char *tab = strchr(text, '\t');
    if (!tab) {
        line(e, depth, "/* %s */", text);
        return;
    }
    line(e, depth, "/* %.*s", (int)(tab - text), text);
    line(e, depth, " * %s */", tab + 1);
}


bool emit_c(const Plan *p, FILE *c_file, FILE *h_out)
{
    Emit e;
    memset(&e, 0, sizeof e);
    e.p = p;
    e.g = p->graph;
    e.m = p->graph->model;
    e.a = p->arena;
    e.M = e.m->name;
    e.dbl = p->opt.precision == PREC_DOUBLE;
    e.real = e.dbl ? "double" : "float";
    size_t count = (size_t)e.g->nnodes + 1;
    e.cname = arena_alloc(e.a, sizeof(char *) * count);
    e.orig = arena_alloc(e.a, sizeof(char *) * count);
    e.used = arena_alloc(e.a, sizeof(bool) * count);
    e.used_ids = arena_alloc(e.a, sizeof(int) * count);
    const char *slash = e.m->path ? strrchr(e.m->path, '/') : NULL;
    e.source_name = slash ? slash + 1 : e.m->path ? e.m->path : "model";
    /* the chain rule only: closed forms are for --explain */
    e.derivation = explain_derive(e.a, e.m, false);
    assign_names(&e);
    if (p->opt.check_finite)    /* after every .net name, so it takes none */
        e.found = unique_name(&e, "found");
    /* M_forward_backward's and M_step's locals */
    e.loss_name = unique_name(&e, "loss");
    e.inv_n_name = unique_name(&e, "inv_n");
    if (p->opt.step) {
        e.opt_name = unique_name(&e, "opt");
        e.pool_name = unique_name(&e, "pool");
    }

    /* the functions first, into memory: they decide which helpers exist */
    char *fns = NULL;
    size_t nfns = 0;
    FILE *body = open_memstream(&fns, &nfns);
    if (!body)
        die("out of memory");
    emit_function(&e, body, PF_FORWARD,
                  "/* The batch loss: the mean over the n samples of the per-sample loss.\n"
                  " * Keeps in ws what backward needs. */");
    emit_function(&e, body, PF_BACKWARD,
                  "/* Every gradient of the batch loss. Call after forward, with the same\n"
                  " * arguments: it reads what forward left in ws. */");
    emit_function(&e, body, PF_PREDICT,
                  "/* The outputs, n rows each. Reads only the inputs the outputs depend on. */");
    emit_function(&e, body, PF_OUTPUTS,
                  "/* The outputs, as predict gives them, from what forward left in ws: call\n"
                  " * after forward, with the same arguments. Evaluation (a loss and the\n"
                  " * outputs) then runs the layers once. */");
    emit_forward_outputs(&e, body);
    emit_forward_backward(&e, body);
    emit_forward_backward_any(&e, body);
    if (p->opt.step)
        emit_fused_step(&e, body);
    fclose(body);

    /* with #line directives the file is made in memory, to be numbered */
    char *whole = NULL;
    size_t nwhole = 0;
    FILE *c_out = p->opt.line_directives ? open_memstream(&whole, &nwhole) : c_file;
    if (!c_out)
        die("out of memory");
    Model *m = e.m;
    const char *file = m->path ? m->path : "a model";
    fprintf(c_out, "/* Generated by bpgen %s from %s — do not edit. */\n", BPGEN_VERSION,
            comment_text(&e, file));
    fprintf(c_out, "#include <math.h>\n#include <string.h>\n");
    if (p->opt.with_main)
        fprintf(c_out, "#include <errno.h>\n#include <stdio.h>\n#include <stdlib.h>\n");
    fprintf(c_out, "\n#include \"%s\"\n\n",
            p->opt.header_name ? p->opt.header_name : fmt(&e, "%s.h", e.M));
    emit_helpers(&e, c_out);
    bool split = false;
    for (int f = 0; f < PF__COUNT; f++)
        split = split || p->ngroups[f] > 1;
    split = split || p->nfused_groups > 1;
    if (split)
        fprintf(c_out, "/* The long functions below call a static function per group of steps:\n"
                       " * inlined back into one, the C compiler's time would grow faster than\n"
                       " * the model. */\n"
                       "#if defined(__GNUC__)\n#define %s_NOINLINE __attribute__((noinline))\n"
                       "#else\n#define %s_NOINLINE\n#endif\n\n", e.M, e.M);
    emit_init(&e, c_out);
    fprintf(c_out, "/* Bytes of workspace for a batch of n: %ld reals per sample and %ld\n"
                   " * shared%s. */\n", p->ws_batched, p->ws_shared,
            e.found ? ", after the record of --check-finite" : "");
    fprintf(c_out, "size_t %s_workspace_size(int n)\n{\n", e.M);
    fprintf(c_out, "    size_t rows = n > 0 ? (size_t)n : 0;\n");
    if (e.found)
        nonfinite_workspace_size(&e, c_out);
    else
        fprintf(c_out, "    return (%ld * rows + %ld) * sizeof(%s);\n}\n\n", p->ws_batched,
                p->ws_shared, e.real);
    fwrite(fns, 1, nfns, c_out);
    free(fns);
    emit_model(&e, c_out);
    if (p->opt.selftest)
        emit_selftest(&e, c_out);
    if (p->opt.with_main)
        emit_main(&e, c_out);
    if (c_out != c_file) {
        fclose(c_out);
        resolve_back_to_c(&e, whole, nwhole, c_file);
        free(whole);
    }
    emit_header(&e, h_out);
    return !ferror(c_file) && !ferror(h_out);
}

