/*  mw_conf.c - the config file reader shared by the daemons (mw_conf.h).
*/
#include "mw_conf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void s_fmt (char *buf, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_fmt (char *buf, size_t size, const char *fmt, ...)
{
    if (!buf || !size)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (buf, size, fmt, ap);
    va_end (ap);
}

static char *
s_trim (char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen (s);
    while (len &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n'))
        s[--len] = 0;
    return s;
}

//  One error: stop (no report) or print it and count it.
static int
s_error (FILE *report, const char *path, int line, const char *msg, int *errors, char *errbuf,
         size_t errbuf_size)
{
    if (report) {
        fprintf (report, "%s:%d: %s\n", path, line, msg);
        (*errors)++;
        return 0;
    }
    s_fmt (errbuf, errbuf_size, "%s:%d: %s", path, line, msg);
    return -1;
}

int
mw_conf_read (const char *path, mw_conf_fn *fn, void *arg, FILE *report, char *errbuf,
              size_t errbuf_size)
{
    assert (path);
    assert (fn);
    FILE *file = fopen (path, "r");
    if (!file) {
        s_fmt (errbuf, errbuf_size, "cannot read config file %s: %s", path, strerror (errno));
        return -1;
    }
    //  A config file is a file (or a pipe, for `--config <(...)`): not a
    //  directory, not a device such as /dev/zero, not a runaway size.
    struct stat st;
    if (fstat (fileno (file), &st) == 0 &&
        (!(S_ISREG (st.st_mode) || S_ISFIFO (st.st_mode)) ||
         (S_ISREG (st.st_mode) && st.st_size > MW_CONF_FILE_MAX))) {
        if (S_ISDIR (st.st_mode))
            s_fmt (errbuf, errbuf_size, "cannot read config file %s: it is a directory", path);
        else if (S_ISREG (st.st_mode))
            s_fmt (errbuf, errbuf_size, "config file %s is larger than %d bytes", path,
                   MW_CONF_FILE_MAX);
        else
            s_fmt (errbuf, errbuf_size, "cannot read config file %s: not a regular file", path);
        fclose (file);
        return -1;
    }
    int rc = mw_conf_read_stream (file, path, fn, arg, report, errbuf, errbuf_size);
    fclose (file);
    return rc;
}

int
mw_conf_read_stream (FILE *file, const char *path, mw_conf_fn *fn, void *arg, FILE *report,
                     char *errbuf, size_t errbuf_size)
{
    assert (file);
    assert (path);
    assert (fn);
    char *text = NULL;
    size_t text_size = 0;
    ssize_t len;
    int line = 0;
    int errors = 0;
    int rc = 0;
    char msg[MW_CONF_LINE_MAX + 256];
    while ((len = getline (&text, &text_size, file)) >= 0) {
        line++;
        if (len > MW_CONF_LINE_MAX - 1) {
            snprintf (msg, sizeof (msg), "line longer than %d bytes", MW_CONF_LINE_MAX - 2);
            if ((rc = s_error (report, path, line, msg, &errors, errbuf, errbuf_size)))
                break;
            continue;
        }
        if (memchr (text, 0, (size_t) len)) {
            snprintf (msg, sizeof (msg), "a NUL byte in the line (not a text file?)");
            if ((rc = s_error (report, path, line, msg, &errors, errbuf, errbuf_size)))
                break;
            continue;
        }
        char *s = s_trim (text);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr (s, '=');
        if (!eq) {
            snprintf (msg, sizeof (msg), "expected 'key = value', got '%.60s'", s);
            if ((rc = s_error (report, path, line, msg, &errors, errbuf, errbuf_size)))
                break;
            continue;
        }
        *eq = 0;
        char *key = s_trim (s);
        char *value = s_trim (eq + 1);
        if (!*key) {
            snprintf (msg, sizeof (msg), "a setting without a key (expected 'key = value')");
            if ((rc = s_error (report, path, line, msg, &errors, errbuf, errbuf_size)))
                break;
            continue;
        }
        if (key[0] == '-' && key[1] == '-')
            key += 2; //  "--publish = ..." is the flag's name too
        size_t vlen = strlen (value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = 0;
            value++;
        }
        char err[1024];
        err[0] = 0;
        if (fn (arg, key, value, line, err, sizeof (err)) != 0) {
            snprintf (msg, sizeof (msg), "%s", err[0] ? err : "invalid setting");
            if ((rc = s_error (report, path, line, msg, &errors, errbuf, errbuf_size)))
                break;
        }
    }
    if (rc == 0 && ferror (file)) {
        s_fmt (errbuf, errbuf_size, "cannot read config file %s: %s", path, strerror (errno));
        rc = -1;
    }
    free (text);
    if (rc)
        return -1;
    return report ? errors : 0;
}

int
mw_conf_read_secret (const char *key, const char *path, char *out, size_t size, char *errbuf,
                     size_t errbuf_size)
{
    assert (key);
    assert (out);
    assert (size > 0);
    if (!path || !*path) {
        s_fmt (errbuf, errbuf_size, "--%s: expected the name of a file that holds the secret", key);
        return -1;
    }
    //  O_NONBLOCK: a FIFO must not hang us before fstat can refuse it.
    int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        s_fmt (errbuf, errbuf_size, "--%s: cannot read %s: %s", key, path, strerror (errno));
        return -1;
    }
    struct stat st;
    int rc = -1;
    char *buf = NULL;
    if (fstat (fd, &st) != 0) {
        s_fmt (errbuf, errbuf_size, "--%s: cannot stat %s: %s", key, path, strerror (errno));
        goto done;
    }
    if (!S_ISREG (st.st_mode)) {
        s_fmt (errbuf, errbuf_size, "--%s: %s is not a regular file", key, path);
        goto done;
    }
    if (st.st_mode & 0027) {
        s_fmt (errbuf, errbuf_size,
               "--%s: %s is %s (mode %04o): a secret file must be readable by its owner (and "
               "group) only; run `chmod 600 %s`",
               key, path, (st.st_mode & 0007) ? "open to other users" : "writable by its group",
               (unsigned) (st.st_mode & 07777), path);
        goto done;
    }
    buf = malloc (MW_CONF_SECRET_MAX + 1);
    if (!buf) {
        s_fmt (errbuf, errbuf_size, "--%s: out of memory", key);
        goto done;
    }
    size_t len = 0;
    while (len <= MW_CONF_SECRET_MAX) {
        ssize_t n = read (fd, buf + len, MW_CONF_SECRET_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s_fmt (errbuf, errbuf_size, "--%s: cannot read %s: %s", key, path, strerror (errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t) n;
    }
    if (len > MW_CONF_SECRET_MAX) {
        s_fmt (errbuf, errbuf_size, "--%s: %s is larger than %d bytes: not a secret file", key,
               path, MW_CONF_SECRET_MAX);
        goto done;
    }
    if (len && buf[len - 1] == '\n')
        len--;
    if (len && buf[len - 1] == '\r')
        len--;
    if (len == 0) {
        s_fmt (errbuf, errbuf_size, "--%s: %s is empty", key, path);
        goto done;
    }
    for (size_t i = 0; i < len; i++)
        if (buf[i] == 0 || buf[i] == '\n' || buf[i] == '\r') {
            s_fmt (errbuf, errbuf_size,
                   "--%s: %s holds more than one line (or a NUL byte): the whole file, less a "
                   "final newline, is the secret",
                   key, path);
            goto done;
        }
    if (len >= size) {
        s_fmt (errbuf, errbuf_size, "--%s: the secret in %s is too long (%zu bytes, at most %zu)",
               key, path, len, size - 1);
        goto done;
    }
    memcpy (out, buf, len);
    out[len] = 0;
    rc = 0;
done:
    if (buf) {
        //  Do not leave the secret in freed memory.
        volatile char *p = buf;
        for (size_t i = 0; i < MW_CONF_SECRET_MAX + 1; i++)
            p[i] = 0;
        free (buf);
    }
    close (fd);
    return rc;
}

int
mw_conf_parse_bool (const char *value, bool *out)
{
    assert (out);
    if (!value || !strcmp (value, "true") || !strcmp (value, "yes") ||
        !strcmp (value, "on") || !strcmp (value, "1")) {
        *out = true;
        return 0;
    }
    if (!strcmp (value, "false") || !strcmp (value, "no") || !strcmp (value, "off") ||
        !strcmp (value, "0")) {
        *out = false;
        return 0;
    }
    return -1;
}

//  --------------------------------------------------------------------------
//  Option names, for "did you mean"

static size_t
s_count (char *const *names)
{
    size_t n = 0;
    while (names && names[n])
        n++;
    return n;
}

bool
mw_conf_names_has (char *const *names, const char *key)
{
    assert (key);
    for (size_t i = 0; names && names[i]; i++)
        if (strcmp (names[i], key) == 0)
            return true;
    return false;
}

void
mw_conf_names_free (char ***names_p)
{
    assert (names_p);
    if (*names_p) {
        for (size_t i = 0; (*names_p)[i]; i++)
            free ((*names_p)[i]);
        free (*names_p);
        *names_p = NULL;
    }
}

static bool
s_name_char (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

char **
mw_conf_names_add (char **names, void (*usage) (FILE *out))
{
    assert (usage);
    char *text = NULL;
    size_t text_size = 0;
    FILE *out = open_memstream (&text, &text_size);
    if (!out) {
        mw_conf_names_free (&names);
        return NULL;
    }
    usage (out);
    fclose (out);
    size_t count = s_count (names);
    if (!names) {
        names = calloc (1, sizeof (char *));
        if (!names) {
            free (text);
            return NULL;
        }
    }
    for (const char *p = text; p && *p; p++) {
        //  "--name" at the start of a word: after a space, a comma, a
        //  parenthesis, a quote, or at the start of the text.
        if (p[0] != '-' || p[1] != '-' || !(p[2] >= 'a' && p[2] <= 'z'))
            continue;
        if (p != text && !strchr (" \t\n,(`'\"", p[-1]))
            continue;
        const char *start = p + 2;
        const char *end = start;
        while (s_name_char (*end))
            end++;
        while (end > start && end[-1] == '-')
            end--;
        size_t len = (size_t) (end - start);
        p = end - 1;
        char name[64];
        if (len == 0 || len >= sizeof (name))
            continue;
        memcpy (name, start, len);
        name[len] = 0;
        if (!strcmp (name, "help") || !strcmp (name, "version") || !strcmp (name, "config") ||
            mw_conf_names_has (names, name))
            continue;
        char **more = realloc (names, (count + 2) * sizeof (char *));
        char *copy = strdup (name);
        if (!more || !copy) {
            free (copy);
            if (more)
                names = more;
            mw_conf_names_free (&names);
            free (text);
            return NULL;
        }
        names = more;
        names[count++] = copy;
        names[count] = NULL;
    }
    free (text);
    return names;
}

char **
mw_conf_names_from_usage (void (*usage) (FILE *out))
{
    return mw_conf_names_add (NULL, usage);
}

//  Levenshtein distance, capped at 64-byte keys (longer: no suggestion).
static size_t
s_distance (const char *a, const char *b)
{
    size_t la = strlen (a), lb = strlen (b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *
mw_conf_suggest (char *const *names, const char *key)
{
    assert (key);
    size_t key_len = strlen (key);
    size_t limit = key_len / 3 > 2 ? key_len / 3 : 2;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; names && names[i]; i++) {
        size_t d = s_distance (key, names[i]);
        //  "auth-token" for "auth-token-fil": a prefix is a typo too.
        size_t n_len = strlen (names[i]);
        if (d > limit && key_len >= 4 && n_len > key_len && !strncmp (names[i], key, key_len))
            d = limit;
        if (d <= limit && d < best_d) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}
