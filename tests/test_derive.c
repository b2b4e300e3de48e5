/* test_derive.c — `bpgen --derivatives` on the textbook examples.
 *
 * The expected text is what a person would write by hand, in the .net
 * syntax; every line is pinned exactly. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static void expect_derivatives(const char *name, const char *source, const char *expected)
{
    char *out = NULL, *err = NULL;
    int rc = test_bpgen(name, source, "--derivatives", &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_STRING_EQUAL(out, expected);
    if (strcmp(out, expected))
        fprintf(stderr, "\n[%s] got:\n%s\nexpected:\n%s\nstderr:\n%s\n", name, out, expected,
                err ? err : "");
    free(out);
    free(err);
}

static void test_chain(void)
{
    expect_derivatives("d_chain", "input L\nwrt L\nS = L^2 + 2\nloss P = sqrt(S)\n",
                       "dP/dL = L / sqrt(L^2 + 2)\n");
}

static void test_logistic(void)
{
    /* textbook: dJ/dθ1 = (y - t) y (1 - y) x, with y = σ(θ1 x + θ2) written out */
    expect_derivatives(
        "d_logistic",
        "input x\ninput t\nparam theta1\nparam theta2\nwrt x\n"
        "z = theta1 * x + theta2\ny = sigmoid(z)\nloss J = 0.5 * (y - t)^2\n",
        "dJ/dtheta1 = (1 - sigmoid(theta1 * x + theta2)) * (sigmoid(theta1 * x + theta2) - t) * "
        "sigmoid(theta1 * x + theta2) * x\n"
        "dJ/dtheta2 = (1 - sigmoid(theta1 * x + theta2)) * (sigmoid(theta1 * x + theta2) - t) * "
        "sigmoid(theta1 * x + theta2)\n"
        "dJ/dx = (1 - sigmoid(theta1 * x + theta2)) * (sigmoid(theta1 * x + theta2) - t) * "
        "sigmoid(theta1 * x + theta2) * theta1\n");
}

static void test_polynomial_and_constants(void)
{
    expect_derivatives("d_poly", "input x\nwrt x\nconst c = 3\nloss y = c * x^3 - 2 * x + 1\n",
                       "dy/dx = 9 * x^2 - 2\n");
    expect_derivatives("d_quot", "input x\nparam a\nwrt x\nloss y = a / x\n",
                       "dy/da = 1 / x\ndy/dx = -a / x^2\n");
    expect_derivatives("d_exp_log", "input x\nwrt x\nloss y = log(exp(x) + 1)\n",
                       "dy/dx = exp(x) / (exp(x) + 1)\n");
}

static void test_kinks(void)
{
    expect_derivatives("d_relu", "input x\nwrt x\nloss y = relu(x) + abs(x)\n",
                       "dy/dx = step(x) + sign(x)\n");
}

static void test_tensor_model_names_intermediates(void)
{
    expect_derivatives(
        "d_mlp",
        "input x[4]\ninput y[3]\nparam W1[16, 4]\nparam b1[16]\nparam W2[3, 16]\nparam b2[3]\n"
        "h = tanh(W1 · x + b1)\nz = W2 · h + b2\np = softmax(z)\nloss L = cross_entropy(p, y)\n",
        "dL/dW1 = outer((transpose(W2) · (sum(y) * p - y)) * (1 - h^2), x)\n"
        "dL/db1 = (transpose(W2) · (sum(y) * p - y)) * (1 - h^2)\n"
        "dL/dW2 = outer(sum(y) * p - y, h)\n"
        "dL/db2 = sum(y) * p - y\n");
}

static void test_frozen_parameters_have_no_derivative(void)
{
    expect_derivatives("d_frozen", "input x\nparam frozen a\nparam b\nloss y = a * b * x\n",
                       "dy/db = a * x\n");
}

static void test_shared_terms_are_simplified(void)
{
    expect_derivatives("d_shared1", "param a\nloss L = a * a * a * sin(a) * a\n",
                       "dL/da = cos(a) * a^4 + 4 * sin(a) * a^3\n");
    expect_derivatives("d_shared2", "param a\nparam b\nh = a*b\nloss L = h*h*a\n",
                       "dL/da = 3 * b^2 * a^2\ndL/db = 2 * b * a^3\n");
    expect_derivatives("d_shared3", "param w\nh = w*2\nk = h+1\nloss L = k^2 + h\n",
                       "dL/dw = 2 * (4 * w + 3)\n");
}

/* All-scalar models are written in inputs, parameters and constants only,
 * however long the expression gets. */
static void test_long_scalar_derivatives_name_no_intermediates(void)
{
    char src[1024] = "param a\nv0 = sin(a)\n";
    for (int i = 1; i <= 11; i++)
        snprintf(src + strlen(src), sizeof src - strlen(src), "v%d = sin(v%d) * a\n", i, i - 1);
    strcat(src, "loss L = v11\n");
    char *out = NULL;
    CU_ASSERT_EQUAL(test_bpgen("d_long_scalar", src, "--derivatives", &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(strncmp(out, "dL/da = ", 8), 0);
    CU_ASSERT_PTR_NULL(strstr(out, "v1"));
    CU_ASSERT_PTR_NULL(strstr(out, "v0"));
    CU_ASSERT(strlen(out) > 2000);
    free(out);
}

/* Each layer uses the one before twice, so each written-out gradient
 * would double with every layer (2^40 terms here): past 1 MiB the adjoints
 * used more than once get comment lines of their own, the gradient line
 * uses their names, and the whole takes a few kilobytes. */
static void test_doubling_layers_name_their_adjoints(void)
{
    char src[4096] = "param a\nv0 = sin(a)\n";
    for (int i = 1; i <= 40; i++)
        snprintf(src + strlen(src), sizeof src - strlen(src),
                 "v%d = sin(v%d) * cos(v%d) + a\n", i, i - 1, i - 1);
    strcat(src, "loss L = v40\n");
    char *out = NULL;
    CU_ASSERT_EQUAL(test_bpgen("d_doubling", src, "--derivatives", &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(strlen(out) < 20000);
    CU_ASSERT_EQUAL(strncmp(out, "# written in full, these derivatives would pass 1 MiB", 53), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n# dL/dv39 = cos(v39)^2 - sin(v39)^2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\n# dL/dv1 = dL/dv2 * cos(v1)^2 - dL/dv2 * sin(v1)^2\n"));
    /* one gradient line, the last, and every other line a comment */
    const char *grad = strstr(out, "\ndL/da = ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(grad);
    CU_ASSERT_PTR_NULL(strchr(grad + 1, '\n') ? strchr(strchr(grad + 1, '\n') + 1, '\n') : NULL);
    for (const char *line = out; line < grad; line = strchr(line, '\n') + 1)
        CU_ASSERT_EQUAL(line[0], '#');
    CU_ASSERT_PTR_NOT_NULL(strstr(grad, "dL/dv1 * cos(v0)^2"));
    free(out);
}

/* softmax, log_softmax and logsumexp of one number are 1, 0 and the
 * number itself, so their derivatives are 0, 0 and 1 (not softmax(w)). */
static void test_softmax_of_a_scalar(void)
{
    expect_derivatives("d_lse1", "param w = 0.5\nloss L = logsumexp(w)\n", "dL/dw = 1\n");
    expect_derivatives("d_lse2", "input x\nparam w\nloss L = logsumexp(w * x) + softmax(w)\n",
                       "dL/dw = x\n");
    expect_derivatives("d_lsm", "param w\nloss L = log_softmax(w) + w^2\n", "dL/dw = 2 * w\n");
    /* a vector of one element keeps its softmax */
    expect_derivatives("d_lse3", "param w[1]\nloss L = logsumexp(w)\n", "dL/dw = softmax(w)\n");
}

void register_derive(void)
{
    CU_pSuite s = CU_add_suite("derivatives", NULL, NULL);
    CU_add_test(s, "softmax of a scalar", test_softmax_of_a_scalar);
    CU_add_test(s, "chain rule", test_chain);
    CU_add_test(s, "logistic neuron", test_logistic);
    CU_add_test(s, "polynomials, quotients, constants", test_polynomial_and_constants);
    CU_add_test(s, "relu and abs", test_kinks);
    CU_add_test(s, "tensor model", test_tensor_model_names_intermediates);
    CU_add_test(s, "frozen parameters", test_frozen_parameters_have_no_derivative);
    CU_add_test(s, "shared terms are simplified", test_shared_terms_are_simplified);
    CU_add_test(s, "long scalar derivatives name no intermediates",
                test_long_scalar_derivatives_name_no_intermediates);
    CU_add_test(s, "doubling layers name their adjoints",
                test_doubling_layers_name_their_adjoints);
}
