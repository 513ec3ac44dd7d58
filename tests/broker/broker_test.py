#!/usr/bin/python3
"""Integration tests of minerwatch-broker: real processes on loopback.

Usage: broker_test.py --broker BIN --pub BIN --clone BIN [--cli BIN]
                      [--valgrind] CASE

Run with Debian's /usr/bin/python3 (python3-zmq, python3-msgpack): Python
plays the independent peer (hostile publisher, snapshot client, heartbeat
reader). The broker binds "tcp://127.0.0.1:*" and says where in its "ready"
log line, so no port is guessed. Every wait is bounded; nothing asserts
speed. With --valgrind the broker runs under valgrind memcheck and must
exit 0 with no error and no definite leak.
"""
import argparse
import glob
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unicodedata

import msgpack
import zmq

ARGS = None
TIMEOUT = 60  # seconds any one wait may take
STARTED = []  # broker processes, killed at the end if a failed check left them running
VALGRIND = ["valgrind", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--quiet", "--num-callers=30"]
READY = re.compile(r"ready: ingest=(\S+) publish=(\S+) snapshot=(\S+) epoch=([0-9a-f]+) "
                   r"id=(\d+) state=(\w+) curve=(\w+)")


def fail(msg):
    raise AssertionError(msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def first_tcp(endpoints):
    """'@tcp://127.0.0.1:4000,...' -> 'tcp://127.0.0.1:4000'"""
    return endpoints.split(",")[0].lstrip("@>")


class Broker:
    """A minerwatch-broker process; its stderr is collected line by line."""

    def __init__(self, *extra, valgrind=None, expect_ready=True):
        self.valgrind = ARGS.valgrind if valgrind is None else valgrind
        cmd = [ARGS.broker, "--ingest", "@tcp://127.0.0.1:*", "--publish",
               "@tcp://127.0.0.1:*", "--snapshot", "@tcp://127.0.0.1:*", *extra]
        if self.valgrind:
            cmd = VALGRIND + cmd
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        STARTED.append(self.proc)
        self.lines = []
        self.queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.ingest = self.publish = self.snapshot = None
        if expect_ready:
            self.wait_ready()

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self.queue.put(line)
        self.queue.put(None)

    def log(self):
        return "\n".join(self.lines)

    def wait_line(self, pattern, timeout=TIMEOUT):
        rx = re.compile(pattern)
        for line in self.lines:
            m = rx.search(line)
            if m:
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            m = rx.search(line)
            if m:
                return m
        fail("no log line matching %r; log:\n%s" % (pattern, self.log()))

    def wait_ready(self):
        m = self.wait_line(READY.pattern, timeout=90 if self.valgrind else TIMEOUT)
        self.ingest = first_tcp(m.group(1))
        self.publish = first_tcp(m.group(2))
        self.snapshot = first_tcp(m.group(3))
        self.epoch = m.group(4)
        self.id = int(m.group(5))
        self.state = m.group(6)
        self.curve = m.group(7)

    def stop(self, sig=signal.SIGTERM, timeout=TIMEOUT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout * (3 if self.valgrind else 1))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("broker did not stop in time; log:\n" + self.log())
        self.reader.join(timeout=5)
        return rc

    def alive(self):
        return self.proc.poll() is None


class Client:
    """Python peer of the broker: heartbeats, updates, snapshots."""

    def __init__(self, broker, curve=None):
        self.ctx = zmq.Context.instance()
        self.broker = broker
        self.curve = curve  # (server_public, client_public, client_secret) Z85 bytes

    def _secure(self, sock):
        if self.curve:
            server, public, secret = self.curve
            sock.curve_serverkey = server
            sock.curve_publickey = public
            sock.curve_secretkey = secret

    def sub(self, *prefixes):
        s = self.ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        self._secure(s)
        for p in prefixes:
            s.setsockopt(zmq.SUBSCRIBE, p)
        s.connect(self.broker.publish)
        return s

    def heartbeat(self, predicate=lambda hb: True, timeout=TIMEOUT):
        """The first heartbeat that satisfies predicate, as a dict."""
        s = self.sub(b"$hb")
        try:
            deadline = time.monotonic() + timeout
            last = None
            while time.monotonic() < deadline:
                if not s.poll(200):
                    continue
                topic, body = s.recv_multipart()
                last = msgpack.unpackb(body, raw=False)
                if predicate(last):
                    return last
            fail("no matching heartbeat in %d s; last: %r; log:\n%s"
                 % (timeout, last, self.broker.log()))
        finally:
            s.close()

    def snapshot(self, timeout=TIMEOUT, request=(b"$snap?",)):
        d = self.ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        self._secure(d)
        d.connect(self.broker.snapshot)
        try:
            d.send_multipart(list(request))
            data = bytearray()
            seq = 0
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not d.poll(200):
                    continue
                frames = d.recv_multipart()
                if frames[0] == b"$snap":
                    check(len(frames) == 3, "chunk of %d frames" % len(frames))
                    check(msgpack.unpackb(frames[1]) == seq, "chunk out of order")
                    check(len(frames[2]) <= 65536, "chunk over 64 KiB")
                    seq += 1
                    data += frames[2]
                elif frames[0] == b"$snap_end":
                    end = msgpack.unpackb(frames[1], raw=False)
                    check(end["size"] == len(data), "size %d != %d" % (end["size"], len(data)))
                    check(end["chunks"] == seq, "chunks %d != %d" % (end["chunks"], seq))
                    return bytes(data), end
                else:
                    return frames, None
            fail("no snapshot in %d s" % timeout)
        finally:
            d.close()


def spawn(cmd, **kwargs):
    """A helper process, killed at the end if a failed check left it running."""
    proc = subprocess.Popen(cmd, **kwargs)
    STARTED.append(proc)
    return proc


def start_pub(endpoint, miner, tasks, rate=0, *flags):
    return spawn([ARGS.pub, ">" + endpoint, miner, str(tasks), str(rate), *flags],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_pub(proc, timeout=TIMEOUT * 3):
    out, err = proc.communicate(timeout=timeout)
    check(proc.returncode == 0, "publisher failed: %s" % err.decode(errors="replace"))
    m = re.search(rb"sent=(\d+) dropped=(\d+)", out)
    check(m, "publisher said: %r" % out)
    return int(m.group(1)), int(m.group(2))


def snapshot_stats(broker, extra=()):
    """Counters of a fresh snapshot, read by the C client through mw_state."""
    out = subprocess.run([ARGS.clone, "snapshot", "tcp://" + broker.snapshot.split("://")[1],
                          *extra], capture_output=True, timeout=TIMEOUT * 2)
    check(out.returncode == 0, "snapshot client failed: %s" % out.stderr.decode())
    return json.loads(out.stdout)


def event_body(seq=1, **fields):
    body = {"v": 1, "type": "task_start", "ts": int(time.time() * 1e6), "miner": "py-miner",
            "sid": 4242, "seq": seq, "task_id": "py-task-%d" % seq}
    body.update(fields)
    return msgpack.packb(body)


def xpub_connected(ctx, endpoint, curve=None):
    """An XPUB that connects to the broker's ingest and returns once the
    broker's subscription arrived (so nothing sent after is lost)."""
    s = ctx.socket(zmq.XPUB)
    s.setsockopt(zmq.LINGER, 2000)
    s.setsockopt(zmq.SNDHWM, 100000)
    if curve:
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = curve
    s.connect(endpoint)
    check(s.poll(TIMEOUT * 1000), "the broker never subscribed")
    check(s.recv()[:1] == b"\x01", "not a subscription")
    return s


# --------------------------------------------------------------------------
# Cases

def case_clone():
    """Publishers -> broker -> snapshot-then-subscribe mirror, under
    continuous traffic; a slow snapshot reader at the same time; at the end
    the mirror's mw_state_save bytes equal a fresh snapshot's."""
    b = Broker("--save-interval", "0")
    c = Client(b)
    mirror = spawn([ARGS.clone, "mirror", b.snapshot, b.publish],
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Traffic first, the mirror joins while it flows.
    pubs = [start_pub(b.ingest, "miner-%d" % i, 1500, 6000, *(("--big",) if i == 0 else ()))
            for i in range(3)]
    time.sleep(1.0)
    # A slow snapshot reader in the middle of it: the transfer is paced and
    # must neither stall the stream nor lose a chunk.
    slow = spawn([ARGS.clone, "snapshot", b.snapshot, "--slow-ms", "20"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sent = 0
    for p in pubs:
        s, d = finish_pub(p)
        sent += s
    check(sent > 0, "nothing sent")
    mirror.stdin.write(b"%d\n" % sent)
    mirror.stdin.flush()
    try:
        out, err = mirror.communicate(timeout=TIMEOUT * 2)
    except subprocess.TimeoutExpired:
        mirror.kill()
        out, err = mirror.communicate()
    print(out.decode(), err.decode())
    check(mirror.returncode == 0 and b"EQUAL" in out,
          "mirror differs from the broker: %s %s\nlog:\n%s" % (out, err, b.log()))
    check(b"resyncs=0" in out, "the mirror had to resynchronize: %s" % out)
    sout, serr = slow.communicate(timeout=TIMEOUT * 3)
    check(slow.returncode == 0, "slow snapshot failed: %s" % serr.decode())
    info = json.loads(sout)
    print("slow snapshot:", info)
    hb = c.heartbeat(lambda hb: hb["accepted"] == sent)
    check(hb["rejected"] == 0, "rejections: %r" % hb)
    check(hb["snap_served"] >= 2, "snapshots served: %r" % hb)
    print("heartbeat:", hb)
    check(b.stop() == 0, "broker exit code; log:\n" + b.log())


def case_pacing():
    """A snapshot much larger than the ROUTER's queue, read slowly: it
    arrives whole, the broker pauses (snap_paused > 0) instead of dropping,
    and heartbeats keep coming meanwhile."""
    b = Broker("--save-interval", "0")
    c = Client(b)
    p = start_pub(b.ingest, "big-miner", 1500, 0, "--big")
    sent, _ = finish_pub(p)
    c.heartbeat(lambda hb: hb["accepted"] == sent)
    hb_sub = c.sub(b"$hb")
    slow = spawn([ARGS.clone, "snapshot", b.snapshot, "--slow-ms", "30"],
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    beats = 0
    started = time.monotonic()
    while slow.poll() is None and time.monotonic() - started < TIMEOUT * 2:
        if hb_sub.poll(200):
            hb_sub.recv_multipart()
            beats += 1
    sout, serr = slow.communicate(timeout=TIMEOUT)
    check(slow.returncode == 0, "slow snapshot failed: %s" % serr.decode())
    info = json.loads(sout)
    print("snapshot:", info, "heartbeats during it:", beats)
    check(info["size"] > 2 * 1024 * 1024, "snapshot too small to test pacing: %r" % info)
    check(info["total_events"] == sent, "snapshot lost events: %r" % info)
    seconds = info["seconds"]
    check(beats >= int(seconds) - 1, "heartbeats stalled: %d in %.1f s" % (beats, seconds))
    hb = c.heartbeat(lambda hb: hb["snap_served"] >= 1)
    print("heartbeat:", hb)
    check(hb["snap_paused"] > 0, "the transfer never paused: %r" % hb)
    check(hb["snap_dropped"] == 0, "a transfer was dropped: %r" % hb)
    # A fast client, with the ROUTER's other peer still connected and idle.
    data, end = c.snapshot()
    check(end["id"] >= info["id"], "ids go back")
    # More clients than transfers allowed (32), none of them reading: the
    # extra ones are told "busy" at once; the others pause. When they all
    # go away the broker drops their transfers.
    ctx = zmq.Context.instance()
    stuck = []
    for i in range(36):
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.setsockopt(zmq.RCVHWM, 1)
        d.setsockopt(zmq.RCVBUF, 4096)
        d.connect(b.snapshot)
        d.send(b"$snap?")
        stuck.append(d)
    busy = 0
    for d in stuck:
        check(d.poll(TIMEOUT * 1000), "a client got no answer at all")
        if d.recv_multipart()[0] == b"$snap_err":
            busy += 1
    hb = c.heartbeat(lambda hb: hb["snap_busy"] >= 4)
    print("busy answers:", busy, "heartbeat:", hb["snap_active"], "active,",
          hb["snap_busy"], "busy")
    check(busy == 4 and hb["snap_active"] == 32, "expected 32 transfers and 4 busy: %r" % hb)
    for d in stuck:
        d.close()
    hb = c.heartbeat(lambda hb: hb["snap_active"] == 0)
    check(hb["snap_dropped"] >= 32, "transfers of gone clients: %r" % hb)
    hb_sub.close()
    check(b.stop() == 0, "broker exit code; log:\n" + b.log())


def case_restart():
    """SIGTERM saves; a restart restores the same last id, the same epoch,
    the same counters."""
    d = tempfile.mkdtemp(prefix="mw-broker-")
    try:
        path = os.path.join(d, "state.mw")
        b = Broker("--state-file", path, "--save-interval", "1")
        check(b.state == "new", "state should be new")
        c = Client(b)
        sent, _ = finish_pub(start_pub(b.ingest, "miner-r", 400))
        c.heartbeat(lambda hb: hb["accepted"] == sent and hb["saves"] >= 1)
        before = snapshot_stats(b)
        check(b.stop() == 0, "broker exit code; log:\n" + b.log())
        saved = int(b.wait_line(r"state saved to .* \(id (\d+)\)").group(1))
        check(os.path.exists(path), "no state file")
        check(not os.path.exists(path + ".tmp"), "temporary file left behind")

        b2 = Broker("--state-file", path)
        check(b2.state == "restored", "not restored: " + b2.log())
        check(b2.epoch == b.epoch, "epoch changed on a clean restart: %s -> %s" % (b.epoch, b2.epoch))
        check(b2.id == saved, "last id %d, saved %d" % (b2.id, saved))
        after = snapshot_stats(b2)
        for key in ("total_events", "tasks_started", "tasks_succeeded", "tasks_failed",
                    "active_tasks", "recent", "history", "miners", "validators"):
            check(before[key] == after[key], "%s: %r -> %r" % (key, before[key], after[key]))
        check(after["id"] >= saved, "ids went back")
        # Ids continue after the restored one, events still flow.
        c2 = Client(b2)
        sent2, _ = finish_pub(start_pub(b2.ingest, "miner-r2", 20))
        hb = c2.heartbeat(lambda hb: hb["accepted"] == sent2)
        check(hb["restored"] is True and hb["id"] > saved, "heartbeat %r" % hb)
        check(format(hb["epoch"], "016x") == b.epoch, "heartbeat epoch")
        print("restored: id", saved, "epoch", b.epoch, "counters", after)
        check(b2.stop() == 0, "broker exit code")
    finally:
        shutil.rmtree(d)


def case_crash():
    """kill -9: the last periodic save comes back, with a new epoch (ids
    after that save may have been seen by readers)."""
    d = tempfile.mkdtemp(prefix="mw-broker-")
    try:
        path = os.path.join(d, "state.mw")
        b = Broker("--state-file", path, "--save-interval", "1")
        c = Client(b)
        sent, _ = finish_pub(start_pub(b.ingest, "miner-c", 200))
        c.heartbeat(lambda hb: hb["accepted"] == sent)
        c.heartbeat(lambda hb: hb["saves"] >= 3)
        b.proc.kill()
        b.proc.wait()
        b2 = Broker("--state-file", path)
        check(b2.state == "restored", "not restored")
        check(b2.epoch != b.epoch, "a crash restart must take a new epoch")
        b2.wait_line(r"did not stop cleanly")
        stats = snapshot_stats(b2)
        check(stats["total_events"] == sent, "events lost: %r" % stats)
        check(b2.stop() == 0, "exit code")
        # And a clean stop after that keeps the (new) epoch.
        b3 = Broker("--state-file", path)
        check(b3.epoch == b2.epoch, "clean restart after a crash restart")
        check(b3.stop() == 0, "exit code")
    finally:
        shutil.rmtree(d)


def case_corrupt():
    """A corrupt state file is moved aside with a clear message; the broker
    starts empty with a new epoch and works."""
    d = tempfile.mkdtemp(prefix="mw-broker-")
    try:
        path = os.path.join(d, "state.mw")
        b = Broker("--state-file", path)
        sent, _ = finish_pub(start_pub(b.ingest, "miner-x", 100))
        Client(b).heartbeat(lambda hb: hb["accepted"] == sent)
        check(b.stop() == 0, "exit code")
        good = open(path, "rb").read()
        corruptions = {
            "payload bit flip": good[:200] + bytes([good[200] ^ 0x40]) + good[201:],
            "truncated": good[: len(good) // 2],
            "garbage": b"this is not a state file at all\n" * 10,
            "empty": b"",
            "header bit flip": good[:20] + bytes([good[20] ^ 1]) + good[21:],
        }
        epochs = {b.epoch}
        for name, content in corruptions.items():
            for f in glob.glob(path + ".corrupt-*"):
                os.unlink(f)
            with open(path, "wb") as f:
                f.write(content)
            b2 = Broker("--state-file", path)
            b2.wait_line(r"corrupt state file: .*Moved it aside to .*\.corrupt-\d+")
            check(b2.state == "new", "%s: state %s" % (name, b2.state))
            check(b2.epoch not in epochs, "%s: epoch reused" % name)
            epochs.add(b2.epoch)
            aside = glob.glob(path + ".corrupt-*")
            check(len(aside) == 1, "%s: not moved aside: %r" % (name, aside))
            check(open(aside[0], "rb").read() == content, "%s: moved file differs" % name)
            c = Client(b2)
            s2, _ = finish_pub(start_pub(b2.ingest, "miner-y", 10))
            c.heartbeat(lambda hb: hb["accepted"] == s2)
            check(b2.stop() == 0, "%s: exit code" % name)
            print("%s: moved aside, new epoch %s" % (name, b2.epoch))
    finally:
        shutil.rmtree(d)


def case_save_failure():
    """A save that fails (the directory vanished) is logged and counted;
    the broker keeps running and exits cleanly."""
    d = tempfile.mkdtemp(prefix="mw-broker-")
    sub = os.path.join(d, "sub")
    os.mkdir(sub)
    try:
        path = os.path.join(sub, "state.mw")
        b = Broker("--state-file", path, "--save-interval", "1")
        c = Client(b)
        c.heartbeat(lambda hb: hb["saves"] >= 1)
        # The writer may be creating its temporary file right then: retry.
        for _ in range(100):
            shutil.rmtree(sub, ignore_errors=True)
            if not os.path.exists(sub):
                break
            time.sleep(0.05)
        check(not os.path.exists(sub), "cannot remove " + sub)
        hb = c.heartbeat(lambda hb: hb["save_failures"] >= 2)
        b.wait_line(r"cannot save state to .*state\.mw")
        sent, _ = finish_pub(start_pub(b.ingest, "miner-f", 50))
        hb = c.heartbeat(lambda hb: hb["accepted"] == sent)
        check(b.alive(), "broker died")
        print("save failures:", hb["save_failures"])
        check(b.stop() == 0, "exit code after failed saves; log:\n" + b.log())
    finally:
        shutil.rmtree(d, ignore_errors=True)


def hostile_messages():
    """(description, frames, reason) of messages the broker must reject."""
    good = event_body()
    deep = {"v": 1, "type": "my_type", "ts": 1, "miner": "m", "sid": 1, "seq": 1}
    nested = 1
    for _ in range(40):
        nested = [nested]
    deep["payload"] = nested
    large = {"v": 1, "type": "my_type", "ts": 1, "miner": "m", "sid": 1, "seq": 1,
             "blob": "x" * 66000}
    wrong_type = msgpack.unpackb(good, raw=False)
    wrong_type["v"] = "1"
    no_task = msgpack.unpackb(good, raw=False)
    del no_task["task_id"]
    v2 = msgpack.unpackb(good, raw=False)
    v2["v"] = 2
    dollar = msgpack.unpackb(good, raw=False)
    dollar["type"] = "$hb"
    int_key = b"\x82\x01\x02\xa1v\x01"  # {1: 2, "v": 1}
    return [
        ("one frame", [b"task_start"], "frames"),
        ("three frames", [b"task_start", good, b"extra"], "frames"),
        ("five frames", [b"a", b"b", b"c", b"d", b"e"], "frames"),
        ("garbage byte", [b"task_start", b"\xc1"], "malformed"),
        ("map32 declaring 4G entries", [b"task_start", b"\xdf\xff\xff\xff\xff"], "malformed"),
        ("str32 declaring 4 GiB in a map",
         [b"task_start", b"\x81\xa4blob\xdb\xff\xff\xff\xff" + b"a" * 8], "malformed"),
        ("array32 declaring 4G items in a map",
         [b"task_start", b"\x81\xa4blob\xdd\xff\xff\xff\xff\x01"], "malformed"),
        ("truncated map", [b"task_start", good[:-3]], "malformed"),
        ("empty body", [b"task_start", b""], "empty"),
        ("not a map", [b"task_start", msgpack.packb([1, 2, 3])], "not_map"),
        ("v as a string", [b"task_start", msgpack.packb(wrong_type)], "bad_type"),
        ("missing task_id", [b"task_start", msgpack.packb(no_task)], "missing"),
        ("version 2", [b"task_start", msgpack.packb(v2)], "version"),
        ("topic differs from type", [b"task_step", good], "topic"),
        ("trailing bytes", [b"task_start", good + b"\x00"], "trailing"),
        ("nested 40 deep", [b"my_type", msgpack.packb(deep)], "too_deep"),
        ("body over 64 KiB", [b"my_type", msgpack.packb(large)], "too_large"),
        ("integer key", [b"task_start", int_key], "bad_key"),
        ("'$' topic", [b"$hb", msgpack.packb(dollar)], "type_name"),
    ]


def case_hostile():
    """Malformed frames and hostile msgpack: every one rejected and counted
    by reason, the broker keeps running, good events still flow."""
    b = Broker()
    c = Client(b)
    ctx = zmq.Context.instance()
    updates = c.sub(b"task_", b"my_")
    pub = xpub_connected(ctx, b.ingest)
    messages = hostile_messages()
    expected = {}
    for name, frames, reason in messages:
        pub.send_multipart(frames)
        expected[reason] = expected.get(reason, 0) + 1
    sent_good = event_body(seq=1, custom_key={"nested": [1, 2.5, "x"]})
    pub.send_multipart([b"task_start", sent_good])
    total = len(messages)
    hb = c.heartbeat(lambda hb: hb["rejected"] >= total and hb["accepted"] >= 1)
    print("rejected_by:", hb["rejected_by"])
    for reason, count in expected.items():
        check(hb["rejected_by"].get(reason) == count,
              "%s: expected %d, counted %r (all: %r)" % (reason, count,
                                                         hb["rejected_by"].get(reason),
                                                         hb["rejected_by"]))
    check(hb["rejected"] == total, "total rejected %d != %d" % (hb["rejected"], total))
    check(hb["accepted"] == 1, "accepted %d" % hb["accepted"])
    # The good one came out on the update stream with its id.
    check(updates.poll(TIMEOUT * 1000), "no update")
    topic, body = updates.recv_multipart()
    ev = msgpack.unpackb(body, raw=False)
    check(topic == b"task_start" and ev["id"] > 0 and ev["broker_ts"] > 0 and
          ev["task_id"] == "py-task-1", "update %r" % ev)
    sent_map = msgpack.unpackb(sent_good, raw=False)
    check({k: v for k, v in ev.items() if k not in ("id", "broker_ts")} == sent_map,
          "the update is not the event plus id and broker_ts: %r vs %r" % (ev, sent_map))
    # The rejections were logged with their reason (first few per reason).
    b.wait_line(r"rejected a message \(frames\) from 127\.0\.0\.1")
    b.wait_line(r"rejected a message \(malformed\)")
    # A flood of one reason is rate-limited in the log, still counted.
    for i in range(500):
        pub.send_multipart([b"task_start", b"\xc1"])
    hb = c.heartbeat(lambda hb: hb["rejected_by"]["malformed"] >= expected["malformed"] + 500)
    logged = sum(1 for l in b.lines if "rejected a message (malformed)" in l)
    check(logged <= 5, "%d malformed rejections logged in full" % logged)
    # A frame over ZMQ_MAXMSGSIZE: libzmq drops that connection...
    big = xpub_connected(ctx, b.ingest)
    before = hb["disconnects"]
    big.send_multipart([b"my_type", b"\x00" * 200000])
    hb = c.heartbeat(lambda hb: hb["disconnects"] > before)
    big.close()
    # ...and the broker goes on: good events from a new publisher flow.
    pub2 = xpub_connected(ctx, b.ingest)
    for seq in range(2, 12):
        pub2.send_multipart([b"task_start", event_body(seq=seq)])
    hb = c.heartbeat(lambda hb: hb["accepted"] == 11)
    check(b.alive(), "broker died")
    print("after the flood and the oversized frame:", hb)
    pub.close()
    pub2.close()
    updates.close()
    check(b.stop() == 0, "exit code; log:\n" + b.log())


def write_cert(path, public, secret=None):
    """A certificate file in czmq's zcert format (ZPL)."""
    with open(path, "w") as f:
        f.write("#   ZeroMQ CURVE %s Certificate (written by the minerwatch tests)\n\n"
                % ("**Secret**" if secret else "Public"))
        f.write("metadata\n    name = \"test\"\ncurve\n")
        f.write("    public-key = \"%s\"\n" % public.decode())
        if secret:
            f.write("    secret-key = \"%s\"\n" % secret.decode())


def case_curve():
    """CURVE: a client with the broker's key gets updates; one without it, or
    with a wrong key, gets nothing within a bounded wait. A publisher
    without the key cannot inject events. With --curve-clients, only listed
    client keys get in."""
    d = tempfile.mkdtemp(prefix="mw-curve-")
    try:
        server_pub, server_sec = zmq.curve_keypair()
        base = os.path.join(d, "broker.cert")
        write_cert(base, server_pub)
        write_cert(base + "_secret", server_pub, server_sec)
        b = Broker("--curve-secret", base + "_secret")
        check(b.curve == "on", "curve off")
        cli_pub, cli_sec = zmq.curve_keypair()
        good = Client(b, curve=(server_pub, cli_pub, cli_sec))
        hb = good.heartbeat()
        check(hb["curve"] is True, "heartbeat says curve off")
        # Without CURVE, and with a wrong server key: nothing arrives.
        wrong_pub, _ = zmq.curve_keypair()
        for label, client in (("plain", Client(b)),
                              ("wrong server key", Client(b, curve=(wrong_pub, cli_pub, cli_sec)))):
            s = client.sub(b"")
            got = s.poll(3000)
            s.close()
            check(not got, "%s client received an update" % label)
            print("%s client: nothing in 3 s" % label)
        hb = good.heartbeat(lambda hb: hb["auth_failures"] >= 1)
        print("auth failures:", hb["auth_failures"])
        # Publishing: with the key accepted, without it refused.
        ctx = zmq.Context.instance()
        secure = xpub_connected(ctx, b.ingest, curve=(server_pub, cli_pub, cli_sec))
        secure.send_multipart([b"task_start", event_body(seq=1)])
        plain = ctx.socket(zmq.PUB)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(b.ingest)
        for seq in range(2, 20):
            plain.send_multipart([b"task_start", event_body(seq=seq)])
            time.sleep(0.05)
        hb = good.heartbeat(lambda hb: hb["accepted"] >= 1)
        time.sleep(1.5)
        hb = good.heartbeat()
        check(hb["accepted"] == 1, "a plain publisher got events in: %r" % hb)
        # Snapshots need the key too.
        data, end = good.snapshot()
        check(end is not None and end["size"] == len(data), "secure snapshot")
        secure.close()
        plain.close()
        check(b.stop() == 0, "exit code")

        # An allow-list directory: the listed client gets in, another not.
        clients = os.path.join(d, "clients")
        os.mkdir(clients)
        write_cert(os.path.join(clients, "client1.cert"), cli_pub)
        b = Broker("--curve-secret", base, "--curve-clients", clients)
        listed = Client(b, curve=(server_pub, cli_pub, cli_sec))
        listed.heartbeat()
        other_pub, other_sec = zmq.curve_keypair()
        s = Client(b, curve=(server_pub, other_pub, other_sec)).sub(b"")
        check(not s.poll(3000), "an unlisted client received an update")
        s.close()
        hb = listed.heartbeat(lambda hb: hb["auth_failures"] >= 1)
        check(b.stop() == 0, "exit code")

        # Startup errors are clear: a public-only file as the secret, and
        # a missing clients directory.
        for extra, pattern in (
                (["--curve-secret", base + "_missing"], "curve-secret .*No such file"),
                (["--curve-secret", os.path.join(clients, "client1.cert")],
                 "not a zcert secret certificate"),
                (["--curve-secret", base + "_secret", "--curve-clients", d + "/nope"],
                 "curve-clients .*not a directory")):
            p = subprocess.run([ARGS.broker, "--ingest", "@tcp://127.0.0.1:*", "--publish",
                                "@tcp://127.0.0.1:*", "--snapshot", "@tcp://127.0.0.1:*",
                                *extra], capture_output=True, timeout=TIMEOUT)
            check(p.returncode == 1 and re.search(pattern, p.stderr.decode()),
                  "%r: rc %d, %s" % (extra, p.returncode, p.stderr.decode()))
    finally:
        shutil.rmtree(d)


def case_keygen():
    """`minerwatch keygen` writes what the broker and `status` read."""
    check(ARGS.cli, "needs --cli")
    d = tempfile.mkdtemp(prefix="mw-keygen-")
    try:
        out = os.path.join(d, "broker.cert")
        p = subprocess.run([ARGS.cli, "keygen", "--out", out], capture_output=True,
                           timeout=TIMEOUT)
        check(p.returncode == 0, "keygen: %s" % p.stderr.decode())
        check(os.path.exists(out) and os.path.exists(out + "_secret"), "files")
        check(os.stat(out + "_secret").st_mode & 0o077 == 0, "secret file readable by others")
        key = re.search(rb"public key:\s+(\S{40})", p.stdout).group(1)
        again = subprocess.run([ARGS.cli, "keygen", "--out", out], capture_output=True,
                               timeout=TIMEOUT)
        check(again.returncode == 1 and b"exists" in again.stderr, "overwrote a key")
        b = Broker("--curve-secret", out + "_secret")
        for server_key in (out, key.decode()):
            s = subprocess.run([ARGS.cli, "status", "--json", "--curve-server-key", server_key,
                                ">" + b.snapshot], capture_output=True, timeout=TIMEOUT)
            check(s.returncode == 0, "status with %s: %s" % (server_key, s.stderr.decode()))
            json.loads(s.stdout)
        s = subprocess.run([ARGS.cli, "status", "--timeout", "2", ">" + b.snapshot],
                           capture_output=True, timeout=TIMEOUT)
        check(s.returncode == 1, "status without the key should time out")
        # A client key pair from keygen in the allow-list directory.
        clients = os.path.join(d, "clients")
        os.mkdir(clients)
        cl = os.path.join(clients, "status.cert")
        check(subprocess.run([ARGS.cli, "keygen", "--out", cl], capture_output=True,
                             timeout=TIMEOUT).returncode == 0, "client keygen")
        check(b.stop() == 0, "exit code")
        b = Broker("--curve-secret", out, "--curve-clients", clients)
        s = subprocess.run([ARGS.cli, "status", "--json", "--curve-server-key", out,
                            "--curve-client-cert", cl + "_secret", ">" + b.snapshot],
                           capture_output=True, timeout=TIMEOUT)
        check(s.returncode == 0, "listed client: %s" % s.stderr.decode())
        s = subprocess.run([ARGS.cli, "status", "--timeout", "2", "--curve-server-key", out,
                            ">" + b.snapshot], capture_output=True, timeout=TIMEOUT)
        check(s.returncode == 1 and b"CURVE" in s.stderr, "unlisted client: %s" % s.stderr)
        check(b.stop() == 0, "exit code")
    finally:
        shutil.rmtree(d)


def case_status():
    """`minerwatch status`: panels against a live broker, --json parses,
    hostile strings are escaped, --watch redraws, a dead broker exits 1."""
    check(ARGS.cli, "needs --cli")
    b = Broker()
    c = Client(b)
    sent, _ = finish_pub(start_pub(b.ingest, "status-miner", 60, 0, "--hostile"))
    c.heartbeat(lambda hb: hb["accepted"] == sent)
    ep = ">" + b.snapshot
    p = subprocess.run([ARGS.cli, "status", ep], capture_output=True, timeout=TIMEOUT)
    check(p.returncode == 0, "status: %s" % p.stderr.decode())
    text = p.stdout.decode()
    print(text)
    for needle in ("Active Tasks", "Recent Events", "tasks/min", "success", "p95",
                   "cache hits", "lost events", "epoch " + b.epoch, "status-m...",
                   "Validator: ", "\u2705 task_complete", "\U0001f4e5 task_start"):
        check(needle in text, "missing %r in the output" % needle)
    check("\x1b" not in text, "a raw escape reached the terminal")
    check("\u202e" not in text, "a bidi override reached the terminal")
    check("\\x1b" in text or "\\u202e" in text, "hostile text not shown escaped")
    # Every row of the boxes is as wide as the others on a terminal (emoji
    # and East Asian wide characters take two columns).
    def columns(line):
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)
    widths = {columns(l) for l in text.splitlines() if l[:1] in "\u2502\u251c\u250c\u2514"}
    check(widths == {80}, "box rows of widths %r, expected 80 (not a terminal)" % widths)

    p = subprocess.run([ARGS.cli, "status", "--json", "--tasks", "0", "--events", "0", ep],
                       capture_output=True, timeout=TIMEOUT)
    check(p.returncode == 0, "status --json: %s" % p.stderr.decode())
    doc = json.loads(p.stdout)
    check(doc["epoch"] == b.epoch, "epoch %r" % doc["epoch"])
    check(doc["stats"]["total_events"] == sent, "total %r" % doc["stats"]["total_events"])
    check(doc["active_task_count"] == len(doc["active_tasks"]) > 0, "active tasks")
    check(len(doc["recent_events"]) == min(sent, 1000), "recent events")
    check(all("id" in e for e in doc["recent_events"]), "event ids")
    check(doc["miners"][0]["miner"] == "status-miner", "miners")

    w = spawn([ARGS.cli, "status", "--watch", "--json", ep], stdout=subprocess.PIPE,
              stderr=subprocess.PIPE)
    time.sleep(2.6)
    w.send_signal(signal.SIGINT)
    out, err = w.communicate(timeout=TIMEOUT)
    lines = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
    check(w.returncode == 0 and len(lines) >= 2, "watch: rc %d, %d lines, %s"
          % (w.returncode, len(lines), err.decode()))
    check(lines[-1]["id"] > lines[0]["id"], "watch does not advance")
    check(b.stop() == 0, "exit code")

    # No broker there: a bounded wait and a clear message.
    started = time.monotonic()
    p = subprocess.run([ARGS.cli, "status", "--timeout", "1", ep], capture_output=True,
                       timeout=TIMEOUT)
    took = time.monotonic() - started
    msg = p.stderr.decode()
    check(p.returncode == 1, "rc %d" % p.returncode)
    check("no answer from %s after 1 s: is minerwatch-broker running?" % ep in msg, msg)
    check(took < 10, "took %.1f s" % took)
    p = subprocess.run([ARGS.cli, "status", "--bogus"], capture_output=True, timeout=TIMEOUT)
    check(p.returncode == 2 and b"unknown option" in p.stderr, "bad usage")


def case_ingest_connect():
    """--ingest is repeatable: the broker binds one endpoint (publishers
    connect) and connects to a publisher that binds; both feed it."""
    ctx = zmq.Context.instance()
    xpub = ctx.socket(zmq.XPUB)
    xpub.setsockopt(zmq.LINGER, 2000)
    port = xpub.bind_to_random_port("tcp://127.0.0.1")
    b = Broker("--ingest", ">tcp://127.0.0.1:%d" % port)
    check(xpub.poll(TIMEOUT * 1000) and xpub.recv()[:1] == b"\x01", "the broker did not subscribe")
    for seq in range(1, 6):
        xpub.send_multipart([b"task_start", event_body(seq=seq)])
    sent, _ = finish_pub(start_pub(b.ingest, "bound-side", 10))
    hb = Client(b).heartbeat(lambda hb: hb["accepted"] == sent + 5)
    check(hb["rejected"] == 0, "rejections %r" % hb)
    xpub.close()
    check(b.stop() == 0, "exit code")


def case_config():
    """Flags and the config file: bad ones exit 2 with a message; a config
    file's values apply and flags override them."""
    bad = [
        (["--bogus"], "unknown option '--bogus'"),
        (["--ingest"], "needs a value"),
        (["--recent-events", "0"], "not a count"),
        (["--recent-events", "12x"], "not a count"),
        (["--task-timeout", "-5"], "not a number of seconds"),
        (["--save-interval", "999999"], "0..86400"),
        (["--curve-clients", "/tmp"], "needs --curve-secret"),
        (["positional"], "unexpected argument"),
        (["--config", "/nonexistent/mw.conf"], "cannot read config file"),
    ]
    for args, needle in bad:
        p = subprocess.run([ARGS.broker, *args], capture_output=True, timeout=TIMEOUT)
        check(p.returncode == 2 and needle in p.stderr.decode(),
              "%r: rc %d, %r" % (args, p.returncode, p.stderr.decode()))
    p = subprocess.run([ARGS.broker, "--help"], capture_output=True, timeout=TIMEOUT)
    check(p.returncode == 0 and b"--recent-events" in p.stdout, "help")
    p = subprocess.run([ARGS.broker, "--version"], capture_output=True, timeout=TIMEOUT)
    check(p.returncode == 0 and p.stdout.startswith(b"minerwatch-broker "), "version")
    d = tempfile.mkdtemp(prefix="mw-conf-")
    try:
        conf = os.path.join(d, "broker.conf")
        with open(conf, "w") as f:
            f.write("# test config\n\ningest = @tcp://127.0.0.1:*\npublish = \"@tcp://127.0.0.1:*\"\n"
                    "snapshot = @tcp://127.0.0.1:*\nrecent-events = 7\ntask-history = 3\n")
        # recent-events from the file (7), task-history overridden by a flag.
        b = subprocess.Popen([ARGS.broker, "--config", conf, "--task-history", "5"],
                             stderr=subprocess.PIPE)
        broker = Broker.__new__(Broker)
        STARTED.append(b)
        broker.proc, broker.lines, broker.queue, broker.valgrind = b, [], queue.Queue(), False
        broker.reader = threading.Thread(target=broker._read, daemon=True)
        broker.reader.start()
        broker.wait_ready()
        sent, _ = finish_pub(start_pub(broker.ingest, "conf-miner", 20))
        Client(broker).heartbeat(lambda hb: hb["accepted"] == sent)
        stats = snapshot_stats(broker)
        check(stats["recent"] == 7, "recent-events from the file: %r" % stats)
        check(stats["history"] == 5, "task-history from the flag: %r" % stats)
        check(broker.stop() == 0, "exit code")
        with open(conf, "w") as f:
            f.write("ingest @tcp://x\n")
        p = subprocess.run([ARGS.broker, "--config", conf], capture_output=True, timeout=TIMEOUT)
        check(p.returncode == 2 and b"broker.conf:1: expected 'key = value'" in p.stderr,
              p.stderr.decode())
        # An endpoint in use: exit 1, saying so.
        b1 = Broker()
        p = subprocess.run([ARGS.broker, "--ingest", "@" + b1.ingest, "--publish",
                            "@tcp://127.0.0.1:*", "--snapshot", "@tcp://127.0.0.1:*"],
                           capture_output=True, timeout=TIMEOUT)
        check(p.returncode == 1 and b"cannot bind the ingest socket" in p.stderr,
              p.stderr.decode())
        # Two brokers on one state file: the second one refuses.
        path = os.path.join(d, "state.mw")
        b2 = Broker("--state-file", path)
        p = subprocess.run([ARGS.broker, "--ingest", "@tcp://127.0.0.1:*", "--publish",
                            "@tcp://127.0.0.1:*", "--snapshot", "@tcp://127.0.0.1:*",
                            "--state-file", path], capture_output=True, timeout=TIMEOUT)
        check(p.returncode == 1 and b"another broker uses the state file" in p.stderr,
              p.stderr.decode())
        check(b1.stop() == 0 and b2.stop() == 0, "exit codes")
        # Snapshot protocol errors get an answer, not silence.
        b3 = Broker()
        frames, end = Client(b3).snapshot(request=(b"$what?",))
        check(end is None and frames[0] == b"$snap_err", "bad request: %r" % frames)
        req = zmq.Context.instance().socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(b3.snapshot)
        req.send(b"$snap?")
        check(req.poll(TIMEOUT * 1000), "no answer to a REQ")
        check(req.recv_multipart()[0] == b"$snap_err", "REQ answer")
        req.close()
        Client(b3).heartbeat(lambda hb: hb["snap_bad"] == 2)
        check(b3.stop(signal.SIGINT) == 0, "SIGINT exit code")
    finally:
        shutil.rmtree(d)


def case_valgrind():
    """The daemon under valgrind through a busy life: traffic, hostile
    input, snapshots (one slow), saves, a restart from the file, SIGTERM.
    valgrind's exit code (99) fails it on any error or definite leak."""
    d = tempfile.mkdtemp(prefix="mw-vg-")
    try:
        path = os.path.join(d, "state.mw")
        b = Broker("--state-file", path, "--save-interval", "1", valgrind=True)
        print("command:", " ".join(b.cmd))
        c = Client(b)
        sent, _ = finish_pub(start_pub(b.ingest, "vg-miner", 150, 2000))
        ctx = zmq.Context.instance()
        pub = xpub_connected(ctx, b.ingest)
        for name, frames, reason in hostile_messages():
            pub.send_multipart(frames)
        pub.close()
        c.heartbeat(lambda hb: hb["accepted"] == sent and hb["rejected"] > 0 and hb["saves"] >= 1,
                    timeout=120)
        data, end = c.snapshot(timeout=120)
        slow = subprocess.run([ARGS.clone, "snapshot", b.snapshot, "--slow-ms", "5"],
                              capture_output=True, timeout=300)
        check(slow.returncode == 0, "slow snapshot: %s" % slow.stderr.decode())
        rc = b.stop()
        check(rc == 0, "valgrind/broker exit code %d; log:\n%s" % (rc, b.log()))
        b2 = Broker("--state-file", path, valgrind=True)
        check(b2.state == "restored", "not restored")
        rc = b2.stop(signal.SIGINT)
        check(rc == 0, "valgrind/broker exit code %d; log:\n%s" % (rc, b2.log()))
        # A corrupt file under valgrind too.
        with open(path, "r+b") as f:
            f.seek(100)
            f.write(b"\xff\xff\xff")
        b3 = Broker("--state-file", path, valgrind=True)
        check(b3.state == "new", "corrupt file restored")
        rc = b3.stop()
        check(rc == 0, "valgrind/broker exit code %d; log:\n%s" % (rc, b3.log()))
    finally:
        shutil.rmtree(d)


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--pub", required=True)
    ap.add_argument("--clone", required=True)
    ap.add_argument("--cli")
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("case", choices=sorted(CASES))
    ARGS = ap.parse_args()
    started = time.monotonic()
    try:
        CASES[ARGS.case]()
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("%s: ok (%.1f s)" % (ARGS.case, time.monotonic() - started))


if __name__ == "__main__":
    main()
