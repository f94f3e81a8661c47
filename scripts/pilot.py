#!/usr/bin/env python
"""The pilot that picks the main budget (book/method.md, "Protocol (fixed before the run)").

At each candidate budget with an exact uniform counterpart (W3A2 / W2A3 = 6 bit-products,
W2A4, W3A3) it runs the profile's random policies and the uniform policy under two QAT seeds,
and picks per model the budget where the SD across random policies is largest relative to the
seed SD (power: at least 2x). Writes <results_dir>/pilot.json; the full profile reads its main
budget from there.

    python scripts/pilot.py --profile smoke            # minutes: checks the plumbing
    python scripts/pilot.py --profile full             # the real pilot (hours on 2 cores)
    python scripts/pilot.py --profile full --models resnet20 --override '{"n_random": 6}'
"""

from __future__ import annotations

import argparse
import json
import sys

from mpqlib.errors import MpqlibError
from mpqlib.experiments import pilot


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=("smoke", "full"))
    ap.add_argument("--models", nargs="*", help="models of the profile to pilot (default: all)")
    ap.add_argument("--override", default="{}", help="profile overrides as JSON, e.g. '{\"n_random\": 6}'")
    args = ap.parse_args(argv)
    try:
        out = pilot(args.profile, json.loads(args.override), models=args.models or None)
    except MpqlibError as e:
        print(f"pilot: {e}", file=sys.stderr)
        return 2
    for model, budgets in out["budgets"].items():
        print(f"{model}:")
        for b, r in budgets.items():
            print(f"  {b:6s} {r['bitops']:>14,} BitOps  policy SD {r['policy_sd_pp']:.3f} pp  seed SD "
                  f"{r['seed_sd_pp']:.3f} pp  ratio {r['ratio']:.2f}  uniform {r['uniform_top1']}")
        print(f"  chosen: {out['chosen'][model]} ({'has' if out['power'][model] else 'NO'} power: ratio >= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
