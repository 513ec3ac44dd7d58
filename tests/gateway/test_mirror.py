"""test_mirror.py - minerwatch-gateway against a real minerwatch-broker.

Usage: test_mirror.py --gateway BIN --broker BIN --cli BIN CASE

Real processes on 127.0.0.1: the broker binds tcp://127.0.0.1:* and says
where in its "ready" line; the gateway serves on port 0 and says where in
its "serving" line; `minerwatch simulate` publishes. Debian's python3
standard library only. Every wait is bounded.

Cases:
  two_gateways  two gateways on one broker serve the same ids and state
  link          broker killed: /healthz and SSE say down; broker back with a
                new epoch: SSE clients get `reset` and a fresh snapshot
  flags         --help, bad flags (exit 2), an unusable endpoint (exit 1)
"""
import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_http  # noqa: E402  (its SSE client and HTTP helpers)
from test_http import Fail, Sse, check, request  # noqa: E402

ARGS = None
PROCS = []
READY = re.compile(r"ready: ingest=(\S+) publish=(\S+) snapshot=(\S+) epoch=([0-9a-f]+)")
SERVING = re.compile(r"serving https?://\S+?:(\d+)/api/dashboard")


class Proc:
    """A process whose stderr is read line by line in a thread."""

    def __init__(self, cmd, pattern, timeout=30):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        PROCS.append(self.proc)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.match = self.wait_for(pattern, timeout) if pattern else None

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, pattern, timeout=30):
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.time() + timeout
        seen = 0
        with self.cond:
            while True:
                for line in self.lines[seen:]:
                    m = rx.search(line)
                    if m:
                        return m
                seen = len(self.lines)
                left = deadline - time.time()
                if left <= 0 or (self.proc.poll() is not None and seen == len(self.lines)):
                    raise Fail("no line matching %r; got:\n%s" % (rx.pattern,
                                                                  "\n".join(self.lines[-20:])))
                self.cond.wait(min(left, 0.2))

    def stop(self, sig=signal.SIGTERM, expect=0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Fail("%s did not stop" % self.proc.args[0])
        if expect is not None:
            check(rc == expect, "%s exited %s:\n%s" % (self.proc.args[0], rc,
                                                      "\n".join(self.lines[-20:])))


def broker(ports=None):
    eps = ["@tcp://127.0.0.1:%s" % (p if ports else "*") for p in (ports or ("*",) * 3)]
    b = Proc([ARGS.broker, "--ingest", eps[0], "--publish", eps[1], "--snapshot", eps[2]],
             READY)
    b.ingest, b.publish, b.snapshot = (b.match.group(i).split(",")[0].lstrip("@")
                                       for i in (1, 2, 3))
    b.epoch = b.match.group(4)
    b.ports = [int(x.rsplit(":", 1)[1]) for x in (b.ingest, b.publish, b.snapshot)]
    return b


def gateway(b, *extra):
    g = Proc([ARGS.gateway, "--updates", ">" + b.publish, "--snapshot", ">" + b.snapshot,
              "--http", "127.0.0.1:0", "--verbose", "--heartbeat-timeout", "2000", *extra],
             SERVING)
    g.port = int(g.match.group(1))
    return g


def simulate(b, rate, seconds):
    r = subprocess.run([ARGS.cli, "simulate", "-e", ">" + b.ingest, "-r", str(rate), "-d",
                        str(seconds), "-q", "-w", "1"], capture_output=True, text=True,
                       timeout=seconds + 60)
    check(r.returncode == 0, "simulate failed: %s" % r.stderr)
    m = re.search(r"sent (\d+), dropped (\d+)", r.stdout)
    check(m, "simulate summary: %r" % r.stdout)
    return int(m.group(1))


def health(g):
    code, _, body = request(g.port, "/healthz")
    check(code == 200, "healthz %s" % code)
    return json.loads(body)


def wait_health(g, pred, what, timeout=30):
    deadline = time.time() + timeout
    while True:
        h = health(g)
        if pred(h):
            return h
        if time.time() > deadline:
            raise Fail("%s: %r" % (what, h))
        time.sleep(0.1)


def case_two_gateways():
    b = broker()
    g1 = gateway(b)
    g2 = gateway(b)
    for g in (g1, g2):
        wait_health(g, lambda h: h["broker"] == "up" and h["last_id"] > 0, "gateway up")
    s1 = test_http.open_sse(g1.port)
    s2 = test_http.open_sse(g2.port)
    s1.next_of("snapshot")
    s2.next_of("snapshot")
    sent = simulate(b, 400, 3)
    check(sent > 1000, "sent %d" % sent)
    # Both reach the same id (ticks keep coming: compare at a common id).
    deadline = time.time() + 30
    while True:
        c1, h1, body1 = request(g1.port, "/api/dashboard/live/status?limit=1000")
        c2, h2, body2 = request(g2.port, "/api/dashboard/live/status?limit=1000")
        if h1.get("etag") == h2.get("etag") and json.loads(body1)["total_events"] == sent:
            break
        check(time.time() < deadline, "gateways never at the same id")
        time.sleep(0.05)
    check(body1 == body2, "same id, different state")
    st = json.loads(body1)
    check(st["total_events"] == sent, "total_events %s != sent %s" % (st["total_events"], sent))
    check(st["epoch"] == b.epoch, "epoch %r vs %r" % (st["epoch"], b.epoch))
    # The SSE streams carry the same events, ids and bytes.
    last = max(e["id"] for e in st["recent_events"])
    f1 = [e for e in s1.events_until(last) if e.get("event") != "snapshot"]
    f2 = [e for e in s2.events_until(last) if e.get("event") != "snapshot"]
    check(len(f1) == sent and [e["raw"] for e in f1] == [e["raw"] for e in f2],
          "SSE streams differ: %d / %d frames for %d events" % (len(f1), len(f2), sent))
    ids = [int(e["id"]) for e in f1]
    check(ids == sorted(ids) and len(set(ids)) == len(ids), "ids increase")
    # The event in the status JSON is the same bytes as its SSE frame.
    by_id = {int(e["id"]): e["raw"].split(b"data: ", 1)[1] for e in f1}
    body = request(g1.port, "/api/dashboard/live/status?limit=1")[2]
    newest = json.loads(body)["recent_events"][0]
    raw = by_id[newest["id"]].decode()
    check(raw in body.decode(), "status event != SSE frame")
    # The broker's counters come with its heartbeat (once a second).
    deadline = time.time() + 10
    while True:
        problems, samples = test_http.prom_check.check(request(g1.port, "/metrics")[2])
        check(not problems, "metrics: %s" % problems[:5])
        if samples.get(("minerwatch_broker_events_accepted_total", ())) == sent:
            break
        check(time.time() < deadline, "broker accepted: %r" %
              samples.get(("minerwatch_broker_events_accepted_total", ())))
        time.sleep(0.2)
    s1.close()
    s2.close()
    for p in (g1, g2, b):
        p.stop()


def fixed_ports(count):
    """Free loopback ports below the kernel's ephemeral range.

    The link case restarts the broker on the same ports; a port the kernel
    hands out for `:*` binds could be taken by a test running in parallel
    in the seconds between, so we pick from below that range instead."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    rng = random.Random(os.getpid())
    ports = []
    for _ in range(1000):
        if len(ports) == count:
            break
        port = rng.randrange(20000, max(20001, min(low, 32768)))
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    check(len(ports) == count, "no free ports below %d" % low)
    return ports


def case_link():
    b = broker(fixed_ports(3))
    g = gateway(b)
    h = wait_health(g, lambda h: h["broker"] == "up", "up")
    first_epoch = h["epoch"]
    simulate(b, 200, 1)
    s = test_http.open_sse(g.port)
    s.next_of("snapshot")
    ports = b.ports
    b.stop(signal.SIGKILL, expect=None)
    t0 = time.time()
    while True:
        ev = s.next_of(None, skip=(), timeout=15)
        if ev.get("event") == "broker" and not json.loads(ev["data"])["up"]:
            break
    took = time.time() - t0
    check(took < 8, "link down noticed after %.1fs" % took)
    h = wait_health(g, lambda h: h["broker"] == "down", "down")
    check(h["status"] == "degraded", "degraded")
    # Still serving the last state.
    code, _, _ = request(g.port, "/api/dashboard/live/status")
    check(code == 200, "status while down")
    # The broker comes back (no state file: a new epoch, ids from 1).
    b2 = broker(ports)
    check(b2.epoch != first_epoch, "new epoch")
    while True:
        ev = s.next_of(None, skip=(), timeout=20)
        if ev.get("event") == "reset":
            break
    check(json.loads(ev["data"])["reason"] in ("broker_back", "epoch", "gap"), "reset reason")
    snap = json.loads(s.next_of("snapshot", timeout=20)["data"])
    check(snap["epoch"] == b2.epoch, "snapshot of the new epoch")
    h = wait_health(g, lambda h: h["broker"] == "up" and h["epoch"] == b2.epoch, "up again")
    check(h["resyncs"] >= 1, "resync counted")
    sent = simulate(b2, 200, 1)
    st = json.loads(request(g.port, "/api/dashboard/live/status")[2])
    deadline = time.time() + 10
    while st["total_events"] < sent:
        check(time.time() < deadline, "events after the resync")
        time.sleep(0.1)
        st = json.loads(request(g.port, "/api/dashboard/live/status")[2])
    s.close()
    g.stop()
    b2.stop()


def case_flags():
    def run(*args):
        return subprocess.run([ARGS.gateway, *args], capture_output=True, text=True, timeout=30)

    r = run("--help")
    check(r.returncode == 0 and "--updates" in r.stdout and "--auth-token" in r.stdout, "help")
    r = run("--version")
    check(r.returncode == 0 and r.stdout.startswith("minerwatch-gateway "), "version")
    for bad in (["--nope"], ["--http"], ["--http", "nohost"], ["--max-clients", "0"],
                ["--http", "0.0.0.0:0"], ["--tls-cert", "x.pem"], ["extra"],
                ["--heartbeat-timeout", "5"], ["--quiet=1"]):
        r = run(*bad)
        check(r.returncode == 2 and "Try 'minerwatch-gateway --help'" in r.stderr,
              "%s: rc %s %r" % (bad, r.returncode, r.stderr))
    r = run("--updates", "nonsense://x", "--http", "127.0.0.1:0")
    check(r.returncode == 1 and "endpoint" in r.stderr, "bad endpoint: %s %r" % (r.returncode,
                                                                                r.stderr))
    # A broker that is not there: the gateway starts, waits, says down.
    g = Proc([ARGS.gateway, "--updates", ">tcp://127.0.0.1:9", "--snapshot",
              ">tcp://127.0.0.1:9", "--http", "127.0.0.1:0"], SERVING)
    g.port = int(g.match.group(1))
    h = health(g)
    check(h["broker"] == "down" and h["last_heartbeat_age_ms"] is None, "no broker: %r" % h)
    code, _, body = request(g.port, "/api/dashboard/live/status")
    check(code == 503 and json.loads(body)["error"] == "starting", "status before a snapshot")
    g.stop()


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--gateway", required=True)
    p.add_argument("--broker", required=True)
    p.add_argument("--cli", required=True)
    p.add_argument("case", choices=["two_gateways", "link", "flags"])
    ARGS = p.parse_args()
    try:
        globals()["case_" + ARGS.case]()
    except Fail as e:
        print("FAIL %s: %s" % (ARGS.case, e))
        return 1
    finally:
        for proc in PROCS:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("PASS %s" % ARGS.case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
