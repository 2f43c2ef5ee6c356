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

# JupyterHub's proxy (miqa-nb hub): configurable-http-proxy is Node.js, from npm, into
# .venv/node (miqa_nb.hub.find_proxy looks there). Skipped with a note without npm.
proxy_version="^5.0"
proxy=.venv/node/node_modules/.bin/configurable-http-proxy
proxy_stamp=.venv/node/.miqa-nb-proxy
if [ ! -x "$proxy" ] || [ "$(cat "$proxy_stamp" 2>/dev/null)" != "$proxy_version" ]; then
    if command -v npm >/dev/null 2>&1; then
        echo "setup: installing configurable-http-proxy (JupyterHub's proxy) into .venv/node"
        mkdir -p .venv/node
        log=.venv/npm-install.log
        if ! npm install --prefix .venv/node --no-audit --no-fund --loglevel=error \
                "configurable-http-proxy@$proxy_version" >"$log" 2>&1; then
            tail -n 40 "$log" >&2
            echo "setup: npm failed; the whole log is in $log" >&2
            exit 1
        fi
        echo "$proxy_version" > "$proxy_stamp"
    else
        echo "setup: npm not found: \`miqa-nb hub\` and its tests need configurable-http-proxy;" \
             "install Node.js and npm (apt-get install nodejs npm) and run setup again" >&2
    fi
fi
