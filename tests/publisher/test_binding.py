#!/usr/bin/python3
"""Tests of the Python binding (minerwatch.py), read back with pyzmq + msgpack.

Run with Debian's /usr/bin/python3 and PYTHONPATH set to the build tree's
python/ folder (ctest does both). What it proves:
- every call of the binding sends the event CONTRACT.md describes, with the
  keyword arguments mapped to the right keys and msgpack types;
- send() maps Python values (None, bool, int, float, str, bytes, dict,
  list/tuple, anything else) to msgpack, recursively and bounded in depth;
- the task() context manager always sends task_complete: success=True with
  the accumulated action_count and the measured response_time, or
  success=False with "ExcType: message" when the block raised (the exception
  still propagates), or with the error given to fail();
- publishing never raises: with no subscriber, after close(), or for a
  refused event it returns False and counts the event as dropped;
- a process forked from the miner's gets False from the parent's publisher
  and never touches its ZeroMQ context;
- the library lookup (MINERWATCH_LIBRARY) fails with a clear ImportError.
"""
import os
import subprocess
import sys
import threading
import time
import unittest

import msgpack
import zmq

import minerwatch

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from interop_sub import body_shape  # noqa: E402  (the raw msgpack type reader)

RECV_TIMEOUT_MS = 5000


class BindingTest(unittest.TestCase):
    """A SUB on a free loopback port and a Publisher connected to it."""

    def setUp(self):
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.bind("tcp://127.0.0.1:*")
        self.endpoint = ">" + self.sub.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.pub = minerwatch.Publisher(self.endpoint, miner="py-miner", sndhwm=100000)
        self.wait_ready(self.pub)

    def tearDown(self):
        self.pub.close()
        self.sub.close()
        self.ctx.term()

    def wait_ready(self, pub):
        """Let the SUB send its subscription while the publisher waits."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.sub.poll(5)
            if pub.wait_ready(5):
                return
        self.fail("publisher never saw the subscription")

    def recv(self):
        """Receive one event: (topic, dict, shape dict)."""
        if not self.sub.poll(RECV_TIMEOUT_MS):
            self.fail("no event within %d ms" % RECV_TIMEOUT_MS)
        topic, body = self.sub.recv_multipart()
        return topic.decode(), msgpack.unpackb(body, raw=False), body_shape(body)

    def assert_event(self, type_, **keys):
        """Receive one event and check it has exactly the header and keys."""
        topic, ev, shape = self.recv()
        self.assertEqual(topic, type_)
        self.assertEqual(ev["type"], type_)
        self.assertEqual(ev["v"], 1)
        self.assertEqual(ev["miner"], "py-miner")
        self.assertEqual(ev["sid"], self.pub.sid)
        header = {"v", "type", "ts", "miner", "sid", "seq"}
        self.assertEqual(set(ev), header | set(keys), "keys of %s" % type_)
        for k in ("v", "ts", "sid", "seq"):
            self.assertEqual(shape[k], "uint")
        for k, v in keys.items():
            self.assertEqual(ev[k], v, "%s.%s" % (type_, k))
        return ev, shape

    # -- every call ----------------------------------------------------------

    def test_every_call_full(self):
        p = self.pub
        self.assertTrue(p.task_start("t1", prompt="Login", url="https://example.com",
                                     validator_ip="192.0.2.1", validator_hotkey="5Hk",
                                     timeout_ms=30000))
        self.assertTrue(p.task_step("t1", "planning", details={"model": "gpt", "n": 3}))
        self.assertTrue(p.actions_generated("t1", 4, action_type="click"))
        self.assertTrue(p.task_complete("t1", True, action_count=4, response_time=1.25,
                                        error=None))
        self.assertTrue(p.task_feedback("t1", score=0.5, execution_time=2.0,
                                        validator_hotkey="5Hk"))
        self.assertTrue(p.validator_connection(validator_ip="192.0.2.1", validator_hotkey="5Hk",
                                               endpoint="tcp://192.0.2.1:8091"))
        self.assertTrue(p.cache_hit("t1", cache_type="lru"))
        self.assertTrue(p.error("boom", task_id="t1", error_type="RuntimeError"))
        _, shape = self.assert_event("task_start", task_id="t1", prompt="Login",
                                     url="https://example.com", validator_ip="192.0.2.1",
                                     validator_hotkey="5Hk", timeout_ms=30000)
        self.assertEqual(shape["timeout_ms"], "uint")
        _, shape = self.assert_event("task_step", task_id="t1", step="planning",
                                     details={"model": "gpt", "n": 3})
        self.assertEqual(shape["details"], {"model": "str", "n": "uint"})
        _, shape = self.assert_event("actions_generated", task_id="t1", action_count=4,
                                     action_type="click")
        self.assertEqual(shape["action_count"], "uint")
        _, shape = self.assert_event("task_complete", task_id="t1", success=True,
                                     action_count=4, response_time=1.25)
        self.assertEqual((shape["success"], shape["response_time"]), ("bool", "float"))
        _, shape = self.assert_event("task_feedback", task_id="t1", score=0.5,
                                     execution_time=2.0, validator_hotkey="5Hk")
        self.assertEqual((shape["score"], shape["execution_time"]), ("float", "float"))
        self.assert_event("validator_connection", validator_ip="192.0.2.1",
                          validator_hotkey="5Hk", endpoint="tcp://192.0.2.1:8091")
        self.assert_event("cache_hit", task_id="t1", cache_type="lru")
        self.assert_event("error", error_message="boom", task_id="t1",
                          error_type="RuntimeError")
        self.assertEqual(p.sent, 8)
        self.assertEqual(p.dropped, 0)

    def test_every_call_minimal(self):
        p = self.pub
        self.assertTrue(p.task_start("t2"))
        self.assertTrue(p.task_step("t2", "done"))
        self.assertTrue(p.actions_generated("t2", 0))
        self.assertTrue(p.task_complete("t2", False))
        self.assertTrue(p.task_feedback("t2"))
        self.assertTrue(p.validator_connection(validator_hotkey="5Hk"))
        self.assertTrue(p.cache_hit("t2"))
        self.assertTrue(p.error("disk full"))
        self.assert_event("task_start", task_id="t2")
        self.assert_event("task_step", task_id="t2", step="done")
        self.assert_event("actions_generated", task_id="t2", action_count=0)
        self.assert_event("task_complete", task_id="t2", success=False)
        self.assert_event("task_feedback", task_id="t2")
        self.assert_event("validator_connection", validator_hotkey="5Hk")
        self.assert_event("cache_hit", task_id="t2")
        self.assert_event("error", error_message="disk full")

    def test_strings_are_utf8_and_coerced(self):
        self.assertTrue(self.pub.task_start(42, prompt="h\u00e9llo \u2603", url=b"https://x/\xff"))
        self.assert_event("task_start", task_id="42", prompt="h\u00e9llo \u2603",
                          url="https://x/\ufffd")

    def test_send_maps_python_values(self):
        class Thing:
            def __str__(self):
                return "a thing"
        ok = self.pub.send("custom_event", task_id="t3", nil=None, yes=True, small=5, neg=-5,
                           big=2 ** 70, real=1.5, text="t\u00e9xt", raw=b"\xffab",
                           nested={"x": [1, (2, 3)], 5: "five"}, items=["a", {"b": None}],
                           obj=Thing())
        self.assertTrue(ok)
        ev, shape = self.assert_event(
            "custom_event", task_id="t3", nil=None, yes=True, small=5, neg=-5,
            big=str(2 ** 70), real=1.5, text="t\u00e9xt", raw="\ufffdab",
            nested={"x": [1, [2, 3]], "5": "five"}, items=["a", {"b": None}], obj="a thing")
        self.assertEqual(shape["nil"], "nil")
        self.assertEqual(shape["yes"], "bool")
        self.assertEqual(shape["small"], "uint")
        self.assertEqual(shape["neg"], "int")
        self.assertEqual(shape["big"], "str")
        self.assertEqual(shape["real"], "float")
        self.assertEqual(shape["raw"], "str")
        self.assertEqual(shape["nested"], {"x": ["uint", ["uint", "uint"]], "5": "str"})

    def test_send_without_fields_and_deep_nesting(self):
        self.assertTrue(self.pub.send("heartbeat_custom"))
        self.assert_event("heartbeat_custom")
        deep = "leaf"
        for _ in range(40):
            deep = [deep]
        self.assertTrue(self.pub.send("deep_event", value=deep))
        ev, _ = self.assert_event("deep_event", value=ev_value_any())
        depth, v = 0, ev["value"]
        while isinstance(v, list):
            depth, v = depth + 1, v[0]
        self.assertEqual(depth, minerwatch.MAX_DEPTH)
        self.assertIsInstance(v, str)  # the rest, as its str()

    def test_refused_events_return_false(self):
        before = self.pub.dropped
        self.assertFalse(self.pub.send("custom", seq=5))          # a header key
        self.assertFalse(self.pub.send("$control"))               # reserved type
        self.assertFalse(self.pub.send("task_complete", task_id="t", success="yes"))
        self.assertFalse(self.pub.validator_connection())         # neither ip nor hotkey
        self.assertEqual(self.pub.dropped, before + 4)
        self.assertFalse(self.sub.poll(100))

    def test_truncated_counter(self):
        self.assertTrue(self.pub.task_start("t", prompt="x" * 5000))
        ev, shape = self.assert_event("task_start", task_id="t", prompt="x" * 4096, truncated=1)
        self.assertEqual(shape["truncated"], "uint")
        self.assertEqual(self.pub.truncated, 1)

    # -- the task context manager ------------------------------------------------

    def test_task_success(self):
        with self.pub.task("t4", prompt="Book a flight", url="https://air.example",
                           validator_ip="192.0.2.7", validator_hotkey="5Hk",
                           timeout_ms=1000) as t:
            self.assertTrue(t.step("planning", model="gpt", tokens=12))
            self.assertTrue(t.actions(2))
            self.assertTrue(t.actions(3, action_type="type"))
            self.assertTrue(t.cache_hit("lru"))
            self.assertTrue(t.feedback(score=0.75, execution_time=0.5))
            self.assertTrue(t.report_error("retrying", error_type="Warning"))
        self.assert_event("task_start", task_id="t4", prompt="Book a flight",
                          url="https://air.example", validator_ip="192.0.2.7",
                          validator_hotkey="5Hk", timeout_ms=1000)
        self.assert_event("task_step", task_id="t4", step="planning",
                          details={"model": "gpt", "tokens": 12})
        self.assert_event("actions_generated", task_id="t4", action_count=2)
        self.assert_event("actions_generated", task_id="t4", action_count=3, action_type="type")
        self.assert_event("cache_hit", task_id="t4", cache_type="lru")
        self.assert_event("task_feedback", task_id="t4", score=0.75, execution_time=0.5)
        self.assert_event("error", task_id="t4", error_message="retrying", error_type="Warning")
        ev, _ = self.assert_event("task_complete", task_id="t4", success=True, action_count=5,
                                  response_time=t.response_time)
        self.assertGreaterEqual(ev["response_time"], 0.0)
        self.assertLess(ev["response_time"], 60.0)
        self.assertFalse(t.failed)

    def test_task_exception_sends_failure_and_reraises(self):
        with self.assertRaises(ValueError):
            with self.pub.task("t5") as t:
                t.actions(1)
                raise ValueError("page did not load")
        self.assert_event("task_start", task_id="t5")
        self.assert_event("actions_generated", task_id="t5", action_count=1)
        ev, _ = self.assert_event("task_complete", task_id="t5", success=False, action_count=1,
                                  response_time=t.response_time,
                                  error="ValueError: page did not load")
        self.assertTrue(t.failed)

    def test_task_base_exception_and_empty_message(self):
        class Cancelled(BaseException):
            pass
        with self.assertRaises(Cancelled):
            with self.pub.task("t6"):
                raise Cancelled()
        self.assert_event("task_start", task_id="t6")
        self.assert_event("task_complete", task_id="t6", success=False, action_count=0,
                          response_time=ev_value_any(), error="Cancelled")

    def test_task_fail_without_raising(self):
        with self.pub.task("t7") as t:
            t.fail("validator rejected the answer")
        self.assert_event("task_start", task_id="t7")
        self.assert_event("task_complete", task_id="t7", success=False, action_count=0,
                          response_time=t.response_time, error="validator rejected the answer")

    # -- never raises, counts ---------------------------------------------------

    def test_threads(self):
        per_thread, threads = 500, 4
        results = []

        def work(n):
            ok = [self.pub.cache_hit("th%d-%d" % (n, i)) for i in range(per_thread)]
            results.append(all(ok))
        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        self.assertEqual(results, [True] * threads)
        seen, last = set(), 0
        for _ in range(per_thread * threads):
            _, ev, _ = self.recv()
            self.assertNotIn(ev["task_id"], seen)
            seen.add(ev["task_id"])
            self.assertGreater(ev["seq"], last)
            last = ev["seq"]
        self.assertEqual(last, per_thread * threads)
        self.assertEqual(self.pub.sent, per_thread * threads)

    def test_close_then_calls_return_false(self):
        self.assertTrue(self.pub.cache_hit("t8"))
        self.pub.close()
        self.pub.close()  # idempotent
        self.assertTrue(self.pub.closed)
        self.assertFalse(self.pub.cache_hit("t8"))
        self.assertFalse(self.pub.wait_ready(10))
        with self.pub.task("t9") as t:  # still no exception
            t.step("s")
        self.assertEqual(self.pub.sent, 1)
        self.assertIn("closed", repr(self.pub))


def ev_value_any():
    """A value equal to anything (for keys whose value a test cannot know)."""
    class _Any:
        def __eq__(self, other):
            return True

        def __repr__(self):
            return "<any>"
    return _Any()


class NoSubscriberTest(unittest.TestCase):
    """A publisher nobody listens to."""

    def test_every_call_returns_false_and_counts(self):
        with minerwatch.Publisher("@tcp://127.0.0.1:*", miner="alone") as pub:
            self.assertFalse(pub.wait_ready(50))
            results = [pub.task_start("t"), pub.task_step("t", "s", {"a": 1}),
                       pub.actions_generated("t", 1), pub.task_complete("t", True),
                       pub.task_feedback("t", score=1.0), pub.validator_connection("192.0.2.1"),
                       pub.cache_hit("t"), pub.error("e"), pub.send("x", k=1)]
            with pub.task("t") as t:
                results.append(t.step("s"))
            self.assertEqual(results, [False] * 10)
            self.assertEqual(pub.sent, 0)
            self.assertEqual(pub.dropped, 12)  # + task_start, task_complete of task()
            self.assertNotEqual(pub.sid, 0)
        self.assertTrue(pub.closed)
        self.assertEqual(pub.dropped, 12)  # kept after close

    def test_sessions_differ(self):
        with minerwatch.Publisher("@tcp://127.0.0.1:*") as a, \
                minerwatch.Publisher("@tcp://127.0.0.1:*") as b:
            self.assertNotEqual(a.sid, b.sid)

    def test_bad_endpoint_and_options_raise_oserror(self):
        for endpoint, opts in (("nonsense", {}), ("", {}), ("@tcp://127.0.0.1:*", {"sndhwm": 0}),
                               ("@tcp://127.0.0.1:*", {"linger_ms": -1})):
            with self.assertRaises(OSError):
                minerwatch.Publisher(endpoint, **opts)

    def test_version_and_library(self):
        self.assertRegex(minerwatch.version(), r"^\d+\.\d+\.\d+$")
        self.assertEqual(minerwatch.__version__, minerwatch.version())
        self.assertTrue(os.path.exists(minerwatch.library_path()))


class ForkTest(unittest.TestCase):
    """A forked child (multiprocessing) must not touch the parent's context."""

    def test_forked_child_gets_false_parent_goes_on(self):
        with minerwatch.Publisher("@tcp://127.0.0.1:*", miner="parent") as pub:
            pub.cache_hit("before")
            pid = os.fork()
            if pid == 0:  # the child: calls return False, closing is harmless
                ok = (pub.cache_hit("in child") is False and pub.closed
                      and pub.dropped == 1)
                pub.close()
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            self.assertEqual(os.waitstatus_to_exitcode(status), 0)
            self.assertFalse(pub.closed)
            pub.cache_hit("after")
            self.assertEqual(pub.dropped, 2)


class LibraryLookupTest(unittest.TestCase):
    """MINERWATCH_LIBRARY overrides the configured path, and fails clearly."""

    def run_import(self, library):
        env = dict(os.environ, MINERWATCH_LIBRARY=library)
        return subprocess.run([sys.executable, "-c",
                               "import minerwatch; print(minerwatch.library_path())"],
                              env=env, capture_output=True, text=True, timeout=60)

    def test_bad_override_is_an_import_error(self):
        r = self.run_import("/nonexistent/libminerwatch.so")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("MINERWATCH_LIBRARY", r.stderr)

    def test_good_override_is_used(self):
        r = self.run_import(minerwatch.library_path())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), minerwatch.library_path())


if __name__ == "__main__":
    unittest.main(verbosity=2)
