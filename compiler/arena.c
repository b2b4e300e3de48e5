/* arena.c — one bump allocator per compilation.
 *
 * A compilation allocates many small objects (AST nodes, graph nodes,
 * strings) that all live until bpgen exits, so they come from large blocks
 * that are freed together. Allocation never fails from the caller's point
 * of view: out of memory ends the program with a message. */
#include "bpgen.h"

#include <stdlib.h>
#include <string.h>

enum { BLOCK_SIZE = 64 * 1024 };

/* C99 has no MaxAlign; this union is aligned for anything we store. */
typedef union {
    long double ld;
    long long ll;
    void *p;
    double d;
} MaxAlign;

typedef struct Block Block;
struct Block {
    Block *next;
    size_t used, cap;
    MaxAlign data[];
};

struct Arena {
    Block *head;
};

void arena_out_of_memory(void)
{
    fputs("bpgen: out of memory\n", stderr);
    exit(2);
}

Arena *arena_new(void)
{
    Arena *a = calloc(1, sizeof *a);
    if (!a)
        arena_out_of_memory();
    return a;
}

void *arena_alloc(Arena *a, size_t size)
{
    size_t align = sizeof(MaxAlign);
    size = (size + align - 1) / align * align;
    if (size == 0)
        size = align;
    Block *b = a->head;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > BLOCK_SIZE ? size : BLOCK_SIZE;
        b = malloc(sizeof *b + cap);
        if (!b)
            arena_out_of_memory();
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
    char *d = arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *arena_strdup(Arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(Arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    char *s = arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void arena_free(Arena *a)
{
    if (!a)
        return;
    Block *b = a->head;
    while (b) {
        Block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}
