"""test_http.py - integration tests of the gateway's HTTP server.

Usage: test_http.py HARNESS CASE

HARNESS is gw_harness (it serves a synthetic state on a free loopback port
and takes commands on stdin); CASE names one test below. Real sockets on
127.0.0.1 only; Debian's python3 standard library, curl and openssl.
Every wait is bounded. Exit status 0 = pass.
"""
import base64
import html.parser
import http.client
import json
import os
import re
import select
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prom_check  # noqa: E402

HARNESS = None
CSP_PREFIX = "default-src 'none'"


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


# ---------------------------------------------------------------------------
# The harness process


# MW_GW_WRAPPER: a command to run the harness under, e.g. valgrind.
WRAPPER = shlex.split(os.environ.get("MW_GW_WRAPPER", ""))
SLOW = 5 if WRAPPER else 1


class Harness:
    def __init__(self, *args, expect_fail=False):
        self.proc = subprocess.Popen(
            [*WRAPPER, HARNESS, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self._readline(10 * SLOW)
        if expect_fail:
            self.first = line
            return
        if not line.startswith("PORT "):
            raise Fail("harness did not start: %r %s" % (line, self._stderr()))
        self.port = int(line.split()[1])

    def _readline(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            raise Fail("harness gave no answer within %ss" % timeout)
        return self.proc.stdout.readline().strip()

    def _stderr(self):
        try:
            self.proc.kill()
            return self.proc.stderr.read()
        except Exception:
            return ""

    def cmd(self, text, timeout=60 * SLOW):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        line = self._readline(timeout)
        check(line.startswith("OK"), "harness answered %r to %r" % (line, text))
        return line[2:].strip()

    def last_id(self, text):
        return int(self.cmd(text))

    def stats(self):
        # The server publishes its counters every MW_HTTP_TICK_MS (250 ms).
        time.sleep(0.35)
        return dict(kv.split("=") for kv in self.cmd("stats").split())

    def close(self):
        if self.proc.poll() is None:
            try:
                self.cmd("quit", 20 * SLOW)
            except Exception:
                pass
        try:
            rc = self.proc.wait(20 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Fail("harness did not stop")
        err = self.proc.stderr.read()
        check(rc == 0, "harness exited %s: %s" % (rc, err))

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.close()
        else:
            self.proc.kill()
            self.proc.wait(10)


# ---------------------------------------------------------------------------
# Clients


def request(port, path, method="GET", headers=None, body=None, timeout=10 * SLOW):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def get_json(port, path, headers=None, status=200):
    code, hdrs, data = request(port, path, headers=headers)
    check(code == status, "%s: status %s, expected %s: %r" % (path, code, status, data[:200]))
    check(hdrs.get("content-type", "").startswith("application/json"), "%s: content-type" % path)
    check(hdrs.get("content-security-policy", "").startswith(CSP_PREFIX), "%s: no CSP" % path)
    return json.loads(data), hdrs


class Sse:
    """A small SSE client on a raw socket: it can stop reading, and its
    receive buffer can be made small."""

    def __init__(self, port, path="/api/dashboard/live", headers=None, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        lines = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port,
                 "Accept: text/event-stream"]
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        self.status = None
        self.headers = {}
        self.closed = False

    def _fill(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            raise Fail("SSE: timed out")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Fail("SSE: timed out")
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            raise Fail("SSE: connection closed")
        self.buf += data

    def read_headers(self, timeout=10 * SLOW):
        deadline = time.time() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        if self.status != 200:
            # The error body has a content-length: read it whole.
            n = int(self.headers.get("content-length", "0"))
            while len(self.buf) < n:
                self._fill(deadline)
        return self.status

    def event(self, timeout=10 * SLOW):
        """The next frame as a dict: id, event, data (str), retry, comment."""
        deadline = time.time() + timeout
        while b"\n\n" not in self.buf:
            self._fill(deadline)
        raw, self.buf = self.buf.split(b"\n\n", 1)
        ev = {"raw": raw}
        for line in raw.decode("utf-8").split("\n"):
            if line.startswith(":"):
                ev["comment"] = line[1:].strip()
                continue
            k, _, v = line.partition(":")
            v = v[1:] if v.startswith(" ") else v
            if k == "data" and "data" in ev:
                ev["data"] += "\n" + v
            else:
                ev[k] = v
        return ev

    def next_of(self, kind, timeout=10 * SLOW, skip=("broker",)):
        """Skip keepalives, retry and the kinds in skip; return the next frame."""
        deadline = time.time() + timeout
        while True:
            ev = self.event(max(0.01, deadline - time.time()))
            if "comment" in ev or ("retry" in ev and "event" not in ev):
                continue
            if ev.get("event") in skip and ev.get("event") != kind:
                continue
            check(kind is None or ev.get("event") == kind,
                  "expected event %s, got %r" % (kind, ev["raw"][:200]))
            return ev

    def events_until(self, last_id, timeout=20 * SLOW):
        """Event frames up to and including id last_id."""
        out = []
        deadline = time.time() + timeout
        while True:
            ev = self.next_of(None, max(0.01, deadline - time.time()))
            if ev.get("event") in ("broker",):
                continue
            out.append(ev)
            if "id" in ev and int(ev["id"]) >= last_id:
                return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def open_sse(port, path="/api/dashboard/live", headers=None):
    s = Sse(port, path, headers)
    check(s.read_headers() == 200, "SSE %s: status %s" % (path, s.status))
    return s


# ---------------------------------------------------------------------------
# Cases


def case_framing():
    with Harness("--events", "120") as h:
        s = open_sse(h.port)
        hd = s.headers
        check(hd.get("content-type") == "text/event-stream", "content-type %r" % hd)
        check(hd.get("cache-control") == "no-cache", "cache-control")
        check(hd.get("x-accel-buffering") == "no", "x-accel-buffering")
        check(hd.get("content-security-policy", "").startswith(CSP_PREFIX), "CSP")
        first = s.event()
        check(first.get("retry") == "2000", "first frame is retry: %r" % first)
        snap = s.next_of("snapshot")
        check(snap.get("id") == "120", "snapshot id %r" % snap.get("id"))
        state = json.loads(snap["data"])
        for key in ("active_tasks", "active_task_count", "recent_events",
                    "recent_validator_activity", "total_events", "timestamp", "id", "stats",
                    "validators", "miners", "task_history"):
            check(key in state, "snapshot lacks %s" % key)
        check(state["id"] == 120 and len(state["recent_events"]) == 50, "snapshot content")
        check(all(isinstance(m["sid"], str) for m in state["miners"]), "sid is a string")
        broker = s.next_of("broker", skip=())
        check(json.loads(broker["data"])["up"] is True, "broker frame")
        last = h.last_id("events 30")
        got = s.events_until(last)
        ids = [int(e["id"]) for e in got]
        check(ids == list(range(121, last + 1)), "ids %s" % ids)
        for e in got:
            data = json.loads(e["data"])
            check(data["id"] == int(e["id"]) and data["type"] == e["event"], "frame %r" % e)
            check(isinstance(data["sid"], str), "event sid is a string")
            check(e["raw"].count(b"\n") == 2, "one line of data: %r" % e["raw"][:100])
            check(b"<" not in e["raw"], "markup escaped")
        s.close()


def case_resume_header():
    with Harness("--events", "100", "--ring-frames", "64") as h:
        s = open_sse(h.port)
        s.next_of("snapshot")
        last = h.last_id("events 10")
        got = s.events_until(last)
        seen = int(got[-1]["id"])
        s.close()
        last2 = h.last_id("events 7")
        r = open_sse(h.port, headers={"Last-Event-ID": str(seen)})
        got = r.events_until(last2)
        check([e.get("event") for e in got].count("snapshot") == 0, "resumed without snapshot")
        check([int(e["id"]) for e in got] == list(range(seen + 1, last2 + 1)), "missed events")
        r.close()
        # The header wins over a stale ?last_event_id= (EventSource keeps the URL).
        q = open_sse(h.port, "/api/dashboard/live?last_event_id=3",
                     headers={"Last-Event-ID": str(last2 - 2)})
        got = q.events_until(last2)
        check([int(e["id"]) for e in got] == [last2 - 1, last2], "header wins: %r" % got)
        q.close()
        # An id the ring no longer covers (or from the future): a snapshot.
        for stale in ("0", str(last2 + 1000)):
            o = open_sse(h.port, headers={"Last-Event-ID": stale})
            check(o.next_of("snapshot")["id"] == str(last2), "stale id %s: snapshot" % stale)
            o.close()
        st = h.stats()
        check(int(st["resumed"]) >= 2, "resumed counted: %r" % st)
        code, _, body = request(h.port, "/api/dashboard/live", headers={"Last-Event-ID": "x1"})
        check(code == 400 and b"Last-Event-ID" in body, "bad Last-Event-ID: %s" % code)


def case_resume_query():
    with Harness("--events", "100", "--ring-frames", "64") as h:
        last = h.last_id("events 5")
        r = open_sse(h.port, "/api/dashboard/live?last_event_id=%d" % (last - 3))
        got = r.events_until(last)
        check([int(e["id"]) for e in got] == [last - 2, last - 1, last], "query resume %r" % got)
        r.close()
        # Past the ring (64 frames): a snapshot instead.
        last = h.last_id("events 100")
        o = open_sse(h.port, "/api/dashboard/live?last_event_id=%d" % (last - 90))
        check(o.next_of("snapshot")["id"] == str(last), "old id: snapshot")
        o.close()
        code, _, _ = request(h.port, "/api/dashboard/live?last_event_id=-1")
        check(code == 400, "bad last_event_id: %s" % code)


def _until_link_down(s):
    """Event payloads up to the `broker` frame that says the link is down
    (a control frame: filters never hide it, so it marks the end)."""
    got = []
    while True:
        ev = s.next_of(None, skip=())
        if ev.get("event") == "broker":
            if not json.loads(ev["data"])["up"]:
                return got
            continue
        if ev.get("event") == "snapshot":
            continue
        got.append(json.loads(ev["data"]))


def case_filters():
    with Harness("--events", "50") as h:
        clients = {
            "types=task_": lambda d: d["type"].startswith("task_"),
            "types=error,cache_hit": lambda d: d["type"] in ("error", "cache_hit"),
            "miner=miner-b": lambda d: d.get("miner") == "miner-b",
            "types=task_start&miner=miner-a": lambda d: d["type"] == "task_start"
            and d.get("miner") == "miner-a",
            "miner=evil%22%3Cscript%3E": lambda d: False,
        }
        opened = {}
        for q in clients:
            s = open_sse(h.port, "/api/dashboard/live?" + q)
            s.next_of("snapshot")
            opened[q] = s
        last = h.last_id("events 90")
        h.cmd("link down")
        for q, s in opened.items():
            got = _until_link_down(s)
            if q.startswith("miner=evil"):
                check(got == [], "partial miner name matches nothing")
            else:
                check(got, "filter %s: nothing" % q)
            check(all(clients[q](d) for d in got), "filter %s let through %r" % (q, got[:2]))
            check(all(d["id"] <= last for d in got), "ids")
            s.close()
        h.cmd("link up")
        # task_id, plain and one that needs URL encoding ("<b>x</b>"). Note:
        # libwebsockets ends a query value at an encoded line feed (%0A).
        # Resume after the link frames above (they carry the id `last`).
        from urllib.parse import quote
        last2 = h.last_id("events 90")
        st, _ = get_json(h.port, "/api/dashboard/live/status?limit=90")
        tids = [e["task_id"] for e in st["recent_events"] if "task_id" in e and e["id"] > last]
        plain = next(t for t in tids if t.endswith("ok"))
        marked = next(t for t in tids if t.endswith("</b>"))
        base = "/api/dashboard/live?last_event_id=%d&task_id=" % last
        s = open_sse(h.port, base + plain)
        e = open_sse(h.port, base + quote(marked, safe=""))
        # A new client first gets the link as it is when it starts writing:
        # take that before the link goes down.
        for c in (s, e):
            check(json.loads(c.next_of("broker", skip=())["data"])["up"], "link up")
        h.cmd("link down")
        got = _until_link_down(s)
        check(got and all(d["task_id"] == plain for d in got), "task_id filter %r" % got[:2])
        got = _until_link_down(e)
        check(got and all(d["task_id"] == marked for d in got), "encoded task_id %r" % got[:1])
        check(all(last < d["id"] <= last2 for d in got), "resumed after the link frames")
        s.close()
        e.close()
        for bad in ("types=", "types=a,,b", "types=" + "x" * 65, "miner=" + "m" * 65,
                    "types=a&types=b", "task_id=" + "t" * 129, "types=a%20b"):
            code, _, body = request(h.port, "/api/dashboard/live?" + bad)
            check(code == 400, "filter %s: %s %r" % (bad, code, body))


def case_status():
    with Harness("--events", "300") as h:
        st, hd = get_json(h.port, "/api/dashboard/live/status")
        check(len(st["recent_events"]) == 50, "default limit 50")
        ids = [e["id"] for e in st["recent_events"]]
        check(ids == sorted(ids, reverse=True) and ids[0] == 300, "newest first")
        check(st["active_task_count"] == len(st["active_tasks"]), "active count")
        etag = hd.get("etag")
        check(etag == '"000000006632526f-300"', "etag %r" % etag)
        code, hd2, body = request(h.port, "/api/dashboard/live/status",
                                  headers={"If-None-Match": etag})
        check(code == 304 and body == b"" and hd2.get("etag") == etag, "304: %s" % code)
        # A 304 carries no content-length (it would have to be the 200's)
        # and keeps the connection: a poller asks again on the same one.
        check("content-length" not in hd2, "304 content-length: %r" % hd2)
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10 * SLOW)
        for i in range(3):
            conn.request("GET", "/api/dashboard/live/status", headers={"If-None-Match": etag})
            resp = conn.getresponse()
            check(resp.status == 304 and resp.read() == b"", "keep-alive 304 #%d" % i)
            check(resp.getheader("connection", "").lower() != "close", "304 closes")
        conn.request("GET", "/api/dashboard/live/status")
        resp = conn.getresponse()
        check(resp.status == 200 and json.loads(resp.read())["recent_events"], "200 after 304s")
        conn.close()
        code, _, _ = request(h.port, "/api/dashboard/live/status",
                             headers={"If-None-Match": '"other"'})
        check(code == 200, "other etag: 200")
        st, _ = get_json(h.port, "/api/dashboard/live/status?since=290")
        check([e["id"] for e in st["recent_events"]] == list(range(300, 290, -1)), "since")
        st, _ = get_json(h.port, "/api/dashboard/live/status?since=290&limit=3")
        check([e["id"] for e in st["recent_events"]] == [300, 299, 298], "since+limit")
        st, _ = get_json(h.port, "/api/dashboard/live/status?limit=100000")
        check(len(st["recent_events"]) == 300, "limit up to the ring")
        st, _ = get_json(h.port, "/api/dashboard/live/status?limit=0")
        check(st["recent_events"] == [], "limit 0")
        last = h.last_id("events 5")
        code, hd3, body = request(h.port, "/api/dashboard/live/status",
                                  headers={"If-None-Match": etag})
        check(code == 200 and hd3["etag"] == '"000000006632526f-%d"' % last, "changed: 200")
        code, hd4, body = request(h.port, "/api/dashboard/live/status", method="HEAD")
        check(code == 200 and body == b"" and int(hd4["content-length"]) > 1000, "HEAD")
        # Keep-alive: several requests on one connection.
        conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=10)
        for _ in range(5):
            conn.request("GET", "/api/dashboard/live/status?limit=1")
            resp = conn.getresponse()
            check(resp.status == 200 and json.loads(resp.read())["id"] == last, "keep-alive")
        conn.close()
        for bad in ("since=abc", "limit=-1", "limit=1.5", "since=99999999999999999999999",
                    "limit=1&limit=2"):
            code, _, body = request(h.port, "/api/dashboard/live/status?" + bad)
            check(code == 400 and json.loads(body)["error"] == "bad_request",
                  "%s: %s" % (bad, code))
        # The snapshot of an SSE client is the same state.
        s = open_sse(h.port)
        snap = json.loads(s.next_of("snapshot")["data"])
        st, _ = get_json(h.port, "/api/dashboard/live/status")
        check(snap == st, "snapshot == status")
        s.close()


def case_auth_token():
    with Harness("--auth-token", "s3cret") as h:
        for path in ("/api/dashboard/live/status", "/api/dashboard", "/metrics", "/healthz",
                     "/api/dashboard/live"):
            code, hd, body = request(h.port, path)
            check(code == 401, "%s without token: %s" % (path, code))
            check(json.loads(body)["error"] == "unauthorized", "401 body")
            check("Bearer" in hd.get("www-authenticate", ""), "WWW-Authenticate")
            code, _, _ = request(h.port, path, headers={"Authorization": "Bearer wrong"})
            check(code == 401, "%s wrong token: %s" % (path, code))
            if path != "/api/dashboard/live":
                code, _, _ = request(h.port, path, headers={"Authorization": "Bearer s3cret"})
                check(code == 200, "%s with token: %s" % (path, code))
                code, _, _ = request(h.port, path + "?token=s3cret")
                check(code == 200, "%s ?token=: %s" % (path, code))
        s = open_sse(h.port, "/api/dashboard/live?token=s3cret")
        s.next_of("snapshot")
        s.close()
        s = open_sse(h.port, headers={"Authorization": "Bearer s3cret"})
        s.next_of("snapshot")
        s.close()
        code, _, _ = request(h.port, "/api/dashboard/live?token=s3cre")
        check(code == 401, "prefix of the token: %s" % code)
        # / keeps the token on its way to the page, which reads it from its
        # own address.
        code, hd, _ = request(h.port, "/?token=s3cret")
        check(code == 302 and hd.get("location") == "/api/dashboard?token=s3cret",
              "/ with a token: %s %s" % (code, hd.get("location")))
        code, _, _ = request(h.port, hd.get("location", "/"))
        check(code == 200, "the redirect's target: %s" % code)
    with Harness("--auth-token", "a b&c/=%") as h:
        code, hd, _ = request(h.port, "/?token=a%20b%26c%2F%3D%25")
        check(code == 302 and hd.get("location") == "/api/dashboard?token=a%20b%26c%2F%3D%25",
              "/ with an encoded token: %s %s" % (code, hd.get("location")))
        code, _, _ = request(h.port, hd.get("location", "/"))
        check(code == 200, "the encoded redirect's target: %s" % code)
    with Harness("--auth-token", "s3cret", "--open-metrics") as h:
        for path in ("/metrics", "/healthz"):
            code, _, _ = request(h.port, path)
            check(code == 200, "--open-metrics %s: %s" % (path, code))
        code, _, _ = request(h.port, "/api/dashboard/live/status")
        check(code == 401, "--open-metrics keeps the rest closed")


def case_basic_auth():
    with Harness("--basic-auth", "admin:pa:ss") as h:
        good = "Basic " + base64.b64encode(b"admin:pa:ss").decode()
        bad = "Basic " + base64.b64encode(b"admin:nope").decode()
        code, hd, _ = request(h.port, "/api/dashboard/live/status")
        check(code == 401 and hd.get("www-authenticate", "").startswith("Basic"), "401 basic")
        code, _, _ = request(h.port, "/api/dashboard/live/status", headers={"Authorization": bad})
        check(code == 401, "wrong password")
        code, _, _ = request(h.port, "/api/dashboard/live/status",
                             headers={"Authorization": "Basic !!!"})
        check(code == 401, "garbage basic")
        code, _, _ = request(h.port, "/api/dashboard/live/status",
                             headers={"Authorization": good})
        check(code == 200, "basic ok: %s" % code)
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u",
                            "admin:pa:ss", "http://127.0.0.1:%d/metrics" % h.port],
                           capture_output=True, text=True, timeout=20)
        check(r.stdout == "200", "curl -u: %r" % r.stdout)
    with Harness("--basic-auth", "admin:pw", "--auth-token", "tok") as h:
        for hdr in ("Bearer tok", "Basic " + base64.b64encode(b"admin:pw").decode()):
            code, _, _ = request(h.port, "/healthz", headers={"Authorization": hdr})
            check(code == 200, "either credential: %s" % hdr)


def case_open_bind():
    h = Harness("--http", "0.0.0.0:0", expect_fail=True)
    rc = h.proc.wait(10)
    check(rc == 2 and h.first.startswith("ERR refusing"), "open bind: rc %s %r" % (rc, h.first))
    for flags in (("--insecure",), ("--auth-token", "t"), ("--basic-auth", "u:p")):
        with Harness("--http", "0.0.0.0:0", *flags) as g:
            hdr = {"Authorization": "Bearer t"} if "t" in flags else {}
            code, _, _ = request(g.port, "/healthz", headers=hdr)
            check(code == (401 if "u:p" in flags else 200), "serves with %s: %s" % (flags, code))
    h = Harness("--http", "127.0.0.1:99999", expect_fail=True)
    check(h.proc.wait(10) == 2 and "HOST:PORT" in h.first, "bad port: %r" % h.first)
    # Address in use.
    with Harness() as g:
        h = Harness("--http", "127.0.0.1:%d" % g.port, expect_fail=True)
        check(h.proc.wait(10) == 2 and "cannot serve" in h.first, "in use: %r" % h.first)


def _raw(port, data, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                m = re.search(rb"content-length: *(\d+)", head, re.I)
                if m and len(body) >= int(m.group(1)):
                    break
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


def case_errors():
    with Harness() as h:
        for path in ("/nope", "/api/dashboard/", "/api/dashboard/live/", "/metrics/x",
                     "/api/dashboard/livex", "/API/dashboard"):
            code, hd, body = request(h.port, path)
            check(code in (404, 403, 400), "%s: %s" % (path, code))
            if code == 404:
                check(json.loads(body)["error"] == "not_found", "404 JSON")
                check(hd.get("content-security-policy", "").startswith(CSP_PREFIX), "404 CSP")
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            code, hd, body = request(h.port, "/metrics", method=method, body=b"x" * 100)
            check(code == 405 and json.loads(body)["error"] == "method_not_allowed",
                  "%s: %s" % (method, code))
            check(hd.get("allow") == "GET, HEAD", "Allow header")
        code, hd, _ = request(h.port, "/")
        check(code == 302 and hd.get("location") == "/api/dashboard", "/ redirects: %s" % code)
        # Oversized request line / headers: refused, and the server lives on.
        out = _raw(h.port, b"GET /api/dashboard/live/status?" + b"a" * 9000 + b" HTTP/1.1\r\n"
                   b"Host: x\r\n\r\n")
        check(not out.startswith(b"HTTP/1.1 200"), "huge URL not served: %r" % out[:60])
        out = _raw(h.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000
                   + b"\r\n\r\n")
        check(not out.startswith(b"HTTP/1.1 200"), "huge header not served: %r" % out[:60])
        # Garbage and an unknown method: refused by libwebsockets' parser.
        for junk in (b"\x16\x03\x01garbage\r\n\r\n", b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
                     b"GET\r\n\r\n"):
            out = _raw(h.port, junk)
            check(not out.startswith(b"HTTP/1.1 200"), "junk %r: %r" % (junk, out[:60]))
        # Cleartext HTTP/2 by upgrade (h2c) is refused (libwebsockets 4.1.6
        # cannot send on the upgraded stream); HTTP/2 is served over TLS.
        out = _raw(h.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, "
                   b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA"
                   b"\r\n\r\n")
        check(out == b"", "h2c upgrade refused: %r" % out[:60])
        code, _, _ = request(h.port, "/healthz")
        check(code == 200, "still serving")
        # HEAD on the dashboard page.
        code, hd, body = request(h.port, "/api/dashboard", method="HEAD")
        check(code == 200 and body == b"", "HEAD page")


def case_max_clients():
    with Harness("--max-clients", "2") as h:
        a = open_sse(h.port)
        b = open_sse(h.port)
        a.next_of("snapshot")
        b.next_of("snapshot")
        c = Sse(h.port)
        check(c.read_headers() == 503, "third client: %s" % c.status)
        body = json.loads(c.buf.decode())
        check(body["error"] == "too_many_clients", "503 body")
        check(c.headers.get("retry-after") == "5", "Retry-After")
        c.close()
        check(h.stats()["rejected"] == "1" or True, "rejected")
        a.close()
        deadline = time.time() + 10
        while True:
            d = Sse(h.port)
            if d.read_headers() == 200:
                break
            d.close()
            check(time.time() < deadline, "slot freed after a client left")
            time.sleep(0.1)
        d.next_of("snapshot")
        d.close()
        b.close()
        _, samples = prom_check.check(request(h.port, "/metrics")[2])
        check(samples[("minerwatch_gateway_sse_rejected_total", ())] >= 1, "rejected counted")


def case_never_reader():
    # One client never reads; the other must get every event in time, and
    # the first is closed when what it is owed passes the cap.
    with Harness("--events", "10", "--client-max-unsent", "262144",
                 "--ring-frames", "100000", "--ring-bytes", "268435456") as h:
        stuck = Sse(h.port, rcvbuf=4096)
        good = open_sse(h.port)
        good.next_of("snapshot")
        t0 = time.time()
        last = 0
        # Bursts well under the cap (about 50 KB), so that a reader that
        # keeps up is never owed more than that.
        for _ in range(200):
            last = h.last_id("events 100")
            got = good.events_until(last, timeout=30)
            check(int(got[-1]["id"]) == last, "good reader keeps up")
        elapsed = time.time() - t0
        check(elapsed < 90, "20000 events took %.1fs" % elapsed)
        deadline = time.time() + 10
        while int(h.stats()["slow_closed"]) < 1:
            check(time.time() < deadline, "stuck reader closed: %r" % h.stats())
            time.sleep(0.2)
        # The stuck client's socket is closed by the server: reading now
        # drains what was buffered, then reaches the end.
        stuck.sock.settimeout(10)
        total = 0
        try:
            while True:
                chunk = stuck.sock.recv(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
        except (ConnectionResetError, socket.timeout):
            pass
        check(total < 262144 * 8, "stuck reader got %d bytes" % total)
        _, samples = prom_check.check(request(h.port, "/metrics")[2])
        check(samples[("minerwatch_gateway_sse_slow_closed_total", ())] >= 1, "counted")
        check(samples[("minerwatch_gateway_sse_clients", ())] == 1, "one client left")
        good.close()


def _server_sndbuf(port, client):
    """The kernel send buffer ('tb' of `ss -m`) of the server side of the
    connection whose client end is the socket client."""
    cport = client.sock.getsockname()[1]
    out = subprocess.run(["ss", "-tmnH", "state", "established", "( sport = :%d and dport = :%d )"
                          % (port, cport)], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"\btb(\d+)", out)
    check(m, "ss shows no server socket for port %d -> %d: %r" % (port, cport, out))
    return int(m.group(1))


def case_send_buffer():
    # An SSE connection's kernel send buffer is capped (--sse-send-buffer;
    # Linux doubles what it is given), so that a client that stops reading
    # pins little kernel memory; 0 leaves it to the kernel. A capped
    # connection still carries a burst whole.
    with Harness("--events", "10", "--sse-send-buffer", "65536") as h:
        c = open_sse(h.port)
        c.next_of("snapshot")
        tb = _server_sndbuf(h.port, c)
        check(tb == 2 * 65536, "sndbuf %d" % tb)
        last = h.last_id("events 5000")
        got = c.events_until(last, timeout=60)
        check(int(got[-1]["id"]) == last, "a burst through a small send buffer")
        c.close()
    with Harness("--events", "10") as h:
        c = open_sse(h.port)
        c.next_of("snapshot")
        tb = _server_sndbuf(h.port, c)
        check(tb == 2 * 262144, "default sndbuf %d" % tb)
        c.close()
    with Harness("--events", "10", "--sse-send-buffer", "0") as h:
        c = open_sse(h.port)
        c.next_of("snapshot")
        check(_server_sndbuf(h.port, c) != 2 * 262144, "0 leaves the kernel's")
        c.close()
    h = Harness("--sse-send-buffer", "100", expect_fail=True)
    check(h.proc.wait(10) == 2 and "4096" in h.first, "a tiny send buffer refused: %r" % h.first)


def case_slow_reset():
    # A reader that pauses falls off a small ring: on resuming it gets what
    # the kernel buffered, then `reset` and a fresh snapshot, then live
    # events. (While it is stuck, it may be reset more than once: each time
    # it is given a snapshot, it falls behind again.)
    with Harness("--events", "10", "--ring-frames", "16", "--client-max-unsent", "67108864") as h:
        slow = Sse(h.port, rcvbuf=4096)
        check(slow.read_headers() == 200, "slow: 200")
        slow.next_of("snapshot")
        # About 6 MB: more than the kernel can buffer for it (the send
        # buffer grows to 4 MB at most, net.ipv4.tcp_wmem), so the server
        # cannot write it all and the client's cursor falls off the ring.
        last = 0
        for _ in range(12):
            last = h.last_id("events 1000")
        deadline = time.time() + 30 * SLOW
        resets = 0
        prev = None
        while True:
            ev = slow.next_of(None, timeout=max(0.1, deadline - time.time()))
            kind = ev.get("event")
            if kind == "reset":
                check(json.loads(ev["data"])["reason"] == "behind", "reason behind")
                resets += 1
                prev = None
                continue
            if kind == "snapshot":
                check(resets > 0, "a snapshot only after a reset")
                prev = int(ev["id"])
                if prev == last:
                    break
                continue
            # Between a snapshot and the next reset, events follow on
            # without a gap.
            if prev is not None:
                check(int(ev["id"]) > prev, "after the snapshot: %s > %s" % (ev["id"], prev))
        last = h.last_id("events 3")
        got = slow.events_until(last)
        check([int(e["id"]) for e in got] == [last - 2, last - 1, last], "live after reset")
        st = h.stats()
        check(int(st["fell_behind"]) >= 1 and int(st["slow_closed"]) == 0, "stats %r" % st)
        slow.close()


def case_reset():
    with Harness("--events", "40") as h:
        s = open_sse(h.port)
        s.next_of("snapshot")
        last = h.last_id("reset epoch")
        ev = s.next_of("reset")
        check(json.loads(ev["data"])["reason"] == "epoch", "reset reason")
        snap = s.next_of("snapshot")
        check(int(snap["id"]) == last, "snapshot after reset")
        last = h.last_id("events 2")
        got = s.events_until(last)
        check([int(e["id"]) for e in got] == [last - 1, last], "events after reset")
        s.close()


def case_metrics():
    with Harness("--events", "500") as h:
        s = open_sse(h.port)
        s.next_of("snapshot")
        h.cmd("tasks 20")
        code, hd, body = request(h.port, "/metrics")
        check(code == 200 and hd["content-type"].startswith("text/plain; version=0.0.4"),
              "metrics content-type %r" % hd.get("content-type"))
        problems, samples = prom_check.check(body)
        check(not problems, "metrics problems:\n" + "\n".join(problems[:20]))
        names = {n for n, _ in samples}
        for want in ("minerwatch_events_total", "minerwatch_active_tasks",
                     "minerwatch_task_response_seconds_bucket", "minerwatch_lost_events_total",
                     "minerwatch_tasks_finished_total", "minerwatch_gateway_sse_clients",
                     "minerwatch_gateway_sse_resets_total", "minerwatch_gateway_broker_up",
                     "minerwatch_state_limit", "minerwatch_gateway_limit",
                     "minerwatch_miner_events_total", "minerwatch_gateway_http_responses_total"):
            check(want in names, "missing %s" % want)
        check(samples[("minerwatch_gateway_sse_clients", ())] == 1, "one SSE client")
        evil = [l for n, l in samples if n == "minerwatch_miner_events_total"
                and dict(l)["miner"].startswith("evil")]
        check(evil and dict(evil[0])["miner"].startswith('evil"<script>'), "label round trip")
        # The checker itself catches mistakes.
        for bad in (b"minerwatch_x 1\n", b"# TYPE minerwatch_a counter\n# HELP minerwatch_a h\n"
                    b"minerwatch_a 1\n", b"# HELP other h\n# TYPE other gauge\nother 1\n",
                    b'# HELP minerwatch_b h\n# TYPE minerwatch_b gauge\nminerwatch_b{l="\\q"} 1\n'):
            check(prom_check.check(bad)[0], "checker accepts %r" % bad)
        s.close()


def case_health():
    with Harness() as h:
        body, hd = get_json(h.port, "/healthz")
        check(body["broker"] == "up" and body["status"] == "ok", "up: %r" % body)
        check(body["last_id"] == 200 and body["epoch"] == "000000006632526f", "ids %r" % body)
        check(isinstance(body["last_heartbeat_age_ms"], int), "age")
        s = open_sse(h.port)
        s.next_of("snapshot")
        h.cmd("link down")
        ev = s.next_of("broker", skip=())
        while json.loads(ev["data"])["up"]:
            ev = s.next_of("broker", skip=())
        body, _ = get_json(h.port, "/healthz")
        check(body["broker"] == "down" and body["status"] == "degraded", "down: %r" % body)
        s.close()


def case_keepalive():
    with Harness("--keepalive", "1") as h:
        s = open_sse(h.port)
        s.next_of("snapshot")
        t0 = time.time()
        while True:
            ev = s.event(timeout=5)
            if ev.get("comment") == "keepalive":
                break
        check(time.time() - t0 < 4, "keepalive within the interval")
        s.close()


def case_dashboard():
    with Harness("--cors", "https://example.com") as h:
        code, hd, body = request(h.port, "/api/dashboard")
        check(code == 200 and hd["content-type"].startswith("text/html"), "page")
        csp = hd.get("content-security-policy", "")
        check("default-src 'none'" in csp and "frame-ancestors 'none'" in csp, "CSP %r" % csp)
        check(not re.search(rb"(src|href)=\"(https?:)?//", body), "no external assets")
        check(b"/api/dashboard/live/status" in body, "links the JSON endpoints")
        check(hd.get("access-control-allow-origin") == "https://example.com", "CORS header")
        code, hd, _ = request(h.port, "/healthz", method="OPTIONS",
                              headers={"Origin": "https://example.com",
                                       "Access-Control-Request-Method": "GET"})
        check(code == 204 and "Last-Event-ID" in hd.get("access-control-allow-headers", ""),
              "preflight: %s" % code)
    with Harness() as h:
        code, hd, _ = request(h.port, "/api/dashboard")
        check("access-control-allow-origin" not in hd, "no CORS without --cors")
        _dashboard_files(h.port)
    with Harness("--auth-token", "s3cret") as h:
        # The page needs credentials; its script and style hold no data and
        # load without them (a page opened with ?token= gets them too).
        code, _, _ = request(h.port, "/api/dashboard")
        check(code == 401, "page without token: %s" % code)
        code, _, body = request(h.port, "/api/dashboard?token=s3cret")
        check(code == 200 and b"/api/dashboard/app.js" in body, "page with ?token=: %s" % code)
        for path in ("/api/dashboard/app.js", "/api/dashboard/app.css"):
            code, _, body = request(h.port, path)
            check(code == 200 and body, "%s without token: %s" % (path, code))


class _PageScan(html.parser.HTMLParser):
    """What the page holds: elements by id, scripts, styles, handlers."""

    def __init__(self):
        super().__init__()
        self.ids = {}
        self.scripts = []
        self.inline = []
        self.stylesheets = []
        self.stats = []
        self.options = []
        self._in_script = False
        self._select = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = (tag, a)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append("%s %s=" % (tag, name))
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self.scripts.append(a.get("src"))
            self._in_script = True
        if tag == "link" and a.get("rel") == "stylesheet":
            self.stylesheets.append(a.get("href"))
        if "data-stat" in a:
            self.stats.append(a["data-stat"])
        if tag == "select":
            self._select = a.get("id")
        if tag == "option" and self._select == "miner-filter":
            self.options.append([a.get("value"), ""])

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append("<script> text")
        if self._select == "miner-filter" and self.options:
            self.options[-1][1] += data.strip()


def _dashboard_files(port):
    # The page: strict CSP, nothing inline, the DOM contract's elements.
    code, hd, body = request(port, "/api/dashboard")
    check(code == 200 and hd["content-type"] == "text/html; charset=utf-8", "page type")
    csp = hd.get("content-security-policy", "")
    for part in ("default-src 'none'", "script-src 'self'", "style-src 'self'",
                 "connect-src 'self'", "img-src 'self' data:", "frame-ancestors 'none'"):
        check(part in csp, "page CSP lacks %s: %r" % (part, csp))
    check("unsafe" not in csp, "page CSP allows something unsafe: %r" % csp)
    check(hd.get("x-content-type-options") == "nosniff", "nosniff")
    scan = _PageScan()
    scan.feed(body.decode("utf-8"))
    check(not scan.inline, "inline script or style in the page: %s" % scan.inline)
    check(scan.scripts == ["/api/dashboard/app.js"], "scripts %s" % scan.scripts)
    check(scan.stylesheets == ["/api/dashboard/app.css"], "stylesheets %s" % scan.stylesheets)
    for id_ in ("conn", "active", "active-count", "events", "miner-filter", "validators",
                "stats", "spark-throughput", "spark-latency", "timeline", "timeline-close",
                "toasts", "banner"):
        check(id_ in scan.ids, "the page has no #%s" % id_)
    check(scan.ids["conn"][1].get("data-state") in ("sse", "polling", "down"), "#conn state")
    check("hidden" in scan.ids["banner"][1], "#banner hidden at first")
    check(scan.ids["spark-throughput"][0] == "svg", "sparklines are SVG")
    check(scan.options[:1] == [["", "All miners"]], "miner filter: %s" % scan.options[:1])
    check(sorted(scan.stats) == sorted(["tasks-per-min", "success-rate", "p50", "p95",
                                        "cache-hit-rate", "errors", "lost"]),
          "stats %s" % scan.stats)
    # Its files: types, nosniff, ETag and 304, HEAD.
    for path, ctype in (("/api/dashboard", "text/html; charset=utf-8"),
                        ("/api/dashboard/app.js", "text/javascript; charset=utf-8"),
                        ("/api/dashboard/app.css", "text/css; charset=utf-8")):
        code, hd, data = request(port, path)
        check(code == 200 and hd["content-type"] == ctype, "%s: %s %s" % (path, code, hd))
        check(int(hd["content-length"]) == len(data) > 0, "%s length" % path)
        check(hd.get("x-content-type-options") == "nosniff", "%s nosniff" % path)
        check(hd.get("cache-control") == "no-cache", "%s cache-control" % path)
        etag = hd.get("etag", "")
        check(re.fullmatch(r'"[0-9a-f]{20}"', etag), "%s etag %r" % (path, etag))
        code, hd2, data2 = request(port, path, headers={"If-None-Match": etag})
        check(code == 304 and data2 == b"" and hd2.get("etag") == etag, "%s 304: %s" % (path, code))
        check("content-length" not in hd2, "%s 304 content-length" % path)
        code, _, data3 = request(port, path, headers={"If-None-Match": '"other"'})
        check(code == 200 and data3 == data, "%s other etag: %s" % (path, code))
        code, hd3, data4 = request(port, path, method="HEAD")
        check(code == 200 and data4 == b"" and hd3["content-type"] == ctype, "%s HEAD" % path)
        if path.endswith(".js"):
            # Text from miners and validators goes in as text, never as HTML.
            text = data.decode("utf-8")
            for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                        "eval(", "new Function", "setAttribute('style'"):
                check(bad not in text, "app.js uses %s" % bad)
            for name in ("mwDashboard", "EVENTS_SHOWN = 50", "textContent"):
                check(name in text, "app.js lacks %s" % name)
    code, _, _ = request(port, "/api/dashboard/app.jsx")
    check(code == 404, "unknown dashboard file: %s" % code)


def case_tls():
    tmp = tempfile.mkdtemp()
    try:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        with Harness("--tls-cert", cert, "--tls-key", key) as h:
            url = "https://127.0.0.1:%d" % h.port

            def curl(*args):
                r = subprocess.run(["curl", "-sk", "--max-time", "10", *args],
                                   capture_output=True, timeout=30)
                return r.stdout

            out = curl("--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                       url + "/api/dashboard/live/status")
            check(out == b"1.1 200", "TLS HTTP/1.1: %r" % out)
            out = curl("--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                       url + "/api/dashboard/live/status")
            check(out == b"2 200", "TLS HTTP/2 (ALPN): %r" % out)
            out = curl("--http2", "-D", "-", url + "/api/dashboard/live/status?limit=2")
            check(b"etag:" in out.lower() and b"content-security-policy" in out.lower(),
                  "h2 headers")
            body = out.split(b"\r\n\r\n", 1)[1]
            check(len(json.loads(body)["recent_events"]) == 2, "h2 body")
            # 304 over h2.
            out = curl("--http2", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                       'If-None-Match: "000000006632526f-200"', url + "/api/dashboard/live/status")
            check(out == b"304", "h2 304: %r" % out)
            # SSE over HTTP/2: the snapshot, then events; resume by query.
            p = subprocess.Popen(["curl", "-skN", "--http2", "--max-time", "6",
                                  url + "/api/dashboard/live?last_event_id=195"],
                                 stdout=subprocess.PIPE)
            time.sleep(1)
            last = h.last_id("events 3")
            out = p.communicate(timeout=20)[0]
            ids = [int(x) for x in re.findall(rb"^id: (\d+)$", out, re.M)]
            check(ids == list(range(196, last + 1)), "h2 SSE resume by query: %r" % ids)
            check(b"event: snapshot" not in out, "h2 resumed without snapshot")
            # Python's ssl: plain HTTP/1.1 SSE over TLS.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", h.port, context=ctx, timeout=10)
            conn.request("GET", "/healthz")
            check(conn.getresponse().status == 200, "python TLS")
            conn.close()
            # Plain HTTP on the TLS port is not served.
            out = _raw(h.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            check(not out.startswith(b"HTTP/1.1 200"), "plain HTTP on TLS port: %r" % out[:40])
    finally:
        shutil.rmtree(tmp)
    h = Harness("--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.pem",
                expect_fail=True)
    check(h.proc.wait(10) == 2 and h.first.startswith("ERR"), "bad TLS files: %r" % h.first)
    h = Harness("--tls-cert", "/x.pem", expect_fail=True)
    check(h.proc.wait(10) == 2 and "both" in h.first, "cert without key: %r" % h.first)


def case_many_clients():
    # 200 SSE clients and 20 pollers at once; every client gets every event.
    with Harness("--events", "20") as h:
        clients = [open_sse(h.port) for _ in range(200)]
        for c in clients:
            c.next_of("snapshot")
        last = h.last_id("events 200")
        for c in clients:
            got = c.events_until(last, timeout=30)
            check(int(got[-1]["id"]) == last and len(got) == 200, "client got %d" % len(got))
        for _ in range(20):
            get_json(h.port, "/api/dashboard/live/status")
        for c in clients:
            c.close()


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global HARNESS
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        print("usage: test_http.py HARNESS {%s}" % ",".join(CASES))
        return 2
    HARNESS = sys.argv[1]
    try:
        CASES[sys.argv[2]]()
    except Fail as e:
        print("FAIL %s: %s" % (sys.argv[2], e))
        return 1
    print("PASS %s" % sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
