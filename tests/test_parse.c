/* test_parse.c — the lexer, the parser and the diagnostics they print.
 *
 * Each test parses a small source held in a string and looks at the AST it
 * gives, or at the exact text diag_flush() prints (captured with
 * open_memstream): place, message, quoted line and caret. Hostile inputs
 * (deep nesting, huge lines, binary bytes) must give an error, not a
 * crash. */
#include <CUnit/CUnit.h>
#include <stdlib.h>
#include <string.h>

#include "bpgen.h"
#include "support.h"

/* ---------------------------------------------------------------- helpers */

typedef struct {
    Arena *arena;
    Diag *diag;
    Program *prog;
    char *messages;     /* what diag_flush printed (malloc) */
} Parsed;

static Parsed parse_text(const char *src, size_t len)
{
    Parsed p;
    p.arena = arena_new();
    p.diag = diag_new(p.arena, "t.net", src, len);
    p.prog = parse_program(p.arena, p.diag, "t.net", src, len);
    size_t size = 0;
    FILE *out = open_memstream(&p.messages, &size);
    diag_flush(p.diag, out);
    fclose(out);
    return p;
}

static Parsed parse(const char *src)
{
    return parse_text(src, strlen(src));
}

static void done(Parsed *p)
{
    free(p->messages);
    arena_free(p->arena);
}

/* The messages of parse(src), for comparing with the expected text. */
static void expect_messages(const char *src, const char *expected)
{
    Parsed p = parse(src);
    CU_ASSERT_STRING_EQUAL(p.messages, expected);
    if (strcmp(p.messages, expected) != 0)
        fprintf(stderr, "\n--- got:\n%s--- expected:\n%s", p.messages,
                expected);
    done(&p);
}

/* The first statement's expression, written back with every operation in
 * parentheses: "(x + (y * z))", "-(x ^ 2)", "max(a, b)". */
static void write_expr(FILE *out, const Expr *e)
{
    static const char *ops[] = {"+", "-", "*", "/", "^", "·"};
    switch (e->kind) {
    case EX_NUM: fprintf(out, "%g", e->num); break;
    case EX_NAME: fputs(e->name, out); break;
    case EX_NEG: fputs("-", out); write_expr(out, e->lhs); break;
    case EX_BINARY:
        fputc('(', out);
        write_expr(out, e->lhs);
        fprintf(out, " %s ", ops[e->op]);
        write_expr(out, e->rhs);
        fputc(')', out);
        break;
    case EX_CALL:
        fprintf(out, "%s(", e->name);
        for (int i = 0; i < e->nargs; i++) {
            if (i)
                fputs(", ", out);
            write_expr(out, e->args[i]);
        }
        fputc(')', out);
        break;
    }
}

static void expect_expr(const char *expr_src, const char *expected)
{
    char *src = test_format("h = %s\n", expr_src);
    Parsed p = parse(src);
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p.prog->first);
    CU_ASSERT_EQUAL(p.prog->first->kind, ST_ASSIGN);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    write_expr(out, p.prog->first->expr);
    fclose(out);
    CU_ASSERT_STRING_EQUAL(text, expected);
    if (strcmp(text, expected) != 0)
        fprintf(stderr, "\n%s: got %s, expected %s\n", expr_src, text,
                expected);
    free(text);
    free(src);
    done(&p);
}

static int count_stmts(const Program *prog)
{
    int n = 0;
    for (const Stmt *s = prog->first; s; s = s->next)
        n++;
    return n;
}

static int count_errors(const char *messages)
{
    int n = 0;
    for (const char *s = messages; (s = strstr(s, ": error: ")); s++)
        n++;
    return n;
}

/* ---------------------------------------------------------------- statements */

static void test_statements(void)
{
    Parsed p = parse("model tiny\n"
                     "input x\n"
                     "input v[3]\n"
                     "input m[2, 3]\n"
                     "param W[4, 3] = normal(0, 0.5)\n"
                     "param b[4]\n"
                     "param s = -0.25\n"
                     "param u[2] = uniform(-0.1, +0.1)\n"
                     "const c = -1\n"
                     "h = W · v + b\n"
                     "loss L = sum(h)\n"
                     "output h, L\n"
                     "wrt v\n");
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    CU_ASSERT_EQUAL(count_stmts(p.prog), 13);
    Stmt *s = p.prog->first;
    CU_ASSERT_EQUAL(s->kind, ST_MODEL);
    CU_ASSERT_STRING_EQUAL(s->name, "tiny");
    CU_ASSERT_EQUAL(s->name_loc.line, 1);
    CU_ASSERT_EQUAL(s->name_loc.col, 7);
    s = s->next;
    CU_ASSERT_EQUAL(s->kind, ST_INPUT);
    CU_ASSERT_EQUAL(s->rank, 0);
    s = s->next;
    CU_ASSERT_EQUAL(s->rank, 1);
    CU_ASSERT_EQUAL(s->dims[0], 3);
    CU_ASSERT_EQUAL(s->dim_loc[0].col, 9);
    s = s->next;
    CU_ASSERT_EQUAL(s->rank, 2);
    CU_ASSERT_EQUAL(s->dims[0], 2);
    CU_ASSERT_EQUAL(s->dims[1], 3);
    s = s->next;
    CU_ASSERT_EQUAL(s->kind, ST_PARAM);
    CU_ASSERT_FALSE(s->frozen);
    CU_ASSERT_EQUAL(s->init.kind, INIT_NORMAL);
    CU_ASSERT_EQUAL(s->init.a, 0);
    CU_ASSERT_EQUAL(s->init.b, 0.5);
    CU_ASSERT_EQUAL(s->init.loc.col, 17);
    s = s->next;
    CU_ASSERT_EQUAL(s->init.kind, INIT_DEFAULT);
    s = s->next;
    CU_ASSERT_EQUAL(s->init.kind, INIT_VALUE);
    CU_ASSERT_EQUAL(s->init.a, -0.25);
    s = s->next;
    CU_ASSERT_EQUAL(s->init.kind, INIT_UNIFORM);
    CU_ASSERT_EQUAL(s->init.a, -0.1);
    CU_ASSERT_EQUAL(s->init.b, 0.1);
    s = s->next;
    CU_ASSERT_EQUAL(s->kind, ST_CONST);
    CU_ASSERT_EQUAL(s->value, -1);
    s = s->next;
    CU_ASSERT_EQUAL(s->kind, ST_ASSIGN);
    CU_ASSERT_STRING_EQUAL(s->name, "h");
    CU_ASSERT_EQUAL(s->expr->kind, EX_BINARY);
    CU_ASSERT_EQUAL(s->expr->op, BIN_ADD);
    CU_ASSERT_EQUAL(s->expr->loc.col, 11);   /* the '+' (· is one column) */
    CU_ASSERT_EQUAL(s->expr->lhs->op, BIN_MATMUL);
    CU_ASSERT_EQUAL(s->expr->lhs->loc.col, 7);
    s = s->next;
    CU_ASSERT_EQUAL(s->kind, ST_LOSS);
    CU_ASSERT_STRING_EQUAL(s->name, "L");
    CU_ASSERT_EQUAL(s->name_loc.col, 6);
    CU_ASSERT_EQUAL(s->expr->kind, EX_CALL);
    CU_ASSERT_STRING_EQUAL(s->expr->name, "sum");
    CU_ASSERT_EQUAL(s->expr->nargs, 1);
    s = s->next;
    CU_ASSERT_EQUAL(s->kind, ST_OUTPUT);
    CU_ASSERT_EQUAL(s->nnames, 2);
    CU_ASSERT_STRING_EQUAL(s->names[0].name, "h");
    CU_ASSERT_STRING_EQUAL(s->names[1].name, "L");
    CU_ASSERT_EQUAL(s->names[1].loc.col, 11);
    s = s->next;
    CU_ASSERT_EQUAL(s->kind, ST_WRT);
    CU_ASSERT_EQUAL(s->nnames, 1);
    done(&p);
}

static void test_initializers(void)
{
    Parsed p = parse("param a = zeros\nparam b = ones\nparam c = xavier\n"
                     "param d = he\nparam e = 3\nparam f = +2.5e1\n");
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    InitKind kinds[] = {INIT_ZEROS, INIT_ONES, INIT_XAVIER, INIT_HE,
                        INIT_VALUE, INIT_VALUE};
    int i = 0;
    for (Stmt *s = p.prog->first; s && i < 6; s = s->next, i++)
        CU_ASSERT_EQUAL(s->init.kind, kinds[i]);
    CU_ASSERT_EQUAL(p.prog->first->next->next->next->next->next->init.a, 25);
    done(&p);

    expect_messages("param a = foo\n",
        "t.net:1:11: error: unknown initializer 'foo'; expected zeros, ones, "
        "a number, normal(mean, std), uniform(lo, hi), xavier or he\n"
        "param a = foo\n"
        "          ^\n");
    expect_messages("param a = normal(1)\nparam b = zeros()\nparam c = uniform\n",
        "t.net:1:11: error: 'normal' takes 2 arguments, as in "
        "'normal(mean, std)', but 1 was given\n"
        "param a = normal(1)\n"
        "          ^\n"
        "t.net:2:11: error: 'zeros' takes no arguments; write 'zeros'\n"
        "param b = zeros()\n"
        "          ^\n"
        "t.net:3:11: error: 'uniform' needs arguments: write 'uniform(lo, hi)'\n"
        "param c = uniform\n"
        "          ^\n");
}

static void test_frozen(void)
{
    /* `frozen` is a modifier only between `param` and a name. */
    Parsed p = parse("input frozen[2]\n"
                     "param frozen W[2] = ones\n"
                     "param frozen   V\n"
                     "param frozen2 = 1\n"
                     "h = frozen * 2\n");
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    Stmt *s = p.prog->first;
    CU_ASSERT_EQUAL(s->kind, ST_INPUT);
    CU_ASSERT_STRING_EQUAL(s->name, "frozen");
    s = s->next;
    CU_ASSERT_TRUE(s->frozen);
    CU_ASSERT_STRING_EQUAL(s->name, "W");
    CU_ASSERT_EQUAL(s->init.kind, INIT_ONES);
    s = s->next;
    CU_ASSERT_TRUE(s->frozen);
    CU_ASSERT_STRING_EQUAL(s->name, "V");
    s = s->next;
    CU_ASSERT_FALSE(s->frozen);
    CU_ASSERT_STRING_EQUAL(s->name, "frozen2");
    done(&p);

    /* A parameter named frozen, and a frozen parameter named frozen. */
    p = parse("param frozen\nparam frozen frozen[2]\nparam frozen[3]\n");
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    s = p.prog->first;
    CU_ASSERT_FALSE(s->frozen);
    CU_ASSERT_STRING_EQUAL(s->name, "frozen");
    CU_ASSERT_TRUE(s->next->frozen);
    CU_ASSERT_STRING_EQUAL(s->next->name, "frozen");
    CU_ASSERT_FALSE(s->next->next->frozen);
    CU_ASSERT_EQUAL(s->next->next->rank, 1);
    done(&p);
}

/* ---------------------------------------------------------------- lexical */

static void test_numbers(void)
{
    Parsed p = parse("const a = 2\nconst b = 0.5\nconst c = .5\n"
                     "const d = 1e-3\nconst e = 2.5E+4\nconst f = 2.\n"
                     "const g = -1\nconst h = +3\n");
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    double want[] = {2, 0.5, 0.5, 1e-3, 2.5e4, 2, -1, 3};
    int i = 0;
    for (Stmt *s = p.prog->first; s; s = s->next, i++)
        CU_ASSERT_DOUBLE_EQUAL(s->value, want[i], 0);
    CU_ASSERT_EQUAL(i, 8);
    done(&p);

    expect_messages("const a = 1e99999\nh = 1 + 1e400\n",
        "t.net:1:11: error: number '1e99999' is too large for a double\n"
        "const a = 1e99999\n"
        "          ^\n"
        "t.net:2:9: error: number '1e400' is too large for a double\n"
        "h = 1 + 1e400\n"
        "        ^\n");
    expect_messages("h = 1e + 2.5.1 * 3x\n",
        "t.net:1:5: error: malformed number '1e'\n"
        "h = 1e + 2.5.1 * 3x\n"
        "    ^\n"
        "t.net:1:10: error: malformed number '2.5.1'\n"
        "h = 1e + 2.5.1 * 3x\n"
        "         ^\n"
        "t.net:1:18: error: malformed number '3x'\n"
        "h = 1e + 2.5.1 * 3x\n"
        "                 ^\n");
}

static void test_statement_ends(void)
{
    /* Newlines, semicolons, empty statements, comments, CRLF, no final
     * newline: all the same statements. */
    Parsed p = parse("\xEF\xBB\xBF# a comment\n"
                     ";;\n"
                     "input x[3]; input y[3] ;\r\n"
                     "\n"
                     "   # indented comment\n"
                     "h = max(x,   # broken inside ( )\n"
                     "        y) + 1 ;;\n"
                     "param W[2,\n"
                     "        3]\n"
                     "loss L = sum(h)   # no newline at the end");
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    CU_ASSERT_EQUAL(count_stmts(p.prog), 5);
    Stmt *h = p.prog->first->next->next;
    CU_ASSERT_STRING_EQUAL(h->name, "h");
    CU_ASSERT_EQUAL(h->expr->op, BIN_ADD);
    CU_ASSERT_EQUAL(h->expr->loc.line, 7);
    CU_ASSERT_EQUAL(h->expr->loc.col, 12);
    CU_ASSERT_EQUAL(h->next->rank, 2);
    CU_ASSERT_EQUAL(h->next->dim_loc[1].line, 9);
    done(&p);
}

static void test_matmul_spellings(void)
{
    expect_expr("A · x", "(A · x)");
    expect_expr("A @ x", "(A · x)");
    expect_expr("A@B·x", "((A · B) · x)");
    expect_expr("2 * A · x / 3", "(((2 * A) · x) / 3)");
}

static void test_precedence(void)
{
    expect_expr("a + b * c", "(a + (b * c))");
    expect_expr("a - b - c", "((a - b) - c)");
    expect_expr("a / b / c", "((a / b) / c)");
    expect_expr("a ^ b ^ c", "(a ^ (b ^ c))");
    expect_expr("-x^2", "-(x ^ 2)");
    expect_expr("2^-1", "(2 ^ -1)");
    expect_expr("-a * b", "(-a * b)");
    expect_expr("a * -b", "(a * -b)");
    expect_expr("- -a", "--a");
    expect_expr("a - -b", "(a - -b)");
    expect_expr("(a + b) * c", "((a + b) * c)");
    expect_expr("a ^ -b * c", "((a ^ -b) * c)");
    expect_expr("exp(a + b)^2", "(exp((a + b)) ^ 2)");
    expect_expr("max(a, b * c)", "max(a, (b * c))");
    expect_expr("f()", "f()");
    expect_expr(".5 * 1e-3", "(0.5 * 0.001)");
}

static void test_columns_count_characters(void)
{
    /* '·' is two bytes and one column; tabs are one column and are kept in
     * the caret line. */
    expect_messages("h = a · b ·· c\n",
        "t.net:1:12: error: expected an expression after '·', but found '·'\n"
        "h = a · b ·· c\n"
        "           ^\n");
    expect_messages("\th =\t(a +\t)\n",
        "t.net:1:11: error: expected an expression after '+', but found ')'\n"
        "\th =\t(a +\t)\n"
        "\t   \t    \t^\n");
    expect_messages("# é è\nh = é\n",
        "t.net:2:5: error: unexpected character 'é'\n"
        "h = é\n"
        "    ^\n");
}

/* ---------------------------------------------------------------- errors */

static void test_unclosed_bracket(void)
{
    /* The next line starts a statement, so it is not swallowed. */
    expect_messages("input x[4]\n"
                    "h = tanh(W1 · x + b1\n"
                    "z = h +\n"
                    "loss L = sum(z)\n",
        "t.net:2:21: error: expected ')' to close '(' opened at 2:9\n"
        "h = tanh(W1 · x + b1\n"
        "                    ^\n"
        "t.net:3:8: error: expected an expression after '+', but found end of line\n"
        "z = h +\n"
        "       ^\n");
    expect_messages("input x[4\n",
        "t.net:1:10: error: expected ']' to close '[' opened at 1:8\n"
        "input x[4\n"
        "         ^\n");
    expect_messages("h = (a]\n",
        "t.net:1:7: error: expected ')' to close '(' opened at 1:5\n"
        "h = (a]\n"
        "      ^\n");
    expect_messages("h = ((a)\n",
        "t.net:1:9: error: expected ')' to close '(' opened at 1:5\n"
        "h = ((a)\n"
        "        ^\n");
    /* At the end of the file, and with the file's end named. */
    expect_messages("h = sum(x +",
        "t.net:1:12: error: expected an expression after '+', but found end of file\n"
        "h = sum(x +\n"
        "           ^\n");
    expect_messages("h = sum((x +\n   1)",
        "t.net:2:6: error: expected ')' to close '(' opened at 1:8\n"
        "   1)\n"
        "     ^\n");
}

static void test_unexpected_tokens(void)
{
    expect_messages("y = x ]\n",
        "t.net:1:7: error: unexpected ']'\n"
        "y = x ]\n"
        "      ^\n");
    expect_messages("h = W x\n",
        "t.net:1:7: error: expected an operator, end of line or '(' after 'W', but found 'x'\n"
        "h = W x\n"
        "      ^\n");
    expect_messages("input x y\n",
        "t.net:1:9: error: expected end of line or '[' after 'x', but found 'y'\n"
        "input x y\n"
        "        ^\n");
    expect_messages("input 3\n",
        "t.net:1:7: error: expected a name after 'input', but found '3'\n"
        "input 3\n"
        "      ^\n");
    expect_messages("const c = x\n",
        "t.net:1:11: error: expected a number after '=', but found 'x'\n"
        "const c = x\n"
        "          ^\n");
    expect_messages("= 3\n",
        "t.net:1:1: error: expected a statement, but found '='\n"
        "= 3\n"
        "^\n");
    expect_messages("r = x ** 2\n",
        "t.net:1:7: error: '**' is not an operator; write 'a ^ p' for a power\n"
        "r = x ** 2\n"
        "      ^\n");
    expect_messages("h = x $ 2\n",
        "t.net:1:7: error: unexpected character '$'\n"
        "h = x $ 2\n"
        "      ^\n");
    expect_messages("h = x !== 2\n",
        "t.net:1:7: error: unexpected character '!'\n"
        "h = x !== 2\n"
        "      ^\n");
}

static void test_keywords_as_names(void)
{
    expect_messages("input input\n",
        "t.net:1:7: error: 'input' is a keyword and cannot be used as a name\n"
        "input input\n"
        "      ^\n");
    expect_messages("loss = 3\n",
        "t.net:1:1: error: 'loss' is a keyword and cannot be used as a name\n"
        "loss = 3\n"
        "^\n");
    expect_messages("h = wrt + 1\n",
        "t.net:1:5: error: 'wrt' is a keyword and cannot be used as a name\n"
        "h = wrt + 1\n"
        "    ^\n");
}

static void test_every_error_reported(void)
{
    Parsed p = parse("input x[3]\n"
                     "y = x ]\n"
                     "z = (x\n"
                     "w = 3 3\n"
                     "loss L = sum(x) +\n"
                     "= 3\n"
                     "3 + x\n"
                     "v = x $ 1\n"
                     "output x,\n");
    CU_ASSERT_EQUAL(count_errors(p.messages), 8);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.messages, "t.net:2:7: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.messages, "t.net:3:7: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.messages, "t.net:4:7: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.messages, "t.net:5:18: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.messages, "t.net:6:1: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.messages, "t.net:7:1: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.messages, "t.net:8:7: "));
    CU_ASSERT_PTR_NOT_NULL(strstr(p.messages, "t.net:9:10: "));
    /* Broken statements still define their names. */
    int broken = 0;
    for (Stmt *s = p.prog->first; s; s = s->next)
        broken += s->broken;
    CU_ASSERT_EQUAL(broken, 5);  /* y, z, w, L, v */
    done(&p);
}

/* ---------------------------------------------------------------- hostile input */

static char *repeat(const char *head, const char *unit, long n,
                    const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * (size_t)n + tl + 1);
    memcpy(s, head, hl);
    for (long i = 0; i < n; i++)
        memcpy(s + hl + ul * (size_t)i, unit, ul);
    memcpy(s + hl + ul * (size_t)n, tail, tl + 1);
    return s;
}

/* The first line of p's messages, which must be there. */
static void expect_first_line(const char *src, const char *first_line)
{
    Parsed p = parse(src);
    size_t n = strlen(first_line);
    CU_ASSERT_EQUAL(strncmp(p.messages, first_line, n), 0);
    if (strncmp(p.messages, first_line, n) != 0)
        fprintf(stderr, "\ngot: %.300s\n", p.messages);
    done(&p);
}

static void test_deep_nesting(void)
{
    /* 100 000 brackets: the 257th is the error, reported once, and the
     * statement still defines h. */
    char *s = repeat("input x\nh = ", "(", 100000, "x");
    char *src = repeat(s, ")", 100000, "\nloss L = h + q\n");
    free(s);
    Parsed p;
    p.arena = arena_new();
    p.diag = diag_new(p.arena, "t.net", src, strlen(src));
    p.prog = parse_program(p.arena, p.diag, "t.net", src, strlen(src));
    p.messages = NULL;
    Model *m = check_program(p.arena, p.diag, p.prog);
    CU_ASSERT_PTR_NULL(m);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    diag_flush(p.diag, out);
    fclose(out);
    CU_ASSERT_EQUAL(count_errors(text), 2);
    CU_ASSERT_EQUAL(strncmp(text, "t.net:2:261: error: expression nested too "
                                  "deeply (at most 256 levels)\n", 70), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "t.net:3:14: error: undefined name 'q'"));
    free(text);
    done(&p);
    free(src);

    src = repeat("input x\nh = ", "-", 100000, "x\nloss L = h2\n");
    p = parse(src);
    CU_ASSERT_EQUAL(count_errors(p.messages), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(p.messages, "t.net:2:261: error: "
                                  "expression nested too deeply"));
    done(&p);
    free(src);

    src = repeat("h = x", "^x", 100000, "\n");
    expect_first_line(src, "t.net:1:518: error: expression nested too deeply");
    free(src);

    src = repeat("h = ", "exp(", 100000, "x\n");
    expect_first_line(src, "t.net:1:1032: error: expression nested too deeply");
    free(src);

    /* Long chains nest on the left: limited by the tree's depth. */
    src = repeat("h = x", "+x", 300000, "\n");
    expect_first_line(src, "t.net:1:2004: error: expression too long: more "
                           "than 1000 operations deep; split it into named "
                           "values\n");
    free(src);

    /* Within the limits: fine. */
    s = repeat("h = ", "(", 250, "x");
    src = repeat(s, ")", 250, "\n");
    p = parse(src);
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    done(&p);
    free(src);
    free(s);
    src = repeat("h = x", "+x", 990, "\n");
    p = parse(src);
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    done(&p);
    free(src);
}

static void test_long_lines_and_names(void)
{
    /* A 1 MB comment and a 1 MB line of spaces: no trouble. */
    char *comment = repeat("input x\n#", "a", 1000000, "\n");
    char *src = repeat(comment, " ", 1000000, "h = q\n");
    Parsed p = parse(src);
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    done(&p);
    free(src);
    free(comment);

    /* An error far along a long line is quoted around its column. */
    src = repeat("h = x", " ", 1000, "+ $\n");
    p = parse(src);
    const char *head = "t.net:1:1008: error: unexpected character '$'\n...";
    CU_ASSERT_EQUAL(strncmp(p.messages, head, strlen(head)), 0);
    CU_ASSERT_TRUE(strlen(p.messages) < 600);
    done(&p);
    free(src);

    src = repeat("input ", "a", 300, "\n");
    expect_first_line(src, "t.net:1:7: error: name too long: 300 characters, "
                           "at most 255 are allowed\n");
    free(src);
    src = repeat("input ", "a", 255, "\n");
    p = parse(src);
    CU_ASSERT_STRING_EQUAL(p.messages, "");
    done(&p);
    free(src);
    src = repeat("input ", "b", 2000000, "\n");
    expect_first_line(src, "t.net:1:7: error: name too long: 2000000 "
                           "characters, at most 255 are allowed\n");
    free(src);
}

static void test_binary_input(void)
{
    const char nul[] = "input x\nloss L = x\0\x01\x02";
    Parsed p = parse_text(nul, sizeof nul - 1);
    CU_ASSERT_STRING_EQUAL(p.messages,
        "t.net:2:11: error: NUL byte: a model must be text, and this looks "
        "like a binary file\n"
        "loss L = x???\n"
        "          ^\n");
    CU_ASSERT_PTR_NULL(p.prog->first);
    done(&p);

    expect_messages("input x # caf\xE9\nloss L = x\n",
        "t.net:1:14: error: invalid UTF-8 (byte 0xE9): a model must be UTF-8 text\n"
        "input x # caf?\n"
        "             ^\n");
    /* Overlong encodings and surrogates are not UTF-8 either. */
    expect_first_line("h = \xC0\xAF\n", "t.net:1:5: error: invalid UTF-8 (byte 0xC0)");
    expect_first_line("h = \xED\xA0\x80\n", "t.net:1:5: error: invalid UTF-8 (byte 0xED)");
    expect_first_line("h = \xE2\x82\n", "t.net:1:5: error: invalid UTF-8 (byte 0xE2)");
    expect_first_line("h = x\x01\n", "t.net:1:6: error: unexpected control character (byte 0x01)");
}

/* ---------------------------------------------------------------- diag */

static void test_diag_order_and_notes(void)
{
    const char *src = "a\nbb\n";
    Arena *a = arena_new();
    Diag *d = diag_new(a, "f.net", src, strlen(src));
    diag_error(d, (Loc){2, 2}, "second %d", 2);
    diag_note(d, (Loc){1, 1}, "note of second");
    diag_error(d, (Loc){0, 0}, "placeless");
    diag_error(d, (Loc){1, 1}, "first");
    diag_error(d, (Loc){2, 2}, "second %d", 2);    /* a duplicate */
    diag_error(d, (Loc){2, 1}, "between");
    diag_error(d, (Loc){2, 3}, "past the end");
    CU_ASSERT_EQUAL(diag_count(d), 6);
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    diag_flush(d, out);
    diag_flush(d, out);     /* a second flush prints nothing new */
    fclose(out);
    CU_ASSERT_STRING_EQUAL(text,
        "f.net:1:1: error: first\n"
        "a\n"
        "^\n"
        "f.net:2:1: error: between\n"
        "bb\n"
        "^\n"
        "f.net:2:2: error: second 2\n"
        "bb\n"
        " ^\n"
        "f.net:1:1: note: note of second\n"
        "a\n"
        "^\n"
        "f.net:2:3: error: past the end\n"
        "bb\n"
        "  ^\n"
        "f.net: error: placeless\n");
    free(text);
    arena_free(a);
}

void register_parse(void)
{
    CU_pSuite s = CU_add_suite("parse", NULL, NULL);
    CU_add_test(s, "statements", test_statements);
    CU_add_test(s, "initializers", test_initializers);
    CU_add_test(s, "frozen", test_frozen);
    CU_add_test(s, "numbers", test_numbers);
    CU_add_test(s, "statement ends", test_statement_ends);
    CU_add_test(s, "matmul spellings", test_matmul_spellings);
    CU_add_test(s, "precedence", test_precedence);
    CU_add_test(s, "columns count characters", test_columns_count_characters);
    CU_add_test(s, "unclosed bracket", test_unclosed_bracket);
    CU_add_test(s, "unexpected tokens", test_unexpected_tokens);
    CU_add_test(s, "keywords as names", test_keywords_as_names);
    CU_add_test(s, "every error reported", test_every_error_reported);
    CU_add_test(s, "deep nesting", test_deep_nesting);
    CU_add_test(s, "long lines and names", test_long_lines_and_names);
    CU_add_test(s, "binary input", test_binary_input);
    CU_add_test(s, "diag order and notes", test_diag_order_and_notes);
}
