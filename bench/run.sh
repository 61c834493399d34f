#!/usr/bin/env bash
# oxwsgi's side-by-side benchmark (issue 8): one command.
#
#   bench/run.sh                 full run: 3 alternating rounds of every workload
#                                on every server (~15 min on 2 cores); rewrites the
#                                results part of docs/benchmarks.md and docs/bench/*.png
#   bench/run.sh --quick         1 round of 3 s runs -> bench/out/results.md
#   bench/run.sh --smoke         <= 60 s: hello64 on every server, 1 s each
#   bench/run.sh --only hello64,flask --servers oxwsgi,granian --rounds 5
#   bench/run.sh --help          every option
#
# What it does, in order (each step skipped when already done):
#   1. Debian packages: wrk, apache2, libapache2-mod-wsgi-py3 (apt-get; needs root)
#   2. bench/.venv from Debian's /usr/bin/python3 (the Python that Debian's mod_wsgi
#      embeds, so Apache can use the venv's Flask through python-home) with the
#      peers of bench/requirements.txt, and uWSGI when it builds
#   3. cargo build --release (skipped with OXWSGI_BIN=/path/to/oxwsgi)
#   4. bench/bench.py with the arguments given here
# All traffic goes to 127.0.0.1; every server is stopped by its PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${BENCH_VENV:-$ROOT/bench/.venv}
export PIP_DISABLE_PIP_VERSION_CHECK=1

for a in "$@"; do
    case "$a" in -h|--help) exec "${BENCH_PYTHON:-python3}" bench/bench.py --help ;; esac
done

need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
command -v apache2 >/dev/null || need_apt+=(apache2)
[ -e /usr/lib/apache2/modules/mod_wsgi.so ] || need_apt+=(libapache2-mod-wsgi-py3)
[ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3 python3-venv)
command -v ss >/dev/null || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> apt-get install ${need_apt[*]}"
    if [ "$(id -u)" != 0 ]; then
        echo "bench/run.sh: installing ${need_apt[*]} needs root" >&2
        exit 1
    fi
    apt-get update -qq
    # Debian would start the system Apache on port 80 after the install: the
    # bench runs its own, so keep it from starting.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

stamp=$VENV/.bench-requirements
want=$(cat bench/requirements.txt bench/requirements-uwsgi.txt | sha256sum | cut -c1-16)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> bench venv $VENV (Debian's /usr/bin/python3)"
    [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r bench/requirements.txt
    if ! timeout 600 "$VENV/bin/pip" install -q -r bench/requirements-uwsgi.txt; then
        echo "bench/run.sh: uWSGI did not build; its column will read n/a" >&2
    fi
    echo "$want" > "$stamp"
fi

if [ -n "${OXWSGI_BIN:-}" ]; then
    BIN=$OXWSGI_BIN
else
    echo "==> cargo build --release"
    cargo build --release --quiet
    # A private copy, so a rebuild by someone else during the run changes
    # nothing under the bench (the front loads the worker library from next
    # to its own executable).
    mkdir -p bench/out/bin
    cp target/release/oxwsgi target/release/liboxwsgi_worker.so bench/out/bin/
    BIN=$ROOT/bench/out/bin/oxwsgi
fi
[ -x "$BIN" ] || { echo "bench/run.sh: no oxwsgi binary at $BIN" >&2; exit 1; }

export BENCH_OXWSGI_BIN=$BIN BENCH_INVOKED_AS=bench/run.sh
exec "$VENV/bin/python" bench/bench.py "$@"
