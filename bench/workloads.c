/* workloads.c — the training steps of issue 7's table, bpgen's generated
 * code against hand-written C over OpenBLAS (blas.c); PyTorch runs the
 * same steps in torch_step.py, and run.sh interleaves the two programs'
 * rounds. Workloads (fp32, softmax cross-entropy, mean over the batch,
 * SGD with lr 0.01):
 *     4-16-3 tanh at batch 1 and 32, 784-128-10 relu at batch 64,
 *     784-512-512-10 relu at batch 128,
 * and the scalar chain S = L^2 + 2, P = sqrt(S) (value and derivative,
 * 10 million doubles) against a plain C loop (chain_plain.c, built with
 * -O3 -march=native -fno-math-errno); and, like against like, the
 * generated chain built with those flags (chain_native) and the plain
 * loop built with -O2 (chain_plain_o2). The generated chain runs both by
 * M_forward then M_backward and by M_forward_backward (one call, one
 * loop).
 *
 * Modes:
 *   workloads --check DIR
 *       checks that the generated and the OpenBLAS steps give the same
 *       loss and gradients (one step with lr = 0 on batch 0; every
 *       gradient entry first set to NaN) and the same parameters after 3
 *       SGD steps; writes DIR/wl_NAME.bin (parameters, the batches, and
 *       the generated step's loss and gradient) for torch_step.py --check;
 *       checks the hand-written batch-1 steps (tiny.c) against the
 *       generated one and the chain's five other builds against the
 *       plain loop. Exit status 1 on any mismatch.
 *   workloads --round R --threads T [--ms MS] [--impl bpgen|openblas]
 *             --out FILE
 *       one round: for each workload, timed loops of about MS ms of the
 *       generated step, the OpenBLAS one and, at batch 1, tiny.c's two
 *       (chain: 3 calls of each build, alternating), with
 *       bp_set_num_threads(T) and openblas_set_num_threads(T); appends
 *       "name impl threads round microseconds" lines to FILE. With --impl,
 *       only that implementation's loops (bpgen: with tiny.c's and the
 *       chain's, which use no library's threads). run.sh times
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
    chain_model, chain_native_model;
typedef double chain_fb_fn(const void *theta, const void *const inputs[],
                           int n, void *ws, void *grad,
                           void *const grad_inputs[]);
extern chain_fb_fn chain_forward_backward_any,
    chain_native_forward_backward_any;

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

/* The implementations; the hand-written batch-1 steps (tiny.c) run only
 * on the 4-16-3 net at batch 1. */
enum { GEN, BLAS, TINY, TINY_SGD, NIMPL };
static const char *const impl_name[NIMPL] = {"bpgen", "openblas", "handC99",
                                             "handC99_sgd"};

static int runs(const workload *w, int impl)
{
    return impl < TINY || (w->model == &wl_iris_model && w->n == 1);
}

/* One step of implementation `impl` on batch b. */
static float step(wl_data *d, int impl, int b, float lr)
{
    const workload *w = d->w;
    int ni = w->arch.size[0], no = w->arch.size[w->arch.layers];
    const float *x = d->xs + (size_t)b * w->n * ni;
    const float *y = d->ys + (size_t)b * w->n * no;
    if (impl == BLAS)
        return blas_step(&w->arch, d->theta, x, y, w->n, d->ws_blas, d->grad,
                         lr);
    if (impl == TINY_SGD)
        return tiny_step_sgd(d->theta, x, y, lr);
    float loss;
    if (impl == TINY) {
        loss = tiny_step(d->theta, x, y, d->grad);
    } else {
        const void *inputs[2] = {x, y};
        const bp_model *m = w->model;
        loss = (float)m->forward(d->theta, inputs, w->n, d->ws_gen);
        m->backward(d->theta, inputs, w->n, d->ws_gen, d->grad, NULL);
    }
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

/* The chain's value and derivative by generated code: chain_model, or
 * chain_native_model (the same code compiled as the plain loop is), by
 * M_forward then M_backward, or (fb) by M_forward_backward in one call. */
static double chain_gen(const bp_model *m, chain_fb_fn *fb, const double *L,
                        double *dL, void *ws)
{
    const void *inputs[1] = {L};
    void *grad_inputs[1] = {dL};
    double dummy;
    if (fb)
        return fb(NULL, inputs, (int)CHAIN_N, ws, &dummy, grad_inputs);
    double loss = m->forward(NULL, inputs, (int)CHAIN_N, ws);
    m->backward(NULL, inputs, (int)CHAIN_N, ws, &dummy, grad_inputs);
    return loss;
}

/* The chain's builds: the target's pair (the generated code at the
 * README's -O2, the plain loop at -O3 -march=native -fno-math-errno), then
 * each compiled as the other is, like against like; the generated code by
 * M_forward + M_backward and by M_forward_backward. */
enum { CHAIN_GEN, CHAIN_PLAIN, CHAIN_GEN_NATIVE, CHAIN_PLAIN_O2, CHAIN_FB,
       CHAIN_FB_NATIVE, NCHAIN };
static const char *const chain_name[NCHAIN] = {"bpgen", "plainC",
                                               "bpgen_native", "plainC_O2",
                                               "bpgen_fb", "bpgen_fb_native"};

static double chain_run(int build, const double *L, double *dL, void *ws)
{
    switch (build) {
    case CHAIN_GEN:
        return chain_gen(&chain_model, NULL, L, dL, ws);
    case CHAIN_GEN_NATIVE:
        return chain_gen(&chain_native_model, NULL, L, dL, ws);
    case CHAIN_FB:
        return chain_gen(&chain_model, chain_forward_backward_any, L, dL, ws);
    case CHAIN_FB_NATIVE:
        return chain_gen(&chain_native_model, chain_native_forward_backward_any,
                         L, dL, ws);
    case CHAIN_PLAIN_O2:
        return chain_plain_o2(L, dL, CHAIN_N);
    default:
        return chain_plain(L, dL, CHAIN_N);
    }
}

static int check(const char *dir)
{
    int bad = 0;
    printf("checks (largest difference relative to each tensor's largest "
           "entry; tolerance 1e-4)\n");
    for (int wi = 0; wi < NWL; wi++) {
        wl_data d;
        wl_setup(&d, &workloads[wi]);
        float loss[NIMPL];
        float *grad[NIMPL], *after[NIMPL];
        for (int impl = 0; impl < NIMPL; impl++) {
            grad[impl] = xmalloc(d.np * 4);
            after[impl] = xmalloc(d.np * 4);
            if (!runs(d.w, impl))
                continue;
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
        /* each against the generated step (TINY_SGD leaves no gradient) */
        for (int impl = BLAS; impl < NIMPL; impl++) {
            if (!runs(d.w, impl))
                continue;
            double dl = fabs((double)loss[GEN] - loss[impl])
                        / fmax(fabs(loss[impl]), 1e-30);
            double dg = impl == TINY_SGD ? 0
                      : rel_diff(d.w->model, grad[GEN], grad[impl]);
            double dt = rel_diff(d.w->model, after[GEN], after[impl]);
            int ok = dl <= 1e-4 && dg <= 1e-4 && dt <= 1e-4;
            printf("  %-26s generated vs %s: loss %.3g, gradients %.3g, "
                   "3 SGD steps %.3g  %s\n", d.w->name, impl_name[impl], dl,
                   dg, dt, ok ? "ok" : "MISMATCH");
            if (!ok) {
                fprintf(stderr, "bench: MISMATCH %s: generated and %s "
                        "steps differ\n", d.w->name, impl_name[impl]);
                bad = 1;
            }
        }
        bad |= write_data(dir, &d, loss[GEN], grad[GEN]);
        for (int impl = 0; impl < NIMPL; impl++) {
            free(grad[impl]);
            free(after[impl]);
        }
        wl_free(&d);
    }
    double *L = chain_inputs();
    double *dg = xmalloc(CHAIN_N * sizeof(double)),
           *dp = xmalloc(CHAIN_N * sizeof(double));
    void *ws = xmalloc(chain_model.workspace_size((int)CHAIN_N));
    double lp = chain_run(CHAIN_PLAIN, L, dp, ws);
    for (int v = 0; v < NCHAIN; v++) {
        if (v == CHAIN_PLAIN)
            continue;
        for (long i = 0; i < CHAIN_N; i++)
            dg[i] = NAN;
        double lg = chain_run(v, L, dg, ws);
        double worst = 0;
        for (long i = 0; i < CHAIN_N; i++) {
            double e = fabs(dg[i] - dp[i]) / fmax(fabs(dp[i]), 1e-300);
            worst = e > worst || e != e ? e : worst;
        }
        double dl = fabs(lg - lp) / fabs(lp);
        int ok = dl <= 1e-12 && worst <= 1e-12;
        printf("  %-26s %s vs plainC: value %.3g, derivative %.3g  %s\n",
               "chain_10M", chain_name[v], dl, worst, ok ? "ok" : "MISMATCH");
        if (!ok) {
            fprintf(stderr, "bench: MISMATCH chain: %s and plainC differ\n",
                    chain_name[v]);
            bad = 1;
        }
    }
    free(L); free(dg); free(dp); free(ws);
    return bad;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* impl_only: -1 every implementation, GEN the generated step (with the
 * hand-written batch-1 steps, which use no library's threads, and the
 * chain), BLAS the OpenBLAS one. */
static void round_(int round, int threads, double ms, FILE *out,
                   const char *only, int impl_only)
{
    bp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    for (int wi = 0; wi < NWL; wi++) {
        if (only && !strstr(only, workloads[wi].name))
            continue;
        int impls[NIMPL], count = 0;
        for (int impl = 0; impl < NIMPL; impl++)
            if (runs(&workloads[wi], impl)
                && (impl_only < 0 || (impl == BLAS) == (impl_only == BLAS)))
                impls[count++] = impl;
        wl_data d;
        wl_setup(&d, &workloads[wi]);
        long iters[NIMPL];
        for (int k = 0; k < count; k++) {
            int impl = impls[k];
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
        double times[NIMPL][3];
        for (int rep = 0; rep < 3; rep++)
            for (int k = 0; k < count; k++) {
                int impl = impls[k];
                memcpy(d.theta, d.theta0, d.np * 4);
                double t0 = now();
                for (long i = 0; i < iters[impl]; i++)
                    step(&d, impl, (int)(i % NBATCHES), LR);
                times[impl][rep] = (now() - t0) / (double)iters[impl];
            }
        for (int k = 0; k < count; k++) {
            int impl = impls[k];
            qsort(times[impl], 3, sizeof(double), cmp_double);
            fprintf(out, "%s %s %d %d %.6g\n", d.w->name, impl_name[impl],
                    threads, round, times[impl][1] * 1e6);
        }
        fflush(out);
        wl_free(&d);
    }
    if ((only && !strstr(only, "chain")) || impl_only == BLAS)
        return;
    double *L = chain_inputs();
    double *dL = xmalloc(CHAIN_N * sizeof(double));
    void *ws = xmalloc(chain_model.workspace_size((int)CHAIN_N));
    double times[NCHAIN][3];
    volatile double sink = 0;
    for (int rep = -1; rep < 3; rep++)     /* rep -1 touches every page */
        for (int build = 0; build < NCHAIN; build++) {
            double t0 = now();
            sink += chain_run(build, L, dL, ws);
            if (rep >= 0)
                times[build][rep] = now() - t0;
        }
    (void)sink;
    for (int build = 0; build < NCHAIN; build++) {
        qsort(times[build], 3, sizeof(double), cmp_double);
        fprintf(out, "chain_10M %s %d %d %.6g\n", chain_name[build], threads,
                round, times[build][1] * 1e6);
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
            impl = strcmp(argv[++i], "bpgen") == 0 ? GEN : BLAS;
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
