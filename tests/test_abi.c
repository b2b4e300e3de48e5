/* test_abi.c — the runtime ABI version: a descriptor of another ABI is
 * refused by every runtime function that takes a bp_model, with a message
 * naming the model and both versions, and never read further; a generated
 * header refuses to compile against a bp.h of another ABI. */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const bp_tensor_info abi_params[] = {{"w", 1, {2, 1, 1, 1}, 2, 0, 0, 0}};
static const bp_tensor_info abi_inputs[] = {{"x", 1, {2, 1, 1, 1}, 2, 0, 0, 0},
                                            {"y", 0, {1, 1, 1, 1}, 1, 0, 0, 0}};

/* Never called: the ABI check comes before any use of the model. */
static size_t never_ws(int n)
{
    (void)n;
    CU_FAIL("workspace_size called on a model of another ABI");
    return 0;
}

static double never_forward(const void *theta, const void *const inputs[], int n, void *ws)
{
    (void)theta, (void)inputs, (void)n, (void)ws;
    CU_FAIL("forward called on a model of another ABI");
    return 0;
}

static void never_backward(const void *theta, const void *const inputs[], int n, void *ws,
                           void *grad, void *const grad_inputs[])
{
    (void)theta, (void)inputs, (void)n, (void)ws, (void)grad, (void)grad_inputs;
    CU_FAIL("backward called on a model of another ABI");
}

static bp_model abi_model(int abi)
{
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = abi;
    m.name = "iris";
    m.real_size = 8;
    m.num_params = 2;
    m.num_param_tensors = 1;
    m.params = abi_params;
    m.num_inputs = 2;
    m.inputs = abi_inputs;
    m.loss_name = "L";
    m.workspace_size = never_ws;
    m.forward = never_forward;
    m.backward = never_backward;
    return m;
}

#define ABI1_MESSAGE "model 'iris' was generated for runtime ABI 1 but this runtime has ABI 2: " \
                     "regenerate it with this bpgen"

static void test_check(void)
{
    char err[256] = "";
    bp_model ok = abi_model(BP_ABI_VERSION);
    CU_ASSERT_EQUAL(bp_model_check_abi(&ok, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(bp_version(), BP_VERSION_STRING);

    /* ABI 1 code compiled against today's bp.h: designated initialisers
     * leave abi_version 0. */
    bp_model old = abi_model(0);
    CU_ASSERT_EQUAL(bp_model_check_abi(&old, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, ABI1_MESSAGE);

    bp_model newer = abi_model(3);
    CU_ASSERT_EQUAL(bp_model_check_abi(&newer, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, "model 'iris' was generated for runtime ABI 3 but this runtime "
                                "has ABI 2: regenerate it with this bpgen");

    CU_ASSERT_EQUAL(bp_model_check_abi(NULL, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, "no model given");
    CU_ASSERT_EQUAL(bp_model_check_abi(&old, NULL, 0), -1);
}

/* The layout of bp_model in ABI 1 (bpgen 0.1): no version field, the name
 * first. An object file compiled against that bp.h hands the runtime a
 * pointer to this. */
typedef struct {
    const char *name;
    int real_size;
    size_t num_params;
    int num_param_tensors;
    const void *params;
    int num_inputs;
    const void *inputs;
    int num_outputs;
    const void *outputs;
    const char *loss_name;
    void *functions[5];
} abi1_model;

static void test_old_object_file(void)
{
    /* the union keeps every byte the check might read inside the object */
    union {
        abi1_model old;
        bp_model now;
    } u;
    memset(&u, 0, sizeof u);
    u.old.name = "iris";
    u.old.real_size = 4;
    u.old.num_params = 131;
    char err[256] = "";
    CU_ASSERT_EQUAL(bp_model_check_abi(&u.now, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, ABI1_MESSAGE);
}

/* Every entry point refuses the model before touching anything else. */
static void test_every_entry_point(void)
{
    bp_model m = abi_model(0);
    char err[256];
    double theta[2] = {1, 2}, x[2] = {3, 4}, y[1] = {5};
    const void *in[2] = {x, y};

    bp_dataset d = {0};
    CU_ASSERT_EQUAL_FATAL(bp_data_create(&d, 3, 2, 1, 0, err, sizeof err), 0);
    bp_train_config c = bp_train_defaults();
    c.verbose = 0;

    strcpy(err, "");
    CU_ASSERT_EQUAL(bp_train(&m, theta, &d, NULL, &c, NULL, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, ABI1_MESSAGE);
    CU_ASSERT_EQUAL(theta[0], 1);
    strcpy(err, "");
    double loss = 0, acc = 0;
    CU_ASSERT_EQUAL(bp_evaluate(&m, theta, &d, &c, &loss, &acc, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, ABI1_MESSAGE);
    strcpy(err, "");
    int pred[3];
    CU_ASSERT_EQUAL(bp_predict_argmax(&m, theta, &d, &c, pred, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, ABI1_MESSAGE);
    strcpy(err, "");
    CU_ASSERT_EQUAL(bp_batch_check(&m, &d, 0, 1, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, ABI1_MESSAGE);
    size_t need = 0;
    strcpy(err, "");
    CU_ASSERT_EQUAL(bp_train_scratch_size(&m, &c, 3, &need, err, sizeof err), BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(err, ABI1_MESSAGE);
    CU_ASSERT_EQUAL(need, 0);

    char where[256] = "";
    double worst = 0;
    CU_ASSERT_EQUAL(bp_gradcheck(&m, theta, in, 1, 0, &worst, where, sizeof where),
                    BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(where, ABI1_MESSAGE);

    char *path = test_tmp_path("abi_old.bpw");
    remove(path);
    strcpy(err, "");
    CU_ASSERT_EQUAL(bp_weights_save(path, &m, theta, err, sizeof err), -1);
    char *want = test_format("%s: %s", path, ABI1_MESSAGE);
    CU_ASSERT_STRING_EQUAL(err, want);
    FILE *f = fopen(path, "rb");
    CU_ASSERT_PTR_NULL(f);
    if (f)
        fclose(f);
    /* a file written for the same model of today's ABI */
    bp_model now = abi_model(BP_ABI_VERSION);
    CU_ASSERT_EQUAL(bp_weights_save(path, &now, theta, err, sizeof err), 0);
    strcpy(err, "");
    CU_ASSERT_EQUAL(bp_weights_load(path, &m, theta, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, want);
    const char *names[1] = {"w"};
    strcpy(err, "");
    CU_ASSERT_EQUAL(bp_weights_load_tensors(path, &m, theta, names, 1, err, sizeof err), -1);
    CU_ASSERT_STRING_EQUAL(err, want);
    CU_ASSERT_EQUAL(bp_weights_load(path, &now, theta, err, sizeof err), 0);
    remove(path);
    /* safetensors files alike */
    strcpy(err, "");
    CU_ASSERT_EQUAL(bp_safetensors_save(path, &m, theta, err, sizeof err), BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(err, want);
    CU_ASSERT_EQUAL(bp_safetensors_save(path, &now, theta, err, sizeof err), BP_OK);
    strcpy(err, "");
    CU_ASSERT_EQUAL(bp_safetensors_load(path, &m, theta, err, sizeof err), BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(err, want);
    remove(path);
    free(want);
    free(path);

    /* the optimiser: like its other unusable states, no update, BP_ERR_ARG */
    bp_optim_config oc = bp_optim_defaults(BP_SGD);
    bp_optimizer o;
    bp_optim_init(&o, &oc, &m, 2, 8, NULL);
    double g[2] = {1, 1};
    strcpy(err, "");
    CU_ASSERT_EQUAL(bp_optim_step(&o, theta, g, err, sizeof err), BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(err, ABI1_MESSAGE);
    CU_ASSERT_EQUAL(theta[0], 1);
    CU_ASSERT_EQUAL(o.step, 0);
    bp_data_free(&d);
}

/* A generated header compiled against a bp.h of another ABI stops the
 * build with #error, naming the version it was generated for. */
static void test_header_error(void)
{
    char *out = NULL, *errs = NULL;
    char *c_file = test_tmp_path("abi_hdr.c");
    char *args = test_format("-o %s", c_file);
    int rc = test_bpgen("abi_hdr", "input x[2]\nparam w[2]\nloss L = dot(w, x)\n", args, &out,
                        &errs);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\nbpgen failed: %s\n", errs ? errs : "");
    static const char *const fakes[2] = {
        "#define BP_H\n",                          /* ABI 1: no version at all */
        "#define BP_H\n#define BP_ABI_VERSION 3\n", /* a later ABI */
    };
    static const char *const want[2] = {
        "generated by bpgen " BP_VERSION_STRING " for runtime ABI 2, but this bp.h is of ABI 1",
        "generated by bpgen " BP_VERSION_STRING " for runtime ABI 2, but this bp.h has another "
        "ABI (BP_ABI_VERSION)",
    };
    for (int k = 0; rc == 0 && k < 2; k++) {
        char *dir = test_tmp_path(k ? "abi_fake3" : "abi_fake1");
        char *mk = test_format("mkdir -p %s", dir);
        CU_ASSERT_EQUAL(test_run(mk, NULL, NULL), 0);
        char *bp = test_format("%s/bp.h", dir);
        CU_ASSERT_EQUAL(test_write_file(bp, fakes[k]), 0);
        char *cc = test_format("%s -std=c99 -I%s -c -o /dev/null %s", TEST_CC, dir, c_file);
        char *cerr = NULL;
        CU_ASSERT_NOT_EQUAL(test_run(cc, NULL, &cerr), 0);
        CU_ASSERT(cerr != NULL && strstr(cerr, want[k]) != NULL);
        free(cerr);
        free(cc);
        free(bp);
        free(mk);
        free(dir);
    }
    free(out);
    free(errs);
    free(args);
    free(c_file);
}

/* A generated CNN: its descriptor carries the ABI version and the rank-4
 * kernel's four dimensions, and its parameters go through a weights file
 * (format 2) and back. */
static const char cnn_net[] =
    "input x[1, 6, 5]\n"
    "input y[3]\n"
    "param K[4, 1, 3, 2]\n"
    "param b[4]\n"
    "param G[4, 3, 3] = ones\n"
    "param W[3, 36]\n"
    "h = relu(conv2d(x, K, b, stride=2, pad=1)) * G\n"
    "loss L = softmax_cross_entropy(W · flatten(h), y)\n";

static const char cnn_harness[] =
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "#include \"abi_cnn.h\"\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    if (argc != 2)\n"
    "        return 2;\n"
    "    const bp_model *m = &abi_cnn_model;\n"
    "    const bp_tensor_info *k = &m->params[0], *g = &m->params[2];\n"
    "    if (m->abi_version != BP_ABI_VERSION || k->rank != 4 || k->dims[0] != 4 ||\n"
    "        k->dims[1] != 1 || k->dims[2] != 3 || k->dims[3] != 2 || k->size != 24 ||\n"
    "        g->rank != 3 || g->dims[0] != 4 || g->dims[1] != 3 || g->dims[2] != 3 ||\n"
    "        g->dims[3] != 1 || m->inputs[0].rank != 3 || m->inputs[0].dims[3] != 1) {\n"
    "        printf(\"bad descriptor\\n\");\n"
    "        return 1;\n"
    "    }\n"
    "    float theta[abi_cnn_NUM_PARAMS], back[abi_cnn_NUM_PARAMS];\n"
    "    char err[256];\n"
    "    abi_cnn_init(theta, 3);\n"
    "    if (bp_weights_save(argv[1], m, theta, err, sizeof err) ||\n"
    "        bp_weights_load(argv[1], m, back, err, sizeof err)) {\n"
    "        printf(\"%s\\n\", err);\n"
    "        return 1;\n"
    "    }\n"
    "    printf(memcmp(theta, back, sizeof theta) ? \"differs\\n\" : \"ok\\n\");\n"
    "    return 0;\n"
    "}\n";

static void test_generated_cnn(void)
{
    char *c_file = test_tmp_path("abi_cnn.c");
    char *args = test_format("-o %s", c_file);
    char *errs = NULL;
    int rc = test_bpgen("abi_cnn", cnn_net, args, NULL, &errs);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\nbpgen failed: %s\n", errs ? errs : "");
    char *harness = test_tmp_path("abi_cnn_main.c");
    char *exe = test_tmp_path("abi_cnn_run");
    char *weights = test_tmp_path("abi_cnn.weights");
    CU_ASSERT_EQUAL(test_write_file(harness, cnn_harness), 0);
    char *cc = test_format("%s %s -Werror -Iruntime -I%s -o %s %s %s %s -lm", TEST_CC, TEST_CFLAGS,
                           TEST_TMP, exe, c_file, harness, TEST_LIBBP);
    char *cerr = NULL, *out = NULL;
    if (rc == 0) {
        rc = test_run(cc, NULL, &cerr);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            fprintf(stderr, "\n%s:\n%s\n", cc, cerr ? cerr : "");
    }
    if (rc == 0) {
        char *run = test_format("%s %s", exe, weights);
        CU_ASSERT_EQUAL(test_run(run, &out, NULL), 0);
        CU_ASSERT_STRING_EQUAL(out ? out : "", "ok\n");
        free(run);
    }
    remove(weights);
    free(out), free(cerr), free(cc), free(weights), free(exe), free(harness), free(errs);
    free(args), free(c_file);
}

void register_abi(void)
{
    CU_pSuite s = CU_add_suite("abi", NULL, NULL);
    CU_add_test(s, "bp_model_check_abi", test_check);
    CU_add_test(s, "an object file of ABI 1", test_old_object_file);
    CU_add_test(s, "every entry point refuses another ABI", test_every_entry_point);
    CU_add_test(s, "generated header: #error on another ABI", test_header_error);
    CU_add_test(s, "generated CNN: rank-4 descriptor, weights round trip", test_generated_cnn);
}
