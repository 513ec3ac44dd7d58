"""opslib.py - what the deploy kit tests share: free loopback ports, daemons
started as real processes (stdout and stderr collected), bounded waits,
HTTP over loopback with the standard library.
"""
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request


#  MW_OPS_WRAPPER: a command to run the project's programs under (e.g.
#  valgrind); the waits are then longer.
WRAPPER = shlex.split(os.environ.get("MW_OPS_WRAPPER", ""))
SLOW = 8 if WRAPPER else 1


def wrapped(cmd):
    """cmd under MW_OPS_WRAPPER."""
    return [*WRAPPER, *cmd]


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def free_ports(n):
    """n distinct free TCP ports on 127.0.0.1 (held until all are chosen)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def port_open(port):
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def http_get(url, headers=None, timeout=5):
    """Return (status, body text); a refused connection raises."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def wait_for(what, fn, timeout=20, step=0.1):
    """Call fn until it returns a true value (exceptions count as false)."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(step)
    raise Fail(f"timed out waiting for {what}" + (f" (last: {last})" if last else ""))


class Proc:
    """A daemon as a real process; its output read in threads."""

    ALL = []

    def __init__(self, cmd, env=None):
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        Proc.ALL.append(self)
        self.out, self.err = [], []
        for stream, lines in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._read, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.append(line)

    def text(self):
        return "".join(self.out) + "".join(self.err)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM, then wait; return the exit code."""
        timeout *= SLOW
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise Fail(f"{self.cmd[0]} did not stop within {timeout} s of SIGTERM")

    @classmethod
    def stop_all(cls):
        for p in cls.ALL:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait(timeout=10)


def run(cmd, timeout=60, env=None, input=None):
    """Run to completion; return (exit code, stdout, stderr)."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SLOW, env=env,
                       input=input, stdin=None if input is not None else subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def main(cases, argv):
    """Run case argv[-1] of cases (a dict name -> function(args))."""
    import sys
    name = argv[-1] if len(argv) > 1 else ""
    if name not in cases:
        sys.exit(f"usage: {os.path.basename(argv[0])} ARGS... CASE ({' | '.join(cases)})")
    try:
        cases[name](argv[1:-1])
    except Fail as e:
        print(f"FAIL: {name}: {e}")
        for p in Proc.ALL:
            print(f"--- {' '.join(p.cmd)}\n{p.text()}")
        Proc.stop_all()
        sys.exit(1)
    finally:
        Proc.stop_all()
    print(f"ok: {name}")
