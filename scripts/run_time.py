#!/usr/bin/env python
"""What a run cost: the compute time of every cached step of a profile, by model and step.

Each cached step stores ``elapsed_s`` (the wall time its computation took); steps cached before
that field existed fall back to their record's own ``seconds`` (search or QAT time without the
set-up around it) and are counted as such. The sum is the run's time from an empty cache, less
the notebooks' own rendering (scripts/run_notebooks.sh prints that per chapter).

    python scripts/run_time.py                 # the full profile's cache
    python scripts/run_time.py --profile smoke
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from mpqlib.profiles import REPO, resolve


def step_seconds(stored: dict) -> tuple[float, bool]:
    """(seconds, measured around the whole step?) of one cached step."""
    if stored.get("elapsed_s") is not None:
        return float(stored["elapsed_s"]), True
    record = stored.get("record") or {}
    return float(record.get("seconds") or 0.0), False


def summarise(cache: Path) -> dict:
    """``{(model, step): {"n", "seconds", "approximate"}}`` over every cached step under ``cache``."""
    out: dict = defaultdict(lambda: {"n": 0, "seconds": 0.0, "approximate": 0})
    for path in sorted(cache.glob("*/*/*.json")):
        model, step = path.parts[-3], path.parts[-2]
        seconds, whole = step_seconds(json.loads(path.read_text()))
        row = out[(model, step)]
        row["n"] += 1
        row["seconds"] += seconds
        row["approximate"] += not whole
    return dict(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=("smoke", "full"))
    args = ap.parse_args(argv)
    p = resolve(args.profile)
    cache = Path(p.cache_dir) if Path(p.cache_dir).is_absolute() else REPO / p.cache_dir
    rows = summarise(cache)
    if not rows:
        print(f"run_time: no cached steps under {cache}")
        return 1
    print(f"{'model':12s} {'step':14s} {'steps':>6s} {'hours':>7s}  note")
    for (model, step), r in sorted(rows.items()):
        note = f"{r['approximate']} from the record's own seconds" if r["approximate"] else ""
        print(f"{model:12s} {step:14s} {r['n']:6d} {r['seconds'] / 3600:7.2f}  {note}")
    total = sum(r["seconds"] for r in rows.values())
    print(f"{'total':12s} {'':14s} {sum(r['n'] for r in rows.values()):6d} {total / 3600:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
