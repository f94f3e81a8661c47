"""``mpq data``."""

from __future__ import annotations

from .common import (say, _common)


# --------------------------------------------------------------------------- commands
def cmd_data(args) -> int:
    from .. import data as D

    for name in D.DATASETS:
        for split in ("train", "test"):
            d = D.load(name, split, args.root)
            say(f"{name:10s} {split:5s} {len(d):6d} images, {d.num_classes} classes")
    say(f"staged under {args.root or D.default_root()}")
    return 0


def add(sub) -> None:
    """The ``data`` command's parser."""
    s = sub.add_parser("data", help="stage and verify Fashion-MNIST, MNIST and optdigits")
    _common(s)
    s.set_defaults(func=cmd_data)
