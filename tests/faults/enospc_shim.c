/*  enospc_shim.c - LD_PRELOAD shim: a disk that fills up on demand.

    While the file named by MW_ENOSPC_FLAG exists, writes to files whose
    name ends in MW_ENOSPC_SUFFIX (default ".tmp": the broker's state file
    is written as PATH.tmp, then renamed) fail with ENOSPC once the file
    holds MW_ENOSPC_AFTER bytes (default 4096): a short write first, then
    -1, as a real full disk does. Remove the flag file and space is back.
    Every other file, socket and pipe is left alone. Counts the writes it
    refused in the file MW_ENOSPC_FLAG.count (for the test to read).
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define S_FDS 4096

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static long long s_written[S_FDS]; //  bytes written to a watched fd; -1 = not watched
static int s_ready;
static unsigned long s_refused;

static void
s_init (void)
{
    if (s_ready)
        return;
    for (int i = 0; i < S_FDS; i++)
        s_written[i] = -1;
    s_ready = 1;
}

static int
s_watched_name (const char *path)
{
    const char *suffix = getenv ("MW_ENOSPC_SUFFIX");
    if (!suffix)
        suffix = ".tmp";
    size_t n = strlen (path), m = strlen (suffix);
    return n >= m && strcmp (path + n - m, suffix) == 0;
}

static int
s_full (void)
{
    const char *flag = getenv ("MW_ENOSPC_FLAG");
    return flag && access (flag, F_OK) == 0;
}

static void
s_count_refusal (void)
{
    const char *flag = getenv ("MW_ENOSPC_FLAG");
    s_refused++;
    char path[4096];
    snprintf (path, sizeof (path), "%s.count", flag);
    //  Through the real open/write: this file does not end in the suffix.
    FILE *f = fopen (path, "w");
    if (f) {
        fprintf (f, "%lu\n", s_refused);
        fclose (f);
    }
}

static void
s_track (int fd, const char *path)
{
    if (fd < 0 || fd >= S_FDS)
        return;
    pthread_mutex_lock (&s_lock);
    s_init ();
    s_written[fd] = s_watched_name (path) ? 0 : -1;
    pthread_mutex_unlock (&s_lock);
}

int
open (const char *path, int flags, ...)
{
    static int (*real) (const char *, int, ...);
    if (!real)
        real = (int (*) (const char *, int, ...)) dlsym (RTLD_NEXT, "open");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start (ap, flags);
        mode = (mode_t) va_arg (ap, int);
        va_end (ap);
    }
    int fd = real (path, flags, mode);
    s_track (fd, path);
    return fd;
}

int
open64 (const char *path, int flags, ...)
{
    static int (*real) (const char *, int, ...);
    if (!real)
        real = (int (*) (const char *, int, ...)) dlsym (RTLD_NEXT, "open64");
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start (ap, flags);
        mode = (mode_t) va_arg (ap, int);
        va_end (ap);
    }
    int fd = real (path, flags, mode);
    s_track (fd, path);
    return fd;
}

int
close (int fd)
{
    static int (*real) (int);
    if (!real)
        real = (int (*) (int)) dlsym (RTLD_NEXT, "close");
    if (fd >= 0 && fd < S_FDS) {
        pthread_mutex_lock (&s_lock);
        s_init ();
        s_written[fd] = -1;
        pthread_mutex_unlock (&s_lock);
    }
    return real (fd);
}

ssize_t
write (int fd, const void *buf, size_t count)
{
    static ssize_t (*real) (int, const void *, size_t);
    if (!real)
        real = (ssize_t (*) (int, const void *, size_t)) dlsym (RTLD_NEXT, "write");
    if (fd >= 0 && fd < S_FDS && s_ready) {
        pthread_mutex_lock (&s_lock);
        long long written = s_written[fd];
        pthread_mutex_unlock (&s_lock);
        if (written >= 0 && s_full ()) {
            const char *after = getenv ("MW_ENOSPC_AFTER");
            long long cap = after ? atoll (after) : 4096;
            if (written >= cap) {
                pthread_mutex_lock (&s_lock);
                s_count_refusal ();
                pthread_mutex_unlock (&s_lock);
                errno = ENOSPC;
                return -1;
            }
            if ((long long) count > cap - written)
                count = (size_t) (cap - written);
        }
        ssize_t n = real (fd, buf, count);
        if (n > 0 && written >= 0) {
            pthread_mutex_lock (&s_lock);
            if (s_written[fd] >= 0)
                s_written[fd] += n;
            pthread_mutex_unlock (&s_lock);
        }
        return n;
    }
    return real (fd, buf, count);
}
