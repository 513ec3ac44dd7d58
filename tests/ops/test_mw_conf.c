/*  test_mw_conf.c - unit tests of the config file reader (broker/mw_conf).

    Real files in a temporary directory: the line syntax, errors with
    their line numbers (stop at the first, or report all), secret files
    (content, final newline, modes, sizes), booleans, the option names taken
    from a usage text, and "did you mean".
*/
#include "mw_conf.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

static char s_dir[] = "/tmp/mw-conf-test-XXXXXX";

//  Write text to NAME in the test directory with mode; return the path.
static const char *
s_file (const char *name, const char *text, size_t len, mode_t mode)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];
    snprintf (p, sizeof (path[0]), "%s/%s", s_dir, name);
    FILE *f = fopen (p, "w");
    assert_non_null (f);
    assert_int_equal (fwrite (text, 1, len, f), len);
    assert_int_equal (fclose (f), 0);
    assert_int_equal (chmod (p, mode), 0);
    return p;
}

//  Collects the settings: "key=value;" per line, with the line number.
typedef struct {
    char seen[2048];
    const char *refuse; //  a key to refuse
} s_sink_t;

static int
s_collect (void *arg, const char *key, const char *value, int line, char *errbuf,
           size_t errbuf_size)
{
    s_sink_t *sink = (s_sink_t *) arg;
    if (sink->refuse && !strcmp (key, sink->refuse)) {
        snprintf (errbuf, errbuf_size, "refused %s", key);
        return -1;
    }
    size_t len = strlen (sink->seen);
    snprintf (sink->seen + len, sizeof (sink->seen) - len, "%d:%s=%s;", line, key, value);
    return 0;
}

static void
test_syntax (void **state)
{
    const char text[] = "# a comment\n"
                        "\n"
                        "   \t\n"
                        "publish = @tcp://127.0.0.1:7711\n"
                        "  ingest=@tcp://*:1  \r\n"
                        "--quiet = true\n"
                        "prompt = \"  spaced value  \"\n"
                        "empty =\n"
                        "eq = a=b\n"
                        "last = no newline";
    const char *path = s_file ("syntax.conf", text, sizeof (text) - 1, 0644);
    s_sink_t sink = {"", NULL};
    char err[256] = "";
    assert_int_equal (mw_conf_read (path, s_collect, &sink, NULL, err, sizeof (err)), 0);
    assert_string_equal (sink.seen, "4:publish=@tcp://127.0.0.1:7711;5:ingest=@tcp://*:1;"
                                    "6:quiet=true;7:prompt=  spaced value  ;8:empty=;"
                                    "9:eq=a=b;10:last=no newline;");
}

static void
test_errors (void **state)
{
    const char text[] = "a = 1\n"
                        "no equals sign here\n"
                        "b = 2\n"
                        " = value\n"
                        "bad = 3\n"
                        "c = 4\n";
    const char *path = s_file ("errors.conf", text, sizeof (text) - 1, 0644);
    //  Stop at the first error, with FILE:LINE.
    s_sink_t sink = {"", "bad"};
    char err[512] = "";
    assert_int_equal (mw_conf_read (path, s_collect, &sink, NULL, err, sizeof (err)), -1);
    char want[512];
    snprintf (want, sizeof (want), "%s:2: expected 'key = value', got 'no equals sign here'", path);
    assert_string_equal (err, want);
    assert_string_equal (sink.seen, "1:a=1;");

    //  Report every error and go on.
    memset (&sink, 0, sizeof (sink));
    sink.refuse = "bad";
    char *report = NULL;
    size_t report_size = 0;
    FILE *out = open_memstream (&report, &report_size);
    assert_non_null (out);
    assert_int_equal (mw_conf_read (path, s_collect, &sink, out, err, sizeof (err)), 3);
    fclose (out);
    assert_string_equal (sink.seen, "1:a=1;3:b=2;6:c=4;");
    char expect[1024];
    snprintf (expect, sizeof (expect),
              "%s:2: expected 'key = value', got 'no equals sign here'\n"
              "%s:4: a setting without a key (expected 'key = value')\n"
              "%s:5: refused bad\n",
              path, path, path);
    assert_string_equal (report, expect);
    free (report);

    //  A missing file and a directory.
    assert_int_equal (
        mw_conf_read ("/nonexistent/x.conf", s_collect, &sink, NULL, err, sizeof (err)), -1);
    assert_non_null (strstr (err, "cannot read config file /nonexistent/x.conf"));
    assert_int_equal (mw_conf_read (s_dir, s_collect, &sink, NULL, err, sizeof (err)), -1);
    assert_non_null (strstr (err, "is a directory"));
}

static void
test_long_line (void **state)
{
    size_t len = MW_CONF_LINE_MAX * 3;
    char *text = malloc (len + 32);
    assert_non_null (text);
    memcpy (text, "k = ", 4);
    memset (text + 4, 'x', len - 4);
    memcpy (text + len, "\nok = 1\n", 8);
    const char *path = s_file ("long.conf", text, len + 8, 0644);
    free (text);
    s_sink_t sink = {"", NULL};
    char *report = NULL;
    size_t report_size = 0;
    FILE *out = open_memstream (&report, &report_size);
    char err[256];
    //  One error for the long line (not one per chunk), then line 2 is read.
    assert_int_equal (mw_conf_read (path, s_collect, &sink, out, err, sizeof (err)), 1);
    fclose (out);
    assert_non_null (strstr (report, ":1: line longer than"));
    assert_string_equal (sink.seen, "2:ok=1;");
    free (report);
}

static void
test_stream (void **state)
{
    //  From memory, with a NUL byte inside a line: that line is an error,
    //  the next ones are read with the right numbers.
    const char text[] = "a = 1\nb\0c = 2\nd = 3\n";
    FILE *in = fmemopen ((void *) text, sizeof (text) - 1, "r");
    assert_non_null (in);
    s_sink_t sink = {"", NULL};
    char *report = NULL;
    size_t report_size = 0;
    FILE *out = open_memstream (&report, &report_size);
    assert_non_null (out);
    char err[256];
    assert_int_equal (
        mw_conf_read_stream (in, "mem.conf", s_collect, &sink, out, err, sizeof (err)), 1);
    fclose (out);
    fclose (in);
    assert_string_equal (sink.seen, "1:a=1;3:d=3;");
    assert_string_equal (report, "mem.conf:2: a NUL byte in the line (not a text file?)\n");
    free (report);
}

static void
test_secret (void **state)
{
    char out[64];
    char err[512];
    const char *p = s_file ("token", "s3cret\n", 7, 0600);
    assert_int_equal (
        mw_conf_read_secret ("auth-token-file", p, out, sizeof (out), err, sizeof (err)), 0);
    assert_string_equal (out, "s3cret");
    p = s_file ("crlf", "user:pass\r\n", 11, 0640);
    assert_int_equal (mw_conf_read_secret ("k", p, out, sizeof (out), err, sizeof (err)), 0);
    assert_string_equal (out, "user:pass");
    p = s_file ("bare", "no-newline", 10, 0400);
    assert_int_equal (mw_conf_read_secret ("k", p, out, sizeof (out), err, sizeof (err)), 0);
    assert_string_equal (out, "no-newline");
    //  Spaces inside are part of the secret.
    p = s_file ("spaces", " a b \n", 6, 0600);
    assert_int_equal (mw_conf_read_secret ("k", p, out, sizeof (out), err, sizeof (err)), 0);
    assert_string_equal (out, " a b ");

    struct {
        const char *name;
        const char *text;
        size_t len;
        mode_t mode;
        const char *why;
    } bad[] = {
        {"open", "tok\n", 4, 0644, "open to other users (mode 0644)"},
        {"gwrite", "tok\n", 4, 0620, "writable by its group"},
        {"owrite", "tok\n", 4, 0602, "open to other users"},
        {"empty", "", 0, 0600, "is empty"},
        {"newline", "\n", 1, 0600, "is empty"},
        {"twolines", "a\nb\n", 4, 0600, "more than one line"},
        {"nul", "a\0b\n", 4, 0600, "more than one line (or a NUL byte)"},
        {"long", "0123456789012345678901234567890123456789012345678901234567890123456789\n", 71,
         0600, "too long (70 bytes, at most 63)"},
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        p = s_file (bad[i].name, bad[i].text, bad[i].len, bad[i].mode);
        memset (out, 'x', sizeof (out));
        assert_int_equal (mw_conf_read_secret ("k", p, out, sizeof (out), err, sizeof (err)), -1);
        if (!strstr (err, bad[i].why))
            fail_msg ("%s: '%s' lacks '%s'", bad[i].name, err, bad[i].why);
        assert_int_equal (strncmp (err, "--k: ", 5), 0);
    }
    //  Larger than any secret.
    char *big = malloc (MW_CONF_SECRET_MAX + 10);
    assert_non_null (big);
    memset (big, 'a', MW_CONF_SECRET_MAX + 10);
    p = s_file ("big", big, MW_CONF_SECRET_MAX + 10, 0600);
    free (big);
    assert_int_equal (mw_conf_read_secret ("k", p, out, sizeof (out), err, sizeof (err)), -1);
    assert_non_null (strstr (err, "not a secret file"));
    assert_int_equal (
        mw_conf_read_secret ("k", "/nonexistent/t", out, sizeof (out), err, sizeof (err)), -1);
    assert_non_null (strstr (err, "cannot read /nonexistent/t: No such file"));
    assert_int_equal (mw_conf_read_secret ("k", s_dir, out, sizeof (out), err, sizeof (err)), -1);
    assert_non_null (strstr (err, "not a regular file"));
    assert_int_equal (mw_conf_read_secret ("k", "", out, sizeof (out), err, sizeof (err)), -1);
    assert_int_equal (mw_conf_read_secret ("k", NULL, out, sizeof (out), err, sizeof (err)), -1);
}

static void
test_bool (void **state)
{
    const char *yes[] = {"true", "yes", "on", "1", NULL};
    const char *no[] = {"false", "no", "off", "0"};
    const char *neither[] = {"True", "maybe", "2", " yes", ""};
    bool b;
    for (size_t i = 0; i < 5; i++) {
        b = false;
        assert_int_equal (mw_conf_parse_bool (yes[i], &b), 0);
        assert_true (b);
    }
    for (size_t i = 0; i < 4; i++) {
        b = true;
        assert_int_equal (mw_conf_parse_bool (no[i], &b), 0);
        assert_false (b);
    }
    for (size_t i = 0; i < 5; i++)
        assert_int_equal (mw_conf_parse_bool (neither[i], &b), -1);
}

static void
s_usage_one (FILE *out)
{
    fprintf (out, "Usage: x [OPTIONS]\n"
                  "  --ingest EP             where; see also --publish\n"
                  "  --verbose, --quiet      logging\n"
                  "  --max-active-tasks N    (default 1)\n"
                  "  --help, --version, --config FILE\n"
                  "  not-a--flag and a-- nor --Upper nor --trailing- \n");
}

static void
s_usage_two (FILE *out)
{
    fprintf (out, "  --http HOST:PORT  (`--ingest` again)\n");
}

static void
test_names (void **state)
{
    char **names = mw_conf_names_from_usage (s_usage_one);
    assert_non_null (names);
    const char *want[] = {"ingest", "publish", "verbose", "quiet", "max-active-tasks", "trailing"};
    size_t n = 0;
    while (names[n])
        n++;
    assert_int_equal (n, sizeof (want) / sizeof (want[0]));
    for (size_t i = 0; i < n; i++)
        assert_string_equal (names[i], want[i]);
    names = mw_conf_names_add (names, s_usage_two);
    assert_non_null (names);
    assert_true (mw_conf_names_has (names, "http"));
    assert_false (mw_conf_names_has (names, "help"));
    assert_false (mw_conf_names_has (names, "config"));

    assert_string_equal (mw_conf_suggest (names, "ingst"), "ingest");
    assert_string_equal (mw_conf_suggest (names, "max-active-task"), "max-active-tasks");
    assert_string_equal (mw_conf_suggest (names, "max_active_tasks"), "max-active-tasks");
    assert_string_equal (mw_conf_suggest (names, "verbos"), "verbose");
    assert_string_equal (mw_conf_suggest (names, "htp"), "http");
    assert_string_equal (mw_conf_suggest (names, "max-active"), "max-active-tasks");
    assert_null (mw_conf_suggest (names, "frobnicate"));
    assert_null (mw_conf_suggest (names, ""));
    mw_conf_names_free (&names);
    assert_null (names);
    mw_conf_names_free (&names);
    assert_null (mw_conf_suggest (NULL, "x"));
}

static int
s_setup (void **state)
{
    return mkdtemp (s_dir) ? 0 : -1;
}

static int
s_teardown (void **state)
{
    char cmd[128];
    snprintf (cmd, sizeof (cmd), "rm -rf '%s'", s_dir);
    return system (cmd) == 0 ? 0 : -1;
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_syntax),    cmocka_unit_test (test_errors),
        cmocka_unit_test (test_long_line), cmocka_unit_test (test_stream),
        cmocka_unit_test (test_secret),    cmocka_unit_test (test_bool),
        cmocka_unit_test (test_names),
    };
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
