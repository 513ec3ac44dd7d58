/*  mw_render.c - the status JSON and the Prometheus metrics of a state.

    Writers append to an mw_buf_t and never check each append: the buffer
    remembers a failed allocation, and each public function checks it once
    at the end and cuts the buffer back (see mw_json.h).
*/
#include "mw_render.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  --------------------------------------------------------------------------
//  Index of the recent events in a render

void
mw_render_index_init (mw_render_index_t *self)
{
    assert (self);
    memset (self, 0, sizeof (*self));
}

void
mw_render_index_release (mw_render_index_t *self)
{
    assert (self);
    free (self->ids);
    free (self->ends);
    mw_render_index_init (self);
}

static int
s_index_reserve (mw_render_index_t *self, size_t count)
{
    if (count <= self->cap)
        return 0;
    uint64_t *ids = (uint64_t *) realloc (self->ids, count * sizeof (uint64_t));
    if (!ids)
        return -1;
    self->ids = ids;
    size_t *ends = (size_t *) realloc (self->ends, count * sizeof (size_t));
    if (!ends)
        return -1;
    self->ends = ends;
    self->cap = count;
    return 0;
}

size_t
mw_render_select (const mw_render_index_t *index, size_t total_len, uint64_t since, size_t limit,
                  mw_render_range_t range[3])
{
    assert (index);
    assert (range);
    assert (index->start <= index->begin && index->begin <= index->end && index->end <= total_len);
    //  Ids decrease along the array: the events newer than since are a
    //  prefix. Binary search for its length.
    size_t lo = 0, hi = index->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (index->ids[mid] > since)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t kept = lo < limit ? lo : limit;
    range[0].off = index->start;
    range[0].len = index->begin - index->start;
    range[1].off = index->begin;
    range[1].len = kept ? index->ends[kept - 1] - index->begin : 0;
    range[2].off = index->end;
    range[2].len = total_len - index->end;
    return kept;
}

//  --------------------------------------------------------------------------
//  JSON helpers

static void
s_u64 (mw_buf_t *buf, uint64_t u)
{
    mw_buf_printf (buf, "%" PRIu64, u);
}

//  ,"name": (name is ours: plain ASCII). first: no comma.
static void
s_key (mw_buf_t *buf, const char *name, bool first)
{
    if (!first)
        mw_buf_putc (buf, ',');
    mw_buf_putc (buf, '"');
    mw_buf_puts (buf, name);
    mw_buf_append (buf, "\":", 2);
}

static void
s_kv_u64 (mw_buf_t *buf, const char *name, uint64_t u)
{
    s_key (buf, name, false);
    s_u64 (buf, u);
}

static void
s_kv_double (mw_buf_t *buf, const char *name, double d)
{
    s_key (buf, name, false);
    mw_json_double (buf, d);
}

static void
s_kv_bool (mw_buf_t *buf, const char *name, bool b)
{
    s_key (buf, name, false);
    mw_buf_puts (buf, b ? "true" : "false");
}

static void
s_kv_str (mw_buf_t *buf, const char *name, const char *s)
{
    s_key (buf, name, false);
    s = s ? s : "";
    mw_json_string (buf, s, strlen (s));
}

//  ISO-8601 of a broker time in milliseconds.
static void
s_kv_iso (mw_buf_t *buf, const char *name, uint64_t ms)
{
    char text[MW_JSON_TIME_SIZE];
    //  mw_json_format_time takes microseconds; a time past year 292277 is
    //  not a time anyway.
    if (ms > UINT64_MAX / 1000)
        ms = UINT64_MAX / 1000;
    size_t len = mw_json_format_time (text, sizeof (text), ms * 1000);
    s_key (buf, name, false);
    mw_buf_putc (buf, '"');
    mw_buf_append (buf, text, len);
    mw_buf_putc (buf, '"');
}

static uint64_t
s_sat_add (uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

//  One task, active or finished. The deadline is when the state will mark
//  an active task stale: the same rule as the state's own.
static void
s_task (mw_buf_t *buf, const mw_task_t *task, const mw_state_config_t *cfg, uint64_t now)
{
    mw_buf_putc (buf, '{');
    s_key (buf, "task_id", true);
    mw_json_string (buf, task->task_id, strlen (task->task_id));
    s_kv_str (buf, "miner", task->miner);
    s_kv_str (buf, "prompt", task->prompt);
    s_kv_str (buf, "url", task->url);
    s_kv_str (buf, "validator_ip", task->validator_ip);
    s_kv_str (buf, "validator_hotkey", task->validator_hotkey);
    s_kv_u64 (buf, "start_time", task->start_ms);
    s_kv_str (buf, "status", mw_task_status_name (task->status));
    s_kv_str (buf, "current_step", task->current_step);
    s_kv_u64 (buf, "actions_generated", task->actions);
    s_kv_u64 (buf, "steps", task->steps);
    s_kv_u64 (buf, "events", task->events);
    s_kv_bool (buf, "cache_hit", task->cache_hit);
    s_kv_bool (buf, "started_late", task->started_late);
    s_kv_u64 (buf, "timeout_ms", task->timeout_ms);
    s_kv_u64 (buf, "last_seen", task->last_seen_ms);
    s_kv_u64 (buf, "first_id", task->first_id);
    s_kv_u64 (buf, "last_id", task->last_id);
    if (task->status == MW_TASK_ACTIVE) {
        //  start_time is the publisher's clock, now the broker's: a skew
        //  must not give a negative age.
        s_kv_u64 (buf, "elapsed_ms", now > task->start_ms ? now - task->start_ms : 0);
        uint64_t silence = task->timeout_ms ? s_sat_add (task->timeout_ms, cfg->timeout_grace_ms)
                                            : cfg->task_timeout_ms;
        s_kv_u64 (buf, "deadline", s_sat_add (task->last_seen_ms, silence));
    }
    else {
        s_kv_u64 (buf, "end_time", task->end_ms);
        s_key (buf, "response_time", false);
        if (task->has_response_time)
            mw_json_double (buf, task->response_time);
        else
            mw_buf_puts (buf, "null");
        s_kv_str (buf, "error", task->error);
    }
    mw_buf_putc (buf, '}');
}

static void
s_activity (mw_buf_t *buf, const mw_activity_t *act)
{
    mw_buf_putc (buf, '{');
    s_key (buf, "id", true);
    s_u64 (buf, act->id);
    s_kv_u64 (buf, "ts", act->time_ms);
    s_kv_iso (buf, "time", act->time_ms);
    s_kv_str (buf, "type", mw_type_name (act->kind));
    s_kv_str (buf, "miner", act->miner);
    s_kv_str (buf, "task_id", act->task_id);
    s_kv_str (buf, "validator_ip", act->validator_ip);
    s_kv_str (buf, "validator_hotkey", act->validator_hotkey);
    mw_buf_putc (buf, '}');
}

static void
s_validator (mw_buf_t *buf, const mw_validator_t *v)
{
    mw_buf_putc (buf, '{');
    s_key (buf, "hotkey", true);
    mw_json_string (buf, v->hotkey ? v->hotkey : "", v->hotkey ? strlen (v->hotkey) : 0);
    s_kv_str (buf, "ip", v->ip);
    s_kv_u64 (buf, "tasks", v->tasks);
    s_kv_u64 (buf, "successes", v->successes);
    s_kv_u64 (buf, "failures", v->failures);
    s_kv_u64 (buf, "connections", v->connections);
    s_kv_u64 (buf, "feedback_count", v->feedback_count);
    s_key (buf, "mean_score", false);
    if (v->feedback_count)
        mw_json_double (buf, v->feedback_sum / (double) v->feedback_count);
    else
        mw_buf_puts (buf, "null");
    s_kv_u64 (buf, "response_count", v->response.count);
    s_kv_double (buf, "response_p50", mw_hist_quantile (&v->response, 0.50));
    s_kv_double (buf, "response_p95", mw_hist_quantile (&v->response, 0.95));
    s_kv_u64 (buf, "last_seen", v->last_seen_ms);
    mw_buf_putc (buf, '}');
}

static void
s_miner (mw_buf_t *buf, const mw_miner_t *m)
{
    mw_buf_putc (buf, '{');
    s_key (buf, "miner", true);
    mw_json_string (buf, m->miner ? m->miner : "", m->miner ? strlen (m->miner) : 0);
    s_kv_u64 (buf, "events", m->events);
    s_kv_u64 (buf, "active", m->active);
    s_kv_u64 (buf, "completed", m->completed);
    s_kv_u64 (buf, "succeeded", m->succeeded);
    s_kv_u64 (buf, "failed", m->failed);
    s_kv_u64 (buf, "lost", m->lost);
    s_kv_u64 (buf, "duplicates", m->duplicates);
    s_kv_u64 (buf, "restarts", m->restarts);
    //  A random 64-bit number: a string, so JavaScript keeps every bit.
    s_key (buf, "sid", false);
    mw_buf_printf (buf, "\"%" PRIu64 "\"", m->sid);
    s_kv_u64 (buf, "last_seq", m->last_seq);
    s_kv_u64 (buf, "last_seen", m->last_seen_ms);
    mw_buf_putc (buf, '}');
}

//  The name of an events_by_type slot: the type's, "custom" for slot 0.
static const char *
s_type_slot_name (int kind)
{
    return kind == MW_TYPE_CUSTOM ? "custom" : mw_type_name ((mw_type_t) kind);
}

static void
s_stats (mw_buf_t *buf, const mw_stats_t *st)
{
    mw_buf_putc (buf, '{');
    s_key (buf, "total_events", true);
    s_u64 (buf, st->total_events);
    s_key (buf, "events_by_type", false);
    mw_buf_putc (buf, '{');
    for (int k = 0; k < MW_TYPE_COUNT; k++) {
        s_key (buf, s_type_slot_name (k), k == 0);
        s_u64 (buf, st->events_by_type[k]);
    }
    mw_buf_putc (buf, '}');
    s_kv_u64 (buf, "active_tasks", st->active_tasks);
    s_kv_u64 (buf, "tasks_started", st->tasks_started);
    s_kv_u64 (buf, "tasks_succeeded", st->tasks_succeeded);
    s_kv_u64 (buf, "tasks_failed", st->tasks_failed);
    s_kv_u64 (buf, "tasks_stale", st->tasks_stale);
    s_kv_u64 (buf, "tasks_evicted", st->tasks_evicted);
    s_kv_u64 (buf, "started_late", st->started_late);
    s_kv_u64 (buf, "duplicate_starts", st->duplicate_starts);
    s_kv_u64 (buf, "orphan_events", st->orphan_events);
    s_kv_u64 (buf, "lost_events", st->lost_events);
    s_kv_u64 (buf, "duplicate_events", st->duplicate_events);
    s_kv_u64 (buf, "publisher_restarts", st->publisher_restarts);
    s_kv_u64 (buf, "miners_evicted", st->miners_evicted);
    s_kv_u64 (buf, "validators_evicted", st->validators_evicted);
    s_kv_u64 (buf, "cache_hits", st->cache_hits);
    s_kv_u64 (buf, "errors", st->errors);
    s_kv_double (buf, "cache_hit_rate", st->cache_hit_rate);
    s_kv_double (buf, "success_rate", st->success_rate);
    s_kv_double (buf, "tasks_per_min_1", st->tasks_per_min_1);
    s_kv_double (buf, "tasks_per_min_5", st->tasks_per_min_5);
    s_kv_double (buf, "tasks_per_min_15", st->tasks_per_min_15);
    s_kv_double (buf, "response_p50", st->p50);
    s_kv_double (buf, "response_p95", st->p95);
    s_kv_double (buf, "response_p99", st->p99);
    s_kv_u64 (buf, "response_count", st->response.count);
    s_kv_double (buf, "response_sum", st->response.sum);
    mw_buf_putc (buf, '}');
}

static void
s_bounds (mw_buf_t *buf, const mw_state_config_t *cfg)
{
    mw_buf_putc (buf, '{');
    s_key (buf, "recent_events", true);
    s_u64 (buf, cfg->recent_events);
    s_kv_u64 (buf, "task_history", cfg->task_history);
    s_kv_u64 (buf, "validator_activity", cfg->validator_activity);
    s_kv_u64 (buf, "max_active_tasks", cfg->max_active_tasks);
    s_kv_u64 (buf, "max_validators", cfg->max_validators);
    s_kv_u64 (buf, "max_miners", cfg->max_miners);
    s_kv_u64 (buf, "task_timeout_ms", cfg->task_timeout_ms);
    s_kv_u64 (buf, "timeout_grace_ms", cfg->timeout_grace_ms);
    mw_buf_putc (buf, '}');
}

//  --------------------------------------------------------------------------
//  Status JSON

int
mw_render_status (mw_buf_t *buf, const mw_state_t *state, const mw_render_opts_t *opts,
                  mw_render_index_t *index)
{
    assert (buf);
    assert (state);
    size_t start = buf->len;
    const mw_state_config_t *cfg = mw_state_config (state);
    uint64_t now = mw_state_now (state);
    mw_stats_t st;
    mw_state_stats (state, &st);

    size_t events = mw_state_recent_count (state);
    if (index) {
        index->count = 0;
        if (s_index_reserve (index, events ? events : 1) != 0) {
            buf->failed = true;
            goto fail;
        }
    }
    mw_buf_putc (buf, '{');
    s_key (buf, "id", true);
    s_u64 (buf, mw_state_last_id (state));
    if (opts && opts->epoch) {
        //  A random 64-bit number: 16 hex digits in a string, as the CLI
        //  prints it (a JavaScript number would lose bits).
        s_key (buf, "epoch", false);
        mw_buf_printf (buf, "\"%016" PRIx64 "\"", opts->epoch);
    }
    s_kv_iso (buf, "timestamp", now);
    s_kv_u64 (buf, "timestamp_ms", now);
    s_kv_u64 (buf, "total_events", st.total_events);

    size_t active = mw_state_active_count (state);
    s_kv_u64 (buf, "active_task_count", active);
    s_key (buf, "active_tasks", false);
    mw_buf_putc (buf, '[');
    for (size_t i = 0; i < active; i++) {
        if (i)
            mw_buf_putc (buf, ',');
        s_task (buf, mw_state_active (state, i), cfg, now);
    }
    mw_buf_putc (buf, ']');

    s_key (buf, "recent_events", false);
    mw_buf_putc (buf, '[');
    size_t begin = buf->len - start;
    for (size_t i = 0; i < events; i++) {
        const mw_event_t *ev = mw_state_recent (state, i);
        if (i)
            mw_buf_putc (buf, ',');
        if (mw_json_event_ex (buf, ev, MW_JSON_SID_STRING) != 0)
            goto fail;
        if (index) {
            index->ids[i] = ev->id;
            index->ends[i] = buf->len - start;
            index->count = i + 1;
        }
    }
    size_t end = buf->len - start;
    mw_buf_putc (buf, ']');

    size_t acts = mw_state_activity_count (state);
    s_key (buf, "recent_validator_activity", false);
    mw_buf_putc (buf, '[');
    for (size_t i = 0; i < acts; i++) {
        if (i)
            mw_buf_putc (buf, ',');
        s_activity (buf, mw_state_activity (state, i));
    }
    mw_buf_putc (buf, ']');

    s_key (buf, "stats", false);
    s_stats (buf, &st);

    size_t vals = mw_state_validator_count (state);
    s_key (buf, "validators", false);
    mw_buf_putc (buf, '[');
    for (size_t i = 0; i < vals; i++) {
        if (i)
            mw_buf_putc (buf, ',');
        s_validator (buf, mw_state_validator (state, i));
    }
    mw_buf_putc (buf, ']');

    size_t miners = mw_state_miner_count (state);
    s_key (buf, "miners", false);
    mw_buf_putc (buf, '[');
    for (size_t i = 0; i < miners; i++) {
        if (i)
            mw_buf_putc (buf, ',');
        s_miner (buf, mw_state_miner (state, i));
    }
    mw_buf_putc (buf, ']');

    size_t history = mw_state_history_count (state);
    s_key (buf, "task_history", false);
    mw_buf_putc (buf, '[');
    for (size_t i = 0; i < history; i++) {
        if (i)
            mw_buf_putc (buf, ',');
        s_task (buf, mw_state_history (state, i), cfg, now);
    }
    mw_buf_putc (buf, ']');

    s_key (buf, "bounds", false);
    s_bounds (buf, cfg);
    mw_buf_putc (buf, '}');
    if (buf->failed)
        goto fail;
    if (index) {
        //  Offsets so far are relative to start: make them absolute.
        index->start = start;
        index->begin = start + begin;
        index->end = start + end;
        for (size_t i = 0; i < index->count; i++)
            index->ends[i] += start;
    }
    return 0;

fail:
    mw_buf_truncate (buf, start);
    if (index) {
        index->count = 0;
        index->start = index->begin = index->end = start;
    }
    return -1;
}

//  --------------------------------------------------------------------------
//  Health

const unsigned mw_render_http_codes[MW_RENDER_HTTP_CODES] = {200, 304, 400, 401, 403, 404,
                                                             405, 414, 431, 500, 503, 0};

size_t
mw_render_http_slot (unsigned code)
{
    for (size_t i = 0; i < MW_RENDER_HTTP_CODES - 1; i++)
        if (mw_render_http_codes[i] == code)
            return i;
    return MW_RENDER_HTTP_CODES - 1;
}

int
mw_render_health (mw_buf_t *buf, const mw_render_gateway_t *gw)
{
    assert (buf);
    assert (gw);
    size_t start = buf->len;
    mw_buf_putc (buf, '{');
    s_key (buf, "status", true);
    mw_buf_puts (buf, gw->broker_up ? "\"ok\"" : "\"degraded\"");
    s_key (buf, "broker", false);
    mw_buf_puts (buf, gw->broker_up ? "\"up\"" : "\"down\"");
    s_kv_bool (buf, "broker_up", gw->broker_up);
    s_key (buf, "last_heartbeat_age_ms", false);
    if (gw->heartbeat_age_ms == UINT64_MAX)
        mw_buf_puts (buf, "null");
    else
        s_u64 (buf, gw->heartbeat_age_ms);
    s_kv_u64 (buf, "last_id", gw->last_id);
    s_key (buf, "epoch", false);
    mw_buf_printf (buf, "\"%016" PRIx64 "\"", gw->broker_epoch);
    s_kv_u64 (buf, "resyncs", gw->resyncs);
    s_kv_u64 (buf, "sse_clients", gw->sse_clients);
    s_kv_u64 (buf, "sse_clients_max", gw->sse_clients_max);
    mw_buf_putc (buf, '}');
    if (buf->failed) {
        mw_buf_truncate (buf, start);
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Prometheus text exposition

int
mw_render_label (mw_buf_t *buf, const char *s, size_t len)
{
    assert (buf);
    const uint8_t *p = (const uint8_t *) s;
    size_t i = 0;
    while (i < len) {
        size_t plain = i;
        while (plain < len && p[plain] >= 0x20 && p[plain] < 0x80 && p[plain] != '\\' &&
               p[plain] != '"')
            plain++;
        if (plain > i) {
            mw_buf_append (buf, p + i, plain - i);
            i = plain;
            continue;
        }
        uint8_t c = p[i];
        if (c == '\\')
            mw_buf_append (buf, "\\\\", 2);
        else if (c == '"')
            mw_buf_append (buf, "\\\"", 2);
        else if (c == '\n')
            mw_buf_append (buf, "\\n", 2);
        else if (c < 0x80)
            //  Other control characters are legal in a label value, but a
            //  reader of the page should not have to see them raw.
            mw_buf_printf (buf, "\\\\x%02x", c);
        else {
            //  An invalid sequence decodes as U+FFFD: write that instead
            //  (a genuine U+FFFD is the same three bytes).
            uint32_t cp;
            size_t n = mw_utf8_next (p + i, len - i, &cp);
            if (cp == 0xFFFD)
                mw_buf_append (buf, "\xEF\xBF\xBD", 3);
            else
                mw_buf_append (buf, p + i, n);
            i += n;
            continue;
        }
        i++;
    }
    return buf->failed ? -1 : 0;
}

static void
s_family (mw_buf_t *buf, const char *name, const char *type, const char *help)
{
    mw_buf_printf (buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
s_sample_u64 (mw_buf_t *buf, const char *name, uint64_t value)
{
    mw_buf_printf (buf, "%s %" PRIu64 "\n", name, value);
}

static void
s_sample_double (mw_buf_t *buf, const char *name, double value)
{
    mw_buf_puts (buf, name);
    mw_buf_putc (buf, ' ');
    if (isnan (value))
        mw_buf_puts (buf, "NaN");
    else if (isinf (value))
        mw_buf_puts (buf, value > 0 ? "+Inf" : "-Inf");
    else
        mw_json_double (buf, value);
    mw_buf_putc (buf, '\n');
}

static void
s_metric_u64 (mw_buf_t *buf, const char *name, const char *type, const char *help, uint64_t value)
{
    s_family (buf, name, type, help);
    s_sample_u64 (buf, name, value);
}

static void
s_metric_double (mw_buf_t *buf, const char *name, const char *type, const char *help, double value)
{
    s_family (buf, name, type, help);
    s_sample_double (buf, name, value);
}

//  A sample with one label whose value is untrusted.
static void
s_labelled (mw_buf_t *buf, const char *name, const char *label, const char *value, uint64_t n)
{
    mw_buf_printf (buf, "%s{%s=\"", name, label);
    mw_render_label (buf, value ? value : "", value ? strlen (value) : 0);
    mw_buf_printf (buf, "\"} %" PRIu64 "\n", n);
}

static void
s_histogram (mw_buf_t *buf, const char *name, const char *help, const mw_hist_t *hist)
{
    s_family (buf, name, "histogram", help);
    uint64_t cumulative = 0;
    for (int i = 0; i < MW_HIST_BUCKETS; i++) {
        cumulative += hist->counts[i];
        mw_buf_printf (buf, "%s_bucket{le=\"", name);
        if (i < MW_HIST_BUCKETS - 1)
            mw_json_double (buf, mw_hist_bounds[i]);
        else
            mw_buf_puts (buf, "+Inf");
        mw_buf_printf (buf, "\"} %" PRIu64 "\n", cumulative);
    }
    mw_buf_printf (buf, "%s_sum ", name);
    mw_json_double (buf, hist->sum);
    mw_buf_printf (buf, "\n%s_count %" PRIu64 "\n", name, hist->count);
}

static void
s_metrics_state (mw_buf_t *buf, const mw_state_t *state)
{
    mw_stats_t st;
    mw_state_stats (state, &st);
    const mw_state_config_t *cfg = mw_state_config (state);

    s_metric_u64 (buf, "minerwatch_last_event_id", "gauge",
                  "Last broker id applied to the state (events and ticks).",
                  mw_state_last_id (state));
    s_metric_double (buf, "minerwatch_state_time_seconds", "gauge",
                     "Broker clock of the state's last event or tick, seconds since the epoch.",
                     (double) mw_state_now (state) / 1000.0);

    s_family (buf, "minerwatch_events_total", "counter",
              "Events accepted by the broker, by type (custom types together).");
    for (int k = 0; k < MW_TYPE_COUNT; k++)
        s_labelled (buf, "minerwatch_events_total", "type", s_type_slot_name (k),
                    st.events_by_type[k]);

    s_metric_u64 (buf, "minerwatch_active_tasks", "gauge", "Tasks active now.", st.active_tasks);
    s_metric_u64 (buf, "minerwatch_tasks_started_total", "counter", "Tasks started.",
                  st.tasks_started);
    s_family (buf, "minerwatch_tasks_finished_total", "counter",
              "Tasks finished, by how they ended.");
    mw_buf_printf (buf, "minerwatch_tasks_finished_total{status=\"succeeded\"} %" PRIu64 "\n",
                   st.tasks_succeeded);
    mw_buf_printf (buf, "minerwatch_tasks_finished_total{status=\"failed\"} %" PRIu64 "\n",
                   st.tasks_failed);
    mw_buf_printf (buf, "minerwatch_tasks_finished_total{status=\"stale\"} %" PRIu64 "\n",
                   st.tasks_stale);
    mw_buf_printf (buf, "minerwatch_tasks_finished_total{status=\"evicted\"} %" PRIu64 "\n",
                   st.tasks_evicted);
    s_metric_u64 (buf, "minerwatch_tasks_started_late_total", "counter",
                  "Tasks first seen by an event other than task_start.", st.started_late);
    s_metric_u64 (buf, "minerwatch_duplicate_starts_total", "counter",
                  "task_start events for a task already active.", st.duplicate_starts);
    s_metric_u64 (buf, "minerwatch_orphan_events_total", "counter",
                  "Events of a task that had already finished.", st.orphan_events);
    s_metric_u64 (buf, "minerwatch_lost_events_total", "counter",
                  "Events missing by publisher sequence gaps (sum over miners).", st.lost_events);
    s_metric_u64 (buf, "minerwatch_duplicate_events_total", "counter",
                  "Events with a sequence number already seen (sum over miners).",
                  st.duplicate_events);
    s_metric_u64 (buf, "minerwatch_publisher_restarts_total", "counter",
                  "New publisher sessions after a miner's first.", st.publisher_restarts);
    s_metric_u64 (buf, "minerwatch_miners_evicted_total", "counter",
                  "Miner aggregates evicted by the max_miners bound.", st.miners_evicted);
    s_metric_u64 (buf, "minerwatch_validators_evicted_total", "counter",
                  "Validator aggregates evicted by the max_validators bound.",
                  st.validators_evicted);
    s_metric_u64 (buf, "minerwatch_cache_hits_total", "counter", "cache_hit events.",
                  st.cache_hits);
    s_metric_u64 (buf, "minerwatch_errors_total", "counter", "error events plus failed tasks.",
                  st.errors);
    s_metric_double (buf, "minerwatch_success_ratio", "gauge",
                     "Succeeded / (succeeded + failed + stale) tasks, 0..1.", st.success_rate);
    s_metric_double (buf, "minerwatch_cache_hit_ratio", "gauge",
                     "Cache hits per task started, 0..1.", st.cache_hit_rate);
    s_metric_double (buf, "minerwatch_tasks_per_minute", "gauge",
                     "Tasks finished per minute over the last minute.", st.tasks_per_min_1);
    s_histogram (buf, "minerwatch_task_response_seconds",
                 "Response time of finished tasks, seconds.", &st.response);

    size_t miners = mw_state_miner_count (state);
    s_metric_u64 (buf, "minerwatch_miners", "gauge", "Miners with aggregates kept.", miners);
    s_metric_u64 (buf, "minerwatch_validators", "gauge", "Validators with aggregates kept.",
                  mw_state_validator_count (state));
    static const struct {
        const char *name;
        const char *type;
        const char *help;
    } per_miner[] = {
        {"minerwatch_miner_events_total", "counter", "Events accepted, by miner."},
        {"minerwatch_miner_active_tasks", "gauge", "Tasks active now, by miner."},
        {"minerwatch_miner_tasks_succeeded_total", "counter", "Tasks succeeded, by miner."},
        {"minerwatch_miner_tasks_failed_total", "counter", "Tasks failed, by miner."},
        {"minerwatch_miner_tasks_completed_total", "counter",
         "Tasks finished (any status), by miner."},
        {"minerwatch_miner_lost_events_total", "counter",
         "Events missing by sequence gaps, by miner."},
        {"minerwatch_miner_restarts_total", "counter", "Publisher restarts, by miner."},
    };
    for (size_t f = 0; f < sizeof (per_miner) / sizeof (per_miner[0]); f++) {
        s_family (buf, per_miner[f].name, per_miner[f].type, per_miner[f].help);
        for (size_t i = 0; i < miners; i++) {
            const mw_miner_t *m = mw_state_miner (state, i);
            uint64_t values[] = {m->events,    m->active, m->succeeded, m->failed,
                                 m->completed, m->lost,   m->restarts};
            s_labelled (buf, per_miner[f].name, "miner", m->miner, values[f]);
        }
    }

    s_family (buf, "minerwatch_state_limit", "gauge",
              "Bounds of the state (configuration): entries kept.");
    const struct {
        const char *name;
        uint64_t value;
    } limits[] = {
        {"recent_events", cfg->recent_events},
        {"task_history", cfg->task_history},
        {"validator_activity", cfg->validator_activity},
        {"max_active_tasks", cfg->max_active_tasks},
        {"max_validators", cfg->max_validators},
        {"max_miners", cfg->max_miners},
    };
    for (size_t i = 0; i < sizeof (limits) / sizeof (limits[0]); i++)
        mw_buf_printf (buf, "minerwatch_state_limit{bound=\"%s\"} %" PRIu64 "\n", limits[i].name,
                       limits[i].value);
    s_metric_double (buf, "minerwatch_task_timeout_seconds", "gauge",
                     "Silence after which a task without its own timeout is stale.",
                     (double) cfg->task_timeout_ms / 1000.0);
    s_metric_double (buf, "minerwatch_task_timeout_grace_seconds", "gauge",
                     "Added to a task's own timeout_ms before it is stale.",
                     (double) cfg->timeout_grace_ms / 1000.0);
    mw_state_memory_t mem;
    mw_state_memory (state, &mem);
    s_metric_u64 (buf, "minerwatch_state_bytes", "gauge", "Bytes allocated by the state.",
                  mem.bytes);
    s_metric_u64 (buf, "minerwatch_state_alloc_failures_total", "counter",
                  "Allocations of the state that failed.", mem.alloc_failures);
}

static void
s_metrics_gateway (mw_buf_t *buf, const mw_render_gateway_t *gw)
{
    s_metric_u64 (buf, "minerwatch_gateway_broker_up", "gauge",
                  "1 if heartbeats from the broker arrive, else 0.", gw->broker_up ? 1 : 0);
    //  The epoch is a random 64-bit name, not a quantity: a label of an
    //  info metric (a float sample would lose its low bits).
    s_family (buf, "minerwatch_gateway_broker_info", "gauge",
              "The broker the mirror follows: its epoch (16 hex digits) as a label.");
    mw_buf_printf (buf, "minerwatch_gateway_broker_info{epoch=\"%016" PRIx64 "\"} 1\n",
                   gw->broker_epoch);
    if (gw->heartbeat_age_ms != UINT64_MAX)
        s_metric_double (buf, "minerwatch_gateway_heartbeat_age_seconds", "gauge",
                         "Time since the last broker heartbeat.",
                         (double) gw->heartbeat_age_ms / 1000.0);
    s_metric_u64 (buf, "minerwatch_gateway_last_id", "gauge", "Last broker id the mirror applied.",
                  gw->last_id);
    s_metric_u64 (buf, "minerwatch_gateway_resyncs_total", "counter",
                  "Snapshots loaded again (gap, new epoch, broker back).", gw->resyncs);
    s_metric_u64 (buf, "minerwatch_gateway_id_gaps_total", "counter",
                  "Gaps in broker ids seen by the mirror.", gw->gaps);
    s_metric_u64 (buf, "minerwatch_gateway_link_downs_total", "counter",
                  "Times the broker link went down (no heartbeat).", gw->link_downs);
    s_metric_u64 (buf, "minerwatch_gateway_updates_total", "counter",
                  "Broker updates applied by the mirror.", gw->updates);
    s_metric_u64 (buf, "minerwatch_gateway_updates_skipped_total", "counter",
                  "Broker updates not newer than the snapshot, skipped.", gw->updates_skipped);

    s_metric_u64 (buf, "minerwatch_gateway_sse_clients", "gauge", "SSE clients connected.",
                  gw->sse_clients);
    s_metric_u64 (buf, "minerwatch_gateway_sse_clients_max", "gauge",
                  "SSE clients allowed (configuration); more get 503.", gw->sse_clients_max);
    s_metric_u64 (buf, "minerwatch_gateway_sse_connections_total", "counter",
                  "SSE connections accepted.", gw->sse_connections);
    s_metric_u64 (buf, "minerwatch_gateway_sse_rejected_total", "counter",
                  "SSE connections refused with 503 (max clients).", gw->sse_rejected);
    s_metric_u64 (buf, "minerwatch_gateway_sse_resumed_total", "counter",
                  "SSE connections resumed from the ring by Last-Event-ID.", gw->sse_resumed);
    s_metric_u64 (buf, "minerwatch_gateway_sse_snapshots_total", "counter",
                  "Snapshot frames sent to SSE clients.", gw->sse_snapshots);
    s_metric_u64 (buf, "minerwatch_gateway_sse_resets_total", "counter",
                  "reset frames sent to SSE clients.", gw->sse_resets);
    s_metric_u64 (buf, "minerwatch_gateway_sse_fell_behind_total", "counter",
                  "SSE clients that fell off the ring's tail (then reset).", gw->sse_fell_behind);
    s_metric_u64 (buf, "minerwatch_gateway_sse_slow_closed_total", "counter",
                  "SSE clients closed: unsent bytes past the hard cap.", gw->sse_slow_closed);
    s_metric_u64 (buf, "minerwatch_gateway_sse_bytes_total", "counter",
                  "Bytes written to SSE clients.", gw->sse_bytes);
    s_metric_u64 (buf, "minerwatch_gateway_sse_frames_total", "counter",
                  "Event frames written to SSE clients.", gw->sse_frames);
    s_metric_u64 (buf, "minerwatch_gateway_sse_keepalives_total", "counter",
                  "Keepalive comments written to SSE clients.", gw->sse_keepalives);
    s_metric_u64 (buf, "minerwatch_gateway_ring_frames", "gauge", "Frames in the SSE ring.",
                  gw->ring_frames);
    s_metric_u64 (buf, "minerwatch_gateway_ring_bytes", "gauge", "Bytes in the SSE ring.",
                  gw->ring_bytes);
    s_family (buf, "minerwatch_gateway_limit", "gauge", "Bounds of the gateway (configuration).");
    mw_buf_printf (buf, "minerwatch_gateway_limit{bound=\"ring_frames\"} %" PRIu64 "\n",
                   gw->ring_max_frames);
    mw_buf_printf (buf, "minerwatch_gateway_limit{bound=\"ring_bytes\"} %" PRIu64 "\n",
                   gw->ring_max_bytes);
    mw_buf_printf (buf, "minerwatch_gateway_limit{bound=\"client_unsent_bytes\"} %" PRIu64 "\n",
                   gw->client_max_unsent);
    mw_buf_printf (buf, "minerwatch_gateway_limit{bound=\"sse_clients\"} %" PRIu64 "\n",
                   gw->sse_clients_max);
    s_family (buf, "minerwatch_gateway_http_responses_total", "counter",
              "HTTP responses, by status code (\"other\": any code not listed).");
    for (size_t i = 0; i < MW_RENDER_HTTP_CODES; i++) {
        if (mw_render_http_codes[i])
            mw_buf_printf (buf, "minerwatch_gateway_http_responses_total{code=\"%u\"}",
                           mw_render_http_codes[i]);
        else
            mw_buf_puts (buf, "minerwatch_gateway_http_responses_total{code=\"other\"}");
        mw_buf_printf (buf, " %" PRIu64 "\n", gw->http_responses[i]);
    }
    s_metric_u64 (buf, "minerwatch_gateway_status_renders_total", "counter",
                  "Status renders received from the mirror.", gw->http_status_renders);
}

int
mw_render_metrics_broker (mw_buf_t *buf, const mw_render_broker_t *b)
{
    assert (buf);
    assert (b);
    if (!b->known)
        return 0;
    size_t start = buf->len;
    s_metric_u64 (buf, "minerwatch_broker_events_accepted_total", "counter",
                  "Events the broker accepted since it started (its heartbeat).", b->accepted);
    s_family (buf, "minerwatch_broker_events_rejected_total", "counter",
              "Events the broker rejected since it started, by reason (malformed, too_large, "
              "frames, ...).");
    if (b->reason_count == 0)
        mw_buf_printf (buf, "minerwatch_broker_events_rejected_total{reason=\"any\"} %" PRIu64 "\n",
                       b->rejected);
    for (uint32_t i = 0; i < b->reason_count && i < MW_RENDER_REASONS_MAX; i++)
        s_labelled (buf, "minerwatch_broker_events_rejected_total", "reason", b->reason_name[i],
                    b->reason_value[i]);
    s_metric_u64 (buf, "minerwatch_broker_apply_failed_total", "counter",
                  "Accepted events the broker's state could not fold (memory).", b->apply_failed);
    s_metric_u64 (buf, "minerwatch_broker_snapshots_served_total", "counter",
                  "Snapshot transfers the broker completed.", b->snap_served);
    s_metric_u64 (buf, "minerwatch_broker_snapshots_busy_total", "counter",
                  "Snapshot requests the broker refused: too many at once.", b->snap_busy);
    s_metric_u64 (buf, "minerwatch_broker_snapshots_dropped_total", "counter",
                  "Snapshot transfers the broker abandoned.", b->snap_dropped);
    s_metric_u64 (buf, "minerwatch_broker_connections", "gauge",
                  "TCP connections to the broker now, all sockets.", b->connections);
    s_metric_u64 (buf, "minerwatch_broker_disconnects_total", "counter",
                  "Connections the broker saw close.", b->disconnects);
    s_metric_u64 (buf, "minerwatch_broker_auth_failures_total", "counter",
                  "CURVE handshakes the broker refused.", b->auth_failures);
    s_metric_u64 (buf, "minerwatch_broker_save_failures_total", "counter",
                  "State file saves that failed.", b->save_failures);
    if (buf->failed) {
        mw_buf_truncate (buf, start);
        return -1;
    }
    return 0;
}

int
mw_render_metrics (mw_buf_t *buf, const mw_state_t *state, const mw_render_gateway_t *gw)
{
    assert (buf);
    size_t start = buf->len;
    if (state)
        s_metrics_state (buf, state);
    if (gw)
        s_metrics_gateway (buf, gw);
    if (buf->failed) {
        mw_buf_truncate (buf, start);
        return -1;
    }
    return 0;
}
