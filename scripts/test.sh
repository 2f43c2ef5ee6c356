#!/usr/bin/env bash
# The whole test suite: set up, lint, check the layering, type-check, run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh   # Debian's chromium, PostgreSQL and npm, for the tests
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff";          ruff check miqa_nb tests benchmarks && ruff format --check --quiet miqa_nb tests benchmarks
echo "== import layers"; lint-imports
echo "== mypy";          mypy
echo "== pytest"
set +e
pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then echo "pytest collected no tests"; fi
exit "$status"
