"""Loaders: the batches searches, QAT and evaluation read, from any labelled data.

:func:`as_loader` is the one place batches are made (in a seeded order, :class:`ShuffledBatches`,
or a caller's sampler such as a ``DistributedSampler``); :func:`in_order` reads every item once
in item order (evaluation, features) and :func:`take` a seeded calibration batch;
:func:`augment` is the training loops' seeded shift-and-flip. The names are also
:mod:`mpqlib.data`'s, the module to import.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from . import _group
from .errors import ConfigError, DataError
from .images import MEAN, STD, _BatchView, _unloaded, describe


class ShuffledBatches(Sampler):
    """Yields index tensors of whole batches, reshuffled per epoch from ``seed + epoch``.

    Under ``torchrun`` (or with explicit ``rank``/``world``) ``batch_size`` is the *global*
    batch: the one-process order is cut into batches of ``batch_size`` and rank r takes the
    r-th of ``world`` equal slices of each, so N processes step through exactly the batches one
    process does (``batch_size`` must divide by ``world``; the last few images of an epoch that
    do not split evenly are left out). ``rank``/``world`` default to
    :func:`mpqlib.distributed.rank` / :func:`~mpqlib.distributed.world` (0 and 1 without a
    process group).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 rank: int | None = None, world: int | None = None, drop_last: bool = False):
        rank = _group.rank() if rank is None else rank
        world = _group.world() if world is None else world
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
        if not 0 <= rank < world:
            raise ConfigError(f"rank must be in 0..{world - 1}, not {rank}")
        _group.check_split(batch_size, world)
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world, self.drop_last, self.epoch = rank, world, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            idx = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            idx = torch.arange(self.n)
        for start in range(0, self.n, self.batch_size):
            glob = idx[start:start + self.batch_size]
            if self.drop_last and len(glob) < self.batch_size:
                return
            share = len(glob) // self.world
            if share:
                yield glob[self.rank * share:(self.rank + 1) * share]

    def __len__(self) -> int:
        full, tail = divmod(self.n, self.batch_size)
        return full + (1 if tail >= self.world and not self.drop_last else 0)


class _Batches(Sampler):
    """Groups an index sampler (a ``DistributedSampler``, say) into batches; forwards ``set_epoch``."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool):
        self.sampler, self.batches = sampler, BatchSampler(sampler, batch_size, drop_last)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        for b in self.batches:
            yield torch.as_tensor(b, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.batches)


class _Capped(Sampler):
    """At most ``total`` batches of ``batches`` in all, counted across epochs (``max_batches``)."""

    def __init__(self, batches: Sampler, total: int):
        self.batches, self.left = batches, total

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def __iter__(self):
        for b in self.batches:
            if self.left <= 0:
                return
            self.left -= 1
            yield b

    def __len__(self) -> int:
        return min(len(self.batches), self.left)


def as_loader(data, batch_size: int = 128, *, shuffle: bool = True, seed: int = 0, sampler: Sampler | None = None,
              drop_last: bool = False, num_workers: int = 0, max_batches: int | None = None,
              pin_memory: bool = False) -> DataLoader:
    """The one place mpqlib builds loaders: batches of ``(images, labels)`` from ``data``.

    ``data`` is an :class:`Images`, any map-style dataset returning ``(image tensor, int
    label)`` (``ImageFolder`` with a transform, ``Subset``, ...) or a ``DataLoader``, which is
    returned as it is (the caller built it: its batch size, sampler and workers stand).
    Images are read batch by batch, never all at once. Without ``sampler`` the order is
    :class:`ShuffledBatches` from ``seed`` (the same seed, the same batches); ``sampler`` may
    yield whole index batches (:class:`ShuffledBatches`, a ``BatchSampler``) or single indices
    (a ``DistributedSampler``: grouped into ``batch_size`` batches here). The loader's
    ``sampler`` has ``set_epoch`` so that the training loop reshuffles every epoch.
    ``max_batches`` ends the loader after that many batches in all, over every epoch (runs
    compared at equal optimiser steps).
    """
    if isinstance(data, DataLoader):
        return data
    if not isinstance(data, Dataset) and not hasattr(data, "__getitem__"):
        raise DataError(f"cannot read batches from a {type(data).__name__}; give an Images, a map-style "
                        "torch Dataset returning (image, label), or a DataLoader")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
    if sampler is None:
        batches = ShuffledBatches(len(data), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    elif isinstance(sampler, (ShuffledBatches, _Batches)):
        batches = sampler
    else:
        batches = _Batches(sampler, batch_size, drop_last)
    if max_batches is not None:
        batches = _Capped(batches, max_batches)
    return DataLoader(_BatchView(data), sampler=batches, batch_size=None, pin_memory=pin_memory,
                      **worker_options(num_workers))


def worker_options(num_workers: int) -> dict:
    """DataLoader keywords for ``num_workers`` loader processes, started safely in this process.

    Inside a process group the workers start from a fresh forkserver, never by forking this
    process: it already runs the group's threads (gloo, queue feeders), and a fork copies their
    locks in whatever state they are, so a worker can wait forever on a lock no thread will
    release (seen as a rank waiting for its first batch while the other waits in an all-reduce).
    Persistent, so they start once per loader, not once per epoch. One process forks as usual.
    """
    options = {"num_workers": num_workers}
    if num_workers and _group.active():
        options.update(multiprocessing_context="forkserver", persistent_workers=True)
    return options


def in_order(data, batch_size: int = 1000) -> DataLoader:
    """Every item of ``data`` once, in item order (the order of :func:`labels_of`), in every
    process: for evaluation and feature extraction. A DataLoader is read through its dataset."""
    workers = data.num_workers if isinstance(data, DataLoader) else 0
    data = _unloaded(data)
    return as_loader(data, batch_size, sampler=ShuffledBatches(len(data), batch_size, shuffle=False, rank=0, world=1),
                     num_workers=workers)


def loader(data, batch_size: int = 128, *, shuffle: bool = True, seed: int = 0,
           sampler: Sampler | None = None) -> DataLoader:
    """:func:`as_loader` under its former name."""
    return as_loader(data, batch_size, shuffle=shuffle, seed=seed, sampler=sampler)


def take(data, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded random images and labels of ``data`` (a calibration batch), on the CPU.

    Reads only those ``n`` items; a DataLoader gives the items of its dataset."""
    base = _unloaded(data)
    total = len(base)
    if total == 0:
        raise DataError(f"{describe(data)} holds no images")
    idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    return _BatchView(base)[idx]


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random crop after zero padding (in normalised units of black) and random horizontal flip.

    The offsets and flip mask (3 numbers per image) are drawn with ``generator`` on its own
    device (the training loop's is a CPU generator) and moved to ``x``'s device, so the same seed
    gives the same augmentation on a CPU and a GPU; the image arithmetic runs on ``x``'s device."""
    b, c, h, w = x.shape
    dev = x.device
    bg = (0.0 - MEAN) / STD
    padded = F.pad(x, (pad, pad, pad, pad), value=bg)
    gdev = generator.device
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=gdev).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=gdev).to(dev)
    flip = (torch.rand(b, generator=generator, device=gdev) < 0.5).to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


__all__ = ["ShuffledBatches", "as_loader", "in_order", "loader", "take", "augment", "worker_options"]
