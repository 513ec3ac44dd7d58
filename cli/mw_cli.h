/*  mw_cli.h - what the minerwatch commands share: the command table,
    option and value parsing with the project's error messages, signals,
    the monotonic clock, colour, and text made safe for a terminal.

    Each command lives in its own file (cmd_NAME.c) and exports one
    mw_cli_command_t; main.c lists them. A command's run function gets the
    arguments from its own name on (argv[0] is "tail") and returns the
    process exit code: 0 done, 1 failed at run time, 2 bad usage.
*/
#ifndef MW_CLI_H_INCLUDED
#define MW_CLI_H_INCLUDED

#include "mw_json.h"

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

//  Exit codes of every command.
#define MW_CLI_OK     0
#define MW_CLI_FAILED 1
#define MW_CLI_USAGE  2

//  Where publishers send by default: the broker's ingest endpoint.
#define MW_CLI_DEFAULT_ENDPOINT ">tcp://127.0.0.1:7710"

typedef struct {
    const char *name;
    const char *summary; //  one line for `minerwatch --help`
    int (*run) (int argc, char **argv);
    void (*help) (FILE *out);
} mw_cli_command_t;

extern const mw_cli_command_t mw_cmd_tail;
extern const mw_cli_command_t mw_cmd_publish;
extern const mw_cli_command_t mw_cmd_simulate;
extern const mw_cli_command_t mw_cmd_status;
extern const mw_cli_command_t mw_cmd_keygen;
extern const mw_cli_command_t mw_cmd_up;
extern const mw_cli_command_t mw_cmd_bench;
extern const mw_cli_command_t mw_cmd_config;

//  `minerwatch config check --for up` (cmd_config.c): read path as `up
//  --config path` would (cmd_up.c), print each error on report. Return the
//  number of errors, or -1 with a message in err if the file cannot be read.
int mw_cli_up_config_check (const char *path, FILE *report, char *err, size_t err_size);

//  Print "minerwatch CMD: MESSAGE; see 'minerwatch CMD --help'" on stderr.
//  Return MW_CLI_USAGE, so a caller can `return mw_cli_usage (...)`.
int mw_cli_usage (const char *cmd, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

//  Report what getopt_long returned for a bad option (c is '?' or ':') in
//  the project's words ("unknown option '--foo'", "option '--count' needs
//  a value", "option '--json' takes no value"); opts is the command's
//  option table. Return MW_CLI_USAGE.
int mw_cli_bad_option (const char *cmd, int c, char **argv, const struct option *opts);

//  Parse a whole decimal number in [min, max] (no sign, no spaces).
//  Return 0, or -1 if text is not one.
int mw_cli_parse_uint (const char *text, uint64_t min, uint64_t max, uint64_t *value_p);

//  Parse a finite decimal number (no hex, no inf/nan) in [min, max].
//  Return 0, or -1 if text is not one.
int mw_cli_parse_double (const char *text, double min, double max, double *value_p);

//  Check the syntax of a czmq-style endpoint list: comma-separated,
//  each "[@|>]TRANSPORT://ADDRESS". Return 0, or -1 with a reason in
//  why (a static string).
int mw_cli_check_endpoints (const char *endpoints, const char **why_p);

//  CURVE client options, shared by the commands that talk to a broker
//  started with --curve-secret (status, tail, publish, simulate). A
//  command puts MW_CLI_CURVE_OPTIONS in its option table, hands the two
//  option values to mw_cli_curve_option, prints MW_CLI_CURVE_HELP as a
//  section of its --help, checks with mw_cli_curve_check after parsing, and
//  calls mw_cli_curve_client on its socket before binding or connecting.
typedef struct {
    const char *server_key;  //  Z85 text or a certificate file; NULL: plain TCP
    const char *client_cert; //  a secret certificate file; NULL: a new key pair each run
} mw_cli_curve_t;

//  getopt_long values of the two options, above any command's own.
#define MW_CLI_OPT_SERVER_KEY  0x1100
#define MW_CLI_OPT_CLIENT_CERT 0x1101

#define MW_CLI_CURVE_OPTIONS                                                                       \
    {"curve-server-key", required_argument, NULL, MW_CLI_OPT_SERVER_KEY},                          \
    {                                                                                              \
        "curve-client-cert", required_argument, NULL, MW_CLI_OPT_CLIENT_CERT                       \
    }

#define MW_CLI_CURVE_HELP                                                                          \
    "CURVE, for a broker started with --curve-secret (default: plain TCP):\n"                      \
    "      --curve-server-key KEY  the broker's public key: 40 characters of Z85,\n"               \
    "                              or its certificate file (the one `minerwatch\n"                 \
    "                              keygen` wrote without the _secret suffix)\n"                    \
    "      --curve-client-cert F   this client's key pair (a _secret certificate\n"                \
    "                              file), for a broker that lists its clients\n"                   \
    "                              (--curve-clients); default: a new key pair\n"                   \
    "                              each run\n"

//  Take the value of MW_CLI_OPT_SERVER_KEY or MW_CLI_OPT_CLIENT_CERT (c).
void mw_cli_curve_option (mw_cli_curve_t *curve, int c, const char *value);

//  Check the CURVE options after parsing: values not empty, and no client
//  certificate without a server key. Return 0, or MW_CLI_USAGE with the
//  message printed for command cmd.
int mw_cli_curve_check (const char *cmd, const mw_cli_curve_t *curve);

//  Read the keys the options name (files are read here, with the option
//  and the file in any error) and, if socket is not NULL, make it a CURVE
//  client (a libzmq socket: zsock_resolve a czmq one), before its bind or
//  connect. Nothing to do without --curve-server-key. Return 0, or -1 with
//  a message in err.
int mw_cli_curve_client (void *socket, const mw_cli_curve_t *curve, char *err, size_t err_size);

//  Set by SIGINT and SIGTERM once mw_cli_catch_signals ran; a second
//  SIGINT ends the process at once (exit 130). Also ignores SIGPIPE, so a
//  closed pipe shows up as a write error.
extern volatile sig_atomic_t mw_cli_interrupted;
void mw_cli_catch_signals (void);

//  Seconds on the monotonic clock.
double mw_cli_now (void);

//  Sleep until the monotonic time `until` (seconds), or a signal.
void mw_cli_sleep_until (double until);

//  --color=WHEN
typedef enum { MW_COLOR_AUTO, MW_COLOR_ALWAYS, MW_COLOR_NEVER } mw_color_mode_t;

//  Parse auto|always|never. Return 0, or -1.
int mw_cli_parse_color (const char *text, mw_color_mode_t *mode_p);

//  Whether to colour output to fd: always, never, or (auto) when fd is a
//  terminal, NO_COLOR is unset or empty, and TERM is not "dumb".
bool mw_cli_use_color (mw_color_mode_t mode, int fd);

//  Append untrusted text for a terminal: control characters (C0, DEL, C1)
//  and bidirectional overrides are shown escaped ("\n", "\x1b", "\u202e"),
//  invalid UTF-8 becomes U+FFFD, and at most max_chars characters are kept
//  (0: no limit), with "…" when cut.
void mw_cli_term_text (mw_buf_t *out, const char *s, size_t len, size_t max_chars);

//  Write the buffer to a stream. Return 0, or -1 on a write error.
int mw_cli_write (FILE *stream, const mw_buf_t *buf);

#endif
