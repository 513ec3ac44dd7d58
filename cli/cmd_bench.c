/*  cmd_bench.c - `minerwatch bench`: what the broker hop costs, end to end.

    Events built like a miner's (task_start, two task_step,
    actions_generated, task_complete per task) go out through libminerwatch
    to a broker's ingest and come back on its update stream, where they are
    decoded; for each one the time from the publish call to its decoded
    update is a latency sample. In the same invocation the same events,
    encoded beforehand, go straight from a raw libzmq XPUB to a SUB on
    loopback and are decoded the same way: the baseline. Both senders are
    paced alike (--rate) and never block (ZMQ_DONTWAIT, XPUB_NODROP: a full
    queue is a counted drop), rounds alternate the order, and the summary
    gives medians and the ratio pipeline / raw.

    Without --endpoint the broker runs in this process (mw_broker on
    loopback TCP, exactly what minerwatch-broker runs); with --endpoint and
    --updates it is a running broker, whose other traffic is ignored (the
    samples are told apart by miner name and session id).

    A sample is matched to its send time by `seq`: the publisher gives
    every call one, sent or dropped, so event i of a run has seq
    first_seq + i. What never arrives is counted lost.
*/
#include "mw_broker.h"
#include "mw_cli.h"
#include "mw_publisher.h"

#include <czmq.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_NAME        "bench"
#define S_EVENTS_MAX  500000u //  per run: the raw baseline keeps them all encoded
#define S_ROUNDS_MAX  100u
#define S_RATE_MAX    10000000.0
#define S_WARMUP_MS   10000 //  longest wait for the first event through a path
#define S_IDLE_MS     1000  //  after the last send, silence this long ends a run
#define S_HWM         10000 //  send high-water mark of both senders
#define S_WARMUP_TYPE "bench_warmup"

typedef struct {
    const char *endpoint; //  a broker's ingest; NULL: a broker in this process
    const char *updates;  //  its update stream
    uint64_t events;
    double rate; //  events/s; 0 = as fast as the sender goes
    uint64_t rounds;
    bool raw;
    bool json;
    bool quiet;
    mw_cli_curve_t curve;
} s_opts_t;

//  What one run of one path measured.
typedef struct {
    uint64_t sent, dropped, received, lost;
    double send_s;                   //  first to last send call
    double call_p50_ns, call_p99_ns; //  one send call (build, encode, send)
    double lat_p50_us, lat_p99_us, lat_max_us;
} s_result_t;

//  A run in progress: the sender thread and the receiving thread share it.
typedef struct {
    const s_opts_t *opts;
    bool pipeline;       //  through libminerwatch and the broker, or raw
    mw_publisher_t *pub; //  pipeline sender
    void *xpub;          //  raw sender
    uint8_t **bodies;    //  raw: the encoded events
    mw_type_t *kinds;    //  raw: their types (the topic frames)
    size_t *body_lens;
    _Atomic uint64_t *sent_ns;   //  send time of event i (monotonic ns), read by the receiver
    uint32_t *call_ns;           //  cost of the call that sent event i
    uint64_t first_seq;          //  seq of event 0
    atomic_uint_fast64_t issued; //  events handed to the sender's socket (sent + dropped)
    atomic_uint_fast64_t dropped;
    atomic_bool done;
    double send_s;
} s_run_t;

static const struct option s_options[] = {{"endpoint", required_argument, NULL, 'e'},
                                          {"updates", required_argument, NULL, 'u'},
                                          {"events", required_argument, NULL, 'n'},
                                          {"rate", required_argument, NULL, 'r'},
                                          {"rounds", required_argument, NULL, 'R'},
                                          {"no-raw", no_argument, NULL, 'N'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          MW_CLI_CURVE_OPTIONS,
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};

static void
s_help (FILE *out)
{
    fprintf (
        out,
        "Usage: minerwatch bench [OPTIONS]\n"
        "\n"
        "Measure what the broker hop costs: events built like a miner's go out through\n"
        "libminerwatch to a broker and come back decoded from its update stream; each\n"
        "one gives a latency sample (publish call to decoded update). In the same run the\n"
        "same events, encoded beforehand, go straight from a raw libzmq socket to a\n"
        "subscriber on loopback: the baseline. Rounds alternate the two; the summary\n"
        "gives the medians and the ratio pipeline / raw.\n"
        "\n"
        "Options:\n"
        "  -e, --endpoint EP     a running broker's ingest, '>tcp://HOST:PORT' (default:\n"
        "                        start a broker in this process, on loopback TCP)\n"
        "  -u, --updates EP      that broker's update stream (needed with --endpoint,\n"
        "                        e.g. '>tcp://HOST:7711')\n"
        "  -n, --events N        events per run, at most %u (default: 20000)\n"
        "  -r, --rate N          events per second; 0 sends as fast as possible, which\n"
        "                        measures queueing more than the hop (default: 5000)\n"
        "      --rounds R        runs of each path (default: 3)\n"
        "      --no-raw          skip the raw libzmq baseline\n"
        "      --json            print the results as one JSON object on stdout\n"
        "  -q, --quiet           no progress lines on stderr\n"
        "  -h, --help            show this help and exit\n"
        "\n" MW_CLI_CURVE_HELP "\n"
        "Neither sender ever blocks: an event its queue cannot take is counted dropped;\n"
        "one that never arrives is counted lost. Events of other publishers on a\n"
        "running broker are ignored. Against a running broker the events are real:\n"
        "they show up in its state as tasks of the miner 'bench-PID'.\n"
        "Exit code 0 when every run completed, 1 if a path never delivered (no broker).\n"
        "\n"
        "Examples:\n"
        "  minerwatch bench\n"
        "  minerwatch bench --events 100000 --rate 20000 --rounds 5\n"
        "  minerwatch bench --endpoint '>tcp://10.0.0.5:7710' --updates '>tcp://10.0.0.5:7711'\n",
        S_EVENTS_MAX);
}

static int
s_parse (int argc, char **argv, s_opts_t *opts)
{
    opts->events = 20000;
    opts->rate = 5000;
    opts->rounds = 3;
    opts->raw = true;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":e:u:n:r:qh", s_options, NULL)) != -1) {
        const char *why = NULL;
        switch (c) {
            case 'e':
            case 'u':
                if (mw_cli_check_endpoints (optarg, &why) != 0)
                    return mw_cli_usage (S_NAME, "invalid --%s '%s': %s",
                                         c == 'e' ? "endpoint" : "updates", optarg, why);
                *(c == 'e' ? &opts->endpoint : &opts->updates) = optarg;
                break;
            case 'n':
                if (mw_cli_parse_uint (optarg, 1, S_EVENTS_MAX, &opts->events) != 0)
                    return mw_cli_usage (S_NAME, "invalid --events '%s': expected 1 to %u", optarg,
                                         S_EVENTS_MAX);
                break;
            case 'r':
                if (mw_cli_parse_double (optarg, 0, S_RATE_MAX, &opts->rate) != 0)
                    return mw_cli_usage (S_NAME, "invalid --rate '%s': expected 0 to %.0f", optarg,
                                         S_RATE_MAX);
                break;
            case 'R':
                if (mw_cli_parse_uint (optarg, 1, S_ROUNDS_MAX, &opts->rounds) != 0)
                    return mw_cli_usage (S_NAME, "invalid --rounds '%s': expected 1 to %u", optarg,
                                         S_ROUNDS_MAX);
                break;
            case 'N':
                opts->raw = false;
                break;
            case 'j':
                opts->json = true;
                break;
            case 'q':
                opts->quiet = true;
                break;
            case MW_CLI_OPT_SERVER_KEY:
            case MW_CLI_OPT_CLIENT_CERT:
                mw_cli_curve_option (&opts->curve, c, optarg);
                break;
            case 'h':
                s_help (stdout);
                return -1;
            default:
                return mw_cli_bad_option (S_NAME, c, argv, s_options);
        }
    }
    if (optind < argc)
        return mw_cli_usage (S_NAME, "unexpected argument '%s'", argv[optind]);
    if (opts->endpoint && !opts->updates)
        return mw_cli_usage (S_NAME, "--endpoint needs --updates: the broker's update stream");
    if (opts->updates && !opts->endpoint)
        return mw_cli_usage (S_NAME, "--updates needs --endpoint: the broker's ingest");
    if (opts->curve.server_key && !opts->endpoint)
        return mw_cli_usage (S_NAME,
                             "CURVE options need --endpoint: the broker in this process is plain");
    return mw_cli_curve_check (S_NAME, &opts->curve);
}

//  --------------------------------------------------------------------------
//  The events: five per task, the strings of a typical miner.

static uint64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

//  Build event i (its strings in task_id, which the caller keeps alive).
static void
s_event (mw_event_t *ev, uint64_t i, char *task_id, size_t task_id_size)
{
    static const mw_type_t cycle[] = {MW_TYPE_TASK_START, MW_TYPE_TASK_STEP, MW_TYPE_TASK_STEP,
                                      MW_TYPE_ACTIONS_GENERATED, MW_TYPE_TASK_COMPLETE};
    mw_event_init (ev, cycle[i % 5]);
    snprintf (task_id, task_id_size, "bench-%" PRIu64, i / 5);
    mw_event_set_str (ev, MW_K_TASK_ID, task_id);
    switch (i % 5) {
        case 0:
            mw_event_set_str (ev, MW_K_PROMPT,
                              "Login to example.com with the test account, open the settings page "
                              "and change the display name");
            mw_event_set_str (ev, MW_K_URL, "https://example.com/login");
            mw_event_set_str (ev, MW_K_VALIDATOR_IP, "203.0.113.17");
            mw_event_set_str (ev, MW_K_VALIDATOR_HOTKEY,
                              "5F3sa2TJAWMqDhXG6jhV4N8ko9SxwGy8TpaNS1repo5EYjQX");
            ev->timeout_ms = 120000;
            ev->has |= MW_HAS_TIMEOUT_MS;
            break;
        case 1:
        case 2:
            mw_event_set_str (ev, MW_K_STEP, i % 5 == 1 ? "planning" : "generating_actions");
            break;
        case 3:
            mw_event_set_str (ev, MW_K_ACTION_TYPE, "click");
            ev->action_count = 7;
            ev->has |= MW_HAS_ACTION_COUNT;
            break;
        default:
            ev->success = true;
            ev->action_count = 7;
            ev->response_time = 2.5;
            ev->has |= MW_HAS_SUCCESS | MW_HAS_ACTION_COUNT | MW_HAS_RESPONSE_TIME;
            break;
    }
}

//  --------------------------------------------------------------------------
//  The sender thread: paced on the monotonic clock (event i is due at
//  start + i / rate; one late is sent at once, so the mean rate holds).

static void *
s_sender (void *arg)
{
    s_run_t *run = (s_run_t *) arg;
    const s_opts_t *opts = run->opts;
    double start = mw_cli_now ();
    char task_id[64];
    for (uint64_t i = 0; i < opts->events && !mw_cli_interrupted; i++) {
        if (opts->rate > 0)
            mw_cli_sleep_until (start + (double) i / opts->rate);
        bool sent;
        uint64_t t0 = s_now_ns ();
        //  Stored before the send: the update can arrive before the call returns.
        atomic_store_explicit (&run->sent_ns[i], t0, memory_order_relaxed);
        if (run->pipeline) {
            mw_event_t ev;
            s_event (&ev, i, task_id, sizeof (task_id));
            sent = mw_publisher_send_event (run->pub, &ev) == 0;
        }
        else {
            const char *topic = mw_type_name (run->kinds[i]);
            sent = zmq_send (run->xpub, topic, strlen (topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
                   zmq_send (run->xpub, run->bodies[i], run->body_lens[i], ZMQ_DONTWAIT) >= 0;
        }
        uint64_t t1 = s_now_ns ();
        run->call_ns[i] = (uint32_t) (t1 - t0 > UINT32_MAX ? UINT32_MAX : t1 - t0);
        if (!sent)
            atomic_fetch_add (&run->dropped, 1);
        atomic_store (&run->issued, i + 1);
    }
    run->send_s = mw_cli_now () - start;
    atomic_store (&run->done, true);
    return NULL;
}

//  --------------------------------------------------------------------------
//  Statistics

static int
s_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static int
s_cmp_u32 (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  The q-quantile (0..1) of n sorted values, nearest rank.
static size_t
s_rank (size_t n, double q)
{
    size_t k = (size_t) (q * (double) n);
    return k >= n ? n - 1 : k;
}

static double
s_median (double *values, size_t n)
{
    qsort (values, n, sizeof (double), s_cmp_double);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

//  --------------------------------------------------------------------------
//  One run of one path

//  Is this decoded update one of the run's, and which? Return its index,
//  or -1 (another publisher's event, or a warm-up one).
static int64_t
s_index (s_run_t *run, const mw_event_t *ev, const char *miner, uint64_t sid)
{
    if (run->pipeline) {
        const mw_str_t *m = &ev->str[MW_K_MINER];
        if (ev->sid != sid || !m->ptr || strcmp (m->ptr, miner) != 0)
            return -1;
    }
    if (ev->kind == MW_TYPE_CUSTOM || ev->seq < run->first_seq)
        return -1;
    uint64_t i = ev->seq - run->first_seq;
    return i < run->opts->events ? (int64_t) i : -1;
}

//  Receive one message without waiting and decode it into ev (released by
//  the caller whatever happened). Return 1 if a valid event came, 0 if a
//  message came that is not one, -1 if nothing was waiting.
static int
s_recv_event (void *sub, mw_event_t *ev)
{
    mw_event_init (ev, MW_TYPE_CUSTOM);
    zmq_msg_t part[2];
    int parts = 0;
    bool more = true;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init (&msg);
        if (zmq_msg_recv (&msg, sub, parts ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&msg);
            break;
        }
        more = zmq_msg_more (&msg);
        if (parts < 2)
            part[parts] = msg;
        else
            zmq_msg_close (&msg);
        parts++;
    }
    int rc = parts == 0 ? -1 : 0;
    if (parts == 2 &&
        mw_event_decode (ev, zmq_msg_data (&part[0]), zmq_msg_size (&part[0]),
                         zmq_msg_data (&part[1]), zmq_msg_size (&part[1]), NULL, 0) == MW_OK)
        rc = 1;
    for (int i = 0; i < parts && i < 2; i++)
        zmq_msg_close (&part[i]);
    return rc;
}

//  Send warm-up events until one comes back on sub: both connections are
//  up and subscribed. Return 0, or -1 after S_WARMUP_MS.
static int
s_warm_up (s_run_t *run, void *sub, const char *miner, uint64_t sid, const uint8_t *body,
           size_t body_len)
{
    int64_t deadline = zclock_mono () + S_WARMUP_MS;
    while (zclock_mono () < deadline && !mw_cli_interrupted) {
        if (run->pipeline)
            mw_publisher_send (run->pub, S_WARMUP_TYPE, NULL, NULL, 0);
        else {
            zmq_send (run->xpub, S_WARMUP_TYPE, strlen (S_WARMUP_TYPE), ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send (run->xpub, body, body_len, ZMQ_DONTWAIT);
        }
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 50) <= 0)
            continue;
        bool seen = false;
        mw_event_t ev;
        int got;
        while ((got = s_recv_event (sub, &ev)) >= 0) {
            const mw_str_t *m = &ev.str[MW_K_MINER];
            if (got && !strcmp (ev.type, S_WARMUP_TYPE) &&
                (!run->pipeline || (ev.sid == sid && m->ptr && !strcmp (m->ptr, miner))))
                seen = true;
            mw_event_release (&ev);
        }
        if (seen) {
            //  Let the last warm-up events through, then start clean.
            zclock_sleep (100);
            while (s_recv_event (sub, &ev) >= 0)
                mw_event_release (&ev);
            return 0;
        }
    }
    return -1;
}

//  Receive until every event sent arrived, or the sender is done and the
//  line stayed silent S_IDLE_MS. Latencies go into lat_ns (by index).
static void
s_receive (s_run_t *run, void *sub, const char *miner, uint64_t sid, uint64_t *lat_ns,
           uint64_t *received_p)
{
    uint64_t received = 0;
    int64_t idle_since = 0;
    while (!mw_cli_interrupted) {
        bool done = atomic_load (&run->done);
        uint64_t expected = atomic_load (&run->issued) - atomic_load (&run->dropped);
        if (done && received >= expected)
            break;
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 50) <= 0) {
            if (done) {
                if (!idle_since)
                    idle_since = zclock_mono ();
                else if (zclock_mono () - idle_since >= S_IDLE_MS)
                    break;
            }
            continue;
        }
        idle_since = 0;
        mw_event_t ev;
        int got;
        while ((got = s_recv_event (sub, &ev)) >= 0) {
            uint64_t now = s_now_ns ();
            int64_t i = got ? s_index (run, &ev, miner, sid) : -1;
            if (i >= 0 && lat_ns[i] == 0) {
                //  The sender stores sent_ns[i] before the update can exist.
                uint64_t sent = atomic_load_explicit (&run->sent_ns[i], memory_order_relaxed);
                lat_ns[i] = now > sent ? now - sent : 1;
                received++;
            }
            mw_event_release (&ev);
        }
    }
    *received_p = received;
}

//  Make a SUB socket connected to endpoint (czmq notation), subscribed to
//  everything, CURVE client if asked. NULL with a message on failure.
static zsock_t *
s_subscriber (const s_opts_t *opts, const char *endpoint, bool curve)
{
    zsock_t *sub = zsock_new (ZMQ_SUB);
    if (!sub)
        return NULL;
    zsock_set_rcvhwm (sub, 0);
    char err[640];
    if (curve && mw_cli_curve_client (zsock_resolve (sub), &opts->curve, err, sizeof (err))) {
        fprintf (stderr, "minerwatch bench: %s\n", err);
        zsock_destroy (&sub);
        return NULL;
    }
    zsock_set_subscribe (sub, "");
    if (zsock_attach (sub, endpoint, false) != 0) {
        fprintf (stderr, "minerwatch bench: cannot attach to %s\n", endpoint);
        zsock_destroy (&sub);
    }
    return sub;
}

//  Run one path once. Return 0 with the result, or -1 if it never
//  delivered (message printed).
static int
s_run (const s_opts_t *opts, bool pipeline, const char *ingest, const char *updates,
       uint8_t **bodies, size_t *body_lens, mw_type_t *kinds, uint64_t raw_sid, s_result_t *res)
{
    uint64_t n = opts->events;
    s_run_t run = {.opts = opts,
                   .pipeline = pipeline,
                   .bodies = bodies,
                   .body_lens = body_lens,
                   .kinds = kinds};
    run.sent_ns = (_Atomic uint64_t *) calloc (n, sizeof (uint64_t));
    run.call_ns = (uint32_t *) calloc (n, sizeof (uint32_t));
    uint64_t *lat_ns = (uint64_t *) calloc (n, sizeof (uint64_t));
    zsock_t *sub = NULL;
    int rc = -1;
    char miner[64];
    snprintf (miner, sizeof (miner), "bench-%d", (int) getpid ());
    if (!run.sent_ns || !run.call_ns || !lat_ns) {
        fprintf (stderr, "minerwatch bench: out of memory\n");
        goto done;
    }
    uint64_t sid = raw_sid;
    char raw_ep[128] = "";
    if (pipeline) {
        run.pub = opts->curve.server_key
                      ? mw_publisher_new_curve (ingest, miner, S_HWM, 0, opts->curve.server_key,
                                                opts->curve.client_cert)
                      : mw_publisher_new_opts (ingest, miner, S_HWM, 0);
        if (!run.pub) {
            fprintf (stderr, "minerwatch bench: cannot publish to %s\n", ingest);
            goto done;
        }
        sid = mw_publisher_sid (run.pub);
        sub = s_subscriber (opts, updates, opts->curve.server_key != NULL);
    }
    else {
        //  The baseline: an XPUB like libminerwatch's (no drop in silence,
        //  EAGAIN at the high-water mark), bound on a free loopback port.
        run.xpub = zmq_socket (zsys_init (), ZMQ_XPUB);
        if (!run.xpub) {
            fprintf (stderr, "minerwatch bench: cannot make a socket: %s\n",
                     zmq_strerror (zmq_errno ()));
            goto done;
        }
        int one = 1, hwm = S_HWM, zero = 0;
        zmq_setsockopt (run.xpub, ZMQ_XPUB_NODROP, &one, sizeof (one));
        zmq_setsockopt (run.xpub, ZMQ_SNDHWM, &hwm, sizeof (hwm));
        zmq_setsockopt (run.xpub, ZMQ_LINGER, &zero, sizeof (zero));
        size_t len = sizeof (raw_ep);
        if (zmq_bind (run.xpub, "tcp://127.0.0.1:*") != 0 ||
            zmq_getsockopt (run.xpub, ZMQ_LAST_ENDPOINT, raw_ep, &len) != 0) {
            fprintf (stderr, "minerwatch bench: cannot bind a loopback port: %s\n",
                     zmq_strerror (zmq_errno ()));
            goto done;
        }
        char connect[140];
        snprintf (connect, sizeof (connect), ">%s", raw_ep);
        sub = s_subscriber (opts, connect, false);
    }
    if (!sub)
        goto done;

    //  The warm-up body of the baseline: a valid event of its own type.
    mw_event_t warm;
    uint8_t warm_body[256];
    size_t warm_len = 0;
    mw_event_init_named (&warm, S_WARMUP_TYPE);
    warm.v = MW_PROTOCOL_VERSION;
    warm.sid = raw_sid;
    warm.seq = 1;
    mw_event_set_str (&warm, MW_K_MINER, "bench-raw");
    mw_event_encode (&warm, warm_body, sizeof (warm_body), &warm_len, NULL);
    if (s_warm_up (&run, zsock_resolve (sub), miner, sid, warm_body, warm_len) != 0) {
        fprintf (stderr, "minerwatch bench: nothing came back through %s in %d s%s\n",
                 pipeline ? "the broker" : "the loopback baseline", S_WARMUP_MS / 1000,
                 pipeline && opts->endpoint
                     ? ": is a broker running there, with --updates its update stream? (a "
                       "broker with --curve-secret also needs --curve-server-key)"
                     : "");
        goto done;
    }
    run.first_seq = pipeline ? mw_publisher_sent (run.pub) + mw_publisher_dropped (run.pub) + 1 : 1;
    pthread_t thread;
    if (pthread_create (&thread, NULL, s_sender, &run) != 0) {
        fprintf (stderr, "minerwatch bench: cannot start the sender thread\n");
        goto done;
    }
    uint64_t received = 0;
    s_receive (&run, zsock_resolve (sub), miner, sid, lat_ns, &received);
    pthread_join (thread, NULL);

    uint64_t issued = atomic_load (&run.issued);
    memset (res, 0, sizeof (*res));
    res->dropped = atomic_load (&run.dropped);
    res->sent = issued - res->dropped;
    res->received = received;
    res->lost = res->sent > received ? res->sent - received : 0;
    res->send_s = run.send_s;
    size_t k = 0;
    for (uint64_t i = 0; i < issued; i++)
        if (lat_ns[i])
            lat_ns[k++] = lat_ns[i];
    if (k) {
        qsort (lat_ns, k, sizeof (uint64_t), s_cmp_u64);
        res->lat_p50_us = (double) lat_ns[s_rank (k, 0.5)] / 1e3;
        res->lat_p99_us = (double) lat_ns[s_rank (k, 0.99)] / 1e3;
        res->lat_max_us = (double) lat_ns[k - 1] / 1e3;
    }
    if (issued) {
        qsort (run.call_ns, issued, sizeof (uint32_t), s_cmp_u32);
        res->call_p50_ns = run.call_ns[s_rank (issued, 0.5)];
        res->call_p99_ns = run.call_ns[s_rank (issued, 0.99)];
    }
    rc = mw_cli_interrupted ? -1 : 0;
done:
    zsock_destroy (&sub);
    if (run.xpub)
        zmq_close (run.xpub);
    mw_publisher_destroy (&run.pub);
    free ((void *) run.sent_ns);
    free (run.call_ns);
    free (lat_ns);
    return rc;
}

//  --------------------------------------------------------------------------
//  Reports

static const char *const s_path_names[2] = {"pipeline", "raw"};

static void
s_print_run (const s_opts_t *opts, uint64_t round, int path, const s_result_t *r)
{
    if (opts->quiet)
        return;
    fprintf (stderr,
             "minerwatch bench: round %" PRIu64 "/%" PRIu64 " %-8s %" PRIu64 " sent, %" PRIu64
             " dropped, %" PRIu64 " lost; latency p50 %.0f us, p99 %.0f us, max %.0f us; call "
             "p50 %.0f ns\n",
             round + 1, opts->rounds, s_path_names[path], r->sent, r->dropped, r->lost,
             r->lat_p50_us, r->lat_p99_us, r->lat_max_us, r->call_p50_ns);
}

//  Fields of s_result_t that the summary gives as medians.
typedef struct {
    const char *name;
    const char *label;
    size_t offset;
    bool is_count;
} s_field_t;

static const s_field_t s_fields[] = {
    {"call_p50_ns", "send call p50 (ns)", offsetof (s_result_t, call_p50_ns), false},
    {"call_p99_ns", "send call p99 (ns)", offsetof (s_result_t, call_p99_ns), false},
    {"latency_p50_us", "latency p50 (us)", offsetof (s_result_t, lat_p50_us), false},
    {"latency_p99_us", "latency p99 (us)", offsetof (s_result_t, lat_p99_us), false},
    {"latency_max_us", "latency max (us)", offsetof (s_result_t, lat_max_us), false},
};

static double
s_field (const s_result_t *r, const s_field_t *f)
{
    return *(const double *) ((const char *) r + f->offset);
}

static json_t *
s_result_json (const s_result_t *r)
{
    json_t *o = json_pack ("{sIsIsIsIsf}", "sent", (json_int_t) r->sent, "dropped",
                           (json_int_t) r->dropped, "received", (json_int_t) r->received, "lost",
                           (json_int_t) r->lost, "send_seconds", r->send_s);
    for (size_t f = 0; f < sizeof (s_fields) / sizeof (s_fields[0]); f++)
        json_object_set_new (o, s_fields[f].name, json_real (s_field (r, &s_fields[f])));
    return o;
}

//  Medians over rounds of each field, per path, and the totals; print
//  them (text or JSON).
static int
s_report (const s_opts_t *opts, const char *broker, s_result_t *results[2], uint64_t rounds)
{
    int paths = opts->raw ? 2 : 1;
    size_t nf = sizeof (s_fields) / sizeof (s_fields[0]);
    double median[2][8] = {{0}};
    uint64_t totals[2][4] = {{0}};
    double *values = (double *) calloc (rounds, sizeof (double));
    if (!values)
        return MW_CLI_FAILED;
    for (int p = 0; p < paths; p++) {
        for (size_t f = 0; f < nf; f++) {
            for (uint64_t r = 0; r < rounds; r++)
                values[r] = s_field (&results[p][r], &s_fields[f]);
            median[p][f] = s_median (values, rounds);
        }
        for (uint64_t r = 0; r < rounds; r++) {
            totals[p][0] += results[p][r].sent;
            totals[p][1] += results[p][r].dropped;
            totals[p][2] += results[p][r].received;
            totals[p][3] += results[p][r].lost;
        }
    }
    free (values);
    if (opts->json) {
        json_t *root =
            json_pack ("{sssIsfsI}", "broker", broker, "events", (json_int_t) opts->events, "rate",
                       opts->rate, "rounds", (json_int_t) rounds);
        for (int p = 0; p < paths; p++) {
            json_t *path = json_object (), *runs = json_array ();
            for (uint64_t r = 0; r < rounds; r++)
                json_array_append_new (runs, s_result_json (&results[p][r]));
            json_object_set_new (path, "runs", runs);
            json_t *med = json_object ();
            for (size_t f = 0; f < nf; f++)
                json_object_set_new (med, s_fields[f].name, json_real (median[p][f]));
            json_object_set_new (path, "median", med);
            json_object_set_new (path, "sent", json_integer ((json_int_t) totals[p][0]));
            json_object_set_new (path, "dropped", json_integer ((json_int_t) totals[p][1]));
            json_object_set_new (path, "received", json_integer ((json_int_t) totals[p][2]));
            json_object_set_new (path, "lost", json_integer ((json_int_t) totals[p][3]));
            json_object_set_new (root, s_path_names[p], path);
        }
        if (paths == 2) {
            json_t *ratio = json_object ();
            for (size_t f = 0; f < nf; f++)
                if (median[1][f] > 0)
                    json_object_set_new (ratio, s_fields[f].name,
                                         json_real (median[0][f] / median[1][f]));
            json_object_set_new (root, "ratio", ratio);
        }
        char *text = json_dumps (root, JSON_COMPACT);
        json_decref (root);
        if (!text)
            return MW_CLI_FAILED;
        printf ("%s\n", text);
        free (text);
        return MW_CLI_OK;
    }
    printf ("minerwatch bench: %" PRIu64 " events per run, ", opts->events);
    if (opts->rate > 0)
        printf ("%.0f/s", opts->rate);
    else
        printf ("as fast as possible");
    printf (", %" PRIu64 " round%s; broker: %s\n\n", rounds, rounds == 1 ? "" : "s", broker);
    printf ("%-22s %14s", "median of the rounds", "pipeline");
    if (paths == 2)
        printf (" %14s %10s", "raw libzmq", "ratio");
    printf ("\n");
    for (size_t f = 0; f < nf; f++) {
        printf ("%-22s %14.1f", s_fields[f].label, median[0][f]);
        if (paths == 2)
            printf (" %14.1f %9.2fx", median[1][f],
                    median[1][f] > 0 ? median[0][f] / median[1][f] : 0.0);
        printf ("\n");
    }
    static const char *const total_names[4] = {"sent", "dropped", "received", "lost"};
    for (int t = 0; t < 4; t++) {
        printf ("%-22s %14" PRIu64, total_names[t], totals[0][t]);
        if (paths == 2)
            printf (" %14" PRIu64, totals[1][t]);
        printf ("\n");
    }
    printf ("\nsent + dropped = events issued; lost = sent but never received. Latency: the\n"
            "publish call to the decoded update; the raw path skips libminerwatch's build and\n"
            "encode and the broker (decode, fold into the state, republish).\n");
    return MW_CLI_OK;
}

//  --------------------------------------------------------------------------

//  Encode the baseline's events once: the same events as the pipeline's,
//  with a header of their own. Return 0, or -1.
static int
s_encode_all (uint64_t n, uint64_t sid, uint8_t **bodies, size_t *lens, mw_type_t *kinds)
{
    char task_id[64];
    for (uint64_t i = 0; i < n; i++) {
        mw_event_t ev;
        s_event (&ev, i, task_id, sizeof (task_id));
        ev.v = MW_PROTOCOL_VERSION;
        ev.ts = (uint64_t) time (NULL) * 1000000u;
        ev.sid = sid;
        ev.seq = i + 1;
        mw_event_set_str (&ev, MW_K_MINER, "bench-raw");
        uint8_t body[1024];
        size_t len = 0;
        if (mw_event_encode (&ev, body, sizeof (body), &len, NULL) != MW_OK)
            return -1;
        bodies[i] = (uint8_t *) malloc (len);
        if (!bodies[i])
            return -1;
        memcpy (bodies[i], body, len);
        lens[i] = len;
        kinds[i] = ev.kind;
    }
    return 0;
}

static int
s_bench (int argc, char **argv)
{
    s_opts_t opts = {0};
    int rc = s_parse (argc, argv, &opts);
    if (rc != 0)
        return rc < 0 ? MW_CLI_OK : rc;

    mw_broker_t *broker = NULL;
    char ingest[MW_BROKER_ENDPOINT_MAX] = "", updates[MW_BROKER_ENDPOINT_MAX] = "";
    char where[2 * MW_BROKER_ENDPOINT_MAX + 64];
    uint8_t **bodies = NULL;
    size_t *lens = NULL;
    mw_type_t *kinds = NULL;
    s_result_t *results[2] = {NULL, NULL};
    uint64_t raw_sid = ((uint64_t) getpid () << 20) ^ (uint64_t) time (NULL);
    rc = MW_CLI_FAILED;

    if (opts.endpoint) {
        snprintf (ingest, sizeof (ingest), "%s", opts.endpoint);
        snprintf (updates, sizeof (updates), "%s", opts.updates);
        snprintf (where, sizeof (where), "ingest %s, updates %s", ingest, updates);
    }
    else {
        mw_broker_config_t cfg;
        mw_broker_config_default (&cfg);
        cfg.quiet = true;
        cfg.log_name = "minerwatch bench";
        snprintf (cfg.ingest[0], sizeof (cfg.ingest[0]), "@tcp://127.0.0.1:*");
        cfg.ingest_count = 1;
        snprintf (cfg.publish, sizeof (cfg.publish), "@tcp://127.0.0.1:*");
        snprintf (cfg.snapshot, sizeof (cfg.snapshot), "@inproc://minerwatch-bench-snapshot-%d",
                  (int) getpid ());
        char err[1024];
        broker = mw_broker_new (&cfg, err, sizeof (err));
        if (!broker) {
            fprintf (stderr, "minerwatch bench: cannot start a broker: %s\n", err);
            goto done;
        }
        if (mw_broker_endpoints (broker, "ingest", ingest, sizeof (ingest)) != 0 ||
            mw_broker_endpoints (broker, "publish", updates, sizeof (updates)) != 0)
            goto done;
        ingest[0] = updates[0] = '>';
        snprintf (where, sizeof (where), "in this process (ingest %s, updates %s)", ingest + 1,
                  updates + 1);
    }
    results[0] = (s_result_t *) calloc (opts.rounds, sizeof (s_result_t));
    results[1] = (s_result_t *) calloc (opts.rounds, sizeof (s_result_t));
    if (!results[0] || !results[1])
        goto done;
    if (opts.raw) {
        bodies = (uint8_t **) calloc (opts.events, sizeof (uint8_t *));
        lens = (size_t *) calloc (opts.events, sizeof (size_t));
        kinds = (mw_type_t *) calloc (opts.events, sizeof (mw_type_t));
        if (!bodies || !lens || !kinds ||
            s_encode_all (opts.events, raw_sid, bodies, lens, kinds) != 0) {
            fprintf (stderr, "minerwatch bench: out of memory encoding %" PRIu64 " events\n",
                     opts.events);
            goto done;
        }
    }
    if (!opts.quiet)
        fprintf (stderr, "minerwatch bench: broker %s\n", where);
    for (uint64_t r = 0; r < opts.rounds; r++) {
        //  Alternate which path goes first, so neither always gets the
        //  machine warmed up by the other.
        for (int k = 0; k < (opts.raw ? 2 : 1); k++) {
            int path = opts.raw ? (int) ((r + (uint64_t) k) % 2) : 0;
            if (s_run (&opts, path == 0, ingest, updates, bodies, lens, kinds, raw_sid,
                       &results[path][r]) != 0)
                goto done;
            s_print_run (&opts, r, path, &results[path][r]);
        }
    }
    rc = s_report (&opts, where, results, opts.rounds);
done:
    if (mw_cli_interrupted && rc != MW_CLI_OK)
        fprintf (stderr, "minerwatch bench: interrupted\n");
    if (bodies)
        for (uint64_t i = 0; i < opts.events; i++)
            free (bodies[i]);
    free (bodies);
    free (lens);
    free (kinds);
    free (results[0]);
    free (results[1]);
    mw_broker_destroy (&broker);
    return rc;
}

const mw_cli_command_t mw_cmd_bench = {"bench",
                                       "measure the broker hop: latency and cost against raw "
                                       "libzmq",
                                       s_bench, s_help};
