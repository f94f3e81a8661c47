#!/usr/bin/env python
"""Protocol version 4's a-priori power analysis: ``results/power.json``, written once, before the runs it sizes.

For each test of :data:`mpqlib.study.power.V4_TESTS` it estimates the variance components from the
committed version-3 runs (``results/runs.json``; collapsed runs replaced by the outlier rule), simulates
the claims' own bootstrap and equivalence rule for every design of the grid, and picks the design
under the compute cap (book/method.md, "Protocol version 4"). The file records the sha256 of the
runs it was computed from; it is not recomputed from later runs (that would no longer be a priori):
the script refuses to overwrite it without ``--force``.

    python scripts/power_analysis.py               # ~4 min on 2 cores
    python scripts/power_analysis.py --sims 200    # a quick look (written only with --out)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from mpqlib._io import write_json
from mpqlib.study import power as P

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=REPO / "results" / "runs.json")
    ap.add_argument("--cache", type=Path, default=REPO / "cache" / "full", help="where the step times are read")
    ap.add_argument("--out", type=Path, default=REPO / "results" / "power.json")
    ap.add_argument("--sims", type=int, default=1000, help="simulated tests per design and true difference")
    ap.add_argument("--force", action="store_true", help="overwrite an existing power analysis")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"power_analysis: {args.out} exists: the analysis is a priori, computed once before its runs; "
              "pass --force to replace it", file=sys.stderr)
        return 2
    raw = args.runs.read_bytes()
    rows = json.loads(raw)["runs"]
    out = P.power_analysis(rows, args.cache, n_sims=args.sims)
    out = {"protocol_version": 4, "computed_from": {"runs": str(args.runs.relative_to(REPO))
                                                    if args.runs.is_relative_to(REPO) else str(args.runs),
                                                    "sha256": hashlib.sha256(raw).hexdigest()[:20]},
           "date": datetime.now(timezone.utc).date().isoformat(), **out}
    write_json(args.out, out)
    for tid, t in out["tests"].items():
        c = t["chosen"]
        print(f"{tid:18s} {c['search_seeds']:3d} search seeds a side x {c['qat_seeds']} QAT seeds: "
              f"P(equivalent | 0) {c['power_equivalent']:.2f}, P(different | {P.DELTA_PP:+g}) {c['power_different']:.2f}, "
              f"+{c['added_seconds'] / 3600:.1f} h{'' if c['reaches_goal'] else ' (below the goal)'}")
    print(f"added compute: {out['added_hours']} h of the {out['cap_hours']:g} h cap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
