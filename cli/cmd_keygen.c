/*  cmd_keygen.c - `minerwatch keygen [--out PATH]`: a CURVE key pair.

    Writes the pair the way czmq's zcert_save does, which is what the
    broker (--curve-secret, --curve-clients) and the clients
    (--curve-server-key, --curve-client-cert) read:

      PATH         the public certificate: give it to the other side
      PATH_secret  the key pair (public + secret): keep it private

    Both are ZPL text files (czmq's certificate format). The secret file is
    created with mode 0600 (the umask is tightened before czmq writes it, so
    it is never readable by others, not even for a moment); the public one
    is made 0644 afterwards.
*/
#include "mw_cli.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_NAME        "keygen"
#define S_DEFAULT_OUT "minerwatch.cert"

typedef struct {
    const char *out;
    const char *name;
    bool force;
} s_opts_t;

static const struct option s_options[] = {{"out", required_argument, NULL, 'o'},
                                          {"name", required_argument, NULL, 'n'},
                                          {"force", no_argument, NULL, 'f'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};

static void
s_help (FILE *out)
{
    fprintf (out,
             "Usage: minerwatch keygen [OPTIONS]\n"
             "\n"
             "Make a CURVE key pair (czmq certificate files) for a broker or a client:\n"
             "  PATH         the public certificate: hand it out (a client's goes in the\n"
             "               broker's --curve-clients directory; the broker's is the clients'\n"
             "               --curve-server-key)\n"
             "  PATH_secret  the key pair, mode 0600: keep it private (the broker's\n"
             "               --curve-secret, a client's --curve-client-cert)\n"
             "The public key is also printed, as the 40 characters of Z85 that\n"
             "--curve-server-key accepts.\n"
             "\n"
             "Options:\n"
             "  -o, --out PATH    where to write (default " S_DEFAULT_OUT ")\n"
             "  -n, --name TEXT   a name stored in the certificates' metadata (default: the\n"
             "                    host name)\n"
             "  -f, --force       overwrite existing files (default: refuse)\n"
             "  -h, --help        show this help and exit\n"
             "\n"
             "Example:\n"
             "  minerwatch keygen --out /etc/minerwatch/broker.cert\n"
             "  minerwatch-broker --curve-secret /etc/minerwatch/broker.cert_secret\n"
             "  minerwatch status --curve-server-key /etc/minerwatch/broker.cert\n");
}

static int
s_parse (s_opts_t *opts, int argc, char **argv)
{
    opts->out = S_DEFAULT_OUT;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long (argc, argv, ":o:n:fh", s_options, NULL)) != -1) {
        switch (c) {
            case 'o':
                if (!*optarg)
                    return mw_cli_usage (S_NAME, "invalid --out '': expected a file name");
                opts->out = optarg;
                break;
            case 'n':
                opts->name = optarg;
                break;
            case 'f':
                opts->force = true;
                break;
            case 'h':
                s_help (stdout);
                return -1;
            default:
                return mw_cli_bad_option (S_NAME, c, argv, s_options);
        }
    }
    if (optind < argc)
        return mw_cli_usage (S_NAME, "unexpected argument '%s' (use --out PATH)", argv[optind]);
    //  czmq builds "PATH_secret" in a 256-byte buffer.
    if (strlen (opts->out) > 240)
        return mw_cli_usage (S_NAME, "--out: path too long (at most 240 bytes)");
    return 0;
}

static int
s_run (int argc, char **argv)
{
    s_opts_t opts;
    memset (&opts, 0, sizeof (opts));
    int rc = s_parse (&opts, argc, argv);
    if (rc != 0)
        return rc < 0 ? MW_CLI_OK : rc;
    char secret[300];
    snprintf (secret, sizeof (secret), "%s_secret", opts.out);
    if (!opts.force) {
        const char *exists = access (opts.out, F_OK) == 0 ? opts.out
                             : access (secret, F_OK) == 0 ? secret
                                                          : NULL;
        if (exists) {
            fprintf (stderr,
                     "minerwatch %s: %s exists; not overwriting a key (use --force, or another "
                     "--out)\n",
                     S_NAME, exists);
            return MW_CLI_FAILED;
        }
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "minerwatch %s: cannot make a key pair\n", S_NAME);
        return MW_CLI_FAILED;
    }
    char host[256] = "";
    if (!opts.name && gethostname (host, sizeof (host) - 1) == 0)
        opts.name = host;
    if (opts.name && *opts.name)
        zcert_set_meta (cert, "name", "%s", opts.name);
    zcert_set_meta (cert, "created-by", "minerwatch keygen");
    char when[32];
    time_t now = time (NULL);
    struct tm tm;
    gmtime_r (&now, &tm);
    strftime (when, sizeof (when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    zcert_set_meta (cert, "created", "%s", when);

    mode_t old_mask = umask (077);
    int saved = zcert_save (cert, opts.out);
    int saved_errno = errno;
    umask (old_mask);
    rc = MW_CLI_OK;
    if (saved != 0) {
        fprintf (stderr, "minerwatch %s: cannot write %s and %s: %s\n", S_NAME, opts.out, secret,
                 strerror (saved_errno));
        unlink (secret);
        rc = MW_CLI_FAILED;
    }
    else if (chmod (opts.out, 0644) != 0) {
        fprintf (stderr, "minerwatch %s: cannot make %s readable: %s\n", S_NAME, opts.out,
                 strerror (errno));
        rc = MW_CLI_FAILED;
    }
    else {
        printf ("public key:  %s\n", zcert_public_txt (cert));
        printf ("wrote %s (public: give it to the other side)\n", opts.out);
        printf ("wrote %s (secret, mode 0600: keep it private)\n", secret);
    }
    zcert_destroy (&cert);
    return rc;
}

const mw_cli_command_t mw_cmd_keygen = {"keygen", "make a CURVE key pair (certificate files)",
                                        s_run, s_help};
