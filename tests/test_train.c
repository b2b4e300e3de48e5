/* test_train.c — the training loop (train.c) on models written by hand
 * below, in float and double, so it is tested without the compiler:
 *
 *   linreg:  input x[2], y[1]; param w[2], b; output yhat = w·x + b;
 *            loss L = mean((w·x + b - y)^2)
 *   softmax: input x[2], y[3]; param W[3, 2], b[3]; output p = softmax(z),
 *            z = W·x + b; loss L = -sum(y * log p)
 *
 * It checks convergence to the least-squares solution, that the loss
 * falls, bit-identical results for a seed, early stopping, partial last
 * batches, accuracy, prediction, caller-owned scratch and optimiser, and
 * the error messages. */
#include "bp.h"
#include "support.h"

#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Hand-written models. Values are read and written in the model's
 * precision; sums run in double. The workspace holds doubles. */

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

/* linreg: theta = w0, w1, b; ws = residuals. */
static double lin_forward(int rs, const void *th, const void *const in[],
                          int n, void *ws)
{
    double *r = ws, L = 0;
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)i;
        double z = rd(th, rs, 0) * rd(in[0], rs, 2 * k) +
                   rd(th, rs, 1) * rd(in[0], rs, 2 * k + 1) + rd(th, rs, 2);
        r[i] = z - rd(in[1], rs, k);
        L += r[i] * r[i];
    }
    return L / n;
}

static void lin_backward(int rs, const void *th, const void *const in[],
                         int n, void *ws, void *g)
{
    (void)th;
    const double *r = ws;
    double g0 = 0, g1 = 0, gb = 0;
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)i;
        g0 += 2 * r[i] * rd(in[0], rs, 2 * k) / n;
        g1 += 2 * r[i] * rd(in[0], rs, 2 * k + 1) / n;
        gb += 2 * r[i] / n;
    }
    wr(g, rs, 0, g0);
    wr(g, rs, 1, g1);
    wr(g, rs, 2, gb);
}

static void lin_predict(int rs, const void *th, const void *const in[],
                        int n, void *const out[])
{
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)i;
        wr(out[0], rs, k,
           rd(th, rs, 0) * rd(in[0], rs, 2 * k) +
               rd(th, rs, 1) * rd(in[0], rs, 2 * k + 1) + rd(th, rs, 2));
    }
}

/* softmax: theta = W (3 x 2, row-major), b[3]; ws = probabilities. */
enum { C = 3 };

static void logits(int rs, const void *th, const void *x, size_t k,
                   double z[C])
{
    for (size_t c = 0; c < C; c++)
        z[c] = rd(th, rs, 2 * c) * rd(x, rs, 2 * k) +
               rd(th, rs, 2 * c + 1) * rd(x, rs, 2 * k + 1) +
               rd(th, rs, 6 + c);
}

static void softmax3(double z[C])
{
    double m = z[0] > z[1] ? z[0] : z[1], s = 0;
    m = m > z[2] ? m : z[2];
    for (int c = 0; c < C; c++)
        s += (z[c] = exp(z[c] - m));
    for (int c = 0; c < C; c++)
        z[c] /= s;
}

static double sm_forward(int rs, const void *th, const void *const in[],
                         int n, void *ws)
{
    double *p = ws, L = 0;
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)i;
        logits(rs, th, in[0], k, p + C * k);
        softmax3(p + C * k);
        for (size_t c = 0; c < C; c++)
            L -= rd(in[1], rs, C * k + c) * log(p[C * k + c]);
    }
    return L / n;
}

static void sm_backward(int rs, const void *th, const void *const in[],
                        int n, void *ws, void *g)
{
    (void)th;
    const double *p = ws;
    double acc[9] = {0};
    for (int i = 0; i < n; i++) {
        size_t k = (size_t)i;
        for (size_t c = 0; c < C; c++) {
            double dz = (p[C * k + c] - rd(in[1], rs, C * k + c)) / n;
            acc[2 * c] += dz * rd(in[0], rs, 2 * k);
            acc[2 * c + 1] += dz * rd(in[0], rs, 2 * k + 1);
            acc[6 + c] += dz;
        }
    }
    for (size_t j = 0; j < 9; j++)
        wr(g, rs, j, acc[j]);
}

static void sm_predict(int rs, const void *th, const void *const in[],
                       int n, void *const out[])
{
    for (int i = 0; i < n; i++) {
        double z[C];
        logits(rs, th, in[0], (size_t)i, z);
        softmax3(z);
        for (size_t c = 0; c < C; c++)
            wr(out[0], rs, C * (size_t)i + c, z[c]);
    }
}

static size_t lin_ws(int n) { return (size_t)n * sizeof(double); }
static size_t sm_ws(int n) { return (size_t)n * C * sizeof(double); }

#define WRAP(NAME, RS, SUF)                                                   \
    static double NAME##_f_##SUF(const void *th, const void *const in[],      \
                                 int n, void *ws)                             \
    {                                                                         \
        return NAME##_forward(RS, th, in, n, ws);                             \
    }                                                                         \
    static void NAME##_b_##SUF(const void *th, const void *const in[], int n, \
                               void *ws, void *g, void *const gi[])           \
    {                                                                         \
        (void)gi;                                                             \
        NAME##_backward(RS, th, in, n, ws, g);                                \
    }                                                                         \
    static void NAME##_p_##SUF(const void *th, const void *const in[], int n, \
                               void *ws, void *const out[])                   \
    {                                                                         \
        (void)ws;                                                             \
        NAME##_predict(RS, th, in, n, out);                                   \
    }

WRAP(lin, 4, f)
WRAP(lin, 8, d)
WRAP(sm, 4, f)
WRAP(sm, 8, d)

static const bp_tensor_info lin_params[] = {
    {"w", 1, {2, 1, 1, 1}, 2, 0, 0, 0},
    {"b", 0, {1, 1, 1, 1}, 1, 2, 0, 0},
};
static const bp_tensor_info lin_inputs[] = {
    {"x", 1, {2, 1, 1, 1}, 2, 0, 0, 0},
    {"y", 1, {1, 1, 1, 1}, 1, 0, 0, 0},
};
static const bp_tensor_info lin_outputs[] = {
    {"yhat", 1, {1, 1, 1, 1}, 1, 0, 0, 0},
};
static const bp_tensor_info sm_params[] = {
    {"W", 2, {3, 2, 1, 1}, 6, 0, 0, 0},
    {"b", 1, {3, 1, 1, 1}, 3, 6, 0, 0},
};
static const bp_tensor_info sm_inputs[] = {
    {"x", 1, {2, 1, 1, 1}, 2, 0, 0, 0},
    {"y", 1, {3, 1, 1, 1}, 3, 0, 0, 0},
};
static const bp_tensor_info sm_outputs[] = {
    {"p", 1, {3, 1, 1, 1}, 3, 0, 0, 0},
};

static bp_model linreg(int rs)
{
    bp_model m = {BP_ABI_VERSION, "linreg", rs, 3, 2, lin_params, 2, lin_inputs, 1,
                  lin_outputs, "L", NULL, lin_ws,
                  rs == 4 ? lin_f_f : lin_f_d, rs == 4 ? lin_b_f : lin_b_d,
                  rs == 4 ? lin_p_f : lin_p_d};
    return m;
}

static bp_model softmax_model(int rs)
{
    bp_model m = {BP_ABI_VERSION, "softmax", rs, 9, 2, sm_params, 2, sm_inputs, 1,
                  sm_outputs, "L", NULL, sm_ws,
                  rs == 4 ? sm_f_f : sm_f_d, rs == 4 ? sm_b_f : sm_b_d,
                  rs == 4 ? sm_p_f : sm_p_d};
    return m;
}

/* One pass for loss and outputs (bp_train_config.forward_outputs), counting its
 * calls and predict's: evaluation must use it and not call predict. */
static int one_pass_calls, predict_calls;

static double sm_fo_d(const void *th, const void *const in[], int n, void *ws,
                      void *const out[])
{
    one_pass_calls++;
    double L = sm_forward(8, th, in, n, ws);
    memcpy(out[0], ws, (size_t)n * C * sizeof(double)); /* ws holds p */
    return L;
}

static void sm_p_counted(const void *th, const void *const in[], int n, void *ws,
                         void *const out[])
{
    predict_calls++;
    sm_p_d(th, in, n, ws, out);
}

/* Forward and backward in one call (bp_train_config.forward_backward),
 * counting its calls: training must use it and call neither alone. */
static int one_call_calls, alone_calls;

static double lin_fb_f(const void *th, const void *const in[], int n, void *ws, void *g,
                       void *const gi[])
{
    one_call_calls++;
    double L = lin_forward(4, th, in, n, ws);
    lin_backward(4, th, in, n, ws, g);
    (void)gi;
    return L;
}

static double lin_f_counted(const void *th, const void *const in[], int n, void *ws)
{
    alone_calls++;
    return lin_f_f(th, in, n, ws);
}

static void lin_b_counted(const void *th, const void *const in[], int n, void *ws, void *g,
                          void *const gi[])
{
    alone_calls++;
    lin_b_f(th, in, n, ws, g, gi);
}

/* ------------------------------------------------------------------------ */
/* Data */

/* y = 2 x0 - 3 x1 + 0.5 + noise, x uniform in [-1, 1). */
static bp_dataset line_data(size_t rows, unsigned long long seed)
{
    bp_dataset d;
    if (bp_data_create(&d, rows, 2, 1, 0, NULL, 0) != 0)
        CU_FAIL("bp_data_create");
    bp_rng r;
    bp_rng_seed(&r, seed);
    for (size_t i = 0; i < rows; i++) {
        double a = bp_rng_uniform(&r, -1, 1), b = bp_rng_uniform(&r, -1, 1);
        d.x[2 * i] = a;
        d.x[2 * i + 1] = b;
        d.y[i] = 2 * a - 3 * b + 0.5 + bp_rng_normal(&r, 0, 0.1);
    }
    return d;
}

/* The least-squares solution (w0, w1, b) by the normal equations. */
static void least_squares(const bp_dataset *d, double beta[3])
{
    double A[3][4] = {{0}};
    for (size_t i = 0; i < d->rows; i++) {
        double row[3] = {d->x[2 * i], d->x[2 * i + 1], 1};
        for (int a = 0; a < 3; a++) {
            for (int b = 0; b < 3; b++)
                A[a][b] += row[a] * row[b];
            A[a][3] += row[a] * d->y[i];
        }
    }
    for (int p = 0; p < 3; p++)
        for (int r = 0; r < 3; r++)
            if (r != p) {
                double f = A[r][p] / A[p][p];
                for (int c = 0; c < 4; c++)
                    A[r][c] -= f * A[p][c];
            }
    for (int p = 0; p < 3; p++)
        beta[p] = A[p][3] / A[p][p];
}

/* Three Gaussian blobs, one per class. */
static bp_dataset blobs(size_t rows, unsigned long long seed)
{
    static const double centre[3][2] = {{2, 0}, {-1, 1.7}, {-1, -1.7}};
    bp_dataset d;
    if (bp_data_create(&d, rows, 2, 0, 3, NULL, 0) != 0)
        CU_FAIL("bp_data_create");
    bp_rng r;
    bp_rng_seed(&r, seed);
    for (size_t i = 0; i < rows; i++) {
        int c = (int)(i % 3);
        d.x[2 * i] = bp_rng_normal(&r, centre[c][0], 0.6);
        d.x[2 * i + 1] = bp_rng_normal(&r, centre[c][1], 0.6);
        d.label[i] = c;
        d.y[3 * i + (size_t)c] = 1;
    }
    return d;
}

/* Records every report; stops after `stop_at` epochs when it is > 0. */
typedef struct {
    int calls, stop_at;
    double train[64], test[64], acc[64];
} recorder;

static int record(const bp_epoch_report *r, void *user)
{
    recorder *rec = user;
    if (rec->calls < 64) {
        rec->train[rec->calls] = r->train_loss;
        rec->test[rec->calls] = r->test_loss;
        rec->acc[rec->calls] = r->test_acc;
    }
    rec->calls++;
    return rec->stop_at > 0 && r->epoch >= rec->stop_at;
}

static bp_train_config quiet(void)
{
    bp_train_config c = bp_train_defaults();
    c.verbose = 0;
    return c;
}

/* ------------------------------------------------------------------------ */
/* Tests */

static void test_least_squares(void)
{
    bp_dataset d = line_data(64, 3);
    double beta[3];
    least_squares(&d, beta);
    for (int rs = 4; rs <= 8; rs += 4) {
        bp_model m = linreg(rs);
        double thd[3] = {0, 0, 0};
        float thf[3] = {0, 0, 0};
        void *th = rs == 4 ? (void *)thf : (void *)thd;
        /* Full-batch gradient descent on a convex quadratic converges to
         * the least-squares solution. */
        bp_train_config c = quiet();
        c.optim = bp_optim_defaults(BP_SGD);
        c.optim.lr = 0.2;
        c.batch_size = 64;
        c.epochs = 600;
        char err[256] = "";
        bp_epoch_report last;
        CU_ASSERT_EQUAL_FATAL(bp_train(&m, th, &d, NULL, &c, &last, err,
                                       sizeof err), 0);
        CU_ASSERT_EQUAL(last.epoch, 600);
        CU_ASSERT_EQUAL(last.step, 600);
        CU_ASSERT(isnan(last.test_loss));
        double tol = rs == 4 ? 1e-4 : 1e-10;
        for (int j = 0; j < 3; j++)
            CU_ASSERT_DOUBLE_EQUAL(rd(th, rs, (size_t)j), beta[j], tol);
    }
    bp_data_free(&d);
}

static void test_loss_falls(void)
{
    bp_dataset all = line_data(200, 11), tr, te;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_data_split(&all, 0.25, 5, &tr, &te, err,
                                        sizeof err), 0);
    for (int rs = 4; rs <= 8; rs += 4) {
        bp_model m = linreg(rs);
        double th[3] = {0, 0, 0};
        bp_train_config c = quiet();
        c.optim.lr = 0.05; /* Adam */
        c.batch_size = 16;
        c.epochs = 40;
        recorder rec;
        memset(&rec, 0, sizeof rec);
        c.on_epoch = record;
        c.user = &rec;
        CU_ASSERT_EQUAL_FATAL(bp_train(&m, th, &tr, &te, &c, NULL, err,
                                       sizeof err), 0);
        CU_ASSERT_EQUAL(rec.calls, 40);
        CU_ASSERT(rec.train[39] < 0.1 * rec.train[0]);
        CU_ASSERT(rec.test[39] < 0.1 * rec.test[0]);
        CU_ASSERT(rec.test[39] < 0.03);      /* noise variance 0.01 */
        CU_ASSERT(isnan(rec.acc[39]));       /* regression: no accuracy */
        /* bp_evaluate agrees with the last report's test loss. */
        double loss, acc;
        CU_ASSERT_EQUAL(bp_evaluate(&m, th, &te, &c, &loss, &acc, err,
                                    sizeof err), 0);
        CU_ASSERT_EQUAL(loss, rec.test[39]);
        CU_ASSERT(isnan(acc));
    }
    bp_data_free(&tr);
    bp_data_free(&te);
    bp_data_free(&all);
}

/* Same seed: bit-identical losses and parameters; another seed: not. */
static void test_determinism(void)
{
    bp_dataset tr = blobs(90, 1), te = blobs(30, 2);
    for (int rs = 4; rs <= 8; rs += 4) {
        bp_model m = softmax_model(rs);
        unsigned char th[3][9 * 8];
        recorder rec[3];
        for (int run = 0; run < 3; run++) {
            memset(th[run], 0, sizeof th[run]);
            memset(&rec[run], 0, sizeof rec[run]);
            bp_train_config c = quiet();
            c.seed = run == 2 ? 99 : 7;
            c.batch_size = 8;
            c.epochs = 10;
            c.optim.lr = 0.01;
            c.on_epoch = record;
            c.user = &rec[run];
            char err[256] = "";
            CU_ASSERT_EQUAL_FATAL(bp_train(&m, th[run], &tr, &te, &c, NULL,
                                           err, sizeof err), 0);
        }
        size_t bytes = 9 * (size_t)rs;
        CU_ASSERT(memcmp(th[0], th[1], bytes) == 0);
        CU_ASSERT(memcmp(rec[0].train, rec[1].train, sizeof rec[0].train) ==
                  0);
        CU_ASSERT(memcmp(rec[0].test, rec[1].test, sizeof rec[0].test) == 0);
        CU_ASSERT(memcmp(th[0], th[2], bytes) != 0);
        CU_ASSERT(rec[0].train[9] != rec[2].train[9]);
    }
    bp_data_free(&tr);
    bp_data_free(&te);
}

static void test_early_stop(void)
{
    bp_dataset d = line_data(10, 4);
    bp_model m = linreg(8);
    double th[3] = {0, 0, 0};
    bp_train_config c = quiet();
    c.batch_size = 4; /* 4 + 4 + 2 */
    c.epochs = 50;
    recorder rec;
    memset(&rec, 0, sizeof rec);
    rec.stop_at = 3;
    c.on_epoch = record;
    c.user = &rec;
    bp_epoch_report last;
    char err[256] = "";
    CU_ASSERT_EQUAL(bp_train(&m, th, &d, NULL, &c, &last, err, sizeof err),
                    0);
    CU_ASSERT_EQUAL(rec.calls, 3);
    CU_ASSERT_EQUAL(last.epoch, 3);
    CU_ASSERT_EQUAL(last.epochs, 50);
    CU_ASSERT_EQUAL(last.stopped, 1);
    CU_ASSERT_EQUAL(last.step, 9); /* the partial batch is a step */
    CU_ASSERT(last.seconds >= 0);
    CU_ASSERT(last.train_seconds >= 0 && last.eval_seconds >= 0);
    CU_ASSERT_DOUBLE_EQUAL(last.seconds, last.train_seconds + last.eval_seconds, 1e-9);
    CU_ASSERT(last.grad_norm > 0);
    CU_ASSERT_DOUBLE_EQUAL(last.lr, 0.001, 1e-15);

    /* With lr 0 nothing moves, and the epoch's running loss covers every
     * row, the partial batch included. */
    c = quiet();
    c.batch_size = 4;
    c.epochs = 1;
    c.optim = bp_optim_defaults(BP_SGD);
    c.optim.lr = 0;
    double th2[3] = {0.5, -0.25, 1};
    CU_ASSERT_EQUAL(bp_train(&m, th2, &d, NULL, &c, &last, err, sizeof err),
                    0);
    double loss;
    CU_ASSERT_EQUAL(bp_evaluate(&m, th2, &d, &c, &loss, NULL, err,
                                sizeof err), 0);
    CU_ASSERT_DOUBLE_EQUAL(last.train_loss, loss, 1e-12);
    CU_ASSERT(th2[0] == 0.5 && th2[1] == -0.25 && th2[2] == 1);
    /* A batch larger than the data is one batch (and no huge buffers). */
    c.batch_size = 2147483647;
    c.epochs = 2;
    CU_ASSERT_EQUAL(bp_train(&m, th2, &d, NULL, &c, &last, err, sizeof err),
                    0);
    CU_ASSERT_EQUAL(last.step, 2);
    CU_ASSERT_EQUAL(bp_evaluate(&m, th2, &d, &c, &loss, NULL, err,
                                sizeof err), 0);
    /* epochs = 0 trains nothing. */
    c.epochs = 0;
    CU_ASSERT_EQUAL(bp_train(&m, th2, &d, NULL, &c, &last, err, sizeof err),
                    0);
    CU_ASSERT_EQUAL(last.epoch, 0);
    bp_data_free(&d);
}

static void test_accuracy(void)
{
    /* z = (x0, x1, 0): argmax picks the larger coordinate, or class 2 when
     * both are negative. */
    bp_model m = softmax_model(8);
    double th[9] = {1, 0, 0, 1, 0, 0, 0, 0, 0};
    bp_dataset d;
    bp_data_create(&d, 4, 2, 0, 3, NULL, 0);
    const double xs[8] = {2, 0, 0, 2, -1, -1, 3, 0};
    const int labels[4] = {0, 1, 2, 1}; /* the last is predicted 0 */
    memcpy(d.x, xs, sizeof xs);
    for (size_t i = 0; i < 4; i++) {
        d.label[i] = labels[i];
        d.y[3 * i + (size_t)labels[i]] = 1;
    }
    double want = 0;
    for (size_t i = 0; i < 4; i++) {
        double z[3] = {xs[2 * i], xs[2 * i + 1], 0};
        softmax3(z);
        want -= log(z[labels[i]]) / 4;
    }
    bp_train_config c = quiet();
    c.batch_size = 3; /* two batches */
    double loss, acc;
    char err[256] = "";
    CU_ASSERT_EQUAL(bp_evaluate(&m, th, &d, &c, &loss, &acc, err, sizeof err),
                    0);
    CU_ASSERT_DOUBLE_EQUAL(acc, 0.75, 0);
    CU_ASSERT_DOUBLE_EQUAL(loss, want, 1e-12);
    int pred[4];
    CU_ASSERT_EQUAL(bp_predict_argmax(&m, th, &d, &c, pred, err, sizeof err),
                    0);
    CU_ASSERT(pred[0] == 0 && pred[1] == 1 && pred[2] == 2 && pred[3] == 0);

    /* With forward_outputs, one pass per batch gives the same numbers. */
    bp_model one = m;
    one.predict = sm_p_counted;
    bp_train_config c1 = c;
    c1.forward_outputs = sm_fo_d;
    one_pass_calls = predict_calls = 0;
    double loss1, acc1;
    CU_ASSERT_EQUAL(bp_evaluate(&one, th, &d, &c1, &loss1, &acc1, err, sizeof err), 0);
    CU_ASSERT_EQUAL(one_pass_calls, 2);
    CU_ASSERT_EQUAL(predict_calls, 0);
    CU_ASSERT_EQUAL(loss1, loss);
    CU_ASSERT_EQUAL(acc1, acc);
    c.accuracy = 0;
    CU_ASSERT_EQUAL(bp_evaluate(&m, th, &d, &c, &loss, &acc, err, sizeof err),
                    0);
    CU_ASSERT(isnan(acc));
    c.accuracy = 1;
    c.pred_output = 1;
    CU_ASSERT_NOT_EQUAL(bp_evaluate(&m, th, &d, &c, &loss, &acc, err,
                                    sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "pred_output 1 is not an output of model "
                                "'softmax' (it has 1)");
    bp_data_free(&d);

    /* Training a classifier: accuracy on held-out data, with eval_train. */
    bp_dataset tr = blobs(150, 8), te = blobs(60, 9);
    for (int rs = 4; rs <= 8; rs += 4) {
        bp_model sm = softmax_model(rs);
        double theta[9] = {0};
        c = quiet();
        c.epochs = 30;
        c.batch_size = 16;
        c.optim.lr = 0.05;
        c.eval_train = 1;
        bp_epoch_report last;
        CU_ASSERT_EQUAL_FATAL(bp_train(&sm, theta, &tr, &te, &c, &last, err,
                                       sizeof err), 0);
        CU_ASSERT(last.test_acc >= 0.9);
        CU_ASSERT(last.train_acc >= 0.9);
        CU_ASSERT(last.test_loss < 0.5);
        double l2, a2;
        CU_ASSERT_EQUAL(bp_evaluate(&sm, theta, &tr, &c, &l2, &a2, err,
                                    sizeof err), 0);
        CU_ASSERT_EQUAL(l2, last.train_loss); /* same batches, same order */
        CU_ASSERT_EQUAL(a2, last.train_acc);
    }
    bp_data_free(&tr);
    bp_data_free(&te);
}

static void test_buffers(void)
{
    bp_dataset d = line_data(30, 6);
    bp_model m = linreg(4);
    float a[3] = {0, 0, 0}, b[3] = {0, 0, 0};
    bp_train_config c = quiet();
    c.epochs = 5;
    c.batch_size = 7;
    char err[256] = "";
    CU_ASSERT_EQUAL_FATAL(bp_train(&m, a, &d, NULL, &c, NULL, err,
                                   sizeof err), 0);
    /* Caller-owned scratch gives the same result. */
    size_t need = 0;
    CU_ASSERT_EQUAL(bp_train_scratch_size(&m, &c, d.rows, &need, err, sizeof err), BP_OK);
    CU_ASSERT(need > 0);
    /* its own error paths: a config that does not fit, no out-parameter */
    size_t unchanged = 7;
    bp_train_config bad = c;
    bad.batch_size = 0;
    CU_ASSERT_EQUAL(bp_train_scratch_size(&m, &bad, d.rows, &unchanged, err, sizeof err),
                    BP_ERR_ARG);
    CU_ASSERT_STRING_EQUAL(err, "batch size 0 is below 1");
    bad = c;
    bad.x_input = 5;
    CU_ASSERT_EQUAL(bp_train_scratch_size(&m, &bad, d.rows, &unchanged, err, sizeof err),
                    BP_ERR_ARG);
    CU_ASSERT_EQUAL(unchanged, 7);
    CU_ASSERT_EQUAL(bp_train_scratch_size(&m, &c, d.rows, NULL, err, sizeof err), BP_ERR_ARG);
    CU_ASSERT_EQUAL(bp_train_scratch_size(&m, &c, (size_t)-1 / 2, &unchanged, err, sizeof err),
                    BP_ERR_NOMEM);
    CU_ASSERT_STRING_EQUAL(err, "bp_train_scratch_size: scratch size overflows");
    void *block = malloc(need);
    c.scratch = block;
    c.scratch_size = need;
    CU_ASSERT_EQUAL_FATAL(bp_train(&m, b, &d, NULL, &c, NULL, err,
                                   sizeof err), 0);
    CU_ASSERT(memcmp(a, b, sizeof a) == 0);
    c.scratch_size = need - 1;
    CU_ASSERT_NOT_EQUAL(bp_train(&m, b, &d, NULL, &c, NULL, err, sizeof err),
                        0);
    char *want = test_format("bp_train: scratch holds %zu bytes but %zu are "
                             "needed (bp_train_scratch_size)", need - 1, need);
    CU_ASSERT_STRING_EQUAL(err, want);
    free(want);
    free(block);

    /* A caller-owned optimiser keeps its state between calls. */
    c = quiet();
    c.epochs = 2;
    c.batch_size = 10;
    bp_optim_config oc = bp_optim_defaults(BP_ADAM);
    size_t ss = bp_optim_state_size(&oc, m.num_params, m.real_size);
    void *state = malloc(ss);
    bp_optimizer opt;
    bp_optim_init(&opt, &oc, &m, m.num_params, m.real_size, state);
    c.optimizer = &opt;
    bp_epoch_report last;
    CU_ASSERT_EQUAL(bp_train(&m, a, &d, NULL, &c, &last, err, sizeof err), 0);
    CU_ASSERT_EQUAL(bp_train(&m, a, &d, NULL, &c, &last, err, sizeof err), 0);
    CU_ASSERT_EQUAL(opt.step, 12);
    CU_ASSERT_EQUAL(last.step, 12);
    bp_model md = linreg(8);
    CU_ASSERT_NOT_EQUAL(bp_train(&md, a, &d, NULL, &c, NULL, err, sizeof err),
                        0);
    CU_ASSERT_STRING_EQUAL(err, "the optimiser was set up for 3 parameters "
                                "of 4 bytes, but model 'linreg' has 3 of 8");
    free(state);
    bp_data_free(&d);

    /* forward_backward: one call a step, the same theta bit for bit */
    d = line_data(30, 6);
    float fa[3] = {0, 0, 0}, fb[3] = {0, 0, 0};
    c = quiet();
    c.epochs = 3;
    c.batch_size = 7;
    CU_ASSERT_EQUAL_FATAL(bp_train(&m, fa, &d, NULL, &c, NULL, err, sizeof err), 0);
    bp_model counted = m;
    counted.forward = lin_f_counted;
    counted.backward = lin_b_counted;
    c.forward_backward = lin_fb_f;
    one_call_calls = alone_calls = 0;
    CU_ASSERT_EQUAL_FATAL(bp_train(&counted, fb, &d, NULL, &c, NULL, err, sizeof err), 0);
    CU_ASSERT_EQUAL(one_call_calls, 3 * 5);   /* 30 rows in batches of 7: 5 a epoch */
    CU_ASSERT_EQUAL(alone_calls, 0);
    CU_ASSERT(memcmp(fa, fb, sizeof fa) == 0);
    bp_data_free(&d);
}

static void test_errors(void)
{
    bp_model m = linreg(8);
    double th[3] = {0, 0, 0};
    char err[256] = "";
    bp_train_config c = quiet();
    bp_dataset wide;
    bp_data_create(&wide, 5, 3, 1, 0, NULL, 0);
    CU_ASSERT_NOT_EQUAL(bp_train(&m, th, &wide, NULL, &c, NULL, err,
                                 sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "model input 'x' holds 2 values per sample "
                                "but the data set has 3 features");
    bp_data_free(&wide);

    bp_dataset d = line_data(20, 2), empty;
    bp_data_create(&empty, 0, 2, 1, 0, NULL, 0);
    CU_ASSERT_NOT_EQUAL(bp_train(&m, th, &empty, NULL, &c, NULL, err,
                                 sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err, "the training set has no rows");
    c.batch_size = 0;
    CU_ASSERT_NOT_EQUAL(bp_train(&m, th, &d, NULL, &c, NULL, err, sizeof err),
                        0);
    CU_ASSERT_STRING_EQUAL(err, "batch size 0 is below 1");
    c = quiet();
    c.y_input = -1;
    CU_ASSERT_NOT_EQUAL(bp_train(&m, th, &d, NULL, &c, NULL, err, sizeof err),
                        0);
    CU_ASSERT_STRING_EQUAL(err, "model input 'y' (input 1) is not fed by the "
                                "data set: only x_input (0) and y_input (-1) "
                                "are");
    /* An empty test set is no test set. */
    c = quiet();
    c.epochs = 1;
    bp_epoch_report last;
    CU_ASSERT_EQUAL(bp_train(&m, th, &d, &empty, &c, &last, err, sizeof err),
                    0);
    CU_ASSERT(isnan(last.test_loss));
    bp_data_free(&empty);

    /* Divergence is reported, not trained through. */
    c = quiet();
    c.optim = bp_optim_defaults(BP_SGD);
    c.optim.lr = 50;
    c.epochs = 100;
    c.batch_size = 20;
    double t2[3] = {0, 0, 0};
    CU_ASSERT_EQUAL(bp_train(&m, t2, &d, NULL, &c, &last, err, sizeof err),
                    BP_ERR_DIVERGED);
    CU_ASSERT(strncmp(err, "training diverged: loss is ", 27) == 0);
    CU_ASSERT(strstr(err, "(try a lower learning rate)") != NULL);
    bp_data_free(&d);
}

static void test_print(void)
{
    char *path = test_tmp_path("epoch.txt");
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    bp_epoch_report r;
    memset(&r, 0, sizeof r);
    r.epoch = 3;
    r.epochs = 50;
    r.train_loss = 0.41234;
    r.train_acc = NAN;
    r.test_loss = 0.44101;
    r.test_acc = 0.9333;
    r.train_seconds = 5.214;
    r.eval_seconds = 0.1249;
    r.seconds = r.train_seconds + r.eval_seconds;
    CU_ASSERT_EQUAL(bp_epoch_print(&r, f), 0);
    r.test_loss = r.test_acc = NAN;
    r.train_acc = 0.5;
    bp_epoch_print(&r, f);
    fclose(f);
    char *text = test_read_file(path, NULL);
    CU_ASSERT_STRING_EQUAL(text,
                           "epoch 3/50  train loss 0.4123  test loss 0.4410  "
                           "test acc 0.933  (train 5.21 s, eval 0.12 s)\n"
                           "epoch 3/50  train loss 0.4123  train acc 0.500  "
                           "(train 5.21 s, eval 0.12 s)\n");
    free(text);
    free(path);
}

/* Review fixes: a caller-supplied optimiser must belong to the model being
 * trained, keep frozen parameters frozen, and have state when it needs it. */
static const bp_tensor_info linf_params[] = {
    {"w", 1, {2, 1, 1, 1}, 2, 0, 1, 0},   /* frozen */
    {"b", 0, {1, 1, 1, 1}, 1, 2, 0, 0},
};

static void test_optimizer_checks(void)
{
    bp_model m = linreg(8);
    m.params = linf_params;
    bp_dataset d = line_data(20, 3);
    bp_train_config c = quiet();
    c.epochs = 2;
    c.batch_size = 5;
    char err[256] = "";
    double th[3] = {1, -1, 0};
    double st[6];

    /* No model: weight decay would move the frozen w. */
    bp_optim_config oc = bp_optim_defaults(BP_SGD);
    oc.weight_decay = 0.1;
    bp_optimizer opt;
    bp_optim_init(&opt, &oc, NULL, m.num_params, m.real_size, NULL);
    c.optimizer = &opt;
    CU_ASSERT_NOT_EQUAL(bp_train(&m, th, &d, NULL, &c, NULL, err, sizeof err),
                        0);
    CU_ASSERT_STRING_EQUAL(err, "the optimiser was set up without a model, "
                                "but model 'linreg' has frozen parameters "
                                "('w'), which it would change (bp_optim_init "
                                "with the model)");
    CU_ASSERT(th[0] == 1 && th[1] == -1 && th[2] == 0);

    /* Another model. */
    bp_model other = m;
    other.name = "other";
    bp_optim_init(&opt, &oc, &other, m.num_params, m.real_size, NULL);
    CU_ASSERT_NOT_EQUAL(bp_train(&m, th, &d, NULL, &c, NULL, err, sizeof err),
                        0);
    CU_ASSERT_STRING_EQUAL(err, "the optimiser was set up for model 'other', "
                                "not for model 'linreg' (bp_optim_init with "
                                "the model being trained)");

    /* Adam without its state. */
    bp_optim_config ac = bp_optim_defaults(BP_ADAM);
    bp_optim_init(&opt, &ac, &m, m.num_params, m.real_size, NULL);
    CU_ASSERT_NOT_EQUAL(bp_train(&m, th, &d, NULL, &c, NULL, err, sizeof err),
                        0);
    CU_ASSERT_STRING_EQUAL(err, "the optimiser has no state buffer, but its "
                                "kind needs 48 bytes (bp_optim_state_size)");
    CU_ASSERT(th[0] == 1 && th[1] == -1 && th[2] == 0);

    /* Set up properly, it trains b and leaves w alone. */
    bp_optim_init(&opt, &oc, &m, m.num_params, m.real_size, NULL);
    CU_ASSERT_EQUAL(bp_train(&m, th, &d, NULL, &c, NULL, err, sizeof err), 0);
    CU_ASSERT(th[0] == 1 && th[1] == -1 && th[2] != 0);
    bp_optim_init(&opt, &ac, &m, m.num_params, m.real_size, st);
    CU_ASSERT_EQUAL(bp_train(&m, th, &d, NULL, &c, NULL, err, sizeof err), 0);
    CU_ASSERT(th[0] == 1 && th[1] == -1);
    /* Without frozen tensors, an optimiser with no model is fine. */
    bp_model plain = linreg(8);
    double tp[3] = {0, 0, 0};
    bp_optim_init(&opt, &oc, NULL, plain.num_params, plain.real_size, NULL);
    CU_ASSERT_EQUAL(bp_train(&plain, tp, &d, NULL, &c, NULL, err, sizeof err),
                    0);
    bp_data_free(&d);
}

void register_train(void)
{
    CU_pSuite s = CU_add_suite("train", NULL, NULL);
    CU_add_test(s, "converges to least squares", test_least_squares);
    CU_add_test(s, "the loss falls (float, double)", test_loss_falls);
    CU_add_test(s, "same seed, bit-identical", test_determinism);
    CU_add_test(s, "early stop, partial batches", test_early_stop);
    CU_add_test(s, "accuracy and prediction", test_accuracy);
    CU_add_test(s, "caller scratch and optimiser", test_buffers);
    CU_add_test(s, "errors", test_errors);
    CU_add_test(s, "caller optimiser: model, frozen, state",
                test_optimizer_checks);
    CU_add_test(s, "epoch line", test_print);
}
