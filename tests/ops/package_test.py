#!/usr/bin/python3
"""package_test.py - the .deb packages (cmake/Packaging.cmake), built,
inspected, installed into a throwaway root, run from there, removed.

Usage: package_test.py SOURCE_DIR WORK_DIR CMAKE CPACK C_COMPILER

1. Configure SOURCE_DIR in WORK_DIR for /usr (no tests), build the four
   installed targets, run `cpack -G DEB`. WORK_DIR is kept between runs,
   so a second run only rebuilds what changed.
2. Inspect the five packages (dpkg-deb -f / -c / -I): names, versions,
   architectures, dependencies (shlibdeps found Debian's libraries; ours
   point at libminerwatch0 of the same version), files where Debian wants
   them, the config files as conffiles, no file in two packages.
3. Install them all with `dpkg --root` into a fresh directory that holds
   only an empty dpkg database (--force-depends: Debian's libraries are the
   host's, not the root's; --force-script-chrootless: the root has no shell
   for libminerwatch0's ldconfig call).
4. Run what was installed: minerwatch-broker and minerwatch-gateway
   --version, `minerwatch config check` on the installed /etc/minerwatch
   files, `minerwatch up` from the root with a publish through the
   installed Python module and /healthz and the status JSON over curl, and
   the installed gateway against the installed broker.
5. Reinstall minerwatch-daemons over itself (an upgrade's postinst); `dpkg
   -r` all: only the three conffiles and the broker's state remain; `dpkg
   -P`: nothing.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import (Fail, Proc, check, free_ports, http_get, main, port_open, run,  # noqa: E402
                    wait_for)

PACKAGES = {
    "libminerwatch0": "amd64",
    "libminerwatch-dev": "amd64",
    "minerwatch-daemons": "amd64",
    "minerwatch-cli": "amd64",
    "python3-minerwatch": "all",
}
LIBDIR = "usr/lib/x86_64-linux-gnu"
CONFFILES = ["/etc/minerwatch/broker.conf", "/etc/minerwatch/gateway.conf",
             "/etc/minerwatch/up.conf"]


def build(src, work, cmake, cpack, cc):
    rc, out, err = run([cmake, "-S", src, "-B", work, "-DCMAKE_INSTALL_PREFIX=/usr",
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo", "-DBUILD_TESTING=OFF",
                        "-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON", f"-DCMAKE_C_COMPILER={cc}",
                        "-DMW_SANITIZE=OFF"], timeout=600)
    check(rc == 0, f"configure:\n{out}{err}")
    rc, out, err = run(["nice", cmake, "--build", work, "-j2", "--target", "minerwatch",
                        "minerwatch-broker", "minerwatch-gateway", "minerwatch_cli"],
                       timeout=1500)
    check(rc == 0, f"build:\n{out[-4000:]}{err[-4000:]}")
    pkgdir = os.path.join(work, "packages")
    shutil.rmtree(pkgdir, ignore_errors=True)
    rc, out, err = run([cpack, "-G", "DEB", "--config", os.path.join(work, "CPackConfig.cmake")],
                       timeout=900)
    check(rc == 0, f"cpack:\n{out}{err}")
    debs = sorted(glob.glob(os.path.join(pkgdir, "*.deb")))
    print(f"ok: cpack made {len(debs)} packages")
    return debs


def field(deb, name):
    rc, out, err = run(["dpkg-deb", "-f", deb, name])
    check(rc == 0, f"dpkg-deb -f {deb}: {err}")
    return out.strip()


def contents(deb):
    rc, out, err = run(["dpkg-deb", "-c", deb])
    check(rc == 0, f"dpkg-deb -c {deb}: {err}")
    files = []
    for line in out.splitlines():
        path = line.split(None, 5)[5]
        path = path.split(" -> ")[0]
        if not path.endswith("/"):
            files.append(path[1:])  # "./usr/..." -> "/usr/..."
    return files


def inspect(debs, version):
    by_name = {}
    for deb in debs:
        by_name[field(deb, "Package")] = deb
    check(set(by_name) == set(PACKAGES), f"packages {sorted(by_name)}")
    owner = {}
    files = {}
    for name, arch in PACKAGES.items():
        deb = by_name[name]
        check(field(deb, "Version") == version, f"{name}: version {field(deb, 'Version')}")
        check(field(deb, "Architecture") == arch, f"{name}: architecture")
        check(os.path.basename(deb) == f"{name}_{version}_{arch}.deb", f"file name {deb}")
        desc = field(deb, "Description")
        check(len(desc.splitlines()) >= 2, f"{name}: a one-line description")
        files[name] = contents(deb)
        for f in files[name]:
            check(f not in owner, f"{f} in {owner.get(f)} and {name}")
            owner[f] = name
    dep = {n: field(by_name[n], "Depends") for n in PACKAGES}
    same = f"libminerwatch0 (= {version})"
    check(re.search(r"libzmq5 \(>= [0-9.]+\)", dep["libminerwatch0"]), dep["libminerwatch0"])
    check(re.search(r"libc6 \(>= ", dep["libminerwatch0"]), dep["libminerwatch0"])
    for n in ("minerwatch-daemons", "minerwatch-cli"):
        for lib in ("libczmq4", "libwebsockets17", "libzmq5", "libc6", "libmsgpackc2"):
            check(re.search(lib + r" \(>= ", dep[n]), f"{n} lacks {lib}: {dep[n]}")
        check(same in dep[n], f"{n}: {dep[n]}")
    check("libjansson4" in dep["minerwatch-cli"], dep["minerwatch-cli"])
    #  minerwatch-up.service in the daemons package runs the CLI's binary.
    check(f"minerwatch-cli (= {version})" in dep["minerwatch-daemons"], dep["minerwatch-daemons"])
    check(same in dep["libminerwatch-dev"] and "libzmq3-dev" in dep["libminerwatch-dev"],
          dep["libminerwatch-dev"])
    check("python3" in dep["python3-minerwatch"].split(", ") and
          "libminerwatch0 (>= " in dep["python3-minerwatch"], dep["python3-minerwatch"])
    print("ok: names, versions, architectures and dependencies")

    want = {
        "libminerwatch0": [f"/{LIBDIR}/libminerwatch.so.0.1.0"],
        "libminerwatch-dev": ["/usr/include/minerwatch/minerwatch.h",
                              "/usr/include/minerwatch/mw_publisher.h",
                              f"/{LIBDIR}/libminerwatch.so",
                              f"/{LIBDIR}/pkgconfig/minerwatch.pc",
                              f"/{LIBDIR}/cmake/minerwatch/minerwatchConfig.cmake"],
        "minerwatch-daemons": ["/usr/bin/minerwatch-broker", "/usr/bin/minerwatch-gateway",
                               "/usr/lib/systemd/system/minerwatch-broker.service",
                               "/usr/lib/systemd/system/minerwatch-gateway.service",
                               "/usr/lib/systemd/system/minerwatch-up.service",
                               *CONFFILES,
                               "/usr/share/doc/minerwatch-daemons/operations.md",
                               "/usr/share/doc/minerwatch-daemons/prometheus/minerwatch-rules.yml"],
        "minerwatch-cli": ["/usr/bin/minerwatch"],
        "python3-minerwatch": ["/usr/lib/python3/dist-packages/minerwatch.py"],
    }
    for name, paths in want.items():
        for p in paths:
            check(p in files[name], f"{name} lacks {p}: {files[name]}")
    check(len(files["minerwatch-cli"]) == 1, files["minerwatch-cli"])
    check(not any(f.endswith(".a") for fs in files.values() for f in fs), "a static library")
    with tempfile.TemporaryDirectory() as tmp:
        rc, out, err = run(["dpkg-deb", "-e", by_name["minerwatch-daemons"], tmp])
        check(rc == 0, err)
        with open(os.path.join(tmp, "conffiles")) as f:
            check(sorted(f.read().split()) == sorted(CONFFILES), "conffiles")
        #  Maintainer scripts: the three of deploy/debian, executable, valid
        #  sh, and never calling systemctl under dpkg --root.
        check(not os.path.exists(os.path.join(tmp, "preinst")), "a preinst")
        for script in ("postinst", "prerm", "postrm"):
            path = os.path.join(tmp, script)
            check(os.path.exists(path), f"minerwatch-daemons has no {script}")
            check(os.stat(path).st_mode & 0o777 == 0o755, f"{script} mode")
            rc, out, err = run(["sh", "-n", path])
            check(rc == 0, f"{script}: {err}")
            with open(path) as f:
                text = f.read()
            check("systemctl" not in text or '-z "${DPKG_ROOT:-}"' in text,
                  f"{script} may call systemctl under dpkg --root")
    print("ok: every file where Debian wants it, config files are conffiles, maintainer scripts")
    return by_name


def dpkg(root, *args):
    return run(["dpkg", f"--root={root}", "--force-not-root", "--force-script-chrootless",
                f"--log={root}/var/log/dpkg.log", *args], timeout=300)


def leftovers(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel in ("var/lib/dpkg", "var/log") or rel.startswith(("var/lib/dpkg/", "var/log/")):
            continue
        out += [os.path.join("/", rel, f) if rel != "." else "/" + f for f in filenames]
    return sorted(out)


def run_installed(root, src):
    lib = os.path.join(root, LIBDIR)
    env = dict(os.environ, LD_LIBRARY_PATH=lib)
    bind = os.path.join(root, "usr/bin")
    for prog in ("minerwatch-broker", "minerwatch-gateway"):
        rc, out, err = run([os.path.join(bind, prog), "--version"], env=env)
        check(rc == 0 and out.startswith(f"{prog} 0."), f"{prog} --version: {rc} {out}{err}")
    #  The CLI finds the library by its RPATH ($ORIGIN/../lib/...): no
    #  LD_LIBRARY_PATH.
    mw = os.path.join(bind, "minerwatch")
    rc, out, err = run([mw, "--version"])
    check(rc == 0 and "libminerwatch 0." in out, f"minerwatch --version: {rc} {out}{err}")
    rc, out, err = run(["ldd", mw])
    check(re.search(r"libminerwatch\.so\.0 => " + re.escape(root), out),
          f"the CLI does not use the root's library:\n{out}")
    print("ok: the installed binaries run (--version)")
    for conf, kind in (("broker.conf", "broker"), ("gateway.conf", "gateway"), ("up.conf", "up")):
        rc, out, err = run([mw, "config", "check", os.path.join(root, "etc/minerwatch", conf),
                            "--for", kind])
        check(rc == 0, f"config check of the installed {conf}: {out}{err}")
    print("ok: the installed /etc/minerwatch files pass `minerwatch config check`")

    http, ingest, publish, snapshot, gw_http = free_ports(5)
    up = Proc([mw, "up", "--http", f"127.0.0.1:{http}", "--ingest", f"@tcp://127.0.0.1:{ingest}",
               "--publish", f"@tcp://127.0.0.1:{publish}",
               "--snapshot", f"@tcp://127.0.0.1:{snapshot}", "--quiet"])
    wait_for("minerwatch up from the root",
             lambda: http_get(f"http://127.0.0.1:{http}/healthz")[0] == 200, timeout=30)
    #  The installed Python module, with the installed library.
    pyenv = dict(os.environ, PYTHONPATH=os.path.join(root, "usr/lib/python3/dist-packages"))
    code = (
        "import minerwatch, sys, time\n"
        f"assert minerwatch.__file__.startswith({root!r}), minerwatch.__file__\n"
        f"p = minerwatch.Publisher('>tcp://127.0.0.1:{ingest}', miner='deb-miner')\n"
        "assert p.wait_ready(5000)\n"
        "p.task_start('deb-task-1', prompt='from the package')\n"
        "p.close()\n"
        "print('sent')\n")
    rc, out, err = run(["/usr/bin/python3", "-c", code], env=pyenv, timeout=60)
    check(rc == 0 and "sent" in out, f"python module: {rc} {out}{err}")
    maps = run(["/usr/bin/python3", "-c",
                "import minerwatch, ctypes\n"
                "print(open('/proc/self/maps').read())"], env=pyenv)[1]
    check(os.path.join(root, LIBDIR, "libminerwatch.so.0") in maps,
          "the Python module did not load the root's libminerwatch")

    def arrived():
        rc, out, err = run(["curl", "-s", f"http://127.0.0.1:{http}/api/dashboard/live/status"])
        return rc == 0 and "deb-task-1" in out
    wait_for("the Python module's event in the status JSON", arrived, timeout=30)
    rc, out, err = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        f"http://127.0.0.1:{http}/healthz"])
    check(out == "200", f"/healthz {out}")
    check(up.stop() == 0, "up exit code")
    print("ok: minerwatch up from the root; the installed Python module published to it")

    b = Proc([os.path.join(bind, "minerwatch-broker"), "--ingest", f"@tcp://127.0.0.1:{ingest}",
              "--publish", f"@tcp://127.0.0.1:{publish}",
              "--snapshot", f"@tcp://127.0.0.1:{snapshot}", "--quiet"], env=env)
    wait_for("the installed broker", lambda: port_open(publish) and port_open(snapshot))
    g = Proc([os.path.join(bind, "minerwatch-gateway"), "--updates", f">tcp://127.0.0.1:{publish}",
              "--snapshot", f">tcp://127.0.0.1:{snapshot}", "--http", f"127.0.0.1:{gw_http}",
              "--quiet"], env=env)
    wait_for("the installed gateway linked to the installed broker",
             lambda: http_get(f"http://127.0.0.1:{gw_http}/healthz")[0] == 200, timeout=30)
    check(g.stop() == 0 and b.stop() == 0, "daemon exit codes")
    print("ok: the installed gateway mirrors the installed broker")


def case_all(args):
    src, work, cmake, cpack, cc = args
    version = None
    with open(os.path.join(src, "CMakeLists.txt")) as f:
        version = re.search(r"project\(minerwatch VERSION ([0-9.]+)", f.read()).group(1) + "-1"
    debs = build(src, work, cmake, cpack, cc)
    by_name = inspect(debs, version)
    root = tempfile.mkdtemp(prefix="mw-deb-root-")
    try:
        for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers",
                  "var/lib/dpkg/alternatives", "var/log"):
            os.makedirs(os.path.join(root, d))
        for f in ("var/lib/dpkg/status", "var/lib/dpkg/available"):
            open(os.path.join(root, f), "w").close()
        rc, out, err = dpkg(root, "--force-depends", "-i", *by_name.values())
        check(rc == 0, f"dpkg -i: {rc}\n{out}{err}")
        rc, out, err = run(["dpkg-query", f"--root={root}", "-W", "-f",
                            "${Package} ${Status}\n"])
        installed = sorted(l for l in out.splitlines() if l.endswith("install ok installed"))
        check(len(installed) == len(PACKAGES), f"installed: {out}")
        print(f"ok: dpkg --root installed {len(installed)} packages into {root}")

        run_installed(root, src)

        #  A broker's state, as systemd keeps it for a DynamicUser unit: a
        #  removal keeps it, a purge removes it.
        state = os.path.join(root, "var/lib/private/minerwatch")
        os.makedirs(state)
        open(os.path.join(state, "broker.state"), "w").close()
        os.symlink("private/minerwatch", os.path.join(root, "var/lib/minerwatch"))
        STATE = ["/var/lib/private/minerwatch/broker.state"]
        #  Reinstall over itself: an upgrade runs the postinst with the old
        #  version (under dpkg --root it must touch nothing outside).
        rc, out, err = dpkg(root, "--force-depends", "-i", by_name["minerwatch-daemons"])
        check(rc == 0, f"dpkg -i again: {rc}\n{out}{err}")

        rc, out, err = dpkg(root, "--force-depends", "-r", *PACKAGES)
        check(rc == 0, f"dpkg -r: {rc}\n{out}{err}")
        left = leftovers(root)
        check(left == sorted(CONFFILES + STATE), f"left after dpkg -r: {left}")
        print("ok: dpkg -r leaves only the conffiles and the broker's state")
        rc, out, err = dpkg(root, "-P", *PACKAGES)
        check(rc == 0, f"dpkg -P: {rc}\n{out}{err}")
        left = leftovers(root)
        check(left == [], f"left after dpkg -P: {left}")
        check(not os.path.exists(os.path.join(root, "etc/minerwatch")), "/etc/minerwatch stays")
        check(not os.path.lexists(os.path.join(root, "var/lib/minerwatch")), "state link stays")
        print("ok: dpkg -P leaves nothing")
    finally:
        Proc.stop_all()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main({"all": case_all}, sys.argv + ["all"] if sys.argv[-1] != "all" else sys.argv)
