/*  fault_pub.c - a miner for the fault injection tests: publishes through
    libminerwatch for a while, then proves where its stream ended.

    Usage: fault_pub ENDPOINT MINER SECONDS RATE

    Sends task lifecycles (task_start, task_step, actions_generated,
    task_complete) for SECONDS at RATE events per second (0: as fast as
    the publisher takes them), whether or not a broker is there (events
    nobody can take are dropped and counted by the publisher). Then it
    sends one final event, retrying every 50 ms for up to 30 s until it is
    sent, so that any event dropped before it shows at the broker as a
    sequence gap: after that, the broker's events + lost for this miner
    equal `seq` exactly.

    Prints "sent=N dropped=D seq=S final=0|1" on stdout; a progress line
    "progress sent=N dropped=D" on stderr every second. Exit 0, 1 if the
    final event could not be sent, 2 on bad usage.
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

static void
s_sleep (double seconds)
{
    struct timespec ts = {(time_t) seconds, (long) ((seconds - (double) (time_t) seconds) * 1e9)};
    nanosleep (&ts, NULL);
}

int
main (int argc, char **argv)
{
    if (argc != 5 || !strcmp (argv[1], "--help")) {
        fprintf (argc == 2 ? stdout : stderr, "usage: fault_pub ENDPOINT MINER SECONDS RATE\n");
        return argc == 2 ? 0 : 2;
    }
    const char *endpoint = argv[1];
    const char *miner = argv[2];
    double seconds = strtod (argv[3], NULL);
    double rate = strtod (argv[4], NULL);
    if (seconds <= 0 || seconds > 3600 || rate < 0) {
        fprintf (stderr, "fault_pub: SECONDS in (0, 3600], RATE >= 0\n");
        return 2;
    }
    //  A long linger: what was sent is flushed before exit.
    mw_publisher_t *pub = mw_publisher_new_opts (endpoint, miner, MW_PUBLISHER_SNDHWM, 10000);
    if (!pub)
        return 1;
    mw_publisher_wait_ready (pub, 5000);
    double start = s_now ();
    double next_report = start + 1;
    uint64_t events = 0;
    char task_id[64];
    for (uint64_t t = 0;; t++) {
        double now = s_now ();
        if (now - start >= seconds)
            break;
        if (now >= next_report) {
            fprintf (stderr, "progress sent=%" PRIu64 " dropped=%" PRIu64 "\n",
                     mw_publisher_sent (pub), mw_publisher_dropped (pub));
            next_report += 1;
        }
        snprintf (task_id, sizeof (task_id), "%s-%08" PRIu64, miner, t);
        mw_publisher_task_start (pub, task_id, "Open the settings page", "https://example.com",
                                 "45.22.240.79", "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
                                 60000);
        mw_publisher_task_step (pub, task_id, "processing", NULL, 0);
        mw_publisher_actions_generated (pub, task_id, 3, "click");
        mw_publisher_task_complete (pub, task_id, t % 5 != 4, 3, 0.25,
                                    t % 5 != 4 ? NULL : "element not found");
        events += 4;
        if (rate > 0) {
            double due = start + (double) events / rate;
            double left = due - s_now ();
            if (left > 0.0005)
                s_sleep (left);
        }
    }
    //  The final event: once it is sent, every earlier drop is a gap the
    //  broker can see.
    int final_sent = 0;
    for (int i = 0; i < 600 && !final_sent; i++) {
        if (mw_publisher_send (pub, "fault_final", NULL, NULL, 0) == 0)
            final_sent = 1;
        else
            s_sleep (0.05);
    }
    uint64_t sent = mw_publisher_sent (pub), dropped = mw_publisher_dropped (pub);
    printf ("sent=%" PRIu64 " dropped=%" PRIu64 " seq=%" PRIu64 " final=%d\n", sent, dropped,
            sent + dropped, final_sent);
    fflush (stdout);
    mw_publisher_destroy (&pub);
    return final_sent ? 0 : 1;
}
