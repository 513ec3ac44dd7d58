/*  test_render.c - unit tests of gateway/mw_render (cmocka), the JSON read
    back with jansson.
*/
#define _GNU_SOURCE //  memrchr
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_synth.h"
#include "mw_render.h"

static json_t *
s_parse (const char *text, size_t len)
{
    json_error_t err;
    json_t *root = json_loadb (text, len, 0, &err);
    if (!root)
        fprintf (stderr, "JSON error: %s at %d: %.80s\n", err.text, err.position,
                 text + (err.position > 40 ? err.position - 40 : 0));
    assert_non_null (root);
    return root;
}

static json_t *
s_get (json_t *obj, const char *key)
{
    json_t *v = json_object_get (obj, key);
    if (!v)
        fprintf (stderr, "missing key %s\n", key);
    assert_non_null (v);
    return v;
}

static void
test_status_empty (void **unused)
{
    mw_state_t *st = mw_state_new (NULL);
    assert_non_null (st);
    mw_buf_t buf = MW_BUF_INIT;
    mw_render_index_t ix;
    mw_render_index_init (&ix);
    assert_int_equal (mw_render_status (&buf, st, NULL, &ix), 0);
    assert_null (memchr (buf.data, '\n', buf.len));
    json_t *root = s_parse (buf.data, buf.len);
    const char *keys[] = {"id",
                          "timestamp",
                          "timestamp_ms",
                          "total_events",
                          "active_task_count",
                          "active_tasks",
                          "recent_events",
                          "recent_validator_activity",
                          "stats",
                          "validators",
                          "miners",
                          "task_history",
                          "bounds"};
    for (size_t i = 0; i < sizeof (keys) / sizeof (keys[0]); i++)
        s_get (root, keys[i]);
    assert_null (json_object_get (root, "epoch"));
    assert_int_equal (json_integer_value (s_get (root, "id")), 0);
    assert_int_equal (json_array_size (s_get (root, "recent_events")), 0);
    assert_int_equal (ix.count, 0);
    assert_int_equal (buf.data[ix.begin - 1], '[');
    assert_int_equal (buf.data[ix.end], ']');
    json_decref (root);
    mw_render_index_release (&ix);
    mw_buf_release (&buf);
    mw_state_destroy (&st);
}

static void
test_status_full (void **unused)
{
    gw_synth_t feed;
    mw_state_config_t cfg;
    mw_state_config_default (&cfg);
    cfg.recent_events = 100;
    assert_int_equal (gw_synth_init (&feed, &cfg), 0);
    for (int i = 0; i < 60; i++)
        gw_synth_task (&feed);
    gw_synth_events (&feed, 40);
    //  Tasks left open: started, a step, no end.
    uint64_t t = ++feed.tasks;
    gw_synth_event (&feed, "task_start", 3, t);
    gw_synth_event (&feed, "task_step", 3, t);
    uint64_t last = gw_synth_tick (&feed, 1000);
    assert_true (last > 0);

    mw_buf_t buf = MW_BUF_INIT;
    mw_buf_puts (&buf, "prefix:"); //  a render need not start at 0
    mw_render_index_t ix;
    mw_render_index_init (&ix);
    mw_render_opts_t opts = {.epoch = 42};
    assert_int_equal (mw_render_status (&buf, feed.state, &opts, &ix), 0);
    const char *json = buf.data + 7;
    size_t json_len = buf.len - 7;
    assert_null (memchr (json, '\n', json_len));
    assert_null (memchr (json, '<', json_len)); //  markup is escaped
    json_t *root = s_parse (json, json_len);
    assert_int_equal (json_integer_value (s_get (root, "id")), (json_int_t) last);
    assert_string_equal (json_string_value (s_get (root, "epoch")), "000000000000002a");
    char iso[MW_JSON_TIME_SIZE];
    mw_json_format_time (iso, sizeof (iso), feed.now * 1000);
    assert_string_equal (json_string_value (s_get (root, "timestamp")), iso);
    assert_int_equal (json_integer_value (s_get (root, "timestamp_ms")), (json_int_t) feed.now);
    json_t *active = s_get (root, "active_tasks");
    assert_int_equal (json_array_size (active),
                      json_integer_value (s_get (root, "active_task_count")));
    assert_true (json_array_size (active) >= 1);
    const char *task_keys[] = {
        "task_id",          "miner",      "prompt", "url",          "validator_ip",
        "validator_hotkey", "start_time", "status", "current_step", "actions_generated",
        "elapsed_ms",       "deadline"};
    json_t *task = json_array_get (active, json_array_size (active) - 1);
    for (size_t i = 0; i < sizeof (task_keys) / sizeof (task_keys[0]); i++)
        s_get (task, task_keys[i]);
    assert_string_equal (json_string_value (s_get (task, "status")), "active");
    assert_string_equal (json_string_value (s_get (task, "current_step")), "processing\nline two");
    //  The hostile miner name reads back with U+FFFD for the invalid byte.
    assert_string_equal (json_string_value (s_get (task, "miner")),
                         "evil\"<script>alert(1)</script>\\\n\x01\xef\xbf\xbd");

    json_t *events = s_get (root, "recent_events");
    assert_int_equal (json_array_size (events), 100);
    assert_int_equal (ix.count, 100);
    json_int_t prev = INT64_MAX;
    for (size_t i = 0; i < json_array_size (events); i++) {
        json_t *ev = json_array_get (events, i);
        json_int_t id = json_integer_value (s_get (ev, "id"));
        assert_true (id < prev);
        assert_int_equal ((uint64_t) id, ix.ids[i]);
        prev = id;
        assert_true (json_is_string (s_get (ev, "sid")));
        s_get (ev, "time");
        s_get (ev, "type");
    }
    //  sid as a string keeps all 64 bits.
    int found = 0;
    json_t *miners = s_get (root, "miners");
    for (size_t i = 0; i < json_array_size (miners); i++) {
        json_t *m = json_array_get (miners, i);
        assert_true (json_is_string (s_get (m, "sid")));
        if (strcmp (json_string_value (s_get (m, "miner")), "miner-a") == 0) {
            assert_string_equal (json_string_value (s_get (m, "sid")), "18446744073709551557");
            found = 1;
        }
    }
    assert_true (found);
    assert_true (json_array_size (s_get (root, "task_history")) > 0);
    json_t *hist0 = json_array_get (s_get (root, "task_history"), 0);
    s_get (hist0, "end_time");
    s_get (hist0, "response_time");
    assert_true (json_array_size (s_get (root, "validators")) > 0);
    assert_true (json_array_size (s_get (root, "recent_validator_activity")) > 0);
    json_t *stats = s_get (root, "stats");
    assert_int_equal (json_integer_value (s_get (stats, "total_events")),
                      json_integer_value (s_get (root, "total_events")));
    s_get (s_get (stats, "events_by_type"), "custom");

    //  Every cut of the render is valid JSON with the right events.
    uint64_t sinces[] = {0, ix.ids[0], ix.ids[0] - 1, ix.ids[50], ix.ids[99], ix.ids[99] - 1, 1};
    size_t limits[] = {0, 1, 50, 100, 1000};
    mw_buf_t cut = MW_BUF_INIT;
    for (size_t s = 0; s < sizeof (sinces) / sizeof (sinces[0]); s++)
        for (size_t l = 0; l < sizeof (limits) / sizeof (limits[0]); l++) {
            mw_render_range_t r[3];
            size_t kept = mw_render_select (&ix, buf.len, sinces[s], limits[l], r);
            mw_buf_reset (&cut);
            for (int k = 0; k < 3; k++)
                mw_buf_append (&cut, buf.data + r[k].off, r[k].len);
            json_t *part = s_parse (cut.data, cut.len);
            json_t *pev = s_get (part, "recent_events");
            assert_int_equal (json_array_size (pev), kept);
            size_t newer = 0;
            while (newer < ix.count && ix.ids[newer] > sinces[s])
                newer++;
            assert_int_equal (kept, newer < limits[l] ? newer : limits[l]);
            for (size_t i = 0; i < kept; i++)
                assert_int_equal (json_integer_value (s_get (json_array_get (pev, i), "id")),
                                  (json_int_t) ix.ids[i]);
            assert_int_equal (json_integer_value (s_get (part, "id")), (json_int_t) last);
            json_decref (part);
        }
    mw_buf_release (&cut);
    json_decref (root);
    mw_render_index_release (&ix);
    mw_buf_release (&buf);
    gw_synth_release (&feed);
}

static void
test_label (void **unused)
{
    mw_buf_t buf = MW_BUF_INIT;
    const char in[] = "a\\b\"c\nd\x01\xff\xc3\xa9";
    assert_int_equal (mw_render_label (&buf, in, sizeof (in) - 1), 0);
    assert_string_equal (buf.data, "a\\\\b\\\"c\\nd\\\\x01\xef\xbf\xbd\xc3\xa9");
    mw_buf_release (&buf);
}

static void
test_metrics (void **unused)
{
    gw_synth_t feed;
    assert_int_equal (gw_synth_init (&feed, NULL), 0);
    for (int i = 0; i < 30; i++)
        gw_synth_task (&feed);
    gw_synth_events (&feed, 20);
    mw_buf_t buf = MW_BUF_INIT;
    mw_render_gateway_t gw;
    memset (&gw, 0, sizeof (gw));
    gw.heartbeat_age_ms = UINT64_MAX;
    gw.sse_clients = 3;
    gw.http_responses[mw_render_http_slot (404)] = 7;
    gw.http_responses[mw_render_http_slot (299)] = 1;
    assert_int_equal (mw_render_metrics (&buf, feed.state, &gw), 0);
    const char *text = buf.data;
    assert_non_null (strstr (text, "\nminerwatch_events_total{type=\"task_start\"} "));
    assert_non_null (strstr (text, "# TYPE minerwatch_task_response_seconds histogram\n"));
    mw_stats_t st;
    mw_state_stats (feed.state, &st);
    assert_true (st.response.count >= 30);
    char want[128];
    snprintf (want, sizeof (want),
              "minerwatch_task_response_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
              st.response.count);
    assert_non_null (strstr (text, want));
    snprintf (want, sizeof (want), "minerwatch_task_response_seconds_count %" PRIu64 "\n",
              st.response.count);
    assert_non_null (strstr (text, want));
    assert_non_null (strstr (text, "minerwatch_gateway_sse_clients 3\n"));
    assert_non_null (strstr (text, "minerwatch_gateway_http_responses_total{code=\"404\"} 7\n"));
    assert_non_null (strstr (text, "minerwatch_gateway_http_responses_total{code=\"other\"} 1\n"));
    assert_null (strstr (text, "heartbeat_age")); //  no heartbeat yet: left out
    assert_non_null (strstr (
        text, "minerwatch_miner_events_total{miner=\"evil\\\"<script>alert(1)</script>\\\\\\n"));
    //  Every line is a comment or starts with minerwatch_; cumulative buckets.
    uint64_t prev = 0;
    for (const char *line = text; *line;) {
        const char *nl = strchr (line, '\n');
        assert_non_null (nl);
        assert_true (*line == '#' || strncmp (line, "minerwatch_", 11) == 0);
        if (strncmp (line, "minerwatch_task_response_seconds_bucket", 39) == 0) {
            const char *sp = memrchr (line, ' ', (size_t) (nl - line));
            uint64_t n = strtoull (sp + 1, NULL, 10);
            assert_true (n >= prev);
            prev = n;
        }
        line = nl + 1;
    }
    //  The two parts separately add up to the whole.
    mw_buf_t a = MW_BUF_INIT, b = MW_BUF_INIT;
    assert_int_equal (mw_render_metrics (&a, feed.state, NULL), 0);
    assert_int_equal (mw_render_metrics (&b, NULL, &gw), 0);
    assert_int_equal (a.len + b.len, buf.len);
    mw_buf_release (&a);
    mw_buf_release (&b);
    mw_buf_release (&buf);
    gw_synth_release (&feed);
}

static void
test_health (void **unused)
{
    mw_render_gateway_t gw;
    memset (&gw, 0, sizeof (gw));
    gw.heartbeat_age_ms = UINT64_MAX;
    mw_buf_t buf = MW_BUF_INIT;
    assert_int_equal (mw_render_health (&buf, &gw), 0);
    json_t *root = s_parse (buf.data, buf.len);
    assert_string_equal (json_string_value (s_get (root, "broker")), "down");
    assert_true (json_is_null (s_get (root, "last_heartbeat_age_ms")));
    json_decref (root);
    mw_buf_reset (&buf);
    gw.broker_up = true;
    gw.heartbeat_age_ms = 250;
    gw.last_id = 99;
    gw.broker_epoch = 7;
    assert_int_equal (mw_render_health (&buf, &gw), 0);
    root = s_parse (buf.data, buf.len);
    assert_string_equal (json_string_value (s_get (root, "status")), "ok");
    assert_int_equal (json_integer_value (s_get (root, "last_heartbeat_age_ms")), 250);
    assert_int_equal (json_integer_value (s_get (root, "last_id")), 99);
    assert_string_equal (json_string_value (s_get (root, "epoch")), "0000000000000007");
    json_decref (root);
    mw_buf_release (&buf);
}

static void
test_event_sid_string (void **unused)
{
    mw_event_t ev;
    mw_event_init (&ev, MW_TYPE_ERROR);
    ev.sid = 18446744073709551615ULL;
    mw_event_set_str (&ev, MW_K_MINER, "m");
    mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "x");
    mw_buf_t buf = MW_BUF_INIT;
    assert_int_equal (mw_json_event_ex (&buf, &ev, MW_JSON_SID_STRING), 0);
    assert_non_null (strstr (buf.data, "\"sid\":\"18446744073709551615\""));
    mw_buf_reset (&buf);
    assert_int_equal (mw_json_event (&buf, &ev), 0);
    assert_non_null (strstr (buf.data, "\"sid\":18446744073709551615"));
    mw_buf_release (&buf);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_status_empty), cmocka_unit_test (test_status_full),
        cmocka_unit_test (test_label),        cmocka_unit_test (test_metrics),
        cmocka_unit_test (test_health),       cmocka_unit_test (test_event_sid_string),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
