#!/usr/bin/env bash
#  deploy/test.sh - install what is missing, build, and run every test.
#
#  1. installs the Debian packages the build and the tests need (only those
#     missing; `apt-get update` once, only if something is missing);
#  2. builds in build/ (warnings are errors);
#  3. runs the whole ctest suite there;
#  4. runs the C test programs labelled `memcheck` there under valgrind
#     (ctest -T memcheck): any memory error or definite leak fails them
#     (tests labelled `valgrind` start valgrind themselves, in step 3);
#  5. builds in build-asan/ with AddressSanitizer + UndefinedBehaviorSanitizer
#     (warnings are errors) and runs the whole suite again;
#  6. fuzzes each libFuzzer target for FUZZ_SECONDS (default 20) with clang
#     (tests/fuzz/run.sh, its own build in build-fuzz/);
#  7. runs `deploy/quickstart.sh --no-run` (the README's first command,
#     without starting the demo): its Release build in build-release/.
#
#  The browser tests (ctest label `browser`) drive Debian's chromium with
#  playwright-core from npm: step 1 also runs `npm ci` in tests/browser
#  (Node.js and npm from Debian if the machine has none). The fault
#  injection (`faults`), soak smoke (`soak`) and packaging (`packaging`)
#  tests are part of the ctest suite. Longer runs, by hand:
#  FUZZ_SECONDS=300 tests/fuzz/run.sh, and bench/soak/soak.py (10 minutes).
#
#  Exit status 0 only if every step passed. Works from any directory, as
#  root or through sudo. Environment knobs:
#    MW_BUILD_DIR, MW_ASAN_BUILD_DIR   build directories (default build/, build-asan/)
#    MW_RELEASE_BUILD_DIR              quickstart's build directory (default build-release/)
#    MW_JOBS                           parallel build and test jobs (default: cores)
#    FUZZ_SECONDS                      seconds of fuzzing per target (default 20)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${MW_BUILD_DIR:-$ROOT/build}"
BUILD_ASAN="${MW_ASAN_BUILD_DIR:-$ROOT/build-asan}"
JOBS="${MW_JOBS:-$(nproc 2>/dev/null || echo 2)}"
LOGDIR="$(mktemp -d)"
trap 'rm -rf "$LOGDIR"' EXIT

PACKAGES=(build-essential cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev
          libwebsockets-dev libjansson-dev libcmocka-dev python3 python3-zmq
          python3-msgpack valgrind curl openssl iproute2
          chromium fonts-liberation fonts-noto-color-emoji
          clang libclang-rt-14-dev
          dpkg-dev nginx-light prometheus systemd)
VALGRIND_OPTIONS="--error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --num-callers=40 --track-origins=yes"

section () {
    printf '\n==== %s ====\n' "$*"
}

#  Results, for the summary at the end.
STEPS=()
STEP_FAILED=0
TESTS_PASSED=0
TESTS_FAILED=0

record () {
    #  record NAME STATUS
    STEPS+=("$(printf '%-34s %s' "$1" "$2")")
    if [ "$2" != "ok" ]; then
        STEP_FAILED=$((STEP_FAILED + 1))
    fi
}

#  Add the counts of a ctest log to the totals. A run that found no test is
#  a failure: a suite that silently runs nothing proves nothing.
count_ctest () {
    local log="$1" line total failed
    line="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)"
    if [ -z "$line" ]; then
        TESTS_FAILED=$((TESTS_FAILED + 1))
        return 1
    fi
    failed="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
    total="$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")"
    TESTS_PASSED=$((TESTS_PASSED + total - failed))
    TESTS_FAILED=$((TESTS_FAILED + failed))
    [ "$total" -gt 0 ]
}

run_as_root () {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "error: installing packages needs root; run as root or install sudo" >&2
        return 1
    fi
}

install_packages () {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "all ${#PACKAGES[@]} packages are installed"
        return 0
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    run_as_root apt-get update -q
    run_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

#  Node.js and npm for the browser tests: the machine's own if it has them,
#  else Debian's; then playwright-core (and nothing else: it downloads no
#  browser) from the lock file into tests/browser/node_modules.
install_node_modules () {
    local dir="$ROOT/tests/browser"
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "installing Debian's nodejs and npm"
        run_as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends nodejs npm </dev/null || return 1
    fi
    if ! node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)'; then
        echo "error: the browser tests need Node.js 18 or later; $(command -v node) is $(node --version)" >&2
        return 1
    fi
    echo "node $(node --version), npm $(npm --version)"
    if [ -f "$dir/node_modules/.package-lock.json" ] \
            && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
        echo "tests/browser/node_modules is up to date"
        return 0
    fi
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
}

#  build DIR CMAKE-ARGS...
build () {
    local dir="$1"
    shift
    cmake -S "$ROOT" -B "$dir" -DMW_WERROR=ON "$@" \
        && cmake --build "$dir" --parallel "$JOBS"
}

#  ctest_run DIR LOG CTEST-ARGS...: run, tee to LOG, count.
ctest_run () {
    local dir="$1" log="$2" rc=0
    shift 2
    (cd "$dir" && ctest --output-on-failure --no-tests=error "$@") 2>&1 | tee "$log" || rc=$?
    count_ctest "$log" || rc=1
    return "$rc"
}

START=$SECONDS
echo "minerwatch tests: source $ROOT, $JOBS jobs"

section "1/7 packages"
if install_packages && install_node_modules; then
    record "packages" ok
else
    record "packages" FAILED
fi

section "2/7 build ($BUILD, -Werror)"
if build "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DMW_SANITIZE=OFF "-DMEMORYCHECK_COMMAND_OPTIONS=$VALGRIND_OPTIONS"; then
    record "build" ok
    section "3/7 tests ($BUILD)"
    if ctest_run "$BUILD" "$LOGDIR/ctest.log" -j "$JOBS"; then
        record "tests" ok
    else
        record "tests" FAILED
    fi
    section "4/7 valgrind (C tests labelled 'memcheck' in $BUILD)"
    #  ctest's memcheck mode runs each test under valgrind with the options
    #  above: valgrind's --error-exitcode turns a memory error or a definite
    #  leak into a failed test, and so into a failed step.
    if ctest_run "$BUILD" "$LOGDIR/memcheck.log" -T memcheck -L memcheck -j "$JOBS"; then
        record "valgrind" ok
    else
        record "valgrind" FAILED
        for f in "$BUILD"/Testing/Temporary/MemoryChecker.*.log; do
            if [ -s "$f" ]; then
                echo "--- $f"
                head -n 150 "$f"
            fi
        done
    fi
else
    record "build" FAILED
    record "tests" "not run (build failed)"
    record "valgrind" "not run (build failed)"
fi

section "5/7 sanitizers ($BUILD_ASAN, ASan + UBSan, -Werror)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if build "$BUILD_ASAN" -DCMAKE_BUILD_TYPE=Debug -DMW_SANITIZE=ON; then
    record "build (sanitizers)" ok
    if ctest_run "$BUILD_ASAN" "$LOGDIR/ctest-asan.log" -j "$JOBS"; then
        record "tests (sanitizers)" ok
    else
        record "tests (sanitizers)" FAILED
    fi
else
    record "build (sanitizers)" FAILED
    record "tests (sanitizers)" "not run (build failed)"
fi

section "6/7 fuzzing (tests/fuzz/run.sh, ${FUZZ_SECONDS:-20} s per target)"
if FUZZ_SECONDS="${FUZZ_SECONDS:-20}" FUZZ_JOBS="$JOBS" bash "$ROOT/tests/fuzz/run.sh" </dev/null; then
    record "fuzzing" ok
else
    record "fuzzing" FAILED
fi

section "7/7 quickstart (deploy/quickstart.sh --no-run)"
if MW_BUILD_DIR="${MW_RELEASE_BUILD_DIR:-$ROOT/build-release}" \
        bash "$ROOT/deploy/quickstart.sh" --no-run </dev/null; then
    record "quickstart --no-run" ok
else
    record "quickstart --no-run" FAILED
fi

section "summary"
for s in "${STEPS[@]}"; do
    echo "  $s"
done
echo "  time: $((SECONDS - START)) s"
if [ "$STEP_FAILED" -gt 0 ] && [ "$TESTS_FAILED" -eq 0 ]; then
    #  A step failed without a failing test (a build error): count it.
    TESTS_FAILED=$STEP_FAILED
fi
echo "$TESTS_PASSED passed, $TESTS_FAILED failed"
[ "$STEP_FAILED" -eq 0 ] && [ "$TESTS_FAILED" -eq 0 ]
