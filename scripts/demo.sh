#!/usr/bin/env bash
# The main job: set up, build the demo project from real images that packages ship,
# import it into a catalog, and serve the reviewer dashboard (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MIQA_NB_USER=${MIQA_NB_USER:-admin}
.venv/bin/miqa-nb --catalog demo/demo.duckdb demo --dir demo
# one-time sign-in links for the admin and a demo reviewer (tier 1) take a newcomer
# straight to the dashboard; they set a password there, or sign in with another link
exec .venv/bin/miqa-nb --catalog demo/demo.duckdb serve --link-for "$MIQA_NB_USER" --link-for ana "$@"
