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

    The generator is mw_sim (shared with `minerwatch up --demo`): every
    choice comes from one seeded generator (xoshiro256**), so a given
    --seed gives the same events in the same order; only timestamps and
    session ids differ. This file paces it and reports. Sending is paced on the monotonic clock: event i is
    due at start + i / rate, and an event late because the process was
    descheduled is sent at once (the average rate holds).
*/
#include "mw_cli.h"
#include "mw_publisher.h"
#include "mw_sim.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_NAME           "simulate"
#define S_MAX_MINERS     MW_SIM_MINERS_MAX
#define S_MAX_VALIDATORS MW_SIM_VALIDATORS_MAX
#define S_PROGRESS_TTY_S 0.25 //  progress line refresh on a terminal
#define S_PROGRESS_LOG_S 5.0  //  progress line interval otherwise

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
    mw_cli_curve_t curve;
} s_opts_t;

typedef struct {
    s_opts_t opts;
    mw_publisher_t **pubs;
    mw_sim_t *gen; //  the traffic generator
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
                                          MW_CLI_CURVE_OPTIONS,
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
             "\n" MW_CLI_CURVE_HELP "\n"
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

static void
s_progress (s_sim_t *self, double elapsed, bool tty, bool last)
{
    if (self->opts.quiet)
        return;
    mw_sim_stats_t st;
    mw_sim_stats (self->gen, &st);
    uint64_t sent = mw_sim_total (st.sent), dropped = mw_sim_total (st.dropped);
    if (tty)
        fprintf (stderr, "\r\033[K");
    else
        fprintf (stderr, "minerwatch simulate: ");
    fprintf (stderr, "%.1fs  %" PRIu64 " sent  %" PRIu64 " dropped  %zu active task%s", elapsed,
             sent, dropped, st.active, st.active == 1 ? "" : "s");
    if (!tty || last)
        fputc ('\n', stderr);
    fflush (stderr);
}

static void
s_summary (s_sim_t *self, double elapsed, bool waited_ok)
{
    mw_sim_stats_t st;
    mw_sim_stats (self->gen, &st);
    uint64_t sent = mw_sim_total (st.sent), dropped = mw_sim_total (st.dropped);
    printf ("minerwatch simulate: %" PRIu64 " events in %.1f s (%.1f/s), %" PRIu64
            " miners, %" PRIu64 " validators, seed %" PRIu64 "\n",
            sent + dropped, elapsed, elapsed > 0 ? (double) (sent + dropped) / elapsed : 0.0,
            self->opts.miners, self->opts.validators, self->opts.seed);
    printf ("sent %" PRIu64 ", dropped %" PRIu64 "%s\n", sent, dropped,
            dropped && !waited_ok ? " (no subscriber at the start)" : "");
    for (int i = 0; i < MW_SIM_EV_COUNT; i++) {
        printf ("  %-22s %8" PRIu64, mw_sim_ev_names[i], st.sent[i]);
        if (st.dropped[i])
            printf ("  (%" PRIu64 " dropped)", st.dropped[i]);
        printf ("\n");
    }
    printf ("tasks: %" PRIu64 " started, %" PRIu64 " succeeded, %" PRIu64 " failed (%" PRIu64
            " timed out), %zu still active\n",
            st.started, st.succeeded, st.failed, st.timed_out, st.active);
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
            case MW_CLI_OPT_SERVER_KEY:
            case MW_CLI_OPT_CLIENT_CERT:
                mw_cli_curve_option (&opts->curve, c, optarg);
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
    return mw_cli_curve_check (S_NAME, &opts->curve);
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
    if (!self->opts.seed_given)
        self->opts.seed = mw_sim_random_seed ();

    rc = MW_CLI_FAILED;
    size_t miners = (size_t) self->opts.miners;
    self->pubs = (mw_publisher_t **) calloc (miners, sizeof (mw_publisher_t *));
    if (self->pubs)
        self->gen = mw_sim_new (self->pubs, miners, (size_t) self->opts.validators,
                                self->opts.seed);
    if (!self->pubs || !self->gen) {
        fprintf (stderr, "minerwatch simulate: out of memory\n");
        goto done;
    }
    //  Read the key files here first, so that an error names the option.
    char curve_err[640];
    if (mw_cli_curve_client (NULL, &self->opts.curve, curve_err, sizeof (curve_err)) != 0) {
        fprintf (stderr, "minerwatch simulate: %s\n", curve_err);
        goto done;
    }
    for (size_t i = 0; i < miners; i++) {
        char name[32];
        snprintf (name, sizeof (name), "miner-%zu", i + 1);
        //  Each miner its own publisher, and (without a client
        //  certificate) its own new key pair, as separate miners would be.
        self->pubs[i] = mw_publisher_new_curve (self->opts.endpoint, name, MW_PUBLISHER_SNDHWM,
                                                MW_PUBLISHER_LINGER_MS, self->opts.curve.server_key,
                                                self->opts.curve.client_cert);
        if (!self->pubs[i])
            goto done; //  the library said why
    }

    bool ready = s_wait_subscribers (self);
    if (!ready && !mw_cli_interrupted)
        fprintf (stderr,
                 "minerwatch simulate: no subscriber on %s after %g s; sending anyway, events are "
                 "dropped (and counted) until one subscribes%s\n",
                 self->opts.endpoint, self->opts.wait,
                 self->opts.curve.server_key && mw_publisher_connections (self->pubs[0]) == 0
                     ? " (no CURVE handshake completed: is --curve-server-key the broker's "
                       "public key, and is this client allowed?)"
                     : "");

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
        mw_sim_step (self->gen);
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
    mw_sim_destroy (&self->gen);
    return rc;
}

const mw_cli_command_t mw_cmd_simulate = {
    "simulate", "publish realistic traffic from simulated miners and validators", s_run, s_help};
