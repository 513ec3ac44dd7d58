/*  external_miner.c - a miner written outside the minerwatch tree.

    The install tests build it against an *installed* libminerwatch, once
    with only `pkg-config --cflags --libs minerwatch` and once through the
    CMake package (find_package(minerwatch)), so it must use nothing but the
    public header. It connects to ENDPOINT, waits for the receiver, publishes
    one complete task (plus a custom event) and exits 0 if every event was
    sent.

    Usage: external_miner ENDPOINT MINER_NAME
*/
#include <minerwatch.h>

#include <stdio.h>
#include <stdlib.h>

int
main (int argc, char *argv[])
{
    if (argc != 3) {
        fprintf (stderr, "usage: %s ENDPOINT MINER_NAME\n", argv[0]);
        return 2;
    }
    mw_publisher_t *pub = mw_publisher_new (argv[1], argv[2]);
    if (!pub) {
        fprintf (stderr, "external_miner: cannot create a publisher on %s\n", argv[1]);
        return 1;
    }
    int rc = 0;
    if (mw_publisher_wait_ready (pub, 10000) != 0) {
        fprintf (stderr, "external_miner: no subscriber on %s after 10 s\n", argv[1]);
        rc = 1;
        goto done;
    }
    const char *task = "ext-task-1";
    const char *hotkey = "5F3sa2TJAWMqDhXG6jhV4N8ko9SxwGy8TpaNS1repo5EYjQX";
    mw_kv_t details[] = {
        {.key = "page", .kind = MW_KV_STR, .val.s = {"https://example.com/login", (size_t) -1}},
    };
    mw_kv_t custom[] = {
        {.key = "gpu_temp_c", .kind = MW_KV_UINT, .val.u = 71},
    };
    int failed = 0;
    failed += mw_publisher_task_start (pub, task, "Login to example.com", "https://example.com",
                                       "45.22.240.79", hotkey, 30000) != 0;
    failed += mw_publisher_task_step (pub, task, "processing", details, 1) != 0;
    failed += mw_publisher_actions_generated (pub, task, 12, "click") != 0;
    failed += mw_publisher_task_complete (pub, task, true, 12, 5.2, NULL) != 0;
    failed += mw_publisher_send (pub, "ext_custom", task, custom, 1) != 0;
    printf ("external_miner: libminerwatch %s, sent %llu, dropped %llu, sid %llu\n", mw_version (),
            (unsigned long long) mw_publisher_sent (pub),
            (unsigned long long) mw_publisher_dropped (pub),
            (unsigned long long) mw_publisher_sid (pub));
    if (failed || mw_publisher_sent (pub) != 5) {
        fprintf (stderr, "external_miner: %d of 5 events were not sent\n", failed);
        rc = 1;
    }
done:
    mw_publisher_destroy (&pub);
    return rc;
}
