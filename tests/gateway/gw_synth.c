/*  gw_synth.c - synthetic events for the gateway tests. */
#include "gw_synth.h"

#include <stdio.h>
#include <string.h>

const char *gw_synth_miners[4] = {"miner-a", "miner-b", "miner-c",
                                  "evil\"<script>alert(1)</script>\\\n\x01\xff"};

//  Random-looking 64-bit session ids, the first above 2^53.
static const uint64_t s_sids[4] = {18446744073709551557ULL, 12345, 9007199254740993ULL, 77};

static const char *s_validators[3] = {"45.22.240.79", "84.247.180.192", "10.0.0.7"};
static const char *s_hotkeys[3] = {"5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty", "",
                                   "5DAAnrj7VHTznn2AWBemMuyBwZWs6FNFjdyVXUeYum3PTXFy"};

int
gw_synth_init (gw_synth_t *self, const mw_state_config_t *cfg)
{
    memset (self, 0, sizeof (*self));
    self->state = mw_state_new (cfg);
    self->now = 1714573935000ULL; //  2024-05-01T14:32:15Z
    return self->state ? 0 : -1;
}

void
gw_synth_release (gw_synth_t *self)
{
    mw_state_destroy (&self->state);
}

uint64_t
gw_synth_event (gw_synth_t *self, const char *type, int m, uint64_t t)
{
    char task_id[64];
    snprintf (task_id, sizeof (task_id), "task-%04llu-%s", (unsigned long long) t,
              m == 3 ? "<b>x</b>" : "ok");
    int v = (int) (t % 3);
    mw_event_t ev;
    if (mw_event_init_named (&ev, type) != 0)
        return 0;
    self->now += 7;
    ev.ts = (self->now - 3) * 1000;
    ev.sid = s_sids[m];
    ev.seq = ++self->seq[m];
    mw_event_set_str (&ev, MW_K_MINER, gw_synth_miners[m]);
    mw_kv_t kv[2];
    switch (ev.kind) {
        case MW_TYPE_TASK_START:
            mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
            mw_event_set_str (&ev, MW_K_PROMPT,
                              t % 2 ? "Login to example.com" : "<img src=x onerror=alert(1)>");
            mw_event_set_str (&ev, MW_K_URL, "https://example.com/login?a=1&b=2");
            mw_event_set_str (&ev, MW_K_VALIDATOR_IP, s_validators[v]);
            if (*s_hotkeys[v])
                mw_event_set_str (&ev, MW_K_VALIDATOR_HOTKEY, s_hotkeys[v]);
            ev.has |= MW_HAS_TIMEOUT_MS;
            ev.timeout_ms = 30000;
            break;
        case MW_TYPE_TASK_STEP:
            mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
            mw_event_set_str (&ev, MW_K_STEP, "processing\nline two");
            break;
        case MW_TYPE_ACTIONS_GENERATED:
            mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
            ev.has |= MW_HAS_ACTION_COUNT;
            ev.action_count = 12;
            mw_event_set_str (&ev, MW_K_ACTION_TYPE, "click");
            break;
        case MW_TYPE_TASK_COMPLETE:
            mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
            ev.has |= MW_HAS_SUCCESS | MW_HAS_RESPONSE_TIME | MW_HAS_ACTION_COUNT;
            ev.success = t % 5 != 4;
            ev.response_time = 0.05 * (double) (t % 40 + 1);
            ev.action_count = 12;
            if (!ev.success)
                mw_event_set_str (&ev, MW_K_ERROR, "timeout \xe2\x80\xa8 waiting");
            break;
        case MW_TYPE_TASK_FEEDBACK:
            mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
            ev.has |= MW_HAS_SCORE;
            ev.score = 0.25 * (double) (t % 5);
            if (*s_hotkeys[v])
                mw_event_set_str (&ev, MW_K_VALIDATOR_HOTKEY, s_hotkeys[v]);
            break;
        case MW_TYPE_VALIDATOR_CONNECTION:
            mw_event_set_str (&ev, MW_K_VALIDATOR_IP, s_validators[v]);
            mw_event_set_str (&ev, MW_K_ENDPOINT, "/forward");
            break;
        case MW_TYPE_CACHE_HIT:
            mw_event_set_str (&ev, MW_K_TASK_ID, task_id);
            mw_event_set_str (&ev, MW_K_CACHE_TYPE, "actions");
            break;
        case MW_TYPE_ERROR:
            mw_event_set_str (&ev, MW_K_ERROR_MESSAGE, "boom </script><script>alert(2)</script>");
            mw_event_set_str (&ev, MW_K_ERROR_TYPE, "RuntimeError");
            break;
        default:
            kv[0] = (mw_kv_t){.key = "gpu", .kind = MW_KV_UINT, .val.u = t};
            kv[1] = (mw_kv_t){.key = "note", .kind = MW_KV_STR, .val.s = {"a\"b", (size_t) -1}};
            ev.kv = kv;
            ev.kv_count = 2;
            break;
    }
    ev.has |= MW_HAS_ID | MW_HAS_BROKER_TS;
    ev.id = ++self->id;
    ev.broker_ts = self->now;
    if (mw_state_apply (self->state, &ev, self->now) != 0)
        return 0;
    if (self->fn)
        self->fn (&ev, self->arg);
    return ev.id;
}

uint64_t
gw_synth_task (gw_synth_t *self)
{
    uint64_t t = ++self->tasks;
    int m = (int) (t % 4);
    uint64_t id = gw_synth_event (self, "task_start", m, t);
    id = gw_synth_event (self, "task_step", m, t);
    id = gw_synth_event (self, "actions_generated", m, t);
    if (t % 3 == 0)
        id = gw_synth_event (self, "cache_hit", m, t);
    id = gw_synth_event (self, "task_complete", m, t);
    id = gw_synth_event (self, "task_feedback", m, t);
    return id;
}

uint64_t
gw_synth_events (gw_synth_t *self, uint64_t n)
{
    static const char *types[] = {
        "task_start",    "task_step",     "actions_generated",    "cache_hit",
        "task_complete", "task_feedback", "validator_connection", "error",
        "gpu_sample"};
    uint64_t id = self->id;
    for (uint64_t i = 0; i < n; i++) {
        size_t k = (size_t) (self->id % 9);
        if (k == 0)
            self->tasks++;
        uint64_t t = self->tasks;
        id = gw_synth_event (self, types[k], (int) (t % 4), t);
    }
    return id;
}

uint64_t
gw_synth_tick (gw_synth_t *self, uint64_t ms)
{
    self->now += ms;
    uint64_t id = ++self->id;
    if (mw_state_tick (self->state, self->now, id) < 0)
        return 0;
    return id;
}
