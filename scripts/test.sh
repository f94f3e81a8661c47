#!/usr/bin/env bash
# The test commands: set everything up, then run the tests (real data, real solver).
#
#   bash scripts/test.sh           # the fast tier: every module on tiny data and models (minutes)
#   bash scripts/test.sh --all     # everything: the fast tier and the slow one (real runs, a
#                                  # subprocess cluster, a kernel, a browser, the wheel)
#   bash scripts/test.sh --all -m slow   # the slow tier alone (what .ci/run adds after the fast one)
#
# Other arguments go to pytest. A test belongs to the slow tier by what it needs (the `slow`
# marker, pyproject.toml), not by how long it took once.
set -euo pipefail
cd "$(dirname "$0")/.."
tier=(-m "not slow")
if [ "${1:-}" = --all ]; then
  tier=()
  shift
fi
start=$(date +%s)
bash scripts/setup.sh
setup=$(( $(date +%s) - start ))
set +e
.venv/bin/python -m pytest -q "${tier[@]}" "$@"
status=$?
set -e
echo "== tests (${tier[*]:-all}${*:+ $*}): exit $status; setup ${setup} s, tests $(( $(date +%s) - start - setup )) s"
exit $status
