#!/usr/bin/python3
"""A subscriber that reports each event's seq on stdout until it is killed.

Started by test_publisher_killed_sub, which kills it with SIGKILL mid-way.
Usage: killed_sub.py [RCVHWM [RCVBUF]]. Prints "ENDPOINT tcp://127.0.0.1:PORT"
first (the port is picked by the kernel), then one seq per line, each written
with one unbuffered write so nothing reported is lost when it dies. Exits by
itself after 120 s at most, in case the test died first.
"""
import os
import signal
import sys

import msgpack
import zmq


def main():
    """Bind, report the endpoint, then report every seq received."""
    signal.alarm(120)
    rcvhwm = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rcvbuf = int(sys.argv[2]) if len(sys.argv) > 2 else 65536
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    #  Small queues and a fixed kernel buffer keep the events in flight at
    #  the kill few and computable (the test states the bound).
    sub.setsockopt(zmq.RCVHWM, rcvhwm)
    sub.setsockopt(zmq.RCVBUF, rcvbuf)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.bind("tcp://127.0.0.1:*")
    endpoint = sub.getsockopt(zmq.LAST_ENDPOINT).decode()
    os.write(1, ("ENDPOINT %s\n" % endpoint).encode())
    while True:
        frames = sub.recv_multipart()
        event = msgpack.unpackb(frames[1], raw=False)
        os.write(1, b"%d\n" % event["seq"])


if __name__ == "__main__":
    main()
