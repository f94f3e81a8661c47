"""Where this process stands in a torch process group (rank 0 of 1 without one): read by the
data loaders and by :mod:`mpqlib.distributed`, which both import it (and not each other's)."""

from __future__ import annotations

import torch.distributed as dist

from .errors import ConfigError


def active() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world() -> int:
    return dist.get_world_size() if active() else 1


def check_split(batch_size: int, processes: int, kind: str = "") -> None:
    """A global batch must cut into ``processes`` equal shares (``kind``: "emulated " in one process)."""
    if batch_size % processes:
        raise ConfigError(f"the global batch size {batch_size} does not split evenly over {processes} {kind}processes: "
                          f"choose a multiple of {processes}")


__all__ = ["active", "rank", "world", "check_split"]
