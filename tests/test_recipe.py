"""The paper-scale recipe of README / book/reproduce.md ("Your own model and data, on GPUs"),
in miniature on the CPU: ImageFolders of 3-channel 32x32 PNGs made from real images (MNIST
digits as the proxy, Fashion-MNIST as the target), torchvision's resnet18, the same commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from mpqlib import data as D
from mpqlib.cli import main

CLASSES, PER_CLASS = 4, 10


def _image_folder(root: Path, name: str, split: str, offset: int = 0) -> Path:
    """``root/<class>/<i>.png``: PER_CLASS real images of each of CLASSES classes, as RGB 32x32."""
    from PIL import Image

    ds = D.load(name, split)
    raw = ((ds.x * D.STD + D.MEAN) * 255).round().clamp(0, 255).to(torch.uint8)
    for c in range(CLASSES):
        (root / ds.classes[c].split()[0].replace("/", "-")).mkdir(parents=True, exist_ok=True)
        for i in torch.nonzero(ds.y == c).flatten()[offset:offset + PER_CLASS].tolist():
            img = Image.fromarray(raw[i, 0].numpy()).convert("RGB").resize((32, 32))
            img.save(root / ds.classes[c].split()[0].replace("/", "-") / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("recipe")
    return {"proxy": _image_folder(base / "proxy", "mnist", "test"),
            "train": _image_folder(base / "target-train", "fmnist", "test"),
            "val": _image_folder(base / "target-val", "fmnist", "test", offset=PER_CLASS),
            "out": base}


def test_resnet18_search_on_an_image_folder_then_qat_on_its_policy(folders, capsys):
    out = folders["out"] / "OUT.json"
    assert main(["search", "--model", "resnet18", "--num-classes", "10", "--input-size", "3,32,32",
                 "--data", f"imagefolder:{folders['proxy']}", "--method", "seam", "--budget", "w4a4",
                 "--epochs", "1", "--device", "cpu", "--out", str(out), "--quiet"]) == 0
    rec = json.loads(out.read_text())["record"]
    assert rec["search_data"].startswith("imagefolder:") and rec["bitops"] <= rec["budget_bitops"]
    policy = folders["out"] / "OUT.policy.json"
    bits = json.loads(policy.read_text())["bits"]
    assert "layer4.1.conv2" in bits and all(2 <= w <= 6 and 2 <= a <= 6 for w, a in bits.values())

    # QAT of the same (untrained, as in the command) resnet18 on the target folder
    qout = folders["out"] / "q.pt"
    assert main(["qat", "--model", "resnet18", "--num-classes", "10", "--input-size", "3,32,32",
                 "--data", f"imagefolder:{folders['train']}", "--eval-data", f"imagefolder:{folders['val']}",
                 "--policy", str(policy), "--epochs", "1", "--batch-size", "20", "--device", "cpu",
                 "--out", str(qout), "--quiet"]) == 0
    assert "top-1" in capsys.readouterr().out
    qrec = json.loads(qout.with_suffix(".json").read_text())  # OUT.json beside OUT.pt
    assert qrec["images"] == CLASSES * PER_CLASS and 0 <= qrec["top1"] <= 100


def test_trained_weights_as_a_plain_state_dict_and_a_class_balanced_proxy(folders, capsys):
    """The GPU recipe starts from torchvision's ImageNet weights, a plain state dict: here the
    miniature trains one on the target folder, saves it torchvision-style and searches with it
    on a class-balanced proxy (--data-per-class) of the proxy folder."""
    import torchvision

    ckpt = folders["out"] / "r18.pt"
    assert main(["train", "--model", "resnet18", "--input-size", "3,32,32", "--data", f"imagefolder:{folders['train']}",
                 "--eval-data", f"imagefolder:{folders['val']}", "--epochs", "1", "--batch-size", "20",
                 "--lr", "0.02", "--workers", "1", "--device", "cpu", "--out", str(ckpt), "--quiet"]) == 0
    # the mpqlib checkpoint names its architecture and input size: nothing else to say
    assert main(["eval", "--checkpoint", str(ckpt), "--eval-data", f"imagefolder:{folders['val']}"]) == 0
    assert re.search(r"resnet18: top-1 \d+\.\d+% on imagefolder:", capsys.readouterr().out)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    plain = folders["out"] / "resnet18.pth"
    torch.save(state, plain)  # as torchvision publishes weights
    net = torchvision.models.resnet18(num_classes=CLASSES)
    net.load_state_dict(torch.load(plain, weights_only=True))  # it is a torchvision state dict
    out = folders["out"] / "proxy.json"
    assert main(["search", "--model", "resnet18", "--checkpoint", str(plain), "--input-size", "3,32,32",
                 "--data", f"imagefolder:{folders['proxy']}", "--data-per-class", "5", "--method", "seam",
                 "--budget", "w3a3", "--epochs", "1", "--batch-size", "10", "--workers", "1", "--device", "cpu",
                 "--out", str(out),
                 "--quiet"]) == 0
    rec = json.loads(out.read_text())["record"]
    assert rec["search_data"].endswith(f"-{CLASSES * 5}") and rec["bitops"] <= rec["budget_bitops"]
    assert main(["eval", "--model", "resnet18", "--checkpoint", str(plain), "--input-size", "3,32,32",
                 "--eval-data", f"imagefolder:{folders['val']}", "--device", "cpu"]) == 0
    assert "top-1" in capsys.readouterr().out
