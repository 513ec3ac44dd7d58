/*  mw_event.h - the event model and msgpack codec of wire protocol v1.

    An event is two ZeroMQ frames: the topic (the event type, ASCII) and a
    body (one msgpack map with string keys). See docs/protocol.md.

    mw_event_t is a plain struct: a *view* of one event. Strings are
    (pointer, length) pairs; they point either into memory the caller owns
    (when building an event to send) or into the event's own storage (after
    mw_event_decode, where every string is also NUL-terminated). Keys this
    library does not know are kept as raw msgpack (`extra`) and re-encoded
    untouched, so a custom key survives a trip through the broker.

    The decoder treats its input as hostile: every type and length is
    checked against the bytes left, nesting is bounded, nothing is read past
    the buffer, and a bad message gives an error code and a message, never
    an abort.
*/
#ifndef MW_EVENT_H_INCLUDED
#define MW_EVENT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Limits of wire protocol v1 (CONTRACT.md section 1).
#define MW_PROTOCOL_VERSION 1
#define MW_MAX_BODY 65536     //  bytes in one msgpack body
#define MW_MAX_STR 4096       //  bytes in one string value; longer is truncated
#define MW_MAX_TASK_ID 128    //  bytes in task_id; longer is truncated
#define MW_MAX_MINER 64       //  bytes in miner; longer is truncated
#define MW_MAX_TYPE 64        //  bytes in an event type (the topic)
#define MW_MAX_KEY 256        //  bytes in a map key
#define MW_MAX_DEPTH 16       //  maps/arrays nested in one carried (custom) value
#define MW_MAX_EXTRA 64       //  custom keys in one event

//  The event types CONTRACT.md names. Any other type is MW_TYPE_CUSTOM and
//  is carried through with its name in mw_event_t.type.
typedef enum {
    MW_TYPE_CUSTOM = 0,
    MW_TYPE_TASK_START,
    MW_TYPE_TASK_STEP,
    MW_TYPE_ACTIONS_GENERATED,
    MW_TYPE_TASK_COMPLETE,
    MW_TYPE_TASK_FEEDBACK,
    MW_TYPE_VALIDATOR_CONNECTION,
    MW_TYPE_CACHE_HIT,
    MW_TYPE_ERROR,
    MW_TYPE_COUNT
} mw_type_t;

//  The string-valued keys of the protocol. A known key has the same msgpack
//  type in every event type.
typedef enum {
    MW_K_MINER = 0,
    MW_K_TASK_ID,
    MW_K_PROMPT,
    MW_K_URL,
    MW_K_VALIDATOR_IP,
    MW_K_VALIDATOR_HOTKEY,
    MW_K_STEP,
    MW_K_ACTION_TYPE,
    MW_K_ERROR,
    MW_K_ERROR_MESSAGE,
    MW_K_ERROR_TYPE,
    MW_K_CACHE_TYPE,
    MW_K_ENDPOINT,
    MW_STR_COUNT
} mw_str_key_t;

//  Presence bits for the optional non-string fields (mw_event_t.has).
#define MW_HAS_ID 0x0001u             //  id (broker id, uint)
#define MW_HAS_TIMEOUT_MS 0x0002u     //  timeout_ms (uint)
#define MW_HAS_ACTION_COUNT 0x0004u   //  action_count (uint)
#define MW_HAS_SUCCESS 0x0008u        //  success (bool)
#define MW_HAS_RESPONSE_TIME 0x0010u  //  response_time (float, seconds)
#define MW_HAS_SCORE 0x0020u          //  score (float)
#define MW_HAS_EXECUTION_TIME 0x0040u //  execution_time (float, seconds)
#define MW_HAS_BROKER_TS 0x0080u      //  broker_ts (uint, broker clock in ms at acceptance)

//  A string value: ptr NULL means the key is absent.
typedef struct {
    const char *ptr;
    uint32_t len;
} mw_str_t;

//  A key/value for custom keys (and task_step details) when building an
//  event. MAP and ARRAY nest (their element keys are ignored in an ARRAY).
typedef enum {
    MW_KV_NIL = 0,
    MW_KV_BOOL,
    MW_KV_INT,
    MW_KV_UINT,
    MW_KV_DOUBLE,
    MW_KV_STR,
    MW_KV_MAP,
    MW_KV_ARRAY
} mw_kv_kind_t;

typedef struct mw_kv_t mw_kv_t;
struct mw_kv_t {
    const char *key;
    mw_kv_kind_t kind;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double d;
        struct {
            const char *ptr; //  NUL-terminated if len is (size_t) -1
            size_t len;
        } s;
        struct {
            const mw_kv_t *items;
            size_t count;
        } list; //  MAP and ARRAY
    } val;
};

typedef struct {
    mw_type_t kind;
    char type[MW_MAX_TYPE + 1]; //  the type name, NUL-terminated
    uint64_t v;                 //  protocol version
    uint64_t ts;                //  publisher clock, microseconds since the epoch
    uint64_t sid;               //  publisher session id
    uint64_t seq;               //  sequence number in the session, from 1
    uint64_t id;                //  broker id, if has & MW_HAS_ID
    uint64_t broker_ts;         //  broker clock (ms) at acceptance, if MW_HAS_BROKER_TS
    mw_str_t str[MW_STR_COUNT]; //  string keys, indexed by mw_str_key_t
    uint32_t has;               //  MW_HAS_* bits
    uint64_t timeout_ms;
    uint64_t action_count;
    bool success;
    double response_time;
    double score;
    double execution_time;
    //  Number of strings cut to the limits: the sum of the wire's
    //  `truncated` key and what this side cut.
    uint32_t truncated;
    //  Keys this library does not know, as raw msgpack key/value pairs
    //  (decoded events), and as key/values to append (events being built).
    const uint8_t *extra;
    size_t extra_len;
    uint32_t extra_count;
    const mw_kv_t *kv;
    size_t kv_count;
    //  Storage owned by a decoded event; free with mw_event_release.
    uint8_t *store_;
    size_t store_size_;
} mw_event_t;

//  Error codes of the codec. 0 is success.
typedef enum {
    MW_OK = 0,
    MW_ERR_EMPTY,      //  empty body
    MW_ERR_TOO_LARGE,  //  body above MW_MAX_BODY
    MW_ERR_MALFORMED,  //  not valid msgpack, or truncated
    MW_ERR_TOO_DEEP,   //  nesting above MW_MAX_DEPTH
    MW_ERR_NOT_MAP,    //  body is not a map
    MW_ERR_KEY,        //  a key that is not a string, too long, repeated, reserved, or
                       //  more than MW_MAX_EXTRA custom keys
    MW_ERR_FIELD_TYPE, //  a known key with the wrong msgpack type
    MW_ERR_MISSING,    //  a required key is missing (decode, and encode)
    MW_ERR_VERSION,    //  v is not MW_PROTOCOL_VERSION
    MW_ERR_TYPE_NAME,  //  type empty, too long, not printable ASCII, or starts with '$'
    MW_ERR_TOPIC,      //  topic frame differs from the type key
    MW_ERR_TRAILING,   //  bytes after the map
    MW_ERR_NOMEM,      //  out of memory
    MW_ERR_COUNT
} mw_err_t;

//  Return a stable short name for an error code ("too_large"), usable as a
//  metric label; "unknown" for a code out of range.
const char *
    mw_err_name (int code);

//  Return the type name of a known type ("task_start"); "" for CUSTOM.
const char *
    mw_type_name (mw_type_t kind);

//  Return the known type for a name of len bytes, or MW_TYPE_CUSTOM.
mw_type_t
    mw_type_from_name (const char *name, size_t len);

//  Return the wire name of a string key ("validator_ip").
const char *
    mw_str_key_name (mw_str_key_t key);

//  Return the truncation limit of a string key (MW_MAX_STR, or the smaller
//  limit of task_id and miner).
size_t
    mw_str_key_limit (mw_str_key_t key);

//  Check that name is a valid type name (1..MW_MAX_TYPE bytes of printable
//  ASCII without spaces, not starting with '$'). Return 0 or -1.
int
    mw_type_name_valid (const char *name, size_t len);

//  Reset an event to empty with the given known type. Keeps no storage:
//  call mw_event_release first on a decoded event.
void
    mw_event_init (mw_event_t *self, mw_type_t kind);

//  Reset an event to empty with any type name (a known name gives its
//  known kind). Return 0, or -1 if the name is not a valid type name.
int
    mw_event_init_named (mw_event_t *self, const char *type);

//  Set a string key to a NUL-terminated string the caller keeps alive (NULL
//  clears it). The value is truncated at encode time, not here.
void
    mw_event_set_str (mw_event_t *self, mw_str_key_t key, const char *value);

//  Free what a decoded event owns and reset it to empty. Safe on an event
//  that owns nothing.
void
    mw_event_release (mw_event_t *self);

//  Copy src into dst so that dst owns all its strings and extras (a deep
//  copy; kv of src are encoded into dst's extras). dst must be empty or
//  released. Return 0, or -1 on allocation failure or invalid kv.
int
    mw_event_copy (mw_event_t *dst, const mw_event_t *src);

//  Encode an event as a msgpack body into out (cap bytes). Strings over
//  their limit are cut at a UTF-8 boundary and counted in the body's
//  `truncated` key; *truncated_p (if not NULL) gets the count cut here.
//  Writes the id and broker_ts keys only if their has bits are set. Return MW_OK and the length
//  in *len_p, or MW_ERR_TOO_LARGE if the body would exceed cap or
//  MW_MAX_BODY, or MW_ERR_KEY / MW_ERR_FIELD_TYPE for a bad kv (a header key
//  such as `seq`, a repeated key, or a known key of the wrong type).
int
    mw_event_encode (const mw_event_t *self, uint8_t *out, size_t cap, size_t *len_p,
                     uint32_t *truncated_p);

//  Decode one event from a topic frame (may be NULL: then the type key alone
//  names the type) and a body frame. On success return MW_OK and fill self
//  (which must be empty or released; it then owns a copy of the data). On
//  failure return an mw_err_t, write a one-line message to errbuf (if not
//  NULL) saying what was wrong where, and leave self empty.
int
    mw_event_decode (mw_event_t *self, const void *topic, size_t topic_len, const void *body,
                     size_t body_len, char *errbuf, size_t errbuf_size);

//  One msgpack object header, as mw_msgpack_read gives it: ptr/len are the
//  payload of str, bin and ext (ext without its type byte), len is the
//  element count of an array or a map. A signed int that is >= 0 reads as
//  UINT; d holds a float32 or float64 (tag tells which).
typedef enum {
    MW_MP_NIL,
    MW_MP_BOOL,
    MW_MP_UINT,
    MW_MP_INT,
    MW_MP_FLOAT32,
    MW_MP_FLOAT64,
    MW_MP_STR,
    MW_MP_BIN,
    MW_MP_EXT,
    MW_MP_ARRAY,
    MW_MP_MAP
} mw_mp_tag_t;

typedef struct {
    mw_mp_tag_t tag;
    bool b;
    uint64_t u;
    int64_t i;
    double d;
    const uint8_t *ptr;
    uint32_t len;
} mw_mp_obj_t;

//  Read one msgpack object header at *pp (and the payload of str, bin and
//  ext) and advance *pp past it; the decoder's own reader, for code that
//  walks msgpack itself (carried custom values, snapshots). Every length
//  is checked against end, and a container's count against the bytes
//  left. Return 0, or -1 if the bytes are invalid or truncated (*pp is
//  then unchanged).
int
    mw_msgpack_read (const uint8_t **pp, const uint8_t *end, mw_mp_obj_t *obj);

//  Walk one msgpack object at buf without building it: every declared
//  length is checked against the bytes left and nesting is bounded by
//  max_depth. Return MW_OK and its encoded size in *size_p, or
//  MW_ERR_MALFORMED / MW_ERR_TOO_DEEP. Use it before handing a frame to
//  msgpack-c, which preallocates from declared counts.
int
    mw_msgpack_check (const uint8_t *buf, size_t len, int max_depth, size_t *size_p);

#ifdef __cplusplus
}
#endif

#endif
