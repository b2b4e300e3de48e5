/* selftest.c — a test harness linked with one model generated with
 * --selftest (tests/test_selftest.c).
 *
 * Compiled with -DM=<name> -DREAL=<float|double> -DHEADER='"<name>.h"'.
 * Initialises the parameters with M_init and the inputs with values in
 * (-1, 1), checks that M_SELFTEST_SCRATCH_SIZE(n) is what the runtime's
 * bp_selftest_scratch_size says, then runs M_selftest on a batch of 3 with
 * malloc, calloc and realloc counted (the self-test must allocate
 * nothing) and prints
 *   worst=1.2e-09 tolerance=1e-06 checked=83 at W1[3] analytic ... numeric ...
 * A model of more than MAX_FULL parameters is checked through the
 * runtime's bp_selftest with LIMIT entries per tensor (what M_selftest
 * calls, with no limit), so the suite stays short. Exit status 0 when the
 * worst error is within the tolerance, 1 when not, 2 when the harness
 * itself failed.
 *
 * With -DCORRUPT, the generated M_backward (edited by the test) calls
 * corrupt() at its end, which adds 1 to the last entry of the first
 * trainable parameter's gradient (else of the first wrt input's), and the
 * harness prints first `corrupted NAME[INDEX]`.
 *
 * Without CORRUPT it also checks evaluation in one pass: M_forward_outputs
 * on a workspace filled with garbage gives the loss of M_forward and the
 * outputs of M_predict, bit for bit; a difference prints
 * `forward_outputs: ...` and exits with 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include HEADER

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define FN(suffix) CAT(M, suffix)

enum { N = 3, MAX_FULL = 20000, LIMIT = 300 };

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *p, size_t size);
static int counting, allocations;

void *__wrap_malloc(size_t size)
{
    allocations += counting;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t count, size_t size)
{
    allocations += counting;
    return __real_calloc(count, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    allocations += counting;
    return __real_realloc(p, size);
}

#ifdef CORRUPT
/* The entry corrupted, chosen once from the model's tables. */
static const char *corrupt_name;
static size_t corrupt_index;
static int corrupt_param = -1, corrupt_input = -1;

static void choose_corruption(const bp_model *m)
{
    for (int p = 0; p < m->num_param_tensors && corrupt_param < 0; p++)
        if (!m->params[p].frozen)
            corrupt_param = p;
    for (int k = 0; k < m->num_inputs && corrupt_param < 0 && corrupt_input < 0; k++)
        if (m->inputs[k].wrt)
            corrupt_input = k;
    if (corrupt_param >= 0) {
        corrupt_name = m->params[corrupt_param].name;
        corrupt_index = m->params[corrupt_param].size - 1;
    } else if (corrupt_input >= 0) {
        corrupt_name = m->inputs[corrupt_input].name;
        corrupt_index = m->inputs[corrupt_input].size * N - 1;
    }
}

void corrupt(REAL *grad, REAL *const grad_inputs[], int n);
void corrupt(REAL *grad, REAL *const grad_inputs[], int n)
{
    const bp_model *m = &FN(_model);
    if (n != N)
        return;
    if (corrupt_param >= 0)
        grad[m->params[corrupt_param].offset + corrupt_index] += 1;
    else if (corrupt_input >= 0 && grad_inputs && grad_inputs[corrupt_input])
        grad_inputs[corrupt_input][corrupt_index] += 1;
}
#endif

#ifndef CORRUPT
/* Total values of n rows of every output. */
static size_t output_values(const bp_model *m, int n)
{
    size_t total = 0;
    for (int j = 0; j < m->num_outputs; j++)
        total += m->outputs[j].size * (size_t)n;
    return total;
}

/* Points outputs[j] into one array of output_values() values. */
static void split_outputs(const bp_model *m, REAL *all, REAL *outputs[], int n)
{
    for (int j = 0; j < m->num_outputs; j++) {
        outputs[j] = all;
        all += m->outputs[j].size * (size_t)n;
    }
}

/* 0 when evaluation in one pass agrees with forward and predict. */
static int check_forward_outputs(const bp_model *m, const REAL *theta,
                                 const REAL *const inputs[], void *ws)
{
    size_t count = output_values(m, N), ws_bytes = FN(_workspace_size)(N);
    REAL *want = calloc(count + 1, sizeof(REAL)), *got = calloc(count + 1, sizeof(REAL));
    REAL *out_want[16] = {0}, *out_got[16] = {0};
    if (!want || !got || m->num_outputs > 16)
        return 2;
    split_outputs(m, want, out_want, N);
    split_outputs(m, got, out_got, N);
    REAL loss = FN(_forward)(theta, inputs, N, ws);
    FN(_predict)(theta, inputs, N, ws, out_want);
    int status = 0;
    memset(ws, 0xff, ws_bytes);   /* NaNs everywhere */
    REAL loss2 = FN(_forward_outputs)(theta, inputs, N, ws, out_got);
    if (memcmp(&loss, &loss2, sizeof loss) != 0 || memcmp(want, got, count * sizeof(REAL)) != 0) {
        printf("forward_outputs: loss %.17g or outputs differ from forward (%.17g) and predict\n",
               (double)loss2, (double)loss);
        status = 1;
    }
    free(want);
    free(got);
    return status;
}
#endif

int main(void)
{
    const bp_model *m = &FN(_model);
    for (int n = 1; n <= 5; n++)
        if (FN(_SELFTEST_SCRATCH_SIZE)(n) != bp_selftest_scratch_size(m, n)) {
            printf("scratch size for n=%d: the header says %zu, the runtime %zu\n", n,
                   (size_t)FN(_SELFTEST_SCRATCH_SIZE)(n), bp_selftest_scratch_size(m, n));
            return 2;
        }
#ifdef CORRUPT
    choose_corruption(m);
    if (!corrupt_name) {
        printf("nothing to corrupt\n");
        return 2;
    }
    printf("corrupted %s[%zu]\n", corrupt_name, corrupt_index);
#endif
    REAL *theta = malloc(sizeof(REAL) * (m->num_params + 1));
    void *ws = malloc(FN(_workspace_size)(N) + 1);
    void *scratch = malloc(FN(_SELFTEST_SCRATCH_SIZE)(N));
    REAL *data[16] = {0};
    const REAL *inputs[16] = {0};
    if (!theta || !ws || !scratch || m->num_inputs > 16)
        return 2;
    FN(_init)(theta, 7);
    bp_rng rng;
    bp_rng_seed(&rng, 11);
    for (int k = 0; k < m->num_inputs; k++) {
        size_t count = m->inputs[k].size * (size_t)N;
        data[k] = malloc(sizeof(REAL) * count);
        if (!data[k])
            return 2;
        bp_fill_uniform(&rng, data[k], (int)sizeof(REAL), count, -1.0, 1.0);
        inputs[k] = data[k];
    }
    bp_selftest_report report;
    double worst;
    counting = 1;
    if (m->num_params <= MAX_FULL) {
        worst = FN(_selftest)(theta, inputs, N, ws, scratch, &report);
    } else {
        const void *in[16];
        for (int k = 0; k < m->num_inputs; k++)
            in[k] = inputs[k];
        int rc = bp_selftest(m, theta, in, N, ws, scratch, 0, LIMIT, &report);
        worst = rc == BP_OK ? report.worst : HUGE_VAL;
        printf("(at most %d entries per tensor) ", (int)LIMIT);
    }
    counting = 0;
    printf("worst=%.3g tolerance=%g checked=%zu at %s\n", worst, FN(_SELFTEST_TOLERANCE),
           report.checked, report.message);
    if (allocations) {
        printf("the self-test allocated %d times\n", allocations);
        return 2;
    }
    int status = worst <= FN(_SELFTEST_TOLERANCE) ? 0 : 1;
#ifndef CORRUPT
    int agree = check_forward_outputs(m, theta, inputs, ws);
    if (agree != 0)
        status = agree;
#endif
    for (int k = 0; k < m->num_inputs; k++)
        free(data[k]);
    free(scratch);
    free(ws);
    free(theta);
    return status;
}
