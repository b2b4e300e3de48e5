/* test_optim.c — optimisers, schedules, clipping and frozen tensors. Each
 * optimiser runs 3 steps on a small quadratic and is compared with its
 * update rule written out by hand below, in float and in double. */
#include "bp.h"
#include "internal.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { P = 4, STEPS = 3 };
static const double theta0[P] = {0.5, -1.0, 2.0, 0.1};
static const double target[P] = {1.0, 2.0, -1.0, 0.3};

/* The gradient of sum (theta - target)^2, nonuniform so that per-element
 * scaling (RMSprop, Adam) matters. */
static double grad_of(double th, int i)
{
    return 2 * (th - target[i]) * (1 + i);
}

static bp_optim_config config(bp_optim_kind kind, double wd)
{
    bp_optim_config c = bp_optim_defaults(kind);
    c.lr = 0.1;
    c.momentum = 0.8;
    c.rho = 0.7;
    c.beta1 = 0.85;
    c.beta2 = 0.95;
    c.eps = 1e-6;
    c.weight_decay = wd;
    return c;
}

/* The rules, by hand, in double. */
static void by_hand(bp_optim_kind kind, double wd, double th[P])
{
    const double lr = 0.1, mu = 0.8, rho = 0.7, b1 = 0.85, b2 = 0.95,
                 eps = 1e-6;
    double v[P] = {0}, s[P] = {0};
    memcpy(th, theta0, sizeof theta0);
    for (int t = 1; t <= STEPS; t++)
        for (int i = 0; i < P; i++) {
            double g = grad_of(th[i], i);
            if (kind != BP_ADAMW)
                g += wd * th[i];
            switch (kind) {
            case BP_SGD:
                th[i] = th[i] - lr * g;
                break;
            case BP_MOMENTUM:
                v[i] = mu * v[i] + g;
                th[i] = th[i] - lr * v[i];
                break;
            case BP_NESTEROV:
                v[i] = mu * v[i] + g;
                th[i] = th[i] - lr * (g + mu * v[i]);
                break;
            case BP_RMSPROP:
                s[i] = rho * s[i] + (1 - rho) * g * g;
                th[i] = th[i] - lr * g / (sqrt(s[i]) + eps);
                break;
            case BP_ADAM:
            case BP_ADAMW: {
                if (kind == BP_ADAMW)
                    th[i] = th[i] - lr * wd * th[i];
                v[i] = b1 * v[i] + (1 - b1) * g;
                s[i] = b2 * s[i] + (1 - b2) * g * g;
                double mhat = v[i] / (1 - pow(b1, t));
                double shat = s[i] / (1 - pow(b2, t));
                th[i] = th[i] - lr * mhat / (sqrt(shat) + eps);
                break;
            }
            }
        }
}

/* The same 3 steps through the optimizer, at real_size rs. */
static void by_optim(bp_optim_kind kind, double wd, int rs, double out[P])
{
    bp_optim_config c = config(kind, wd);
    size_t bytes = bp_optim_state_size(&c, P, rs);
    void *state = malloc(bytes ? bytes : 1);
    bp_optimizer o;
    bp_optim_init(&o, &c, NULL, P, rs, state);
    float tf[P], gf[P];
    double td[P], gd[P];
    for (int i = 0; i < P; i++) {
        td[i] = theta0[i];
        tf[i] = (float)theta0[i];
    }
    for (int t = 0; t < STEPS; t++) {
        for (int i = 0; i < P; i++) {
            gd[i] = grad_of(td[i], i);
            gf[i] = (float)grad_of(tf[i], i);
        }
        if (rs == 8)
            bp_optim_step(&o, td, gd, NULL, 0);
        else
            bp_optim_step(&o, tf, gf, NULL, 0);
    }
    CU_ASSERT_EQUAL(o.step, STEPS);
    for (int i = 0; i < P; i++)
        out[i] = rs == 8 ? td[i] : tf[i];
    free(state);
}

static void test_rules(void)
{
    static const bp_optim_kind kinds[] = {BP_SGD, BP_MOMENTUM, BP_NESTEROV,
                                          BP_RMSPROP, BP_ADAM, BP_ADAMW};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        for (int w = 0; w < 2; w++)
            for (int rs = 4; rs <= 8; rs += 4) {
                double wd = w ? 0.05 : 0, want[P], got[P];
                by_hand(kinds[k], wd, want);
                by_optim(kinds[k], wd, rs, got);
                double tol = rs == 8 ? 1e-12 : 2e-5;
                for (int i = 0; i < P; i++) {
                    CU_ASSERT(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])));
                    CU_ASSERT(got[i] != theta0[i]);
                }
            }
}

static void test_weight_decay_matters(void)
{
    /* wd changes the result, differently for Adam (L2) and AdamW. */
    double a[P], b[P], c[P];
    by_optim(BP_ADAM, 0, 8, a);
    by_optim(BP_ADAM, 0.05, 8, b);
    by_optim(BP_ADAMW, 0.05, 8, c);
    CU_ASSERT(a[0] != b[0] && b[0] != c[0] && a[0] != c[0]);
}

static void test_first_step_values(void)
{
    /* One step written out as numbers, as a check on the hand rules. */
    double th[2] = {1.0, -2.0}, g[2] = {0.5, -1.0};
    bp_optim_config c = bp_optim_defaults(BP_SGD);
    c.lr = 0.1;
    bp_optimizer o;
    bp_optim_init(&o, &c, NULL, 2, 8, NULL);
    bp_optim_step(&o, th, g, NULL, 0);
    CU_ASSERT_DOUBLE_EQUAL(th[0], 0.95, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(th[1], -1.9, 1e-15);
    /* Adam's first step moves every entry by lr (bias correction). */
    double th2[2] = {1.0, -2.0}, g2[2] = {0.5, -1.0}, st[4];
    c = bp_optim_defaults(BP_ADAM);
    c.lr = 0.01;
    bp_optim_init(&o, &c, NULL, 2, 8, st);
    bp_optim_step(&o, th2, g2, NULL, 0);
    CU_ASSERT_DOUBLE_EQUAL(th2[0], 0.99, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(th2[1], -1.99, 1e-9);
}

static void test_schedules(void)
{
    bp_optim_config c = bp_optim_defaults(BP_SGD);
    bp_optimizer o;
    c.lr = 1.0;
    bp_optim_init(&o, &c, NULL, 1, 8, NULL);
    o.step = 1000;
    CU_ASSERT_EQUAL(bp_optim_lr(&o), 1.0);

    c.schedule = BP_LR_STEP;
    c.step_size = 2;
    c.gamma = 0.5;
    bp_optim_init(&o, &c, NULL, 1, 8, NULL);
    static const double step_want[] = {1, 1, 0.5, 0.5, 0.25, 0.25, 0.125};
    for (int t = 0; t < 7; t++) {
        o.step = t;
        CU_ASSERT_DOUBLE_EQUAL(bp_optim_lr(&o), step_want[t], 1e-15);
    }

    c.schedule = BP_LR_COSINE;
    c.total_steps = 10;
    c.lr_min = 0.1;
    bp_optim_init(&o, &c, NULL, 1, 8, NULL);
    const double pi = 3.14159265358979323846;
    for (int t = 0; t <= 10; t++) {
        o.step = t;
        double want = 0.1 + 0.9 * (1 + cos(pi * t / 10)) / 2;
        CU_ASSERT_DOUBLE_EQUAL(bp_optim_lr(&o), want, 1e-15);
    }
    o.step = 0;
    CU_ASSERT_DOUBLE_EQUAL(bp_optim_lr(&o), 1.0, 1e-15);
    o.step = 5;
    CU_ASSERT_DOUBLE_EQUAL(bp_optim_lr(&o), 0.55, 1e-15);
    o.step = 10;
    CU_ASSERT_DOUBLE_EQUAL(bp_optim_lr(&o), 0.1, 1e-15);
    o.step = 25; /* clamped after total_steps */
    CU_ASSERT_DOUBLE_EQUAL(bp_optim_lr(&o), 0.1, 1e-15);

    /* The schedule drives the steps: SGD on a constant gradient of 1. */
    c = bp_optim_defaults(BP_SGD);
    c.lr = 1.0;
    c.schedule = BP_LR_STEP;
    c.step_size = 1;
    c.gamma = 0.5;
    bp_optim_init(&o, &c, NULL, 1, 8, NULL);
    double th = 0, g;
    for (int t = 0; t < 3; t++) {
        g = 1;
        bp_optim_step(&o, &th, &g, NULL, 0);
    }
    CU_ASSERT_DOUBLE_EQUAL(th, -1.75, 1e-15);
}

static void test_clipping(void)
{
    for (int rs = 4; rs <= 8; rs += 4) {
        bp_optim_config c = bp_optim_defaults(BP_SGD);
        c.lr = 1.0;
        c.clip_norm = 1.0;
        bp_optimizer o;
        bp_optim_init(&o, &c, NULL, 3, rs, NULL);
        double td[3] = {0, 0, 0}, gd[3] = {3, 4, 0};
        float tf[3] = {0, 0, 0}, gf[3] = {3, 4, 0};
        int rc = rs == 8 ? bp_optim_step(&o, td, gd, NULL, 0)
                         : bp_optim_step(&o, tf, gf, NULL, 0);
        CU_ASSERT_EQUAL(rc, BP_OK);
        CU_ASSERT_DOUBLE_EQUAL(o.grad_norm, 5.0, 1e-6);
        double g0 = rs == 8 ? gd[0] : gf[0], t1 = rs == 8 ? td[1] : tf[1];
        CU_ASSERT_DOUBLE_EQUAL(g0, 0.6, 1e-6);   /* rescaled in place */
        CU_ASSERT_DOUBLE_EQUAL(t1, -0.8, 1e-6);
        /* Below the threshold: untouched. */
        double t2[2] = {0, 0}, g2[2] = {0.3, 0.4};
        bp_optim_init(&o, &c, NULL, 2, 8, NULL);
        CU_ASSERT_EQUAL(bp_optim_step(&o, t2, g2, NULL, 0), BP_OK);
        CU_ASSERT_DOUBLE_EQUAL(o.grad_norm, 0.5, 1e-15);
        CU_ASSERT_EQUAL(g2[1], 0.4);
        CU_ASSERT_DOUBLE_EQUAL(t2[1], -0.4, 1e-15);
    }
}

static void test_frozen(void)
{
    static const bp_tensor_info params[] = {
        {"a", 1, {2, 1, 1, 1}, 2, 0, 1, 0}, {"b", 1, {2, 1, 1, 1}, 2, 2, 0, 0}};
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = "frz";
    m.real_size = 8;
    m.num_params = 4;
    m.num_param_tensors = 2;
    m.params = params;
    static const bp_optim_kind kinds[] = {BP_SGD, BP_MOMENTUM, BP_ADAMW};
    for (int k = 0; k < 3; k++) {
        bp_optim_config c = bp_optim_defaults(kinds[k]);
        c.weight_decay = 0.1;
        double state[8];
        bp_optimizer o;
        bp_optim_init(&o, &c, &m, 4, 8, state);
        double th[4] = {1, 2, 3, 4}, g[4] = {3, 4, 3, 4};
        CU_ASSERT_EQUAL(bp_optim_step(&o, th, g, NULL, 0), BP_OK);
        CU_ASSERT_DOUBLE_EQUAL(o.grad_norm, 5.0, 1e-15); /* frozen entries not counted */
        CU_ASSERT_EQUAL(th[0], 1.0);
        CU_ASSERT_EQUAL(th[1], 2.0);
        CU_ASSERT(th[2] < 3.0 && th[3] < 4.0);
    }
}

static void test_defaults_and_sizes(void)
{
    bp_optim_config c = bp_optim_defaults(BP_ADAM);
    CU_ASSERT_EQUAL(c.kind, BP_ADAM);
    CU_ASSERT_EQUAL(c.lr, 0.001);
    CU_ASSERT_EQUAL(c.beta1, 0.9);
    CU_ASSERT_EQUAL(c.beta2, 0.999);
    CU_ASSERT_EQUAL(c.eps, 1e-8);
    CU_ASSERT_EQUAL(c.weight_decay, 0);
    CU_ASSERT_EQUAL(c.clip_norm, 0);
    CU_ASSERT_EQUAL(c.schedule, BP_LR_CONSTANT);
    CU_ASSERT_EQUAL(bp_optim_defaults(BP_SGD).lr, 0.01);
    CU_ASSERT_EQUAL(bp_optim_defaults(BP_MOMENTUM).momentum, 0.9);
    CU_ASSERT_EQUAL(bp_optim_defaults(BP_RMSPROP).rho, 0.9);
    /* the state is of the model's precision */
    CU_ASSERT_EQUAL(bp_optim_state_size(&c, 10, 4), 2 * 10 * sizeof(float));
    CU_ASSERT_EQUAL(bp_optim_state_size(&c, 10, 8), 2 * 10 * sizeof(double));
    c = bp_optim_defaults(BP_SGD);
    CU_ASSERT_EQUAL(bp_optim_state_size(&c, 10, 8), 0);
    c = bp_optim_defaults(BP_NESTEROV);
    CU_ASSERT_EQUAL(bp_optim_state_size(&c, 10, 8), 10 * sizeof(double));
    /* init zeroes the state. */
    double st[10];
    for (int i = 0; i < 10; i++)
        st[i] = 7;
    bp_optimizer o;
    bp_optim_init(&o, &c, NULL, 10, 8, st);
    CU_ASSERT_EQUAL(st[9], 0.0);
    CU_ASSERT_EQUAL(o.step, 0);
}

/* A step with no state for a kind that needs it (or with no theta or
 * grad) does nothing and returns BP_ERR_ARG with a message, not a crash. */
static void test_missing_state(void)
{
    static const bp_optim_kind kinds[] = {BP_MOMENTUM, BP_NESTEROV,
                                          BP_RMSPROP, BP_ADAM, BP_ADAMW};
    for (int k = 0; k < 5; k++) {
        bp_optim_config c = bp_optim_defaults(kinds[k]);
        bp_optimizer o;
        bp_optim_init(&o, &c, NULL, 2, 8, NULL);
        double th[2] = {1.0, -2.0}, g[2] = {0.5, -1.0};
        char err[128] = "";
        o.grad_norm = 42;
        CU_ASSERT_EQUAL(bp_optim_step(&o, th, g, err, sizeof err), BP_ERR_ARG);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "bp_optim_step: the optimizer has no state "
                                           "buffer, but its kind needs"));
        CU_ASSERT_EQUAL(o.grad_norm, 42);
        CU_ASSERT(th[0] == 1.0 && th[1] == -2.0);
        CU_ASSERT(g[0] == 0.5 && g[1] == -1.0);
        CU_ASSERT_EQUAL(o.step, 0);
    }
    bp_optim_config c = bp_optim_defaults(BP_SGD);
    bp_optimizer o;
    bp_optim_init(&o, &c, NULL, 2, 8, NULL);
    double th[2] = {1.0, -2.0}, g[2] = {0.5, -1.0};
    char err[128] = "";
    CU_ASSERT_EQUAL(bp_optim_step(&o, NULL, g, err, sizeof err), BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(err, "bp_optim_step: missing argument (theta is NULL)");
    CU_ASSERT_EQUAL(bp_optim_step(&o, th, NULL, err, sizeof err), BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(err, "bp_optim_step: missing argument (grad is NULL)");
    CU_ASSERT_EQUAL(bp_optim_step(NULL, th, g, NULL, 0), BP_ERR_ARG);
    CU_ASSERT_EQUAL(o.step, 0);
    /* SGD needs no state: NULL is fine. */
    CU_ASSERT_EQUAL(bp_optim_step(&o, th, g, NULL, 0), BP_OK);
    CU_ASSERT_DOUBLE_EQUAL(o.grad_norm, sqrt(1.25), 1e-15);
    CU_ASSERT_EQUAL(o.step, 1);
}

/* The documented differences from PyTorch stay as documented: clipping
 * scales by clip/norm exactly, RMSprop defaults to rho 0.9, lr 0.001. */
static void test_pytorch_differences(void)
{
    bp_optim_config c = bp_optim_defaults(BP_RMSPROP);
    CU_ASSERT_EQUAL(c.rho, 0.9);
    CU_ASSERT_EQUAL(c.lr, 0.001);
    c = bp_optim_defaults(BP_SGD);
    c.lr = 1.0;
    c.clip_norm = 2.0;
    bp_optimizer o;
    bp_optim_init(&o, &c, NULL, 2, 8, NULL);
    double th[2] = {0, 0}, g[2] = {6, 8};
    bp_optim_step(&o, th, g, NULL, 0);
    CU_ASSERT_DOUBLE_EQUAL(sqrt(g[0] * g[0] + g[1] * g[1]), 2.0, 1e-15);
}

/* ------------------------------------------------ the vectorised loops */

/* The references below must round as the runtime's scalar rule does. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* The rules once more, written the plain way over a whole vector in one
 * precision T (theta, grad, state and arithmetic; the coefficients taken
 * in double and rounded once, as optim.c documents; Adam's bias
 * corrections folded into lr / bc1 and 1 / sqrt(bc2)), skipping
 * [flo, fhi).
 * The clipping scale comes from `norm`, the optimizer's own (its sum runs
 * in partial sums), so that every bit can be compared. */
#define REFERENCE_STEP(T, SQRT)                                             \
    static void reference_step_##T(bp_optim_kind kind,                     \
                                   const bp_optim_config *c, long step,    \
                                   double norm, size_t np, T *theta,       \
                                   T *grad, T *s1, T *s2, size_t flo,      \
                                   size_t fhi)                             \
    {                                                                      \
        double scale = 1;                                                  \
        if (c->clip_norm > 0 && norm > c->clip_norm)                       \
            scale = c->clip_norm / norm;                                   \
        const double t1 = (double)(step + 1);                              \
        const T sz = (T)(c->lr / (1 - pow(c->beta1, t1)));                 \
        const T rb2 = (T)(1 / sqrt(1 - pow(c->beta2, t1)));                \
        const T lr = (T)c->lr, wd = (T)c->weight_decay,                    \
                mu = (T)c->momentum, rho = (T)c->rho,                      \
                rho1 = (T)(1 - c->rho), b1 = (T)c->beta1,                  \
                b11 = (T)(1 - c->beta1), b2 = (T)c->beta2,                 \
                b21 = (T)(1 - c->beta2), eps = (T)c->eps,                  \
                decay = (T)(1 - c->lr * c->weight_decay);                  \
        for (size_t i = 0; i < np; i++) {                                  \
            if (i >= flo && i < fhi)                                       \
                continue;                                                  \
            T th = theta[i], g = grad[i];                                  \
            if (scale != 1)                                                \
                grad[i] = g = (T)((double)g * scale);                      \
            if (kind != BP_ADAMW)                                          \
                g = g + wd * th;                                           \
            switch (kind) {                                                \
            case BP_SGD:                                                   \
                th = th - lr * g;                                          \
                break;                                                     \
            case BP_MOMENTUM:                                              \
                s1[i] = mu * s1[i] + g;                                    \
                th = th - lr * s1[i];                                      \
                break;                                                     \
            case BP_NESTEROV:                                              \
                s1[i] = mu * s1[i] + g;                                    \
                th = th - lr * (g + mu * s1[i]);                           \
                break;                                                     \
            case BP_RMSPROP:                                               \
                s1[i] = rho * s1[i] + rho1 * g * g;                        \
                th = th - lr * g / (SQRT(s1[i]) + eps);                    \
                break;                                                     \
            case BP_ADAMW:                                                 \
                th = th * decay;                                           \
                /* fall through */                                         \
            case BP_ADAM:                                                  \
                s1[i] = b1 * s1[i] + b11 * g;                              \
                s2[i] = b2 * s2[i] + b21 * g * g;                          \
                th = th - sz * (s1[i] / (SQRT(s2[i]) * rb2 + eps));        \
                break;                                                     \
            }                                                              \
            theta[i] = th;                                                 \
        }                                                                  \
    }
REFERENCE_STEP(float, sqrtf)
REFERENCE_STEP(double, sqrt)

/* The gradient's norm over the entries outside [flo, fhi), in double. */
static double reference_norm(const void *grad, int rs, size_t np, size_t flo,
                             size_t fhi)
{
    double sumsq = 0;
    for (size_t i = 0; i < np; i++)
        if (i < flo || i >= fhi) {
            double g = rs == 8 ? ((const double *)grad)[i]
                               : ((const float *)grad)[i];
            sumsq += g * g;
        }
    return sqrt(sumsq);
}

enum { NP = 1037, FLO = 300, FHI = 333 };
/* 1037 entries (odd, so the vector loops have tails) with a frozen
 * tensor in the middle. */
static const bp_tensor_info fast_params[] = {
    {"a", 1, {FLO, 1, 1, 1}, FLO, 0, 0, 0},
    {"f", 1, {FHI - FLO, 1, 1, 1}, FHI - FLO, FLO, 1, 0},
    {"b", 1, {NP - FHI - 100, 1, 1, 1}, NP - FHI - 100, FHI, 0, 0},
    {"c", 1, {100, 1, 1, 1}, 100, NP - 100, 0, 0}};
static const bp_optim_kind all_kinds[] = {BP_SGD, BP_MOMENTUM, BP_NESTEROV,
                                          BP_RMSPROP, BP_ADAM, BP_ADAMW};
enum { NKINDS = sizeof all_kinds / sizeof *all_kinds };

static bp_model fast_model(int rs)
{
    bp_model m;
    memset(&m, 0, sizeof m);
    m.abi_version = BP_ABI_VERSION;
    m.name = "fast";
    m.real_size = rs;
    m.num_params = NP;
    m.num_param_tensors = 4;
    m.params = fast_params;
    return m;
}

/* Every kind, float and double, every instruction set this CPU runs:
 * 5 steps with weight decay, and clipping on the even steps; theta, grad
 * and state (all of the model's precision) must equal the plain rule in
 * that precision bit for bit, and the frozen range must not move. */
static void test_fast_matches_reference(void)
{
    int best = bp_isa(), isas = 0;
    for (int isa = 0; isa < 3; isa++) {
        if (bp_isa_force(isa) != 0)
            continue;
        isas++;
        for (int rs = 4; rs <= 8; rs += 4)
            for (size_t k = 0; k < NKINDS; k++) {
                bp_model m = fast_model(rs);
                bp_optim_config c = config(all_kinds[k], 0.01);
                c.clip_norm = 20;
                size_t bytes = bp_optim_state_size(&c, NP, rs);
                CU_ASSERT_EQUAL(bytes, (size_t)(all_kinds[k] == BP_SGD ? 0
                                 : all_kinds[k] >= BP_ADAM ? 2 : 1) * NP * rs);
                char *state = calloc(1, bytes + 8), *ref = calloc(1, bytes + 8);
                char *th = malloc(NP * 8), *gr = malloc(NP * 8),
                     *rth = malloc(NP * 8), *rgr = malloc(NP * 8),
                     *th0 = malloc(NP * 8);
                bp_rng r;
                bp_rng_seed(&r, 17 + k);
                bp_fill_normal(&r, th, rs, NP, 0, 1);
                memcpy(rth, th, NP * 8);
                memcpy(th0, th, NP * 8);
                bp_optimizer o;
                bp_optim_init(&o, &c, &m, NP, rs, state);
                int same = 1;
                double worst_norm = 0;
                for (int step = 0; step < 5; step++) {
                    /* big gradients on even steps, so clipping applies */
                    bp_fill_normal(&r, gr, rs, NP, 0, step % 2 ? 0.1 : 3);
                    memcpy(rgr, gr, NP * 8);
                    double norm = reference_norm(rgr, rs, NP, FLO, FHI);
                    CU_ASSERT_EQUAL(bp_optim_step(&o, th, gr, NULL, 0), BP_OK);
                    worst_norm = fmax(worst_norm,
                                      fabs(o.grad_norm - norm) / norm);
                    CU_ASSERT(step % 2 || o.grad_norm > c.clip_norm);
                    char *r2 = ref + NP * (size_t)rs;
                    if (rs == 8)
                        reference_step_double(all_kinds[k], &c, step,
                                              o.grad_norm, NP, (double *)rth,
                                              (double *)rgr, (double *)ref,
                                              (double *)r2, FLO, FHI);
                    else
                        reference_step_float(all_kinds[k], &c, step,
                                             o.grad_norm, NP, (float *)rth,
                                             (float *)rgr, (float *)ref,
                                             (float *)r2, FLO, FHI);
                    same &= memcmp(th, rth, NP * (size_t)rs) == 0;
                    same &= memcmp(gr, rgr, NP * (size_t)rs) == 0;
                    same &= memcmp(state, ref, bytes) == 0;
                }
                CU_ASSERT(same);
                /* the norm's sum runs in partial sums: round-off only */
                CU_ASSERT(worst_norm <= 1e-14);
                if (!same || !(worst_norm <= 1e-14))
                    fprintf(stderr, "optim fast path: kind %d rs %d isa %d: "
                            "bits %s, norm rel diff %g\n", (int)all_kinds[k],
                            rs, isa, same ? "equal" : "differ", worst_norm);
                CU_ASSERT(memcmp(th + (size_t)FLO * rs, th0 + (size_t)FLO * rs,
                                 (size_t)(FHI - FLO) * rs) == 0);
                CU_ASSERT(memcmp(th, th0, (size_t)rs) != 0);
                free(state); free(ref); free(th); free(gr);
                free(rth); free(rgr); free(th0);
            }
    }
    bp_isa_force(-1);
    CU_ASSERT_EQUAL(bp_isa(), best);
    CU_ASSERT(isas >= 1);
}

/* bp_optim_update on every parameter's range (the frozen one included),
 * or on chunks that cut across tensors, then bp_optim_finish: the same
 * bits as bp_optim_step with clipping off, for every kind, float and
 * double, every instruction set, with weight decay and a schedule; and
 * the step's norm, summed by the update loops, is the gradient's. */
static void test_update_ranges_match_step(void)
{
    int best = bp_isa();
    for (int isa = 0; isa < 3; isa++) {
        if (bp_isa_force(isa) != 0)
            continue;
        for (int rs = 4; rs <= 8; rs += 4)
            for (size_t k = 0; k < NKINDS; k++)
                for (int chunks = 0; chunks < 2; chunks++) {
                    bp_model m = fast_model(rs);
                    bp_optim_config c = config(all_kinds[k], 0.01);
                    c.schedule = BP_LR_COSINE;
                    c.total_steps = 4;
                    c.lr_min = 0.01;
                    size_t bytes = bp_optim_state_size(&c, NP, rs);
                    char *sa = calloc(1, bytes + 8), *sb = calloc(1, bytes + 8);
                    char *ta = malloc(NP * 8), *tb = malloc(NP * 8),
                         *ga = malloc(NP * 8), *gb = malloc(NP * 8),
                         *t0 = malloc(NP * 8);
                    bp_rng r;
                    bp_rng_seed(&r, 5 + k);
                    bp_fill_normal(&r, ta, rs, NP, 0, 1);
                    memcpy(tb, ta, NP * 8);
                    memcpy(t0, ta, NP * 8);
                    bp_optimizer a, b;
                    bp_optim_init(&a, &c, &m, NP, rs, sa);
                    bp_optim_init(&b, &c, &m, NP, rs, sb);
                    int same = 1, rc = BP_OK;
                    double worst_norm = 0;
                    for (int step = 0; step < 5; step++) {
                        bp_fill_normal(&r, ga, rs, NP, 0, 1);
                        memcpy(gb, ga, NP * 8);
                        double norm = reference_norm(ga, rs, NP, FLO, FHI);
                        CU_ASSERT_EQUAL(bp_optim_step(&a, ta, ga, NULL, 0),
                                        BP_OK);
                        /* without clipping the update sums the norm */
                        worst_norm = fmax(worst_norm,
                                          fabs(a.grad_norm - norm) / norm);
                        if (chunks) {
                            for (size_t at = 0; at < NP; at += 97) {
                                size_t len = NP - at < 97 ? NP - at : 97;
                                rc |= bp_optim_update(&b, tb, gb + at * rs,
                                                      at, len);
                            }
                        } else {
                            for (int t = 3; t >= 0; t--) /* any order */
                                rc |= bp_optim_update(
                                    &b, tb, gb + fast_params[t].offset * rs,
                                    fast_params[t].offset, fast_params[t].size);
                        }
                        CU_ASSERT_EQUAL(b.step, step);
                        bp_optim_finish(&b);
                        same &= memcmp(ta, tb, NP * (size_t)rs) == 0;
                        same &= memcmp(sa, sb, bytes) == 0;
                        same &= memcmp(ga, gb, NP * (size_t)rs) == 0;
                    }
                    CU_ASSERT_EQUAL(rc, BP_OK);
                    CU_ASSERT(same);
                    CU_ASSERT(worst_norm <= 1e-14);
                    if (!same)
                        fprintf(stderr, "optim update: kind %d rs %d isa %d "
                                "chunks %d: differs from the step\n",
                                (int)all_kinds[k], rs, isa, chunks);
                    CU_ASSERT_EQUAL(b.step, 5);
                    CU_ASSERT(memcmp(tb + (size_t)FLO * rs, t0 + (size_t)FLO * rs,
                                     (size_t)(FHI - FLO) * rs) == 0);
                    CU_ASSERT(memcmp(tb, t0, (size_t)rs) != 0);
                    free(sa); free(sb); free(ta); free(tb); free(ga);
                    free(gb); free(t0);
                }
    }
    bp_isa_force(-1);
    CU_ASSERT_EQUAL(bp_isa(), best);
}

/* bp_optim_update refuses what it cannot do and then changes nothing. */
static void test_update_errors(void)
{
    bp_optim_config c = config(BP_ADAM, 0.1);
    float st[8] = {0}, th[4] = {1, 2, 3, 4}, g[4] = {1, 1, 1, 1};
    bp_optimizer o;
    bp_optim_init(&o, &c, NULL, 4, 4, st);
    CU_ASSERT_EQUAL(bp_optim_update(NULL, th, g, 0, 4), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_optim_update(&o, NULL, g, 0, 4), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_optim_update(&o, th, NULL, 0, 4), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_optim_update(&o, th, g, 0, 5), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_optim_update(&o, th, g, 5, 0), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_optim_update(&o, th, g, 2, (size_t)-1), BP_ERR_ARG);
    o.state = NULL;
    CU_ASSERT_EQUAL(bp_optim_update(&o, th, g, 0, 4), BP_ERR_ARG);
    o.state = st;
    bp_model m = fast_model(4);
    m.num_params = 4;
    m.num_param_tensors = 0;
    m.abi_version = BP_ABI_VERSION + 1;
    o.model = &m;
    CU_ASSERT_EQUAL(bp_optim_update(&o, th, g, 0, 4), BP_ERR_ARG);
    o.model = NULL;
    CU_ASSERT(th[0] == 1 && th[1] == 2 && th[2] == 3 && th[3] == 4);
    for (int i = 0; i < 8; i++)
        CU_ASSERT_EQUAL(st[i], 0);
    CU_ASSERT_EQUAL(o.step, 0);
    /* An empty range at the end is fine; a real one moves theta only. */
    CU_ASSERT_EQUAL(bp_optim_update(&o, th, g, 4, 0), BP_OK);
    CU_ASSERT_EQUAL(bp_optim_update(&o, th, g + 1, 1, 2), BP_OK);
    CU_ASSERT(th[0] == 1 && th[1] < 2 && th[2] < 3 && th[3] == 4);
    CU_ASSERT_EQUAL(o.step, 0);
    bp_optim_finish(&o);
    CU_ASSERT_EQUAL(o.step, 1);
    bp_optim_finish(NULL);
}

/* A step over many chunks of the update (16 384 entries each) runs on
 * the runtime's threads: with 1, 2 and 3 of them, every kind in float and
 * double gives the same theta, state and norm, bit for bit, over 3 steps
 * (the norm's partial sums are per chunk, added in chunk order). */
static void test_threads_same_bits(void)
{
    enum { BIG = 3 * 65536 + 1001 };
    for (int rs = 4; rs <= 8; rs += 4)
        for (size_t k = 0; k < NKINDS; k++) {
            bp_optim_config c = config(all_kinds[k], 0.01);
            size_t bytes = bp_optim_state_size(&c, BIG, rs);
            char *th[3], *st[3], *gr = malloc((size_t)BIG * 8);
            double norm[3][3];
            for (int t = 0; t < 3; t++) {
                bp_set_num_threads(t + 1);
                th[t] = malloc((size_t)BIG * 8);
                st[t] = calloc(1, bytes + 8);
                bp_rng r;
                bp_rng_seed(&r, 5 + k);
                bp_fill_normal(&r, th[t], rs, BIG, 0, 1);
                bp_optimizer o;
                bp_optim_init(&o, &c, NULL, BIG, rs, st[t]);
                for (int step = 0; step < 3; step++) {
                    bp_fill_normal(&r, gr, rs, BIG, 0, 0.5);
                    CU_ASSERT_EQUAL(bp_optim_step(&o, th[t], gr, NULL, 0), BP_OK);
                    norm[t][step] = o.grad_norm;
                }
            }
            for (int t = 1; t < 3; t++) {
                CU_ASSERT(memcmp(th[t], th[0], (size_t)BIG * rs) == 0);
                CU_ASSERT(memcmp(st[t], st[0], bytes) == 0);
                CU_ASSERT(memcmp(norm[t], norm[0], sizeof norm[0]) == 0);
            }
            CU_ASSERT(norm[0][0] > 0);
            for (int t = 0; t < 3; t++) {
                free(th[t]);
                free(st[t]);
            }
            free(gr);
        }
    /* no pool threads left behind: later suites fork, and a sanitizer's
     * leak check in the child trips over threads that are not there */
    bp_set_num_threads(1);
    bp_threads_shutdown();
}

void register_optim(void);
void register_optim(void)
{
    CU_pSuite s = CU_add_suite("optim", NULL, NULL);
    CU_add_test(s, "update rules by hand", test_rules);
    CU_add_test(s, "weight decay", test_weight_decay_matters);
    CU_add_test(s, "first step values", test_first_step_values);
    CU_add_test(s, "schedules", test_schedules);
    CU_add_test(s, "clipping", test_clipping);
    CU_add_test(s, "frozen tensors", test_frozen);
    CU_add_test(s, "defaults and sizes", test_defaults_and_sizes);
    CU_add_test(s, "no state: no step, NaN", test_missing_state);
    CU_add_test(s, "documented PyTorch differences",
                test_pytorch_differences);
    CU_add_test(s, "vector loops match the plain rules, every ISA",
                test_fast_matches_reference);
    CU_add_test(s, "update on ranges, then finish: the step's bits",
                test_update_ranges_match_step);
    CU_add_test(s, "update: errors change nothing", test_update_errors);
    CU_add_test(s, "1, 2 and 3 threads: the same bits", test_threads_same_bits);
}
