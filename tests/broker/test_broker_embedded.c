/*  test_broker_embedded.c - the mw_broker class in-process (cmocka).

    What `minerwatch up` will do: run a broker as an actor, reach its
    update stream and snapshot service over inproc:// (czmq's shared
    context), and its ingest over TCP from a libminerwatch publisher.
    Covers the configuration API, ids, the snapshot protocol, and the
    state file (save, clean restore, corrupt file moved aside). Also run
    under valgrind by deploy/test.sh (label memcheck).
*/
#include "mw_broker.h"
#include "mw_publisher.h"

#include <czmq.h>
#include <dirent.h>
#include <msgpack.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define S_WAIT_MS 20000

//  --------------------------------------------------------------------------
//  Helpers

static void
s_config (mw_broker_config_t *cfg, const char *tag)
{
    mw_broker_config_default (cfg);
    cfg->quiet = true;
    cfg->log_name = "test-broker";
    snprintf (cfg->ingest[0], sizeof (cfg->ingest[0]), "@tcp://127.0.0.1:*");
    snprintf (cfg->publish, sizeof (cfg->publish), "@inproc://mw-test-pub-%s", tag);
    snprintf (cfg->snapshot, sizeof (cfg->snapshot), "@inproc://mw-test-snap-%s", tag);
}

static mw_broker_t *
s_start (const mw_broker_config_t *cfg)
{
    char err[1024] = "";
    mw_broker_t *broker = mw_broker_new (cfg, err, sizeof (err));
    if (!broker)
        fprintf (stderr, "mw_broker_new: %s\n", err);
    assert_non_null (broker);
    return broker;
}

//  Wait until the broker counted `accepted` events.
static void
s_wait_accepted (mw_broker_t *broker, uint64_t accepted, mw_broker_stats_t *stats)
{
    int64_t deadline = zclock_mono () + S_WAIT_MS;
    while (zclock_mono () < deadline) {
        assert_int_equal (mw_broker_stats (broker, stats), 0);
        if (stats->accepted >= accepted)
            break;
        zclock_sleep (10);
    }
    assert_int_equal (stats->accepted, accepted);
}

//  A publisher connected to the broker's ingest, ready.
static mw_publisher_t *
s_publisher (mw_broker_t *broker, const char *miner)
{
    char ep[512];
    assert_int_equal (mw_broker_endpoints (broker, "ingest", ep, sizeof (ep)), 0);
    assert_true (ep[0] == '@');
    ep[0] = '>';
    mw_publisher_t *pub = mw_publisher_new (ep, miner);
    assert_non_null (pub);
    assert_int_equal (mw_publisher_wait_ready (pub, S_WAIT_MS), 0);
    return pub;
}

static uint64_t
s_map_u64 (const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen (key) &&
            !memcmp (k->via.str.ptr, key, k->via.str.size) &&
            map->via.map.ptr[i].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return map->via.map.ptr[i].val.via.u64;
    }
    return UINT64_MAX;
}

//  Fetch a snapshot over the broker's (inproc) snapshot endpoint and load it.
static mw_state_t *
s_snapshot (const char *endpoint, uint64_t *id_p, uint64_t *epoch_p)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert_non_null (dealer);
    assert_int_equal (zsock_connect (dealer, "%s", endpoint + 1), 0);
    zstr_send (dealer, "$snap?");
    zpoller_t *poller = zpoller_new (dealer, NULL);
    uint8_t *data = NULL;
    size_t size = 0;
    uint64_t chunks = 0;
    mw_state_t *state = NULL;
    while (zpoller_wait (poller, S_WAIT_MS)) {
        zmsg_t *msg = zmsg_recv (dealer);
        char *cmd = zmsg_popstr (msg);
        if (!strcmp (cmd, "$snap")) {
            assert_int_equal (zmsg_size (msg), 2);
            zframe_t *seq = zmsg_pop (msg);
            zframe_t *chunk = zmsg_pop (msg);
            assert_true (zframe_size (chunk) <= MW_BROKER_SNAP_CHUNK);
            assert_int_equal (zframe_data (seq)[0], chunks); //  small seq: a fixint
            uint8_t *grown = (uint8_t *) realloc (data, size + zframe_size (chunk));
            assert_non_null (grown);
            data = grown;
            memcpy (data + size, zframe_data (chunk), zframe_size (chunk));
            size += zframe_size (chunk);
            chunks++;
            zframe_destroy (&seq);
            zframe_destroy (&chunk);
        }
        else {
            assert_string_equal (cmd, "$snap_end");
            zframe_t *end = zmsg_pop (msg);
            msgpack_unpacked up;
            msgpack_unpacked_init (&up);
            assert_int_equal (msgpack_unpack_next (&up, (const char *) zframe_data (end),
                                                   zframe_size (end), NULL),
                              MSGPACK_UNPACK_SUCCESS);
            assert_int_equal (s_map_u64 (&up.data, "size"), size);
            assert_int_equal (s_map_u64 (&up.data, "chunks"), chunks);
            *id_p = s_map_u64 (&up.data, "id");
            *epoch_p = s_map_u64 (&up.data, "epoch");
            msgpack_unpacked_destroy (&up);
            zframe_destroy (&end);
            char err[256];
            state = mw_state_load (data, size, err, sizeof (err));
            assert_non_null (state);
            assert_int_equal (mw_state_last_id (state), *id_p);
        }
        free (cmd);
        zmsg_destroy (&msg);
        if (state)
            break;
    }
    free (data);
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
    assert_non_null (state);
    return state;
}

//  --------------------------------------------------------------------------
//  Configuration

static void
test_config_set (void **unused)
{
    mw_broker_config_t cfg;
    mw_broker_config_default (&cfg);
    char err[256];
    assert_int_equal (cfg.ingest_count, 1);
    assert_string_equal (cfg.ingest[0], MW_BROKER_INGEST_DEFAULT);
    assert_string_equal (cfg.publish, MW_BROKER_PUBLISH_DEFAULT);
    assert_string_equal (cfg.snapshot, MW_BROKER_SNAPSHOT_DEFAULT);
    assert_int_equal (cfg.save_interval_s, MW_BROKER_SAVE_INTERVAL_DEFAULT);
    assert_int_equal (mw_broker_config_check (&cfg, err, sizeof (err)), 0);

    assert_int_equal (
        mw_broker_config_set (&cfg, "ingest", ">tcp://10.0.0.1:9000", err, sizeof (err)), 0);
    assert_int_equal (cfg.ingest_count, 2);
    assert_int_equal (mw_broker_config_set (&cfg, "recent-events", "77", err, sizeof (err)), 0);
    assert_int_equal (cfg.state.recent_events, 77);
    assert_int_equal (mw_broker_config_set (&cfg, "task-timeout", "42", err, sizeof (err)), 0);
    assert_int_equal (cfg.state.task_timeout_ms, 42000);
    assert_int_equal (mw_broker_config_set (&cfg, "verbose", NULL, err, sizeof (err)), 0);
    assert_true (cfg.verbose);
    assert_int_equal (mw_broker_config_set (&cfg, "quiet", "no", err, sizeof (err)), 0);
    assert_false (cfg.quiet);

    assert_int_equal (mw_broker_config_set (&cfg, "bogus", "1", err, sizeof (err)), -1);
    assert_non_null (strstr (err, "unknown option"));
    assert_int_equal (mw_broker_config_set (&cfg, "recent-events", "0", err, sizeof (err)), -1);
    assert_int_equal (mw_broker_config_set (&cfg, "recent-events", "1e3", err, sizeof (err)), -1);
    assert_int_equal (
        mw_broker_config_set (&cfg, "recent-events", "99999999999999999999999", err, sizeof (err)),
        -1);
    assert_int_equal (mw_broker_config_set (&cfg, "save-interval", "-1", err, sizeof (err)), -1);
    assert_int_equal (mw_broker_config_set (&cfg, "publish", NULL, err, sizeof (err)), -1);
    assert_int_equal (mw_broker_config_set (&cfg, "ingest", "", err, sizeof (err)), -1);
    assert_true (mw_broker_config_known ("max-active-tasks"));
    assert_false (mw_broker_config_known ("max_active_tasks"));
    while (cfg.ingest_count < MW_BROKER_INGEST_MAX)
        assert_int_equal (mw_broker_config_set (&cfg, "ingest", "@tcp://*:1", err, sizeof (err)),
                          0);
    assert_int_equal (mw_broker_config_set (&cfg, "ingest", "@tcp://*:1", err, sizeof (err)), -1);

    mw_broker_config_default (&cfg);
    cfg.ingest_count = 0;
    assert_int_equal (mw_broker_config_check (&cfg, err, sizeof (err)), -1);
    mw_broker_config_default (&cfg);
    snprintf (cfg.curve_clients, sizeof (cfg.curve_clients), "/tmp");
    assert_int_equal (mw_broker_config_check (&cfg, err, sizeof (err)), -1);
    assert_non_null (strstr (err, "--curve-secret"));
}

static void
test_config_file (void **unused)
{
    char path[] = "/tmp/mw-broker-conf-XXXXXX";
    int fd = mkstemp (path);
    assert_true (fd >= 0);
    const char *text = "# a comment\n"
                       "\n"
                       "  ingest = @tcp://127.0.0.1:1\n"
                       "ingest=\">tcp://127.0.0.1:2\"\n"
                       "recent-events = 5   \n"
                       "state-file = /var/lib/minerwatch/state\n";
    assert_true (write (fd, text, strlen (text)) == (ssize_t) strlen (text));
    close (fd);
    mw_broker_config_t cfg;
    mw_broker_config_default (&cfg);
    char err[512];
    assert_int_equal (mw_broker_config_load (&cfg, path, err, sizeof (err)), 0);
    assert_int_equal (cfg.ingest_count, 2); //  the file's list replaced the default
    assert_string_equal (cfg.ingest[0], "@tcp://127.0.0.1:1");
    assert_string_equal (cfg.ingest[1], ">tcp://127.0.0.1:2");
    assert_int_equal (cfg.state.recent_events, 5);
    assert_string_equal (cfg.state_file, "/var/lib/minerwatch/state");

    FILE *f = fopen (path, "w");
    fputs ("publish = @tcp://*:1\nrecent-events = lots\n", f);
    fclose (f);
    assert_int_equal (mw_broker_config_load (&cfg, path, err, sizeof (err)), -1);
    assert_non_null (strstr (err, ":2: "));
    assert_non_null (strstr (err, "recent-events"));
    unlink (path);
    assert_int_equal (mw_broker_config_load (&cfg, path, err, sizeof (err)), -1);
    assert_non_null (strstr (err, "cannot read config file"));
}

//  --------------------------------------------------------------------------
//  The running broker

static void
test_ingest_and_snapshot (void **unused)
{
    mw_broker_config_t cfg;
    s_config (&cfg, "a");
    mw_broker_t *broker = s_start (&cfg);
    zsock_t *sub = zsock_new_sub (cfg.publish + 1, "");
    assert_non_null (sub);
    zclock_sleep (50); //  inproc: the subscription is there almost at once

    mw_publisher_t *pub = s_publisher (broker, "embedded-miner");
    char task[32];
    for (int i = 0; i < 50; i++) {
        snprintf (task, sizeof (task), "t-%d", i);
        assert_int_equal (mw_publisher_task_start (pub, task, "prompt", NULL, "1.2.3.4", NULL, 0),
                          0);
        assert_int_equal (mw_publisher_task_complete (pub, task, i % 2, 3, 1.5, NULL), 0);
    }
    mw_broker_stats_t stats;
    s_wait_accepted (broker, 100, &stats);
    assert_int_equal (stats.rejected, 0);
    assert_false (stats.restored);
    assert_true (stats.epoch != 0);

    //  Every update carries the next id: events and heartbeats alike.
    uint64_t last = 0, events = 0;
    zpoller_t *poller = zpoller_new (sub, NULL);
    while (events < 100 && zpoller_wait (poller, S_WAIT_MS)) {
        zmsg_t *msg = zmsg_recv (sub);
        assert_int_equal (zmsg_size (msg), 2);
        zframe_t *topic = zmsg_first (msg);
        zframe_t *body = zmsg_next (msg);
        uint64_t id;
        if (zframe_streq (topic, "$hb")) {
            msgpack_unpacked up;
            msgpack_unpacked_init (&up);
            assert_int_equal (msgpack_unpack_next (&up, (const char *) zframe_data (body),
                                                   zframe_size (body), NULL),
                              MSGPACK_UNPACK_SUCCESS);
            id = s_map_u64 (&up.data, "id");
            assert_int_equal (s_map_u64 (&up.data, "epoch"), stats.epoch);
            msgpack_unpacked_destroy (&up);
        }
        else {
            mw_event_t ev;
            mw_event_init (&ev, MW_TYPE_CUSTOM);
            assert_int_equal (mw_event_decode (&ev, zframe_data (topic), zframe_size (topic),
                                               zframe_data (body), zframe_size (body), NULL, 0),
                              MW_OK);
            assert_true (ev.has & MW_HAS_ID);
            assert_true (ev.has & MW_HAS_BROKER_TS);
            assert_string_equal (ev.str[MW_K_MINER].ptr, "embedded-miner");
            id = ev.id;
            events++;
            mw_event_release (&ev);
        }
        if (last)
            assert_int_equal (id, last + 1);
        last = id;
        zmsg_destroy (&msg);
    }
    assert_int_equal (events, 100);
    zpoller_destroy (&poller);

    uint64_t id, epoch;
    mw_state_t *state = s_snapshot (cfg.snapshot, &id, &epoch);
    assert_int_equal (epoch, stats.epoch);
    assert_true (id >= last);
    mw_stats_t st;
    mw_state_stats (state, &st);
    assert_int_equal (st.total_events, 100);
    assert_int_equal (st.tasks_started, 50);
    mw_state_destroy (&state);

    assert_int_equal (mw_broker_save (broker), -1); //  no state file configured
    char ep[256];
    assert_int_equal (mw_broker_endpoints (broker, "publish", ep, sizeof (ep)), 0);
    assert_string_equal (ep, cfg.publish);
    assert_int_equal (mw_broker_endpoints (broker, "nothing", ep, sizeof (ep)), -1);

    mw_publisher_destroy (&pub);
    zsock_destroy (&sub);
    mw_broker_destroy (&broker);
    assert_null (broker);
    mw_broker_destroy (&broker); //  idempotent
}

static int
s_count_corrupt (const char *dir)
{
    DIR *d = opendir (dir);
    int count = 0;
    struct dirent *e;
    while (d && (e = readdir (d)))
        if (strstr (e->d_name, ".corrupt-"))
            count++;
    if (d)
        closedir (d);
    return count;
}

static void
test_state_file (void **unused)
{
    char dir[] = "/tmp/mw-broker-state-XXXXXX";
    assert_non_null (mkdtemp (dir));
    mw_broker_config_t cfg;
    s_config (&cfg, "b");
    snprintf (cfg.state_file, sizeof (cfg.state_file), "%s/state.mw", dir);
    cfg.save_interval_s = 0;

    mw_broker_t *broker = s_start (&cfg);
    mw_publisher_t *pub = s_publisher (broker, "persistent");
    for (int i = 0; i < 20; i++)
        mw_publisher_error (pub, "boom", NULL, "test");
    mw_broker_stats_t before;
    s_wait_accepted (broker, 20, &before);
    assert_int_equal (mw_broker_save (broker), 0);
    mw_publisher_destroy (&pub);
    mw_broker_destroy (&broker); //  the clean save
    //  Another broker on the same file meanwhile would have been refused;
    //  now the lock is free again.
    broker = s_start (&cfg);
    mw_broker_stats_t after;
    assert_int_equal (mw_broker_stats (broker, &after), 0);
    assert_true (after.restored);
    assert_int_equal (after.epoch, before.epoch);
    assert_true (after.last_id >= before.last_id);
    assert_true (after.saves >= 1); //  the "in use" mark at start
    uint64_t id, epoch;
    mw_state_t *state = s_snapshot (cfg.snapshot, &id, &epoch);
    mw_stats_t st;
    mw_state_stats (state, &st);
    assert_int_equal (st.total_events, 20);
    assert_int_equal (epoch, before.epoch);
    mw_state_destroy (&state);
    //  A second broker on the same file is refused with a message.
    char err[1024];
    mw_broker_config_t other;
    s_config (&other, "c");
    memcpy (other.state_file, cfg.state_file, sizeof (other.state_file));
    assert_null (mw_broker_new (&other, err, sizeof (err)));
    assert_non_null (strstr (err, "another broker"));
    mw_broker_destroy (&broker);

    //  Corrupt it: moved aside, a new epoch, an empty state.
    FILE *f = fopen (cfg.state_file, "r+b");
    assert_non_null (f);
    fseek (f, 70, SEEK_SET);
    fputc (0x5a, f);
    fputc (0xa5, f);
    fclose (f);
    broker = s_start (&cfg);
    assert_int_equal (mw_broker_stats (broker, &after), 0);
    assert_false (after.restored);
    assert_true (after.epoch != before.epoch);
    assert_int_equal (s_count_corrupt (dir), 1);
    mw_broker_destroy (&broker);

    //  A state file that is a directory cannot be used: a clear refusal.
    snprintf (cfg.state_file, sizeof (cfg.state_file), "%s", dir);
    assert_null (mw_broker_new (&cfg, err, sizeof (err)));
    assert_non_null (strstr (err, dir));

    char cmd[256];
    snprintf (cmd, sizeof (cmd), "rm -rf '%s'", dir);
    assert_int_equal (system (cmd), 0);
}

static void
test_startup_errors (void **unused)
{
    mw_broker_config_t cfg;
    s_config (&cfg, "d");
    mw_broker_t *broker = s_start (&cfg);
    char err[1024];
    //  The same inproc endpoints again: in use.
    assert_null (mw_broker_new (&cfg, err, sizeof (err)));
    assert_non_null (strstr (err, "cannot bind"));
    mw_broker_destroy (&broker);

    s_config (&cfg, "e");
    snprintf (cfg.curve_secret, sizeof (cfg.curve_secret), "/nonexistent/broker.cert_secret");
    assert_null (mw_broker_new (&cfg, err, sizeof (err)));
    assert_non_null (strstr (err, "--curve-secret"));

    s_config (&cfg, "f");
    cfg.state.recent_events = 0;
    assert_null (mw_broker_new (&cfg, err, sizeof (err)));
    assert_non_null (strstr (err, "bounds"));
}

static void
test_reject_names (void **unused)
{
    assert_string_equal (mw_broker_reject_name (MW_BROKER_REJECT_FRAMES), "frames");
    assert_string_equal (mw_broker_reject_name (MW_ERR_MALFORMED), "malformed");
    assert_string_equal (mw_broker_reject_name (0), "unknown");
    assert_string_equal (mw_broker_reject_name (MW_BROKER_REJECT_COUNT), "unknown");
}

int
main (void)
{
    zsys_handler_set (NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_config_set),   cmocka_unit_test (test_config_file),
        cmocka_unit_test (test_reject_names), cmocka_unit_test (test_ingest_and_snapshot),
        cmocka_unit_test (test_state_file),   cmocka_unit_test (test_startup_errors),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
