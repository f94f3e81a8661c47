"""Make executed notebooks stable: the same results give the same file, byte for byte.

    python scripts/tag_notebooks.py OUTDIR/*.ipynb

Run by scripts/run_notebooks.sh on every notebook papermill executed. In place, it

* adds ``remove-cell`` to papermill's ``injected-parameters`` cell (the book must not show it;
  the chapter's own parameters cell is tagged ``remove-cell`` in the source);
* numbers the cells' ids (``cell-00``, ``cell-01``, ...): papermill gives its injected cell a
  random id on every run;
* drops what differs from one execution to the next without the results changing: each cell's
  execution timestamps (``metadata.execution``) and papermill's timings and status
  (``metadata.papermill`` of each cell; of the notebook, all but its ``parameters``), and
  papermill's input and output paths (local paths of the machine that ran it).

So executing the chapters on the committed results leaves ``git status`` empty; a run with other
parameters changes only what those parameters change.
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HIDE = "remove-cell"


def normalise(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` with stable ids, the injected cell hidden and every volatile field dropped."""
    pm = nb.metadata.get("papermill")
    if pm is not None:
        nb.metadata["papermill"] = {"parameters": pm["parameters"]} if "parameters" in pm else {}
    width = max(2, len(str(len(nb.cells))))
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:0{width}d}"
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and HIDE not in tags:
            tags.append(HIDE)
    return nb


def tag(path: str | Path) -> bool:
    """Normalise the notebook at ``path`` in place; True when the file changed."""
    path = Path(path)
    before = path.read_text()
    nb = normalise(nbformat.read(path, as_version=4))
    after = nbformat.writes(nb)
    after += "" if after.endswith("\n") else "\n"  # as nbformat.write ends the file
    if after != before:
        path.write_text(after)
        return True
    return False


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    for p in paths:
        tag(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
