#!/usr/bin/env bash
# Makes doc/report.png, the README's picture of `portsentry report --html`: a generated week
# of 2,000 history records (30 sources, IPv4 and IPv6, skewed so the top lists have an
# order; a steady background and three bursts) with an event line for every 7th (scan kinds), the page rendered by headless
# Chromium (the same flags as tests/insight.rs) at a laptop's width.
# Needs: the release binary (built if missing), python3, chromium (apt-get install chromium).
# Usage: doc/screenshot.sh [OUTPUT.png]   (default doc/report.png)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-doc/report.png}
bin=target/release/portsentry
[ -x "$bin" ] || cargo build --release --bin portsentry
command -v chromium >/dev/null || { echo "screenshot.sh: chromium is missing" >&2; exit 1; }

tmp=$(mktemp -d /tmp/portsentry.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
end=1796043600 # 2026-11-30T13:00:00Z
python3 - "$tmp" "$end" <<'EOF'
import sys, time, json, random
d, end = sys.argv[1], int(sys.argv[2])
rng = random.Random(0xbee)
ports = [22, 23, 80, 443, 3389, 8080, 137, 161, 1433, 5900]
kinds = ["syn", "syn", "fin", "xmas", "null", "udp"]
n = 2000
with open(d + "/portsentry.history", "w") as h, open(d + "/events.jsonl", "w") as e:
    # Times: a steady background, heavier towards the end, and three bursts (scans).
    bursts = [end - 5 * 86400 - 7200, end - 2 * 86400 + 3600, end - 9 * 3600]
    times = sorted(
        rng.choice(bursts) + rng.randrange(5400) if rng.random() < 0.3
        else end - 7 * 86400 + int(7 * 86400 * rng.random() ** 0.6)
        for _ in range(n))
    for i in range(n):
        t = times[i]
        s = min(rng.randrange(30), rng.randrange(30))
        ip = f"198.51.{100 + s % 3}.{10 + s}" if s < 20 else f"2001:db8:{s % 4:x}::{s:x}"
        port = ports[min(rng.randrange(len(ports)), rng.randrange(len(ports)))]
        proto = "UDP" if port in (137, 161) else "TCP"
        stamp = time.strftime("%m/%d/%Y %H:%M:%S", time.gmtime(t))
        h.write(f"{t} - {stamp} Host: {ip}/{ip} Port: {port} {proto} Blocked\n")
        if i % 7 == 0:
            k = "udp" if proto == "UDP" else kinds[i % len(kinds)]
            if k == "udp" and proto == "TCP":
                k = "syn"
            iso = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime(t))
            e.write(json.dumps({"time": iso, "event": "detection", "source": ip, "port": port,
                                "proto": proto.lower(), "mode": "s" + proto.lower(), "kind": k,
                                "action": "block", "result": None, "reason": None},
                               separators=(",", ":")) + "\n")
EOF
printf 'HISTORY_FILE="%s"\nEVENTS_FILE="%s"\n' "$tmp/portsentry.history" "$tmp/events.jsonl" \
    >"$tmp/portsentry.conf"
TZ=UTC "$bin" report -c "$tmp/portsentry.conf" --since "@$((end - 7 * 86400))" --until "@$end" \
    --html "$tmp/report.html" >/dev/null
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$tmp/profile" --window-size=900,1300 \
    --screenshot="$tmp/report.png" "file://$tmp/report.html" 2>/dev/null
cp "$tmp/report.png" "$out"
echo "$out: $(stat -c %s "$out") bytes"
