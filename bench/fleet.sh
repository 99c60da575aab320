#!/usr/bin/env bash
# Benchmark of issue 12 (fleets through CrowdSec's LAPI; prints figures, not a timed test).
# Run as root from the repository, with crowdsec, crowdsec-firewall-bouncer, nft, nmap, curl
# and python3 installed (.ci/run installs them):
#
#   bench/fleet.sh
#
# It runs the ignored test `bench_fleet` of tests/e2e_fleet.rs on a release build. In
# namespaces made there (a LAPI namespace holding a bridge, hosts A, B and C running
# `portsentry -stcp` that push and pull every second, host D running Debian's
# crowdsec-firewall-bouncer polling every second, one scanner; addresses 203.0.113.0/24 and
# 2001:db8:113::/64 only inside them), Debian's crowdsec LAPI (SQLite) started by the test:
#
#   1. 20 scanners (10 v4, 10 v6) probe A one at a time, each at a random moment of the pull
#      interval. Printed: median and max from the probe to A's block line, to the element in
#      B's and C's fleet sets (`nft monitor` timestamps), and to crowdsec-firewall-bouncer's
#      set on D.
#   2. 10,000 raw SYNs from distinct forged IPv6 sources of one /64 (bench/probe.py burst) at
#      A. Printed: how many A blocked, when all were in the LAPI and in B's, C's and D's sets
#      (a host still lacking some after 180 s is named with how many), the CPU time of A's and
#      B's daemons and of the LAPI until then and over 30 s from the flood's start, A's RSS
#      and peak RSS, the number of alerts, and the fleet log lines.
#
# Every wait is bounded (30 s per scanner, 180 s for the flood); namespaces, daemons, the LAPI
# and the bouncer are stopped and removed by the test when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "fleet: run as root" >&2; exit 1; }
for tool in crowdsec cscli crowdsec-firewall-bouncer nft nmap curl python3; do
    command -v "$tool" >/dev/null || { echo "fleet: $tool is required" >&2; exit 1; }
done
echo "fleet benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
cargo test --release --test e2e_fleet bench_fleet -- --ignored --exact --nocapture --test-threads 1 2>&1 |
    grep -E "^(BENCH|[A-D]: |[a-d] lacks|test |thread|never happened)" || true
