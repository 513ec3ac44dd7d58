/*  replay_main.c - runs a fuzz target over files, without libFuzzer.

    Usage: replay_TARGET [--min N] PATH...

    Every PATH is a file or a directory (its regular files, in name order;
    names starting with '.' or "README" are skipped). Each file goes
    through LLVMFuzzerTestOneInput once: the corpus and every crash kept as
    a regression run in the normal test suite, under valgrind or the
    sanitizers. A missing PATH counts as empty. Exit 0, 1 if fewer than N
    files ran (default 1: an empty corpus proves nothing), 2 on bad usage.
    A target that finds a bug aborts.
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static long s_files;

static int
s_run_file (const char *path)
{
    FILE *f = fopen (path, "rb");
    if (!f) {
        fprintf (stderr, "replay: cannot open %s: %s\n", path, strerror (errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = (uint8_t *) malloc (cap);
    size_t n;
    while (buf && (n = fread (buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *more = (uint8_t *) realloc (buf, cap * 2);
            if (!more) {
                free (buf);
                buf = NULL;
                break;
            }
            buf = more;
            cap *= 2;
        }
    }
    int bad = ferror (f);
    fclose (f);
    if (!buf || bad) {
        fprintf (stderr, "replay: cannot read %s\n", path);
        free (buf);
        return -1;
    }
    //  An exact-size copy, so that a read past the input is caught.
    uint8_t *input = (uint8_t *) malloc (len ? len : 1);
    if (!input) {
        free (buf);
        return -1;
    }
    memcpy (input, buf, len);
    free (buf);
    LLVMFuzzerTestOneInput (input, len);
    free (input);
    s_files++;
    return 0;
}

static int
s_skip (const char *name)
{
    return name[0] == '.' || strncmp (name, "README", 6) == 0;
}

static int
s_run_path (const char *path)
{
    struct stat st;
    if (stat (path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR (st.st_mode))
        return s_run_file (path);
    struct dirent **names;
    int count = scandir (path, &names, NULL, alphasort);
    if (count < 0) {
        fprintf (stderr, "replay: cannot list %s: %s\n", path, strerror (errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < count; i++) {
        if (rc == 0 && !s_skip (names[i]->d_name)) {
            char file[4096];
            snprintf (file, sizeof (file), "%s/%s", path, names[i]->d_name);
            if (stat (file, &st) == 0 && S_ISREG (st.st_mode) && s_run_file (file) != 0)
                rc = -1;
        }
        free (names[i]);
    }
    free (names);
    return rc;
}

int
main (int argc, char **argv)
{
    long min = 1;
    int i = 1;
    if (i + 1 < argc && !strcmp (argv[i], "--min")) {
        min = strtol (argv[i + 1], NULL, 10);
        i += 2;
    }
    if (i >= argc || !strcmp (argv[i], "--help")) {
        fprintf (i >= argc ? stderr : stdout, "usage: %s [--min N] PATH...\n", argv[0]);
        return i >= argc ? 2 : 0;
    }
    for (; i < argc; i++)
        if (s_run_path (argv[i]) != 0)
            return 1;
    printf ("replayed %ld inputs\n", s_files);
    if (s_files < min) {
        fprintf (stderr, "replay: %ld inputs, expected at least %ld\n", s_files, min);
        return 1;
    }
    return 0;
}
