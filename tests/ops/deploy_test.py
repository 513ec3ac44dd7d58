#!/usr/bin/python3
"""deploy_test.py - the deploy kit's monitoring and proxy examples against
real daemons.

Usage: deploy_test.py MINERWATCH BROKER GATEWAY SOURCE_DIR [PROMTOOL|""] [NGINX|""] CASE

Cases:
  metric_names  a broker and a gateway with events of every kind published
                to it: every metric name that deploy/prometheus/minerwatch-
                rules.yml and deploy/examples/grafana-dashboard.json use is in
                the live /metrics (histogram series by their _bucket, _sum,
                _count); the grafana JSON is well formed (unique panel ids,
                every target has an expr)
  promtool      promtool check rules, promtool test rules (the alerts fire on
                synthetic series), promtool check config of the example scrape
                config, promtool check metrics of a live /metrics
  topology      deploy/examples/README.md on loopback: `minerwatch keygen` keys, a
                CURVE broker with a clients directory, two gateways and two
                miners, all configured by files (each passing `config check`):
                both gateways show both miners' tasks, a client whose key is
                not listed gets nothing in and the broker counts the refusal
  nginx         nginx -t accepts deploy/examples/nginx-minerwatch.conf (with
                a generated certificate and free ports), then nginx runs it in
                front of `minerwatch up --demo`: /healthz over HTTPS and
                HTTP/2, SSE frames arrive through it unbuffered, and
                Last-Event-ID reaches the gateway (its resumed counter grows)
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from opslib import (Fail, Proc, check, free_ports, http_get, main, port_open, run,  # noqa: E402
                    wait_for, write)

MW = BROKER = GATEWAY = SRC = PROMTOOL = NGINX = None
RULES = GRAFANA = None
#  Prometheus' own series, not the gateway's.
BUILTIN = {"up"}


def setup(args):
    global MW, BROKER, GATEWAY, SRC, PROMTOOL, NGINX, RULES, GRAFANA
    MW, BROKER, GATEWAY, SRC, PROMTOOL, NGINX = args
    RULES = os.path.join(SRC, "deploy", "prometheus", "minerwatch-rules.yml")
    GRAFANA = os.path.join(SRC, "deploy", "examples", "grafana-dashboard.json")


def live_metrics():
    """A broker and a gateway with events of every kind; return /metrics."""
    ingest, publish, snapshot, http = free_ports(4)
    Proc([BROKER, "--ingest", f"@tcp://127.0.0.1:{ingest}",
          "--publish", f"@tcp://127.0.0.1:{publish}",
          "--snapshot", f"@tcp://127.0.0.1:{snapshot}", "--quiet"])
    wait_for("broker ports", lambda: port_open(publish) and port_open(snapshot))
    Proc([GATEWAY, "--updates", f">tcp://127.0.0.1:{publish}",
          "--snapshot", f">tcp://127.0.0.1:{snapshot}", "--http", f"127.0.0.1:{http}",
          "--quiet"])
    base = f"http://127.0.0.1:{http}"
    wait_for("gateway linked to the broker",
             lambda: http_get(base + "/healthz")[0] == 200, timeout=30)
    ep = f">tcp://127.0.0.1:{ingest}"
    events = [
        ["-t", "task_start", "task_id=t1", "prompt=p", "timeout_ms=60000"],
        ["-t", "task_complete", "task_id=t1", "success=true", "response_time=1.5"],
        ["-t", "task_start", "task_id=t2", "prompt=p"],
        ["-t", "task_complete", "task_id=t2", "success=false", "response_time=2.5"],
        ["-t", "cache_hit", "task_id=t3"],
        ["-t", "error", "error_message=boom"],
    ]
    for ev in events:
        rc, out, err = run([MW, "publish", "-e", ep, "-m", "ops-miner", "-w", "10", *ev],
                           timeout=30)
        check(rc == 0, f"publish {ev}: {rc} {out}{err}")

    def complete():
        status, text = http_get(base + "/metrics")
        if status != 200 or 'minerwatch_miner_events_total{miner="ops-miner"} 6' not in text:
            return None
        if "minerwatch_broker_events_accepted_total" not in text:
            return None
        return text
    return wait_for("every published event in /metrics", complete, timeout=30)


def sample_names(text):
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def referenced(text):
    return set(re.findall(r"\b(minerwatch_[a-z0-9_]+)", text))


def case_metric_names(args):
    setup(args)
    text = live_metrics()
    live = sample_names(text)
    check(len(live) > 50, f"only {len(live)} series names in /metrics")
    with open(RULES) as f:
        rules = f.read()
    used = referenced(rules)
    exprs = re.findall(r"^\s+expr:\s*(\|?)(.*(?:\n\s{10,}.*)*)", rules, re.M)
    check(len(exprs) >= 15, f"only {len(exprs)} rules found")
    with open(GRAFANA) as f:
        dash = json.load(f)
    ids, graf = set(), set()
    for p in dash["panels"]:
        check(p["id"] not in ids, f"panel id {p['id']} twice")
        ids.add(p["id"])
        check(p.get("targets"), f"panel {p['title']} has no target")
        for t in p["targets"]:
            check(t.get("expr"), f"panel {p['title']}: a target without expr")
            graf |= referenced(t["expr"])
    for v in dash["templating"]["list"]:
        if isinstance(v.get("query"), str):
            graf |= referenced(v["query"])
    missing = sorted((used | graf) - live - BUILTIN)
    check(not missing, f"named but not in /metrics: {missing}")
    print(f"ok: {len(used)} metric names in the rules, {len(graf)} in the Grafana dashboard "
          f"({len(dash['panels'])} panels), all among the {len(live)} live series names")
    #  The check itself: a misspelt name is caught.
    check("minerwatch_lost_event_total" not in live, "the check would not catch a typo")


def case_promtool(args):
    setup(args)
    check(PROMTOOL, "no promtool given")
    rc, out, err = run([PROMTOOL, "check", "rules", RULES])
    check(rc == 0 and "SUCCESS" in out + err, f"check rules: {rc}\n{out}{err}")
    n = re.search(r"(\d+) rules found", out + err)
    print(f"ok: promtool check rules: {n.group(1) if n else '?'} rules")
    tests = os.path.join(SRC, "deploy", "prometheus", "minerwatch-rules.test.yml")
    rc, out, err = run([PROMTOOL, "test", "rules", tests], timeout=120)
    check(rc == 0 and "SUCCESS" in out + err, f"test rules: {rc}\n{out}{err}")
    print("ok: promtool test rules: the alerts fire on synthetic series")
    with tempfile.TemporaryDirectory() as tmp:
        token = write(os.path.join(tmp, "token"), "t\n", 0o600)
        with open(os.path.join(SRC, "deploy", "examples", "prometheus.yml")) as f:
            conf = f.read()
        check("/etc/prometheus/minerwatch-rules.yml" in conf, "rule_files path changed")
        conf = conf.replace("/etc/prometheus/minerwatch-rules.yml", RULES)
        conf = conf.replace("/etc/prometheus/minerwatch.token", token)
        path = write(os.path.join(tmp, "prometheus.yml"), conf)
        rc, out, err = run([PROMTOOL, "check", "config", path])
        check(rc == 0 and "SUCCESS" in out + err, f"check config: {rc}\n{out}{err}")
        print("ok: promtool check config of deploy/examples/prometheus.yml")
    text = live_metrics()
    rc, out, err = run([PROMTOOL, "check", "metrics"], input=text)
    check(rc == 0, f"promtool check metrics: {rc}\n{out}{err}")
    print("ok: promtool check metrics accepts a live /metrics")


def case_nginx(args):
    setup(args)
    check(NGINX, "no nginx given")
    with tempfile.TemporaryDirectory() as tmp:
        key, crt = os.path.join(tmp, "tls.key"), os.path.join(tmp, "tls.crt")
        rc, out, err = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", crt, "-days", "2", "-subj",
                            "/CN=127.0.0.1"], timeout=120)
        check(rc == 0, f"openssl: {err}")
        http, https, gw, ingest, publish, snapshot = free_ports(6)
        with open(os.path.join(SRC, "deploy", "examples", "nginx-minerwatch.conf")) as f:
            site = f.read()
        for needle in ("listen 80;", "listen 443 ssl http2;", "server 127.0.0.1:8080",
                       "/etc/nginx/tls/minerwatch.crt", "/etc/nginx/tls/minerwatch.key"):
            check(needle in site, f"the example lost {needle!r}")
        site = (site.replace("listen 80;", f"listen 127.0.0.1:{http};")
                    .replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https} ssl http2;")
                    .replace("server 127.0.0.1:8080", f"server 127.0.0.1:{gw}")
                    .replace("/etc/nginx/tls/minerwatch.crt", crt)
                    .replace("/etc/nginx/tls/minerwatch.key", key))
        #  No IPv6 here: drop the [::] listeners.
        site = "\n".join(l for l in site.splitlines() if "listen [::]" not in l)
        write(os.path.join(tmp, "site.conf"), site)
        main_conf = write(os.path.join(tmp, "nginx.conf"), f"""
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/site.conf;
}}
""")
        rc, out, err = run([NGINX, "-t", "-p", tmp, "-c", main_conf])
        check(rc == 0 and "syntax is ok" in err, f"nginx -t: {rc}\n{out}{err}")
        print("ok: nginx -t accepts the example")

        Proc([MW, "up", "--demo", "--demo-rate", "50", "--http", f"127.0.0.1:{gw}",
              "--ingest", f"@tcp://127.0.0.1:{ingest}", "--publish", f"@tcp://127.0.0.1:{publish}",
              "--snapshot", f"@tcp://127.0.0.1:{snapshot}", "--quiet", "--open-metrics"])
        wait_for("minerwatch up", lambda: http_get(f"http://127.0.0.1:{gw}/healthz")[0] == 200,
                 timeout=30)
        Proc([NGINX, "-p", tmp, "-c", main_conf])
        wait_for("nginx", lambda: port_open(https))
        base = f"https://127.0.0.1:{https}"
        rc, out, err = run(["curl", "-sk", "--http2", "-o", "/dev/null", "-w",
                            "%{http_version} %{http_code}", base + "/healthz"])
        check(rc == 0 and out == "2 200", f"/healthz through nginx: {rc} {out!r} {err}")
        rc, out, err = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
                            f"http://127.0.0.1:{http}/api/dashboard"])
        check(out.startswith("301 https://"), f"plain HTTP not redirected: {out!r}")
        print("ok: HTTPS with HTTP/2 through nginx; plain HTTP redirects")

        def resumed():
            _, text = http_get(f"http://127.0.0.1:{gw}/metrics")
            m = re.search(r"^minerwatch_gateway_sse_resumed_total (\d+)", text, re.M)
            return int(m.group(1)) if m else 0

        def last_id():
            _, text = http_get(f"http://127.0.0.1:{gw}/metrics")
            return int(re.search(r"^minerwatch_gateway_last_id (\d+)", text, re.M).group(1))
        wait_for("events from the demo", lambda: last_id() > 20, timeout=30)
        before = resumed()
        resume_from = last_id() - 5
        #  Read the stream through nginx over HTTP/2 for a bounded time:
        #  frames must arrive while the connection is open (no buffering).
        proc = subprocess.Popen(["curl", "-skN", "--http2", "--max-time", "6",
                                 "-H", f"Last-Event-ID: {resume_from}",
                                 base + "/api/dashboard/live"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = None
        ids = []
        start = time.monotonic()
        for line in proc.stdout:
            if line.startswith("id: "):
                ids.append(int(line[4:]))
                if first is None:
                    first = time.monotonic() - start
            if len(ids) >= 10:
                break
        proc.kill()
        proc.wait(timeout=10)
        check(first is not None and first < 5, f"no SSE frame through nginx within 5 s ({ids})")
        check(len(ids) >= 10, f"only {len(ids)} frames through nginx in 6 s")
        check(ids[0] == resume_from + 1, f"resumed at {ids[0]}, expected {resume_from + 1}: "
                                         "Last-Event-ID did not reach the gateway")
        wait_for("the gateway's resumed counter", lambda: resumed() > before, timeout=10)
        print(f"ok: SSE through nginx: first frame after {first:.2f} s, resumed at id "
              f"{ids[0]} from Last-Event-ID {resume_from}")


def case_topology(args):
    """deploy/examples/README.md on loopback: keys from `minerwatch keygen`,
    a CURVE broker with a clients directory, two gateways and miners, each
    from a config file as the README writes them."""
    setup(args)
    with tempfile.TemporaryDirectory() as tmp:
        keys = os.path.join(tmp, "keys")
        clients = os.path.join(tmp, "clients")
        os.makedirs(keys)
        os.makedirs(clients)
        for name in ("broker", "gateway-a", "gateway-b", "miner-1", "miner-2", "intruder"):
            rc, out, err = run([MW, "keygen", "--out", os.path.join(keys, name + ".cert"),
                                "--name", name])
            check(rc == 0, f"keygen {name}: {out}{err}")
            check(os.stat(os.path.join(keys, name + ".cert_secret")).st_mode & 0o077 == 0,
                  "a secret certificate open to others")
        for name in ("gateway-a", "gateway-b", "miner-1", "miner-2"):
            with open(os.path.join(keys, name + ".cert")) as src, \
                    open(os.path.join(clients, name + ".cert"), "w") as dst:
                dst.write(src.read())
        ingest, publish, snapshot, http_a, http_b = free_ports(5)
        broker_conf = write(os.path.join(tmp, "broker.conf"),
                            f"ingest = @tcp://127.0.0.1:{ingest}\n"
                            f"publish = @tcp://127.0.0.1:{publish}\n"
                            f"snapshot = @tcp://127.0.0.1:{snapshot}\n"
                            f"state-file = {tmp}/broker.state\n"
                            f"curve-secret = {keys}/broker.cert_secret\n"
                            f"curve-clients = {clients}\n"
                            "max-miners = 1000\nquiet = true\n")
        rc, out, err = run([MW, "config", "check", broker_conf, "--for", "broker"])
        check(rc == 0, f"broker.conf: {out}{err}")
        Proc([BROKER, "--config", broker_conf])
        wait_for("the CURVE broker", lambda: port_open(publish) and port_open(snapshot))
        tokens = {}
        for gw, http in (("gateway-a", http_a), ("gateway-b", http_b)):
            tokens[gw] = f"token-of-{gw}"
            token = write(os.path.join(tmp, gw + ".token"), tokens[gw] + "\n", 0o600)
            conf = write(os.path.join(tmp, gw + ".conf"),
                         f"updates = >tcp://127.0.0.1:{publish}\n"
                         f"snapshot = >tcp://127.0.0.1:{snapshot}\n"
                         f"curve-server-key = {keys}/broker.cert\n"
                         f"curve-client-cert = {keys}/{gw}.cert_secret\n"
                         f"http = 127.0.0.1:{http}\n"
                         f"auth-token-file = {token}\n"
                         "max-clients = 5000\nquiet = true\n")
            rc, out, err = run([MW, "config", "check", conf, "--for", "gateway"])
            check(rc == 0, f"{gw}.conf: {out}{err}")
            Proc([GATEWAY, "--config", conf])
        ep = f">tcp://127.0.0.1:{ingest}"
        curve = ["--curve-server-key", f"{keys}/broker.cert"]
        for i, miner in enumerate(("miner-1", "miner-2")):
            rc, out, err = run([MW, "publish", "-e", ep, "-m", miner, "-w", "10", *curve,
                                "--curve-client-cert", f"{keys}/{miner}.cert_secret",
                                "-t", "task_start", f"task_id=topo-{i}", "prompt=p"], timeout=60)
            check(rc == 0, f"publish as {miner}: {rc} {out}{err}")
        #  A client whose key is not in clients/ gets nothing through.
        rc, out, err = run([MW, "publish", "-e", ep, "-m", "intruder", "-w", "2", *curve,
                            "--curve-client-cert", f"{keys}/intruder.cert_secret",
                            "-t", "task_start", "task_id=topo-intruder", "prompt=p"],
                           timeout=60)
        check(rc == 1, f"the intruder's publish: exit {rc} (expected 1: no subscriber)\n{err}")

        def both_show():
            for gw, http in (("gateway-a", http_a), ("gateway-b", http_b)):
                auth = {"Authorization": f"Bearer {tokens[gw]}"}
                status, body = http_get(f"http://127.0.0.1:{http}/api/dashboard/live/status", auth)
                if status != 200 or "topo-0" not in body or "topo-1" not in body:
                    return False
                check("topo-intruder" not in body, "the intruder's event got in")
            return True
        wait_for("both miners' tasks on both gateways", both_show, timeout=30)
        auth = {"Authorization": f"Bearer {tokens['gateway-a']}"}
        _, metrics = http_get(f"http://127.0.0.1:{http_a}/metrics", auth)
        m = re.search(r"^minerwatch_broker_auth_failures_total (\d+)", metrics, re.M)
        check(m and int(m.group(1)) >= 1, "the refused handshake is not counted")
        ida = re.search(r"^minerwatch_gateway_last_id (\d+)", metrics, re.M)
        check(ida, "no last_id")
        status, _ = http_get(f"http://127.0.0.1:{http_b}/healthz",
                             {"Authorization": f"Bearer {tokens['gateway-a']}"})
        check(status == 401, f"gateway-b accepted gateway-a's token: {status}")
        print("ok: keygen, a CURVE broker with clients/, two gateways and two miners from config "
              "files: both gateways show both miners, the unlisted key is refused and counted")


if __name__ == "__main__":
    main({"topology": case_topology, "metric_names": case_metric_names, "promtool": case_promtool, "nginx": case_nginx},
         sys.argv)
