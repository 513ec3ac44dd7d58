#!/usr/bin/python3
"""Python binding -> `minerwatch tail --json`: the two ends users combine.

Usage: binding_tail.py PATH/TO/minerwatch   (PYTHONPATH has minerwatch.py)

Starts `minerwatch tail --json --count N --timeout S @tcp://127.0.0.1:PORT`
(tail binds, on a free loopback port), publishes N events with the Python
binding (every type, a task() block that raises, a custom type with a nested
map), and checks the NDJSON tail prints against CONTRACT.md section 2: one
line per event, in order, every wire key with the value that was published,
plus `time` (ISO-8601 UTC with Z) and `ts` in milliseconds since the epoch.
Exit 0 on success, 1 with a message per mismatch.
"""
import datetime
import json
import socket
import subprocess
import sys
import time

import minerwatch

HEADER = {"v", "type", "ts", "miner", "sid", "seq"}


def free_port():
    """A loopback port that was free a moment ago (tail binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publish(pub):
    """Publish the test events; return the expected (type, keys) list."""
    expected = []

    def ok(sent, type_, **keys):
        if not sent:
            raise RuntimeError("the binding dropped a %s event" % type_)
        expected.append((type_, keys))

    ok(pub.task_start("task-1", prompt="Login to example.com", url="https://example.com",
                      validator_ip="192.0.2.1", validator_hotkey="5Hk", timeout_ms=30000),
       "task_start", task_id="task-1", prompt="Login to example.com",
       url="https://example.com", validator_ip="192.0.2.1", validator_hotkey="5Hk",
       timeout_ms=30000)
    ok(pub.task_step("task-1", "planning", details={"model": "gpt", "n": 2, "tags": ["a", 1]}),
       "task_step", task_id="task-1", step="planning",
       details={"model": "gpt", "n": 2, "tags": ["a", 1]})
    ok(pub.actions_generated("task-1", 5, action_type="click"), "actions_generated",
       task_id="task-1", action_count=5, action_type="click")
    ok(pub.task_complete("task-1", True, action_count=5, response_time=1.5), "task_complete",
       task_id="task-1", success=True, action_count=5, response_time=1.5)
    ok(pub.task_feedback("task-1", score=0.875, execution_time=2.25, validator_hotkey="5Hk"),
       "task_feedback", task_id="task-1", score=0.875, execution_time=2.25,
       validator_hotkey="5Hk")
    ok(pub.validator_connection(validator_ip="192.0.2.1", endpoint="tcp://192.0.2.1:8091"),
       "validator_connection", validator_ip="192.0.2.1", endpoint="tcp://192.0.2.1:8091")
    ok(pub.cache_hit("task-1", cache_type="prompt"), "cache_hit", task_id="task-1",
       cache_type="prompt")
    ok(pub.error("browser crashed", task_id="task-1", error_type="RuntimeError"), "error",
       error_message="browser crashed", task_id="task-1", error_type="RuntimeError")
    ok(pub.send("model_loaded", task_id="task-1", model="llama", warm=False, offset=-3,
                details={"gpu": "A100", "layers": [32, 40]}),
       "model_loaded", task_id="task-1", model="llama", warm=False, offset=-3,
       details={"gpu": "A100", "layers": [32, 40]})
    try:
        with pub.task("task-2", prompt="Book a flight \u2708") as t:
            t.actions(3)
            raise TimeoutError("page did not load")
    except TimeoutError:
        pass
    expected.append(("task_start", {"task_id": "task-2", "prompt": "Book a flight \u2708"}))
    expected.append(("actions_generated", {"task_id": "task-2", "action_count": 3}))
    expected.append(("task_complete", {"task_id": "task-2", "success": False, "action_count": 3,
                                       "response_time": t.response_time,
                                       "error": "TimeoutError: page did not load"}))
    return expected


def same(a, b):
    """Equal, with floats compared to a relative 1e-12 (JSON renders them)."""
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float))
                and not isinstance(a, bool) and not isinstance(b, bool)
                and abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def check(lines, expected, pub, t_start_ms, t_end_ms):
    """Compare tail's NDJSON lines with what was published; return errors."""
    errors = []
    if len(lines) != len(expected):
        errors.append("tail printed %d lines, expected %d" % (len(lines), len(expected)))
    for i, (line, (type_, keys)) in enumerate(zip(lines, expected)):
        where = "line %d (%s)" % (i + 1, type_)
        try:
            obj = json.loads(line)
        except ValueError as exc:
            errors.append("%s: not JSON (%s): %r" % (where, exc, line))
            continue
        wire = HEADER | set(keys)
        if set(obj) - {"time", "id"} != wire or "time" not in obj:
            errors.append("%s: keys %s, expected %s plus time" % (where, sorted(obj), sorted(wire)))
        want = dict(keys, v=1, type=type_, miner="binding-tail", sid=pub.sid, seq=i + 1)
        for k, v in want.items():
            if k in obj and not same(obj[k], v):
                errors.append("%s: %s = %r, expected %r" % (where, k, obj[k], v))
        ts = obj.get("ts")
        if not isinstance(ts, (int, float)) or not (t_start_ms - 1000 <= ts <= t_end_ms + 1000):
            errors.append("%s: ts %r is not milliseconds since the epoch at publish time "
                          "[%d, %d]" % (where, ts, t_start_ms, t_end_ms))
            continue
        text = obj.get("time", "")
        try:
            when = datetime.datetime.fromisoformat(text)
        except (TypeError, ValueError):
            errors.append("%s: time %r is not ISO-8601" % (where, text))
            continue
        if not text.endswith("Z") or when.utcoffset() != datetime.timedelta(0):
            errors.append("%s: time %r is not UTC with a Z" % (where, text))
        if abs(when.timestamp() * 1000 - ts) >= 1.0:
            errors.append("%s: time %r and ts %r disagree" % (where, text, ts))
    return errors


def run_once(cli):
    """One attempt; returns (errors, retryable)."""
    port = free_port()
    count = 12
    tail = subprocess.Popen([cli, "tail", "--json", "--count", str(count), "--timeout", "60",
                             "@tcp://127.0.0.1:%d" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pub = minerwatch.Publisher(">tcp://127.0.0.1:%d" % port, miner="binding-tail")
    try:
        deadline = time.monotonic() + 30
        while not pub.wait_ready(100):
            if tail.poll() is not None or time.monotonic() > deadline:
                out, err = tail.communicate()
                #  The port may have been taken between the probe and bind.
                return ["tail did not subscribe (exit %r): %s" % (tail.returncode,
                                                                  err.decode())], True
        t_start_ms = time.time() * 1000
        expected = publish(pub)
        t_end_ms = time.time() * 1000
    finally:
        pub.close()
    try:
        out, err = tail.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        tail.kill()
        out, err = tail.communicate()
        return ["tail did not exit after --count %d" % count], False
    errors = []
    if tail.returncode != 0:
        errors.append("tail exited with %r: %s" % (tail.returncode, err.decode()))
    lines = [l for l in out.decode("utf-8").split("\n") if l.strip()]
    errors += check(lines, expected, pub, t_start_ms, t_end_ms)
    return errors, False


def main():
    """Run the check, retrying only if the probed port was taken."""
    if len(sys.argv) != 2:
        print("usage: binding_tail.py PATH/TO/minerwatch", file=sys.stderr)
        return 2
    for _ in range(3):
        errors, retry = run_once(sys.argv[1])
        if not retry:
            break
    for e in errors:
        print("FAIL:", e)
    print("binding -> tail: %d mismatches" % len(errors))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
