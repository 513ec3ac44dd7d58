/*  mw_event.c - the event model and msgpack codec of wire protocol v1.

    Encoding writes msgpack bytes directly into a caller buffer (the same
    bytes msgpack-c's packer writes; the tests check that). Decoding
    is a single strict pass over the bytes with our own reader: every
    declared length is checked against the bytes left before anything is
    read or allocated, nesting is bounded, and the only allocation is one
    block (at most the body size plus a few NULs) that the event then owns.
    We do not hand foreign bytes to msgpack-c's unpacker, because it
    preallocates from declared counts: a 5-byte map32 header can ask it for
    gigabytes.
*/
#include "mw_event.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Names and keys

static const char *s_type_names[MW_TYPE_COUNT] = {
    "",           "task_start",           "task_step", "actions_generated", "task_complete",
    "task_feedback", "validator_connection", "cache_hit", "error"};

static const char *s_str_key_names[MW_STR_COUNT] = {
    "miner", "task_id", "prompt", "url", "validator_ip", "validator_hotkey", "step",
    "action_type", "error", "error_message", "error_type", "cache_type", "endpoint"};

static const uint8_t s_str_key_lens[MW_STR_COUNT] = {5, 7, 6, 3, 12, 16, 4, 11, 5, 13, 10, 10, 8};

static const char *s_err_names[MW_ERR_COUNT] = {
    "ok",       "empty",     "too_large", "malformed", "too_deep",  "not_map",  "bad_key",
    "bad_type", "missing",   "version",   "type_name", "topic",     "trailing", "nomem"};

//  What a known key holds, and where.
typedef enum { K_STR, K_UINT, K_FLOAT, K_BOOL, K_TYPE } s_kind_t;

typedef enum {
    F_V,
    F_TS,
    F_SID,
    F_SEQ,
    F_ID,
    F_TRUNCATED,
    F_TIMEOUT_MS,
    F_ACTION_COUNT,
    F_SUCCESS,
    F_RESPONSE_TIME,
    F_SCORE,
    F_EXECUTION_TIME,
    F_TYPE,
    F_BROKER_TS,
    F_NONE
} s_field_t;

typedef struct {
    const char *name;
    uint8_t len;
    uint8_t kind;   //  s_kind_t
    uint8_t field;  //  s_field_t, or the mw_str_key_t for K_STR
    bool header;    //  set by the publisher, refused in kv
} s_key_t;

#define S_KEY(n, k, f, h) {n, sizeof (n) - 1, k, f, h}
static const s_key_t s_keys[] = {
    S_KEY ("v", K_UINT, F_V, true),
    S_KEY ("type", K_TYPE, F_TYPE, true),
    S_KEY ("ts", K_UINT, F_TS, true),
    S_KEY ("miner", K_STR, MW_K_MINER, true),
    S_KEY ("sid", K_UINT, F_SID, true),
    S_KEY ("seq", K_UINT, F_SEQ, true),
    S_KEY ("id", K_UINT, F_ID, true),
    S_KEY ("truncated", K_UINT, F_TRUNCATED, true),
    S_KEY ("task_id", K_STR, MW_K_TASK_ID, false),
    S_KEY ("prompt", K_STR, MW_K_PROMPT, false),
    S_KEY ("url", K_STR, MW_K_URL, false),
    S_KEY ("validator_ip", K_STR, MW_K_VALIDATOR_IP, false),
    S_KEY ("validator_hotkey", K_STR, MW_K_VALIDATOR_HOTKEY, false),
    S_KEY ("step", K_STR, MW_K_STEP, false),
    S_KEY ("action_type", K_STR, MW_K_ACTION_TYPE, false),
    S_KEY ("error", K_STR, MW_K_ERROR, false),
    S_KEY ("error_message", K_STR, MW_K_ERROR_MESSAGE, false),
    S_KEY ("error_type", K_STR, MW_K_ERROR_TYPE, false),
    S_KEY ("cache_type", K_STR, MW_K_CACHE_TYPE, false),
    S_KEY ("endpoint", K_STR, MW_K_ENDPOINT, false),
    S_KEY ("timeout_ms", K_UINT, F_TIMEOUT_MS, false),
    S_KEY ("action_count", K_UINT, F_ACTION_COUNT, false),
    S_KEY ("success", K_BOOL, F_SUCCESS, false),
    S_KEY ("response_time", K_FLOAT, F_RESPONSE_TIME, false),
    S_KEY ("score", K_FLOAT, F_SCORE, false),
    S_KEY ("execution_time", K_FLOAT, F_EXECUTION_TIME, false),
    S_KEY ("broker_ts", K_UINT, F_BROKER_TS, true),
};
#define S_KEY_COUNT (sizeof (s_keys) / sizeof (s_keys[0]))

//  Indices into s_keys of the keys that the required-key checks name; the
//  tests check them against the table (s_keys order is fixed).
enum {
    S_IX_V = 0,
    S_IX_TS = 2,
    S_IX_MINER = 3,
    S_IX_SID = 4,
    S_IX_SEQ = 5,
    S_IX_TASK_ID = 8,
    S_IX_VALIDATOR_IP = 11,
    S_IX_VALIDATOR_HOTKEY = 12,
    S_IX_STEP = 13,
    S_IX_ERROR_MESSAGE = 16,
    S_IX_ACTION_COUNT = 21,
    S_IX_SUCCESS = 22,
};
_Static_assert (S_KEY_COUNT <= 32, "known keys are tracked in 32-bit masks");

//  Linear, but length is compared first, so a lookup costs ~26 integer
//  compares and one or two memcmp; a hash would not pay for itself here.
//  The s_keys index of each known key, by length and then by name: the
//  decoder looks up every key of every message, and this costs one switch
//  and one or two constant-size compares (inlined) instead of a scan of
//  the table with a memcmp call per key of the right length.
//  The indices are s_keys' order, which is fixed (the tests check S_IX_*).
static int
s_key_lookup (const char *name, size_t len)
{
#define S_IS(lit, ix)                                                                              \
    if (memcmp (name, lit, sizeof (lit) - 1) == 0)                                                 \
        return ix;
    switch (len) {
        case 1: S_IS ("v", 0) break;
        case 2: S_IS ("ts", 2) S_IS ("id", 6) break;
        case 3: S_IS ("sid", 4) S_IS ("seq", 5) S_IS ("url", 10) break;
        case 4: S_IS ("type", 1) S_IS ("step", 13) break;
        case 5: S_IS ("miner", 3) S_IS ("error", 15) S_IS ("score", 24) break;
        case 6: S_IS ("prompt", 9) break;
        case 7: S_IS ("task_id", 8) S_IS ("success", 22) break;
        case 8: S_IS ("endpoint", 19) break;
        case 9: S_IS ("truncated", 7) S_IS ("broker_ts", 26) break;
        case 10: S_IS ("error_type", 17) S_IS ("cache_type", 18) S_IS ("timeout_ms", 20) break;
        case 11: S_IS ("action_type", 14) break;
        case 12: S_IS ("validator_ip", 11) S_IS ("action_count", 21) break;
        case 13: S_IS ("error_message", 16) S_IS ("response_time", 23) break;
        case 14: S_IS ("execution_time", 25) break;
        case 16: S_IS ("validator_hotkey", 12) break;
        default: break;
    }
#undef S_IS
    return -1;
}

//  The known type named by name (len bytes), or MW_TYPE_CUSTOM. A known
//  name is a valid type name, so a caller that finds one skips the check.
static inline mw_type_t
s_type_lookup (const char *name, size_t len)
{
    static const uint8_t lens[MW_TYPE_COUNT] = {0, 10, 9, 17, 13, 13, 20, 9, 5};
    for (int i = 1; i < MW_TYPE_COUNT; i++)
        if (lens[i] == len && memcmp (s_type_names[i], name, len) == 0)
            return (mw_type_t) i;
    return MW_TYPE_CUSTOM;
}


const char *
mw_err_name (int code)
{
    if (code < 0 || code >= MW_ERR_COUNT)
        return "unknown";
    return s_err_names[code];
}

const char *
mw_type_name (mw_type_t kind)
{
    if ((int) kind < 0 || kind >= MW_TYPE_COUNT)
        return "";
    return s_type_names[kind];
}

mw_type_t
mw_type_from_name (const char *name, size_t len)
{
    return s_type_lookup (name, len);
}

const char *
mw_str_key_name (mw_str_key_t key)
{
    assert ((int) key >= 0 && key < MW_STR_COUNT);
    return s_str_key_names[key];
}

size_t
mw_str_key_limit (mw_str_key_t key)
{
    if (key == MW_K_TASK_ID)
        return MW_MAX_TASK_ID;
    if (key == MW_K_MINER)
        return MW_MAX_MINER;
    return MW_MAX_STR;
}

int
mw_type_name_valid (const char *name, size_t len)
{
    if (!name || len == 0 || len > MW_MAX_TYPE || name[0] == '$')
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name[i];
        if (c <= 0x20 || c >= 0x7f)
            return -1;
    }
    return 0;
}

//  Length of s cut to at most limit bytes, never inside a UTF-8 sequence:
//  if the byte at the cut is a continuation byte, back off to the start of
//  its sequence (at most 3 bytes, so invalid UTF-8 cannot make this loop).
static size_t
s_utf8_cut (const char *s, size_t len, size_t limit)
{
    if (len <= limit)
        return len;
    size_t cut = limit;
    for (int i = 0; i < 3 && cut > 0 && ((unsigned char) s[cut] & 0xC0) == 0x80; i++)
        cut--;
    return cut;
}

//  --------------------------------------------------------------------------
//  Event lifecycle

void
mw_event_init (mw_event_t *self, mw_type_t kind)
{
    assert (self);
    memset (self, 0, sizeof (*self));
    if ((int) kind < 0 || kind >= MW_TYPE_COUNT)
        kind = MW_TYPE_CUSTOM;
    self->kind = kind;
    self->v = MW_PROTOCOL_VERSION;
    if (kind != MW_TYPE_CUSTOM) //  else "", which the memset wrote
        strcpy (self->type, s_type_names[kind]);
}

int
mw_event_init_named (mw_event_t *self, const char *type)
{
    assert (self);
    size_t len = type ? strlen (type) : 0;
    if (mw_type_name_valid (type, len) != 0)
        return -1;
    mw_event_init (self, mw_type_from_name (type, len));
    memcpy (self->type, type, len);
    self->type[len] = 0;
    return 0;
}

void
mw_event_set_str (mw_event_t *self, mw_str_key_t key, const char *value)
{
    assert (self);
    assert ((int) key >= 0 && key < MW_STR_COUNT);
    if (value) {
        size_t len = strlen (value);
        self->str[key].ptr = value;
        self->str[key].len = len > UINT32_MAX ? UINT32_MAX : (uint32_t) len;
    }
    else {
        self->str[key].ptr = NULL;
        self->str[key].len = 0;
    }
}

void
mw_event_release (mw_event_t *self)
{
    assert (self);
    free (self->store_);
    mw_event_init (self, MW_TYPE_CUSTOM);
}

//  --------------------------------------------------------------------------
//  Encoding

//  A msgpack writer into a caller buffer. It emits the same bytes as
//  msgpack-c's packer (smallest format for each value, float64 for
//  doubles, str8 for 32..255 byte strings), but inline: msgpack-c calls a
//  write callback through a pointer for every value, which was most of the
//  publisher's cost per event (see docs/performance.md). A write past cap
//  sets overflow and writes nothing more.
typedef struct {
    uint8_t *start;
    uint8_t *p;   //  next byte to write
    uint8_t *end; //  one past the last writable byte; = p after an overflow
    bool overflow;
} s_pk_t;

#define S_INLINE static inline __attribute__ ((always_inline))

S_INLINE void
s_pk_init (s_pk_t *pk, uint8_t *out, size_t cap)
{
    pk->start = pk->p = out;
    pk->end = out + cap;
    pk->overflow = false;
}

//  Reserve n bytes. On overflow, end is pulled back to p, so every later
//  reservation fails with the same single comparison. With chk false (a
//  constant: the compiler drops the test) the caller has proved that the
//  whole body fits, see mw_event_encode.
S_INLINE uint8_t *
s_pk_need (s_pk_t *pk, size_t n, const bool chk)
{
    if (chk && __builtin_expect ((size_t) (pk->end - pk->p) < n, 0)) {
        pk->overflow = true;
        pk->end = pk->p;
        return NULL;
    }
    uint8_t *p = pk->p;
    pk->p += n;
    return p;
}

S_INLINE void
s_pk_head (s_pk_t *pk, uint8_t code, uint64_t value, int bytes, const bool chk)
{
    uint8_t *p = s_pk_need (pk, 1 + (size_t) bytes, chk);
    if (!p)
        return;
    p[0] = code;
    for (int i = bytes; i > 0; i--, value >>= 8)
        p[i] = (uint8_t) value;
}

S_INLINE void
s_pk_byte (s_pk_t *pk, uint8_t byte, const bool chk)
{
    uint8_t *p = s_pk_need (pk, 1, chk);
    if (p)
        *p = byte;
}

//  Copy len bytes that are known to be few without a call: two possibly
//  overlapping fixed-size moves, reading and writing only [0, len).
S_INLINE void
s_copy_small (uint8_t *dst, const uint8_t *src, size_t len)
{
    if (len >= 16) {
        memcpy (dst, src, 16);
        memcpy (dst + len - 16, src + len - 16, 16);
    }
    else if (len >= 8) {
        memcpy (dst, src, 8);
        memcpy (dst + len - 8, src + len - 8, 8);
    }
    else if (len >= 4) {
        memcpy (dst, src, 4);
        memcpy (dst + len - 4, src + len - 4, 4);
    }
    else
        for (size_t i = 0; i < len; i++)
            dst[i] = src[i];
}

S_INLINE void
s_pk_raw (s_pk_t *pk, const void *data, size_t len, const bool chk)
{
    uint8_t *p = s_pk_need (pk, len, chk);
    if (!p)
        return;
    if (!chk && len <= 32)
        s_copy_small (p, (const uint8_t *) data, len);
    else if (len)
        memcpy (p, data, len);
}

S_INLINE void
s_pk_uint (s_pk_t *pk, uint64_t u, const bool chk)
{
    if (u < 0x80)
        s_pk_byte (pk, (uint8_t) u, chk);
    else if (u <= 0xff)
        s_pk_head (pk, 0xcc, u, 1, chk);
    else if (u <= 0xffff)
        s_pk_head (pk, 0xcd, u, 2, chk);
    else if (u <= 0xffffffffu)
        s_pk_head (pk, 0xce, u, 4, chk);
    else
        s_pk_head (pk, 0xcf, u, 8, chk);
}

S_INLINE void
s_pk_int (s_pk_t *pk, int64_t i, const bool chk)
{
    if (i >= 0)
        s_pk_uint (pk, (uint64_t) i, chk);
    else if (i >= -32)
        s_pk_byte (pk, (uint8_t) (int8_t) i, chk);
    else if (i >= INT8_MIN)
        s_pk_head (pk, 0xd0, (uint64_t) i, 1, chk);
    else if (i >= INT16_MIN)
        s_pk_head (pk, 0xd1, (uint64_t) i, 2, chk);
    else if (i >= INT32_MIN)
        s_pk_head (pk, 0xd2, (uint64_t) i, 4, chk);
    else
        s_pk_head (pk, 0xd3, (uint64_t) i, 8, chk);
}

S_INLINE void
s_pk_double (s_pk_t *pk, double d, const bool chk)
{
    uint64_t bits;
    memcpy (&bits, &d, sizeof (bits));
    s_pk_head (pk, 0xcb, bits, 8, chk);
}

S_INLINE void
s_pk_bool (s_pk_t *pk, bool b, const bool chk)
{
    s_pk_byte (pk, b ? 0xc3 : 0xc2, chk);
}

S_INLINE void
s_pk_container (s_pk_t *pk, uint8_t fix, uint8_t code16, size_t n, const bool chk)
{
    if (n < 16)
        s_pk_byte (pk, (uint8_t) (fix | n), chk);
    else if (n <= 0xffff)
        s_pk_head (pk, code16, n, 2, chk);
    else
        s_pk_head (pk, (uint8_t) (code16 + 1), n, 4, chk);
}

S_INLINE void
s_pk_str (s_pk_t *pk, const char *s, size_t len, const bool chk)
{
    if (len < 32)
        s_pk_byte (pk, (uint8_t) (0xa0 | len), chk);
    else if (len <= 0xff)
        s_pk_head (pk, 0xd9, len, 1, chk);
    else if (len <= 0xffff)
        s_pk_head (pk, 0xda, len, 2, chk);
    else
        s_pk_head (pk, 0xdb, len, 4, chk);
    s_pk_raw (pk, s, len, chk);
}

//  A short constant key: its fixstr header and name, one fixed-size copy.
#define S_PK_KEY(pk, lit, chk) s_pk_raw (pk, lit, sizeof (lit) - 1, chk)

static size_t
s_kv_len (const mw_kv_t *kv)
{
    if (kv->val.s.len == (size_t) -1)
        return kv->val.s.ptr ? strlen (kv->val.s.ptr) : 0;
    return kv->val.s.len;
}

//  Check a kv value (recursively) before anything is written, so a bad kv
//  never produces half an event. Return MW_OK or an error code.
static int
s_kv_check (const mw_kv_t *kv, int depth)
{
    switch (kv->kind) {
        case MW_KV_NIL:
        case MW_KV_BOOL:
        case MW_KV_INT:
        case MW_KV_UINT:
        case MW_KV_DOUBLE:
            return MW_OK;
        case MW_KV_STR:
            return kv->val.s.ptr || kv->val.s.len == 0 || kv->val.s.len == (size_t) -1
                       ? MW_OK
                       : MW_ERR_FIELD_TYPE;
        case MW_KV_MAP:
        case MW_KV_ARRAY:
            if (depth >= MW_MAX_DEPTH)
                return MW_ERR_TOO_DEEP;
            if (kv->val.list.count && !kv->val.list.items)
                return MW_ERR_FIELD_TYPE;
            for (size_t i = 0; i < kv->val.list.count; i++) {
                const mw_kv_t *item = &kv->val.list.items[i];
                if (kv->kind == MW_KV_MAP && !item->key)
                    return MW_ERR_KEY;
                int rc = s_kv_check (item, depth + 1);
                if (rc != MW_OK)
                    return rc;
            }
            return MW_OK;
    }
    return MW_ERR_FIELD_TYPE;
}

//  Pack a kv value; strings are cut to limit (a known key's own limit at the
//  top level, MW_MAX_STR inside maps and arrays) and counted in *cut.
static void
s_kv_pack (s_pk_t *pk, const mw_kv_t *kv, size_t limit, uint32_t *cut)
{
    switch (kv->kind) {
        case MW_KV_NIL:
            s_pk_byte (pk, 0xc0, true);
            break;
        case MW_KV_BOOL:
            s_pk_bool (pk, kv->val.b, true);
            break;
        case MW_KV_INT:
            s_pk_int (pk, kv->val.i, true);
            break;
        case MW_KV_UINT:
            s_pk_uint (pk, kv->val.u, true);
            break;
        case MW_KV_DOUBLE:
            s_pk_double (pk, kv->val.d, true);
            break;
        case MW_KV_STR: {
            const char *s = kv->val.s.ptr ? kv->val.s.ptr : "";
            size_t len = s_kv_len (kv);
            size_t eff = s_utf8_cut (s, len, limit);
            *cut += eff < len;
            s_pk_str (pk, s, eff, true);
            break;
        }
        case MW_KV_MAP:
            s_pk_container (pk, 0x80, 0xde, kv->val.list.count, true);
            for (size_t i = 0; i < kv->val.list.count; i++) {
                const mw_kv_t *item = &kv->val.list.items[i];
                size_t klen = strlen (item->key);
                s_pk_str (pk, item->key, s_utf8_cut (item->key, klen, MW_MAX_KEY), true);
                s_kv_pack (pk, item, MW_MAX_STR, cut);
            }
            break;
        case MW_KV_ARRAY:
            s_pk_container (pk, 0x90, 0xdc, kv->val.list.count, true);
            for (size_t i = 0; i < kv->val.list.count; i++)
                s_kv_pack (pk, &kv->val.list.items[i], MW_MAX_STR, cut);
            break;
    }
}

//  The string limit of a top-level kv: its known key's own, else MW_MAX_STR.
static size_t
s_kv_limit (const mw_kv_t *kv)
{
    int k = s_key_lookup (kv->key, strlen (kv->key));
    if (k >= 0 && s_keys[k].kind == K_STR)
        return mw_str_key_limit ((mw_str_key_t) s_keys[k].field);
    return MW_MAX_STR;
}

//  Does the kv kind fit the protocol type of a known key?
static bool
s_kv_fits (const mw_kv_t *kv, s_kind_t kind)
{
    switch (kind) {
        case K_STR:
            return kv->kind == MW_KV_STR;
        case K_UINT:
            return kv->kind == MW_KV_UINT || (kv->kind == MW_KV_INT && kv->val.i >= 0);
        case K_FLOAT:
            return kv->kind == MW_KV_DOUBLE || kv->kind == MW_KV_INT || kv->kind == MW_KV_UINT;
        case K_BOOL:
            return kv->kind == MW_KV_BOOL;
        case K_TYPE:
            return false;
    }
    return false;
}

//  Presence of a known non-string field, by s_field_t.
static bool
s_has_field (const mw_event_t *ev, int field)
{
    switch (field) {
        case F_ID:
            return ev->has & MW_HAS_ID;
        case F_TIMEOUT_MS:
            return ev->has & MW_HAS_TIMEOUT_MS;
        case F_ACTION_COUNT:
            return ev->has & MW_HAS_ACTION_COUNT;
        case F_SUCCESS:
            return ev->has & MW_HAS_SUCCESS;
        case F_RESPONSE_TIME:
            return ev->has & MW_HAS_RESPONSE_TIME;
        case F_SCORE:
            return ev->has & MW_HAS_SCORE;
        case F_EXECUTION_TIME:
            return ev->has & MW_HAS_EXECUTION_TIME;
        case F_BROKER_TS:
            return ev->has & MW_HAS_BROKER_TS;
        default:
            return true;
    }
}

//  Required keys by type, beyond the header. `kv_has` says whether a kv
//  supplies a known key (bit per s_keys index), so a custom call can
//  satisfy a requirement through kv.
static int
s_check_required (const mw_event_t *ev, uint32_t kv_has, char *errbuf, size_t errbuf_size);

static bool
s_extra_has_key (const mw_event_t *ev, const char *key, size_t klen);

//  Validate the kv list against the event: returns MW_OK and a bitmask of
//  known keys supplied by kv (by s_keys index).
static int
s_kv_validate (const mw_event_t *ev, uint32_t *kv_has)
{
    *kv_has = 0;
    if (ev->kv_count && !ev->kv)
        return MW_ERR_KEY;
    if (ev->kv_count + ev->extra_count > MW_MAX_EXTRA + S_KEY_COUNT)
        return MW_ERR_KEY;
    size_t custom = ev->extra_count;
    for (size_t i = 0; i < ev->kv_count; i++) {
        const mw_kv_t *kv = &ev->kv[i];
        if (!kv->key)
            return MW_ERR_KEY;
        size_t klen = strlen (kv->key);
        if (klen == 0 || klen > MW_MAX_KEY)
            return MW_ERR_KEY;
        for (size_t j = 0; j < i; j++)
            if (strcmp (ev->kv[j].key, kv->key) == 0)
                return MW_ERR_KEY;
        int rc = s_kv_check (kv, 0);
        if (rc != MW_OK)
            return rc;
        int k = s_key_lookup (kv->key, klen);
        if (k < 0) {
            if (++custom > MW_MAX_EXTRA)
                return MW_ERR_KEY;
            if (s_extra_has_key (ev, kv->key, klen))
                return MW_ERR_KEY;
            continue;
        }
        const s_key_t *key = &s_keys[k];
        if (key->header)
            return MW_ERR_KEY;
        bool set = key->kind == K_STR ? ev->str[key->field].ptr != NULL
                                      : s_has_field (ev, key->field);
        if (set)
            return MW_ERR_KEY;
        if (kv->kind == MW_KV_NIL)
            continue; //  nil means absent: written as nil, decoded as absent
        if (!s_kv_fits (kv, (s_kind_t) key->kind))
            return MW_ERR_FIELD_TYPE;
        *kv_has |= 1u << k;
    }
    return MW_OK;
}

//  The string keys as the encoder writes them: fixstr header and name,
//  padded to S_KEYHDR bytes so that one fixed-size copy (two moves, no
//  call) writes any of them on the unchecked path.
#define S_KEYHDR 24
static const char s_str_key_hdr[MW_STR_COUNT][S_KEYHDR] = {
    "\xa5" "miner",         "\xa7" "task_id",    "\xa6" "prompt",       "\xa3" "url",
    "\xac" "validator_ip",  "\xb0" "validator_hotkey", "\xa4" "step",   "\xab" "action_type",
    "\xa5" "error",         "\xad" "error_message", "\xaa" "error_type", "\xaa" "cache_type",
    "\xa8" "endpoint"};

//  mw_str_key_limit as a table, for the encoder's loop.
static const uint16_t s_str_key_limits[MW_STR_COUNT] = {
    MW_MAX_MINER, MW_MAX_TASK_ID, MW_MAX_STR, MW_MAX_STR, MW_MAX_STR, MW_MAX_STR, MW_MAX_STR,
    MW_MAX_STR,   MW_MAX_STR,     MW_MAX_STR, MW_MAX_STR, MW_MAX_STR, MW_MAX_STR};

//  strlen of s_type_names, so that a known type costs no scan.
static const uint8_t s_type_lens[MW_TYPE_COUNT] = {0, 10, 9, 17, 13, 13, 20, 9, 5};

//  Upper bound of everything an encoded body holds besides the string
//  keys, the extras and the kv: map16 header, v, type (without its name),
//  ts, sid, seq, id, broker_ts, the six optional fields and truncated,
//  each with its key and its largest value (see s_encode_body).
#define S_FIXED_MAX 320

//  Write the body. Instantiated twice (chk is a constant): checked, where
//  every write tests the room left, and unchecked, which the caller takes
//  only after proving that the largest body these fields can give fits.
S_INLINE void
s_encode_body (const mw_event_t *self, s_pk_t *pk, uint32_t present, const uint32_t *eff,
               size_t nkeys, size_t type_len, uint32_t truncated, const bool chk)
{
    s_pk_container (pk, 0x80, 0xde, nkeys, chk);
    S_PK_KEY (pk, "\xa1" "v", chk);
    s_pk_uint (pk, MW_PROTOCOL_VERSION, chk);
    S_PK_KEY (pk, "\xa4" "type", chk);
    s_pk_str (pk, self->type, type_len, chk);
    S_PK_KEY (pk, "\xa2" "ts", chk);
    s_pk_uint (pk, self->ts, chk);
    S_PK_KEY (pk, "\xa3" "sid", chk);
    s_pk_uint (pk, self->sid, chk);
    S_PK_KEY (pk, "\xa3" "seq", chk);
    s_pk_uint (pk, self->seq, chk);
    if (self->has & MW_HAS_ID) {
        S_PK_KEY (pk, "\xa2" "id", chk);
        s_pk_uint (pk, self->id, chk);
    }
    if (self->has & MW_HAS_BROKER_TS) {
        S_PK_KEY (pk, "\xa9" "broker_ts", chk);
        s_pk_uint (pk, self->broker_ts, chk);
    }
    for (uint32_t m = present; m; m &= m - 1) {
        int k = __builtin_ctz (m);
        if (chk)
            s_pk_raw (pk, s_str_key_hdr[k], 1 + (size_t) s_str_key_lens[k], true);
        else {
            memcpy (pk->p, s_str_key_hdr[k], S_KEYHDR);
            pk->p += 1 + (size_t) s_str_key_lens[k];
        }
        s_pk_str (pk, self->str[k].ptr, eff[k], chk);
    }
    if (self->has & MW_HAS_TIMEOUT_MS) {
        S_PK_KEY (pk, "\xaa" "timeout_ms", chk);
        s_pk_uint (pk, self->timeout_ms, chk);
    }
    if (self->has & MW_HAS_ACTION_COUNT) {
        S_PK_KEY (pk, "\xac" "action_count", chk);
        s_pk_uint (pk, self->action_count, chk);
    }
    if (self->has & MW_HAS_SUCCESS) {
        S_PK_KEY (pk, "\xa7" "success", chk);
        s_pk_bool (pk, self->success, chk);
    }
    if (self->has & MW_HAS_RESPONSE_TIME) {
        S_PK_KEY (pk, "\xad" "response_time", chk);
        s_pk_double (pk, self->response_time, chk);
    }
    if (self->has & MW_HAS_SCORE) {
        S_PK_KEY (pk, "\xa5" "score", chk);
        s_pk_double (pk, self->score, chk);
    }
    if (self->has & MW_HAS_EXECUTION_TIME) {
        S_PK_KEY (pk, "\xae" "execution_time", chk);
        s_pk_double (pk, self->execution_time, chk);
    }
    if (truncated) {
        S_PK_KEY (pk, "\xa9" "truncated", chk);
        s_pk_uint (pk, truncated, chk);
    }
    if (self->extra_len)
        s_pk_raw (pk, self->extra, self->extra_len, chk);
    if (chk) {
        uint32_t unused = 0;
        for (size_t i = 0; i < self->kv_count; i++) {
            const mw_kv_t *kv = &self->kv[i];
            size_t klen = strlen (kv->key);
            s_pk_str (pk, kv->key, klen, true);
            s_kv_pack (pk, kv, s_kv_limit (kv), &unused);
        }
    }
}

int
mw_event_encode (const mw_event_t *self, uint8_t *out, size_t cap, size_t *len_p,
                 uint32_t *truncated_p)
{
    assert (self);
    assert (out);
    assert (len_p);
    //  A known type whose name is still the table's (the fast, usual case)
    //  needs no scan; anything else is measured and checked.
    size_t type_len;
    if (self->kind > MW_TYPE_CUSTOM && self->kind < MW_TYPE_COUNT &&
        memcmp (self->type, s_type_names[self->kind], (size_t) s_type_lens[self->kind] + 1) == 0)
        type_len = s_type_lens[self->kind];
    else {
        type_len = strnlen (self->type, sizeof (self->type));
        if (mw_type_name_valid (self->type, type_len) != 0)
            return MW_ERR_TYPE_NAME;
    }

    uint32_t kv_has;
    int rc = s_kv_validate (self, &kv_has);
    if (rc != MW_OK)
        return rc;
    if (self->str[MW_K_MINER].ptr == NULL)
        return MW_ERR_MISSING;
    rc = s_check_required (self, kv_has, NULL, 0);
    if (rc != MW_OK)
        return rc;

    //  Cut strings first: the count of cuts is itself a key, and the map
    //  header must know how many keys follow.
    uint32_t eff[MW_STR_COUNT];
    uint32_t cut = 0;
    size_t nkeys = 6 + self->extra_count + self->kv_count;
    size_t str_bytes = 0;  //  the string keys' largest encoded size
    uint32_t present = 0; //  bit k: string key k is set
#pragma GCC unroll 16
    for (int k = 0; k < MW_STR_COUNT; k++) {
        if (!self->str[k].ptr)
            continue;
        present |= 1u << k;
        eff[k] = (uint32_t) s_utf8_cut (self->str[k].ptr, self->str[k].len, s_str_key_limits[k]);
        cut += eff[k] < self->str[k].len;
        str_bytes += S_KEYHDR + 5 + eff[k];
        if (k != MW_K_MINER)
            nkeys++;
    }
    //  Strings inside kv are cut while packing; count them beforehand with a
    //  dry run so the `truncated` key is right and present.
    uint32_t kv_cut = 0;
    if (self->kv_count) {
        uint8_t dummy;
        s_pk_t dry;
        s_pk_init (&dry, &dummy, 0);
        for (size_t i = 0; i < self->kv_count; i++)
            s_kv_pack (&dry, &self->kv[i], s_kv_limit (&self->kv[i]), &kv_cut);
    }
    //  Saturate like the decoder does, so forwarding keeps the value stable.
    uint64_t total = (uint64_t) self->truncated + cut + kv_cut;
    uint32_t truncated = total > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t) total;
    if (truncated)
        nkeys++;
    const uint32_t opt = self->has & (MW_HAS_ID | MW_HAS_BROKER_TS | MW_HAS_TIMEOUT_MS |
                                      MW_HAS_ACTION_COUNT | MW_HAS_SUCCESS | MW_HAS_RESPONSE_TIME |
                                      MW_HAS_SCORE | MW_HAS_EXECUTION_TIME);
    for (uint32_t m = opt; m; m &= m - 1)
        nkeys++;

    if (cap > MW_MAX_BODY)
        cap = MW_MAX_BODY;
    s_pk_t pk;
    s_pk_init (&pk, out, cap);
    //  Without kv the largest body is known beforehand: if it fits, write
    //  without a test per value (most events, by far).
    if (self->kv_count == 0 && self->extra_len <= cap &&
        S_FIXED_MAX + type_len + str_bytes <= cap - self->extra_len)
        s_encode_body (self, &pk, present, eff, nkeys, type_len, truncated, false);
    else
        s_encode_body (self, &pk, present, eff, nkeys, type_len, truncated, true);
    if (pk.overflow)
        return MW_ERR_TOO_LARGE;
    *len_p = (size_t) (pk.p - pk.start);
    if (truncated_p)
        *truncated_p = cut + kv_cut;
    return MW_OK;
}

//  --------------------------------------------------------------------------
//  Decoding: a strict reader over [p, end)

typedef enum {
    T_NIL,
    T_BOOL,
    T_UINT,
    T_INT, //  negative
    T_FLOAT,
    T_STR,
    T_BIN,
    T_ARRAY,
    T_MAP,
    T_EXT
} s_tag_t;

static const char *s_tag_names[] = {"nil", "bool", "uint",  "int", "float",
                                    "str", "bin",  "array", "map", "ext"};

typedef struct {
    s_tag_t tag;
    bool f32; //  a T_FLOAT that was a float32 on the wire
    bool b;
    uint64_t u;
    int64_t i;
    double d;
    const uint8_t *ptr; //  str/bin/ext payload
    uint32_t len;       //  str/bin/ext payload length, array/map count
} s_obj_t;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} s_rd_t;

static inline uint64_t
s_be (const uint8_t *p, int n)
{
    //  msgpack's fields are 1, 2, 4 or 8 bytes: one load and a byte swap
    //  (on a big-endian host, the loop below).
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    switch (n) {
        case 1:
            return p[0];
        case 2: {
            uint16_t v;
            memcpy (&v, p, 2);
            return __builtin_bswap16 (v);
        }
        case 4: {
            uint32_t v;
            memcpy (&v, p, 4);
            return __builtin_bswap32 (v);
        }
        case 8: {
            uint64_t v;
            memcpy (&v, p, 8);
            return __builtin_bswap64 (v);
        }
        default:
            break;
    }
#endif
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

//  Read one object header (and the payload of str/bin/ext). Every length is
//  checked against the bytes left; a container's count must be possible in
//  the bytes left (one byte per element at least), so a huge declared count
//  fails here, before anyone loops over it. Return MW_OK or MW_ERR_MALFORMED.
static int
s_read (s_rd_t *rd, s_obj_t *o)
{
    size_t left = (size_t) (rd->end - rd->p);
    if (left == 0)
        return MW_ERR_MALFORMED;
    uint8_t c = *rd->p++;
    left--;
    size_t need = 0; //  bytes of the length/value field after c
    uint64_t n = 0;
    if (c <= 0x7f) {
        o->tag = T_UINT;
        o->u = c;
        return MW_OK;
    }
    if (c >= 0xe0) {
        o->tag = T_INT;
        o->i = (int8_t) c;
        return MW_OK;
    }
    if (c >= 0x80 && c <= 0x8f) {
        o->tag = T_MAP;
        n = c & 0x0f;
        goto container;
    }
    if (c >= 0x90 && c <= 0x9f) {
        o->tag = T_ARRAY;
        n = c & 0x0f;
        goto container;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        o->tag = T_STR;
        n = c & 0x1f;
        goto payload;
    }
    switch (c) {
        case 0xc0:
            o->tag = T_NIL;
            return MW_OK;
        case 0xc2:
        case 0xc3:
            o->tag = T_BOOL;
            o->b = c == 0xc3;
            return MW_OK;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            o->tag = T_BIN;
            need = (size_t) 1 << (c - 0xc4);
            break;
        case 0xd9:
        case 0xda:
        case 0xdb:
            o->tag = T_STR;
            need = (size_t) 1 << (c - 0xd9);
            break;
        case 0xc7:
        case 0xc8:
        case 0xc9: {
            o->tag = T_EXT;
            need = (size_t) 1 << (c - 0xc7);
            if (left < need + 1)
                return MW_ERR_MALFORMED;
            n = s_be (rd->p, (int) need);
            rd->p += need + 1; //  length, then the ext type byte
            left -= need + 1;
            goto payload;
        }
        case 0xca:
        case 0xcb: {
            size_t sz = c == 0xca ? 4 : 8;
            if (left < sz)
                return MW_ERR_MALFORMED;
            uint64_t bits = s_be (rd->p, (int) sz);
            rd->p += sz;
            o->tag = T_FLOAT;
            o->f32 = sz == 4;
            if (sz == 4) {
                uint32_t b32 = (uint32_t) bits;
                float f;
                memcpy (&f, &b32, 4);
                o->d = f;
            }
            else
                memcpy (&o->d, &bits, 8);
            return MW_OK;
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf: {
            size_t sz = (size_t) 1 << (c - 0xcc);
            if (left < sz)
                return MW_ERR_MALFORMED;
            o->tag = T_UINT;
            o->u = s_be (rd->p, (int) sz);
            rd->p += sz;
            return MW_OK;
        }
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            size_t sz = (size_t) 1 << (c - 0xd0);
            if (left < sz)
                return MW_ERR_MALFORMED;
            uint64_t u = s_be (rd->p, (int) sz);
            rd->p += sz;
            int64_t v;
            if (sz == 1)
                v = (int8_t) u;
            else if (sz == 2)
                v = (int16_t) u;
            else if (sz == 4)
                v = (int32_t) u;
            else
                v = (int64_t) u;
            if (v >= 0) {
                o->tag = T_UINT;
                o->u = (uint64_t) v;
            }
            else {
                o->tag = T_INT;
                o->i = v;
            }
            return MW_OK;
        }
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
            o->tag = T_EXT;
            n = (uint64_t) 1 << (c - 0xd4);
            if (left < 1)
                return MW_ERR_MALFORMED;
            rd->p++; //  ext type byte
            left--;
            goto payload;
        case 0xdc:
        case 0xdd:
            o->tag = T_ARRAY;
            need = c == 0xdc ? 2 : 4;
            break;
        case 0xde:
        case 0xdf:
            o->tag = T_MAP;
            need = c == 0xde ? 2 : 4;
            break;
        default: //  0xc1 is never used
            return MW_ERR_MALFORMED;
    }
    if (left < need)
        return MW_ERR_MALFORMED;
    n = s_be (rd->p, (int) need);
    rd->p += need;
    left -= need;
    if (o->tag == T_ARRAY || o->tag == T_MAP)
        goto container;
payload:
    if (n > left)
        return MW_ERR_MALFORMED;
    o->ptr = rd->p;
    o->len = (uint32_t) n;
    rd->p += n;
    return MW_OK;
container:
    left = (size_t) (rd->end - rd->p);
    if (n > left / (o->tag == T_MAP ? 2 : 1))
        return MW_ERR_MALFORMED;
    o->len = (uint32_t) n;
    return MW_OK;
}

//  s_read for the objects most of a body is made of (fixstr keys and
//  strings, small uints), without the call; anything else goes to s_read.
S_INLINE int
s_read_fast (s_rd_t *rd, s_obj_t *o)
{
    if (rd->p < rd->end) {
        uint8_t c = *rd->p;
        if ((c & 0xe0) == 0xa0) {
            size_t n = c & 0x1f;
            if ((size_t) (rd->end - rd->p) - 1 < n)
                return MW_ERR_MALFORMED;
            o->tag = T_STR;
            o->ptr = rd->p + 1;
            o->len = (uint32_t) n;
            rd->p += 1 + n;
            return MW_OK;
        }
        if (c <= 0x7f) {
            o->tag = T_UINT;
            o->u = c;
            rd->p++;
            return MW_OK;
        }
        size_t left = (size_t) (rd->end - rd->p) - 1;
        if (c >= 0xcc && c <= 0xcf) { //  uint 8 to 64: ts, sid, seq, id, ...
            size_t sz = (size_t) 1 << (c - 0xcc);
            if (left < sz)
                return MW_ERR_MALFORMED;
            o->tag = T_UINT;
            o->u = s_be (rd->p + 1, (int) sz);
            rd->p += 1 + sz;
            return MW_OK;
        }
        if (c == 0xd9) { //  str8: strings of 32 to 255 bytes
            if (left < 1 || left - 1 < rd->p[1])
                return MW_ERR_MALFORMED;
            o->tag = T_STR;
            o->len = rd->p[1];
            o->ptr = rd->p + 2;
            rd->p += 2 + o->len;
            return MW_OK;
        }
    }
    return s_read (rd, o);
}

//  Skip one object; depth_left is how many containers may still nest.
static int
s_skip (s_rd_t *rd, int depth_left)
{
    s_obj_t o;
    int rc = s_read (rd, &o);
    if (rc != MW_OK)
        return rc;
    if (o.tag != T_ARRAY && o.tag != T_MAP)
        return MW_OK;
    if (depth_left <= 0)
        return MW_ERR_TOO_DEEP;
    uint64_t items = o.tag == T_MAP ? 2 * (uint64_t) o.len : o.len;
    for (uint64_t i = 0; i < items; i++) {
        rc = s_skip (rd, depth_left - 1);
        if (rc != MW_OK)
            return rc;
    }
    return MW_OK;
}

static bool
s_extra_has_key (const mw_event_t *ev, const char *key, size_t klen)
{
    s_rd_t rd = {ev->extra, ev->extra + ev->extra_len};
    for (uint32_t i = 0; ev->extra && i < ev->extra_count; i++) {
        s_obj_t k;
        if (s_read (&rd, &k) != MW_OK)
            return false;
        if (k.tag == T_STR && k.len == klen && memcmp (k.ptr, key, klen) == 0)
            return true;
        if (s_skip (&rd, MW_MAX_DEPTH) != MW_OK)
            return false;
    }
    return false;
}

int
mw_msgpack_read (const uint8_t **pp, const uint8_t *end, mw_mp_obj_t *obj)
{
    assert (pp && obj);
    if (!*pp || !end || end < *pp)
        return -1;
    s_rd_t rd = {*pp, end};
    s_obj_t o;
    if (s_read (&rd, &o) != MW_OK)
        return -1;
    static const mw_mp_tag_t tags[] = {
        [T_NIL] = MW_MP_NIL,     [T_BOOL] = MW_MP_BOOL,   [T_UINT] = MW_MP_UINT,
        [T_INT] = MW_MP_INT,     [T_FLOAT] = MW_MP_FLOAT64, [T_STR] = MW_MP_STR,
        [T_BIN] = MW_MP_BIN,     [T_ARRAY] = MW_MP_ARRAY, [T_MAP] = MW_MP_MAP,
        [T_EXT] = MW_MP_EXT};
    *obj = (mw_mp_obj_t){.tag = o.tag == T_FLOAT && o.f32 ? MW_MP_FLOAT32 : tags[o.tag]};
    switch (o.tag) {
        case T_BOOL:
            obj->b = o.b;
            break;
        case T_UINT:
            obj->u = o.u;
            break;
        case T_INT:
            obj->i = o.i;
            break;
        case T_FLOAT:
            obj->d = o.d;
            break;
        case T_STR:
        case T_BIN:
        case T_EXT:
            obj->ptr = o.ptr;
            obj->len = o.len;
            break;
        case T_ARRAY:
        case T_MAP:
            obj->len = o.len;
            break;
        case T_NIL:
            break;
    }
    *pp = rd.p;
    return 0;
}

int
mw_msgpack_check (const uint8_t *buf, size_t len, int max_depth, size_t *size_p)
{
    if (!buf)
        return MW_ERR_MALFORMED;
    s_rd_t rd = {buf, buf + len};
    int rc = s_skip (&rd, max_depth);
    if (rc == MW_OK && size_p)
        *size_p = (size_t) (rd.p - buf);
    return rc;
}

static int
s_fail (char *errbuf, size_t errbuf_size, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static int
s_fail (char *errbuf, size_t errbuf_size, int code, const char *fmt, ...)
{
    if (errbuf && errbuf_size) {
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (errbuf, errbuf_size, fmt, ap);
        va_end (ap);
    }
    return code;
}

//  A key name printable in a message: cut, and non-printable bytes as '?'.
static const char *
s_printable (const uint8_t *p, size_t len, char *out, size_t out_size)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < out_size; i++)
        out[n++] = p[i] >= 0x20 && p[i] < 0x7f ? (char) p[i] : '?';
    if (len > 0 && n < len && n + 3 < out_size)
        out[n++] = '.', out[n++] = '.', out[n++] = '.';
    out[n] = 0;
    return out;
}

static int
s_check_required (const mw_event_t *ev, uint32_t kv_has, char *errbuf, size_t errbuf_size)
{
    //  kv_has bits are s_keys indices.
    const int k_task = S_IX_TASK_ID, k_step = S_IX_STEP, k_count = S_IX_ACTION_COUNT,
              k_success = S_IX_SUCCESS, k_emsg = S_IX_ERROR_MESSAGE, k_ip = S_IX_VALIDATOR_IP,
              k_hk = S_IX_VALIDATOR_HOTKEY;
#define S_HAS_STR(key, k) (ev->str[key].ptr != NULL || (kv_has & (1u << (k))))
    const char *missing = NULL;
    switch (ev->kind) {
        case MW_TYPE_TASK_START:
        case MW_TYPE_TASK_FEEDBACK:
        case MW_TYPE_CACHE_HIT:
            if (!S_HAS_STR (MW_K_TASK_ID, k_task))
                missing = "task_id";
            break;
        case MW_TYPE_TASK_STEP:
            if (!S_HAS_STR (MW_K_TASK_ID, k_task))
                missing = "task_id";
            else if (!S_HAS_STR (MW_K_STEP, k_step))
                missing = "step";
            break;
        case MW_TYPE_ACTIONS_GENERATED:
            if (!S_HAS_STR (MW_K_TASK_ID, k_task))
                missing = "task_id";
            else if (!(ev->has & MW_HAS_ACTION_COUNT) && !(kv_has & (1u << k_count)))
                missing = "action_count";
            break;
        case MW_TYPE_TASK_COMPLETE:
            if (!S_HAS_STR (MW_K_TASK_ID, k_task))
                missing = "task_id";
            else if (!(ev->has & MW_HAS_SUCCESS) && !(kv_has & (1u << k_success)))
                missing = "success";
            break;
        case MW_TYPE_VALIDATOR_CONNECTION:
            if (!S_HAS_STR (MW_K_VALIDATOR_IP, k_ip) && !S_HAS_STR (MW_K_VALIDATOR_HOTKEY, k_hk))
                missing = "validator_ip or validator_hotkey";
            break;
        case MW_TYPE_ERROR:
            if (!S_HAS_STR (MW_K_ERROR_MESSAGE, k_emsg))
                missing = "error_message";
            break;
        default:
            break;
    }
#undef S_HAS_STR
    if (missing)
        return s_fail (errbuf, errbuf_size, MW_ERR_MISSING, "%s event without its required key %s",
                       ev->type, missing);
    return MW_OK;
}

static bool
s_float_of (const s_obj_t *o, double *d)
{
    if (o->tag == T_FLOAT)
        *d = o->d;
    else if (o->tag == T_UINT)
        *d = (double) o->u;
    else if (o->tag == T_INT)
        *d = (double) o->i;
    else
        return false;
    return true;
}

//  The body of mw_event_decode; on failure the caller empties the event.
static int
s_decode (mw_event_t *self, const uint8_t *topic, size_t topic_len, const uint8_t *body,
          size_t body_len, char *errbuf, size_t errbuf_size)
{
    char name[48];
    //  A known type name is valid: only other names are scanned.
    if (topic && s_type_lookup ((const char *) topic, topic_len) == MW_TYPE_CUSTOM &&
        mw_type_name_valid ((const char *) topic, topic_len) != 0)
        return s_fail (errbuf, errbuf_size, MW_ERR_TYPE_NAME,
                       "topic '%s' is not a valid event type (1-%d printable ASCII bytes, "
                       "not starting with '$')",
                       s_printable (topic, topic_len, name, sizeof (name)), MW_MAX_TYPE);
    if (body_len == 0)
        return s_fail (errbuf, errbuf_size, MW_ERR_EMPTY, "empty body, expected a msgpack map");
    if (body_len > MW_MAX_BODY)
        return s_fail (errbuf, errbuf_size, MW_ERR_TOO_LARGE,
                       "body of %zu bytes is over the limit of %d", body_len, MW_MAX_BODY);

    s_rd_t rd = {body, body + body_len};
    s_obj_t map;
    if (s_read (&rd, &map) != MW_OK)
        return s_fail (errbuf, errbuf_size, MW_ERR_MALFORMED,
                       "body is not valid msgpack (bad or truncated header at byte 0)");
    if (map.tag != T_MAP)
        return s_fail (errbuf, errbuf_size, MW_ERR_NOT_MAP, "body is a msgpack %s, expected a map",
                       s_tag_names[map.tag]);

    //  One block holds every string (NUL-terminated) and the raw extras;
    //  all of them are parts of the body, so the body size plus one NUL per
    //  string key bounds it.
    size_t need = body_len + MW_STR_COUNT + 1;
    if (!self->store_ || self->store_size_ < need) {
        uint8_t *store = (uint8_t *) realloc (self->store_, need);
        if (!store)
            return s_fail (errbuf, errbuf_size, MW_ERR_NOMEM, "out of memory for %zu bytes", need);
        self->store_ = store;
        self->store_size_ = need;
    }
    uint8_t *store = self->store_;
    size_t used = 0;

    uint32_t seen = 0;    //  known keys seen, by s_keys index (repeats)
    uint32_t present = 0; //  known keys with a non-nil value
    const uint8_t *type_ptr = NULL;
    size_t type_len = 0;
    //  Custom pairs are copied after the loop, behind the strings.
    const uint8_t *extra_ptr[MW_MAX_EXTRA];
    size_t extra_len[MW_MAX_EXTRA];
    const uint8_t *extra_key[MW_MAX_EXTRA];
    uint32_t extra_key_len[MW_MAX_EXTRA];

    for (uint32_t i = 0; i < map.len; i++) {
        s_obj_t key, val;
        const uint8_t *pair_start = rd.p;
        if (s_read_fast (&rd, &key) != MW_OK)
            return s_fail (errbuf, errbuf_size, MW_ERR_MALFORMED,
                           "key #%u is not valid msgpack or is truncated", i + 1);
        if (key.tag != T_STR)
            return s_fail (errbuf, errbuf_size, MW_ERR_KEY, "key #%u is a %s, expected a string",
                           i + 1, s_tag_names[key.tag]);
        if (key.len == 0 || key.len > MW_MAX_KEY)
            return s_fail (errbuf, errbuf_size, MW_ERR_KEY,
                           "key #%u has %u bytes, expected 1 to %d", i + 1, key.len, MW_MAX_KEY);
        //  The key's printable name, made only when a message needs it.
#define kname s_printable (key.ptr, key.len, name, sizeof (name))
        int k = s_key_lookup ((const char *) key.ptr, key.len);
        if (k < 0) {
            //  A custom key: check the value's structure, keep the raw pair.
            //  O(n^2), bounded by MW_MAX_EXTRA.
            for (uint32_t j = 0; j < self->extra_count; j++)
                if (extra_key_len[j] == key.len && memcmp (extra_key[j], key.ptr, key.len) == 0)
                    return s_fail (errbuf, errbuf_size, MW_ERR_KEY, "key '%s' repeated", kname);
            if (self->extra_count >= MW_MAX_EXTRA)
                return s_fail (errbuf, errbuf_size, MW_ERR_KEY,
                               "more than %d custom keys (at '%s')", MW_MAX_EXTRA, kname);
            int rc = s_skip (&rd, MW_MAX_DEPTH);
            if (rc == MW_ERR_TOO_DEEP)
                return s_fail (errbuf, errbuf_size, rc,
                               "value of '%s' nests more than %d maps/arrays", kname,
                               MW_MAX_DEPTH);
            if (rc != MW_OK)
                return s_fail (errbuf, errbuf_size, rc,
                               "value of '%s' is not valid msgpack or is truncated", kname);
            extra_ptr[self->extra_count] = pair_start;
            extra_len[self->extra_count] = (size_t) (rd.p - pair_start);
            extra_key[self->extra_count] = key.ptr;
            extra_key_len[self->extra_count] = key.len;
            self->extra_count++;
            continue;
        }
        const s_key_t *spec = &s_keys[k];
        if (seen & (1u << k))
            return s_fail (errbuf, errbuf_size, MW_ERR_KEY, "key '%s' repeated", kname);
        seen |= 1u << k;
        if (s_read_fast (&rd, &val) != MW_OK)
            return s_fail (errbuf, errbuf_size, MW_ERR_MALFORMED,
                           "value of '%s' is not valid msgpack or is truncated", kname);
        if (val.tag == T_NIL)
            continue; //  nil is absent; a required key then fails as missing
        present |= 1u << k;
        static const char *want[] = {"str", "uint", "float", "bool", "str"};
        bool ok = false;
        switch ((s_kind_t) spec->kind) {
            case K_STR:
            case K_TYPE:
                ok = val.tag == T_STR;
                break;
            case K_UINT:
                ok = val.tag == T_UINT;
                break;
            case K_FLOAT:
                ok = val.tag == T_FLOAT || val.tag == T_UINT || val.tag == T_INT;
                break;
            case K_BOOL:
                ok = val.tag == T_BOOL;
                break;
        }
        if (!ok)
            return s_fail (errbuf, errbuf_size, MW_ERR_FIELD_TYPE,
                           "key '%s': expected %s, got %s%s", kname, want[spec->kind],
                           val.tag == T_INT && spec->kind == K_UINT ? "negative " : "",
                           s_tag_names[val.tag]);
        switch ((s_kind_t) spec->kind) {
            case K_TYPE:
                type_ptr = val.ptr;
                type_len = val.len;
                break;
            case K_STR: {
                size_t limit = s_str_key_limits[spec->field];
                size_t eff = s_utf8_cut ((const char *) val.ptr, val.len, limit);
                if (eff < val.len && self->truncated < UINT32_MAX / 2)
                    self->truncated++;
                memcpy (store + used, val.ptr, eff);
                store[used + eff] = 0;
                self->str[spec->field].ptr = (const char *) store + used;
                self->str[spec->field].len = (uint32_t) eff;
                used += eff + 1;
                break;
            }
            case K_UINT:
                switch (spec->field) {
                    case F_V:
                        self->v = val.u;
                        break;
                    case F_TS:
                        self->ts = val.u;
                        break;
                    case F_SID:
                        self->sid = val.u;
                        break;
                    case F_SEQ:
                        self->seq = val.u;
                        break;
                    case F_ID:
                        self->id = val.u;
                        self->has |= MW_HAS_ID;
                        break;
                    case F_TRUNCATED:
                        self->truncated = val.u >= UINT32_MAX / 2 - self->truncated
                                              ? UINT32_MAX / 2
                                              : self->truncated + (uint32_t) val.u;
                        break;
                    case F_BROKER_TS:
                        self->broker_ts = val.u;
                        self->has |= MW_HAS_BROKER_TS;
                        break;
                    case F_TIMEOUT_MS:
                        self->timeout_ms = val.u;
                        self->has |= MW_HAS_TIMEOUT_MS;
                        break;
                    case F_ACTION_COUNT:
                        self->action_count = val.u;
                        self->has |= MW_HAS_ACTION_COUNT;
                        break;
                }
                break;
            case K_FLOAT: {
                double d = 0;
                s_float_of (&val, &d);
                if (spec->field == F_RESPONSE_TIME) {
                    self->response_time = d;
                    self->has |= MW_HAS_RESPONSE_TIME;
                }
                else if (spec->field == F_SCORE) {
                    self->score = d;
                    self->has |= MW_HAS_SCORE;
                }
                else {
                    self->execution_time = d;
                    self->has |= MW_HAS_EXECUTION_TIME;
                }
                break;
            }
            case K_BOOL:
                self->success = val.b;
                self->has |= MW_HAS_SUCCESS;
                break;
        }
    }
#undef kname
    if (rd.p != rd.end)
        return s_fail (errbuf, errbuf_size, MW_ERR_TRAILING,
                       "%zu bytes after the event map", (size_t) (rd.end - rd.p));

    //  The custom pairs, in their order, behind the strings.
    if (self->extra_count) {
        self->extra = store + used;
        for (uint32_t j = 0; j < self->extra_count; j++) {
            memcpy (store + used, extra_ptr[j], extra_len[j]);
            used += extra_len[j];
            self->extra_len += extra_len[j];
        }
    }

    if (!(present & (1u << S_IX_V)))
        return s_fail (errbuf, errbuf_size, MW_ERR_MISSING, "event without its required key v");
    if (self->v != MW_PROTOCOL_VERSION)
        return s_fail (errbuf, errbuf_size, MW_ERR_VERSION,
                       "protocol version %llu, this side speaks %d",
                       (unsigned long long) self->v, MW_PROTOCOL_VERSION);
    if (!type_ptr)
        return s_fail (errbuf, errbuf_size, MW_ERR_MISSING, "event without its required key type");
    mw_type_t kind = s_type_lookup ((const char *) type_ptr, type_len);
    if (kind == MW_TYPE_CUSTOM && mw_type_name_valid ((const char *) type_ptr, type_len) != 0)
        return s_fail (errbuf, errbuf_size, MW_ERR_TYPE_NAME,
                       "type '%s' is not a valid event type (1-%d printable ASCII bytes, not "
                       "starting with '$')",
                       s_printable (type_ptr, type_len, name, sizeof (name)), MW_MAX_TYPE);
    if (topic && (topic_len != type_len || memcmp (topic, type_ptr, type_len) != 0)) {
        char tname[48];
        return s_fail (errbuf, errbuf_size, MW_ERR_TOPIC, "topic '%s' differs from type '%s'",
                       s_printable (topic, topic_len, tname, sizeof (tname)),
                       s_printable (type_ptr, type_len, name, sizeof (name)));
    }
    memcpy (self->type, type_ptr, type_len);
    self->type[type_len] = 0;
    self->kind = kind;

    static const int header[] = {S_IX_TS, S_IX_MINER, S_IX_SID, S_IX_SEQ};
    for (size_t h = 0; h < sizeof (header) / sizeof (header[0]); h++)
        if (!(present & (1u << header[h])))
            return s_fail (errbuf, errbuf_size, MW_ERR_MISSING,
                           "event without its required key %s", s_keys[header[h]].name);
    return s_check_required (self, 0, errbuf, errbuf_size);
}

int
mw_event_decode (mw_event_t *self, const void *topic, size_t topic_len, const void *body,
                 size_t body_len, char *errbuf, size_t errbuf_size)
{
    assert (self);
    //  Keep any storage a previous decode left, to avoid a malloc per event.
    uint8_t *store = self->store_;
    size_t store_size = self->store_size_;
    mw_event_init (self, MW_TYPE_CUSTOM);
    self->store_ = store;
    self->store_size_ = store_size;
    if (errbuf && errbuf_size)
        errbuf[0] = 0;
    if (!body && body_len)
        return s_fail (errbuf, errbuf_size, MW_ERR_EMPTY, "no body");
    int rc = s_decode (self, (const uint8_t *) topic, topic_len, (const uint8_t *) body, body_len,
                       errbuf, errbuf_size);
    if (rc != MW_OK)
        mw_event_release (self);
    return rc;
}

//  --------------------------------------------------------------------------
//  Deep copy

int
mw_event_copy (mw_event_t *dst, const mw_event_t *src)
{
    assert (dst);
    assert (src);
    uint8_t *kvbuf = NULL;
    size_t kv_len = 0;
    uint32_t kv_cut = 0;
    if (src->kv_count) {
        //  Encode kv pairs to raw extras, as a decoder would have kept them.
        mw_event_t probe;
        mw_event_init (&probe, MW_TYPE_CUSTOM);
        probe.kv = src->kv;
        probe.kv_count = src->kv_count;
        probe.extra = src->extra;
        probe.extra_len = src->extra_len;
        probe.extra_count = src->extra_count;
        uint32_t kv_has;
        if (s_kv_validate (&probe, &kv_has) != MW_OK)
            return -1;
        kvbuf = (uint8_t *) malloc (MW_MAX_BODY);
        if (!kvbuf)
            return -1;
        s_pk_t pk;
        s_pk_init (&pk, kvbuf, MW_MAX_BODY);
        for (size_t i = 0; i < src->kv_count; i++) {
            const mw_kv_t *kv = &src->kv[i];
            s_pk_str (&pk, kv->key, strlen (kv->key), true);
            s_kv_pack (&pk, kv, s_kv_limit (kv), &kv_cut);
        }
        if (pk.overflow) {
            free (kvbuf);
            return -1;
        }
        kv_len = (size_t) (pk.p - pk.start);
    }
    size_t need = src->extra_len + kv_len + 1;
    for (int k = 0; k < MW_STR_COUNT; k++)
        if (src->str[k].ptr)
            need += (size_t) src->str[k].len + 1;
    uint8_t *store = (uint8_t *) malloc (need);
    if (!store) {
        free (kvbuf);
        return -1;
    }
    *dst = *src;
    dst->store_ = store;
    dst->store_size_ = need;
    dst->kv = NULL;
    dst->kv_count = 0;
    size_t used = 0;
    for (int k = 0; k < MW_STR_COUNT; k++) {
        if (!src->str[k].ptr)
            continue;
        memcpy (store + used, src->str[k].ptr, src->str[k].len);
        store[used + src->str[k].len] = 0;
        dst->str[k].ptr = (const char *) store + used;
        used += (size_t) src->str[k].len + 1;
    }
    dst->extra = NULL;
    if (src->extra_len || kv_len) {
        if (src->extra_len)
            memcpy (store + used, src->extra, src->extra_len);
        if (kv_len)
            memcpy (store + used + src->extra_len, kvbuf, kv_len);
        dst->extra = store + used;
        dst->extra_len = src->extra_len + kv_len;
        dst->extra_count = src->extra_count + (uint32_t) src->kv_count;
    }
    dst->truncated += kv_cut;
    free (kvbuf);
    return 0;
}
