/*  bench_state.c - what the broker's state costs: apply() time per event,
    memory at full bounds, snapshot size and save/load time.

    1. apply: a realistic stream is generated and encoded beforehand (not
       timed) into wire bodies as the broker receives them, broker id and
       broker time included: 8 miners, 200 validators, about 20 tasks in
       flight, each task a task_start, 2-8 more events (steps, 1-2
       actions_generated, sometimes a cache_hit, a validator_connection or
       an error), a task_complete (90% success) and, for half of them, a
       task_feedback; a tick per second of broker time at 1000 events/s.
       Timed in batches, each round on a new state: decoding alone, then
       decoding and applying the same bodies. apply's cost is the
       difference: the event is hot in cache when apply reads it, as it is
       in the broker right after its decode. (Applying pre-built event
       structs instead would mostly time cache misses on a 450 MB array.)
       Also timed: task_starts into a full table (each evicts the oldest)
       and a tick over a full table where nothing expires.
    2. memory at full bounds (default config): every ring, table and cap
       filled: 10,000 active tasks, 500 finished, 1,000 recent events, 200
       validator interactions, 1,000 validators, 1,000 miners. Two string
       profiles: typical (prompts of ~100 bytes, 48-byte hotkeys) and worst
       (every string at its protocol limit). Reported: the bytes the state
       accounts for (mw_state_memory) and the process RSS growth.
    3. snapshot of each full state: size, median save and load time.

    Usage: bench_state [--events N] [--batch B] [--rounds R] [--quick] [--apply-only]
    Exit status 0, or 1 if a step failed (apply refused an event, a snapshot
    did not round-trip), 2 on a bad flag.
*/
#include "mw_state.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static size_t
s_rss_bytes (void)
{
    FILE *f = fopen ("/proc/self/statm", "r");
    if (!f)
        return 0;
    unsigned long size = 0, resident = 0;
    if (fscanf (f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose (f);
    return (size_t) resident * (size_t) sysconf (_SC_PAGESIZE);
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double
s_percentile (double *v, size_t n, double p)
{
    qsort (v, n, sizeof (double), s_cmp_double);
    size_t i = (size_t) (p * (double) (n - 1) + 0.5);
    return v[i];
}

static uint64_t s_rng = 0x2545f4914f6cdd1dULL;

static uint64_t
s_rand (void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

//  --------------------------------------------------------------------------
//  The stream, one event (or tick) at a time

typedef enum { S_IDLE, S_WORK, S_COMPLETE, S_FEEDBACK } s_phase_t;

typedef struct {
    s_phase_t phase;
    uint32_t miner;
    uint32_t validator;
    uint32_t steps_left;
    uint32_t actions_left;
    bool feedback;
    char task_id[48];
    char ip[24];
    char hotkey[56];
} s_task_t;

#define S_INFLIGHT   20
#define S_MINERS     8
#define S_VALIDATORS 200

typedef struct {
    s_task_t tasks[S_INFLIGHT];
    uint64_t seq[S_MINERS];
    char miner[S_MINERS][16];
    uint64_t tasks_made;
    uint64_t now; //  broker time, ms: one event per ms
    uint64_t next_tick;
    uint64_t id;
} s_gen_t;

static const char *s_prompts[] = {
    "Login to example.com with the test account and open the billing settings",
    "Search for remote software engineering jobs in Berlin and save the first three results",
    "Add a blue cotton t-shirt size M to the cart and proceed to checkout without paying",
    "Find the contact form, fill in name and email, and submit a question about pricing",
};
static const char *s_steps[] = {"planning",   "navigating",   "processing",
                                "extracting", "filling form", "verifying"};

static void
s_gen_init (s_gen_t *g)
{
    memset (g, 0, sizeof (*g));
    g->now = 1700000000000ULL;
    g->next_tick = g->now + 1000;
    for (int m = 0; m < S_MINERS; m++)
        snprintf (g->miner[m], sizeof (g->miner[m]), "miner-%02d", m);
}

//  The next item: true and an event in ev (strings point into g), or false
//  for a tick; *now_p and *id_p get its broker time and id.
static bool
s_gen_next (s_gen_t *g, mw_event_t *ev, uint64_t *now_p, uint64_t *id_p)
{
    *id_p = ++g->id;
    if (g->now >= g->next_tick) {
        g->next_tick += 1000;
        *now_p = g->now;
        return false;
    }
    *now_p = ++g->now;
    s_task_t *t = &g->tasks[s_rand () % S_INFLIGHT];
    switch (t->phase) {
        case S_IDLE: {
            uint64_t n = g->tasks_made++;
            t->miner = (uint32_t) (s_rand () % S_MINERS);
            t->validator = (uint32_t) (s_rand () % S_VALIDATORS);
            t->steps_left = 2 + (uint32_t) (s_rand () % 7);
            t->actions_left = 1 + (uint32_t) (s_rand () % 2);
            t->feedback = s_rand () % 2;
            snprintf (t->task_id, sizeof (t->task_id), "%08llx-7b4d-4e8a-9f01-%012llx",
                      (unsigned long long) ((n * 2654435761ULL) & 0xffffffffULL),
                      (unsigned long long) n);
            snprintf (t->ip, sizeof (t->ip), "84.247.%u.%u", t->validator / 250,
                      t->validator % 250);
            snprintf (t->hotkey, sizeof (t->hotkey), "5F%046u", t->validator);
            mw_event_init (ev, MW_TYPE_TASK_START);
            mw_event_set_str (ev, MW_K_PROMPT, s_prompts[s_rand () % 4]);
            mw_event_set_str (ev, MW_K_URL, "https://example.com/app/start");
            mw_event_set_str (ev, MW_K_VALIDATOR_IP, t->ip);
            mw_event_set_str (ev, MW_K_VALIDATOR_HOTKEY, t->hotkey);
            mw_event_set_str (ev, MW_K_TASK_ID, t->task_id);
            ev->timeout_ms = 60000;
            ev->has |= MW_HAS_TIMEOUT_MS;
            t->phase = S_WORK;
            break;
        }
        case S_WORK: {
            uint64_t r = s_rand () % 100;
            if (r < 3) {
                mw_event_init (ev, MW_TYPE_VALIDATOR_CONNECTION);
                mw_event_set_str (ev, MW_K_VALIDATOR_IP, t->ip);
            }
            else if (r < 5) {
                mw_event_init (ev, MW_TYPE_ERROR);
                mw_event_set_str (ev, MW_K_ERROR_MESSAGE, "element not found: #submit");
            }
            else if (r < 15) {
                mw_event_init (ev, MW_TYPE_CACHE_HIT);
                mw_event_set_str (ev, MW_K_CACHE_TYPE, "plan");
                mw_event_set_str (ev, MW_K_TASK_ID, t->task_id);
            }
            else if (r < 40 && t->actions_left) {
                t->actions_left--;
                mw_event_init (ev, MW_TYPE_ACTIONS_GENERATED);
                ev->action_count = 3 + s_rand () % 20;
                ev->has |= MW_HAS_ACTION_COUNT;
                mw_event_set_str (ev, MW_K_TASK_ID, t->task_id);
            }
            else {
                mw_event_init (ev, MW_TYPE_TASK_STEP);
                mw_event_set_str (ev, MW_K_STEP, s_steps[s_rand () % 6]);
                mw_event_set_str (ev, MW_K_TASK_ID, t->task_id);
            }
            if (--t->steps_left == 0)
                t->phase = S_COMPLETE;
            break;
        }
        case S_COMPLETE:
            mw_event_init (ev, MW_TYPE_TASK_COMPLETE);
            ev->success = s_rand () % 10 != 0;
            ev->has |= MW_HAS_SUCCESS | MW_HAS_ACTION_COUNT;
            ev->action_count = 12;
            if (!ev->success)
                mw_event_set_str (ev, MW_K_ERROR, "validator timeout");
            mw_event_set_str (ev, MW_K_TASK_ID, t->task_id);
            t->phase = t->feedback ? S_FEEDBACK : S_IDLE;
            break;
        case S_FEEDBACK:
            //  Validators score an answer after it was returned.
            mw_event_init (ev, MW_TYPE_TASK_FEEDBACK);
            mw_event_set_str (ev, MW_K_TASK_ID, t->task_id);
            ev->score = (double) (s_rand () % 100) / 100.0;
            ev->has |= MW_HAS_SCORE;
            t->phase = S_IDLE;
            break;
    }
    mw_event_set_str (ev, MW_K_MINER, g->miner[t->miner]);
    ev->ts = g->now * 1000 + s_rand () % 1000;
    ev->sid = 0x5eed0000ULL + t->miner;
    ev->seq = ++g->seq[t->miner];
    //  As the broker publishes it: broker id and broker time.
    ev->id = *id_p;
    ev->broker_ts = g->now;
    ev->has |= MW_HAS_ID | MW_HAS_BROKER_TS;
    return true;
}

//  The stream encoded: bodies back to back; a tick is an empty body.
typedef struct {
    uint8_t *bytes;
    size_t used;
    size_t size;
    size_t *off; //  count + 1 offsets
    uint64_t *now;
    size_t count;
} s_wire_t;

static int
s_wire_build (s_wire_t *w, size_t events)
{
    size_t items = events + events / 900 + 16;
    w->size = events * 220 + 65536;
    w->bytes = (uint8_t *) malloc (w->size);
    w->off = (size_t *) malloc ((items + 1) * sizeof (size_t));
    w->now = (uint64_t *) malloc (items * sizeof (uint64_t));
    if (!w->bytes || !w->off || !w->now)
        return -1;
    s_gen_t *g = (s_gen_t *) malloc (sizeof (s_gen_t));
    if (!g)
        return -1;
    s_gen_init (g);
    w->used = 0;
    w->count = 0;
    size_t made = 0;
    while (made < events && w->count < items) {
        mw_event_t ev;
        uint64_t now, id;
        w->off[w->count] = w->used;
        if (s_gen_next (g, &ev, &now, &id)) {
            size_t len = 0;
            if (w->size - w->used < MW_MAX_BODY ||
                mw_event_encode (&ev, w->bytes + w->used, w->size - w->used, &len, NULL) != MW_OK) {
                free (g);
                return -1;
            }
            w->used += len;
            made++;
        }
        w->now[w->count++] = now;
    }
    w->off[w->count] = w->used;
    free (g);
    return 0;
}

static void
s_wire_free (s_wire_t *w)
{
    free (w->bytes);
    free (w->off);
    free (w->now);
}

//  One timed pass over the wire: decode every body (and apply it, and
//  tick, when st is given). Per-batch ns/event go to ns[*nb...].
static int
s_pass (const s_wire_t *w, mw_state_t *st, size_t batch, double *ns, size_t *nb, size_t max)
{
    mw_event_t ev;
    mw_event_init (&ev, MW_TYPE_CUSTOM);
    int failed = 0;
    size_t i = 0;
    while (i < w->count) {
        size_t done = 0;
        uint64_t t0 = s_now_ns ();
        for (; i < w->count && done < batch; i++) {
            size_t len = w->off[i + 1] - w->off[i];
            if (len == 0) {
                if (st)
                    failed |= mw_state_tick (st, w->now[i], (uint64_t) i + 1) < 0;
                continue;
            }
            failed |= mw_event_decode (&ev, NULL, 0, w->bytes + w->off[i], len, NULL, 0) != MW_OK;
            if (st)
                failed |= mw_state_apply (st, &ev, w->now[i]) != 0;
            done++;
        }
        uint64_t t1 = s_now_ns ();
        if (done == batch && *nb < max)
            ns[(*nb)++] = (double) (t1 - t0) / (double) done;
    }
    mw_event_release (&ev);
    return failed;
}

//  --------------------------------------------------------------------------
//  Filling a state to its bounds

//  Strings of one event live in a small arena, reset per task.
typedef struct {
    char *buf;
    size_t used;
    size_t size;
} s_arena_t;

static const char *s_arena_printf (s_arena_t *a, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

static const char *
s_arena_printf (s_arena_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (a->buf + a->used, a->size - a->used, fmt, ap);
    va_end (ap);
    if (n < 0 || (size_t) n >= a->size - a->used) {
        fprintf (stderr, "bench_state: arena full\n");
        exit (1);
    }
    const char *s = a->buf + a->used;
    a->used += (size_t) n + 1;
    return s;
}

static char s_big[MW_MAX_STR + 1];

//  A string of the profile: typical text, or the limit's worth of 'x'.
static const char *
s_text (s_arena_t *a, bool worst, size_t limit, const char *typical)
{
    if (!worst)
        return typical;
    return s_arena_printf (a, "%.*s", (int) limit, s_big);
}

static int
s_fill (mw_state_t *st, bool worst, s_arena_t *a, uint64_t *id_p, uint64_t *now_p)
{
    const mw_state_config_t *cfg = mw_state_config (st);
    uint64_t id = *id_p, now = *now_p;
    uint32_t miners = cfg->max_miners, validators = cfg->max_validators;
    size_t history = cfg->task_history, active = cfg->max_active_tasks;
    for (size_t i = 0; i < history + active; i++) {
        a->used = 0;
        uint32_t m = (uint32_t) (i % miners), v = (uint32_t) (i % validators);
        //  Worst: task ids and miner names exactly at their limits.
        char tid[MW_MAX_TASK_ID + 32], miner[MW_MAX_MINER + 32];
        if (worst) {
            snprintf (tid, sizeof (tid), "%0*zu", MW_MAX_TASK_ID, i);
            snprintf (miner, sizeof (miner), "%0*u", MW_MAX_MINER, m);
        }
        else {
            snprintf (tid, sizeof (tid), "3f2a9c1e-7b4d-4e8a-9f01-%012zu", i);
            snprintf (miner, sizeof (miner), "miner-%06u", m);
        }
        char hk[80], ip[32];
        snprintf (hk, sizeof (hk), "5F%046u", v);
        snprintf (ip, sizeof (ip), "10.%u.%u.%u", v >> 16 & 255, v >> 8 & 255, v & 255);
        mw_event_t ev;
        mw_event_init (&ev, MW_TYPE_TASK_START);
        mw_event_set_str (&ev, MW_K_MINER, miner);
        mw_event_set_str (&ev, MW_K_TASK_ID, tid);
        mw_event_set_str (&ev, MW_K_PROMPT, s_text (a, worst, MW_MAX_STR, s_prompts[i % 4]));
        mw_event_set_str (&ev, MW_K_URL,
                          s_text (a, worst, MW_MAX_STR, "https://example.com/app/start"));
        mw_event_set_str (&ev, MW_K_VALIDATOR_IP, worst ? s_text (a, true, MW_MAX_STR, "") : ip);
        mw_event_set_str (&ev, MW_K_VALIDATOR_HOTKEY, hk);
        ev.ts = now * 1000;
        ev.sid = 1;
        ev.seq = i + 1;
        ev.id = ++id;
        ev.has |= MW_HAS_ID;
        if (mw_state_apply (st, &ev, now++) != 0)
            return -1;
        mw_event_init (&ev, MW_TYPE_TASK_STEP);
        mw_event_set_str (&ev, MW_K_MINER, miner);
        mw_event_set_str (&ev, MW_K_TASK_ID, tid);
        mw_event_set_str (&ev, MW_K_STEP, s_text (a, worst, MW_MAX_STR, "processing"));
        ev.ts = now * 1000;
        ev.sid = 1;
        ev.seq = i + 1;
        ev.id = ++id;
        ev.has |= MW_HAS_ID;
        if (mw_state_apply (st, &ev, now++) != 0)
            return -1;
        if (i < history) {
            mw_event_init (&ev, MW_TYPE_TASK_COMPLETE);
            mw_event_set_str (&ev, MW_K_MINER, miner);
            mw_event_set_str (&ev, MW_K_TASK_ID, tid);
            mw_event_set_str (&ev, MW_K_ERROR, s_text (a, worst, MW_MAX_STR, "validator timeout"));
            ev.success = false;
            ev.has |= MW_HAS_SUCCESS;
            ev.ts = now * 1000;
            ev.sid = 1;
            ev.seq = i + 1;
            ev.id = ++id;
            ev.has |= MW_HAS_ID;
            if (mw_state_apply (st, &ev, now++) != 0)
                return -1;
        }
    }
    *id_p = id;
    *now_p = now;
    return 0;
}

//  --------------------------------------------------------------------------

static int
s_snapshot (const char *profile, const mw_state_t *st, int rounds)
{
    double save_ms[16] = {0}, load_ms[16] = {0};
    size_t len = 0;
    int rc = 0;
    if (rounds > 16)
        rounds = 16;
    for (int r = 0; r < rounds; r++) {
        uint8_t *buf = NULL;
        uint64_t t0 = s_now_ns ();
        if (mw_state_save (st, &buf, &len) != 0)
            return -1;
        uint64_t t1 = s_now_ns ();
        char err[256];
        mw_state_t *back = mw_state_load (buf, len, err, sizeof (err));
        uint64_t t2 = s_now_ns ();
        if (!back) {
            fprintf (stderr, "bench_state: load failed: %s\n", err);
            free (buf);
            return -1;
        }
        uint8_t *again = NULL;
        size_t len2 = 0;
        if (r == 0 && (mw_state_save (back, &again, &len2) != 0 || len2 != len ||
                       memcmp (buf, again, len) != 0)) {
            fprintf (stderr, "bench_state: snapshot does not round-trip\n");
            rc = -1;
        }
        free (again);
        mw_state_destroy (&back);
        free (buf);
        save_ms[r] = (double) (t1 - t0) / 1e6;
        load_ms[r] = (double) (t2 - t1) / 1e6;
    }
    printf ("snapshot  %-8s  size %8.2f MB   save %8.2f ms   load %8.2f ms   (median of %d)\n",
            profile, (double) len / 1e6, s_percentile (save_ms, (size_t) rounds, 0.5),
            s_percentile (load_ms, (size_t) rounds, 0.5), rounds);
    return rc;
}

static void
s_usage (void)
{
    fprintf (stderr,
             "usage: bench_state [--events N] [--batch B] [--rounds R] [--quick] [--apply-only]\n");
}

int
main (int argc, char *argv[])
{
    size_t events = 1000000, batch = 10000;
    int rounds = 5;
    bool quick = false;
    bool apply_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--events") == 0 && i + 1 < argc)
            events = strtoull (argv[++i], NULL, 10);
        else if (strcmp (argv[i], "--batch") == 0 && i + 1 < argc)
            batch = strtoull (argv[++i], NULL, 10);
        else if (strcmp (argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi (argv[++i]);
        else if (strcmp (argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp (argv[i], "--apply-only") == 0)
            apply_only = true;
        else {
            s_usage ();
            return 2;
        }
    }
    if (quick) {
        events = 20000;
        batch = 2000;
        rounds = 1;
    }
    if (events < batch || batch == 0 || rounds < 1) {
        s_usage ();
        return 2;
    }
    memset (s_big, 'x', MW_MAX_STR);
    int failed = 0;

    //  1. apply
    s_wire_t wire;
    if (s_wire_build (&wire, events) != 0) {
        fprintf (stderr, "bench_state: could not build the stream\n");
        s_wire_free (&wire);
        return 1;
    }
    size_t max = (events / batch + 1) * (size_t) rounds;
    double *dec = (double *) malloc (max * sizeof (double));
    double *both = (double *) malloc (max * sizeof (double));
    if (!dec || !both)
        return 1;
    size_t nd = 0, nbo = 0;
    mw_stats_t stats;
    memset (&stats, 0, sizeof (stats));
    for (int r = 0; r < rounds; r++) {
        failed |= s_pass (&wire, NULL, batch, dec, &nd, max);
        mw_state_t *st = mw_state_new (NULL);
        failed |= s_pass (&wire, st, batch, both, &nbo, max);
        mw_state_stats (st, &stats);
        mw_state_destroy (&st);
    }
    double dec_med = s_percentile (dec, nd, 0.5);
    double both_med = s_percentile (both, nbo, 0.5);
    printf ("apply     stream    %zu events x %d rounds, batches of %zu (medians):\n"
            "                    decode %.0f ns/event, decode + apply %.0f ns/event "
            "(p10 %.0f, p90 %.0f): apply %.0f ns/event\n",
            events, rounds, batch, dec_med, both_med, s_percentile (both, nbo, 0.1),
            s_percentile (both, nbo, 0.9), both_med - dec_med);
    printf ("          stream:   %.0f bytes/event on the wire; %llu tasks started, %llu "
            "succeeded, %llu failed, %.1f%% cache hits, p95 %.2f s\n",
            (double) wire.used / (double) events, (unsigned long long) stats.tasks_started,
            (unsigned long long) stats.tasks_succeeded, (unsigned long long) stats.tasks_failed,
            100 * stats.cache_hit_rate, stats.p95);
    free (dec);
    free (both);
    s_wire_free (&wire);
    if (apply_only)
        return failed ? 1 : 0;

    //  2 and 3. full bounds, two profiles; the apply-at-cap and tick timings
    //  use the typical one.
    size_t fill_size = 8 * ((size_t) MW_MAX_STR + 2);
    s_arena_t fill = {(char *) malloc (fill_size), 0, fill_size};
    if (!fill.buf)
        return 1;
    for (int worst = 0; worst <= 1; worst++) {
        const char *profile = worst ? "worst" : "typical";
        size_t rss0 = s_rss_bytes ();
        mw_state_t *st = mw_state_new (NULL);
        uint64_t id = 0, now = 1700000000000ULL;
        if (!st || s_fill (st, worst, &fill, &id, &now) != 0) {
            fprintf (stderr, "bench_state: filling the state failed\n");
            mw_state_destroy (&st);
            free (fill.buf);
            return 1;
        }
        size_t rss1 = s_rss_bytes ();
        mw_state_memory_t mem;
        mw_state_memory (st, &mem);
        printf ("memory    %-8s  %zu active, %zu finished, %zu recent, %zu interactions, %zu "
                "validators, %zu miners:\n"
                "                    %.1f MB accounted by the state, RSS +%.1f MB\n",
                profile, mw_state_active_count (st), mw_state_history_count (st),
                mw_state_recent_count (st), mw_state_activity_count (st),
                mw_state_validator_count (st), mw_state_miner_count (st), (double) mem.bytes / 1e6,
                (double) (rss1 - rss0) / 1e6);
        if (s_snapshot (profile, st, quick ? 1 : 5) != 0)
            failed = 1;
        if (!worst) {
            //  Every start now evicts the oldest task.
            size_t n = quick ? 2000 : 200000;
            char tid[40], miner[16];
            uint64_t t0 = s_now_ns ();
            for (size_t i = 0; i < n; i++) {
                snprintf (tid, sizeof (tid), "evict-%zu", i);
                snprintf (miner, sizeof (miner), "miner-%06zu", i % 1000);
                mw_event_t ev;
                mw_event_init (&ev, MW_TYPE_TASK_START);
                mw_event_set_str (&ev, MW_K_MINER, miner);
                mw_event_set_str (&ev, MW_K_TASK_ID, tid);
                mw_event_set_str (&ev, MW_K_PROMPT, s_prompts[i % 4]);
                ev.ts = now * 1000;
                ev.sid = 1;
                ev.seq = 20000 + i;
                ev.id = ++id;
                ev.has |= MW_HAS_ID;
                failed |= mw_state_apply (st, &ev, now) != 0;
            }
            uint64_t t1 = s_now_ns ();
            //  Ticks over 10,000 active tasks, none expiring.
            size_t ticks = quick ? 1000 : 100000;
            for (size_t i = 0; i < ticks; i++)
                failed |= mw_state_tick (st, now + i / 100, ++id) != 0;
            uint64_t t2 = s_now_ns ();
            printf ("apply     at cap    %.0f ns per task_start that evicts the oldest (%zu)\n",
                    (double) (t1 - t0) / (double) n, n);
            printf ("tick      at cap    %.0f ns per tick over %zu active tasks, none expiring\n",
                    (double) (t2 - t1) / (double) ticks, mw_state_active_count (st));
        }
        mw_state_destroy (&st);
    }
    free (fill.buf);
    if (failed)
        fprintf (stderr, "bench_state: a step failed\n");
    return failed ? 1 : 0;
}
