#!/usr/bin/python3
"""End-to-end tests of the `minerwatch` command line, with real processes on
loopback.

Usage: cli_test.py MINERWATCH_BINARY CASE

Run with Debian's /usr/bin/python3, which has python3-zmq and
python3-msgpack: they are the independent peer that sends hand-made (and
malformed) messages to `minerwatch tail`. Every wait is bounded; nothing
asserts how fast anything is.
"""
import collections
import json
import os
import re
import socket
import subprocess
import sys
import time

import msgpack
import zmq

MW = None  # the minerwatch binary, from argv
TIMEOUT = 40  # seconds any one process may take


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def free_port():
    """A TCP port on loopback that was free a moment ago (probe with a bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args, timeout=TIMEOUT):
    return subprocess.run([MW, *args], capture_output=True, text=True, timeout=timeout)


def start(*args):
    return subprocess.Popen([MW, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=TIMEOUT):
    """Wait for a started process; return (rc, stdout bytes, stderr text)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        fail("process did not end in %d s; stderr: %s" % (timeout, err.decode(errors="replace")))
    return proc.returncode, out, err.decode(errors="replace")


def ndjson(out):
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


class Peer:
    """A ZeroMQ XPUB socket playing publisher: it learns what `tail`
    subscribed to, so the test knows when tail listens, and can send any
    frames, valid or not."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.port = free_port()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 2000)
        self.sock.bind("tcp://127.0.0.1:%d" % self.port)
        self.seq = collections.Counter()

    def wait_subscriptions(self, count, timeout=15):
        subs = set()
        deadline = time.monotonic() + timeout
        while len(subs) < count:
            left = deadline - time.monotonic()
            check(left > 0, "tail did not subscribe in %d s (got %r)" % (timeout, subs))
            if self.sock.poll(int(left * 1000)):
                msg = self.sock.recv()
                if msg[:1] == b"\x01":
                    subs.add(msg[1:])
        return subs

    def event(self, type_, miner="m1", sid=1001, **keys):
        self.seq[sid] += 1
        body = {"v": 1, "type": type_, "ts": int(time.time() * 1e6), "miner": miner,
                "sid": sid, "seq": self.seq[sid]}
        body.update(keys)
        self.sock.send_multipart([type_.encode(), msgpack.packb(body)])

    def frames(self, *frames):
        self.sock.send_multipart(list(frames))

    def close(self):
        self.sock.close()
        self.ctx.term()


# ---------------------------------------------------------------------------
# Cases

COMMAND_OPTIONS = {
    "tail": ["--json", "--color", "--type", "--miner", "--task", "--count", "--timeout", "--help"],
    "publish": ["--endpoint", "--type", "--miner", "--wait", "--verbose", "--help"],
    "simulate": ["--endpoint", "--rate", "--duration", "--miners", "--validators", "--seed",
                 "--wait", "--quiet", "--help"],
    "bench": ["--endpoint", "--updates", "--events", "--rate", "--rounds", "--no-raw", "--json",
              "--quiet", "--curve-server-key", "--help"],
}


def case_help():
    r = run("--help")
    check(r.returncode == 0, "--help exit %d" % r.returncode)
    for cmd in COMMAND_OPTIONS:
        check(cmd in r.stdout, "--help does not list %s" % cmd)
    r = run("help")
    check(r.returncode == 0 and "Commands:" in r.stdout, "help: %r" % r.stdout)
    r = run("--version")
    check(r.returncode == 0 and re.match(r"minerwatch \d+\.\d+\.\d+ ", r.stdout),
          "--version: %r" % r.stdout)
    for cmd, options in COMMAND_OPTIONS.items():
        r = run(cmd, "--help")
        check(r.returncode == 0, "%s --help exit %d" % (cmd, r.returncode))
        check(r.stdout.startswith("Usage: minerwatch %s" % cmd), "%s --help: %r" % (cmd, r.stdout))
        for opt in options:
            check(opt in r.stdout, "%s --help does not mention %s" % (cmd, opt))
        check("default" in r.stdout and "Example" in r.stdout,
              "%s --help lacks defaults or an example" % cmd)
        check(r.stderr == "", "%s --help wrote to stderr: %r" % (cmd, r.stderr))
        r2 = run("help", cmd)
        check(r2.returncode == 0 and r2.stdout == r.stdout, "help %s differs from --help" % cmd)
    print("help: ok")


BAD_USAGE = [
    (["bogus"], "minerwatch: unknown command 'bogus'; see 'minerwatch --help'"),
    (["--bogus"], "minerwatch: unknown option '--bogus'"),
    (["help", "bogus"], "unknown command 'bogus'"),
    (["tail", "--foo", "@tcp://127.0.0.1:1"],
     "minerwatch tail: unknown option '--foo'; see 'minerwatch tail --help'"),
    (["tail", "-x", "@tcp://127.0.0.1:1"], "minerwatch tail: unknown option '-x'"),
    (["tail", "--json=yes", "@tcp://127.0.0.1:1"], "option '--json' takes no value"),
    (["tail", "@tcp://127.0.0.1:1", "--count"], "option '--count' needs a value"),
    (["tail", "--count", "many", "@tcp://127.0.0.1:1"], "invalid --count 'many'"),
    (["tail", "--timeout", "-1", "@tcp://127.0.0.1:1"], "invalid --timeout '-1'"),
    (["tail", "--color=sometimes", "@tcp://127.0.0.1:1"], "invalid --color 'sometimes'"),
    (["tail", "--type", "$hb", "@tcp://127.0.0.1:1"], "invalid --type '$hb'"),
    (["tail"], "missing ENDPOINT"),
    (["tail", "nowhere"], "invalid ENDPOINT 'nowhere'"),
    (["tail", "@tcp://127.0.0.1:1", "extra"], "unexpected argument 'extra'"),
    (["publish", "--bogus"], "minerwatch publish: unknown option '--bogus'"),
    (["publish", "task_id=1"], "missing --type"),
    (["publish", "--type", "$x"], "invalid --type '$x'"),
    (["publish", "--type", "task_start"], "a task_start event needs task_id=..."),
    (["publish", "--type", "validator_connection"], "needs validator_ip=... or validator_hotkey"),
    (["publish", "--type", "x", "timeout_ms=soon"], "value of 'timeout_ms' is 'soon'"),
    (["publish", "--type", "x", "timeout_ms=-5"], "value of 'timeout_ms' is '-5'"),
    (["publish", "--type", "x", "success=yes"], "expected true or false"),
    (["publish", "--type", "x", "response_time=fast"], "expected a finite number"),
    (["publish", "--type", "x", "n:int=1.5"], "value of 'n' is '1.5': expected a whole number"),
    (["publish", "--type", "x", "n:uint=-1"], "value of 'n' is '-1'"),
    (["publish", "--type", "x", "n:float=abc"], "value of 'n' is 'abc'"),
    (["publish", "--type", "x", "n:bool=1"], "expected true or false"),
    (["publish", "--type", "x", "n=99999999999999999999"], "out of range"),
    (["publish", "--type", "x", "n:wat=1"], "unknown type ':wat' on key 'n'"),
    (["publish", "--type", "x", "j:json={"], "value of 'j' is not JSON"),
    (["publish", "--type", "x", "seq=5"], "key 'seq' cannot be given"),
    (["publish", "--type", "x", "miner=me"], "use --miner"),
    (["publish", "--type", "x", "prompt:int=5"], "key 'prompt' is a str in the protocol"),
    (["publish", "--type", "x", "a=1", "a=2"], "key 'a' given twice"),
    (["publish", "--type", "x", "novalue"], "'novalue' is not KEY=VALUE"),
    (["publish", "--type", "x", "--wait", "soon"], "invalid --wait 'soon'"),
    (["publish", "--type", "x", "--endpoint", "localhost:7710"], "invalid --endpoint"),
    (["simulate", "--rate", "0"], "invalid --rate '0'"),
    (["simulate", "--duration", "-1"], "invalid --duration '-1'"),
    (["simulate", "--miners", "0"], "invalid --miners '0'"),
    (["simulate", "--validators", "x"], "invalid --validators 'x'"),
    (["simulate", "--seed", "-3"], "invalid --seed '-3'"),
    (["simulate", "--frobnicate"], "minerwatch simulate: unknown option '--frobnicate'"),
    (["simulate", "extra"], "unexpected argument 'extra'"),
    (["bench", "--events", "0"], "invalid --events '0'"),
    (["bench", "--events", "600000"], "invalid --events '600000'"),
    (["bench", "--rate", "-1"], "invalid --rate '-1'"),
    (["bench", "--rounds", "x"], "invalid --rounds 'x'"),
    (["bench", "--endpoint", ">tcp://127.0.0.1:1"], "--endpoint needs --updates"),
    (["bench", "--updates", ">tcp://127.0.0.1:1"], "--updates needs --endpoint"),
    (["bench", "--endpoint", "nowhere", "--updates", ">tcp://127.0.0.1:1"], "invalid --endpoint"),
    (["bench", "--curve-server-key", "x" * 40], "CURVE options need --endpoint"),
    (["bench", "extra"], "unexpected argument 'extra'"),
]


def case_bad_usage():
    for args, want in BAD_USAGE:
        r = run(*args)
        check(r.returncode == 2, "%r: exit %d, expected 2 (stderr %r)" % (args, r.returncode,
                                                                           r.stderr))
        check(want in r.stderr, "%r: stderr %r lacks %r" % (args, r.stderr, want))
        check(r.stdout == "", "%r: wrote to stdout: %r" % (args, r.stdout))
        if args[0] in COMMAND_OPTIONS and len(args) > 1:
            check("see 'minerwatch %s --help'" % args[0] in r.stderr,
                  "%r: no pointer to --help in %r" % (args, r.stderr))
    print("bad usage: %d cases ok" % len(BAD_USAGE))


def case_publish_no_subscriber():
    port = free_port()
    ep = ">tcp://127.0.0.1:%d" % port
    r = run("publish", "--endpoint", ep, "--wait", "0.5", "--type", "ping")
    check(r.returncode == 1, "exit %d, expected 1" % r.returncode)
    want = "no subscriber on %s after 0.5 s: is the broker or `minerwatch tail` running?" % ep
    check(want in r.stderr, "stderr %r lacks %r" % (r.stderr, want))
    print("publish without subscriber: ok")


def case_round_trip():
    port = free_port()
    tail = start("tail", "--json", "--count", "2", "--timeout", "30", "@tcp://127.0.0.1:%d" % port)
    ep = ">tcp://127.0.0.1:%d" % port
    r = run("publish", "--endpoint", ep, "--wait", "20", "--type", "task_start",
            "--miner", "rig-7", "task_id=t-1", "prompt=123", "url=https://example.com/login",
            "validator_ip=45.22.240.79", "timeout_ms=30000", "custom_int=-5", "custom_uint=7",
            "custom_float=1.5", "flag=true", "nothing=null", "label=hello", "forced:str=007",
            "whole:float=3", "neg:int=-9", "wide:uint=18446744073709551615",
            'details:json={"a":[1,"x",null],"b":{"c":true}}', "xss=<script>&",
            "text=line1\nline2", "empty=")
    check(r.returncode == 0, "publish exit %d: %s" % (r.returncode, r.stderr))
    check(r.stdout == "", "publish without -v printed %r" % r.stdout)
    r = run("publish", "--endpoint", ep, "--wait", "20", "--type", "task_complete", "-v",
            "--miner", "rig-7", "task_id=t-1", "success=true", "response_time=5",
            "action_count=12")
    check(r.returncode == 0, "publish exit %d: %s" % (r.returncode, r.stderr))
    check(r.stdout.startswith("sent task_complete"), "publish -v printed %r" % r.stdout)
    rc, out, err = finish(tail)
    check(rc == 0, "tail exit %d: %s" % (rc, err))
    check("2 events shown" in err and "0 malformed" in err, "tail summary: %r" % err)
    raw = out.decode()
    check("<" not in raw and "&" not in raw, "HTML specials not escaped: %r" % raw)
    check("\\u003cscript\\u003e\\u0026" in raw, "expected escaped <script>&: %r" % raw)
    start_ev, complete = ndjson(out)

    expect = {"v": 1, "type": "task_start", "miner": "rig-7", "seq": 1, "task_id": "t-1",
              "prompt": "123", "url": "https://example.com/login",
              "validator_ip": "45.22.240.79", "timeout_ms": 30000, "custom_int": -5,
              "custom_uint": 7, "custom_float": 1.5, "flag": True, "nothing": None,
              "label": "hello", "forced": "007", "whole": 3.0, "neg": -9,
              "wide": 18446744073709551615, "details": {"a": [1, "x", None], "b": {"c": True}},
              "xss": "<script>&", "text": "line1\nline2", "empty": ""}
    for key, want in expect.items():
        got = start_ev.get(key, "<absent>")
        check(got == want and type(got) is type(want),
              "%s: got %r (%s), expected %r (%s)" % (key, got, type(got).__name__, want,
                                                     type(want).__name__))
    check(isinstance(start_ev["sid"], int), "sid is not a number")
    check(isinstance(start_ev["ts"], int), "ts is not a number of ms")
    check(abs(start_ev["ts"] / 1000 - time.time()) < 600, "ts is not ms since the epoch")
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start_ev["ts"] // 1000))
    check(start_ev["time"] == "%s.%03dZ" % (t, start_ev["ts"] % 1000),
          "time %r does not match ts %r" % (start_ev["time"], start_ev["ts"]))
    check("id" not in start_ev, "a publisher's event has no broker id")

    check(complete["type"] == "task_complete" and complete["success"] is True, repr(complete))
    check(complete["response_time"] == 5.0 and isinstance(complete["response_time"], float),
          "response_time=5 must stay a float: %r" % complete["response_time"])
    check(complete["action_count"] == 12, repr(complete))
    check(complete["sid"] != start_ev["sid"], "each publish is a new session")
    print("publish -> tail --json round trip: ok")


def run_filter(tail_args, subscriptions, send, want):
    """Start tail with filters against a Peer, send events, compare what tail
    shows (as (type, miner, task_id) tuples) with want."""
    peer = Peer()
    try:
        tail = start("tail", "--json", "--count", str(len(want)), "--timeout", "30", *tail_args,
                     "tcp://127.0.0.1:%d" % peer.port)  # no prefix: connects
        subs = peer.wait_subscriptions(len(subscriptions))
        check(subs == set(subscriptions),
              "tail subscribed to %r, expected %r" % (subs, subscriptions))
        send(peer)
        rc, out, err = finish(tail)
    finally:
        peer.close()
    check(rc == 0, "tail %r exit %d: %s" % (tail_args, rc, err))
    got = [(e["type"], e["miner"], e.get("task_id")) for e in ndjson(out)]
    check(got == want, "tail %r showed %r, expected %r" % (tail_args, got, want))
    return err


def send_mix(peer):
    peer.event("validator_connection", "m2", 2002, validator_ip="45.22.240.79")
    peer.frames(b"$heartbeat", b"broker alive")  # control topic: never shown
    peer.event("task_start", "m1", 1001, task_id="t1", prompt="Search for remote Python jobs")
    peer.event("cache_hit", "m1", 1001, task_id="t1", cache_type="prompt")
    peer.event("task_start", "m2", 2002, task_id="t2")
    peer.event("task_step", "m1", 1001, task_id="t1", step="navigate")
    peer.event("error", "m2", 2002, error_message="boom", task_id="t2")
    peer.event("task_custom", "m1", 1001, task_id="t2")
    peer.event("task_complete", "m2", 2002, task_id="t2", success=False, error="boom")


def case_filters():
    run_filter(["--type", "task_", "--type", "error"], [b"task_", b"error"], send_mix,
               [("task_start", "m1", "t1"), ("task_start", "m2", "t2"),
                ("task_step", "m1", "t1"), ("error", "m2", "t2"), ("task_custom", "m1", "t2"),
                ("task_complete", "m2", "t2")])
    err = run_filter(["--miner", "m2"], [b""], send_mix,
                     [("validator_connection", "m2", None), ("task_start", "m2", "t2"),
                      ("error", "m2", "t2"), ("task_complete", "m2", "t2")])
    check("4 filtered out" in err and "0 malformed" in err, "summary: %r" % err)
    run_filter(["--task", "t2"], [b""], send_mix,
               [("task_start", "m2", "t2"), ("error", "m2", "t2"), ("task_custom", "m1", "t2"),
                ("task_complete", "m2", "t2")])
    run_filter(["--miner", "m1", "--task", "t1", "-t", "task_"], [b"task_"], send_mix,
               [("task_start", "m1", "t1"), ("task_step", "m1", "t1")])
    print("filters --type/--miner/--task: ok")


def case_malformed():
    peer = Peer()
    try:
        tail = start("tail", "--json", "--count", "1", "--timeout", "30",
                     "tcp://127.0.0.1:%d" % peer.port)
        peer.wait_subscriptions(1)
        good = {"v": 1, "type": "task_start", "ts": 1700000000000000, "miner": "m1",
                "sid": 5, "seq": 1, "task_id": "t1"}
        bad_types = dict(good, ts="yesterday")
        no_task = {k: v for k, v in good.items() if k != "task_id"}
        # map16 header claiming 65535 pairs, then one pair.
        huge_map = b"\xde\xff\xff" + msgpack.packb("v") + msgpack.packb(1)
        # a good map whose task_id is a str32 claiming 4 GiB
        huge_str = (b"\x87" + b"".join(msgpack.packb(k) + msgpack.packb(v)
                                        for k, v in no_task.items())
                    + msgpack.packb("task_id") + b"\xdb\xff\xff\xff\xff" + b"abc")
        cases = [
            ([b"task_start"], "frames: 1 frame"),
            ([b"task_start", msgpack.packb(good), b"extra"], "frames: 3 frames"),
            ([b"task_start", b"\xc1\xff\x00"], "malformed:"),
            ([b"task_start", msgpack.packb([1, 2])], "not_map:"),
            ([b"task_start", msgpack.packb(bad_types)], "bad_type:"),
            ([b"task_start", msgpack.packb(no_task)], "missing:"),
            ([b"task_start", huge_map], "malformed:"),
            ([b"task_start", huge_str], "malformed:"),
            ([b"task_start", b""], "empty:"),
            ([b"task_step", msgpack.packb(good)], "topic:"),
            ([b"task_start", msgpack.packb(dict(good, v=2))], "version:"),
            ([b"task_start", msgpack.packb(good) + b"\x00"], "trailing:"),
            ([b"bad\x1b[2Jtopic", msgpack.packb(good)], "type_name:"),
            ([b"task_start", b"\x00" * (70 * 1024)], "too_large:"),
        ]
        for frames, _ in cases:
            peer.frames(*frames)
        peer.frames(b"task_start", msgpack.packb(dict(good, seq=2, prompt="after the bad ones")))
        rc, out, err = finish(tail)
    finally:
        peer.close()
    check(rc == 0, "tail exit %d: %s" % (rc, err))
    events = ndjson(out)
    check(len(events) == 1 and events[0]["prompt"] == "after the bad ones",
          "tail did not go on to the good event: %r" % events)
    lines = [l for l in err.splitlines() if l.startswith("minerwatch tail: malformed message")]
    check(len(lines) == len(cases), "%d malformed reports, expected %d:\n%s"
          % (len(lines), len(cases), err))
    for (frames, reason), line in zip(cases, lines):
        check(reason in line, "report %r lacks %r" % (line, reason))
    check("\x1b" not in err, "a raw escape reached the terminal: %r" % err)
    check("\\x1b[2J" in err, "the escape in the topic is not shown escaped: %r" % err)
    check("1 event shown, 0 filtered out, %d malformed" % len(cases) in err,
          "summary: %r" % err)
    print("malformed messages: %d reported, tail went on: ok" % len(cases))


def case_human():
    evil = "Login\x1b]0;pwned\x07\x1b[2J to \u202eexample.com\u202c now\r\n"
    for color in ("never", "always"):
        peer = Peer()
        try:
            tail = start("tail", "--color=" + color, "--count", "5", "--timeout", "30",
                         "tcp://127.0.0.1:%d" % peer.port)
            peer.wait_subscriptions(1)
            peer.event("task_start", "miner-1", task_id="abc12345", prompt=evil,
                       validator_ip="45.22.240.79",
                       validator_hotkey="5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
                       timeout_ms=30000, id=77)
            peer.event("actions_generated", "miner-1", task_id="abc12345", action_count=12)
            peer.event("task_complete", "miner-1", task_id="abc12345", success=True,
                       action_count=12, response_time=5.2)
            peer.event("task_complete", "miner-1", task_id="abc12346", success=False,
                       error="Timeout waiting for selector #login", response_time=30.1)
            peer.event("task_step", "miner-1", task_id="abc12345", step="navigate",
                       details={"url": "https://x.example/?a=1&b=<2>", "n": 3})
            rc, out, err = finish(tail)
        finally:
            peer.close()
        check(rc == 0, "tail exit %d: %s" % (rc, err))
        text = out.decode()
        lines = text.splitlines()
        check(len(lines) == 5, "expected 5 lines: %r" % text)
        check("\x07" not in text and "\r" not in text, "control characters reached stdout")
        check("\\x1b]0;pwned\\x07\\x1b[2J" in lines[0], "escapes not shown: %r" % lines[0])
        check("\\u202e" in lines[0], "bidi override not shown escaped: %r" % lines[0])
        if color == "never":
            check("\x1b" not in text, "--color=never printed an escape: %r" % text)
        else:
            check("\x1b[32m" in lines[0] and "\x1b[31m" in lines[3], "no colours: %r" % text)
            check("\x1b[2J" not in text and "\x1b]0" not in text, "the wire's escapes leaked")
        check("\U0001F4E5" in lines[0] and "task_start" in lines[0], lines[0])
        check("miner-1" in lines[0] and "abc12345" in lines[0], lines[0])
        check("45.22.240.79" in lines[0] and "5FHneW" in lines[0], lines[0])
        check("timeout 30s" in lines[0] and "#77" in lines[0], lines[0])
        check("\u26A1" in lines[1] and "12 actions" in lines[1], lines[1])
        check("\u2705" in lines[2] and "12 actions in 5.2s" in lines[2], lines[2])
        check("\u274C" in lines[3] and "Timeout waiting for selector #login" in lines[3],
              lines[3])
        check(re.match(r"^(\x1b\[2m)?\d\d:\d\d:\d\d\.\d\d\d", lines[0]), "no time: %r" % lines[0])
        # Details as JSON, but with '&' and '<' readable (no HTML escapes).
        check("\U0001F4CA" in lines[4] and "navigate" in lines[4], lines[4])
        check('"url":"https://x.example/?a=1&b=<2>","n":3' in lines[4], lines[4])
    print("human lines, colours and terminal escaping: ok")


SUMMARY_TYPE = re.compile(r"^  (\w+) +(\d+)", re.M)


def simulate_into_tail(seed, rate, duration, expected):
    port = free_port()
    tail = start("tail", "--json", "--count", str(expected), "--timeout", "60",
                 "@tcp://127.0.0.1:%d" % port)
    r = run("simulate", "--endpoint", ">tcp://127.0.0.1:%d" % port, "--rate", str(rate),
            "--duration", str(duration), "--miners", "3", "--validators", "5", "--seed",
            str(seed), "--wait", "20", timeout=90)
    rc, out, err = finish(tail, timeout=90)
    check(r.returncode == 0, "simulate exit %d: %s" % (r.returncode, r.stderr))
    check(rc == 0, "tail exit %d: %s" % (rc, err))
    return r, ndjson(out), err


def case_simulate():
    r, events, tail_err = simulate_into_tail(7, 200, 2, 400)
    summary = r.stdout
    check("sent 400, dropped 0" in summary, "simulate summary: %r" % summary)
    check("seed 7" in summary, "summary lacks the seed: %r" % summary)
    check("no subscriber" not in r.stderr, "simulate found no subscriber: %r" % r.stderr)
    by_type_summary = {t: int(n) for t, n in SUMMARY_TYPE.findall(summary)}
    check(sum(by_type_summary.values()) == 400, "summary types: %r" % by_type_summary)
    check(len(events) == 400, "tail got %d events, expected 400" % len(events))
    by_type = collections.Counter(e["type"] for e in events)
    check(dict(by_type) == {t: n for t, n in by_type_summary.items() if n},
          "tail saw %r, simulate sent %r" % (dict(by_type), by_type_summary))
    for t in ("task_start", "task_step", "actions_generated", "task_complete", "task_feedback",
              "validator_connection", "cache_hit", "error"):
        check(by_type[t] > 0, "no %s in the mix: %r" % (t, dict(by_type)))
    outcomes = collections.Counter(e["success"] for e in events if e["type"] == "task_complete")
    check(outcomes[True] > 0 and outcomes[False] > 0, "success and failure: %r" % outcomes)
    check(outcomes[True] > outcomes[False], "most tasks should succeed: %r" % outcomes)
    m = re.search(r"tasks: (\d+) started, (\d+) succeeded, (\d+) failed", summary)
    check(m and int(m.group(1)) == by_type["task_start"], "tasks line: %r" % summary)
    check(int(m.group(2)) == outcomes[True] and int(m.group(3)) == outcomes[False],
          "succeeded/failed %r vs %r" % (m.groups(), outcomes))
    # Sequence numbers: per session, 1..N without a gap.
    seqs = collections.defaultdict(list)
    miners = {}
    for e in events:
        seqs[e["sid"]].append(e["seq"])
        miners[e["sid"]] = e["miner"]
    check(len(seqs) == 3 and sorted(miners.values()) == ["miner-1", "miner-2", "miner-3"],
          "sessions: %r" % miners)
    for sid, s in seqs.items():
        check(s == list(range(1, len(s) + 1)), "sid %d: seq not 1..N in order: %r" % (sid, s))
    check("0 missing" in tail_err, "tail reported gaps: %r" % tail_err)
    # Realistic content.
    started = {e["task_id"] for e in events if e["type"] == "task_start"}
    for e in events:
        if e["type"] in ("task_step", "actions_generated", "task_complete", "cache_hit"):
            check(e["task_id"] in started, "%s for a task never started: %r" % (e["type"], e))
        if e["type"] == "task_start":
            check(e["prompt"] and e["url"].startswith("https://") and e["timeout_ms"] > 0, e)
            check(re.match(r"^\d+\.\d+\.\d+\.\d+$", e["validator_ip"]), e)
            check(re.match(r"^5[1-9A-HJ-NP-Za-km-z]{47}$", e["validator_hotkey"]), e)
        if e["type"] == "task_step":
            check(isinstance(e.get("details"), dict) and e["step"], e)
        if e["type"] == "task_complete" and not e["success"]:
            check(e.get("error"), "a failure without its error: %r" % e)
    # Several tasks interleave on one miner.
    open_tasks, most = collections.defaultdict(set), 0
    for e in sorted(events, key=lambda e: (e["sid"], e["seq"])):
        if e["type"] == "task_start":
            open_tasks[e["sid"]].add(e["task_id"])
        elif e["type"] == "task_complete":
            open_tasks[e["sid"]].discard(e["task_id"])
        most = max(most, len(open_tasks[e["sid"]]))
    check(most >= 2, "tasks never interleave")

    # The same seed gives the same events (per miner, in order), at another rate.
    r2, events2, _ = simulate_into_tail(7, 2000, 0.2, 400)
    def stream(evs):
        out = collections.defaultdict(list)
        for e in sorted(evs, key=lambda e: (e["miner"], e["seq"])):
            out[e["miner"]].append({k: v for k, v in e.items() if k not in ("ts", "time", "sid")})
        return out
    check(stream(events) == stream(events2), "seed 7 gave different events at another rate")
    print("simulate -> tail --json: %d events, %r: ok" % (len(events), dict(by_type)))


def bench_checks(result, events, rounds, paths):
    """The JSON of `minerwatch bench`: every event accounted for, latencies
    that make sense, one run per round and path."""
    check(result["events"] == events and result["rounds"] == rounds, "header: %r" % result)
    for path in paths:
        p = result[path]
        check(len(p["runs"]) == rounds, "%s: %d runs" % (path, len(p["runs"])))
        for run in p["runs"]:
            check(run["sent"] + run["dropped"] == events,
                  "%s: sent %d + dropped %d != %d" % (path, run["sent"], run["dropped"], events))
            check(run["received"] + run["lost"] == run["sent"], "%s: %r" % (path, run))
            # Loopback at a moderate rate with a 10000-message queue: all arrive.
            check(run["dropped"] == 0 and run["lost"] == 0, "%s lost events: %r" % (path, run))
            check(0 < run["latency_p50_us"] <= run["latency_p99_us"] <= run["latency_max_us"],
                  "%s latencies out of order: %r" % (path, run))
            check(0 < run["call_p50_ns"] <= run["call_p99_ns"], "%s calls: %r" % (path, run))
        check(p["sent"] == events * rounds and p["received"] == events * rounds,
              "%s totals: %r" % (path, p))
        for key in ("latency_p50_us", "latency_p99_us", "call_p50_ns"):
            check(p["median"][key] > 0, "%s median %s: %r" % (path, key, p["median"]))


def case_bench():
    # A broker in the process, with the raw baseline: JSON on stdout.
    r = run("bench", "--events", "3000", "--rate", "3000", "--rounds", "2", "--json",
            timeout=120)
    check(r.returncode == 0, "bench exit %d: %s" % (r.returncode, r.stderr))
    result = json.loads(r.stdout)
    bench_checks(result, 3000, 2, ("pipeline", "raw"))
    check(set(result["ratio"]) >= {"latency_p50_us", "call_p50_ns"}, "ratio: %r" % result)
    check(abs(result["ratio"]["latency_p50_us"] - result["pipeline"]["median"]["latency_p50_us"] /
              result["raw"]["median"]["latency_p50_us"]) < 1e-6, "ratio is not pipeline / raw")
    check("round 2/2 raw" in r.stderr and "round 2/2 pipeline" in r.stderr,
          "no progress lines: %r" % r.stderr)

    # The text summary.
    r = run("bench", "--events", "500", "--rounds", "1", "--no-raw", "--quiet", timeout=120)
    check(r.returncode == 0, "bench --no-raw exit %d: %s" % (r.returncode, r.stderr))
    check("pipeline" in r.stdout and "raw libzmq" not in r.stdout, "text: %r" % r.stdout)
    check(re.search(r"^received\s+500$", r.stdout, re.M), "received line: %r" % r.stdout)
    print("bench in process: ok")

    # A running broker (`minerwatch up`) with other traffic on it: only the
    # bench's own events count, and they land in that broker's state.
    ingest, updates, http = free_port(), free_port(), free_port()
    up = start("up", "--http", "127.0.0.1:%d" % http, "--ingest", "@tcp://127.0.0.1:%d" % ingest,
               "--publish", "@tcp://127.0.0.1:%d" % updates, "--snapshot", "none", "--quiet",
               "--demo", "--demo-rate", "50")
    try:
        r = run("bench", "--endpoint", ">tcp://127.0.0.1:%d" % ingest,
                "--updates", ">tcp://127.0.0.1:%d" % updates, "--events", "1000", "--rate",
                "2000", "--rounds", "1", "--no-raw", "--json", timeout=120)
        check(r.returncode == 0, "bench against up: exit %d: %s" % (r.returncode, r.stderr))
        bench_checks(json.loads(r.stdout), 1000, 1, ("pipeline",))
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/api/dashboard/live/status" % http,
                                    timeout=10) as resp:
            status = json.loads(resp.read())
        miners = [m.get("miner") for m in status.get("miners", [])] if isinstance(
            status.get("miners"), list) else list(status.get("miners", {}))
        check(any(str(m).startswith("bench-") for m in miners),
              "the bench's miner is not in the broker's state: %r" % miners)
    finally:
        up.terminate()
        finish(up)

    # No broker there: a clear message, exit 1, in bounded time.
    dead = free_port()
    r = run("bench", "--endpoint", ">tcp://127.0.0.1:%d" % dead,
            "--updates", ">tcp://127.0.0.1:%d" % dead, "--events", "10", timeout=60)
    check(r.returncode == 1, "bench without a broker: exit %d" % r.returncode)
    check("nothing came back through the broker" in r.stderr, "message: %r" % r.stderr)
    print("bench against a running broker, and without one: ok")


CASES = {
    "help": case_help,
    "bad_usage": case_bad_usage,
    "publish_no_subscriber": case_publish_no_subscriber,
    "round_trip": case_round_trip,
    "filters": case_filters,
    "malformed": case_malformed,
    "human": case_human,
    "simulate": case_simulate,
    "bench": case_bench,
}


def main():
    global MW
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        sys.exit("usage: cli_test.py MINERWATCH CASE (CASE: %s)" % ", ".join(CASES))
    MW = sys.argv[1]
    try:
        CASES[sys.argv[2]]()
    except AssertionError as e:
        print("FAIL %s: %s" % (sys.argv[2], e))
        sys.exit(1)


if __name__ == "__main__":
    main()
