#!/usr/bin/env bash
# Install everything miqa_nb needs into ./.venv (idempotent; quick when nothing changed).
# Usage: bash scripts/setup.sh [--system]   (--system: also Debian packages for browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.miqa-nb-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing Python packages (about a minute the first time)"
    log=.venv/pip-install.log
    if ! { .venv/bin/python -m pip install --upgrade pip &&
           .venv/bin/python -m pip install -e ".[test]"; } >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "setup: pip failed; the whole log is in $log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
