/*  mw_http.h - the gateway's HTTP server (libwebsockets): SSE fan-out,
    JSON polling, /metrics, /healthz and the dashboard page.

    One service thread owns libwebsockets and everything it serves. Other
    threads (the mirror) hand it data through the feed methods below: each
    appends to a mutex-protected queue and wakes the service thread with
    lws_cancel_service(); the thread drains the queue in
    LWS_CALLBACK_EVENT_WAIT_CANCELLED. Nothing the service thread serves is
    rendered per request:

    - Events arrive as SSE frames built once ("id: N\nevent: T\ndata: JSON
      \n\n") and go into one shared ring of frames, bounded in frames and
      bytes. Each SSE client is a cursor into the ring. A WRITEABLE callback
      copies as many whole frames as fit into one write (one staging buffer
      serves every client: there is one service thread, and libwebsockets
      keeps any part the socket did not take), then asks for another
      callback if more is waiting. A client whose cursor falls off the
      ring's tail gets `event: reset` and a fresh snapshot; a client whose
      unsent bytes pass a hard cap is closed and counted (the policy of
      Redis's client-output-buffer-limit).
    - The status JSON arrives rendered (mw_render_status) once per state
      change and is shared by every poller; ?since= and ?limit= are byte
      ranges of it (mw_render_select); the SSE snapshot frame is built from
      it once. ETag = "epoch-id"; If-None-Match gives 304.
    - /metrics is the state's part (rendered by the mirror) plus the
      server's own counters.

    Endpoints and their JSON are documented in docs/http-api.md.
*/
#ifndef MW_HTTP_H_INCLUDED
#define MW_HTTP_H_INCLUDED

#include "mw_json.h"
#include "mw_render.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Defaults (CONTRACT.md section 3: --http 127.0.0.1:8080).
#define MW_HTTP_HOST_DEFAULT            "127.0.0.1"
#define MW_HTTP_PORT_DEFAULT            8080
#define MW_HTTP_MAX_CLIENTS_DEFAULT     1000        //  SSE clients; more get 503
#define MW_HTTP_RING_FRAMES_DEFAULT     4096        //  frames in the shared SSE ring
#define MW_HTTP_RING_BYTES_DEFAULT      (16u << 20) //  bytes in the ring
#define MW_HTTP_CLIENT_UNSENT_DEFAULT   (8u << 20)  //  a client owed more is closed
#define MW_HTTP_SNAPSHOT_EVENTS_DEFAULT 50          //  recent events in a snapshot frame
#define MW_HTTP_KEEPALIVE_DEFAULT       15          //  seconds between keepalive comments
#define MW_HTTP_RETRY_MS                2000        //  the `retry:` sent to EventSource
#define MW_HTTP_MAX_HEADER_DEFAULT      4096        //  bytes of request line + headers
#define MW_HTTP_SEND_BUFFER_DEFAULT     (256u << 10) //  SO_SNDBUF of an SSE connection

//  Fixed parameters.
#define MW_HTTP_WRITE_H1  65536 //  bytes per write on HTTP/1.1
#define MW_HTTP_WRITE_H2  16000 //  per write on HTTP/2: frame + header within one TLS record
#define MW_HTTP_SCAN_MAX  8192  //  ring frames one write may skip (filters) before yielding
#define MW_HTTP_TYPES_MAX 16    //  entries in ?types=
#define MW_HTTP_TICK_MS   250   //  housekeeping: keepalives, counters

//  Limits of the configuration.
#define MW_HTTP_HOST_MAX        128
#define MW_HTTP_SECRET_MAX      256
#define MW_HTTP_PATH_MAX        1024
#define MW_HTTP_CLIENTS_MAX     1000000
#define MW_HTTP_RING_FRAMES_MAX 10000000

typedef struct {
    char host[MW_HTTP_HOST_MAX];          //  address to bind ("127.0.0.1", "::1", "0.0.0.0")
    int port;                             //  0: any free port (see mw_http_port)
    char auth_token[MW_HTTP_SECRET_MAX];  //  "" = none; Authorization: Bearer, or ?token=
    char basic_auth[MW_HTTP_SECRET_MAX];  //  "" = none; "USER:PASS"
    char cors_origin[MW_HTTP_SECRET_MAX]; //  "" = no CORS headers; an origin, or "*"
    char tls_cert[MW_HTTP_PATH_MAX];      //  PEM files; both or neither
    char tls_key[MW_HTTP_PATH_MAX];
    bool insecure;        //  allow a non-loopback bind without auth
    bool open_metrics;    //  /metrics and /healthz without auth
    bool verbose;         //  libwebsockets notices too
    bool quiet;           //  only errors
    uint32_t max_clients; //  SSE clients
    uint32_t ring_frames;
    uint64_t ring_bytes;
    uint64_t client_max_unsent; //  hard cap of one SSE client's unsent bytes
    uint32_t snapshot_events;   //  recent events in a snapshot frame
    uint32_t keepalive_s;       //  idle seconds before a keepalive comment
    uint32_t max_header;        //  bytes of request line + headers
    uint32_t send_buffer;       //  SO_SNDBUF of an HTTP/1 SSE socket; 0 = the kernel's
    const char *log_name;       //  prefix of log lines (static string)
} mw_http_config_t;

//  Fill cfg with the defaults above (no auth, no TLS, no CORS).
void mw_http_config_default (mw_http_config_t *cfg);

//  Set one option by its long flag name without dashes: "http" (HOST:PORT,
//  [V6]:PORT), "auth-token", "basic-auth", "auth-token-file" and
//  "basic-auth-file" (the secret read from a file, see mw_conf_read_secret),
//  "cors", "tls-cert", "tls-key",
//  "insecure", "open-metrics", "max-clients", "ring-frames", "ring-bytes",
//  "client-max-unsent", "snapshot-events", "keepalive", "max-header",
//  "sse-send-buffer".
//  Booleans as mw_conf_parse_bool (true/false, yes/no, on/off, 1/0; an
//  empty value is an error). Return 0, or -1 with a message in errbuf that
//  says what was expected.
int mw_http_config_set (mw_http_config_t *cfg, const char *key, const char *value, char *errbuf,
                        size_t errbuf_size);

//  Return true if key names an option of mw_http_config_set; *is_bool_p
//  (if not NULL) tells whether it is a boolean flag.
bool mw_http_config_known (const char *key, bool *is_bool_p);

//  Check a configuration: bounds, TLS files named in pairs, and no bind
//  beyond loopback without --auth-token or --basic-auth unless --insecure.
//  Return 0, or -1 with a message in errbuf.
int mw_http_config_check (const mw_http_config_t *cfg, char *errbuf, size_t errbuf_size);

//  Return true if host is a loopback address (127.0.0.0/8, ::1, localhost).
bool mw_http_host_is_loopback (const char *host);

//  Print the options, their defaults and meanings (for --help).
void mw_http_config_usage (FILE *out);

typedef struct _mw_http_t mw_http_t;

//  Check cfg, raise the open-file limit for max_clients (a warning on
//  stderr when it cannot), create the libwebsockets context, bind, and
//  start the service thread. Return NULL with a message in errbuf if
//  anything fails (bad config, address in use, unreadable TLS files).
mw_http_t *mw_http_new (const mw_http_config_t *cfg, char *errbuf, size_t errbuf_size);

//  Stop the service thread, close every connection, free everything; null
//  the pointer.
void mw_http_destroy (mw_http_t **self_p);

//  Return the TCP port the server listens on (useful with port 0).
int mw_http_port (mw_http_t *self);

//  Feed methods: callable from any one thread (the mirror), in the order
//  things happened.

//  Hand over an accepted event (its broker id set) and its JSON (one line,
//  rendered once with mw_json_event_ex); the server frames it for SSE.
//  Return 0, or -1 if memory ran out (the event is dropped and SSE clients
//  get a reset).
int mw_http_push_event (mw_http_t *self, const mw_event_t *ev, const char *json, size_t len);

//  Tell SSE clients to drop their state (the mirror resyncs): each gets
//  `event: reset`, then the next status given to mw_http_set_status as its
//  snapshot. reason is a short word ("resync", "epoch"). Return 0 or -1.
int mw_http_push_reset (mw_http_t *self, const char *reason);

//  Hand over a new status render (mw_render_status with an index) of the
//  state at broker id `id`: the server takes the buffer's memory and the
//  index's arrays, and leaves both empty. Return 0, or -1 if memory ran
//  out (the render is dropped, buffer and index emptied).
int mw_http_set_status (mw_http_t *self, mw_buf_t *json, mw_render_index_t *index, uint64_t id,
                        uint64_t epoch);

//  Hand over the state's part of /metrics (mw_render_metrics with a NULL
//  gateway part); the server takes the buffer's memory. Return 0 or -1.
int mw_http_set_metrics (mw_http_t *self, mw_buf_t *text);

//  The broker link, as the mirror sees it.
typedef struct {
    bool up; //  heartbeats arriving
    uint64_t epoch;
    uint64_t last_id;
    int64_t last_heartbeat_ms; //  CLOCK_MONOTONIC ms of the last heartbeat; 0 = none yet
    uint64_t resyncs;
    uint64_t gaps;
    uint64_t link_downs;
    uint64_t updates;
    uint64_t updates_skipped;
} mw_http_link_t;

//  Update the broker link shown by /healthz and /metrics; when `up`
//  changes, SSE clients get `event: broker`. Return 0 or -1.
int mw_http_set_link (mw_http_t *self, const mw_http_link_t *link);

//  Copy the server's counters (as of its last housekeeping tick, at most
//  MW_HTTP_TICK_MS old) into gw.
void mw_http_stats (mw_http_t *self, mw_render_gateway_t *gw);

//  Return CLOCK_MONOTONIC in milliseconds (the clock of last_heartbeat_ms).
int64_t mw_http_now_ms (void);

#ifdef __cplusplus
}
#endif

#endif
