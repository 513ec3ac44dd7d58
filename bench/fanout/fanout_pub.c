/*  fanout_pub.c - publish timestamped events at a fixed rate, for the fan-out
    benchmark (bench/fanout/run.sh).

    Usage: fanout_pub (--mw ENDPOINT | --http URL) [--rate R] [--duration S]
                      [--note-bytes N]

    Every event carries the same keys: type "bench", n (its number from 1),
    pub_ns (CLOCK_REALTIME in ns, read just before the send) and note (a
    string of --note-bytes characters, default 120, so a frame has the size
    of a real task event). After --duration seconds at --rate events/s
    (absolute deadlines: a late send does not shift the ones after it), it
    sends an end marker (the same event with bench_end=true) three times,
    100 ms apart. A server that holds the publisher back (a POST answered
    late) gets fewer events: at the end of the duration the publisher stops
    whatever it sent, so every server is offered the same time, and the
    printed rate says what it accepted.

      --mw ENDPOINT   through libminerwatch: mw_publisher_send to a broker's
                      ingest (">tcp://127.0.0.1:7710"); the broker, and the
                      gateways mirroring it, carry it to SSE clients.
      --http URL      HTTP/1.1 POST of the event as JSON on one keep-alive
                      connection (an nchan publisher location,
                      http://127.0.0.1:PORT/pub/CHANNEL); each POST waits
                      for its answer.

    Prints "sent=N failed=M rate=R" at the end. Exit status 0, 1 if it could
    not start or nothing was sent, 2 for a bad command line.
*/
#define _GNU_SOURCE
#include "mw_publisher.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t
s_now_ns (clockid_t clock)
{
    struct timespec ts;
    clock_gettime (clock, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static void
s_sleep_until (uint64_t mono_ns)
{
    struct timespec ts = {.tv_sec = (time_t) (mono_ns / 1000000000ull),
                          .tv_nsec = (long) (mono_ns % 1000000000ull)};
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

//  --------------------------------------------------------------------------
//  HTTP publisher: one keep-alive connection, POST and read the answer.

typedef struct {
    int fd;
    char host[64];
    int port;
    char path[256];
    char in[8192];
    size_t in_len;
} http_t;

static int
s_http_connect (http_t *h)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) h->port)};
    if (inet_pton (AF_INET, h->host, &a.sin_addr) != 1)
        return -1;
    h->fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0)
        return -1;
    int one = 1;
    setsockopt (h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    if (connect (h->fd, (struct sockaddr *) &a, sizeof (a)) != 0) {
        close (h->fd);
        h->fd = -1;
        return -1;
    }
    h->in_len = 0;
    return 0;
}

static int
s_write_all (int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send (fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t) w;
    }
    return 0;
}

//  Read one answer; return its status, or -1 if the connection failed.
static int
s_http_answer (http_t *h)
{
    for (;;) {
        char *end = memmem (h->in, h->in_len, "\r\n\r\n", 4);
        if (end) {
            size_t head = (size_t) (end - h->in) + 4;
            int status = 0;
            if (sscanf (h->in, "HTTP/1.%*d %d", &status) != 1)
                return -1;
            size_t body = 0;
            const char *cl = strcasestr (h->in, "\r\ncontent-length:");
            if (cl && cl < end)
                body = strtoul (cl + 17, NULL, 10);
            if (head + body > sizeof (h->in))
                return -1;
            if (h->in_len >= head + body) {
                memmove (h->in, h->in + head + body, h->in_len - head - body);
                h->in_len -= head + body;
                return status;
            }
        }
        if (h->in_len == sizeof (h->in))
            return -1;
        ssize_t r = recv (h->fd, h->in + h->in_len, sizeof (h->in) - h->in_len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        h->in_len += (size_t) r;
    }
}

static int
s_http_post (http_t *h, const char *body, size_t len)
{
    char req[8192];
    int n = snprintf (req, sizeof (req),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Content-Length: %zu\r\n\r\n%.*s",
                      h->path, h->host, h->port, len, (int) len, body);
    if (n <= 0 || (size_t) n >= sizeof (req))
        return -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (h->fd < 0 && s_http_connect (h) != 0)
            return -1;
        if (s_write_all (h->fd, req, (size_t) n) == 0) {
            int status = s_http_answer (h);
            if (status >= 200 && status < 300)
                return 0;
            if (status > 0)
                return -1;
        }
        close (h->fd); //  the server closed the keep-alive connection: once more
        h->fd = -1;
    }
    return -1;
}

//  --------------------------------------------------------------------------

int
main (int argc, char **argv)
{
    const char *mw_ep = NULL, *url = NULL;
    double rate = 100, duration = 10;
    int note_bytes = 120;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp (a, "--help") || !strcmp (a, "-h")) {
            printf ("Usage: fanout_pub (--mw ENDPOINT | --http URL) [--rate R] [--duration S] "
                    "[--note-bytes N]\n");
            return 0;
        }
        if (!v) {
            fprintf (stderr, "fanout_pub: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp (a, "--mw"))
            mw_ep = v;
        else if (!strcmp (a, "--http"))
            url = v;
        else if (!strcmp (a, "--rate"))
            rate = atof (v);
        else if (!strcmp (a, "--duration"))
            duration = atof (v);
        else if (!strcmp (a, "--note-bytes"))
            note_bytes = atoi (v);
        else {
            fprintf (stderr, "fanout_pub: unknown option '%s'\n", a);
            return 2;
        }
    }
    if ((!mw_ep) == (!url) || rate <= 0 || duration <= 0 || note_bytes < 0 || note_bytes > 4000) {
        fprintf (stderr, "fanout_pub: give one of --mw, --http; rate, duration > 0\n");
        return 2;
    }
    char note[4001];
    for (int i = 0; i < note_bytes; i++)
        note[i] = (char) ('a' + i % 26);
    note[note_bytes] = 0;

    mw_publisher_t *pub = NULL;
    http_t http = {.fd = -1};
    if (mw_ep) {
        pub = mw_publisher_new (mw_ep, "bench");
        if (!pub)
            return 1;
        if (mw_publisher_wait_ready (pub, 5000) != 0) {
            fprintf (stderr, "fanout_pub: no broker subscribed at %s\n", mw_ep);
            mw_publisher_destroy (&pub);
            return 1;
        }
    }
    else {
        if (sscanf (url, "http://%63[^:/]:%d%255s", http.host, &http.port, http.path) != 3) {
            fprintf (stderr, "fanout_pub: bad URL '%s'\n", url);
            return 2;
        }
        if (s_http_connect (&http) != 0) {
            fprintf (stderr, "fanout_pub: cannot connect to %s\n", url);
            return 1;
        }
    }

    uint64_t count = (uint64_t) (rate * duration + 0.5);
    uint64_t period = (uint64_t) (1e9 / rate);
    uint64_t sent = 0, failed = 0;
    uint64_t t0 = s_now_ns (CLOCK_MONOTONIC);
    uint64_t t_end = t0 + count * period;
    for (uint64_t n = 1, marker = 0; marker < 3; n++) {
        bool end = n > count || s_now_ns (CLOCK_MONOTONIC) >= t_end;
        uint64_t due = end ? t_end + (++marker) * 100000000ull : t0 + (n - 1) * period;
        s_sleep_until (due);
        uint64_t pub_ns = s_now_ns (CLOCK_REALTIME);
        int rc;
        if (pub) {
            mw_kv_t kv[4] = {
                {.key = "n", .kind = MW_KV_UINT, .val.u = n},
                {.key = "pub_ns", .kind = MW_KV_UINT, .val.u = pub_ns},
                {.key = "note", .kind = MW_KV_STR, .val.s = {note, (size_t) -1}},
                {.key = "bench_end", .kind = MW_KV_BOOL, .val.b = true},
            };
            rc = mw_publisher_send (pub, "bench", NULL, kv, end ? 4 : 3);
        }
        else {
            char body[4600];
            int len = snprintf (body, sizeof (body),
                                "{\"v\":1,\"type\":\"bench\",\"ts\":%" PRIu64
                                ",\"miner\":\"bench\",\"seq\":%" PRIu64 ",\"n\":%" PRIu64
                                ",\"pub_ns\":%" PRIu64 ",\"note\":\"%s\"%s}",
                                pub_ns / 1000000, n, n, pub_ns, note,
                                end ? ",\"bench_end\":true" : "");
            rc = s_http_post (&http, body, (size_t) len);
        }
        if (end)
            continue;
        if (rc == 0)
            sent++;
        else
            failed++;
    }
    printf ("sent=%" PRIu64 " failed=%" PRIu64 " rate=%.1f\n", sent, failed,
            (double) sent / duration);
    if (pub)
        mw_publisher_destroy (&pub);
    if (http.fd >= 0)
        close (http.fd);
    return sent ? 0 : 1;
}
