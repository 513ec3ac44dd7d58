/*  mw_state_codec.c - snapshot of the broker's state: save and load.

    The format (version 1) is one msgpack map with string keys, always in
    this order, so equal states give equal bytes:

      format      "minerwatch-state"
      version     1
      config      map: recent_events, task_history, validator_activity,
                  max_active_tasks, max_validators, max_miners,
                  task_timeout_ms, timeout_grace_ms
      last_id     uint    broker id the state reflects
      now         uint    broker time of the last apply or tick, ms
      serial      uint    next task serial
      counters    map: the mw_stats_t counters by name (S_COUNTERS below)
      by_type     array of MW_TYPE_COUNT uints (index 0: custom types)
      response    histogram: [[19 bucket counts], count, sum]
      rate        [newest bucket number, [91 finish counts]]
      miners      array, first appearance order, of [name, created_id,
                  touch_id, events, active, completed, succeeded, failed,
                  lost, duplicates, restarts, sid, last_seq, last_seen_ms]
      validators  array, first appearance order, of [hotkey, ip, ip_linked,
                  touch_id, tasks, successes, failures, connections,
                  histogram, feedback_count, feedback_sum, last_seen_ms]
      active      array, start order, of tasks
      history     array, oldest first, of tasks
      activity    array, oldest first, of [id, time_ms, kind, miner,
                  task_id, validator_ip, validator_hotkey]
      recent      array, oldest first, of bin: each event as mw_event_encode
                  writes it (so custom keys survive as they came)

    A task is [serial, miner, task_id, prompt, url, validator_ip,
    validator_hotkey, current_step, error, status, flags, start_ms, end_ms,
    last_seen_ms, last_ts_ms, timeout_ms, actions, steps, events,
    response_time, first_id, last_id, miner_inc], flags 1 started_late,
    2 cache_hit, 4 has_response_time, 8 has_start. Floats are float64.
    What is not saved is rebuilt on load: hash indexes, the deadline heap
    (with exact deadlines; see mw_state.c for why expiry is unchanged), the
    LRU lists (from touch_id).

    Loading treats the bytes as hostile: mw_msgpack_check walks the whole
    buffer first (every declared length within the bytes left, nesting
    bounded), then a strict reader takes exactly the types and shapes above,
    checking the bytes left again at each read; the config is checked
    before anything is allocated from it, and every count is held to the
    config's bound. Cost: a snapshot may carry the largest config
    mw_state_config_check allows, and loading it allocates the hash tables
    that config implies (tens of MB of address space per table at 10M,
    zero pages until used), as creating a state with it would.
*/
#include "mw_state_priv.h"

#include <assert.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FORMAT           "minerwatch-state"
#define S_VERSION          1
#define S_MAX_DEPTH        8
#define S_TASK_FIELDS      23
#define S_MINER_FIELDS     14
#define S_VALIDATOR_FIELDS 12
#define S_ACTIVITY_FIELDS  7

#define S_FLAG_STARTED_LATE      1u
#define S_FLAG_CACHE_HIT         2u
#define S_FLAG_HAS_RESPONSE_TIME 4u
#define S_FLAG_HAS_START         8u

//  The counters, by name, in snapshot order.
typedef struct {
    const char *name;
    size_t offset;
} s_counter_t;

// clang-format off
#define S_COUNTER(f) {#f, offsetof (mw_stats_t, f)}
// clang-format on
static const s_counter_t s_counters[] = {
    S_COUNTER (total_events),   S_COUNTER (tasks_started),      S_COUNTER (tasks_succeeded),
    S_COUNTER (tasks_failed),   S_COUNTER (tasks_stale),        S_COUNTER (tasks_evicted),
    S_COUNTER (started_late),   S_COUNTER (duplicate_starts),   S_COUNTER (orphan_events),
    S_COUNTER (lost_events),    S_COUNTER (duplicate_events),   S_COUNTER (publisher_restarts),
    S_COUNTER (miners_evicted), S_COUNTER (validators_evicted), S_COUNTER (cache_hits),
    S_COUNTER (errors),
};
#define S_COUNTER_COUNT (sizeof (s_counters) / sizeof (s_counters[0]))

static const char *s_config_names[] = {"recent_events",    "task_history",    "validator_activity",
                                       "max_active_tasks", "max_validators",  "max_miners",
                                       "task_timeout_ms",  "timeout_grace_ms"};
#define S_CONFIG_COUNT 8

static const char *s_top_names[] = {
    "format",   "version", "config", "last_id",    "now",    "serial",  "counters", "by_type",
    "response", "rate",    "miners", "validators", "active", "history", "activity", "recent"};
#define S_TOP_COUNT 16

//  --------------------------------------------------------------------------
//  Save

typedef struct {
    msgpack_packer pk;
    msgpack_sbuffer sb;
    bool failed; //  a write ran out of memory
} s_wr_t;

static void
s_w_uint (s_wr_t *w, uint64_t v)
{
    w->failed |= msgpack_pack_uint64 (&w->pk, v) != 0;
}

static void
s_w_double (s_wr_t *w, double v)
{
    w->failed |= msgpack_pack_double (&w->pk, v) != 0;
}

static void
s_w_bool (s_wr_t *w, bool v)
{
    w->failed |= (v ? msgpack_pack_true (&w->pk) : msgpack_pack_false (&w->pk)) != 0;
}

static void
s_w_strn (s_wr_t *w, const char *s, size_t len)
{
    w->failed |= msgpack_pack_str (&w->pk, len) != 0;
    w->failed |= msgpack_pack_str_body (&w->pk, s, len) != 0;
}

static void
s_w_str (s_wr_t *w, const char *s)
{
    s_w_strn (w, s, strlen (s));
}

static void
s_w_array (s_wr_t *w, size_t n)
{
    w->failed |= msgpack_pack_array (&w->pk, n) != 0;
}

static void
s_w_map (s_wr_t *w, size_t n)
{
    w->failed |= msgpack_pack_map (&w->pk, n) != 0;
}

static void
s_w_hist (s_wr_t *w, const mw_hist_t *hist)
{
    s_w_array (w, 3);
    s_w_array (w, MW_HIST_BUCKETS);
    for (size_t i = 0; i < MW_HIST_BUCKETS; i++)
        s_w_uint (w, hist->counts[i]);
    s_w_uint (w, hist->count);
    s_w_double (w, hist->sum);
}

static void
s_w_task (s_wr_t *w, const mw_task_rec_t *task)
{
    const mw_task_t *t = &task->pub;
    s_w_array (w, S_TASK_FIELDS);
    s_w_uint (w, task->serial);
    s_w_str (w, t->miner);
    s_w_str (w, t->task_id);
    s_w_str (w, t->prompt);
    s_w_str (w, t->url);
    s_w_str (w, t->validator_ip);
    s_w_str (w, t->validator_hotkey);
    s_w_str (w, t->current_step);
    s_w_str (w, t->error);
    s_w_uint (w, (uint64_t) t->status);
    s_w_uint (w, (t->started_late ? S_FLAG_STARTED_LATE : 0) |
                     (t->cache_hit ? S_FLAG_CACHE_HIT : 0) |
                     (t->has_response_time ? S_FLAG_HAS_RESPONSE_TIME : 0) |
                     (task->has_start ? S_FLAG_HAS_START : 0));
    s_w_uint (w, t->start_ms);
    s_w_uint (w, t->end_ms);
    s_w_uint (w, t->last_seen_ms);
    s_w_uint (w, task->last_ts_ms);
    s_w_uint (w, t->timeout_ms);
    s_w_uint (w, t->actions);
    s_w_uint (w, t->steps);
    s_w_uint (w, t->events);
    s_w_double (w, t->response_time);
    s_w_uint (w, t->first_id);
    s_w_uint (w, t->last_id);
    s_w_uint (w, task->miner_inc);
}

int
mw_state_save (const mw_state_t *self, uint8_t **buf_p, size_t *len_p)
{
    assert (self);
    assert (buf_p);
    assert (len_p);
    *buf_p = NULL;
    *len_p = 0;
    uint8_t *evbuf = (uint8_t *) malloc (MW_MAX_BODY);
    if (!evbuf)
        return -1;
    s_wr_t w;
    msgpack_sbuffer_init (&w.sb);
    msgpack_packer_init (&w.pk, &w.sb, msgpack_sbuffer_write);
    w.failed = false;
    const mw_state_config_t *cfg = &self->cfg;

    s_w_map (&w, S_TOP_COUNT);
    s_w_str (&w, "format");
    s_w_str (&w, S_FORMAT);
    s_w_str (&w, "version");
    s_w_uint (&w, S_VERSION);

    s_w_str (&w, "config");
    s_w_map (&w, S_CONFIG_COUNT);
    const uint64_t config[S_CONFIG_COUNT] = {
        cfg->recent_events,  cfg->task_history, cfg->validator_activity, cfg->max_active_tasks,
        cfg->max_validators, cfg->max_miners,   cfg->task_timeout_ms,    cfg->timeout_grace_ms};
    for (size_t i = 0; i < S_CONFIG_COUNT; i++) {
        s_w_str (&w, s_config_names[i]);
        s_w_uint (&w, config[i]);
    }
    s_w_str (&w, "last_id");
    s_w_uint (&w, self->last_id);
    s_w_str (&w, "now");
    s_w_uint (&w, self->now);
    s_w_str (&w, "serial");
    s_w_uint (&w, self->serial);

    s_w_str (&w, "counters");
    s_w_map (&w, S_COUNTER_COUNT);
    for (size_t i = 0; i < S_COUNTER_COUNT; i++) {
        s_w_str (&w, s_counters[i].name);
        s_w_uint (&w, *(const uint64_t *) ((const char *) &self->st + s_counters[i].offset));
    }
    s_w_str (&w, "by_type");
    s_w_array (&w, MW_TYPE_COUNT);
    for (size_t i = 0; i < MW_TYPE_COUNT; i++)
        s_w_uint (&w, self->st.events_by_type[i]);
    s_w_str (&w, "response");
    s_w_hist (&w, &self->st.response);
    s_w_str (&w, "rate");
    s_w_array (&w, 2);
    s_w_uint (&w, self->rate_head);
    s_w_array (&w, MW_RATE_BUCKETS);
    for (size_t i = 0; i < MW_RATE_BUCKETS; i++)
        s_w_uint (&w, self->rate[i]);

    s_w_str (&w, "miners");
    s_w_array (&w, self->miners.count);
    for (const mw_link_t *node = self->miners.head; node; node = node->next) {
        const mw_miner_rec_t *m = MW_CONTAINER (node, mw_miner_rec_t, order);
        s_w_array (&w, S_MINER_FIELDS);
        s_w_str (&w, m->pub.miner);
        s_w_uint (&w, m->created_id);
        s_w_uint (&w, m->touch_id);
        s_w_uint (&w, m->pub.events);
        s_w_uint (&w, m->pub.active);
        s_w_uint (&w, m->pub.completed);
        s_w_uint (&w, m->pub.succeeded);
        s_w_uint (&w, m->pub.failed);
        s_w_uint (&w, m->pub.lost);
        s_w_uint (&w, m->pub.duplicates);
        s_w_uint (&w, m->pub.restarts);
        s_w_uint (&w, m->pub.sid);
        s_w_uint (&w, m->pub.last_seq);
        s_w_uint (&w, m->pub.last_seen_ms);
    }

    s_w_str (&w, "validators");
    s_w_array (&w, self->validators.count);
    for (const mw_link_t *node = self->validators.head; node; node = node->next) {
        const mw_validator_rec_t *v = MW_CONTAINER (node, mw_validator_rec_t, order);
        s_w_array (&w, S_VALIDATOR_FIELDS);
        s_w_str (&w, v->pub.hotkey);
        s_w_str (&w, v->pub.ip);
        s_w_bool (&w, v->ip_linked);
        s_w_uint (&w, v->touch_id);
        s_w_uint (&w, v->pub.tasks);
        s_w_uint (&w, v->pub.successes);
        s_w_uint (&w, v->pub.failures);
        s_w_uint (&w, v->pub.connections);
        s_w_hist (&w, &v->pub.response);
        s_w_uint (&w, v->pub.feedback_count);
        s_w_double (&w, v->pub.feedback_sum);
        s_w_uint (&w, v->pub.last_seen_ms);
    }

    s_w_str (&w, "active");
    s_w_array (&w, self->active.count);
    for (const mw_link_t *node = self->active.head; node; node = node->next)
        s_w_task (&w, MW_CONTAINER (node, mw_task_rec_t, link));

    size_t cap = cfg->task_history;
    s_w_str (&w, "history");
    s_w_array (&w, self->history_count);
    for (size_t i = self->history_count; i-- > 0;)
        s_w_task (&w, self->history[(self->history_head + cap - 1 - i) % cap]);

    cap = cfg->validator_activity;
    s_w_str (&w, "activity");
    s_w_array (&w, self->activity_count);
    for (size_t i = self->activity_count; i-- > 0;) {
        const mw_activity_t *a = &self->activity[(self->activity_head + cap - 1 - i) % cap]->pub;
        s_w_array (&w, S_ACTIVITY_FIELDS);
        s_w_uint (&w, a->id);
        s_w_uint (&w, a->time_ms);
        s_w_uint (&w, (uint64_t) a->kind);
        s_w_str (&w, a->miner);
        s_w_str (&w, a->task_id);
        s_w_str (&w, a->validator_ip);
        s_w_str (&w, a->validator_hotkey);
    }

    cap = cfg->recent_events;
    s_w_str (&w, "recent");
    s_w_array (&w, self->recent_count);
    for (size_t i = self->recent_count; i-- > 0;) {
        const mw_event_t *ev = self->recent[(self->recent_head + cap - 1 - i) % cap];
        size_t len = 0;
        //  The ring holds only events that encode (mw_state_apply checks),
        //  so a failure here is a broken invariant, reported as an error.
        if (mw_event_encode (ev, evbuf, MW_MAX_BODY, &len, NULL) != MW_OK) {
            w.failed = true;
            break;
        }
        w.failed |= msgpack_pack_bin (&w.pk, len) != 0;
        w.failed |= msgpack_pack_bin_body (&w.pk, evbuf, len) != 0;
    }
    free (evbuf);
    if (w.failed) {
        msgpack_sbuffer_destroy (&w.sb);
        return -1;
    }
    *buf_p = (uint8_t *) w.sb.data;
    *len_p = w.sb.size;
    return 0;
}

//  --------------------------------------------------------------------------
//  Load: a strict reader

typedef struct {
    const uint8_t *start;
    const uint8_t *p;
    const uint8_t *end;
    char *errbuf;
    size_t errbuf_size;
    bool failed;
    char where[64]; //  what is being read, for messages: "miners[3]"
} s_rd_t;

static bool s_fail (s_rd_t *rd, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

//  Record the first failure: "snapshot: <where> at byte N: <what>".
static bool
s_fail (s_rd_t *rd, const char *fmt, ...)
{
    if (rd->failed)
        return false;
    rd->failed = true;
    if (rd->errbuf && rd->errbuf_size) {
        char what[200];
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (what, sizeof (what), fmt, ap);
        va_end (ap);
        //  Out of memory is this side's trouble, not the snapshot's.
        char tail[100] = "";
        if (strncmp (what, "out of memory", 13) != 0)
            snprintf (tail, sizeof (tail),
                      "; the snapshot is corrupt or not a minerwatch state (format %s version %d)",
                      S_FORMAT, S_VERSION);
        snprintf (rd->errbuf, rd->errbuf_size, "snapshot: %s%sat byte %zu: %s%s", rd->where,
                  rd->where[0] ? " " : "", (size_t) (rd->p - rd->start), what, tail);
    }
    return false;
}

static void s_where (s_rd_t *rd, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static void
s_where (s_rd_t *rd, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (rd->where, sizeof (rd->where), fmt, ap);
    va_end (ap);
}

static bool
s_need (s_rd_t *rd, size_t n)
{
    if (rd->failed)
        return false;
    if ((size_t) (rd->end - rd->p) < n)
        return s_fail (rd, "%zu bytes needed, %zu left", n, (size_t) (rd->end - rd->p));
    return true;
}

static uint64_t
s_be (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static bool
s_r_uint (s_rd_t *rd, uint64_t *v)
{
    *v = 0; //  out-parameters are defined on failure too
    if (!s_need (rd, 1))
        return false;
    uint8_t b = *rd->p;
    int n;
    if (b <= 0x7f) {
        *v = b;
        rd->p++;
        return true;
    }
    switch (b) {
        case 0xcc:
            n = 1;
            break;
        case 0xcd:
            n = 2;
            break;
        case 0xce:
            n = 4;
            break;
        case 0xcf:
            n = 8;
            break;
        default:
            return s_fail (rd, "expected an unsigned integer, found type byte 0x%02x", b);
    }
    if (!s_need (rd, 1 + (size_t) n))
        return false;
    *v = s_be (rd->p + 1, n);
    rd->p += 1 + n;
    return true;
}

//  An unsigned integer no larger than max.
static bool
s_r_uint_max (s_rd_t *rd, uint64_t *v, uint64_t max, const char *name)
{
    if (!s_r_uint (rd, v))
        return false;
    if (*v > max)
        return s_fail (rd, "%s is %llu, at most %llu allowed", name, (unsigned long long) *v,
                       (unsigned long long) max);
    return true;
}

static bool
s_r_double (s_rd_t *rd, double *v)
{
    *v = 0;
    if (!s_need (rd, 1))
        return false;
    if (*rd->p != 0xcb)
        return s_fail (rd, "expected a float64, found type byte 0x%02x", *rd->p);
    if (!s_need (rd, 9))
        return false;
    uint64_t bits = s_be (rd->p + 1, 8);
    memcpy (v, &bits, sizeof (*v));
    rd->p += 9;
    return true;
}

//  A float64 that is finite and, if nonneg, not negative.
static bool
s_r_double_ok (s_rd_t *rd, double *v, bool nonneg, const char *name)
{
    if (!s_r_double (rd, v))
        return false;
    if (!isfinite (*v) || (nonneg && *v < 0))
        return s_fail (rd, "%s is %g, expected a finite%s number", name, *v,
                       nonneg ? " non-negative" : "");
    return true;
}

static bool
s_r_bool (s_rd_t *rd, bool *v)
{
    *v = false;
    if (!s_need (rd, 1))
        return false;
    if (*rd->p != 0xc2 && *rd->p != 0xc3)
        return s_fail (rd, "expected a boolean, found type byte 0x%02x", *rd->p);
    *v = *rd->p == 0xc3;
    rd->p++;
    return true;
}

//  Header of a str (0) or bin (1) or array (2) or map (3): its length.
static bool
s_r_header (s_rd_t *rd, int want, uint32_t *len)
{
    static const char *names[] = {"string", "binary", "array", "map"};
    *len = 0;
    if (!s_need (rd, 1))
        return false;
    uint8_t b = *rd->p;
    int n = -1; //  bytes of length after the type byte; -1: not this type
    uint32_t fix = 0;
    switch (want) {
        case 0:
            if (b >= 0xa0 && b <= 0xbf)
                n = 0, fix = b & 0x1f;
            else if (b >= 0xd9 && b <= 0xdb)
                n = 1 << (b - 0xd9);
            break;
        case 1:
            if (b >= 0xc4 && b <= 0xc6)
                n = 1 << (b - 0xc4);
            break;
        case 2:
            if (b >= 0x90 && b <= 0x9f)
                n = 0, fix = b & 0x0f;
            else if (b == 0xdc || b == 0xdd)
                n = b == 0xdc ? 2 : 4;
            break;
        default:
            if (b >= 0x80 && b <= 0x8f)
                n = 0, fix = b & 0x0f;
            else if (b == 0xde || b == 0xdf)
                n = b == 0xde ? 2 : 4;
            break;
    }
    if (n < 0)
        return s_fail (rd, "expected %s, found type byte 0x%02x", names[want], b);
    if (!s_need (rd, 1 + (size_t) n))
        return false;
    *len = n ? (uint32_t) s_be (rd->p + 1, n) : fix;
    rd->p += 1 + n;
    //  Payload bytes (str, bin) must be there; element counts of arrays and
    //  maps need at least one byte each.
    return s_need (rd, *len);
}

static bool
s_r_array (s_rd_t *rd, uint32_t *len)
{
    return s_r_header (rd, 2, len);
}

static bool
s_r_array_of (s_rd_t *rd, uint32_t want)
{
    uint32_t len;
    if (!s_r_array (rd, &len))
        return false;
    if (len != want)
        return s_fail (rd, "array of %u items, expected %u", len, want);
    return true;
}

//  An array of at most max items (the config's bound for it).
static bool
s_r_array_max (s_rd_t *rd, uint32_t *len, uint32_t max, const char *bound)
{
    if (!s_r_array (rd, len))
        return false;
    if (*len > max)
        return s_fail (rd, "%u items, more than the config's %s (%u)", *len, bound, max);
    return true;
}

static bool
s_r_map_of (s_rd_t *rd, uint32_t want)
{
    uint32_t len;
    if (!s_r_header (rd, 3, &len))
        return false;
    if (len != want)
        return s_fail (rd, "map of %u keys, expected %u", len, want);
    return true;
}

//  A string of at most limit bytes without NUL (the state's strings are C
//  strings, cut at NUL when events come in).
static bool
s_r_str (s_rd_t *rd, const char **ptr, size_t *len, size_t limit, const char *name)
{
    uint32_t n;
    *ptr = "";
    *len = 0;
    if (!s_r_header (rd, 0, &n))
        return false;
    if (n > limit)
        return s_fail (rd, "%s is %u bytes, at most %zu allowed", name, n, limit);
    if (memchr (rd->p, 0, n))
        return s_fail (rd, "%s contains a NUL byte", name);
    *ptr = (const char *) rd->p;
    *len = n;
    rd->p += n;
    return true;
}

static bool
s_r_key (s_rd_t *rd, const char *name)
{
    const char *p;
    size_t len;
    if (!s_r_str (rd, &p, &len, 64, "key"))
        return false;
    if (len != strlen (name) || memcmp (p, name, len) != 0)
        return s_fail (rd, "key '%.*s', expected '%s'", (int) len, p, name);
    return true;
}

//  A state string: "" or a new copy.
static bool
s_r_owned (s_rd_t *rd, mw_state_t *state, const char **dst, size_t limit, const char *name)
{
    const char *p;
    size_t len;
    if (!s_r_str (rd, &p, &len, limit, name))
        return false;
    const char *copy = mw_state_priv_str_dup (state, p, len);
    if (!copy)
        return s_fail (rd, "out of memory");
    *dst = copy;
    return true;
}

static bool
s_r_hist (s_rd_t *rd, mw_hist_t *hist)
{
    if (!s_r_array_of (rd, 3) || !s_r_array_of (rd, MW_HIST_BUCKETS))
        return false;
    uint64_t total = 0;
    for (size_t i = 0; i < MW_HIST_BUCKETS; i++) {
        if (!s_r_uint (rd, &hist->counts[i]))
            return false;
        total += hist->counts[i];
    }
    if (!s_r_uint (rd, &hist->count) || !s_r_double_ok (rd, &hist->sum, true, "histogram sum"))
        return false;
    if (total != hist->count)
        return s_fail (rd, "histogram buckets hold %llu, its count says %llu",
                       (unsigned long long) total, (unsigned long long) hist->count);
    return true;
}

//  One task; active says which list it is read for.
static mw_task_rec_t *
s_r_task (s_rd_t *rd, mw_state_t *state, bool active)
{
    uint64_t serial, status, flags, steps, events;
    const char *miner, *task_id;
    size_t mlen, tlen;
    if (!s_r_array_of (rd, S_TASK_FIELDS) || !s_r_uint (rd, &serial) ||
        !s_r_str (rd, &miner, &mlen, MW_MAX_MINER, "miner") ||
        !s_r_str (rd, &task_id, &tlen, MW_MAX_TASK_ID, "task_id"))
        return NULL;
    if (serial >= state->serial) {
        s_fail (rd, "task serial %llu is not below the state's next serial %llu",
                (unsigned long long) serial, (unsigned long long) state->serial);
        return NULL;
    }
    mw_task_rec_t *task = mw_state_priv_task_alloc (state, miner, mlen, task_id, tlen);
    if (!task) {
        s_fail (rd, "out of memory");
        return NULL;
    }
    mw_task_t *t = &task->pub;
    task->serial = serial;
    if (!s_r_owned (rd, state, &t->prompt, MW_MAX_STR, "prompt") ||
        !s_r_owned (rd, state, &t->url, MW_MAX_STR, "url") ||
        !s_r_owned (rd, state, &t->validator_ip, MW_MAX_STR, "validator_ip") ||
        !s_r_owned (rd, state, &t->validator_hotkey, MW_MAX_STR, "validator_hotkey") ||
        !s_r_owned (rd, state, &t->current_step, MW_MAX_STR, "current_step") ||
        !s_r_owned (rd, state, &t->error, MW_MAX_STR, "error") ||
        !s_r_uint_max (rd, &status, MW_TASK_EVICTED, "status") ||
        !s_r_uint_max (rd, &flags, 15, "flags") || !s_r_uint (rd, &t->start_ms) ||
        !s_r_uint (rd, &t->end_ms) || !s_r_uint (rd, &t->last_seen_ms) ||
        !s_r_uint (rd, &task->last_ts_ms) || !s_r_uint (rd, &t->timeout_ms) ||
        !s_r_uint (rd, &t->actions) || !s_r_uint_max (rd, &steps, UINT32_MAX, "steps") ||
        !s_r_uint_max (rd, &events, UINT32_MAX, "events") ||
        !s_r_double_ok (rd, &t->response_time, true, "response_time") ||
        !s_r_uint (rd, &t->first_id) || !s_r_uint (rd, &t->last_id) ||
        !s_r_uint (rd, &task->miner_inc))
        goto err;
    if (active != (status == MW_TASK_ACTIVE)) {
        s_fail (rd, "task status %s in the %s list",
                mw_task_status_name ((mw_task_status_t) status), active ? "active" : "history");
        goto err;
    }
    t->status = (mw_task_status_t) status;
    t->started_late = flags & S_FLAG_STARTED_LATE;
    t->cache_hit = flags & S_FLAG_CACHE_HIT;
    t->has_response_time = flags & S_FLAG_HAS_RESPONSE_TIME;
    task->has_start = flags & S_FLAG_HAS_START;
    t->steps = (uint32_t) steps;
    t->events = (uint32_t) events;
    return task;
err:
    mw_state_priv_task_free (state, task);
    return NULL;
}

static bool
s_r_config (s_rd_t *rd, mw_state_config_t *cfg)
{
    s_where (rd, "config");
    if (!s_r_key (rd, "config") || !s_r_map_of (rd, S_CONFIG_COUNT))
        return false;
    uint64_t v[S_CONFIG_COUNT];
    for (size_t i = 0; i < S_CONFIG_COUNT; i++) {
        uint64_t max = i < 6 ? UINT32_MAX : UINT64_MAX;
        if (!s_r_key (rd, s_config_names[i]) || !s_r_uint_max (rd, &v[i], max, s_config_names[i]))
            return false;
    }
    cfg->recent_events = (uint32_t) v[0];
    cfg->task_history = (uint32_t) v[1];
    cfg->validator_activity = (uint32_t) v[2];
    cfg->max_active_tasks = (uint32_t) v[3];
    cfg->max_validators = (uint32_t) v[4];
    cfg->max_miners = (uint32_t) v[5];
    cfg->task_timeout_ms = v[6];
    cfg->timeout_grace_ms = v[7];
    char msg[200];
    if (mw_state_config_check (cfg, msg, sizeof (msg)) != 0)
        return s_fail (rd, "%s", msg);
    return true;
}

static bool
s_r_miners (s_rd_t *rd, mw_state_t *state)
{
    uint32_t n;
    s_where (rd, "miners");
    if (!s_r_key (rd, "miners") || !s_r_array_max (rd, &n, state->cfg.max_miners, "max_miners"))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        s_where (rd, "miners[%u]", i);
        const char *name;
        size_t len;
        if (!s_r_array_of (rd, S_MINER_FIELDS) || !s_r_str (rd, &name, &len, MW_MAX_MINER, "name"))
            return false;
        bool dup;
        mw_miner_rec_t *m = mw_state_priv_add_miner (state, name, len, &dup);
        if (!m && dup)
            return s_fail (rd, "miner '%.*s' appears twice", (int) len, name);
        if (!m)
            return s_fail (rd, "out of memory");
        mw_miner_t *p = &m->pub;
        if (!s_r_uint (rd, &m->created_id) || !s_r_uint (rd, &m->touch_id) ||
            !s_r_uint (rd, &p->events) || !s_r_uint (rd, &p->active) ||
            !s_r_uint (rd, &p->completed) || !s_r_uint (rd, &p->succeeded) ||
            !s_r_uint (rd, &p->failed) || !s_r_uint (rd, &p->lost) ||
            !s_r_uint (rd, &p->duplicates) || !s_r_uint (rd, &p->restarts) ||
            !s_r_uint (rd, &p->sid) || !s_r_uint (rd, &p->last_seq) ||
            !s_r_uint (rd, &p->last_seen_ms))
            return false;
    }
    return true;
}

static bool
s_r_validators (s_rd_t *rd, mw_state_t *state)
{
    uint32_t n;
    s_where (rd, "validators");
    if (!s_r_key (rd, "validators") ||
        !s_r_array_max (rd, &n, state->cfg.max_validators, "max_validators"))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        s_where (rd, "validators[%u]", i);
        const char *hotkey, *ip;
        size_t hklen, iplen;
        bool linked = false;
        if (!s_r_array_of (rd, S_VALIDATOR_FIELDS) ||
            !s_r_str (rd, &hotkey, &hklen, MW_MAX_STR, "hotkey") ||
            !s_r_str (rd, &ip, &iplen, MW_MAX_STR, "ip") || !s_r_bool (rd, &linked))
            return false;
        if (hklen == 0 && iplen == 0)
            return s_fail (rd, "a validator with neither hotkey nor IP");
        if (linked && iplen == 0)
            return s_fail (rd, "an empty IP marked as linked");
        bool dup;
        mw_validator_rec_t *v =
            mw_state_priv_add_validator (state, hotkey, hklen, ip, iplen, linked, &dup);
        if (!v)
            return s_fail (rd, "%s",
                           dup ? "a hotkey or a linked IP appears twice" : "out of memory");
        mw_validator_t *p = &v->pub;
        if (!s_r_uint (rd, &v->touch_id) || !s_r_uint (rd, &p->tasks) ||
            !s_r_uint (rd, &p->successes) || !s_r_uint (rd, &p->failures) ||
            !s_r_uint (rd, &p->connections) || !s_r_hist (rd, &p->response) ||
            !s_r_uint (rd, &p->feedback_count) ||
            !s_r_double_ok (rd, &p->feedback_sum, false, "feedback_sum") ||
            !s_r_uint (rd, &p->last_seen_ms))
            return false;
    }
    return mw_state_priv_rebuild_lru (state) == 0 || s_fail (rd, "out of memory");
}

static bool
s_r_tasks (s_rd_t *rd, mw_state_t *state, bool active)
{
    const char *name = active ? "active" : "history";
    uint32_t n;
    s_where (rd, "%s", name);
    if (!s_r_key (rd, name) ||
        !s_r_array_max (rd, &n, active ? state->cfg.max_active_tasks : state->cfg.task_history,
                        active ? "max_active_tasks" : "task_history"))
        return false;
    uint64_t last_serial = 0;
    for (uint32_t i = 0; i < n; i++) {
        s_where (rd, "%s[%u]", name, i);
        mw_task_rec_t *task = s_r_task (rd, state, active);
        if (!task)
            return false;
        //  Start order is serial order: a loaded table iterates, evicts and
        //  breaks deadline ties exactly as the saved one did.
        if (active && i > 0 && task->serial <= last_serial) {
            mw_state_priv_task_free (state, task);
            return s_fail (rd, "active tasks not in start (serial) order");
        }
        last_serial = task->serial;
        int rc = active ? mw_state_priv_add_active (state, task)
                        : mw_state_priv_add_history (state, task);
        if (rc != 0) {
            mw_state_priv_task_free (state, task);
            return s_fail (rd, "task appears twice, or out of memory");
        }
    }
    return true;
}

static bool
s_r_activity (s_rd_t *rd, mw_state_t *state)
{
    uint32_t n;
    s_where (rd, "activity");
    if (!s_r_key (rd, "activity") ||
        !s_r_array_max (rd, &n, state->cfg.validator_activity, "validator_activity"))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        s_where (rd, "activity[%u]", i);
        uint64_t id, time_ms, kind;
        const char *p[4];
        size_t len[4];
        if (!s_r_array_of (rd, S_ACTIVITY_FIELDS) || !s_r_uint (rd, &id) ||
            !s_r_uint (rd, &time_ms) || !s_r_uint_max (rd, &kind, MW_TYPE_COUNT - 1, "kind") ||
            !s_r_str (rd, &p[0], &len[0], MW_MAX_MINER, "miner") ||
            !s_r_str (rd, &p[1], &len[1], MW_MAX_TASK_ID, "task_id") ||
            !s_r_str (rd, &p[2], &len[2], MW_MAX_STR, "validator_ip") ||
            !s_r_str (rd, &p[3], &len[3], MW_MAX_STR, "validator_hotkey"))
            return false;
        mw_str_t strs[4];
        for (int k = 0; k < 4; k++)
            strs[k] = (mw_str_t){p[k], (uint32_t) len[k]};
        if (mw_state_priv_add_activity (state, id, time_ms, (mw_type_t) kind, strs) != 0)
            return s_fail (rd, "out of memory");
    }
    return true;
}

static bool
s_r_recent (s_rd_t *rd, mw_state_t *state)
{
    uint32_t n;
    s_where (rd, "recent");
    if (!s_r_key (rd, "recent") ||
        !s_r_array_max (rd, &n, state->cfg.recent_events, "recent_events"))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        s_where (rd, "recent[%u]", i);
        uint32_t len;
        if (!s_r_header (rd, 1, &len))
            return false;
        mw_event_t ev;
        mw_event_init (&ev, MW_TYPE_CUSTOM);
        char msg[160];
        int rc = mw_event_decode (&ev, NULL, 0, rd->p, len, msg, sizeof (msg));
        if (rc != MW_OK)
            return s_fail (rd, "event does not decode: %s", msg);
        if (!(ev.has & MW_HAS_ID)) {
            mw_event_release (&ev);
            return s_fail (rd, "event without its broker id");
        }
        rd->p += len;
        if (mw_state_priv_add_recent (state, &ev) != 0)
            return s_fail (rd, "out of memory");
    }
    return true;
}

mw_state_t *
mw_state_load (const uint8_t *buf, size_t len, char *errbuf, size_t errbuf_size)
{
    s_rd_t rd = {buf, buf, buf ? buf + len : buf, errbuf, errbuf_size, false, ""};
    if (errbuf && errbuf_size)
        errbuf[0] = 0;
    if (!buf || len == 0) {
        s_fail (&rd, "empty snapshot");
        return NULL;
    }
    //  Walk everything before trusting any count in it.
    size_t size = 0;
    int rc = mw_msgpack_check (buf, len, S_MAX_DEPTH, &size);
    if (rc != MW_OK) {
        s_fail (&rd, "%s",
                rc == MW_ERR_TOO_DEEP ? "nested deeper than a snapshot is"
                                      : "not valid msgpack: a declared length runs past the end "
                                        "(truncated?) or a byte is not msgpack");
        return NULL;
    }
    if (size != len) {
        rd.p = buf + size;
        s_fail (&rd, "%zu bytes after the end of the state", len - size);
        return NULL;
    }

    mw_state_t *state = NULL;
    const char *format;
    size_t flen;
    uint64_t version;
    if (!s_r_map_of (&rd, S_TOP_COUNT) || !s_r_key (&rd, s_top_names[0]) ||
        !s_r_str (&rd, &format, &flen, 64, "format"))
        goto err;
    if (flen != strlen (S_FORMAT) || memcmp (format, S_FORMAT, flen) != 0) {
        s_fail (&rd, "format '%.*s', expected '%s'", (int) flen, format, S_FORMAT);
        goto err;
    }
    if (!s_r_key (&rd, s_top_names[1]) || !s_r_uint (&rd, &version))
        goto err;
    if (version != S_VERSION) {
        s_fail (&rd, "version %llu; this broker reads version %d", (unsigned long long) version,
                S_VERSION);
        goto err;
    }
    mw_state_config_t cfg;
    if (!s_r_config (&rd, &cfg))
        goto err;
    state = mw_state_new (&cfg);
    if (!state) {
        s_fail (&rd, "out of memory creating a state for this config");
        goto err;
    }
    s_where (&rd, "header");
    if (!s_r_key (&rd, "last_id") || !s_r_uint (&rd, &state->last_id) || !s_r_key (&rd, "now") ||
        !s_r_uint (&rd, &state->now) || !s_r_key (&rd, "serial") || !s_r_uint (&rd, &state->serial))
        goto err;
    s_where (&rd, "counters");
    if (!s_r_key (&rd, "counters") || !s_r_map_of (&rd, S_COUNTER_COUNT))
        goto err;
    for (size_t i = 0; i < S_COUNTER_COUNT; i++)
        if (!s_r_key (&rd, s_counters[i].name) ||
            !s_r_uint (&rd, (uint64_t *) ((char *) &state->st + s_counters[i].offset)))
            goto err;
    s_where (&rd, "by_type");
    if (!s_r_key (&rd, "by_type") || !s_r_array_of (&rd, MW_TYPE_COUNT))
        goto err;
    for (size_t i = 0; i < MW_TYPE_COUNT; i++)
        if (!s_r_uint (&rd, &state->st.events_by_type[i]))
            goto err;
    s_where (&rd, "response");
    if (!s_r_key (&rd, "response") || !s_r_hist (&rd, &state->st.response))
        goto err;
    s_where (&rd, "rate");
    if (!s_r_key (&rd, "rate") || !s_r_array_of (&rd, 2) || !s_r_uint (&rd, &state->rate_head) ||
        !s_r_array_of (&rd, MW_RATE_BUCKETS))
        goto err;
    for (size_t i = 0; i < MW_RATE_BUCKETS; i++)
        if (!s_r_uint (&rd, &state->rate[i]))
            goto err;
    if (!s_r_miners (&rd, state) || !s_r_validators (&rd, state) || !s_r_tasks (&rd, state, true) ||
        !s_r_tasks (&rd, state, false) || !s_r_activity (&rd, state) || !s_r_recent (&rd, state))
        goto err;
    if (rd.p != rd.end) {
        s_where (&rd, "end");
        s_fail (&rd, "bytes left after the last key");
        goto err;
    }
    return state;
err:
    if (!rd.failed)
        s_fail (&rd, "unreadable");
    mw_state_destroy (&state);
    return NULL;
}
