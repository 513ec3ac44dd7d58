/*  mw_http.c - the gateway's HTTP server on libwebsockets.

    Threads. The service thread runs lws_service() and owns every structure
    below except the queue (and the published counters), which the feed
    methods fill under self->lock from the mirror's thread. Everything the
    service thread touches is reached from the lws callback or from the
    housekeeping timer (an lws_sul), both of which run in that thread.

    Blobs. Frames, the status render, the snapshot frame and the metrics
    text are immutable reference-counted blobs. Only the service thread
    changes a count (the feed methods create a blob with count 1 and hand
    that reference to the queue), so counts are plain integers. A response
    or an SSE client that is part-way through a blob holds a reference, so
    replacing a render or evicting a frame never pulls bytes from under a
    writer; a client that holds an old snapshot while a newer one arrives
    costs that much memory until it is sent or the client is closed by the
    unsent-bytes cap.

    lws_write() may write in place of the LWS_PRE bytes before the buffer
    (HTTP/2 frame headers), so bytes are never written straight from a
    shared blob: they are copied into the staging buffer first.
*/
#define _GNU_SOURCE
#include "mw_http.h"
#include "mw_dashboard.h"
#include "mw_httpparse.h"
#include "mw_conf.h"

#include <libwebsockets.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

//  --------------------------------------------------------------------------
//  Types

typedef enum {
    S_BLOB_DATA = 0, //  a render or a response body
    S_BLOB_EVENT,    //  an SSE frame of an event (filters apply)
    S_BLOB_CONTROL   //  an SSE frame every client gets (broker link)
} s_blob_kind_t;

typedef struct {
    uint32_t refs;
    uint8_t kind;
    uint64_t id;  //  frames: broker id (control frames: the newest id then)
    uint64_t pos; //  frames: stream position of the first byte (ring order)
    size_t len;
    char *data;
    //  Event frames: what the filters look at (NUL-terminated, in inline_).
    const char *type;
    const char *miner;
    const char *task_id;
    uint32_t miner_len;
    uint32_t task_id_len;
    bool owns_data; //  data was malloc'd separately (a render taken over)
    char inline_[]; //  frames: the frame text, then type, miner, task_id
} s_blob_t;

typedef enum { S_MSG_FRAME, S_MSG_RESET, S_MSG_STATUS, S_MSG_METRICS, S_MSG_LINK } s_msg_kind_t;

typedef struct s_msg_t s_msg_t;
struct s_msg_t {
    s_msg_t *next;
    s_msg_kind_t kind;
    s_blob_t *blob;          //  FRAME, STATUS, METRICS
    mw_render_index_t index; //  STATUS
    uint64_t id;             //  STATUS
    uint64_t epoch;          //  STATUS
    mw_http_link_t link;     //  LINK
    char reason[32];         //  RESET
};

//  A part of a response body: bytes of a blob, or of the connection's own
//  buffer (blob NULL).
typedef struct {
    s_blob_t *blob;
    size_t off;
    size_t len;
} s_seg_t;

#define S_SEGS     4
#define S_PRE_SIZE 256

typedef enum { S_CONN_IDLE = 0, S_CONN_RESPONSE, S_CONN_SSE, S_CONN_DRAIN } s_conn_kind_t;

//  The per-session data lws allocates (zeroed) for each HTTP stream.
typedef struct s_conn_t s_conn_t;
struct s_conn_t {
    s_conn_t *prev; //  list of SSE clients
    s_conn_t *next;
    struct lws *wsi;
    s_conn_kind_t kind;
    bool in_list;
    bool closing; //  asked lws to close it (slow client)
    bool h2;
    //  A plain response
    s_seg_t seg[S_SEGS];
    int seg_count;
    int seg_at;
    size_t seg_off;
    bool close_after; //  close the connection after the body
    bool head_only;
    mw_buf_t own; //  body text rendered for this response
    //  An SSE client
    uint64_t cursor; //  ring sequence of the next frame to consider
    uint64_t pos;    //  stream position just after what it was given
    s_blob_t *cur;   //  a blob part-way sent (snapshot, or a large frame)
    size_t cur_off;
    char pre[S_PRE_SIZE]; //  small frames to send first (retry, reset, keepalive)
    uint16_t pre_len;
    uint16_t pre_off;
    bool need_snapshot;
    bool need_link;
    bool need_keepalive;
    bool window_wait;    //  HTTP/2 send window closed: in the waiters' list
    s_conn_t *wait_prev; //  list of window waiters, retried by the tick
    s_conn_t *wait_next;
    int64_t last_write_ms;
    //  Filters (NULL: none); types is a list of NUL-terminated prefixes.
    char *filter_mem;
    const char *types[MW_HTTP_TYPES_MAX];
    int type_count;
    const char *miner;
    size_t miner_len;
    const char *task_id;
    size_t task_id_len;
};

struct _mw_http_t {
    mw_http_config_t cfg;
    struct lws_context *context;
    struct lws_vhost *vhost;
    pthread_t thread;
    bool thread_started;
    volatile int stop;
    bool send_buffer_warned; //  a failed SO_SNDBUF was logged once

    //  The queue (feed methods -> service thread), under lock.
    pthread_mutex_t lock;
    s_msg_t *queue_head;
    s_msg_t *queue_tail;
    uint64_t queue_bytes; //  frame bytes waiting
    bool queue_overflowed;

    //  Counters published by the service thread, under stats_lock.
    pthread_mutex_t stats_lock;
    mw_render_gateway_t published;

    //  Everything below: service thread only.
    lws_sorted_usec_list_t sul;
    bool ticking;
    uint64_t ticks;
    uint8_t *stage; //  LWS_PRE + MW_HTTP_WRITE_H1 bytes

    s_blob_t **ring;    //  ring_frames slots
    uint64_t ring_tail; //  sequence of the oldest frame held
    uint64_t ring_head; //  sequence the next frame gets
    uint64_t ring_bytes;
    uint64_t stream_pos; //  bytes ever appended to the ring
    uint64_t floor_id;   //  resume from id L needs L >= floor_id; UINT64_MAX: none
    uint64_t newest_id;  //  newest id seen (frames and status)
    bool gen_has_events; //  an event frame arrived in this generation

    s_blob_t *status; //  the latest status render
    mw_render_index_t status_ix;
    uint64_t status_id;
    uint64_t status_epoch;
    uint64_t status_gen; //  reset generation it belongs to
    char etag[64];
    s_blob_t *snapshot; //  SSE snapshot frame built from status (lazily)
    uint64_t gen;       //  reset generation: a snapshot must be of this one

    s_blob_t *metrics; //  the state's part of /metrics
    mw_http_link_t link;

    s_conn_t *clients;      //  SSE clients
    s_conn_t *waiters;      //  connections waiting for an HTTP/2 send window
    mw_render_gateway_t gw; //  live counters
};

//  --------------------------------------------------------------------------
//  Small helpers

int64_t
mw_http_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_err (char *errbuf, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_err (char *errbuf, size_t size, const char *fmt, ...)
{
    if (!errbuf || !size)
        return;
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (errbuf, size, fmt, ap);
    va_end (ap);
}

static const char *
s_name (const mw_http_t *self)
{
    return self->cfg.log_name ? self->cfg.log_name : "minerwatch-gateway";
}

//  --------------------------------------------------------------------------
//  Blobs

static s_blob_t *
s_blob_new (size_t inline_size)
{
    s_blob_t *blob = (s_blob_t *) calloc (1, sizeof (s_blob_t) + inline_size);
    if (!blob)
        return NULL;
    blob->refs = 1;
    blob->data = blob->inline_;
    return blob;
}

//  A blob that takes over a buffer's memory (the buffer is left empty).
static s_blob_t *
s_blob_take (mw_buf_t *buf)
{
    s_blob_t *blob = (s_blob_t *) calloc (1, sizeof (s_blob_t));
    if (!blob)
        return NULL;
    blob->refs = 1;
    blob->data = buf->data;
    blob->len = buf->len;
    blob->owns_data = true;
    mw_buf_init (buf);
    return blob;
}

static s_blob_t *
s_blob_ref (s_blob_t *blob)
{
    blob->refs++;
    return blob;
}

static void
s_blob_unref (s_blob_t **blob_p)
{
    s_blob_t *blob = *blob_p;
    if (blob) {
        assert (blob->refs > 0);
        if (--blob->refs == 0) {
            if (blob->owns_data)
                free (blob->data);
            free (blob);
        }
        *blob_p = NULL;
    }
}

//  --------------------------------------------------------------------------
//  Configuration

void
mw_http_config_default (mw_http_config_t *cfg)
{
    assert (cfg);
    memset (cfg, 0, sizeof (*cfg));
    snprintf (cfg->host, sizeof (cfg->host), "%s", MW_HTTP_HOST_DEFAULT);
    cfg->port = MW_HTTP_PORT_DEFAULT;
    cfg->max_clients = MW_HTTP_MAX_CLIENTS_DEFAULT;
    cfg->ring_frames = MW_HTTP_RING_FRAMES_DEFAULT;
    cfg->ring_bytes = MW_HTTP_RING_BYTES_DEFAULT;
    cfg->client_max_unsent = MW_HTTP_CLIENT_UNSENT_DEFAULT;
    cfg->snapshot_events = MW_HTTP_SNAPSHOT_EVENTS_DEFAULT;
    cfg->keepalive_s = MW_HTTP_KEEPALIVE_DEFAULT;
    cfg->max_header = MW_HTTP_MAX_HEADER_DEFAULT;
    cfg->send_buffer = MW_HTTP_SEND_BUFFER_DEFAULT;
}

static const struct {
    const char *name;
    bool is_bool;
} s_options[] = {
    {"http", false},
    {"auth-token", false},
    {"basic-auth", false},
    {"auth-token-file", false},
    {"basic-auth-file", false},
    {"cors", false},
    {"tls-cert", false},
    {"tls-key", false},
    {"insecure", true},
    {"open-metrics", true},
    {"max-clients", false},
    {"ring-frames", false},
    {"ring-bytes", false},
    {"client-max-unsent", false},
    {"snapshot-events", false},
    {"keepalive", false},
    {"max-header", false},
    {"sse-send-buffer", false},
};

bool
mw_http_config_known (const char *key, bool *is_bool_p)
{
    for (size_t i = 0; i < sizeof (s_options) / sizeof (s_options[0]); i++)
        if (strcmp (key, s_options[i].name) == 0) {
            if (is_bool_p)
                *is_bool_p = s_options[i].is_bool;
            return true;
        }
    return false;
}

static int
s_copy_opt (char *dst, size_t size, const char *key, const char *value, char *errbuf,
            size_t errbuf_size)
{
    size_t len = strlen (value);
    if (len >= size) {
        s_err (errbuf, errbuf_size, "--%s: too long (%zu bytes, at most %zu)", key, len, size - 1);
        return -1;
    }
    memcpy (dst, value, len + 1);
    return 0;
}

//  Split HOST:PORT or [V6]:PORT.
static int
s_parse_listen (mw_http_config_t *cfg, const char *value, char *errbuf, size_t errbuf_size)
{
    const char *colon = strrchr (value, ':');
    const char *host = value;
    size_t host_len = colon ? (size_t) (colon - value) : 0;
    if (!colon || host_len == 0)
        goto bad;
    if (host[0] == '[') {
        if (host_len < 3 || host[host_len - 1] != ']')
            goto bad;
        host++;
        host_len -= 2;
    }
    else if (memchr (host, ':', host_len))
        goto bad; //  an IPv6 address needs brackets
    if (host_len >= sizeof (cfg->host))
        goto bad;
    uint64_t port;
    if (mw_http_parse_u64 (colon + 1, &port) != 0 || port > 65535)
        goto bad;
    memcpy (cfg->host, host, host_len);
    cfg->host[host_len] = 0;
    cfg->port = (int) port;
    return 0;
bad:
    s_err (errbuf, errbuf_size,
           "--http '%s': expected HOST:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080 "
           "(port 0: any free port)",
           value);
    return -1;
}

static int
s_parse_bound (const char *key, const char *value, uint64_t min, uint64_t max, uint64_t *out,
               char *errbuf, size_t errbuf_size)
{
    uint64_t v;
    if (mw_http_parse_u64 (value, &v) != 0 || v < min || v > max) {
        s_err (errbuf, errbuf_size,
               "--%s '%s': expected a whole number from %" PRIu64 " to %" PRIu64, key, value, min,
               max);
        return -1;
    }
    *out = v;
    return 0;
}

int
mw_http_config_set (mw_http_config_t *cfg, const char *key, const char *value, char *errbuf,
                    size_t errbuf_size)
{
    assert (cfg);
    assert (key);
    bool is_bool;
    if (!mw_http_config_known (key, &is_bool)) {
        s_err (errbuf, errbuf_size, "unknown option '%s'", key);
        return -1;
    }
    if (is_bool) {
        bool b;
        if (mw_conf_parse_bool (value, &b) != 0) {
            s_err (errbuf, errbuf_size, "--%s '%s': expected true or false", key, value);
            return -1;
        }
        if (!strcmp (key, "insecure"))
            cfg->insecure = b;
        else
            cfg->open_metrics = b;
        return 0;
    }
    if (!value) {
        s_err (errbuf, errbuf_size, "--%s needs a value", key);
        return -1;
    }
    uint64_t v;
    if (!strcmp (key, "http"))
        return s_parse_listen (cfg, value, errbuf, errbuf_size);
    if (!strcmp (key, "auth-token")) {
        if (!*value) {
            s_err (errbuf, errbuf_size, "--auth-token: expected a non-empty token");
            return -1;
        }
        return s_copy_opt (cfg->auth_token, sizeof (cfg->auth_token), key, value, errbuf,
                           errbuf_size);
    }
    if (!strcmp (key, "auth-token-file") || !strcmp (key, "basic-auth-file")) {
        //  The secret comes from a file (mw_conf_read_secret), then goes
        //  through the checks of the option itself.
        char secret[MW_HTTP_SECRET_MAX];
        if (mw_conf_read_secret (key, value, secret, sizeof (secret), errbuf, errbuf_size))
            return -1;
        bool token = !strcmp (key, "auth-token-file");
        int rc = mw_http_config_set (cfg, token ? "auth-token" : "basic-auth", secret, errbuf,
                                     errbuf_size);
        if (rc && errbuf && errbuf_size)
            //  Never echo the secret: name the file.
            snprintf (errbuf, errbuf_size, "--%s: %s does not hold %s", key, value,
                      token ? "a token" : "USER:PASS");
        explicit_bzero (secret, sizeof (secret));
        return rc;
    }
    if (!strcmp (key, "basic-auth")) {
        if (!strchr (value, ':') || value[0] == ':') {
            s_err (errbuf, errbuf_size, "--basic-auth: expected USER:PASS");
            return -1;
        }
        return s_copy_opt (cfg->basic_auth, sizeof (cfg->basic_auth), key, value, errbuf,
                           errbuf_size);
    }
    if (!strcmp (key, "cors")) {
        for (const char *p = value; *p; p++)
            if ((unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7f) {
                s_err (errbuf, errbuf_size,
                       "--cors '%s': expected an origin such as https://example.com, or *", value);
                return -1;
            }
        return s_copy_opt (cfg->cors_origin, sizeof (cfg->cors_origin), key, value, errbuf,
                           errbuf_size);
    }
    if (!strcmp (key, "tls-cert"))
        return s_copy_opt (cfg->tls_cert, sizeof (cfg->tls_cert), key, value, errbuf, errbuf_size);
    if (!strcmp (key, "tls-key"))
        return s_copy_opt (cfg->tls_key, sizeof (cfg->tls_key), key, value, errbuf, errbuf_size);
    if (!strcmp (key, "max-clients")) {
        if (s_parse_bound (key, value, 1, MW_HTTP_CLIENTS_MAX, &v, errbuf, errbuf_size))
            return -1;
        cfg->max_clients = (uint32_t) v;
    }
    else if (!strcmp (key, "ring-frames")) {
        if (s_parse_bound (key, value, 16, MW_HTTP_RING_FRAMES_MAX, &v, errbuf, errbuf_size))
            return -1;
        cfg->ring_frames = (uint32_t) v;
    }
    else if (!strcmp (key, "ring-bytes")) {
        if (s_parse_bound (key, value, 65536, (uint64_t) 1 << 40, &v, errbuf, errbuf_size))
            return -1;
        cfg->ring_bytes = v;
    }
    else if (!strcmp (key, "client-max-unsent")) {
        if (s_parse_bound (key, value, 65536, (uint64_t) 1 << 40, &v, errbuf, errbuf_size))
            return -1;
        cfg->client_max_unsent = v;
    }
    else if (!strcmp (key, "snapshot-events")) {
        if (s_parse_bound (key, value, 0, 10000000, &v, errbuf, errbuf_size))
            return -1;
        cfg->snapshot_events = (uint32_t) v;
    }
    else if (!strcmp (key, "keepalive")) {
        if (s_parse_bound (key, value, 1, 3600, &v, errbuf, errbuf_size))
            return -1;
        cfg->keepalive_s = (uint32_t) v;
    }
    else if (!strcmp (key, "max-header")) {
        if (s_parse_bound (key, value, 1024, 65535, &v, errbuf, errbuf_size))
            return -1;
        cfg->max_header = (uint32_t) v;
    }
    else if (!strcmp (key, "sse-send-buffer")) {
        if (s_parse_bound (key, value, 0, 64u << 20, &v, errbuf, errbuf_size))
            return -1;
        if (v > 0 && v < 4096) {
            s_err (errbuf, errbuf_size, "--sse-send-buffer %s: 0 (the kernel's) or 4096 and more",
                   value);
            return -1;
        }
        cfg->send_buffer = (uint32_t) v;
    }
    return 0;
}

bool
mw_http_host_is_loopback (const char *host)
{
    assert (host);
    return strncmp (host, "127.", 4) == 0 || strcmp (host, "::1") == 0 ||
           strcmp (host, "localhost") == 0;
}

int
mw_http_config_check (const mw_http_config_t *cfg, char *errbuf, size_t errbuf_size)
{
    assert (cfg);
    if (!cfg->host[0]) {
        s_err (errbuf, errbuf_size, "no address to listen on: give --http HOST:PORT");
        return -1;
    }
    if (cfg->port < 0 || cfg->port > 65535) {
        s_err (errbuf, errbuf_size, "port %d out of range 0..65535", cfg->port);
        return -1;
    }
    bool auth = cfg->auth_token[0] || cfg->basic_auth[0];
    if (!mw_http_host_is_loopback (cfg->host) && !auth && !cfg->insecure) {
        s_err (errbuf, errbuf_size,
               "refusing to serve %s:%d without authentication: anyone who can reach that "
               "address would see every prompt and URL. Give --auth-token TOKEN and/or "
               "--basic-auth USER:PASS (and --tls-cert/--tls-key), bind 127.0.0.1, or pass "
               "--insecure if a proxy in front does the access control",
               cfg->host, cfg->port);
        return -1;
    }
    if (!cfg->tls_cert[0] != !cfg->tls_key[0]) {
        s_err (errbuf, errbuf_size, "TLS needs both --tls-cert and --tls-key");
        return -1;
    }
    if (cfg->max_clients < 1 || cfg->max_clients > MW_HTTP_CLIENTS_MAX || cfg->ring_frames < 16 ||
        cfg->ring_frames > MW_HTTP_RING_FRAMES_MAX || cfg->ring_bytes < 65536 ||
        cfg->client_max_unsent < 65536 || cfg->keepalive_s < 1 || cfg->max_header < 1024 ||
        cfg->max_header > 65535) {
        s_err (errbuf, errbuf_size, "a bound of the HTTP server is out of range (see --help)");
        return -1;
    }
    return 0;
}

void
mw_http_config_usage (FILE *out)
{
    fprintf (out,
             "HTTP options:\n"
             "  --http HOST:PORT          listen address (default %s:%d; [::1]:PORT for IPv6;\n"
             "                            port 0 picks a free port)\n"
             "  --auth-token TOKEN        require 'Authorization: Bearer TOKEN' or ?token=TOKEN\n"
             "  --basic-auth USER:PASS    require HTTP basic authentication (either one passes)\n"
             "  --auth-token-file FILE    read --auth-token from FILE (mode 600: its whole\n"
             "                            content, less a final newline)\n"
             "  --basic-auth-file FILE    read --basic-auth USER:PASS from FILE, the same way\n"
             "  --insecure                allow a non-loopback address without authentication\n"
             "  --open-metrics            serve /metrics and /healthz without authentication\n"
             "  --cors ORIGIN             send CORS headers for ORIGIN (or *); none by default\n"
             "  --tls-cert FILE           PEM certificate: serve HTTPS (HTTP/2 by ALPN)\n"
             "  --tls-key FILE            PEM private key of --tls-cert\n"
             "  --max-clients N           SSE clients at once; more get 503 (default %d)\n"
             "  --ring-frames N           SSE frames kept for slow clients and resume (%d)\n"
             "  --ring-bytes N            bytes kept in that ring (%u)\n"
             "  --client-max-unsent N     close an SSE client owed more bytes (%u)\n"
             "  --snapshot-events N       recent events in an SSE snapshot (%d)\n"
             "  --keepalive SECONDS       SSE keepalive comment interval (%d)\n"
             "  --max-header BYTES        request line + headers accepted (%d)\n"
             "  --sse-send-buffer BYTES   kernel send buffer of an SSE connection; 0 leaves\n"
             "                            it to the kernel (%u)\n",
             MW_HTTP_HOST_DEFAULT, MW_HTTP_PORT_DEFAULT, MW_HTTP_MAX_CLIENTS_DEFAULT,
             MW_HTTP_RING_FRAMES_DEFAULT, MW_HTTP_RING_BYTES_DEFAULT, MW_HTTP_CLIENT_UNSENT_DEFAULT,
             MW_HTTP_SNAPSHOT_EVENTS_DEFAULT, MW_HTTP_KEEPALIVE_DEFAULT,
             MW_HTTP_MAX_HEADER_DEFAULT, MW_HTTP_SEND_BUFFER_DEFAULT);
}

//  --------------------------------------------------------------------------
//  The queue: feed methods (any thread)

static void
s_msg_free (s_msg_t *msg)
{
    s_blob_unref (&msg->blob);
    mw_render_index_release (&msg->index);
    free (msg);
}

//  Append a message and wake the service thread.
static void
s_enqueue (mw_http_t *self, s_msg_t *msg)
{
    pthread_mutex_lock (&self->lock);
    msg->next = NULL;
    if (msg->kind == S_MSG_FRAME) {
        self->queue_bytes += msg->blob->len;
        if (self->queue_bytes > self->cfg.ring_bytes) {
            //  The service thread is not keeping up: drop the frames that
            //  wait (they would only push the ring over its bound) and let
            //  the clients resync from a snapshot.
            s_msg_t **link = &self->queue_head;
            self->queue_tail = NULL;
            while (*link) {
                s_msg_t *m = *link;
                if (m->kind == S_MSG_FRAME) {
                    *link = m->next;
                    s_msg_free (m);
                }
                else {
                    self->queue_tail = m;
                    link = &m->next;
                }
            }
            self->queue_bytes = 0;
            self->queue_overflowed = true;
            msg->kind = S_MSG_RESET;
            snprintf (msg->reason, sizeof (msg->reason), "overflow");
            s_blob_unref (&msg->blob);
        }
    }
    if (self->queue_tail)
        self->queue_tail->next = msg;
    else
        self->queue_head = msg;
    self->queue_tail = msg;
    pthread_mutex_unlock (&self->lock);
    if (self->context)
        lws_cancel_service (self->context);
}

static s_msg_t *
s_msg_new (s_msg_kind_t kind)
{
    s_msg_t *msg = (s_msg_t *) calloc (1, sizeof (s_msg_t));
    if (msg) {
        msg->kind = kind;
        mw_render_index_init (&msg->index);
    }
    return msg;
}

int
mw_http_push_event (mw_http_t *self, const mw_event_t *ev, const char *json, size_t len)
{
    assert (self);
    assert (ev);
    assert (json);
    const char *type = ev->type;
    size_t type_len = strnlen (ev->type, sizeof (ev->type));
    const mw_str_t *miner = &ev->str[MW_K_MINER];
    const mw_str_t *task = &ev->str[MW_K_TASK_ID];
    char head[64 + MW_MAX_TYPE];
    int head_len = snprintf (head, sizeof (head), "id: %" PRIu64 "\nevent: %.*s\ndata: ", ev->id,
                             (int) type_len, type);
    size_t frame_len = (size_t) head_len + len + 2;
    size_t extra =
        type_len + 1 + (miner->ptr ? miner->len : 0) + 1 + (task->ptr ? task->len : 0) + 1;
    s_msg_t *msg = s_msg_new (S_MSG_FRAME);
    s_blob_t *blob = msg ? s_blob_new (frame_len + extra) : NULL;
    if (!blob) {
        free (msg);
        //  The clients would miss this event: make them resync.
        mw_http_push_reset (self, "nomem");
        return -1;
    }
    blob->kind = S_BLOB_EVENT;
    blob->id = ev->id;
    char *p = blob->inline_;
    memcpy (p, head, (size_t) head_len);
    memcpy (p + head_len, json, len);
    memcpy (p + head_len + len, "\n\n", 2);
    blob->len = frame_len;
    p += frame_len;
    blob->type = p;
    memcpy (p, type, type_len);
    p[type_len] = 0;
    p += type_len + 1;
    blob->miner = p;
    blob->miner_len = miner->ptr ? miner->len : 0;
    if (miner->ptr)
        memcpy (p, miner->ptr, miner->len);
    p[blob->miner_len] = 0;
    p += blob->miner_len + 1;
    blob->task_id = p;
    blob->task_id_len = task->ptr ? task->len : 0;
    if (task->ptr)
        memcpy (p, task->ptr, task->len);
    p[blob->task_id_len] = 0;
    msg->blob = blob;
    s_enqueue (self, msg);
    return 0;
}

int
mw_http_push_reset (mw_http_t *self, const char *reason)
{
    assert (self);
    s_msg_t *msg = s_msg_new (S_MSG_RESET);
    if (!msg)
        return -1;
    snprintf (msg->reason, sizeof (msg->reason), "%s", reason ? reason : "resync");
    s_enqueue (self, msg);
    return 0;
}

int
mw_http_set_status (mw_http_t *self, mw_buf_t *json, mw_render_index_t *index, uint64_t id,
                    uint64_t epoch)
{
    assert (self);
    assert (json);
    assert (index);
    s_msg_t *msg = s_msg_new (S_MSG_STATUS);
    s_blob_t *blob = msg && !json->failed ? s_blob_take (json) : NULL;
    if (!blob) {
        free (msg);
        mw_buf_release (json);
        mw_render_index_release (index);
        return -1;
    }
    msg->blob = blob;
    msg->index = *index;
    mw_render_index_init (index);
    msg->id = id;
    msg->epoch = epoch;
    s_enqueue (self, msg);
    return 0;
}

int
mw_http_set_metrics (mw_http_t *self, mw_buf_t *text)
{
    assert (self);
    assert (text);
    s_msg_t *msg = s_msg_new (S_MSG_METRICS);
    s_blob_t *blob = msg && !text->failed ? s_blob_take (text) : NULL;
    if (!blob) {
        free (msg);
        mw_buf_release (text);
        return -1;
    }
    msg->blob = blob;
    s_enqueue (self, msg);
    return 0;
}

int
mw_http_set_link (mw_http_t *self, const mw_http_link_t *link)
{
    assert (self);
    assert (link);
    s_msg_t *msg = s_msg_new (S_MSG_LINK);
    if (!msg)
        return -1;
    msg->link = *link;
    s_enqueue (self, msg);
    return 0;
}

void
mw_http_stats (mw_http_t *self, mw_render_gateway_t *gw)
{
    assert (self);
    assert (gw);
    pthread_mutex_lock (&self->stats_lock);
    *gw = self->published;
    pthread_mutex_unlock (&self->stats_lock);
}

//  --------------------------------------------------------------------------
//  The ring of SSE frames (service thread)

static s_blob_t *
s_ring_at (const mw_http_t *self, uint64_t seq)
{
    return self->ring[seq % self->cfg.ring_frames];
}

static void
s_ring_evict (mw_http_t *self)
{
    s_blob_t **slot = &self->ring[self->ring_tail % self->cfg.ring_frames];
    s_blob_t *frame = *slot;
    self->ring_bytes -= frame->len;
    //  A client must have seen this frame to resume after it.
    if (self->floor_id == UINT64_MAX || frame->id > self->floor_id)
        self->floor_id = frame->id;
    s_blob_unref (slot);
    self->ring_tail++;
}

static void
s_ring_clear (mw_http_t *self)
{
    while (self->ring_tail < self->ring_head)
        s_ring_evict (self);
    self->floor_id = UINT64_MAX;
}

//  Append a frame (the ring takes the reference).
static void
s_ring_push (mw_http_t *self, s_blob_t *frame)
{
    while (self->ring_head > self->ring_tail &&
           (self->ring_head - self->ring_tail >= self->cfg.ring_frames ||
            self->ring_bytes + frame->len > self->cfg.ring_bytes))
        s_ring_evict (self);
    //  The first event of a generation: a client that saw the id before it
    //  missed nothing the ring holds (the mirror hands over every event
    //  after its snapshot; a gap in ids is a tick, not a lost event).
    if (frame->kind == S_BLOB_EVENT && !self->gen_has_events) {
        self->gen_has_events = true;
        if (self->floor_id == UINT64_MAX && frame->id > 0)
            self->floor_id = frame->id - 1;
    }
    frame->pos = self->stream_pos;
    self->stream_pos += frame->len;
    self->ring_bytes += frame->len;
    self->ring[self->ring_head % self->cfg.ring_frames] = frame;
    self->ring_head++;
    if (frame->id > self->newest_id)
        self->newest_id = frame->id;
}

//  Return the sequence of the first frame with id > id (ids never decrease
//  along the ring).
static uint64_t
s_ring_after (const mw_http_t *self, uint64_t id)
{
    uint64_t lo = self->ring_tail, hi = self->ring_head;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (s_ring_at (self, mid)->id <= id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

//  Stream position of the frame at seq (or of the end).
static uint64_t
s_ring_pos (const mw_http_t *self, uint64_t seq)
{
    return seq < self->ring_head ? s_ring_at (self, seq)->pos : self->stream_pos;
}

//  --------------------------------------------------------------------------
//  SSE clients (service thread)

static void
s_client_link (mw_http_t *self, s_conn_t *c)
{
    c->prev = NULL;
    c->next = self->clients;
    if (self->clients)
        self->clients->prev = c;
    self->clients = c;
    c->in_list = true;
    self->gw.sse_clients++;
}

static void
s_client_unlink (mw_http_t *self, s_conn_t *c)
{
    if (!c->in_list)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        self->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->in_list = false;
    self->gw.sse_clients--;
}

//  An HTTP/2 stream without send window. Asking lws for WRITEABLE again at
//  once would spin (lws 4.1.6 calls back with the window still shut): the
//  housekeeping tick asks for it instead, a few times a second.
static void
s_wait_window (mw_http_t *self, s_conn_t *c)
{
    if (c->window_wait)
        return;
    c->window_wait = true;
    c->wait_prev = NULL;
    c->wait_next = self->waiters;
    if (self->waiters)
        self->waiters->wait_prev = c;
    self->waiters = c;
}

static void
s_unwait_window (mw_http_t *self, s_conn_t *c)
{
    if (!c->window_wait)
        return;
    if (c->wait_prev)
        c->wait_prev->wait_next = c->wait_next;
    else
        self->waiters = c->wait_next;
    if (c->wait_next)
        c->wait_next->wait_prev = c->wait_prev;
    c->wait_prev = c->wait_next = NULL;
    c->window_wait = false;
}

//  Append a small frame to the client's pre buffer. Return 0, or -1 if
//  there is no room (the caller decides whether that matters).
static int s_pre_append (s_conn_t *c, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

static int
s_pre_append (s_conn_t *c, const char *fmt, ...)
{
    if (c->pre_off == c->pre_len)
        c->pre_off = c->pre_len = 0;
    size_t room = sizeof (c->pre) - c->pre_len;
    va_list ap;
    va_start (ap, fmt);
    int n = vsnprintf (c->pre + c->pre_len, room, fmt, ap);
    va_end (ap);
    if (n < 0 || (size_t) n >= room)
        return -1;
    c->pre_len = (uint16_t) (c->pre_len + n);
    return 0;
}

//  Bytes the client is owed: the ring since its position, the rest of the
//  blob it is part-way through, and its small frames.
static uint64_t
s_client_owed (const mw_http_t *self, const s_conn_t *c)
{
    uint64_t owed = self->stream_pos > c->pos ? self->stream_pos - c->pos : 0;
    if (c->cur)
        owed += c->cur->len - c->cur_off;
    return owed + (uint64_t) (c->pre_len - c->pre_off);
}

//  Tell a client to start over: `reset`, then a snapshot.
static void
s_client_reset (mw_http_t *self, s_conn_t *c, const char *reason)
{
    s_blob_unref (&c->cur);
    c->cur_off = 0;
    //  Whatever small frames were waiting (a keepalive, a broker notice) are
    //  superseded: the snapshot carries the state.
    c->pre_off = c->pre_len = 0;
    s_pre_append (c, "event: reset\ndata: {\"reason\":\"%s\"}\n\n", reason);
    c->need_snapshot = true;
    c->need_link = true;
    self->gw.sse_resets++;
}

static bool
s_filter_match (const s_conn_t *c, const s_blob_t *frame)
{
    if (frame->kind != S_BLOB_EVENT)
        return true;
    if (c->type_count) {
        bool any = false;
        for (int i = 0; i < c->type_count && !any; i++)
            any = strncmp (frame->type, c->types[i], strlen (c->types[i])) == 0;
        if (!any)
            return false;
    }
    if (c->miner &&
        (c->miner_len != frame->miner_len || memcmp (c->miner, frame->miner, c->miner_len)))
        return false;
    if (c->task_id && (c->task_id_len != frame->task_id_len ||
                       memcmp (c->task_id, frame->task_id, c->task_id_len)))
        return false;
    return true;
}

//  The snapshot frame of the current status, built on first use; NULL if
//  there is no usable status yet: none, older than the last reset, or so
//  old that the ring no longer holds every event after it (the client
//  would miss some: it waits for the next status instead).
static s_blob_t *
s_snapshot (mw_http_t *self)
{
    if (!self->status || self->status_gen != self->gen)
        return NULL;
    if (self->floor_id != UINT64_MAX && self->status_id < self->floor_id)
        return NULL;
    if (self->snapshot)
        return self->snapshot;
    mw_render_range_t range[3];
    mw_render_select (&self->status_ix, self->status_ix.start + self->status->len, 0,
                      self->cfg.snapshot_events, range);
    char head[64];
    int head_len =
        snprintf (head, sizeof (head), "id: %" PRIu64 "\nevent: snapshot\ndata: ", self->status_id);
    size_t len = (size_t) head_len + range[0].len + range[1].len + range[2].len + 2;
    s_blob_t *blob = s_blob_new (len);
    if (!blob)
        return NULL;
    char *p = blob->inline_;
    memcpy (p, head, (size_t) head_len);
    p += head_len;
    for (int i = 0; i < 3; i++) {
        memcpy (p, self->status->data + range[i].off - self->status_ix.start, range[i].len);
        p += range[i].len;
    }
    memcpy (p, "\n\n", 2);
    blob->len = len;
    blob->id = self->status_id;
    self->snapshot = blob;
    return blob;
}

static void
s_client_close_slow (mw_http_t *self, s_conn_t *c)
{
    c->closing = true;
    self->gw.sse_slow_closed++;
    if (!self->cfg.quiet)
        fprintf (stderr,
                 "%s: closing a slow SSE client: %" PRIu64 " bytes unsent (cap %" PRIu64 ")\n",
                 s_name (self), s_client_owed (self, c), self->cfg.client_max_unsent);
    lws_set_timeout (c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

//  After new frames (or a reset, or a snapshot): close the clients owed too
//  much, wake the others.
static void
s_clients_wake (mw_http_t *self)
{
    for (s_conn_t *c = self->clients; c; c = c->next) {
        if (c->closing)
            continue;
        if (!c->need_snapshot && s_client_owed (self, c) > self->cfg.client_max_unsent)
            s_client_close_slow (self, c);
        else
            lws_callback_on_writable (c->wsi);
    }
}

//  Fill the staging buffer for one SSE client and write it. Return 0, or
//  -1 to close the connection.
static int
s_sse_write (mw_http_t *self, s_conn_t *c)
{
    if (c->closing)
        return 0;
    size_t space = MW_HTTP_WRITE_H1;
    if (c->h2) {
        space = MW_HTTP_WRITE_H2;
        lws_fileofs_t allow = lws_get_peer_write_allowance (c->wsi);
        if (allow >= 0 && (uint64_t) allow < space)
            space = (size_t) allow;
        if (space == 0) {
            //  No HTTP/2 window: the housekeeping tick asks again.
            s_wait_window (self, c);
            return 0;
        }
    }
    char *out = (char *) self->stage + LWS_PRE;
    size_t n = 0;
    int scan = MW_HTTP_SCAN_MAX;
    bool more = false;
    if (c->need_keepalive) {
        c->need_keepalive = false;
        if (c->pre_off == c->pre_len && !c->cur)
            if (s_pre_append (c, ": keepalive\n\n") == 0)
                self->gw.sse_keepalives++;
    }
    while (n < space) {
        if (c->pre_off < c->pre_len) {
            size_t k = (size_t) (c->pre_len - c->pre_off);
            if (k > space - n)
                k = space - n;
            memcpy (out + n, c->pre + c->pre_off, k);
            n += k;
            c->pre_off = (uint16_t) (c->pre_off + k);
            if (c->pre_off < c->pre_len)
                break;
            c->pre_off = c->pre_len = 0;
            continue;
        }
        if (c->cur) {
            size_t k = c->cur->len - c->cur_off;
            if (k > space - n)
                k = space - n;
            memcpy (out + n, c->cur->data + c->cur_off, k);
            n += k;
            c->cur_off += k;
            if (c->cur_off < c->cur->len)
                break;
            s_blob_unref (&c->cur);
            c->cur_off = 0;
            continue;
        }
        if (c->need_snapshot) {
            s_blob_t *snap = s_snapshot (self);
            if (!snap)
                break; //  woken again when a status arrives
            c->need_snapshot = false;
            c->cur = s_blob_ref (snap);
            c->cur_off = 0;
            c->cursor = s_ring_after (self, snap->id);
            c->pos = s_ring_pos (self, c->cursor);
            self->gw.sse_snapshots++;
            continue;
        }
        if (c->need_link) {
            c->need_link = false;
            s_pre_append (c,
                          "event: broker\ndata: {\"up\":%s,\"epoch\":\"%016" PRIx64
                          "\",\"last_id\":%" PRIu64 "}\n\n",
                          self->link.up ? "true" : "false", self->link.epoch, self->link.last_id);
            continue;
        }
        if (c->cursor < self->ring_tail) {
            //  Fell off the ring's tail: what it missed is gone.
            self->gw.sse_fell_behind++;
            s_client_reset (self, c, "behind");
            continue;
        }
        if (c->cursor >= self->ring_head)
            break;
        s_blob_t *frame = s_ring_at (self, c->cursor);
        if (!s_filter_match (c, frame)) {
            c->cursor++;
            c->pos = frame->pos + frame->len;
            if (--scan == 0) {
                more = true;
                break;
            }
            continue;
        }
        if (frame->len <= space - n) {
            memcpy (out + n, frame->data, frame->len);
            n += frame->len;
        }
        else if (n == 0)
            //  Larger than one write: send it in parts, holding it.
            c->cur = s_blob_ref (frame);
        else
            break;
        c->cursor++;
        c->pos = frame->pos + frame->len;
        self->gw.sse_frames++;
    }
    if (n > 0) {
        if (lws_write (c->wsi, (unsigned char *) out, n, LWS_WRITE_HTTP) < (int) n)
            return -1;
        self->gw.sse_bytes += n;
        c->last_write_ms = mw_http_now_ms ();
    }
    //  On HTTP/2 always come back once more: lws flushes a partly written
    //  frame only before the stream's next WRITEABLE (see s_response_write).
    if (more || (c->h2 && n > 0) || c->pre_off < c->pre_len || c->cur || c->need_link ||
        (c->need_snapshot && s_snapshot (self)) ||
        (!c->need_snapshot && c->cursor < self->ring_head))
        lws_callback_on_writable (c->wsi);
    return 0;
}

//  --------------------------------------------------------------------------
//  Draining the queue (service thread)

//  A reset starts a new generation: only a status handed over after it
//  (rendered after whatever made the reset: a resync, frames dropped by an
//  overflow) can be a snapshot. Ids may start over (a new broker epoch).
static void
s_on_reset (mw_http_t *self, const char *reason)
{
    s_ring_clear (self);
    s_blob_unref (&self->snapshot);
    self->gen_has_events = false;
    self->gen++;
    self->newest_id = 0;
    for (s_conn_t *c = self->clients; c; c = c->next)
        if (!c->closing)
            s_client_reset (self, c, reason);
}

static void
s_on_status (mw_http_t *self, s_msg_t *msg)
{
    s_blob_unref (&self->status);
    s_blob_unref (&self->snapshot);
    mw_render_index_release (&self->status_ix);
    self->status = msg->blob;
    msg->blob = NULL;
    self->status_ix = msg->index;
    mw_render_index_init (&msg->index);
    self->status_id = msg->id;
    self->status_epoch = msg->epoch;
    self->status_gen = self->gen;
    snprintf (self->etag, sizeof (self->etag), "\"%016" PRIx64 "-%" PRIu64 "\"", msg->epoch,
              msg->id);
    if (msg->id > self->newest_id)
        self->newest_id = msg->id;
    //  A generation without events yet (at start, after a reset) begins at
    //  this state: a client that saw it can resume from here.
    if (self->floor_id == UINT64_MAX && !self->gen_has_events)
        self->floor_id = msg->id;
    self->gw.http_status_renders++;
}

static void
s_on_link (mw_http_t *self, const mw_http_link_t *link)
{
    bool changed = link->up != self->link.up;
    self->link = *link;
    if (!changed)
        return;
    char text[160];
    int len = snprintf (text, sizeof (text),
                        "event: broker\ndata: {\"up\":%s,\"epoch\":\"%016" PRIx64
                        "\",\"last_id\":%" PRIu64 "}\n\n",
                        link->up ? "true" : "false", link->epoch, link->last_id);
    s_blob_t *frame = s_blob_new ((size_t) len);
    if (!frame)
        return;
    memcpy (frame->inline_, text, (size_t) len);
    frame->len = (size_t) len;
    frame->kind = S_BLOB_CONTROL;
    frame->id = self->newest_id;
    s_ring_push (self, frame);
}

static void
s_drain (mw_http_t *self)
{
    pthread_mutex_lock (&self->lock);
    s_msg_t *msg = self->queue_head;
    self->queue_head = self->queue_tail = NULL;
    self->queue_bytes = 0;
    pthread_mutex_unlock (&self->lock);
    if (!msg)
        return;
    bool wake = false;
    while (msg) {
        s_msg_t *next = msg->next;
        switch (msg->kind) {
            case S_MSG_FRAME:
                s_ring_push (self, msg->blob);
                msg->blob = NULL;
                wake = true;
                break;
            case S_MSG_RESET:
                s_on_reset (self, msg->reason);
                wake = true;
                break;
            case S_MSG_STATUS:
                s_on_status (self, msg);
                wake = true;
                break;
            case S_MSG_METRICS:
                s_blob_unref (&self->metrics);
                self->metrics = msg->blob;
                msg->blob = NULL;
                break;
            case S_MSG_LINK:
                s_on_link (self, &msg->link);
                wake = true;
                break;
        }
        s_msg_free (msg);
        msg = next;
    }
    if (wake)
        s_clients_wake (self);
}

//  --------------------------------------------------------------------------
//  Responses

static void
s_conn_release (mw_http_t *self, s_conn_t *c)
{
    s_client_unlink (self, c);
    s_unwait_window (self, c);
    for (int i = 0; i < S_SEGS; i++)
        s_blob_unref (&c->seg[i].blob);
    s_blob_unref (&c->cur);
    mw_buf_release (&c->own);
    free (c->filter_mem);
    c->filter_mem = NULL;
    c->kind = S_CONN_IDLE;
    c->seg_count = c->seg_at = 0;
    c->seg_off = 0;
    c->type_count = 0;
    c->miner = c->task_id = NULL;
}

static void
s_count (mw_http_t *self, unsigned status)
{
    self->gw.http_responses[mw_render_http_slot (status)]++;
}

#define S_CSP_JSON "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#define S_CSP_HTML                                                                                 \
    "default-src 'none'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src "  \
    "'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

static int
s_header (struct lws *wsi, const char *name, const char *value, unsigned char **p,
          unsigned char *end)
{
    return lws_add_http_header_by_name (wsi, (const unsigned char *) name,
                                        (const unsigned char *) value, (int) strlen (value), p,
                                        end);
}

//  Write the status line and headers. content_len UINT64_MAX: none (SSE).
//  extra: more "name:\0value" pairs as an array of strings, NULL-ended.
static int
s_write_headers (mw_http_t *self, s_conn_t *c, unsigned status, const char *ctype,
                 uint64_t content_len, const char *const *extra, const char *csp)
{
    unsigned char buf[LWS_PRE + 2048];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof (buf) - 1;
    struct lws *wsi = c->wsi;
    if (status == 304) {
        //  No content-length: in a 304 it would have to be the length of
        //  the 200 it stands for (RFC 9110, 8.6), not of its empty body.
        //  Not through lws_add_http_common_headers, which would mark the
        //  connection "close" for want of a length.
        if (lws_add_http_header_status (wsi, status, &p, end))
            return -1;
    }
    else if (lws_add_http_common_headers (wsi, status, ctype,
                                          content_len == UINT64_MAX
                                              ? LWS_ILLEGAL_HTTP_CONTENT_LEN
                                              : (lws_filepos_t) content_len,
                                          &p, end))
        return -1;
    if (s_header (wsi, "content-security-policy:", csp ? csp : S_CSP_JSON, &p, end) ||
        s_header (wsi, "x-content-type-options:", "nosniff", &p, end) ||
        s_header (wsi, "x-frame-options:", "DENY", &p, end) ||
        s_header (wsi, "referrer-policy:", "no-referrer", &p, end))
        return -1;
    if (self->cfg.cors_origin[0]) {
        if (s_header (wsi, "access-control-allow-origin:", self->cfg.cors_origin, &p, end) ||
            s_header (wsi, "access-control-expose-headers:", "ETag", &p, end) ||
            (strcmp (self->cfg.cors_origin, "*") && s_header (wsi, "vary:", "Origin", &p, end)))
            return -1;
    }
    for (int i = 0; extra && extra[i]; i += 2)
        if (s_header (wsi, extra[i], extra[i + 1], &p, end))
            return -1;
    if (c->close_after && !c->h2 && s_header (wsi, "connection:", "close", &p, end))
        return -1;
    if (lws_finalize_write_http_header (wsi, start, &p, end))
        return -1;
    s_count (self, status & 0xffff);
    return 0;
}

static uint64_t
s_body_len (const s_conn_t *c)
{
    uint64_t len = 0;
    for (int i = 0; i < c->seg_count; i++)
        len += c->seg[i].len;
    return len;
}

//  Send a response whose body is the connection's segments. Return 0, or
//  -1 to close.
static int
s_respond (mw_http_t *self, s_conn_t *c, unsigned status, const char *ctype,
           const char *const *extra, const char *csp)
{
    c->kind = S_CONN_RESPONSE;
    if (s_write_headers (self, c, status, ctype, s_body_len (c), extra, csp) != 0)
        return -1;
    lws_callback_on_writable (c->wsi);
    return 0;
}

//  A JSON error: {"error":CODE,"message":TEXT,"status":N}.
static int
s_respond_error (mw_http_t *self, s_conn_t *c, unsigned status, const char *code,
                 const char *message, const char *const *extra)
{
    mw_buf_reset (&c->own);
    mw_buf_printf (&c->own, "{\"error\":\"%s\",\"message\":", code);
    mw_json_string (&c->own, message, strlen (message));
    mw_buf_printf (&c->own, ",\"status\":%u}\n", status);
    if (c->own.failed)
        return -1;
    c->seg[0] = (s_seg_t){NULL, 0, c->own.len};
    c->seg_count = 1;
    return s_respond (self, c, status, "application/json", extra, NULL);
}

//  Write the next part of a response body. Return 0, or -1 to close.
static int
s_response_write (mw_http_t *self, s_conn_t *c)
{
    size_t space = c->h2 ? MW_HTTP_WRITE_H2 : MW_HTTP_WRITE_H1;
    if (c->h2) {
        lws_fileofs_t allow = lws_get_peer_write_allowance (c->wsi);
        if (allow >= 0 && (uint64_t) allow < space)
            space = (size_t) allow;
    }
    char *out = (char *) self->stage + LWS_PRE;
    size_t n = 0;
    if (!c->head_only)
        while (n < space && c->seg_at < c->seg_count) {
            s_seg_t *seg = &c->seg[c->seg_at];
            const char *base = seg->blob ? seg->blob->data : c->own.data;
            size_t k = seg->len - c->seg_off;
            if (k > space - n)
                k = space - n;
            memcpy (out + n, base + seg->off + c->seg_off, k);
            n += k;
            c->seg_off += k;
            if (c->seg_off == seg->len) {
                c->seg_at++;
                c->seg_off = 0;
            }
        }
    bool final = c->head_only || c->seg_at == c->seg_count;
    if (n == 0 && !final) {
        //  No HTTP/2 window yet: the housekeeping tick asks again.
        s_wait_window (self, c);
        return 0;
    }
    if (n > 0 || c->h2) {
        //  HTTP/2 ends the stream with an empty DATA frame if need be.
        if (lws_write (c->wsi, (unsigned char *) out, n,
                       final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int) n)
            return -1;
    }
    if (!final) {
        lws_callback_on_writable (c->wsi);
        return 0;
    }
    bool close_after = c->close_after;
    s_conn_release (self, c);
    if (close_after)
        return -1;
    if (c->h2) {
        //  lws 4.1.6 may keep the tail of a DATA frame that TLS did not take
        //  at once, and flushes it only before the stream's next WRITEABLE:
        //  ask for one, and complete the transaction there.
        c->kind = S_CONN_DRAIN;
        lws_callback_on_writable (c->wsi);
        return 0;
    }
    return lws_http_transaction_completed (c->wsi) ? -1 : 0;
}

//  --------------------------------------------------------------------------
//  Requests

//  The parameters of a request (parsed by mw_httpparse).
typedef mw_http_query_t s_query_t;
_Static_assert (MW_HTTPPARSE_TYPES_MAX == MW_HTTP_TYPES_MAX, "one limit of ?types=");
_Static_assert (MW_HTTPPARSE_SECRET_MAX == MW_HTTP_SECRET_MAX, "one limit of a secret");

//  Parse the query string. Return 0, or -1 with a message for a 400.
static int
s_query_parse (mw_http_t *self, struct lws *wsi, s_query_t *q, char *msg, size_t msg_size)
{
    mw_http_query_init (q);
    size_t size = self->cfg.max_header + 1;
    char *arg = (char *) malloc (size);
    if (!arg) {
        s_err (msg, msg_size, "out of memory");
        return -1;
    }
    int rc = -1;
    for (int i = 0;; i++) {
        int len = lws_hdr_copy_fragment (wsi, arg, (int) size, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (len < 0)
            break;
        if (mw_http_query_arg (q, arg, msg, msg_size) != 0)
            goto done;
    }
    rc = 0;
done:
    free (arg);
    return rc;
}

//  Check the credentials of a request. Return true if it may pass.
static bool
s_authorized (mw_http_t *self, struct lws *wsi, const s_query_t *q)
{
    const mw_http_config_t *cfg = &self->cfg;
    if (!cfg->auth_token[0] && !cfg->basic_auth[0])
        return true;
    char header[MW_HTTP_SECRET_MAX * 2];
    int len = lws_hdr_copy (wsi, header, (int) sizeof (header), WSI_TOKEN_HTTP_AUTHORIZATION);
    return mw_http_authorized (cfg->auth_token, cfg->basic_auth, q->has_token ? q->token : NULL,
                               len > 0 ? header : NULL);
}

static int
s_respond_unauthorized (mw_http_t *self, s_conn_t *c)
{
    const char *extra[5] = {NULL};
    int k = 0;
    if (self->cfg.basic_auth[0]) {
        extra[k++] = "www-authenticate:";
        extra[k++] = "Basic realm=\"minerwatch\", charset=\"UTF-8\"";
    }
    else {
        extra[k++] = "www-authenticate:";
        extra[k++] = "Bearer realm=\"minerwatch\"";
    }
    return s_respond_error (self, c, 401, "unauthorized",
                            "this gateway needs credentials: 'Authorization: Bearer TOKEN', "
                            "?token=TOKEN, or HTTP basic authentication, as configured",
                            extra);
}

static bool
s_etag_matches (struct lws *wsi, const char *etag)
{
    char header[512];
    int len = lws_hdr_copy (wsi, header, (int) sizeof (header), WSI_TOKEN_HTTP_IF_NONE_MATCH);
    if (len <= 0)
        return false;
    if (strcmp (header, "*") == 0)
        return true;
    return strstr (header, etag) != NULL;
}

//  The dashboard page and its files (gateway/dashboard/, embedded at build):
//  static bytes with an ETag from their hash; no-cache makes a browser ask
//  again each time, and a matching If-None-Match gets 304 without a body.
static int
s_serve_dashboard (mw_http_t *self, s_conn_t *c, struct lws *wsi,
                   const mw_dashboard_asset_t *asset)
{
    const char *extra[] = {"etag:", asset->etag, "cache-control:", "no-cache", NULL};
    const char *csp = strcmp (asset->path, "/api/dashboard") ? NULL : S_CSP_HTML;
    if (s_etag_matches (wsi, asset->etag)) {
        c->seg_count = 0;
        c->head_only = true;
        return s_respond (self, c, 304, asset->content_type, extra, csp);
    }
    mw_buf_reset (&c->own);
    mw_buf_append (&c->own, asset->data, asset->len);
    if (c->own.failed)
        return -1;
    c->seg[0] = (s_seg_t){NULL, 0, c->own.len};
    c->seg_count = 1;
    return s_respond (self, c, 200, asset->content_type, extra, csp);
}

static int
s_serve_status (mw_http_t *self, s_conn_t *c, struct lws *wsi, const s_query_t *q)
{
    if (!self->status)
        return s_respond_error (self, c, 503, "starting",
                                "no state from the broker yet; retry in a moment", NULL);
    const char *extra[] = {"etag:", self->etag, "cache-control:", "no-cache", NULL};
    if (s_etag_matches (wsi, self->etag)) {
        c->seg_count = 0;
        c->head_only = true;
        return s_respond (self, c, 304, "application/json", extra, NULL);
    }
    mw_render_range_t range[3];
    uint64_t limit = q->has_limit ? q->limit : MW_RENDER_LIMIT_DEFAULT;
    mw_render_select (&self->status_ix, self->status_ix.start + self->status->len,
                      q->has_since ? q->since : 0, (size_t) (limit > SIZE_MAX ? SIZE_MAX : limit),
                      range);
    //  The render ends without a newline; the answer gets one.
    mw_buf_reset (&c->own);
    mw_buf_putc (&c->own, '\n');
    if (c->own.failed)
        return -1;
    for (int i = 0; i < 3; i++)
        c->seg[i] = (s_seg_t){s_blob_ref (self->status), range[i].off - self->status_ix.start,
                              range[i].len};
    c->seg[3] = (s_seg_t){NULL, 0, 1};
    c->seg_count = 4;
    return s_respond (self, c, 200, "application/json", extra, NULL);
}

//  Fill gw with the live counters and the link, as of now.
static void
s_gateway_counters (mw_http_t *self, mw_render_gateway_t *gw)
{
    *gw = self->gw;
    gw->sse_clients_max = self->cfg.max_clients;
    gw->ring_frames = self->ring_head - self->ring_tail;
    gw->ring_bytes = self->ring_bytes;
    gw->ring_max_frames = self->cfg.ring_frames;
    gw->ring_max_bytes = self->cfg.ring_bytes;
    gw->client_max_unsent = self->cfg.client_max_unsent;
    gw->broker_up = self->link.up;
    gw->broker_epoch = self->link.epoch;
    gw->last_id = self->link.last_id;
    int64_t now = mw_http_now_ms ();
    gw->heartbeat_age_ms = self->link.last_heartbeat_ms > 0 && now >= self->link.last_heartbeat_ms
                               ? (uint64_t) (now - self->link.last_heartbeat_ms)
                               : UINT64_MAX;
    gw->resyncs = self->link.resyncs;
    gw->gaps = self->link.gaps;
    gw->link_downs = self->link.link_downs;
    gw->updates = self->link.updates;
    gw->updates_skipped = self->link.updates_skipped;
}

static int
s_serve_metrics (mw_http_t *self, s_conn_t *c)
{
    mw_render_gateway_t gw;
    s_gateway_counters (self, &gw);
    //  Count this response in what it reports.
    gw.http_responses[mw_render_http_slot (200)]++;
    mw_buf_reset (&c->own);
    if (mw_render_metrics (&c->own, NULL, &gw) != 0)
        return -1;
    c->seg_count = 0;
    if (self->metrics)
        c->seg[c->seg_count++] = (s_seg_t){s_blob_ref (self->metrics), 0, self->metrics->len};
    c->seg[c->seg_count++] = (s_seg_t){NULL, 0, c->own.len};
    static const char *const extra[] = {"cache-control:", "no-store", NULL};
    return s_respond (self, c, 200, "text/plain; version=0.0.4; charset=utf-8", extra, NULL);
}

static int
s_serve_health (mw_http_t *self, s_conn_t *c)
{
    mw_render_gateway_t gw;
    s_gateway_counters (self, &gw);
    mw_buf_reset (&c->own);
    if (mw_render_health (&c->own, &gw) != 0 || mw_buf_putc (&c->own, '\n') != 0)
        return -1;
    c->seg[0] = (s_seg_t){NULL, 0, c->own.len};
    c->seg_count = 1;
    static const char *const extra[] = {"cache-control:", "no-store", NULL};
    return s_respond (self, c, 200, "application/json", extra, NULL);
}

//  Read Last-Event-ID. Return 1 and the id, 0 if absent, -1 if malformed.
//  Must run before lws_http_mark_sse(), which lets the headers go. On
//  HTTP/2 lws 4.1.6 cannot read custom headers: ?last_event_id= is the way.
static int
s_last_event_id (struct lws *wsi, uint64_t *id)
{
    char value[32];
    int len = lws_hdr_custom_copy (wsi, value, (int) sizeof (value), "last-event-id:", 14);
    if (len < 0)
        return lws_hdr_custom_length (wsi, "last-event-id:", 14) > 0 ? -1 : 0;
    return mw_http_last_event_id (value, id);
}

//  Cap the kernel's send buffer of an HTTP/1 SSE connection. Left to
//  itself Linux grows it to 4 MiB per socket: a client that stops reading
//  then pins that much kernel memory, and the service thread spends its
//  time filling it (1000 such clients took 825 MB of writes in a test). The
//  unsent bytes stay in the shared ring instead, where --client-max-unsent
//  bounds them. Not on HTTP/2, whose socket all the streams share.
static void
s_limit_send_buffer (mw_http_t *self, struct lws *wsi)
{
    if (!self->cfg.send_buffer)
        return;
    int fd = lws_get_socket_fd (wsi);
    int size = (int) self->cfg.send_buffer;
    if (fd >= 0 && setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof (size)) != 0 &&
        !self->send_buffer_warned) {
        self->send_buffer_warned = true;
        fprintf (stderr,
                 "%s: cannot set SO_SNDBUF of an SSE connection to %d: %s (further failures "
                 "not logged)\n",
                 s_name (self), size, strerror (errno));
    }
}

static int
s_serve_live (mw_http_t *self, s_conn_t *c, struct lws *wsi, const s_query_t *q)
{
    uint64_t last_id = 0;
    bool has_last = false;
    //  The header wins: EventSource sends the newest id there when it
    //  reconnects, with the URL (and its ?last_event_id=) unchanged.
    int rc = s_last_event_id (wsi, &last_id);
    if (rc < 0)
        return s_respond_error (self, c, 400, "bad_request",
                                "Last-Event-ID: expected a broker id (a whole number)", NULL);
    has_last = rc == 1;
    if (!has_last && q->has_last_id) {
        last_id = q->last_id;
        has_last = true;
    }
    if (c->head_only) {
        static const char *const extra[] = {"cache-control:", "no-cache", NULL};
        c->seg_count = 0;
        return s_respond (self, c, 200, "text/event-stream", extra, NULL);
    }
    if (self->gw.sse_clients >= self->cfg.max_clients) {
        self->gw.sse_rejected++;
        static const char *const extra[] = {"retry-after:", "5", NULL};
        return s_respond_error (self, c, 503, "too_many_clients",
                                "this gateway serves its maximum number of live clients "
                                "(--max-clients); retry later or use /api/dashboard/live/status",
                                extra);
    }
    //  Filters: one allocation holds the strings.
    size_t types_len = 0;
    for (int i = 0; i < q->type_count; i++)
        types_len += strlen (q->types + types_len) + 1;
    size_t need = types_len + (q->has_miner ? strlen (q->miner) + 1 : 0) +
                  (q->has_task_id ? strlen (q->task_id) + 1 : 0);
    if (need) {
        c->filter_mem = (char *) malloc (need);
        if (!c->filter_mem)
            return -1;
        char *p = c->filter_mem;
        memcpy (p, q->types, types_len);
        size_t off = 0;
        for (int i = 0; i < q->type_count; i++) {
            c->types[i] = p + off;
            off += strlen (p + off) + 1;
        }
        c->type_count = q->type_count;
        p += types_len;
        if (q->has_miner) {
            c->miner_len = strlen (q->miner);
            memcpy (p, q->miner, c->miner_len + 1);
            c->miner = p;
            p += c->miner_len + 1;
        }
        if (q->has_task_id) {
            c->task_id_len = strlen (q->task_id);
            memcpy (p, q->task_id, c->task_id_len + 1);
            c->task_id = p;
        }
    }
    static const char *const extra[] = {"cache-control:", "no-cache", "x-accel-buffering:", "no",
                                        NULL};
    if (s_write_headers (self, c, 200, "text/event-stream", UINT64_MAX, extra, NULL) != 0)
        return -1;
    //  From here the stream lives as long as the client: no timeout, and the
    //  request headers go back to the pool. lws_http_mark_sse() does both
    //  on HTTP/2 (and marks the stream immortal); on HTTP/1.1 lws 4.1.6
    //  logs an error from it, so do the two steps directly.
    if (c->h2)
        lws_http_mark_sse (wsi);
    else {
        lws_set_timeout (wsi, NO_PENDING_TIMEOUT, 0);
        lws_http_headers_detach (wsi);
        s_limit_send_buffer (self, wsi);
    }
    c->kind = S_CONN_SSE;
    c->last_write_ms = mw_http_now_ms ();
    s_pre_append (c, "retry: %d\n\n", MW_HTTP_RETRY_MS);
    c->need_link = true;
    //  Resume when every event after last_id is still in the ring.
    if (has_last && self->floor_id != UINT64_MAX && last_id >= self->floor_id &&
        last_id <= self->newest_id && self->status_gen == self->gen) {
        c->cursor = s_ring_after (self, last_id);
        c->pos = s_ring_pos (self, c->cursor);
        self->gw.sse_resumed++;
    }
    else
        c->need_snapshot = true;
    s_client_link (self, c);
    self->gw.sse_connections++;
    lws_callback_on_writable (wsi);
    return 0;
}

//  The request method: 0 GET, 1 HEAD, 2 OPTIONS, -1 anything else.
static int
s_method (struct lws *wsi)
{
    char *uri;
    int uri_len;
    int m = lws_http_get_uri_and_method (wsi, &uri, &uri_len);
    if (m == LWSHUMETH_COLON_PATH) {
        char method[16];
        if (lws_hdr_copy (wsi, method, (int) sizeof (method), WSI_TOKEN_HTTP_COLON_METHOD) <= 0)
            return -1;
        if (!strcmp (method, "GET"))
            return 0;
        if (!strcmp (method, "HEAD"))
            return 1;
        if (!strcmp (method, "OPTIONS"))
            return 2;
        return -1;
    }
    if (m == LWSHUMETH_GET)
        return 0;
    if (m == LWSHUMETH_HEAD)
        return 1;
    if (m == LWSHUMETH_OPTIONS)
        return 2;
    return -1;
}

//  The address / redirects to: the page, with ?token= when the request had
//  one, percent-encoded (the query parser decoded it). size must hold
//  "/api/dashboard?token=" and three bytes per byte of the token.
static void
s_redirect_location (char *out, size_t size, const char *token)
{
    static const char hex[] = "0123456789ABCDEF";
    int n = snprintf (out, size, "/api/dashboard%s", token ? "?token=" : "");
    size_t at = n > 0 ? (size_t) n : 0;
    for (const char *t = token; t && *t && at + 4 <= size; t++) {
        unsigned char ch = (unsigned char) *t;
        if ((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            out[at++] = (char) ch;
        else {
            out[at++] = '%';
            out[at++] = hex[ch >> 4];
            out[at++] = hex[ch & 15];
        }
    }
    out[at < size ? at : size - 1] = 0;
}

static int
s_on_http (mw_http_t *self, s_conn_t *c, struct lws *wsi, const char *path)
{
    s_conn_release (self, c);
    c->wsi = wsi;
    c->h2 = lws_get_network_wsi (wsi) != wsi;
    c->close_after = false;
    c->head_only = false;
    c->closing = false;
    int method = s_method (wsi);
    if (method < 0 || (method == 2 && !self->cfg.cors_origin[0])) {
        //  The body of a request we refuse is not read: close after.
        c->close_after = true;
        static const char *const extra[] = {"allow:", "GET, HEAD", NULL};
        return s_respond_error (self, c, 405, "method_not_allowed", "only GET and HEAD are served",
                                extra);
    }
    if (method == 2) {
        //  CORS preflight.
        static const char *const extra[] = {"access-control-allow-methods:",
                                            "GET, HEAD",
                                            "access-control-allow-headers:",
                                            "Authorization, Last-Event-ID, If-None-Match",
                                            "access-control-max-age:",
                                            "600",
                                            NULL};
        c->seg_count = 0;
        return s_respond (self, c, 204, "text/plain", extra, NULL);
    }
    c->head_only = method == 1;
    s_query_t *q = (s_query_t *) malloc (sizeof (s_query_t));
    if (!q)
        return -1;
    char msg[160];
    int rc;
    if (s_query_parse (self, wsi, q, msg, sizeof (msg)) != 0) {
        rc = s_respond_error (self, c, 400, "bad_request", msg, NULL);
        goto done;
    }
    bool open =
        self->cfg.open_metrics && (!strcmp (path, "/metrics") || !strcmp (path, "/healthz"));
    //  The page needs credentials like the data; its script and style hold
    //  no data and are served to anyone, so a page opened with ?token= (which
    //  the browser does not repeat for them) still loads them.
    const mw_dashboard_asset_t *asset = mw_dashboard_find (path);
    if (asset && strcmp (path, "/api/dashboard"))
        open = true;
    if (!open && !s_authorized (self, wsi, q)) {
        rc = s_respond_unauthorized (self, c);
        goto done;
    }
    if (!strcmp (path, "/api/dashboard/live"))
        rc = s_serve_live (self, c, wsi, q);
    else if (!strcmp (path, "/api/dashboard/live/status"))
        rc = s_serve_status (self, c, wsi, q);
    else if (asset)
        rc = s_serve_dashboard (self, c, wsi, asset);
    else if (!strcmp (path, "/metrics"))
        rc = s_serve_metrics (self, c);
    else if (!strcmp (path, "/healthz"))
        rc = s_serve_health (self, c);
    else if (!strcmp (path, "/")) {
        //  A page opened as /?token=X keeps its token: the browser does not
        //  carry it over a redirect by itself, and the page reads it from
        //  its own address.
        char location[sizeof ("/api/dashboard?token=") + 3 * sizeof (q->token)];
        s_redirect_location (location, sizeof (location), q->has_token ? q->token : NULL);
        const char *const extra[] = {"location:", location, NULL};
        c->seg_count = 0;
        rc = s_respond (self, c, 302, "text/plain", extra, NULL);
    }
    else
        rc = s_respond_error (self, c, 404, "not_found",
                              "no such path; the gateway serves /api/dashboard, "
                              "/api/dashboard/live, /api/dashboard/live/status, /metrics and "
                              "/healthz",
                              NULL);
done:
    free (q);
    return rc;
}

//  --------------------------------------------------------------------------
//  Housekeeping: keepalives, the unsent cap, published counters

static void
s_on_tick (lws_sorted_usec_list_t *sul)
{
    mw_http_t *self = lws_container_of (sul, mw_http_t, sul);
    int64_t now = mw_http_now_ms ();
    int64_t idle = (int64_t) self->cfg.keepalive_s * 1000;
    bool peek = ++self->ticks % (1000 / MW_HTTP_TICK_MS) == 0;
    for (s_conn_t *c = self->clients; c; c = c->next) {
        if (c->closing)
            continue;
        //  lws 4.1.6 does not watch an HTTP/1.1 SSE socket for reading, so
        //  it misses a client that went away until a write fails. Once a
        //  second, look: a socket at end of file is closed now. (HTTP/2
        //  streams end with RST_STREAM, which lws sees.)
        if (peek && !c->h2) {
            char byte;
            ssize_t n = recv (lws_get_socket_fd (c->wsi), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                c->closing = true;
                lws_set_timeout (c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
                continue;
            }
        }
        if (!c->need_snapshot && s_client_owed (self, c) > self->cfg.client_max_unsent)
            s_client_close_slow (self, c);
        else if (now - c->last_write_ms >= idle) {
            c->need_keepalive = true;
            //  Counted as written: a client that does not take it is
            //  not asked again every tick.
            c->last_write_ms = now;
            lws_callback_on_writable (c->wsi);
        }
    }
    while (self->waiters) {
        s_conn_t *c = self->waiters;
        s_unwait_window (self, c);
        lws_callback_on_writable (c->wsi);
    }
    mw_render_gateway_t gw;
    s_gateway_counters (self, &gw);
    pthread_mutex_lock (&self->stats_lock);
    self->published = gw;
    pthread_mutex_unlock (&self->stats_lock);
    lws_sul_schedule (self->context, 0, &self->sul, s_on_tick,
                      (lws_usec_t) MW_HTTP_TICK_MS * LWS_US_PER_MS);
}

//  --------------------------------------------------------------------------
//  The lws callback

static int
s_callback (struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct lws_context *context = lws_get_context (wsi);
    mw_http_t *self = context ? (mw_http_t *) lws_context_user (context) : NULL;
    s_conn_t *c = (s_conn_t *) user;
    switch (reason) {
        case LWS_CALLBACK_PROTOCOL_INIT:
            //  lws may run this from lws_create_context() or from the first
            //  lws_service() call.
            if (self && !self->ticking) {
                self->ticking = true;
                lws_sul_schedule (context, 0, &self->sul, s_on_tick,
                                  (lws_usec_t) MW_HTTP_TICK_MS * LWS_US_PER_MS);
            }
            return 0;
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
            if (self)
                s_drain (self);
            return 0;
        case LWS_CALLBACK_HTTP:
            return s_on_http (self, c, wsi, in ? (const char *) in : "");
        case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
            //  Cleartext HTTP/2 by upgrade (h2c): lws 4.1.6 gives the
            //  upgraded stream no send window, so its answer never leaves.
            //  Refuse it (hang up); HTTP/2 is served over TLS, by ALPN.
            if (in && !strcmp ((const char *) in, "h2c"))
                return -1;
            return 0;
        case LWS_CALLBACK_HTTP_BODY:
            //  No endpoint takes a body; the request was refused already
            //  (405) and the answer goes out once the body is in.
            return 0;
        case LWS_CALLBACK_HTTP_BODY_COMPLETION:
            if (c && c->kind == S_CONN_RESPONSE)
                lws_callback_on_writable (wsi);
            return 0;
        case LWS_CALLBACK_HTTP_WRITEABLE:
            if (!c)
                return 0;
            if (c->kind == S_CONN_SSE)
                return s_sse_write (self, c);
            if (c->kind == S_CONN_RESPONSE)
                return s_response_write (self, c);
            if (c->kind == S_CONN_DRAIN) {
                c->kind = S_CONN_IDLE;
                return lws_http_transaction_completed (wsi) ? -1 : 0;
            }
            return 0;
        case LWS_CALLBACK_CLOSED_HTTP:
        case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
            if (c && self)
                s_conn_release (self, c);
            return 0;
        default:
            break;
    }
    return lws_callback_http_dummy (wsi, reason, user, in, len);
}

static const struct lws_protocols s_protocols[] = {
    {"http", s_callback, sizeof (s_conn_t), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

//  --------------------------------------------------------------------------
//  The class

static void *
s_service (void *arg)
{
    mw_http_t *self = (mw_http_t *) arg;
    while (!self->stop)
        if (lws_service (self->context, 0) < 0)
            break;
    return NULL;
}

static const char *s_log_name = "minerwatch-gateway";
static bool s_log_quiet = false;

static void
s_lws_log (int level, const char *line)
{
    if (s_log_quiet && level != LLL_ERR)
        return;
    //  lws lines end with a newline already.
    fprintf (stderr, "%s: lws: %s", s_log_name, line);
}

//  Raise the soft open-file limit to what max_clients needs (each client
//  is a socket; lws sizes its tables from this limit too).
static void
s_raise_nofile (const mw_http_config_t *cfg, const char *name)
{
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t) cfg->max_clients + 256;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
        return;
    rlim_t target = want;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        target = rl.rlim_max;
    if (target > rl.rlim_cur) {
        struct rlimit raised = {target, rl.rlim_max};
        if (setrlimit (RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = target;
    }
    if (rl.rlim_cur < want)
        fprintf (stderr,
                 "%s: warning: cannot raise the open-file limit to %llu for --max-clients %u "
                 "(soft %llu, hard %llu): expect fewer clients; raise 'ulimit -n' or systemd's "
                 "LimitNOFILE\n",
                 name, (unsigned long long) want, cfg->max_clients,
                 (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
}

mw_http_t *
mw_http_new (const mw_http_config_t *cfg, char *errbuf, size_t errbuf_size)
{
    assert (cfg);
    if (mw_http_config_check (cfg, errbuf, errbuf_size) != 0)
        return NULL;
    mw_http_t *self = (mw_http_t *) calloc (1, sizeof (mw_http_t));
    if (!self) {
        s_err (errbuf, errbuf_size, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    pthread_mutex_init (&self->lock, NULL);
    pthread_mutex_init (&self->stats_lock, NULL);
    self->floor_id = UINT64_MAX;
    self->gen = 1;
    self->stage = (uint8_t *) malloc (LWS_PRE + MW_HTTP_WRITE_H1);
    self->ring = (s_blob_t **) calloc (cfg->ring_frames, sizeof (s_blob_t *));
    if (!self->stage || !self->ring) {
        s_err (errbuf, errbuf_size, "out of memory for a ring of %u frames", cfg->ring_frames);
        goto fail;
    }
    self->gw.heartbeat_age_ms = UINT64_MAX;
    self->published = self->gw;
    const char *name = s_name (self);
    s_raise_nofile (cfg, name);

    s_log_name = name;
    s_log_quiet = cfg->quiet;
    lws_set_log_level (LLL_ERR | LLL_WARN | (cfg->verbose ? LLL_NOTICE : 0), s_lws_log);

    struct lws_context_creation_info info;
    memset (&info, 0, sizeof (info));
    info.port = cfg->port;
    info.iface = cfg->host;
    info.protocols = s_protocols;
    info.vhost_name = "minerwatch";
    info.server_string = "minerwatch";
    info.user = self;
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
                   LWS_SERVER_OPTION_H2_JUST_FIX_WINDOW_UPDATE_OVERFLOW;
    if (!strchr (cfg->host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info.max_http_header_data = (unsigned short) cfg->max_header;
    info.max_http_header_pool = 256;
    //  lws sizes its per-thread tables from this; the default is the whole
    //  (possibly huge) open-file limit.
    struct rlimit rl;
    unsigned fds = cfg->max_clients + 256;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < fds)
        fds = (unsigned) rl.rlim_cur;
    info.fd_limit_per_thread = fds;
    info.timeout_secs = 30;
    info.keepalive_timeout = 30;
    if (cfg->tls_cert[0]) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
        info.alpn = "h2,http/1.1";
    }
    self->context = NULL;
    struct lws_context *context = lws_create_context (&info);
    if (!context) {
        s_err (errbuf, errbuf_size,
               "cannot serve HTTP on %s:%d: the address may be in use or not on this machine%s "
               "(libwebsockets says why above)",
               cfg->host, cfg->port, cfg->tls_cert[0] ? ", or the TLS files are unusable" : "");
        goto fail;
    }
    self->context = context;
    self->vhost = lws_get_vhost_by_name (context, "minerwatch");
    if (pthread_create (&self->thread, NULL, s_service, self) != 0) {
        s_err (errbuf, errbuf_size, "cannot start the HTTP thread");
        goto fail;
    }
    self->thread_started = true;
    return self;
fail:
    mw_http_destroy (&self);
    return NULL;
}

void
mw_http_destroy (mw_http_t **self_p)
{
    assert (self_p);
    mw_http_t *self = *self_p;
    if (!self)
        return;
    if (self->thread_started) {
        self->stop = 1;
        lws_cancel_service (self->context);
        pthread_join (self->thread, NULL);
    }
    if (self->context) {
        lws_sul_cancel (&self->sul);
        lws_context_destroy (self->context);
    }
    //  lws closed every connection (and released its clients) above.
    s_msg_t *msg = self->queue_head;
    while (msg) {
        s_msg_t *next = msg->next;
        s_msg_free (msg);
        msg = next;
    }
    if (self->ring)
        s_ring_clear (self);
    free (self->ring);
    s_blob_unref (&self->status);
    s_blob_unref (&self->snapshot);
    s_blob_unref (&self->metrics);
    mw_render_index_release (&self->status_ix);
    free (self->stage);
    pthread_mutex_destroy (&self->lock);
    pthread_mutex_destroy (&self->stats_lock);
    free (self);
    *self_p = NULL;
}

int
mw_http_port (mw_http_t *self)
{
    assert (self);
    return self->vhost ? lws_get_vhost_listen_port (self->vhost) : -1;
}
