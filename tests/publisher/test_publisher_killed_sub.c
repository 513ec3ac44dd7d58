/*  test_publisher_killed_sub.c - a subscriber dies mid-way (SIGKILL) while
    100k events are being published.

    Usage: test_publisher_killed_sub PYTHON killed_sub.py

    The subscriber is a real separate process (Debian's python3 with pyzmq)
    that reports the seq of every event it receives on a pipe. Once it has
    reported KILL_AFTER events we kill it with SIGKILL and go on publishing.

    What it proves:
    - the publisher never blocks: the 100k calls finish, with a subscriber
      that is slow (high-water mark reached: EAGAIN drops), then dead;
    - a call that returned -1 never delivered its event, and while the
      subscriber lived, every call that returned 0 arrived (in order);
    - received + dropped + lost_in_flight == total, where lost_in_flight
      (events accepted by libzmq but never read by the dead subscriber) is
      at most BOUND: the send high-water mark, the subscriber's receive
      high-water mark, what the kernel's socket buffers can hold on both
      sides, libzmq's batch buffers, and the publisher's subscription read
      interval (MW_DRAIN_EVERY in mw_publisher.c);
    - once the publisher has seen that nobody listens any more (the
      connection's loss, from its socket monitor, or the unsubscription),
      every call is dropped and counted: `dropped` covers everything after.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "mw_publisher.h"
#include "pub_test_util.h"

#define FLOOD 100000
//  Events the subscriber reports before we kill it. Below SNDHWM: what the
//  publisher already queued reaches the subscriber even when we stop
//  sending to wait for it (see the pause in the loop), so it always gets
//  there, however slow the machine (valgrind).
#define KILL_AFTER   500
#define SNDHWM       1000  //  the publisher's send high-water mark
#define CHILD_RCVHWM 100   //  killed_sub.py's receive high-water mark
#define CHILD_RCVBUF 65536 //  killed_sub.py's SO_RCVBUF; the kernel doubles it
#define PROMPT_BYTES 4000  //  big events: few of them fit in socket buffers
#define DRAIN_EVERY  256   //  MW_DRAIN_EVERY of mw_publisher.c
#define ZMQ_BATCH    8192  //  libzmq's in/out batch buffers (per side)

static const char *s_python;
static const char *s_script;

typedef struct {
    pid_t pid;
    int fd;         //  its stdout
    char line[256]; //  a partial line between reads
    size_t line_len;
    char endpoint[256];
    uint64_t *seqs; //  reported seqs, in order
    size_t count;
    bool eof;
} child_t;

static void
s_child_start (child_t *c)
{
    int fds[2];
    assert_int_equal (pipe (fds), 0);
    char hwm[16], buf[16];
    snprintf (hwm, sizeof (hwm), "%d", CHILD_RCVHWM);
    snprintf (buf, sizeof (buf), "%d", CHILD_RCVBUF);
    c->pid = fork ();
    assert_true (c->pid >= 0);
    if (c->pid == 0) {
        dup2 (fds[1], 1);
        close (fds[0]);
        close (fds[1]);
        execl (s_python, s_python, s_script, hwm, buf, (char *) NULL);
        _exit (127);
    }
    close (fds[1]);
    c->fd = fds[0];
    fcntl (c->fd, F_SETFL, fcntl (c->fd, F_GETFL) | O_NONBLOCK);
    c->seqs = (uint64_t *) calloc (FLOOD, sizeof (uint64_t));
    assert_non_null (c->seqs);
}

static void
s_child_line (child_t *c, const char *line)
{
    if (strncmp (line, "ENDPOINT ", 9) == 0)
        snprintf (c->endpoint, sizeof (c->endpoint), ">%s", line + 9);
    else if (c->count < FLOOD)
        c->seqs[c->count++] = strtoull (line, NULL, 10);
}

//  Read what the child wrote, waiting up to timeout_ms for something.
static void
s_child_read (child_t *c, int timeout_ms)
{
    struct pollfd pfd = {c->fd, POLLIN, 0};
    if (c->eof || poll (&pfd, 1, timeout_ms) <= 0)
        return;
    char buf[8192];
    while (true) {
        ssize_t n = read (c->fd, buf, sizeof (buf));
        if (n == 0)
            c->eof = true;
        if (n <= 0)
            return;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                c->line[c->line_len] = 0;
                s_child_line (c, c->line);
                c->line_len = 0;
            }
            else if (c->line_len < sizeof (c->line) - 1)
                c->line[c->line_len++] = buf[i];
        }
    }
}

static void
s_child_kill (child_t *c)
{
    kill (c->pid, SIGKILL);
    int status;
    while (waitpid (c->pid, &status, 0) < 0 && errno == EINTR)
        ;
    c->pid = 0;
}

//  The third number of a /proc/sys triple (the maximum), or fallback.
static long
s_proc_max (const char *path, long fallback)
{
    FILE *f = fopen (path, "r");
    long a, b, c;
    if (!f)
        return fallback;
    int n = fscanf (f, "%ld %ld %ld", &a, &b, &c);
    fclose (f);
    return n == 3 ? c : fallback;
}

static void
test_subscriber_killed_midway (void **state)
{
    (void) state;
    child_t child;
    memset (&child, 0, sizeof (child));
    s_child_start (&child);
    int64_t deadline = pt_now_ms () + 30000;
    while (!child.endpoint[0] && !child.eof && pt_now_ms () < deadline)
        s_child_read (&child, 100);
    assert_true (child.endpoint[0] != 0);

    mw_publisher_t *pub = mw_publisher_new_opts (child.endpoint, "killed-sub", SNDHWM, 0);
    assert_non_null (pub);
    assert_int_equal (mw_publisher_wait_ready (pub, 30000), 0);

    char *prompt = (char *) malloc (PROMPT_BYTES + 1);
    assert_non_null (prompt);
    memset (prompt, 'p', PROMPT_BYTES);
    prompt[PROMPT_BYTES] = 0;
    mw_event_t base;
    mw_event_init (&base, MW_TYPE_TASK_START);
    mw_event_set_str (&base, MW_K_TASK_ID, "task-killed-sub");
    mw_event_set_str (&base, MW_K_PROMPT, prompt);

    int *rc = (int *) calloc (FLOOD, sizeof (int));
    uint64_t *seq = (uint64_t *) calloc (FLOOD, sizeof (uint64_t));
    assert_non_null (rc);
    assert_non_null (seq);
    long killed_at = -1;  //  calls made before the kill
    long noticed_at = -1; //  calls made before the publisher saw nobody listens
    for (long i = 0; i < FLOOD; i++) {
        mw_event_t ev = base;
        rc[i] = mw_publisher_send_event (pub, &ev);
        seq[i] = ev.seq;
        if (killed_at < 0 && i % 64 == 63) {
            s_child_read (&child, 0);
            //  Past half-way without enough reports (a slow machine):
            //  wait for them, so the kill still happens mid-way.
            int64_t wait_until = pt_now_ms () + 30000;
            while (i + 1 >= FLOOD / 2 && child.count < KILL_AFTER && !child.eof &&
                   pt_now_ms () < wait_until)
                s_child_read (&child, 100);
            if (child.count >= KILL_AFTER) {
                s_child_kill (&child);
                killed_at = i + 1;
            }
        }
        else if (killed_at >= 0 && noticed_at < 0 && i % 64 == 63 &&
                 mw_publisher_wait_ready (pub, 0) == -1)
            noticed_at = i + 1;
    }
    if (killed_at < 0)
        print_message ("subscriber reported %zu events (eof %d) by the end; sent %llu\n",
                       child.count, (int) child.eof, (unsigned long long) mw_publisher_sent (pub));
    //  Killed, and no later than the first check past half-way.
    assert_true (killed_at > 0 && killed_at <= FLOOD / 2 + 64);
    //  Publishing finished; if the loss was not seen yet (a very fast
    //  loop), it must be now, within a bounded wait.
    if (noticed_at < 0) {
        int64_t until = pt_now_ms () + 10000;
        while (mw_publisher_wait_ready (pub, 0) == 0 && pt_now_ms () < until)
            pt_sleep_ms (5);
        assert_int_equal (mw_publisher_wait_ready (pub, 0), -1);
        noticed_at = FLOOD;
    }
    //  Everything the dead child wrote before dying, to EOF.
    while (!child.eof)
        s_child_read (&child, 1000);

    //  Accounting: every call is sent or dropped, matching its return code.
    uint64_t sent = mw_publisher_sent (pub), dropped = mw_publisher_dropped (pub);
    uint64_t ok_calls = 0;
    for (long i = 0; i < FLOOD; i++) {
        assert_int_equal (seq[i], (uint64_t) i + 1);
        ok_calls += rc[i] == 0;
    }
    assert_int_equal (sent + dropped, FLOOD);
    assert_int_equal (ok_calls, sent);

    //  What arrived: in order, and only events whose call returned 0.
    uint64_t received = child.count;
    assert_true (received >= KILL_AFTER);
    uint64_t last = 0;
    for (size_t k = 0; k < child.count; k++) {
        uint64_t s = child.seqs[k];
        assert_true (s > last && s <= FLOOD);
        assert_int_equal (rc[s - 1], 0);
        last = s;
    }
    //  While the subscriber lived nothing sent was lost: every seq up to
    //  the last one it reported that was sent, arrived.
    uint64_t sent_upto_last = 0;
    for (uint64_t s = 1; s <= last; s++)
        sent_upto_last += rc[s - 1] == 0;
    assert_int_equal (sent_upto_last, received);

    //  Lost in flight: sent after the last event the subscriber reported.
    uint64_t lost = sent - received;
    long wmem = s_proc_max ("/proc/sys/net/ipv4/tcp_wmem", 16L << 20);
    size_t body_len = 0;
    uint8_t *buf = (uint8_t *) malloc (MW_MAX_BODY);
    assert_non_null (buf);
    mw_event_t sized = base;
    sized.str[MW_K_MINER].ptr = "killed-sub";
    sized.str[MW_K_MINER].len = 10;
    assert_int_equal (mw_event_encode (&sized, buf, MW_MAX_BODY, &body_len, NULL), MW_OK);
    uint64_t event_bytes = strlen ("task_start") + body_len;
    uint64_t kernel_bytes = (uint64_t) wmem + 2 * CHILD_RCVBUF + 2 * ZMQ_BATCH;
    uint64_t bound = SNDHWM + CHILD_RCVHWM + (kernel_bytes + event_bytes - 1) / event_bytes +
                     2   //  a message being encoded / decoded by each engine
                     + 1 //  received by the child, killed before it reported
                     + DRAIN_EVERY;
    uint64_t sent_after_kill = 0;
    for (long i = killed_at; i < noticed_at; i++)
        sent_after_kill += rc[i] == 0;
    print_message ("killed after %ld calls; received %llu, dropped %llu, lost in flight %llu "
                   "(bound %llu), %llu sent after the kill, nobody listening seen after %ld "
                   "calls\n",
                   killed_at, (unsigned long long) received, (unsigned long long) dropped,
                   (unsigned long long) lost, (unsigned long long) bound,
                   (unsigned long long) sent_after_kill, noticed_at);
    assert_true (lost <= bound);
    assert_int_equal (received + dropped + lost, FLOOD);

    //  After the publisher saw that nobody listens, every call was dropped.
    for (long i = noticed_at; i < FLOOD; i++)
        assert_int_equal (rc[i], -1);
    //  Between the kill and that moment, at most the in-flight bound went out.
    assert_true (sent_after_kill <= bound);

    free (buf);
    free (rc);
    free (seq);
    free (prompt);
    free (child.seqs);
    close (child.fd);
    mw_publisher_destroy (&pub);
}

int
main (int argc, char **argv)
{
    if (argc != 3) {
        fprintf (stderr, "usage: %s PYTHON killed_sub.py\n", argv[0]);
        return 2;
    }
    s_python = argv[1];
    s_script = argv[2];
    //  A dead subscriber must show as EPIPE/RST inside libzmq, not kill us.
    signal (SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_subscriber_killed_midway),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
