/* test_tsan.c — the thread pool (runtime/threads.c) and the threaded
 * products built with ThreadSanitizer and run (tests/harness/
 * pool_stress.c): no data race reported, and every threaded product the
 * same bits as one thread's. Built apart from the test binary, so it runs
 * under SANITIZE=1 too (ThreadSanitizer and AddressSanitizer do not mix).
 * setarch -R turns address randomisation off where the system allows it
 * (a container's seccomp profile may not): gcc 12's ThreadSanitizer
 * cannot map its shadow memory under some kernels' randomisation. */
#include "support.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_pool_under_tsan(void)
{
    char *exe = test_tmp_path("pool_stress");
    char *cmd = test_format("%s -std=c99 -O1 -g -fsanitize=thread -D_POSIX_C_SOURCE=200809L "
                            "-Iruntime -o %s tests/harness/pool_stress.c runtime/*.c -lz -lm "
                            "-pthread", TEST_CC, exe);
    char *err = NULL;
    int rc = test_run(cmd, NULL, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\n%s\n%s\n", cmd, err ? err : "");
    free(err);
    free(cmd);
    char *out = NULL;
    err = NULL;
    cmd = test_format("if setarch \"$(uname -m)\" -R true 2>/dev/null; "
                      "then setarch \"$(uname -m)\" -R %s; else %s; fi", exe, exe);
    rc = rc == 0 ? test_run(cmd, &out, &err) : -1;
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(out != NULL && strstr(out, "mismatches 0\n") != NULL);
    CU_ASSERT_PTR_NULL(err ? strstr(err, "ThreadSanitizer") : NULL);
    if (rc != 0 || (err && strstr(err, "ThreadSanitizer")))
        fprintf(stderr, "\n%s\n", err ? err : "");
    free(out);
    free(err);
    free(cmd);
    free(exe);
}

void register_tsan(void);
void register_tsan(void)
{
    CU_pSuite s = CU_add_suite("thread pool under ThreadSanitizer", NULL, NULL);
    CU_add_test(s, "threaded products from two callers: no race, same bits",
                test_pool_under_tsan);
}
