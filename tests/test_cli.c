/* test_cli.c — the command line: options, exit statuses, and the promise
 * that a failed run writes nothing. */
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "support.h"

static const char *good = "input x[2]\nparam w[2]\nloss L = sum(w * x)\n";

static int bpgen(const char *args, char **out, char **err)
{
    char *cmd = test_format("%s %s", TEST_BPGEN, args);
    int rc = test_run(cmd, out, err);
    free(cmd);
    return rc;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_help_and_version(void)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(bpgen("--help", &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: bpgen"));
    free(out);
    CU_ASSERT_EQUAL(bpgen("-h", &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "--derivatives"));
    free(out);
    CU_ASSERT_EQUAL(bpgen("--version", &out, NULL), 0);
    CU_ASSERT_EQUAL(strncmp(out, "bpgen ", 6), 0);
    free(out);
}

static void test_usage_errors_exit_2(void)
{
    char *err = NULL;
    CU_ASSERT_EQUAL(bpgen("", NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no model file given"));
    free(err);

    char *missing = test_tmp_path("does-not-exist.net");
    char *args = test_format("%s --check", missing);
    CU_ASSERT_EQUAL(bpgen(args, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open"));
    free(err);
    free(args);
    free(missing);

    args = test_format("%s --check", TEST_TMP);
    CU_ASSERT_EQUAL(bpgen(args, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "is a directory"));
    free(err);
    free(args);

    CU_ASSERT_EQUAL(test_bpgen("cli_opt", good, "--frobnicate", NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown option '--frobnicate'"));
    free(err);
    CU_ASSERT_EQUAL(test_bpgen("cli_opt", good, "--precision=half -o x.c", NULL, &err), 2);
    free(err);
    CU_ASSERT_EQUAL(test_bpgen("cli_opt", good, "", NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no output file"));
    free(err);
    /* every --dump name must be a pass that has a dump */
    CU_ASSERT_EQUAL(test_bpgen("cli_opt", good, "--dump=plan -o x.c", NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown pass 'plan' in --dump (use graph, diff, "
                                       "simplify or lower)"));
    free(err);
    CU_ASSERT_EQUAL(test_bpgen("cli_opt", good, "--dump=graph,,diff -o x.c", NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown pass ''"));
    free(err);
}

/* --time-passes names every pass that ran, in order, with the graph's
 * size after the passes that grow it; the output is the same as without. */
static void test_time_passes(void)
{
    const char *model = "input x\nparam w\nloss L = (w * x - 1)^2\n";
    char *err = NULL;
    char *args = test_format("--time-passes -o %s/cli_time.c", TEST_TMP);
    CU_ASSERT_EQUAL(test_bpgen("cli_time", model, args, NULL, &err), 0);
    free(args);
    static const char *const passes[] = {"read", "parse", "check", "graph", "graph_check",
                                         "diff", "graph_check", "simplify", "graph_check",
                                         "lower", "plan_check", "emit"};
    const char *at = err ? err : "";
    for (size_t i = 0; i < sizeof passes / sizeof passes[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "# time %s ", passes[i]);
        const char *found = strstr(at, line);
        CU_ASSERT_PTR_NOT_NULL(found);
        if (!found) {
            fprintf(stderr, "\n  no '%s' after the earlier passes in:\n%s\n", line, err);
            break;
        }
        at = found + strlen(line);
        double seconds = -1;
        CU_ASSERT_EQUAL(sscanf(at, "%lf s", &seconds), 1);
        CU_ASSERT(seconds >= 0 && seconds < 60);
    }
    CU_ASSERT_PTR_NOT_NULL(err ? strstr(err, " s (") : NULL);   /* a node count */
    free(err);
    /* --derivatives stops after print */
    CU_ASSERT_EQUAL(test_bpgen("cli_time", model, "--time-passes --derivatives", NULL, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(err ? strstr(err, "# time print ") : NULL);
    CU_ASSERT_PTR_NULL(err ? strstr(err, "# time lower ") : "");
    free(err);
}

/* One parameter pair shared by 5 000 layers: the gradient of w is a sum
 * of 5 000 terms, written once, every term present. (Its text, the
 * chain-rule comment and the derivation's list of uses were each rebuilt
 * per term, quadratic: 20 000 such layers took 23 GB.) Not timed;
 * bench/README.md has the figures. */
static void test_shared_parameter_model_compiles(void)
{
    enum { LAYERS = 5000 };
    size_t cap = 48 * (size_t)LAYERS + 64, len = 0;
    char *src = malloc(cap);
    len += (size_t)snprintf(src + len, cap - len, "model shared\ninput x\nparam w\nparam b\n"
                            "h0 = x\n");
    for (int i = 1; i <= LAYERS; i++)
        len += (size_t)snprintf(src + len, cap - len, "h%d = tanh(w * h%d + b)\n", i, i - 1);
    snprintf(src + len, cap - len, "loss L = h%d^2\n", LAYERS);
    char *out_c = test_format("%s/shared.c", TEST_TMP);
    char *args = test_format("-o %s", out_c);
    char *err = NULL;
    CU_ASSERT_EQUAL(test_bpgen("shared", src, args, NULL, &err), 0);
    CU_ASSERT_STRING_EQUAL(err ? err : "", "");
    char *c = test_read_file(out_c, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    const char *at = strstr(c, "d_w[0] = ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    int terms = 1;
    for (const char *p = at; *p && *p != ';'; p++)
        terms += p[0] == ' ' && p[1] == '+' && p[2] == ' ';
    CU_ASSERT_EQUAL(terms, LAYERS);
    free(c);
    free(err);
    free(args);
    free(out_c);
    free(src);
}

/* A model of 20 000 statements (a chain of 6 665 scalar layers, as
 * bench/compile generates, and an output) compiles, with every gradient in the file. Not
 * timed here: `make bench-compile` measures how compile time grows. */
static void test_large_model_compiles(void)
{
    enum { LAYERS = 6665 };
    size_t cap = 64 * (size_t)LAYERS + 64, len = 0;
    char *src = malloc(cap);
    len += (size_t)snprintf(src + len, cap - len, "model big\ninput x\ninput t\n");
    for (int i = 1; i <= LAYERS; i++) {
        char prev[16];
        snprintf(prev, sizeof prev, i == 1 ? "x" : "h%d", i - 1);
        len += (size_t)snprintf(src + len, cap - len, "param w%d\nparam b%d\n"
                                "h%d = tanh(w%d * %s + b%d)\n", i, i, i, i, prev, i);
    }
    snprintf(src + len, cap - len, "output h%d\nloss L = (h%d - t)^2\n", LAYERS, LAYERS);
    int statements = 0;
    for (const char *p = src; *p; p++)
        statements += *p == '\n';
    CU_ASSERT_EQUAL(statements, 20000);

    char *out_c = test_format("%s/big.c", TEST_TMP);
    char *out_h = test_format("%s/big.h", TEST_TMP);
    char *args = test_format("-o %s", out_c);
    char *err = NULL;
    CU_ASSERT_EQUAL(test_bpgen("big", src, args, NULL, &err), 0);
    CU_ASSERT_STRING_EQUAL(err ? err : "", "");
    char *c = test_read_file(out_c, NULL), *h = test_read_file(out_h, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    char *count = test_format("#define big_NUM_PARAMS %d\n", 2 * LAYERS);
    CU_ASSERT_PTR_NOT_NULL(strstr(h, count));
    /* the first and the last layer's gradients, each computed once (its
     * comment names the statement, then the equation), the last layer's
     * again in M_forward_backward's one loop of forward and backward */
    static const char *const grads[] = {"  dL/dw1 = ", "  dL/db1 = ", "  dL/dw6665 = ",
                                        "  dL/db6665 = "};
    for (size_t i = 0; i < sizeof grads / sizeof grads[0]; i++) {
        int count = 0;
        for (const char *at = c; (at = strstr(at, grads[i])); at++)
            count++;
        CU_ASSERT_EQUAL(count, i < 2 ? 1 : 2);
    }
    free(count);
    free(c);
    free(h);
    free(err);
    free(args);
    free(out_h);
    free(out_c);
    free(src);
}

/* tests/dump/NAME.net: `bpgen --dump=lower` prints NAME.expect exactly on
 * stderr: the plan of each function, its fusions and every buffer's place. */
static void test_golden_plans(void)
{
    static const char *const models[] = {"mlp", "cnn", "mixed"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char *args = test_format("tests/dump/%s.net -o %s/dump_%s.c --dump=lower", models[i],
                                 TEST_TMP, models[i]);
        char *path = test_format("tests/dump/%s.expect", models[i]);
        char *want = test_read_file(path, NULL), *err = NULL;
        CU_ASSERT_EQUAL(bpgen(args, NULL, &err), 0);
        CU_ASSERT_PTR_NOT_NULL(want);
        CU_ASSERT_STRING_EQUAL(err ? err : "", want ? want : "?");
        if (!err || !want || strcmp(err, want))
            fprintf(stderr, "\n[%s] --dump=lower printed:\n%s\n", models[i], err ? err : "");
        free(err);
        free(want);
        free(path);
        free(args);
    }
}

static void test_check_writes_nothing(void)
{
    char *out_c = test_tmp_path("cli_check_out.c");
    remove(out_c);
    char *args = test_format("--check -o %s", out_c);
    CU_ASSERT_EQUAL(test_bpgen("cli_check", good, args, NULL, NULL), 0);
    CU_ASSERT_FALSE(exists(out_c));
    free(args);
    free(out_c);
}

static void test_writes_c_and_header(void)
{
    char *out_c = test_tmp_path("cli_pair.c");
    char *out_h = test_tmp_path("cli_pair.h");
    remove(out_c);
    remove(out_h);
    char *args = test_format("-o %s", out_c);
    CU_ASSERT_EQUAL(test_bpgen("my-model", good, args, NULL, NULL), 0);
    char *c = test_read_file(out_c, NULL);
    char *h = test_read_file(out_h, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    /* the default model name comes from the file name */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "my_model_forward"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "my_model_NUM_PARAMS"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "#include \"cli_pair.h\""));
    /* the files get the permissions of any new file, not mkstemp's 0600 */
    mode_t mask = umask(0);
    umask(mask);
    struct stat st;
    CU_ASSERT_EQUAL(stat(out_c, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0666 & ~mask);
    CU_ASSERT_EQUAL(stat(out_h, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0666 & ~mask);
    free(c);
    free(h);
    free(args);
    free(out_c);
    free(out_h);
}

static void test_failure_keeps_existing_output(void)
{
    char *out_c = test_tmp_path("cli_keep.c");
    char *out_h = test_tmp_path("cli_keep.h");
    test_write_file(out_c, "/* precious */\n");
    test_write_file(out_h, "/* precious header */\n");
    char *args = test_format("-o %s", out_c);
    char *err = NULL;
    CU_ASSERT_EQUAL(test_bpgen("cli_bad", "input x[2]\nloss L = x + y\n", args, NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "error: "));
    char *c = test_read_file(out_c, NULL);
    char *h = test_read_file(out_h, NULL);
    CU_ASSERT_STRING_EQUAL(c, "/* precious */\n");
    CU_ASSERT_STRING_EQUAL(h, "/* precious header */\n");
    /* and no temporary file is left behind */
    char *leftovers = NULL;
    char *ls = test_format("ls %s | grep -c 'cli_keep.*tmp' || true", TEST_TMP);
    test_run(ls, &leftovers, NULL);
    CU_ASSERT_EQUAL(atoi(leftovers), 0);
    free(leftovers);
    free(ls);
    free(c);
    free(h);
    free(err);
    free(args);
    free(out_c);
    free(out_h);
}

static void test_unwritable_output_is_an_io_error(void)
{
    /* a folder as the output: an error, and no stray header beside it */
    char *dir = test_tmp_path("cli_outdir");
    mkdir(dir, 0777);
    char *dir_args = test_format("-o %s", dir);
    char *dir_err = NULL;
    CU_ASSERT_EQUAL(test_bpgen("cli_outdir_model", good, dir_args, NULL, &dir_err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(dir_err, "is a directory"));
    char *stray = test_format("%s.h", dir);
    CU_ASSERT_FALSE(exists(stray));
    free(stray);
    free(dir_err);
    free(dir_args);
    free(dir);

    /* -o naming the model itself would destroy it */
    char *model = test_tmp_path("cli_self.net");
    char *self_args = test_format("-o %s", model);
    char *self_err = NULL;
    CU_ASSERT_EQUAL(test_bpgen("cli_self", good, self_args, NULL, &self_err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(self_err, "would overwrite the model"));
    char *kept = test_read_file(model, NULL);
    CU_ASSERT_STRING_EQUAL(kept, good);
    free(kept);
    free(self_err);
    free(self_args);
    free(model);

    char *args = test_format("-o %s/no/such/folder/out.c", TEST_TMP);
    char *err = NULL;
    CU_ASSERT_EQUAL(test_bpgen("cli_unwritable", good, args, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot write"));
    free(err);
    free(args);
}

static void test_model_errors_exit_1_with_location(void)
{
    char *err = NULL;
    CU_ASSERT_EQUAL(test_bpgen("cli_err", "input x[16]\ninput b[3]\nloss L = sum(x + b)\n",
                               "--check", NULL, &err),
                    1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cli_err.net:3:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "error: cannot add [16] and [3]"));
    free(err);

    /* a binary file is an error in the model, not a crash */
    char *path = test_tmp_path("cli_binary.net");
    FILE *f = fopen(path, "wb");
    fwrite("input x\0\xff\xfe", 1, 10, f);
    fclose(f);
    char *args = test_format("%s --check", path);
    CU_ASSERT_EQUAL(bpgen(args, NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "error:"));
    free(err);
    free(args);
    free(path);
}

static void test_names_that_clash_with_the_runtime(void)
{
    char *err = NULL;
    CU_ASSERT_EQUAL(test_bpgen("cli_bp", "model bp\ninput x\nloss L = x * x\n", "--check",
                               NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cli_bp.net:1:7: error: the model name 'bp' clashes"));
    free(err);
    CU_ASSERT_EQUAL(test_bpgen("bp_optim", "input x\nloss L = x * x\n", "--check", NULL, &err), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "name it with 'model NAME'"));
    free(err);
    char *args = test_format("-o %s/bp.c", TEST_TMP);
    CU_ASSERT_EQUAL(test_bpgen("cli_bp_out", good, args, NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "hide the runtime's bp.h"));
    free(err);
    free(args);
}

void register_cli(void)
{
    CU_pSuite s = CU_add_suite("cli", NULL, NULL);
    CU_add_test(s, "help and version", test_help_and_version);
    CU_add_test(s, "usage errors exit 2", test_usage_errors_exit_2);
    CU_add_test(s, "--check writes nothing", test_check_writes_nothing);
    CU_add_test(s, "writes OUT.c and OUT.h", test_writes_c_and_header);
    CU_add_test(s, "a failure keeps the existing output", test_failure_keeps_existing_output);
    CU_add_test(s, "an unwritable output is an I/O error", test_unwritable_output_is_an_io_error);
    CU_add_test(s, "model errors exit 1 with a location", test_model_errors_exit_1_with_location);
    CU_add_test(s, "names that clash with the runtime", test_names_that_clash_with_the_runtime);
    CU_add_test(s, "--dump=lower prints the plan", test_golden_plans);
    CU_add_test(s, "--time-passes times every pass", test_time_passes);
    CU_add_test(s, "a 20 000-statement model compiles", test_large_model_compiles);
    CU_add_test(s, "a parameter shared by 5 000 layers compiles", test_shared_parameter_model_compiles);
}
