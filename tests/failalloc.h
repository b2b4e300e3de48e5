/* failalloc.h — an allocator that fails on demand, for the tests of
 * allocation failure (tests/test_alloc.c).
 *
 * The binaries that use it are linked with FAILALLOC_WRAP (see the
 * Makefile): -Wl,--wrap=malloc,... sends every call to malloc, calloc,
 * realloc, free, strdup, fopen and fdopen made by the project's own code
 * (runtime, compiler, tests) through failalloc.c, which counts them and
 * makes the chosen one fail (NULL, errno ENOMEM). Allocations inside libc
 * (stdio buffers, open_memstream) are not seen. Unarmed, it only passes
 * calls on, so run_tests' other suites are unaffected.
 *
 * In a program without test code (build/tests/bpgen_failalloc, bpgen
 * linked this way), the environment arms it: FAILALLOC=K makes the K-th
 * allocation fail (0: none), and FAILALLOC_REPORT=1 prints
 * "failalloc: N allocations" on stderr at exit. */
#ifndef TEST_FAILALLOC_H
#define TEST_FAILALLOC_H

#include <stdbool.h>

/* Starts counting allocations from 0; the fail_at-th (1-based) fails, and
 * with `persistent` every one after it too. fail_at 0: none fails. */
void failalloc_start(long fail_at, bool persistent);
/* Stops failing and counting; returns the allocations attempted since
 * failalloc_start, failed ones included. */
long failalloc_stop(void);
/* While held, allocations are neither counted nor failed: for a test's
 * own work in the middle of a call under test. */
void failalloc_hold(bool hold);
/* Blocks allocated through the wrappers and not yet freed: compared
 * before and after a call, it finds what a failure path leaks (also
 * without LeakSanitizer). */
long failalloc_live(void);

#endif
