#!/usr/bin/env python
"""Recompute one committed full-profile number from an empty cache and judge it by the study's
reproducibility contract (mpqlib.study.reproduce: bitwise on the full run's CPU capability, within a
measured tolerance on any other). Exit 0 when it holds, 1 otherwise, 2 when there is nothing to check.

    python scripts/check_reproducible.py            # results/ of the full profile
    python scripts/check_reproducible.py --profile smoke --override '{"results_dir": "/tmp/r"}'
"""

from __future__ import annotations

import argparse
import json
import sys

from mpqlib.study.reproduce import check


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", choices=("smoke", "full"))
    ap.add_argument("--model", default=None, help="model of the profile (default: its first)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--override", default="{}", help="profile overrides as JSON (as the run used them)")
    args = ap.parse_args(argv)
    return check(args.profile, json.loads(args.override), model=args.model, threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
