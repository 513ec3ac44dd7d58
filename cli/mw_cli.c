/*  mw_cli.c - helpers shared by the minerwatch commands (see mw_cli.h).
*/
#include "mw_cli.h"
#include "mw_curve.h"

#include <czmq.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

volatile sig_atomic_t mw_cli_interrupted = 0;

int
mw_cli_usage (const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf (stderr, "minerwatch %s: ", cmd);
    va_start (ap, fmt);
    vfprintf (stderr, fmt, ap);
    va_end (ap);
    fprintf (stderr, "; see 'minerwatch %s --help'\n", cmd);
    return MW_CLI_USAGE;
}

//  The option's name as typed, without an "=value" part.
static void
s_option_name (const char *arg, char *name, size_t size)
{
    size_t n = strcspn (arg, "=");
    if (n >= size)
        n = size - 1;
    memcpy (name, arg, n);
    name[n] = 0;
}

int
mw_cli_bad_option (const char *cmd, int c, char **argv, const struct option *opts)
{
    //  For a long option, argv[optind - 1] is the argument getopt_long was
    //  looking at; for a short one inside a cluster ("-jx") it may not be
    //  yet, so optopt names it.
    const char *arg = optind > 0 ? argv[optind - 1] : NULL;
    bool is_long = arg && strncmp (arg, "--", 2) == 0;
    char name[64];
    if (is_long)
        s_option_name (arg, name, sizeof (name));
    else
        snprintf (name, sizeof (name), "-%c", optopt > 0 && optopt < 128 ? optopt : '?');
    if (c == ':')
        return mw_cli_usage (cmd, "option '%s' needs a value", name);
    if (is_long && strchr (arg, '='))
        for (const struct option *o = opts; o && o->name; o++)
            if (strcmp (o->name, name + 2) == 0 && o->has_arg == no_argument)
                return mw_cli_usage (cmd, "option '%s' takes no value", name);
    return mw_cli_usage (cmd, "unknown option '%s'", name);
}

int
mw_cli_parse_uint (const char *text, uint64_t min, uint64_t max, uint64_t *value_p)
{
    if (!text || !*text || strspn (text, "0123456789") != strlen (text))
        return -1;
    errno = 0;
    unsigned long long v = strtoull (text, NULL, 10);
    if (errno == ERANGE || v < min || v > max)
        return -1;
    *value_p = (uint64_t) v;
    return 0;
}

int
mw_cli_parse_double (const char *text, double min, double max, double *value_p)
{
    //  A plain decimal: [-]digits[.digits][e[+-]digits]. strtod alone would
    //  also take "inf", "nan", hex floats and leading spaces.
    if (!text)
        return -1;
    const char *p = text;
    if (*p == '-')
        p++;
    size_t int_digits = strspn (p, "0123456789");
    p += int_digits;
    size_t frac_digits = 0;
    if (*p == '.') {
        p++;
        frac_digits = strspn (p, "0123456789");
        p += frac_digits;
    }
    if (int_digits + frac_digits == 0)
        return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        size_t exp_digits = strspn (p, "0123456789");
        if (exp_digits == 0)
            return -1;
        p += exp_digits;
    }
    if (*p)
        return -1;
    double v = strtod (text, NULL);
    if (!isfinite (v) || v < min || v > max)
        return -1;
    *value_p = v;
    return 0;
}

int
mw_cli_check_endpoints (const char *endpoints, const char **why_p)
{
    static const char *transports[] = {"tcp",  "ipc", "inproc", "udp",  "pgm",  "epgm",
                                       "tipc", "ws",  "wss",    "vmci", "norm", NULL};
    const char *why = NULL;
    const char *p = endpoints;
    if (!p || !*p)
        why = "it is empty";
    while (!why) {
        size_t seg = strcspn (p, ",");
        const char *ep = p;
        size_t len = seg;
        while (len && (*ep == ' ' || *ep == '\t'))
            ep++, len--;
        if (len && (*ep == '@' || *ep == '>'))
            ep++, len--;
        const char *sep = len ? memchr (ep, ':', len) : NULL;
        if (len == 0)
            why = "an endpoint in the list is empty";
        else if (!sep || (size_t) (ep + len - sep) < 4 || strncmp (sep, "://", 3) != 0)
            why = "expected TRANSPORT://ADDRESS, e.g. tcp://127.0.0.1:7710";
        else {
            bool known = false;
            size_t tlen = (size_t) (sep - ep);
            for (int i = 0; transports[i]; i++)
                if (strlen (transports[i]) == tlen && strncmp (ep, transports[i], tlen) == 0)
                    known = true;
            if (!known)
                why = "unknown transport; expected tcp://, ipc:// or inproc://";
        }
        if (p[seg] == 0)
            break;
        p += seg + 1;
    }
    if (why_p)
        *why_p = why;
    return why ? -1 : 0;
}

void
mw_cli_curve_option (mw_cli_curve_t *curve, int c, const char *value)
{
    if (c == MW_CLI_OPT_SERVER_KEY)
        curve->server_key = value;
    else if (c == MW_CLI_OPT_CLIENT_CERT)
        curve->client_cert = value;
}

int
mw_cli_curve_check (const char *cmd, const mw_cli_curve_t *curve)
{
    if (curve->server_key && !*curve->server_key)
        return mw_cli_usage (cmd, "invalid --curve-server-key '': expected the broker's public "
                                  "key (40 characters of Z85) or its certificate file");
    if (curve->client_cert && !*curve->client_cert)
        return mw_cli_usage (cmd, "invalid --curve-client-cert '': expected a _secret "
                                  "certificate file");
    if (curve->client_cert && !curve->server_key)
        return mw_cli_usage (cmd, "--curve-client-cert needs --curve-server-key");
    return 0;
}

int
mw_cli_curve_client (void *socket, const mw_cli_curve_t *curve, char *err, size_t err_size)
{
    if (!curve->server_key)
        return 0;
    char why[512];
    uint8_t server_key[MW_CURVE_KEY_BYTES];
    if (mw_curve_server_key (curve->server_key, server_key, why, sizeof (why)) != 0) {
        snprintf (err, err_size, "--curve-server-key: %s", why);
        return -1;
    }
    mw_curve_pair_t pair;
    int rc = curve->client_cert
                 ? mw_curve_load_secret (curve->client_cert, &pair, why, sizeof (why))
                 : mw_curve_new_pair (&pair, why, sizeof (why));
    if (rc != 0)
        snprintf (err, err_size, "%s%s", curve->client_cert ? "--curve-client-cert: " : "", why);
    else if (socket)
        rc = mw_curve_apply (socket, server_key, &pair, err, err_size);
    explicit_bzero (&pair, sizeof (pair));
    return rc;
}

static void
s_on_signal (int sig)
{
    //  A second Ctrl-C means "now": do not wait for a clean stop.
    if (sig == SIGINT && mw_cli_interrupted)
        _exit (130);
    mw_cli_interrupted = 1;
}

void
mw_cli_catch_signals (void)
{
    //  czmq would install its own SIGINT/SIGTERM handlers when it creates
    //  its first socket; we handle them ourselves.
    zsys_handler_set (NULL);
    struct sigaction sa;
    memset (&sa, 0, sizeof (sa));
    sa.sa_handler = s_on_signal;
    sigemptyset (&sa.sa_mask);
    sa.sa_flags = 0; //  no SA_RESTART: let sleeps and polls return EINTR
    sigaction (SIGINT, &sa, NULL);
    sigaction (SIGTERM, &sa, NULL);
    signal (SIGPIPE, SIG_IGN);
}

double
mw_cli_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

void
mw_cli_sleep_until (double until)
{
    if (until <= mw_cli_now ())
        return;
    struct timespec ts;
    ts.tv_sec = (time_t) until;
    ts.tv_nsec = (long) ((until - (double) ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_nsec = 999999999L;
    clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

int
mw_cli_parse_color (const char *text, mw_color_mode_t *mode_p)
{
    if (strcmp (text, "auto") == 0)
        *mode_p = MW_COLOR_AUTO;
    else if (strcmp (text, "always") == 0)
        *mode_p = MW_COLOR_ALWAYS;
    else if (strcmp (text, "never") == 0)
        *mode_p = MW_COLOR_NEVER;
    else
        return -1;
    return 0;
}

bool
mw_cli_use_color (mw_color_mode_t mode, int fd)
{
    if (mode != MW_COLOR_AUTO)
        return mode == MW_COLOR_ALWAYS;
    const char *no_color = getenv ("NO_COLOR");
    const char *term = getenv ("TERM");
    return isatty (fd) && !(no_color && *no_color) && !(term && strcmp (term, "dumb") == 0);
}

//  Code points shown escaped besides controls: the bidirectional marks,
//  embeddings, overrides and isolates that can reorder what a terminal
//  shows ("Trojan Source").
static bool
s_is_bidi (uint32_t cp)
{
    return cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

void
mw_cli_term_text (mw_buf_t *out, const char *s, size_t len, size_t max_chars)
{
    const uint8_t *p = (const uint8_t *) s;
    const uint8_t *end = p + len;
    size_t chars = 0;
    while (p < end) {
        uint32_t cp;
        size_t n = mw_utf8_next (p, (size_t) (end - p), &cp);
        if (max_chars && chars + 1 == max_chars && p + n < end) {
            mw_buf_puts (out, "\xE2\x80\xA6"); //  "…"
            return;
        }
        chars++;
        if (cp >= 0x20 && cp < 0x7F)
            mw_buf_putc (out, (char) cp);
        else if (cp == '\n')
            mw_buf_puts (out, "\\n");
        else if (cp == '\t')
            mw_buf_puts (out, "\\t");
        else if (cp == '\r')
            mw_buf_puts (out, "\\r");
        else if (cp < 0x20 || cp == 0x7F)
            mw_buf_printf (out, "\\x%02x", (unsigned) cp);
        else if ((cp >= 0x80 && cp <= 0x9F) || s_is_bidi (cp))
            mw_buf_printf (out, "\\u%04x", (unsigned) cp);
        else if (cp == 0xFFFD)
            mw_buf_puts (out, "\xEF\xBF\xBD"); //  genuine or replacing invalid bytes
        else
            mw_buf_append (out, p, n);
        p += n;
    }
}

int
mw_cli_write (FILE *stream, const mw_buf_t *buf)
{
    if (buf->len == 0)
        return 0;
    return fwrite (buf->data, 1, buf->len, stream) == buf->len ? 0 : -1;
}
