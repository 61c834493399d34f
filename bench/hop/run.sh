#!/usr/bin/env bash
# The front <-> daemon hop alone, by transport (issue 8).
#   bench/hop/run.sh            # everything (~4 min on 2 busy cores)
#   bench/hop/run.sh slot       # only the old per-slot cases (socket / futex / spin)
#   bench/hop/run.sh channel    # only the channel-per-process cases, ROUNDS (3)
#                               # alternating rounds, then the medians
# Old design: one socketpair per slot (socket) vs a shared page + futex.
# New design (one channel per daemon process, many streams in flight): mux
# (batched socketpair; mux-combine: the daemon threads also combine their
# writes) vs ring (shared-memory rings; front woken by eventfd,
# as an async front must be) vs ring-futex (front woken by a futex: the best
# case for shared memory).
# Every case is bounded by `timeout`; the program forks its own daemons and
# reaps them (they also die with it: PR_SET_PDEATHSIG); no network.
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
HOP=$PWD/target/release/hop
run() { timeout 120 "$HOP" "$@"; }
what=${1:-all}

if [ "$what" = all ] || [ "$what" = slot ]; then
    echo "# one pair, free to run on any CPU"
    for t in socket futex; do run $t --round-trips 50000; done
    echo "# one pair, both processes on CPU 0 (taskset -c 0)"
    for t in socket futex; do timeout 120 taskset -c 0 "$HOP" $t --round-trips 50000; done
    echo "# 15 pairs (one process's slots), 5 us of work per message"
    for t in socket futex spin; do run $t --pairs 15 --round-trips 20000 --work-us 5; done
    echo "# 30 pairs (2 processes x 15), 5 us of work per message"
    for t in socket futex; do run $t --pairs 30 --round-trips 10000 --work-us 5; done
fi

if [ "$what" = all ] || [ "$what" = channel ]; then
    ROUNDS=${ROUNDS:-3}
    out=$(mktemp)
    trap 'rm -f "$out"' EXIT
    echo "# channel per daemon process: 2 daemons x 15 threads; ${ROUNDS} alternating rounds"
    echo "# (socket --pairs 30 = the old slot-per-thread transport, same 2 x 15 shape)"
    for r in $(seq "$ROUNDS"); do
        for w in 5 30; do
            if [ "$w" = 5 ]; then n=40000; else n=15000; fi
            for k in 19 15; do
                [ "$w" = 30 ] && [ "$k" = 15 ] && continue
                for t in mux mux-combine ring ring-futex; do
                    echo "round=$r case=w${w}k${k} $(run $t --daemons 2 --threads 15 --in-flight $k --round-trips $n --work-us $w)" | tee -a "$out"
                done
            done
            echo "round=$r case=w${w}slot $(run socket --pairs 30 --round-trips $((n / 15)) --work-us $w)" | tee -a "$out"
        done
    done
    echo "# medians over ${ROUNDS} rounds"
    python3 - "$out" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    case = re.search(r"case=(\S+)", line).group(1)
    name = line.split()[2]
    num = lambda pat: float(re.search(pat, line).group(1))
    rps = num(r"([\d.]+) (?:req|rt)/s")
    cpu = num(r"cpu +([\d.]+) us/")
    sw = num(r"switches +([\d.]+)/") + (num(r"invol +([\d.]+)/") if name in ("socket", "futex") else 0)
    wall = 1e6 / rps
    rows.setdefault((case, name), []).append((rps, wall, cpu, sw))
print("%-8s %-11s %9s %12s %12s %14s" % ("case", "transport", "req/s", "wall us/req", "cpu us/req", "switches/req"))
for (case, name), xs in rows.items():
    m = [statistics.median(c) for c in zip(*xs)]
    print("%-8s %-11s %9.0f %12.2f %12.2f %14.2f   (cpu runs: %s)" % (
        case, name, m[0], m[1], m[2], m[3], " ".join("%.2f" % x[2] for x in xs)))
PY
fi
