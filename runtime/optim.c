/* optim.c — optimisers over a model's flat parameter vector: SGD, momentum,
 * Nesterov, RMSprop, Adam, AdamW; learning-rate schedules; gradient
 * clipping by global L2 norm; weight decay. The update rules follow
 * PyTorch's torch.optim, so results can be compared with it directly.
 *
 * theta and grad may be float or double (real_size). The state buffer is
 * caller-owned and always holds doubles, whatever the precision of theta:
 * running averages keep full precision (PyTorch keeps them in the
 * parameter's precision; ours differ from its by float rounding only),
 * and the float and double paths compute the same double arithmetic.
 * Frozen tensors of the model are skipped: the step walks the ranges of
 * theta that may change (adjacent tensors merged), never testing a flag
 * per element.
 *
 * Speed: one loop per kind and precision (optim_kernels.h), free of
 * branches, compiled for AVX-512, AVX2 and portable C and chosen at run
 * time like the matrix kernels (cpu.c), so the default -O2 build runs
 * vector code: 8 (or 4) parameters per instruction, read once and written
 * once; the only other pass is the gradient's norm (and its rescaling
 * when clipping applies). Every element gets the rule's double
 * operations in the rule's order, without fused multiply-adds, so each
 * path gives the same theta and state as the scalar rule, bit for bit;
 * only the norm's sum is taken in 8 (4) partial sums. */
#include "bp.h"
#include "internal.h"

#include <math.h>
#include <string.h>

/* How many num_params-long double arrays the state holds. */
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

/* Bytes of state: doubles, whatever real_size is. */
size_t bp_optim_state_size(const bp_optim_config *c, size_t num_params,
                           int real_size)
{
    (void)real_size;
    return (size_t)state_arrays(c->kind) * num_params * sizeof(double);
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
    double lr, wd, mu, rho, b1, b2, eps, bc1, bc2;
} optim_coef;

/* Portable scalar loops (also the tails of the vector ones). */
#define OK_ATTR
#define OK_W 1
#define VD double
#define V_LOADR(p) ((double)*(p))
#define V_STORER(p, v) (*(p) = (OK_REAL)(v))
#define V_LOADD(p) (*(p))
#define V_STORED(p, v) (*(p) = (v))
#define V_SET1(x) (x)
#define V_ADD(a, b) ((a) + (b))
#define V_SUB(a, b) ((a) - (b))
#define V_MUL(a, b) ((a) * (b))
#define V_DIV(a, b) ((a) / (b))
#define V_SQRT(a) sqrt(a)
#define V_SUM(v) (v)
#define OK_REAL float
#define OK_(x) x##_f_port
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#define OK_REAL double
#define OK_(x) x##_d_port
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef OK_ATTR
#undef OK_W
#undef VD
#undef V_LOADR
#undef V_STORER
#undef V_LOADD
#undef V_STORED
#undef V_SET1
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_SQRT
#undef V_SUM

#ifdef BP_X86_KERNELS
#include <immintrin.h>

BP_TARGET_AVX2 static double sum4(__m256d v)
{
    __m128d lo = _mm256_castpd256_pd128(v), hi = _mm256_extractf128_pd(v, 1);
    __m128d s = _mm_add_pd(lo, hi);
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* AVX2: 4 doubles. */
#define OK_ATTR BP_TARGET_AVX2
#define OK_W 4
#define VD __m256d
#define V_LOADD(p) _mm256_loadu_pd(p)
#define V_STORED(p, v) _mm256_storeu_pd(p, v)
#define V_SET1(x) _mm256_set1_pd(x)
#define V_ADD _mm256_add_pd
#define V_SUB _mm256_sub_pd
#define V_MUL _mm256_mul_pd
#define V_DIV _mm256_div_pd
#define V_SQRT _mm256_sqrt_pd
#define V_SUM(v) sum4(v)
#define OK_REAL float
#define OK_(x) x##_f_avx2
#define OK_TAIL(x) x##_f_port
#define V_LOADR(p) _mm256_cvtps_pd(_mm_loadu_ps(p))
#define V_STORER(p, v) _mm_storeu_ps(p, _mm256_cvtpd_ps(v))
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef OK_TAIL
#undef V_LOADR
#undef V_STORER
#define OK_REAL double
#define OK_(x) x##_d_avx2
#define OK_TAIL(x) x##_d_port
#define V_LOADR(p) _mm256_loadu_pd(p)
#define V_STORER(p, v) _mm256_storeu_pd(p, v)
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef OK_TAIL
#undef V_LOADR
#undef V_STORER
#undef OK_ATTR
#undef OK_W
#undef VD
#undef V_LOADD
#undef V_STORED
#undef V_SET1
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_SQRT
#undef V_SUM

/* AVX-512: 8 doubles. */
#define OK_ATTR BP_TARGET_AVX512
#define OK_W 8
#define VD __m512d
#define V_LOADD(p) _mm512_loadu_pd(p)
#define V_STORED(p, v) _mm512_storeu_pd(p, v)
#define V_SET1(x) _mm512_set1_pd(x)
#define V_ADD _mm512_add_pd
#define V_SUB _mm512_sub_pd
#define V_MUL _mm512_mul_pd
#define V_DIV _mm512_div_pd
#define V_SQRT _mm512_sqrt_pd
#define V_SUM(v) _mm512_reduce_add_pd(v)
#define OK_REAL float
#define OK_(x) x##_f_avx512
#define OK_TAIL(x) x##_f_port
#define V_LOADR(p) _mm512_cvtps_pd(_mm256_loadu_ps(p))
#define V_STORER(p, v) _mm256_storeu_ps(p, _mm512_cvtpd_ps(v))
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef OK_TAIL
#undef V_LOADR
#undef V_STORER
#define OK_REAL double
#define OK_(x) x##_d_avx512
#define OK_TAIL(x) x##_d_port
#define V_LOADR(p) _mm512_loadu_pd(p)
#define V_STORER(p, v) _mm512_storeu_pd(p, v)
#include "optim_kernels.h"
#undef OK_REAL
#undef OK_
#undef OK_TAIL
#undef V_LOADR
#undef V_STORER
#undef OK_ATTR
#undef OK_W
#undef VD
#undef V_LOADD
#undef V_STORED
#undef V_SET1
#undef V_ADD
#undef V_SUB
#undef V_MUL
#undef V_DIV
#undef V_SQRT
#undef V_SUM
#endif

/* The loops for each instruction set, float and double. */
typedef struct {
    double (*sumsq)(const void *g, size_t lo, size_t hi);
    void (*scale)(void *g, size_t lo, size_t hi, double s);
    void (*update)(const optim_coef *u, size_t lo, size_t hi, void *th,
                   const void *gr, double *s1, double *s2);
} optim_loops;

#define OPTIM_LOOPS(sfx)                                                   \
    static double sumsq_##sfx##_v(const void *g, size_t lo, size_t hi)     \
    {                                                                      \
        return sumsq_##sfx(g, lo, hi);                                     \
    }                                                                      \
    static void scale_##sfx##_v(void *g, size_t lo, size_t hi, double s)   \
    {                                                                      \
        scale_##sfx(g, lo, hi, s);                                         \
    }                                                                      \
    static void update_##sfx##_v(const optim_coef *u, size_t lo, size_t hi, \
                                 void *th, const void *gr, double *s1,     \
                                 double *s2)                               \
    {                                                                      \
        update_##sfx(u, lo, hi, th, gr, s1, s2);                           \
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
    size_t lo, hi;
    int next = 0;
    double sumsq = 0;
    while (next_range(o, &next, &lo, &hi))
        sumsq += L->sumsq(grad, lo, hi);
    double norm = sqrt(sumsq);
    double scale = 0;
    if (o->cfg.clip_norm > 0 && norm > o->cfg.clip_norm)
        scale = o->cfg.clip_norm / norm;

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
    double t = (double)(o->step + 1);
    u.bc1 = 1 - pow(c->beta1, t);
    u.bc2 = 1 - pow(c->beta2, t);
    double *s1 = o->state;
    double *s2 = s1 && state_arrays(c->kind) == 2 ? s1 + o->num_params : NULL;
    next = 0;
    while (next_range(o, &next, &lo, &hi)) {
        if (scale != 0)
            L->scale(grad, lo, hi, scale);
        L->update(&u, lo, hi, theta, grad, s1, s2);
    }
    o->step++;
    o->grad_norm = norm;
    return BP_OK;
}

/* ------------------------------------------------ update per tensor
 * bp_optim_update and bp_optim_finish, for the fused training step M_step
 * (bpgen --step) that updates each parameter as soon as its gradient is
 * final. A minimal version on the loops above (branch i7m); branch i11o
 * writes these two as well: keep one. */

/* The update's coefficients at step o->step, as bp_optim_step sets them. */
static void coefficients(const bp_optimizer *o, optim_coef *u)
{
    const bp_optim_config *c = &o->cfg;
    double t = (double)(o->step + 1);
    u->kind = c->kind;
    u->lr = bp_optim_lr(o);
    u->wd = c->weight_decay;
    u->mu = c->momentum;
    u->rho = c->rho;
    u->b1 = c->beta1;
    u->b2 = c->beta2;
    u->eps = c->eps;
    u->bc1 = 1 - pow(c->beta1, t);
    u->bc2 = 1 - pow(c->beta2, t);
}

int bp_optim_update(bp_optimizer *o, void *theta, const void *grad, size_t offset, size_t len)
{
    if (!o || !theta || (!grad && len > 0))
        return BP_ERR_ARG;
    /* clipping scales by the norm of the whole gradient, which no single
     * tensor's update knows */
    if (o->cfg.clip_norm > 0 || offset > o->num_params || len > o->num_params - offset)
        return BP_ERR_ARG;
    if (!o->state && state_arrays(o->cfg.kind) > 0)
        return BP_ERR_ARG;
    if (o->model && bp_model_check_abi(o->model, NULL, 0) != BP_OK)
        return BP_ERR_ARG;
    optim_coef u;
    coefficients(o, &u);
    const optim_loops *L = &loops[bp_isa()][o->real_size == 8];
    /* the loops index theta, grad and the state alike: shift theta and the
     * state so that index 0 is theta[offset] and grad[0] */
    char *th = (char *)theta + offset * (size_t)o->real_size;
    double *s1 = o->state ? (double *)o->state + offset : NULL;
    double *s2 = s1 && state_arrays(o->cfg.kind) == 2 ? s1 + o->num_params : NULL;
    size_t lo, hi, end = offset + len;
    int next = 0;
    while (next_range(o, &next, &lo, &hi)) {
        lo = lo > offset ? lo : offset;
        hi = hi < end ? hi : end;
        if (lo < hi)
            L->update(&u, lo - offset, hi - offset, th, grad, s1, s2);
    }
    return BP_OK;
}

void bp_optim_finish(bp_optimizer *o)
{
    if (o)
        o->step++;
}
