#!/usr/bin/python3
"""CURVE end to end: minerwatch-broker --curve-secret with the clients that
must reach it (libminerwatch, its Python binding, `minerwatch tail`,
`publish` and `simulate`). Real processes on loopback.

Usage: curve_test.py --broker BIN --cli BIN --pub BIN [--gateway BIN] CASE

Cases:
  tail       a C publisher with the server key delivers to `minerwatch tail
             --curve-server-key` on the broker's publish endpoint (key as a
             file and as Z85); a publisher with a wrong server key delivers
             nothing, has no live connection and counts every event dropped;
             tail with a wrong key, or without CURVE, says why on stderr.
  allowlist  --curve-clients DIR: a publisher (and a tail) with a listed
             client certificate gets through; an unlisted one, or a new key
             pair, does not, and the broker accepts none of its events.
  python     the binding: Publisher(server_key=..., client_cert=...) gets
             through; a wrong key drops and counts; bad arguments raise.
  cli        `publish` and `simulate` with --curve-server-key; usage and file
             errors name the option and the file.
  gateway    minerwatch-gateway --curve-server-key: with the broker's public
             key its /healthz says the broker is up and its live status shows
             an event a CURVE publisher sent; with a wrong key the link stays
             down (and the broker counts refused handshakes); a public
             certificate as --curve-client-cert is refused at start; --help
             documents both options. Needs --gateway.
  valgrind   tail, publish, status and mw_curve_pub as CURVE clients (right
             key, wrong key, listed and unlisted client) under valgrind: no
             memory error, no definite leak.

Run with Debian's /usr/bin/python3 (python3-zmq reads the broker's
heartbeats, and its zmq.auth reads the certificates: an independent parser).
The broker binds "tcp://127.0.0.1:*" and logs its ports; keys come from
`minerwatch keygen`. Every wait is bounded; nothing asserts speed.
"""
import argparse
import json
import os
import pathlib
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import msgpack
import zmq
import zmq.auth

ARGS = None
TIMEOUT = 60  # seconds any one wait may take
VALGRIND = []  # a prefix for the C programs (case valgrind)
VALGRIND_CMD = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--quiet", "--num-callers=30"]
STARTED = []  # processes to kill if a failed check left them running
SERVING = re.compile(r"serving https?://\S+?:(\d+)/api/dashboard")
READY = re.compile(r"ready: ingest=(\S+) publish=(\S+) snapshot=(\S+) epoch=([0-9a-f]+) "
                   r"id=(\d+) state=(\w+) curve=(\w+)")


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def spawn(cmd, **kwargs):
    proc = subprocess.Popen(cmd, **kwargs)
    STARTED.append(proc)
    return proc


class Broker:
    """A minerwatch-broker process; its stderr is collected line by line."""

    def __init__(self, *extra):
        cmd = [ARGS.broker, "--ingest", "@tcp://127.0.0.1:*", "--publish",
               "@tcp://127.0.0.1:*", "--snapshot", "@tcp://127.0.0.1:*", *extra]
        self.proc = spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines = []
        self.queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        m = self.wait_line(READY)
        self.ingest = m.group(1).split(",")[0].lstrip("@>")
        self.publish = m.group(2).split(",")[0].lstrip("@>")
        self.snapshot = m.group(3).split(",")[0].lstrip("@>")
        check(m.group(7) == "on", "the broker says curve=%s" % m.group(7))

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self.queue.put(line)
        self.queue.put(None)

    def wait_line(self, rx):
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            m = rx.search(line)
            if m:
                return m
        fail("no log line matching %r; log:\n%s" % (rx.pattern, "\n".join(self.lines)))

    def heartbeat(self, keys, predicate=lambda hb: True):
        """The first heartbeat that satisfies predicate. keys: (server
        public, client public, client secret), Z85 bytes."""
        ctx = zmq.Context.instance()
        s = ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = keys
        s.setsockopt(zmq.SUBSCRIBE, b"$hb")
        s.connect(self.publish)
        try:
            deadline = time.monotonic() + TIMEOUT
            last = None
            while time.monotonic() < deadline:
                if not s.poll(200):
                    continue
                _, body = s.recv_multipart()
                last = msgpack.unpackb(body, raw=False)
                if predicate(last):
                    return last
            fail("no matching heartbeat in %d s; last: %r" % (TIMEOUT, last))
        finally:
            s.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=TIMEOUT)
        check(rc == 0, "broker exit code %d; log:\n%s" % (rc, "\n".join(self.lines)))


class Keys:
    """Key pairs made by `minerwatch keygen` in a temporary directory."""

    def __init__(self, d):
        self.dir = d
        self.z85 = {}

    def make(self, name):
        path = os.path.join(self.dir, name + ".cert")
        p = subprocess.run([ARGS.cli, "keygen", "--out", path], capture_output=True,
                           timeout=TIMEOUT)
        check(p.returncode == 0, "keygen: %s" % p.stderr.decode())
        printed = re.search(rb"public key:\s+(\S{40})", p.stdout).group(1)
        public, secret = zmq.auth.load_certificate(path + "_secret")
        check(public == printed, "keygen printed %r, the file holds %r" % (printed, public))
        self.z85[name] = (public, secret)
        return path

    def public(self, name):
        return self.z85[name][0]

    def client(self, server, name):
        """(server public, client public, client secret) for pyzmq."""
        return (self.public(server),) + self.z85[name]


def run_pub(endpoint, miner, count, rate, server_key, client_cert, wait_ms):
    """mw_curve_pub: return its counters as a dict."""
    p = subprocess.run([*VALGRIND, ARGS.pub, ">tcp://" + endpoint.split("://")[1], miner,
                        str(count),
                        str(rate), server_key or "-", client_cert or "-", str(wait_ms)],
                       capture_output=True, timeout=TIMEOUT * 2)
    check(p.returncode == 0, "mw_curve_pub: %s" % p.stderr.decode())
    m = re.search(rb"ready=(\d+) sent=(\d+) dropped=(\d+) connections=(-?\d+)", p.stdout)
    check(m, "mw_curve_pub said %r" % p.stdout)
    out = dict(zip(("ready", "sent", "dropped", "connections"), map(int, m.groups())))
    print("%s: %r" % (miner, out))
    return out


def start_tail(endpoint, *flags):
    return spawn([*VALGRIND, ARGS.cli, "tail", *flags, ">tcp://" + endpoint.split("://")[1]],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc, timeout=TIMEOUT * 2):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def expect_nothing_delivered(out, count):
    check(out == {"ready": 0, "sent": 0, "dropped": count, "connections": 0},
          "a refused publisher: %r" % out)


class Gateway:
    """A minerwatch-gateway process mirroring broker b, serving HTTP on a
    free port (port 0: it logs the one it got)."""

    def __init__(self, b, *extra):
        cmd = [ARGS.gateway, "--updates", ">" + b.publish, "--snapshot", ">" + b.snapshot,
               "--http", "127.0.0.1:0", "--verbose", "--heartbeat-timeout", "2000", *extra]
        self.proc = spawn(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
        self.lines = []
        self.queue = queue.Queue()
        threading.Thread(target=Broker._read, args=(self,), daemon=True).start()
        self.port = int(Broker.wait_line(self, SERVING).group(1))

    def get(self, path):
        """(HTTP status, parsed JSON body or None)."""
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except ValueError:
                return e.code, None

    def health(self):
        code, body = self.get("/healthz")
        check(code in (200, 503) and body is not None, "/healthz: %s %r" % (code, body))
        return body

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=TIMEOUT)
        check(rc == 0, "gateway exit code %d; log:\n%s" % (rc, "\n".join(self.lines)))


def wait_for(pred, what, timeout=TIMEOUT):
    """Poll pred() every 0.2 s; return its first true value, or fail."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.2)
    fail("%s: not within %d s" % (what, timeout))


# --------------------------------------------------------------------------
# Cases

def case_tail(keys):
    srv = keys.make("broker")
    keys.make("other")
    b = Broker("--curve-secret", srv + "_secret")
    reader = keys.client("broker", "other")  # any client key: no allow-list
    # Two tails, the key as a file and as Z85 text, each waiting for 5
    # events of this miner; a C publisher sends long enough for both.
    tails = [start_tail(b.publish, "--json", "--count", "5", "--miner", "c-miner", "--timeout",
                        str(TIMEOUT), "--curve-server-key", key)
             for key in (srv, keys.public("broker").decode())]
    out = run_pub(b.ingest, "c-miner", 300, 50, srv, None, 10000)
    check(out["ready"] == 1 and out["sent"] == 300 and out["dropped"] == 0
          and out["connections"] == 1, "the right key: %r" % out)
    for t in tails:
        rc, stdout, stderr = finish(t)
        check(rc == 0, "tail: rc %d, %s" % (rc, stderr))
        events = [json.loads(line) for line in stdout.splitlines()]
        check(len(events) == 5, "tail printed %d events: %s %s" % (len(events), stdout, stderr))
        for ev in events:
            check(ev["miner"] == "c-miner" and ev["type"] == "task_start" and "id" in ev,
                  "event %r" % ev)
    b.heartbeat(reader, lambda hb: hb["accepted"] == 300)

    # A wrong server key: TCP connects, the handshake fails, nothing is
    # delivered and every event is dropped and counted.
    out = run_pub(b.ingest, "wrong-miner", 50, 0, os.path.join(keys.dir, "other.cert"), None,
                  2000)
    expect_nothing_delivered(out, 50)
    # The same through `minerwatch tail`: it shows nothing and says why.
    for flags, why in ((["--curve-server-key", keys.public("other").decode()],
                        "is --curve-server-key the broker's public key"),
                       ([], "--curve-server-key")):
        rc, stdout, stderr = finish(start_tail(b.publish, "--timeout", "3", *flags))
        check(rc == 0 and stdout == "" and why in stderr and "0 events shown" in stderr,
              "tail %r: rc %d, out %r, err %r" % (flags, rc, stdout, stderr))
        print("tail %s said: %s" % (" ".join(flags) or "(plain)", stderr.splitlines()[0]))
    time.sleep(1)
    hb = b.heartbeat(reader)
    check(hb["accepted"] == 300, "events got in without the key: %r" % hb)
    check(hb["auth_failures"] >= 1, "no refused handshake counted: %r" % hb)
    b.stop()


def case_allowlist(keys):
    srv = keys.make("broker")
    listed = keys.make("listed")
    unlisted = keys.make("unlisted")
    clients = os.path.join(keys.dir, "clients")
    os.mkdir(clients)
    shutil.copy(listed, clients)
    b = Broker("--curve-secret", srv + "_secret", "--curve-clients", clients)
    reader = keys.client("broker", "listed")

    tail = start_tail(b.publish, "--json", "--count", "3", "--miner", "listed-miner",
                      "--timeout", str(TIMEOUT), "--curve-server-key", srv,
                      "--curve-client-cert", listed + "_secret")
    refused_tail = start_tail(b.publish, "--timeout", "4", "--curve-server-key", srv,
                              "--curve-client-cert", unlisted + "_secret")
    out = run_pub(b.ingest, "listed-miner", 200, 50, keys.public("broker").decode(),
                  listed + "_secret", 10000)
    check(out["ready"] == 1 and out["sent"] == 200 and out["dropped"] == 0
          and out["connections"] == 1, "the listed client: %r" % out)
    rc, stdout, stderr = finish(tail)
    check(rc == 0 and len(stdout.splitlines()) == 3, "listed tail: %d %r %r" % (rc, stdout,
                                                                               stderr))
    rc, stdout, stderr = finish(refused_tail)
    check(rc == 0 and stdout == "" and "refused this client's key" in stderr,
          "unlisted tail: %d %r %r" % (rc, stdout, stderr))
    b.heartbeat(reader, lambda hb: hb["accepted"] == 200)

    for label, cert in (("unlisted", unlisted + "_secret"), ("new key pair", None)):
        out = run_pub(b.ingest, label, 50, 0, srv, cert, 2000)
        expect_nothing_delivered(out, 50)
    time.sleep(1)
    hb = b.heartbeat(reader)
    check(hb["accepted"] == 200, "an unlisted client got events in: %r" % hb)
    b.stop()


def case_python(keys):
    import minerwatch
    srv = keys.make("broker")
    listed = keys.make("listed")
    keys.make("other")
    reader = keys.client("broker", "listed")
    b = Broker("--curve-secret", srv + "_secret")
    ep = ">tcp://" + b.ingest.split("://")[1]
    sent = 0
    for server_key in (keys.public("broker"), keys.public("broker").decode(), srv,
                       pathlib.Path(srv)):
        with minerwatch.Publisher(ep, miner="py-miner", server_key=server_key) as pub:
            check(pub.wait_ready(TIMEOUT * 1000), "not ready with server_key=%r" % server_key)
            check(pub.connections == 1, "connections %d" % pub.connections)
            for i in range(20):
                check(pub.task_start("py-%d-%d" % (sent, i), prompt="hello"), "dropped")
            sent += 20
    b.heartbeat(reader, lambda hb: hb["accepted"] == sent)

    # A wrong key: no exception, nothing delivered, everything counted.
    pub = minerwatch.Publisher(ep, miner="py-wrong", server_key=keys.public("other"))
    check(not pub.wait_ready(1500), "ready with a wrong key")
    check(pub.connections == 0, "a live connection with a wrong key")
    check(not any(pub.error("nope") for _ in range(10)), "sent with a wrong key")
    check(pub.sent == 0 and pub.dropped == 10, "counters %d %d" % (pub.sent, pub.dropped))
    pub.close()
    check(pub.connections == 0, "closed")
    b.stop()

    # An allow-list: the listed certificate gets in, a new key pair not.
    clients = os.path.join(keys.dir, "clients")
    os.mkdir(clients)
    shutil.copy(listed, clients)
    b = Broker("--curve-secret", srv + "_secret", "--curve-clients", clients)
    ep = ">tcp://" + b.ingest.split("://")[1]
    with minerwatch.Publisher(ep, miner="py-listed", server_key=srv,
                              client_cert=listed + "_secret") as pub:
        check(pub.wait_ready(TIMEOUT * 1000), "listed client not ready")
        check(pub.send("custom", n=1), "dropped")
    with minerwatch.Publisher(ep, miner="py-unlisted", server_key=srv) as pub:
        check(not pub.wait_ready(1500) and pub.connections == 0, "an unlisted client got in")
        check(not pub.send("custom", n=2) and pub.dropped == 1, "counters")
    b.heartbeat(reader, lambda hb: hb["accepted"] == 1)
    b.stop()

    # Bad arguments raise, with the library's reason on stderr.
    for kwargs, exc in (({"client_cert": listed + "_secret"}, ValueError),
                        ({"server_key": os.path.join(keys.dir, "missing.cert")}, OSError),
                        ({"server_key": srv, "client_cert": listed}, OSError),
                        ({"server_key": "a\0b"}, ValueError)):
        try:
            minerwatch.Publisher(ep, miner="py-bad", **kwargs)
        except exc as e:
            print("%r: %s" % (sorted(kwargs), e))
        else:
            fail("no %s for %r" % (exc.__name__, kwargs))


def case_cli(keys):
    srv = keys.make("broker")
    keys.make("other")
    reader = keys.client("broker", "other")
    b = Broker("--curve-secret", srv + "_secret")
    ep = ">tcp://" + b.ingest.split("://")[1]
    p = subprocess.run([ARGS.cli, "publish", "-e", ep, "--curve-server-key", srv, "-t",
                        "task_start", "task_id=cli-1", "prompt=hi"], capture_output=True,
                       timeout=TIMEOUT)
    check(p.returncode == 0, "publish: %s" % p.stderr.decode())
    b.heartbeat(reader, lambda hb: hb["accepted"] == 1)
    p = subprocess.run([ARGS.cli, "simulate", "-e", ep, "--curve-server-key",
                        keys.public("broker").decode(), "--rate", "200", "--duration", "1",
                        "--miners", "2", "--quiet", "--seed", "7"], capture_output=True,
                       timeout=TIMEOUT)
    check(p.returncode == 0, "simulate: %s" % p.stderr.decode())
    m = re.search(rb"^sent (\d+), dropped (\d+)", p.stdout, re.M)
    check(m, "simulate summary: %r" % p.stdout)
    simulated = int(m.group(1))
    check(simulated > 0 and int(m.group(2)) == 0, "simulate: %r" % p.stdout)
    b.heartbeat(reader, lambda hb: hb["accepted"] == 1 + simulated)

    # A wrong key: publish fails, and says what to look at.
    p = subprocess.run([ARGS.cli, "publish", "-e", ep, "--wait", "1", "--curve-server-key",
                        keys.public("other").decode(), "-t", "x"], capture_output=True,
                       timeout=TIMEOUT)
    check(p.returncode == 1 and b"no CURVE handshake completed" in p.stderr,
          "publish with a wrong key: %d %r" % (p.returncode, p.stderr))
    b.stop()

    missing = os.path.join(keys.dir, "missing.cert")
    for cmd, rc, fragments in (
            (["publish", "--curve-client-cert", srv + "_secret", "-t", "x"], 2,
             ["--curve-client-cert needs --curve-server-key"]),
            (["publish", "--curve-server-key", "", "-t", "x"], 2, ["invalid --curve-server-key"]),
            (["publish", "--curve-server-key", missing, "-t", "x"], 1,
             ["--curve-server-key", "missing.cert", "no such file"]),
            (["simulate", "--curve-server-key", srv, "--curve-client-cert", srv], 1,
             ["--curve-client-cert", srv, "holds no secret-key"]),
            (["tail", "--curve-server-key", "short", "@tcp://127.0.0.1:1"], 1,
             ["--curve-server-key", "'short'", "40 characters of"]),
            (["tail", "--curve-client-cert", srv + "_secret", "@tcp://127.0.0.1:1"], 2,
             ["needs --curve-server-key"]),
            (["status", "--curve-server-key", missing], 1, ["--curve-server-key", "missing.cert"]),
    ):
        p = subprocess.run([ARGS.cli, *cmd], capture_output=True, timeout=TIMEOUT)
        err = p.stderr.decode()
        check(p.returncode == rc and all(f in err for f in fragments),
              "%r: rc %d (want %d), %r" % (cmd, p.returncode, rc, err))
        print("%s -> %d: %s" % (" ".join(cmd[:3]), rc, err.strip().splitlines()[0]))
    for cmd in ("tail", "status", "publish", "simulate"):
        p = subprocess.run([ARGS.cli, cmd, "--help"], capture_output=True, timeout=TIMEOUT)
        check(b"--curve-server-key KEY" in p.stdout and b"--curve-client-cert F" in p.stdout,
              "%s --help lacks the CURVE options" % cmd)


def case_gateway(keys):
    check(ARGS.gateway, "case gateway needs --gateway")
    srv = keys.make("broker")
    other = keys.make("other")
    reader = keys.client("broker", "other")
    b = Broker("--curve-secret", srv + "_secret")
    good = Gateway(b, "--curve-server-key", srv)
    good_z85 = Gateway(b, "--curve-server-key", keys.public("broker").decode())
    wrong = Gateway(b, "--curve-server-key", keys.public("other").decode())
    for g in (good, good_z85):
        h = wait_for(lambda: (lambda h: h if h["broker"] == "up" else None)(g.health()),
                     "a gateway with the broker's key: link up")
        print("gateway with the right key: %r" % h)

    # An event through the broker from a CURVE publisher reaches the mirror.
    out = run_pub(b.ingest, "gw-curve-miner", 20, 50, srv, None, 10000)
    check(out["ready"] == 1 and out["sent"] == 20 and out["dropped"] == 0, "publisher: %r" % out)

    def shows_event(g):
        code, st = g.get("/api/dashboard/live/status?limit=100")
        return code == 200 and any(ev.get("miner") == "gw-curve-miner"
                                   for ev in st["recent_events"])
    for g in (good, good_z85):
        wait_for(lambda: shows_event(g), "the published event in /api/dashboard/live/status")
        check(g.health()["broker"] == "up", "link went down")

    # The wrong key: the link never comes up, for well over the heartbeat
    # timeout (2 s; the broker beats every second) after heartbeats flowed
    # to the good gateways.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        h = wrong.health()
        check(h["broker"] == "down" and not h["broker_up"] and h["last_id"] == 0,
              "a gateway with a wrong key: %r" % h)
        time.sleep(0.25)
    code, _ = wrong.get("/api/dashboard/live/status")
    check(code == 503, "a gateway with a wrong key serves a state: %d" % code)
    hb = b.heartbeat(reader, lambda hb: hb["auth_failures"] >= 1)
    print("wrong key: link down; broker auth_failures=%d" % hb["auth_failures"])
    for g in (good, good_z85, wrong):
        g.stop()

    # Key errors are start-up errors (exit 1) naming the option.
    for flags, fragments in (
            (["--curve-server-key", srv, "--curve-client-cert", other],
             ["--curve-client-cert", "holds no secret-key"]),
            (["--curve-server-key", os.path.join(keys.dir, "missing.cert")],
             ["--curve-server-key", "missing.cert"])):
        p = subprocess.run([ARGS.gateway, "--updates", ">" + b.publish, "--snapshot",
                            ">" + b.snapshot, "--http", "127.0.0.1:0", *flags],
                           capture_output=True, timeout=TIMEOUT)
        err = p.stderr.decode()
        check(p.returncode == 1 and all(f in err for f in fragments),
              "gateway %r: rc %d, %r" % (flags, p.returncode, err))
    p = subprocess.run([ARGS.gateway, "--help"], capture_output=True, timeout=TIMEOUT)
    check(p.returncode == 0 and b"--curve-server-key KEY" in p.stdout
          and b"--curve-client-cert FILE" in p.stdout, "gateway --help lacks the CURVE options")
    b.stop()


def case_valgrind(keys):
    global VALGRIND
    VALGRIND = VALGRIND_CMD
    srv = keys.make("broker")
    listed = keys.make("listed")
    unlisted = keys.make("unlisted")
    clients = os.path.join(keys.dir, "clients")
    os.mkdir(clients)
    shutil.copy(listed, clients)
    b = Broker("--curve-secret", srv + "_secret", "--curve-clients", clients)
    reader = keys.client("broker", "listed")
    tail = start_tail(b.publish, "--json", "--count", "3", "--miner", "vg-miner", "--timeout",
                      str(TIMEOUT * 2), "--curve-server-key", srv, "--curve-client-cert",
                      listed + "_secret")
    refused = start_tail(b.publish, "--timeout", "5", "--curve-server-key", srv,
                         "--curve-client-cert", unlisted + "_secret")
    out = run_pub(b.ingest, "vg-miner", 400, 40, keys.public("broker").decode(),
                  listed + "_secret", TIMEOUT * 1000)
    check(out["ready"] == 1 and out["sent"] == 400 and out["dropped"] == 0, "listed: %r" % out)
    for t, label in ((tail, "tail"), (refused, "refused tail")):
        rc, stdout, stderr = finish(t)
        check(rc == 0, "%s under valgrind: rc %d, %s" % (label, rc, stderr))
    b.heartbeat(reader, lambda hb: hb["accepted"] == 400)
    out = run_pub(b.ingest, "vg-refused", 30, 0, srv, unlisted + "_secret", 2000)
    expect_nothing_delivered(out, 30)
    out = run_pub(b.ingest, "vg-wrong", 30, 0, os.path.join(keys.dir, "unlisted.cert"), None,
                  2000)
    expect_nothing_delivered(out, 30)
    ep = ">tcp://" + b.ingest.split("://")[1]
    for cmd, rc in ((["publish", "-e", ep, "--wait", "20", "--curve-server-key", srv,
                      "--curve-client-cert", listed + "_secret", "-t", "vg_event"], 0),
                    (["publish", "-e", ep, "--wait", "1", "--curve-server-key", srv, "-t",
                      "vg_event"], 1),
                    (["publish", "-e", ep, "--curve-server-key", srv, "--curve-client-cert",
                      listed, "-t", "vg_event"], 1),
                    (["status", "--json", "--timeout", "20", "--curve-server-key", srv,
                      "--curve-client-cert", listed + "_secret",
                      ">tcp://" + b.snapshot.split("://")[1]], 0)):
        p = subprocess.run([*VALGRIND, ARGS.cli, *cmd], capture_output=True,
                           timeout=TIMEOUT * 3)
        check(p.returncode == rc, "%r under valgrind: rc %d (want %d), %s"
              % (cmd, p.returncode, rc, p.stderr.decode()))
    b.heartbeat(reader, lambda hb: hb["accepted"] == 401)
    b.stop()


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--pub", required=True)
    ap.add_argument("--gateway")
    ap.add_argument("case", choices=sorted(CASES))
    ARGS = ap.parse_args()
    started = time.monotonic()
    d = tempfile.mkdtemp(prefix="mw-curve-")
    try:
        CASES[ARGS.case](Keys(d))
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(d)
    print("%s: ok (%.1f s)" % (ARGS.case, time.monotonic() - started))


if __name__ == "__main__":
    sys.exit(main())
