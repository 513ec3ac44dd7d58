/*  cmd_tail.c - `minerwatch tail ENDPOINT`: subscribe and print one line
    per event (or NDJSON with --json).

    The socket is a SUB; --type prefixes are its subscriptions, so the
    publisher or broker filters by type before anything crosses the wire,
    and --miner / --task are checked here after decoding. Every message is
    decoded with the library's decoder, the one the broker uses: what tail
    calls malformed, the broker drops. Text from the wire is untrusted:
    every string is printed through mw_cli_term_text, so a validator's
    prompt cannot move the cursor or retitle the terminal.

    Sequence numbers are checked per publisher session (sid) when no --type
    filter hides events: a jump is reported as events missing, since
    nothing should be lost silently.

    With --curve-server-key the SUB is a CURVE client of a broker started
    with --curve-secret. A socket monitor watches the handshakes, so that a
    tail that shows nothing because of a wrong key, an unlisted client key
    or CURVE on one side only says so on stderr (once per reason, until a
    handshake succeeds) instead of waiting in silence.
*/
#include "mw_cli.h"
#include "mw_event.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_NAME       "tail"
#define S_MAX_TYPES  32    //  --type prefixes
#define S_RCVHWM     10000 //  messages queued in the SUB socket before libzmq drops
#define S_POLL_MS    200   //  longest wait before looking at the signal and timeout
#define S_GAP_SLOTS  1024  //  publisher sessions tracked for sequence gaps
#define S_MAX_EXTRAS 8     //  custom keys shown on a line
#define S_FRAMES     2     //  frames kept of a message (the rest are only counted)

typedef struct {
    const char *endpoint;
    bool json;
    mw_color_mode_t color_mode;
    const char *types[S_MAX_TYPES];
    size_t type_count;
    const char *miner;
    const char *task;
    uint64_t count; //  0: no limit
    double timeout; //  seconds; 0: no limit
    mw_cli_curve_t curve;
} s_opts_t;

typedef struct {
    uint64_t sid;
    uint64_t seq; //  0: free slot (sequence numbers start at 1)
} s_session_t;

typedef struct {
    s_opts_t opts;
    bool color;
    bool stop;
    uint64_t shown, filtered, malformed, missing;
    s_session_t sessions[S_GAP_SLOTS];
    size_t session_count;
    mw_event_t ev;
    mw_buf_t line;
    mw_buf_t scratch;
    unsigned hs_told; //  handshake failure reasons already reported (s_hs_*)
} s_tail_t;

enum { S_OPT_COLOR = 256, S_OPT_TASK, S_OPT_TIMEOUT };

static const struct option s_options[] = {{"json", no_argument, NULL, 'j'},
                                          {"color", required_argument, NULL, S_OPT_COLOR},
                                          {"type", required_argument, NULL, 't'},
                                          {"miner", required_argument, NULL, 'm'},
                                          {"task", required_argument, NULL, S_OPT_TASK},
                                          {"count", required_argument, NULL, 'n'},
                                          {"timeout", required_argument, NULL, S_OPT_TIMEOUT},
                                          MW_CLI_CURVE_OPTIONS,
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};

static void
s_help (FILE *out)
{
    fprintf (out,
             "Usage: minerwatch tail [OPTIONS] ENDPOINT\n"
             "\n"
             "Print the events of a broker or of publishers as they arrive, one line each:\n"
             "local time, miner, type, task and the fields that matter for the type.\n"
             "\n"
             "ENDPOINT is where to subscribe. '>tcp://HOST:PORT' (or no prefix) connects, to a\n"
             "broker's update stream or a publisher that binds; '@tcp://HOST:PORT' binds, so\n"
             "that publishers, which connect to 127.0.0.1:7710 by default, reach tail itself.\n"
             "\n"
             "Options:\n"
             "  -j, --json           print each event as one line of JSON (NDJSON), as the\n"
             "                       gateway renders it (default: off, one readable line)\n"
             "      --color=WHEN     colour the lines: auto, always or never (default: auto,\n"
             "                       colour when stdout is a terminal and NO_COLOR is unset)\n"
             "  -t, --type PREFIX    show only the event types that start with PREFIX, e.g.\n"
             "                       'task_'; repeatable (default: every type)\n"
             "  -m, --miner NAME     show only the events of this miner (default: all miners)\n"
             "      --task ID        show only the events of this task id (default: all tasks)\n"
             "  -n, --count N        exit after N events are shown (default: 0, no limit)\n"
             "      --timeout S      exit after S seconds, e.g. 2.5 (default: 0, no limit)\n"
             "  -h, --help           show this help and exit\n"
             "\n" MW_CLI_CURVE_HELP "\n"
             "Malformed messages (wrong number of frames, undecodable bodies) are reported on\n"
             "stderr with the decoder's reason and skipped. Sequence gaps of a publisher\n"
             "session are reported as events missing (unless --type hides some events).\n"
             "Topics starting with '$' are broker control messages and are not shown. On exit\n"
             "(--count, --timeout, Ctrl-C) a one-line summary goes to stderr. Exit code 0.\n"
             "\n"
             "Examples:\n"
             "  minerwatch tail @tcp://127.0.0.1:7710\n"
             "  minerwatch tail --type task_ --miner miner-1 '>tcp://127.0.0.1:7711'\n"
             "  minerwatch tail --json --count 100 @tcp://127.0.0.1:7710 > events.ndjson\n"
             "  minerwatch tail --curve-server-key broker.cert '>tcp://broker.example:7711'\n");
}

//  --------------------------------------------------------------------------
//  Options

static int
s_parse (s_opts_t *opts, int argc, char **argv)
{
    opts->color_mode = MW_COLOR_AUTO;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":jt:m:n:h", s_options, NULL)) != -1) {
        switch (c) {
            case 'j':
                opts->json = true;
                break;
            case S_OPT_COLOR:
                if (mw_cli_parse_color (optarg, &opts->color_mode) != 0)
                    return mw_cli_usage (
                        S_NAME, "invalid --color '%s': expected auto, always or never", optarg);
                break;
            case 't':
                if (opts->type_count == S_MAX_TYPES)
                    return mw_cli_usage (S_NAME, "too many --type prefixes: at most %d",
                                         S_MAX_TYPES);
                if (!*optarg || strlen (optarg) > MW_MAX_TYPE)
                    return mw_cli_usage (S_NAME,
                                         "invalid --type '%s': expected a type prefix of 1 to %d "
                                         "bytes, e.g. task_",
                                         optarg, MW_MAX_TYPE);
                if (optarg[0] == '$')
                    return mw_cli_usage (S_NAME,
                                         "invalid --type '%s': topics starting with '$' are "
                                         "broker control messages, not events",
                                         optarg);
                opts->types[opts->type_count++] = optarg;
                break;
            case 'm':
                opts->miner = optarg;
                break;
            case S_OPT_TASK:
                opts->task = optarg;
                break;
            case 'n':
                if (mw_cli_parse_uint (optarg, 0, UINT64_MAX, &opts->count) != 0)
                    return mw_cli_usage (S_NAME,
                                         "invalid --count '%s': expected a whole number of "
                                         "events (0 for no limit)",
                                         optarg);
                break;
            case S_OPT_TIMEOUT:
                if (mw_cli_parse_double (optarg, 0, 1e9, &opts->timeout) != 0)
                    return mw_cli_usage (S_NAME,
                                         "invalid --timeout '%s': expected seconds, e.g. 2.5 "
                                         "(0 for no limit)",
                                         optarg);
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
    if (optind >= argc)
        return mw_cli_usage (S_NAME, "missing ENDPOINT, e.g. @tcp://127.0.0.1:7710");
    if (optind + 1 < argc)
        return mw_cli_usage (S_NAME, "unexpected argument '%s' after ENDPOINT", argv[optind + 1]);
    opts->endpoint = argv[optind];
    const char *why;
    if (mw_cli_check_endpoints (opts->endpoint, &why) != 0)
        return mw_cli_usage (S_NAME, "invalid ENDPOINT '%s': %s", opts->endpoint, why);
    return mw_cli_curve_check (S_NAME, &opts->curve);
}

//  --------------------------------------------------------------------------
//  Lines

typedef struct {
    const char *emoji; //  two columns wide, or one and a space
    const char *sgr;   //  ANSI colour
} s_style_t;

static const s_style_t s_styles[MW_TYPE_COUNT] = {
    [MW_TYPE_CUSTOM] = {"\xE2\x80\xA2 ", "0"},                   //  •
    [MW_TYPE_TASK_START] = {"\xF0\x9F\x93\xA5", "32"},           //  📥 green
    [MW_TYPE_TASK_STEP] = {"\xF0\x9F\x93\x8A", "34"},            //  📊 blue
    [MW_TYPE_ACTIONS_GENERATED] = {"\xE2\x9A\xA1", "33"},        //  ⚡ orange/yellow
    [MW_TYPE_TASK_COMPLETE] = {"\xE2\x9C\x85", "32"},            //  ✅ green
    [MW_TYPE_TASK_FEEDBACK] = {"\xE2\xAD\x90", "93"},            //  ⭐ bright yellow
    [MW_TYPE_VALIDATOR_CONNECTION] = {"\xF0\x9F\x94\x97", "35"}, //  🔗 purple
    [MW_TYPE_CACHE_HIT] = {"\xF0\x9F\x92\xBE", "36"},            //  💾 cyan
    [MW_TYPE_ERROR] = {"\xE2\x9D\x8C", "31"},                    //  ❌ red
};
static const s_style_t s_failed_style = {"\xE2\x9D\x8C", "31"}; //  ❌ red

static void
s_sgr (s_tail_t *self, const char *code)
{
    if (self->color)
        mw_buf_printf (&self->line, "\033[%sm", code);
}

static const mw_str_t *
s_str (const mw_event_t *ev, mw_str_key_t key)
{
    return ev->str[key].ptr ? &ev->str[key] : NULL;
}

//  Untrusted text, cut to max_chars characters.
static void
s_text (s_tail_t *self, const mw_str_t *str, size_t max_chars)
{
    mw_cli_term_text (&self->line, str->ptr, str->len, max_chars);
}

//  Pad what the line holds from byte `from` on to `width` characters. Our
//  own colour sequences take no room; the text itself holds no escape
//  (mw_cli_term_text shows ESC as "\x1b").
static void
s_pad (s_tail_t *self, size_t from, size_t width)
{
    size_t chars = 0;
    for (size_t i = from; i < self->line.len; i++) {
        char c = self->line.data[i];
        if (c == '\033') {
            while (i < self->line.len && self->line.data[i] != 'm')
                i++;
            continue;
        }
        if ((c & 0xC0) != 0x80)
            chars++;
    }
    while (chars++ < width)
        mw_buf_putc (&self->line, ' ');
}

//  " · " between the parts of the details.
static void
s_sep (s_tail_t *self, bool *first)
{
    if (!*first)
        mw_buf_puts (&self->line, " \xC2\xB7 ");
    *first = false;
}

//  A hotkey is 48 characters: show its head and tail, "5FHneW…ykx5".
static void
s_hotkey (s_tail_t *self, const mw_str_t *hk)
{
    if (hk->len <= 14) {
        s_text (self, hk, 0);
        return;
    }
    mw_cli_term_text (&self->line, hk->ptr, 6, 0);
    mw_buf_puts (&self->line, "\xE2\x80\xA6");
    mw_cli_term_text (&self->line, hk->ptr + hk->len - 4, 4, 0);
}

static void
s_seconds (s_tail_t *self, double s)
{
    if (!isfinite (s))
        mw_buf_puts (&self->line, "?s");
    else if (s < 10)
        mw_buf_printf (&self->line, "%.1fs", s);
    else
        mw_buf_printf (&self->line, "%.0fs", s);
}

static void
s_validator (s_tail_t *self, const mw_event_t *ev, bool *first)
{
    const mw_str_t *ip = s_str (ev, MW_K_VALIDATOR_IP);
    const mw_str_t *hk = s_str (ev, MW_K_VALIDATOR_HOTKEY);
    if (!ip && !hk)
        return;
    s_sep (self, first);
    mw_buf_puts (&self->line, "validator ");
    if (ip)
        s_text (self, ip, 46);
    if (ip && hk)
        mw_buf_putc (&self->line, ' ');
    if (hk)
        s_hotkey (self, hk);
}

//  mw_json writes '<', '>' and '&' as \u003c, \u003e, \u0026 so that its
//  output is safe in HTML; a terminal has no such concern, and a URL reads
//  better with its '&'. Undo those three escapes in place (and no other:
//  "\\u0026" is an escaped backslash followed by text).
static void
s_unescape_html (mw_buf_t *json)
{
    size_t out = 0;
    for (size_t i = 0; i < json->len; i++) {
        char c = json->data[i];
        if (c == '\\' && i + 1 < json->len) {
            if (json->data[i + 1] == 'u' && i + 5 < json->len &&
                memcmp (json->data + i + 2, "00", 2) == 0) {
                const char *hex = json->data + i + 4;
                char plain = memcmp (hex, "3c", 2) == 0   ? '<'
                             : memcmp (hex, "3e", 2) == 0 ? '>'
                             : memcmp (hex, "26", 2) == 0 ? '&'
                                                          : 0;
                if (plain) {
                    json->data[out++] = plain;
                    i += 5;
                    continue;
                }
            }
            json->data[out++] = c; //  keep the escape pair as it is
            c = json->data[++i];
        }
        json->data[out++] = c;
    }
    mw_buf_truncate (json, out);
}

//  The JSON of a raw msgpack value, made safe and cut for the terminal.
static void
s_value (s_tail_t *self, const uint8_t *val, size_t len, size_t max_chars)
{
    mw_buf_reset (&self->scratch);
    if (mw_json_msgpack (&self->scratch, val, len, NULL) == 0) {
        s_unescape_html (&self->scratch);
        mw_cli_term_text (&self->line, self->scratch.data, self->scratch.len, max_chars);
    }
    else
        mw_buf_puts (&self->line, "?");
}

//  The fields that matter for each type, like the original dashboard's
//  detail lines ("12 actions in 5.2s").
static void
s_details (s_tail_t *self, const mw_event_t *ev)
{
    bool first = true;
    const mw_str_t *s;
    switch (ev->kind) {
        case MW_TYPE_TASK_START:
            if ((s = s_str (ev, MW_K_PROMPT))) {
                s_sep (self, &first);
                s_text (self, s, 60);
            }
            s_validator (self, ev, &first);
            if ((s = s_str (ev, MW_K_URL))) {
                s_sep (self, &first);
                s_text (self, s, 48);
            }
            if (ev->has & MW_HAS_TIMEOUT_MS) {
                s_sep (self, &first);
                if (ev->timeout_ms % 1000 == 0)
                    mw_buf_printf (&self->line, "timeout %" PRIu64 "s", ev->timeout_ms / 1000);
                else
                    mw_buf_printf (&self->line, "timeout %" PRIu64 "ms", ev->timeout_ms);
            }
            break;
        case MW_TYPE_TASK_STEP: {
            if ((s = s_str (ev, MW_K_STEP))) {
                s_sep (self, &first);
                s_text (self, s, 40);
            }
            const uint8_t *val;
            size_t len;
            if (mw_json_extra_find (ev, "details", &val, &len) == 1) {
                s_sep (self, &first);
                s_value (self, val, len, 72);
            }
            break;
        }
        case MW_TYPE_ACTIONS_GENERATED:
            if (ev->has & MW_HAS_ACTION_COUNT) {
                s_sep (self, &first);
                mw_buf_printf (&self->line, "%" PRIu64 " action%s", ev->action_count,
                               ev->action_count == 1 ? "" : "s");
            }
            if ((s = s_str (ev, MW_K_ACTION_TYPE))) {
                mw_buf_puts (&self->line, " (");
                s_text (self, s, 24);
                mw_buf_putc (&self->line, ')');
            }
            break;
        case MW_TYPE_TASK_COMPLETE: {
            bool ok = (ev->has & MW_HAS_SUCCESS) && ev->success;
            s_sep (self, &first);
            if (!ok)
                s_sgr (self, "31");
            if (ok && (ev->has & MW_HAS_ACTION_COUNT))
                mw_buf_printf (&self->line, "%" PRIu64 " action%s", ev->action_count,
                               ev->action_count == 1 ? "" : "s");
            else
                mw_buf_puts (&self->line, ok ? "done" : "failed");
            if (ev->has & MW_HAS_RESPONSE_TIME) {
                mw_buf_puts (&self->line, ok ? " in " : " after ");
                s_seconds (self, ev->response_time);
            }
            if ((s = s_str (ev, MW_K_ERROR))) {
                mw_buf_puts (&self->line, ": ");
                s_text (self, s, 80);
            }
            if (!ok && (ev->has & MW_HAS_ACTION_COUNT))
                mw_buf_printf (&self->line, " (%" PRIu64 " action%s)", ev->action_count,
                               ev->action_count == 1 ? "" : "s");
            if (!ok)
                s_sgr (self, "0");
            break;
        }
        case MW_TYPE_TASK_FEEDBACK:
            if (ev->has & MW_HAS_SCORE) {
                s_sep (self, &first);
                if (isfinite (ev->score))
                    mw_buf_printf (&self->line, "score %.2f", ev->score);
                else
                    mw_buf_puts (&self->line, "score ?");
            }
            if (ev->has & MW_HAS_EXECUTION_TIME) {
                s_sep (self, &first);
                mw_buf_puts (&self->line, "executed in ");
                s_seconds (self, ev->execution_time);
            }
            if ((s = s_str (ev, MW_K_VALIDATOR_HOTKEY))) {
                s_sep (self, &first);
                mw_buf_puts (&self->line, "by ");
                s_hotkey (self, s);
            }
            break;
        case MW_TYPE_VALIDATOR_CONNECTION:
            s_validator (self, ev, &first);
            if ((s = s_str (ev, MW_K_ENDPOINT))) {
                s_sep (self, &first);
                mw_buf_puts (&self->line, "via ");
                s_text (self, s, 48);
            }
            break;
        case MW_TYPE_CACHE_HIT:
            s_sep (self, &first);
            mw_buf_puts (&self->line, "cache hit");
            if ((s = s_str (ev, MW_K_CACHE_TYPE))) {
                mw_buf_puts (&self->line, ": ");
                s_text (self, s, 32);
            }
            break;
        case MW_TYPE_ERROR:
            s_sep (self, &first);
            s_sgr (self, "31");
            if ((s = s_str (ev, MW_K_ERROR_TYPE))) {
                mw_buf_putc (&self->line, '[');
                s_text (self, s, 32);
                mw_buf_puts (&self->line, "] ");
            }
            if ((s = s_str (ev, MW_K_ERROR_MESSAGE)))
                s_text (self, s, 120);
            s_sgr (self, "0");
            break;
        default:
            break;
    }

    //  Custom keys (task_step's details are shown above).
    size_t offset = 0, shown = 0, more = 0;
    const char *key;
    size_t key_len;
    const uint8_t *val;
    size_t val_len;
    while (mw_json_extra_next (ev, &offset, &key, &key_len, &val, &val_len) == 1) {
        if (ev->kind == MW_TYPE_TASK_STEP && key && key_len == 7 && memcmp (key, "details", 7) == 0)
            continue;
        if (shown == S_MAX_EXTRAS) {
            more++;
            continue;
        }
        s_sep (self, &first);
        if (key)
            mw_cli_term_text (&self->line, key, key_len, 32);
        else
            mw_buf_putc (&self->line, '?');
        mw_buf_putc (&self->line, '=');
        s_value (self, val, val_len, 60);
        shown++;
    }
    if (more)
        mw_buf_printf (&self->line, " (+%zu more)", more);
}

static void
s_render_line (s_tail_t *self, const mw_event_t *ev)
{
    mw_buf_t *line = &self->line;
    time_t secs = (time_t) (ev->ts / 1000000u);
    struct tm tm;
    if (!localtime_r (&secs, &tm))
        memset (&tm, 0, sizeof (tm));
    s_sgr (self, "2");
    mw_buf_printf (line, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min, tm.tm_sec,
                   (unsigned) (ev->ts / 1000u % 1000u));
    s_sgr (self, "0");
    mw_buf_putc (line, ' ');

    const mw_str_t *miner = s_str (ev, MW_K_MINER);
    size_t at = line->len;
    s_sgr (self, "1");
    if (miner)
        s_text (self, miner, 24);
    s_sgr (self, "0");
    s_pad (self, at, 12);
    mw_buf_putc (line, ' ');

    const s_style_t *style = &s_styles[ev->kind < MW_TYPE_COUNT ? ev->kind : MW_TYPE_CUSTOM];
    if (ev->kind == MW_TYPE_TASK_COMPLETE && !((ev->has & MW_HAS_SUCCESS) && ev->success))
        style = &s_failed_style;
    mw_buf_puts (line, style->emoji);
    mw_buf_putc (line, ' ');
    at = line->len;
    s_sgr (self, style->sgr);
    mw_cli_term_text (line, ev->type, strnlen (ev->type, sizeof (ev->type)), 0);
    s_sgr (self, "0");
    s_pad (self, at, 20);
    mw_buf_putc (line, ' ');

    const mw_str_t *task = s_str (ev, MW_K_TASK_ID);
    if (task) {
        s_text (self, task, 40);
        mw_buf_puts (line, "  ");
    }
    s_details (self, ev);
    if (ev->truncated) {
        s_sgr (self, "2");
        mw_buf_printf (line, " (%" PRIu32 " cut)", ev->truncated);
        s_sgr (self, "0");
    }
    if (ev->has & MW_HAS_ID) {
        mw_buf_putc (line, ' ');
        s_sgr (self, "2");
        mw_buf_printf (line, "#%" PRIu64, ev->id);
        s_sgr (self, "0");
    }
    //  Trailing spaces of an empty details part are noise.
    while (line->len && line->data[line->len - 1] == ' ')
        mw_buf_truncate (line, line->len - 1);
    mw_buf_putc (line, '\n');
}

//  --------------------------------------------------------------------------
//  Messages

//  Track the last sequence number of each session; report a jump.
static void
s_check_gap (s_tail_t *self, const mw_event_t *ev)
{
    size_t i = (size_t) ((ev->sid * UINT64_C (0x9E3779B97F4A7C15)) >> 54) % S_GAP_SLOTS;
    while (self->sessions[i].seq && self->sessions[i].sid != ev->sid)
        i = (i + 1) % S_GAP_SLOTS;
    s_session_t *session = &self->sessions[i];
    if (!session->seq) {
        //  A session seen for the first time: its earlier events were sent
        //  before we subscribed, not lost. Past 3/4 full, start over rather
        //  than probe long chains (a real deployment has a few sessions).
        if (self->session_count >= S_GAP_SLOTS * 3 / 4) {
            memset (self->sessions, 0, sizeof (self->sessions));
            self->session_count = 0;
            s_check_gap (self, ev);
            return;
        }
        session->sid = ev->sid;
        session->seq = ev->seq ? ev->seq : 1;
        self->session_count++;
        return;
    }
    if (ev->seq > session->seq + 1) {
        uint64_t missing = ev->seq - session->seq - 1;
        self->missing += missing;
        mw_buf_reset (&self->scratch);
        const mw_str_t *miner = s_str (ev, MW_K_MINER);
        if (miner)
            mw_cli_term_text (&self->scratch, miner->ptr, miner->len, 64);
        fprintf (stderr,
                 "minerwatch tail: %" PRIu64 " event%s missing from %s (session %016" PRIx64
                 ", seq %" PRIu64 " then %" PRIu64 ")\n",
                 missing, missing == 1 ? "" : "s", self->scratch.data ? self->scratch.data : "?",
                 ev->sid, session->seq, ev->seq);
    }
    if (ev->seq > session->seq)
        session->seq = ev->seq;
}

static bool
s_equals (const mw_str_t *str, const char *want)
{
    size_t len = strlen (want);
    return str && str->len == len && memcmp (str->ptr, want, len) == 0;
}

static void
s_report_malformed (s_tail_t *self, const uint8_t *topic, size_t topic_len, const uint8_t *body,
                    size_t body_len, int frames, const char *reason)
{
    self->malformed++;
    mw_buf_t *out = &self->scratch;
    mw_buf_reset (out);
    mw_buf_puts (out, "minerwatch tail: malformed message (");
    if (topic) {
        mw_buf_puts (out, "topic '");
        mw_cli_term_text (out, (const char *) topic, topic_len, 40);
        mw_buf_puts (out, "', ");
    }
    mw_buf_printf (out, "%d frame%s", frames, frames == 1 ? "" : "s");
    if (body) {
        mw_buf_printf (out, ", body %zu bytes", body_len);
        if (body_len)
            mw_buf_puts (out, ":");
        for (size_t i = 0; i < body_len && i < 16; i++)
            mw_buf_printf (out, " %02x", body[i]);
        if (body_len > 16)
            mw_buf_puts (out, " ...");
    }
    mw_buf_puts (out, "): ");
    mw_buf_puts (out, reason);
    mw_buf_putc (out, '\n');
    mw_cli_write (stderr, out);
}

static void
s_handle (s_tail_t *self, zmq_msg_t *frames, int count)
{
    const uint8_t *topic = count >= 1 ? (const uint8_t *) zmq_msg_data (&frames[0]) : NULL;
    size_t topic_len = count >= 1 ? zmq_msg_size (&frames[0]) : 0;
    const uint8_t *body = count >= 2 ? (const uint8_t *) zmq_msg_data (&frames[1]) : NULL;
    size_t body_len = count >= 2 ? zmq_msg_size (&frames[1]) : 0;
    if (topic_len > 0 && topic[0] == '$')
        return; //  broker heartbeat or control message
    if (count != 2) {
        char reason[96];
        snprintf (reason, sizeof (reason), "frames: %d frame%s, expected 2 (topic, msgpack body)",
                  count, count == 1 ? "" : "s");
        s_report_malformed (self, topic, topic_len, body, body_len, count, reason);
        return;
    }
    char err[256];
    int rc = mw_event_decode (&self->ev, topic, topic_len, body, body_len, err, sizeof (err));
    if (rc != MW_OK) {
        char reason[300];
        snprintf (reason, sizeof (reason), "%s: %s", mw_err_name (rc), err);
        s_report_malformed (self, topic, topic_len, body, body_len, count, reason);
        return;
    }
    if (self->opts.type_count == 0)
        s_check_gap (self, &self->ev);
    if ((self->opts.miner && !s_equals (s_str (&self->ev, MW_K_MINER), self->opts.miner)) ||
        (self->opts.task && !s_equals (s_str (&self->ev, MW_K_TASK_ID), self->opts.task))) {
        self->filtered++;
        mw_event_release (&self->ev);
        return;
    }
    mw_buf_reset (&self->line);
    if (self->opts.json) {
        if (mw_json_event (&self->line, &self->ev) == 0)
            mw_buf_putc (&self->line, '\n');
    }
    else
        s_render_line (self, &self->ev);
    mw_event_release (&self->ev);
    if (self->line.failed) {
        fprintf (stderr, "minerwatch tail: out of memory rendering an event\n");
        self->stop = true;
        return;
    }
    if (mw_cli_write (stdout, &self->line) != 0) {
        self->stop = true; //  stdout closed (a pipe into `head`): done
        return;
    }
    self->shown++;
    if (self->opts.count && self->shown >= self->opts.count)
        self->stop = true;
}

//  Receive every message waiting on the socket, without blocking.
static void
s_drain (s_tail_t *self, void *handle)
{
    while (!self->stop && !mw_cli_interrupted) {
        zmq_msg_t frames[S_FRAMES];
        for (int i = 0; i < S_FRAMES; i++)
            zmq_msg_init (&frames[i]);
        int count = 0;
        bool more = true;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init (&part);
            //  The parts of a message arrive together: only the first can
            //  be missing.
            if (zmq_msg_recv (&part, handle, count == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close (&part);
                break;
            }
            more = zmq_msg_more (&part);
            if (count < S_FRAMES)
                zmq_msg_move (&frames[count], &part);
            zmq_msg_close (&part);
            count++;
        }
        if (count > 0)
            s_handle (self, frames, count);
        for (int i = 0; i < S_FRAMES; i++)
            zmq_msg_close (&frames[i]);
        if (count == 0)
            break;
    }
    if (fflush (stdout) != 0)
        self->stop = true;
}

//  --------------------------------------------------------------------------
//  Handshakes

//  Reasons a handshake fails, as bits of s_tail_t.hs_told.
enum { S_HS_CLOSED = 1, S_HS_REFUSED = 2, S_HS_MECHANISM = 4, S_HS_PROTOCOL = 8 };

//  Read the monitor's events; report each kind of handshake failure once,
//  and again after a handshake succeeded in between.
static void
s_monitor_read (s_tail_t *self, void *monitor)
{
    bool curve = self->opts.curve.server_key != NULL;
    while (true) {
        uint8_t head[6]; //  uint16 event, uint32 value (monitor format v1)
        int size = zmq_recv (monitor, head, sizeof (head), ZMQ_DONTWAIT);
        if (size < 0)
            break;
        char endpoint[256];
        int len = zmq_recv (monitor, endpoint, sizeof (endpoint) - 1, ZMQ_DONTWAIT);
        if (size < (int) sizeof (head) || len < 0)
            continue;
        endpoint[len < (int) sizeof (endpoint) - 1 ? len : (int) sizeof (endpoint) - 1] = 0;
        uint16_t event;
        uint32_t value;
        memcpy (&event, head, sizeof (event));
        memcpy (&value, head + 2, sizeof (value));
        unsigned kind = 0;
        char why[256];
        if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
            self->hs_told = 0;
            continue;
        }
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
            kind = S_HS_REFUSED;
            snprintf (why, sizeof (why),
                      "the broker refused this client's key (status %u): its public "
                      "certificate must be in the broker's --curve-clients directory, and its "
                      "key pair given with --curve-client-cert",
                      (unsigned) value);
        }
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
                 value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
            kind = S_HS_MECHANISM;
            snprintf (why, sizeof (why), "%s",
                      curve ? "the other side does not use CURVE (a broker without "
                              "--curve-secret?): leave out --curve-server-key"
                            : "the other side uses CURVE (a broker with --curve-secret): give "
                              "its public key with --curve-server-key");
        }
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            kind = S_HS_PROTOCOL;
            snprintf (why, sizeof (why), "a ZeroMQ protocol error (0x%08x) in the handshake",
                      (unsigned) value);
        }
        else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
            kind = S_HS_CLOSED;
            if (curve)
                snprintf (why, sizeof (why),
                          "the other side closed the connection during the CURVE handshake: "
                          "is --curve-server-key the broker's public key?");
            else
                snprintf (why, sizeof (why),
                          "the other side ended the handshake (%s): if it is a broker with "
                          "--curve-secret, give its public key with --curve-server-key",
                          strerror ((int) value));
        }
        else
            continue;
        if (self->hs_told & kind)
            continue;
        self->hs_told |= kind;
        mw_buf_reset (&self->scratch);
        mw_cli_term_text (&self->scratch, endpoint, strlen (endpoint), 120);
        fprintf (stderr, "minerwatch tail: no connection with %s: %s (retrying)\n",
                 self->scratch.data ? self->scratch.data : "?", why);
    }
}

static int
s_run (int argc, char **argv)
{
    s_tail_t *self = (s_tail_t *) calloc (1, sizeof (s_tail_t));
    if (!self) {
        fprintf (stderr, "minerwatch tail: out of memory\n");
        return MW_CLI_FAILED;
    }
    int rc = s_parse (&self->opts, argc, argv);
    if (rc != 0) {
        free (self);
        return rc < 0 ? MW_CLI_OK : rc;
    }
    self->color = !self->opts.json && mw_cli_use_color (self->opts.color_mode, STDOUT_FILENO);
    tzset ();

    rc = MW_CLI_FAILED;
    zsock_t *monitor = NULL;
    zsock_t *sock = zsock_new (ZMQ_SUB);
    if (!sock) {
        fprintf (stderr, "minerwatch tail: cannot create a socket: %s\n",
                 zmq_strerror (zmq_errno ()));
        goto done;
    }
    zsock_set_rcvhwm (sock, S_RCVHWM);
    char curve_err[640];
    if (mw_cli_curve_client (zsock_resolve (sock), &self->opts.curve, curve_err,
                             sizeof (curve_err)) != 0) {
        fprintf (stderr, "minerwatch tail: %s\n", curve_err);
        goto done;
    }
    //  The monitor exists before the first connection, so that it sees all.
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof (monitor_ep), "inproc://minerwatch-tail-monitor-%p",
              (void *) self);
    if (zmq_socket_monitor (zsock_resolve (sock), monitor_ep,
                            ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0 ||
        !(monitor = zsock_new (ZMQ_PAIR)) || zsock_connect (monitor, "%s", monitor_ep) != 0) {
        fprintf (stderr, "minerwatch tail: cannot monitor the socket: %s\n",
                 zmq_strerror (zmq_errno ()));
        goto done;
    }
    if (self->opts.type_count == 0)
        zsock_set_subscribe (sock, "");
    for (size_t i = 0; i < self->opts.type_count; i++)
        zsock_set_subscribe (sock, self->opts.types[i]);
    if (zsock_attach (sock, self->opts.endpoint, false) != 0) {
        int err = zmq_errno ();
        fprintf (stderr, "minerwatch tail: cannot subscribe on '%s': %s; %s\n", self->opts.endpoint,
                 zmq_strerror (err),
                 err == EADDRINUSE ? "another process holds this port: stop it or pick another"
                                   : "check the address ('@' binds a local address, '>' connects)");
        goto done;
    }

    void *handle = zsock_resolve (sock);
    double deadline = self->opts.timeout > 0 ? mw_cli_now () + self->opts.timeout : 0;
    while (!self->stop && !mw_cli_interrupted) {
        long wait_ms = S_POLL_MS;
        if (deadline) {
            double left = deadline - mw_cli_now ();
            if (left <= 0)
                break;
            if (left * 1000 < wait_ms)
                wait_ms = (long) (left * 1000) + 1;
        }
        zmq_pollitem_t items[2] = {{handle, 0, ZMQ_POLLIN, 0},
                                   {zsock_resolve (monitor), 0, ZMQ_POLLIN, 0}};
        int n = zmq_poll (items, 2, wait_ms);
        if (n < 0 && zmq_errno () != EINTR) {
            fprintf (stderr, "minerwatch tail: cannot receive: %s\n", zmq_strerror (zmq_errno ()));
            goto done;
        }
        if (n > 0 && (items[1].revents & ZMQ_POLLIN))
            s_monitor_read (self, zsock_resolve (monitor));
        if (n > 0 && (items[0].revents & ZMQ_POLLIN))
            s_drain (self, handle);
    }
    rc = MW_CLI_OK;

done:
    fflush (stdout);
    if (rc == MW_CLI_OK)
        fprintf (stderr,
                 "minerwatch tail: %" PRIu64 " event%s shown, %" PRIu64 " filtered out, %" PRIu64
                 " malformed, %" PRIu64 " missing\n",
                 self->shown, self->shown == 1 ? "" : "s", self->filtered, self->malformed,
                 self->missing);
    if (sock)
        zmq_socket_monitor (zsock_resolve (sock), NULL, 0);
    zsock_destroy (&monitor);
    zsock_destroy (&sock);
    mw_event_release (&self->ev);
    mw_buf_release (&self->line);
    mw_buf_release (&self->scratch);
    free (self);
    return rc;
}

const mw_cli_command_t mw_cmd_tail = {
    "tail", "print the events of a broker or publishers as they arrive", s_run, s_help};
