"""test_up.py - `minerwatch up`: broker and gateway in one process.

Usage: test_up.py MINERWATCH CASE

Real processes on 127.0.0.1 with free ports; Debian's python3 standard
library and curl. Every wait is bounded. Exit status 0 = pass.

Cases:
  live        up --demo: /healthz says the broker link is up; the status JSON
              shows events and active tasks growing; SSE gives a snapshot then
              events; `minerwatch publish` to the ingest endpoint shows up in
              the status JSON; `minerwatch status` and `tail` work against the
              snapshot and update endpoints; SIGTERM exits 0 in time
  state_file  --state-file: SIGINT saves the state, a new `up` restores it
  help        --help and `minerwatch help up` exit 0
  bad_flag    bad flags and values exit 2 with a message
  busy_port   an HTTP or ingest port in use: exit 1 with a clear message

MW_UP_WRAPPER: a command to run `minerwatch up` under (e.g. valgrind); the
waits are then longer.
"""
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MW = None
WRAPPER = shlex.split(os.environ.get("MW_UP_WRAPPER", ""))
SLOW = 6 if WRAPPER else 1
PROCS = []


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held until all are chosen)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Up:
    """`minerwatch up` with free ports; stdout and stderr read in threads."""

    def __init__(self, *extra, demo=True, ports=None, wait=True):
        self.http, self.ingest, self.publish, self.snapshot = ports or free_ports(4)
        cmd = [*WRAPPER, MW, "up", "--http", "127.0.0.1:%d" % self.http,
               "--ingest", "@tcp://127.0.0.1:%d" % self.ingest,
               "--publish", "@tcp://127.0.0.1:%d" % self.publish,
               "--snapshot", "@tcp://127.0.0.1:%d" % self.snapshot, *extra]
        if demo:
            cmd += ["--demo", "--demo-rate", "40"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        PROCS.append(self.proc)
        self.out, self.err = [], []
        self.cond = threading.Condition()
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()
        if wait:
            m = self.wait_out(r"dashboard\s+(http://\S+)/api/dashboard", 30 * SLOW)
            check(m.group(1) == "http://127.0.0.1:%d" % self.http, "URL %r" % m.group(1))

    def _read(self, stream, lines):
        for line in stream:
            with self.cond:
                lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_out(self, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for line in self.out:
                    m = rx.search(line)
                    if m:
                        return m
                if time.time() > deadline or self.proc.poll() is not None:
                    raise Fail("no stdout line matching %r:\n%s" % (pattern, self.logs()))
                self.cond.wait(0.2)

    def logs(self):
        with self.cond:
            return "stdout:\n%s\nstderr:\n%s" % ("\n".join(self.out[-30:]),
                                                 "\n".join(self.err[-30:]))

    def stop(self, sig=signal.SIGTERM, within=10):
        t0 = time.time()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(within * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Fail("up did not stop within %ss after %s:\n%s" % (within * SLOW, sig,
                                                                   self.logs()))
        time.sleep(0.2)  # let the reader threads take the last lines
        check(rc == 0, "up exited %s after %s:\n%s" % (rc, sig, self.logs()))
        return time.time() - t0

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http, path)


def curl(url, timeout=10):
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout * SLOW), "-o", "-",
                        "-w", "\n%{http_code}", url], capture_output=True, text=True,
                       timeout=timeout * SLOW + 10)
    check(r.returncode == 0, "curl %s: %s" % (url, r.stderr))
    body, _, code = r.stdout.rpartition("\n")
    return int(code), body


def get_json(up, path):
    code, body = curl(up.url(path))
    check(code == 200, "%s: HTTP %d %s" % (path, code, body[:200]))
    return json.loads(body)


def wait_json(up, path, pred, what, timeout=20):
    deadline = time.time() + timeout * SLOW
    doc = None
    while True:
        code, body = curl(up.url(path))
        # 503 "starting": the gateway has no snapshot yet; anything else is wrong.
        check(code in (200, 503), "%s: HTTP %d %s" % (path, code, body[:200]))
        if code == 200:
            doc = json.loads(body)
            if pred(doc):
                return doc
        if time.time() > deadline:
            raise Fail("%s; last %s: %s\n%s" % (what, path, json.dumps(doc)[:600], up.logs()))
        time.sleep(0.2)


class Sse:
    """curl -N on the SSE endpoint, parsed into (event, id, data) frames."""

    def __init__(self, up):
        self.proc = subprocess.Popen(["curl", "-sSN", up.url("/api/dashboard/live")],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        PROCS.append(self.proc)
        self.buf = b""

    def next(self, timeout=15):
        deadline = time.time() + timeout * SLOW
        frame = {}
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                line = line.decode()
                if line == "":
                    if "event" in frame or "data" in frame:
                        return frame
                    frame = {}
                elif line.startswith(":"):
                    continue
                else:
                    key, _, value = line.partition(":")
                    frame[key] = value[1:] if value.startswith(" ") else value
            left = deadline - time.time()
            check(left > 0, "no SSE frame within %ss" % (timeout * SLOW))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                check(chunk, "SSE stream closed")
                self.buf += chunk

    def close(self):
        self.proc.kill()
        self.proc.wait()


def run_cli(*args, timeout=30):
    return subprocess.run([MW, *args], capture_output=True, text=True,
                          timeout=timeout * SLOW, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------------------


def case_live():
    up = Up()
    # The banner says how to connect a miner and where the other endpoints are.
    up.wait_out(r"publish to '>tcp://127\.0\.0\.1:%d'" % up.ingest, 5)
    up.wait_out(r"minerwatch status '>tcp://127\.0\.0\.1:%d'" % up.snapshot, 5)

    health = wait_json(up, "/healthz", lambda h: h.get("broker") == "up" and h.get("broker_up"),
                       "/healthz never said the broker link is up")
    check(health["status"] == "ok", "healthz %r" % health)

    # Events and active tasks grow.
    first = wait_json(up, "/api/dashboard/live/status",
                      lambda s: s["total_events"] > 0 and s["active_task_count"] > 0,
                      "no events or active tasks from the demo")
    seen = {t["task_id"] for t in first["active_tasks"]}
    later = wait_json(up, "/api/dashboard/live/status?limit=200",
                      lambda s: s["total_events"] >= first["total_events"] + 20 and
                      len(seen | {t["task_id"] for t in s["active_tasks"]}) > len(seen) and
                      s["id"] > first["id"],
                      "events and active tasks did not grow")
    miners = {e.get("miner") for e in later["recent_events"]}
    check(any(m and m.startswith("demo-miner-") for m in miners), "miners %r" % miners)

    # SSE: a snapshot first, then events with growing ids.
    sse = Sse(up)
    try:
        snap = sse.next()
        check(snap.get("event") == "snapshot", "first SSE frame %r" % snap)
        json.loads(snap["data"])
        ids = []
        while len(ids) < 5:
            f = sse.next()
            if f.get("event") in ("snapshot", "reset", "broker"):
                continue
            check("id" in f and f.get("data"), "event frame %r" % f)
            ev = json.loads(f["data"])
            check(ev["type"] == f["event"] and ev["id"] == int(f["id"]), "frame %r" % f)
            ids.append(int(f["id"]))
        check(ids == sorted(ids) and len(set(ids)) == len(ids), "ids %r" % ids)
    finally:
        sse.close()

    # A miner of our own, on the ingest endpoint.
    r = run_cli("publish", "-e", ">tcp://127.0.0.1:%d" % up.ingest, "-t", "task_start",
                "-m", "up-test-miner", "-w", str(5 * SLOW), "task_id=up-test-task-1",
                "prompt=hello from the up test", "url=https://example.com/")
    check(r.returncode == 0, "publish: %s %s" % (r.returncode, r.stderr))
    doc = wait_json(up, "/api/dashboard/live/status?limit=500",
                    lambda s: any(t["task_id"] == "up-test-task-1"
                                  for t in s["active_tasks"]),
                    "the published task never showed up")
    task = [t for t in doc["active_tasks"] if t["task_id"] == "up-test-task-1"][0]
    check(task["miner"] == "up-test-miner" and task["prompt"] == "hello from the up test",
          "task %r" % task)
    check("up-test-miner" in json.dumps(doc["miners"]), "miners %r" % doc["miners"])

    # minerwatch status against the snapshot endpoint, tail on the updates.
    r = run_cli("status", "--json", "--timeout", str(5 * SLOW),
                ">tcp://127.0.0.1:%d" % up.snapshot)
    check(r.returncode == 0, "status: %s %s" % (r.returncode, r.stderr))
    st = json.loads(r.stdout)
    check("up-test-task-1" in r.stdout, "status JSON lacks the task: %s" % r.stdout[:400])
    check(st.get("total_events", 0) > 0 or st.get("id", 0) > 0, "status %s" % r.stdout[:300])
    r = run_cli("tail", "--json", "--count", "3", "--timeout", str(10 * SLOW),
                ">tcp://127.0.0.1:%d" % up.publish)
    check(r.returncode == 0, "tail: %s %s" % (r.returncode, r.stderr))
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    check(len(lines) == 3 and all("id" in e for e in lines), "tail %r" % r.stdout[:300])

    took = up.stop(signal.SIGTERM, within=10)
    check(took < 10 * SLOW, "stop took %.1fs" % took)
    check(any("demo:" in line and "events sent" in line for line in up.err),
          "no demo summary:\n%s" % up.logs())


def case_state_file():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "state.bin")
        up = Up("--state-file", path, demo=False)
        wait_json(up, "/healthz", lambda h: h.get("broker") == "up", "broker link never up")
        r = run_cli("publish", "-e", ">tcp://127.0.0.1:%d" % up.ingest, "-t", "task_start",
                    "-m", "saver", "-w", str(5 * SLOW), "task_id=saved-task",
                    "prompt=kept across restarts")
        check(r.returncode == 0, "publish: %s" % r.stderr)
        wait_json(up, "/api/dashboard/live/status",
                  lambda s: any(t["task_id"] == "saved-task" for t in s["active_tasks"]),
                  "task never showed up")
        up.stop(signal.SIGINT)
        check(os.path.getsize(path) > 0, "no state file")
        up2 = Up("--state-file", path, demo=False)
        doc = wait_json(up2, "/api/dashboard/live/status",
                        lambda s: any(t["task_id"] == "saved-task"
                                      for t in s["active_tasks"]),
                        "the state was not restored")
        check(doc["total_events"] >= 1, "restored %r" % doc["total_events"])
        up2.stop(signal.SIGTERM)


def case_help():
    for args in (["up", "--help"], ["up", "-h"], ["help", "up"]):
        r = run_cli(*args)
        check(r.returncode == 0, "%s: exit %s" % (args, r.returncode))
        for word in ("--http", "--ingest", "--demo", "--publish", "--snapshot", "--state-file",
                     "--auth-token"):
            check(word in r.stdout, "%s: no %s in:\n%s" % (args, word, r.stdout))
    r = run_cli("--help")
    check(r.returncode == 0 and re.search(r"^\s+up\s", r.stdout, re.M), "no 'up' in the list")


def case_bad_flag():
    cases = [
        (["--bogus"], "unknown option '--bogus'"),
        (["--http"], "needs a value"),
        (["--http", "nonsense"], "http"),
        (["--demo-rate", "fast"], "--demo-rate"),
        (["--demo-rate", "0"], "--demo-rate"),
        (["--demo-miners", "0"], "--demo-miners"),
        (["--ingest", "tcp:/x"], "--ingest"),
        (["--publish", "nope"], "--publish"),
        (["--demo=yes"], "takes no value"),
        (["--curve-secret", "x"], "CURVE"),
        (["--recent-events", "x"], "recent-events"),
        (["--http", "0.0.0.0:8080"], "auth"),
        (["stray"], "unexpected argument 'stray'"),
        (["--demo", "--ingest", ">tcp://127.0.0.1:1"], "--demo needs"),
    ]
    for args, expect in cases:
        r = run_cli("up", *args, timeout=10)
        check(r.returncode == 2, "up %s: exit %s, stderr %r" % (args, r.returncode, r.stderr))
        check(expect.lower() in r.stderr.lower() and "minerwatch up" in r.stderr,
              "up %s: stderr %r lacks %r" % (args, r.stderr, expect))
        check(r.stdout == "", "up %s printed %r" % (args, r.stdout))


def case_busy_port():
    # HTTP port in use.
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy = holder.getsockname()[1]
    ports = free_ports(3)
    try:
        up = Up(ports=[busy] + ports, demo=False, wait=False)
        rc = up.proc.wait(15 * SLOW)
        time.sleep(0.2)
        check(rc == 1, "busy HTTP port: exit %s\n%s" % (rc, up.logs()))
        check(any("127.0.0.1:%d" % busy in line and "in use" in line for line in up.err),
              "busy HTTP port: unclear message\n%s" % up.logs())
        # Ingest port in use.
        http, pub, snap = free_ports(3)
        up = Up(ports=[http, busy, pub, snap], demo=False, wait=False)
        rc = up.proc.wait(15 * SLOW)
        time.sleep(0.2)
        check(rc == 1, "busy ingest port: exit %s\n%s" % (rc, up.logs()))
        check(any(str(busy) in line and "in use" in line.lower() for line in up.err),
              "busy ingest port: unclear message\n%s" % up.logs())
    finally:
        holder.close()


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global MW
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print("usage: test_up.py MINERWATCH {%s}" % ",".join(CASES), file=sys.stderr)
        return 2
    MW = sys.argv[1]
    try:
        CASES[sys.argv[2]]()
    except Fail as e:
        print("FAIL %s: %s" % (sys.argv[2], e), file=sys.stderr)
        return 1
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
    print("PASS %s" % sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
