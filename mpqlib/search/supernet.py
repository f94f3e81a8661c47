"""The search supernet: every searchable layer holds one LSQ quantizer per candidate bit-width.

A :class:`MixedConv2d` / :class:`MixedLinear` runs in one of two modes:

* ``mix``: softmax weights over learnable logits mix the candidates' quantized weights and,
  separately, the quantized inputs; the layer then runs once (EdMIPS / GMPQ / SEAM style);
* ``fixed``: one (w, a) candidate pair runs (LIMPQ's one-time training, and evaluation).

The fixed layers (first conv, last FC) become 8-bit :class:`~mpqlib.quant.QConv2d` /
:class:`~mpqlib.quant.QLinear`.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..cost import CostModel, cost_model
from ..quant import LSQ, QConv2d, QLinear, quantizable, set_module, split_layers


class _Mixed:
    """The mixing machinery shared by the conv and the linear variant."""

    def _setup(self, w_bits: Sequence[int], a_bits: Sequence[int], macs: int) -> None:
        self.w_bits, self.a_bits = tuple(w_bits), tuple(a_bits)
        self.w_quants = nn.ModuleList(LSQ(b, signed=True, per_weight=True) for b in self.w_bits)
        self.a_quants = nn.ModuleList(LSQ(b) for b in self.a_bits)
        self.alpha_w = nn.Parameter(torch.zeros(len(self.w_bits)))
        self.alpha_a = nn.Parameter(torch.zeros(len(self.a_bits)))
        self.register_buffer("w_values", torch.tensor(self.w_bits, dtype=torch.float32))
        self.register_buffer("a_values", torch.tensor(self.a_bits, dtype=torch.float32))
        self.macs = macs
        self.mode = "mix"
        self.choice: tuple[int, int] | None = None

    def probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return F.softmax(self.alpha_w, 0), F.softmax(self.alpha_a, 0)

    def expected_bitops(self) -> torch.Tensor:
        pw, pa = self.probs()
        return self.macs * (pw @ self.w_values) * (pa @ self.a_values)

    def fix(self, w: int, a: int) -> None:
        """Run only the (w, a) candidate until :meth:`mix` is called."""
        if w not in self.w_bits or a not in self.a_bits:
            raise ValueError(f"({w}, {a}) is not among the candidates {self.w_bits} x {self.a_bits}")
        self.mode, self.choice = "fixed", (w, a)

    def mix(self) -> None:
        self.mode, self.choice = "mix", None

    def _quantized(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode == "fixed":
            w, a = self.choice
            return self.a_quants[self.a_bits.index(a)](x), self.w_quants[self.w_bits.index(w)](self.weight)
        pw, pa = self.probs()
        xq = sum(p * q(x) for p, q in zip(pa, self.a_quants))
        wq = sum(p * q(self.weight) for p, q in zip(pw, self.w_quants))
        return xq, wq


class MixedConv2d(nn.Conv2d, _Mixed):
    @classmethod
    def from_float(cls, conv: nn.Conv2d, w_bits, a_bits, macs: int) -> "MixedConv2d":
        m = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                conv.groups, conv.bias is not None, conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype)
        m.load_state_dict(conv.state_dict())
        m._setup(w_bits, a_bits, macs)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, wq = self._quantized(x)
        return self._conv_forward(xq, wq, self.bias)


class MixedLinear(nn.Linear, _Mixed):
    @classmethod
    def from_float(cls, fc: nn.Linear, w_bits, a_bits, macs: int) -> "MixedLinear":
        m = cls(fc.in_features, fc.out_features, fc.bias is not None, device=fc.weight.device, dtype=fc.weight.dtype)
        m.load_state_dict(fc.state_dict())
        m._setup(w_bits, a_bits, macs)
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, wq = self._quantized(x)
        return F.linear(xq, wq, self.bias)


def supernet(model: nn.Module, candidates: Sequence[int] = (2, 3, 4, 5, 6), *, a_candidates: Sequence[int] | None = None,
             fixed_bits: int = 8, cost: CostModel | None = None, input_size=(1, 1, 28, 28),
             calibration: torch.Tensor | None = None) -> tuple[nn.Module, dict[str, _Mixed]]:
    """A copy of ``model`` with mixed layers in place of the searchable ones.

    Returns the supernet and ``{name: mixed layer}`` in module order. ``calibration`` (a batch)
    initialises every candidate's step size now (each candidate on the same batch).
    """
    a_candidates = tuple(candidates if a_candidates is None else a_candidates)
    cost = cost or cost_model(model, input_size)
    net = copy.deepcopy(model)
    searchable, fixed = split_layers(net)
    mixed = {}
    for name in quantizable(net):
        module = net.get_submodule(name)
        if name in fixed:
            q = (QConv2d if isinstance(module, nn.Conv2d) else QLinear).from_float(module, (fixed_bits, fixed_bits))
        else:
            cls = MixedConv2d if isinstance(module, nn.Conv2d) else MixedLinear
            q = mixed[name] = cls.from_float(module, candidates, a_candidates, cost[name].macs)
        set_module(net, name, q)
    if calibration is not None:
        calibrate(net, mixed, calibration)
    return net, mixed


@torch.no_grad()
def calibrate(net: nn.Module, mixed: dict[str, _Mixed], x: torch.Tensor) -> None:
    """Initialise every candidate quantizer of every mixed layer on one batch ``x``."""
    inputs: dict[str, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: inputs.__setitem__(n, args[0])) for n, m in mixed.items()]
    was = net.training
    try:
        net.eval()
        for m in mixed.values():
            m.fix(max(m.w_bits), max(m.a_bits))
        net(x)  # high-precision pass: each layer's input as the search will first see it
    finally:
        for h in hooks:
            h.remove()
        for m in mixed.values():
            m.mix()
        net.train(was)
    for name, m in mixed.items():
        for q in m.a_quants:
            q.initialise(inputs[name])
        for q in m.w_quants:
            q.initialise(m.weight)


def expected_bitops(net_mixed: dict[str, _Mixed]) -> torch.Tensor:
    return sum(m.expected_bitops() for m in net_mixed.values())


def arch_parameters(mixed: dict[str, _Mixed]) -> list[nn.Parameter]:
    return [p for m in mixed.values() for p in (m.alpha_w, m.alpha_a)]


def step_parameters(net: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in net.named_parameters() if n.endswith(".step")]
