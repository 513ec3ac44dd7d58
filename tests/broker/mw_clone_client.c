/*  mw_clone_client.c - the Clone pattern's client, as a test program.

    Subscribes to the broker's update stream, waits until the
    subscription delivers (so no update can fall between the snapshot and
    the stream), asks for a snapshot, loads it with mw_state_load, then
    applies every update with an id above the snapshot's: events with
    mw_state_apply (at their broker_ts), heartbeats with mw_state_tick. Any
    id other than last + 1, or a heartbeat of another epoch, makes it
    resynchronize (fetch a new snapshot), as a gateway would.

    Modes:
      mw_clone_client mirror SNAPSHOT_EP UPDATES_EP [--server-key Z85] [--timeout S]
          Mirror until a line "N" arrives on stdin, then until a heartbeat
          says the broker accepted N events; then fetch a fresh snapshot,
          apply updates up to its id, and compare mw_state_save of the
          mirror with the snapshot's bytes. Prints "EQUAL ..." and exits 0,
          or "DIFFERENT ..." (and writes both to /tmp) and exits 1.
      mw_clone_client snapshot SNAPSHOT_EP [--server-key Z85] [--slow-ms M] [--timeout S]
          Fetch one snapshot (slowly: a tiny receive queue and a pause
          after each chunk) and print its size, chunks, id, epoch and a
          few counters of the state as one JSON line.
*/
#include "mw_state.h"

#include <czmq.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_SNAP_MAX (1024u * 1024u * 1024u)

typedef struct {
    uint64_t id, epoch, size, chunks;
} s_end_t;

typedef struct {
    const char *snapshot_ep;
    const char *updates_ep;
    const char *server_key;
    int slow_ms;
    double timeout;
    zsock_t *sub;
    zsock_t *dealer;
    mw_state_t *state;
    uint64_t epoch;
    uint64_t last;
    uint64_t events, ticks, resyncs, skipped;
} s_client_t;

static double
s_now (void)
{
    return (double) zclock_mono () / 1000.0;
}

static void
s_curve (s_client_t *self, zsock_t *sock)
{
    if (!self->server_key)
        return;
    zcert_t *cert = zcert_new ();
    zcert_apply (cert, sock);
    zsock_set_curve_serverkey (sock, self->server_key);
    zcert_destroy (&cert);
}

//  Find key in a msgpack map; return the object or NULL.
static msgpack_object *
s_map_get (msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen (key) &&
            !memcmp (k->via.str.ptr, key, k->via.str.size))
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static uint64_t
s_map_u64 (msgpack_object *map, const char *key)
{
    msgpack_object *o = s_map_get (map, key);
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
}

//  Unpack a (checked) msgpack map. Return 0, or -1.
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

//  Fetch one snapshot: bytes in *data_p (caller frees) and the end marker.
static int
s_fetch (s_client_t *self, uint8_t **data_p, size_t *size_p, s_end_t *end)
{
    if (!self->dealer) {
        self->dealer = zsock_new (ZMQ_DEALER);
        zsock_set_linger (self->dealer, 0);
        if (self->slow_ms) {
            zsock_set_rcvhwm (self->dealer, 1);
            zsock_set_rcvbuf (self->dealer, 16384);
        }
        s_curve (self, self->dealer);
        if (zsock_connect (self->dealer, "%s", self->snapshot_ep)) {
            fprintf (stderr, "clone: cannot connect to %s\n", self->snapshot_ep);
            return -1;
        }
    }
    zstr_send (self->dealer, "$snap?");
    uint8_t *data = NULL;
    size_t size = 0;
    uint64_t seq = 0;
    double deadline = s_now () + self->timeout;
    zpoller_t *poller = zpoller_new (self->dealer, NULL);
    int rc = -1;
    while (s_now () < deadline) {
        if (!zpoller_wait (poller, 100))
            continue;
        zmsg_t *msg = zmsg_recv (self->dealer);
        if (!msg)
            break;
        char *cmd = zmsg_popstr (msg);
        if (cmd && !strcmp (cmd, "$snap") && zmsg_size (msg) == 2) {
            zframe_t *sf = zmsg_pop (msg);
            zframe_t *df = zmsg_pop (msg);
            msgpack_unpacked up;
            msgpack_unpacked_init (&up);
            size_t off = 0;
            bool ok = msgpack_unpack_next (&up, (const char *) zframe_data (sf), zframe_size (sf),
                                           &off) == MSGPACK_UNPACK_SUCCESS &&
                      up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER && up.data.via.u64 == seq &&
                      size + zframe_size (df) <= S_SNAP_MAX;
            msgpack_unpacked_destroy (&up);
            if (ok) {
                uint8_t *grown = (uint8_t *) realloc (data, size + zframe_size (df) + 1);
                ok = grown != NULL;
                if (grown) {
                    data = grown;
                    memcpy (data + size, zframe_data (df), zframe_size (df));
                    size += zframe_size (df);
                    seq++;
                }
            }
            zframe_destroy (&sf);
            zframe_destroy (&df);
            if (!ok) {
                fprintf (stderr, "clone: bad chunk %" PRIu64 "\n", seq);
                free (cmd);
                zmsg_destroy (&msg);
                break;
            }
            if (self->slow_ms)
                zclock_sleep (self->slow_ms);
            deadline = s_now () + self->timeout;
        }
        else if (cmd && !strcmp (cmd, "$snap_end") && zmsg_size (msg) == 1) {
            zframe_t *f = zmsg_pop (msg);
            msgpack_unpacked up;
            msgpack_unpacked_init (&up);
            if (s_unpack (&up, zframe_data (f), zframe_size (f)) == 0) {
                end->id = s_map_u64 (&up.data, "id");
                end->epoch = s_map_u64 (&up.data, "epoch");
                end->size = s_map_u64 (&up.data, "size");
                end->chunks = s_map_u64 (&up.data, "chunks");
                rc = end->size == size && end->chunks == seq ? 0 : -1;
                if (rc)
                    fprintf (stderr,
                             "clone: end says %" PRIu64 " bytes / %" PRIu64
                             " chunks, got %zu / %" PRIu64 "\n",
                             end->size, end->chunks, size, seq);
            }
            msgpack_unpacked_destroy (&up);
            zframe_destroy (&f);
            free (cmd);
            zmsg_destroy (&msg);
            break;
        }
        else {
            fprintf (stderr, "clone: unexpected reply '%s'\n", cmd ? cmd : "");
            free (cmd);
            zmsg_destroy (&msg);
            break;
        }
        free (cmd);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    if (rc) {
        free (data);
        fprintf (stderr, "clone: no complete snapshot from %s\n", self->snapshot_ep);
        return -1;
    }
    *data_p = data;
    *size_p = size;
    return 0;
}

//  (Re)load the mirror from a fresh snapshot.
static int
s_sync (s_client_t *self)
{
    uint8_t *data;
    size_t size;
    s_end_t end;
    if (s_fetch (self, &data, &size, &end))
        return -1;
    char err[256];
    mw_state_destroy (&self->state);
    self->state = mw_state_load (data, size, err, sizeof (err));
    free (data);
    if (!self->state) {
        fprintf (stderr, "clone: snapshot does not load: %s\n", err);
        return -1;
    }
    self->epoch = end.epoch;
    self->last = end.id;
    printf ("snapshot id=%" PRIu64 " epoch=%016" PRIx64 " bytes=%zu\n", end.id, end.epoch, size);
    fflush (stdout);
    return 0;
}

//  Apply one update. Return 1 if it was a heartbeat (accepted_p set), 0
//  for an event or a skipped update, -1 if a resync is needed.
static int
s_update (s_client_t *self, zmsg_t *msg, uint64_t *accepted_p)
{
    if (zmsg_size (msg) != 2)
        return -1;
    zframe_t *topic = zmsg_first (msg);
    zframe_t *body = zmsg_next (msg);
    if (zframe_size (topic) == 3 && !memcmp (zframe_data (topic), "$hb", 3)) {
        msgpack_unpacked up;
        msgpack_unpacked_init (&up);
        int rc = -1;
        if (s_unpack (&up, zframe_data (body), zframe_size (body)) == 0) {
            uint64_t id = s_map_u64 (&up.data, "id");
            uint64_t epoch = s_map_u64 (&up.data, "epoch");
            *accepted_p = s_map_u64 (&up.data, "accepted");
            if (epoch != self->epoch)
                rc = -1;
            else if (id <= self->last) {
                self->skipped++;
                rc = 1;
            }
            else if (id == self->last + 1 &&
                     mw_state_tick (self->state, s_map_u64 (&up.data, "now_ms"), id) >= 0) {
                self->last = id;
                self->ticks++;
                rc = 1;
            }
        }
        msgpack_unpacked_destroy (&up);
        return rc;
    }
    mw_event_t ev;
    mw_event_init (&ev, MW_TYPE_CUSTOM);
    char err[256];
    int rc = -1;
    if (mw_event_decode (&ev, zframe_data (topic), zframe_size (topic), zframe_data (body),
                         zframe_size (body), err, sizeof (err)) != MW_OK) {
        fprintf (stderr, "clone: undecodable update: %s\n", err);
        return -1;
    }
    if (!(ev.has & MW_HAS_ID) || !(ev.has & MW_HAS_BROKER_TS))
        fprintf (stderr, "clone: update without id or broker_ts\n");
    else if (ev.id <= self->last) {
        self->skipped++;
        rc = 0;
    }
    else if (ev.id == self->last + 1 && mw_state_apply (self->state, &ev, ev.broker_ts) == 0) {
        self->last = ev.id;
        self->events++;
        rc = 0;
    }
    mw_event_release (&ev);
    return rc;
}

static void
s_dump (const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen (path, "wb");
    if (f) {
        fwrite (data, 1, size, f);
        fclose (f);
    }
}

static int
s_mirror (s_client_t *self)
{
    self->sub = zsock_new (ZMQ_SUB);
    zsock_set_rcvhwm (self->sub, 0); //  the test wants no drop at all
    zsock_set_subscribe (self->sub, "");
    s_curve (self, self->sub);
    if (zsock_connect (self->sub, "%s", self->updates_ep))
        return 1;
    //  The first update proves the subscription is live: updates after it
    //  reach us, so the snapshot we ask for next is covered.
    zpoller_t *poller = zpoller_new (self->sub, NULL);
    if (!zpoller_wait (poller, (int) (self->timeout * 1000))) {
        fprintf (stderr, "clone: no update from %s\n", self->updates_ep);
        zpoller_destroy (&poller);
        return 1;
    }
    zmsg_t *first = zmsg_recv (self->sub);
    zmsg_destroy (&first);
    if (s_sync (self)) {
        zpoller_destroy (&poller);
        return 1;
    }
    zpoller_destroy (&poller);

    zmq_pollitem_t items[] = {{zsock_resolve (self->sub), 0, ZMQ_POLLIN, 0},
                              {NULL, STDIN_FILENO, ZMQ_POLLIN, 0}};
    uint64_t expect = 0;
    bool have_expect = false, stdin_open = true;
    double deadline = s_now () + 600;
    int rc = 1;
    uint8_t *fresh = NULL;
    size_t fresh_size = 0;
    s_end_t fresh_end = {0, 0, 0, 0};
    bool final = false;
    while (s_now () < deadline) {
        if (final && self->last >= fresh_end.id)
            break;
        if (zmq_poll (items, stdin_open ? 2 : 1, 200) < 0)
            break;
        //  A pipe whose writer left polls as POLLHUP, which zmq_poll
        //  reports as ZMQ_POLLERR: read it, see the end, stop polling it.
        if (stdin_open && (items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) {
            char line[64];
            ssize_t n = read (STDIN_FILENO, line, sizeof (line) - 1);
            if (n <= 0)
                stdin_open = false;
            else {
                line[n] = 0;
                expect = strtoull (line, NULL, 10);
                have_expect = true;
                deadline = s_now () + self->timeout;
            }
        }
        if (!(items[0].revents & ZMQ_POLLIN))
            continue;
        zmsg_t *msg = zmsg_recv (self->sub);
        uint64_t accepted = 0;
        int r = s_update (self, msg, &accepted);
        zmsg_destroy (&msg);
        if (r < 0) {
            self->resyncs++;
            fprintf (stderr, "clone: resynchronizing after id %" PRIu64 "\n", self->last);
            if (final || s_sync (self))
                goto done;
            continue;
        }
        if (r == 1 && have_expect && !final && accepted >= expect) {
            //  Traffic is over and the broker has it all: compare with a
            //  snapshot fetched now (its id is >= ours; ticks follow).
            if (s_fetch (self, &fresh, &fresh_size, &fresh_end))
                goto done;
            final = true;
        }
    }
    if (!final || self->last != fresh_end.id) {
        fprintf (stderr, "clone: timed out (last id %" PRIu64 ", expect %" PRIu64 ")\n", self->last,
                 expect);
        goto done;
    }
    uint8_t *mine;
    size_t mine_size;
    if (mw_state_save (self->state, &mine, &mine_size))
        goto done;
    bool equal = mine_size == fresh_size && !memcmp (mine, fresh, mine_size);
    printf ("%s id=%" PRIu64 " bytes=%zu events=%" PRIu64 " ticks=%" PRIu64 " skipped=%" PRIu64
            " resyncs=%" PRIu64 "\n",
            equal ? "EQUAL" : "DIFFERENT", self->last, mine_size, self->events, self->ticks,
            self->skipped, self->resyncs);
    if (!equal) {
        s_dump ("/tmp/mw_clone_mirror.bin", mine, mine_size);
        s_dump ("/tmp/mw_clone_broker.bin", fresh, fresh_size);
        fprintf (stderr, "clone: mirror %zu bytes, broker %zu bytes; both in /tmp/mw_clone_*.bin\n",
                 mine_size, fresh_size);
    }
    free (mine);
    rc = equal ? 0 : 1;
done:
    free (fresh);
    return rc;
}

static int
s_snapshot_only (s_client_t *self)
{
    double started = s_now ();
    uint8_t *data;
    size_t size;
    s_end_t end;
    if (s_fetch (self, &data, &size, &end))
        return 1;
    char err[256];
    mw_state_t *state = mw_state_load (data, size, err, sizeof (err));
    free (data);
    if (!state) {
        fprintf (stderr, "clone: snapshot does not load: %s\n", err);
        return 1;
    }
    mw_stats_t st;
    mw_state_stats (state, &st);
    printf (
        "{\"id\": %" PRIu64 ", \"epoch\": \"%016" PRIx64 "\", \"size\": %zu, \"chunks\": %" PRIu64
        ", \"seconds\": %.3f, \"total_events\": %" PRIu64 ", \"tasks_started\": %" PRIu64
        ", \"tasks_succeeded\": %" PRIu64 ", \"tasks_failed\": %" PRIu64
        ", \"active_tasks\": %" PRIu64 ", \"recent\": %zu, \"history\": %zu"
        ", \"miners\": %zu, \"validators\": %zu, \"state_id\": %" PRIu64 "}\n",
        end.id, end.epoch, size, end.chunks, s_now () - started, st.total_events, st.tasks_started,
        st.tasks_succeeded, st.tasks_failed, st.active_tasks, mw_state_recent_count (state),
        mw_state_history_count (state), mw_state_miner_count (state),
        mw_state_validator_count (state), mw_state_last_id (state));
    mw_state_destroy (&state);
    return 0;
}

int
main (int argc, char **argv)
{
    zsys_handler_set (NULL);
    s_client_t self;
    memset (&self, 0, sizeof (self));
    self.timeout = 30;
    if (argc < 3) {
        fprintf (stderr, "usage: see the comment at the top of mw_clone_client.c\n");
        return 2;
    }
    const char *mode = argv[1];
    self.snapshot_ep = argv[2];
    int i = 3;
    if (!strcmp (mode, "mirror")) {
        if (argc < 4)
            return 2;
        self.updates_ep = argv[3];
        i = 4;
    }
    for (; i < argc; i++) {
        if (!strcmp (argv[i], "--server-key") && i + 1 < argc)
            self.server_key = argv[++i];
        else if (!strcmp (argv[i], "--slow-ms") && i + 1 < argc)
            self.slow_ms = atoi (argv[++i]);
        else if (!strcmp (argv[i], "--timeout") && i + 1 < argc)
            self.timeout = atof (argv[++i]);
        else {
            fprintf (stderr, "clone: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    int rc = !strcmp (mode, "mirror") ? s_mirror (&self) : s_snapshot_only (&self);
    mw_state_destroy (&self.state);
    zsock_destroy (&self.dealer);
    zsock_destroy (&self.sub);
    return rc;
}
