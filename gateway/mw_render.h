/*  mw_render.h - what the gateway serves, rendered from the state.

    Pure renderers from an mw_state_t into an mw_buf_t: the polling JSON of
    /api/dashboard/live/status (which is also the SSE `snapshot` payload),
    and the Prometheus text exposition of /metrics. No clocks (times come
    from the state, which has them from the broker), no I/O.

    Rendered once, served many times. The gateway renders the status JSON
    once per state change with *every* event of the recent ring in
    `recent_events`, and records where each event sits in the output (an
    mw_render_index_t). Because recent_events is newest first and broker
    ids decrease along it, the answer to any `?since=&limit=` (and the SSE
    snapshot, which is the status with the snapshot's event count) is three
    byte ranges of that one render: everything before the first event, a
    run of whole events, everything from the closing bracket on
    (mw_render_select). No request renders anything.

    JSON conventions (docs/http-api.md): times are broker-clock milliseconds
    since the epoch (numbers, `_time` / `_ms` names) with an ISO-8601 twin
    where a person reads them; `sid` values are strings of decimal digits,
    because they are random 64-bit numbers and JavaScript keeps only 53
    bits; counts are numbers.

    Metrics are split the same way: mw_render_metrics writes the state's
    part (rendered once per change) and/or the gateway's own counters
    (cheap, rendered per request), so that the HTTP thread never touches
    the state.
*/
#ifndef MW_RENDER_H_INCLUDED
#define MW_RENDER_H_INCLUDED

#include "mw_json.h"
#include "mw_state.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  recent_events in a status answer when the request gives no ?limit=.
#define MW_RENDER_LIMIT_DEFAULT 50

//  Where the recent events sit in a status render. The events are in
//  recent-ring order (newest first); event i is the bytes
//  [i ? ends[i-1] + 1 : begin, ends[i]) of the render (a ',' separates
//  two events). end is the offset of the ']' that closes the array.
typedef struct {
    size_t start;  //  offset of the render's first byte in its buffer
    size_t begin;  //  offset just after the '[' of recent_events
    size_t end;    //  offset of the matching ']'
    size_t count;  //  events rendered
    uint64_t *ids; //  broker id of each event, decreasing
    size_t *ends;  //  offset just after each event
    size_t cap;    //  allocated entries of ids and ends
} mw_render_index_t;

//  Initialize an empty index (no allocation).
void mw_render_index_init (mw_render_index_t *self);

//  Free what an index holds; it stays usable (empty).
void mw_render_index_release (mw_render_index_t *self);

//  Options of a status render. Zero-filled means: no epoch key.
typedef struct {
    uint64_t epoch; //  broker epoch, reported as "epoch": 16 hex digits (0: key left out)
} mw_render_opts_t;

//  Append the status JSON of state to buf (one line, no newline), with
//  every event of the recent ring, and fill index (if not NULL) with where
//  the events are. Return 0, or -1 if memory ran out (the buffer is then
//  cut back to where it was).
int mw_render_status (mw_buf_t *buf, const mw_state_t *state, const mw_render_opts_t *opts,
                      mw_render_index_t *index);

//  A byte range [off, off + len) of a render.
typedef struct {
    size_t off;
    size_t len;
} mw_render_range_t;

//  Cut a status render down to the events with id > since (0: all), at
//  most limit of them (newest first): fill range[0..2] with the three byte
//  ranges whose concatenation is the answer (the middle one may be empty)
//  and return the number of events kept. total_len is the offset just
//  after the render's last byte (the buffer's length if nothing followed).
size_t mw_render_select (const mw_render_index_t *index, size_t total_len, uint64_t since,
                         size_t limit, mw_render_range_t range[3]);

//  The HTTP status codes the gateway counts one by one; the last slot,
//  code 0, counts any other.
#define MW_RENDER_HTTP_CODES 12
extern const unsigned mw_render_http_codes[MW_RENDER_HTTP_CODES];

//  Return the slot of an HTTP status code in mw_render_http_codes.
size_t mw_render_http_slot (unsigned code);

//  Counters of the gateway itself, for /metrics and /healthz. Filled by the
//  HTTP server (its own fields) and the mirror (link fields).
typedef struct {
    //  SSE fan-out
    uint64_t sse_clients;     //  connected now
    uint64_t sse_clients_max; //  configured maximum
    uint64_t sse_connections; //  accepted since start
    uint64_t sse_rejected;    //  refused with 503 (max clients)
    uint64_t sse_resumed;     //  connections resumed from the ring (no snapshot)
    uint64_t sse_snapshots;   //  snapshot frames sent
    uint64_t sse_resets;      //  `reset` frames sent (resync, or fell off the ring)
    uint64_t sse_fell_behind; //  of which: client fell off the ring's tail
    uint64_t sse_slow_closed; //  clients closed: unsent bytes past the hard cap
    uint64_t sse_bytes;       //  bytes written to SSE clients
    uint64_t sse_frames;      //  event frames written to SSE clients
    uint64_t sse_keepalives;  //  keepalive comments written
    //  the shared ring of frames
    uint64_t ring_frames;     //  frames held now
    uint64_t ring_bytes;      //  bytes held now
    uint64_t ring_max_frames; //  configured bounds
    uint64_t ring_max_bytes;
    uint64_t client_max_unsent; //  hard cap of one client's unsent bytes
    //  HTTP: responses by status code, indexed as mw_render_http_codes
    uint64_t http_responses[MW_RENDER_HTTP_CODES];
    uint64_t http_status_renders; //  status renders received from the mirror
    //  the broker link (mirror)
    bool broker_up; //  heartbeats arriving
    uint64_t broker_epoch;
    uint64_t last_id;          //  last broker id applied
    uint64_t heartbeat_age_ms; //  since the last heartbeat; UINT64_MAX if none yet
    uint64_t resyncs;          //  snapshots loaded after the first
    uint64_t gaps;             //  gaps in broker ids seen
    uint64_t link_downs;       //  times the link went down
    uint64_t updates;          //  updates applied
    uint64_t updates_skipped;  //  updates not newer than the snapshot
} mw_render_gateway_t;

//  Append Prometheus text exposition (format 0.0.4): the state's part if
//  state is not NULL, the gateway's if gw is not NULL. Every name starts
//  with minerwatch_; label values are escaped and made valid UTF-8.
//  Return 0, or -1 if memory ran out (the buffer is cut back).
int mw_render_metrics (mw_buf_t *buf, const mw_state_t *state, const mw_render_gateway_t *gw);

//  The broker's own counters, from its heartbeats (docs/protocol.md): for
//  /metrics. Reason names come from the wire: they are escaped as labels.
#define MW_RENDER_REASONS_MAX 32
typedef struct {
    bool known;        //  a heartbeat was read
    uint64_t accepted; //  events accepted since the broker started
    uint64_t rejected; //  events rejected (sum of the reasons)
    uint64_t apply_failed;
    uint64_t snap_served;
    uint64_t snap_busy;
    uint64_t snap_dropped;
    uint64_t connections; //  TCP connections now
    uint64_t disconnects;
    uint64_t auth_failures;
    uint64_t save_failures;
    uint32_t reason_count;
    char reason_name[MW_RENDER_REASONS_MAX][32];
    uint64_t reason_value[MW_RENDER_REASONS_MAX];
} mw_render_broker_t;

//  Append the broker's counters as Prometheus text (minerwatch_broker_*);
//  nothing if none is known yet. Return 0, or -1 if memory ran out (the
//  buffer is cut back).
int mw_render_metrics_broker (mw_buf_t *buf, const mw_render_broker_t *broker);

//  Append the /healthz JSON (one line): "status" ("ok" while the broker
//  link is up, else "degraded"), the broker link, the last heartbeat's age,
//  the last id, the epoch and the SSE client count. Return 0, or -1 if
//  memory ran out (the buffer is cut back).
int mw_render_health (mw_buf_t *buf, const mw_render_gateway_t *gw);

//  Append s (len bytes) as a Prometheus label value, without quotes:
//  backslash, double quote and line feed escaped, invalid UTF-8 replaced
//  by U+FFFD. Return 0, or -1 if the buffer failed.
int mw_render_label (mw_buf_t *buf, const char *s, size_t len);

#ifdef __cplusplus
}
#endif

#endif
