/* test_valgrind.c — runs tests/valgrind.sh: every example program (small
 * inputs), the --main driver of every example model in both precisions,
 * and (in the build without sanitizers) bpgen itself, under valgrind's
 * memcheck with full leak checking. Without valgrind it says so plainly
 * and runs nothing (`make test` installs valgrind on first use on Debian,
 * scripts/install-deps.sh). */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* Example models: examples/ NAME / NAME.net. */
static int count_models(void)
{
    DIR *d = opendir("examples");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        char *net = test_format("examples/%s/%s.net", ent->d_name, ent->d_name);
        FILE *f = fopen(net, "r");
        if (f) {
            n++;
            fclose(f);
        }
        free(net);
    }
    closedir(d);
    return n;
}

static void test_memcheck(void)
{
    /* ASan's bpgen cannot run under valgrind; it still generates the code */
    int sanitized = strstr(TEST_CFLAGS, "-fsanitize") != NULL;
    char *out = test_tmp_path("valgrind");
    char *cmd = test_format("sh tests/valgrind.sh %s %s %s", out, TEST_BPGEN,
                            sanitized ? "" : "bpgen-too");
    char *log = NULL;
    int rc = test_run(cmd, &log, NULL);
    if (rc == 77) {
        printf("\n  %s", log ? log : "valgrind is not installed\n");
    } else {
        if (rc != 0)
            fprintf(stderr, "\n%s\n", log ? log : "");
        CU_ASSERT_EQUAL(rc, 0);
        /* 9 example programs, 2 drivers per model, 3 runs of bpgen */
        int expected = 9 + 2 * count_models() + (sanitized ? 0 : 3);
        char *want = test_format("memcheck: %d programs clean, 0 failed", expected);
        CU_ASSERT(log && strstr(log, want));
        if (!(log && strstr(log, want)))
            fprintf(stderr, "\n  expected '%s'\n", want);
        free(want);
    }
    free(log);
    free(cmd);
    free(out);
}

void register_valgrind(void)
{
    CU_pSuite s = CU_add_suite("valgrind memcheck", NULL, NULL);
    CU_add_test(s, "examples, --main drivers and bpgen run clean", test_memcheck);
}
