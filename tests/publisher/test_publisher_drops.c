/*  test_publisher_drops.c - the publisher never blocks and accounts for
    every event it could not deliver.

    What it proves:
    - 100k events with no broker at all (connecting to a port nobody
      listens on, or bound with nobody connecting) finish, every call
      returns -1, dropped == 100000 and sent == 0;
    - subscriptions are tracked per topic prefix: an event no subscriber
      wants is dropped and counted, and a subscription added or withdrawn
      later is taken into account;
    - several comma-separated endpoints all receive every event;
    - a broker that goes away and comes back on the same port: while it is
      gone every call is dropped and counted, then events flow again in the
      same session, the seq gap being exactly the dropped events;
    - refused events (invalid type, missing required key, header key in kv)
      return -1, count as dropped and consume a sequence number;
    - over-long strings are truncated and counted, sent or not;
    - invalid endpoints and options give NULL, never an abort.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "mw_publisher.h"
#include "pub_test_util.h"

#define FLOOD 100000

//  Publish one event of kind i % 9: every per-type call and a custom one.
static int
s_publish_any (mw_publisher_t *pub, int i)
{
    mw_kv_t kv[2] = {{.key = "n", .kind = MW_KV_UINT, .val.u = (uint64_t) i},
                     {.key = "label", .kind = MW_KV_STR, .val.s = {"x", (size_t) -1}}};
    switch (i % 9) {
        case 0:
            return mw_publisher_task_start (pub, "t", "prompt", "https://example.com", "10.0.0.1",
                                            "5Hk", 30000);
        case 1:
            return mw_publisher_task_step (pub, "t", "planning", kv, 2);
        case 2:
            return mw_publisher_actions_generated (pub, "t", 3, "click");
        case 3:
            return mw_publisher_task_complete (pub, "t", true, 3, 1.5, NULL);
        case 4:
            return mw_publisher_task_feedback (pub, "t", 0.9, 1.2, "5Hk");
        case 5:
            return mw_publisher_validator_connection (pub, "10.0.0.1", NULL, NULL);
        case 6:
            return mw_publisher_cache_hit (pub, "t", "prompt");
        case 7:
            return mw_publisher_error (pub, "boom", "t", "RuntimeError");
        default:
            return mw_publisher_send (pub, "custom_metric", "t", kv, 2);
    }
}

static void
s_flood_nobody (const char *endpoint)
{
    mw_publisher_t *pub = mw_publisher_new (endpoint, "flood-miner");
    assert_non_null (pub);
    int failures = 0;
    for (int i = 0; i < FLOOD; i++)
        failures += s_publish_any (pub, i) == -1;
    assert_int_equal (failures, FLOOD);
    assert_int_equal (mw_publisher_dropped (pub), FLOOD);
    assert_int_equal (mw_publisher_sent (pub), 0);
    assert_int_equal (mw_publisher_wait_ready (pub, 20), -1);
    mw_publisher_destroy (&pub);
    assert_null (pub);
}

static void
test_no_broker_connecting (void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new ();
    char ep[64];
    snprintf (ep, sizeof (ep), ">tcp://127.0.0.1:%d", pt_free_port (ctx));
    zmq_ctx_term (ctx);
    s_flood_nobody (ep);
}

static void
test_no_broker_bound (void **state)
{
    (void) state;
    s_flood_nobody ("@tcp://127.0.0.1:*");
}

//  The seq the next call gets, observed through send_event.
static uint64_t
s_next_seq (mw_publisher_t *pub)
{
    mw_event_t ev;
    mw_event_init (&ev, MW_TYPE_CACHE_HIT);
    mw_event_set_str (&ev, MW_K_TASK_ID, "probe");
    mw_publisher_send_event (pub, &ev);
    return ev.seq;
}

//  Receive one event within timeout_ms; return its decoded form (caller
//  releases) in ev, 0 on success, -1 on timeout.
static int
s_recv_event (void *sub, mw_event_t *ev, int timeout_ms)
{
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout_ms, sizeof (timeout_ms));
    zmq_msg_t topic, body;
    zmq_msg_init (&topic);
    zmq_msg_init (&body);
    int rc = -1;
    if (zmq_msg_recv (&topic, sub, 0) >= 0 && zmq_msg_more (&topic) &&
        zmq_msg_recv (&body, sub, 0) >= 0) {
        mw_event_init (ev, MW_TYPE_CUSTOM);
        rc = mw_event_decode (ev, zmq_msg_data (&topic), zmq_msg_size (&topic),
                              zmq_msg_data (&body), zmq_msg_size (&body), NULL, 0) == MW_OK
                 ? 0
                 : -1;
    }
    zmq_msg_close (&topic);
    zmq_msg_close (&body);
    return rc;
}

//  Send error events until one goes out (a subscription to it was seen),
//  bounded in time. Return 0 or -1.
static int
s_until_sent (mw_publisher_t *pub, void *sub, int timeout_ms)
{
    int64_t deadline = pt_now_ms () + timeout_ms;
    while (pt_now_ms () < deadline) {
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, 0);
        if (mw_publisher_error (pub, "probe", NULL, NULL) == 0)
            return 0;
        pt_sleep_ms (1);
    }
    return -1;
}

static void
test_prefix_subscriptions (void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new ();
    char ep[300];
    void *sub = pt_sub_bind (ctx, "task_", 0, ep, sizeof (ep));
    mw_publisher_t *pub = mw_publisher_new (ep, NULL); //  NULL miner: the host name
    assert_non_null (pub);
    assert_int_equal (pt_wait_ready (pub, sub, 10000), 0);

    //  Only task_* is wanted: the rest is dropped and counted, not sent.
    assert_int_equal (mw_publisher_task_start (pub, "t1", NULL, NULL, NULL, NULL, 0), 0);
    assert_int_equal (mw_publisher_cache_hit (pub, "t1", NULL), -1);
    assert_int_equal (mw_publisher_error (pub, "nobody wants this", NULL, NULL), -1);
    assert_int_equal (mw_publisher_task_complete (pub, "t1", true, -1, MW_ABSENT, NULL), 0);
    assert_int_equal (mw_publisher_sent (pub), 2);
    assert_int_equal (mw_publisher_dropped (pub), 2);

    mw_event_t ev;
    assert_int_equal (s_recv_event (sub, &ev, 5000), 0);
    assert_string_equal (ev.type, "task_start");
    assert_int_equal (ev.seq, 1);
    char host[256] = "";
    gethostname (host, sizeof (host));
    assert_string_equal (ev.str[MW_K_MINER].ptr, host);
    mw_event_release (&ev);
    assert_int_equal (s_recv_event (sub, &ev, 5000), 0);
    assert_string_equal (ev.type, "task_complete");
    assert_int_equal (ev.seq, 4);
    assert_false (ev.has & MW_HAS_ACTION_COUNT);
    assert_false (ev.has & MW_HAS_RESPONSE_TIME);
    mw_event_release (&ev);

    //  A later subscription is noticed without any reconnect.
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "error", 5);
    assert_int_equal (s_until_sent (pub, sub, 10000), 0);
    assert_int_equal (s_recv_event (sub, &ev, 5000), 0);
    assert_string_equal (ev.type, "error");
    mw_event_release (&ev);

    //  So is a withdrawn one: task_* are dropped again, error still goes.
    zmq_setsockopt (sub, ZMQ_UNSUBSCRIBE, "task_", 5);
    int64_t deadline = pt_now_ms () + 10000;
    int rc = 0;
    while (rc == 0 && pt_now_ms () < deadline) {
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, 0);
        rc = mw_publisher_task_step (pub, "t1", "after unsubscribe", NULL, 0);
        pt_sleep_ms (1);
    }
    assert_int_equal (rc, -1);
    assert_int_equal (mw_publisher_error (pub, "still wanted", NULL, NULL), 0);
    //  Every call above consumed one seq and counted once.
    uint64_t calls = mw_publisher_sent (pub) + mw_publisher_dropped (pub);
    assert_int_equal (s_next_seq (pub), calls + 1);

    mw_publisher_destroy (&pub);
    zmq_close (sub);
    zmq_ctx_term (ctx);
}

//  A subscriber (the broker) closes, then a new one binds the same port.
static void
test_broker_restart (void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new ();
    char ep[300];
    void *sub = pt_sub_bind (ctx, "", 0, ep, sizeof (ep));
    mw_publisher_t *pub = mw_publisher_new (ep, "restart");
    assert_non_null (pub);
    assert_int_equal (pt_wait_ready (pub, sub, 10000), 0);
    assert_int_equal (mw_publisher_cache_hit (pub, "t", NULL), 0);
    mw_event_t ev;
    assert_int_equal (s_recv_event (sub, &ev, 5000), 0);
    assert_int_equal (ev.seq, 1);
    mw_event_release (&ev);

    //  The broker goes away: the publisher notices and drops from then on.
    zmq_close (sub);
    int64_t deadline = pt_now_ms () + 10000;
    while (mw_publisher_wait_ready (pub, 0) == 0 && pt_now_ms () < deadline)
        pt_sleep_ms (2);
    assert_int_equal (mw_publisher_wait_ready (pub, 0), -1);
    uint64_t dropped_before = mw_publisher_dropped (pub);
    for (int i = 0; i < 100; i++)
        assert_int_equal (mw_publisher_cache_hit (pub, "t", NULL), -1);
    assert_int_equal (mw_publisher_dropped (pub), dropped_before + 100);

    //  It comes back on the same port: the publisher reconnects by itself.
    sub = zmq_socket (ctx, ZMQ_SUB);
    int zero = 0;
    zmq_setsockopt (sub, ZMQ_LINGER, &zero, sizeof (zero));
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "", 0);
    //  zmq_close is asynchronous: the port frees up shortly after.
    int rc = -1;
    for (int tries = 0; rc != 0 && tries < 500; tries++) {
        rc = zmq_bind (sub, ep + 1);
        if (rc != 0)
            pt_sleep_ms (10);
    }
    assert_int_equal (rc, 0);
    assert_int_equal (pt_wait_ready (pub, sub, 20000), 0);
    assert_int_equal (mw_publisher_task_step (pub, "t", "resumed", NULL, 0), 0);
    assert_int_equal (s_recv_event (sub, &ev, 5000), 0);
    assert_string_equal (ev.type, "task_step");
    assert_int_equal (ev.sid, mw_publisher_sid (pub));
    //  Same session: the gap in seq is exactly what was dropped meanwhile.
    assert_int_equal (ev.seq, 1 + mw_publisher_dropped (pub) + 1);
    mw_event_release (&ev);

    mw_publisher_destroy (&pub);
    zmq_close (sub);
    zmq_ctx_term (ctx);
}

//  Comma-separated endpoints: every subscriber gets every event.
static void
test_two_endpoints (void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new ();
    char ep1[300], ep2[300], both[700];
    void *sub1 = pt_sub_bind (ctx, "", 0, ep1, sizeof (ep1));
    void *sub2 = pt_sub_bind (ctx, "", 0, ep2, sizeof (ep2));
    //  One with the '>' prefix, one without: both connect.
    snprintf (both, sizeof (both), "%s, %s", ep1, ep2 + 1);
    mw_publisher_t *pub = mw_publisher_new (both, "two");
    assert_non_null (pub);

    //  wait_ready sees the first "" subscription only (libzmq reports a
    //  prefix once), so probe until each subscriber has had one event.
    bool got1 = false, got2 = false;
    int64_t deadline = pt_now_ms () + 10000;
    while (!(got1 && got2) && pt_now_ms () < deadline) {
        mw_publisher_send (pub, "probe", NULL, NULL, 0);
        mw_event_t ev;
        if (s_recv_event (sub1, &ev, 2) == 0) {
            got1 = true;
            mw_event_release (&ev);
        }
        if (s_recv_event (sub2, &ev, 2) == 0) {
            got2 = true;
            mw_event_release (&ev);
        }
    }
    assert_true (got1 && got2);
    //  Drain the remaining probes, then check 10 events reach both.
    mw_event_t ev;
    while (s_recv_event (sub1, &ev, 50) == 0)
        mw_event_release (&ev);
    while (s_recv_event (sub2, &ev, 50) == 0)
        mw_event_release (&ev);
    for (int i = 0; i < 10; i++)
        assert_int_equal (mw_publisher_cache_hit (pub, "t", "lru"), 0);
    for (int s = 0; s < 2; s++) {
        uint64_t last = 0;
        for (int i = 0; i < 10; i++) {
            assert_int_equal (s_recv_event (s == 0 ? sub1 : sub2, &ev, 5000), 0);
            assert_string_equal (ev.type, "cache_hit");
            assert_true (ev.seq > last);
            last = ev.seq;
            mw_event_release (&ev);
        }
    }
    mw_publisher_destroy (&pub);
    zmq_close (sub1);
    zmq_close (sub2);
    zmq_ctx_term (ctx);
}

static void
test_refusals_consume_seq (void **state)
{
    (void) state;
    mw_publisher_t *pub = mw_publisher_new ("@tcp://127.0.0.1:*", "refusals");
    assert_non_null (pub);
    assert_int_equal (s_next_seq (pub), 1);

    mw_kv_t header_key = {.key = "seq", .kind = MW_KV_UINT, .val.u = 7};
    mw_kv_t wrong_type = {.key = "success", .kind = MW_KV_STR, .val.s = {"yes", (size_t) -1}};
    char long_type[80];
    memset (long_type, 'a', sizeof (long_type) - 1);
    long_type[sizeof (long_type) - 1] = 0;
    assert_int_equal (mw_publisher_send (pub, "", NULL, NULL, 0), -1);
    assert_int_equal (mw_publisher_send (pub, NULL, NULL, NULL, 0), -1);
    assert_int_equal (mw_publisher_send (pub, "$control", NULL, NULL, 0), -1);
    assert_int_equal (mw_publisher_send (pub, "has space", NULL, NULL, 0), -1);
    assert_int_equal (mw_publisher_send (pub, long_type, NULL, NULL, 0), -1);
    assert_int_equal (mw_publisher_send (pub, "custom", NULL, NULL, 2), -1);
    assert_int_equal (mw_publisher_send (pub, "custom", NULL, &header_key, 1), -1);
    assert_int_equal (mw_publisher_send (pub, "task_complete", "t", &wrong_type, 1), -1);
    assert_int_equal (mw_publisher_task_start (pub, NULL, "p", NULL, NULL, NULL, 0), -1);
    assert_int_equal (mw_publisher_task_step (pub, "t", NULL, NULL, 0), -1);
    assert_int_equal (mw_publisher_validator_connection (pub, NULL, NULL, "ep"), -1);
    assert_int_equal (mw_publisher_error (pub, NULL, "t", NULL), -1);
    //  12 refusals above, each one seq: a broker sees them as a gap.
    assert_int_equal (s_next_seq (pub), 1 + 12 + 1);
    assert_int_equal (mw_publisher_dropped (pub), 14);
    assert_int_equal (mw_publisher_sent (pub), 0);
    mw_publisher_destroy (&pub);
}

static void
test_truncation_counted (void **state)
{
    (void) state;
    mw_publisher_t *pub = mw_publisher_new ("@tcp://127.0.0.1:*", "trunc");
    assert_non_null (pub);
    char *big = (char *) malloc (MW_MAX_STR + 1000);
    assert_non_null (big);
    memset (big, 'x', MW_MAX_STR + 999);
    big[MW_MAX_STR + 999] = 0;
    char task_id[MW_MAX_TASK_ID + 20];
    memset (task_id, 't', sizeof (task_id) - 1);
    task_id[sizeof (task_id) - 1] = 0;
    //  Dropped (nobody listens) but still encoded: truncation is counted.
    assert_int_equal (mw_publisher_task_start (pub, task_id, big, NULL, NULL, NULL, 0), -1);
    assert_int_equal (mw_publisher_truncated (pub), 2);
    mw_kv_t kv = {.key = "blob", .kind = MW_KV_STR, .val.s = {big, (size_t) -1}};
    assert_int_equal (mw_publisher_task_step (pub, "t", "s", &kv, 1), -1);
    assert_int_equal (mw_publisher_truncated (pub), 3);
    assert_int_equal (mw_publisher_cache_hit (pub, "t", "short"), -1);
    assert_int_equal (mw_publisher_truncated (pub), 3);
    free (big);
    mw_publisher_destroy (&pub);
}

static void
test_bad_endpoints_and_options (void **state)
{
    (void) state;
    assert_null (mw_publisher_new ("", "m"));
    assert_null (mw_publisher_new (NULL, "m"));
    assert_null (mw_publisher_new ("@", "m"));
    assert_null (mw_publisher_new (",", "m"));
    assert_null (mw_publisher_new ("nonsense", "m"));
    assert_null (mw_publisher_new ("@tcp://127.0.0.1:*,>", "m"));
    assert_null (mw_publisher_new ("@tcp://no-such-address-here:1", "m"));
    assert_null (mw_publisher_new_opts ("@tcp://127.0.0.1:*", "m", 0, 0));
    assert_null (mw_publisher_new_opts ("@tcp://127.0.0.1:*", "m", 10, -1));

    //  A port already bound: the second bind fails cleanly.
    void *ctx = zmq_ctx_new ();
    void *holder = zmq_socket (ctx, ZMQ_PULL);
    int zero = 0;
    zmq_setsockopt (holder, ZMQ_LINGER, &zero, sizeof (zero));
    assert_int_equal (zmq_bind (holder, "tcp://127.0.0.1:*"), 0);
    char ep[256], bind_ep[300];
    size_t len = sizeof (ep);
    zmq_getsockopt (holder, ZMQ_LAST_ENDPOINT, ep, &len);
    snprintf (bind_ep, sizeof (bind_ep), "@%s", ep);
    assert_null (mw_publisher_new (bind_ep, "m"));
    zmq_close (holder);
    zmq_ctx_term (ctx);

    mw_publisher_t *pub = NULL;
    mw_publisher_destroy (&pub); //  NULL is fine
    assert_string_equal (mw_version (), MW_TEST_VERSION);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_no_broker_connecting),
        cmocka_unit_test (test_no_broker_bound),
        cmocka_unit_test (test_prefix_subscriptions),
        cmocka_unit_test (test_two_endpoints),
        cmocka_unit_test (test_broker_restart),
        cmocka_unit_test (test_refusals_consume_seq),
        cmocka_unit_test (test_truncation_counted),
        cmocka_unit_test (test_bad_endpoints_and_options),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
