#!/usr/bin/python3
"""pub.py - a miner's publisher for the browser tests, driven over stdin.

Usage: pub.py ENDPOINT   (e.g. tcp://127.0.0.1:7710; this side connects)

Speaks wire protocol v1 (docs/protocol.md) with Debian's python3-zmq and
python3-msgpack through one XPUB socket, so it knows when the broker is
subscribed. Each miner name gets its own session (sid) and sequence.
Commands are JSON lines on stdin; each gets one JSON line on stdout:

  {"op": "wait", "timeout": S, "after": N}
      wait until the broker is subscribed, and has subscribed more than N
      times in all (after a restart): {"ok": true, "subs": count} or
      {"ok": false, "error": ...} after S seconds
  {"op": "pub", "miner": M, "type": T, "fields": {...}}
      send one event: {"ok": true, "ts": event ts in ms (as the JSON shows
      it), "sent_ms": wall clock right after the send returned}
  {"op": "load", "rate": R, "duration": S, "active": N, "miners": K,
   "seed": X}
      real task lifecycles paced at R events/s for S seconds, keeping about
      N tasks active (long timeouts, so none goes stale). A line
      "E TS_MS TYPE BEHIND_MS" per event sent (BEHIND_MS: how late it went
      out against the schedule), then {"ok": true, "sent": ...,
      "dropped": ..., "max_behind_ms": ...}.

It exits when stdin closes (the test ended or died), or after 2 hours.
"""
import json
import os
import random
import select
import signal
import sys
import time

import msgpack
import zmq

LIFETIME_S = 7200  # a last resort: it also exits when stdin closes


class Publisher:
    def __init__(self, endpoint):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        self.sock.setsockopt(zmq.SNDHWM, 100000)
        self.sock.setsockopt(zmq.LINGER, 500)
        self.sock.setsockopt(zmq.RECONNECT_IVL, 100)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        self.sock.connect(endpoint)
        self.sessions = {}  # miner -> [sid, seq]
        self.subscribed = False
        self.subs = 0  # subscriptions seen: grows when a broker (re)connects
        self.dropped = 0

    def _drain(self, timeout_ms=0):
        """Read subscription messages: b'\\x01...' subscribe, b'\\x00...' unsubscribe."""
        while self.sock.poll(timeout_ms, zmq.POLLIN):
            msg = self.sock.recv()
            if msg[:1] == b"\x01":
                self.subscribed = True
                self.subs += 1
            elif msg[:1] == b"\x00":
                self.subscribed = False
            timeout_ms = 0

    def wait(self, timeout_s, after=-1):
        deadline = time.monotonic() + timeout_s
        self._drain()
        while not self.subscribed or self.subs <= after:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._drain(int(min(left, 0.2) * 1000) + 1)
        return True

    def publish(self, miner, etype, fields):
        """Send one event; returns its ts in ms (as the gateway's JSON shows it)."""
        session = self.sessions.setdefault(miner, [int.from_bytes(os.urandom(8), "big"), 0])
        session[1] += 1
        ts_us = time.time_ns() // 1000
        body = {"v": 1, "type": etype, "ts": ts_us, "miner": miner, "sid": session[0],
                "seq": session[1]}
        for key, value in fields.items():
            if value is not None:
                body[key] = value
        frames = [etype.encode("ascii"), msgpack.packb(body, use_bin_type=True)]
        try:
            self.sock.send_multipart(frames, flags=zmq.DONTWAIT)
        except zmq.Again:
            self.dropped += 1
            return None
        return ts_us // 1000


PROMPTS = ["Login to example.com", "Search for 'wireless headphones' and open the first result",
           "Add two items to the cart and check out", "Fill in the contact form",
           "Find the cheapest flight from Berlin to Lisbon", "Book a table for two at 8 pm",
           "Change the account's e-mail address", "Download the latest invoice"]
STEPS = ["processing", "navigating", "generating", "verifying"]


def s_load(pub, rate, duration, active, miners, seed):
    """Paced task lifecycles: start until `active` tasks run, then advance the
    oldest one (step, actions, step, complete; a feedback after most)."""
    rng = random.Random(seed)
    names = ["load-miner-%d" % i for i in range(miners)]
    validators = [("10.0.%d.%d" % (i // 250, i % 250 + 1), "5Hload%040d" % i) for i in range(8)]
    queue = []  # [task_id, miner, validator, next stage], oldest first
    started = 0
    running = 0  # tasks started and not yet complete
    sent = 0
    max_behind = 0.0
    interval = 1.0 / rate
    total = int(rate * duration)
    t0 = time.monotonic()
    out = sys.stdout
    for i in range(total):
        due = t0 + i * interval
        now = time.monotonic()
        behind = 0.0
        if due > now:
            time.sleep(due - now)
        else:
            behind = now - due
            max_behind = max(max_behind, behind)
        if i % 50 == 0:
            ip, hotkey = rng.choice(validators)
            etype, miner = "validator_connection", rng.choice(names)
            fields = {"validator_ip": ip, "validator_hotkey": hotkey, "endpoint": "/solve"}
        elif i % 199 == 0 and queue:
            task = queue[0]
            etype, miner = "error", task[1]
            fields = {"task_id": task[0], "error_type": "browser",
                      "error_message": "page crashed while loading (%d)" % i}
        elif running < active:
            started += 1
            running += 1
            ip, hotkey = rng.choice(validators)
            task = ["load-%06d" % started, rng.choice(names), (ip, hotkey), 0]
            queue.append(task)
            etype, miner = "task_start", task[1]
            fields = {"task_id": task[0], "prompt": rng.choice(PROMPTS),
                      "url": "https://shop.example/%d" % started, "validator_ip": ip,
                      "validator_hotkey": hotkey, "timeout_ms": 600000}
        else:
            task = queue.pop(0)
            task[3] += 1
            etype, miner = "task_step", task[1]
            if task[3] in (1, 3):
                fields = {"task_id": task[0], "step": STEPS[task[3] - 1 + rng.randrange(2)]}
            elif task[3] == 2:
                etype = "actions_generated"
                fields = {"task_id": task[0], "action_count": rng.randrange(1, 40),
                          "action_type": "mixed"}
            elif task[3] == 4:
                etype = "task_complete"
                running -= 1
                ok = rng.random() < 0.9
                fields = {"task_id": task[0], "success": ok,
                          "response_time": round(rng.uniform(2, 30), 3)}
                if not ok:
                    fields["error"] = "selector not found"
            else:
                etype = "task_feedback"
                fields = {"task_id": task[0], "score": round(rng.random(), 3),
                          "execution_time": round(rng.uniform(2, 30), 3),
                          "validator_hotkey": task[2][1]}
            if task[3] < 4 or (task[3] == 4 and rng.random() < 0.6):
                queue.append(task)  # more to come (a feedback after most completions)
        ts = pub.publish(miner, etype, fields)
        if ts is not None:
            sent += 1
            out.write("E %d %s %d\n" % (ts, etype, behind * 1000))
            if i % 10 == 0:
                out.flush()
    out.flush()
    return {"ok": True, "sent": sent, "dropped": pub.dropped, "tasks_started": started,
            "active_left": running,
            "max_behind_ms": round(max_behind * 1000, 1),
            "elapsed_s": round(time.monotonic() - t0, 3)}


def main():
    if len(sys.argv) != 2:
        print("usage: pub.py ENDPOINT", file=sys.stderr)
        return 2
    signal.alarm(LIFETIME_S)
    pub = Publisher(sys.argv[1])
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "wait":
                ok = pub.wait(float(cmd.get("timeout", 10)), int(cmd.get("after", -1)))
                reply = ({"ok": True, "subs": pub.subs} if ok
                         else {"ok": False, "error": "no (new) subscriber"})
            elif op == "pub":
                ts = pub.publish(cmd["miner"], cmd["type"], cmd.get("fields", {}))
                sent_ms = time.time_ns() / 1e6
                pub._drain()
                reply = ({"ok": True, "ts": ts, "sent_ms": sent_ms} if ts is not None
                         else {"ok": False, "error": "dropped (queue full)"})
            elif op == "load":
                reply = s_load(pub, float(cmd["rate"]), float(cmd["duration"]),
                               int(cmd["active"]), int(cmd.get("miners", 5)),
                               cmd.get("seed", 1))
            else:
                reply = {"ok": False, "error": "unknown op %r" % op}
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "error": "bad command: %s" % exc}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    pub.sock.close()
    pub.ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())
