/* test_step.c — the fused training step M_step (bpgen --step) and the
 * runtime's per-tensor update it calls (bp_optim_update, bp_optim_finish).
 *
 * What is checked: for models of every kind of step (an MLP, xor, iris, a
 * parameter used by two layers, a convolution, frozen parameters, a
 * gradient that is another parameter, a parameter the loss ignores, input
 * gradients), in float and in double, a few steps of M_step give the same
 * losses, theta and optimiser state as M_forward + M_backward +
 * bp_optim_step, for every optimiser kind with and without weight decay
 * (tests/harness/step.c), and frozen parameters stay as they were; an
 * update comes after the last step that reads its parameter; the
 * gradient pool is smaller than the gradient vector it replaces; a
 * clipping optimiser is refused. */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- runtime */

enum { NP = 7, ROUNDS = 3 };

/* Updates of [0, 3) and [3, NP) then bp_optim_finish, ROUNDS times, give
 * theta and state bit for bit as bp_optim_step does. */
static void per_tensor_equals_step(int real_size)
{
    for (int kind = BP_SGD; kind <= BP_ADAMW; kind++) {
        bp_optim_config c = bp_optim_defaults((bp_optim_kind)kind);
        c.lr = 0.1;
        c.weight_decay = 0.02;
        size_t bytes = bp_optim_state_size(&c, NP, real_size);
        double sa[2 * NP], sb[2 * NP];
        double da[NP], db[NP], g[NP];
        float fa[NP], fb[NP], fg[NP];
        bp_optimizer oa, ob;
        bp_optim_init(&oa, &c, NULL, NP, real_size, bytes ? sa : NULL);
        bp_optim_init(&ob, &c, NULL, NP, real_size, bytes ? sb : NULL);
        for (int i = 0; i < NP; i++)
            da[i] = db[i] = fa[i] = fb[i] = (float)(0.3 * i - 1);
        void *ta = real_size == 8 ? (void *)da : (void *)fa;
        void *tb = real_size == 8 ? (void *)db : (void *)fb;
        void *gr = real_size == 8 ? (void *)g : (void *)fg;
        size_t rs = (size_t)real_size;
        for (int t = 0; t < ROUNDS; t++) {
            for (int i = 0; i < NP; i++)
                g[i] = fg[i] = (float)(0.5 - 0.2 * i + 0.1 * t);
            CU_ASSERT_EQUAL(bp_optim_update(&oa, ta, gr, 0, 3), BP_OK);
            CU_ASSERT_EQUAL(bp_optim_update(&oa, ta, (char *)gr + 3 * rs, 3, NP - 3), BP_OK);
            CU_ASSERT_EQUAL(oa.step, t);
            bp_optim_finish(&oa);
            CU_ASSERT_EQUAL(bp_optim_step(&ob, tb, gr, NULL, 0), BP_OK);
        }
        CU_ASSERT_EQUAL(oa.step, ROUNDS);
        CU_ASSERT(memcmp(ta, tb, NP * rs) == 0);
        if (bytes)
            CU_ASSERT(memcmp(sa, sb, bytes) == 0);
    }
}

static void test_update_float(void)
{
    per_tensor_equals_step(4);
}

static void test_update_double(void)
{
    per_tensor_equals_step(8);
}

/* Clipping (a global norm), a range past theta's end, missing state or
 * arguments: BP_ERR_ARG and nothing changes. */
static void test_update_refusals(void)
{
    double theta[NP] = {1, 2, 3, 4, 5, 6, 7}, g[NP] = {1, 1, 1, 1, 1, 1, 1}, state[2 * NP];
    double before[NP];
    memcpy(before, theta, sizeof theta);
    bp_optim_config c = bp_optim_defaults(BP_SGD);
    c.clip_norm = 1;
    bp_optimizer o;
    bp_optim_init(&o, &c, NULL, NP, 8, NULL);
    CU_ASSERT_EQUAL(bp_optim_update(&o, theta, g, 0, NP), BP_ERR_ARG);
    c.clip_norm = 0;
    bp_optim_init(&o, &c, NULL, NP, 8, NULL);
    CU_ASSERT_EQUAL(bp_optim_update(&o, theta, g, 5, 3), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_optim_update(&o, theta, g, NP + 1, 0), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_optim_update(&o, theta, NULL, 0, 2), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_optim_update(NULL, theta, g, 0, 2), BP_ERR_ARG);
    c = bp_optim_defaults(BP_ADAM);
    bp_optim_init(&o, &c, NULL, NP, 8, NULL);
    CU_ASSERT_EQUAL(bp_optim_update(&o, theta, g, 0, NP), BP_ERR_ARG);
    CU_ASSERT(memcmp(theta, before, sizeof theta) == 0);
    CU_ASSERT_EQUAL(o.step, 0);
    /* an empty range is a valid update of nothing */
    bp_optim_init(&o, &c, NULL, NP, 8, state);
    CU_ASSERT_EQUAL(bp_optim_update(&o, theta, g, NP, 0), BP_OK);
    CU_ASSERT(memcmp(theta, before, sizeof theta) == 0);
}

/* With a model: per-tensor updates (found by a binary search over the
 * tensors, M_step's case), one update spanning every tensor (the scan),
 * and bp_optim_step give the same bits, a frozen tensor untouched; also
 * when the descriptor lists its tensors out of theta's order, where the
 * search may miss and the scan must answer. */
static void test_update_model(void)
{
    static const bp_tensor_info in_order[] = {
        {"a", 1, {3, 1, 1, 1}, 3, 0, 0, 0}, {"b", 1, {2, 1, 1, 1}, 2, 3, 1, 0},
        {"c", 1, {2, 1, 1, 1}, 2, 5, 0, 0}};
    static const bp_tensor_info shuffled[] = {
        {"c", 1, {2, 1, 1, 1}, 2, 5, 0, 0}, {"a", 1, {3, 1, 1, 1}, 3, 0, 0, 0},
        {"b", 1, {2, 1, 1, 1}, 2, 3, 1, 0}};
    for (int order = 0; order < 2; order++) {
        const bp_tensor_info *params = order ? shuffled : in_order;
        bp_model m;
        memset(&m, 0, sizeof m);
        m.abi_version = BP_ABI_VERSION;
        m.name = "upd";
        m.real_size = 8;
        m.num_params = NP;
        m.num_param_tensors = 3;
        m.params = params;
        bp_optim_config c = bp_optim_defaults(BP_ADAM);
        double st[3][2 * NP], th[3][NP], g[NP];
        bp_optimizer o[3];
        for (int k = 0; k < 3; k++) {
            bp_optim_init(&o[k], &c, &m, NP, 8, st[k]);
            for (int i = 0; i < NP; i++)
                th[k][i] = 0.25 * i - 1;
        }
        for (int t = 0; t < ROUNDS; t++) {
            for (int i = 0; i < NP; i++)
                g[i] = 0.5 - 0.2 * i + 0.1 * t;
            for (int p = 0; p < 3; p++)
                CU_ASSERT_EQUAL(bp_optim_update(&o[0], th[0], g + params[p].offset,
                                                params[p].offset, params[p].size), BP_OK);
            bp_optim_finish(&o[0]);
            CU_ASSERT_EQUAL(bp_optim_update(&o[1], th[1], g, 0, NP), BP_OK);
            bp_optim_finish(&o[1]);
            CU_ASSERT_EQUAL(bp_optim_step(&o[2], th[2], g, NULL, 0), BP_OK);
        }
        CU_ASSERT(memcmp(th[0], th[2], sizeof th[0]) == 0);
        CU_ASSERT(memcmp(th[1], th[2], sizeof th[0]) == 0);
        CU_ASSERT_EQUAL(th[0][3], 0.25 * 3 - 1);      /* b is frozen */
        CU_ASSERT_EQUAL(th[0][4], 0.25 * 4 - 1);
        CU_ASSERT(th[0][0] != -1.0 && th[0][6] != 0.5);
    }
}

/* ---------------------------------------------------------------- M_step */

typedef struct {
    const char *name;
    const char *source;      /* the .net text, or NULL: read from `path` */
    const char *path;        /* a .net file, or with "sh " a command printing one */
    int whole;               /* 0: a model of more than 16 384 updated reals,
                                whose gradients share a pool smaller than
                                theta, each applied as soon as it is final;
                                else a small model's whole gradient, laid
                                out as theta and applied at the end, in this
                                many calls (one per run of parameters that
                                are not frozen) */
} Case;

#define WIDE                                                                            \
    "input x[160]\ninput y[3]\nparam W1[200, 160]\nparam b1[200]\n"                      \
    "param W2[3, 200] = xavier\nparam b2[3]\n"                                            \
    "h = relu(W1 · x + b1)\nz = W2 · h + b2\nloss L = softmax_cross_entropy(z, y)\n"
#define DEFERRED                                                                        \
    "input x[20]\ninput y[3]\nparam W1[130, 20]\nparam b1[130]\nparam W2[130, 130]\n"      \
    "param b2[130]\nparam W3[3, 130] = xavier\nparam b3[3]\nh1 = tanh(W1 · x + b1)\n"       \
    "h2 = relu(W2 · h1 + b2)\nz = W3 · h2 + b3\nloss L = softmax_cross_entropy(z, y)\n"
#define CONV_MOVED                                                                      \
    "input x[1, 12, 12]\ninput y[3]\nparam K[8, 1, 3, 3] = he\nparam c[8]\n"              \
    "param W1[64, 288] = he\nparam b1[64]\nparam W2[3, 64] = xavier\nparam b2[3]\n"       \
    "h = maxpool2d(relu(conv2d(x, K, c, pad=1)), 2)\nh2 = relu(W1 · flatten(h) + b1)\n"   \
    "z = W2 · h2 + b2\nloss L = softmax_cross_entropy(z, y)\n"

static const Case cases[] = {
    {"mlp", "input x[5]\ninput y[3]\nparam W1[8, 5] = xavier\nparam b1[8]\n"
            "param W2[3, 8] = xavier\nparam b2[3]\n"
            "h = tanh(W1 · x + b1)\nz = W2 · h + b2\nloss L = softmax_cross_entropy(z, y)\n",
     NULL, 1},
    {"xor", NULL, "examples/xor/xor.net", 1},
    {"iris", NULL, "examples/iris/iris.net", 1},
    /* W and b serve both layers: their gradients sum two layers' shares,
     * and W's update must wait for the first layer's backward */
    {"shared", "input x[4]\nparam W[4, 4]\nparam b[4]\nparam v[4]\n"
               "h1 = tanh(W · x + b)\nh2 = tanh(W · h1 + b)\nloss L = (dot(v, h2) - 1)^2\n",
     NULL, 1},
    {"cnn", NULL, "examples/digits_cnn/digits_cnn.net", 1},
    /* W1's gradient (200 x 160) is made 96 rows at a time (2 blocks, the
     * last one short), each applied at once */
    {"wide", WIDE, NULL, 0},
    /* W2's gradient (130 x 130) is made after dL/dh1 reads W2 (moved past
     * it), in blocks */
    {"deferred", DEFERRED, NULL, 0},
    /* the same after a convolution: the workspace keeps flatten(h), which
     * the gradient's gemm reads, until after dL/dh has read W1 */
    {"conv_moved", CONV_MOVED, NULL, 0},
    /* long enough to be split into a static function per group of steps,
     * with updates in the groups (40 layers of 24: 24 000 reals), and a
     * small one whose single update follows the last group */
    {"deep", NULL, "sh scripts/deep_net.sh 40 24", 0},
    {"deep_small", NULL, "sh scripts/deep_net.sh 40 4", 1},
    /* a frozen first layer (read by nothing in backward) and a frozen
     * scale the backward reads */
    {"frozen", "input x[3]\ninput y[2]\nparam frozen W1[4, 3]\nparam b1[4]\n"
               "param frozen s\nparam W2[2, 4]\nparam b2[2]\n"
               "h = tanh(W1 · x + b1)\nz = s * (W2 · h) + b2\nloss L = mse(z, y)\n",
     NULL, 2},
    /* dL/db is a, a parameter read by a copy at the end; c is unused (a
     * zero gradient, still decayed and stepped); an input gradient */
    {"leaves", "input x[3]\nparam a[3]\nparam b[3]\nparam c[2]\nwrt x\n"
               "loss L = sum(a * b) + sum(x * a * a) + 0 * sum(c)\n",
     NULL, 1},
    /* an input gradient written straight into grad_inputs by its loop
     * (M_step drops that loop), and w read inside merged loops (its
     * update follows the merged loop's last statement) */
    {"merged", "input x[3]\nwrt x\nparam w[3]\nparam b[3]\n"
               "h = tanh(w * x + b)\nloss L = sum(h * h * x)\n",
     NULL, 1},
    /* a merged loop of backward with a local (t15 = x * h, read by its
     * statements only): M_step emits it as one loop too */
    {"local", "input x[3]\nparam w[3]\nparam b[3]\nh = cos(w * x + b)\n"
              "loss L = sum(h * h * x) + sum(sin(w * x + b) * x)\n",
     NULL, 1},
    /* a gradient that is a constant (dL/dv = 1), filled into the pool */
    {"fill", "param w[2] = 3\nparam v[2] = uniform(0, 1)\nloss L = sum(w * w) + sum(v)\n",
     NULL, 1},
};

/* Occurrences of `what` in text. */
static int count(const char *text, const char *what)
{
    int k = 0;
    for (const char *p = text; p && (p = strstr(p, what)); p += strlen(what))
        k++;
    return k;
}

/* Worst err= of the harness output, -1 when absent; counts the lines. */
static double worst_error(const char *out, int *lines)
{
    double worst = -1;
    *lines = 0;
    for (const char *p = out; p && (p = strstr(p, "err=")); p += 4) {
        double e = strtod(p + 4, NULL);
        if (!(e <= worst))
            worst = e;
        (*lines)++;
    }
    return worst;
}

/* Reals of a `#define M_NUM_PARAMS N` in the header, or -1. */
static long num_params(const char *header)
{
    const char *p = header ? strstr(header, "_NUM_PARAMS ") : NULL;
    return p ? strtol(p + strlen("_NUM_PARAMS "), NULL, 10) : -1;
}

/* The gradient pool's reals, from M_step_workspace_size's comment. */
static long pool_reals(const char *c)
{
    const char *p = c ? strstr(c, "M_workspace_size's, then ") : NULL;
    return p ? strtol(p + strlen("M_workspace_size's, then "), NULL, 10) : -1;
}

static void run_case(const Case *c, const char *precision, double limit)
{
    char *name = test_format("st_%s_%s", c->name, precision);
    char *source = NULL;
    if (c->source)
        source = test_format("%s", c->source);
    else if (!strncmp(c->path, "sh ", 3)) {
        CU_ASSERT_EQUAL(test_run(c->path, &source, NULL), 0);
    } else
        source = test_read_file(c->path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(source);
    char *out_c = test_format("%s/%s.c", TEST_TMP, name);
    char *out_h = test_format("%s/%s.h", TEST_TMP, name);
    char *args = test_format("-o %s --precision=%s --step", out_c, precision);
    char *err = NULL, *cc_err = NULL, *out = NULL, *text = NULL, *header = NULL;
    char *exe = test_tmp_path(name), *cmd = NULL;
    int rc = test_bpgen(name, source, args, NULL, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n[%s] bpgen failed:\n%s\n", name, err ? err : "");
        goto done;
    }
    text = test_read_file(out_c, NULL);
    header = test_read_file(out_h, NULL);
    char *decl = test_format("%s_step(", name);
    CU_ASSERT_PTR_NOT_NULL(header ? strstr(header, decl) : NULL);
    free(decl);
    long P = num_params(header), pool = pool_reals(text);
    CU_ASSERT(P > 0 && pool > 0 && pool <= P);
    if (c->whole) {
        /* one update per run in each body of M_step (its copy for one
         * sample too), after the last gradient */
        CU_ASSERT_EQUAL(pool, P);
        int bodies = count(text, "bp_optim_finish(");
        CU_ASSERT(bodies >= 1);
        CU_ASSERT_EQUAL(count(text, "bp_optim_update("), c->whole * bodies);
    } else {
        CU_ASSERT(pool < P);
    }
    const char *real = strcmp(precision, "float") ? "double" : "float";
    cmd = test_format("%s %s -Werror -Iruntime -DMODEL=%s_model -DSTEP=%s_step "
                      "-DSTEP_WS=%s_step_workspace_size -DREAL=%s -o %s %s "
                      "tests/harness/step.c %s -lm",
                      TEST_CC, TEST_CFLAGS, name, name, name, real, exe, out_c, TEST_LIBBP);
    rc = test_run(cmd, NULL, &cc_err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n[%s] does not compile cleanly:\n%s\n", name, cc_err ? cc_err : "");
        goto done;
    }
    rc = test_run(exe, &out, NULL);
    CU_ASSERT_EQUAL(rc, 0);
    int lines = 0;
    double worst = worst_error(out, &lines);
    CU_ASSERT_EQUAL(lines, 12);   /* 6 kinds, with and without weight decay */
    CU_ASSERT(worst >= 0 && worst <= limit);
    CU_ASSERT_PTR_NOT_NULL(out ? strstr(out, "clip refused=1 unchanged=1\n") : NULL);
    if (!(worst >= 0 && worst <= limit) || lines != 12 || P <= 0 || pool <= 0)
        fprintf(stderr, "\n[%s] (limit %g, %ld params, pool %ld):\n%s\n", name, limit, P, pool,
                out ? out : "");
done:
    free(text);
    free(header);
    free(out);
    free(cc_err);
    free(cmd);
    free(exe);
    free(err);
    free(args);
    free(out_h);
    free(out_c);
    free(source);
    free(name);
}

/* M_step runs backward's own code: the same operations in the same
 * order, so round-off allows differences of a few ulp at most. */
static void test_step_double(void)
{
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        run_case(&cases[k], "double", 1e-12);
}

static void test_step_float(void)
{
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        run_case(&cases[k], "float", 1e-5);
}

/* The position of `what` in text after `from`, or NULL. */
static const char *after(const char *text, const char *from, const char *what)
{
    const char *p = text ? strstr(text, from) : NULL;
    return p ? strstr(p, what) : NULL;
}

/* A model of more than 16 384 updated reals: W2's update comes after
 * the backward of the hidden layer reads W2 (after dL/dW2 is complete),
 * b2's, which nothing reads, right after its gradient. A small model
 * (xor, 9 reals): the whole gradient, laid out as theta, and one update
 * after backward's last step. */
static void test_update_after_last_read(void)
{
    char *out_c = test_format("%s/st_order.c", TEST_TMP);
    char *args = test_format("-o %s --step", out_c);
    CU_ASSERT_EQUAL_FATAL(test_bpgen("st_order", WIDE, args, NULL, NULL), 0);
    char *c = test_read_file(out_c, NULL);
    const char *fn = "float st_order_step(";
    const char *db2 = after(c, fn, "/* b2 is final and read no more: update it from dL/db2 */\n"
                                   "    bp_optim_update(opt, theta, d_b2, st_order_b2_OFFSET, "
                                   "st_order_b2_SIZE);\n");
    const char *read = after(c, fn, "/* st_order.net:8  dL/dh = transpose(W2) · dL/dz */");
    const char *update = after(c, fn, "bp_optim_update(opt, theta, d_W2, st_order_W2_OFFSET, "
                                      "st_order_W2_SIZE);");
    CU_ASSERT(db2 && read && update && db2 < read && read < update);
    free(c);
    free(args);

    char *source = test_read_file("examples/xor/xor.net", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(source);
    args = test_format("-o %s --precision=double --step --dump=lower", out_c);
    char *dump = NULL;
    CU_ASSERT_EQUAL_FATAL(test_bpgen("st_order", source, args, NULL, &dump), 0);
    CU_ASSERT_PTR_NOT_NULL(dump ? strstr(dump, "gradients in a pool of 9 reals (all of them, as "
                                               "theta: a small model updates at the end)\n") : NULL);
    CU_ASSERT_PTR_NOT_NULL(dump ? strstr(dump, "\n  update  W1 .. b2 (4 tensors) [9] from the "
                                               "pool at 0\n") : NULL);
    free(dump);
    c = test_read_file(out_c, NULL);
    fn = "double st_order_step(";
    const char *dw2 = after(c, fn, "    d_w2[j] /= (double)n;\n");
    read = after(c, fn, "w2[j] * h[s * 2 + j]");
    update = after(c, fn, "    bp_optim_update(opt, theta, d_W1, st_order_W1_OFFSET,\n"
                          "        st_order_W1_SIZE + st_order_b1_SIZE + st_order_w2_SIZE + "
                          "st_order_b2_SIZE);\n    bp_optim_finish(opt);\n    return loss;\n}\n");
    CU_ASSERT(dw2 && read && update && dw2 < read && read < update);
    CU_ASSERT_PTR_NOT_NULL(after(c, "size_t st_order_step_workspace_size(int n)\n",
                                 "return st_order_workspace_size(n) + 9 * sizeof(double);"));
    /* without --step, nothing of it */
    free(c);
    free(args);
    args = test_format("-o %s --precision=double", out_c);
    CU_ASSERT_EQUAL_FATAL(test_bpgen("st_order", source, args, NULL, NULL), 0);
    c = test_read_file(out_c, NULL);
    CU_ASSERT_PTR_NULL(c ? strstr(c, "_step") : "no file");
    free(c);
    free(args);
    free(out_c);
    free(source);
}

/* Where the layer before reads W after dL/dW is made, the gradient's
 * gemm moves past that read and runs in blocks: in an MLP, and after a
 * convolution, where the workspace keeps what the gemm reads
 * (flatten(h)) until then. */
static void test_gemm_moved_past_read(void)
{
    char *out_c = test_format("%s/st_moved.c", TEST_TMP);
    char *args = test_format("-o %s --step --dump=lower", out_c);
    char *dump = NULL;
    CU_ASSERT_EQUAL_FATAL(test_bpgen("st_moved", DEFERRED, args, NULL, &dump), 0);
    CU_ASSERT_PTR_NOT_NULL(dump ? strstr(dump, "\n  update  W2 [16900] from the pool at 0, made by "
                                               "the gemm above 112 rows at a time\n") : NULL);
    free(dump);
    char *c = test_read_file(out_c, NULL);
    const char *fn = "float st_moved_step(";
    const char *read = after(c, fn, "/* st_moved.net:10  dL/dh1 = transpose(W2) · t");
    const char *made = after(c, fn, "/* st_moved.net:10  dL/dW2 = batch_mean(outer(");
    const char *blocks = after(c, fn, "    for (size_t k = 0; k < 130; k += 112) {\n"
                                      "        bp_gemm_f(1, 0, (int)(130 - k < 112 ? 130 - k : 112), "
                                      "130, n, 1.0f / (float)n, ");
    CU_ASSERT(read && made && blocks && read < made && made < blocks);
    free(c);
    CU_ASSERT_EQUAL_FATAL(test_bpgen("st_moved", CONV_MOVED, args, NULL, &dump), 0);
    free(dump);
    c = test_read_file(out_c, NULL);
    read = after(c, fn, "= transpose(W1) · t");
    made = after(c, fn, "/* st_moved.net:10  dL/dW1 = batch_mean(outer(");
    blocks = after(c, fn, "/* 48 rows at a time, each block applied to W1 at once");
    CU_ASSERT(read && made && blocks && read < made && made < blocks);
    CU_ASSERT_PTR_NOT_NULL(after(c, "size_t st_moved_step_workspace_size(int n)\n",
                                 "return st_moved_workspace_size(n) + 13824 * sizeof(float);"));
    free(c);
    free(args);
    free(out_c);
}

void register_step(void)
{
    CU_pSuite s = CU_add_suite("step", NULL, NULL);
    CU_add_test(s, "per-tensor updates equal bp_optim_step (float)", test_update_float);
    CU_add_test(s, "per-tensor updates equal bp_optim_step (double)", test_update_double);
    CU_add_test(s, "per-tensor update refusals", test_update_refusals);
    CU_add_test(s, "per-tensor updates with a model, in order or not", test_update_model);
    CU_add_test(s, "M_step equals forward + backward + bp_optim_step (double)", test_step_double);
    CU_add_test(s, "M_step equals forward + backward + bp_optim_step (float)", test_step_float);
    CU_add_test(s, "an update comes after its parameter's last read", test_update_after_last_read);
    CU_add_test(s, "a gradient's gemm moved past its parameter's last read", test_gemm_moved_past_read);
}
