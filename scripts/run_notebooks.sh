#!/usr/bin/env bash
# Execute the chapter notebooks with papermill, one after the other, stopping at the first error.
#
#   bash scripts/run_notebooks.sh smoke OUTDIR   # minutes: tiny model and data, checks the plumbing
#   bash scripts/run_notebooks.sh full  OUTDIR   # the book's numbers (OUTDIR=book/chapters)
#
# Each notebooks/NN_name.ipynb runs with one parameter, `profile` = MODE, which mpqlib.study.profiles
# resolves into every setting (models, budgets, seeds, configs); it is written, with its outputs,
# to OUTDIR/NN_name.ipynb. Steps are cached by mpqlib under cache/MODE keyed by their full
# configuration, so a rerun skips the steps that already finished. Extra settings for a run:
#   MPQ_OVERRIDES='{"qat_seeds": [0, 1]}' bash scripts/run_notebooks.sh smoke OUTDIR
#   MPQ_WORKERS=4 bash scripts/run_notebooks.sh full OUTDIR     # the study's steps on 4 local processes
#   bash scripts/run_notebooks.sh full book/chapters 04 06       # only these chapters
#   MPQ_SKIP_STUDY=1 bash scripts/run_notebooks.sh full OUTDIR   # chapters only, from the results as they are
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: bash scripts/run_notebooks.sh smoke|full OUTDIR [NN ...]"
MODE=${1:?$usage}
OUTDIR=${2:?$usage}
case "$MODE" in smoke|full) ;; *) echo "$usage" >&2; exit 2 ;; esac
PAPERMILL="$REPO/.venv/bin/papermill"
[ -x "$PAPERMILL" ] || { echo "run_notebooks: $PAPERMILL not found; run: bash scripts/setup.sh" >&2; exit 2; }
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
# The kernel picks matplotlib's inline backend itself; an inherited MPLBACKEND (e.g. Agg) would
# leave the executed notebooks without their figures.
unset MPLBACKEND

cd "$REPO"
shopt -s nullglob
notebooks=(notebooks/[0-9][0-9]_*.ipynb)
if [ $# -gt 2 ]; then  # only the chapters named
  chosen=()
  for n in "${@:3}"; do
    match=(notebooks/${n}_*.ipynb)
    [ ${#match[@]} -eq 1 ] || { echo "run_notebooks: no chapter notebooks/${n}_*.ipynb (chapters: ${notebooks[*]})" >&2; exit 2; }
    chosen+=("${match[0]}")
  done
  notebooks=("${chosen[@]}")
fi
[ ${#notebooks[@]} -gt 0 ] || { echo "run_notebooks: no notebooks/NN_*.ipynb found" >&2; exit 2; }
total=$(date +%s)
overrides=${MPQ_OVERRIDES:-"{}"}
# The study first (pilot -> budget -> searches -> QAT -> results), computing only the steps the
# cache lacks, on MPQ_WORKERS local processes when set; it writes every file the chapters read
# (results/*.json). The chapters then only read: nothing is computed while a page renders.
if [ -n "${MPQ_SKIP_STUDY:-}" ]; then
  echo "== study ($MODE) skipped (MPQ_SKIP_STUDY): the chapters read the results as they are"
else
  echo "== study ($MODE)"
  "$REPO/.venv/bin/python" -m mpqlib.cli study run --profile "$MODE" --override "$overrides" ${MPQ_WORKERS:+--workers "$MPQ_WORKERS"}
fi
for nb in "${notebooks[@]}"; do
  name=$(basename "$nb" .ipynb)
  echo "== $name ($MODE)"
  start=$(date +%s)
  # The chapters only read what the study wrote: read-only, a missing step or result is an error.
  if ! MPQ_READ_ONLY=1 "$PAPERMILL" "$nb" "$OUTDIR/$name.ipynb" -k python3 --cwd "$REPO" -p profile "$MODE" \
       -y "overrides: $overrides" --no-progress-bar; then
    echo "run_notebooks: $name failed after $(( $(date +%s) - start )) s; the executed notebook with the error is $OUTDIR/$name.ipynb" >&2
    exit 1
  fi
  "$REPO/.venv/bin/python" "$REPO/scripts/tag_notebooks.py" "$OUTDIR/$name.ipynb"  # stable ids, no timings, parameters hidden
  echo "== $name: $(( $(date +%s) - start )) s"
done
echo "== all ${#notebooks[@]} notebooks ($MODE): $(( $(date +%s) - total )) s -> $OUTDIR"
