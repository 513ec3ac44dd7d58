/*  mw_broker.h - the broker daemon: ingest, update stream, snapshot
    service, persistence, CURVE.

    The broker is a czmq actor (zactor) around the pure state (mw_state):

      publishers --PUB/SUB--> ingest: decode (hostile input), give the
                              event the next broker id and its acceptance
                              time, fold it into the state, re-publish it
      update stream (PUB)     every accepted event (topic = type, body = the
                              event with `id` and `broker_ts`), and every
                              second a heartbeat on topic "$hb" that is
                              also the state's tick (it carries an id too)
      snapshot service        ROUTER: "$snap?" -> the state as chunks, paced
                              so that the ROUTER's high-water mark never
                              drops one, then "$snap_end" with the id, epoch
                              and size
      state file              saved atomically every few seconds and at the
                              end; restored at start

    docs/protocol.md ("Broker protocol") is the reference for the wire side.
    The actor runs in its own thread, so `minerwatch up` can embed a broker
    and a gateway in one process and connect them over inproc:// endpoints
    (czmq's shared context). minerwatch-broker (broker_main.c) is a thin
    shell: flags, config file, signals.
*/
#ifndef MW_BROKER_H_INCLUDED
#define MW_BROKER_H_INCLUDED

#include "mw_state.h"

#include <czmq.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Defaults of the command line (CONTRACT.md section 3).
#define MW_BROKER_INGEST_DEFAULT "@tcp://127.0.0.1:7710"
#define MW_BROKER_PUBLISH_DEFAULT "@tcp://127.0.0.1:7711"
#define MW_BROKER_SNAPSHOT_DEFAULT "@tcp://127.0.0.1:7712"
#define MW_BROKER_SAVE_INTERVAL_DEFAULT 5 //  seconds between two saves of the state file

//  Limits of the configuration.
#define MW_BROKER_INGEST_MAX 16     //  --ingest options
#define MW_BROKER_ENDPOINT_MAX 256  //  bytes of one endpoint option (a comma list)
#define MW_BROKER_PATH_MAX 1024     //  bytes of a file or directory name

//  Fixed parameters of the daemon, named here so that docs and /metrics can
//  state them. Memory held by libzmq for one publisher connection is at
//  most INGEST_HWM messages of at most MAXMSGSIZE bytes each.
#define MW_BROKER_HEARTBEAT_MS 1000      //  heartbeat (and tick) interval
#define MW_BROKER_INGEST_HWM 50000       //  messages queued per publisher connection
#define MW_BROKER_INGEST_MAXMSG (MW_MAX_BODY + 4096) //  frame size; a peer over it is disconnected
#define MW_BROKER_INGEST_BATCH 256       //  messages read per wake-up before other work
#define MW_BROKER_PUBLISH_HWM 100000     //  updates queued per subscriber before it misses some
#define MW_BROKER_SNAP_CHUNK 65536       //  bytes of state in one "$snap" chunk
#define MW_BROKER_SNAP_HWM 16            //  chunks queued per snapshot client in libzmq
#define MW_BROKER_SNAP_BURST 4           //  chunks sent to one client per loop turn
#define MW_BROKER_SNAP_CLIENTS_MAX 32    //  snapshot transfers in progress; more get "busy"
#define MW_BROKER_SNAP_STALL_MS 60000    //  a transfer without progress this long is dropped
#define MW_BROKER_SNAP_MAX (1024u * 1024u * 1024u) //  largest snapshot a client should accept
#define MW_BROKER_REJECT_LOG_FIRST 5     //  rejections logged in full per reason
#define MW_BROKER_REJECT_LOG_EVERY_MS 60000 //  then one summary line per reason at most this often

//  Rejection reasons: the codec's error codes (mw_err_name: "malformed",
//  "too_large", ...) and one of the broker's own.
#define MW_BROKER_REJECT_FRAMES MW_ERR_COUNT //  not exactly two frames
#define MW_BROKER_REJECT_COUNT (MW_ERR_COUNT + 1)

//  Return the stable name of a rejection reason ("frames", "malformed", ...);
//  "unknown" for a reason out of range.
const char *
    mw_broker_reject_name (int reason);

typedef struct {
    //  Endpoints in czmq notation: '@' binds, '>' connects; without a
    //  prefix, the broker binds. Each option may be a comma-separated list.
    char ingest[MW_BROKER_INGEST_MAX][MW_BROKER_ENDPOINT_MAX];
    size_t ingest_count;
    char publish[MW_BROKER_ENDPOINT_MAX];
    char snapshot[MW_BROKER_ENDPOINT_MAX];
    char state_file[MW_BROKER_PATH_MAX]; //  "" = no persistence
    uint32_t save_interval_s;            //  0 = save only at shutdown
    char curve_secret[MW_BROKER_PATH_MAX];  //  zcert secret file; "" = no CURVE
    char curve_clients[MW_BROKER_PATH_MAX]; //  directory of allowed client certificates;
                                            //  "" = any client key (with curve_secret)
    mw_state_config_t state;                //  bounds of the state
    bool verbose;                           //  log every snapshot request
    bool quiet;                             //  log only warnings and errors
    const char *log_name;                   //  prefix of log lines (static string)
} mw_broker_config_t;

//  Fill cfg with the defaults: the endpoints above, no state file, no
//  CURVE, mw_state_config_default bounds.
void
    mw_broker_config_default (mw_broker_config_t *cfg);

//  Set one option by its long flag name without the dashes ("publish",
//  "recent-events", "task-timeout" ...); the config file uses the same names.
//  "ingest" appends to the list. Booleans ("verbose", "quiet") take
//  true/false/yes/no/1/0. Return 0, or -1 with a message in errbuf that says
//  what was expected.
int
    mw_broker_config_set (mw_broker_config_t *cfg, const char *key, const char *value,
                          char *errbuf, size_t errbuf_size);

//  Return true if key names an option of mw_broker_config_set.
bool
    mw_broker_config_known (const char *key);

//  Read a config file: `key = value` lines, '#' starts a comment, blank
//  lines are ignored, keys as in mw_broker_config_set. Return 0, or -1 with
//  "FILE:LINE: what" in errbuf.
int
    mw_broker_config_load (mw_broker_config_t *cfg, const char *path, char *errbuf,
                           size_t errbuf_size);

//  Check a whole configuration (endpoints present, bounds valid, CURVE files
//  named consistently). Return 0, or -1 with a message in errbuf.
int
    mw_broker_config_check (const mw_broker_config_t *cfg, char *errbuf, size_t errbuf_size);

//  Print the option names, defaults and meanings (for --help).
void
    mw_broker_config_usage (FILE *out);

//  Counters of a running broker; the heartbeat carries the same names.
typedef struct {
    uint64_t epoch;
    uint64_t last_id;
    uint64_t now_ms;
    uint64_t started_ms;             //  broker clock at start
    uint64_t accepted;               //  events accepted since start
    uint64_t rejected;               //  events rejected since start (sum of the reasons)
    uint64_t rejected_by[MW_BROKER_REJECT_COUNT];
    uint64_t apply_failed;           //  accepted events the state could not fold (memory)
    uint64_t ticks;
    uint64_t snap_served;            //  snapshot transfers completed
    uint64_t snap_busy;              //  requests refused: too many transfers at once
    uint64_t snap_dropped;           //  transfers abandoned (client gone or stalled)
    uint64_t snap_paused;            //  chunk sends deferred by a full client queue
    uint64_t snap_active;            //  transfers in progress
    uint64_t snap_bad;               //  malformed snapshot requests
    uint64_t saves;                  //  state file saves that succeeded
    uint64_t save_failures;          //  that failed (logged; the broker goes on)
    uint64_t save_skipped;           //  periodic saves skipped: the previous one still running
    uint64_t last_save_ms;           //  broker clock of the last good save, 0 if none
    uint64_t last_save_bytes;
    uint64_t connections;            //  TCP connections now, all sockets
    uint64_t disconnects;            //  connections closed since start (e.g. a peer
                                     //  over the ingest frame limit)
    uint64_t auth_failures;          //  handshakes refused (CURVE, wrong key)
    bool restored;                   //  the state came from the state file
    bool curve;                      //  sockets are CURVE servers
} mw_broker_stats_t;

typedef struct _mw_broker_t mw_broker_t;

//  Start a broker: restore the state file, start CURVE, bind and connect the
//  sockets, then run in a background thread. Return NULL with a message in
//  errbuf if anything fails (bad config, unusable state file, endpoint in
//  use, unreadable key).
mw_broker_t *
    mw_broker_new (const mw_broker_config_t *cfg, char *errbuf, size_t errbuf_size);

//  Stop the broker: save the state file (if configured), close every
//  socket, join the thread; null the pointer.
void
    mw_broker_destroy (mw_broker_t **self_p);

//  Return the actor, to poll it: it sends a message ("$DEAD", reason) only
//  if it stopped on its own.
zactor_t *
    mw_broker_actor (mw_broker_t *self);

//  Copy the counters. Return 0, or -1 if the broker stopped.
int
    mw_broker_stats (mw_broker_t *self, mw_broker_stats_t *stats);

//  Save the state file now and wait for the result. Return 0, or -1 if the
//  save failed or no state file is configured.
int
    mw_broker_save (mw_broker_t *self);

//  Write the endpoints the broker ended up with (a bound "tcp://...:*"
//  gets its port) for which = "ingest", "publish" or "snapshot", as a
//  comma list in czmq notation. Return 0, or -1.
int
    mw_broker_endpoints (mw_broker_t *self, const char *which, char *out, size_t size);

#ifdef __cplusplus
}
#endif

#endif
