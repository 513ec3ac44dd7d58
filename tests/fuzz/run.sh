#!/usr/bin/env bash
#  tests/fuzz/run.sh - build the libFuzzer targets and run each for a while.
#
#  Usage: tests/fuzz/run.sh [TARGET...]     (default: every target)
#
#  Configures BUILD (default build-fuzz/ at the top of the tree) with
#  CC=clang -DMW_FUZZ=ON (libFuzzer + ASan + UBSan), builds fuzz_TARGET, and
#  runs it for FUZZ_SECONDS (default 30) from its seed corpus
#  (tests/fuzz/corpus/TARGET) and its regressions (tests/fuzz/regress/TARGET).
#  New inputs the fuzzer finds go to a scratch corpus, not into the tree.
#  A crash, leak, timeout or sanitizer report fails the run; its input is
#  copied into tests/fuzz/regress/TARGET/, where the replay test
#  (ctest -R fuzz_replay) runs it from then on: fix the bug, keep the file.
#
#  Environment:
#    FUZZ_SECONDS   seconds per target (default 30)
#    FUZZ_BUILD     build directory (default <top>/build-fuzz)
#    FUZZ_JOBS      parallel build jobs (default 2)
#    FUZZ_WORK      scratch directory for the grown corpora (default: a temp dir)
#  Needs Debian's clang and libclang-rt-14-dev (apt-get install clang
#  libclang-rt-14-dev). Exit 0 if every target ran clean, 1 if one failed,
#  2 on bad usage.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BUILD="${FUZZ_BUILD:-$ROOT/build-fuzz}"
SECONDS_EACH="${FUZZ_SECONDS:-30}"
JOBS="${FUZZ_JOBS:-2}"
ALL=(event snapshot httpparse config)

usage () {
    sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,2\}//'
}

#  Largest input per target: a body of MW_MAX_BODY plus its topic; a
#  snapshot big enough for the seeds to grow; a request line + headers of
#  --max-header; a config file of a few hundred lines.
max_len () {
    case "$1" in
        event) echo 66000 ;;
        snapshot) echo 65536 ;;
        httpparse) echo 8192 ;;
        config) echo 16384 ;;
    esac
}

targets=()
for arg in "$@"; do
    case "$arg" in
        -h|--help) usage; exit 0 ;;
        event|snapshot|httpparse|config) targets+=("$arg") ;;
        *) echo "run.sh: unknown target '$arg' (expected: ${ALL[*]})" >&2; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL[@]}")
if ! [[ "$SECONDS_EACH" =~ ^[0-9]+$ ]] || [ "$SECONDS_EACH" -lt 1 ]; then
    echo "run.sh: FUZZ_SECONDS must be a whole number of seconds >= 1" >&2
    exit 2
fi
if ! command -v clang >/dev/null 2>&1; then
    echo "run.sh: clang not found; install Debian's clang and libclang-rt-14-dev" >&2
    exit 1
fi

CC=clang cmake -S "$ROOT" -B "$BUILD" -DMW_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" --parallel "$JOBS" --target "${targets[@]/#/fuzz_}"

WORK="${FUZZ_WORK:-$(mktemp -d)}"
[ -n "${FUZZ_WORK:-}" ] || trap 'rm -rf "$WORK"' EXIT
failed=0
for t in "${targets[@]}"; do
    corpus="$WORK/corpus-$t"
    crashes="$WORK/crash-$t"
    mkdir -p "$corpus" "$crashes" "$HERE/regress/$t"
    echo "==== fuzz_$t: ${SECONDS_EACH}s, -max_len=$(max_len "$t")"
    rc=0
    ( cd "$WORK" && "$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$SECONDS_EACH" \
        -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$corpus" "$HERE/corpus/$t" "$HERE/regress/$t" ) \
        >"$WORK/log-$t" 2>&1 || rc=$?
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$WORK/log-$t" || true
    found=0
    for f in "$crashes"/*; do
        [ -e "$f" ] || continue
        cp "$f" "$HERE/regress/$t/"
        echo "fuzz_$t: kept $(basename "$f") in tests/fuzz/regress/$t/"
        found=1
    done
    if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
        echo "fuzz_$t FAILED (exit $rc); the report:"
        grep -A 40 -E 'ERROR:|runtime error|==[0-9]+==' "$WORK/log-$t" | head -60 || tail -40 "$WORK/log-$t"
        failed=1
    else
        echo "fuzz_$t: clean"
    fi
done
exit "$failed"
