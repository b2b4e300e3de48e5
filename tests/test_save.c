/* test_save.c — files written under pressure, in both formats (weights,
 * safetensors): processes and threads saving to one path at once, saves
 * that fail half way (a full disk, simulated with RLIMIT_FSIZE and, where
 * a private tmpfs can be mounted, a real one; a read-only folder, by
 * permissions and by a read-only file system, which stops root too), and
 * bpgen's output on a full disk or a read-only file system. Each time the
 * target holds either its old contents or a complete new file, and no
 * temporary file is left. */
#define _GNU_SOURCE   /* unshare(), for a tmpfs only this test's child sees */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A model of one parameter vector v[N]; only the descriptor matters. */
enum { N = 4096 };

static bp_tensor_info v_info;
static bp_model v_model;

/* Filled once, by the first call (the main thread's, before any test
 * starts threads): filling it again while a writer thread reads it made
 * that thread write a header of N values and fewer values after it, and a
 * load then failed (data_offsets outside the data) 1 time in 50 under
 * load. The race was the test's own, not the runtime's. */
static const bp_model *model(void)
{
    static int ready;
    if (ready)
        return &v_model;
    ready = 1;
    memset(&v_info, 0, sizeof v_info);
    v_info.name = "v";
    v_info.rank = 1;
    for (size_t k = 0; k < sizeof v_info.dims / sizeof v_info.dims[0]; k++)
        v_info.dims[k] = 1;
    v_info.dims[0] = N;
    v_info.size = N;
    memset(&v_model, 0, sizeof v_model);
    v_model.abi_version = BP_ABI_VERSION;
    v_model.name = "save";
    v_model.real_size = 8;
    v_model.num_params = N;
    v_model.num_param_tensors = 1;
    v_model.params = &v_info;
    return &v_model;
}

static void fill(double *theta, double value)
{
    for (int i = 0; i < N; i++)
        theta[i] = value + i;
}

/* The value theta was filled with, or -1 when it is no fill() result. */
static double filled_with(const double *theta)
{
    for (int i = 0; i < N; i++)
        if (theta[i] != theta[0] + i)
            return -1;
    return theta[0];
}

/* Names in folder `dir` starting with `prefix`. */
static int count_files(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)))
        n += strncmp(ent->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* Runs fn(arg) in a child process; returns its exit status (128 + signal
 * when killed). */
static int in_child(int (*fn)(void *), void *arg)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0)
        exit(fn(arg));
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The two file formats, saved and loaded the same way. */
typedef struct {
    const char *name;
    int (*save)(const char *, const bp_model *, const void *, char *, size_t);
    int (*load)(const char *, const bp_model *, void *, char *, size_t);
} format;

static const format formats[2] = {
    {"weights", bp_weights_save, bp_weights_load},
    {"safetensors", bp_safetensors_save, bp_safetensors_load},
};
static const format *fmt = &formats[0];

/* ------------------------------------------------------------------------ */
/* Concurrent saves */

enum { WRITERS = 4, SAVES = 40, LOADS = 200 };

static char *shared_path;

static int writer(void *arg)
{
    double theta[N];
    fill(theta, 1000.0 * (double)(long)arg);
    char err[256];
    for (int i = 0; i < SAVES; i++)
        if (fmt->save(shared_path, model(), theta, err, sizeof err) != 0) {
            fprintf(stderr, "\n  %s writer %ld: %s\n", fmt->name, (long)arg, err);
            return 1;
        }
    return 0;
}

/* Every load while the writers run must find a complete file by one of
 * them. */
static int reader(void *arg)
{
    (void)arg;
    double theta[N];
    char err[256];
    for (int i = 0; i < LOADS; i++) {
        if (fmt->load(shared_path, model(), theta, err, sizeof err) != 0) {
            fprintf(stderr, "\n  reader: %s\n", err);
            return 1;
        }
        double v = filled_with(theta);
        if (v != 0 && v != 1000 && v != 2000 && v != 3000) {
            fprintf(stderr, "\n  reader: a mixed file (%g)\n", v);
            return 1;
        }
    }
    return 0;
}

static void concurrent_saves(void)
{
    shared_path = test_tmp_path("shared.weights");
    double theta[N];
    fill(theta, 0);
    char err[256];
    CU_ASSERT_EQUAL_FATAL(fmt->save(shared_path, model(), theta, err, sizeof err), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pids[WRITERS + 1];
    for (long w = 0; w <= WRITERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0)
            exit(w < WRITERS ? writer((void *)w) : reader(NULL));
    }
    for (int w = 0; w <= WRITERS; w++) {
        int status = 0;
        CU_ASSERT_EQUAL(waitpid(pids[w], &status, 0), pids[w]);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    CU_ASSERT_EQUAL(fmt->load(shared_path, model(), theta, err, sizeof err), 0);
    double v = filled_with(theta);
    CU_ASSERT(v == 0 || v == 1000 || v == 2000 || v == 3000);
    CU_ASSERT_EQUAL(count_files(TEST_TMP, "shared.weights"), 1);  /* no temporaries */
    remove(shared_path);
    free(shared_path);
}

/* ------------------------------------------------------------------------ */
/* Failing saves */

static char *old_path;

/* Saves over old_path with writes limited to `limit` bytes per file:
 * the write fails with EFBIG as on a full disk. */
static int save_limited(void *arg)
{
    struct rlimit r;
    r.rlim_cur = r.rlim_max = (rlim_t)(long)arg;
    signal(SIGXFSZ, SIG_IGN);   /* EFBIG instead of the signal */
    if (setrlimit(RLIMIT_FSIZE, &r) != 0)
        return 3;
    double theta[N];
    fill(theta, 5000);
    char err[256] = "";
    int rc = fmt->save(old_path, model(), theta, err, sizeof err);
    if (rc == 0)
        return 1;
    if (!strstr(err, old_path) || !strstr(err, strerror(EFBIG))) {
        fprintf(stderr, "\n  unexpected message: %s\n", err);
        return 2;
    }
    return 0;
}

static void check_old_intact(const char *path, const char *dir,
                             const char *prefix)
{
    double theta[N];
    char err[256];
    CU_ASSERT_EQUAL(fmt->load(path, model(), theta, err, sizeof err), 0);
    CU_ASSERT_EQUAL(filled_with(theta), 7);
    CU_ASSERT_EQUAL(count_files(dir, prefix), 1);
}

static void full_disk(void)
{
    old_path = test_tmp_path("full.weights");
    double theta[N];
    fill(theta, 7);
    char err[256];
    CU_ASSERT_EQUAL_FATAL(fmt->save(old_path, model(), theta, err, sizeof err), 0);
    /* the header fits, the values do not; then not even the header */
    CU_ASSERT_EQUAL(in_child(save_limited, (void *)(long)(N * 8 / 2)), 0);
    check_old_intact(old_path, TEST_TMP, "full.weights");
    CU_ASSERT_EQUAL(in_child(save_limited, (void *)(long)10), 0);
    check_old_intact(old_path, TEST_TMP, "full.weights");
    remove(old_path);
    free(old_path);
}

static char *ro_dir, *ro_file;

/* As root, folder permissions do not apply: the child becomes nobody. */
static int save_read_only(void *arg)
{
    (void)arg;
    if (geteuid() == 0 && setuid(65534) != 0)
        return 3;
    if (access(ro_dir, W_OK) == 0)
        return 4;   /* the folder is writable after all: no test */
    double theta[N];
    fill(theta, 5000);
    char err[256] = "";
    if (fmt->save(ro_file, model(), theta, err, sizeof err) == 0)
        return 1;
    if (!strstr(err, ro_file) || !strstr(err, strerror(EACCES))) {
        fprintf(stderr, "\n  unexpected message: %s\n", err);
        return 2;
    }
    return 0;
}

static void read_only_folder(void)
{
    ro_dir = test_tmp_path("ro_folder");
    ro_file = test_format("%s/old.weights", ro_dir);
    mkdir(ro_dir, 0777);
    chmod(ro_dir, 0755);
    double theta[N];
    fill(theta, 7);
    char err[256];
    CU_ASSERT_EQUAL_FATAL(fmt->save(ro_file, model(), theta, err, sizeof err), 0);
    CU_ASSERT_EQUAL(chmod(ro_dir, 0555), 0);
    CU_ASSERT_EQUAL(in_child(save_read_only, NULL), 0);
    check_old_intact(ro_file, ro_dir, "old.weights");
    chmod(ro_dir, 0755);
    remove(ro_file);
    rmdir(ro_dir);
    free(ro_file);
    free(ro_dir);
}

static void folder_in_the_way(void)
{
    /* a folder where the file should go: the rename fails, nothing left */
    char *dir = test_tmp_path("in_the_way.weights");
    mkdir(dir, 0777);
    double theta[N];
    fill(theta, 7);
    char err[256] = "";
    CU_ASSERT_NOT_EQUAL(fmt->save(dir, model(), theta, err, sizeof err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot write"));
    CU_ASSERT_EQUAL(count_files(TEST_TMP, "in_the_way.weights"), 1);
    rmdir(dir);
    free(dir);
}

/* Two threads of one process saving to one path at once (the temporary
 * names must differ between threads too), while the main thread loads. */
static void *thread_writer(void *arg)
{
    long w = (long)arg;
    double *theta = malloc(sizeof(double) * N);
    if (!theta)
        return (void *)1;
    fill(theta, 1000.0 * (double)w);
    char err[256];
    long failed = 0;
    for (int i = 0; i < SAVES && !failed; i++)
        if (fmt->save(shared_path, model(), theta, err, sizeof err) != 0) {
            fprintf(stderr, "\n  %s thread %ld: %s\n", fmt->name, w, err);
            failed = 1;
        }
    free(theta);
    return (void *)failed;
}

static void threads_saving(void)
{
    shared_path = test_tmp_path("threads.weights");
    double theta[N];
    fill(theta, 0);
    char err[256];
    CU_ASSERT_EQUAL_FATAL(fmt->save(shared_path, model(), theta, err, sizeof err), 0);
    pthread_t threads[2];
    int started = 0;
    for (long w = 1; w <= 2; w++)
        started += pthread_create(&threads[w - 1], NULL, thread_writer, (void *)w) == 0;
    CU_ASSERT_EQUAL(started, 2);
    for (int i = 0; i < 50; i++) {
        int rc = fmt->load(shared_path, model(), theta, err, sizeof err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            fprintf(stderr, "\n  %s load %d: %s\n", fmt->name, i, err);
        double v = filled_with(theta);
        CU_ASSERT(v == 0 || v == 1000 || v == 2000);
    }
    for (int w = 0; w < started; w++) {
        void *failed = NULL;
        CU_ASSERT_EQUAL(pthread_join(threads[w], &failed), 0);
        CU_ASSERT_PTR_NULL(failed);
    }
    CU_ASSERT_EQUAL(count_files(TEST_TMP, "threads.weights"), 1);  /* no temporaries */
    remove(shared_path);
    free(shared_path);
}

/* ------------------------------------------------------------------------ */
/* A real full disk and a real read-only file system: a small tmpfs that
 * only a child process sees (its own mount namespace; as root, or with
 * CAP_SYS_ADMIN). Where none can be mounted the child says so and exits
 * with NO_TMPFS, and the test reports that it could not run (the
 * simulated full disk above still runs). */

enum { NO_TMPFS = 77 };
static char *tmpfs_dir;

/* In the child: a tmpfs of `kib` KiB at tmpfs_dir, private to it. */
static int mount_private_tmpfs(int kib)
{
    if (unshare(CLONE_NEWNS) != 0 ||
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return -1;
    char opts[32];
    snprintf(opts, sizeof opts, "size=%dk,mode=0777", kib);
    return mount("tmpfs", tmpfs_dir, "tmpfs", 0, opts);
}

/* Remounts the tmpfs read-only: writes fail with EROFS, even for root. */
static int remount_read_only(void)
{
    return mount("tmpfs", tmpfs_dir, "tmpfs", MS_REMOUNT | MS_RDONLY, NULL);
}

/* The old file (fill 7) saved, then `fn` makes the next save fail; the
 * save must report `expected_errno` and leave the old file. */
static int failing_save_on_tmpfs(int kib, int (*fn)(void), int expected_errno)
{
    if (mount_private_tmpfs(kib) != 0)
        return NO_TMPFS;
    char *path = test_format("%s/old.weights", tmpfs_dir);
    double theta[N];
    fill(theta, 7);
    char err[256] = "";
    if (fmt->save(path, model(), theta, err, sizeof err) != 0) {
        fprintf(stderr, "\n  the old file does not fit: %s\n", err);
        return 3;
    }
    if (fn && fn() != 0)
        return 4;
    fill(theta, 5000);
    if (fmt->save(path, model(), theta, err, sizeof err) == 0)
        return 1;
    if (!strstr(err, path) || !strstr(err, strerror(expected_errno))) {
        fprintf(stderr, "\n  unexpected message: %s\n", err);
        return 2;
    }
    double back[N];
    if (fmt->load(path, model(), back, err, sizeof err) != 0 || filled_with(back) != 7) {
        fprintf(stderr, "\n  the old file is damaged: %s\n", err);
        return 5;
    }
    if (count_files(tmpfs_dir, "old.weights") != 1)
        return 6;   /* a temporary was left */
    free(path);
    return 0;
}

/* 48 KiB: the old file (32 KiB of values) fits, a second copy does not. */
static int full_tmpfs_child(void *arg)
{
    (void)arg;
    return failing_save_on_tmpfs(48, NULL, ENOSPC);
}

static int read_only_tmpfs_child(void *arg)
{
    (void)arg;
    return failing_save_on_tmpfs(128, remount_read_only, EROFS);
}

static void on_tmpfs(int (*child)(void *), const char *what)
{
    tmpfs_dir = test_tmp_path("tmpfs");
    mkdir(tmpfs_dir, 0777);
    int rc = in_child(child, NULL);
    if (rc == NO_TMPFS)
        fprintf(stderr, "\n  (%s: no private tmpfs can be mounted here; not run) ", what);
    else
        CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(count_files(tmpfs_dir, "old.weights"), 0);   /* it was the child's */
    rmdir(tmpfs_dir);
    free(tmpfs_dir);
}

static void full_tmpfs(void)
{
    on_tmpfs(full_tmpfs_child, "a full disk");
}

static void read_only_tmpfs(void)
{
    on_tmpfs(read_only_tmpfs_child, "a read-only file system");
}

/* Each test for both formats. */
#define BOTH(test)                                       \
    static void test_##test(void)                        \
    {                                                    \
        for (int f = 0; f < 2; f++) {                    \
            fmt = &formats[f];                           \
            test();                                      \
        }                                                \
        fmt = &formats[0];                               \
    }
BOTH(concurrent_saves)
BOTH(full_disk)
BOTH(read_only_folder)
BOTH(folder_in_the_way)
BOTH(threads_saving)
BOTH(full_tmpfs)
BOTH(read_only_tmpfs)

/* ------------------------------------------------------------------------ */
/* bpgen's output on a full disk */

static void test_bpgen_full_disk(void)
{
    static const char *source =
        "input x[4]\ninput y[3]\nparam W[3, 4]\nparam b[3]\n"
        "p = softmax(W · x + b)\noutput p\nloss L = cross_entropy(p, y)\n";
    char *model_path = test_tmp_path("fullgen.net");
    char *out_c = test_tmp_path("fullgen_out.c");
    char *out_h = test_tmp_path("fullgen_out.h");
    CU_ASSERT_EQUAL_FATAL(test_write_file(model_path, source), 0);
    CU_ASSERT_EQUAL(test_write_file(out_c, "/* precious */\n"), 0);
    CU_ASSERT_EQUAL(test_write_file(out_h, "/* precious header */\n"), 0);
    /* ulimit -f counts 512-byte blocks: 4 KiB, less than the output */
    char *cmd = test_format("trap '' XFSZ; ulimit -f 8; %s %s -o %s", TEST_BPGEN,
                            model_path, out_c);
    char *err = NULL;
    CU_ASSERT_EQUAL(test_run(cmd, NULL, &err), 2);
    CU_ASSERT(err && strstr(err, "cannot write"));
    char *c = test_read_file(out_c, NULL);
    char *h = test_read_file(out_h, NULL);
    CU_ASSERT(c && strcmp(c, "/* precious */\n") == 0);
    CU_ASSERT(h && strcmp(h, "/* precious header */\n") == 0);
    CU_ASSERT_EQUAL(count_files(TEST_TMP, "fullgen_out"), 2);
    free(c);
    free(h);
    free(err);
    free(cmd);
    remove(model_path);
    remove(out_c);
    remove(out_h);
    free(out_h);
    free(out_c);
    free(model_path);
}

/* bpgen writing into a small tmpfs, full or read-only: exit status 2, a
 * message, the old .c and .h as they were, no temporary file. */
static const char *gen_source =
    "input x[4]\ninput y[3]\nparam W[3, 4]\nparam b[3]\n"
    "p = softmax(W · x + b)\noutput p\nloss L = cross_entropy(p, y)\n";

/* Eight bpgen processes writing one output five times each, at once:
 * each run succeeds, the result is what one alone writes, and no
 * temporary is left. */
static void test_bpgen_concurrent(void)
{
    char *model_path = test_tmp_path("conc.net");
    char *out_c = test_tmp_path("conc_out.c");
    CU_ASSERT_EQUAL_FATAL(test_write_file(model_path, gen_source), 0);
    char *one = test_format("%s %s -o %s", TEST_BPGEN, model_path, out_c);
    CU_ASSERT_EQUAL(test_run(one, NULL, NULL), 0);
    char *alone = test_read_file(out_c, NULL);
    CU_ASSERT_EQUAL(remove(out_c), 0);
    char *cmd = test_format("for i in 1 2 3 4 5 6 7 8; do (for k in 1 2 3 4 5; do %s || "
                            "echo failed; done) & done; wait", one);
    char *out = NULL;
    CU_ASSERT_EQUAL(test_run(cmd, &out, NULL), 0);
    CU_ASSERT(out && !strstr(out, "failed"));
    char *c = test_read_file(out_c, NULL);
    CU_ASSERT(c && alone && !strcmp(c, alone));
    CU_ASSERT_EQUAL(count_files(TEST_TMP, "conc_out."), 2);   /* .c and .h only */
    free(c);
    free(alone);
    free(out);
    free(cmd);
    free(one);
    free(out_c);
    free(model_path);
}

static int bpgen_on_tmpfs(int kib, bool read_only, int expected_errno)
{
    if (mount_private_tmpfs(kib) != 0)
        return NO_TMPFS;
    char *model_path = test_tmp_path("tmpfsgen.net");
    char *out_c = test_format("%s/out.c", tmpfs_dir);
    char *out_h = test_format("%s/out.h", tmpfs_dir);
    if (test_write_file(model_path, gen_source) != 0 ||
        test_write_file(out_c, "/* precious */\n") != 0 ||
        test_write_file(out_h, "/* precious header */\n") != 0)
        return 3;
    if (read_only && remount_read_only() != 0)
        return 4;
    char *cmd = test_format("%s %s -o %s", TEST_BPGEN, model_path, out_c);
    char *err = NULL;
    int rc = test_run(cmd, NULL, &err);
    int status = 0;
    if (rc != 2 || !err || !strstr(err, "cannot write") || !strstr(err, strerror(expected_errno))) {
        fprintf(stderr, "\n  bpgen: exit %d, %s\n", rc, err ? err : "");
        status = 1;
    }
    char *c = test_read_file(out_c, NULL);
    char *h = test_read_file(out_h, NULL);
    if (!c || strcmp(c, "/* precious */\n") || !h || strcmp(h, "/* precious header */\n"))
        status = 2;
    if (count_files(tmpfs_dir, "out") != 2)
        status = 5;   /* a temporary was left */
    free(c);
    free(h);
    free(err);
    free(cmd);
    remove(model_path);
    free(out_h);
    free(out_c);
    free(model_path);
    return status;
}

/* 12 KiB: the two old files take two pages, the new .c (about 9 KiB)
 * does not fit in the rest */
static int bpgen_full_tmpfs_child(void *arg)
{
    (void)arg;
    return bpgen_on_tmpfs(12, false, ENOSPC);
}

static int bpgen_read_only_tmpfs_child(void *arg)
{
    (void)arg;
    return bpgen_on_tmpfs(64, true, EROFS);
}

static void test_bpgen_full_tmpfs(void)
{
    on_tmpfs(bpgen_full_tmpfs_child, "bpgen on a full disk");
}

static void test_bpgen_read_only_tmpfs(void)
{
    on_tmpfs(bpgen_read_only_tmpfs_child, "bpgen on a read-only file system");
}

void register_save(void)
{
    CU_pSuite s = CU_add_suite("saving files under pressure", NULL, NULL);
    CU_add_test(s, "concurrent saves to one path never collide", test_concurrent_saves);
    CU_add_test(s, "a full disk keeps the old file", test_full_disk);
    CU_add_test(s, "a read-only folder keeps the old file", test_read_only_folder);
    CU_add_test(s, "a folder in the way: an error, no temporary", test_folder_in_the_way);
    CU_add_test(s, "bpgen on a full disk keeps the old output", test_bpgen_full_disk);
    CU_add_test(s, "threads saving to one path never collide", test_threads_saving);
    CU_add_test(s, "bpgen processes writing one output never collide", test_bpgen_concurrent);
    CU_add_test(s, "a full tmpfs (ENOSPC) keeps the old file", test_full_tmpfs);
    CU_add_test(s, "a read-only file system (EROFS, root too) keeps the old file",
                test_read_only_tmpfs);
    CU_add_test(s, "bpgen on a full tmpfs keeps the old output", test_bpgen_full_tmpfs);
    CU_add_test(s, "bpgen on a read-only file system keeps the old output",
                test_bpgen_read_only_tmpfs);
}
