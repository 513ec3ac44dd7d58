/*  interop_pub.c - publish every event type of CONTRACT.md, with all its
    optional keys, then with none, plus a custom type and a truncation case.

    Usage: mw_interop_pub ENDPOINT

    Driven by interop_sub.py, which subscribes with Debian's python3-zmq and
    decodes with python3-msgpack (not our decoder) and checks every key,
    value and msgpack type. The two files list the same events in the same
    order. Exit 0 if every event was sent, 1 if not, 2 on bad usage.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_publisher.h"

#define HOTKEY "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "usage: %s ENDPOINT\n", argv[0]);
        return 2;
    }
    mw_publisher_t *pub = mw_publisher_new_opts (argv[1], "interop-miner", 1000, 5000);
    if (!pub)
        return 1;
    if (mw_publisher_wait_ready (pub, 30000) != 0) {
        fprintf (stderr, "interop_pub: no subscriber within 30 s on %s\n", argv[1]);
        mw_publisher_destroy (&pub);
        return 1;
    }
    int failed = 0;

    //  1-9: every type with every optional key.
    failed +=
        mw_publisher_task_start (pub, "task-001", "Login to example.com and open settings",
                                 "https://example.com/login", "192.0.2.10", HOTKEY, 30000) != 0;
    mw_kv_t inner[] = {{.key = "depth", .kind = MW_KV_UINT, .val.u = 2}};
    mw_kv_t list[] = {{.kind = MW_KV_UINT, .val.u = 1},
                      {.kind = MW_KV_STR, .val.s = {"two", (size_t) -1}}};
    mw_kv_t details[] = {
        {.key = "model", .kind = MW_KV_STR, .val.s = {"gpt-4o", (size_t) -1}},
        {.key = "tokens", .kind = MW_KV_UINT, .val.u = 512},
        {.key = "delta", .kind = MW_KV_INT, .val.i = -3},
        {.key = "temperature", .kind = MW_KV_DOUBLE, .val.d = 0.25},
        {.key = "cached", .kind = MW_KV_BOOL, .val.b = true},
        {.key = "none", .kind = MW_KV_NIL},
        {.key = "inner", .kind = MW_KV_MAP, .val.list = {inner, 1}},
        {.key = "list", .kind = MW_KV_ARRAY, .val.list = {list, 2}},
    };
    failed += mw_publisher_task_step (pub, "task-001", "planning", details, 8) != 0;
    failed += mw_publisher_actions_generated (pub, "task-001", 7, "click") != 0;
    failed += mw_publisher_task_complete (pub, "task-001", true, 7, 2.5, NULL) != 0;
    failed += mw_publisher_task_complete (pub, "task-002", false, 0, 0.75,
                                          "TimeoutError: page did not load") != 0;
    failed += mw_publisher_task_feedback (pub, "task-001", 0.875, 3.25, HOTKEY) != 0;
    failed +=
        mw_publisher_validator_connection (pub, "192.0.2.10", HOTKEY, "tcp://192.0.2.10:8091") != 0;
    failed += mw_publisher_cache_hit (pub, "task-001", "prompt") != 0;
    failed += mw_publisher_error (pub, "browser crashed", "task-001", "RuntimeError") != 0;

    //  10: a custom type with custom keys of every kind, nested.
    mw_kv_t layers[] = {{.kind = MW_KV_UINT, .val.u = 32}, {.kind = MW_KV_UINT, .val.u = 40}};
    mw_kv_t opts[] = {{.key = "quant", .kind = MW_KV_STR, .val.s = {"q4", (size_t) -1}}};
    mw_kv_t custom_details[] = {
        {.key = "gpu", .kind = MW_KV_STR, .val.s = {"A100", (size_t) -1}},
        {.key = "layers", .kind = MW_KV_ARRAY, .val.list = {layers, 2}},
        {.key = "opts", .kind = MW_KV_MAP, .val.list = {opts, 1}},
    };
    mw_kv_t custom[] = {
        {.key = "model", .kind = MW_KV_STR, .val.s = {"llama-3-8b", 10}},
        {.key = "load_ms", .kind = MW_KV_UINT, .val.u = 1234},
        {.key = "warm", .kind = MW_KV_BOOL, .val.b = false},
        {.key = "offset", .kind = MW_KV_INT, .val.i = -42},
        {.key = "ratio", .kind = MW_KV_DOUBLE, .val.d = 0.5},
        {.key = "details", .kind = MW_KV_MAP, .val.list = {custom_details, 3}},
    };
    failed += mw_publisher_send (pub, "model_loaded", "task-001", custom, 6) != 0;

    //  11-18: every type with its required keys only.
    failed += mw_publisher_task_start (pub, "task-003", NULL, NULL, NULL, NULL, 0) != 0;
    failed += mw_publisher_task_step (pub, "task-003", "done", NULL, 0) != 0;
    failed += mw_publisher_actions_generated (pub, "task-003", 0, NULL) != 0;
    failed += mw_publisher_task_complete (pub, "task-003", true, -1, MW_ABSENT, NULL) != 0;
    failed += mw_publisher_task_feedback (pub, "task-003", MW_ABSENT, MW_ABSENT, NULL) != 0;
    failed += mw_publisher_validator_connection (pub, NULL, HOTKEY, NULL) != 0;
    failed += mw_publisher_cache_hit (pub, "task-003", NULL) != 0;
    failed += mw_publisher_error (pub, "disk full", NULL, NULL) != 0;

    //  19: over-long task_id and prompt (2-byte UTF-8 characters).
    char task_id[201];
    memset (task_id, 'T', 200);
    task_id[200] = 0;
    char *prompt = (char *) malloc (5001);
    if (!prompt)
        return 1;
    for (int i = 0; i < 2500; i++)
        memcpy (prompt + 2 * i, "\xc3\xa9", 2); //  U+00E9
    prompt[5000] = 0;
    failed += mw_publisher_task_start (pub, task_id, prompt, NULL, NULL, NULL, 0) != 0;
    free (prompt);

    printf ("sent %llu dropped %llu truncated %llu\n", (unsigned long long) mw_publisher_sent (pub),
            (unsigned long long) mw_publisher_dropped (pub),
            (unsigned long long) mw_publisher_truncated (pub));
    mw_publisher_destroy (&pub); //  waits up to the linger for delivery
    return failed ? 1 : 0;
}
