/* harness.c — the fuzz targets' shared helpers (see fuzz.h). */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *scratch_path;

static void remove_scratch(void)
{
    if (scratch_path)
        remove(scratch_path);
}

static int writable_dir(const char *dir)
{
    return dir && dir[0] && access(dir, W_OK | X_OK) == 0;
}

/* One file per process, so parallel fuzzers (-jobs=N) never share it. */
static const char *scratch(void)
{
    if (scratch_path)
        return scratch_path;
    const char *dir = getenv("TMPDIR");
    if (!writable_dir(dir))
        dir = writable_dir("/dev/shm") ? "/dev/shm" : "/tmp";
    size_t len = strlen(dir) + 64;
    scratch_path = malloc(len);
    if (!scratch_path)
        fuzz_fail("fuzz_file", "out of memory");
    snprintf(scratch_path, len, "%s/bpgen-fuzz-%ld.bin", dir, (long)getpid());
    atexit(remove_scratch);
    return scratch_path;
}

const char *fuzz_file(const unsigned char *data, size_t size)
{
    const char *path = scratch();
    FILE *f = fopen(path, "wb");
    if (!f)
        fuzz_fail("fuzz_file", "cannot create the scratch file");
    int bad = size && fwrite(data, 1, size, f) != size;
    bad |= fclose(f) != 0;
    if (bad)
        fuzz_fail("fuzz_file", "cannot write the scratch file");
    return path;
}

void fuzz_fail(const char *target, const char *what)
{
    fprintf(stderr, "%s: %s\n", target, what);
    abort();
}
