/*  mw_curve.c - CURVE keys for the clients of a minerwatch broker (see
    mw_curve.h).

    The certificate reader implements the part of ZPL (ZeroMQ RFC 4) that
    czmq's zconfig_load accepts, with zconfig's rules: a line is an
    optional indentation of 4 spaces per level, then NAME, then optionally
    `= VALUE` (in double or single quotes, or bare up to a `#`), then
    optionally a `# comment`; a line that is empty or starts with `#` is a
    comment. A line one level deeper than the one before it is a child of
    it. zcert_load takes the keys from /curve/public-key and
    /curve/secret-key; so do we, and we refuse what zconfig would refuse
    (and a little more: a second curve section or a second key, which
    zconfig would silently resolve to the first).

    Secrets: the file's bytes and every decoded secret key are wiped
    (explicit_bzero) before their memory is released or reused, and no
    error message quotes a line of a secret file.
*/
#include "mw_curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

//  What one certificate file holds, as far as CURVE is concerned.
typedef struct {
    char public_z85[MW_CURVE_KEY_Z85 + 1];
    char secret_z85[MW_CURVE_KEY_Z85 + 1];
    bool has_public;
    bool has_secret;
} s_cert_t;

static void s_err (char *err, size_t err_size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_err (char *err, size_t err_size, const char *fmt, ...)
{
    if (!err || err_size == 0)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, err_size, fmt, ap);
    va_end (ap);
}

//  --------------------------------------------------------------------------
//  Reading a file

//  Read the whole of a regular file of at most MW_CURVE_FILE_MAX bytes into
//  a new NUL-terminated buffer (*size_p bytes before the NUL). O_NONBLOCK
//  so that a FIFO given by mistake fails instead of blocking forever; it
//  changes nothing for a regular file. Return the buffer, or NULL.
static char *
s_read_file (const char *path, size_t *size_p, char *err, size_t err_size)
{
    int fd = open (path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        s_err (err, err_size, "%s: cannot open: %s", path, strerror (errno));
        return NULL;
    }
    char *data = NULL;
    size_t cap = 0;
    struct stat st;
    if (fstat (fd, &st) != 0) {
        s_err (err, err_size, "%s: cannot read: %s", path, strerror (errno));
        goto fail;
    }
    if (!S_ISREG (st.st_mode)) {
        s_err (err, err_size, "%s: %s, not a certificate file", path,
               S_ISDIR (st.st_mode) ? "a directory" : "a special file");
        goto fail;
    }
    if (st.st_size > MW_CURVE_FILE_MAX) {
        s_err (err, err_size,
               "%s: %lld bytes, too large for a certificate (at most %d; one is about 500)", path,
               (long long) st.st_size, MW_CURVE_FILE_MAX);
        goto fail;
    }
    cap = (size_t) st.st_size;
    data = (char *) malloc (cap + 1);
    if (!data) {
        s_err (err, err_size, "%s: out of memory", path);
        goto fail;
    }
    //  Read until end of file, at most cap bytes: the file may have changed
    //  size since fstat; one more byte than that is "too large".
    size_t size = 0;
    while (true) {
        char probe;
        ssize_t n = size < cap ? read (fd, data + size, cap - size) : read (fd, &probe, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s_err (err, err_size, "%s: cannot read: %s", path, strerror (errno));
            goto fail;
        }
        if (n == 0)
            break;
        if (size == cap) {
            s_err (err, err_size, "%s: the file grew while it was read; try again", path);
            goto fail;
        }
        size += (size_t) n;
    }
    data[size] = 0;
    close (fd);
    *size_p = size;
    return data;

fail:
    if (data) {
        explicit_bzero (data, cap + 1);
        free (data);
    }
    close (fd);
    return NULL;
}

//  --------------------------------------------------------------------------
//  Parsing a certificate (ZPL)

static bool
s_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

//  The characters of a ZPL name (zconfig's s_is_namechar).
static bool
s_is_namechar (char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '$' ||
           c == '-' || c == '_' || c == '@' || c == '.' || c == '&' || c == '+' || c == '/';
}

//  Nothing but blanks, then optionally a comment, from p on?
static bool
s_rest_empty (const char *p)
{
    while (s_is_space (*p))
        p++;
    return *p == 0 || *p == '#';
}

//  Decode a key value of line lineno: 40 characters of Z85. Return 0 with
//  the text copied to out, or -1 with a message that does not quote it.
static int
s_key_value (const char *path, int lineno, const char *name, const char *value, size_t len,
             char *out, char *err, size_t err_size)
{
    if (len != MW_CURVE_KEY_Z85) {
        s_err (err, err_size, "%s: line %d: %s has %zu characters; expected %d characters of Z85",
               path, lineno, name, len, MW_CURVE_KEY_Z85);
        return -1;
    }
    memcpy (out, value, len);
    out[len] = 0;
    uint8_t key[MW_CURVE_KEY_BYTES];
    bool ok = zmq_z85_decode (key, out) != NULL;
    explicit_bzero (key, sizeof (key));
    if (!ok) {
        explicit_bzero (out, len);
        s_err (err, err_size,
               "%s: line %d: %s is not valid Z85 (a character outside the Z85 alphabet, or "
               "a group too large)",
               path, lineno, name);
        return -1;
    }
    return 0;
}

//  Parse certificate text (modified: lines are cut at their ends). Return
//  0 with what it holds in cert, or -1 with a message.
static int
s_cert_parse (const char *path, char *text, size_t size, s_cert_t *cert, char *err, size_t err_size)
{
    memset (cert, 0, sizeof (*cert));
    if (memchr (text, 0, size)) {
        s_err (err, err_size, "%s: holds a NUL byte: not a text file, so not a certificate", path);
        return -1;
    }
    int lineno = 0;
    int max_level = 0;       //  deepest level the next item may have
    bool in_curve = false;   //  the current top-level section is `curve`
    bool seen_curve = false; //  a `curve` section was found
    char *line = text;
    while (line) {
        lineno++;
        char *eol = strchr (line, '\n');
        char *next = eol ? eol + 1 : NULL;
        if (eol)
            *eol = 0;
        size_t len = strlen (line);
        while (len && s_is_space (line[len - 1]))
            line[--len] = 0;

        char *p = line;
        while (*p == ' ')
            p++;
        size_t indent = (size_t) (p - line);
        if (*p == 0 || *p == '#') {
            line = next; //  empty line or comment
            continue;
        }
        if (*p == '\t') {
            s_err (err, err_size, "%s: line %d: a tab; indent with 4 spaces per level", path,
                   lineno);
            return -1;
        }
        if (indent % 4 != 0) {
            s_err (err, err_size,
                   "%s: line %d: indented by %zu spaces; expected a multiple of 4 (4 per level)",
                   path, lineno, indent);
            return -1;
        }
        int level = (int) (indent / 4);
        if (level > max_level) {
            s_err (err, err_size, "%s: line %d: indented deeper than the line it belongs to allows",
                   path, lineno);
            return -1;
        }
        char *name = p;
        while (s_is_namechar (*p))
            p++;
        size_t name_len = (size_t) (p - name);
        if (name_len == 0 || name[0] == '/' || name[name_len - 1] == '/') {
            s_err (err, err_size,
                   "%s: line %d: expected NAME or NAME = \"VALUE\" (a name is letters, digits "
                   "and $-_@.&+/)",
                   path, lineno);
            return -1;
        }
        char *value = p; //  empty unless there is "= VALUE"
        size_t value_len = 0;
        while (s_is_space (*p))
            p++;
        if (*p == '=') {
            p++;
            while (s_is_space (*p))
                p++;
            if (*p == '"' || *p == '\'') {
                char *close = strchr (p + 1, *p);
                if (!close) {
                    s_err (err, err_size, "%s: line %d: a value without its closing %c", path,
                           lineno, *p);
                    return -1;
                }
                value = p + 1;
                value_len = (size_t) (close - value);
                p = close + 1;
            }
            else {
                value = p;
                char *hash = strchr (p, '#');
                value_len = hash ? (size_t) (hash - p) : strlen (p);
                while (value_len && s_is_space (value[value_len - 1]))
                    value_len--;
                p = value + value_len;
            }
        }
        if (!s_rest_empty (p)) {
            s_err (err, err_size,
                   "%s: line %d: unexpected text after the %s; expected NAME = \"VALUE\"", path,
                   lineno, value_len ? "value" : "name");
            return -1;
        }
        name[name_len] = 0; //  after the value was found: it may start right there
        max_level = level + 1;

        if (level == 0) {
            in_curve = strcmp (name, "curve") == 0;
            if (in_curve && seen_curve) {
                s_err (err, err_size, "%s: line %d: a second curve section; expected one", path,
                       lineno);
                return -1;
            }
            seen_curve = seen_curve || in_curve;
        }
        else if (level == 1 && in_curve) {
            bool is_public = strcmp (name, "public-key") == 0;
            bool is_secret = strcmp (name, "secret-key") == 0;
            if ((is_public && cert->has_public) || (is_secret && cert->has_secret)) {
                s_err (err, err_size, "%s: line %d: a second %s in the curve section", path, lineno,
                       name);
                return -1;
            }
            if (is_public || is_secret) {
                char *out = is_public ? cert->public_z85 : cert->secret_z85;
                if (s_key_value (path, lineno, name, value, value_len, out, err, err_size))
                    return -1;
                if (is_public)
                    cert->has_public = true;
                else
                    cert->has_secret = true;
            }
        }
        line = next;
    }
    if (!seen_curve) {
        s_err (err, err_size,
               "%s: no curve section; expected a czmq certificate as `minerwatch keygen` "
               "writes it",
               path);
        return -1;
    }
    if (!cert->has_public) {
        s_err (err, err_size, "%s: no public-key in its curve section", path);
        return -1;
    }
    return 0;
}

//  Read and parse a certificate file. Return 0, or -1 with a message.
static int
s_cert_load (const char *path, s_cert_t *cert, char *err, size_t err_size)
{
    size_t size = 0;
    char *text = s_read_file (path, &size, err, err_size);
    if (!text)
        return -1;
    int rc = s_cert_parse (path, text, size, cert, err, err_size);
    explicit_bzero (text, size);
    free (text);
    return rc;
}

static void
s_cert_wipe (s_cert_t *cert)
{
    explicit_bzero (cert, sizeof (*cert));
}

//  --------------------------------------------------------------------------
//  The API

int
mw_curve_server_key (const char *text, uint8_t *key, char *err, size_t err_size)
{
    if (!text || !*text) {
        s_err (err, err_size,
               "empty server key; expected 40 characters of Z85 or a certificate file");
        return -1;
    }
    //  A file first: a 40-character path can be made of Z85 characters.
    struct stat st;
    if (stat (text, &st) == 0) {
        s_cert_t cert;
        int rc = s_cert_load (text, &cert, err, err_size);
        if (rc == 0)
            zmq_z85_decode (key, cert.public_z85); //  checked by the parser
        s_cert_wipe (&cert);
        return rc;
    }
    int stat_errno = errno;
    size_t len = strlen (text);
    if (len == MW_CURVE_KEY_Z85 && zmq_z85_decode (key, text))
        return 0;
    if (stat_errno != ENOENT && stat_errno != ENOTDIR && stat_errno != ENAMETOOLONG)
        s_err (err, err_size, "%s: cannot access: %s", text, strerror (stat_errno));
    else if (len == MW_CURVE_KEY_Z85)
        s_err (err, err_size,
               "'%s': no such file, and not valid Z85 (a character outside the Z85 alphabet, "
               "or a group too large)",
               text);
    else
        s_err (err, err_size,
               "'%s': no such file, and not a key (%zu characters; a key is %d characters of "
               "Z85)",
               text, len, MW_CURVE_KEY_Z85);
    return -1;
}

int
mw_curve_load_secret (const char *path, mw_curve_pair_t *pair, char *err, size_t err_size)
{
    memset (pair, 0, sizeof (*pair));
    if (!path || !*path) {
        s_err (err, err_size, "empty certificate file name");
        return -1;
    }
    s_cert_t cert;
    int rc = -1;
    if (s_cert_load (path, &cert, err, err_size) != 0)
        goto done;
    if (!cert.has_secret) {
        s_err (err, err_size,
               "%s holds no secret-key: it is a public certificate; give the key pair, the "
               "_secret file `minerwatch keygen` wrote",
               path);
        goto done;
    }
    //  The secret key decides who we are; the public key in the file is
    //  what the broker's allow-list holds. They must be one pair.
    char derived[MW_CURVE_KEY_Z85 + 1];
    if (zmq_curve_public (derived, cert.secret_z85) != 0) {
        s_err (err, err_size, "%s: cannot derive the public key: %s (libzmq without CURVE?)", path,
               zmq_strerror (zmq_errno ()));
        goto done;
    }
    uint8_t derived_key[MW_CURVE_KEY_BYTES];
    zmq_z85_decode (derived_key, derived);
    zmq_z85_decode (pair->public_key, cert.public_z85);
    zmq_z85_decode (pair->secret_key, cert.secret_z85);
    if (memcmp (derived_key, pair->public_key, MW_CURVE_KEY_BYTES) != 0) {
        s_err (err, err_size,
               "%s: its secret-key does not belong to its public-key (an edited file, or keys "
               "of two pairs); make a new pair with `minerwatch keygen`",
               path);
        explicit_bzero (pair, sizeof (*pair));
        goto done;
    }
    rc = 0;

done:
    s_cert_wipe (&cert);
    return rc;
}

int
mw_curve_new_pair (mw_curve_pair_t *pair, char *err, size_t err_size)
{
    char public_z85[MW_CURVE_KEY_Z85 + 1];
    char secret_z85[MW_CURVE_KEY_Z85 + 1];
    if (zmq_curve_keypair (public_z85, secret_z85) != 0) {
        s_err (err, err_size, "cannot make a CURVE key pair: %s (libzmq built without CURVE)",
               zmq_strerror (zmq_errno ()));
        return -1;
    }
    zmq_z85_decode (pair->public_key, public_z85);
    zmq_z85_decode (pair->secret_key, secret_z85);
    explicit_bzero (secret_z85, sizeof (secret_z85));
    return 0;
}

int
mw_curve_apply (void *socket, const uint8_t *server_key, const mw_curve_pair_t *pair, char *err,
                size_t err_size)
{
    //  The server key first: it makes the socket a CURVE client.
    if (zmq_setsockopt (socket, ZMQ_CURVE_SERVERKEY, server_key, MW_CURVE_KEY_BYTES) != 0 ||
        zmq_setsockopt (socket, ZMQ_CURVE_PUBLICKEY, pair->public_key, MW_CURVE_KEY_BYTES) != 0 ||
        zmq_setsockopt (socket, ZMQ_CURVE_SECRETKEY, pair->secret_key, MW_CURVE_KEY_BYTES) != 0) {
        s_err (err, err_size, "cannot set the CURVE keys on the socket: %s%s",
               zmq_strerror (zmq_errno ()),
               zmq_has ("curve") ? "" : " (this libzmq was built without CURVE support)");
        return -1;
    }
    return 0;
}

int
mw_curve_client (void *socket, const char *server_key, const char *client_cert, char *err,
                 size_t err_size)
{
    char why[512];
    if (!zmq_has ("curve")) {
        s_err (err, err_size,
               "this libzmq was built without CURVE support (no libsodium): cannot encrypt");
        return -1;
    }
    uint8_t key[MW_CURVE_KEY_BYTES];
    if (mw_curve_server_key (server_key, key, why, sizeof (why)) != 0) {
        s_err (err, err_size, "server key %s", why);
        return -1;
    }
    mw_curve_pair_t pair;
    int rc = client_cert ? mw_curve_load_secret (client_cert, &pair, why, sizeof (why))
                         : mw_curve_new_pair (&pair, why, sizeof (why));
    if (rc != 0)
        s_err (err, err_size, "%s%s", client_cert ? "client certificate " : "", why);
    else
        rc = mw_curve_apply (socket, key, &pair, err, err_size);
    explicit_bzero (&pair, sizeof (pair));
    return rc;
}
