/* tempfile.c — temporary files for saves (see internal.h). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Not mkstemp: its files are private (0600), and giving them the
 * permissions of any new file would need umask(), which is process-wide
 * and would race with other threads. O_EXCL gives the same uniqueness; a
 * name in use (another thread's, or left by a crashed process) is
 * skipped. */
FILE *bp_create_temp(const char *path, char **tmp_path)
{
    /* shared by the threads that save at once: taken atomically, so
     * each gets its own number (O_EXCL would catch a repeat, but the
     * unguarded count was a data race) */
    static unsigned long counter;
    *tmp_path = NULL;
    size_t size = strlen(path) + 64;
    char *tmp = malloc(size);
    if (!tmp) {
        errno = ENOMEM;
        return NULL;
    }
    for (int attempt = 0; attempt < 1000; attempt++) {
        unsigned long number = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        snprintf(tmp, size, "%s.tmp%ld-%lu", path, (long)getpid(), number);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            break;
        FILE *f = fdopen(fd, "wb");
        if (!f) {
            int e = errno;
            close(fd);
            remove(tmp);
            errno = e;
            break;
        }
        *tmp_path = tmp;
        return f;
    }
    int e = errno;
    free(tmp);
    errno = e;
    return NULL;
}

int bp_commit_temp(FILE *f, char *tmp_path, const char *path, int write_errno,
                   char *err, size_t err_size)
{
    int e = write_errno;
    errno = 0;
    if (!e && fflush(f) != 0)
        e = errno ? errno : EIO;
    if (!e && fsync(fileno(f)) != 0)
        e = errno;
    if (fclose(f) != 0 && !e)
        e = errno ? errno : EIO;
    if (!e && rename(tmp_path, path) != 0)
        e = errno;
    if (e)
        remove(tmp_path);
    free(tmp_path);
    if (e)
        return bp_error(BP_ERR_IO, err, err_size, "%s: cannot write: %s", path,
                        strerror(e));
    return BP_OK;
}
