/*  test_codec_hostile.c - the decoder against hostile input: wrong types,
    bad versions and topics, bad keys, huge declared lengths, deep nesting,
    truncated buffers, trailing bytes, reserved bytes; and mw_msgpack_check.
    Every case must give the right code, a message, an empty event, and no
    read outside the buffer (the suite also runs under ASan and valgrind).
*/
#include "codec_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  A valid custom event plus one pair (key, raw value).
static uint8_t *
body_with (const char *type, const char *key, const void *val, size_t vlen, size_t *len_p)
{
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, type);
    if (key)
        fs_put_raw (&fs, key, val, vlen);
    uint8_t *body = fs_body (&fs, NULL, len_p);
    fs_free (&fs);
    return body;
}

static int
expect_with (const char *label, const char *key, const void *val, size_t vlen, int expected,
             int alt)
{
    size_t len;
    uint8_t *body = body_with ("hostile", key, val, vlen, &len);
    int bad = check_decode_error (label, NULL, body, len, expected, alt);
    free (body);
    return bad;
}

//  ---------------------------------------------------------------------
//  Wrong msgpack types for every known key

typedef struct {
    const char *label;
    uint8_t bytes[16];
    size_t n;
} raw_t;

static const raw_t V_STR = {"str", {0xa1, 'x'}, 2};
static const raw_t V_BIN = {"bin", {0xc4, 0x01, 'x'}, 3};
static const raw_t V_NEG = {"negative fixint", {0xff}, 1};
static const raw_t V_NEG64 = {"int64 -1", {0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9};
static const raw_t V_F64 = {"float64", {0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, 9};
static const raw_t V_F32 = {"float32", {0xca, 0x3f, 0xc0, 0, 0}, 5};
static const raw_t V_TRUE = {"true", {0xc3}, 1};
static const raw_t V_FALSE = {"false", {0xc2}, 1};
static const raw_t V_ARR = {"array", {0x91, 0x01}, 2};
static const raw_t V_EMPTY_ARR = {"empty array", {0x90}, 1};
static const raw_t V_MAP = {"map", {0x81, 0xa1, 'a', 0x01}, 4};
static const raw_t V_EXT = {"fixext1", {0xd4, 0x01, 0x00}, 3};
static const raw_t V_UINT = {"uint 1", {0x01}, 1};
static const raw_t V_ZERO = {"uint 0", {0x00}, 1};

static void
test_wrong_type_every_known_key (void **state)
{
    (void) state;
    int failures = 0;
    static const struct {
        const char *key;
        const raw_t *wrong[12];
    } cases[] = {
        //  uint keys
        {"v", {&V_STR, &V_BIN, &V_NEG, &V_NEG64, &V_F64, &V_F32, &V_TRUE, &V_ARR, &V_MAP, &V_EXT}},
        {"ts", {&V_STR, &V_BIN, &V_NEG, &V_NEG64, &V_F64, &V_F32, &V_TRUE, &V_ARR, &V_MAP, &V_EXT}},
        {"sid", {&V_STR, &V_BIN, &V_NEG, &V_NEG64, &V_F64, &V_F32, &V_TRUE, &V_ARR, &V_MAP, &V_EXT}},
        {"seq", {&V_STR, &V_BIN, &V_NEG, &V_NEG64, &V_F64, &V_F32, &V_TRUE, &V_ARR, &V_MAP, &V_EXT}},
        {"id", {&V_STR, &V_BIN, &V_NEG, &V_NEG64, &V_F64, &V_F32, &V_TRUE, &V_ARR, &V_MAP, &V_EXT}},
        {"broker_ts",
         {&V_STR, &V_BIN, &V_NEG, &V_NEG64, &V_F64, &V_F32, &V_TRUE, &V_ARR, &V_MAP, &V_EXT}},
        {"truncated",
         {&V_STR, &V_BIN, &V_NEG, &V_NEG64, &V_F64, &V_F32, &V_TRUE, &V_ARR, &V_MAP, &V_EXT}},
        {"timeout_ms",
         {&V_STR, &V_BIN, &V_NEG, &V_NEG64, &V_F64, &V_F32, &V_TRUE, &V_ARR, &V_MAP, &V_EXT}},
        {"action_count",
         {&V_STR, &V_BIN, &V_NEG, &V_NEG64, &V_F64, &V_F32, &V_TRUE, &V_ARR, &V_MAP, &V_EXT}},
        //  bool
        {"success",
         {&V_STR, &V_BIN, &V_UINT, &V_ZERO, &V_NEG, &V_F64, &V_ARR, &V_EMPTY_ARR, &V_MAP, &V_EXT}},
        //  floats
        {"response_time", {&V_STR, &V_BIN, &V_TRUE, &V_FALSE, &V_ARR, &V_EMPTY_ARR, &V_MAP, &V_EXT}},
        {"score", {&V_STR, &V_BIN, &V_TRUE, &V_FALSE, &V_ARR, &V_EMPTY_ARR, &V_MAP, &V_EXT}},
        {"execution_time", {&V_STR, &V_BIN, &V_TRUE, &V_FALSE, &V_ARR, &V_EMPTY_ARR, &V_MAP, &V_EXT}},
    };
    static const raw_t *const not_str[] = {&V_UINT, &V_BIN, &V_NEG, &V_F64, &V_F32, &V_TRUE,
                                           &V_FALSE, &V_ARR, &V_EMPTY_ARR, &V_MAP, &V_EXT};
    char label[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t j = 0; j < 12 && cases[i].wrong[j]; j++) {
            const raw_t *w = cases[i].wrong[j];
            snprintf (label, sizeof label, "%s as %s", cases[i].key, w->label);
            failures += expect_with (label, cases[i].key, w->bytes, w->n, MW_ERR_FIELD_TYPE, -1);
        }
    //  Every string key, and type.
    for (int k = -1; k < MW_STR_COUNT; k++) {
        const char *key = k < 0 ? "type" : mw_str_key_name ((mw_str_key_t) k);
        for (size_t j = 0; j < sizeof not_str / sizeof not_str[0]; j++) {
            snprintf (label, sizeof label, "%s as %s", key, not_str[j]->label);
            failures += expect_with (label, key, not_str[j]->bytes, not_str[j]->n,
                                     MW_ERR_FIELD_TYPE, -1);
        }
    }
    //  A required key of the wrong type in its own type.
    for (size_t t = 0; t < TYPE_COUNT; t++)
        for (size_t r = 0; r < 3 && TYPES[t].required[r]; r++) {
            const key_desc_t *kd = key_desc (TYPES[t].required[r]);
            fields_t fs;
            fs_init (&fs);
            fs_header (&fs, TYPES[t].name);
            for (size_t o = 0; o < 3 && TYPES[t].required[o]; o++)
                fields_set (&fs, key_desc (TYPES[t].required[o]));
            const raw_t *w = kd->t == KT_STR ? &V_UINT : &V_STR;
            fs_put_raw (&fs, kd->name, w->bytes, w->n);
            size_t len;
            uint8_t *body = fs_body (&fs, NULL, &len);
            snprintf (label, sizeof label, "%s with %s as %s", TYPES[t].name, kd->name, w->label);
            failures += check_decode_error (label, TYPES[t].name, body, len, MW_ERR_FIELD_TYPE, -1);
            free (body);
            fs_free (&fs);
        }
    ASSERT_NO_FAILURES (failures);
}

static void
test_version (void **state)
{
    (void) state;
    int failures = 0;
    static const raw_t versions[] = {
        {"v 0", {0x00}, 1},
        {"v 2", {0x02}, 1},
        {"v 127", {0x7f}, 1},
        {"v 257", {0xcd, 0x01, 0x01}, 3},
        {"v 2^32+1", {0xcf, 0, 0, 0, 0x01, 0, 0, 0, 0x01}, 9},
        {"v max", {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9},
    };
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        failures += expect_with (versions[i].label, "v", versions[i].bytes, versions[i].n,
                                 MW_ERR_VERSION, -1);
    ASSERT_NO_FAILURES (failures);
}

static void
test_topic_differs (void **state)
{
    (void) state;
    int failures = 0;
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, "task_start");
    fs_put_str (&fs, "task_id", "t1");
    size_t len;
    uint8_t *body = fs_body (&fs, NULL, &len);
    static const char *const topics[] = {"task_stop", "task_star", "task_startx", "task_",
                                         "Task_start", "error", "task_complete", "x"};
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
        char label[64];
        snprintf (label, sizeof label, "topic %s, type task_start", topics[i]);
        failures += check_decode_error (label, topics[i], body, len, MW_ERR_TOPIC, -1);
    }
    //  A topic with a NUL after the type is not the type.
    mw_event_t d;
    mw_event_init (&d, MW_TYPE_CUSTOM);
    char err[128] = "";
    int rc = mw_event_decode (&d, "task_start\0", 11, body, len, err, sizeof err);
    if (rc != MW_ERR_TOPIC && rc != MW_ERR_TYPE_NAME) {
        print_error ("FAIL topic \"task_start\\0\": %s\n", mw_err_name (rc));
        failures++;
    }
    mw_event_release (&d);
    //  The right topic, and no topic, are fine.
    for (int t = 0; t < 2; t++) {
        if (check_decode_ok ("topic task_start", t ? "task_start" : NULL, body, len, &d) == 0) {
            assert_int_equal (d.kind, MW_TYPE_TASK_START);
            mw_event_release (&d);
        }
        else
            failures++;
    }
    free (body);
    fs_free (&fs);
    ASSERT_NO_FAILURES (failures);
}

static void
test_not_a_map (void **state)
{
    (void) state;
    int failures = 0;
    static const raw_t bodies[] = {
        {"fixarray", {0x92, 0x01, 0x02}, 3},
        {"empty array", {0x90}, 1},
        {"array16", {0xdc, 0x00, 0x01, 0xc0}, 4},
        {"positive fixint", {0x05}, 1},
        {"negative fixint", {0xe0}, 1},
        {"nil", {0xc0}, 1},
        {"true", {0xc3}, 1},
        {"fixstr", {0xa2, 'h', 'i'}, 3},
        {"str8", {0xd9, 0x01, 'x'}, 3},
        {"bin8", {0xc4, 0x01, 0x00}, 3},
        {"float64", {0xcb, 0, 0, 0, 0, 0, 0, 0, 0}, 9},
        {"uint64", {0xcf, 0, 0, 0, 0, 0, 0, 0, 1}, 9},
        {"fixext4", {0xd6, 0x01, 1, 2, 3, 4}, 6},
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        failures += check_decode_error (bodies[i].label, NULL, bodies[i].bytes, bodies[i].n,
                                        MW_ERR_NOT_MAP, -1);
    //  Empty bodies.
    failures += check_decode_error ("empty body", NULL, (const uint8_t *) "", 0, MW_ERR_EMPTY, -1);
    mw_event_t d;
    mw_event_init (&d, MW_TYPE_CUSTOM);
    char err[128] = "";
    assert_int_equal (mw_event_decode (&d, NULL, 0, NULL, 0, err, sizeof err), MW_ERR_EMPTY);
    assert_true (err[0] != '\0');
    char why[128];
    assert_true (event_is_empty (&d, why, sizeof why));
    mw_event_release (&d);
    //  An empty map is a map: missing keys.
    failures += check_decode_error ("empty map", NULL, (const uint8_t *) "\x80", 1,
                                    MW_ERR_MISSING, -1);
    ASSERT_NO_FAILURES (failures);
}

//  ---------------------------------------------------------------------
//  Keys

static uint8_t *
body_with_raw_pair (const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    size_t *len_p)
{
    //  The header pairs, then a raw key and value, under one map header.
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, "keys");
    size_t hl;
    uint8_t *h = fs_body (&fs, NULL, &hl);
    mp_t m;
    mp_init (&m);
    mp_byte (&m, (uint8_t) (0x80 | (fs.n + 1)));
    mp_raw (&m, h + 1, hl - 1);
    mp_raw (&m, key, klen);
    mp_raw (&m, val, vlen);
    uint8_t *out = malloc (m.sb.size);
    memcpy (out, m.sb.data, m.sb.size);
    *len_p = m.sb.size;
    mp_free (&m);
    free (h);
    fs_free (&fs);
    return out;
}

static void
test_bad_keys (void **state)
{
    (void) state;
    int failures = 0;
    static const raw_t keys[] = {
        {"uint key", {0x01}, 1},
        {"negative key", {0xff}, 1},
        {"nil key", {0xc0}, 1},
        {"bool key", {0xc3}, 1},
        {"float key", {0xca, 0, 0, 0, 0}, 5},
        {"bin key", {0xc4, 0x01, 'v'}, 3},
        {"ext key", {0xd4, 0x01, 'v'}, 3},
        {"array key", {0x91, 0xa1, 'v'}, 3},
        {"map key", {0x81, 0xa1, 'k', 0x01}, 4},
        {"empty string key", {0xa0}, 1},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t len;
        uint8_t *body = body_with_raw_pair (keys[i].bytes, keys[i].n, (const uint8_t *) "\x01",
                                            1, &len);
        failures += check_decode_error (keys[i].label, NULL, body, len, MW_ERR_KEY, -1);
        free (body);
    }
    //  Over-long keys: MW_MAX_KEY + 1, and much longer.
    size_t lens[] = {MW_MAX_KEY + 1, 1000, 60000};
    for (size_t i = 0; i < 3; i++) {
        char *key = malloc (lens[i] + 1);
        memset (key, 'k', lens[i]);
        key[lens[i]] = '\0';
        char label[64];
        snprintf (label, sizeof label, "key of %zu bytes", lens[i]);
        failures += expect_with (label, key, "\x01", 1, MW_ERR_KEY, -1);
        free (key);
    }
    ASSERT_NO_FAILURES (failures);
}

static void
test_repeated_keys (void **state)
{
    (void) state;
    int failures = 0;
    static const char *const keys[] = {"v",       "type",  "ts",     "miner", "sid",
                                       "seq",     "id",    "task_id", "prompt", "success",
                                       "score",   "truncated", "custom_key"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        fields_t fs;
        fs_init (&fs);
        fs_header (&fs, "task_complete");
        fs_put_str (&fs, "task_id", "t");
        fs_put_bool (&fs, "success", true);
        const field_t *f = fs_get (&fs, keys[i]);
        //  The same key and value again, or a new value.
        if (f) {
            uint8_t *val = malloc (f->vlen);
            memcpy (val, f->val, f->vlen);
            size_t vlen = f->vlen;
            fs_add_raw (&fs, keys[i], strlen (keys[i]), val, vlen);
            free (val);
        }
        else {
            const key_desc_t *kd = NULL;
            for (size_t k = 0; k < KEY_COUNT; k++)
                if (strcmp (KEYS[k].name, keys[i]) == 0)
                    kd = &KEYS[k];
            mp_t m;
            mp_init (&m);
            if (kd && kd->t == KT_STR)
                mp_str (&m, "x");
            else if (kd && kd->t == KT_FLOAT)
                mp_dbl (&m, 1.0);
            else
                mp_uint (&m, 1);
            fs_add_raw (&fs, keys[i], strlen (keys[i]), m.sb.data, m.sb.size);
            fs_add_raw (&fs, keys[i], strlen (keys[i]), m.sb.data, m.sb.size);
            mp_free (&m);
        }
        size_t len;
        uint8_t *body = fs_body (&fs, NULL, &len);
        char label[64];
        snprintf (label, sizeof label, "key %s twice", keys[i]);
        failures += check_decode_error (label, NULL, body, len, MW_ERR_KEY, -1);
        free (body);
        fs_free (&fs);
    }
    //  A known key repeated with nil the first or the second time.
    for (int nil_first = 0; nil_first < 2; nil_first++) {
        fields_t fs;
        fs_init (&fs);
        fs_header (&fs, "task_start");
        if (nil_first)
            fs_add_raw (&fs, "prompt", 6, "\xc0", 1);
        fs_put_str (&fs, "task_id", "t");
        fs_add_raw (&fs, "prompt", 6, "\xa1p", 2);
        if (!nil_first)
            fs_add_raw (&fs, "prompt", 6, "\xc0", 1);
        size_t len;
        uint8_t *body = fs_body (&fs, NULL, &len);
        failures += check_decode_error (nil_first ? "prompt nil then str" : "prompt str then nil",
                                        NULL, body, len, MW_ERR_KEY, -1);
        free (body);
        fs_free (&fs);
    }
    ASSERT_NO_FAILURES (failures);
}

//  ---------------------------------------------------------------------
//  Huge declared lengths

static void
test_huge_declared_lengths (void **state)
{
    (void) state;
    int failures = 0;
    static const raw_t values[] = {
        {"str32 0xFFFFFFFF", {0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c'}, 8},
        {"str16 0xFFFF", {0xda, 0xff, 0xff, 'a', 'b'}, 5},
        {"str8 0xFF", {0xd9, 0xff, 'a'}, 3},
        {"fixstr 31", {0xbf, 'a', 'b'}, 3},
        {"bin32 0xFFFFFFFF", {0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, 8},
        {"bin16 0xFFFF", {0xc5, 0xff, 0xff, 1}, 4},
        {"bin8 0xFF", {0xc4, 0xff, 1}, 3},
        {"array32 0xFFFFFFFF", {0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, 8},
        {"array16 0xFFFF", {0xdc, 0xff, 0xff, 1, 2}, 5},
        {"fixarray 15", {0x9f, 1, 2}, 3},
        {"map32 0xFFFFFFFF", {0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, 8},
        {"map16 0xFFFF", {0xde, 0xff, 0xff, 1, 2}, 5},
        {"fixmap 15", {0x8f, 1, 2}, 3},
        {"ext32 0xFFFFFFFF", {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 2}, 8},
        {"ext16 0xFFFF", {0xc8, 0xff, 0xff, 0x01, 1}, 5},
        {"ext8 0xFF", {0xc7, 0xff, 0x01, 1}, 4},
        {"fixext16", {0xd8, 0x01, 1, 2, 3}, 5},
        {"uint64 cut", {0xcf, 1, 2, 3}, 4},
        {"float64 cut", {0xcb, 1, 2}, 3},
        {"array32 of nils, 0xFFFFFFFF", {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0}, 8},
        {"map32 of nils, 0x7FFFFFFF", {0xdf, 0x7f, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0}, 8},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        //  As the last value of a custom key (the header is complete), as a
        //  known key's value where it is of the key's type, and as a whole body.
        char label[96];
        snprintf (label, sizeof label, "custom value %s", values[i].label);
        failures += expect_with (label, "custom", values[i].bytes, values[i].n, MW_ERR_MALFORMED,
                                 -1);
        uint8_t c = values[i].bytes[0];
        const char *known = (c == 0xdb || c == 0xda || c == 0xd9 || (c & 0xe0) == 0xa0)
                                ? "prompt"
                            : (c == 0xcf)   ? "timeout_ms"
                            : (c == 0xcb) ? "score"
                                            : NULL;
        if (known) {
            snprintf (label, sizeof label, "%s as %s", known, values[i].label);
            failures += expect_with (label, known, values[i].bytes, values[i].n,
                                     MW_ERR_MALFORMED, -1);
        }
        snprintf (label, sizeof label, "body %s", values[i].label);
        if (c == 0xdf || c == 0xde || (c & 0xf0) == 0x80) //  a cut map; its first key is a uint
            failures += check_decode_error (label, NULL, values[i].bytes, values[i].n,
                                            MW_ERR_MALFORMED, MW_ERR_KEY);
        else //  not a map and truncated: either says what is wrong
            failures += check_decode_error (label, NULL, values[i].bytes, values[i].n,
                                            MW_ERR_MALFORMED, MW_ERR_NOT_MAP);
    }
    //  The brief's case: map16 declaring 65535 entries in a 5-byte body.
    failures += check_decode_error ("map16 65535 entries in 5 bytes", NULL,
                                    (const uint8_t *) "\xde\xff\xff\xa1v", 5, MW_ERR_MALFORMED,
                                    -1);
    failures += check_decode_error ("map32 0xFFFFFFFF entries in 8 bytes", NULL,
                                    (const uint8_t *) "\xdf\xff\xff\xff\xff\xa1v\x01", 8,
                                    MW_ERR_MALFORMED, -1);
    //  A key declaring a huge length.
    static const raw_t keys[] = {
        {"key str32 0xFFFFFFFF", {0xdb, 0xff, 0xff, 0xff, 0xff, 'k'}, 6},
        {"key str16 0xFFFF", {0xda, 0xff, 0xff, 'k'}, 4},
        {"key fixstr 31", {0xbf, 'k'}, 2},
    };
    for (size_t i = 0; i < 3; i++) {
        size_t len;
        uint8_t *body = body_with_raw_pair (keys[i].bytes, keys[i].n, NULL, 0, &len);
        failures += check_decode_error (keys[i].label, NULL, body, len, MW_ERR_MALFORMED,
                                        MW_ERR_KEY);
        free (body);
    }
    ASSERT_NO_FAILURES (failures);
}

//  ---------------------------------------------------------------------
//  Nesting

static void
test_deep_nesting (void **state)
{
    (void) state;
    int failures = 0;
    //  The deepest fits in MW_MAX_BODY (a nested map level is 3 bytes).
    size_t depths[] = {MW_MAX_DEPTH + 1, MW_MAX_DEPTH + 2, 100, 1000, 20000};
    for (int maps = 0; maps < 2; maps++) {
        //  Exactly MW_MAX_DEPTH is allowed and carried.
        mp_t m;
        mp_init (&m);
        if (maps)
            mp_nested_maps (&m, MW_MAX_DEPTH);
        else
            mp_nested_arrays (&m, MW_MAX_DEPTH);
        size_t len;
        uint8_t *body = body_with ("nesting", "deep", m.sb.data, m.sb.size, &len);
        mw_event_t d;
        if (check_decode_ok (maps ? "maps MW_MAX_DEPTH deep" : "arrays MW_MAX_DEPTH deep", NULL,
                             body, len, &d)
            == 0) {
            const uint8_t *v;
            size_t n;
            if (extras_find (&d, "deep", &v, &n) != 0 || n != m.sb.size
                || memcmp (v, m.sb.data, n) != 0) {
                print_error ("FAIL MW_MAX_DEPTH value not carried\n");
                failures++;
            }
            mw_event_release (&d);
        }
        else
            failures++;
        free (body);
        mp_free (&m);
        for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
            mp_init (&m);
            if (maps)
                mp_nested_maps (&m, depths[i]);
            else
                mp_nested_arrays (&m, depths[i]);
            char label[64];
            snprintf (label, sizeof label, "%s %zu deep", maps ? "maps" : "arrays", depths[i]);
            failures += expect_with (label, "deep", m.sb.data, m.sb.size, MW_ERR_TOO_DEEP, -1);
            //  Also under task_step details, and inside a wider value.
            failures += expect_with (label, "details", m.sb.data, m.sb.size, MW_ERR_TOO_DEEP, -1);
            mp_t w;
            mp_init (&w);
            mp_array (&w, 3);
            mp_uint (&w, 1);
            mp_raw (&w, m.sb.data, m.sb.size);
            mp_str (&w, "after");
            snprintf (label, sizeof label, "%s %zu deep inside an array", maps ? "maps" : "arrays",
                      depths[i]);
            failures += expect_with (label, "deep", w.sb.data, w.sb.size, MW_ERR_TOO_DEEP, -1);
            mp_free (&w);
            mp_free (&m);
        }
    }
    //  Deep nesting that is also cut short: an error either way, no crash.
    mp_t m;
    mp_init (&m);
    for (int i = 0; i < 1000; i++)
        mp_byte (&m, 0x92);
    failures += expect_with ("1000 nested arrays, cut short", "deep", m.sb.data, m.sb.size,
                             MW_ERR_TOO_DEEP, MW_ERR_MALFORMED);
    mp_free (&m);
    ASSERT_NO_FAILURES (failures);
}

//  ---------------------------------------------------------------------
//  Truncation, trailing bytes, reserved bytes

static uint8_t *
rich_event (size_t *len_p)
{
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, "task_complete");
    fs_put_str (&fs, "task_id", "task-\xc3\xa9-1");
    fs_put_bool (&fs, "success", false);
    fs_put_uint (&fs, "action_count", 300);
    fs_put_dbl (&fs, "response_time", 2.5);
    fs_put_str (&fs, "error", "boom");
    fs_put_uint (&fs, "id", 70000);
    mp_t m;
    mp_init (&m);
    mp_map (&m, 2);
    mp_str (&m, "list");
    mp_array (&m, 4);
    mp_nil (&m);
    mp_int (&m, -40000);
    mp_flt (&m, 0.5f);
    mp_bin (&m, "\x00\x01", 2);
    mp_str (&m, "ext");
    msgpack_pack_ext_with_body (&m.pk, "\x01\x02\x03", 3, 5);
    fs_put_mp (&fs, "custom", &m);
    mp_free (&m);
    uint8_t *body = fs_body (&fs, NULL, len_p);
    fs_free (&fs);
    return body;
}

static void
test_every_prefix (void **state)
{
    (void) state;
    int failures = 0;
    size_t len;
    uint8_t *body = rich_event (&len);
    mw_event_t d;
    assert_int_equal (check_decode_ok ("rich event", "task_complete", body, len, &d), 0);
    mw_event_release (&d);
    for (size_t n = 0; n < len && failures < 10; n++) {
        char label[96];
        snprintf (label, sizeof label, "prefix of %zu of %zu bytes", n, len);
        failures += check_decode_error (label, n % 2 ? "task_complete" : NULL, body, n,
                                        n ? MW_ERR_MALFORMED : MW_ERR_EMPTY, -1);
    }
    //  Prefixes of an event made by mw_event_encode, with every key.
    mw_event_t e;
    assert_int_equal (mw_event_init_named (&e, "every_key"), 0);
    mw_event_set_str (&e, MW_K_MINER, "m");
    for (size_t i = 0; i < KEY_COUNT; i++)
        built_set (&e, &KEYS[i]);
    static const mw_kv_t kv[] = {{.key = "k", .kind = MW_KV_STR, .val.s = {"vvvv", 4}}};
    e.kv = kv;
    e.kv_count = 1;
    uint8_t *enc;
    size_t enc_len;
    assert_int_equal (encode_alloc (&e, &enc, &enc_len, NULL), MW_OK);
    for (size_t n = 0; n < enc_len && failures < 10; n++) {
        char label[96];
        snprintf (label, sizeof label, "encoded prefix of %zu of %zu bytes", n, enc_len);
        failures += check_decode_error (label, NULL, enc, n, n ? MW_ERR_MALFORMED : MW_ERR_EMPTY,
                                        -1);
    }
    free (enc);
    free (body);
    ASSERT_NO_FAILURES (failures);
}

static void
test_trailing_bytes (void **state)
{
    (void) state;
    int failures = 0;
    size_t len;
    uint8_t *body = rich_event (&len);
    static const raw_t tails[] = {
        {"one zero byte", {0x00}, 1},
        {"a nil", {0xc0}, 1},
        {"0xc1", {0xc1}, 1},
        {"an empty map", {0x80}, 1},
        {"a truncated str32", {0xdb, 0xff, 0xff, 0xff, 0xff}, 5},
    };
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        uint8_t *b = malloc (len + tails[i].n);
        memcpy (b, body, len);
        memcpy (b + len, tails[i].bytes, tails[i].n);
        char label[64];
        snprintf (label, sizeof label, "trailing %s", tails[i].label);
        failures += check_decode_error (label, NULL, b, len + tails[i].n, MW_ERR_TRAILING, -1);
        free (b);
    }
    //  Two whole events in one frame.
    uint8_t *two = malloc (2 * len);
    memcpy (two, body, len);
    memcpy (two + len, body, len);
    failures += check_decode_error ("two events in one body", NULL, two, 2 * len, MW_ERR_TRAILING,
                                    -1);
    free (two);
    free (body);
    ASSERT_NO_FAILURES (failures);
}

static void
test_reserved_byte (void **state)
{
    (void) state;
    int failures = 0;
    failures += expect_with ("custom value 0xc1", "custom", "\xc1", 1, MW_ERR_MALFORMED, -1);
    failures += expect_with ("custom value [1, 0xc1]", "custom", "\x92\x01\xc1", 3,
                             MW_ERR_MALFORMED, -1);
    failures += expect_with ("custom value {a: 0xc1}", "custom", "\x81\xa1\x61\xc1", 4,
                             MW_ERR_MALFORMED, -1);
    failures += expect_with ("prompt 0xc1", "prompt", "\xc1", 1, MW_ERR_MALFORMED,
                             MW_ERR_FIELD_TYPE);
    failures += expect_with ("seq 0xc1", "seq", "\xc1", 1, MW_ERR_MALFORMED, MW_ERR_FIELD_TYPE);
    size_t len;
    uint8_t *body = body_with_raw_pair ((const uint8_t *) "\xc1", 1, (const uint8_t *) "\x01", 1,
                                        &len);
    failures += check_decode_error ("key 0xc1", NULL, body, len, MW_ERR_MALFORMED, MW_ERR_KEY);
    free (body);
    failures += check_decode_error ("body 0xc1", NULL, (const uint8_t *) "\xc1", 1,
                                    MW_ERR_MALFORMED, MW_ERR_NOT_MAP);
    failures += check_decode_error ("body 0xc1 0x80", NULL, (const uint8_t *) "\xc1\x80", 2,
                                    MW_ERR_MALFORMED, MW_ERR_NOT_MAP);
    ASSERT_NO_FAILURES (failures);
}

//  ---------------------------------------------------------------------
//  mw_msgpack_check

static void
test_msgpack_check_formats (void **state)
{
    (void) state;
    int failures = 0;
    mp_t m;
    mp_init (&m);
    //  One object of every format, built byte by byte.
    for (int f = 0; f < 40; f++) {
        mp_clear (&m);
        const char *label = NULL;
        switch (f) {
        case 0: label = "positive fixint"; mp_byte (&m, 0x7f); break;
        case 1: label = "negative fixint"; mp_byte (&m, 0xe0); break;
        case 2: label = "nil"; mp_byte (&m, 0xc0); break;
        case 3: label = "false"; mp_byte (&m, 0xc2); break;
        case 4: label = "true"; mp_byte (&m, 0xc3); break;
        case 5: label = "uint8"; mp_byte (&m, 0xcc); mp_byte (&m, 0xff); break;
        case 6: label = "uint16"; mp_byte (&m, 0xcd); mp_be16 (&m, 0xffff); break;
        case 7: label = "uint32"; mp_byte (&m, 0xce); mp_be32 (&m, 0xffffffffu); break;
        case 8: label = "uint64"; mp_byte (&m, 0xcf); mp_be64 (&m, UINT64_MAX); break;
        case 9: label = "int8"; mp_byte (&m, 0xd0); mp_byte (&m, 0x80); break;
        case 10: label = "int16"; mp_byte (&m, 0xd1); mp_be16 (&m, 0x8000); break;
        case 11: label = "int32"; mp_byte (&m, 0xd2); mp_be32 (&m, 0x80000000u); break;
        case 12: label = "int64"; mp_byte (&m, 0xd3); mp_be64 (&m, UINT64_C (1) << 63); break;
        case 13: label = "float32"; mp_byte (&m, 0xca); mp_be32 (&m, 0x3f800000u); break;
        case 14: label = "float64"; mp_byte (&m, 0xcb); mp_be64 (&m, UINT64_C (0x3ff0000000000000)); break;
        case 15: label = "fixstr"; mp_byte (&m, 0xa3); mp_raw (&m, "abc", 3); break;
        case 16: label = "fixstr empty"; mp_byte (&m, 0xa0); break;
        case 17: label = "str8"; mp_byte (&m, 0xd9); mp_byte (&m, 40); for (int i = 0; i < 40; i++) mp_byte (&m, 's'); break;
        case 18: label = "str16"; mp_byte (&m, 0xda); mp_be16 (&m, 300); for (int i = 0; i < 300; i++) mp_byte (&m, 's'); break;
        case 19: label = "str32"; mp_byte (&m, 0xdb); mp_be32 (&m, 70000); for (int i = 0; i < 70000; i++) mp_byte (&m, 's'); break;
        case 20: label = "bin8"; mp_byte (&m, 0xc4); mp_byte (&m, 2); mp_raw (&m, "\0\1", 2); break;
        case 21: label = "bin16"; mp_byte (&m, 0xc5); mp_be16 (&m, 256); for (int i = 0; i < 256; i++) mp_byte (&m, (uint8_t) i); break;
        case 22: label = "bin32"; mp_byte (&m, 0xc6); mp_be32 (&m, 3); mp_raw (&m, "\1\2\3", 3); break;
        case 23: label = "fixarray"; mp_byte (&m, 0x93); mp_byte (&m, 1); mp_byte (&m, 0xc0); mp_raw (&m, "\xa1x", 2); break;
        case 24: label = "array16"; mp_byte (&m, 0xdc); mp_be16 (&m, 20); for (int i = 0; i < 20; i++) mp_byte (&m, (uint8_t) i); break;
        case 25: label = "array32"; mp_byte (&m, 0xdd); mp_be32 (&m, 2); mp_byte (&m, 0xc3); mp_byte (&m, 0xc2); break;
        case 26: label = "fixmap"; mp_byte (&m, 0x82); mp_raw (&m, "\xa1k\x01\x02\xc0", 5); break;
        case 27: label = "map16"; mp_byte (&m, 0xde); mp_be16 (&m, 1); mp_raw (&m, "\xc0\xc0", 2); break;
        case 28: label = "map32"; mp_byte (&m, 0xdf); mp_be32 (&m, 1); mp_raw (&m, "\x90\x80", 2); break;
        case 29: label = "fixext1"; mp_raw (&m, "\xd4\x01\xaa", 3); break;
        case 30: label = "fixext2"; mp_raw (&m, "\xd5\x01\xaa\xbb", 4); break;
        case 31: label = "fixext4"; mp_raw (&m, "\xd6\xff\x01\x02\x03\x04", 6); break;
        case 32: label = "fixext8"; mp_raw (&m, "\xd7\x01" "12345678", 10); break;
        case 33: label = "fixext16"; mp_raw (&m, "\xd8\x01" "1234567890123456", 18); break;
        case 34: label = "ext8"; mp_raw (&m, "\xc7\x03\x01" "abc", 6); break;
        case 35: label = "ext16"; mp_raw (&m, "\xc8\x00\x03\x01" "abc", 7); break;
        case 36: label = "ext32"; mp_raw (&m, "\xc9\x00\x00\x00\x03\x01" "abc", 9); break;
        case 37: label = "ext8 empty"; mp_raw (&m, "\xc7\x00\x01", 3); break;
        case 38: label = "empty fixarray"; mp_byte (&m, 0x90); break;
        case 39: label = "empty fixmap"; mp_byte (&m, 0x80); break;
        }
        const uint8_t *p = (const uint8_t *) m.sb.data;
        size_t n = m.sb.size;
        //  Exact size, and followed by more bytes: the object's size.
        uint8_t *exact = malloc (n);
        memcpy (exact, p, n);
        size_t size = 0;
        int rc = mw_msgpack_check (exact, n, 4, &size);
        if (rc != MW_OK || size != n) {
            print_error ("FAIL check %s: %s, size %zu, expected ok and %zu\n", label,
                         mw_err_name (rc), size, n);
            failures++;
        }
        free (exact);
        uint8_t *more = malloc (n + 3);
        memcpy (more, p, n);
        memcpy (more + n, "\xc0\xc0\xc0", 3);
        size = 0;
        rc = mw_msgpack_check (more, n + 3, 4, &size);
        if (rc != MW_OK || size != n) {
            print_error ("FAIL check %s followed by bytes: %s, size %zu\n", label,
                         mw_err_name (rc), size);
            failures++;
        }
        free (more);
        //  Every proper prefix: declared lengths beyond the buffer (of a
        //  long object, the first and last 64).
        for (size_t k = 0; k < n; k = (k == 63 && n > 256) ? n - 64 : k + 1) {
            uint8_t *pre = malloc (k ? k : 1);
            memcpy (pre, p, k);
            rc = mw_msgpack_check (pre, k, 4, &size);
            if (rc != MW_ERR_MALFORMED) {
                print_error ("FAIL check %s cut to %zu bytes: %s\n", label, k, mw_err_name (rc));
                failures++;
                free (pre);
                break;
            }
            free (pre);
        }
    }
    mp_free (&m);
    //  The reserved byte, and huge declared lengths with a few bytes after.
    static const raw_t bad[] = {
        {"0xc1", {0xc1}, 1},
        {"[0xc1]", {0x91, 0xc1}, 2},
        {"str32 0xFFFFFFFF", {0xdb, 0xff, 0xff, 0xff, 0xff, 'a'}, 6},
        {"bin32 0xFFFFFFFF", {0xc6, 0xff, 0xff, 0xff, 0xff, 'a'}, 6},
        {"ext32 0xFFFFFFFF", {0xc9, 0xff, 0xff, 0xff, 0xff, 1, 'a'}, 7},
        {"array32 0xFFFFFFFF", {0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, 8},
        {"map32 0xFFFFFFFF", {0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2, 3}, 8},
        {"map16 0xFFFF", {0xde, 0xff, 0xff, 0xa1, 'v'}, 5},
        {"array16 of nils 0xFFFF", {0xdc, 0xff, 0xff, 0xc0, 0xc0, 0xc0}, 6},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t size = 777;
        int rc = mw_msgpack_check (bad[i].bytes, bad[i].n, 16, &size);
        if (rc != MW_ERR_MALFORMED) {
            print_error ("FAIL check %s: %s, expected malformed\n", bad[i].label,
                         mw_err_name (rc));
            failures++;
        }
    }
    size_t size;
    assert_int_equal (mw_msgpack_check ((const uint8_t *) "", 0, 16, &size), MW_ERR_MALFORMED);
    //  size_p may be NULL.
    assert_int_equal (mw_msgpack_check ((const uint8_t *) "\x01", 1, 16, NULL), MW_OK);
    ASSERT_NO_FAILURES (failures);
}

static void
test_msgpack_check_depth (void **state)
{
    (void) state;
    int failures = 0;
    for (int maps = 0; maps < 2; maps++)
        for (int depth = 0; depth <= 40; depth++) {
            mp_t m;
            mp_init (&m);
            if (maps)
                mp_nested_maps (&m, (size_t) depth + 1);
            else
                mp_nested_arrays (&m, (size_t) depth + 1);
            size_t size = 0;
            //  depth + 1 containers: fine with max_depth depth + 1, too deep with depth.
            int rc = mw_msgpack_check ((const uint8_t *) m.sb.data, m.sb.size, depth + 1, &size);
            if (rc != MW_OK || size != m.sb.size) {
                print_error ("FAIL check %d nested %s, max_depth %d: %s\n", depth + 1,
                             maps ? "maps" : "arrays", depth + 1, mw_err_name (rc));
                failures++;
            }
            rc = mw_msgpack_check ((const uint8_t *) m.sb.data, m.sb.size, depth, &size);
            if (rc != MW_ERR_TOO_DEEP) {
                print_error ("FAIL check %d nested %s, max_depth %d: %s, expected too_deep\n",
                             depth + 1, maps ? "maps" : "arrays", depth, mw_err_name (rc));
                failures++;
            }
            mp_free (&m);
        }
    //  Scalars need no depth.
    size_t size;
    assert_int_equal (mw_msgpack_check ((const uint8_t *) "\xa1x", 2, 0, &size), MW_OK);
    assert_int_equal (size, 2);
    //  Very deep input is bounded by max_depth, not by the stack.
    size_t n = 1000000;
    uint8_t *deep = malloc (n);
    memset (deep, 0x91, n - 1);
    deep[n - 1] = 0x90;
    assert_int_equal (mw_msgpack_check (deep, n, MW_MAX_DEPTH, &size), MW_ERR_TOO_DEEP);
    assert_int_equal (mw_msgpack_check (deep, n, 1000, &size), MW_ERR_TOO_DEEP);
    assert_int_equal (mw_msgpack_check (deep + n - 1000, 1000, 1000, &size), MW_OK);
    assert_int_equal (size, 1000);
    free (deep);
    ASSERT_NO_FAILURES (failures);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_wrong_type_every_known_key),
        cmocka_unit_test (test_version),
        cmocka_unit_test (test_topic_differs),
        cmocka_unit_test (test_not_a_map),
        cmocka_unit_test (test_bad_keys),
        cmocka_unit_test (test_repeated_keys),
        cmocka_unit_test (test_huge_declared_lengths),
        cmocka_unit_test (test_deep_nesting),
        cmocka_unit_test (test_every_prefix),
        cmocka_unit_test (test_trailing_bytes),
        cmocka_unit_test (test_reserved_byte),
        cmocka_unit_test (test_msgpack_check_formats),
        cmocka_unit_test (test_msgpack_check_depth),
    };
    return cmocka_run_group_tests_name ("codec_hostile", tests, NULL, NULL);
}
