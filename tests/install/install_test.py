#!/usr/bin/python3
"""Install the build tree into a temporary prefix and use it from outside.

Run by ctest (tests/install/CMakeLists.txt) with Debian's python3, which has
python3-zmq and python3-msgpack. Checks, against the *installed* files only:

  pkgconfig  external_miner.c compiled with nothing but
             `pkg-config --cflags --libs minerwatch`, run with
             LD_LIBRARY_PATH at the prefix; its events reach a pyzmq SUB.
  cmake      a tiny CMake project with find_package(minerwatch) builds the
             same program; it publishes to the installed `minerwatch tail
             --json`.
  python     the installed Python module imports from the prefix, loads the
             prefix's library and publishes (its task() context manager too).

Everything runs on loopback with free ports and bounded timeouts.
"""
import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq

TIMEOUT = 30  # seconds for any one step


def fail(message):
    print("FAIL: " + message, file=sys.stderr)
    sys.exit(1)


def run(cmd, env=None, cwd=None, timeout=TIMEOUT * 4):
    """Run a command, echo it, fail with its output if it fails."""
    print("+ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=env, cwd=cwd, timeout=timeout, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        fail("%s exited %d:\n%s" % (cmd[0], proc.returncode, proc.stdout))
    return proc.stdout


def find_one(root, name):
    for dirpath, _, files in os.walk(root):
        if name in files:
            return os.path.join(dirpath, name)
    fail("%s is not installed anywhere under %s" % (name, root))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A pyzmq SUB bound on a free loopback port: the independent peer."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = "tcp://127.0.0.1:%d" % self.port

    def collect(self, count, timeout=TIMEOUT):
        events = []
        deadline = time.monotonic() + timeout
        while len(events) < count:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                break
            frames = self.sock.recv_multipart()
            if len(frames) != 2:
                fail("a message of %d frames, expected 2 (topic, body)" % len(frames))
            body = msgpack.unpackb(frames[1], raw=False)
            if frames[0].decode() != body.get("type"):
                fail("topic %r differs from type %r" % (frames[0], body.get("type")))
            events.append(body)
        return events

    def close(self):
        self.sock.close()
        self.ctx.term()


def check_external_miner(events, miner, where):
    """The 5 events of external_miner.c, exactly as CONTRACT.md names them."""
    types = [e["type"] for e in events]
    expected = ["task_start", "task_step", "actions_generated", "task_complete", "ext_custom"]
    if types != expected:
        fail("%s: received types %s, expected %s" % (where, types, expected))
    for e in events:
        for key in ("v", "type", "ts", "miner", "sid", "seq"):
            if key not in e:
                fail("%s: %s event without %s: %r" % (where, e["type"], key, e))
        if e["v"] != 1 or e["miner"] != miner or e.get("task_id") != "ext-task-1":
            fail("%s: wrong header fields in %r" % (where, e))
    if [e["seq"] for e in events] != [1, 2, 3, 4, 5] or len({e["sid"] for e in events}) != 1:
        fail("%s: seq/sid wrong: %r" % (where, [(e["sid"], e["seq"]) for e in events]))
    start, step, actions, complete, custom = events
    if start.get("prompt") != "Login to example.com" or start.get("timeout_ms") != 30000:
        fail("%s: task_start fields wrong: %r" % (where, start))
    details = step.get("details")
    if step.get("step") != "processing" or not isinstance(details, dict) \
            or details.get("page") != "https://example.com/login":
        fail("%s: task_step fields wrong: %r" % (where, step))
    if actions.get("action_count") != 12 or actions.get("action_type") != "click":
        fail("%s: actions_generated fields wrong: %r" % (where, actions))
    if complete.get("success") is not True or abs(complete.get("response_time", 0) - 5.2) > 1e-9:
        fail("%s: task_complete fields wrong: %r" % (where, complete))
    if custom.get("gpu_temp_c") != 71:
        fail("%s: custom key lost: %r" % (where, custom))


def code_block(text, lang, marker):
    """The first ```lang block of text that contains marker."""
    pos = 0
    while True:
        start = text.find("```%s\n" % lang, pos)
        if start < 0:
            fail("README.md has no ```%s block containing %r" % (lang, marker))
        start += len(lang) + 4
        end = text.find("\n```", start)
        block = text[start:end + 1]
        if marker in block:
            return block
        pos = end


def check_sent_dropped(output, total, where):
    """The examples print their counters; every event is sent or dropped."""
    numbers = [int(n) for n in re.findall(r"\d+", output.strip().splitlines()[-1])]
    if len(numbers) != 2 or sum(numbers) != total:
        fail("%s printed %r; expected sent + dropped = %d" % (where, output, total))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--cc", default="cc")
    ap.add_argument("--cmake", default="cmake")
    ap.add_argument("--sanitize", default="OFF")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--prefix", help="install here instead of a temporary prefix")
    args = ap.parse_args()
    args.build_dir = os.path.abspath(args.build_dir)
    args.source_dir = os.path.abspath(args.source_dir)
    sanitize = args.sanitize.upper() in ("ON", "1", "TRUE", "YES")
    san_flags = ["-fsanitize=address,undefined"] if sanitize else []

    work = tempfile.mkdtemp(prefix="minerwatch-install-")
    try:
        prefix = args.prefix or os.path.join(work, "prefix")
        print("== cmake --install into %s" % prefix, flush=True)
        run([args.cmake, "--install", args.build_dir, "--prefix", prefix])

        header = find_one(prefix, "minerwatch.h")
        pc = find_one(prefix, "minerwatch.pc")
        config = find_one(prefix, "minerwatchConfig.cmake")
        module = find_one(prefix, "minerwatch.py")
        binary = os.path.join(prefix, "bin", "minerwatch")
        if not os.access(binary, os.X_OK):
            fail("bin/minerwatch is not installed in the prefix")
        libdir = os.path.dirname(os.path.dirname(pc))  # <libdir>/pkgconfig/minerwatch.pc
        if not any(f.startswith("libminerwatch.so") for f in os.listdir(libdir)):
            fail("libminerwatch.so is not in %s" % libdir)
        print("installed: %s, %s, %s, %s, %s" % (header, pc, config, module, binary))

        env = dict(os.environ)
        # Only the prefix's pc files and the system's: never the build tree.
        env["PKG_CONFIG_PATH"] = os.path.dirname(pc)
        env.pop("LD_LIBRARY_PATH", None)
        source = os.path.join(args.source_dir, "tests", "install", "external_miner.c")
        sub_env = dict(env)
        if sanitize:
            # The program links an ASan library; Python tools it starts must not.
            sub_env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "detect_leaks=1")

        #  1. pkg-config only.
        print("== pkg-config --cflags --libs minerwatch", flush=True)
        flags = run(["pkg-config", "--cflags", "--libs", "minerwatch"], env=env).split()
        include_dirs = [os.path.realpath(f[2:]) for f in flags if f.startswith("-I")]
        if os.path.realpath(os.path.dirname(header)) not in include_dirs:
            fail("pkg-config gives %s: no -I%s; is minerwatch.pc relocatable "
                 "(prefix from ${pcfiledir})?" % (flags, os.path.dirname(header)))
        exe_pc = os.path.join(work, "external_miner_pc")
        run([args.cc, "-o", exe_pc, source] + san_flags + flags, env=env)
        run_env = dict(sub_env, LD_LIBRARY_PATH=libdir)
        ldd = run(["ldd", exe_pc], env=run_env)
        if os.path.join(libdir, "libminerwatch.so") not in ldd:
            fail("external_miner does not load the installed library:\n" + ldd)
        rx = Receiver()
        miner = subprocess.Popen([exe_pc, rx.endpoint, "ext-pkgconfig"], env=run_env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        events = rx.collect(5)
        out, _ = miner.communicate(timeout=TIMEOUT)
        rx.close()
        print(out, end="")
        if miner.returncode != 0:
            fail("external_miner (pkg-config build) exited %d" % miner.returncode)
        check_external_miner(events, "ext-pkgconfig", "pkg-config build")
        print("ok: pkg-config build published 5 events, all received")

        #  2. The CMake package, and the installed `minerwatch tail --json`.
        print("== find_package(minerwatch)", flush=True)
        project = os.path.join(work, "cmake-consumer")
        os.makedirs(project)
        shutil.copy(source, project)
        with open(os.path.join(project, "CMakeLists.txt"), "w") as f:
            f.write("cmake_minimum_required(VERSION 3.18)\n"
                    "project(external_miner C)\n"
                    "find_package(minerwatch 0.1 REQUIRED)\n"
                    "add_executable(external_miner external_miner.c)\n"
                    "target_link_libraries(external_miner PRIVATE minerwatch::minerwatch)\n")
        build = os.path.join(project, "build")
        configure = [args.cmake, "-S", project, "-B", build, "-DCMAKE_PREFIX_PATH=" + prefix,
                     "-DCMAKE_C_COMPILER=" + args.cc]
        if sanitize:
            configure += ["-DCMAKE_C_FLAGS=" + " ".join(san_flags),
                          "-DCMAKE_EXE_LINKER_FLAGS=" + " ".join(san_flags)]
        run(configure, env=env)
        run([args.cmake, "--build", build], env=env)
        exe_cmake = os.path.join(build, "external_miner")
        # No LD_LIBRARY_PATH: the imported target must be enough (RPATH).
        for attempt in range(3):
            port = free_port()
            tail = subprocess.Popen([binary, "tail", "--json", "--count", "5", "--timeout",
                                     str(TIMEOUT), "@tcp://127.0.0.1:%d" % port],
                                    env=sub_env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            time.sleep(0.2)
            if tail.poll() is None:
                break
            print("tail could not start on port %d (%s); another port" % (port, tail.stderr.read()))
        else:
            fail("the installed minerwatch tail did not start")
        miner = subprocess.run([exe_cmake, "tcp://127.0.0.1:%d" % port, "ext-cmake"], env=sub_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=TIMEOUT)
        print(miner.stdout, end="")
        try:
            out, err = tail.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            tail.kill()
            out, err = tail.communicate()
            fail("minerwatch tail --count 5 did not exit: it printed\n%s%s" % (out, err))
        if miner.returncode != 0:
            fail("external_miner (CMake build) exited %d" % miner.returncode)
        if tail.returncode != 0:
            fail("minerwatch tail exited %d:\n%s" % (tail.returncode, err))
        lines = [l for l in out.splitlines() if l.strip()]
        try:
            events = [json.loads(l) for l in lines]
        except ValueError as e:
            fail("minerwatch tail --json printed a line that is not JSON (%s):\n%s" % (e, out))
        got = [(e.get("type"), e.get("miner"), e.get("task_id")) for e in events]
        want = [(t, "ext-cmake", "ext-task-1") for t in
                ("task_start", "task_step", "actions_generated", "task_complete", "ext_custom")]
        if got != want:
            fail("installed tail printed %r, expected %r" % (got, want))
        if events[4].get("gpu_temp_c") != 71 or events[2].get("action_count") != 12:
            fail("installed tail lost fields: %r" % events)
        print("ok: CMake package build published 5 events, installed tail printed them")

        #  3. The installed Python module.
        print("== python3 -c 'import minerwatch' from the prefix", flush=True)
        py_env = dict(env, PYTHONPATH=os.path.dirname(module))
        py_env.pop("MINERWATCH_LIBRARY", None)
        if sanitize:
            # An ASan library can only be loaded into a process that starts
            # with the ASan runtime; CPython itself is not leak-clean.
            asan = subprocess.run([args.cc, "-print-file-name=libasan.so"],
                                  stdout=subprocess.PIPE, text=True).stdout.strip()
            py_env["LD_PRELOAD"] = asan
            py_env["ASAN_OPTIONS"] = "detect_leaks=0"
        rx = Receiver()
        script = os.path.join(args.source_dir, "tests", "install", "python_publish.py")
        miner = subprocess.Popen([sys.executable, "-s", script, rx.endpoint,
                                  prefix], env=py_env, cwd=work, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        events = rx.collect(5)
        out, _ = miner.communicate(timeout=TIMEOUT)
        rx.close()
        print(out, end="")
        if miner.returncode != 0:
            fail("the installed Python module failed (exit %d)" % miner.returncode)
        types = [(e["type"], e.get("task_id")) for e in events]
        want = [("task_start", "py-ok"), ("actions_generated", "py-ok"),
                ("task_complete", "py-ok"), ("task_start", "py-fail"),
                ("task_complete", "py-fail")]
        if types != want:
            fail("Python module events %r, expected %r" % (types, want))
        if events[2].get("success") is not True or events[2].get("action_count") != 3 \
                or events[4].get("success") is not False \
                or events[4].get("error") != "RuntimeError: boom":
            fail("Python task() context manager results wrong: %r" % events)
        print("ok: installed Python module published 5 events through task()")

        #  4. The README's examples, against the installed copy: they must
        #  build and run (no subscriber here: their events are dropped and
        #  counted, which is what a miner without a broker sees).
        print("== README.md examples", flush=True)
        with open(os.path.join(args.source_dir, "README.md")) as f:
            readme = f.read()
        c_code = code_block(readme, "c", "#include <minerwatch.h>")
        py_code = code_block(readme, "python", "import minerwatch")
        quiet = "tcp://127.0.0.1:%d" % free_port()  # nobody listens here
        c_code = c_code.replace("tcp://127.0.0.1:7710", quiet)
        py_code = py_code.replace("tcp://127.0.0.1:7710", quiet)
        c_file = os.path.join(work, "readme_miner.c")
        with open(c_file, "w") as f:
            f.write(c_code)
        exe = os.path.join(work, "readme_miner")
        run([args.cc, "-Wall", "-Werror", "-o", exe, c_file] + san_flags + flags, env=env)
        out = run([exe], env=run_env, timeout=TIMEOUT)
        check_sent_dropped(out, 4, "README C example")
        py_file = os.path.join(work, "readme_miner.py")
        with open(py_file, "w") as f:
            f.write(py_code)
        out = run([sys.executable, "-s", py_file], env=py_env, cwd=work, timeout=TIMEOUT)
        check_sent_dropped(out, 6, "README Python example")
        print("ok: the README's C and Python examples build and run against the install")
    finally:
        if args.keep:
            print("kept " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("install test passed")


if __name__ == "__main__":
    main()
