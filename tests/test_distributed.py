"""Two processes (gloo on the CPU) against one on the same global batches.

Tolerance: the two processes average two half-batch gradients where one process sums one full
batch, so the weights differ by float rounding only; 1e-5 absolute on every weight after a few
SGD steps (measured: 5e-8 on the weights, 2e-8 on the loss). The net has no BatchNorm because on the CPU torch offers no
SyncBatchNorm: BatchNorm in training mode normalises each rank's share, the standard DDP
behaviour, which is not bitwise one process (frozen-BN searches are; see test_cli's torchrun runs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from mpqlib import data as D
from _helpers import free_port

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


def _two_processes(out: Path, epochs: int, state: Path | None = None) -> dict:
    mp.spawn(_worker, args=(2, free_port(), str(out), epochs, str(state) if state else None), nprocs=2, join=True)
    return torch.load(out, weights_only=True)


def _one_process(out: Path, epochs: int, state: Path | None = None) -> dict:
    _train(out, epochs, state)
    return torch.load(out, weights_only=True)


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.slow
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


@pytest.mark.slow
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


# --------------------------------------------------------------------------- torchrun -m mpqlib.cli
ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
CKPT = ROOT / "checkpoints" / "resnet8-fmnist.pt"
# Loaded by every Python process through PYTHONPATH: logs each atomic file write with the rank
# that made it, so the test sees which process wrote what (mpqlib itself is not changed).
WRITE_LOGGER = '''
import faulthandler
import os
# a process still alive after 240 s (the whole command takes seconds) prints where every thread
# stands and exits, so a hang fails the test with its stacks instead of at the timeout
faulthandler.dump_traceback_later(240, exit=True)
if os.environ.get("MPQ_WRITE_LOG"):
    import mpqlib._io as io
    _real = io.atomic_write
    def _logged(path, write):
        with open(os.environ["MPQ_WRITE_LOG"], "a") as f:
            f.write(f"{os.environ.get('RANK', '-')} {os.path.basename(str(path))}\\n")
        return _real(path, write)
    io.atomic_write = _logged
'''


def _torchrun(tmp_path: Path, *argv: str) -> tuple[str, list[str]]:
    """``torchrun --standalone --nproc_per_node=2 -m mpqlib.cli ARGV``; (stdout, 'rank file' per write)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(WRITE_LOGGER)
    log = tmp_path / f"writes-{argv[0]}.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]), "MPQ_WRITE_LOG": str(log),
           "OMP_NUM_THREADS": "1"}
    # its own session, so that a hang is ended whole: torchrun, its ranks and their loader workers
    # (which hold the output pipes open), and the stacks faulthandler printed become the failure
    proc = subprocess.Popen([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "mpqlib.cli", *argv,
                             "--device", "cpu", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun {argv[0]} hung for 300 s; the stacks of its processes:\n{err[-6000:]}")
    run = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout, log.read_text().split("\n")[:-1] if log.exists() else []


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_torchrun_train_writes_one_checkpoint_that_loads_in_one_process(tmp_path):
    from mpqlib.train import load_checkpoint

    out = tmp_path / "m.pt"
    stdout, writes = _torchrun(tmp_path, "train", "--model", "resnet8", "--data", "fmnist:4", "--eval-data", "optdigits",
                               "--epochs", "2", "--batch-size", "20", "--workers", "1", "--out", str(out))
    # rank 0 wrote the epoch states, the checkpoint and its metadata; rank 1 wrote nothing
    assert sorted(set(writes)) == ["0 m.json", "0 m.pt", "0 m.pt.state"] and writes.count("0 m.pt") == 1
    assert stdout.count("saved") == 1 and "2 processes" in stdout
    model, meta = load_checkpoint(out)  # no module. prefix
    # 40 images a epoch, split between the ranks (loader workers too), counted over both, 2 epochs
    assert meta["processes"] == 2 and meta["train_images"] == 2 * 40
    assert not (tmp_path / "m.pt.state").exists()


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_torchrun_search_matches_one_process_and_qat_writes_once(tmp_path):
    from mpqlib.cli import main

    args = ["search", "--checkpoint", str(CKPT), "--method", "seam", "--data", "mnist:4", "--epochs", "1",
            "--batch-size", "20", "--head-prefit-steps", "10", "--budget", "w4a4"]
    _, writes = _torchrun(tmp_path, *args, "--out", str(tmp_path / "two.json"))
    assert sorted(writes) == ["0 two.json", "0 two.policy.json"]
    assert main([*args, "--out", str(tmp_path / "one.json"), "--device", "cpu", "--quiet"]) == 0
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    # frozen backbone in eval mode: two processes average the gradients of one global batch
    assert one["policy"]["bits"] == two["policy"]["bits"]
    diff = max(abs(a - b) for ra, rb in zip(one["extras"]["p_w"], two["extras"]["p_w"]) for a, b in zip(ra, rb))
    assert diff <= 2e-5  # mixing probabilities are stored to 5 decimals
    assert one["record"]["images"] == two["record"]["images"]

    stdout, writes = _torchrun(tmp_path, "qat", "--checkpoint", str(CKPT), "--policy", str(tmp_path / "two.policy.json"),
                               "--data", "fmnist:4", "--eval-data", "optdigits", "--epochs", "1", "--batch-size", "20",
                               "--out", str(tmp_path / "q.pt"))
    assert sorted(writes) == ["0 q.json", "0 q.pt"] and "top-1" in stdout
    state = torch.load(tmp_path / "q.pt", weights_only=True)["state_dict"]
    assert not any(k.startswith("module.") for k in state)


def test_loader_workers_start_from_a_forkserver_inside_a_process_group(monkeypatch):
    """Under torchrun a forked worker can inherit a lock held by one of the group's threads and
    wait forever (measured: 1 torchrun train in about 6 hung); the loader the CLI builds there
    starts its workers from a forkserver. One process keeps the default (fork)."""
    from mpqlib import _group

    data = D.search_data("fmnist:2", seed=0)
    alone = D.as_loader(data, 10, num_workers=1)
    assert alone.multiprocessing_context is None and not alone.persistent_workers
    monkeypatch.setattr(_group, "active", lambda: True)
    monkeypatch.setattr(_group, "world", lambda: 2)
    monkeypatch.setattr(_group, "rank", lambda: 0)
    in_group = D.as_loader(data, 10, num_workers=1)  # its ShuffledBatches already split over 2 ranks
    assert in_group.multiprocessing_context.get_start_method() == "forkserver" and in_group.persistent_workers
    assert D.as_loader(data, 10).num_workers == 0  # no workers, nothing to start
