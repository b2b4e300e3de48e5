/* test_groups.c — long generated functions split into groups of steps
 * (lower_steps.c's group_steps, emit/frames.c), so that compiling the
 * generated C takes time linear in the model's depth.
 *
 * What is checked: a deep model's forward and backward are cut into
 * static functions named after the first value each computes, called
 * once each, in order, by the public function; --dump=lower shows the
 * cuts; the longest C function stays the same size however deep the
 * model (what keeps the C compiler linear); small models are not split.
 * That the split code computes the right gradients is checked in
 * test_gradients.c ("a model split into groups"). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* scripts/deep_net.sh's model of `layers` tanh layers of `width` units,
 * compiled to TEST_TMP/name.c; returns the C text (NULL on failure) and,
 * when dump is not NULL, bpgen's --dump=lower. */
static char *deep_c(const char *name, int layers, int width, char **dump)
{
    char *net = test_format("%s/%s.net", TEST_TMP, name);
    char *cmd = test_format("sh scripts/deep_net.sh %d %d > %s", layers, width, net);
    char *text = NULL;
    CU_ASSERT_EQUAL(test_run(cmd, NULL, NULL), 0);
    char *gen = test_format("%s %s -o %s/%s.c --dump=lower", TEST_BPGEN, net, TEST_TMP, name);
    int rc = test_run(gen, NULL, dump);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == 0) {
        char *path = test_format("%s/%s.c", TEST_TMP, name);
        text = test_read_file(path, NULL);
        free(path);
    }
    free(gen);
    free(cmd);
    free(net);
    return text;
}

static int count(const char *text, const char *what)
{
    int k = 0;
    for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
        k++;
    return k;
}

/* Lines of the longest function definition (from a line `{` to a line
 * `}`) but init's, a list of one call per parameter. */
static int longest_function(const char *text)
{
    int longest = 0, lines = -1;
    const char *signature = text;
    for (const char *p = text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
        if (*p != ' ' && *p != '{' && *p != '}' && *p != '\n')
            signature = p;
        if (!strncmp(p, "{\n", 2) && !strstr(signature, "_init(float *theta"))
            lines = 0;
        else if (!strncmp(p, "}\n", 2) && lines >= 0) {
            if (lines > longest)
                longest = lines;
            lines = -1;
        } else if (lines >= 0)
            lines++;
    }
    return longest;
}

static void test_deep_model_split(void)
{
    char *dump = NULL;
    char *c = deep_c("grp_deep", 40, 4, &dump);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    /* forward: 40 layers of two steps (the gemm with its bias, tanh),
     * the loss's two, and the return: cut every 16 steps after a layer */
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, " group: steps 1 to 16, a function named after %"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, " group: steps 17 to 32, a function named after %"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, ", in the caller\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        c, "/* forward, steps 1 to 16 of 84: h1 to h8. */\n"
           "static grp_deep_NOINLINE void grp_deep_forward_h1(const float *restrict theta, "
           "const float *const inputs[], int n, void *restrict ws)\n{\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c, "#if defined(__GNUC__)\n"
                                     "#define grp_deep_NOINLINE __attribute__((noinline))\n"));
    /* forward calls its groups in order, then returns the loss itself */
    const char *fwd = strstr(c, "\nfloat grp_deep_forward(");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fwd);
    const char *at = fwd;
    for (int first = 1; first <= 33; first += 8) {
        char *call = test_format("    grp_deep_forward_h%d(theta, inputs, n, ws);\n", first);
        const char *next = strstr(at, call);
        CU_ASSERT_PTR_NOT_NULL(next);
        if (next)
            at = next;
        free(call);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(at, "return (float)(acc / n);"));
    /* a split function gets no copy for one sample (lower_one_sample);
     * outputs_after_forward, one group, does */
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "one_sample: outputs after forward\n"));
    CU_ASSERT_PTR_NULL(strstr(c, "grp_deep_forward_one("));
    CU_ASSERT_PTR_NULL(strstr(c, "grp_deep_backward_one("));
    /* every group function of each public function is defined once and
     * called once */
    static const char *const fns[] = {"forward", "backward", "predict"};
    int groups = 0;
    for (int f = 0; f < 3; f++) {
        char *def = test_format("static grp_deep_NOINLINE void grp_deep_%s_", fns[f]);
        for (const char *p = c; (p = strstr(p, def)); p += strlen(def)) {
            size_t len = strcspn(p + strlen(def), "(");
            char *call = test_format("    grp_deep_%s_%.*s(theta, inputs, n, ws", fns[f], (int)len,
                                     p + strlen(def));
            CU_ASSERT_EQUAL(count(c, call), 1);
            free(call);
            groups++;
        }
        free(def);
    }
    int dumped = count(dump, " group: ") - count(dump, ", in the caller");
    CU_ASSERT_EQUAL(groups, dumped);
    CU_ASSERT(groups >= 15);
    if (groups != dumped || groups < 15)
        fprintf(stderr, "\n%d group functions, %d in the dump\n", groups, dumped);
    free(c);
    free(dump);
}

/* Four times as deep, the longest function grows by the public ones'
 * calls only (one line a group), not by the layers: the C compiler's
 * superlinear work is per function. */
static void test_longest_function_bounded(void)
{
    char *shallow = deep_c("grp_40", 40, 4, NULL);
    char *deep = deep_c("grp_160", 160, 4, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(shallow);
    CU_ASSERT_PTR_NOT_NULL_FATAL(deep);
    int a = longest_function(shallow), b = longest_function(deep);
    CU_ASSERT(a > 50);
    CU_ASSERT(b <= a + 60);
    if (!(b <= a + 60))
        fprintf(stderr, "\nlongest function: %d lines at 40 layers, %d at 160\n", a, b);
    free(shallow);
    free(deep);
}

/* A first layer named `any` would name forward's first group like the
 * untyped wrapper M_forward_any: the group is numbered instead, and the
 * file compiles warning-free. */
static void test_name_any(void)
{
    char *net = test_format("%s/grp_any.net", TEST_TMP);
    char *c = test_format("%s/grp_any.c", TEST_TMP);
    char *cmd = test_format("sh scripts/deep_net.sh 20 2 | sed 's/h1 /any /; s/(W2 · h1 /(W2 · any /'"
                            " > %s && %s %s -o %s && %s %s -Werror -Iruntime -c -o %s.o %s",
                            net, TEST_BPGEN, net, c, TEST_CC, TEST_CFLAGS, c, c);
    char *err = NULL;
    CU_ASSERT_EQUAL(test_run(cmd, NULL, &err), 0);
    char *text = test_read_file(c, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "bp_vtanhf(2 * (size_t)n, t"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, ", any);"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "static grp_any_NOINLINE void grp_any_forward_part1("));
    CU_ASSERT_EQUAL(count(text, "grp_any_forward_any("), 1);
    free(text);
    free(err);
    free(cmd);
    free(c);
    free(net);
}

/* The examples are not split: their functions are printed as they were,
 * each also as a copy for one sample (M_forward_one ...), which the public
 * function calls when n is 1. */
static void test_small_models_whole(void)
{
    static const char *const models[] = {"iris", "digits_cnn", "fashion", "xor"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char *out = test_format("%s/grp_%s.c", TEST_TMP, models[i]);
        char *cmd = test_format("%s examples/%s/%s.net -o %s", TEST_BPGEN, models[i], models[i],
                                out);
        CU_ASSERT_EQUAL(test_run(cmd, NULL, NULL), 0);
        char *text = test_read_file(out, NULL);
        CU_ASSERT_PTR_NOT_NULL(text);
        CU_ASSERT_PTR_NULL(text ? strstr(text, "NOINLINE") : "");
        char *call = test_format("    if (n == 1)   /* the same steps, n a constant: below */\n"
                                 "        return %s_forward_one(theta, inputs, ws);\n", models[i]);
        char *copy = test_format("\nstatic float %s_forward_one(const float *restrict theta, "
                                 "const float *const inputs[], void *restrict ws)\n{\n"
                                 "    const int n = 1;\n", models[i]);
        CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, call) : NULL);
        CU_ASSERT_PTR_NOT_NULL(text ? strstr(text, copy) : NULL);
        free(copy);
        free(call);
        free(text);
        free(cmd);
        free(out);
    }
}

void register_groups(void)
{
    CU_pSuite s = CU_add_suite("groups", NULL, NULL);
    CU_add_test(s, "a deep model split into functions of a few layers", test_deep_model_split);
    CU_add_test(s, "the longest function does not grow with depth", test_longest_function_bounded);
    CU_add_test(s, "a value named any", test_name_any);
    CU_add_test(s, "small models are not split", test_small_models_whole);
}
