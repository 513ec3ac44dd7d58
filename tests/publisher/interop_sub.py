#!/usr/bin/python3
"""Interop: the C publisher (mw_interop_pub) -> a subscriber written with
Debian's python3-zmq and python3-msgpack, independent of our decoder.

Usage: interop_sub.py [WRAPPER ARGS...] PATH/TO/mw_interop_pub
(a wrapper such as `valgrind --error-exitcode=1` runs the publisher under it;
the endpoint is appended as the last argument)

Binds a SUB to a free loopback port, runs the publisher against it, and
checks every event exactly against CONTRACT.md section 1: the topic equals
`type`, the set of keys is exactly the header keys plus the keys published
(no more, no fewer), every value, and every msgpack type family (uint vs
int, str, bool, float, map, array, nil), read from the raw bytes since
msgpack.unpackb maps uint and int alike to int. seq is 1..n, one sid.
Exit 0 on success, 1 with a message per mismatch.
"""
import subprocess
import sys
import time

import msgpack
import zmq

HOTKEY = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"
MINER = "interop-miner"
ANY = object()  # a value not checked (only its type family)


# -- the raw msgpack type of every value -------------------------------------

def _shape(b, p):
    """Return (shape, next position) of the msgpack object at b[p]: a family
    name ("uint", "int", "str", "bool", "float", "nil", "bin"), a dict of
    shapes for a map, or a list of shapes for an array."""
    t = b[p]
    if t <= 0x7F:
        return "uint", p + 1
    if t >= 0xE0:
        return "int", p + 1
    if 0x80 <= t <= 0x8F:
        return _map_shape(b, p + 1, t & 0x0F)
    if 0x90 <= t <= 0x9F:
        return _array_shape(b, p + 1, t & 0x0F)
    if 0xA0 <= t <= 0xBF:
        return "str", p + 1 + (t & 0x1F)
    if t == 0xC0:
        return "nil", p + 1
    if t in (0xC2, 0xC3):
        return "bool", p + 1
    if t in (0xC4, 0xC5, 0xC6):
        n = {0xC4: 1, 0xC5: 2, 0xC6: 4}[t]
        return "bin", p + 1 + n + int.from_bytes(b[p + 1:p + 1 + n], "big")
    if t == 0xCA:
        return "float", p + 5
    if t == 0xCB:
        return "float", p + 9
    if 0xCC <= t <= 0xCF:
        return "uint", p + 1 + (1 << (t - 0xCC))
    if 0xD0 <= t <= 0xD3:
        return "int", p + 1 + (1 << (t - 0xD0))
    if t in (0xD9, 0xDA, 0xDB):
        n = {0xD9: 1, 0xDA: 2, 0xDB: 4}[t]
        return "str", p + 1 + n + int.from_bytes(b[p + 1:p + 1 + n], "big")
    if t in (0xDC, 0xDD):
        n = 2 if t == 0xDC else 4
        return _array_shape(b, p + 1 + n, int.from_bytes(b[p + 1:p + 1 + n], "big"))
    if t in (0xDE, 0xDF):
        n = 2 if t == 0xDE else 4
        return _map_shape(b, p + 1 + n, int.from_bytes(b[p + 1:p + 1 + n], "big"))
    raise ValueError("unexpected msgpack type byte 0x%02x at %d" % (t, p))


def _str_at(b, p):
    """Decode the msgpack str at b[p]; return (text, next position)."""
    t = b[p]
    if 0xA0 <= t <= 0xBF:
        n, p = t & 0x1F, p + 1
    elif t in (0xD9, 0xDA, 0xDB):
        w = {0xD9: 1, 0xDA: 2, 0xDB: 4}[t]
        n, p = int.from_bytes(b[p + 1:p + 1 + w], "big"), p + 1 + w
    else:
        raise ValueError("map key is not a str (type byte 0x%02x)" % t)
    return b[p:p + n].decode("utf-8"), p + n


def _map_shape(b, p, count):
    """Shapes of a map's values, by key."""
    out = {}
    for _ in range(count):
        key, p = _str_at(b, p)
        if key in out:
            raise ValueError("repeated key %r" % key)
        out[key], p = _shape(b, p)
    return out, p


def _array_shape(b, p, count):
    """Shapes of an array's items."""
    out = []
    for _ in range(count):
        s, p = _shape(b, p)
        out.append(s)
    return out, p


def body_shape(body):
    """The shape of a whole body: a dict key -> shape; the map must span it."""
    shape, end = _shape(body, 0)
    if not isinstance(shape, dict):
        raise ValueError("body is not a map")
    if end != len(body):
        raise ValueError("%d trailing bytes after the map" % (len(body) - end))
    return shape


# -- the events mw_interop_pub sends, in order --------------------------------

def event(type_, **keys):
    """Expected event: the header keys plus keys as name -> (shape, value)."""
    exp = {"v": ("uint", 1), "type": ("str", type_), "ts": ("uint", ANY),
           "miner": ("str", MINER), "sid": ("uint", ANY), "seq": ("uint", ANY)}
    exp.update(keys)
    return type_, exp


S = lambda v: ("str", v)  # noqa: E731
U = lambda v: ("uint", v)  # noqa: E731
F = lambda v: ("float", v)  # noqa: E731
B = lambda v: ("bool", v)  # noqa: E731

DETAILS = ({"model": "str", "tokens": "uint", "delta": "int", "temperature": "float",
            "cached": "bool", "none": "nil", "inner": {"depth": "uint"}, "list": ["uint", "str"]},
           {"model": "gpt-4o", "tokens": 512, "delta": -3, "temperature": 0.25, "cached": True,
            "none": None, "inner": {"depth": 2}, "list": [1, "two"]})
CUSTOM_DETAILS = ({"gpu": "str", "layers": ["uint", "uint"], "opts": {"quant": "str"}},
                  {"gpu": "A100", "layers": [32, 40], "opts": {"quant": "q4"}})

EXPECTED = [
    event("task_start", task_id=S("task-001"), prompt=S("Login to example.com and open settings"),
          url=S("https://example.com/login"), validator_ip=S("192.0.2.10"),
          validator_hotkey=S(HOTKEY), timeout_ms=U(30000)),
    event("task_step", task_id=S("task-001"), step=S("planning"), details=DETAILS),
    event("actions_generated", task_id=S("task-001"), action_count=U(7), action_type=S("click")),
    event("task_complete", task_id=S("task-001"), success=B(True), action_count=U(7),
          response_time=F(2.5)),
    event("task_complete", task_id=S("task-002"), success=B(False), action_count=U(0),
          response_time=F(0.75), error=S("TimeoutError: page did not load")),
    event("task_feedback", task_id=S("task-001"), score=F(0.875), execution_time=F(3.25),
          validator_hotkey=S(HOTKEY)),
    event("validator_connection", validator_ip=S("192.0.2.10"), validator_hotkey=S(HOTKEY),
          endpoint=S("tcp://192.0.2.10:8091")),
    event("cache_hit", task_id=S("task-001"), cache_type=S("prompt")),
    event("error", error_message=S("browser crashed"), task_id=S("task-001"),
          error_type=S("RuntimeError")),
    event("model_loaded", task_id=S("task-001"), model=S("llama-3-8b"), load_ms=U(1234),
          warm=B(False), offset=("int", -42), ratio=F(0.5), details=CUSTOM_DETAILS),
    event("task_start", task_id=S("task-003")),
    event("task_step", task_id=S("task-003"), step=S("done")),
    event("actions_generated", task_id=S("task-003"), action_count=U(0)),
    event("task_complete", task_id=S("task-003"), success=B(True)),
    event("task_feedback", task_id=S("task-003")),
    event("validator_connection", validator_hotkey=S(HOTKEY)),
    event("cache_hit", task_id=S("task-003")),
    event("error", error_message=S("disk full")),
    event("task_start", task_id=S("T" * 128), prompt=S("\u00e9" * 2048), truncated=U(2)),
]


def check(index, topic, body, errors, state):
    """Compare one received event with EXPECTED[index]; append messages."""
    type_, exp = EXPECTED[index]
    where = "event %d (%s)" % (index + 1, type_)
    if topic != type_.encode():
        errors.append("%s: topic %r, expected %r" % (where, topic, type_))
    try:
        shape = body_shape(body)
        value = msgpack.unpackb(body, raw=False)
    except Exception as exc:  # report, do not stop at the first bad event
        errors.append("%s: undecodable body: %s" % (where, exc))
        return
    if set(shape) != set(exp):
        errors.append("%s: keys %s, expected exactly %s (extra %s, missing %s)" % (
            where, sorted(shape), sorted(exp), sorted(set(shape) - set(exp)),
            sorted(set(exp) - set(shape))))
    for key, (want_shape, want_value) in exp.items():
        if key not in shape:
            continue
        if shape[key] != want_shape:
            errors.append("%s: %s has msgpack type %s, expected %s" % (
                where, key, shape[key], want_shape))
        if want_value is not ANY and value[key] != want_value:
            errors.append("%s: %s = %r, expected %r" % (where, key, value[key], want_value))
    if value.get("seq") != index + 1:
        errors.append("%s: seq %r, expected %d (1..n)" % (where, value.get("seq"), index + 1))
    state.setdefault("sid", value.get("sid"))
    if value.get("sid") != state["sid"] or not value.get("sid"):
        errors.append("%s: sid %r differs or is 0" % (where, value.get("sid")))
    ts = value.get("ts", 0)
    if not (state["t0"] - 300e6 <= ts <= time.time() * 1e6 + 300e6):
        errors.append("%s: ts %r is not microseconds since the epoch now" % (where, ts))
    if ts < state.get("last_ts", 0):
        errors.append("%s: ts went backwards" % where)
    state["last_ts"] = ts


def main():
    """Run the publisher against our SUB and check what arrives."""
    if len(sys.argv) < 2:
        print("usage: interop_sub.py [WRAPPER ARGS...] PATH/TO/mw_interop_pub", file=sys.stderr)
        return 2
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.bind("tcp://127.0.0.1:*")
    endpoint = sub.getsockopt(zmq.LAST_ENDPOINT).decode()
    state = {"t0": time.time() * 1e6}
    proc = subprocess.Popen(sys.argv[1:] + [">" + endpoint], stdout=subprocess.PIPE)
    received = []
    deadline = time.monotonic() + 60
    while len(received) < len(EXPECTED) and time.monotonic() < deadline:
        if sub.poll(100):
            frames = sub.recv_multipart()
            received.append(frames)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    errors = []
    if proc.returncode != 0:
        errors.append("mw_interop_pub exited with %r: %s" % (proc.returncode, out))
    if len(received) != len(EXPECTED):
        errors.append("received %d events, expected %d" % (len(received), len(EXPECTED)))
    for i, frames in enumerate(received[:len(EXPECTED)]):
        if len(frames) != 2:
            errors.append("event %d: %d frames, expected 2 (topic, body)" % (i + 1, len(frames)))
            continue
        check(i, frames[0], frames[1], errors, state)
    if sub.poll(200):
        errors.append("more events than expected arrived")
    for e in errors:
        print("FAIL:", e)
    print("publisher said: %s" % out.decode().strip())
    print("interop: %d of %d events received, %d mismatches" % (
        len(received), len(EXPECTED), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
