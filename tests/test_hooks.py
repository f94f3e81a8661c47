import pytest
import torch
from torch import nn

from mpqlib.hooks import capture_inputs


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def _hook_count(net):
    return sum(len(m._forward_pre_hooks) for m in net.modules())


def test_captures_named_inputs_and_removes_hooks():
    net = _net()
    x = torch.randn(5, 4)
    with capture_inputs(net, ["0", "2"]) as inputs:
        assert _hook_count(net) == 2
        out = net(x)
    assert _hook_count(net) == 0
    assert torch.equal(inputs["0"], x)
    assert torch.equal(inputs["2"], torch.relu(net[0](x)))
    assert inputs.calls == {"0": 1, "2": 1}
    assert out.shape == (5, 3)


def test_hooks_removed_when_forward_raises():
    net = _net()
    with pytest.raises(RuntimeError):
        with capture_inputs(net, ["2"]):
            net(torch.randn(5, 7))  # wrong width: the first layer fails
    assert _hook_count(net) == 0


def test_inputs_stay_in_graph_unless_detached():
    net = _net()
    x = torch.randn(2, 4, requires_grad=True)
    with capture_inputs(net, ["2"]) as kept, capture_inputs(net, ["2"], detach=True) as cut:
        net(x)
    assert kept["2"].requires_grad and not cut["2"].requires_grad
    (g,) = torch.autograd.grad(kept["2"].sum(), x)
    assert g.shape == x.shape


def test_counts_repeated_calls_and_rejects_unknown_names():
    net = _net()
    with capture_inputs(net, ["1"]) as inputs:
        net(torch.randn(1, 4))
        net(torch.randn(1, 4))
    assert inputs.calls["1"] == 2
    with pytest.raises(ValueError, match="nope"):
        with capture_inputs(net, ["nope"]):
            pass
    assert _hook_count(net) == 0
