/*  mw_dashboard.h - the dashboard page's files, embedded at build time.

    gateway/dashboard/ holds the page (index.html), its script (app.js)
    and its style (app.css); embed.cmake turns them into C arrays when the
    gateway is built, so the binary serves them with no file on disk and
    no external asset.
*/
#ifndef MW_DASHBOARD_H_INCLUDED
#define MW_DASHBOARD_H_INCLUDED

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *path;          //  served at, e.g. "/api/dashboard/app.js"
    const char *content_type;  //  e.g. "text/javascript; charset=utf-8"
    const char *etag;          //  quoted, from a hash of the bytes
    const unsigned char *data; //  the bytes (NUL-terminated, not counted)
    size_t len;
} mw_dashboard_asset_t;

//  Return the embedded file served at path (exact match), or NULL if
//  there is none.
const mw_dashboard_asset_t *mw_dashboard_find (const char *path);

#ifdef __cplusplus
}
#endif

#endif
