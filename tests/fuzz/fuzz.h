/* fuzz.h — fuzz targets: one per reader of untrusted input.
 *
 * Each tests/fuzz/fuzz_NAME.c defines
 *
 *     int fuzz_NAME(const unsigned char *data, size_t size);
 *
 * which feeds one input to a reader, checks what the reader promises about
 * its result, and aborts when a promise is broken (a crash, a leak or
 * undefined behaviour is found by the sanitizers). It returns 0. The same
 * function serves two masters:
 *   - libFuzzer: `make fuzz` links it with libfuzzer_main.c, which defines
 *     LLVMFuzzerTestOneInput (built with clang, -fsanitize=fuzzer);
 *   - the regression tests: `make test` (tests/test_fuzz.c) feeds it every
 *     file of tests/fuzz/regressions/NAME/ and tests/fuzz/corpus/NAME/,
 *     with the project's normal compiler and no libFuzzer.
 * The Makefile finds the targets by their file names, so a new reader
 * gets fuzzed by adding fuzz_NAME.c, a seed corpus in
 * corpus/NAME/ and, when it helps, NAME.dict (fuzz_safetensors.c is the
 * shortest example). */
#ifndef BP_FUZZ_H
#define BP_FUZZ_H

#include <stddef.h>

/* Writes data to this process's scratch file and returns its path (the
 * runtime's readers take paths). The file is reused by every call; it
 * lives in $TMPDIR, /dev/shm or /tmp and is removed at exit. Aborts when
 * it cannot be written: that is the harness failing, not the reader. */
const char *fuzz_file(const unsigned char *data, size_t size);

/* The same for a reader of two files (images and labels): slot 0 is
 * fuzz_file's file, slot 1 a second one, with its own path. */
const char *fuzz_file_at(int slot, const unsigned char *data, size_t size);

/* Aborts with a message naming the target and the broken promise. */
void fuzz_fail(const char *target, const char *what);

/* Every target, as the Makefile lists them ($(BUILD)/tests/fuzz_targets.c,
 * generated from the file names), ended by {NULL, NULL}. */
typedef struct {
    const char *name;
    int (*run)(const unsigned char *data, size_t size);
} fuzz_target;

extern const fuzz_target fuzz_targets[];

#endif
