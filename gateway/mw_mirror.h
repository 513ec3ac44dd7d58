/*  mw_mirror.h - the gateway's mirror of a broker (the Clone pattern's
    client), feeding the HTTP server.

    The mirror runs in its own thread (a czmq actor). It subscribes to the
    broker's update stream first, waits until the subscription delivers,
    then asks the snapshot service for the state and loads it with
    mw_state_load. From there it applies every update whose id is the last
    one + 1: events with mw_state_apply at their broker_ts, heartbeats
    (ticks) with mw_state_tick, so its state is the broker's, byte for byte
    (docs/protocol.md, "Keeping a mirror"). Updates that arrive while a
    snapshot is on its way are kept (bounded) and applied after it.

    A gap in ids, an id that goes back, or a heartbeat of another epoch:
    the mirror tells the HTTP server to reset its SSE clients and loads a
    fresh snapshot. No heartbeat for heartbeat_timeout_ms: the broker link
    is down (shown by /healthz, /metrics, and an SSE `broker` event); when
    heartbeats return, it resynchronizes.

    Every accepted event is rendered to JSON once (mw_json_event_ex, sid as
    a string) and handed to the HTTP server; the status JSON and the
    metrics are rendered at most every render interval while the state
    changes (never faster than 5 times the last render took), and handed
    over whole.
*/
#ifndef MW_MIRROR_H_INCLUDED
#define MW_MIRROR_H_INCLUDED

#include "mw_http.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Defaults (the broker's, docs/protocol.md).
#define MW_MIRROR_UPDATES_DEFAULT           ">tcp://127.0.0.1:7711"
#define MW_MIRROR_SNAPSHOT_DEFAULT          ">tcp://127.0.0.1:7712"
#define MW_MIRROR_HEARTBEAT_TIMEOUT_DEFAULT 3000 //  ms without a heartbeat: link down
#define MW_MIRROR_RENDER_INTERVAL_DEFAULT   100  //  ms between two status renders at most

//  Fixed parameters.
#define MW_MIRROR_SNAP_TIMEOUT_MS 10000  //  no chunk this long: the transfer failed
#define MW_MIRROR_RETRY_MIN_MS    250    //  first wait before asking again
#define MW_MIRROR_RETRY_MAX_MS    5000   //  longest wait between two asks
#define MW_MIRROR_BUFFER_MAX      200000 //  updates kept while a snapshot comes
#define MW_MIRROR_SNAP_MAX        (1024u * 1024u * 1024u) //  largest snapshot accepted
#define MW_MIRROR_BATCH           1000                    //  updates applied per loop turn
#define MW_MIRROR_SUB_HWM         200000                  //  updates queued in the SUB socket

#define MW_MIRROR_ENDPOINT_MAX 256
#define MW_MIRROR_KEY_MAX      1024

typedef struct {
    char updates[MW_MIRROR_ENDPOINT_MAX]; //  czmq notation: '>' connects, '@' binds
    char snapshot[MW_MIRROR_ENDPOINT_MAX];
    char curve_server_key[MW_MIRROR_KEY_MAX];  //  "" = plain; else Z85 (40 chars) or a cert file
    char curve_client_cert[MW_MIRROR_KEY_MAX]; //  "" = an ephemeral key pair
    uint32_t heartbeat_timeout_ms;
    uint32_t render_interval_ms;
    bool verbose;         //  log every resync reason and snapshot
    bool quiet;           //  only errors
    const char *log_name; //  prefix of log lines (static string)
} mw_mirror_config_t;

//  Fill cfg with the defaults above.
void mw_mirror_config_default (mw_mirror_config_t *cfg);

//  Set one option by its long flag name without dashes: "updates",
//  "snapshot", "curve-server-key", "curve-client-cert",
//  "heartbeat-timeout" (ms), "render-interval" (ms). Return 0, or -1 with a
//  message in errbuf.
int mw_mirror_config_set (mw_mirror_config_t *cfg, const char *key, const char *value, char *errbuf,
                          size_t errbuf_size);

//  Return true if key names an option of mw_mirror_config_set.
bool mw_mirror_config_known (const char *key);

//  Check a configuration. Return 0, or -1 with a message in errbuf.
int mw_mirror_config_check (const mw_mirror_config_t *cfg, char *errbuf, size_t errbuf_size);

//  Print the options, their defaults and meanings (for --help).
void mw_mirror_config_usage (FILE *out);

typedef struct _mw_mirror_t mw_mirror_t;

//  Connect to the broker and start mirroring into http (which must outlive
//  the mirror). Return NULL with a message in errbuf if the configuration
//  is bad, a CURVE key unreadable, or an endpoint invalid. A broker that is
//  not there yet is not an error: the mirror waits for it.
mw_mirror_t *mw_mirror_new (const mw_mirror_config_t *cfg, mw_http_t *http, char *errbuf,
                            size_t errbuf_size);

//  Stop the mirror thread and free everything; null the pointer.
void mw_mirror_destroy (mw_mirror_t **self_p);

//  Counters of the mirror.
typedef struct {
    bool synced;  //  a snapshot is loaded
    bool link_up; //  heartbeats arrive
    uint64_t epoch;
    uint64_t last_id;
    uint64_t resyncs;   //  snapshots loaded after the first
    uint64_t snapshots; //  snapshots loaded
    uint64_t gaps;
    uint64_t link_downs;
    uint64_t updates; //  events and ticks applied
    uint64_t updates_skipped;
    uint64_t bad_updates; //  updates that did not decode
} mw_mirror_stats_t;

//  Copy the counters. Return 0, or -1 if the mirror stopped.
int mw_mirror_stats (mw_mirror_t *self, mw_mirror_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif
