#!/usr/bin/env python
"""Recompute one committed full-profile number from scratch and fail if it differs.

With an empty temporary cache it reruns (1) one proxy search, SEAM on MNIST with search seed 0
at the committed main budget of the first model, whose policy must equal the committed one
(results/policies.json), and (2) the QAT run of that policy with QAT seed 0, whose top-1 must
equal the committed per-seed value in results/runs.json within float noise (0.02 pp). The
search's cache key must match too: a different key means the code's configuration changed
since the full run. Exit 0 when everything matches, 1 otherwise (2: nothing to check).

    python scripts/check_reproducible.py            # results/ of the full profile
    python scripts/check_reproducible.py --profile smoke --override '{"results_dir": "/tmp/r"}'
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from mpqlib.experiments import Experiments, load_runs
from mpqlib.profiles import resolve

TOLERANCE_PP = 0.02


def committed_row(rows: list[dict], model: str, budget: str, policy: str = "seam-mnist") -> dict | None:
    for r in rows:
        if (r["model"], r["budget"], r["policy"], r["search_seed"], r["qat_seed"]) == (model, budget, policy, 0, 0):
            return r
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=("smoke", "full"))
    ap.add_argument("--model", default=None, help="model of the profile (default: its first)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--override", default="{}", help="profile overrides as JSON (as the run used them)")
    args = ap.parse_args(argv)
    p = resolve(args.profile, json.loads(args.override))
    model = args.model or next(iter(p.models))
    rows = load_runs(p)
    if not rows:
        print(f"check_reproducible: {p.path('runs.json')} holds no runs yet; nothing to check", file=sys.stderr)
        return 2
    budget = p.main_budget(model)
    row = committed_row(rows, model, budget)
    if row is None:
        print(f"check_reproducible: no committed seam-mnist run (search seed 0, QAT seed 0) for {model} at {budget}",
              file=sys.stderr)
        return 2
    committed = json.loads(p.path("policies.json").read_text()).get(row["search"])
    failures = []
    with tempfile.TemporaryDirectory(prefix="mpq-reproduce-") as cache:
        ex = Experiments(p, model, cache_dir=cache, threads=args.threads)  # results_dir is only read here
        t0 = time.perf_counter()
        res = ex.search("seam-mnist", budget, 0)
        print(f"search: {time.perf_counter() - t0:.0f} s, {res.record['bitops']:,} BitOps")
        if res.record["cache_key"] != row["search"]:
            failures.append(f"the search's configuration changed since the full run (key {res.record['cache_key']} "
                            f"vs committed {row['search']}): rerun the full profile")
        if committed is None or res.policy.to_dict()["bits"] != committed["bits"]:
            diff = {n: (b, committed["bits"].get(n)) for n, b in res.policy.to_dict()["bits"].items()
                    if committed is None or committed["bits"].get(n) != b}
            failures.append(f"policy differs from the committed one in {len(diff)} layers: {dict(list(diff.items())[:4])}")
        t0 = time.perf_counter()
        top1 = ex.qat(res.policy, 0)["top1"]
        print(f"QAT: {time.perf_counter() - t0:.0f} s, top-1 {top1:.2f}% (committed {row['top1']:.2f}%)")
        if abs(top1 - row["top1"]) > TOLERANCE_PP:
            failures.append(f"QAT top-1 {top1:.4f}% differs from the committed {row['top1']:.4f}% by more than "
                            f"{TOLERANCE_PP} pp")
    for f in failures:
        print(f"check_reproducible: FAIL: {f}", file=sys.stderr)
    if not failures:
        print(f"check_reproducible: {model} at {budget}: search policy and QAT top-1 reproduced from an empty cache")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
