#!/usr/bin/env bash
# The test command: set everything up, then run the test suite (real data, real solver).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
