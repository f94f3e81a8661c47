"""Is the committed book current? Compares book/chapters/*.ipynb with notebooks/*.ipynb.

    python scripts/book_status.py            # exit 0: every chapter was executed from today's
                                             # notebook source with profile "full"; exit 1: not
A chapter is current when its cells, without papermill's injected-parameters cell, have the same
sources as the notebook in notebooks/, and papermill ran it with ``profile = "full"``. The
check lets CI tell a stale committed book (executed from older notebooks, awaiting the full run)
from a current one that must pass every check.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]


def source_hash(nb) -> str:
    h = hashlib.sha256()
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            continue
        h.update(cell.cell_type.encode() + b"\0" + cell.source.encode() + b"\0")
    return h.hexdigest()


def status(repo: Path = REPO) -> list[tuple[str, bool, str]]:
    rows = []
    for src in sorted((repo / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        out = repo / "book" / "chapters" / src.name
        if not out.exists():
            rows.append((src.name, False, "missing from book/chapters"))
            continue
        executed = nbformat.read(out, as_version=4)
        params = executed.metadata.get("papermill", {}).get("parameters", {})
        if source_hash(executed) != source_hash(nbformat.read(src, as_version=4)):
            rows.append((src.name, False, "executed from an older notebook source"))
        elif params.get("profile") != "full":
            rows.append((src.name, False, f"executed with profile {params.get('profile')!r}, not 'full'"))
        else:
            rows.append((src.name, True, "current"))
    return rows


def main() -> int:
    rows = status()
    for name, ok, why in rows:
        print(f"{name:28s} {'current' if ok else 'STALE'}: {why}")
    return 0 if rows and all(ok for _, ok, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
