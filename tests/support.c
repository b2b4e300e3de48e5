/* support.c — see support.h. */
#include "support.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

char *test_format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = malloc((size_t)n + 1);
    if (!s)
        abort();
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
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
    fclose(f);
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int bad = fwrite(text, 1, n, f) != n;
    bad |= fclose(f) != 0;
    return bad ? -1 : 0;
}

char *test_tmp_path(const char *name)
{
    return test_format("%s/%s", TEST_TMP, name);
}

int test_run(const char *cmd, char **out, char **err)
{
    static int counter;
    char *out_path = test_format("%s/run%d.out", TEST_TMP, counter);
    char *err_path = test_format("%s/run%d.err", TEST_TMP, counter++);
    char *full = test_format("( %s ) >'%s' 2>'%s' </dev/null", cmd, out_path,
                             err_path);
    int status = system(full);
    int rc;
    if (status == -1)
        rc = -1;
    else if (WIFEXITED(status))
        rc = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        rc = 128 + WTERMSIG(status);
    else
        rc = -1;
    if (out)
        *out = test_read_file(out_path, NULL);
    if (err)
        *err = test_read_file(err_path, NULL);
    remove(out_path);
    remove(err_path);
    free(out_path);
    free(err_path);
    free(full);
    return rc;
}

int test_bpgen(const char *name, const char *source, const char *args,
               char **out, char **err)
{
    char *file = test_format("%s/%s.net", TEST_TMP, name);
    if (test_write_file(file, source) != 0) {
        free(file);
        return -1;
    }
    char *cmd = test_format("%s %s %s", TEST_BPGEN, file, args ? args : "");
    int rc = test_run(cmd, out, err);
    free(cmd);
    free(file);
    return rc;
}

char *test_clang_path(void)
{
    char *out = NULL;
    int rc = test_run("command -v clang", &out, NULL);
    if (rc != 0 || !out || !*out) {
        free(out);
        return NULL;
    }
    out[strcspn(out, "\n")] = '\0';
    return out;
}
