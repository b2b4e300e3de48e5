/* bp.h — the bpgen runtime: what generated code links against, and the
 * tools for training any generated model.
 *
 * Ownership: the caller owns every buffer. No function here keeps a pointer
 * to a buffer after it returns unless its comment says so, and generated
 * code never allocates.
 *
 * Errors, one convention for every function that can fail: it returns an
 * int, BP_OK (0) on success or one of the negative bp_status codes below,
 * and its last two parameters are `char *err, size_t err_size` (for
 * bp_gradcheck, `where`): on failure, when err is not NULL and err_size >
 * 0, a one-line, NUL-terminated message without a trailing newline is
 * written there (cut to err_size), starting with the file it concerns when
 * there is one: "weights.bin: checksum mismatch (file damaged)". On
 * success err is left as it was. Results travel through out-parameters.
 * bp_strerror(code) names a code in a few words. The only functions that
 * return no status are those that cannot fail (given the arguments their
 * comments ask for): the rng, fill, gemm, shuffle and standardise-rows
 * helpers, bp_batch_fill, bp_optim_init, bp_optim_state_size,
 * bp_optim_lr, bp_optim_finish, bp_version, bp_strerror, the *_defaults
 * and *_free functions, bp_selftest_scratch_size, the bp_nonfinite_*
 * functions (and bp_epoch_print, a callback whose int means "stop").
 */
#ifndef BP_H
#define BP_H

#include <stddef.h>
#include <stdint.h>   /* the fast math's bit patterns */
#include <string.h>   /* memcpy, for the same */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* fail.c — status codes (see "Errors" above). */

typedef enum {
    BP_OK = 0,
    BP_ERR_ARG = -1,        /* an argument is unusable: NULL where a value is
                               needed, an option or configuration out of
                               range, a model or data set the call cannot
                               work with */
    BP_ERR_IO = -2,         /* a file cannot be opened, read or written, or
                               the all-reduce of data-parallel training
                               failed */
    BP_ERR_FORMAT = -3,     /* a file's contents are malformed, truncated,
                               damaged or hold values that are not allowed */
    BP_ERR_MISMATCH = -4,   /* a file or data set is well formed but does not
                               fit the model (names, shapes, sizes) */
    BP_ERR_NOMEM = -5,      /* out of memory, or a size that overflows */
    BP_ERR_DIVERGED = -6    /* training met a loss that is not finite */
} bp_status;

/* "invalid argument", "I/O error", ...; "unknown error" for anything else. */
const char *bp_strerror(int status);

/* ------------------------------------------------------------------------ */
/* version.c — versions. BP_VERSION_* name the release of bpgen and its
 * runtime; BP_ABI_VERSION numbers the layout of bp_model and
 * bp_tensor_info that generated code is compiled against, and changes
 * whenever that layout does (2: tensors of rank up to 4). */

#define BP_VERSION_MAJOR 0
#define BP_VERSION_MINOR 2
#define BP_VERSION_PATCH 0
#define BP_VERSION_STRING "0.2.0"
#define BP_ABI_VERSION 2

/* The version of the library linked in, "0.2.0": it may differ from the
 * BP_VERSION_STRING an application was compiled with. */
const char *bp_version(void);

/* ------------------------------------------------------------------------ */
/* The model descriptor. Every generated model M defines
 * `const bp_model M_model`, so runtime functions work with any model,
 * float or double. The function pointers take untyped buffers: real_size
 * says whether they hold float (4) or double (8).
 *
 * abi_version comes first so that it sits at the same place in every
 * layout: generated code sets it to the BP_ABI_VERSION it was compiled
 * against (its header refuses to compile against another with #error),
 * and every runtime function taking a bp_model fails with
 *   "model 'iris' was generated for runtime ABI 1 but this runtime has
 *    ABI 2: regenerate it with this bpgen"
 * when it differs from the library's, e.g. an object file compiled
 * against an old bp.h linked with a new libbp.a. A model descriptor
 * written by hand sets .abi_version = BP_ABI_VERSION. */

typedef struct {
    const char *name;
    int rank;            /* 0 to 4 */
    int dims[4];         /* unused entries are 1 */
    size_t size;         /* number of scalars */
    size_t offset;       /* params: index in theta */
    int frozen;          /* params: declared `param frozen`, gradient not computed */
    int wrt;             /* inputs: named in `wrt`, gradient computed */
} bp_tensor_info;

typedef struct bp_model {
    int abi_version;                /* BP_ABI_VERSION of the generated code */
    const char *name;
    int real_size;                  /* sizeof(real): 4 float, 8 double */
    size_t num_params;              /* scalars in theta */
    int num_param_tensors;
    const bp_tensor_info *params;   /* declaration order */
    int num_inputs;
    const bp_tensor_info *inputs;
    int num_outputs;
    const bp_tensor_info *outputs;
    const char *loss_name;

    void   (*init)(void *theta, unsigned long long seed);
    size_t (*workspace_size)(int n);
    double (*forward)(const void *theta, const void *const inputs[], int n,
                      void *ws);
    void   (*backward)(const void *theta, const void *const inputs[], int n,
                       void *ws, void *grad, void *const grad_inputs[]);
    void   (*predict)(const void *theta, const void *const inputs[], int n,
                      void *ws, void *const outputs[]);
} bp_model;

/* 0 when m is usable by this runtime: not NULL, and generated for its
 * ABI; otherwise -1 with the message above in err (caller-owned, may be
 * NULL). Every runtime function taking a bp_model calls it first. */
int bp_model_check_abi(const bp_model *m, char *err, size_t err_size);

/* ------------------------------------------------------------------------ */
/* rng.c — random numbers: xoshiro256** seeded through splitmix64, a
 * reproducible generator (the same seed gives the same numbers on every
 * machine). The caller owns the bp_rng; there is no global state.
 * uniform: 53 random bits, in [lo, hi). normal: Box–Muller, one draw per
 * call and no cached second value, so a draw depends only on the state. */

typedef struct {
    unsigned long long s[4];
} bp_rng;

void   bp_rng_seed(bp_rng *r, unsigned long long seed);
unsigned long long bp_rng_next(bp_rng *r);
double bp_rng_uniform(bp_rng *r, double lo, double hi);   /* [lo, hi) */
double bp_rng_normal(bp_rng *r, double mean, double std);

/* Fill helpers used by generated M_init: `count` values of the given
 * precision (real_size 4 or 8) at `dst` (caller-owned). Uniform values
 * stay in [lo, hi) after rounding to float as well: a draw that rounds to
 * hi or below lo is moved one float inside. (Only when no float at all
 * lies in [lo, hi), say lo = 0.1, hi = 0.1 + 1e-12, is the value the
 * draw rounded to the nearest float, which is then outside.) */
void bp_fill_value(void *dst, int real_size, size_t count, double value);
void bp_fill_uniform(bp_rng *r, void *dst, int real_size, size_t count,
                     double lo, double hi);
void bp_fill_normal(bp_rng *r, void *dst, int real_size, size_t count,
                    double mean, double std);

/* ------------------------------------------------------------------------ */
/* Matrix multiply, row-major:
 *   C[m x n] = alpha * op(A) * op(B) + beta * C
 * op(A) is m x k (A itself k x m when trans_a), op(B) is k x n (B itself
 * n x k when trans_b). lda, ldb, ldc are row strides. beta == 0 means C is
 * written without being read (it may hold garbage, even NaN); alpha == 0
 * or k == 0 leaves beta * C. A, B and C are caller-owned, and C must not
 * overlap A or B. Safe to call from several threads at once.
 * Large products (see gemm.c) pack their operands into a scratch block
 * per calling thread (about 1 MiB, allocated on first use and freed
 * when the thread exits) and use up to bp_get_num_threads() threads.
 * The result is bit-identical for every thread count and every run on a
 * given machine; the kernels (AVX-512, AVX2+FMA or portable, chosen at
 * run time, see bp_kernels) may round differently from one another. */
void bp_gemm_f(int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc);
void bp_gemm_d(int trans_a, int trans_b, int m, int n, int k, double alpha,
               const double *a, int lda, const double *b, int ldb,
               double beta, double *c, int ldc);

/* The kernels the runtime chose for this CPU: "avx512", "avx2" or
 * "portable". */
const char *bp_kernels(void);

/* ------------------------------------------------------------------------ */
/* threads.c — threads for the big matrix products and elementwise loops.
 * A process-wide setting: default 1 (no thread is ever started). With
 * n > 1, products of about a million multiply-adds or more are cut into
 * n pieces along the rows or columns of C (never along the sum), run by
 * a pool of n - 1 worker threads and the calling thread. The pool starts
 * on first use and is joined by bp_threads_shutdown() or at exit.
 * Results are bit-identical for every n. While one call uses the pool,
 * concurrent calls from other threads run on their own thread (still
 * correct, still the same bits). n is capped at 64. */
void bp_set_num_threads(int n);
int bp_get_num_threads(void);
/* Joins the workers (waiting for a running job); the next call that
 * wants threads starts them again. */
void bp_threads_shutdown(void);
/* Calls fn(ctx, lo, hi) on disjoint ranges covering [0, count), each at
 * least `grain` long, on up to bp_get_num_threads() threads; returns
 * when all are done. The ranges depend on the thread count, so fn must
 * treat every index alone (an elementwise loop, no running sum) for the
 * result not to depend on it. */
void bp_parallel_for(size_t count, size_t grain,
                     void (*fn)(void *ctx, size_t lo, size_t hi), void *ctx);

/* ------------------------------------------------------------------------ */
/* conv.c — 2-D convolution and pooling, float (_f) and double (_d), over n
 * samples stored one after another, each row-major (contract section 1):
 *   conv2d   y[p,i,j] = b[p] + sum_{q,u,v} K[p,q,u,v] x[q, i*stride+u-pad,
 *            j*stride+v-pad], cross-correlation as PyTorch's conv2d, x taken
 *            as 0 outside its h x w;
 *   pooling  windows of k x k at stride k; rows and columns left over
 *            (h % k, w % k) are dropped, and their dx entries are 0.
 * Maxpool passes each window's gradient to its first maximal element in
 * row-major order (a NaN in a window is its maximum, as in PyTorch).
 * Convolutions run as im2col (col2im for the input gradient) plus bp_gemm,
 * one sample at a time, in scratch the caller passes; nothing is allocated,
 * no state is kept, and the same inputs give bit-identical results.
 * Outputs must not overlap inputs or scratch. The shape must be valid
 * (bp_conv2d_shape_init checks and completes one). */

typedef struct {
    int c, h, w;       /* input  x[c,h,w] per sample */
    int o, kh, kw;     /* kernel K[o,c,kh,kw] */
    int stride, pad;
    int oh, ow;        /* output y[o,oh,ow]: oh = (h+2pad-kh)/stride+1 */
} bp_conv2d_shape;

/* Fills s, oh and ow included; BP_ERR_ARG (s untouched) unless every size
 * is at least 1, stride >= 1, pad >= 0 and the kernel fits the padded
 * input. */
int bp_conv2d_shape_init(bp_conv2d_shape *s, int c, int h, int w, int o,
                         int kh, int kw, int stride, int pad, char *err,
                         size_t err_size);
/* Reals of scratch each call needs: c*kh*kw*oh*ow (one sample's im2col
 * matrix). */
size_t bp_conv2d_scratch_reals(const bp_conv2d_shape *s);

/* y overwritten (n samples); b NULL: no bias. */
void bp_conv2d_f(const bp_conv2d_shape *s, int n, const float *x,
                 const float *k, const float *b, float *y, float *scratch);
/* dx overwritten: the gradient of sum(dy * y) with respect to x. */
void bp_conv2d_grad_input_f(const bp_conv2d_shape *s, int n, const float *dy,
                            const float *k, float *dx, float *scratch);
/* dk = alpha * sum over samples of dy_t (*) x_t + beta * dk (beta 0: dk is
 * not read, so it may hold garbage). */
void bp_conv2d_grad_kernel_f(const bp_conv2d_shape *s, int n, const float *dy,
                             const float *x, float alpha, float beta,
                             float *dk, float *scratch);
/* db[p] = alpha * sum_{samples,i,j} dy[p,i,j] + beta * db[p] (beta 0: db
 * not read); summed in double. */
void bp_conv2d_grad_bias_f(const bp_conv2d_shape *s, int n, const float *dy,
                           float alpha, float beta, float *db);
/* x[n,c,h,w] -> y[n,c,h/k,w/k]. */
void bp_maxpool2d_f(int n, int c, int h, int w, int k, const float *x,
                    float *y);
/* dx overwritten: dy at each window's argmax (ties: the first maximal
 * element in row-major order), 0 elsewhere. */
void bp_maxpool2d_grad_f(int n, int c, int h, int w, int k, const float *x,
                         const float *dy, float *dx);
void bp_avgpool2d_f(int n, int c, int h, int w, int k, const float *x,
                    float *y);
/* dx overwritten: dy / (k*k) over each window, 0 in rows and columns left
 * over. */
void bp_avgpool2d_grad_f(int n, int c, int h, int w, int k, const float *dy,
                         float *dx);

void bp_conv2d_d(const bp_conv2d_shape *s, int n, const double *x,
                 const double *k, const double *b, double *y,
                 double *scratch);
void bp_conv2d_grad_input_d(const bp_conv2d_shape *s, int n,
                            const double *dy, const double *k, double *dx,
                            double *scratch);
void bp_conv2d_grad_kernel_d(const bp_conv2d_shape *s, int n,
                             const double *dy, const double *x, double alpha,
                             double beta, double *dk, double *scratch);
void bp_conv2d_grad_bias_d(const bp_conv2d_shape *s, int n, const double *dy,
                           double alpha, double beta, double *db);
void bp_maxpool2d_d(int n, int c, int h, int w, int k, const double *x,
                    double *y);
void bp_maxpool2d_grad_d(int n, int c, int h, int w, int k, const double *x,
                         const double *dy, double *dx);
void bp_avgpool2d_d(int n, int c, int h, int w, int k, const double *x,
                    double *y);
void bp_avgpool2d_grad_d(int n, int c, int h, int w, int k, const double *dy,
                         double *dx);

/* ------------------------------------------------------------------------ */
/* Gradient check: compares M_backward with central finite differences of
 * M_forward, for every parameter and every wrt input, on the given batch.
 * Sets *worst to the worst relative error |g - fd| / max(1, |g|, |fd|) and,
 * when `where` is not NULL, writes a description of the worst entry there;
 * on failure `where` gets the error message (it is this function's err).
 * Uses `step` as the finite-difference step (0: a default for the model's
 * precision: 1e-6 for double, 1e-2 for float). The step is scaled by
 * max(1, |value|) for each entry. Allocates its own scratch memory (freed
 * before returning); BP_ERR_NOMEM when that fails. theta and
 * inputs are caller-owned and only read; inputs outside `wrt` may be NULL
 * only if forward does not read them. BP_ERR_ARG when m is unusable, worst
 * is NULL, theta is NULL but m has parameters (NULL is fine when
 * num_params is 0), inputs is NULL but m has inputs, a wrt input is NULL,
 * or m was generated for another runtime ABI.
 * Gradient buffers are filled with NaN before backward runs, so an entry
 * backward fails to write is reported; frozen parameters' entries start at
 * 0 and must stay 0 (anything else counts as an error of 1).
 * `where` reads like "W1[3] analytic 0.123 numeric 0.124": the index is
 * the flat row-major index in the tensor (sample-major over the batch for
 * an input). */
int bp_gradcheck(const bp_model *m, const void *theta,
                 const void *const inputs[], int n, double step, double *worst,
                 char *where, size_t where_size);

/* The self-test (bpgen --selftest generates M_selftest, which calls it):
 * the comparison of bp_gradcheck, without allocating. It works in `ws`
 * (m->workspace_size(n) bytes) and `scratch` (bp_selftest_scratch_size(m,
 * n) bytes, the generated M_SELFTEST_SCRATCH_SIZE(n); aligned as malloc
 * aligns), both caller-owned; theta and inputs are only read. `step` 0
 * takes the default for the model's precision: 1e-3 for float (far enough
 * from relu's and max's kinks, and float's rounding noise in the loss,
 * about 1e-7 relative, stays near 1e-4 after dividing by 2·step), 1e-6 for
 * double; an entry whose error is above 1e-3 (float) or 1e-7 (double) is
 * compared again at step / 4 and keeps the smaller error (a kink spoils
 * one difference, rarely both; bp_gradcheck does the same). max_per_tensor
 * > 0 compares at most that many entries of each
 * parameter and wrt input, spread evenly (the first included, and from 2
 * on the last); 0 compares every entry. Returns BP_OK with *report filled, or, for the
 * arguments bp_gradcheck refuses, a NULL scratch or a NULL ws that the
 * model needs, BP_ERR_ARG (BP_ERR_ARG too when report is NULL) with the
 * message in report->message and report->worst = HUGE_VAL. */
typedef struct {
    double worst;        /* the worst relative error |g - fd| / max(1, |g|, |fd|);
                            HUGE_VAL where either is not finite */
    const char *name;    /* where: the parameter's or wrt input's .net name;
                            NULL when nothing was compared */
    size_t index;        /* flat row-major index in that tensor (an input's
                            is sample-major over the batch) */
    double analytic;     /* backward's gradient there */
    double numeric;      /* the central difference there */
    size_t checked;      /* entries compared */
    int status;          /* BP_OK, or why nothing was compared */
    char message[160];   /* "W1[3] analytic 0.123 numeric 0.124", or the error */
} bp_selftest_report;

/* Bytes of scratch bp_selftest needs for a batch of n: 2·max(1, num_inputs)
 * pointers rounded up to a multiple of 16 bytes, plus real_size ·
 * (2·num_params + 2·n·W), W the values per sample of all wrt inputs
 * together. 0 when m or n is unusable. */
size_t bp_selftest_scratch_size(const bp_model *m, int n);
int bp_selftest(const bp_model *m, const void *theta, const void *const inputs[], int n,
                void *ws, void *scratch, double step, size_t max_per_tensor,
                bp_selftest_report *report);

/* ------------------------------------------------------------------------ */
/* finite.c — what bpgen --check-finite adds to generated code: forward,
 * backward and predict check every value they write (each step's result,
 * and each named value computed inside a loop) and note the first that is
 * NaN or infinite in a bp_nonfinite kept at the start of the workspace.
 * M_nonfinite(ws) returns it (NULL when every value was finite since the
 * last M_forward or M_predict, which clear it); bp_nonfinite_message
 * writes it as one line. */
typedef struct {
    const char *function;  /* "forward", "backward" or "predict"; NULL: every
                              value was finite */
    const char *name;      /* the value's .net name ("h", "dL/dh"), or a
                              nameless one's name in the C ("t7") */
    const char *equation;  /* the step that wrote it, as the first line of the
                              comment above it in the C: its .net line and
                              equation, "m.net:4  h = log(x * w)" */
    long sample;           /* its sample in the batch; -1: shared by the batch */
    long index;            /* its element in the sample, row-major */
    double value;          /* NaN, inf or -inf */
} bp_nonfinite;

/* The bytes generated code reserves for the record at the start of ws. */
#define BP_NONFINITE_BYTES ((sizeof(bp_nonfinite) + 15) / 16 * 16)

/* Forgets any value noted. */
void bp_nonfinite_clear(bp_nonfinite *found);
/* Notes one value unless an earlier one was noted (the first one wins). */
void bp_nonfinite_note(bp_nonfinite *found, const char *function, const char *name,
                       const char *equation, double value, long sample, long index);
/* Notes the first non-finite of `values` (real_size 4 or 8): `rows`
 * samples of `size` values each, or with rows 0 one copy shared by the
 * batch. Nothing when an earlier value was noted. */
void bp_nonfinite_scan(bp_nonfinite *found, const char *function, const char *name,
                       const char *equation, const void *values, int real_size, long rows,
                       long size);
/* One line: "forward: h[5] of sample 2 is -inf (m.net:4  h = log(x * w))",
 * "backward: dL/dW[3] is nan (...)" for a shared value, or "every value was
 * finite"; found may be NULL (every value was finite). Cut to out_size. */
void bp_nonfinite_message(const bp_nonfinite *found, char *out, size_t out_size);

/* ------------------------------------------------------------------------ */
/* optim.c — optimisers over the flat parameter vector, following
 * PyTorch's update rules (momentum v = mu v + g, theta -= lr v; Nesterov
 * theta -= lr (g + mu v); RMSprop s = rho s + (1-rho) g^2,
 * theta -= lr g / (sqrt(s) + eps); Adam with bias correction, written as
 * PyTorch writes it: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
 * theta -= (lr / bc1) (m / (sqrt(v) / sqrt(bc2) + eps)), bc_i = 1 - b_i^t;
 * AdamW decays theta *= 1 - lr wd before the Adam step). Order within a step: clip g by
 * the global L2 norm, add wd * theta (all but AdamW), update.
 * Schedules at step t (0 for the first step): step lr * gamma^floor(t /
 * step_size); cosine lr_min + (lr - lr_min)(1 + cos(pi t / total_steps))/2,
 * held at lr_min from t = total_steps on.
 * The state lives in a caller-owned buffer of bp_optim_state_size() bytes;
 * it holds arrays of the model's precision (floats for real_size 4, as
 * PyTorch keeps a float32 tensor's moments). The update's coefficients
 * are taken in double and rounded once to that precision; each element's
 * arithmetic is in it.
 * Frozen parameters (bp_tensor_info.frozen) never change: with a model
 * given, bp_optim_step skips their ranges entirely. */

typedef enum {
    BP_SGD, BP_MOMENTUM, BP_NESTEROV, BP_RMSPROP, BP_ADAM, BP_ADAMW
} bp_optim_kind;

typedef enum { BP_LR_CONSTANT, BP_LR_STEP, BP_LR_COSINE } bp_schedule_kind;

typedef struct {
    bp_optim_kind kind;
    double lr;              /* base learning rate */
    double momentum;        /* MOMENTUM, NESTEROV */
    double rho;             /* RMSPROP: decay of the squared-gradient average */
    double beta1, beta2;    /* ADAM, ADAMW */
    double eps;             /* RMSPROP, ADAM, ADAMW */
    double weight_decay;    /* ADAMW: decoupled; others: L2 term added to the gradient */
    double clip_norm;       /* > 0: rescale the gradient to at most this L2 norm */
    bp_schedule_kind schedule;
    long step_size;         /* LR_STEP: multiply by gamma every step_size steps */
    double gamma;
    long total_steps;       /* LR_COSINE: steps from lr to lr_min */
    double lr_min;
} bp_optim_config;

typedef struct {
    bp_optim_config cfg;
    const bp_model *model;  /* may be NULL: then nothing is frozen */
    size_t num_params;
    int real_size;
    void *state;            /* caller-owned, bp_optim_state_size() bytes */
    long step;              /* steps taken so far */
    double grad_norm;       /* the last step's gradient L2 norm, before
                               clipping, over the entries not frozen */
} bp_optimizer;

/* Where this differs from PyTorch (behaviour is as described here):
 *  - clipping scales g by clip_norm / norm when norm > clip_norm;
 *    torch.nn.utils.clip_grad_norm_ uses clip_norm / (norm + 1e-6), so
 *    PyTorch's clipped norm is a hair below clip_norm and ours is exactly
 *    clip_norm.
 *  - RMSprop defaults to rho 0.9 and lr 0.001 (Keras's and Hinton's
 *    values); torch.optim.RMSprop defaults to alpha 0.99 and lr 0.01. Set
 *    rho = 0.99, lr = 0.01 to match PyTorch's defaults. (eps is added to
 *    sqrt(s) in both.)
 * The conventional defaults for `kind` (lr 0.01 for SGD kinds, 0.001 for
 * RMSprop and Adam kinds, momentum 0.9, rho 0.9, betas 0.9/0.999, eps 1e-8,
 * constant schedule, no clipping, no weight decay). */
bp_optim_config bp_optim_defaults(bp_optim_kind kind);
size_t bp_optim_state_size(const bp_optim_config *c, size_t num_params,
                           int real_size);
/* Zeroes the state. `model` (may be NULL) supplies frozen ranges, and then
 * num_params and real_size must match it. */
void bp_optim_init(bp_optimizer *o, const bp_optim_config *c,
                   const bp_model *model, size_t num_params, int real_size,
                   void *state);
/* The learning rate the next step will use. */
double bp_optim_lr(const bp_optimizer *o);
/* One update of theta from grad (both caller-owned, num_params values of
 * real_size); grad may be rescaled in place by clipping. Sets o->grad_norm
 * to the gradient's L2 norm before clipping, over the entries not frozen.
 * BP_ERR_ARG when o, theta or grad is NULL, o->state is NULL but the kind
 * needs state (bp_optim_state_size() > 0), or o's model was generated for
 * another runtime ABI (bp_model_check_abi): then nothing changes (theta,
 * grad, o->step and o->grad_norm are left as they are). */
int bp_optim_step(bp_optimizer *o, void *theta, void *grad, char *err,
                  size_t err_size);
/* One range of a step, for a caller that updates each parameter as soon
 * as its gradient is known (the fused training step M_step of bpgen
 * --step): the rule of step o->step applied to theta[offset, offset + len)
 * from grad[0, len) (the gradient of that range only) and the state's
 * entries [offset, offset + len), with weight decay, skipping frozen
 * entries; o->step and o->grad_norm are left as they are. Call it on every
 * parameter's range, then bp_optim_finish once: the result is
 * bp_optim_step's, bit for bit. BP_OK, or BP_ERR_ARG (nothing changes)
 * when o or theta is NULL, grad is NULL with len > 0, the range passes
 * num_params, o->state is NULL but the kind needs state, o's model was
 * generated for another runtime ABI, or o clips (clip_norm > 0: the
 * global norm needs every gradient at once). */
int bp_optim_update(bp_optimizer *o, void *theta, const void *grad,
                    size_t offset, size_t len);
/* Ends a step made of bp_optim_update calls: o->step += 1 (the schedule
 * and bias corrections move on). o may be NULL (nothing happens). */
void bp_optim_finish(bp_optimizer *o);

/* ---- sections added by data.c, train.c, weights.c go below ---- */

/* ------------------------------------------------------------------------ */

/* weights.c — saving and loading a model's parameter vector in a portable
 * binary file: magic "BPGW", format version, file size, real_size, model
 * name, each tensor's name and shape, the values (little-endian IEEE-754),
 * and an FNV-1a-64 checksum. Format details in weights.c. Files are
 * written in format 2 (shapes of rank 0 to 4); format 1, which bpgen 0.1
 * wrote (ranks up to 2), is still read.
 * theta is caller-owned: m->num_params values of m->real_size. */

/* Writes a temporary file beside PATH (PATH.tmp<pid>-<n>, a name no other
 * save uses at the same time), flushes it to disk, then renames it to PATH,
 * so PATH holds either its old contents or the whole new file, never a
 * part; on failure (a full disk, a read-only folder) PATH is untouched and
 * the temporary file removed. */
int bp_weights_save(const char *path, const bp_model *m, const void *theta,
                    char *err, size_t err_size);
/* Loads every parameter of m. The file must be for a model of the same
 * name with the same parameter names and shapes; float and double files
 * load into either precision. Every value must be finite, and for a float
 * model within float range (|v| <= FLT_MAX), or loading fails naming the
 * tensor and index ("parameter 'W1' value [3] is nan ..."). Size, checksum, structure and shapes are all
 * checked before theta is written: on failure theta is unchanged and err
 * says what is wrong ("... truncated ...", "... checksum mismatch (file
 * damaged)", "parameter 'W1' has shape [16, 4] in the file but [16, 5] in
 * model 'iris'", ...). Memory used is bounded by the file's real size and
 * the model's, never by sizes the file claims. */
int bp_weights_load(const char *path, const bp_model *m, void *theta,
                    char *err, size_t err_size);
/* Transfer learning: loads only the parameters of m named in names[0..count)
 * from a file that may belong to a different model; each must be in the
 * file with the same shape. The rest of theta is left as it was. */
int bp_weights_load_tensors(const char *path, const bp_model *m, void *theta,
                            const char *const names[], int count, char *err,
                            size_t err_size);

/* ------------------------------------------------------------------------ */
/* safetensors.c — the parameters in the safetensors format that PyTorch,
 * JAX and the Hugging Face tools exchange: a little-endian u64 header
 * length, a JSON header naming each tensor with its dtype, shape and byte
 * range, then the raw little-endian values. Tensors are named as the
 * parameters in the .net file (W1, b1, ...), stored row-major in
 * declaration order, with metadata {"format": "pt", "bpgen_model": NAME}.
 * Same error convention as weights.c; theta is caller-owned. */

/* Saves at the model's precision (F32 for float, F64 for double), through
 * a temporary file renamed to PATH, as bp_weights_save does. */
int bp_safetensors_save(const char *path, const bp_model *m, const void *theta,
                        char *err, size_t err_size);
/* Loads every parameter of m; the file must hold exactly m's parameters,
 * with the same shapes (a scalar is shape []). F32 and F64 load into
 * either precision; F16, BF16 and integer dtypes are refused, naming the
 * tensor. The header is checked strictly (valid JSON of the format's form,
 * no duplicate names, byte ranges that match the shapes and tile the data
 * with no gap or overlap, a header length within the file and under 100
 * MB) and every value must be finite (and within float range for a float
 * model); on any failure theta is unchanged and err names the file and
 * what is wrong ("m.safetensors: tensor 'W1' has shape [4, 16] in the file
 * but [16, 4] in model 'iris'"). */
int bp_safetensors_load(const char *path, const bp_model *m, void *theta,
                        char *err, size_t err_size);
/* Loads only the parameters of m named in names[0..count), from a file
 * that may hold other tensors too; the rest of theta is left as it was. */
int bp_safetensors_load_tensors(const char *path, const bp_model *m, void *theta,
                                const char *const names[], int count,
                                char *err, size_t err_size);

/* ------------------------------------------------------------------------ */
/* data.c — data sets for training: a CSV loader, standardisation, seeded
 * shuffling and splitting, subsetting by label, and mini-batch assembly;
 * idx.c — the IDX reader (MNIST, Fashion-MNIST), in an object of its own.
 *
 * A data set holds its features in one of three ways (`storage`): as
 * double (x, the default, and what a zeroed bp_dataset is), as float (xf:
 * half the memory, and exact for a float model), or as bytes (xb) with a
 * per-feature affine map, value = xb * xb_scale[j] + xb_shift[j], applied
 * when a batch is assembled (an eighth of the memory: how the IDX reader
 * keeps images). Targets y are double. Values are converted to the model's
 * precision (real_size) only when a batch is assembled. Every array in a
 * bp_dataset is owned by it: malloc'd by the function that filled it and
 * released by bp_data_free. A zeroed bp_dataset ({0}) is a valid empty
 * one, and bp_data_free may be called on it (and twice). Functions that
 * fill a bp_dataset `out` leave it zeroed on failure; `out` must not
 * already own arrays (free it first). Every function below accepts every
 * storage, and results keep the storage of their source. */

typedef enum {
    BP_STORE_DOUBLE,    /* x: rows x features doubles (the default) */
    BP_STORE_FLOAT,     /* xf: rows x features floats */
    BP_STORE_BYTE       /* xb: rows x features bytes, mapped per feature */
} bp_storage;

typedef struct {
    size_t rows;
    int features;       /* values per row in x */
    int targets;        /* values per row in y: classes (one-hot), 1 (a
                           numeric target) or 0 (no label) */
    int classes;        /* > 0: y is one-hot over this many classes and
                           label[] holds each row's class; 0: no classes */
    double *x;          /* DOUBLE: rows x features, row-major; else NULL */
    double *y;          /* rows x targets, row-major; NULL when targets == 0 */
    int *label;         /* rows class indices; NULL when classes == 0 */
    bp_storage storage; /* which of x, xf, xb holds the features */
    float *xf;          /* FLOAT: rows x features, row-major; else NULL */
    unsigned char *xb;  /* BYTE: rows x features, row-major; else NULL */
    double *xb_scale;   /* BYTE: features values each; feature j of a row */
    double *xb_shift;   /*   is xb[j] * xb_scale[j] + xb_shift[j] */
} bp_dataset;

typedef enum {
    BP_HEADER_AUTO,     /* the first line is a header when one of its
                           selected fields (the feature columns and the
                           label column) is not a number */
    BP_HEADER_NONE,
    BP_HEADER_PRESENT
} bp_header_mode;

typedef enum {
    BP_LABEL_CLASS,     /* integer class 0..classes-1, one-hot encoded */
    BP_LABEL_NUMERIC,   /* a numeric target kept as it is (regression) */
    BP_LABEL_NONE       /* every selected column is a feature; no targets */
} bp_label_kind;

/* CSV format: fields separated by commas, whitespace around a field
 * ignored, "double quoted" fields allowed (with "" for a quote), LF or CRLF
 * line ends, blank lines skipped, a UTF-8 byte-order mark ignored. Every
 * row must have as many fields as the first (header or data) line. Columns
 * not selected are not parsed, so they may hold text. Numbers use strtod
 * syntax and must be finite. Nothing in the file is trusted: it is read a
 * field at a time (a field longer than 255 characters is an error), and
 * rows, columns and total values are capped. */
typedef struct {
    int skip_lines;             /* lines skipped before anything else
                                   (default 0; iris.csv may use 1) */
    bp_header_mode header;      /* default BP_HEADER_AUTO */
    bp_label_kind label;        /* default BP_LABEL_CLASS */
    int label_column;           /* 0-based; -1 (default): the last column;
                                   below -1 is an error */
    int classes;                /* CLASS: 0 (default) counts them: largest
                                   label + 1; > 0: labels must be below it */
    const int *feature_columns; /* 0-based, in the order wanted; NULL
                                   (default): every column but the label's */
    int num_feature_columns;
    size_t max_rows;            /* default 10,000,000 */
    int max_columns;            /* default 100,000 */
    size_t max_values;          /* rows x (features + targets); default 2^27
                                   (1 GiB of doubles) */
    bp_storage storage;         /* BP_STORE_DOUBLE (default) or
                                   BP_STORE_FLOAT (values rounded to float:
                                   what a float model sees anyway) */
} bp_csv_options;

bp_csv_options bp_csv_defaults(void);

/* Loads a CSV file into `out` (options NULL: the defaults). Options are
 * checked first: header and label must be values of their enums and
 * label_column at least -1 ("data.csv: bad options (label 7: ...)"). With the
 * defaults, iris.csv and digits.csv load as they are: iris.csv's first
 * line "150,4,setosa,..." is taken for a header and ignored (its numbers
 * are never trusted). Errors read "PATH:LINE:COLUMN: MESSAGE", COLUMN being
 * the 1-based CSV column (field), for example
 *   "iris.csv:12:3: expected a number, found 'abc'"
 *   "iris.csv:12:5: expected 5 columns, found 4"
 *   "iris.csv:12:5: label 7 is out of range: 3 classes (0 to 2)"
 *   "iris.csv:12:2: expected a finite number, found 'nan'"
 *   "iris.csv: no data rows (the file is empty)"
 *   "iris.csv: cannot open: No such file or directory" */
int bp_data_load_csv(bp_dataset *out, const char *path,
                     const bp_csv_options *opt, char *err, size_t err_size);

/* A data set of `rows` zeroed rows for the caller to fill (classes > 0
 * makes targets == classes; labels start at 0 and y all zero), features
 * held as double. */
int bp_data_create(bp_dataset *out, size_t rows, int features, int targets,
                   int classes, char *err, size_t err_size);
/* The same with the features held as `storage` (BYTE: xb_scale all 1 and
 * xb_shift all 0). */
int bp_data_create_stored(bp_dataset *out, size_t rows, int features,
                          int targets, int classes, bp_storage storage,
                          char *err, size_t err_size);
void bp_data_free(bp_dataset *d);

/* Feature j of row r, as a double, whatever the storage. */
double bp_data_value(const bp_dataset *d, size_t r, int j);
/* Converts d's features in place to `storage`: DOUBLE and FLOAT either
 * way, BYTE to either (the map applied). Converting to BYTE is refused
 * (it would lose values). Fails only for that, or when out of memory (d is
 * then unchanged). */
int bp_data_convert(bp_dataset *d, bp_storage storage, char *err,
                    size_t err_size);

/* A copy of rows idx[0..count) of d (indices may repeat). */
int bp_data_subset(bp_dataset *out, const bp_dataset *d, const size_t *idx,
                   size_t count, char *err, size_t err_size);
/* The rows whose class is one of labels[0..count), in their order in d.
 * relabel == 0 keeps the classes as they are (a model trained on digits
 * 0-4 and then fine-tuned on 5-9 keeps its 10 outputs); relabel != 0 maps
 * labels[i] to class i and sets classes = count. */
int bp_data_filter_labels(bp_dataset *out, const bp_dataset *d,
                          const int *labels, int count, int relabel,
                          char *err, size_t err_size);
/* Shuffles d's rows in place (Fisher–Yates on r; the same seed gives the
 * same order on every machine). */
void bp_data_shuffle(bp_dataset *d, bp_rng *r);
/* A random permutation: idx[i] = i, then shuffled with r. */
void bp_shuffle_indices(size_t *idx, size_t n, bp_rng *r);
/* Shuffles d with a generator seeded by `seed` and puts the first
 * round(test_fraction * rows) rows into `test`, the rest into `train`.
 * 0 <= test_fraction < 1, and train must get at least one row. */
int bp_data_split(const bp_dataset *d, double test_fraction,
                  unsigned long long seed, bp_dataset *train,
                  bp_dataset *test, char *err, size_t err_size);

/* Per-feature standardisation, x' = (x - mean) / std, with the population
 * standard deviation (divided by rows). Fit it on the training split only
 * and apply it to every split, and to new samples at inference time; mean
 * and std are malloc'd, owned by the bp_standardizer, and may be saved by
 * the caller. A constant feature gets std = 1 (it becomes 0): one whose
 * training values are all equal (mean is then exactly that value, so they
 * become exactly 0), or whose std is at most 1e-12 * max(1, |mean|), which
 * is rounding error (ten rows of 0.1 have a computed std of ~1e-17, not
 * 0). */
typedef struct {
    int features;
    double *mean;
    double *std;
} bp_standardizer;

int bp_standardize_fit(bp_standardizer *s, const bp_dataset *train,
                       char *err, size_t err_size);
/* Standardises d's features in place; d->features must match. A data set
 * of bytes keeps its bytes: the standardisation is folded into its
 * per-feature map (xb_scale, xb_shift). */
int bp_standardize_apply(const bp_standardizer *s, bp_dataset *d, char *err,
                         size_t err_size);
/* Standardises n rows of s->features values of real_size (4 or 8) in
 * place: for samples that do not come from a bp_dataset. */
void bp_standardize_rows(const bp_standardizer *s, void *x, int real_size,
                         size_t n);
void bp_standardize_free(bp_standardizer *s);

/* Mini-batches. The features of a row go to model input x_input and its
 * targets to model input y_input (-1: none); every other model input must
 * be unused. bp_batch_check says whether d fits m that way
 * ("model input 'x' holds 4 values per sample but the data set has 5
 * features"); bp_batch_fill then writes rows idx[0..n) of d, converted to
 * real_size (4 float, 8 double), into the caller-owned arrays x
 * (n * features values) and y (n * targets values; may be NULL). idx NULL
 * means rows 0..n-1. */
int bp_batch_check(const bp_model *m, const bp_dataset *d, int x_input,
                   int y_input, char *err, size_t err_size);
void bp_batch_fill(const bp_dataset *d, const size_t *idx, int n,
                   int real_size, void *x, void *y);

/* ------------------------------------------------------------------------ */
/* idx.c — the IDX format of MNIST and Fashion-MNIST: a big-endian header
 * (two zero bytes, a type byte, the number of dimensions, each dimension
 * as a 32-bit count) and then the values. Files may be plain or gzip
 * compressed (read through zlib, so a program that calls these functions
 * links with -lz: cc ... build/libbp.a -lz -lm; one that does not needs
 * nothing more than -lm, as the reader is an archive member of its own).
 *
 * Nothing in a file is trusted: the magic number, the type (unsigned bytes,
 * 0x08), the dimensions (their product must fit and match what the file
 * holds), the gzip stream (its checksum included) and the labels (below
 * `classes`) are all checked, and memory grows with the data actually
 * read, never with the sizes a header claims. Errors name the file:
 *   "t10k-images-idx3-ubyte.gz: not an IDX file (it starts with 50 4B 03 04)"
 *   "train-images-idx3-ubyte.gz: truncated: the header promises 60000 images
 *    of 28 x 28 bytes (47040000 bytes) but the file holds 1000000"
 *   "train-images-idx3-ubyte.gz: damaged gzip stream (incorrect data check)"
 *   "x.idx has 60000 images but y.idx has 59999 labels" */

typedef enum {
    BP_IDX_UNIT,        /* pixel / 255: values in [0, 1] (the default) */
    BP_IDX_RAW          /* the byte values 0..255 as they are */
} bp_idx_scaling;

typedef struct {
    bp_storage storage;         /* default BP_STORE_BYTE (scaled on the
                                   fly); FLOAT or DOUBLE store the values */
    bp_idx_scaling scaling;     /* default BP_IDX_UNIT. For standardisation,
                                   bp_standardize_fit on the training set and
                                   bp_standardize_apply to each set (bytes
                                   stay bytes) */
    int classes;                /* 0 (default): largest label + 1; > 0:
                                   labels must be below it */
    size_t max_rows;            /* default 10,000,000 */
    size_t max_values;          /* rows x features; default 2^32 */
} bp_idx_options;

bp_idx_options bp_idx_defaults(void);

/* Loads the images file (IDX of unsigned bytes, 1 to 4 dimensions: the
 * first counts rows, the rest make the features, 28 x 28 = 784) and,
 * unless labels_path is NULL, the labels file (IDX of unsigned bytes, one
 * dimension, as many as there are images) into `out`, as a data set with
 * classes (one-hot y, label[]). Options NULL: the defaults. */
int bp_data_load_idx(bp_dataset *out, const char *images_path,
                     const char *labels_path, const bp_idx_options *opt,
                     char *err, size_t err_size);

/* ------------------------------------------------------------------------ */
/* train.c — a training loop for any bp_model: seeded shuffling each epoch,
 * mini-batches (the last, partial one included), forward, backward and an
 * optimiser step, and after each epoch the losses and accuracy, reported
 * through a callback. The same seed and data give bit-identical results.
 *
 * Ownership: theta is the caller's, updated in place. Everything else the
 * loop needs (workspace, batch arrays, gradient, outputs, index order and,
 * unless cfg->optimizer is given, the optimiser's state) lives in one
 * scratch block: the caller's (cfg->scratch, at least
 * bp_train_scratch_size() bytes) or, when cfg->scratch is NULL, malloc'd
 * by bp_train and freed before it returns. */

typedef struct {
    int epoch;              /* 1-based */
    int epochs;
    long step;              /* optimiser steps taken so far */
    double lr;              /* learning rate of the epoch's last step */
    double train_loss;      /* mean per-sample loss over the epoch's batches
                               (as they were seen); with cfg.eval_train, the
                               loss over the training split after the epoch */
    double train_acc;       /* NaN unless cfg.eval_train and accuracy apply */
    double test_loss;       /* NaN without a test set */
    double test_acc;        /* NaN without a test set or accuracy */
    double grad_norm;       /* L2 norm of the epoch's last gradient */
    double seconds;         /* wall time of the epoch: train_seconds +
                               eval_seconds (the callback's time is not
                               counted) */
    double train_seconds;   /* shuffling, batches, forward, backward and
                               optimiser steps */
    double eval_seconds;    /* evaluating after the epoch: the test split,
                               and the training split with eval_train */
    int stopped;            /* 1 in the last report when the callback
                               stopped training early */
} bp_epoch_report;

/* Return nonzero to stop training after this epoch. */
typedef int (*bp_epoch_fn)(const bp_epoch_report *r, void *user);

/* Data-parallel training (parallel.c; docs/training.md). `size` processes
 * (ranks) train one model together, each calling bp_train with the same
 * data, config and initial theta. Every global batch, in the same shuffled
 * order on every rank, is cut into `size` contiguous shares (sizes differ
 * by at most one row; a share may be empty); each rank computes the mean
 * gradient of its share, scales it by share rows / batch rows, and the
 * hook sums these across ranks, which gives every rank the gradient of the
 * global batch's mean loss; then every rank takes the same optimiser step.
 * Losses, accuracies and the stop decision are summed the same way, and
 * bp_train checks that every rank got the same data and settings, starts
 * from the same theta, and still holds the same theta after each epoch
 * (it fails on every rank otherwise). Only rank 0 prints.
 *
 * allreduce sums `count` values of real_size bytes (4 float, 8 double) at
 * buf, element by element, over all ranks, and leaves the sum in buf on
 * every rank; every rank must receive the same bits. All ranks make the
 * same calls in the same order. It returns 0, or nonzero on failure (then
 * bp_train fails). libbp has no MPI in it: build/libbp_mpi.a (bp_mpi.h)
 * provides a hook over MPI_Allreduce, and any other transport can too.
 * With size 1 the hook is never called and training is bit-identical to
 * training without it. */
typedef int (*bp_allreduce_fn)(void *buf, size_t count, int real_size,
                               void *user);

typedef struct {
    int rank;                   /* this process: 0 .. size-1 */
    int size;                   /* ranks training together, >= 1 */
    bp_allreduce_fn allreduce;  /* needed when size > 1 */
    void *user;                 /* passed to allreduce */
} bp_parallel;

typedef struct {
    int epochs;                 /* default 10 */
    int batch_size;             /* default 32 */
    unsigned long long seed;    /* shuffling; default 1 */
    int shuffle;                /* default 1 */
    bp_optim_config optim;      /* default bp_optim_defaults(BP_ADAM) */
    bp_optimizer *optimizer;    /* NULL (default): a fresh optimiser from
                                   `optim` per call; else the caller's, set
                                   up with bp_optim_init for this model, and
                                   its state carries over between calls.
                                   bp_train fails when its model is another
                                   model, or NULL while this model has
                                   frozen parameters, or its state is NULL
                                   but its kind needs state */
    int x_input, y_input;       /* model inputs fed with features and
                                   targets; default 0 and 1 (-1: none) */
    int accuracy;               /* default 1: when the data has classes,
                                   compare argmax of output `pred_output`
                                   with the class (an output of size 1 is
                                   a probability: class 1 when > 0.5) */
    int pred_output;            /* default 0 */
    int eval_train;             /* default 0: 1 evaluates the training
                                   split after each epoch (loss, accuracy) */
    int stop_on_nan;            /* default 1: fail when a loss is not finite */
    int verbose;                /* default 1: a progress bar on stderr
                                   when it is a terminal (cleared before
                                   each epoch's report) and, without
                                   on_epoch, one line per epoch to stdout */
    bp_epoch_fn on_epoch;       /* NULL: print as verbose says */
    void *user;                 /* passed to on_epoch */
    void *scratch;              /* NULL: malloc'd and freed by bp_train */
    size_t scratch_size;
    const bp_parallel *parallel;/* NULL (default): this process alone; see
                                   bp_parallel. on_epoch is called on every
                                   rank with the same report, and training
                                   stops when any rank's callback asks */
    /* NULL (default), or the model's forward and predict in one pass: the
     * batch loss returned and outputs[j] filled as predict fills them (ws
     * as forward leaves it). Evaluation (the test split, eval_train,
     * bp_evaluate) then makes one call per batch instead of forward and
     * predict. bpgen generates M_forward_outputs_any for every model (not
     * in bp_model: that would change the ABI). */
    double (*forward_outputs)(const void *theta, const void *const inputs[],
                              int n, void *ws, void *const outputs[]);
    /* NULL (default), or the model's forward and backward in one call: the
     * batch loss returned and grad filled as backward fills it. Each
     * training step then makes one call instead of forward and backward.
     * bpgen generates M_forward_backward_any for every model (outside
     * bp_model, as M_forward_outputs_any). */
    double (*forward_backward)(const void *theta, const void *const inputs[],
                               int n, void *ws, void *grad,
                               void *const grad_inputs[]);
} bp_train_config;

bp_train_config bp_train_defaults(void);

/* Into *size: the bytes of scratch bp_train needs for m and cfg (NULL:
 * the defaults) with a training split of train_rows rows. BP_ERR_ARG when
 * cfg does not fit m, BP_ERR_NOMEM when the size overflows. */
int bp_train_scratch_size(const bp_model *m, const bp_train_config *cfg,
                          size_t train_rows, size_t *size, char *err,
                          size_t err_size);

/* Trains theta (m->num_params values of m->real_size) on `train`; `test`
 * may be NULL. `last` (may be NULL) receives the last epoch's report.
 * Fails on mismatched sizes, a bad config, out of memory, or (with
 * stop_on_nan) a non-finite loss: "training diverged: loss is nan at
 * epoch 3, step 17 (try a lower learning rate)". */
int bp_train(const bp_model *m, void *theta, const bp_dataset *train,
             const bp_dataset *test, const bp_train_config *cfg,
             bp_epoch_report *last, char *err, size_t err_size);

/* Mean per-sample loss over d (batched by cfg->batch_size) and, when
 * accuracy applies (see bp_train_config), the accuracy, else NaN. cfg NULL:
 * the defaults. acc may be NULL. Allocates its scratch and frees it. */
int bp_evaluate(const bp_model *m, const void *theta, const bp_dataset *d,
                const bp_train_config *cfg, double *loss, double *acc,
                char *err, size_t err_size);

/* The predicted class of every row of d: argmax of output cfg->pred_output
 * (threshold 0.5 for an output of size 1), into pred[0..d->rows). Only the
 * features are fed (targets are not needed). */
int bp_predict_argmax(const bp_model *m, const void *theta,
                      const bp_dataset *d, const bp_train_config *cfg,
                      int *pred, char *err, size_t err_size);

/* The default epoch callback: prints
 *   "epoch 3/50  train loss 0.4123  test loss 0.4410  test acc 0.933
 *    (train 5.21 s, eval 0.12 s)" (on one line)
 * to `user` (a FILE *; NULL means stdout). Never stops training. */
int bp_epoch_print(const bp_epoch_report *r, void *user);

/* ------------------------------------------------------------------------ */
/* curves.c — training curves: each epoch's report, recorded through the
 * on_epoch callback, written as CSV and as a self-contained SVG chart
 * (train and test loss on the left axis, accuracy on the right, ticks,
 * labels, a legend). The caller owns the storage of the points.
 *
 *     bp_curve_point points[50];
 *     bp_curves curves;
 *     bp_curves_init(&curves, points, 50);
 *     curves.then = bp_epoch_print;            (optional: print as well)
 *     cfg.on_epoch = bp_curves_record;
 *     cfg.user = &curves;
 *     bp_train(...);
 *     bp_curves_write_svg(&curves, "curves.svg", "iris", err, sizeof err);
 */

typedef struct {
    int epoch;
    double train_loss, test_loss;   /* NaN where the report had none */
    double train_acc, test_acc;
} bp_curve_point;

typedef struct {
    bp_curve_point *points;     /* caller-owned, `capacity` of them */
    int capacity;
    int count;                  /* recorded so far; epochs past capacity
                                   are counted in `dropped`, not stored */
    int dropped;
    bp_epoch_fn then;           /* called after recording (may be NULL) */
    void *then_user;
} bp_curves;

void bp_curves_init(bp_curves *c, bp_curve_point *storage, int capacity);

/* A bp_epoch_fn: records r into `curves` (a bp_curves *), then returns
 * what `then` returns (0 without one). */
int bp_curves_record(const bp_epoch_report *r, void *curves);

/* `epoch,train_loss,test_loss,train_acc,test_acc` and one line per epoch
 * (empty fields where a value is NaN), written to a temporary file renamed
 * over `path` when complete. BP_ERR_ARG for NULL arguments, BP_ERR_IO when
 * the file cannot be written (an existing one is left as it was). */
int bp_curves_write_csv(const bp_curves *c, const char *path, char *err,
                        size_t err_size);

/* The chart as one SVG file with no external references, written like the
 * CSV; `title` may be NULL. BP_ERR_ARG also when no epoch was recorded. */
int bp_curves_write_svg(const bp_curves *c, const char *path,
                        const char *title, char *err, size_t err_size);

/* ------------------------------------------------------------------------ */
/* Fast elementwise math — exp, log, tanh and sigmoid in float and double,
 * written without calls, branches or errno so that a compiler vectorizes
 * the loops that use them (unlike libm's, which keep errno unless the
 * user passes -fno-math-errno). Static inline: generated code and
 * applications use them directly. Maximum errors, measured against libm
 * (double for the float functions, long double for the double ones) over
 * the whole range in tests/test_fastmath.c:
 *     bp_expf, bp_exp          2 ulp
 *     bp_logf, bp_log          2 ulp
 *     bp_tanhf, bp_tanh        3 ulp
 *     bp_sigmoidf, bp_sigmoid  3 ulp
 * (subnormal results may lose one more bit in the last rounding).
 * Special values as in C's math: exp(-inf) = 0, exp(+inf) = +inf, exp
 * overflows to +inf and underflows through the subnormals to 0; log(0) =
 * -inf, log(x < 0) = NaN, log(+inf) = +inf; tanh(±inf) = ±1, tanh(-0) =
 * -0; sigmoid(-inf) = 0, sigmoid(+inf) = 1; NaN gives NaN. No errno, no
 * floating-point exceptions promised.
 * The array forms bp_v*(n, x, y) write y[i] = f(x[i]) (y may be x) with
 * the runtime's AVX-512/AVX2/portable dispatch (fastmath.c), so they are
 * vectorized in the default -O2 build too, and from 16 384 values on are
 * split among bp_set_num_threads() threads (the same bits for any
 * number); with the same compiler and no
 * fused multiply-add contraction (the default of gcc -std=c99) they give
 * the scalar functions' bits. */

static inline uint32_t bp_fbits_(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline float bp_ffrom_(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
static inline uint64_t bp_dbits_(double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline double bp_dfrom_(uint64_t u)
{
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* exp: x = k ln2 + r, |r| <= ln2/2 (ln2 in two parts, so k ln2 is exact);
 * exp(r) by its Taylor series (degree 7 in float, 13 in double: the
 * truncation is below 0.1 ulp); 2^k built in the exponent bits, as two
 * factors so that k from -150 (-1076) to 128 (1024) stays representable.
 * k comes from the bits of x/ln2 + 1.5 * 2^23 (2^52), which rounds to an
 * integer without a float-to-int conversion (undefined for NaN). */
static inline float bp_expf(float x)
{
    const float magic = 12582912.0f;                  /* 1.5 * 2^23 */
    float xc = x > 88.8f ? 88.8f : x;
    xc = xc < -104.0f ? -104.0f : xc;                 /* NaN stays NaN */
    float t = xc * 1.44269504088896341f + magic;
    float kf = t - magic;
    int32_t k = (int32_t)(bp_fbits_(t) - bp_fbits_(magic));
    float r = xc - kf * 0.693145751953125f;
    r = r - kf * 1.42860682030941723212e-6f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t k1 = k / 2, k2 = k - k1;
    float s1 = bp_ffrom_((uint32_t)(k1 + 127) << 23);
    float s2 = bp_ffrom_((uint32_t)(k2 + 127) << 23);
    return p * s1 * s2;
}

static inline double bp_exp(double x)
{
    const double magic = 6755399441055744.0;          /* 1.5 * 2^52 */
    double xc = x > 709.9 ? 709.9 : x;
    xc = xc < -746.0 ? -746.0 : xc;
    double t = xc * 1.44269504088896338700e+00 + magic;
    double kf = t - magic;
    int64_t k = (int64_t)(bp_dbits_(t) - bp_dbits_(magic));
    double r = xc - kf * 6.93147180369123816490e-01;
    r = r - kf * 1.90821492927058770002e-10;
    double p = 1.0 / 6227020800.0;                    /* 1/13! */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t k1 = k / 2, k2 = k - k1;
    double s1 = bp_dfrom_((uint64_t)(k1 + 1023) << 52);
    double s2 = bp_dfrom_((uint64_t)(k2 + 1023) << 52);
    return p * s1 * s2;
}

/* expm1 for x <= 0 (and NaN), as tanh needs it: 2^k (expm1(r) + 1) - 1
 * = 2^k expm1(r) + (2^k - 1), with expm1(r) = r (1 + r/2 + ...) accurate
 * near 0, where tanh needs it. Below -20 (-40) the result is -1. */
static inline float bp_expm1_neg_f_(float x)
{
    const float magic = 12582912.0f;
    float xc = x < -20.0f ? -20.0f : x;
    float t = xc * 1.44269504088896341f + magic;
    float kf = t - magic;
    int32_t k = (int32_t)(bp_fbits_(t) - bp_fbits_(magic));
    float r = xc - kf * 0.693145751953125f;
    r = r - kf * 1.42860682030941723212e-6f;
    float q = 1.0f / 40320;
    q = q * r + 1.0f / 5040;
    q = q * r + 1.0f / 720;
    q = q * r + 1.0f / 120;
    q = q * r + 1.0f / 24;
    q = q * r + 1.0f / 6;
    q = q * r + 0.5f;
    q = q * r + 1.0f;
    q = q * r;
    float s = bp_ffrom_((uint32_t)(k + 127) << 23);
    return s * q + (s - 1.0f);
}

static inline double bp_expm1_neg_d_(double x)
{
    const double magic = 6755399441055744.0;
    double xc = x < -40.0 ? -40.0 : x;
    double t = xc * 1.44269504088896338700e+00 + magic;
    double kf = t - magic;
    int64_t k = (int64_t)(bp_dbits_(t) - bp_dbits_(magic));
    double r = xc - kf * 6.93147180369123816490e-01;
    r = r - kf * 1.90821492927058770002e-10;
    double q = 1.0 / 87178291200.0;                   /* 1/14! */
    q = q * r + 1.0 / 6227020800.0;
    q = q * r + 1.0 / 479001600.0;
    q = q * r + 1.0 / 39916800.0;
    q = q * r + 1.0 / 3628800.0;
    q = q * r + 1.0 / 362880.0;
    q = q * r + 1.0 / 40320.0;
    q = q * r + 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    q = q * r + 1.0;
    q = q * r;
    double s = bp_dfrom_((uint64_t)(k + 1023) << 52);
    return s * q + (s - 1.0);
}

/* log: x = 2^e m with m in [sqrt(1/2), sqrt(2)) (subnormals scaled up
 * first), f = m - 1, s = f / (2 + f); log(1 + f) = f - (f^2/2 - s (f^2/2
 * + R)) with R = 2/3 s^2 + 2/5 s^4 + ... (the series of 2 atanh(s), to
 * s^8 in float and s^22 in double), which keeps the exact f as the big
 * term. */
static inline float bp_logf(float x)
{
    int sub = x < 1.17549435e-38f;                    /* also 0, < 0 */
    float xs = sub ? x * 8388608.0f : x;              /* 2^23 */
    uint32_t ix = bp_fbits_(xs) - 0x3f3504f3u;        /* sqrt(1/2) */
    int32_t e = (int32_t)(ix >> 23) - (int32_t)((ix >> 31) << 9) - (sub ? 23 : 0);
    float m = bp_ffrom_((ix & 0x007fffffu) + 0x3f3504f3u);
    float f = m - 1.0f;
    float s = f / (2.0f + f);
    float z = s * s;
    float R = 2.0f / 9;
    R = R * z + 2.0f / 7;
    R = R * z + 2.0f / 5;
    R = R * z + 2.0f / 3;
    R = R * z;
    float hfsq = 0.5f * f * f;
    float ef = (float)e;
    float y = ef * 0.693145751953125f
              + (f - (hfsq - (s * (hfsq + R) + ef * 1.42860682030941723212e-6f)));
    y = x == 0 ? bp_ffrom_(0xff800000u) : y;          /* -inf */
    y = x < 0 ? bp_ffrom_(0x7fc00000u) : y;           /* NaN */
    y = x == bp_ffrom_(0x7f800000u) ? x : y;          /* +inf */
    return x != x ? x : y;
}

static inline double bp_log(double x)
{
    int sub = x < 2.2250738585072014e-308;
    double xs = sub ? x * 18014398509481984.0 : x;    /* 2^54 */
    uint64_t ix = bp_dbits_(xs) - 0x3fe6a09e667f3bcdull;
    int64_t e = (int64_t)(ix >> 52) - (int64_t)((ix >> 63) << 12) - (sub ? 54 : 0);
    double m = bp_dfrom_((ix & 0x000fffffffffffffull) + 0x3fe6a09e667f3bcdull);
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double R = 2.0 / 23;
    R = R * z + 2.0 / 21;
    R = R * z + 2.0 / 19;
    R = R * z + 2.0 / 17;
    R = R * z + 2.0 / 15;
    R = R * z + 2.0 / 13;
    R = R * z + 2.0 / 11;
    R = R * z + 2.0 / 9;
    R = R * z + 2.0 / 7;
    R = R * z + 2.0 / 5;
    R = R * z + 2.0 / 3;
    R = R * z;
    double hfsq = 0.5 * f * f;
    double ed = (double)e;
    double y = ed * 6.93147180369123816490e-01
               + (f - (hfsq - (s * (hfsq + R) + ed * 1.90821492927058770002e-10)));
    y = x == 0 ? bp_dfrom_(0xfff0000000000000ull) : y;
    y = x < 0 ? bp_dfrom_(0x7ff8000000000000ull) : y;
    y = x == bp_dfrom_(0x7ff0000000000000ull) ? x : y;
    return x != x ? x : y;
}

/* tanh(x) = sign(x) * -u / (2 + u) with u = expm1(-2|x|): no cancellation
 * near 0, and exactly ±1 from |x| = 10 (20) on. */
static inline float bp_tanhf(float x)
{
    uint32_t sign = bp_fbits_(x) & 0x80000000u;
    float y = bp_ffrom_(bp_fbits_(x) ^ sign);          /* |x| */
    float u = bp_expm1_neg_f_(-2.0f * y);
    float t = -u / (2.0f + u);
    return bp_ffrom_(bp_fbits_(t) | sign);
}

static inline double bp_tanh(double x)
{
    uint64_t sign = bp_dbits_(x) & 0x8000000000000000ull;
    double y = bp_dfrom_(bp_dbits_(x) ^ sign);
    double u = bp_expm1_neg_d_(-2.0 * y);
    double t = -u / (2.0 + u);
    return bp_dfrom_(bp_dbits_(t) | sign);
}

/* sigmoid(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) below, e =
 * exp(-|x|) <= 1: never overflows, and keeps the tiny values of large
 * negative x instead of rounding them to 0. */
static inline float bp_sigmoidf(float x)
{
    float e = bp_expf(-bp_ffrom_(bp_fbits_(x) & 0x7fffffffu));
    float s = 1.0f / (1.0f + e);
    return x >= 0 ? s : e * s;
}

static inline double bp_sigmoid(double x)
{
    double e = bp_exp(-bp_dfrom_(bp_dbits_(x) & 0x7fffffffffffffffull));
    double s = 1.0 / (1.0 + e);
    return x >= 0 ? s : e * s;
}

/* fastmath.c — the same over arrays: y[i] = f(x[i]) for i < n (y == x is
 * fine; other overlaps are not), vectorized for the CPU at run time. */
void bp_vexpf(size_t n, const float *x, float *y);
void bp_vexp(size_t n, const double *x, double *y);
void bp_vlogf(size_t n, const float *x, float *y);
void bp_vlog(size_t n, const double *x, double *y);
void bp_vtanhf(size_t n, const float *x, float *y);
void bp_vtanh(size_t n, const double *x, double *y);
void bp_vsigmoidf(size_t n, const float *x, float *y);
void bp_vsigmoid(size_t n, const double *x, double *y);

#ifdef __cplusplus
}
#endif

#endif
