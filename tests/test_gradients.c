/* test_gradients.c — every operation's generated gradient against finite
 * differences.
 *
 * For each case: bpgen compiles the model in double and in float, the C
 * is compiled with -Werror by the test compiler (and by clang, which must
 * also accept it warning-free), linked with tests/harness/gradcheck.c, and
 * run. The harness prints the worst relative error of bp_gradcheck for
 * batches of 1, 7 and 9; double must stay below 1e-6 and float below 1e-2. */
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

typedef struct {
    const char *name;
    const char *source;
} Case;

static const Case cases[] = {
    {"add_sub", "input x[3]\ninput y[3]\nparam w[3]\nparam s\nwrt x, y\n"
                "loss L = sum((x + w - y) * (x - s + 1)) + s\n"},
    {"mul_div", "input x[3]\ninput y[3]\nparam w[3]\nparam s\nwrt x, y\n"
                "loss L = sum(x * w / (y * y + 1)) + sum(s / (x * x + 2))\n"},
    {"pow", "input x[3]\nparam w[3]\nparam s\nwrt x\n"
            "loss L = sum((x * x + 1) ^ s) + sum(w ^ 2) * 0.5 + sum((x + 2) ^ 3)\n"},
    {"neg", "input x[3]\nparam w[3]\nparam s\nwrt x\nloss L = sum(-x * w) + -s^2\n"},
    /* constant exponents whose derivative generated code takes from the
     * stored power (-1, -0.5, -2, -1.5) and those it does not (0.3, 2.5) */
    {"pow_const", "input x[3]\nparam w[3]\nwrt x\n"
                  "u = x * x + w * w + 1\n"
                  "loss L = sum(w / u) + sum(w * u^-0.5) + sum(w * u^-2) + sum(w * u^-1.5)"
                  " + sum(w * u^0.3) + sum(w * u^2.5)\n"},
    {"matmul_mv", "input x[3]\nparam W[2, 3]\nparam b[2]\nwrt x\n"
                  "loss L = sum(tanh(W · x + b))\n"},
    {"matmul_mm", "input X[3, 2]\nparam A[4, 3]\nwrt X\nloss L = sum(sin(A @ X))\n"},
    {"matmul_vm", "input x[4]\nparam B[4, 3]\nwrt x\nloss L = sum(cos(x · B))\n"},
    {"matmul_vv", "input x[4]\nparam w[4]\nwrt x\nloss L = (x · w)^2\n"},
    {"matmul_batched", "input x[3]\ninput A[2, 3]\nparam w[2]\nwrt x, A\n"
                       "loss L = sum(w * (A · x))\n"},
    {"matmul_params", "input x[2]\nparam A[2, 3]\nparam B[3, 2]\nwrt x\n"
                      "loss L = sum((A · B) · x)\n"},
    {"transpose", "input X[2, 3]\nparam A[2, 4]\nwrt X\n"
                  "loss L = sum(exp(transpose(X) · A) * 0.1)\n"},
    {"outer", "input x[3]\ninput y[2]\nparam W[3, 2]\nwrt x, y\n"
              "loss L = sum(outer(x, y) * W)\n"},
    {"exp", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * exp(x + 0.1 * w))\n"},
    {"log", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * log(x * x + 1 + w * w))\n"},
    {"sqrt", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * sqrt(x * x + 1 + w * w))\n"},
    {"abs", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * abs(x + 0.1 * w))\n"},
    {"sin", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * sin(x + 0.1 * w))\n"},
    {"cos", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * cos(x + 0.1 * w))\n"},
    {"tanh", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * tanh(x + 0.1 * w))\n"},
    {"sigmoid", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * sigmoid(x + 0.1 * w))\n"},
    {"relu", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * relu(x + 0.1 * w))\n"},
    {"softplus", "input x[5]\nparam w[5]\nwrt x\nloss L = sum(w * softplus(x + 0.1 * w))\n"},
    {"step_sign", "input x[5]\nparam w[5]\nwrt x\n"
                  "loss L = sum(step(x) * x * w) + sum(sign(x) * w * x)\n"},
    {"max_min", "input x[4]\ninput y[4]\nparam w[4]\nwrt x, y\n"
                "loss L = sum(max(x, y) * w) + sum(min(x, 0.3) * w) + max(sum(x), 0.1)\n"},
    {"sum_mean", "input x[2, 3]\nparam w[2, 3]\nwrt x\nloss L = sum(x * w) + mean(x * x)\n"},
    {"dot", "input x[4]\nparam w[4]\nwrt x\nloss L = dot(x, w) * dot(x, x)\n"},
    {"logsumexp", "input x[4]\nparam w[4]\nwrt x\nloss L = logsumexp(x * w)\n"},
    {"softmax", "input x[4]\nparam w[4]\nwrt x\nloss L = sum(softmax(x) * w)\n"},
    {"log_softmax", "input x[4]\nparam w[4]\nwrt x\nloss L = sum(log_softmax(x * 2) * w)\n"},
    {"mse", "input x[3]\ninput y[3]\nparam W[3, 3]\nwrt x, y\nloss L = mse(W · x, y)\n"},
    {"cross_entropy_softmax", "input z[4]\ninput y[4]\nparam W[4, 4]\nwrt z, y\n"
                              "p = softmax(W · z)\noutput p\nloss L = cross_entropy(p, y)\n"},
    {"cross_entropy", "input x[3]\ninput y[3]\nparam w[3]\nwrt x\n"
                      "loss L = cross_entropy(sigmoid(w * x), y)\n"},
    {"softmax_cross_entropy", "input z[4]\ninput y[4]\nparam W[4, 4]\nwrt z, y\n"
                              "loss L = softmax_cross_entropy(W · z, y)\n"},
    {"bce", "input x[3]\ninput t[3]\nparam w[3]\nwrt x, t\n"
            "loss L = bce(sigmoid(w * x), t) + bce((x * x + 0.5) / (x * x + 1), t)\n"},
    {"broadcast", "input x[3]\nparam s\nparam v[3]\nwrt x\n"
                  "loss L = sum(s * x + s) + sum(v - s) * s\n"},
    {"shared_intermediate", "input x[3]\nparam W[3, 3]\n"
                            "Wn = W / sum(W * W)\nloss L = sum(Wn · x)\n"},
    {"param_only_loss", "input x[3]\nparam w[3]\nloss L = sum(w * w)\n"},
    {"scalar_chain", "input x\ninput t\nparam th1\nparam th2\nwrt x\n"
                     "z = th1 * x + th2\ny = sigmoid(z)\nloss J = 0.5 * (y - t)^2\n"},
    {"mlp", "input x[4]\ninput y[3]\nparam W1[5, 4] = normal(0, 0.5)\nparam b1[5]\n"
            "param W2[3, 5] = xavier\nparam b2[3]\nwrt x\n"
            "h = tanh(W1 · x + b1)\nz = W2 · h + b2\np = softmax(z)\noutput p\n"
            "loss L = cross_entropy(p, y)\n"},
    /* rank 3 and 4, convolution and pooling (CONTRACT v2 section 1):
     * stride 2, pad 1, non-square kernels and inputs, several channels */
    {"conv2d_stride_pad", "input x[2, 5, 6]\nparam K[3, 2, 3, 2]\nparam b[3]\nwrt x\n"
                          "loss L = sum(tanh(conv2d(x, K, b, stride=2, pad=1)))\n"},
    {"conv2d_plain", "input x[3, 4, 5]\nparam K[2, 3, 2, 3]\nwrt x\n"
                     "y = conv2d(x, K)\nloss L = sum(y * y) * 0.5\n"},
    {"conv2d_stride3", "input x[1, 7, 6]\nparam K[4, 1, 3, 3]\nparam b[4]\nwrt x\n"
                       "loss L = sum(sin(conv2d(x, K, b, pad=2, stride=3)))\n"},
    {"conv2d_chain", "input x[2, 6, 6]\nparam K1[3, 2, 3, 3]\nparam b1[3]\n"
                     "param K2[2, 3, 2, 2]\nwrt x\n"
                     "h = relu(conv2d(x, K1, b1, pad=1))\n"
                     "loss L = sum(exp(conv2d(h, K2, stride=2) * 0.3))\n"},
    {"maxpool2d", "input x[2, 5, 7]\nparam w[2, 2, 3]\nwrt x\n"
                  "loss L = sum(maxpool2d(x * x, 2) * w)\n"},
    {"avgpool2d", "input x[3, 5, 4]\nparam w[3, 1, 1]\nwrt x\n"
                  "loss L = sum(sin(avgpool2d(x, 3)) * w)\n"},
    {"flatten", "input x[2, 3, 2]\nparam W[4, 12]\nwrt x\n"
                "loss L = sum(tanh(W · flatten(x * 2)))\n"},
    {"layernorm", "input x[2, 3, 4]\ninput v[5]\nparam g[2, 3, 4]\nparam w[5]\nwrt x, v\n"
                  "loss L = sum(sin(g * layernorm(x) + 0.2)) + dot(layernorm(v * w), w)\n"},
    {"rank4", "input x[2, 1, 3, 2]\nparam K[2, 1, 3, 2]\nwrt x\n"
              "loss L = sum(softmax(x * K) * K) + logsumexp(x - K) + mean(abs(x))"
              " + dot(x, K) + sum(log_softmax(x) * K)\n"},
    {"cnn", "input x[1, 8, 8]\ninput y[10]\nparam K[4, 1, 3, 3] = he\nparam b[4]\n"
            "param W[10, 64] = xavier\nparam c[10]\nwrt x\n"
            "h = maxpool2d(tanh(conv2d(x, K, b, pad=1)), 2)\n"
            "z = W · flatten(h) + c\nloss L = softmax_cross_entropy(z, y)\n"},
    /* M_forward_backward's one loop (lower.c, lower_forward_backward):
     * after a reduction (its head), over several values it keeps as
     * locals, into two input gradients, and with backward's rest after it */
    {"fb_head", "input x[3]\ninput y\nparam w[3]\nparam c\nwrt y\n"
                "h = dot(w, x)\nloss L = (c * sin(h) - y)^2\n"},
    /* not joined: backward's first value would be written over h, which
     * forward's loop reads */
    {"fb_overlap", "input x[3]\ninput y\nparam w[3]\nparam c\nwrt x, y\n"
                   "h = dot(w, x)\nloss L = (tanh(h + c) - y)^2\n"},
    {"fb_locals", "input x\ninput y\nparam a\nparam b\nwrt x\n"
                  "u = a * exp(x) + b\nv = sqrt(u * u + 1)\nloss L = (v - y)^2 + log(v)\n"},
    {"fb_two_inputs", "input p\ninput q\nwrt p, q\n"
                      "loss L = sqrt(p * p + q * q + 1) * sigmoid(p - q)\n"},
    {"keywords_as_names", "input int[3]\ninput theta[3]\nparam n[3]\nparam ws\nwrt int\n"
                          "i = int * n + theta\nloss L = sum(i * i) * ws\n"},
    /* the names of the generated code's own locals: the small products'
     * loops (k, q, aik, part; W · p is a dot product of 8 in partial
     * sums) and a convolution's shape (cs) */
    {"locals_as_names", "input p[8]\ninput y[3]\ninput im[1, 4, 4]\nparam W[3, 8]\n"
                        "param part[3, 3]\nparam K[2, 1, 3, 3]\nwrt p\nq = tanh(W · p)\n"
                        "aik = part · q\ncs = conv2d(im, K)\n"
                        "loss L = sum((aik - y)^2) + mean(cs * cs)\n"},
};

static int occurrences(const char *text, const char *what)
{
    int k = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        k++;
    return k;
}

/* Worst of the err= values in the harness output, or -1 when absent. */
static double worst_error(const char *out, int *lines)
{
    double worst = -1;
    *lines = 0;
    for (const char *p = out; p && (p = strstr(p, "err=")); p += 4) {
        double e = strtod(p + 4, NULL);
        if (e > worst)
            worst = e;
        (*lines)++;
    }
    return worst;
}

static void run_case(const Case *c, const char *precision, double limit, const char *clang)
{
    char *name = test_format("g_%s_%s", c->name, precision);
    char *out_c = test_format("%s/%s.c", TEST_TMP, name);
    char *args = test_format("-o %s --precision=%s", out_c, precision);
    char *err = NULL;
    int rc = test_bpgen(name, c->source, args, NULL, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n[%s] bpgen failed:\n%s\n", name, err ? err : "");
        goto done;
    }
    char *exe = test_tmp_path(name);
    char *cmd = test_format("%s %s -Werror -Iruntime -DMODEL=%s_model "
                            "-DFORWARD_BACKWARD=%s_forward_backward_any -o %s %s "
                            "tests/harness/gradcheck.c %s -lm",
                            TEST_CC, TEST_CFLAGS, name, name, exe, out_c, TEST_LIBBP);
    char *cc_err = NULL;
    rc = test_run(cmd, NULL, &cc_err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n[%s] does not compile cleanly:\n%s\n", name, cc_err ? cc_err : "");
        goto done;
    }
    if (clang) {
        char *ccmd = test_format("%s -std=c99 -Wall -Wextra -pedantic -Werror -Iruntime "
                                 "-c -o %s.o %s", clang, exe, out_c);
        char *clang_err = NULL;
        int crc = test_run(ccmd, NULL, &clang_err);
        CU_ASSERT_EQUAL(crc, 0);
        if (crc != 0)
            fprintf(stderr, "\n[%s] clang:\n%s\n", name, clang_err ? clang_err : "");
        free(clang_err);
        free(ccmd);
    }
    /* float: a step of 1e-3 keeps the finite differences off the kinks of
     * abs, relu and max for these inputs, and its rounding noise is far
     * below the 1e-2 limit */
    char *run = test_format("%s %s", exe, strcmp(precision, "float") ? "0" : "1e-3");
    char *out = NULL;
    rc = test_run(run, &out, NULL);
    free(run);
    CU_ASSERT_EQUAL(rc, 0);
    int lines = 0;
    double worst = worst_error(out, &lines);
    CU_ASSERT_EQUAL(lines, 3);
    CU_ASSERT(worst >= 0 && worst < limit);
    /* M_forward_backward gave forward's and backward's bits at each n */
    int same = 0;
    for (const char *p = out; p && (p = strstr(p, " forward_backward same\n")); p++)
        same++;
    CU_ASSERT_EQUAL(same, 3);
    /* batch 1 (copies of the functions with n = 1) agreed with a batch of
     * that sample twice */
    bool agrees = out && strstr(out, "n=1 one_sample agrees\n");
    CU_ASSERT(agrees);
    if (!(worst >= 0 && worst < limit) || rc != 0 || same != 3 || !agrees)
        fprintf(stderr, "\n[%s] gradient check failed (limit %g):\n%s\n", name, limit,
                out ? out : "");
    free(out);
    free(cc_err);
    free(cmd);
    free(exe);
done:
    free(err);
    free(args);
    free(out_c);
    free(name);
}

/* The float build against the double build at the same point: the loss
 * and every gradient within `limit`, relative (tests/harness/float_vs_double.c). */
static void run_float_vs_double(const Case *c, double limit)
{
    char *fname = test_format("fd_%s_f", c->name), *dname = test_format("fd_%s_d", c->name);
    char *fc = test_format("%s/%s.c", TEST_TMP, fname), *dc = test_format("%s/%s.c", TEST_TMP, dname);
    char *fargs = test_format("-o %s --precision=float", fc);
    char *dargs = test_format("-o %s --precision=double", dc);
    char *exe = test_tmp_path(fname);
    char *cmd = test_format("%s %s -Werror -Iruntime -DMODEL_F=%s_model -DMODEL_D=%s_model -o %s "
                            "%s %s tests/harness/float_vs_double.c %s -lm",
                            TEST_CC, TEST_CFLAGS, fname, dname, exe, fc, dc, TEST_LIBBP);
    char *out = NULL, *err = NULL;
    int rc = test_bpgen(fname, c->source, fargs, NULL, NULL);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == 0) {
        rc = test_bpgen(dname, c->source, dargs, NULL, NULL);
        CU_ASSERT_EQUAL(rc, 0);
    }
    if (rc == 0) {
        rc = test_run(cmd, NULL, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            fprintf(stderr, "\n[%s] does not compile cleanly:\n%s\n", fname, err ? err : "");
    }
    if (rc == 0) {
        rc = test_run(exe, &out, NULL);
        CU_ASSERT_EQUAL(rc, 0);
        int lines = 0;
        double worst = worst_error(out, &lines);
        CU_ASSERT_EQUAL(lines, 3);
        CU_ASSERT(worst >= 0 && worst < limit);
        if (rc != 0 || !(worst >= 0 && worst < limit))
            fprintf(stderr, "\n[%s] float against double failed (limit %g):\n%s\n", fname, limit,
                    out ? out : "");
    }
    free(out);
    free(err);
    free(cmd);
    free(exe);
    free(fargs);
    free(dargs);
    free(fc);
    free(dc);
    free(fname);
    free(dname);
}

static void test_every_operation(void)
{
    char *clang = test_clang_path();
    CU_ASSERT_PTR_NOT_NULL(clang); /* scripts/install-deps.sh installs it */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], "double", 1e-6, clang);
        run_case(&cases[i], "float", 1e-2, clang);
        run_float_vs_double(&cases[i], 1e-4);
    }
    free(clang);
}

/* A model long enough that lowering splits its functions into groups
 * (more than GROUP_STEPS steps): the static function of each group reads
 * and writes what the others left in the workspace, so the gradients
 * check the cut. 24 layers of 3 units, alternating tanh and sigmoid, the
 * input's gradient too. */
static void test_split_model(void)
{
    char *source = test_format("%s", "input x[3]\ninput y[3]\nwrt x\n");
    const char *prev = "x";
    char *names[25] = {NULL};
    for (int i = 1; i <= 24; i++) {
        names[i] = test_format("h%d", i);
        char *more = test_format("%sparam W%d[3, 3]\nparam b%d[3]\n%s = %s(W%d · %s + b%d)\n",
                                 source, i, i, names[i], i % 2 ? "tanh" : "sigmoid", i, prev, i);
        free(source);
        source = more;
        prev = names[i];
    }
    char *whole = test_format("%soutput h24\nloss L = mse(h24, y)\n", source);
    Case c = {"split", whole};
    char *clang = test_clang_path();
    run_case(&c, "double", 1e-6, clang);
    run_case(&c, "float", 1e-2, clang);
    /* it was split: forward's first group is named after its first layer */
    char *path = test_format("%s/g_split_double.c", TEST_TMP);
    char *text = test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(text, "static g_split_double_NOINLINE void g_split_double_forward_h1("));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "    g_split_double_forward_h1(theta, inputs, n, ws);\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "g_split_double_backward_"));
    free(text);
    free(path);
    free(clang);
    for (int i = 1; i <= 24; i++)
        free(names[i]);
    free(whole);
    free(source);

    /* scalar layers (as the 20 000-statement model of test_cli.c): split,
     * M_forward_backward's loop is the last layer's forward and the last
     * layers' backward; forward's groups run before it and backward's
     * after it, each group called, none repeated (backward's first group
     * is cut after the joined steps) */
    source = test_format("%s", "input x\ninput t\nwrt x\n");
    for (int i = 1; i <= 40; i++) {
        char *more = test_format("%sparam w%d\nparam b%d\nh%d = tanh(w%d * %s + b%d)\n", source,
                                 i, i, i, i, names[0] ? names[0] : "x", i);
        free(source);
        source = more;
        free(names[0]);
        names[0] = test_format("h%d", i);
    }
    whole = test_format("%sloss L = (h40 - t)^2\n", source);
    Case layers = {"split_layers", whole};
    run_case(&layers, "double", 1e-6, NULL);
    path = test_format("%s/g_split_layers_double.c", TEST_TMP);
    text = test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    const char *fb = strstr(text, "double g_split_layers_double_forward_backward(const");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fb);
    CU_ASSERT_PTR_NOT_NULL(strstr(fb, "    g_split_layers_double_forward_backward_head("));
    CU_ASSERT_PTR_NOT_NULL(strstr(fb, "    g_split_layers_double_forward_backward_tail("));
    CU_ASSERT_EQUAL(occurrences(text, "  dL/dw1 = "), 1);
    CU_ASSERT_EQUAL(occurrences(text, "  dL/dw20 = "), 1);
    /* the last layer's gradients: in backward and in the one loop */
    CU_ASSERT_EQUAL(occurrences(text, "  dL/dw40 = "), 2);
    free(text);
    free(path);
    free(whole);
    free(source);
    free(names[0]);
}

/* Every example model, read from examples/: double against finite
 * differences, float against double (finite differences in float step
 * across the kinks of relu and max pooling in a whole network). */
static void test_every_example(void)
{
    static const char *const examples[] = {"chain",  "linreg", "logistic", "height",
                                           "xor",    "iris",   "digits",   "finetune",
                                           "digits_cnn"};
    char *clang = test_clang_path();
    for (size_t i = 0; i < sizeof examples / sizeof examples[0]; i++) {
        char *path = test_format("examples/%s/%s.net", examples[i], examples[i]);
        char *source = test_read_file(path, NULL);
        CU_ASSERT_PTR_NOT_NULL(source);
        if (source) {
            char *name = test_format("example_%s", examples[i]);
            Case c = {name, source};
            run_case(&c, "double", 1e-6, clang);
            run_float_vs_double(&c, 1e-4);
            free(name);
        }
        free(source);
        free(path);
    }
    free(clang);
}

/* ---------------------------------------------------------------- random models */

/* A small generator of random, well-shaped models: sums, products,
 * quotients, powers, every elementwise function, reductions, matrix
 * products, softmax and log_softmax, and small convolutional networks
 * (conv2d with and without bias, stride 1 and 2, pad 1, max and average
 * pooling, layernorm and flatten over a rank-3 input) nested at random. Each model is
 * differentiated with respect to parameters and inputs alike and checked
 * like the hand-written cases; a fixed seed keeps the run reproducible. */
typedef struct {
    unsigned long long state;
    char *text;
    size_t len, cap;
} Gen;

static unsigned pick(Gen *g, unsigned n)
{
    g->state = g->state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(g->state >> 33) % n;
}

static void emit(Gen *g, const char *s)
{
    size_t n = strlen(s);
    if (g->len + n + 1 > g->cap) {
        g->cap = (g->len + n + 1) * 2;
        g->text = realloc(g->text, g->cap);
    }
    memcpy(g->text + g->len, s, n + 1);
    g->len += n;
}

static void gen_expr(Gen *g, int shape, int depth);

/* An image [2, 4, 4]: the input im, functions of it, layernorm. */
static void gen_image(Gen *g, int depth)
{
    unsigned r = depth <= 0 ? 0 : pick(g, 5);
    if (r == 0) {
        emit(g, "im");
    } else if (r == 1) {
        emit(g, pick(g, 2) ? "tanh(" : "sigmoid(");
        gen_image(g, depth - 1);
        emit(g, ")");
    } else if (r == 2) {
        emit(g, "layernorm(");
        gen_image(g, depth - 1);
        emit(g, ")");
    } else if (r == 3) {
        emit(g, "(");
        gen_image(g, depth - 1);
        emit(g, " * ");
        gen_expr(g, 0, depth - 1);
        emit(g, ")");
    } else {
        emit(g, "(");
        gen_image(g, depth - 1);
        emit(g, pick(g, 2) ? " + im * G)" : " - G)");
    }
}

/* shape: 0 scalar, 3 a [3] vector, 4 a [4] vector */
static void gen_expr(Gen *g, int shape, int depth)
{
    static const char *const scalars[] = {"s", "t", "c", "0.7", "sum(x)", "u"};
    static const char *const vec3[] = {"x", "w", "v", "y"};
    static const char *const vec4[] = {"q", "r"};
    static const char *const funcs[] = {"exp", "sin", "cos", "tanh", "sigmoid",
                                        "relu", "softplus", "abs"};
    if (depth <= 0 || pick(g, 4) == 0 || shape == 4) {
        emit(g, shape == 0 ? scalars[pick(g, 6)] : shape == 3 ? vec3[pick(g, 4)] : vec4[pick(g, 2)]);
        return;
    }
    unsigned r = pick(g, 20);
    if (r < 6) {                       /* a op b, one side maybe a scalar */
        static const char *const ops[] = {" + ", " - ", " * "};
        bool scalar_right = shape != 0 && pick(g, 3) == 0;
        emit(g, "(");
        gen_expr(g, shape, depth - 1);
        emit(g, ops[pick(g, 3)]);
        gen_expr(g, scalar_right ? 0 : shape, depth - 1);
        emit(g, ")");
    } else if (r < 8) {                /* a quotient that stays away from 0 */
        emit(g, "(");
        gen_expr(g, shape, depth - 1);
        emit(g, " / ((");              /* parenthesised: ^ groups to the right */
        gen_expr(g, shape, depth - 1);
        emit(g, ") ^ 2 + 1.5))");
    } else if (r < 12) {
        emit(g, funcs[pick(g, 8)]);
        emit(g, "(");
        gen_expr(g, shape, depth - 1);
        emit(g, ")");
    } else if (r < 13) {
        emit(g, pick(g, 2) ? "log((" : "sqrt((");
        gen_expr(g, shape, depth - 1);
        emit(g, ") ^ 2 + 0.5)");
    } else if (r < 14) {
        emit(g, pick(g, 2) ? "max(" : "min(");
        gen_expr(g, shape, depth - 1);
        emit(g, ", ");
        gen_expr(g, shape, depth - 1);
        emit(g, ")");
    } else if (r < 15) {
        emit(g, "(");
        gen_expr(g, shape, depth - 1);
        emit(g, pick(g, 2) ? ") ^ 2" : ") ^ 3");
    } else if (shape == 0) {           /* reductions to a scalar */
        static const char *const red[] = {"sum(", "mean(", "logsumexp("};
        unsigned k = pick(g, 5);
        if (k < 3) {
            emit(g, red[k]);
            gen_expr(g, 3, depth - 1);
            emit(g, ")");
        } else {
            emit(g, k == 3 ? "dot(" : "(");
            gen_expr(g, 3, depth - 1);
            emit(g, k == 3 ? ", " : " · ");
            gen_expr(g, 3, depth - 1);
            emit(g, ")");
        }
    } else if (pick(g, 3) == 0) {      /* a small CNN: [2,4,4] -> [3,s,s] -> [3,1,1] -> [3] */
        static const char *const conv[] = {"conv2d(", "conv2d("};
        static const char *const tail[] = {", Kr, br, pad=1)", ", Kr, stride=2, pad=1)"};
        unsigned stride2 = pick(g, 2);
        emit(g, "flatten(");
        emit(g, pick(g, 2) ? "maxpool2d(" : "avgpool2d(");
        emit(g, pick(g, 2) ? "tanh(" : "(");
        emit(g, conv[stride2]);
        gen_image(g, depth - 1);
        emit(g, tail[stride2]);
        emit(g, stride2 ? "), 2))" : "), 4))");
    } else {                           /* vector-valued structure */
        static const char *const open[] = {"(M · ", "softmax(", "log_softmax(", "("};
        static const char *const close[] = {")", ")", ")", " · transpose(M))"};
        unsigned k = pick(g, 4);
        emit(g, open[k]);
        gen_expr(g, k == 0 || k == 3 ? 4 : 3, depth - 1);
        emit(g, close[k]);
    }
}

/* The names gen_expr and gen_image use. */
static const char *const random_names =
    "input x[3]\ninput y[3]\ninput s\ninput q[4]\nparam r[4]\nparam w[3]\n"
    "param v[3]\nparam M[3, 4]\nparam t\nparam u\nconst c = -1.25\n"
    "input im[2, 4, 4]\nparam G[2, 4, 4]\nparam Kr[3, 2, 3, 3]\nparam br[3]\n";

static void test_random_models(void)
{
    Gen g = {2026, NULL, 0, 0};
    char *clang = NULL; /* the hand-written cases already check clang */
    for (int i = 0; i < 25; i++) {
        g.len = 0;
        emit(&g, random_names);
        emit(&g, "wrt x, y, s, q, im\nh = ");
        gen_expr(&g, 3, 3);
        emit(&g, "\nloss L = ");
        gen_expr(&g, 0, 5);
        emit(&g, " + sum(h * w)\n");
        char *name = test_format("random_%d", i);
        Case c = {name, g.text};
        run_case(&c, "double", 1e-6, clang);
        free(name);
    }
    free(g.text);
}

/* Random models of per-sample scalars (the generator's scalar expressions
 * over the inputs s and p and the parameters t and u, with reductions of
 * vectors and images among them): most end in a loop whose loss M_forward_backward shares
 * with backward's first steps (lower.c, lower_forward_backward), and the
 * harness checks each bit for bit against M_forward + M_backward besides
 * finite differences. At least half of them must share the loop, or the
 * test would not be testing it. */
static void test_random_scalar_models(void)
{
    Gen g = {77, NULL, 0, 0};
    enum { MODELS = 30 };
    int joined = 0;
    for (int i = 0; i < MODELS; i++) {
        g.len = 0;
        emit(&g, random_names);
        emit(&g, "input p\nwrt s, p, x\na = ");
        gen_expr(&g, 0, 3);
        emit(&g, " + p * t\nb = ");
        gen_expr(&g, 0, 3);
        emit(&g, " * a\nloss L = ");
        gen_expr(&g, 0, 3);
        emit(&g, " + b * b + a * u\n");
        char *name = test_format("rscalar_%d", i);
        Case c = {name, g.text};
        run_case(&c, "double", 1e-6, NULL);
        char *path = test_format("%s/g_%s_double.c", TEST_TMP, name);
        char *text = test_read_file(path, NULL);
        if (text && strstr(text, "from forward's values while they are at hand"))
            joined++;
        free(text);
        free(path);
        free(name);
    }
    CU_ASSERT(joined >= MODELS / 2);
    if (joined < MODELS / 2)
        fprintf(stderr, "\n%d of %d random scalar models share a loop\n", joined, MODELS);
    free(g.text);
}

/* maxpool2d passes each window's gradient to its first maximal element in
 * row-major order (CONTRACT v2): exact ties, checked through --main in
 * both precisions. Two samples, windows 2x2 over x[1, 2, 4]:
 *   sample 1: [1 1 3 3; 1 1 3 3]  every window a four-way tie
 *   sample 2: [0 5 5 0; 5 0 0 5]  two-way ties, the first not at (0, 0)
 * With w = (1, 2) the loss is sum(maxpool2d(x, 2) * w) per sample, so the
 * gradient of the batch mean (n = 2) is w/2 at each window's first
 * maximum and 0 elsewhere. */
static void test_maxpool_ties(void)
{
    static const char *const precisions[] = {"double", "float"};
    const char *source = "input x[1, 2, 4]\nparam w[1, 1, 2]\nwrt x\n"
                         "loss L = sum(maxpool2d(x, 2) * w)\n";
    for (int k = 0; k < 2; k++) {
        char *name = test_format("ties_%s", precisions[k]);
        char *out_c = test_format("%s/%s.c", TEST_TMP, name);
        char *args = test_format("-o %s --main --precision=%s", out_c, precisions[k]);
        char *err = NULL, *out = NULL;
        CU_ASSERT_EQUAL_FATAL(test_bpgen(name, source, args, NULL, &err), 0);
        char *exe = test_tmp_path(name);
        char *cmd = test_format("%s %s -Werror -Iruntime -o %s %s %s -lm", TEST_CC, TEST_CFLAGS,
                                exe, out_c, TEST_LIBBP);
        CU_ASSERT_EQUAL(test_run(cmd, NULL, NULL), 0);
        char *run = test_format("echo '1 2  2  1 1 3 3 1 1 3 3  0 5 5 0 5 0 0 5' | %s", exe);
        CU_ASSERT_EQUAL(test_run(run, &out, NULL), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "loss 11\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "grad w 3 4\n"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "",
                                      "grad x 0.5 0 1 0 0 0 0 0 0 0.5 1 0 0 0 0 0\n"));
        if (!out || !strstr(out, "grad x 0.5 0 1 0 0 0 0 0 0 0.5 1 0 0 0 0 0\n"))
            fprintf(stderr, "\n[%s] got:\n%s\n", name, out ? out : "");
        free(run);
        free(cmd);
        free(exe);
        free(out);
        free(err);
        free(args);
        free(out_c);
        free(name);
    }
}

void register_gradients(void)
{
    CU_pSuite s = CU_add_suite("gradients", NULL, NULL);
    CU_add_test(s, "every operation against finite differences", test_every_operation);
    CU_add_test(s, "a model split into groups", test_split_model);
    CU_add_test(s, "every example model against finite differences", test_every_example);
    CU_add_test(s, "random models against finite differences", test_random_models);
    CU_add_test(s, "random scalar models: forward_backward's one loop", test_random_scalar_models);
    CU_add_test(s, "maxpool2d ties go to the first maximum", test_maxpool_ties);
}
