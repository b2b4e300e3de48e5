/* test_parallel.c — data-parallel training (bp_parallel, parallel.c) with
 * an all-reduce hook of the test's own: 2 or 3 ranks are threads of this
 * process, and the hook sums their buffers at a barrier. Each rank trains
 * on its share of every global batch; the result must be the one-process
 * result on the whole batch, within round-off (1e-12 in double, 1e-5 in
 * float), with every rank's parameters bit-identical. The MPI hook and a
 * real `mpirun -np 2` run are tested in test_mpi.c.
 *
 * The model is written by hand (no compiler involved): softmax regression
 * over 3 classes of 2 features, theta = W[3, 2], b[3]. */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { C = 3, D = 2, P = C * D + C, MAX_RANKS = 4 };

/* ------------------------------------------------------------------------ */
/* The model, float or double; sums in double. */

static double rd(const void *p, int rs, size_t i)
{
    return rs == 4 ? (double)((const float *)p)[i] : ((const double *)p)[i];
}

static void wr(void *p, int rs, size_t i, double v)
{
    if (rs == 4)
        ((float *)p)[i] = (float)v;
    else
        ((double *)p)[i] = v;
}

static void probs(int rs, const void *th, const void *x, size_t k, double p[C])
{
    double mx = -INFINITY, s = 0;
    for (size_t c = 0; c < C; c++) {
        p[c] = rd(th, rs, D * C + c);
        for (size_t j = 0; j < D; j++)
            p[c] += rd(th, rs, D * c + j) * rd(x, rs, D * k + j);
        mx = p[c] > mx ? p[c] : mx;
    }
    for (size_t c = 0; c < C; c++)
        s += (p[c] = exp(p[c] - mx));
    for (size_t c = 0; c < C; c++)
        p[c] /= s;
}

static double forward(int rs, const void *th, const void *const in[], int n, void *ws)
{
    double *p = ws, L = 0;
    for (size_t k = 0; k < (size_t)n; k++) {
        probs(rs, th, in[0], k, p + C * k);
        for (size_t c = 0; c < C; c++)
            L -= rd(in[1], rs, C * k + c) * log(p[C * k + c]);
    }
    return L / n;
}

static void backward(int rs, const void *const in[], int n, const void *ws, void *g)
{
    const double *p = ws;
    double acc[P] = {0};
    for (size_t k = 0; k < (size_t)n; k++)
        for (size_t c = 0; c < C; c++) {
            double dz = (p[C * k + c] - rd(in[1], rs, C * k + c)) / n;
            for (size_t j = 0; j < D; j++)
                acc[D * c + j] += dz * rd(in[0], rs, D * k + j);
            acc[D * C + c] += dz;
        }
    for (size_t j = 0; j < P; j++)
        wr(g, rs, j, acc[j]);
}

static void predict(int rs, const void *th, const void *const in[], int n, void *const out[])
{
    for (size_t k = 0; k < (size_t)n; k++) {
        double p[C];
        probs(rs, th, in[0], k, p);
        for (size_t c = 0; c < C; c++)
            wr(out[0], rs, C * k + c, p[c]);
    }
}

static size_t ws_size(int n)
{
    return (size_t)n * C * sizeof(double);
}

#define WRAP(RS, SUF)                                                                   \
    static double f_##SUF(const void *th, const void *const in[], int n, void *ws)     \
    {                                                                                   \
        return forward(RS, th, in, n, ws);                                              \
    }                                                                                   \
    static void b_##SUF(const void *th, const void *const in[], int n, void *ws,        \
                        void *g, void *const gi[])                                      \
    {                                                                                   \
        (void)th;                                                                       \
        (void)gi;                                                                       \
        backward(RS, in, n, ws, g);                                                     \
    }                                                                                   \
    static void p_##SUF(const void *th, const void *const in[], int n, void *ws,        \
                        void *const out[])                                              \
    {                                                                                   \
        (void)ws;                                                                       \
        predict(RS, th, in, n, out);                                                    \
    }
WRAP(4, f)
WRAP(8, d)

static const bp_tensor_info params[] = {
    {.name = "W", .rank = 2, .dims = {C, D, 1, 1}, .size = C * D, .offset = 0},
    {.name = "b", .rank = 1, .dims = {C, 1, 1, 1}, .size = C, .offset = C * D},
};
static const bp_tensor_info inputs[] = {
    {.name = "x", .rank = 1, .dims = {D, 1, 1, 1}, .size = D},
    {.name = "y", .rank = 1, .dims = {C, 1, 1, 1}, .size = C},
};
static const bp_tensor_info outputs[] = {
    {.name = "p", .rank = 1, .dims = {C, 1, 1, 1}, .size = C},
};

static bp_model model(int rs)
{
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = "softmax";
    m.real_size = rs;
    m.num_params = P;
    m.num_param_tensors = 2;
    m.params = params;
    m.num_inputs = 2;
    m.inputs = inputs;
    m.num_outputs = 1;
    m.outputs = outputs;
    m.loss_name = "L";
    m.workspace_size = ws_size;
    m.forward = rs == 4 ? f_f : f_d;
    m.backward = rs == 4 ? b_f : b_d;
    m.predict = rs == 4 ? p_f : p_d;
    return m;
}

/* Three overlapping Gaussian blobs, so training keeps moving. */
static bp_dataset blobs(size_t rows, unsigned long long seed)
{
    static const double centre[C][D] = {{1, 0}, {-0.5, 0.9}, {-0.5, -0.9}};
    bp_dataset d;
    if (bp_data_create(&d, rows, D, 0, C, NULL, 0) != 0)
        CU_FAIL("bp_data_create");
    bp_rng r;
    bp_rng_seed(&r, seed);
    for (size_t i = 0; i < rows; i++) {
        int c = (int)(bp_rng_next(&r) % C);
        for (size_t j = 0; j < D; j++)
            d.x[D * i + j] = bp_rng_normal(&r, centre[c][j], 0.8);
        d.label[i] = c;
        d.y[C * i + (size_t)c] = 1;
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* The fake all-reduce: the last rank to arrive adds every rank's buffer, in
 * rank order, in double, writes the sum into all of them and releases the
 * others. A rank that waits more than 10 s gives up (status -99), so a
 * broken loop fails the test instead of hanging it. */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int size, arrived;
    unsigned long generation;
    void *bufs[MAX_RANKS];
    size_t count;
    int real_size;
    long calls;      /* completed all-reduces */
    long fail_on;    /* > 0: this call (1-based) returns 7 on every rank */
    int tamper;      /* nudge rank 1's sum of every gradient all-reduce */
} hub;

typedef struct {
    hub *h;
    int rank;
} port;

static int fake_allreduce(void *buf, size_t count, int rs, void *user)
{
    port *me = user;
    hub *h = me->h;
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    unsigned long gen = h->generation;
    long call = h->calls + 1;
    h->bufs[me->rank] = buf;
    if (h->arrived == 0) {
        h->count = count;
        h->real_size = rs;
    } else if (h->count != count || h->real_size != rs) {
        rc = -98; /* the ranks disagree on the call: a bug in the loop */
    }
    if (++h->arrived == h->size) {
        for (size_t i = 0; i < count; i++) {
            double s = 0;
            for (int r = 0; r < h->size; r++)
                s += rd(h->bufs[r], rs, i);
            for (int r = 0; r < h->size; r++)
                wr(h->bufs[r], rs, i, s);
        }
        if (h->tamper && count == P + 1)
            wr(h->bufs[1], rs, 0, rd(h->bufs[1], rs, 0) * 1.001 + 1e-3);
        h->arrived = 0;
        h->calls++;
        h->generation++;
        pthread_cond_broadcast(&h->cv);
    } else {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        while (h->generation == gen && rc == 0)
            if (pthread_cond_timedwait(&h->cv, &h->mu, &until) == ETIMEDOUT)
                rc = -99;
    }
    if (h->fail_on == call)
        rc = 7;
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* One rank's bp_train call, run on its own thread. */
typedef struct {
    const bp_model *m;
    unsigned char theta[P * 8];
    const bp_dataset *train, *test;
    bp_train_config cfg;
    bp_parallel par;
    port port;
    bp_epoch_report last;
    double train_loss[16], test_loss[16], test_acc[16];
    int epochs_seen, stop_at;
    int rc;
    char err[256];
} job;

static int record(const bp_epoch_report *r, void *user)
{
    job *j = user;
    if (j->epochs_seen < 16) {
        j->train_loss[j->epochs_seen] = r->train_loss;
        j->test_loss[j->epochs_seen] = r->test_loss;
        j->test_acc[j->epochs_seen] = r->test_acc;
    }
    j->epochs_seen++;
    return j->stop_at > 0 && r->epoch >= j->stop_at;
}

static void *run_job(void *arg)
{
    job *j = arg;
    j->rc = bp_train(j->m, j->theta, j->train, j->test, &j->cfg, &j->last, j->err,
                     sizeof j->err);
    return NULL;
}

/* The settings every test starts from: Adam, batch 7 over 92 rows (13 full
 * batches and one of a single row), 5 epochs, eval_train on. */
static void setup(job *j, const bp_model *m, const bp_dataset *tr, const bp_dataset *te)
{
    memset(j, 0, sizeof *j);
    j->m = m;
    j->train = tr;
    j->test = te;
    for (size_t i = 0; i < P; i++)
        wr(j->theta, m->real_size, i, 0.1 * (double)((i * 7) % 5) - 0.2);
    j->cfg = bp_train_defaults();
    j->cfg.verbose = 0;
    j->cfg.batch_size = 7;
    j->cfg.epochs = 5;
    j->cfg.seed = 11;
    j->cfg.optim.lr = 0.05;
    j->cfg.eval_train = 1;
    j->cfg.on_epoch = record;
    j->cfg.user = j;
}

/* Runs jobs[0..size) as `size` ranks of one hub. */
static void run_ranks(hub *h, job *jobs, int size)
{
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->size = size;
    pthread_t t[MAX_RANKS];
    for (int r = 0; r < size; r++) {
        jobs[r].port.h = h;
        jobs[r].port.rank = r;
        jobs[r].par.rank = r;
        jobs[r].par.size = size;
        jobs[r].par.allreduce = fake_allreduce;
        jobs[r].par.user = &jobs[r].port;
        jobs[r].cfg.parallel = &jobs[r].par;
        jobs[r].cfg.user = &jobs[r];
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[r], NULL, run_job, &jobs[r]), 0);
    }
    for (int r = 0; r < size; r++)
        pthread_join(t[r], NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
}

static double max_abs_diff(const void *a, const void *b, int rs)
{
    double worst = 0;
    for (size_t i = 0; i < P; i++) {
        double d = fabs(rd(a, rs, i) - rd(b, rs, i));
        worst = d > worst ? d : worst;
    }
    return worst;
}

/* ------------------------------------------------------------------------ */
/* Tests */

/* 2 and 3 ranks against one process, float and double. */
static void test_matches_one_process(void)
{
    bp_dataset tr = blobs(92, 1), te = blobs(31, 2);
    for (int rs = 8; rs >= 4; rs -= 4) {
        bp_model m = model(rs);
        double tol = rs == 8 ? 1e-12 : 1e-5;
        job one;
        setup(&one, &m, &tr, &te);
        unsigned char start[P * 8];
        memcpy(start, one.theta, sizeof start);
        run_job(&one);
        CU_ASSERT_EQUAL_FATAL(one.rc, 0);
        CU_ASSERT_EQUAL(one.last.step, 5 * 14);
        /* It trained: the parameters moved far more than the tolerance. */
        CU_ASSERT(max_abs_diff(one.theta, start, rs) > 0.1);
        for (int size = 2; size <= 3; size++) {
            job jobs[MAX_RANKS];
            hub h;
            memset(&h, 0, sizeof h);
            for (int r = 0; r < size; r++)
                setup(&jobs[r], &m, &tr, &te);
            run_ranks(&h, jobs, size);
            /* One all-reduce per step, two per epoch, two before. */
            CU_ASSERT_EQUAL(h.calls, 5 * 14 + 5 * 2 + 2);
            for (int r = 0; r < size; r++) {
                CU_ASSERT_EQUAL(jobs[r].rc, 0);
                if (jobs[r].rc != 0)
                    fprintf(stderr, "\n[parallel] rank %d: %s\n", r, jobs[r].err);
                CU_ASSERT_EQUAL(jobs[r].last.step, one.last.step);
                CU_ASSERT_EQUAL(jobs[r].epochs_seen, 5);
                /* Every rank holds the same bits. */
                CU_ASSERT(memcmp(jobs[r].theta, jobs[0].theta, P * (size_t)rs) == 0);
                CU_ASSERT(memcmp(jobs[r].train_loss, jobs[0].train_loss,
                                 sizeof jobs[r].train_loss) == 0);
            }
            double diff = max_abs_diff(jobs[0].theta, one.theta, rs);
            CU_ASSERT(diff <= tol);
            if (diff > tol)
                fprintf(stderr, "\n[parallel] %d ranks, real_size %d: theta differs by %g\n",
                        size, rs, diff);
            for (int e = 0; e < 5; e++) {
                CU_ASSERT_DOUBLE_EQUAL(jobs[0].train_loss[e], one.train_loss[e], tol);
                CU_ASSERT_DOUBLE_EQUAL(jobs[0].test_loss[e], one.test_loss[e], tol);
                CU_ASSERT_DOUBLE_EQUAL(jobs[0].test_acc[e], one.test_acc[e], 1e-15);
            }
            CU_ASSERT(jobs[0].test_acc[4] > 0.6);
        }
    }
    bp_data_free(&tr);
    bp_data_free(&te);
}

/* Without eval_train the report's train loss is the running mean of the
 * batches' losses, reduced over the ranks; with a caller's optimiser and
 * momentum SGD the result matches one process too. */
static void test_running_loss_and_optimizer(void)
{
    bp_dataset tr = blobs(92, 3);
    bp_model m = model(8);
    bp_optim_config oc = bp_optim_defaults(BP_MOMENTUM);
    oc.lr = 0.1;
    oc.clip_norm = 0.5;
    double state[MAX_RANKS + 1][P];
    bp_optimizer opt[MAX_RANKS + 1];
    job one, jobs[2];
    setup(&one, &m, &tr, NULL);
    one.cfg.eval_train = 0;
    bp_optim_init(&opt[2], &oc, &m, P, 8, state[2]);
    one.cfg.optimizer = &opt[2];
    run_job(&one);
    CU_ASSERT_EQUAL_FATAL(one.rc, 0);
    hub h;
    memset(&h, 0, sizeof h);
    for (int r = 0; r < 2; r++) {
        setup(&jobs[r], &m, &tr, NULL);
        jobs[r].cfg.eval_train = 0;
        bp_optim_init(&opt[r], &oc, &m, P, 8, state[r]);
        jobs[r].cfg.optimizer = &opt[r];
    }
    run_ranks(&h, jobs, 2);
    CU_ASSERT_EQUAL(jobs[0].rc, 0);
    CU_ASSERT_EQUAL(jobs[1].rc, 0);
    CU_ASSERT(max_abs_diff(jobs[0].theta, one.theta, 8) <= 1e-12);
    CU_ASSERT(memcmp(state[0], state[1], sizeof state[0]) == 0);
    CU_ASSERT_EQUAL(opt[0].step, opt[2].step);
    for (int e = 0; e < 5; e++)
        CU_ASSERT_DOUBLE_EQUAL(jobs[1].train_loss[e], one.train_loss[e], 1e-12);
    CU_ASSERT(isnan(jobs[0].test_loss[0]));
    bp_data_free(&tr);
}

/* One rank with a hook trains bit for bit as without one, and never calls
 * it. */
static void test_one_rank(void)
{
    bp_dataset tr = blobs(50, 4);
    bp_model m = model(4);
    job plain, hooked;
    setup(&plain, &m, &tr, NULL);
    setup(&hooked, &m, &tr, NULL);
    run_job(&plain);
    hub h;
    memset(&h, 0, sizeof h);
    h.size = 1;
    hooked.port.h = &h;
    hooked.par.rank = 0;
    hooked.par.size = 1;
    hooked.par.allreduce = fake_allreduce;
    hooked.par.user = &hooked.port;
    hooked.cfg.parallel = &hooked.par;
    run_job(&hooked);
    CU_ASSERT_EQUAL(plain.rc, 0);
    CU_ASSERT_EQUAL(hooked.rc, 0);
    CU_ASSERT(memcmp(plain.theta, hooked.theta, sizeof plain.theta) == 0);
    CU_ASSERT_EQUAL(h.calls, 0);
    /* Size 1 needs no hook at all. */
    hooked.par.allreduce = NULL;
    run_job(&hooked);
    CU_ASSERT_EQUAL(hooked.rc, 0);
    bp_data_free(&tr);
}

/* When one rank's callback stops, every rank stops after that epoch. */
static void test_stop(void)
{
    bp_dataset tr = blobs(40, 5);
    bp_model m = model(8);
    job jobs[2];
    hub h;
    memset(&h, 0, sizeof h);
    for (int r = 0; r < 2; r++)
        setup(&jobs[r], &m, &tr, NULL);
    jobs[1].stop_at = 2;
    run_ranks(&h, jobs, 2);
    for (int r = 0; r < 2; r++) {
        CU_ASSERT_EQUAL(jobs[r].rc, 0);
        CU_ASSERT_EQUAL(jobs[r].last.epoch, 2);
        CU_ASSERT_EQUAL(jobs[r].last.stopped, 1);
    }
    bp_data_free(&tr);
}

/* Bad rank or size: a message, nothing trained. */
static void test_bad_config(void)
{
    bp_dataset tr = blobs(20, 6);
    bp_model m = model(8);
    static const struct {
        int rank, size, hook;
        const char *msg;
    } cases[] = {
        {0, 0, 1, "parallel: size 0 is below 1"},
        {0, -3, 1, "parallel: size -3 is below 1"},
        {2, 2, 1, "parallel: rank 2 is not in 0..1 (size 2)"},
        {-1, 2, 1, "parallel: rank -1 is not in 0..1 (size 2)"},
        {1, 2, 0, "parallel: 2 ranks but no allreduce function"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        job j;
        setup(&j, &m, &tr, NULL);
        unsigned char before[sizeof j.theta];
        memcpy(before, j.theta, sizeof before);
        hub h;
        memset(&h, 0, sizeof h);
        j.port.h = &h;
        j.par.rank = cases[i].rank;
        j.par.size = cases[i].size;
        j.par.allreduce = cases[i].hook ? fake_allreduce : NULL;
        j.par.user = &j.port;
        j.cfg.parallel = &j.par;
        run_job(&j);
        CU_ASSERT_NOT_EQUAL(j.rc, 0);
        CU_ASSERT_STRING_EQUAL(j.err, cases[i].msg);
        CU_ASSERT(memcmp(before, j.theta, sizeof before) == 0);
        CU_ASSERT_EQUAL(h.calls, 0);
        /* The scratch size is computed for a config alike. */
        size_t need = 0;
        CU_ASSERT_EQUAL(bp_train_scratch_size(&m, &j.cfg, tr.rows, &need, NULL, 0), BP_OK);
        CU_ASSERT(need > 0);
    }
    bp_data_free(&tr);
}

/* The ranks disagree: every rank fails with the same message (and
 * BP_ERR_MISMATCH; BP_ERR_IO for a failing hook). */
static void expect_all_fail(job *jobs, int size, const char *msg)
{
    int hook = strstr(msg, "the all-reduce failed") != NULL;
    for (int r = 0; r < size; r++) {
        CU_ASSERT_EQUAL(jobs[r].rc, hook ? BP_ERR_IO : BP_ERR_MISMATCH);
        CU_ASSERT_STRING_EQUAL(jobs[r].err, msg);
    }
}

static void test_disagreement(void)
{
    bp_dataset tr = blobs(30, 7), other = blobs(30, 8);
    bp_model m = model(8);
    job jobs[2];
    hub h;
    const char *settings = "parallel: the ranks were given different data or settings "
                           "(every rank must call bp_train with the same training and "
                           "test sets, config and optimiser state)";

    /* Another seed. */
    memset(&h, 0, sizeof h);
    for (int r = 0; r < 2; r++)
        setup(&jobs[r], &m, &tr, NULL);
    jobs[1].cfg.seed = 12;
    run_ranks(&h, jobs, 2);
    expect_all_fail(jobs, 2, settings);
    CU_ASSERT_EQUAL(h.calls, 1);

    /* Other data of the same shape. */
    memset(&h, 0, sizeof h);
    for (int r = 0; r < 2; r++)
        setup(&jobs[r], &m, r ? &other : &tr, NULL);
    run_ranks(&h, jobs, 2);
    expect_all_fail(jobs, 2, settings);

    /* Another learning rate. */
    memset(&h, 0, sizeof h);
    for (int r = 0; r < 2; r++)
        setup(&jobs[r], &m, &tr, NULL);
    jobs[0].cfg.optim.lr = 0.01;
    run_ranks(&h, jobs, 2);
    expect_all_fail(jobs, 2, settings);

    /* Other initial parameters. */
    memset(&h, 0, sizeof h);
    for (int r = 0; r < 2; r++)
        setup(&jobs[r], &m, &tr, NULL);
    wr(jobs[1].theta, 8, 4, 0.5);
    run_ranks(&h, jobs, 2);
    expect_all_fail(jobs, 2,
                    "parallel: the ranks start from different parameters (initialise "
                    "theta the same way on every rank: the same seed or the same "
                    "weights file)");

    /* An all-reduce that gives rank 1 another sum: caught after epoch 1. */
    memset(&h, 0, sizeof h);
    h.tamper = 1;
    for (int r = 0; r < 2; r++)
        setup(&jobs[r], &m, &tr, NULL);
    run_ranks(&h, jobs, 2);
    expect_all_fail(jobs, 2,
                    "parallel: the ranks' parameters differ after epoch 1 (the "
                    "all-reduce must give every rank the same sum, bit for bit)");

    /* An all-reduce that fails on the third step (after the two checks). */
    memset(&h, 0, sizeof h);
    h.fail_on = 5;
    for (int r = 0; r < 2; r++)
        setup(&jobs[r], &m, &tr, NULL);
    run_ranks(&h, jobs, 2);
    expect_all_fail(jobs, 2, "parallel: the all-reduce failed (status 7) at epoch 1, step 3");
    CU_ASSERT_EQUAL(h.calls, 5);
    bp_data_free(&tr);
    bp_data_free(&other);
}

/* Divergence is seen by every rank at the same step. */
static void test_divergence(void)
{
    bp_dataset tr = blobs(30, 9);
    bp_model m = model(8);
    job jobs[2];
    hub h;
    memset(&h, 0, sizeof h);
    for (int r = 0; r < 2; r++) {
        setup(&jobs[r], &m, &tr, NULL);
        jobs[r].cfg.optim = bp_optim_defaults(BP_SGD);
        jobs[r].cfg.optim.lr = 1e308;
        jobs[r].cfg.epochs = 50;
    }
    run_ranks(&h, jobs, 2);
    CU_ASSERT_NOT_EQUAL(jobs[0].rc, 0);
    CU_ASSERT(strncmp(jobs[0].err, "training diverged: loss is ", 27) == 0);
    CU_ASSERT_STRING_EQUAL(jobs[0].err, jobs[1].err);
    bp_data_free(&tr);
}

void register_parallel(void)
{
    CU_pSuite s = CU_add_suite("parallel", NULL, NULL);
    CU_add_test(s, "2 and 3 ranks end where 1 process ends", test_matches_one_process);
    CU_add_test(s, "running loss, caller's optimiser", test_running_loss_and_optimizer);
    CU_add_test(s, "1 rank: bit-identical, hook unused", test_one_rank);
    CU_add_test(s, "one rank stops, all stop", test_stop);
    CU_add_test(s, "bad rank or size", test_bad_config);
    CU_add_test(s, "ranks that disagree fail alike", test_disagreement);
    CU_add_test(s, "divergence seen by every rank", test_divergence);
}
