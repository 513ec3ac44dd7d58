/*  mw_conf.h - the config file format of every minerwatch daemon
    (minerwatch-broker, minerwatch-gateway, `minerwatch up`).

    One `key = value` setting per line; keys are the long flag names
    without the dashes; '#' starts a comment line; blank lines are ignored;
    spaces around the key and the value are dropped, and a value in double
    quotes loses them. A daemon reads the file first (--config FILE) and
    the command-line flags then override what it set. Secrets can be kept
    in files of their own (auth-token-file, basic-auth-file): the file's
    content, less a final newline, is the secret; a secret file that other
    users can read is refused.

    The reader is here once; each daemon hands it a function that applies
    one setting to its own configuration.
*/
#ifndef MW_CONF_H_INCLUDED
#define MW_CONF_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MW_CONF_LINE_MAX   4096 //  bytes of one line, newline included
#define MW_CONF_FILE_MAX   (1024 * 1024) //  bytes of one config file
#define MW_CONF_SECRET_MAX 4096 //  bytes of a secret file

//  Apply one setting read at line `line`. Return 0, or -1 with a message in
//  errbuf (without the file and line: the reader puts them in front).
typedef int (mw_conf_fn) (void *arg, const char *key, const char *value, int line, char *errbuf,
                          size_t errbuf_size);

//  Read the config file at path and call fn for each setting, in order.
//  Without report: stop at the first error and return -1 with
//  "PATH:LINE: message" in errbuf. With report: print each error as
//  "PATH:LINE: message" on report, go on, and return the number of errors.
//  A file that cannot be opened or read is -1 with the reason in errbuf,
//  either way. Return 0 when every line was applied.
int mw_conf_read (const char *path, mw_conf_fn *fn, void *arg, FILE *report, char *errbuf,
                  size_t errbuf_size);

//  The same, from an open stream (path only names it in messages): for
//  fuzzing and for text that is not in a file. The stream is not closed.
int mw_conf_read_stream (FILE *file, const char *path, mw_conf_fn *fn, void *arg, FILE *report,
                         char *errbuf, size_t errbuf_size);

//  Read a secret from the file at path into out: its whole content less one
//  final "\n" or "\r\n". Refuse (-1, with a message in errbuf naming key
//  and path) a file that cannot be read, is not a regular file, is empty,
//  holds a NUL or a line break inside, does not fit in out, or that group
//  members can write or other users can read or write (mode & 0027: make
//  it `chmod 600` or 640). Return 0.
int mw_conf_read_secret (const char *key, const char *path, char *out, size_t size, char *errbuf,
                         size_t errbuf_size);

//  Parse a boolean value: true/yes/on/1 or false/no/off/0; NULL (a flag
//  given without a value) is true. An empty value ("quiet =" in a file,
//  "--quiet=" on the command line) is neither: it is more likely a value
//  left out by mistake than a yes. Return 0, or -1.
int mw_conf_parse_bool (const char *value, bool *out);

//  Collect the option names a usage function prints ("--name" at the
//  start of a help line's words), in order, without duplicates, leaving out
//  "help", "version" and "config". Return a NULL-terminated array to free
//  with mw_conf_names_free, or NULL if memory ran out.
char **mw_conf_names_from_usage (void (*usage) (FILE *out));

//  Append the names of a second usage function to names (which may be
//  NULL). Return the new array, or NULL if memory ran out (names is freed).
char **mw_conf_names_add (char **names, void (*usage) (FILE *out));

//  Return true if names holds key.
bool mw_conf_names_has (char *const *names, const char *key);

//  Free a name array; null the pointer.
void mw_conf_names_free (char ***names_p);

//  Return the name of names nearest to key when it is close enough to be a
//  typo (edit distance at most 2, or at most a third of the key's length
//  for longer keys), or NULL.
const char *mw_conf_suggest (char *const *names, const char *key);

#ifdef __cplusplus
}
#endif

#endif
