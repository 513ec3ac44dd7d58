/*  test_codec_random.c - the decoder and mw_msgpack_check on random input
    from a fixed-seed PRNG: random buffers, structured random maps, and
    random mutations of valid events. A decode returns OK or an error code
    in range with a message and an empty event; an event it accepts
    re-encodes and decodes to the same event. mw_msgpack_check agrees with
    the reference walker of the tests.

    MW_TEST_ITERATIONS (default 200000) sets the number of random buffers;
    the mutation and structured runs use half as many each.
*/
#include "codec_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    long runs;
    long codes[MW_ERR_COUNT];
    int failures;
} stats_t;

static void
report (const char *name, const stats_t *st)
{
    char line[512];
    size_t o = (size_t) snprintf (line, sizeof line, "%s: %ld runs;", name, st->runs);
    for (int c = 0; c < MW_ERR_COUNT && o < sizeof line; c++)
        if (st->codes[c])
            o += (size_t) snprintf (line + o, sizeof line - o, " %s %ld", mw_err_name (c),
                                    st->codes[c]);
    print_message ("%s\n", line);
}

//  Decode one buffer (an exact-size heap copy) and check every invariant.
static void
fuzz_one (const uint8_t *buf, size_t len, const char *topic, stats_t *st)
{
    if (st->failures > 10)
        return;
    st->runs++;
    uint8_t *copy = malloc (len ? len : 1);
    if (len)
        memcpy (copy, buf, len);
    mw_event_t d;
    mw_event_init (&d, MW_TYPE_CUSTOM);
    char err[200];
    memset (err, 'X', sizeof err);
    size_t tlen = topic ? strlen (topic) : 0;
    int rc = mw_event_decode (&d, topic, tlen, copy, len, err, sizeof err);
    free (copy);
    char why[200];
    if (rc < 0 || rc >= MW_ERR_COUNT || rc == MW_ERR_NOMEM) {
        print_error ("FAIL random: decode returned %d\n", rc);
        st->failures++;
        mw_event_release (&d);
        return;
    }
    st->codes[rc]++;
    if (rc != MW_OK) {
        if (memchr (err, '\0', sizeof err) == NULL || err[0] == '\0') {
            print_error ("FAIL random: %s without a message\n", mw_err_name (rc));
            st->failures++;
        }
        if (!event_is_empty (&d, why, sizeof why)) {
            print_error ("FAIL random: event not empty after %s: %s\n", mw_err_name (rc), why);
            st->failures++;
        }
        mw_event_release (&d);
        return;
    }
    if (!event_decoded_valid (&d, why, sizeof why)) {
        print_error ("FAIL random: accepted event is invalid: %s\n", why);
        st->failures++;
        mw_event_release (&d);
        return;
    }
    uint8_t *b2;
    size_t l2;
    uint32_t cut = 0;
    rc = encode_alloc (&d, &b2, &l2, &cut);
    if (rc != MW_OK) {
        print_error ("FAIL random: an accepted event does not re-encode: %s\n", mw_err_name (rc));
        st->failures++;
        mw_event_release (&d);
        return;
    }
    mw_event_t d2;
    mw_event_init (&d2, MW_TYPE_CUSTOM);
    rc = mw_event_decode (&d2, d.type, strlen (d.type), b2, l2, err, sizeof err);
    if (rc != MW_OK) {
        print_error ("FAIL random: re-encoded event does not decode: %s \"%s\"\n",
                     mw_err_name (rc), err);
        st->failures++;
    }
    else if (!event_equal (&d, &d2, why, sizeof why)) {
        print_error ("FAIL random: re-encoded event differs: %s\n", why);
        st->failures++;
    }
    if (cut != 0) {
        print_error ("FAIL random: re-encoding a decoded event cut %u strings\n", cut);
        st->failures++;
    }
    mw_event_release (&d2);
    mw_event_release (&d);
    free (b2);
}

//  mw_msgpack_check against the reference walker: same verdict, same size.
static int
check_one (const uint8_t *buf, size_t len, int depth)
{
    uint8_t *copy = malloc (len ? len : 1);
    if (len)
        memcpy (copy, buf, len);
    size_t size = 0, pos = 0;
    int rc = mw_msgpack_check (copy, len, depth, &size);
    int ref = ref_walk (copy, len, &pos, depth);
    free (copy);
    int bad = 0;
    if ((rc == MW_OK) != (ref == 0) || (rc == MW_OK && size != pos)
        || (rc != MW_OK && rc != MW_ERR_MALFORMED && rc != MW_ERR_TOO_DEEP)) {
        print_error ("FAIL mw_msgpack_check: %s size %zu, reference %s size %zu (len %zu)\n",
                     mw_err_name (rc), size, ref == 0 ? "ok" : ref == 1 ? "malformed" : "too_deep",
                     pos, len);
        bad = 1;
    }
    return bad;
}

//  Fragments for structured random maps.
static const char *const KEY_POOL[] = {
    "v",     "type",         "ts",       "miner",     "sid",          "seq",   "id",
    "truncated", "broker_ts", "task_id", "prompt",    "url",          "validator_ip",
    "validator_hotkey", "step", "action_type", "error", "error_message", "error_type",
    "cache_type", "endpoint", "timeout_ms", "action_count", "success", "response_time",
    "score", "execution_time", "details", "custom", "x"};
#define KEY_POOL_COUNT (sizeof KEY_POOL / sizeof KEY_POOL[0])

static const struct {
    const char *bytes;
    size_t n;
} VAL_POOL[] = {
    {"\x01", 1},         {"\x00", 1},          {"\xff", 1},          {"\xc0", 1},
    {"\xc2", 1},         {"\xc3", 1},          {"\xa1x", 2},         {"\xaatask_start", 11},
    {"\xa9my_custom", 10}, {"\xa0", 1},        {"\x90", 1},          {"\x80", 1},
    {"\x91\x91\x90", 3}, {"\x81\xa1k\x01", 4}, {"\xcb\x3f\xf0\0\0\0\0\0\0", 9},
    {"\xca\x3f\x80\0\0", 5}, {"\xcd\x01\x00", 3}, {"\xd0\x80", 2}, {"\xc4\x01z", 3},
    {"\xd4\x01\x02", 3}, {"\xd9\x02hi", 4},    {"\xdb\xff\xff\xff\xff", 5},
    {"\xdd\xff\xff\xff\xff", 5}, {"\xc1", 1},  {"\xde\x00\x01", 3}, {"\x9f", 1},
    {"\xa5\xf0\x9f\x98\x80x", 6}, {"\xa2\xc3\x28", 3},
};
#define VAL_POOL_COUNT (sizeof VAL_POOL / sizeof VAL_POOL[0])

static size_t
structured (uint64_t *rng, uint8_t *buf, size_t cap)
{
    mp_t m;
    mp_init (&m);
    uint32_t n = (uint32_t) rng_below (rng, 14);
    bool full = rng_below (rng, 2);
    if (full) {
        //  Mostly a valid header, then random pairs.
        fields_t fs;
        fs_init (&fs);
        fs_header (&fs, rng_below (rng, 2) ? "task_start" : "my_custom");
        mp_map (&m, (uint32_t) fs.n + n);
        size_t hl;
        uint8_t *h = fs_body (&fs, NULL, &hl);
        mp_raw (&m, h + 1, hl - 1);
        free (h);
        fs_free (&fs);
    }
    else
        mp_map (&m, n);
    for (uint32_t i = 0; i < n; i++) {
        if (rng_below (rng, 10))
            mp_str (&m, KEY_POOL[rng_below (rng, KEY_POOL_COUNT)]);
        else { //  a key that is not a string, or a broken one
            size_t k = rng_below (rng, VAL_POOL_COUNT);
            mp_raw (&m, VAL_POOL[k].bytes, VAL_POOL[k].n);
        }
        size_t v = rng_below (rng, VAL_POOL_COUNT);
        mp_raw (&m, VAL_POOL[v].bytes, VAL_POOL[v].n);
    }
    if (rng_below (rng, 8) == 0)
        mp_byte (&m, (uint8_t) rng_next (rng)); //  sometimes a trailing byte
    size_t len = m.sb.size < cap ? m.sb.size : cap;
    memcpy (buf, m.sb.data, len);
    mp_free (&m);
    //  Sometimes cut short.
    if (len && rng_below (rng, 6) == 0)
        len = rng_below (rng, len);
    return len;
}

static void
test_random_buffers (void **state)
{
    (void) state;
    long iterations = test_iterations (200000);
    uint64_t rng = 0x6d696e6572776174; //  fixed seed
    stats_t st = {0};
    int check_failures = 0;
    uint8_t buf[300];
    for (long i = 0; i < iterations && st.failures <= 10; i++) {
        size_t len = rng_below (&rng, sizeof buf + 1);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t) rng_next (&rng);
        //  A third of them start like a map.
        if (len && i % 3 == 1)
            buf[0] = (uint8_t) (0x80 | (buf[0] & 0x0f));
        fuzz_one (buf, len, i % 4 == 0 ? "task_start" : NULL, &st);
        if (check_failures < 10)
            check_failures += check_one (buf, len, (int) (i % 20));
    }
    report ("random buffers", &st);
    ASSERT_NO_FAILURES (st.failures + check_failures);
}

static void
test_random_structured_maps (void **state)
{
    (void) state;
    long iterations = test_iterations (200000) / 2;
    uint64_t rng = 0x7374727563747572;
    stats_t st = {0};
    int check_failures = 0;
    uint8_t buf[2048];
    for (long i = 0; i < iterations && st.failures <= 10; i++) {
        size_t len = structured (&rng, buf, sizeof buf);
        fuzz_one (buf, len, NULL, &st);
        if (check_failures < 10)
            check_failures += check_one (buf, len, MW_MAX_DEPTH);
    }
    report ("structured maps", &st);
    if (iterations >= 1000 && st.codes[MW_OK] == 0) {
        print_error ("FAIL structured maps: no input was accepted, the generator is broken\n");
        st.failures++;
    }
    ASSERT_NO_FAILURES (st.failures + check_failures);
}

static uint8_t *
seed_event (int which, size_t *len_p)
{
    mw_event_t e;
    static const mw_kv_t inner[] = {
        {.key = "a", .kind = MW_KV_INT, .val.i = -300},
        {.key = "b", .kind = MW_KV_STR, .val.s = {"\xe2\x82\xac uro", (size_t) -1}},
    };
    static const mw_kv_t kv[] = {
        {.key = "details", .kind = MW_KV_MAP, .val.list = {inner, 2}},
        {.key = "list", .kind = MW_KV_ARRAY, .val.list = {inner, 2}},
        {.key = "f", .kind = MW_KV_DOUBLE, .val.d = 0.1},
        {.key = "u", .kind = MW_KV_UINT, .val.u = 1u << 20},
    };
    switch (which) {
    case 0:
        mw_event_init (&e, MW_TYPE_TASK_START);
        mw_event_set_str (&e, MW_K_TASK_ID, "task-123");
        mw_event_set_str (&e, MW_K_PROMPT, "Login to example.com");
        mw_event_set_str (&e, MW_K_URL, "https://example.com/");
        mw_event_set_str (&e, MW_K_VALIDATOR_IP, "10.1.2.3");
        e.has |= MW_HAS_TIMEOUT_MS;
        e.timeout_ms = 30000;
        break;
    case 1:
        mw_event_init (&e, MW_TYPE_TASK_COMPLETE);
        mw_event_set_str (&e, MW_K_TASK_ID, "task-123");
        mw_event_set_str (&e, MW_K_ERROR, "timeout");
        e.has |= MW_HAS_SUCCESS | MW_HAS_RESPONSE_TIME | MW_HAS_ACTION_COUNT | MW_HAS_ID;
        e.success = false;
        e.response_time = 12.5;
        e.action_count = 4;
        e.id = 99999;
        e.truncated = 1;
        break;
    case 2:
        mw_event_init (&e, MW_TYPE_TASK_STEP);
        mw_event_set_str (&e, MW_K_TASK_ID, "task-123");
        mw_event_set_str (&e, MW_K_STEP, "navigate");
        e.kv = kv;
        e.kv_count = 4;
        break;
    default:
        mw_event_init_named (&e, "my.custom");
        e.kv = kv + 1;
        e.kv_count = 3;
        e.has |= MW_HAS_SCORE | MW_HAS_EXECUTION_TIME;
        e.score = 0.5;
        e.execution_time = 3;
        break;
    }
    mw_event_set_str (&e, MW_K_MINER, "miner-1");
    e.ts = UINT64_C (1700000000000000);
    e.sid = 0x1234567890abcdefu;
    e.seq = 1000;
    uint8_t *b;
    assert_int_equal (encode_alloc (&e, &b, len_p, NULL), MW_OK);
    return b;
}

static void
test_random_mutations (void **state)
{
    (void) state;
    long iterations = test_iterations (200000) / 2;
    uint64_t rng = 0x6d75746174696f6e;
    stats_t st = {0};
    int check_failures = 0;
    uint8_t *seeds[4];
    size_t seed_len[4];
    for (int s = 0; s < 4; s++) {
        seeds[s] = seed_event (s, &seed_len[s]);
        mw_event_t d;
        assert_int_equal (check_decode_ok ("seed", NULL, seeds[s], seed_len[s], &d), 0);
        mw_event_release (&d);
    }
    uint8_t buf[1024];
    for (long i = 0; i < iterations && st.failures <= 10; i++) {
        int s = (int) rng_below (&rng, 4);
        size_t len = seed_len[s];
        memcpy (buf, seeds[s], len);
        int mutations = 1 + (int) rng_below (&rng, 3);
        if (i % 2 == 0)
            mutations = 1; //  half of them: a single-byte mutation
        for (int k = 0; k < mutations && len; k++) {
            size_t pos = rng_below (&rng, len);
            switch (rng_below (&rng, 6)) {
            case 0:
            case 1:
                buf[pos] = (uint8_t) rng_next (&rng);
                break;
            case 2:
                buf[pos] ^= (uint8_t) (1u << rng_below (&rng, 8));
                break;
            case 3: //  a boundary value
                buf[pos] = (uint8_t[]){0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
                                       0xdb, 0xdd, 0xdf, 0xff}[rng_below (&rng, 14)];
                break;
            case 4: //  delete a byte
                memmove (buf + pos, buf + pos + 1, len - pos - 1);
                len--;
                break;
            case 5: //  insert a byte
                if (len < sizeof buf) {
                    memmove (buf + pos + 1, buf + pos, len - pos);
                    buf[pos] = (uint8_t) rng_next (&rng);
                    len++;
                }
                break;
            }
        }
        fuzz_one (buf, len, i % 3 == 0 ? NULL : (s == 0 ? "task_start" : NULL), &st);
        if (check_failures < 10)
            check_failures += check_one (buf, len, MW_MAX_DEPTH);
    }
    report ("mutations", &st);
    for (int s = 0; s < 4; s++)
        free (seeds[s]);
    ASSERT_NO_FAILURES (st.failures + check_failures);
}

//  ---------------------------------------------------------------------
//  Random events built through the API: whatever mw_event_encode accepts,
//  mw_event_decode accepts, with the same fields.

static const char *const KV_KEYS[] = {
    "a", "b", "c", "details", "x y", "\xc3\xa9t\xc3\xa9", "prompt", "task_id", "success",
    "score", "timeout_ms", "error", "seq", "",
};
#define KV_KEY_COUNT (sizeof KV_KEYS / sizeof KV_KEYS[0])

typedef struct {
    mw_kv_t items[512];
    size_t used;
    char *big; //  a long string with multi-byte characters
} kv_pool_t;

static void
random_kv (uint64_t *rng, kv_pool_t *pool, mw_kv_t *kv, int depth)
{
    kv->key = KV_KEYS[rng_below (rng, KV_KEY_COUNT)];
    int kind = (int) rng_below (rng, depth > 0 ? 8 : 6);
    switch (kind) {
    case 0: kv->kind = MW_KV_NIL; break;
    case 1: kv->kind = MW_KV_BOOL; kv->val.b = rng_below (rng, 2); break;
    case 2: kv->kind = MW_KV_INT; kv->val.i = (int64_t) rng_next (rng) >> rng_below (rng, 64); break;
    case 3: kv->kind = MW_KV_UINT; kv->val.u = rng_next (rng) >> rng_below (rng, 64); break;
    case 4: kv->kind = MW_KV_DOUBLE; kv->val.d = (double) (int64_t) rng_next (rng) / 1024.0; break;
    case 5:
        kv->kind = MW_KV_STR;
        kv->val.s.ptr = pool->big;
        kv->val.s.len = rng_below (rng, 4) ? rng_below (rng, 40) : rng_below (rng, 6000);
        break;
    default: {
        kv->kind = kind == 6 ? MW_KV_MAP : MW_KV_ARRAY;
        size_t n = rng_below (rng, 4);
        if (pool->used + n > sizeof pool->items / sizeof pool->items[0])
            n = 0;
        mw_kv_t *items = &pool->items[pool->used];
        pool->used += n;
        for (size_t i = 0; i < n; i++)
            random_kv (rng, pool, &items[i], depth - 1);
        if (kind == 6) //  map item keys: any string
            for (size_t i = 0; i < n; i++)
                if (!items[i].key[0])
                    items[i].key = "e";
        kv->val.list.items = n ? items : NULL;
        kv->val.list.count = n;
        break;
    }
    }
}

static void
test_random_encode (void **state)
{
    (void) state;
    long iterations = test_iterations (200000) / 20;
    uint64_t rng = 0x656e636f64652121;
    kv_pool_t *pool = calloc (1, sizeof *pool);
    pool->big = malloc (6001);
    for (size_t i = 0; i < 6000; i++)
        pool->big[i] = (i % 7 == 3) ? '\xc3' : (i % 7 == 4) ? '\xa9' : (char) ('a' + i % 26);
    pool->big[6000] = '\0';
    int failures = 0;
    long accepted = 0, refused[MW_ERR_COUNT] = {0};
    uint8_t *out = malloc (MW_MAX_BODY);
    for (long it = 0; it < iterations && failures < 10; it++) {
        mw_event_t e;
        mw_type_t kind = (mw_type_t) rng_below (&rng, MW_TYPE_COUNT);
        if (kind == MW_TYPE_CUSTOM)
            mw_event_init_named (&e, "random.custom");
        else
            mw_event_init (&e, kind);
        e.ts = rng_next (&rng);
        e.sid = rng_next (&rng);
        e.seq = rng_next (&rng) >> rng_below (&rng, 64);
        for (int k = 0; k < MW_STR_COUNT; k++)
            if (k == MW_K_MINER || rng_below (&rng, 3) == 0) {
                size_t off = rng_below (&rng, 100);
                size_t n = rng_below (&rng, 4) ? rng_below (&rng, 150) : rng_below (&rng, 5000);
                //  set_str takes NUL-terminated strings: point into a copy.
                e.str[k].ptr = pool->big + off;
                e.str[k].len = (uint32_t) n;
            }
        e.has = (uint32_t) rng_next (&rng) & 0xff;
        if (rng_below (&rng, 5)) { //  mostly with what every type requires
            static const int req[] = {MW_K_TASK_ID, MW_K_STEP, MW_K_ERROR_MESSAGE,
                                      MW_K_VALIDATOR_IP};
            for (size_t r = 0; r < 4; r++)
                if (!e.str[req[r]].ptr) {
                    e.str[req[r]].ptr = pool->big + r;
                    e.str[req[r]].len = 10;
                }
            e.has |= MW_HAS_ACTION_COUNT | MW_HAS_SUCCESS;
        }
        e.timeout_ms = rng_next (&rng);
        e.action_count = rng_next (&rng) >> 40;
        e.success = rng_below (&rng, 2);
        e.response_time = (double) rng_below (&rng, 100000) / 1000.0;
        e.score = (double) rng_below (&rng, 1000) / 1000.0;
        e.execution_time = (double) rng_below (&rng, 100000) / 100.0;
        e.id = rng_next (&rng);
        e.broker_ts = rng_next (&rng) >> 20;
        e.truncated = rng_below (&rng, 4) == 0 ? (uint32_t) rng_below (&rng, 5) : 0;
        mw_kv_t top[8];
        pool->used = 0;
        size_t nkv = rng_below (&rng, 9);
        static const char *const unique[] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
        for (size_t i = 0; i < nkv; i++) {
            random_kv (&rng, pool, &top[i], (int) rng_below (&rng, MW_MAX_DEPTH + 3));
            //  Mostly distinct custom keys; sometimes a known, reserved,
            //  empty or repeated one.
            if (rng_below (&rng, 8))
                top[i].key = unique[i];
        }
        e.kv = top;
        e.kv_count = nkv;
        size_t cap = rng_below (&rng, 8) ? MW_MAX_BODY : rng_below (&rng, 400);
        size_t len = 0;
        uint32_t cut = 0;
        int rc = mw_event_encode (&e, out, cap, &len, &cut);
        if (rc < 0 || rc >= MW_ERR_COUNT) {
            print_error ("FAIL random encode: returned %d\n", rc);
            failures++;
            continue;
        }
        if (rc != MW_OK) {
            refused[rc]++;
            continue;
        }
        accepted++;
        if (len > cap) {
            print_error ("FAIL random encode: %zu bytes into a cap of %zu\n", len, cap);
            failures++;
            continue;
        }
        mw_event_t d;
        char err[200] = "";
        mw_event_init (&d, MW_TYPE_CUSTOM);
        rc = mw_event_decode (&d, e.type, strlen (e.type), out, len, err, sizeof err);
        if (rc != MW_OK) {
            print_error ("FAIL random encode #%ld: accepted by the encoder, refused by the decoder: "
                         "%s \"%s\"\n",
                         it, mw_err_name (rc), err);
            failures++;
            continue;
        }
        char why[200];
        if (!event_decoded_valid (&d, why, sizeof why)) {
            print_error ("FAIL random encode #%ld: %s\n", it, why);
            failures++;
        }
        if (d.ts != e.ts || d.sid != e.sid || d.seq != e.seq || d.kind != e.kind
            || strcmp (d.type, e.type) != 0) {
            print_error ("FAIL random encode #%ld: header differs\n", it);
            failures++;
        }
        for (int k = 0; k < MW_STR_COUNT; k++) {
            if (!e.str[k].ptr)
                continue;
            size_t limit = mw_str_key_limit ((mw_str_key_t) k);
            size_t want = e.str[k].len <= limit ? e.str[k].len : 0;
            if (!d.str[k].ptr || (want && d.str[k].len != want)
                || d.str[k].len > limit || memcmp (d.str[k].ptr, e.str[k].ptr, d.str[k].len) != 0) {
                print_error ("FAIL random encode #%ld: %s differs\n", it,
                             mw_str_key_name ((mw_str_key_t) k));
                failures++;
            }
        }
        if (d.truncated < e.truncated + cut) {
            print_error ("FAIL random encode #%ld: truncated %u < %u + %u\n", it, d.truncated,
                         e.truncated, cut);
            failures++;
        }
        mw_event_release (&d);
    }
    char line[400];
    size_t o = (size_t) snprintf (line, sizeof line, "random encode: %ld accepted; refused:",
                                  accepted);
    for (int c = 1; c < MW_ERR_COUNT && o < sizeof line; c++)
        if (refused[c])
            o += (size_t) snprintf (line + o, sizeof line - o, " %s %ld", mw_err_name (c),
                                    refused[c]);
    print_message ("%s\n", line);
    free (out);
    free (pool->big);
    free (pool);
    ASSERT_NO_FAILURES (failures);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_random_buffers),
        cmocka_unit_test (test_random_structured_maps),
        cmocka_unit_test (test_random_mutations),
        cmocka_unit_test (test_random_encode),
    };
    return cmocka_run_group_tests_name ("codec_random", tests, NULL, NULL);
}
