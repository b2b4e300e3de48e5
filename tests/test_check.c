/* test_check.c — names, shapes and the Model that check.c builds.
 *
 * Each test parses and checks a small source held in a string, then looks
 * at the Model (symbols, shapes, indices) or at the exact messages. The
 * golden cases in tests/diag/ (NAME.net with NAME.expect, the exact stderr
 * of `bpgen --check`) run the real binary. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "bpgen.h"
#include "support.h"

/* ---------------------------------------------------------------- helpers */

typedef struct {
    Arena *arena;
    Program *prog;
    Model *model;       /* NULL when there were errors */
    char *messages;     /* malloc */
} Checked;

static Checked check(const char *src)
{
    Checked c;
    c.arena = arena_new();
    Diag *d = diag_new(c.arena, "t.net", src, strlen(src));
    c.prog = parse_program(c.arena, d, "t.net", src, strlen(src));
    c.model = check_program(c.arena, d, c.prog);
    size_t size = 0;
    FILE *out = open_memstream(&c.messages, &size);
    diag_flush(d, out);
    fclose(out);
    return c;
}

static void done(Checked *c)
{
    free(c->messages);
    arena_free(c->arena);
}

static void expect_messages(const char *src, const char *expected)
{
    Checked c = check(src);
    CU_ASSERT_STRING_EQUAL(c.messages, expected);
    if (strcmp(c.messages, expected) != 0)
        fprintf(stderr, "\n--- got:\n%s--- expected:\n%s", c.messages,
                expected);
    CU_ASSERT_EQUAL(c.model == NULL, expected[0] != '\0');
    done(&c);
}

/* Checks `decls` + "h = EXPR" + a loss, and compares h's shape. */
static void expect_shape(const char *decls, const char *expr, int rank,
                         int d0, int d1)
{
    char *src = test_format("%s\nh = %s\nloss L = sum(h)\n", decls, expr);
    Checked c = check(src);
    CU_ASSERT_STRING_EQUAL(c.messages, "");
    CU_ASSERT_PTR_NOT_NULL(c.model);
    Symbol *h = NULL;
    for (int i = 0; c.model && i < c.model->nvalues; i++)
        if (strcmp(c.model->values[i]->name, "h") == 0)
            h = c.model->values[i];
    if (h) {
        Shape s = h->shape;
        CU_ASSERT_EQUAL(s.rank, rank);
        if (rank >= 1)
            CU_ASSERT_EQUAL(s.dim[0], d0);
        if (rank >= 2)
            CU_ASSERT_EQUAL(s.dim[1], d1);
        if (s.rank != rank || (rank >= 1 && s.dim[0] != d0) ||
            (rank >= 2 && s.dim[1] != d1))
            fprintf(stderr, "\n%s: got rank %d [%d, %d]\n", expr, s.rank,
                    s.dim[0], s.dim[1]);
    } else {
        fprintf(stderr, "\n%s:\n%s", expr, c.messages);
    }
    free(src);
    done(&c);
}

/* Checks `decls` + "h = EXPR" + a loss; the one error must be `message` at
 * line 2 (EXPR's line), column col. */
static void expect_error(const char *decls, const char *expr, int col,
                         const char *message)
{
    char *src = test_format("%s\nh = %s\nloss L = sum(h)\n", decls, expr);
    char *want = test_format("t.net:2:%d: error: %s\nh = %s\n%*s^\n", col,
                             message, expr, col - 1, "");
    Checked c = check(src);
    CU_ASSERT_STRING_EQUAL(c.messages, want);
    if (strcmp(c.messages, want) != 0)
        fprintf(stderr, "\n--- got:\n%s--- expected:\n%s", c.messages, want);
    CU_ASSERT_PTR_NULL(c.model);
    free(want);
    free(src);
    done(&c);
}

#define DECLS "input s; input v[3]; input u[4]; input A[2, 3]; input B[3, 4]; " \
              "input C[2, 3]"

/* ---------------------------------------------------------------- shapes */

static void test_elementwise_shapes(void)
{
    expect_shape(DECLS, "v + v", 1, 3, 0);
    expect_shape(DECLS, "v - s", 1, 3, 0);
    expect_shape(DECLS, "s * A", 2, 2, 3);
    expect_shape(DECLS, "A / C", 2, 2, 3);
    expect_shape(DECLS, "2 * s + 1", 0, 0, 0);
    expect_shape(DECLS, "-v", 1, 3, 0);
    expect_shape(DECLS, "A ^ 2", 2, 2, 3);
    expect_shape(DECLS, "v ^ s", 1, 3, 0);
    expect_shape(DECLS, "2 ^ -1", 0, 0, 0);
    static const char *unary[] = {"exp", "log", "sqrt", "abs", "sin", "cos",
                                  "tanh", "sigmoid", "relu", "softplus",
                                  "step", "sign"};
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) {
        char *e = test_format("%s(A)", unary[i]);
        expect_shape(DECLS, e, 2, 2, 3);
        free(e);
    }
    expect_shape(DECLS, "max(v, v)", 1, 3, 0);
    expect_shape(DECLS, "min(s, A)", 2, 2, 3);
    expect_shape(DECLS, "max(A, 0)", 2, 2, 3);
}

static void test_matmul_shapes(void)
{
    expect_shape(DECLS, "A · v", 1, 2, 0);      /* [m,n]·[n] -> [m] */
    expect_shape(DECLS, "A @ B", 2, 2, 4);      /* [m,n]·[n,p] -> [m,p] */
    expect_shape(DECLS, "v · B", 1, 4, 0);      /* [n]·[n,p] -> [p] */
    expect_shape(DECLS, "v · v", 0, 0, 0);      /* [n]·[n] -> scalar */
    expect_shape(DECLS, "A · B · u", 1, 2, 0);
}

/* The full shape of h = EXPR. */
static void expect_shape4(const char *decls, const char *expr, int rank, int d0, int d1, int d2,
                          int d3)
{
    char *src = test_format("%s\nh = %s\nloss L = sum(h)\n", decls, expr);
    Checked c = check(src);
    CU_ASSERT_STRING_EQUAL(c.messages, "");
    Symbol *h = NULL;
    for (int i = 0; c.model && i < c.model->nvalues; i++)
        if (strcmp(c.model->values[i]->name, "h") == 0)
            h = c.model->values[i];
    CU_ASSERT_PTR_NOT_NULL(h);
    if (h) {
        Shape s = h->shape, want = {rank, {d0, d1, d2, d3}};
        CU_ASSERT(shape_eq(s, want));
        if (!shape_eq(s, want))
            fprintf(stderr, "\n%s: got rank %d [%d, %d, %d, %d]\n", expr, s.rank, s.dim[0],
                    s.dim[1], s.dim[2], s.dim[3]);
    } else {
        fprintf(stderr, "\n%s:\n%s", expr, c.messages);
    }
    free(src);
    done(&c);
}

/* CONTRACT v2: conv2d, pooling, flatten, layernorm; keyword arguments,
 * also on continuation lines */
static void test_image_shapes(void)
{
    const char *d = "input x[3, 8, 7]\nparam K[4, 3, 3, 2]\nparam b[4]\ninput t[2, 3, 4, 5]";
    expect_shape4(d, "conv2d(x, K)", 3, 4, 6, 6, 1);
    expect_shape4(d, "conv2d(x, K, b)", 3, 4, 6, 6, 1);
    expect_shape4(d, "conv2d(x, K, b, stride=2)", 3, 4, 3, 3, 1);
    expect_shape4(d, "conv2d(x, K, b, stride=2, pad=1)", 3, 4, 4, 4, 1);
    expect_shape4(d, "conv2d(x, K, pad=1, stride=3)", 3, 4, 3, 3, 1);
    expect_shape4(d, "conv2d(x, K,\n    stride=2,\n    pad=1)", 3, 4, 4, 4, 1);
    expect_shape4(d, "maxpool2d(x, 2)", 3, 3, 4, 3, 1);
    expect_shape4(d, "avgpool2d(x, 3)", 3, 3, 2, 2, 1);
    expect_shape4(d, "flatten(x)", 1, 168, 1, 1, 1);
    expect_shape4(d, "flatten(t)", 1, 120, 1, 1, 1);
    expect_shape4(d, "layernorm(t) * t + 1", 4, 2, 3, 4, 5);
    expect_shape4(d, "softmax(t)", 4, 2, 3, 4, 5);
    expect_shape4(d, "logsumexp(t) + mean(x) + dot(t, t)", 0, 1, 1, 1, 1);
}

static void test_function_shapes(void)
{
    expect_shape(DECLS, "transpose(A)", 2, 3, 2);
    expect_shape(DECLS, "outer(v, u)", 2, 3, 4);
    expect_shape(DECLS, "sum(A)", 0, 0, 0);
    expect_shape(DECLS, "mean(v)", 0, 0, 0);
    expect_shape(DECLS, "logsumexp(A)", 0, 0, 0);
    expect_shape(DECLS, "dot(A, C)", 0, 0, 0);
    expect_shape(DECLS, "softmax(v)", 1, 3, 0);
    expect_shape(DECLS, "log_softmax(u)", 1, 4, 0);
    /* over every element, at every rank (CONTRACT v2) */
    expect_shape(DECLS, "softmax(A)", 2, 2, 3);
    expect_shape(DECLS, "log_softmax(s)", 0, 0, 0);
    expect_shape(DECLS, "mse(A, C)", 0, 0, 0);
    expect_shape(DECLS, "mse(s, s)", 0, 0, 0);
    expect_shape(DECLS, "cross_entropy(softmax(v), v)", 0, 0, 0);
    expect_shape(DECLS, "cross_entropy(A, C)", 0, 0, 0);
    expect_shape(DECLS, "softmax_cross_entropy(v, v)", 0, 0, 0);
    expect_shape(DECLS, "bce(sigmoid(v), v)", 0, 0, 0);
}

static void test_shape_errors(void)
{
    expect_error(DECLS, "v + u", 7, "cannot add [3] and [4]");
    expect_error(DECLS, "v - A", 7, "cannot subtract [3] and [2, 3]");
    expect_error(DECLS, "v * u", 7, "cannot multiply [3] and [4]");
    expect_error(DECLS, "A * v", 7, "cannot multiply [2, 3] and [3]; for "
                 "the matrix product write '·' or '@'");
    expect_error(DECLS, "A / B", 7, "cannot divide [2, 3] and [3, 4]");
    expect_error(DECLS, "v ^ v", 7, "the exponent of '^' must be a scalar, "
                 "but it has shape [3]");
    expect_error(DECLS, "A · u", 7, "cannot multiply [2, 3] · [4]: inner "
                 "dimensions 3 and 4 differ");
    expect_error(DECLS, "B @ A", 7, "cannot multiply [3, 4] · [2, 3]: inner "
                 "dimensions 4 and 2 differ");
    expect_error(DECLS, "u · v", 7, "cannot multiply [4] · [3]: inner "
                 "dimensions 4 and 3 differ");
    expect_error(DECLS, "s · v", 7, "cannot multiply scalar · [3]: '·' needs "
                 "vectors or matrices; use '*' to scale");
    expect_error(DECLS, "max(v, u)", 5, "'max' needs arguments of the same "
                 "shape, or a scalar, but got [3] and [4]");
    expect_error(DECLS, "transpose(v)", 5, "'transpose' needs a matrix, but "
                 "got [3]");
    expect_error(DECLS, "outer(A, v)", 5, "'outer' needs two vectors, but "
                 "got [2, 3] and [3]");
    expect_error(DECLS, "dot(v, u)", 5, "'dot' needs arguments of the same "
                 "shape, but got [3] and [4]");
    expect_error(DECLS, "mse(v, A)", 5, "'mse' needs arguments of the same "
                 "shape, but got [3] and [2, 3]");
    expect_error(DECLS, "cross_entropy(s, s)", 5, "'cross_entropy' needs two "
                 "tensors of the same shape, but got scalar and "
                 "scalar");
    expect_error(DECLS, "softmax_cross_entropy(A, v)", 5,
                 "'softmax_cross_entropy' needs two tensors of the same "
                 "shape, but got [2, 3] and [3]");
    expect_error(DECLS, "bce(v, u)", 5, "'bce' needs arguments of the same "
                 "shape, but got [3] and [4]");
    /* An error is reported once, not again by every expression above it. */
    expect_error(DECLS, "exp(v + u) * 2 + A", 11, "cannot add [3] and [4]");
    /* Results must stay below 2^31 elements too. */
    expect_error("input a[65536]; input b[65536]", "outer(a, b)", 5,
                 "the result has shape [65536, 65536]: more than 2147483647 "
                 "elements");
}

static void test_calls(void)
{
    expect_error(DECLS, "max(v)", 5, "'max' takes 2 arguments, but 1 was given");
    expect_error(DECLS, "exp(v, v)", 5, "'exp' takes 1 argument, but 2 were given");
    expect_error(DECLS, "sum()", 5, "'sum' takes 1 argument, but 0 were given");
    expect_error(DECLS, "foo(v)", 5, "unknown function 'foo'");
    expect_error(DECLS, "sofmax(v)", 5, "unknown function 'sofmax'; did you "
                 "mean 'softmax'?");
    expect_error(DECLS, "v(2)", 5, "'v' is an input, not a function");
    expect_error("param W; input s", "W(s)", 5, "'W' is a parameter, not a function");
    expect_error("const c = 2", "c(1)", 5, "'c' is a constant, not a function");
    expect_error("input s", "sum + s", 5, "'sum' is a function; call it, as "
                 "in 'sum(x)'");
    /* Names and functions live apart: a value may be called `exp`. */
    expect_shape("input v[2]\nexp = v * 2", "exp(exp)", 1, 2, 0);
}

/* Every call is bound to its built-in. */
static void test_func_binding(void)
{
    static const char *names[FN__COUNT] = {
        "exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu",
        "softplus", "step", "sign", "max", "min", "transpose", "outer", "sum",
        "mean", "dot", "logsumexp", "softmax", "log_softmax", "mse",
        "cross_entropy", "softmax_cross_entropy", "bce", "flatten", "conv2d",
        "maxpool2d", "avgpool2d", "layernorm"};
    for (int f = 0; f < FN__COUNT; f++)
        CU_ASSERT_STRING_EQUAL(check_func_name((Func)f), names[f]);
    Checked c = check("input v[3]\nh = softmax(v) + max(v, 1)\n"
                      "loss L = bce(h, v)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.model);
    Expr *h = c.model->values[0]->stmt->expr;
    CU_ASSERT_EQUAL(h->lhs->func, FN_SOFTMAX);
    CU_ASSERT_EQUAL(h->rhs->func, FN_MAX);
    CU_ASSERT_EQUAL(c.model->loss->stmt->expr->func, FN_BCE);
    CU_ASSERT_EQUAL(h->shape.rank, 1);
    CU_ASSERT_EQUAL(h->lhs->args[0]->sym, c.model->inputs[0]);
    CU_ASSERT_EQUAL(h->rhs->args[1]->shape.rank, 0);
    done(&c);
}

/* ---------------------------------------------------------------- names */

static void test_name_errors(void)
{
    expect_messages("input h\nloss L = q * sum(h)\n",
        "t.net:2:10: error: undefined name 'q'\n"
        "loss L = q * sum(h)\n"
        "         ^\n");
    expect_messages("input W\nloss L = w\n",
        "t.net:2:10: error: undefined name 'w'; did you mean 'W'?\n"
        "loss L = w\n"
        "         ^\n");
    expect_messages("input weights\nloss L = sum(wieghts)\n",
        "t.net:2:14: error: undefined name 'wieghts'; did you mean 'weights'?\n"
        "loss L = sum(wieghts)\n"
        "             ^\n");
    expect_messages("input x\nloss L = zzz\n",
        "t.net:2:10: error: undefined name 'zzz'\n"
        "loss L = zzz\n"
        "         ^\n");
    expect_messages("input x\nx = 2\nloss L = x\n",
        "t.net:2:1: error: 'x' is already defined\n"
        "x = 2\n"
        "^\n"
        "t.net:1:7: note: 'x' was first defined here\n"
        "input x\n"
        "      ^\n");
    expect_messages("input x\nk = later * 2\nlater = x\nloss L = k\n",
        "t.net:2:5: error: 'later' is used before it is defined\n"
        "k = later * 2\n"
        "    ^\n"
        "t.net:3:1: note: 'later' is defined here\n"
        "later = x\n"
        "^\n");
    expect_messages("h = h + 1\nloss L = h\n",
        "t.net:1:5: error: 'h' is used in its own definition\n"
        "h = h + 1\n"
        "    ^\n");
}

static void test_loss_rules(void)
{
    expect_messages("input x[3]\nh = x\n",
        "t.net:1:1: error: the model has no loss; add one, as in "
        "'loss L = mse(y_hat, y)'\n"
        "input x[3]\n"
        "^\n");
    expect_messages("input x\nloss L = x\nloss M = 2 * x\n",
        "t.net:3:6: error: a model has exactly one loss, but 'M' is a second one\n"
        "loss M = 2 * x\n"
        "     ^\n"
        "t.net:2:6: note: the first loss is 'L'\n"
        "loss L = x\n"
        "     ^\n");
    expect_messages("input x[3]\nloss L = x * 2\n",
        "t.net:2:6: error: loss must be a scalar, but 'L' has shape [3]; "
        "reduce it with sum() or mean()\n"
        "loss L = x * 2\n"
        "     ^\n");
}

static void test_wrt_and_output(void)
{
    expect_messages("input x\nparam W\nparam frozen F\nconst c = 1\n"
                    "h = W * x\nloss L = h + F + c\n"
                    "wrt x, W, F, c, h, L, nope\noutput h, h\n",
        "t.net:7:8: error: 'W' is a parameter; wrt names only inputs "
        "(parameters are always differentiated)\n"
        "wrt x, W, F, c, h, L, nope\n"
        "       ^\n"
        "t.net:7:11: error: 'F' is a frozen parameter; wrt names only inputs\n"
        "wrt x, W, F, c, h, L, nope\n"
        "          ^\n"
        "t.net:7:14: error: 'c' is a constant; wrt names only inputs\n"
        "wrt x, W, F, c, h, L, nope\n"
        "             ^\n"
        "t.net:7:17: error: 'h' is an intermediate value; wrt names only inputs\n"
        "wrt x, W, F, c, h, L, nope\n"
        "                ^\n"
        "t.net:7:20: error: 'L' is the loss; wrt names only inputs\n"
        "wrt x, W, F, c, h, L, nope\n"
        "                   ^\n"
        "t.net:7:23: error: undefined name 'nope'\n"
        "wrt x, W, F, c, h, L, nope\n"
        "                      ^\n"
        "t.net:8:11: error: 'h' is named in 'output' twice\n"
        "output h, h\n"
        "          ^\n");
}

/* An undefined name is reported at its first use only, as C compilers do:
 * one misspelling used many times is one error, in expressions and in
 * `output` alike; another undefined name still gets its own. */
static void test_undefined_once(void)
{
    expect_messages("input x[2]\nparam w[2]\nh = y * x + y\nz = sum(h * y) + q\n"
                    "output y, q\nloss L = sum(z * w)\n",
        "t.net:3:5: error: undefined name 'y'\n"
        "h = y * x + y\n"
        "    ^\n"
        "t.net:4:18: error: undefined name 'q'\n"
        "z = sum(h * y) + q\n"
        "                 ^\n");
    /* many distinct undefined names: each once (the set grows) */
    char text[4096] = "param w\nloss L = w";
    size_t len = strlen(text);
    for (int i = 0; i < 200; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, " + u%d + u%d", i, i);
    snprintf(text + len, sizeof text - len, "\n");
    Checked c = check(text);
    int count = 0;
    for (const char *p = c.messages; (p = strstr(p, "error: undefined name")); p++)
        count++;
    CU_ASSERT_EQUAL(count, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.messages, "undefined name 'u199'"));
    CU_ASSERT_PTR_NULL(c.model);
    done(&c);
}

static void test_declarations(void)
{
    expect_messages("input x[0, -1]\ninput v[2.5]\ninput big[100000, 100000]\n"
                    "input t[2, 3, 4, 5, 6]\nparam ok[2147483647]\ninput r4[2, 3, 4, 5]\n"
                    "input big4[2000, 2000, 2000, 2000]\nloss L = 1\n",
        "t.net:1:9: error: a dimension must be a positive integer, but this "
        "one is 0\n"
        "input x[0, -1]\n"
        "        ^\n"
        "t.net:1:12: error: a dimension must be a positive integer, but this "
        "one is -1\n"
        "input x[0, -1]\n"
        "           ^\n"
        "t.net:2:9: error: a dimension must be a positive integer, but this "
        "one is 2.5\n"
        "input v[2.5]\n"
        "        ^\n"
        "t.net:3:7: error: 'big' is too large: 10000000000 elements, but at "
        "most 2147483647 are allowed\n"
        "input big[100000, 100000]\n"
        "      ^\n"
        "t.net:4:21: error: 't' has 5 dimensions, but at most 4 are allowed\n"
        "input t[2, 3, 4, 5, 6]\n"
        "                    ^\n"
        "t.net:7:7: error: 'big4' is too large: 16000000000000 elements, but at "
        "most 2147483647 are allowed\n"
        "input big4[2000, 2000, 2000, 2000]\n"
        "      ^\n");
    expect_messages("input x[4294967296]\nloss L = 1\n",
        "t.net:1:7: error: 'x' is too large: 4294967296 elements, but at most "
        "2147483647 are allowed\n"
        "input x[4294967296]\n"
        "      ^\n");
    expect_messages("param W[2] = normal(0, -1)\nparam U = uniform(1, -1)\n"
                    "param ok = uniform(1, 1)\nloss L = 1\n",
        "t.net:1:14: error: the standard deviation of normal(mean, std) must "
        "be >= 0, but it is -1\n"
        "param W[2] = normal(0, -1)\n"
        "             ^\n"
        "t.net:2:11: error: uniform(lo, hi) needs lo <= hi, but 1 > -1\n"
        "param U = uniform(1, -1)\n"
        "          ^\n");
    expect_messages("input x\nmodel late\nloss L = x\n",
        "t.net:2:1: error: 'model' must be the first statement\n"
        "model late\n"
        "^\n");
    expect_messages("model a\nmodel b\nloss L = 1\n",
        "t.net:2:1: error: the model is already named 'a'\n"
        "model b\n"
        "^\n"
        "t.net:1:1: note: it is named here\n"
        "model a\n"
        "^\n");
}

/* ---------------------------------------------------------------- model */

static void test_model_fields(void)
{
    Checked c = check("# comment first\n"
                      "model iris\n"
                      "input  x[4]\n"
                      "input  y[3]\n"
                      "param  W1[16, 4] = normal(0, 0.5)\n"
                      "param  b1[16]\n"
                      "param frozen W2[3, 16] = xavier\n"
                      "const  k = 2\n"
                      "param  b2[3]\n"
                      "h = tanh(W1 · x + b1)\n"
                      "z = W2 · h + b2 * k\n"
                      "p = softmax(z)\n"
                      "output p, h\n"
                      "loss L = cross_entropy(p, y)\n"
                      "wrt x\n");
    CU_ASSERT_STRING_EQUAL(c.messages, "");
    Model *m = c.model;
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_STRING_EQUAL(m->name, "iris");
    CU_ASSERT_STRING_EQUAL(m->path, "t.net");
    CU_ASSERT_EQUAL(m->ninputs, 2);
    CU_ASSERT_EQUAL(m->nparams, 4);
    CU_ASSERT_EQUAL(m->nvalues, 4);
    CU_ASSERT_EQUAL(m->noutputs, 2);
    CU_ASSERT_STRING_EQUAL(m->inputs[1]->name, "y");
    CU_ASSERT_EQUAL(m->inputs[1]->index, 1);
    CU_ASSERT_EQUAL(m->inputs[1]->kind, SYM_INPUT);
    CU_ASSERT_TRUE(m->inputs[0]->wrt);
    CU_ASSERT_FALSE(m->inputs[1]->wrt);
    CU_ASSERT_STRING_EQUAL(m->params[2]->name, "W2");
    CU_ASSERT_EQUAL(m->params[2]->index, 2);
    CU_ASSERT_TRUE(m->params[2]->stmt->frozen);
    CU_ASSERT_EQUAL(m->params[2]->stmt->init.kind, INIT_XAVIER);
    CU_ASSERT_EQUAL(m->params[2]->shape.rank, 2);
    CU_ASSERT_EQUAL(m->params[2]->shape.dim[0], 3);
    CU_ASSERT_EQUAL(m->params[2]->shape.dim[1], 16);
    CU_ASSERT_STRING_EQUAL(m->params[3]->name, "b2");
    CU_ASSERT_EQUAL(m->params[3]->shape.dim[1], 1);   /* unused entry is 1 */
    const char *values[] = {"h", "z", "p", "L"};
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_STRING_EQUAL(m->values[i]->name, values[i]);
        CU_ASSERT_EQUAL(m->values[i]->kind, SYM_VALUE);
        CU_ASSERT_EQUAL(m->values[i]->index, -1);
    }
    CU_ASSERT_EQUAL(m->loss, m->values[3]);
    CU_ASSERT_TRUE(m->loss->is_loss);
    CU_ASSERT_FALSE(m->values[0]->is_loss);
    CU_ASSERT_EQUAL(m->loss->shape.rank, 0);
    CU_ASSERT_EQUAL(m->outputs[0], m->values[2]);
    CU_ASSERT_EQUAL(m->outputs[1], m->values[0]);
    CU_ASSERT_EQUAL(m->values[0]->loc.line, 10);
    /* The constant k: a name, a scalar, not in any list. */
    Expr *z = m->values[1]->stmt->expr;
    Symbol *k = z->rhs->rhs->sym;
    CU_ASSERT_EQUAL(k->kind, SYM_CONST);
    CU_ASSERT_EQUAL(k->stmt->value, 2);
    CU_ASSERT_EQUAL(k->index, -1);
    done(&c);
}

static void test_output_any_name_anywhere(void)
{
    /* output and wrt may name things defined later; output any kind. */
    Checked c = check("output L, x, W, k\nwrt x\ninput x[2]\nparam W[2]\n"
                      "const k = 1\nloss L = dot(W, x)\n");
    CU_ASSERT_STRING_EQUAL(c.messages, "");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.model);
    CU_ASSERT_EQUAL(c.model->noutputs, 4);
    CU_ASSERT_TRUE(c.model->inputs[0]->wrt);
    done(&c);
}

static void test_default_model_name(void)
{
    Arena *a = arena_new();
    CU_ASSERT_STRING_EQUAL(check_default_model_name(a, "nets/my-model.net"), "my_model");
    CU_ASSERT_STRING_EQUAL(check_default_model_name(a, "3layer.net"), "m_3layer");
    CU_ASSERT_STRING_EQUAL(check_default_model_name(a, "a/b.c/iris"), "iris");
    CU_ASSERT_STRING_EQUAL(check_default_model_name(a, "x.tar.net"), "x_tar");
    CU_ASSERT_STRING_EQUAL(check_default_model_name(a, "/tmp/caf\xC3\xA9 2.net"), "caf__2");
    CU_ASSERT_STRING_EQUAL(check_default_model_name(a, "dir/.net"), "_net");
    CU_ASSERT_STRING_EQUAL(check_default_model_name(a, "dir/"), "model");
    arena_free(a);

    Checked c = check("input x\nloss L = x\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c.model);
    CU_ASSERT_STRING_EQUAL(c.model->name, "t");
    done(&c);
}

/* Checks go on past syntax errors: good statements are still checked,
 * names of broken statements still exist. */
static void test_after_syntax_errors(void)
{
    expect_messages("input x[3]\n"
                    "h = tanh(x +\n"
                    "z = h * 2 + q\n"
                    "param W[3 3]\n"
                    "y = W · x\n"
                    "loss L = sum(z) + sum(y\n"
                    "k = L + zz\n",
        "t.net:2:13: error: expected an expression after '+', but found end of line\n"
        "h = tanh(x +\n"
        "            ^\n"
        "t.net:3:13: error: undefined name 'q'\n"
        "z = h * 2 + q\n"
        "            ^\n"
        "t.net:4:11: error: expected ']' or ',' after '3', but found '3'\n"
        "param W[3 3]\n"
        "          ^\n"
        "t.net:6:24: error: expected ')' to close '(' opened at 6:22\n"
        "loss L = sum(z) + sum(y\n"
        "                       ^\n"
        "t.net:7:9: error: undefined name 'zz'; did you mean 'z'?\n"
        "k = L + zz\n"
        "        ^\n");
}

/* ---------------------------------------------------------------- golden */

/* tests/diag/NAME.net: `bpgen --check` must print NAME.expect exactly on
 * standard error (exit 1), or nothing when NAME.expect is empty (exit 0). */
static void test_golden_diagnostics(void)
{
    DIR *dir = opendir("tests/diag");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    int cases = 0;
    struct dirent *ent;
    while ((ent = readdir(dir))) {
        size_t n = strlen(ent->d_name);
        if (n < 5 || strcmp(ent->d_name + n - 4, ".net") != 0)
            continue;
        char *net = test_format("tests/diag/%s", ent->d_name);
        char *exp_path = test_format("tests/diag/%.*s.expect", (int)(n - 4),
                                     ent->d_name);
        char *expected = test_read_file(exp_path, NULL);
        CU_ASSERT_PTR_NOT_NULL(expected);
        char *cmd = test_format("%s %s --check", TEST_BPGEN, net);
        char *out = NULL, *err = NULL;
        int rc = test_run(cmd, &out, &err);
        if (expected && err) {
            CU_ASSERT_STRING_EQUAL(err, expected);
            CU_ASSERT_EQUAL(rc, expected[0] ? 1 : 0);
            CU_ASSERT_STRING_EQUAL(out, "");
            if (strcmp(err, expected) != 0 || rc != (expected[0] ? 1 : 0))
                fprintf(stderr, "\n%s (exit %d) --- got:\n%s--- expected:\n%s",
                        net, rc, err, expected);
        } else {
            CU_FAIL("could not run bpgen or read the .expect file");
        }
        cases++;
        free(out);
        free(err);
        free(cmd);
        free(expected);
        free(exp_path);
        free(net);
    }
    closedir(dir);
    CU_ASSERT(cases >= 10);
}

void register_check(void)
{
    CU_pSuite s = CU_add_suite("check", NULL, NULL);
    CU_add_test(s, "elementwise shapes", test_elementwise_shapes);
    CU_add_test(s, "matmul shapes", test_matmul_shapes);
    CU_add_test(s, "function shapes", test_function_shapes);
    CU_add_test(s, "shape errors", test_shape_errors);
    CU_add_test(s, "image shapes", test_image_shapes);
    CU_add_test(s, "calls", test_calls);
    CU_add_test(s, "func binding", test_func_binding);
    CU_add_test(s, "name errors", test_name_errors);
    CU_add_test(s, "loss rules", test_loss_rules);
    CU_add_test(s, "wrt and output", test_wrt_and_output);
    CU_add_test(s, "declarations", test_declarations);
    CU_add_test(s, "an undefined name is reported once", test_undefined_once);
    CU_add_test(s, "model fields", test_model_fields);
    CU_add_test(s, "output any name anywhere", test_output_any_name_anywhere);
    CU_add_test(s, "default model name", test_default_model_name);
    CU_add_test(s, "after syntax errors", test_after_syntax_errors);
    CU_add_test(s, "golden diagnostics", test_golden_diagnostics);
}
