"""prom_check.py - a small checker of the Prometheus text exposition format
(version 0.0.4), for the gateway's /metrics.

check(text, prefix) returns a list of problems (empty when the text is
good) and the parsed samples as {(name, labels-tuple): value}. It checks:
every line is a comment, a blank line or a sample; HELP and TYPE come
before the samples of their family, once each; names are valid and start
with the prefix; counters end in _total; label values are properly escaped
and valid UTF-8; a histogram has cumulative `le` buckets ending in +Inf
equal to _count, and a _sum; no sample (name + labels) appears twice.

Run as a script, it checks a file (or stdin) and exits 1 on a problem.
"""
import math
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def _parse_value(text):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    return float(text)


def _parse_labels(s, pos, problems, lineno):
    """Parse {a="b",...} starting at s[pos] == '{'. Return (labels, end)."""
    labels = []
    pos += 1
    while True:
        if s[pos] == "}":
            return labels, pos + 1
        m = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*").match(s, pos)
        if not m:
            raise ValueError("bad label name")
        name = m.group(0)
        pos = m.end()
        if s[pos] != "=" or s[pos + 1] != '"':
            raise ValueError("expected =\" after label name")
        pos += 2
        value = []
        while True:
            c = s[pos]
            if c == "\\":
                nxt = s[pos + 1]
                if nxt == "\\":
                    value.append("\\")
                elif nxt == '"':
                    value.append('"')
                elif nxt == "n":
                    value.append("\n")
                else:
                    raise ValueError("bad escape \\%s in label value" % nxt)
                pos += 2
            elif c == '"':
                pos += 1
                break
            elif c == "\n":
                raise ValueError("raw newline in label value")
            else:
                value.append(c)
                pos += 1
        labels.append((name, "".join(value)))
        if s[pos] == ",":
            pos += 1
        elif s[pos] != "}":
            raise ValueError("expected , or } after label value")


def check(text, prefix="minerwatch_"):
    problems = []
    samples = {}
    help_seen, type_of = set(), {}
    sampled_families = set()
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            return ["not valid UTF-8: %s" % e], samples
    if text and not text.endswith("\n"):
        problems.append("text does not end with a newline")

    def family_of(name):
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)] if name.endswith(suffix) else None
            if base and type_of.get(base) in ("histogram", "summary"):
                return base
        return name

    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.match(name):
                    problems.append("line %d: bad metric name %r" % (lineno, name))
                if parts[1] == "HELP":
                    if name in help_seen:
                        problems.append("line %d: second HELP for %s" % (lineno, name))
                    help_seen.add(name)
                else:
                    kind = parts[3] if len(parts) > 3 else ""
                    if kind not in TYPES:
                        problems.append("line %d: bad TYPE %r" % (lineno, kind))
                    if name in type_of:
                        problems.append("line %d: second TYPE for %s" % (lineno, name))
                    if name in sampled_families:
                        problems.append("line %d: TYPE after samples of %s" % (lineno, name))
                    type_of[name] = kind
            continue
        m = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*").match(line)
        if not m:
            problems.append("line %d: not a sample: %r" % (lineno, line[:80]))
            continue
        name = m.group(0)
        pos = m.end()
        labels = []
        try:
            if pos < len(line) and line[pos] == "{":
                labels, pos = _parse_labels(line + "\n", pos, problems, lineno)
            if line[pos] != " ":
                raise ValueError("expected a space before the value")
            fields = line[pos + 1 :].split(" ")
            value = _parse_value(fields[0])
            if len(fields) > 2:
                raise ValueError("too many fields")
            if len(fields) == 2:
                int(fields[1])  # timestamp, ms
        except (ValueError, IndexError) as e:
            problems.append("line %d: %s: %r" % (lineno, e, line[:120]))
            continue
        if not name.startswith(prefix):
            problems.append("line %d: %s does not start with %s" % (lineno, name, prefix))
        fam = family_of(name)
        sampled_families.add(fam)
        kind = type_of.get(fam)
        if kind is None:
            problems.append("line %d: sample of %s before (or without) its TYPE" % (lineno, fam))
        if kind == "counter" and not name.endswith("_total"):
            problems.append("line %d: counter %s does not end in _total" % (lineno, name))
        if kind != "counter" and name.endswith("_total") and kind is not None:
            problems.append("line %d: %s ends in _total but is a %s" % (lineno, name, kind))
        if kind == "counter" and (value < 0 or math.isnan(value)):
            problems.append("line %d: counter %s is %r" % (lineno, name, value))
        names = [n for n, _ in labels]
        if len(set(names)) != len(names):
            problems.append("line %d: repeated label" % lineno)
        key = (name, tuple(labels))
        if key in samples:
            problems.append("line %d: sample %s%s appears twice" % (lineno, name, labels))
        samples[key] = value

    for fam, kind in type_of.items():
        if fam not in help_seen:
            problems.append("%s has TYPE but no HELP" % fam)
        if kind != "histogram":
            continue
        groups = {}
        for (name, labels), value in samples.items():
            if name == fam + "_bucket":
                rest = tuple(l for l in labels if l[0] != "le")
                le = dict(labels).get("le")
                if le is None:
                    problems.append("%s: bucket without le" % fam)
                    continue
                groups.setdefault(rest, []).append((_parse_value(le), value))
        if not groups:
            problems.append("histogram %s has no buckets" % fam)
        for rest, buckets in groups.items():
            buckets.sort()
            prev = -1
            for le, value in buckets:
                if value < prev:
                    problems.append("%s: buckets not cumulative at le=%s" % (fam, le))
                prev = value
            if buckets[-1][0] != math.inf:
                problems.append("%s: no +Inf bucket" % fam)
            count = samples.get((fam + "_count", rest))
            if count is None or (fam + "_sum", rest) not in samples:
                problems.append("%s: _count or _sum missing" % fam)
            elif buckets[-1][1] != count:
                problems.append("%s: +Inf bucket %s != _count %s" % (fam, buckets[-1][1], count))
    return problems, samples


if __name__ == "__main__":
    data = open(sys.argv[1], "rb").read() if len(sys.argv) > 1 else sys.stdin.buffer.read()
    found, _ = check(data)
    for p in found:
        print(p)
    sys.exit(1 if found else 0)
