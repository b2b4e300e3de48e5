/* test_editors.c — the editor support in editors/ knows the whole
 * language: every built-in function of the compiler's own table
 * (check_func_name over every Func), every keyword, initialiser and
 * keyword argument, and both spellings of the matrix product; the VS Code
 * files are valid JSON, carry bpgen's version, and say `#` starts a
 * comment. */
#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpgen.h"
#include "support.h"

#define VIM_SYNTAX "editors/vim/syntax/bpgen.vim"
#define VIM_DETECT "editors/vim/ftdetect/bpgen.vim"
#define VSCODE_GRAMMAR "editors/vscode/syntaxes/bpgen.tmLanguage.json"
#define VSCODE_PACKAGE "editors/vscode/package.json"
#define VSCODE_CONFIG "editors/vscode/language-configuration.json"

/* The words the grammar has besides functions (grammar/lexer.l's keywords,
 * grammar/parser.y's initialisers, the contract's keyword arguments). */
static const char *const words[] = {
    "model", "input", "param", "const", "output", "loss", "wrt", "frozen",
    "zeros", "ones", "normal", "uniform", "xavier", "he", "stride", "pad",
};

static bool is_ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_';
}

/* `word` occurs in text with no identifier character either side. */
static bool has_word(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = text; (p = strstr(p, word)); p++)
        if ((p == text || !is_ident_char(p[-1])) && !is_ident_char(p[n]))
            return true;
    return false;
}

static void expect_words(const char *path, const char *text)
{
    for (int f = 0; f < FN__COUNT; f++) {
        const char *name = check_func_name((Func)f);
        CU_ASSERT(has_word(text, name));
        if (!has_word(text, name))
            fprintf(stderr, "\n%s lacks the function '%s'\n", path, name);
    }
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        CU_ASSERT(has_word(text, words[i]));
        if (!has_word(text, words[i]))
            fprintf(stderr, "\n%s lacks '%s'\n", path, words[i]);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "·"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "@"));
}

static void test_vim(void)
{
    char *syntax = test_read_file(VIM_SYNTAX, NULL);
    char *detect = test_read_file(VIM_DETECT, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(syntax);
    CU_ASSERT_PTR_NOT_NULL_FATAL(detect);
    expect_words(VIM_SYNTAX, syntax);
    CU_ASSERT_PTR_NOT_NULL(strstr(syntax, "syn match   bpgenComment    /#.*$/"));
    CU_ASSERT_PTR_NOT_NULL(strstr(detect, "*.net setfiletype bpgen"));
    free(syntax);
    free(detect);
}

static void test_vscode(void)
{
    char *grammar = test_read_file(VSCODE_GRAMMAR, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(grammar);
    expect_words(VSCODE_GRAMMAR, grammar);
    free(grammar);

    /* valid JSON, with what VS Code reads from it */
    char *out = NULL;
    int rc = test_run("/usr/bin/python3 -c 'import json\n"
                      "p = json.load(open(\"" VSCODE_PACKAGE "\"))\n"
                      "c = json.load(open(\"" VSCODE_CONFIG "\"))\n"
                      "g = json.load(open(\"" VSCODE_GRAMMAR "\"))\n"
                      "lang = p[\"contributes\"][\"languages\"][0]\n"
                      "print(p[\"version\"], lang[\"extensions\"], c[\"comments\"][\"lineComment\"],\n"
                      "      c[\"brackets\"], g[\"scopeName\"])'",
                      &out, NULL);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(out, BP_VERSION_STRING " ['.net'] # [['(', ')'], ['[', ']']] "
                                                  "source.bpgen\n");
    free(out);
}

void register_editors(void)
{
    CU_pSuite s = CU_add_suite("editors", NULL, NULL);
    CU_add_test(s, "vim knows every built-in", test_vim);
    CU_add_test(s, "VS Code knows every built-in", test_vscode);
}
