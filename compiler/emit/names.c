/* names.c — C identifiers for the model's values.
 *
 * Every .net name is used as it is where it can be, and mangled where it
 * is a C keyword, a name the generated code itself uses (`n`, `theta`,
 * `s`, ...), a library name, or taken: a trailing `_`, then `_2`, `_3`,
 * ... Adjoints `dL/dh` are called `d_h`, nameless buffers after their
 * operation (`matmul_7`).
 */
#include "emit.h"

#include <string.h>

/* ---------------------------------------------------------------- names */

static const char *const reserved[] = {
    /* C keywords (C89 to C11) and common extensions */
    "auto", "break", "case", "char", "const", "continue", "default", "do",
    "double", "else", "enum", "extern", "float", "for", "goto", "if",
    "inline", "int", "long", "register", "restrict", "return", "short",
    "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "asm", "typeof", "bool",
    "true", "false", "alignas", "alignof", "noreturn", "static_assert",
    "thread_local", "complex", "imaginary",
    /* predefined macros in GNU modes */
    "linux", "unix", "i386", "i686", "x86_64", "amd64", "sun", "vax",
    /* what the generated code names itself */
    "theta", "inputs", "n", "ws", "grad", "grad_inputs", "outputs", "seed",
    "rng", "wsr", "s", "i", "j", "k", "q", "acc", "aik", "part", "mx", "lacc",
    "cs", "main",
    /* the C library: types, macros and functions the code uses */
    "size_t", "ptrdiff_t", "NULL", "offsetof", "wchar_t", "FILE", "EOF",
    "errno", "stdin", "stdout", "stderr", "assert", "memcpy", "memset",
    "strtod", "printf", "fprintf", "fputs", "fputc", "putchar", "getchar",
    "getc", "putc", "malloc", "calloc", "free", "exit", "abort",
    "EXIT_SUCCESS", "EXIT_FAILURE", "RAND_MAX", "BUFSIZ", "INFINITY",
    "NAN", "HUGE_VAL", "HUGE_VALF", "HUGE_VALL", "HUGE", "MAXFLOAT",
    "DOMAIN", "SING", "OVERFLOW", "UNDERFLOW", "TLOSS", "PLOSS",
    "isnan", "isinf", "isfinite", "signbit", "fpclassify", "isnormal",
    "exp", "expf", "log", "logf", "fabs", "fabsf", "sin", "sinf", "cos",
    "cosf", "tanh", "tanhf", "sqrt", "sqrtf", "pow", "powf", "log1p",
    "log1pf", "floor", "ceil", "fmax", "fmin", "isspace",
};

static const char *reserved_prefixes[] = {"bp_", "BP_", "M_", "FP_", "FLT_", "DBL_",
                                          "INT_", "SIZE_"};

static unsigned long hash_str(const char *s)
{
    unsigned long h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

static bool name_taken(const NameSet *ns, const char *s)
{
    if (!ns->cap)
        return false;
    for (size_t i = hash_str(s) % ns->cap; ns->slots[i]; i = (i + 1) % ns->cap)
        if (!strcmp(ns->slots[i], s))
            return true;
    return false;
}

static void name_add(Arena *a, NameSet *ns, char *s)
{
    if (2 * (ns->count + 1) > ns->cap) {
        NameSet bigger = {NULL, ns->cap ? ns->cap * 2 : 256, 0};
        bigger.slots = arena_alloc(a, sizeof(char *) * bigger.cap);
        for (size_t i = 0; i < ns->cap; i++)
            if (ns->slots[i])
                name_add(a, &bigger, ns->slots[i]);
        *ns = bigger;
    }
    size_t i = hash_str(s) % ns->cap;
    while (ns->slots[i])
        i = (i + 1) % ns->cap;
    ns->slots[i] = s;
    ns->count++;
}

static bool is_reserved(const Emit *e, const char *s)
{
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (!strcmp(s, reserved[i]))
            return true;
    for (size_t i = 0; i < sizeof reserved_prefixes / sizeof reserved_prefixes[0]; i++)
        if (!strncmp(s, reserved_prefixes[i], strlen(reserved_prefixes[i])))
            return true;
    size_t mlen = strlen(e->M);
    return !strncmp(s, e->M, mlen) && s[mlen] == '_';
}

/* A fresh C identifier made from `base` (any text). */
const char *unique_name(Emit *e, const char *base)
{
    size_t len = strlen(base);
    char *s = arena_alloc(e->a, len + 4);
    size_t k = 0;
    if (len == 0 || !((base[0] >= 'A' && base[0] <= 'Z') || (base[0] >= 'a' && base[0] <= 'z')))
        s[k++] = 'v';
    for (size_t i = 0; i < len; i++) {
        char c = base[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        s[k++] = ok ? c : '_';
    }
    s[k] = '\0';
    if (is_reserved(e, s)) {
        s[k++] = '_';
        s[k] = '\0';
    }
    char *name = s;
    for (int i = 2; name_taken(&e->names, name); i++)
        name = arena_printf(e->a, "%s_%d", s, i);
    name_add(e->a, &e->names, name);
    return name;
}

bool has_title(const Emit *e, const Node *n)
{
    return e->orig[n->id] || n->label;
}

/* The C name for a node's buffer or local: its .net name, an adjoint
 * `dL/dh` as `d_h`, else its operation and id. */
static const char *make_cname(Emit *e, Node *n)
{
    const char *base = e->orig[n->id];
    if (!base && n->label) {
        const char *loss = e->m->loss ? e->m->loss->name : "";
        size_t ll = strlen(loss);
        if (n->label[0] == 'd' && !strncmp(n->label + 1, loss, ll) && n->label[1 + ll] == '/' &&
            n->label[2 + ll] == 'd' && n->label[3 + ll])
            base = arena_printf(e->a, "d_%s", n->label + 3 + ll);
        else
            base = n->label;
    }
    if (!base) {
        switch (n->op) {
        case OP_CONST: base = arena_printf(e->a, "c%d", n->id); break;
        case OP_MATMUL: base = arena_printf(e->a, "matmul_%d", n->id); break;
        default:
            if (op_info[n->op].kind == OPK_ELEMENTWISE)
                base = arena_printf(e->a, "t%d", n->id);
            else
                base = arena_printf(e->a, "%s_%d", op_info[n->op].name, n->id);
            break;
        }
    }
    return unique_name(e, base);
}


/* Gives every node the functions name a C name (leaves first, so that
 * inputs and parameters keep theirs), and every buffer without a .net
 * name a name for comments (print.c shows named nodes by name): its
 * label (`dL/dh`), else its C name. Labelled nodes fused into a loop are
 * locals of that name, so comments name them too. */
void assign_names(Emit *e)
{
    Graph *g = e->g;
    for (int id = 0; id < g->nnodes; id++)
        e->orig[id] = g->nodes[id]->name;
    for (int k = 0; k < e->m->ninputs; k++)
        e->cname[g->input_nodes[k]->id] = unique_name(e, e->m->inputs[k]->name);
    for (int k = 0; k < e->m->nparams; k++)
        e->cname[g->param_nodes[k]->id] = unique_name(e, e->m->params[k]->name);
    for (int id = 0; id < g->nnodes; id++) {
        Node *n = g->nodes[id];
        if (is_leaf(n))
            continue;
        const NodeInfo *in = &e->p->info[id];
        bool present = false, buffer = false;
        for (int f = 0; f < PF__COUNT; f++) {
            present = present || in->mode[f] != NODE_ABSENT;
            buffer = buffer || in->mode[f] == NODE_BUFFER;
        }
        if (!present)
            continue;
        e->cname[id] = make_cname(e, n);
        if (!n->name && n->op != OP_CONST && (buffer || n->label))
            n->name = n->label ? n->label : e->cname[id];
    }
}
