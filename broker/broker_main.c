/*  broker_main.c - minerwatch-broker: the broker as a daemon.

    A thin shell around mw_broker: options (a --config file first, flags
    over it), signals, exit codes. Exit status: 0 after SIGINT/SIGTERM (the
    state is saved), 1 if the broker cannot start or fails, 2 for a bad
    command line or config file.

    Signals are blocked in every thread and read from a signalfd polled
    together with the broker actor, so no handler runs at an arbitrary
    point and czmq's own SIGINT handling stays out of the way.
*/
#include "mw_broker.h"
#include "mw_publisher.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define S_NAME "minerwatch-broker"

static void
s_usage (FILE *out)
{
    fprintf (out, "Usage: " S_NAME " [OPTIONS]\n"
                  "Receives events from miners (libminerwatch publishers), keeps the live state\n"
                  "(active tasks, recent events, aggregates), republishes every event with a\n"
                  "broker id, and serves snapshots to gateways and `minerwatch status`.\n\n");
    mw_broker_config_usage (out);
    fprintf (out, "\nSIGTERM, SIGINT and SIGHUP save the state file (if any) and stop: exit 0.\n"
                  "Exit 1 if the broker cannot start, 2 for a bad option or config file.\n"
                  "The wire side is in docs/protocol.md, \"Broker protocol\".\n");
}

//  Report a bad argument: "minerwatch-broker: WHAT 'ARG'" and a hint.
static int
s_bad_usage (const char *what, const char *arg, const char *after)
{
    fprintf (stderr, S_NAME ": %s '%s'%s\nTry '" S_NAME " --help'.\n", what, arg, after);
    return 2;
}

static bool
s_is_bool_flag (const char *name)
{
    return strcmp (name, "verbose") == 0 || strcmp (name, "quiet") == 0;
}

//  Walk argv: for each "--name value" / "--name=value", call fn. Return 0,
//  or an exit code.
typedef int (s_flag_fn) (mw_broker_config_t *cfg, const char *name, const char *value,
                         bool *ingest_reset);

static int
s_walk (int argc, char **argv, mw_broker_config_t *cfg, s_flag_fn *fn)
{
    bool ingest_reset = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp (arg, "-h") == 0)
            arg = "--help";
        else if (strcmp (arg, "-V") == 0)
            arg = "--version";
        if (strncmp (arg, "--", 2) != 0 || !arg[2])
            return s_bad_usage ("unexpected argument", arg, " (options start with --)");
        char name[64];
        const char *value = NULL;
        const char *eq = strchr (arg + 2, '=');
        size_t len = eq ? (size_t) (eq - arg - 2) : strlen (arg + 2);
        if (len >= sizeof (name))
            return s_bad_usage ("unknown option", arg, "");
        memcpy (name, arg + 2, len);
        name[len] = 0;
        if (strcmp (name, "help") != 0 && strcmp (name, "version") != 0 &&
            strcmp (name, "config") != 0 && !mw_broker_config_known (name))
            return s_bad_usage ("unknown option", arg, "");
        if (eq)
            value = eq + 1;
        else if (strcmp (name, "help") != 0 && strcmp (name, "version") != 0 &&
                 !s_is_bool_flag (name)) {
            if (i + 1 >= argc)
                return s_bad_usage ("option", arg, " needs a value");
            value = argv[++i];
        }
        int rc = fn (cfg, name, value, &ingest_reset);
        if (rc)
            return rc;
    }
    return 0;
}

//  Pass 1: --help, --version and --config.
static int
s_pass_config (mw_broker_config_t *cfg, const char *name, const char *value, bool *ingest_reset)
{
    (void) ingest_reset;
    if (strcmp (name, "help") == 0) {
        s_usage (stdout);
        return -1;
    }
    if (strcmp (name, "version") == 0) {
        printf (S_NAME " %s\n", mw_version ());
        return -1;
    }
    if (strcmp (name, "config") == 0) {
        char err[1024];
        if (mw_broker_config_load (cfg, value, err, sizeof (err))) {
            fprintf (stderr, S_NAME ": %s\n", err);
            return 2;
        }
    }
    return 0;
}

//  Pass 2: every other flag, over what the file set.
static int
s_pass_flags (mw_broker_config_t *cfg, const char *name, const char *value, bool *ingest_reset)
{
    if (strcmp (name, "config") == 0)
        return 0;
    if (strcmp (name, "ingest") == 0 && !*ingest_reset) {
        //  Flags replace the default (or the file's) ingest list.
        cfg->ingest_count = 0;
        *ingest_reset = true;
    }
    char err[1024];
    if (mw_broker_config_set (cfg, name, value, err, sizeof (err))) {
        fprintf (stderr, S_NAME ": %s\nTry '" S_NAME " --help'.\n", err);
        return 2;
    }
    return 0;
}

int
main (int argc, char **argv)
{
    mw_broker_config_t cfg;
    mw_broker_config_default (&cfg);
    cfg.log_name = S_NAME;
    int rc = s_walk (argc, argv, &cfg, s_pass_config);
    if (rc)
        return rc < 0 ? 0 : rc;
    rc = s_walk (argc, argv, &cfg, s_pass_flags);
    if (rc)
        return rc;
    char err[1024];
    if (mw_broker_config_check (&cfg, err, sizeof (err))) {
        fprintf (stderr, S_NAME ": %s\n", err);
        return 2;
    }

    //  Block the signals before any thread exists (threads inherit the mask).
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    sigaddset (&signals, SIGHUP); //  a closed terminal: stop cleanly too
    if (pthread_sigmask (SIG_BLOCK, &signals, NULL)) {
        fprintf (stderr, S_NAME ": cannot block signals\n");
        return 1;
    }
    int sigfd = signalfd (-1, &signals, SFD_CLOEXEC);
    if (sigfd < 0) {
        fprintf (stderr, S_NAME ": signalfd: %s\n", strerror (errno));
        return 1;
    }
    zsys_handler_set (NULL);

    mw_broker_t *broker = mw_broker_new (&cfg, err, sizeof (err));
    if (!broker) {
        fprintf (stderr, S_NAME ": %s\n", err);
        close (sigfd);
        return 1;
    }
    zmq_pollitem_t items[] = {{zsock_resolve (mw_broker_actor (broker)), 0, ZMQ_POLLIN, 0},
                              {NULL, sigfd, ZMQ_POLLIN, 0}};
    rc = 0;
    while (true) {
        if (zmq_poll (items, 2, -1) < 0) {
            if (zmq_errno () == EINTR)
                continue;
            fprintf (stderr, S_NAME ": zmq_poll: %s\n", zmq_strerror (zmq_errno ()));
            rc = 1;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            struct signalfd_siginfo info;
            if (read (sigfd, &info, sizeof (info)) == (ssize_t) sizeof (info)) {
                char line[96];
                int len = snprintf (line, sizeof (line), S_NAME ": %s: stopping\n",
                                    info.ssi_signo == SIGINT   ? "SIGINT"
                                    : info.ssi_signo == SIGHUP ? "SIGHUP"
                                                               : "SIGTERM");
                if (!cfg.quiet && write (STDERR_FILENO, line, (size_t) len) < 0)
                    rc = 0;
            }
            break;
        }
        if (items[0].revents & ZMQ_POLLIN) {
            char *what = NULL, *why = NULL;
            zstr_recvx (mw_broker_actor (broker), &what, &why, NULL);
            bool dead = what && strcmp (what, "$DEAD") == 0;
            if (dead)
                fprintf (stderr, S_NAME ": %s\n", why ? why : "the broker stopped");
            zstr_free (&what);
            zstr_free (&why);
            if (dead) {
                rc = 1;
                break;
            }
        }
    }
    mw_broker_destroy (&broker);
    close (sigfd);
    return rc;
}
