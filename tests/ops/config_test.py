#!/usr/bin/python3
"""config_test.py - the config file format: `minerwatch config check` and
the daemons' --config.

Usage: config_test.py MINERWATCH BROKER GATEWAY SOURCE_DIR CASE

Cases:
  examples      deploy/minerwatch-{broker,gateway,up}.conf pass `config check`
                (with --for, and the kind guessed without it), exit 0 with a
                summary of every setting, secrets never printed
  errors        one file per error class: unknown key (with did-you-mean), bad
                value, a line without '=', a missing secret file, a secret
                file open to other users, a secret file with two lines, the
                checks of the whole (non-loopback without auth, TLS half
                given, curve-clients without curve-secret), a missing CURVE
                key, an unreadable file: each is FILE:LINE: MESSAGE (or FILE:
                MESSAGE), exit 1; all errors of a file are reported at once
  usage         bad usage of `config check` exits 2; --help and `minerwatch
                help config` exit 0
  broker        minerwatch-broker --config: the file's endpoints are bound, a
                flag overrides one; a bad file exits 2 with FILE:LINE
  gateway       minerwatch-gateway --config against a real broker: it
                listens where the file says, takes the token from
                auth-token-file (401 without, 200 with), a flag overrides the
                address and another the token; a bad file exits 2 with
                FILE:LINE and a did-you-mean
  docs          every key of minerwatch-broker --help and minerwatch-gateway
                --help is in docs/operations.md's tables and in the example
                config file, and no other key is
  up            minerwatch up --config: the file's HTTP and ingest ports are
                used (an event published there reaches the status JSON), a flag
                overrides the HTTP port; an unknown key exits 2
"""
import json
import os
import re
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import (Fail, Proc, check, free_ports, http_get, main, port_open, run,  # noqa: E402
                    wait_for, wrapped, write)

MW = BROKER = GATEWAY = SRC = None


def setup(args):
    global MW, BROKER, GATEWAY, SRC
    MW, BROKER, GATEWAY, SRC = args


def config_check(path, *extra):
    return run(wrapped([MW, "config", "check", path, *extra]))


# --------------------------------------------------------------------------


def case_examples(args):
    setup(args)
    for kind in ("broker", "gateway", "up"):
        path = os.path.join(SRC, "deploy", f"minerwatch-{kind}.conf")
        rc, out, err = config_check(path, "--for", kind)
        check(rc == 0, f"{path} --for {kind}: exit {rc}\n{out}{err}")
        title = "minerwatch up" if kind == "up" else f"minerwatch-{kind}"
        check(f"valid {title} configuration" in out, f"no summary line: {out}")
        #  Every setting of the file appears in the summary.
        keys = [l.split("=", 1)[0].strip() for l in open(path)
                if l.strip() and not l.lstrip().startswith("#")]
        check(keys, f"{path} sets nothing")
        check(re.search(r"configuration, %d settings(, \d+ warnings?)?\n" % len(set(keys)), out),
              f"summary line: {out}")
        for k in keys:
            check(re.search(r"^  %s\s" % re.escape(k), out, re.M), f"{k} not in summary:\n{out}")
        print(f"ok: {kind} example valid, {len(keys)} settings listed")
    for kind in ("broker", "gateway"):
        path = os.path.join(SRC, "deploy", f"minerwatch-{kind}.conf")
        rc, out, err = config_check(path)
        check(rc == 0 and f"valid minerwatch-{kind} configuration (guessed" in out,
              f"{kind}: kind not guessed: {out}{err}")
    print("ok: the kind is guessed from the keys")

    with tempfile.TemporaryDirectory() as tmp:
        token = write(os.path.join(tmp, "token"), "s3cret-token-value\n", 0o600)
        basic = write(os.path.join(tmp, "basic"), "admin:pa55word\n", 0o640)
        conf = write(os.path.join(tmp, "gw.conf"),
                     "# comment\n\nhttp = 0.0.0.0:8080\n"
                     f"auth-token-file = {token}\n"
                     f'basic-auth-file = "{basic}"\n'
                     "auth-token = inline-secret-xyz\n")
        rc, out, err = config_check(conf, "--for", "gateway")
        check(rc == 0, f"secret files: exit {rc}\n{out}{err}")
        for secret in ("s3cret-token-value", "pa55word", "inline-secret-xyz"):
            check(secret not in out + err, f"a secret was printed: {out}")
        check("(secret)" in out, out)
        check(f"{conf}:6: warning: auth-token is in a file every user can read (mode 0644)"
              in out, f"no warning for an inline secret in a readable file:\n{out}")
        print("ok: secret files accepted (600 and 640), no secret printed, a readable inline "
              "secret warned about")
        rc, out, err = config_check(conf, "--for", "gateway", "--quiet")
        check(rc == 0 and out == "", f"--quiet printed {out!r}")
        #  A key set twice: a warning with both lines, still valid.
        dup = write(os.path.join(tmp, "dup.conf"), "http = 127.0.0.1:1\nhttp = 127.0.0.1:2\n")
        rc, out, err = config_check(dup, "--for", "gateway")
        check(rc == 0 and f"{dup}:2: warning: 'http' is set again: line 1" in out, out)
        print("ok: a key set twice is a warning")


def case_errors(args):
    setup(args)
    with tempfile.TemporaryDirectory() as tmp:
        token = write(os.path.join(tmp, "token"), "tok\n", 0o644)
        twolines = write(os.path.join(tmp, "two"), "tok\nmore\n", 0o600)
        cases = [
            # (kind, file text, expected exit, regex that must match the output)
            ("gateway", "http = 127.0.0.1:8080\nupdats = >tcp://127.0.0.1:7711\n", 1,
             r":2: unknown key 'updats' \(did you mean 'updates'\?\)"),
            ("broker", "# bounds\nmax-active-task = 10\n", 1,
             r":2: unknown key 'max-active-task' \(did you mean 'max-active-tasks'\?\)"),
            ("broker", "recent-events = lots\n", 1,
             r":1: --recent-events: 'lots' is not a count in 1\.\.10000000"),
            ("gateway", "max-clients = 0\n", 1,
             r":1: --max-clients '0': expected a whole number from 1 to"),
            ("gateway", "http 127.0.0.1:8080\n", 1, r":1: expected 'key = value'"),
            ("gateway", "auth-token-file = /nonexistent/minerwatch.token\n", 1,
             r":1: --auth-token-file: cannot read /nonexistent/minerwatch.token: No such file"),
            ("gateway", f"auth-token-file = {token}\n", 1,
             r":1: --auth-token-file: .* is open to other users \(mode 0644\).*chmod 600"),
            ("gateway", f"basic-auth-file = {twolines}\n", 1,
             r":1: --basic-auth-file: .* holds more than one line"),
            ("gateway", "http = 0.0.0.0:8080\n", 1,
             r"\.conf: refusing to serve 0\.0\.0\.0:8080 without authentication"),
            ("gateway", "tls-cert = /etc/hostname\n", 1, r"TLS needs both --tls-cert and --tls-key"),
            ("gateway", "curve-server-key = not-a-key\n", 1, r":1: curve-server-key: "),
            ("broker", "curve-clients = /tmp\n", 1, r"--curve-clients needs --curve-secret"),
            ("broker", "curve-secret = /nonexistent/broker.cert_secret\n", 1,
             r":1: curve-secret: .*/nonexistent/broker\.cert_secret"),
            ("broker", "ingest = tcp:/bad\n", 1, r":1: invalid ingest 'tcp:/bad'"),
            ("up", "http = 127.0.0.1:8080\ndemo-rat = 5\n", 1,
             r":2: unknown key 'demo-rat' \(did you mean 'demo-rate'\?\)"),
            ("up", "curve-secret = x\n", 1, r":1: 'curve-secret': CURVE is for brokers"),
            ("up", "demo-miners = 1000\n", 1, r":1: invalid --demo-miners '1000'"),
            ("up", "http = 0.0.0.0:8080\n", 1, r"refusing to serve 0\.0\.0\.0:8080"),
            #  An empty boolean is a value left out, not a yes.
            ("gateway", "open-metrics =\n", 1, r":1: --open-metrics '': expected true or false"),
            ("broker", "quiet =\n", 1, r":1: --quiet: '' is not true or false"),
            ("up", "demo = \n", 1, r":1: .*demo"),
        ]
        for i, (kind, text, want_rc, pattern) in enumerate(cases):
            path = write(os.path.join(tmp, f"case{i}.conf"), text)
            rc, out, err = config_check(path, "--for", kind)
            check(rc == want_rc, f"case {i} ({text.strip()!r}): exit {rc}, expected {want_rc}\n"
                                 f"{out}{err}")
            check(re.search(re.escape(path) + ".*" + pattern if pattern.startswith(":")
                            else pattern, out), f"case {i}: no /{pattern}/ in:\n{out}{err}")
            check("not a valid" in out, f"case {i}: no closing line:\n{out}")
        print(f"ok: {len(cases)} error classes, each FILE:LINE: message and exit 1")

        #  Several errors: all reported, counted.
        many = write(os.path.join(tmp, "many.conf"),
                     "updats = x\nmax-clients = -1\nno equals sign\nhttp = 127.0.0.1:8080\n")
        rc, out, err = config_check(many, "--for", "gateway")
        check(rc == 1, f"many: exit {rc}")
        for line in (1, 2, 3):
            check(f"{many}:{line}: " in out, f"line {line} not reported:\n{out}")
        check("3 errors" in out, out)
        print("ok: every error of a file is reported at once")

        rc, out, err = config_check(os.path.join(tmp, "missing.conf"), "--for", "broker")
        check(rc == 1 and "cannot read config file" in out and "No such file" in out,
              f"missing file: {rc} {out}{err}")
        rc, out, err = config_check(tmp, "--for", "broker")
        check(rc == 1 and "is a directory" in out, f"directory: {rc} {out}{err}")
        print("ok: a missing file and a directory exit 1")


def case_usage(args):
    setup(args)
    for argv, what in ((["config"], "no subcommand"),
                       (["config", "check"], "no file"),
                       (["config", "verify", "x"], "unknown subcommand"),
                       (["config", "check", "a", "b"], "two files"),
                       (["config", "check", "a", "--for", "nginx"], "bad --for"),
                       (["config", "check", "a", "--for"], "--for without a value"),
                       (["config", "check", "a", "--bogus"], "unknown option")):
        rc, out, err = run(wrapped([MW, *argv]))
        check(rc == 2, f"{what}: exit {rc}, expected 2\n{out}{err}")
        check("minerwatch config: " in err and "--help" in err, f"{what}: message {err!r}")
    for argv in (["config", "--help"], ["config", "check", "--help"], ["help", "config"]):
        rc, out, err = run(wrapped([MW, *argv]))
        check(rc == 0 and "Usage: minerwatch config check FILE" in out, f"{argv}: {rc} {out}")
    rc, out, err = run([MW, "--help"])
    check(rc == 0 and re.search(r"^  config\s", out, re.M), "config not in minerwatch --help")
    print("ok: usage errors exit 2, help exits 0")


def case_broker(args):
    setup(args)
    ingest, publish, snapshot, publish2 = free_ports(4)
    with tempfile.TemporaryDirectory() as tmp:
        conf = write(os.path.join(tmp, "broker.conf"),
                     f"ingest = @tcp://127.0.0.1:{ingest}\n"
                     f"publish = @tcp://127.0.0.1:{publish}\n"
                     f"snapshot = @tcp://127.0.0.1:{snapshot}\n"
                     f"state-file = {tmp}/state\nsave-interval = 1\nquiet = true\n")
        rc, out, err = config_check(conf, "--for", "broker")
        check(rc == 0, f"check: {out}{err}")
        b = Proc(wrapped([BROKER, "--config", conf, "--publish", f"@tcp://127.0.0.1:{publish2}"]))
        wait_for("the file's ingest and snapshot ports",
                 lambda: port_open(ingest) and port_open(snapshot))
        wait_for("the flag's publish port", lambda: port_open(publish2))
        check(not port_open(publish), "the file's publish port is bound despite the flag")
        wait_for("the state file from the file's state-file",
                 lambda: os.path.exists(f"{tmp}/state"))
        check(b.stop() == 0, "broker exit code")
        print("ok: broker uses the file, a flag overrides publish")

        bad = write(os.path.join(tmp, "bad.conf"), "ingest = @tcp://127.0.0.1:1\nsave-intervl = 3\n")
        rc, out, err = run(wrapped([BROKER, "--config", bad]))
        check(rc == 2 and f"{bad}:2: unknown key 'save-intervl' (did you mean 'save-interval'?)" in err, f"bad: {rc} {err}")
        print("ok: a bad broker config exits 2 with FILE:LINE")


def _start_broker(tmp):
    ingest, publish, snapshot = free_ports(3)
    b = Proc([BROKER, "--ingest", f"@tcp://127.0.0.1:{ingest}",
              "--publish", f"@tcp://127.0.0.1:{publish}",
              "--snapshot", f"@tcp://127.0.0.1:{snapshot}", "--quiet"])
    wait_for("broker ports", lambda: port_open(publish) and port_open(snapshot))
    return b, ingest, publish, snapshot


def case_gateway(args):
    setup(args)
    with tempfile.TemporaryDirectory() as tmp:
        broker, ingest, publish, snapshot = _start_broker(tmp)
        http1, http2 = free_ports(2)
        token = write(os.path.join(tmp, "token"), "file-token-123\n", 0o600)
        conf = write(os.path.join(tmp, "gateway.conf"),
                     f"updates = >tcp://127.0.0.1:{publish}\n"
                     f"snapshot = >tcp://127.0.0.1:{snapshot}\n"
                     f"http = 127.0.0.1:{http1}\n"
                     f"auth-token-file = {token}\n"
                     "heartbeat-timeout = 2000\nquiet = true\n")
        rc, out, err = config_check(conf)
        check(rc == 0 and "minerwatch-gateway" in out, f"check: {out}{err}")

        g = Proc(wrapped([GATEWAY, "--config", conf]))
        url = f"http://127.0.0.1:{http1}/healthz"
        wait_for("the gateway on the file's port", lambda: port_open(http1))
        status, _ = http_get(url)
        check(status == 401, f"without the token: {status}")
        status, body = wait_for("healthz 200 with the file's token", lambda: (
            lambda r: r if r[0] == 200 else None)(
            http_get(url, {"Authorization": "Bearer file-token-123"})))
        check(json.loads(body).get("broker") in ("up", True) or "up" in body,
              f"healthz body: {body}")
        check(g.stop() == 0, "gateway exit code")
        print("ok: gateway listens where the file says, token from auth-token-file")

        g = Proc(wrapped([GATEWAY, "--config", conf, "--http", f"127.0.0.1:{http2}",
                          "--auth-token", "flag-token"]))
        wait_for("the gateway on the flag's port", lambda: port_open(http2))
        check(not port_open(http1), "still listening on the file's port")
        url = f"http://127.0.0.1:{http2}/healthz"
        status, _ = http_get(url, {"Authorization": "Bearer file-token-123"})
        check(status == 401, f"the file's token still accepted: {status}")
        status, _ = http_get(url, {"Authorization": "Bearer flag-token"})
        check(status == 200, f"the flag's token: {status}")
        check(g.stop() == 0, "gateway exit code")
        print("ok: flags override the file's http and token")

        bad = write(os.path.join(tmp, "bad.conf"), f"http = 127.0.0.1:{http1}\nmax-client = 5\n")
        rc, out, err = run(wrapped([GATEWAY, "--config", bad]))
        check(rc == 2 and f"{bad}:2: unknown key 'max-client' (did you mean 'max-clients'?)"
              in err, f"bad: {rc} {err}")
        rc, out, err = run(wrapped([GATEWAY, "--config", os.path.join(tmp, "none.conf")]))
        check(rc == 2 and "cannot read config file" in err, f"missing: {rc} {err}")
        os.chmod(token, 0o604)
        rc, out, err = run(wrapped([GATEWAY, "--config", conf]))
        check(rc == 2 and "open to other users" in err, f"open token file: {rc} {err}")
        print("ok: bad gateway configs exit 2 with FILE:LINE")
        check(broker.stop() == 0, "broker exit code")


def case_up(args):
    setup(args)
    http1, http2, ingest, publish, snapshot = free_ports(5)
    with tempfile.TemporaryDirectory() as tmp:
        conf = write(os.path.join(tmp, "up.conf"),
                     f"http = 127.0.0.1:{http1}\n"
                     f"ingest = @tcp://127.0.0.1:{ingest}\n"
                     f"publish = @tcp://127.0.0.1:{publish}\n"
                     f"snapshot = @tcp://127.0.0.1:{snapshot}\n"
                     "max-active-tasks = 500\nquiet = true\n")
        rc, out, err = config_check(conf, "--for", "up")
        check(rc == 0, f"check: {out}{err}")
        u = Proc(wrapped([MW, "up", "--config", conf, "--http", f"127.0.0.1:{http2}"]))
        wait_for("up on the flag's HTTP port", lambda: port_open(http2))
        check(not port_open(http1), "listening on the file's HTTP port despite the flag")
        wait_for("the file's ingest port", lambda: port_open(ingest))
        dash = f"http://127.0.0.1:{http2}/api/dashboard/live/status"

        def published():
            rc, out, err = run([MW, "publish", "--endpoint", f">tcp://127.0.0.1:{ingest}",
                                "--wait", "10", "--type", "task_start", "task_id=cfg-task-1",
                                "prompt=from-a-config-test"], timeout=30)
            check(rc == 0, f"publish: {rc} {out}{err}")
            status, body = http_get(dash)
            return status == 200 and "cfg-task-1" in body
        wait_for("the published task in the status JSON", published, timeout=30, step=0.5)
        check(u.stop() == 0, "up exit code")
        print("ok: up uses the file's ingest, a flag overrides http")

        bad = write(os.path.join(tmp, "bad.conf"), "demo-rat = 5\n")
        rc, out, err = run(wrapped([MW, "up", "--config", bad]))
        check(rc == 2 and f"{bad}:1: unknown key 'demo-rat' (did you mean 'demo-rate'?)" in err,
              f"bad: {rc} {err}")
        print("ok: a bad up config exits 2 with FILE:LINE")


def help_names(cmd):
    """Option names a --help prints ("--name"), less help/version/config."""
    rc, out, err = run([*cmd, "--help"])
    check(rc == 0, f"{cmd} --help: {rc}")
    names = set(re.findall(r"(?:^|[\s,(`'\"])--([a-z][a-z0-9-]*[a-z0-9])", out))
    return names - {"help", "version", "config"}


def doc_table_keys(text, heading):
    """The keys of the first column of the table under heading."""
    part = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    keys = set()
    for line in part.splitlines():
        m = re.match(r"\| (`[^|]+) \|", line)
        if m:
            keys |= set(re.findall(r"`([a-z0-9-]+)`", m.group(1)))
    return keys


def conf_keys(path):
    """Keys an example config file sets or shows commented out."""
    keys = set()
    for line in open(path):
        m = re.match(r"^#?([a-z][a-z0-9-]*) = ", line)
        if m:
            keys.add(m.group(1))
    return keys


def case_docs(args):
    setup(args)
    with open(os.path.join(SRC, "docs", "operations.md")) as f:
        ops = f.read()
    for prog, heading, conf in ((BROKER, "### minerwatch-broker", "minerwatch-broker.conf"),
                                (GATEWAY, "### minerwatch-gateway", "minerwatch-gateway.conf")):
        names = help_names([prog])
        check(len(names) > 10, f"{prog} --help: only {sorted(names)}")
        documented = doc_table_keys(ops, heading)
        check(documented == names, f"docs/operations.md {heading}: missing "
              f"{sorted(names - documented)}, unknown {sorted(documented - names)}")
        shown = conf_keys(os.path.join(SRC, "deploy", conf))
        check(shown == names, f"deploy/{conf}: missing {sorted(names - shown)}, "
              f"unknown {sorted(shown - names)}")
        print(f"ok: {len(names)} keys of {os.path.basename(prog)} --help: all in "
              f"docs/operations.md and deploy/{conf}")
    up = help_names([MW, "up"])
    shown = conf_keys(os.path.join(SRC, "deploy", "minerwatch-up.conf"))
    check(shown <= up, f"deploy/minerwatch-up.conf: unknown {sorted(shown - up)}")
    for key in ("demo", "demo-rate", "demo-miners", "demo-seed", "publish", "snapshot"):
        check(key in up and f"`{key}`" in ops, f"up key {key} not in --help or docs")
    print("ok: minerwatch up's keys")


if __name__ == "__main__":
    main({"docs": case_docs, "examples": case_examples, "errors": case_errors, "usage": case_usage,
          "broker": case_broker, "gateway": case_gateway, "up": case_up}, sys.argv)
