#!/usr/bin/env bash
# A/B of the `cpu-policy` group key (docs/benchmarks.md, "CPU policy of the
# daemons"): a fresh `oxwsgi run` per measurement, "normal" and "batch"
# alternating round by round; prints req/s, server CPU per request (front +
# daemons, utime + stime) and wrk's mean latency.
#   bench/policy_ab.sh                                  hello, 64 conns, 3 rounds
#   CONNS=256 ROUNDS=5 bench/policy_ab.sh
#   APP=bench/apps/flask_app.py URL=/ bench/policy_ab.sh
# Needs bench/.venv (bench/run.sh makes it), wrk and a release build.
# 127.0.0.1 only; every run is 6 s; the server is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${OXWSGI_BIN:-$ROOT/target/release/oxwsgi}
export OXWSGI_ALLOW_ROOT=1  # as the peers, run the apps as whoever starts the bench
APP=$(realpath "${APP:-bench/apps/app.py}")
URL=${URL:-/hello}
PORT=${PORT:-18090}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
WORK=$(mktemp -d)
FRONT=""
cleanup() { [ -n "$FRONT" ] && kill "$FRONT" 2>/dev/null && wait "$FRONT" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

cpu_ticks() { # the front and its daemons
    local pids="$1 $(pgrep -P "$1" | tr '\n' ' ')" p t=0
    for p in $pids; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$t"
}

for r in $(seq "$ROUNDS"); do
    for policy in normal batch; do
        cat >"$WORK/site.toml" <<TOML
listen = ["127.0.0.1:$PORT"]
access-log = false
[groups.g]
processes = 2
threads = 15
python = "$ROOT/bench/.venv/bin/python"
cpu-policy = "$policy"
[[mount]]
path = "/"
script = "$APP"
group = "g"
TOML
        "$BIN" run "$WORK/site.toml" >"$WORK/server.log" 2>&1 &
        FRONT=$!
        for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT$URL" && break; sleep 0.1; done
        wrk -t2 -c"$CONNS" -d1s "http://127.0.0.1:$PORT$URL" >/dev/null   # warm-up
        t0=$(cpu_ticks "$FRONT")
        out=$(wrk -t2 -c"$CONNS" -d5s --timeout 5s "http://127.0.0.1:$PORT$URL")
        t1=$(cpu_ticks "$FRONT")
        n=$(awk '/requests in/{print $1}' <<<"$out")
        hz=$(getconf CLK_TCK)
        echo "round $r cpu-policy=$policy req/s=$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
             "cpu_us/req=$(awk -v d=$((t1 - t0)) -v n="$n" -v hz="$hz" 'BEGIN{printf "%.1f", d * 1e6 / hz / n}')" \
             "mean_latency=$(awk '/Latency/{print $2}' <<<"$out")"
        kill "$FRONT"; wait "$FRONT" 2>/dev/null || true
        FRONT=""
    done
done
