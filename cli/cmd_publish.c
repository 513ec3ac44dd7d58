/*  cmd_publish.c - `minerwatch publish --type T key=value ...`: send one
    event, with typed values.

    A value's type comes from, in order: a suffix on the key (`n:int=5`);
    the protocol, for the keys CONTRACT.md names (prompt=123 is a string,
    timeout_ms a uint, success a bool, response_time a float); or its text
    (true/false, null, an integer, a number, else a string). Everything is
    checked here, before the publisher exists, so a mistake is a usage error
    (exit 2) with the key and the expected form, never a silently dropped
    event. Known keys go into the kv list like any other: the codec routes
    them to their fields.
*/
#include "mw_cli.h"
#include "mw_publisher.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_NAME "publish"

//  What a value is, as the user may force it with a key suffix.
typedef enum { S_AUTO, S_STR, S_INT, S_UINT, S_FLOAT, S_BOOL, S_JSON } s_vtype_t;

static const char *s_vtype_names[] = {"auto", "str", "int", "uint", "float", "bool", "json"};

//  The protocol type of a known key; S_AUTO for a custom key.
static s_vtype_t
s_known_type (const char *key)
{
    for (int k = 0; k < MW_STR_COUNT; k++)
        if (strcmp (key, mw_str_key_name ((mw_str_key_t) k)) == 0)
            return S_STR;
    if (strcmp (key, "timeout_ms") == 0 || strcmp (key, "action_count") == 0)
        return S_UINT;
    if (strcmp (key, "success") == 0)
        return S_BOOL;
    if (strcmp (key, "response_time") == 0 || strcmp (key, "score") == 0 ||
        strcmp (key, "execution_time") == 0)
        return S_FLOAT;
    return S_AUTO;
}

//  Keys the publisher sets itself, with what to use instead.
static const char *
s_header_hint (const char *key)
{
    static const char *header[] = {"v", "ts", "sid", "seq", "id", "broker_ts", "truncated", NULL};
    if (strcmp (key, "type") == 0)
        return "use --type";
    if (strcmp (key, "miner") == 0)
        return "use --miner";
    for (int i = 0; header[i]; i++)
        if (strcmp (key, header[i]) == 0)
            return "the publisher sets it";
    return NULL;
}

//  The keys each known type needs (CONTRACT.md section 1), so that a
//  missing one is a clear usage error rather than a refused event.
typedef struct {
    mw_type_t kind;
    const char *keys[2];
    bool any; //  one of the keys is enough
} s_required_t;

static const s_required_t s_required[] = {
    {MW_TYPE_TASK_START, {"task_id", NULL}, false},
    {MW_TYPE_TASK_STEP, {"task_id", "step"}, false},
    {MW_TYPE_ACTIONS_GENERATED, {"task_id", "action_count"}, false},
    {MW_TYPE_TASK_COMPLETE, {"task_id", "success"}, false},
    {MW_TYPE_TASK_FEEDBACK, {"task_id", NULL}, false},
    {MW_TYPE_VALIDATOR_CONNECTION, {"validator_ip", "validator_hotkey"}, true},
    {MW_TYPE_CACHE_HIT, {"task_id", NULL}, false},
    {MW_TYPE_ERROR, {"error_message", NULL}, false},
};

typedef struct {
    const char *endpoint;
    const char *type;
    const char *miner;
    double wait;
    bool verbose;
    mw_cli_curve_t curve;
} s_opts_t;

enum { S_OPT_WAIT = 256 };

static const struct option s_options[] = {
    {"endpoint", required_argument, NULL, 'e'}, {"type", required_argument, NULL, 't'},
    {"miner", required_argument, NULL, 'm'},    {"wait", required_argument, NULL, 'w'},
    {"verbose", no_argument, NULL, 'v'},        MW_CLI_CURVE_OPTIONS,
    {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0}};

static void
s_help (FILE *out)
{
    fprintf (out,
             "Usage: minerwatch publish [OPTIONS] --type TYPE [KEY=VALUE ...]\n"
             "\n"
             "Send one event, as a miner would: to test a broker, a dashboard or a script.\n"
             "\n"
             "Options:\n"
             "  -e, --endpoint EP    where to publish: '>tcp://HOST:PORT' connects, '@...' binds\n"
             "                       (default: " MW_CLI_DEFAULT_ENDPOINT ", a local broker)\n"
             "  -t, --type TYPE      the event type, e.g. task_start or a custom one (required)\n"
             "  -m, --miner NAME     the miner's name (default: this host's name)\n"
             "  -w, --wait S         seconds to wait for a subscriber before sending; 0 sends at\n"
             "                       once (default: 2)\n"
             "  -v, --verbose        print what was sent (default: print nothing on success)\n"
             "  -h, --help           show this help and exit\n"
             "\n" MW_CLI_CURVE_HELP "\n"
             "Values. Keys of the protocol take their protocol type: prompt=123 is a string,\n"
             "timeout_ms and action_count are whole numbers, success is true or false,\n"
             "response_time, score and execution_time are numbers. Other keys are inferred:\n"
             "true/false a bool, null a nil, -5 an int, 5 a uint, 1.5 a float, else a string.\n"
             "Force a type with a suffix: key:str=007, key:int=5, key:uint=5, key:float=2,\n"
             "key:bool=true, key:json='{\"a\":[1,2]}' (any JSON value, e.g. task_step details).\n"
             "\n"
             "Exit codes: 0 sent; 1 no subscriber within --wait (start the broker or\n"
             "`minerwatch tail`) or the event was dropped; 2 bad usage or value.\n"
             "\n"
             "Examples:\n"
             "  minerwatch publish --type task_start task_id=t1 prompt='Login to example.com' \\\n"
             "      validator_ip=45.22.240.79 timeout_ms=30000\n"
             "  minerwatch publish -t task_complete task_id=t1 success=true response_time=5.2\n"
             "  minerwatch publish -e @tcp://127.0.0.1:7710 -t deploy version=1.4.2 canary=true\n");
}

//  --------------------------------------------------------------------------
//  JSON values (key:json=...) as kv trees: one array holds every node.

static size_t
s_json_nodes (const json_t *j)
{
    size_t n = 1;
    if (json_is_object (j)) {
        const char *k;
        const json_t *v;
        json_object_foreach ((json_t *) j, k, v) n += s_json_nodes (v);
    }
    else if (json_is_array (j)) {
        size_t i;
        const json_t *v;
        json_array_foreach (j, i, v) n += s_json_nodes (v);
    }
    return n;
}

//  Fill node (already holding its key) from j; children go at *next.
//  Return 0, or -1 if it nests deeper than the protocol carries.
static int
s_json_fill (mw_kv_t *node, const json_t *j, mw_kv_t **next, int depth)
{
    switch (json_typeof (j)) {
        case JSON_NULL:
            node->kind = MW_KV_NIL;
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            node->kind = MW_KV_BOOL;
            node->val.b = json_is_true (j);
            break;
        case JSON_INTEGER: {
            json_int_t i = json_integer_value (j);
            if (i < 0) {
                node->kind = MW_KV_INT;
                node->val.i = (int64_t) i;
            }
            else {
                node->kind = MW_KV_UINT;
                node->val.u = (uint64_t) i;
            }
            break;
        }
        case JSON_REAL:
            node->kind = MW_KV_DOUBLE;
            node->val.d = json_real_value (j);
            break;
        case JSON_STRING:
            node->kind = MW_KV_STR;
            node->val.s.ptr = json_string_value (j);
            node->val.s.len = json_string_length (j);
            break;
        case JSON_OBJECT:
        case JSON_ARRAY: {
            if (depth >= MW_MAX_DEPTH)
                return -1;
            bool object = json_is_object (j);
            size_t count = object ? json_object_size (j) : json_array_size (j);
            mw_kv_t *items = *next;
            *next += count;
            node->kind = object ? MW_KV_MAP : MW_KV_ARRAY;
            node->val.list.items = items;
            node->val.list.count = count;
            size_t i = 0;
            if (object) {
                const char *k;
                const json_t *v;
                json_object_foreach ((json_t *) j, k, v)
                {
                    items[i].key = k;
                    if (s_json_fill (&items[i++], v, next, depth + 1) != 0)
                        return -1;
                }
            }
            else {
                size_t ix;
                const json_t *v;
                json_array_foreach (j, ix, v)
                {
                    items[i].key = NULL;
                    if (s_json_fill (&items[i++], v, next, depth + 1) != 0)
                        return -1;
                }
            }
            break;
        }
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  key=value

typedef struct {
    mw_kv_t *kv; //  one per key=value
    size_t count;
    json_t **json;   //  parsed JSON values, kept alive until the send
    mw_kv_t **nodes; //  their kv trees
    size_t json_count;
} s_pairs_t;

static bool
s_is_integer (const char *text)
{
    const char *p = text + (*text == '-');
    return *p && strspn (p, "0123456789") == strlen (p);
}

//  Parse one value of type t into kv. Return 0 or a usage error.
static int
s_parse_value (s_pairs_t *pairs, mw_kv_t *kv, s_vtype_t t, const char *text)
{
    const char *key = kv->key;
    double d;
    uint64_t u;
    switch (t) {
        case S_AUTO:
            if (strcmp (text, "true") == 0 || strcmp (text, "false") == 0)
                return s_parse_value (pairs, kv, S_BOOL, text);
            if (strcmp (text, "null") == 0) {
                kv->kind = MW_KV_NIL;
                return 0;
            }
            if (s_is_integer (text)) {
                if (s_parse_value (pairs, kv, text[0] == '-' ? S_INT : S_UINT, text) == 0)
                    return 0;
                return MW_CLI_USAGE; //  the message is out
            }
            if (mw_cli_parse_double (text, -HUGE_VAL, HUGE_VAL, &d) == 0) {
                kv->kind = MW_KV_DOUBLE;
                kv->val.d = d;
                return 0;
            }
            return s_parse_value (pairs, kv, S_STR, text);
        case S_STR:
            kv->kind = MW_KV_STR;
            kv->val.s.ptr = text;
            kv->val.s.len = strlen (text);
            return 0;
        case S_INT: {
            if (!s_is_integer (text))
                return mw_cli_usage (S_NAME, "value of '%s' is '%s': expected a whole number", key,
                                     text);
            errno = 0;
            long long i = strtoll (text, NULL, 10);
            if (errno == ERANGE)
                return mw_cli_usage (S_NAME,
                                     "value of '%s' is '%s': out of range for a 64-bit int; use "
                                     "'%s:float=' or '%s:str='",
                                     key, text, key, key);
            kv->kind = MW_KV_INT;
            kv->val.i = i;
            return 0;
        }
        case S_UINT:
            if (mw_cli_parse_uint (text, 0, UINT64_MAX, &u) != 0) {
                if (s_is_integer (text) && text[0] != '-')
                    return mw_cli_usage (S_NAME,
                                         "value of '%s' is '%s': out of range for a 64-bit uint "
                                         "(at most %" PRIu64 "); use '%s:float=' or '%s:str='",
                                         key, text, UINT64_MAX, key, key);
                return mw_cli_usage (S_NAME,
                                     "value of '%s' is '%s': expected a whole number from 0 to "
                                     "%" PRIu64,
                                     key, text, UINT64_MAX);
            }
            kv->kind = MW_KV_UINT;
            kv->val.u = u;
            return 0;
        case S_FLOAT:
            if (mw_cli_parse_double (text, -HUGE_VAL, HUGE_VAL, &d) != 0)
                return mw_cli_usage (
                    S_NAME, "value of '%s' is '%s': expected a finite number, e.g. 1.5", key, text);
            kv->kind = MW_KV_DOUBLE;
            kv->val.d = d;
            return 0;
        case S_BOOL:
            if (strcmp (text, "true") != 0 && strcmp (text, "false") != 0)
                return mw_cli_usage (S_NAME, "value of '%s' is '%s': expected true or false", key,
                                     text);
            kv->kind = MW_KV_BOOL;
            kv->val.b = text[0] == 't';
            return 0;
        case S_JSON: {
            json_error_t error;
            json_t *j = json_loads (text, JSON_DECODE_ANY, &error);
            if (!j)
                return mw_cli_usage (S_NAME, "value of '%s' is not JSON: %s at column %d", key,
                                     error.text, error.column);
            size_t n = s_json_nodes (j);
            mw_kv_t *nodes = (mw_kv_t *) calloc (n, sizeof (mw_kv_t));
            if (!nodes) {
                json_decref (j);
                fprintf (stderr, "minerwatch publish: out of memory\n");
                return MW_CLI_FAILED;
            }
            pairs->json[pairs->json_count] = j;
            pairs->nodes[pairs->json_count] = nodes;
            pairs->json_count++;
            //  The top node is kv itself; nodes[] holds what is below it.
            mw_kv_t *next = nodes;
            if (s_json_fill (kv, j, &next, 0) != 0)
                return mw_cli_usage (S_NAME,
                                     "value of '%s' nests more than %d arrays/objects, the "
                                     "protocol's limit",
                                     key, MW_MAX_DEPTH);
            return 0;
        }
    }
    return MW_CLI_USAGE;
}

//  Parse "key[:type]=value" in place (argv strings are ours to cut).
static int
s_parse_pair (s_pairs_t *pairs, char *arg)
{
    char *eq = strchr (arg, '=');
    if (!eq || eq == arg)
        return mw_cli_usage (S_NAME, "'%s' is not KEY=VALUE", arg);
    *eq = 0;
    const char *text = eq + 1;
    s_vtype_t forced = S_AUTO;
    char *colon = strchr (arg, ':');
    if (colon) {
        *colon = 0;
        const char *suffix = colon + 1;
        for (int t = S_STR; t <= S_JSON; t++)
            if (strcmp (suffix, s_vtype_names[t]) == 0)
                forced = (s_vtype_t) t;
        if (forced == S_AUTO)
            return mw_cli_usage (S_NAME,
                                 "unknown type ':%s' on key '%s': expected :str, :int, :uint, "
                                 ":float, :bool or :json",
                                 suffix, arg);
    }
    const char *key = arg;
    if (!*key || strlen (key) > MW_MAX_KEY)
        return mw_cli_usage (S_NAME, "key '%s' must have 1 to %d bytes", key, MW_MAX_KEY);
    const char *hint = s_header_hint (key);
    if (hint)
        return mw_cli_usage (S_NAME, "key '%s' cannot be given: %s", key, hint);
    for (size_t i = 0; i < pairs->count; i++)
        if (strcmp (pairs->kv[i].key, key) == 0)
            return mw_cli_usage (S_NAME, "key '%s' given twice", key);
    s_vtype_t known = s_known_type (key);
    if (known != S_AUTO && forced != S_AUTO && forced != known)
        return mw_cli_usage (S_NAME, "key '%s' is a %s in the protocol; drop the ':%s' suffix", key,
                             s_vtype_names[known], s_vtype_names[forced]);
    mw_kv_t *kv = &pairs->kv[pairs->count];
    memset (kv, 0, sizeof (*kv));
    kv->key = key;
    int rc = s_parse_value (pairs, kv, known != S_AUTO ? known : forced, text);
    if (rc != 0)
        return rc;
    pairs->count++;
    return 0;
}

static bool
s_has_key (const s_pairs_t *pairs, const char *key)
{
    for (size_t i = 0; i < pairs->count; i++)
        if (strcmp (pairs->kv[i].key, key) == 0 && pairs->kv[i].kind != MW_KV_NIL)
            return true;
    return false;
}

static int
s_check_required (const s_pairs_t *pairs, const char *type)
{
    mw_type_t kind = mw_type_from_name (type, strlen (type));
    for (size_t i = 0; i < sizeof (s_required) / sizeof (s_required[0]); i++) {
        const s_required_t *req = &s_required[i];
        if (req->kind != kind)
            continue;
        if (req->any) {
            if (!s_has_key (pairs, req->keys[0]) && !s_has_key (pairs, req->keys[1]))
                return mw_cli_usage (S_NAME, "a %s event needs %s=... or %s=...", type,
                                     req->keys[0], req->keys[1]);
        }
        else
            for (int k = 0; k < 2 && req->keys[k]; k++)
                if (!s_has_key (pairs, req->keys[k]))
                    return mw_cli_usage (S_NAME, "a %s event needs %s=...", type, req->keys[k]);
    }
    return 0;
}

static void
s_pairs_free (s_pairs_t *pairs)
{
    for (size_t i = 0; i < pairs->json_count; i++) {
        free (pairs->nodes[i]);
        json_decref (pairs->json[i]);
    }
    free (pairs->kv);
    free (pairs->json);
    free (pairs->nodes);
}

//  --------------------------------------------------------------------------

static int
s_parse (s_opts_t *opts, int argc, char **argv)
{
    opts->endpoint = MW_CLI_DEFAULT_ENDPOINT;
    opts->wait = 2;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":e:t:m:w:vh", s_options, NULL)) != -1) {
        switch (c) {
            case 'e':
                opts->endpoint = optarg;
                break;
            case 't':
                opts->type = optarg;
                break;
            case 'm':
                opts->miner = optarg;
                break;
            case 'w':
                if (mw_cli_parse_double (optarg, 0, 3600, &opts->wait) != 0)
                    return mw_cli_usage (
                        S_NAME, "invalid --wait '%s': expected seconds from 0 to 3600", optarg);
                break;
            case 'v':
                opts->verbose = true;
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
    const char *why;
    if (mw_cli_check_endpoints (opts->endpoint, &why) != 0)
        return mw_cli_usage (S_NAME, "invalid --endpoint '%s': %s", opts->endpoint, why);
    if (!opts->type)
        return mw_cli_usage (S_NAME, "missing --type, e.g. --type task_start");
    if (mw_type_name_valid (opts->type, strlen (opts->type)) != 0)
        return mw_cli_usage (S_NAME,
                             "invalid --type '%s': expected 1 to %d printable ASCII characters "
                             "without spaces, not starting with '$'",
                             opts->type, MW_MAX_TYPE);
    if (opts->miner && (!*opts->miner || strlen (opts->miner) > MW_MAX_MINER))
        return mw_cli_usage (S_NAME, "invalid --miner '%s': expected 1 to %d bytes", opts->miner,
                             MW_MAX_MINER);
    return mw_cli_curve_check (S_NAME, &opts->curve);
}

static int
s_run (int argc, char **argv)
{
    s_opts_t opts;
    memset (&opts, 0, sizeof (opts));
    int rc = s_parse (&opts, argc, argv);
    if (rc != 0)
        return rc < 0 ? MW_CLI_OK : rc;

    s_pairs_t pairs;
    memset (&pairs, 0, sizeof (pairs));
    size_t n = (size_t) (argc - optind) + 1;
    pairs.kv = (mw_kv_t *) calloc (n, sizeof (mw_kv_t));
    pairs.json = (json_t **) calloc (n, sizeof (json_t *));
    pairs.nodes = (mw_kv_t **) calloc (n, sizeof (mw_kv_t *));
    mw_publisher_t *pub = NULL;
    if (!pairs.kv || !pairs.json || !pairs.nodes) {
        fprintf (stderr, "minerwatch publish: out of memory\n");
        rc = MW_CLI_FAILED;
        goto done;
    }
    for (int i = optind; i < argc; i++)
        if ((rc = s_parse_pair (&pairs, argv[i])) != 0)
            goto done;
    if ((rc = s_check_required (&pairs, opts.type)) != 0)
        goto done;

    char host[256] = "minerwatch";
    if (!opts.miner) {
        if (gethostname (host, sizeof (host)) != 0 || !host[0])
            strcpy (host, "minerwatch");
        host[MW_MAX_MINER] = 0;
        opts.miner = host;
    }

    //  The codec's own check: sizes and kinds, exactly as the send will see them.
    mw_event_t ev;
    if (mw_event_init_named (&ev, opts.type) != 0) {
        rc = mw_cli_usage (S_NAME, "invalid --type '%s'", opts.type);
        goto done;
    }
    mw_event_set_str (&ev, MW_K_MINER, opts.miner);
    ev.kv = pairs.kv;
    ev.kv_count = pairs.count;
    static uint8_t body[MW_MAX_BODY];
    size_t body_len;
    int err = mw_event_encode (&ev, body, sizeof (body), &body_len, NULL);
    if (err != MW_OK) {
        rc = mw_cli_usage (S_NAME, "the codec refuses this event (%s)%s", mw_err_name (err),
                           err == MW_ERR_TOO_LARGE ? ": the body would exceed 64 KiB" : "");
        goto done;
    }

    rc = MW_CLI_FAILED;
    //  Read the key files here first, so that an error names the option.
    char curve_err[640];
    if (mw_cli_curve_client (NULL, &opts.curve, curve_err, sizeof (curve_err)) != 0) {
        fprintf (stderr, "minerwatch publish: %s\n", curve_err);
        goto done;
    }
    pub = mw_publisher_new_curve (opts.endpoint, opts.miner, MW_PUBLISHER_SNDHWM,
                                  MW_PUBLISHER_LINGER_MS, opts.curve.server_key,
                                  opts.curve.client_cert);
    if (!pub)
        goto done; //  the library said why
    if (opts.wait > 0) {
        //  In slices, so that Ctrl-C is not ignored for the whole wait.
        double deadline = mw_cli_now () + opts.wait;
        int ready = -1;
        while (ready != 0 && !mw_cli_interrupted) {
            double left = deadline - mw_cli_now ();
            if (left <= 0)
                break;
            ready = mw_publisher_wait_ready (pub, left > 0.1 ? 100 : (int) (left * 1000) + 1);
        }
        if (ready != 0) {
            if (!mw_cli_interrupted)
                fprintf (stderr,
                         "minerwatch publish: no subscriber on %s after %g s: is the broker or "
                         "`minerwatch tail` running?%s\n",
                         opts.endpoint, opts.wait,
                         mw_publisher_connections (pub) == 0 && opts.curve.server_key
                             ? " (no CURVE handshake completed: is --curve-server-key the "
                               "broker's public key, and is this client allowed?)"
                             : "");
            goto done;
        }
    }
    if (mw_publisher_send (pub, opts.type, NULL, pairs.kv, pairs.count) != 0) {
        fprintf (stderr,
                 "minerwatch publish: the %s event was dropped: no subscriber took it (or its "
                 "queue is full)%s\n",
                 opts.type, opts.wait > 0 ? "" : "; try --wait 2");
        goto done;
    }
    if (opts.verbose)
        printf ("sent %s as miner '%s' to %s (session %016" PRIx64 ", %zu key%s)\n", opts.type,
                opts.miner, opts.endpoint, mw_publisher_sid (pub), pairs.count,
                pairs.count == 1 ? "" : "s");
    rc = MW_CLI_OK;

done:
    mw_publisher_destroy (&pub); //  lingers until the event has left
    s_pairs_free (&pairs);
    return rc;
}

const mw_cli_command_t mw_cmd_publish = {"publish", "send one event (typed key=value pairs)", s_run,
                                         s_help};
