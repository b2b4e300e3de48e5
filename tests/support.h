/* support.h — helpers shared by the test suites.
 *
 * Paths come from the Makefile (TEST_BPGEN, TEST_LIBBP, TEST_CC,
 * TEST_CFLAGS, TEST_TMP), so the suites test what `make` just built,
 * sanitized or not. Every helper returns memory the caller frees. */
#ifndef TEST_SUPPORT_H
#define TEST_SUPPORT_H

#include <stddef.h>

/* The whole file, NUL-terminated; NULL when it cannot be read. */
char *test_read_file(const char *path, size_t *len);
/* Writes text to path; returns 0 on success. */
int test_write_file(const char *path, const char *text);
/* A path inside the test scratch folder: TEST_TMP/name. */
char *test_tmp_path(const char *name);
/* Runs `cmd` with /bin/sh; captures stdout and stderr when the pointers are
 * not NULL. Returns the exit status (128+signal when killed, -1 when it
 * could not run). */
int test_run(const char *cmd, char **out, char **err);

/* Where clang is (malloc'd, without the newline), or NULL when it is not
 * installed. */
char *test_clang_path(void);
/* printf into a fresh buffer. */
char *test_format(const char *fmt, ...);

/* Runs bpgen on `source` (written to TEST_TMP/name.net) with `args`, e.g.
 * "-o X.c --precision=double". Returns the exit status. */
int test_bpgen(const char *name, const char *source, const char *args,
               char **out, char **err);

#endif
