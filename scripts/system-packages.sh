#!/usr/bin/env bash
# Debian packages the tests need: Chromium at /usr/bin/chromium (Playwright drives it;
# its own browser download is not used) and PostgreSQL's server programs
# (/usr/lib/postgresql/*/bin: the tests start their own server in a temporary folder),
# and Node.js with npm where npm is missing (scripts/setup.sh installs JupyterHub's
# proxy, configurable-http-proxy, with it). Idempotent: does nothing when all are there. Needs root (CI runs as root); elsewhere
# it uses sudo if it can.
# Usage: bash scripts/system-packages.sh
set -euo pipefail

want=()
[ -x /usr/bin/chromium ] || want+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || want+=(postgresql)
command -v npm >/dev/null 2>&1 || want+=(nodejs npm)  # JupyterHub's proxy comes from npm
if [ ${#want[@]} -eq 0 ]; then
    echo "system-packages: chromium ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)), PostgreSQL ($(ls /usr/lib/postgresql | tr '\n' ' ')) and npm $(npm --version) already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-packages: no apt-get here; install ${want[*]} (Chromium at /usr/bin/chromium, PostgreSQL's server)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "system-packages: run as root (or install sudo) to install ${want[*]}" >&2
        exit 1
    fi
fi
echo "system-packages: installing ${want[*]} with apt-get (about 30 s)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${want[@]}"
test -x /usr/bin/chromium
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
command -v npm >/dev/null
echo "system-packages: $(/usr/bin/chromium --version 2>/dev/null || echo chromium installed)"
