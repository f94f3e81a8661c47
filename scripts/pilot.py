#!/usr/bin/env python
"""The pilot that picks the main budget (book/method.md, "Protocol (fixed before the run)"):
now ``mpq study pilot``; this script passes its arguments on.

    python scripts/pilot.py --profile smoke            # = mpq study pilot --profile smoke
    python scripts/pilot.py --profile full --models resnet20 --override '{"n_random": 6}'
"""

from __future__ import annotations

import sys

from mpqlib.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", "pilot", *sys.argv[1:]]))
