#!/usr/bin/env bash
# Flood benchmark of issue 23, side by side with Debian's portsentry 1.2 (prints figures; not a
# timed test). Root, from the repository:
#
#   bench/flood.sh                       # 10 s floods asked at 200,000/s, all four shapes
#   bench/flood.sh --secs 5 --shapes all4,range6 --reps 3
#
# Builds the release daemon and the sender (examples/forge.rs), then runs bench/flood.py (its
# docstring says what is measured). The older 1,000,000-source -sudp run is bench/flood-million.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin portsentry --example forge
exec python3 bench/flood.py "$@"
