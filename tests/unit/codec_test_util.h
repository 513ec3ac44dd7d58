/*  codec_test_util.h - helpers shared by the codec unit tests.

    Bodies for the decoder are built with msgpack-c's own packer (an encoder
    independent of mw_event_encode) or byte by byte, so the decoder is tested
    against the wire format of CONTRACT.md, not against its own encoder.
*/
#ifndef CODEC_TEST_UTIL_H_INCLUDED
#define CODEC_TEST_UTIL_H_INCLUDED

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <cmocka.h>
#include <msgpack.h>

#include "mw_event.h"

//  ---------------------------------------------------------------------
//  A msgpack writer: msgpack-c's packer plus raw bytes.
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp_t;

void mp_init (mp_t *m);
void mp_free (mp_t *m);
void mp_clear (mp_t *m);
void mp_raw (mp_t *m, const void *p, size_t n);
void mp_byte (mp_t *m, uint8_t b);
void mp_be16 (mp_t *m, uint16_t v);
void mp_be32 (mp_t *m, uint32_t v);
void mp_be64 (mp_t *m, uint64_t v);
void mp_str (mp_t *m, const char *s);
void mp_strn (mp_t *m, const char *s, size_t n);
void mp_bin (mp_t *m, const void *p, size_t n);
void mp_uint (mp_t *m, uint64_t u);
void mp_int (mp_t *m, int64_t i);
void mp_dbl (mp_t *m, double d);
void mp_flt (mp_t *m, float f);
void mp_bool (mp_t *m, bool b);
void mp_nil (mp_t *m);
void mp_array (mp_t *m, uint32_t n);
void mp_map (mp_t *m, uint32_t n);
//  Nested arrays `depth` deep, the innermost empty ([[[]]] is depth 3).
void mp_nested_arrays (mp_t *m, size_t depth);
//  Nested maps {"a":{"a":{}}} `depth` deep, the innermost empty.
void mp_nested_maps (mp_t *m, size_t depth);

//  ---------------------------------------------------------------------
//  A list of top-level key/value pairs, serialised as one map in any order.
typedef struct {
    char *key;
    size_t keylen;
    uint8_t *val;
    size_t vlen;
} field_t;

typedef struct {
    field_t *f;
    size_t n, cap;
} fields_t;

void fs_init (fields_t *fs);
void fs_free (fields_t *fs);
//  Append a pair, even if the key is already there (repeated keys).
void fs_add_raw (fields_t *fs, const char *key, size_t keylen, const void *val, size_t vlen);
//  Replace the value of key, or append the pair.
void fs_put_raw (fields_t *fs, const char *key, const void *val, size_t vlen);
void fs_put_mp (fields_t *fs, const char *key, const mp_t *m);
void fs_put_str (fields_t *fs, const char *key, const char *s);
void fs_put_strn (fields_t *fs, const char *key, const char *s, size_t n);
void fs_put_uint (fields_t *fs, const char *key, uint64_t u);
void fs_put_int (fields_t *fs, const char *key, int64_t i);
void fs_put_dbl (fields_t *fs, const char *key, double d);
void fs_put_flt (fields_t *fs, const char *key, float f);
void fs_put_bool (fields_t *fs, const char *key, bool b);
void fs_put_nil (fields_t *fs, const char *key);
void fs_del (fields_t *fs, const char *key);
const field_t *fs_get (const fields_t *fs, const char *key);
//  The six keys on every event: v=1, type, ts, miner, sid, seq.
void fs_header (fields_t *fs, const char *type);
//  Serialise as one map (msgpack-c's packer), pairs in the given order
//  (indexes into fs->f) or in list order if order is NULL. Free with free().
uint8_t *fs_body (const fields_t *fs, const size_t *order, size_t *len_p);

//  ---------------------------------------------------------------------
//  A fixed-seed PRNG (splitmix64).
uint64_t rng_next (uint64_t *state);
uint64_t rng_below (uint64_t *state, uint64_t n);
void rng_shuffle (uint64_t *state, size_t *idx, size_t n);

//  MW_TEST_ITERATIONS from the environment, or dflt.
long test_iterations (long dflt);

//  A reference msgpack walker written in the tests, independent of the
//  codec: walk one object at b[*pos], advance *pos; 0 ok, 1 malformed,
//  2 nesting above depth containers.
int ref_walk (const uint8_t *b, size_t len, size_t *pos, int depth);

//  ---------------------------------------------------------------------
//  Events.

//  Is e empty (as left by a failed decode or mw_event_release)?
bool event_is_empty (const mw_event_t *e, char *why, size_t whysz);
//  Are two events equal field by field (doubles bitwise, extras bytewise)?
bool event_equal (const mw_event_t *a, const mw_event_t *b, char *why, size_t whysz);
//  Invariants of any successfully decoded event: valid type name, strings
//  NUL-terminated and within their limits, extras well-formed.
bool event_decoded_valid (const mw_event_t *e, char *why, size_t whysz);

//  Encode into a fresh buffer (freed with free()); returns the code.
int encode_alloc (const mw_event_t *e, uint8_t **out_p, size_t *len_p, uint32_t *truncated_p);

//  Decode after mw_event_init (e, MW_TYPE_CUSTOM); topic may be NULL.
int decode_str_topic (mw_event_t *e, const char *topic, const uint8_t *body, size_t len,
                      char *err, size_t errsz);

//  Check a decode fails with one of the accepted codes (alt = -1: only
//  expected), a non-empty one-line message, an empty event, also with a NULL
//  and a tiny errbuf. Print the case on failure; return 0 if as expected,
//  1 if not.
int check_decode_error (const char *label, const char *topic, const uint8_t *body, size_t len,
                        int expected, int alt);
//  Check a decode succeeds, into out (caller releases). Return 0 or 1.
int check_decode_ok (const char *label, const char *topic, const uint8_t *body, size_t len,
                     mw_event_t *out);

//  Find a key in a decoded event's raw extras: return 0 and the raw
//  value's bytes, or -1.
int extras_find (const mw_event_t *e, const char *key, const uint8_t **val_p, size_t *vlen_p);
//  Do a decoded event's raw extras hold exactly the given kv, in order?
bool extras_match_kv (const mw_event_t *e, const mw_kv_t *kv, size_t n, char *why, size_t whysz);

//  Fail the current cmocka test if failures is non-zero.
#define ASSERT_NO_FAILURES(failures)                                                           \
    do {                                                                                       \
        if ((failures) != 0)                                                                   \
            fail_msg ("%d case(s) failed, see above", (int) (failures));                       \
    } while (0)

#endif
