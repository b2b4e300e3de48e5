/* test_selftest.c — the debugging aids bpgen can put into generated code.
 *
 * --selftest: every example model (each .net file in a folder of
 * examples/), in float and in double, is generated with M_selftest,
 * compiled warning-free (gcc with -Werror, and clang) with
 * tests/harness/selftest.c and run: at a random point its worst relative
 * error is within M_SELFTEST_TOLERANCE, the header's
 * M_SELFTEST_SCRATCH_SIZE agrees with the runtime's
 * bp_selftest_scratch_size, and the self-test allocates nothing. Then each
 * model's M_backward is deliberately broken (the test edits the generated
 * C so that backward adds 1 to one gradient entry; in float, whose
 * tolerance is the wider): the self-test must fail, naming that entry. The
 * runtime's bp_selftest is also tested directly on a hand-written model (a
 * right and a wrong backward, a limit per tensor, every unusable
 * argument).
 *
 * --check-finite: models fed values that make log() of 0, an overflow of
 * exp() or a division by zero in backward report the value by its .net
 * name, sample and element (through the --main driver, which prints
 * M_nonfinite's record, and through M_nonfinite itself); values are the
 * same as without the option; and without either option the generated code
 * is byte for byte what it was (tests/golden/generated/, written by the
 * bpgen before these options existed). A change of the generated code that
 * is meant regenerates them, from the repository's root:
 *   for m in iris logistic digits_cnn; do
 *       build/bpgen examples/$m/$m.net -o tests/golden/generated/$m.c; done
 *   build/bpgen examples/digits_cnn/digits_cnn.net --precision=double \
 *       -o tests/golden/generated/digits_cnn_double.c */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Helpers */

/* The example models: "examples/NAME/NAME.net" and so on, sorted. */
static int example_models(char ***paths)
{
    *paths = NULL;
    DIR *d = opendir("examples");
    if (!d)
        return 0;
    int count = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (ent->d_name[0] == '.')
            continue;
        char *dir = test_format("examples/%s", ent->d_name);
        DIR *sub = opendir(dir);
        struct dirent *f;
        while (sub && (f = readdir(sub))) {
            size_t len = strlen(f->d_name);
            if (len > 4 && !strcmp(f->d_name + len - 4, ".net")) {
                *paths = realloc(*paths, sizeof(char *) * (size_t)(count + 1));
                (*paths)[count++] = test_format("%s/%s", dir, f->d_name);
            }
        }
        if (sub)
            closedir(sub);
        free(dir);
    }
    closedir(d);
    for (int i = 1; i < count; i++)   /* sorted, for a stable report */
        for (int j = i; j > 0 && strcmp((*paths)[j - 1], (*paths)[j]) > 0; j--) {
            char *t = (*paths)[j];
            (*paths)[j] = (*paths)[j - 1];
            (*paths)[j - 1] = t;
        }
    return count;
}

/* The model's name: the file name without folder and extension (every
 * example is named after its file). */
static char *model_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    return test_format("%.*s", (int)(strcspn(base, ".")), base);
}

/* Inserts `text` into `src` before position `at`. */
static char *insert_at(const char *src, size_t at, const char *text)
{
    return test_format("%.*s%s%s", (int)at, src, text, src + at);
}

/* The generated C with M_backward calling the harness's corrupt() as its
 * last statement; NULL when M_backward is not where it should be. */
static char *corrupt_backward(const char *c_text, const char *M, const char *real)
{
    char *def = test_format("\nvoid %s_backward(", M);
    const char *start = strstr(c_text, def);
    free(def);
    const char *end = start ? strstr(start, "\n}\n") : NULL;
    if (!end)
        return NULL;
    char *proto = test_format("\nvoid corrupt(%s *grad, %s *const grad_inputs[], int n);\n", real,
                              real);
    char *with_call = insert_at(c_text, (size_t)(end - c_text),
                                "\n    corrupt(grad, grad_inputs, n);");
    char *result = insert_at(with_call, (size_t)(start - c_text), proto);
    free(with_call);
    free(proto);
    return result;
}

/* Generates `model` (--selftest, `precision`) into TEST_TMP as NAME.c
 * where NAME = st_<model>_<precision>[_bad], builds it with the harness
 * (with `corrupt`: backward broken), runs it; returns its exit status and
 * its output in *out. -1 when it could not be built. */
static int run_selftest(const char *path, const char *precision, bool corrupt, const char *clang,
                        char **out)
{
    *out = NULL;
    char *M = model_name(path);
    char *name = test_format("st_%s_%s%s", M, precision, corrupt ? "_bad" : "");
    char *c_path = test_format("%s/%s.c", TEST_TMP, name);
    char *gen = test_format("%s %s -o %s --selftest --precision=%s", TEST_BPGEN, path, c_path,
                            precision);
    char *err = NULL, *exe = NULL, *cmd = NULL, *c_text = NULL;
    int status = -1;
    int rc = test_run(gen, NULL, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n[%s] bpgen failed:\n%s\n", name, err ? err : "");
        goto done;
    }
    if (corrupt) {
        c_text = test_read_file(c_path, NULL);
        char *bad = c_text ? corrupt_backward(c_text, M, precision) : NULL;
        CU_ASSERT_PTR_NOT_NULL(bad);
        if (!bad || test_write_file(c_path, bad) != 0) {
            free(bad);
            goto done;
        }
        free(bad);
    }
    exe = test_tmp_path(name);
    cmd = test_format("%s %s -Werror -Iruntime -I%s -DM=%s -DREAL=%s -DHEADER='\"%s.h\"' %s "
                      "-o %s %s tests/harness/selftest.c %s -lm "
                      "-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc",
                      TEST_CC, TEST_CFLAGS, TEST_TMP, M, precision, name,
                      corrupt ? "-DCORRUPT" : "", exe, c_path, TEST_LIBBP);
    free(err);
    err = NULL;
    rc = test_run(cmd, NULL, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n[%s] does not compile cleanly:\n%s\n", name, err ? err : "");
        goto done;
    }
    if (clang && !corrupt) {
        free(cmd);
        free(err);
        err = NULL;
        cmd = test_format("%s -std=c99 -Wall -Wextra -pedantic -Werror -Iruntime -c -o %s.o %s",
                          clang, exe, c_path);
        rc = test_run(cmd, NULL, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            fprintf(stderr, "\n[%s] clang:\n%s\n", name, err ? err : "");
    }
    status = test_run(exe, out, NULL);
done:
    free(c_text);
    free(cmd);
    free(exe);
    free(err);
    free(gen);
    free(c_path);
    free(name);
    free(M);
    return status;
}

/* The number after `key=` in text, or NAN. */
static double number_after(const char *text, const char *key)
{
    const char *p = text ? strstr(text, key) : NULL;
    return p ? strtod(p + strlen(key), NULL) : NAN;
}

/* ------------------------------------------------------------------------ */
/* --selftest on every example */

static void selftest_examples(bool corrupt)
{
    char **paths = NULL;
    int count = example_models(&paths);
    CU_ASSERT(count >= 10);   /* README lists ten example models */
    char *clang = test_clang_path();
    /* a broken backward in float only: its tolerance is the wider one */
    static const char *const precisions[2] = {"float", "double"};
    for (int i = 0; i < count; i++)
        for (int p = 0; p < (corrupt ? 1 : 2); p++) {
            char *out = NULL;
            int rc = run_selftest(paths[i], precisions[p], corrupt, clang, &out);
            double worst = number_after(out, "worst=");
            double tolerance = number_after(out, "tolerance=");
            bool ok;
            if (!corrupt) {
                ok = rc == 0 && worst <= tolerance;
            } else {
                /* fails, far beyond the tolerance, naming the broken entry: 1
                 * added to a gradient below 1 in magnitude is a relative error
                 * of at least 1/3 */
                const char *broken = out ? strstr(out, "corrupted ") : NULL;
                char *where = broken ? test_format(" at %.*s ", (int)strcspn(broken + 10, "\n"),
                                                   broken + 10)
                                     : NULL;
                ok = rc == 1 && worst > 0.3 && worst > 10 * tolerance && where &&
                     strstr(out, where);
                free(where);
            }
            CU_ASSERT(ok);
            if (!ok)
                fprintf(stderr, "\n[%s %s%s] exit %d:\n%s\n", paths[i], precisions[p],
                        corrupt ? ", backward broken" : "", rc, out ? out : "");
            free(out);
        }
    for (int i = 0; i < count; i++)
        free(paths[i]);
    free(paths);
    free(clang);
}

static void test_examples_pass(void)
{
    selftest_examples(false);
}

static void test_examples_broken_backward_fails(void)
{
    selftest_examples(true);
}

/* ------------------------------------------------------------------------ */
/* bp_selftest on hand-written models */

/* L = mean over samples of sum_j (w_j x_j)^2 + c·sum(w), w[3] and c
 * parameters, x[3] a wrt input. `wrong` makes backward forget the factor 2
 * of dL/dx. */
static int wrong;

static size_t hand_ws(int n)
{
    (void)n;
    return 0;
}

static double hand_forward(const void *theta, const void *const inputs[], int n, void *ws)
{
    (void)ws;
    const double *w = theta, *x = inputs[0];
    double total = 0;
    for (int s = 0; s < n; s++)
        for (int j = 0; j < 3; j++)
            total += (w[j] * x[s * 3 + j]) * (w[j] * x[s * 3 + j]) + w[3] * w[j];
    return total / n;
}

static void hand_backward(const void *theta, const void *const inputs[], int n, void *ws,
                          void *grad, void *const grad_inputs[])
{
    (void)ws;
    const double *w = theta, *x = inputs[0];
    double *g = grad;
    for (int j = 0; j < 4; j++)
        g[j] = 0;
    for (int s = 0; s < n; s++)
        for (int j = 0; j < 3; j++) {
            double v = x[s * 3 + j];
            g[j] += (2 * w[j] * v * v + w[3]) / n;
            g[3] += w[j] / n;
            if (grad_inputs && grad_inputs[0])
                ((double *)grad_inputs[0])[s * 3 + j] = (wrong ? 1 : 2) * w[j] * w[j] * v / n;
        }
}

static const bp_tensor_info hand_params[2] = {
    {"w", 1, {3, 1, 1, 1}, 3, 0, 0, 0},
    {"c", 0, {1, 1, 1, 1}, 1, 3, 0, 0},
};
static const bp_tensor_info hand_inputs[1] = {{"x", 1, {3, 1, 1, 1}, 3, 0, 0, 1}};

static bp_model hand_model(void)
{
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = "hand";
    m.real_size = 8;
    m.num_params = 4;
    m.num_param_tensors = 2;
    m.params = hand_params;
    m.num_inputs = 1;
    m.inputs = hand_inputs;
    m.loss_name = "L";
    m.workspace_size = hand_ws;
    m.forward = hand_forward;
    m.backward = hand_backward;
    return m;
}

static void test_runtime_selftest(void)
{
    bp_model m = hand_model();
    double theta[4] = {0.5, -1.5, 2.0, 0.25};
    double x[6] = {0.1, 0.2, -0.1, 0.2, -0.1, 0.2};
    const void *in[1] = {x};
    /* pointers: 2 (16 bytes), reals: 2·4 + 2·2·3 */
    CU_ASSERT_EQUAL(bp_selftest_scratch_size(&m, 2), (size_t)(16 + 20 * 8));
    CU_ASSERT_EQUAL(bp_selftest_scratch_size(&m, 0), 0);
    double scratch[64];
    bp_selftest_report r;
    wrong = 0;
    CU_ASSERT_EQUAL(bp_selftest(&m, theta, in, 2, NULL, scratch, 0, 0, &r), BP_OK);
    CU_ASSERT_EQUAL(r.status, BP_OK);
    CU_ASSERT(r.worst < 1e-8);
    CU_ASSERT_EQUAL(r.checked, 4 + 6);
    CU_ASSERT_PTR_NOT_NULL(r.name);
    /* the caller's values are only read */
    CU_ASSERT(theta[0] == 0.5 && theta[3] == 0.25 && x[5] == 0.2);

    /* a wrong dL/dx: off by w_j^2 x_j / n, the most at x[5] (w[2]^2 · 0.2 / 2,
     * relative to the true 0.8, which is below 1: an absolute 0.4) */
    wrong = 1;
    CU_ASSERT_EQUAL(bp_selftest(&m, theta, in, 2, NULL, scratch, 0, 0, &r), BP_OK);
    CU_ASSERT(fabs(r.worst - 0.4) < 1e-6);
    CU_ASSERT_STRING_EQUAL(r.name ? r.name : "", "x");
    CU_ASSERT_EQUAL(r.index, 5);
    CU_ASSERT(fabs(r.analytic - 0.4) < 1e-12 && fabs(r.numeric - 0.8) < 1e-6);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "x[5] analytic 0.4 numeric 0.8"));

    /* at most 2 entries per tensor: first and last of each (w, c, x) */
    CU_ASSERT_EQUAL(bp_selftest(&m, theta, in, 2, NULL, scratch, 0, 2, &r), BP_OK);
    CU_ASSERT_EQUAL(r.checked, 2 + 1 + 2);
    CU_ASSERT_STRING_EQUAL(r.name ? r.name : "", "x");
    CU_ASSERT_EQUAL(r.index, 5);
    wrong = 0;

    /* bp_gradcheck runs the same comparison */
    double worst = -1;
    char where[160];
    CU_ASSERT_EQUAL(bp_gradcheck(&m, theta, in, 2, 0, &worst, where, sizeof where), BP_OK);
    CU_ASSERT(worst >= 0 && worst < 1e-8);
}

static void test_runtime_selftest_refuses(void)
{
    bp_model m = hand_model();
    double theta[4] = {0.5, -1.5, 2.0, 0.25}, x[3] = {1, 2, 3}, scratch[64];
    const void *in[1] = {x}, *no_x[1] = {NULL};
    bp_selftest_report r;
    enum { NO_INPUTS, INPUTS, X_NULL };
    static const struct {
        int n;
        bool theta;
        int inputs;
        bool scratch;
        const char *message;
    } cases[] = {
        {0, true, INPUTS, true, "bp_selftest: model 'hand' or batch size 0 is unusable"},
        {1, false, INPUTS, true, "bp_selftest: theta is NULL but model 'hand' has parameters"},
        {1, true, NO_INPUTS, true, "bp_selftest: inputs is NULL but model 'hand' has inputs"},
        {1, true, X_NULL, true, "bp_selftest: input 'x' is differentiated (wrt) but NULL"},
        {1, true, INPUTS, false, "bp_selftest: scratch is NULL (it needs 128 bytes for a "
                                 "batch of 1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const void *const *inputs = cases[i].inputs == INPUTS ? in
                                  : cases[i].inputs == X_NULL ? no_x : NULL;
        int rc = bp_selftest(&m, cases[i].theta ? theta : NULL, inputs, cases[i].n, NULL,
                             cases[i].scratch ? scratch : NULL, 0, 0, &r);
        CU_ASSERT_EQUAL(rc, BP_ERR_ARG);
        CU_ASSERT_EQUAL(r.status, BP_ERR_ARG);
        CU_ASSERT(r.worst == HUGE_VAL);
        CU_ASSERT_STRING_EQUAL(r.message, cases[i].message);
    }
    CU_ASSERT_EQUAL(bp_selftest(&m, theta, in, 1, NULL, scratch, 0, 0, NULL), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_selftest(NULL, theta, in, 1, NULL, scratch, 0, 0, &r), BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(r.message, "bp_selftest: missing argument (the model is NULL)");
    m.abi_version = 1;
    CU_ASSERT_EQUAL(bp_selftest(&m, theta, in, 1, NULL, scratch, 0, 0, &r), BP_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "runtime ABI"));
}

/* ------------------------------------------------------------------------ */
/* --check-finite */

/* Runs the --main driver of `source` (flags added to bpgen's) on `input`;
 * returns its exit status, stdout and stderr. */
static int run_main(const char *name, const char *source, const char *flags, const char *input,
                    char **out, char **err)
{
    char *c_path = test_format("%s/%s.c", TEST_TMP, name);
    char *args = test_format("-o %s --main %s", c_path, flags);
    char *exe = test_tmp_path(name);
    char *in_path = test_format("%s/%s.in", TEST_TMP, name);
    char *gen_err = NULL, *cc_err = NULL;
    *out = *err = NULL;
    int status = -1;
    int rc = test_bpgen(name, source, args, NULL, &gen_err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n[%s] bpgen failed:\n%s\n", name, gen_err ? gen_err : "");
        goto done;
    }
    char *cmd = test_format("%s %s -Werror -Iruntime -o %s %s %s -lm", TEST_CC, TEST_CFLAGS, exe,
                            c_path, TEST_LIBBP);
    rc = test_run(cmd, NULL, &cc_err);
    free(cmd);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n[%s] does not compile cleanly:\n%s\n", name, cc_err ? cc_err : "");
        goto done;
    }
    CU_ASSERT_EQUAL_FATAL(test_write_file(in_path, input), 0);
    cmd = test_format("%s < %s", exe, in_path);
    status = test_run(cmd, out, err);
    free(cmd);
done:
    free(cc_err);
    free(gen_err);
    free(in_path);
    free(exe);
    free(args);
    free(c_path);
    return status;
}

/* `source` run with and without --check-finite on `input`: the values
 * printed are the same, and with the option stderr is the one line
 * "NAME: warning: " + `expected` (or empty when expected is NULL). */
static void check_finite_case(const char *name, const char *source, const char *input,
                              const char *expected)
{
    char *plain_name = test_format("%s_plain", name);
    char *out = NULL, *err = NULL, *plain_out = NULL, *plain_err = NULL;
    int rc = run_main(name, source, "--check-finite", input, &out, &err);
    int plain_rc = run_main(plain_name, source, "", input, &plain_out, &plain_err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(plain_rc, 0);
    CU_ASSERT(out && plain_out && !strcmp(out, plain_out));
    CU_ASSERT(plain_err && !strcmp(plain_err, ""));
    char *want = expected ? test_format("%s: warning: %s\n", name, expected) : test_format("");
    /* backward's report is printed after backward and again after predict */
    bool ok = err && !strncmp(err, want, strlen(want));
    CU_ASSERT(ok);
    if (!ok)
        fprintf(stderr, "\n[%s] expected on stderr:\n%s\ngot:\n%s\n", name, want,
                err ? err : "(nothing)");
    free(want);
    free(out);
    free(err);
    free(plain_out);
    free(plain_err);
    free(plain_name);
}

static void test_log_of_zero(void)
{
    /* h is computed inside the loop of sum(h * y), a local of that name,
     * checked there; sample 1 (the second) has x[2] = 0 */
    check_finite_case("fin_log",
                      "input x[3]\ninput y[3]\nparam w[3]\nh = log(x) + w\n"
                      "loss L = sum(h * y)\n",
                      "1 1 1  2  1 2 3 1 1 1  4 5 0 1 1 1\n",
                      "forward: h[2] of sample 1 is -inf (fin_log.net:4  h = log(x) + w)");
}

static void test_overflow(void)
{
    /* float's exp overflows above 88.7: z is a buffer (two users) */
    check_finite_case("fin_exp",
                      "input x[2]\nparam w[2]\nz = exp(x * w)\nloss L = sum(z) + sum(z * x)\n",
                      "1 1  3  1 2  3 4  100 5\n",
                      "forward: z[0] of sample 2 is inf (fin_exp.net:3  z = exp(w * x))");
}

static void test_backward_division_by_zero(void)
{
    /* forward is finite (sqrt(0) = 0); its derivative 1 / (2 sqrt(0)),
     * taken from the stored t4 = sqrt(x w), is not, and dL/dw[0], half the
     * mean of x[0] / t4[0] over the batch (the half folded into the mean's
     * step), is 0 · inf */
    check_finite_case("fin_sqrt",
                      "input x[2]\nparam w[2]\nloss L = sum(sqrt(x * w))\n",
                      "1 1  1  0 4\n",
                      "backward: dL/dw[0] is nan "
                      "(fin_sqrt.net:3  dL/dw = 0.5 * batch_mean(x / t4))");
}

static void test_predict(void)
{
    /* the loss is finite, the output is not: reported by predict */
    check_finite_case("fin_predict",
                      "input x[2]\nparam w[2]\nq = exp(x * w * 100)\noutput q\n"
                      "loss L = sum(x * w)\n",
                      "1 1  1  1 2\n",
                      "predict: q[0] of sample 0 is inf (fin_predict.net:3  q = exp(100 * w * x))");
}

static void test_all_finite(void)
{
    check_finite_case("fin_none",
                      "input x[2]\nparam w[2]\nz = exp(x * w)\nloss L = sum(z) + sum(z * x)\n",
                      "1 1  2  1 2  3 4\n", NULL);
}

/* The record through M_nonfinite, from a program of the test's own: reset
 * by the next forward, named in a shared (unbatched) gradient. */
static void test_nonfinite_api(void)
{
    static const char *source =
        "input x[2]\nparam w[2]\nparam c\nloss L = sum(log(x * w)) + log(c)\n";
    static const char *program =
        "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
        "#include \"fin_api.h\"\n"
        "int main(void)\n{\n"
        "    float theta[3] = {1, 1, 0};   /* c = 0: log(c) is -inf, dL/dc is inf */\n"
        "    float x[2] = {1, 2}, grad[3];\n"
        "    const float *in[1] = {x};\n"
        "    void *ws = malloc(fin_api_workspace_size(1));\n"
        "    char msg[256];\n"
        "    if (!ws) return 2;\n"
        "    fin_api_forward(theta, in, 1, ws);\n"
        "    bp_nonfinite_message(fin_api_nonfinite(ws), msg, sizeof msg);\n"
        "    printf(\"%s\\n\", msg);\n"
        "    theta[2] = 1;\n"
        "    fin_api_forward(theta, in, 1, ws);\n"
        "    printf(\"%s\\n\", fin_api_nonfinite(ws) == NULL ? \"cleared\" : \"kept\");\n"
        "    theta[2] = 0;\n"
        "    fin_api_forward(theta, in, 1, ws);\n"
        "    fin_api_backward(theta, in, 1, ws, grad, NULL);\n"
        "    const bp_nonfinite *f = fin_api_nonfinite(ws);\n"
        "    printf(\"first: %s %s\\n\", f ? f->function : \"none\", f ? f->name : \"\");\n"
        "    bp_nonfinite_message(NULL, msg, sizeof msg);\n"
        "    printf(\"%s\\n\", msg);\n"
        "    free(ws);\n"
        "    return 0;\n}\n";
    char *c_path = test_tmp_path("fin_api.c");
    char *app = test_tmp_path("fin_api_app.c");
    char *exe = test_tmp_path("fin_api");
    char *args = test_format("-o %s --check-finite", c_path);
    CU_ASSERT_EQUAL_FATAL(test_bpgen("fin_api", source, args, NULL, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(test_write_file(app, program), 0);
    char *cmd = test_format("%s %s -Werror -Iruntime -I%s -o %s %s %s %s -lm", TEST_CC,
                            TEST_CFLAGS, TEST_TMP, exe, c_path, app, TEST_LIBBP);
    char *err = NULL, *out = NULL;
    int rc = test_run(cmd, NULL, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\n[fin_api] does not compile:\n%s\n", err ? err : "");
    CU_ASSERT_EQUAL(test_run(exe, &out, NULL), 0);
    /* log(c) with c shared: no sample */
    const char *want = "forward: ";
    CU_ASSERT(out && !strncmp(out, want, strlen(want)));
    CU_ASSERT(out && strstr(out, " is -inf (") && !strstr(out, "of sample"));
    CU_ASSERT(out && strstr(out, "\ncleared\nfirst: forward "));
    CU_ASSERT(out && strstr(out, "\nevery value was finite\n"));
    if (!out || !strstr(out, "\nevery value was finite\n"))
        fprintf(stderr, "\n[fin_api] output:\n%s\n", out ? out : "");
    free(out);
    free(err);
    free(cmd);
    free(args);
    free(exe);
    free(app);
    free(c_path);
}

static void test_runtime_nonfinite(void)
{
    bp_nonfinite f;
    bp_nonfinite_clear(&f);
    float values[6] = {1, 2, 3, 4, NAN, INFINITY};
    bp_nonfinite_scan(&f, "forward", "h", "h = g(x)", values, 4, 0, 4);   /* all finite */
    CU_ASSERT_PTR_NULL(f.function);
    bp_nonfinite_scan(&f, "forward", "h", "h = g(x)", values, 4, 2, 3);
    CU_ASSERT_STRING_EQUAL(f.function, "forward");
    CU_ASSERT_EQUAL(f.sample, 1);
    CU_ASSERT_EQUAL(f.index, 1);
    CU_ASSERT(isnan(f.value));
    bp_nonfinite_note(&f, "backward", "d", NULL, 1.0 / 0.0, 0, 0);   /* the first wins */
    CU_ASSERT_STRING_EQUAL(f.name, "h");
    char msg[128];
    bp_nonfinite_message(&f, msg, sizeof msg);
    CU_ASSERT_STRING_EQUAL(msg, "forward: h[1] of sample 1 is nan (h = g(x))");
    bp_nonfinite_clear(&f);
    double d[2] = {0, -HUGE_VAL};
    bp_nonfinite_scan(&f, "backward", "dL/dW", "", d, 8, 0, 2);
    bp_nonfinite_message(&f, msg, sizeof msg);
    CU_ASSERT_STRING_EQUAL(msg, "backward: dL/dW[1] is -inf");
    bp_nonfinite_message(&f, msg, 12);
    CU_ASSERT_STRING_EQUAL(msg, "backward: d");
}

/* Lowering decides the checks: with --check-finite every step that
 * computes a value is marked in the plan (--dump=lower), the copies out
 * and forward's return are not; without it, none is. */
/* Lines of a --dump=lower listing: those starting with `prefix`, or with
 * prefix NULL the steps that compute a value ("  loop    %8 = tanh %7
 * ... -> ws ..."; not the copies out and forward's return). */
static int count_lines(const char *text, const char *prefix)
{
    int count = 0;
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *one = test_format("%.*s", (int)len, p);
        if (prefix)
            count += !strncmp(one, prefix, strlen(prefix));
        else
            count += !strncmp(one, "  ", 2) && one[2] != ' ' && strstr(one, " = ") &&
                     strstr(one, " -> ");
        free(one);
        p = end ? end + 1 : NULL;
    }
    return count;
}

static void test_plan_marks_checks(void)
{
    static const char *const models[] = {"examples/iris/iris.net",
                                         "examples/digits_cnn/digits_cnn.net"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        for (int on = 0; on < 2; on++) {
            char *cmd = test_format("%s %s -o %s/plan_marks.c --dump=lower%s", TEST_BPGEN,
                                    models[i], TEST_TMP, on ? " --check-finite" : "");
            char *err = NULL;
            CU_ASSERT_EQUAL(test_run(cmd, NULL, &err), 0);
            int steps = count_lines(err, NULL);
            int checked = count_lines(err, "      then every value checked");
            CU_ASSERT(steps > 5);
            CU_ASSERT_EQUAL(checked, on ? steps : 0);
            free(err);
            free(cmd);
        }
}

/* Without the options, the generated code is what it was before them. */
static void test_unchanged_without_options(void)
{
    static const struct {
        const char *model, *name, *flags;
    } cases[] = {
        {"examples/iris/iris.net", "iris", ""},
        {"examples/logistic/logistic.net", "logistic", ""},
        {"examples/digits_cnn/digits_cnn.net", "digits_cnn", ""},
        {"examples/digits_cnn/digits_cnn.net", "digits_cnn_double", "--precision=double"},
    };
    char *dir = test_tmp_path("golden");
    char *mk = test_format("mkdir -p %s", dir);
    CU_ASSERT_EQUAL(test_run(mk, NULL, NULL), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = test_format("%s/%s.c", dir, cases[i].name);
        char *cmd = test_format("%s %s -o %s %s", TEST_BPGEN, cases[i].model, out,
                                cases[i].flags);
        CU_ASSERT_EQUAL(test_run(cmd, NULL, NULL), 0);
        for (int h = 0; h < 2; h++) {
            const char *ext = h ? "h" : "c";
            char *got_path = test_format("%s/%s.%s", dir, cases[i].name, ext);
            char *want_path = test_format("tests/golden/generated/%s.%s", cases[i].name, ext);
            char *got = test_read_file(got_path, NULL), *want = test_read_file(want_path, NULL);
            bool same = got && want && !strcmp(got, want);
            CU_ASSERT(same);
            if (!same)
                fprintf(stderr, "\n%s differs from %s\n", got_path, want_path);
            free(got);
            free(want);
            free(want_path);
            free(got_path);
        }
        free(cmd);
        free(out);
    }
    free(mk);
    free(dir);
}

void register_selftest(void)
{
    CU_pSuite s = CU_add_suite("self-test and finite checks", NULL, NULL);
    CU_add_test(s, "--selftest passes on every example model, float and double",
                test_examples_pass);
    CU_add_test(s, "--selftest fails on every example with a broken backward, naming the entry",
                test_examples_broken_backward_fails);
    CU_add_test(s, "bp_selftest: right and wrong gradients, a limit per tensor",
                test_runtime_selftest);
    CU_add_test(s, "bp_selftest refuses unusable arguments", test_runtime_selftest_refuses);
    CU_add_test(s, "--check-finite: log of 0 named inside a loop", test_log_of_zero);
    CU_add_test(s, "--check-finite: an overflow of exp named", test_overflow);
    CU_add_test(s, "--check-finite: a division by zero in backward", test_backward_division_by_zero);
    CU_add_test(s, "--check-finite: an output of predict", test_predict);
    CU_add_test(s, "--check-finite: silent when every value is finite", test_all_finite);
    CU_add_test(s, "--check-finite: M_nonfinite and bp_nonfinite_message", test_nonfinite_api);
    CU_add_test(s, "bp_nonfinite_scan, _note and _message", test_runtime_nonfinite);
    CU_add_test(s, "--check-finite: the plan marks every step that computes a value",
                test_plan_marks_checks);
    CU_add_test(s, "without the options the generated code is unchanged",
                test_unchanged_without_options);
}
