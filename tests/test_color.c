/* test_color.c — coloured diagnostics (--color, NO_COLOR, a terminal or
 * not), --version and --help. The terminal is a real pseudo-terminal:
 * bpgen runs with its standard error on the pty's far side. */
#define _XOPEN_SOURCE 700   /* posix_openpt, grantpt, unlockpt, ptsname */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bp.h"
#include "support.h"

static const char *bad_model = "input x[2]\nparam w[3]\nloss L = sum(w * x)\n";

/* What bpgen prints for bad_model (named color.net), plain and coloured. */
#define PLAIN_ERROR                                                       \
    "color.net:3:16: error: cannot multiply [3] and [2]\n"               \
    "loss L = sum(w * x)\n"                                               \
    "               ^\n"
#define COLOR_ERROR                                                       \
    "\033[1mcolor.net:3:16:\033[0m \033[1;31merror:\033[0m cannot multiply [3] and [2]\n" \
    "loss L = sum(w * x)\n"                                               \
    "               \033[1;32m^\033[0m\n"

static char *model_dir;
static char *bpgen;     /* absolute, since the runs cd to model_dir */

static int setup(void)
{
    bpgen = realpath(TEST_BPGEN, NULL);
    if (!bpgen)
        return 1;
    model_dir = test_tmp_path("color");
    char *cmd = test_format("mkdir -p '%s'", model_dir);
    int rc = test_run(cmd, NULL, NULL);
    free(cmd);
    char *path = test_format("%s/color.net", model_dir);
    rc = rc || test_write_file(path, bad_model);
    free(path);
    return rc;
}

static int teardown(void)
{
    free(model_dir);
    free(bpgen);
    return 0;
}

/* Runs bpgen (in model_dir, on color.net) with `args`, its standard error
 * a pseudo-terminal, with NO_COLOR set to no_color (NULL: unset). Returns
 * the exit status and what the terminal showed, "\r\n" read as "\n". */
static int run_on_tty(const char *args, const char *no_color, char **shown)
{
    *shown = NULL;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master))
        return -1;
    char *slave_name = strdup(ptsname(master));
    char *cmd = test_format("cd '%s' && exec '%s' color.net %s", model_dir, bpgen, args);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int slave = open(slave_name, O_RDWR);
        if (slave < 0)
            _exit(126);
        dup2(slave, STDERR_FILENO);
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        if (no_color)
            setenv("NO_COLOR", no_color, 1);
        else
            unsetenv("NO_COLOR");
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    free(cmd);
    free(slave_name);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        ssize_t got = read(master, buf + n, cap - 1 - n);
        if (got > 0) {
            n += (size_t)got;
            if (n == cap - 1)
                break;
        } else if (got < 0 && errno == EINTR) {
            continue;
        } else {
            break;      /* EIO once the far side is closed */
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    close(master);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] != '\r')
            buf[k++] = buf[i];
    buf[k] = '\0';
    *shown = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The same with standard error a pipe. */
static int run_on_pipe(const char *args, const char *no_color, char **err)
{
    char *cmd = test_format("cd '%s' && %s%s '%s' color.net %s", model_dir,
                            no_color ? "NO_COLOR=" : "env -u NO_COLOR",
                            no_color ? no_color : "", bpgen, args);
    int rc = test_run(cmd, NULL, err);
    free(cmd);
    return rc;
}

static void test_auto_colours_a_terminal(void)
{
    char *shown = NULL;
    CU_ASSERT_EQUAL(run_on_tty("--check", NULL, &shown), 1);
    CU_ASSERT_STRING_EQUAL(shown, COLOR_ERROR);
    free(shown);
    CU_ASSERT_EQUAL(run_on_tty("--check --color=auto", "", &shown), 1);
    CU_ASSERT_STRING_EQUAL(shown, COLOR_ERROR);   /* NO_COLOR empty: as unset */
    free(shown);
}

static void test_no_color_and_never_give_plain_text(void)
{
    char *shown = NULL;
    CU_ASSERT_EQUAL(run_on_tty("--check", "1", &shown), 1);
    CU_ASSERT_STRING_EQUAL(shown, PLAIN_ERROR);
    free(shown);
    CU_ASSERT_EQUAL(run_on_tty("--check --color=never", NULL, &shown), 1);
    CU_ASSERT_STRING_EQUAL(shown, PLAIN_ERROR);
    free(shown);
}

static void test_pipe_is_plain_unless_always(void)
{
    char *err = NULL;
    CU_ASSERT_EQUAL(run_on_pipe("--check", NULL, &err), 1);
    CU_ASSERT_STRING_EQUAL(err, PLAIN_ERROR);
    free(err);
    CU_ASSERT_EQUAL(run_on_pipe("--check --color=always", NULL, &err), 1);
    CU_ASSERT_STRING_EQUAL(err, COLOR_ERROR);
    free(err);
    /* the last --color wins, as with gcc */
    CU_ASSERT_EQUAL(run_on_pipe("--check --color=always --color=never", NULL, &err), 1);
    CU_ASSERT_STRING_EQUAL(err, PLAIN_ERROR);
    free(err);
}

static void test_notes_are_cyan(void)
{
    char *path = test_format("%s/note.net", model_dir);
    test_write_file(path, "input x\nloss L = x^2\nloss M = x\n");
    char *err = NULL;
    char *cmd = test_format("cd '%s' && '%s' note.net --check --color=always", model_dir, bpgen);
    CU_ASSERT_EQUAL(test_run(cmd, NULL, &err), 1);
    CU_ASSERT_STRING_EQUAL(err,
        "\033[1mnote.net:3:6:\033[0m \033[1;31merror:\033[0m a model has exactly one loss, "
        "but 'M' is a second one\n"
        "loss M = x\n"
        "     \033[1;32m^\033[0m\n"
        "\033[1mnote.net:2:6:\033[0m \033[1;36mnote:\033[0m the first loss is 'L'\n"
        "loss L = x^2\n"
        "     \033[1;32m^\033[0m\n");
    free(err);
    free(cmd);
    free(path);
}

static void test_bad_colour_is_a_usage_error(void)
{
    char *err = NULL;
    CU_ASSERT_EQUAL(run_on_pipe("--check --color=sometimes", NULL, &err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bpgen: error: unknown colour setting "
                                       "'--color=sometimes' (use --color=auto, "
                                       "--color=always or --color=never)"));
    free(err);
    CU_ASSERT_EQUAL(run_on_pipe("--check --color", NULL, &err), 2);
    free(err);
}

static void test_version(void)
{
    char *out = NULL;
    char *cmd = test_format("%s --version", TEST_BPGEN);
    CU_ASSERT_EQUAL(test_run(cmd, &out, NULL), 0);
    char *want = test_format("bpgen %d.%d.%d (runtime ABI %d)\n", BP_VERSION_MAJOR,
                             BP_VERSION_MINOR, BP_VERSION_PATCH, BP_ABI_VERSION);
    CU_ASSERT_STRING_EQUAL(out, want);
    /* the runtime linked in says the same */
    CU_ASSERT_STRING_EQUAL(bp_version(), BP_VERSION_STRING);
    free(want);
    free(out);
    free(cmd);
}

/* --help lists every option of the contract's sections 3 and 7, and the
 * extensions. */
static void test_help_lists_every_option(void)
{
    const char *options[] = {
        "-o FILE", "--check", "--derivatives", "--precision=float",
        "--precision=double", "--main", "--color=",
        "auto", "always", "never", "NO_COLOR", "-h, --help", "--version",
        "--explain ", "--explain=markdown", "--dot ", "--dot=backward",
        "--line-directives", "--dump=", "--print-name",
    };
    char *out = NULL;
    char *cmd = test_format("%s --help", TEST_BPGEN);
    CU_ASSERT_EQUAL(test_run(cmd, &out, NULL), 0);
    for (size_t i = 0; i < sizeof options / sizeof *options; i++) {
        CU_ASSERT_PTR_NOT_NULL(strstr(out, options[i]));
        if (!strstr(out, options[i]))
            fprintf(stderr, "--help lacks '%s'\n", options[i]);
    }
    free(out);
    free(cmd);
}

/* --print-name: the name `model` gives, else the file's, as bpgen_add_model
 * needs it (even before the model compiles). */
static void test_print_name(void)
{
    char *out = NULL;
    CU_ASSERT_EQUAL(test_bpgen("9-lives.v2", "input x\nloss L = x^2\n", "--print-name",
                               &out, NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "m_9_lives_v2\n");
    free(out);
    CU_ASSERT_EQUAL(test_bpgen("named", "model tiger\ninput x\nloss L = q\n",
                               "--print-name", &out, NULL), 0);
    CU_ASSERT_STRING_EQUAL(out, "tiger\n");
    free(out);
}

void register_color(void)
{
    CU_pSuite s = CU_add_suite("color", setup, teardown);
    CU_add_test(s, "auto colours a terminal", test_auto_colours_a_terminal);
    CU_add_test(s, "NO_COLOR and never give plain text", test_no_color_and_never_give_plain_text);
    CU_add_test(s, "a pipe is plain unless always", test_pipe_is_plain_unless_always);
    CU_add_test(s, "notes and errors coloured", test_notes_are_cyan);
    CU_add_test(s, "a bad --color is a usage error", test_bad_colour_is_a_usage_error);
    CU_add_test(s, "--version", test_version);
    CU_add_test(s, "--help lists every option", test_help_lists_every_option);
    CU_add_test(s, "--print-name", test_print_name);
}
