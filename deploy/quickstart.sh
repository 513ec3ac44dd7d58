#!/usr/bin/env bash
#  deploy/quickstart.sh - from a bare Debian 12 to a live dashboard.
#
#  Installs the Debian packages that are missing, builds minerwatch (Release)
#  in build-release/, then runs `minerwatch up --demo` in the foreground: a
#  broker and a gateway in one process, with simulated miners publishing, so
#  the dashboard at the printed URL moves at once. Ctrl-C stops it. Safe to
#  run again: packages already there are left alone and the build is
#  incremental.
#
#  Usage: deploy/quickstart.sh [--no-run] [--http HOST:PORT] [--rate N] [--miners K]
#    --no-run          install and build only, do not start minerwatch up
#    --http HOST:PORT  where to serve the dashboard (default 127.0.0.1:8080)
#    --rate N          simulated events per second (default 20)
#    --miners K        simulated miners (default 3)
#  Environment: MW_BUILD_DIR (default build-release/), MW_JOBS (default: cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MW_BUILD_DIR:-$ROOT/build-release}"
JOBS="${MW_JOBS:-$(nproc 2>/dev/null || echo 2)}"
HTTP=127.0.0.1:8080
RUN=1
RATE=20
MINERS=3

usage () {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed -E 's/^#( |$)//; s/^ //'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --no-run) RUN=0 ;;
        --http) HTTP="${2:?--http needs HOST:PORT}"; shift ;;
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
    step "done (--no-run): start the dashboard with $0, or $MW up --demo"
    exit 0
fi

#  The URL minerwatch up serves (an IPv6 address is written [::1]:PORT already).
HOST="${HTTP%:*}"
if [ "$HOST" = "0.0.0.0" ] || [ "$HOST" = "[::]" ]; then
    HOST=127.0.0.1
fi
URL="http://$HOST:${HTTP##*:}/api/dashboard"
step "3/3 minerwatch up --demo: broker, gateway and $MINERS simulated miners (Ctrl-C to stop)"
echo "dashboard: $URL"
echo "           (on a remote machine: ssh -L ${HTTP##*:}:127.0.0.1:${HTTP##*:} HOST, then open it locally)"
echo
#  In the foreground, as this shell's last command: Ctrl-C reaches it
#  directly, and its exit status is the script's (0 after Ctrl-C; 1 with a
#  message if a port is in use: pick another with --http).
exec "$MW" up --demo --http "$HTTP" --demo-rate "$RATE" --demo-miners "$MINERS"
