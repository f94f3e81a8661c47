"""Where this process stands in a torch process group (rank 0 of 1 without one): read by the
data loaders and by :mod:`mpqlib.distributed`, which both import it (and not each other's)."""

from __future__ import annotations

import torch.distributed as dist


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


__all__ = ["active", "rank", "world"]
