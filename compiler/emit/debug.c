/* debug.c — what --selftest and --check-finite add to the generated code
 * (docs/generated-code.md, "Debugging aids").
 *
 * --selftest: M_selftest, a call of the runtime's bp_selftest on the
 * model's descriptor, and in the header the scratch size it needs (as
 * bp_selftest_scratch_size computes it) and its tolerance.
 *
 * --check-finite: e->found names the local that points at the record at
 * the start of ws. After each step that lowering marked (Step.check_finite:
 * every step computing a value) frames.c calls check_step, a scan of the
 * buffer the step wrote; expr.c calls check_local after each named value
 * it defines inside a loop. The record's strings (the function, the
 * value's name, the step's equation) are literals in the generated code.
 */
#include "emit.h"

#include <stdlib.h>
#include <string.h>

/* text as a C string literal: quotes and backslashes escaped, and every
 * byte outside printable ASCII (the `·` of a matrix product) and `?` (no
 * trigraphs) written in octal. */
static const char *c_string(Emit *e, const char *text)
{
    size_t len = strlen(text);
    char *s = arena_alloc(e->a, len * 4 + 3);
    size_t k = 0;
    s[k++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            s[k++] = '\\';
            s[k++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f || c == '?') {
            k += (size_t)sprintf(s + k, "\\%03o", c);
        } else {
            s[k++] = (char)c;
        }
    }
    s[k++] = '"';
    s[k] = '\0';
    return s;
}

static const char *function_name(PlanFn f)
{
    static const char *const names[PF__COUNT] = {"forward", "backward", "predict",
                                                 "outputs_after_forward"};
    return names[f];
}

/* The step's equation for the record: the first line of the comment above
 * the step (`model.net:4  h = log(x) + w`), without a gradient's chain
 * rule. */
static const char *record_equation(Emit *e, Node *n)
{
    const char *eq = equation(e, n);
    const char *tab = strchr(eq, '\t');
    return tab ? fmt(e, "%.*s", (int)(tab - eq), eq) : eq;
}

/* The name a value is reported by: the gradient it is (`dL/dW`, also
 * when the step's own name is its operation's, `batch_mean_17`), else its
 * .net name or adjoint label, else its C name. */
static const char *value_name(Emit *e, const Node *n)
{
    const char *loss = e->m->loss ? e->m->loss->name : "L";
    for (int i = 0; i < e->m->nparams; i++)
        if (e->g->grad_params[i] == n)
            return fmt(e, "d%s/d%s", loss, e->m->params[i]->name);
    for (int k = 0; k < e->m->ninputs; k++)
        if (e->g->grad_inputs[k] == n)
            return fmt(e, "d%s/d%s", loss, e->m->inputs[k]->name);
    return n->name ? n->name : e->cname[n->id];
}

/* --check-finite, after a named value computed inside a loop (the local
 * just defined): notes it when it is not finite, at its sample and
 * element in the loop's indexing. */
void check_local(Emit *e, Ctx *c, Node *n)
{
    long size = shape_size(n->shape);
    const char *sample = "-1", *index = "0";
    if (c->mode == LOOP_FLAT && n->batched) {
        sample = size == 1 ? "(long)i" : fmt(e, "(long)(i / %ld)", size);
        index = size == 1 ? "0" : fmt(e, "(long)(i %% %ld)", size);
    } else if (c->mode == LOOP_FLAT) {
        index = size == 1 ? "0" : "(long)i";
    } else if (c->mode == LOOP_NESTED) {
        sample = n->batched ? "(long)s" : "-1";
        index = size == 1 ? "0" : "(long)j";
    }
    const char *name = e->cname[n->id];
    indent_to(c->pre, c->depth);
    fprintf(c->pre, "if (!isfinite(%s))\n", name);
    indent_to(c->pre, c->depth + 1);
    fprintf(c->pre, "bp_nonfinite_note(%s, \"%s\", %s, %s,\n", e->found, function_name(e->f),
            c_string(e, value_name(e, n)), c_string(e, record_equation(e, n)));
    indent_to(c->pre, c->depth + 1);
    fprintf(c->pre, "                  (double)%s, %s, %s);\n", name, sample, index);
}

/* --check-finite, after a step: every value it wrote. */
void check_step(Emit *e, Node *y)
{
    line(e, 1, "bp_nonfinite_scan(%s, \"%s\", %s,", e->found, function_name(e->f),
         c_string(e, value_name(e, y)));
    line(e, 1, "                  %s,", c_string(e, record_equation(e, y)));
    line(e, 1, "                  %s, %d, %s, %ld);", buf_name(e, y), e->dbl ? 8 : 4,
         y->batched ? "n" : "0", shape_size(y->shape));
}

/* --check-finite: the workspace starts with the record (BP_NONFINITE_BYTES),
 * and M_nonfinite reads it. Continues M_workspace_size after its first
 * line. */
void nonfinite_workspace_size(Emit *e, FILE *out)
{
    fprintf(out, "    return (%ld * rows + %ld) * sizeof(%s) + BP_NONFINITE_BYTES;\n}\n\n",
            e->p->ws_batched, e->p->ws_shared, e->real);
    fprintf(out, "/* --check-finite: the first value forward, backward or predict wrote that\n"
                 " * was NaN or infinite since the last forward or predict, or NULL. It\n"
                 " * lives at the start of ws (BP_NONFINITE_BYTES). */\n"
                 "const bp_nonfinite *%s_nonfinite(const void *ws)\n{\n"
                 "    const bp_nonfinite *found = (const bp_nonfinite *)ws;\n"
                 "    return found->function != NULL ? found : NULL;\n}\n\n", e->M);
}

void nonfinite_header(Emit *e, FILE *h)
{
    fprintf(h, "/* --check-finite: forward, backward and predict check every value they\n"
               " * write; this is the first NaN or infinity since the last forward or\n"
               " * predict (by its .net name), or NULL. bp_nonfinite_message() words it. */\n");
    fprintf(h, "const bp_nonfinite *%s_nonfinite(const void *ws);\n\n", e->M);
}

/* The header's part of --selftest: the scratch size (as the runtime's
 * bp_selftest_scratch_size computes it), the tolerance and the function. */
void selftest_header(Emit *e, FILE *h)
{
    Model *m = e->m;
    const char *M = e->M, *r = e->real;
    long wrt = 0;
    for (int k = 0; k < m->ninputs; k++)
        if (m->inputs[k]->wrt)
            wrt += shape_size(m->inputs[k]->shape);
    int slots = 2 * (m->ninputs ? m->ninputs : 1);
    fprintf(h, "/* --selftest: %s_selftest checks the gradients against finite differences\n"
               " * in scratch of %s_SELFTEST_SCRATCH_SIZE(n) bytes for a batch of n: two\n"
               " * arrays of pointers (inputs, input gradients; %d each), then a copy of\n"
               " * theta, the gradient and, for the wrt inputs, a copy and a gradient\n"
               " * (values per sample: %ld). A correct backward scores at most\n"
               " * %s_SELFTEST_TOLERANCE. */\n",
            M, M, m->ninputs ? m->ninputs : 1, wrt, M);
    fprintf(h, "#define %s_SELFTEST_SCRATCH_SIZE(n) \\\n"
               "    ((%d * sizeof(void *) + 15) / 16 * 16 + \\\n"
               "     (2 * (size_t)%s_NUM_PARAMS + %ld * (size_t)(n)) * sizeof(%s))\n",
            M, slots, M, 2 * wrt, r);
    fprintf(h, "#define %s_SELFTEST_TOLERANCE %s\n", M, e->dbl ? "1e-6" : "1e-2");
    fprintf(h, "double %s_selftest(const %s *theta, const %s *const inputs[], int n, void *ws,\n"
               "                  void *scratch, bp_selftest_report *report);\n\n", M, r, r);
}

/* M_selftest: the runtime's bp_selftest on this model, every entry. */
void emit_selftest(Emit *e, FILE *out)
{
    Model *m = e->m;
    const char *M = e->M, *r = e->real;
    int nin = m->ninputs ? m->ninputs : 1;
    fprintf(out, "\n/* ---- --selftest ---- */\n\n");
    fprintf(out,
        "/* Checks %s_backward against central differences of %s_forward at (theta,\n"
        " * inputs), batch n, for every entry of every parameter and wrt input.\n"
        " * Returns the worst relative error |g - fd| / max(1, |g|, |fd|) (at most\n"
        " * %s_SELFTEST_TOLERANCE when backward is right), HUGE_VAL when the\n"
        " * arguments are unusable; report (may be NULL) says where, or why. ws:\n"
        " * %s_workspace_size(n) bytes; scratch: %s_SELFTEST_SCRATCH_SIZE(n) bytes.\n"
        " * Allocates nothing; theta and inputs are only read. */\n", M, M, M, M, M);
    fprintf(out, "double %s_selftest(const %s *theta, const %s *const inputs[], int n, void *ws,\n"
                 "    void *scratch, bp_selftest_report *report)\n{\n", M, r, r);
    fprintf(out, "    const void *in[%d];\n", nin);
    if (!m->ninputs)
        fputs("    in[0] = NULL;\n", out);
    for (int k = 0; k < m->ninputs; k++)
        fprintf(out, "    in[%d] = inputs != NULL ? (const void *)inputs[%d] : NULL;\n", k, k);
    fputs("    bp_selftest_report local;\n"
          "    bp_selftest_report *const r = report != NULL ? report : &local;\n", out);
    fprintf(out, "    if (bp_selftest(&%s_model, theta, inputs != NULL ? in : NULL, n, ws, scratch,\n"
                 "                    0.0, 0, r) != BP_OK)\n"
                 "        return HUGE_VAL;\n"
                 "    return r->worst;\n}\n", M);
}

/* --main with --check-finite: the first value that was not finite, on
 * standard error (the values are printed all the same). */
void main_report_nonfinite(Emit *e, FILE *out)
{
    fprintf(out, "    if (%s_nonfinite(ws) != NULL) {\n"
                 "        char why[512];\n"
                 "        bp_nonfinite_message(%s_nonfinite(ws), why, sizeof why);\n"
                 "        fprintf(stderr, \"%s: warning: %%s\\n\", why);\n"
                 "    }\n", e->M, e->M, e->M);
}
