from pathlib import Path

import pytest
import torch
from torch import nn

from mpqlib import data as D
from mpqlib._io import read_json
from mpqlib.cost import cost_model
from mpqlib.errors import ConfigError
from mpqlib.models import ARCHS, build, head
from mpqlib.policy import split_layers
from mpqlib.quant import quantize, quantized_layers
from mpqlib.train import evaluate, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
MBV1 = ROOT / "checkpoints" / "mobilenetv1-fmnist"


def test_mobilenetv1_is_depthwise_separable_and_named_for_the_pipeline():
    model = build("mobilenetv1")
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert head(model)[0] == "fc"
    searchable, fixed = split_layers(model)
    assert fixed == ["conv1", "fc"]
    assert len(searchable) == 16  # 8 blocks x (depthwise, pointwise)
    assert searchable[:2] == ["features.0.conv_dw", "features.0.conv_pw"]
    cm = cost_model(model, (1, 1, 28, 28))
    kinds = {c.name: c.kind for c in cm.layers}
    assert [n for n in searchable if kinds[n] == "dwconv"] == searchable[0::2]
    assert all(kinds[n] == "conv" for n in searchable[1::2])
    # two stride-2 stages: 28 -> 14 -> 7 before the global pool
    assert model.features(torch.relu(model.bn1(model.conv1(torch.zeros(1, 1, 28, 28))))).shape == (1, 128, 7, 7)


def test_mobilenetv1_is_cheaper_than_resnet20_and_builds_the_same_for_the_same_seed():
    assert cost_model(build("mobilenetv1"), (1, 1, 28, 28)).macs < cost_model(build("resnet20"), (1, 1, 28, 28)).macs
    torch.manual_seed(3)
    a = build("mobilenetv1", num_classes=7, in_channels=3)
    torch.manual_seed(3)
    b = build("mobilenetv1", num_classes=7, in_channels=3)
    assert a.conv1.in_channels == 3 and a.fc.out_features == 7
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_mobilenetv1_quantizes_and_learns_one_batch():
    torch.manual_seed(0)
    model = build("mobilenetv1")
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    searchable, _ = split_layers(model)
    q = quantize(model, {n: (2, 4) for n in searchable}, calibration=x)
    layers = quantized_layers(q)
    assert layers["features.0.conv_dw"].groups == 16  # depthwise survives quantization
    with torch.no_grad():  # batch statistics: an untrained net's running ones flatten every output
        assert (q.train()(x) - model.train()(x)).abs().max() > 1e-3  # 2-bit weights change the output
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_build_rejects_unknown_names_and_gray_torchvision_models():
    with pytest.raises(ConfigError, match=r"unknown architecture 'mobilenet_v9'.*mobilenetv1.*resnet20"):
        build("mobilenet_v9")
    with pytest.raises(ConfigError, match="3-channel input, not in_channels=1"):
        build("resnet18")
    m = build("resnet18", num_classes=5, in_channels=3)  # torchvision, untrained: nothing downloaded
    assert head(m)[0] == "fc" and m.fc.out_features == 5
    assert set(ARCHS) >= {"resnet20", "resnet8", "mobilenetv1"}


def test_committed_mobilenetv1_checkpoint_reaches_its_recorded_accuracy(fmnist_test):
    meta = read_json(MBV1.with_suffix(".json"))
    assert meta["arch"] == "mobilenetv1" and meta["dataset"] == "fmnist"
    assert meta["top1"] >= 91.0  # the goal for the full-precision model
    for key in ("epochs", "train_seconds", "code_version", "top1_first2000", "history"):
        assert key in meta, key
    model, ckpt_meta = load_checkpoint(MBV1.with_suffix(".pt"), arch="mobilenetv1")
    assert ckpt_meta["top1"] == meta["top1"]
    top1 = evaluate(model, fmnist_test.subset(torch.arange(2000)))
    assert abs(top1 - meta["top1_first2000"]) <= 1.5
