#!/usr/bin/env bash
# Benchmark of issue 4 (prints figures; not a timed test). Run as root from the repository:
#
#   bench/nft-blocks.sh                  # N=100000 (half IPv4, half IPv6), N_IPT=2000
#   N=20000 N_IPT=500 bench/nft-blocks.sh
#   STALL=0.5 QUICK=1 bench/nft-blocks.sh   # the daemon stopped (SIGSTOP) for the first 0.5 s
#                                        # of the flood, as a busy machine may; nft part only
#
# In two namespaces made here (a target running `portsentry -udp` and a scanner joined by a
# veth; 198.18.0.0/15 and 2001:db8:1::/64, benchmark/documentation ranges, on-link on both
# sides), N distinct spoofed sources each send one UDP datagram to a watched port (raw
# sockets, bench/probe.py). Printed: blocks/s, daemon peak RSS, what reached the set, the
# history and the blocked file; then the same with KILL_ROUTE="iptables -I INPUT -s $TARGET$
# -j DROP" for N_IPT sources; the idle probe-to-element latency; and the TCP connect rate of
# an unblocked host with no blocks, with 10,000 set elements and with 10,000 iptables rules.
# Every loop is bounded in count and time; namespaces and files are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
N_IPT=${N_IPT:-2000}
RATE=${RATE:-60000}          # datagrams/s the sender aims at (it may manage less); the
                             # daemon records what it reads, the rest is counted as lost
STALL=${STALL:-0}            # seconds the daemon is stopped from the first datagram on: what
                             # the receive buffers must hold (0: not stopped)
QUICK=${QUICK:-0}            # 1: the nftables flood only (no latency, iptables, connect rate)
PORT=5555
LISTEN=8080
BIN=${BIN:-target/release/portsentry}
ID=$$
T=pbt$ID
S=pbs$ID
DIR=$(mktemp -d)
NAME=nft-blocks
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_start ip nft python3 iptables iptables-restore

bench_netns "$T" "$S" "$ID"
ip -n "$T" addr add 198.18.0.1/15 dev vt$ID
ip -n "$S" addr add 198.18.0.2/15 dev vs$ID
ip -n "$T" addr add 2001:db8:1::1/64 dev vt$ID nodad
ip -n "$S" addr add 2001:db8:1::2/64 dev vs$ID nodad
# The target never answers the spoofed sources (no banner), so it needs no neighbours.
bench_neigh 198.18.0.1 2001:db8:1::1

# A syslog sink that counts and discards (the daemon's logging cost is real, the disk is not).
python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(1.0)
t0 = time.monotonic()
while time.monotonic() - t0 < 3600:
    try: s.recv(8192)
    except socket.timeout: pass
' "$DIR/log" &
KILL_PIDS+=($!)
sleep 0.3

config() { # $1: extra lines
    printf '0.0.0.0\n127.0.0.1\n' >"$DIR/ignore"
    cat >"$DIR/conf" <<EOF
UDP_PORTS="$PORT"
BLOCK_UDP="1"
IGNORE_FILE="$DIR/ignore"
HISTORY_FILE="$DIR/history"
BLOCKED_FILE="$DIR/blocked"
HOSTS_DENY_FILE="$DIR/hosts.deny"
# Block throughput is measured: the forged sources share few prefixes, which the per-prefix
# block budget (on by default since issue 24) would refuse after 16 each.
BLOCK_PREFIX_BUDGET="0"
$1
EOF
    rm -f "$DIR/history" "$DIR/blocked.udp"
}

start() {
    ip netns exec "$T" "$BIN" -udp -c "$DIR/conf" --pidfile "$DIR/pid" --syslog-socket "$DIR/log" 2>/dev/null
}

stop() {
    local pid
    pid=$(cat "$DIR/pid")
    kill "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
}

# utime + stime of a process in ms (clock ticks of 1/100 s on Linux).
cpu_ms() { awk '{ print ($14 + $15) * 10 }' "/proc/$1/stat"; }

lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

# Wait until `$1` (a counting command) reaches $2 or stops growing for ~5 s (bounded: 3000
# polls, $4 s apart, default 0.1). Prints "count seconds" (seconds since $3, a start time
# from `date +%s.%N`, to the poll that first saw the final count; a poll of a
# 100,000-element set takes ~0.5 s, a count of history lines a few ms).
wait_count() {
    local count=$1 want=$2 t0=$3 gap=${4:-0.1} n=0 last=-1 tend now
    tend=$(date +%s.%N)
    for _ in $(seq 3000); do
        n=$($count)
        now=$(date +%s.%N)
        if [ "$n" != "$last" ]; then
            last=$n
            tend=$now
        elif awk -v a="$now" -v b="$tend" 'BEGIN { exit !(a - b > 5) }'; then
            break
        fi
        [ "$n" -ge "$want" ] && break
        sleep "$gap"
    done
    echo "$n $(awk -v a="$tend" -v b="$t0" 'BEGIN { print a - b }')"
}

elements() { ip netns exec "$T" nft list set inet portsentry "$1" | grep -Eo '(198\.1[89]\.[0-9.]+|2001:db8:1::[0-9a-f:]+)' | sort -u | wc -l; }
set_total() { echo $(($(elements blocked4) + $(elements blocked6))); }
history_total() { lines "$DIR/history"; }
rule_total() { ip netns exec "$T" iptables -S INPUT | grep -c -- '-j DROP' || true; }

flood() { # family base count destination [start: a `date +%s.%N` value]
    ip netns exec "$S" python3 bench/probe.py flood "$2" "$3" "$4" "$PORT" "$RATE" 120 ${5:+"$5"}
}

# A start time $1 seconds from now, for floods that first build their datagrams.
later() { awk -v t="$(date +%s.%N)" -v d="$1" 'BEGIN { printf "%.6f", t + d }'; }

echo "== nftables: $N sources ($((N / 2)) IPv4 + $((N - N / 2)) IPv6), BLOCK_METHOD=nftables"
config 'BLOCK_METHOD="nftables"'
start
pid=$(cat "$DIR/pid")
# Both senders build their datagrams first and start sending at t0 (python needs ~1 s to
# build 50,000 IPv6 datagrams on a busy core; if it needed longer, t0 would be early and
# the rate lower, never higher). The time counted ends when the history file has all N
# lines: a line is written only after the kernel took the element into the set (the set
# and the blocked file are counted afterwards).
t0=$(later 2.5)
flood 4 198.18.16.0 $((N / 2)) 198.18.0.1 "$t0" &
f4=$!
flood 6 2001:db8:1::1:0 $((N - N / 2)) 2001:db8:1::1 "$t0" &
f6=$!
if awk -v s="$STALL" 'BEGIN { exit !(s > 0) }'; then
    # Bounded: one stop, one continue, STALL seconds apart.
    (
        sleep "$(awk -v t="$t0" -v n="$(date +%s.%N)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')"
        kill -STOP "$pid"
        sleep "$STALL"
        kill -CONT "$pid"
    ) &
    stall=$!
    KILL_PIDS+=("$stall")
fi
wait $f4 $f6
[ -n "${stall:-}" ] && { wait "$stall"; bench_forget "$stall"; kill -CONT "$pid"; }
read -r hist secs < <(wait_count history_total "$N" "$t0" 0.01)
got=$(set_total)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
cpu=$(cpu_ms "$pid")
runq=$(awk '{ printf "%d", $2 / 1000000 }' "/proc/$pid/schedstat")
lost=$(ip netns exec "$T" nstat -azs UdpRcvbufErrors Udp6RcvbufErrors | awk '$2 ~ /^[0-9]+$/ { n += $2 } END { print n + 0 }')
e4=$(elements blocked4)
e6=$(elements blocked6)
printf 'history %d of %d lines %.2f s after the first datagram: %.0f blocks/s; in the set %d (%d IPv4 + %d IPv6), blocked file %d lines; peak RSS %d MB; daemon CPU %d ms (%.1f us per block), %d ms runnable but waiting for a CPU\n' \
    "$hist" "$N" "$secs" "$(awk -v a="$hist" -v b="$secs" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
    "$got" "$e4" "$e6" "$(lines "$DIR/blocked.udp")" "$((rss / 1024))" "$cpu" \
    "$(awk -v a="$cpu" -v b="$got" 'BEGIN { print b ? a * 1000 / b : 0 }')" "$runq"
echo "datagrams lost to a full receive buffer (the daemon was slower than the flood): $lost"
rcvbuf=$(ip netns exec "$T" ss -uamnH "sport = :$PORT" | grep -o 'rb[0-9]*' | sort -u | tr '\n' ' ')
echo "the daemon's UDP sockets on port $PORT (ss -m): ${rcvbuf:-none}(stopped for the first ${STALL} s)"
if [ "$QUICK" = 1 ]; then
    exit 0
fi

echo "== idle latency, probe to element in the set (nft monitor), 40 probes"
ip netns exec "$S" python3 bench/probe.py latency 198.19.200.0 40 198.18.0.1 "$PORT" "$T"
stop
ip netns exec "$T" nft delete table inet portsentry

echo "== iptables: $N_IPT IPv4 sources, KILL_ROUTE=\"iptables -I INPUT -s \$TARGET\$ -j DROP\""
config 'KILL_ROUTE="iptables -I INPUT -s $TARGET$ -j DROP"'
start
pid=$(cat "$DIR/pid")
t0=$(date +%s.%N)
flood 4 198.18.16.0 "$N_IPT" 198.18.0.1
read -r got secs < <(wait_count rule_total "$N_IPT" "$t0")
rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
printf 'iptables rules: %d of %d in %.2f s: %.0f blocks/s; history %d lines; peak RSS %d MB\n' \
    "$got" "$N_IPT" "$secs" "$(awk -v a="$got" -v b="$secs" 'BEGIN { print a / b }')" "$(lines "$DIR/history")" "$((rss / 1024))"
stop
ip netns exec "$T" iptables -F INPUT

echo "== cost to legitimate traffic: TCP connects/s from an unblocked host, 3 s each"
ip netns exec "$T" python3 bench/probe.py listen "$LISTEN" 60 &
lpid=$!
sleep 0.5
rate() { ip netns exec "$S" python3 bench/probe.py connrate 198.18.0.2 198.18.0.1 "$LISTEN" 3; }
printf 'no blocks:              '; rate
config 'BLOCK_METHOD="nftables"'
start
python3 - "$DIR/add.nft" <<'EOF'
import sys
with open(sys.argv[1], "w") as f:
    f.write("add element inet portsentry blocked4 { "
            + ", ".join("198.19.%d.%d" % (i // 250, 1 + i % 250) for i in range(10000)) + " }\n")
EOF
ip netns exec "$T" nft -f "$DIR/add.nft"
printf '10,000 set elements:    '; rate
stop
ip netns exec "$T" nft delete table inet portsentry
{
    echo '*filter'
    for i in $(seq 0 9999); do echo "-A INPUT -s 198.19.$((i / 250)).$((1 + i % 250)) -j DROP"; done
    echo 'COMMIT'
} | ip netns exec "$T" iptables-restore
printf '10,000 iptables rules:  '; rate
kill "$lpid" 2>/dev/null || true
