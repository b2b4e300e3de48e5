/* optim.c — optimisers over a model's flat parameter vector: SGD, momentum,
 * Nesterov, RMSprop, Adam, AdamW; learning-rate schedules; gradient
 * clipping by global L2 norm; weight decay. The update rules follow
 * PyTorch's torch.optim, so results can be compared with it directly.
 *
 * theta and grad may be float or double (real_size). The state buffer is
 * caller-owned and always holds doubles, whatever the precision of theta:
 * running averages then keep full precision, and one code path serves
 * both precisions. Frozen tensors of the model are skipped entirely. */
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

/* The ranges of theta that may change: every non-frozen tensor, or all of
 * theta when there is no model. Calls fn(lo, hi, ctx) for each. */
typedef void range_fn(size_t lo, size_t hi, void *ctx);

static void for_each_range(const bp_optimizer *o, range_fn *fn, void *ctx)
{
    const bp_model *m = o->model;
    if (!m) {
        fn(0, o->num_params, ctx);
        return;
    }
    for (int p = 0; p < m->num_param_tensors; p++) {
        const bp_tensor_info *t = &m->params[p];
        if (t->frozen || t->offset >= o->num_params)
            continue;
        size_t hi = t->offset + t->size;
        fn(t->offset, hi < o->num_params ? hi : o->num_params, ctx);
    }
}

typedef struct {
    const bp_optimizer *o;
    void *theta, *grad;
    double sumsq;     /* norm pass */
    double scale;     /* clip pass */
    double lr, bc1, bc2;
} step_ctx;

static void sum_squares(size_t lo, size_t hi, void *vctx)
{
    step_ctx *x = vctx;
    int rs = x->o->real_size;
    for (size_t i = lo; i < hi; i++) {
        double g = bp_real_get(x->grad, rs, i);
        x->sumsq += g * g;
    }
}

static void rescale(size_t lo, size_t hi, void *vctx)
{
    step_ctx *x = vctx;
    int rs = x->o->real_size;
    for (size_t i = lo; i < hi; i++)
        bp_real_set(x->grad, rs, i, bp_real_get(x->grad, rs, i) * x->scale);
}

static void update(size_t lo, size_t hi, void *vctx)
{
    step_ctx *x = vctx;
    const bp_optim_config *c = &x->o->cfg;
    int rs = x->o->real_size;
    size_t np = x->o->num_params;
    double *s1 = x->o->state;                 /* velocity / averages */
    double *s2 = s1 ? s1 + np : NULL;         /* Adam's second moment */
    double lr = x->lr, wd = c->weight_decay;

    for (size_t i = lo; i < hi; i++) {
        double th = bp_real_get(x->theta, rs, i);
        double g = bp_real_get(x->grad, rs, i);
        if (c->kind != BP_ADAMW)
            g += wd * th;                     /* L2 term: part of the gradient */
        switch (c->kind) {
        case BP_SGD:
            th -= lr * g;
            break;
        case BP_MOMENTUM:
            s1[i] = c->momentum * s1[i] + g;
            th -= lr * s1[i];
            break;
        case BP_NESTEROV:
            s1[i] = c->momentum * s1[i] + g;
            th -= lr * (g + c->momentum * s1[i]);
            break;
        case BP_RMSPROP:
            s1[i] = c->rho * s1[i] + (1 - c->rho) * g * g;
            th -= lr * g / (sqrt(s1[i]) + c->eps);
            break;
        case BP_ADAMW:
            th *= 1 - lr * wd;                /* decoupled decay, before Adam */
            /* fall through */
        case BP_ADAM:
            s1[i] = c->beta1 * s1[i] + (1 - c->beta1) * g;
            s2[i] = c->beta2 * s2[i] + (1 - c->beta2) * g * g;
            th -= lr * (s1[i] / x->bc1) / (sqrt(s2[i] / x->bc2) + c->eps);
            break;
        }
        bp_real_set(x->theta, rs, i, th);
    }
}

/* theta and grad are caller-owned, num_params long, of the optimizer's
 * precision; grad is rescaled in place when clipping applies. */
double bp_optim_step(bp_optimizer *o, void *theta, void *grad)
{
    /* Missing buffers, or no state for a kind that needs it: no update. */
    if (!o || !theta || !grad ||
        (!o->state && state_arrays(o->cfg.kind) > 0 && o->num_params > 0)
        || (o->model && bp_model_check_abi(o->model, NULL, 0)))
        return NAN;
    step_ctx x;
    memset(&x, 0, sizeof x);
    x.o = o;
    x.theta = theta;
    x.grad = grad;
    for_each_range(o, sum_squares, &x);
    double norm = sqrt(x.sumsq);
    if (o->cfg.clip_norm > 0 && norm > o->cfg.clip_norm) {
        x.scale = o->cfg.clip_norm / norm;
        for_each_range(o, rescale, &x);
    }
    x.lr = bp_optim_lr(o);
    double t = (double)(o->step + 1);
    x.bc1 = 1 - pow(o->cfg.beta1, t);
    x.bc2 = 1 - pow(o->cfg.beta2, t);
    for_each_range(o, update, &x);
    o->step++;
    return norm;
}
