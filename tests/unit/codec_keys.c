/*  codec_keys.c - the keys and types of CONTRACT.md section 1 as test data. */

#include "codec_keys.h"

#include <stdio.h>
#include <string.h>

const key_desc_t KEYS[] = {
    {"task_id", KT_STR, MW_K_TASK_ID, 0, "task-0001-\xc3\xa9t\xc3\xa9", 0, false, 0},
    {"prompt", KT_STR, MW_K_PROMPT, 0, "Login to example.com \xe2\x9c\x93 then <b>log out</b>", 0,
     false, 0},
    {"url", KT_STR, MW_K_URL, 0, "https://example.com/login?next=%2F&x=1", 0, false, 0},
    {"validator_ip", KT_STR, MW_K_VALIDATOR_IP, 0, "203.0.113.7", 0, false, 0},
    {"validator_hotkey", KT_STR, MW_K_VALIDATOR_HOTKEY, 0,
     "5F3sa2TJAWMqDhXG6jhV4N8ko9SxwGy8TpaNS1repo5EYjQX", 0, false, 0},
    {"step", KT_STR, MW_K_STEP, 0, "navigate", 0, false, 0},
    {"action_type", KT_STR, MW_K_ACTION_TYPE, 0, "click", 0, false, 0},
    {"error", KT_STR, MW_K_ERROR, 0, "timeout after 30 s", 0, false, 0},
    {"error_message", KT_STR, MW_K_ERROR_MESSAGE, 0, "connection reset by peer", 0, false, 0},
    {"error_type", KT_STR, MW_K_ERROR_TYPE, 0, "NetworkError", 0, false, 0},
    {"cache_type", KT_STR, MW_K_CACHE_TYPE, 0, "prompt", 0, false, 0},
    {"endpoint", KT_STR, MW_K_ENDPOINT, 0, "tcp://10.0.0.2:8091", 0, false, 0},
    {"timeout_ms", KT_UINT, -1, MW_HAS_TIMEOUT_MS, NULL, 30000, false, 0},
    {"action_count", KT_UINT, -1, MW_HAS_ACTION_COUNT, NULL, 7, false, 0},
    {"id", KT_UINT, -1, MW_HAS_ID, NULL, UINT64_C (123456789012345), false, 0},
    {"broker_ts", KT_UINT, -1, MW_HAS_BROKER_TS, NULL, UINT64_C (1700000000999), false, 0},
    {"success", KT_BOOL, -1, MW_HAS_SUCCESS, NULL, 0, true, 0},
    {"response_time", KT_FLOAT, -1, MW_HAS_RESPONSE_TIME, NULL, 0, false, 1.5},
    {"score", KT_FLOAT, -1, MW_HAS_SCORE, NULL, 0, false, 0.875},
    {"execution_time", KT_FLOAT, -1, MW_HAS_EXECUTION_TIME, NULL, 0, false, 12.25},
    {"details", KT_MAP, -1, 0, NULL, 0, false, 0},
};
const size_t KEY_COUNT = sizeof KEYS / sizeof KEYS[0];

const type_spec_t TYPES[] = {
    {MW_TYPE_TASK_START,
     "task_start",
     {"task_id"},
     {"prompt", "url", "validator_ip", "validator_hotkey", "timeout_ms"},
     false},
    {MW_TYPE_TASK_STEP, "task_step", {"task_id", "step"}, {"details"}, false},
    {MW_TYPE_ACTIONS_GENERATED,
     "actions_generated",
     {"task_id", "action_count"},
     {"action_type"},
     false},
    {MW_TYPE_TASK_COMPLETE,
     "task_complete",
     {"task_id", "success"},
     {"action_count", "response_time", "error"},
     false},
    {MW_TYPE_TASK_FEEDBACK,
     "task_feedback",
     {"task_id"},
     {"score", "execution_time", "validator_hotkey"},
     false},
    {MW_TYPE_VALIDATOR_CONNECTION,
     "validator_connection",
     {"validator_ip", "validator_hotkey"},
     {"endpoint"},
     true},
    {MW_TYPE_CACHE_HIT, "cache_hit", {"task_id"}, {"cache_type"}, false},
    {MW_TYPE_ERROR, "error", {"error_message"}, {"task_id", "error_type"}, false},
};
const size_t TYPE_COUNT = sizeof TYPES / sizeof TYPES[0];

const key_desc_t *
key_desc (const char *name)
{
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strcmp (KEYS[i].name, name) == 0)
            return &KEYS[i];
    fail_msg ("no key descriptor for %s", name);
    return NULL;
}

void
built_set (mw_event_t *e, const key_desc_t *d)
{
    switch (d->t) {
    case KT_STR:
        mw_event_set_str (e, (mw_str_key_t) d->strkey, d->s);
        break;
    case KT_UINT:
        if (d->hasbit == MW_HAS_TIMEOUT_MS)
            e->timeout_ms = d->u;
        else if (d->hasbit == MW_HAS_ACTION_COUNT)
            e->action_count = d->u;
        else if (d->hasbit == MW_HAS_ID)
            e->id = d->u;
        else if (d->hasbit == MW_HAS_BROKER_TS)
            e->broker_ts = d->u;
        e->has |= d->hasbit;
        break;
    case KT_BOOL:
        e->success = d->b;
        e->has |= d->hasbit;
        break;
    case KT_FLOAT:
        if (d->hasbit == MW_HAS_RESPONSE_TIME)
            e->response_time = d->d;
        else if (d->hasbit == MW_HAS_SCORE)
            e->score = d->d;
        else
            e->execution_time = d->d;
        e->has |= d->hasbit;
        break;
    case KT_MAP:
        break;
    }
}

void
fields_set (fields_t *fs, const key_desc_t *d)
{
    switch (d->t) {
    case KT_STR:
        fs_put_str (fs, d->name, d->s);
        break;
    case KT_UINT:
        fs_put_uint (fs, d->name, d->u);
        break;
    case KT_BOOL:
        fs_put_bool (fs, d->name, d->b);
        break;
    case KT_FLOAT:
        fs_put_dbl (fs, d->name, d->d);
        break;
    case KT_MAP: {
        mp_t m;
        mp_init (&m);
        mp_map (&m, 2);
        mp_str (&m, "selector");
        mp_str (&m, "#login");
        mp_str (&m, "attempt");
        mp_uint (&m, 2);
        fs_put_mp (fs, d->name, &m);
        mp_free (&m);
        break;
    }
    }
}

static uint64_t
decoded_uint (const mw_event_t *e, uint32_t bit)
{
    return bit == MW_HAS_TIMEOUT_MS     ? e->timeout_ms
           : bit == MW_HAS_ACTION_COUNT ? e->action_count
           : bit == MW_HAS_BROKER_TS    ? e->broker_ts
                                        : e->id;
}

static double
decoded_float (const mw_event_t *e, uint32_t bit)
{
    return bit == MW_HAS_RESPONSE_TIME ? e->response_time
           : bit == MW_HAS_SCORE       ? e->score
                                       : e->execution_time;
}

bool
decoded_has_sample (const mw_event_t *e, const key_desc_t *d, char *why, size_t whysz)
{
    switch (d->t) {
    case KT_STR: {
        const mw_str_t *s = &e->str[d->strkey];
        if (!s->ptr || s->len != strlen (d->s) || memcmp (s->ptr, d->s, s->len) != 0) {
            snprintf (why, whysz, "%s: expected \"%s\", got %s%.*s%s", d->name, d->s,
                      s->ptr ? "\"" : "", s->ptr ? (int) s->len : 6, s->ptr ? s->ptr : "absent",
                      s->ptr ? "\"" : "");
            return false;
        }
        return true;
    }
    case KT_UINT:
        if (!(e->has & d->hasbit) || decoded_uint (e, d->hasbit) != d->u) {
            snprintf (why, whysz, "%s: expected %llu, got %s%llu", d->name,
                      (unsigned long long) d->u, (e->has & d->hasbit) ? "" : "absent ",
                      (unsigned long long) decoded_uint (e, d->hasbit));
            return false;
        }
        return true;
    case KT_BOOL:
        if (!(e->has & d->hasbit) || e->success != d->b) {
            snprintf (why, whysz, "%s: expected %d", d->name, (int) d->b);
            return false;
        }
        return true;
    case KT_FLOAT:
        if (!(e->has & d->hasbit) || decoded_float (e, d->hasbit) != d->d) {
            snprintf (why, whysz, "%s: expected %g, got %s%g", d->name, d->d,
                      (e->has & d->hasbit) ? "" : "absent ", decoded_float (e, d->hasbit));
            return false;
        }
        return true;
    case KT_MAP: {
        const uint8_t *v;
        size_t n;
        if (extras_find (e, d->name, &v, &n) != 0 || n == 0
            || !((v[0] & 0xf0) == 0x80 || v[0] == 0xde || v[0] == 0xdf)) {
            snprintf (why, whysz, "%s: no map in the extras", d->name);
            return false;
        }
        return true;
    }
    }
    return false;
}

bool
decoded_absent (const mw_event_t *e, const key_desc_t *d, char *why, size_t whysz)
{
    bool present = false;
    const uint8_t *v;
    size_t n;
    switch (d->t) {
    case KT_STR:
        present = e->str[d->strkey].ptr != NULL;
        break;
    case KT_UINT:
    case KT_BOOL:
    case KT_FLOAT:
        present = (e->has & d->hasbit) != 0;
        break;
    case KT_MAP:
        present = extras_find (e, d->name, &v, &n) == 0;
        break;
    }
    if (present)
        snprintf (why, whysz, "%s: present, expected absent", d->name);
    return !present;
}

bool
decoded_matches_built (const mw_event_t *dec, const mw_event_t *src, char *why, size_t whysz)
{
    if (dec->kind != src->kind || strcmp (dec->type, src->type) != 0) {
        snprintf (why, whysz, "type \"%s\" (%d), expected \"%s\" (%d)", dec->type,
                  (int) dec->kind, src->type, (int) src->kind);
        return false;
    }
    if (dec->v != MW_PROTOCOL_VERSION || dec->ts != src->ts || dec->sid != src->sid
        || dec->seq != src->seq) {
        snprintf (why, whysz, "header differs: v %llu ts %llu sid %llu seq %llu",
                  (unsigned long long) dec->v, (unsigned long long) dec->ts,
                  (unsigned long long) dec->sid, (unsigned long long) dec->seq);
        return false;
    }
    for (int k = 0; k < MW_STR_COUNT; k++) {
        const mw_str_t *a = &src->str[k], *b = &dec->str[k];
        if ((a->ptr == NULL) != (b->ptr == NULL) || (a->ptr && a->len != b->len)
            || (a->ptr && memcmp (a->ptr, b->ptr, a->len) != 0)) {
            snprintf (why, whysz, "string %s differs", mw_str_key_name ((mw_str_key_t) k));
            return false;
        }
    }
    if (dec->has != src->has) {
        snprintf (why, whysz, "has 0x%x, expected 0x%x", dec->has, src->has);
        return false;
    }
    if (((src->has & MW_HAS_ID) && dec->id != src->id)
        || ((src->has & MW_HAS_TIMEOUT_MS) && dec->timeout_ms != src->timeout_ms)
        || ((src->has & MW_HAS_ACTION_COUNT) && dec->action_count != src->action_count)
        || ((src->has & MW_HAS_BROKER_TS) && dec->broker_ts != src->broker_ts)
        || ((src->has & MW_HAS_SUCCESS) && dec->success != src->success)) {
        snprintf (why, whysz, "an integer or bool field differs");
        return false;
    }
    double pairs[3][2] = {{src->response_time, dec->response_time},
                          {src->score, dec->score},
                          {src->execution_time, dec->execution_time}};
    uint32_t bits[3] = {MW_HAS_RESPONSE_TIME, MW_HAS_SCORE, MW_HAS_EXECUTION_TIME};
    for (int i = 0; i < 3; i++)
        if ((src->has & bits[i]) && memcmp (&pairs[i][0], &pairs[i][1], sizeof (double)) != 0) {
            snprintf (why, whysz, "float field %d: %g, expected %g", i, pairs[i][1],
                      pairs[i][0]);
            return false;
        }
    if (dec->truncated != src->truncated) {
        snprintf (why, whysz, "truncated %u, expected %u", dec->truncated, src->truncated);
        return false;
    }
    if (src->extra_count == 0)
        return extras_match_kv (dec, src->kv, src->kv_count, why, whysz);
    //  A source with its own raw extras (a decoded event) and kv appended.
    if (dec->extra_count != src->extra_count + src->kv_count || dec->extra_len < src->extra_len
        || memcmp (dec->extra, src->extra, src->extra_len) != 0) {
        snprintf (why, whysz, "raw extras not carried first and untouched");
        return false;
    }
    mw_event_t tail = *dec;
    tail.extra = dec->extra + src->extra_len;
    tail.extra_len = dec->extra_len - src->extra_len;
    tail.extra_count = dec->extra_count - src->extra_count;
    return extras_match_kv (&tail, src->kv, src->kv_count, why, whysz);
}
