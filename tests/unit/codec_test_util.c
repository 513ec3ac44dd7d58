/*  codec_test_util.c - helpers shared by the codec unit tests. */

#include "codec_test_util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *
xmalloc (size_t n)
{
    void *p = malloc (n ? n : 1);
    if (!p) {
        fprintf (stderr, "out of memory\n");
        abort ();
    }
    return p;
}

//  ---------------------------------------------------------------------
//  msgpack writer

void
mp_init (mp_t *m)
{
    msgpack_sbuffer_init (&m->sb);
    msgpack_packer_init (&m->pk, &m->sb, msgpack_sbuffer_write);
}

void
mp_free (mp_t *m)
{
    msgpack_sbuffer_destroy (&m->sb);
    memset (m, 0, sizeof *m);
}

void
mp_clear (mp_t *m)
{
    msgpack_sbuffer_clear (&m->sb);
}

void
mp_raw (mp_t *m, const void *p, size_t n)
{
    if (n)
        msgpack_sbuffer_write (&m->sb, (const char *) p, n);
}

void
mp_byte (mp_t *m, uint8_t b)
{
    mp_raw (m, &b, 1);
}

void
mp_be16 (mp_t *m, uint16_t v)
{
    uint8_t b[2] = {(uint8_t) (v >> 8), (uint8_t) v};
    mp_raw (m, b, 2);
}

void
mp_be32 (mp_t *m, uint32_t v)
{
    uint8_t b[4] = {(uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v};
    mp_raw (m, b, 4);
}

void
mp_be64 (mp_t *m, uint64_t v)
{
    mp_be32 (m, (uint32_t) (v >> 32));
    mp_be32 (m, (uint32_t) v);
}

void
mp_strn (mp_t *m, const char *s, size_t n)
{
    msgpack_pack_str (&m->pk, n);
    msgpack_pack_str_body (&m->pk, s, n);
}

void
mp_str (mp_t *m, const char *s)
{
    mp_strn (m, s, strlen (s));
}

void
mp_bin (mp_t *m, const void *p, size_t n)
{
    msgpack_pack_bin (&m->pk, n);
    msgpack_pack_bin_body (&m->pk, p, n);
}

void
mp_uint (mp_t *m, uint64_t u)
{
    msgpack_pack_uint64 (&m->pk, u);
}

void
mp_int (mp_t *m, int64_t i)
{
    msgpack_pack_int64 (&m->pk, i);
}

void
mp_dbl (mp_t *m, double d)
{
    msgpack_pack_double (&m->pk, d);
}

void
mp_flt (mp_t *m, float f)
{
    msgpack_pack_float (&m->pk, f);
}

void
mp_bool (mp_t *m, bool b)
{
    if (b)
        msgpack_pack_true (&m->pk);
    else
        msgpack_pack_false (&m->pk);
}

void
mp_nil (mp_t *m)
{
    msgpack_pack_nil (&m->pk);
}

void
mp_array (mp_t *m, uint32_t n)
{
    msgpack_pack_array (&m->pk, n);
}

void
mp_map (mp_t *m, uint32_t n)
{
    msgpack_pack_map (&m->pk, n);
}

void
mp_nested_arrays (mp_t *m, size_t depth)
{
    for (size_t i = 0; i < depth; i++)
        mp_byte (m, i + 1 < depth ? 0x91 : 0x90);
}

void
mp_nested_maps (mp_t *m, size_t depth)
{
    for (size_t i = 0; i < depth; i++) {
        if (i + 1 < depth) {
            mp_byte (m, 0x81);
            mp_str (m, "a");
        }
        else
            mp_byte (m, 0x80);
    }
}

//  ---------------------------------------------------------------------
//  field lists

void
fs_init (fields_t *fs)
{
    memset (fs, 0, sizeof *fs);
}

void
fs_free (fields_t *fs)
{
    for (size_t i = 0; i < fs->n; i++) {
        free (fs->f[i].key);
        free (fs->f[i].val);
    }
    free (fs->f);
    memset (fs, 0, sizeof *fs);
}

void
fs_add_raw (fields_t *fs, const char *key, size_t keylen, const void *val, size_t vlen)
{
    if (fs->n == fs->cap) {
        fs->cap = fs->cap ? fs->cap * 2 : 16;
        fs->f = realloc (fs->f, fs->cap * sizeof *fs->f);
        if (!fs->f)
            abort ();
    }
    field_t *f = &fs->f[fs->n++];
    f->key = xmalloc (keylen + 1);
    memcpy (f->key, key, keylen);
    f->key[keylen] = '\0';
    f->keylen = keylen;
    f->val = xmalloc (vlen);
    memcpy (f->val, val, vlen);
    f->vlen = vlen;
}

static field_t *
fs_find (const fields_t *fs, const char *key)
{
    size_t keylen = strlen (key);
    for (size_t i = 0; i < fs->n; i++)
        if (fs->f[i].keylen == keylen && memcmp (fs->f[i].key, key, keylen) == 0)
            return &fs->f[i];
    return NULL;
}

const field_t *
fs_get (const fields_t *fs, const char *key)
{
    return fs_find (fs, key);
}

void
fs_put_raw (fields_t *fs, const char *key, const void *val, size_t vlen)
{
    field_t *f = fs_find (fs, key);
    if (f) {
        free (f->val);
        f->val = xmalloc (vlen);
        memcpy (f->val, val, vlen);
        f->vlen = vlen;
    }
    else
        fs_add_raw (fs, key, strlen (key), val, vlen);
}

void
fs_put_mp (fields_t *fs, const char *key, const mp_t *m)
{
    fs_put_raw (fs, key, m->sb.data, m->sb.size);
}

#define FS_PUT_WITH(call)                                                                      \
    do {                                                                                       \
        mp_t m;                                                                                \
        mp_init (&m);                                                                          \
        call;                                                                                  \
        fs_put_mp (fs, key, &m);                                                               \
        mp_free (&m);                                                                          \
    } while (0)

void
fs_put_str (fields_t *fs, const char *key, const char *s)
{
    FS_PUT_WITH (mp_str (&m, s));
}

void
fs_put_strn (fields_t *fs, const char *key, const char *s, size_t n)
{
    FS_PUT_WITH (mp_strn (&m, s, n));
}

void
fs_put_uint (fields_t *fs, const char *key, uint64_t u)
{
    FS_PUT_WITH (mp_uint (&m, u));
}

void
fs_put_int (fields_t *fs, const char *key, int64_t i)
{
    FS_PUT_WITH (mp_int (&m, i));
}

void
fs_put_dbl (fields_t *fs, const char *key, double d)
{
    FS_PUT_WITH (mp_dbl (&m, d));
}

void
fs_put_flt (fields_t *fs, const char *key, float f)
{
    FS_PUT_WITH (mp_flt (&m, f));
}

void
fs_put_bool (fields_t *fs, const char *key, bool b)
{
    FS_PUT_WITH (mp_bool (&m, b));
}

void
fs_put_nil (fields_t *fs, const char *key)
{
    FS_PUT_WITH (mp_nil (&m));
}

void
fs_del (fields_t *fs, const char *key)
{
    field_t *f;
    while ((f = fs_find (fs, key)) != NULL) {
        free (f->key);
        free (f->val);
        size_t i = (size_t) (f - fs->f);
        memmove (&fs->f[i], &fs->f[i + 1], (fs->n - i - 1) * sizeof *fs->f);
        fs->n--;
    }
}

void
fs_header (fields_t *fs, const char *type)
{
    fs_put_uint (fs, "v", 1);
    fs_put_str (fs, "type", type);
    fs_put_uint (fs, "ts", UINT64_C (1700000000123456));
    fs_put_str (fs, "miner", "miner-7");
    fs_put_uint (fs, "sid", UINT64_C (0xfedcba9876543210));
    fs_put_uint (fs, "seq", 42);
}

uint8_t *
fs_body (const fields_t *fs, const size_t *order, size_t *len_p)
{
    mp_t m;
    mp_init (&m);
    mp_map (&m, (uint32_t) fs->n);
    for (size_t i = 0; i < fs->n; i++) {
        const field_t *f = &fs->f[order ? order[i] : i];
        mp_strn (&m, f->key, f->keylen);
        mp_raw (&m, f->val, f->vlen);
    }
    uint8_t *out = xmalloc (m.sb.size);
    memcpy (out, m.sb.data, m.sb.size);
    *len_p = m.sb.size;
    mp_free (&m);
    return out;
}

//  ---------------------------------------------------------------------
//  PRNG

uint64_t
rng_next (uint64_t *state)
{
    uint64_t z = (*state += UINT64_C (0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C (0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C (0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint64_t
rng_below (uint64_t *state, uint64_t n)
{
    return n ? rng_next (state) % n : 0;
}

void
rng_shuffle (uint64_t *state, size_t *idx, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t) rng_below (state, i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

long
test_iterations (long dflt)
{
    const char *s = getenv ("MW_TEST_ITERATIONS");
    if (s && *s) {
        char *end;
        long v = strtol (s, &end, 10);
        if (*end == '\0' && v >= 0)
            return v;
    }
    return dflt;
}

//  ---------------------------------------------------------------------
//  A reference msgpack walker, written here independently of the codec:
//  0 ok, 1 malformed, 2 too deep. depth = containers still allowed.

static int
need (size_t len, size_t pos, uint64_t n)
{
    return pos <= len && n <= len - pos;
}

static uint64_t
rd_be (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int
ref_walk (const uint8_t *b, size_t len, size_t *pos, int depth)
{
    if (!need (len, *pos, 1))
        return 1;
    uint8_t c = b[(*pos)++];
    uint64_t payload = 0, count = 0;
    int container = 0; //  1 array, 2 map
    if (c <= 0x7f || c >= 0xe0)
        return 0;
    if (c >= 0x80 && c <= 0x8f) {
        container = 2;
        count = c & 0x0f;
    }
    else if (c >= 0x90 && c <= 0x9f) {
        container = 1;
        count = c & 0x0f;
    }
    else if (c >= 0xa0 && c <= 0xbf)
        payload = c & 0x1f;
    else {
        int lenbytes = 0;
        switch (c) {
        case 0xc0: case 0xc2: case 0xc3:
            return 0;
        case 0xc1:
            return 1;
        case 0xc4: case 0xd9: lenbytes = 1; break;
        case 0xc5: case 0xda: lenbytes = 2; break;
        case 0xc6: case 0xdb: lenbytes = 4; break;
        case 0xc7: lenbytes = 1; payload = 1; break;
        case 0xc8: lenbytes = 2; payload = 1; break;
        case 0xc9: lenbytes = 4; payload = 1; break;
        case 0xca: payload = 4; break;
        case 0xcb: payload = 8; break;
        case 0xcc: case 0xd0: payload = 1; break;
        case 0xcd: case 0xd1: payload = 2; break;
        case 0xce: case 0xd2: payload = 4; break;
        case 0xcf: case 0xd3: payload = 8; break;
        case 0xd4: payload = 2; break;
        case 0xd5: payload = 3; break;
        case 0xd6: payload = 5; break;
        case 0xd7: payload = 9; break;
        case 0xd8: payload = 17; break;
        case 0xdc: container = 1; lenbytes = 2; break;
        case 0xdd: container = 1; lenbytes = 4; break;
        case 0xde: container = 2; lenbytes = 2; break;
        case 0xdf: container = 2; lenbytes = 4; break;
        default: return 1;
        }
        if (lenbytes) {
            if (!need (len, *pos, (uint64_t) lenbytes))
                return 1;
            uint64_t n = rd_be (b + *pos, lenbytes);
            *pos += (size_t) lenbytes;
            if (container)
                count = n;
            else
                payload += n;
        }
    }
    if (!container) {
        if (!need (len, *pos, payload))
            return 1;
        *pos += (size_t) payload;
        return 0;
    }
    if (depth <= 0)
        return 2;
    uint64_t items = container == 2 ? count * 2 : count;
    for (uint64_t i = 0; i < items; i++) {
        int rc = ref_walk (b, len, pos, depth - 1);
        if (rc)
            return rc;
    }
    return 0;
}

//  Parse a str header at *pos; return 0 and the string, or -1.
static int
ref_str (const uint8_t *b, size_t len, size_t *pos, const uint8_t **s_p, size_t *n_p)
{
    if (!need (len, *pos, 1))
        return -1;
    uint8_t c = b[*pos];
    size_t hdr;
    uint64_t n;
    if (c >= 0xa0 && c <= 0xbf) {
        hdr = 1;
        n = c & 0x1f;
    }
    else if (c == 0xd9 || c == 0xda || c == 0xdb) {
        int lb = c == 0xd9 ? 1 : c == 0xda ? 2 : 4;
        if (!need (len, *pos + 1, (uint64_t) lb))
            return -1;
        hdr = 1 + (size_t) lb;
        n = rd_be (b + *pos + 1, lb);
    }
    else
        return -1;
    if (!need (len, *pos + hdr, n))
        return -1;
    *s_p = b + *pos + hdr;
    *n_p = (size_t) n;
    *pos += hdr + (size_t) n;
    return 0;
}

//  ---------------------------------------------------------------------
//  events

static bool
whyf (char *why, size_t whysz, const char *fmt, ...) CMOCKA_PRINTF_ATTRIBUTE (3, 4);

static bool
whyf (char *why, size_t whysz, const char *fmt, ...)
{
    if (why && whysz) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (why, whysz, fmt, ap);
        va_end (ap);
    }
    return false;
}

bool
event_is_empty (const mw_event_t *e, char *why, size_t whysz)
{
    if (e->store_ != NULL || e->store_size_ != 0)
        return whyf (why, whysz, "owns storage (store_=%p size %zu)", (void *) e->store_,
                     e->store_size_);
    if (e->extra != NULL || e->extra_len != 0 || e->extra_count != 0)
        return whyf (why, whysz, "has extras (len %zu count %u)", e->extra_len, e->extra_count);
    if (e->kv != NULL || e->kv_count != 0)
        return whyf (why, whysz, "has kv");
    if (e->has != 0)
        return whyf (why, whysz, "has bits 0x%x", e->has);
    if (e->truncated != 0)
        return whyf (why, whysz, "truncated %u", e->truncated);
    for (int k = 0; k < MW_STR_COUNT; k++)
        if (e->str[k].ptr != NULL || e->str[k].len != 0)
            return whyf (why, whysz, "string key %s set", mw_str_key_name ((mw_str_key_t) k));
    if (e->kind != MW_TYPE_CUSTOM || e->type[0] != '\0')
        return whyf (why, whysz, "type set (kind %d, \"%s\")", (int) e->kind, e->type);
    if (e->ts || e->sid || e->seq || e->id || e->broker_ts)
        return whyf (why, whysz, "ts/sid/seq/id/broker_ts not zero");
    return true;
}

static bool
dbl_same (double a, double b)
{
    return memcmp (&a, &b, sizeof a) == 0;
}

bool
event_equal (const mw_event_t *a, const mw_event_t *b, char *why, size_t whysz)
{
    if (a->kind != b->kind)
        return whyf (why, whysz, "kind %d != %d", (int) a->kind, (int) b->kind);
    if (strcmp (a->type, b->type) != 0)
        return whyf (why, whysz, "type \"%s\" != \"%s\"", a->type, b->type);
    if (a->v != b->v || a->ts != b->ts || a->sid != b->sid || a->seq != b->seq)
        return whyf (why, whysz, "v/ts/sid/seq differ");
    if (a->has != b->has)
        return whyf (why, whysz, "has 0x%x != 0x%x", a->has, b->has);
    if ((a->has & MW_HAS_ID) && a->id != b->id)
        return whyf (why, whysz, "id differs");
    if ((a->has & MW_HAS_BROKER_TS) && a->broker_ts != b->broker_ts)
        return whyf (why, whysz, "broker_ts differs");
    if ((a->has & MW_HAS_TIMEOUT_MS) && a->timeout_ms != b->timeout_ms)
        return whyf (why, whysz, "timeout_ms differs");
    if ((a->has & MW_HAS_ACTION_COUNT) && a->action_count != b->action_count)
        return whyf (why, whysz, "action_count differs");
    if ((a->has & MW_HAS_SUCCESS) && a->success != b->success)
        return whyf (why, whysz, "success differs");
    if ((a->has & MW_HAS_RESPONSE_TIME) && !dbl_same (a->response_time, b->response_time))
        return whyf (why, whysz, "response_time %g != %g", a->response_time, b->response_time);
    if ((a->has & MW_HAS_SCORE) && !dbl_same (a->score, b->score))
        return whyf (why, whysz, "score %g != %g", a->score, b->score);
    if ((a->has & MW_HAS_EXECUTION_TIME) && !dbl_same (a->execution_time, b->execution_time))
        return whyf (why, whysz, "execution_time %g != %g", a->execution_time, b->execution_time);
    for (int k = 0; k < MW_STR_COUNT; k++) {
        const mw_str_t *x = &a->str[k], *y = &b->str[k];
        const char *name = mw_str_key_name ((mw_str_key_t) k);
        if ((x->ptr == NULL) != (y->ptr == NULL))
            return whyf (why, whysz, "%s present in one only", name);
        if (x->ptr && (x->len != y->len || memcmp (x->ptr, y->ptr, x->len) != 0))
            return whyf (why, whysz, "%s differs (len %u vs %u)", name, x->len, y->len);
    }
    if (a->truncated != b->truncated)
        return whyf (why, whysz, "truncated %u != %u", a->truncated, b->truncated);
    if (a->extra_count != b->extra_count || a->extra_len != b->extra_len
        || (a->extra_len && memcmp (a->extra, b->extra, a->extra_len) != 0))
        return whyf (why, whysz, "extras differ (count %u/%u, len %zu/%zu)", a->extra_count,
                     b->extra_count, a->extra_len, b->extra_len);
    return true;
}

bool
event_decoded_valid (const mw_event_t *e, char *why, size_t whysz)
{
    size_t tlen = strnlen (e->type, sizeof e->type);
    if (tlen == sizeof e->type)
        return whyf (why, whysz, "type not NUL-terminated");
    if (mw_type_name_valid (e->type, tlen) != 0)
        return whyf (why, whysz, "invalid type name \"%s\"", e->type);
    if (e->kind != mw_type_from_name (e->type, tlen))
        return whyf (why, whysz, "kind %d does not match type \"%s\"", (int) e->kind, e->type);
    if (e->v != MW_PROTOCOL_VERSION)
        return whyf (why, whysz, "v is %" PRIu64, e->v);
    for (int k = 0; k < MW_STR_COUNT; k++) {
        const mw_str_t *s = &e->str[k];
        const char *name = mw_str_key_name ((mw_str_key_t) k);
        if (!s->ptr) {
            if (s->len)
                return whyf (why, whysz, "%s absent with len %u", name, s->len);
            continue;
        }
        if (s->len > mw_str_key_limit ((mw_str_key_t) k))
            return whyf (why, whysz, "%s len %u over its limit", name, s->len);
        if (s->ptr[s->len] != '\0')
            return whyf (why, whysz, "%s not NUL-terminated", name);
    }
    if (e->kv || e->kv_count)
        return whyf (why, whysz, "decoded event has kv");
    if ((e->extra_len == 0) != (e->extra_count == 0) || (e->extra_len && !e->extra))
        return whyf (why, whysz, "inconsistent extras (len %zu count %u)", e->extra_len,
                     e->extra_count);
    size_t pos = 0;
    for (uint32_t i = 0; i < e->extra_count; i++) {
        const uint8_t *s;
        size_t n;
        if (ref_str (e->extra, e->extra_len, &pos, &s, &n) != 0)
            return whyf (why, whysz, "extra key %u is not a string", i);
        if (n > MW_MAX_KEY)
            return whyf (why, whysz, "extra key %u longer than MW_MAX_KEY", i);
        if (ref_walk (e->extra, e->extra_len, &pos, MW_MAX_DEPTH) != 0)
            return whyf (why, whysz, "extra value %u malformed or too deep", i);
    }
    if (pos != e->extra_len)
        return whyf (why, whysz, "extras: %zu bytes after %u pairs (len %zu)", e->extra_len - pos,
                     e->extra_count, e->extra_len);
    return true;
}

int
encode_alloc (const mw_event_t *e, uint8_t **out_p, size_t *len_p, uint32_t *truncated_p)
{
    size_t cap = MW_MAX_BODY + 4096;
    uint8_t *out = xmalloc (cap);
    size_t len = 0;
    int rc = mw_event_encode (e, out, cap, &len, truncated_p);
    if (rc != MW_OK) {
        free (out);
        *out_p = NULL;
        *len_p = 0;
        return rc;
    }
    *out_p = out;
    *len_p = len;
    return rc;
}

int
decode_str_topic (mw_event_t *e, const char *topic, const uint8_t *body, size_t len, char *err,
                  size_t errsz)
{
    //  Exact-size heap copies (the topic without a NUL) so ASan and valgrind
    //  see any read past either frame.
    uint8_t *b = xmalloc (len);
    if (len)
        memcpy (b, body, len);
    size_t tlen = topic ? strlen (topic) : 0;
    char *t = NULL;
    if (topic) {
        t = xmalloc (tlen);
        memcpy (t, topic, tlen);
    }
    mw_event_init (e, MW_TYPE_CUSTOM);
    int rc = mw_event_decode (e, t, tlen, b, len, err, errsz);
    free (t);
    free (b);
    return rc;
}

static void
print_case (const char *label, const uint8_t *body, size_t len)
{
    char hex[3 * 48 + 8];
    size_t n = len < 48 ? len : 48, o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t) snprintf (hex + o, sizeof hex - o, "%02x ", body[i]);
    hex[o] = '\0';
    print_error ("  case: %s\n  body (%zu bytes): %s%s\n", label, len, hex, len > n ? "..." : "");
}

int
check_decode_error (const char *label, const char *topic, const uint8_t *body, size_t len,
                    int expected, int alt)
{
    int bad = 0;
    mw_event_t e;
    char err[256];
    memset (err, 'X', sizeof err);
    int rc = decode_str_topic (&e, topic, body, len, err, sizeof err);
    char why[200];
    if (rc != expected && !(alt >= 0 && rc == alt)) {
        print_error ("FAIL decode: expected %s%s%s, got %s (%d) \"%.*s\"\n", mw_err_name (expected),
                     alt >= 0 ? " or " : "", alt >= 0 ? mw_err_name (alt) : "", mw_err_name (rc),
                     rc, (int) sizeof err - 1, rc == MW_OK ? "" : err);
        bad = 1;
    }
    if (rc == MW_OK) {
        mw_event_release (&e);
        if (bad)
            print_case (label, body, len);
        return 1;
    }
    if (memchr (err, '\0', sizeof err) == NULL) {
        print_error ("FAIL errbuf not NUL-terminated\n");
        bad = 1;
    }
    else if (err[0] == '\0') {
        print_error ("FAIL errbuf empty on error %s\n", mw_err_name (rc));
        bad = 1;
    }
    else if (strchr (err, '\n') != NULL) {
        print_error ("FAIL errbuf not one line: \"%s\"\n", err);
        bad = 1;
    }
    if (!event_is_empty (&e, why, sizeof why)) {
        print_error ("FAIL event not empty after error %s: %s\n", mw_err_name (rc), why);
        bad = 1;
    }
    mw_event_release (&e);

    //  The same with no errbuf, and with tiny ones (no overflow, terminated).
    int rc2 = decode_str_topic (&e, topic, body, len, NULL, 0);
    if (rc2 != rc) {
        print_error ("FAIL errbuf NULL changes the result: %s vs %s\n", mw_err_name (rc2),
                     mw_err_name (rc));
        bad = 1;
    }
    if (!event_is_empty (&e, why, sizeof why)) {
        print_error ("FAIL event not empty (errbuf NULL): %s\n", why);
        bad = 1;
    }
    mw_event_release (&e);
    size_t sizes[] = {1, 5};
    for (size_t i = 0; i < 2; i++) {
        char small[16];
        memset (small, 'Y', sizeof small);
        rc2 = decode_str_topic (&e, topic, body, len, small, sizes[i]);
        mw_event_release (&e);
        if (rc2 != rc || memchr (small, '\0', sizes[i]) == NULL) {
            print_error ("FAIL errbuf of %zu bytes: %s, not NUL-terminated inside it\n", sizes[i],
                         mw_err_name (rc2));
            bad = 1;
        }
        for (size_t j = sizes[i]; j < sizeof small; j++)
            if (small[j] != 'Y') {
                print_error ("FAIL errbuf of %zu bytes: written past its size at %zu\n",
                             sizes[i], j);
                bad = 1;
                break;
            }
    }
    if (bad)
        print_case (label, body, len);
    return bad;
}

int
check_decode_ok (const char *label, const char *topic, const uint8_t *body, size_t len,
                 mw_event_t *out)
{
    char err[256] = "";
    int rc = decode_str_topic (out, topic, body, len, err, sizeof err);
    if (rc != MW_OK) {
        print_error ("FAIL decode: expected ok, got %s (%d) \"%s\"\n", mw_err_name (rc), rc, err);
        print_case (label, body, len);
        return 1;
    }
    char why[200];
    if (!event_decoded_valid (out, why, sizeof why)) {
        print_error ("FAIL decoded event invalid: %s\n", why);
        print_case (label, body, len);
        return 1;
    }
    return 0;
}

int
extras_find (const mw_event_t *e, const char *key, const uint8_t **val_p, size_t *vlen_p)
{
    size_t pos = 0, keylen = strlen (key);
    for (uint32_t i = 0; i < e->extra_count; i++) {
        const uint8_t *s;
        size_t n;
        if (ref_str (e->extra, e->extra_len, &pos, &s, &n) != 0)
            return -1;
        size_t start = pos;
        if (ref_walk (e->extra, e->extra_len, &pos, 1000) != 0)
            return -1;
        if (n == keylen && memcmp (s, key, n) == 0) {
            *val_p = e->extra + start;
            *vlen_p = pos - start;
            return 0;
        }
    }
    return -1;
}

//  memcmp that accepts NULL for empty ranges (msgpack-c gives empty strings
//  a NULL pointer).
static bool
mem_eq (const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp (a, b, n) == 0;
}

static bool
obj_matches_kv (const msgpack_object *o, const mw_kv_t *kv, char *why, size_t whysz)
{
    switch (kv->kind) {
    case MW_KV_NIL:
        return o->type == MSGPACK_OBJECT_NIL || whyf (why, whysz, "expected nil");
    case MW_KV_BOOL:
        return (o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean == kv->val.b)
               || whyf (why, whysz, "expected bool");
    case MW_KV_INT:
        if (kv->val.i < 0)
            return (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 == kv->val.i)
                   || whyf (why, whysz, "expected int %" PRId64, kv->val.i);
        return (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                && o->via.u64 == (uint64_t) kv->val.i)
               || whyf (why, whysz, "expected int %" PRId64, kv->val.i);
    case MW_KV_UINT:
        return (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == kv->val.u)
               || whyf (why, whysz, "expected uint %" PRIu64, kv->val.u);
    case MW_KV_DOUBLE:
        return (o->type == MSGPACK_OBJECT_FLOAT64 && dbl_same (o->via.f64, kv->val.d))
               || whyf (why, whysz, "expected float64 %g", kv->val.d);
    case MW_KV_STR: {
        size_t n = kv->val.s.len == (size_t) -1 ? strlen (kv->val.s.ptr) : kv->val.s.len;
        return (o->type == MSGPACK_OBJECT_STR && o->via.str.size == n
                && mem_eq (o->via.str.ptr, kv->val.s.ptr, n))
               || whyf (why, whysz, "expected str \"%.*s\"", (int) n, kv->val.s.ptr);
    }
    case MW_KV_MAP:
        if (o->type != MSGPACK_OBJECT_MAP || o->via.map.size != kv->val.list.count)
            return whyf (why, whysz, "expected map of %zu", kv->val.list.count);
        for (size_t i = 0; i < kv->val.list.count; i++) {
            const mw_kv_t *item = &kv->val.list.items[i];
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR || k->via.str.size != strlen (item->key)
                || !mem_eq (k->via.str.ptr, item->key, k->via.str.size))
                return whyf (why, whysz, "map key %zu is not \"%s\"", i, item->key);
            if (!obj_matches_kv (&o->via.map.ptr[i].val, item, why, whysz))
                return false;
        }
        return true;
    case MW_KV_ARRAY:
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != kv->val.list.count)
            return whyf (why, whysz, "expected array of %zu", kv->val.list.count);
        for (size_t i = 0; i < kv->val.list.count; i++)
            if (!obj_matches_kv (&o->via.array.ptr[i], &kv->val.list.items[i], why, whysz))
                return false;
        return true;
    }
    return whyf (why, whysz, "bad kv kind");
}

bool
extras_match_kv (const mw_event_t *e, const mw_kv_t *kv, size_t n, char *why, size_t whysz)
{
    if (e->extra_count != n)
        return whyf (why, whysz, "extra_count %u, expected %zu", e->extra_count, n);
    //  Validate with the reference walker before msgpack-c allocates from
    //  declared counts.
    size_t pos = 0;
    for (size_t i = 0; i < 2 * n; i++)
        if (ref_walk (e->extra, e->extra_len, &pos, 1000) != 0)
            return whyf (why, whysz, "extras malformed at pair %zu", i / 2);
    if (pos != e->extra_len)
        return whyf (why, whysz, "extras have %zu bytes after the pairs", e->extra_len - pos);
    msgpack_unpacked u;
    msgpack_unpacked_init (&u);
    size_t off = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < n; i++) {
        if (msgpack_unpack_next (&u, (const char *) e->extra, e->extra_len, &off)
                != MSGPACK_UNPACK_SUCCESS
            || u.data.type != MSGPACK_OBJECT_STR || u.data.via.str.size != strlen (kv[i].key)
            || !mem_eq (u.data.via.str.ptr, kv[i].key, u.data.via.str.size)) {
            ok = whyf (why, whysz, "extra %zu: key is not \"%s\"", i, kv[i].key);
            break;
        }
        if (msgpack_unpack_next (&u, (const char *) e->extra, e->extra_len, &off)
            != MSGPACK_UNPACK_SUCCESS) {
            ok = whyf (why, whysz, "extra %zu: value does not unpack", i);
            break;
        }
        char inner[160] = "";
        if (!obj_matches_kv (&u.data, &kv[i], inner, sizeof inner))
            ok = whyf (why, whysz, "extra \"%s\": %s", kv[i].key, inner);
    }
    msgpack_unpacked_destroy (&u);
    return ok;
}
