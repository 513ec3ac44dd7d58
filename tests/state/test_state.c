/*  test_state.c - unit tests of the broker's state (mw_state.h).

    Usage: test_state [apply|bounds|snapshot|hostile]   (no argument: all)

    Events are built as the broker hands them to mw_state_apply: decoded
    shape (strings as pointer + length), a broker id, a broker time.
    MW_TEST_SCALE (0 < s <= 1) shrinks the large tests for valgrind.
*/
#define _GNU_SOURCE //  memmem
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_state.h"

static double s_scale = 1.0;

static size_t
s_scaled (size_t full, size_t floor)
{
    size_t n = (size_t) ((double) full * s_scale);
    return n < floor ? floor : n;
}

static bool
s_near (double a, double b)
{
    return fabs (a - b) < 1e-9 * (1 + fabs (b));
}

//  --------------------------------------------------------------------------
//  Fixture: one state, one miner session, broker ids and time

typedef struct {
    mw_state_t *st;
    uint64_t id;  //  last broker id used
    uint64_t now; //  broker time, ms
    uint64_t sid;
    uint64_t seq;
    const char *miner;
} fx_t;

static fx_t *
fx_new (const mw_state_config_t *cfg)
{
    fx_t *f = (fx_t *) calloc (1, sizeof (fx_t));
    assert_non_null (f);
    f->st = mw_state_new (cfg);
    assert_non_null (f->st);
    f->now = 1700000000000ULL;
    f->sid = 0xabcdef;
    f->miner = "miner-1";
    return f;
}

static void
fx_destroy (fx_t **f_p)
{
    mw_state_destroy (&(*f_p)->st);
    assert_null ((*f_p)->st);
    free (*f_p);
    *f_p = NULL;
}

static int
setup (void **state)
{
    *state = fx_new (NULL);
    return 0;
}

static int
teardown (void **state)
{
    fx_t *f = (fx_t *) *state;
    fx_destroy (&f);
    return 0;
}

//  An event of the fixture's miner session at the fixture's time.
static mw_event_t
ev_make (fx_t *f, mw_type_t kind, const char *task_id)
{
    mw_event_t ev;
    mw_event_init (&ev, kind);
    mw_event_set_str (&ev, MW_K_MINER, f->miner);
    if (task_id)
        mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
    ev.ts = f->now * 1000;
    ev.sid = f->sid;
    ev.seq = ++f->seq;
    return ev;
}

static int
fx_apply (fx_t *f, mw_event_t *ev)
{
    ev->id = ++f->id;
    ev->has |= MW_HAS_ID;
    return mw_state_apply (f->st, ev, f->now);
}

static void
fx_ok (fx_t *f, mw_event_t *ev)
{
    assert_int_equal (fx_apply (f, ev), 0);
}

static int
fx_tick (fx_t *f)
{
    return mw_state_tick (f->st, f->now, ++f->id);
}

static void
start_task (fx_t *f, const char *task_id, const char *ip, const char *hotkey)
{
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_START, task_id);
    mw_event_set_str (&ev, MW_K_PROMPT, "Login to example.com");
    mw_event_set_str (&ev, MW_K_URL, "https://example.com/login");
    if (ip)
        mw_event_set_str (&ev, MW_K_VALIDATOR_IP, ip);
    if (hotkey)
        mw_event_set_str (&ev, MW_K_VALIDATOR_HOTKEY, hotkey);
    fx_ok (f, &ev);
}

static void
step_task (fx_t *f, const char *task_id, const char *step)
{
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_STEP, task_id);
    mw_event_set_str (&ev, MW_K_STEP, step);
    fx_ok (f, &ev);
}

static void
complete_task (fx_t *f, const char *task_id, bool success)
{
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_COMPLETE, task_id);
    ev.success = success;
    ev.has |= MW_HAS_SUCCESS;
    fx_ok (f, &ev);
}

static mw_stats_t
stats_of (const fx_t *f)
{
    mw_stats_t s;
    mw_state_stats (f->st, &s);
    return s;
}

//  Save a state; the caller frees.
static uint8_t *
save_of (const mw_state_t *st, size_t *len)
{
    uint8_t *buf = NULL;
    assert_int_equal (mw_state_save (st, &buf, len), 0);
    assert_non_null (buf);
    return buf;
}

static void
assert_same_bytes (const mw_state_t *a, const mw_state_t *b)
{
    size_t la, lb;
    uint8_t *ba = save_of (a, &la);
    uint8_t *bb = save_of (b, &lb);
    assert_int_equal (la, lb);
    assert_memory_equal (ba, bb, la);
    free (ba);
    free (bb);
}

//  --------------------------------------------------------------------------
//  Config and class

static void
test_config (void **unused)
{
    mw_state_config_t cfg;
    mw_state_config_default (&cfg);
    assert_int_equal (cfg.recent_events, 1000);
    assert_int_equal (cfg.task_history, 500);
    assert_int_equal (cfg.validator_activity, 200);
    assert_int_equal (cfg.max_active_tasks, 10000);
    assert_int_equal (cfg.task_timeout_ms, 300000);
    char err[256] = "";
    assert_int_equal (mw_state_config_check (&cfg, err, sizeof (err)), 0);

    uint32_t *bounds[] = {&cfg.recent_events,    &cfg.task_history,   &cfg.validator_activity,
                          &cfg.max_active_tasks, &cfg.max_validators, &cfg.max_miners};
    for (size_t i = 0; i < 6; i++) {
        uint32_t keep = *bounds[i];
        *bounds[i] = 0;
        err[0] = 0;
        assert_int_equal (mw_state_config_check (&cfg, err, sizeof (err)), -1);
        assert_non_null (strstr (err, "expected 1 to 10000000"));
        assert_null (mw_state_new (&cfg));
        *bounds[i] = 10000001;
        assert_int_equal (mw_state_config_check (&cfg, err, sizeof (err)), -1);
        *bounds[i] = 10000000;
        assert_int_equal (mw_state_config_check (&cfg, err, sizeof (err)), 0);
        *bounds[i] = keep;
    }
    cfg.task_timeout_ms = 999;
    assert_int_equal (mw_state_config_check (&cfg, err, sizeof (err)), -1);
    assert_non_null (strstr (err, "task_timeout_ms"));
    cfg.task_timeout_ms = 1000;
    cfg.timeout_grace_ms = 0;
    assert_int_equal (mw_state_config_check (&cfg, err, sizeof (err)), -1);
    assert_non_null (strstr (err, "timeout_grace_ms"));
    assert_int_equal (mw_state_config_check (NULL, err, sizeof (err)), -1);
    assert_int_equal (mw_state_config_check (NULL, NULL, 0), -1);

    //  NULL config: the defaults. destroy nulls and is idempotent.
    mw_state_t *st = mw_state_new (NULL);
    assert_non_null (st);
    assert_int_equal (mw_state_config (st)->max_active_tasks, 10000);
    assert_int_equal (mw_state_last_id (st), 0);
    assert_int_equal (mw_state_now (st), 0);
    mw_state_destroy (&st);
    assert_null (st);
    mw_state_destroy (&st);

    assert_string_equal (mw_task_status_name (MW_TASK_ACTIVE), "active");
    assert_string_equal (mw_task_status_name (MW_TASK_SUCCEEDED), "succeeded");
    assert_string_equal (mw_task_status_name (MW_TASK_FAILED), "failed");
    assert_string_equal (mw_task_status_name (MW_TASK_STALE), "stale");
    assert_string_equal (mw_task_status_name (MW_TASK_EVICTED), "evicted");
}

//  --------------------------------------------------------------------------
//  Apply: every event type

static void
test_task_lifecycle (void **state)
{
    fx_t *f = (fx_t *) *state;
    uint64_t t0 = f->now;
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_START, "abc12345");
    mw_event_set_str (&ev, MW_K_PROMPT, "Login to example.com");
    mw_event_set_str (&ev, MW_K_URL, "https://example.com");
    mw_event_set_str (&ev, MW_K_VALIDATOR_IP, "45.22.240.79");
    mw_event_set_str (&ev, MW_K_VALIDATOR_HOTKEY, "5HK-alpha");
    ev.timeout_ms = 60000;
    ev.has |= MW_HAS_TIMEOUT_MS;
    fx_ok (f, &ev);
    assert_int_equal (mw_state_active_count (f->st), 1);
    const mw_task_t *t = mw_state_active (f->st, 0);
    assert_non_null (t);
    assert_ptr_equal (t, mw_state_find_task (f->st, "miner-1", "abc12345"));
    assert_null (mw_state_find_task (f->st, "miner-2", "abc12345"));
    assert_null (mw_state_find_task (f->st, "miner-1", "abc"));
    assert_string_equal (t->miner, "miner-1");
    assert_string_equal (t->task_id, "abc12345");
    assert_string_equal (t->prompt, "Login to example.com");
    assert_string_equal (t->url, "https://example.com");
    assert_string_equal (t->validator_ip, "45.22.240.79");
    assert_string_equal (t->validator_hotkey, "5HK-alpha");
    assert_string_equal (t->current_step, "");
    assert_string_equal (t->error, "");
    assert_int_equal (t->status, MW_TASK_ACTIVE);
    assert_false (t->started_late);
    assert_int_equal (t->start_ms, t0);
    assert_int_equal (t->end_ms, 0);
    assert_int_equal (t->timeout_ms, 60000);
    assert_int_equal (t->events, 1);
    assert_int_equal (t->first_id, 1);

    f->now += 1000;
    step_task (f, "abc12345", "planning");
    f->now += 1000;
    step_task (f, "abc12345", "processing");
    t = mw_state_find_task (f->st, "miner-1", "abc12345");
    assert_string_equal (t->current_step, "processing");
    assert_int_equal (t->steps, 2);

    ev = ev_make (f, MW_TYPE_ACTIONS_GENERATED, "abc12345");
    ev.action_count = 12;
    ev.has |= MW_HAS_ACTION_COUNT;
    fx_ok (f, &ev);
    assert_int_equal (mw_state_find_task (f->st, "miner-1", "abc12345")->actions, 12);
    //  The latest count replaces the previous one (see mw_state.c).
    ev = ev_make (f, MW_TYPE_ACTIONS_GENERATED, "abc12345");
    ev.action_count = 8;
    ev.has |= MW_HAS_ACTION_COUNT;
    fx_ok (f, &ev);
    assert_int_equal (mw_state_find_task (f->st, "miner-1", "abc12345")->actions, 8);

    ev = ev_make (f, MW_TYPE_CACHE_HIT, "abc12345");
    mw_event_set_str (&ev, MW_K_CACHE_TYPE, "plan");
    fx_ok (f, &ev);
    ev = ev_make (f, MW_TYPE_CACHE_HIT, "abc12345");
    fx_ok (f, &ev);
    assert_true (mw_state_find_task (f->st, "miner-1", "abc12345")->cache_hit);
    assert_int_equal (stats_of (f).cache_hits, 1);
    assert_true (s_near (stats_of (f).cache_hit_rate, 1.0));

    f->now += 3200;
    ev = ev_make (f, MW_TYPE_TASK_COMPLETE, "abc12345");
    ev.success = true;
    ev.has |= MW_HAS_SUCCESS | MW_HAS_ACTION_COUNT | MW_HAS_RESPONSE_TIME;
    ev.action_count = 12;
    ev.response_time = 5.2;
    fx_ok (f, &ev);
    assert_int_equal (mw_state_active_count (f->st), 0);
    assert_null (mw_state_find_task (f->st, "miner-1", "abc12345"));
    assert_int_equal (mw_state_history_count (f->st), 1);
    t = mw_state_history (f->st, 0);
    assert_int_equal (t->status, MW_TASK_SUCCEEDED);
    assert_int_equal (t->actions, 12);
    assert_true (t->has_response_time);
    assert_true (s_near (t->response_time, 5.2));
    assert_int_equal (t->end_ms, f->now);
    assert_int_equal (t->events, 8);
    assert_int_equal (t->last_id, f->id);
    assert_null (mw_state_history (f->st, 1));

    mw_stats_t s = stats_of (f);
    assert_int_equal (s.total_events, 8);
    assert_int_equal (s.last_id, f->id);
    assert_int_equal (s.events_by_type[MW_TYPE_TASK_START], 1);
    assert_int_equal (s.events_by_type[MW_TYPE_TASK_STEP], 2);
    assert_int_equal (s.events_by_type[MW_TYPE_ACTIONS_GENERATED], 2);
    assert_int_equal (s.events_by_type[MW_TYPE_CACHE_HIT], 2);
    assert_int_equal (s.events_by_type[MW_TYPE_TASK_COMPLETE], 1);
    assert_int_equal (s.tasks_started, 1);
    assert_int_equal (s.tasks_succeeded, 1);
    assert_int_equal (s.active_tasks, 0);
    assert_int_equal (s.errors, 0);
    assert_true (s_near (s.success_rate, 1.0));
    assert_int_equal (s.response.count, 1);
    assert_true (s_near (s.response.sum, 5.2));
    //  5.2 s lies in (5, 10]: p50 interpolates to the middle of it.
    assert_true (s_near (s.p50, 5 + 5 * 0.5));

    assert_int_equal (mw_state_miner_count (f->st), 1);
    const mw_miner_t *m = mw_state_miner (f->st, 0);
    assert_string_equal (m->miner, "miner-1");
    assert_int_equal (m->events, 8);
    assert_int_equal (m->active, 0);
    assert_int_equal (m->completed, 1);
    assert_int_equal (m->succeeded, 1);
    assert_int_equal (m->lost, 0);
    assert_int_equal (m->last_seq, 8);
    assert_int_equal (m->last_seen_ms, f->now);

    assert_int_equal (mw_state_validator_count (f->st), 1);
    const mw_validator_t *v = mw_state_validator (f->st, 0);
    assert_string_equal (v->hotkey, "5HK-alpha");
    assert_string_equal (v->ip, "45.22.240.79");
    assert_int_equal (v->tasks, 1);
    assert_int_equal (v->successes, 1);
    assert_int_equal (v->response.count, 1);
    assert_true (s_near (mw_hist_quantile (&v->response, 0.95), 5 + 5 * 0.95));

    //  Recent events newest first, with broker ids and broker time.
    assert_int_equal (mw_state_recent_count (f->st), 8);
    const mw_event_t *r = mw_state_recent (f->st, 0);
    assert_int_equal (r->kind, MW_TYPE_TASK_COMPLETE);
    assert_true (r->has & MW_HAS_ID);
    assert_int_equal (r->id, f->id);
    assert_true (r->has & MW_HAS_BROKER_TS);
    assert_int_equal (r->broker_ts, f->now);
    assert_int_equal (mw_state_recent (f->st, 7)->kind, MW_TYPE_TASK_START);
    assert_string_equal (mw_state_recent (f->st, 7)->str[MW_K_PROMPT].ptr, "Login to example.com");
    assert_null (mw_state_recent (f->st, 8));

    //  One validator interaction: the task_start.
    assert_int_equal (mw_state_activity_count (f->st), 1);
    const mw_activity_t *a = mw_state_activity (f->st, 0);
    assert_int_equal (a->kind, MW_TYPE_TASK_START);
    assert_int_equal (a->id, 1);
    assert_string_equal (a->task_id, "abc12345");
    assert_string_equal (a->validator_hotkey, "5HK-alpha");
    assert_string_equal (a->miner, "miner-1");
    assert_null (mw_state_activity (f->st, 1));
}

static void
test_complete_computed (void **state)
{
    fx_t *f = (fx_t *) *state;
    start_task (f, "t1", "1.2.3.4", NULL);
    f->now += 2500;
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_COMPLETE, "t1");
    ev.has |= MW_HAS_SUCCESS;
    ev.success = false;
    mw_event_set_str (&ev, MW_K_ERROR, "timeout waiting for selector");
    fx_ok (f, &ev);
    const mw_task_t *t = mw_state_history (f->st, 0);
    assert_int_equal (t->status, MW_TASK_FAILED);
    assert_true (t->has_response_time);
    assert_true (s_near (t->response_time, 2.5));
    assert_string_equal (t->error, "timeout waiting for selector");
    mw_stats_t s = stats_of (f);
    assert_int_equal (s.tasks_failed, 1);
    assert_int_equal (s.errors, 1);
    assert_true (s_near (s.success_rate, 0));
    const mw_validator_t *v = mw_state_validator (f->st, 0);
    assert_string_equal (v->ip, "1.2.3.4");
    assert_string_equal (v->hotkey, "");
    assert_int_equal (v->failures, 1);
    assert_int_equal (mw_state_miner (f->st, 0)->failed, 1);

    //  A hostile response_time cannot poison the sums.
    start_task (f, "t2", NULL, NULL);
    ev = ev_make (f, MW_TYPE_TASK_COMPLETE, "t2");
    ev.has |= MW_HAS_SUCCESS | MW_HAS_RESPONSE_TIME;
    ev.success = true;
    ev.response_time = NAN;
    fx_ok (f, &ev);
    start_task (f, "t3", NULL, NULL);
    ev = ev_make (f, MW_TYPE_TASK_COMPLETE, "t3");
    ev.has |= MW_HAS_SUCCESS | MW_HAS_RESPONSE_TIME;
    ev.success = true;
    ev.response_time = INFINITY;
    fx_ok (f, &ev);
    s = stats_of (f);
    assert_true (isfinite (s.response.sum));
    assert_int_equal (s.response.count, 3);
    assert_int_equal (s.response.counts[MW_HIST_BUCKETS - 1], 1);
    assert_true (s_near (s.p99, 500));
}

static void
test_feedback (void **state)
{
    fx_t *f = (fx_t *) *state;
    start_task (f, "t1", "9.9.9.9", "5HK-v1");
    complete_task (f, "t1", true);
    //  Feedback after the end: to the task's validator, not an orphan.
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_FEEDBACK, "t1");
    ev.score = 0.75;
    ev.has |= MW_HAS_SCORE;
    fx_ok (f, &ev);
    const mw_validator_t *v = mw_state_validator (f->st, 0);
    assert_int_equal (v->feedback_count, 1);
    assert_true (s_near (v->feedback_sum, 0.75));
    assert_int_equal (stats_of (f).orphan_events, 0);
    assert_int_equal (mw_state_activity_count (f->st), 2);
    assert_int_equal (mw_state_activity (f->st, 0)->kind, MW_TYPE_TASK_FEEDBACK);
    assert_string_equal (mw_state_activity (f->st, 0)->validator_hotkey, "5HK-v1");

    //  The event's hotkey wins, for any task, known or not.
    ev = ev_make (f, MW_TYPE_TASK_FEEDBACK, "unknown");
    mw_event_set_str (&ev, MW_K_VALIDATOR_HOTKEY, "5HK-v2");
    ev.score = 0.25;
    ev.has |= MW_HAS_SCORE;
    fx_ok (f, &ev);
    assert_int_equal (mw_state_validator_count (f->st), 2);
    v = mw_state_validator (f->st, 1);
    assert_string_equal (v->hotkey, "5HK-v2");
    assert_int_equal (v->feedback_count, 1);
    assert_true (s_near (v->feedback_sum, 0.25));

    //  Unknown task, no hotkey: nobody to attribute it to; no task made.
    ev = ev_make (f, MW_TYPE_TASK_FEEDBACK, "nobody");
    ev.score = 1;
    ev.has |= MW_HAS_SCORE;
    fx_ok (f, &ev);
    assert_int_equal (mw_state_validator_count (f->st), 2);
    assert_int_equal (mw_state_active_count (f->st), 0);
    assert_int_equal (stats_of (f).tasks_started, 1);

    //  A NaN score counts no feedback; an active task's feedback touches it.
    start_task (f, "t2", NULL, "5HK-v1");
    ev = ev_make (f, MW_TYPE_TASK_FEEDBACK, "t2");
    ev.score = NAN;
    ev.has |= MW_HAS_SCORE;
    fx_ok (f, &ev);
    v = mw_state_validator (f->st, 0);
    assert_int_equal (v->feedback_count, 1);
    assert_int_equal (mw_state_find_task (f->st, "miner-1", "t2")->events, 2);
    assert_int_equal (stats_of (f).events_by_type[MW_TYPE_TASK_FEEDBACK], 4);
}

static void
test_validators (void **state)
{
    fx_t *f = (fx_t *) *state;
    //  Known by IP first, then a task_start links a hotkey to that IP: the
    //  record is adopted, not duplicated.
    mw_event_t ev = ev_make (f, MW_TYPE_VALIDATOR_CONNECTION, NULL);
    mw_event_set_str (&ev, MW_K_VALIDATOR_IP, "84.247.180.192");
    mw_event_set_str (&ev, MW_K_ENDPOINT, "/solve");
    fx_ok (f, &ev);
    assert_int_equal (mw_state_validator_count (f->st), 1);
    assert_int_equal (mw_state_validator (f->st, 0)->connections, 1);
    assert_string_equal (mw_state_validator (f->st, 0)->hotkey, "");

    start_task (f, "t1", "84.247.180.192", "5HK-beta");
    assert_int_equal (mw_state_validator_count (f->st), 1);
    const mw_validator_t *v = mw_state_validator (f->st, 0);
    assert_string_equal (v->hotkey, "5HK-beta");
    assert_string_equal (v->ip, "84.247.180.192");
    assert_int_equal (v->tasks, 1);

    //  An IP-only event now resolves to the hotkey's record.
    ev = ev_make (f, MW_TYPE_VALIDATOR_CONNECTION, NULL);
    mw_event_set_str (&ev, MW_K_VALIDATOR_IP, "84.247.180.192");
    fx_ok (f, &ev);
    assert_int_equal (mw_state_validator_count (f->st), 1);
    assert_int_equal (mw_state_validator (f->st, 0)->connections, 2);

    //  The same IP seen with another hotkey moves the link to it.
    start_task (f, "t2", "84.247.180.192", "5HK-gamma");
    assert_int_equal (mw_state_validator_count (f->st), 2);
    ev = ev_make (f, MW_TYPE_VALIDATOR_CONNECTION, NULL);
    mw_event_set_str (&ev, MW_K_VALIDATOR_IP, "84.247.180.192");
    f->now += 10;
    fx_ok (f, &ev);
    v = mw_state_validator (f->st, 1);
    assert_string_equal (v->hotkey, "5HK-gamma");
    assert_int_equal (v->connections, 1);
    assert_int_equal (v->last_seen_ms, f->now);

    //  Hotkey only.
    ev = ev_make (f, MW_TYPE_VALIDATOR_CONNECTION, NULL);
    mw_event_set_str (&ev, MW_K_VALIDATOR_HOTKEY, "5HK-beta");
    fx_ok (f, &ev);
    assert_int_equal (mw_state_validator (f->st, 0)->connections, 3);
    assert_int_equal (mw_state_activity_count (f->st), 6);
    assert_int_equal (stats_of (f).events_by_type[MW_TYPE_VALIDATOR_CONNECTION], 4);
}

static void
test_error_and_custom (void **state)
{
    fx_t *f = (fx_t *) *state;
    mw_event_t ev = ev_make (f, MW_TYPE_ERROR, NULL);
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "browser crashed");
    fx_ok (f, &ev);
    assert_int_equal (stats_of (f).errors, 1);

    start_task (f, "t1", NULL, NULL);
    ev = ev_make (f, MW_TYPE_ERROR, "t1");
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "selector not found");
    fx_ok (f, &ev);
    assert_string_equal (mw_state_find_task (f->st, "miner-1", "t1")->error, "selector not found");
    complete_task (f, "t1", true);
    //  An error after the end is an orphan of the task (and still an error).
    ev = ev_make (f, MW_TYPE_ERROR, "t1");
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "late");
    fx_ok (f, &ev);
    assert_int_equal (stats_of (f).orphan_events, 1);
    assert_int_equal (stats_of (f).errors, 3);
    //  An error of an unknown task creates nothing.
    ev = ev_make (f, MW_TYPE_ERROR, "ghost");
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "?");
    fx_ok (f, &ev);
    assert_int_equal (mw_state_active_count (f->st), 0);

    //  A custom type with custom keys: counted, carried in the ring.
    mw_kv_t kv[] = {{.key = "gpu", .kind = MW_KV_STR, .val.s = {"A100", (size_t) -1}},
                    {.key = "temp", .kind = MW_KV_DOUBLE, .val.d = 71.5}};
    mw_event_init_named (&ev, "gpu_report");
    mw_event_set_str (&ev, MW_K_MINER, f->miner);
    ev.sid = f->sid;
    ev.seq = ++f->seq;
    ev.ts = f->now * 1000;
    ev.kv = kv;
    ev.kv_count = 2;
    fx_ok (f, &ev);
    assert_int_equal (stats_of (f).events_by_type[MW_TYPE_CUSTOM], 1);
    const mw_event_t *r = mw_state_recent (f->st, 0);
    assert_string_equal (r->type, "gpu_report");
    assert_int_equal (r->extra_count, 2);
    assert_int_equal (r->kv_count, 0);
    assert_int_equal (r->id, f->id);
}

static void
test_invalid_events (void **state)
{
    fx_t *f = (fx_t *) *state;
    start_task (f, "t1", NULL, NULL);
    uint64_t last = mw_state_last_id (f->st);

    //  Id not increasing, or missing: ignored.
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_STEP, "t1");
    mw_event_set_str (&ev, MW_K_STEP, "x");
    ev.id = last;
    ev.has |= MW_HAS_ID;
    assert_int_equal (mw_state_apply (f->st, &ev, f->now), -1);
    ev.has &= ~MW_HAS_ID;
    ev.id = last + 5;
    assert_int_equal (mw_state_apply (f->st, &ev, f->now), -1);
    assert_int_equal (mw_state_tick (f->st, f->now, last), -1);

    //  An event the codec would refuse (a required key missing): ignored,
    //  nothing changes.
    ev = ev_make (f, MW_TYPE_TASK_STEP, "t1");
    ev.id = last + 1;
    ev.has |= MW_HAS_ID;
    assert_int_equal (mw_state_apply (f->st, &ev, f->now), -1);
    mw_event_set_str (&ev, MW_K_STEP, "x");
    mw_event_set_str (&ev, MW_K_MINER, NULL);
    assert_int_equal (mw_state_apply (f->st, &ev, f->now), -1);
    assert_int_equal (mw_state_last_id (f->st), last);
    assert_int_equal (stats_of (f).total_events, 1);
    assert_int_equal (mw_state_find_task (f->st, "miner-1", "t1")->steps, 0);

    //  A kind that is not its type name: the fold reads the event as the
    //  codec does (as a mirror will decode it), here a custom type.
    mw_event_set_str (&ev, MW_K_MINER, f->miner);
    strcpy (ev.type, "gpu_report");
    assert_int_equal (mw_state_apply (f->st, &ev, f->now), 0);
    assert_int_equal (stats_of (f).events_by_type[MW_TYPE_CUSTOM], 1);
    assert_int_equal (mw_state_find_task (f->st, "miner-1", "t1")->steps, 0);
    assert_int_equal (mw_state_recent (f->st, 0)->kind, MW_TYPE_CUSTOM);
    last++;

    //  Strings over their limits are cut (UTF-8 safe) in the task and in
    //  the ring's copy.
    char big[6000];
    memset (big, 'p', sizeof (big) - 1);
    big[sizeof (big) - 1] = 0;
    big[MW_MAX_STR - 1] = (char) 0xc3; //  a 2-byte sequence across the cut
    big[MW_MAX_STR] = (char) 0xa9;
    ev = ev_make (f, MW_TYPE_TASK_START, "t2");
    mw_event_set_str (&ev, MW_K_PROMPT, big);
    ev.id = last + 1;
    ev.has |= MW_HAS_ID;
    assert_int_equal (mw_state_apply (f->st, &ev, f->now), 0);
    assert_int_equal (strlen (mw_state_find_task (f->st, "miner-1", "t2")->prompt), MW_MAX_STR - 1);
    const mw_event_t *r = mw_state_recent (f->st, 0);
    assert_int_equal (r->str[MW_K_PROMPT].len, MW_MAX_STR - 1);
    assert_true (r->truncated >= 1);
}

static void
test_out_of_order (void **state)
{
    fx_t *f = (fx_t *) *state;
    uint64_t t0 = f->now;
    //  Step before start: the task is created late.
    step_task (f, "t1", "processing");
    const mw_task_t *t = mw_state_find_task (f->st, "miner-1", "t1");
    assert_non_null (t);
    assert_true (t->started_late);
    assert_int_equal (t->steps, 1);
    assert_int_equal (stats_of (f).started_late, 1);
    assert_int_equal (stats_of (f).tasks_started, 1);
    //  Its start arrives: fields filled, not a duplicate, start time set.
    f->now += 100;
    start_task (f, "t1", "1.1.1.1", NULL);
    t = mw_state_find_task (f->st, "miner-1", "t1");
    assert_string_equal (t->prompt, "Login to example.com");
    assert_int_equal (t->start_ms, t0 + 100);
    assert_true (t->started_late);
    assert_int_equal (stats_of (f).duplicate_starts, 0);
    assert_int_equal (stats_of (f).tasks_started, 1);
    assert_int_equal (mw_state_validator (f->st, 0)->tasks, 1);
    //  A second start is a duplicate: counted, fields refreshed.
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_START, "t1");
    mw_event_set_str (&ev, MW_K_PROMPT, "Search for jobs");
    fx_ok (f, &ev);
    t = mw_state_find_task (f->st, "miner-1", "t1");
    assert_string_equal (t->prompt, "Search for jobs");
    assert_string_equal (t->url, "https://example.com/login");
    assert_int_equal (t->start_ms, t0 + 100);
    assert_int_equal (stats_of (f).duplicate_starts, 1);
    assert_int_equal (mw_state_validator (f->st, 0)->tasks, 1);
    f->now += 1000;
    complete_task (f, "t1", true);
    assert_true (s_near (mw_state_history (f->st, 0)->response_time, 1.0));

    //  Duplicate complete, late step: orphans; the history stays as it was.
    complete_task (f, "t1", false);
    step_task (f, "t1", "late");
    assert_int_equal (stats_of (f).orphan_events, 2);
    assert_int_equal (mw_state_history_count (f->st), 1);
    assert_int_equal (mw_state_history (f->st, 0)->status, MW_TASK_SUCCEEDED);
    assert_int_equal (mw_state_active_count (f->st), 0);
    assert_int_equal (stats_of (f).tasks_failed, 0);

    //  Complete without start: a history entry, started late, nothing stuck.
    ev = ev_make (f, MW_TYPE_TASK_COMPLETE, "t9");
    ev.success = true;
    ev.has |= MW_HAS_SUCCESS | MW_HAS_ACTION_COUNT;
    ev.action_count = 3;
    fx_ok (f, &ev);
    assert_int_equal (mw_state_active_count (f->st), 0);
    assert_int_equal (mw_state_history_count (f->st), 2);
    t = mw_state_history (f->st, 0);
    assert_string_equal (t->task_id, "t9");
    assert_true (t->started_late);
    assert_false (t->has_response_time);
    assert_int_equal (t->actions, 3);
    assert_int_equal (t->status, MW_TASK_SUCCEEDED);
    mw_stats_t s = stats_of (f);
    assert_int_equal (s.started_late, 2);
    assert_int_equal (s.tasks_succeeded, 2);
    assert_int_equal (s.response.count, 1);
    assert_int_equal (mw_state_miner (f->st, 0)->completed, 2);
    complete_task (f, "t9", true);
    assert_int_equal (stats_of (f).orphan_events, 3);

    //  A task id reused after its end starts a new task.
    start_task (f, "t9", NULL, NULL);
    assert_int_equal (mw_state_active_count (f->st), 1);
    complete_task (f, "t9", true);
    assert_int_equal (mw_state_history_count (f->st), 3);
    complete_task (f, "t9", true);
    assert_int_equal (stats_of (f).orphan_events, 4);
    //  A cache hit or actions for an unknown task create it late.
    ev = ev_make (f, MW_TYPE_CACHE_HIT, "t10");
    fx_ok (f, &ev);
    ev = ev_make (f, MW_TYPE_ACTIONS_GENERATED, "t11");
    ev.action_count = 4;
    ev.has |= MW_HAS_ACTION_COUNT;
    fx_ok (f, &ev);
    assert_int_equal (mw_state_active_count (f->st), 2);
    assert_true (mw_state_find_task (f->st, "miner-1", "t10")->cache_hit);
    assert_int_equal (mw_state_find_task (f->st, "miner-1", "t11")->actions, 4);
    assert_int_equal (stats_of (f).started_late, 4);
}

static void
test_expiry (void **state)
{
    fx_t *f = (fx_t *) *state;
    uint64_t t0 = f->now;
    start_task (f, "plain", NULL, NULL); //  no timeout_ms: 300 s
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_START, "own");
    ev.timeout_ms = 10000; //  own timeout: 10 s + 30 s grace
    ev.has |= MW_HAS_TIMEOUT_MS;
    fx_ok (f, &ev);
    ev = ev_make (f, MW_TYPE_TASK_START, "alive");
    ev.timeout_ms = 10000;
    ev.has |= MW_HAS_TIMEOUT_MS;
    fx_ok (f, &ev);

    f->now = t0 + 30000;
    step_task (f, "alive", "still here"); //  its silence restarts
    f->now = t0 + 40000;
    assert_int_equal (fx_tick (f), 0); //  silent exactly 40 s: not past it
    f->now = t0 + 40001;
    assert_int_equal (fx_tick (f), 1);
    const mw_task_t *t = mw_state_history (f->st, 0);
    assert_string_equal (t->task_id, "own");
    assert_int_equal (t->status, MW_TASK_STALE);
    assert_int_equal (t->end_ms, t0);
    f->now = t0 + 70001;
    assert_int_equal (fx_tick (f), 1);
    assert_string_equal (mw_state_history (f->st, 0)->task_id, "alive");
    f->now = t0 + 300000;
    assert_int_equal (fx_tick (f), 0);
    f->now = t0 + 300001;
    assert_int_equal (fx_tick (f), 1);
    assert_string_equal (mw_state_history (f->st, 0)->task_id, "plain");
    mw_stats_t s = stats_of (f);
    assert_int_equal (s.tasks_stale, 3);
    assert_int_equal (s.active_tasks, 0);
    assert_true (s_near (s.success_rate, 0));
    assert_int_equal (mw_state_miner (f->st, 0)->completed, 3);
    assert_int_equal (mw_state_miner (f->st, 0)->active, 0);
    //  Events of a stale task are orphans.
    step_task (f, "plain", "too late");
    assert_int_equal (stats_of (f).orphan_events, 1);

    //  Many expire in one tick: to the history by deadline, then start.
    uint64_t t1 = f->now;
    start_task (f, "a", NULL, NULL);
    start_task (f, "b", NULL, NULL);
    f->now += 5;
    start_task (f, "c", NULL, NULL);
    f->now = t1 + 1;
    step_task (f, "a", "moved"); //  a's deadline is now after b's
    f->now = t1 + 400000;
    assert_int_equal (fx_tick (f), 3);
    assert_string_equal (mw_state_history (f->st, 2)->task_id, "b");
    assert_string_equal (mw_state_history (f->st, 1)->task_id, "a");
    assert_string_equal (mw_state_history (f->st, 0)->task_id, "c");

    //  A broker clock that steps back: the deadline moves earlier at once.
    f->now = t1 + 1000000;
    start_task (f, "d", NULL, NULL);
    f->now = t1 + 500000;
    step_task (f, "d", "clock went back");
    f->now = t1 + 800001;
    assert_int_equal (fx_tick (f), 1);
    assert_string_equal (mw_state_history (f->st, 0)->task_id, "d");

    //  A duplicate start that shortens the timeout takes effect.
    start_task (f, "e", NULL, NULL);
    ev = ev_make (f, MW_TYPE_TASK_START, "e");
    ev.timeout_ms = 1000;
    ev.has |= MW_HAS_TIMEOUT_MS;
    fx_ok (f, &ev);
    f->now += 31001;
    assert_int_equal (fx_tick (f), 1);
}

static void
test_eviction (void **unused)
{
    mw_state_config_t cfg;
    mw_state_config_default (&cfg);
    cfg.max_active_tasks = 3;
    cfg.task_history = 2;
    fx_t *f = fx_new (&cfg);
    start_task (f, "t1", NULL, NULL);
    start_task (f, "t2", NULL, NULL);
    start_task (f, "t3", NULL, NULL);
    step_task (f, "t1", "recently active, still the oldest start");
    start_task (f, "t4", NULL, NULL);
    assert_int_equal (mw_state_active_count (f->st), 3);
    assert_string_equal (mw_state_active (f->st, 0)->task_id, "t2");
    assert_string_equal (mw_state_active (f->st, 2)->task_id, "t4");
    assert_null (mw_state_active (f->st, 3));
    assert_int_equal (mw_state_history (f->st, 0)->status, MW_TASK_EVICTED);
    assert_string_equal (mw_state_history (f->st, 0)->task_id, "t1");
    mw_stats_t s = stats_of (f);
    assert_int_equal (s.tasks_evicted, 1);
    assert_int_equal (mw_state_miner (f->st, 0)->active, 3);
    start_task (f, "t5", NULL, NULL);
    start_task (f, "t6", NULL, NULL);
    assert_int_equal (mw_state_history_count (f->st), 2);
    assert_string_equal (mw_state_history (f->st, 1)->task_id, "t2");
    assert_int_equal (stats_of (f).tasks_evicted, 3);
    //  An evicted task's late event is an orphan while it is in the history
    //  (t3 is); once it falls off the history (t1), it starts a new task.
    step_task (f, "t3", "late");
    assert_int_equal (stats_of (f).orphan_events, 1);
    step_task (f, "t1", "back");
    assert_true (mw_state_find_task (f->st, "miner-1", "t1")->started_late);
    fx_destroy (&f);
}

static void
test_sequence (void **state)
{
    fx_t *f = (fx_t *) *state;
    mw_event_t ev;
    for (int i = 0; i < 3; i++) {
        ev = ev_make (f, MW_TYPE_ERROR, NULL);
        mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "e");
        fx_ok (f, &ev);
    }
    const mw_miner_t *m = mw_state_miner (f->st, 0);
    assert_int_equal (m->lost, 0);
    assert_int_equal (m->last_seq, 3);
    f->seq = 5; //  seq 4 and 5 lost
    ev = ev_make (f, MW_TYPE_ERROR, NULL);
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "e");
    fx_ok (f, &ev);
    m = mw_state_miner (f->st, 0);
    assert_int_equal (m->lost, 2);
    assert_int_equal (m->last_seq, 6);
    f->seq = 4; //  5 again: a duplicate
    ev = ev_make (f, MW_TYPE_ERROR, NULL);
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "e");
    fx_ok (f, &ev);
    f->seq = 5; //  6 again
    ev = ev_make (f, MW_TYPE_ERROR, NULL);
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "e");
    fx_ok (f, &ev);
    m = mw_state_miner (f->st, 0);
    assert_int_equal (m->duplicates, 2);
    assert_int_equal (m->last_seq, 6);
    assert_int_equal (m->events, 6);
    //  A new session: a restart, seq starts over.
    f->sid = 777;
    f->seq = 0;
    ev = ev_make (f, MW_TYPE_ERROR, NULL);
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "e");
    fx_ok (f, &ev);
    m = mw_state_miner (f->st, 0);
    assert_int_equal (m->restarts, 1);
    assert_int_equal (m->sid, 777);
    assert_int_equal (m->last_seq, 1);
    assert_int_equal (m->lost, 2);
    //  Another whose first two events never arrived.
    f->sid = 778;
    f->seq = 2;
    ev = ev_make (f, MW_TYPE_ERROR, NULL);
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "e");
    fx_ok (f, &ev);
    m = mw_state_miner (f->st, 0);
    assert_int_equal (m->restarts, 2);
    assert_int_equal (m->lost, 4);
    //  A miner first seen mid-session: the events before are counted lost.
    f->miner = "miner-2";
    f->seq = 9;
    ev = ev_make (f, MW_TYPE_ERROR, NULL);
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "e");
    fx_ok (f, &ev);
    m = mw_state_miner (f->st, 1);
    assert_string_equal (m->miner, "miner-2");
    assert_int_equal (m->lost, 9);
    assert_int_equal (m->restarts, 0);
    mw_stats_t s = stats_of (f);
    assert_int_equal (s.lost_events, 13);
    assert_int_equal (s.duplicate_events, 2);
    assert_int_equal (s.publisher_restarts, 2);
}

static void
test_caps (void **unused)
{
    mw_state_config_t cfg;
    mw_state_config_default (&cfg);
    cfg.max_validators = 2;
    cfg.max_miners = 2;
    cfg.validator_activity = 3;
    cfg.recent_events = 4;
    fx_t *f = fx_new (&cfg);
    start_task (f, "t1", NULL, "hk-1");
    start_task (f, "t2", NULL, "hk-2");
    start_task (f, "t3", NULL, "hk-1"); //  hk-1 is now the most recent
    start_task (f, "t4", NULL, "hk-3"); //  evicts hk-2
    assert_int_equal (mw_state_validator_count (f->st), 2);
    assert_string_equal (mw_state_validator (f->st, 0)->hotkey, "hk-1");
    assert_string_equal (mw_state_validator (f->st, 1)->hotkey, "hk-3");
    assert_int_equal (stats_of (f).validators_evicted, 1);
    assert_int_equal (mw_state_activity_count (f->st), 3);
    assert_string_equal (mw_state_activity (f->st, 2)->task_id, "t2");
    assert_int_equal (mw_state_recent_count (f->st), 4);
    //  A task whose validator was evicted completes without attribution.
    complete_task (f, "t2", true);
    assert_int_equal (mw_state_validator (f->st, 0)->successes, 0);

    f->miner = "miner-2";
    start_task (f, "m2", NULL, NULL);
    f->miner = "miner-1";
    step_task (f, "t1", "touch miner-1");
    f->miner = "miner-3";
    start_task (f, "m3", NULL, NULL); //  evicts miner-2 (least recently seen)
    assert_int_equal (mw_state_miner_count (f->st), 2);
    assert_string_equal (mw_state_miner (f->st, 0)->miner, "miner-1");
    assert_string_equal (mw_state_miner (f->st, 1)->miner, "miner-3");
    assert_int_equal (stats_of (f).miners_evicted, 1);
    //  miner-2 comes back as a new record; its old task's end is not
    //  counted by it (it never counted the task as active).
    f->miner = "miner-2";
    complete_task (f, "m2", true);
    assert_int_equal (mw_state_miner_count (f->st), 2);
    const mw_miner_t *m = mw_state_miner (f->st, 1);
    assert_string_equal (m->miner, "miner-2");
    assert_int_equal (m->active, 0);
    assert_int_equal (m->completed, 0);
    assert_int_equal (stats_of (f).tasks_succeeded, 2);
    fx_destroy (&f);
}

static void
test_rates (void **state)
{
    fx_t *f = (fx_t *) *state;
    f->now = 1700000000000ULL; //  a bucket boundary (10 s)
    for (int i = 0; i < 6; i++) {
        char id[16];
        snprintf (id, sizeof (id), "r%d", i);
        start_task (f, id, NULL, NULL);
        complete_task (f, id, i % 2 == 0);
    }
    mw_stats_t s = stats_of (f);
    assert_true (s_near (s.tasks_per_min_1, 6));
    assert_true (s_near (s.tasks_per_min_5, 6.0 / 5));
    assert_true (s_near (s.tasks_per_min_15, 6.0 / 15));
    //  30 s later: still inside every window.
    f->now += 30000;
    assert_true (fx_tick (f) >= 0);
    s = stats_of (f);
    assert_true (s_near (s.tasks_per_min_1, 6));
    //  55 s after: the window (-5 s, 55 s] still holds their bucket.
    f->now = 1700000000000ULL + 55000;
    assert_true (fx_tick (f) >= 0);
    assert_true (s_near (stats_of (f).tasks_per_min_1, 6));
    //  65 s after: the window (5 s, 65 s] covers half of their bucket
    //  [0, 10 s), so half of them count (spread evenly is the assumption).
    f->now = 1700000000000ULL + 65000;
    assert_true (fx_tick (f) >= 0);
    assert_true (s_near (stats_of (f).tasks_per_min_1, 3));
    //  A broker clock stepping back: the window is as of the state's now,
    //  (1 s, 61 s], which covers 90% of their bucket.
    f->now = 1700000000000ULL + 61000;
    assert_true (fx_tick (f) >= 0);
    assert_true (s_near (stats_of (f).tasks_per_min_1, 5.4));
    f->now = 1700000000000ULL + 70000;
    assert_true (fx_tick (f) >= 0);
    s = stats_of (f);
    assert_true (s_near (s.tasks_per_min_1, 0));
    assert_true (s_near (s.tasks_per_min_5, 6.0 / 5));
    f->now = 1700000000000ULL + 16 * 60000;
    assert_true (fx_tick (f) >= 0);
    s = stats_of (f);
    assert_true (s_near (s.tasks_per_min_15, 0));
    //  Stale tasks are not throughput.
    start_task (f, "s", NULL, NULL);
    f->now += 400000;
    assert_int_equal (fx_tick (f), 1);
    assert_true (s_near (stats_of (f).tasks_per_min_1, 0));
    //  A gap of hours clears the ring.
    start_task (f, "x", NULL, NULL);
    complete_task (f, "x", true);
    f->now += 3600000;
    assert_true (fx_tick (f) >= 0);
    s = stats_of (f);
    assert_true (s_near (s.tasks_per_min_15, 0));
    //  Cache hit rate: hits per task started.
    mw_event_t ev = ev_make (f, MW_TYPE_CACHE_HIT, "x2");
    fx_ok (f, &ev);
    s = stats_of (f);
    assert_true (s_near (s.cache_hit_rate, 1.0 / (double) s.tasks_started));
}

static void
test_histogram (void **unused)
{
    //  1-2-5 from 1 ms to 500 s.
    const double want[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
                           1,     2,     5,     10,   20,   50,   100, 200, 500};
    for (size_t i = 0; i < MW_HIST_BUCKETS - 1; i++)
        assert_true (s_near (mw_hist_bounds[i], want[i]));
    mw_hist_t h;
    memset (&h, 0, sizeof (h));
    assert_true (s_near (mw_hist_quantile (&h, 0.5), 0));
    //  100 in (0.2, 0.5]: linear inside the bucket.
    h.counts[8] = 100;
    h.count = 100;
    assert_true (s_near (mw_hist_quantile (&h, 0.5), 0.35));
    assert_true (s_near (mw_hist_quantile (&h, 0.0), 0.2));
    assert_true (s_near (mw_hist_quantile (&h, 1.0), 0.5));
    assert_true (s_near (mw_hist_quantile (&h, 2.0), 0.5));
    assert_true (s_near (mw_hist_quantile (&h, -1), 0.2));
    //  Two buckets: the quantile lands in the second.
    h.counts[0] = 100; //  (0, 0.001]
    h.count = 200;
    assert_true (s_near (mw_hist_quantile (&h, 0.25), 0.0005));
    assert_true (s_near (mw_hist_quantile (&h, 0.75), 0.35));
    h.counts[MW_HIST_BUCKETS - 1] = 800;
    h.count = 1000;
    assert_true (s_near (mw_hist_quantile (&h, 0.99), 500));
}

static void
test_readers (void **state)
{
    fx_t *f = (fx_t *) *state;
    char id[32];
    for (int i = 0; i < 50; i++) {
        snprintf (id, sizeof (id), "task-%02d", i);
        start_task (f, id, NULL, NULL);
    }
    for (int i = 0; i < 50; i += 3) {
        snprintf (id, sizeof (id), "task-%02d", i);
        complete_task (f, id, true);
    }
    size_t n = mw_state_active_count (f->st);
    assert_int_equal (n, 33);
    //  Forward, backward and random walks agree (the cursor is only a
    //  shortcut).
    const mw_task_t *fwd[64];
    for (size_t i = 0; i < n; i++)
        fwd[i] = mw_state_active (f->st, i);
    for (size_t i = n; i-- > 0;)
        assert_ptr_equal (mw_state_active (f->st, i), fwd[i]);
    uint64_t r = 12345;
    for (int k = 0; k < 500; k++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        size_t i = (size_t) (r >> 33) % n;
        assert_ptr_equal (mw_state_active (f->st, i), fwd[i]);
    }
    for (size_t i = 1; i < n; i++)
        assert_true (strcmp (fwd[i - 1]->task_id, fwd[i]->task_id) < 0);
    assert_null (mw_state_active (f->st, n));
    assert_null (mw_state_validator (f->st, 0));
    assert_null (mw_state_miner (f->st, 1));
    assert_null (mw_state_history (f->st, 17));
    assert_null (mw_state_find_task (f->st, NULL, "x"));
    mw_state_memory_t mem;
    mw_state_memory (f->st, &mem);
    assert_int_equal (mem.task_table_used, n);
    assert_int_equal (mem.task_table_slots, 32768);
    assert_true (mem.bytes > 0);
    assert_int_equal (mem.alloc_failures, 0);
}

//  --------------------------------------------------------------------------
//  A generated stream: many miners and validators, tasks interleaved, gaps,
//  restarts, duplicates, custom events, ticks.

typedef struct {
    uint64_t rng;
    uint64_t id;
    uint64_t now;
    uint32_t miners;
    uint32_t validators;
    bool never_complete;
    uint64_t sid[4096];
    uint64_t seq[4096];
    struct {
        uint32_t miner;
        uint64_t n;
        uint32_t steps;
        uint32_t validator;
    } open[128];
    size_t nopen;
    uint64_t tasks;
    char s[6][96];
    mw_kv_t kv[1];
} gen_t;

static uint64_t
gen_rand (gen_t *g)
{
    g->rng ^= g->rng << 13;
    g->rng ^= g->rng >> 7;
    g->rng ^= g->rng << 17;
    return g->rng;
}

static void
gen_init (gen_t *g, uint64_t seed, uint32_t miners, uint32_t validators)
{
    memset (g, 0, sizeof (*g));
    g->rng = seed;
    g->now = 1700000000000ULL;
    g->miners = miners;
    g->validators = validators;
    for (uint32_t i = 0; i < miners && i < 4096; i++)
        g->sid[i] = 1000 + i;
}

//  Build the next event into ev (strings in g); return false for a tick.
static bool
gen_event (gen_t *g, mw_event_t *ev)
{
    g->now += 1 + gen_rand (g) % 40;
    uint64_t r = gen_rand (g) % 1000;
    if (r < 5)
        return false;
    if (r < 8 && !g->never_complete) {
        //  An event of a task never started here: a step, or a complete.
        mw_event_init (ev, r < 7 ? MW_TYPE_TASK_STEP : MW_TYPE_TASK_COMPLETE);
        uint32_t m = (uint32_t) (gen_rand (g) % g->miners);
        snprintf (g->s[0], sizeof (g->s[0]), "miner-%u", m);
        snprintf (g->s[1], sizeof (g->s[1]), "late-%llu", (unsigned long long) g->tasks++);
        mw_event_set_str (ev, MW_K_MINER, g->s[0]);
        mw_event_set_str (ev, MW_K_TASK_ID, g->s[1]);
        mw_event_set_str (ev, MW_K_STEP, "picked up mid-way");
        ev->success = true;
        ev->has |= MW_HAS_SUCCESS;
        ev->ts = g->now * 1000;
        ev->sid = g->sid[m % 4096];
        ev->seq = ++g->seq[m % 4096];
        ev->id = ++g->id;
        ev->has |= MW_HAS_ID;
        return true;
    }
    uint32_t miner;
    mw_type_t kind;
    size_t slot = 0;
    bool start = g->nopen == 0 || (g->nopen < 100 && r < 150) || g->never_complete;
    if (start) {
        kind = MW_TYPE_TASK_START;
        miner = (uint32_t) (gen_rand (g) % g->miners);
        //  Now and then a task is abandoned (its slot reused): it goes
        //  stale later.
        if (g->never_complete)
            slot = 0;
        else if (g->nopen == 128 || (g->nopen && gen_rand (g) % 100 == 0))
            slot = gen_rand (g) % g->nopen;
        else
            slot = g->nopen++;
        g->open[slot].miner = miner;
        g->open[slot].n = g->tasks++;
        g->open[slot].steps = 0;
        g->open[slot].validator = (uint32_t) (gen_rand (g) % g->validators);
    }
    else {
        slot = gen_rand (g) % g->nopen;
        miner = g->open[slot].miner;
        if (r < 170)
            kind = MW_TYPE_VALIDATOR_CONNECTION;
        else if (r < 180)
            kind = MW_TYPE_ERROR;
        else if (r < 190)
            kind = MW_TYPE_CUSTOM;
        else if (r < 220)
            kind = MW_TYPE_CACHE_HIT;
        else if (r < 300)
            kind = MW_TYPE_ACTIONS_GENERATED;
        else if (r < 330)
            kind = MW_TYPE_TASK_FEEDBACK;
        else if (r < 850 && g->open[slot].steps < 6)
            kind = MW_TYPE_TASK_STEP;
        else
            kind = MW_TYPE_TASK_COMPLETE;
    }
    uint32_t mi = miner % 4096;
    if (gen_rand (g) % 5000 == 0) {
        g->sid[mi] = gen_rand (g);
        g->seq[mi] = 0;
    }
    uint64_t seq = ++g->seq[mi];
    if (gen_rand (g) % 2000 == 0)
        seq = g->seq[mi] += 3;
    else if (gen_rand (g) % 3000 == 0 && seq > 2)
        seq -= 2;

    if (kind == MW_TYPE_CUSTOM) {
        mw_event_init_named (ev, "gpu_report");
        g->kv[0] = (mw_kv_t){.key = "temp", .kind = MW_KV_UINT, .val.u = gen_rand (g) % 100};
        ev->kv = g->kv;
        ev->kv_count = 1;
    }
    else
        mw_event_init (ev, kind);
    snprintf (g->s[0], sizeof (g->s[0]), "miner-%u", miner);
    snprintf (g->s[1], sizeof (g->s[1]), "task-%llu-%08llx", (unsigned long long) g->open[slot].n,
              (unsigned long long) (g->open[slot].n * 2654435761u));
    uint32_t v = g->open[slot].validator;
    snprintf (g->s[2], sizeof (g->s[2]), "10.%u.%u.%u", v >> 16 & 255, v >> 8 & 255, v & 255);
    snprintf (g->s[3], sizeof (g->s[3]), "5Hk%08x", v * 2654435761u);
    mw_event_set_str (ev, MW_K_MINER, g->s[0]);
    ev->ts = g->now * 1000 + gen_rand (g) % 1000;
    ev->sid = g->sid[mi];
    ev->seq = seq;
    switch (kind) {
        case MW_TYPE_TASK_START:
            mw_event_set_str (ev, MW_K_TASK_ID, g->s[1]);
            mw_event_set_str (ev, MW_K_PROMPT, "Login to example.com and open the settings page");
            mw_event_set_str (ev, MW_K_URL, "https://example.com/login");
            if (v % 3)
                mw_event_set_str (ev, MW_K_VALIDATOR_IP, g->s[2]);
            if (v % 3 != 1)
                mw_event_set_str (ev, MW_K_VALIDATOR_HOTKEY, g->s[3]);
            if (v % 2) {
                ev->timeout_ms = 20000 + gen_rand (g) % 40000;
                ev->has |= MW_HAS_TIMEOUT_MS;
            }
            break;
        case MW_TYPE_TASK_STEP:
            mw_event_set_str (ev, MW_K_TASK_ID, g->s[1]);
            snprintf (g->s[4], sizeof (g->s[4]), "step %u", g->open[slot].steps++);
            mw_event_set_str (ev, MW_K_STEP, g->s[4]);
            break;
        case MW_TYPE_ACTIONS_GENERATED:
            mw_event_set_str (ev, MW_K_TASK_ID, g->s[1]);
            ev->action_count = gen_rand (g) % 30;
            ev->has |= MW_HAS_ACTION_COUNT;
            break;
        case MW_TYPE_CACHE_HIT:
            mw_event_set_str (ev, MW_K_TASK_ID, g->s[1]);
            break;
        case MW_TYPE_TASK_FEEDBACK:
            mw_event_set_str (ev, MW_K_TASK_ID, g->s[1]);
            ev->score = (double) (gen_rand (g) % 1000) / 1000.0;
            ev->has |= MW_HAS_SCORE;
            break;
        case MW_TYPE_VALIDATOR_CONNECTION:
            mw_event_set_str (ev, MW_K_VALIDATOR_IP, g->s[2]);
            break;
        case MW_TYPE_ERROR:
            mw_event_set_str (ev, MW_K_TASK_ID, g->s[1]);
            mw_event_set_str (ev, MW_K_ERROR_MESSAGE, "element not found");
            break;
        case MW_TYPE_TASK_COMPLETE:
            mw_event_set_str (ev, MW_K_TASK_ID, g->s[1]);
            ev->success = gen_rand (g) % 10 != 0;
            ev->has |= MW_HAS_SUCCESS;
            if (gen_rand (g) % 2) {
                ev->response_time = (double) (gen_rand (g) % 20000) / 1000.0;
                ev->has |= MW_HAS_RESPONSE_TIME;
            }
            if (!ev->success)
                mw_event_set_str (ev, MW_K_ERROR, "validator timeout");
            //  Sometimes the complete is sent twice (an orphan).
            if (gen_rand (g) % 50 != 0)
                g->open[slot] = g->open[--g->nopen];
            break;
        default:
            break;
    }
    ev->id = ++g->id;
    ev->has |= MW_HAS_ID;
    return true;
}

//  Apply the next step of the stream to every state; all must agree.
static void
gen_apply (gen_t *g, mw_state_t **states, size_t n)
{
    mw_event_t ev;
    if (gen_event (g, &ev)) {
        for (size_t i = 0; i < n; i++)
            assert_int_equal (mw_state_apply (states[i], &ev, g->now), 0);
    }
    else {
        uint64_t id = ++g->id;
        int expired = mw_state_tick (states[0], g->now, id);
        assert_true (expired >= 0);
        for (size_t i = 1; i < n; i++)
            assert_int_equal (mw_state_tick (states[i], g->now, id), expired);
    }
}

//  --------------------------------------------------------------------------
//  Bounds

//  Every structure within its bound, and the tables at their creation size.
static void
check_bounds (const mw_state_t *st, const mw_state_memory_t *at_start)
{
    const mw_state_config_t *cfg = mw_state_config (st);
    assert_true (mw_state_recent_count (st) <= cfg->recent_events);
    assert_true (mw_state_history_count (st) <= cfg->task_history);
    assert_true (mw_state_activity_count (st) <= cfg->validator_activity);
    assert_true (mw_state_active_count (st) <= cfg->max_active_tasks);
    assert_true (mw_state_validator_count (st) <= cfg->max_validators);
    assert_true (mw_state_miner_count (st) <= cfg->max_miners);
    mw_state_memory_t mem;
    mw_state_memory (st, &mem);
    assert_int_equal (mem.task_table_slots, at_start->task_table_slots);
    assert_int_equal (mem.history_table_slots, at_start->history_table_slots);
    assert_int_equal (mem.validator_table_slots, at_start->validator_table_slots);
    assert_int_equal (mem.miner_table_slots, at_start->miner_table_slots);
    assert_int_equal (mem.task_table_used, mw_state_active_count (st));
    assert_true (mem.task_table_used * 2 <= mem.task_table_slots);
    assert_int_equal (mem.alloc_failures, 0);
}

static void
test_bounds_events (void **unused)
{
    size_t total = s_scaled (1000000, 20000);
    mw_state_t *st = mw_state_new (NULL);
    mw_state_memory_t start, mem;
    mw_state_memory (st, &start);
    gen_t *g = (gen_t *) malloc (sizeof (gen_t));
    //  More miners and validators than the caps, so both evict.
    gen_init (g, 42, 1500, 3000);
    size_t peak_at = total / 5;
    size_t peak = 0;
    for (size_t i = 0; i < total; i++) {
        gen_apply (g, &st, 1);
        if (i % 10000 == 0)
            check_bounds (st, &start);
        if (i == peak_at) {
            mw_state_memory (st, &mem);
            peak = mem.bytes;
        }
    }
    check_bounds (st, &start);
    mw_state_memory (st, &mem);
    //  Full from early on: memory stays where it was (strings vary a bit).
    assert_true (mem.bytes <= peak + peak / 10);
    mw_stats_t s;
    mw_state_stats (st, &s);
    assert_true (s.total_events > total * 9 / 10);
    assert_true (s.miners_evicted > 0);
    assert_true (s.validators_evicted > 0);
    assert_true (s.tasks_succeeded > 0 && s.tasks_failed > 0 && s.tasks_stale > 0);
    assert_true (s.orphan_events > 0 && s.lost_events > 0 && s.duplicate_events > 0);
    assert_int_equal (mw_state_recent_count (st), 1000);
    assert_int_equal (mw_state_history_count (st), 500);
    assert_int_equal (mw_state_activity_count (st), 200);
    free (g);
    mw_state_destroy (&st);
}

static void
test_bounds_never_completed (void **unused)
{
    size_t total = s_scaled (1000000, 30000);
    mw_state_t *st = mw_state_new (NULL);
    mw_state_memory_t start, mem;
    mw_state_memory (st, &start);
    assert_int_equal (start.task_table_slots, 32768);
    gen_t *g = (gen_t *) malloc (sizeof (gen_t));
    gen_init (g, 7, 16, 100);
    g->never_complete = true;
    size_t steady = 0;
    //  One event per broker millisecond: a task is evicted 10 s after its
    //  start, before any timeout (>= 50 s here) makes it stale, so the cap
    //  does all the work. Ticks still run.
    uint64_t now = 1700000000000ULL;
    for (size_t i = 0; i < total; i++) {
        mw_event_t ev;
        now++;
        if (!gen_event (g, &ev)) {
            assert_int_equal (mw_state_tick (st, now, ++g->id), 0);
            continue;
        }
        assert_int_equal (ev.kind, MW_TYPE_TASK_START);
        assert_int_equal (mw_state_apply (st, &ev, now), 0);
        if (i == 20000) {
            mw_state_memory (st, &mem);
            steady = mem.bytes;
        }
        if (i % 25000 == 0)
            check_bounds (st, &start);
    }
    check_bounds (st, &start);
    mw_state_memory (st, &mem);
    assert_int_equal (mem.task_table_used, 10000);
    //  Task ids grow by a few bytes from task 20000 to task 1000000.
    assert_true (mem.bytes <= steady + steady / 50 + 65536);
    mw_stats_t s;
    mw_state_stats (st, &s);
    assert_int_equal (s.active_tasks, 10000);
    assert_int_equal (s.tasks_started, s.total_events);
    assert_int_equal (s.tasks_evicted, s.tasks_started - 10000);
    assert_int_equal (s.tasks_stale, 0);
    assert_int_equal (mw_state_history_count (st), 500);
    assert_int_equal (mw_state_history (st, 0)->status, MW_TASK_EVICTED);
    //  The oldest start is first, and the table still answers.
    const mw_task_t *oldest = mw_state_active (st, 0);
    assert_ptr_equal (mw_state_find_task (st, oldest->miner, oldest->task_id), oldest);
    free (g);
    mw_state_destroy (&st);
}

//  --------------------------------------------------------------------------
//  Determinism and snapshots

static void
test_determinism (void **unused)
{
    size_t total = s_scaled (200000, 20000);
    mw_state_config_t cfg;
    mw_state_config_default (&cfg);
    cfg.max_active_tasks = 25; //  small caps: eviction paths run often
    cfg.max_validators = 50;
    cfg.max_miners = 10;
    mw_state_t *states[3] = {mw_state_new (&cfg), mw_state_new (&cfg), NULL};
    gen_t *g = (gen_t *) malloc (sizeof (gen_t));
    gen_init (g, 99, 12, 80);
    for (size_t i = 0; i < total / 2; i++)
        gen_apply (g, states, 2);
    assert_same_bytes (states[0], states[1]);
    //  A mirror: loads a snapshot half way, then follows the same updates.
    size_t len;
    uint8_t *buf = save_of (states[0], &len);
    char err[256];
    states[2] = mw_state_load (buf, len, err, sizeof (err));
    free (buf);
    assert_non_null (states[2]);
    assert_same_bytes (states[0], states[2]);
    for (size_t i = total / 2; i < total; i++)
        gen_apply (g, states, 3);
    assert_same_bytes (states[0], states[1]);
    assert_same_bytes (states[0], states[2]);
    //  Readers agree too.
    mw_stats_t a, b;
    mw_state_stats (states[0], &a);
    mw_state_stats (states[2], &b);
    assert_memory_equal (&a, &b, sizeof (a));
    //  The stream went through every path that could diverge.
    print_message ("determinism: %llu events, %llu stale, %llu evicted, %llu orphans\n",
                   (unsigned long long) a.total_events, (unsigned long long) a.tasks_stale,
                   (unsigned long long) a.tasks_evicted, (unsigned long long) a.orphan_events);
    assert_true (a.tasks_stale > 0 && a.tasks_evicted > 0 && a.orphan_events > 0);
    assert_true (a.miners_evicted > 0 && a.validators_evicted > 0 && a.started_late > 0);
    assert_true (a.lost_events > 0 && a.duplicate_events > 0 && a.publisher_restarts > 0);
    assert_true (a.duplicate_starts + 1 > 0 && a.cache_hits > 0 && a.response.count > 0);
    assert_int_equal (mw_state_active_count (states[0]), mw_state_active_count (states[2]));
    for (size_t i = 0; i < mw_state_active_count (states[0]); i++)
        assert_string_equal (mw_state_active (states[0], i)->task_id,
                             mw_state_active (states[2], i)->task_id);
    for (int i = 0; i < 3; i++)
        mw_state_destroy (&states[i]);
    free (g);
}

static void
test_roundtrip (void **unused)
{
    //  Empty state.
    mw_state_t *st = mw_state_new (NULL);
    size_t len, len2;
    uint8_t *buf = save_of (st, &len);
    char err[256];
    mw_state_t *back = mw_state_load (buf, len, err, sizeof (err));
    assert_non_null (back);
    assert_same_bytes (st, back);
    assert_int_equal (mw_state_config (back)->recent_events, 1000);
    mw_state_destroy (&back);
    free (buf);
    mw_state_destroy (&st);

    //  A full state with every kind of record, at the default bounds.
    st = mw_state_new (NULL);
    gen_t *g = (gen_t *) malloc (sizeof (gen_t));
    gen_init (g, 5, 40, 1500);
    size_t total = s_scaled (300000, 30000);
    for (size_t i = 0; i < total; i++)
        gen_apply (g, &st, 1);
    buf = save_of (st, &len);
    back = mw_state_load (buf, len, err, sizeof (err));
    assert_non_null (back);
    uint8_t *buf2 = save_of (back, &len2);
    assert_int_equal (len, len2);
    assert_memory_equal (buf, buf2, len);
    assert_int_equal (mw_state_last_id (back), mw_state_last_id (st));
    assert_int_equal (mw_state_now (back), mw_state_now (st));
    mw_stats_t a, b;
    mw_state_stats (st, &a);
    mw_state_stats (back, &b);
    assert_memory_equal (&a, &b, sizeof (a));
    //  And both go on identically, ticks and expiry included.
    mw_state_t *both[2] = {st, back};
    for (size_t i = 0; i < 20000; i++)
        gen_apply (g, both, 2);
    g->now += 3600000;
    uint64_t id = ++g->id;
    int expired = mw_state_tick (st, g->now, id);
    assert_true (expired > 0);
    assert_int_equal (mw_state_tick (back, g->now, id), expired);
    assert_int_equal (mw_state_active_count (st), 0);
    assert_same_bytes (st, back);
    free (buf);
    free (buf2);
    free (g);
    mw_state_destroy (&back);
    mw_state_destroy (&st);
}

//  --------------------------------------------------------------------------
//  Hostile snapshots

//  A small snapshot with every section non-empty.
static uint8_t *
small_snapshot (size_t *len)
{
    mw_state_config_t cfg;
    mw_state_config_default (&cfg);
    cfg.recent_events = 6;
    cfg.task_history = 3;
    cfg.validator_activity = 3;
    cfg.max_active_tasks = 4;
    fx_t *f = fx_new (&cfg);
    start_task (f, "a", "1.2.3.4", "hk-a");
    start_task (f, "b", "5.6.7.8", NULL);
    start_task (f, "c", NULL, "hk-c");
    step_task (f, "b", "processing");
    complete_task (f, "a", true);
    mw_event_t ev = ev_make (f, MW_TYPE_TASK_FEEDBACK, "a");
    ev.score = 0.5;
    ev.has |= MW_HAS_SCORE;
    fx_ok (f, &ev);
    mw_kv_t kv[] = {{.key = "note", .kind = MW_KV_STR, .val.s = {"hi", (size_t) -1}}};
    mw_event_init_named (&ev, "custom_thing");
    mw_event_set_str (&ev, MW_K_MINER, f->miner);
    ev.ts = f->now * 1000;
    ev.sid = f->sid;
    ev.seq = ++f->seq;
    ev.kv = kv;
    ev.kv_count = 1;
    fx_ok (f, &ev);
    uint8_t *buf = save_of (f->st, len);
    fx_destroy (&f);
    return buf;
}

static void
expect_rejected (const uint8_t *buf, size_t len)
{
    char err[512];
    memset (err, 0, sizeof (err));
    mw_state_t *st = mw_state_load (buf, len, err, sizeof (err));
    if (st) {
        fprintf (stderr, "accepted a hostile snapshot of %zu bytes\n", len);
        mw_state_destroy (&st);
        fail ();
    }
    assert_true (strlen (err) > 0);
    assert_non_null (strstr (err, "snapshot"));
}

static void
test_hostile_truncated (void **unused)
{
    size_t len;
    uint8_t *buf = small_snapshot (&len);
    char err[512];
    mw_state_t *st = mw_state_load (buf, len, err, sizeof (err));
    assert_non_null (st);
    mw_state_destroy (&st);
    //  Every prefix, in a buffer of exactly that size (ASan sees overreads).
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *p = (uint8_t *) malloc (cut ? cut : 1);
        memcpy (p, buf, cut);
        expect_rejected (p, cut);
        free (p);
    }
    //  Trailing garbage, NULL buffer, NULL errbuf.
    uint8_t *more = (uint8_t *) malloc (len + 1);
    memcpy (more, buf, len);
    more[len] = 0xc0;
    expect_rejected (more, len + 1);
    free (more);
    assert_null (mw_state_load (NULL, 10, err, sizeof (err)));
    assert_null (mw_state_load (buf, len - 1, NULL, 0));
    free (buf);
}

static void
test_hostile_mutations (void **unused)
{
    size_t len;
    uint8_t *orig = small_snapshot (&len);
    uint8_t *buf = (uint8_t *) malloc (len + 16);
    uint64_t rng = 0x9e3779b97f4a7c15ULL; //  fixed seed: failures reproduce
    size_t rounds = s_scaled (30000, 1500);
    size_t loaded = 0;
    for (size_t r = 0; r < rounds; r++) {
        memcpy (buf, orig, len);
        size_t n = len;
        int edits = 1 + (int) (rng % 4);
        for (int e = 0; e < edits && n > 0; e++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            size_t at = (size_t) (rng >> 8) % n;
            switch (rng % 5) {
                case 0: //  flip a bit
                    buf[at] ^= (uint8_t) (1u << ((rng >> 40) % 8));
                    break;
                case 1: //  a random byte
                    buf[at] = (uint8_t) (rng >> 48);
                    break;
                case 2: //  an interesting byte
                {
                    static const uint8_t hot[] = {0x00, 0x7f, 0x80, 0xc0, 0xc1, 0xcb, 0xcf, 0xd9,
                                                  0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xc6, 0xff, 0x9f};
                    buf[at] = hot[(rng >> 52) % sizeof (hot)];
                    break;
                }
                case 3: //  delete a byte
                    memmove (buf + at, buf + at + 1, n - at - 1);
                    n--;
                    break;
                default: //  duplicate a byte
                    if (n < len + 16) {
                        memmove (buf + at + 1, buf + at, n - at);
                        n++;
                    }
                    break;
            }
        }
        uint8_t *exact = (uint8_t *) malloc (n ? n : 1);
        memcpy (exact, buf, n);
        char err[512] = "";
        mw_state_t *st = mw_state_load (exact, n, err, sizeof (err));
        if (st) {
            //  Some mutations are still valid snapshots (a counter changed):
            //  such a state must work like any other.
            loaded++;
            size_t l2;
            uint8_t *b2 = save_of (st, &l2);
            mw_state_t *again = mw_state_load (b2, l2, err, sizeof (err));
            assert_non_null (again);
            assert_same_bytes (st, again);
            mw_event_t ev;
            mw_event_init (&ev, MW_TYPE_TASK_STEP);
            mw_event_set_str (&ev, MW_K_MINER, "miner-1");
            mw_event_set_str (&ev, MW_K_TASK_ID, "b");
            mw_event_set_str (&ev, MW_K_STEP, "after load");
            ev.id = mw_state_last_id (st) + 1;
            ev.has |= MW_HAS_ID;
            if (ev.id > 0)
                mw_state_apply (st, &ev, mw_state_now (st) + 1);
            mw_state_tick (st, mw_state_now (st) + 10000000, mw_state_last_id (st) + 1);
            free (b2);
            mw_state_destroy (&again);
            mw_state_destroy (&st);
        }
        else
            assert_true (strlen (err) > 0);
        free (exact);
    }
    //  Most mutations break the snapshot; some leave a valid one.
    assert_true (loaded < rounds / 2);
    print_message ("%zu of %zu mutated snapshots (%zu bytes) were still valid\n", loaded, rounds,
                   len);
    free (buf);
    free (orig);
}

//  Overwrite the msgpack uint after key `name` (its first occurrence) with
//  an encoding of the same size holding v.
static void
patch_uint (uint8_t *buf, size_t len, const char *name, uint64_t v)
{
    size_t nlen = strlen (name);
    uint8_t *at = (uint8_t *) memmem (buf, len, name, nlen);
    assert_non_null (at);
    at += nlen;
    int n = *at == 0xcc ? 1 : *at == 0xcd ? 2 : *at == 0xce ? 4 : *at == 0xcf ? 8 : 0;
    if (n == 0) {
        assert_true (v <= 0x7f && *at <= 0x7f);
        *at = (uint8_t) v;
        return;
    }
    for (int i = 0; i < n; i++)
        at[1 + i] = (uint8_t) (v >> (8 * (n - 1 - i)));
}

static void
expect_rejected_with (const uint8_t *buf, size_t len, const char *words)
{
    char err[512] = "";
    mw_state_t *st = mw_state_load (buf, len, err, sizeof (err));
    if (st)
        mw_state_destroy (&st);
    assert_null (st);
    if (!strstr (err, words))
        fprintf (stderr, "message '%s' lacks '%s'\n", err, words);
    assert_non_null (strstr (err, words));
}

static void
test_hostile_counts (void **unused)
{
    //  A map32 claiming four billion keys, in 5 bytes; a bin32 of 4 GB;
    //  an array32 of 4 billion items; deep nesting.
    const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    expect_rejected (huge_map, sizeof (huge_map));
    const uint8_t huge_bin[] = {0xc6, 0xff, 0xff, 0xff, 0xf0, 0x00};
    expect_rejected (huge_bin, sizeof (huge_bin));
    const uint8_t huge_array[] = {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00};
    expect_rejected (huge_array, sizeof (huge_array));
    uint8_t deep[64];
    memset (deep, 0x91, sizeof (deep));
    deep[63] = 0x90;
    expect_rejected (deep, sizeof (deep));

    //  A state with 3 miners and 3 active tasks, whose snapshot we patch.
    mw_state_config_t cfg;
    mw_state_config_default (&cfg);
    cfg.max_miners = 3;
    cfg.max_active_tasks = 70000; //  a uint32 in the snapshot
    fx_t *f = fx_new (&cfg);
    const char *names[] = {"m-a", "m-b", "m-c"};
    for (int i = 0; i < 3; i++) {
        f->miner = names[i];
        start_task (f, i == 2 ? "t2" : i == 1 ? "t1" : "t0", NULL, NULL);
    }
    size_t len;
    uint8_t *orig = save_of (f->st, &len);
    fx_destroy (&f);
    uint8_t *buf = (uint8_t *) malloc (len);
    char err[512];
    mw_state_t *st = mw_state_load (orig, len, err, sizeof (err));
    assert_non_null (st);
    mw_state_destroy (&st);

    //  Config out of its range.
    memcpy (buf, orig, len);
    patch_uint (buf, len, "recent_events", 0);
    expect_rejected_with (buf, len, "recent_events is 0");
    memcpy (buf, orig, len);
    patch_uint (buf, len, "max_active_tasks", 20000000);
    expect_rejected_with (buf, len, "max_active_tasks is 20000000");
    memcpy (buf, orig, len);
    patch_uint (buf, len, "task_timeout_ms", 10);
    expect_rejected_with (buf, len, "task_timeout_ms");
    //  Counts within the bytes but beyond the bounds the config carries.
    memcpy (buf, orig, len);
    patch_uint (buf, len, "max_miners", 2);
    expect_rejected_with (buf, len, "max_miners");
    memcpy (buf, orig, len);
    patch_uint (buf, len, "max_active_tasks", 2);
    expect_rejected_with (buf, len, "max_active_tasks (2)");
    //  A repeated miner, a repeated active task (first occurrences are in
    //  the miners and active lists).
    memcpy (buf, orig, len);
    uint8_t *at = (uint8_t *) memmem (buf, len, "\xa3m-b", 4);
    assert_non_null (at);
    at[3] = 'a';
    expect_rejected_with (buf, len, "appears twice");
    memcpy (buf, orig, len);
    at = (uint8_t *) memmem (buf, len, "\xa3m-b\xa2t1", 7);
    assert_non_null (at);
    at[3] = 'a';
    at[6] = '0';
    expect_rejected_with (buf, len, "twice");
    //  Wrong format name, wrong version.
    memcpy (buf, orig, len);
    at = (uint8_t *) memmem (buf, len, "minerwatch-state", 16);
    at[0] = 'M';
    expect_rejected_with (buf, len, "format");
    memcpy (buf, orig, len);
    patch_uint (buf, len, "version", 2);
    expect_rejected_with (buf, len, "version 2");
    free (buf);
    free (orig);
}

//  --------------------------------------------------------------------------

int
main (int argc, char *argv[])
{
    const char *env = getenv ("MW_TEST_SCALE");
    if (env) {
        double s = strtod (env, NULL);
        if (s > 0 && s <= 1)
            s_scale = s;
    }
    const char *group = argc > 1 ? argv[1] : "all";
    bool all = strcmp (group, "all") == 0;
    int failed = 0;
    int ran = 0;
    if (all || strcmp (group, "apply") == 0) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test (test_config),
            cmocka_unit_test_setup_teardown (test_task_lifecycle, setup, teardown),
            cmocka_unit_test_setup_teardown (test_complete_computed, setup, teardown),
            cmocka_unit_test_setup_teardown (test_feedback, setup, teardown),
            cmocka_unit_test_setup_teardown (test_validators, setup, teardown),
            cmocka_unit_test_setup_teardown (test_error_and_custom, setup, teardown),
            cmocka_unit_test_setup_teardown (test_invalid_events, setup, teardown),
            cmocka_unit_test_setup_teardown (test_out_of_order, setup, teardown),
            cmocka_unit_test_setup_teardown (test_expiry, setup, teardown),
            cmocka_unit_test (test_eviction),
            cmocka_unit_test_setup_teardown (test_sequence, setup, teardown),
            cmocka_unit_test (test_caps),
            cmocka_unit_test_setup_teardown (test_rates, setup, teardown),
            cmocka_unit_test (test_histogram),
            cmocka_unit_test_setup_teardown (test_readers, setup, teardown),
        };
        failed += cmocka_run_group_tests_name ("state_apply", tests, NULL, NULL);
        ran++;
    }
    if (all || strcmp (group, "bounds") == 0) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test (test_bounds_events),
            cmocka_unit_test (test_bounds_never_completed),
        };
        failed += cmocka_run_group_tests_name ("state_bounds", tests, NULL, NULL);
        ran++;
    }
    if (all || strcmp (group, "snapshot") == 0) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test (test_determinism),
            cmocka_unit_test (test_roundtrip),
        };
        failed += cmocka_run_group_tests_name ("state_snapshot", tests, NULL, NULL);
        ran++;
    }
    if (all || strcmp (group, "hostile") == 0) {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test (test_hostile_truncated),
            cmocka_unit_test (test_hostile_mutations),
            cmocka_unit_test (test_hostile_counts),
        };
        failed += cmocka_run_group_tests_name ("state_hostile", tests, NULL, NULL);
        ran++;
    }
    if (!ran) {
        fprintf (stderr, "test_state: unknown group '%s' (apply, bounds, snapshot, hostile)\n",
                 group);
        return 2;
    }
    return failed ? 1 : 0;
}
