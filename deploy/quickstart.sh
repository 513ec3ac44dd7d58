#!/usr/bin/env bash
#  deploy/quickstart.sh - from a bare Debian 12 to live events in a terminal.
#
#  Installs the Debian packages that are missing, builds minerwatch (Release)
#  in build-release/, then starts the demo: a simulated miner publishing
#  events and `minerwatch tail` printing them as they arrive. Ctrl-C stops
#  both. Safe to run again: packages already there are left alone and the
#  build is incremental.
#
#  Usage: deploy/quickstart.sh [--no-run] [--rate N] [--miners K]
#    --no-run     install and build only, do not start the demo
#    --rate N     simulated events per second (default 20)
#    --miners K   simulated miners (default 3)
#  Environment: MW_BUILD_DIR (default build-release/), MW_JOBS (default: cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MW_BUILD_DIR:-$ROOT/build-release}"
JOBS="${MW_JOBS:-$(nproc 2>/dev/null || echo 2)}"
ENDPOINT_PORT=7710
RUN=1
RATE=20
MINERS=3

usage () {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed -E 's/^#( |$)//; s/^ //'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --no-run) RUN=0 ;;
        --rate) RATE="${2:?--rate needs a number}"; shift ;;
        --miners) MINERS="${2:?--miners needs a number}"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "quickstart: unknown option '$1' (try --help)" >&2; exit 2 ;;
    esac
    shift
done

step () {
    if [ -t 1 ]; then
        printf '\n\033[1m==> %s\033[0m\n' "$*"
    else
        printf '\n==> %s\n' "$*"
    fi
}

PACKAGES=(build-essential cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev
          libwebsockets-dev libjansson-dev libcmocka-dev python3 python3-zmq
          python3-msgpack)

step "1/3 checking Debian packages"
missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "all ${#PACKAGES[@]} packages are already installed"
else
    echo "installing: ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "quickstart: installing packages needs root: run 'sudo $0'" >&2
        exit 1
    fi
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

step "2/3 building minerwatch (Release) in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build "$BUILD" --parallel "$JOBS"
MW="$BUILD/cli/minerwatch"
if [ ! -x "$MW" ]; then
    echo "quickstart: the build did not produce $MW" >&2
    exit 1
fi
echo "built $MW ($("$MW" --version 2>/dev/null || echo minerwatch))"

if [ "$RUN" -eq 0 ]; then
    step "done (--no-run): start the demo with $0"
    exit 0
fi

step "3/3 demo: $MINERS simulated miners -> minerwatch tail (Ctrl-C to stop)"
SIM_PID=""
cleanup () {
    if [ -n "$SIM_PID" ] && kill -0 "$SIM_PID" 2>/dev/null; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

#  tail binds the endpoint; the simulator connects to it, as miners connect
#  to a broker. The simulator's own output goes to a log file so the terminal
#  shows the events alone.
SIM_LOG="$BUILD/quickstart-simulate.log"
echo "simulator: $MW simulate --endpoint '>tcp://127.0.0.1:$ENDPOINT_PORT' (log: $SIM_LOG)"
echo "viewer:    $MW tail @tcp://127.0.0.1:$ENDPOINT_PORT"
echo
"$MW" simulate --endpoint ">tcp://127.0.0.1:$ENDPOINT_PORT" --rate "$RATE" \
    --duration 0 --miners "$MINERS" --wait 10 --quiet >"$SIM_LOG" 2>&1 </dev/null &
SIM_PID=$!
rc=0
"$MW" tail "@tcp://127.0.0.1:$ENDPOINT_PORT" || rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ]; then
    echo "quickstart: minerwatch tail exited with status $rc; if port $ENDPOINT_PORT is in" \
         "use, stop what holds it (ss -ltnp | grep $ENDPOINT_PORT) and run again" >&2
fi
exit "$rc"
