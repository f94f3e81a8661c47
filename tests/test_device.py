"""Every tensor the quantizers and the supernet create lives on the model's device and dtype.

Built on the ``meta`` device (no data, so no calibration), and on CUDA when present (there a
calibrated forward and backward run too)."""

import pytest
import torch
from torch import nn

from mpqlib.cost import cost_model
from mpqlib.models import resnet8
from mpqlib.policy import Policy
from mpqlib.quant import QConv2d, quantize
from mpqlib.search.supernet import MixedConv2d, arch_parameters, expected_bitops, step_parameters, supernet

DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


def _tensors(model: nn.Module):
    yield from model.named_parameters()
    yield from model.named_buffers()


def _assert_on(model: nn.Module, device: str, dtype=None) -> None:
    wrong = [n for n, t in _tensors(model) if t.device.type != device]
    assert not wrong, f"tensors not on {device}: {wrong[:5]}"
    if dtype is not None:
        floats = [(n, t.dtype) for n, t in _tensors(model) if t.is_floating_point() and t.dtype != dtype]
        assert not floats, f"tensors not in {dtype}: {floats[:5]}"


@pytest.mark.parametrize("device", DEVICES)
def test_quantize_and_supernet_create_nothing_on_the_cpu(device):
    cpu = resnet8()
    cost = cost_model(cpu)  # measured on the CPU: a meta tensor has no values to count with
    model = resnet8().to(device)
    qm = quantize(model, Policy.uniform(model, 4))
    _assert_on(qm, device)
    net, mixed = supernet(model, cost=cost)
    _assert_on(net, device)
    assert len(mixed) == len(cost.searchable) and all(isinstance(m, nn.Module) for m in mixed.values())
    assert expected_bitops(mixed).device.type == device


def test_half_precision_layers_keep_their_dtype():
    conv = nn.Conv2d(4, 8, 3).to("meta", torch.float16)
    q = QConv2d.from_float(conv, (4, 4))
    _assert_on(q, "meta", torch.float16)
    m = MixedConv2d.from_float(conv, (2, 4), (2, 4), macs=10)
    _assert_on(m, "meta", torch.float16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_search_step_runs_on_the_device():
    model = resnet8().cuda().eval()
    x = torch.randn(16, 1, 28, 28, device="cuda")
    net, mixed = supernet(model, calibration=x)
    _assert_on(net, "cuda")
    params = arch_parameters(mixed) + step_parameters(net)
    loss = net(x).sum() + expected_bitops(mixed) * 1e-9
    loss.backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in params)
    qm = quantize(model, Policy.uniform(model, 4), calibration=x)
    assert qm(x).device.type == "cuda"
