#!/usr/bin/python3
"""What publishing costs a Python miner: the binding against doing it by hand.

Two ways to publish the same event, measured in the same run:

- binding: minerwatch.Publisher.task_start(...) / .actions_generated(...),
  the ctypes binding of libminerwatch (stamping, encoding and sending in C);
- by hand: what a Python miner writes with pyzmq + msgpack and no library:
  build the map with its header keys, msgpack.packb() it, send the two
  frames with zmq.DONTWAIT on a PUB socket (no truncation or validation,
  so the floor of doing it by hand).

Both connect over loopback to one SUB socket drained by another process
(so the receiver does not compete for this interpreter's GIL), with the
same send high-water mark. A batch is timed from its first call to its
last; between batches (not timed) we wait until the receiver has every
event. Batches alternate between the two ways, the order flipping each
round. We report the median ns/event and the ratio binding / by hand.

usage: PYTHONPATH=build/python /usr/bin/python3 bench/bench_python.py
           [--events N] [--batches B] [--hwm H]
Exit status 0 if every event arrived; the ratio is reported, never a failure.
"""
import argparse
import multiprocessing
import os
import statistics
import sys
import time

import msgpack
import zmq

import minerwatch

PROMPT = "Login to example.com with the username in the task and check the dashboard loads"
URL = "https://example.com/login?next=%2Fdashboard"
VIP = "45.22.240.79"
VHOTKEY = "5F3sa2TJAWMqDhXG6jhV4N8ko9SxwGy8TpaNS1repo5EYjQX"
TASK_ID = "8f14e45f-ceea-467f-a9d5-d3d1b2c9e1a7"
MINER = "bench-miner"


def receiver(hwm, port_conn, count, stop):
    """Child process: a SUB socket on a free port, counting whole messages."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.RCVHWM, hwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    port_conn.send(sock.bind_to_random_port("tcp://127.0.0.1"))
    received = 0
    while not stop.is_set():
        if sock.poll(100):
            while True:
                try:
                    sock.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                received += 1
            count.value = received
    sock.close()
    ctx.term()


class ByHand:
    """A wire protocol v1 publisher written with pyzmq + msgpack only."""

    def __init__(self, ctx, endpoint, hwm):
        self.sock = ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.sid = int.from_bytes(os.urandom(8), "big")
        self.seq = 0
        self.dropped = 0

    def publish(self, topic, event_type, fields):
        self.seq += 1
        body = {"v": 1, "type": event_type, "ts": time.time_ns() // 1000, "miner": MINER,
                "sid": self.sid, "seq": self.seq}
        body.update(fields)
        try:
            self.sock.send_multipart([topic, msgpack.packb(body)], zmq.DONTWAIT)
        except zmq.Again:
            self.dropped += 1

    def task_start(self):
        self.publish(b"task_start", "task_start",
                     {"task_id": TASK_ID, "prompt": PROMPT, "url": URL, "validator_ip": VIP,
                      "validator_hotkey": VHOTKEY, "timeout_ms": 30000})

    def actions_generated(self):
        self.publish(b"actions_generated", "actions_generated",
                     {"task_id": TASK_ID, "action_count": 12, "action_type": "click"})


def wait_count(count, expected, timeout=20.0):
    deadline = time.monotonic() + timeout
    while count.value < expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=2000, help="events per timed batch")
    ap.add_argument("--batches", type=int, default=15, help="timed batches of each way")
    ap.add_argument("--hwm", type=int, default=10000, help="send high-water mark of both")
    args = ap.parse_args()
    if args.events < 1 or args.batches < 1 or args.hwm < 1:
        ap.error("--events, --batches and --hwm must be >= 1")

    mp = multiprocessing.get_context("fork")
    count = mp.Value("Q", 0, lock=False)
    stop = mp.Event()
    parent_conn, child_conn = mp.Pipe()
    child = mp.Process(target=receiver, args=(args.hwm, child_conn, count, stop), daemon=True)
    child.start()
    endpoint = "tcp://127.0.0.1:%d" % parent_conn.recv()

    ctx = zmq.Context()
    hand = ByHand(ctx, endpoint, args.hwm)
    pub = minerwatch.Publisher(">" + endpoint, miner=MINER, sndhwm=args.hwm, linger_ms=0)
    rc = 1
    try:
        if not pub.wait_ready(5000):
            sys.exit("bench_python: the binding's publisher never saw the receiver")
        # A PUB socket cannot tell when the subscription arrived: probe.
        for _ in range(5000):
            hand.sock.send(b"$probe", zmq.DONTWAIT)
            if count.value:
                break
            time.sleep(0.001)
        else:
            sys.exit("bench_python: the PUB socket never reached the receiver")
        time.sleep(0.1)
        expected = count.value

        cases = [
            ("task_start",
             lambda: pub.task_start(TASK_ID, prompt=PROMPT, url=URL, validator_ip=VIP,
                                    validator_hotkey=VHOTKEY, timeout_ms=30000),
             hand.task_start),
            ("actions_generated",
             lambda: pub.actions_generated(TASK_ID, 12, action_type="click"),
             hand.actions_generated),
        ]
        print("| event | binding ns/event | pyzmq + msgpack ns/event | ratio | target |")
        print("|---|---:|---:|---:|---|")
        n = args.events
        for name, binding_call, hand_call in cases:
            times = {"binding": [], "hand": []}
            for rnd in range(-1, args.batches):  # round -1 warms up
                order = ("binding", "hand") if rnd % 2 == 0 else ("hand", "binding")
                for way in order:
                    call = binding_call if way == "binding" else hand_call
                    t0 = time.perf_counter_ns()
                    for _ in range(n):
                        call()
                    elapsed = time.perf_counter_ns() - t0
                    if rnd >= 0:
                        times[way].append(elapsed / n)
                    expected += n
                    if not wait_count(count, expected):
                        sys.exit("bench_python: %s: %d events sent, %d received: events were "
                                 "lost" % (name, expected, count.value))
            b = statistics.median(times["binding"])
            h = statistics.median(times["hand"])
            ratio = b / h
            print("| %s | %.0f | %.0f | %.2fx | binding faster (< 1x): %s |"
                  % (name, b, h, ratio, "met" if ratio < 1 else "MISSED"))
        if pub.dropped or hand.dropped:
            sys.exit("bench_python: dropped: binding %d, by hand %d" % (pub.dropped, hand.dropped))
        print()
        print("%d batches x %d events per way and event, HWM %d, median of batches; "
              "Python %s, libminerwatch %s, pyzmq %s (libzmq %s), msgpack %s"
              % (args.batches, n, args.hwm, sys.version.split()[0], minerwatch.version(),
                 zmq.__version__, zmq.zmq_version(), ".".join(map(str, msgpack.version))))
        rc = 0
    finally:
        pub.close()
        hand.sock.close()
        ctx.term()
        stop.set()
        child.join(5)
    return rc


if __name__ == "__main__":
    sys.exit(main())
