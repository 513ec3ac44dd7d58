/*  mw_publisher.h - the publisher a miner embeds (libminerwatch).

    A publisher owns one ZeroMQ socket and sends each event as two frames
    (topic, msgpack body) with ZMQ_DONTWAIT: it never blocks the miner,
    whether a broker is up, down or slow. Any thread may publish; calls are
    serialized by an internal mutex, so sequence numbers leave in order. A
    thread of the publisher wakes once a second to read the socket's
    notices when the miner is idle, so that their memory stays bounded.

    An event that no subscriber can receive (no broker connected, or a
    subscriber's queue at the high-water mark) is not sent and is counted in
    `dropped`; the call returns -1. Over-long strings are truncated to the
    protocol limits, never rejected, and counted in `truncated`.

    Optional arguments: NULL for a string, 0 for timeout_ms, a negative
    action_count, and MW_ABSENT (NaN) for a float leave the key out.

    A broker started with --curve-secret accepts only CURVE clients that
    know its public key: create the publisher with mw_publisher_new_curve.
    A connection counts as live only once its handshake (CURVE or plain)
    completed; until then, and when the handshake fails (a wrong key, a
    client key the broker does not list), events are dropped and counted,
    exactly as with no broker at all.
*/
#ifndef MW_PUBLISHER_H_INCLUDED
#define MW_PUBLISHER_H_INCLUDED

#include "mw_event.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MW_ABSENT (__builtin_nan (""))

//  Defaults (mw_publisher_new).
#define MW_PUBLISHER_SNDHWM 10000  //  events queued per subscriber before dropping
#define MW_PUBLISHER_LINGER_MS 200 //  time to flush queued events at destroy

typedef struct _mw_publisher_t mw_publisher_t;

//  Create a publisher for miner name (truncated to MW_MAX_MINER) on
//  endpoints: a comma-separated list, ">tcp://host:port" connects,
//  "@tcp://host:port" binds, no prefix connects. A new random session id is
//  drawn. Return NULL with a message on stderr if an endpoint is invalid
//  or cannot be bound.
mw_publisher_t *
    mw_publisher_new (const char *endpoints, const char *miner);

//  Same as mw_publisher_new, with the send high-water mark (events queued
//  per subscriber, > 0) and the linger at destroy in milliseconds (>= 0).
mw_publisher_t *
    mw_publisher_new_opts (const char *endpoints, const char *miner, int sndhwm, int linger_ms);

//  Same as mw_publisher_new_opts, as a CURVE client of a broker started with
//  --curve-secret: everything it sends is encrypted. server_key is the
//  broker's public key: 40 characters of Z85, or the path of the broker's
//  certificate file (what `minerwatch keygen` wrote; see mw_curve.h); NULL
//  makes a plain publisher, as mw_publisher_new_opts. client_cert is NULL
//  for a new key pair made here (enough for a broker that allows any
//  client), or the path of this miner's secret certificate file (the
//  `_secret` file of `minerwatch keygen`, read without czmq) when the
//  broker lists its clients (--curve-clients). Return NULL with a message
//  on stderr naming the file and what is wrong with it, or as
//  mw_publisher_new_opts.
mw_publisher_t *
    mw_publisher_new_curve (const char *endpoints, const char *miner, int sndhwm, int linger_ms,
                            const char *server_key, const char *client_cert);

//  Destroy the publisher (waiting at most its linger) and null the pointer.
void
    mw_publisher_destroy (mw_publisher_t **self_p);

//  Wait up to timeout_ms for at least one subscriber to be connected and
//  subscribed, so that a short-lived tool's first event is not dropped.
//  This call blocks: it is for tools and tests, not a miner's hot path.
//  Return 0 when a subscriber is there, -1 on timeout.
int
    mw_publisher_wait_ready (mw_publisher_t *self, int timeout_ms);

//  task_start: a task received from a validator. Return 0 if sent, -1 if
//  dropped (each of the calls below returns the same).
int
    mw_publisher_task_start (mw_publisher_t *self, const char *task_id, const char *prompt,
                             const char *url, const char *validator_ip,
                             const char *validator_hotkey, uint64_t timeout_ms);

//  task_step: the task reached a processing step. details (n pairs, may be
//  NULL) becomes the `details` map.
int
    mw_publisher_task_step (mw_publisher_t *self, const char *task_id, const char *step,
                            const mw_kv_t *details, size_t n);

//  actions_generated: the task produced action_count browser actions.
int
    mw_publisher_actions_generated (mw_publisher_t *self, const char *task_id,
                                    uint64_t action_count, const char *action_type);

//  task_complete: the task ended; error is the reason of a failure.
int
    mw_publisher_task_complete (mw_publisher_t *self, const char *task_id, bool success,
                                int64_t action_count, double response_time, const char *error);

//  task_feedback: the validator's verdict on a task.
int
    mw_publisher_task_feedback (mw_publisher_t *self, const char *task_id, double score,
                                double execution_time, const char *validator_hotkey);

//  validator_connection: a validator connected (give its IP, hotkey or both).
int
    mw_publisher_validator_connection (mw_publisher_t *self, const char *validator_ip,
                                       const char *validator_hotkey, const char *endpoint);

//  cache_hit: the task was answered (partly) from a cache.
int
    mw_publisher_cache_hit (mw_publisher_t *self, const char *task_id, const char *cache_type);

//  error: something failed, in a task or outside one.
int
    mw_publisher_error (mw_publisher_t *self, const char *error_message, const char *task_id,
                        const char *error_type);

//  Any type (a custom one, or a known one with extra keys): task_id may be
//  NULL; kv are n more key/values. A known key in kv must have its protocol
//  type; header keys (v, type, ts, miner, sid, seq, id, broker_ts, truncated) are
//  refused. Return 0 if sent, -1 if dropped or refused.
int
    mw_publisher_send (mw_publisher_t *self, const char *type, const char *task_id,
                       const mw_kv_t *kv, size_t n);

//  Send a prepared event: v, ts, miner, sid and seq are set here (ev is
//  modified). Return 0 if sent, -1 if dropped or refused.
int
    mw_publisher_send_event (mw_publisher_t *self, mw_event_t *ev);

//  Counters since creation: events sent, events dropped (nobody
//  subscribed, high-water mark, too large, or a socket error), strings
//  truncated. Safe from any thread.
uint64_t
    mw_publisher_sent (mw_publisher_t *self);
uint64_t
    mw_publisher_dropped (mw_publisher_t *self);
uint64_t
    mw_publisher_truncated (mw_publisher_t *self);

//  Return the number of live connections: connections whose handshake
//  completed (so they can carry events) and that are still up, as of now.
//  A CURVE publisher with a wrong key shows 0 although its TCP connections
//  succeed. Return -1 when an endpoint's transport reports no connections
//  (inproc): then only subscriptions decide. Takes the publisher's lock, like
//  a send; for tools, tests and health checks.
int
    mw_publisher_connections (mw_publisher_t *self);

//  Return this publisher's session id.
uint64_t
    mw_publisher_sid (mw_publisher_t *self);

//  Return the library version as "MAJOR.MINOR.PATCH".
const char *
    mw_version (void);

#ifdef __cplusplus
}
#endif

#endif
