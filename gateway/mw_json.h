/*  mw_json.h - JSON rendering of events for the gateway (and the CLI).

    The gateway renders each event to JSON once and sends the same bytes to
    every client, so rendering is a hand-written writer into one growable
    byte buffer (mw_buf_t) that the caller reuses from event to event: after
    the buffer has grown to the size of the largest event, rendering does
    not allocate at all.

    Event JSON (CONTRACT.md section 2) is one line: every wire key with its
    value, `id` (the broker id) and `broker_ts` when present, `time` (ISO-8601 UTC with
    milliseconds and `Z`), and `ts` as milliseconds since the epoch. Custom
    keys (the event's raw msgpack extras) follow, converted recursively:
    non-string map keys are stringified, bin becomes base64, ext becomes
    null, NaN and infinities become null, 64-bit integers are written
    exactly (note: JavaScript reads integers above 2^53, such as a random
    `sid`, with a loss of precision).

    Strings are untrusted: `"`, `\`, control characters (C0, DEL and C1),
    `<`, `>`, `&`, U+2028 and U+2029 are escaped, and invalid UTF-8 becomes
    U+FFFD, so the output is valid JSON that is safe to embed in HTML and
    in a <script> element, and safe to print to a terminal.

    Numbers are written with the C library in the "C" locale's format; a
    decimal comma from another LC_NUMERIC is turned back into a point.
*/
#ifndef MW_JSON_H_INCLUDED
#define MW_JSON_H_INCLUDED

#include "mw_event.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Nesting accepted by mw_json_msgpack. Larger than MW_MAX_DEPTH, so that
//  anything the decoder accepts renders; it bounds the recursion on input
//  that did not come through the decoder.
#define MW_JSON_MAX_DEPTH 64

//  A growable byte buffer. A plain struct, so that it can live inside
//  other structures (a ring slot, a client) and be reused without an
//  allocation per use. Appends never fail loudly: a failed allocation sets
//  `failed` and later appends are ignored until mw_buf_reset; the renderers
//  check it once at the end. data is NUL-terminated after every append
//  (the NUL is not counted in len) once anything was appended.
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} mw_buf_t;

#define MW_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }

//  Initialize an empty buffer (no allocation).
void mw_buf_init (mw_buf_t *self);

//  Free the buffer's memory and make it empty again.
void mw_buf_release (mw_buf_t *self);

//  Empty the buffer and clear `failed`, keeping its memory for reuse.
void mw_buf_reset (mw_buf_t *self);

//  Make room for more bytes (plus the NUL). Return 0, or -1 (and set
//  `failed`) if memory is short or the buffer already failed.
int mw_buf_reserve (mw_buf_t *self, size_t more);

//  Append len bytes. Return 0, or -1 if the buffer failed.
int mw_buf_append (mw_buf_t *self, const void *data, size_t len);

//  Append a NUL-terminated string. Return 0, or -1 if the buffer failed.
int mw_buf_puts (mw_buf_t *self, const char *s);

//  Append one byte. Return 0, or -1 if the buffer failed.
int mw_buf_putc (mw_buf_t *self, char c);

//  Append printf-formatted text. Return 0, or -1 if the buffer failed.
int mw_buf_printf (mw_buf_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

//  Cut the buffer back to len bytes (len <= its length). Does not clear
//  `failed`. Used to undo a partial render.
void mw_buf_truncate (mw_buf_t *self, size_t len);

//  Append one event as a one-line JSON object (no newline). Return 0, or
//  -1 if memory ran out or the event's extras are not valid msgpack; on
//  failure the buffer is cut back to where it was (and `failed` may be
//  set: reset the buffer before reusing it).
int mw_json_event (mw_buf_t *buf, const mw_event_t *ev);

//  Flags of mw_json_event_ex.
//  MW_JSON_SID_STRING: write `sid` as a JSON string of its decimal digits
//  ("sid":"12345678901234567890"), so that JavaScript, which reads numbers
//  as doubles, keeps all 64 bits. The gateway's HTTP API uses it.
#define MW_JSON_SID_STRING 0x1u

//  mw_json_event with flags (MW_JSON_*); mw_json_event is flags = 0.
//  Return 0, or -1 as mw_json_event.
int mw_json_event_ex (mw_buf_t *buf, const mw_event_t *ev, unsigned flags);

//  Append the JSON of the one msgpack value at data (len bytes available).
//  Return 0 and the value's encoded size in *used_p (if not NULL), or -1 if
//  the value is malformed, truncated, nests more than MW_JSON_MAX_DEPTH, or
//  memory ran out; the buffer is then cut back to where it was.
int mw_json_msgpack (mw_buf_t *buf, const uint8_t *data, size_t len, size_t *used_p);

//  Append len bytes of untrusted text as a JSON string literal, quotes
//  included, escaped as described above. Return 0, or -1 if the buffer
//  failed.
int mw_json_string (mw_buf_t *buf, const char *s, size_t len);

//  Append a double as a JSON number: the shortest form that reads back
//  exactly; NaN and infinities as null. Return 0, or -1 if the buffer failed.
int mw_json_double (mw_buf_t *buf, double d);

//  Write ts (microseconds since the epoch) as ISO-8601 UTC with milliseconds,
//  "2024-05-01T14:32:15.123Z", into out (size >= MW_JSON_TIME_SIZE).
//  Return the length written.
#define MW_JSON_TIME_SIZE 40
size_t mw_json_format_time (char *out, size_t size, uint64_t ts_us);

//  Iterate over the custom keys of an event (its raw msgpack extras).
//  Start with *offset_p = 0; each call gives the next pair: the key in
//  *key_p / *key_len_p (NULL if the key is not a string), the raw value in
//  *val_p / *val_len_p. Return 1 for a pair, 0 at the end, -1 if the
//  extras are malformed.
int mw_json_extra_next (const mw_event_t *ev, size_t *offset_p, const char **key_p,
                        size_t *key_len_p, const uint8_t **val_p, size_t *val_len_p);

//  Find the custom key `key` of an event. Return 1 and its raw msgpack
//  value in *val_p / *val_len_p, or 0 if absent (or the extras are
//  malformed).
int mw_json_extra_find (const mw_event_t *ev, const char *key, const uint8_t **val_p,
                        size_t *val_len_p);

//  Decode one UTF-8 code point at s (len > 0 bytes). Return the number of
//  bytes it takes (>= 1) and the code point in *cp_p; an invalid or
//  truncated sequence gives U+FFFD and the length of its maximal invalid
//  prefix (Unicode's "maximal subpart" rule), so a caller always advances.
size_t mw_utf8_next (const uint8_t *s, size_t len, uint32_t *cp_p);

#ifdef __cplusplus
}
#endif

#endif
