/*  cmd_config.c - `minerwatch config check FILE [--for broker|gateway|up]`:
    validate a config file before a daemon reads it.

    The file format is the daemons' own (broker/mw_conf.h): `key = value`
    lines, keys are the long flag names. The check reads the file with the
    same code the daemon uses and the same setters, so what it accepts the
    daemon accepts; then it checks the whole (mw_*_config_check) and the
    files named (CURVE certificates, TLS files, the state file's
    directory). Every error is one line "FILE:LINE: message" (or
    "FILE: message" for the whole); an unknown key gets the nearest known
    one. Exit 0 when valid (with a summary), 1 when not, 2 for bad usage.
*/
#include "mw_broker.h"
#include "mw_cli.h"
#include "mw_conf.h"
#include "mw_curve.h"
#include "mw_http.h"
#include "mw_mirror.h"

#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_NAME     "config"
#define S_KEYS_MAX 256 //  settings remembered for the summary and line numbers

typedef enum { S_BROKER, S_GATEWAY, S_UP, S_MODES } s_mode_t;
static const char *s_mode_names[] = {"broker", "gateway", "up"};
static const char *s_mode_titles[] = {"minerwatch-broker", "minerwatch-gateway", "minerwatch up"};

static void
s_help (FILE *out)
{
    fprintf (out, "Usage: minerwatch config check FILE [--for broker|gateway|up]\n"
                  "\n"
                  "Validate a config file of minerwatch-broker, minerwatch-gateway or\n"
                  "`minerwatch up` (their --config FILE) with the daemons' own parser:\n"
                  "unknown keys (with the nearest known one), bad values, settings that\n"
                  "do not go together, secret and key files that are missing, unreadable or\n"
                  "open to other users. Each error is printed as FILE:LINE: MESSAGE.\n"
                  "\n"
                  "The format: one `key = value` per line; keys are the long options without\n"
                  "the dashes (see minerwatch-broker --help, minerwatch-gateway --help,\n"
                  "minerwatch up --help); '#' starts a comment line; a value may be put in\n"
                  "double quotes. Flags given to the daemon override the file. Secrets can\n"
                  "live in files of their own: auth-token-file, basic-auth-file (mode 600:\n"
                  "the whole file, less a final newline).\n"
                  "\n"
                  "Options:\n"
                  "  --for KIND    broker, gateway or up (default: guessed from the keys)\n"
                  "  -q, --quiet   print only errors: nothing when the file is valid\n"
                  "  -h, --help    show this help and exit\n"
                  "\n"
                  "Exit 0 when the file is valid (a summary is printed), 1 when it is not,\n"
                  "2 for bad usage.\n"
                  "\n"
                  "Examples:\n"
                  "  minerwatch config check /etc/minerwatch/broker.conf\n"
                  "  minerwatch config check gateway.conf --for gateway\n");
}

//  One setting as read, for the summary and to put line numbers on the
//  checks of the whole.
typedef struct {
    char key[64];
    char value[256];
    int line;
} s_setting_t;

typedef struct {
    const char *path;
    FILE *report;
    s_mode_t mode;
    mw_broker_config_t broker;
    mw_mirror_config_t mirror;
    mw_http_config_t http;
    char **names; //  the mode's option names, for "did you mean"
    bool ingest_seen;
    s_setting_t settings[S_KEYS_MAX];
    size_t count;
    int errors;
    int warnings;
    bool quiet; //  --quiet: no warnings, no summary
} s_check_t;

static void s_report (s_check_t *self, int line, bool warning, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_report (s_check_t *self, int line, bool warning, const char *fmt, ...)
{
    if (warning) {
        self->warnings++;
        if (self->quiet)
            return;
    }
    else
        self->errors++;
    if (line > 0)
        fprintf (self->report, "%s:%d: %s", self->path, line, warning ? "warning: " : "");
    else
        fprintf (self->report, "%s: %s", self->path, warning ? "warning: " : "");
    va_list ap;
    va_start (ap, fmt);
    vfprintf (self->report, fmt, ap);
    va_end (ap);
    fprintf (self->report, "\n");
}

static bool
s_is_secret (const char *key)
{
    return !strcmp (key, "auth-token") || !strcmp (key, "basic-auth");
}

//  Remember a setting; warn when a key (other than the list "ingest") is
//  set again.
static void
s_remember (s_check_t *self, const char *key, const char *value, int line)
{
    if (strcmp (key, "ingest") != 0)
        for (size_t i = 0; i < self->count; i++)
            if (!strcmp (self->settings[i].key, key)) {
                s_report (self, line, true, "'%s' is set again: line %d no longer counts", key,
                          self->settings[i].line);
                self->settings[i].line = line;
                snprintf (self->settings[i].value, sizeof (self->settings[i].value), "%s",
                          s_is_secret (key) ? "(secret)" : value);
                return;
            }
    if (self->count == S_KEYS_MAX)
        return;
    s_setting_t *s = &self->settings[self->count++];
    snprintf (s->key, sizeof (s->key), "%s", key);
    snprintf (s->value, sizeof (s->value), "%s", s_is_secret (key) ? "(secret)" : value);
    s->line = line;
}

//  The line that set key, 0 if none.
static int
s_line_of (const s_check_t *self, const char *key)
{
    for (size_t i = 0; i < self->count; i++)
        if (!strcmp (self->settings[i].key, key))
            return self->settings[i].line;
    return 0;
}

static int
s_unknown (s_check_t *self, const char *key, char *err, size_t err_size)
{
    const char *near = mw_conf_suggest (self->names, key);
    if (near)
        snprintf (err, err_size, "unknown key '%s' (did you mean '%s'?)", key, near);
    else
        snprintf (err, err_size, "unknown key '%s' for %s (see %s --help)", key,
                  s_mode_titles[self->mode], s_mode_titles[self->mode]);
    return -1;
}

//  One setting for minerwatch-broker (mw_broker_config_load's rules).
static int
s_set_broker (void *arg, const char *key, const char *value, int line, char *err, size_t err_size)
{
    s_check_t *self = (s_check_t *) arg;
    if (!mw_broker_config_known (key))
        return s_unknown (self, key, err, err_size);
    s_remember (self, key, value, line);
    if (!strcmp (key, "ingest") && !self->ingest_seen) {
        self->broker.ingest_count = 0; //  the file's list replaces the default
        self->ingest_seen = true;
    }
    if (!strcmp (key, "ingest") || !strcmp (key, "publish") || !strcmp (key, "snapshot")) {
        const char *why;
        if (mw_cli_check_endpoints (value, &why) != 0) {
            snprintf (err, err_size, "invalid %s '%s': %s", key, value, why);
            return -1;
        }
    }
    return mw_broker_config_set (&self->broker, key, value, err, err_size);
}

//  One setting for minerwatch-gateway (gateway_main.c's rules).
static int
s_set_gateway (void *arg, const char *key, const char *value, int line, char *err, size_t err_size)
{
    s_check_t *self = (s_check_t *) arg;
    if (!strcmp (key, "quiet") || !strcmp (key, "verbose")) {
        s_remember (self, key, value, line);
        bool on;
        if (mw_conf_parse_bool (value, &on) != 0) {
            snprintf (err, err_size, "--%s '%s': expected true or false", key, value);
            return -1;
        }
        return 0;
    }
    bool http = mw_http_config_known (key, NULL);
    if (!http && !mw_mirror_config_known (key))
        return s_unknown (self, key, err, err_size);
    s_remember (self, key, value, line);
    if (!strcmp (key, "updates") || !strcmp (key, "snapshot")) {
        const char *why;
        if (mw_cli_check_endpoints (value, &why) != 0) {
            snprintf (err, err_size, "invalid %s '%s': %s", key, value, why);
            return -1;
        }
    }
    return http ? mw_http_config_set (&self->http, key, value, err, err_size)
                : mw_mirror_config_set (&self->mirror, key, value, err, err_size);
}

//  For `up`: remember the settings only (cmd_up.c checks them).
static int
s_set_up (void *arg, const char *key, const char *value, int line, char *err, size_t err_size)
{
    s_remember ((s_check_t *) arg, key, value, line);
    return 0;
}

static void
s_gateway_names (FILE *out)
{
    mw_mirror_config_usage (out);
    mw_http_config_usage (out);
    fprintf (out, "  --quiet\n  --verbose\n");
}

//  A file the configuration names must be readable (and a directory one a
//  directory).
static void
s_check_file (s_check_t *self, const char *key, const char *path, bool dir)
{
    if (!path[0])
        return;
    struct stat st;
    int line = s_line_of (self, key);
    if (stat (path, &st) != 0)
        s_report (self, line, false, "%s %s: %s", key, path, strerror (errno));
    else if (dir && !S_ISDIR (st.st_mode))
        s_report (self, line, false, "%s %s: not a directory", key, path);
    else if (!dir && !S_ISREG (st.st_mode))
        s_report (self, line, false, "%s %s: not a regular file", key, path);
    else if (access (path, dir ? R_OK | X_OK : R_OK) != 0)
        s_report (self, line, false, "%s %s: not readable by this user: %s", key, path,
                  strerror (errno));
}

//  A secret key file: readable, a valid secret certificate, not open to
//  other users.
static void
s_check_secret_cert (s_check_t *self, const char *key, const char *path)
{
    if (!path[0])
        return;
    int line = s_line_of (self, key);
    mw_curve_pair_t pair;
    char err[512];
    if (mw_curve_load_secret (path, &pair, err, sizeof (err)) != 0) {
        s_report (self, line, false, "%s: %s", key, err);
        return;
    }
    memset (&pair, 0, sizeof (pair));
    struct stat st;
    if (stat (path, &st) == 0 && (st.st_mode & 0077))
        s_report (self, line, true, "%s %s is mode %04o: a secret key should be 0600", key, path,
                  (unsigned) (st.st_mode & 07777));
}

static void
s_check_broker (s_check_t *self)
{
    char err[1024];
    if (mw_broker_config_check (&self->broker, err, sizeof (err)) != 0)
        s_report (self, 0, false, "%s", err);
    s_check_secret_cert (self, "curve-secret", self->broker.curve_secret);
    s_check_file (self, "curve-clients", self->broker.curve_clients, true);
    if (self->broker.state_file[0]) {
        char copy[MW_BROKER_PATH_MAX];
        snprintf (copy, sizeof (copy), "%s", self->broker.state_file);
        const char *dir = dirname (copy);
        struct stat st;
        int line = s_line_of (self, "state-file");
        if (stat (dir, &st) != 0 || !S_ISDIR (st.st_mode))
            s_report (self, line, true,
                      "state-file %s: its directory %s does not exist here (under systemd, "
                      "StateDirectory= makes it)",
                      self->broker.state_file, dir);
    }
}

static void
s_check_gateway (s_check_t *self)
{
    char err[1024];
    if (mw_mirror_config_check (&self->mirror, err, sizeof (err)) != 0)
        s_report (self, 0, false, "%s", err);
    if (mw_http_config_check (&self->http, err, sizeof (err)) != 0)
        s_report (self, 0, false, "%s", err);
    s_check_file (self, "tls-cert", self->http.tls_cert, false);
    s_check_file (self, "tls-key", self->http.tls_key, false);
    if (self->mirror.curve_server_key[0]) {
        uint8_t key[MW_CURVE_KEY_BYTES];
        if (mw_curve_server_key (self->mirror.curve_server_key, key, err, sizeof (err)) != 0)
            s_report (self, s_line_of (self, "curve-server-key"), false, "curve-server-key: %s",
                      err);
    }
    s_check_secret_cert (self, "curve-client-cert", self->mirror.curve_client_cert);
}

//  Guess the kind of file from its keys: the kind that knows most of them
//  (broker before gateway before up on a tie).
typedef struct {
    int known[S_MODES];
} s_guess_t;

static int
s_guess_one (void *arg, const char *key, const char *value, int line, char *err, size_t err_size)
{
    s_guess_t *guess = (s_guess_t *) arg;
    bool b;
    if (mw_broker_config_known (key))
        guess->known[S_BROKER]++;
    if (!strcmp (key, "quiet") || !strcmp (key, "verbose") || mw_http_config_known (key, &b) ||
        mw_mirror_config_known (key))
        guess->known[S_GATEWAY]++;
    if (!strcmp (key, "demo") || !strncmp (key, "demo-", 5))
        guess->known[S_UP] += 2; //  only `up` has a demo
    else if ((mw_broker_config_known (key) && strncmp (key, "curve-", 6) != 0) ||
             mw_http_config_known (key, &b) ||
             (mw_mirror_config_known (key) && strcmp (key, "updates") != 0 &&
              strncmp (key, "curve-", 6) != 0))
        guess->known[S_UP]++;
    return 0;
}

static int
s_check (const char *path, s_mode_t mode, bool guessed, bool quiet)
{
    s_check_t *self = calloc (1, sizeof (s_check_t));
    if (!self) {
        fprintf (stderr, "minerwatch config: out of memory\n");
        return MW_CLI_FAILED;
    }
    self->path = path;
    self->report = stdout;
    self->mode = mode;
    self->quiet = quiet;
    mw_broker_config_default (&self->broker);
    mw_mirror_config_default (&self->mirror);
    mw_http_config_default (&self->http);
    if (mode == S_BROKER)
        self->names = mw_conf_names_from_usage (mw_broker_config_usage);
    else if (mode == S_GATEWAY)
        self->names = mw_conf_names_from_usage (s_gateway_names);

    char err[1024];
    mw_conf_fn *fn = mode == S_BROKER ? s_set_broker : mode == S_GATEWAY ? s_set_gateway : s_set_up;
    //  The summary's settings first (for `up`, the errors come from cmd_up.c).
    FILE *sink = mode == S_UP ? fopen ("/dev/null", "w") : stdout;
    int rc = MW_CLI_FAILED;
    int errors = sink ? mw_conf_read (path, fn, self, sink, err, sizeof (err)) : -1;
    if (sink && sink != stdout)
        fclose (sink);
    if (errors < 0) {
        fprintf (stdout, "%s\n", sink ? err : "cannot open /dev/null");
        goto done;
    }
    if (mode == S_UP) {
        errors = mw_cli_up_config_check (path, stdout, err, sizeof (err));
        if (errors < 0) {
            fprintf (stdout, "%s\n", err);
            goto done;
        }
    }
    self->errors += errors;
    //  A secret written in a file every user can read.
    struct stat st;
    if (stat (path, &st) == 0 && (st.st_mode & 0004))
        for (size_t i = 0; i < self->count; i++)
            if (s_is_secret (self->settings[i].key))
                s_report (self, self->settings[i].line, true,
                          "%s is in a file every user can read (mode %04o): keep it in %s-file "
                          "(mode 600), or chmod 600 %s",
                          self->settings[i].key, (unsigned) (st.st_mode & 07777),
                          self->settings[i].key, path);
    if (self->errors == 0) {
        if (mode == S_BROKER)
            s_check_broker (self);
        else if (mode == S_GATEWAY)
            s_check_gateway (self);
    }
    if (self->errors) {
        fprintf (stdout, "%s: %d error%s: not a valid %s configuration\n", path, self->errors,
                 self->errors == 1 ? "" : "s", s_mode_titles[mode]);
        goto done;
    }
    rc = MW_CLI_OK;
    if (quiet)
        goto done;
    char warned[32] = "";
    if (self->warnings)
        snprintf (warned, sizeof (warned), ", %d warning%s", self->warnings,
                  self->warnings == 1 ? "" : "s");
    printf ("%s: valid %s configuration%s, %zu setting%s%s\n", path, s_mode_titles[mode],
            guessed ? " (guessed; choose with --for)" : "", self->count,
            self->count == 1 ? "" : "s", warned);
    for (size_t i = 0; i < self->count; i++)
        printf ("  %-22s %s\n", self->settings[i].key, self->settings[i].value);
    if (self->count == 0)
        printf ("  (no settings: the defaults of %s --help)\n", s_mode_titles[mode]);
done:
    mw_conf_names_free (&self->names);
    explicit_bzero (&self->http, sizeof (self->http)); //  it may hold a secret
    free (self);
    return rc;
}

static int
s_run (int argc, char **argv)
{
    //  argv[0] is "config".
    if (argc < 2)
        return mw_cli_usage (S_NAME, "expected 'check FILE'");
    if (!strcmp (argv[1], "-h") || !strcmp (argv[1], "--help") || !strcmp (argv[1], "help")) {
        s_help (stdout);
        return MW_CLI_OK;
    }
    if (strcmp (argv[1], "check") != 0)
        return mw_cli_usage (S_NAME, "unknown subcommand '%s' (expected 'check FILE')", argv[1]);
    const char *path = NULL;
    const char *kind = NULL;
    bool quiet = false;
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp (arg, "-h") || !strcmp (arg, "--help")) {
            s_help (stdout);
            return MW_CLI_OK;
        }
        if (!strcmp (arg, "-q") || !strcmp (arg, "--quiet"))
            quiet = true;
        else if (!strcmp (arg, "--for")) {
            if (i + 1 >= argc)
                return mw_cli_usage (S_NAME, "option '--for' needs a value");
            kind = argv[++i];
        }
        else if (!strncmp (arg, "--for=", 6))
            kind = arg + 6;
        else if (arg[0] == '-' && arg[1])
            return mw_cli_usage (S_NAME, "unknown option '%s'", arg);
        else if (path)
            return mw_cli_usage (S_NAME, "one FILE at a time ('%s' and '%s')", path, arg);
        else
            path = arg;
    }
    if (!path)
        return mw_cli_usage (S_NAME, "expected the FILE to check");
    s_mode_t mode = S_BROKER;
    bool guessed = false;
    if (kind) {
        for (mode = S_BROKER; mode < S_MODES; mode++)
            if (!strcmp (kind, s_mode_names[mode]))
                break;
        if (mode == S_MODES)
            return mw_cli_usage (S_NAME, "invalid --for '%s': expected broker, gateway or up",
                                 kind);
    }
    else {
        s_guess_t guess = {{0, 0, 0}};
        char err[1024];
        FILE *sink = fopen ("/dev/null", "w");
        int rc = sink ? mw_conf_read (path, s_guess_one, &guess, sink, err, sizeof (err)) : 0;
        if (sink)
            fclose (sink);
        if (rc < 0) {
            printf ("%s\n", err);
            return MW_CLI_FAILED;
        }
        for (s_mode_t m = S_BROKER; m < S_MODES; m++)
            if (guess.known[m] > guess.known[mode])
                mode = m;
        guessed = true;
    }
    return s_check (path, mode, guessed, quiet);
}

const mw_cli_command_t mw_cmd_config = {
    "config", "validate a daemon's config file: config check FILE", s_run, s_help};
