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
/* Random numbers: a seeded, reproducible generator (the same seed gives the
 * same numbers on every machine). */

typedef struct {
    unsigned long long s[4];
} bp_rng;

void   bp_rng_seed(bp_rng *r, unsigned long long seed);
unsigned long long bp_rng_next(bp_rng *r);
double bp_rng_uniform(bp_rng *r, double lo, double hi);   /* [lo, hi) */
double bp_rng_normal(bp_rng *r, double mean, double std);

/* Fill helpers used by generated M_init: `count` values of the given
 * precision (real_size 4 or 8) at `dst`. */
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
 * written without being read (it may hold garbage, even NaN). */
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
 * precision). Allocates its own scratch memory; returns -1 when that fails. */
double bp_gradcheck(const bp_model *m, const void *theta,
                    const void *const inputs[], int n, double step,
                    char *where, size_t where_size);

/* ------------------------------------------------------------------------ */
/* optim.c — optimisers over the flat parameter vector.
 * The state lives in a caller-owned buffer of bp_optim_state_size() bytes.
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
/* One update of theta from grad; grad may be rescaled in place by
 * clipping. Returns the gradient's L2 norm before clipping. */
double bp_optim_step(bp_optimizer *o, void *theta, void *grad);

/* ---- sections added by data.c, train.c, weights.c go below ---- */

#ifdef __cplusplus
}
#endif

#endif
