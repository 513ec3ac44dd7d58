/*  fuzz_snapshot.c - libFuzzer target: the snapshot decoder (mw_state_load:
    a state file's payload, or a snapshot from the network).

    A state that loads must be usable: readers walk it, the gateway renders
    it as JSON that a strict parser (jansson) reads, a tick and an event
    apply to it, and it saves to bytes that load back to the same bytes.
*/
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
    fprintf (stderr, "fuzz_snapshot: %s\n", what);
    abort ();
}

static void
s_walk (mw_state_t *state)
{
    mw_stats_t stats;
    mw_state_stats (state, &stats);
    for (size_t i = 0; i < mw_state_recent_count (state); i++)
        if (!mw_state_recent (state, i))
            s_die ("recent event missing");
    for (size_t i = 0; i < mw_state_active_count (state); i++) {
        const mw_task_t *t = mw_state_active (state, i);
        if (!t || mw_state_find_task (state, t->miner, t->task_id) != t)
            s_die ("active task not found by its key");
    }
    for (size_t i = 0; i < mw_state_history_count (state); i++)
        if (!mw_state_history (state, i))
            s_die ("history task missing");
    for (size_t i = 0; i < mw_state_activity_count (state); i++)
        if (!mw_state_activity (state, i))
            s_die ("activity missing");
    for (size_t i = 0; i < mw_state_validator_count (state); i++)
        if (!mw_state_validator (state, i))
            s_die ("validator missing");
    for (size_t i = 0; i < mw_state_miner_count (state); i++)
        if (!mw_state_miner (state, i))
            s_die ("miner missing");
    mw_state_memory_t mem;
    mw_state_memory (state, &mem);
    mw_buf_t buf = MW_BUF_INIT;
    mw_render_index_t index;
    mw_render_index_init (&index);
    if (mw_render_status (&buf, state, NULL, &index) == 0) {
        json_error_t error;
        json_t *value = s_json_parse (buf.data, buf.len, &error);
        if (!value) {
            fprintf (stderr, "invalid JSON (%s at %d): %.*s\n", error.text, error.position,
                     (int) (buf.len > 400 ? 400 : buf.len), buf.data);
            s_die ("the status render of a loaded state is not JSON");
        }
        json_decref (value);
    }
    mw_render_index_release (&index);
    mw_buf_release (&buf);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char err[256];
    err[0] = 0;
    mw_state_t *state = mw_state_load (data, size, err, sizeof (err));
    if (!state) {
        if (!err[0])
            s_die ("a refusal without a message");
        return 0;
    }
    s_walk (state);
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    if (mw_state_save (state, &a, &alen) != 0)
        s_die ("a loaded state does not save");
    mw_state_t *again = mw_state_load (a, alen, err, sizeof (err));
    if (!again) {
        fprintf (stderr, "reload: %s\n", err);
        s_die ("a saved state does not load");
    }
    if (mw_state_save (again, &b, &blen) != 0 || blen != alen || memcmp (a, b, alen) != 0)
        s_die ("save (load (save (state))) differs");
    mw_state_destroy (&again);

    //  Life goes on after a load: a tick, then an event of a known task.
    uint64_t id = mw_state_last_id (state);
    uint64_t now = mw_state_now (state);
    if (id < UINT64_MAX - 4 && now < UINT64_MAX / 4) {
        mw_state_tick (state, now + 400000, id + 1);
        mw_event_t ev;
        mw_event_init (&ev, MW_TYPE_TASK_COMPLETE);
        const mw_task_t *t = mw_state_active_count (state) ? mw_state_active (state, 0) : NULL;
        mw_event_set_str (&ev, MW_K_MINER, t ? t->miner : "m");
        mw_event_set_str (&ev, MW_K_TASK_ID, t ? t->task_id : "t");
        ev.v = 1;
        ev.ts = 1;
        ev.sid = 1;
        ev.seq = 1;
        ev.success = true;
        ev.has = MW_HAS_ID | MW_HAS_SUCCESS | MW_HAS_BROKER_TS;
        ev.id = id + 2;
        ev.broker_ts = now + 400001;
        mw_state_apply (state, &ev, ev.broker_ts);
        s_walk (state);
    }
    free (a);
    free (b);
    mw_state_destroy (&state);
    return 0;
}
