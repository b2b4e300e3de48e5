/* test_plan.c — the plan of steps between lowering and emission.
 *
 * Models are lowered in-process, then the tests look at the steps lowering
 * chose (one gemm over the batch or one per sample, the bias pre-fill,
 * flat or nested loops, kernel calls over the batch, copies out), and
 * break a correct plan in one place at a time to see plan_check() name
 * the fault. (The goldens tests/dump/NAME.expect hold whole plans as
 * --dump=lower prints them; test_cli.c compares them.) */
#include <CUnit/CUnit.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpgen.h"
#include "support.h"

static Arena *arena;

static const char *const mlp =
    "input x[4]\ninput y[3]\nparam W1[16, 4]\nparam b1[16]\nparam W2[3, 16]\nparam b2[3]\n"
    "h = tanh(W1 · x + b1)\nz = W2 · h + b2\np = softmax(z)\noutput p\n"
    "loss L = cross_entropy(p, y)\n";

static const char *const cnn =
    "input x[1, 6, 6]\ninput y[4]\nparam K[3, 1, 3, 3]\nparam c[3]\nparam W[4, 27]\n"
    "h = maxpool2d(relu(conv2d(x, K, c, pad=1)), 2)\nz = W · flatten(h)\n"
    "loss L = softmax_cross_entropy(z, y)\n";

static Plan *lower_placed(const char *src, Placement how)
{
    if (arena)
        arena_free(arena);
    arena = arena_new();
    Diag *d = diag_new(arena, "t.net", src, strlen(src));
    Program *prog = parse_program(arena, d, "t.net", src, strlen(src));
    Model *m = check_program(arena, d, prog);
    if (!m || diag_count(d)) {
        diag_flush(d, stderr);
        return NULL;
    }
    Graph *g = graph_build(arena, m, true);
    diff_graph(g);
    simp_graph(g);
    EmitOptions eo = {PREC_DOUBLE, false, "t.h", how, false, "t.c", false, false, false};
    return lower_graph(arena, g, &eo);
}

static Plan *lower(const char *src)
{
    return lower_placed(src, PLACE_AUTO);
}

/* plan_check(p), with what it says on stderr in *said (the caller frees). */
static bool check_saying(const Plan *p, char **said)
{
    char *path = test_tmp_path("plan_check.err");
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    bool ok = plan_check(p);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    *said = test_read_file(path, NULL);
    free(path);
    return ok;
}

/* plan_check fails, and its message contains `why`. */
static void assert_rejected(const Plan *p, const char *why)
{
    char *said = NULL;
    CU_ASSERT_FALSE(check_saying(p, &said));
    CU_ASSERT_TRUE(said != NULL && strstr(said, why) != NULL);
    if (!said || !strstr(said, why))
        fprintf(stderr, "\n  plan_check said '%s', expected '%s'\n", said ? said : "", why);
    free(said);
}

static const Step *first_step(const Plan *p, PlanFn f, StepKind kind)
{
    for (int k = 0; k < p->nsteps[f]; k++)
        if (p->steps[f][k].kind == kind)
            return &p->steps[f][k];
    return NULL;
}

/* ---------------------------------------------------------------- what lowering decides */

static void test_mlp_steps(void)
{
    Plan *p = lower(mlp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(plan_check(p));
    /* W1 · x + b1 over the batch: Y (n × 16) = X (n × 4) · W1ᵀ into rows
     * that start as b1 */
    const Step *st = &p->steps[PF_FORWARD][0];
    CU_ASSERT_EQUAL(st->kind, STEP_GEMM);
    const GemmStep *g = &st->gemm;
    CU_ASSERT_FALSE(g->sample_loop);
    CU_ASSERT_TRUE(g->m.times_n && g->m.count == 1);
    CU_ASSERT_TRUE(!g->n.times_n && g->n.count == 16 && g->k.count == 4);
    CU_ASSERT_FALSE(g->ta);
    CU_ASSERT_TRUE(g->tb);
    CU_ASSERT_EQUAL(g->a.node->op, OP_INPUT);
    CU_ASSERT_EQUAL(g->b.node->op, OP_PARAM);
    CU_ASSERT_EQUAL(g->beta, SCALE_ONE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g->prefill);
    CU_ASSERT_STRING_EQUAL(p->graph->model->params[g->prefill->index]->name, "b1");
    /* tanh of the gemm's stored result: one call of bp_vtanhf over it */
    CU_ASSERT_EQUAL(p->steps[PF_FORWARD][1].kind, STEP_LOOP);
    CU_ASSERT_EQUAL(p->steps[PF_FORWARD][1].loop.form, LOOP_ARRAY);
    /* forward ends returning the batch mean of the loss */
    const Step *last = &p->steps[PF_FORWARD][p->nsteps[PF_FORWARD] - 1];
    CU_ASSERT_TRUE(last->kind == STEP_REDUCE && last->reduce.form == REDUCE_LOSS && !last->node);
    /* dL/dW2 = batch_mean(outer(dL/dz, h)): one gemm (1/n) Aᵀ B over the batch */
    bool outer_gemm = false;
    for (int k = 0; k < p->nsteps[PF_BACKWARD]; k++) {
        const Step *b = &p->steps[PF_BACKWARD][k];
        if (b->kind == STEP_GEMM && b->node->op == OP_BATCH_MEAN && b->gemm.ta &&
            b->gemm.k.times_n && b->gemm.alpha == SCALE_INV_N && !b->gemm.sample_loop)
            outer_gemm = true;
    }
    CU_ASSERT_TRUE(outer_gemm);
    /* every gradient is computed in place in grad: no copy step */
    CU_ASSERT_PTR_NULL(first_step(p, PF_BACKWARD, STEP_COPY));
    /* predict's softmax writes p straight into outputs[0]: no copy */
    CU_ASSERT_PTR_NULL(first_step(p, PF_PREDICT, STEP_COPY));
    const Node *out = p->graph->output_nodes[0];
    CU_ASSERT_EQUAL(p->info[out->id].buf[PF_PREDICT].pool, POOL_OUTPUT);
    CU_ASSERT_EQUAL(p->info[out->id].buf[PF_PREDICT].offset, 0);
    const Step *sm = &p->steps[PF_PREDICT][p->nsteps[PF_PREDICT] - 1];
    CU_ASSERT_TRUE(sm->kind == STEP_REDUCE && sm->reduce.form == REDUCE_SOFTMAX && sm->node == out);
}

static void test_per_sample_steps(void)
{
    /* a shared matrix times a batched one: one gemm per sample; a frozen
     * parameter's gradient is a memset; an input's is scaled by 1/n */
    Plan *p = lower("input x[2, 3]\nparam frozen A[4, 2]\nparam B[4, 3]\nwrt x\n"
                    "loss L = sum((A · x) * B)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(plan_check(p));
    const Step *st = first_step(p, PF_FORWARD, STEP_GEMM);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    CU_ASSERT_TRUE(st->gemm.sample_loop);
    CU_ASSERT_FALSE(st->gemm.a.at_sample);    /* A is shared */
    CU_ASSERT_TRUE(st->gemm.b.at_sample && st->gemm.c.at_sample);
    int zero = 0, scaled = 0;
    for (int k = 0; k < p->nsteps[PF_BACKWARD]; k++) {
        const Step *b = &p->steps[PF_BACKWARD][k];
        if (b->kind != STEP_COPY)
            continue;
        if (b->copy.dest == DEST_GRAD && b->copy.form == COPY_ZERO && !b->copy.src)
            zero++;
        if (b->copy.dest == DEST_GRAD_INPUT && b->copy.per_n)
            scaled++;
    }
    CU_ASSERT_EQUAL(zero, 1);
    CU_ASSERT_EQUAL(scaled, 1);
}

static void test_kernel_steps(void)
{
    Plan *p = lower(cnn);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(plan_check(p));
    const Step *st = first_step(p, PF_FORWARD, STEP_KERNEL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    const KernelStep *k = &st->kernel;
    CU_ASSERT_EQUAL(k->op, OP_CONV2D);
    CU_ASSERT_FALSE(k->sample_loop);
    CU_ASSERT_TRUE(k->count.times_n);
    CU_ASSERT_TRUE(k->conv);
    CU_ASSERT_TRUE(k->shape.c == 1 && k->shape.h == 6 && k->shape.o == 3 && k->shape.kh == 3 &&
                   k->shape.pad == 1 && k->shape.oh == 6);
    CU_ASSERT_PTR_NOT_NULL(k->scratch);
    CU_ASSERT_PTR_NOT_NULL(k->arg[2].node);    /* the bias */
    /* the kernel gradient: batch_mean of per-sample gradients, one call
     * with alpha = 1/n */
    bool grad_kernel = false;
    for (int j = 0; j < p->nsteps[PF_BACKWARD]; j++) {
        const Step *b = &p->steps[PF_BACKWARD][j];
        if (b->kind == STEP_KERNEL && b->kernel.op == OP_CONV2D_GRAD_KERNEL)
            grad_kernel = b->kernel.alpha == SCALE_INV_N && b->kernel.count.times_n &&
                          b->node->op == OP_BATCH_MEAN;
    }
    CU_ASSERT_TRUE(grad_kernel);
}

/* S = L^2 + 2, P = log(S): forward is one loop (S stored for backward,
 * which takes dP/dS = 1/S, P a local of the loop, the loss summed in it);
 * backward's one loop writes dP/dL into grad_inputs divided by n, with no
 * copy after. */
static void test_merged_loops(void)
{
    Plan *p = lower("input L\nwrt L\nS = L^2 + 2\nloss P = log(S)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(plan_check(p));
    CU_ASSERT_EQUAL_FATAL(p->nsteps[PF_FORWARD], 3);
    const Step *f = p->steps[PF_FORWARD];
    CU_ASSERT_TRUE(f[0].kind == STEP_LOOP && f[0].joined && f[0].loop.form == LOOP_FLAT);
    CU_ASSERT_TRUE(f[1].kind == STEP_LOOP && f[1].joined && f[1].node == p->graph->loss);
    CU_ASSERT_TRUE(f[2].kind == STEP_REDUCE && f[2].reduce.form == REDUCE_LOSS && !f[2].joined);
    CU_ASSERT_EQUAL(p->info[f[0].node->id].buf[PF_FORWARD].pool, POOL_BATCHED);
    CU_ASSERT_EQUAL(p->info[f[1].node->id].buf[PF_FORWARD].pool, POOL_LOCAL);
    CU_ASSERT_EQUAL(p->ws_batched, 1);
    CU_ASSERT_EQUAL_FATAL(p->nsteps[PF_BACKWARD], 1);
    const Step *b = p->steps[PF_BACKWARD];
    CU_ASSERT_TRUE(b[0].kind == STEP_LOOP && !b[0].joined);
    CU_ASSERT_EQUAL(p->info[b[0].node->id].buf[PF_BACKWARD].pool, POOL_GRAD_INPUT);

    /* plan_check: a local outside a merged loop, joins that are no loop */
    Plan *c = lower("input L\nwrt L\nS = L^2 + 2\nloss P = log(S)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    c->steps[PF_FORWARD][1].joined = false;   /* the loss reads P after its loop */
    assert_rejected(c, "a reduction of a value not computed yet");
    c->steps[PF_FORWARD][1].joined = true;
    CU_ASSERT_TRUE(plan_check(c));
    Buffer *S = &c->info[c->steps[PF_FORWARD][0].node->id].buf[PF_FORWARD];
    c->steps[PF_FORWARD][0].joined = false;
    S->pool = POOL_LOCAL;
    assert_rejected(c, "a local of no merged loop");
    S->pool = POOL_BATCHED;
    c->steps[PF_FORWARD][0].joined = true;
    CU_ASSERT_TRUE(plan_check(c));
    c = lower(mlp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    c->steps[PF_FORWARD][0].joined = true;   /* a gemm */
    assert_rejected(c, "a merged loop with a step that is not an elementwise loop");
    c->steps[PF_FORWARD][0].joined = false;
    c->steps[PF_FORWARD][1].joined = true;   /* tanh, one bp_vtanhf call */
    assert_rejected(c, "a merged loop with a step that is not an elementwise loop");
    c = lower("input x[3]\nparam w[3]\nparam v[2]\nh = x * w + 1\nk = v * v + 1\n"
              "loss L = sum(h * h) + sum(k * k)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_TRUE(plan_check(c));
    c->steps[PF_FORWARD][0].joined = true;   /* h per sample, then k once */
    assert_rejected(c, "a merged loop over steps of different trip counts");
}

/* M_forward_backward: forward's loss loop runs backward's first loops too
 * where they have its form and trip count; a value only they read is a
 * local there; not where backward would write over what forward's loop
 * reads, nor after a loop of another form. */
static void test_forward_backward_loop(void)
{
    /* the chain: forward's one loop and backward's input gradient */
    Plan *p = lower("input L\nwrt L\nS = L^2 + 2\nloss P = sqrt(S)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(plan_check(p));
    CU_ASSERT_EQUAL(p->fb_first, 0);
    CU_ASSERT_EQUAL(p->fb_joined, 1);
    Node *P = p->steps[PF_FORWARD][0].node;
    CU_ASSERT_TRUE(P == p->graph->loss && p->info[P->id].kept);
    CU_ASSERT_TRUE(p->fb_local != NULL && p->fb_local[P->id]);
    /* a reduction first (forward's steps before the loop); in the loop
     * backward's first loops and the batch mean dL/dc (summed there), not
     * dL/dw (three values a sample), which reads cos(h) and 2·(...) from
     * the workspace after the loop: not locals. cos(h) lies over h, at the
     * same places: it writes each at the loop's index after every read
     * of h there. */
    p = lower("input x[3]\ninput y\nparam w[3]\nparam c\nwrt y\nh = dot(w, x)\n"
              "loss L = (c * sin(h) - y)^2\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(plan_check(p));
    CU_ASSERT_EQUAL(p->fb_first, 1);
    CU_ASSERT_EQUAL_FATAL(p->fb_joined, 4);
    CU_ASSERT_EQUAL(p->nsteps[PF_BACKWARD], 5);
    const Step *b = p->steps[PF_BACKWARD];
    CU_ASSERT_TRUE(b[2].kind == STEP_REDUCE && b[2].reduce.form == REDUCE_BATCH_MEAN);
    CU_ASSERT_TRUE(b[3].kind == STEP_LOOP && !p->fb_local[b[3].node->id]);
    CU_ASSERT_TRUE(b[0].kind == STEP_LOOP && !p->fb_local[b[0].node->id]);   /* dL/dw's */
    CU_ASSERT_TRUE(p->fb_local[p->steps[PF_FORWARD][1].node->id]);           /* sin(h) */
    Node *h = p->steps[PF_FORWARD][0].node;
    CU_ASSERT_EQUAL(p->info[b[3].node->id].buf[PF_BACKWARD].offset,
                    p->info[h->id].buf[PF_FORWARD].offset);
    /* the MLP: backward starts with a softmax's gradient, no loop of forward's */
    p = lower(mlp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->fb_joined, 0);
    CU_ASSERT_PTR_NULL(p->fb_local);

    /* plan_check: the loop must be forward's last and of one trip count */
    p = lower("input L\nwrt L\nS = L^2 + 2\nloss P = sqrt(S)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p->fb_joined = 2;
    assert_rejected(p, "a forward_backward loop out of range");
    p->fb_joined = 1;
    p->steps[PF_BACKWARD][0].loop.form = LOOP_NESTED;
    assert_rejected(p, "a merged loop over steps of different trip counts");
}

/* Functions of one group are also printed for one sample; plan_check
 * refuses a copy of a split function. */
static void test_one_sample(void)
{
    Plan *p = lower(mlp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(plan_check(p));
    for (int f = 0; f < PF__COUNT; f++)
        CU_ASSERT_TRUE(p->one_sample[f]);
    CU_ASSERT_FALSE(p->one_sample_step);    /* no --step */
    p->groups[PF_BACKWARD][0].in_caller = false;
    assert_rejected(p, "a split function copied for one sample");
}

/* A small product written as loops sums each dot product of a constant
 * length of 8 or more, a multiple of 4, in 4 partial sums: the MLP's
 * z = W2 · h (16 long) does, h's W1 · x (4 long) does not; plan_check
 * refuses partial sums that do not divide the length. */
static void test_partial_sums(void)
{
    Plan *p = lower(mlp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(plan_check(p));
    int four = 0, one = 0;
    Step *z = NULL;
    for (int k = 0; k < p->nsteps[PF_FORWARD]; k++) {
        Step *st = &p->steps[PF_FORWARD][k];
        if (st->kind != STEP_GEMM)
            continue;
        CU_ASSERT_TRUE(st->gemm.loops_below != 0);
        if (st->gemm.k.count == 16 && st->gemm.partial_sums == 4)
            four++, z = st;
        if (st->gemm.k.count == 4 && st->gemm.partial_sums == 1)
            one++;
    }
    CU_ASSERT_EQUAL(four, 1);
    CU_ASSERT_EQUAL(one, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    z->gemm.partial_sums = 3;
    assert_rejected(p, "a dot product in partial sums that do not divide it");
}

/* mse's 2/k scales each gradient: c · batch_mean(...) is the mean's own
 * step, alpha c/n of the gemm and c times the bias mean's division, with
 * no pass only rescaling and no buffer for the unscaled mean. */
static void test_scale_folded(void)
{
    Plan *p = lower("input x[3]\ninput t[4]\nparam W[4, 3]\nparam b[4]\n"
                    "loss L = mse(W · x + b, t)\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_TRUE(plan_check(p));
    CU_ASSERT_EQUAL_FATAL(p->nsteps[PF_BACKWARD], 2);
    int gemm = 0, mean = 0;
    for (int k = 0; k < 2; k++) {
        const Step *st = &p->steps[PF_BACKWARD][k];
        CU_ASSERT_EQUAL(st->node->op, OP_MUL);
        CU_ASSERT_TRUE(st->factor && st->factor->value == 0.5);
        CU_ASSERT_EQUAL(p->info[st->node->id].buf[PF_BACKWARD].pool, POOL_GRAD);
        gemm += st->kind == STEP_GEMM && st->gemm.alpha == SCALE_INV_N;
        mean += st->kind == STEP_REDUCE && st->reduce.form == REDUCE_BATCH_MEAN;
    }
    CU_ASSERT_EQUAL(gemm, 1);
    CU_ASSERT_EQUAL(mean, 1);
    CU_ASSERT_EQUAL(p->ws_shared, 0);
}

/* ---------------------------------------------------------------- what plan_check catches */

static void test_check_catches_reads_before_writes(void)
{
    Plan *p = lower(mlp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    /* the first gemm reads h, which the next step computes */
    Step *st = &p->steps[PF_FORWARD][0];
    Node *b = st->gemm.b.node;
    st->gemm.b.node = p->steps[PF_FORWARD][1].node;
    assert_rejected(p, "a gemm operand read before it is computed");
    st->gemm.b.node = b;
    CU_ASSERT_TRUE(plan_check(p));

    /* backward without what forward kept */
    for (int id = 0; id < p->graph->nnodes; id++)
        p->info[id].kept = false;
    assert_rejected(p, "not computed yet");
}

static void test_check_catches_views_out_of_bounds(void)
{
    Plan *p = lower(mlp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    GemmStep *g = &p->steps[PF_FORWARD][0].gemm;
    g->lda = 3;    /* rows of x are 4 long */
    assert_rejected(p, "a gemm operand outside its buffer");
    g->lda = 4;
    g->ldc = 17;   /* y's rows are 16 apart: row n-1 ends past the buffer */
    assert_rejected(p, "a gemm operand outside its buffer");
    g->ldc = 16;
    g->m.times_n = false;
    g->m.count = 2;   /* two rows where a batch of one has one */
    assert_rejected(p, "a gemm operand outside its buffer");
    g->m.times_n = true;
    g->m.count = 1;
    CU_ASSERT_TRUE(plan_check(p));

    /* a buffer placed past the end of its pool */
    Node *h = p->order[PF_FORWARD][1];
    long offset = p->info[h->id].buf[PF_FORWARD].offset;
    p->info[h->id].buf[PF_FORWARD].offset = p->ws_batched;
    assert_rejected(p, "a buffer outside its pool");
    p->info[h->id].buf[PF_FORWARD].offset = offset;

    /* a copy out of the wrong length: an input's gradient from a gemm,
     * copied into grad_inputs divided by n */
    p = lower("input x[6]\nparam W[2, 6]\nwrt x\nloss L = sum(tanh(W · x))\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    Step *out = NULL;
    for (int k = 0; k < p->nsteps[PF_BACKWARD]; k++)
        if (p->steps[PF_BACKWARD][k].kind == STEP_COPY &&
            p->steps[PF_BACKWARD][k].copy.dest == DEST_GRAD_INPUT)
            out = &p->steps[PF_BACKWARD][k];
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(out->copy.form, COPY_EACH);
    out->copy.size = 5;
    assert_rejected(p, "a copy between buffers of different sizes");
    out->copy.size = 6;
    CU_ASSERT_TRUE(plan_check(p));
}

static void test_check_catches_kernel_faults(void)
{
    Plan *p = lower(cnn);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    Step *st = NULL;
    for (int k = 0; k < p->nsteps[PF_FORWARD]; k++)
        if (p->steps[PF_FORWARD][k].kind == STEP_KERNEL &&
            p->steps[PF_FORWARD][k].kernel.op == OP_CONV2D)
            st = &p->steps[PF_FORWARD][k];
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    st->kernel.shape.c = 2;    /* x has one channel */
    assert_rejected(p, "a kernel operand of the wrong size");
    st->kernel.shape.c = 1;
    const Buffer *scratch = st->kernel.scratch;
    st->kernel.scratch = NULL;
    assert_rejected(p, "a convolution without scratch");
    st->kernel.scratch = scratch;
    CU_ASSERT_TRUE(plan_check(p));
}

static void test_check_catches_steps_out_of_place(void)
{
    Plan *p = lower(mlp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    /* two buffered steps swapped */
    Node **order = p->order[PF_FORWARD];
    Node *first = order[0];
    order[0] = order[1];
    order[1] = first;
    assert_rejected(p, "steps out of order");
    order[1] = order[0];
    order[0] = first;
    /* a step computing another node than its buffer's */
    Node *node = p->steps[PF_FORWARD][1].node;
    p->steps[PF_FORWARD][1].node = p->steps[PF_FORWARD][2].node;
    assert_rejected(p, "a step that is not its buffer's");
    p->steps[PF_FORWARD][1].node = node;
    CU_ASSERT_TRUE(plan_check(p));
}

/* ---------------------------------------------------------------- placement in time order */

/* Whether some buffer of p has another place than in q (two plans of one
 * model). */
static bool places_differ(const Plan *p, const Plan *q)
{
    for (int f = 0; f < PF__COUNT; f++)
        for (int k = 0; k < p->norder[f]; k++) {
            int id = p->order[f][k]->id;
            if (p->info[id].buf[f].offset != q->info[id].buf[f].offset)
                return true;
        }
    return false;
}

/* Models of thousands of buffers are placed in time order (a linear scan
 * with a free list); here small models are, so that the generated code
 * is checked against finite differences as every other model is. */
static void test_time_order_placement(void)
{
    static const char *const models[] = {"examples/iris/iris.net",
                                         "examples/digits_cnn/digits_cnn.net",
                                         "tests/dump/mixed.net"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        char *src = test_read_file(models[i], NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(src);
        Plan *by_size = lower_placed(src, PLACE_BY_SIZE);
        CU_ASSERT_PTR_NOT_NULL_FATAL(by_size);
        Arena *kept = arena;
        arena = NULL;
        Plan *p = lower_placed(src, PLACE_IN_TIME_ORDER);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_TRUE(plan_check(p));
        CU_ASSERT_TRUE(places_differ(p, by_size));
        arena_free(kept);

        char *c_path = test_format("%s/time_order_%zu.c", TEST_TMP, i);
        char *h_path = test_format("%s/t.h", TEST_TMP);
        FILE *c_out = fopen(c_path, "w"), *h_out = fopen(h_path, "w");
        CU_ASSERT_FATAL(c_out && h_out);
        CU_ASSERT_TRUE(emit_c(p, c_out, h_out));
        fclose(c_out);
        fclose(h_out);
        char *exe = test_format("%s/time_order_%zu", TEST_TMP, i);
        char *cmd = test_format("%s %s -Werror -Iruntime -I%s -DMODEL=%s_model -o %s %s "
                                "tests/harness/gradcheck.c %s -lm", TEST_CC, TEST_CFLAGS,
                                TEST_TMP, p->graph->model->name, exe, c_path, TEST_LIBBP);
        char *err = NULL, *out = NULL;
        int rc = test_run(cmd, NULL, &err);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0)
            fprintf(stderr, "\n[%s] does not compile:\n%s\n", models[i], err ? err : "");
        rc = rc == 0 ? test_run(exe, &out, NULL) : rc;
        CU_ASSERT_EQUAL(rc, 0);
        /* three lines (batches of 1, 7 and 9), each err= below the double limit */
        int lines = 0;
        bool close = true;
        for (const char *at = out; at && (at = strstr(at, "err=")); at += 4, lines++)
            close = close && strtod(at + 4, NULL) < 1e-6;
        CU_ASSERT_EQUAL(lines, 3);
        CU_ASSERT_TRUE(close);
        if (lines != 3 || !close)
            fprintf(stderr, "\n[%s] in time order:\n%s\n", models[i], out ? out : "");
        free(out);
        free(err);
        free(cmd);
        free(exe);
        free(h_path);
        free(c_path);
        free(src);
    }
}

static int free_arena(void)
{
    arena_free(arena);
    arena = NULL;
    return 0;
}

void register_plan(void)
{
    CU_pSuite s = CU_add_suite("plan", NULL, free_arena);
    CU_add_test(s, "an MLP's steps", test_mlp_steps);
    CU_add_test(s, "merged loops: the chain", test_merged_loops);
    CU_add_test(s, "a constant factor folded into a batch mean's step", test_scale_folded);
    CU_add_test(s, "forward_backward: one loop of both", test_forward_backward_loop);
    CU_add_test(s, "copies for one sample", test_one_sample);
    CU_add_test(s, "partial sums of small products", test_partial_sums);
    CU_add_test(s, "per-sample gemm, frozen and input gradients", test_per_sample_steps);
    CU_add_test(s, "kernel steps", test_kernel_steps);
    CU_add_test(s, "check: reads before writes", test_check_catches_reads_before_writes);
    CU_add_test(s, "check: views out of bounds", test_check_catches_views_out_of_bounds);
    CU_add_test(s, "check: kernel faults", test_check_catches_kernel_faults);
    CU_add_test(s, "check: steps out of place", test_check_catches_steps_out_of_place);
    CU_add_test(s, "placement in time order", test_time_order_placement);
}
