#!/usr/bin/env bash
# Build the book strictly: any Sphinx warning (broken reference, missing page, bad notebook
# output) fails the build. The notebooks are not executed here; the book renders the executed
# notebooks in book/chapters/ (see scripts/run_notebooks.sh).
#
#   bash scripts/build_book.sh          # build the book of this repository -> _build/html
#   bash scripts/build_book.sh SRC      # build a copy with the same layout (_config.yml, _toc.yml,
#                                       # book/, package.json) -> SRC/_build/html
#
# MathJax is served from the book itself: node_modules/mathjax (npm, package.json) is copied into
# _build/html/mathjax/ by html_extra_path. If SRC has no node_modules/mathjax it is copied from
# this repository's, or installed with npm ci from package-lock.json.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SRC=$(cd "${1:-$REPO}" && pwd)
JB="$REPO/.venv/bin/jupyter-book"
MATHJAX=node_modules/mathjax/es5/tex-chtml.js

for f in _config.yml _toc.yml book; do
  [ -e "$SRC/$f" ] || { echo "build_book: $SRC/$f is missing (SRC must have the repository's layout)" >&2; exit 2; }
done
[ -x "$JB" ] || { echo "build_book: $JB not found; run: bash scripts/setup.sh" >&2; exit 2; }

# 1. MathJax, local.
if [ ! -f "$SRC/$MATHJAX" ]; then
  if [ "$SRC" != "$REPO" ] && [ -f "$REPO/$MATHJAX" ]; then
    mkdir -p "$SRC/node_modules"
    cp -R "$REPO/node_modules/mathjax" "$SRC/node_modules/"
  else
    command -v npm >/dev/null || { echo "build_book: npm is needed once to install MathJax (apt-get install -y npm, or conda's nodejs)" >&2; exit 2; }
    for f in package.json package-lock.json; do
      [ -f "$SRC/$f" ] || cp "$REPO/$f" "$SRC/$f"
    done
    (cd "$SRC" && { npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error; })
  fi
fi
[ -f "$SRC/$MATHJAX" ] || { echo "build_book: $SRC/$MATHJAX is still missing after installing MathJax" >&2; exit 1; }

# 2. The strict build. -W turns warnings into errors, --keep-going reports all of them, -n
# (nitpicky) also flags every reference that does not resolve.
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
"$JB" build --all -W -n --keep-going "$SRC" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] || grep -qE "(WARNING|ERROR|CRITICAL):" "$log"; then
  echo "build_book: FAILED (exit $status; warnings and errors above)" >&2
  exit 1
fi

# 3. The built book loads nothing from the internet: MathJax is local, no page names a CDN.
html="$SRC/_build/html"
[ -f "$html/mathjax/es5/tex-chtml.js" ] || { echo "build_book: $html/mathjax/es5/tex-chtml.js missing" >&2; exit 1; }
if grep -rlE --include='*.html' "cdn\.jsdelivr|unpkg\.com|cdnjs|googleapis|polyfill\.io" "$html"; then
  echo "build_book: the pages above load something from a CDN" >&2
  exit 1
fi
# 4. The text of every page for the search page's result summaries (book/theme/book.js).
"$REPO/.venv/bin/python" "$REPO/scripts/search_text.py" "$html"
echo "build_book: built $html in $(( $(date +%s) - start )) s, no warnings"
