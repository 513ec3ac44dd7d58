/*  cmd_simulate.c - `minerwatch simulate`: realistic traffic from simulated
    miners, for demos, dashboards and load tests.

    K miners, each with its own publisher (its own session id and sequence),
    serve tasks from V validators (public-looking IPs, ss58-looking
    hotkeys). A task lives through task_start, sometimes cache_hit, 1-5
    task_step, actions_generated, task_complete (about 85% succeed; the rest
    fail with an error or time out, some with an error event first) and
    often task_feedback with a score. Several tasks per miner are active at
    once, so their events interleave. Validators connect before their first
    task and now and then again; miners report errors outside tasks too.

    Every choice comes from one seeded generator (xoshiro256**), so a given
    --seed gives the same events in the same order; only timestamps and
    session ids differ. Sending is paced on the monotonic clock: event i is
    due at start + i / rate, and an event late because the process was
    descheduled is sent at once (the average rate holds).
*/
#include "mw_cli.h"
#include "mw_publisher.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_NAME            "simulate"
#define S_MAX_MINERS      1000
#define S_MAX_VALIDATORS  1000
#define S_TASKS_PER_MINER 4    //  tasks a miner works on at once, at most
#define S_PROGRESS_TTY_S  0.25 //  progress line refresh on a terminal
#define S_PROGRESS_LOG_S  5.0  //  progress line interval otherwise

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

typedef enum {
    S_EV_TASK_START,
    S_EV_TASK_STEP,
    S_EV_ACTIONS,
    S_EV_TASK_COMPLETE,
    S_EV_FEEDBACK,
    S_EV_VALIDATOR,
    S_EV_CACHE_HIT,
    S_EV_ERROR,
    S_EV_COUNT
} s_ev_t;

static const char *s_ev_names[S_EV_COUNT] = {"task_start",        "task_step",
                                             "actions_generated", "task_complete",
                                             "task_feedback",     "validator_connection",
                                             "cache_hit",         "error"};

typedef struct {
    const char *endpoint;
    double rate;
    double duration;
    uint64_t miners;
    uint64_t validators;
    uint64_t seed;
    bool seed_given;
    double wait;
    bool quiet;
} s_opts_t;

typedef struct {
    s_opts_t opts;
    s_rng_t rng;
    mw_publisher_t **pubs;
    s_validator_t *validators;
    bool *met;       //  [miner * validators + validator]: connected before
    s_task_t *tasks; //  active tasks
    size_t task_count;
    size_t task_cap;
    uint64_t task_serial;
    uint64_t sent[S_EV_COUNT];
    uint64_t dropped[S_EV_COUNT];
    uint64_t started, succeeded, failed, timed_out;
} s_sim_t;

enum { S_OPT_SEED = 256, S_OPT_VALIDATORS };

static const struct option s_options[] = {{"endpoint", required_argument, NULL, 'e'},
                                          {"rate", required_argument, NULL, 'r'},
                                          {"duration", required_argument, NULL, 'd'},
                                          {"miners", required_argument, NULL, 'k'},
                                          {"validators", required_argument, NULL, S_OPT_VALIDATORS},
                                          {"seed", required_argument, NULL, S_OPT_SEED},
                                          {"wait", required_argument, NULL, 'w'},
                                          {"quiet", no_argument, NULL, 'q'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};

static void
s_help (FILE *out)
{
    fprintf (out,
             "Usage: minerwatch simulate [OPTIONS]\n"
             "\n"
             "Publish realistic traffic from simulated miners: validators (IPs and hotkeys)\n"
             "connect and send tasks with real-looking prompts and URLs; each task has 1-5\n"
             "steps, generated actions, sometimes a cache hit, and ends in success (about 85%%)\n"
             "or in a failure, a timeout or an error, often followed by a feedback score.\n"
             "\n"
             "Options:\n"
             "  -e, --endpoint EP     where to publish: '>tcp://HOST:PORT' connects, '@...' binds\n"
             "                        (default: " MW_CLI_DEFAULT_ENDPOINT ", a local broker)\n"
             "  -r, --rate N          events per second, all miners together (default: 20)\n"
             "  -d, --duration S      seconds to run; 0 runs until Ctrl-C (default: 60)\n"
             "  -k, --miners K        simulated miners, each its own publisher (default: 3)\n"
             "      --validators V    simulated validators (default: 8)\n"
             "      --seed N          seed of the generator: the same seed gives the same\n"
             "                        events (default: random, printed in the summary)\n"
             "  -w, --wait S          seconds to wait for subscribers at start; without one\n"
             "                        the events are dropped and counted (default: 2)\n"
             "  -q, --quiet           no progress line (default: a progress line on stderr)\n"
             "  -h, --help            show this help and exit\n"
             "\n"
             "The progress line on stderr shows elapsed time, events sent, dropped and active\n"
             "tasks. At the end (or on Ctrl-C) a summary goes to stdout: events sent by type,\n"
             "dropped, and tasks started, succeeded and failed. Exit code 0.\n"
             "\n"
             "Examples:\n"
             "  minerwatch simulate\n"
             "  minerwatch simulate --rate 500 --duration 10 --miners 5 --seed 42\n"
             "  minerwatch simulate --endpoint @tcp://127.0.0.1:7720 --duration 0\n");
}

//  --------------------------------------------------------------------------
//  Making things up

//  Expand {user}, {city} and {n} in a prompt template.
static void
s_fill_prompt (s_sim_t *self, const char *tpl, char *out, size_t size)
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
s_make_validator (s_sim_t *self, s_validator_t *v)
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
s_make_task_id (s_sim_t *self, char *out, size_t size)
{
    uint64_t a = s_rng_next (&self->rng), b = s_rng_next (&self->rng);
    snprintf (out, size, "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
              a >> 32, (a >> 16) & 0xFFFF, a & 0xFFF, (b >> 48 & 0x3FFF) | 0x8000,
              b & UINT64_C (0xFFFFFFFFFFFF));
}

static s_task_t *
s_new_task (s_sim_t *self, int miner)
{
    s_task_t *t = &self->tasks[self->task_count++];
    memset (t, 0, sizeof (*t));
    t->miner = miner;
    t->validator = (int) s_below (&self->rng, (uint32_t) self->opts.validators);
    t->phase = self->met[(size_t) miner * self->opts.validators + (size_t) t->validator]
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
s_count (s_sim_t *self, s_ev_t ev, int rc)
{
    if (rc == 0)
        self->sent[ev]++;
    else
        self->dropped[ev]++;
}

//  Send the next event of task t and move it on. Return true when the task
//  is over.
static bool
s_advance (s_sim_t *self, s_task_t *t)
{
    mw_publisher_t *pub = self->pubs[t->miner];
    const s_validator_t *v = &self->validators[t->validator];
    switch (t->phase) {
        case S_PH_CONNECT:
            s_count (self, S_EV_VALIDATOR,
                     mw_publisher_validator_connection (pub, v->ip, v->hotkey, "/forward_task"));
            self->met[(size_t) t->miner * self->opts.validators + (size_t) t->validator] = true;
            t->phase = S_PH_START;
            return false;
        case S_PH_START:
            s_count (self, S_EV_TASK_START,
                     mw_publisher_task_start (pub, t->id, t->prompt, t->url, v->ip, v->hotkey,
                                              t->timeout_ms));
            self->started++;
            t->phase = t->cache ? S_PH_CACHE : S_PH_STEP;
            return false;
        case S_PH_CACHE:
            s_count (self, S_EV_CACHE_HIT,
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
            s_count (self, S_EV_TASK_STEP, mw_publisher_task_step (pub, t->id, step, details, 4));
            if (last)
                //  A task that times out or fails early has no actions.
                t->phase = t->success || s_chance (&self->rng, 0.5)
                               ? S_PH_ACTIONS
                               : (t->error_event ? S_PH_ERROR : S_PH_COMPLETE);
            return false;
        }
        case S_PH_ACTIONS:
            s_count (self, S_EV_ACTIONS,
                     mw_publisher_actions_generated (pub, t->id, t->actions,
                                                     S_PICK (&self->rng, s_action_types)));
            t->phase = t->error_event ? S_PH_ERROR : S_PH_COMPLETE;
            return false;
        case S_PH_ERROR:
            s_count (self, S_EV_ERROR,
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
            s_count (self, S_EV_TASK_COMPLETE,
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
            s_count (self, S_EV_FEEDBACK,
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
s_step (s_sim_t *self)
{
    uint32_t miners = (uint32_t) self->opts.miners;
    double r = s_unit (&self->rng);
    if (r < 0.005) {
        int miner = (int) s_below (&self->rng, miners);
        s_count (self, S_EV_ERROR,
                 mw_publisher_error (self->pubs[miner], S_PICK (&self->rng, s_miner_errors), NULL,
                                     "infrastructure"));
        return;
    }
    if (r < 0.02) {
        //  A validator we know reconnects.
        int miner = (int) s_below (&self->rng, miners);
        const s_validator_t *v =
            &self->validators[s_below (&self->rng, (uint32_t) self->opts.validators)];
        s_count (self, S_EV_VALIDATOR,
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

static uint64_t
s_total (const uint64_t *counts)
{
    uint64_t n = 0;
    for (int i = 0; i < S_EV_COUNT; i++)
        n += counts[i];
    return n;
}

static void
s_progress (s_sim_t *self, double elapsed, bool tty, bool last)
{
    if (self->opts.quiet)
        return;
    uint64_t sent = s_total (self->sent), dropped = s_total (self->dropped);
    if (tty)
        fprintf (stderr, "\r\033[K");
    else
        fprintf (stderr, "minerwatch simulate: ");
    fprintf (stderr, "%.1fs  %" PRIu64 " sent  %" PRIu64 " dropped  %zu active task%s", elapsed,
             sent, dropped, self->task_count, self->task_count == 1 ? "" : "s");
    if (!tty || last)
        fputc ('\n', stderr);
    fflush (stderr);
}

static void
s_summary (s_sim_t *self, double elapsed, bool waited_ok)
{
    uint64_t sent = s_total (self->sent), dropped = s_total (self->dropped);
    printf ("minerwatch simulate: %" PRIu64 " events in %.1f s (%.1f/s), %" PRIu64
            " miners, %" PRIu64 " validators, seed %" PRIu64 "\n",
            sent + dropped, elapsed, elapsed > 0 ? (double) (sent + dropped) / elapsed : 0.0,
            self->opts.miners, self->opts.validators, self->opts.seed);
    printf ("sent %" PRIu64 ", dropped %" PRIu64 "%s\n", sent, dropped,
            dropped && !waited_ok ? " (no subscriber at the start)" : "");
    for (int i = 0; i < S_EV_COUNT; i++) {
        printf ("  %-22s %8" PRIu64, s_ev_names[i], self->sent[i]);
        if (self->dropped[i])
            printf ("  (%" PRIu64 " dropped)", self->dropped[i]);
        printf ("\n");
    }
    printf ("tasks: %" PRIu64 " started, %" PRIu64 " succeeded, %" PRIu64 " failed (%" PRIu64
            " timed out), %zu still active\n",
            self->started, self->succeeded, self->failed, self->timed_out, self->task_count);
    fflush (stdout);
}

static int
s_parse (s_opts_t *opts, int argc, char **argv)
{
    opts->endpoint = MW_CLI_DEFAULT_ENDPOINT;
    opts->rate = 20;
    opts->duration = 60;
    opts->miners = 3;
    opts->validators = 8;
    opts->wait = 2;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":e:r:d:k:w:qh", s_options, NULL)) != -1) {
        switch (c) {
            case 'e':
                opts->endpoint = optarg;
                break;
            case 'r':
                if (mw_cli_parse_double (optarg, 0.001, 10e6, &opts->rate) != 0)
                    return mw_cli_usage (S_NAME,
                                         "invalid --rate '%s': expected events per second from "
                                         "0.001 to 10000000",
                                         optarg);
                break;
            case 'd':
                if (mw_cli_parse_double (optarg, 0, 1e7, &opts->duration) != 0)
                    return mw_cli_usage (S_NAME,
                                         "invalid --duration '%s': expected seconds (0 runs until "
                                         "Ctrl-C)",
                                         optarg);
                break;
            case 'k':
                if (mw_cli_parse_uint (optarg, 1, S_MAX_MINERS, &opts->miners) != 0)
                    return mw_cli_usage (S_NAME,
                                         "invalid --miners '%s': expected a whole number from 1 "
                                         "to %d",
                                         optarg, S_MAX_MINERS);
                break;
            case S_OPT_VALIDATORS:
                if (mw_cli_parse_uint (optarg, 1, S_MAX_VALIDATORS, &opts->validators) != 0)
                    return mw_cli_usage (S_NAME,
                                         "invalid --validators '%s': expected a whole number "
                                         "from 1 to %d",
                                         optarg, S_MAX_VALIDATORS);
                break;
            case S_OPT_SEED:
                if (mw_cli_parse_uint (optarg, 0, UINT64_MAX, &opts->seed) != 0)
                    return mw_cli_usage (S_NAME, "invalid --seed '%s': expected a whole number",
                                         optarg);
                opts->seed_given = true;
                break;
            case 'w':
                if (mw_cli_parse_double (optarg, 0, 3600, &opts->wait) != 0)
                    return mw_cli_usage (
                        S_NAME, "invalid --wait '%s': expected seconds from 0 to 3600", optarg);
                break;
            case 'q':
                opts->quiet = true;
                break;
            case 'h':
                s_help (stdout);
                return -1;
            default:
                return mw_cli_bad_option (S_NAME, c, argv, s_options);
        }
    }
    if (optind < argc)
        return mw_cli_usage (S_NAME, "unexpected argument '%s'", argv[optind]);
    const char *why;
    if (mw_cli_check_endpoints (opts->endpoint, &why) != 0)
        return mw_cli_usage (S_NAME, "invalid --endpoint '%s': %s", opts->endpoint, why);
    return 0;
}

//  Wait up to the --wait for every publisher to see a subscriber, in
//  slices so that Ctrl-C is heard. Return true if all did.
static bool
s_wait_subscribers (s_sim_t *self)
{
    double deadline = mw_cli_now () + self->opts.wait;
    for (uint64_t i = 0; i < self->opts.miners; i++) {
        int ready = -1;
        while (ready != 0 && !mw_cli_interrupted) {
            double left = deadline - mw_cli_now ();
            ready = mw_publisher_wait_ready (self->pubs[i], left > 0.1 ? 100
                                                            : left > 0 ? (int) (left * 1000) + 1
                                                                       : 0);
            if (left <= 0)
                break;
        }
        if (ready != 0)
            return false;
    }
    return true;
}

static int
s_run (int argc, char **argv)
{
    s_sim_t sim;
    s_sim_t *self = &sim;
    memset (self, 0, sizeof (*self));
    int rc = s_parse (&self->opts, argc, argv);
    if (rc != 0)
        return rc < 0 ? MW_CLI_OK : rc;
    if (!self->opts.seed_given) {
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        self->opts.seed = ((uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec) ^
                          ((uint64_t) getpid () << 32);
    }
    s_rng_seed (&self->rng, self->opts.seed);

    rc = MW_CLI_FAILED;
    size_t miners = (size_t) self->opts.miners;
    self->task_cap = miners * S_TASKS_PER_MINER;
    self->pubs = (mw_publisher_t **) calloc (miners, sizeof (mw_publisher_t *));
    self->validators = (s_validator_t *) calloc (self->opts.validators, sizeof (s_validator_t));
    self->met = (bool *) calloc (miners * self->opts.validators, sizeof (bool));
    self->tasks = (s_task_t *) calloc (self->task_cap, sizeof (s_task_t));
    if (!self->pubs || !self->validators || !self->met || !self->tasks) {
        fprintf (stderr, "minerwatch simulate: out of memory\n");
        goto done;
    }
    for (uint64_t i = 0; i < self->opts.validators; i++)
        s_make_validator (self, &self->validators[i]);
    for (size_t i = 0; i < miners; i++) {
        char name[32];
        snprintf (name, sizeof (name), "miner-%zu", i + 1);
        self->pubs[i] = mw_publisher_new (self->opts.endpoint, name);
        if (!self->pubs[i])
            goto done; //  the library said why
    }

    bool ready = s_wait_subscribers (self);
    if (!ready && !mw_cli_interrupted)
        fprintf (stderr,
                 "minerwatch simulate: no subscriber on %s after %g s; sending anyway, events are "
                 "dropped (and counted) until one subscribes\n",
                 self->opts.endpoint, self->opts.wait);

    bool tty = isatty (STDERR_FILENO);
    double every = tty ? S_PROGRESS_TTY_S : S_PROGRESS_LOG_S;
    double start = mw_cli_now ();
    double next_progress = start + every;
    //  With a duration, the number of events is fixed: rate x duration.
    uint64_t total = self->opts.duration > 0
                         ? (uint64_t) (self->opts.rate * self->opts.duration + 0.5)
                         : UINT64_MAX;
    uint64_t i = 0;
    while (i < total && !mw_cli_interrupted) {
        double now = mw_cli_now ();
        if (now >= next_progress) {
            s_progress (self, now - start, tty, false);
            next_progress += every;
            if (next_progress < now)
                next_progress = now + every;
        }
        double due = start + (double) i / self->opts.rate;
        if (due > now) {
            mw_cli_sleep_until (due < next_progress ? due : next_progress);
            continue;
        }
        s_step (self);
        i++;
    }
    double elapsed = mw_cli_now () - start;
    if (tty || (!self->opts.quiet && elapsed >= every))
        s_progress (self, elapsed, tty, true);
    s_summary (self, elapsed, ready);
    rc = MW_CLI_OK;

done:
    if (self->pubs)
        for (size_t p = 0; p < miners; p++)
            mw_publisher_destroy (&self->pubs[p]); //  flushes what is queued
    free (self->pubs);
    free (self->validators);
    free (self->met);
    free (self->tasks);
    return rc;
}

const mw_cli_command_t mw_cmd_simulate = {
    "simulate", "publish realistic traffic from simulated miners and validators", s_run, s_help};
