/* parser.y — the grammar of .net files; text -> AST (Program).
 *
 * In: the tokens of grammar/lexer.l. Out: a Program, the list of every
 * statement that could be read, and one message in `diag` for each syntax
 * error.
 *
 * The parser is a pure (reentrant) bison parser. Every grammar action only
 * builds a node through one of the constructors at the end of this file;
 * names, shapes and every other rule of the language are check.c's job.
 *
 * Errors. `parse.error custom` hands each syntax error to
 * yyreport_syntax_error() below, which writes it the way a person would:
 * `expected ')' to close '(' opened at 3:9`, `expected an expression after
 * '+'`, `'loss' is a keyword and cannot be used as a name`. With `parse.lac
 * full` the list of expected tokens it sees is exact. Recovery happens at
 * statement boundaries: `line: error end` skips to the end of the statement,
 * and a few statements have error rules of their own (`NAME = error`) so
 * that the name they define still exists for check.c, which then does not
 * report every later use of it as undefined. A statement cut short by an
 * error is marked `broken`.
 *
 * Limits. Brackets, unary minus and `^` nest; the lexer stops a statement
 * that nests more than MAX_NESTING levels (so bison's own stack limit is
 * never reached), and the constructors stop an expression whose tree is
 * more than MAX_EXPR_DEPTH deep (a very long chain like a + b + c + ...),
 * so the recursive passes after the parser are bounded too.
 */

%code requires {
#include "bpgen.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* Limits on hostile input; see docs/language.md. */
enum {
    MAX_NESTING = 256,      /* brackets, unary minus and ^ open at once */
    MAX_EXPR_DEPTH = 1000,  /* levels of an expression tree */
    MAX_NAME_LEN = 255      /* characters in a name */
};

/* A token as the error messages need it: kind, place, and its text as a
 * slice of the source (empty for the newline the lexer adds at the end). */
typedef struct {
    int kind;
    Loc at;
    size_t offset, len;
    bool at_eof;
} TokenInfo;

/* An open bracket, and the unary minus signs and ^ pending inside it. */
typedef struct {
    char open;
    Loc at;
    int pending;
} Bracket;

/* State shared by the lexer (as its yyextra) and the parser. */
typedef struct {
    Arena *arena;
    Diag *diag;
    const char *text;
    size_t len;
    /* lexer */
    Loc pos;                /* the next character */
    size_t offset;          /* ... and its byte offset */
    Loc tok_at;             /* the token just matched */
    size_t tok_offset;
    Loc tok_end;            /* just after the last token returned */
    Bracket brackets[MAX_NESTING + 1];  /* [0] is the statement itself */
    int depth;              /* brackets open */
    Bracket closed;         /* the bracket the last ')' or ']' closed */
    bool has_closed;
    int nesting;            /* depth + pending minus signs and ^, all levels */
    int skip_depth;         /* brackets open in a statement being skipped */
    bool eof_newline_sent;
    TokenInfo prev, cur;    /* the last two tokens returned */
    /* parser */
    Stmt *first, *last;
} ParseState;

/* Growable lists built while parsing (arena memory). */
typedef struct { Expr **items; int n, cap; } ExprList;
typedef struct { NameRef *items; int n, cap; } NameList;
typedef struct { int n; double v[4]; Loc at[4]; Loc fifth; } DimList;
typedef struct { int n; double v[2]; } NumList;
typedef struct { double value; Loc at; } SignedNum;
}

%code provides {
int yylex(YYSTYPE *lval, YYLTYPE *lloc, yyscan_t scanner);
}

%code {
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "lexer.h"

/* Bison's stack grows with malloc past 200 entries (deep nesting); out of
 * memory there ends bpgen like any other allocation failure, not as a
 * syntax error. */
#define YYMALLOC parser_malloc
#define YYFREE free
static void *parser_malloc(size_t size)
{
    void *p = malloc(size);
    if (!p)
        arena_out_of_memory();
    return p;
}

/* Locations are the start of the first token of a rule. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                         \
    do {                                                                    \
        if (N)                                                              \
            (Cur) = YYRHSLOC(Rhs, 1);                                       \
        else                                                                \
            (Cur) = YYRHSLOC(Rhs, 0);                                       \
    } while (0)

static void yyerror(YYLTYPE *loc, yyscan_t scanner, ParseState *st,
                    const char *msg);

static void add_stmt(ParseState *st, Stmt *s);
static Stmt *stmt_new(ParseState *st, StmtKind kind, Loc at);
static Stmt *stmt_named(ParseState *st, StmtKind kind, Loc at,
                        const char *name, Loc name_at);
static Stmt *stmt_broken(ParseState *st, StmtKind kind, Loc at,
                         const char *name, Loc name_at);
static Stmt *stmt_input(ParseState *st, Loc at, const char *name,
                        Loc name_at, DimList dims);
static Stmt *stmt_param(ParseState *st, Loc at, bool frozen,
                        const char *name, Loc name_at, DimList dims,
                        Init init);
static Stmt *stmt_const(ParseState *st, Loc at, const char *name,
                        Loc name_at, SignedNum value);
static Stmt *stmt_value(ParseState *st, StmtKind kind, Loc at,
                        const char *name, Loc name_at, Expr *e);
static Stmt *stmt_names(ParseState *st, StmtKind kind, Loc at,
                        NameList names);

static Init init_value(SignedNum v);
static Init init_named(ParseState *st, const char *name, Loc at,
                       bool has_args, NumList args);

static DimList dims_add(DimList d, SignedNum v);
static NumList nums_add(NumList l, SignedNum v);
static NameList names_add(ParseState *st, NameList l, const char *name,
                          Loc at);
static ExprList exprs_add(ParseState *st, ExprList l, Expr *e);

static Expr *ex_num(ParseState *st, double v, Loc at);
static Expr *ex_name(ParseState *st, const char *name, Loc at);
static Expr *ex_neg(ParseState *st, Expr *e, Loc at);
static Expr *ex_binary(ParseState *st, BinOp op, Expr *l, Expr *r, Loc at);
static Expr *ex_call(ParseState *st, const char *name, Loc at,
                     ExprList args);
static Expr *ex_keyword(Expr *value, const char *keyword, Loc at);
}

%define api.pure full
%define api.token.prefix {TOK_}
%define api.location.type {Loc}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%lex-param {yyscan_t scanner}
%parse-param {yyscan_t scanner} {ParseState *st}

%union {
    double num;
    const char *str;
    bool flag;
    Expr *expr;
    Init init;
    SignedNum snum;
    DimList dims;
    NumList nums;
    NameList names;
    ExprList exprs;
}

%token <str> IDENT  "name"
%token <num> NUMBER "number"
%token MODEL "model" INPUT "input" PARAM "param" CONST "const"
       OUTPUT "output" LOSS "loss" WRT "wrt"
%token FROZEN "frozen"
%token NEWLINE "end of line" SEMI ";"
%token LPAREN "(" RPAREN ")" LBRACKET "[" RBRACKET "]" COMMA "," ASSIGN "="
%token PLUS "+" MINUS "-" STAR "*" SLASH "/" CARET "^" MATMUL "·"

%type <flag> frozen_opt
%type <dims> dims_opt dim_list
%type <init> init_opt init
%type <nums> init_args number_list
%type <snum> signed_number
%type <names> name_list
%type <expr> expr primary arg
%type <exprs> args_opt args

%left "+" "-"
%left "*" "/" "·"
%precedence NEG
%right "^"

%%

/* A file is a list of lines; a line is a statement and its end. */
program
    : %empty
    | program line
    ;

line
    : end                       { yyerrok; }
    | stmt end                  { yyerrok; }
    | error end                 { yyerrok; }
    ;

end
    : "end of line"
    | ";"
    ;

/* The statements. Each joins the program as soon as it is read. The
 * `error` alternatives keep the name a broken statement defines, so that
 * its uses are not reported as undefined. */
stmt
    : "model" IDENT
        { add_stmt(st, stmt_named(st, ST_MODEL, @1, $2, @2)); }
    | "input" IDENT dims_opt
        { add_stmt(st, stmt_input(st, @1, $2, @2, $3)); }
    | "input" IDENT error
        { add_stmt(st, stmt_broken(st, ST_INPUT, @1, $2, @2)); }
    | "param" frozen_opt IDENT dims_opt init_opt
        { add_stmt(st, stmt_param(st, @1, $2, $3, @3, $4, $5)); }
    | "param" frozen_opt IDENT error
        { add_stmt(st, stmt_broken(st, ST_PARAM, @1, $3, @3)); }
    | "const" IDENT "=" signed_number
        { add_stmt(st, stmt_const(st, @1, $2, @2, $4)); }
    | "const" IDENT error
        { add_stmt(st, stmt_broken(st, ST_CONST, @1, $2, @2)); }
    | IDENT "=" expr
        { add_stmt(st, stmt_value(st, ST_ASSIGN, @1, $1, @1, $3)); }
    | IDENT "=" error
        { add_stmt(st, stmt_broken(st, ST_ASSIGN, @1, $1, @1)); }
    | "loss" IDENT "=" expr
        { add_stmt(st, stmt_value(st, ST_LOSS, @1, $2, @2, $4)); }
    | "loss" IDENT "=" error
        { add_stmt(st, stmt_broken(st, ST_LOSS, @1, $2, @2)); }
    | "output" name_list
        { add_stmt(st, stmt_names(st, ST_OUTPUT, @1, $2)); }
    | "wrt" name_list
        { add_stmt(st, stmt_names(st, ST_WRT, @1, $2)); }
    ;

/* `frozen` is a token only right after `param` and before a name. */
frozen_opt
    : %empty                    { $$ = false; }
    | "frozen"                  { $$ = true; }
    ;

dims_opt
    : %empty                    { $$ = (DimList){0}; }
    | "[" dim_list "]"          { $$ = $2; }
    ;

dim_list
    : signed_number             { $$ = dims_add((DimList){0}, $1); }
    | dim_list "," signed_number
                                { $$ = dims_add($1, $3); }
    ;

/* INIT: zeros, ones, a number, normal(mean, std), uniform(lo, hi),
 * xavier, he. */
init_opt
    : %empty                    { $$ = (Init){.kind = INIT_DEFAULT}; }
    | "=" init                  { $$ = $2; }
    ;

init
    : signed_number             { $$ = init_value($1); }
    | IDENT                     { $$ = init_named(st, $1, @1, false, (NumList){0}); }
    | IDENT "(" init_args ")"   { $$ = init_named(st, $1, @1, true, $3); }
    ;

init_args
    : %empty                    { $$ = (NumList){0}; }
    | number_list               { $$ = $1; }
    ;

number_list
    : signed_number             { $$ = nums_add((NumList){0}, $1); }
    | number_list "," signed_number
                                { $$ = nums_add($1, $3); }
    ;

signed_number
    : NUMBER                    { $$ = (SignedNum){$1, @1}; }
    | "-" NUMBER                { $$ = (SignedNum){-$2, @1}; }
    | "+" NUMBER                { $$ = (SignedNum){$2, @1}; }
    ;

name_list
    : IDENT                     { $$ = names_add(st, (NameList){0}, $1, @1); }
    | name_list "," IDENT       { $$ = names_add(st, $1, $3, @3); }
    ;

/* Expressions, loosest first: + - , * / ·, unary -, ^ (right). A
 * constructor returns NULL when the tree grows too deep; YYERROR then
 * drops the statement (the constructor reported why). */
expr
    : expr "+" expr             { if (!($$ = ex_binary(st, BIN_ADD, $1, $3, @2))) YYERROR; }
    | expr "-" expr             { if (!($$ = ex_binary(st, BIN_SUB, $1, $3, @2))) YYERROR; }
    | expr "*" expr             { if (!($$ = ex_binary(st, BIN_MUL, $1, $3, @2))) YYERROR; }
    | expr "/" expr             { if (!($$ = ex_binary(st, BIN_DIV, $1, $3, @2))) YYERROR; }
    | expr "·" expr             { if (!($$ = ex_binary(st, BIN_MATMUL, $1, $3, @2))) YYERROR; }
    | "-" expr %prec NEG        { if (!($$ = ex_neg(st, $2, @1))) YYERROR; }
    | expr "^" expr             { if (!($$ = ex_binary(st, BIN_POW, $1, $3, @2))) YYERROR; }
    | primary                   { $$ = $1; }
    ;

primary
    : NUMBER                    { $$ = ex_num(st, $1, @1); }
    | IDENT                     { $$ = ex_name(st, $1, @1); }
    | IDENT "(" args_opt ")"    { if (!($$ = ex_call(st, $1, @1, $3))) YYERROR; }
    | "(" expr ")"              { $$ = $2; }
    ;

args_opt
    : %empty                    { $$ = (ExprList){0}; }
    | args                      { $$ = $1; }
    ;

args
    : arg                       { $$ = exprs_add(st, (ExprList){0}, $1); }
    | args "," arg              { $$ = exprs_add(st, $1, $3); }
    ;

/* `stride=2`: a keyword argument (check.c knows which a function takes) */
arg
    : expr                      { $$ = $1; }
    | IDENT "=" expr            { $$ = ex_keyword($3, $1, @1); }
    ;

%%

/* ------------------------------------------------------------ constructors */

/* Statements join the program as soon as they are read: an error right
 * after one (`loss L = sum(x))`) must not lose it. */
static void add_stmt(ParseState *st, Stmt *s)
{
    if (st->last)
        st->last->next = s;
    else
        st->first = s;
    st->last = s;
}

static Stmt *stmt_new(ParseState *st, StmtKind kind, Loc at)
{
    Stmt *s = arena_alloc(st->arena, sizeof *s);
    s->kind = kind;
    s->loc = at;
    return s;
}

static Stmt *stmt_named(ParseState *st, StmtKind kind, Loc at,
                        const char *name, Loc name_at)
{
    Stmt *s = stmt_new(st, kind, at);
    s->name = name;
    s->name_loc = name_at;
    return s;
}

static Stmt *stmt_broken(ParseState *st, StmtKind kind, Loc at,
                         const char *name, Loc name_at)
{
    Stmt *s = stmt_named(st, kind, at, name, name_at);
    s->broken = true;
    return s;
}

static void set_dims(Stmt *s, DimList dims)
{
    s->rank = dims.n;
    for (int i = 0; i < 4 && i < dims.n; i++) {
        s->dims[i] = dims.v[i];
        s->dim_loc[i] = dims.at[i];
    }
    s->excess_dim_loc = dims.fifth;
}

static Stmt *stmt_input(ParseState *st, Loc at, const char *name,
                        Loc name_at, DimList dims)
{
    Stmt *s = stmt_named(st, ST_INPUT, at, name, name_at);
    set_dims(s, dims);
    return s;
}

static Stmt *stmt_param(ParseState *st, Loc at, bool frozen,
                        const char *name, Loc name_at, DimList dims,
                        Init init)
{
    Stmt *s = stmt_named(st, ST_PARAM, at, name, name_at);
    set_dims(s, dims);
    s->frozen = frozen;
    s->init = init;
    return s;
}

static Stmt *stmt_const(ParseState *st, Loc at, const char *name,
                        Loc name_at, SignedNum value)
{
    Stmt *s = stmt_named(st, ST_CONST, at, name, name_at);
    s->value = value.value;
    return s;
}

static Stmt *stmt_value(ParseState *st, StmtKind kind, Loc at,
                        const char *name, Loc name_at, Expr *e)
{
    Stmt *s = stmt_named(st, kind, at, name, name_at);
    s->expr = e;
    return s;
}

static Stmt *stmt_names(ParseState *st, StmtKind kind, Loc at,
                        NameList names)
{
    Stmt *s = stmt_new(st, kind, at);
    s->names = names.items;
    s->nnames = names.n;
    return s;
}

static Init init_value(SignedNum v)
{
    return (Init){.kind = INIT_VALUE, .a = v.value, .loc = v.at};
}

/* The named initializers and how many numbers each takes. */
static const struct {
    const char *name;
    InitKind kind;
    int nargs;
    const char *usage;
} initializers[] = {
    {"zeros", INIT_ZEROS, 0, "zeros"},
    {"ones", INIT_ONES, 0, "ones"},
    {"normal", INIT_NORMAL, 2, "normal(mean, std)"},
    {"uniform", INIT_UNIFORM, 2, "uniform(lo, hi)"},
    {"xavier", INIT_XAVIER, 0, "xavier"},
    {"he", INIT_HE, 0, "he"},
};

static Init init_named(ParseState *st, const char *name, Loc at,
                       bool has_args, NumList args)
{
    Init init = {.kind = INIT_DEFAULT, .loc = at};
    for (size_t i = 0; i < sizeof initializers / sizeof initializers[0]; i++) {
        if (strcmp(name, initializers[i].name) != 0)
            continue;
        int want = initializers[i].nargs;
        if (want == 0 && has_args)
            diag_error(st->diag, at, "'%s' takes no arguments; write '%s'",
                       name, name);
        else if (want > 0 && !has_args)
            diag_error(st->diag, at, "'%s' needs arguments: write '%s'",
                       name, initializers[i].usage);
        else if (want > 0 && args.n != want)
            diag_error(st->diag, at, "'%s' takes %d arguments, as in '%s', "
                       "but %d %s given", name, want, initializers[i].usage,
                       args.n, args.n == 1 ? "was" : "were");
        else {
            init.kind = initializers[i].kind;
            init.a = args.v[0];
            init.b = args.v[1];
        }
        return init;
    }
    diag_error(st->diag, at,
               "unknown initializer '%s'; expected zeros, ones, a number, "
               "normal(mean, std), uniform(lo, hi), xavier or he", name);
    return init;
}

static DimList dims_add(DimList d, SignedNum v)
{
    if (d.n < 4) {
        d.v[d.n] = v.value;
        d.at[d.n] = v.at;
    } else if (d.n == 4) {
        d.fifth = v.at;
    }
    if (d.n < 1000)
        d.n++;
    return d;
}

static NumList nums_add(NumList l, SignedNum v)
{
    if (l.n < 2)
        l.v[l.n] = v.value;
    if (l.n < 1000)
        l.n++;
    return l;
}

/* Lists grow by doubling into fresh arena memory. */
static void *grow(ParseState *st, void *items, int n, int *cap, size_t size)
{
    if (n < *cap)
        return items;
    int new_cap = *cap ? 2 * *cap : 4;
    void *bigger = arena_alloc(st->arena, (size_t)new_cap * size);
    if (n)
        memcpy(bigger, items, (size_t)n * size);
    *cap = new_cap;
    return bigger;
}

static NameList names_add(ParseState *st, NameList l, const char *name,
                          Loc at)
{
    l.items = grow(st, l.items, l.n, &l.cap, sizeof *l.items);
    l.items[l.n++] = (NameRef){name, at};
    return l;
}

static ExprList exprs_add(ParseState *st, ExprList l, Expr *e)
{
    l.items = grow(st, l.items, l.n, &l.cap, sizeof *l.items);
    l.items[l.n++] = e;
    return l;
}

static Expr *ex_new(ParseState *st, ExprKind kind, Loc at, int depth)
{
    if (depth > MAX_EXPR_DEPTH) {
        diag_error(st->diag, at,
                   "expression too long: more than %d operations deep; "
                   "split it into named values", MAX_EXPR_DEPTH);
        return NULL;
    }
    Expr *e = arena_alloc(st->arena, sizeof *e);
    e->kind = kind;
    e->loc = at;
    e->depth = depth;
    return e;
}

static Expr *ex_num(ParseState *st, double v, Loc at)
{
    Expr *e = ex_new(st, EX_NUM, at, 1);
    e->num = v;
    return e;
}

static Expr *ex_keyword(Expr *value, const char *keyword, Loc at)
{
    value->keyword = keyword;
    value->keyword_loc = at;
    return value;
}

static Expr *ex_name(ParseState *st, const char *name, Loc at)
{
    Expr *e = ex_new(st, EX_NAME, at, 1);
    e->name = name;
    return e;
}

static Expr *ex_neg(ParseState *st, Expr *operand, Loc at)
{
    Expr *e = ex_new(st, EX_NEG, at, operand->depth + 1);
    if (e)
        e->lhs = operand;
    return e;
}

static Expr *ex_binary(ParseState *st, BinOp op, Expr *l, Expr *r, Loc at)
{
    int depth = (l->depth > r->depth ? l->depth : r->depth) + 1;
    Expr *e = ex_new(st, EX_BINARY, at, depth);
    if (e) {
        e->op = op;
        e->lhs = l;
        e->rhs = r;
    }
    return e;
}

static Expr *ex_call(ParseState *st, const char *name, Loc at,
                     ExprList args)
{
    int depth = 0;
    for (int i = 0; i < args.n; i++)
        if (args.items[i]->depth > depth)
            depth = args.items[i]->depth;
    Expr *e = ex_new(st, EX_CALL, at, depth + 1);
    if (e) {
        e->name = name;
        e->args = args.items;
        e->nargs = args.n;
    }
    return e;
}

/* ------------------------------------------------------------ messages */

/* How a token is written. */
static const char *spelling(yysymbol_kind_t s)
{
    switch (s) {
    case YYSYMBOL_IDENT: return "name";
    case YYSYMBOL_NUMBER: return "number";
    case YYSYMBOL_MODEL: return "model";
    case YYSYMBOL_INPUT: return "input";
    case YYSYMBOL_PARAM: return "param";
    case YYSYMBOL_CONST: return "const";
    case YYSYMBOL_OUTPUT: return "output";
    case YYSYMBOL_LOSS: return "loss";
    case YYSYMBOL_WRT: return "wrt";
    case YYSYMBOL_FROZEN: return "frozen";
    case YYSYMBOL_SEMI: return ";";
    case YYSYMBOL_LPAREN: return "(";
    case YYSYMBOL_RPAREN: return ")";
    case YYSYMBOL_LBRACKET: return "[";
    case YYSYMBOL_RBRACKET: return "]";
    case YYSYMBOL_COMMA: return ",";
    case YYSYMBOL_ASSIGN: return "=";
    case YYSYMBOL_PLUS: return "+";
    case YYSYMBOL_MINUS: return "-";
    case YYSYMBOL_STAR: return "*";
    case YYSYMBOL_SLASH: return "/";
    case YYSYMBOL_CARET: return "^";
    case YYSYMBOL_MATMUL: return "·";
    default: return "?";
    }
}

/* The text of a token as written, quoted, e.g. 'tanh'; long names are
 * shortened. Newlines and the end of the file are named in words. */
static const char *describe(ParseState *st, const TokenInfo *t)
{
    if (t->kind == TOK_YYEOF || (t->kind == TOK_NEWLINE && t->at_eof))
        return "end of file";
    if (t->kind == TOK_NEWLINE)
        return "end of line";
    size_t len = t->len;
    if (len == 0 || t->offset + len > st->len)
        return arena_printf(st->arena, "'%s'", spelling(YYTRANSLATE(t->kind)));
    const char *more = "";
    if (len > 40) {
        len = 40;
        while (len > 0 && (st->text[t->offset + len] & 0xC0) == 0x80)
            len--;      /* do not cut a character in two */
        more = "...";
    }
    return arena_printf(st->arena, "'%.*s%s'", (int)len,
                        st->text + t->offset, more);
}

static bool is_keyword(int kind)
{
    return kind == TOK_MODEL || kind == TOK_INPUT || kind == TOK_PARAM ||
           kind == TOK_CONST || kind == TOK_OUTPUT || kind == TOK_LOSS ||
           kind == TOK_WRT;
}

static bool is_statement_end(int kind)
{
    return kind == TOK_NEWLINE || kind == TOK_SEMI || kind == TOK_YYEOF;
}

/* Writes the expected tokens as a person would list them: "an
 * expression", "an operator", "end of line", "',' or ']'"... */
static const char *expected_list(ParseState *st, const yysymbol_kind_t *exp,
                                 int n)
{
    bool want[YYNTOKENS] = {false};
    for (int i = 0; i < n; i++)
        want[exp[i]] = true;
    const char *items[YYNTOKENS + 4];
    int k = 0;
    if (want[YYSYMBOL_IDENT] && want[YYSYMBOL_NUMBER] && want[YYSYMBOL_LPAREN]) {
        items[k++] = "an expression";
        want[YYSYMBOL_IDENT] = want[YYSYMBOL_NUMBER] = false;
        want[YYSYMBOL_LPAREN] = want[YYSYMBOL_MINUS] = false;
    }
    if (want[YYSYMBOL_NUMBER]) {
        items[k++] = "a number";
        want[YYSYMBOL_NUMBER] = want[YYSYMBOL_MINUS] = want[YYSYMBOL_PLUS] = false;
    }
    if (want[YYSYMBOL_STAR] || want[YYSYMBOL_CARET]) {
        items[k++] = "an operator";
        want[YYSYMBOL_PLUS] = want[YYSYMBOL_MINUS] = want[YYSYMBOL_STAR] = false;
        want[YYSYMBOL_SLASH] = want[YYSYMBOL_MATMUL] = want[YYSYMBOL_CARET] = false;
    }
    if (want[YYSYMBOL_IDENT]) {
        items[k++] = "a name";
        want[YYSYMBOL_IDENT] = false;
    }
    for (int s = 0; s < YYNTOKENS; s++) {
        if (!want[s] || s == YYSYMBOL_SEMI || s == YYSYMBOL_YYEOF ||
            s == YYSYMBOL_FROZEN)
            continue;
        if (s == YYSYMBOL_NEWLINE)
            items[k++] = "end of line";
        else
            items[k++] = arena_printf(st->arena, "'%s'",
                                      spelling((yysymbol_kind_t)s));
    }
    if (k == 0)
        return "something else";
    const char *list = items[0];
    for (int i = 1; i < k; i++)
        list = arena_printf(st->arena, "%s%s%s", list,
                            i == k - 1 ? " or " : ", ", items[i]);
    return list;
}

/* Called by bison for every syntax error (not for the lexer's errors,
 * which reach the parser as YYerror and are already reported). */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner,
                                 ParseState *st)
{
    (void)scanner;
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    if (n < 0)
        n = 0;
    bool want[YYNTOKENS] = {false};
    for (int i = 0; i < n; i++)
        want[exp[i]] = true;

    const TokenInfo *found = &st->cur;
    const TokenInfo *prev = &st->prev;
    int kind = found->kind;
    Loc at = *yypcontext_location(ctx);
    bool closing = kind == TOK_RPAREN || kind == TOK_RBRACKET;
    /* The innermost open bracket; a closing bracket has already closed it
     * in the lexer. */
    const Bracket *open = closing ? (st->has_closed ? &st->closed : NULL)
                        : st->depth > 0 ? &st->brackets[st->depth] : NULL;
    char close = open ? (open->open == '(' ? ')' : ']') : 0;
    bool close_wanted = open && want[close == ')' ? YYSYMBOL_RPAREN
                                                  : YYSYMBOL_RBRACKET];
    bool expr_wanted = want[YYSYMBOL_IDENT] && want[YYSYMBOL_NUMBER] &&
                       want[YYSYMBOL_LPAREN];

    if (want[YYSYMBOL_IDENT] && is_keyword(kind)) {
        diag_error(st->diag, at, "%s is a keyword and cannot be used as a name",
                   describe(st, found));
    } else if (kind == TOK_ASSIGN && is_keyword(prev->kind) &&
               want[YYSYMBOL_IDENT]) {
        diag_error(st->diag, prev->at,
                   "%s is a keyword and cannot be used as a name",
                   describe(st, prev));
    } else if (kind == TOK_STAR && prev->kind == TOK_STAR &&
               prev->offset + 1 == found->offset) {
        diag_error(st->diag, prev->at,
                   "'**' is not an operator; write 'a ^ p' for a power");
    } else if (expr_wanted && prev->kind != 0) {
        diag_error(st->diag, at, "expected an expression after %s, but found %s",
                   describe(st, prev), describe(st, found));
    } else if (close_wanted && (is_statement_end(kind) || closing)) {
        diag_error(st->diag, at, "expected '%c' to close '%c' opened at %d:%d",
                   close, open->open, open->at.line, open->at.col);
    } else if (closing) {
        diag_error(st->diag, at, "unexpected %s", describe(st, found));
    } else if (want[YYSYMBOL_MODEL]) {
        diag_error(st->diag, at, "expected a statement, but found %s",
                   describe(st, found));
    } else if (prev->kind == 0) {
        diag_error(st->diag, at, "expected %s, but found %s",
                   expected_list(st, exp, n), describe(st, found));
    } else {
        diag_error(st->diag, at, "expected %s after %s, but found %s",
                   expected_list(st, exp, n), describe(st, prev),
                   describe(st, found));
    }
    return 0;
}

/* Bison calls this only when its stack is exhausted, which the lexer's
 * nesting limit is there to prevent. */
static void yyerror(YYLTYPE *loc, yyscan_t scanner, ParseState *st,
                    const char *msg)
{
    (void)scanner;
    diag_error(st->diag, *loc, "cannot parse this: %s", msg);
}

/* ------------------------------------------------------------ entry point */

/* Files must be UTF-8 text: reports the first NUL byte or invalid UTF-8
 * sequence, at its line and column, and returns false. */
static bool check_encoding(Diag *diag, const char *text, size_t len)
{
    Loc at = {1, 1};
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        size_t n = 0;
        unsigned long cp = 0, min = 0;
        if (c == 0) {
            diag_error(diag, at, "NUL byte: a model must be text, "
                                 "and this looks like a binary file");
            return false;
        }
        if (c < 0x80)
            n = 1, cp = c;
        else if (c >= 0xC2 && c <= 0xDF)
            n = 2, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 3, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 4, cp = c & 0x07, min = 0x10000;
        bool ok = n > 0 && i + n <= len;
        for (size_t k = 1; ok && k < n; k++) {
            ok = (s[i + k] & 0xC0) == 0x80;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)))
            ok = false;
        if (!ok) {
            diag_error(diag, at, "invalid UTF-8 (byte 0x%02X): a model must "
                                 "be UTF-8 text", c);
            return false;
        }
        if (c == '\n')
            at.line++, at.col = 1;
        else
            at.col++;
        i += n;
    }
    return true;
}

Program *parse_program(Arena *a, Diag *diag, const char *path,
                       const char *text, size_t len)
{
    Program *prog = arena_alloc(a, sizeof *prog);
    prog->path = path;
    if (len > INT_MAX / 2) {
        diag_error(diag, (Loc){0, 0}, "file too large (%zu bytes)", len);
        return prog;
    }
    if (!check_encoding(diag, text, len))
        return prog;

    ParseState *st = arena_alloc(a, sizeof *st);
    st->arena = a;
    st->diag = diag;
    st->text = text;
    st->len = len;
    st->pos = (Loc){1, 1};

    yyscan_t scanner;
    if (yylex_init_extra(st, &scanner) != 0) {
        fputs("bpgen: out of memory\n", stderr);
        exit(2);
    }
    YY_BUFFER_STATE buffer = yy_scan_bytes(text, (int)len, scanner);
    yyparse(scanner, st);
    yy_delete_buffer(buffer, scanner);
    yylex_destroy(scanner);
    prog->first = st->first;
    return prog;
}
