"""One process and two (gloo) on a real image folder with a BatchNorm model, as a search runs it.

ResNet-18 (torchvision; BatchNorm statistics computed on the folder, then frozen in eval mode as
the search freezes them) reads Fashion-MNIST test images written as 32x32 RGB PNGs through
``mpqlib.data.imagefolder``. A head outside the model learns on the pooled features beside the
model's last block, so the gradients are averaged by hand (the search's path) and inside DDP's
reach alike. Two processes must see exactly the batches one process sees (each half of every
global batch) and end with the same weights up to the float rounding of the averaged gradients
(1e-5; plain SGD, which does not amplify rounding).

A whole SEAM search of ResNet-18 on the folder is compared too, through the CLI: its first Adam
step moves every step size and mixing logit by about its learning rate whatever the size of
the gradient, so a gradient of 1e-9 whose sign differs in rounding moves by the full step, and
one process summing each whole batch parts from two processes summing halves (measured:
mixing probabilities 2e-2 apart after 2 epochs). ``mpq --as-processes 2`` sums the same halves
in rank order, and with one thread (torchrun's per process) it takes the same steps: the test
asks the policy to be equal and the mixing probabilities to agree within 1e-5.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from _helpers import free_port
from test_distributed import TORCHRUN

sys.path.insert(0, str(Path(__file__).parent))

TOL = 1e-5


def _model(folder: str) -> nn.Module:
    """ResNet-18 from a fixed seed with BatchNorm statistics of the folder's images, in eval mode."""
    from mpqlib import data as D
    from mpqlib.models import build

    torch.manual_seed(0)
    model = build("resnet18", 10, 3)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # a plain average over the batches
    model.train()
    with torch.no_grad():
        for x, _ in D.in_order(D.imagefolder(folder, (3, 32, 32)), 30):
            model(x)
    return model.eval()


def _run(folder: str, out: str) -> None:
    from mpqlib import data as D
    from mpqlib import distributed as dist
    from mpqlib import train as T

    torch.set_num_threads(1)
    model = _model(folder)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("layer4.1."))
    head = nn.Linear(512, 10)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad] + list(head.parameters()), lr=0.05)
    seen = []

    def step(net, x, y):
        seen.append((x.clone(), y.clone()))
        feats = torch.flatten(F.adaptive_avg_pool2d(net.layer4(net.layer3(net.layer2(net.layer1(
            net.maxpool(net.relu(net.bn1(net.conv1(x)))))))), 1), 1)
        logits = head(feats)
        return F.cross_entropy(logits, y), logits

    data = D.imagefolder(folder, (3, 32, 32))
    T.seed_everything(0)
    hist = T.fit(model, D.as_loader(data, 30, seed=0), opt, epochs=2, step=step, train_mode=False, progress=False)
    torch.save({"seen": seen, "head": head.state_dict(), "layer4": model.layer4.state_dict(),
                "bn": {k: v for k, v in model.state_dict().items() if "running" in k},
                "history": hist.epochs}, f"{out}.{dist.rank()}")


def _worker(rank: int, world: int, port: int, folder: str, out: str) -> None:
    import torch.distributed as tdist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from mpqlib import distributed as dist

    dist.init_from_env("cpu")
    try:
        _run(folder, out)
    finally:
        tdist.destroy_process_group()


@pytest.mark.slow
def test_one_and_two_processes_agree_on_an_image_folder_with_batchnorm(tmp_path):
    from test_cli_safety import write_folder

    folder = str(write_folder(tmp_path / "imgs", per_class=6))
    _run(folder, str(tmp_path / "one"))
    mp.spawn(_worker, args=(2, free_port(), folder, str(tmp_path / "two")), nprocs=2)
    one = torch.load(tmp_path / "one.0", weights_only=True)
    two = [torch.load(tmp_path / f"two.{r}", weights_only=True) for r in (0, 1)]
    # the same global batches, each split in two halves: the head sees the same images and labels
    assert len(one["seen"]) == len(two[0]["seen"]) == 4
    for (x, y), (x0, y0), (x1, y1) in zip(one["seen"], two[0]["seen"], two[1]["seen"]):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    # frozen BatchNorm statistics, the same in every process
    for r in (0, 1):
        assert all(torch.equal(one["bn"][k], two[r]["bn"][k]) for k in one["bn"])
    # the same weights after the same steps, in both processes
    for part in ("head", "layer4"):
        for k, v in one[part].items():
            for r in (0, 1):
                assert (v - two[r][part][k]).abs().max() <= TOL, (part, k)
    assert one["history"][-1]["images"] == two[0]["history"][-1]["images"] == 60
    assert abs(one["history"][-1]["loss"] - two[0]["history"][-1]["loss"]) <= TOL


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_a_resnet18_search_on_an_image_folder_in_one_process_as_two_equals_two_processes(tmp_path):
    import json

    from mpqlib.cli import main
    from mpqlib.models import build
    from test_cli_safety import write_folder
    from test_distributed import _torchrun

    folder = write_folder(tmp_path / "imgs", per_class=6)
    torch.manual_seed(0)
    torch.save(build("resnet18", 10, 3).state_dict(), tmp_path / "r18.pth")
    args = ["search", "--model", "resnet18", "--checkpoint", str(tmp_path / "r18.pth"), "--input-size", "3,32,32",
            "--method", "seam", "--data", f"imagefolder:{folder}", "--epochs", "2", "--batch-size", "20",
            "--head-prefit-steps", "10", "--budget", "w4a4"]
    _torchrun(tmp_path, *args, "--out", str(tmp_path / "two.json"))
    for name, extra in (("one", ["--as-processes", "2"]), ("plain", [])):
        assert main(["--threads", "1", *extra, *args, "--out", str(tmp_path / f"{name}.json"), "--device", "cpu",
                     "--quiet"]) == 0
    runs = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two", "plain")}

    def apart(a: str, b: str) -> float:
        return max(abs(x - y) for k in ("p_w", "p_a")
                   for ra, rb in zip(runs[a]["extras"][k], runs[b]["extras"][k]) for x, y in zip(ra, rb))

    assert runs["one"]["policy"]["bits"] == runs["two"]["policy"]["bits"]
    assert apart("one", "two") <= TOL
    assert runs["one"]["record"]["images"] == runs["two"]["record"]["images"]
    # the positive control: one process summing whole batches does part from the two
    assert apart("plain", "two") > 1e-3


def test_emulated_processes_are_checked():
    from mpqlib import distributed as dist
    from mpqlib.errors import ConfigError

    with pytest.raises(ConfigError, match="integer >= 1"):
        with dist.emulate(0):
            pass
    with dist.emulate(3):
        assert dist.shares() == dist.emulated() == 3
    assert dist.shares() == dist.emulated() == 1


def test_one_process_as_two_needs_a_batch_that_splits(tmp_path):
    from mpqlib import data as D
    from mpqlib import distributed as dist
    from mpqlib import train as T
    from mpqlib.errors import ConfigError

    net = nn.Linear(4, 2)
    images = D.Images("t", torch.randn(12, 4), torch.randint(0, 2, (12,)), ("a", "b"))
    with dist.emulate(2), pytest.raises(ConfigError, match="batch size 5 does not split evenly over 2 emulated processes"):
        T.fit(net, D.as_loader(images, 5), torch.optim.SGD(net.parameters(), lr=0.1), epochs=1, progress=False)


def test_one_process_as_two_takes_the_mean_of_the_two_shares_gradients():
    """SGD on a linear model: the step of one process as two equals the step on the whole batch
    (the mean of the halves' mean gradients) up to float rounding; with BatchNorm in training
    mode the statistics kept are rank 0's (those of the first share), as under DDP."""
    from mpqlib import data as D
    from mpqlib import distributed as dist
    from mpqlib import train as T

    torch.manual_seed(0)
    images = D.Images("t", torch.randn(8, 4), torch.randint(0, 3, (8,)), ("a", "b", "c"))
    first = D.Images("t", images.x[:4], images.y[:4], images.classes)

    def trained(net: nn.Module, processes: int, data) -> nn.Module:
        with dist.emulate(processes):
            T.fit(net, D.as_loader(data, len(data), shuffle=False), torch.optim.SGD(net.parameters(), lr=0.5),
                  epochs=1, progress=False)
        return net

    torch.manual_seed(1)
    start = nn.Linear(4, 3)
    torch.manual_seed(1)
    whole = trained(nn.Linear(4, 3), 1, images)
    torch.manual_seed(1)
    halves = trained(nn.Linear(4, 3), 2, images)
    assert (whole.weight - halves.weight).abs().max() <= 1e-6 and not torch.equal(whole.weight, start.weight)
    bn_whole, bn_halves, bn_rank0 = (trained(nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 3)), k, d)
                                     for k, d in ((1, images), (2, images), (1, first)))
    assert torch.equal(bn_halves[0].running_mean, bn_rank0[0].running_mean)
    assert not torch.equal(bn_whole[0].running_mean, bn_halves[0].running_mean)
