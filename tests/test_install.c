/* test_install.c — `make install` as another project sees it: installs
 * into a temporary prefix, then builds and runs a small application with
 * pkg-config and cc, and with CMake's find_package(bpgen) and
 * bpgen_add_model; edits the model and checks that the CMake build
 * compiles it again. Also the manual page: it renders without warnings and
 * documents every option. */
#define _XOPEN_SOURCE 700   /* realpath */
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bp.h"
#include "support.h"

static char *prefix;     /* absolute: TEST_TMP/install/prefix */
static char *work;       /* absolute: TEST_TMP/install */
static bool installed;

/* The model has a `model` statement, so its header is tiny.h although the
 * file is my-net.net. */
static const char *model_v1 =
    "# a dot product, small enough to check by hand\n"
    "model tiny\n"
    "input x[2]\n"
    "param w[2] = 0.5\n"
    "loss L = sum(w * x)\n";
static const char *model_v2 =
    "model tiny\n"
    "input x[2]\n"
    "param w[2] = 0.25\n"
    "loss L = sum(w * x) + 1\n";

/* Works in either precision, through the bp_model descriptor. */
static const char *app_c =
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include \"tiny.h\"\n"
    "\n"
    "int main(void)\n"
    "{\n"
    "    const bp_model *m = &tiny_model;\n"
    "    double theta[tiny_NUM_PARAMS], grad[tiny_NUM_PARAMS], x[2];\n"
    "    void *ws = malloc(m->workspace_size(1));\n"
    "    if (!ws) return 1;\n"
    "    m->init(theta, 1);\n"
    "    if (m->real_size == 4) { ((float *)x)[0] = 1; ((float *)x)[1] = 2; }\n"
    "    else { x[0] = 1; x[1] = 2; }\n"
    "    const void *inputs[1] = {x};\n"
    "    double loss = m->forward(theta, inputs, 1, ws);\n"
    "    m->backward(theta, inputs, 1, ws, grad, NULL);\n"
    "    double g0 = m->real_size == 4 ? ((float *)grad)[0] : grad[0];\n"
    "    double g1 = m->real_size == 4 ? ((float *)grad)[1] : grad[1];\n"
    "    printf(\"%s real_size %d loss %g grad %g %g runtime %s\\n\", m->name,\n"
    "           m->real_size, loss, g0, g1, bp_version());\n"
    "    free(ws);\n"
    "    return 0;\n"
    "}\n";

static const char *cmake_lists =
    "cmake_minimum_required(VERSION 3.13)\n"
    "project(tiny_app C)\n"
    "find_package(bpgen 0.2 REQUIRED)\n"
    "add_executable(app app.c)\n"
    "bpgen_add_model(app nets/my-net.net PRECISION double)\n";

static int run_in(const char *dir, const char *cmd, char **out, char **err)
{
    char *full = test_format("cd '%s' && %s", dir, cmd);
    int rc = test_run(full, out, err);
    free(full);
    return rc;
}

static int setup(void)
{
    char *tmp = test_tmp_path("install");
    char *cmd = test_format("rm -rf '%s' && mkdir -p '%s/prefix' '%s/app/nets'", tmp, tmp, tmp);
    int rc = test_run(cmd, NULL, NULL);
    free(cmd);
    if (rc != 0)
        return 1;
    work = realpath(tmp, NULL);
    free(tmp);
    if (!work)
        return 1;
    prefix = test_format("%s/prefix", work);
    return 0;
}

static int teardown(void)
{
    free(prefix);
    free(work);
    return 0;
}

static bool is_file(const char *dir, const char *name)
{
    char *path = test_format("%s/%s", dir, name);
    struct stat st;
    bool ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);
    free(path);
    return ok;
}

static void test_make_install_puts_every_file(void)
{
    char *err = NULL;
    char *cmd = test_format("%s install PREFIX='%s' >/dev/null", TEST_MAKE, prefix);
    int rc = test_run(cmd, NULL, &err);
    free(cmd);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc)
        fprintf(stderr, "make install: %s\n", err);
    free(err);
    const char *files[] = {
        "bin/bpgen", "include/bp.h", "lib/libbp.a", "lib/pkgconfig/bpgen.pc",
        "lib/cmake/bpgen/bpgenConfig.cmake",
        "lib/cmake/bpgen/bpgenConfigVersion.cmake", "share/man/man1/bpgen.1",
    };
    bool all = true;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        CU_ASSERT(is_file(prefix, files[i]));
        all = all && is_file(prefix, files[i]);
    }
    installed = all;

    /* DESTDIR stages the same tree, while bpgen.pc names PREFIX */
    char *stage = test_format("%s/stage", work);
    cmd = test_format("%s install PREFIX=/opt/bpgen DESTDIR='%s' >/dev/null", TEST_MAKE, stage);
    CU_ASSERT_EQUAL(test_run(cmd, NULL, NULL), 0);
    free(cmd);
    char *staged = test_format("%s/opt/bpgen", stage);
    CU_ASSERT(is_file(staged, "lib/cmake/bpgen/bpgenConfig.cmake"));
    char *pc_path = test_format("%s/lib/pkgconfig/bpgen.pc", staged);
    char *pc = test_read_file(pc_path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pc);
    CU_ASSERT_PTR_NOT_NULL(strstr(pc, "prefix=/opt/bpgen\n"));
    CU_ASSERT_PTR_NULL(strstr(pc, stage));
    free(pc);
    free(pc_path);
    free(staged);
    free(stage);
}

/* The installed files carry bp.h's version. */
static void test_versions_agree(void)
{
    CU_ASSERT_FATAL(installed);
    char *out = NULL;
    char *cmd = test_format("PKG_CONFIG_PATH='%s/lib/pkgconfig' pkg-config --modversion bpgen", prefix);
    CU_ASSERT_EQUAL(test_run(cmd, &out, NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, BP_VERSION_STRING "\n");
    free(out);
    free(cmd);
    cmd = test_format("'%s/bin/bpgen' --version", prefix);
    CU_ASSERT_EQUAL(test_run(cmd, &out, NULL), 0);
    char *want = test_format("bpgen %s (runtime ABI %d)\n", BP_VERSION_STRING, BP_ABI_VERSION);
    CU_ASSERT_STRING_EQUAL(out, want);
    free(want);
    free(out);
    free(cmd);
    char *path = test_format("%s/lib/cmake/bpgen/bpgenConfigVersion.cmake", prefix);
    char *text = test_read_file(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "set(PACKAGE_VERSION \"" BP_VERSION_STRING "\")"));
    free(text);
    free(path);
}

static void test_pkg_config_build(void)
{
    CU_ASSERT_FATAL(installed);
    char *dir = test_format("%s/pc", work);
    char *cmd = test_format("mkdir -p '%s'", dir);
    test_run(cmd, NULL, NULL);
    free(cmd);
    char *net = test_format("%s/my-net.net", dir);
    char *app = test_format("%s/app.c", dir);
    CU_ASSERT_EQUAL(test_write_file(net, model_v1), 0);
    CU_ASSERT_EQUAL(test_write_file(app, app_c), 0);

    /* --libs must carry -lm: nothing else is added to the link line */
    char *out = NULL, *err = NULL;
    cmd = test_format("export PKG_CONFIG_PATH='%s/lib/pkgconfig' && "
                      "\"$(pkg-config --variable=bpgen bpgen)\" my-net.net -o tiny.c && "
                      "%s %s $(pkg-config --cflags bpgen) tiny.c app.c "
                      "$(pkg-config --libs bpgen) -o app && ./app",
                      prefix, TEST_CC, TEST_CFLAGS);
    int rc = run_in(dir, cmd, &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc)
        fprintf(stderr, "pkg-config build: %s\n", err);
    CU_ASSERT_STRING_EQUAL(out, "tiny real_size 4 loss 1.5 grad 1 2 runtime " BP_VERSION_STRING "\n");
    free(out);
    free(err);
    free(cmd);

    cmd = test_format("PKG_CONFIG_PATH='%s/lib/pkgconfig' pkg-config --libs bpgen", prefix);
    CU_ASSERT_EQUAL(test_run(cmd, &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "-lm"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "-lbp"));
    free(out);
    free(cmd);
    free(net);
    free(app);
    free(dir);
}

static void test_cmake_build_and_regenerate(void)
{
    CU_ASSERT_FATAL(installed);
    char *src = test_format("%s/app", work);
    char *bin = test_format("%s/app-build", work);
    char *net = test_format("%s/nets/my-net.net", src);
    char *app = test_format("%s/app.c", src);
    char *lists = test_format("%s/CMakeLists.txt", src);
    CU_ASSERT_EQUAL(test_write_file(net, model_v1), 0);
    CU_ASSERT_EQUAL(test_write_file(app, app_c), 0);
    CU_ASSERT_EQUAL(test_write_file(lists, cmake_lists), 0);

    /* the sanitizers, when the runtime was built with them, must link too */
    char *out = NULL, *err = NULL;
    char *configure = test_format(
        "cmake -S '%s' -B '%s' -DCMAKE_PREFIX_PATH='%s' -DCMAKE_C_COMPILER='%s' "
        "-DCMAKE_C_FLAGS='%s' -DCMAKE_EXE_LINKER_FLAGS='%s' >/dev/null",
        src, bin, prefix, TEST_CC, TEST_SANFLAGS, TEST_SANFLAGS);
    int rc = test_run(configure, NULL, &err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    free(err);
    char *build = test_format("cmake --build '%s' >/dev/null && '%s/app'", bin, bin);
    rc = test_run(build, &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc)
        fprintf(stderr, "cmake build: %s\n", err);
    CU_ASSERT_STRING_EQUAL(out, "tiny real_size 8 loss 1.5 grad 1 2 runtime " BP_VERSION_STRING "\n");
    free(out);
    free(err);

    /* The header is named after `model tiny`, in the target's own folder */
    CU_ASSERT(is_file(bin, "bpgen/app/tiny.h"));
    CU_ASSERT(is_file(bin, "bpgen/app/tiny.c"));

    /* An edit of the model alone makes `cmake --build` compile it again.
     * (A second apart, so that no file system's timestamps can miss it.) */
    sleep(1);
    CU_ASSERT_EQUAL(test_write_file(net, model_v2), 0);
    rc = test_run(build, &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(out, "tiny real_size 8 loss 1.75 grad 1 2 runtime " BP_VERSION_STRING "\n");
    free(out);
    free(err);

    /* A broken model fails the build with bpgen's diagnostic. */
    sleep(1);
    CU_ASSERT_EQUAL(test_write_file(net, "model tiny\ninput x[2]\nloss L = sum(q)\n"), 0);
    char *failing = test_format("cmake --build '%s' 2>&1", bin);
    rc = test_run(failing, &out, NULL);
    CU_ASSERT_NOT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "my-net.net:3:14: error: undefined name 'q'"));
    free(out);
    free(failing);

    free(build);
    free(configure);
    free(lists);
    free(app);
    free(net);
    free(bin);
    free(src);
}

/* find_package with a version this release does not meet fails. */
static void test_cmake_version_check(void)
{
    CU_ASSERT_FATAL(installed);
    char *src = test_format("%s/too-new", work);
    char *cmd = test_format("mkdir -p '%s'", src);
    test_run(cmd, NULL, NULL);
    free(cmd);
    char *lists = test_format("%s/CMakeLists.txt", src);
    CU_ASSERT_EQUAL(test_write_file(lists, "cmake_minimum_required(VERSION 3.13)\n"
                                           "project(too_new C)\n"
                                           "find_package(bpgen 99.0 REQUIRED)\n"), 0);
    char *err = NULL;
    cmd = test_format("cmake -S '%s' -B '%s/build' -DCMAKE_PREFIX_PATH='%s' >/dev/null",
                      src, src, prefix);
    CU_ASSERT_NOT_EQUAL(test_run(cmd, NULL, &err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, BP_VERSION_STRING));
    free(err);
    free(cmd);
    free(lists);
    free(src);
}

/* Every option bpgen --help lists, and every option of the contract's
 * section 3, is in the manual page, which renders without a warning. */
static void test_manual_page(void)
{
    CU_ASSERT_FATAL(installed);
    char *out = NULL, *err = NULL;
    char *cmd = test_format("MANWIDTH=100 LC_ALL=C.UTF-8 man --warnings -l "
                            "'%s/share/man/man1/bpgen.1'", prefix);
    CU_ASSERT_EQUAL(test_run(cmd, &out, &err), 0);
    CU_ASSERT_STRING_EQUAL(err, "");
    const char *contract[] = {
        "-o FILE", "--check", "--derivatives", "--precision=float",
        "--precision=double", "--main", "--explain", "--dot", "--color=WHEN",
        "auto", "always", "never", "NO_COLOR", "-h, --help", "--version",
    };
    for (size_t i = 0; i < sizeof contract / sizeof *contract; i++) {
        CU_ASSERT_PTR_NOT_NULL(strstr(out, contract[i]));
        if (!strstr(out, contract[i]))
            fprintf(stderr, "manual page lacks '%s'\n", contract[i]);
    }

    char *help = NULL;
    char *hcmd = test_format("'%s/bin/bpgen' --help", prefix);
    CU_ASSERT_EQUAL(test_run(hcmd, &help, NULL), 0);
    /* each "  -x" or "  --xyz" starting a line of the option list */
    for (char *line = help; line && *line;) {
        char *end = strchr(line, '\n');
        if (line[0] == ' ' && line[1] == ' ' && line[2] == '-') {
            char option[64];
            size_t n = strcspn(line + 2, " =,\n");
            if (n >= sizeof option)
                n = sizeof option - 1;
            memcpy(option, line + 2, n);
            option[n] = '\0';
            CU_ASSERT_PTR_NOT_NULL(strstr(out, option));
            if (!strstr(out, option))
                fprintf(stderr, "manual page lacks '%s' from --help\n", option);
        }
        line = end ? end + 1 : NULL;
    }
    free(help);
    free(hcmd);
    free(out);
    free(err);
    free(cmd);
}

void register_install(void)
{
    CU_pSuite s = CU_add_suite("install", setup, teardown);
    CU_add_test(s, "make install puts every file", test_make_install_puts_every_file);
    CU_add_test(s, "versions agree", test_versions_agree);
    CU_add_test(s, "pkg-config build", test_pkg_config_build);
    CU_add_test(s, "CMake build and regeneration", test_cmake_build_and_regenerate);
    CU_add_test(s, "CMake version check", test_cmake_version_check);
    CU_add_test(s, "manual page", test_manual_page);
}
