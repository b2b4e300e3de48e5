/* fuzz_net.c — the whole compiler on a .net text, front to back, in
 * memory: parse, check, graph, differentiate, simplify, then either the
 * --derivatives listing or lowering and emission of the C file and its
 * header, as compiler/main.c runs them. The input's size picks the mode
 * (so every text is tried in one of them, and mutations move it between
 * them): 0 float code, 1 double code with --main and --line-directives,
 * 2 --derivatives, 3 float code with --main, --selftest and
 * --check-finite, buffers placed in time order (as in models of
 * thousands of buffers).
 *
 * Promises checked: no crash, leak or undefined behaviour; a model with
 * errors has at least one message, every message names the file; the
 * graph passes graph_check after every pass, the plan plan_check; code
 * generation succeeds for every model that checks. */
#include "fuzz.h"

#include "bpgen.h"

#include <stdlib.h>
#include <string.h>

#define PATH "fuzz.net"

static void fail(const char *what)
{
    fuzz_fail("fuzz_net", what);
}

static void compile(Arena *a, const char *text, size_t len, int mode)
{
    char *diag_text = NULL, *c_text = NULL, *h_text = NULL;
    size_t diag_len = 0, c_len = 0, h_len = 0;
    FILE *diag_out = open_memstream(&diag_text, &diag_len);
    if (!diag_out)
        fail("open_memstream failed");

    Diag *diag = diag_new(a, PATH, text, len);
    Program *prog = parse_program(a, diag, PATH, text, len);
    Model *model = check_program(a, diag, prog);
    int errors = diag_count(diag);
    diag_flush(diag, diag_out);
    fclose(diag_out);
    if ((errors > 0) != (model == NULL))
        fail("check_program's result disagrees with the error count");
    if (errors > 0 && (!diag_text || !strstr(diag_text, PATH ":")))
        fail("an error was counted but no message names the file");
    free(diag_text);
    if (!model)
        return;

    bool derivatives = mode == 2;
    Graph *g = graph_build(a, model, !derivatives);
    if (!graph_check(g))
        fail("graph_check failed after graph");
    diff_graph(g);
    if (!graph_check(g))
        fail("graph_check failed after diff");
    simp_graph(g);
    if (!graph_check(g))
        fail("graph_check failed after simplify");

    FILE *c_out = open_memstream(&c_text, &c_len);
    FILE *h_out = open_memstream(&h_text, &h_len);
    if (!c_out || !h_out)
        fail("open_memstream failed");
    bool ok = true;
    if (derivatives) {
        print_derivatives(c_out, g);
    } else {
        EmitOptions eo = {mode == 1 ? PREC_DOUBLE : PREC_FLOAT, mode != 0, "fuzz.h",
                          mode == 3 ? PLACE_IN_TIME_ORDER : PLACE_AUTO, mode == 1, "fuzz.c",
                          mode == 3, mode == 3, mode == 1};
        Plan *plan = lower_graph(a, g, &eo);
        if (!plan_check(plan))
            fail("plan_check failed after lower");
        ok = emit_c(plan, c_out, h_out);
    }
    fclose(c_out);
    fclose(h_out);
    if (!ok)
        fail("emit_c failed on a model that checked");
    if (!derivatives && (!c_text || !strstr(c_text, "_backward(")))
        fail("the generated C has no backward function");
    free(c_text);
    free(h_text);
}

int fuzz_net(const unsigned char *data, size_t size)
{
    Arena *a = arena_new();
    /* the text as bpgen holds it: NUL-terminated, NULs inside kept */
    char *text = arena_strndup(a, (const char *)data, size);
    compile(a, text, size, (int)(size % 4));
    arena_free(a);
    return 0;
}
