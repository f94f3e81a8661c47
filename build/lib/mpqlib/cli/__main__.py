"""``python -m mpqlib.cli``: the ``mpq`` command line."""

import sys

from . import main

sys.exit(main())
