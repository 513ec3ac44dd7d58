#!/usr/bin/python3
"""docs/protocol.md's example publisher, run for real (ctest docs_protocol_example).

1. The listing in docs/protocol.md is exactly docs/examples/publish_plain.py.
2. publish_plain.py (pyzmq + msgpack only, no minerwatch code) publishes to
   `minerwatch tail --json`, which decodes every event with libminerwatch's
   decoder: all 8 arrive, in order, with their keys, custom ones included.

usage: protocol_example_test.py MINERWATCH_BINARY SOURCE_DIR
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

TIMEOUT = 30


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def main():
    binary, source = sys.argv[1], sys.argv[2]
    example = os.path.join(source, "docs", "examples", "publish_plain.py")
    doc = os.path.join(source, "docs", "protocol.md")

    with open(example) as f:
        code = f.read().rstrip("\n")
    with open(doc) as f:
        text = f.read()
    begin = text.find("<!-- publish_plain.py: begin")
    end = text.find("<!-- publish_plain.py: end")
    if begin < 0 or end < 0:
        fail("docs/protocol.md lost the markers around the publish_plain.py listing")
    block = text[begin:end]
    start = block.find("```python\n")
    stop = block.rfind("\n```")
    if start < 0 or stop < 0 or block[start + len("```python\n"):stop] != code:
        fail("the listing in docs/protocol.md differs from docs/examples/publish_plain.py: "
             "copy the file into the ```python block between the markers")
    print("ok: docs/protocol.md shows docs/examples/publish_plain.py as it is")

    for attempt in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        tail = subprocess.Popen([binary, "tail", "--json", "--count", "8", "--timeout",
                                 str(TIMEOUT), "@tcp://127.0.0.1:%d" % port],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.2)
        if tail.poll() is None:
            break
        print("tail did not start on port %d: %s" % (port, tail.stderr.read()))
    else:
        fail("minerwatch tail did not start")

    pub = subprocess.run([sys.executable, example, "tcp://127.0.0.1:%d" % port, "doc-example"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=TIMEOUT)
    print(pub.stdout, end="")
    try:
        out, err = tail.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        tail.kill()
        out, err = tail.communicate()
        fail("tail --count 8 did not finish; it printed:\n%s\n%s" % (out, err))
    if pub.returncode != 0:
        fail("publish_plain.py exited %d" % pub.returncode)
    if tail.returncode != 0:
        fail("minerwatch tail exited %d: %s" % (tail.returncode, err))
    # tail ends with a one-line summary on stderr; anything malformed or
    # missing (a sequence gap) is a failure.
    print(err, end="")
    if re.search(r"\b[1-9][0-9]* (malformed|missing)\b", err) or "error" in err.lower():
        fail("minerwatch tail reported problems on stderr:\n" + err)
    try:
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
    except ValueError as exc:
        fail("tail --json printed a line that is not JSON (%s):\n%s" % (exc, out))

    types = [e.get("type") for e in events]
    want = ["validator_connection", "task_start", "task_step", "actions_generated",
            "cache_hit", "task_complete", "task_feedback", "gpu_sample"]
    if types != want:
        fail("received %s, expected %s" % (types, want))
    if [e.get("seq") for e in events] != list(range(1, 9)):
        fail("seq is not 1..8: %r" % [e.get("seq") for e in events])
    if len({e.get("sid") for e in events}) != 1 or any(e.get("miner") != "doc-example"
                                                       for e in events):
        fail("sid or miner differ between events: %r" % events)
    by_type = {e["type"]: e for e in events}
    checks = [
        ("task_start", "prompt", "Login to example.com"),
        ("task_start", "timeout_ms", 30000),
        ("task_step", "details", {"page": 1, "retry": False}),
        ("actions_generated", "action_count", 12),
        ("task_complete", "success", True),
        ("task_feedback", "score", 0.92),
        ("gpu_sample", "gpu_temp_c", 71),
        ("gpu_sample", "gpu_util", 0.83),
    ]
    for etype, key, value in checks:
        if by_type[etype].get(key) != value:
            fail("%s.%s is %r, expected %r" % (etype, key, by_type[etype].get(key), value))
    print("ok: all 8 events of the plain-Python publisher decoded by minerwatch tail")


if __name__ == "__main__":
    main()
