#!/usr/bin/python3
"""soak.py - minerwatch under a realistic load for a long time; is memory flat?

Usage: soak.py --broker BIN --gateway BIN --cli BIN [options]

Starts a broker, a gateway and `minerwatch simulate` (RATE events/s from
MINERS miners) on 127.0.0.1, connects CLIENTS SSE clients that read
everything and POLLERS clients that poll the status JSON once a second
(with If-None-Match), and runs for SOAK_SECONDS. Every 5 s it samples the
RSS (VmRSS, /proc/PID/status) of the broker, the gateway and the simulator
into a CSV. At the end it reports, per process, the mean RSS of the first
minute, of the first window after a warm-up in which the bounded rings fill
(20% of the run, at most 2 minutes) and of the last window (a minute each),
the growth between the last two and the least-squares slope after the
warm-up, and fails if any process grew by more than --max-growth-mb (or
--max-growth-pct of its first window, whichever is larger), if a process
died, or if the accounting is off (the broker accepted exactly what the
simulator sent; no SSE client was closed, reset or left behind).

Options (environment in parentheses):
  --seconds N         duration (SOAK_SECONDS, default 600)
  --rate N            events per second (SOAK_RATE, default 200)
  --miners N          simulated miners (default 10)
  --clients N         SSE clients (SOAK_CLIENTS, default 200)
  --pollers N         status pollers (default 20)
  --interval S        seconds between samples (default 5)
  --csv FILE          where the samples go (default soak-rss.csv in the cwd)
  --max-growth-mb M   allowed growth per process (SOAK_MAX_GROWTH_MB, default 4)
  --max-growth-pct P  allowed growth in percent (default 10)
Exit 0 if flat and accounted, 1 if not, 2 on bad usage. Debian's python3.
"""
import argparse
import csv
import http.client
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

READY = re.compile(r"ready: ingest=(\S+) publish=(\S+) snapshot=(\S+)")
SERVING = re.compile(r"serving https?://\S+?:(\d+)/api/dashboard")


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


class Proc:
    def __init__(self, name, cmd, pattern=None, timeout=30, stdout=subprocess.DEVNULL):
        self.name = name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.match = self._wait(pattern, timeout) if pattern else None

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                del self.lines[:-200]
                self.cond.notify_all()

    def _wait(self, pattern, timeout):
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    m = pattern.search(line)
                    if m:
                        return m
                check(time.time() < deadline and self.proc.poll() is None,
                      "%s did not start:\n%s" % (self.name, "\n".join(self.lines[-20:])))
                self.cond.wait(0.2)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def get(port, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def metric(port, name):
    _, _, body = get(port, "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


class SseFleet(threading.Thread):
    """CLIENTS SSE connections served by one selector thread; counts frames."""

    def __init__(self, port, count):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.state = {}
        self.stop_flag = threading.Event()
        self.closed = 0
        self.resets = 0
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /api/dashboard/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Accept: text/event-stream\r\n\r\n")
            s.setblocking(False)
            self.state[s] = {"tail": b"", "events": 0, "last_id": 0}
            self.sel.register(s, selectors.EVENT_READ)
        self.start()

    def run(self):
        while not self.stop_flag.is_set():
            for key, _ in self.sel.select(0.5):
                s = key.fileobj
                try:
                    data = s.recv(262144)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                st = self.state[s]
                if not data:
                    self.closed += 1
                    self.sel.unregister(s)
                    s.close()
                    continue
                buf = st["tail"] + data
                frames = buf.split(b"\n\n")
                st["tail"] = frames.pop()
                for f in frames:
                    if b"event: reset" in f:
                        self.resets += 1
                    m = re.search(rb"(?m)^id: (\d+)$", f)
                    if m and b"event: broker" not in f:
                        st["events"] += 1
                        st["last_id"] = int(m.group(1))

    def finish(self):
        self.stop_flag.set()
        self.join(5)
        for s in list(self.state):
            try:
                s.close()
            except OSError:
                pass


class Pollers(threading.Thread):
    def __init__(self, port, count):
        super().__init__(daemon=True)
        self.port = port
        self.count = count
        self.stop_flag = threading.Event()
        self.requests = 0
        self.not_modified = 0
        self.errors = 0
        self.last_error = None
        self.start()

    def run(self):
        etags = [None] * self.count
        served = False
        while not self.stop_flag.is_set():
            start = time.time()
            for i in range(self.count):
                headers = {"If-None-Match": etags[i]} if etags[i] else {}
                try:
                    code, hdrs, _ = get(self.port, "/api/dashboard/live/status?limit=20", headers)
                except OSError as e:
                    self.errors += 1
                    self.last_error = repr(e)
                    continue
                self.requests += 1
                if code == 304:
                    self.not_modified += 1
                elif code == 200:
                    etags[i] = hdrs.get("etag")
                    served = True
                elif code == 503 and not served:
                    pass  # "starting": no status rendered yet
                else:
                    self.errors += 1
                    self.last_error = "HTTP %d" % code
            self.stop_flag.wait(max(0.0, 1.0 - (time.time() - start)))

    def finish(self):
        self.stop_flag.set()
        self.join(15)


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def slope_mb_per_min(points):
    """Least-squares slope of (seconds, kB) points, in MB per minute."""
    if len(points) < 2:
        return 0.0
    mx = mean([p[0] for p in points])
    my = mean([p[1] for p in points])
    den = sum((p[0] - mx) ** 2 for p in points)
    if den == 0:
        return 0.0
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den * 60 / 1024


def main():
    env = os.environ
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broker", required=True)
    ap.add_argument("--gateway", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--seconds", type=int, default=int(env.get("SOAK_SECONDS", "600")))
    ap.add_argument("--rate", type=int, default=int(env.get("SOAK_RATE", "200")))
    ap.add_argument("--miners", type=int, default=10)
    ap.add_argument("--clients", type=int, default=int(env.get("SOAK_CLIENTS", "200")))
    ap.add_argument("--pollers", type=int, default=20)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--csv", default="soak-rss.csv")
    ap.add_argument("--max-growth-mb", type=float,
                    default=float(env.get("SOAK_MAX_GROWTH_MB", "4")))
    ap.add_argument("--max-growth-pct", type=float, default=10.0)
    args = ap.parse_args()
    if args.seconds < 10 or args.rate < 1 or args.clients < 0 or args.interval <= 0:
        ap.error("--seconds >= 10, --rate >= 1, --clients >= 0, --interval > 0")

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.clients + 256)), hard))

    procs = []
    fleet = pollers = None
    try:
        b = Proc("broker", [args.broker, "--ingest", "@tcp://127.0.0.1:*", "--publish",
                            "@tcp://127.0.0.1:*", "--snapshot", "@tcp://127.0.0.1:*",
                            "--quiet"], READY)
        procs.append(b)
        ingest, publish, snapshot = (b.match.group(i).split(",")[0].lstrip("@")
                                     for i in (1, 2, 3))
        g = Proc("gateway", [args.gateway, "--updates", ">" + publish, "--snapshot",
                             ">" + snapshot, "--http", "127.0.0.1:0",
                             "--max-clients", str(args.clients + 16)], SERVING)
        procs.append(g)
        port = int(g.match.group(1))
        deadline = time.time() + 30
        while json.loads(get(port, "/healthz")[2])["broker"] != "up":
            check(time.time() < deadline, "the gateway never saw the broker")
            time.sleep(0.1)
        fleet = SseFleet(port, args.clients)
        pollers = Pollers(port, args.pollers)
        sim = Proc("simulate", [args.cli, "simulate", "-e", ">" + ingest, "-r", str(args.rate),
                                "-d", str(args.seconds), "-k", str(args.miners), "-q",
                                "-w", "5"], stdout=subprocess.PIPE)
        procs.append(sim)
        watched = [b, g, sim]
        rows = []
        start = time.time()
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["seconds"] + ["%s_rss_kb" % p.name for p in watched])
            while sim.proc.poll() is None and time.time() - start < args.seconds + 60:
                t = time.time() - start
                row = [round(t, 1)] + [rss_kb(p.pid) for p in watched]
                w.writerow(row)
                f.flush()
                rows.append(row)
                for p in (b, g):
                    check(p.proc.poll() is None, "%s died:\n%s" % (p.name, "\n".join(p.lines)))
                time.sleep(max(0.0, args.interval - (time.time() - start - t)))
        out = sim.proc.stdout.read()
        check(sim.proc.wait(60) == 0, "simulate failed: %s" % "\n".join(sim.lines[-10:]))
        m = re.search(r"sent (\d+), dropped (\d+)", out)
        check(m, "simulate summary: %r" % out)
        sent, dropped = int(m.group(1)), int(m.group(2))
        deadline = time.time() + 30
        while metric(port, "minerwatch_broker_events_accepted_total") != sent:
            check(time.time() < deadline, "broker accepted %r, simulate sent %d"
                  % (metric(port, "minerwatch_broker_events_accepted_total"), sent))
            time.sleep(0.5)
        last_id = metric(port, "minerwatch_gateway_last_id")
        time.sleep(2)
        slow = metric(port, "minerwatch_gateway_sse_slow_closed_total")
        fell = metric(port, "minerwatch_gateway_sse_fell_behind_total")
        fleet.finish()
        pollers.finish()

        # The verdict.
        duration = rows[-1][0] if rows else 0
        warm = min(120.0, duration * 0.2)
        window = min(60.0, max(args.interval * 2, (duration - warm) / 3))
        first = [r for r in rows if warm <= r[0] < warm + window]
        last = [r for r in rows if r[0] >= duration - window]
        ok = True
        print("soak: %d s at %d events/s, %d miners, %d SSE clients, %d pollers"
              % (duration, args.rate, args.miners, args.clients, args.pollers))
        print("samples: %d every %.0f s in %s; warm-up %.0f s, windows of %.0f s"
              % (len(rows), args.interval, args.csv, warm, window))
        minute0 = [r for r in rows if r[0] < min(60.0, window)]
        print("| process | first minute MB | after warm-up MB | last window MB | growth MB "
              "| slope MB/min | peak MB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for i, p in enumerate(watched, start=1):
            f_mb = mean([r[i] for r in first if r[i]]) / 1024
            l_mb = mean([r[i] for r in last if r[i]]) / 1024
            peak = max((r[i] or 0) for r in rows) / 1024
            slope = slope_mb_per_min([(r[0], r[i]) for r in rows if r[0] >= warm and r[i]])
            growth = l_mb - f_mb
            bound = max(args.max_growth_mb, f_mb * args.max_growth_pct / 100)
            flag = "" if growth <= bound else "  <-- over %.1f MB" % bound
            ok = ok and growth <= bound
            m0 = mean([r[i] for r in minute0 if r[i]]) / 1024
            print("| %s | %.1f | %.1f | %.1f | %+.2f | %+.3f | %.1f |%s"
                  % (p.name, m0, f_mb, l_mb, growth, slope, peak, flag))
        events = [st["events"] for st in fleet.state.values()]
        print("events: sent %d, dropped %d, accepted %d, last id %d; SSE clients got %d..%d "
              "events each, %d closed, %d resets, %s slow-closed, %s fell behind; polls %d "
              "(%d not modified, %d errors)"
              % (sent, dropped, sent, last_id or 0, min(events or [0]), max(events or [0]),
                 fleet.closed, fleet.resets, slow, fell, pollers.requests, pollers.not_modified,
                 pollers.errors))
        check(fleet.closed == 0 and fleet.resets == 0 and not slow and not fell,
              "SSE clients were closed or reset")
        check(pollers.errors == 0, "status polls failed (last: %s)" % pollers.last_error)
        check(not events or min(events) >= sent, "an SSE client missed events")
        print("verdict: %s" % ("FLAT" if ok else "GROWING"))
        return 0 if ok else 1
    except Fail as e:
        print("soak FAILED: %s" % e)
        return 1
    finally:
        if fleet:
            fleet.finish()
        if pollers:
            pollers.finish()
        for p in reversed(procs):
            p.stop()


if __name__ == "__main__":
    sys.exit(main())
