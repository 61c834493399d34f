#!/usr/bin/env bash
# Build oxwsgi (release) and run the two-apps example site on 127.0.0.1:8000.
#   scripts/run-example.sh
#   curl http://127.0.0.1:8000/api/wsgi/one/
#   curl http://127.0.0.1:8000/api/wsgi/two/
# Ctrl-C (SIGINT) stops the server gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."

# One workspace build gives both the front binary and, next to it, the worker
# extension the daemon processes load (target/release/liboxwsgi_worker.so).
cargo build --release

for f in target/release/oxwsgi target/release/liboxwsgi_worker.so; do
    if [ ! -e "$f" ]; then
        echo "run-example: $f is missing after 'cargo build --release'" >&2
        exit 1
    fi
done

# The example apps use only the standard library; their daemons run the
# default interpreter (OXWSGI_PYTHON if set, else python3 from PATH).
if [ "$(id -u)" = 0 ]; then
    # oxwsgi refuses to run applications as root unless told to; a real
    # site sets the top-level `user` instead (docs/design.md §3).
    echo "run-example: started as root: the example's apps run as root too (OXWSGI_ALLOW_ROOT=1)" >&2
    export OXWSGI_ALLOW_ROOT=1
fi
exec target/release/oxwsgi run examples/two-apps/oxwsgi.toml "$@"
