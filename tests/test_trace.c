/* test_trace.c — generated code traced to its equations.
 *
 * Every step's comment names the .net file and line it comes from (a
 * value's step the statement defining it, a gradient's step the statement
 * it differentiates), and a gradient's comment the chain-rule step it
 * computes, in the words of the first line of its --explain block. With
 * --line-directives the code carries `#line N "model.net"` before each line
 * of a step and `#line` back into the C file after it: checked by
 * compiling with gcc and clang under -Werror, by numbering every directive
 * back, by __FILE__ and __LINE__ seen from inside the generated functions
 * (calls wrapped in macros that report where they were expanded), and by
 * the code with its directives taken out being the code without them. */
#include <CUnit/CUnit.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static const char *const examples[] = {"chain", "linreg", "logistic", "height", "xor",
                                       "iris", "digits", "digits_cnn", "fashion", "finetune"};

/* Line `number` (from 1) of text, without its newline; NULL past the end. */
static char *line_of(const char *text, long number)
{
    const char *p = text;
    for (long k = 1; k < number && p; k++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p || !*p)
        return NULL;
    size_t len = strcspn(p, "\n");
    char *s = malloc(len + 1);
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* Whether `name` appears in text as a whole identifier. */
static bool has_word(const char *text, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
        bool start = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        bool end = !(isalnum((unsigned char)p[len]) || p[len] == '_');
        if (start && end)
            return true;
    }
    return false;
}

/* Whether statement `stmt` of `net` reads x, itself or through a value it
 * reads (the graph may build a value into its reader: log(softmax(z)) is
 * log_softmax(z), built by the statement that takes the log). */
static bool reads(const char *net, const char *stmt, const char *x)
{
    if (has_word(stmt, x))
        return true;
    for (long k = 1;; k++) {
        char *line = line_of(net, k);
        if (!line)
            return false;
        size_t n = strcspn(line, " =");
        bool found = false;
        if (n > 0 && !strncmp(line + n, " = ", 3)) {
            char *name = test_format("%.*s", (int)n, line);
            found = has_word(strchr(stmt, '=') ? strchr(stmt, '=') : stmt, name) &&
                    has_word(line + n, x);
            free(name);
        }
        free(line);
        if (found)
            return true;
    }
}

/* Runs bpgen on examples/NAME/NAME.net with `args`; the generated C in *c. */
static int generate_example(const char *name, const char *args, char **c)
{
    char *out_c = test_format("%s/trace_%s.c", TEST_TMP, name);
    char *cmd = test_format("%s examples/%s/%s.net -o %s %s", TEST_BPGEN, name, name, out_c,
                            args ? args : "");
    char *err = NULL;
    int rc = test_run(cmd, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "\n[%s] bpgen failed:\n%s\n", name, err ? err : "");
    *c = rc == 0 ? test_read_file(out_c, NULL) : NULL;
    free(err);
    free(cmd);
    free(out_c);
    return rc;
}

/* A step's comment, `/ * NAME.net:N  LHS = ...`, parsed: N and LHS. */
static bool traced_comment(const char *line, const char *net, long *number, char *lhs,
                           size_t lhs_size)
{
    const char *p = line + strspn(line, " ");
    if (strncmp(p, "/* ", 3) != 0)
        return false;
    p += 3;
    size_t len = strlen(net);
    if (strncmp(p, net, len) != 0 || p[len] != ':')
        return false;
    char *end;
    *number = strtol(p + len + 1, &end, 10);
    if (strncmp(end, "  ", 2) != 0)
        return false;
    end += 2;
    size_t n = strcspn(end, " :");
    snprintf(lhs, lhs_size, "%.*s", (int)n, end);
    return true;
}

/* Every example: each step's (and each INIT's) comment names a line of the
 * model, and the right one: a value's own statement (`h = ...`), a
 * parameter's declaration, and for a gradient dL/dX a statement reading X. */
static void test_comments_name_the_line(void)
{
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
        const char *name = examples[i];
        char *c = NULL, *net_path = test_format("examples/%s/%s.net", name, name);
        char *net = test_read_file(net_path, NULL);
        char *net_name = test_format("%s.net", name);
        CU_ASSERT_EQUAL_FATAL(generate_example(name, NULL, &c), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(net);
        int traced = 0, values = 0, gradients = 0;
        for (long k = 1;; k++) {
            char *line = line_of(c, k);
            if (!line)
                break;
            long number;
            char lhs[256];
            if (traced_comment(line, net_name, &number, lhs, sizeof lhs)) {
                traced++;
                char *stmt = line_of(net, number);
                CU_ASSERT_PTR_NOT_NULL_FATAL(stmt);
                const char *loss = strncmp(net, "loss ", 5) ? strstr(net, "\nloss ") + 6 : net + 5;
                bool ok;
                if (lhs[0] == 'd' && strchr(lhs, '/')) {
                    /* dL/dX: the statement reads X */
                    const char *x = strchr(lhs, '/') + 2;
                    ok = reads(net, stmt, x) && strncmp(lhs + 1, loss, strcspn(loss, " ")) == 0;
                    gradients++;
                } else if (has_word(net, lhs) && !strstr(line, ": ")) {
                    /* a named value: its own statement defines it */
                    const char *s = stmt + strspn(stmt, " ");
                    if (!strncmp(s, "loss ", 5))
                        s += 5;
                    ok = !strncmp(s, lhs, strlen(lhs)) && s[strlen(lhs)] == ' ';
                    values++;
                } else if (strstr(line, ": ")) {
                    /* an INIT: the parameter's declaration */
                    ok = strstr(stmt, "param") && has_word(stmt, lhs);
                } else {
                    ok = true;  /* a nameless intermediate: any statement */
                }
                CU_ASSERT(ok);
                if (!ok)
                    fprintf(stderr, "\n[%s] '%s' names line %ld: '%s'\n", name, line, number,
                            stmt);
                free(stmt);
            }
            free(line);
        }
        CU_ASSERT(traced >= 3 && values >= 1 && gradients >= 1);
        if (!(traced >= 3 && values >= 1 && gradients >= 1))
            fprintf(stderr, "\n[%s] %d traced comments, %d values, %d gradients\n", name,
                    traced, values, gradients);
        free(net_name);
        free(net);
        free(net_path);
        free(c);
    }
}

/* The iris model's comments, word for word where they say the most. */
static void test_iris_comments(void)
{
    char *c = NULL;
    CU_ASSERT_EQUAL_FATAL(generate_example("iris", NULL, &c), 0);
    static const char *const expected[] = {
        "    /* iris.net:4  W1: normal(0, 0.5) */\n",
        "    /* iris.net:9  h = tanh(",
        "    /* iris.net:10  z = W2 · h + b2 */\n",
        /* the equation is the chain rule: said once */
        "    /* iris.net:10  dL/dh = transpose(W2) · dL/dz */\n",
        /* the code's equation, then the chain rule --explain prints */
        "     * chain rule: dL/dz = dL/dL * (p * sum(y) - y) */\n",
        ("    /* iris.net:10  dL/dW2 = batch_mean(outer(dL/dz, h))\n"
         "     * chain rule: dL/dW2 = outer(dL/dz, h) */\n"),
        "     * chain rule: dL/dW1 = outer(dL/dh * (1 - h^2), x) */\n",
        "     * chain rule: dL/db1 = dL/dh * (1 - h^2) */\n",
    };
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) {
        CU_ASSERT_PTR_NOT_NULL(strstr(c, expected[i]));
        if (!strstr(c, expected[i]))
            fprintf(stderr, "\niris.c lacks '%s'\n", expected[i]);
    }
    CU_ASSERT_PTR_NULL(strstr(c, "#line"));
    free(c);
}

/* Every chain rule in the generated comments is the first line of a block
 * of --explain, and every example has some. */
static void test_chain_rules_match_explain(void)
{
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
        const char *name = examples[i];
        char *c = NULL, *explain = NULL;
        CU_ASSERT_EQUAL_FATAL(generate_example(name, NULL, &c), 0);
        char *cmd = test_format("%s examples/%s/%s.net --explain", TEST_BPGEN, name, name);
        CU_ASSERT_EQUAL_FATAL(test_run(cmd, &explain, NULL), 0);
        int rules = 0;
        for (const char *p = strstr(c, "chain rule: "); p; p = strstr(p + 1, "chain rule: ")) {
            const char *rule = p + 12;
            size_t len = strstr(rule, " */") ? (size_t)(strstr(rule, " */") - rule) : 0;
            /* comments longer than 160 characters end in " ..." */
            bool cut = len > 4 && !strncmp(rule + len - 4, " ...", 4);
            char *want = test_format("\n%.*s", (int)(cut ? len - 4 : len), rule);
            const char *at = strstr(explain, want);
            bool found = at && (cut || at[strlen(want)] == '\n');
            CU_ASSERT(found);
            if (!found)
                fprintf(stderr, "\n[%s] chain rule '%s' is not a line of --explain\n", name,
                        want + 1);
            rules++;
            free(want);
        }
        CU_ASSERT(rules >= 1);
        free(cmd);
        free(explain);
        free(c);
    }
}

/* --line-directives on the examples: every `#line N "X.c"` is followed by
 * line N of the file; every `#line N "X.net"` names a statement's line;
 * taken out, they leave the code bpgen writes without them; the code
 * compiles with gcc and clang under -Werror. */
static void test_directives_are_exact(void)
{
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
        const char *name = examples[i];
        for (int precision = 0; precision < 2; precision++) {
            const char *prec = precision ? "--precision=double" : "--precision=float";
            char *plain = NULL, *traced = NULL;
            CU_ASSERT_EQUAL_FATAL(generate_example(name, prec, &plain), 0);
            char *args = test_format("%s --line-directives", prec);
            CU_ASSERT_EQUAL_FATAL(generate_example(name, args, &traced), 0);
            char *back = test_format("\"%s/trace_%s.c\"", TEST_TMP, name);
            char *into = test_format("\"examples/%s/%s.net\"", name, name);
            char *net = test_format("examples/%s/%s.net", name, name);
            char *net_text = test_read_file(net, NULL);
            size_t len = strlen(traced), kept = 0;
            char *without = malloc(len + 1);
            int to_net = 0, to_c = 0;
            for (long k = 1;; k++) {
                char *line = line_of(traced, k);
                if (!line)
                    break;
                if (!strncmp(line, "#line ", 6)) {
                    char *end;
                    long n = strtol(line + 6, &end, 10);
                    if (!strcmp(end + 1, back)) {
                        CU_ASSERT_EQUAL(n, k + 1);
                        to_c++;
                    } else {
                        CU_ASSERT_STRING_EQUAL(end + 1, into);
                        char *stmt = line_of(net_text, n);
                        CU_ASSERT(stmt && stmt[0] && stmt[0] != '#');
                        free(stmt);
                        to_net++;
                    }
                } else {
                    kept += (size_t)sprintf(without + kept, "%s\n", line);
                }
                free(line);
            }
            /* chain: one loop in forward, one in backward, each back to C */
            CU_ASSERT(to_net > to_c && to_c >= 2);
            CU_ASSERT_STRING_EQUAL(without, plain);
            /* both compilers, warnings as errors */
            char *cc = test_format("%s %s -Werror -Iruntime -I%s -c %s/trace_%s.c -o %s/trace_%s.o",
                                   TEST_CC, TEST_CFLAGS, TEST_TMP, TEST_TMP, name, TEST_TMP, name);
            char *err = NULL;
            CU_ASSERT_EQUAL(test_run(cc, NULL, &err), 0);
            if (err && *err)
                fprintf(stderr, "\n[%s] %s:\n%s\n", name, TEST_CC, err);
            free(err);
            err = NULL;
            char *clang = test_format("command -v clang >/dev/null || exit 0; clang -std=c99 "
                                      "-Wall -Wextra -pedantic -Werror -Iruntime -I%s "
                                      "-fsyntax-only %s/trace_%s.c", TEST_TMP, TEST_TMP, name);
            CU_ASSERT_EQUAL(test_run(clang, NULL, &err), 0);
            if (err && *err)
                fprintf(stderr, "\n[%s] clang:\n%s\n", name, err);
            free(err);
            free(clang);
            free(cc);
            free(without);
            free(net_text);
            free(net);
            free(into);
            free(back);
            free(args);
            free(traced);
            free(plain);
        }
    }
}

/* From inside the generated functions, __FILE__ and __LINE__ are the .net
 * file and the statement's line in a step, and the C file's own place in
 * the glue around the steps. Calls are wrapped in macros that report where
 * they are expanded. */
static void test_line_seen_by_the_compiler(void)
{
    static const char *const model =
        "# a traced model\n"
        "input x[3]\n"
        "input t\n"
        "param W[2, 3]\n"
        "param v[2]\n"
        "h = tanh(W · x)\n"              /* line 6: bp_vtanhf, and gemm forward and backward
                                           (a batch of 9: a call, not loops) */
        "y = sigmoid(sum(v * h))\n"
        "g = 2 * h\n"                     /* line 8: one loop of h and g in predict */
        "u = 2 * v\n"                     /* no input: predict copies it to each row, */
        "output h, g, u\n"                /* memcpy, glue */
        "loss L = (y - t)^2\n";
    static const char *const harness =
        "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
        "#include \"trace_m.h\"\n"
        "static void seen(const char *what, const char *file, int line)\n"
        "{\n    printf(\"%s %s:%d\\n\", what, file, line);\n}\n"
        "#undef memcpy\n"
        "#define bp_tanhf(x) (seen(\"tanhf\", __FILE__, __LINE__), bp_tanhf(x))\n"
        "#define bp_vtanhf(...) (seen(\"tanhf\", __FILE__, __LINE__), bp_vtanhf(__VA_ARGS__))\n"
        "#define bp_gemm_f(...) (seen(\"gemm\", __FILE__, __LINE__), bp_gemm_f(__VA_ARGS__))\n"
        "#define memcpy(d, s, k) (seen(\"memcpy\", __FILE__, __LINE__), memcpy(d, s, k))\n"
        "#include \"trace_m.c\"\n"
        "int main(void)\n{\n"
        "    float theta[trace_m_NUM_PARAMS], grad[trace_m_NUM_PARAMS], h[18], g[18], u[18];\n"
        "    float x[27], t[9];\n"
        "    for (int i = 0; i < 27; i++)\n        x[i] = 0.1f * (float)(i % 7) - 0.3f;\n"
        "    for (int i = 0; i < 9; i++)\n        t[i] = 0.1f * (float)i;\n"
        "    const float *const in[2] = {x, t};\n"
        "    float *const out[3] = {h, g, u};\n"
        "    void *ws = malloc(trace_m_workspace_size(9));\n"
        "    if (!ws)\n        return 1;\n"
        "    trace_m_init(theta, 1);\n"
        "    trace_m_forward(theta, in, 9, ws);\n"
        "    trace_m_backward(theta, in, 9, ws, grad, NULL);\n"
        "    trace_m_predict(theta, in, 9, ws, out);\n"
        "    free(ws);\n    return 0;\n}\n";
    char *args = test_format("-o %s/trace_m.c --line-directives", TEST_TMP);
    CU_ASSERT_EQUAL_FATAL(test_bpgen("trace_m", model, args, NULL, NULL), 0);
    char *harness_c = test_format("%s/trace_harness.c", TEST_TMP);
    CU_ASSERT_EQUAL_FATAL(test_write_file(harness_c, harness), 0);
    char *exe = test_format("%s/trace_harness", TEST_TMP);
    char *cmd = test_format("%s %s -Werror -Iruntime -I%s -o %s %s %s -lm", TEST_CC, TEST_CFLAGS,
                            TEST_TMP, exe, harness_c, TEST_LIBBP);
    char *out = NULL, *err = NULL;
    CU_ASSERT_EQUAL_FATAL(test_run(cmd, NULL, &err), 0);
    CU_ASSERT_EQUAL_FATAL(test_run(exe, &out, NULL), 0);
    char *c_path = test_format("%s/trace_m.c", TEST_TMP);
    char *c_text = test_read_file(c_path, NULL);
    char *at_net = test_format("%s/trace_m.net:6", TEST_TMP);
    int tanhs = 0, gemms = 0, copies = 0;
    for (long k = 1;; k++) {
        char *line = line_of(out, k);
        if (!line)
            break;
        char what[16], where[512];
        if (sscanf(line, "%15s %511s", what, where) == 2) {
            if (!strcmp(what, "memcpy")) {
                /* glue: the C file's own line, the copy of the output */
                char *colon = strrchr(where, ':');
                *colon = '\0';
                CU_ASSERT_STRING_EQUAL(where, c_path);
                char *code = line_of(c_text, strtol(colon + 1, NULL, 10));
                CU_ASSERT(code && strstr(code, "memcpy(outputs[2] + s * 2, u,"));
                free(code);
                copies++;
            } else {
                CU_ASSERT_STRING_EQUAL(where, at_net);
                if (strcmp(where, at_net) != 0)
                    fprintf(stderr, "\n%s seen at %s, not %s\n", what, where, at_net);
                tanhs += !strcmp(what, "tanhf");
                gemms += !strcmp(what, "gemm");
            }
        }
        free(line);
    }
    /* forward and predict each: tanh and the product; backward: dL/dW */
    CU_ASSERT(tanhs >= 2);
    CU_ASSERT(gemms >= 3);
    CU_ASSERT_EQUAL(copies, 9);    /* a row per sample */
    free(at_net);
    free(c_text);
    free(c_path);
    free(out);
    free(err);
    free(cmd);
    free(exe);
    free(harness_c);
    free(args);
}

/* File names with a quote and a backslash are written as C strings. */
static void test_odd_file_names(void)
{
    char *dir = test_format("%s/trace \"q\\b", TEST_TMP);
    char *mk = test_format("mkdir -p '%s'", dir);
    CU_ASSERT_EQUAL_FATAL(test_run(mk, NULL, NULL), 0);
    char *net = test_format("%s/m.net", dir);
    CU_ASSERT_EQUAL_FATAL(test_write_file(net, "input x\nparam w\nloss L = (w * x)^2\n"), 0);
    char *cmd = test_format("%s '%s' -o '%s/m.c' --line-directives && %s %s -Werror -Iruntime "
                            "-I'%s' -c '%s/m.c' -o '%s/m.o'",
                            TEST_BPGEN, net, dir, TEST_CC, TEST_CFLAGS, dir, dir, dir);
    char *err = NULL;
    CU_ASSERT_EQUAL(test_run(cmd, NULL, &err), 0);
    if (err && *err)
        fprintf(stderr, "\n%s\n", err);
    char *c_path = test_format("%s/m.c", dir);
    char *c = test_read_file(c_path, NULL);
    char *want = test_format("#line 3 \"%s/trace \\\"q\\\\b/m.net\"\n", TEST_TMP);
    CU_ASSERT(c && strstr(c, want));
    free(want);
    free(c);
    free(c_path);
    free(err);
    free(cmd);
    free(net);
    free(mk);
    free(dir);
}

static void test_usage(void)
{
    char *out = NULL;
    char *cmd = test_format("%s --help", TEST_BPGEN);
    CU_ASSERT_EQUAL(test_run(cmd, &out, NULL), 0);
    CU_ASSERT(out && strstr(out, "--line-directives"));
    free(out);
    free(cmd);
}

void register_trace(void)
{
    CU_pSuite s = CU_add_suite("trace", NULL, NULL);
    CU_add_test(s, "comments name the .net line of every step", test_comments_name_the_line);
    CU_add_test(s, "iris: lines and chain rules word for word", test_iris_comments);
    CU_add_test(s, "chain rules are --explain's", test_chain_rules_match_explain);
    CU_add_test(s, "#line directives: exact, compile, change nothing else",
                test_directives_are_exact);
    CU_add_test(s, "__FILE__ and __LINE__ in steps and in glue", test_line_seen_by_the_compiler);
    CU_add_test(s, "file names with quotes and backslashes", test_odd_file_names);
    CU_add_test(s, "--help", test_usage);
}
