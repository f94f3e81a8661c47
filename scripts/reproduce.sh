#!/usr/bin/env bash
# The main job: set up, reproduce every experiment, render the book.
#
#   bash scripts/reproduce.sh              # reuse the committed full-precision checkpoints
#   RETRAIN=1 bash scripts/reproduce.sh    # retrain them first (about 2 h on 2 cores)
#
# Every expensive step (search, QAT run, ...) is cached under cache/full keyed by its
# parameters: an interrupted run resumes where it stopped. MPQ_WORKERS=N spreads the steps
# over N local processes (`mpq study run --cluster ADDRESS` over a running Dask cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh
if [ "${RETRAIN:-0}" = 1 ]; then
  .venv/bin/mpq --threads 2 train --arch resnet20 --epochs 15 --out checkpoints/resnet20-fmnist.pt
  .venv/bin/mpq --threads 2 train --arch resnet8 --epochs 4 --out checkpoints/resnet8-fmnist.pt
  .venv/bin/mpq --threads 2 train --arch mobilenetv1 --epochs 7 --out checkpoints/mobilenetv1-fmnist.pt
fi
# The efficiency harness's start-up / memory benchmark, once per model (kept beside the results).
[ -f results/lean-mobilenetv1.json ] || .venv/bin/python benchmarks/bench_search_lean.py \
  --checkpoint checkpoints/mobilenetv1-fmnist.pt --data mnist:240 --threads 2 --out results/lean-mobilenetv1.json
bash scripts/run_notebooks.sh full book/chapters  # the study's missing steps first, then the chapters
.venv/bin/mpq study readme  # README's results block, from results/*.json
bash scripts/build_book.sh
echo "reproduced in $(( ($(date +%s) - start) / 60 )) min; open _build/html/index.html"
