/* bp.h — the bpgen runtime: what generated code links against, and the
 * tools for training any generated model.
 *
 * Ownership: the caller owns every buffer. No function here keeps a pointer
 * to a buffer after it returns unless its comment says so, and generated
 * code never allocates.
 */
#ifndef BP_H
#define BP_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* The model descriptor. Every generated model M defines
 * `const bp_model M_model`, so runtime functions work with any model,
 * float or double. The function pointers take untyped buffers: real_size
 * says whether they hold float (4) or double (8). */

typedef struct {
    const char *name;
    int rank;            /* 0, 1, 2 */
    int dims[2];         /* unused entries are 1 */
    size_t size;         /* number of scalars */
    size_t offset;       /* params: index in theta */
    int frozen;          /* params: declared `param frozen`, gradient not computed */
    int wrt;             /* inputs: named in `wrt`, gradient computed */
} bp_tensor_info;

typedef struct bp_model {
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
 * stay in [lo, hi) after rounding to float as well. */
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
 * overlap A or B. Allocates nothing and keeps no state (thread-safe). */
void bp_gemm_f(int trans_a, int trans_b, int m, int n, int k, float alpha,
               const float *a, int lda, const float *b, int ldb, float beta,
               float *c, int ldc);
void bp_gemm_d(int trans_a, int trans_b, int m, int n, int k, double alpha,
               const double *a, int lda, const double *b, int ldb,
               double beta, double *c, int ldc);

/* ------------------------------------------------------------------------ */
/* Gradient check: compares M_backward with central finite differences of
 * M_forward, for every parameter and every wrt input, on the given batch.
 * Returns the worst relative error |g - fd| / max(1, |g|, |fd|) and, when
 * `where` is not NULL, writes a description of the worst entry there.
 * Uses `step` as the finite-difference step (0: a default for the model's
 * precision: 1e-6 for double, 1e-2 for float). The step is scaled by
 * max(1, |value|) for each entry. Allocates its own scratch memory (freed
 * before returning); returns -1 when that fails or m is unusable. theta and
 * inputs are caller-owned and only read; inputs outside `wrt` may be NULL
 * only if forward does not read them.
 * Gradient buffers are filled with NaN before backward runs, so an entry
 * backward fails to write is reported; frozen parameters' entries start at
 * 0 and must stay 0 (anything else counts as an error of 1).
 * `where` reads like "W1[3] analytic 0.123 numeric 0.124": the index is
 * the flat row-major index in the tensor (sample-major over the batch for
 * an input). */
double bp_gradcheck(const bp_model *m, const void *theta,
                    const void *const inputs[], int n, double step,
                    char *where, size_t where_size);

/* ------------------------------------------------------------------------ */
/* optim.c — optimisers over the flat parameter vector, following
 * PyTorch's update rules (momentum v = mu v + g, theta -= lr v; Nesterov
 * theta -= lr (g + mu v); RMSprop s = rho s + (1-rho) g^2,
 * theta -= lr g / (sqrt(s) + eps); Adam with bias correction; AdamW decays
 * theta *= 1 - lr wd before the Adam step). Order within a step: clip g by
 * the global L2 norm, add wd * theta (all but AdamW), update.
 * Schedules at step t (0 for the first step): step lr * gamma^floor(t /
 * step_size); cosine lr_min + (lr - lr_min)(1 + cos(pi t / total_steps))/2,
 * held at lr_min from t = total_steps on.
 * The state lives in a caller-owned buffer of bp_optim_state_size() bytes;
 * it holds doubles whatever real_size is.
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
} bp_optimizer;

/* The conventional defaults for `kind` (lr 0.01 for SGD kinds, 0.001 for
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
 * real_size); grad may be rescaled in place by clipping. Returns the
 * gradient's L2 norm before clipping, over the entries not frozen. */
double bp_optim_step(bp_optimizer *o, void *theta, void *grad);

/* ---- sections added by data.c, train.c, weights.c go below ---- */

/* ------------------------------------------------------------------------ */
/* Error convention for every runtime function that can fail for reasons
 * outside the caller's control (files, data):
 *
 *     int fn(..., char *err, size_t err_size);
 *
 * returns 0 on success and nonzero (-1) on failure. On failure, when err is
 * not NULL and err_size > 0, a one-line, NUL-terminated message without a
 * trailing newline is written there (cut to err_size), starting with the
 * file it concerns: "weights.bin: checksum mismatch (file damaged)". On
 * success err is left as it was. err is caller-owned. */

/* weights.c — saving and loading a model's parameter vector in a portable
 * binary file: magic "BPGW", format version, file size, real_size, model
 * name, each tensor's name and shape, the values (little-endian IEEE-754),
 * and an FNV-1a-64 checksum. Format details in weights.c.
 * theta is caller-owned: m->num_params values of m->real_size. */

/* Writes PATH.tmp, flushes it to disk, then renames it to PATH, so PATH
 * holds either its old contents or the whole new file, never a part. */
int bp_weights_save(const char *path, const bp_model *m, const void *theta,
                    char *err, size_t err_size);
/* Loads every parameter of m. The file must be for a model of the same
 * name with the same parameter names and shapes; float and double files
 * load into either precision. Size, checksum, structure and shapes are all
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

#ifdef __cplusplus
}
#endif

#endif
