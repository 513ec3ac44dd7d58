/*  mw_mirror.c - the Clone pattern's client, feeding mw_http.

    One actor thread owns the sockets and the state. Its loop polls the
    pipe (commands), the SUB (updates) and the DEALER (snapshot replies)
    every MW_MIRROR_TICK_MS at most, so its timers (heartbeat watchdog,
    snapshot retries and timeouts, throttled renders) need no other thread.

    States of the link:
      S_WANT      no usable state: ask for a snapshot when retry_at comes
      S_FETCHING  a snapshot is on its way; updates are kept in a buffer
      S_RUN       the state follows the updates
    Updates are always read from the SUB, in every state: a SUB that is not
    read fills up and the broker drops updates for it.
*/
#include "mw_mirror.h"

#include "mw_curve.h"
#include "mw_json.h"
#include "mw_render.h"
#include "mw_state.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MW_MIRROR_TICK_MS 50

typedef enum { S_WANT = 0, S_FETCHING, S_RUN } s_phase_t;

struct _mw_mirror_t {
    mw_mirror_config_t cfg;
    mw_http_t *http;
    zactor_t *actor;
    bool curve;                              //  a CURVE client of the broker
    uint8_t server_key[MW_CURVE_KEY_BYTES]; //  the broker's public key
    mw_curve_pair_t client_pair;            //  our key pair (loaded or new)

    //  Actor thread only.
    zsock_t *sub;
    zsock_t *dealer;
    mw_state_t *state;
    s_phase_t phase;
    uint64_t epoch;
    uint64_t last;
    bool seen_update; //  the subscription delivered: snapshots are covered
    int64_t retry_at;
    int64_t retry_ms;
    int64_t snap_deadline;
    uint8_t *snap; //  chunks so far
    size_t snap_len;
    size_t snap_cap;
    uint64_t snap_seq;
    zlistx_t *buffer; //  zmsg_t * kept while fetching
    bool buffer_overflowed;
    int64_t last_hb_ms; //  0: none yet
    bool link_up;
    bool resync_on_return;
    bool dirty; //  the state changed since the last render
    int64_t last_render_ms;
    int64_t render_every_ms;
    mw_buf_t json;             //  one event's JSON, reused
    mw_render_broker_t broker; //  from the last heartbeat

    //  Counters, under lock (read by mw_mirror_stats).
    pthread_mutex_t lock;
    mw_mirror_stats_t stats;
};

//  --------------------------------------------------------------------------
//  Configuration

void
mw_mirror_config_default (mw_mirror_config_t *cfg)
{
    assert (cfg);
    memset (cfg, 0, sizeof (*cfg));
    snprintf (cfg->updates, sizeof (cfg->updates), "%s", MW_MIRROR_UPDATES_DEFAULT);
    snprintf (cfg->snapshot, sizeof (cfg->snapshot), "%s", MW_MIRROR_SNAPSHOT_DEFAULT);
    cfg->heartbeat_timeout_ms = MW_MIRROR_HEARTBEAT_TIMEOUT_DEFAULT;
    cfg->render_interval_ms = MW_MIRROR_RENDER_INTERVAL_DEFAULT;
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

static const char *s_options[] = {"updates",           "snapshot",          "curve-server-key",
                                  "curve-client-cert", "heartbeat-timeout", "render-interval"};

bool
mw_mirror_config_known (const char *key)
{
    for (size_t i = 0; i < sizeof (s_options) / sizeof (s_options[0]); i++)
        if (strcmp (key, s_options[i]) == 0)
            return true;
    return false;
}

static int
s_ms (const char *key, const char *value, uint32_t min, uint32_t max, uint32_t *out, char *errbuf,
      size_t errbuf_size)
{
    char *end = NULL;
    unsigned long long v = strtoull (value, &end, 10);
    if (!*value || *end || value[0] == '-' || v < min || v > max) {
        s_err (errbuf, errbuf_size, "--%s '%s': expected milliseconds from %u to %u", key, value,
               min, max);
        return -1;
    }
    *out = (uint32_t) v;
    return 0;
}

static int
s_copy (char *dst, size_t size, const char *key, const char *value, char *errbuf,
        size_t errbuf_size)
{
    size_t len = strlen (value);
    if (len >= size) {
        s_err (errbuf, errbuf_size, "--%s: too long (at most %zu bytes)", key, size - 1);
        return -1;
    }
    memcpy (dst, value, len + 1);
    return 0;
}

int
mw_mirror_config_set (mw_mirror_config_t *cfg, const char *key, const char *value, char *errbuf,
                      size_t errbuf_size)
{
    assert (cfg);
    assert (key);
    if (!mw_mirror_config_known (key)) {
        s_err (errbuf, errbuf_size, "unknown option '%s'", key);
        return -1;
    }
    if (!value) {
        s_err (errbuf, errbuf_size, "--%s needs a value", key);
        return -1;
    }
    if (!strcmp (key, "updates"))
        return s_copy (cfg->updates, sizeof (cfg->updates), key, value, errbuf, errbuf_size);
    if (!strcmp (key, "snapshot"))
        return s_copy (cfg->snapshot, sizeof (cfg->snapshot), key, value, errbuf, errbuf_size);
    if (!strcmp (key, "curve-server-key"))
        return s_copy (cfg->curve_server_key, sizeof (cfg->curve_server_key), key, value, errbuf,
                       errbuf_size);
    if (!strcmp (key, "curve-client-cert"))
        return s_copy (cfg->curve_client_cert, sizeof (cfg->curve_client_cert), key, value, errbuf,
                       errbuf_size);
    if (!strcmp (key, "heartbeat-timeout"))
        return s_ms (key, value, 1100, 600000, &cfg->heartbeat_timeout_ms, errbuf, errbuf_size);
    return s_ms (key, value, 10, 60000, &cfg->render_interval_ms, errbuf, errbuf_size);
}

int
mw_mirror_config_check (const mw_mirror_config_t *cfg, char *errbuf, size_t errbuf_size)
{
    assert (cfg);
    if (!cfg->updates[0] || !cfg->snapshot[0]) {
        s_err (errbuf, errbuf_size, "give both --updates and --snapshot (the broker's endpoints)");
        return -1;
    }
    if (cfg->curve_client_cert[0] && !cfg->curve_server_key[0]) {
        s_err (errbuf, errbuf_size, "--curve-client-cert needs --curve-server-key");
        return -1;
    }
    if (cfg->heartbeat_timeout_ms < 1100 || cfg->render_interval_ms < 10) {
        s_err (errbuf, errbuf_size, "a timing of the mirror is out of range (see --help)");
        return -1;
    }
    return 0;
}

void
mw_mirror_config_usage (FILE *out)
{
    fprintf (out,
             "Broker options:\n"
             "  --updates ENDPOINT        the broker's update stream (default %s)\n"
             "  --snapshot ENDPOINT       the broker's snapshot service (default %s)\n"
             "  --curve-server-key KEY    the broker's CURVE public key: 40 characters of Z85,\n"
             "                            or its public certificate file\n"
             "  --curve-client-cert FILE  this gateway's key pair (a zcert secret file), if the\n"
             "                            broker admits only listed clients\n"
             "  --heartbeat-timeout MS    no heartbeat this long: the broker is down (%d)\n"
             "  --render-interval MS      the status JSON is rendered at most this often (%d)\n",
             MW_MIRROR_UPDATES_DEFAULT, MW_MIRROR_SNAPSHOT_DEFAULT,
             MW_MIRROR_HEARTBEAT_TIMEOUT_DEFAULT, MW_MIRROR_RENDER_INTERVAL_DEFAULT);
}

//  --------------------------------------------------------------------------
//  Logging and counters

static void s_log (mw_mirror_t *self, bool verbose_only, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_log (mw_mirror_t *self, bool verbose_only, const char *fmt, ...)
{
    if (self->cfg.quiet || (verbose_only && !self->cfg.verbose))
        return;
    char line[512];
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (line, sizeof (line), fmt, ap);
    va_end (ap);
    fprintf (stderr, "%s: %s\n", self->cfg.log_name ? self->cfg.log_name : "minerwatch-gateway",
             line);
}

//  Publish the counters and tell the HTTP server about the link.
static void
s_share (mw_mirror_t *self)
{
    pthread_mutex_lock (&self->lock);
    self->stats.synced = self->phase == S_RUN;
    self->stats.link_up = self->link_up;
    self->stats.epoch = self->epoch;
    self->stats.last_id = self->last;
    mw_mirror_stats_t st = self->stats;
    pthread_mutex_unlock (&self->lock);
    mw_http_link_t link;
    memset (&link, 0, sizeof (link));
    link.up = self->link_up;
    link.epoch = self->epoch;
    link.last_id = self->last;
    link.last_heartbeat_ms = self->last_hb_ms;
    link.resyncs = st.resyncs;
    link.gaps = st.gaps;
    link.link_downs = st.link_downs;
    link.updates = st.updates;
    link.updates_skipped = st.updates_skipped;
    mw_http_set_link (self->http, &link);
}

#define S_COUNT(field)                                                                             \
    (pthread_mutex_lock (&self->lock), self->stats.field++, pthread_mutex_unlock (&self->lock))

//  --------------------------------------------------------------------------
//  Sockets

static zsock_t *
s_socket (mw_mirror_t *self, int type, const char *endpoints, char *errbuf, size_t errbuf_size)
{
    zsock_t *sock = zsock_new (type);
    if (!sock) {
        s_err (errbuf, errbuf_size, "cannot create a ZeroMQ socket");
        return NULL;
    }
    zsock_set_linger (sock, 0);
    if (type == ZMQ_SUB) {
        zsock_set_rcvhwm (sock, MW_MIRROR_SUB_HWM);
        zsock_set_subscribe (sock, "");
    }
    //  Keys go on before the connect (mw_curve.h: the shared client helper).
    if (self->curve && mw_curve_apply (zsock_resolve (sock), self->server_key,
                                       &self->client_pair, errbuf, errbuf_size) != 0) {
        zsock_destroy (&sock);
        return NULL;
    }
    if (zsock_attach (sock, endpoints, false) != 0) {
        s_err (errbuf, errbuf_size,
               "cannot use endpoint '%s' (expected e.g. >tcp://HOST:PORT to connect, "
               "@tcp://HOST:PORT to bind)",
               endpoints);
        zsock_destroy (&sock);
        return NULL;
    }
    return sock;
}

//  --------------------------------------------------------------------------
//  msgpack maps from the broker (checked before msgpack-c sees them)

static int
s_unpack (msgpack_unpacked *up, const void *data, size_t size)
{
    size_t used;
    if (mw_msgpack_check ((const uint8_t *) data, size, 8, &used) != MW_OK || used != size)
        return -1;
    if (msgpack_unpack_next (up, (const char *) data, size, NULL) != MSGPACK_UNPACK_SUCCESS ||
        up->data.type != MSGPACK_OBJECT_MAP)
        return -1;
    return 0;
}

static msgpack_object *
s_map_get (msgpack_object *map, const char *key)
{
    size_t len = strlen (key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
            memcmp (k->via.str.ptr, key, len) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

//  Return 0 and the value, or -1 if absent or not a uint.
static int
s_map_u64 (msgpack_object *map, const char *key, uint64_t *out)
{
    msgpack_object *o = s_map_get (map, key);
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *out = o->via.u64;
    return 0;
}

static uint64_t
s_map_u64_or (msgpack_object *map, const char *key)
{
    uint64_t v = 0;
    s_map_u64 (map, key, &v);
    return v;
}

typedef struct {
    uint64_t id, epoch, now_ms;
} s_hb_t;

//  Parse a heartbeat; keep the broker's counters for /metrics.
static int
s_hb_parse (mw_mirror_t *self, zframe_t *body, s_hb_t *hb)
{
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    int rc = -1;
    if (s_unpack (&up, zframe_data (body), zframe_size (body)) == 0 &&
        s_map_u64 (&up.data, "id", &hb->id) == 0 &&
        s_map_u64 (&up.data, "epoch", &hb->epoch) == 0 &&
        s_map_u64 (&up.data, "now_ms", &hb->now_ms) == 0) {
        mw_render_broker_t *b = &self->broker;
        msgpack_object *m = &up.data;
        b->known = true;
        b->accepted = s_map_u64_or (m, "accepted");
        b->rejected = s_map_u64_or (m, "rejected");
        b->apply_failed = s_map_u64_or (m, "apply_failed");
        b->snap_served = s_map_u64_or (m, "snap_served");
        b->snap_busy = s_map_u64_or (m, "snap_busy");
        b->snap_dropped = s_map_u64_or (m, "snap_dropped");
        b->connections = s_map_u64_or (m, "connections");
        b->disconnects = s_map_u64_or (m, "disconnects");
        b->auth_failures = s_map_u64_or (m, "auth_failures");
        b->save_failures = s_map_u64_or (m, "save_failures");
        b->reason_count = 0;
        msgpack_object *by = s_map_get (m, "rejected_by");
        if (by && by->type == MSGPACK_OBJECT_MAP)
            for (uint32_t i = 0; i < by->via.map.size && b->reason_count < MW_RENDER_REASONS_MAX;
                 i++) {
                msgpack_object *k = &by->via.map.ptr[i].key;
                msgpack_object *v = &by->via.map.ptr[i].val;
                if (k->type != MSGPACK_OBJECT_STR || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                    continue;
                size_t n = k->via.str.size < sizeof (b->reason_name[0]) - 1
                               ? k->via.str.size
                               : sizeof (b->reason_name[0]) - 1;
                memcpy (b->reason_name[b->reason_count], k->via.str.ptr, n);
                b->reason_name[b->reason_count][n] = 0;
                b->reason_value[b->reason_count++] = v->via.u64;
            }
        rc = 0;
    }
    msgpack_unpacked_destroy (&up);
    return rc;
}

static bool
s_is_hb (zmsg_t *msg)
{
    zframe_t *topic = zmsg_first (msg);
    return topic && zframe_size (topic) == 3 && memcmp (zframe_data (topic), "$hb", 3) == 0;
}

//  --------------------------------------------------------------------------
//  Rendering

static void
s_publish (mw_mirror_t *self)
{
    int64_t t0 = zclock_mono ();
    mw_buf_t status = MW_BUF_INIT;
    mw_render_index_t ix;
    mw_render_index_init (&ix);
    mw_render_opts_t opts = {.epoch = self->epoch};
    if (mw_render_status (&status, self->state, &opts, &ix) == 0)
        mw_http_set_status (self->http, &status, &ix, self->last, self->epoch);
    else
        s_log (self, false, "out of memory rendering the status; it stays as it was");
    mw_buf_release (&status);
    mw_render_index_release (&ix);
    mw_buf_t metrics = MW_BUF_INIT;
    if (mw_render_metrics (&metrics, self->state, NULL) == 0 &&
        mw_render_metrics_broker (&metrics, &self->broker) == 0)
        mw_http_set_metrics (self->http, &metrics);
    mw_buf_release (&metrics);
    s_share (self);
    int64_t now = zclock_mono ();
    //  A big state takes long to render: never spend more than a fifth of
    //  the time rendering.
    self->render_every_ms = (int64_t) self->cfg.render_interval_ms;
    if ((now - t0) * 5 > self->render_every_ms)
        self->render_every_ms = (now - t0) * 5;
    self->last_render_ms = now;
    self->dirty = false;
}

//  --------------------------------------------------------------------------
//  Resync and snapshots

static void
s_buffer_clear (mw_mirror_t *self)
{
    zmsg_t *msg = (zmsg_t *) zlistx_first (self->buffer);
    while (msg) {
        zmsg_destroy (&msg);
        msg = (zmsg_t *) zlistx_next (self->buffer);
    }
    zlistx_purge (self->buffer);
    self->buffer_overflowed = false;
}

static void
s_snap_reset (mw_mirror_t *self)
{
    free (self->snap);
    self->snap = NULL;
    self->snap_len = self->snap_cap = 0;
    self->snap_seq = 0;
}

//  Drop the state's claim to follow the broker: SSE clients reset, a fresh
//  snapshot is asked for.
static void
s_resync (mw_mirror_t *self, const char *reason)
{
    if (self->phase == S_RUN) {
        s_log (self, false, "resynchronizing after id %" PRIu64 " (%s)", self->last, reason);
        mw_http_push_reset (self->http, reason);
    }
    self->phase = S_WANT;
    self->retry_at = zclock_mono ();
    self->retry_ms = MW_MIRROR_RETRY_MIN_MS;
    s_buffer_clear (self);
    s_snap_reset (self);
}

//  A failed snapshot attempt: wait longer before the next.
static void
s_snapshot_failed (mw_mirror_t *self, const char *why)
{
    s_log (self, false, "no snapshot from %s: %s; asking again in %" PRId64 " ms",
           self->cfg.snapshot, why, self->retry_ms);
    s_snap_reset (self);
    //  Replies to the failed request may still come: a new socket ignores them.
    zsock_destroy (&self->dealer);
    self->phase = S_WANT;
    self->retry_at = zclock_mono () + self->retry_ms;
    self->retry_ms =
        self->retry_ms * 2 > MW_MIRROR_RETRY_MAX_MS ? MW_MIRROR_RETRY_MAX_MS : self->retry_ms * 2;
}

static void
s_snapshot_ask (mw_mirror_t *self)
{
    if (!self->dealer) {
        char err[256];
        self->dealer = s_socket (self, ZMQ_DEALER, self->cfg.snapshot, err, sizeof (err));
        if (!self->dealer) {
            s_snapshot_failed (self, err);
            return;
        }
    }
    s_snap_reset (self);
    zstr_send (self->dealer, "$snap?");
    self->phase = S_FETCHING;
    self->snap_deadline = zclock_mono () + MW_MIRROR_SNAP_TIMEOUT_MS;
}

static int s_apply (mw_mirror_t *self, zmsg_t *msg);

//  The end marker arrived: load the state, apply what was kept meanwhile.
static void
s_snapshot_done (mw_mirror_t *self, zframe_t *end)
{
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    uint64_t id = 0, epoch = 0, size = 0, chunks = 0;
    bool ok = s_unpack (&up, zframe_data (end), zframe_size (end)) == 0 &&
              s_map_u64 (&up.data, "id", &id) == 0 && s_map_u64 (&up.data, "epoch", &epoch) == 0 &&
              s_map_u64 (&up.data, "size", &size) == 0 &&
              s_map_u64 (&up.data, "chunks", &chunks) == 0;
    msgpack_unpacked_destroy (&up);
    if (!ok || size != self->snap_len || chunks != self->snap_seq) {
        s_snapshot_failed (self, "the end marker does not match the chunks");
        return;
    }
    char err[256];
    mw_state_t *state = mw_state_load (self->snap, self->snap_len, err, sizeof (err));
    if (!state) {
        s_snapshot_failed (self, err);
        return;
    }
    bool first = self->state == NULL;
    bool new_epoch = !first && epoch != self->epoch;
    mw_state_destroy (&self->state);
    self->state = state;
    self->epoch = epoch;
    self->last = id;
    self->phase = S_RUN;
    self->retry_ms = MW_MIRROR_RETRY_MIN_MS;
    s_log (self, true, "snapshot: id %" PRIu64 ", epoch %016" PRIx64 ", %zu bytes", id, epoch,
           self->snap_len);
    s_snap_reset (self);
    pthread_mutex_lock (&self->lock);
    self->stats.snapshots++;
    if (!first)
        self->stats.resyncs++;
    pthread_mutex_unlock (&self->lock);
    if (new_epoch)
        s_log (self, false, "the broker has a new epoch %016" PRIx64, epoch);
    //  The HTTP server was told to reset when the resync began (or has no
    //  state at all yet); this status is what its clients load.
    s_publish (self);
    //  Then the updates that arrived while the snapshot did.
    bool overflowed = self->buffer_overflowed;
    zlistx_t *kept = self->buffer;
    self->buffer = zlistx_new ();
    self->buffer_overflowed = false;
    zmsg_t *msg = (zmsg_t *) zlistx_first (kept);
    while (msg) {
        if (self->phase == S_RUN)
            s_apply (self, msg);
        zmsg_destroy (&msg);
        msg = (zmsg_t *) zlistx_next (kept);
    }
    zlistx_destroy (&kept);
    if (overflowed && self->phase == S_RUN)
        //  Some updates were not kept: the next one shows a gap anyway.
        s_log (self, true, "updates overflowed the buffer during the snapshot");
}

static void
s_on_snapshot_reply (mw_mirror_t *self)
{
    while (self->dealer && (zsock_events (self->dealer) & ZMQ_POLLIN)) {
        zmsg_t *msg = zmsg_recv (self->dealer);
        if (!msg)
            return;
        if (self->phase != S_FETCHING) {
            zmsg_destroy (&msg);
            continue;
        }
        char *cmd = zmsg_popstr (msg);
        if (cmd && !strcmp (cmd, "$snap") && zmsg_size (msg) == 2) {
            zframe_t *seq_frame = zmsg_first (msg);
            zframe_t *data = zmsg_next (msg);
            msgpack_unpacked up;
            msgpack_unpacked_init (&up);
            size_t off = 0;
            bool ok =
                zframe_size (seq_frame) <= 9 &&
                msgpack_unpack_next (&up, (const char *) zframe_data (seq_frame),
                                     zframe_size (seq_frame), &off) == MSGPACK_UNPACK_SUCCESS &&
                up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                up.data.via.u64 == self->snap_seq &&
                self->snap_len + zframe_size (data) <= MW_MIRROR_SNAP_MAX;
            msgpack_unpacked_destroy (&up);
            if (ok && self->snap_len + zframe_size (data) > self->snap_cap) {
                size_t cap = self->snap_cap ? self->snap_cap : 65536;
                while (cap < self->snap_len + zframe_size (data))
                    cap *= 2;
                uint8_t *grown = (uint8_t *) realloc (self->snap, cap);
                if (grown) {
                    self->snap = grown;
                    self->snap_cap = cap;
                }
                else
                    ok = false;
            }
            if (ok) {
                memcpy (self->snap + self->snap_len, zframe_data (data), zframe_size (data));
                self->snap_len += zframe_size (data);
                self->snap_seq++;
                self->snap_deadline = zclock_mono () + MW_MIRROR_SNAP_TIMEOUT_MS;
            }
            else
                s_snapshot_failed (self, "a chunk out of order, too large, or memory short");
        }
        else if (cmd && !strcmp (cmd, "$snap_end") && zmsg_size (msg) == 1)
            s_snapshot_done (self, zmsg_first (msg));
        else if (cmd && !strcmp (cmd, "$snap_err")) {
            char *why = zmsg_popstr (msg);
            char text[200];
            snprintf (text, sizeof (text), "the broker says: %.150s", why ? why : "");
            zstr_free (&why);
            s_snapshot_failed (self, text);
        }
        else
            s_snapshot_failed (self, "an unexpected reply");
        zstr_free (&cmd);
        zmsg_destroy (&msg);
    }
}

//  --------------------------------------------------------------------------
//  Updates

//  Apply one update in S_RUN. Return 0, or -1 if it made a resync.
static int
s_apply (mw_mirror_t *self, zmsg_t *msg)
{
    if (zmsg_size (msg) != 2) {
        S_COUNT (bad_updates);
        return 0;
    }
    zframe_t *topic = zmsg_first (msg);
    zframe_t *body = zmsg_next (msg);
    if (s_is_hb (msg)) {
        s_hb_t hb;
        if (s_hb_parse (self, body, &hb) != 0) {
            S_COUNT (bad_updates);
            return 0;
        }
        if (hb.epoch != self->epoch) {
            s_resync (self, "epoch");
            return -1;
        }
        if (hb.id <= self->last) {
            S_COUNT (updates_skipped);
            return 0;
        }
        if (hb.id != self->last + 1 || mw_state_tick (self->state, hb.now_ms, hb.id) < 0) {
            S_COUNT (gaps);
            s_resync (self, "gap");
            return -1;
        }
        self->last = hb.id;
        self->dirty = true;
        S_COUNT (updates);
        return 0;
    }
    //  Other broker messages ('$' topics) are not updates of the state.
    if (zframe_size (topic) > 0 && zframe_data (topic)[0] == '$')
        return 0;
    mw_event_t ev;
    mw_event_init (&ev, MW_TYPE_CUSTOM);
    char err[160];
    if (mw_event_decode (&ev, zframe_data (topic), zframe_size (topic), zframe_data (body),
                         zframe_size (body), err, sizeof (err)) != MW_OK ||
        !(ev.has & MW_HAS_ID) || !(ev.has & MW_HAS_BROKER_TS)) {
        //  The broker only sends what decodes: count it; if it was an
        //  event, the next id shows the gap.
        S_COUNT (bad_updates);
        s_log (self, true, "an update that does not decode: %s", err);
        mw_event_release (&ev);
        return 0;
    }
    int rc = 0;
    if (ev.id <= self->last)
        S_COUNT (updates_skipped);
    else if (ev.id != self->last + 1) {
        S_COUNT (gaps);
        s_resync (self, "gap");
        rc = -1;
    }
    else {
        if (mw_state_apply (self->state, &ev, ev.broker_ts) != 0)
            s_log (self, false, "the state could not fold event %" PRIu64 " (memory)", ev.id);
        self->last = ev.id;
        self->dirty = true;
        S_COUNT (updates);
        //  Render the state's own copy when it has one: the SSE frame is
        //  then byte for byte the event in the status JSON.
        const mw_event_t *shown =
            mw_state_recent_count (self->state) ? mw_state_recent (self->state, 0) : NULL;
        if (!shown || !(shown->has & MW_HAS_ID) || shown->id != ev.id)
            shown = &ev;
        mw_buf_reset (&self->json);
        if (mw_json_event_ex (&self->json, shown, MW_JSON_SID_STRING) == 0)
            mw_http_push_event (self->http, shown, self->json.data, self->json.len);
        else
            //  Clients would miss it: they start over.
            mw_http_push_reset (self->http, "render");
    }
    mw_event_release (&ev);
    return rc;
}

//  A heartbeat (in any phase): the link is alive.
static void
s_alive (mw_mirror_t *self, zmsg_t *msg)
{
    self->last_hb_ms = zclock_mono ();
    if (!self->link_up) {
        self->link_up = true;
        s_log (self, true, "the broker is up");
        s_share (self);
        if (self->resync_on_return) {
            self->resync_on_return = false;
            //  What happened while it was gone is unknown: start over.
            if (self->phase == S_RUN)
                s_resync (self, "broker_back");
        }
    }
    (void) msg;
}

static void
s_on_update (mw_mirror_t *self, zmsg_t *msg)
{
    bool hb = s_is_hb (msg);
    if (hb && zmsg_size (msg) == 2) {
        //  Keep the broker's counters current even while fetching.
        s_hb_t parsed;
        zframe_t *body = zmsg_last (msg);
        if (s_hb_parse (self, body, &parsed) == 0)
            s_alive (self, msg);
    }
    if (!self->seen_update) {
        //  The subscription delivers: a snapshot asked for now is covered.
        self->seen_update = true;
        self->retry_at = zclock_mono ();
    }
    if (self->phase == S_RUN) {
        s_apply (self, msg);
        if (hb) {
            //  Once a second: heartbeat age, counters.
            s_share (self);
        }
        zmsg_destroy (&msg);
        return;
    }
    if (zlistx_size (self->buffer) >= MW_MIRROR_BUFFER_MAX) {
        self->buffer_overflowed = true;
        zmsg_destroy (&msg);
        return;
    }
    zlistx_add_end (self->buffer, msg);
}

//  --------------------------------------------------------------------------
//  The actor

static void
s_timers (mw_mirror_t *self)
{
    int64_t now = zclock_mono ();
    if (self->link_up && now - self->last_hb_ms > (int64_t) self->cfg.heartbeat_timeout_ms) {
        self->link_up = false;
        self->resync_on_return = true;
        S_COUNT (link_downs);
        s_log (self, false, "no heartbeat from the broker for %u ms: marking it down",
               self->cfg.heartbeat_timeout_ms);
        s_share (self);
    }
    if (self->phase == S_WANT && self->seen_update && now >= self->retry_at)
        s_snapshot_ask (self);
    else if (self->phase == S_FETCHING && now > self->snap_deadline)
        s_snapshot_failed (self, "timed out");
    if (self->phase == S_RUN && self->dirty && now - self->last_render_ms >= self->render_every_ms)
        s_publish (self);
}

static void
s_actor (zsock_t *pipe, void *args)
{
    mw_mirror_t *self = (mw_mirror_t *) args;
    zsock_signal (pipe, 0);
    s_share (self);
    while (true) {
        zmq_pollitem_t items[3] = {{zsock_resolve (pipe), 0, ZMQ_POLLIN, 0},
                                   {zsock_resolve (self->sub), 0, ZMQ_POLLIN, 0},
                                   {NULL, 0, ZMQ_POLLIN, 0}};
        int count = 2;
        if (self->dealer) {
            items[2].socket = zsock_resolve (self->dealer);
            count = 3;
        }
        if (zmq_poll (items, count, MW_MIRROR_TICK_MS) < 0 && zmq_errno () != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN) {
            char *cmd = zstr_recv (pipe);
            bool term = !cmd || !strcmp (cmd, "$TERM");
            zstr_free (&cmd);
            if (term)
                break;
        }
        for (int i = 0; i < MW_MIRROR_BATCH && (zsock_events (self->sub) & ZMQ_POLLIN); i++) {
            zmsg_t *msg = zmsg_recv (self->sub);
            if (!msg)
                break;
            s_on_update (self, msg);
        }
        if (count == 3 && (items[2].revents & ZMQ_POLLIN))
            s_on_snapshot_reply (self);
        s_timers (self);
    }
}

mw_mirror_t *
mw_mirror_new (const mw_mirror_config_t *cfg, mw_http_t *http, char *errbuf, size_t errbuf_size)
{
    assert (cfg);
    assert (http);
    if (mw_mirror_config_check (cfg, errbuf, errbuf_size) != 0)
        return NULL;
    mw_mirror_t *self = (mw_mirror_t *) calloc (1, sizeof (mw_mirror_t));
    if (!self) {
        s_err (errbuf, errbuf_size, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    self->http = http;
    pthread_mutex_init (&self->lock, NULL);
    self->buffer = zlistx_new ();
    self->render_every_ms = cfg->render_interval_ms;
    self->retry_ms = MW_MIRROR_RETRY_MIN_MS;
    if (!self->buffer)
        goto fail;
    if (cfg->curve_server_key[0]) {
        //  Read once, here: a bad key or certificate is an error at start,
        //  and every socket (the snapshot DEALER is made again on retries)
        //  uses the same keys.
        char why[512];
        if (mw_curve_server_key (cfg->curve_server_key, self->server_key, why, sizeof (why)) !=
            0) {
            s_err (errbuf, errbuf_size, "--curve-server-key: %s", why);
            goto fail;
        }
        if (cfg->curve_client_cert[0]) {
            if (mw_curve_load_secret (cfg->curve_client_cert, &self->client_pair, why,
                                      sizeof (why)) != 0) {
                s_err (errbuf, errbuf_size, "--curve-client-cert: %s", why);
                goto fail;
            }
        }
        else if (mw_curve_new_pair (&self->client_pair, why, sizeof (why)) != 0) {
            s_err (errbuf, errbuf_size, "CURVE: %s", why);
            goto fail;
        }
        self->curve = true;
    }
    //  Both sockets are made here, so that a bad endpoint is an error now;
    //  the actor thread owns them from its start on.
    self->sub = s_socket (self, ZMQ_SUB, cfg->updates, errbuf, errbuf_size);
    if (!self->sub)
        goto fail;
    self->dealer = s_socket (self, ZMQ_DEALER, cfg->snapshot, errbuf, errbuf_size);
    if (!self->dealer)
        goto fail;
    self->actor = zactor_new (s_actor, self);
    if (!self->actor) {
        s_err (errbuf, errbuf_size, "cannot start the mirror thread");
        goto fail;
    }
    return self;
fail:
    mw_mirror_destroy (&self);
    return NULL;
}

void
mw_mirror_destroy (mw_mirror_t **self_p)
{
    assert (self_p);
    mw_mirror_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    zsock_destroy (&self->sub);
    zsock_destroy (&self->dealer);
    if (self->buffer) {
        s_buffer_clear (self);
        zlistx_destroy (&self->buffer);
    }
    s_snap_reset (self);
    mw_state_destroy (&self->state);
    mw_buf_release (&self->json);
    //  Wipe the secret key (volatile: not optimised away as a dead store).
    volatile uint8_t *secret = self->client_pair.secret_key;
    for (size_t i = 0; i < sizeof (self->client_pair.secret_key); i++)
        secret[i] = 0;
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

int
mw_mirror_stats (mw_mirror_t *self, mw_mirror_stats_t *stats)
{
    assert (self);
    assert (stats);
    pthread_mutex_lock (&self->lock);
    *stats = self->stats;
    pthread_mutex_unlock (&self->lock);
    return self->actor ? 0 : -1;
}
