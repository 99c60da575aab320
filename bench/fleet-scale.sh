#!/usr/bin/env bash
# Benchmark of issue 20 (fleets at scale through CrowdSec's LAPI on SQLite and PostgreSQL;
# prints figures, not a timed test). Run as root from the repository, with crowdsec,
# postgresql, nft, nmap and curl installed (.ci/run installs them):
#
#   bench/fleet-scale.sh                      # N = 10,50,100,200 on sqlite and postgresql
#   FLEET_N=10,50 FLEET_DB=postgresql bench/fleet-scale.sh
#   FLEET_CLIENT=curl bench/fleet-scale.sh    # reference: N bare curl loops on the stream
#   FLEET_CLIENT=curl FLEET_CURL_URL='/v1/decisions?scopes=ip,range' bench/fleet-scale.sh
#       # the curl loops ask that path and query instead (default
#       # /v1/decisions/stream?dedup=false, the daemon's pull of what changed)
#   FLEET_DECISIONS=1000 bench/fleet-scale.sh  # that many decisions in force (origin cscli)
#       # before the fleet starts: does what a pull costs grow with them?
#   FLEET_CLIENT=curl FLEET_CURL_TOGETHER=1 bench/fleet-scale.sh  # the curl loops all start
#       # in one instant (requests in bursts of N) instead of spread over a second
#   FLEET_CLIENT=curl FLEET_CURL_MACHINES=1 bench/fleet-scale.sh  # registers a machine per
#       # host too, as a daemon run does
#   FLEET_CLIENT=curl FLEET_CURL_WITH_DAEMONS=1 bench/fleet-scale.sh  # and a daemon per host
#   FLEET_OTHERS=tcp bench/fleet-scale.sh   # hosts but the scanned one in -tcp (one capture per kernel)
#       # that pushes but never pulls: what the daemons' presence costs the LAPI
#   FLEET_PGBOUNCER=1 FLEET_DB=postgresql bench/fleet-scale.sh  # the LAPI through pgbouncer
#   FLEET_TRACE=/tmp/trace FLEET_DB=postgresql bench/fleet-scale.sh
#       # keeps PostgreSQL's log of every statement (parameters, end time in ms) with the
#       # bouncers and decisions tables: who pulled when, what each pull could see, why a
#       # host missed a ban (its CPU figures include that logging: not for the table),
#       # and on either database the LAPI's log at the end of the idle time (each request
#       # with the time it took) and the size of SQLite's write-ahead log
#
# It runs the ignored test `bench_fleet_scale` of tests/e2e_fleet.rs on a release build. For
# each database and each N: a LAPI namespace holding a bridge (10.77.0.0/16 and fd77::/64,
# only inside the namespaces), N host namespaces each running `portsentry -stcp` with its own
# machine and bouncer key, pulling every FLEET_INTERVAL (default 1) seconds, one scanner
# namespace; Debian's crowdsec LAPI, on SQLite or on a PostgreSQL cluster the test makes in
# the LAPI's namespace (initdb in a temp dir, Debian's defaults, fsync on).
#
# Printed per run (lines "BENCH fleet-scale"):
#   - while the fleet idles FLEET_IDLE_S (default 20) seconds: the LAPI's and the database's
#     CPU (% of a core, and per host), LAPI RSS, database PSS, the requests per second the
#     LAPI served (its Prometheus counter), the CPU one request costs (LAPI + database), the
#     new TCP connections, the requests by route, the LAPI's CPU in user space and in the
#     kernel, the pull interval at which LAPI + database would fill the cores,
#     the daemons' CPU and RSS (median, max);
#   - five scanners probe host 1 one at a time (each at a random moment of the interval);
#     `nft monitor` on every other host times the scanner's arrival in its fleet4 set:
#     median, p99, max, and how many never arrived within 10 s (each miss named, with when
#     it arrived later if it did); the LAPI's and database's CPU over the scans beyond the
#     idle rate, per scan (with FLEET_N=1: the cost of a push).
#
# Every wait is bounded; namespaces, daemons, the LAPI and PostgreSQL are stopped (by pid)
# and removed by the test when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "fleet-scale: run as root" >&2; exit 1; }
for tool in crowdsec cscli nft nmap curl; do
    command -v "$tool" >/dev/null || { echo "fleet-scale: $tool is required" >&2; exit 1; }
done
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ||
    { echo "fleet-scale: postgresql is required" >&2; exit 1; }
[ "${FLEET_PGBOUNCER:-0}" != 1 ] || [ -x /usr/sbin/pgbouncer ] ||
    { echo "fleet-scale: FLEET_PGBOUNCER=1 needs pgbouncer (apt-get install pgbouncer)" >&2; exit 1; }
echo "fleet-scale benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "N=${FLEET_N:-10,50,100,200} databases=${FLEET_DB:-sqlite,postgresql} interval=${FLEET_INTERVAL:-1}s client=${FLEET_CLIENT:-portsentry}${FLEET_CURL_URL:+ $FLEET_CURL_URL} pgbouncer=${FLEET_PGBOUNCER:-0} decisions=${FLEET_DECISIONS:-0}"
cargo test --release --test e2e_fleet bench_fleet_scale -- --ignored --exact --nocapture --test-threads 1 2>&1 |
    grep -E "^(BENCH|test |thread|never happened)" || true
