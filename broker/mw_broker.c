/*  mw_broker.c - the broker daemon: ingest, update stream, snapshot
    service, persistence, CURVE.

    One actor thread owns everything: the sockets, the state, the snapshot
    transfers. Its loop is a plain zmq_poll with a computed timeout (in the
    manner of Redis' ae.c) rather than a zloop, because the snapshot
    service needs a timer that exists only while a transfer is paused, and
    the ingest wants to read a batch of messages per wake-up. The only other
    thread is a short-lived writer for the state file, so that an fsync on a
    slow disk never stalls ingest.

    Ids: every accepted event and every tick takes the next id
    (last_id + 1), so the id sequence has no holes and a mirror that applies
    updates in id order reproduces the state exactly (see mw_state.h).

    Time: the broker clock is CLOCK_REALTIME in ms, but never allowed to go
    back (a wall clock step back keeps `now` where it was until the clock
    catches up), because the state's rate windows assume time only grows.
*/
#include "mw_broker.h"
#include "mw_conf.h"
#include "mw_publisher.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

//  --------------------------------------------------------------------------
//  Small helpers: clocks, randomness, logging, CRC-32

static uint64_t
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

static int64_t
s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  A random nonzero 64-bit number (the epoch). Falls back to clocks and the
//  pid if getrandom() is unavailable: an epoch must differ from the last
//  one, it need not be secret.
static uint64_t
s_random64 (void)
{
    uint64_t x = 0;
    ssize_t rc;
    do
        rc = getrandom (&x, sizeof (x), GRND_NONBLOCK);
    while (rc < 0 && errno == EINTR);
    if (rc != (ssize_t) sizeof (x)) {
        struct timespec ts;
        clock_gettime (CLOCK_MONOTONIC, &ts);
        x = s_wall_ms () ^ ((uint64_t) ts.tv_nsec << 24) ^ ((uint64_t) getpid () << 44);
    }
    //  splitmix64 finalizer: spreads a weak fallback seed, harmless otherwise
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    return x ? x : 1;
}

//  One log line on stderr: "2024-05-01T14:32:15.123Z NAME L: text". Lines
//  are formatted first and written with one call, so that two threads do
//  not interleave within a line. Bytes that are not printable ASCII (they
//  may come from the network, in a decoder message) are shown as '?'.
static void s_vlog (const char *name, char level, const char *fmt, va_list args)
    __attribute__ ((format (printf, 3, 0)));

static void
s_vlog (const char *name, char level, const char *fmt, va_list args)
{
    char text[1024];
    vsnprintf (text, sizeof (text), fmt, args);
    for (char *p = text; *p; p++)
        if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7e)
            *p = '?';
    uint64_t now = s_wall_ms ();
    time_t secs = (time_t) (now / 1000);
    struct tm tm;
    gmtime_r (&secs, &tm);
    char line[1200];
    int len =
        snprintf (line, sizeof (line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %c: %s\n",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  (int) (now % 1000), name ? name : "minerwatch-broker", level, text);
    if (len > (int) sizeof (line) - 1)
        len = (int) sizeof (line) - 1;
    if (len > 0 && write (STDERR_FILENO, line, (size_t) len) < 0) {
        //  Nowhere left to report a failed log write.
    }
}

static void s_log (const char *name, char level, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static void
s_log (const char *name, char level, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    s_vlog (name, level, fmt, args);
    va_end (args);
}

//  snprintf for messages: a cut message is fine (and is not a warning).
static void s_fmt (char *buf, size_t size, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static void
s_fmt (char *buf, size_t size, const char *fmt, ...)
{
    if (!buf || !size)
        return;
    va_list args;
    va_start (args, fmt);
    vsnprintf (buf, size, fmt, args);
    va_end (args);
}

//  CRC-32 (IEEE 802.3, the one of zlib and PNG) over the state file. A
//  checksum, not a defence: it catches a torn or bit-rotted file.
static uint32_t s_crc_table[256];
static pthread_once_t s_crc_once = PTHREAD_ONCE_INIT;

static void
s_crc_init (void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        s_crc_table[i] = c;
    }
}

static uint32_t
s_crc32 (const uint8_t *data, size_t len)
{
    pthread_once (&s_crc_once, s_crc_init);
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        c = s_crc_table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void
s_put_le32 (uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static void
s_put_le64 (uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static uint32_t
s_get_le32 (const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t
s_get_le64 (const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

//  Write v as the shortest msgpack uint into out (>= 9 bytes); return its length.
static size_t
s_mp_uint (uint8_t *out, uint64_t v)
{
    if (v < 128) {
        out[0] = (uint8_t) v;
        return 1;
    }
    int bytes = v <= 0xFF ? 1 : v <= 0xFFFF ? 2 : v <= 0xFFFFFFFFu ? 4 : 8;
    out[0] = bytes == 1 ? 0xcc : bytes == 2 ? 0xcd : bytes == 4 ? 0xce : 0xcf;
    for (int i = 0; i < bytes; i++)
        out[1 + i] = (uint8_t) (v >> (8 * (bytes - 1 - i)));
    return (size_t) bytes + 1;
}

static void
s_pack_key (msgpack_packer *pk, const char *key)
{
    size_t len = strlen (key);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, key, len);
}

//  --------------------------------------------------------------------------
//  Rejection reasons

const char *
mw_broker_reject_name (int reason)
{
    if (reason == MW_BROKER_REJECT_FRAMES)
        return "frames";
    if (reason > 0 && reason < MW_ERR_COUNT)
        return mw_err_name (reason);
    return "unknown";
}

//  --------------------------------------------------------------------------
//  Configuration

void
mw_broker_config_default (mw_broker_config_t *cfg)
{
    assert (cfg);
    memset (cfg, 0, sizeof (*cfg));
    snprintf (cfg->ingest[0], sizeof (cfg->ingest[0]), "%s", MW_BROKER_INGEST_DEFAULT);
    cfg->ingest_count = 1;
    snprintf (cfg->publish, sizeof (cfg->publish), "%s", MW_BROKER_PUBLISH_DEFAULT);
    snprintf (cfg->snapshot, sizeof (cfg->snapshot), "%s", MW_BROKER_SNAPSHOT_DEFAULT);
    cfg->save_interval_s = MW_BROKER_SAVE_INTERVAL_DEFAULT;
    mw_state_config_default (&cfg->state);
    cfg->log_name = "minerwatch-broker";
}

//  Parse a decimal unsigned integer in [min, max]; nothing else allowed.
static int
s_parse_uint (const char *value, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!value || *value < '0' || *value > '9')
        return -1;
    uint64_t v = 0;
    for (const char *p = value; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        if (v > (UINT64_MAX - (uint64_t) (*p - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t) (*p - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
s_set_string (char *dst, size_t size, const char *key, const char *value, char *errbuf,
              size_t errbuf_size)
{
    if (strlen (value) >= size) {
        s_fmt (errbuf, errbuf_size, "--%s: value too long (at most %zu bytes)", key, size - 1);
        return -1;
    }
    snprintf (dst, size, "%s", value);
    return 0;
}

//  The bounds options: name, field offset, is it 64-bit seconds (a timeout)?
typedef struct {
    const char *name;
    size_t offset;
    bool seconds;
    const char *help;
} s_bound_opt_t;

#define S_BOUND(n, f, s, h)                                                                        \
    {                                                                                              \
        n, offsetof (mw_state_config_t, f), s, h                                                   \
    }
static const s_bound_opt_t s_bound_opts[] = {
    S_BOUND ("recent-events", recent_events, false, "recent events kept (ring)"),
    S_BOUND ("task-history", task_history, false, "finished tasks kept (ring)"),
    S_BOUND ("validator-activity", validator_activity, false, "validator interactions kept (ring)"),
    S_BOUND ("max-active-tasks", max_active_tasks, false,
             "active-task table cap; the oldest is evicted"),
    S_BOUND ("max-validators", max_validators, false, "validator aggregates kept"),
    S_BOUND ("max-miners", max_miners, false, "miner aggregates kept"),
    S_BOUND ("task-timeout", task_timeout_ms, true,
             "seconds of silence before a task without timeout_ms is stale"),
    S_BOUND ("timeout-grace", timeout_grace_ms, true, "seconds added to a task's own timeout_ms"),
};
#define S_BOUND_OPTS (sizeof (s_bound_opts) / sizeof (s_bound_opts[0]))

bool
mw_broker_config_known (const char *key)
{
    static const char *names[] = {"ingest",        "publish",      "snapshot",
                                  "state-file",    "curve-secret", "curve-clients",
                                  "save-interval", "verbose",      "quiet"};
    for (size_t i = 0; i < sizeof (names) / sizeof (names[0]); i++)
        if (strcmp (key, names[i]) == 0)
            return true;
    for (size_t i = 0; i < S_BOUND_OPTS; i++)
        if (strcmp (key, s_bound_opts[i].name) == 0)
            return true;
    return false;
}

int
mw_broker_config_set (mw_broker_config_t *cfg, const char *key, const char *value, char *errbuf,
                      size_t errbuf_size)
{
    assert (cfg);
    assert (key);
    char dummy[8];
    if (!errbuf) {
        errbuf = dummy;
        errbuf_size = sizeof (dummy);
    }
    bool is_bool = strcmp (key, "verbose") == 0 || strcmp (key, "quiet") == 0;
    if (!value && !is_bool) {
        s_fmt (errbuf, errbuf_size, "--%s needs a value", key);
        return -1;
    }
    if (strcmp (key, "ingest") == 0) {
        if (cfg->ingest_count == MW_BROKER_INGEST_MAX) {
            s_fmt (errbuf, errbuf_size, "--ingest: at most %d options (use a comma list)",
                   MW_BROKER_INGEST_MAX);
            return -1;
        }
        if (!*value) {
            s_fmt (errbuf, errbuf_size, "--ingest: empty endpoint (expected e.g. %s)",
                   MW_BROKER_INGEST_DEFAULT);
            return -1;
        }
        if (s_set_string (cfg->ingest[cfg->ingest_count], sizeof (cfg->ingest[0]), key, value,
                          errbuf, errbuf_size))
            return -1;
        cfg->ingest_count++;
        return 0;
    }
    if (strcmp (key, "publish") == 0)
        return s_set_string (cfg->publish, sizeof (cfg->publish), key, value, errbuf, errbuf_size);
    if (strcmp (key, "snapshot") == 0)
        return s_set_string (cfg->snapshot, sizeof (cfg->snapshot), key, value, errbuf,
                             errbuf_size);
    if (strcmp (key, "state-file") == 0)
        return s_set_string (cfg->state_file, sizeof (cfg->state_file), key, value, errbuf,
                             errbuf_size);
    if (strcmp (key, "curve-secret") == 0)
        return s_set_string (cfg->curve_secret, sizeof (cfg->curve_secret), key, value, errbuf,
                             errbuf_size);
    if (strcmp (key, "curve-clients") == 0)
        return s_set_string (cfg->curve_clients, sizeof (cfg->curve_clients), key, value, errbuf,
                             errbuf_size);
    if (strcmp (key, "save-interval") == 0) {
        uint64_t v;
        if (s_parse_uint (value, 0, 86400, &v)) {
            s_fmt (errbuf, errbuf_size,
                   "--save-interval: '%s' is not a number of seconds in 0..86400 (0 = save "
                   "only at shutdown)",
                   value);
            return -1;
        }
        cfg->save_interval_s = (uint32_t) v;
        return 0;
    }
    if (is_bool) {
        bool b;
        if (mw_conf_parse_bool (value, &b)) {
            s_fmt (errbuf, errbuf_size, "--%s: '%s' is not true or false", key, value);
            return -1;
        }
        if (strcmp (key, "verbose") == 0)
            cfg->verbose = b;
        else
            cfg->quiet = b;
        return 0;
    }
    for (size_t i = 0; i < S_BOUND_OPTS; i++) {
        const s_bound_opt_t *opt = &s_bound_opts[i];
        if (strcmp (key, opt->name) != 0)
            continue;
        uint64_t v;
        uint8_t *field = (uint8_t *) &cfg->state + opt->offset;
        if (opt->seconds) {
            if (s_parse_uint (value, 1, (uint64_t) 86400 * 365, &v) != 0) {
                s_fmt (errbuf, errbuf_size, "--%s: '%s' is not a number of seconds (1 .. one year)",
                       key, value);
                return -1;
            }
            uint64_t ms = v * 1000u;
            memcpy (field, &ms, sizeof (ms));
        }
        else {
            if (s_parse_uint (value, 1, 10000000, &v)) {
                s_fmt (errbuf, errbuf_size, "--%s: '%s' is not a count in 1..10000000", key, value);
                return -1;
            }
            uint32_t n = (uint32_t) v;
            memcpy (field, &n, sizeof (n));
        }
        return 0;
    }
    s_fmt (errbuf, errbuf_size, "unknown option '%s' (see --help)", key);
    return -1;
}

static char *
s_trim (char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t len = strlen (s);
    while (len &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n'))
        s[--len] = 0;
    return s;
}

//  The file's settings, one by one (mw_conf_read).
typedef struct {
    mw_broker_config_t *cfg;
    bool ingest_seen;
} s_load_t;

static int
s_load_one (void *arg, const char *key, const char *value, int line, char *errbuf,
            size_t errbuf_size)
{
    s_load_t *load = (s_load_t *) arg;
    if (strcmp (key, "ingest") == 0 && !load->ingest_seen) {
        //  The file's ingest list replaces the default one.
        load->cfg->ingest_count = 0;
        load->ingest_seen = true;
    }
    if (!mw_broker_config_known (key)) {
        char **names = mw_conf_names_from_usage (mw_broker_config_usage);
        const char *near = mw_conf_suggest (names, key);
        if (near)
            s_fmt (errbuf, errbuf_size, "unknown key '%s' (did you mean '%s'?)", key, near);
        else
            s_fmt (errbuf, errbuf_size, "unknown key '%s' (see minerwatch-broker --help)", key);
        mw_conf_names_free (&names);
        return -1;
    }
    return mw_broker_config_set (load->cfg, key, value, errbuf, errbuf_size);
}

int
mw_broker_config_load (mw_broker_config_t *cfg, const char *path, char *errbuf, size_t errbuf_size)
{
    assert (cfg);
    assert (path);
    s_load_t load = {cfg, false};
    return mw_conf_read (path, s_load_one, &load, NULL, errbuf, errbuf_size);
}

int
mw_broker_config_check (const mw_broker_config_t *cfg, char *errbuf, size_t errbuf_size)
{
    assert (cfg);
    if (cfg->ingest_count == 0) {
        s_fmt (errbuf, errbuf_size, "no --ingest endpoint (expected e.g. %s)",
               MW_BROKER_INGEST_DEFAULT);
        return -1;
    }
    if (!cfg->publish[0] || !cfg->snapshot[0]) {
        s_fmt (errbuf, errbuf_size, "--publish and --snapshot need an endpoint");
        return -1;
    }
    if (cfg->curve_clients[0] && !cfg->curve_secret[0]) {
        s_fmt (errbuf, errbuf_size,
               "--curve-clients needs --curve-secret (the broker's own key pair, made by "
               "`minerwatch keygen`)");
        return -1;
    }
    char err[256];
    if (mw_state_config_check (&cfg->state, err, sizeof (err))) {
        s_fmt (errbuf, errbuf_size, "bounds: %s", err);
        return -1;
    }
    return 0;
}

void
mw_broker_config_usage (FILE *out)
{
    mw_state_config_t d;
    mw_state_config_default (&d);
    fprintf (out,
             "Options (also accepted in a --config file as `key = value`, without the dashes;\n"
             "flags given on the command line override the file):\n"
             "  --ingest EP             where publishers reach the broker, repeatable; '@' binds\n"
             "                          (publishers connect), '>' connects to a publisher that\n"
             "                          binds (default %s)\n"
             "  --publish EP            update stream, PUB (default %s)\n"
             "  --snapshot EP           snapshot service, ROUTER (default %s)\n"
             "  --state-file PATH       save the state there and restore it at start\n"
             "  --save-interval S       seconds between saves, 0 = only at shutdown (default %d)\n"
             "  --curve-secret FILE     the broker's CURVE key pair (a zcert secret file, made\n"
             "                          by `minerwatch keygen`): every socket is a CURVE server\n"
             "  --curve-clients DIR     allowed client certificates (public zcert files);\n"
             "                          without it, any client that knows the broker's public\n"
             "                          key is let in\n"
             "  --config FILE           read options from FILE first\n"
             "  --verbose, --quiet      more or less logging\n"
             "  --help, --version\n"
             "Bounds of the state:\n",
             MW_BROKER_INGEST_DEFAULT, MW_BROKER_PUBLISH_DEFAULT, MW_BROKER_SNAPSHOT_DEFAULT,
             MW_BROKER_SAVE_INTERVAL_DEFAULT);
    for (size_t i = 0; i < S_BOUND_OPTS; i++) {
        const s_bound_opt_t *opt = &s_bound_opts[i];
        const uint8_t *field = (const uint8_t *) &d + opt->offset;
        uint64_t v;
        if (opt->seconds) {
            memcpy (&v, field, sizeof (v));
            v /= 1000u;
        }
        else {
            uint32_t n;
            memcpy (&n, field, sizeof (n));
            v = n;
        }
        char flag[64];
        snprintf (flag, sizeof (flag), "--%s %s", opt->name, opt->seconds ? "S" : "N");
        fprintf (out, "  %-24s%s (default %" PRIu64 ")\n", flag, opt->help, v);
    }
}

//  --------------------------------------------------------------------------
//  The state file
//
//  A 64-byte header, then the mw_state_save bytes. All integers little-endian.
//    0  magic "MWSTATE1"          32  saved_ms (broker clock)
//    8  format version (1)        40  payload length
//   12  flags (bit 0: clean)      48  payload CRC-32
//   16  epoch                     52  reserved (0)
//   24  last id                   56  header CRC-32 (bytes 0..55)
//                                 60  reserved (0)
//  "clean" means written at shutdown: the broker that wrote it issued no id
//  after it, so a restart may keep the epoch. A broker clears it (rewrites
//  the file) right after restoring, before it issues any id.

#define S_FILE_MAGIC   "MWSTATE1"
#define S_FILE_VERSION 1
#define S_FILE_HEADER  64
#define S_FILE_CLEAN   0x1u
#define S_FILE_MAX     ((uint64_t) 4 * 1024 * 1024 * 1024) //  refuse to read more

typedef struct {
    uint32_t flags;
    uint64_t epoch;
    uint64_t last_id;
    uint64_t saved_ms;
} s_file_info_t;

static void
s_file_header (uint8_t *hdr, const s_file_info_t *info, const uint8_t *data, size_t len)
{
    memset (hdr, 0, S_FILE_HEADER);
    memcpy (hdr, S_FILE_MAGIC, 8);
    s_put_le32 (hdr + 8, S_FILE_VERSION);
    s_put_le32 (hdr + 12, info->flags);
    s_put_le64 (hdr + 16, info->epoch);
    s_put_le64 (hdr + 24, info->last_id);
    s_put_le64 (hdr + 32, info->saved_ms);
    s_put_le64 (hdr + 40, (uint64_t) len);
    s_put_le32 (hdr + 48, s_crc32 (data, len));
    s_put_le32 (hdr + 56, s_crc32 (hdr, 56));
}

static int
s_write_all (int fd, const uint8_t *data, size_t len)
{
    while (len) {
        ssize_t n = write (fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        len -= (size_t) n;
    }
    return 0;
}

//  Write header + data to path atomically: a temporary file in the same
//  directory, fsync, rename over path, fsync the directory. A reader (or a
//  crash) sees the old file or the new one, never a mix. Return 0, or -1
//  with a message in err (the temporary file is removed).
static int
s_file_write (const char *path, const uint8_t *hdr, const uint8_t *data, size_t len, char *err,
              size_t err_size)
{
    char tmp[MW_BROKER_PATH_MAX + 16];
    snprintf (tmp, sizeof (tmp), "%s.tmp", path);
    const char *step = "open";
    int fd = open (tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        goto err;
    step = "write";
    if (s_write_all (fd, hdr, S_FILE_HEADER) || s_write_all (fd, data, len))
        goto err;
    step = "fsync";
    if (fsync (fd))
        goto err;
    step = "close";
    int rc = close (fd);
    fd = -1;
    if (rc)
        goto err;
    step = "rename";
    if (rename (tmp, path))
        goto err;
    //  The rename is durable once the directory is synced.
    char dir[MW_BROKER_PATH_MAX];
    snprintf (dir, sizeof (dir), "%s", path);
    int dfd = open (dirname (dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        int saved = 0;
        if (fsync (dfd))
            saved = errno;
        close (dfd);
        if (saved && saved != EINVAL) {
            errno = saved;
            step = "fsync directory";
            s_fmt (err, err_size, "cannot save state to %s: %s: %s", path, step, strerror (errno));
            return -1;
        }
    }
    return 0;
err:;
    int saved_errno = errno;
    if (fd >= 0)
        close (fd);
    unlink (tmp);
    s_fmt (err, err_size, "cannot save state to %s: %s %s: %s", path, step, tmp,
           strerror (saved_errno));
    return -1;
}

//  Read and check a state file. Return 1 and the state and info when good,
//  0 if there is no file, -1 if it cannot be read (err says why), -2 if it
//  is corrupt (err says how).
static int
s_file_read (const char *path, mw_state_t **state_p, s_file_info_t *info, char *err,
             size_t err_size)
{
    int fd = open (path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        s_fmt (err, err_size, "cannot read state file %s: %s", path, strerror (errno));
        return -1;
    }
    struct stat st;
    if (fstat (fd, &st) || !S_ISREG (st.st_mode)) {
        s_fmt (err, err_size, "cannot read state file %s: %s", path,
               S_ISREG (st.st_mode) ? strerror (errno) : "not a regular file");
        close (fd);
        return -1;
    }
    if ((uint64_t) st.st_size > S_FILE_MAX) {
        s_fmt (err, err_size, "state file %s is %jd bytes, more than any state", path,
               (intmax_t) st.st_size);
        close (fd);
        return -2;
    }
    size_t size = (size_t) st.st_size;
    uint8_t *buf = (uint8_t *) malloc (size ? size : 1);
    if (!buf) {
        s_fmt (err, err_size, "cannot read state file %s: out of memory (%zu bytes)", path, size);
        close (fd);
        return -1;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read (fd, buf + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    int saved_errno = errno;
    close (fd);
    int rc = -2;
    if (got < size) {
        s_fmt (err, err_size, "cannot read state file %s: %s", path, strerror (saved_errno));
        rc = -1;
        goto done;
    }
    if (size < S_FILE_HEADER || memcmp (buf, S_FILE_MAGIC, 8) != 0) {
        s_fmt (err, err_size, "%s is not a minerwatch state file (bad magic or too short)", path);
        goto done;
    }
    if (s_get_le32 (buf + 56) != s_crc32 (buf, 56)) {
        s_fmt (err, err_size, "%s: header checksum mismatch", path);
        goto done;
    }
    if (s_get_le32 (buf + 8) != S_FILE_VERSION) {
        s_fmt (err, err_size, "%s: state file format %u, this broker reads %d", path,
               s_get_le32 (buf + 8), S_FILE_VERSION);
        goto done;
    }
    uint64_t len = s_get_le64 (buf + 40);
    if (len != size - S_FILE_HEADER) {
        s_fmt (err, err_size, "%s: truncated (header says %" PRIu64 " bytes, file has %zu)", path,
               len, size - S_FILE_HEADER);
        goto done;
    }
    if (s_get_le32 (buf + 48) != s_crc32 (buf + S_FILE_HEADER, (size_t) len)) {
        s_fmt (err, err_size, "%s: payload checksum mismatch", path);
        goto done;
    }
    info->flags = s_get_le32 (buf + 12);
    info->epoch = s_get_le64 (buf + 16);
    info->last_id = s_get_le64 (buf + 24);
    info->saved_ms = s_get_le64 (buf + 32);
    char lerr[256];
    mw_state_t *state = mw_state_load (buf + S_FILE_HEADER, (size_t) len, lerr, sizeof (lerr));
    if (!state) {
        s_fmt (err, err_size, "%s: the state does not load: %s", path, lerr);
        goto done;
    }
    if (mw_state_last_id (state) != info->last_id || info->epoch == 0) {
        s_fmt (err, err_size, "%s: header (id %" PRIu64 ") and state (id %" PRIu64 ") differ", path,
               info->last_id, mw_state_last_id (state));
        mw_state_destroy (&state);
        goto done;
    }
    *state_p = state;
    rc = 1;
done:
    free (buf);
    return rc;
}

//  The background writer: one save at a time, on its own thread, so that
//  the actor goes on with ingest while the disk works. The actor hands it
//  the serialized state and takes the result back when `done` is set.
typedef struct {
    pthread_t thread;
    bool running;     //  a thread was started and not joined
    atomic_bool done; //  set by the thread as its last act
    char path[MW_BROKER_PATH_MAX];
    s_file_info_t info;
    uint8_t *data;
    size_t len;
    int rc;
    char err[512];
} s_saver_t;

static void *
s_saver_main (void *arg)
{
    s_saver_t *saver = (s_saver_t *) arg;
    uint8_t hdr[S_FILE_HEADER];
    s_file_header (hdr, &saver->info, saver->data, saver->len);
    saver->rc =
        s_file_write (saver->path, hdr, saver->data, saver->len, saver->err, sizeof (saver->err));
    atomic_store (&saver->done, true);
    return NULL;
}

//  --------------------------------------------------------------------------
//  The actor's structures

//  A serialized state shared by the transfers that asked for the same id.
typedef struct {
    uint8_t *data;
    size_t size;
    uint64_t id;
    uint64_t now_ms;
    uint32_t crc;
    uint32_t chunks;
    int refs;
} s_blob_t;

//  One snapshot transfer: a cursor into a blob for one ROUTER peer.
typedef struct {
    uint8_t identity[256];
    size_t identity_len;
    s_blob_t *blob;
    size_t offset;
    uint32_t seq;
    int64_t retry_at; //  monotonic ms; paused until then
    int backoff_ms;   //  next pause if the queue is still full
    int64_t progress_at;
} s_xfer_t;

//  A socket monitor: TCP connections and handshake failures.
typedef struct {
    zsock_t *pair;
    void *socket; //  the monitored socket (raw handle)
} s_monitor_t;

#define S_ROLES 3
enum { S_INGEST = 0, S_PUBLISH = 1, S_SNAPSHOT = 2 };
static const char *s_role_names[S_ROLES] = {"ingest", "publish", "snapshot"};

//  Per-reason rejection log limiter (see MW_BROKER_REJECT_LOG_*).
typedef struct {
    uint64_t logged;
    uint64_t suppressed;
    int64_t next_ms;
} s_reject_log_t;

typedef struct {
    mw_broker_config_t cfg;
    const char *name;
    zsock_t *pipe;
    zsock_t *socks[S_ROLES];
    void *handles[S_ROLES];
    char endpoints[S_ROLES][MW_BROKER_INGEST_MAX * MW_BROKER_ENDPOINT_MAX];
    s_monitor_t monitors[S_ROLES];
    zactor_t *auth;
    zcert_t *cert;
    int lock_fd;

    mw_state_t *state;
    uint64_t epoch;
    uint64_t last_id;
    uint64_t now_ms;    //  broker clock, never decreasing
    uint64_t batch_now; //  broker clock at the start of the ingest batch
    mw_event_t ev;      //  the decoded event, storage reused
    zmq_msg_t topic, body, extra;
    uint8_t *out; //  encode buffer, MW_MAX_BODY

    mw_broker_stats_t stats;
    s_reject_log_t reject_log[MW_BROKER_REJECT_COUNT];
    uint64_t apply_logged;

    s_xfer_t xfers[MW_BROKER_SNAP_CLIENTS_MAX];
    size_t xfer_count;
    s_blob_t *blob_latest; //  the newest blob, while some transfer holds it

    s_saver_t saver;
    bool save_failing;     //  the last save failed
    int64_t save_log_next; //  when a failing save may be logged again
    int64_t next_tick;
    int64_t next_save;
    bool terminated;
} s_broker_t;

#define S_INFO(self, ...)                                                                          \
    do {                                                                                           \
        if (!(self)->cfg.quiet)                                                                    \
            s_log ((self)->name, 'I', __VA_ARGS__);                                                \
    } while (0)
#define S_WARN(self, ...)  s_log ((self)->name, 'W', __VA_ARGS__)
#define S_ERROR(self, ...) s_log ((self)->name, 'E', __VA_ARGS__)

static uint64_t
s_now (s_broker_t *self)
{
    uint64_t wall = s_wall_ms ();
    if (wall > self->now_ms)
        self->now_ms = wall;
    return self->now_ms;
}

//  --------------------------------------------------------------------------
//  Persistence (actor side)

//  Count a save's result. A failure is logged when it starts, then once a
//  minute while it lasts (a full disk would otherwise log every few
//  seconds), and the recovery is logged too.
static void
s_save_result (s_broker_t *self, int rc, const char *err, size_t len, uint64_t saved_ms)
{
    int64_t now = s_mono_ms ();
    if (rc == 0) {
        if (self->save_failing)
            S_INFO (self, "state file saves work again (%s)", self->cfg.state_file);
        self->save_failing = false;
        self->stats.saves++;
        self->stats.last_save_ms = saved_ms;
        self->stats.last_save_bytes = len + S_FILE_HEADER;
        return;
    }
    self->stats.save_failures++;
    if (!self->save_failing || now >= self->save_log_next) {
        S_ERROR (self,
                 "%s (failure %" PRIu64 "; the broker keeps running, the file keeps its "
                 "previous content)",
                 err, self->stats.save_failures);
        self->save_log_next = now + MW_BROKER_REJECT_LOG_EVERY_MS;
    }
    self->save_failing = true;
}

//  Wait for a background save to end and take its result.
static void
s_saver_join (s_broker_t *self)
{
    s_saver_t *saver = &self->saver;
    if (!saver->running)
        return;
    pthread_join (saver->thread, NULL);
    saver->running = false;
    s_save_result (self, saver->rc, saver->err, saver->len, saver->info.saved_ms);
    free (saver->data);
    saver->data = NULL;
}

//  Take the result of a finished background save, if any; never waits.
static void
s_saver_poll (s_broker_t *self)
{
    if (self->saver.running && atomic_load (&self->saver.done))
        s_saver_join (self);
}

//  Save the state file. sync: write here and return the result; else hand
//  the bytes to the writer thread (skipped, and counted, if the previous
//  save is still running). clean: this is the shutdown save.
static int
s_save (s_broker_t *self, bool sync, bool clean)
{
    if (!self->cfg.state_file[0])
        return -1;
    if (self->saver.running) {
        if (!sync && !atomic_load (&self->saver.done)) {
            self->stats.save_skipped++;
            return 0;
        }
        s_saver_join (self);
    }
    uint8_t *data = NULL;
    size_t len = 0;
    if (mw_state_save (self->state, &data, &len)) {
        s_save_result (self, -1, "cannot serialize the state: out of memory", 0, 0);
        return -1;
    }
    s_file_info_t info = {clean ? S_FILE_CLEAN : 0, self->epoch, self->last_id, self->now_ms};
    if (!sync) {
        s_saver_t *saver = &self->saver;
        snprintf (saver->path, sizeof (saver->path), "%s", self->cfg.state_file);
        saver->info = info;
        saver->data = data;
        saver->len = len;
        saver->rc = -1;
        saver->err[0] = 0;
        atomic_store (&saver->done, false);
        if (pthread_create (&saver->thread, NULL, s_saver_main, saver) == 0) {
            saver->running = true;
            return 0;
        }
        saver->data = NULL; //  no thread: write it here instead
    }
    uint8_t hdr[S_FILE_HEADER];
    s_file_header (hdr, &info, data, len);
    char err[512];
    int rc = s_file_write (self->cfg.state_file, hdr, data, len, err, sizeof (err));
    s_save_result (self, rc, err, len, info.saved_ms);
    free (data);
    return rc;
}

//  Take the lock of the state file (PATH.lock, flock), so that two brokers
//  never write the same file. Return 0, or -1 with a message.
static int
s_lock (s_broker_t *self, char *errbuf, size_t errbuf_size)
{
    char lock[MW_BROKER_PATH_MAX + 8];
    snprintf (lock, sizeof (lock), "%s.lock", self->cfg.state_file);
    self->lock_fd = open (lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (self->lock_fd < 0) {
        s_fmt (errbuf, errbuf_size,
               "cannot create %s: %s (is the directory of --state-file there and "
               "writable?)",
               lock, strerror (errno));
        return -1;
    }
    if (flock (self->lock_fd, LOCK_EX | LOCK_NB)) {
        s_fmt (errbuf, errbuf_size,
               "another broker uses the state file %s (%s is locked); give each broker its "
               "own --state-file",
               self->cfg.state_file, lock);
        close (self->lock_fd);
        self->lock_fd = -1;
        return -1;
    }
    return 0;
}

static bool
s_config_equal (const mw_state_config_t *a, const mw_state_config_t *b)
{
    return a->recent_events == b->recent_events && a->task_history == b->task_history &&
           a->validator_activity == b->validator_activity &&
           a->max_active_tasks == b->max_active_tasks && a->max_validators == b->max_validators &&
           a->max_miners == b->max_miners && a->task_timeout_ms == b->task_timeout_ms &&
           a->timeout_grace_ms == b->timeout_grace_ms;
}

//  Restore the state file, or start empty. Return 0, or -1 (errbuf) if the
//  file exists but cannot be used and cannot be moved aside.
static int
s_restore (s_broker_t *self, char *errbuf, size_t errbuf_size)
{
    const char *path = self->cfg.state_file;
    mw_state_t *state = NULL;
    s_file_info_t info;
    char err[512];
    int rc = path[0] ? s_file_read (path, &state, &info, err, sizeof (err)) : 0;
    if (rc == -1) {
        s_fmt (errbuf, errbuf_size, "%s", err);
        return -1;
    }
    if (rc == -2) {
        char aside[MW_BROKER_PATH_MAX + 64];
        snprintf (aside, sizeof (aside), "%s.corrupt-%" PRIu64, path, s_wall_ms () / 1000);
        if (rename (path, aside)) {
            s_fmt (errbuf, errbuf_size,
                   "%s; and it cannot be moved aside to %s: %s. Move or delete it, then "
                   "start again",
                   err, aside, strerror (errno));
            return -1;
        }
        S_ERROR (self,
                 "corrupt state file: %s. Moved it aside to %s; starting with an empty "
                 "state and a new epoch",
                 err, aside);
    }
    if (rc == 1) {
        const mw_state_config_t *have = mw_state_config (state);
        if (!s_config_equal (have, &self->cfg.state))
            S_WARN (self,
                    "%s was saved with other bounds (recent-events %u, task-history %u, "
                    "validator-activity %u, max-active-tasks %u); the restored state keeps "
                    "them. To apply the configured bounds, move the state file away (the "
                    "state then starts empty)",
                    path, have->recent_events, have->task_history, have->validator_activity,
                    have->max_active_tasks);
        self->state = state;
        self->last_id = info.last_id;
        if (mw_state_now (state) > self->now_ms)
            self->now_ms = mw_state_now (state);
        self->stats.restored = true;
        if (info.flags & S_FILE_CLEAN) {
            self->epoch = info.epoch;
            S_INFO (self, "restored %s: id %" PRIu64 ", epoch %016" PRIx64 " (kept)", path,
                    info.last_id, info.epoch);
        }
        else {
            //  The broker that wrote this file may have issued ids after it
            //  (it did not stop cleanly): reusing them under the same epoch
            //  would let a mirror mix two histories. A new epoch makes every
            //  mirror and browser resynchronize.
            self->epoch = s_random64 ();
            S_WARN (self,
                    "restored %s: id %" PRIu64 ", but the broker that wrote it did not stop "
                    "cleanly, so ids after id %" PRIu64 " may have been seen by readers; "
                    "starting a new epoch %016" PRIx64 " (was %016" PRIx64 ") so that they "
                    "resynchronize",
                    path, info.last_id, info.last_id, self->epoch, info.epoch);
        }
        return 0;
    }
    self->state = mw_state_new (&self->cfg.state);
    if (!self->state) {
        s_fmt (errbuf, errbuf_size, "cannot create the state: out of memory");
        return -1;
    }
    self->epoch = s_random64 ();
    self->last_id = 0;
    if (rc == 0 && path[0])
        S_INFO (self, "no state file at %s yet: starting empty, epoch %016" PRIx64, path,
                self->epoch);
    return 0;
}

//  --------------------------------------------------------------------------
//  CURVE

//  Check the clients directory the way zauth's certificate store will read
//  it (every regular file not ending in "_secret", recursively): it must
//  exist, and no public key may appear twice, because czmq 4.2's store
//  asserts (aborts the process) on a duplicate key. Return the number of
//  certificates, or -1 with a message.
static int
s_curve_check_clients (const char *location, char *errbuf, size_t errbuf_size)
{
    struct stat st;
    if (stat (location, &st) || !S_ISDIR (st.st_mode)) {
        s_fmt (errbuf, errbuf_size,
               "--curve-clients %s: not a directory (%s); put the clients' public "
               "certificates (made by `minerwatch keygen`) there",
               location, errno ? strerror (errno) : "a file");
        return -1;
    }
    zdir_t *dir = zdir_new (location, NULL);
    if (!dir)
        return 0;
    zhash_t *seen = zhash_new ();
    zfile_t **files = zdir_flatten (dir);
    int count = 0;
    int rc = 0;
    for (size_t i = 0; files && files[i]; i++) {
        const char *name = zfile_filename (files[i], NULL);
        size_t len = strlen (name);
        if (!zfile_is_regular (files[i]) || (len >= 7 && strcmp (name + len - 7, "_secret") == 0))
            continue;
        zcert_t *cert = zcert_load (name);
        if (!cert)
            continue;
        const char *key = zcert_public_txt (cert);
        const char *other = (const char *) zhash_lookup (seen, key);
        if (other) {
            s_fmt (errbuf, errbuf_size,
                   "--curve-clients: %s and %s hold the same public key; czmq's certificate "
                   "store would abort on it. Remove one",
                   other, name);
            zcert_destroy (&cert);
            rc = -1;
            break;
        }
        zhash_insert (seen, key, (void *) name);
        count++;
        zcert_destroy (&cert);
    }
    zdir_flatten_free (&files);
    zhash_destroy (&seen);
    zdir_destroy (&dir);
    return rc ? -1 : count;
}

static int
s_curve_start (s_broker_t *self, char *errbuf, size_t errbuf_size)
{
    const char *path = self->cfg.curve_secret;
    if (access (path, R_OK)) {
        s_fmt (errbuf, errbuf_size,
               "--curve-secret %s: %s (make a key pair with `minerwatch keygen --out %s`)", path,
               strerror (errno), path);
        return -1;
    }
    self->cert = zcert_load (path);
    static const uint8_t zero[32] = {0};
    if (!self->cert || memcmp (zcert_secret_key (self->cert), zero, 32) == 0) {
        s_fmt (errbuf, errbuf_size,
               "--curve-secret %s: not a zcert secret certificate (it needs a "
               "curve/secret-key; give the file that `minerwatch keygen` wrote with the "
               "_secret suffix, or its base name)",
               path);
        return -1;
    }
    const char *location = CURVE_ALLOW_ANY;
    if (self->cfg.curve_clients[0]) {
        int count = s_curve_check_clients (self->cfg.curve_clients, errbuf, errbuf_size);
        if (count < 0)
            return -1;
        if (count == 0)
            S_WARN (self,
                    "no client certificate in %s yet: every client is refused until one is "
                    "added (the directory is re-read when it changes)",
                    self->cfg.curve_clients);
        location = self->cfg.curve_clients;
    }
    self->auth = zactor_new (zauth, NULL);
    if (!self->auth) {
        s_fmt (errbuf, errbuf_size, "cannot start the CURVE authenticator (zauth)");
        return -1;
    }
    if (self->cfg.verbose) {
        zstr_send (self->auth, "VERBOSE");
        zsock_wait (self->auth);
    }
    zstr_sendx (self->auth, "CURVE", location, NULL);
    zsock_wait (self->auth);
    self->stats.curve = true;
    S_INFO (self, "CURVE on: server key %s, clients %s", zcert_public_txt (self->cert),
            self->cfg.curve_clients[0] ? self->cfg.curve_clients
                                       : "any (no --curve-clients directory)");
    return 0;
}

//  --------------------------------------------------------------------------
//  Sockets

static int
s_monitor_start (s_broker_t *self, int role)
{
    //  A name never used before in this process: a closed socket's inproc
    //  endpoint is released only when libzmq's reaper gets to it, so a
    //  broker made at the address of one just destroyed must not reuse it.
    static atomic_uint_fast64_t serial;
    char ep[128];
    snprintf (ep, sizeof (ep), "inproc://mw-broker-monitor-%" PRIuFAST64 "-%s",
              atomic_fetch_add (&serial, 1), s_role_names[role]);
    void *handle = self->handles[role];
    int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor (handle, ep, events))
        return -1;
    zsock_t *pair = zsock_new (ZMQ_PAIR);
    if (!pair || zsock_connect (pair, "%s", ep)) {
        zsock_destroy (&pair);
        zmq_socket_monitor (handle, NULL, 0);
        return -1;
    }
    self->monitors[role].pair = pair;
    self->monitors[role].socket = handle;
    return 0;
}

static void
s_monitor_stop (s_monitor_t *monitor)
{
    if (monitor->pair) {
        zmq_socket_monitor (monitor->socket, NULL, 0);
        zsock_destroy (&monitor->pair);
    }
}

//  Read the pending events of a monitor into the counters.
static void
s_monitor_read (s_broker_t *self, s_monitor_t *monitor)
{
    void *pair = zsock_resolve (monitor->pair);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    while (zmq_msg_recv (&msg, pair, ZMQ_DONTWAIT) >= 0) {
        uint16_t event = 0;
        if (zmq_msg_size (&msg) >= 6)
            memcpy (&event, zmq_msg_data (&msg), sizeof (event));
        while (zmq_msg_more (&msg) && zmq_msg_recv (&msg, pair, ZMQ_DONTWAIT) >= 0) {
            //  the endpoint frame: not needed
        }
        if (event & (ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED))
            self->stats.connections++;
        else if (event & ZMQ_EVENT_DISCONNECTED) {
            if (self->stats.connections)
                self->stats.connections--;
            self->stats.disconnects++;
        }
        else if (event & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                          ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH))
            self->stats.auth_failures++;
    }
    zmq_msg_close (&msg);
}

//  Bind or connect a socket to a comma list of endpoints, recording what it
//  ended up with (the port of a "tcp://host:*" bind). Return 0, or -1.
static int
s_attach (s_broker_t *self, int role, const char *list, char *errbuf, size_t errbuf_size)
{
    char copy[MW_BROKER_ENDPOINT_MAX];
    snprintf (copy, sizeof (copy), "%s", list);
    char *save = NULL;
    char *out = self->endpoints[role];
    size_t out_size = sizeof (self->endpoints[role]);
    for (char *ep = strtok_r (copy, ",", &save); ep; ep = strtok_r (NULL, ",", &save)) {
        ep = s_trim (ep);
        if (!*ep)
            continue;
        bool bind = *ep != '>';
        const char *addr = (*ep == '@' || *ep == '>') ? ep + 1 : ep;
        char actual[MW_BROKER_ENDPOINT_MAX + 2];
        if (bind) {
            if (zsock_bind (self->socks[role], "%s", addr) < 0) {
                s_fmt (errbuf, errbuf_size,
                       "cannot bind the %s socket to %s: %s (another broker running? use "
                       "--%s to pick another endpoint)",
                       s_role_names[role], addr, zmq_strerror (zmq_errno ()), s_role_names[role]);
                return -1;
            }
            //  libzmq's last endpoint has the port a "tcp://host:0" (or czmq's
            //  ":*") bind got; czmq's own record keeps ":0" as given.
            char *last = zsock_last_endpoint (self->socks[role]);
            snprintf (actual, sizeof (actual), "@%s", last && *last ? last : addr);
            free (last);
        }
        else {
            if (zsock_connect (self->socks[role], "%s", addr)) {
                s_fmt (errbuf, errbuf_size, "cannot connect the %s socket to %s: %s",
                       s_role_names[role], addr, zmq_strerror (zmq_errno ()));
                return -1;
            }
            snprintf (actual, sizeof (actual), ">%s", addr);
        }
        size_t used = strlen (out);
        snprintf (out + used, out_size - used, "%s%s", used ? "," : "", actual);
    }
    return 0;
}

//  Unbind what s_attach bound, now: closing a socket releases its endpoints
//  only later, in libzmq's reaper, and a broker started again at once on
//  the same inproc:// or tcp:// endpoints must find them free.
static void
s_detach (s_broker_t *self, int role)
{
    if (!self->socks[role])
        return;
    char copy[sizeof (self->endpoints[role])];
    snprintf (copy, sizeof (copy), "%s", self->endpoints[role]);
    char *save = NULL;
    for (char *ep = strtok_r (copy, ",", &save); ep; ep = strtok_r (NULL, ",", &save))
        if (*ep == '@')
            zsock_unbind (self->socks[role], "%s", ep + 1);
}

static int
s_sockets_start (s_broker_t *self, char *errbuf, size_t errbuf_size)
{
    static const int types[S_ROLES] = {ZMQ_SUB, ZMQ_PUB, ZMQ_ROUTER};
    for (int role = 0; role < S_ROLES; role++) {
        self->socks[role] = zsock_new (types[role]);
        if (!self->socks[role]) {
            s_fmt (errbuf, errbuf_size, "cannot create the %s socket", s_role_names[role]);
            return -1;
        }
        self->handles[role] = zsock_resolve (self->socks[role]);
        zsock_t *sock = self->socks[role];
        zsock_set_linger (sock, role == S_PUBLISH ? 200 : 0);
        if (self->cert) {
            zcert_apply (self->cert, sock);
            zsock_set_curve_server (sock, 1);
        }
        if (s_monitor_start (self, role))
            S_WARN (self, "cannot monitor the %s socket: connection counters stay at 0",
                    s_role_names[role]);
    }
    zsock_t *ingest = self->socks[S_INGEST];
    zsock_set_rcvhwm (ingest, MW_BROKER_INGEST_HWM);
    zsock_set_maxmsgsize (ingest, MW_BROKER_INGEST_MAXMSG);
    zsock_set_subscribe (ingest, "");
    zsock_set_sndhwm (self->socks[S_PUBLISH], MW_BROKER_PUBLISH_HWM);
    zsock_t *router = self->socks[S_SNAPSHOT];
    zsock_set_router_mandatory (router, 1);
    zsock_set_sndhwm (router, MW_BROKER_SNAP_HWM);
    zsock_set_rcvhwm (router, 1000);
    zsock_set_maxmsgsize (router, 4096); //  requests are tiny

    for (size_t i = 0; i < self->cfg.ingest_count; i++)
        if (s_attach (self, S_INGEST, self->cfg.ingest[i], errbuf, errbuf_size))
            return -1;
    if (s_attach (self, S_PUBLISH, self->cfg.publish, errbuf, errbuf_size) ||
        s_attach (self, S_SNAPSHOT, self->cfg.snapshot, errbuf, errbuf_size))
        return -1;
    for (int role = 0; role < S_ROLES; role++)
        if (!self->endpoints[role][0]) {
            s_fmt (errbuf, errbuf_size, "--%s: no endpoint in '%s'", s_role_names[role],
                   role == S_INGEST    ? self->cfg.ingest[0]
                   : role == S_PUBLISH ? self->cfg.publish
                                       : self->cfg.snapshot);
            return -1;
        }
    return 0;
}

//  --------------------------------------------------------------------------
//  Ingest

//  Count a rejection and log it, in full for the first few of each reason,
//  then as one summary line per reason and minute.
static void
s_reject (s_broker_t *self, int reason, const char *what, zmq_msg_t *from)
{
    if (reason <= 0 || reason >= MW_BROKER_REJECT_COUNT)
        reason = MW_ERR_MALFORMED;
    self->stats.rejected++;
    self->stats.rejected_by[reason]++;
    s_reject_log_t *log = &self->reject_log[reason];
    const char *peer = from ? zmq_msg_gets (from, "Peer-Address") : NULL;
    if (log->logged < MW_BROKER_REJECT_LOG_FIRST) {
        log->logged++;
        S_WARN (self, "rejected a message (%s) from %s: %s%s", mw_broker_reject_name (reason),
                peer ? peer : "a publisher", what,
                log->logged == MW_BROKER_REJECT_LOG_FIRST
                    ? " (further rejections of this kind: one summary line a minute)"
                    : "");
        log->next_ms = s_mono_ms () + MW_BROKER_REJECT_LOG_EVERY_MS;
        return;
    }
    log->suppressed++;
    int64_t now = s_mono_ms ();
    if (now >= log->next_ms) {
        S_WARN (self,
                "rejected %" PRIu64 " more messages (%s) since the last report; latest "
                "from %s: %s",
                log->suppressed, mw_broker_reject_name (reason), peer ? peer : "a publisher", what);
        log->suppressed = 0;
        log->next_ms = now + MW_BROKER_REJECT_LOG_EVERY_MS;
    }
}

//  The size of the update that s_splice would write for body (size bytes,
//  a map the decoder accepted), or 0 if its map header is not one we read.
static size_t
s_splice_size (const uint8_t *body, size_t size, uint64_t id, uint64_t now, uint32_t *count_p,
               size_t *hdr_p)
{
    uint8_t num[9];
    uint32_t count;
    size_t hdr;
    if (size >= 1 && (body[0] & 0xf0) == 0x80) {
        count = body[0] & 0x0f;
        hdr = 1;
    }
    else if (size >= 3 && body[0] == 0xde) {
        count = (uint32_t) body[1] << 8 | body[2];
        hdr = 3;
    }
    else if (size >= 5 && body[0] == 0xdf) {
        count =
            (uint32_t) body[1] << 24 | (uint32_t) body[2] << 16 | (uint32_t) body[3] << 8 | body[4];
        hdr = 5;
    }
    else
        return 0;
    if (count > UINT32_MAX - 2)
        return 0;
    uint32_t ncount = count + 2;
    size_t nhdr = ncount <= 15 ? 1 : ncount <= 0xFFFF ? 3 : 5;
    *count_p = ncount;
    *hdr_p = hdr;
    //  "id" is a fixstr of 2, "broker_ts" a fixstr of 9.
    return nhdr + (size - hdr) + 3 + s_mp_uint (num, id) + 10 + s_mp_uint (num, now);
}

//  Write the update: body's map with two more pairs, "id" and "broker_ts"
//  (total bytes, from s_splice_size).
static void
s_splice (uint8_t *out, size_t total, const uint8_t *body, size_t size, uint32_t ncount, size_t hdr,
          uint64_t id, uint64_t now)
{
    uint8_t *p = out;
    if (ncount <= 15)
        *p++ = (uint8_t) (0x80 | ncount);
    else if (ncount <= 0xFFFF) {
        *p++ = 0xde;
        *p++ = (uint8_t) (ncount >> 8);
        *p++ = (uint8_t) ncount;
    }
    else {
        *p++ = 0xdf;
        for (int i = 3; i >= 0; i--)
            *p++ = (uint8_t) (ncount >> (8 * i));
    }
    memcpy (p, body + hdr, size - hdr);
    p += size - hdr;
    memcpy (p, "\xa2id", 3);
    p += 3;
    p += s_mp_uint (p, id);
    memcpy (p,
            "\xa9"
            "broker_ts",
            10);
    p += 10;
    size_t last = s_mp_uint (p, now);
    assert ((size_t) (p + last - out) == total);
    (void) last;
    (void) total;
}

//  Accept one message: decode it, give it the next id and the broker time,
//  fold it into the state, publish the update.
//
//  The update is the event's map with `id` and `broker_ts` added. For the
//  usual body, one the decoder took as it was (no string cut to a limit,
//  no `id` or `broker_ts` of its own), the two pairs are appended to the
//  received bytes (s_splice): that decodes to exactly the event a full
//  re-encode would give, at a fraction of the cost (docs/performance.md).
//  Any other body is re-encoded with mw_event_encode.
static void
s_accept (s_broker_t *self)
{
    char err[256];
    const uint8_t *body = (const uint8_t *) zmq_msg_data (&self->body);
    size_t body_size = zmq_msg_size (&self->body);
    int rc = mw_event_decode (&self->ev, zmq_msg_data (&self->topic), zmq_msg_size (&self->topic),
                              body, body_size, err, sizeof (err));
    if (rc != MW_OK) {
        s_reject (self, rc, err, &self->topic);
        return;
    }
    uint64_t now = self->batch_now;
    mw_event_t *ev = &self->ev;
    uint64_t id = self->last_id + 1;
    uint32_t ncount = 0;
    size_t hdr = 0, len = 0;
    bool splice = !(ev->has & (MW_HAS_ID | MW_HAS_BROKER_TS)) && ev->truncated == 0;
    if (splice) {
        len = s_splice_size (body, body_size, id, now, &ncount, &hdr);
        splice = len > 0 && len <= MW_MAX_BODY;
    }
    ev->id = id;
    ev->broker_ts = now;
    ev->has |= MW_HAS_ID | MW_HAS_BROKER_TS;
    if (!splice) {
        rc = mw_event_encode (ev, self->out, MW_MAX_BODY, &len, NULL);
        if (rc != MW_OK) {
            //  Accepted by the decoder but over the limit once the id and
            //  broker_ts are in: a body within a few bytes of the limit.
            s_fmt (err, sizeof (err), "the event with id and broker_ts added is over %d bytes",
                   MW_MAX_BODY);
            s_reject (self, rc, err, &self->topic);
            return;
        }
    }
    self->last_id = id;
    self->stats.accepted++;
    if (mw_state_apply (self->state, ev, now)) {
        self->stats.apply_failed++;
        if (self->apply_logged++ < MW_BROKER_REJECT_LOG_FIRST)
            S_ERROR (self, "the state could not fold event %" PRIu64 " (out of memory?)", id);
    }
    //  PUB never blocks: a subscriber at its high-water mark misses the
    //  update, sees a gap in the ids and resynchronizes. The topic frame
    //  (equal to the type: the decoder checked) is passed on as received.
    void *pub = self->handles[S_PUBLISH];
    if (zmq_msg_send (&self->topic, pub, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        zmq_send (pub, ev->type, strlen (ev->type), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (splice) {
        zmq_msg_t msg;
        if (zmq_msg_init_size (&msg, len) == 0) {
            s_splice ((uint8_t *) zmq_msg_data (&msg), len, body, body_size, ncount, hdr, id, now);
            if (zmq_msg_send (&msg, pub, ZMQ_DONTWAIT) < 0)
                zmq_msg_close (&msg);
            return;
        }
        //  No memory for the message: the copy path below may still work.
        if (mw_event_encode (ev, self->out, MW_MAX_BODY, &len, NULL) != MW_OK)
            len = 0;
    }
    zmq_send (pub, self->out, len, ZMQ_DONTWAIT);
}

//  Read up to a batch of messages: exactly two frames each, else rejected.
static void
s_ingest (s_broker_t *self)
{
    void *sub = self->handles[S_INGEST];
    //  One clock read per batch: a batch takes well under a millisecond,
    //  the resolution of broker_ts.
    self->batch_now = s_now (self);
    for (int n = 0; n < MW_BROKER_INGEST_BATCH; n++) {
        if (zmq_msg_recv (&self->topic, sub, ZMQ_DONTWAIT) < 0)
            break;
        size_t frames = 1;
        if (zmq_msg_more (&self->topic)) {
            //  The parts of a message arrive together: these do not block.
            if (zmq_msg_recv (&self->body, sub, 0) < 0)
                break;
            frames++;
            bool more = zmq_msg_more (&self->body);
            while (more && zmq_msg_recv (&self->extra, sub, 0) >= 0) {
                frames++;
                more = zmq_msg_more (&self->extra);
            }
        }
        if (frames != 2) {
            char what[96];
            snprintf (what, sizeof (what), "%zu frame%s, expected 2 (topic, msgpack body)", frames,
                      frames == 1 ? "" : "s");
            s_reject (self, MW_BROKER_REJECT_FRAMES, what, &self->topic);
            continue;
        }
        s_accept (self);
    }
}

//  --------------------------------------------------------------------------
//  Heartbeat (and tick)

static void
s_pack_u64 (msgpack_packer *pk, const char *key, uint64_t value)
{
    s_pack_key (pk, key);
    msgpack_pack_uint64 (pk, value);
}

static void
s_stats_fill (s_broker_t *self)
{
    self->stats.epoch = self->epoch;
    self->stats.last_id = self->last_id;
    self->stats.now_ms = self->now_ms;
    self->stats.snap_active = self->xfer_count;
}

//  Tick the state with the next id and publish it as the heartbeat.
static void
s_tick (s_broker_t *self)
{
    uint64_t now = s_now (self);
    uint64_t id = self->last_id + 1;
    if (mw_state_tick (self->state, now, id) < 0) {
        S_ERROR (self, "the state refused tick %" PRIu64 " (its last id is %" PRIu64 ")", id,
                 mw_state_last_id (self->state));
        return;
    }
    self->last_id = id;
    self->stats.ticks++;
    s_stats_fill (self);
    const mw_broker_stats_t *st = &self->stats;

    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    struct {
        const char *key;
        uint64_t value;
    } fields[] = {
        {"v", 1},
        {"id", id},
        {"epoch", st->epoch},
        {"now_ms", now},
        {"interval_ms", MW_BROKER_HEARTBEAT_MS},
        {"started_ms", st->started_ms},
        {"accepted", st->accepted},
        {"rejected", st->rejected},
        {"apply_failed", st->apply_failed},
        {"snap_served", st->snap_served},
        {"snap_busy", st->snap_busy},
        {"snap_dropped", st->snap_dropped},
        {"snap_paused", st->snap_paused},
        {"snap_active", st->snap_active},
        {"snap_bad", st->snap_bad},
        {"saves", st->saves},
        {"save_failures", st->save_failures},
        {"save_skipped", st->save_skipped},
        {"last_save_ms", st->last_save_ms},
        {"connections", st->connections},
        {"disconnects", st->disconnects},
        {"auth_failures", st->auth_failures},
    };
    size_t nfields = sizeof (fields) / sizeof (fields[0]);
    msgpack_pack_map (&pk, (uint32_t) nfields + 3);
    for (size_t i = 0; i < nfields; i++)
        s_pack_u64 (&pk, fields[i].key, fields[i].value);
    s_pack_key (&pk, "rejected_by");
    msgpack_pack_map (&pk, MW_BROKER_REJECT_COUNT - 1);
    for (int r = 1; r < MW_BROKER_REJECT_COUNT; r++)
        s_pack_u64 (&pk, mw_broker_reject_name (r), st->rejected_by[r]);
    s_pack_key (&pk, "restored");
    if (st->restored)
        msgpack_pack_true (&pk);
    else
        msgpack_pack_false (&pk);
    s_pack_key (&pk, "curve");
    if (st->curve)
        msgpack_pack_true (&pk);
    else
        msgpack_pack_false (&pk);
    zmq_send (self->handles[S_PUBLISH], "$hb", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send (self->handles[S_PUBLISH], sbuf.data, sbuf.size, ZMQ_DONTWAIT);
    msgpack_sbuffer_destroy (&sbuf);
}

//  --------------------------------------------------------------------------
//  Snapshot service

static void
s_blob_release (s_broker_t *self, s_blob_t **blob_p)
{
    s_blob_t *blob = *blob_p;
    *blob_p = NULL;
    if (blob && --blob->refs == 0) {
        if (self->blob_latest == blob)
            self->blob_latest = NULL;
        free (blob->data);
        free (blob);
    }
}

//  The serialized state at the current id: shared with the transfers that
//  started at the same id, else made now (one mw_state_save per id).
static s_blob_t *
s_blob_current (s_broker_t *self)
{
    s_blob_t *blob = self->blob_latest;
    if (blob && blob->id == self->last_id) {
        blob->refs++;
        return blob;
    }
    blob = (s_blob_t *) calloc (1, sizeof (s_blob_t));
    if (!blob)
        return NULL;
    if (mw_state_save (self->state, &blob->data, &blob->size)) {
        free (blob);
        return NULL;
    }
    blob->id = self->last_id;
    blob->now_ms = mw_state_now (self->state);
    blob->crc = s_crc32 (blob->data, blob->size);
    blob->chunks = (uint32_t) ((blob->size + MW_BROKER_SNAP_CHUNK - 1) / MW_BROKER_SNAP_CHUNK);
    blob->refs = 1;
    self->blob_latest = blob;
    return blob;
}

//  Send a short reply (no pacing: one message) to a peer. envelope: the
//  peer is a REQ socket, add its empty delimiter frame.
static void
s_reply (s_broker_t *self, const uint8_t *identity, size_t identity_len, bool envelope,
         const char *command, const char *text)
{
    void *router = self->handles[S_SNAPSHOT];
    if (zmq_send (router, identity, identity_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return;
    if (envelope)
        zmq_send (router, "", 0, ZMQ_SNDMORE);
    zmq_send (router, command, strlen (command), ZMQ_SNDMORE);
    zmq_send (router, text, strlen (text), 0);
}

static void
s_xfer_remove (s_broker_t *self, size_t index)
{
    s_blob_release (self, &self->xfers[index].blob);
    self->xfers[index] = self->xfers[--self->xfer_count];
}

static void
s_xfer_start (s_broker_t *self, const uint8_t *identity, size_t identity_len)
{
    //  A peer that asks again (it gave up and retried) starts over.
    for (size_t i = 0; i < self->xfer_count; i++)
        if (self->xfers[i].identity_len == identity_len &&
            memcmp (self->xfers[i].identity, identity, identity_len) == 0) {
            s_xfer_remove (self, i);
            self->stats.snap_dropped++;
            break;
        }
    if (self->xfer_count == MW_BROKER_SNAP_CLIENTS_MAX) {
        self->stats.snap_busy++;
        s_reply (self, identity, identity_len, false, "$snap_err",
                 "busy: too many snapshot transfers in progress; retry in a second");
        return;
    }
    s_blob_t *blob = s_blob_current (self);
    if (!blob) {
        s_reply (self, identity, identity_len, false, "$snap_err",
                 "the broker is out of memory; retry later");
        return;
    }
    s_xfer_t *x = &self->xfers[self->xfer_count++];
    memset (x, 0, sizeof (*x));
    memcpy (x->identity, identity, identity_len);
    x->identity_len = identity_len;
    x->blob = blob;
    x->backoff_ms = 1;
    x->progress_at = s_mono_ms ();
    if (self->cfg.verbose)
        S_INFO (self, "snapshot: id %" PRIu64 ", %zu bytes in %u chunks", blob->id, blob->size,
                blob->chunks);
}

//  Send the next message of a transfer. Return 1 if sent, 0 if the peer's
//  queue is full (try later), -1 if the peer is gone.
static int
s_xfer_send_one (s_broker_t *self, s_xfer_t *x)
{
    void *router = self->handles[S_SNAPSHOT];
    //  With ZMQ_ROUTER_MANDATORY the identity frame is where a full queue
    //  (EAGAIN) or an unknown peer (EHOSTUNREACH) shows: nothing was queued
    //  then, so the transfer resumes from the same chunk.
    if (zmq_send (router, x->identity, x->identity_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? 0 : -1;
    s_blob_t *blob = x->blob;
    uint8_t num[9];
    if (x->seq < blob->chunks) {
        size_t n = blob->size - x->offset;
        if (n > MW_BROKER_SNAP_CHUNK)
            n = MW_BROKER_SNAP_CHUNK;
        zmq_send (router, "$snap", 5, ZMQ_SNDMORE);
        zmq_send (router, num, s_mp_uint (num, x->seq), ZMQ_SNDMORE);
        zmq_send (router, blob->data + x->offset, n, 0);
        x->offset += n;
        x->seq++;
        return 1;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 7);
    s_pack_u64 (&pk, "v", 1);
    s_pack_u64 (&pk, "id", blob->id);
    s_pack_u64 (&pk, "epoch", self->epoch);
    s_pack_u64 (&pk, "now_ms", blob->now_ms);
    s_pack_u64 (&pk, "size", blob->size);
    s_pack_u64 (&pk, "chunks", blob->chunks);
    s_pack_u64 (&pk, "crc32", blob->crc);
    zmq_send (router, "$snap_end", 9, ZMQ_SNDMORE);
    zmq_send (router, sbuf.data, sbuf.size, 0);
    msgpack_sbuffer_destroy (&sbuf);
    x->seq++;
    return 1;
}

//  Move every transfer that is due forward by up to a burst of chunks.
//  Return the ms until the next paused transfer is due, -1 if none waits.
static int64_t
s_xfers_serve (s_broker_t *self)
{
    if (self->xfer_count == 0)
        return -1;
    int64_t now = s_mono_ms ();
    int64_t wait = -1;
    size_t i = 0;
    while (i < self->xfer_count) {
        s_xfer_t *x = &self->xfers[i];
        if (x->retry_at > now) {
            if (now - x->progress_at > MW_BROKER_SNAP_STALL_MS) {
                S_WARN (self, "snapshot transfer stalled for %d s at chunk %u of %u: dropped",
                        MW_BROKER_SNAP_STALL_MS / 1000, x->seq, x->blob->chunks);
                self->stats.snap_dropped++;
                s_xfer_remove (self, i);
                continue;
            }
            int64_t w = x->retry_at - now;
            if (wait < 0 || w < wait)
                wait = w;
            i++;
            continue;
        }
        int rc = 1;
        for (int k = 0; k < MW_BROKER_SNAP_BURST && rc == 1; k++) {
            rc = s_xfer_send_one (self, x);
            if (rc == 1 && x->seq > x->blob->chunks)
                break;
        }
        if (rc == 1) {
            x->progress_at = now;
            x->backoff_ms = 1;
            if (x->seq > x->blob->chunks) {
                self->stats.snap_served++;
                s_xfer_remove (self, i);
                continue;
            }
            wait = 0;
        }
        else if (rc == 0) {
            //  Queue full: pause, backing off to at most 64 ms. ROUTER's
            //  POLLOUT cannot help: it says that *some* peer has room.
            self->stats.snap_paused++;
            x->retry_at = now + x->backoff_ms;
            if (wait < 0 || x->backoff_ms < wait)
                wait = x->backoff_ms;
            if (x->backoff_ms < 64)
                x->backoff_ms *= 2;
        }
        else {
            self->stats.snap_dropped++;
            s_xfer_remove (self, i);
            continue;
        }
        i++;
    }
    return wait;
}

//  Read snapshot requests: [identity, "$snap?", options...].
static void
s_requests (s_broker_t *self)
{
    void *router = self->handles[S_SNAPSHOT];
    zmq_msg_t part;
    zmq_msg_init (&part);
    for (int n = 0; n < 64; n++) {
        if (zmq_msg_recv (&part, router, ZMQ_DONTWAIT) < 0)
            break;
        uint8_t identity[256];
        size_t identity_len = zmq_msg_size (&part);
        if (identity_len > sizeof (identity))
            identity_len = sizeof (identity);
        memcpy (identity, zmq_msg_data (&part), identity_len);
        char command[16] = "";
        size_t frames = 0;
        bool envelope = false;
        while (zmq_msg_more (&part) && zmq_msg_recv (&part, router, 0) >= 0) {
            frames++;
            size_t len = zmq_msg_size (&part);
            if (frames == 1 && len == 0 && zmq_msg_more (&part)) {
                envelope = true; //  a REQ socket's empty delimiter
                frames = 0;
                continue;
            }
            if (frames == 1 && len < sizeof (command)) {
                memcpy (command, zmq_msg_data (&part), len);
                command[len] = 0;
            }
        }
        if (!envelope && strcmp (command, "$snap?") == 0) {
            s_xfer_start (self, identity, identity_len);
            continue;
        }
        self->stats.snap_bad++;
        s_reply (self, identity, identity_len, envelope, "$snap_err",
                 envelope ? "use a DEALER socket: the snapshot comes as several messages"
                          : "unknown request: expected \"$snap?\"");
    }
    zmq_msg_close (&part);
}

//  --------------------------------------------------------------------------
//  The actor

static void
s_broker_destroy (s_broker_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        s_broker_t *self = *self_p;
        s_saver_join (self);
        while (self->xfer_count)
            s_xfer_remove (self, self->xfer_count - 1);
        for (int role = S_ROLES - 1; role >= 0; role--) {
            s_monitor_stop (&self->monitors[role]);
            s_detach (self, role);
            zsock_destroy (&self->socks[role]);
        }
        zactor_destroy (&self->auth);
        zcert_destroy (&self->cert);
        zmq_msg_close (&self->extra);
        zmq_msg_close (&self->body);
        zmq_msg_close (&self->topic);
        mw_event_release (&self->ev);
        mw_state_destroy (&self->state);
        if (self->lock_fd >= 0)
            close (self->lock_fd);
        free (self->out);
        free (self);
        *self_p = NULL;
    }
}

static s_broker_t *
s_broker_new (zsock_t *pipe, const mw_broker_config_t *cfg, char *errbuf, size_t errbuf_size)
{
    s_broker_t *self = (s_broker_t *) calloc (1, sizeof (s_broker_t));
    if (!self) {
        s_fmt (errbuf, errbuf_size, "out of memory");
        return NULL;
    }
    self->cfg = *cfg;
    self->name = cfg->log_name ? cfg->log_name : "minerwatch-broker";
    self->pipe = pipe;
    self->lock_fd = -1;
    mw_event_init (&self->ev, MW_TYPE_CUSTOM);
    zmq_msg_init (&self->topic);
    zmq_msg_init (&self->body);
    zmq_msg_init (&self->extra);
    self->out = (uint8_t *) malloc (MW_MAX_BODY);
    self->now_ms = s_wall_ms ();
    self->stats.started_ms = self->now_ms;
    if (!self->out) {
        s_fmt (errbuf, errbuf_size, "out of memory");
        goto err;
    }
    if (mw_broker_config_check (cfg, errbuf, errbuf_size))
        goto err;
    if (cfg->state_file[0] && s_lock (self, errbuf, errbuf_size))
        goto err;
    if (s_restore (self, errbuf, errbuf_size))
        goto err;
    if (cfg->curve_secret[0] && s_curve_start (self, errbuf, errbuf_size))
        goto err;
    if (s_sockets_start (self, errbuf, errbuf_size))
        goto err;
    if (self->stats.restored) {
        //  Mark the file as "in use" before the first id goes out (see the
        //  state file notes). If that fails, a crash could not be told
        //  from a clean stop: take a new epoch to be safe.
        uint64_t saves = self->stats.saves;
        s_save (self, true, false);
        if (self->stats.saves == saves) {
            self->epoch = s_random64 ();
            S_WARN (self, "new epoch %016" PRIx64 " since the state file cannot be updated",
                    self->epoch);
        }
    }
    s_log (self->name, 'I',
           "ready: ingest=%s publish=%s snapshot=%s epoch=%016" PRIx64 " id=%" PRIu64
           " state=%s curve=%s",
           self->endpoints[S_INGEST], self->endpoints[S_PUBLISH], self->endpoints[S_SNAPSHOT],
           self->epoch, self->last_id, self->stats.restored ? "restored" : "new",
           self->cert ? "on" : "off");
    return self;
err:
    s_broker_destroy (&self);
    return NULL;
}

//  Handle a command from the pipe. Return -1 on $TERM.
static int
s_pipe_command (s_broker_t *self)
{
    zmsg_t *msg = zmsg_recv (self->pipe);
    if (!msg)
        return -1; //  interrupted
    char *command = zmsg_popstr (msg);
    int rc = 0;
    if (!command || strcmp (command, "$TERM") == 0)
        rc = -1;
    else if (strcmp (command, "STATS") == 0) {
        s_stats_fill (self);
        zsock_send (self->pipe, "b", &self->stats, sizeof (self->stats));
    }
    else if (strcmp (command, "SAVE") == 0) {
        int saved = s_save (self, true, false);
        zsock_signal (self->pipe, saved == 0 ? 0 : 1);
    }
    else if (strcmp (command, "ENDPOINTS") == 0) {
        char *which = zmsg_popstr (msg);
        const char *answer = "";
        for (int role = 0; role < S_ROLES; role++)
            if (which && strcmp (which, s_role_names[role]) == 0)
                answer = self->endpoints[role];
        zstr_send (self->pipe, answer);
        free (which);
    }
    else
        S_ERROR (self, "unknown pipe command '%s'", command);
    free (command);
    zmsg_destroy (&msg);
    return rc;
}

//  Run until $TERM (return 0) or a failure of the loop itself (return -1).
static int
s_broker_run (s_broker_t *self)
{
    int64_t now = s_mono_ms ();
    self->next_tick = now + MW_BROKER_HEARTBEAT_MS;
    self->next_save = now + (int64_t) self->cfg.save_interval_s * 1000;
    zmq_pollitem_t items[2 + 2 * S_ROLES];
    int count = 0;
    items[count++] = (zmq_pollitem_t){zsock_resolve (self->pipe), 0, ZMQ_POLLIN, 0};
    items[count++] = (zmq_pollitem_t){self->handles[S_INGEST], 0, ZMQ_POLLIN, 0};
    items[count++] = (zmq_pollitem_t){self->handles[S_SNAPSHOT], 0, ZMQ_POLLIN, 0};
    int first_monitor = count;
    for (int role = 0; role < S_ROLES; role++)
        if (self->monitors[role].pair)
            items[count++] =
                (zmq_pollitem_t){zsock_resolve (self->monitors[role].pair), 0, ZMQ_POLLIN, 0};

    while (!self->terminated) {
        now = s_mono_ms ();
        if (now >= self->next_tick) {
            s_tick (self);
            self->next_tick += MW_BROKER_HEARTBEAT_MS;
            if (self->next_tick <= now) //  we were stalled: do not burst
                self->next_tick = now + MW_BROKER_HEARTBEAT_MS;
        }
        s_saver_poll (self);
        if (self->cfg.save_interval_s && self->cfg.state_file[0] && now >= self->next_save) {
            s_save (self, false, false);
            self->next_save = now + (int64_t) self->cfg.save_interval_s * 1000;
        }
        int64_t wait = s_xfers_serve (self);
        int64_t timeout = self->next_tick - now;
        if (self->cfg.save_interval_s && self->cfg.state_file[0] && self->next_save - now < timeout)
            timeout = self->next_save - now;
        if (self->saver.running && timeout > 10)
            timeout = 10; //  collect the writer's result soon after it ends
        if (wait >= 0 && wait < timeout)
            timeout = wait;
        if (timeout < 0)
            timeout = 0;
        int rc = zmq_poll (items, count, (long) timeout);
        if (rc < 0) {
            if (zmq_errno () == EINTR)
                continue;
            S_ERROR (self, "zmq_poll: %s", zmq_strerror (zmq_errno ()));
            break;
        }
        if (rc == 0)
            continue;
        if (items[0].revents & ZMQ_POLLIN && s_pipe_command (self) < 0) {
            self->terminated = true;
            break;
        }
        if (items[1].revents & ZMQ_POLLIN)
            s_ingest (self);
        if (items[2].revents & ZMQ_POLLIN)
            s_requests (self);
        for (int i = first_monitor, role = 0; role < S_ROLES; role++) {
            if (!self->monitors[role].pair)
                continue;
            if (items[i].revents & ZMQ_POLLIN)
                s_monitor_read (self, &self->monitors[role]);
            i++;
        }
    }
    //  The end: the final save is "clean" (no id goes out after it).
    s_saver_join (self);
    if (self->cfg.state_file[0]) {
        if (s_save (self, true, true) == 0)
            S_INFO (self, "state saved to %s (id %" PRIu64 ")", self->cfg.state_file,
                    self->last_id);
    }
    S_INFO (self, "stopped: %" PRIu64 " events accepted, %" PRIu64 " rejected",
            self->stats.accepted, self->stats.rejected);
    return self->terminated ? 0 : -1;
}

typedef struct {
    const mw_broker_config_t *cfg;
    int rc;
    char err[768];
} s_startup_t;

static void
s_actor (zsock_t *pipe, void *args)
{
    s_startup_t *startup = (s_startup_t *) args;
    s_broker_t *self = s_broker_new (pipe, startup->cfg, startup->err, sizeof (startup->err));
    startup->rc = self ? 0 : -1;
    //  After this signal `startup` belongs to the caller again.
    zsock_signal (pipe, 0);
    if (!self)
        return;
    bool asked = s_broker_run (self) == 0;
    s_broker_destroy (&self);
    if (!asked)
        zstr_sendx (pipe, "$DEAD", "the broker loop failed (see the log)", NULL);
}

//  --------------------------------------------------------------------------
//  The public class

struct _mw_broker_t {
    zactor_t *actor;
};

mw_broker_t *
mw_broker_new (const mw_broker_config_t *cfg, char *errbuf, size_t errbuf_size)
{
    assert (cfg);
    mw_broker_t *self = (mw_broker_t *) calloc (1, sizeof (mw_broker_t));
    if (!self) {
        s_fmt (errbuf, errbuf_size, "out of memory");
        return NULL;
    }
    s_startup_t startup = {cfg, -1, ""};
    self->actor = zactor_new (s_actor, &startup);
    if (!self->actor || startup.rc != 0) {
        s_fmt (errbuf, errbuf_size, "%s",
               self->actor ? startup.err : "cannot start the broker thread");
        zactor_destroy (&self->actor);
        free (self);
        return NULL;
    }
    return self;
}

void
mw_broker_destroy (mw_broker_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        mw_broker_t *self = *self_p;
        zactor_destroy (&self->actor);
        free (self);
        *self_p = NULL;
    }
}

zactor_t *
mw_broker_actor (mw_broker_t *self)
{
    assert (self);
    return self->actor;
}

int
mw_broker_stats (mw_broker_t *self, mw_broker_stats_t *stats)
{
    assert (self);
    assert (stats);
    if (zstr_send (self->actor, "STATS"))
        return -1;
    zframe_t *frame = zframe_recv (self->actor);
    int rc = -1;
    if (frame && zframe_size (frame) == sizeof (*stats)) {
        memcpy (stats, zframe_data (frame), sizeof (*stats));
        rc = 0;
    }
    zframe_destroy (&frame);
    return rc;
}

int
mw_broker_save (mw_broker_t *self)
{
    assert (self);
    if (zstr_send (self->actor, "SAVE"))
        return -1;
    return zsock_wait (self->actor) == 0 ? 0 : -1;
}

int
mw_broker_endpoints (mw_broker_t *self, const char *which, char *out, size_t size)
{
    assert (self);
    assert (which);
    if (zstr_sendx (self->actor, "ENDPOINTS", which, NULL))
        return -1;
    char *answer = zstr_recv (self->actor);
    if (!answer)
        return -1;
    int rc = *answer ? 0 : -1;
    snprintf (out, size, "%s", answer);
    free (answer);
    return rc;
}
