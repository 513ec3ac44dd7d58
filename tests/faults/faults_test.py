#!/usr/bin/python3
"""faults_test.py - fault injection against real minerwatch processes.

Usage: faults_test.py --broker BIN --gateway BIN --cli BIN --pub BIN
                      [--shim LIB] CASE

Every case starts real processes on 127.0.0.1 (the broker binds
"tcp://127.0.0.1:*" or free ports below the ephemeral range, and says
where in its "ready" line; a gateway serves on port 0 and says where in its
"serving" line), breaks something on purpose, and checks three things:

  - no crash: every process is alive until it is stopped, and exits 0;
  - bounded memory: VmRSS of the processes under test, sampled from
    /proc/PID/status while the fault runs, stays under a stated bound;
  - exact accounting: what was sent = what was received + what was counted
    as dropped, lost or rejected (the publisher's counters, the broker's
    heartbeat counters, `minerwatch status --json`, the gateway's /metrics).

Cases:
  broker_kill9     kill -9 of the broker mid-stream, restart on the state file
  gateway_cut      the broker stopped (SIGSTOP) for 10 s under a gateway
  flood            a publisher at full speed for 30 s (FAULTS_FLOOD_SECONDS)
  sse_churn        1000 SSE clients connecting and disconnecting
  never_readers    1000 SSE clients that never read, and one that does
  hostile_ingest   random and mutated msgpack frames on the ingest
  hostile_http     malformed HTTP from a fuzzing client on raw sockets
  disk_full        the state file's disk fills up (LD_PRELOAD shim), then frees

Debian's /usr/bin/python3 with python3-zmq and python3-msgpack. Every wait
and loop is bounded; nothing asserts speed. In a sanitizer build
(FAULTS_SANITIZED=1) the memory bounds are scaled for ASan's shadow memory
and quarantine.
"""
import argparse
import json
import os
import queue
import random
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "gateway"))
import prom_check  # noqa: E402  (the /metrics text parser of the gateway tests)

ARGS = None
TIMEOUT = 60  # seconds any one wait may take
PROCS = []
SANITIZED = os.environ.get("FAULTS_SANITIZED") == "1"
# ASan keeps freed memory in quarantine and shadow memory on top: scale.
RSS_SCALE = 4 if SANITIZED else 1
# ...and freed memory stays resident in its quarantine (256 MB by default).
QUARANTINE_MB = 256 if SANITIZED else 0
READY = re.compile(r"ready: ingest=(\S+) publish=(\S+) snapshot=(\S+) epoch=([0-9a-f]+) "
                   r"id=(\d+) state=(\w+)")
SERVING = re.compile(r"serving https?://\S+?:(\d+)/api/dashboard")


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def log(*args):
    print(*args, flush=True)


# --------------------------------------------------------------------------
# Processes


class Proc:
    """A process whose stderr is read line by line in a thread."""

    def __init__(self, cmd, pattern=None, timeout=30, env=None, stdout=subprocess.DEVNULL):
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=subprocess.PIPE, text=True, env=env)
        PROCS.append(self.proc)
        self.pid = self.proc.pid
        self.lines = []
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.match = self.wait_for(pattern, timeout) if pattern else None

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def text(self, last=30):
        with self.cond:
            return "\n".join(self.lines[-last:])

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
                if left <= 0 or (self.proc.poll() is not None and not self.reader.is_alive()
                                 and seen == len(self.lines)):
                    raise Fail("%s: no line matching %r; got:\n%s"
                               % (os.path.basename(self.cmd[0]), rx.pattern, self.text()))
                self.cond.wait(min(left, 0.2))

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, expect=0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Fail("%s did not stop" % self.cmd[0])
        self.reader.join(5)
        if expect is not None:
            check(rc == expect, "%s exited %s:\n%s" % (os.path.basename(self.cmd[0]), rc,
                                                      self.text()))
        return rc


def fixed_ports(count):
    """Free loopback ports below the kernel's ephemeral range, for a broker
    that must come back on the same ports."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    rng = random.Random(os.getpid() ^ int(time.time()))
    ports = []
    for _ in range(2000):
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


def broker(*extra, ports=None, env=None):
    eps = ["@tcp://127.0.0.1:%s" % (p if ports else "*") for p in (ports or ("*",) * 3)]
    b = Proc([ARGS.broker, "--ingest", eps[0], "--publish", eps[1], "--snapshot", eps[2],
              *extra], READY, env=env)
    b.ingest, b.publish, b.snapshot = (b.match.group(i).split(",")[0].lstrip("@")
                                       for i in (1, 2, 3))
    b.epoch = b.match.group(4)
    b.state = b.match.group(6)
    b.ports = [int(x.rsplit(":", 1)[1]) for x in (b.ingest, b.publish, b.snapshot)]
    return b


def gateway(b, *extra):
    g = Proc([ARGS.gateway, "--updates", ">" + b.publish, "--snapshot", ">" + b.snapshot,
              "--http", "127.0.0.1:0", "--heartbeat-timeout", "2000", *extra], SERVING)
    g.port = int(g.match.group(1))
    return g


def fault_pub(b, miner, seconds, rate):
    return Proc([ARGS.pub, ">" + b.ingest, miner, str(seconds), str(rate)],
                stdout=subprocess.PIPE)


def fault_pub_result(p, timeout=TIMEOUT * 2):
    try:
        out = p.proc.stdout.read() if p.proc.wait(timeout) is not None else ""
    except subprocess.TimeoutExpired:
        p.proc.kill()
        raise Fail("fault_pub did not finish")
    check(p.proc.returncode == 0, "fault_pub exited %s: %s" % (p.proc.returncode, p.text()))
    m = re.search(r"sent=(\d+) dropped=(\d+) seq=(\d+) final=1", out)
    check(m, "fault_pub said %r" % out)
    sent, dropped, seq = (int(x) for x in m.groups())
    check(sent + dropped == seq, "publisher: sent %d + dropped %d != seq %d" % (sent, dropped, seq))
    return sent, dropped, seq


def simulate(b, rate, seconds, miners=3):
    return Proc([ARGS.cli, "simulate", "-e", ">" + b.ingest, "-r", str(rate), "-d", str(seconds),
                 "-k", str(miners), "-q", "-w", "2"], stdout=subprocess.PIPE)


def simulate_result(p, timeout=TIMEOUT * 2):
    try:
        p.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        p.proc.kill()
        raise Fail("simulate did not finish")
    out = p.proc.stdout.read()
    check(p.proc.returncode == 0, "simulate exited %s: %s" % (p.proc.returncode, p.text()))
    m = re.search(r"sent (\d+), dropped (\d+)", out)
    check(m, "simulate summary: %r" % out)
    return int(m.group(1)), int(m.group(2))


def status_json(b):
    r = subprocess.run([ARGS.cli, "status", "--json", "--tasks", "1", "--events", "1",
                        ">" + b.snapshot], capture_output=True, text=True, timeout=TIMEOUT)
    check(r.returncode == 0, "minerwatch status failed: %s" % r.stderr)
    return json.loads(r.stdout)


def miner_of(st, name):
    for m in st["miners"]:
        if m["miner"] == name:
            return m
    raise Fail("miner %s not in %r" % (name, [m["miner"] for m in st["miners"]]))


def heartbeat(b, predicate=lambda hb: True, timeout=TIMEOUT):
    """The first broker heartbeat that satisfies predicate, as a dict."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SUBSCRIBE, b"$hb")
    s.connect(b.publish)
    try:
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            if not s.poll(200):
                continue
            _, body = s.recv_multipart()
            last = msgpack.unpackb(body, raw=False)
            if predicate(last):
                return last
        raise Fail("no matching heartbeat in %d s; last: %r; log:\n%s" % (timeout, last, b.text()))
    finally:
        s.close()


# --------------------------------------------------------------------------
# Measurements


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Fail("no VmRSS for %d" % pid)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class RssSampler:
    """Samples VmRSS of some processes every interval in a thread."""

    def __init__(self, procs, interval=0.25):
        self.procs = procs
        self.samples = {p.pid: [] for p in procs}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self.thread.start()

    def _run(self, interval):
        while not self.stop_flag.is_set():
            for p in self.procs:
                try:
                    self.samples[p.pid].append(rss_kb(p.pid))
                except (OSError, Fail):
                    pass
            self.stop_flag.wait(interval)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(5)

    def peak_mb(self, p):
        s = self.samples[p.pid]
        check(s, "no RSS sample of %d" % p.pid)
        return max(s) / 1024.0


def check_rss(sampler, p, bound_mb, what):
    peak = sampler.peak_mb(p)
    bound = bound_mb * RSS_SCALE + QUARANTINE_MB
    log("%s: peak RSS %.1f MB (bound %d MB), %d samples" % (what, peak, bound,
                                                           len(sampler.samples[p.pid])))
    check(peak <= bound, "%s: RSS %.1f MB over the bound of %d MB" % (what, peak, bound))


def http(port, path, headers=None, timeout=10):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def health(g):
    code, body = http(g.port, "/healthz")
    check(code == 200, "healthz %s" % code)
    return json.loads(body)


def wait_health(g, pred, what, timeout=30):
    deadline = time.time() + timeout
    while True:
        code, body = http(g.port, "/healthz")
        h = json.loads(body) if code == 200 else {"http_status": code}
        if code == 200 and pred(h):
            return h
        check(time.time() < deadline, "%s: %r" % (what, h))
        check(g.alive(), "%s: the gateway died:\n%s" % (what, g.text()))
        time.sleep(0.1)


def metrics(g):
    code, body = http(g.port, "/metrics")
    check(code == 200, "/metrics %s" % code)
    problems, samples = prom_check.check(body)
    check(not problems, "metrics: %s" % problems[:5])
    return samples


def metric(samples, name, labels=()):
    return samples.get((name, tuple(labels)), 0)


def wait_metric(g, name, pred, what, timeout=30):
    deadline = time.time() + timeout
    while True:
        v = metric(metrics(g), name)
        if pred(v):
            return v
        check(time.time() < deadline, "%s: %s = %r" % (what, name, v))
        time.sleep(0.2)


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, need)) if hard != resource.RLIM_INFINITY else max(soft, need)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    check(want >= need, "RLIMIT_NOFILE hard limit %d < %d" % (hard, need))


class SseClient:
    """A raw-socket SSE client: it may read, or never read at all."""

    def __init__(self, port, rcvbuf=None, path="/api/dashboard/live"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream"
                           "\r\n\r\n" % path).encode())
        self.buf = b""

    def read_until(self, marker, timeout=10):
        deadline = time.time() + timeout
        while marker not in self.buf:
            left = deadline - time.time()
            check(left > 0, "SSE: no %r in time" % marker)
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise Fail("SSE: closed before %r" % marker)
            self.buf += data

    def close(self, abort=False):
        try:
            if abort:
                # RST instead of FIN: a client that vanishes.
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            self.sock.close()
        except OSError:
            pass


class SseReader(threading.Thread):
    """A client that reads everything, parsing ids and resets."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.client = SseClient(port)
        self.ids = []
        self.resets = 0
        self.snapshots = 0
        self.stop_flag = threading.Event()
        self.error = None
        self.start()

    def run(self):
        buf = b""
        sock = self.client.sock
        sock.settimeout(0.5)
        try:
            while not self.stop_flag.is_set():
                try:
                    data = sock.recv(262144)
                except socket.timeout:
                    continue
                if not data:
                    self.error = "closed by the gateway"
                    return
                frames = (buf + data).split(b"\n\n")
                buf = frames.pop()
                for frame in frames:
                    kind = None
                    fid = None
                    for line in frame.split(b"\n"):
                        if line.startswith(b"event: "):
                            kind = line[7:]
                        elif line.startswith(b"id: "):
                            fid = int(line[4:])
                    if kind == b"reset":
                        self.resets += 1
                        self.ids.append(None)  # ids start over after a reset
                    elif kind == b"snapshot":
                        self.snapshots += 1
                    elif fid is not None and kind not in (b"broker",):
                        self.ids.append(fid)
        except OSError as e:
            self.error = str(e)

    def finish(self):
        self.stop_flag.set()
        self.join(5)
        self.client.close()


# --------------------------------------------------------------------------
# Cases


def case_broker_kill9():
    """kill -9 of the broker while a publisher streams; a new broker on the
    same ports and state file restores the last save, takes a new epoch,
    and the events after the save and during the outage show as a seq gap:
    for the miner, events + lost == the publisher's last seq, exactly."""
    d = tempfile.mkdtemp(prefix="mw-faults-")
    try:
        path = os.path.join(d, "state.mw")
        b = broker("--state-file", path, "--save-interval", "1", ports=fixed_ports(3))
        sampler = RssSampler([b])
        pub = fault_pub(b, "kill9-miner", 10, 2000)
        pub.wait_for(r"progress sent=[1-9]", 20)
        heartbeat(b, lambda hb: hb["accepted"] > 2000 and hb["saves"] >= 2)
        sampler.stop()
        check_rss(sampler, b, 150, "broker before the kill")
        b.proc.kill()
        b.proc.wait(TIMEOUT)
        check(b.proc.returncode == -signal.SIGKILL, "broker was not killed")
        time.sleep(1.0)  # the publisher drops (and counts) meanwhile
        # What the new broker will restore: the state file's payload (after
        # its 64-byte header) is the state's msgpack, counters included.
        with open(path, "rb") as f:
            saved = msgpack.unpackb(f.read()[64:], raw=False, strict_map_key=False)
        restored = saved["counters"]["total_events"]
        check(restored > 0, "the last save holds no event")
        b2 = broker("--state-file", path, ports=b.ports)
        check(b2.state == "restored", "state not restored: " + b2.text())
        check(b2.epoch != b.epoch, "a crash restart must take a new epoch")
        b2.wait_for(r"did not stop cleanly")
        sampler = RssSampler([b2])
        sent, dropped, seq = fault_pub_result(pub)
        # The final event is in once every seq is accounted for.
        deadline = time.time() + TIMEOUT
        while True:
            st = status_json(b2)
            m = miner_of(st, "kill9-miner")
            if m["events"] + m["lost"] + m["duplicates"] >= seq:
                break
            check(time.time() < deadline, "the stream never completed: %r, seq %d" % (m, seq))
            time.sleep(0.2)
        hb = heartbeat(b2, lambda hb: hb["now_ms"] > 0)
        log("publisher: sent %d dropped %d seq %d; restored %d events; broker 2 accepted %d; "
            "miner events %d lost %d" % (sent, dropped, seq, restored, hb["accepted"],
                                         m["events"], m["lost"]))
        # Every seq is either an event or a counted loss...
        check(m["events"] + m["lost"] + m["duplicates"] == seq,
              "events %d + lost %d + duplicates %d != seq %d"
              % (m["events"], m["lost"], m["duplicates"], seq))
        # ...the state is the restored one plus what the new broker accepted...
        check(st["stats"]["total_events"] == restored + hb["accepted"],
              "total %d != restored %d + accepted %d"
              % (st["stats"]["total_events"], restored, hb["accepted"]))
        check(hb["accepted"] > 0, "no event after the restart")
        # ...and the loss is what the publisher dropped plus what the dead
        # broker accepted after its last save.
        check(m["lost"] >= dropped, "lost %d < dropped %d" % (m["lost"], dropped))
        check(m["lost"] > 0, "the outage left no gap")
        check(st["stats"]["lost_events"] == m["lost"], "lost_events total")
        sampler.stop()
        check_rss(sampler, b2, 150, "restarted broker")
        b2.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def case_gateway_cut():
    """The gateway loses its broker twice under traffic. First the broker
    stops answering for 10 s (SIGSTOP): /healthz says down, then up, and
    nothing is lost (the publishers' queues hold the events). Then it is
    killed (-9) and restarted on the same ports from its state file: a new
    epoch, so the mirror resyncs and SSE clients get a reset. After each,
    ids only increase, the broker accepted exactly what was sent, and a
    fresh second gateway serves exactly the same state."""
    d = tempfile.mkdtemp(prefix="mw-faults-")
    try:
        path = os.path.join(d, "state.mw")
        b = broker("--state-file", path, "--save-interval", "1", ports=fixed_ports(3))
        g1 = gateway(b)
        wait_health(g1, lambda h: h["broker"] == "up", "up")
        reader = SseReader(g1.port)
        sim = simulate(b, 200, 18)
        sampler = RssSampler([g1])
        time.sleep(3)
        os.kill(b.pid, signal.SIGSTOP)
        stopped = time.time()
        try:
            h = wait_health(g1, lambda h: h["broker"] == "down", "down while stopped", timeout=9)
            check(h["status"] == "degraded", "degraded while the broker is away: %r" % h)
            code, _ = http(g1.port, "/api/dashboard/live/status")
            check(code == 200, "the last state is still served")
            time.sleep(max(0.0, 10 - (time.time() - stopped)))
        finally:
            os.kill(b.pid, signal.SIGCONT)
        wait_health(g1, lambda h: h["broker"] == "up", "up after SIGCONT")
        sent, dropped = simulate_result(sim)
        hb = heartbeat(b, lambda hb: hb["accepted"] == sent)
        check(hb["rejected"] == 0, "rejections: %r" % hb)
        same_state(g1, b, sent)
        log("SIGSTOP 10 s: simulate sent %d dropped %d, broker accepted %d"
            % (sent, dropped, hb["accepted"]))

        # Killed and back from the state file: a new epoch, a resync.
        heartbeat(b, lambda hb: hb["saves"] >= 1 and hb["last_save_ms"] >= hb["now_ms"] - 1500)
        resyncs = health(g1).get("resyncs", 0)
        b.proc.kill()
        b.proc.wait(TIMEOUT)
        wait_health(g1, lambda h: h["broker"] == "down", "down after kill -9")
        b2 = broker("--state-file", path, ports=b.ports)
        check(b2.state == "restored" and b2.epoch != b.epoch, "restart: %s %s" % (b2.state, b2.epoch))
        restored = status_json(b2)["stats"]["total_events"]
        h = wait_health(g1, lambda h: h["broker"] == "up" and h["epoch"] == b2.epoch,
                        "up on the new epoch")
        check(h["resyncs"] > resyncs, "no resync after the new epoch: %r" % h)
        sent2, _ = simulate_result(simulate(b2, 200, 3))
        heartbeat(b2, lambda hb: hb["accepted"] == sent2)
        same_state(g1, b2, restored + sent2)
        log("kill -9: restored %d events, then %d more; gateway resyncs %d"
            % (restored, sent2, h["resyncs"]))

        time.sleep(0.5)
        reader.finish()
        check(reader.error is None, "SSE reader: %s" % reader.error)
        check(reader.resets >= 1, "the SSE client got no reset for the new epoch")
        segment = []
        for i in reader.ids + [None]:
            if i is None:
                check(segment == sorted(segment) and len(set(segment)) == len(segment),
                      "SSE ids not increasing between resets")
                segment = []
            else:
                segment.append(i)
        # In sync at the end: the last event the client got is the newest.
        _, body = http(g1.port, "/api/dashboard/live/status?limit=1")
        newest = json.loads(body)["recent_events"][0]["id"]
        got = [i for i in reader.ids if i]
        check(got and got[-1] == newest, "SSE client at %r, newest event %d"
              % (got[-1:], newest))
        sampler.stop()
        check_rss(sampler, g1, 100, "gateway through the cuts")
        samples = metrics(g1)
        check(metric(samples, "minerwatch_gateway_link_downs_total") >= 2, "link downs not counted")
        for p in (g1, b2):
            p.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def same_state(g1, b, total):
    """A fresh gateway on b reaches the same id as g1 and serves the same
    status bytes there, with total events."""
    g2 = gateway(b)
    try:
        wait_health(g2, lambda h: h["broker"] == "up", "second gateway up")
        deadline = time.time() + 30
        while True:
            c1, body1 = http(g1.port, "/api/dashboard/live/status?limit=1000")
            c2, body2 = http(g2.port, "/api/dashboard/live/status?limit=1000")
            # 503 until a gateway has its first snapshot.
            s1 = json.loads(body1) if c1 == 200 else {}
            s2 = json.loads(body2) if c2 == 200 else {}
            if s1 and s2 and s1["id"] == s2["id"] and s1["total_events"] == total:
                break
            check(time.time() < deadline, "the gateways never agree: %s %r / %s %r, %r events"
                  % (c1, s1.get("id"), c2, s2.get("id"), s1.get("total_events")))
            time.sleep(0.05)
        check(body1 == body2, "same id, different state")
    finally:
        g2.stop()


def case_flood():
    """One publisher at full speed: the broker's memory stays bounded and
    every event is accounted for: publisher sent + dropped == seq; the
    broker accepted exactly what was sent; the drops are the miner's gaps."""
    seconds = int(os.environ.get("FAULTS_FLOOD_SECONDS", "30"))
    b = broker()
    sampler = RssSampler([b])
    pub = fault_pub(b, "flood-miner", seconds, 0)
    sent, dropped, seq = fault_pub_result(pub, timeout=seconds + TIMEOUT * 2)
    hb = heartbeat(b, lambda hb: hb["accepted"] >= sent, timeout=TIMEOUT * 2)
    st = status_json(b)
    m = miner_of(st, "flood-miner")
    sampler.stop()
    log("flood %d s: sent %d dropped %d seq %d; broker accepted %d rejected %d; "
        "miner events %d lost %d" % (seconds, sent, dropped, seq, hb["accepted"], hb["rejected"],
                                     m["events"], m["lost"]))
    check(hb["accepted"] == sent, "broker accepted %d, publisher sent %d" % (hb["accepted"], sent))
    check(hb["rejected"] == 0, "rejections: %r" % hb["rejected_by"])
    check(m["events"] == sent and m["lost"] == dropped and m["duplicates"] == 0,
          "miner events %d lost %d duplicates %d; sent %d dropped %d"
          % (m["events"], m["lost"], m["duplicates"], sent, dropped))
    check(m["events"] + m["lost"] == seq, "events + lost != seq")
    check(b.alive(), "broker died")
    # The broker's memory: the state is bounded by its config, libzmq's
    # queue by INGEST_HWM messages.
    check_rss(sampler, b, 250, "broker under the flood")
    b.stop()


def case_sse_churn():
    """1000 SSE clients connect, get their snapshot and go (half close
    cleanly, half vanish with a reset), 100 at a time, under traffic: the
    gateway's client gauge, fds and RSS come back to their baseline, and
    every connection was counted."""
    raise_nofile(4096)
    b = broker()
    # A small ring, full before the baseline is taken: what is left is the
    # memory of the clients themselves.
    g = gateway(b, "--max-clients", "200", "--ring-frames", "256")
    wait_health(g, lambda h: h["broker"] == "up", "up")
    sim = simulate(b, 200, 25)
    wait_metric(g, "minerwatch_gateway_ring_frames", lambda v: v >= 256, "ring full")
    # Warm-up: the allocator's arenas and the ring settle first.
    for _ in range(2):
        cs = [SseClient(g.port) for _ in range(100)]
        for c in cs:
            c.read_until(b"event: snapshot")
        for c in cs:
            c.close()
    wait_metric(g, "minerwatch_gateway_sse_clients", lambda v: v == 0, "clients after warm-up")
    base_fds = fd_count(g.pid)
    base_rss = rss_kb(g.pid) / 1024.0
    before = metric(metrics(g), "minerwatch_gateway_sse_connections_total")
    sampler = RssSampler([g], interval=0.05)
    total = 0
    for batch in range(10):
        cs = [SseClient(g.port) for _ in range(100)]
        for i, c in enumerate(cs):
            c.read_until(b"event: snapshot")
        for i, c in enumerate(cs):
            c.close(abort=(i % 2 == 1))
        total += len(cs)
    check(g.alive(), "gateway died")
    wait_metric(g, "minerwatch_gateway_sse_clients", lambda v: v == 0, "clients after the churn")
    samples = metrics(g)
    conns = metric(samples, "minerwatch_gateway_sse_connections_total") - before
    check(conns == total, "connections counted %d, made %d" % (conns, total))
    check(metric(samples, "minerwatch_gateway_sse_rejected_total") == 0, "a client was refused")
    deadline = time.time() + 10
    while fd_count(g.pid) > base_fds and time.time() < deadline:
        time.sleep(0.1)
    fds = fd_count(g.pid)
    rss = rss_kb(g.pid) / 1024.0
    sampler.stop()
    log("churn of %d clients: fds %d -> %d, RSS %.1f -> %.1f MB, peak %.1f MB"
        % (total, base_fds, fds, base_rss, rss, sampler.peak_mb(g)))
    check(fds <= base_fds, "fds %d, baseline %d" % (fds, base_fds))
    check(rss <= base_rss + 16 * RSS_SCALE + QUARANTINE_MB,
          "RSS %.1f MB, baseline %.1f MB" % (rss, base_rss))
    check_rss(sampler, g, 120, "gateway during the churn")
    simulate_result(sim)
    g.stop()
    b.stop()


def case_never_readers():
    """1000 SSE clients with a tiny receive window never read a byte while
    events flow fast; one client reads everything. The reader gets every
    event in order; the never-readers are closed by the unsent cap and
    counted; the gateway's memory stays bounded."""
    raise_nofile(4096)
    b = broker()
    # A ring that holds the whole run, so that the reader (Python, on a
    # loaded machine) is never pushed off its tail and reset.
    g = gateway(b, "--max-clients", "1100", "--client-max-unsent", "4194304",
                "--ring-frames", "65536", "--ring-bytes", "67108864")
    wait_health(g, lambda h: h["broker"] == "up", "up")
    stuck = []
    for _ in range(1000):
        c = SseClient(g.port, rcvbuf=2048)
        stuck.append(c)
    wait_metric(g, "minerwatch_gateway_sse_clients", lambda v: v == 1000, "1000 clients in")
    reader = SseReader(g.port)
    sampler = RssSampler([g])
    sim = simulate(b, 2000, 15)
    sent, dropped = simulate_result(sim)
    hb = heartbeat(b, lambda hb: hb["accepted"] == sent)
    wait_metric(g, "minerwatch_gateway_sse_slow_closed_total", lambda v: v >= 1000,
                "never-readers closed by the cap", timeout=60)
    last = hb["id"]
    deadline = time.time() + 60
    while not reader.ids or reader.ids[-1] < last - 1:
        check(time.time() < deadline, "the reader fell behind: %r" % reader.ids[-1:])
        if reader.error is not None:
            samples = metrics(g)
            raise Fail("reader: %s after %d events; gateway: %s; log:\n%s"
                       % (reader.error, len(reader.ids),
                          {k[0]: v for k, v in samples.items() if "sse" in k[0]}, g.text(10)))
        time.sleep(0.1)
    reader.finish()
    sampler.stop()
    samples = metrics(g)
    slow = metric(samples, "minerwatch_gateway_sse_slow_closed_total")
    log("never-readers: sent %d; reader got %d events, %d resets; slow closed %d; "
        "clients now %d; %.0f MB written to SSE sockets"
        % (sent, len(reader.ids), reader.resets, slow,
           metric(samples, "minerwatch_gateway_sse_clients"),
           metric(samples, "minerwatch_gateway_sse_bytes_total") / 1e6))
    check(reader.error is None, "reader: %s" % reader.error)
    check(reader.resets == 0, "the reader was reset")
    check(len(reader.ids) == sent, "the reader got %d of %d events" % (len(reader.ids), sent))
    check(slow == 1000, "slow clients closed: %d" % slow)
    for c in stuck:
        c.close()
    wait_metric(g, "minerwatch_gateway_sse_clients", lambda v: v == 0, "clients gone")
    check_rss(sampler, g, 200, "gateway with 1000 never-readers")
    g.stop()
    b.stop()


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        if op == 0 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:
            data = data[:rng.randrange(len(data))]
        elif op == 2:
            i = rng.randrange(len(data) + 1)
            data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and data:
            i = rng.randrange(len(data))
            data[i] = rng.choice([0xc1, 0xdf, 0xdd, 0xdb, 0xcf, 0xd3, 0xff, 0x00, 0x90, 0x80])
        elif op == 4 and data:
            i = rng.randrange(len(data))
            data[i:i] = data[i:i + rng.randint(1, 16)]
    return bytes(data)


def case_hostile_ingest():
    """Random and mutated frames on the ingest: every message is accepted
    or rejected with a reason, the counts add up exactly, the broker stays
    up with bounded memory, and good events flow after."""
    rng = random.Random(int(os.environ.get("FAULTS_SEED", "20261128")))
    b = broker()
    sampler = RssSampler([b])
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.XPUB)
    pub.setsockopt(zmq.LINGER, 5000)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.setsockopt(zmq.XPUB_NODROP, 1)
    pub.connect(b.ingest)
    check(pub.poll(TIMEOUT * 1000), "the broker never subscribed")
    pub.recv()
    good = {"v": 1, "type": "task_start", "ts": int(time.time() * 1e6), "miner": "hostile",
            "sid": 99, "seq": 1, "task_id": "t-1", "prompt": "p", "url": "https://x",
            "validator_ip": "1.2.3.4", "validator_hotkey": "5F", "timeout_ms": 1000}
    bases = [msgpack.packb(good),
             msgpack.packb(dict(good, type="task_step", step="s", details={"a": [1, 2.5]})),
             msgpack.packb(dict(good, type="my_custom", extra={"deep": [[[1]]]}, f=1.5)),
             msgpack.packb(dict(good, type="task_complete", success=True, response_time=0.5))]
    topics = [b"task_start", b"task_step", b"my_custom", b"task_complete"]
    count = int(os.environ.get("FAULTS_HOSTILE_MESSAGES", "20000"))
    for i in range(count):
        kind = rng.randrange(6)
        k = rng.randrange(len(bases))
        if kind == 0:
            frames = [topics[k], bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))]
        elif kind == 1:
            frames = [rng.choice(topics), mutate(rng, bases[k])]
        elif kind == 2:
            frames = [mutate(rng, topics[k]), bases[k]]
        elif kind == 3:
            frames = [topics[k]] * rng.choice([1, 3, 4])
        elif kind == 4:
            # A container that declares far more than it holds.
            frames = [topics[k], bytes([rng.choice([0xdc, 0xdd, 0xde, 0xdf])]) +
                      bytes(rng.randrange(256) for _ in range(rng.randint(2, 12)))]
        else:
            frames = [topics[k], mutate(rng, mutate(rng, bases[k]))]
        pub.send_multipart(frames)
    hb = heartbeat(b, lambda hb: hb["accepted"] + hb["rejected"] >= count)
    check(hb["accepted"] + hb["rejected"] == count,
          "accepted %d + rejected %d != sent %d" % (hb["accepted"], hb["rejected"], count))
    check(sum(hb["rejected_by"].values()) == hb["rejected"], "reasons do not add up: %r" % hb)
    log("hostile ingest: %d messages, %d accepted, rejected by reason: %r"
        % (count, hb["accepted"], hb["rejected_by"]))
    check(hb["rejected"] > count // 2, "too few rejections to mean anything")
    # Good events from a fresh session still flow.
    accepted = hb["accepted"]
    for seq in range(1, 11):
        pub.send_multipart([b"task_start", msgpack.packb(dict(good, sid=12345, seq=seq,
                                                             task_id="after-%d" % seq))])
    heartbeat(b, lambda hb: hb["accepted"] == accepted + 10)
    pub.close()
    sampler.stop()
    check(b.alive(), "broker died")
    check_rss(sampler, b, 150, "broker under hostile input")
    b.stop()


# Requests odd enough that a lenient server may serve them (libwebsockets
# reads an unknown HTTP version as 1.0): anything but a 5xx.
HTTP_ODD = [
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHeader\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nzzz",
    b"\r\n\r\n\r\n\r\n",
]

# Requests that must get a 4xx or a close.
HTTP_GARBAGE = [
    b"\x00\x01\x02\x03\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"POST /api/dashboard HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/dashboard/live/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
    b"GET /" + b"a" * 50000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/dashboard/live/status?since=" + b"9" * 40 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/dashboard/live HTTP/1.1\r\nHost: x\r\nLast-Event-ID: -1\r\n\r\n",
    b"GET /api/dashboard/live HTTP/1.1\r\nHost: x\r\nLast-Event-ID: " + b"1" * 100 + b"\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 64,
    b"GET /api/dashboard/live/status?types=%00%ff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/dashboard/live/status?limit=1&limit=2 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n",
    b"GET /api/dashboard HTTP/1.1\r\nHost: x\r\nAuthorization: Basic " + b"QUFB" * 300 + b"\r\n\r\n",
    b"GET /api/dashboard HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46cFg=\r\n\r\n",
    b"GET /api/dashboard HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-not\r\n\r\n",
    b"GET /api/dashboard/live?token=s3cre HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/dashboard/live?token=s3cret" + b"x" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x",  # truncated: no end of headers
    b"GE",  # truncated request line
]


def raw_exchange(port, data, timeout=3.0):
    """Send data, half-close, read the answer until close or timeout.
    Return the status code of the first response, or None if closed without
    one."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the gateway closed while we were still sending: fine
        got = b""
        deadline = time.time() + timeout
        while time.time() < deadline and len(got) < 65536:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        m = re.match(rb"HTTP/1\.[01] (\d{3})", got)
        return int(m.group(1)) if m else None, got
    finally:
        s.close()


def case_hostile_http():
    """Malformed HTTP from a fuzzing client on raw sockets: garbage, huge
    headers, bad methods, truncated requests, mutations of valid requests.
    The gateway answers 4xx or closes (never 5xx), stays up, and its
    memory and fds come back."""
    rng = random.Random(int(os.environ.get("FAULTS_SEED", "20261128")))
    b = broker()
    # Credentials, so that the Authorization parsing is under fire too;
    # /healthz and /metrics stay open for the checks.
    g = gateway(b, "--auth-token", "s3cret", "--basic-auth", "admin:pw", "--open-metrics")
    wait_health(g, lambda h: h["broker"] == "up", "up")
    base_fds = fd_count(g.pid)
    sampler = RssSampler([g])
    answers = {}
    for data in HTTP_GARBAGE:
        code, got = raw_exchange(g.port, data)
        answers[code] = answers.get(code, 0) + 1
        check(code is None or 400 <= code < 500,
              "%r...: answered %s: %r" % (data[:60], code, got[:200]))
    for data in HTTP_ODD:
        code, got = raw_exchange(g.port, data)
        answers[code] = answers.get(code, 0) + 1
        check(code is None or code < 500, "%r...: answered %s: %r" % (data[:60], code, got[:200]))
    valid = [b"GET /api/dashboard/live/status?since=1&limit=5&types=task_,error HTTP/1.1\r\n"
             b"Host: x\r\nAuthorization: Bearer s3cret\r\n\r\n",
             b"GET /api/dashboard/live/status HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"x\"\r\n"
             b"Authorization: Basic YWRtaW46cHc=\r\n\r\n",
             b"GET /metrics HTTP/1.0\r\n\r\n",
             b"GET /api/dashboard/live?token=s3cret&miner=m&task_id=t HTTP/1.1\r\nHost: x\r\n"
             b"Last-Event-ID: 5\r\n\r\n",
             b"HEAD /api/dashboard HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             b"Authorization: Bearer s3cret\r\n\r\n"]
    count = int(os.environ.get("FAULTS_HTTP_REQUESTS", "1500"))
    for i in range(count):
        kind = rng.randrange(3)
        if kind == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 400)))
        elif kind == 1:
            data = mutate(rng, rng.choice(valid))
        else:
            data = rng.choice(HTTP_GARBAGE + HTTP_ODD)
            data = data[:rng.randrange(1, len(data) + 1)]
        code, got = raw_exchange(g.port, data, timeout=2.0)
        answers[code] = answers.get(code, 0) + 1
        check(code is None or code < 500,
              "%r: answered %s: %r" % (data[:80], code, got[:200]))
        if kind == 0:
            check(code is None or 400 <= code < 500,
                  "random bytes %r answered %s" % (data[:80], code))
        if i % 250 == 0:
            check(g.alive(), "gateway died")
    log("hostile HTTP: %d requests, answers by status: %r" % (count + len(HTTP_GARBAGE) + len(HTTP_ODD),
                                                           sorted(answers.items(), key=str)))
    check(g.alive(), "gateway died")
    check(health(g)["broker"] == "up", "health after the storm")
    deadline = time.time() + 10
    while fd_count(g.pid) > base_fds and time.time() < deadline:
        time.sleep(0.1)
    sampler.stop()
    check(fd_count(g.pid) <= base_fds, "fds %d, baseline %d" % (fd_count(g.pid), base_fds))
    check_rss(sampler, g, 100, "gateway under malformed HTTP")
    g.stop()
    b.stop()


def case_disk_full():
    """The disk fills up under the state file (an LD_PRELOAD shim makes
    writes to PATH.tmp fail with ENOSPC after 4 KiB): every save fails
    with a clear log line and is counted, the previous file stays intact,
    the broker keeps accepting events; when space returns, saves work
    again and a restart restores everything."""
    check(ARGS.shim and os.path.exists(ARGS.shim), "no --shim library")
    d = tempfile.mkdtemp(prefix="mw-faults-")
    try:
        path = os.path.join(d, "state.mw")
        flag = os.path.join(d, "disk-full")
        env = dict(os.environ, LD_PRELOAD=ARGS.shim, MW_ENOSPC_FLAG=flag,
                   MW_ENOSPC_AFTER="4096")
        # An ASan broker must accept a preloaded library before its runtime.
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
        b = broker("--state-file", path, "--save-interval", "1", env=env)
        sampler = RssSampler([b])
        first, _, _ = fault_pub_result(fault_pub(b, "disk-miner", 2, 2000))
        hb = heartbeat(b, lambda hb: hb["accepted"] == first and hb["saves"] >= 2)
        # Saves of the same state may race the flag: wait for a save of
        # the final state, then fill the disk.
        saves = hb["saves"]
        heartbeat(b, lambda hb: hb["saves"] > saves + 1)
        open(flag, "w").close()
        hb = heartbeat(b, lambda hb: hb["save_failures"] >= 1)
        good = open(path, "rb").read()
        hb = heartbeat(b, lambda hb: hb["save_failures"] >= 3)
        b.wait_for(r"cannot save state to .*state\.mw: write .*No space left on device")
        b.wait_for(r"the broker keeps running, the file keeps its previous content")
        check(os.path.exists(flag + ".count"), "the shim refused nothing")
        check(open(path, "rb").read() == good, "the state file changed while the disk was full")
        check(not os.path.exists(path + ".tmp"), "a temporary file was left behind")
        # Still working: more events are accepted.
        second, _, _ = fault_pub_result(fault_pub(b, "disk-miner-2", 1, 2000))
        hb = heartbeat(b, lambda hb: hb["accepted"] == first + second)
        failures = hb["save_failures"]
        saves = hb["saves"]
        check(open(path, "rb").read() == good, "the state file changed while the disk was full")
        errors = [l for l in b.lines if "cannot save state" in l]
        check(len(errors) <= 2, "a failing save logged %d times (rate limit)" % len(errors))
        # Space returns.
        os.unlink(flag)
        hb = heartbeat(b, lambda hb: hb["saves"] > saves)
        b.wait_for(r"state file saves work again")
        check(open(path, "rb").read() != good, "the state file was not rewritten")
        log("disk full: %d saves failed while full, then saves resumed (%d)"
            % (failures, hb["saves"]))
        sampler.stop()
        check_rss(sampler, b, 150, "broker with a full disk")
        b.stop()
        b2 = broker("--state-file", path)
        check(b2.state == "restored", "not restored after the disk came back")
        st = status_json(b2)
        check(st["stats"]["total_events"] == first + second,
              "restored %d events, accepted %d" % (st["stats"]["total_events"], first + second))
        b2.stop()
    finally:
        shutil.rmtree(d, ignore_errors=True)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", required=True)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--pub", required=True)
    ap.add_argument("--shim")
    ap.add_argument("case", choices=sorted(CASES))
    ARGS = ap.parse_args()
    started = time.time()
    try:
        CASES[ARGS.case]()
    except Fail as e:
        print("FAIL %s: %s" % (ARGS.case, e), flush=True)
        return 1
    finally:
        for p in PROCS:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGCONT)
                except OSError:
                    pass
                p.kill()
                p.wait()
    print("PASS %s (%.1f s)" % (ARGS.case, time.time() - started), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
