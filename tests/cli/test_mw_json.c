/*  test_mw_json.c - unit tests of the gateway's JSON rendering (mw_json).

    Every rendering is also parsed back with jansson, an independent JSON
    parser, to prove that the output is valid JSON and means what we meant.
    Integers above INT64_MAX are checked as text (jansson cannot hold them).
*/
#include "mw_json.h"

#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

//  --------------------------------------------------------------------------
//  Helpers

//  Render len bytes as a JSON string and return the buffer's text.
static const char *
s_render_string (mw_buf_t *buf, const char *s, size_t len)
{
    mw_buf_reset (buf);
    assert_int_equal (mw_json_string (buf, s, len), 0);
    return buf->data;
}

//  Parse JSON text with jansson; fail the test if it is not valid.
static json_t *
s_parse (const char *text, size_t flags)
{
    json_error_t error;
    json_t *j = json_loads (text, JSON_DECODE_ANY | flags, &error);
    if (!j)
        fail_msg ("not valid JSON (%s at %d): %s", error.text, error.position, text);
    return j;
}

//  The string a JSON string literal decodes to, through jansson.
static void
s_assert_decodes_to (const char *json, const char *want, size_t want_len)
{
    json_t *j = s_parse (json, JSON_ALLOW_NUL);
    assert_true (json_is_string (j));
    assert_int_equal (json_string_length (j), want_len);
    assert_memory_equal (json_string_value (j), want, want_len);
    json_decref (j);
}

//  A msgpack packer into a growing sbuffer.
typedef struct {
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
} s_pack_t;

static void
s_pack_init (s_pack_t *p)
{
    msgpack_sbuffer_init (&p->sbuf);
    msgpack_packer_init (&p->pk, &p->sbuf, msgpack_sbuffer_write);
}

static void
s_pack_str (s_pack_t *p, const char *s)
{
    msgpack_pack_str (&p->pk, strlen (s));
    msgpack_pack_str_body (&p->pk, s, strlen (s));
}

//  --------------------------------------------------------------------------
//  mw_buf_t

static void
test_buf_grows_and_resets (void **state)
{
    mw_buf_t buf = MW_BUF_INIT;
    for (int i = 0; i < 10000; i++)
        assert_int_equal (mw_buf_putc (&buf, (char) ('a' + i % 26)), 0);
    assert_int_equal (buf.len, 10000);
    assert_int_equal (buf.data[buf.len], 0);
    size_t cap = buf.cap;
    mw_buf_reset (&buf);
    assert_int_equal (buf.len, 0);
    assert_int_equal (buf.cap, cap); //  memory kept for the next event
    char big[5000];
    memset (big, 'x', sizeof (big) - 1);
    big[sizeof (big) - 1] = 0;
    assert_int_equal (mw_buf_printf (&buf, "<%s|%d>", big, 42), 0);
    assert_int_equal (buf.len, 4999 + 5);
    assert_string_equal (buf.data + 5000, "|42>");
    mw_buf_truncate (&buf, 1);
    assert_string_equal (buf.data, "<");
    mw_buf_release (&buf);
    assert_null (buf.data);
    mw_buf_release (&buf); //  idempotent
}

static void
test_buf_failure_is_sticky (void **state)
{
    mw_buf_t buf = MW_BUF_INIT;
    assert_int_equal (mw_buf_reserve (&buf, SIZE_MAX - 10), -1);
    assert_true (buf.failed);
    assert_int_equal (mw_buf_puts (&buf, "x"), -1);
    mw_buf_reset (&buf);
    assert_false (buf.failed);
    assert_int_equal (mw_buf_puts (&buf, "ok"), 0);
    assert_string_equal (buf.data, "ok");
    mw_buf_release (&buf);
}

//  --------------------------------------------------------------------------
//  Strings

static void
test_string_escapes (void **state)
{
    mw_buf_t buf = MW_BUF_INIT;
    assert_string_equal (s_render_string (&buf, "plain text", 10), "\"plain text\"");
    assert_string_equal (s_render_string (&buf, "", 0), "\"\"");
    assert_string_equal (s_render_string (&buf, "say \"hi\" \\o/", 12),
                         "\"say \\\"hi\\\" \\\\o/\"");
    assert_string_equal (s_render_string (&buf, "a\nb\rc\td\be\ff", 11),
                         "\"a\\nb\\rc\\td\\be\\ff\"");
    //  NUL, other C0 controls, ESC (terminal escapes) and DEL.
    const char controls[] = {0x00, 0x01, 0x1b, '[', '2', 'J', 0x1f, 0x7f};
    assert_string_equal (s_render_string (&buf, controls, sizeof (controls)),
                         "\"\\u0000\\u0001\\u001b[2J\\u001f\\u007f\"");
    s_assert_decodes_to (buf.data, controls, sizeof (controls));
    mw_buf_release (&buf);
}

static void
test_string_html_safe (void **state)
{
    mw_buf_t buf = MW_BUF_INIT;
    const char *xss = "</script><script>alert(\"x\")</script>&amp;";
    const char *json = s_render_string (&buf, xss, strlen (xss));
    assert_null (strchr (json, '<'));
    assert_null (strchr (json, '>'));
    assert_null (strchr (json, '&'));
    assert_string_equal (json, "\"\\u003c/script\\u003e\\u003cscript\\u003ealert(\\\"x\\\")"
                               "\\u003c/script\\u003e\\u0026amp;\"");
    s_assert_decodes_to (json, xss, strlen (xss));
    //  U+2028 and U+2029 end a JavaScript line; C1 U+009B is CSI to some
    //  terminals.
    const char *seps = "a\xE2\x80\xA8"
                       "b\xE2\x80\xA9"
                       "c\xC2\x9B"
                       "d";
    assert_string_equal (s_render_string (&buf, seps, strlen (seps)),
                         "\"a\\u2028b\\u2029c\\u009bd\"");
    s_assert_decodes_to (buf.data, seps, strlen (seps));
    mw_buf_release (&buf);
}

static void
test_string_utf8 (void **state)
{
    mw_buf_t buf = MW_BUF_INIT;
    //  Valid UTF-8 passes as it is: 2, 3 and 4 byte sequences, and a
    //  genuine U+FFFD.
    const char *ok = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\xA5 \xEF\xBF\xBD";
    assert_string_equal (s_render_string (&buf, ok, strlen (ok)),
                         "\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\xA5 \xEF\xBF\xBD\"");
    s_assert_decodes_to (buf.data, ok, strlen (ok));

    //  Invalid UTF-8 becomes U+FFFD, one per maximal invalid subpart.
    struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"\x80", 1, "\xEF\xBF\xBD"},                                 //  lone continuation
        {"a\xE2\x82", 3, "a\xEF\xBF\xBD"},                           //  truncated 3-byte sequence
        {"\xE2\x82z", 3, "\xEF\xBF\xBDz"},                           //  interrupted sequence
        {"\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},                 //  overlong '/'
        {"\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, //  surrogate
        {"\xF4\x90\x80\x80", 4,
         "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, //  above U+10FFFF
        {"\xFF\xFE", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},          //  never valid bytes
        {"\xF0\x9F\x93", 3, "\xEF\xBF\xBD"},                  //  truncated emoji
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        char want[64];
        snprintf (want, sizeof (want), "\"%s\"", cases[i].out);
        assert_string_equal (s_render_string (&buf, cases[i].in, cases[i].len), want);
        s_assert_decodes_to (buf.data, cases[i].out, strlen (cases[i].out));
    }
    mw_buf_release (&buf);
}

static void
test_utf8_next (void **state)
{
    uint32_t cp;
    assert_int_equal (mw_utf8_next ((const uint8_t *) "A", 1, &cp), 1);
    assert_int_equal (cp, 'A');
    assert_int_equal (mw_utf8_next ((const uint8_t *) "\xC3\xA9", 2, &cp), 2);
    assert_int_equal (cp, 0xE9);
    assert_int_equal (mw_utf8_next ((const uint8_t *) "\xF0\x9F\x93\xA5", 4, &cp), 4);
    assert_int_equal (cp, 0x1F4E5);
    //  Only 2 of 4 bytes available: the maximal subpart is 2 bytes.
    assert_int_equal (mw_utf8_next ((const uint8_t *) "\xF0\x9F\x93\xA5", 2, &cp), 2);
    assert_int_equal (cp, 0xFFFD);
    assert_int_equal (mw_utf8_next ((const uint8_t *) "\xE0\x80\x80", 3, &cp), 1); //  overlong
    assert_int_equal (cp, 0xFFFD);
}

//  Every byte string renders to valid JSON, whatever it holds.
static void
test_string_random_bytes_valid (void **state)
{
    mw_buf_t buf = MW_BUF_INIT;
    uint64_t x = 0x1234567;
    for (int round = 0; round < 2000; round++) {
        char bytes[64];
        size_t len = (size_t) (round % 64);
        for (size_t i = 0; i < len; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            bytes[i] = (char) (x >> 56);
        }
        json_t *j = s_parse (s_render_string (&buf, bytes, len), JSON_ALLOW_NUL);
        assert_true (json_is_string (j));
        json_decref (j);
    }
    mw_buf_release (&buf);
}

//  --------------------------------------------------------------------------
//  Numbers and time

static void
test_doubles (void **state)
{
    mw_buf_t buf = MW_BUF_INIT;
    struct {
        double d;
        const char *want;
    } cases[] = {{0.1, "0.1"},      {5.0, "5.0"},       {-2.5, "-2.5"},
                 {1e300, "1e+300"}, {-0.0, "-0.0"},     {1.0 / 3, "0.3333333333333333"},
                 {NAN, "null"},     {INFINITY, "null"}, {-INFINITY, "null"}};
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        mw_buf_reset (&buf);
        assert_int_equal (mw_json_double (&buf, cases[i].d), 0);
        assert_string_equal (buf.data, cases[i].want);
    }
    //  Every double reads back exactly.
    uint64_t x = 99;
    for (int i = 0; i < 1000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        double d;
        memcpy (&d, &x, sizeof (d));
        if (!isfinite (d))
            continue;
        mw_buf_reset (&buf);
        mw_json_double (&buf, d);
        assert_true (strtod (buf.data, NULL) == d);
    }
    mw_buf_release (&buf);
}

static void
test_time_format (void **state)
{
    char out[MW_JSON_TIME_SIZE];
    assert_int_equal (mw_json_format_time (out, sizeof (out), 0), 24);
    assert_string_equal (out, "1970-01-01T00:00:00.000Z");
    mw_json_format_time (out, sizeof (out), UINT64_C (1700000000123456));
    assert_string_equal (out, "2023-11-14T22:13:20.123Z");
    mw_json_format_time (out, sizeof (out), UINT64_C (1709207999999999)); //  leap day
    assert_string_equal (out, "2024-02-29T11:59:59.999Z");
    mw_json_format_time (out, sizeof (out), UINT64_C (951782400000000)); //  2000 is a leap year
    assert_string_equal (out, "2000-02-29T00:00:00.000Z");
    mw_json_format_time (out, sizeof (out), UINT64_MAX); //  absurd, still a date
    assert_int_equal (out[strlen (out) - 1], 'Z');

    //  Against the C library, over a wide range.
    uint64_t x = 7;
    for (int i = 0; i < 20000; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        uint64_t ts = (x >> 12) % UINT64_C (8000000000000000); //  to year ~2223
        time_t secs = (time_t) (ts / 1000000);
        struct tm tm;
        assert_non_null (gmtime_r (&secs, &tm));
        char want[64];
        snprintf (want, sizeof (want), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  (int) (ts / 1000 % 1000));
        mw_json_format_time (out, sizeof (out), ts);
        assert_string_equal (out, want);
    }
}

//  --------------------------------------------------------------------------
//  msgpack values

static void
test_msgpack_values (void **state)
{
    s_pack_t p;
    s_pack_init (&p);
    msgpack_pack_map (&p.pk, 14);
    s_pack_str (&p, "u64");
    msgpack_pack_uint64 (&p.pk, UINT64_MAX);
    s_pack_str (&p, "i64");
    msgpack_pack_int64 (&p.pk, INT64_MIN);
    s_pack_str (&p, "neg");
    msgpack_pack_int8 (&p.pk, -5);
    s_pack_str (&p, "f32");
    msgpack_pack_float (&p.pk, 0.1f);
    s_pack_str (&p, "f64");
    msgpack_pack_double (&p.pk, 2.0);
    s_pack_str (&p, "nan");
    msgpack_pack_double (&p.pk, NAN);
    s_pack_str (&p, "inf");
    msgpack_pack_float (&p.pk, INFINITY);
    s_pack_str (&p, "nil");
    msgpack_pack_nil (&p.pk);
    s_pack_str (&p, "yes");
    msgpack_pack_true (&p.pk);
    s_pack_str (&p, "bin");
    msgpack_pack_bin (&p.pk, 4);
    msgpack_pack_bin_body (&p.pk, "\x00\xFF\x10\x80", 4);
    s_pack_str (&p, "ext");
    msgpack_pack_ext (&p.pk, 3, 7);
    msgpack_pack_ext_body (&p.pk, "abc", 3);
    s_pack_str (&p, "arr");
    msgpack_pack_array (&p.pk, 3);
    msgpack_pack_int (&p.pk, 1);
    s_pack_str (&p, "<b>");
    msgpack_pack_array (&p.pk, 0);
    //  Keys that are not strings are stringified.
    s_pack_str (&p, "keys");
    msgpack_pack_map (&p.pk, 5);
    msgpack_pack_int (&p.pk, 42);
    msgpack_pack_true (&p.pk);
    msgpack_pack_nil (&p.pk);
    msgpack_pack_int (&p.pk, 1);
    msgpack_pack_double (&p.pk, 1.5);
    msgpack_pack_int (&p.pk, 2);
    msgpack_pack_array (&p.pk, 2); //  a composite key: its JSON, as a string
    s_pack_str (&p, "q\"");
    msgpack_pack_int (&p.pk, -1);
    msgpack_pack_int (&p.pk, 3);
    msgpack_pack_bin (&p.pk, 2);
    msgpack_pack_bin_body (&p.pk, "hi", 2);
    msgpack_pack_int (&p.pk, 4);
    s_pack_str (&p, "bad\xFF");
    msgpack_pack_str (&p.pk, 1);
    msgpack_pack_str_body (&p.pk, "\n", 1);

    mw_buf_t buf = MW_BUF_INIT;
    mw_buf_puts (&buf, "prefix:");
    size_t used = 0;
    assert_int_equal (mw_json_msgpack (&buf, (const uint8_t *) p.sbuf.data, p.sbuf.size, &used), 0);
    assert_int_equal (used, p.sbuf.size);
    assert_string_equal (buf.data,
                         "prefix:{\"u64\":18446744073709551615,\"i64\":-9223372036854775808,"
                         "\"neg\":-5,\"f32\":0.1,\"f64\":2.0,\"nan\":null,\"inf\":null,"
                         "\"nil\":null,\"yes\":true,\"bin\":\"AP8QgA==\",\"ext\":null,"
                         "\"arr\":[1,\"\\u003cb\\u003e\",[]],"
                         "\"keys\":{\"42\":true,\"null\":1,\"1.5\":2,"
                         "\"[\\\"q\\\\\\\"\\\",-1]\":3,\"aGk=\":4},"
                         "\"bad\xEF\xBF\xBD\":\"\\n\"}");
    //  Valid JSON (u64 and i64 as reals: jansson's integers are int64).
    json_t *j = s_parse (buf.data + 7, JSON_DECODE_INT_AS_REAL);
    json_t *keys = json_object_get (j, "keys");
    assert_non_null (json_object_get (keys, "[\"q\\\"\",-1]"));
    assert_int_equal (json_object_size (json_object_get (j, "keys")), 5);
    json_decref (j);
    mw_buf_release (&buf);
    msgpack_sbuffer_destroy (&p.sbuf);
}

static void
test_base64 (void **state)
{
    const char *want[] = {"\"\"", "\"YQ==\"", "\"YWI=\"", "\"YWJj\"", "\"YWJjZA==\""};
    mw_buf_t buf = MW_BUF_INIT;
    for (size_t n = 0; n < 5; n++) {
        uint8_t bin[8] = {(uint8_t) (0xC4), (uint8_t) n, 'a', 'b', 'c', 'd'};
        mw_buf_reset (&buf);
        assert_int_equal (mw_json_msgpack (&buf, bin, 2 + n, NULL), 0);
        assert_string_equal (buf.data, want[n]);
    }
    mw_buf_release (&buf);
}

static void
test_msgpack_hostile (void **state)
{
    mw_buf_t buf = MW_BUF_INIT;
    mw_buf_puts (&buf, "keep");
    struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"", 0},     //  nothing
        {"\xC1", 1}, //  never-used byte
        {"\xDB\xFF\xFF\xFF\xFF"
         "ab",
         7},                              //  str32 declaring 4 GiB
        {"\xDD\xFF\xFF\xFF\xFF\x01", 6},  //  array32 declaring 4 billion items
        {"\xDF\x00\x00\x00\x02\xA1k", 7}, //  map missing its values
        {"\xCB\x00\x00", 3},              //  truncated float64
        {"\xC7\x05\x01\x00", 4},          //  truncated ext8
        {"\x92\x01", 2},                  //  array missing an item
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        assert_int_equal (mw_json_msgpack (&buf, (const uint8_t *) bad[i].bytes, bad[i].len, NULL),
                          -1);
        assert_string_equal (buf.data, "keep"); //  cut back on failure
    }
    //  Nesting: MW_JSON_MAX_DEPTH levels render, one more does not.
    uint8_t deep[MW_JSON_MAX_DEPTH + 2];
    memset (deep, 0x91, sizeof (deep)); //  fixarray of 1
    deep[MW_JSON_MAX_DEPTH] = 0xC0;     //  nil at the bottom
    mw_buf_reset (&buf);
    assert_int_equal (mw_json_msgpack (&buf, deep, MW_JSON_MAX_DEPTH + 1, NULL), 0);
    assert_int_equal (buf.len, 2 * MW_JSON_MAX_DEPTH + 4);
    deep[MW_JSON_MAX_DEPTH] = 0x91;
    deep[MW_JSON_MAX_DEPTH + 1] = 0xC0;
    mw_buf_reset (&buf);
    assert_int_equal (mw_json_msgpack (&buf, deep, sizeof (deep), NULL), -1);
    assert_int_equal (buf.len, 0);
    mw_buf_release (&buf);
}

//  Random bytes: either rejected, or rendered to valid JSON.
static void
test_msgpack_random_bytes (void **state)
{
    mw_buf_t buf = MW_BUF_INIT;
    uint64_t x = 42;
    int rendered = 0;
    for (int round = 0; round < 20000; round++) {
        uint8_t bytes[48];
        size_t len = 1 + (size_t) (round % 48);
        for (size_t i = 0; i < len; i++) {
            x = x * 6364136223846793005u + 1442695040888963407u;
            bytes[i] = (uint8_t) (x >> 56);
        }
        //  Bias towards containers and strings so that nesting is tried.
        if (round % 3 == 0)
            bytes[0] = (uint8_t) (0x80 | (bytes[0] & 0x1F));
        mw_buf_reset (&buf);
        size_t used = 0;
        if (mw_json_msgpack (&buf, bytes, len, &used) == 0) {
            assert_true (used >= 1 && used <= len);
            //  jansson refuses "\u0000" in an object key, which JSON allows:
            //  that one refusal is not ours.
            json_error_t error;
            json_t *j = json_loads (
                buf.data, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &error);
            if (!j && !strstr (error.text, "NUL byte in object key"))
                fail_msg ("not valid JSON (%s at %d): %s", error.text, error.position, buf.data);
            json_decref (j);
            rendered++;
        }
        else
            assert_int_equal (buf.len, 0);
    }
    assert_true (rendered > 1000);
    mw_buf_release (&buf);
}

//  --------------------------------------------------------------------------
//  Events

//  Encode ev with the codec, decode it again into out (as a broker or tail
//  would see it).
static void
s_round_trip (mw_event_t *ev, mw_event_t *out)
{
    static uint8_t body[MW_MAX_BODY];
    size_t len;
    assert_int_equal (mw_event_encode (ev, body, sizeof (body), &len, NULL), MW_OK);
    char err[256] = "";
    int rc = mw_event_decode (out, ev->type, strlen (ev->type), body, len, err, sizeof (err));
    if (rc != MW_OK)
        fail_msg ("decode: %s", err);
}

static void
test_event_all_keys (void **state)
{
    mw_event_t ev;
    mw_event_init (&ev, MW_TYPE_TASK_COMPLETE);
    ev.v = 1;
    ev.ts = UINT64_C (1700000000123456);
    ev.sid = UINT64_C (0x7123456789abcdef);
    ev.seq = 17;
    ev.id = 99;
    ev.broker_ts = UINT64_C (1700000000200);
    ev.has = MW_HAS_ID | MW_HAS_BROKER_TS | MW_HAS_TIMEOUT_MS | MW_HAS_ACTION_COUNT |
             MW_HAS_SUCCESS | MW_HAS_RESPONSE_TIME | MW_HAS_SCORE | MW_HAS_EXECUTION_TIME;
    ev.timeout_ms = 30000;
    ev.action_count = 12;
    ev.success = false;
    ev.response_time = 5.2;
    ev.score = 0.75;
    ev.execution_time = 4.0;
    const char *names[MW_STR_COUNT];
    char values[MW_STR_COUNT][64];
    for (int k = 0; k < MW_STR_COUNT; k++) {
        names[k] = mw_str_key_name ((mw_str_key_t) k);
        snprintf (values[k], sizeof (values[k]), "%s <%d> \"v\"", names[k], k);
        mw_event_set_str (&ev, (mw_str_key_t) k, values[k]);
    }
    mw_kv_t details[2] = {
        {.key = "url", .kind = MW_KV_STR, .val.s = {"https://x/?a=1&b=2", (size_t) -1}},
        {.key = "n", .kind = MW_KV_INT, .val.i = -3}};
    mw_kv_t kv[2] = {{.key = "details", .kind = MW_KV_MAP, .val.list = {details, 2}},
                     {.key = "subnet", .kind = MW_KV_UINT, .val.u = 36}};
    ev.kv = kv;
    ev.kv_count = 2;

    mw_event_t dec;
    memset (&dec, 0, sizeof (dec));
    s_round_trip (&ev, &dec);
    mw_buf_t buf = MW_BUF_INIT;
    assert_int_equal (mw_json_event (&buf, &dec), 0);
    assert_null (strchr (buf.data, '\n'));
    assert_null (strchr (buf.data, '<'));

    json_t *j = s_parse (buf.data, 0);
    assert_int_equal (json_integer_value (json_object_get (j, "v")), 1);
    assert_string_equal (json_string_value (json_object_get (j, "type")), "task_complete");
    assert_true (json_is_integer (json_object_get (j, "ts")));
    assert_int_equal (json_integer_value (json_object_get (j, "ts")), 1700000000123);
    assert_string_equal (json_string_value (json_object_get (j, "time")),
                         "2023-11-14T22:13:20.123Z");
    assert_int_equal (json_integer_value (json_object_get (j, "sid")), 0x7123456789abcdef);
    assert_int_equal (json_integer_value (json_object_get (j, "seq")), 17);
    assert_int_equal (json_integer_value (json_object_get (j, "id")), 99);
    assert_int_equal (json_integer_value (json_object_get (j, "broker_ts")), 1700000000200);
    for (int k = 0; k < MW_STR_COUNT; k++)
        assert_string_equal (json_string_value (json_object_get (j, names[k])), values[k]);
    assert_int_equal (json_integer_value (json_object_get (j, "timeout_ms")), 30000);
    assert_int_equal (json_integer_value (json_object_get (j, "action_count")), 12);
    assert_true (json_is_false (json_object_get (j, "success")));
    assert_true (json_is_real (json_object_get (j, "response_time")));
    assert_true (json_real_value (json_object_get (j, "response_time")) == 5.2);
    assert_true (json_real_value (json_object_get (j, "score")) == 0.75);
    assert_true (json_is_real (json_object_get (j, "execution_time"))); //  4.0, not 4
    assert_null (json_object_get (j, "truncated"));                     //  nothing was cut
    json_t *d = json_object_get (j, "details");
    assert_string_equal (json_string_value (json_object_get (d, "url")), "https://x/?a=1&b=2");
    assert_int_equal (json_integer_value (json_object_get (d, "n")), -3);
    assert_int_equal (json_integer_value (json_object_get (j, "subnet")), 36);
    //  v type ts time miner sid seq id broker_ts, 12 more strings, 6 fields, 2 custom
    assert_int_equal (json_object_size (j), 9 + 12 + 6 + 2);
    json_decref (j);

    //  The extras are reachable one by one too.
    const uint8_t *val;
    size_t val_len;
    assert_int_equal (mw_json_extra_find (&dec, "subnet", &val, &val_len), 1);
    assert_int_equal (val_len, 1);
    assert_int_equal (val[0], 36);
    assert_int_equal (mw_json_extra_find (&dec, "absent", &val, &val_len), 0);

    mw_event_release (&dec);
    mw_buf_release (&buf);
}

static void
test_event_minimal_and_truncated (void **state)
{
    mw_event_t ev;
    mw_event_init (&ev, MW_TYPE_CACHE_HIT);
    ev.v = 1;
    ev.ts = 1000;
    ev.sid = UINT64_MAX; //  above INT64_MAX: exact digits
    ev.seq = 1;
    mw_event_set_str (&ev, MW_K_MINER, "m");
    mw_event_set_str (&ev, MW_K_TASK_ID, "t");
    char *long_prompt = malloc (MW_MAX_STR + 100);
    memset (long_prompt, 'p', MW_MAX_STR + 99);
    long_prompt[MW_MAX_STR + 99] = 0;
    mw_event_set_str (&ev, MW_K_PROMPT, long_prompt);
    mw_event_t dec;
    memset (&dec, 0, sizeof (dec));
    s_round_trip (&ev, &dec);
    mw_buf_t buf = MW_BUF_INIT;
    assert_int_equal (mw_json_event (&buf, &dec), 0);
    assert_non_null (strstr (buf.data,
                             "{\"v\":1,\"type\":\"cache_hit\",\"ts\":1,"
                             "\"time\":\"1970-01-01T00:00:00.001Z\",\"miner\":\"m\","
                             "\"sid\":18446744073709551615,\"seq\":1,\"task_id\":\"t\","));
    assert_null (strstr (buf.data, "\"id\""));
    assert_non_null (strstr (buf.data, ",\"truncated\":1}"));
    json_t *j = s_parse (buf.data, JSON_DECODE_INT_AS_REAL);
    assert_int_equal (strlen (json_string_value (json_object_get (j, "prompt"))), MW_MAX_STR);
    json_decref (j);
    mw_event_release (&dec);
    mw_buf_release (&buf);
    free (long_prompt);
}

//  A custom key may not shadow a key the renderer writes (`time`, `id`):
//  JSON readers keep the last of two equal keys.
static void
test_event_extras_cannot_shadow (void **state)
{
    s_pack_t p;
    s_pack_init (&p);
    s_pack_str (&p, "time");
    s_pack_str (&p, "1999-01-01T00:00:00.000Z");
    s_pack_str (&p, "mine");
    msgpack_pack_int (&p.pk, 7);
    s_pack_str (&p, "id");
    msgpack_pack_int (&p.pk, 123456);

    mw_event_t ev;
    mw_event_init_named (&ev, "deploy");
    ev.v = 1;
    ev.ts = UINT64_C (1700000000000000);
    ev.sid = 1;
    ev.seq = 2;
    mw_event_set_str (&ev, MW_K_MINER, "m");
    ev.extra = (const uint8_t *) p.sbuf.data;
    ev.extra_len = p.sbuf.size;
    ev.extra_count = 3;
    mw_buf_t buf = MW_BUF_INIT;
    assert_int_equal (mw_json_event (&buf, &ev), 0);
    assert_string_equal (buf.data, "{\"v\":1,\"type\":\"deploy\",\"ts\":1700000000000,"
                                   "\"time\":\"2023-11-14T22:13:20.000Z\",\"miner\":\"m\","
                                   "\"sid\":1,\"seq\":2,\"mine\":7}");

    //  Malformed extras fail the render and leave the buffer as it was.
    mw_buf_reset (&buf);
    mw_buf_puts (&buf, "before");
    ev.extra_len = p.sbuf.size - 1;
    assert_int_equal (mw_json_event (&buf, &ev), -1);
    assert_string_equal (buf.data, "before");
    mw_buf_release (&buf);

    //  Iteration stops at the malformed pair.
    size_t offset = 0;
    const char *key;
    size_t key_len;
    const uint8_t *val;
    size_t val_len;
    assert_int_equal (mw_json_extra_next (&ev, &offset, &key, &key_len, &val, &val_len), 1);
    assert_int_equal (key_len, 4);
    assert_memory_equal (key, "time", 4);
    assert_int_equal (mw_json_extra_next (&ev, &offset, &key, &key_len, &val, &val_len), 1);
    assert_int_equal (mw_json_extra_next (&ev, &offset, &key, &key_len, &val, &val_len), -1);
    msgpack_sbuffer_destroy (&p.sbuf);
}

//  An event being built (kv, not yet encoded) renders the same way; header
//  keys in kv are left out.
static void
test_event_kv (void **state)
{
    mw_kv_t inner[2] = {{.key = "x", .kind = MW_KV_DOUBLE, .val.d = 0.5},
                        {.key = NULL, .kind = MW_KV_NIL}};
    mw_kv_t kv[4] = {{.key = "list", .kind = MW_KV_ARRAY, .val.list = {inner, 2}},
                     {.key = "time", .kind = MW_KV_STR, .val.s = {"fake", 4}},
                     {.key = "prompt", .kind = MW_KV_STR, .val.s = {"a\tb", (size_t) -1}},
                     {.key = "ok", .kind = MW_KV_BOOL, .val.b = true}};
    mw_event_t ev;
    mw_event_init (&ev, MW_TYPE_TASK_START);
    ev.v = 1;
    mw_event_set_str (&ev, MW_K_MINER, "m");
    mw_event_set_str (&ev, MW_K_TASK_ID, "t");
    ev.kv = kv;
    ev.kv_count = 4;
    mw_buf_t buf = MW_BUF_INIT;
    assert_int_equal (mw_json_event (&buf, &ev), 0);
    assert_string_equal (buf.data, "{\"v\":1,\"type\":\"task_start\",\"ts\":0,"
                                   "\"time\":\"1970-01-01T00:00:00.000Z\",\"miner\":\"m\","
                                   "\"sid\":0,\"seq\":0,\"task_id\":\"t\","
                                   "\"list\":[0.5,null],\"prompt\":\"a\\tb\",\"ok\":true}");
    json_decref (s_parse (buf.data, 0));
    mw_buf_release (&buf);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_buf_grows_and_resets),
        cmocka_unit_test (test_buf_failure_is_sticky),
        cmocka_unit_test (test_string_escapes),
        cmocka_unit_test (test_string_html_safe),
        cmocka_unit_test (test_string_utf8),
        cmocka_unit_test (test_utf8_next),
        cmocka_unit_test (test_string_random_bytes_valid),
        cmocka_unit_test (test_doubles),
        cmocka_unit_test (test_time_format),
        cmocka_unit_test (test_msgpack_values),
        cmocka_unit_test (test_base64),
        cmocka_unit_test (test_msgpack_hostile),
        cmocka_unit_test (test_msgpack_random_bytes),
        cmocka_unit_test (test_event_all_keys),
        cmocka_unit_test (test_event_minimal_and_truncated),
        cmocka_unit_test (test_event_extras_cannot_shadow),
        cmocka_unit_test (test_event_kv),
    };
    return cmocka_run_group_tests_name ("mw_json", tests, NULL, NULL);
}
