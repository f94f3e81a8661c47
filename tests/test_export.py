"""`mpq export`: ONNX with QDQ nodes at each layer's bit-width and packed integer weights.

The committed ResNet-20 and MobileNetV1 are fine-tuned for a few batches under a mixed policy
(2 to 8 bits, signed and unsigned activations), then exported: onnxruntime's top-1 must match
PyTorch's within 0.1 pp on real Fashion-MNIST test images, the packed file must be within 1%
of the cost model's size, and the loader must give back exactly the same outputs.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mpqlib import data as D
from mpqlib import export as E
from mpqlib import packed as P
from mpqlib.cli import main
from mpqlib.config import QATConfig
from mpqlib.cost import cost_model
from mpqlib.errors import CheckpointError
from mpqlib.policy import Policy, split_layers
from mpqlib.qat import qat
from mpqlib.quant import quantize, quantized_layers
from mpqlib.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BITS = ((2, 4), (3, 3), (4, 8), (5, 2), (6, 5), (8, 6))


def mixed_policy(model) -> Policy:
    searchable, _ = split_layers(model)
    return Policy({n: BITS[i % len(BITS)] for i, n in enumerate(searchable)})


@pytest.mark.parametrize("bits", range(2, 9))
def test_bit_packing_round_trips(bits):
    codes = np.random.default_rng(bits).integers(0, 2 ** bits, 1001).astype(np.uint64)
    blob = P._pack(codes, bits)
    assert len(blob) == P._packed_len(1001, bits)
    assert np.array_equal(P._unpack(blob, bits, 1001), codes.astype(np.int64))


@pytest.fixture(scope="module")
def test_images():
    return D.load("fmnist", "test").subset(torch.arange(2000), name="fmnist-test-2000")


@pytest.mark.parametrize("name", ["resnet20", "mobilenetv1"])
def test_export_matches_eval_size_and_restores_exactly(name, test_images, tmp_path, one_thread):
    model, _ = load_checkpoint(ROOT / "checkpoints" / f"{name}-fmnist.pt")
    policy = mixed_policy(model)
    cfg = QATConfig(epochs=1, batch_size=64, train_images=256)  # 4 batches: a real, short fine-tuning
    qmodel, rec = qat(model, policy, D.search_data("fmnist:30"), test_images, cfg, progress=False)
    qmodel.eval()

    counts = E.to_onnx(qmodel, (1, 28, 28), tmp_path / "m.onnx")
    import onnx

    graph = onnx.load(tmp_path / "m.onnx").graph
    layers = quantized_layers(qmodel)
    assert sum(counts.values()) == 2 * len(layers)
    assert {"INT4", "UINT4", "INT8", "UINT8"} <= set(counts)
    assert not any(init.name.endswith(".weight") and init.dims == list(m.weight.shape)
                   for init in graph.initializer for m in layers.values())  # weights only as integer codes
    onnx_top1 = E.onnx_top1(tmp_path / "m.onnx", test_images)
    assert abs(onnx_top1 - rec["top1"]) <= 0.1, (onnx_top1, rec["top1"])

    info = E.save_packed(qmodel, tmp_path / "m.mpqw")
    cost = cost_model(model, (1, 1, 28, 28)).size_bytes(policy)
    assert info.bytes == (tmp_path / "m.mpqw").stat().st_size
    assert abs(info.bytes / cost - 1) <= 0.01, (info.bytes, cost)

    fresh, _ = load_checkpoint(ROOT / "checkpoints" / f"{name}-fmnist.pt")
    restored = E.load_packed(tmp_path / "m.mpqw", fresh)
    x = test_images.x[:256]
    with torch.no_grad():
        assert torch.equal(restored(x), qmodel(x))
    assert E.policy_of(restored).bits == policy.bits


def test_packed_file_refuses_another_model(tmp_path):
    model, _ = load_checkpoint(ROOT / "checkpoints" / "resnet8-fmnist.pt")
    qmodel = quantize(model, mixed_policy(model), calibration=D.load("fmnist", "test").x[:32])
    E.save_packed(qmodel, tmp_path / "m.mpqw")
    other, _ = load_checkpoint(ROOT / "checkpoints" / "resnet20-fmnist.pt")
    with pytest.raises(CheckpointError, match="quantized layers"):
        E.load_packed(tmp_path / "m.mpqw", other)
    (tmp_path / "bad.mpqw").write_bytes(b"not a packed model")
    with pytest.raises(CheckpointError, match="not an mpqlib packed model"):
        E.load_packed(tmp_path / "bad.mpqw", model)


def test_export_needs_a_qat_state(capsys):
    assert main(["export", "--checkpoint", str(ROOT / "checkpoints" / "resnet8-fmnist.pt"), "--out", "x"]) == 2
    assert "--qat-state" in capsys.readouterr().err


def _cli_qat_state(tmp_path, per_class: int) -> str:
    """`mpq qat --out q.pt` of ResNet-8 under a mixed policy, on per_class Fashion-MNIST images."""
    ckpt = str(ROOT / "checkpoints" / "resnet8-fmnist.pt")
    model, _ = load_checkpoint(ckpt)
    mixed_policy(model).save(tmp_path / "p.json")
    q = str(tmp_path / "q.pt")
    assert main(["qat", "--checkpoint", ckpt, "--policy", str(tmp_path / "p.json"), "--data", f"fmnist:{per_class}",
                 "--eval-data", "optdigits", "--epochs", "1", "--batch-size", "20", "--out", q, "--quiet"]) == 0
    return q


def test_cli_qat_eval_export(tmp_path, capsys):
    """The path a user takes: qat -> eval -> export, every number from the files on disk."""
    q = _cli_qat_state(tmp_path, 4)
    assert json.loads((tmp_path / "q.json").read_text())["command"] == "qat"  # OUT.json beside OUT.pt
    capsys.readouterr()
    assert main(["eval", "--qat-state", q, "--eval-data", "optdigits"]) == 0
    eval_top1 = float(capsys.readouterr().out.split("top-1 ")[1].split("%")[0])
    assert main(["export", "--qat-state", q, "--eval-data", "optdigits", "--out", str(tmp_path / "m")]) == 0
    rec = json.loads((tmp_path / "m.json").read_text())
    assert abs(rec["onnx_top1"] - eval_top1) <= 0.1 and round(rec["torch_top1"], 2) == eval_top1
    assert abs(rec["packed_bytes"] / rec["cost_model_bytes"] - 1) <= 0.01
    assert {p.name for p in tmp_path.iterdir()} >= {"m.onnx", "m.mpqw", "m.mpqw.rest.pt", "m.json"}


# The torchvision architectures the README names for a user's own model.
TORCHVISION = ("resnet18", "mobilenet_v2")


def test_every_torchvision_model_the_readme_names_has_an_export_test():
    """The README's list of torchvision models ("torchvision's by name (`resnet18`, ...)") and the
    export recipe's models are all in TORCHVISION, so each has the export test below."""
    import re

    readme = (ROOT / "README.md").read_text()
    named = re.search(r"torchvision's by name\s*\(([^)]*)\)", readme)
    assert named, "README no longer says which torchvision models are supported"
    names = set(re.findall(r"`(\w+)`", named.group(1))) | set(re.findall(r"torchvision\.models\.(\w+)\(", readme))
    assert names and names <= set(TORCHVISION), names - set(TORCHVISION)


@pytest.mark.parametrize("form", ["qdq", "int"])
@pytest.mark.parametrize("arch", TORCHVISION)
def test_export_of_each_supported_torchvision_model_runs_in_onnxruntime(arch, form, tmp_path, one_thread):
    """Every supported torchvision architecture exports at a small size and onnxruntime gives
    PyTorch's outputs. mobilenet_v2's ReLU6 (an ONNX Clip) before a 4-bit QuantizeLinear once
    crashed onnxruntime's Clip/Quantize fusion: Clip is written as Max/Min."""
    import torchvision

    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)(num_classes=10).eval()
    x = torch.randn(64, 3, 32, 32)
    policy = mixed_policy(model)
    qmodel = quantize(model, policy, calibration=x[:32]).eval()
    counts = E.to_onnx(qmodel, (3, 32, 32), tmp_path / "m.onnx", form=form)
    import onnx

    if form == "int":  # every quantized layer an integer kernel, depthwise convolutions included
        assert counts["ConvInteger"] + counts["MatMulInteger"] == len(quantized_layers(qmodel))

    assert not [n for n in onnx.load(tmp_path / "m.onnx").graph.node if n.op_type == "Clip"]
    out = E.onnx_session(tmp_path / "m.onnx").run(["logits"], {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = qmodel(x).numpy()
    # the same computation up to the rounding of values on a quantization boundary (untrained weights, random input)
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.9 and np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("form", ["qdq", "int"])
def test_two_layers_with_equal_steps_export(form, tmp_path, one_thread):
    """torch's exporter keeps one copy of equal parameters and feeds the others through Identity
    nodes: two quantizers whose calibrated steps coincide (here set equal; in mobilenet_v2 on real
    images two activations of untrained blocks were both clamped to the smallest step) once made
    the export fail with a KeyError."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(32, 3, 32, 32)
    qmodel = quantize(model, mixed_policy(model), calibration=x[:16]).eval()
    layers = list(quantized_layers(qmodel).values())
    with torch.no_grad():
        layers[3].a_quant.step.copy_(layers[5].a_quant.step)
        layers[4].w_quant.step.copy_(layers[6].w_quant.step)
    E.to_onnx(qmodel, (3, 32, 32), tmp_path / "m.onnx", form=form)
    out = E.onnx_session(tmp_path / "m.onnx").run(["logits"], {"input": x.numpy()})[0]
    with torch.no_grad():
        ref = qmodel(x).numpy()
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.9 and np.corrcoef(out.ravel(), ref.ravel())[0, 1] > 0.99


def test_an_interrupted_or_failed_export_leaves_no_file(tmp_path, monkeypatch, capsys):
    """Ctrl-C during onnxruntime's check, or an error in it: none of NAME.onnx, NAME.mpqw,
    NAME.mpqw.rest.pt or NAME.json stays behind, and the message says nothing was kept."""
    q = _cli_qat_state(tmp_path, 2)
    before = {p.name for p in tmp_path.iterdir()}

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "onnx_top1", ctrl_c)
    assert main(["export", "--qat-state", q, "--eval-data", "optdigits", "--out", str(tmp_path / "m")]) == 130
    assert {p.name for p in tmp_path.iterdir()} == before and "no file was left" in capsys.readouterr().err
    monkeypatch.setattr(E, "onnx_top1", lambda *a, **k: 0.0)  # onnxruntime disagrees with PyTorch
    assert main(["export", "--qat-state", q, "--eval-data", "optdigits", "--out", str(tmp_path / "m")]) == 2
    assert {p.name for p in tmp_path.iterdir()} == before and "no file was kept" in capsys.readouterr().err
