/*  gw_harness.c - serve a synthetic state with mw_http, for the HTTP tests.

    Usage: gw_harness [--recent N] [--events N] [--OPTION VALUE ...]

    Options other than --recent (the state's recent-events ring) and
    --events (events folded in before serving) are mw_http options
    ("--http 127.0.0.1:0", "--auth-token T", "--insecure", ...). The
    harness plays the mirror: it folds generated events into a state with
    mw_state_apply, renders each event once and pushes it, then hands the
    server a status render and the metrics, as the mirror does.

    It prints "PORT <n>" once serving, then reads commands on stdin, one per
    line, and answers each with one line starting "OK" (or "ERR"):
      events N        fold and push N events of every type; "OK <last id>"
      tasks N         fold and push N whole tasks
      tick            advance the broker clock 1 s and tick
      reset REASON    tell SSE clients to resync, then hand a fresh status
      link up|down    set the broker link
      stats           "OK key=value ..." of the server's counters
      quit            stop ("OK" then exit 0)
    A bad configuration prints "ERR <message>" and exits 2.
*/
#include "gw_synth.h"
#include "mw_http.h"
#include "mw_render.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    mw_http_t *http;
    gw_synth_t feed;
    mw_buf_t json;
    uint64_t epoch;
    mw_http_link_t link;
    int failures;
} harness_t;

//  Called by the feed after each apply: render once, push.
static void
s_on_event (const mw_event_t *ev, void *arg)
{
    harness_t *h = (harness_t *) arg;
    mw_buf_reset (&h->json);
    if (mw_json_event_ex (&h->json, ev, MW_JSON_SID_STRING) != 0 ||
        mw_http_push_event (h->http, ev, h->json.data, h->json.len) != 0)
        h->failures++;
}

static void
s_publish (harness_t *h)
{
    mw_buf_t status = MW_BUF_INIT;
    mw_render_index_t ix;
    mw_render_index_init (&ix);
    mw_render_opts_t opts = {.epoch = h->epoch};
    if (mw_render_status (&status, h->feed.state, &opts, &ix) != 0 ||
        mw_http_set_status (h->http, &status, &ix, mw_state_last_id (h->feed.state), h->epoch) != 0)
        h->failures++;
    mw_buf_release (&status);
    mw_render_index_release (&ix);
    mw_buf_t metrics = MW_BUF_INIT;
    if (mw_render_metrics (&metrics, h->feed.state, NULL) != 0 ||
        mw_http_set_metrics (h->http, &metrics) != 0)
        h->failures++;
    mw_buf_release (&metrics);
    h->link.last_id = mw_state_last_id (h->feed.state);
    h->link.last_heartbeat_ms = mw_http_now_ms ();
    mw_http_set_link (h->http, &h->link);
}

int
main (int argc, char **argv)
{
    mw_http_config_t cfg;
    mw_http_config_default (&cfg);
    cfg.port = 0;
    cfg.quiet = true;
    cfg.log_name = "gw_harness";
    mw_state_config_t state_cfg;
    mw_state_config_default (&state_cfg);
    uint64_t initial = 200;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp (arg, "--", 2) != 0) {
            printf ("ERR unexpected argument '%s'\n", arg);
            return 2;
        }
        const char *key = arg + 2;
        bool is_bool = false;
        if (!strcmp (key, "recent") || !strcmp (key, "events")) {
            if (i + 1 >= argc) {
                printf ("ERR --%s needs a value\n", key);
                return 2;
            }
            uint64_t v = strtoull (argv[++i], NULL, 10);
            if (!strcmp (key, "recent"))
                state_cfg.recent_events = (uint32_t) v;
            else
                initial = v;
            continue;
        }
        if (!strcmp (key, "verbose")) {
            cfg.quiet = false;
            continue;
        }
        if (!mw_http_config_known (key, &is_bool)) {
            printf ("ERR unknown option '%s'\n", arg);
            return 2;
        }
        const char *value = NULL;
        if (!is_bool) {
            if (i + 1 >= argc) {
                printf ("ERR --%s needs a value\n", key);
                return 2;
            }
            value = argv[++i];
        }
        if (mw_http_config_set (&cfg, key, value, err, sizeof (err)) != 0) {
            printf ("ERR %s\n", err);
            return 2;
        }
    }
    harness_t h;
    memset (&h, 0, sizeof (h));
    h.epoch = 1714573935;
    if (gw_synth_init (&h.feed, &state_cfg) != 0) {
        printf ("ERR bad state configuration\n");
        return 2;
    }
    h.http = mw_http_new (&cfg, err, sizeof (err));
    if (!h.http) {
        printf ("ERR %s\n", err);
        fflush (stdout);
        gw_synth_release (&h.feed);
        return 2;
    }
    h.feed.fn = s_on_event;
    h.feed.arg = &h;
    h.link.up = true;
    h.link.epoch = h.epoch;
    gw_synth_events (&h.feed, initial);
    s_publish (&h);
    printf ("PORT %d\n", mw_http_port (h.http));
    fflush (stdout);

    char line[256];
    int rc = 0;
    while (fgets (line, sizeof (line), stdin)) {
        char cmd[32] = "", arg[64] = "";
        if (sscanf (line, "%31s %63s", cmd, arg) < 1)
            continue;
        if (!strcmp (cmd, "events") || !strcmp (cmd, "tasks")) {
            uint64_t n = strtoull (arg, NULL, 10);
            if (!strcmp (cmd, "events"))
                gw_synth_events (&h.feed, n);
            else
                for (uint64_t i = 0; i < n; i++)
                    gw_synth_task (&h.feed);
            s_publish (&h);
            printf ("OK %" PRIu64 "\n", mw_state_last_id (h.feed.state));
        }
        else if (!strcmp (cmd, "tick")) {
            gw_synth_tick (&h.feed, 1000);
            s_publish (&h);
            printf ("OK %" PRIu64 "\n", mw_state_last_id (h.feed.state));
        }
        else if (!strcmp (cmd, "reset")) {
            mw_http_push_reset (h.http, arg[0] ? arg : "resync");
            s_publish (&h);
            printf ("OK %" PRIu64 "\n", mw_state_last_id (h.feed.state));
        }
        else if (!strcmp (cmd, "link")) {
            h.link.up = strcmp (arg, "down") != 0;
            if (!h.link.up)
                h.link.link_downs++;
            h.link.last_heartbeat_ms = mw_http_now_ms ();
            mw_http_set_link (h.http, &h.link);
            printf ("OK\n");
        }
        else if (!strcmp (cmd, "stats")) {
            mw_render_gateway_t gw;
            mw_http_stats (h.http, &gw);
            printf ("OK sse_clients=%" PRIu64 " slow_closed=%" PRIu64 " fell_behind=%" PRIu64
                    " resets=%" PRIu64 " snapshots=%" PRIu64 " resumed=%" PRIu64
                    " rejected=%" PRIu64 " failures=%d\n",
                    gw.sse_clients, gw.sse_slow_closed, gw.sse_fell_behind, gw.sse_resets,
                    gw.sse_snapshots, gw.sse_resumed, gw.sse_rejected, h.failures);
        }
        else if (!strcmp (cmd, "quit")) {
            printf ("OK\n");
            fflush (stdout);
            break;
        }
        else
            printf ("ERR unknown command '%s'\n", cmd);
        fflush (stdout);
    }
    if (h.failures) {
        fprintf (stderr, "gw_harness: %d render or push failures\n", h.failures);
        rc = 1;
    }
    mw_http_destroy (&h.http);
    mw_buf_release (&h.json);
    gw_synth_release (&h.feed);
    return rc;
}
