/* test_emit.c — the generated C's interface (CONTRACT sections 2, 4, 5).
 *
 * Each test runs bpgen on a small model, compiles the C it writes with
 * -Werror (by the test compiler and, where installed, by clang too),
 * links it with a harness written here and runs it. The harnesses compare
 * against values computed independently, by hand-written C, and print
 * `ok` or one `FAIL ...` line per problem. What is checked: the batch mean
 * (loss, parameter and input gradients), grad_inputs NULL handling,
 * predict with inputs it does not need left NULL, frozen parameters, an
 * unbatched loss, a model without inputs, workspace sizes, every INIT, the
 * bp_model descriptor and its wrappers, C keywords as names, float and
 * double models in one program, the header, the --main driver's output
 * and its error exits, finite results for logits of ±1000, biases added
 * by the gemm (beta = 1) in an MLP, derivatives read from stored outputs,
 * and exp, log, tanh and sigmoid from bp.h rather than libm. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static char *clang_cmd(void)
{
    char *out = NULL;
    if (test_run("command -v clang", &out, NULL) != 0 || !out || !*out) {
        free(out);
        return NULL;
    }
    out[strcspn(out, "\n")] = '\0';
    return out;
}

/* Runs bpgen on `source` as TEST_TMP/name.net, writing TEST_TMP/name.c.
 * Returns 0 on success. */
static int generate(const char *name, const char *source, const char *precision,
                    const char *extra)
{
    char *args = test_format("-o %s/%s.c --precision=%s %s", TEST_TMP, name, precision,
                             extra ? extra : "");
    char *err = NULL;
    int rc = test_bpgen(name, source, args, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "\n[%s] bpgen failed (%d):\n%s\n", name, rc, err ? err : "");
    free(err);
    free(args);
    return rc;
}

/* Compiles the generated C of every model in `names` (space-separated)
 * with the harness text (may be NULL: a --main program) into
 * TEST_TMP/exe; checks with clang as well, when installed, that it compiles
 * warning-free. Returns 0 on success. */
static int build(const char *exe, const char *names, const char *harness)
{
    char *sources = test_format("%s", "");
    char *list = test_format("%s", names);
    for (char *tok = strtok(list, " "); tok; tok = strtok(NULL, " ")) {
        char *more = test_format("%s %s/%s.c", sources, TEST_TMP, tok);
        free(sources);
        sources = more;
    }
    free(list);
    char *harness_c = NULL;
    if (harness) {
        harness_c = test_format("%s/%s_harness.c", TEST_TMP, exe);
        if (test_write_file(harness_c, harness) != 0) {
            free(harness_c);
            free(sources);
            return -1;
        }
    }
    char *exe_path = test_tmp_path(exe);
    char *cmd = test_format("%s %s -Werror -Iruntime -I%s -o %s %s %s %s -lm", TEST_CC,
                            TEST_CFLAGS, TEST_TMP, exe_path, sources,
                            harness_c ? harness_c : "", TEST_LIBBP);
    char *err = NULL;
    int rc = test_run(cmd, NULL, &err);
    if (rc != 0)
        fprintf(stderr, "\n[%s] does not compile cleanly:\n%s\n", exe, err ? err : "");
    free(err);
    free(cmd);
    char *clang = clang_cmd();
    if (rc == 0 && clang) {
        /* compile only: the runtime may be built for another compiler's
         * sanitizers */
        cmd = test_format("%s -std=c99 -Wall -Wextra -pedantic -Werror -Iruntime -I%s "
                          "-fsyntax-only %s %s", clang, TEST_TMP, sources,
                          harness_c ? harness_c : "");
        err = NULL;
        rc = test_run(cmd, NULL, &err);
        if (rc != 0)
            fprintf(stderr, "\n[%s] clang:\n%s\n", exe, err ? err : "");
        free(err);
        free(cmd);
    }
    free(clang);
    free(exe_path);
    free(harness_c);
    free(sources);
    return rc;
}

/* Runs TEST_TMP/exe (stdin from `input` when not NULL); returns its exit
 * status, its output in *out and its errors in *err (callers free). */
static int run(const char *exe, const char *input, char **out, char **err)
{
    char *exe_path = test_tmp_path(exe);
    char *cmd;
    if (input) {
        char *in_path = test_format("%s/%s.in", TEST_TMP, exe);
        test_write_file(in_path, input);
        cmd = test_format("%s < %s", exe_path, in_path);
        free(in_path);
    } else {
        cmd = test_format("%s", exe_path);
    }
    int rc = test_run(cmd, out, err);
    free(cmd);
    free(exe_path);
    return rc;
}

/* A harness: a prefix binding `real`, F(x) -> NAME_x and MODEL to one
 * model, then the lines of `body` (NULL-terminated; C99 caps a string
 * literal's length, so harnesses are written as arrays of lines). */
static char *harness_for(const char *name, const char *real, const char *const *body)
{
    size_t len = 1;
    for (int i = 0; body[i]; i++)
        len += strlen(body[i]);
    char *text = malloc(len);
    if (!text)
        abort();
    text[0] = '\0';
    for (int i = 0; body[i]; i++)
        strcat(text, body[i]);
    char *h = test_format("#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                       "#include <string.h>\n#include \"%s.h\"\n"
                       "typedef %s real;\n#define F(x) %s_##x\n#define MODEL %s_model\n"
                       "static int fails;\n"
                       "static void check(int ok, const char *what, double got, double want)\n"
                       "{\n    if (!ok) {\n"
                       "        printf(\"FAIL %%s: got %%.17g, want %%.17g\\n\", what, got, want);\n"
                       "        fails++;\n    }\n}\n"
                       "static int near(double a, double b, double tol)\n"
                       "{\n    return fabs(a - b) <= tol * (1 + fabs(b));\n}\n"
                       "#define TOL (sizeof(real) == 4 ? 1e-5 : 1e-12)\n%s",
                       name, real, name, name, text);
    free(text);
    return h;
}

/* Generates, builds and runs one model with one harness body in float and
 * in double; the harness must print "ok". */
static void run_model(const char *base, const char *source, const char *const *body)
{
    static const char *const precisions[2] = {"float", "double"};
    for (int p = 0; p < 2; p++) {
        char *name = test_format("%s_%c", base, precisions[p][0]);
        char *exe = test_format("%s_run", name);
        char *harness = harness_for(name, precisions[p], body);
        int rc = generate(name, source, precisions[p], NULL);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc == 0) {
            rc = build(exe, name, harness);
            CU_ASSERT_EQUAL(rc, 0);
        }
        if (rc == 0) {
            char *out = NULL;
            rc = run(exe, NULL, &out, NULL);
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_PTR_NOT_NULL(out);
            if (out)
                CU_ASSERT_STRING_EQUAL(out, "ok\n");
            if (rc != 0 || !out || strcmp(out, "ok\n"))
                fprintf(stderr, "\n[%s] harness:\n%s\n", name, out ? out : "");
            free(out);
        }
        free(harness);
        free(exe);
        free(name);
    }
}

/* ---------------------------------------------------------------- linear model */

static const char *const lin_net =
    "input x[3]\ninput y\nparam w[3] = uniform(-1, 1)\nparam b = 0.5\n"
    "yhat = w · x + b\noutput yhat\nwrt x\nloss L = (yhat - y)^2\n";

/* Loss, gradients, grad_inputs handling, predict, workspace, descriptor,
 * all against the formulas of a linear model with squared error. */
static const char *const lin_body[] = {
    "enum { N = 5 };\n",
    "int main(void)\n{\n",
    "    real theta[F(NUM_PARAMS)], grad[F(NUM_PARAMS)], grad2[F(NUM_PARAMS)];\n",
    "    real x[N * 3], y[N], gx[N * 3], ykeep[N], out[N];\n",
    "    F(init)(theta, 7);\n",
    "    const real *w = theta + F(w_OFFSET);\n",
    "    double b = theta[F(b_OFFSET)];\n",
    "    for (int j = 0; j < 3; j++)\n",
    "        check(w[j] >= -1 && w[j] < 1 && w[j] != 0, \"uniform init\", w[j], 0);\n",
    "    check(b == 0.5, \"value init\", b, 0.5);\n",
    "    for (int i = 0; i < N * 3; i++)\n",
    "        x[i] = (real)(0.1 * i - 0.7);\n",
    "    for (int s = 0; s < N; s++) {\n",
    "        y[s] = (real)(0.3 * s - 0.2);\n",
    "        ykeep[s] = 42;\n",
    "    }\n",
    "    double el = 0, gw[3] = {0, 0, 0}, gb = 0, ex[N * 3], r[N];\n",
    "    for (int s = 0; s < N; s++) {\n",
    "        r[s] = b - y[s];\n",
    "        for (int j = 0; j < 3; j++)\n",
    "            r[s] += (double)w[j] * x[s * 3 + j];\n",
    "        el += r[s] * r[s] / N;\n",
    "        gb += 2 * r[s] / N;\n",
    "        for (int j = 0; j < 3; j++) {\n",
    "            gw[j] += 2 * r[s] * x[s * 3 + j] / N;\n",
    "            ex[s * 3 + j] = 2 * r[s] * w[j] / N;\n",
    "        }\n",
    "    }\n",
    "    /* workspace: (a n + b) reals */\n",
    "    size_t w1 = F(workspace_size)(1), w2 = F(workspace_size)(2), w9 = F(workspace_size)(9);\n",
    "    check(w9 - w1 == 8 * (w2 - w1) && w2 >= w1, \"workspace affine in n\", (double)w9, 0);\n",
    "    check(w1 % sizeof(real) == 0, \"workspace in reals\", (double)w1, 0);\n",
    "    void *ws = malloc(F(workspace_size)(N));\n",
    "    const real *in[2] = {x, y};\n",
    "    real loss = F(forward)(theta, in, N, ws);\n",
    "    check(near(loss, el, TOL), \"batch loss is the mean\", loss, el);\n",
    "    for (int i = 0; i < F(NUM_PARAMS); i++)\n",
    "        grad[i] = grad2[i] = (real)NAN;\n",
    "    for (int i = 0; i < N * 3; i++)\n",
    "        gx[i] = (real)NAN;\n",
    "    real *gi[2] = {gx, ykeep};\n",
    "    F(backward)(theta, in, N, ws, grad, gi);\n",
    "    for (int j = 0; j < 3; j++)\n",
    "        check(near(grad[F(w_OFFSET) + j], gw[j], TOL), \"dL/dw\", grad[F(w_OFFSET) + j], gw[j]);\n",
    "    check(near(grad[F(b_OFFSET)], gb, TOL), \"dL/db\", grad[F(b_OFFSET)], gb);\n",
    "    for (int i = 0; i < N * 3; i++)\n",
    "        check(near(gx[i], ex[i], TOL), \"grad x row = dloss_i/dx_i / n\", gx[i], ex[i]);\n",
    "    for (int s = 0; s < N; s++)\n",
    "        check(ykeep[s] == 42, \"grad_inputs of a non-wrt input left alone\", ykeep[s], 42);\n",
    "    /* grad_inputs NULL, and a NULL entry */\n",
    "    F(forward)(theta, in, N, ws);\n",
    "    F(backward)(theta, in, N, ws, grad2, NULL);\n",
    "    for (int i = 0; i < F(NUM_PARAMS); i++)\n",
    "        check(grad2[i] == grad[i], \"backward with grad_inputs NULL\", grad2[i], grad[i]);\n",
    "    real *none[2] = {NULL, NULL};\n",
    "    F(forward)(theta, in, N, ws);\n",
    "    F(backward)(theta, in, N, ws, grad2, none);\n",
    "    check(grad2[0] == grad[0], \"backward with NULL entries\", grad2[0], grad[0]);\n",
    "    /* per sample: the batch gradient row is 1/n of the sample's own */\n",
    "    for (int s = 0; s < N; s++) {\n",
    "        const real *one[2] = {x + 3 * s, y + s};\n",
    "        real g1[F(NUM_PARAMS)], gx1[3];\n",
    "        real *gi1[2] = {gx1, NULL};\n",
    "        real l1 = F(forward)(theta, one, 1, ws);\n",
    "        check(near(l1, r[s] * r[s], TOL), \"loss of one sample\", l1, r[s] * r[s]);\n",
    "        F(backward)(theta, one, 1, ws, g1, gi1);\n",
    "        for (int j = 0; j < 3; j++)\n",
    "            check(near(gx1[j] / N, gx[3 * s + j], TOL), \"batch row vs sample\", gx1[j] / N, gx[3 * s + j]);\n",
    "    }\n",
    "    /* predict: y is not needed and may be NULL */\n",
    "    const real *px[2] = {x, NULL};\n",
    "    real *outs[1] = {out};\n",
    "    F(predict)(theta, px, N, ws, outs);\n",
    "    for (int s = 0; s < N; s++)\n",
    "        check(near(out[s], r[s] + y[s], TOL), \"predict yhat\", out[s], r[s] + y[s]);\n",
    "    /* the descriptor and its untyped wrappers */\n",
    "    const bp_model *m = &MODEL;\n",
    "    check(m->real_size == (int)sizeof(real), \"real_size\", m->real_size, sizeof(real));\n",
    "    check(m->num_params == F(NUM_PARAMS) && m->num_param_tensors == 2, \"num_params\", (double)m->num_params, 4);\n",
    "    check(!strcmp(m->params[0].name, \"w\") && m->params[0].size == 3 && m->params[0].rank == 1 &&\n",
    "          m->params[0].dims[0] == 3 && m->params[1].offset == 3 && m->params[1].rank == 0,\n",
    "          \"param table\", 0, 0);\n",
    "    check(m->num_inputs == F(NUM_INPUTS) && m->inputs[0].wrt && !m->inputs[1].wrt &&\n",
    "          !strcmp(m->inputs[1].name, \"y\") && m->inputs[0].size == 3, \"input table\", 0, 0);\n",
    "    check(m->num_outputs == 1 && !strcmp(m->outputs[0].name, \"yhat\") && m->outputs[0].size == 1,\n",
    "          \"output table\", 0, 0);\n",
    "    check(!strcmp(m->loss_name, \"L\") && !strcmp(m->name, F(model).name), \"names\", 0, 0);\n",
    "    const void *vin[2] = {x, y};\n",
    "    double vl = m->forward(theta, vin, N, ws);\n",
    "    check(vl == (double)loss, \"untyped forward\", vl, loss);\n",
    "    void *vgi[2] = {gx, NULL};\n",
    "    m->backward(theta, vin, N, ws, grad2, vgi);\n",
    "    check(grad2[1] == grad[1], \"untyped backward\", grad2[1], grad[1]);\n",
    "    void *vout[1] = {out};\n",
    "    m->predict(theta, vin, N, ws, vout);\n",
    "    check(near(out[2], r[2] + y[2], TOL), \"untyped predict\", out[2], r[2] + y[2]);\n",
    "    check(m->workspace_size(3) == F(workspace_size)(3), \"untyped workspace\", 0, 0);\n",
    "    real t2[F(NUM_PARAMS)];\n",
    "    m->init(t2, 7);\n",
    "    check(!memcmp(t2, theta, sizeof t2), \"untyped init\", 0, 0);\n",
    "    free(ws);\n",
    "    printf(\"%s\\n\", fails ? \"FAILED\" : \"ok\");\n",
    "    return fails != 0;\n",
    "}\n",
    NULL};

static void test_linear_model(void)
{
    run_model("em_lin", lin_net, lin_body);
}

/* ---------------------------------------------------------------- names, frozen */

/* C keywords and the generated code's own names as model names; a frozen
 * parameter; an input no value uses (passed as NULL); a loss with an
 * unbatched term. h = tanh(n·int + ws) with n all ones. */
static const char *const kw_net =
    "input int[2]\ninput theta[2]\nparam frozen n[3, 2] = ones\nparam ws[3] = 0.25\n"
    "param i = 2\nwrt int\nlinux = n · int + ws\nh = tanh(linux)\noutput h\n"
    "loss L = sum(h * h) * i + sum(ws * ws)\n";

static const char *const kw_body[] = {
    "enum { N = 3 };\n",
    "int main(void)\n{\n",
    "    real theta[F(NUM_PARAMS)], grad[F(NUM_PARAMS)], x[N * 2], gx[N * 2], out[N * 3];\n",
    "    F(init)(theta, 1);\n",
    "    for (int k = 0; k < 6; k++)\n",
    "        check(theta[F(n_OFFSET) + k] == 1, \"ones\", theta[k], 1);\n",
    "    theta[F(ws_OFFSET)] = (real)0.1;\n",
    "    theta[F(ws_OFFSET) + 1] = (real)-0.2;\n",
    "    for (int k = 0; k < N * 2; k++)\n",
    "        x[k] = (real)(0.15 * k - 0.4);\n",
    "    const real *ws = theta + F(ws_OFFSET);\n",
    "    double i = theta[F(i_OFFSET)], el = 0, gws[3], gi = 0, ex[N * 2], h[N][3];\n",
    "    for (int j = 0; j < 3; j++) {\n",
    "        gws[j] = 2.0 * ws[j];\n",
    "        el += (double)ws[j] * ws[j];\n",
    "    }\n",
    "    for (int s = 0; s < N; s++) {\n",
    "        ex[2 * s] = ex[2 * s + 1] = 0;\n",
    "        for (int j = 0; j < 3; j++) {\n",
    "            h[s][j] = tanh((double)x[2 * s] + x[2 * s + 1] + ws[j]);\n",
    "            double d = i * 2 * h[s][j] * (1 - h[s][j] * h[s][j]);\n",
    "            el += i * h[s][j] * h[s][j] / N;\n",
    "            gi += h[s][j] * h[s][j] / N;\n",
    "            gws[j] += d / N;\n",
    "            ex[2 * s] += d / N;\n",
    "            ex[2 * s + 1] += d / N;\n",
    "        }\n",
    "    }\n",
    "    void *w = malloc(F(workspace_size)(N));\n",
    "    const real *in[2] = {x, NULL};\n",
    "    real loss = F(forward)(theta, in, N, w);\n",
    "    check(near(loss, el, TOL), \"loss\", loss, el);\n",
    "    for (int k = 0; k < F(NUM_PARAMS); k++)\n",
    "        grad[k] = (real)NAN;\n",
    "    real *g[2] = {gx, NULL};\n",
    "    F(backward)(theta, in, N, w, grad, g);\n",
    "    for (int k = 0; k < 6; k++)\n",
    "        check(grad[F(n_OFFSET) + k] == 0, \"frozen gradient is 0\", grad[k], 0);\n",
    "    for (int j = 0; j < 3; j++)\n",
    "        check(near(grad[F(ws_OFFSET) + j], gws[j], TOL), \"dL/dws\", grad[F(ws_OFFSET) + j], gws[j]);\n",
    "    check(near(grad[F(i_OFFSET)], gi, TOL), \"dL/di\", grad[F(i_OFFSET)], gi);\n",
    "    for (int k = 0; k < N * 2; k++)\n",
    "        check(near(gx[k], ex[k], TOL), \"dL/dint\", gx[k], ex[k]);\n",
    "    real *outs[1] = {out};\n",
    "    F(predict)(theta, in, N, w, outs);\n",
    "    for (int s = 0; s < N; s++)\n",
    "        for (int j = 0; j < 3; j++)\n",
    "            check(near(out[3 * s + j], h[s][j], TOL), \"predict h\", out[3 * s + j], h[s][j]);\n",
    "    check(MODEL.params[0].frozen == 1 && MODEL.params[1].frozen == 0, \"frozen flag\", 0, 0);\n",
    "    free(w);\n",
    "    printf(\"%s\\n\", fails ? \"FAILED\" : \"ok\");\n",
    "    return fails != 0;\n",
    "}\n",
    NULL};

static void test_keyword_names_and_frozen(void)
{
    run_model("em_kw", kw_net, kw_body);
}

/* Names must compile in GNU modes too, where `linux` and `unix` are
 * predefined macros. */
static void test_gnu_mode_names(void)
{
    const char *src = "input unix[2]\nparam linux[2]\nparam i386\nloss L = sum(unix * linux) * i386\n";
    int rc = generate("em_gnu", src, "double", NULL);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        return;
    char *cmd = test_format("%s -std=gnu99 -Wall -Wextra -Werror -Iruntime -c -o %s/em_gnu.o "
                            "%s/em_gnu.c", TEST_CC, TEST_TMP, TEST_TMP);
    char *err = NULL;
    rc = test_run(cmd, NULL, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\n[em_gnu] gnu99:\n%s\n", err ? err : "");
    free(err);
    free(cmd);
}

/* ---------------------------------------------------------------- unbatched */

/* A loss of parameters only is the same for any batch; a model may have
 * no inputs at all; an unbatched input gradient is broadcast to n rows. */
static const char *const shared_net =
    "param w[2] = 3\nparam v[2] = uniform(0, 1)\nloss L = sum(w * w) + sum(v)\n";

static const char *const shared_body[] = {
    "int main(void)\n{\n",
    "    real theta[F(NUM_PARAMS)], grad[F(NUM_PARAMS)];\n",
    "    F(init)(theta, 3);\n",
    "    double sv = (double)theta[2] + theta[3];\n",
    "    void *ws = malloc(F(workspace_size)(4) + 1);\n",
    "    for (int n = 1; n <= 4; n += 3) {\n",
    "        real loss = F(forward)(theta, NULL, n, ws);\n",
    "        check(near(loss, 18 + sv, TOL), \"unbatched loss\", loss, 18 + sv);\n",
    "        F(backward)(theta, NULL, n, ws, grad, NULL);\n",
    "        check(grad[0] == 6 && grad[1] == 6 && grad[2] == 1 && grad[3] == 1, \"gradient\", grad[0], 6);\n",
    "    }\n",
    "    check(F(NUM_INPUTS) == 0 && MODEL.num_inputs == 0 && MODEL.num_outputs == 0, \"counts\", 0, 0);\n",
    "    F(predict)(theta, NULL, 2, ws, NULL);\n",
    "    free(ws);\n",
    "    printf(\"%s\\n\", fails ? \"FAILED\" : \"ok\");\n",
    "    return fails != 0;\n",
    "}\n",
    NULL};

static const char *const bcast_net =
    "input x[2]\nparam W[2] = 1.5\nwrt x\noutput W\nloss L = sum(W * x)\n";

static const char *const bcast_body[] = {
    "enum { N = 4 };\n",
    "int main(void)\n{\n",
    "    real theta[F(NUM_PARAMS)], grad[F(NUM_PARAMS)], x[N * 2], gx[N * 2], out[N * 2];\n",
    "    F(init)(theta, 3);\n",
    "    theta[1] = -0.5;\n",
    "    for (int k = 0; k < N * 2; k++)\n",
    "        x[k] = (real)k;\n",
    "    void *ws = malloc(F(workspace_size)(N));\n",
    "    const real *in[1] = {x};\n",
    "    real loss = F(forward)(theta, in, N, ws);\n",
    "    double want = 0;\n",
    "    for (int s = 0; s < N; s++)\n",
    "        want += (1.5 * x[2 * s] - 0.5 * x[2 * s + 1]) / N;\n",
    "    check(near(loss, want, TOL), \"loss\", loss, want);\n",
    "    real *gi[1] = {gx};\n",
    "    F(backward)(theta, in, N, ws, grad, gi);\n",
    "    for (int s = 0; s < N; s++) {\n",
    "        check(near(gx[2 * s], 1.5 / N, TOL), \"shared input gradient, row 0\", gx[2 * s], 1.5 / N);\n",
    "        check(near(gx[2 * s + 1], -0.5 / N, TOL), \"shared input gradient, row 1\", gx[2 * s + 1], -0.5 / N);\n",
    "    }\n",
    "    check(near(grad[0], (0 + 2 + 4 + 6) / 4.0, TOL), \"dL/dW\", grad[0], 3);\n",
    "    real *outs[1] = {out};\n",
    "    const real *none[1] = {NULL};\n",
    "    F(predict)(theta, none, N, ws, outs);\n",
    "    for (int s = 0; s < N; s++)\n",
    "        check(out[2 * s] == (real)1.5 && out[2 * s + 1] == (real)-0.5, \"a parameter as output, per row\", out[2 * s], 1.5);\n",
    "    free(ws);\n",
    "    printf(\"%s\\n\", fails ? \"FAILED\" : \"ok\");\n",
    "    return fails != 0;\n",
    "}\n",
    NULL};

static void test_unbatched(void)
{
    run_model("em_shared", shared_net, shared_body);
    run_model("em_bcast", bcast_net, bcast_body);
}

/* ---------------------------------------------------------------- init */

static const char *const init_net =
    "input x\nparam a[4, 5] = xavier\nparam b[3] = he\nparam c[2, 3]\nparam d[7]\n"
    "param e = ones\nparam f[2] = -1.5\nparam g[1000] = uniform(2, 3)\n"
    "param h[1000] = normal(5, 0.1)\nparam z[2, 2] = zeros\n"
    "param k4[4, 3, 3, 2] = xavier\nparam k3[5, 2, 3] = he\nparam k4d[2, 3, 2, 2]\n"
    "loss L = sum(a) + sum(b) + sum(c) + sum(d) + e + sum(f) + sum(g) + sum(h) + sum(z) + x"
    " + sum(k4) + sum(k3) + sum(k4d)\n";

/* Every INIT against the runtime's fill functions called in declaration
 * order with one generator: M_init must be exactly that. */
static const char *const init_body[] = {
    "int main(void)\n{\n",
    "    static real theta[F(NUM_PARAMS)], want[F(NUM_PARAMS)], other[F(NUM_PARAMS)];\n",
    "    F(init)(theta, 99);\n",
    "    bp_rng r;\n",
    "    bp_rng_seed(&r, 99);\n",
    "    int rs = (int)sizeof(real);\n",
    "    bp_fill_uniform(&r, want + F(a_OFFSET), rs, 20, -sqrt(6.0 / 9), sqrt(6.0 / 9));\n",
    "    bp_fill_normal(&r, want + F(b_OFFSET), rs, 3, 0, sqrt(2.0 / 3));\n",
    "    bp_fill_normal(&r, want + F(c_OFFSET), rs, 6, 0, 1 / sqrt(3.0));\n",
    "    bp_fill_value(want + F(d_OFFSET), rs, 7, 0);\n",
    "    bp_fill_value(want + F(e_OFFSET), rs, 1, 1);\n",
    "    bp_fill_value(want + F(f_OFFSET), rs, 2, -1.5);\n",
    "    bp_fill_uniform(&r, want + F(g_OFFSET), rs, 1000, 2, 3);\n",
    "    bp_fill_normal(&r, want + F(h_OFFSET), rs, 1000, 5, 0.1);\n",
    "    bp_fill_value(want + F(z_OFFSET), rs, 4, 0);\n",
    /* rank 3 and 4: fan-out d1·r, fan-in d2·r, r the other dimensions */
    "    bp_fill_uniform(&r, want + F(k4_OFFSET), rs, 72, -sqrt(6.0 / (24 + 18)), sqrt(6.0 / (24 + 18)));\n",
    "    bp_fill_normal(&r, want + F(k3_OFFSET), rs, 30, 0, sqrt(2.0 / 6));\n",
    "    bp_fill_normal(&r, want + F(k4d_OFFSET), rs, 24, 0, 1 / sqrt(12.0));\n",
    "    for (int k = 0; k < F(NUM_PARAMS); k++)\n",
    "        check(theta[k] == want[k], \"init as the runtime fills\", theta[k], want[k]);\n",
    "    double mean = 0;\n",
    "    for (int k = 0; k < 1000; k++) {\n",
    "        double v = theta[F(g_OFFSET) + k];\n",
    "        check(v >= 2 && v < 3, \"uniform range\", v, 2.5);\n",
    "        mean += theta[F(h_OFFSET) + k] / 1000.0;\n",
    "    }\n",
    "    check(fabs(mean - 5) < 0.02, \"normal mean\", mean, 5);\n",
    "    for (int k = 0; k < 20; k++)\n",
    "        check(fabs(theta[k]) <= sqrt(6.0 / 9), \"xavier bound\", theta[k], 0);\n",
    "    check(near(theta[F(f_OFFSET)], -1.5, 0), \"constant\", theta[F(f_OFFSET)], -1.5);\n",
    "    F(init)(other, 99);\n",
    "    check(!memcmp(theta, other, sizeof other), \"same seed, same values\", 0, 0);\n",
    "    F(init)(other, 100);\n",
    "    check(memcmp(theta, other, sizeof other) != 0, \"another seed, other values\", 0, 0);\n",
    "    check(F(NUM_PARAMS) == 20 + 3 + 6 + 7 + 1 + 2 + 1000 + 1000 + 4 + 72 + 30 + 24 &&\n",
    "          F(h_SIZE) == 1000 && F(k4_SIZE) == 72 &&\n",
    "          F(e_OFFSET) == 36, \"sizes and offsets\", F(NUM_PARAMS), 0);\n",
    "    printf(\"%s\\n\", fails ? \"FAILED\" : \"ok\");\n",
    "    return fails != 0;\n",
    "}\n",
    NULL};

static void test_init(void)
{
    run_model("em_init", init_net, init_body);
}

/* ---------------------------------------------------------------- two models, header */

/* A float and a double model in one program: the header defines no
 * `real` and no other shared name. */
static void test_two_precisions(void)
{
    int rc = generate("em_two_f", lin_net, "float", NULL);
    rc = rc ? rc : generate("em_two_d", lin_net, "double", NULL);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        return;
    const char *harness =
        "#include <stdio.h>\n#include \"em_two_f.h\"\n#include \"em_two_d.h\"\n"
        "int main(void)\n{\n"
        "    float tf[em_two_f_NUM_PARAMS];\n    double td[em_two_d_NUM_PARAMS];\n"
        "    em_two_f_init(tf, 5);\n    em_two_d_init(td, 5);\n"
        "    int ok = em_two_f_model.real_size == 4 && em_two_d_model.real_size == 8 &&\n"
        "             (float)td[0] == tf[0] && td[3] == 0.5;\n"
        "    puts(ok ? \"ok\" : \"FAILED\");\n    return !ok;\n}\n";
    rc = build("em_two_run", "em_two_f em_two_d", harness);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        return;
    char *out = NULL;
    rc = run("em_two_run", NULL, &out, NULL);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(out && !strcmp(out, "ok\n"));
    free(out);

    char *h = test_read_file(TEST_TMP "/em_two_d.h", NULL);
    char *c = test_read_file(TEST_TMP "/em_two_d.c", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(!strncmp(h, "/* Generated by bpgen ", 22));
    CU_ASSERT(!strncmp(c, "/* Generated by bpgen ", 22));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "— do not edit. */"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "#define em_two_d_NUM_PARAMS 4\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "#define em_two_d_NUM_INPUTS 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "#define em_two_d_w_OFFSET 0\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "#define em_two_d_w_SIZE 3\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "#define em_two_d_b_OFFSET 3\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "#define em_two_d_b_SIZE 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "#include \"bp.h\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "extern const bp_model em_two_d_model;"));
    CU_ASSERT_PTR_NULL(strstr(h, "typedef"));
    /* the generated code allocates nothing and does no I/O */
    CU_ASSERT_PTR_NULL(strstr(c, "malloc"));
    CU_ASSERT_PTR_NULL(strstr(c, "printf"));
    free(h);
    free(c);
}

/* ---------------------------------------------------------------- --main */

static void main_case(const char *exe, const char *input, int want_rc, const char *want_out)
{
    char *out = NULL, *err = NULL;
    int rc = run(exe, input, &out, &err);
    CU_ASSERT_EQUAL(rc, want_rc);
    if (want_out) {
        CU_ASSERT(out && !strcmp(out, want_out));
    } else {
        CU_ASSERT(out && !*out);          /* nothing on stdout */
        CU_ASSERT(err && strlen(err) > 0); /* a message on stderr */
    }
    if (rc != want_rc || (want_out && (!out || strcmp(out, want_out))))
        fprintf(stderr, "\n[%s] input '%s': status %d\nstdout:\n%s\nstderr:\n%s\n", exe, input, rc,
                out ? out : "", err ? err : "");
    free(out);
    free(err);
}

/* Exact numbers: w = (1, 2, 3), b = 0.5, samples x = (1, 0, 0), y = 1 and
 * x = (0, 1, 1), y = 4: residuals 0.5 and 1.5. */
static void test_main_driver(void)
{
    static const char *const precisions[2] = {"double", "float"};
    const char *want = "loss 1.25\ngrad w 0.5 1.5 1.5\ngrad b 2\n"
                       "grad x 0.5 1 1.5 1.5 3 4.5\noutput yhat 1.5 5.5\n";
    for (int p = 0; p < 2; p++) {
        char *name = test_format("em_main_%c", precisions[p][0]);
        char *exe = test_format("%s_run", name);
        int rc = generate(name, lin_net, precisions[p], "--main");
        CU_ASSERT_EQUAL(rc, 0);
        rc = rc ? rc : build(exe, name, NULL);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc == 0) {
            main_case(exe, "1 2 3 0.5\n2\n1 0 0 1\n0 1 1 4\n", 0, want);
            main_case(exe, "1e0 2E0 +3 5e-1 2.0 1 0 0 1 0 1 1 .4e1", 0, want);
            main_case(exe, "1 2 3 0.5 2 1 0 0 1 0 1 1", 2, NULL);       /* short */
            main_case(exe, "1 2 3", 2, NULL);                          /* short */
            main_case(exe, "", 2, NULL);                               /* empty */
            main_case(exe, "1 2 x3 0.5 1 1 0 0 1", 2, NULL);           /* malformed */
            main_case(exe, "1 2 3 0.5 0", 2, NULL);                    /* n = 0 */
            main_case(exe, "1 2 3 0.5 -1 1 0 0 1", 2, NULL);           /* n < 0 */
            main_case(exe, "1 2 3 0.5 1.5 1 0 0 1", 2, NULL);          /* n not whole */
            main_case(exe, "1 2 3 0.5 1 1 0 0 1 junk", 2, NULL);       /* trailing */
        }
        free(exe);
        free(name);
    }
}

/* Logits of ±1000: finite loss and gradients, through every safe form. */
static void test_extreme_logits(void)
{
    const char *src =
        "input z[3]\ninput y[3]\nparam w[3] = ones\nwrt z\n"
        "q = sigmoid(w * z)\n"
        "loss L = softmax_cross_entropy(w * z, y) + cross_entropy(softmax(w * z), y) +"
        " logsumexp(w * z) + bce(q, y) + sum(softplus(w * z))\n";
    static const char *const precisions[2] = {"double", "float"};
    for (int p = 0; p < 2; p++) {
        char *name = test_format("em_big_%c", precisions[p][0]);
        char *exe = test_format("%s_run", name);
        int rc = generate(name, src, precisions[p], "--main");
        CU_ASSERT_EQUAL(rc, 0);
        rc = rc ? rc : build(exe, name, NULL);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc == 0) {
            char *out = NULL;
            rc = run(exe, "1 1 1\n2\n1000 -1000 0 0 1 0\n-1000 1000 0 1 0 0\n", &out, NULL);
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT(out && !strstr(out, "nan") && !strstr(out, "inf"));
            double loss = out && !strncmp(out, "loss ", 5) ? strtod(out + 5, NULL) : -1;
            /* each sample: 2000 + 2000 + 1000 + (2000 + log 2) / 3 + 1000 + log 2 */
            CU_ASSERT(loss > 6667.5 && loss < 6667.7);
            if (rc != 0 || !out || strstr(out, "nan") || strstr(out, "inf"))
                fprintf(stderr, "\n[%s]:\n%s\n", name, out ? out : "");
            free(out);
        }
        free(exe);
        free(name);
    }
}

/* The number of bp_gemm calls in the generated backward function. */
static int backward_gemms(const char *name)
{
    char *path = test_format("%s/%s.c", TEST_TMP, name);
    char *c = test_read_file(path, NULL);
    free(path);
    if (!c)
        return -1;
    char *start = strstr(c, "_backward(const");
    char *end = start ? strstr(start, "\n}\n") : NULL;
    int count = 0;
    for (char *p = start; p && p < end && (p = strstr(p, "bp_gemm_")) && p < end; p++)
        count++;
    free(c);
    return count;
}

/* A frozen layer costs backward nothing: no weight gradient, and no
 * gradient flowing into the layer either. */
static void test_frozen_backward_does_less(void)
{
    const char *trained = "input x[8]\ninput y[4]\nparam W1[6, 8]\nparam b1[6]\n"
                          "param W2[4, 6]\nparam b2[4]\nh = relu(W1 · x + b1)\n"
                          "loss L = softmax_cross_entropy(W2 · h + b2, y)\n";
    const char *frozen = "input x[8]\ninput y[4]\nparam frozen W1[6, 8]\nparam frozen b1[6]\n"
                         "param W2[4, 6]\nparam b2[4]\nh = relu(W1 · x + b1)\n"
                         "loss L = softmax_cross_entropy(W2 · h + b2, y)\n";
    CU_ASSERT_EQUAL_FATAL(generate("emit_unfrozen", trained, "float", NULL), 0);
    CU_ASSERT_EQUAL_FATAL(generate("emit_frozen", frozen, "float", NULL), 0);
    /* dW2, dh and dW1 against dW2 alone */
    CU_ASSERT_EQUAL(backward_gemms("emit_unfrozen"), 3);
    CU_ASSERT_EQUAL(backward_gemms("emit_frozen"), 1);
}

/* ---------------------------------------------------------------- bias in gemm */

/* An MLP: h = tanh(W1 · x + b1), z = W2 · h + b2. Each bias is added by
 * the gemm (its rows pre-filled with the bias, beta = 1), not by a pass
 * of its own; the values are those of the formulas. */
static const char *const mlp_net =
    "input x[3]\nparam W1[4, 3] = uniform(-1, 1)\nparam b1[4] = 0.25\n"
    "param W2[2, 4] = uniform(-1, 1)\nparam b2[2] = -0.5\n"
    "h = tanh(W1 · x + b1)\nz = W2 · h + b2\noutput z\nloss L = sum(z * z)\n";

static const char *const mlp_body[] = {
    "enum { N = 5 };\n",
    "int main(void)\n{\n",
    "    real theta[F(NUM_PARAMS)], grad[F(NUM_PARAMS)], x[N * 3], out[N * 2];\n",
    "    F(init)(theta, 3);\n",
    "    for (int k = 0; k < 4; k++)\n",
    "        theta[F(b1_OFFSET) + k] = (real)(0.1 * k - 0.15);\n",
    "    theta[F(b2_OFFSET) + 1] = (real)0.75;\n",
    "    for (int i = 0; i < N * 3; i++)\n",
    "        x[i] = (real)(0.2 * i - 1.1);\n",
    "    const real *W1 = theta + F(W1_OFFSET), *b1 = theta + F(b1_OFFSET);\n",
    "    const real *W2 = theta + F(W2_OFFSET), *b2 = theta + F(b2_OFFSET);\n",
    "    double el = 0, z[N][2], gW1[12] = {0}, gb1[4] = {0}, gW2[8] = {0}, gb2[2] = {0};\n",
    "    for (int s = 0; s < N; s++) {\n",
    "        double h[4], dh[4] = {0};\n",
    "        for (int k = 0; k < 4; k++) {\n",
    "            double a = b1[k];\n",
    "            for (int j = 0; j < 3; j++)\n",
    "                a += (double)W1[k * 3 + j] * x[s * 3 + j];\n",
    "            h[k] = tanh(a);\n",
    "        }\n",
    "        for (int o = 0; o < 2; o++) {\n",
    "            z[s][o] = b2[o];\n",
    "            for (int k = 0; k < 4; k++)\n",
    "                z[s][o] += (double)W2[o * 4 + k] * h[k];\n",
    "            el += z[s][o] * z[s][o] / N;\n",
    "            double dz = 2 * z[s][o] / N;\n",
    "            gb2[o] += dz;\n",
    "            for (int k = 0; k < 4; k++) {\n",
    "                gW2[o * 4 + k] += dz * h[k];\n",
    "                dh[k] += dz * W2[o * 4 + k];\n",
    "            }\n",
    "        }\n",
    "        for (int k = 0; k < 4; k++) {\n",
    "            double da = dh[k] * (1 - h[k] * h[k]);\n",
    "            gb1[k] += da;\n",
    "            for (int j = 0; j < 3; j++)\n",
    "                gW1[k * 3 + j] += da * x[s * 3 + j];\n",
    "        }\n",
    "    }\n",
    "    void *ws = malloc(F(workspace_size)(N));\n",
    "    const real *in[1] = {x};\n",
    "    real loss = F(forward)(theta, in, N, ws);\n",
    "    check(near(loss, el, TOL), \"loss\", loss, el);\n",
    "    for (int i = 0; i < F(NUM_PARAMS); i++)\n",
    "        grad[i] = (real)NAN;\n",
    "    F(backward)(theta, in, N, ws, grad, NULL);\n",
    "    for (int i = 0; i < 12; i++)\n",
    "        check(near(grad[F(W1_OFFSET) + i], gW1[i], TOL), \"dL/dW1\", grad[F(W1_OFFSET) + i], gW1[i]);\n",
    "    for (int i = 0; i < 4; i++)\n",
    "        check(near(grad[F(b1_OFFSET) + i], gb1[i], TOL), \"dL/db1\", grad[F(b1_OFFSET) + i], gb1[i]);\n",
    "    for (int i = 0; i < 8; i++)\n",
    "        check(near(grad[F(W2_OFFSET) + i], gW2[i], TOL), \"dL/dW2\", grad[F(W2_OFFSET) + i], gW2[i]);\n",
    "    for (int i = 0; i < 2; i++)\n",
    "        check(near(grad[F(b2_OFFSET) + i], gb2[i], TOL), \"dL/db2\", grad[F(b2_OFFSET) + i], gb2[i]);\n",
    "    real *outs[1] = {out};\n",
    "    for (int i = 0; i < N * 2; i++)\n",
    "        out[i] = (real)NAN;\n",
    "    F(predict)(theta, in, N, ws, outs);\n",
    "    for (int s = 0; s < N; s++)\n",
    "        for (int o = 0; o < 2; o++)\n",
    "            check(near(out[s * 2 + o], z[s][o], TOL), \"predict z\", out[s * 2 + o], z[s][o]);\n",
    "    free(ws);\n",
    "    printf(\"%s\\n\", fails ? \"FAILED\" : \"ok\");\n",
    "    return fails != 0;\n",
    "}\n",
    NULL};

/* The text of the generated function `fn` ("forward") of TEST_TMP/name.c
 * (caller frees), or NULL. */
static char *function_text(const char *name, const char *fn)
{
    char *path = test_format("%s/%s.c", TEST_TMP, name);
    char *c = test_read_file(path, NULL);
    free(path);
    char *key = test_format("_%s(const", fn);
    char *start = c ? strstr(c, key) : NULL;
    char *end = start ? strstr(start, "\n}\n") : NULL;
    char *text = NULL;
    if (end) {
        end[1] = '\0';
        text = test_format("%s", start);
    }
    free(key);
    free(c);
    return text;
}

static int occurrences(const char *text, const char *what)
{
    int k = 0;
    for (const char *p = text; p && (p = strstr(p, what)); p += strlen(what))
        k++;
    return k;
}

/* The biases go into the products: into the gemm (beta = 1 over rows
 * that start as the bias) and, in the loops that write these tiny
 * products for batches below 8, added to each dot product. */
static void test_bias_in_gemm(void)
{
    run_model("em_mlp", mlp_net, mlp_body);
    static const char *const names[2] = {"em_mlp_f", "em_mlp_d"};
    for (int p = 0; p < 2; p++) {
        for (int f = 0; f < 2; f++) {
            char *text = function_text(names[p], f ? "predict" : "forward");
            CU_ASSERT_PTR_NOT_NULL_FATAL(text);
            /* both products are gemms with beta = 1 (the 11th argument) */
            int gemms = 0, beta_one = 0;
            for (char *q = strstr(text, "bp_gemm_"); q; q = strstr(q + 1, "bp_gemm_")) {
                char *arg = strchr(q, '(');
                for (int k = 0; arg && k < 10; k++)
                    arg = strchr(arg + 1, ',');
                gemms++;
                if (arg && strtod(arg + 1, NULL) == 1.0)
                    beta_one++;
            }
            CU_ASSERT_EQUAL(gemms, 2);
            CU_ASSERT_EQUAL(beta_one, 2);
            /* no product in a temporary of its own, no loop adding a bias
             * to one; the comments name the equations */
            CU_ASSERT_PTR_NULL(strstr(text, "matmul_"));
            CU_ASSERT_EQUAL(occurrences(text, "b1[j]"), 1);
            CU_ASSERT_EQUAL(occurrences(text, "b2[j]"), 1);
            CU_ASSERT_EQUAL(occurrences(text, "acc + b1[j];"), 1);
            CU_ASSERT_EQUAL(occurrences(text, "acc + b2[j];"), 1);
            CU_ASSERT_EQUAL(occurrences(text, "if (n < 8) {"), 2);
            CU_ASSERT_PTR_NOT_NULL(strstr(text, " = W1 · x + b1 */"));
            CU_ASSERT_PTR_NOT_NULL(strstr(text, "  z = W2 · h + b2 */"));
            if (gemms != 2 || beta_one != 2 || strstr(text, "matmul_"))
                fprintf(stderr, "\n[%s]:\n%s\n", names[p], text);
            free(text);
        }
        /* below batch 8 each weight gradient is written by its first
         * sample's rank-1 update, the later samples' added: no pass
         * clearing it first */
        char *text = function_text(names[p], "backward");
        CU_ASSERT_PTR_NOT_NULL_FATAL(text);
        CU_ASSERT_EQUAL(occurrences(text, "for (size_t k = 1; k < (size_t)n; k++)"), 2);
        CU_ASSERT_PTR_NULL(strstr(text, " + j] = 0.0"));
        free(text);
    }
}

/* ---------------------------------------------------------------- stored outputs, fast math */

/* Occurrences of `what` in `text`. */
/* `text` without its comments (which quote the chain rule), in place. */
static char *code_only(char *text)
{
    char *out = text;
    for (const char *p = text; p && *p;) {
        if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            p = end ? end + 2 : p + strlen(p);
        } else {
            *out++ = *p++;
        }
    }
    if (text)
        *out = '\0';
    return text;
}

/* Backward takes a derivative from the stored output where the output
 * determines it: sqrt's from P (no sqrt in backward), layernorm's
 * a^-1.5 from the stored a^-0.5, (a)^-2's a^-3 as y / a (no powf);
 * forward then keeps no more than it did. */
static void test_derivatives_from_outputs(void)
{
    static const char *const precisions[2] = {"float", "double"};
    const char *chain = "input L\nwrt L\nS = L^2 + 2\nloss P = sqrt(S)\n";
    const char *norm = "input x[4]\nparam w[4]\nwrt x\nloss L = sum(layernorm(w * x) * x)\n";
    const char *inverse = "input x[3]\nparam w[3]\nwrt x\nloss L = sum(w * (x * x + 1)^-2)\n";
    for (int p = 0; p < 2; p++) {
        char *names[3] = {test_format("em_out_chain_%c", precisions[p][0]),
                          test_format("em_out_norm_%c", precisions[p][0]),
                          test_format("em_out_inv_%c", precisions[p][0])};
        const char *sources[3] = {chain, norm, inverse};
        for (int m = 0; m < 3; m++)
            CU_ASSERT_EQUAL_FATAL(generate(names[m], sources[m], precisions[p], NULL), 0);
        char *fwd = code_only(function_text(names[0], "forward"));
        char *bwd = code_only(function_text(names[0], "backward"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(fwd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bwd);
        CU_ASSERT_EQUAL(occurrences(fwd, "sqrt"), 1);
        CU_ASSERT_PTR_NULL(strstr(bwd, "sqrt"));
        /* times 1/n, not a second division per element */
        CU_ASSERT_PTR_NOT_NULL(strstr(bwd, "d_L[i] = L[i] / P[i] * (1.0"));
        free(fwd);
        free(bwd);
        bwd = code_only(function_text(names[1], "backward"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(bwd);
        CU_ASSERT_PTR_NULL(strstr(bwd, "sqrt"));
        free(bwd);
        bwd = code_only(function_text(names[2], "backward"));
        CU_ASSERT_PTR_NOT_NULL_FATAL(bwd);
        CU_ASSERT_PTR_NULL(strstr(bwd, "pow"));
        free(bwd);
        for (int m = 0; m < 3; m++)
            free(names[m]);
    }
}

/* exp, log, tanh and sigmoid are the runtime's fast math (bp.h), in
 * either precision, never libm's, and no model-local helper; the code
 * compiles warning-free. */
static void test_fast_math_calls(void)
{
    const char *src = "input x[3]\nparam w[3]\nwrt x\n"
                      "loss L = sum(exp(w * x) * 0.1 + log(x * x + 1) + tanh(w * x) +"
                      " sigmoid(x - w))\n";
    static const char *const precisions[2] = {"float", "double"};
    static const char *const fns[4] = {"exp", "log", "tanh", "sigmoid"};
    for (int p = 0; p < 2; p++) {
        char *name = test_format("em_fast_%c", precisions[p][0]);
        char *exe = test_format("%s_run", name);
        CU_ASSERT_EQUAL_FATAL(generate(name, src, precisions[p], "--main"), 0);
        CU_ASSERT_EQUAL(build(exe, name, NULL), 0);
        char *path = test_format("%s/%s.c", TEST_TMP, name);
        char *c = code_only(test_read_file(path, NULL));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        for (int f = 0; f < 4; f++) {
            const char *suffix = p ? "" : "f";
            char *call = test_format("%s%s(", fns[f], suffix);
            char *fast = test_format("bp_%s", call);
            int all = occurrences(c, call), ours = occurrences(c, fast);
            CU_ASSERT(ours >= 1);
            CU_ASSERT_EQUAL(all, ours);
            if (ours < 1 || all != ours)
                fprintf(stderr, "\n[%s] %s: %d calls, %d of bp.h\n", name, call, all, ours);
            free(fast);
            free(call);
        }
        char *helper = test_format("%s_sigmoid(", name);
        CU_ASSERT_PTR_NULL(strstr(c, helper));
        free(helper);
        free(c);
        free(path);
        free(exe);
        free(name);
    }
}

/* ---------------------------------------------------------------- merged loops */

/* The number of loops (`for (`) in text. */
static int loops_in(const char *text)
{
    int count = 0;
    for (const char *q = strstr(text, "for ("); q; q = strstr(q + 1, "for ("))
        count++;
    return count;
}

/* The chain P = sqrt(L^2 + 2): value and derivative against the formulas,
 * grad_inputs given, NULL, and holding NULL. */
static const char *const chain_net = "input L\nwrt L\nS = L^2 + 2\nloss P = sqrt(S)\n";

static const char *const chain_body[] = {
    "enum { N = 7 };\n",
    "int main(void)\n{\n",
    "    real theta[1] = {0}, grad[1] = {0}, L[N], dL[N];\n",
    "    double el = 0, want[N];\n",
    "    for (int s = 0; s < N; s++) {\n",
    "        L[s] = (real)(0.3 * s - 1);\n",
    "        double S = (double)L[s] * L[s] + 2;\n",
    "        el += sqrt(S) / N;\n",
    "        want[s] = L[s] / sqrt(S) / N;\n",
    "    }\n",
    "    void *ws = malloc(F(workspace_size)(N));\n",
    "    const real *in[1] = {L};\n",
    "    real loss = F(forward)(theta, in, N, ws);\n",
    "    check(near(loss, el, TOL), \"loss\", loss, el);\n",
    "    real *gi[1] = {dL}, *none[1] = {NULL};\n",
    "    for (int s = 0; s < N; s++)\n",
    "        dL[s] = (real)NAN;\n",
    "    F(backward)(theta, in, N, ws, grad, gi);\n",
    "    for (int s = 0; s < N; s++)\n",
    "        check(near(dL[s], want[s], TOL), \"dP/dL\", dL[s], want[s]);\n",
    "    F(backward)(theta, in, N, ws, grad, none);\n",
    "    F(backward)(theta, in, N, ws, grad, NULL);\n",
    "    free(ws);\n",
    "    printf(\"%s\\n\", fails ? \"FAILED\" : \"ok\");\n",
    "    return fails != 0;\n",
    "}\n",
    NULL};

/* Consecutive elementwise loops over the same values are one loop: the
 * chain's forward computes S, P and sums the loss in one loop, S never
 * stored (backward takes dP/dS = 1 / (2P) from the stored P); its
 * backward writes dP/dL into grad_inputs divided by n in the loop
 * computing it, no pass only rescaling. */
static void test_merged_loops(void)
{
    run_model("em_chain", chain_net, chain_body);
    static const char *const names[2] = {"em_chain_f", "em_chain_d"};
    for (int p = 0; p < 2; p++) {
        char *fwd = function_text(names[p], "forward");
        char *bwd = function_text(names[p], "backward");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fwd);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bwd);
        CU_ASSERT_EQUAL(loops_in(fwd), 1);
        CU_ASSERT_EQUAL(loops_in(bwd), 1);
        /* each statement keeps its comment, inside the loop */
        const char *loop = strstr(fwd, "for (");
        CU_ASSERT_TRUE(loop && strstr(loop, "S = L^2 + 2 */") && strstr(loop, "P = sqrt(S) */"));
        /* S a local (backward reads only P), P stored and summed in the loop */
        CU_ASSERT_PTR_NOT_NULL(strstr(fwd, p ? "const double S = " : "const float S = "));
        CU_ASSERT_PTR_NULL(strstr(fwd, "S[i]"));
        CU_ASSERT_PTR_NOT_NULL(strstr(fwd, "acc += P[i];"));
        CU_ASSERT_PTR_NOT_NULL(strstr(bwd, "grad_inputs[0]"));
        /* M_forward_backward: one loop of both; P a local there, the
         * gradient under its NULL test, times a hoisted 1/n */
        char *fb = function_text(names[p], "forward_backward");
        CU_ASSERT_PTR_NOT_NULL_FATAL(fb);
        CU_ASSERT_EQUAL(loops_in(fb), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(fb, p ? "const double P = sqrt(S);" : "const float P = sqrtf(S);"));
        CU_ASSERT_PTR_NULL(strstr(fb, "P[i]"));
        CU_ASSERT_PTR_NOT_NULL(strstr(fb, "acc += P;"));
        CU_ASSERT_PTR_NOT_NULL(strstr(fb, "if (d_L != NULL) {"));
        CU_ASSERT_PTR_NOT_NULL(strstr(fb, "d_L[i] = L[i] / P * inv_n;"));
        /* at batch 1, the copies of forward and backward for one sample */
        char *one = test_format("    if (n == 1) {   /* the copies of forward and backward for one "
                                "sample */\n        const %s loss = %s_forward_one(theta, inputs, "
                                "ws);\n        %s_backward_one(theta, inputs, ws, grad, "
                                "grad_inputs);\n        return loss;\n    }\n",
                                p ? "double" : "float", names[p], names[p]);
        CU_ASSERT_PTR_NOT_NULL(strstr(fb, one));
        free(one);
        if (loops_in(fwd) != 1 || loops_in(bwd) != 1 || loops_in(fb) != 1)
            fprintf(stderr, "\n[%s]:\n%s\n%s\n%s\n", names[p], fwd, bwd, fb);
        free(fb);
        free(fwd);
        free(bwd);
    }
}

/* Loops with a product or a reduction between them stay apart, though
 * they run over the same values: h is read by the product (and by the
 * softmax) at other indices than the loop's. */
static void test_loops_not_merged(void)
{
    const char *net = "input x[32]\nparam W[32, 32]\na = tanh(x)\nz = W · a\nb = exp(z)\n"
                      "p = softmax(b)\nc = log(p)\nd = c * c\noutput b, d\n"
                      "loss L = sum(d) + sum(c)\n";
    CU_ASSERT_EQUAL_FATAL(generate("em_apart_f", net, "float", NULL), 0);
    char *text = function_text("em_apart_f", "predict");
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    /* a and b one call each (bp_vtanhf, bp_vexpf: functions of stored
     * values), log_softmax's four loops (samples; max, sum, write) and d */
    CU_ASSERT_EQUAL(loops_in(text), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "bp_vtanhf(32 * (size_t)n, x, a);"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "bp_vexpf(32 * (size_t)n, z, b);"));
    /* b (read by the softmax there) and d written straight into outputs:
     * no copy */
    CU_ASSERT_PTR_NULL(strstr(text, "memcpy"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "b = outputs[0];"));
    if (loops_in(text) != 5 || strstr(text, "memcpy"))
        fprintf(stderr, "\n[em_apart_f]:\n%s\n", text);
    free(text);
}

/* Tiny products are loops below batch 8 (the bias test above), but not in
 * a function with more than 32 of them: 40 layers of width 4 keep every
 * product a call, so the C compiler sees one form, not two. */
static void test_deep_tiny_products_stay_calls(void)
{
    char net[8192];
    int len = snprintf(net, sizeof net, "input x[4]\n");
    const char *prev = "x";
    char names[41][8];
    for (int l = 1; l <= 40; l++) {
        snprintf(names[l], sizeof names[l], "h%d", l);
        len += snprintf(net + len, sizeof net - (size_t)len,
                        "param W%d[4, 4]\n%s = tanh(W%d · %s)\n", l, names[l], l, prev);
        prev = names[l];
    }
    snprintf(net + len, sizeof net - (size_t)len, "loss L = sum(%s)\n", prev);
    CU_ASSERT_EQUAL_FATAL(generate("em_deep_f", net, "float", NULL), 0);
    char *path = test_format("%s/em_deep_f.c", TEST_TMP);
    char *text = test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    /* the functions are split into groups: count over the whole file */
    CU_ASSERT_PTR_NULL(strstr(text, "if (n < 8)"));
    /* forward's 40 products, backward's 40 + 39 (no outputs: no predict) */
    CU_ASSERT(occurrences(text, "bp_gemm_f(") >= 119);
    free(text);
    free(path);
}

void register_emit(void)
{
    CU_pSuite s = CU_add_suite("emit", NULL, NULL);
    CU_add_test(s, "linear model: batch mean, grad_inputs, predict, descriptor", test_linear_model);
    CU_add_test(s, "C keywords as names, frozen parameters, unused inputs", test_keyword_names_and_frozen);
    CU_add_test(s, "names compile in GNU modes", test_gnu_mode_names);
    CU_add_test(s, "unbatched loss and gradients, no inputs", test_unbatched);
    CU_add_test(s, "every INIT", test_init);
    CU_add_test(s, "float and double models in one program; the header", test_two_precisions);
    CU_add_test(s, "--main output and error exits", test_main_driver);
    CU_add_test(s, "finite results for logits of +-1000", test_extreme_logits);
    CU_add_test(s, "a frozen layer costs backward nothing", test_frozen_backward_does_less);
    CU_add_test(s, "biases added by the gemm, not a pass of their own", test_bias_in_gemm);
    CU_add_test(s, "40 tiny products in a function: all calls", test_deep_tiny_products_stay_calls);
    CU_add_test(s, "derivatives from stored outputs", test_derivatives_from_outputs);
    CU_add_test(s, "exp, log, tanh, sigmoid from bp.h", test_fast_math_calls);
    CU_add_test(s, "one loop for consecutive elementwise steps", test_merged_loops);
    CU_add_test(s, "no merged loop across a product or a reduction", test_loops_not_merged);
}
