/* test_dot.c — `bpgen --dot` and `--dot=backward`.
 *
 * For every example and a model using every operation: the output is a
 * digraph with a node for each input, parameter and named value (labelled
 * with its name), the loss marked, and with =backward an adjoint node
 * `dL/dX` for every block of --explain; Graphviz's `dot -Tsvg` renders it
 * with no message at all (graphviz is installed by scripts/install-deps.sh,
 * so the check never skips). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* Renders dot text with Graphviz; returns whether it rendered silently. */
static int renders(const char *name, const char *dot_text)
{
    char *path = test_format("%s/%s.dot", TEST_TMP, name);
    CU_ASSERT_EQUAL(test_write_file(path, dot_text), 0);
    char *cmd = test_format("dot -Tsvg '%s' -o '%s.svg'", path, path);
    char *err = NULL;
    int rc = test_run(cmd, NULL, &err);
    int ok = rc == 0 && err && err[0] == '\0';
    if (!ok)
        fprintf(stderr, "\n[%s] dot -Tsvg: status %d\n%s\n", name, rc, err ? err : "");
    free(err);
    free(cmd);
    free(path);
    return ok;
}

static void check_model(const char *name, const char *source, const char *const *names,
                        const char *loss, const char *const *adjoints)
{
    char *out = NULL, *back = NULL;
    CU_ASSERT_EQUAL(test_bpgen(name, source, "--dot", &out, NULL), 0);
    CU_ASSERT_EQUAL(test_bpgen(name, source, "--dot=backward", &back, NULL), 0);
    CU_ASSERT_FATAL(out && back);
    CU_ASSERT(!strncmp(out, "digraph ", 8) && !strncmp(back, "digraph ", 8));
    for (int i = 0; names[i]; i++) {
        char *label = test_format("label=\"%s", names[i]);
        CU_ASSERT(strstr(out, label) != NULL);
        if (!strstr(out, label))
            fprintf(stderr, "\n[%s] no node labelled %s\n", name, names[i]);
        free(label);
    }
    char *marked = test_format("label=\"loss %s", loss);
    CU_ASSERT(strstr(out, marked) && strstr(out, "peripheries=2"));
    free(marked);
    CU_ASSERT(strstr(out, "->") != NULL);
    CU_ASSERT(strstr(out, "d") && !strstr(out, "fillcolor=\"#fcc2d7\""));   /* no adjoints */
    for (int i = 0; adjoints[i]; i++) {
        char *label = test_format("label=\"d%s/d%s", loss, adjoints[i]);
        CU_ASSERT(strstr(back, label) != NULL);
        if (!strstr(back, label))
            fprintf(stderr, "\n[%s] no adjoint node d%s/d%s\n", name, loss, adjoints[i]);
        free(label);
    }
    /* parameters, inputs, constants, values: four different looks */
    CU_ASSERT(count(out, "fillcolor=\"#cfe2ff\"") >= 1);   /* inputs */
    CU_ASSERT(count(out, "fillcolor=\"#ffd8a8\"") >= 1);   /* parameters */
    char *n1 = test_format("%s_f", name), *n2 = test_format("%s_b", name);
    CU_ASSERT(renders(n1, out));
    CU_ASSERT(renders(n2, back));
    free(n1);
    free(n2);
    free(out);
    free(back);
}

static void test_examples(void)
{
    static const char *const chain_names[] = {"L", "S", NULL}, *chain_adj[] = {"P", "S", "L", NULL};
    char *src = test_read_file("examples/chain/chain.net", NULL);
    /* chain has no parameter: give it one for the colour check */
    char *with_param = test_format("%sparam k\nloss Q = k * P\n", src);
    char *p = strstr(with_param, "loss P");
    memcpy(p, "     P", 6);
    static const char *const chain_adj2[] = {"Q", "P", "S", "L", "k", NULL};
    check_model("dot_chain", with_param, chain_names, "Q", chain_adj2);
    (void)chain_adj;
    free(with_param);
    free(src);

    static const char *const iris_names[] = {"x [4]", "y [3]", "W1 [16, 4]", "b1 [16]",
                                             "W2 [3, 16]", "b2 [3]", "h [16]", "z [3]",
                                             "p [3]", NULL};
    static const char *const iris_adj[] = {"L", "z", "h", "W1", "b1", "W2", "b2", NULL};
    src = test_read_file("examples/iris/iris.net", NULL);
    check_model("dot_iris", src, iris_names, "L", iris_adj);
    free(src);

    static const char *const height_names[] = {"weight", "shoulder", "height", "W1", "W6",
                                               "h1", "h2", "yhat", NULL};
    static const char *const height_adj[] = {"E", "yhat", "h1", "h2", "W1", "b3", NULL};
    src = test_read_file("examples/height/height.net", NULL);
    check_model("dot_height", src, height_names, "E", height_adj);
    free(src);
}

static void test_every_operation(void)
{
    static const char *const names[] = {"x [3]", "W [2, 3]", "s", "h [2]", "k [3]", "m [2, 3]", NULL};
    static const char *const adj[] = {"L", "k", "h", "W", "s", "x", NULL};
    check_model("dot_ops",
                "input x[3]\ninput y[3]\nparam W[2, 3]\nparam s\nwrt x\n"
                "h = tanh(W · x) - sqrt(sum(x^2) + 1)\nk = transpose(W) · h + softmax(x) / s\n"
                "m = outer(h, x) * W\n"
                "loss L = sum(k * y) + mean(m) + logsumexp(log_softmax(k)) + max(s, 0) + "
                "abs(s) + relu(s) * exp(s) + sigmoid(s) - cos(s) + sin(s)\n",
                names, "L", adj);
}

static void test_kernels(void)
{
    static const char *const names[] = {"x [1, 6, 6]", "K [2, 1, 3, 3]", "c [2, 6, 6]", "f [18]",
                                        "conv2d", "maxpool2d", "avgpool2d", "reshape", NULL};
    static const char *const adj[] = {"L", "f", "c", "K", "b", NULL};
    check_model("dot_conv",
                "input x[1, 6, 6]\ninput y[2]\nparam K[2, 1, 3, 3]\nparam b[2]\nparam W[2, 18]\n"
                "c = relu(conv2d(x, K, b, stride=1, pad=1))\np = maxpool2d(c, 2)\n"
                "q = avgpool2d(p, 1)\nf = layernorm(flatten(q))\nz = W · f\n"
                "loss L = softmax_cross_entropy(z, y)\n",
                names, "L", adj);
}

static void test_usage(void)
{
    char *err = NULL;
    int rc = test_bpgen("u_dot", "input x\nwrt x\nloss y = x^2\n", "--dot=forward", NULL, &err);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(err && strstr(err, "unknown graph '--dot=forward'"));
    free(err);
}

void register_dot(void)
{
    CU_pSuite s = CU_add_suite("dot", NULL, NULL);
    CU_add_test(s, "examples: nodes, loss, adjoints, renders", test_examples);
    CU_add_test(s, "every operation renders", test_every_operation);
    CU_add_test(s, "convolution and pooling render", test_kernels);
    CU_add_test(s, "usage", test_usage);
}
