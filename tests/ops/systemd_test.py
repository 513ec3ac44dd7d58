#!/usr/bin/python3
"""The systemd units in deploy/systemd: the hardening every unit must have,
then, with systemd-analyze, `verify` (any complaint fails) and `security
--offline` under an exposure threshold.

    systemd_test.py UNIT_DIR BROKER GATEWAY CLI [SYSTEMD_ANALYZE]

BROKER, GATEWAY and CLI are the built minerwatch-broker, minerwatch-gateway
and minerwatch: verify checks that ExecStart's program exists, so the units
are checked with their /usr/bin paths pointed at them.
"""
import os
import re
import subprocess
import sys
import tempfile

UNITS = {
    "minerwatch-broker.service": "minerwatch-broker",
    "minerwatch-gateway.service": "minerwatch-gateway",
    "minerwatch-up.service": "minerwatch",
}

#  Every unit: key -> the value it must have (None: present, any value).
REQUIRED = {
    "DynamicUser": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "NoNewPrivileges": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX AF_NETLINK",
    "SystemCallFilter": "@system-service",
    "LimitNOFILE": "65536",
    "Restart": "on-failure",
    "ConfigurationDirectory": "minerwatch",
    "CapabilityBoundingSet": "",
}
EXPOSURE_MAX = "25"  # tenths: 2.5 ("OK" is below 3.0)


def parse_unit(path):
    """Return {section: [(key, value), ...]} (keys may repeat)."""
    sections = {}
    current = None
    with open(path) as f:
        for n, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#") or line.startswith(";"):
                continue
            if line.startswith("["):
                assert line.endswith("]"), f"{path}:{n}: bad section {line!r}"
                current = line[1:-1]
                sections.setdefault(current, [])
                continue
            assert current, f"{path}:{n}: a setting outside any section"
            assert "=" in line, f"{path}:{n}: expected Key=value, got {line!r}"
            key, value = line.split("=", 1)
            sections[current].append((key.strip(), value.strip()))
    return sections


def values(section, key):
    return [v for k, v in section if k == key]


def check_keys(unit_dir):
    for name, program in UNITS.items():
        path = os.path.join(unit_dir, name)
        unit = parse_unit(path)
        for s in ("Unit", "Service", "Install"):
            assert s in unit, f"{name}: no [{s}] section"
        service = unit["Service"]
        for key, want in REQUIRED.items():
            got = values(service, key)
            assert got, f"{name}: no {key}="
            assert want in got, f"{name}: {key}={got} (expected {want!r} among them)"
        #  "~@privileged" as well: deny-list on top of the allow-list.
        assert "~@privileged" in values(service, "SystemCallFilter"), name
        start = values(service, "ExecStart")
        assert len(start) == 1, f"{name}: ExecStart {start}"
        assert re.match(r"^/usr/bin/" + re.escape(program) + r"( |$)", start[0]), start
        assert "--config /etc/minerwatch/" in start[0], f"{name}: ExecStart without --config"
        if name != "minerwatch-gateway.service":
            assert values(service, "StateDirectory") == ["minerwatch"], name
        else:
            assert not values(service, "StateDirectory"), "the gateway keeps no state"
        assert values(unit["Install"], "WantedBy") == ["multi-user.target"], name
        print(f"ok: {name} has the required hardening keys")


def check_with_systemd(unit_dir, built, analyze):
    with tempfile.TemporaryDirectory(prefix="mw-units-") as tmp:
        for name, program in UNITS.items():
            real = built[program]
            assert os.access(real, os.X_OK), f"no built {real}"
            with open(os.path.join(unit_dir, name)) as f:
                text = f.read()
            text = text.replace("/usr/bin/" + program, real)
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        paths = [os.path.join(tmp, n) for n in UNITS]
        r = subprocess.run([analyze, "verify", "--man=no"] + paths, capture_output=True,
                           text=True, timeout=120, cwd=tmp)
        #  verify only warns about unknown keys and bad values: any line
        #  about our units fails the test.
        complaints = [l for l in (r.stdout + r.stderr).splitlines() if "minerwatch" in l]
        assert r.returncode == 0 and not complaints, \
            f"systemd-analyze verify: rc={r.returncode}\n{r.stdout}{r.stderr}"
        print(f"ok: systemd-analyze verify accepts {len(paths)} units without a warning")
        for p in paths:
            r = subprocess.run([analyze, "security", "--offline=yes", "--no-pager",
                                f"--threshold={EXPOSURE_MAX}", p],
                               capture_output=True, text=True, timeout=120, cwd=tmp)
            last = [l for l in r.stdout.splitlines() if "Overall exposure" in l]
            assert r.returncode == 0, \
                f"{os.path.basename(p)}: exposure above {EXPOSURE_MAX}: {last}\n{r.stderr}"
            print(f"ok: {last[0].strip() if last else os.path.basename(p)}")

        #  The check itself: a misspelt key and a bad value are caught.
        bad = os.path.join(tmp, "minerwatch-bad.service")
        with open(bad, "w") as f:
            f.write("[Service]\nExecStart=/bin/true\nProtectSystm=strict\nLimitNOFILE=lots\n")
        r = subprocess.run([analyze, "verify", "--man=no", bad], capture_output=True,
                           text=True, timeout=120, cwd=tmp)
        complaints = [l for l in (r.stdout + r.stderr).splitlines() if "minerwatch" in l]
        assert len(complaints) >= 2, f"verify missed the bad unit: {r.stderr}"
        print("ok: a misspelt key and a bad value are reported")


def main():
    if len(sys.argv) < 5:
        sys.exit("usage: systemd_test.py UNIT_DIR BROKER GATEWAY CLI [SYSTEMD_ANALYZE]")
    unit_dir = sys.argv[1]
    built = {"minerwatch-broker": sys.argv[2], "minerwatch-gateway": sys.argv[3],
             "minerwatch": sys.argv[4]}
    check_keys(unit_dir)
    if len(sys.argv) > 5 and sys.argv[5]:
        check_with_systemd(unit_dir, built, sys.argv[5])
    print("systemd units: all checks passed")


if __name__ == "__main__":
    main()
