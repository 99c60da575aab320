#!/usr/bin/env bash
# Benchmark of issue 5, item 1 (prints figures; not a timed test). Run as root from the
# repository:
#
#   bench/flood-million.sh                 # N=1000000 forged sources, 5 real probes, -sudp
#   N=200000 bench/flood-million.sh
#   MODE=stcp bench/flood-million.sh       # forged TCP SYNs at portsentry -stcp (BLOCK_TCP="0")
#
# In two namespaces made here (a target running `portsentry -sudp` with BLOCK_UDP="0", and a
# scanner joined by a veth), the scanner sends one UDP datagram to a watched port from each of
# N distinct forged IPv6 sources in 2001:db8:3::/64 (a prefix assigned to the scanner
# namespace; raw socket, bench/probe.py burst), as fast as it can. While the flood runs, 5
# real probes go out from addresses in other prefixes (3 from 198.51.100.0/24, 2 from
# 2001:db8:2::/64). Printed: the daemon's peak RSS and CPU time, packets sent / received by
# the target's veth / lost in the capture ring (the daemon's own count), for each real probe
# the time from its send to its log line (a fake syslog socket timestamps each line on
# receipt), the history file's size and lines, and the rate-limit summary lines.
# Every loop is bounded in count and time; namespaces and files are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
MODE=${MODE:-sudp}             # sudp or stcp
MAXSECS=${MAXSECS:-60}         # the flood stops after this long whatever happens
PORT=7
BIN=${BIN:-target/release/portsentry}
ID=$$
T=pft$ID
S=pfs$ID
case $MODE in
    sudp) PROTO=udp; KEYS="UDP_PORTS=\"7\"
BLOCK_UDP=\"0\"" ;;
    stcp) PROTO=tcp; KEYS="TCP_PORTS=\"7\"
BLOCK_TCP=\"0\"" ;;
    *) echo "flood: MODE is sudp or stcp" >&2; exit 1 ;;
esac
DIR=$(mktemp -d)
NAME=flood
# shellcheck source=bench/lib.sh
. bench/lib.sh

bench_start ip python3 awk

REAL=(198.51.100.10 2001:db8:2::10 198.51.100.11 2001:db8:2::11 198.51.100.12)
bench_netns "$T" "$S" "$ID"
ip -n "$T" addr add 198.51.100.1/24 dev vt$ID
ip -n "$T" addr add 2001:db8:2::1/64 dev vt$ID nodad
ip -n "$S" addr add 198.51.100.2/24 dev vs$ID
ip -n "$S" addr add 2001:db8:2::2/64 dev vs$ID nodad
ip -n "$S" addr add 2001:db8:3::1/64 dev vs$ID nodad
for a in "${REAL[@]}"; do
    case $a in
        *:*) ip -n "$S" addr add "$a/64" dev vs$ID nodad ;;
        *) ip -n "$S" addr add "$a/24" dev vs$ID ;;
    esac
done
bench_neigh 198.51.100.1 2001:db8:2::1

python3 bench/probe.py sink "$DIR/log" "$DIR/syslog" 3600 &
KILL_PIDS+=($!)
for _ in $(seq 50); do [ -S "$DIR/log" ] && break; sleep 0.05; done

: >"$DIR/ignore"
cat >"$DIR/conf" <<EOF
$KEYS
IGNORE_FILE="$DIR/ignore"
HISTORY_FILE="$DIR/history"
BLOCKED_FILE="$DIR/blocked"
EOF
ip netns exec "$T" "$BIN" -$MODE -c "$DIR/conf" --pidfile "$DIR/pid" --syslog-socket "$DIR/log" 2>/dev/null
pid=$(cat "$DIR/pid")
started=$(date +%s)

rx() { ip netns exec "$T" cat "/sys/class/net/vt$ID/statistics/rx_packets"; }
rx0=$(rx)

echo "== $N forged IPv6 sources (2001:db8:3::/64) -> [2001:db8:2::1]:$PORT/$PROTO, portsentry -$MODE, log only"
ip netns exec "$S" python3 bench/probe.py burst 2001:db8:3::1:0 "$N" 2001:db8:2::1 "$PORT" "$MAXSECS" "$PROTO" >"$DIR/flood.out" &
FLOOD_PID=$!
KILL_PIDS+=("$FLOOD_PID")
# Real probes: one every ~0.6 s from 0.5 s on, each only while the flood still runs.
sleep 0.5
: >"$DIR/real"
for a in "${REAL[@]}"; do
    kill -0 "$FLOOD_PID" 2>/dev/null || { echo "flood ended before the probe from $a" >&2; break; }
    case $a in *:*) dst=2001:db8:2::1 ;; *) dst=198.51.100.1 ;; esac
    echo "$a $(ip netns exec "$S" python3 bench/probe.py real "$a" "$dst" "$PORT" "$PROTO")" >>"$DIR/real"
    sleep 0.6
done
wait "$FLOOD_PID" || true
bench_forget "$FLOOD_PID"
rx1=$(rx)
sent=$(awk '{print $2}' "$DIR/flood.out")
secs=$(awk '{print $4}' "$DIR/flood.out")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
cpu=$(awk '{ print ($14 + $15) * 10 }' "/proc/$pid/stat")

# Each real probe's log line (5 s at most after the flood).
for _ in $(seq 100); do
    all=1
    while read -r a _; do
        grep -q "scan from host: $a/$a " "$DIR/syslog" || all=0
    done <"$DIR/real"
    [ $all = 1 ] && break
    sleep 0.05
done
echo "sent $sent in $secs s; received by the target's veth $((rx1 - rx0)); daemon peak RSS $((hwm / 1024)) MB (VmHWM $hwm kB); daemon CPU $cpu ms"
n=0
while read -r a t; do
    n=$((n + 1))
    l=$( (grep -m1 "scan from host: $a/$a " "$DIR/syslog" || true) | awk '{print $1}')
    if [ -n "$l" ]; then
        printf 'real probe %d from %s: logged %.1f ms after it was sent\n' "$n" "$a" "$(awk -v a="$l" -v b="$t" 'BEGIN { print (a - b) * 1000 }')"
    else
        echo "real probe $n from $a: NOT logged"
    fi
done <"$DIR/real"

# The rate-limit summary comes once per 10 s; the capture-loss line once a minute from the
# start, and only when something was lost (bounded waits: 15 s and 65 s).
for _ in $(seq 150); do grep -q "Rate limit: " "$DIR/syslog" && break; sleep 0.1; done
if [ -z "${NO_LOSS_WAIT:-}" ]; then
    until [ $(($(date +%s) - started)) -ge 64 ]; do sleep 1; done
fi
lost=$( (grep -o 'lost [0-9]* packets* in the ring' "$DIR/syslog" || true) | awk '{ n += $2 } END { print n + 0 }')
echo "lost in the capture ring: $lost (the daemon's count$([ -n "${NO_LOSS_WAIT:-}" ] && echo ', not waited for'))"
size=$([ -f "$DIR/history" ] && stat -c %s "$DIR/history" || echo 0)
hl=$([ -f "$DIR/history" ] && wc -l <"$DIR/history" || echo 0)
echo "history file: $size bytes, $hl lines; syslog: $(grep -c 'scan from host' "$DIR/syslog" || true) detection lines, $(wc -l <"$DIR/syslog") in all"
echo "rate-limit summaries:"
(grep -E "Rate limit: " "$DIR/syslog" || true) | cut -d' ' -f2- | sed 's/^/  /'
kill -0 "$pid" 2>/dev/null && echo "daemon alive" || echo "DAEMON GONE"
