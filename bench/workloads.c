/* workloads.c — the training steps of issue 7's table, bpgen's generated
 * code against hand-written C over OpenBLAS (blas.c); PyTorch runs the
 * same steps in torch_step.py, and run.sh interleaves the two programs'
 * rounds. Workloads (fp32, softmax cross-entropy, mean over the batch,
 * SGD with lr 0.01):
 *     4-16-3 tanh at batch 1 and 32, 784-128-10 relu at batch 64,
 *     784-512-512-10 relu at batch 128,
 * and the scalar chain S = L^2 + 2, P = sqrt(S) (value and derivative,
 * 10 million doubles) against a plain C loop (chain_plain.c, built with
 * -O3 -march=native -fno-math-errno).
 *
 * Modes:
 *   workloads --check DIR
 *       checks that the generated and the OpenBLAS steps give the same
 *       loss and gradients (one step with lr = 0 on batch 0; every
 *       gradient entry first set to NaN) and the same parameters after 3
 *       SGD steps; writes DIR/wl_NAME.bin (parameters, the batches, and
 *       the generated step's loss and gradient) for torch_step.py --check;
 *       checks the chain against the plain loop. Exit status 1 on any
 *       mismatch.
 *   workloads --round R --threads T [--ms MS] [--impl bpgen|openblas]
 *             --out FILE
 *       one round: for each workload, a timed loop of about MS ms of the
 *       generated step, then of the OpenBLAS one (chain: 3 calls of each,
 *       alternating), with bp_set_num_threads(T) and
 *       openblas_set_num_threads(T); appends "name impl threads round
 *       microseconds" lines to FILE. With --impl, only that
 *       implementation's loops (bpgen: with the chain's). run.sh times
 *       each in a process of its own: a library's idle threads spin for a
 *       while after its last call (OpenBLAS's about 0.1 s, with
 *       sched_yield; the runtime's 0.3 ms), and on 2 cores OpenBLAS's
 *       took a core from the generated step's second thread (784-128-10
 *       at 2 threads: 1.30x one thread in one process, 1.59x in its own). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bp.h"
#include "workloads.h"

/* OpenBLAS's own; declared again in case cblas.h is another BLAS's. */
void openblas_set_num_threads(int num_threads);

extern const bp_model wl_iris_model, wl_m128_model, wl_m512_model,
    chain_model;

typedef struct {
    const char *name;
    const bp_model *model;
    wl_arch arch;
    int n;
} workload;

static const workload workloads[] = {
    {"tanh_4-16-3_b1", &wl_iris_model, {2, {4, 16, 3, 0}, 1}, 1},
    {"tanh_4-16-3_b32", &wl_iris_model, {2, {4, 16, 3, 0}, 1}, 32},
    {"relu_784-128-10_b64", &wl_m128_model, {2, {784, 128, 10, 0}, 0}, 64},
    {"relu_784-512-512-10_b128", &wl_m512_model, {3, {784, 512, 512, 10}, 0}, 128},
};
#define NWL (int)(sizeof workloads / sizeof workloads[0])
#define NBATCHES 4
#define CHAIN_N 10000000L
#define LR 0.01f

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes > 0 ? bytes : 1);
    if (!p) {
        fprintf(stderr, "workloads: out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

/* The data of one workload: parameters from M_init(42), NBATCHES batches
 * of N(0, 1) features and random one-hot labels. */
typedef struct {
    const workload *w;
    size_t np;
    float *theta0, *theta, *grad, *xs, *ys;
    float *ws_gen, *ws_blas;
    bp_optimizer sgd;    /* the generated step's update: the runtime's SGD */
} wl_data;

static void wl_setup(wl_data *d, const workload *w)
{
    const bp_model *m = w->model;
    int ni = w->arch.size[0], no = w->arch.size[w->arch.layers];
    d->w = w;
    d->np = m->num_params;
    d->theta0 = xmalloc(d->np * 4);
    d->theta = xmalloc(d->np * 4);
    d->grad = xmalloc(d->np * 4);
    m->init(d->theta0, 42);
    size_t rows = (size_t)w->n * NBATCHES;
    d->xs = xmalloc(rows * ni * 4);
    d->ys = xmalloc(rows * no * 4);
    bp_rng r;
    bp_rng_seed(&r, 1000 + (unsigned long long)w->n);
    for (size_t i = 0; i < rows * ni; i++)
        d->xs[i] = (float)bp_rng_normal(&r, 0.0, 1.0);
    memset(d->ys, 0, rows * no * 4);
    for (size_t i = 0; i < rows; i++)
        d->ys[i * no + bp_rng_next(&r) % (unsigned)no] = 1.0f;
    d->ws_gen = xmalloc(m->workspace_size(w->n));
    d->ws_blas = xmalloc(blas_ws_floats(&w->arch, w->n) * 4);
    bp_optim_config sgd = bp_optim_defaults(BP_SGD);
    sgd.lr = LR;
    bp_optim_init(&d->sgd, &sgd, NULL, d->np, 4, NULL);
}

static void wl_free(wl_data *d)
{
    free(d->theta0); free(d->theta); free(d->grad); free(d->xs);
    free(d->ys); free(d->ws_gen); free(d->ws_blas);
}

/* One step of implementation `impl` (0 generated, 1 OpenBLAS) on batch b. */
static float step(wl_data *d, int impl, int b, float lr)
{
    const workload *w = d->w;
    int ni = w->arch.size[0], no = w->arch.size[w->arch.layers];
    const float *x = d->xs + (size_t)b * w->n * ni;
    const float *y = d->ys + (size_t)b * w->n * no;
    if (impl == 1)
        return blas_step(&w->arch, d->theta, x, y, w->n, d->ws_blas, d->grad,
                         lr);
    const void *inputs[2] = {x, y};
    const bp_model *m = w->model;
    float loss = (float)m->forward(d->theta, inputs, w->n, d->ws_gen);
    m->backward(d->theta, inputs, w->n, d->ws_gen, d->grad, NULL);
    if (lr != 0.0f) {
        /* theta -= lr grad by the runtime's SGD, as bp_train applies it
         * (vectorised, and threaded for large models) */
        d->sgd.cfg.lr = lr;
        bp_optim_step(&d->sgd, d->theta, d->grad, NULL, 0);
    }
    return loss;
}

/* Largest |a - b| over the largest |b|, tensor by tensor of m. */
static double rel_diff(const bp_model *m, const float *a, const float *b)
{
    double worst = 0;
    for (int t = 0; t < m->num_param_tensors; t++) {
        const bp_tensor_info *ti = &m->params[t];
        double d = 0, scale = 0;
        for (size_t i = ti->offset; i < ti->offset + ti->size; i++) {
            double e = fabs((double)a[i] - b[i]);
            d = e > d || e != e ? e : d;
            scale = fmax(scale, fabs(b[i]));
        }
        d = scale > 0 ? d / scale : d;
        worst = d > worst || d != d ? d : worst;
    }
    return worst;
}

static int write_data(const char *dir, const wl_data *d, float loss,
                      const float *grad)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, d->w->name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    const wl_arch *a = &d->w->arch;
    int head[10] = {a->layers, a->size[0], a->size[1], a->size[2], a->size[3],
                    a->tanh, d->w->n, NBATCHES, (int)d->np, 0};
    size_t rows = (size_t)d->w->n * NBATCHES;
    int ok = fwrite("BPWL", 1, 4, f) == 4
             && fwrite(head, sizeof head, 1, f) == 1
             && fwrite(d->theta0, 4, d->np, f) == d->np
             && fwrite(d->xs, 4, rows * a->size[0], f) == rows * a->size[0]
             && fwrite(d->ys, 4, rows * a->size[a->layers], f)
                    == rows * a->size[a->layers]
             && fwrite(&loss, 4, 1, f) == 1
             && fwrite(grad, 4, d->np, f) == d->np;
    if (fclose(f) != 0 || !ok) {
        fprintf(stderr, "workloads: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

/* The chain's data: L uniform in [-3, 3]. */
static double *chain_inputs(void)
{
    double *L = xmalloc(CHAIN_N * sizeof(double));
    bp_rng r;
    bp_rng_seed(&r, 77);
    for (long i = 0; i < CHAIN_N; i++)
        L[i] = bp_rng_uniform(&r, -3, 3);
    return L;
}

static double chain_gen(const double *L, double *dL, void *ws)
{
    const void *inputs[1] = {L};
    void *grad_inputs[1] = {dL};
    double dummy;
    double loss = chain_model.forward(NULL, inputs, (int)CHAIN_N, ws);
    chain_model.backward(NULL, inputs, (int)CHAIN_N, ws, &dummy, grad_inputs);
    return loss;
}

static int check(const char *dir)
{
    int bad = 0;
    printf("checks (largest difference relative to each tensor's largest "
           "entry; tolerance 1e-4)\n");
    for (int wi = 0; wi < NWL; wi++) {
        wl_data d;
        wl_setup(&d, &workloads[wi]);
        float loss[2];
        float *grad[2] = {xmalloc(d.np * 4), xmalloc(d.np * 4)};
        float *after[2] = {xmalloc(d.np * 4), xmalloc(d.np * 4)};
        for (int impl = 0; impl < 2; impl++) {
            memcpy(d.theta, d.theta0, d.np * 4);
            for (size_t i = 0; i < d.np; i++)
                d.grad[i] = NAN;
            loss[impl] = step(&d, impl, 0, 0.0f);
            memcpy(grad[impl], d.grad, d.np * 4);
            for (int b = 0; b < 3; b++)
                step(&d, impl, b, LR);
            for (size_t i = 0; i < d.np; i++)
                after[impl][i] = d.theta[i] - d.theta0[i];
        }
        double dl = fabs((double)loss[0] - loss[1]) / fmax(fabs(loss[1]), 1e-30);
        double dg = rel_diff(d.w->model, grad[0], grad[1]);
        double dt = rel_diff(d.w->model, after[0], after[1]);
        int ok = dl <= 1e-4 && dg <= 1e-4 && dt <= 1e-4;
        printf("  %-26s generated vs OpenBLAS: loss %.3g, gradients %.3g, "
               "3 SGD steps %.3g  %s\n", d.w->name, dl, dg, dt,
               ok ? "ok" : "MISMATCH");
        if (!ok) {
            fprintf(stderr, "bench: MISMATCH %s: generated and OpenBLAS "
                    "steps differ\n", d.w->name);
            bad = 1;
        }
        bad |= write_data(dir, &d, loss[0], grad[0]);
        free(grad[0]); free(grad[1]); free(after[0]); free(after[1]);
        wl_free(&d);
    }
    double *L = chain_inputs();
    double *dg = xmalloc(CHAIN_N * sizeof(double)),
           *dp = xmalloc(CHAIN_N * sizeof(double));
    void *ws = xmalloc(chain_model.workspace_size((int)CHAIN_N));
    for (long i = 0; i < CHAIN_N; i++)
        dg[i] = NAN;
    double lg = chain_gen(L, dg, ws), lp = chain_plain(L, dp, CHAIN_N);
    double worst = 0;
    for (long i = 0; i < CHAIN_N; i++) {
        double e = fabs(dg[i] - dp[i]) / fmax(fabs(dp[i]), 1e-300);
        worst = e > worst || e != e ? e : worst;
    }
    double dl = fabs(lg - lp) / fabs(lp);
    int ok = dl <= 1e-12 && worst <= 1e-12;
    printf("  %-26s generated vs plain loop: value %.3g, derivative %.3g  %s\n",
           "chain_10M", dl, worst, ok ? "ok" : "MISMATCH");
    if (!ok) {
        fprintf(stderr, "bench: MISMATCH chain: generated and plain loop "
                "differ\n");
        bad = 1;
    }
    free(L); free(dg); free(dp); free(ws);
    return bad;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* impl: -1 both implementations, 0 the generated step (and the chain),
 * 1 the OpenBLAS one. */
static void round_(int round, int threads, double ms, FILE *out,
                   const char *only, int impl_only)
{
    int first = impl_only == 1 ? 1 : 0, last = impl_only == 0 ? 0 : 1;
    bp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    for (int wi = 0; wi < NWL; wi++) {
        if (only && !strstr(only, workloads[wi].name))
            continue;
        wl_data d;
        wl_setup(&d, &workloads[wi]);
        long iters[2];
        for (int impl = first; impl <= last; impl++) {
            memcpy(d.theta, d.theta0, d.np * 4);
            long it = 1;
            double t;
            for (;;) {
                double t0 = now();
                for (long i = 0; i < it; i++)
                    step(&d, impl, (int)(i % NBATCHES), LR);
                t = now() - t0;
                if (t >= 0.004 || it >= (1L << 28))
                    break;
                it *= 4;
            }
            iters[impl] = (long)(ms * 1e-3 / (t / (double)it));
            iters[impl] = iters[impl] < 1 ? 1 : iters[impl];
        }
        /* three timed loops each, alternating; the median goes out */
        double times[2][3];
        for (int rep = 0; rep < 3; rep++)
            for (int impl = 0; impl < 2; impl++) {
                memcpy(d.theta, d.theta0, d.np * 4);
                double t0 = now();
                for (long i = 0; i < iters[impl]; i++)
                    step(&d, impl, (int)(i % NBATCHES), LR);
                times[impl][rep] = (now() - t0) / (double)iters[impl];
            }
        for (int impl = first; impl <= last; impl++) {
            qsort(times[impl], 3, sizeof(double), cmp_double);
            fprintf(out, "%s %s %d %d %.6g\n", d.w->name,
                    impl ? "openblas" : "bpgen", threads, round,
                    times[impl][1] * 1e6);
        }
        fflush(out);
        wl_free(&d);
    }
    if ((only && !strstr(only, "chain")) || impl_only == 1)
        return;
    double *L = chain_inputs();
    double *dL = xmalloc(CHAIN_N * sizeof(double));
    void *ws = xmalloc(chain_model.workspace_size((int)CHAIN_N));
    chain_gen(L, dL, ws);          /* touch every page first */
    chain_plain(L, dL, CHAIN_N);
    double times[2][3];
    volatile double sink = 0;
    for (int rep = 0; rep < 3; rep++)
        for (int impl = 0; impl < 2; impl++) {
            double t0 = now();
            sink += impl ? chain_plain(L, dL, CHAIN_N) : chain_gen(L, dL, ws);
            times[impl][rep] = now() - t0;
        }
    (void)sink;
    for (int impl = 0; impl < 2; impl++) {
        qsort(times[impl], 3, sizeof(double), cmp_double);
        fprintf(out, "chain_10M %s %d %d %.6g\n", impl ? "plainC" : "bpgen",
                threads, round, times[impl][1] * 1e6);
    }
    fflush(out);
    free(L); free(dL); free(ws);
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *outpath = NULL, *only = NULL;
    int round = -1, threads = 1, impl = -1;
    double ms = 40;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--round") == 0 && i + 1 < argc)
            round = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc)
            ms = atof(argv[++i]);
        else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            outpath = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--impl") == 0 && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "bpgen") || !strcmp(argv[i + 1], "openblas")))
            impl = strcmp(argv[++i], "bpgen") == 0 ? 0 : 1;
        else {
            fprintf(stderr, "usage: %s --check DIR | --round R --threads T "
                    "[--ms MS] [--only NAMES] [--impl bpgen|openblas] --out FILE\n",
                    argv[0]);
            return 2;
        }
    }
    if (dir)
        return check(dir);
    if (round < 0 || !outpath || threads < 1 || !(ms > 0)) {
        fprintf(stderr, "workloads: --round, --threads and --out needed\n");
        return 2;
    }
    FILE *out = fopen(outpath, "a");
    if (!out) {
        perror(outpath);
        return 2;
    }
    round_(round, threads, ms, out, only, impl);
    fclose(out);
    bp_threads_shutdown();
    return 0;
}
