/* test_graph.c — the graph, differentiation and simplification passes.
 *
 * Models are parsed and checked from source text, then the passes run
 * in-process so the tests can look at nodes directly: hash-consing,
 * constant folding, identities, like-term collection, the stable
 * cross-entropy rewrite, and where gradients flow. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpgen.h"

static Arena *arena;

static Graph *build(const char *src, bool batched)
{
    if (arena)
        arena_free(arena);
    arena = arena_new();
    Diag *d = diag_new(arena, "t.net", src, strlen(src));
    Program *p = parse_program(arena, d, "t.net", src, strlen(src));
    Model *m = check_program(arena, d, p);
    if (!m || diag_count(d)) {
        diag_flush(d, stderr);
        return NULL;
    }
    return graph_build(arena, m, batched);
}

/* The value named `name` in g. */
static Node *value(Graph *g, const char *name)
{
    for (int i = 0; i < g->model->nvalues; i++)
        if (!strcmp(g->model->values[i]->name, name))
            return g->value_nodes[i];
    return NULL;
}

static char *text(const Node *n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    print_expr(f, n, true);
    fclose(f);
    return buf;
}

static void assert_text(const Node *n, const char *expected)
{
    char *t = text(n);
    CU_ASSERT_STRING_EQUAL(t, expected);
    if (strcmp(t, expected))
        fprintf(stderr, "\n  got '%s', expected '%s'\n", t, expected);
    free(t);
}

/* Whether any node reachable from root has the op. */
static bool reaches(const Graph *g, const Node *root, Op op)
{
    bool *seen = calloc((size_t)g->nnodes, 1);
    bool found = false;
    seen[root->id] = true;
    for (int i = root->id; i >= 0; i--) {
        if (!seen[i])
            continue;
        const Node *n = g->nodes[i];
        if (n->op == op)
            found = true;
        for (int k = 0; k < n->nin; k++)
            seen[n->in[k]->id] = true;
    }
    free(seen);
    return found;
}

static void test_equal_subexpressions_are_one_node(void)
{
    Graph *g = build("input x\ninput y\na = x * y + 1\nb = y * x + 1\nloss L = a - b\n", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_PTR_EQUAL(value(g, "a"), value(g, "b"));
    diff_graph(g);
    simp_graph(g);
    CU_ASSERT_TRUE(node_is_const(g->loss, 0));
}

static void test_identities(void)
{
    Graph *g = build("input x\na = x * 1\nb = x + 0\nc = 0 * x\nd = x ^ 1\ne = x / x\n"
                     "f = x - 0\nloss L = a + b + c + d + e + f\n", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    Node *x = g->input_nodes[0];
    CU_ASSERT_PTR_EQUAL(value(g, "a"), x);
    CU_ASSERT_PTR_EQUAL(value(g, "b"), x);
    CU_ASSERT_TRUE(node_is_const(value(g, "c"), 0));
    CU_ASSERT_PTR_EQUAL(value(g, "d"), x);
    CU_ASSERT_PTR_EQUAL(value(g, "f"), x);
    /* x / x is not 1 where x = 0, so it stays */
    CU_ASSERT_FALSE(value(g, "e")->op == OP_CONST);
}

static void test_constant_folding_is_conservative(void)
{
    Graph *g = build("const c = 2\ninput x\na = c * 3 + 1\nb = log(-1)\nd = 0 * -1\n"
                     "e = 1 / 0\nf = sqrt(16) + exp(0)\nloss L = a + b + d + e + f + x\n", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_TRUE(node_is_const(value(g, "a"), 7));
    CU_ASSERT_EQUAL(value(g, "b")->op, OP_LOG);            /* NaN is not folded */
    CU_ASSERT_TRUE(node_is_const(value(g, "d"), 0));
    CU_ASSERT_FALSE(signbit(value(g, "d")->value));        /* nor is -0 */
    CU_ASSERT_NOT_EQUAL(value(g, "e")->op, OP_CONST);      /* nor infinity */
    CU_ASSERT_TRUE(node_is_const(value(g, "f"), 5));
}

static void test_like_terms_and_constant_factors(void)
{
    Graph *g = build("input x\ninput y\na = x + x + 3 * x\nb = 2 * (0.5 * y)\n"
                     "c = x * x * x\nd = 2 + x - 2\nloss L = a + b + c + d\n", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    simp_graph(g);
    /* the values are rebuilt by simp_graph */
    assert_text(value(g, "a"), "5 * x");
    assert_text(value(g, "b"), "y");
    assert_text(value(g, "c"), "x^3");
    assert_text(value(g, "d"), "x");
}

static void test_powers_fold_only_where_exact(void)
{
    Graph *g = build("input x\ninput y\na = sqrt(x^2)\nb = sqrt(x)^2\nc = (x * y)^2 / y\n"
                     "d = sqrt(x^2 * y^2)\nloss L = a + b + c + d\n", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    simp_graph(g);
    assert_text(value(g, "a"), "sqrt(x^2)");   /* |x|, not x */
    assert_text(value(g, "b"), "x");           /* x >= 0 wherever sqrt(x) is defined */
    assert_text(value(g, "c"), "y^2 * x^2 / y"); /* y / y is not 1 at 0 */
    assert_text(value(g, "d"), "sqrt(y^2 * x^2)");
}

static void test_chain_rule_textbook(void)
{
    Graph *g = build("input L\nwrt L\nS = L^2 + 2\nloss P = sqrt(S)\n", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    simp_graph(g);
    CU_ASSERT_TRUE(graph_check(g));
    assert_text(g->grad_inputs[0], "L / sqrt(L^2 + 2)");
}

static void test_cross_entropy_of_softmax_is_stable(void)
{
    Graph *g = build("input z[3]\ninput y[3]\nwrt z\np = softmax(z)\n"
                     "loss L = cross_entropy(p, y)\n", true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    simp_graph(g);
    CU_ASSERT_TRUE(reaches(g, g->loss, OP_LOG_SOFTMAX));
    CU_ASSERT_FALSE(reaches(g, g->loss, OP_LOG));
    CU_ASSERT_FALSE(reaches(g, g->grad_inputs[0], OP_LOG));
    /* softmax and cross-entropy combine: dL/dz = softmax(z) * sum(y) - y,
     * which is p - y for a one-hot y; generated code takes softmax(z) as
     * exp(log_softmax(z)), from what forward computed */
    assert_text(g->grad_inputs[0], "sum(y) * exp(log_softmax(z)) - y");
}

static void test_gradients_only_where_wanted(void)
{
    Graph *g = build("input x[3]\ninput y[2]\nparam frozen A[2, 3]\nparam b[2]\n"
                     "loss L = sum((A · x + b - y)^2)\n", true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    simp_graph(g);
    CU_ASSERT_PTR_NULL(g->grad_params[0]);    /* frozen */
    CU_ASSERT_PTR_NOT_NULL(g->grad_params[1]);
    CU_ASSERT_PTR_NULL(g->grad_inputs[0]);    /* not in wrt */
    CU_ASSERT_PTR_NULL(g->grad_inputs[1]);
    /* nothing computes a gradient for A: no OUTER anywhere */
    CU_ASSERT_FALSE(reaches(g, g->grad_params[1], OP_OUTER));
    CU_ASSERT_FALSE(reaches(g, g->grad_params[1], OP_TRANSPOSE));
}

static void test_weight_gradient_is_batch_mean_of_outer(void)
{
    Graph *g = build("input x[3]\ninput y[2]\nparam W[2, 3]\nwrt x\n"
                     "loss L = mse(W · x, y)\n", true);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    simp_graph(g);
    Node *dW = g->grad_params[0];
    CU_ASSERT_FALSE(dW->batched);
    CU_ASSERT_TRUE(reaches(g, dW, OP_BATCH_MEAN));
    CU_ASSERT_TRUE(reaches(g, dW, OP_OUTER));
    Node *dx = g->grad_inputs[0];
    CU_ASSERT_TRUE(dx->batched);
    CU_ASSERT_FALSE(reaches(g, dx, OP_BATCH_MEAN));
    CU_ASSERT_TRUE(reaches(g, dx, OP_TRANSPOSE));
}

static void test_kinks_use_step_and_sign(void)
{
    Graph *g = build("input a\ninput b\nwrt a, b\nloss L = relu(a) + abs(b) + max(a, b)\n", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    simp_graph(g);
    assert_text(g->grad_inputs[0], "step(a) - step(b - a) + 1");
    assert_text(g->grad_inputs[1], "sign(b) + step(b - a)");
}

static void test_unused_gradient_is_zero(void)
{
    Graph *g = build("input x\nparam w\nparam unused\nloss L = w * x\n", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    simp_graph(g);
    assert_text(g->grad_params[0], "x");
    CU_ASSERT_TRUE(node_is_const(g->grad_params[1], 0));
}

/* A derivative with 300 terms prints all 300 (the printer once dropped
 * terms past a fixed limit). */
static void test_long_sums_print_whole(void)
{
    char src[8192] = "input x\nwrt x\nloss L = x";
    for (int i = 2; i <= 300; i++)
        snprintf(src + strlen(src), sizeof src - strlen(src), " + x^%d", i);
    strcat(src, "\n");
    Graph *g = build(src, false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    simp_graph(g);
    char *t = text(g->grad_inputs[0]);
    int pluses = 0;
    for (const char *p = t; (p = strstr(p, " + ")); p += 3)
        pluses++;
    CU_ASSERT_EQUAL(pluses, 299);             /* 1 + 2 * x + ... + 300 * x^299 */
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "300 * x^299"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "2 * x"));
    free(t);
}

/* A comment's text is cut near its limit however many terms or factors
 * the expression has: the sum and the product of x^1 ... x^10000 print as
 * a short prefix ending in " ...", and in full without a limit. */
static void test_brief_text_is_cut(void)
{
    Graph *g = build("input x\nloss L = x\n", false);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    Node *x = g->input_nodes[0];
    Node *sum = NULL, *product = NULL;
    for (int k = 1; k <= 10000; k++) {
        Node *a = node_new(g, OP_POW, x, node_scalar(g, k));
        Node *b = node_new(g, OP_EXP, a, NULL);
        sum = sum ? node_new(g, OP_ADD, sum, a) : a;
        product = product ? node_new(g, OP_MUL, product, b) : b;
    }
    for (int which = 0; which < 2; which++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        print_expr_brief(f, which ? product : sum, 60);
        fclose(f);
        CU_ASSERT(len <= 64);
        CU_ASSERT(len >= 4 && !strcmp(buf + len - 4, " ..."));
        free(buf);
    }
    char *full = text(sum);
    CU_ASSERT(strlen(full) > 60000);
    CU_ASSERT_PTR_NOT_NULL(strstr(full, "x^10000 + x^9999 + "));
    free(full);
}

/* Nodes reachable from the gradients of every parameter. */
static int gradient_nodes(const Graph *g)
{
    bool *seen = calloc((size_t)g->nnodes, 1);
    for (int i = 0; i < g->model->nparams; i++)
        if (g->grad_params[i])
            seen[g->grad_params[i]->id] = true;
    int count = 0;
    for (int i = g->nnodes - 1; i >= 0; i--) {
        if (!seen[i])
            continue;
        count++;
        for (int k = 0; k < g->nodes[i]->nin; k++)
            seen[g->nodes[i]->in[k]->id] = true;
    }
    free(seen);
    return count;
}

/* In a chain h_i = tanh(w_i * h_{i-1} + b_i), the adjoint of each h_i is
 * read by three gradients (w_i, b_i, and h_{i-1}'s), so simplification
 * must keep it one shared value even after its operands were rebuilt:
 * opening it into its users (as the simplifier once did for every node it
 * had rebuilt) makes products of up to 64 factors per layer, a graph and
 * generated code about ten times larger, and compile time to match. */
static void test_shared_adjoints_stay_shared(void)
{
    enum { LAYERS = 200 };
    size_t cap = 64 * LAYERS + 64, len = 0;
    char *src = malloc(cap);
    len += (size_t)snprintf(src + len, cap - len, "input x\ninput t\n");
    for (int i = 1; i <= LAYERS; i++) {
        char prev[16];
        snprintf(prev, sizeof prev, i == 1 ? "x" : "h%d", i - 1);
        len += (size_t)snprintf(src + len, cap - len, "param w%d\nparam b%d\n"
                                "h%d = tanh(w%d * %s + b%d)\n", i, i, i, i, prev, i);
    }
    snprintf(src + len, cap - len, "loss L = (h%d - t)^2\n", LAYERS);
    Graph *g = build(src, true);
    free(src);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    diff_graph(g);
    int before = gradient_nodes(g);
    simp_graph(g);
    int after = gradient_nodes(g);
    CU_ASSERT_TRUE(graph_check(g));
    /* about 7 nodes per layer before simplification; it may add a few
     * (a factor of 2 moved, 1 - h^2 written out), not a product per layer */
    CU_ASSERT(after <= before + 2 * LAYERS);
    if (after > before + 2 * LAYERS)
        fprintf(stderr, "\n  %d gradient nodes after simplify, %d before\n", after, before);
}

static int free_arena(void)
{
    arena_free(arena);
    arena = NULL;
    return 0;
}

void register_graph(void)
{
    CU_pSuite s = CU_add_suite("graph", NULL, free_arena);
    CU_add_test(s, "equal sub-expressions are one node", test_equal_subexpressions_are_one_node);
    CU_add_test(s, "identities", test_identities);
    CU_add_test(s, "constant folding is conservative", test_constant_folding_is_conservative);
    CU_add_test(s, "like terms and constant factors", test_like_terms_and_constant_factors);
    CU_add_test(s, "powers fold only where exact", test_powers_fold_only_where_exact);
    CU_add_test(s, "long sums print whole", test_long_sums_print_whole);
    CU_add_test(s, "shared adjoints stay shared", test_shared_adjoints_stay_shared);
    CU_add_test(s, "brief text is cut at its limit", test_brief_text_is_cut);
    CU_add_test(s, "chain rule textbook example", test_chain_rule_textbook);
    CU_add_test(s, "cross_entropy(softmax) is stable", test_cross_entropy_of_softmax_is_stable);
    CU_add_test(s, "gradients only where wanted", test_gradients_only_where_wanted);
    CU_add_test(s, "weight gradient is a batch mean of outer", test_weight_gradient_is_batch_mean_of_outer);
    CU_add_test(s, "kinks use step and sign", test_kinks_use_step_and_sign);
    CU_add_test(s, "an unused parameter's gradient is zero", test_unused_gradient_is_zero);
}
