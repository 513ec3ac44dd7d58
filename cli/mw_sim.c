/*  mw_sim.c - the traffic generator of `minerwatch simulate` and
    `minerwatch up --demo` (see mw_sim.h for what the traffic is).
*/
#include "mw_sim.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  --------------------------------------------------------------------------
//  Random numbers: xoshiro256** seeded with splitmix64 (public domain,
//  Blackman and Vigna). rand() would differ between C libraries.

typedef struct {
    uint64_t s[4];
} s_rng_t;

static uint64_t
s_splitmix64 (uint64_t *x)
{
    uint64_t z = (*x += UINT64_C (0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C (0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C (0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static void
s_rng_seed (s_rng_t *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = s_splitmix64 (&seed);
}

static inline uint64_t
s_rotl (uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t
s_rng_next (s_rng_t *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = s_rotl (s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl (s[3], 45);
    return result;
}

//  Uniform in [0, n). The modulo bias is irrelevant for n this small.
static uint32_t
s_below (s_rng_t *rng, uint32_t n)
{
    return n ? (uint32_t) (s_rng_next (rng) % n) : 0;
}

//  Uniform in [0, 1).
static double
s_unit (s_rng_t *rng)
{
    return (double) (s_rng_next (rng) >> 11) * 0x1.0p-53;
}

static bool
s_chance (s_rng_t *rng, double p)
{
    return s_unit (rng) < p;
}

static double
s_between (s_rng_t *rng, double lo, double hi)
{
    return lo + (hi - lo) * s_unit (rng);
}

#define S_PICK(rng, array) ((array)[s_below ((rng), sizeof (array) / sizeof ((array)[0]))])

//  --------------------------------------------------------------------------
//  What the traffic is made of

typedef struct {
    const char *prompt; //  {user} {city} {n} are filled in
    const char *url;
} s_template_t;

static const s_template_t s_templates[] = {
    {"Login to example.com with username {user} and password {user}-pass",
     "https://example.com/login"},
    {"Search for remote Python jobs", "https://jobs.example.net/search?q=python&remote=1"},
    {"Add a laptop to the cart on shop.example.org", "https://shop.example.org/c/laptops"},
    {"Register a new account with the email {user}@example.net", "https://example.com/register"},
    {"Find the cheapest flight from {city} to Lisbon next Friday",
     "https://travel.example.com/flights"},
    {"Book a table for {n} at an Italian restaurant tonight",
     "https://dining.example.net/restaurants?cuisine=italian"},
    {"Filter laptops under $900 and sort them by rating",
     "https://shop.example.org/c/laptops?sort=rating"},
    {"Send the message 'Where is my order?' through the contact form",
     "https://shop.example.org/contact"},
    {"Subscribe to the newsletter with {user}@example.org", "https://books.example.org/"},
    {"Add 'The Pragmatic Programmer' to the wishlist",
     "https://books.example.org/book/the-pragmatic-programmer"},
    {"Change the shipping address to {n} Main Street, {city}",
     "https://shop.example.org/account/addresses"},
    {"Edit the profile bio to 'Data engineer in {city}'", "https://example.com/profile/edit"},
    {"Remove the third item from the shopping cart", "https://shop.example.org/cart"},
    {"Apply the coupon code SAVE{n} at checkout", "https://shop.example.org/checkout"},
    {"Show movies released after 2015 with a rating above 8",
     "https://autocinema.example.com/movies"},
    {"Log out, then log in again as {user}", "https://example.com/account"},
};

static const char *s_users[] = {"alice",  "bob",   "carol91", "dave_k", "erin.m",
                                "frank7", "grace", "heidi",   "ivan",   "judy.w"};
static const char *s_cities[] = {"Berlin", "Madrid", "Toronto", "Osaka", "Nairobi",
                                 "Austin", "Krakow", "Lyon",    "Pune",  "Denver"};
static const char *s_middle_steps[] = {"analyze_page",  "plan_actions", "fill_form",
                                       "click_element", "extract_data", "llm_call",
                                       "verify_result"};
static const char *s_models[] = {"gpt-4o-mini", "qwen2.5-72b", "llama-3.1-70b"};
static const char *s_action_types[] = {"click", "type", "navigate", "scroll", "select", "mixed"};
static const char *s_cache_types[] = {"prompt", "actions", "page"};
static const char *s_errors[][2] = {
    {"Timeout waiting for selector #login", "playwright"},
    {"Navigation failed: net::ERR_CONNECTION_RESET", "navigation"},
    {"Element is not attached to the DOM: button.submit", "playwright"},
    {"LLM response was not valid JSON", "llm"},
    {"Navigation failed: net::ERR_NAME_NOT_RESOLVED", "navigation"},
    {"Selector 'input[name=email]' matched 0 elements", "playwright"},
    {"Rate limited by the LLM provider (429), gave up after 3 retries", "llm"},
};
static const char *s_miner_errors[] = {
    "Chrome process crashed; restarting the browser pool",
    "Redis connection lost; retrying in 5 s",
    "GPU memory at 95%; lowering the batch size",
    "Axon handshake failed: validator signature expired",
};
//  First octets of the public address space (none private or reserved).
static const uint8_t s_octets[] = {
    5,   23,  31,  37,  45,  46,  51,  62,  64,  66,  78,  80,  84,  85,  88,  91,  94,  95,  104,
    109, 134, 135, 136, 138, 139, 141, 142, 144, 145, 146, 147, 149, 152, 154, 157, 158, 159, 161,
    162, 164, 165, 167, 173, 176, 178, 185, 188, 193, 194, 195, 207, 209, 212, 213, 216, 217};
static const char s_base58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

typedef struct {
    char ip[16];
    char hotkey[49];
} s_validator_t;

typedef enum {
    S_PH_CONNECT, //  validator_connection before the validator's first task
    S_PH_START,
    S_PH_CACHE,
    S_PH_STEP,
    S_PH_ACTIONS,
    S_PH_ERROR, //  an error event before a failed task_complete
    S_PH_COMPLETE,
    S_PH_FEEDBACK,
    S_PH_DONE
} s_phase_t;

typedef struct {
    int miner;
    int validator;
    s_phase_t phase;
    char id[40];
    char prompt[160];
    const char *url;
    int steps; //  planned
    int steps_done;
    bool cache;
    bool success;
    bool timeout;     //  fails by timing out
    bool error_event; //  sends an error event before failing
    bool feedback;
    int error; //  index in s_errors
    uint64_t timeout_ms;
    uint64_t actions;
    double response_time;
} s_task_t;
const char *const mw_sim_ev_names[MW_SIM_EV_COUNT] = {"task_start",        "task_step",
                                                      "actions_generated", "task_complete",
                                                      "task_feedback",     "validator_connection",
                                                      "cache_hit",         "error"};

struct _mw_sim_t {
    s_rng_t rng;
    mw_publisher_t **pubs; //  the caller's
    size_t miner_count;
    size_t validator_count;
    s_validator_t *validators;
    bool *met;       //  [miner * validators + validator]: connected before
    s_task_t *tasks; //  active tasks
    size_t task_count;
    size_t task_cap;
    uint64_t task_serial;
    uint64_t sent[MW_SIM_EV_COUNT];
    uint64_t dropped[MW_SIM_EV_COUNT];
    uint64_t started, succeeded, failed, timed_out;
};

//  --------------------------------------------------------------------------
//  Making things up

//  Expand {user}, {city} and {n} in a prompt template.
static void
s_fill_prompt (mw_sim_t *self, const char *tpl, char *out, size_t size)
{
    const char *user = S_PICK (&self->rng, s_users);
    const char *city = S_PICK (&self->rng, s_cities);
    char number[16];
    snprintf (number, sizeof (number), "%u", 2 + s_below (&self->rng, 98));
    size_t n = 0;
    for (const char *p = tpl; *p && n + 1 < size;) {
        const char *value = NULL;
        size_t skip = 0;
        if (strncmp (p, "{user}", 6) == 0)
            value = user, skip = 6;
        else if (strncmp (p, "{city}", 6) == 0)
            value = city, skip = 6;
        else if (strncmp (p, "{n}", 3) == 0)
            value = number, skip = 3;
        if (value) {
            for (; *value && n + 1 < size; value++)
                out[n++] = *value;
            p += skip;
        }
        else
            out[n++] = *p++;
    }
    out[n] = 0;
}

static void
s_make_validator (mw_sim_t *self, s_validator_t *v)
{
    snprintf (v->ip, sizeof (v->ip), "%u.%u.%u.%u", S_PICK (&self->rng, s_octets),
              s_below (&self->rng, 256), s_below (&self->rng, 256), 1 + s_below (&self->rng, 254));
    //  An ss58 address of the generic substrate format: "5" and 47 base58
    //  characters, the second one of C-H.
    v->hotkey[0] = '5';
    v->hotkey[1] = "CDEFGH"[s_below (&self->rng, 6)];
    for (int i = 2; i < 48; i++)
        v->hotkey[i] = s_base58[s_below (&self->rng, sizeof (s_base58) - 1)];
    v->hotkey[48] = 0;
}

//  A version 4 UUID, as a miner would get from a validator.
static void
s_make_task_id (mw_sim_t *self, char *out, size_t size)
{
    uint64_t a = s_rng_next (&self->rng), b = s_rng_next (&self->rng);
    snprintf (out, size, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
              a >> 32, (a >> 16) & 0xFFFF, a & 0xFFF, (b >> 48 & 0x3FFF) | 0x8000,
              b & UINT64_C (0xFFFFFFFFFFFF));
}

static s_task_t *
s_new_task (mw_sim_t *self, int miner)
{
    s_task_t *t = &self->tasks[self->task_count++];
    memset (t, 0, sizeof (*t));
    t->miner = miner;
    t->validator = (int) s_below (&self->rng, (uint32_t) self->validator_count);
    t->phase = self->met[(size_t) miner * self->validator_count + (size_t) t->validator]
                   ? S_PH_START
                   : S_PH_CONNECT;
    s_make_task_id (self, t->id, sizeof (t->id));
    const s_template_t *tpl = &S_PICK (&self->rng, s_templates);
    s_fill_prompt (self, tpl->prompt, t->prompt, sizeof (t->prompt));
    t->url = tpl->url;
    static const uint64_t timeouts[] = {30000, 45000, 60000, 120000};
    t->timeout_ms = S_PICK (&self->rng, timeouts);
    t->steps = 1 + (int) s_below (&self->rng, 5);
    t->cache = s_chance (&self->rng, 0.15);
    t->success = s_chance (&self->rng, 0.85);
    t->timeout = !t->success && s_chance (&self->rng, 0.35);
    t->error_event = !t->success && !t->timeout && s_chance (&self->rng, 0.6);
    t->error = (int) s_below (&self->rng, sizeof (s_errors) / sizeof (s_errors[0]));
    t->feedback = s_chance (&self->rng, 0.7);
    t->actions = 1 + s_below (&self->rng, 30);
    t->response_time = t->timeout ? (double) t->timeout_ms / 1000 + s_between (&self->rng, 0, 0.5)
                                  : s_between (&self->rng, 0.8, 18.0);
    self->task_serial++;
    return t;
}

//  --------------------------------------------------------------------------
//  Sending

static void
s_count (mw_sim_t *self, mw_sim_ev_t ev, int rc)
{
    if (rc == 0)
        self->sent[ev]++;
    else
        self->dropped[ev]++;
}

//  Send the next event of task t and move it on. Return true when the task
//  is over.
static bool
s_advance (mw_sim_t *self, s_task_t *t)
{
    mw_publisher_t *pub = self->pubs[t->miner];
    const s_validator_t *v = &self->validators[t->validator];
    switch (t->phase) {
        case S_PH_CONNECT:
            s_count (self, MW_SIM_VALIDATOR,
                     mw_publisher_validator_connection (pub, v->ip, v->hotkey, "/forward_task"));
            self->met[(size_t) t->miner * self->validator_count + (size_t) t->validator] = true;
            t->phase = S_PH_START;
            return false;
        case S_PH_START:
            s_count (self, MW_SIM_TASK_START,
                     mw_publisher_task_start (pub, t->id, t->prompt, t->url, v->ip, v->hotkey,
                                              t->timeout_ms));
            self->started++;
            t->phase = t->cache ? S_PH_CACHE : S_PH_STEP;
            return false;
        case S_PH_CACHE:
            s_count (self, MW_SIM_CACHE_HIT,
                     mw_publisher_cache_hit (pub, t->id, S_PICK (&self->rng, s_cache_types)));
            t->phase = S_PH_STEP;
            return false;
        case S_PH_STEP: {
            t->steps_done++;
            bool last = t->steps_done >= t->steps;
            const char *step = t->steps_done == 1 ? "navigate"
                               : last             ? "verify_result"
                                                  : S_PICK (&self->rng, s_middle_steps);
            mw_kv_t details[4];
            memset (details, 0, sizeof (details));
            details[0].key = "url";
            details[0].kind = MW_KV_STR;
            details[0].val.s.ptr = t->url;
            details[0].val.s.len = (size_t) -1;
            details[1].key = "step_index";
            details[1].kind = MW_KV_UINT;
            details[1].val.u = (uint64_t) t->steps_done;
            details[2].key = "elapsed_ms";
            details[2].kind = MW_KV_UINT;
            details[2].val.u = (uint64_t) t->steps_done * (300 + s_below (&self->rng, 1500));
            details[3].key = "model";
            details[3].kind = MW_KV_STR;
            details[3].val.s.ptr = S_PICK (&self->rng, s_models);
            details[3].val.s.len = (size_t) -1;
            s_count (self, MW_SIM_TASK_STEP, mw_publisher_task_step (pub, t->id, step, details, 4));
            if (last)
                //  A task that times out or fails early has no actions.
                t->phase = t->success || s_chance (&self->rng, 0.5)
                               ? S_PH_ACTIONS
                               : (t->error_event ? S_PH_ERROR : S_PH_COMPLETE);
            return false;
        }
        case S_PH_ACTIONS:
            s_count (self, MW_SIM_ACTIONS,
                     mw_publisher_actions_generated (pub, t->id, t->actions,
                                                     S_PICK (&self->rng, s_action_types)));
            t->phase = t->error_event ? S_PH_ERROR : S_PH_COMPLETE;
            return false;
        case S_PH_ERROR:
            s_count (self, MW_SIM_ERROR,
                     mw_publisher_error (pub, s_errors[t->error][0], t->id, s_errors[t->error][1]));
            t->phase = S_PH_COMPLETE;
            return false;
        case S_PH_COMPLETE: {
            char reason[64];
            const char *error = NULL;
            if (t->timeout) {
                snprintf (reason, sizeof (reason), "Task timed out after %" PRIu64 " ms",
                          t->timeout_ms);
                error = reason;
            }
            else if (!t->success)
                error = s_errors[t->error][0];
            s_count (self, MW_SIM_TASK_COMPLETE,
                     mw_publisher_task_complete (pub, t->id, t->success,
                                                 t->success ? (int64_t) t->actions : -1,
                                                 t->response_time, error));
            if (t->success)
                self->succeeded++;
            else
                self->failed++;
            if (t->timeout)
                self->timed_out++;
            t->phase = t->feedback ? S_PH_FEEDBACK : S_PH_DONE;
            return !t->feedback;
        }
        case S_PH_FEEDBACK: {
            double score =
                t->success ? s_between (&self->rng, 0.6, 1.0) : s_between (&self->rng, 0.0, 0.3);
            s_count (self, MW_SIM_FEEDBACK,
                     mw_publisher_task_feedback (
                         pub, t->id, (double) (int) (score * 1000) / 1000,
                         t->response_time + s_between (&self->rng, 0.05, 0.6), v->hotkey));
            t->phase = S_PH_DONE;
            return true;
        }
        case S_PH_DONE:
            break;
    }
    return true;
}

//  Choose and send the next event.
static void
s_step (mw_sim_t *self)
{
    uint32_t miners = (uint32_t) self->miner_count;
    double r = s_unit (&self->rng);
    if (r < 0.005) {
        int miner = (int) s_below (&self->rng, miners);
        s_count (self, MW_SIM_ERROR,
                 mw_publisher_error (self->pubs[miner], S_PICK (&self->rng, s_miner_errors), NULL,
                                     "infrastructure"));
        return;
    }
    if (r < 0.02) {
        //  A validator we know reconnects.
        int miner = (int) s_below (&self->rng, miners);
        const s_validator_t *v =
            &self->validators[s_below (&self->rng, (uint32_t) self->validator_count)];
        s_count (self, MW_SIM_VALIDATOR,
                 mw_publisher_validator_connection (self->pubs[miner], v->ip, v->hotkey,
                                                    "/forward_task"));
        return;
    }
    //  Keep about two tasks per miner going, up to the cap.
    size_t target = (size_t) miners * 2;
    bool start =
        self->task_count == 0 || (self->task_count < self->task_cap &&
                                  s_chance (&self->rng, self->task_count < target ? 0.35 : 0.08));
    s_task_t *t;
    if (start)
        t = s_new_task (self, (int) s_below (&self->rng, miners));
    else
        t = &self->tasks[s_below (&self->rng, (uint32_t) self->task_count)];
    if (s_advance (self, t))
        *t = self->tasks[--self->task_count]; //  done: the last one takes its place
}

//  --------------------------------------------------------------------------

mw_sim_t *
mw_sim_new (mw_publisher_t **pubs, size_t miners, size_t validators, uint64_t seed)
{
    if (!pubs || miners < 1 || miners > MW_SIM_MINERS_MAX || validators < 1 ||
        validators > MW_SIM_VALIDATORS_MAX)
        return NULL;
    mw_sim_t *self = (mw_sim_t *) calloc (1, sizeof (mw_sim_t));
    if (!self)
        return NULL;
    self->pubs = pubs;
    self->miner_count = miners;
    self->validator_count = validators;
    self->task_cap = miners * MW_SIM_TASKS_PER_MINER;
    self->validators = (s_validator_t *) calloc (validators, sizeof (s_validator_t));
    self->met = (bool *) calloc (miners * validators, sizeof (bool));
    self->tasks = (s_task_t *) calloc (self->task_cap, sizeof (s_task_t));
    if (!self->validators || !self->met || !self->tasks) {
        mw_sim_destroy (&self);
        return NULL;
    }
    s_rng_seed (&self->rng, seed);
    for (size_t i = 0; i < validators; i++)
        s_make_validator (self, &self->validators[i]);
    return self;
}

void
mw_sim_destroy (mw_sim_t **self_p)
{
    if (self_p && *self_p) {
        mw_sim_t *self = *self_p;
        free (self->validators);
        free (self->met);
        free (self->tasks);
        free (self);
        *self_p = NULL;
    }
}

void
mw_sim_step (mw_sim_t *self)
{
    s_step (self);
}

void
mw_sim_stats (const mw_sim_t *self, mw_sim_stats_t *stats)
{
    memcpy (stats->sent, self->sent, sizeof (stats->sent));
    memcpy (stats->dropped, self->dropped, sizeof (stats->dropped));
    stats->started = self->started;
    stats->succeeded = self->succeeded;
    stats->failed = self->failed;
    stats->timed_out = self->timed_out;
    stats->active = self->task_count;
}

uint64_t
mw_sim_total (const uint64_t *counts)
{
    uint64_t n = 0;
    for (int i = 0; i < MW_SIM_EV_COUNT; i++)
        n += counts[i];
    return n;
}

uint64_t
mw_sim_random_seed (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return ((uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec) ^
           ((uint64_t) getpid () << 32);
}
