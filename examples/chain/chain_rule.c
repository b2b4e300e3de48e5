/* chain_rule.c — the chain rule on one variable, three ways.
 *
 *     S = L^2 + 2,   P = sqrt(S)
 *
 * By hand: dP/dL = dP/dS · dS/dL = 1 / (2 sqrt(S)) · 2L = L / sqrt(L^2 + 2).
 *
 * chain.net names L in `wrt`, so the generated chain_backward returns dP/dL
 * in grad_inputs[0]. This program compares, at several values of L, three
 * derivatives with a central finite difference of chain_forward:
 *   1. the generated backward pass,
 *   2. the formula `bpgen --derivatives` printed (the Makefile saves it in a
 *      file given as argv[1]), parsed and evaluated by a small evaluator
 *      below,
 *   3. the formula derived by hand above.
 * It ends with `result: chain max_rel_error E` (E the worst of the three)
 * and exits 1 when E > 1e-6.
 *
 * Usage: chain_rule [DERIVATIVES.txt]
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chain.h"

/* ---- a tiny evaluator for scalar .net expressions in one variable -------
 * expr := term (('+' | '-') term)*      term := unary (('*' | '/') unary)*
 * unary := '-' unary | power             power := atom ('^' unary)?
 * atom := NUMBER | NAME | NAME '(' expr ')' | '(' expr ')'
 * The one variable is `L`; functions: sqrt exp log abs sin cos tanh. */

typedef struct {
    const char *p;
    double L;
    int bad;
} Eval;

static double eval_expr(Eval *e);

static void skip_space(Eval *e)
{
    while (*e->p == ' ' || *e->p == '\t')
        e->p++;
}

static double eval_atom(Eval *e)
{
    skip_space(e);
    if (*e->p == '(') {
        e->p++;
        double v = eval_expr(e);
        skip_space(e);
        if (*e->p != ')')
            e->bad = 1;
        else
            e->p++;
        return v;
    }
    if (isdigit((unsigned char)*e->p) || *e->p == '.') {
        char *end;
        double v = strtod(e->p, &end);
        e->p = end;
        return v;
    }
    if (isalpha((unsigned char)*e->p) || *e->p == '_') {
        char name[32];
        size_t n = 0;
        while ((isalnum((unsigned char)*e->p) || *e->p == '_') && n < sizeof name - 1)
            name[n++] = *e->p++;
        name[n] = '\0';
        skip_space(e);
        if (*e->p != '(') {
            if (strcmp(name, "L") == 0)
                return e->L;
            e->bad = 1;
            return 0;
        }
        double a = eval_atom(e); /* the parenthesised argument */
        if (strcmp(name, "sqrt") == 0) return sqrt(a);
        if (strcmp(name, "exp") == 0) return exp(a);
        if (strcmp(name, "log") == 0) return log(a);
        if (strcmp(name, "abs") == 0) return fabs(a);
        if (strcmp(name, "sin") == 0) return sin(a);
        if (strcmp(name, "cos") == 0) return cos(a);
        if (strcmp(name, "tanh") == 0) return tanh(a);
        e->bad = 1;
        return 0;
    }
    e->bad = 1;
    return 0;
}

static double eval_unary(Eval *e);

static double eval_power(Eval *e)
{
    double base = eval_atom(e);
    skip_space(e);
    if (*e->p == '^') {
        e->p++;
        return pow(base, eval_unary(e)); /* right-associative */
    }
    return base;
}

static double eval_unary(Eval *e)
{
    skip_space(e);
    if (*e->p == '-') {
        e->p++;
        return -eval_unary(e);
    }
    return eval_power(e);
}

static double eval_term(Eval *e)
{
    double v = eval_unary(e);
    for (;;) {
        skip_space(e);
        if (*e->p == '*') {
            e->p++;
            v *= eval_unary(e);
        } else if (*e->p == '/') {
            e->p++;
            v /= eval_unary(e);
        } else {
            return v;
        }
    }
}

static double eval_expr(Eval *e)
{
    double v = eval_term(e);
    for (;;) {
        skip_space(e);
        if (*e->p == '+') {
            e->p++;
            v += eval_term(e);
        } else if (*e->p == '-') {
            e->p++;
            v -= eval_term(e);
        } else {
            return v;
        }
    }
}

/* Evaluates `text` at L; returns 0 on success. */
static int eval_formula(const char *text, double L, double *value)
{
    Eval e = {text, L, 0};
    *value = eval_expr(&e);
    skip_space(&e);
    if (*e.p != '\0' && *e.p != '\n')
        e.bad = 1;
    return e.bad ? -1 : 0;
}

/* Reads the line "dP/dL = EXPR" from the file bpgen --derivatives wrote;
 * returns 0 and copies EXPR into expr on success. */
static int read_formula(const char *path, char *expr, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[512];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "dP/dL = ", 8) == 0) {
            line[strcspn(line, "\r\n")] = '\0';
            if (strlen(line + 8) < size) {
                strcpy(expr, line + 8);
                found = 0;
            }
            break;
        }
    }
    fclose(f);
    if (found != 0)
        fprintf(stderr, "%s: no line 'dP/dL = ...'\n", path);
    return found;
}

static double rel_error(double a, double b)
{
    double scale = fmax(1.0, fmax(fabs(a), fabs(b)));
    return fabs(a - b) / scale;
}

/* The larger of two errors; NaN wins, so a NaN is never hidden. */
static double worse(double worst, double e)
{
    return e <= worst ? worst : e;
}

int main(int argc, char **argv)
{
    enum { N = 7 };
    const double Ls[N] = {-3, -1, -0.5, 0, 0.25, 1.5, 10};
    double theta[1] = {0}; /* chain.net has no parameters */
    double grad[1] = {0};

    char formula[400] = "";
    int have_formula = argc > 1 && read_formula(argv[1], formula, sizeof formula) == 0;
    if (argc > 1 && !have_formula)
        return 1;

    printf("S = L^2 + 2,  P = sqrt(S)\n");
    printf("by hand:             dP/dL = dP/dS * dS/dL = 1/(2 sqrt(S)) * 2L = L / sqrt(L^2 + 2)\n");
    if (have_formula)
        printf("bpgen --derivatives: dP/dL = %s\n", formula);
    printf("\n");

    /* One batch of N samples. The batch loss is the mean of the N losses,
     * so grad_inputs row i is (1/N) dP_i/dL_i. */
    void *ws = malloc(chain_workspace_size(N) + 1);
    void *ws1 = malloc(chain_workspace_size(1) + 1);
    if (!ws || !ws1) {
        fprintf(stderr, "chain_rule: out of memory\n");
        return 1;
    }
    const double *inputs[1] = {Ls};
    double dL[N];
    double *grad_inputs[1] = {dL};
    chain_forward(theta, inputs, N, ws);
    chain_backward(theta, inputs, N, ws, grad, grad_inputs);

    double worst = 0;
    printf("%8s %14s %14s %14s %14s\n", "L", "generated", "printed", "by hand",
           "finite diff");
    for (int i = 0; i < N; i++) {
        double L = Ls[i];
        double generated = dL[i] * N;
        double hand = L / sqrt(L * L + 2);
        /* Central difference of the generated forward, one sample. */
        double h = 1e-5 * fmax(1.0, fabs(L));
        double lp = L + h, lm = L - h;
        const double *ip[1] = {&lp}, *im[1] = {&lm};
        double fd = (chain_forward(theta, ip, 1, ws1) - chain_forward(theta, im, 1, ws1)) / (2 * h);
        double printed = NAN;
        if (have_formula && eval_formula(formula, L, &printed) != 0) {
            fprintf(stderr, "chain_rule: cannot evaluate '%s'\n", formula);
            return 1;
        }
        printf("%8.3g %14.10f %14.10f %14.10f %14.10f\n", L, generated, printed, hand, fd);
        worst = worse(worst, rel_error(generated, fd));
        worst = worse(worst, rel_error(hand, fd));
        if (have_formula)
            worst = worse(worst, rel_error(printed, fd));
    }
    free(ws);
    free(ws1);
    printf("\nworst relative difference from the finite differences: %.3g\n", worst);
    printf("result: chain max_rel_error %.3g\n", worst);
    return worst <= 1e-6 ? 0 : 1;
}
