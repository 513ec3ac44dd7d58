/*  pub_test_util.h - helpers shared by the publisher tests: a subscriber on
    a free loopback port, bounded waits, monotonic time.

    Everything here is static inline so each test program is one .c file.
    The tests only ever use 127.0.0.1 and ports the kernel picks (`*`).
*/
#ifndef PUB_TEST_UTIL_H_INCLUDED
#define PUB_TEST_UTIL_H_INCLUDED

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "mw_publisher.h"

//  assert() vanishes under NDEBUG (RelWithDebInfo): tests check with this.
#define PT_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf (stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);              \
            abort ();                                                                              \
        }                                                                                          \
    } while (0)

static inline int64_t
pt_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void
pt_sleep_ms (int ms)
{
    struct timespec ts = {ms / 1000, (long) (ms % 1000) * 1000000L};
    nanosleep (&ts, NULL);
}

//  A SUB socket bound to a free loopback port, subscribed to prefix.
//  rcvhwm 0 is unlimited. Writes ">tcp://127.0.0.1:PORT" (the endpoint a
//  publisher connects to) into connect_ep.
static inline void *
pt_sub_bind (void *ctx, const char *prefix, int rcvhwm, char *connect_ep, size_t size)
{
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    PT_CHECK (sub);
    int zero = 0;
    zmq_setsockopt (sub, ZMQ_LINGER, &zero, sizeof (zero));
    zmq_setsockopt (sub, ZMQ_RCVHWM, &rcvhwm, sizeof (rcvhwm));
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, prefix, strlen (prefix));
    int rc = zmq_bind (sub, "tcp://127.0.0.1:*");
    PT_CHECK (rc == 0);
    char ep[256];
    size_t len = sizeof (ep);
    zmq_getsockopt (sub, ZMQ_LAST_ENDPOINT, ep, &len);
    snprintf (connect_ep, size, ">%s", ep);
    return sub;
}

//  A loopback TCP port nobody listens on: bind one, note it, close it.
static inline int
pt_free_port (void *ctx)
{
    void *s = zmq_socket (ctx, ZMQ_PULL);
    PT_CHECK (s);
    int zero = 0;
    zmq_setsockopt (s, ZMQ_LINGER, &zero, sizeof (zero));
    int rc = zmq_bind (s, "tcp://127.0.0.1:*");
    PT_CHECK (rc == 0);
    char ep[256];
    size_t len = sizeof (ep);
    zmq_getsockopt (s, ZMQ_LAST_ENDPOINT, ep, &len);
    zmq_close (s);
    const char *colon = strrchr (ep, ':');
    PT_CHECK (colon);
    return atoi (colon + 1);
}

//  Let a SUB socket process its commands (its subscription only goes out
//  to a new connection when the owning thread touches the socket) while
//  waiting up to timeout_ms for the publisher to see it. Return 0 or -1.
static inline int
pt_wait_ready (mw_publisher_t *pub, void *sub, int timeout_ms)
{
    int64_t deadline = pt_now_ms () + timeout_ms;
    while (pt_now_ms () < deadline) {
        zmq_pollitem_t item = {sub, 0, ZMQ_POLLIN, 0};
        zmq_poll (&item, 1, 0);
        if (mw_publisher_wait_ready (pub, 5) == 0)
            return 0;
    }
    return -1;
}

#endif
