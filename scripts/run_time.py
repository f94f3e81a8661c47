#!/usr/bin/env python
"""What a run cost, by model and step, from the cached steps' recorded times: now
``mpq study time``; this script passes its arguments on.

    python scripts/run_time.py                 # = mpq study time --profile full
    python scripts/run_time.py --profile smoke
"""

from __future__ import annotations

import sys

from mpqlib.cli import main
from mpqlib.study.pipeline import step_seconds, summarise  # noqa: F401  (the summary, for callers of this script)

if __name__ == "__main__":
    sys.exit(main(["study", "time", *sys.argv[1:]]))
