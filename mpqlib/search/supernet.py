"""The search supernet: every searchable layer holds one LSQ quantizer per candidate bit-width.

A :class:`MixedConv2d` / :class:`MixedLinear` (the :class:`~mpqlib.quant.QuantLayer` base with
candidate quantizers) runs in one of two modes:

* ``mix``: softmax weights over learnable logits mix the candidates' quantized weights and,
  separately, the quantized inputs; the layer then runs once (EdMIPS / GMPQ / SEAM style).
  The mixture sum_i p_i Q_i(x) is one autograd node (:class:`_MixedLSQFunction`) that keeps
  only its input for the backward pass and recomputes each candidate there, so a search step
  holds about one extra activation per layer instead of several per candidate;
* ``fixed``: one (w, a) candidate pair runs (LIMPQ's one-time training, and evaluation).

A layer's candidates initialise together, from one sorted sample of the first batch the layer
sees (:func:`~mpqlib.quant.initialise_all`). The fixed layers (first conv, last FC) become
8-bit :class:`~mpqlib.quant.QConv2d` / :class:`~mpqlib.quant.QLinear`.
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..config import FIXED_BITS
from ..cost import INPUT_SIZE, CostModel, cost_model
from ..hooks import capture_inputs
from ..quant import (LSQ, QUANTIZED, QuantLayer, fixed_pair, initialise_all, quantizable, quantized_twin,
                     set_module, split_layers)


class _MixedLSQFunction(torch.autograd.Function):
    """x -> sum_i p_i * clamp(round(x / s_i), -Q_N_i, Q_P_i) * s_i with LSQ's gradients.

    Saves only ``x``, the mixing weights and the steps; the backward pass recomputes each
    candidate's codes. Gradients: d/dx = sum_i p_i [x inside candidate i's range] (straight
    through); d/ds_i = p_i * g_i * sum(grad * (q_i - v_i inside, q_i outside)) with g_i LSQ's
    gradient scale; d/dp_i = s_i * sum(grad * q_i).
    """

    @staticmethod
    def forward(ctx, x, probs, steps, qns: tuple, qps: tuple, scales: tuple):
        ctx.save_for_backward(x, probs, steps)
        ctx.qns, ctx.qps, ctx.scales = qns, qps, scales
        out = torch.zeros_like(x)
        for i, (qn, qp) in enumerate(zip(qns, qps)):
            out.add_(torch.clamp(torch.round(x / steps[i]), -qn, qp).mul_(steps[i] * probs[i]))
        return out

    @staticmethod
    def backward(ctx, grad):
        x, probs, steps = ctx.saved_tensors
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        grad_p, grad_s = torch.zeros_like(probs), torch.zeros_like(steps)
        for i, (qn, qp, scale) in enumerate(zip(ctx.qns, ctx.qps, ctx.scales)):
            v = x / steps[i]
            q = torch.clamp(torch.round(v), -qn, qp)
            inside = (v >= -qn) & (v <= qp)
            grad_p[i] = (grad * q).sum() * steps[i]
            grad_s[i] = (grad * torch.where(inside, q - v, q)).sum() * scale * probs[i]
            if grad_x is not None:
                grad_x.add_(grad * inside * probs[i])
        return grad_x, grad_p, grad_s, None, None, None


def _initialise_siblings(x: torch.Tensor, quantizers: Sequence[LSQ]) -> None:
    """Initialise every candidate quantizer of ``x`` not yet initialised, from one sorted sample."""
    waiting = [q for q in quantizers if not q.ready]
    if waiting:
        initialise_all(waiting, x)


def mix_quantized(x: torch.Tensor, quantizers: Sequence[LSQ], probs: torch.Tensor) -> torch.Tensor:
    """sum_i probs[i] * quantizers[i](x), as one memory-lean autograd node."""
    _initialise_siblings(x, quantizers)
    ranges = [q.qrange for q in quantizers]
    steps = torch.cat([q.step for q in quantizers])
    return _MixedLSQFunction.apply(x, probs.to(x.dtype), steps, tuple(r[0] for r in ranges),
                                   tuple(r[1] for r in ranges), tuple(q.grad_scale(x) for q in quantizers))


class MixedLayer(QuantLayer):
    """Candidate LSQ quantizers for the weight and the input, mixed by learnable logits."""

    def __init__(self, *args, w_bits: Sequence[int] = (2, 3, 4, 5, 6), a_bits: Sequence[int] | None = None,
                 macs: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_bits = tuple(w_bits)
        self.a_bits = tuple(self.w_bits if a_bits is None else a_bits)
        f = self.factory
        self.w_quants = nn.ModuleList(LSQ(b, signed=True, per_weight=True, **f) for b in self.w_bits)
        self.a_quants = nn.ModuleList(LSQ(b, **f) for b in self.a_bits)
        self.alpha_w = nn.Parameter(torch.zeros(len(self.w_bits), **f))
        self.alpha_a = nn.Parameter(torch.zeros(len(self.a_bits), **f))
        self.register_buffer("w_values", torch.tensor(self.w_bits, **f))
        self.register_buffer("a_values", torch.tensor(self.a_bits, **f))
        self.macs = macs
        self.mode = "mix"
        self.choice: tuple[int, int] | None = None

    @classmethod
    def from_float(cls, module: nn.Module, w_bits: Sequence[int], a_bits: Sequence[int], macs: int):
        return cls._twin(module, w_bits=w_bits, a_bits=a_bits, macs=macs)

    def probs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return F.softmax(self.alpha_w, 0), F.softmax(self.alpha_a, 0)

    def expected_bitops(self) -> torch.Tensor:
        """MACs x E[w_bits] x E[a_bits] under the mixing weights (in float32 whatever the dtype)."""
        pw, pa = (p.float() for p in self.probs())
        return self.macs * (pw @ self.w_values.float()) * (pa @ self.a_values.float())

    def fix(self, w: int, a: int) -> None:
        """Run only the (w, a) candidate until :meth:`mix` is called."""
        if w not in self.w_bits or a not in self.a_bits:
            raise ValueError(f"({w}, {a}) is not among the candidates {self.w_bits} x {self.a_bits}")
        self.mode, self.choice = "fixed", (w, a)

    def mix(self) -> None:
        self.mode, self.choice = "mix", None

    def _quantized_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode == "fixed":
            w, a = self.choice
            _initialise_siblings(x, self.a_quants)  # all candidates on the layer's first batch
            _initialise_siblings(self.weight, self.w_quants)
            return self.a_quants[self.a_bits.index(a)](x), self.w_quants[self.w_bits.index(w)](self.weight)
        pw, pa = self.probs()
        return mix_quantized(x, self.a_quants, pa), mix_quantized(self.weight, self.w_quants, pw)


class MixedConv2d(MixedLayer, nn.Conv2d):
    """An ``nn.Conv2d`` (any groups) whose weight and input are mixtures of candidate quantizers."""


class MixedLinear(MixedLayer, nn.Linear):
    """An ``nn.Linear`` whose weight and input are mixtures of candidate quantizers."""


MIXED = {nn.Conv2d: MixedConv2d, nn.Linear: MixedLinear}
_Mixed = MixedLayer  # the name earlier code used


def supernet(model: nn.Module, candidates: Sequence[int] = (2, 3, 4, 5, 6), *, a_candidates: Sequence[int] | None = None,
             fixed_bits: int = FIXED_BITS, cost: CostModel | None = None, input_size: tuple[int, ...] = INPUT_SIZE,
             calibration: torch.Tensor | None = None) -> tuple[nn.Module, dict[str, MixedLayer]]:
    """A copy of ``model`` with mixed layers in place of the searchable ones.

    Returns the supernet and ``{name: mixed layer}`` in module order; every new tensor lives
    on the model's device and dtype. ``calibration`` (a batch) initialises every candidate's
    step size now (each candidate on the same batch); without it each layer's candidates
    initialise on the first batch the layer sees.
    """
    a_candidates = tuple(candidates if a_candidates is None else a_candidates)
    cost = cost or cost_model(model, input_size)
    net = copy.deepcopy(model)
    _, fixed = split_layers(net)
    mixed = {}
    for name in quantizable(net):
        module = net.get_submodule(name)
        if name in fixed:
            q = quantized_twin(QUANTIZED, module).from_float(module, fixed_pair(fixed_bits))
        else:
            q = mixed[name] = quantized_twin(MIXED, module).from_float(module, candidates, a_candidates, cost[name].macs)
        set_module(net, name, q)
    if calibration is not None:
        calibrate(net, mixed, calibration)
    return net, mixed


@torch.no_grad()
def calibrate(net: nn.Module, mixed: dict[str, MixedLayer], x: torch.Tensor) -> None:
    """Initialise every candidate quantizer of every mixed layer on one batch ``x``.

    One high-precision pass (each layer at its largest candidates): each mixed layer sees its
    input as the search will first see it and initialises all its candidates from one sorted
    sample of it (and one of its weight). The captured inputs check that every layer ran."""
    was = net.training
    try:
        net.eval()
        for m in mixed.values():
            m.fix(max(m.w_bits), max(m.a_bits))
        with capture_inputs(net, list(mixed)) as inputs:
            net(x)
    finally:
        for m in mixed.values():
            m.mix()
        net.train(was)
    idle = [n for n in mixed if n not in inputs]
    if idle:
        raise RuntimeError(f"mixed layers {idle} did not run in the calibration pass; a supernet needs every "
                           "searchable layer used in forward()")


def expected_bitops(net_mixed: dict[str, MixedLayer]) -> torch.Tensor:
    return sum(m.expected_bitops() for m in net_mixed.values())


def arch_parameters(mixed: dict[str, MixedLayer]) -> list[nn.Parameter]:
    return [p for m in mixed.values() for p in (m.alpha_w, m.alpha_a)]


def step_parameters(net: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in net.named_parameters() if n.endswith(".step")]


def search_optimiser(net: nn.Module, *groups: tuple[list[nn.Parameter], float],
                     backbone_lr: float | None = None) -> torch.optim.Adam:
    """A search's trainable parameters and their optimiser, in one place: Adam over ``groups``
    (``(parameters, learning rate)`` each, in this order), every other parameter of ``net`` (the
    backbone) frozen, or trained at ``backbone_lr`` where one is given (as the last group)."""
    chosen = {id(p) for params, _ in groups for p in params}
    backbone = [p for p in net.parameters() if id(p) not in chosen]
    for p in net.parameters():
        p.requires_grad_(False)
    trained = list(groups) + ([(backbone, backbone_lr)] if backbone_lr is not None else [])
    for params, _ in trained:
        for p in params:
            p.requires_grad_(True)
    return torch.optim.Adam([{"params": params, "lr": lr} for params, lr in trained])
