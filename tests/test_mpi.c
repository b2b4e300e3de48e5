/* test_mpi.c — data-parallel training over real MPI: the digits example
 * (examples/digits/train_digits_mpi.c, linked with build/libbp_mpi.a) run
 * by `mpirun -np 1` and `mpirun -np 2`.
 *
 *  - 1 rank is bit for bit the plain single-process train_digits (the hook
 *    is never called with one rank);
 *  - 2 ranks, each computing the gradient of half of every global batch of
 *    32, end where 1 rank ends: after 3 epochs (135 Adam steps) the float
 *    weights differ by at most MPI_TOL, float round-off (the gradient is
 *    summed in two halves instead of one pass over 32 rows) carried
 *    through 135 steps. They must also agree to far less than training
 *    moves them, which the test checks too;
 *  - only rank 0 prints: one line per epoch, not two.
 *
 * Needs mpicc and mpirun (scripts/install-deps.sh installs openmpi-bin and
 * libopenmpi-dev). Where either is missing the suite says so and checks
 * nothing. Under SANITIZE=1 the MPI program is built with the sanitizers
 * too, and run with LeakSanitizer off: Open MPI's own allocations that
 * live until exit would be reported as leaks (ASan's other checks stay
 * on). */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MPI_TOL 1e-5

/* The digits model's parameter layout (digits.net), enough to load its
 * weights files; the other fields stay empty. */
static bp_tensor_info digits_params[4];

static bp_model digits_layout(void)
{
    static const struct {
        const char *name;
        int rank, rows, cols;
    } t[4] = {{"W1", 2, 32, 64}, {"b1", 1, 32, 1}, {"W2", 2, 10, 32}, {"b2", 1, 10, 1}};
    size_t at = 0;
    for (int i = 0; i < 4; i++) {
        bp_tensor_info *p = &digits_params[i];
        memset(p, 0, sizeof *p);
        p->name = t[i].name;
        p->rank = t[i].rank;
        for (size_t k = 0; k < sizeof p->dims / sizeof p->dims[0]; k++)
            p->dims[k] = 1;
        p->dims[0] = t[i].rows;
        p->dims[1] = t[i].cols;
        p->size = (size_t)t[i].rows * (size_t)t[i].cols;
        p->offset = at;
        at += p->size;
    }
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = "digits";
    m.real_size = 4;
    m.num_params = at;
    m.num_param_tensors = 4;
    m.params = digits_params;
    return m;
}

static char *absolute(const char *p)
{
    char cwd[4096];
    if (p[0] == '/' || !getcwd(cwd, sizeof cwd))
        return test_format("%s", p);
    return test_format("%s/%s", cwd, p);
}

static int have(const char *tool)
{
    char *cmd = test_format("command -v '%s' >/dev/null 2>&1", tool);
    int rc = test_run(cmd, NULL, NULL);
    free(cmd);
    return rc == 0;
}

/* Counts the occurrences of needle in text. */
static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text ? strstr(text, needle) : NULL; p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static int load(const char *path, float *theta)
{
    bp_model m = digits_layout();
    char err[512] = "";
    int rc = bp_weights_load(path, &m, theta, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\n[mpi] %s\n", err);
    return rc;
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        worst = d > worst || d != d ? d : worst;
    }
    return worst;
}

static void test_digits_two_ranks(void)
{
    if (!have(TEST_MPICC) || !have("mpirun")) {
        printf("\n  [mpi] SKIPPED: %s or mpirun not found (install openmpi-bin and "
               "libopenmpi-dev: sh scripts/install-deps.sh) ",
               TEST_MPICC);
        return;
    }
    char *lib = absolute(TEST_LIBBP_MPI);
    if (access(lib, R_OK) != 0) {
        CU_FAIL("mpicc exists but build/libbp_mpi.a was not built");
        free(lib);
        return;
    }
    char *out = test_tmp_path("mpi");
    char *abs_out = absolute(out);
    char *bpgen = absolute(TEST_BPGEN), *libbp = absolute(TEST_LIBBP);
    char *log = NULL;
    char *cmd = test_format("rm -rf '%s' && MAKEFLAGS= MFLAGS= MAKELEVEL= make -s -C examples "
                            "BPGEN='%s' LIBBP='%s' LIBBP_MPI='%s' OUT='%s' CC='%s' MPICC='%s' "
                            "CFLAGS='%s -Werror' build-mpi '%s/digits/train_digits' 2>&1",
                            abs_out, bpgen, libbp, lib, abs_out, TEST_CC, TEST_MPICC,
                            TEST_CFLAGS, abs_out);
    int rc = test_run(cmd, &log, NULL);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        fprintf(stderr, "\n[mpi] build failed:\n%s\n", log ? log : "");
    free(log);
    free(cmd);
    if (rc != 0)
        goto done;

    const char *mpirun = getuid() == 0 ? "mpirun --allow-run-as-root --oversubscribe"
                                       : "mpirun --oversubscribe";
    /* Inside containers Open MPI's single-copy transfers (CMA) may be
     * refused by the kernel; plain shared memory works everywhere. */
    const char *env = TEST_SANITIZE
                          ? "OMPI_MCA_btl_vader_single_copy_mechanism=none ASAN_OPTIONS=detect_leaks=0 "
                          : "OMPI_MCA_btl_vader_single_copy_mechanism=none ";
    /* 0: the plain program, 20 epochs; 1: one rank, 20 epochs; 2: one rank,
     * 3 epochs; then two ranks, 3 epochs. */
    const char *runs[4] = {
        "'%s/digits/train_digits' '%s/plain.weights'",
        "%s -np 1 '%s/digits/train_digits_mpi' '%s/one20.weights' 20",
        "%s -np 1 '%s/digits/train_digits_mpi' '%s/one3.weights' 3",
        "%s -np 2 '%s/digits/train_digits_mpi' '%s/two3.weights' 3",
    };
    char *outs[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++) {
        char *run = i == 0 ? test_format(runs[0], abs_out, abs_out)
                           : test_format(runs[i], mpirun, abs_out, abs_out);
        cmd = test_format("cd examples/digits && %s%s 2>&1", env, run);
        rc = test_run(cmd, &outs[i], NULL);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            fprintf(stderr, "\n[mpi] '%s' failed (%d):\n%s\n", run, rc, outs[i] ? outs[i] : "");
        free(cmd);
        free(run);
    }

    /* Only rank 0 prints. */
    CU_ASSERT_EQUAL(count_of(outs[3], "epoch 3/3 "), 1);
    CU_ASSERT_EQUAL(count_of(outs[3], "result: digits_mpi test_accuracy"), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(outs[3] ? outs[3] : "", "digits_mpi: 2 ranks; global batch 32"));
    const char *acc = outs[3] ? strstr(outs[3], "result: digits_mpi test_accuracy ") : NULL;
    CU_ASSERT(acc && strtod(acc + strlen("result: digits_mpi test_accuracy "), NULL) >= 0.9);

    enum { N = 32 * 64 + 32 + 10 * 32 + 10 };
    static float plain[N], one20[N], one3[N], two3[N];
    char *p0 = test_format("%s/plain.weights", abs_out), *p1 = test_format("%s/one20.weights", abs_out),
         *p2 = test_format("%s/one3.weights", abs_out), *p3 = test_format("%s/two3.weights", abs_out);
    if (load(p0, plain) == 0 && load(p1, one20) == 0) {
        /* One rank trains exactly as one process without MPI. */
        CU_ASSERT(memcmp(plain, one20, sizeof plain) == 0);
    } else {
        CU_FAIL("weights of the 20-epoch runs");
    }
    if (load(p2, one3) == 0 && load(p3, two3) == 0) {
        double diff = max_abs_diff(one3, two3, N);
        double moved = max_abs_diff(one3, plain, N);
        printf("\n  [mpi] 2 ranks vs 1 after 135 steps: max |difference| %.3g (tolerance %g) ",
               diff, MPI_TOL);
        CU_ASSERT(diff <= MPI_TOL);
        /* The weights after 3 and after 20 epochs differ by far more: the
         * tolerance is not loose enough to hide a wrong step. */
        CU_ASSERT(moved > 1000 * MPI_TOL);
        if (!(diff <= MPI_TOL))
            fprintf(stderr, "\n[mpi] 2 ranks end %g away from 1 rank:\n%s\n", diff,
                    outs[3] ? outs[3] : "");
    } else {
        CU_FAIL("weights of the 3-epoch runs");
    }
    free(p0);
    free(p1);
    free(p2);
    free(p3);
    for (int i = 0; i < 4; i++)
        free(outs[i]);
done:
    free(bpgen);
    free(libbp);
    free(lib);
    free(out);
    free(abs_out);
}

/* Error paths: bp_mpi_init before MPI_Init, a real_size the hook does not
 * know, and a rank that cannot read its data: MPI_Abort ends every rank
 * with a message instead of leaving the other waiting. */
static const char no_init_program[] =
    "#include <stdio.h>\n"
    "#include \"bp_mpi.h\"\n"
    "int main(void)\n"
    "{\n"
    "    char err[256] = \"\";\n"
    "    bp_mpi m;\n"
    "    int rc = bp_mpi_init(&m, MPI_COMM_WORLD, err, sizeof err);\n"
    "    printf(\"%d %s\\n\", rc, err);\n"
    "    m.comm = MPI_COMM_WORLD;\n"
    "    printf(\"%d\\n\", bp_mpi_allreduce(err, 1, 3, &m));\n"
    "    return 0;\n"
    "}\n";

static void test_errors(void)
{
    if (!have(TEST_MPICC) || !have("mpirun")) {
        printf("\n  [mpi] SKIPPED: %s or mpirun not found ", TEST_MPICC);
        return;
    }
    char *dir = test_tmp_path("mpi_errors");
    char *abs_dir = absolute(dir);
    char *lib = absolute(TEST_LIBBP_MPI), *libbp = absolute(TEST_LIBBP);
    char *src = test_format("%s/no_init.c", abs_dir);
    char *mk = test_format("rm -rf '%s' && mkdir -p '%s'", abs_dir, abs_dir);
    CU_ASSERT_EQUAL_FATAL(test_run(mk, NULL, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(test_write_file(src, no_init_program), 0);
    const char *env = TEST_SANITIZE ? "ASAN_OPTIONS=detect_leaks=0 " : "";
    char *cmd = test_format("%s %s -Werror -Iruntime -Iruntime/mpi -o '%s/no_init' '%s' '%s' '%s' "
                            "-lm 2>&1 && %s'%s/no_init'",
                            TEST_MPICC, TEST_CFLAGS, abs_dir, src, lib, libbp, env, abs_dir);
    char *out = NULL;
    int rc = test_run(cmd, &out, NULL);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(out ? out : "",
                           "-1 bp_mpi: MPI is not running (call MPI_Init first, and "
                           "MPI_Finalize only after training)\n-1\n");
    free(out);
    free(cmd);

    /* A missing data file on both ranks: status not 0, the message, no
     * hang. The program is the one test_digits_two_ranks built. */
    char *mpi_dir = test_tmp_path("mpi"), *abs_mpi = absolute(mpi_dir);
    char *prog = test_format("%s/digits/train_digits_mpi", abs_mpi);
    free(mpi_dir);
    free(abs_mpi);
    if (access(prog, X_OK) == 0) {
        const char *mpirun = getuid() == 0 ? "mpirun --allow-run-as-root --oversubscribe"
                                           : "mpirun --oversubscribe";
        cmd = test_format("OMPI_MCA_btl_vader_single_copy_mechanism=none %stimeout 120 %s -np 2 "
                          "'%s' '%s/x.weights' 1 '%s/missing.csv' 2>&1",
                          env, mpirun, prog, abs_dir, abs_dir);
        out = NULL;
        rc = test_run(cmd, &out, NULL);
        CU_ASSERT(rc != 0 && rc != 124);
        CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "missing.csv: cannot open"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "train_digits_mpi: rank "));
        free(out);
        free(cmd);
    } else {
        CU_FAIL("train_digits_mpi was not built by the test before");
    }
    free(prog);
    free(mk);
    free(src);
    free(lib);
    free(libbp);
    free(abs_dir);
    free(dir);
}

void register_mpi(void)
{
    CU_pSuite s = CU_add_suite("mpi", NULL, NULL);
    CU_add_test(s, "digits: mpirun -np 2 ends where 1 process ends", test_digits_two_ranks);
    CU_add_test(s, "errors: MPI not running, a rank without data", test_errors);
}
