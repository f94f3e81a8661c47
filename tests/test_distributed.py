"""Two processes (gloo on the CPU) against one on the same global batches.

Tolerance: the two processes average two half-batch gradients where one process sums one full
batch, so the weights differ by float rounding only; 1e-5 absolute on every weight after a few
SGD steps (measured: about 1e-7). The net has no BatchNorm because on the CPU torch offers no
SyncBatchNorm: BatchNorm in training mode normalises each rank's share, the standard DDP
behaviour, which is not bitwise one process (frozen-BN searches are; see test_cli's torchrun runs).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from mpqlib import data as D

TOL = 1e-5


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def _train(out: Path, epochs: int, state: Path | None = None) -> None:
    """Train the small net on 200 real Fashion-MNIST images, batch 40, and save weights + history.

    Every call of ``torch_save`` is logged per rank, so the test sees who wrote files."""
    from mpqlib import distributed as dist
    from mpqlib import train as T

    torch.set_num_threads(1)
    writes = out.with_name(f"{out.stem}.writes.{dist.rank()}")
    real_save = T.torch_save

    def logged_save(path, obj):
        with open(writes, "a") as f:
            f.write(f"{path}\n")
        return real_save(path, obj)

    T.torch_save = logged_save
    T.seed_everything(0)
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    data = D.search_data("fmnist:20", seed=0)
    hist = T.fit(model, D.as_loader(data, 40, seed=0), opt, epochs=epochs, augment=True, seed=0,
                 state_path=state, progress=False)
    if dist.is_main():
        torch.save({"state": T.state_dict(model), "history": hist.epochs}, out)
    dist.barrier()


def _worker(rank: int, world: int, port: int, out: str, epochs: int, state: str | None) -> None:
    import torch.distributed as tdist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from mpqlib import distributed as dist

    dist.init_from_env("cpu")
    try:
        _train(Path(out), epochs, Path(state) if state else None)
    finally:
        tdist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(out: Path, epochs: int, state: Path | None = None) -> dict:
    mp.spawn(_worker, args=(2, _free_port(), str(out), epochs, str(state) if state else None), nprocs=2, join=True)
    return torch.load(out, weights_only=True)


def _one_process(out: Path, epochs: int, state: Path | None = None) -> dict:
    _train(out, epochs, state)
    return torch.load(out, weights_only=True)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_two_processes_take_the_steps_of_one(tmp_path):
    one = _one_process(tmp_path / "one.pt", epochs=1)
    two = _two_processes(tmp_path / "two.pt", epochs=1)
    assert _max_diff(one["state"], two["state"]) < TOL
    # the metrics are over all 200 images, not one rank's 100
    (h1,), (h2,) = one["history"], two["history"]
    assert h1["images"] == h2["images"] == 200
    assert h2["loss"] == pytest.approx(h1["loss"], abs=1e-5)
    assert h2["train_top1"] == pytest.approx(h1["train_top1"], abs=1e-9)
    # and the training did something: the weights moved from their start
    assert _max_diff(one["state"], _net().state_dict()) > 1e-3


def test_state_is_written_by_rank_0_only_and_resumes_in_one_process(tmp_path):
    state = tmp_path / "run.state"
    _two_processes(tmp_path / "first.pt", epochs=1, state=state)
    assert (tmp_path / "first.writes.0").read_text().split() == [str(state)]
    assert not (tmp_path / "first.writes.1").exists()
    saved = torch.load(state, weights_only=True)
    assert not any(k.startswith("module.") for k in saved["model"])  # loads without DDP
    resumed = _one_process(tmp_path / "resumed.pt", epochs=2, state=state)
    straight = _one_process(tmp_path / "straight.pt", epochs=2)
    assert [e["epoch"] for e in resumed["history"]] == [1, 2]
    assert _max_diff(resumed["state"], straight["state"]) < TOL
