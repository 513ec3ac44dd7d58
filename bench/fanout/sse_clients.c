/*  sse_clients.c - many Server-Sent Events clients in one process, for the
    fan-out benchmark (bench/fanout/run.sh).

    Usage: sse_clients --url http://127.0.0.1:PORT/PATH [OPTIONS]

    Opens --clients N HTTP/1.1 connections (non-blocking sockets, one epoll
    loop, at most --connect-batch connection attempts in flight), sends
    `GET PATH` with `Accept: text/event-stream` on each, and parses the SSE
    stream of every connection. When every connection has its response
    headers (or failed), it prints "READY <connected>" on stdout (and flushes)
    so a driver knows the clients are in place.

    An event frame counts when its event name is --event (default "message",
    the name of a frame without an `event:` line) and its data holds
    `"pub_ns":N`: N is the publisher's CLOCK_REALTIME in nanoseconds, and
    now - N is the publish-to-client latency of that delivery (same
    machine, same clock). A counted frame whose data holds `"bench_end":true`
    is the end marker: that connection is done. The program ends when every
    connected client saw the end marker, when --timeout seconds passed since
    READY, or, with --hold, when stdin closes (idle clients for memory
    measurements: nothing is counted, nothing is expected).

    It prints one line of key=value results:
      clients connected errors events events_per_s p50_us p99_us max_us
      ended window_s
    events is the sum over clients of the counted deliveries; events_per_s
    divides it by the window from the first counted delivery's publish time
    to the last delivery. errors counts failed connects, non-200 answers and
    connections closed before the end marker.

    Exit status: 0, 1 on a setup failure, 2 for a bad command line.
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_BUF 131072//  per-connection read buffer (an SSE frame must fit)

typedef enum { C_IDLE, C_CONNECTING, C_HEADERS, C_STREAM, C_DONE, C_FAILED } cstate_t;

typedef struct {
    int fd;
    cstate_t state;
    size_t len;  //  bytes in buf
    size_t sent; //  request bytes sent
    char event[64];
    bool counted_data; //  the current frame's data is being collected
    char *buf;
} conn_t;

//  Latency histogram in microseconds: exact below 128, then 64 sub-buckets
//  per power of two (about 1.5% resolution).
#define H_SUB 64
#define H_BUCKETS (128 + 58 * H_SUB)
static uint64_t s_hist[H_BUCKETS];

static int
s_bucket (uint64_t us)
{
    if (us < 128)
        return (int) us;
    int e = 63 - __builtin_clzll (us);
    int shift = e - 6;
    int idx = 128 + (e - 7) * H_SUB + (int) ((us >> shift) - H_SUB);
    return idx < H_BUCKETS ? idx : H_BUCKETS - 1;
}

static uint64_t
s_bucket_value (int idx)
{
    if (idx < 128)
        return (uint64_t) idx;
    int e = (idx - 128) / H_SUB + 7;
    int sub = (idx - 128) % H_SUB;
    return ((uint64_t) (sub + H_SUB)) << (e - 6);
}

static uint64_t
s_percentile (uint64_t total, double p)
{
    if (!total)
        return 0;
    uint64_t rank = (uint64_t) (p * (double) total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (int i = 0; i < H_BUCKETS; i++) {
        seen += s_hist[i];
        if (seen > rank)
            return s_bucket_value (i);
    }
    return s_bucket_value (H_BUCKETS - 1);
}

static uint64_t
s_now_ns (clockid_t clock)
{
    struct timespec ts;
    clock_gettime (clock, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

static struct {
    struct sockaddr_in addr;
    char request[1024];
    size_t request_len;
    char event[64];
    int epfd;
    uint64_t events, max_us, first_pub_ns, last_recv_ns;
    int connected, errors, ended, open;
} g;

static void
s_fail (conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl (g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close (c->fd);
        c->fd = -1;
    }
    if (c->state != C_DONE)
        g.errors++;
    c->state = C_FAILED;
    g.open--;
}

static int
s_start (conn_t *c)
{
    c->fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fprintf (stderr, "sse_clients: socket: %s\n", strerror (errno));
        c->state = C_FAILED;
        g.errors++;
        return -1;
    }
    int one = 1;
    setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    g.open++;
    c->state = C_CONNECTING;
    c->sent = 0;
    int rc = connect (c->fd, (struct sockaddr *) &g.addr, sizeof (g.addr));
    if (rc != 0 && errno != EINPROGRESS) {
        s_fail (c);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl (g.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        s_fail (c);
        return -1;
    }
    return 0;
}

//  One complete line of the stream (without its line end).
static void
s_line (conn_t *c, char *line, size_t len)
{
    if (len == 0) { //  end of a frame
        c->event[0] = 0;
        return;
    }
    if (line[0] == ':')
        return;
    if (len >= 6 && !memcmp (line, "event:", 6)) {
        const char *v = line + 6;
        size_t n = len - 6;
        if (n && *v == ' ')
            v++, n--;
        if (n >= sizeof (c->event))
            n = sizeof (c->event) - 1;
        memcpy (c->event, v, n);
        c->event[n] = 0;
        return;
    }
    if (len >= 5 && !memcmp (line, "data:", 5)) {
        const char *want = g.event;
        const char *have = c->event[0] ? c->event : "message";
        if (strcmp (want, have) != 0)
            return;
        line[len] = 0; //  the line end was there: safe
        const char *p = strstr (line, "\"pub_ns\":");
        if (!p)
            return;
        uint64_t pub = strtoull (p + 9, NULL, 10);
        if (strstr (line, "\"bench_end\":true")) {
            if (c->state == C_STREAM) {
                c->state = C_DONE;
                g.ended++;
            }
            return;
        }
        uint64_t now = s_now_ns (CLOCK_REALTIME);
        uint64_t us = now > pub ? (now - pub) / 1000 : 0;
        s_hist[s_bucket (us)]++;
        if (us > g.max_us)
            g.max_us = us;
        if (!g.first_pub_ns || pub < g.first_pub_ns)
            g.first_pub_ns = pub;
        g.last_recv_ns = now;
        g.events++;
    }
}

//  Parse what is in c->buf: headers first, then lines.
static void
s_parse (conn_t *c)
{
    size_t off = 0;
    if (c->state == C_HEADERS) {
        char *end = memmem (c->buf, c->len, "\r\n\r\n", 4);
        if (!end) {
            if (c->len == S_BUF)
                s_fail (c);
            return;
        }
        if (c->len < 12 || memcmp (c->buf, "HTTP/1.1 200", 12) != 0) {
            char *eol = memchr (c->buf, '\r', c->len);
            fprintf (stderr, "sse_clients: answer %.*s\n",
                     eol ? (int) (eol - c->buf) : 40, c->buf);
            s_fail (c);
            return;
        }
        c->state = C_STREAM;
        g.connected++;
        off = (size_t) (end - c->buf) + 4;
    }
    while (off < c->len && (c->state == C_STREAM || c->state == C_DONE)) {
        char *nl = memchr (c->buf + off, '\n', c->len - off);
        if (!nl)
            break;
        size_t n = (size_t) (nl - (c->buf + off));
        char *line = c->buf + off;
        if (n && line[n - 1] == '\r')
            n--;
        s_line (c, line, n);
        off = (size_t) (nl - c->buf) + 1;
    }
    if (off) {
        memmove (c->buf, c->buf + off, c->len - off);
        c->len -= off;
    }
    if (c->len == S_BUF) {
        fprintf (stderr, "sse_clients: a line longer than %d bytes\n", S_BUF);
        s_fail (c);
    }
}

static void
s_io (conn_t *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof (err);
        getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            s_fail (c);
            return;
        }
        if (!(events & EPOLLOUT) && !(events & EPOLLIN))
            return;
        ssize_t w = send (c->fd, g.request + c->sent, g.request_len - c->sent, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
            s_fail (c);
            return;
        }
        if (w > 0)
            c->sent += (size_t) w;
        if (c->sent < g.request_len)
            return;
        c->state = C_HEADERS;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl (g.epfd, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    for (;;) {
        ssize_t r = recv (c->fd, c->buf + c->len, S_BUF - c->len, 0);
        if (r > 0) {
            c->len += (size_t) r;
            s_parse (c);
            if (c->state == C_FAILED)
                return;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0 && errno == EINTR)
            continue;
        //  closed by the server (or an error)
        if (c->state == C_DONE) {
            epoll_ctl (g.epfd, EPOLL_CTL_DEL, c->fd, NULL);
            close (c->fd);
            c->fd = -1;
            g.open--;
            return;
        }
        if (c->state == C_STREAM)
            g.connected--;
        s_fail (c);
        return;
    }
}

static void
s_usage (FILE *out)
{
    fprintf (out,
             "Usage: sse_clients --url http://HOST:PORT/PATH [OPTIONS]\n"
             "  --clients N         connections (default 1)\n"
             "  --event NAME        count frames of this event name (default message)\n"
             "  --timeout S         give up S seconds after READY (default 30)\n"
             "  --hold              hold idle connections until stdin closes\n"
             "  --connect-batch N   connection attempts in flight at once (default 256)\n");
}

int
main (int argc, char **argv)
{
    const char *url = NULL;
    int clients = 1, batch = 256;
    double timeout = 30;
    bool hold = false;
    snprintf (g.event, sizeof (g.event), "message");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp (a, "--hold"))
            hold = true;
        else if (!strcmp (a, "--help") || !strcmp (a, "-h")) {
            s_usage (stdout);
            return 0;
        }
        else if (v && !strcmp (a, "--url"))
            url = v, i++;
        else if (v && !strcmp (a, "--clients"))
            clients = atoi (v), i++;
        else if (v && !strcmp (a, "--event"))
            snprintf (g.event, sizeof (g.event), "%s", v), i++;
        else if (v && !strcmp (a, "--timeout"))
            timeout = atof (v), i++;
        else if (v && !strcmp (a, "--connect-batch"))
            batch = atoi (v), i++;
        else {
            fprintf (stderr, "sse_clients: bad argument '%s'\n", a);
            s_usage (stderr);
            return 2;
        }
    }
    char host[256], path[512];
    int port = 80;
    if (!url || clients < 1 || batch < 1 ||
        sscanf (url, "http://%255[^:/]:%d%511s", host, &port, path) != 3) {
        fprintf (stderr, "sse_clients: need --url http://HOST:PORT/PATH and --clients >= 1\n");
        return 2;
    }
    memset (&g.addr, 0, sizeof (g.addr));
    g.addr.sin_family = AF_INET;
    g.addr.sin_port = htons ((uint16_t) port);
    if (inet_pton (AF_INET, host, &g.addr.sin_addr) != 1) {
        fprintf (stderr, "sse_clients: host must be an IPv4 address, not '%s'\n", host);
        return 2;
    }
    g.request_len = (size_t) snprintf (g.request, sizeof (g.request),
                                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
                                       "Accept: text/event-stream\r\n"
                                       "Cache-Control: no-cache\r\n\r\n",
                                       path, host, port);
    //  Raise the open-file limit to what N connections need.
    struct rlimit rl;
    getrlimit (RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t) clients + 64;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
        setrlimit (RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < need) {
            fprintf (stderr, "sse_clients: open-file limit %llu < %llu needed\n",
                     (unsigned long long) rl.rlim_cur, (unsigned long long) need);
            return 1;
        }
    }
    conn_t *conns = calloc ((size_t) clients, sizeof (conn_t));
    g.epfd = epoll_create1 (EPOLL_CLOEXEC);
    if (!conns || g.epfd < 0)
        return 1;
    for (int i = 0; i < clients; i++) {
        conns[i].fd = -1;
        conns[i].state = C_IDLE;
        conns[i].buf = malloc (S_BUF);
        if (!conns[i].buf)
            return 1;
    }
    struct epoll_event evs[512];
    int next = 0;
    bool ready = false;
    uint64_t t_ready = 0;
    for (;;) {
        //  Start connections, at most batch pending at a time.
        int pending = 0;
        if (!ready) {
            for (int i = 0; i < next; i++)
                if (conns[i].state == C_CONNECTING || conns[i].state == C_HEADERS)
                    pending++;
            while (next < clients && pending < batch) {
                if (s_start (&conns[next++]) == 0)
                    pending++;
            }
            if (next == clients && pending == 0) {
                ready = true;
                t_ready = s_now_ns (CLOCK_MONOTONIC);
                printf ("READY %d\n", g.connected);
                fflush (stdout);
                if (hold)
                    epoll_ctl (g.epfd, EPOLL_CTL_ADD, 0,
                               &(struct epoll_event) {.events = EPOLLIN | EPOLLHUP,
                                                      .data.ptr = NULL});
            }
        }
        if (ready) {
            if (!hold && (g.ended >= g.connected || g.open == 0))
                break;
            if (!hold && (double) (s_now_ns (CLOCK_MONOTONIC) - t_ready) / 1e9 > timeout)
                break;
        }
        int n = epoll_wait (g.epfd, evs, 512, 100);
        if (n < 0 && errno != EINTR)
            break;
        bool stdin_closed = false;
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                char tmp[256];
                if (read (0, tmp, sizeof (tmp)) <= 0)
                    stdin_closed = true;
                continue;
            }
            if (c->state != C_FAILED && c->fd >= 0)
                s_io (c, evs[i].events);
        }
        if (stdin_closed)
            break;
    }
    double window = 0;
    if (g.events && g.last_recv_ns > g.first_pub_ns)
        window = (double) (g.last_recv_ns - g.first_pub_ns) / 1e9;
    uint64_t total = 0;
    for (int i = 0; i < H_BUCKETS; i++)
        total += s_hist[i];
    printf ("clients=%d connected=%d errors=%d events=%" PRIu64 " events_per_s=%.0f "
            "p50_us=%" PRIu64 " p99_us=%" PRIu64 " max_us=%" PRIu64 " ended=%d window_s=%.3f\n",
            clients, g.connected, g.errors, g.events, window > 0 ? (double) g.events / window : 0,
            s_percentile (total, 0.50), s_percentile (total, 0.99), g.max_us, g.ended, window);
    fflush (stdout);
    for (int i = 0; i < clients; i++) {
        if (conns[i].fd >= 0)
            close (conns[i].fd);
        free (conns[i].buf);
    }
    free (conns);
    close (g.epfd);
    return 0;
}
