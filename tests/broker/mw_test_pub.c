/*  mw_test_pub.c - a deterministic miner for the broker tests.

    Usage: mw_test_pub ENDPOINT MINER TASKS [RATE] [--big] [--hostile]

    Publishes TASKS task lifecycles through libminerwatch, with every event
    type of the protocol mixed in: most tasks complete (some fail, some get
    feedback or a cache hit), every 7th never completes (it stays active),
    and custom types and keys ride along. RATE is events per second (0 or
    absent: as fast as the publisher takes them). --big makes prompts long
    (over the 4 KiB string limit, so they are truncated) to grow the
    snapshot; --hostile puts terminal escapes and bidi overrides in prompts.

    Prints "sent=N dropped=D" on stdout at the end: the test driver counts
    on exactly N events reaching the broker. Exit 0, or 1 if the broker
    never subscribed.
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
s_pace (double start, uint64_t events, double rate)
{
    if (rate <= 0)
        return;
    double due = start + (double) events / rate;
    double now = s_now ();
    if (due > now + 0.0005) {
        double wait = due - now;
        struct timespec ts = {(time_t) wait, (long) ((wait - (double) (time_t) wait) * 1e9)};
        nanosleep (&ts, NULL);
    }
}

int
main (int argc, char **argv)
{
    if (argc < 4) {
        fprintf (stderr, "usage: mw_test_pub ENDPOINT MINER TASKS [RATE] [--big] [--hostile]\n");
        return 2;
    }
    const char *endpoint = argv[1];
    const char *miner = argv[2];
    long tasks = strtol (argv[3], NULL, 10);
    double rate = 0;
    bool big = false, hostile = false;
    for (int i = 4; i < argc; i++) {
        if (!strcmp (argv[i], "--big"))
            big = true;
        else if (!strcmp (argv[i], "--hostile"))
            hostile = true;
        else
            rate = strtod (argv[i], NULL);
    }
    mw_publisher_t *pub = mw_publisher_new_opts (endpoint, miner, 100000, 10000);
    if (!pub)
        return 1;
    if (mw_publisher_wait_ready (pub, 10000) != 0) {
        fprintf (stderr, "mw_test_pub: nobody subscribed at %s within 10 s\n", endpoint);
        mw_publisher_destroy (&pub);
        return 1;
    }
    static const char *ips[] = {"45.22.240.79", "84.247.180.192", "10.0.0.7"};
    static const char *hotkeys[] = {"5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
                                    "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", NULL};
    static const char *steps[] = {"received", "processing", "generating actions", "verifying"};
    char *prompt = (char *) malloc (6000);
    char task_id[64];
    double start = s_now ();
    uint64_t events = 0;
    for (long i = 0; i < tasks; i++) {
        snprintf (task_id, sizeof (task_id), "%s-task-%06ld", miner, i);
        if (big) {
            //  Over MW_MAX_STR: the publisher truncates it (and says so).
            int n = snprintf (prompt, 6000, "Task %ld: ", i);
            for (int k = n; k < 5000; k++)
                prompt[k] = (char) ('a' + (i + k) % 26);
            prompt[5000] = 0;
        }
        else if (hostile && i % 3 == 0)
            snprintf (prompt, 6000,
                      "Login \x1b]0;pwned\x07 to \x1b[2Jexample-%ld.com \xe2\x80\xae"
                      "evil\xe2\x80\xac <script>alert(1)</script>",
                      i);
        else
            snprintf (prompt, 6000, "Login to example-%ld.com and open the settings page", i);
        const char *ip = ips[i % 3];
        const char *hk = hotkeys[i % 3];
        mw_publisher_task_start (pub, task_id, prompt, "https://example.com/login", ip, hk,
                                 i % 4 == 0 ? 60000 : 0);
        s_pace (start, ++events, rate);
        if (i % 10 == 0) {
            mw_publisher_validator_connection (pub, ip, hk, "tcp://127.0.0.1:8091");
            s_pace (start, ++events, rate);
        }
        mw_kv_t details[] = {{"attempt", MW_KV_UINT, {.u = (uint64_t) i % 3}},
                             {"note", MW_KV_STR, {.s = {"looks fine", (size_t) -1}}}};
        mw_publisher_task_step (pub, task_id, steps[i % 4], details, 2);
        s_pace (start, ++events, rate);
        mw_publisher_actions_generated (pub, task_id, (uint64_t) (i % 17), "click");
        s_pace (start, ++events, rate);
        if (i % 6 == 0) {
            mw_publisher_cache_hit (pub, task_id, "prompt");
            s_pace (start, ++events, rate);
        }
        if (i % 11 == 0) {
            mw_kv_t kv[] = {{"queue_depth", MW_KV_UINT, {.u = (uint64_t) i}},
                            {"gpu", MW_KV_DOUBLE, {.d = 0.5 + (double) (i % 10) / 20.0}}};
            mw_publisher_send (pub, "my_metric", task_id, kv, 2);
            s_pace (start, ++events, rate);
        }
        if (i % 13 == 0) {
            mw_publisher_error (pub, "upstream timed out", i % 2 ? task_id : NULL, "timeout");
            s_pace (start, ++events, rate);
        }
        if (i % 7 == 6)
            continue; //  never completes: stays active
        bool ok = i % 5 != 4;
        mw_publisher_task_complete (pub, task_id, ok, (int64_t) (i % 17),
                                    i % 2 ? 0.2 + (double) (i % 50) / 10.0 : MW_ABSENT,
                                    ok ? NULL : "element not found");
        s_pace (start, ++events, rate);
        if (i % 3 == 0) {
            mw_publisher_task_feedback (pub, task_id, (double) (i % 10) / 10.0, 1.5, hk);
            s_pace (start, ++events, rate);
        }
    }
    printf ("sent=%" PRIu64 " dropped=%" PRIu64 "\n", mw_publisher_sent (pub),
            mw_publisher_dropped (pub));
    fflush (stdout);
    mw_publisher_destroy (&pub);
    free (prompt);
    return 0;
}
