/* test_fuzz.c — the fuzz targets without libFuzzer: every file of
 * tests/fuzz/regressions/NAME/ (inputs that once crashed, kept so the bug
 * stays fixed) and tests/fuzz/corpus/NAME/ (the seeds) is fed to target
 * NAME, each in a child process, so a crash is reported with the file's
 * name and the other files still run. Under SANITIZE=1 the children run
 * with ASan and UBSan, and a leak fails them at exit. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"
#include "support.h"

#define FUZZ_DIR "tests/fuzz"

/* Runs target t on the file at path in a child; returns a description of
 * the failure, or NULL. */
static char *run_one(const fuzz_target *t, const char *path)
{
    size_t len = 0;
    char *data = test_read_file(path, &len);
    if (!data)
        return test_format("%s: cannot read", path);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        t->run((const unsigned char *)data, len);
        free(data);
        exit(0);    /* exit, not _exit: LeakSanitizer checks at exit */
    }
    free(data);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return test_format("%s: cannot run a child process", path);
    if (WIFSIGNALED(status))
        return test_format("%s: target %s killed by signal %d", path, t->name,
                           WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        return test_format("%s: target %s exited with status %d", path,
                           t->name, WEXITSTATUS(status));
    return NULL;
}

/* Feeds every regular file of FUZZ_DIR/kind/name to t; returns how many. */
static int run_folder(const fuzz_target *t, const char *kind)
{
    char *dir_path = test_format("%s/%s/%s", FUZZ_DIR, kind, t->name);
    DIR *dir = opendir(dir_path);
    int count = 0;
    struct dirent *ent;
    while (dir && (ent = readdir(dir))) {
        char *path = test_format("%s/%s", dir_path, ent->d_name);
        struct stat st;
        if (ent->d_name[0] != '.' && stat(path, &st) == 0 &&
            S_ISREG(st.st_mode)) {
            char *failure = run_one(t, path);
            if (failure) {
                fprintf(stderr, "\n  %s\n", failure);
                CU_FAIL(failure);
                free(failure);
            }
            count++;
        }
        free(path);
    }
    if (dir)
        closedir(dir);
    free(dir_path);
    return count;
}

static void test_regressions(void)
{
    for (const fuzz_target *t = fuzz_targets; t->name; t++)
        run_folder(t, "regressions");
}

static void test_seed_corpora(void)
{
    int targets = 0;
    for (const fuzz_target *t = fuzz_targets; t->name; t++) {
        /* every target needs seeds: libFuzzer mutates from them */
        int seeds = run_folder(t, "corpus");
        if (seeds == 0)
            fprintf(stderr, "\n  %s/corpus/%s: no seeds\n", FUZZ_DIR, t->name);
        CU_ASSERT(seeds > 0);
        targets++;
    }
    CU_ASSERT(targets >= 3);    /* net, csv, weights at least */
}

void register_fuzz(void)
{
    CU_pSuite s = CU_add_suite("fuzz targets (regressions, seeds)", NULL, NULL);
    CU_add_test(s, "every kept crash input runs clean", test_regressions);
    CU_add_test(s, "every seed runs clean", test_seed_corpora);
}
