# shellcheck shell=bash
# Shell shared by the package tests (tests/package.sh, tests/systemd.sh).
# Sourced, never run. The sourcing script sets TEST_NAME ("package test")
# first; this file sets REPO and CACHE_DIR and the counters.
#
# Output conventions: one "PASS: ..." or "FAIL: ..." line per check, then
# "N passed, M failed"; a missing prerequisite is a loud SKIP, and under
# CI=true a FAIL.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=$REPO/.cache
SUITE=bookworm

passed=0
failed=0
CHECK_PREFIX=""                    # put before each check's text, e.g. "[cap] "
pass() { echo "PASS: $CHECK_PREFIX$*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $CHECK_PREFIX$*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...: PASS if the command succeeds
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
# Runs a command with its output discarded (the PASS/FAIL line must stay).
quiet() { "$@" >/dev/null 2>&1; }
summary() {
    echo "$passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}
# Ends the test at once after a check that the rest depends on failed.
abort() {
    fail "$*"
    summary
    exit 1
}

# A missing prerequisite: loud, and a failure in CI, a skip elsewhere.
missing() {
    echo "=================================================================="
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $TEST_NAME cannot run: $*"
        echo "=================================================================="
        failed=$((failed + 1))
        summary
        exit 1
    fi
    echo "SKIP: $TEST_NAME not run: $*"
    echo "      (under CI=true this is a failure)"
    echo "=================================================================="
    echo "$passed passed, $failed failed, 1 skipped"
    exit 0
}

# require_tools TOOL...: root and every tool, or missing().
require_tools() {
    local tool
    [ "$(id -u)" = 0 ] || missing "it must run as root (debootstrap, namespaces, mounts)"
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing "'$tool' is not installed"
    done
    if [ -z "${PACKAGE_DEB:-}" ]; then
        cargo deb --version >/dev/null 2>&1 || missing "cargo-deb is not installed (cargo install cargo-deb)"
    fi
}

# Sets DEB to the package under test: $PACKAGE_DEB, or what `cargo deb`
# builds (its last output line is the path).
build_deb() {
    local out rc
    if [ -n "${PACKAGE_DEB:-}" ]; then
        DEB=$PACKAGE_DEB
        echo "== using $DEB"
        [ -f "$DEB" ] || abort "PACKAGE_DEB=$DEB is not a file"
    else
        echo "== building the package with cargo deb"
        out=$(cd "$REPO" && cargo deb 2>&1)
        rc=$?
        DEB=$(printf '%s\n' "$out" | grep '\.deb$' | tail -n 1)
        if [ $rc -ne 0 ] || [ ! -f "$DEB" ]; then
            printf '%s\n' "$out" | tail -n 30
            abort "cargo deb builds the package"
        fi
    fi
    pass "package built: $(basename "$DEB")"
}

# cached_root DIR INCLUDE [PREPARE]: a debootstrap --variant=minbase root of
# $SUITE with the packages INCLUDE (comma-separated) in DIR, reused between
# runs. It is built in DIR.tmp and renamed only when complete (after the
# function PREPARE, if given, ran with the new root as its argument), so an
# interrupted run never leaves a half-made cache. DIR/.recipe records what
# it was made from; a different recipe makes a new one.
#
# debootstrap gets no mirror argument: its built-in default chooses.
cached_root() {
    local dir=$1 include=$2 prepare=${3:-} recipe log
    recipe="$SUITE minbase include=$include prepare=$prepare ${CACHED_ROOT_RECIPE:-}"
    if [ -f "$dir/.recipe" ] && [ "$(cat "$dir/.recipe")" = "$recipe" ]; then
        return 0
    fi
    log=$CACHE_DIR/debootstrap-$(basename "$dir").log
    echo "== debootstrap --variant=minbase --include=$include $SUITE into $dir (cached for later runs)"
    mkdir -p "$CACHE_DIR"
    rm -rf --one-file-system "$dir.tmp"
    if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$dir.tmp" >"$log" 2>&1; then
        tail -n 20 "$log"
        rm -rf --one-file-system "$dir.tmp"
        echo "debootstrap $SUITE failed (log: $log)" >&2
        return 1
    fi
    if [ -n "$prepare" ] && ! "$prepare" "$dir.tmp" >>"$log" 2>&1; then
        tail -n 20 "$log"
        rm -rf --one-file-system "$dir.tmp"
        echo "preparing $dir failed (log: $log)" >&2
        return 1
    fi
    echo "$recipe" >"$dir.tmp/.recipe"
    rm -rf --one-file-system "$dir"
    mv "$dir.tmp" "$dir"
}

# Seconds since $1 (an $EPOCHREALTIME), one decimal.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
