/* runner.c — runs every registered CUnit suite and prints one summary line.
 *
 * Each tests/test_NAME.c registers its suites in register_NAME(); the
 * Makefile generates tests_register_all() from the file names. An argument
 * runs only the suites whose names contain it. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void tests_register_all(void);

int main(int argc, char **argv)
{
    mkdir(TEST_TMP, 0777);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    tests_register_all();
    if (argc > 1) {
        /* Deactivate suites that do not match the filter. */
        for (CU_pSuite s = CU_get_registry()->pSuite; s; s = s->pNext)
            if (!strstr(s->pName, argv[1]))
                CU_set_suite_active(s, CU_FALSE);
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    unsigned failures = CU_get_number_of_failures();
    CU_cleanup_registry();
    printf("\ntests: %u passed, %u failed\n", run - failed, failed);
    return (failed || failures) ? 1 : 0;
}
