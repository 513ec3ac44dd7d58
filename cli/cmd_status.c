/*  cmd_status.c - `minerwatch status [ENDPOINT]`: the broker's state at a
    glance, in the terminal.

    Fetches a snapshot from the broker's snapshot service (DEALER ->
    ROUTER: "$snap?", then "$snap" chunks and "$snap_end"; see
    docs/protocol.md), loads it with mw_state_load (the same hostile-input
    loader a gateway uses) and renders the original dashboard's two panels,
    Active Tasks and Recent Events, under a few headline numbers. --json
    prints the same as one JSON object; --watch fetches again every second.

    Everything that came from the wire is untrusted: strings go through
    mw_cli_term_text (controls and bidirectional overrides escaped) before
    they reach the terminal, and the snapshot is bounded in size.
*/
#include "mw_cli.h"
#include "mw_event.h"
#include "mw_state.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define S_NAME             "status"
#define S_DEFAULT_ENDPOINT ">tcp://127.0.0.1:7712"
#define S_DEFAULT_TIMEOUT  5.0
#define S_DEFAULT_ROWS     10
#define S_SNAP_MAX         ((size_t) 1 << 30) //  largest snapshot accepted (bytes)
#define S_POLL_MS          100                //  longest wait before looking at signals
#define S_WIDTH_MIN        40
#define S_WIDTH_MAX        120
#define S_WIDTH_DEFAULT    80 //  when stdout is not a terminal

typedef struct {
    const char *endpoint;
    bool json;
    bool watch;
    double timeout;
    uint64_t tasks;
    uint64_t events;
    uint64_t width; //  0: the terminal's
    mw_color_mode_t color_mode;
    mw_cli_curve_t curve;
} s_opts_t;

//  What "$snap_end" says.
typedef struct {
    uint64_t id;
    uint64_t epoch;
    uint64_t now_ms;
    uint64_t size;
    uint64_t chunks;
    uint64_t crc32;
} s_snap_info_t;

typedef struct {
    s_opts_t opts;
    bool color;
    size_t width;
    zsock_t *dealer;
    mw_buf_t out;
    mw_buf_t line;
    mw_buf_t scratch;
} s_status_t;

enum { S_OPT_COLOR = 256, S_OPT_TIMEOUT, S_OPT_TASKS, S_OPT_EVENTS, S_OPT_WIDTH };

static const struct option s_options[] = {{"json", no_argument, NULL, 'j'},
                                          {"watch", no_argument, NULL, 'w'},
                                          {"timeout", required_argument, NULL, S_OPT_TIMEOUT},
                                          {"tasks", required_argument, NULL, S_OPT_TASKS},
                                          {"events", required_argument, NULL, S_OPT_EVENTS},
                                          {"width", required_argument, NULL, S_OPT_WIDTH},
                                          {"color", required_argument, NULL, S_OPT_COLOR},
                                          MW_CLI_CURVE_OPTIONS,
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};

static void
s_help (FILE *out)
{
    fprintf (out,
             "Usage: minerwatch status [OPTIONS] [ENDPOINT]\n"
             "\n"
             "Show what a broker sees now: headline numbers (tasks per minute, success rate,\n"
             "response times, cache hits, errors, lost events) and the dashboard's two panels,\n"
             "Active Tasks and Recent Events. Times are UTC.\n"
             "\n"
             "ENDPOINT is the broker's snapshot service (default " S_DEFAULT_ENDPOINT ").\n"
             "\n"
             "Options:\n"
             "  -j, --json                  print one JSON object instead (with --watch: one\n"
             "                              line per second, NDJSON)\n"
             "  -w, --watch                 fetch and redraw every second until Ctrl-C\n"
             "      --timeout S             give up on a broker silent for S seconds\n"
             "                              (default 5)\n"
             "      --tasks N               active tasks shown, 0 = all (default 10)\n"
             "      --events N              recent events shown, 0 = all (default 10)\n"
             "      --width N               panel width in columns (default: the terminal's,\n"
             "                              80 when not a terminal)\n"
             "      --color=WHEN            auto, always or never (default auto)\n"
             "  -h, --help                  show this help and exit\n"
             "\n" MW_CLI_CURVE_HELP "\n"
             "Exit code 0, or 1 if the broker does not answer within the timeout (with\n"
             "--watch, the error is shown and the fetch retried).\n"
             "\n"
             "Examples:\n"
             "  minerwatch status\n"
             "  minerwatch status --watch '>tcp://broker.example:7712'\n"
             "  minerwatch status --json | jq .stats\n");
}

static int
s_parse (s_opts_t *opts, int argc, char **argv)
{
    opts->color_mode = MW_COLOR_AUTO;
    opts->timeout = S_DEFAULT_TIMEOUT;
    opts->tasks = S_DEFAULT_ROWS;
    opts->events = S_DEFAULT_ROWS;
    opts->endpoint = S_DEFAULT_ENDPOINT;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":jwh", s_options, NULL)) != -1) {
        switch (c) {
            case 'j':
                opts->json = true;
                break;
            case 'w':
                opts->watch = true;
                break;
            case S_OPT_TIMEOUT:
                if (mw_cli_parse_double (optarg, 0.001, 86400, &opts->timeout) != 0)
                    return mw_cli_usage (
                        S_NAME, "invalid --timeout '%s': expected seconds, e.g. 2.5", optarg);
                break;
            case S_OPT_TASKS:
            case S_OPT_EVENTS:
                if (mw_cli_parse_uint (optarg, 0, 1000000,
                                       c == S_OPT_TASKS ? &opts->tasks : &opts->events) != 0)
                    return mw_cli_usage (S_NAME, "invalid --%s '%s': expected a count (0 for all)",
                                         c == S_OPT_TASKS ? "tasks" : "events", optarg);
                break;
            case S_OPT_WIDTH:
                if (mw_cli_parse_uint (optarg, S_WIDTH_MIN, 1000, &opts->width) != 0)
                    return mw_cli_usage (S_NAME,
                                         "invalid --width '%s': expected columns, %d to 1000",
                                         optarg, S_WIDTH_MIN);
                break;
            case S_OPT_COLOR:
                if (mw_cli_parse_color (optarg, &opts->color_mode) != 0)
                    return mw_cli_usage (
                        S_NAME, "invalid --color '%s': expected auto, always or never", optarg);
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
        opts->endpoint = argv[optind++];
    if (optind < argc)
        return mw_cli_usage (S_NAME, "unexpected argument '%s' after ENDPOINT", argv[optind]);
    const char *why;
    if (mw_cli_check_endpoints (opts->endpoint, &why) != 0)
        return mw_cli_usage (S_NAME, "invalid ENDPOINT '%s': %s", opts->endpoint, why);
    return mw_cli_curve_check (S_NAME, &opts->curve);
}

//  --------------------------------------------------------------------------
//  The snapshot

//  Read one msgpack uint at *p (end bounds it). Return 0, or -1.
static int
s_mp_uint (const uint8_t **p, const uint8_t *end, uint64_t *value)
{
    if (*p >= end)
        return -1;
    uint8_t b = **p;
    int bytes = 0;
    if (b < 0x80) {
        *value = b;
        (*p)++;
        return 0;
    }
    if (b == 0xcc)
        bytes = 1;
    else if (b == 0xcd)
        bytes = 2;
    else if (b == 0xce)
        bytes = 4;
    else if (b == 0xcf)
        bytes = 8;
    else
        return -1;
    if (end - *p < 1 + bytes)
        return -1;
    uint64_t v = 0;
    for (int i = 1; i <= bytes; i++)
        v = (v << 8) | (*p)[i];
    *p += 1 + bytes;
    *value = v;
    return 0;
}

//  Read one msgpack str header at *p. Return its length and move past the
//  header, or -1.
static int64_t
s_mp_str (const uint8_t **p, const uint8_t *end)
{
    if (*p >= end)
        return -1;
    uint8_t b = **p;
    size_t len;
    size_t hdr = 1;
    if ((b & 0xe0) == 0xa0)
        len = b & 0x1f;
    else if (b == 0xd9 && end - *p >= 2) {
        len = (*p)[1];
        hdr = 2;
    }
    else
        return -1;
    if ((size_t) (end - *p) < hdr + len)
        return -1;
    *p += hdr;
    return (int64_t) len;
}

//  Parse the "$snap_end" map: string keys, uint values; unknown keys of
//  that shape are skipped (the protocol may add some). Return 0, or -1.
static int
s_parse_end (const uint8_t *data, size_t size, s_snap_info_t *info)
{
    const uint8_t *p = data;
    const uint8_t *end = data + size;
    if (p >= end || (*p & 0xf0) != 0x80)
        return -1;
    int count = *p++ & 0x0f;
    memset (info, 0, sizeof (*info));
    bool have_id = false, have_epoch = false, have_size = false, have_chunks = false;
    for (int i = 0; i < count; i++) {
        int64_t klen = s_mp_str (&p, end);
        if (klen < 0)
            return -1;
        const char *key = (const char *) p;
        p += klen;
        uint64_t v;
        if (s_mp_uint (&p, end, &v))
            return -1;
#define S_KEY_IS(name) ((size_t) klen == strlen (name) && memcmp (key, name, (size_t) klen) == 0)
        if (S_KEY_IS ("id")) {
            info->id = v;
            have_id = true;
        }
        else if (S_KEY_IS ("epoch")) {
            info->epoch = v;
            have_epoch = true;
        }
        else if (S_KEY_IS ("now_ms"))
            info->now_ms = v;
        else if (S_KEY_IS ("size")) {
            info->size = v;
            have_size = true;
        }
        else if (S_KEY_IS ("chunks")) {
            info->chunks = v;
            have_chunks = true;
        }
        else if (S_KEY_IS ("crc32"))
            info->crc32 = v;
#undef S_KEY_IS
    }
    return have_id && have_epoch && have_size && have_chunks && p == end ? 0 : -1;
}

static int
s_connect (s_status_t *self, char *err, size_t err_size)
{
    self->dealer = zsock_new (ZMQ_DEALER);
    if (!self->dealer) {
        snprintf (err, err_size, "cannot create a socket");
        return -1;
    }
    zsock_set_linger (self->dealer, 0);
    zsock_set_maxmsgsize (self->dealer, 1024 * 1024); //  a chunk is 64 KiB
    if (mw_cli_curve_client (zsock_resolve (self->dealer), &self->opts.curve, err, err_size))
        return -1;
    const char *ep = self->opts.endpoint;
    int rc = *ep == '@' ? zsock_bind (self->dealer, "%s", ep + 1)
                        : zsock_connect (self->dealer, "%s", *ep == '>' ? ep + 1 : ep);
    if (rc < 0) {
        snprintf (err, err_size, "cannot %s %s: %s", *ep == '@' ? "bind" : "connect to", ep,
                  zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

//  Ask for a snapshot and wait for all of it. Return the state and the
//  end marker, or NULL with a message (the timeout says so).
static mw_state_t *
s_fetch (s_status_t *self, s_snap_info_t *info, char *err, size_t err_size)
{
    void *sock = zsock_resolve (self->dealer);
    if (zmq_send (sock, "$snap?", 6, ZMQ_DONTWAIT) < 0 && zmq_errno () != EAGAIN) {
        snprintf (err, err_size, "cannot send the request: %s", zmq_strerror (zmq_errno ()));
        return NULL;
    }
    uint8_t *data = NULL;
    size_t size = 0, cap = 0;
    uint64_t next_seq = 0;
    mw_state_t *state = NULL;
    double deadline = mw_cli_now () + self->opts.timeout;
    zmq_msg_t frames[3];
    for (int i = 0; i < 3; i++)
        zmq_msg_init (&frames[i]);
    bool done = false;
    while (!done) {
        if (mw_cli_interrupted) {
            snprintf (err, err_size, "interrupted");
            goto fail;
        }
        double left = deadline - mw_cli_now ();
        if (left <= 0) {
            snprintf (err, err_size,
                      "no answer from %s after %g s: is minerwatch-broker running?%s",
                      self->opts.endpoint, self->opts.timeout,
                      self->opts.curve.server_key ? " (or is the CURVE key wrong?)" : "");
            goto fail;
        }
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        long wait = (long) (left * 1000) + 1;
        if (zmq_poll (&item, 1, wait < S_POLL_MS ? wait : S_POLL_MS) <= 0)
            continue;
        //  One message: up to 3 frames kept, more are a protocol error.
        size_t nframes = 0;
        bool more = true;
        while (more) {
            zmq_msg_t *msg = &frames[nframes < 3 ? nframes : 2];
            if (zmq_msg_recv (msg, sock, 0) < 0)
                break;
            nframes++;
            more = zmq_msg_more (msg);
        }
        const char *cmd = (const char *) zmq_msg_data (&frames[0]);
        size_t cmd_len = zmq_msg_size (&frames[0]);
#define S_CMD_IS(name) (cmd_len == strlen (name) && memcmp (cmd, name, cmd_len) == 0)
        if (S_CMD_IS ("$snap") && nframes == 3) {
            const uint8_t *p = (const uint8_t *) zmq_msg_data (&frames[1]);
            uint64_t seq;
            if (s_mp_uint (&p, p + zmq_msg_size (&frames[1]), &seq) || seq != next_seq) {
                snprintf (err, err_size, "snapshot chunk %" PRIu64 " missing or out of order",
                          next_seq);
                goto fail;
            }
            next_seq++;
            size_t n = zmq_msg_size (&frames[2]);
            if (size + n > S_SNAP_MAX) {
                snprintf (err, err_size, "snapshot larger than %zu bytes: refused", S_SNAP_MAX);
                goto fail;
            }
            if (size + n > cap) {
                size_t ncap = cap ? cap * 2 : (size_t) 256 * 1024;
                while (ncap < size + n)
                    ncap *= 2;
                uint8_t *grown = (uint8_t *) realloc (data, ncap);
                if (!grown) {
                    snprintf (err, err_size, "out of memory for the snapshot");
                    goto fail;
                }
                data = grown;
                cap = ncap;
            }
            if (n) {
                memcpy (data + size, zmq_msg_data (&frames[2]), n);
                size += n;
            }
            //  Progress: a big snapshot on a slow link is not a dead broker.
            deadline = mw_cli_now () + self->opts.timeout;
        }
        else if (S_CMD_IS ("$snap_end") && nframes == 2) {
            if (s_parse_end ((const uint8_t *) zmq_msg_data (&frames[1]), zmq_msg_size (&frames[1]),
                             info) ||
                info->size != size || info->chunks != next_seq) {
                snprintf (err, err_size,
                          "snapshot incomplete or its end marker malformed (%zu bytes in %" PRIu64
                          " chunks received)",
                          size, next_seq);
                goto fail;
            }
            done = true;
        }
        else if (S_CMD_IS ("$snap_err") && nframes == 2) {
            mw_buf_reset (&self->scratch);
            mw_cli_term_text (&self->scratch, (const char *) zmq_msg_data (&frames[1]),
                              zmq_msg_size (&frames[1]), 200);
            snprintf (err, err_size, "the broker refused the snapshot: %s",
                      self->scratch.data ? self->scratch.data : "");
            goto fail;
        }
        else {
            snprintf (err, err_size, "unexpected reply from %s (not a minerwatch broker?)",
                      self->opts.endpoint);
            goto fail;
        }
#undef S_CMD_IS
    }
    char lerr[256];
    state = mw_state_load (data ? data : (const uint8_t *) "", size, lerr, sizeof (lerr));
    if (!state)
        snprintf (err, err_size, "the snapshot does not load: %s", lerr);
    else if (mw_state_last_id (state) != info->id) {
        snprintf (err, err_size, "the snapshot says id %" PRIu64 ", its state id %" PRIu64,
                  info->id, mw_state_last_id (state));
        mw_state_destroy (&state);
    }
fail:
    for (int i = 0; i < 3; i++)
        zmq_msg_close (&frames[i]);
    free (data);
    return state;
}

//  --------------------------------------------------------------------------
//  Text helpers

//  Columns a code point takes in a terminal: 2 for East Asian wide and
//  emoji, 0 for combining marks and zero-width characters, else 1.
static int
s_cp_width (uint32_t cp)
{
    if ((cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200F) ||
        (cp >= 0xFE00 && cp <= 0xFE0F) || cp == 0x20E3)
        return 0;
    if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF && cp != 0x303F) ||
        (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
        (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
        (cp >= 0x1F900 && cp <= 0x1F9FF) || (cp >= 0x1F680 && cp <= 0x1F6FF) ||
        (cp >= 0x20000 && cp <= 0x3FFFD) || cp == 0x2705 || cp == 0x274C || cp == 0x26A1 ||
        cp == 0x2B50 || cp == 0x231A || cp == 0x231B || cp == 0x23F0 || cp == 0x23F3)
        return 2;
    return 1;
}

//  Columns of UTF-8 text that holds no escape sequence.
static size_t
s_width (const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *) s;
    const uint8_t *end = p + len;
    size_t cols = 0;
    while (p < end) {
        uint32_t cp;
        p += mw_utf8_next (p, (size_t) (end - p), &cp);
        cols += (size_t) s_cp_width (cp);
    }
    return cols;
}

//  Append untrusted text to the line, made safe, cut to at most cols
//  columns (with "…").
static void
s_text (s_status_t *self, const char *s, size_t len, size_t cols)
{
    mw_buf_reset (&self->scratch);
    mw_cli_term_text (&self->scratch, s, len, 0);
    if (!self->scratch.data || self->scratch.failed)
        return; //  nothing to show (or no memory to show it)
    const uint8_t *p = (const uint8_t *) self->scratch.data;
    const uint8_t *end = p + self->scratch.len;
    if (s_width (self->scratch.data, self->scratch.len) <= cols) {
        mw_buf_append (&self->line, p, self->scratch.len);
        return;
    }
    size_t used = 0;
    while (p < end) {
        uint32_t cp;
        size_t n = mw_utf8_next (p, (size_t) (end - p), &cp);
        size_t w = (size_t) s_cp_width (cp);
        if (used + w + 1 > cols)
            break;
        mw_buf_append (&self->line, p, n);
        used += w;
        p += n;
    }
    mw_buf_puts (&self->line, "\xE2\x80\xA6");
}

static void
s_str (s_status_t *self, const char *s, size_t cols)
{
    s_text (self, s ? s : "", s ? strlen (s) : 0, cols);
}

//  A task id as the dashboard shows it: 8 characters and "...".
static void
s_short_id (s_status_t *self, const char *id, size_t len)
{
    if (len <= 11) {
        s_text (self, id, len, 11);
        return;
    }
    size_t cut = 8;
    while (cut < len && ((uint8_t) id[cut] & 0xC0) == 0x80)
        cut++; //  keep a UTF-8 character whole
    s_text (self, id, cut, 8);
    mw_buf_puts (&self->line, "...");
}

static void
s_duration (mw_buf_t *buf, double s)
{
    if (!isfinite (s) || s < 0)
        s = 0;
    if (s < 10)
        mw_buf_printf (buf, "%.1fs", s);
    else if (s < 60)
        mw_buf_printf (buf, "%.0fs", s);
    else if (s < 3600)
        mw_buf_printf (buf, "%dm%02ds", (int) (s / 60), (int) fmod (s, 60));
    else
        mw_buf_printf (buf, "%dh%02dm", (int) (s / 3600), (int) fmod (s / 60, 60));
}

static void
s_clock (mw_buf_t *buf, uint64_t ms)
{
    time_t secs = (time_t) (ms / 1000);
    struct tm tm;
    gmtime_r (&secs, &tm);
    mw_buf_printf (buf, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
s_sgr (s_status_t *self, mw_buf_t *buf, const char *code)
{
    if (self->color)
        mw_buf_printf (buf, "\033[%sm", code);
}

//  --------------------------------------------------------------------------
//  Panels

//  Box lines: "┌───┐", "├───┤", "└───┘".
static void
s_rule (s_status_t *self, const char *left, const char *right)
{
    mw_buf_puts (&self->out, left);
    for (size_t i = 2; i < self->width; i++)
        mw_buf_puts (&self->out, "\xE2\x94\x80");
    mw_buf_puts (&self->out, right);
    mw_buf_putc (&self->out, '\n');
}

//  Emit the line buffer as one row of the box, padded to the width. sgr:
//  a colour for the whole row, or NULL.
static void
s_row (s_status_t *self, const char *sgr)
{
    size_t inner = self->width - 4;
    size_t cols = s_width (self->line.data ? self->line.data : "", self->line.len);
    mw_buf_puts (&self->out, "\xE2\x94\x82 ");
    if (sgr)
        s_sgr (self, &self->out, sgr);
    mw_buf_append (&self->out, self->line.data ? self->line.data : "", self->line.len);
    if (sgr)
        s_sgr (self, &self->out, "0");
    while (cols++ < inner)
        mw_buf_putc (&self->out, ' ');
    mw_buf_puts (&self->out, " \xE2\x94\x82\n");
    mw_buf_reset (&self->line);
}

static const char *
s_emoji (const mw_event_t *ev)
{
    switch (ev->kind) {
        case MW_TYPE_TASK_START:
            return "\xF0\x9F\x93\xA5"; //  📥
        case MW_TYPE_TASK_STEP:
            return "\xF0\x9F\x93\x8A"; //  📊
        case MW_TYPE_ACTIONS_GENERATED:
            return "\xE2\x9A\xA1"; //  ⚡
        case MW_TYPE_TASK_COMPLETE:
            return (ev->has & MW_HAS_SUCCESS) && ev->success ? "\xE2\x9C\x85"  //  ✅
                                                             : "\xE2\x9D\x8C"; //  ❌
        case MW_TYPE_TASK_FEEDBACK:
            return "\xE2\xAD\x90"; //  ⭐
        case MW_TYPE_VALIDATOR_CONNECTION:
            return "\xF0\x9F\x94\x97"; //  🔗
        case MW_TYPE_CACHE_HIT:
            return "\xF0\x9F\x92\xBE"; //  💾
        case MW_TYPE_ERROR:
            return "\xE2\x9D\x8C"; //  ❌
        default:
            return "\xE2\x80\xA2 "; //  • and a space: two columns like the others
    }
}

static const char *
s_colour (const mw_event_t *ev)
{
    switch (ev->kind) {
        case MW_TYPE_TASK_START:
            return "32";
        case MW_TYPE_TASK_STEP:
            return "34";
        case MW_TYPE_ACTIONS_GENERATED:
            return "33";
        case MW_TYPE_TASK_COMPLETE:
            return (ev->has & MW_HAS_SUCCESS) && ev->success ? "32" : "31";
        case MW_TYPE_VALIDATOR_CONNECTION:
            return "35";
        case MW_TYPE_CACHE_HIT:
            return "36";
        case MW_TYPE_ERROR:
            return "31";
        default:
            return NULL;
    }
}

//  "Validator: 45.22.240.79 (5FHneW…)" from whatever is known.
static bool
s_validator (s_status_t *self, const char *ip, size_t ip_len, const char *hk, size_t hk_len,
             size_t cols)
{
    if (!ip_len && !hk_len)
        return false;
    mw_buf_puts (&self->line, "Validator: ");
    if (ip_len)
        s_text (self, ip, ip_len, cols > 11 ? cols - 11 : 1);
    if (hk_len) {
        if (ip_len)
            mw_buf_puts (&self->line, " ");
        s_text (self, hk, hk_len, ip_len ? 12 : cols > 11 ? cols - 11 : 1);
    }
    return true;
}

static void
s_active_panel (s_status_t *self, const mw_state_t *state)
{
    size_t count = mw_state_active_count (state);
    size_t inner = self->width - 4;
    uint64_t now = mw_state_now (state);
    s_rule (self, "\xE2\x94\x8C", "\xE2\x94\x90");
    mw_buf_printf (&self->line, "Active Tasks (%zu)", count);
    s_row (self, "1");
    size_t shown = self->opts.tasks && self->opts.tasks < count ? (size_t) self->opts.tasks : count;
    if (count == 0) {
        s_rule (self, "\xE2\x94\x9C", "\xE2\x94\xA4");
        mw_buf_puts (&self->line, "no active task");
        s_row (self, "2");
    }
    //  Newest first, like the dashboard.
    for (size_t i = 0; i < shown; i++) {
        const mw_task_t *t = mw_state_active (state, count - 1 - i);
        if (!t)
            break;
        s_rule (self, "\xE2\x94\x9C", "\xE2\x94\xA4");
        s_short_id (self, t->task_id, strlen (t->task_id));
        mw_buf_puts (&self->line, "    ");
        s_duration (&self->line, now > t->start_ms ? (double) (now - t->start_ms) / 1000.0 : 0);
        if (t->started_late)
            mw_buf_puts (&self->line, " (started late)");
        mw_buf_puts (&self->line, "    ");
        size_t used = s_width (self->line.data, self->line.len);
        s_str (self, t->miner, inner > used ? inner - used : 1);
        s_row (self, NULL);
        if (t->prompt[0]) {
            s_str (self, t->prompt, inner);
            s_row (self, NULL);
        }
        if (t->current_step[0]) {
            s_str (self, t->current_step, inner > 24 ? inner - 20 : inner);
            if (t->actions)
                mw_buf_printf (&self->line, " (%" PRIu64 " action%s)", t->actions,
                               t->actions == 1 ? "" : "s");
        }
        else if (t->actions)
            mw_buf_printf (&self->line, "generated %" PRIu64 " action%s", t->actions,
                           t->actions == 1 ? "" : "s");
        else
            mw_buf_puts (&self->line, "started");
        s_row (self, "2");
        if (s_validator (self, t->validator_ip, strlen (t->validator_ip), t->validator_hotkey,
                         strlen (t->validator_hotkey), inner))
            s_row (self, NULL);
    }
    if (shown < count) {
        s_rule (self, "\xE2\x94\x9C", "\xE2\x94\xA4");
        mw_buf_printf (&self->line, "... and %zu more", count - shown);
        s_row (self, "2");
    }
    s_rule (self, "\xE2\x94\x94", "\xE2\x94\x98");
}

static const mw_str_t *
s_ev_str (const mw_event_t *ev, mw_str_key_t key)
{
    return ev->str[key].ptr ? &ev->str[key] : NULL;
}

//  The detail lines of an event, as the dashboard's (indented 3).
static void
s_event_details (s_status_t *self, const mw_event_t *ev)
{
    size_t cols = self->width - 4 - 3;
    const mw_str_t *s;
    const mw_str_t *task = s_ev_str (ev, MW_K_TASK_ID);
    const mw_str_t *ip = s_ev_str (ev, MW_K_VALIDATOR_IP);
    const mw_str_t *hk = s_ev_str (ev, MW_K_VALIDATOR_HOTKEY);
#define S_INDENT() mw_buf_puts (&self->line, "   ")
    switch (ev->kind) {
        case MW_TYPE_TASK_START:
        case MW_TYPE_CACHE_HIT:
        case MW_TYPE_CUSTOM:
            if (task) {
                S_INDENT ();
                mw_buf_puts (&self->line, "Task: ");
                s_short_id (self, task->ptr, task->len);
                if (ev->kind == MW_TYPE_CACHE_HIT && (s = s_ev_str (ev, MW_K_CACHE_TYPE))) {
                    mw_buf_puts (&self->line, "  cache: ");
                    s_text (self, s->ptr, s->len, 24);
                }
                s_row (self, NULL);
            }
            if (ev->kind == MW_TYPE_TASK_START && (s = s_ev_str (ev, MW_K_PROMPT))) {
                S_INDENT ();
                s_text (self, s->ptr, s->len, cols);
                s_row (self, NULL);
            }
            if (ev->kind == MW_TYPE_TASK_START) {
                S_INDENT ();
                if (s_validator (self, ip ? ip->ptr : "", ip ? ip->len : 0, hk ? hk->ptr : "",
                                 hk ? hk->len : 0, cols))
                    s_row (self, NULL);
                else
                    mw_buf_reset (&self->line);
            }
            break;
        case MW_TYPE_TASK_STEP:
            if ((s = s_ev_str (ev, MW_K_STEP))) {
                S_INDENT ();
                s_text (self, s->ptr, s->len, cols);
                s_row (self, NULL);
            }
            break;
        case MW_TYPE_ACTIONS_GENERATED:
            S_INDENT ();
            mw_buf_printf (&self->line, "%" PRIu64 " actions", ev->action_count);
            if ((s = s_ev_str (ev, MW_K_ACTION_TYPE))) {
                mw_buf_puts (&self->line, " (");
                s_text (self, s->ptr, s->len, 24);
                mw_buf_puts (&self->line, ")");
            }
            s_row (self, NULL);
            break;
        case MW_TYPE_TASK_COMPLETE: {
            bool ok = (ev->has & MW_HAS_SUCCESS) && ev->success;
            S_INDENT ();
            if (ev->has & MW_HAS_ACTION_COUNT)
                mw_buf_printf (&self->line, "%" PRIu64 " actions", ev->action_count);
            else
                mw_buf_puts (&self->line, ok ? "done" : "failed");
            if (ev->has & MW_HAS_RESPONSE_TIME) {
                mw_buf_puts (&self->line, " in ");
                s_duration (&self->line, ev->response_time);
            }
            s_row (self, NULL);
            if ((s = s_ev_str (ev, MW_K_ERROR))) {
                S_INDENT ();
                s_text (self, s->ptr, s->len, cols);
                s_row (self, "31");
            }
            break;
        }
        case MW_TYPE_TASK_FEEDBACK:
            S_INDENT ();
            if (ev->has & MW_HAS_SCORE && isfinite (ev->score))
                mw_buf_printf (&self->line, "score %.2f", ev->score);
            else
                mw_buf_puts (&self->line, "feedback");
            if (ev->has & MW_HAS_EXECUTION_TIME) {
                mw_buf_puts (&self->line, ", executed in ");
                s_duration (&self->line, ev->execution_time);
            }
            s_row (self, NULL);
            break;
        case MW_TYPE_VALIDATOR_CONNECTION:
            S_INDENT ();
            if (s_validator (self, ip ? ip->ptr : "", ip ? ip->len : 0, hk ? hk->ptr : "",
                             hk ? hk->len : 0, cols))
                s_row (self, NULL);
            else
                mw_buf_reset (&self->line);
            break;
        case MW_TYPE_ERROR:
            if ((s = s_ev_str (ev, MW_K_ERROR_MESSAGE))) {
                S_INDENT ();
                s_text (self, s->ptr, s->len, cols);
                s_row (self, "31");
            }
            break;
        default:
            break;
    }
#undef S_INDENT
}

static void
s_events_panel (s_status_t *self, const mw_state_t *state)
{
    size_t count = mw_state_recent_count (state);
    s_rule (self, "\xE2\x94\x8C", "\xE2\x94\x90");
    mw_buf_puts (&self->line, "Recent Events");
    s_row (self, "1");
    size_t shown =
        self->opts.events && self->opts.events < count ? (size_t) self->opts.events : count;
    if (count == 0) {
        s_rule (self, "\xE2\x94\x9C", "\xE2\x94\xA4");
        mw_buf_puts (&self->line, "no event yet");
        s_row (self, "2");
    }
    for (size_t i = 0; i < shown; i++) {
        const mw_event_t *ev = mw_state_recent (state, i);
        if (!ev)
            break;
        s_rule (self, "\xE2\x94\x9C", "\xE2\x94\xA4");
        mw_buf_puts (&self->line, s_emoji (ev));
        mw_buf_putc (&self->line, ' ');
        size_t start = self->line.len;
        s_text (self, ev->type, strlen (ev->type), 24);
        size_t w = s_width (self->line.data + start, self->line.len - start);
        while (w++ < 18)
            mw_buf_putc (&self->line, ' ');
        mw_buf_putc (&self->line, ' ');
        s_clock (&self->line, ev->ts / 1000);
        if (ev->str[MW_K_MINER].ptr) {
            mw_buf_puts (&self->line, "  ");
            size_t used = s_width (self->line.data, self->line.len);
            size_t inner = self->width - 4;
            s_text (self, ev->str[MW_K_MINER].ptr, ev->str[MW_K_MINER].len,
                    inner > used ? inner - used : 1);
        }
        s_row (self, s_colour (ev));
        s_event_details (self, ev);
    }
    s_rule (self, "\xE2\x94\x94", "\xE2\x94\x98");
}

static void
s_headline (s_status_t *self, const mw_state_t *state, const s_snap_info_t *info)
{
    mw_stats_t st;
    mw_state_stats (state, &st);
    mw_buf_t *o = &self->out;
    s_sgr (self, o, "1");
    mw_buf_puts (o, "minerwatch status");
    s_sgr (self, o, "0");
    mw_buf_puts (o, "  ");
    mw_cli_term_text (o, self->opts.endpoint, strlen (self->opts.endpoint), 60);
    mw_buf_puts (o, "  ");
    time_t secs = (time_t) (mw_state_now (state) / 1000);
    struct tm tm;
    gmtime_r (&secs, &tm);
    mw_buf_printf (o, "%04d-%02d-%02d ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    s_clock (o, mw_state_now (state));
    mw_buf_printf (o,
                   "Z\nid %" PRIu64 "  epoch %016" PRIx64 "  events %" PRIu64
                   "  miners %zu  validators %zu\n",
                   info->id, info->epoch, st.total_events, mw_state_miner_count (state),
                   mw_state_validator_count (state));
    mw_buf_printf (o, "tasks/min %.1f (1m) %.1f (5m) %.1f (15m)   success %.1f%%   p50 ",
                   st.tasks_per_min_1, st.tasks_per_min_5, st.tasks_per_min_15,
                   st.success_rate * 100.0);
    s_duration (o, st.p50);
    mw_buf_puts (o, "  p95 ");
    s_duration (o, st.p95);
    mw_buf_printf (o, "   cache hits %.1f%%\n", st.cache_hit_rate * 100.0);
    mw_buf_printf (o, "active %" PRIu64 "   errors ", st.active_tasks);
    if (st.errors)
        s_sgr (self, o, "31");
    mw_buf_printf (o, "%" PRIu64, st.errors);
    if (st.errors)
        s_sgr (self, o, "0");
    mw_buf_puts (o, "   lost events ");
    if (st.lost_events)
        s_sgr (self, o, "33");
    mw_buf_printf (o, "%" PRIu64, st.lost_events);
    if (st.lost_events)
        s_sgr (self, o, "0");
    mw_buf_printf (o,
                   "   stale %" PRIu64 "   evicted %" PRIu64 "   started %" PRIu64
                   "   succeeded %" PRIu64 "   failed %" PRIu64 "\n",
                   st.tasks_stale, st.tasks_evicted, st.tasks_started, st.tasks_succeeded,
                   st.tasks_failed);
}

static void
s_render_text (s_status_t *self, const mw_state_t *state, const s_snap_info_t *info)
{
    s_headline (self, state, info);
    s_active_panel (self, state);
    s_events_panel (self, state);
}

//  --------------------------------------------------------------------------
//  JSON

static void
s_json_key (mw_buf_t *o, bool *first, const char *key)
{
    if (!*first)
        mw_buf_putc (o, ',');
    *first = false;
    mw_json_string (o, key, strlen (key));
    mw_buf_putc (o, ':');
}

static void
s_json_str (mw_buf_t *o, bool *first, const char *key, const char *value)
{
    s_json_key (o, first, key);
    mw_json_string (o, value ? value : "", value ? strlen (value) : 0);
}

static void
s_json_u64 (mw_buf_t *o, bool *first, const char *key, uint64_t value)
{
    s_json_key (o, first, key);
    mw_buf_printf (o, "%" PRIu64, value);
}

static void
s_json_num (mw_buf_t *o, bool *first, const char *key, double value)
{
    s_json_key (o, first, key);
    mw_json_double (o, value);
}

static void
s_json_task (mw_buf_t *o, const mw_task_t *t, uint64_t now)
{
    bool first = true;
    mw_buf_putc (o, '{');
    s_json_str (o, &first, "task_id", t->task_id);
    s_json_str (o, &first, "miner", t->miner);
    s_json_str (o, &first, "prompt", t->prompt);
    s_json_str (o, &first, "url", t->url);
    s_json_str (o, &first, "validator_ip", t->validator_ip);
    s_json_str (o, &first, "validator_hotkey", t->validator_hotkey);
    s_json_u64 (o, &first, "start_time", t->start_ms);
    s_json_str (o, &first, "status", mw_task_status_name (t->status));
    s_json_str (o, &first, "current_step", t->current_step);
    s_json_u64 (o, &first, "actions_generated", t->actions);
    s_json_u64 (o, &first, "steps", t->steps);
    s_json_num (o, &first, "elapsed_s",
                now > t->start_ms ? (double) (now - t->start_ms) / 1000.0 : 0.0);
    s_json_key (o, &first, "started_late");
    mw_buf_puts (o, t->started_late ? "true" : "false");
    s_json_u64 (o, &first, "first_id", t->first_id);
    s_json_u64 (o, &first, "last_id", t->last_id);
    mw_buf_putc (o, '}');
}

static int
s_render_json (s_status_t *self, const mw_state_t *state, const s_snap_info_t *info)
{
    mw_stats_t st;
    mw_state_stats (state, &st);
    mw_buf_t *o = &self->out;
    uint64_t now = mw_state_now (state);
    bool first = true;
    mw_buf_putc (o, '{');
    s_json_str (o, &first, "endpoint", self->opts.endpoint);
    s_json_u64 (o, &first, "id", info->id);
    //  A string: 64 bits do not fit a JSON number that JavaScript or jq
    //  reads exactly.
    char epoch[24];
    snprintf (epoch, sizeof (epoch), "%016" PRIx64, info->epoch);
    s_json_str (o, &first, "epoch", epoch);
    s_json_u64 (o, &first, "now_ms", now);
    s_json_u64 (o, &first, "size", info->size);

    s_json_key (o, &first, "stats");
    bool f2 = true;
    mw_buf_putc (o, '{');
    s_json_u64 (o, &f2, "total_events", st.total_events);
    s_json_u64 (o, &f2, "active_tasks", st.active_tasks);
    s_json_u64 (o, &f2, "tasks_started", st.tasks_started);
    s_json_u64 (o, &f2, "tasks_succeeded", st.tasks_succeeded);
    s_json_u64 (o, &f2, "tasks_failed", st.tasks_failed);
    s_json_u64 (o, &f2, "tasks_stale", st.tasks_stale);
    s_json_u64 (o, &f2, "tasks_evicted", st.tasks_evicted);
    s_json_u64 (o, &f2, "started_late", st.started_late);
    s_json_u64 (o, &f2, "orphan_events", st.orphan_events);
    s_json_u64 (o, &f2, "lost_events", st.lost_events);
    s_json_u64 (o, &f2, "duplicate_events", st.duplicate_events);
    s_json_u64 (o, &f2, "publisher_restarts", st.publisher_restarts);
    s_json_u64 (o, &f2, "cache_hits", st.cache_hits);
    s_json_u64 (o, &f2, "errors", st.errors);
    s_json_num (o, &f2, "cache_hit_rate", st.cache_hit_rate);
    s_json_num (o, &f2, "success_rate", st.success_rate);
    s_json_num (o, &f2, "tasks_per_min_1", st.tasks_per_min_1);
    s_json_num (o, &f2, "tasks_per_min_5", st.tasks_per_min_5);
    s_json_num (o, &f2, "tasks_per_min_15", st.tasks_per_min_15);
    s_json_num (o, &f2, "p50_seconds", st.p50);
    s_json_num (o, &f2, "p95_seconds", st.p95);
    s_json_num (o, &f2, "p99_seconds", st.p99);
    s_json_key (o, &f2, "events_by_type");
    mw_buf_putc (o, '{');
    bool f3 = true;
    for (int k = 0; k < MW_TYPE_COUNT; k++)
        s_json_u64 (o, &f3, k == MW_TYPE_CUSTOM ? "custom" : mw_type_name ((mw_type_t) k),
                    st.events_by_type[k]);
    mw_buf_puts (o, "}}");

    size_t count = mw_state_active_count (state);
    size_t shown = self->opts.tasks && self->opts.tasks < count ? (size_t) self->opts.tasks : count;
    s_json_u64 (o, &first, "active_task_count", count);
    s_json_key (o, &first, "active_tasks");
    mw_buf_putc (o, '[');
    for (size_t i = 0; i < shown; i++) {
        if (i)
            mw_buf_putc (o, ',');
        s_json_task (o, mw_state_active (state, count - 1 - i), now);
    }
    mw_buf_putc (o, ']');

    count = mw_state_recent_count (state);
    shown = self->opts.events && self->opts.events < count ? (size_t) self->opts.events : count;
    s_json_key (o, &first, "recent_events");
    mw_buf_putc (o, '[');
    for (size_t i = 0; i < shown; i++) {
        if (i)
            mw_buf_putc (o, ',');
        if (mw_json_event (o, mw_state_recent (state, i)) != 0)
            return -1;
    }
    mw_buf_putc (o, ']');

    s_json_key (o, &first, "miners");
    mw_buf_putc (o, '[');
    for (size_t i = 0; i < mw_state_miner_count (state); i++) {
        const mw_miner_t *m = mw_state_miner (state, i);
        bool fm = true;
        mw_buf_puts (o, i ? ",{" : "{");
        s_json_str (o, &fm, "miner", m->miner);
        s_json_u64 (o, &fm, "events", m->events);
        s_json_u64 (o, &fm, "active", m->active);
        s_json_u64 (o, &fm, "completed", m->completed);
        s_json_u64 (o, &fm, "succeeded", m->succeeded);
        s_json_u64 (o, &fm, "failed", m->failed);
        s_json_u64 (o, &fm, "lost", m->lost);
        s_json_u64 (o, &fm, "duplicates", m->duplicates);
        s_json_u64 (o, &fm, "restarts", m->restarts);
        s_json_u64 (o, &fm, "last_seen_ms", m->last_seen_ms);
        mw_buf_putc (o, '}');
    }
    mw_buf_putc (o, ']');

    s_json_key (o, &first, "validators");
    mw_buf_putc (o, '[');
    for (size_t i = 0; i < mw_state_validator_count (state); i++) {
        const mw_validator_t *v = mw_state_validator (state, i);
        bool fv = true;
        mw_buf_puts (o, i ? ",{" : "{");
        s_json_str (o, &fv, "hotkey", v->hotkey);
        s_json_str (o, &fv, "ip", v->ip);
        s_json_u64 (o, &fv, "tasks", v->tasks);
        s_json_u64 (o, &fv, "successes", v->successes);
        s_json_u64 (o, &fv, "failures", v->failures);
        s_json_u64 (o, &fv, "connections", v->connections);
        s_json_num (o, &fv, "p95_seconds", mw_hist_quantile (&v->response, 0.95));
        s_json_num (o, &fv, "mean_score",
                    v->feedback_count ? v->feedback_sum / (double) v->feedback_count : 0.0);
        s_json_u64 (o, &fv, "last_seen_ms", v->last_seen_ms);
        mw_buf_putc (o, '}');
    }
    mw_buf_puts (o, "]}\n");
    return o->failed ? -1 : 0;
}

//  --------------------------------------------------------------------------
//  The command

static size_t
s_terminal_width (const s_opts_t *opts)
{
    size_t width = S_WIDTH_DEFAULT;
    struct winsize ws;
    if (opts->width)
        return (size_t) opts->width;
    if (isatty (STDOUT_FILENO) && ioctl (STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col)
        width = ws.ws_col;
    if (width > S_WIDTH_MAX)
        width = S_WIDTH_MAX;
    if (width < S_WIDTH_MIN)
        width = S_WIDTH_MIN;
    return width;
}

//  One fetch and one render into self->out. Return 0, or -1 with err.
static int
s_once (s_status_t *self, char *err, size_t err_size)
{
    s_snap_info_t info;
    mw_state_t *state = s_fetch (self, &info, err, err_size);
    if (!state)
        return -1;
    self->width = s_terminal_width (&self->opts);
    int rc = 0;
    if (self->opts.json)
        rc = s_render_json (self, state, &info);
    else
        s_render_text (self, state, &info);
    if (rc != 0 || self->out.failed) {
        snprintf (err, err_size, "out of memory while rendering");
        rc = -1;
    }
    mw_state_destroy (&state);
    return rc;
}

static int
s_run (int argc, char **argv)
{
    s_status_t self;
    memset (&self, 0, sizeof (self));
    int rc = s_parse (&self.opts, argc, argv);
    if (rc != 0)
        return rc < 0 ? MW_CLI_OK : rc;
    self.color = !self.opts.json && mw_cli_use_color (self.opts.color_mode, STDOUT_FILENO);
    bool tty = isatty (STDOUT_FILENO);
    mw_buf_init (&self.out);
    mw_buf_init (&self.line);
    mw_buf_init (&self.scratch);
    char err[512];
    rc = MW_CLI_OK;
    if (s_connect (&self, err, sizeof (err)) != 0) {
        fprintf (stderr, "minerwatch %s: %s\n", S_NAME, err);
        rc = MW_CLI_FAILED;
        goto done;
    }
    while (!mw_cli_interrupted) {
        double started = mw_cli_now ();
        mw_buf_reset (&self.out);
        if (s_once (&self, err, sizeof (err)) != 0) {
            if (mw_cli_interrupted)
                break;
            if (!self.opts.watch) {
                fprintf (stderr, "minerwatch %s: %s\n", S_NAME, err);
                rc = MW_CLI_FAILED;
                break;
            }
            //  Watching: say so and try again (a new socket drops any
            //  late reply to the old request).
            mw_buf_reset (&self.out);
            mw_buf_printf (&self.out, "minerwatch status: %s (retrying)\n", err);
            zsock_destroy (&self.dealer);
            if (s_connect (&self, err, sizeof (err)) != 0) {
                fprintf (stderr, "minerwatch %s: %s\n", S_NAME, err);
                rc = MW_CLI_FAILED;
                break;
            }
        }
        if (self.opts.watch && tty && !self.opts.json)
            fputs ("\033[H\033[2J", stdout); //  home and clear: only on a terminal
        if (mw_cli_write (stdout, &self.out) != 0 || fflush (stdout) != 0) {
            rc = MW_CLI_FAILED;
            break;
        }
        if (!self.opts.watch)
            break;
        mw_cli_sleep_until (started + 1.0);
    }
done:
    zsock_destroy (&self.dealer);
    mw_buf_release (&self.scratch);
    mw_buf_release (&self.line);
    mw_buf_release (&self.out);
    return rc;
}

const mw_cli_command_t mw_cmd_status = {
    "status", "show a broker's state: active tasks, recent events, headline numbers", s_run,
    s_help};
