/* harness.c — the fuzz targets' shared helpers (see fuzz.h). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Scratch files by slot; one set per process, so parallel fuzzers
 * (-jobs=N) never share them. */
enum { SLOTS = 2 };
static char *scratch_paths[SLOTS];

static void remove_scratch(void)
{
    for (int i = 0; i < SLOTS; i++)
        if (scratch_paths[i])
            remove(scratch_paths[i]);
}

static int writable_dir(const char *dir)
{
    return dir && dir[0] && access(dir, W_OK | X_OK) == 0;
}

static const char *scratch(int slot)
{
    if (slot < 0 || slot >= SLOTS)
        fuzz_fail("fuzz_file", "no such scratch slot");
    if (scratch_paths[slot])
        return scratch_paths[slot];
    const char *dir = getenv("TMPDIR");
    if (!writable_dir(dir))
        dir = writable_dir("/dev/shm") ? "/dev/shm" : "/tmp";
    size_t len = strlen(dir) + 64;
    char *path = malloc(len);
    if (!path)
        fuzz_fail("fuzz_file", "out of memory");
    /* slot 0 keeps the name it always had */
    if (slot == 0)
        snprintf(path, len, "%s/bpgen-fuzz-%ld.bin", dir, (long)getpid());
    else
        snprintf(path, len, "%s/bpgen-fuzz-%ld-%d.bin", dir, (long)getpid(), slot);
    int first = !scratch_paths[0] && !scratch_paths[1];
    scratch_paths[slot] = path;
    if (first)
        atexit(remove_scratch);
    return path;
}

const char *fuzz_file_at(int slot, const unsigned char *data, size_t size)
{
    const char *path = scratch(slot);
    FILE *f = fopen(path, "wb");
    if (!f)
        fuzz_fail("fuzz_file", "cannot create the scratch file");
    int bad = size && fwrite(data, 1, size, f) != size;
    bad |= fclose(f) != 0;
    if (bad)
        fuzz_fail("fuzz_file", "cannot write the scratch file");
    return path;
}

const char *fuzz_file(const unsigned char *data, size_t size)
{
    return fuzz_file_at(0, data, size);
}

void fuzz_fail(const char *target, const char *what)
{
    fprintf(stderr, "%s: %s\n", target, what);
    abort();
}
