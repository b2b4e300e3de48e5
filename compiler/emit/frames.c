/* frames.c — the generated functions around their steps: forward,
 * backward and predict (signature, declarations of what the body names,
 * prologue, epilogue), and init with its INIT calls.
 */
#include "emit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- functions */

/* The parameters every function of f takes, after its name. theta, ws
 * and grad are restrict: the caller's buffers do not overlap (results
 * already depended on it), and gcc -O2 may then vectorise a loop with
 * constant bounds that reads one and writes another (the 4-16-3 backward
 * at batch 1: 0.108 -> 0.091 us). The header's prototypes, the contract's,
 * have the same types: restrict on a parameter is not part of them. */
static const char *fn_params(Emit *e, PlanFn f)
{
    const char *r = e->real;
    const char *common = fmt(e, "const %s *restrict theta, const %s *const inputs[], int n, "
                                "void *restrict ws", r, r);
    switch (f) {
    case PF_FORWARD:
        return common;
    case PF_BACKWARD:
        return fmt(e, "%s,\n    %s *restrict grad, %s *const grad_inputs[]", common, r, r);
    default:
        return fmt(e, "%s,\n    %s *const outputs[]", common, r);
    }
}

/* The arguments a public function passes on to its groups' functions. */
static const char *fn_args(PlanFn f)
{
    switch (f) {
    case PF_FORWARD: return "theta, inputs, n, ws";
    case PF_BACKWARD: return "theta, inputs, n, ws, grad, grad_inputs";
    default: return "theta, inputs, n, ws, outputs";
    }
}

/* Parameters or arguments without n, for a function's copy with n = 1. */
static const char *without_n(Emit *e, const char *list)
{
    const char *at = strstr(list, " int n, ");
    size_t skip = 7;
    if (!at) {
        at = strstr(list, " n, ");
        skip = 3;
    }
    if (!at)
        die("a parameter list without n");
    return fmt(e, "%.*s%s", (int)(at - list), list, at + skip);
}

static const char *const fn_suffix[PF__COUNT] = {"forward", "backward", "predict",
                                                 "outputs_after_forward"};

static const char *fn_signature(Emit *e, PlanFn f)
{
    return fmt(e, "%s %s_%s(%s)", f == PF_FORWARD ? e->real : "void", e->M, fn_suffix[f],
               fn_params(e, f));
}

long param_offset(const Model *m, int index)
{
    return m->param_offsets[index];
}

static void declare(Emit *e, FILE *out, Node *n)
{
    const char *r = e->real, *name = e->cname[n->id];
    if (n->op == OP_INPUT) {
        fprintf(out, "    const %s *const %s = inputs[%d];\n", r, name, n->index);
        return;
    }
    if (n->op == OP_PARAM) {
        long off = param_offset(e->m, n->index);
        fprintf(out, "    const %s *const %s = theta%s;\n", r, name,
                off ? fmt(e, " + %ld", off) : "");
        return;
    }
    const NodeInfo *in = info(e, n);
    Buffer b = in->mode[e->f] == NODE_BUFFER ? in->buf[e->f] : in->buf[PF_FORWARD];
    const char *where = "";
    switch (b.pool) {
    case POOL_BATCHED:
        where = b.offset ? fmt(e, "wsr + %ld * (size_t)n", b.offset) : "wsr";
        break;
    case POOL_SHARED:
        where = e->p->ws_batched ? fmt(e, "wsr + %ld * (size_t)n", e->p->ws_batched) : "wsr";
        if (b.offset)
            where = fmt(e, "%s + %ld", where, b.offset);
        break;
    case POOL_GRAD:
        if (e->fused)   /* M_step: its place in the gradient pool */
            where = fused_place(e, e->p->fused_grad[n->id]);
        else
            where = b.offset ? fmt(e, "grad + %ld", b.offset) : "grad";
        break;
    case POOL_OUTPUT:
        where = fmt(e, "outputs[%ld]", b.offset);
        break;
    case POOL_GRAD_INPUT:
        where = fmt(e, "grad_inputs != NULL ? grad_inputs[%ld] : NULL", b.offset);
        break;
    case POOL_LOCAL:
        die("a local of a loop declared as a buffer");
        break;
    case POOL_NONE:
        die("a buffer without a place");
    }
    fprintf(out, "    %s *const %s = %s;\n", r, name, where);
}

/* Starts a function body in memory: what its steps name is noted in
 * e->used as they are written. */
static FILE *open_body(Emit *e, char **body, size_t *nbody)
{
    e->ws_direct = false;
    for (int k = 0; k < e->nused; k++)
        e->used[e->used_ids[k]] = false;
    e->nused = 0;
    e->out = open_memstream(body, nbody);
    if (!e->out)
        die("out of memory");
    return e->out;
}

/* Declaration order: inputs, then parameters, each in declaration order,
 * then computed values in graph order. */
static int declaration_rank(const Node *n)
{
    return n->op == OP_INPUT ? 0 : n->op == OP_PARAM ? 1 : 2;
}

static const Graph *sorting_graph;

static int by_declaration_order(const void *pa, const void *pb)
{
    const Node *a = sorting_graph->nodes[*(const int *)pa];
    const Node *b = sorting_graph->nodes[*(const int *)pb];
    int ra = declaration_rank(a), rb = declaration_rank(b);
    if (ra != rb)
        return ra - rb;
    long ka = ra < 2 ? a->index : a->id, kb = rb < 2 ? b->index : b->id;
    return (ka > kb) - (ka < kb);
}

/* The workspace's reals: after --check-finite's record, if any. */
static const char *ws_reals(Emit *e)
{
    return e->found ? fmt(e, "(%s *)((char *)ws + BP_NONFINITE_BYTES)", e->real)
                    : fmt(e, "(%s *)ws", e->real);
}

/* Writes a whole C function of f: its comment and signature, `lead` (lines
 * before everything else, or NULL), the declarations of what its body
 * (written by open_body's stream) names, and the body. */
static void close_frame(Emit *e, FILE *out, PlanFn f, const char *doc, const char *signature,
                        const char *lead, char *body, size_t nbody)
{
    fprintf(out, "%s\n%s\n{\n%s", doc, signature, lead ? lead : "");
    sorting_graph = e->g;
    qsort(e->used_ids, (size_t)e->nused, sizeof *e->used_ids, by_declaration_order);
    bool ws_used = false;
    for (int k = 0; k < e->nused; k++) {
        Node *n = e->g->nodes[e->used_ids[k]];
        if (is_leaf(n))
            continue;
        const NodeInfo *in = info(e, n);
        Pool pool = in->mode[f] == NODE_BUFFER ? in->buf[f].pool : in->buf[PF_FORWARD].pool;
        if (pool == POOL_BATCHED || pool == POOL_SHARED ||
            (e->fused && pool == POOL_GRAD && !e->pool_param))
            ws_used = true;
    }
    if (e->found)
        fprintf(out, "    bp_nonfinite *const %s = (bp_nonfinite *)ws;\n", e->found);
    if (ws_used || e->ws_direct)   /* the record comes first */
        fprintf(out, "    %s *const wsr = %s;\n", e->real, ws_reals(e));
    for (int k = 0; k < e->nused; k++)
        declare(e, out, e->g->nodes[e->used_ids[k]]);
    fputs("    (void)theta;\n    (void)inputs;\n    (void)n;\n    (void)ws;\n", out);
    if (e->pool_param)
        fprintf(out, "    (void)%s;\n", e->pool_name);
    if (e->found)
        fprintf(out, "    (void)%s;\n", e->found);
    if (f == PF_BACKWARD && e->fused)
        fprintf(out, "    (void)%s;\n", e->opt_name);
    else if (f == PF_BACKWARD)
        fputs("    (void)grad;\n    (void)grad_inputs;\n", out);
    if (f == PF_PREDICT || f == PF_OUTPUTS)
        fputs("    (void)outputs;\n", out);
    fputs("\n", out);
    fwrite(body, 1, nbody, out);
    fputs("}\n\n", out);
    free(body);
}

/* A function that lowering specialised for one sample (Plan.one_sample):
 * the public function NAME, which calls NAME_one when n is 1, then its
 * body again as the static function NAME_one, with n the constant 1,
 * which lets the C compiler unroll and fold every loop over the batch
 * (the 4-16-3 step at batch 1: 0.25 -> 0.18 us for forward and backward).
 * `params` and `args` are NAME's, with n; `one_params` and `one_args`
 * NAME_one's and its call's (NULL: the same without n); `pre`, lines the
 * public function starts with, before that call (or NULL). */
static void close_frames_one(Emit *e, FILE *out, PlanFn f, const char *doc, const char *ret,
                             const char *name, const char *params, const char *args,
                             const char *one_params, const char *one_args, const char *pre,
                             char *body, size_t nbody)
{
    char *copy = malloc(nbody + 1);
    if (!copy)
        arena_out_of_memory();
    memcpy(copy, body, nbody + 1);
    const char *one = fmt(e, "%s_one", name);
    const char *one_signature = fmt(e, "static %s %s(%s)", ret, one,
                                    one_params ? one_params : without_n(e, params));
    fprintf(out, "%s;\n\n", one_signature);
    const char *call = fmt(e, "%s(%s)", one, one_args ? one_args : without_n(e, args));
    const char *lead = strcmp(ret, "void") != 0
                       ? fmt(e, "    if (n == 1)   /* the same steps, n a constant: below */\n"
                                "        return %s;\n", call)
                       : fmt(e, "    if (n == 1) {   /* the same steps, n a constant: below */\n"
                                "        %s;\n        return;\n    }\n", call);
    close_frame(e, out, f, doc, fmt(e, "%s %s(%s)", ret, name, params),
                pre ? fmt(e, "%s%s", pre, lead) : lead, body, nbody);
    close_frame(e, out, f,
                fmt(e, "/* %s for one sample: the same steps, with n the constant 1. */", name),
                one_signature, "    const int n = 1;\n", copy, nbody);
}

/* The name of group k's static function: the public function's, then the
 * value the group computes first (`M_forward_h3`), else its number. Value
 * names are unique and none starts with the model's prefix, so only a
 * numbered name can meet another (`names` holds the earlier groups'), or
 * a value named `any` the untyped wrapper M_forward_any (abi.c), or one
 * whose name starts with `backward` M_forward_backward's functions. */
static const char *group_fn_name(Emit *e, PlanFn f, int k, const char *const *names)
{
    const StepGroup *g = &e->p->groups[f][k];
    const char *title = g->title ? e->cname[g->title->id] : NULL;
    /* M_forward_any, M_forward_backward and its parts are taken */
    bool taken = title && (!strcmp(title, "any") ||
                           (f == PF_FORWARD && !strncmp(title, "backward", 8)));
    const char *what = title && !taken ? title : fmt(e, "part%d", k + 1);
    const char *name = fmt(e, "%s_%s_%s", e->M, fn_suffix[f], what);
    for (int j = 0; j < k; j++)
        if (names[j] && !strcmp(names[j], name))
            return fmt(e, "%s_%d", name, k + 1);
    return name;
}

/* What a group computes, for its function's comment: the named values it
 * starts and ends with. */
static const char *group_doc(Emit *e, PlanFn f, const StepGroup *g)
{
    const Node *last = NULL;
    for (int k = g->first; k < g->first + g->count; k++) {
        const Node *y = e->p->steps[f][k].node;
        if (y && (y->name || y->label))
            last = y;
    }
    const char *range = fmt(e, "%s, steps %d to %d of %d", fn_suffix[f], g->first + 1,
                            g->first + g->count, e->p->nsteps[f]);
    if (g->title && last && last != g->title)
        range = fmt(e, "%s: %s to %s", range, e->cname[g->title->id], e->cname[last->id]);
    else if (g->title)
        range = fmt(e, "%s: %s", range, e->cname[g->title->id]);
    else
        range = fmt(e, "%s: results to the caller", range);
    return fmt(e, "/* %s. */", comment_text(e, range));
}

/* Steps first .. first + count - 1 of f, each followed by its finite
 * check where lowering asked for one (--check-finite). */
static void emit_steps(Emit *e, PlanFn f, int first, int count)
{
    const Step *steps = e->p->steps[f];
    for (int s = first; s < first + count;) {
        /* a merged loop: the steps joined to the next, and that one */
        int run = 1;
        while (s + run < first + count && steps[s + run - 1].joined)
            run++;
        emit_run(e, &steps[s], run);
        for (int k = s; k < s + run; k++)
            if (steps[k].check_finite)
                check_step(e, steps[k].node);
        s += run;
    }
}

void emit_function(Emit *e, FILE *out, PlanFn f, const char *doc)
{
    const Plan *p = e->p;
    e->f = f;
    /* a split function: each group not in the caller is a static
     * function of its own first, called in order by the public one;
     * GNU compilers are told not to inline them back into one */
    const char **names = arena_alloc(e->a, sizeof(char *) * (size_t)(p->ngroups[f] + 1));
    for (int k = 0; k < p->ngroups[f]; k++) {
        const StepGroup *g = &p->groups[f][k];
        if (g->in_caller)
            continue;
        names[k] = group_fn_name(e, f, k, names);
        char *body = NULL;
        size_t nbody = 0;
        open_body(e, &body, &nbody);
        emit_steps(e, f, g->first, g->count);
        fclose(e->out);
        const char *signature = fmt(e, "static %s_NOINLINE void %s(%s)", e->M, names[k],
                                    fn_params(e, f));
        close_frame(e, out, f, group_doc(e, f, g), signature, NULL, body, nbody);
    }
    e->group_names[f] = names;
    char *body = NULL;
    size_t nbody = 0;
    open_body(e, &body, &nbody);
    if (e->found && !after_forward(f))
        line(e, 1, "bp_nonfinite_clear(%s);", e->found);
    for (int k = 0; k < p->ngroups[f]; k++) {
        const StepGroup *g = &p->groups[f][k];
        if (!g->in_caller) {
            line(e, 1, "%s(%s);", names[k], fn_args(f));
            continue;
        }
        emit_steps(e, f, g->first, g->count);
    }
    fclose(e->out);
    if (p->one_sample[f])
        close_frames_one(e, out, f, doc, f == PF_FORWARD ? e->real : "void",
                         fmt(e, "%s_%s", e->M, fn_suffix[f]), fn_params(e, f), fn_args(f), NULL,
                         NULL, NULL, body, nbody);
    else
        close_frame(e, out, f, doc, fn_signature(e, f), NULL, body, nbody);
}

/* ---------------------------------------------------------------- M_forward_backward */

/* Steps [from, to) of function f as its groups run them: a group wholly
 * inside as a call of its static function, the rest as steps. Lowering
 * cuts no merged loop at `from` or `to`. */
static void emit_step_range(Emit *e, PlanFn f, int from, int to)
{
    for (int k = 0; k < e->p->ngroups[f]; k++) {
        const StepGroup *g = &e->p->groups[f][k];
        int first = g->first > from ? g->first : from;
        int end = g->first + g->count < to ? g->first + g->count : to;
        if (first >= end)
            continue;
        if (!g->in_caller && first == g->first && end == g->first + g->count)
            line(e, 1, "%s(%s);", e->group_names[f][k], fn_args(f));
        else
            emit_steps(e, f, first, end - first);
    }
}

/* A static function of M_forward_backward running steps [from, to) of f. */
static const char *emit_part(Emit *e, FILE *out, PlanFn f, int from, int to, const char *what)
{
    const char *name = fmt(e, "%s_forward_backward_%s", e->M, what);
    e->f = f;
    char *body = NULL;
    size_t nbody = 0;
    open_body(e, &body, &nbody);
    emit_step_range(e, f, from, to);
    fclose(e->out);
    const char *doc = fmt(e, "/* %s. */", comment_text(e, fmt(e, "M_forward_backward: %s's steps "
                                                               "%d to %d", fn_suffix[f], from + 1,
                                                               to)));
    close_frame(e, out, f, doc, fmt(e, "static void %s(%s)", name, fn_params(e, f)), NULL,
                body, nbody);
    return name;
}

void emit_forward_backward(Emit *e, FILE *out)
{
    const Plan *p = e->p;
    const char *doc =
        "/* The batch loss, as forward returns it, and every gradient, as backward\n"
        " * writes them, in one call.%s */";
    const char *signature = fmt(e, "%s %s_forward_backward(%s)", e->real, e->M,
                                fn_params(e, PF_BACKWARD));
    char *body = NULL;
    size_t nbody = 0;
    if (!p->fb_joined) {
        e->f = PF_BACKWARD;
        open_body(e, &body, &nbody);
        line(e, 1, "const %s loss = %s_forward(theta, inputs, n, ws);", e->real, e->M);
        line(e, 1, "%s_backward(theta, inputs, n, ws, grad, grad_inputs);", e->M);
        line(e, 1, "return loss;");
        fclose(e->out);
        close_frame(e, out, PF_BACKWARD, fmt(e, doc, ""), signature, NULL, body, nbody);
        return;
    }
    int nf = p->nsteps[PF_FORWARD], nb = p->nsteps[PF_BACKWARD], k = p->fb_joined;
    const char *head = p->fb_first > 0 ? emit_part(e, out, PF_FORWARD, 0, p->fb_first, "head")
                                       : NULL;
    const char *tail = k < nb ? emit_part(e, out, PF_BACKWARD, k, nb, "tail") : NULL;
    const Step *bw = p->steps[PF_BACKWARD];
    bool scaled = false;
    for (int t = 0; t < k; t++)
        scaled = scaled || info(e, bw[t].node)->buf[PF_BACKWARD].pool == POOL_GRAD_INPUT;
    e->f = PF_BACKWARD;
    open_body(e, &body, &nbody);
    const char *lead = NULL;
    if (p->one_sample[PF_FORWARD] && p->one_sample[PF_BACKWARD])
        lead = fmt(e, "    if (n == 1) {   /* the copies of forward and backward for one sample */\n"
                      "        const %s %s = %s_forward_one(%s);\n"
                      "        %s_backward_one(%s);\n"
                      "        return %s;\n"
                      "    }\n", e->real, e->loss_name, e->M, without_n(e, fn_args(PF_FORWARD)),
                   e->M, without_n(e, fn_args(PF_BACKWARD)), e->loss_name);
    if (head)
        line(e, 1, "%s(%s);", head, fn_args(PF_FORWARD));
    if (scaled) {
        /* a local: in a loop that may call a math function's error path,
         * gcc -O2 does not hoist the division itself */
        e->inv_n = e->inv_n_name;
        line(e, 1, "const %s %s = %s / (%s)n;", e->real, e->inv_n, lit_str(e, 1), e->real);
    }
    emit_joined_run(e, &p->steps[PF_FORWARD][p->fb_first], nf - p->fb_first, bw, k, e->loss_name);
    e->inv_n = NULL;
    if (tail)
        line(e, 1, "%s(%s);", tail, fn_args(PF_BACKWARD));
    line(e, 1, "return %s;", e->loss_name);
    fclose(e->out);
    close_frame(e, out, PF_BACKWARD,
                fmt(e, doc, "\n * Forward's last loop runs backward's first steps too: each value\n"
                            " * they read is still in a register."),
                signature, lead, body, nbody);
}

/* ---------------------------------------------------------------- init */

void emit_init(Emit *e, FILE *out)
{
    Model *m = e->m;
    const char *r = e->real;
    int rs = e->dbl ? 8 : 4;
    fprintf(out, "/* Applies every parameter's INIT, in declaration order, with one generator\n"
                 " * seeded by `seed`. */\n");
    fprintf(out, "void %s_init(%s *theta, unsigned long long seed)\n{\n", e->M, r);
    fputs("    bp_rng rng;\n    bp_rng_seed(&rng, seed);\n    (void)theta;\n", out);
    long off = 0;
    for (int i = 0; i < m->nparams; i++) {
        Symbol *s = m->params[i];
        Init init = s->stmt->init;
        long size = shape_size(s->shape);
        /* fan-out d1 and fan-in d2: [d1, d2] as W in W·x; a vector or scalar
         * counts its size for both; rank 3 and 4 count d1·r and d2·r, r the
         * product of the other dimensions (as PyTorch counts a kernel) */
        double r = s->shape.rank > 2 ? (double)size / s->shape.dim[0] / s->shape.dim[1] : 1;
        double d1 = s->shape.rank >= 2 ? s->shape.dim[0] * r : (double)size;
        double d2 = s->shape.rank >= 2 ? s->shape.dim[1] * r : (double)size;
        const char *dst = off ? fmt(e, "theta + %ld", off) : "theta";
        const char *what = NULL, *call = NULL;
        switch (init.kind) {
        case INIT_DEFAULT:
            if (s->shape.rank >= 2) {
                what = fmt(e, "default for rank %d: normal(0, 1/sqrt(%g))", s->shape.rank, d2);
                call = fmt(e, "bp_fill_normal(&rng, %s, %d, %ld, 0.0, %s)", dst, rs, size,
                           dlit(e, 1 / sqrt(d2)));
            } else {
                what = "default: zeros";
                call = fmt(e, "bp_fill_value(%s, %d, %ld, 0.0)", dst, rs, size);
            }
            break;
        case INIT_ZEROS:
            what = "zeros";
            call = fmt(e, "bp_fill_value(%s, %d, %ld, 0.0)", dst, rs, size);
            break;
        case INIT_ONES:
            what = "ones";
            call = fmt(e, "bp_fill_value(%s, %d, %ld, 1.0)", dst, rs, size);
            break;
        case INIT_VALUE:
            what = fmt(e, "%.17g", init.a);
            call = fmt(e, "bp_fill_value(%s, %d, %ld, %s)", dst, rs, size, dlit(e, init.a));
            break;
        case INIT_NORMAL:
            what = fmt(e, "normal(%.17g, %.17g)", init.a, init.b);
            call = fmt(e, "bp_fill_normal(&rng, %s, %d, %ld, %s, %s)", dst, rs, size,
                       dlit(e, init.a), dlit(e, init.b));
            break;
        case INIT_UNIFORM:
            what = fmt(e, "uniform(%.17g, %.17g)", init.a, init.b);
            call = fmt(e, "bp_fill_uniform(&rng, %s, %d, %ld, %s, %s)", dst, rs, size,
                       dlit(e, init.a), dlit(e, init.b));
            break;
        case INIT_XAVIER: {
            double lim = sqrt(6.0 / (d1 + d2));
            what = fmt(e, "xavier: uniform(-sqrt(6/(%g+%g)), +sqrt(6/(%g+%g)))", d1, d2, d1, d2);
            call = fmt(e, "bp_fill_uniform(&rng, %s, %d, %ld, %s, %s)", dst, rs, size,
                       dlit(e, -lim), dlit(e, lim));
            break;
        }
        case INIT_HE:
            what = fmt(e, "he: normal(0, sqrt(2/%g))", d2);
            call = fmt(e, "bp_fill_normal(&rng, %s, %d, %ld, 0.0, %s)", dst, rs, size,
                       dlit(e, sqrt(2.0 / d2)));
            break;
        }
        fprintf(out, "    /* %s */\n",
                comment_text(e, fmt(e, "%s%s: %s", source_place(e, s->loc.line), s->name, what)));
        const char *directive = source_directive(e, s->loc.line);
        fprintf(out, "%s    %s;\n%s", directive ? directive : "", call, directive ? BACK_TO_C : "");
        off += size;
    }
    fputs("}\n\n", out);
}

/* ---------------------------------------------------------------- M_step */

/* Where M_step's gradient pool starts, the workspace's reals being
 * `reals`: after the workspace's two pools. */
static const char *pool_start(Emit *e, const char *reals)
{
    const Plan *p = e->p;
    const char *at = p->ws_batched ? fmt(e, "%s + %ld * (size_t)n", reals, p->ws_batched) : reals;
    return p->ws_shared ? fmt(e, "%s + %ld", at, p->ws_shared) : at;
}

/* Reals `offset` into M_step's gradient pool. */
const char *fused_place(Emit *e, long offset)
{
    if (e->pool_param)
        return offset ? fmt(e, "%s + %ld", e->pool_name, offset) : e->pool_name;
    e->ws_direct = true;
    const char *at = pool_start(e, "wsr");
    return offset ? fmt(e, "%s + %ld", at, offset) : at;
}

/* bp_optim_update(opt, theta, dP, M_P_OFFSET, M_P_SIZE): the gradient by
 * its name where backward computes it into a buffer of its own. */
void emit_update(Emit *e, const Step *st)
{
    const UpdateStep *u = &st->update;
    const Model *m = e->m;
    const char *P = m->params[u->index]->name;
    Node *d = e->g->grad_params[u->index];
    const NodeInfo *in = d ? info(e, d) : NULL;
    const char *grad = in && in->mode[PF_BACKWARD] == NODE_BUFFER &&
                       in->buf[PF_BACKWARD].pool == POOL_GRAD &&
                       in->buf[PF_BACKWARD].offset == param_offset(m, u->index)
                       ? buf_name(e, d)
                       : fused_place(e, u->offset);
    const char *loss = m->loss ? m->loss->name : "L";
    if (u->gemm) {
        /* the gradient's gemm a block of rows at a time, each applied at once */
        const GemmStep *g = &u->gemm->gemm;
        long rows = g->m.count, cols = g->n.count, tile = u->tile_rows;
        comment(e, 1, equation(e, u->gemm->node));
        comment(e, 1, comment_text(e, fmt(e, "%ld rows at a time, each block applied to %s at "
                                          "once: nothing reads %s or d%s/d%s after this",
                                          tile, P, P, loss, P)));
        line(e, 1, "for (size_t k = 0; k < %ld; k += %ld) {", rows, tile);
        bool whole = rows % tile == 0;   /* blocks of `tile` rows only */
        const char *count = whole ? fmt(e, "%ld", tile)
                            : fmt(e, "(int)(%ld - k < %ld ? %ld - k : %ld)", rows, tile, rows, tile);
        gemm_rows(e, 2, u->gemm, count, grad);
        line(e, 2, "bp_optim_update(%s, theta, %s, %s_%s_OFFSET + k * %ld, %s);", e->opt_name,
             grad, e->M, P, cols, whole ? fmt(e, "%ld", tile * cols)
                                        : fmt(e, "(size_t)%s * %ld", count, cols));
        line(e, 1, "}");
        return;
    }
    if (u->count == 1) {
        comment(e, 1, comment_text(e, fmt(e, "%s is final and read no more: update it from d%s/d%s",
                                          P, loss, P)));
        line(e, 1, "bp_optim_update(%s, theta, %s, %s_%s_OFFSET, %s_%s_SIZE);", e->opt_name, grad,
             e->M, P, e->M, P);
        return;
    }
    /* parameters next to each other in theta, their gradients likewise in
     * the pool: one call */
    const char *names = P, *sizes = fmt(e, "%s_%s_SIZE", e->M, P);
    for (int k = 1; k < u->count; k++) {
        const char *Q = m->params[u->index + k]->name;
        names = fmt(e, "%s%s %s", names, k + 1 < u->count ? "," : " and", Q);
        sizes = fmt(e, "%s + %s_%s_SIZE", sizes, e->M, Q);
    }
    comment(e, 1, fmt(e, "%s\tfrom their gradients, which lie as the parameters do, in one call",
                      comment_text(e, fmt(e, "%s are final and read no more: update them", names))));
    line(e, 1, "bp_optim_update(%s, theta, %s, %s_%s_OFFSET,", e->opt_name, grad, e->M, P);
    line(e, 2, "%s);", sizes);
}

/* Group k's static function: M_step_ and the value it computes first, as
 * group_fn_name names backward's (`workspace_size` would meet
 * M_step_workspace_size). */
static const char *fused_group_name(Emit *e, int k, const char *const *names)
{
    const StepGroup *g = &e->p->fused_groups[k];
    const char *what = g->title && strcmp(e->cname[g->title->id], "workspace_size") != 0
                       ? e->cname[g->title->id] : fmt(e, "part%d", k + 1);
    const char *name = fmt(e, "%s_step_%s", e->M, what);
    for (int j = 0; j < k; j++)
        if (names[j] && !strcmp(names[j], name))
            return fmt(e, "%s_%d", name, k + 1);
    return name;
}

static void emit_fused_steps(Emit *e, int first, int count)
{
    const Step *steps = e->p->fused_steps;
    for (int s = first; s < first + count;) {
        /* a merged loop, as in emit_steps (lowering puts no update in one) */
        int run = 1;
        while (s + run < first + count && steps[s + run - 1].joined)
            run++;
        emit_run(e, &steps[s], run);
        for (int k = s; k < s + run; k++)
            if (steps[k].check_finite)
                check_step(e, steps[k].node);
        s += run;
    }
}

/* M_step_workspace_size and M_step: forward, then backward's steps with
 * the updates lowering placed among them (lower.c, lower_fused). */
void emit_fused_step(Emit *e, FILE *out)
{
    const Plan *p = e->p;
    const char *r = e->real, *M = e->M, *o = e->opt_name;
    fprintf(out, "/* Bytes of workspace M_step needs: M_workspace_size's, then %ld reals of\n"
                 " * gradients (%s). */\n"
                 "size_t %s_step_workspace_size(int n)\n{\n"
                 "    return %s_workspace_size(n) + %ld * sizeof(%s);\n}\n\n",
            p->ws_fused,
            p->fused_whole ? "all of them, laid out as theta"
                           : "each parameter's until its update; some share a place",
            M, M, p->ws_fused, r);
    e->f = PF_BACKWARD;
    e->fused = true;
    e->pool_param = p->one_sample_step;
    const char *params = fmt(e, "%s *restrict theta, const %s *const inputs[], int n, "
                                "void *restrict ws,\n    bp_optimizer *%s", r, r, o);
    const char *args = fmt(e, "theta, inputs, n, ws, %s", o);
    const char **names = arena_alloc(e->a, sizeof(char *) * (size_t)(p->nfused_groups + 1));
    for (int k = 0; k < p->nfused_groups; k++) {
        const StepGroup *g = &p->fused_groups[k];
        if (g->in_caller)
            continue;
        names[k] = fused_group_name(e, k, names);
        char *body = NULL;
        size_t nbody = 0;
        open_body(e, &body, &nbody);
        emit_fused_steps(e, g->first, g->count);
        fclose(e->out);
        const char *doc = fmt(e, "/* %s. */", comment_text(e, fmt(e, "M_step, steps %d to %d of %d",
                                                                   g->first + 1, g->first + g->count,
                                                                   p->nfused_steps)));
        close_frame(e, out, PF_BACKWARD, doc, fmt(e, "static %s_NOINLINE void %s(%s)", M, names[k],
                                                  params), NULL, body, nbody);
    }
    char *body = NULL;
    size_t nbody = 0;
    open_body(e, &body, &nbody);
    comment(e, 1, "each update needs its own gradient only: no clipping by the global norm");
    line(e, 1, "if (%s == NULL || %s->cfg.clip_norm > 0)", o, o);
    line(e, 2, "return (%s)NAN;", r);
    line(e, 1, "%s %s = %s_forward(theta, inputs, n, ws);", r, e->loss_name, M);
    for (int k = 0; k < p->nfused_groups; k++) {
        const StepGroup *g = &p->fused_groups[k];
        if (g->in_caller)
            emit_fused_steps(e, g->first, g->count);
        else
            line(e, 1, "%s(%s);", names[k], args);
    }
    line(e, 1, "bp_optim_finish(%s);", o);
    line(e, 1, "return %s;", e->loss_name);
    fclose(e->out);
    const char *doc = fmt(
        e, "%s * Returns the batch loss (M_forward's) before the update; theta and\n"
           " * opt's state change as M_forward, M_backward and bp_optim_step would\n"
           " * change them. ws holds M_step_workspace_size(n) bytes. NAN, and nothing\n"
           " * changes, when opt is NULL or clips by the global norm (clip_norm > 0). */",
        p->fused_whole
            ? "/* One training step: forward, backward and the optimiser's update. The\n"
              " * model is small, so its whole gradient stays in the workspace and is\n"
              " * applied after backward in one call per run of parameters (cheaper\n"
              " * than a call per tensor).\n"
            : "/* One training step: forward, backward and the optimiser's update of each\n"
              " * parameter as soon as its gradient is final and nothing reads it any\n"
              " * more, so that no whole gradient vector exists.\n");
    if (p->one_sample_step) {
        /* the copy takes the pool as a restrict parameter, which the public
         * function computes first */
        const char *pool = fmt(e, "    %s *const %s = %s;\n", r, e->pool_name,
                               pool_start(e, ws_reals(e)));
        const char *one_params = fmt(e, "%s *restrict theta, const %s *const inputs[], "
                                        "void *restrict ws,\n    %s *restrict %s, bp_optimizer *%s",
                                     r, r, r, e->pool_name, o);
        const char *one_args = fmt(e, "theta, inputs, ws, %s, %s", e->pool_name, o);
        close_frames_one(e, out, PF_BACKWARD, doc, r, fmt(e, "%s_step", M), params, args,
                         one_params, one_args, pool, body, nbody);
    } else
        close_frame(e, out, PF_BACKWARD, doc, fmt(e, "%s %s_step(%s)", r, M, params), NULL, body,
                    nbody);
    e->fused = false;
    e->pool_param = false;
}
