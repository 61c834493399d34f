#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script):
#   scripts/test.sh
# Steps: test venv (.venv), cargo fmt --check, cargo build, cargo clippy,
# cargo test, then the Python tests (pytest tests/) against the debug binary.
# Exits non-zero on the first failing step. Prints the time of every step.
#
# Environment:
#   PYTHON      interpreter used to create .venv        (default: python3)
#   OXWSGI_BIN  the oxwsgi binary the e2e tests run      (default: target/debug/oxwsgi)
#   PYTEST_ARGS extra arguments for pytest, e.g. "-k corpus -x"
#   OXWSGI_CORPUS the HTTP request corpus directory (default, when it exists:
#               ../shared/corpus/http next to the project)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

T0=$(date +%s)
STEP_T=$T0
STEP_NAME=""
declare -a TIMINGS=()

step() {
    local now
    now=$(date +%s)
    if [ -n "$STEP_NAME" ]; then
        TIMINGS+=("$(printf '%5ss  %s' "$((now - STEP_T))" "$STEP_NAME")")
        echo "==> $STEP_NAME: done in $((now - STEP_T))s"
    fi
    STEP_NAME=$1
    STEP_T=$now
    if [ -n "$STEP_NAME" ]; then
        echo
        echo "==> $STEP_NAME"
    fi
}

summary() {
    local rc=$?
    local now
    now=$(date +%s)
    if [ -n "$STEP_NAME" ]; then
        TIMINGS+=("$(printf '%5ss  %s%s' "$((now - STEP_T))" "$STEP_NAME" "$([ $rc -ne 0 ] && echo '  (FAILED)')")")
    fi
    echo
    echo "==> timings"
    for t in "${TIMINGS[@]}"; do echo "$t"; done
    printf '%5ss  total\n' "$((now - T0))"
    if [ $rc -ne 0 ]; then
        echo "==> scripts/test.sh FAILED (exit $rc) in step: $STEP_NAME"
    else
        echo "==> scripts/test.sh: all steps passed"
    fi
}
trap summary EXIT

# Quiet, deterministic cargo output in logs.
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1

# ---------------------------------------------------------------- venv
step "python test environment (.venv)"
PYTHON=${PYTHON:-python3}
REQ=tests/requirements.txt
VENV=$ROOT/.venv
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when the requirements (or the venv's interpreter) changed.
WANT=$( { cat "$REQ"; "$VENV/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
STAMP=$VENV/.oxwsgi-test-requirements.sha256
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    "$VENV/bin/python" -m pip install --quiet --upgrade -r "$REQ"
    echo "$WANT" >"$STAMP"
else
    echo "requirements unchanged ($REQ), pip install skipped"
fi

# ---------------------------------------------------------------- Rust
step "cargo fmt --check"
cargo fmt --all --check

step "cargo build (debug, workspace)"
cargo build --workspace

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

# ---------------------------------------------------------------- Python
step "pytest tests (end-to-end, against the built binary)"
export OXWSGI_BIN=${OXWSGI_BIN:-$ROOT/target/debug/oxwsgi}
if [ ! -x "$OXWSGI_BIN" ]; then
    echo "OXWSGI_BIN=$OXWSGI_BIN is not an executable" >&2
    exit 1
fi
# The daemons under test run this venv's python (it has Flask, Django, numpy).
export OXWSGI_PYTHON=${OXWSGI_PYTHON:-$VENV/bin/python}
export PATH="$VENV/bin:$PATH"
# The HTTP/1.1 request corpus: tests/e2e/test_http_corpus.py skips when
# OXWSGI_CORPUS is unset and the corpus is not at its default place, and
# fails when OXWSGI_CORPUS names no directory. Point it at the corpus here
# whenever the corpus exists, so CI runs every case.
if [ -z "${OXWSGI_CORPUS:-}" ] && [ -d "$ROOT/../shared/corpus/http" ]; then
    OXWSGI_CORPUS=$(cd "$ROOT/../shared/corpus/http" && pwd)
    export OXWSGI_CORPUS
fi
echo "OXWSGI_CORPUS=${OXWSGI_CORPUS:-(unset: no corpus at $ROOT/../shared/corpus/http, the corpus tests skip)}"
set +e
# shellcheck disable=SC2086
"$VENV/bin/python" -m pytest tests -q -ra --durations=15 -p no:cacheprovider ${PYTEST_ARGS:-}
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "pytest collected no tests: that is a failure here" >&2
    exit 1
elif [ $rc -ne 0 ]; then
    exit $rc
fi

step ""
