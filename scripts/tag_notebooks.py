"""Hide papermill's injected-parameters cell in executed notebooks; drop local paths.

    python scripts/tag_notebooks.py OUTDIR/*.ipynb

papermill copies the parameters into a new cell tagged ``injected-parameters`` only; the book
must not show it (the chapter's own parameters cell is tagged ``remove-cell`` in the source).
This adds ``remove-cell`` to every such cell, in place, and removes papermill's input and output
paths from the notebook's metadata (absolute paths of the machine that ran it, which a reader
who downloads the notebook would otherwise get). Run by scripts/run_notebooks.sh.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HIDE = "remove-cell"


def tag(path: str | Path) -> int:
    """Add ``remove-cell`` to the injected-parameters cells of ``path`` and drop papermill's
    local paths; returns how many things changed."""
    nb = nbformat.read(path, as_version=4)
    changed = 0
    pm = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if pm.pop(key, None) is not None:
            changed += 1
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and HIDE not in tags:
            tags.append(HIDE)
            changed += 1
    if changed:
        nbformat.write(nb, path)
    return changed


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for p in paths:
        tag(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
