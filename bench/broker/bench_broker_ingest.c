/*  bench_broker_ingest.c - how many events per second the broker takes in,
    against raw libzmq PUB -> SUB of the same frames, in the same run.

    The same pre-encoded frames (a realistic mix: task lifecycles of many
    tasks, validator connections, custom events; every event distinct, with
    its own task id and sequence number) go from one sending thread over
    TCP loopback either

    - raw: to a SUB socket whose thread only receives them, or
    - broker: to the broker's ingest (mw_broker, as minerwatch-broker runs
      it): decode with the hostile-input checks, give an id, apply to the
      state, re-encode, publish on the update stream. One subscriber
      listens to the update stream for the end marker only (PUB filters
      the rest out before any copy), or with --full-subscriber to every
      update (a gateway's load).

    The sender is an XPUB with ZMQ_XPUB_NODROP and blocking sends: at the
    high-water mark it waits instead of dropping, so both runs carry every event, and a run is
    timed from the first send to the receiver seeing the end marker (sent
    last). A fresh broker per run, so every run grows its state from empty
    to the bounds. Runs alternate raw / broker, the order flipping each
    round, so drift in the machine hits both; we report the median
    events/s of each and the ratio broker / raw. Each run also reads the
    process's CPU time (all threads): CPU ns per event of each path, which
    other work on the machine moves much less than events/s.

    Usage: bench_broker_ingest [--events N] [--rounds R] [--full-subscriber]
    Exit status 0 if every run carried every event (the broker accepted
    all of them), 1 otherwise, 2 on a bad flag. The ratio is reported,
    never judged here.
*/
#include "mw_broker.h"
#include "mw_publisher.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define S_HWM        10000
#define S_MAX_ROUNDS 99
#define S_END_TOPIC  "bench_end"

typedef struct {
    uint8_t *data;
    size_t size;
    char topic[MW_MAX_TYPE + 1];
    size_t topic_len;
} s_frame_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

//  CPU time of the whole process, every thread (sender, receiver or broker,
//  and libzmq's I/O threads): what a run costs the machine, whatever else
//  runs on it.
static double
s_cpu (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

//  --------------------------------------------------------------------------
//  The frames

//  Stamp, encode and keep one event.
static int
s_keep (s_frame_t *frame, mw_event_t *ev, uint64_t seq, uint8_t *buf)
{
    ev->v = MW_PROTOCOL_VERSION;
    ev->ts = 1700000000000000ull + seq * 1000u;
    ev->sid = 0x5eed5eed5eedull;
    ev->seq = seq;
    mw_event_set_str (ev, MW_K_MINER, "bench-miner");
    size_t len;
    if (mw_event_encode (ev, buf, MW_MAX_BODY, &len, NULL) != MW_OK)
        return -1;
    frame->data = (uint8_t *) malloc (len);
    if (!frame->data)
        return -1;
    memcpy (frame->data, buf, len);
    frame->size = len;
    snprintf (frame->topic, sizeof (frame->topic), "%s", ev->type);
    frame->topic_len = strlen (frame->topic);
    return 0;
}

//  events frames of task lifecycles, then the end marker (events + 1 in all).
static s_frame_t *
s_frames_new (size_t events)
{
    s_frame_t *frames = (s_frame_t *) calloc (events + 1, sizeof (s_frame_t));
    uint8_t *buf = (uint8_t *) malloc (MW_MAX_BODY);
    if (!frames || !buf)
        goto fail;
    static const char *ips[] = {"45.22.240.79", "84.247.180.192", "10.0.0.7", "10.0.0.8"};
    char task_id[32], prompt[96];
    size_t n = 0;
    for (uint64_t task = 0; n < events; task++) {
        snprintf (task_id, sizeof (task_id), "task-%08" PRIu64, task);
        snprintf (prompt, sizeof (prompt), "Login to example-%" PRIu64 ".com and check the cart",
                  task);
        const char *ip = ips[task % 4];
        mw_event_t ev;
        for (int step = 0; step < 6 && n < events; step++) {
            switch (step) {
                case 0:
                    mw_event_init (&ev, MW_TYPE_TASK_START);
                    mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
                    mw_event_set_str (&ev, MW_K_PROMPT, prompt);
                    mw_event_set_str (&ev, MW_K_URL, "https://example.com/login");
                    mw_event_set_str (&ev, MW_K_VALIDATOR_IP, ip);
                    break;
                case 1:
                    mw_event_init (&ev, MW_TYPE_TASK_STEP);
                    mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
                    mw_event_set_str (&ev, MW_K_STEP, "processing");
                    break;
                case 2:
                    mw_event_init (&ev, MW_TYPE_ACTIONS_GENERATED);
                    mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
                    ev.action_count = task % 17;
                    ev.has |= MW_HAS_ACTION_COUNT;
                    break;
                case 3:
                    mw_event_init (&ev, MW_TYPE_TASK_COMPLETE);
                    mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
                    ev.success = task % 5 != 4;
                    ev.action_count = task % 17;
                    ev.response_time = 0.5 + (double) (task % 40) / 10.0;
                    ev.has |= MW_HAS_SUCCESS | MW_HAS_ACTION_COUNT | MW_HAS_RESPONSE_TIME;
                    break;
                case 4:
                    if (task % 10)
                        continue;
                    mw_event_init (&ev, MW_TYPE_VALIDATOR_CONNECTION);
                    mw_event_set_str (&ev, MW_K_VALIDATOR_IP, ip);
                    break;
                default:
                    if (task % 20)
                        continue;
                    if (mw_event_init_named (&ev, "my_metric"))
                        goto fail;
                    mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
                    break;
            }
            if (s_keep (&frames[n], &ev, n + 1, buf))
                goto fail;
            n++;
        }
    }
    mw_event_t end;
    if (mw_event_init_named (&end, S_END_TOPIC) || s_keep (&frames[events], &end, events + 1, buf))
        goto fail;
    free (buf);
    return frames;
fail:
    fprintf (stderr, "bench_broker_ingest: cannot encode the events\n");
    free (buf);
    if (frames)
        for (size_t i = 0; i <= events; i++)
            free (frames[i].data);
    free (frames);
    return NULL;
}

//  --------------------------------------------------------------------------
//  Sender and receivers

//  Send every frame to endpoint (which already listens): XPUB + NODROP, so
//  a full queue waits. Return the time of the first send, or -1.
static double
s_send_all (const s_frame_t *frames, size_t count, const char *endpoint)
{
    void *ctx = zmq_ctx_new ();
    void *pub = zmq_socket (ctx, ZMQ_XPUB);
    int hwm = S_HWM, one = 1, linger = 10000;
    zmq_setsockopt (pub, ZMQ_SNDHWM, &hwm, sizeof (hwm));
    zmq_setsockopt (pub, ZMQ_XPUB_NODROP, &one, sizeof (one));
    zmq_setsockopt (pub, ZMQ_LINGER, &linger, sizeof (linger));
    double started = -1;
    if (zmq_connect (pub, endpoint))
        goto done;
    //  The subscription arriving means the receiver is connected.
    zmq_pollitem_t item = {pub, 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&item, 1, 10000) != 1)
        goto done;
    char sub[64];
    zmq_recv (pub, sub, sizeof (sub), 0);
    started = s_now ();
    //  Blocking sends: with ZMQ_XPUB_NODROP a full queue makes zmq_send
    //  wait (for the I/O thread to say there is room) instead of dropping.
    for (size_t i = 0; i < count; i++) {
        const s_frame_t *f = &frames[i];
        if (zmq_send (pub, f->topic, f->topic_len, ZMQ_SNDMORE) < 0
            || zmq_send (pub, f->data, f->size, 0) < 0) {
            started = -1;
            break;
        }
    }
done:
    zmq_close (pub);
    zmq_ctx_term (ctx);
    return started;
}

typedef struct {
    void *sock;
    atomic_bool ready;
    atomic_ullong received; //  events (any topic but "$...")
    double end_time;        //  when the end marker arrived
    bool done;
    double give_up; //  stop waiting then (a run that failed)
} s_receiver_t;

//  Receive until the end marker. The raw receiver is a plain SUB; the
//  broker's receiver is a SUB on its update stream.
static void *
s_receive (void *arg)
{
    s_receiver_t *self = (s_receiver_t *) arg;
    zmq_msg_t topic, body;
    zmq_msg_init (&topic);
    zmq_msg_init (&body);
    atomic_store (&self->ready, true);
    while (true) {
        if (zmq_msg_recv (&topic, self->sock, 0) < 0) {
            if (zmq_errno () == EAGAIN && s_now () < self->give_up)
                continue; //  a receive timeout: look at the clock again
            break;
        }
        if (zmq_msg_more (&topic))
            zmq_msg_recv (&body, self->sock, 0);
        const char *t = (const char *) zmq_msg_data (&topic);
        size_t tl = zmq_msg_size (&topic);
        if (tl && t[0] == '$')
            continue;
        atomic_fetch_add (&self->received, 1);
        if (tl == strlen (S_END_TOPIC) && !memcmp (t, S_END_TOPIC, tl)) {
            self->end_time = s_now ();
            self->done = true;
            break;
        }
    }
    zmq_msg_close (&body);
    zmq_msg_close (&topic);
    return NULL;
}

//  --------------------------------------------------------------------------
//  Runs

//  One raw run: events/s, or -1; the process CPU seconds per event in
//  *cpu_p (from the receiver's start to its end; the setup of the sockets
//  is in it, the same for both ways).
static double
s_run_raw (const s_frame_t *frames, size_t count, double *cpu_p)
{
    void *ctx = zmq_ctx_new ();
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    int hwm = S_HWM, timeout = 100;
    zmq_setsockopt (sub, ZMQ_RCVHWM, &hwm, sizeof (hwm));
    zmq_setsockopt (sub, ZMQ_RCVTIMEO, &timeout, sizeof (timeout));
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "", 0);
    zmq_bind (sub, "tcp://127.0.0.1:*");
    char ep[128];
    size_t len = sizeof (ep);
    zmq_getsockopt (sub, ZMQ_LAST_ENDPOINT, ep, &len);
    s_receiver_t recv = {sub, false, 0, 0, false, s_now () + 300};
    pthread_t thread;
    double cpu0 = s_cpu ();
    pthread_create (&thread, NULL, s_receive, &recv);
    double started = s_send_all (frames, count, ep);
    pthread_join (thread, NULL);
    *cpu_p = (s_cpu () - cpu0) / (double) count;
    zmq_close (sub);
    zmq_ctx_term (ctx);
    if (started < 0 || !recv.done || recv.received != count)
        return -1;
    return (double) count / (recv.end_time - started);
}

//  One broker run: events/s, or -1; the process CPU seconds per event in
//  *cpu_p, as for the raw run.
static double
s_run_broker (const s_frame_t *frames, size_t count, bool full, int round, double *cpu_p)
{
    mw_broker_config_t cfg;
    mw_broker_config_default (&cfg);
    cfg.quiet = true;
    cfg.log_name = "bench-broker";
    snprintf (cfg.ingest[0], sizeof (cfg.ingest[0]), "@tcp://127.0.0.1:*");
    snprintf (cfg.publish, sizeof (cfg.publish), "@inproc://bench-updates-%d", round);
    snprintf (cfg.snapshot, sizeof (cfg.snapshot), "@inproc://bench-snapshot-%d", round);
    char err[512];
    mw_broker_t *broker = mw_broker_new (&cfg, err, sizeof (err));
    if (!broker) {
        fprintf (stderr, "bench_broker_ingest: %s\n", err);
        return -1;
    }
    char ep[256];
    mw_broker_endpoints (broker, "ingest", ep, sizeof (ep));
    zsock_t *sub = zsock_new (ZMQ_SUB);
    zsock_set_rcvhwm (sub, 0);
    zsock_set_rcvtimeo (sub, 100);
    zsock_set_subscribe (sub, full ? "" : S_END_TOPIC);
    zsock_set_subscribe (sub, "$hb");
    zsock_connect (sub, "%s", cfg.publish + 1);
    //  A first heartbeat: the subscription is in place.
    zsock_set_rcvtimeo (sub, 3000);
    zmsg_t *hb = zmsg_recv (sub);
    zmsg_destroy (&hb);
    zsock_set_rcvtimeo (sub, 100);
    s_receiver_t recv = {zsock_resolve (sub), false, 0, 0, false, s_now () + 300};
    pthread_t thread;
    double cpu0 = s_cpu ();
    pthread_create (&thread, NULL, s_receive, &recv);
    double started = s_send_all (frames, count, ep + 1);
    pthread_join (thread, NULL);
    *cpu_p = (s_cpu () - cpu0) / (double) count;
    mw_broker_stats_t stats;
    int rc = mw_broker_stats (broker, &stats);
    zsock_destroy (&sub);
    mw_broker_destroy (&broker);
    if (started < 0 || !recv.done || rc || stats.accepted != count || stats.rejected) {
        fprintf (stderr,
                 "bench_broker_ingest: broker run lost events (accepted %" PRIu64
                 " of %zu, rejected %" PRIu64 ")\n",
                 stats.accepted, count, stats.rejected);
        return -1;
    }
    return (double) count / (recv.end_time - started);
}

static int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

int
main (int argc, char **argv)
{
    size_t events = 200000;
    int rounds = 5;
    bool full = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--events") && i + 1 < argc)
            events = (size_t) strtoull (argv[++i], NULL, 10);
        else if (!strcmp (argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi (argv[++i]);
        else if (!strcmp (argv[i], "--full-subscriber"))
            full = true;
        else {
            fprintf (stderr, "usage: bench_broker_ingest [--events N] [--rounds R] "
                             "[--full-subscriber]\n");
            return 2;
        }
    }
    if (events < 10 || rounds < 1 || rounds > S_MAX_ROUNDS) {
        fprintf (stderr, "bench_broker_ingest: --events >= 10, --rounds 1..%d\n", S_MAX_ROUNDS);
        return 2;
    }
    zsys_handler_set (NULL);
    s_frame_t *frames = s_frames_new (events);
    if (!frames)
        return 1;
    size_t bytes = 0;
    for (size_t i = 0; i <= events; i++)
        bytes += frames[i].size + frames[i].topic_len;
    double raw[S_MAX_ROUNDS] = {0}, brk[S_MAX_ROUNDS] = {0};
    double raw_cpu[S_MAX_ROUNDS] = {0}, brk_cpu[S_MAX_ROUNDS] = {0};
    int rc = 0;
    for (int r = 0; r < rounds && rc == 0; r++) {
        bool raw_first = r % 2 == 0;
        for (int k = 0; k < 2; k++) {
            bool do_raw = (k == 0) == raw_first;
            double cpu = 0;
            double v = do_raw ? s_run_raw (frames, events + 1, &cpu)
                              : s_run_broker (frames, events + 1, full, r, &cpu);
            (do_raw ? raw_cpu : brk_cpu)[r] = cpu;
            if (v < 0) {
                fprintf (stderr, "bench_broker_ingest: a %s run failed\n",
                         do_raw ? "raw" : "broker");
                rc = 1;
                break;
            }
            if (do_raw)
                raw[r] = v;
            else
                brk[r] = v;
        }
    }
    if (rc == 0) {
        qsort (raw, (size_t) rounds, sizeof (double), s_cmp);
        qsort (brk, (size_t) rounds, sizeof (double), s_cmp);
        qsort (raw_cpu, (size_t) rounds, sizeof (double), s_cmp);
        qsort (brk_cpu, (size_t) rounds, sizeof (double), s_cmp);
        double mraw = raw[rounds / 2], mbrk = brk[rounds / 2];
        printf ("| path | events/s (median of %d) | min | max |\n", rounds);
        printf ("|---|---:|---:|---:|\n");
        printf ("| raw libzmq PUB -> SUB | %.0f | %.0f | %.0f |\n", mraw, raw[0], raw[rounds - 1]);
        printf ("| broker ingest%s | %.0f | %.0f | %.0f |\n",
                full ? " (+ 1 subscriber of every update)" : "", mbrk, brk[0], brk[rounds - 1]);
        printf ("\n%zu events per run (%.0f bytes per event on the wire, mean); broker / raw = "
                "%.2f\n",
                events + 1, (double) bytes / (double) (events + 1), mbrk / mraw);
        //  CPU per event over all threads: steadier than events/s when
        //  other work shares the machine. On a machine whose cores are all
        //  busy, throughput is cores / (CPU per event), so raw / broker
        //  here is what the events/s ratio comes to on an idle machine of
        //  this size, if both runs keep every core busy.
        double craw = raw_cpu[rounds / 2], cbrk = brk_cpu[rounds / 2];
        printf ("\n| path | process CPU ns/event (median of %d) | min | max |\n", rounds);
        printf ("|---|---:|---:|---:|\n");
        printf ("| raw libzmq PUB -> SUB | %.0f | %.0f | %.0f |\n", craw * 1e9, raw_cpu[0] * 1e9,
                raw_cpu[rounds - 1] * 1e9);
        printf ("| broker ingest | %.0f | %.0f | %.0f |\n", cbrk * 1e9, brk_cpu[0] * 1e9,
                brk_cpu[rounds - 1] * 1e9);
        printf ("\nCPU: raw / broker = %.2f\n", craw / cbrk);
    }
    for (size_t i = 0; i <= events; i++)
        free (frames[i].data);
    free (frames);
    return rc;
}
