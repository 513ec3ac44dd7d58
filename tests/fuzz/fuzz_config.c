/*  fuzz_config.c - libFuzzer target: the config files of the daemons,
    read from a memfd.

    - The broker's (mw_broker_config_load, which hands every line to
      mw_broker_config_set), then the whole configuration checked. A file
      that loads must be stable: loading it twice gives the same
      configuration.
    - The same bytes as a gateway's file: the shared reader (mw_conf_read)
      in its reporting mode, every setting to mw_http_config_set, and every
      key it does not know to mw_conf_suggest (the "did you mean" of an
      unknown option).
*/
#define _GNU_SOURCE
#include "mw_broker.h"
#include "mw_conf.h"
#include "mw_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
s_die (const char *what)
{
    fprintf (stderr, "fuzz_config: %s\n", what);
    abort ();
}

static int s_fd = -1;

static int
s_load (const uint8_t *data, size_t size, mw_broker_config_t *cfg, char *err, size_t err_size)
{
    if (ftruncate (s_fd, 0) != 0 || pwrite (s_fd, data, size, 0) != (ssize_t) size)
        s_die ("cannot write the memfd");
    char path[64];
    snprintf (path, sizeof (path), "/proc/self/fd/%d", s_fd);
    mw_broker_config_default (cfg);
    return mw_broker_config_load (cfg, path, err, err_size);
}

static char **s_names;

//  One gateway setting; an unknown key gets a suggestion, as the daemons
//  give one.
static int
s_http_one (void *arg, const char *key, const char *value, int line, char *errbuf,
            size_t errbuf_size)
{
    mw_http_config_t *cfg = (mw_http_config_t *) arg;
    if (!mw_http_config_known (key, NULL)) {
        const char *near = mw_conf_suggest (s_names, key);
        snprintf (errbuf, errbuf_size, "unknown option '%s'%s%s", key,
                  near ? ", did you mean " : "", near ? near : "");
        return -1;
    }
    return mw_http_config_set (cfg, key, value, errbuf, errbuf_size);
}

static void
s_free_names (void)
{
    mw_conf_names_free (&s_names);
}

static void
s_gateway (void)
{
    if (!s_names) {
        s_names = mw_conf_names_from_usage (mw_http_config_usage);
        s_names = mw_conf_names_add (s_names, mw_broker_config_usage);
        if (!s_names)
            s_die ("out of memory");
        atexit (s_free_names);
    }
    char path[64];
    snprintf (path, sizeof (path), "/proc/self/fd/%d", s_fd);
    static mw_http_config_t cfg;
    mw_http_config_default (&cfg);
    FILE *report = fopen ("/dev/null", "w");
    if (!report)
        s_die ("cannot open /dev/null");
    char err[512];
    int errors = mw_conf_read (path, s_http_one, &cfg, report, err, sizeof (err));
    fclose (report);
    if (errors == 0)
        mw_http_config_check (&cfg, err, sizeof (err));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (s_fd < 0) {
        s_fd = memfd_create ("fuzz-config", MFD_CLOEXEC);
        if (s_fd < 0)
            s_die ("memfd_create failed");
    }
    static mw_broker_config_t a, b;
    char err[512];
    err[0] = 0;
    if (s_load (data, size, &a, err, sizeof (err)) != 0) {
        if (!err[0])
            s_die ("a refusal without a message");
        s_gateway ();
        return 0;
    }
    if (s_load (data, size, &b, err, sizeof (err)) != 0)
        s_die ("a file loads once, not twice");
    if (memcmp (&a, &b, sizeof (a)) != 0)
        s_die ("two loads of one file differ");
    mw_broker_config_check (&a, err, sizeof (err));
    s_gateway ();
    return 0;
}
