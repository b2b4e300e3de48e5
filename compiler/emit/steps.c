/* steps.c — each kind of step of the plan printed as C: gemm calls, the
 * runtime's kernels (convolution, pooling), elementwise loops, reductions
 * and copies. lower_steps.c decided everything a step says; this file
 * only spells it, each step under a comment with the equation it computes.
 */
#include "emit.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- arguments */

/* 1/n, or c/n where the step folds in a constant factor c */
static const char *inv_n(Emit *e, const Node *factor)
{
    return fmt(e, "%s / (%s)n", lit_str(e, factor ? factor->value : 1), e->real);
}

static const char *scale(Emit *e, Scale s, const Node *factor)
{
    switch (s) {
    case SCALE_ZERO: return lit_str(e, 0);
    case SCALE_ONE: return lit_str(e, 1);
    case SCALE_INV_N: return inv_n(e, factor);
    case SCALE_FIRST_ZERO: return fmt(e, "s == 0 ? %s : %s", lit_str(e, 0), lit_str(e, 1));
    }
    return "0";
}

static const char *extent(Emit *e, Extent x)
{
    if (!x.times_n)
        return fmt(e, "%ld", x.count);
    return x.count == 1 ? "n" : fmt(e, "%ld * n", x.count);
}

/* An operand's pointer: its buffer, at sample s where the step says so. */
static const char *operand(Emit *e, Operand o)
{
    if (!o.node)
        return "NULL";
    const char *b = buf_name(e, o.node);
    return o.at_sample ? fmt(e, "%s + s * %ld", b, shape_size(o.node->shape)) : b;
}

/* "SIZE * (size_t)n": the count of a batched buffer's reals. */
static const char *batch_count(Emit *e, long size)
{
    return size == 1 ? "(size_t)n" : fmt(e, "%ld * (size_t)n", size);
}

/* Opens `for s` when batched (else a block); returns the body's depth. */
static int open_samples(Emit *e, bool batched)
{
    line(e, 1, batched ? "for (size_t s = 0; s < (size_t)n; s++) {" : "{");
    return 2;
}

/* ---------------------------------------------------------------- gemm */

/* A loop bound: the extent as a size_t. */
static const char *bound(Emit *e, Extent x)
{
    if (!x.times_n)
        return fmt(e, "%ld", x.count);
    return x.count == 1 ? "(size_t)n" : fmt(e, "%ld * (size_t)n", x.count);
}

/* Element (row, col) of gemm operand o, transposed where trans; an index
 * "0" is left out of the address. */
static const char *entry(Emit *e, Operand o, bool trans, long ld, const char *row,
                         const char *col)
{
    if (trans) {
        const char *t = row;
        row = col;
        col = t;
    }
    if (strcmp(row, "0") == 0)
        return fmt(e, "%s[%s]", operand(e, o), col);
    if (strcmp(col, "0") == 0)
        return fmt(e, "%s[%s * %ld]", operand(e, o), row, ld);
    return fmt(e, "%s[%s * %ld + %s]", operand(e, o), row, ld, col);
}

/* part[from] + ... + part[from + count - 1], added pairwise. */
static const char *pairwise(Emit *e, int from, int count)
{
    if (count == 1)
        return fmt(e, "part[%d]", from);
    int half = count / 2;
    const char *l = pairwise(e, from, half), *r = pairwise(e, from + half, count - half);
    return fmt(e, "%s%s%s + %s%s%s", half > 1 ? "(" : "", l, half > 1 ? ")" : "",
               count - half > 1 ? "(" : "", r, count - half > 1 ? ")" : "");
}

/* The product as loops at depth d (lowering chose it for a tiny product
 * or batch). A weight gradient summed over the batch is built by one
 * rank-1 update per sample, the first writing it (a clearing pass cost
 * more than the update at batch 1); every other element is a dot
 * product, with the bias or C's old value added after it. */
static void gemm_loops(Emit *e, int d, const GemmStep *g, const Node *factor)
{
    const char *cij = fmt(e, "%s[i * %ld + j]", operand(e, g->c), g->ldc);
    const char *aik = entry(e, g->a, g->ta, g->lda, "i", "k"),
               *bkj = entry(e, g->b, g->tb, g->ldb, "k", "j");
    const char *alpha = g->alpha == SCALE_ONE ? NULL : scale(e, g->alpha, factor);
    const char *M = bound(e, g->m), *N = bound(e, g->n), *K = bound(e, g->k);
    if (g->k.times_n && g->beta == SCALE_ZERO && !g->prefill) {
        line(e, d, "for (size_t i = 0; i < %s; i++)", M);
        line(e, d + 1, "for (size_t j = 0; j < %s; j++)", N);
        line(e, d + 2, "%s = %s * %s;", cij, entry(e, g->a, g->ta, g->lda, "i", "0"),
             entry(e, g->b, g->tb, g->ldb, "0", "j"));
        line(e, d, "for (size_t k = 1; k < %s; k++)", K);
        line(e, d + 1, "for (size_t i = 0; i < %s; i++) {", M);
        line(e, d + 2, "const %s aik = %s;", e->real, aik);
        line(e, d + 2, "for (size_t j = 0; j < %s; j++)", N);
        line(e, d + 3, "%s += aik * %s;", cij, bkj);
        line(e, d + 1, "}");
        if (alpha) {
            line(e, d, "for (size_t i = 0; i < %s; i++)", M);
            line(e, d + 1, "for (size_t j = 0; j < %s; j++)", N);
            line(e, d + 2, "%s *= %s;", cij, alpha);
        }
        return;
    }
    const char *plus = "";
    if (g->prefill && g->prefill->op == OP_CONST)
        plus = fmt(e, " + %s", lit_str(e, g->prefill->value));
    else if (g->prefill)
        plus = fmt(e, " + %s[j]", buf_name(e, g->prefill));
    else if (g->beta == SCALE_ONE)
        plus = fmt(e, " + %s", cij);
    line(e, d, "for (size_t i = 0; i < %s; i++)", M);
    line(e, d + 1, "for (size_t j = 0; j < %s; j++) {", N);
    if (g->partial_sums > 1) {
        /* lowering's partial sums: short add chains, added pairwise */
        int parts = g->partial_sums;
        const char *zeros = lit_str(e, 0);
        for (int q = 1; q < parts; q++)
            zeros = fmt(e, "%s, %s", zeros, lit_str(e, 0));
        line(e, d + 2, "%s part[%d] = {%s};", e->real, parts, zeros);
        line(e, d + 2, "for (size_t k = 0; k < %s; k += %d)", K, parts);
        line(e, d + 3, "for (size_t q = 0; q < %d; q++)", parts);
        line(e, d + 4, "part[q] += %s * %s;", entry(e, g->a, g->ta, g->lda, "i", "(k + q)"),
             entry(e, g->b, g->tb, g->ldb, "(k + q)", "j"));
        line(e, d + 2, "const %s acc = %s;", e->real, pairwise(e, 0, parts));
    } else {
        line(e, d + 2, "%s acc = %s;", e->real, lit_str(e, 0));
        line(e, d + 2, "for (size_t k = 0; k < %s; k++)", K);
        line(e, d + 3, "acc += %s * %s;", aik, bkj);
    }
    line(e, d + 2, "%s = %s%s;", cij, alpha ? fmt(e, "%s * acc", alpha) : "acc", plus);
    line(e, d + 1, "}");
}

/* The product as one bp_gemm call (or one per sample), at depth d. */
static void gemm_call(Emit *e, int d, const Step *st)
{
    const GemmStep *g = &st->gemm;
    Node *y = st->node;
    if (g->prefill) {
        /* each of y's n rows starts as the bias; the gemm adds (beta = 1) */
        long size = shape_size(y->shape);
        line(e, d, "for (size_t s = 0; s < (size_t)n; s++)");
        if (g->prefill->op == OP_CONST) {
            line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", size);
            line(e, d + 2, "%s = %s;", elem(e, y, "s", "j").s, lit_str(e, g->prefill->value));
        } else {
            line(e, d + 1, "memcpy(%s + s * %ld, %s, %ld * sizeof(%s));", buf_name(e, y), size,
                 buf_name(e, g->prefill), size, e->real);
        }
    }
    if (g->sample_loop)
        line(e, d++, "for (size_t s = 0; s < (size_t)n; s++)");
    line(e, d, "%s(%d, %d, %s, %s, %s, %s, %s, %ld, %s, %ld, %s, %s, %ld);",
         e->dbl ? "bp_gemm_d" : "bp_gemm_f", g->ta, g->tb, extent(e, g->m), extent(e, g->n),
         extent(e, g->k), scale(e, g->alpha, st->factor), operand(e, g->a), g->lda,
         operand(e, g->b), g->ldb, scale(e, g->beta, NULL), operand(e, g->c), g->ldc);
}

static void gemm(Emit *e, const Step *st)
{
    const GemmStep *g = &st->gemm;
    comment(e, 1, equation(e, st->node));
    if (g->loops_below == 0) {
        gemm_call(e, 1, st);
    } else if (g->loops_below == LOOPS_ALWAYS) {
        gemm_loops(e, 1, g, st->factor);
    } else {
        line(e, 1, "if (n < %d) { /* a batch this small: loops cost less than the call */",
             g->loops_below);
        gemm_loops(e, 2, g, st->factor);
        line(e, 1, "} else {");
        gemm_call(e, 2, st);
        line(e, 1, "}");
    }
}

/* Rows [k, k + rows) of gemm g's result into dst, a block of those rows
 * alone (M_step's tiled gradient, emit_update): op(A) from its row k. */
void gemm_rows(Emit *e, int depth, const Step *st, const char *rows, const char *dst)
{
    const GemmStep *g = &st->gemm;
    const char *a = operand(e, g->a);
    a = g->ta ? fmt(e, "%s + k", a) : fmt(e, "%s + k * %ld", a, g->lda);
    line(e, depth, "%s(%d, %d, %s, %s, %s, %s, %s, %ld, %s, %ld, %s, %s, %ld);",
         e->dbl ? "bp_gemm_d" : "bp_gemm_f", g->ta, g->tb, rows, extent(e, g->n),
         extent(e, g->k), scale(e, g->alpha, st->factor), a, g->lda, operand(e, g->b), g->ldb,
         scale(e, g->beta, NULL), dst, g->ldc);
}

/* ---------------------------------------------------------------- kernels */

/* Where a step's scratch lies (shared workspace). */
static const char *scratch_ptr(Emit *e, const Buffer *b)
{
    if (!b || b->pool != POOL_SHARED)
        die("a kernel step without scratch");
    e->ws_direct = true;
    const char *base = e->p->ws_batched ? fmt(e, "wsr + %ld * (size_t)n", e->p->ws_batched) : "wsr";
    return b->offset ? fmt(e, "%s + %ld", base, b->offset) : base;
}

static void kernel(Emit *e, const Step *st)
{
    const KernelStep *k = &st->kernel;
    /* the runtime kernel in the chosen precision: "bp_conv2d" -> "bp_conv2d_f" */
    const char *fnname = fmt(e, "%s_%s", op_info[k->op].c_fn, e->dbl ? "d" : "f");
    comment(e, 1, equation(e, st->node));
    if (k->conv) {
        const ConvShape *cs = &k->shape;
        line(e, 1, "{");
        line(e, 2, "const bp_conv2d_shape cs = {.c = %d, .h = %d, .w = %d, .o = %d, .kh = %d, .kw = %d,",
             cs->c, cs->h, cs->w, cs->o, cs->kh, cs->kw);
        line(e, 2, "                             .stride = %d, .pad = %d, .oh = %d, .ow = %d};",
             cs->stride, cs->pad, cs->oh, cs->ow);
    }
    int d = k->conv ? 2 : 1;
    if (k->sample_loop)
        line(e, d++, "for (size_t s = 0; s < (size_t)n; s++) {");
    const char *count = extent(e, k->count), *out = operand(e, k->out);
    const char *A = operand(e, k->arg[0]), *B = operand(e, k->arg[1]), *C = operand(e, k->arg[2]);
    const char *alpha = scale(e, k->alpha, st->factor), *beta = scale(e, k->beta, NULL);
    switch (k->op) {
    case OP_CONV2D:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s, %s);", fnname, count, A, B, C, out,
             scratch_ptr(e, k->scratch));
        break;
    case OP_CONV2D_GRAD_INPUT:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s);", fnname, count, A, B, out,
             scratch_ptr(e, k->scratch));
        break;
    case OP_CONV2D_GRAD_KERNEL:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s, %s, %s);", fnname, count, A, B, alpha, beta, out,
             scratch_ptr(e, k->scratch));
        break;
    case OP_CONV2D_GRAD_BIAS:
        line(e, d, "%s(&cs, %s, %s, %s, %s, %s);", fnname, count, A, alpha, beta, out);
        break;
    case OP_MAXPOOL2D:
    case OP_AVGPOOL2D:
    case OP_AVGPOOL2D_GRAD:
        line(e, d, "%s(%s, %d, %d, %d, %d, %s, %s);", fnname, count, k->pool_c, k->pool_h,
             k->pool_w, k->window, A, out);
        break;
    case OP_MAXPOOL2D_GRAD:     /* x, dy -> dx */
        line(e, d, "%s(%s, %d, %d, %d, %d, %s, %s, %s);", fnname, count, k->pool_c, k->pool_h,
             k->pool_w, k->window, A, B, out);
        break;
    default:
        die("not a kernel");
    }
    if (k->sample_loop)
        line(e, d - 1, "}");
    if (k->conv)
        line(e, 1, "}");
}

/* ---------------------------------------------------------------- loops */

/* Where a loop writes its node: a buffer, a local of a merged loop, or
 * (lower.c's place_results) the caller's grad_inputs. */
static Pool pool_of(Emit *e, const Node *y)
{
    return is_local(e, y) ? POOL_LOCAL : info(e, y)->buf[e->f].pool;
}

static const char *loop_count(Emit *e, const Node *y, long size)
{
    return y->batched ? batch_count(e, size) : fmt(e, "%ld", size);
}

/* Opens the loop of `form` whose body is at depth d + 1 (flat) or d + 2
 * (nested); returns the body's depth. */
static int open_loop(Emit *e, LoopForm form, int d, const Node *y, long size)
{
    if (form == LOOP_FLAT) {
        line(e, d, "for (size_t i = 0; i < %s; i++) {", loop_count(e, y, size));
        return d + 1;
    }
    line(e, d, "for (size_t s = 0; s < (size_t)n; s++) {");
    line(e, d + 1, "for (size_t j = 0; j < %ld; j++) {", size);
    return d + 2;
}

static void close_loop(Emit *e, LoopForm form, int d)
{
    if (form == LOOP_NESTED)
        line(e, d + 1, "}");
    line(e, d, "}");
}

/* Renders step st's node in a loop of `form` whose body is at depth d:
 * its temporaries into *pre, the comments of the named values fused
 * into it (at depth `notes_at`), and returns the statement storing it. */
static const char *statement(Emit *e, const Step *st, int d, int notes_at, char **pre)
{
    Node *y = st->node;
    Ctx c;
    memset(&c, 0, sizeof c);
    c.mode = st->loop.form;
    c.batched = y->batched;
    c.size = st->loop.size;
    c.depth = d;
    char *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, pre, &npre, &notes, &nnotes);
    Ex value = render(e, &c, y, true);
    const char *stmt;
    if (pool_of(e, y) == POOL_LOCAL)
        stmt = fmt(e, "const %s %s = %s;", e->real, e->cname[y->id], value.s);
    else if (pool_of(e, y) == POOL_GRAD_INPUT && e->inv_n)
        stmt = fmt(e, "%s = %s * %s;", ref_buf(e, &c, y).s, at(e, value, PR_MUL), e->inv_n);
    else if (pool_of(e, y) == POOL_GRAD_INPUT)
        /* times 1/n, which the compiler hoists: a division per element
         * would cost as much as the rest of a cheap derivative */
        stmt = fmt(e, "%s = %s * (%s);", ref_buf(e, &c, y).s, at(e, value, PR_MUL), inv_n(e, NULL));
    else
        stmt = fmt(e, "%s = %s;", ref_buf(e, &c, y).s, value.s);
    close_ctx(e, &c, &notes, notes_at);
    free(notes);
    return stmt;
}

/* y = f(x) over the whole buffer: one call of the runtime's array form. */
static void array_call(Emit *e, const Step *st)
{
    Node *y = st->node;
    comment(e, 1, equation(e, y));
    line(e, 1, "%s(%s, %s, %s);", fn(e, op_info[y->op].c_array_fn),
         loop_count(e, y, st->loop.size), buf_name(e, y->in[0]), buf_name(e, y));
}

/* The fused expression of the step's node, one value per index. */
static void loop(Emit *e, const Step *st)
{
    Node *y = st->node;
    LoopForm form = st->loop.form;
    if (form == LOOP_ARRAY) {
        array_call(e, st);
        return;
    }
    bool guarded = pool_of(e, y) == POOL_GRAD_INPUT;
    int d = guarded ? 2 : 1;
    int body = form == LOOP_NESTED ? d + 2 : form == LOOP_FLAT ? d + 1 : d;
    char *pre = NULL;
    const char *stmt = statement(e, st, body, 1, &pre);
    comment(e, 1, equation(e, y));
    if (guarded) {
        comment(e, 1, comment_text(e, fmt(e, "into grad_inputs[%ld], divided by n (the batch "
                                          "mean), when the caller asks for it",
                                          info(e, y)->buf[e->f].offset)));
        line(e, 1, "if (%s != NULL) {", buf_name(e, y));
    }
    bool block = pre && *pre;
    switch (form) {
    case LOOP_SCALAR:
        if (block)
            line(e, d, "{");
        fputs(pre ? pre : "", e->out);
        line(e, block ? d + 1 : d, "%s", stmt);
        if (block)
            line(e, d, "}");
        break;
    case LOOP_FLAT:
    case LOOP_NESTED:
        open_loop(e, form, d, y, st->loop.size);
        fputs(pre ? pre : "", e->out);
        line(e, body, "%s", stmt);
        close_loop(e, form, d);
        break;
    case LOOP_OUTER:
        die("an outer product as an expression");
        break;
    case LOOP_ARRAY:
        die("an array call as a loop");
        break;
    }
    if (guarded)
        line(e, 1, "}");
    free(pre);
}

/* A batch mean's step in M_forward_backward's loop: its sample's value
 * added to the local `acc` (rendered at depth d, temporaries into *pre). */
static const char *summand(Emit *e, const Step *st, int d, const char *acc, char **pre)
{
    Ctx c;
    memset(&c, 0, sizeof c);
    c.mode = LOOP_FLAT;
    c.batched = true;
    c.size = 1;
    c.depth = d;
    char *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, pre, &npre, &notes, &nnotes);
    Ex v = render(e, &c, st->reduce.x, false);
    close_ctx(e, &c, &notes, d);
    free(notes);
    return fmt(e, "%s += %s;", acc, v.s);
}

/* Steps st[0 .. count) as statements of one loop whose body is at depth
 * `body`, each under its own comment, in order, its code traced to its
 * own .net line. */
static void merged_statements(Emit *e, const Step *st, int count, int body,
                              const char *const *acc)
{
    for (int k = 0; k < count; k++) {
        FILE *out = e->out;
        char *text = NULL, *pre = NULL;
        size_t len = 0;
        e->out = open_memstream(&text, &len);
        if (!e->out)
            die("out of memory");
        /* a gradient into grad_inputs, in M_forward_backward's loop: only
         * when the caller asks for it */
        bool guarded = st[k].kind == STEP_LOOP && pool_of(e, st[k].node) == POOL_GRAD_INPUT;
        int d = guarded ? body + 1 : body;
        const char *stmt = st[k].kind == STEP_REDUCE ? summand(e, &st[k], d, acc[k], &pre)
                                                     : statement(e, &st[k], d, body, &pre);
        comment(e, body, equation(e, st[k].node));
        if (guarded)
            line(e, body, "if (%s != NULL) {", buf_name(e, st[k].node));
        fputs(pre ? pre : "", e->out);
        line(e, d, "%s", stmt);
        if (guarded)
            line(e, body, "}");
        fclose(e->out);
        e->out = out;
        emit_traced_text(e, st[k].node->line, text, len);
        free(text);
        free(pre);
    }
}

/* The batch loss summed in its loop: its declaration before the loop, its
 * statement in it. */
static void loss_sum_start(Emit *e)
{
    const char *name = e->m->loss ? e->m->loss->name : "loss";
    comment(e, 1, comment_text(e, fmt(e, "the batch loss: the mean of %s over the samples, "
                                      "summed in the loop that computes it", name)));
    line(e, 1, "double acc = 0;");
}

static void loss_sum_add(Emit *e, Node *L, int body)
{
    Ctx c;
    memset(&c, 0, sizeof c);
    c.mode = LOOP_FLAT;
    c.batched = true;
    c.size = 1;
    line(e, body, "acc += %s;", ref_buf(e, &c, L).s);
}

/* A merged loop (Step.joined): steps st[0 .. count) as statements of one
 * loop; with `summed`, forward's loss (st[count]) accumulated in it too. */
static void merged_loop(Emit *e, const Step *st, int count, bool summed)
{
    LoopForm form = st[0].loop.form;
    int body = form == LOOP_NESTED ? 3 : 2;
    if (summed)
        loss_sum_start(e);
    open_loop(e, form, 1, st[0].node, st[0].loop.size);
    merged_statements(e, st, count, body, NULL);
    if (summed)
        loss_sum_add(e, st[count].reduce.x, body);
    close_loop(e, form, 1);
    if (summed)
        line(e, 1, "return (%s)(acc / n);", e->real);
}

void emit_joined_run(Emit *e, const Step *fw, int nfw, const Step *bw, int nbw,
                     const char *loss)
{
    LoopForm form = fw[0].loop.form;
    int body = form == LOOP_NESTED ? 3 : 2;
    /* each batch mean's sum, in the precision and order of its own loop */
    const char **acc = arena_alloc(e->a, sizeof(char *) * (size_t)(nbw + 1));
    for (int k = 0; k < nbw; k++)
        acc[k] = bw[k].kind == STEP_REDUCE
                 ? unique_name(e, fmt(e, "sum_%s", e->cname[bw[k].node->id])) : NULL;
    loss_sum_start(e);
    for (int k = 0; k < nbw; k++)
        if (acc[k])
            line(e, 1, "%s %s = %s;", e->real, acc[k], lit_str(e, 0));
    open_loop(e, form, 1, fw[0].node, fw[0].loop.size);
    e->fb_local = e->p->fb_local;
    e->f = PF_FORWARD;
    merged_statements(e, fw, nfw - 1, body, NULL);
    loss_sum_add(e, fw[nfw - 1].reduce.x, body);
    e->f = PF_BACKWARD;
    comment(e, body, "backward, at the same index, from forward's values while they are at hand");
    merged_statements(e, bw, nbw, body, acc);
    e->fb_local = NULL;
    close_loop(e, form, 1);
    line(e, 1, "const %s %s = (%s)(acc / n);", e->real, loss, e->real);
    /* the batch means, divided as their own steps divide them */
    for (int k = 0; k < nbw; k++) {
        if (!acc[k])
            continue;
        const char *dest = buf_name(e, bw[k].node);
        if (bw[k].factor)
            line(e, 1, "%s[0] = %s * (%s / (%s)n);", dest, lit_str(e, bw[k].factor->value), acc[k],
                 e->real);
        else
            line(e, 1, "%s[0] = %s / (%s)n;", dest, acc[k], e->real);
    }
}

/* y[k, j] = a[k] · b[j], per sample */
static void outer(Emit *e, const Step *st)
{
    Node *y = st->node, *a = y->in[0], *b = y->in[1];
    long rows = y->shape.dim[0], cols = y->shape.dim[1];
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "for (size_t k = 0; k < %ld; k++)", rows);
    line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", cols);
    line(e, d + 2, "%s = %s * %s;", elem(e, y, "s", fmt(e, "k * %ld + j", cols)).s,
         elem(e, a, "s", "k").s, elem(e, b, "s", "j").s);
    line(e, 1, "}");
}

/* ---------------------------------------------------------------- reductions */

/* x's fused expression summed over one sample's elements into acc */
static void sum(Emit *e, const Step *st)
{
    Node *y = st->node, *x = st->reduce.x;
    Ctx c;
    memset(&c, 0, sizeof c);
    c.mode = LOOP_NESTED;
    c.batched = y->batched;
    c.size = st->reduce.size;
    c.depth = 3;
    char *pre = NULL, *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, &pre, &npre, &notes, &nnotes);
    Ex v = render(e, &c, x, false);
    Ex dest = elem(e, y, "s", "0");
    close_ctx(e, &c, &notes, 1);
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "%s acc = %s;", e->real, lit_str(e, 0));
    line(e, d, "for (size_t j = 0; j < %ld; j++) {", c.size);
    fputs(pre ? pre : "", e->out);
    line(e, d + 1, "acc += %s;", v.s);
    line(e, d, "}");
    line(e, d, "%s = acc;", dest.s);
    line(e, 1, "}");
    free(pre);
    free(notes);
}

static void dot(Emit *e, const Step *st)
{
    Node *y = st->node, *a = y->in[0], *b = y->in[1];
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "%s acc = %s;", e->real, lit_str(e, 0));
    line(e, d, "for (size_t j = 0; j < %ld; j++)", st->reduce.size);
    line(e, d + 1, "acc += %s * %s;", elem(e, a, "s", "j").s, elem(e, b, "s", "j").s);
    line(e, d, "%s = acc;", elem(e, y, "s", "0").s);
    line(e, 1, "}");
}

/* max over the sample, then the sum of exp(x - max) into acc */
static void max_and_sum(Emit *e, int d, Node *x, long k, const char *store)
{
    line(e, d, "%s mx = %s;", e->real, elem(e, x, "s", "0").s);
    line(e, d, "for (size_t j = 1; j < %ld; j++)", k);
    line(e, d + 1, "mx = %s > mx ? %s : mx;", elem(e, x, "s", "j").s, elem(e, x, "s", "j").s);
    line(e, d, "%s acc = %s;", e->real, lit_str(e, 0));
    line(e, d, "for (size_t j = 0; j < %ld; j++) {", k);
    if (store) {
        line(e, d + 1, "%s = %s(%s - mx);", store, fn(e, op_info[OP_EXP].c_fn),
             elem(e, x, "s", "j").s);
        line(e, d + 1, "acc += %s;", store);
    } else {
        line(e, d + 1, "acc += %s(%s - mx);", fn(e, op_info[OP_EXP].c_fn), elem(e, x, "s", "j").s);
    }
    line(e, d, "}");
}

static void softmax_family(Emit *e, const Step *st)
{
    Node *y = st->node, *x = st->reduce.x;
    long k = st->reduce.size;
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    switch (st->reduce.form) {
    case REDUCE_LOGSUMEXP:   /* max + log sum exp(x - max) */
        max_and_sum(e, d, x, k, NULL);
        line(e, d, "%s = mx + %s(acc);", elem(e, y, "s", "0").s, fn(e, op_info[OP_LOG].c_fn));
        break;
    case REDUCE_SOFTMAX:     /* exp(x - max) / sum exp(x - max) */
        max_and_sum(e, d, x, k, elem(e, y, "s", "j").s);
        line(e, d, "for (size_t j = 0; j < %ld; j++)", k);
        line(e, d + 1, "%s /= acc;", elem(e, y, "s", "j").s);
        break;
    case REDUCE_LOG_SOFTMAX: /* x - max - log sum exp(x - max) */
        max_and_sum(e, d, x, k, NULL);
        line(e, d, "const %s lacc = %s(acc);", e->real, fn(e, op_info[OP_LOG].c_fn));
        line(e, d, "for (size_t j = 0; j < %ld; j++)", k);
        line(e, d + 1, "%s = %s - mx - lacc;", elem(e, y, "s", "j").s, elem(e, x, "s", "j").s);
        break;
    default:
        die("not a softmax");
    }
    line(e, 1, "}");
}

/* the mean over the samples of x's fused expression */
static void batch_mean(Emit *e, const Step *st)
{
    Node *y = st->node, *x = st->reduce.x;
    long size = st->reduce.size;
    Ctx c;
    memset(&c, 0, sizeof c);
    c.mode = LOOP_NESTED;
    c.batched = true;
    c.size = size;
    c.depth = 3;
    char *pre = NULL, *notes = NULL;
    size_t npre = 0, nnotes = 0;
    open_ctx(&c, &pre, &npre, &notes, &nnotes);
    Ex v = render(e, &c, x, false);
    const char *dest = buf_name(e, y);
    close_ctx(e, &c, &notes, 1);
    comment(e, 1, equation(e, y));
    if (size == 1) {
        line(e, 1, "{");
        line(e, 2, "%s acc = %s;", e->real, lit_str(e, 0));
        line(e, 2, "for (size_t s = 0; s < (size_t)n; s++) {");
        fputs(pre ? pre : "", e->out);
        line(e, 3, "acc += %s;", v.s);
        line(e, 2, "}");
        if (st->factor)
            line(e, 2, "%s[0] = %s * (acc / (%s)n);", dest, lit_str(e, st->factor->value), e->real);
        else
            line(e, 2, "%s[0] = acc / (%s)n;", dest, e->real);
        line(e, 1, "}");
    } else {
        line(e, 1, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, 2, "%s[j] = %s;", dest, lit_str(e, 0));
        line(e, 1, "for (size_t s = 0; s < (size_t)n; s++) {");
        line(e, 2, "for (size_t j = 0; j < %ld; j++) {", size);
        fputs(pre ? pre : "", e->out);
        line(e, 3, "%s[j] += %s;", dest, v.s);
        line(e, 2, "}");
        line(e, 1, "}");
        line(e, 1, "for (size_t j = 0; j < %ld; j++)", size);
        if (st->factor)
            line(e, 2, "%s[j] = %s * (%s[j] / (%s)n);", dest, lit_str(e, st->factor->value), dest,
                 e->real);
        else
            line(e, 2, "%s[j] /= (%s)n;", dest, e->real);
    }
    free(pre);
    free(notes);
}

/* forward's result */
static void loss(Emit *e, const Step *st)
{
    Node *L = st->reduce.x;
    const char *name = e->m->loss ? e->m->loss->name : "loss";
    if (!L->batched) {
        comment(e, 1, comment_text(e, fmt(e, "the loss %s, shared by every sample", name)));
        line(e, 1, "return %s;", elem(e, L, "0", "0").s);
        return;
    }
    comment(e, 1, comment_text(e, fmt(e, "the batch loss: the mean of %s over the samples", name)));
    line(e, 1, "double acc = 0;");
    line(e, 1, "for (size_t s = 0; s < (size_t)n; s++)");
    line(e, 2, "acc += %s;", elem(e, L, "s", "0").s);
    line(e, 1, "return (%s)(acc / n);", e->real);
}

static void reduce(Emit *e, const Step *st)
{
    switch (st->reduce.form) {
    case REDUCE_SUM: sum(e, st); break;
    case REDUCE_DOT: dot(e, st); break;
    case REDUCE_BATCH_MEAN: batch_mean(e, st); break;
    case REDUCE_LOSS: loss(e, st); break;
    default: softmax_family(e, st); break;
    }
}

/* ---------------------------------------------------------------- copies */

static void transpose(Emit *e, const Step *st)
{
    Node *y = st->node, *x = st->copy.src;
    long rows = y->shape.dim[0], cols = y->shape.dim[1];
    comment(e, 1, equation(e, y));
    int d = open_samples(e, y->batched);
    line(e, d, "for (size_t k = 0; k < %ld; k++)", rows);
    line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", cols);
    line(e, d + 2, "%s = %s;", elem(e, y, "s", fmt(e, "k * %ld + j", cols)).s,
         elem(e, x, "s", fmt(e, "j * %ld + k", rows)).s);
    line(e, 1, "}");
}

/* dst = base + offset, base an expression of type real * */
static void copy_body(Emit *e, int d, const CopyStep *c, const char *base)
{
    long size = c->size, offset = c->offset;
    Node *src = c->src;
    const char *count = c->batched_dst ? batch_count(e, size) : fmt(e, "%ld", size);
    const char *dst = offset ? fmt(e, "%s + %ld", base, offset) : base;
    const char *at_i = offset ? fmt(e, "%s[%ld + i]", base, offset) : fmt(e, "%s[i]", base);
    const char *div = c->per_n ? fmt(e, " / (%s)n", e->real) : "";
    long ssize = src ? shape_size(src->shape) : 0;
    switch (c->form) {
    case COPY_ZERO:
        line(e, d, "memset(%s, 0, %s * sizeof(%s));", dst, count, e->real);
        break;
    case COPY_FILL:
        line(e, d, "for (size_t i = 0; i < %s; i++)", count);
        line(e, d + 1, "%s = %s%s;", at_i, lit_str(e, src->value), div);
        break;
    case COPY_MEMCPY:
        line(e, d, "memcpy(%s, %s, %s * sizeof(%s));", dst, buf_name(e, src), count, e->real);
        break;
    case COPY_ROWS:
        line(e, d, "for (size_t s = 0; s < (size_t)n; s++)");
        line(e, d + 1, "memcpy(%s + s * %ld, %s, %ld * sizeof(%s));", dst, size, buf_name(e, src),
             size, e->real);
        break;
    case COPY_EACH:
        line(e, d, "for (size_t i = 0; i < %s; i++)", count);
        line(e, d + 1, "%s = %s[i]%s;", at_i, buf_name(e, src), div);
        break;
    case COPY_BROADCAST:
        /* a shared value, or a scalar broadcast, to every row */
        line(e, d, "for (size_t s = 0; s < (size_t)n; s++)");
        line(e, d + 1, "for (size_t j = 0; j < %ld; j++)", size);
        line(e, d + 2, "%s[%ss * %ld + j] = %s%s;", base, offset ? fmt(e, "%ld + ", offset) : "",
             size, elem(e, src, "s", ssize == 1 ? "0" : "j").s, div);
        break;
    case COPY_SHARED:
        line(e, d, "for (size_t i = 0; i < %ld; i++)", size);
        line(e, d + 1, "%s = %s%s;", at_i, elem(e, src, "0", ssize == 1 ? "0" : "i").s, div);
        break;
    case COPY_TRANSPOSE:
        die("a transpose as a copy out");
    }
}

/* A function's result to the caller's arrays, under a comment naming it. */
static void copy_out(Emit *e, const Step *st)
{
    const CopyStep *c = &st->copy;
    const Model *m = e->m;
    const char *loss = m->loss ? m->loss->name : "L";
    const char *what;
    switch (c->dest) {
    case DEST_GRAD:
        what = comment_text(e, fmt(e, "d%s/d%s", loss, m->params[c->index]->name));
        if (!c->src)
            comment(e, 1, fmt(e, "%s: frozen, no gradient", what));
        else
            comment(e, 1, c->form == COPY_ZERO ? fmt(e, "%s = 0", what) : what);
        if (e->fused) {   /* M_step: into the gradient pool, at c->offset */
            CopyStep at = *c;
            at.offset = 0;
            const char *place = fused_place(e, c->offset);   /* `wsr + k`: indexed whole */
            copy_body(e, 1, &at, strchr(place, ' ') ? fmt(e, "(%s)", place) : place);
        } else {
            copy_body(e, 1, c, "grad");
        }
        break;
    case DEST_GRAD_INPUT:
        comment(e, 1, comment_text(e, fmt(e, "d%s/d%s, row s scaled by 1/n (the batch mean)", loss,
                                          m->inputs[c->index]->name)));
        line(e, 1, "if (grad_inputs != NULL && grad_inputs[%d] != NULL) {", c->index);
        copy_body(e, 2, c, fmt(e, "grad_inputs[%d]", c->index));
        line(e, 1, "}");
        break;
    case DEST_OUTPUT:
        comment(e, 1, comment_text(e, fmt(e, "output %s", m->outputs[c->index]->name)));
        copy_body(e, 1, c, fmt(e, "outputs[%d]", c->index));
        break;
    case DEST_NODE:
        transpose(e, st);
        break;
    }
}

/* ---------------------------------------------------------------- entry */

void emit_run(Emit *e, const Step *st, int count)
{
    if (count == 1) {
        emit_traced_step(e, st);
        return;
    }
    bool summed = st[count - 1].kind == STEP_REDUCE;
    merged_loop(e, st, summed ? count - 1 : count, summed);
}

void emit_step(Emit *e, const Step *st)
{
    switch (st->kind) {
    case STEP_GEMM: gemm(e, st); break;
    case STEP_KERNEL: kernel(e, st); break;
    case STEP_LOOP:
        if (st->loop.form == LOOP_OUTER)
            outer(e, st);
        else
            loop(e, st);
        break;
    case STEP_REDUCE: reduce(e, st); break;
    case STEP_COPY: copy_out(e, st); break;
    case STEP_UPDATE: emit_update(e, st); break;
    }
}
