/* main.c — the command line, and the whole pipeline on one screen.
 *
 *   text --parse--> AST --check--> Model --graph--> Graph --diff--> gradients
 *        --simplify--> Graph --lower--> Plan --emit--> OUT.c, OUT.h
 *
 * Exit status: 0 success, 1 an error in the model, 2 a usage or I/O error.
 * Output is written to temporary files beside the target and renamed into
 * place only when everything succeeded, so a failure never leaves half a
 * file or damages an earlier good one.
 */
#include "bpgen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_MODEL = 1, EXIT_USAGE = 2 };
enum { MAX_SOURCE_BYTES = 64 << 20 };
typedef enum { COLOR_AUTO, COLOR_ALWAYS, COLOR_NEVER } ColorMode;

typedef struct {
    const char *model_path;
    const char *out_path;
    bool check_only, derivatives, with_main, line_directives;
    bool selftest, check_finite;
    bool step;          /* --step */
    int explain;        /* 0, or 1 + ExplainFormat */
    int dot;            /* 0, 1 forward, 2 backward */
    Precision precision;
    const char *dump;   /* comma-separated pass names, or NULL */
    ColorMode color;
    bool print_name;
    bool report;        /* --report */
    long batch;         /* --batch N; 0: not given */
    bool time_passes;   /* --time-passes */
} Options;

/* The batch size --report assumes when --batch is not given. */
enum { REPORT_DEFAULT_BATCH = 1 };

static void usage(FILE *out)
{
    fputs("usage: bpgen MODEL.net -o OUT.c [options]\n"
          "       bpgen MODEL.net --check | --derivatives | --explain | --dot\n"
          "       bpgen MODEL.net --report [--batch N]\n"
          "\n"
          "Compiles a .net model to C: a forward pass, a backward pass with every\n"
          "gradient, and an inference function. OUT.h is written beside OUT.c.\n"
          "\n"
          "options:\n"
          "  -o FILE               the C file to write (its header: FILE with .h)\n"
          "  --check               parse and check only; write nothing\n"
          "  --derivatives         print dL/dX = EXPR for every differentiated X\n"
          "  --explain             print the derivation step by step, chain rule first\n"
          "  --explain=markdown    the same as Markdown with LaTeX math\n"
          "  --dot                 print the model's graph in Graphviz DOT\n"
          "  --dot=backward        the graph with its gradient computations\n"
          "  --precision=float     values are float (the default)\n"
          "  --precision=double    values are double\n"
          "  --main                add a main() that reads values on standard input\n"
          "                        and prints the loss and gradients\n"
          "  --selftest            add M_selftest(), which checks the gradients against\n"
          "                        finite differences at a given point (no malloc)\n"
          "  --step                add M_step(), one training step (forward, backward and\n"
          "                        the optimiser's update) without a gradient vector\n"
          "                        (a small model's stays whole: one update call)\n"
          "  --check-finite        forward, backward and predict check every value they\n"
          "                        write; M_nonfinite(ws) names the first NaN or inf\n"
          "  --line-directives     write #line directives so that compiler messages and\n"
          "                        debuggers point at the .net statement of each step\n"
          "  --report              print what each generated function and step costs:\n"
          "                        FLOPs, bytes moved, FLOP/byte, workspace, peak memory\n"
          "  --batch N, --batch=N  the batch size --report counts for (default 1)\n"
          "  --dump=PASSES         print the graph after passes (graph,diff,simplify) or the plan (lower)\n"
          "                        on standard error\n"
          "  --color=WHEN          colour diagnostics: auto (the default: only when\n"
          "                        standard error is a terminal and NO_COLOR is unset\n"
          "                        or empty), always or never\n"
          "  --time-passes         print the time each pass took on standard error\n"
          "  --print-name          print the model's name (the prefix of its C symbols,\n"
          "                        and the header's name in CMake's bpgen_add_model)\n"
          "  -h, --help            this help\n"
          "  --version             the compiler's version and the runtime ABI it\n"
          "                        generates code for\n",
          out);
}

static int usage_error(const char *fmt, const char *arg)
{
    fputs("bpgen: error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(run 'bpgen --help' for usage)\n", stderr);
    return EXIT_USAGE;
}

/* Returns -1 when the options were fine, else the exit status. */
static int parse_options(int argc, char **argv, Options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("bpgen %s (runtime ABI %d)\n", BPGEN_VERSION, BP_ABI_VERSION);
            return 0;
        } else if (!strcmp(a, "-o")) {
            if (++i == argc)
                return usage_error("%s needs a file name", "-o");
            o->out_path = argv[i];
        } else if (!strncmp(a, "-o", 2) && a[2]) {
            o->out_path = a + 2;
        } else if (!strncmp(a, "--output=", 9)) {
            o->out_path = a + 9;
        } else if (!strcmp(a, "--check")) {
            o->check_only = true;
        } else if (!strcmp(a, "--derivatives")) {
            o->derivatives = true;
        } else if (!strcmp(a, "--explain")) {
            o->explain = 1 + EXPLAIN_TEXT;
        } else if (!strcmp(a, "--explain=markdown")) {
            o->explain = 1 + EXPLAIN_MARKDOWN;
        } else if (!strncmp(a, "--explain=", 10)) {
            return usage_error("unknown format '%s' (use --explain or --explain=markdown)", a);
        } else if (!strcmp(a, "--dot")) {
            o->dot = 1;
        } else if (!strcmp(a, "--dot=backward")) {
            o->dot = 2;
        } else if (!strncmp(a, "--dot=", 6)) {
            return usage_error("unknown graph '%s' (use --dot or --dot=backward)", a);
        } else if (!strcmp(a, "--main")) {
            o->with_main = true;
        } else if (!strcmp(a, "--selftest")) {
            o->selftest = true;
        } else if (!strcmp(a, "--step")) {
            o->step = true;
        } else if (!strcmp(a, "--check-finite")) {
            o->check_finite = true;
        } else if (!strcmp(a, "--line-directives")) {
            o->line_directives = true;
        } else if (!strcmp(a, "--precision=float")) {
            o->precision = PREC_FLOAT;
        } else if (!strcmp(a, "--precision=double")) {
            o->precision = PREC_DOUBLE;
        } else if (!strncmp(a, "--precision", 11)) {
            return usage_error("unknown precision '%s' (use --precision=float or --precision=double)", a);
        } else if (!strcmp(a, "--color=auto")) {
            o->color = COLOR_AUTO;
        } else if (!strcmp(a, "--color=always")) {
            o->color = COLOR_ALWAYS;
        } else if (!strcmp(a, "--color=never")) {
            o->color = COLOR_NEVER;
        } else if (!strncmp(a, "--color", 7)) {
            return usage_error("unknown colour setting '%s' (use --color=auto, "
                               "--color=always or --color=never)", a);
        } else if (!strcmp(a, "--time-passes")) {
            o->time_passes = true;
        } else if (!strcmp(a, "--report")) {
            o->report = true;
        } else if (!strcmp(a, "--batch") || !strncmp(a, "--batch=", 8)) {
            const char *v = a[7] == '=' ? a + 8 : NULL;
            if (!v && ++i == argc)
                return usage_error("%s needs a batch size", "--batch");
            if (!v)
                v = argv[i];
            char *end = NULL;
            errno = 0;
            long batch = strtol(v, &end, 10);
            if (end == v || *end || errno || batch < 1 || batch > 1000000000L)
                return usage_error("--batch needs a whole number from 1 to 1000000000, "
                                   "not '%s'", v);
            o->batch = batch;
        } else if (!strcmp(a, "--print-name")) {
            o->print_name = true;
        } else if (!strncmp(a, "--dump=", 7)) {
            o->dump = a + 7;
            /* every name must be a pass that has a dump */
            for (const char *p = o->dump; ; p++) {
                size_t len = strcspn(p, ",");
                static const char *const passes[] = {"graph", "diff", "simplify", "lower"};
                bool known = false;
                for (size_t k = 0; k < sizeof passes / sizeof passes[0]; k++)
                    known |= strlen(passes[k]) == len && !strncmp(p, passes[k], len);
                if (!known) {
                    char name[64];
                    snprintf(name, sizeof name, "%.*s", (int)(len < 60 ? len : 60), p);
                    return usage_error("unknown pass '%s' in --dump (use graph, diff, "
                                       "simplify or lower)", name);
                }
                p += len;
                if (!*p)
                    break;
            }
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (o->model_path) {
            return usage_error("more than one model given ('%s')", a);
        } else {
            o->model_path = a;
        }
    }
    if (!o->model_path)
        return usage_error("%s", "no model file given");
    if (o->batch && !o->report)
        return usage_error("%s", "--batch is the batch size of --report: use it with --report");
    if (!o->out_path && !o->check_only && !o->derivatives && !o->print_name && !o->explain &&
        !o->dot && !o->report)
        return usage_error("%s", "no output file: use -o OUT.c (or --check, --derivatives, "
                                 "--explain, --dot, --report)");
    /* OUT.h includes the runtime's bp.h, so it must not be bp.h itself */
    const char *slash = o->out_path ? strrchr(o->out_path, '/') : NULL;
    const char *out_base = slash ? slash + 1 : o->out_path;
    if (out_base && (!strcmp(out_base, "bp.c") || !strcmp(out_base, "bp")))
        return usage_error("'%s' would write a header named bp.h, which would hide the "
                           "runtime's bp.h; choose another output name", o->out_path);
    return -1;
}

/* Reads the whole model file. Returns NULL (after a message) on an I/O
 * error. */
static char *read_source(Arena *a, const char *path, size_t *len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "bpgen: error: cannot open '%s': %s\n", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "bpgen: error: '%s' is a directory, not a model file\n", path);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bpgen: error: cannot open '%s': %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            if (cap >= MAX_SOURCE_BYTES) {
                fprintf(stderr, "bpgen: error: '%s' is larger than %d MiB\n", path, MAX_SOURCE_BYTES >> 20);
                free(buf);
                fclose(f);
                return NULL;
            }
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    bool failed = !buf || ferror(f);
    fclose(f);
    if (!buf)
        arena_out_of_memory();
    if (failed) {
        fprintf(stderr, "bpgen: error: cannot read '%s'\n", path);
        free(buf);
        return NULL;
    }
    char *text = arena_strndup(a, buf, n);
    free(buf);
    *len = n;
    return text;
}

static bool dumping(const Options *o, const char *pass)
{
    if (!o->dump)
        return false;
    size_t len = strlen(pass);
    for (const char *p = o->dump; (p = strstr(p, pass)); p += len)
        if ((p == o->dump || p[-1] == ',') && (p[len] == ',' || p[len] == '\0'))
            return true;
    return false;
}

/* --time-passes: the wall-clock time since the previous lap, one line per
 * pass on stderr (`# time parse 0.0123 s`, and the graph's size after the
 * passes that grow it), for finding which pass grows faster than the
 * model (bench/compile). */
typedef struct {
    bool on;
    struct timespec last;
} PassClock;

static void lap_graph(PassClock *clock, const char *pass, const Graph *g)
{
    if (!clock->on)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double s = (double)(now.tv_sec - clock->last.tv_sec) +
               (double)(now.tv_nsec - clock->last.tv_nsec) * 1e-9;
    fprintf(stderr, "# time %s %.4f s", pass, s);
    if (g)
        fprintf(stderr, " (%d nodes)", g->nnodes);
    fputc('\n', stderr);
    clock->last = now;
}

static void lap(PassClock *clock, const char *pass)
{
    lap_graph(clock, pass, NULL);
}

static bool checked(const Graph *g, const Options *o, const char *pass)
{
    if (dumping(o, pass)) {
        fprintf(stderr, "# after %s\n", pass);
        graph_dump(g, stderr);
    }
    return graph_check(g);
}

/* `dir/name.c` -> `dir/name.h`; a name without `.c` gets `.h` added. */
static char *header_path(Arena *a, const char *out)
{
    size_t len = strlen(out);
    if (len > 2 && !strcmp(out + len - 2, ".c"))
        return arena_printf(a, "%.*s.h", (int)(len - 2), out);
    return arena_printf(a, "%s.h", out);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The temporary outputs not yet renamed into place. An exit on the way
 * (out of memory ends bpgen from wherever it happens) removes them too. */
static char *pending_temps[2];

static void remove_pending_temps(void)
{
    for (int i = 0; i < 2; i++)
        if (pending_temps[i]) {
            remove(pending_temps[i]);
            pending_temps[i] = NULL;
        }
}

/* A temporary file beside `target`, opened for writing. */
static FILE *open_temp(Arena *a, const char *target, char **temp_path)
{
    char *path = arena_printf(a, "%s.tmpXXXXXX", target);
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    pending_temps[pending_temps[0] ? 1 : 0] = path;   /* .c first, then .h */
    /* mkstemp makes the file private (0600); the output should have the
     * permissions any new file gets */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return NULL;    /* the caller removes pending temporaries */
    }
    *temp_path = path;
    return f;
}

static bool is_directory(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool same_file(const char *x, const char *y)
{
    struct stat sx, sy;
    return stat(x, &sx) == 0 && stat(y, &sy) == 0 && sx.st_dev == sy.st_dev &&
           sx.st_ino == sy.st_ino;
}

static int write_outputs(Arena *a, const Plan *plan, const char *model_path,
                         const char *out_path)
{
    char *h_path = header_path(a, out_path);
    if (same_file(model_path, out_path) || same_file(model_path, h_path)) {
        fprintf(stderr, "bpgen: error: the output '%s' would overwrite the model '%s'\n",
                same_file(model_path, out_path) ? out_path : h_path, model_path);
        return EXIT_USAGE;
    }
    /* Checked first: once the header is renamed into place, a failing
     * second rename would leave it behind. */
    if (is_directory(out_path) || is_directory(h_path)) {
        fprintf(stderr, "bpgen: error: cannot write '%s': it is a directory\n",
                is_directory(out_path) ? out_path : h_path);
        return EXIT_USAGE;
    }
    char *c_temp = NULL, *h_temp = NULL;
    FILE *c = open_temp(a, out_path, &c_temp);
    FILE *h = c ? open_temp(a, h_path, &h_temp) : NULL;
    bool ok = c && h && emit_c(plan, c, h);
    if (c && fclose(c) != 0)
        ok = false;
    if (h && fclose(h) != 0)
        ok = false;
    if (ok && rename(h_temp, h_path) != 0)
        ok = false;
    if (ok)
        pending_temps[1] = NULL;    /* h_temp is h_path now */
    if (ok && rename(c_temp, out_path) != 0)
        ok = false;
    if (!ok) {
        fprintf(stderr, "bpgen: error: cannot write '%s': %s\n", out_path, strerror(errno));
        remove_pending_temps();
        return EXIT_USAGE;
    }
    pending_temps[0] = pending_temps[1] = NULL;   /* renamed into place */
    return 0;
}

/* --color=auto colours only a terminal, and never when NO_COLOR is set to
 * anything (https://no-color.org). */
static bool use_color(ColorMode mode)
{
    if (mode != COLOR_AUTO)
        return mode == COLOR_ALWAYS;
    const char *no_color = getenv("NO_COLOR");
    return isatty(STDERR_FILENO) && !(no_color && no_color[0]);
}

/* `model NAME` when the file has one, else the name its path gives. */
static const char *model_name(Arena *a, const Program *prog)
{
    for (const Stmt *s = prog->first; s; s = s->next)
        if (s->kind == ST_MODEL && s->name)
            return s->name;
    return check_default_model_name(a, prog->path);
}

static int compile(Arena *a, const Options *o)
{
    PassClock clock = {o->time_passes, {0, 0}};
    if (clock.on)
        clock_gettime(CLOCK_MONOTONIC, &clock.last);
    size_t len = 0;
    char *text = read_source(a, o->model_path, &len);
    if (!text)
        return EXIT_USAGE;
    lap(&clock, "read");

    Diag *diag = diag_new(a, o->model_path, text, len);
    diag_set_color(diag, use_color(o->color));
    Program *prog = parse_program(a, diag, o->model_path, text, len);
    lap(&clock, "parse");
    if (o->print_name) {
        /* The name the model will have once it compiles: build tools ask
         * before building, so errors wait for the real compilation. */
        puts(model_name(a, prog));
        return fflush(stdout) == 0 ? 0 : EXIT_USAGE;
    }
    Model *model = check_program(a, diag, prog);
    lap(&clock, "check");
    if (diag_count(diag) > 0 || !model) {
        diag_flush(diag, stderr);
        return EXIT_MODEL;
    }
    diag_flush(diag, stderr);  /* notes and warnings, if any */
    if (o->check_only)
        return 0;
    if (o->explain) {
        bool written = explain_model(a, model, (ExplainFormat)(o->explain - 1), stdout);
        lap(&clock, "explain");
        return written ? 0 : EXIT_USAGE;
    }
    if (o->dot) {
        bool written = dot_model(a, model, o->dot == 2, stdout);
        lap(&clock, "dot");
        return written ? 0 : EXIT_USAGE;
    }

    Graph *g = graph_build(a, model, !o->derivatives);
    lap_graph(&clock, "graph", g);
    bool ok = checked(g, o, "graph");
    lap(&clock, "graph_check");
    diff_graph(g);
    lap_graph(&clock, "diff", g);
    ok = ok && checked(g, o, "diff");
    lap(&clock, "graph_check");
    simp_graph(g);
    lap_graph(&clock, "simplify", g);
    ok = ok && checked(g, o, "simplify");
    lap(&clock, "graph_check");
    if (!ok)
        return EXIT_USAGE;

    if (o->derivatives) {
        print_derivatives(stdout, g);
        bool written = fflush(stdout) == 0;
        lap(&clock, "print");
        return written ? 0 : EXIT_USAGE;
    }

    EmitOptions eo = {o->precision, o->with_main,
                      o->out_path ? base_name(header_path(a, o->out_path)) : NULL,
                      PLACE_AUTO, o->line_directives, o->out_path, o->selftest,
                      o->check_finite, o->step};
    Plan *plan = lower_graph(a, g, &eo);
    lap(&clock, "lower");
    if (dumping(o, "lower")) {
        fprintf(stderr, "# after lower\n");
        plan_dump(plan, stderr);
    }
    if (!plan_check(plan))
        return EXIT_USAGE;
    lap(&clock, "plan_check");
    if (o->report) {
        bool given = o->batch > 0;
        return report_plan(plan, given ? o->batch : REPORT_DEFAULT_BATCH, given, stdout)
               ? 0 : EXIT_USAGE;
    }
    int status = write_outputs(a, plan, o->model_path, o->out_path);
    lap(&clock, "emit");
    return status;
}

int main(int argc, char **argv)
{
    Options o = {.precision = PREC_FLOAT, .color = COLOR_AUTO};
    int status = parse_options(argc, argv, &o);
    if (status >= 0)
        return status;
    atexit(remove_pending_temps);
    Arena *a = arena_new();
    status = compile(a, &o);
    arena_free(a);
    return status;
}
