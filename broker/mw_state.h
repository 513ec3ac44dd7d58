/*  mw_state.h - the broker's state: a pure fold of events.

    state = fold (apply, events). The broker applies every accepted event,
    and a tick every second, each with a broker id; a gateway loads a
    snapshot (the state and the last id it reflects) and applies the same
    updates after it, so its mirror equals the broker's state byte for byte
    (mw_state_save of both gives the same bytes).

    Pure: no sockets, no clock reads (time is an argument, in milliseconds
    since the epoch on the broker's clock), no randomness, and every
    structure is bounded by mw_state_config_t. Iteration orders are
    deterministic (insertion order, never hash order).

    Objects returned by the readers below are owned by the state and valid
    until the next apply, tick or destroy.
*/
#ifndef MW_STATE_H_INCLUDED
#define MW_STATE_H_INCLUDED

#include "mw_event.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Bounds and timeouts. Defaults follow the original monitor.
typedef struct {
    uint32_t recent_events;      //  ring of recent events (1000)
    uint32_t task_history;       //  ring of finished tasks (500)
    uint32_t validator_activity; //  ring of validator interactions (200)
    uint32_t max_active_tasks;   //  active-task table cap; the oldest is evicted (10000)
    uint32_t max_validators;     //  validator aggregates kept; least recently seen evicted (1000)
    uint32_t max_miners;         //  miner aggregates kept; least recently seen evicted (1000)
    uint64_t task_timeout_ms;    //  silence before a task without timeout_ms is stale (300000)
    uint64_t timeout_grace_ms;   //  added to a task's own timeout_ms (30000)
} mw_state_config_t;

//  Fill cfg with the defaults above.
void
    mw_state_config_default (mw_state_config_t *cfg);

//  Check a configuration: every bound >= 1 and <= 10,000,000; timeouts >= 1 s.
//  Return 0, or -1 with a message in errbuf.
int
    mw_state_config_check (const mw_state_config_t *cfg, char *errbuf, size_t errbuf_size);

typedef enum {
    MW_TASK_ACTIVE = 0,
    MW_TASK_SUCCEEDED, //  task_complete with success = true
    MW_TASK_FAILED,    //  task_complete with success = false
    MW_TASK_STALE,     //  silent past its timeout
    MW_TASK_EVICTED    //  pushed out of a full active table
} mw_task_status_t;

//  Return "active", "succeeded", "failed", "stale" or "evicted".
const char *
    mw_task_status_name (mw_task_status_t status);

//  A task, active or finished. Strings are NUL-terminated, owned by the
//  state, "" when unknown.
typedef struct {
    const char *miner;
    const char *task_id;
    const char *prompt;
    const char *url;
    const char *validator_ip;
    const char *validator_hotkey;
    const char *current_step;
    const char *error;
    mw_task_status_t status;
    bool started_late;        //  first event was not task_start
    bool cache_hit;           //  a cache_hit event was seen
    bool has_response_time;   //  response_time is known
    uint64_t start_ms;        //  publisher time of task_start (or of the first event), ms
    uint64_t end_ms;          //  publisher time of the end (0 while active), ms
    uint64_t last_seen_ms;    //  broker time of the last event of this task
    uint64_t timeout_ms;      //  the task's own timeout, 0 if none
    uint64_t actions;         //  actions generated
    uint32_t steps;           //  task_step events seen
    uint32_t events;          //  events of this task
    double response_time;     //  seconds: from task_complete, else end - start
    uint64_t first_id;        //  broker id of its first event
    uint64_t last_id;         //  broker id of its last event
} mw_task_t;

//  One validator interaction (task_start, validator_connection,
//  task_feedback that names a validator).
typedef struct {
    uint64_t id;       //  broker id of the event
    uint64_t time_ms;  //  broker time
    mw_type_t kind;
    const char *miner;
    const char *task_id;
    const char *validator_ip;
    const char *validator_hotkey;
} mw_activity_t;

//  Response-time histogram: log-spaced bucket upper bounds in seconds
//  (1-2-5 from 1 ms to 500 s), then +Inf.
#define MW_HIST_BUCKETS 19
extern const double mw_hist_bounds[MW_HIST_BUCKETS - 1];

typedef struct {
    uint64_t counts[MW_HIST_BUCKETS]; //  per bucket (not cumulative)
    uint64_t count;
    double sum;                       //  seconds
} mw_hist_t;

//  Return the q-quantile (0..1) of a histogram, interpolated within its
//  bucket; 0 when empty.
double
    mw_hist_quantile (const mw_hist_t *hist, double q);

//  Aggregates of one validator, keyed by hotkey when known, else by IP.
typedef struct {
    const char *hotkey;
    const char *ip;
    uint64_t tasks;
    uint64_t successes;
    uint64_t failures;
    uint64_t connections;
    mw_hist_t response;     //  response times of its finished tasks
    uint64_t feedback_count;
    double feedback_sum;    //  mean score = feedback_sum / feedback_count
    uint64_t last_seen_ms;  //  broker time
} mw_validator_t;

//  Aggregates of one miner.
typedef struct {
    const char *miner;
    uint64_t events;
    uint64_t active;       //  tasks active now
    uint64_t completed;    //  tasks finished (any status)
    uint64_t succeeded;
    uint64_t failed;
    uint64_t lost;         //  events missing by seq gaps
    uint64_t duplicates;   //  events with a seq already seen (<= last)
    uint64_t restarts;     //  new publisher sessions after the first
    uint64_t sid;          //  current publisher session
    uint64_t last_seq;
    uint64_t last_seen_ms; //  broker time
} mw_miner_t;

//  Headline numbers. Counters are since the state began (they survive a
//  snapshot and a restart with a state file).
typedef struct {
    uint64_t last_id;
    uint64_t total_events;
    uint64_t events_by_type[MW_TYPE_COUNT]; //  index MW_TYPE_CUSTOM counts custom types
    uint64_t active_tasks;
    uint64_t tasks_started;
    uint64_t tasks_succeeded;
    uint64_t tasks_failed;
    uint64_t tasks_stale;
    uint64_t tasks_evicted;
    uint64_t started_late;        //  tasks created by an event other than task_start
    uint64_t duplicate_starts;    //  task_start for a task already active
    uint64_t orphan_events;       //  events after a task finished (e.g. duplicate complete)
    uint64_t lost_events;         //  sum over miners
    uint64_t duplicate_events;    //  sum over miners
    uint64_t publisher_restarts;  //  sum over miners
    uint64_t miners_evicted;
    uint64_t validators_evicted;
    uint64_t cache_hits;
    uint64_t errors;              //  error events + failed tasks
    double cache_hit_rate;        //  cache hits per task started, 0..1
    double success_rate;          //  succeeded / (succeeded + failed + stale), 0..1
    double tasks_per_min_1;       //  finished tasks per minute over the last 1, 5, 15 min
    double tasks_per_min_5;
    double tasks_per_min_15;
    double p50, p95, p99;         //  response time quantiles, seconds
    mw_hist_t response;
} mw_stats_t;

typedef struct _mw_state_t mw_state_t;

//  Create an empty state with cfg (NULL: defaults). Return NULL if cfg fails
//  mw_state_config_check or memory runs out.
mw_state_t *
    mw_state_new (const mw_state_config_t *cfg);

//  Destroy the state and null the pointer.
void
    mw_state_destroy (mw_state_t **self_p);

//  Return the configuration in force.
const mw_state_config_t *
    mw_state_config (const mw_state_t *self);

//  Fold one accepted event in. ev must carry its broker id (has & MW_HAS_ID,
//  greater than the last id applied); now_ms is the broker time at which it
//  was accepted (its broker_ts). Out-of-order and duplicate events are
//  handled and counted. Return 0, or -1 if the id does not increase (the
//  event is ignored) or memory runs out (counted, state stays consistent).
//  An event the codec would refuse (a required key missing, say; never one
//  mw_event_decode produced) is also ignored with -1, so that every event
//  the state keeps can be saved in a snapshot.
int
    mw_state_apply (mw_state_t *self, const mw_event_t *ev, uint64_t now_ms);

//  Advance time: tasks silent past their timeout move to history as stale,
//  rate windows roll. id is the broker id of this tick (greater than the
//  last id). Return the number of tasks expired, or -1 if id does not increase.
int
    mw_state_tick (mw_state_t *self, uint64_t now_ms, uint64_t id);

//  Return the last broker id applied (event or tick), 0 for a new state.
uint64_t
    mw_state_last_id (const mw_state_t *self);

//  Return the broker time of the last apply or tick, 0 for a new state.
uint64_t
    mw_state_now (const mw_state_t *self);

//  Readers. Counts, then items by index. Indexed reads of the lists
//  (active tasks, validators, miners) remember where they stopped, so a walk
//  over 0..count-1 costs O(1) a step; that makes every call on a state,
//  readers included, one thread at a time.
//  Recent events, index 0 = newest.
size_t
    mw_state_recent_count (const mw_state_t *self);
const mw_event_t *
    mw_state_recent (const mw_state_t *self, size_t index);

//  Active tasks, index 0 = oldest start.
size_t
    mw_state_active_count (const mw_state_t *self);
const mw_task_t *
    mw_state_active (const mw_state_t *self, size_t index);

//  Look up an active task; NULL if none.
const mw_task_t *
    mw_state_find_task (const mw_state_t *self, const char *miner, const char *task_id);

//  Finished tasks, index 0 = most recently finished.
size_t
    mw_state_history_count (const mw_state_t *self);
const mw_task_t *
    mw_state_history (const mw_state_t *self, size_t index);

//  Validator interactions, index 0 = newest.
size_t
    mw_state_activity_count (const mw_state_t *self);
const mw_activity_t *
    mw_state_activity (const mw_state_t *self, size_t index);

//  Validators and miners, in order of first appearance.
size_t
    mw_state_validator_count (const mw_state_t *self);
const mw_validator_t *
    mw_state_validator (const mw_state_t *self, size_t index);
size_t
    mw_state_miner_count (const mw_state_t *self);
const mw_miner_t *
    mw_state_miner (const mw_state_t *self, size_t index);

//  Fill stats with the headline numbers (rates as of the state's now).
void
    mw_state_stats (const mw_state_t *self, mw_stats_t *stats);

//  Memory the state holds, for /metrics and the bounds tests. The hash
//  tables' capacities are fixed at mw_state_new (a power of two >= twice
//  their bound) and never change.
typedef struct {
    size_t bytes;                 //  bytes allocated by the state (requested sizes)
    size_t task_table_slots;      //  capacity of the active-task hash table
    size_t task_table_used;       //  entries in it (= active tasks)
    size_t history_table_slots;   //  finished tasks by (miner, task_id)
    size_t validator_table_slots; //  each of the two validator tables (hotkey, IP)
    size_t miner_table_slots;
    uint64_t alloc_failures;      //  allocations that failed (apply returned -1)
} mw_state_memory_t;

//  Fill mem with what the state holds now.
void
    mw_state_memory (const mw_state_t *self, mw_state_memory_t *mem);

//  Serialize the whole state (config, last id, now, every structure and
//  counter) as msgpack into a new buffer (*buf_p, *len_p; free with free()).
//  Deterministic: equal states give equal bytes. Return 0 or -1.
int
    mw_state_save (const mw_state_t *self, uint8_t **buf_p, size_t *len_p);

//  Rebuild a state from mw_state_save bytes. Input is hostile (a state file
//  or a network snapshot): checked with mw_msgpack_check, every count
//  bounded by the config it carries (itself checked), nothing read past the
//  buffer. Return the state, or NULL with a message in errbuf.
mw_state_t *
    mw_state_load (const uint8_t *buf, size_t len, char *errbuf, size_t errbuf_size);

#ifdef __cplusplus
}
#endif

#endif
