#!/usr/bin/env bash
# Benchmark of `portsentry report` (issue 13): a history of N lines (default 1,000,000) and
# an events file of N/10 lines, summarised as text, as JSON and with the HTML page. Prints,
# for each, the wall time, CPU time and peak RSS (/usr/bin/time). Needs python3 and
# /usr/bin/time; no root, no network. Run from anywhere:
#
#   bench/report.sh
#   N=3000000 bench/report.sh        # memory must not grow with N
#   SOURCES=1000000 bench/report.sh  # one distinct source per line (a forged flood)
#
# The history holds SOURCES distinct sources (default 5,000: more than the 4,096 counted
# exactly, so the approximate path runs too) over 30 days, ports from a list of 40.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-1000000}
SOURCES=${SOURCES:-5000}
BIN=${BIN:-target/release/portsentry}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

[ -x "$BIN" ] || cargo build --release --quiet

python3 - "$DIR" "$N" "$SOURCES" <<'EOF'
import sys, time, json, random
d, n, sources = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(13)
end = int(time.time())
start = end - 30 * 86400
ports = [22, 23, 25, 53, 80, 110, 111, 135, 137, 139, 143, 161, 389, 443, 445, 512, 513,
         514, 993, 995, 1080, 1433, 1521, 2049, 3128, 3306, 3389, 5432, 5900, 6000, 6379,
         8000, 8080, 8443, 9200, 11211, 27017, 31337, 40421, 65535]
with open(d + "/portsentry.history", "w") as h:
    for i in range(n):
        t = start + i * (30 * 86400) // n
        s = random.randrange(sources)
        if s % 4 == 3:
            ip = "2001:db8:%x:%x::%x" % (s >> 16 & 0xffff, s >> 8 & 0xff, s & 0xff)
        else:
            ip = "198.%d.%d.%d" % (18 + (s >> 16 & 1), s >> 8 & 0xff, s & 0xff)
        p = ports[min(random.randrange(40), random.randrange(40))]
        proto = "UDP" if p in (53, 137, 161) else "TCP"
        lt = time.localtime(t)
        h.write("%d - %02d/%02d/%04d %02d:%02d:%02d Host: %s/%s Port: %d %s Blocked\n" % (
            t, lt.tm_mon, lt.tm_mday, lt.tm_year, lt.tm_hour, lt.tm_min, lt.tm_sec, ip, ip, p, proto))
kinds = ["syn", "fin", "xmas", "null", "ack", "udp", "connect"]
with open(d + "/events.jsonl", "w") as e:
    for i in range(n // 10):
        t = start + i * (30 * 86400) // (n // 10)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(t))
        e.write(json.dumps({"time": ts, "event": "detection", "source": "198.51.100.7",
                            "port": 22, "proto": "tcp", "mode": "stcp",
                            "kind": kinds[i % 7], "action": "block", "result": None,
                            "reason": None}) + "\n")
with open(d + "/portsentry.conf", "w") as c:
    c.write('HISTORY_FILE="%s/portsentry.history"\nEVENTS_FILE="%s/events.jsonl"\n' % (d, d))
EOF

echo "history: $(wc -l < "$DIR/portsentry.history") lines, $(du -h "$DIR/portsentry.history" | cut -f1); events: $(wc -l < "$DIR/events.jsonl") lines; $SOURCES distinct sources"
for what in text json html; do
    case $what in
        text) args=() ;;
        json) args=(--json) ;;
        html) args=(--html "$DIR/report.html") ;;
    esac
    /usr/bin/time -f "%e %U %M" -o "$DIR/time" "$BIN" report -c "$DIR/portsentry.conf" "${args[@]}" \
        > "$DIR/out.$what" 2>/dev/null
    read -r wall user rss < "$DIR/time"
    printf '%-5s %6.2f s wall, %6.2f s CPU, peak RSS %6.1f MB\n' "$what" "$wall" "$user" "$(echo "$rss / 1024" | bc -l)"
done
echo "records counted: $(grep -m1 '^  records ' "$DIR/out.text" | awk '{print $2}'); html page: $(du -h "$DIR/report.html" | cut -f1)"
