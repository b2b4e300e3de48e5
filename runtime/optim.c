/* optim.c — optimisers over a model's flat parameter vector: SGD, momentum,
 * Nesterov, RMSprop, Adam, AdamW; learning-rate schedules; gradient
 * clipping by global L2 norm; weight decay. The update rules follow
 * PyTorch's torch.optim, so results can be compared with it directly.
 *
 * theta and grad may be float or double (real_size), and the state buffer
 * (caller-owned) holds arrays of the same precision, as PyTorch keeps a
 * float32 tensor's moments in float32: a float model's Adam step moves 28
 * bytes per parameter, not the 44 of double moments. The update's
 * coefficients (lr, 1 - beta1, the bias corrections, ...) are taken in
 * double and rounded once; each element's arithmetic is in the model's
 * precision. Frozen tensors of the model are skipped: the step walks the
 * ranges of theta that may change (adjacent tensors merged), never
 * testing a flag per element.
 *
 * Speed: one loop per kind and precision (optim_kernels.h), free of
 * branches, compiled for AVX-512, AVX2 and portable C and chosen at run
 * time like the matrix kernels (cpu.c), so the default -O2 build runs
 * vector code: 16 floats (8 doubles) per AVX-512 instruction, read once
 * and written once. The gradient's norm (summed in double) is taken in
 * the same pass when there is no clipping, else in a pass before (and
 * the gradient rescaled) since the scale must be known first. Every element gets
 * the rule's operations in the rule's order, without fused multiply-adds,
 * so each path gives the same theta and state as the scalar rule, bit for
 * bit; only the norm's sum is taken in 8 (4) partial sums.
 *
 * bp_optim_update is the same rule on one range, for a caller that
 * updates each parameter as soon as its gradient is known (a fused
 * training step); bp_optim_finish then ends the step. */
#include "bp.h"
#include "internal.h"

#include <math.h>
#include <string.h>

/* The vector loops and their scalar tails must round alike: clang would
 * otherwise fuse a * b + c in a tail inlined into an FMA-enabled loop
 * (GCC in ISO C mode never contracts). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* How many num_params-long arrays (of real_size) the state holds. */
static int state_arrays(bp_optim_kind kind)
{
    switch (kind) {
    case BP_MOMENTUM:
    case BP_NESTEROV:
    case BP_RMSPROP:
        return 1;
    case BP_ADAM:
    case BP_ADAMW:
        return 2;
    case BP_SGD:
    default:
        return 0;
    }
}

bp_optim_config bp_optim_defaults(bp_optim_kind kind)
{
    bp_optim_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.lr = (kind == BP_RMSPROP || kind == BP_ADAM || kind == BP_ADAMW)
               ? 0.001 : 0.01;
    c.momentum = 0.9;
    c.rho = 0.9;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    c.weight_decay = 0;
    c.clip_norm = 0;
    c.schedule = BP_LR_CONSTANT;
    c.step_size = 0;
    c.gamma = 0.1;
    c.total_steps = 0;
    c.lr_min = 0;
    return c;
}

/* Bytes of state: arrays of the model's precision. */
size_t bp_optim_state_size(const bp_optim_config *c, size_t num_params,
                           int real_size)
{
    size_t rs = real_size == 8 ? sizeof(double) : sizeof(float);
    return (size_t)state_arrays(c->kind) * num_params * rs;
}

/* Keeps pointers to `model` and `state` (both caller-owned, and they must
 * outlive the optimizer); copies the config. */
void bp_optim_init(bp_optimizer *o, const bp_optim_config *c,
                   const bp_model *model, size_t num_params, int real_size,
                   void *state)
{
    o->cfg = *c;
    o->model = model;
    o->num_params = num_params;
    o->real_size = real_size;
    o->state = state;
    o->step = 0;
    o->grad_norm = 0;
    size_t bytes = bp_optim_state_size(c, num_params, real_size);
    if (state && bytes)
        memset(state, 0, bytes);
}

double bp_optim_lr(const bp_optimizer *o)
{
    const bp_optim_config *c = &o->cfg;
    long t = o->step;
    switch (c->schedule) {
    case BP_LR_STEP:
        if (c->step_size <= 0)
            return c->lr;
        return c->lr * pow(c->gamma, (double)(t / c->step_size));
    case BP_LR_COSINE: {
        if (c->total_steps <= 0)
            return c->lr;
        const double pi = 3.14159265358979323846264338327950288;
        double frac = t >= c->total_steps ? 1.0
                                          : (double)t / (double)c->total_steps;
        return c->lr_min + (c->lr - c->lr_min) * (1 + cos(pi * frac)) / 2;
    }
    case BP_LR_CONSTANT:
    default:
        return c->lr;
    }
}

/* ---------------------------------------------------------------- loops */
/* The update's coefficients for one step. */
typedef struct {
    bp_optim_kind kind;
    double lr, wd, mu, rho, b1, b2, eps;
    double step_size, rsqrt_bc2;    /* Adam: lr / bc1, 1 / sqrt(bc2) */
} optim_coef;

/* Portable scalar loops (also the tails of the vector ones). */
#define OK_ATTR
#define OK_W 1
#define OK_DW 1
#define VD double
#define D_LOADR(p) ((double)*(p))
#define D_STORER(p, v) (*(p) = (OK_REAL)(v))
#define D_SET1(x) (x)
#define D_ADD(a, b) ((a) + (b))
#define D_MUL(a, b) ((a) * (b))
#define D_SUM(v) (v)
#define VR OK_REAL
#define R_LOAD(p) (*(p))
#define R_STORE(p, v) (*(p) = (v))
#define R_SET1(x) (x)
#define R_ADD(a, b) ((a) + (b))
#define R_SUB(a, b) ((a) - (b))
#define R_MUL(a, b) ((a) * (b))
#define R_DIV(a, b) ((a) / (b))
#define R_SQACC(a, g) ((a) + (double)(g) * (double)(g))
#define OK_REAL float
#define OK_(x) x##_f_port
#define R_SQRT(a) sqrtf(a)
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef R_SQRT
#define OK_REAL double
#define OK_(x) x##_d_port
#define R_SQRT(a) sqrt(a)
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef R_SQRT
#undef OK_ATTR
#undef OK_W
#undef OK_DW
#undef VD
#undef D_LOADR
#undef D_STORER
#undef D_SET1
#undef D_ADD
#undef D_MUL
#undef D_SUM
#undef VR
#undef R_LOAD
#undef R_STORE
#undef R_SET1
#undef R_ADD
#undef R_SUB
#undef R_MUL
#undef R_DIV
#undef R_SQACC

#ifdef BP_X86_KERNELS
#include <immintrin.h>

BP_TARGET_AVX2 static double sum4(__m256d v)
{
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    __m128d s = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* a + the squares of g's 8 floats, as 4 + 4 doubles. */
BP_TARGET_AVX2 static __m256d sqacc8(__m256d a, __m256 g)
{
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(g)),
            hi = _mm256_cvtps_pd(_mm256_extractf128_ps(g, 1));
    a = _mm256_add_pd(a, _mm256_mul_pd(lo, lo));
    return _mm256_add_pd(a, _mm256_mul_pd(hi, hi));
}

/* a + the squares of g's 16 floats, as 8 + 8 doubles. */
BP_TARGET_AVX512 static __m512d sqacc16(__m512d a, __m512 g)
{
    __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(g)),
            hi = _mm512_cvtps_pd(_mm256_castpd_ps(
                _mm512_extractf64x4_pd(_mm512_castps_pd(g), 1)));
    a = _mm512_add_pd(a, _mm512_mul_pd(lo, lo));
    return _mm512_add_pd(a, _mm512_mul_pd(hi, hi));
}

/* AVX2: 8 floats or 4 doubles; the norm in 4 doubles. */
#define OK_ATTR BP_TARGET_AVX2
#define OK_DW 4
#define VD __m256d
#define D_SET1(x) _mm256_set1_pd(x)
#define D_ADD _mm256_add_pd
#define D_MUL _mm256_mul_pd
#define D_SUM(v) sum4(v)
#define OK_REAL float
#define OK_(x) x##_f_avx2
#define OK_TAIL(x) x##_f_port
#define D_LOADR(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
#define D_STORER(p, v) _mm_storeu_ps(p, _mm256_cvtpd_ps(v))
#define OK_W 8
#define VR __m256
#define R_LOAD(p) _mm256_loadu_ps(p)
#define R_STORE(p, v) _mm256_storeu_ps(p, v)
#define R_SET1(x) _mm256_set1_ps(x)
#define R_ADD _mm256_add_ps
#define R_SUB _mm256_sub_ps
#define R_MUL _mm256_mul_ps
#define R_DIV _mm256_div_ps
#define R_SQRT _mm256_sqrt_ps
#define R_SQACC(a, g) sqacc8(a, g)
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef OK_TAIL
#undef D_LOADR
#undef D_STORER
#undef OK_W
#undef VR
#undef R_LOAD
#undef R_STORE
#undef R_SET1
#undef R_ADD
#undef R_SUB
#undef R_MUL
#undef R_DIV
#undef R_SQRT
#undef R_SQACC
#define OK_REAL double
#define OK_(x) x##_d_avx2
#define OK_TAIL(x) x##_d_port
#define D_LOADR(p) _mm256_loadu_pd(p)
#define D_STORER(p, v) _mm256_storeu_pd(p, v)
#define OK_W 4
#define VR __m256d
#define R_LOAD(p) _mm256_loadu_pd(p)
#define R_STORE(p, v) _mm256_storeu_pd(p, v)
#define R_SET1(x) _mm256_set1_pd(x)
#define R_ADD _mm256_add_pd
#define R_SUB _mm256_sub_pd
#define R_MUL _mm256_mul_pd
#define R_DIV _mm256_div_pd
#define R_SQRT _mm256_sqrt_pd
#define R_SQACC(a, g) _mm256_add_pd(a, _mm256_mul_pd(g, g))
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef OK_TAIL
#undef D_LOADR
#undef D_STORER
#undef OK_W
#undef VR
#undef R_LOAD
#undef R_STORE
#undef R_SET1
#undef R_ADD
#undef R_SUB
#undef R_MUL
#undef R_DIV
#undef R_SQRT
#undef R_SQACC
#undef OK_ATTR
#undef OK_DW
#undef VD
#undef D_SET1
#undef D_ADD
#undef D_MUL
#undef D_SUM

/* AVX-512: 16 floats or 8 doubles; the norm in 8 doubles. */
#define OK_ATTR BP_TARGET_AVX512
#define OK_DW 8
#define VD __m512d
#define D_SET1(x) _mm512_set1_pd(x)
#define D_ADD _mm512_add_pd
#define D_MUL _mm512_mul_pd
#define D_SUM(v) _mm512_reduce_add_pd(v)
#define OK_REAL float
#define OK_(x) x##_f_avx512
#define OK_TAIL(x) x##_f_port
#define D_LOADR(p) _mm512_cvtps_pd(_mm256_loadu_ps(p))
#define D_STORER(p, v) _mm256_storeu_ps(p, _mm512_cvtpd_ps(v))
#define OK_W 16
#define VR __m512
#define R_LOAD(p) _mm512_loadu_ps(p)
#define R_STORE(p, v) _mm512_storeu_ps(p, v)
#define R_SET1(x) _mm512_set1_ps(x)
#define R_ADD _mm512_add_ps
#define R_SUB _mm512_sub_ps
#define R_MUL _mm512_mul_ps
#define R_DIV _mm512_div_ps
#define R_SQRT _mm512_sqrt_ps
#define R_SQACC(a, g) sqacc16(a, g)
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef OK_TAIL
#undef D_LOADR
#undef D_STORER
#undef OK_W
#undef VR
#undef R_LOAD
#undef R_STORE
#undef R_SET1
#undef R_ADD
#undef R_SUB
#undef R_MUL
#undef R_DIV
#undef R_SQRT
#undef R_SQACC
#define OK_REAL double
#define OK_(x) x##_d_avx512
#define OK_TAIL(x) x##_d_port
#define D_LOADR(p) _mm512_loadu_pd(p)
#define D_STORER(p, v) _mm512_storeu_pd(p, v)
#define OK_W 8
#define VR __m512d
#define R_LOAD(p) _mm512_loadu_pd(p)
#define R_STORE(p, v) _mm512_storeu_pd(p, v)
#define R_SET1(x) _mm512_set1_pd(x)
#define R_ADD _mm512_add_pd
#define R_SUB _mm512_sub_pd
#define R_MUL _mm512_mul_pd
#define R_DIV _mm512_div_pd
#define R_SQRT _mm512_sqrt_pd
#define R_SQACC(a, g) _mm512_add_pd(a, _mm512_mul_pd(g, g))
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef OK_TAIL
#undef D_LOADR
#undef D_STORER
#undef OK_W
#undef VR
#undef R_LOAD
#undef R_STORE
#undef R_SET1
#undef R_ADD
#undef R_SUB
#undef R_MUL
#undef R_DIV
#undef R_SQRT
#undef R_SQACC
#undef OK_ATTR
#undef OK_DW
#undef VD
#undef D_SET1
#undef D_ADD
#undef D_MUL
#undef D_SUM
#endif

/* The loops for each instruction set, float and double. Each takes
 * pointers to the first entry of its range and the range's length. */
typedef struct {
    double (*sumsq)(const void *g, size_t n);
    void (*scale)(void *g, size_t n, double s);
    double (*update)(const optim_coef *u, size_t n, void *th,
                     const void *gr, void *s1, void *s2);
} optim_loops;

#define OPTIM_LOOPS(sfx)                                                   \
    static double sumsq_##sfx##_v(const void *g, size_t n)                 \
    {                                                                      \
        return sumsq_##sfx(g, n);                                          \
    }                                                                      \
    static void scale_##sfx##_v(void *g, size_t n, double s)               \
    {                                                                      \
        scale_##sfx(g, n, s);                                              \
    }                                                                      \
    static double update_##sfx##_v(const optim_coef *u, size_t n,          \
                                   void *th, const void *gr, void *s1,     \
                                   void *s2)                               \
    {                                                                      \
        return update_##sfx(u, n, th, gr, s1, s2);                         \
    }
OPTIM_LOOPS(f_port)
OPTIM_LOOPS(d_port)
#ifdef BP_X86_KERNELS
OPTIM_LOOPS(f_avx2)
OPTIM_LOOPS(d_avx2)
OPTIM_LOOPS(f_avx512)
OPTIM_LOOPS(d_avx512)
#endif
#define OPTIM_ENTRY(sfx) {sumsq_##sfx##_v, scale_##sfx##_v, update_##sfx##_v}

static const optim_loops loops[BP_ISA_COUNT][2] = {
    {OPTIM_ENTRY(f_port), OPTIM_ENTRY(d_port)},
#ifdef BP_X86_KERNELS
    {OPTIM_ENTRY(f_avx2), OPTIM_ENTRY(d_avx2)},
    {OPTIM_ENTRY(f_avx512), OPTIM_ENTRY(d_avx512)},
#endif
};

/* ---------------------------------------------------------------- step */

/* The ranges of theta that may change: every non-frozen tensor (adjacent
 * ones merged, so a model with nothing frozen is one range), or all of
 * theta when there is no model. Start with *next = 0; each call gives the
 * next range in [*lo, *hi) and returns 0 when there is none left. */
static int next_range(const bp_optimizer *o, int *next, size_t *lo,
                      size_t *hi)
{
    const bp_model *m = o->model;
    if (!m) {
        *lo = 0;
        *hi = o->num_params;
        return (*next)++ == 0;
    }
    int found = 0;
    for (; *next < m->num_param_tensors; ++*next) {
        const bp_tensor_info *t = &m->params[*next];
        if (t->frozen || t->offset >= o->num_params || t->size == 0)
            continue;
        size_t end = t->offset + t->size;
        end = end < o->num_params ? end : o->num_params;
        if (!found) {
            *lo = t->offset;
            *hi = end;
            found = 1;
        } else if (t->offset == *hi) {
            *hi = end;
        } else {
            break;
        }
    }
    return found;
}

/* The update's coefficients for step o->step (0 for the first). */
static optim_coef coefficients(const bp_optimizer *o)
{
    const bp_optim_config *c = &o->cfg;
    optim_coef u;
    u.kind = c->kind;
    u.lr = bp_optim_lr(o);
    u.wd = c->weight_decay;
    u.mu = c->momentum;
    u.rho = c->rho;
    u.b1 = c->beta1;
    u.b2 = c->beta2;
    u.eps = c->eps;
    u.step_size = u.lr;
    u.rsqrt_bc2 = 1;
    if (c->kind == BP_ADAM || c->kind == BP_ADAMW) {
        /* Adam's bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t go
         * into two coefficients, as in PyTorch, so that an element costs
         * one division and one square root (the loop's throughput limit).
         * Other kinds skip the two pow() calls: at a few hundred
         * parameters they were a noticeable part of a step. */
        double t = (double)(o->step + 1);
        u.step_size = u.lr / (1 - pow(c->beta1, t));
        u.rsqrt_bc2 = 1 / sqrt(1 - pow(c->beta2, t));
    }
    return u;
}

/* Bytes per entry of theta, grad and the state. */
static size_t real_bytes(const bp_optimizer *o)
{
    return o->real_size == 8 ? sizeof(double) : sizeof(float);
}

/* The state's arrays, from entry `at` on (NULL where the kind has none). */
static void state_at(const bp_optimizer *o, size_t at, char **s1, char **s2)
{
    size_t rs = real_bytes(o);
    int arrays = o->state ? state_arrays(o->cfg.kind) : 0;
    *s1 = arrays >= 1 ? (char *)o->state + at * rs : NULL;
    *s2 = arrays >= 2 ? (char *)o->state + (o->num_params + at) * rs : NULL;
}

/* The kernel's update of theta[lo, hi), g pointing at entry lo's
 * gradient, with the state from entry lo; returns the sum of the
 * gradient's squares. */
static double update_entries(const bp_optimizer *o, const optim_loops *L,
                             const optim_coef *u, char *th, const char *g,
                             size_t lo, size_t hi)
{
    char *s1, *s2;
    state_at(o, lo, &s1, &s2);
    return L->update(u, hi - lo, th + lo * real_bytes(o), g, s1, s2);
}

/* The update of a range runs in chunks of UPDATE_CHUNK entries, spread
 * over the runtime's threads (bp_set_num_threads) when there are several;
 * each chunk's sum of squares is kept apart and the sums added in chunk
 * order, so the result is the same bits for any number of threads. */
#define UPDATE_CHUNK 16384
#define UPDATE_BATCH 256      /* chunks per parallel job */

typedef struct {
    const bp_optimizer *o;
    const optim_loops *L;
    const optim_coef *u;
    char *th;
    const char *g;
    size_t lo, hi;            /* this job's entries */
    double sumsq[UPDATE_BATCH];
} update_job;

static void update_chunk(void *ctx, int part)
{
    update_job *j = ctx;
    size_t rs = real_bytes(j->o), lo = j->lo + (size_t)part * UPDATE_CHUNK;
    size_t hi = j->hi - lo < UPDATE_CHUNK ? j->hi : lo + UPDATE_CHUNK;
    j->sumsq[part] = update_entries(j->o, j->L, j->u, j->th, j->g + lo * rs, lo, hi);
}

/* The update of theta[lo, hi); returns the sum of the gradient's squares. */
static double update_range(const bp_optimizer *o, const optim_loops *L,
                           const optim_coef *u, char *th, const char *g,
                           size_t lo, size_t hi)
{
    if (hi - lo <= UPDATE_CHUNK)   /* one chunk: no job for the threads */
        return update_entries(o, L, u, th, g + lo * real_bytes(o), lo, hi);
    double sumsq = 0;
    update_job j;             /* sumsq[] is written before it is read: not
                                 cleared */
    j.o = o;
    j.L = L;
    j.u = u;
    j.th = th;
    j.g = g;
    j.hi = lo;
    for (size_t at = lo; at < hi; at = j.hi) {
        size_t left = hi - at, most = (size_t)UPDATE_CHUNK * UPDATE_BATCH;
        j.lo = at;
        j.hi = at + (left < most ? left : most);
        int parts = (int)((j.hi - j.lo + UPDATE_CHUNK - 1) / UPDATE_CHUNK);
        bp_parallel_run(parts, update_chunk, &j);
        for (int p = 0; p < parts; p++)
            sumsq += j.sumsq[p];
    }
    return sumsq;
}

/* theta and grad are caller-owned, num_params long, of the optimizer's
 * precision; grad is rescaled in place when clipping applies. */
int bp_optim_step(bp_optimizer *o, void *theta, void *grad, char *err,
                  size_t err_size)
{
    /* Missing buffers, or no state for a kind that needs it: no update. */
    if (!o || !theta || !grad)
        return bp_fail(err, err_size, "bp_optim_step: missing argument (%s is NULL)",
                       !o ? "the optimizer" : !theta ? "theta" : "grad");
    if (!o->state && state_arrays(o->cfg.kind) > 0 && o->num_params > 0)
        return bp_fail(err, err_size, "bp_optim_step: the optimizer has no state buffer, "
                       "but its kind needs %zu bytes (bp_optim_state_size)",
                       bp_optim_state_size(&o->cfg, o->num_params, o->real_size));
    if (o->model) {
        int abi = bp_model_check_abi(o->model, err, err_size);
        if (abi != BP_OK)
            return abi;
    }
    const optim_loops *L = &loops[bp_isa()][o->real_size == 8];
    optim_coef u = coefficients(o);
    size_t rs = real_bytes(o), lo = 0, hi = 0;
    char *th = theta, *g = grad;
    int next = 0;
    double sumsq = 0;
    if (o->cfg.clip_norm > 0) {
        /* The norm first: it decides the scale of every entry. */
        while (next_range(o, &next, &lo, &hi))
            sumsq += L->sumsq(g + lo * rs, hi - lo);
        double norm = sqrt(sumsq), scale = 0;
        if (norm > o->cfg.clip_norm)
            scale = o->cfg.clip_norm / norm;
        next = 0;
        while (next_range(o, &next, &lo, &hi)) {
            if (scale != 0)
                L->scale(g + lo * rs, hi - lo, scale);
            update_entries(o, L, &u, th, g + lo * rs, lo, hi);
        }
    } else {
        /* The norm is only reported: the update sums it on the way. */
        while (next_range(o, &next, &lo, &hi))
            sumsq += update_range(o, L, &u, th, g, lo, hi);
    }
    o->step++;
    o->grad_norm = sqrt(sumsq);
    return BP_OK;
}

/* The tensor that is exactly theta[offset, offset + len), or NULL: a
 * binary search by offset (a generated model's tensors lie in theta in
 * their order), with the match checked, so that any other model still
 * gets the scan below. M_step updates one tensor at a time: scanning
 * every tensor for each made a 300-layer model's M_step 4x slower than
 * forward + backward + bp_optim_step. */
static const bp_tensor_info *tensor_at(const bp_model *m, size_t offset,
                                       size_t len)
{
    int lo = 0, hi = m->num_param_tensors;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (m->params[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->num_param_tensors && m->params[lo].offset == offset
        && m->params[lo].size == len)
        return &m->params[lo];
    return NULL;
}

/* The step's rule on theta[offset, offset + len), entries not frozen,
 * for the fused training step M_step (bpgen --step), which updates each
 * parameter as soon as its gradient is final. Clipping is refused: it
 * scales by the norm of the whole gradient, which no range knows. */
int bp_optim_update(bp_optimizer *o, void *theta, const void *grad,
                    size_t offset, size_t len)
{
    if (!o || !theta || (!grad && len > 0) || offset > o->num_params
        || len > o->num_params - offset || o->cfg.clip_norm > 0)
        return BP_ERR_ARG;
    if (!o->state && state_arrays(o->cfg.kind) > 0 && o->num_params > 0)
        return BP_ERR_ARG;
    if (o->model && bp_model_check_abi(o->model, NULL, 0) != BP_OK)
        return BP_ERR_ARG;
    const optim_loops *L = &loops[bp_isa()][o->real_size == 8];
    optim_coef u = coefficients(o);
    size_t rs = real_bytes(o), end = offset + len, lo = 0, hi = 0;
    char *th = theta;
    const char *g = grad;
    int next = 0;
    const bp_tensor_info *t = o->model ? tensor_at(o->model, offset, len) : NULL;
    if (t) {
        if (!t->frozen && len > 0)
            update_entries(o, L, &u, th, g, offset, end);
        return BP_OK;
    }
    /* The ranges that may change, cut to [offset, end). */
    while (next_range(o, &next, &lo, &hi)) {
        lo = lo > offset ? lo : offset;
        hi = hi < end ? hi : end;
        if (lo >= hi)
            continue;
        update_entries(o, L, &u, th, g + (lo - offset) * rs, lo, hi);
    }
    return BP_OK;
}

void bp_optim_finish(bp_optimizer *o)
{
    if (o)
        o->step++;
}
