/*  fuzz_seeds.c - writes the seed corpora of the event and snapshot fuzz
    targets from real data: the events gw_synth folds (every type, several
    miners and validators, hostile strings), as the broker re-publishes
    them (with id and broker_ts) and as a miner sends them (without), and
    snapshots of states with active and finished tasks.

    Usage: fuzz_seeds DIR   (writes DIR/event/ and DIR/snapshot/)
    Run once to refresh tests/fuzz/corpus; the files are kept in the tree.
*/
#include "gw_synth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *s_dir;
static int s_events;
static int s_failed;

static void
s_write (const char *sub, const char *name, const void *a, size_t alen, const void *b, size_t blen)
{
    char path[4096];
    snprintf (path, sizeof (path), "%s/%s/%s", s_dir, sub, name);
    FILE *f = fopen (path, "wb");
    if (!f || fwrite (a, 1, alen, f) != alen || (blen && fwrite (b, 1, blen, f) != blen)) {
        fprintf (stderr, "fuzz_seeds: cannot write %s: %s\n", path, strerror (errno));
        s_failed = 1;
    }
    if (f)
        fclose (f);
}

//  One event as the fuzz target reads it: topic length, topic, body.
static void
s_event (const mw_event_t *ev, bool with_id, const char *name)
{
    static uint8_t body[MW_MAX_BODY];
    mw_event_t copy = *ev;
    if (!with_id)
        copy.has &= ~(MW_HAS_ID | MW_HAS_BROKER_TS);
    size_t len;
    if (mw_event_encode (&copy, body, sizeof (body), &len, NULL) != MW_OK) {
        s_failed = 1;
        return;
    }
    uint8_t head[1 + MW_MAX_TYPE];
    size_t tlen = strlen (ev->type);
    head[0] = (uint8_t) tlen;
    memcpy (head + 1, ev->type, tlen);
    s_write ("event", name, head, 1 + tlen, body, len);
}

static void
s_on_event (const mw_event_t *ev, void *arg)
{
    //  The first few of every type, both forms.
    static int per_type[64];
    int slot = (int) ev->kind;
    if (ev->kind == MW_TYPE_CUSTOM)
        slot = MW_TYPE_COUNT;
    if (per_type[slot]++ >= 2)
        return;
    char name[128];
    snprintf (name, sizeof (name), "%s-%d-update", ev->type, per_type[slot]);
    s_event (ev, true, name);
    snprintf (name, sizeof (name), "%s-%d-miner", ev->type, per_type[slot]);
    s_event (ev, false, name);
    s_events++;
}

static int
s_snapshot (gw_synth_t *synth, const char *name)
{
    uint8_t *buf;
    size_t len;
    if (mw_state_save (synth->state, &buf, &len) != 0)
        return -1;
    s_write ("snapshot", name, buf, len, NULL, 0);
    free (buf);
    return 0;
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    s_dir = argv[1];
    char path[4096];
    snprintf (path, sizeof (path), "%s/event", s_dir);
    mkdir (path, 0755);
    snprintf (path, sizeof (path), "%s/snapshot", s_dir);
    mkdir (path, 0755);

    //  Small bounds keep the snapshots small (fuzzing speed) while every
    //  ring wraps and every table evicts.
    mw_state_config_t cfg;
    mw_state_config_default (&cfg);
    cfg.recent_events = 6;
    cfg.task_history = 4;
    cfg.validator_activity = 4;
    cfg.max_active_tasks = 3;
    cfg.max_validators = 2;
    cfg.max_miners = 3;
    gw_synth_t synth;
    if (gw_synth_init (&synth, &cfg) != 0)
        return 1;
    synth.fn = s_on_event;
    s_snapshot (&synth, "empty");
    gw_synth_events (&synth, 5);
    s_snapshot (&synth, "five-events");
    gw_synth_events (&synth, 40);
    s_snapshot (&synth, "tasks-active-and-finished");
    gw_synth_tick (&synth, 400000);
    s_snapshot (&synth, "after-stale-tick");
    gw_synth_events (&synth, 12);
    s_snapshot (&synth, "wrapped-rings");
    gw_synth_release (&synth);

    //  The default bounds: what a broker saves.
    if (gw_synth_init (&synth, NULL) != 0)
        return 1;
    synth.fn = s_on_event;
    gw_synth_events (&synth, 30);
    gw_synth_tick (&synth, 1000);
    s_snapshot (&synth, "default-config");
    gw_synth_release (&synth);
    printf ("wrote %d events and 6 snapshots to %s\n", s_events, s_dir);
    return s_failed;
}
