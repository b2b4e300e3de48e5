/* test_gemm.c — the matrix kernels of gemm.c: every transpose, odd sizes
 * 1..70 in each dimension on both sides of the packed path's threshold,
 * blocks bigger than the packing blocks, alpha and beta (beta 0 with NaN
 * in C), leading dimensions wider than the matrices, every instruction
 * set this CPU runs (forced through bp_isa_force), bit-identical results
 * for 1..4 threads, and concurrent calls from application threads. Float
 * results are compared with a double reference of the same inputs. */
#include "bp.h"
#include "internal.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* One product's operands and results in both precisions. */
typedef struct {
    int ta, tb, m, n, k, lda, ldb, ldc;
    size_t na, nb, nc;
    double *a, *b, *c, *want;
    float *af, *bf, *cf;
} gcase;

static void case_free(gcase *g)
{
    free(g->a); free(g->b); free(g->c); free(g->want);
    free(g->af); free(g->bf); free(g->cf);
}

/* Random operands (float-representable, in [-1, 1]), leading dimensions
 * `pad` wider than needed, C's rows NaN when beta is 0. */
static void case_make(gcase *g, int ta, int tb, int m, int n, int k, int pad,
                      double beta, unsigned long long seed)
{
    bp_rng r;
    bp_rng_seed(&r, seed);
    g->ta = ta; g->tb = tb; g->m = m; g->n = n; g->k = k;
    int arows = ta ? k : m, acols = ta ? m : k;
    int brows = tb ? n : k, bcols = tb ? k : n;
    g->lda = acols + pad;
    g->ldb = bcols + 2 * pad;
    g->ldc = n + 3 * pad;
    g->na = (size_t)arows * g->lda;
    g->nb = (size_t)brows * g->ldb;
    g->nc = (size_t)m * g->ldc;
    g->a = malloc(g->na * 8); g->b = malloc(g->nb * 8);
    g->c = malloc(g->nc * 8); g->want = malloc(g->nc * 8);
    g->af = malloc(g->na * 4); g->bf = malloc(g->nb * 4);
    g->cf = malloc(g->nc * 4);
    bp_fill_uniform(&r, g->af, 4, g->na, -1, 1);
    bp_fill_uniform(&r, g->bf, 4, g->nb, -1, 1);
    bp_fill_uniform(&r, g->cf, 4, g->nc, -1, 1);
    for (size_t i = 0; i < g->nc; i++)
        if (beta == 0 && i % (size_t)g->ldc < (size_t)n)
            g->cf[i] = NAN;            /* must not be read */
    for (size_t i = 0; i < g->na; i++) g->a[i] = g->af[i];
    for (size_t i = 0; i < g->nb; i++) g->b[i] = g->bf[i];
    for (size_t i = 0; i < g->nc; i++) g->c[i] = g->cf[i];
    memcpy(g->want, g->c, g->nc * 8);
}

static void reference(gcase *g, double alpha, double beta)
{
    for (int i = 0; i < g->m; i++)
        for (int j = 0; j < g->n; j++) {
            double s = 0;
            for (int p = 0; p < g->k; p++)
                s += (g->ta ? g->a[(size_t)p * g->lda + i]
                            : g->a[(size_t)i * g->lda + p])
                     * (g->tb ? g->b[(size_t)j * g->ldb + p]
                              : g->b[(size_t)p * g->ldb + j]);
            double *w = &g->want[(size_t)i * g->ldc + j];
            *w = alpha * s + (beta == 0 ? 0 : beta * *w);
        }
}

/* Number of wrong entries of C; the padding between rows must hold what
 * it held (want keeps it: the reference writes only columns < n). */
static int check(const gcase *g, int prec)
{
    double tol = (prec == 8 ? 1e-14 : 1e-6) * (g->k + 8);
    int bad = 0;
    for (size_t i = 0; i < g->nc; i++) {
        double got = prec == 8 ? g->c[i] : g->cf[i];
        if (i % (size_t)g->ldc >= (size_t)g->n) {
            if (!(got == g->want[i] || (isnan(got) && isnan(g->want[i]))))
                bad++;
        } else if (!(fabs(got - g->want[i]) <= tol)) {
            bad++;
        }
    }
    return bad;
}

/* Runs one product in precision prec against the reference; prints what
 * failed. */
static int one(int prec, int ta, int tb, int m, int n, int k, int pad,
               double alpha, double beta)
{
    gcase g;
    case_make(&g, ta, tb, m, n, k, pad, beta,
              (unsigned long long)(m * 7919 + n * 104729 + k * 31 + ta * 2 + tb));
    reference(&g, alpha, beta);
    if (prec == 8)
        bp_gemm_d(ta, tb, m, n, k, alpha, g.a, g.lda, g.b, g.ldb, beta, g.c,
                  g.ldc);
    else
        bp_gemm_f(ta, tb, m, n, k, (float)alpha, g.af, g.lda, g.bf, g.ldb,
                  (float)beta, g.cf, g.ldc);
    int bad = check(&g, prec);
    if (bad)
        fprintf(stderr, "gemm %s isa %s ta %d tb %d %dx%dx%d pad %d alpha %g "
                "beta %g: %d wrong\n", prec == 8 ? "d" : "f", bp_kernels(), ta,
                tb, m, n, k, pad, alpha, beta, bad);
    case_free(&g);
    return bad;
}

static const double coefs[][2] = {{1, 0}, {1, 1}, {-0.5, 0.75}, {2, 0}};

/* Sizes 1..70 in one dimension with the others fixed so that products
 * fall on both sides of the packed path's threshold; every transpose,
 * both precisions, alpha/beta cycling, padding on every other size.
 * `stride` thins the sweep (used for the narrower instruction sets). */
static int sweep(int stride)
{
    int bad = 0, c = 0;
    for (int d = 1; d <= 70; d += stride)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int prec = 4; prec <= 8; prec += 4) {
                    const double *ab = coefs[c++ % 4];
                    int pad = d % 2 ? 3 : 0;
                    bad += one(prec, ta, tb, d, 37, 45, pad, ab[0], ab[1]) != 0;
                    bad += one(prec, ta, tb, 33, d, 41, pad, ab[0], ab[1]) != 0;
                    bad += one(prec, ta, tb, 29, 39, d, pad, ab[0], ab[1]) != 0;
                }
    return bad;
}

/* Shapes larger than the packing blocks (KC = 256; MC, NC), narrow
 * A·Bᵀ, and the workloads' products. */
static int big(void)
{
    static const int shapes[][3] = {
        {130, 300, 600}, {300, 70, 530}, {67, 1100, 33}, {128, 10, 512},
        {10, 512, 128}, {200, 9, 300}, {2, 700, 300}};
    int bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int prec = 4; prec <= 8; prec += 4) {
                    const double *ab = coefs[(s + (size_t)ta + 2 * (size_t)tb) % 4];
                    bad += one(prec, ta, tb, shapes[s][0], shapes[s][1],
                               shapes[s][2], 1, ab[0], ab[1]) != 0;
                }
    return bad;
}

static int isas_run;

static void test_gemm_each_isa(void)
{
    int best = bp_isa();
    isas_run = 0;
    for (int isa = 0; isa < BP_ISA_COUNT; isa++) {
        if (bp_isa_force(isa) != 0)
            continue;                   /* this CPU cannot run it */
        isas_run++;
        int bad = sweep(isa == best ? 1 : 3) + big();
        CU_ASSERT_EQUAL(bad, 0);
        if (bad)
            fprintf(stderr, "gemm: %d failing cases with %s kernels\n", bad,
                    bp_kernels());
    }
    bp_isa_force(-1);
    CU_ASSERT_EQUAL(bp_isa(), best);
    /* The portable kernels run everywhere; on x86-64 with GCC or clang
     * the vector ones are built too, and this machine must have them. */
    CU_ASSERT(isas_run >= 1);
#ifdef BP_X86_KERNELS
    CU_ASSERT(__builtin_cpu_supports("avx2") ? isas_run >= 2 : 1);
    CU_ASSERT(__builtin_cpu_supports("avx512f") ? isas_run == 3 : 1);
#endif
    CU_ASSERT_EQUAL(bp_isa_force(BP_ISA_COUNT), -1);
}

/* 1, 2, 3 and 4 threads give the same bits, for products big enough to
 * be split along n and along m, in both precisions and every ISA. */
static void test_gemm_threads_same_bits(void)
{
    static const int shapes[][5] = {
        /* ta, tb, m, n, k */
        {0, 1, 130, 517, 67}, {1, 0, 300, 40, 200}, {0, 0, 64, 129, 300},
        {1, 1, 257, 255, 33}};
    int best = bp_isa();
    for (int isa = 0; isa < BP_ISA_COUNT; isa++) {
        if (bp_isa_force(isa) != 0)
            continue;
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
            gcase g;
            const int *sh = shapes[s];
            case_make(&g, sh[0], sh[1], sh[2], sh[3], sh[4], 2, 0.5, 99 + s);
            float *f1 = malloc(g.nc * 4);
            double *d1 = malloc(g.nc * 8);
            float *f0 = malloc(g.nc * 4);
            double *d0 = malloc(g.nc * 8);
            memcpy(f0, g.cf, g.nc * 4);
            memcpy(d0, g.c, g.nc * 8);
            for (int t = 1; t <= 4; t++) {
                bp_set_num_threads(t);
                CU_ASSERT_EQUAL(bp_get_num_threads(), t);
                memcpy(g.cf, f0, g.nc * 4);
                memcpy(g.c, d0, g.nc * 8);
                bp_gemm_f(g.ta, g.tb, g.m, g.n, g.k, 1.5f, g.af, g.lda, g.bf,
                          g.ldb, 0.5f, g.cf, g.ldc);
                bp_gemm_d(g.ta, g.tb, g.m, g.n, g.k, 1.5, g.a, g.lda, g.b,
                          g.ldb, 0.5, g.c, g.ldc);
                if (t == 1) {
                    memcpy(f1, g.cf, g.nc * 4);
                    memcpy(d1, g.c, g.nc * 8);
                    reference(&g, 1.5, 0.5);
                    CU_ASSERT_EQUAL(check(&g, 4), 0);
                    CU_ASSERT_EQUAL(check(&g, 8), 0);
                } else {
                    CU_ASSERT(memcmp(f1, g.cf, g.nc * 4) == 0);
                    CU_ASSERT(memcmp(d1, g.c, g.nc * 8) == 0);
                }
            }
            free(f1); free(d1); free(f0); free(d0);
            case_free(&g);
        }
    }
    bp_isa_force(-1);
    CU_ASSERT_EQUAL(bp_isa(), best);
    bp_set_num_threads(1);
    bp_threads_shutdown();
    bp_set_num_threads(0);
    CU_ASSERT_EQUAL(bp_get_num_threads(), 1);
    bp_set_num_threads(1000);
    CU_ASSERT_EQUAL(bp_get_num_threads(), BP_MAX_THREADS);
    bp_set_num_threads(1);
}

/* Application threads calling bp_gemm at once, with the pool set to 2
 * threads (one of them gets it, the others run alone): every result must
 * equal the single-threaded one, bit for bit. */
typedef struct {
    const gcase *g;
    float *out;
    int rounds, bad;
    const float *want;
} user_job;

static void *user_thread(void *arg)
{
    user_job *j = arg;
    const gcase *g = j->g;
    for (int r = 0; r < j->rounds; r++) {
        bp_gemm_f(g->ta, g->tb, g->m, g->n, g->k, 1.0f, g->af, g->lda, g->bf,
                  g->ldb, 0.0f, j->out, g->ldc);
        if (memcmp(j->out, j->want, g->nc * 4) != 0)
            j->bad++;
    }
    return NULL;
}

static void test_gemm_concurrent_callers(void)
{
    gcase g;
    case_make(&g, 0, 1, 96, 300, 160, 0, 0, 5);
    float *want = malloc(g.nc * 4);
    bp_set_num_threads(1);
    bp_gemm_f(g.ta, g.tb, g.m, g.n, g.k, 1.0f, g.af, g.lda, g.bf, g.ldb, 0.0f,
              want, g.ldc);
    bp_set_num_threads(2);
    enum { USERS = 3 };
    pthread_t th[USERS];
    user_job jobs[USERS];
    for (int u = 0; u < USERS; u++) {
        jobs[u].g = &g;
        jobs[u].out = malloc(g.nc * 4);
        jobs[u].rounds = 20;
        jobs[u].bad = 0;
        jobs[u].want = want;
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[u], NULL, user_thread, &jobs[u]), 0);
    }
    for (int u = 0; u < USERS; u++) {
        pthread_join(th[u], NULL);
        CU_ASSERT_EQUAL(jobs[u].bad, 0);
        free(jobs[u].out);
    }
    bp_set_num_threads(1);
    bp_threads_shutdown();
    free(want);
    case_free(&g);
}

/* A child made by fork() while the pool has workers gets an empty pool
 * that fills again: a threaded product in the child finishes, with the
 * same bits. */
static void test_gemm_after_fork(void)
{
    gcase g;
    case_make(&g, 0, 1, 96, 300, 160, 0, 0, 6);
    float *want = malloc(g.nc * 4), *got = malloc(g.nc * 4);
    bp_set_num_threads(2);
    bp_gemm_f(g.ta, g.tb, g.m, g.n, g.k, 1.0f, g.af, g.lda, g.bf, g.ldb, 0.0f,
              want, g.ldc);
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        bp_gemm_f(g.ta, g.tb, g.m, g.n, g.k, 1.0f, g.af, g.lda, g.bf, g.ldb,
                  0.0f, got, g.ldc);
        _exit(memcmp(want, got, g.nc * 4) == 0 ? 0 : 1);
    }
    int status = -1;
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    bp_set_num_threads(1);
    bp_threads_shutdown();
    free(want);
    free(got);
    case_free(&g);
}

/* bp_parallel_for covers [0, count) exactly once, in ranges of at least
 * `grain`, at any thread count. */
static void mark(void *ctx, size_t lo, size_t hi)
{
    unsigned char *seen = ctx;
    for (size_t i = lo; i < hi; i++)
        seen[i]++;
}

static void test_parallel_for(void)
{
    static const size_t counts[] = {0, 1, 7, 1000, 100003};
    for (int t = 1; t <= 4; t++) {
        bp_set_num_threads(t);
        for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
            unsigned char *seen = calloc(counts[c] + 1, 1);
            bp_parallel_for(counts[c], 100, mark, seen);
            int ok = 1;
            for (size_t i = 0; i < counts[c]; i++)
                ok &= seen[i] == 1;
            CU_ASSERT(ok);
            CU_ASSERT_EQUAL(seen[counts[c]], 0);
            free(seen);
        }
    }
    bp_set_num_threads(1);
    bp_threads_shutdown();
}

void register_gemm(void);
void register_gemm(void)
{
    CU_pSuite s = CU_add_suite("gemm kernels", NULL, NULL);
    CU_add_test(s, "every ISA, transpose, size 1..70, alpha/beta", test_gemm_each_isa);
    CU_add_test(s, "1..4 threads give the same bits", test_gemm_threads_same_bits);
    CU_add_test(s, "concurrent callers", test_gemm_concurrent_callers);
    CU_add_test(s, "a threaded product after fork()", test_gemm_after_fork);
    CU_add_test(s, "bp_parallel_for covers every index once", test_parallel_for);
}
