/*  mw_publisher.c - the publisher a miner embeds (libminerwatch).

    One ZeroMQ XPUB socket on a private context, one mutex, one reusable
    encode buffer. Raw libzmq (not czmq) so that a miner's process links
    only libzmq and msgpack-c through us.

    Why XPUB and not PUB: a PUB socket silently discards a message when
    nobody is subscribed, and silently discards it again at the high-water
    mark. zmq_send returns 0 in both cases, so a `dropped` counter built on
    PUB could not account for what did not arrive. An XPUB socket tells us
    who is listening: it hands us each subscription as a message (first byte
    1 = subscribe, 0 = unsubscribe, then the topic prefix), and libzmq also
    emits the unsubscriptions of a subscriber whose connection ended. We
    keep the set of subscribed prefixes and drop (and count) an event that
    matches none. With ZMQ_XPUB_NODROP, a subscriber at its high-water mark
    makes zmq_send fail with EAGAIN instead of discarding: counted too.

    By default (not ZMQ_XPUB_VERBOSE) libzmq reports a prefix once, when its
    first subscriber arrives, and its unsubscription once, when its last
    subscriber leaves. So the messages form a set of prefixes, not a
    multiset, and a small table of prefixes mirrors libzmq's own trie.

    Why a socket monitor too: libzmq reports a dead subscriber's
    unsubscription only at the end of a pipe-termination handshake between
    our thread and its io thread, which takes milliseconds on a busy
    machine. Meanwhile XPUB sends to the dying pipe fail inside libzmq and
    zmq_send still returns 0: thousands of events counted sent that went
    nowhere. The monitor's DISCONNECTED event comes first (the io thread
    emits it as soon as the connection fails), so we count live tcp/ipc
    connections and, at zero, drop and count instead.

    Why a housekeeping thread: the monitor's messages queue until we read
    them, without a bound (see the monitor's setup), and we read them when
    the miner publishes. A miner idle for hours next to an endpoint whose
    handshakes keep failing (a wrong CURVE key: libzmq retries every
    100-200 ms, three events each time) would grow that queue by about
    9 MB an hour. So a thread of ours wakes once a second and, if no call
    read them in that second, reads both sockets under the mutex. It costs
    a busy publisher one uncontended lock a second.

    What counts as live: a connection whose ZMTP handshake completed, not
    one whose TCP connect succeeded. libzmq 4.3 emits CONNECTED (or
    ACCEPTED) when the TCP connection is made, HANDSHAKE_SUCCEEDED once the
    security handshake (NULL or CURVE) is done and the connection can carry
    messages, and, when the handshake fails (a wrong server key, a client
    key the broker refuses, a peer that never answers), one
    HANDSHAKE_FAILED_* event directly followed by DISCONNECTED, from the
    same call on its io thread. A CURVE publisher with a wrong key thus
    sees CONNECTED, FAILED, DISCONNECTED about every 100-200 ms, forever:
    counting CONNECTED would show it connected a part of the time. So a
    connection is "handshaking" from CONNECTED/ACCEPTED and "live" from
    HANDSHAKE_SUCCEEDED; a DISCONNECTED right after a FAILED event ends a
    handshaking one, any other ends a live one. The events carry no
    connection id (HANDSHAKE_SUCCEEDED's value is 0, not the fd), so this
    is counting, not matching: exact for libzmq's behaviour above, with
    one io thread (ours) so that events of two connections never
    interleave inside that pair. Its blind spots, both with a peer that
    breaks the protocol while another connection is handshaking or live:
    a CURVE message that fails to decrypt after the handshake also emits
    FAILED, so its DISCONNECTED is taken for a handshaking connection's
    (the live count one too high); a server ERROR whose reason is not a
    3-digit status emits no FAILED, so its DISCONNECTED is taken for a
    live connection's (one too low: events dropped and counted). Either
    lasts until that other connection ends. A peer that speaks only ZMTP
    1.0/2.0 (libzmq before 4.0, 2013) never reports a completed handshake,
    so it never counts as live.
*/
#include "mw_publisher.h"
#include "mw_curve.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#ifndef MW_VERSION_STRING
#error "MW_VERSION_STRING must be defined by the build (see publisher/CMakeLists.txt)"
#endif

//  Distinct subscription prefixes we track. A broker subscribes to "" (all
//  events) and a `minerwatch tail --type` to one prefix, so a handful is the
//  normal case; past this many we stop tracking precisely (see s_sub_add).
#define MW_SUBS_MAX 64

//  How long mw_publisher_wait_ready sleeps between two looks, in ms.
#define MW_WAIT_SLICE_MS 1

//  The housekeeping thread reads what the miner's calls did not, at most
//  this long after it arrived (ms).
#define MW_HOUSEKEEPING_MS 1000

//  While someone is subscribed, read subscription messages before every
//  MW_DRAIN_EVERY-th send, and before any send MW_DRAIN_US after the last
//  read; while nobody is, before every send. See s_drain_due for why. A
//  read is two poll() system calls (0.3-0.6 us each on a 2-core VM): every
//  32 sends that was 35-45 ns per event, more than building the event;
//  every 256, a few ns (docs/performance.md).
#define MW_DRAIN_EVERY 256
#define MW_DRAIN_US    1000

typedef struct {
    uint8_t len;
    char prefix[MW_MAX_TYPE];
} s_sub_t;

struct _mw_publisher_t {
    void *ctx;                        //  our own context: one io thread
    void *socket;                     //  the XPUB socket; used only under mutex
    pthread_mutex_t mutex;            //  serializes everything that touches socket,
                                      //  subs, seq and buf
    char miner[MW_MAX_MINER * 4 + 1]; //  see s_miner_copy
    uint32_t miner_len;
    uint64_t sid;              //  session id, random, nonzero
    uint64_t seq;              //  last sequence number used (under mutex)
    s_sub_t subs[MW_SUBS_MAX]; //  subscribed prefixes (under mutex)
    size_t sub_count;
    size_t sub_untracked;   //  subscriptions that did not fit the table
    void *monitor;          //  our end of the socket monitor (PAIR)
    bool track_connections; //  all endpoints emit connection events
    int connections;        //  live tcp/ipc connections (handshake done), from the monitor
    int handshaking;        //  connections made whose handshake has not ended yet
    bool failed_last;       //  the last monitor event was a handshake failure
    uint32_t since_drain;   //  sends since the last s_subs_drain
    uint64_t drain_us;      //  s_now_us of the last s_subs_drain
    pthread_t housekeeper;  //  reads the sockets of an idle publisher
    pthread_cond_t wake;    //  (with mutex) ends the housekeeper's wait
    bool housekeeping;      //  the housekeeper runs; false tells it to stop
    bool more_pending;      //  a topic frame went out without its body
    _Atomic uint64_t sent;  //  counters: written under mutex, read anywhere
    _Atomic uint64_t dropped;
    _Atomic uint64_t truncated;
    mw_event_t empty[MW_TYPE_COUNT]; //  mw_event_init of each known type, made once
    uint8_t buf[MW_MAX_BODY]; //  reusable encode buffer: no malloc per event
};

//  --------------------------------------------------------------------------
//  Helpers

//  Increment a counter that only the mutex holder writes. A relaxed load and
//  store is enough (there is one writer at a time, readers only need an
//  untorn value) and avoids a locked read-modify-write on the hot path.
static inline void
s_count (_Atomic uint64_t *counter, uint64_t n)
{
    atomic_store_explicit (counter, atomic_load_explicit (counter, memory_order_relaxed) + n,
                           memory_order_relaxed);
}

//  Microseconds since the Unix epoch (UTC), the `ts` of the protocol.
static uint64_t
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static int64_t
s_monotonic_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  splitmix64: spreads the bits of the fallback seed below.
static uint64_t
s_mix64 (uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

//  A random nonzero 64-bit session id. getrandom() cannot fail on Linux >=
//  3.17 for 8 bytes once the pool is initialised; if it does (seccomp, very
//  early boot), fall back to clock, pid and an address: a restart must
//  still produce a different sid, it need not be unpredictable.
static uint64_t
s_new_sid (void *salt)
{
    uint64_t sid = 0;
    ssize_t rc;
    do
        rc = getrandom (&sid, sizeof (sid), GRND_NONBLOCK);
    while (rc < 0 && errno == EINTR);
    if (rc != (ssize_t) sizeof (sid)) {
        struct timespec ts;
        clock_gettime (CLOCK_MONOTONIC, &ts);
        sid = s_mix64 (s_now_us () ^ ((uint64_t) ts.tv_nsec << 20) ^ ((uint64_t) getpid () << 40) ^
                       (uint64_t) (uintptr_t) salt);
    }
    while (sid == 0)
        sid = s_mix64 (sid);
    return sid;
}

//  --------------------------------------------------------------------------
//  The subscription table. Every function here runs under the mutex.

//  Record a subscription to prefix. A prefix longer than any topic can
//  never match one: it is ignored here and in s_sub_remove alike.
static void
s_sub_add (mw_publisher_t *self, const char *prefix, size_t len)
{
    if (len > MW_MAX_TYPE)
        return;
    for (size_t i = 0; i < self->sub_count; i++)
        if (self->subs[i].len == len && memcmp (self->subs[i].prefix, prefix, len) == 0)
            return; //  libzmq reports each prefix once; be safe anyway
    if (self->sub_count == MW_SUBS_MAX) {
        //  Table full: we can no longer say which topics are listened to,
        //  so we assume every topic is (and let XPUB filter, losing only
        //  the accounting of events nobody wanted). libzmq reports each
        //  prefix once, so a later unsubscription of a prefix that is not
        //  in the table is one of these and pays this count back.
        self->sub_untracked++;
        return;
    }
    s_sub_t *sub = &self->subs[self->sub_count++];
    sub->len = (uint8_t) len;
    memcpy (sub->prefix, prefix, len);
}

static void
s_sub_remove (mw_publisher_t *self, const char *prefix, size_t len)
{
    if (len > MW_MAX_TYPE)
        return;
    for (size_t i = 0; i < self->sub_count; i++)
        if (self->subs[i].len == len && memcmp (self->subs[i].prefix, prefix, len) == 0) {
            self->subs[i] = self->subs[--self->sub_count];
            return;
        }
    if (self->sub_untracked > 0)
        self->sub_untracked--;
}

//  Can anyone receive at all: a live connection, and a subscription?
static inline bool
s_listened (mw_publisher_t *self)
{
    if (self->track_connections && self->connections <= 0)
        return false;
    return self->sub_count > 0 || self->sub_untracked > 0;
}

//  Is anyone subscribed to a prefix of topic? O(subscriptions), which is a
//  few entries in practice.
static bool
s_sub_matches (mw_publisher_t *self, const char *topic, size_t topic_len)
{
    if (self->track_connections && self->connections <= 0)
        return false;
    if (self->sub_untracked > 0)
        return true;
    for (size_t i = 0; i < self->sub_count; i++) {
        const s_sub_t *sub = &self->subs[i];
        if (sub->len <= topic_len && memcmp (sub->prefix, topic, sub->len) == 0)
            return true;
    }
    return false;
}

//  Count one monitor event (see the top of this file for the model).
static void
s_connection_event (mw_publisher_t *self, uint16_t event)
{
    switch (event) {
        case ZMQ_EVENT_CONNECTED:
        case ZMQ_EVENT_ACCEPTED:
            self->handshaking++;
            break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            if (self->handshaking > 0)
                self->handshaking--;
            self->connections++;
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            //  The DISCONNECTED that follows says which count to lower.
            self->failed_last = true;
            return;
        case ZMQ_EVENT_DISCONNECTED:
            //  After a failure, a handshaking connection ended if there is
            //  one (else a live one failed to decrypt a message); without
            //  one, a live connection ended if there is one.
            if (self->failed_last ? self->handshaking > 0 : self->connections <= 0) {
                if (self->handshaking > 0)
                    self->handshaking--;
            }
            else if (self->connections > 0)
                self->connections--;
            break;
        default:
            break;
    }
    self->failed_last = false;
}

//  Read every pending (un)subscription message from the socket, without
//  blocking. When nothing is pending, libzmq looks at the socket's command
//  mailbox, which is a poll() system call: 0.5-1 us on the 2-core CI
//  machine, more than the two zmq_send calls of an event together. We read
//  two sockets (subscriptions, monitor), so that is paid twice.
static void
s_subs_drain (mw_publisher_t *self, uint64_t now_us)
{
    self->since_drain = 0;
    self->drain_us = now_us;
    //  One byte of kind, then a prefix; a longer message is truncated by
    //  zmq_recv, reports its full size, and is ignored by s_sub_add.
    char frame[1 + MW_MAX_TYPE + 1];
    while (true) {
        int size = zmq_recv (self->socket, frame, sizeof (frame), ZMQ_DONTWAIT);
        if (size < 0)
            break; //  EAGAIN: nothing more; ETERM cannot happen before destroy
        if (size < 1)
            continue;
        size_t len = (size_t) size > sizeof (frame) ? MW_MAX_TYPE + 1 : (size_t) size - 1;
        if (frame[0] == 1)
            s_sub_add (self, frame + 1, len);
        else if (frame[0] == 0)
            s_sub_remove (self, frame + 1, len);
        //  Any other first byte is a message an XSUB peer sent upstream:
        //  not a subscription, nothing for us.
    }
    //  Connection events after subscriptions: a subscription we just read
    //  came over a connection whose CONNECTED/ACCEPTED event was written
    //  before it, so we never see a subscriber without its connection.
    while (true) {
        uint8_t head[6]; //  uint16 event, uint32 value (monitor format v1)
        int size = zmq_recv (self->monitor, head, sizeof (head), ZMQ_DONTWAIT);
        if (size < 0)
            break;
        //  The second frame is the endpoint: read and ignore it.
        char endpoint[1];
        zmq_recv (self->monitor, endpoint, sizeof (endpoint), ZMQ_DONTWAIT);
        if (size < 2)
            continue;
        uint16_t event;
        memcpy (&event, head, sizeof (event));
        s_connection_event (self, event);
    }
}

//  Should this send read the subscription messages first? Always while we
//  know of no subscriber: then the read is what lets the first subscriber
//  in, and the event is dropped anyway. While someone listens, reading on
//  every send would cost more than the send itself, so we read every
//  MW_DRAIN_EVERY sends or MW_DRAIN_US microseconds, whichever comes first.
//  What that costs in accuracy: when the last subscriber's connection dies
//  just after a read, up to MW_DRAIN_EVERY - 1 sends can go to the dying
//  pipe and count as sent, on top of the up to sndhwm events already queued
//  to it. Both show as a gap in `seq` at the broker.
static inline bool
s_drain_due (mw_publisher_t *self, uint64_t now_us)
{
    if (!s_listened (self))
        return true;
    //  Unsigned: a clock stepped backwards also reads as "long ago".
    return ++self->since_drain >= MW_DRAIN_EVERY || now_us - self->drain_us >= MW_DRAIN_US;
}

//  --------------------------------------------------------------------------
//  Sending

//  Count an event the caller cannot have sent (invalid arguments): it still
//  consumes a sequence number, so that at any time seq == sent + dropped
//  and a broker sees the gap. Return -1.
static int
s_refuse (mw_publisher_t *self)
{
    pthread_mutex_lock (&self->mutex);
    self->seq++;
    s_count (&self->dropped, 1);
    pthread_mutex_unlock (&self->mutex);
    return -1;
}

//  Send the two frames. Return 0, or -1 with the event not sent.
static int
s_send_frames (mw_publisher_t *self, const char *topic, size_t topic_len, size_t body_len)
{
    if (self->more_pending) {
        //  A previous body frame failed after its topic frame went out: close
        //  that message with an empty body (the broker counts it malformed)
        //  so that this topic does not become a third frame of it.
        if (zmq_send (self->socket, "", 0, ZMQ_DONTWAIT) < 0)
            return -1;
        self->more_pending = false;
    }
    //  With ZMQ_XPUB_NODROP, EAGAIN here means a subscriber's queue is at
    //  the high-water mark: nothing of the message was queued.
    if (zmq_send (self->socket, topic, topic_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    //  libzmq counts the high-water mark in whole messages, so a body whose
    //  topic frame was accepted is accepted too; only a terminating context
    //  could fail here. Remember it to keep the framing right.
    if (zmq_send (self->socket, self->buf, body_len, ZMQ_DONTWAIT) < 0) {
        self->more_pending = true;
        return -1;
    }
    return 0;
}

//  The one path every event takes. ev must have its type and fields; we set
//  the header here, under the mutex, so sequence numbers leave in order.
//  Every call consumes one sequence number and adds one to exactly one of
//  sent and dropped. Return 0 if sent, -1 if dropped.
static int
s_publish (mw_publisher_t *self, mw_event_t *ev)
{
    ev->v = MW_PROTOCOL_VERSION;
    ev->sid = self->sid;
    ev->str[MW_K_MINER].ptr = self->miner;
    ev->str[MW_K_MINER].len = self->miner_len;
    //  A publisher speaks for a miner, never for a broker.
    ev->has &= ~(uint32_t) (MW_HAS_ID | MW_HAS_BROKER_TS);
    size_t topic_len = strnlen (ev->type, sizeof (ev->type));

    pthread_mutex_lock (&self->mutex);
    uint64_t now_us = s_now_us ();
    if (s_drain_due (self, now_us))
        s_subs_drain (self, now_us);
    ev->seq = ++self->seq;
    ev->ts = now_us;

    int rc = -1;
    size_t body_len = 0;
    uint32_t cut = 0;
    //  Encode even when nobody listens: refusals (bad kv, too large) and
    //  truncation then behave the same whether or not a broker is there.
    if (mw_event_encode (ev, self->buf, sizeof (self->buf), &body_len, &cut) == MW_OK) {
        if (cut)
            s_count (&self->truncated, cut);
        if (s_sub_matches (self, ev->type, topic_len))
            rc = s_send_frames (self, ev->type, topic_len, body_len);
    }
    s_count (rc == 0 ? &self->sent : &self->dropped, 1);
    pthread_mutex_unlock (&self->mutex);
    return rc;
}

//  --------------------------------------------------------------------------
//  Housekeeping

//  The housekeeping thread: once a second, read the subscription and
//  monitor messages if nothing else did. It holds the mutex only while it
//  reads: pthread_cond_timedwait releases it while waiting.
static void *
s_housekeeper (void *arg)
{
    mw_publisher_t *self = (mw_publisher_t *) arg;
    pthread_mutex_lock (&self->mutex);
    while (self->housekeeping) {
        struct timespec until;
        clock_gettime (CLOCK_MONOTONIC, &until);
        until.tv_sec += MW_HOUSEKEEPING_MS / 1000;
        until.tv_nsec += (long) (MW_HOUSEKEEPING_MS % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (self->housekeeping &&
               pthread_cond_timedwait (&self->wake, &self->mutex, &until) != ETIMEDOUT)
            ;
        if (!self->housekeeping)
            break;
        uint64_t now_us = s_now_us ();
        //  Unsigned: a clock stepped backwards also reads as "long ago".
        if (now_us - self->drain_us >= (uint64_t) MW_HOUSEKEEPING_MS * 1000u)
            s_subs_drain (self, now_us);
    }
    pthread_mutex_unlock (&self->mutex);
    return NULL;
}

//  Start the housekeeper. Return 0, or an error number.
static int
s_housekeeper_start (mw_publisher_t *self)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init (&attr);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init (&self->wake, &attr);
    pthread_condattr_destroy (&attr);
    if (rc != 0)
        return rc;
    self->housekeeping = true;
    rc = pthread_create (&self->housekeeper, NULL, s_housekeeper, self);
    if (rc != 0) {
        self->housekeeping = false;
        pthread_cond_destroy (&self->wake);
    }
    return rc;
}

//  Stop the housekeeper and wait for it to end.
static void
s_housekeeper_stop (mw_publisher_t *self)
{
    pthread_mutex_lock (&self->mutex);
    self->housekeeping = false;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->mutex);
    pthread_join (self->housekeeper, NULL);
    pthread_cond_destroy (&self->wake);
}

//  --------------------------------------------------------------------------
//  Construction

//  Copy the miner name. The encoder cuts it to MW_MAX_MINER bytes at a
//  UTF-8 boundary and marks the event truncated; it looks at no byte past
//  MW_MAX_MINER, so keeping a few times that many is enough for the cut and
//  the mark to be exactly the encoder's. NULL or "" becomes the host name,
//  which is what an operator would type anyway.
static void
s_miner_copy (mw_publisher_t *self, const char *miner)
{
    char host[256];
    if (!miner || !*miner) {
        if (gethostname (host, sizeof (host)) != 0 || !*host)
            strcpy (host, "unknown");
        host[sizeof (host) - 1] = 0;
        miner = host;
    }
    size_t len = strnlen (miner, sizeof (self->miner) - 1);
    memcpy (self->miner, miner, len);
    self->miner[len] = 0;
    self->miner_len = (uint32_t) len;
}

//  Bind or connect one endpoint of the list (modified: blanks around it are
//  cut off). Return 0 or -1 with a message.
static int
s_attach (mw_publisher_t *self, char *endpoint)
{
    while (*endpoint == ' ' || *endpoint == '\t')
        endpoint++;
    size_t len = strlen (endpoint);
    while (len > 0 && (endpoint[len - 1] == ' ' || endpoint[len - 1] == '\t'))
        endpoint[--len] = 0;
    bool bind = *endpoint == '@';
    if (*endpoint == '@' || *endpoint == '>')
        endpoint++;
    if (!*endpoint) {
        fprintf (stderr, "minerwatch: empty endpoint in the list; expected '>tcp://HOST:PORT' to "
                         "connect or '@tcp://HOST:PORT' to bind, comma-separated\n");
        return -1;
    }
    //  Only these transports report connections to the monitor (inproc, for
    //  one, reports none): with any other, live connections are not
    //  counted and the subscription table alone decides.
    if (strncmp (endpoint, "tcp://", 6) != 0 && strncmp (endpoint, "ipc://", 6) != 0)
        self->track_connections = false;
    int rc = bind ? zmq_bind (self->socket, endpoint) : zmq_connect (self->socket, endpoint);
    if (rc != 0) {
        int err = zmq_errno ();
        const char *hint = err == EADDRINUSE
                               ? "the port is already bound (by another process, or this one): "
                                 "stop that or pick another port"
                           : bind ? "expected '@tcp://ADDRESS:PORT' with a local address"
                                  : "expected '>tcp://HOST:PORT' (or ipc://PATH, inproc://NAME)";
        fprintf (stderr, "minerwatch: cannot %s %s: %s; %s\n", bind ? "bind" : "connect to",
                 endpoint, zmq_strerror (err), hint);
        return -1;
    }
    return 0;
}

mw_publisher_t *
mw_publisher_new (const char *endpoints, const char *miner)
{
    return mw_publisher_new_opts (endpoints, miner, MW_PUBLISHER_SNDHWM, MW_PUBLISHER_LINGER_MS);
}

mw_publisher_t *
mw_publisher_new_opts (const char *endpoints, const char *miner, int sndhwm, int linger_ms)
{
    return mw_publisher_new_curve (endpoints, miner, sndhwm, linger_ms, NULL, NULL);
}

mw_publisher_t *
mw_publisher_new_curve (const char *endpoints, const char *miner, int sndhwm, int linger_ms,
                        const char *server_key, const char *client_cert)
{
    if (client_cert && !server_key) {
        fprintf (stderr,
                 "minerwatch: a client certificate (%s) without the broker's public key; give "
                 "the server key too (40 characters of Z85, or the broker's certificate file)\n",
                 client_cert);
        return NULL;
    }
    if (!endpoints || !*endpoints) {
        fprintf (stderr, "minerwatch: no endpoint given; expected e.g. '>tcp://127.0.0.1:7710'\n");
        return NULL;
    }
    if (sndhwm <= 0 || linger_ms < 0) {
        fprintf (stderr,
                 "minerwatch: invalid options sndhwm=%d linger_ms=%d; expected sndhwm > 0 and "
                 "linger_ms >= 0\n",
                 sndhwm, linger_ms);
        return NULL;
    }
    mw_publisher_t *self = (mw_publisher_t *) calloc (1, sizeof (mw_publisher_t));
    if (!self) {
        fprintf (stderr, "minerwatch: out of memory creating a publisher\n");
        return NULL;
    }
    char *list = NULL;
    bool mutex_ok = false;
    bool reported = false; //  a message for the user is already out
    if (pthread_mutex_init (&self->mutex, NULL) != 0)
        goto err;
    mutex_ok = true;
    s_miner_copy (self, miner);
    self->sid = s_new_sid (self);
    for (int kind = 0; kind < MW_TYPE_COUNT; kind++)
        mw_event_init (&self->empty[kind], (mw_type_t) kind);
    atomic_init (&self->sent, 0);
    atomic_init (&self->dropped, 0);
    atomic_init (&self->truncated, 0);

    self->ctx = zmq_ctx_new ();
    if (!self->ctx)
        goto err;
    zmq_ctx_set (self->ctx, ZMQ_IO_THREADS, 1);
    self->socket = zmq_socket (self->ctx, ZMQ_XPUB);
    if (!self->socket)
        goto err;
    //  Options apply to connections made after they are set: all before
    //  the first bind or connect.
    //  ZMQ_IMMEDIATE: when a connection we made drops, libzmq would
    //  otherwise keep its queue (and the subscriptions that came with it)
    //  and wait for a reconnect. Queued events would then count as sent
    //  although the peer is gone, and, with ZMQ_XPUB_NODROP, that one full
    //  queue would make every send fail, for every other subscriber too.
    //  With it the queue goes with the connection and libzmq reports the
    //  unsubscription, so we drop (and count) from then on. The cost: up
    //  to sndhwm events queued at the moment a broker dies are lost instead
    //  of delivered after its restart; the broker sees them as a seq gap.
    int one = 1;
    if (zmq_setsockopt (self->socket, ZMQ_XPUB_NODROP, &one, sizeof (one)) != 0 ||
        zmq_setsockopt (self->socket, ZMQ_IMMEDIATE, &one, sizeof (one)) != 0 ||
        zmq_setsockopt (self->socket, ZMQ_SNDHWM, &sndhwm, sizeof (sndhwm)) != 0 ||
        zmq_setsockopt (self->socket, ZMQ_LINGER, &linger_ms, sizeof (linger_ms)) != 0)
        goto err;
    if (server_key) {
        char why[600];
        if (mw_curve_client (self->socket, server_key, client_cert, why, sizeof (why)) != 0) {
            fprintf (stderr, "minerwatch: CURVE: %s\n", why);
            reported = true;
            goto err;
        }
    }

    //  The monitor must exist before the first connection. Its PAIR has no
    //  high-water mark: libzmq's io thread blocks on a full monitor queue
    //  (and would deadlock our destroy), and what queues between two of our
    //  reads is three small messages per connection made or lost (about 20
    //  a second while a wrong CURVE key makes libzmq retry: the
    //  housekeeping thread reads them within a second if no call does).
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof (monitor_ep), "inproc://minerwatch-monitor-%p", (void *) self);
    int events = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                 ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor (self->socket, monitor_ep, events) != 0)
        goto err;
    self->monitor = zmq_socket (self->ctx, ZMQ_PAIR);
    if (!self->monitor)
        goto err;
    int zero = 0;
    if (zmq_setsockopt (self->monitor, ZMQ_RCVHWM, &zero, sizeof (zero)) != 0 ||
        zmq_setsockopt (self->monitor, ZMQ_LINGER, &zero, sizeof (zero)) != 0 ||
        zmq_connect (self->monitor, monitor_ep) != 0)
        goto err;
    self->track_connections = true;

    list = strdup (endpoints);
    if (!list)
        goto err;
    char *save = NULL;
    int attached = 0;
    for (char *ep = strtok_r (list, ",", &save); ep; ep = strtok_r (NULL, ",", &save)) {
        if (s_attach (self, ep) != 0) {
            reported = true;
            goto err;
        }
        attached++;
    }
    if (attached == 0) {
        fprintf (stderr, "minerwatch: no endpoint in '%s'; expected e.g. '>tcp://127.0.0.1:7710'\n",
                 endpoints);
        reported = true;
        goto err;
    }
    free (list);
    list = NULL;
    //  Last: from here on another thread uses the sockets (under mutex).
    int rc = s_housekeeper_start (self);
    if (rc != 0) {
        fprintf (stderr, "minerwatch: cannot start the publisher's housekeeping thread: %s\n",
                 strerror (rc));
        reported = true;
        goto err;
    }
    return self;

err:
    if (!reported)
        fprintf (stderr, "minerwatch: cannot set up the publisher's ZeroMQ socket: %s\n",
                 zmq_strerror (zmq_errno ()));
    free (list);
    if (self->monitor)
        zmq_close (self->monitor);
    if (self->socket) {
        int no_linger = 0; //  nothing was published: nothing to flush
        zmq_setsockopt (self->socket, ZMQ_LINGER, &no_linger, sizeof (no_linger));
        zmq_socket_monitor (self->socket, NULL, 0);
        zmq_close (self->socket);
    }
    if (self->ctx)
        while (zmq_ctx_term (self->ctx) != 0 && zmq_errno () == EINTR)
            ;
    if (mutex_ok)
        pthread_mutex_destroy (&self->mutex);
    free (self);
    return NULL;
}

void
mw_publisher_destroy (mw_publisher_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        mw_publisher_t *self = *self_p;
        s_housekeeper_stop (self);
        //  zmq_ctx_term waits up to the linger for queued events to leave.
        zmq_socket_monitor (self->socket, NULL, 0);
        zmq_close (self->monitor);
        zmq_close (self->socket);
        while (zmq_ctx_term (self->ctx) != 0 && zmq_errno () == EINTR)
            ;
        pthread_mutex_destroy (&self->mutex);
        free (self);
        *self_p = NULL;
    }
}

int
mw_publisher_wait_ready (mw_publisher_t *self, int timeout_ms)
{
    assert (self);
    int64_t deadline = s_monotonic_ms () + (timeout_ms > 0 ? timeout_ms : 0);
    while (true) {
        pthread_mutex_lock (&self->mutex);
        s_subs_drain (self, s_now_us ());
        bool ready = s_listened (self);
        pthread_mutex_unlock (&self->mutex);
        if (ready)
            return 0;
        if (s_monotonic_ms () >= deadline)
            return -1;
        //  Sleep without the mutex, so publishers on other threads go on;
        //  zmq_poll would need the socket, hence the mutex, while it waits.
        struct timespec slice = {0, MW_WAIT_SLICE_MS * 1000000L};
        nanosleep (&slice, NULL);
    }
}

//  --------------------------------------------------------------------------
//  One call per event type. Each builds the event on the stack; strings
//  point at the caller's memory, which outlives the call.

//  mw_event_init, from the copy made at construction: one struct copy
//  instead of a memset and a strcpy per event.
static inline void
s_event_init (mw_publisher_t *self, mw_event_t *ev, mw_type_t kind)
{
    *ev = self->empty[kind];
}

//  mw_event_set_str, inlined: the calls below make up to five per event.
static inline void
s_set_str (mw_event_t *ev, mw_str_key_t key, const char *value)
{
    if (value) {
        size_t len = strlen (value);
        ev->str[key].ptr = value;
        ev->str[key].len = len > UINT32_MAX ? UINT32_MAX : (uint32_t) len;
    }
    else {
        ev->str[key].ptr = NULL;
        ev->str[key].len = 0;
    }
}

int
mw_publisher_task_start (mw_publisher_t *self, const char *task_id, const char *prompt,
                         const char *url, const char *validator_ip, const char *validator_hotkey,
                         uint64_t timeout_ms)
{
    assert (self);
    mw_event_t ev;
    s_event_init (self, &ev, MW_TYPE_TASK_START);
    s_set_str (&ev, MW_K_TASK_ID, task_id);
    s_set_str (&ev, MW_K_PROMPT, prompt);
    s_set_str (&ev, MW_K_URL, url);
    s_set_str (&ev, MW_K_VALIDATOR_IP, validator_ip);
    s_set_str (&ev, MW_K_VALIDATOR_HOTKEY, validator_hotkey);
    if (timeout_ms > 0) {
        ev.has |= MW_HAS_TIMEOUT_MS;
        ev.timeout_ms = timeout_ms;
    }
    return s_publish (self, &ev);
}

int
mw_publisher_task_step (mw_publisher_t *self, const char *task_id, const char *step,
                        const mw_kv_t *details, size_t n)
{
    assert (self);
    mw_event_t ev;
    s_event_init (self, &ev, MW_TYPE_TASK_STEP);
    s_set_str (&ev, MW_K_TASK_ID, task_id);
    s_set_str (&ev, MW_K_STEP, step);
    mw_kv_t map;
    if (details) {
        map.key = "details";
        map.kind = MW_KV_MAP;
        map.val.list.items = details;
        map.val.list.count = n;
        ev.kv = &map;
        ev.kv_count = 1;
    }
    return s_publish (self, &ev);
}

int
mw_publisher_actions_generated (mw_publisher_t *self, const char *task_id, uint64_t action_count,
                                const char *action_type)
{
    assert (self);
    mw_event_t ev;
    s_event_init (self, &ev, MW_TYPE_ACTIONS_GENERATED);
    s_set_str (&ev, MW_K_TASK_ID, task_id);
    s_set_str (&ev, MW_K_ACTION_TYPE, action_type);
    ev.has |= MW_HAS_ACTION_COUNT;
    ev.action_count = action_count;
    return s_publish (self, &ev);
}

int
mw_publisher_task_complete (mw_publisher_t *self, const char *task_id, bool success,
                            int64_t action_count, double response_time, const char *error)
{
    assert (self);
    mw_event_t ev;
    s_event_init (self, &ev, MW_TYPE_TASK_COMPLETE);
    s_set_str (&ev, MW_K_TASK_ID, task_id);
    s_set_str (&ev, MW_K_ERROR, error);
    ev.has |= MW_HAS_SUCCESS;
    ev.success = success;
    if (action_count >= 0) {
        ev.has |= MW_HAS_ACTION_COUNT;
        ev.action_count = (uint64_t) action_count;
    }
    if (!isnan (response_time)) {
        ev.has |= MW_HAS_RESPONSE_TIME;
        ev.response_time = response_time;
    }
    return s_publish (self, &ev);
}

int
mw_publisher_task_feedback (mw_publisher_t *self, const char *task_id, double score,
                            double execution_time, const char *validator_hotkey)
{
    assert (self);
    mw_event_t ev;
    s_event_init (self, &ev, MW_TYPE_TASK_FEEDBACK);
    s_set_str (&ev, MW_K_TASK_ID, task_id);
    s_set_str (&ev, MW_K_VALIDATOR_HOTKEY, validator_hotkey);
    if (!isnan (score)) {
        ev.has |= MW_HAS_SCORE;
        ev.score = score;
    }
    if (!isnan (execution_time)) {
        ev.has |= MW_HAS_EXECUTION_TIME;
        ev.execution_time = execution_time;
    }
    return s_publish (self, &ev);
}

int
mw_publisher_validator_connection (mw_publisher_t *self, const char *validator_ip,
                                   const char *validator_hotkey, const char *endpoint)
{
    assert (self);
    mw_event_t ev;
    s_event_init (self, &ev, MW_TYPE_VALIDATOR_CONNECTION);
    s_set_str (&ev, MW_K_VALIDATOR_IP, validator_ip);
    s_set_str (&ev, MW_K_VALIDATOR_HOTKEY, validator_hotkey);
    s_set_str (&ev, MW_K_ENDPOINT, endpoint);
    return s_publish (self, &ev);
}

int
mw_publisher_cache_hit (mw_publisher_t *self, const char *task_id, const char *cache_type)
{
    assert (self);
    mw_event_t ev;
    s_event_init (self, &ev, MW_TYPE_CACHE_HIT);
    s_set_str (&ev, MW_K_TASK_ID, task_id);
    s_set_str (&ev, MW_K_CACHE_TYPE, cache_type);
    return s_publish (self, &ev);
}

int
mw_publisher_error (mw_publisher_t *self, const char *error_message, const char *task_id,
                    const char *error_type)
{
    assert (self);
    mw_event_t ev;
    s_event_init (self, &ev, MW_TYPE_ERROR);
    s_set_str (&ev, MW_K_ERROR_MESSAGE, error_message);
    s_set_str (&ev, MW_K_TASK_ID, task_id);
    s_set_str (&ev, MW_K_ERROR_TYPE, error_type);
    return s_publish (self, &ev);
}

int
mw_publisher_send (mw_publisher_t *self, const char *type, const char *task_id, const mw_kv_t *kv,
                   size_t n)
{
    assert (self);
    mw_event_t ev;
    if (mw_event_init_named (&ev, type) != 0)
        return s_refuse (self);
    s_set_str (&ev, MW_K_TASK_ID, task_id);
    ev.kv = kv;
    ev.kv_count = kv ? n : 0;
    if (n && !kv)
        return s_refuse (self);
    return s_publish (self, &ev);
}

int
mw_publisher_send_event (mw_publisher_t *self, mw_event_t *ev)
{
    assert (self);
    assert (ev);
    //  The header of ev (v, ts, miner, sid, seq) is overwritten by
    //  s_publish; the caller can read ev->seq afterwards, sent or not.
    return s_publish (self, ev);
}

//  --------------------------------------------------------------------------
//  Counters and identity

uint64_t
mw_publisher_sent (mw_publisher_t *self)
{
    assert (self);
    return atomic_load_explicit (&self->sent, memory_order_relaxed);
}

uint64_t
mw_publisher_dropped (mw_publisher_t *self)
{
    assert (self);
    return atomic_load_explicit (&self->dropped, memory_order_relaxed);
}

uint64_t
mw_publisher_truncated (mw_publisher_t *self)
{
    assert (self);
    return atomic_load_explicit (&self->truncated, memory_order_relaxed);
}

int
mw_publisher_connections (mw_publisher_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->mutex);
    s_subs_drain (self, s_now_us ());
    int connections = self->track_connections ? self->connections : -1;
    pthread_mutex_unlock (&self->mutex);
    return connections;
}

uint64_t
mw_publisher_sid (mw_publisher_t *self)
{
    assert (self);
    return self->sid;
}

const char *
mw_version (void)
{
    return MW_VERSION_STRING;
}
