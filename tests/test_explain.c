/* test_explain.c — `bpgen --explain` and `--explain=markdown`.
 *
 * Golden files (tests/golden/explain/) pin the derivations of the seed
 * examples; the contract's own example must appear word for word.
 * Every derivation, of every example and of random models, is then checked
 * for its form (CONTRACT section 7: block lines, tokens defined earlier, a
 * closed form in each block, scalar models ending with --derivatives' line)
 * and for its numbers: each line of each block becomes a value of a
 * generated model (`dL/dY` tokens replaced by values holding the closed
 * forms of the blocks before), compiled with bpgen in double, run at a
 * random point, and compared with the gradient the generated backward
 * computes (parameters and wrt inputs) or with the block's closed form
 * (values, whose own closed forms feed the parameters' lines).
 * Finally the tutorial's quoted `--explain` output must be what bpgen
 * prints. */
#include <CUnit/CUnit.h>
#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

/* ---------------------------------------------------------------- parsing */

typedef struct {
    char *var;          /* X of dL/dX */
    char **lines;       /* right-hand sides */
    int n;
} Block;

typedef struct {
    char loss[128];
    int nforward;
    Block *blocks;
    int nblocks;
    bool ok;
    char why[256];
} Explain;

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void fail(Explain *e, const char *why, const char *line)
{
    if (e->ok)
        snprintf(e->why, sizeof e->why, "%s: '%.150s'", why, line);
    e->ok = false;
}

static bool is_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Whether `line` holds a token dL/dY; with `defined`, every token's Y must
 * be among the first `count` blocks. */
static bool has_token(const Explain *e, const char *line, int count, bool *undefined)
{
    size_t ll = strlen(e->loss);
    bool found = false;
    for (const char *p = line; (p = strchr(p, 'd')); p++) {
        if ((p > line && is_ident_char(p[-1])) || strncmp(p + 1, e->loss, ll) != 0 ||
            strncmp(p + 1 + ll, "/d", 2) != 0)
            continue;
        const char *y = p + 3 + ll, *q = y;
        while (is_ident_char(*q))
            q++;
        found = true;
        bool known = false;
        for (int b = 0; b < count; b++)
            known = known || (strlen(e->blocks[b].var) == (size_t)(q - y) &&
                              !strncmp(e->blocks[b].var, y, (size_t)(q - y)));
        if (!known && undefined)
            *undefined = true;
    }
    return found;
}

static Explain parse_explain(const char *text)
{
    Explain e = {{0}, 0, NULL, 0, true, {0}};
    const char *p = text;
    bool forward = true;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char *line = dup_n(p, len);
        p += len + (eol ? 1 : 0);
        if (forward) {
            if (len == 0) {
                forward = false;
            } else if (!strstr(line, " = ")) {
                fail(&e, "forward line is not NAME = EXPR", line);
            } else {
                e.nforward++;
            }
            free(line);
            continue;
        }
        if (len == 0) {   /* blank lines may separate blocks */
            free(line);
            continue;
        }
        if (line[0] == ' ') {
            const char *q = line;
            while (*q == ' ')
                q++;
            if (!e.nblocks || strncmp(q, "= ", 2) != 0) {
                fail(&e, "continuation line without a block or '='", line);
            } else {
                Block *b = &e.blocks[e.nblocks - 1];
                b->lines = realloc(b->lines, sizeof *b->lines * (size_t)(b->n + 1));
                b->lines[b->n++] = strdup(q + 2);
            }
            free(line);
            continue;
        }
        const char *slash = strstr(line, "/d"), *eq = strstr(line, " = ");
        if (line[0] != 'd' || !slash || !eq || slash > eq) {
            fail(&e, "block line is not dL/dX = ...", line);
            free(line);
            continue;
        }
        if (e.nblocks == 0)
            snprintf(e.loss, sizeof e.loss, "%.*s", (int)(slash - line - 1), line + 1);
        else if (strncmp(line + 1, e.loss, strlen(e.loss)) != 0)
            fail(&e, "block of another loss", line);
        e.blocks = realloc(e.blocks, sizeof *e.blocks * (size_t)(e.nblocks + 1));
        Block *b = &e.blocks[e.nblocks++];
        b->var = dup_n(slash + 2, (size_t)(eq - slash - 2));
        b->lines = malloc(sizeof *b->lines);
        b->lines[0] = strdup(eq + 3);
        b->n = 1;
        free(line);
    }
    if (forward)
        fail(&e, "no blank line after the forward equations", "");
    if (e.nblocks == 0)
        fail(&e, "no blocks", "");
    return e;
}

static void free_explain(Explain *e)
{
    for (int b = 0; b < e->nblocks; b++) {
        for (int k = 0; k < e->blocks[b].n; k++)
            free(e->blocks[b].lines[k]);
        free(e->blocks[b].lines);
        free(e->blocks[b].var);
    }
    free(e->blocks);
}

/* The form CONTRACT section 7 asks for. */
static void check_form(const char *name, Explain *e, const char *derivatives)
{
    if (!e->ok)
        goto report;
    if (strcmp(e->blocks[0].var, e->loss) != 0 || e->blocks[0].n != 1 ||
        strcmp(e->blocks[0].lines[0], "1") != 0)
        fail(e, "the first block is not dL/dL = 1", e->blocks[0].var);
    for (int b = 0; b < e->nblocks; b++) {
        Block *blk = &e->blocks[b];
        bool closed = false;
        for (int k = 0; k < blk->n; k++) {
            bool undefined = false;
            bool tok = has_token(e, blk->lines[k], b, &undefined);
            if (undefined)
                fail(e, "a token names no earlier block", blk->lines[k]);
            closed = closed || !tok;
        }
        if (!closed)
            fail(e, "a block without a closed form", blk->var);
    }
    /* scalar models: leaf blocks end with --derivatives' line */
    for (const char *p = derivatives; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char *line = dup_n(p, len);
        p += len + (eol ? 1 : 0);
        char *eq = strstr(line, " = "), *slash = strstr(line, "/d");
        if (!eq || !slash)
            continue;
        char *var = dup_n(slash + 2, (size_t)(eq - slash - 2));
        bool found = false;
        for (int b = 0; b < e->nblocks; b++)
            if (!strcmp(e->blocks[b].var, var)) {
                found = true;
                if (strcmp(e->blocks[b].lines[e->blocks[b].n - 1], eq + 3) != 0)
                    fail(e, "block does not end with the --derivatives line", line);
            }
        if (!found)
            fail(e, "no block for a derivative", line);
        free(var);
        free(line);
    }
report:
    CU_ASSERT(e->ok);
    if (!e->ok)
        fprintf(stderr, "\n[%s] %s\n", name, e->why);
}

/* ---------------------------------------------------------------- evaluating */

/* The line with every token dL/dY written as the value zadj_Y. */
static char *replace_tokens(const char *loss, const char *line)
{
    size_t ll = strlen(loss);
    char *out = malloc(strlen(line) * 2 + 16), *o = out;
    for (const char *p = line; *p;) {
        if (*p == 'd' && (p == line || !is_ident_char(p[-1])) && !strncmp(p + 1, loss, ll) &&
            !strncmp(p + 1 + ll, "/d", 2) && is_ident_char(p[3 + ll])) {
            o += sprintf(o, "zadj_");
            p += 3 + ll;
            continue;
        }
        *o++ = *p++;
    }
    *o = '\0';
    return out;
}

typedef struct {
    char *name;
    double *v;
    int n;
} Values;

static int parse_values(const char *out, Values **vals)
{
    int count = 0;
    *vals = NULL;
    for (const char *p = out; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char *line = dup_n(p, len);
        p += len + (eol ? 1 : 0);
        char tag[16], name[128];
        int used = 0;
        if (sscanf(line, "%15s %127s%n", tag, name, &used) == 2) {
            *vals = realloc(*vals, sizeof **vals * (size_t)(count + 1));
            Values *v = &(*vals)[count++];
            v->name = test_format("%s %s", tag, name);
            v->v = NULL;
            v->n = 0;
            char *q = line + used, *end;
            for (double x = strtod(q, &end); end != q; x = strtod(q, &end)) {
                v->v = realloc(v->v, sizeof *v->v * (size_t)(v->n + 1));
                v->v[v->n++] = x;
                q = end;
            }
        }
        free(line);
    }
    return count;
}

static const Values *find_values(const Values *vals, int n, const char *tag, const char *name)
{
    char *key = test_format("%s %s", tag, name);
    const Values *found = NULL;
    for (int i = 0; i < n; i++)
        if (!strcmp(vals[i].name, key))
            found = &vals[i];
    free(key);
    return found;
}

static bool close_to(const Values *got, const Values *want, char *where, size_t size)
{
    if (!got || !want || got->n != want->n) {
        snprintf(where, size, "missing or of another size");
        return false;
    }
    for (int i = 0; i < got->n; i++)
        if (!(fabs(got->v[i] - want->v[i]) <= 1e-8 * (1 + fabs(want->v[i])))) {
            snprintf(where, size, "element %d: %.17g, expected %.17g", i, got->v[i], want->v[i]);
            return false;
        }
    return true;
}

/* The source without its `output` statement (the check adds its own). */
static char *without_outputs(const char *source)
{
    char *out = malloc(strlen(source) + 2), *o = out;
    for (const char *p = source; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p + 1) : strlen(p);
        const char *q = p;
        while (*q == ' ')
            q++;
        if (strncmp(q, "output ", 7) != 0) {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    *o = '\0';
    return out;
}

/* Evaluates every line of every block of `e` (the derivation of `source`)
 * at a random point; returns the number of lines checked. */
static int check_numbers(const char *name, const char *source, const Explain *e)
{
    char *base = without_outputs(source);
    size_t cap = strlen(base) + 4096;
    for (int b = 0; b < e->nblocks; b++)
        for (int k = 0; k < e->blocks[b].n; k++)
            cap += 3 * strlen(e->blocks[b].lines[k]) + 128;
    char *net = malloc(cap), *o = net;
    o += sprintf(o, "%s\n", base);
    for (int b = 0; b < e->nblocks; b++) {
        const Block *blk = &e->blocks[b];
        const char *closed = NULL;
        for (int k = 0; k < blk->n && !closed; k++)
            if (!has_token(e, blk->lines[k], e->nblocks, NULL))
                closed = blk->lines[k];
        o += sprintf(o, "zadj_%s = (%s) + 0 * %s\n", blk->var, closed ? closed : "0", blk->var);
    }
    for (int b = 0; b < e->nblocks; b++)
        for (int k = 0; k < e->blocks[b].n; k++) {
            char *line = replace_tokens(e->loss, e->blocks[b].lines[k]);
            o += sprintf(o, "zline_%d_%d = (%s) + 0 * %s\n", b, k, line, e->blocks[b].var);
            free(line);
        }
    o += sprintf(o, "output ");
    for (int b = 0; b < e->nblocks; b++) {
        o += sprintf(o, "%szadj_%s", b ? ", " : "", e->blocks[b].var);
        for (int k = 0; k < e->blocks[b].n; k++)
            o += sprintf(o, ", zline_%d_%d", b, k);
    }
    o += sprintf(o, "\n");

    int checked = 0;
    char *model = test_format("xv_%s", name);
    char *out_c = test_format("%s/%s.c", TEST_TMP, model);
    char *exe = test_tmp_path(model);
    char *args = test_format("-o %s --precision=double", out_c);
    char *err = NULL, *out = NULL;
    int rc = test_bpgen(model, net, args, NULL, &err);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "\n[%s] the derivation's lines do not compile as .net:\n%s\n%s\n", name,
                err ? err : "", net);
        goto done;
    }
    char *cmd = test_format("%s %s -Iruntime -DMODEL=%s_model -o %s %s tests/harness/values.c "
                            "%s -lm && %s 7",
                            TEST_CC, TEST_CFLAGS, model, exe, out_c, TEST_LIBBP, exe);
    rc = test_run(cmd, &out, NULL);
    free(cmd);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0)
        goto done;
    Values *vals;
    int nvals = parse_values(out, &vals);
    for (int b = 0; b < e->nblocks; b++) {
        const Block *blk = &e->blocks[b];
        const Values *grad = find_values(vals, nvals, "grad", blk->var);
        char *adj = test_format("zadj_%s", blk->var);
        const Values *want = grad ? grad : find_values(vals, nvals, "output", adj);
        free(adj);
        for (int k = 0; k < blk->n; k++) {
            char *line = test_format("zline_%d_%d", b, k);
            char where[256];
            bool ok = close_to(find_values(vals, nvals, "output", line), want, where, sizeof where);
            CU_ASSERT(ok);
            if (!ok)
                fprintf(stderr, "\n[%s] d%s/d%s, line %d '%s': %s\n", name, e->loss, blk->var,
                        k + 1, blk->lines[k], where);
            checked++;
            free(line);
        }
    }
    for (int i = 0; i < nvals; i++) {
        free(vals[i].name);
        free(vals[i].v);
    }
    free(vals);
done:
    free(out);
    free(err);
    free(args);
    free(exe);
    free(out_c);
    free(model);
    free(net);
    free(base);
    return checked;
}

/* --explain of source: its form, and its numbers. Returns lines checked. */
static int check_model(const char *name, const char *source, bool scalar)
{
    char *out = NULL, *err = NULL, *deriv = NULL;
    int rc = test_bpgen(name, source, "--explain", &out, &err);
    CU_ASSERT_EQUAL(rc, 0);
    int checked = 0;
    if (rc == 0 && out) {
        if (scalar)
            CU_ASSERT_EQUAL(test_bpgen(name, source, "--derivatives", &deriv, NULL), 0);
        Explain e = parse_explain(out);
        check_form(name, &e, deriv);
        if (e.ok)
            checked = check_numbers(name, source, &e);
        free_explain(&e);
    } else {
        fprintf(stderr, "\n[%s] --explain failed:\n%s\n", name, err ? err : "");
    }
    free(out);
    free(err);
    free(deriv);
    return checked;
}

/* ---------------------------------------------------------------- tests */

static char *run_bpgen(const char *args)
{
    char *cmd = test_format("%s %s", TEST_BPGEN, args);
    char *out = NULL;
    int rc = test_run(cmd, &out, NULL);
    CU_ASSERT_EQUAL(rc, 0);
    free(cmd);
    return out;
}

static void expect_golden(const char *args, const char *golden)
{
    char *out = run_bpgen(args);
    char *want = test_read_file(golden, NULL);
    CU_ASSERT_PTR_NOT_NULL(want);
    CU_ASSERT(out && want && strcmp(out, want) == 0);
    if (!out || !want || strcmp(out, want) != 0)
        fprintf(stderr, "\n[bpgen %s] prints:\n%s\n%s says:\n%s\n", args, out ? out : "",
                golden, want ? want : "(missing)");
    free(out);
    free(want);
}

static void test_golden_examples(void)
{
    static const char *const examples[] = {"chain", "logistic", "height", "linreg", "xor", "iris"};
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
        char *args = test_format("examples/%s/%s.net --explain", examples[i], examples[i]);
        char *golden = test_format("tests/golden/explain/%s.txt", examples[i]);
        expect_golden(args, golden);
        free(args);
        free(golden);
    }
    expect_golden("examples/chain/chain.net --explain=markdown", "tests/golden/explain/chain.md");
    expect_golden("examples/iris/iris.net --explain=markdown", "tests/golden/explain/iris.md");
}

/* CONTRACT section 7's example, word for word, and the bounds on
 * the seed models' closed forms. */
static void test_contract_example_and_lengths(void)
{
    char *out = run_bpgen("examples/chain/chain.net --explain");
    CU_ASSERT(out && strstr(out, "dP/dS = dP/dP * 1 / (2 * sqrt(S))\n"
                                 "      = 1 / (2 * sqrt(S))\n"
                                 "dP/dL = dP/dS * 2 * L\n"
                                 "      = L / sqrt(S)\n"
                                 "      = L / sqrt(L^2 + 2)\n"));
    free(out);
    struct {
        const char *example, *line;
    } bounds[] = {
        {"logistic", "           = (y - t) * y * (1 - y) * x\n"},
        {"height", "       = (yhat - height) * W5 * h1 * (1 - h1) * weight\n"},
        /* iris: the general form, sum(y) for a one-hot y's 1, and a note */
        {"iris", "       = outer((transpose(W2) · (p * sum(y) - y)) * (1 - h^2), x)\n"},
        {"iris", "sum(y) = 1 when y is one-hot"},
    };
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        char *args = test_format("examples/%s/%s.net --explain", bounds[i].example,
                                 bounds[i].example);
        out = run_bpgen(args);
        CU_ASSERT(out && strstr(out, bounds[i].line));
        if (!out || !strstr(out, bounds[i].line))
            fprintf(stderr, "\n[%s] no line '%s' in:\n%s\n", bounds[i].example, bounds[i].line,
                    out ? out : "");
        free(out);
        free(args);
    }
}

static char *example_source(const char *name)
{
    char *path = test_format("examples/%s/%s.net", name, name);
    char *text = test_read_file(path, NULL);
    free(path);
    return text;
}

static void test_examples_evaluate(void)
{
    static const struct {
        const char *name;
        bool scalar;
    } examples[] = {{"chain", true},   {"logistic", true}, {"height", true},
                    {"linreg", false}, {"xor", false},     {"iris", false},
                    {"digits", false}, {"finetune", false}};
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
        char *source = example_source(examples[i].name);
        CU_ASSERT_PTR_NOT_NULL(source);
        if (!source)
            continue;
        char *name = test_format("ex_%s", examples[i].name);
        int lines = check_model(name, source, examples[i].scalar);
        CU_ASSERT(lines >= 3);
        free(name);
        free(source);
    }
}

/* Every operation, in a derivation of its own. */
static void test_every_operation(void)
{
    static const char *const sources[] = {
        "input x\ninput y\nwrt x, y\na = x * y - y / x\nb = a^3 + sqrt(x^2 + 1)\n"
        "loss L = log(b^2 + 1) + exp(-a) + x * sin(x)\n",
        "input x\nparam w\nwrt x\nu = abs(x) + relu(w) + softplus(x * w)\n"
        "v = max(u, x) + min(u, w) + cos(u) + tanh(w)\nloss L = sigmoid(v) * u + step(x) * v\n",
        "input x[3]\ninput y[3]\nparam W[2, 3]\nparam V[3, 2]\nparam s\nwrt x\n"
        "h = W · x\nk = transpose(W) · h + V · h\nm = outer(h, x) * W\n"
        "loss L = sum(k * y) + dot(x, k) + mean(m) + logsumexp(k) * s + h · h\n",
        "input x[4]\ninput y[4]\nparam w[4]\nwrt x\nz = x * w\np = softmax(z)\nq = log_softmax(z)\n"
        "loss L = cross_entropy(p, y) + sum(q * y) + mse(p, y) + bce(sigmoid(z), y)\n",
        "input A[2, 3]\nparam B[3, 2]\nwrt A\nC = A · B\nD = transpose(C) · C\n"
        "loss L = sum(exp(0.1 * D)) + sum(tanh(A) · B)\n",
        "input x[3]\nparam B[3, 2]\nwrt x\nr = x · B\nloss L = sum(sin(r)) + softmax_cross_entropy(r, r)\n",
        /* a scalar adjoint reaching linear operations: written s * v^0 */
        "input x[3]\nparam W[3, 3]\nparam v[3]\nwrt x\nh = W · x\nk = 2 * h + v\n"
        "loss L = sum(k) + sum(transpose(W) · k) + sum(outer(h, x))\n",
        /* the loss is a parameter; two names for one value */
        "param w\nloss L = w\n",
        "input x\nparam w\nwrt x\na = w * x\nb = w * x\nloss L = a * b + sin(x)\n",
    };
    for (size_t i = 0; i < sizeof sources / sizeof *sources; i++) {
        char *name = test_format("op_%zu", i);
        CU_ASSERT(check_model(name, sources[i], i < 2 || i >= 7) >= 3);
        free(name);
    }
}

/* A scalar adjoint a linear operation needs as a tensor is s * v^0, v^0
 * the ones of a shape: spelled with the first input, parameter or value
 * of that shape, never with a longer expression; a sum of ones is the
 * count. The lines still evaluate to the gradients. */
static void test_ones_are_short(void)
{
    static const char *const source =
        "input x[3]\nparam W[3, 3]\nparam v[3]\nparam c\nwrt x\nh = W · x\nk = 2 * h + v + c\n"
        "loss L = sum(k) + sum(transpose(W) · k) + sum(outer(h, x))\n";
    char *out = NULL;
    CU_ASSERT_EQUAL_FATAL(test_bpgen("x_ones", source, "--explain", &out, NULL), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\ndL/dk = dL/dL * (W · x^0 + 1)\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\ndL/dc = sum(dL/dk)\n"));
    int ones = 0;
    for (const char *p = strstr(out, "^0"); p; p = strstr(p + 1, "^0")) {
        /* the base is one name */
        CU_ASSERT(isalnum((unsigned char)p[-1]));
        ones++;
    }
    CU_ASSERT(ones >= 4);
    if (!strstr(out, "\ndL/dk = dL/dL * (W · x^0 + 1)\n"))
        fprintf(stderr, "\n%s\n", out);
    free(out);
    CU_ASSERT(check_model("x_ones_eval", source, false) >= 3);
}

/* A value reached along two paths at every one of 10 steps: the shared
 * adjoint is factored out (A * u + A * v = A * (u + v)), so closed forms
 * stay short instead of doubling with each step; and they still evaluate
 * to the gradient. */
static void test_shared_paths_stay_short(void)
{
    char source[2048] = "input x[2]\nwrt x\na0 = x\n";
    for (int k = 0; k < 10; k++)
        snprintf(source + strlen(source), sizeof source - strlen(source),
                 "b%d = sin(a%d)\nc%d = cos(a%d)\na%d = b%d * c%d\n", k, k, k, k, k + 1, k, k);
    strcat(source, "loss L = sum(a10)\n");
    char *out = NULL;
    CU_ASSERT_EQUAL(test_bpgen("xs_paths", source, "--explain", &out, NULL), 0);
    size_t longest = 0;
    for (const char *p = out; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        longest = len > longest ? len : longest;
        p += len + (eol ? 1 : 0);
    }
    CU_ASSERT(out && longest < 200);
    CU_ASSERT(out && strstr(out, "dL/da9 = dL/db9 * c9 - dL/dc9 * b9\n       = c9^2 - b9^2\n"));
    if (!out || longest >= 200)
        fprintf(stderr, "\n[xs_paths] longest line %zu:\n%s\n", longest, out ? out : "");
    free(out);
    CU_ASSERT(check_model("xs_paths", source, false) > 60);
}

/* A deep scalar model, h1 = tanh(w1 * x + b1) ... hN, each layer using the
 * one before once (chain) or twice (two paths: ... * h(k-1)). */
static char *deep_model(int layers, bool two_paths)
{
    size_t cap = (size_t)layers * 96 + 128, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "input x\ninput t\n");
    for (int k = 1; k <= layers; k++)
        len += (size_t)snprintf(s + len, cap - len, "param w%d = 0.5\nparam b%d\n", k, k);
    for (int k = 1; k <= layers; k++) {
        char prev[16];
        snprintf(prev, sizeof prev, k == 1 ? "x" : "h%d", k - 1);
        len += (size_t)snprintf(s + len, cap - len, "h%d = tanh(w%d * %s + b%d)%s%s\n", k, k,
                                prev, k, two_paths ? " * " : "", two_paths ? prev : "");
    }
    snprintf(s + len, cap - len, "output h%d\nloss L = (h%d - t)^2\n", layers, layers);
    return s;
}

/* --explain of a 300-layer model: before the limit on closed forms it ran
 * for minutes into tens of GB (a chain), or forever (two paths: the text
 * doubles with each layer). Now every line stays within the limit, the
 * cut is said, and the closed forms after it name the cut adjoint. */
static void expect_bounded(const char *name, bool two_paths)
{
    char *source = deep_model(300, two_paths);
    char *out = NULL;
    CU_ASSERT_EQUAL(test_bpgen(name, source, "--explain", &out, NULL), 0);
    size_t longest = 0, total = out ? strlen(out) : 0;
    for (const char *p = out; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        longest = len > longest ? len : longest;
        p += len + (eol ? 1 : 0);
    }
    /* a line is its left side (dL/dw300, 9 characters, padded) and at most
     * EXPLAIN_CLOSED_LIMIT characters of expression */
    CU_ASSERT(longest <= 4096 + 16);
    CU_ASSERT(total > 0 && total < ((size_t)4 << 20));
    const char *cut = out ? strstr(out, "# closed form not written: longer than 4096 characters; "
                                        "the closed forms below name dL/dh")
                          : NULL;
    CU_ASSERT_PTR_NOT_NULL(cut);
    CU_ASSERT(out && strstr(out, "# in inputs and parameters alone it is longer than 4096 "
                                 "characters: not written\n"));
    if (cut) {
        int k = atoi(strstr(cut, "dL/dh") + 5);
        /* a later closed form (a continuation line) starts from the named adjoint */
        char *from = test_format("  = dL/dh%d * ", k);
        CU_ASSERT(strstr(cut, from) != NULL);
        free(from);
    }
    if (!out || longest > 4096 + 16 || !cut)
        fprintf(stderr, "\n[%s] %zu bytes, longest line %zu\n", name, total, longest);
    free(out);
    free(source);
}

static void test_deep_models_stay_bounded(void)
{
    expect_bounded("xd_chain", false);
    expect_bounded("xd_two_paths", true);
}

/* Convolution, pooling, flatten and layernorm: their gradients have no
 * .net spelling, so the lines name the compiler's operations
 * (conv2d_grad_kernel(...)) and are checked for form, not evaluated. */
static void test_kernels(void)
{
    static const char source[] =
        "input x[1, 6, 6]\ninput y[2]\nparam K[2, 1, 3, 3]\nparam b[2]\nparam W[2, 18]\n"
        "c = relu(conv2d(x, K, b, stride=1, pad=1))\np = maxpool2d(c, 2)\nq = avgpool2d(p, 1)\n"
        "f = layernorm(flatten(q))\nz = W · f\nloss L = softmax_cross_entropy(z, y)\n";
    char *out = NULL, *md = NULL;
    CU_ASSERT_EQUAL(test_bpgen("xk_conv", source, "--explain", &out, NULL), 0);
    CU_ASSERT_EQUAL(test_bpgen("xk_conv", source, "--explain=markdown", &md, NULL), 0);
    CU_ASSERT_FATAL(out && md);
    Explain e = parse_explain(out);
    check_form("xk_conv", &e, NULL);
    CU_ASSERT_EQUAL(e.nblocks, 9);   /* L z f q p c, then K b W */
    CU_ASSERT(strstr(out, "c = relu(conv2d(x, K, b, stride=1, pad=1))\n") != NULL);
    CU_ASSERT(strstr(out, "dL/dK = conv2d_grad_kernel(dL/dc * step(conv2d(x, K, b, stride=1, "
                          "pad=1)), x, stride=1, pad=1, kh=3, kw=3)\n") != NULL);
    CU_ASSERT(strstr(out, "dL/dp = avgpool2d_grad(dL/dq, k=1, h=3, w=3)\n") != NULL);
    CU_ASSERT(strstr(out, "dL/dc = maxpool2d_grad(c, dL/dp, k=2)\n") != NULL);
    CU_ASSERT(strstr(md, "\\text{") == NULL);
    if (!e.ok || !strstr(out, "dL/dp = avgpool2d_grad(dL/dq, k=1, h=3, w=3)\n"))
        fprintf(stderr, "\n[xk_conv]\n%s\n", out);
    free_explain(&e);
    free(out);
    free(md);
}

/* ---------------------------------------------------------------- random models */

typedef struct {
    unsigned long long state;
    char text[8192];
    size_t len;
    bool scalars_only;
} Gen;

static unsigned pick(Gen *g, unsigned n)
{
    g->state = g->state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(g->state >> 33) % n;
}

static void put(Gen *g, const char *s)
{
    size_t n = strlen(s);
    if (g->len + n + 1 < sizeof g->text) {
        memcpy(g->text + g->len, s, n + 1);
        g->len += n;
    }
}

/* An expression of a scalar (vec false) or a [3] vector, from the names
 * defined so far (stage 0: leaves; 1: h; 2: u and k). */
static void gen(Gen *g, bool vec, int depth, int stage)
{
    static const char *const vleaves[] = {"x", "w", "h", "k"};
    static const char *const sleaves[] = {"s", "a", "c", "0.7", "u"};
    static const char *const fns[] = {"sin", "cos", "tanh", "sigmoid", "softplus", "exp", "relu"};
    if (depth <= 0 || pick(g, 4) == 0) {
        if (vec)
            put(g, vleaves[pick(g, stage >= 2 ? 4 : stage >= 1 ? 3 : 2)]);
        else
            put(g, sleaves[pick(g, stage >= 2 ? 5 : 4)]);
        return;
    }
    unsigned r = pick(g, g->scalars_only ? 11 : 16);
    if (r < 5) {
        static const char *const ops[] = {" + ", " - ", " * "};
        put(g, "(");
        gen(g, vec, depth - 1, stage);
        put(g, ops[pick(g, 3)]);
        gen(g, vec && pick(g, 3) != 0, depth - 1, stage);
        put(g, ")");
    } else if (r < 6) {
        put(g, "(");
        gen(g, vec, depth - 1, stage);
        put(g, " / (");
        gen(g, vec, depth - 1, stage);
        put(g, "^2 + 1.5))");
    } else if (r < 9) {
        put(g, fns[pick(g, 7)]);
        put(g, "(");
        gen(g, vec, depth - 1, stage);
        put(g, ")");
    } else if (r < 10) {
        put(g, pick(g, 2) ? "log(" : "sqrt(");
        gen(g, vec, depth - 1, stage);
        put(g, "^2 + 0.5)");
    } else if (r < 11) {
        put(g, "(");
        gen(g, vec, depth - 1, stage);
        put(g, ")^2");
    } else if (!vec) {
        static const char *const red[] = {"sum(", "logsumexp(", "mean("};
        unsigned k = pick(g, 4);
        if (k < 3) {
            put(g, red[k]);
            gen(g, true, depth - 1, stage);
            put(g, ")");
        } else {
            put(g, "dot(");
            gen(g, true, depth - 1, stage);
            put(g, ", ");
            gen(g, true, depth - 1, stage);
            put(g, ")");
        }
    } else {
        static const char *const open[] = {"(M · ", "softmax(", "(transpose(M) · ", "("};
        static const char *const close[] = {")", ")", ")", " · M)"};
        unsigned k = pick(g, 4);
        put(g, open[k]);
        gen(g, true, depth - 1, stage);
        put(g, close[k]);
    }
}

static void test_random_models(void)
{
    Gen g = {8, {0}, 0, false};
    int lines = 0;
    for (int i = 0; i < 12; i++) {
        g.len = 0;
        bool vec = i % 3 != 2;   /* every third model all scalars */
        g.scalars_only = !vec;
        if (vec)
            put(&g, "input x[3]\ninput s\nparam w[3]\nparam M[3, 3]\nparam a\nconst c = -1.25\n"
                    "wrt x, s\nh = ");
        else
            put(&g, "input x\ninput s\nparam w\nparam a\nconst c = -1.25\nwrt x, s\nh = ");
        gen(&g, false, 0, 0);   /* a leaf first, so h is never a constant */
        put(&g, " * ");
        gen(&g, vec, 3, 0);
        put(&g, "\nu = ");
        gen(&g, false, 3, 1);
        put(&g, " + sum(h)\nk = ");
        gen(&g, vec, 3, 1);
        put(&g, " * h\nloss L = ");
        gen(&g, false, 4, 2);
        put(&g, " + u * sum(k)\n");
        char *name = test_format("xr_%d", i);
        lines += check_model(name, g.text, !vec);
        free(name);
    }
    CU_ASSERT(lines > 100);
}

/* Markdown: the same blocks, one $$ line per line of text. */
static void test_markdown_matches_text(void)
{
    static const char *const examples[] = {"chain", "logistic", "height", "iris", "xor"};
    for (size_t i = 0; i < sizeof examples / sizeof *examples; i++) {
        char *args = test_format("examples/%s/%s.net --explain", examples[i], examples[i]);
        char *margs = test_format("%s=markdown", args);
        char *text = run_bpgen(args), *md = run_bpgen(margs);
        int text_lines = 0, md_lines = 0;
        Explain e = parse_explain(text ? text : "");
        for (int b = 0; b < e.nblocks; b++)
            text_lines += e.blocks[b].n;
        for (const char *p = md; p && (p = strstr(p, "$$ \\frac{\\partial ")); p++)
            md_lines++;
        CU_ASSERT_EQUAL(md_lines, text_lines);
        CU_ASSERT(md && !strstr(md, "\\text{"));   /* every line was understood */
        free_explain(&e);
        free(text);
        free(md);
        free(margs);
        free(args);
    }
}

/* docs/tutorial.md quotes `bpgen examples/... --explain` output: each
 * quoted block must be what bpgen prints now. */
static void test_tutorial_quotes_explain(void)
{
    char *doc = test_read_file("docs/tutorial.md", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    static const char prompt[] = "$ build/bpgen examples/";
    int blocks = 0;
    for (char *p = strstr(doc, prompt); p; p = strstr(p + 1, prompt)) {
        char *eol = strchr(p, '\n');
        char *fence = eol ? strstr(eol, "\n```") : NULL;
        if (!eol || !fence)
            break;
        char *cmdline = dup_n(p + 2 + strlen("build/bpgen"),
                              (size_t)(eol - p - 2 - strlen("build/bpgen")));
        if (strstr(cmdline, "--explain") || strstr(cmdline, "--dot")) {
            char *quoted = test_format("%.*s\n", (int)(fence - eol - 1), eol + 1);
            char *out = run_bpgen(cmdline);
            CU_ASSERT(out && strcmp(out, quoted) == 0);
            if (!out || strcmp(out, quoted) != 0)
                fprintf(stderr, "\n[tutorial] 'bpgen%s' prints:\n%s\nthe tutorial says:\n%s\n",
                        cmdline, out ? out : "", quoted);
            blocks++;
            free(out);
            free(quoted);
        }
        free(cmdline);
    }
    CU_ASSERT(blocks >= 4);
    free(doc);
}

static void test_usage(void)
{
    char *err = NULL;
    int rc = test_bpgen("u_explain", "input x\nwrt x\nloss y = x^2\n", "--explain=html", NULL, &err);
    CU_ASSERT_EQUAL(rc, 2);
    CU_ASSERT(err && strstr(err, "unknown format '--explain=html'"));
    free(err);
    /* errors in the model: reported as usual, nothing on stdout */
    char *out = NULL;
    err = NULL;
    rc = test_bpgen("u_explain_bad", "input x\nloss y = x +\n", "--explain", &out, &err);
    CU_ASSERT_EQUAL(rc, 1);
    CU_ASSERT(out && out[0] == '\0');
    CU_ASSERT(err && strstr(err, "u_explain_bad.net:2:"));
    free(out);
    free(err);
}

void register_explain(void)
{
    CU_pSuite s = CU_add_suite("explain", NULL, NULL);
    CU_add_test(s, "golden derivations of the examples", test_golden_examples);
    CU_add_test(s, "contract example, closed-form bounds", test_contract_example_and_lengths);
    CU_add_test(s, "every line of the examples evaluates to the gradient", test_examples_evaluate);
    CU_add_test(s, "every operation", test_every_operation);
    CU_add_test(s, "random models", test_random_models);
    CU_add_test(s, "convolution, pooling, flatten, layernorm", test_kernels);
    CU_add_test(s, "shared paths: factored, short, right", test_shared_paths_stay_short);
    CU_add_test(s, "ones are short", test_ones_are_short);
    CU_add_test(s, "300 layers: bounded, the cut said", test_deep_models_stay_bounded);
    CU_add_test(s, "markdown has every line", test_markdown_matches_text);
    CU_add_test(s, "tutorial quotes what bpgen prints", test_tutorial_quotes_explain);
    CU_add_test(s, "usage and model errors", test_usage);
}
