/*  fuzz_event.c - libFuzzer target: the wire decoder, and what the broker
    and the gateway do with an event it accepts.

    Input: one byte, the topic length (0xff: no topic frame), the topic,
    then the msgpack body. An accepted event must re-encode, decode again
    and re-encode to the same bytes (the broker re-publishes what it
    decoded; the gateway decodes that), render as JSON that a strict
    parser (jansson: valid UTF-8, valid syntax) reads, fold into a state
    whose status JSON parses too and that saves and loads back to the same
    bytes.
*/
#include "mw_json.h"
#include "mw_render.h"
#include "mw_state.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  Parse len bytes of JSON with jansson. jansson refuses an escaped NUL
//  (\u0000) in an object key, which JSON allows (and JSON.parse reads):
//  such escapes are read as \u0001 here, which changes no validity. And
//  integers are read as doubles: jansson's are 64-bit signed, JSON's are
//  not bounded (the state's counters and clocks are unsigned 64-bit).
static json_t *
s_json_parse (const char *text, size_t len, json_error_t *error)
{
    char *copy = (char *) malloc (len + 1);
    if (!copy)
        return NULL;
    memcpy (copy, text, len);
    copy[len] = 0;
    for (char *p = copy; (p = strstr (p, "\\u0000")) != NULL; p += 6)
        p[5] = '1';
    json_t *value = json_loadb (copy, len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, error);
    free (copy);
    return value;
}


static void
s_die (const char *what)
{
    fprintf (stderr, "fuzz_event: %s\n", what);
    abort ();
}

//  Check that len bytes at text are one valid JSON value.
static void
s_json_valid (const char *text, size_t len, const char *what)
{
    json_error_t error;
    json_t *value = s_json_parse (text, len, &error);
    if (!value) {
        fprintf (stderr, "%s: invalid JSON (%s at %d): %.*s\n", what, error.text, error.position,
                 (int) (len > 400 ? 400 : len), text);
        s_die ("the gateway rendered invalid JSON");
    }
    json_decref (value);
}

//  Fold ev into a fresh small state; the snapshot must round-trip.
static void
s_fold (const mw_event_t *ev)
{
    mw_state_config_t cfg;
    mw_state_config_default (&cfg);
    cfg.recent_events = 4;
    cfg.task_history = 4;
    cfg.validator_activity = 4;
    cfg.max_active_tasks = 4;
    cfg.max_validators = 4;
    cfg.max_miners = 4;
    mw_state_t *state = mw_state_new (&cfg);
    if (!state)
        return;
    mw_event_t copy;
    memset (&copy, 0, sizeof (copy));
    if (mw_event_copy (&copy, ev) == 0) {
        copy.id = 7;
        copy.has |= MW_HAS_ID | MW_HAS_BROKER_TS;
        copy.broker_ts = 1700000000000;
        if (mw_state_apply (state, &copy, copy.broker_ts) != 0)
            s_die ("a decoded event was refused by the state");
        mw_state_tick (state, copy.broker_ts + 1000000, 8);
        mw_stats_t stats;
        mw_state_stats (state, &stats);
        mw_buf_t buf = MW_BUF_INIT;
        mw_render_opts_t opts = {0x0123456789abcdefull};
        if (mw_render_status (&buf, state, &opts, NULL) == 0)
            s_json_valid (buf.data, buf.len, "status");
        mw_buf_release (&buf);
        uint8_t *snap = NULL, *again = NULL;
        size_t len = 0, len2 = 0;
        if (mw_state_save (state, &snap, &len) == 0) {
            char err[256];
            mw_state_t *loaded = mw_state_load (snap, len, err, sizeof (err));
            if (!loaded) {
                fprintf (stderr, "load: %s\n", err);
                s_die ("a saved state does not load");
            }
            if (mw_state_save (loaded, &again, &len2) == 0 &&
                (len2 != len || memcmp (snap, again, len) != 0))
                s_die ("save (load (save (state))) differs");
            mw_state_destroy (&loaded);
        }
        free (snap);
        free (again);
    }
    mw_event_release (&copy);
    mw_state_destroy (&state);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *topic = NULL;
    size_t topic_len = 0;
    size_t skip = 1;
    if (data[0] != 0xff) {
        topic_len = data[0] < size - 1 ? data[0] : size - 1;
        topic = data + 1;
        skip += topic_len;
    }
    const uint8_t *body = data + skip;
    size_t body_len = size - skip;

    size_t used;
    mw_msgpack_check (body, body_len, MW_MAX_DEPTH, &used);

    mw_event_t ev;
    memset (&ev, 0, sizeof (ev));
    char err[256];
    int rc = mw_event_decode (&ev, topic, topic_len, body, body_len, err, sizeof (err));
    if (rc != MW_OK) {
        if (!err[0])
            s_die ("a refusal without a message");
        return 0;
    }
    //  Re-encode: the fixpoint is reached after one trip.
    uint8_t *out1 = (uint8_t *) malloc (MW_MAX_BODY);
    uint8_t *out2 = (uint8_t *) malloc (MW_MAX_BODY);
    size_t len1 = 0, len2 = 0;
    if (!out1 || !out2)
        s_die ("out of memory");
    rc = mw_event_encode (&ev, out1, MW_MAX_BODY, &len1, NULL);
    if (rc == MW_OK) {
        mw_event_t back;
        memset (&back, 0, sizeof (back));
        rc = mw_event_decode (&back, ev.type, strlen (ev.type), out1, len1, err, sizeof (err));
        if (rc != MW_OK) {
            fprintf (stderr, "decode of a re-encoded event: %s\n", err);
            s_die ("a re-encoded event does not decode");
        }
        rc = mw_event_encode (&back, out2, MW_MAX_BODY, &len2, NULL);
        if (rc != MW_OK || len2 != len1 || memcmp (out1, out2, len1) != 0)
            s_die ("encode (decode (encode (event))) differs");
        mw_event_release (&back);
    }
    else if (rc != MW_ERR_TOO_LARGE)
        s_die ("a decoded event does not encode");

    mw_buf_t buf = MW_BUF_INIT;
    if (mw_json_event_ex (&buf, &ev, MW_JSON_SID_STRING) == 0)
        s_json_valid (buf.data, buf.len, "event");
    mw_buf_release (&buf);

    s_fold (&ev);
    mw_event_release (&ev);
    free (out1);
    free (out2);
    return 0;
}
