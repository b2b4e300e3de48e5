/* check.c — names and shapes; AST (Program) -> Model.
 *
 * In: the statements the parser could read (some of them `broken` by a
 * syntax error). Out: a Model, with every name resolved (Expr.sym), every
 * call bound to a built-in (Expr.func) and every expression's shape
 * (Expr.shape) — or NULL, when anything was wrong, with every problem
 * reported to the diagnostics.
 *
 * How it works. A first walk notes where each name is first defined, so
 * that a use before the definition can say "defined later, here". The
 * second walk goes through the statements in order, defining each name
 * after its expression is checked (so `h = h + 1` is a use of `h` before
 * it exists). `output` and `wrt` statements are resolved last, against
 * every name in the file.
 *
 * Shapes that cannot be known — a name defined by a broken statement, an
 * operand that already had an error — are "unknown" (rank -1) and make
 * every expression above them unknown without another message, so each
 * mistake is reported once. Expressions are at most MAX_EXPR_DEPTH deep
 * (the parser sees to it), which bounds the recursion here.
 *
 * The table of built-in functions (name, arity, shape rule) is below; the
 * Func enum in bpgen.h lists them in the same order.
 */
#include "bpgen.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_ELEMENTS 2147483647.0      /* 2^31 - 1 */

/* ---------------------------------------------------------------- functions */

const char *check_func_name(Func f)
{
    return f >= 0 && f < FN__COUNT ? func_info[f].name : "?";
}

/* ---------------------------------------------------------------- shapes */

static const Shape UNKNOWN = {-1, {1, 1, 1, 1}};
static const Shape SCALAR = {0, {1, 1, 1, 1}};

static bool known(Shape s) { return s.rank >= 0; }

static bool same_shape(Shape a, Shape b)
{
    return shape_eq(a, b);
}

static double elements(Shape s)
{
    double n = 1;
    for (int i = 0; i < s.rank; i++)
        n *= s.dim[i];
    return n;
}

/* ---------------------------------------------------------------- names */

/* One entry per name: where it is first defined (found before checking)
 * and its symbol (once its definition has been checked). */
typedef struct {
    const char *name;
    Stmt *def;
    Symbol *sym;
} Entry;

typedef struct {
    Arena *arena;
    Diag *diag;
    Entry *table;
    size_t cap;             /* a power of two */
    Model *model;
    Stmt *current;          /* the statement being checked */
    /* growable lists of the model */
    int inputs_cap, params_cap, values_cap, outputs_cap;
    /* undefined names already reported: each is reported at its first use
     * only, as C compilers do, so a misspelt name used 500 times is one
     * error (open addressing, grown at half full) */
    const char **undefined;
    size_t undefined_cap, undefined_count;
} Checker;

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u;           /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static Entry *entry(Checker *c, const char *name, bool create)
{
    size_t i = hash(name) & (c->cap - 1);
    while (c->table[i].name) {
        if (strcmp(c->table[i].name, name) == 0)
            return &c->table[i];
        i = (i + 1) & (c->cap - 1);
    }
    if (!create)
        return NULL;
    c->table[i].name = name;
    return &c->table[i];
}

/* Whether `name` is an undefined name reported before; if not, records it. */
static bool reported_before(Checker *c, const char *name)
{
    if (2 * (c->undefined_count + 1) > c->undefined_cap) {
        const char **old = c->undefined;
        size_t old_cap = c->undefined_cap;
        c->undefined_cap = old_cap ? 2 * old_cap : 64;
        c->undefined = arena_alloc(c->arena, c->undefined_cap * sizeof *c->undefined);
        for (size_t k = 0; k < old_cap; k++) {
            if (!old[k])
                continue;
            size_t i = hash(old[k]) & (c->undefined_cap - 1);
            while (c->undefined[i])
                i = (i + 1) & (c->undefined_cap - 1);
            c->undefined[i] = old[k];
        }
    }
    size_t i = hash(name) & (c->undefined_cap - 1);
    for (; c->undefined[i]; i = (i + 1) & (c->undefined_cap - 1))
        if (strcmp(c->undefined[i], name) == 0)
            return true;
    c->undefined[i] = name;
    c->undefined_count++;
    return false;
}

/* Levenshtein distance, giving up (returning limit + 1) past limit. */
static size_t distance(const char *a, const char *b, size_t limit)
{
    size_t la = strlen(a), lb = strlen(b);
    if ((la > lb ? la - lb : lb - la) > limit || la > 64 || lb > 64)
        return limit + 1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* How many edits make a name "close": one for short names, two from six
 * characters on. One-letter names are all one edit apart, so for them
 * only a change of case counts ('w' for 'W'). */
static size_t allowed_distance(const char *name)
{
    return strlen(name) < 6 ? 1 : 2;
}

static bool one_letter_match(const char *name, const char *candidate)
{
    return candidate[0] && !candidate[1] &&
           (name[0] ^ candidate[0]) == 0x20 &&
           ((name[0] | 0x20) >= 'a' && (name[0] | 0x20) <= 'z');
}

/* The defined name closest to `name`, or NULL when none is close. */
static const char *suggest_name(Checker *c, const char *name)
{
    size_t limit = allowed_distance(name), best = limit + 1;
    const char *found = NULL;
    for (size_t i = 0; i < c->cap; i++) {
        const Entry *e = &c->table[i];
        if (!e->sym)
            continue;
        if (name[0] && !name[1]) {
            if (one_letter_match(name, e->name))
                return e->name;
            continue;
        }
        size_t d = distance(name, e->name, limit);
        if (d < best || (d == best && found && strcmp(e->name, found) < 0)) {
            best = d;
            found = e->name;
        }
    }
    return found;
}

static const char *suggest_function(const char *name)
{
    size_t limit = allowed_distance(name), best = limit + 1;
    const char *found = NULL;
    for (int f = 0; f < FN__COUNT; f++) {
        size_t d = distance(name, func_info[f].name, limit);
        if (d < best) {
            best = d;
            found = func_info[f].name;
        }
    }
    return found;
}

/* "; did you mean 'h'?" or "" */
static const char *did_you_mean(Checker *c, const char *suggestion)
{
    return suggestion ? arena_printf(c->arena, "; did you mean '%s'?",
                                     suggestion)
                      : "";
}

/* What a name is, in words: "an input", "a frozen parameter", "the loss". */
static const char *what_is(const Symbol *s)
{
    switch (s->kind) {
    case SYM_INPUT: return "an input";
    case SYM_PARAM: return s->stmt->frozen ? "a frozen parameter"
                                           : "a parameter";
    case SYM_CONST: return "a constant";
    case SYM_VALUE: return s->is_loss ? "the loss" : "an intermediate value";
    }
    return "a name";
}

/* Appends to one of the model's symbol lists. */
static void push(Checker *c, Symbol ***list, int *n, int *cap, Symbol *s)
{
    if (*n == *cap) {
        int new_cap = *cap ? 2 * *cap : 8;
        Symbol **bigger = arena_alloc(c->arena, (size_t)new_cap * sizeof *bigger);
        if (*n)
            memcpy(bigger, *list, (size_t)*n * sizeof *bigger);
        *list = bigger;
        *cap = new_cap;
    }
    (*list)[(*n)++] = s;
}

/* Defines the name of statement s; NULL (after an error) when it exists. */
static Symbol *define(Checker *c, Stmt *s, SymKind kind, Shape shape)
{
    Entry *e = entry(c, s->name, true);
    if (e->sym) {
        diag_error(c->diag, s->name_loc, "'%s' is already defined", s->name);
        diag_note(c->diag, e->sym->loc, "'%s' was first defined here",
                  s->name);
        return NULL;
    }
    Symbol *sym = arena_alloc(c->arena, sizeof *sym);
    sym->kind = kind;
    sym->name = s->name;
    sym->loc = s->name_loc;
    sym->shape = shape;
    sym->index = -1;
    sym->stmt = s;
    e->sym = sym;
    Model *m = c->model;
    if (kind == SYM_INPUT) {
        sym->index = m->ninputs;
        push(c, &m->inputs, &m->ninputs, &c->inputs_cap, sym);
    } else if (kind == SYM_PARAM) {
        sym->index = m->nparams;
        push(c, &m->params, &m->nparams, &c->params_cap, sym);
    } else if (kind == SYM_VALUE) {
        push(c, &m->values, &m->nvalues, &c->values_cap, sym);
    }
    return sym;
}

/* ---------------------------------------------------------------- expressions */

static Shape check_expr(Checker *c, Expr *e);

static Shape check_name(Checker *c, Expr *e)
{
    Entry *en = entry(c, e->name, false);
    if (en && en->sym) {
        e->sym = en->sym;
        return en->sym->shape;
    }
    if (en && en->def == c->current) {
        diag_error(c->diag, e->loc, "'%s' is used in its own definition",
                   e->name);
    } else if (en && en->def) {
        diag_error(c->diag, e->loc, "'%s' is used before it is defined",
                   e->name);
        diag_note(c->diag, en->def->name_loc, "'%s' is defined here",
                  e->name);
    } else if (func_find(e->name) >= 0) {
        diag_error(c->diag, e->loc, "'%s' is a function; call it, as in "
                   "'%s(x)'", e->name, e->name);
    } else if (!reported_before(c, e->name)) {
        diag_error(c->diag, e->loc, "undefined name '%s'%s", e->name,
                   did_you_mean(c, suggest_name(c, e->name)));
    }
    return UNKNOWN;
}

static const char *verb(BinOp op)
{
    switch (op) {
    case BIN_ADD: return "add";
    case BIN_SUB: return "subtract";
    case BIN_MUL: return "multiply";
    case BIN_DIV: return "divide";
    default: return "combine";
    }
}

/* The shape of a · b, or UNKNOWN (with *why set) when there is none. */
static Shape matmul_shape(Shape a, Shape b, const char **why, Arena *ar)
{
    ShapeError err = {-1, ""};
    Shape s = op_info[OP_MATMUL].shape((Shape[]){a, b}, 2, (int[MAX_ATTRS]){0}, &err);
    if (!known(s))
        *why = arena_strdup(ar, err.msg);
    return s;
}

static Shape check_binary(Checker *c, Expr *e)
{
    Shape l = check_expr(c, e->lhs);
    Shape r = check_expr(c, e->rhs);
    if (!known(l) || !known(r))
        return UNKNOWN;
    switch (e->op) {
    case BIN_ADD: case BIN_SUB: case BIN_MUL: case BIN_DIV: {
        if (same_shape(l, r) || r.rank == 0)
            return l;
        if (l.rank == 0)
            return r;
        const char *why = NULL, *hint = "";
        if (e->op == BIN_MUL && known(matmul_shape(l, r, &why, c->arena)))
            hint = "; for the matrix product write '·' or '@'";
        diag_error(c->diag, e->loc, "cannot %s %s and %s%s", verb(e->op),
                   shape_text(c->arena, l), shape_text(c->arena, r), hint);
        return UNKNOWN;
    }
    case BIN_POW:
        if (r.rank != 0) {
            diag_error(c->diag, e->loc, "the exponent of '^' must be a "
                       "scalar, but it has shape %s", shape_text(c->arena, r));
            return UNKNOWN;
        }
        return l;
    case BIN_MATMUL: {
        const char *why = NULL;
        Shape s = matmul_shape(l, r, &why, c->arena);
        if (!known(s))
            diag_error(c->diag, e->loc, "cannot multiply %s · %s: %s",
                       shape_text(c->arena, l), shape_text(c->arena, r), why);
        return s;
    }
    }
    return UNKNOWN;
}

/* The integer an argument is written as (`2`, `-1`), or false when it is
 * not an integer literal. */
static bool integer_literal(const Expr *e, double *v)
{
    if (e->kind == EX_NEG && e->lhs->kind == EX_NUM) {
        *v = -e->lhs->num;
        return *v == floor(*v);
    }
    if (e->kind == EX_NUM) {
        *v = e->num;
        return *v == floor(*v);
    }
    return false;
}

/* An integer attribute argument: a literal in [min, 2^31 - 1]. */
static bool check_int_arg(Checker *c, const char *func, const char *what, Expr *arg, int min,
                          int *out)
{
    double v = 0;
    if (!integer_literal(arg, &v)) {
        diag_error(c->diag, arg->loc, "'%s' needs %s written as an integer number", func, what);
        return false;
    }
    if (v < min || v > MAX_ELEMENTS) {
        diag_error(c->diag, arg->loc, "'%s' needs %s %s, but it is %.0f", func, what,
                   min > 0 ? "of at least 1" : "of at least 0", v);
        return false;
    }
    *out = (int)v;
    return true;
}

static Shape check_call(Checker *c, Expr *e)
{
    int f = func_find(e->name);
    if (f < 0) {
        for (int i = 0; i < e->nargs; i++)
            check_expr(c, e->args[i]);
        Entry *en = entry(c, e->name, false);
        if (en && en->sym)
            diag_error(c->diag, e->loc, "'%s' is %s, not a function",
                       e->name, what_is(en->sym));
        else
            diag_error(c->diag, e->loc, "unknown function '%s'%s", e->name,
                       did_you_mean(c, suggest_function(e->name)));
        return UNKNOWN;
    }
    e->func = (Func)f;
    const FuncInfo *fi = &func_info[f];
    const char *name = fi->name;
    bool ok = true;
    int npos = 0;
    bool misplaced = false;
    int attr[MAX_ATTRS] = {0}, nattr = 0;
    Shape arg[MAX_OPERANDS + 2];
    /* positional arguments, then keyword ones */
    for (int i = 0; i < e->nargs; i++) {
        Expr *a = e->args[i];
        if (!a->keyword) {
            if (i > npos) {
                diag_error(c->diag, a->loc, "'%s': a positional argument cannot follow "
                           "keyword arguments", name);
                ok = false;
                misplaced = true;
                continue;
            }
            npos++;
        }
    }
    for (int i = 0; i < npos; i++) {
        Expr *a = e->args[i];
        if (i < 32 && (fi->int_args & (1u << i))) {
            arg[i] = SCALAR;
            ok &= check_int_arg(c, name, i == 1 ? "a window" : "an integer", a, 1,
                                &attr[nattr++]);
        } else {
            Shape s = check_expr(c, a);
            if (i < MAX_OPERANDS + 2)
                arg[i] = s;
            ok &= known(s);
        }
    }
    int nkw = 0;
    while (nkw < 2 && fi->keywords[nkw])
        nkw++;
    for (int k = 0; k < nkw; k++)
        attr[nattr + k] = fi->defaults[k];
    for (int i = npos; i < e->nargs; i++) {
        Expr *a = e->args[i];
        if (!a->keyword) {
            check_expr(c, a);
            continue;
        }
        int k = 0;
        while (k < nkw && strcmp(fi->keywords[k], a->keyword))
            k++;
        if (k == nkw) {
            check_expr(c, a);
            if (nkw == 0)
                diag_error(c->diag, a->keyword_loc, "'%s' takes no keyword arguments, but "
                           "'%s=' was given", name, a->keyword);
            else
                diag_error(c->diag, a->keyword_loc, "'%s' has no keyword argument '%s'; "
                           "it takes %s%s%s", name, a->keyword, fi->keywords[0],
                           nkw > 1 ? " and " : "", nkw > 1 ? fi->keywords[1] : "");
            ok = false;
            continue;
        }
        bool twice = false;
        for (int j = npos; j < i; j++)
            twice |= e->args[j]->keyword && !strcmp(e->args[j]->keyword, a->keyword);
        if (twice) {
            diag_error(c->diag, a->keyword_loc, "'%s': '%s' is given twice", name, a->keyword);
            ok = false;
            continue;
        }
        const char *what = !strcmp(a->keyword, "stride") ? "a stride" : "a pad";
        ok &= check_int_arg(c, name, what, a, !strcmp(a->keyword, "stride") ? 1 : 0,
                            &attr[nattr + k]);
    }
    if (misplaced)
        return UNKNOWN;
    if (npos < fi->min_args || npos > fi->max_args) {
        if (fi->min_args == fi->max_args)
            diag_error(c->diag, e->loc, "'%s' takes %d argument%s, but %d %s given",
                       name, fi->min_args, fi->min_args == 1 ? "" : "s", npos,
                       npos == 1 ? "was" : "were");
        else
            diag_error(c->diag, e->loc, "'%s' takes %d to %d arguments, as in '%s', but "
                       "%d %s given", name, fi->min_args, fi->max_args, fi->usage, npos,
                       npos == 1 ? "was" : "were");
        return UNKNOWN;
    }
    if (!ok)
        return UNKNOWN;
    ShapeError err = {-1, ""};
    Shape s = fi->shape(arg, npos, attr, &err);
    if (!known(s)) {
        Loc at = err.arg >= 0 && err.arg < npos ? e->args[err.arg]->loc : e->loc;
        diag_error(c->diag, at, "'%s' %s", name, err.msg);
    }
    return s;
}

/* Sets e->shape (and sym, func below it); UNKNOWN after an error. */
static Shape check_expr(Checker *c, Expr *e)
{
    Shape s = UNKNOWN;
    switch (e->kind) {
    case EX_NUM:    s = SCALAR; break;
    case EX_NAME:   s = check_name(c, e); break;
    case EX_NEG:    s = check_expr(c, e->lhs); break;
    case EX_BINARY: s = check_binary(c, e); break;
    case EX_CALL:   s = check_call(c, e); break;
    }
    if (known(s) && elements(s) > MAX_ELEMENTS) {
        diag_error(c->diag, e->loc, "the result has shape %s: more than "
                   "2147483647 elements", shape_text(c->arena, s));
        s = UNKNOWN;
    }
    e->shape = s;
    return s;
}

/* ---------------------------------------------------------------- statements */

/* The shape `[d1, ..., d4]` written in an input or param, or UNKNOWN. */
static Shape declared_shape(Checker *c, Stmt *s)
{
    if (s->rank > MAX_RANK) {
        diag_error(c->diag, s->excess_dim_loc, "'%s' has %d dimensions, but at most "
                   "4 are allowed", s->name, s->rank);
        return UNKNOWN;
    }
    Shape shape = {s->rank, {1, 1, 1, 1}};
    bool ok = true, all_positive = true;
    double n = 1;
    for (int i = 0; i < s->rank; i++) {
        double d = s->dims[i];
        if (!(d >= 1) || d != floor(d)) {
            diag_error(c->diag, s->dim_loc[i], "a dimension must be a "
                       "positive integer, but this one is %g", d);
            ok = false;
        } else if (d > MAX_ELEMENTS) {
            ok = false;     /* reported below, as too many elements */
        } else {
            shape.dim[i] = (int)d;
        }
        all_positive &= d >= 1;
        n *= d;
    }
    if (all_positive && n > MAX_ELEMENTS) {
        diag_error(c->diag, s->name_loc, "'%s' is too large: %.0f elements, "
                   "but at most 2147483647 are allowed", s->name, n);
        ok = false;
    }
    return ok ? shape : UNKNOWN;
}

static void check_init(Checker *c, const Init *init)
{
    if (init->kind == INIT_NORMAL && !(init->b >= 0))
        diag_error(c->diag, init->loc, "the standard deviation of "
                   "normal(mean, std) must be >= 0, but it is %g", init->b);
    if (init->kind == INIT_UNIFORM && !(init->a <= init->b))
        diag_error(c->diag, init->loc, "uniform(lo, hi) needs lo <= hi, but "
                   "%g > %g", init->a, init->b);
}

static void check_value(Checker *c, Stmt *s)
{
    Shape shape = s->broken ? UNKNOWN : check_expr(c, s->expr);
    Symbol *sym = define(c, s, SYM_VALUE, shape);
    if (s->kind != ST_LOSS)
        return;
    Model *m = c->model;
    if (m->loss) {
        diag_error(c->diag, s->name_loc, "a model has exactly one loss, but "
                   "'%s' is a second one", s->name);
        diag_note(c->diag, m->loss->loc, "the first loss is '%s'",
                  m->loss->name);
        return;
    }
    if (!sym)
        return;
    sym->is_loss = true;
    m->loss = sym;
    if (known(shape) && shape.rank != 0)
        diag_error(c->diag, s->name_loc, "loss must be a scalar, but '%s' has "
                   "shape %s; reduce it with sum() or mean()", s->name,
                   shape_text(c->arena, shape));
}

/* `output` and `wrt`, resolved against every name in the file. */
static void check_names(Checker *c, Stmt *s)
{
    Model *m = c->model;
    const char *keyword = s->kind == ST_OUTPUT ? "output" : "wrt";
    for (int i = 0; i < s->nnames; i++) {
        NameRef *ref = &s->names[i];
        Entry *en = entry(c, ref->name, false);
        if (!en || !en->sym) {
            if (!reported_before(c, ref->name))
                diag_error(c->diag, ref->loc, "undefined name '%s'%s", ref->name,
                           did_you_mean(c, suggest_name(c, ref->name)));
            continue;
        }
        Symbol *sym = en->sym;
        bool twice = false;
        if (s->kind == ST_OUTPUT) {
            for (int k = 0; k < m->noutputs; k++)
                twice |= m->outputs[k] == sym;
            if (!twice)
                push(c, &m->outputs, &m->noutputs, &c->outputs_cap, sym);
        } else if (sym->kind != SYM_INPUT) {
            const char *why = sym->kind == SYM_PARAM && !sym->stmt->frozen
                ? " (parameters are always differentiated)" : "";
            diag_error(c->diag, ref->loc, "'%s' is %s; wrt names only "
                       "inputs%s", ref->name, what_is(sym), why);
            continue;
        } else {
            twice = sym->wrt;
            sym->wrt = true;
        }
        if (twice)
            diag_error(c->diag, ref->loc, "'%s' is named in '%s' twice",
                       ref->name, keyword);
    }
}

Model *check_program(Arena *a, Diag *diag, Program *prog)
{
    Checker c = {.arena = a, .diag = diag};
    Model *m = arena_alloc(a, sizeof *m);
    c.model = m;
    m->path = prog->path;

    size_t nstmts = 0;
    for (Stmt *s = prog->first; s; s = s->next)
        nstmts++;
    c.cap = 64;
    while (c.cap < 2 * nstmts + 16)
        c.cap *= 2;
    c.table = arena_alloc(a, c.cap * sizeof *c.table);

    /* Where each name is first defined. */
    for (Stmt *s = prog->first; s; s = s->next) {
        if (s->kind == ST_MODEL || s->kind == ST_OUTPUT || s->kind == ST_WRT)
            continue;
        Entry *e = entry(&c, s->name, true);
        if (!e->def)
            e->def = s;
    }

    Stmt *model_stmt = NULL;
    bool first = true;
    for (Stmt *s = prog->first; s; s = s->next, first = false) {
        c.current = s;
        switch (s->kind) {
        case ST_MODEL:
            if (model_stmt) {
                diag_error(diag, s->loc, "the model is already named '%s'",
                           model_stmt->name);
                diag_note(diag, model_stmt->loc, "it is named here");
            } else if (!first) {
                diag_error(diag, s->loc, "'model' must be the first "
                           "statement");
            } else {
                model_stmt = s;
                m->name = s->name;
            }
            break;
        case ST_INPUT:
            define(&c, s, SYM_INPUT, s->broken ? UNKNOWN
                                               : declared_shape(&c, s));
            break;
        case ST_PARAM:
            if (!s->broken)
                check_init(&c, &s->init);
            define(&c, s, SYM_PARAM, s->broken ? UNKNOWN
                                               : declared_shape(&c, s));
            break;
        case ST_CONST:
            define(&c, s, SYM_CONST, SCALAR);
            break;
        case ST_ASSIGN:
        case ST_LOSS:
            check_value(&c, s);
            break;
        case ST_OUTPUT:
        case ST_WRT:
            break;
        }
    }
    c.current = NULL;
    for (Stmt *s = prog->first; s; s = s->next)
        if (s->kind == ST_OUTPUT || s->kind == ST_WRT)
            check_names(&c, s);

    /* (Not when nothing could be read: that error says enough.) */
    if (!m->loss && (prog->first || diag_count(diag) == 0))
        diag_error(diag, (Loc){1, 1}, "the model has no loss; add one, as in "
                   "'loss L = mse(y_hat, y)'");
    if (!m->name)
        m->name = check_default_model_name(a, prog->path);
    /* Generated symbols are M_...: `bp` and `bp_...` would collide with the
     * runtime's own names (bp_model, bp_optim_init, ...). */
    if (!strcmp(m->name, "bp") || !strncmp(m->name, "bp_", 3)) {
        if (model_stmt)
            diag_error(diag, model_stmt->name_loc, "the model name '%s' clashes with "
                       "the runtime's bp_ names; choose another", m->name);
        else
            diag_error(diag, (Loc){1, 1}, "the model would be named '%s' after its file, "
                       "which clashes with the runtime's bp_ names; name it with "
                       "'model NAME'", m->name);
    }
    return diag_count(diag) > 0 ? NULL : m;
}

/* ---------------------------------------------------------------- model name */

const char *check_default_model_name(Arena *a, const char *path)
{
    const char *base = path ? path : "";
    for (const char *p = base; *p; p++)
        if (*p == '/')
            base = p + 1;
    size_t len = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        len = (size_t)(dot - base);
    /* One '_' per character that cannot be in a C identifier. */
    char *name = arena_alloc(a, len + 3);
    size_t n = 0;
    if (len > 0 && base[0] >= '0' && base[0] <= '9') {
        name[n++] = 'm';
        name[n++] = '_';
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)base[i];
        if ((ch & 0xC0) == 0x80)
            continue;       /* the rest of a UTF-8 character */
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_';
        name[n++] = ok ? (char)ch : '_';
    }
    name[n] = '\0';
    return n > 0 ? name : "model";
}
