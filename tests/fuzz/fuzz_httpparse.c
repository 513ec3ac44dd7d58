/*  fuzz_httpparse.c - libFuzzer target: the gateway's request parsing
    (mw_httpparse: the query string, Last-Event-ID, Authorization).

    Input: the query string ("a=1&b=2", split on '&' as libwebsockets
    splits it), then optionally '\n' and an Authorization header value.
    Checked against a gateway with a token and with basic auth: a request
    passes only with the exact secret.
*/
#include "mw_httpparse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#define S_TOKEN "s3cret-t0ken"
#define S_BASIC "admin:pa:ss"

static void
s_die (const char *what)
{
    fprintf (stderr, "fuzz_httpparse: %s\n", what);
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  NUL-terminated copies, as libwebsockets hands them over.
    char *text = (char *) malloc (size + 1);
    if (!text)
        return 0;
    memcpy (text, data, size);
    text[size] = 0;
    char *header = memchr (text, '\n', size);
    if (header)
        *header++ = 0;

    mw_http_query_t q;
    mw_http_query_init (&q);
    char msg[160];
    char *save = NULL;
    int bad = 0;
    for (char *arg = strtok_r (text, "&", &save); arg; arg = strtok_r (NULL, "&", &save)) {
        msg[0] = 0;
        if (mw_http_query_arg (&q, arg, msg, sizeof (msg)) != 0) {
            if (!msg[0])
                s_die ("a 400 without a message");
            bad = 1;
            break;
        }
        uint64_t id;
        mw_http_last_event_id (arg, &id);
    }
    if (!bad) {
        //  What was parsed is within its bounds and terminated.
        if (q.type_count < 0 || q.type_count > MW_HTTPPARSE_TYPES_MAX)
            s_die ("type count out of bounds");
        if (strlen (q.token) >= sizeof (q.token) || strlen (q.miner) > MW_MAX_MINER ||
            strlen (q.task_id) > MW_MAX_TASK_ID)
            s_die ("a string past its bound");
        size_t off = 0;
        for (int i = 0; i < q.type_count; i++) {
            size_t n = strlen (q.types + off);
            if (n == 0 || n > MW_MAX_TYPE)
                s_die ("a type prefix out of bounds");
            off += n + 1;
        }
    }
    const char *token = q.has_token ? q.token : NULL;
    bool tok = mw_http_authorized (S_TOKEN, "", token, header);
    bool basic = mw_http_authorized ("", S_BASIC, token, header);
    bool either = mw_http_authorized (S_TOKEN, S_BASIC, token, header);
    if (!mw_http_authorized ("", "", token, header))
        s_die ("no secret configured, yet refused");
    //  A Bearer header passes with the token between blanks (spaces, tabs).
    bool bearer_exact = false;
    if (header && strlen (header) > 7) {
        const char *t = header + 7 + strspn (header + 7, " \t");
        size_t len = strlen (t);
        while (len > 0 && (t[len - 1] == ' ' || t[len - 1] == '\t'))
            len--;
        bearer_exact = len == strlen (S_TOKEN) && !memcmp (t, S_TOKEN, len);
    }
    if (tok && !(token && !strcmp (token, S_TOKEN)) && !bearer_exact)
        s_die ("a token passed that is not the token");
    if (either != (tok || basic))
        s_die ("two secrets accept other than each alone");
    if (basic && header) {
        char plain[MW_HTTPPARSE_SECRET_MAX + 4];
        const char *b64 = header + 6;
        b64 += strspn (b64, " ");
        size_t len = strlen (b64);
        while (len && b64[len - 1] == ' ')
            len--;
        if (mw_http_base64_decode (b64, len, plain, sizeof (plain)) < 0 || strcmp (plain, S_BASIC))
            s_die ("basic credentials passed that are not the secret");
    }
    if (header) {
        char plain[64];
        int n = mw_http_base64_decode (header, strlen (header), plain, sizeof (plain));
        if (n >= (int) sizeof (plain))
            s_die ("base64 decoded past its buffer");
    }
    free (text);
    return 0;
}
