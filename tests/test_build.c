/* test_build.c — the build notices changed flags: `make CFLAGS=...` (or
 * OPT=...) in a built tree rebuilds what was built with other flags, and
 * does nothing when the flags are the same. Each case builds one runtime
 * object into a build folder of its own (TEST_TMP/flags), which is quick
 * and leaves the suite's own build alone. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* `make` of the one object with `vars` (e.g. "CFLAGS='-O0'") in build
 * folder dir; returns its status, its output in *log. MAKEFLAGS and
 * MAKELEVEL are cleared so the parent make's options do not leak in, and
 * CFLAGS and OPT from the environment are ignored. */
static int make_object(const char *dir, const char *vars, char **log)
{
    char *cmd = test_format("env -u CFLAGS -u OPT MAKEFLAGS= MFLAGS= MAKELEVEL= "
                            "make --no-print-directory BUILD='%s' %s '%s/runtime/version.o' 2>&1",
                            dir, vars, dir);
    int rc = test_run(cmd, log, NULL);
    free(cmd);
    return rc;
}

/* Whether make's output shows the object being compiled. */
static int compiled(const char *log, const char *dir)
{
    char *line = test_format("-c -o %s/runtime/version.o", dir);
    int yes = log && strstr(log, line) != NULL;
    free(line);
    return yes;
}

/* The flags the build folder records. */
static int recorded(const char *dir, const char *flag)
{
    char *path = test_format("%s/flags", dir);
    char *text = test_read_file(path, NULL);
    int yes = text && strstr(text, flag) != NULL;
    free(text);
    free(path);
    return yes;
}

/* Builds with `first`, then `first` again (nothing to do), then `second`
 * (everything again), checking the recorded flags each time. */
static void flags_case(const char *name, const char *first, const char *first_flag,
                       const char *second, const char *second_flag)
{
    char *dir = test_tmp_path(name);
    char *clean = test_format("rm -rf '%s'", dir);
    CU_ASSERT_EQUAL_FATAL(test_run(clean, NULL, NULL), 0);
    char *log = NULL;

    CU_ASSERT_EQUAL(make_object(dir, first, &log), 0);
    CU_ASSERT(compiled(log, dir));
    CU_ASSERT(recorded(dir, first_flag));
    free(log);

    log = NULL;
    CU_ASSERT_EQUAL(make_object(dir, first, &log), 0);
    if (compiled(log, dir))
        fprintf(stderr, "\n  %s: the same flags rebuilt the object:\n%s\n", name, log);
    CU_ASSERT(!compiled(log, dir));
    free(log);

    log = NULL;
    CU_ASSERT_EQUAL(make_object(dir, second, &log), 0);
    if (!compiled(log, dir))
        fprintf(stderr, "\n  %s: changed flags did not rebuild the object:\n%s\n", name,
                log ? log : "");
    CU_ASSERT(compiled(log, dir));
    CU_ASSERT(recorded(dir, second_flag));
    CU_ASSERT(!recorded(dir, first_flag));
    free(log);

    test_run(clean, NULL, NULL);
    free(clean);
    free(dir);
}

static void test_cflags_change_rebuilds(void)
{
    flags_case("flags_cflags", "CFLAGS='-O0 -DBP_FLAGS_PROBE=0'", "-DBP_FLAGS_PROBE=0",
               "CFLAGS='-O0 -DBP_FLAGS_PROBE=1'", "-DBP_FLAGS_PROBE=1");
}

static void test_opt_change_rebuilds(void)
{
    flags_case("flags_opt", "OPT=-O0", "-O0 -g", "OPT=-O1", "-O1 -g");
}

void register_build(void)
{
    CU_pSuite s = CU_add_suite("build flags", NULL, NULL);
    CU_add_test(s, "make CFLAGS=... in a built tree rebuilds", test_cflags_change_rebuilds);
    CU_add_test(s, "make OPT=... in a built tree rebuilds", test_opt_change_rebuilds);
}
