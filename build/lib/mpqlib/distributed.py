"""Many processes under ``torchrun``: process group, sharding, gradient averaging, rank-0 files.

``torchrun --standalone --nproc_per_node=N -m mpqlib.cli train|search|qat ...`` sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``; :func:`init_from_env`
turns them into a process group (NCCL on CUDA, gloo on the CPU). From then on:

* :func:`shard` (called by :func:`mpqlib.train.fit`) splits every *global* batch of a
  :class:`mpqlib.data.ShuffledBatches` order across the ranks, so N processes step through the
  same global batches as one process, each on ``batch_size / N`` images of each batch;
* :func:`mpqlib.train.fit` wraps the model in ``DistributedDataParallel`` (optionally with
  SyncBatchNorm, CUDA only) or, when the optimiser also holds parameters outside the model (a
  search head), averages the gradients by hand; it sums loss and accuracy over the ranks;
* one process can compute as N would (:func:`emulate`, ``mpq ... --as-processes N``): every
  global batch is cut into the same N shares, their gradients summed in rank order and
  averaged, so with the threads of each of those processes (torchrun gives each one) a search
  in one process takes the steps of N processes to the last bit (checked for N = 2);
* files are written by rank 0 only, followed by a barrier (:func:`main_process_writes`), and
  state dicts never carry DDP's ``module.`` prefix, so a run saved by N processes resumes in
  one and the other way round.

Without a process group (the usual single process) every function here is the identity.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn

from ._group import active, check_split, rank, world  # noqa: F401  (this module's API too)
from .errors import ConfigError

PREFIX = "module."
_EMULATED = 1


def emulated() -> int:
    """How many processes this one process computes as (:func:`emulate`); 1 under torchrun,
    where every process takes its own share."""
    return 1 if active() else _EMULATED


def shares() -> int:
    """How many equal shares every global batch's gradient is summed from: the number of
    processes under torchrun, or the number :func:`emulate` set in one process (else 1)."""
    return world() if active() else _EMULATED


@contextlib.contextmanager
def emulate(processes: int) -> Iterator[None]:
    """Within the block one process computes as ``processes`` processes would under torchrun.

    Floating-point sums depend on their order, and Adam's first steps turn a rounding-level
    difference of a near-zero gradient into a whole step: a search of N processes, each summing
    the gradient of its share of a batch, therefore drifts away from one process that sums the
    whole batch at once. Inside this block :func:`mpqlib.train.fit` cuts each global batch into
    the same ``processes`` shares, runs them one after another, sums their gradients in rank
    order and averages them, as the all-reduce does.
    """
    global _EMULATED
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
        raise ConfigError(f"the number of emulated processes must be an integer >= 1, not {processes!r}")
    if active() and processes not in (1, world()):
        raise ConfigError(f"--as-processes {processes} under torchrun with {world()} processes: "
                          "emulate processes in one process only (leave --as-processes out under torchrun)")
    saved, _EMULATED = _EMULATED, 1 if active() else processes
    try:
        yield
    finally:
        _EMULATED = saved


def is_main() -> bool:
    return rank() == 0


def launched() -> bool:
    """True when the environment says this process is one of several (torchrun sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "cpu") -> torch.device:
    """Join the process group described by torchrun's environment; return this process's device.

    ``device`` is ``cpu``, ``cuda`` or ``auto``. One process (no ``WORLD_SIZE`` > 1) gets the device
    as asked. Under torchrun the backend is NCCL for CUDA and gloo for the CPU, and each process
    takes the GPU ``LOCAL_RANK``.
    """
    dev = resolve_device(device)
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return _local(dev)
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed; run one process")
    dev = _local(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    kw = {"device_id": dev} if dev.type == "cuda" else {}
    dist.init_process_group(backend, **kw)
    return dev


def _local(dev: torch.device) -> torch.device:
    if dev.type != "cuda":
        return dev
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise ConfigError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs are visible: "
                          "start at most one process per GPU (--nproc_per_node)")
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` is CUDA when a GPU is visible, else the CPU; ``cuda`` without a GPU is a ConfigError."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be cpu, cuda or auto, not {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} but torch sees no CUDA GPU here; use --device cpu (or auto)")
    return torch.device(device)


def shutdown(*, wait: bool = True) -> None:
    """Leave the process group at the end of a torchrun command (``wait``: after every rank is
    done; not after an error, when the other ranks may never get there)."""
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_process_writes() -> Iterator[bool]:
    """``with main_process_writes() as writer: if writer: save(...)`` - rank 0 writes, then all wait,
    so no rank reads a file before it exists and no file is written twice."""
    try:
        yield is_main()
    finally:
        barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The sum of ``values`` over the ranks (the tensor itself in one process)."""
    if active():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the ranks in one flat all-reduce per dtype and
    device (for parameters that DDP does not see, such as a search head outside the model)."""
    if not active():
        return
    groups: dict[tuple, list[torch.Tensor]] = {}
    for p in params:
        if p.grad is not None:
            groups.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
    n = world()
    for grads in groups.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= n
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (pickled): one result, whatever float noise the ranks saw."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: nn.Module, device: torch.device, *, sync_bn: bool = False) -> nn.Module:
    """``model`` in ``DistributedDataParallel`` over its trainable parameters (one process: ``model``).

    ``sync_bn`` turns BatchNorm into SyncBatchNorm so the statistics cover the global batch;
    torch computes SyncBatchNorm on GPUs only, so on the CPU it is a ConfigError.
    """
    if not active() or not any(p.requires_grad for p in model.parameters()):
        return model
    if sync_bn:
        if device.type != "cuda":
            raise ConfigError("sync_bn needs CUDA (torch's SyncBatchNorm runs on GPUs only); "
                              "on the CPU leave sync_bn off: BatchNorm then uses each rank's share of the batch")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def strip_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict without DDP's (or DataParallel's) ``module.`` prefix on every key."""
    if state and all(k.startswith(PREFIX) for k in state):
        return {k[len(PREFIX):]: v for k, v in state.items()}
    return state


def shard(loader: torch.utils.data.DataLoader) -> torch.utils.data.DataLoader:
    """``loader`` with its :class:`~mpqlib.data.ShuffledBatches` split over the processes.

    Every global batch of the one-process order (``batch_size`` images) is cut into ``world``
    equal shares and rank r reads the r-th, so N processes take the same optimisation steps on
    the same images as one process (the last ``len % world`` images of an epoch are dropped so
    that the shares stay equal). Loaders with another sampler (a user's own
    ``DistributedSampler``, say) are returned as they are.
    """
    from .loaders import ShuffledBatches, worker_options

    as_batch_sampler = isinstance(loader.batch_sampler, ShuffledBatches)
    s = loader.batch_sampler if as_batch_sampler else loader.sampler
    if not active() or not isinstance(s, ShuffledBatches) or s.world > 1:
        return loader
    check_split(s.batch_size, world())
    split = ShuffledBatches(s.n, s.batch_size, shuffle=s.shuffle, seed=s.seed, rank=rank(),
                            world=world(), drop_last=s.drop_last)
    common = {"pin_memory": loader.pin_memory, **worker_options(loader.num_workers)}
    if as_batch_sampler:  # a loader of single items collated into batches (image folders with workers)
        return torch.utils.data.DataLoader(loader.dataset, batch_sampler=split, collate_fn=loader.collate_fn, **common)
    return torch.utils.data.DataLoader(loader.dataset, sampler=split, batch_size=None, **common)
