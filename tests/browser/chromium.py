"""The Chromium the browser tests and ``benchmarks/bench_dashboard.py`` drive: Debian's
(installed by ``scripts/system-packages.sh``), or ``MIQA_NB_CHROMIUM``, headless."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("MIQA_NB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
