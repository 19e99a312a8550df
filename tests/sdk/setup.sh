#!/usr/bin/env bash
# Prepare the official Macrometa SDKs used by tests/sdk (test fixtures, pinned):
#   .cache/sdk/pyc8  a virtualenv with pyC8 (own venv: it pins websocket-client 0.57.0)
#   .cache/sdk/js    node_modules with jsc8, installed with `npm ci` from tests/sdk/js
# Idempotent: a part whose stamp matches its pinned inputs is left alone.
# Needs only python3, node and npm. Every step is bounded by a timeout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CACHE="${STREAMFW_SDK_CACHE:-$ROOT/.cache/sdk}"
PY="${PYTHON:-python3}"
STEP_TIMEOUT="${STREAMFW_SDK_SETUP_TIMEOUT:-600}"

say() { printf 'sdk-setup: %s\n' "$*"; }
bounded() { timeout --kill-after=10 "$STEP_TIMEOUT" "$@"; }
digest() { cat "$@" | sha256sum | cut -d' ' -f1; }

mkdir -p "$CACHE"
# One installer at a time (two test sessions may start together).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CACHE/.lock"
    flock -w "$STEP_TIMEOUT" 9 || { say "error: $CACHE/.lock held too long" >&2; exit 1; }
fi

# --- pyC8 ---------------------------------------------------------------------
PYENV="$CACHE/pyc8"
want="$(digest "$HERE/requirements-pyc8.txt")"
if [[ -x "$PYENV/bin/python" && "$(cat "$PYENV/.stamp" 2>/dev/null)" == "$want" ]]; then
    say "pyC8 venv up to date: $PYENV"
else
    say "creating pyC8 venv: $PYENV (from $("$PY" --version 2>&1))"
    rm -rf "$PYENV"
    if ! bounded "$PY" -m venv "$PYENV"; then
        say "error: '$PY -m venv' failed; on Debian/Ubuntu install python3-venv" >&2
        exit 1
    fi
    say "installing $HERE/requirements-pyc8.txt"
    bounded "$PYENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$HERE/requirements-pyc8.txt"
    bounded "$PYENV/bin/python" -c 'from importlib.metadata import version as v; print("sdk-setup: pyC8", v("pyC8"), "websocket-client", v("websocket-client"))'
    echo "$want" >"$PYENV/.stamp"
fi

# --- jsc8 ---------------------------------------------------------------------
JSDIR="$CACHE/js"
want="$(digest "$HERE/js/package.json" "$HERE/js/package-lock.json")"
if [[ -d "$JSDIR/node_modules/jsc8" && "$(cat "$JSDIR/.stamp" 2>/dev/null)" == "$want" ]]; then
    say "jsc8 modules up to date: $JSDIR"
else
    say "installing jsc8 with npm ci into $JSDIR (node $(node --version), npm $(npm --version))"
    rm -rf "$JSDIR"
    mkdir -p "$JSDIR"
    cp "$HERE/js/package.json" "$HERE/js/package-lock.json" "$JSDIR/"
    (cd "$JSDIR" && bounded npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    node -e 'const p=require(process.argv[1]); console.log("sdk-setup: jsc8", p.version)' \
        "$JSDIR/node_modules/jsc8/package.json"
    echo "$want" >"$JSDIR/.stamp"
fi

say "done: $CACHE"
