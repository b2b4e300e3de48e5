/* test_report.c — `bpgen --report`: the cost of each generated function
 * and step, against counts made by hand here.
 *
 * The rules being checked (compiler/report.c, op_info's flops in ops.c):
 * FLOPs count every arithmetic operation, comparison and function call as
 * one and a multiply-add as two, for each sample of a per-sample value;
 * bytes count each value a step reads once, whole, and the value it
 * writes once, whole; the workspace is how far into M_workspace_size(n)
 * a function reaches; the peak adds theta, the inputs read and the
 * results. Each count below is worked out in the comment above it. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* The row of step `step` in the section of function `fn` ("forward:"),
 * read into its FLOPs and bytes. Returns 0 when found, and checks that
 * its kind and its text are as expected. */
static int row(const char *out, const char *fn, int step, const char *kind, const char *text,
               double *flops, double *bytes)
{
    char *head = test_format("\n%s: ", fn);
    const char *sec = out ? strstr(out, head) : NULL;
    free(head);
    if (!sec)
        return -1;
    const char *end = strstr(sec + 1, "\n  total");
    for (const char *line = strchr(sec + 1, '\n'); line && (!end || line < end);
         line = strchr(line + 1, '\n')) {
        int k = 0, used = 0;
        char got_kind[16];
        if (sscanf(line + 1, "%d %15s %lf %lf %*s %n", &k, got_kind, flops, bytes, &used) == 4 &&
            k == step) {
            CU_ASSERT_STRING_EQUAL(got_kind, kind);
            CU_ASSERT_EQUAL(strncmp(line + 1 + used, text, strlen(text)), 0);
            if (strncmp(line + 1 + used, text, strlen(text)) != 0)
                fprintf(stderr, "\nstep %d of %s: expected '%s' in:\n%.120s\n", step, fn, text,
                        line + 1);
            return 0;
        }
    }
    return -1;
}

/* Checks one step's FLOPs and bytes. */
#define STEP(out, fn, k, kind, text, want_flops, want_bytes)                        \
    do {                                                                             \
        double flops_ = -1, bytes_ = -1;                                             \
        CU_ASSERT_EQUAL_FATAL(row(out, fn, k, kind, text, &flops_, &bytes_), 0);    \
        CU_ASSERT_DOUBLE_EQUAL(flops_, want_flops, 0);                               \
        CU_ASSERT_DOUBLE_EQUAL(bytes_, want_bytes, 0);                               \
        if (flops_ != (want_flops) || bytes_ != (want_bytes))                        \
            fprintf(stderr, "\n%s step %d: %g FLOPs, %g bytes; expected %g, %g\n", fn, \
                    k, flops_, bytes_, (double)(want_flops), (double)(want_bytes));  \
    } while (0)

/* The `total` row of function fn, and its workspace and peak memory. */
static void totals(const char *out, const char *fn, double flops, double bytes, double ws,
                   double peak)
{
    char *head = test_format("\n%s: ", fn);
    const char *sec = out ? strstr(out, head) : NULL;
    free(head);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sec);
    const char *t = strstr(sec, "\n  total");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    double f = -1, b = -1, w = -1, pk = -1;
    CU_ASSERT_EQUAL(sscanf(t, "\n  total %lf %lf", &f, &b), 2);
    const char *wl = strstr(t, "workspace ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(wl);
    CU_ASSERT_EQUAL(sscanf(wl, "workspace %lf bytes; peak memory %lf bytes", &w, &pk), 2);
    CU_ASSERT_DOUBLE_EQUAL(f, flops, 0);
    CU_ASSERT_DOUBLE_EQUAL(b, bytes, 0);
    CU_ASSERT_DOUBLE_EQUAL(w, ws, 0);
    CU_ASSERT_DOUBLE_EQUAL(pk, peak, 0);
    if (f != flops || b != bytes || w != ws || pk != peak)
        fprintf(stderr, "\n%s totals: %g %g, ws %g, peak %g; expected %g %g, ws %g, peak %g\n",
                fn, f, b, w, pk, flops, bytes, ws, peak);
}

static char *report(const char *name, const char *source, const char *args)
{
    char *out = NULL, *err = NULL;
    int rc = test_bpgen(name, source, args, &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\n[%s] bpgen --report failed:\n%s\n", name, err ? err : "");
    free(err);
    return out;
}

/* y = W·x + b, W [2, 3], and L = sum((y - t)^2), at n = 4, float. */
static void test_matmul_bias(void)
{
    const char *src = "input x[3]\ninput t[2]\nparam W[2, 3]\nparam b[2]\n"
                      "y = W · x + b\noutput y\nloss L = sum((y - t)^2)\n";
    char *out = report("rep_linear", src, "--report --batch 4");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "at batch size n = 4, float (4 bytes a value)"));
    /* 8 parameters, 32 bytes; workspace 3 values a sample (W·x, L), none
     * shared (the gradients' sums are written scaled into grad): 3 · 4 ·
     * 4 = 48 bytes */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "parameters: 8 values, 32 bytes; "
                                       "rep_linear_workspace_size(4) = 48 bytes"));
    /* forward keeps W·x for backward, so the bias is a loop of its own.
     * W·x: 2·3 multiply-adds per element, 2 elements, 4 samples = 48;
     * reads x (3·4) and W (6), writes 2·4: 26 values, 104 bytes */
    STEP(out, "forward", 1, "gemm", "W · x", 48, 104);
    /* W·x + b - t: three operations (the add, b - t as b + (-1)·t) on
     * 2·4 values = 24; reads W·x (8), b (2), t (8), writes 8: 104 bytes */
    STEP(out, "forward", 2, "loop", "W · x + b - t", 24, 104);
    /* L = sum(d^2): a square and an add per element, 2·4 each = 16;
     * reads d (8), writes L (4): 48 bytes */
    STEP(out, "forward", 3, "reduce", "L = sum((W · x + b - t)^2)", 16, 48);
    /* the mean of L over the batch: 4 adds and a division; reads 4 */
    STEP(out, "forward", 4, "reduce", "the loss L, the mean over the batch", 5, 16);
    /* 93 FLOPs, 272 bytes; the workspace reached: W·x and L per sample,
     * 3 values · 4 = 48 bytes; peak: + theta 32 + x 48 + t 32 = 160 */
    totals(out, "forward", 93, 272, 48, 160);
    /* predict fuses the bias into the gemm: 48 + 8 adds = 56 FLOPs;
     * reads x, W, b (12 + 6 + 2), writes y (8) straight into outputs[0]:
     * 112 bytes, no copy, no workspace; peak: theta 32 + x 48 + y 32 */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\npredict: 1 steps\n"));
    STEP(out, "predict", 1, "gemm", "y = W · x + b", 56, 112);
    totals(out, "predict", 56, 112, 0, 112);
    /* backward: dL/db = 2 · batch_mean(d), the factor folded into the
     * mean's last division: the mean adds 2 values per sample (8 FLOPs)
     * and the 2 products, 10; reads d (8), writes 2 into grad: 40 bytes */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nbackward: 2 steps\n"));
    STEP(out, "backward", 1, "reduce", "dL/db = 2 * batch_mean(W · x + b - t)", 10, 40);
    /* dL/dW = 2 · the mean of outer(d, x) as one gemm with alpha 2/n:
     * the outer product's 6 products and the mean's 6 adds per sample,
     * 48, and the 6 products, 54; reads d (8), x (12), writes 6: 104
     * bytes */
    STEP(out, "backward", 2, "gemm", "dL/dW = 2 * batch_mean(outer(W · x + b - t, x))", 54, 104);
    /* 64 FLOPs, 144 bytes; the workspace reached: the kept d (2 a sample
     * at the start of the per-sample pool), 8 values, 32 bytes; peak: +
     * theta 32, x 48 (backward reads no t) and grad 32 */
    totals(out, "backward", 64, 144, 32, 32 + 32 + 48 + 32);
    /* forward + backward */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "training step (forward + backward): 157 FLOPs, 416 bytes"));
    free(out);
}

/* examples/iris/iris.net, 4-16-3 tanh with softmax and cross-entropy,
 * at n = 32, float. */
static void test_iris(void)
{
    char *src = test_read_file("examples/iris/iris.net", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    char *out = report("rep_iris", src, "--report --batch=32");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    /* W1·x + b1, one gemm with the bias in its rows: 2·4 per element,
     * 16 elements, 32 samples = 4096, and 16·32 adds = 4608; reads W1
     * (64), x (128), b1 (16), writes 512: 720 values, 2880 bytes */
    STEP(out, "forward", 1, "gemm", "W1 · x + b1", 4608, 2880);
    /* h = tanh(...): 512 calls; 512 read, 512 written: 4096 bytes */
    STEP(out, "forward", 2, "loop", "h = tanh(W1 · x + b1)", 512, 4096);
    /* z = W2·h + b2: 2·16·3·32 = 3072, and 96 adds = 3168; reads W2
     * (48), h (512), b2 (3), writes 96: 659 values, 2636 bytes */
    STEP(out, "forward", 3, "gemm", "z = W2 · h + b2", 3168, 2636);
    /* log_softmax of 3 values: max, subtract, exp and add per value,
     * a log, two subtractions per value: 6·3 + 1 = 19 a sample, 608;
     * reads 96, writes 96: 768 bytes */
    STEP(out, "forward", 4, "reduce", "log_softmax(z)", 608, 768);
    /* sum(log_softmax(z) * y): 3 products and 3 adds a sample, 192;
     * reads 96 + 96, writes 32: 896 bytes */
    STEP(out, "forward", 5, "reduce", "sum(log_softmax(z) * y)", 192, 896);
    /* L = -that: 32 products; 32 read, none written: L is a local of
     * the loop that sums the loss, 128 bytes */
    STEP(out, "forward", 6, "loop", "L = -sum(log_softmax(z) * y)", 32, 128);
    STEP(out, "forward", 7, "reduce", "the loss L", 33, 0);
    /* 9153 FLOPs, 11404 bytes; the workspace forward reaches, 22 values
     * a sample, 2816 bytes (lowering's placement); peak: + theta 131 · 4
     * = 524, x 512, y 384: 4236 */
    totals(out, "forward", 9153, 11404, 2816, 2816 + 524 + 512 + 384);
    /* predict's softmax: 5 · 3 = 15 a sample, 480 */
    STEP(out, "predict", 4, "reduce", "p = softmax(z)", 480, 768);
    free(out);
    free(src);
}

/* A convolution with a bias and a max pool, at n = 2, float. */
static void test_conv(void)
{
    const char *src = "input x[1, 5, 5]\nparam K[2, 1, 3, 3]\nparam c[2]\n"
                      "y = conv2d(x, K, c)\np = maxpool2d(y, 2)\nloss L = sum(p^2)\n";
    char *out = report("rep_conv", src, "--report --batch 2");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    /* y [2, 3, 3]: 18 values, each 9 multiply-adds (18) and the bias's
     * add: 18 · 19 = 342 a sample, 684; reads x (25 · 2), K (18), c (2),
     * writes 36: 106 values, 424 bytes */
    STEP(out, "forward", 1, "kernel", "y = conv2d(x, K, c, stride=1, pad=0)", 684, 424);
    /* p [2, 1, 1]: 2 windows of 4 comparisons, 8 a sample, 16; reads
     * y (36), writes 4: 160 bytes */
    STEP(out, "forward", 2, "kernel", "p = maxpool2d(y, 2)", 16, 160);
    STEP(out, "forward", 3, "reduce", "L = sum(p^2)", 8, 24);
    /* the workspace: 21 values a sample (y, p, L) as placed, then the
     * convolution's im2col scratch (9 · 9 = 81 shared) after all 38 · 2
     * per-sample values: 157 values, 628 bytes, the whole workspace;
     * peak: + theta 80 + x 200 */
    totals(out, "forward", 711, 616, 628, 628 + 80 + 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "rep_conv_workspace_size(2) = 628 bytes"));
    /* dL/dK, the batch mean of conv2d_grad_kernel: 2 · 18 · 9 = 324 a
     * sample and the mean's 18 adds: 684; reads dL/dy (36), x (50),
     * writes 18: 416 bytes */
    STEP(out, "backward", 3, "kernel", "dL/dK = batch_mean(", 684, 416);
    /* dL/dc: conv2d_grad_bias adds 18 values a sample and the mean 2:
     * 40; reads 36, writes 2: 152 bytes */
    STEP(out, "backward", 4, "kernel", "dL/dc = batch_mean(conv2d_grad_bias(", 40, 152);
    free(out);
}

/* The default batch size is said; double counts 8 bytes a value. */
static void test_default_and_double(void)
{
    const char *src = "input x[3]\nparam w[3]\nloss L = sum(w * x)\n";
    char *out = report("rep_default", src, "--report --precision=double");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "at batch size n = 1 (the default; --batch N for another), "
                                       "double (8 bytes a value)"));
    /* sum(w * x): 3 products, 3 adds; reads w, x (6), writes 1: 56 bytes */
    STEP(out, "forward", 1, "reduce", "L = sum(w * x)", 6, 56);
    free(out);
}

/* The chain S = L^2 + 2, P = sqrt(S), d/dL by M_forward_backward's one
 * loop, at n = 10, double. Apart: forward's loop reads L and writes P
 * (160 bytes), the loss reads P (80), backward reads L and P and writes
 * dP/dL (240): 480. As one loop: L read once, dP/dL written, P a local:
 * 160, the plain C loop's traffic. FLOPs: S (mul, add), sqrt: 3 a sample;
 * the loss 10 adds and a division; dP/dL a division and the 1/n: 2 a
 * sample, plus its scaling by 1/n: 30 + 11 + 30 = 71. */
static void test_forward_backward_loop(void)
{
    const char *src = "input L\nwrt L\nS = L^2 + 2\nloss P = sqrt(S)\n";
    char *out = report("rep_fb", src, "--report --batch 10 --precision=double");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    STEP(out, "forward", 1, "loop", "P = sqrt(S)", 30, 160);
    STEP(out, "backward", 1, "loop", "dP/dL = L / P", 30, 240);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\nforward_backward: forward's steps 1 to 2 and "
                                       "backward's 1 to 1 run as one loop\n  (71 FLOPs): "
                                       "160 bytes where they move 480 apart\n"));
    free(out);
    /* no line where no loop is shared */
    out = report("rep_fb_none", "input x[3]\nparam w[3]\nloss L = sum(w * x)\n", "--report");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NULL(strstr(out, "forward_backward"));
    free(out);
}

static void test_bad_batch(void)
{
    const char *src = "input x\nloss L = x^2\n";
    static const struct {
        const char *args, *message;
    } bad[] = {
        {"--report --batch 0", "--batch needs a whole number from 1 to 1000000000, not '0'"},
        {"--report --batch=-3", "--batch needs a whole number from 1 to 1000000000, not '-3'"},
        {"--report --batch abc", "--batch needs a whole number from 1 to 1000000000, not 'abc'"},
        {"--report --batch 2x", "--batch needs a whole number from 1 to 1000000000, not '2x'"},
        {"--report --batch=1000000001",
         "--batch needs a whole number from 1 to 1000000000, not '1000000001'"},
        {"--report --batch=99999999999999999999",
         "--batch needs a whole number from 1 to 1000000000, not '99999999999999999999'"},
        {"--report --batch", "--batch needs a batch size"},
        {"--check --batch 8", "--batch is the batch size of --report: use it with --report"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL, *err = NULL;
        int rc = test_bpgen("rep_bad", src, bad[i].args, &out, &err);
        CU_ASSERT_EQUAL(rc, 2);
        CU_ASSERT_PTR_NOT_NULL(err && strstr(err, bad[i].message));
        CU_ASSERT_STRING_EQUAL(out ? out : "", "");
        if (rc != 2 || !err || !strstr(err, bad[i].message))
            fprintf(stderr, "\n[%s] exit %d, stderr:\n%s\n", bad[i].args, rc, err ? err : "");
        free(out);
        free(err);
    }
}

void register_report(void)
{
    CU_pSuite s = CU_add_suite("report", NULL, NULL);
    CU_add_test(s, "a matrix product and a bias, counted by hand", test_matmul_bias);
    CU_add_test(s, "the iris MLP, counted by hand", test_iris);
    CU_add_test(s, "a convolution and a pool, counted by hand", test_conv);
    CU_add_test(s, "the default batch size; double", test_default_and_double);
    CU_add_test(s, "forward_backward's one loop, counted by hand", test_forward_backward_loop);
    CU_add_test(s, "bad --batch values", test_bad_batch);
}
