# bench/lib.sh: what the benchmark scripts share. Sourced (bash), from the repository root,
# after the script has set NAME (for messages) and DIR (its scratch directory).
#
#   bench_start TOOL...     root and the tools, or exit; removes what bench_netns made and
#                           the processes in KILL_PIDS (and the daemon of $DIR/pid) on exit;
#                           builds the release binary unless BIN_PREBUILT is set
#   bench_netns T S ID      namespaces T (target) and S (scanner) joined by veth vtID/vsID,
#                           lo and the link up (addresses are the script's)
#   bench_forget PID        a process of KILL_PIDS has been waited for: not to be killed
#   bench_neigh ADDR...     static neighbour entries on the scanner for these target
#                           addresses (raw sends to a neighbour being resolved are queued
#                           three deep and the rest dropped)

KILL_PIDS=()
BENCH_NETNS=()

bench_cleanup() {
    [ -f "$DIR/pid" ] && kill "$(cat "$DIR/pid")" 2>/dev/null || true
    local p
    for p in "${KILL_PIDS[@]}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${BENCH_NETNS[@]}"; do
        ip netns del "$p" 2>/dev/null || true
    done
    rm -rf "$DIR"
}

bench_start() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$NAME: $tool is required" >&2; exit 1; }
    done
    [ "$(id -u)" = 0 ] || { echo "$NAME: run as root" >&2; exit 1; }
    trap bench_cleanup EXIT
    if [ -z "${BIN_PREBUILT:-}" ]; then
        cargo build --release --bin portsentry
    fi
}

bench_forget() {
    local keep=() p
    for p in "${KILL_PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    KILL_PIDS=("${keep[@]}")
}

bench_netns() {
    local t=$1 s=$2 id=$3
    ip netns add "$t"
    BENCH_NETNS+=("$t")
    ip netns add "$s"
    BENCH_NETNS+=("$s")
    ip link add "vt$id" netns "$t" type veth peer name "vs$id" netns "$s"
    ip -n "$t" link set lo up
    ip -n "$s" link set lo up
    ip -n "$t" link set "vt$id" up
    ip -n "$s" link set "vs$id" up
}

bench_neigh() {
    local mac a
    mac=$(ip -n "$T" link show "vt$ID" | awk '/ether/ {print $2}')
    for a in "$@"; do
        ip -n "$S" neigh replace "$a" lladdr "$mac" dev "vs$ID" nud permanent
    done
}
