/*  test_codec_limits.c - every limit of wire protocol v1: string lengths
    (cut at a UTF-8 boundary, counted in `truncated`), task_id and miner,
    type names, body size, and encoding into a buffer that is too small.
*/
#include "codec_keys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MINER "miner-7"

static void
set_header (mw_event_t *e)
{
    mw_event_set_str (e, MW_K_MINER, MINER);
    e->ts = 1;
    e->sid = 2;
    e->seq = 3;
}

//  A test string: `total` bytes of ASCII with the multi-byte character mb
//  at byte `at` (mb NULL: ASCII only).
typedef struct {
    const char *label;
    size_t delta_total; //  total = limit + delta_total - 8 (so it can be below)
    size_t delta_at;    //  at = limit + delta_at - 8
    const char *mb;
} str_case_t;

#define D(x) ((size_t) ((x) + 8))
static const str_case_t STR_CASES[] = {
    {"ascii, limit - 1", D (-1), 0, NULL},
    {"ascii, exactly the limit", D (0), 0, NULL},
    {"ascii, limit + 1", D (1), 0, NULL},
    {"ascii, limit + 7", D (7), 0, NULL},
    {"2-byte char ending at the limit", D (0), D (-2), "\xc3\xa9"},
    {"2-byte char straddling the limit", D (1), D (-1), "\xc3\xa9"},
    {"2-byte char right after the limit", D (2), D (0), "\xc3\xa9"},
    {"3-byte char ending at the limit", D (0), D (-3), "\xe2\x82\xac"},
    {"3-byte char, 1 byte over", D (1), D (-2), "\xe2\x82\xac"},
    {"3-byte char, 2 bytes over", D (2), D (-1), "\xe2\x82\xac"},
    {"4-byte char ending at the limit", D (0), D (-4), "\xf0\x9f\x98\x80"},
    {"4-byte char ending at the limit, then 1 more", D (1), D (-4), "\xf0\x9f\x98\x80"},
    {"4-byte char, 1 byte over", D (1), D (-3), "\xf0\x9f\x98\x80"},
    {"4-byte char, 2 bytes over", D (2), D (-2), "\xf0\x9f\x98\x80"},
    {"4-byte char, 3 bytes over", D (3), D (-1), "\xf0\x9f\x98\x80"},
};
#define STR_CASE_COUNT (sizeof STR_CASES / sizeof STR_CASES[0])

//  Fill buf (total + 1 bytes) and return the expected length after the cut.
static size_t
make_case (const str_case_t *c, size_t limit, char *buf, size_t *total_p)
{
    size_t total = limit + c->delta_total - 8;
    memset (buf, 'a', total);
    buf[total] = '\0';
    size_t expect = total <= limit ? total : limit;
    if (c->mb) {
        size_t at = limit + c->delta_at - 8, n = strlen (c->mb);
        memcpy (buf + at, c->mb, n);
        if (total > limit && at < limit && at + n > limit)
            expect = at;
    }
    *total_p = total;
    return expect;
}

//  Is s[0..n) valid UTF-8?
static bool
utf8_valid (const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t i = 0;
    while (i < n) {
        size_t len = p[i] < 0x80 ? 1 : (p[i] & 0xe0) == 0xc0 ? 2 : (p[i] & 0xf0) == 0xe0 ? 3
                                     : (p[i] & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + len > n)
            return false;
        for (size_t j = 1; j < len; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

static int
check_cut_string (const char *label, const mw_event_t *d, int k, const char *src, size_t expect)
{
    const mw_str_t *s = &d->str[k];
    if (!s->ptr || s->len != expect || memcmp (s->ptr, src, expect) != 0 || s->ptr[expect] != 0
        || !utf8_valid (s->ptr, s->len)) {
        print_error ("FAIL %s: %s decoded with %u bytes, expected %zu (a valid UTF-8 prefix)\n",
                     label, mw_str_key_name ((mw_str_key_t) k), s->ptr ? s->len : 0, expect);
        return 1;
    }
    return 0;
}

static void
test_string_limits_encode (void **state)
{
    (void) state;
    int failures = 0;
    char *buf = malloc (MW_MAX_STR + 64);
    for (int k = 0; k < MW_STR_COUNT; k++) {
        size_t limit = mw_str_key_limit ((mw_str_key_t) k);
        for (size_t c = 0; c < STR_CASE_COUNT; c++) {
            size_t total;
            size_t expect = make_case (&STR_CASES[c], limit, buf, &total);
            uint32_t expect_cut = expect < total;
            char label[160];
            snprintf (label, sizeof label, "encode %s (limit %zu): %s",
                      mw_str_key_name ((mw_str_key_t) k), limit, STR_CASES[c].label);
            mw_event_t e, d;
            assert_int_equal (mw_event_init_named (&e, "limits"), 0);
            set_header (&e);
            mw_event_set_str (&e, (mw_str_key_t) k, buf);
            uint8_t *b1, *b2;
            size_t l1, l2;
            uint32_t cut = 99;
            int rc = encode_alloc (&e, &b1, &l1, &cut);
            if (rc != MW_OK) {
                print_error ("FAIL %s: encode returned %s\n", label, mw_err_name (rc));
                failures++;
                continue;
            }
            if (cut != expect_cut) {
                print_error ("FAIL %s: *truncated_p %u, expected %u\n", label, cut, expect_cut);
                failures++;
            }
            if (check_decode_ok (label, "limits", b1, l1, &d) == 0) {
                failures += check_cut_string (label, &d, k, buf, expect);
                if (d.truncated != expect_cut) {
                    print_error ("FAIL %s: decoded truncated %u, expected %u\n", label,
                                 d.truncated, expect_cut);
                    failures++;
                }
                //  Re-encoding cuts nothing more and carries the count.
                if (encode_alloc (&d, &b2, &l2, &cut) != MW_OK || cut != 0 || l1 != l2
                    || memcmp (b1, b2, l1) != 0) {
                    print_error ("FAIL %s: re-encoding is not byte-identical\n", label);
                    failures++;
                }
                free (b2);
                mw_event_release (&d);
            }
            else
                failures++;
            free (b1);
        }
    }
    free (buf);
    ASSERT_NO_FAILURES (failures);
}

static void
test_string_limits_encode_counts (void **state)
{
    (void) state;
    //  Every string key over its limit at once, and a count already set.
    size_t big = 1 << 20;
    char *huge = malloc (big + 1);
    memset (huge, 'x', big);
    huge[big] = '\0';
    mw_event_t e, d;
    assert_int_equal (mw_event_init_named (&e, "all_over"), 0);
    set_header (&e);
    for (int k = 0; k < MW_STR_COUNT; k++)
        mw_event_set_str (&e, (mw_str_key_t) k, huge);
    e.truncated = 2; //  cut upstream already
    uint8_t *b;
    size_t l;
    uint32_t cut = 0;
    assert_int_equal (encode_alloc (&e, &b, &l, &cut), MW_OK);
    assert_int_equal (cut, MW_STR_COUNT);
    assert_int_equal (check_decode_ok ("every string over", NULL, b, l, &d), 0);
    assert_int_equal (d.truncated, MW_STR_COUNT + 2);
    for (int k = 0; k < MW_STR_COUNT; k++)
        assert_int_equal (d.str[k].len, mw_str_key_limit ((mw_str_key_t) k));
    mw_event_release (&d);
    free (b);

    //  Whole strings of multi-byte characters.
    static const struct {
        const char *ch;
        size_t expect; //  for MW_MAX_STR
    } chars[] = {{"\xc3\xa9", 4096}, {"\xe2\x82\xac", 4095}, {"\xf0\x9f\x98\x80", 4096}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen (chars[i].ch), total = 0;
        while (total + n <= 6000) {
            memcpy (huge + total, chars[i].ch, n);
            total += n;
        }
        huge[total] = '\0';
        assert_int_equal (mw_event_init_named (&e, "all_over"), 0);
        set_header (&e);
        mw_event_set_str (&e, MW_K_PROMPT, huge);
        assert_int_equal (encode_alloc (&e, &b, &l, &cut), MW_OK);
        assert_int_equal (cut, 1);
        assert_int_equal (check_decode_ok ("multi-byte string", NULL, b, l, &d), 0);
        assert_int_equal (check_cut_string ("multi-byte string", &d, MW_K_PROMPT, huge,
                                            chars[i].expect),
                          0);
        mw_event_release (&d);
        free (b);
    }
    free (huge);
}

static void
test_string_limits_decode (void **state)
{
    (void) state;
    int failures = 0;
    char *buf = malloc (MW_MAX_STR + 64);
    for (int k = 0; k < MW_STR_COUNT; k++) {
        size_t limit = mw_str_key_limit ((mw_str_key_t) k);
        for (size_t c = 0; c < STR_CASE_COUNT; c++) {
            for (int wire_count = 0; wire_count < 2; wire_count++) {
                size_t total;
                size_t expect = make_case (&STR_CASES[c], limit, buf, &total);
                uint32_t expect_trunc = (expect < total) + (wire_count ? 5 : 0);
                char label[200];
                snprintf (label, sizeof label, "decode %s (limit %zu): %s%s",
                          mw_str_key_name ((mw_str_key_t) k), limit, STR_CASES[c].label,
                          wire_count ? ", truncated: 5 on the wire" : "");
                fields_t fs;
                fs_init (&fs);
                fs_header (&fs, "limits");
                fs_put_strn (&fs, mw_str_key_name ((mw_str_key_t) k), buf, total);
                if (wire_count)
                    fs_put_uint (&fs, "truncated", 5);
                size_t len;
                uint8_t *body = fs_body (&fs, NULL, &len);
                mw_event_t d, d2;
                if (check_decode_ok (label, NULL, body, len, &d) == 0) {
                    failures += check_cut_string (label, &d, k, buf, expect);
                    if (d.truncated != expect_trunc) {
                        print_error ("FAIL %s: truncated %u, expected %u\n", label, d.truncated,
                                     expect_trunc);
                        failures++;
                    }
                    //  Forwarded (the broker): the count is carried, not doubled.
                    uint8_t *b2;
                    size_t l2;
                    uint32_t cut = 9;
                    if (encode_alloc (&d, &b2, &l2, &cut) == MW_OK) {
                        if (cut != 0) {
                            print_error ("FAIL %s: re-encode cut %u\n", label, cut);
                            failures++;
                        }
                        if (check_decode_ok (label, NULL, b2, l2, &d2) == 0) {
                            if (d2.truncated != expect_trunc) {
                                print_error ("FAIL %s: forwarded truncated %u, expected %u\n",
                                             label, d2.truncated, expect_trunc);
                                failures++;
                            }
                            mw_event_release (&d2);
                        }
                        else
                            failures++;
                        free (b2);
                    }
                    else {
                        print_error ("FAIL %s: re-encode failed\n", label);
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
    }
    free (buf);
    ASSERT_NO_FAILURES (failures);
}

//  A hostile `truncated` count cannot overflow, and stays stable when the
//  event is forwarded.
static void
test_truncated_count_saturates (void **state)
{
    (void) state;
    static const uint64_t counts[] = {UINT32_MAX, UINT32_MAX + UINT64_C (1), UINT64_MAX};
    char prompt[MW_MAX_STR + 2];
    memset (prompt, 'p', sizeof prompt - 1);
    prompt[sizeof prompt - 1] = '\0';
    int failures = 0;
    for (size_t i = 0; i < 3; i++) {
        fields_t fs;
        fs_init (&fs);
        fs_header (&fs, "counts");
        fs_put_uint (&fs, "truncated", counts[i]);
        fs_put_str (&fs, "prompt", prompt); //  one more cut here
        size_t len;
        uint8_t *body = fs_body (&fs, NULL, &len);
        mw_event_t d, d2;
        if (check_decode_ok ("huge truncated", NULL, body, len, &d) == 0) {
            uint8_t *b2;
            size_t l2;
            if (d.truncated < 1) {
                print_error ("FAIL truncated %llu on the wire: decoded %u\n",
                             (unsigned long long) counts[i], d.truncated);
                failures++;
            }
            if (encode_alloc (&d, &b2, &l2, NULL) != MW_OK) {
                print_error ("FAIL truncated %llu on the wire: no re-encode\n",
                             (unsigned long long) counts[i]);
                failures++;
            }
            else {
                if (check_decode_ok ("huge truncated, forwarded", NULL, b2, l2, &d2) == 0) {
                    if (d2.truncated != d.truncated) {
                        print_error ("FAIL truncated %llu on the wire plus one cut: decoded %u, "
                                     "forwarded and decoded again %u\n",
                                     (unsigned long long) counts[i], d.truncated, d2.truncated);
                        failures++;
                    }
                    mw_event_release (&d2);
                }
                else
                    failures++;
                free (b2);
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

static void
test_type_name_limits (void **state)
{
    (void) state;
    int failures = 0;
    char t64[MW_MAX_TYPE + 1], t65[MW_MAX_TYPE + 2];
    memset (t64, 't', MW_MAX_TYPE);
    t64[MW_MAX_TYPE] = '\0';
    memset (t65, 't', MW_MAX_TYPE + 1);
    t65[MW_MAX_TYPE + 1] = '\0';

    static const struct {
        const char *name;
        size_t len;
        int valid;
    } names[] = {
        {"a", 1, 0},
        {"task_", 5, 0},
        {"!~", 2, 0},             //  0x21 and 0x7e: the printable range
        {"a$b", 3, 0},            //  '$' is refused only first
        {"x.y-z_1/2:3", 11, 0},
        {"", 0, -1},
        {" ", 1, -1},
        {"a b", 3, -1},
        {"a\tb", 3, -1},
        {"a\x7f", 2, -1},
        {"\x01", 1, -1},
        {"caf\xc3\xa9", 5, -1},
        {"\xff", 1, -1},
        {"$heartbeat", 10, -1},
        {"$", 1, -1},
        {"a\0b", 3, -1},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int got = mw_type_name_valid (names[i].name, names[i].len);
        if (got != names[i].valid) {
            print_error ("FAIL mw_type_name_valid(case %zu, %zu bytes) = %d, expected %d\n", i,
                         names[i].len, got, names[i].valid);
            failures++;
        }
        if (names[i].valid != 0 && strlen (names[i].name) == names[i].len) {
            mw_event_t e;
            if (mw_event_init_named (&e, names[i].name) != -1) {
                print_error ("FAIL mw_event_init_named accepted invalid case %zu\n", i);
                failures++;
            }
        }
        //  In a body (topic NULL, and the same bytes as topic).
        fields_t fs;
        fs_init (&fs);
        fs_header (&fs, "x");
        fs_put_strn (&fs, "type", names[i].name, names[i].len);
        size_t len;
        uint8_t *body = fs_body (&fs, NULL, &len);
        char label[64];
        snprintf (label, sizeof label, "type name case %zu in the body", i);
        if (names[i].valid == 0) {
            mw_event_t d;
            if (check_decode_ok (label, names[i].name, body, len, &d) == 0) {
                if (d.kind != MW_TYPE_CUSTOM || strcmp (d.type, names[i].name) != 0) {
                    print_error ("FAIL %s: type \"%s\"\n", label, d.type);
                    failures++;
                }
                mw_event_release (&d);
            }
            else
                failures++;
        }
        else {
            failures += check_decode_error (label, NULL, body, len, MW_ERR_TYPE_NAME, -1);
            if (names[i].len && strlen (names[i].name) == names[i].len)
                failures += check_decode_error (label, names[i].name, body, len,
                                                MW_ERR_TYPE_NAME, -1);
        }
        free (body);
        fs_free (&fs);
    }
    assert_int_equal (mw_type_name_valid (t64, MW_MAX_TYPE), 0);
    assert_int_equal (mw_type_name_valid (t65, MW_MAX_TYPE + 1), -1);
    assert_int_equal (mw_type_name_valid (NULL, 0), -1);

    //  64 bytes: built, encoded, decoded (with and without topic).
    mw_event_t e, d;
    assert_int_equal (mw_event_init_named (&e, t64), 0);
    assert_string_equal (e.type, t64);
    set_header (&e);
    uint8_t *b;
    size_t l;
    assert_int_equal (encode_alloc (&e, &b, &l, NULL), MW_OK);
    for (int topic = 0; topic < 2; topic++) {
        if (check_decode_ok ("type of 64 bytes", topic ? t64 : NULL, b, l, &d) == 0) {
            assert_string_equal (d.type, t64);
            mw_event_release (&d);
        }
        else
            failures++;
    }
    free (b);
    assert_int_equal (mw_event_init_named (&e, t65), -1);
    //  65 bytes on the wire.
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, t65);
    size_t len;
    uint8_t *body = fs_body (&fs, NULL, &len);
    failures += check_decode_error ("type of 65 bytes", NULL, body, len, MW_ERR_TYPE_NAME, -1);
    failures += check_decode_error ("type and topic of 65 bytes", t65, body, len,
                                    MW_ERR_TYPE_NAME, -1);
    free (body);
    fs_free (&fs);
    ASSERT_NO_FAILURES (failures);
}

//  A body with a pad array of n positive fixints.
static uint8_t *
padded_body (size_t n, size_t *len_p)
{
    fields_t fs;
    fs_init (&fs);
    fs_header (&fs, "padded");
    mp_t m;
    mp_init (&m);
    mp_array (&m, (uint32_t) n);
    for (size_t i = 0; i < n; i++)
        mp_byte (&m, (uint8_t) (i & 0x7f));
    fs_put_mp (&fs, "pad", &m);
    mp_free (&m);
    uint8_t *body = fs_body (&fs, NULL, len_p);
    fs_free (&fs);
    return body;
}

static void
test_body_limit_decode (void **state)
{
    (void) state;
    int failures = 0;
    size_t base_len;
    free (padded_body (100, &base_len));
    size_t n = 100 + (MW_MAX_BODY - base_len);
    size_t len;
    uint8_t *body = padded_body (n, &len);
    assert_int_equal (len, MW_MAX_BODY);
    mw_event_t d;
    if (check_decode_ok ("body of exactly MW_MAX_BODY", NULL, body, len, &d) == 0) {
        failures += d.extra_count != 1;
        mw_event_release (&d);
    }
    else
        failures++;
    free (body);
    body = padded_body (n + 1, &len);
    assert_int_equal (len, MW_MAX_BODY + 1);
    failures += check_decode_error ("body of MW_MAX_BODY + 1", NULL, body, len,
                                    MW_ERR_TOO_LARGE, -1);
    free (body);
    body = padded_body (60000, &len);
    uint8_t *big = malloc (4 * MW_MAX_BODY);
    memset (big, 0, 4 * MW_MAX_BODY);
    memcpy (big, body, len);
    failures += check_decode_error ("body of 4 * MW_MAX_BODY", NULL, big, 4 * MW_MAX_BODY,
                                    MW_ERR_TOO_LARGE, -1);
    free (big);
    free (body);
    ASSERT_NO_FAILURES (failures);
}

static void
test_body_limit_encode (void **state)
{
    (void) state;
    size_t n = 60000;
    size_t room = MW_MAX_BODY + 16; //  more items than a body can hold
    mw_kv_t *items = calloc (room, sizeof *items);
    for (size_t i = 0; i < room; i++)
        items[i].kind = MW_KV_UINT; //  0: one byte each
    mw_kv_t kv = {.key = "pad", .kind = MW_KV_ARRAY, .val.list = {items, n}};
    mw_event_t e, d;
    assert_int_equal (mw_event_init_named (&e, "padded"), 0);
    set_header (&e);
    e.kv = &kv;
    e.kv_count = 1;
    uint8_t *b;
    size_t l;
    assert_int_equal (encode_alloc (&e, &b, &l, NULL), MW_OK);
    free (b);
    kv.val.list.count = n + (MW_MAX_BODY - l);
    assert_true (kv.val.list.count < room);
    assert_int_equal (encode_alloc (&e, &b, &l, NULL), MW_OK);
    assert_int_equal (l, MW_MAX_BODY);
    assert_int_equal (check_decode_ok ("encoded MW_MAX_BODY", "padded", b, l, &d), 0);
    assert_int_equal (d.extra_count, 1);
    mw_event_release (&d);
    free (b);
    //  One byte more: refused, even with room in the buffer.
    kv.val.list.count++;
    uint8_t *out = malloc (2 * MW_MAX_BODY);
    size_t len = 0;
    assert_int_equal (mw_event_encode (&e, out, 2 * MW_MAX_BODY, &len, NULL), MW_ERR_TOO_LARGE);
    free (out);
    free (items);
}

static void
test_encode_small_cap (void **state)
{
    (void) state;
    int failures = 0;
    static const mw_kv_t kv[] = {
        {.key = "note", .kind = MW_KV_STR, .val.s = {"a custom value", (size_t) -1}},
        {.key = "n", .kind = MW_KV_INT, .val.i = -5},
    };
    mw_event_t e;
    mw_event_init (&e, MW_TYPE_TASK_START);
    set_header (&e);
    mw_event_set_str (&e, MW_K_TASK_ID, "task-1");
    mw_event_set_str (&e, MW_K_PROMPT, "Login to example.com");
    mw_event_set_str (&e, MW_K_URL, "https://example.com");
    e.has |= MW_HAS_TIMEOUT_MS;
    e.timeout_ms = 30000;
    e.kv = kv;
    e.kv_count = 2;
    uint8_t *ref;
    size_t ref_len;
    assert_int_equal (encode_alloc (&e, &ref, &ref_len, NULL), MW_OK);
    for (size_t cap = 0; cap <= ref_len; cap++) {
        //  An exact-size heap buffer (ASan/valgrind see any overrun) ...
        uint8_t *exact = malloc (cap ? cap : 1);
        size_t len = 12345;
        int rc = mw_event_encode (&e, exact, cap, &len, NULL);
        int want = cap < ref_len ? MW_ERR_TOO_LARGE : MW_OK;
        if (rc != want) {
            print_error ("FAIL encode into cap %zu (needs %zu): %s, expected %s\n", cap, ref_len,
                         mw_err_name (rc), mw_err_name (want));
            failures++;
        }
        if (rc == MW_OK && (len != ref_len || memcmp (exact, ref, len) != 0)) {
            print_error ("FAIL encode into exact cap differs\n");
            failures++;
        }
        free (exact);
        //  ... and a canary behind the cap.
        uint8_t guard[1024];
        memset (guard, 0xA5, sizeof guard);
        rc = mw_event_encode (&e, guard, cap, &len, NULL);
        for (size_t i = cap; i < sizeof guard; i++)
            if (guard[i] != 0xA5) {
                print_error ("FAIL encode into cap %zu wrote byte %zu\n", cap, i);
                failures++;
                break;
            }
    }
    free (ref);
    ASSERT_NO_FAILURES (failures);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_string_limits_encode),
        cmocka_unit_test (test_string_limits_encode_counts),
        cmocka_unit_test (test_string_limits_decode),
        cmocka_unit_test (test_truncated_count_saturates),
        cmocka_unit_test (test_type_name_limits),
        cmocka_unit_test (test_body_limit_decode),
        cmocka_unit_test (test_body_limit_encode),
        cmocka_unit_test (test_encode_small_cap),
    };
    return cmocka_run_group_tests_name ("codec_limits", tests, NULL, NULL);
}
