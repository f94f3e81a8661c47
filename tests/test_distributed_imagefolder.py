"""One process and two (gloo) on a real image folder with a BatchNorm model, as a search runs it.

ResNet-18 (torchvision; BatchNorm statistics computed on the folder, then frozen in eval mode as
the search freezes them) reads Fashion-MNIST test images written as 32x32 RGB PNGs through
``mpqlib.data.imagefolder``. A head outside the model learns on the pooled features beside the
model's last block, so the gradients are averaged by hand (the search's path) and inside DDP's
reach alike. Two processes must see exactly the batches one process sees (each half of every
global batch) and end with the same weights up to the float rounding of the averaged gradients
(1e-5; plain SGD, which does not amplify rounding).

What is not asserted here: the policy of a whole SEAM search. Its first Adam step moves every
step size and mixing logit by about its learning rate whatever the size of the gradient, so a
gradient of 1e-9 whose sign differs in rounding moves by the full step; on ResNet-18 the loss
then jumps 5x and the two runs part (measured: mixing probabilities 5e-3 apart after 2 steps,
with batches, features, pre-fitted head and first gradients equal to 2e-5).
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
