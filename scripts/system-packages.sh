#!/usr/bin/env bash
# Debian packages the browser tests need: Chromium at /usr/bin/chromium (Playwright
# drives it; its own browser download is not used). Idempotent: does nothing when
# Chromium is there. Needs root (CI runs as root); elsewhere it uses sudo if it can.
# Usage: bash scripts/system-packages.sh
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "system-packages: chromium already installed ($(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-packages: no apt-get here; install Chromium so that /usr/bin/chromium exists" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "system-packages: run as root (or install sudo) to install chromium" >&2
        exit 1
    fi
fi
echo "system-packages: installing chromium with apt-get (about 20 s)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium
test -x /usr/bin/chromium
echo "system-packages: $(/usr/bin/chromium --version 2>/dev/null || echo chromium installed)"
