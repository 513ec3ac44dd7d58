/*  gateway_main.c - minerwatch-gateway: a gateway as a daemon.

    A thin shell: options, signals, exit codes. It mirrors one broker
    (mw_mirror) and serves the mirror over HTTP (mw_http). Exit status: 0
    after SIGINT/SIGTERM/SIGHUP, 1 if the gateway cannot start, 2 for a bad
    command line or config file.

    Signals are blocked in every thread and read from a signalfd, so no
    handler runs at an arbitrary point (the broker daemon does the same).
*/
#include "mw_conf.h"
#include "mw_http.h"
#include "mw_mirror.h"
#include "mw_publisher.h"

#include <czmq.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define S_NAME "minerwatch-gateway"

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: " S_NAME " [OPTIONS]\n"
                  "Mirrors a minerwatch broker and serves its live state over HTTP: the\n"
                  "dashboard, Server-Sent Events, JSON for polling, Prometheus metrics.\n\n"
                  "  " S_NAME " --updates '>tcp://HOST:7711' --snapshot '>tcp://HOST:7712' \\\n"
                  "      --http 127.0.0.1:8080\n\n");
    mw_mirror_config_usage (out);
    fprintf (out, "\n");
    mw_http_config_usage (out);
    fprintf (out,
             "\nOther options:\n"
             "  --config FILE             read options from FILE first (`key = value` lines,\n"
             "                            keys without the dashes, '#' comments); flags given\n"
             "                            here override it. `minerwatch config check FILE`\n"
             "                            validates one\n"
             "  --quiet                   log only errors\n"
             "  --verbose                 log snapshots, link changes and libwebsockets notices\n"
             "  --help, --version\n\n"
             "Endpoints: GET /api/dashboard, /api/dashboard/live (SSE),\n"
             "/api/dashboard/live/status, /metrics, /healthz (docs/http-api.md).\n"
             "SIGTERM, SIGINT and SIGHUP stop it: exit 0. Exit 1 if it cannot start, 2 for a\n"
             "bad option or config file.\n");
}

static int s_bad_usage (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static int
s_bad_usage (const char *fmt, ...)
{
    fprintf (stderr, S_NAME ": ");
    va_list ap;
    va_start (ap, fmt);
    vfprintf (stderr, fmt, ap);
    va_end (ap);
    fprintf (stderr, "\nTry '" S_NAME " --help'.\n");
    return 2;
}

//  The two configurations one option goes to.
typedef struct {
    mw_mirror_config_t *mirror;
    mw_http_config_t *http;
} s_cfgs_t;

//  Apply one option, from a flag or a line of the config file. Return 0, or
//  -1 with a message in err.
static int
s_set (void *arg, const char *name, const char *value, int line, char *err, size_t err_size)
{
    s_cfgs_t *cfgs = (s_cfgs_t *) arg;
    if (!strcmp (name, "quiet") || !strcmp (name, "verbose")) {
        bool on;
        if (mw_conf_parse_bool (value, &on) != 0) {
            snprintf (err, err_size, "--%s '%s': expected true or false", name, value);
            return -1;
        }
        bool verbose = !strcmp (name, "verbose");
        if (on) {
            cfgs->mirror->verbose = cfgs->http->verbose = verbose;
            cfgs->mirror->quiet = cfgs->http->quiet = !verbose;
        }
        else if (verbose)
            cfgs->mirror->verbose = cfgs->http->verbose = false;
        else
            cfgs->mirror->quiet = cfgs->http->quiet = false;
        return 0;
    }
    if (mw_http_config_known (name, NULL))
        return mw_http_config_set (cfgs->http, name, value, err, err_size);
    if (mw_mirror_config_known (name))
        return mw_mirror_config_set (cfgs->mirror, name, value, err, err_size);
    char **names = mw_conf_names_from_usage (s_usage);
    const char *near = mw_conf_suggest (names, name);
    const char *dashes = line ? "" : "--"; //  a key of the file, or a flag
    snprintf (err, err_size, "unknown %s '%s%s'%s%s%s%s", line ? "key" : "option", dashes, name,
              near ? " (did you mean '" : "", near ? dashes : "", near ? near : "",
              near ? "'?)" : "");
    mw_conf_names_free (&names);
    return -1;
}

//  Parse argv into the two configurations: --config FILE first, then the
//  other flags over it. Return 0, -1 for --help / --version (done), or 2
//  for a bad command line or config file.
static int
s_parse (int argc, char **argv, mw_mirror_config_t *mirror, mw_http_config_t *http)
{
    //  Walk once to split the flags; apply them after the file.
    typedef struct {
        char name[64];
        const char *value;
        const char *arg;
    } s_flag_t;
    s_flag_t *flags = calloc ((size_t) argc + 1, sizeof (s_flag_t));
    if (!flags) {
        fprintf (stderr, S_NAME ": out of memory\n");
        return 2;
    }
    size_t count = 0;
    const char *config = NULL;
    int rc = 0;
    s_cfgs_t cfgs = {mirror, http};
    char err[1024];
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp (arg, "-h") || !strcmp (arg, "--help")) {
            s_usage (stdout);
            rc = -1;
            goto done;
        }
        if (!strcmp (arg, "-V") || !strcmp (arg, "--version")) {
            printf (S_NAME " %s\n", mw_version ());
            rc = -1;
            goto done;
        }
        if (strncmp (arg, "--", 2) != 0 || !arg[2]) {
            rc = s_bad_usage ("unexpected argument '%s' (options start with --)", arg);
            goto done;
        }
        s_flag_t *flag = &flags[count];
        const char *eq = strchr (arg + 2, '=');
        size_t len = eq ? (size_t) (eq - arg - 2) : strlen (arg + 2);
        if (len >= sizeof (flag->name)) {
            rc = s_bad_usage ("unknown option '%s'", arg);
            goto done;
        }
        memcpy (flag->name, arg + 2, len);
        flag->name[len] = 0;
        flag->arg = arg;
        bool is_bool = !strcmp (flag->name, "quiet") || !strcmp (flag->name, "verbose");
        if (is_bool && eq) {
            rc = s_bad_usage ("option '%s' takes no value", arg);
            goto done;
        }
        bool known = is_bool || !strcmp (flag->name, "config") ||
                     mw_http_config_known (flag->name, &is_bool) ||
                     mw_mirror_config_known (flag->name);
        if (!known) {
            s_set (&cfgs, flag->name, "", 0, err, sizeof (err));
            rc = s_bad_usage ("%s", err);
            goto done;
        }
        flag->value = eq ? eq + 1 : NULL;
        if (!flag->value && !is_bool) {
            if (i + 1 >= argc) {
                rc = s_bad_usage ("option '%s' needs a value", arg);
                goto done;
            }
            flag->value = argv[++i];
        }
        if (!strcmp (flag->name, "config"))
            config = flag->value; //  the last one counts
        else
            count++;
    }
    if (config && mw_conf_read (config, s_set, &cfgs, NULL, err, sizeof (err)) != 0) {
        fprintf (stderr, S_NAME ": %s\n", err);
        rc = 2;
        goto done;
    }
    for (size_t i = 0; i < count; i++)
        if (s_set (&cfgs, flags[i].name, flags[i].value, 0, err, sizeof (err)) != 0) {
            rc = s_bad_usage ("%s", err);
            goto done;
        }
    if (mw_mirror_config_check (mirror, err, sizeof (err)) != 0 ||
        mw_http_config_check (http, err, sizeof (err)) != 0)
        rc = s_bad_usage ("%s", err);
done:
    free (flags);
    return rc;
}

int
main (int argc, char **argv)
{
    mw_mirror_config_t mirror_cfg;
    mw_mirror_config_default (&mirror_cfg);
    mirror_cfg.log_name = S_NAME;
    mw_http_config_t http_cfg;
    mw_http_config_default (&http_cfg);
    http_cfg.log_name = S_NAME;
    int rc = s_parse (argc, argv, &mirror_cfg, &http_cfg);
    if (rc)
        return rc < 0 ? 0 : rc;

    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGHUP);
    sigaddset (&signals, SIGPIPE);
    if (pthread_sigmask (SIG_BLOCK, &signals, NULL)) {
        fprintf (stderr, S_NAME ": cannot block signals\n");
        return 1;
    }
    sigdelset (&signals, SIGPIPE); //  blocked (a closed socket), never waited for
    int sigfd = signalfd (-1, &signals, SFD_CLOEXEC);
    if (sigfd < 0) {
        fprintf (stderr, S_NAME ": signalfd: %s\n", strerror (errno));
        return 1;
    }
    zsys_handler_set (NULL);

    char err[1024];
    mw_http_t *http = mw_http_new (&http_cfg, err, sizeof (err));
    if (!http) {
        fprintf (stderr, S_NAME ": %s\n", err);
        close (sigfd);
        return 1;
    }
    mw_mirror_t *mirror = mw_mirror_new (&mirror_cfg, http, err, sizeof (err));
    if (!mirror) {
        fprintf (stderr, S_NAME ": %s\n", err);
        mw_http_destroy (&http);
        close (sigfd);
        return 1;
    }
    if (!http_cfg.quiet)
        fprintf (stderr, S_NAME ": serving http%s://%s%s%s:%d/api/dashboard, mirroring %s\n",
                 http_cfg.tls_cert[0] ? "s" : "", strchr (http_cfg.host, ':') ? "[" : "",
                 http_cfg.host, strchr (http_cfg.host, ':') ? "]" : "", mw_http_port (http),
                 mirror_cfg.updates);
    struct pollfd pfd = {sigfd, POLLIN, 0};
    while (poll (&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    struct signalfd_siginfo info;
    if (read (sigfd, &info, sizeof (info)) == (ssize_t) sizeof (info) && !http_cfg.quiet)
        fprintf (stderr, S_NAME ": %s: stopping\n",
                 info.ssi_signo == SIGINT   ? "SIGINT"
                 : info.ssi_signo == SIGHUP ? "SIGHUP"
                                            : "SIGTERM");
    mw_mirror_destroy (&mirror);
    mw_http_destroy (&http);
    close (sigfd);
    return 0;
}
