#!/usr/bin/env bash
# The front <-> daemon hop alone, by transport (issue 8): Unix socketpair (what
# oxwsgi uses) vs a shared page + futex, vs spinning before the futex.
#   bench/hop/run.sh            # ~1 min; prints one line per case
# Every case is bounded by `timeout`; the program forks its own daemons and
# reaps them (no network, nothing left behind).
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
HOP=target/release/hop
run() { timeout 120 "$HOP" "$@"; }
echo "# one pair, free to run on any CPU"
for t in socket futex; do run $t --round-trips 50000; done
echo "# one pair, both processes on CPU 0 (taskset -c 0)"
for t in socket futex; do timeout 120 taskset -c 0 "$HOP" $t --round-trips 50000; done
echo "# 15 pairs (one process's slots), 5 us of work per message"
for t in socket futex spin; do run $t --pairs 15 --round-trips 20000 --work-us 5; done
echo "# 30 pairs (2 processes x 15), 5 us of work per message"
for t in socket futex; do run $t --pairs 30 --round-trips 10000 --work-us 5; done
