/*  cmd_up.c - `minerwatch up`: a broker and a gateway in one process, for
    one machine (CONTRACT.md section 3).

    The broker (mw_broker, an actor in its own thread) binds the ingest
    endpoints miners publish to, its update stream and its snapshot service;
    each of the last two also on an inproc:// endpoint, which the gateway's
    mirror (mw_mirror) uses through czmq's shared context. The HTTP server
    (mw_http) serves the mirror. With --demo, simulated miners (mw_sim, the
    generator of `minerwatch simulate`) publish to the ingest endpoint from
    this process, over TCP as real miners would.

    Signals are blocked in every thread and read from a signalfd that the
    main loop polls together with the broker actor (as the daemons do), and
    the main loop paces the demo. SIGINT, SIGTERM and SIGHUP stop everything
    in order: demo publishers, mirror, HTTP, broker (which saves its state
    file). Exit 0 then; 1 if something cannot start or the broker fails; 2
    for a bad command line.
*/
#include "mw_broker.h"
#include "mw_cli.h"
#include "mw_conf.h"
#include "mw_http.h"
#include "mw_mirror.h"
#include "mw_sim.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_NAME            "up"
#define S_LOG_NAME        "minerwatch up"
#define S_UPDATES_INPROC  "inproc://minerwatch-up-updates"
#define S_SNAPSHOT_INPROC "inproc://minerwatch-up-snapshot"
#define S_DEMO_RATE       20.0
#define S_DEMO_MINERS     3
#define S_DEMO_VALIDATORS 8
#define S_DEMO_WAIT_S     5.0  //  wait this long for the demo miners to connect
#define S_DEMO_BATCH      1000 //  demo events sent per loop turn at most
#define S_SYNC_WAIT_MS    5000 //  wait this long for the first snapshot before the banner

typedef struct {
    mw_broker_config_t broker;
    mw_mirror_config_t mirror;
    mw_http_config_t http;
    char publish[MW_BROKER_ENDPOINT_MAX];  //  --publish, "" = inproc only
    char snapshot[MW_BROKER_ENDPOINT_MAX]; //  --snapshot, "" = inproc only
    int ingest_pass; //  1: the file set --ingest, 2: a flag did (each replaces what was before)
    int pass;        //  1: reading the config file, 2: the flags
    bool demo;
    double demo_rate;
    uint64_t demo_miners;
    uint64_t demo_seed;
    bool demo_seed_given;
    bool quiet;
} s_opts_t;

static void
s_help (FILE *out)
{
    fprintf (out,
             "Usage: minerwatch up [OPTIONS]\n"
             "\n"
             "Run a broker and a gateway in one process: miners publish to the ingest\n"
             "endpoint, the dashboard and the JSON API are served over HTTP. The gateway\n"
             "mirrors the broker over inproc; --publish and --snapshot also expose the\n"
             "broker on TCP, for `minerwatch tail`, `minerwatch status` and more gateways.\n"
             "For several machines, run minerwatch-broker and minerwatch-gateway instead.\n"
             "\n"
             "Options:\n"
             "  --http HOST:PORT        where to serve HTTP (default 127.0.0.1:8080; port 0\n"
             "                          picks a free one; [::1]:PORT for IPv6)\n"
             "  --ingest EP             where miners publish, repeatable; '@' binds\n"
             "                          (default " MW_BROKER_INGEST_DEFAULT ")\n"
             "  --publish EP            also serve the update stream there, 'none' for\n"
             "                          inproc only (default " MW_BROKER_PUBLISH_DEFAULT ")\n"
             "  --snapshot EP           also serve snapshots there, 'none' for inproc only\n"
             "                          (default " MW_BROKER_SNAPSHOT_DEFAULT ")\n"
             "  --state-file PATH       save the state there (every --save-interval seconds,\n"
             "                          default %d, and at exit) and restore it at start\n"
             "  --save-interval S       seconds between saves, 0 = only at exit\n"
             "  --demo                  also run simulated miners in this process, publishing\n"
             "                          to the ingest endpoint, so the dashboard moves at once\n"
             "  --demo-rate N           demo events per second, all miners (default %g)\n"
             "  --demo-miners K         simulated miners (default %d)\n"
             "  --demo-seed N           seed of the demo's generator (default: random)\n"
             "  --config FILE           read options from FILE first: `key = value` lines,\n"
             "                          keys without the dashes, '#' comments; flags given\n"
             "                          here override it (`minerwatch config check FILE\n"
             "                          --for up` validates one)\n"
             "  --quiet                 log only warnings and errors\n"
             "  --verbose               log snapshots, link changes, libwebsockets notices\n"
             "  -h, --help              show this help and exit\n"
             "\n"
             "HTTP options, as minerwatch-gateway's: --auth-token TOKEN, --basic-auth\n"
             "USER:PASS, --auth-token-file FILE, --basic-auth-file FILE, --insecure (serve\n"
             "a non-loopback address without auth), --open-metrics, --cors ORIGIN,\n"
             "--tls-cert FILE, --tls-key FILE, --max-clients N, --ring-frames N,\n"
             "--ring-bytes N, --client-max-unsent N, --snapshot-events N,\n"
             "--keepalive S, --max-header BYTES, --sse-send-buffer BYTES; the mirror's\n"
             "--heartbeat-timeout MS and --render-interval MS (see minerwatch-gateway\n"
             "--help).\n"
             "Bounds of the state, as minerwatch-broker's: --recent-events N, --task-history N,\n"
             "--validator-activity N, --max-active-tasks N, --max-validators N,\n"
             "--max-miners N, --task-timeout S, --timeout-grace S (see minerwatch-broker\n"
             "--help). CURVE needs the separate daemons.\n"
             "\n"
             "On start it prints the dashboard's URL and how miners connect. Ctrl-C, SIGTERM\n"
             "or SIGHUP stop it: the state file is saved, exit 0. Exit 1 if it cannot start\n"
             "(e.g. a port in use) or the broker fails, 2 for a bad option.\n"
             "\n"
             "Examples:\n"
             "  minerwatch up --demo\n"
             "  minerwatch up --http 127.0.0.1:9090 --state-file /var/lib/minerwatch/state\n"
             "  minerwatch up --http 0.0.0.0:8080 --auth-token \"$(openssl rand -hex 16)\"\n",
             MW_BROKER_SAVE_INTERVAL_DEFAULT, S_DEMO_RATE, S_DEMO_MINERS);
}

//  Options of the broker that `up` sets itself or does not offer.
static bool
s_broker_own (const char *name)
{
    static const char *names[] = {"ingest",        "publish", "snapshot", "curve-secret",
                                  "curve-clients", "verbose", "quiet"};
    for (size_t i = 0; i < sizeof (names) / sizeof (names[0]); i++)
        if (strcmp (name, names[i]) == 0)
            return true;
    return false;
}

//  Copy the n-th endpoint of a comma list into ep. Return its length, or
//  -1 past the end (or if it does not fit).
static int
s_endpoint_at (const char *list, int n, char *ep, size_t size)
{
    const char *p = list;
    for (int i = 0; *p; i++) {
        const char *comma = strchr (p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen (p);
        if (i == n) {
            if (len >= size)
                return -1;
            memcpy (ep, p, len);
            ep[len] = 0;
            return (int) len;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return -1;
}

static int
s_set_endpoint (char *dest, size_t size, const char *name, const char *value, char *err,
                size_t err_size)
{
    if (strcmp (value, "none") == 0) {
        dest[0] = 0;
        return 0;
    }
    const char *why;
    if (mw_cli_check_endpoints (value, &why) != 0) {
        snprintf (err, err_size, "invalid --%s '%s': %s", name, value, why);
        return -1;
    }
    //  Room for the inproc endpoint put in front of it.
    if (strlen (value) + sizeof (S_SNAPSHOT_INPROC) + 2 > size) {
        snprintf (err, err_size, "--%s: '%s' is too long", name, value);
        return -1;
    }
    snprintf (dest, size, "%s", value);
    return 0;
}

//  Return true if name is an option of `up`; *is_bool_p tells whether it
//  takes no value on the command line.
static bool
s_known (const char *name, bool *is_bool_p)
{
    *is_bool_p = false;
    if (!strcmp (name, "demo") || !strcmp (name, "quiet") || !strcmp (name, "verbose")) {
        *is_bool_p = true;
        return true;
    }
    if (mw_http_config_known (name, is_bool_p))
        return true;
    return !strcmp (name, "ingest") || !strcmp (name, "publish") || !strcmp (name, "snapshot") ||
           !strcmp (name, "demo-rate") || !strcmp (name, "demo-miners") ||
           !strcmp (name, "demo-seed") || (mw_broker_config_known (name) && !s_broker_own (name)) ||
           (mw_mirror_config_known (name) && strcmp (name, "updates") != 0);
}

static void
s_defaults (s_opts_t *opts)
{
    memset (opts, 0, sizeof (*opts));
    mw_broker_config_default (&opts->broker);
    mw_mirror_config_default (&opts->mirror);
    mw_http_config_default (&opts->http);
    opts->broker.log_name = opts->mirror.log_name = opts->http.log_name = S_LOG_NAME;
    snprintf (opts->publish, sizeof (opts->publish), "%s", MW_BROKER_PUBLISH_DEFAULT);
    snprintf (opts->snapshot, sizeof (opts->snapshot), "%s", MW_BROKER_SNAPSHOT_DEFAULT);
    opts->demo_rate = S_DEMO_RATE;
    opts->demo_miners = S_DEMO_MINERS;
}

//  Apply one option: a flag (line 0) or a line of the --config file.
//  Return 0, or -1 with a message in err.
static int
s_apply (void *arg, const char *name, const char *value, int line, char *err, size_t err_size)
{
    s_opts_t *opts = (s_opts_t *) arg;
    bool is_bool;
    if (!strncmp (name, "curve-", 6)) {
        snprintf (err, err_size,
                  "'%s': CURVE is for brokers and gateways on separate machines; run "
                  "minerwatch-broker and minerwatch-gateway",
                  name);
        return -1;
    }
    if (!s_known (name, &is_bool)) {
        char **names = mw_conf_names_from_usage (s_help);
        const char *near = mw_conf_suggest (names, name);
        const char *dashes = line ? "" : "--"; //  a key of the file, or a flag
        snprintf (err, err_size, "unknown %s '%s%s'%s%s%s%s", line ? "key" : "option", dashes, name,
                  near ? " (did you mean '" : "", near ? dashes : "", near ? near : "",
                  near ? "'?)" : "");
        mw_conf_names_free (&names);
        return -1;
    }
    if (!strcmp (name, "demo") || !strcmp (name, "quiet") || !strcmp (name, "verbose")) {
        bool on;
        if (mw_conf_parse_bool (value, &on) != 0) {
            snprintf (err, err_size, "--%s '%s': expected true or false", name, value);
            return -1;
        }
        if (!strcmp (name, "demo"))
            opts->demo = on;
        else if (on) {
            bool verbose = !strcmp (name, "verbose");
            opts->broker.verbose = opts->mirror.verbose = opts->http.verbose = verbose;
            opts->broker.quiet = opts->mirror.quiet = opts->http.quiet = !verbose;
            opts->quiet = !verbose;
        }
        else if (!strcmp (name, "verbose"))
            opts->broker.verbose = opts->mirror.verbose = opts->http.verbose = false;
        else
            opts->broker.quiet = opts->mirror.quiet = opts->http.quiet = opts->quiet = false;
        return 0;
    }
    if (!value && !is_bool) {
        snprintf (err, err_size, "--%s needs a value", name);
        return -1;
    }
    if (!strcmp (name, "ingest")) {
        if (opts->ingest_pass != opts->pass)
            opts->broker.ingest_count = 0; //  the file's list, then the flags', replace
        opts->ingest_pass = opts->pass;
        const char *why;
        if (mw_cli_check_endpoints (value, &why) != 0) {
            snprintf (err, err_size, "invalid --ingest '%s': %s", value, why);
            return -1;
        }
        return mw_broker_config_set (&opts->broker, name, value, err, err_size);
    }
    if (!strcmp (name, "publish"))
        return s_set_endpoint (opts->publish, sizeof (opts->publish), name, value, err, err_size);
    if (!strcmp (name, "snapshot"))
        return s_set_endpoint (opts->snapshot, sizeof (opts->snapshot), name, value, err, err_size);
    if (!strcmp (name, "demo-rate")) {
        if (mw_cli_parse_double (value, 0.001, 1e6, &opts->demo_rate) != 0) {
            snprintf (err, err_size,
                      "invalid --demo-rate '%s': expected events per second from 0.001 to "
                      "1000000",
                      value);
            return -1;
        }
        return 0;
    }
    if (!strcmp (name, "demo-miners")) {
        if (mw_cli_parse_uint (value, 1, 100, &opts->demo_miners) != 0) {
            snprintf (err, err_size,
                      "invalid --demo-miners '%s': expected a whole number from 1 to 100", value);
            return -1;
        }
        return 0;
    }
    if (!strcmp (name, "demo-seed")) {
        if (mw_cli_parse_uint (value, 0, UINT64_MAX, &opts->demo_seed) != 0) {
            snprintf (err, err_size, "invalid --demo-seed '%s': expected a whole number", value);
            return -1;
        }
        opts->demo_seed_given = true;
        return 0;
    }
    if (mw_http_config_known (name, NULL))
        return mw_http_config_set (&opts->http, name, value, err, err_size);
    if (mw_mirror_config_known (name))
        return mw_mirror_config_set (&opts->mirror, name, value, err, err_size);
    return mw_broker_config_set (&opts->broker, name, value, err, err_size);
}

//  After the file and the flags: the inproc endpoints and the checks of
//  the whole. Return 0, or -1 with a message in err.
static int
s_finish (s_opts_t *opts, char *err, size_t err_size)
{
    //  The broker serves its update stream and snapshots on inproc for the
    //  mirror, and where --publish and --snapshot say.
    int n = snprintf (opts->broker.publish, sizeof (opts->broker.publish),
                      "@" S_UPDATES_INPROC "%s%s", opts->publish[0] ? "," : "", opts->publish);
    int m = snprintf (opts->broker.snapshot, sizeof (opts->broker.snapshot),
                      "@" S_SNAPSHOT_INPROC "%s%s", opts->snapshot[0] ? "," : "", opts->snapshot);
    if (n < 0 || m < 0 || (size_t) n >= sizeof (opts->broker.publish) ||
        (size_t) m >= sizeof (opts->broker.snapshot)) {
        snprintf (err, err_size, "--publish or --snapshot is too long");
        return -1;
    }
    snprintf (opts->mirror.updates, sizeof (opts->mirror.updates), ">" S_UPDATES_INPROC);
    snprintf (opts->mirror.snapshot, sizeof (opts->mirror.snapshot), ">" S_SNAPSHOT_INPROC);

    if (mw_broker_config_check (&opts->broker, err, err_size) != 0 ||
        mw_mirror_config_check (&opts->mirror, err, err_size) != 0 ||
        mw_http_config_check (&opts->http, err, err_size) != 0)
        return -1;
    if (opts->demo) {
        //  A bound tcp:// or ipc:// endpoint ('@' or no prefix) for the
        //  demo's publishers, which have their own ZeroMQ context.
        bool binds = false;
        char ep[MW_BROKER_ENDPOINT_MAX];
        for (size_t i = 0; i < opts->broker.ingest_count; i++)
            for (int k = 0; s_endpoint_at (opts->broker.ingest[i], k, ep, sizeof (ep)) >= 0; k++) {
                const char *t = ep[0] == '@' ? ep + 1 : ep;
                if (!strncmp (t, "tcp://", 6) || !strncmp (t, "ipc://", 6))
                    binds = true;
            }
        if (!binds) {
            snprintf (err, err_size,
                      "--demo needs an --ingest endpoint that binds tcp:// or "
                      "ipc:// (e.g. " MW_BROKER_INGEST_DEFAULT ")");
            return -1;
        }
    }
    return 0;
}

//  Parse argv (argv[0] is "up"): the --config file first, then the flags
//  over it. Return 0, -1 after --help, or MW_CLI_USAGE.
static int
s_parse (s_opts_t *opts, int argc, char **argv)
{
    s_defaults (opts);
    typedef struct {
        char name[64];
        const char *value;
    } s_flag_t;
    s_flag_t *flags = calloc ((size_t) argc + 1, sizeof (s_flag_t));
    if (!flags)
        return mw_cli_usage (S_NAME, "out of memory");
    size_t count = 0;
    const char *config = NULL;
    int rc = 0;
    char err[1024];
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
            s_help (stdout);
            rc = -1;
            goto done;
        }
        if (strncmp (arg, "--", 2) != 0 || !arg[2]) {
            rc = mw_cli_usage (S_NAME, "unexpected argument '%s'", arg);
            goto done;
        }
        s_flag_t *flag = &flags[count];
        const char *eq = strchr (arg + 2, '=');
        size_t len = eq ? (size_t) (eq - arg - 2) : strlen (arg + 2);
        if (len >= sizeof (flag->name)) {
            rc = mw_cli_usage (S_NAME, "unknown option '%s'", arg);
            goto done;
        }
        memcpy (flag->name, arg + 2, len);
        flag->name[len] = 0;
        flag->value = eq ? eq + 1 : NULL;
        bool is_bool = false;
        if (strcmp (flag->name, "config") != 0 && !s_known (flag->name, &is_bool)) {
            s_apply (opts, flag->name, NULL, 0, err, sizeof (err));
            rc = mw_cli_usage (S_NAME, "%s", err);
            goto done;
        }
        if (is_bool && flag->value && !mw_http_config_known (flag->name, NULL)) {
            rc = mw_cli_usage (S_NAME, "option '--%s' takes no value", flag->name);
            goto done;
        }
        if (!flag->value && !is_bool) {
            if (i + 1 >= argc) {
                rc = mw_cli_usage (S_NAME, "option '--%s' needs a value", flag->name);
                goto done;
            }
            flag->value = argv[++i];
        }
        if (!strcmp (flag->name, "config"))
            config = flag->value; //  the last one counts
        else
            count++;
    }
    opts->pass = 1;
    if (config && mw_conf_read (config, s_apply, opts, NULL, err, sizeof (err)) != 0) {
        fprintf (stderr, "minerwatch up: %s\n", err);
        rc = MW_CLI_USAGE;
        goto done;
    }
    opts->pass = 2;
    for (size_t i = 0; i < count; i++)
        if (s_apply (opts, flags[i].name, flags[i].value, 0, err, sizeof (err)) != 0) {
            rc = mw_cli_usage (S_NAME, "%s", err);
            goto done;
        }
    if (s_finish (opts, err, sizeof (err)) != 0)
        rc = mw_cli_usage (S_NAME, "%s", err);
done:
    free (flags);
    return rc;
}

int
mw_cli_up_config_check (const char *path, FILE *report, char *err, size_t err_size)
{
    s_opts_t *opts = malloc (sizeof (s_opts_t));
    if (!opts) {
        snprintf (err, err_size, "out of memory");
        return -1;
    }
    s_defaults (opts);
    opts->pass = 1;
    int errors = mw_conf_read (path, s_apply, opts, report, err, err_size);
    if (errors == 0 && s_finish (opts, err, err_size) != 0) {
        fprintf (report, "%s: %s\n", path, err);
        errors = 1;
    }
    free (opts);
    return errors;
}

//  Check that the HTTP address is free before libwebsockets tries it, to
//  say clearly why not. Return 0, or -1 with a message in err.
static int
s_http_free (const mw_http_config_t *cfg, char *err, size_t err_size)
{
    if (cfg->port == 0)
        return 0;
    char port[16];
    snprintf (port, sizeof (port), "%d", cfg->port);
    struct addrinfo hints;
    memset (&hints, 0, sizeof (hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    struct addrinfo *res = NULL;
    int gai = getaddrinfo (cfg->host, port, &hints, &res);
    if (gai != 0) {
        snprintf (err, err_size, "cannot serve HTTP on %s:%d: %s", cfg->host, cfg->port,
                  gai_strerror (gai));
        return -1;
    }
    int rc = 0;
    for (struct addrinfo *ai = res; ai && rc == 0; ai = ai->ai_next) {
        int fd = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
        if (bind (fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen (fd, 1) != 0) {
            int e = errno;
            snprintf (err, err_size, "cannot serve HTTP on %s:%d: %s%s", cfg->host, cfg->port,
                      strerror (e),
                      e == EADDRINUSE ? " (another minerwatch up or gateway running? pick "
                                        "another port with --http HOST:PORT)"
                                      : "");
            rc = -1;
        }
        close (fd);
    }
    freeaddrinfo (res);
    return rc;
}

//  Copy the endpoints of a comma list that are not inproc into out, "" if none.
static void
s_public_endpoints (const char *list, char *out, size_t size)
{
    out[0] = 0;
    size_t used = 0;
    char ep[MW_BROKER_ENDPOINT_MAX];
    int len;
    for (int i = 0; (len = s_endpoint_at (list, i, ep, sizeof (ep))) >= 0; i++)
        if (len && !strstr (ep, "inproc://") && used + (size_t) len + 2 < size)
            used += (size_t) snprintf (out + used, size - used, "%s%s", used ? "," : "", ep);
}

//  From endpoints a broker ended up with, the one a local client connects
//  to: the first that binds tcp:// or ipc://, as ">tcp://HOST:PORT" with a
//  wildcard host made a loopback one. Return 0, or -1 if there is none.
static int
s_connect_endpoint (const char *list, char *out, size_t size)
{
    char ep[MW_BROKER_ENDPOINT_MAX];
    for (int i = 0; s_endpoint_at (list, i, ep, sizeof (ep)) >= 0; i++) {
        if (!strncmp (ep, "@ipc://", 7)) {
            snprintf (out, size, ">%s", ep + 1);
            return 0;
        }
        const char *colon = strrchr (ep, ':');
        if (strncmp (ep, "@tcp://", 7) != 0 || colon < ep + 7)
            continue;
        const char *host = ep + 7;
        size_t hlen = (size_t) (colon - host);
        const char *loopback = NULL;
        if ((hlen == 1 && host[0] == '*') || (hlen == 7 && !strncmp (host, "0.0.0.0", 7)))
            loopback = "127.0.0.1";
        else if ((hlen == 4 && !strncmp (host, "[::]", 4)) ||
                 (hlen == 3 && !strncmp (host, "[*]", 3)))
            loopback = "[::1]";
        if (loopback)
            snprintf (out, size, ">tcp://%s%s", loopback, colon);
        else
            snprintf (out, size, ">%s", ep + 1);
        return 0;
    }
    return -1;
}

//  The demo: simulated miners publishing to the ingest endpoint.
typedef struct {
    mw_publisher_t **pubs;
    size_t miners;
    mw_sim_t *sim;
    double rate;
    bool started;    //  pacing began
    double ready_by; //  start sending by then even if not every miner is connected
    double start;
    uint64_t sent; //  events generated since start
} s_demo_t;

static void
s_demo_destroy (s_demo_t *demo)
{
    if (demo->pubs)
        for (size_t i = 0; i < demo->miners; i++)
            mw_publisher_destroy (&demo->pubs[i]);
    free (demo->pubs);
    demo->pubs = NULL;
    mw_sim_destroy (&demo->sim);
}

static int
s_demo_start (s_demo_t *demo, const s_opts_t *opts, const char *endpoint)
{
    demo->miners = (size_t) opts->demo_miners;
    demo->rate = opts->demo_rate;
    demo->pubs = (mw_publisher_t **) calloc (demo->miners, sizeof (mw_publisher_t *));
    if (!demo->pubs)
        return -1;
    for (size_t i = 0; i < demo->miners; i++) {
        char name[32];
        snprintf (name, sizeof (name), "demo-miner-%zu", i + 1);
        demo->pubs[i] =
            mw_publisher_new_opts (endpoint, name, MW_PUBLISHER_SNDHWM, MW_PUBLISHER_LINGER_MS);
        if (!demo->pubs[i])
            return -1; //  the library said why
    }
    demo->sim = mw_sim_new (demo->pubs, demo->miners, S_DEMO_VALIDATORS,
                            opts->demo_seed_given ? opts->demo_seed : mw_sim_random_seed ());
    if (!demo->sim)
        return -1;
    demo->ready_by = mw_cli_now () + S_DEMO_WAIT_S;
    return 0;
}

//  Send what is due. Return the milliseconds until the next event is due.
static long
s_demo_run (s_demo_t *demo)
{
    double now = mw_cli_now ();
    if (!demo->started) {
        bool all = true;
        for (size_t i = 0; i < demo->miners && all; i++)
            all = mw_publisher_wait_ready (demo->pubs[i], 0) == 0;
        if (!all && now < demo->ready_by)
            return 20;
        demo->started = true;
        demo->start = now;
    }
    for (int n = 0; n < S_DEMO_BATCH; n++) {
        double due = demo->start + (double) demo->sent / demo->rate;
        if (due > now) {
            long ms = (long) ((due - now) * 1000.0) + 1;
            return ms;
        }
        mw_sim_step (demo->sim);
        demo->sent++;
    }
    return 0;
}

//  Print the banner on stdout: where to look and how to connect.
static void
s_banner (const s_opts_t *opts, mw_http_t *http, const char *ingest, const char *publish,
          const char *snapshot, const char *miner_ep, const s_demo_t *demo)
{
    bool v6 = strchr (opts->http.host, ':') != NULL;
    char url[MW_HTTP_HOST_MAX + 64];
    snprintf (url, sizeof (url), "http%s://%s%s%s:%d", opts->http.tls_cert[0] ? "s" : "",
              v6 ? "[" : "", opts->http.host, v6 ? "]" : "", mw_http_port (http));
    printf ("minerwatch up: broker and gateway running; Ctrl-C stops\n"
            "  dashboard  %s/api/dashboard\n"
            "  live JSON  %s/api/dashboard/live/status (SSE: /api/dashboard/live)\n"
            "  health     %s/healthz, metrics: %s/metrics\n"
            "  ingest     %s\n",
            url, url, url, url, ingest);
    char ep[MW_BROKER_ENDPOINT_MAX];
    if (publish[0]) {
        printf ("  updates    %s", publish);
        if (s_connect_endpoint (publish, ep, sizeof (ep)) == 0)
            printf (" (watch: minerwatch tail '%s')", ep);
        printf ("\n");
    }
    if (snapshot[0]) {
        printf ("  snapshot   %s", snapshot);
        if (s_connect_endpoint (snapshot, ep, sizeof (ep)) == 0)
            printf (" (minerwatch status '%s')", ep);
        printf ("\n");
    }
    if (miner_ep)
        printf ("Connect a miner: publish to '%s', e.g.\n"
                "  C       mw_publisher_new (\"%s\", \"my-miner\")\n"
                "  Python  minerwatch.Publisher (\"%s\", miner=\"my-miner\")\n"
                "  shell   minerwatch publish -e '%s' -t task_start task_id=t1 prompt=hello\n",
                miner_ep, miner_ep, miner_ep, miner_ep);
    if (demo)
        printf ("Demo: %zu simulated miners (demo-miner-1..%zu) publish %g events/s there.\n",
                demo->miners, demo->miners, demo->rate);
    fflush (stdout);
}

static const char *
s_signal_name (uint32_t signo)
{
    return signo == SIGINT ? "SIGINT" : signo == SIGHUP ? "SIGHUP" : "SIGTERM";
}

static int
s_run (int argc, char **argv)
{
    s_opts_t *opts = (s_opts_t *) calloc (1, sizeof (s_opts_t));
    if (!opts) {
        fprintf (stderr, "minerwatch up: out of memory\n");
        return MW_CLI_FAILED;
    }
    int rc = s_parse (opts, argc, argv);
    if (rc != 0) {
        free (opts);
        return rc < 0 ? MW_CLI_OK : rc;
    }

    //  Block the signals before any thread exists (threads inherit the
    //  mask) and read them from a signalfd.
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGHUP);
    int sigfd = -1;
    if (pthread_sigmask (SIG_BLOCK, &signals, NULL) == 0)
        sigfd = signalfd (-1, &signals, SFD_CLOEXEC);
    if (sigfd < 0) {
        fprintf (stderr, "minerwatch up: cannot set up signals: %s\n", strerror (errno));
        free (opts);
        return MW_CLI_FAILED;
    }
    zsys_handler_set (NULL);

    rc = MW_CLI_FAILED;
    char err[1024];
    mw_broker_t *broker = NULL;
    mw_http_t *http = NULL;
    mw_mirror_t *mirror = NULL;
    s_demo_t demo;
    memset (&demo, 0, sizeof (demo));
    char ingest[1024], publish[1024], snapshot[1024], miner_ep[MW_BROKER_ENDPOINT_MAX];

    if (s_http_free (&opts->http, err, sizeof (err)) != 0) {
        fprintf (stderr, "minerwatch up: %s\n", err);
        goto done;
    }
    broker = mw_broker_new (&opts->broker, err, sizeof (err));
    if (!broker) {
        fprintf (stderr, "minerwatch up: %s\n", err);
        goto done;
    }
    http = mw_http_new (&opts->http, err, sizeof (err));
    if (!http) {
        fprintf (stderr, "minerwatch up: %s\n", err);
        goto done;
    }
    mirror = mw_mirror_new (&opts->mirror, http, err, sizeof (err));
    if (!mirror) {
        fprintf (stderr, "minerwatch up: %s\n", err);
        goto done;
    }
    if (mw_broker_endpoints (broker, "ingest", ingest, sizeof (ingest)) != 0 ||
        mw_broker_endpoints (broker, "publish", err, sizeof (err)) != 0) {
        fprintf (stderr, "minerwatch up: the broker stopped\n");
        goto done;
    }
    s_public_endpoints (err, publish, sizeof (publish));
    if (mw_broker_endpoints (broker, "snapshot", err, sizeof (err)) != 0) {
        fprintf (stderr, "minerwatch up: the broker stopped\n");
        goto done;
    }
    s_public_endpoints (err, snapshot, sizeof (snapshot));
    bool have_miner_ep = s_connect_endpoint (ingest, miner_ep, sizeof (miner_ep)) == 0;
    if (opts->demo) {
        if (!have_miner_ep) {
            fprintf (stderr, "minerwatch up: --demo: no ingest endpoint to connect to in %s\n",
                     ingest);
            goto done;
        }
        if (s_demo_start (&demo, opts, miner_ep) != 0) {
            fprintf (stderr, "minerwatch up: cannot start the demo miners\n");
            goto done;
        }
    }

    //  Print the banner once the gateway has the broker's state (over
    //  inproc that takes milliseconds), so that the URL serves data at once.
    for (int i = 0; i < S_SYNC_WAIT_MS / 20; i++) {
        mw_mirror_stats_t ms;
        if (mw_mirror_stats (mirror, &ms) != 0 || ms.synced)
            break;
        zclock_sleep (20);
    }
    s_banner (opts, http, ingest, publish, snapshot, have_miner_ep ? miner_ep : NULL,
              opts->demo ? &demo : NULL);

    //  Run until a signal, or until the broker stops on its own.
    zmq_pollitem_t items[] = {{zsock_resolve (mw_broker_actor (broker)), 0, ZMQ_POLLIN, 0},
                              {NULL, sigfd, ZMQ_POLLIN, 0}};
    long timeout = opts->demo ? 0 : -1;
    while (true) {
        if (zmq_poll (items, 2, timeout) < 0) {
            if (zmq_errno () == EINTR)
                continue;
            fprintf (stderr, "minerwatch up: zmq_poll: %s\n", zmq_strerror (zmq_errno ()));
            goto done;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            struct signalfd_siginfo info;
            if (read (sigfd, &info, sizeof (info)) == (ssize_t) sizeof (info) && !opts->quiet)
                fprintf (stderr, "minerwatch up: %s: stopping\n", s_signal_name (info.ssi_signo));
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            char *what = NULL, *why = NULL;
            zstr_recvx (mw_broker_actor (broker), &what, &why, NULL);
            bool dead = what && strcmp (what, "$DEAD") == 0;
            if (dead)
                fprintf (stderr, "minerwatch up: %s\n", why ? why : "the broker stopped");
            zstr_free (&what);
            zstr_free (&why);
            if (dead)
                goto done;
        }
        if (opts->demo)
            timeout = s_demo_run (&demo);
    }
    rc = MW_CLI_OK;
    if (opts->demo && !opts->quiet) {
        mw_sim_stats_t st;
        mw_sim_stats (demo.sim, &st);
        fprintf (stderr,
                 "minerwatch up: demo: %" PRIu64 " events sent, %" PRIu64 " dropped, %" PRIu64
                 " tasks started\n",
                 mw_sim_total (st.sent), mw_sim_total (st.dropped), st.started);
    }

done:
    //  In order: nothing publishes into a stopped broker, nothing reads
    //  from a freed server.
    s_demo_destroy (&demo);
    mw_mirror_destroy (&mirror);
    mw_http_destroy (&http);
    mw_broker_destroy (&broker); //  saves the state file
    close (sigfd);
    free (opts);
    return rc;
}

const mw_cli_command_t mw_cmd_up = {
    "up", "run a broker and a gateway (dashboard, JSON, SSE) in one process", s_run, s_help};
