/*  test_publisher_threads.c - 8 threads publish at once into one publisher.

    What it proves: calls from many threads are serialized correctly: every
    event whose call returned 0 arrives exactly once, no event whose call
    returned -1 arrives, sequence numbers arrive in increasing order, each
    call consumed exactly one sequence number (together they are 1..N with
    no gap and no repeat), and sent/dropped match the return codes.

    mw_publisher_send_event writes the sequence number it assigned into the
    event, sent or not, so each thread knows the seq of each of its calls
    and the assertion is exact: received seqs == seqs whose call returned 0.
    With the subscription established first (wait_ready), a send high-water
    mark above the number of events and an unlimited receive high-water
    mark, nothing can be dropped, so the received seqs are exactly 1..N.
*/
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "mw_publisher.h"
#include "pub_test_util.h"

#define THREADS    8
#define PER_THREAD 5000
#define TOTAL      (THREADS * PER_THREAD)

typedef struct {
    mw_publisher_t *pub;
    int index;
    uint64_t seq[PER_THREAD];
    int rc[PER_THREAD];
} worker_t;

typedef struct {
    void *sub;
    uint64_t sid;
    uint64_t seq_of[TOTAL]; //  by thread * PER_THREAD + i; 0 = not received
    uint64_t received;
    uint64_t duplicates;
    uint64_t bad; //  undecodable, wrong sid or unknown task_id
    uint64_t out_of_order;
    atomic_int done; //  publishers finished: expected is final
    atomic_ullong expected;
} receiver_t;

//  Odd threads send task_step, even ones
//  cache_hit, so two event types with different bodies interleave.
static void *
s_worker (void *arg)
{
    worker_t *w = (worker_t *) arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char task_id[32];
        snprintf (task_id, sizeof (task_id), "t%d-%d", w->index, i);
        mw_event_t ev;
        if (w->index % 2) {
            mw_event_init (&ev, MW_TYPE_TASK_STEP);
            mw_event_set_str (&ev, MW_K_STEP, "working");
        }
        else
            mw_event_init (&ev, MW_TYPE_CACHE_HIT);
        mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
        w->rc[i] = mw_publisher_send_event (w->pub, &ev);
        w->seq[i] = ev.seq;
    }
    return NULL;
}

static void *
s_receiver (void *arg)
{
    receiver_t *r = (receiver_t *) arg;
    int timeout = 100;
    zmq_setsockopt (r->sub, ZMQ_RCVTIMEO, &timeout, sizeof (timeout));
    uint64_t last_seq = 0;
    int64_t idle_since = pt_now_ms ();
    while (true) {
        if (atomic_load (&r->done) && r->received >= atomic_load (&r->expected))
            break;
        //  Bounded: once the publishers are done, give stragglers 10 s.
        if (atomic_load (&r->done) && pt_now_ms () - idle_since > 10000)
            break;
        zmq_msg_t topic, body;
        zmq_msg_init (&topic);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&topic, r->sub, 0) < 0) {
            zmq_msg_close (&topic);
            zmq_msg_close (&body);
            continue;
        }
        idle_since = pt_now_ms ();
        if (!zmq_msg_more (&topic) || zmq_msg_recv (&body, r->sub, 0) < 0) {
            r->bad++;
            zmq_msg_close (&topic);
            zmq_msg_close (&body);
            continue;
        }
        mw_event_t ev;
        mw_event_init (&ev, MW_TYPE_CUSTOM);
        char err[256];
        int rc = mw_event_decode (&ev, zmq_msg_data (&topic), zmq_msg_size (&topic),
                                  zmq_msg_data (&body), zmq_msg_size (&body), err, sizeof (err));
        int t = -1, i = -1;
        if (rc != MW_OK || ev.sid != r->sid || !ev.str[MW_K_TASK_ID].ptr ||
            sscanf (ev.str[MW_K_TASK_ID].ptr, "t%d-%d", &t, &i) != 2 || t < 0 || t >= THREADS ||
            i < 0 || i >= PER_THREAD) {
            if (rc != MW_OK)
                fprintf (stderr, "receiver: undecodable event: %s\n", err);
            r->bad++;
        }
        else {
            uint64_t *slot = &r->seq_of[t * PER_THREAD + i];
            if (*slot)
                r->duplicates++;
            *slot = ev.seq;
            if (ev.seq <= last_seq)
                r->out_of_order++;
            last_seq = ev.seq;
            r->received++;
        }
        mw_event_release (&ev);
        zmq_msg_close (&topic);
        zmq_msg_close (&body);
    }
    return NULL;
}

static void
test_eight_threads_exactly_once (void **state)
{
    (void) state;
    void *ctx = zmq_ctx_new ();
    char ep[300];
    void *sub = pt_sub_bind (ctx, "", 0, ep, sizeof (ep));
    mw_publisher_t *pub = mw_publisher_new_opts (ep, "threads-miner", TOTAL * 2, 1000);
    assert_non_null (pub);
    assert_int_equal (pt_wait_ready (pub, sub, 10000), 0);

    receiver_t *r = (receiver_t *) calloc (1, sizeof (receiver_t));
    assert_non_null (r);
    r->sub = sub;
    r->sid = mw_publisher_sid (pub);
    pthread_t rx;
    assert_int_equal (pthread_create (&rx, NULL, s_receiver, r), 0);

    worker_t *workers = (worker_t *) calloc (THREADS, sizeof (worker_t));
    assert_non_null (workers);
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t].pub = pub;
        workers[t].index = t;
        assert_int_equal (pthread_create (&threads[t], NULL, s_worker, &workers[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join (threads[t], NULL);
    uint64_t sent = mw_publisher_sent (pub);
    uint64_t dropped = mw_publisher_dropped (pub);
    atomic_store (&r->expected, sent);
    atomic_store (&r->done, 1);
    pthread_join (rx, NULL);

    //  Every call consumed exactly one seq: together 1..TOTAL, no repeat.
    uint8_t *seen = (uint8_t *) calloc (TOTAL + 1, 1);
    assert_non_null (seen);
    uint64_t ok_calls = 0, failed_calls = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            uint64_t seq = workers[t].seq[i];
            assert_true (seq >= 1 && seq <= TOTAL);
            assert_int_equal (seen[seq], 0);
            seen[seq] = 1;
            if (workers[t].rc[i] == 0)
                ok_calls++;
            else
                failed_calls++;
        }
    assert_int_equal (sent + dropped, TOTAL);
    assert_int_equal (ok_calls, sent);
    assert_int_equal (failed_calls, dropped);

    //  What arrived is exactly what was reported sent, once, in order.
    assert_int_equal (r->bad, 0);
    assert_int_equal (r->duplicates, 0);
    assert_int_equal (r->out_of_order, 0);
    assert_int_equal (r->received, sent);
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            uint64_t got = r->seq_of[t * PER_THREAD + i];
            if (workers[t].rc[i] == 0)
                assert_int_equal (got, workers[t].seq[i]);
            else
                assert_int_equal (got, 0);
        }
    //  By construction nothing could be dropped (see the file comment), so
    //  the session's seqs 1..N all arrived: no gap at all.
    assert_int_equal (dropped, 0);

    free (seen);
    free (workers);
    free (r);
    mw_publisher_destroy (&pub);
    assert_null (pub);
    zmq_close (sub);
    zmq_ctx_term (ctx);
}

//  A new publisher is a new session: a different sid, seq from 1 again.
//  Dropped events (nobody listens here) consume their seq too.
static void
test_new_session_restarts_seq (void **state)
{
    (void) state;
    mw_publisher_t *a = mw_publisher_new_opts ("@tcp://127.0.0.1:*", "m", 10, 0);
    mw_publisher_t *b = mw_publisher_new_opts ("@tcp://127.0.0.1:*", "m", 10, 0);
    assert_non_null (a);
    assert_non_null (b);
    assert_int_not_equal (mw_publisher_sid (a), 0);
    assert_int_not_equal (mw_publisher_sid (a), mw_publisher_sid (b));
    for (uint64_t n = 1; n <= 3; n++) {
        mw_event_t ev;
        mw_event_init (&ev, MW_TYPE_CACHE_HIT);
        mw_event_set_str (&ev, MW_K_TASK_ID, "t");
        assert_int_equal (mw_publisher_send_event (a, &ev), -1);
        assert_int_equal (ev.seq, n);
        assert_int_equal (ev.sid, mw_publisher_sid (a));
    }
    mw_event_t ev;
    mw_event_init (&ev, MW_TYPE_CACHE_HIT);
    mw_event_set_str (&ev, MW_K_TASK_ID, "t");
    assert_int_equal (mw_publisher_send_event (b, &ev), -1);
    assert_int_equal (ev.seq, 1);
    mw_publisher_destroy (&a);
    mw_publisher_destroy (&b);
    mw_publisher_destroy (&b); //  idempotent on NULL
    assert_null (a);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_eight_threads_exactly_once),
        cmocka_unit_test (test_new_session_restarts_seq),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
