/*  mw_httpparse.c - the gateway's parsing of request input.

    Input is hostile: every copy is bounded by its destination, every
    number checked for overflow, and a bad value gives a message for the
    400 the server answers with.
*/
#include "mw_httpparse.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void s_err (char *msg, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_err (char *msg, size_t size, const char *fmt, ...)
{
    if (!msg || size == 0)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (msg, size, fmt, ap);
    va_end (ap);
}

int
mw_http_parse_u64 (const char *s, uint64_t *out)
{
    if (!*s)
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned) (*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

void
mw_http_query_init (mw_http_query_t *q)
{
    memset (q, 0, sizeof (*q));
}

//  Parse ?types=: comma-separated prefixes of printable ASCII.
static int
s_parse_types (mw_http_query_t *q, const char *value, char *msg, size_t msg_size)
{
    const char *p = value;
    size_t used = 0;
    while (*p) {
        const char *comma = strchr (p, ',');
        size_t n = comma ? (size_t) (comma - p) : strlen (p);
        if (n == 0 || n > MW_MAX_TYPE || q->type_count == MW_HTTPPARSE_TYPES_MAX) {
            s_err (msg, msg_size,
                   "types: expected up to %d comma-separated type prefixes of 1 to %d characters",
                   MW_HTTPPARSE_TYPES_MAX, MW_MAX_TYPE);
            return -1;
        }
        for (size_t k = 0; k < n; k++)
            if ((unsigned char) p[k] <= ' ' || (unsigned char) p[k] >= 0x7f) {
                s_err (msg, msg_size, "types: a type name is printable ASCII");
                return -1;
            }
        memcpy (q->types + used, p, n);
        q->types[used + n] = 0;
        used += n + 1;
        q->type_count++;
        p += n + (comma ? 1 : 0);
        if (comma && !*p) {
            s_err (msg, msg_size, "types: empty entry");
            return -1;
        }
    }
    if (q->type_count == 0) {
        s_err (msg, msg_size, "types: expected at least one type prefix");
        return -1;
    }
    return 0;
}

//  Copy a string value of at most max bytes into dst (max + 1 bytes).
static int
s_parse_str (const char *name, const char *value, char *dst, size_t max, char *msg, size_t msg_size)
{
    size_t n = strlen (value);
    if (n > max) {
        s_err (msg, msg_size, "%s: at most %zu bytes", name, max);
        return -1;
    }
    memcpy (dst, value, n + 1);
    return 0;
}

int
mw_http_query_arg (mw_http_query_t *q, const char *arg, char *msg, size_t msg_size)
{
    const char *eq = strchr (arg, '=');
    const char *value = eq ? eq + 1 : "";
    size_t name_len = eq ? (size_t) (eq - arg) : strlen (arg);
    char name[32];
    if (name_len >= sizeof (name))
        return 0; //  not one of ours: ignored
    memcpy (name, arg, name_len);
    name[name_len] = 0;

    bool dup = false;
    int rc = 0;
    if (!strcmp (name, "since")) {
        dup = q->has_since;
        q->has_since = true;
        if (mw_http_parse_u64 (value, &q->since) != 0) {
            s_err (msg, msg_size, "since: expected a broker id (a whole number)");
            return -1;
        }
    }
    else if (!strcmp (name, "limit")) {
        dup = q->has_limit;
        q->has_limit = true;
        if (mw_http_parse_u64 (value, &q->limit) != 0) {
            s_err (msg, msg_size, "limit: expected a whole number of events");
            return -1;
        }
    }
    else if (!strcmp (name, "last_event_id")) {
        dup = q->has_last_id;
        q->has_last_id = true;
        if (mw_http_parse_u64 (value, &q->last_id) != 0) {
            s_err (msg, msg_size, "last_event_id: expected a broker id (a whole number)");
            return -1;
        }
    }
    else if (!strcmp (name, "token")) {
        dup = q->has_token;
        q->has_token = true;
        //  A token longer than any secret can hold is refused, not cut:
        //  cut, it could equal a secret it only begins with.
        rc = s_parse_str ("token", value, q->token, sizeof (q->token) - 1, msg, msg_size);
    }
    else if (!strcmp (name, "types")) {
        dup = q->type_count > 0;
        if (!dup)
            rc = s_parse_types (q, value, msg, msg_size);
    }
    else if (!strcmp (name, "miner")) {
        dup = q->has_miner;
        q->has_miner = true;
        rc = s_parse_str ("miner", value, q->miner, MW_MAX_MINER, msg, msg_size);
    }
    else if (!strcmp (name, "task_id")) {
        dup = q->has_task_id;
        q->has_task_id = true;
        rc = s_parse_str ("task_id", value, q->task_id, MW_MAX_TASK_ID, msg, msg_size);
    }
    //  Other names (cache busters such as _=123) are ignored.
    if (rc != 0)
        return -1;
    if (dup) {
        s_err (msg, msg_size, "%s: given twice", name);
        return -1;
    }
    return 0;
}

int
mw_http_last_event_id (const char *value, uint64_t *id)
{
    if (!*value)
        return 0;
    return mw_http_parse_u64 (value, id) == 0 ? 1 : -1;
}

bool
mw_http_secret_equal (const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen > blen ? alen : blen;
    unsigned diff = alen != blen;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = i < alen ? (unsigned char) a[i] : 0;
        unsigned char y = i < blen ? (unsigned char) b[i] : 0;
        diff |= (unsigned) (x ^ y);
    }
    return diff == 0;
}

static int
s_b64_value (unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int
mw_http_base64_decode (const char *in, size_t len, char *out, size_t size)
{
    //  Padding: up to two '=' at the end, and only there.
    size_t pad = 0;
    while (len > 0 && in[len - 1] == '=' && pad < 2) {
        len--;
        pad++;
    }
    if (len % 4 == 1 || (pad && (len + pad) % 4 != 0))
        return -1;
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = s_b64_value ((unsigned char) in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= size)
                return -1;
            out[n++] = (char) ((acc >> bits) & 0xff);
        }
    }
    if (size == 0)
        return -1;
    out[n] = 0;
    return (int) n;
}

bool
mw_http_authorized (const char *auth_token, const char *basic_auth, const char *query_token,
                    const char *header)
{
    if (!auth_token[0] && !basic_auth[0])
        return true;
    size_t token_len = strlen (auth_token);
    if (token_len && query_token &&
        mw_http_secret_equal (query_token, strlen (query_token), auth_token, token_len))
        return true;
    if (!header)
        return false;
    if (token_len && strncasecmp (header, "Bearer ", 7) == 0) {
        const char *token = header + 7;
        while (*token == ' ' || *token == '\t')
            token++;
        size_t len = strlen (token);
        while (len > 0 && (token[len - 1] == ' ' || token[len - 1] == '\t'))
            len--;
        return mw_http_secret_equal (token, len, auth_token, token_len);
    }
    if (basic_auth[0] && strncasecmp (header, "Basic ", 6) == 0) {
        const char *b64 = header + 6;
        while (*b64 == ' ')
            b64++;
        size_t len = strlen (b64);
        while (len > 0 && b64[len - 1] == ' ')
            len--;
        char plain[MW_HTTPPARSE_SECRET_MAX + 4];
        int n = mw_http_base64_decode (b64, len, plain, sizeof (plain));
        if (n <= 0)
            return false;
        return mw_http_secret_equal (plain, (size_t) n, basic_auth, strlen (basic_auth));
    }
    return false;
}
