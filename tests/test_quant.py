import copy

import pytest
import torch
import torchvision
from torch import nn

from mpqlib.models import resnet20, resnet8
from mpqlib.policy import Policy, PolicyError
from mpqlib.quant import LSQ, QConv2d, QLinear, levels, quantize, quantized_layers, split_layers


def test_levels():
    assert levels(3, True) == (4, 3)
    assert levels(3, False) == (0, 7)
    with pytest.raises(ValueError):
        levels(0, True)


@pytest.mark.parametrize("bits,signed", [(2, True), (3, False), (4, True), (6, False)])
def test_lsq_outputs_are_integers_times_step(bits, signed):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, generator=g)
    if not signed:
        x = x.relu()
    q = LSQ(bits, signed=signed)
    y = q(x)
    codes = y / q.step.detach()
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    qn, qp = levels(bits, signed)
    assert codes.round().min() >= -qn and codes.round().max() <= qp
    assert len(torch.unique(codes.round())) <= 2 ** bits


def test_lsq_reads_sign_from_data_and_keeps_it_in_state():
    q = LSQ(4)
    q(torch.rand(100) - 0.5)
    assert q.signed is True
    r = LSQ(4)
    r.load_state_dict(q.state_dict())
    assert r.signed is True and bool(r.initialised)
    u = LSQ(4)
    u(torch.rand(100))
    assert u.signed is False


def test_lsq_gradients_match_the_paper():
    x = torch.tensor([-3.0, -0.26, 0.1, 0.74, 5.0], requires_grad=True)
    q = LSQ(3, signed=True, per_weight=True)  # levels -4..3; numel = 5
    q.initialise(x.detach())
    with torch.no_grad():
        q.step.fill_(0.5)
    q(x).sum().backward()
    # straight-through inside the range, zero outside
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    v = x.detach() / 0.5
    qv = v.round().clamp(-4, 3)
    inside = (v >= -4) & (v <= 3)
    expect = torch.where(inside, qv - v, qv).sum() / (5 * 3) ** 0.5
    assert torch.allclose(q.step.grad, expect.reshape(1), atol=1e-6)


def test_lsq_step_init_reduces_error_with_more_bits():
    x = torch.randn(10000, generator=torch.Generator().manual_seed(1))
    errs = []
    for b in (2, 4, 6):
        q = LSQ(b, signed=True)
        errs.append(((q(x) - x) ** 2).mean().item())
    assert errs[0] > errs[1] > errs[2]


def test_quantized_modules_behave_like_torch_modules():
    conv = nn.Conv2d(4, 8, 3, padding=1, stride=2)
    q = QConv2d.from_float(conv, (8, 8), a_signed=True)
    assert isinstance(q, nn.Conv2d)
    x = torch.randn(2, 4, 9, 9)
    ref = conv(x)
    out = q(x)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    fc = nn.Linear(16, 3)
    ql = QLinear.from_float(fc, (8, 8))
    assert isinstance(ql, nn.Linear)
    z = torch.randn(5, 16)
    assert torch.allclose(ql(z), fc(z), atol=0.05)


def test_quantize_resnet20_policy_bits_and_integer_weights():
    model = resnet20().eval()
    searchable, fixed = split_layers(model)
    assert fixed == ["conv1", "fc"] and len(searchable) == 20
    bits = {n: (2 + i % 5, 2 + (i * 3) % 5) for i, n in enumerate(searchable)}
    x = torch.randn(8, 1, 28, 28)
    qm = quantize(model, bits, calibration=x)
    layers = quantized_layers(qm)
    assert len(layers) == 22
    for n, m in layers.items():
        assert m.bits == (bits[n] if n in bits else (8, 8))
        codes = m.weight.detach() / m.w_quant.step.detach()
        w_int = m.w_quant.integers(m.weight)
        qn, qp = m.w_quant.qrange
        assert w_int.min() >= -qn and w_int.max() <= qp
        assert torch.allclose(m.w_quant(m.weight.detach()) / m.w_quant.step.detach(), w_int, atol=1e-4)
    assert layers["conv1"].a_quant.signed is True          # normalised image: negative values
    assert layers["layer1.0.conv1"].a_quant.signed is False  # after a ReLU
    assert isinstance(model.conv1, nn.Conv2d) and not isinstance(model.conv1, QConv2d)  # original untouched
    assert qm(x).shape == (8, 10)


def test_quantize_keeps_8bit_model_close_to_fp():
    torch.manual_seed(0)
    model = resnet8().eval()
    x = torch.randn(16, 1, 28, 28)
    qm = quantize(model, Policy.uniform(model, 8), calibration=x)
    ref, out = model(x), qm(x)
    assert (ref - out).abs().mean() < 0.1 * ref.abs().mean()


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2"])
def test_quantize_torchvision_models(arch):
    model = torchvision.models.get_model(arch, weights=None, num_classes=10).eval()
    policy = Policy.uniform(model, 4)
    x = torch.randn(2, 3, 64, 64)
    qm = quantize(model, policy, calibration=x)
    layers = quantized_layers(qm)
    assert set(layers) == set(policy.all_bits)
    assert qm(x).shape == (2, 10)
    if arch == "mobilenet_v2":
        # a block's expansion conv reads the previous linear bottleneck (negative values): signed
        assert layers["features.2.conv.0.0"].a_quant.signed is True
        assert layers["features.2.conv.1.0"].a_quant.signed is False


def test_quantize_rejects_bad_policies():
    model = resnet8()
    good = Policy.uniform(model, 4).bits
    with pytest.raises(PolicyError, match="layer9"):
        quantize(model, {**good, "layer9.0.conv1": (4, 4)})
    missing = dict(good)
    missing.pop("layer2.0.conv1")
    with pytest.raises(PolicyError, match="layer2.0.conv1"):
        quantize(model, missing)
    with pytest.raises(PolicyError, match="pair of ints"):
        quantize(model, {**good, "layer1.0.conv1": (4.5, 4)})
    with pytest.raises(TypeError):
        quantize(model, [4, 4])


def test_qat_step_trains_steps_and_weights():
    torch.manual_seed(0)
    model = resnet8()
    qm = quantize(model, Policy.uniform(model, 3), calibration=torch.randn(8, 1, 28, 28))
    qm.train()
    opt = torch.optim.SGD(qm.parameters(), lr=0.01)
    before = copy.deepcopy(qm.state_dict())
    loss = nn.functional.cross_entropy(qm(torch.randn(8, 1, 28, 28)), torch.randint(0, 10, (8,)))
    loss.backward()
    assert qm.layer1[0].conv1.w_quant.step.grad is not None and qm.layer1[0].conv1.a_quant.step.grad is not None
    opt.step()
    after = qm.state_dict()
    assert not torch.equal(before["layer1.0.conv1.weight"], after["layer1.0.conv1.weight"])
    assert not torch.equal(before["layer1.0.conv1.w_quant.step"], after["layer1.0.conv1.w_quant.step"])


# --------------------------------------------------------------------------- step search, shared base, mixing
def test_step_search_mse_is_exact_and_beats_a_plain_grid():
    from mpqlib.quant import StepSearch

    g = torch.Generator().manual_seed(3)
    for x, signed in ((torch.randn(5000, generator=g), True), (torch.randn(5000, generator=g).relu(), False)):
        search = StepSearch(x)
        for bits in (2, 4, 6):
            qn, qp = levels(bits, signed)
            steps = torch.tensor([0.01, 0.1, 0.5], dtype=torch.float64)
            direct = torch.stack([((torch.clamp(torch.round(x.double() / s), -qn, qp) * s - x.double()) ** 2).mean()
                                  for s in steps])
            assert torch.allclose(search.mse(steps, qn, qp), direct, rtol=1e-6, atol=1e-12)
            best = search.best_step(qn, qp)
            grid = torch.linspace(0.05, 1.0, 96, dtype=torch.float64) * x.abs().max() / qp  # the former init's grid
            assert search.mse(best.reshape(1), qn, qp) <= search.mse(grid, qn, qp).min() + 1e-12


def test_mixed_quantizer_matches_the_sum_of_candidates_in_value_and_gradient():
    from mpqlib.search.supernet import mix_quantized

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    quants = [LSQ(b, signed=True).double() for b in (2, 3, 4)]
    for q in quants:
        q.initialise(x.detach())
    alpha = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    inputs = [x, alpha] + [q.step for q in quants]
    out = mix_quantized(x, quants, alpha.softmax(0))
    ref = sum(p * q(x) for p, q in zip(alpha.softmax(0), quants))
    grad = torch.randn(out.shape, generator=g, dtype=torch.float64)
    assert torch.allclose(out, ref)
    for a, b in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        assert torch.allclose(a, b, atol=1e-12)


def _saved_bytes(fn):
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(saved)


def test_mixed_layer_keeps_about_one_extra_activation_for_backward():
    from mpqlib.search.supernet import MixedConv2d

    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1, bias=False).requires_grad_(False)
    mixed = MixedConv2d.from_float(conv, (2, 3, 4, 5, 6), (2, 3, 4, 5, 6), macs=1)
    x = torch.randn(16, 8, 14, 14).relu().requires_grad_(True)
    mixed(x.detach())  # initialise the candidates
    act = x.numel() * x.element_size()
    # x itself (shared with the previous layer) and the mixed input the conv keeps: ~2 activations, not 5 x 3
    assert _saved_bytes(lambda: mixed(x)) < 2.2 * act


@pytest.mark.parametrize("groups", [1, 8])
def test_quantized_and_mixed_convs_handle_depthwise_groups(groups):
    from mpqlib.search.supernet import MixedConv2d

    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1, groups=groups, stride=2)
    x = torch.randn(2, 8, 9, 9)
    q = QConv2d.from_float(conv, (8, 8), a_signed=True)
    m = MixedConv2d.from_float(conv, (2, 4, 8), (2, 4, 8), macs=1)
    assert q.groups == m.groups == groups
    ref = conv(x)
    assert (q(x) - ref).abs().max() < 0.05 * ref.abs().max()
    m.fix(8, 8)
    assert (m(x) - ref).abs().max() < 0.05 * ref.abs().max()
    m.mix()
    out = m(x)
    out.sum().backward()
    assert out.shape == ref.shape and m.alpha_w.grad is not None and m.alpha_a.grad is not None


def test_quantize_a_net_with_depthwise_convs():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),
                        nn.Conv2d(8, 16, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    x = torch.randn(4, 1, 12, 12)
    qm = quantize(net, Policy.uniform(net, 4), calibration=x)
    assert qm[2].groups == 8 and isinstance(qm[2], QConv2d)
    assert qm(x).shape == (4, 10)


def test_supernet_calibration_initialises_every_candidate():
    from mpqlib.search.supernet import supernet

    model = resnet8().eval()
    net, mixed = supernet(model, calibration=torch.randn(8, 1, 28, 28))
    for m in mixed.values():
        assert all(q.ready and bool(q.initialised) for q in [*m.w_quants, *m.a_quants])
        assert m.mode == "mix"
        steps = [q.step.item() for q in m.a_quants]
        assert steps == sorted(steps, reverse=True)  # more bits, finer steps
    assert all(q.signed is False for q in mixed["layer1.0.conv2"].a_quants)  # after a ReLU


def test_no_import_cycle_between_policy_and_quant():
    import ast
    import inspect

    import mpqlib.policy

    tree = ast.parse(inspect.getsource(mpqlib.policy))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "quant" not in imported and not any(m and m.endswith(".quant") for m in imported)
