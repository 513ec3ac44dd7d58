/*  test_codec.c - the codec of wire protocol v1: names, round trips of every
    type and key, decoding of bodies made by an independent encoder
    (msgpack-c's packer), required keys, copy and release.
*/
#include "codec_keys.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MINER "miner-7"
#define TS UINT64_C (1700000000123456)
#define SID UINT64_C (0xfedcba9876543210)
#define SEQ 42

static void
set_header (mw_event_t *e)
{
    mw_event_set_str (e, MW_K_MINER, MINER);
    e->ts = TS;
    e->sid = SID;
    e->seq = SEQ;
}

static bool
in_list (const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n && list[i]; i++)
        if (strcmp (list[i], name) == 0)
            return true;
    return false;
}

static bool
spec_has_key (const type_spec_t *t, const char *name)
{
    return in_list (t->required, 3, name) || in_list (t->optional, 8, name);
}

//  Encode src, decode it (with its topic), compare with src, re-encode the
//  decoded event (must be byte-identical: extras carried untouched), decode
//  that without a topic and compare. expected_cut: strings cut at encode.
//  identical: whether the first encoding must equal the re-encoding (not so
//  when kv holds known keys, which come back as fields, in field order).
static int
roundtrip (const char *label, const mw_event_t *src, uint32_t expected_cut, bool identical)
{
    int bad = 0;
    uint8_t *b1 = NULL, *b2 = NULL;
    size_t l1 = 0, l2 = 0;
    uint32_t cut = 12345;
    char why[256];
    int rc = encode_alloc (src, &b1, &l1, &cut);
    if (rc != MW_OK) {
        print_error ("FAIL %s: encode returned %s\n", label, mw_err_name (rc));
        return 1;
    }
    if (cut != expected_cut) {
        print_error ("FAIL %s: encode cut %u strings, expected %u\n", label, cut, expected_cut);
        bad = 1;
    }
    mw_event_t d1, d2;
    if (check_decode_ok (label, src->type, b1, l1, &d1) != 0) {
        free (b1);
        return 1;
    }
    mw_event_t expect = *src;
    expect.truncated = src->truncated + expected_cut;
    //  Strings over their limit come back cut; compare the rest exactly.
    for (int k = 0; k < MW_STR_COUNT; k++)
        if (expect.str[k].ptr && expect.str[k].len > mw_str_key_limit ((mw_str_key_t) k))
            expect.str[k] = d1.str[k];
    if (!decoded_matches_built (&d1, &expect, why, sizeof why)) {
        print_error ("FAIL %s: decoded event differs from the source: %s\n", label, why);
        bad = 1;
    }
    rc = encode_alloc (&d1, &b2, &l2, &cut);
    if (rc != MW_OK) {
        print_error ("FAIL %s: re-encoding the decoded event returned %s\n", label,
                     mw_err_name (rc));
        bad = 1;
    }
    else {
        if (cut != 0) {
            print_error ("FAIL %s: re-encoding cut %u strings again\n", label, cut);
            bad = 1;
        }
        if (identical && (l1 != l2 || memcmp (b1, b2, l1) != 0)) {
            print_error ("FAIL %s: re-encoding of the decoded event is not byte-identical "
                         "(%zu vs %zu bytes)\n",
                         label, l1, l2);
            bad = 1;
        }
        if (check_decode_ok (label, NULL, b2, l2, &d2) == 0) {
            if (!event_equal (&d1, &d2, why, sizeof why)) {
                print_error ("FAIL %s: decode(encode(decoded)) differs: %s\n", label, why);
                bad = 1;
            }
            mw_event_release (&d2);
        }
        else
            bad = 1;
    }
    mw_event_release (&d1);
    free (b1);
    free (b2);
    return bad;
}

//  ---------------------------------------------------------------------
//  Names

static void
test_err_names (void **state)
{
    (void) state;
    for (int i = 0; i < MW_ERR_COUNT; i++) {
        const char *a = mw_err_name (i);
        assert_non_null (a);
        assert_true (strlen (a) > 0);
        assert_string_not_equal (a, "unknown");
        for (size_t j = 0; a[j]; j++) //  usable as a metric label
            assert_true ((a[j] >= 'a' && a[j] <= 'z') || a[j] == '_');
        for (int j = 0; j < i; j++)
            assert_string_not_equal (a, mw_err_name (j));
    }
    assert_string_equal (mw_err_name (MW_ERR_TOO_LARGE), "too_large");
    assert_string_equal (mw_err_name (MW_ERR_COUNT), "unknown");
    assert_string_equal (mw_err_name (-1), "unknown");
    assert_string_equal (mw_err_name (1000000), "unknown");
}

static void
test_type_and_key_names (void **state)
{
    (void) state;
    for (size_t i = 0; i < TYPE_COUNT; i++) {
        const type_spec_t *t = &TYPES[i];
        assert_string_equal (mw_type_name (t->kind), t->name);
        assert_int_equal (mw_type_from_name (t->name, strlen (t->name)), t->kind);
        //  Only the given length counts.
        char longer[80];
        snprintf (longer, sizeof longer, "%sX", t->name ? t->name : "");
        assert_int_equal (mw_type_from_name (longer, strlen (t->name)), t->kind);
        assert_int_equal (mw_type_from_name (longer, strlen (longer)), MW_TYPE_CUSTOM);
        assert_int_equal (mw_type_from_name (t->name, strlen (t->name) - 1), MW_TYPE_CUSTOM);
        assert_int_equal (mw_type_name_valid (t->name, strlen (t->name)), 0);
    }
    assert_string_equal (mw_type_name (MW_TYPE_CUSTOM), "");
    assert_int_equal (mw_type_from_name ("my_event", 8), MW_TYPE_CUSTOM);
    assert_int_equal (mw_type_from_name ("", 0), MW_TYPE_CUSTOM);
    assert_int_equal (mw_type_from_name ("TASK_START", 10), MW_TYPE_CUSTOM);

    static const char *const names[MW_STR_COUNT] = {
        "miner",        "task_id", "prompt",        "url",        "validator_ip",
        "validator_hotkey", "step", "action_type", "error",      "error_message",
        "error_type",   "cache_type", "endpoint"};
    for (int k = 0; k < MW_STR_COUNT; k++) {
        assert_string_equal (mw_str_key_name ((mw_str_key_t) k), names[k]);
        size_t limit = k == MW_K_TASK_ID ? 128 : k == MW_K_MINER ? 64 : 4096;
        assert_int_equal (mw_str_key_limit ((mw_str_key_t) k), limit);
    }
    assert_int_equal (MW_MAX_STR, 4096);
    assert_int_equal (MW_MAX_BODY, 65536);
    assert_int_equal (MW_MAX_TASK_ID, 128);
    assert_int_equal (MW_MAX_MINER, 64);
    assert_int_equal (MW_PROTOCOL_VERSION, 1);
}

static void
test_init_and_set_str (void **state)
{
    (void) state;
    mw_event_t e;
    for (size_t i = 0; i < TYPE_COUNT; i++) {
        mw_event_init (&e, TYPES[i].kind);
        assert_int_equal (e.kind, TYPES[i].kind);
        assert_string_equal (e.type, TYPES[i].name);
        assert_int_equal (e.has, 0);
        assert_null (e.str[MW_K_TASK_ID].ptr);
        assert_null (e.store_);
        assert_int_equal (mw_event_init_named (&e, TYPES[i].name), 0);
        assert_int_equal (e.kind, TYPES[i].kind);
        assert_string_equal (e.type, TYPES[i].name);
    }
    assert_int_equal (mw_event_init_named (&e, "my.custom-Event_1"), 0);
    assert_int_equal (e.kind, MW_TYPE_CUSTOM);
    assert_string_equal (e.type, "my.custom-Event_1");
    assert_int_equal (mw_event_init_named (&e, "$heartbeat"), -1);
    assert_int_equal (mw_event_init_named (&e, ""), -1);
    assert_int_equal (mw_event_init_named (&e, "a b"), -1);

    mw_event_set_str (&e, MW_K_PROMPT, "hello");
    assert_non_null (e.str[MW_K_PROMPT].ptr);
    assert_int_equal (e.str[MW_K_PROMPT].len, 5);
    mw_event_set_str (&e, MW_K_PROMPT, "");
    assert_non_null (e.str[MW_K_PROMPT].ptr);
    assert_int_equal (e.str[MW_K_PROMPT].len, 0);
    mw_event_set_str (&e, MW_K_PROMPT, NULL);
    assert_null (e.str[MW_K_PROMPT].ptr);
    assert_int_equal (e.str[MW_K_PROMPT].len, 0);
    //  Released without storage: still fine.
    mw_event_release (&e);
    char why[200];
    assert_true (event_is_empty (&e, why, sizeof why));
}

//  ---------------------------------------------------------------------
//  Round trips through mw_event_encode / mw_event_decode

static const mw_kv_t DETAILS_ITEMS[] = {
    {.key = "selector", .kind = MW_KV_STR, .val.s = {"#login", (size_t) -1}},
    {.key = "attempt", .kind = MW_KV_UINT, .val.u = 2},
};
static const mw_kv_t DETAILS_KV[] = {
    {.key = "details", .kind = MW_KV_MAP, .val.list = {DETAILS_ITEMS, 2}},
};

static void
build_full (mw_event_t *e, const type_spec_t *t)
{
    mw_event_init (e, t->kind);
    set_header (e);
    for (size_t i = 0; i < 3 && t->required[i]; i++)
        built_set (e, key_desc (t->required[i]));
    for (size_t i = 0; i < 8 && t->optional[i]; i++)
        built_set (e, key_desc (t->optional[i]));
    if (spec_has_key (t, "details")) {
        e->kv = DETAILS_KV;
        e->kv_count = 1;
    }
}

static void
test_roundtrip_each_type (void **state)
{
    (void) state;
    int failures = 0;
    for (size_t i = 0; i < TYPE_COUNT; i++) {
        const type_spec_t *t = &TYPES[i];
        mw_event_t e;
        char label[128];
        build_full (&e, t);
        snprintf (label, sizeof label, "%s, every key of the type", t->name);
        failures += roundtrip (label, &e, 0, true);

        //  Required keys only (for validator_connection, each one alone).
        if (t->one_of) {
            for (size_t r = 0; r < 3 && t->required[r]; r++) {
                mw_event_init (&e, t->kind);
                set_header (&e);
                built_set (&e, key_desc (t->required[r]));
                snprintf (label, sizeof label, "%s with only %s", t->name, t->required[r]);
                failures += roundtrip (label, &e, 0, true);
            }
        }
        else {
            mw_event_init (&e, t->kind);
            set_header (&e);
            for (size_t r = 0; r < 3 && t->required[r]; r++)
                built_set (&e, key_desc (t->required[r]));
            snprintf (label, sizeof label, "%s, required keys only", t->name);
            failures += roundtrip (label, &e, 0, true);
        }
    }
    ASSERT_NO_FAILURES (failures);
}

//  kv of every kind, nested.
static const mw_kv_t INNER_MAP[] = {
    {.key = "deep", .kind = MW_KV_DOUBLE, .val.d = -2.5},
    {.key = "s", .kind = MW_KV_STR, .val.s = {"x\0y", 3}},
};
static const mw_kv_t ARRAY_ITEMS[] = {
    {.key = NULL, .kind = MW_KV_STR, .val.s = {"elem", (size_t) -1}},
    {.key = NULL, .kind = MW_KV_NIL},
    {.key = "ignored", .kind = MW_KV_BOOL, .val.b = false},
    {.key = NULL, .kind = MW_KV_INT, .val.i = -129},
    {.key = NULL, .kind = MW_KV_UINT, .val.u = UINT64_MAX},
    {.key = NULL, .kind = MW_KV_MAP, .val.list = {INNER_MAP, 2}},
    {.key = NULL, .kind = MW_KV_ARRAY, .val.list = {NULL, 0}},
};
static const mw_kv_t OUTER_MAP[] = {
    {.key = "a", .kind = MW_KV_INT, .val.i = 100000},
    {.key = "b", .kind = MW_KV_ARRAY, .val.list = {ARRAY_ITEMS, 7}},
    {.key = "c", .kind = MW_KV_MAP, .val.list = {NULL, 0}},
};
static const mw_kv_t ALL_KV[] = {
    {.key = "k_nil", .kind = MW_KV_NIL},
    {.key = "k_true", .kind = MW_KV_BOOL, .val.b = true},
    {.key = "k_false", .kind = MW_KV_BOOL, .val.b = false},
    {.key = "k_int_neg", .kind = MW_KV_INT, .val.i = -1},
    {.key = "k_int_min", .kind = MW_KV_INT, .val.i = INT64_MIN},
    {.key = "k_int_pos", .kind = MW_KV_INT, .val.i = 5},
    {.key = "k_uint_0", .kind = MW_KV_UINT, .val.u = 0},
    {.key = "k_uint_max", .kind = MW_KV_UINT, .val.u = UINT64_MAX},
    {.key = "k_double", .kind = MW_KV_DOUBLE, .val.d = 3.25},
    {.key = "k_neg_zero", .kind = MW_KV_DOUBLE, .val.d = -0.0},
    {.key = "k_inf", .kind = MW_KV_DOUBLE, .val.d = INFINITY},
    {.key = "k_str_nul", .kind = MW_KV_STR, .val.s = {"h\xc3\xa9llo", (size_t) -1}},
    {.key = "k_str_len", .kind = MW_KV_STR, .val.s = {"ab\0cd-ignored", 5}},
    {.key = "k_str_empty", .kind = MW_KV_STR, .val.s = {"", 0}},
    {.key = "k_map", .kind = MW_KV_MAP, .val.list = {OUTER_MAP, 3}},
    {.key = "k_array", .kind = MW_KV_ARRAY, .val.list = {ARRAY_ITEMS, 7}},
    {.key = "k_empty_array", .kind = MW_KV_ARRAY, .val.list = {NULL, 0}},
    {.key = "x.custom-key with spaces \xe2\x82\xac", .kind = MW_KV_UINT, .val.u = 1},
};
#define ALL_KV_COUNT (sizeof ALL_KV / sizeof ALL_KV[0])

static void
test_roundtrip_custom_every_key (void **state)
{
    (void) state;
    int failures = 0;
    mw_event_t e;
    assert_int_equal (mw_event_init_named (&e, "my.custom-Event_1"), 0);
    set_header (&e);
    for (size_t i = 0; i < KEY_COUNT; i++)
        built_set (&e, &KEYS[i]);
    e.kv = ALL_KV;
    e.kv_count = ALL_KV_COUNT;
    failures += roundtrip ("custom type, every key and kv of every kind", &e, 0, true);

    //  Every known type also carries every key and kv.
    for (size_t t = 0; t < TYPE_COUNT; t++) {
        mw_event_init (&e, TYPES[t].kind);
        set_header (&e);
        for (size_t i = 0; i < KEY_COUNT; i++)
            built_set (&e, &KEYS[i]);
        e.kv = ALL_KV;
        e.kv_count = ALL_KV_COUNT;
        failures += roundtrip (TYPES[t].name, &e, 0, true);
    }

    //  Each kv alone.
    for (size_t i = 0; i < ALL_KV_COUNT; i++) {
        assert_int_equal (mw_event_init_named (&e, "kv_alone"), 0);
        set_header (&e);
        e.kv = &ALL_KV[i];
        e.kv_count = 1;
        failures += roundtrip (ALL_KV[i].key, &e, 0, true);
    }
    ASSERT_NO_FAILURES (failures);
}

static void
test_roundtrip_kv_nesting_limit (void **state)
{
    (void) state;
    int failures = 0;
    //  MW_MAX_DEPTH nested maps/arrays in one carried value are allowed.
    mw_kv_t chain[MW_MAX_DEPTH + 1];
    for (int kind = 0; kind < 2; kind++) {
        for (int i = 0; i <= MW_MAX_DEPTH; i++) {
            chain[i].key = "n";
            chain[i].kind = kind ? MW_KV_MAP : MW_KV_ARRAY;
            chain[i].val.list.items = i < MW_MAX_DEPTH ? &chain[i + 1] : NULL;
            chain[i].val.list.count = i < MW_MAX_DEPTH ? 1 : 0;
        }
        //  chain[1..MAX] is MAX containers deep.
        mw_event_t e;
        assert_int_equal (mw_event_init_named (&e, "nesting"), 0);
        set_header (&e);
        e.kv = &chain[1];
        e.kv_count = 1;
        failures += roundtrip (kind ? "kv maps at MW_MAX_DEPTH" : "kv arrays at MW_MAX_DEPTH",
                               &e, 0, true);
        //  One more is refused by the encoder (never sent undecodable).
        e.kv = &chain[0];
        uint8_t *b;
        size_t l;
        int rc = encode_alloc (&e, &b, &l, NULL);
        if (rc == MW_OK) {
            print_error ("FAIL kv nested MW_MAX_DEPTH+1 deep encoded (the decoder refuses it)\n");
            free (b);
            failures++;
        }
    }
    ASSERT_NO_FAILURES (failures);
}

static void
test_roundtrip_extremes (void **state)
{
    (void) state;
    int failures = 0;
    mw_event_t e;
    static const double doubles[] = {0.0, -0.0, 1e308, -4.9e-324, INFINITY, -INFINITY, 1.0 / 3};
    for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++) {
        mw_event_init (&e, MW_TYPE_TASK_COMPLETE);
        set_header (&e);
        mw_event_set_str (&e, MW_K_TASK_ID, "t");
        e.has = MW_HAS_SUCCESS | MW_HAS_RESPONSE_TIME | MW_HAS_SCORE | MW_HAS_EXECUTION_TIME
                | MW_HAS_ACTION_COUNT | MW_HAS_TIMEOUT_MS | MW_HAS_ID | MW_HAS_BROKER_TS;
        e.success = false; //  present and false
        e.response_time = e.score = e.execution_time = doubles[i];
        e.action_count = i ? UINT64_MAX : 0;
        e.timeout_ms = i ? UINT64_MAX : 0;
        e.id = i ? UINT64_MAX : 0;
        e.broker_ts = i ? UINT64_MAX : 0;
        e.ts = i ? UINT64_MAX : 0;
        e.sid = i ? UINT64_MAX : 0;
        e.seq = i ? UINT64_MAX : 0;
        char label[64];
        snprintf (label, sizeof label, "extremes #%zu (%g)", i, doubles[i]);
        failures += roundtrip (label, &e, 0, true);
    }
    //  NaN is carried bit for bit.
    mw_event_init (&e, MW_TYPE_TASK_FEEDBACK);
    set_header (&e);
    mw_event_set_str (&e, MW_K_TASK_ID, "t");
    e.has = MW_HAS_SCORE;
    e.score = NAN;
    failures += roundtrip ("NaN score", &e, 0, true);
    //  Empty strings are present, not absent.
    mw_event_init (&e, MW_TYPE_TASK_START);
    set_header (&e);
    for (int k = 0; k < MW_STR_COUNT; k++)
        mw_event_set_str (&e, (mw_str_key_t) k, "");
    failures += roundtrip ("every string empty", &e, 0, true);
    ASSERT_NO_FAILURES (failures);
}

static void
test_roundtrip_optional_only_with_has_bit (void **state)
{
    (void) state;
    mw_event_t e, d;
    mw_event_init (&e, MW_TYPE_TASK_START);
    set_header (&e);
    mw_event_set_str (&e, MW_K_TASK_ID, "t");
    //  Values without their has bits are not sent.
    e.id = 77;
    e.broker_ts = 78;
    e.timeout_ms = 5;
    e.action_count = 6;
    e.success = true;
    e.score = 1.0;
    e.response_time = 2.0;
    e.execution_time = 3.0;
    uint8_t *b;
    size_t l;
    assert_int_equal (encode_alloc (&e, &b, &l, NULL), MW_OK);
    assert_int_equal (check_decode_ok ("no has bits", "task_start", b, l, &d), 0);
    assert_int_equal (d.has, 0);
    mw_event_release (&d);
    free (b);
    //  Each bit alone.
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (!KEYS[i].hasbit)
            continue;
        mw_event_init (&e, MW_TYPE_TASK_START);
        set_header (&e);
        mw_event_set_str (&e, MW_K_TASK_ID, "t");
        built_set (&e, &KEYS[i]);
        assert_int_equal (encode_alloc (&e, &b, &l, NULL), MW_OK);
        assert_int_equal (check_decode_ok (KEYS[i].name, NULL, b, l, &d), 0);
        assert_int_equal (d.has, KEYS[i].hasbit);
        char why[200];
        if (!decoded_has_sample (&d, &KEYS[i], why, sizeof why))
            fail_msg ("%s", why);
        mw_event_release (&d);
        free (b);
    }
}

#define K16 "kkkkkkkkkkkkkkkk"
#define K256 K16 K16 K16 K16 K16 K16 K16 K16 K16 K16 K16 K16 K16 K16 K16 K16
static const char LONG_KEY[] = K256 "k"; //  MW_MAX_KEY + 1 bytes
static const mw_kv_t NULL_KEY_ITEM[] = {{.key = NULL, .kind = MW_KV_NIL}};

static void
test_encode_bad_kv (void **state)
{
    assert_int_equal (strlen (LONG_KEY), MW_MAX_KEY + 1);
    (void) state;
    int failures = 0;
    mw_event_t e;
    uint8_t *b;
    size_t l;
    struct {
        const char *label;
        mw_kv_t kv[2];
        size_t n;
        int expected;
    } cases[] = {
        {"kv v", {{.key = "v", .kind = MW_KV_UINT, .val.u = 1}}, 1, MW_ERR_KEY},
        {"kv type", {{.key = "type", .kind = MW_KV_STR, .val.s = {"x", 1}}}, 1, MW_ERR_KEY},
        {"kv ts", {{.key = "ts", .kind = MW_KV_UINT, .val.u = 1}}, 1, MW_ERR_KEY},
        {"kv miner", {{.key = "miner", .kind = MW_KV_STR, .val.s = {"x", 1}}}, 1, MW_ERR_KEY},
        {"kv sid", {{.key = "sid", .kind = MW_KV_UINT, .val.u = 1}}, 1, MW_ERR_KEY},
        {"kv seq", {{.key = "seq", .kind = MW_KV_UINT, .val.u = 1}}, 1, MW_ERR_KEY},
        {"kv repeated",
         {{.key = "x", .kind = MW_KV_UINT, .val.u = 1}, {.key = "x", .kind = MW_KV_NIL}},
         2,
         MW_ERR_KEY},
        {"kv task_id int", {{.key = "task_id", .kind = MW_KV_INT, .val.i = 1}}, 1,
         MW_ERR_FIELD_TYPE},
        {"kv prompt bool", {{.key = "prompt", .kind = MW_KV_BOOL, .val.b = true}}, 1,
         MW_ERR_FIELD_TYPE},
        {"kv timeout_ms str", {{.key = "timeout_ms", .kind = MW_KV_STR, .val.s = {"1", 1}}}, 1,
         MW_ERR_FIELD_TYPE},
        {"kv action_count negative",
         {{.key = "action_count", .kind = MW_KV_INT, .val.i = -1}},
         1,
         MW_ERR_FIELD_TYPE},
        {"kv success uint", {{.key = "success", .kind = MW_KV_UINT, .val.u = 1}}, 1,
         MW_ERR_FIELD_TYPE},
        {"kv score str", {{.key = "score", .kind = MW_KV_STR, .val.s = {"1", 1}}}, 1,
         MW_ERR_FIELD_TYPE},
        {"kv response_time map",
         {{.key = "response_time", .kind = MW_KV_MAP, .val.list = {NULL, 0}}},
         1,
         MW_ERR_FIELD_TYPE},
        {"kv empty key", {{.key = "", .kind = MW_KV_UINT, .val.u = 1}}, 1, MW_ERR_KEY},
        {"kv NULL key", {{.key = NULL, .kind = MW_KV_UINT, .val.u = 1}}, 1, MW_ERR_KEY},
        {"kv key of MW_MAX_KEY + 1 bytes",
         {{.key = LONG_KEY, .kind = MW_KV_UINT, .val.u = 1}},
         1,
         MW_ERR_KEY},
        {"kv map item without a key",
         {{.key = "m", .kind = MW_KV_MAP, .val.list = {NULL_KEY_ITEM, 1}}},
         1,
         MW_ERR_KEY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal (mw_event_init_named (&e, "bad_kv"), 0);
        set_header (&e);
        e.kv = cases[i].kv;
        e.kv_count = cases[i].n;
        uint8_t out[4096];
        memset (out, 0xAA, sizeof out);
        size_t len = 0;
        int rc = mw_event_encode (&e, out, sizeof out, &len, NULL);
        if (rc != cases[i].expected) {
            print_error ("FAIL encode %s: expected %s, got %s\n", cases[i].label,
                         mw_err_name (cases[i].expected), mw_err_name (rc));
            failures++;
        }
        //  The same kv is refused by mw_event_copy.
        mw_event_t c;
        mw_event_init (&c, MW_TYPE_CUSTOM);
        if (mw_event_copy (&c, &e) != -1) {
            print_error ("FAIL copy %s: accepted\n", cases[i].label);
            failures++;
        }
        mw_event_release (&c);
    }
    //  Encoding requires what decoding requires: an event the decoder would
    //  refuse as missing a key is not sent either.
    mw_event_init (&e, MW_TYPE_TASK_START);
    set_header (&e);
    int rc = encode_alloc (&e, &b, &l, NULL);
    if (rc == MW_OK) {
        free (b);
        print_error ("FAIL encode task_start without task_id: ok\n");
        failures++;
    }
    ASSERT_NO_FAILURES (failures);
}

//  Whatever mw_event_encode accepts, mw_event_decode must accept: the
//  publisher never sends a body the broker drops.
static int
encode_then_decode (const char *label, const mw_event_t *e)
{
    uint8_t *b;
    size_t l;
    int rc = encode_alloc (e, &b, &l, NULL);
    if (rc != MW_OK)
        return 0; //  refused: fine
    mw_event_t d;
    int bad = check_decode_ok (label, NULL, b, l, &d);
    if (bad)
        print_error ("FAIL %s: mw_event_encode returned ok for a body mw_event_decode refuses\n",
                     label);
    else
        mw_event_release (&d);
    free (b);
    return bad;
}

static void
test_encode_output_always_decodes (void **state)
{
    (void) state;
    int failures = 0;
    mw_event_t e;

    //  A known key given both as a field and as a nil kv.
    static const mw_kv_t nil_task_id[] = {{.key = "task_id", .kind = MW_KV_NIL}};
    mw_event_init (&e, MW_TYPE_TASK_START);
    set_header (&e);
    mw_event_set_str (&e, MW_K_TASK_ID, "t1");
    e.kv = nil_task_id;
    e.kv_count = 1;
    failures += encode_then_decode ("task_id set and kv {task_id: nil}", &e);

    static const mw_kv_t nil_success[] = {{.key = "success", .kind = MW_KV_NIL}};
    mw_event_init (&e, MW_TYPE_TASK_COMPLETE);
    set_header (&e);
    mw_event_set_str (&e, MW_K_TASK_ID, "t1");
    e.has |= MW_HAS_SUCCESS;
    e.success = true;
    e.kv = nil_success;
    e.kv_count = 1;
    failures += encode_then_decode ("success set and kv {success: nil}", &e);

    //  A decoded event with a custom key, and a kv of the same key appended.
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, "custom_x");
    fs_put_str (&fs, "color", "red");
    size_t bl;
    uint8_t *body = fs_body (&fs, NULL, &bl);
    mw_event_t d;
    assert_int_equal (check_decode_ok ("custom with color", NULL, body, bl, &d), 0);
    static const mw_kv_t color[] = {{.key = "color", .kind = MW_KV_STR, .val.s = {"blue", 4}}};
    d.kv = color;
    d.kv_count = 1;
    failures += encode_then_decode ("decoded extra 'color' plus kv 'color'", &d);
    //  The same key appended through mw_event_copy.
    mw_event_t c;
    mw_event_init (&c, MW_TYPE_CUSTOM);
    if (mw_event_copy (&c, &d) == 0)
        failures += encode_then_decode ("copy of extra 'color' plus kv 'color'", &c);
    mw_event_release (&c);
    d.kv = NULL;
    d.kv_count = 0;
    mw_event_release (&d);
    free (body);
    fs_free (&fs);

    //  A decoded event with MW_MAX_EXTRA custom keys plus one custom kv: too
    //  many custom keys, whether encoded directly or copied first.
    fs_init (&fs);
    fs_header (&fs, "custom_full");
    for (int i = 0; i < MW_MAX_EXTRA; i++) {
        char key[16];
        snprintf (key, sizeof key, "c%03d", i);
        fs_put_uint (&fs, key, (uint64_t) i);
    }
    body = fs_body (&fs, NULL, &bl);
    assert_int_equal (check_decode_ok ("MW_MAX_EXTRA custom keys", NULL, body, bl, &d), 0);
    static const mw_kv_t one_more[] = {{.key = "one_more", .kind = MW_KV_UINT, .val.u = 1}};
    d.kv = one_more;
    d.kv_count = 1;
    failures += encode_then_decode ("MW_MAX_EXTRA decoded extras plus 1 kv", &d);
    mw_event_init (&c, MW_TYPE_CUSTOM);
    if (mw_event_copy (&c, &d) == 0)
        failures += encode_then_decode ("copy of MW_MAX_EXTRA decoded extras plus 1 kv", &c);
    mw_event_release (&c);
    d.kv = NULL;
    d.kv_count = 0;
    mw_event_release (&d);
    free (body);
    fs_free (&fs);

    //  A version this codec does not speak is not sent as if it were v1.
    mw_event_init (&e, MW_TYPE_CACHE_HIT);
    set_header (&e);
    mw_event_set_str (&e, MW_K_TASK_ID, "t1");
    e.v = 2;
    failures += encode_then_decode ("event with v = 2", &e);
    e.v = 0;
    failures += encode_then_decode ("event with v = 0", &e);

    //  MW_MAX_EXTRA custom kv keys, and kv strings over the limit.
    mw_kv_t many[MW_MAX_EXTRA + 1];
    char names[MW_MAX_EXTRA + 1][16];
    for (int i = 0; i <= MW_MAX_EXTRA; i++) {
        snprintf (names[i], sizeof names[i], "k%03d", i);
        many[i].key = names[i];
        many[i].kind = MW_KV_UINT;
        many[i].val.u = (uint64_t) i;
    }
    assert_int_equal (mw_event_init_named (&e, "many"), 0);
    set_header (&e);
    e.kv = many;
    e.kv_count = MW_MAX_EXTRA;
    failures += roundtrip ("MW_MAX_EXTRA kv keys", &e, 0, true);
    e.kv_count = MW_MAX_EXTRA + 1;
    failures += encode_then_decode ("MW_MAX_EXTRA+1 kv keys", &e);
    ASSERT_NO_FAILURES (failures);
}

//  kv strings are held to MW_MAX_STR too: cut at a UTF-8 boundary, counted.
static void
test_encode_kv_string_limit (void **state)
{
    (void) state;
    char *big = malloc (MW_MAX_STR + 10);
    memset (big, 'a', MW_MAX_STR + 9);
    memcpy (big + MW_MAX_STR - 1, "\xe2\x82\xac", 3); //  straddles the limit
    big[MW_MAX_STR + 9] = '\0';
    mw_kv_t inner[] = {{.key = "s", .kind = MW_KV_STR, .val.s = {big, (size_t) -1}}};
    mw_kv_t kv[] = {
        {.key = "top", .kind = MW_KV_STR, .val.s = {big, MW_MAX_STR + 9}},
        {.key = "nested", .kind = MW_KV_MAP, .val.list = {inner, 1}},
        {.key = "exact", .kind = MW_KV_STR, .val.s = {big, MW_MAX_STR - 1}},
    };
    mw_event_t e, d, c;
    assert_int_equal (mw_event_init_named (&e, "kv_strings"), 0);
    set_header (&e);
    e.kv = kv;
    e.kv_count = 3;
    uint8_t *b, *b2;
    size_t l, l2;
    uint32_t cut = 0;
    assert_int_equal (encode_alloc (&e, &b, &l, &cut), MW_OK);
    assert_int_equal (cut, 2);
    assert_int_equal (check_decode_ok ("kv strings over the limit", NULL, b, l, &d), 0);
    assert_int_equal (d.truncated, 2);
    //  The carried values, cut before the 3-byte character.
    mw_kv_t cut_inner[] = {{.key = "s", .kind = MW_KV_STR, .val.s = {big, MW_MAX_STR - 1}}};
    mw_kv_t expect[] = {
        {.key = "top", .kind = MW_KV_STR, .val.s = {big, MW_MAX_STR - 1}},
        {.key = "nested", .kind = MW_KV_MAP, .val.list = {cut_inner, 1}},
        {.key = "exact", .kind = MW_KV_STR, .val.s = {big, MW_MAX_STR - 1}},
    };
    char why[200];
    if (!extras_match_kv (&d, expect, 3, why, sizeof why))
        fail_msg ("%s", why);
    mw_event_release (&d);
    //  A copy cuts the same and counts the same.
    mw_event_init (&c, MW_TYPE_CUSTOM);
    assert_int_equal (mw_event_copy (&c, &e), 0);
    assert_int_equal (encode_alloc (&c, &b2, &l2, &cut), MW_OK);
    assert_int_equal (l, l2);
    assert_memory_equal (b, b2, l);
    mw_event_release (&c);
    free (b);
    free (b2);
    free (big);
}

//  A known key given through kv is held to the same wire limits.
static void
test_encode_kv_known_keys_limits (void **state)
{
    (void) state;
    int failures = 0;
    char long_task[300];
    memset (long_task, 't', sizeof long_task);
    long_task[sizeof long_task - 1] = '\0';
    mw_kv_t kv[] = {{.key = "task_id", .kind = MW_KV_STR, .val.s = {long_task, (size_t) -1}}};
    mw_event_t e;
    mw_event_init (&e, MW_TYPE_TASK_START);
    set_header (&e);
    e.kv = kv;
    e.kv_count = 1;
    uint8_t *b;
    size_t l;
    uint32_t cut = 0;
    int rc = encode_alloc (&e, &b, &l, &cut);
    assert_int_equal (rc, MW_OK);
    //  Read the body with msgpack-c: the wire must carry task_id <= 128.
    msgpack_unpacked u;
    msgpack_unpacked_init (&u);
    size_t off = 0;
    assert_int_equal (msgpack_unpack_next (&u, (const char *) b, l, &off),
                      MSGPACK_UNPACK_SUCCESS);
    assert_int_equal (u.data.type, MSGPACK_OBJECT_MAP);
    bool found = false;
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        const msgpack_object_kv *p = &u.data.via.map.ptr[i];
        if (p->key.type == MSGPACK_OBJECT_STR && p->key.via.str.size == 7
            && memcmp (p->key.via.str.ptr, "task_id", 7) == 0) {
            found = true;
            if (p->val.type != MSGPACK_OBJECT_STR || p->val.via.str.size > MW_MAX_TASK_ID) {
                print_error ("FAIL kv task_id of 299 bytes went on the wire with %u bytes "
                             "(limit %d); encode reported %u cut\n",
                             p->val.via.str.size, MW_MAX_TASK_ID, cut);
                failures++;
            }
        }
    }
    msgpack_unpacked_destroy (&u);
    assert_true (found);
    if (cut != 1) {
        print_error ("FAIL kv task_id of 299 bytes: *truncated_p %u, expected 1\n", cut);
        failures++;
    }
    free (b);
    ASSERT_NO_FAILURES (failures);
}

//  ---------------------------------------------------------------------
//  Required keys, on decode (bodies made with msgpack-c's packer)

static void
fields_full (fields_t *fs, const type_spec_t *t)
{
    fs_init (fs);
    fs_header (fs, t->name);
    for (size_t i = 0; i < 3 && t->required[i]; i++)
        fields_set (fs, key_desc (t->required[i]));
    for (size_t i = 0; i < 8 && t->optional[i]; i++)
        fields_set (fs, key_desc (t->optional[i]));
}

static void
test_decode_required_keys (void **state)
{
    (void) state;
    int failures = 0;
    char label[160];
    for (size_t i = 0; i < TYPE_COUNT; i++) {
        const type_spec_t *t = &TYPES[i];
        fields_t fs;
        size_t len;
        uint8_t *body;
        mw_event_t d;
        //  The full body is fine.
        fields_full (&fs, t);
        body = fs_body (&fs, NULL, &len);
        snprintf (label, sizeof label, "%s full", t->name);
        if (check_decode_ok (label, t->name, body, len, &d) == 0)
            mw_event_release (&d);
        else
            failures++;
        free (body);
        if (t->one_of) {
            //  Either one alone is enough; neither is missing.
            for (size_t r = 0; r < 3 && t->required[r]; r++) {
                fs_del (&fs, t->required[r]);
                body = fs_body (&fs, NULL, &len);
                snprintf (label, sizeof label, "%s without %s", t->name, t->required[r]);
                if (check_decode_ok (label, t->name, body, len, &d) == 0)
                    mw_event_release (&d);
                else
                    failures++;
                free (body);
                fields_set (&fs, key_desc (t->required[r]));
            }
            for (size_t r = 0; r < 3 && t->required[r]; r++)
                fs_del (&fs, t->required[r]);
            body = fs_body (&fs, NULL, &len);
            snprintf (label, sizeof label, "%s without any of its keys", t->name);
            failures += check_decode_error (label, t->name, body, len, MW_ERR_MISSING, -1);
            free (body);
            //  nil counts as absent.
            for (size_t r = 0; r < 3 && t->required[r]; r++)
                fs_put_nil (&fs, t->required[r]);
            body = fs_body (&fs, NULL, &len);
            snprintf (label, sizeof label, "%s with its keys nil", t->name);
            failures += check_decode_error (label, t->name, body, len, MW_ERR_MISSING, -1);
            free (body);
        }
        else {
            for (size_t r = 0; r < 3 && t->required[r]; r++) {
                fs_free (&fs);
                fields_full (&fs, t);
                fs_del (&fs, t->required[r]);
                body = fs_body (&fs, NULL, &len);
                snprintf (label, sizeof label, "%s without %s", t->name, t->required[r]);
                failures += check_decode_error (label, t->name, body, len, MW_ERR_MISSING, -1);
                free (body);
                fs_put_nil (&fs, t->required[r]);
                body = fs_body (&fs, NULL, &len);
                snprintf (label, sizeof label, "%s with %s nil", t->name, t->required[r]);
                failures += check_decode_error (label, t->name, body, len, MW_ERR_MISSING, -1);
                free (body);
            }
        }
        fs_free (&fs);
    }
    //  A custom type requires only the header.
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, "my_event");
    size_t len;
    uint8_t *body = fs_body (&fs, NULL, &len);
    mw_event_t d;
    if (check_decode_ok ("custom type, header only", "my_event", body, len, &d) == 0) {
        assert_int_equal (d.kind, MW_TYPE_CUSTOM);
        assert_string_equal (d.type, "my_event");
        assert_int_equal (d.extra_count, 0);
        mw_event_release (&d);
    }
    else
        failures++;
    free (body);
    fs_free (&fs);
    ASSERT_NO_FAILURES (failures);
}

static void
test_decode_header_keys_required (void **state)
{
    (void) state;
    int failures = 0;
    static const char *header[] = {"v", "type", "ts", "miner", "sid", "seq"};
    for (size_t h = 0; h < 6; h++) {
        for (int nil = 0; nil < 2; nil++) {
            fields_t fs;
            fs_init (&fs);
            fs_header (&fs, "task_start");
            fs_put_str (&fs, "task_id", "t1");
            if (nil)
                fs_put_nil (&fs, header[h]);
            else
                fs_del (&fs, header[h]);
            size_t len;
            uint8_t *body = fs_body (&fs, NULL, &len);
            char label[64];
            snprintf (label, sizeof label, "task_start %s %s", nil ? "with nil" : "without",
                      header[h]);
            failures += check_decode_error (label, NULL, body, len, MW_ERR_MISSING, -1);
            free (body);
            fs_free (&fs);
        }
    }
    ASSERT_NO_FAILURES (failures);
}

//  ---------------------------------------------------------------------
//  Bodies from an independent encoder

static void
add_custom_extras (fields_t *fs)
{
    mp_t m;
    mp_init (&m);
    fs_put_str (fs, "x_str", "custom \xf0\x9f\x98\x80 value");
    mp_map (&m, 2);
    mp_str (&m, "k");
    mp_array (&m, 3);
    mp_uint (&m, 1);
    mp_int (&m, -70000);
    mp_map (&m, 1);
    mp_str (&m, "z");
    mp_nil (&m);
    mp_str (&m, "f");
    mp_flt (&m, 1.5f);
    fs_put_mp (fs, "x_nested", &m);
    mp_clear (&m);
    mp_bin (&m, "\x00\x01\x02\xff", 4);
    fs_put_mp (fs, "x_bin", &m);
    mp_clear (&m);
    msgpack_pack_ext_with_body (&m.pk, "\x01\x02\x03\x04", 4, 7);
    fs_put_mp (fs, "x_ext", &m);
    mp_clear (&m);
    mp_flt (&m, -0.5f);
    fs_put_mp (fs, "x_f32", &m);
    mp_free (&m);
    fs_put_nil (fs, "x_nil");
    fs_put_int (fs, "x_neg", INT64_MIN);
}

static const char *const CUSTOM_EXTRAS[] = {"x_str", "x_nested", "x_bin", "x_ext",
                                            "x_f32", "x_nil",    "x_neg"};
#define CUSTOM_EXTRA_COUNT 7

//  Check a decoded event against the fields it came from: sample values of
//  the type's keys, everything else absent, custom pairs byte for byte.
static int
check_against_fields (const char *label, const mw_event_t *d, const type_spec_t *t,
                      const fields_t *fs)
{
    char why[256];
    int bad = 0;
    if (d->kind != t->kind || strcmp (d->type, t->name) != 0 || d->v != 1 || d->ts != TS
        || d->sid != SID || d->seq != SEQ || !d->str[MW_K_MINER].ptr
        || strcmp (d->str[MW_K_MINER].ptr, MINER) != 0) {
        print_error ("FAIL %s: header fields differ\n", label);
        bad = 1;
    }
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const key_desc_t *k = &KEYS[i];
        bool want = spec_has_key (t, k->name) && fs_get (fs, k->name);
        bool ok = want ? decoded_has_sample (d, k, why, sizeof why)
                       : decoded_absent (d, k, why, sizeof why);
        if (!ok) {
            print_error ("FAIL %s: %s\n", label, why);
            bad = 1;
        }
    }
    uint32_t expected_extras = spec_has_key (t, "details") ? 1 : 0;
    for (size_t i = 0; i < CUSTOM_EXTRA_COUNT; i++) {
        const field_t *f = fs_get (fs, CUSTOM_EXTRAS[i]);
        if (!f)
            continue;
        expected_extras++;
        const uint8_t *v;
        size_t n;
        if (extras_find (d, CUSTOM_EXTRAS[i], &v, &n) != 0 || n != f->vlen
            || memcmp (v, f->val, n) != 0) {
            print_error ("FAIL %s: custom key %s not carried byte for byte\n", label,
                         CUSTOM_EXTRAS[i]);
            bad = 1;
        }
    }
    if (d->extra_count != expected_extras) {
        print_error ("FAIL %s: %u extras, expected %u\n", label, d->extra_count, expected_extras);
        bad = 1;
    }
    if (d->truncated != 0) {
        print_error ("FAIL %s: truncated %u\n", label, d->truncated);
        bad = 1;
    }
    return bad;
}

//  Re-encode a decoded event and decode it again: the same event.
static int
check_reencode (const char *label, const mw_event_t *d)
{
    uint8_t *b;
    size_t l;
    int rc = encode_alloc (d, &b, &l, NULL);
    if (rc != MW_OK) {
        print_error ("FAIL %s: re-encode returned %s\n", label, mw_err_name (rc));
        return 1;
    }
    mw_event_t d2;
    int bad = check_decode_ok (label, d->type, b, l, &d2);
    char why[200];
    if (!bad && !event_equal (d, &d2, why, sizeof why)) {
        print_error ("FAIL %s: re-encoded event differs: %s\n", label, why);
        bad = 1;
    }
    if (!bad)
        mw_event_release (&d2);
    free (b);
    return bad;
}

static void
test_independent_encoder_shuffled (void **state)
{
    (void) state;
    int failures = 0;
    uint64_t rng = 0x5eed0001;
    for (size_t i = 0; i < TYPE_COUNT && failures < 20; i++) {
        const type_spec_t *t = &TYPES[i];
        fields_t fs;
        fields_full (&fs, t);
        add_custom_extras (&fs);
        size_t idx[64];
        for (size_t j = 0; j < fs.n; j++)
            idx[j] = j;
        for (int perm = 0; perm < 30; perm++) {
            if (perm)
                rng_shuffle (&rng, idx, fs.n);
            size_t len;
            uint8_t *body = fs_body (&fs, idx, &len);
            char label[96];
            snprintf (label, sizeof label, "%s, key order #%d", t->name, perm);
            mw_event_t d;
            if (check_decode_ok (label, perm % 2 ? NULL : t->name, body, len, &d) == 0) {
                failures += check_against_fields (label, &d, t, &fs);
                failures += check_reencode (label, &d);
                mw_event_release (&d);
            }
            else
                failures++;
            free (body);
        }
        fs_free (&fs);
    }
    ASSERT_NO_FAILURES (failures);
}

static void
test_independent_nil_is_absent (void **state)
{
    (void) state;
    int failures = 0;
    static const char *const always_optional[] = {"id", "broker_ts", "truncated"};
    for (size_t i = 0; i < TYPE_COUNT; i++) {
        const type_spec_t *t = &TYPES[i];
        //  Every optional key of the type, and every other known key.
        for (size_t k = 0; k < KEY_COUNT + 3; k++) {
            const char *name = k < KEY_COUNT ? KEYS[k].name : always_optional[k - KEY_COUNT];
            if (in_list (t->required, 3, name))
                continue;
            fields_t fs;
            fields_full (&fs, t);
            fs_put_nil (&fs, name);
            size_t len;
            uint8_t *body = fs_body (&fs, NULL, &len);
            char label[96];
            snprintf (label, sizeof label, "%s with %s nil", t->name, name);
            mw_event_t d;
            if (check_decode_ok (label, t->name, body, len, &d) == 0) {
                char why[200];
                if (k < KEY_COUNT && KEYS[k].t != KT_MAP
                    && !decoded_absent (&d, &KEYS[k], why, sizeof why)) {
                    print_error ("FAIL %s: %s\n", label, why);
                    failures++;
                }
                if (strcmp (name, "truncated") == 0 && d.truncated != 0) {
                    print_error ("FAIL %s: truncated %u\n", label, d.truncated);
                    failures++;
                }
                //  The type's other keys are still there.
                for (size_t o = 0; o < 8 && t->optional[o]; o++) {
                    const key_desc_t *kd = key_desc (t->optional[o]);
                    if (strcmp (kd->name, name) != 0 && kd->t != KT_MAP
                        && !decoded_has_sample (&d, kd, why, sizeof why)) {
                        print_error ("FAIL %s: %s\n", label, why);
                        failures++;
                    }
                }
                failures += check_reencode (label, &d);
                mw_event_release (&d);
            }
            else
                failures++;
            free (body);
            fs_free (&fs);
        }
    }
    //  A nil custom value is a value: carried.
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, "my_event");
    fs_put_nil (&fs, "x_nil");
    size_t len;
    uint8_t *body = fs_body (&fs, NULL, &len);
    mw_event_t d;
    if (check_decode_ok ("custom nil", NULL, body, len, &d) == 0) {
        const uint8_t *v;
        size_t n;
        if (d.extra_count != 1 || extras_find (&d, "x_nil", &v, &n) != 0 || n != 1
            || v[0] != 0xc0) {
            print_error ("FAIL custom key with a nil value not carried\n");
            failures++;
        }
        mw_event_release (&d);
    }
    else
        failures++;
    free (body);
    fs_free (&fs);
    ASSERT_NO_FAILURES (failures);
}

typedef struct {
    const char *label;
    uint8_t bytes[12];
    size_t n;
    double value;
} num_form_t;

static void
test_independent_number_forms (void **state)
{
    (void) state;
    int failures = 0;
    float f11 = 1.1f;
    //  Any msgpack number for a float field.
    num_form_t floats[] = {
        {"positive fixint 3", {0x03}, 1, 3.0},
        {"uint8 200", {0xcc, 200}, 2, 200.0},
        {"uint16 300", {0xcd, 0x01, 0x2c}, 3, 300.0},
        {"uint32", {0xce, 0x00, 0x01, 0x00, 0x00}, 5, 65536.0},
        {"uint64 max", {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9,
         (double) UINT64_MAX},
        {"negative fixint -1", {0xff}, 1, -1.0},
        {"int8 -100", {0xd0, 0x9c}, 2, -100.0},
        {"int16 -300", {0xd1, 0xfe, 0xd4}, 3, -300.0},
        {"int32 -70000", {0xd2, 0xff, 0xfe, 0xee, 0x90}, 5, -70000.0},
        {"int64 min", {0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, (double) INT64_MIN},
        {"float32 0.25", {0xca, 0x3e, 0x80, 0x00, 0x00}, 5, 0.25},
        {"float32 1.1", {0xca, 0x3f, 0x8c, 0xcc, 0xcd}, 5, (double) f11},
        {"float64 2.5", {0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0}, 9, 2.5},
    };
    static const char *const float_keys[] = {"response_time", "score", "execution_time"};
    for (size_t k = 0; k < 3; k++) {
        const key_desc_t *kd = key_desc (float_keys[k]);
        for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
            fields_t fs;
            fs_init (&fs);
            fs_header (&fs, "numbers");
            fs_put_raw (&fs, float_keys[k], floats[i].bytes, floats[i].n);
            size_t len;
            uint8_t *body = fs_body (&fs, NULL, &len);
            char label[96];
            snprintf (label, sizeof label, "%s as %s", float_keys[k], floats[i].label);
            mw_event_t d;
            if (check_decode_ok (label, NULL, body, len, &d) == 0) {
                double got = kd->hasbit == MW_HAS_RESPONSE_TIME ? d.response_time
                             : kd->hasbit == MW_HAS_SCORE       ? d.score
                                                                : d.execution_time;
                if (!(d.has & kd->hasbit) || got != floats[i].value) {
                    print_error ("FAIL %s: got %s%.17g, expected %.17g\n", label,
                                 (d.has & kd->hasbit) ? "" : "absent ", got, floats[i].value);
                    failures++;
                }
                failures += check_reencode (label, &d);
                mw_event_release (&d);
            }
            else
                failures++;
            free (body);
            fs_free (&fs);
        }
    }
    //  Any msgpack encoding of a non-negative integer for a uint field,
    //  including the signed formats (msgpack has one integer type).
    num_form_t uints[] = {
        {"fixint", {0x05}, 1, 5},
        {"uint8", {0xcc, 0x05}, 2, 5},
        {"uint16", {0xcd, 0x00, 0x05}, 3, 5},
        {"uint32", {0xce, 0, 0, 0, 0x05}, 5, 5},
        {"uint64", {0xcf, 0, 0, 0, 0, 0, 0, 0, 0x05}, 9, 5},
        {"int8", {0xd0, 0x05}, 2, 5},
        {"int16", {0xd1, 0x00, 0x05}, 3, 5},
        {"int32", {0xd2, 0, 0, 0, 0x05}, 5, 5},
        {"int64", {0xd3, 0, 0, 0, 0, 0, 0, 0, 0x05}, 9, 5},
    };
    static const char *const uint_keys[] = {"ts",        "sid",          "seq", "id",
                                            "broker_ts", "timeout_ms", "action_count", "v"};
    for (size_t k = 0; k < sizeof uint_keys / sizeof uint_keys[0]; k++) {
        for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
            fields_t fs;
            fs_init (&fs);
            fs_header (&fs, "numbers");
            uint8_t bytes[12];
            memcpy (bytes, uints[i].bytes, sizeof bytes);
            bool is_v = strcmp (uint_keys[k], "v") == 0;
            if (is_v) //  v must be 1
                bytes[uints[i].n - 1] = 0x01;
            fs_put_raw (&fs, uint_keys[k], bytes, uints[i].n);
            size_t len;
            uint8_t *body = fs_body (&fs, NULL, &len);
            char label[96];
            snprintf (label, sizeof label, "%s as %s", uint_keys[k], uints[i].label);
            mw_event_t d;
            if (check_decode_ok (label, NULL, body, len, &d) == 0) {
                uint64_t got = is_v                                         ? d.v
                               : strcmp (uint_keys[k], "ts") == 0           ? d.ts
                               : strcmp (uint_keys[k], "sid") == 0          ? d.sid
                               : strcmp (uint_keys[k], "seq") == 0          ? d.seq
                               : strcmp (uint_keys[k], "id") == 0           ? d.id
                               : strcmp (uint_keys[k], "broker_ts") == 0    ? d.broker_ts
                               : strcmp (uint_keys[k], "timeout_ms") == 0   ? d.timeout_ms
                                                                            : d.action_count;
                if (got != (is_v ? 1 : 5)) {
                    print_error ("FAIL %s: got %llu\n", label, (unsigned long long) got);
                    failures++;
                }
                mw_event_release (&d);
            }
            else
                failures++;
            free (body);
            fs_free (&fs);
        }
    }
    //  Every str format for a string, every map format for the body, both
    //  bools.
    static const struct {
        const char *label;
        uint8_t bytes[12];
        size_t n;
    } strs[] = {
        {"fixstr", {0xa3, 'a', 'b', 'c'}, 4},
        {"str8", {0xd9, 3, 'a', 'b', 'c'}, 5},
        {"str16", {0xda, 0, 3, 'a', 'b', 'c'}, 6},
        {"str32", {0xdb, 0, 0, 0, 3, 'a', 'b', 'c'}, 8},
    };
    for (size_t i = 0; i < 4; i++)
        for (int as_type = 0; as_type < 2; as_type++) {
            fields_t fs;
            fs_init (&fs);
            fs_header (&fs, "abc");
            fs_put_raw (&fs, as_type ? "type" : "task_id", strs[i].bytes, strs[i].n);
            size_t len;
            uint8_t *body = fs_body (&fs, NULL, &len);
            char label[96];
            snprintf (label, sizeof label, "%s as %s", as_type ? "type" : "task_id",
                      strs[i].label);
            mw_event_t d;
            if (check_decode_ok (label, "abc", body, len, &d) == 0) {
                const char *got = as_type ? d.type : d.str[MW_K_TASK_ID].ptr;
                if (!got || strcmp (got, "abc") != 0) {
                    print_error ("FAIL %s\n", label);
                    failures++;
                }
                mw_event_release (&d);
            }
            else
                failures++;
            free (body);
            fs_free (&fs);
        }
    for (int b = 0; b < 2; b++) {
        fields_t fs;
        fs_init (&fs);
        fs_header (&fs, "task_complete");
        fs_put_str (&fs, "task_id", "t");
        fs_put_bool (&fs, "success", b);
        size_t len;
        uint8_t *body = fs_body (&fs, NULL, &len);
        //  The same pairs behind a map16 and a map32 header.
        mp_t m16, m32;
        mp_init (&m16);
        mp_init (&m32);
        mp_byte (&m16, 0xde);
        mp_be16 (&m16, (uint16_t) fs.n);
        mp_raw (&m16, body + 1, len - 1);
        mp_byte (&m32, 0xdf);
        mp_be32 (&m32, (uint32_t) fs.n);
        mp_raw (&m32, body + 1, len - 1);
        const mp_t *forms[2] = {&m16, &m32};
        for (int f = 0; f < 3; f++) {
            const uint8_t *p = f ? (const uint8_t *) forms[f - 1]->sb.data : body;
            size_t n = f ? forms[f - 1]->sb.size : len;
            char label[64];
            snprintf (label, sizeof label, "success %d, map format %d", b, f);
            mw_event_t d;
            if (check_decode_ok (label, "task_complete", p, n, &d) == 0) {
                if (!(d.has & MW_HAS_SUCCESS) || d.success != (bool) b) {
                    print_error ("FAIL %s: success wrong\n", label);
                    failures++;
                }
                mw_event_release (&d);
            }
            else
                failures++;
        }
        mp_free (&m16);
        mp_free (&m32);
        free (body);
        fs_free (&fs);
    }
    ASSERT_NO_FAILURES (failures);
}

static void
test_independent_extra_limits (void **state)
{
    (void) state;
    int failures = 0;
    //  MW_MAX_EXTRA custom keys are carried; one more is refused.
    for (int extra = 0; extra < 2; extra++) {
        fields_t fs;
        fs_init (&fs);
        fs_header (&fs, "many_keys");
        for (int i = 0; i < MW_MAX_EXTRA + extra; i++) {
            char key[16];
            snprintf (key, sizeof key, "c%03d", i);
            fs_put_uint (&fs, key, (uint64_t) i);
        }
        size_t len;
        uint8_t *body = fs_body (&fs, NULL, &len);
        if (!extra) {
            mw_event_t d;
            if (check_decode_ok ("MW_MAX_EXTRA custom keys", NULL, body, len, &d) == 0) {
                if (d.extra_count != MW_MAX_EXTRA) {
                    print_error ("FAIL %u extras, expected %d\n", d.extra_count, MW_MAX_EXTRA);
                    failures++;
                }
                failures += check_reencode ("MW_MAX_EXTRA custom keys", &d);
                mw_event_release (&d);
            }
            else
                failures++;
        }
        else
            failures += check_decode_error ("MW_MAX_EXTRA+1 custom keys", NULL, body, len,
                                            MW_ERR_KEY, -1);
        free (body);
        fs_free (&fs);
    }
    //  Keys of 1 and MW_MAX_KEY bytes are fine.
    char key[MW_MAX_KEY + 1];
    memset (key, 'k', MW_MAX_KEY);
    key[MW_MAX_KEY] = '\0';
    const char *keys[] = {"k", key};
    for (int i = 0; i < 2; i++) {
        fields_t fs;
        fs_init (&fs);
        fs_header (&fs, "keys");
        fs_put_str (&fs, keys[i], "value");
        size_t len;
        uint8_t *body = fs_body (&fs, NULL, &len);
        mw_event_t d;
        if (check_decode_ok (i ? "key of MW_MAX_KEY bytes" : "key of 1 byte", NULL, body, len,
                             &d)
            == 0) {
            const uint8_t *v;
            size_t n;
            if (extras_find (&d, keys[i], &v, &n) != 0) {
                print_error ("FAIL key of %zu bytes not carried\n", strlen (keys[i]));
                failures++;
            }
            mw_event_release (&d);
        }
        else
            failures++;
        free (body);
        fs_free (&fs);
    }
    ASSERT_NO_FAILURES (failures);
}

//  ---------------------------------------------------------------------
//  Ownership: decode copies, copy is deep, release is idempotent

static void
test_decode_owns_its_copy (void **state)
{
    (void) state;
    fields_t fs;
    fields_full (&fs, &TYPES[0]); //  task_start
    add_custom_extras (&fs);
    size_t len;
    uint8_t *body = fs_body (&fs, NULL, &len);
    mw_event_t d;
    char err[128];
    mw_event_init (&d, MW_TYPE_CUSTOM);
    int rc = mw_event_decode (&d, "task_start", 10, body, len, err, sizeof err);
    assert_int_equal (rc, MW_OK);
    memset (body, 0xEE, len);
    free (body);
    assert_int_equal (check_against_fields ("after the body is gone", &d, &TYPES[0], &fs), 0);
    char why[200];
    assert_true (event_decoded_valid (&d, why, sizeof why));
    mw_event_release (&d);
    assert_true (event_is_empty (&d, why, sizeof why));
    fs_free (&fs);
}

static void
test_release_idempotent (void **state)
{
    (void) state;
    char why[200];
    mw_event_t e;
    mw_event_init (&e, MW_TYPE_TASK_START);
    mw_event_release (&e);
    assert_true (event_is_empty (&e, why, sizeof why));
    mw_event_release (&e);
    assert_true (event_is_empty (&e, why, sizeof why));

    fields_t fs;
    fields_full (&fs, &TYPES[3]);
    add_custom_extras (&fs);
    size_t len;
    uint8_t *body = fs_body (&fs, NULL, &len);
    assert_int_equal (check_decode_ok ("release", NULL, body, len, &e), 0);
    assert_non_null (e.store_);
    mw_event_release (&e);
    assert_true (event_is_empty (&e, why, sizeof why));
    mw_event_release (&e);
    mw_event_release (&e);
    assert_true (event_is_empty (&e, why, sizeof why));
    //  A released event decodes again.
    assert_int_equal (check_decode_ok ("decode after release", NULL, body, len, &e), 0);
    mw_event_release (&e);
    free (body);
    fs_free (&fs);
}

static void
test_copy_of_decoded (void **state)
{
    (void) state;
    char why[200];
    for (size_t t = 0; t < TYPE_COUNT; t++) {
        fields_t fs;
        fields_full (&fs, &TYPES[t]);
        add_custom_extras (&fs);
        size_t len;
        uint8_t *body = fs_body (&fs, NULL, &len);
        mw_event_t src, dst;
        assert_int_equal (check_decode_ok ("copy source", NULL, body, len, &src), 0);
        uint8_t *b1, *b2;
        size_t l1, l2;
        assert_int_equal (encode_alloc (&src, &b1, &l1, NULL), MW_OK);
        mw_event_init (&dst, MW_TYPE_CUSTOM);
        assert_int_equal (mw_event_copy (&dst, &src), 0);
        if (!event_equal (&dst, &src, why, sizeof why))
            fail_msg ("copy of %s differs: %s", TYPES[t].name, why);
        for (int k = 0; k < MW_STR_COUNT; k++)
            if (src.str[k].ptr)
                assert_ptr_not_equal (dst.str[k].ptr, src.str[k].ptr);
        if (src.extra_len)
            assert_ptr_not_equal (dst.extra, src.extra);
        mw_event_release (&src);
        free (body);
        //  The copy survives the source.
        assert_int_equal (check_against_fields ("copy after the source is released", &dst,
                                                &TYPES[t], &fs),
                          0);
        assert_int_equal (encode_alloc (&dst, &b2, &l2, NULL), MW_OK);
        assert_int_equal (l1, l2);
        assert_memory_equal (b1, b2, l1);
        mw_event_release (&dst);
        assert_true (event_is_empty (&dst, why, sizeof why));
        mw_event_release (&dst);
        free (b1);
        free (b2);
        fs_free (&fs);
    }
}

static void
test_copy_of_built (void **state)
{
    (void) state;
    char why[200];
    //  Source strings and kv in memory the test then overwrites and frees.
    char *strs[MW_STR_COUNT];
    mw_event_t src, dst, d;
    assert_int_equal (mw_event_init_named (&src, "built_copy"), 0);
    src.ts = TS;
    src.sid = SID;
    src.seq = SEQ;
    for (int k = 0; k < MW_STR_COUNT; k++) {
        strs[k] = malloc (32);
        snprintf (strs[k], 32, "value of %s", mw_str_key_name ((mw_str_key_t) k));
        mw_event_set_str (&src, (mw_str_key_t) k, strs[k]);
    }
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (KEYS[i].t != KT_STR)
            built_set (&src, &KEYS[i]);
    mw_kv_t *kv = malloc (sizeof ALL_KV);
    memcpy (kv, ALL_KV, sizeof ALL_KV);
    src.kv = kv;
    src.kv_count = ALL_KV_COUNT;
    uint8_t *b1, *b2;
    size_t l1, l2;
    assert_int_equal (encode_alloc (&src, &b1, &l1, NULL), MW_OK);

    mw_event_init (&dst, MW_TYPE_CUSTOM);
    assert_int_equal (mw_event_copy (&dst, &src), 0);
    assert_null (dst.kv);
    assert_int_equal (dst.kv_count, 0);
    assert_int_equal (dst.extra_count, ALL_KV_COUNT);
    //  Destroy the source.
    for (int k = 0; k < MW_STR_COUNT; k++) {
        memset (strs[k], 'Z', 31);
        free (strs[k]);
    }
    memset (kv, 0, sizeof ALL_KV);
    free (kv);
    for (int k = 0; k < MW_STR_COUNT; k++) {
        char expect[32];
        snprintf (expect, sizeof expect, "value of %s", mw_str_key_name ((mw_str_key_t) k));
        assert_non_null (dst.str[k].ptr);
        assert_int_equal (dst.str[k].len, strlen (expect));
        assert_memory_equal (dst.str[k].ptr, expect, strlen (expect));
    }
    //  kv became raw extras: the same wire bytes.
    assert_int_equal (encode_alloc (&dst, &b2, &l2, NULL), MW_OK);
    assert_int_equal (l1, l2);
    assert_memory_equal (b1, b2, l1);
    assert_int_equal (check_decode_ok ("copy of built", NULL, b2, l2, &d), 0);
    if (!extras_match_kv (&d, ALL_KV, ALL_KV_COUNT, why, sizeof why))
        fail_msg ("%s", why);
    mw_event_release (&d);
    mw_event_release (&dst);
    mw_event_release (&dst);
    assert_true (event_is_empty (&dst, why, sizeof why));
    free (b1);
    free (b2);
}

static void
test_copy_of_decoded_plus_kv (void **state)
{
    (void) state;
    char why[200];
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, "mixed");
    add_custom_extras (&fs);
    size_t len;
    uint8_t *body = fs_body (&fs, NULL, &len);
    mw_event_t src, dst;
    assert_int_equal (check_decode_ok ("mixed", NULL, body, len, &src), 0);
    static const mw_kv_t more[] = {
        {.key = "y_added", .kind = MW_KV_STR, .val.s = {"later", 5}},
        {.key = "y_num", .kind = MW_KV_INT, .val.i = -3},
    };
    src.kv = more;
    src.kv_count = 2;
    //  Encoding it directly: raw extras first, untouched, then the kv.
    assert_int_equal (roundtrip ("decoded extras plus kv", &src, 0, true), 0);
    uint8_t *b1, *b2;
    size_t l1, l2;
    assert_int_equal (encode_alloc (&src, &b1, &l1, NULL), MW_OK);
    mw_event_init (&dst, MW_TYPE_CUSTOM);
    assert_int_equal (mw_event_copy (&dst, &src), 0);
    assert_int_equal (dst.extra_count, CUSTOM_EXTRA_COUNT + 2);
    src.kv = NULL;
    src.kv_count = 0;
    mw_event_release (&src);
    free (body);
    assert_int_equal (encode_alloc (&dst, &b2, &l2, NULL), MW_OK);
    assert_int_equal (l1, l2);
    assert_memory_equal (b1, b2, l1);
    mw_event_release (&dst);
    assert_true (event_is_empty (&dst, why, sizeof why));
    free (b1);
    free (b2);
    fs_free (&fs);
}

//  The encoder writes msgpack bytes itself (for speed); it must write what
//  msgpack-c's packer writes for the same values, at every format boundary.
static void
test_encoder_bytes_match_msgpack_c (void **state)
{
    (void) state;
    static const uint64_t uints[] = {0, 1, 127, 128, 255, 256, 65535, 65536,
                                     4294967295ull, 4294967296ull, UINT64_MAX};
    static const int64_t ints[] = {-1, -32, -33, -128, -129, -32768, -32769,
                                   INT32_MIN, (int64_t) INT32_MIN - 1, INT64_MIN};
    static const size_t str_lens[] = {0, 31, 32, 255, 256, 4096};
    static const size_t list_lens[] = {0, 15, 16, 40};
    static char text[4097];
    memset (text, 'x', sizeof (text) - 1);
    mw_kv_t items[40];
    for (size_t i = 0; i < 40; i++)
        items[i] = (mw_kv_t){.key = "k", .kind = MW_KV_BOOL, .val.b = i % 2};

    //  One custom kv per case: the body ends with key + value, which we
    //  compare with msgpack-c's packing of the same pair.
    for (int c = 0; c < 64; c++) {
        mw_kv_t kv = {.key = "custom"};
        mp_t want;
        mp_init (&want);
        msgpack_pack_str (&want.pk, 6);
        msgpack_pack_str_body (&want.pk, "custom", 6);
        size_t nu = sizeof (uints) / sizeof (uints[0]), ni = sizeof (ints) / sizeof (ints[0]);
        size_t ns = sizeof (str_lens) / sizeof (str_lens[0]);
        size_t nl = sizeof (list_lens) / sizeof (list_lens[0]);
        size_t i = (size_t) c;
        if (i < nu) {
            kv.kind = MW_KV_UINT, kv.val.u = uints[i];
            msgpack_pack_uint64 (&want.pk, uints[i]);
        }
        else if ((i -= nu) < ni) {
            kv.kind = MW_KV_INT, kv.val.i = ints[i];
            msgpack_pack_int64 (&want.pk, ints[i]);
        }
        else if ((i -= ni) < ns) {
            kv.kind = MW_KV_STR, kv.val.s.ptr = text, kv.val.s.len = str_lens[i];
            msgpack_pack_str (&want.pk, str_lens[i]);
            msgpack_pack_str_body (&want.pk, text, str_lens[i]);
        }
        else if ((i -= ns) < 2 * nl) {
            bool map = i < nl;
            size_t n = list_lens[i % nl];
            kv.kind = map ? MW_KV_MAP : MW_KV_ARRAY;
            kv.val.list.items = items, kv.val.list.count = n;
            if (map)
                msgpack_pack_map (&want.pk, n);
            else
                msgpack_pack_array (&want.pk, n);
            for (size_t j = 0; j < n; j++) {
                if (map) {
                    msgpack_pack_str (&want.pk, 1);
                    msgpack_pack_str_body (&want.pk, "k", 1);
                }
                if (j % 2)
                    msgpack_pack_true (&want.pk);
                else
                    msgpack_pack_false (&want.pk);
            }
        }
        else if ((i -= 2 * nl) < 4) {
            static const double ds[] = {0.0, -1.5, 1e300, 3.25};
            kv.kind = MW_KV_DOUBLE, kv.val.d = ds[i];
            msgpack_pack_double (&want.pk, ds[i]);
        }
        else if (i == 4) {
            kv.kind = MW_KV_NIL;
            msgpack_pack_nil (&want.pk);
        }
        else {
            mp_free (&want);
            break;
        }
        mw_event_t ev;
        assert_int_equal (mw_event_init_named (&ev, "bytes_check"), 0);
        mw_event_set_str (&ev, MW_K_MINER, "m");
        ev.kv = &kv;
        ev.kv_count = 1;
        static uint8_t out[MW_MAX_BODY];
        size_t len = 0;
        assert_int_equal (mw_event_encode (&ev, out, sizeof (out), &len, NULL), MW_OK);
        assert_true (len >= want.sb.size);
        assert_memory_equal (out + len - want.sb.size, want.sb.data, want.sb.size);
        mp_free (&want);
    }
}

//  mw_msgpack_read: the decoder's reader, exported for code that walks
//  carried values itself (the gateway's JSON rendering).
static void
test_msgpack_read (void **state)
{
    (void) state;
    static const uint8_t bytes[] = {
        0xca, 0x3f, 0xc0, 0x00, 0x00,                         //  float32 1.5
        0xcb, 0x40, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //  float64 2.5
        0xd0, 0x05,                                           //  int8 5: reads as uint
        0xd0, 0xfb,                                           //  int8 -5
        0xc4, 0x02, 0xaa, 0xbb,                               //  bin 2
        0xd5, 0x07, 0x01, 0x02,                               //  fixext2 type 7
        0x92, 0xc0, 0xc3,                                     //  [nil, true]
    };
    const uint8_t *p = bytes, *end = bytes + sizeof (bytes);
    mw_mp_obj_t o;
    assert_int_equal (mw_msgpack_read (&p, end, &o), 0);
    assert_int_equal (o.tag, MW_MP_FLOAT32);
    assert_true (o.d == 1.5);
    assert_int_equal (mw_msgpack_read (&p, end, &o), 0);
    assert_int_equal (o.tag, MW_MP_FLOAT64);
    assert_true (o.d == 2.5);
    assert_int_equal (mw_msgpack_read (&p, end, &o), 0);
    assert_int_equal (o.tag, MW_MP_UINT);
    assert_int_equal (o.u, 5);
    assert_int_equal (mw_msgpack_read (&p, end, &o), 0);
    assert_int_equal (o.tag, MW_MP_INT);
    assert_int_equal (o.i, -5);
    assert_int_equal (mw_msgpack_read (&p, end, &o), 0);
    assert_int_equal (o.tag, MW_MP_BIN);
    assert_int_equal (o.len, 2);
    assert_int_equal (o.ptr[0], 0xaa);
    assert_int_equal (mw_msgpack_read (&p, end, &o), 0);
    assert_int_equal (o.tag, MW_MP_EXT);
    assert_int_equal (o.len, 2);
    assert_int_equal (o.ptr[0], 0x01);
    assert_int_equal (mw_msgpack_read (&p, end, &o), 0);
    assert_int_equal (o.tag, MW_MP_ARRAY);
    assert_int_equal (o.len, 2);
    assert_int_equal (mw_msgpack_read (&p, end, &o), 0);
    assert_int_equal (o.tag, MW_MP_NIL);
    assert_int_equal (mw_msgpack_read (&p, end, &o), 0);
    assert_int_equal (o.tag, MW_MP_BOOL);
    assert_true (o.b);
    assert_ptr_equal (p, end);
    assert_int_equal (mw_msgpack_read (&p, end, &o), -1);

    //  Truncated, and a count the bytes cannot hold: -1, *pp unchanged.
    static const uint8_t short_str[] = {0xa5, 'a', 'b'};
    static const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0x00};
    p = short_str;
    assert_int_equal (mw_msgpack_read (&p, short_str + sizeof (short_str), &o), -1);
    assert_ptr_equal (p, short_str);
    p = huge_map;
    assert_int_equal (mw_msgpack_read (&p, huge_map + sizeof (huge_map), &o), -1);
    assert_ptr_equal (p, huge_map);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_err_names),
        cmocka_unit_test (test_type_and_key_names),
        cmocka_unit_test (test_init_and_set_str),
        cmocka_unit_test (test_roundtrip_each_type),
        cmocka_unit_test (test_roundtrip_custom_every_key),
        cmocka_unit_test (test_roundtrip_kv_nesting_limit),
        cmocka_unit_test (test_roundtrip_extremes),
        cmocka_unit_test (test_roundtrip_optional_only_with_has_bit),
        cmocka_unit_test (test_encode_bad_kv),
        cmocka_unit_test (test_encode_output_always_decodes),
        cmocka_unit_test (test_encode_kv_string_limit),
        cmocka_unit_test (test_encode_kv_known_keys_limits),
        cmocka_unit_test (test_decode_required_keys),
        cmocka_unit_test (test_decode_header_keys_required),
        cmocka_unit_test (test_independent_encoder_shuffled),
        cmocka_unit_test (test_independent_nil_is_absent),
        cmocka_unit_test (test_independent_number_forms),
        cmocka_unit_test (test_independent_extra_limits),
        cmocka_unit_test (test_decode_owns_its_copy),
        cmocka_unit_test (test_release_idempotent),
        cmocka_unit_test (test_copy_of_decoded),
        cmocka_unit_test (test_copy_of_built),
        cmocka_unit_test (test_copy_of_decoded_plus_kv),
        cmocka_unit_test (test_encoder_bytes_match_msgpack_c),
        cmocka_unit_test (test_msgpack_read),
    };
    return cmocka_run_group_tests_name ("codec", tests, NULL, NULL);
}
