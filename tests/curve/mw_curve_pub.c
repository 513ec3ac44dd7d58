/*  mw_curve_pub.c - a miner for the CURVE tests: libminerwatch as a CURVE
    client of a real broker.

    Usage: mw_curve_pub ENDPOINT MINER COUNT RATE SERVER_KEY CLIENT_CERT WAIT_MS

    SERVER_KEY and CLIENT_CERT as mw_publisher_new_curve takes them, "-" for
    NULL. Waits up to WAIT_MS for the broker to subscribe (not an error if it
    never does: that is what some cases expect), then publishes COUNT
    task_start events (task ids MINER-0, MINER-1, ...) at RATE per second
    (0: as fast as they go), and prints

        ready=R sent=S dropped=D connections=C

    (C: live connections at the end, mw_publisher_connections). Exit 0, or
    1 if the publisher could not be created (the library said why).
*/
#include "mw_publisher.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static const char *
s_arg (const char *arg)
{
    return strcmp (arg, "-") == 0 ? NULL : arg;
}

int
main (int argc, char **argv)
{
    if (argc != 8) {
        fprintf (stderr, "usage: mw_curve_pub ENDPOINT MINER COUNT RATE SERVER_KEY|- "
                         "CLIENT_CERT|- WAIT_MS\n");
        return 2;
    }
    const char *miner = argv[2];
    long count = strtol (argv[3], NULL, 10);
    double rate = strtod (argv[4], NULL);
    int wait_ms = atoi (argv[7]);
    mw_publisher_t *pub =
        mw_publisher_new_curve (argv[1], miner, 10000, 2000, s_arg (argv[5]), s_arg (argv[6]));
    if (!pub)
        return 1;
    int ready = mw_publisher_wait_ready (pub, wait_ms) == 0;
    double start = s_now ();
    char task_id[128];
    for (long i = 0; i < count; i++) {
        if (rate > 0) {
            double due = start + (double) i / rate;
            double wait = due - s_now ();
            if (wait > 0) {
                struct timespec ts = {(time_t) wait,
                                      (long) ((wait - (double) (time_t) wait) * 1e9)};
                nanosleep (&ts, NULL);
            }
        }
        snprintf (task_id, sizeof (task_id), "%s-%ld", miner, i);
        mw_publisher_task_start (pub, task_id, "Login to example.com", "https://example.com",
                                 "10.0.0.7", NULL, 0);
    }
    printf ("ready=%d sent=%" PRIu64 " dropped=%" PRIu64 " connections=%d\n", ready,
            mw_publisher_sent (pub), mw_publisher_dropped (pub), mw_publisher_connections (pub));
    fflush (stdout);
    mw_publisher_destroy (&pub);
    return 0;
}
