/* conv_bench.c — the runtime's convolution kernels (runtime/conv.c) against
 * the same step written by hand over OpenBLAS, on data from run.py.
 *
 *   conv_bench check DATA REF   compute y, dx, dK, db both ways and compare
 *                               them with PyTorch's (REF); status 1 when
 *                               any differs
 *   conv_bench time DATA REPS   print "bp MS blas MS": milliseconds per
 *                               step (forward and the three gradients),
 *                               the two alternating, REPS steps each
 *
 * DATA: int32 n c h w o kh kw stride pad, then float32 x, K, b, dy. REF:
 * float32 y, dx, dK, db. Both single-threaded (OpenBLAS's threads set to
 * 1), as PyTorch is in run.py. The hand version is what a careful C
 * programmer writes around sgemm: im2col for every sample once in the
 * forward pass, kept for the kernel gradient, col2im for the input
 * gradient. */
#include "bp.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void openblas_set_num_threads(int num_threads);

typedef struct {
    bp_conv2d_shape s;
    int n;
    float *x, *k, *b, *dy;
    size_t nx, nk, ny;
} problem;

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "conv_bench: out of memory\n");
        exit(2);
    }
    return p;
}

static float *read_floats(FILE *f, size_t count)
{
    float *p = xmalloc(count * sizeof *p);
    if (fread(p, sizeof *p, count, f) != count) {
        fprintf(stderr, "conv_bench: short file\n");
        exit(2);
    }
    return p;
}

static problem load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    int v[9];
    if (fread(v, sizeof v[0], 9, f) != 9) {
        fprintf(stderr, "conv_bench: %s: short header\n", path);
        exit(2);
    }
    problem p;
    p.n = v[0];
    if (bp_conv2d_shape_init(&p.s, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], NULL, 0) != 0) {
        fprintf(stderr, "conv_bench: %s: bad shape\n", path);
        exit(2);
    }
    p.nx = (size_t)p.n * p.s.c * p.s.h * p.s.w;
    p.nk = (size_t)p.s.o * p.s.c * p.s.kh * p.s.kw;
    p.ny = (size_t)p.n * p.s.o * p.s.oh * p.s.ow;
    p.x = read_floats(f, p.nx);
    p.k = read_floats(f, p.nk);
    p.b = read_floats(f, (size_t)p.s.o);
    p.dy = read_floats(f, p.ny);
    fclose(f);
    return p;
}

typedef struct {
    float *y, *dx, *dk, *db;
} result;

static result alloc_result(const problem *p)
{
    result r = {xmalloc(p->ny * 4), xmalloc(p->nx * 4), xmalloc(p->nk * 4),
                xmalloc((size_t)p->s.o * 4)};
    return r;
}

/* ------------------------------------------------------------ runtime */

static void step_bp(const problem *p, result *r, float *scratch)
{
    bp_conv2d_f(&p->s, p->n, p->x, p->k, p->b, r->y, scratch);
    bp_conv2d_grad_input_f(&p->s, p->n, p->dy, p->k, r->dx, scratch);
    bp_conv2d_grad_kernel_f(&p->s, p->n, p->dy, p->x, 1, 0, r->dk, scratch);
    bp_conv2d_grad_bias_f(&p->s, p->n, p->dy, 1, 0, r->db);
}

/* ------------------------------------------------------- hand, OpenBLAS */

static void hand_im2col(const bp_conv2d_shape *s, const float *x, float *col)
{
    for (int q = 0; q < s->c; q++)
        for (int u = 0; u < s->kh; u++)
            for (int v = 0; v < s->kw; v++, col += s->oh * s->ow)
                for (int i = 0; i < s->oh; i++) {
                    int ih = i * s->stride + u - s->pad;
                    for (int j = 0; j < s->ow; j++) {
                        int iw = j * s->stride + v - s->pad;
                        col[i * s->ow + j] = ih >= 0 && ih < s->h && iw >= 0 && iw < s->w
                                                 ? x[((size_t)q * s->h + ih) * s->w + iw]
                                                 : 0;
                    }
                }
}

static void hand_col2im(const bp_conv2d_shape *s, const float *col, float *dx)
{
    memset(dx, 0, (size_t)s->c * s->h * s->w * sizeof *dx);
    for (int q = 0; q < s->c; q++)
        for (int u = 0; u < s->kh; u++)
            for (int v = 0; v < s->kw; v++, col += s->oh * s->ow)
                for (int i = 0; i < s->oh; i++) {
                    int ih = i * s->stride + u - s->pad;
                    if (ih < 0 || ih >= s->h)
                        continue;
                    for (int j = 0; j < s->ow; j++) {
                        int iw = j * s->stride + v - s->pad;
                        if (iw >= 0 && iw < s->w)
                            dx[((size_t)q * s->h + ih) * s->w + iw] += col[i * s->ow + j];
                    }
                }
}

/* cols: every sample's im2col (n times the runtime's scratch); dcol: one. */
static void step_blas(const problem *p, result *r, float *cols, float *dcol)
{
    const bp_conv2d_shape *s = &p->s;
    int ckk = s->c * s->kh * s->kw, plane = s->oh * s->ow;
    size_t cs = (size_t)ckk * plane, xs = (size_t)s->c * s->h * s->w, ys = (size_t)s->o * plane;
    for (int t = 0; t < p->n; t++) {
        float *col = cols + (size_t)t * cs, *y = r->y + (size_t)t * ys;
        hand_im2col(s, p->x + (size_t)t * xs, col);
        for (int o = 0; o < s->o; o++)
            for (int i = 0; i < plane; i++)
                y[(size_t)o * plane + i] = p->b[o];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->o, plane, ckk, 1, p->k, ckk,
                    col, plane, 1, y, plane);
    }
    for (int t = 0; t < p->n; t++) {
        const float *dy = p->dy + (size_t)t * ys;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, plane, s->o, 1, p->k, ckk, dy,
                    plane, 0, dcol, plane);
        hand_col2im(s, dcol, r->dx + (size_t)t * xs);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->o, ckk, plane, 1, dy, plane,
                    cols + (size_t)t * cs, plane, t ? 1 : 0, r->dk, ckk);
    }
    for (int o = 0; o < s->o; o++) {
        double sum = 0;
        for (int t = 0; t < p->n; t++)
            for (int i = 0; i < plane; i++)
                sum += p->dy[(size_t)t * ys + (size_t)o * plane + i];
        r->db[o] = (float)sum;
    }
}

/* ------------------------------------------------------------- driver */

/* Largest |a - ref| over the largest |ref| (1 for an all-zero ref). */
static double rel_diff(const float *a, const float *ref, size_t n)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= worst))
            worst = d;
        if (fabs(ref[i]) > scale)
            scale = fabs(ref[i]);
    }
    return worst / (scale > 0 ? scale : 1);
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "check") && strcmp(argv[1], "time"))) {
        fprintf(stderr, "usage: conv_bench check DATA REF | conv_bench time DATA REPS\n");
        return 2;
    }
    openblas_set_num_threads(1);
    problem p = load(argv[2]);
    float *scratch = xmalloc(bp_conv2d_scratch_reals(&p.s) * 4);
    float *cols = xmalloc((size_t)p.n * bp_conv2d_scratch_reals(&p.s) * 4);
    float *dcol = xmalloc(bp_conv2d_scratch_reals(&p.s) * 4);
    result rb = alloc_result(&p), rh = alloc_result(&p);

    if (!strcmp(argv[1], "check")) {
        FILE *f = fopen(argv[3], "rb");
        if (!f) {
            perror(argv[3]);
            return 2;
        }
        result ref = {read_floats(f, p.ny), read_floats(f, p.nx), read_floats(f, p.nk),
                      read_floats(f, (size_t)p.s.o)};
        fclose(f);
        step_bp(&p, &rb, scratch);
        step_blas(&p, &rh, cols, dcol);
        const char *names[4] = {"y", "dx", "dK", "db"};
        size_t lens[4] = {p.ny, p.nx, p.nk, (size_t)p.s.o};
        float *refs[4] = {ref.y, ref.dx, ref.dk, ref.db};
        float *bps[4] = {rb.y, rb.dx, rb.dk, rb.db}, *hs[4] = {rh.y, rh.dx, rh.dk, rh.db};
        double worst = 0;
        for (int i = 0; i < 4; i++) {
            double eb = rel_diff(bps[i], refs[i], lens[i]), eh = rel_diff(hs[i], refs[i], lens[i]);
            worst = fmax(worst, fmax(eb, eh));
            if (!(eb <= 1e-4 && eh <= 1e-4))
                fprintf(stderr, "conv_bench: MISMATCH in %s: runtime %.2g, OpenBLAS %.2g "
                                "(relative to PyTorch)\n", names[i], eb, eh);
        }
        printf("%.1e\n", worst);
        return worst <= 1e-4 ? 0 : 1;
    }
    int reps = atoi(argv[3]);
    step_bp(&p, &rb, scratch); /* warm both up */
    step_blas(&p, &rh, cols, dcol);
    double tb = 0, th = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        step_bp(&p, &rb, scratch);
        double t1 = now_ms();
        step_blas(&p, &rh, cols, dcol);
        double t2 = now_ms();
        tb += t1 - t0;
        th += t2 - t1;
    }
    printf("bp %.4f blas %.4f\n", tb / reps, th / reps);
    return 0;
}
