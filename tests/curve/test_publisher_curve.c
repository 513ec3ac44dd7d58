/*  test_publisher_curve.c - libminerwatch as a CURVE client, against plain
    libzmq CURVE servers in this process (no broker, no czmq).

    What it proves:
    - with the server's public key (as Z85 text or as a certificate file,
      with a new or a given client key pair) the publisher's handshake
      completes, it counts one live connection, and every event arrives;
    - with a wrong server key, with a client key the server's ZAP handler
      refuses, with CURVE on one side only, and against a peer that accepts
      TCP but never answers the handshake, it counts no live connection
      although TCP connects, and every event is dropped and counted;
    - one good server and one whose handshakes keep failing: exactly one
      live connection the whole time, all events delivered; when the good
      one goes away, zero, and every event dropped, while the other keeps
      failing (a failed handshake never passes for a live connection);
    - bad keys and files give NULL and a message naming the file;
    - inproc endpoints report no connections (-1).
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "mw_curve.h"
#include "mw_publisher.h"

#define S_WAIT_MS 10000 //  bound of every wait for something that must happen

static char s_dir[64];
static char s_srv_pub[41], s_srv_sec[41];     //  the server's key pair
static char s_other_pub[41], s_other_sec[41]; //  another server's
static char s_cli_pub[41], s_cli_sec[41];     //  a client the ZAP handler allows
static char s_bad_pub[41], s_bad_sec[41];     //  a client it refuses

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep (&ts, NULL);
}

static const char *
s_path (const char *name)
{
    static char paths[8][256];
    static int next = 0;
    char *path = paths[next++ % 8];
    snprintf (path, 256, "%s/%s", s_dir, name);
    return path;
}

//  A certificate in czmq's format; a public one if secret is NULL.
static const char *
s_cert (const char *name, const char *public_z85, const char *secret_z85)
{
    const char *path = s_path (name);
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fprintf (f,
             "#   ZeroMQ CURVE Certificate (minerwatch tests)\n\ncurve\n    public-key = \"%s\"\n",
             public_z85);
    if (secret_z85)
        fprintf (f, "    secret-key = \"%s\"\n", secret_z85);
    fclose (f);
    return path;
}

//  --------------------------------------------------------------------------
//  Servers

//  A SUB bound to a free loopback port, subscribed to everything: a CURVE
//  server with secret_z85, or plain if it is NULL. Writes the endpoint a
//  publisher connects to (">tcp://127.0.0.1:PORT") into ep.
static void *
s_server (void *ctx, const char *secret_z85, char *ep, size_t ep_size)
{
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    assert_non_null (sub);
    int zero = 0, one = 1;
    zmq_setsockopt (sub, ZMQ_LINGER, &zero, sizeof (zero));
    zmq_setsockopt (sub, ZMQ_RCVHWM, &zero, sizeof (zero)); //  unlimited: we read late
    if (secret_z85) {
        assert_int_equal (zmq_setsockopt (sub, ZMQ_CURVE_SERVER, &one, sizeof (one)), 0);
        assert_int_equal (zmq_setsockopt (sub, ZMQ_CURVE_SECRETKEY, secret_z85, 40), 0);
    }
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "", 0);
    assert_int_equal (zmq_bind (sub, "tcp://127.0.0.1:*"), 0);
    char last[128];
    size_t len = sizeof (last);
    zmq_getsockopt (sub, ZMQ_LAST_ENDPOINT, last, &len);
    snprintf (ep, ep_size, ">%s", last);
    return sub;
}

//  Let the servers' sockets process their commands (a SUB sends its
//  subscription to a new connection only when its thread touches it).
static void
s_touch (void **subs, int n)
{
    for (int i = 0; i < n; i++) {
        zmq_pollitem_t item = {subs[i], 0, ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, 0);
    }
}

//  Wait up to timeout_ms for pub to see a subscriber. Return 0 or -1.
static int
s_wait_ready (mw_publisher_t *pub, void **subs, int n, int timeout_ms)
{
    int64_t deadline = s_now_ms () + timeout_ms;
    while (s_now_ms () < deadline) {
        s_touch (subs, n);
        if (mw_publisher_wait_ready (pub, 5) == 0)
            return 0;
    }
    return -1;
}

//  Receive up to want two-frame messages within timeout_ms; return how
//  many arrived.
static int
s_receive (void *sub, int want, int timeout_ms)
{
    int got = 0;
    int64_t deadline = s_now_ms () + timeout_ms;
    while (got < want && s_now_ms () < deadline) {
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 20) <= 0)
            continue;
        char buf[4096];
        int more = 1;
        size_t more_size = sizeof (more);
        int frames = 0;
        while (more) {
            if (zmq_recv (sub, buf, sizeof (buf), 0) < 0)
                break;
            frames++;
            zmq_getsockopt (sub, ZMQ_RCVMORE, &more, &more_size);
        }
        assert_int_equal (frames, 2);
        got++;
    }
    return got;
}

//  The ZAP handler of a server context: allows s_cli_pub, refuses any
//  other client key, counts both. Ends when its context terminates.
typedef struct {
    void *ctx;
    _Atomic int bound; //  0 starting, 1 bound, -1 failed
    _Atomic int allowed;
    _Atomic int denied;
} s_zap_t;

static void *
s_zap_run (void *arg)
{
    s_zap_t *zap = (s_zap_t *) arg;
    void *rep = zmq_socket (zap->ctx, ZMQ_REP);
    int zero = 0;
    zmq_setsockopt (rep, ZMQ_LINGER, &zero, sizeof (zero));
    if (zmq_bind (rep, "inproc://zeromq.zap.01") != 0) {
        zmq_close (rep);
        atomic_store (&zap->bound, -1);
        return NULL;
    }
    atomic_store (&zap->bound, 1);
    uint8_t allowed_key[32];
    zmq_z85_decode (allowed_key, s_cli_pub);
    while (true) {
        //  version, request id, domain, address, identity, mechanism, key
        zmq_msg_t frames[7];
        for (int i = 0; i < 7; i++)
            zmq_msg_init (&frames[i]);
        int n = 0;
        bool ok = true, more = true;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init (&part);
            if (zmq_msg_recv (&part, rep, 0) < 0) {
                zmq_msg_close (&part);
                for (int i = 0; i < 7; i++)
                    zmq_msg_close (&frames[i]);
                zmq_close (rep); //  ETERM: the context is ending
                return NULL;
            }
            more = zmq_msg_more (&part);
            if (n < 7)
                zmq_msg_move (&frames[n], &part);
            else
                ok = false;
            zmq_msg_close (&part);
            n++;
        }
        bool allow = ok && n == 7 && zmq_msg_size (&frames[6]) == 32 &&
                     memcmp (zmq_msg_data (&frames[6]), allowed_key, 32) == 0;
        if (allow)
            zap->allowed++;
        else
            zap->denied++;
        zmq_send (rep, "1.0", 3, ZMQ_SNDMORE);
        zmq_send (rep, zmq_msg_data (&frames[1]), zmq_msg_size (&frames[1]), ZMQ_SNDMORE);
        zmq_send (rep, allow ? "200" : "400", 3, ZMQ_SNDMORE);
        zmq_send (rep, allow ? "OK" : "not listed", allow ? 2 : 10, ZMQ_SNDMORE);
        zmq_send (rep, "", 0, ZMQ_SNDMORE);
        zmq_send (rep, "", 0, 0);
        for (int i = 0; i < 7; i++)
            zmq_msg_close (&frames[i]);
    }
}

//  --------------------------------------------------------------------------
//  stderr of a constructor, for its messages

static mw_publisher_t *
s_new_capture (char *out, size_t out_size, const char *endpoints, const char *server_key,
               const char *client_cert)
{
    fflush (stderr);
    int saved = dup (2);
    char path[128];
    snprintf (path, sizeof (path), "%s/stderr.txt", s_dir);
    int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true (saved >= 0 && fd >= 0);
    dup2 (fd, 2);
    close (fd);
    mw_publisher_t *pub =
        mw_publisher_new_curve (endpoints, "capture", 1000, 0, server_key, client_cert);
    fflush (stderr);
    dup2 (saved, 2);
    close (saved);
    FILE *f = fopen (path, "r");
    assert_non_null (f);
    size_t n = fread (out, 1, out_size - 1, f);
    out[n] = 0;
    fclose (f);
    fprintf (stderr, "library said: %s%s", n ? out : "nothing",
             n && out[n - 1] == '\n' ? "" : "\n");
    return pub;
}

//  --------------------------------------------------------------------------

static int
s_setup (void **state)
{
    snprintf (s_dir, sizeof (s_dir), "/tmp/mw-curve-pub-XXXXXX");
    if (!mkdtemp (s_dir))
        return -1;
    if (zmq_curve_keypair (s_srv_pub, s_srv_sec) || zmq_curve_keypair (s_other_pub, s_other_sec) ||
        zmq_curve_keypair (s_cli_pub, s_cli_sec) || zmq_curve_keypair (s_bad_pub, s_bad_sec))
        return -1;
    return 0;
}

static int
s_teardown (void **state)
{
    char cmd[128];
    snprintf (cmd, sizeof (cmd), "rm -rf '%s'", s_dir);
    return system (cmd) == 0 ? 0 : -1;
}

static void
test_right_key (void **state)
{
    void *ctx = zmq_ctx_new ();
    char ep[160];
    void *sub = s_server (ctx, s_srv_sec, ep, sizeof (ep));
    const char *srv_file = s_cert ("server.cert", s_srv_pub, NULL);
    const char *cli_file = s_cert ("client.cert_secret", s_cli_pub, s_cli_sec);
    struct {
        const char *server_key;
        const char *client_cert;
    } ways[] = {{s_srv_pub, NULL}, {srv_file, NULL}, {srv_file, cli_file}, {s_srv_pub, cli_file}};
    for (size_t w = 0; w < sizeof (ways) / sizeof (ways[0]); w++) {
        mw_publisher_t *pub = mw_publisher_new_curve (ep, "curve-miner", 1000, 1000,
                                                      ways[w].server_key, ways[w].client_cert);
        assert_non_null (pub);
        assert_int_equal (s_wait_ready (pub, &sub, 1, S_WAIT_MS), 0);
        assert_int_equal (mw_publisher_connections (pub), 1);
        for (int i = 0; i < 50; i++)
            assert_int_equal (mw_publisher_task_start (pub, "t", "p", NULL, NULL, NULL, 0), 0);
        assert_int_equal (mw_publisher_sent (pub), 50);
        assert_int_equal (mw_publisher_dropped (pub), 0);
        assert_int_equal (s_receive (sub, 50, S_WAIT_MS), 50);
        mw_publisher_destroy (&pub);
    }
    zmq_close (sub);
    zmq_ctx_term (ctx);
}

//  The publisher reached TCP but must never count the connection live:
//  sample the count for ms milliseconds, sending an event each time.
static void
s_expect_never_live (mw_publisher_t *pub, void **subs, int n, int ms)
{
    int64_t deadline = s_now_ms () + ms;
    int sends = 0;
    while (s_now_ms () < deadline) {
        s_touch (subs, n);
        assert_int_equal (mw_publisher_connections (pub), 0);
        assert_int_equal (mw_publisher_error (pub, "never delivered", NULL, NULL), -1);
        sends++;
        s_sleep_ms (2);
    }
    assert_int_equal (mw_publisher_sent (pub), 0);
    assert_int_equal (mw_publisher_dropped (pub), (uint64_t) sends);
    assert_int_equal (mw_publisher_wait_ready (pub, 0), -1);
}

static void
test_wrong_key_and_mismatch (void **state)
{
    void *ctx = zmq_ctx_new ();
    char curve_ep[160], plain_ep[160];
    void *subs[2];
    subs[0] = s_server (ctx, s_srv_sec, curve_ep, sizeof (curve_ep));
    subs[1] = s_server (ctx, NULL, plain_ep, sizeof (plain_ep));

    //  Another server's key; no CURVE against a CURVE server; CURVE
    //  against a plain server.
    mw_publisher_t *pubs[3] = {
        mw_publisher_new_curve (curve_ep, "wrong-key", 1000, 0, s_other_pub, NULL),
        mw_publisher_new_opts (curve_ep, "plain-to-curve", 1000, 0),
        mw_publisher_new_curve (plain_ep, "curve-to-plain", 1000, 0, s_srv_pub, NULL),
    };
    for (int i = 0; i < 3; i++) {
        assert_non_null (pubs[i]);
        assert_int_equal (s_wait_ready (pubs[i], subs, 2, 1000), -1);
        s_expect_never_live (pubs[i], subs, 2, 500);
        mw_publisher_destroy (&pubs[i]);
    }
    assert_int_equal (s_receive (subs[0], 1, 200), 0);
    assert_int_equal (s_receive (subs[1], 1, 200), 0);
    zmq_close (subs[0]);
    zmq_close (subs[1]);
    zmq_ctx_term (ctx);
}

static void
test_client_allow_list (void **state)
{
    //  The server's own context, with its ZAP handler.
    s_zap_t zap = {zmq_ctx_new (), 0, 0, 0};
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_zap_run, &zap), 0);
    //  The handler must be bound before the first handshake.
    int64_t deadline = s_now_ms () + S_WAIT_MS;
    while (atomic_load (&zap.bound) == 0 && s_now_ms () < deadline)
        s_sleep_ms (1);
    assert_int_equal (atomic_load (&zap.bound), 1);
    char ep[160];
    void *sub = s_server (zap.ctx, s_srv_sec, ep, sizeof (ep));

    const char *listed = s_cert ("listed.cert_secret", s_cli_pub, s_cli_sec);
    const char *unlisted = s_cert ("unlisted.cert_secret", s_bad_pub, s_bad_sec);
    mw_publisher_t *pub = mw_publisher_new_curve (ep, "listed", 1000, 1000, s_srv_pub, listed);
    assert_non_null (pub);
    assert_int_equal (s_wait_ready (pub, &sub, 1, S_WAIT_MS), 0);
    assert_int_equal (mw_publisher_connections (pub), 1);
    for (int i = 0; i < 20; i++)
        assert_int_equal (mw_publisher_cache_hit (pub, "t", "prompt"), 0);
    assert_int_equal (s_receive (sub, 20, S_WAIT_MS), 20);
    mw_publisher_destroy (&pub);
    assert_true (zap.allowed >= 1);

    //  A certificate the handler does not list, and a new key pair.
    const char *refused[2] = {unlisted, NULL};
    for (int i = 0; i < 2; i++) {
        int denied = zap.denied;
        pub = mw_publisher_new_curve (ep, "unlisted", 1000, 0, s_srv_pub, refused[i]);
        assert_non_null (pub);
        assert_int_equal (s_wait_ready (pub, &sub, 1, 1000), -1);
        s_expect_never_live (pub, &sub, 1, 500);
        mw_publisher_destroy (&pub);
        assert_true (zap.denied > denied); //  refused by ZAP, not lost on the way
    }
    assert_int_equal (s_receive (sub, 1, 200), 0);
    zmq_close (sub);
    zmq_ctx_term (zap.ctx); //  ends the handler
    pthread_join (thread, NULL);
}

static void
test_silent_peer (void **state)
{
    //  A TCP listener that accepts and never says a word: libzmq reports
    //  the connection (CONNECTED) and waits for a handshake that does not
    //  come. Such a connection cannot carry an event.
    int listener = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true (listener >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (listener, (struct sockaddr *) &addr, sizeof (addr)), 0);
    assert_int_equal (listen (listener, 4), 0);
    socklen_t len = sizeof (addr);
    getsockname (listener, (struct sockaddr *) &addr, &len);
    char ep[64];
    snprintf (ep, sizeof (ep), ">tcp://127.0.0.1:%d", ntohs (addr.sin_port));

    for (int curve = 0; curve < 2; curve++) {
        mw_publisher_t *pub = curve
                                  ? mw_publisher_new_curve (ep, "silent", 1000, 0, s_srv_pub, NULL)
                                  : mw_publisher_new_opts (ep, "silent", 1000, 0);
        assert_non_null (pub);
        struct pollfd pfd = {listener, POLLIN, 0};
        assert_int_equal (poll (&pfd, 1, S_WAIT_MS), 1);
        int conn = accept (listener, NULL, NULL);
        assert_true (conn >= 0);
        //  The TCP connection exists (and libzmq's CONNECTED with it).
        s_sleep_ms (50);
        s_expect_never_live (pub, NULL, 0, 300);
        mw_publisher_destroy (&pub);
        close (conn);
    }
    close (listener);
}

static void
test_one_good_one_failing (void **state)
{
    void *ctx = zmq_ctx_new ();
    char good_ep[160], bad_ep[160], both[330];
    void *subs[2];
    subs[0] = s_server (ctx, s_srv_sec, good_ep, sizeof (good_ep));
    subs[1] = s_server (ctx, s_other_sec, bad_ep, sizeof (bad_ep)); //  we lack its key
    //  Count the failing server's refused handshakes: proof that the
    //  publisher keeps trying (and failing) while we look.
    assert_int_equal (zmq_socket_monitor (subs[1], "inproc://bad-monitor",
                                          ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                              ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                              ZMQ_EVENT_HANDSHAKE_FAILED_AUTH),
                      0);
    void *monitor = zmq_socket (ctx, ZMQ_PAIR);
    assert_int_equal (zmq_connect (monitor, "inproc://bad-monitor"), 0);
    snprintf (both, sizeof (both), "%s,%s", good_ep, bad_ep);

    mw_publisher_t *pub = mw_publisher_new_curve (both, "two", 10000, 0, s_srv_pub, NULL);
    assert_non_null (pub);
    assert_int_equal (s_wait_ready (pub, subs, 2, S_WAIT_MS), 0);
    int failures = 0, sent = 0;
    int64_t deadline = s_now_ms () + 1500;
    while (s_now_ms () < deadline || failures < 3) {
        assert_true (s_now_ms () < deadline + S_WAIT_MS);
        s_touch (subs, 2);
        assert_int_equal (mw_publisher_connections (pub), 1);
        assert_int_equal (mw_publisher_cache_hit (pub, "t", NULL), 0);
        sent++;
        char frame[64];
        while (zmq_recv (monitor, frame, sizeof (frame), ZMQ_DONTWAIT) >= 0) {
            int more = 0;
            size_t size = sizeof (more);
            zmq_getsockopt (monitor, ZMQ_RCVMORE, &more, &size);
            if (!more)
                failures++; //  one event is two frames
        }
        s_sleep_ms (2);
    }
    fprintf (stderr, "(%d handshakes refused by the other server meanwhile)\n", failures);
    assert_int_equal (s_receive (subs[0], sent, S_WAIT_MS), sent);
    assert_int_equal (s_receive (subs[1], 1, 0), 0);

    //  The good server goes away: zero live connections soon, and from
    //  then on every event is dropped although the other one keeps
    //  connecting (and failing).
    zmq_close (subs[0]);
    deadline = s_now_ms () + S_WAIT_MS;
    while (mw_publisher_connections (pub) != 0)
        assert_true (s_now_ms () < deadline);
    uint64_t dropped = mw_publisher_dropped (pub);
    int drops = 0;
    deadline = s_now_ms () + 800;
    while (s_now_ms () < deadline) {
        s_touch (&subs[1], 1);
        assert_int_equal (mw_publisher_connections (pub), 0);
        assert_int_equal (mw_publisher_cache_hit (pub, "t", NULL), -1);
        drops++;
        s_sleep_ms (2);
    }
    assert_int_equal (mw_publisher_dropped (pub), dropped + (uint64_t) drops);
    mw_publisher_destroy (&pub);
    zmq_socket_monitor (subs[1], NULL, 0);
    zmq_close (monitor);
    zmq_close (subs[1]);
    zmq_ctx_term (ctx);
}

static void
test_errors (void **state)
{
    char said[2048];
    const char *ep = ">tcp://127.0.0.1:9";
    mw_publisher_t *pub = s_new_capture (said, sizeof (said), ep, NULL, "x.cert_secret");
    assert_null (pub);
    assert_non_null (strstr (said, "x.cert_secret"));
    assert_non_null (strstr (said, "without the broker's public key"));

    pub = s_new_capture (said, sizeof (said), ep, "not-a-key", NULL);
    assert_null (pub);
    assert_non_null (strstr (said, "minerwatch: CURVE: server key 'not-a-key'"));

    const char *public_only = s_cert ("public-only.cert", s_cli_pub, NULL);
    pub = s_new_capture (said, sizeof (said), ep, s_srv_pub, public_only);
    assert_null (pub);
    assert_non_null (strstr (said, public_only));
    assert_non_null (strstr (said, "holds no secret-key"));

    const char *mixed = s_cert ("mixed.cert_secret", s_cli_pub, s_bad_sec);
    pub = s_new_capture (said, sizeof (said), ep, s_srv_pub, mixed);
    assert_null (pub);
    assert_non_null (strstr (said, "does not belong"));
    assert_null (strstr (said, s_bad_sec));

    //  A broken server certificate file: line and file named.
    const char *broken = s_path ("broken.cert");
    FILE *f = fopen (broken, "w");
    assert_non_null (f);
    fprintf (f, "curve\n  public-key = \"%s\"\n", s_srv_pub);
    fclose (f);
    pub = s_new_capture (said, sizeof (said), ep, broken, NULL);
    assert_null (pub);
    assert_non_null (strstr (said, broken));
    assert_non_null (strstr (said, "line 2"));

    //  Invalid endpoints are still reported as before.
    pub = s_new_capture (said, sizeof (said), "@tcp://256.0.0.1:1", s_srv_pub, NULL);
    assert_null (pub);
    assert_non_null (strstr (said, "cannot bind"));
}

static void
test_inproc_connections (void **state)
{
    mw_publisher_t *pub = mw_publisher_new_opts ("@inproc://mw-curve-test", "inproc", 100, 0);
    assert_non_null (pub);
    assert_int_equal (mw_publisher_connections (pub), -1);
    mw_publisher_destroy (&pub);
    pub = mw_publisher_new_opts (">tcp://127.0.0.1:9", "nobody", 100, 0);
    assert_non_null (pub);
    assert_int_equal (mw_publisher_connections (pub), 0);
    mw_publisher_destroy (&pub);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_right_key),
        cmocka_unit_test (test_wrong_key_and_mismatch),
        cmocka_unit_test (test_client_allow_list),
        cmocka_unit_test (test_silent_peer),
        cmocka_unit_test (test_one_good_one_failing),
        cmocka_unit_test (test_errors),
        cmocka_unit_test (test_inproc_connections),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
