#!/usr/bin/env bash
#  bench/run.sh - build minerwatch (Release) and print the benchmark table.
#
#  Runs, in one go and on this machine:
#    bench_publisher   libminerwatch per event vs raw zmq_send of the same bytes
#    bench_python.py   the Python binding vs pyzmq + msgpack by hand
#  and prints both tables side by side with the machine they ran on; this is
#  what docs/performance.md records.
#
#  Usage: bench/run.sh [--quick]
#    --quick   fewer batches (faster, noisier numbers)
#  Environment: MW_BUILD_DIR (default build-bench/), MW_JOBS, PYTHON
#  (default /usr/bin/python3: Debian's, which has python3-zmq and
#  python3-msgpack).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MW_BUILD_DIR:-$ROOT/build-bench}"
JOBS="${MW_JOBS:-$(nproc 2>/dev/null || echo 2)}"
PYTHON="${PYTHON:-/usr/bin/python3}"
C_ARGS=()
PY_ARGS=()
case "${1:-}" in
    --quick) C_ARGS=(--batches 11); PY_ARGS=(--batches 5) ;;
    "") ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed -E 's/^#( |$)//; s/^ //'; exit 0 ;;
    *) echo "bench/run.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac

echo "== building (Release) in $BUILD" >&2
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$BUILD" --parallel "$JOBS" --target bench_publisher minerwatch >/dev/null

cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
echo "## minerwatch benchmarks, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "Machine: $(nproc) cores, ${cpu:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);"
echo "$(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), $(cc --version | head -n 1)."
echo
echo "### C: libminerwatch vs raw zmq_send (ns per event, lower is better)"
echo
"$BUILD/bench/bench_publisher" "${C_ARGS[@]}"
echo
echo "### Python: the binding vs pyzmq + msgpack by hand (ns per event, lower is better)"
echo
PYTHONPATH="$BUILD/python" "$PYTHON" "$ROOT/bench/bench_python.py" "${PY_ARGS[@]}"
