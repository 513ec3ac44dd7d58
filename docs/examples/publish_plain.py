#!/usr/bin/env python3
"""Publish minerwatch events with nothing but pyzmq and msgpack.

This is wire protocol v1 (docs/protocol.md) written by hand, so that a miner
in any language can publish without libminerwatch. It sends one complete
task (validator_connection, task_start, task_step, actions_generated,
cache_hit, task_complete, task_feedback) and one custom event, then prints
what it sent.

    usage: publish_plain.py [ENDPOINT] [MINER]
    ENDPOINT  where the broker (or `minerwatch tail`) listens,
              default tcp://127.0.0.1:7710; this script connects
    MINER     the miner's name, default plain-python

Try it:   minerwatch tail --json @tcp://127.0.0.1:7710 &
          python3 docs/examples/publish_plain.py
"""
import os
import sys
import time

import msgpack
import zmq

MAX_STR = 4096  # bytes in a string value
MAX_TASK_ID = 128  # bytes in task_id
MAX_MINER = 64  # bytes in miner


class PlainPublisher:
    """A minimal wire protocol v1 publisher: two frames, a msgpack map."""

    def __init__(self, endpoint, miner):
        self.ctx = zmq.Context.instance()
        # XPUB sends like PUB, and also tells us when a subscriber arrives:
        # a PUB socket silently discards what it sends before that.
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.SNDHWM, 10000)  # queued per subscriber
        self.sock.setsockopt(zmq.LINGER, 200)  # ms to flush at close
        self.sock.connect(endpoint)
        self.truncated = 0
        self.miner = self._cut(miner, MAX_MINER)
        self.sid = int.from_bytes(os.urandom(8), "big")  # new each start
        self.seq = 0
        self.sent = 0
        self.dropped = 0

    def _cut(self, value, limit):
        """Cut a string to limit UTF-8 bytes, at a character boundary."""
        raw = value.encode("utf-8")
        if len(raw) <= limit:
            return value
        self.truncated += 1
        return raw[:limit].decode("utf-8", "ignore")

    def wait_for_subscriber(self, timeout_s=5.0):
        """Wait until a subscriber has subscribed (a tool's first event
        would otherwise be lost). A long-running miner need not wait."""
        if self.sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            self.sock.recv()  # b"\x01" + the topic prefix subscribed to
            return True
        return False

    def publish(self, event_type, **fields):
        """Send one event; keys whose value is None are left out."""
        self.seq += 1  # 1, 2, 3 ... per session: a gap is a loss
        body = {
            "v": 1,
            "type": event_type,
            "ts": time.time_ns() // 1000,  # microseconds since the epoch, UTC
            "miner": self.miner,
            "sid": self.sid,
            "seq": self.seq,
        }
        self.truncated = 0
        for key, value in fields.items():
            if value is None:
                continue
            if isinstance(value, str):
                value = self._cut(value, MAX_TASK_ID if key == "task_id" else MAX_STR)
            body[key] = value
        if self.truncated:
            body["truncated"] = self.truncated  # how many strings were cut
        frames = [event_type.encode("ascii"), msgpack.packb(body, use_bin_type=True)]
        try:
            # Never block the miner: if the queue is full, drop and count.
            self.sock.send_multipart(frames, flags=zmq.DONTWAIT)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1

    def close(self):
        self.sock.close()


def main():
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:7710"
    miner = sys.argv[2] if len(sys.argv) > 2 else "plain-python"
    pub = PlainPublisher(endpoint, miner)
    if not pub.wait_for_subscriber(5.0):
        print("no subscriber on %s after 5 s; sending anyway" % endpoint, file=sys.stderr)

    task = "plain-%d" % os.getpid()
    hotkey = "5F3sa2TJAWMqDhXG6jhV4N8ko9SxwGy8TpaNS1repo5EYjQX"
    started = time.monotonic()
    pub.publish("validator_connection", validator_ip="45.22.240.79", validator_hotkey=hotkey)
    pub.publish(
        "task_start",
        task_id=task,
        prompt="Login to example.com",
        url="https://example.com/login",
        validator_ip="45.22.240.79",
        validator_hotkey=hotkey,
        timeout_ms=30000,
    )
    pub.publish("task_step", task_id=task, step="processing", details={"page": 1, "retry": False})
    pub.publish("actions_generated", task_id=task, action_count=12, action_type="click")
    pub.publish("cache_hit", task_id=task, cache_type="prompt")
    pub.publish(
        "task_complete",
        task_id=task,
        success=True,
        action_count=12,
        response_time=time.monotonic() - started,  # seconds, a float
    )
    pub.publish("task_feedback", task_id=task, score=0.92, execution_time=5.2, validator_hotkey=hotkey)
    # Any other type and any other key is carried through untouched.
    pub.publish("gpu_sample", gpu_temp_c=71, gpu_util=0.83)

    print("sent %d events (dropped %d) as miner %r, sid %d" % (pub.sent, pub.dropped, miner, pub.sid))
    pub.close()
    return 0 if pub.dropped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
