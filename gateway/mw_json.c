/*  mw_json.c - JSON rendering of events: a growable buffer, a string
    escaper, and a msgpack-to-JSON converter for the extras.

    Everything here is a pure function of its input: no clocks, no I/O, no
    allocation but the buffer's own growth. The msgpack reader checks every
    declared length against the bytes left before using it and bounds its
    recursion, because mw_json_msgpack is public and may see bytes that did
    not come through the decoder. A declared count cannot make it allocate
    or loop more than the input allows: each element consumes a byte.
*/
#include "mw_json.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  mw_buf_t

void
mw_buf_init (mw_buf_t *self)
{
    assert (self);
    self->data = NULL;
    self->len = 0;
    self->cap = 0;
    self->failed = false;
}

void
mw_buf_release (mw_buf_t *self)
{
    assert (self);
    free (self->data);
    mw_buf_init (self);
}

void
mw_buf_reset (mw_buf_t *self)
{
    assert (self);
    self->len = 0;
    self->failed = false;
    if (self->data)
        self->data[0] = 0;
}

int
mw_buf_reserve (mw_buf_t *self, size_t more)
{
    assert (self);
    if (self->failed)
        return -1;
    //  +1 for the NUL kept after the data.
    if (more > SIZE_MAX / 4 - self->len - 1) {
        self->failed = true;
        return -1;
    }
    size_t need = self->len + more + 1;
    if (need <= self->cap)
        return 0;
    size_t cap = self->cap ? self->cap : 256;
    while (cap < need)
        cap *= 2;
    char *data = (char *) realloc (self->data, cap);
    if (!data) {
        self->failed = true;
        return -1;
    }
    self->data = data;
    self->cap = cap;
    return 0;
}

int
mw_buf_append (mw_buf_t *self, const void *data, size_t len)
{
    if (mw_buf_reserve (self, len) != 0)
        return -1;
    if (len)
        memcpy (self->data + self->len, data, len);
    self->len += len;
    self->data[self->len] = 0;
    return 0;
}

int
mw_buf_puts (mw_buf_t *self, const char *s)
{
    assert (s);
    return mw_buf_append (self, s, strlen (s));
}

int
mw_buf_putc (mw_buf_t *self, char c)
{
    if (mw_buf_reserve (self, 1) != 0)
        return -1;
    self->data[self->len++] = c;
    self->data[self->len] = 0;
    return 0;
}

int
mw_buf_printf (mw_buf_t *self, const char *fmt, ...)
{
    assert (self);
    assert (fmt);
    if (mw_buf_reserve (self, 64) != 0)
        return -1;
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (self->data + self->len, self->cap - self->len, fmt, ap);
    va_end (ap);
    if (n < 0) {
        self->data[self->len] = 0;
        self->failed = true;
        return -1;
    }
    if ((size_t) n >= self->cap - self->len) {
        //  Did not fit: grow and format again.
        if (mw_buf_reserve (self, (size_t) n) != 0) {
            self->data[self->len] = 0;
            return -1;
        }
        va_start (ap, fmt);
        vsnprintf (self->data + self->len, self->cap - self->len, fmt, ap);
        va_end (ap);
    }
    self->len += (size_t) n;
    return 0;
}

void
mw_buf_truncate (mw_buf_t *self, size_t len)
{
    assert (self);
    assert (len <= self->len);
    self->len = len;
    if (self->data)
        self->data[len] = 0;
}

//  --------------------------------------------------------------------------
//  Scalars

static const char s_hex[] = "0123456789abcdef";

//  Append an unsigned integer in decimal (faster than printf on the hot path).
static int
s_put_u64 (mw_buf_t *buf, uint64_t u)
{
    char tmp[24];
    size_t n = sizeof (tmp);
    do {
        tmp[--n] = (char) ('0' + u % 10);
        u /= 10;
    } while (u);
    return mw_buf_append (buf, tmp + n, sizeof (tmp) - n);
}

static int
s_put_i64 (mw_buf_t *buf, int64_t i)
{
    if (i >= 0)
        return s_put_u64 (buf, (uint64_t) i);
    mw_buf_putc (buf, '-');
    //  Negate in unsigned arithmetic: -INT64_MIN overflows int64_t.
    return s_put_u64 (buf, 0 - (uint64_t) i);
}

//  printf's %g writes a decimal comma under some LC_NUMERIC locales; JSON
//  needs a point. A formatted number holds no other comma.
static void
s_fix_decimal_point (char *s)
{
    for (; *s; s++)
        if (*s == ',')
            *s = '.';
}

//  A float that reads back as an integer ("5") is written "5.0", so that a
//  JSON reader keeps it a float (Python, jansson), as msgpack had it.
static int
s_put_number_text (mw_buf_t *buf, char *text)
{
    s_fix_decimal_point (text);
    mw_buf_puts (buf, text);
    if (!strpbrk (text, ".eE"))
        mw_buf_puts (buf, ".0");
    return buf->failed ? -1 : 0;
}

int
mw_json_double (mw_buf_t *buf, double d)
{
    assert (buf);
    if (!isfinite (d))
        return mw_buf_puts (buf, "null");
    //  The shortest of 15, 16, 17 significant digits that reads back exactly.
    char text[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf (text, sizeof (text), "%.*g", prec, d);
        if (strtod (text, NULL) == d)
            break;
    }
    return s_put_number_text (buf, text);
}

static int
s_put_float (mw_buf_t *buf, float f)
{
    if (!isfinite (f))
        return mw_buf_puts (buf, "null");
    char text[40];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf (text, sizeof (text), "%.*g", prec, (double) f);
        if (strtof (text, NULL) == f)
            break;
    }
    return s_put_number_text (buf, text);
}

//  --------------------------------------------------------------------------
//  Strings

size_t
mw_utf8_next (const uint8_t *s, size_t len, uint32_t *cp_p)
{
    assert (s && len > 0 && cp_p);
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp_p = c;
        return 1;
    }
    //  Well-formed sequences, Unicode Table 3-7: the second byte's range
    //  depends on the first (no overlongs, no surrogates, <= U+10FFFF).
    size_t need;
    uint32_t cp;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        cp = c & 0x1Fu;
    }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        cp = c & 0x0Fu;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        cp = c & 0x07u;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    }
    else {
        *cp_p = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= len || s[i] < lo || s[i] > hi) {
            *cp_p = 0xFFFD;
            return i;
        }
        cp = (cp << 6) | (s[i] & 0x3Fu);
        lo = 0x80;
        hi = 0xBF;
    }
    *cp_p = cp;
    return need + 1;
}

static void
s_put_u_escape (mw_buf_t *buf, uint32_t cp)
{
    char esc[6] = {'\\',
                   'u',
                   s_hex[(cp >> 12) & 0xF],
                   s_hex[(cp >> 8) & 0xF],
                   s_hex[(cp >> 4) & 0xF],
                   s_hex[cp & 0xF]};
    mw_buf_append (buf, esc, sizeof (esc));
}

//  Bytes that are copied as they are: printable ASCII but the quote, the
//  backslash and the three HTML specials.
static inline bool
s_plain (uint8_t c)
{
    return c >= 0x20 && c < 0x7F && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&';
}

int
mw_json_string (mw_buf_t *buf, const char *s, size_t len)
{
    assert (buf);
    assert (s || len == 0);
    //  Most strings need no escape: reserve for that case up front.
    if (mw_buf_reserve (buf, len + 2) != 0)
        return -1;
    mw_buf_putc (buf, '"');
    const uint8_t *p = (const uint8_t *) s;
    const uint8_t *end = p + len;
    const uint8_t *run = p; //  start of bytes not yet copied
    while (p < end) {
        uint8_t c = *p;
        if (s_plain (c)) {
            p++;
            continue;
        }
        if (c < 0x80) {
            mw_buf_append (buf, run, (size_t) (p - run));
            switch (c) {
                case '"':
                    mw_buf_append (buf, "\\\"", 2);
                    break;
                case '\\':
                    mw_buf_append (buf, "\\\\", 2);
                    break;
                case '\n':
                    mw_buf_append (buf, "\\n", 2);
                    break;
                case '\r':
                    mw_buf_append (buf, "\\r", 2);
                    break;
                case '\t':
                    mw_buf_append (buf, "\\t", 2);
                    break;
                case '\b':
                    mw_buf_append (buf, "\\b", 2);
                    break;
                case '\f':
                    mw_buf_append (buf, "\\f", 2);
                    break;
                default: //  other C0 controls, DEL, < > &
                    s_put_u_escape (buf, c);
                    break;
            }
            run = ++p;
            continue;
        }
        uint32_t cp;
        size_t n = mw_utf8_next (p, (size_t) (end - p), &cp);
        bool genuine_fffd = n == 3 && p[0] == 0xEF && p[1] == 0xBF && p[2] == 0xBD;
        if (cp == 0xFFFD && !genuine_fffd) {
            mw_buf_append (buf, run, (size_t) (p - run));
            mw_buf_append (buf, "\xEF\xBF\xBD", 3);
            run = p + n;
        }
        else if ((cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029) {
            //  C1 controls (a terminal may read U+009B as CSI) and the two
            //  line separators JavaScript source does not allow in strings.
            mw_buf_append (buf, run, (size_t) (p - run));
            s_put_u_escape (buf, cp);
            run = p + n;
        }
        p += n; //  valid UTF-8 stays in the run
    }
    mw_buf_append (buf, run, (size_t) (p - run));
    mw_buf_putc (buf, '"');
    return buf->failed ? -1 : 0;
}

size_t
mw_json_format_time (char *out, size_t size, uint64_t ts_us)
{
    assert (out && size >= MW_JSON_TIME_SIZE);
    //  Civil date from days since 1970-01-01 (H. Hinnant's algorithm): a pure
    //  function, no gmtime_r and its time zone lock, valid for every uint64.
    uint64_t secs = ts_us / 1000000u;
    unsigned ms = (unsigned) (ts_us / 1000u % 1000u);
    uint64_t days = secs / 86400u;
    unsigned sod = (unsigned) (secs % 86400u);
    uint64_t z = days + 719468u;
    uint64_t era = z / 146097u;
    uint64_t doe = z - era * 146097u;
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint64_t mp = (5 * doy + 2) / 153;
    unsigned day = (unsigned) (doy - (153 * mp + 2) / 5 + 1);
    unsigned month = (unsigned) (mp < 10 ? mp + 3 : mp - 9);
    uint64_t year = yoe + era * 400 + (month <= 2);
    int n = snprintf (out, size, "%04llu-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned long long) year,
                      month, day, sod / 3600, sod / 60 % 60, sod % 60, ms);
    return n > 0 ? (size_t) n : 0;
}

//  --------------------------------------------------------------------------
//  msgpack

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
s_put_base64 (mw_buf_t *buf, const uint8_t *p, size_t len)
{
    if (mw_buf_reserve (buf, (len + 2) / 3 * 4 + 2) != 0)
        return;
    char *out = buf->data + buf->len;
    *out++ = '"';
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];
        *out++ = s_b64[v >> 18];
        *out++ = s_b64[(v >> 12) & 63];
        *out++ = s_b64[(v >> 6) & 63];
        *out++ = s_b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t) p[i] << 16 | (i + 1 < len ? (uint32_t) p[i + 1] << 8 : 0);
        *out++ = s_b64[v >> 18];
        *out++ = s_b64[(v >> 12) & 63];
        *out++ = i + 1 < len ? s_b64[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    *out++ = '"';
    buf->len = (size_t) (out - buf->data);
    buf->data[buf->len] = 0;
}

//  Turn the JSON text buf[start..] into a JSON string holding that text:
//  quote it and escape its quotes and backslashes, in place. The text is
//  our own output, so it has no control characters and is valid UTF-8.
static void
s_quote_from (mw_buf_t *buf, size_t start)
{
    size_t extra = 2;
    for (size_t i = start; i < buf->len; i++)
        if (buf->data[i] == '"' || buf->data[i] == '\\')
            extra++;
    if (mw_buf_reserve (buf, extra) != 0)
        return;
    char *d = buf->data;
    size_t src = buf->len;
    size_t dst = buf->len + extra;
    d[dst] = 0;
    d[--dst] = '"';
    while (src > start) {
        char c = d[--src];
        d[--dst] = c;
        if (c == '"' || c == '\\')
            d[--dst] = '\\';
    }
    d[--dst] = '"';
    assert (dst == start);
    buf->len += extra;
}

static int s_mp_value (mw_buf_t *buf, const uint8_t **pp, const uint8_t *end, int depth);

//  A map key: a string as it is, anything else stringified from its JSON.
static int
s_mp_key (mw_buf_t *buf, const uint8_t **pp, const uint8_t *end, int depth)
{
    const uint8_t *p = *pp;
    mw_mp_obj_t o = {0};
    if (mw_msgpack_read (&p, end, &o) != 0)
        return -1;
    if (o.tag == MW_MP_STR) {
        *pp = p;
        return mw_json_string (buf, (const char *) o.ptr, o.len);
    }
    if (o.tag == MW_MP_BIN) {
        *pp = p;
        s_put_base64 (buf, o.ptr, o.len); //  already a string
        return buf->failed ? -1 : 0;
    }
    size_t start = buf->len;
    if (s_mp_value (buf, pp, end, depth) != 0)
        return -1;
    s_quote_from (buf, start);
    return buf->failed ? -1 : 0;
}

static int
s_mp_value (mw_buf_t *buf, const uint8_t **pp, const uint8_t *end, int depth)
{
    mw_mp_obj_t o = {0};
    if (mw_msgpack_read (pp, end, &o) != 0)
        return -1;
    switch (o.tag) {
        case MW_MP_NIL:
        case MW_MP_EXT:
            mw_buf_append (buf, "null", 4);
            break;
        case MW_MP_BOOL:
            mw_buf_puts (buf, o.b ? "true" : "false");
            break;
        case MW_MP_UINT:
            s_put_u64 (buf, o.u);
            break;
        case MW_MP_INT:
            s_put_i64 (buf, o.i);
            break;
        case MW_MP_FLOAT32:
            s_put_float (buf, (float) o.d);
            break;
        case MW_MP_FLOAT64:
            mw_json_double (buf, o.d);
            break;
        case MW_MP_STR:
            mw_json_string (buf, (const char *) o.ptr, o.len);
            break;
        case MW_MP_BIN:
            s_put_base64 (buf, o.ptr, o.len);
            break;
        case MW_MP_ARRAY:
        case MW_MP_MAP:
            if (depth >= MW_JSON_MAX_DEPTH)
                return -1;
            mw_buf_putc (buf, o.tag == MW_MP_MAP ? '{' : '[');
            for (uint32_t i = 0; i < o.len; i++) {
                if (i)
                    mw_buf_putc (buf, ',');
                if (o.tag == MW_MP_MAP) {
                    if (s_mp_key (buf, pp, end, depth + 1) != 0)
                        return -1;
                    mw_buf_putc (buf, ':');
                }
                if (s_mp_value (buf, pp, end, depth + 1) != 0)
                    return -1;
                if (buf->failed)
                    return -1;
            }
            mw_buf_putc (buf, o.tag == MW_MP_MAP ? '}' : ']');
            break;
    }
    return buf->failed ? -1 : 0;
}

int
mw_json_msgpack (mw_buf_t *buf, const uint8_t *data, size_t len, size_t *used_p)
{
    assert (buf);
    assert (data || len == 0);
    size_t start = buf->len;
    const uint8_t *p = data;
    if (s_mp_value (buf, &p, data + len, 0) != 0) {
        mw_buf_truncate (buf, start);
        return -1;
    }
    if (used_p)
        *used_p = (size_t) (p - data);
    return 0;
}

//  --------------------------------------------------------------------------
//  Extras

int
mw_json_extra_next (const mw_event_t *ev, size_t *offset_p, const char **key_p, size_t *key_len_p,
                    const uint8_t **val_p, size_t *val_len_p)
{
    assert (ev && offset_p && key_p && key_len_p && val_p && val_len_p);
    if (!ev->extra || *offset_p >= ev->extra_len)
        return 0;
    const uint8_t *end = ev->extra + ev->extra_len;
    const uint8_t *p = ev->extra + *offset_p;
    mw_mp_obj_t key;
    const uint8_t *key_start = p;
    if (mw_msgpack_read (&p, end, &key) != 0)
        return -1;
    if (key.tag == MW_MP_STR) {
        *key_p = (const char *) key.ptr;
        *key_len_p = key.len;
    }
    else {
        //  Not a string (the decoder does not let one through): skip the
        //  rest of a map or array key too.
        size_t size;
        if (mw_msgpack_check (key_start, (size_t) (end - key_start), MW_JSON_MAX_DEPTH, &size) !=
            MW_OK)
            return -1;
        p = key_start + size;
        *key_p = NULL;
        *key_len_p = 0;
    }
    size_t size;
    if (mw_msgpack_check (p, (size_t) (end - p), MW_JSON_MAX_DEPTH, &size) != MW_OK)
        return -1;
    *val_p = p;
    *val_len_p = size;
    *offset_p = (size_t) (p + size - ev->extra);
    return 1;
}

int
mw_json_extra_find (const mw_event_t *ev, const char *key, const uint8_t **val_p, size_t *val_len_p)
{
    assert (ev && key && val_p && val_len_p);
    size_t offset = 0, klen = strlen (key);
    const char *k;
    size_t k_len;
    while (mw_json_extra_next (ev, &offset, &k, &k_len, val_p, val_len_p) == 1)
        if (k && k_len == klen && memcmp (k, key, klen) == 0)
            return 1;
    return 0;
}

//  --------------------------------------------------------------------------
//  Events

//  Keys the event object writes itself. The first S_HEADER_KEYS are the
//  header keys and `time`, which a custom key may never shadow (JSON readers
//  keep the last of two equal keys: a publisher could fake `time` or `id`);
//  the rest are the known keys, which a decoded event never has in its
//  extras, while an event being built may give them as kv (the codec then
//  refuses the same key twice).
static const char *s_own_keys[] = {"v",         "type",          "ts",         "time",
                                   "miner",     "sid",           "seq",        "id",
                                   "broker_ts", "truncated",     "timeout_ms", "action_count",
                                   "success",   "response_time", "score",      "execution_time"};
#define S_HEADER_KEYS 10

static bool
s_is_own_key (const char *key, size_t len, bool header_only)
{
    size_t n = header_only ? S_HEADER_KEYS : sizeof (s_own_keys) / sizeof (s_own_keys[0]);
    for (size_t i = 0; i < n; i++)
        if (strlen (s_own_keys[i]) == len && memcmp (s_own_keys[i], key, len) == 0)
            return true;
    if (header_only)
        return false;
    for (int k = 0; k < MW_STR_COUNT; k++) {
        const char *name = mw_str_key_name ((mw_str_key_t) k);
        if (strlen (name) == len && memcmp (name, key, len) == 0)
            return true;
    }
    return false;
}

//  Append ,"name": for a key name of our own (plain ASCII, no escaping).
static void
s_key (mw_buf_t *buf, const char *name)
{
    mw_buf_append (buf, ",\"", 2);
    mw_buf_puts (buf, name);
    mw_buf_append (buf, "\":", 2);
}

static int
s_kv_value (mw_buf_t *buf, const mw_kv_t *kv, int depth)
{
    switch (kv->kind) {
        case MW_KV_NIL:
            mw_buf_append (buf, "null", 4);
            break;
        case MW_KV_BOOL:
            mw_buf_puts (buf, kv->val.b ? "true" : "false");
            break;
        case MW_KV_INT:
            s_put_i64 (buf, kv->val.i);
            break;
        case MW_KV_UINT:
            s_put_u64 (buf, kv->val.u);
            break;
        case MW_KV_DOUBLE:
            mw_json_double (buf, kv->val.d);
            break;
        case MW_KV_STR:
            if (!kv->val.s.ptr)
                mw_buf_append (buf, "null", 4);
            else
                mw_json_string (buf, kv->val.s.ptr,
                                kv->val.s.len == (size_t) -1 ? strlen (kv->val.s.ptr)
                                                             : kv->val.s.len);
            break;
        case MW_KV_MAP:
        case MW_KV_ARRAY: {
            if (depth >= MW_JSON_MAX_DEPTH)
                return -1;
            bool map = kv->kind == MW_KV_MAP;
            mw_buf_putc (buf, map ? '{' : '[');
            for (size_t i = 0; i < kv->val.list.count; i++) {
                const mw_kv_t *item = &kv->val.list.items[i];
                if (i)
                    mw_buf_putc (buf, ',');
                if (map) {
                    const char *key = item->key ? item->key : "";
                    mw_json_string (buf, key, strlen (key));
                    mw_buf_putc (buf, ':');
                }
                if (s_kv_value (buf, item, depth + 1) != 0)
                    return -1;
            }
            mw_buf_putc (buf, map ? '}' : ']');
            break;
        }
        default:
            return -1;
    }
    return buf->failed ? -1 : 0;
}

int
mw_json_event (mw_buf_t *buf, const mw_event_t *ev)
{
    return mw_json_event_ex (buf, ev, 0);
}

int
mw_json_event_ex (mw_buf_t *buf, const mw_event_t *ev, unsigned flags)
{
    assert (buf);
    assert (ev);
    size_t start = buf->len;
    //  One reservation covers most events: extras grow by about a third.
    mw_buf_reserve (buf, 400 + ev->extra_len + ev->extra_len / 2);

    mw_buf_append (buf, "{\"v\":", 5);
    s_put_u64 (buf, ev->v);
    s_key (buf, "type");
    mw_json_string (buf, ev->type, strnlen (ev->type, sizeof (ev->type)));
    s_key (buf, "ts");
    s_put_u64 (buf, ev->ts / 1000);
    s_key (buf, "time");
    char time[MW_JSON_TIME_SIZE];
    size_t time_len = mw_json_format_time (time, sizeof (time), ev->ts);
    mw_buf_putc (buf, '"');
    mw_buf_append (buf, time, time_len);
    mw_buf_putc (buf, '"');
    const mw_str_t *miner = &ev->str[MW_K_MINER];
    if (miner->ptr) {
        s_key (buf, "miner");
        mw_json_string (buf, miner->ptr, miner->len);
    }
    s_key (buf, "sid");
    if (flags & MW_JSON_SID_STRING) {
        mw_buf_putc (buf, '"');
        s_put_u64 (buf, ev->sid);
        mw_buf_putc (buf, '"');
    }
    else
        s_put_u64 (buf, ev->sid);
    s_key (buf, "seq");
    s_put_u64 (buf, ev->seq);
    if (ev->has & MW_HAS_ID) {
        s_key (buf, "id");
        s_put_u64 (buf, ev->id);
    }
    if (ev->has & MW_HAS_BROKER_TS) {
        s_key (buf, "broker_ts");
        s_put_u64 (buf, ev->broker_ts);
    }
    for (int k = 0; k < MW_STR_COUNT; k++) {
        const mw_str_t *str = &ev->str[k];
        if (k == MW_K_MINER || !str->ptr)
            continue;
        s_key (buf, mw_str_key_name ((mw_str_key_t) k));
        mw_json_string (buf, str->ptr, str->len);
    }
    if (ev->has & MW_HAS_TIMEOUT_MS) {
        s_key (buf, "timeout_ms");
        s_put_u64 (buf, ev->timeout_ms);
    }
    if (ev->has & MW_HAS_ACTION_COUNT) {
        s_key (buf, "action_count");
        s_put_u64 (buf, ev->action_count);
    }
    if (ev->has & MW_HAS_SUCCESS) {
        s_key (buf, "success");
        mw_buf_puts (buf, ev->success ? "true" : "false");
    }
    if (ev->has & MW_HAS_RESPONSE_TIME) {
        s_key (buf, "response_time");
        mw_json_double (buf, ev->response_time);
    }
    if (ev->has & MW_HAS_SCORE) {
        s_key (buf, "score");
        mw_json_double (buf, ev->score);
    }
    if (ev->has & MW_HAS_EXECUTION_TIME) {
        s_key (buf, "execution_time");
        mw_json_double (buf, ev->execution_time);
    }
    if (ev->truncated > 0) {
        s_key (buf, "truncated");
        s_put_u64 (buf, ev->truncated);
    }

    //  Custom keys, decoded events: raw msgpack key/value pairs.
    const uint8_t *p = ev->extra;
    const uint8_t *end = ev->extra ? ev->extra + ev->extra_len : NULL;
    for (uint32_t i = 0; i < ev->extra_count; i++) {
        if (!p)
            goto fail;
        const uint8_t *key_start = p;
        mw_mp_obj_t key;
        if (mw_msgpack_read (&p, end, &key) != 0)
            goto fail;
        if (key.tag == MW_MP_STR && s_is_own_key ((const char *) key.ptr, key.len, false)) {
            size_t size;
            if (mw_msgpack_check (p, (size_t) (end - p), MW_JSON_MAX_DEPTH, &size) != MW_OK)
                goto fail;
            p += size;
            continue;
        }
        mw_buf_putc (buf, ',');
        p = key_start;
        if (s_mp_key (buf, &p, end, 1) != 0)
            goto fail;
        mw_buf_putc (buf, ':');
        if (s_mp_value (buf, &p, end, 1) != 0)
            goto fail;
    }
    //  Custom keys, events being built: key/values.
    for (size_t i = 0; i < ev->kv_count; i++) {
        const mw_kv_t *kv = &ev->kv[i];
        if (!kv->key || s_is_own_key (kv->key, strlen (kv->key), true))
            continue;
        mw_buf_putc (buf, ',');
        mw_json_string (buf, kv->key, strlen (kv->key));
        mw_buf_putc (buf, ':');
        if (s_kv_value (buf, kv, 1) != 0)
            goto fail;
    }
    mw_buf_putc (buf, '}');
    if (buf->failed)
        goto fail;
    return 0;

fail:
    mw_buf_truncate (buf, start);
    return -1;
}
