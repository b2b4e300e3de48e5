/* failalloc.c — see failalloc.h. */
#include "failalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t count, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);
char *__real_strdup(const char *s);
FILE *__real_fopen(const char *path, const char *mode);
FILE *__real_fdopen(int fd, const char *mode);

void *__wrap_malloc(size_t size);
void *__wrap_calloc(size_t count, size_t size);
void *__wrap_realloc(void *p, size_t size);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
FILE *__wrap_fopen(const char *path, const char *mode);
FILE *__wrap_fdopen(int fd, const char *mode);

static bool counting, persistent, held, from_env_checked;
static long calls, fail_at, live;

static void report(void)
{
    fprintf(stderr, "failalloc: %ld allocations\n", calls);
}

/* bpgen_failalloc has no test code to arm it: the environment does. */
static void arm_from_env(void)
{
    from_env_checked = true;
    const char *k = getenv("FAILALLOC");
    if (!k)
        return;
    counting = true;
    fail_at = atol(k);
    const char *rep = getenv("FAILALLOC_REPORT");
    if (rep && rep[0] == '1')
        atexit(report);
}

/* Counts one allocation; true when it must fail. */
static bool fails(void)
{
    if (!from_env_checked)
        arm_from_env();
    if (!counting || held)
        return false;
    calls++;
    if (fail_at > 0 && (calls == fail_at || (persistent && calls > fail_at))) {
        errno = ENOMEM;
        return true;
    }
    return false;
}

/* Live blocks are counted only while armed: the tests compare them around
 * one call, and other suites' threads then never touch the counter. */
static void track(int change)
{
    if (counting)
        live += change;
}

void failalloc_start(long k, bool keep_failing)
{
    from_env_checked = true;
    calls = 0;
    fail_at = k;
    persistent = keep_failing;
    counting = true;
}

long failalloc_stop(void)
{
    counting = false;
    fail_at = 0;
    return calls;
}

void failalloc_hold(bool hold)
{
    held = hold;
}

long failalloc_live(void)
{
    return live;
}

void *__wrap_malloc(size_t size)
{
    if (fails())
        return NULL;
    void *p = __real_malloc(size);
    track(p != NULL);
    return p;
}

void *__wrap_calloc(size_t count, size_t size)
{
    if (fails())
        return NULL;
    void *p = __real_calloc(count, size);
    track(p != NULL);
    return p;
}

void *__wrap_realloc(void *p, size_t size)
{
    if (fails())
        return NULL;
    void *q = __real_realloc(p, size);
    if (!p && q)
        track(1);
    else if (p && !q && size == 0)
        track(-1);
    return q;
}

void __wrap_free(void *p)
{
    track(-(p != NULL));
    __real_free(p);
}

char *__wrap_strdup(const char *s)
{
    if (fails())
        return NULL;
    char *d = __real_strdup(s);
    track(d != NULL);
    return d;
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
    return fails() ? NULL : __real_fopen(path, mode);
}

FILE *__wrap_fdopen(int fd, const char *mode)
{
    return fails() ? NULL : __real_fdopen(fd, mode);
}
