/*  mw_httpparse.h - the gateway's parsing of request input: the query
    string, Last-Event-ID and the Authorization header.

    Pure: no sockets, no libwebsockets, no allocation. mw_http.c hands it
    the strings libwebsockets copied out of a request (every one hostile:
    any bytes, any length up to --max-header), and the fuzz targets in
    tests/fuzz feed it the same way. Every function bounds what it writes
    by the sizes below and answers a bad input with an error code and a
    message, never an abort.
*/
#ifndef MW_HTTPPARSE_H_INCLUDED
#define MW_HTTPPARSE_H_INCLUDED

#include "mw_event.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Limits of a request's parameters (mw_http.h has the same numbers for
//  the configuration: MW_HTTP_TYPES_MAX, MW_HTTP_SECRET_MAX).
#define MW_HTTPPARSE_TYPES_MAX  16  //  entries in ?types=
#define MW_HTTPPARSE_SECRET_MAX 256 //  bytes of a token or USER:PASS, with the NUL

//  The parameters of one request. Strings are NUL-terminated.
typedef struct {
    bool has_since, has_limit, has_last_id, has_token;
    uint64_t since, limit, last_id;
    char token[MW_HTTPPARSE_SECRET_MAX]; //  ?token= (cut to fit)
    //  SSE filters: ?types= prefixes, NUL-separated, type_count of them
    char types[MW_HTTPPARSE_TYPES_MAX * (MW_MAX_TYPE + 1)];
    int type_count;
    char miner[MW_MAX_MINER + 1];
    bool has_miner;
    char task_id[MW_MAX_TASK_ID + 1];
    bool has_task_id;
} mw_http_query_t;

//  Parse a decimal uint64: digits only, no sign, no blank, no overflow.
//  Return 0 and the value in *out, or -1 (*out unchanged).
int mw_http_parse_u64 (const char *s, uint64_t *out);

//  Reset a query to "no parameters".
void mw_http_query_init (mw_http_query_t *q);

//  Fold one query argument, "name=value" or "name" (as libwebsockets gives
//  them: one per '&', URL-decoded, NUL-terminated), into q. Known names:
//  since, limit, last_event_id (whole numbers), token, types (comma list of
//  printable type prefixes), miner, task_id; others are ignored (cache
//  busters). Return 0, or -1 with a one-line message for a 400 in msg (a
//  bad value, or a name given twice).
int mw_http_query_arg (mw_http_query_t *q, const char *arg, char *msg, size_t msg_size);

//  Parse a Last-Event-ID header value. Return 1 and the id, 0 if value is
//  empty, -1 if it is not a whole number.
int mw_http_last_event_id (const char *value, uint64_t *id);

//  Compare two secrets in time that depends on their lengths only. Return
//  true if they are equal.
bool mw_http_secret_equal (const char *a, size_t alen, const char *b, size_t blen);

//  Decode standard base64 (RFC 4648, '=' padding optional, no other bytes)
//  of len bytes into out (size bytes, NUL-terminated). Return the decoded
//  length, or -1 if the input is not base64 or does not fit.
int mw_http_base64_decode (const char *in, size_t len, char *out, size_t size);

//  Decide whether a request may pass. auth_token and basic_auth are the
//  gateway's secrets ("" = not configured; both "" lets everything pass);
//  query_token is ?token= (NULL if absent), header the Authorization
//  header (NULL if absent): "Bearer TOKEN" or "Basic base64(USER:PASS)",
//  scheme case-insensitive. Return true if one credential matches.
bool mw_http_authorized (const char *auth_token, const char *basic_auth, const char *query_token,
                         const char *header);

#ifdef __cplusplus
}
#endif

#endif
