"""LSQ quantization (Esser et al., ICLR 2020) and ``quantize(model, policy)``.

* :class:`LSQ`: a learnable-step uniform quantizer. Weights are signed, levels
  [-2^(b-1), 2^(b-1)-1]; activations after a ReLU are unsigned, [0, 2^b-1]; activations that
  can be negative (the normalised image, a linear bottleneck's output) are signed. Rounding is
  straight-through; the step's gradient is scaled by 1/sqrt(numel * Q_P). The step is
  initialised from data on the first batch it sees (the MSE-best step over a grid), and the
  sign of an activation quantizer is read from that batch unless given.
* :class:`QConv2d` / :class:`QLinear`: subclasses of the torch modules they replace, with a
  weight and an input quantizer; same weights, same forward signature.
* :func:`quantize`: one verb, a copy of the model whose searchable layers run at the policy's
  bits and whose first conv and last FC run at 8 bits (configurable).
"""

from __future__ import annotations

import copy
import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

Bits = tuple[int, int]


def levels(bits: int, signed: bool) -> tuple[int, int]:
    """(Q_N, Q_P): the quantized integers run over [-Q_N, Q_P]."""
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, not {bits}")
    if signed:
        return 2 ** (bits - 1), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


class _LSQFunction(torch.autograd.Function):
    """x -> clamp(round(x / s), -Q_N, Q_P) * s with LSQ's gradients, in one fused pass."""

    @staticmethod
    def forward(ctx, x, step, qn: int, qp: int, grad_scale: float):
        v = x / step
        q = torch.clamp(torch.round(v), -qn, qp)
        ctx.save_for_backward(v, q)
        ctx.grad_scale = grad_scale
        ctx.qn, ctx.qp = qn, qp
        return q * step

    @staticmethod
    def backward(ctx, grad):
        v, q = ctx.saved_tensors
        inside = (v >= -ctx.qn) & (v <= ctx.qp)
        grad_x = grad * inside
        # d(q*s)/ds = q - v inside the range (round is straight-through), the clamp bound outside.
        grad_s = (grad * torch.where(inside, q - v, q)).sum() * ctx.grad_scale
        return grad_x, grad_s.reshape(1), None, None, None


class LSQ(nn.Module):
    """Learned step size quantizer with ``bits`` bits; ``signed=None`` reads the sign from data."""

    def __init__(self, bits: int, signed: bool | None = None, per_weight: bool = False):
        super().__init__()
        self.bits = bits
        self.per_weight = per_weight  # a weight quantizer: numel is the tensor's, fixed
        levels(bits, True)  # validate
        self.step = nn.Parameter(torch.ones(1))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        # -1: not known yet (read from the first batch), 0: unsigned, 1: signed; saved with the state.
        self.register_buffer("_sign", torch.tensor(-1 if signed is None else int(signed), dtype=torch.int8))

    @property
    def signed(self) -> bool | None:
        return None if self._sign.item() < 0 else bool(self._sign.item())

    @signed.setter
    def signed(self, value: bool) -> None:
        self._sign.fill_(int(value))

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"

    @property
    def qrange(self) -> tuple[int, int]:
        return levels(self.bits, bool(self.signed))

    @torch.no_grad()
    def initialise(self, x: torch.Tensor) -> None:
        """Set the sign (if unknown) and the step that minimises the quantization MSE on ``x``."""
        if self.signed is None:
            self.signed = bool((x < 0).any())
        qn, qp = self.qrange
        x = x.detach().flatten()
        if x.numel() > 1 << 18:  # a fixed, evenly spaced sample keeps this cheap and deterministic
            x = x[:: x.numel() // (1 << 18) + 1]
        top = x.abs().max().clamp_min(1e-8)
        best, best_err = top / qp, float("inf")
        for frac in torch.linspace(0.05, 1.0, 96):
            s = frac * top / max(qp, 1)
            err = ((torch.clamp(torch.round(x / s), -qn, qp) * s - x) ** 2).mean().item()
            if err < best_err:
                best, best_err = s, err
        self.step.copy_(best.reshape(1))
        self.initialised.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.initialised:
            self.initialise(x)
        qn, qp = self.qrange
        numel = x.numel() if self.per_weight else x[0].numel()
        return _LSQFunction.apply(x, self.step, qn, qp, 1.0 / math.sqrt(numel * max(qp, 1)))

    @torch.no_grad()
    def integers(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes of ``x`` (what an integer kernel would multiply)."""
        qn, qp = self.qrange
        return torch.clamp(torch.round(x / self.step), -qn, qp)


def _check_bits(bits) -> Bits:
    try:
        w, a = (int(b) for b in bits)
    except (TypeError, ValueError):
        raise TypeError(f"bits must be a (w_bits, a_bits) pair of ints, not {bits!r}") from None
    return w, a


class QConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose weight and input are LSQ-quantized."""

    def __init__(self, *args, w_bits: int = 8, a_bits: int = 8, a_signed: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_quant = LSQ(w_bits, signed=True, per_weight=True)
        self.a_quant = LSQ(a_bits, signed=a_signed)

    @classmethod
    def from_float(cls, conv: nn.Conv2d, bits: Bits, a_signed: bool | None = None) -> "QConv2d":
        w, a = _check_bits(bits)
        q = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                conv.groups, conv.bias is not None, conv.padding_mode, w_bits=w, a_bits=a, a_signed=a_signed,
                device=conv.weight.device, dtype=conv.weight.dtype)
        q.load_state_dict(conv.state_dict(), strict=False)
        return q

    @property
    def bits(self) -> Bits:
        return self.w_quant.bits, self.a_quant.bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.a_quant(x), self.w_quant(self.weight), self.bias)


class QLinear(nn.Linear):
    """An ``nn.Linear`` whose weight and input are LSQ-quantized."""

    def __init__(self, *args, w_bits: int = 8, a_bits: int = 8, a_signed: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_quant = LSQ(w_bits, signed=True, per_weight=True)
        self.a_quant = LSQ(a_bits, signed=a_signed)

    @classmethod
    def from_float(cls, fc: nn.Linear, bits: Bits, a_signed: bool | None = None) -> "QLinear":
        w, a = _check_bits(bits)
        q = cls(fc.in_features, fc.out_features, fc.bias is not None, w_bits=w, a_bits=a, a_signed=a_signed,
                device=fc.weight.device, dtype=fc.weight.dtype)
        q.load_state_dict(fc.state_dict(), strict=False)
        return q

    @property
    def bits(self) -> Bits:
        return self.w_quant.bits, self.a_quant.bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.a_quant(x), self.w_quant(self.weight), self.bias)


QUANTIZED = {nn.Conv2d: QConv2d, nn.Linear: QLinear}


def quantizable(model: nn.Module) -> list[str]:
    """Names of every Conv2d and Linear, in module order."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def split_layers(model: nn.Module) -> tuple[list[str], list[str]]:
    """(searchable, fixed): the first conv and the last FC are fixed, the layers between searched."""
    names = quantizable(model)
    if len(names) < 3:
        raise ValueError(f"{type(model).__name__} has {len(names)} conv/linear layers; at least 3 are needed "
                         "(a fixed first conv, searchable layers, a fixed classifier)")
    return names[1:-1], [names[0], names[-1]]


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def quantize(model: nn.Module, policy, *, fixed_bits: int | Bits = 8, inplace: bool = False,
             calibration: torch.Tensor | None = None) -> nn.Module:
    """A copy of ``model`` whose searchable layers run at ``policy``'s (w_bits, a_bits).

    ``policy`` is a :class:`mpqlib.policy.Policy` or a ``{layer: (w, a)}`` mapping that names
    every searchable layer. The first conv and the last FC run at ``fixed_bits`` (or at the
    policy's ``fixed`` entry). ``calibration`` (a batch of inputs) initialises every step size
    now; otherwise each quantizer initialises on the first batch it sees.
    """
    from .policy import Policy

    pol = policy if isinstance(policy, Policy) else Policy.from_bits(policy)
    pol.validate(model)
    fixed_pair = (fixed_bits, fixed_bits) if isinstance(fixed_bits, int) else _check_bits(fixed_bits)
    searchable, fixed = split_layers(model)
    qmodel = model if inplace else copy.deepcopy(model)
    plan = {**{n: pol.fixed.get(n, fixed_pair) for n in fixed}, **pol.bits}
    for name in quantizable(qmodel):
        module = qmodel.get_submodule(name)
        q = QUANTIZED[nn.Conv2d if isinstance(module, nn.Conv2d) else nn.Linear].from_float(module, plan[name])
        q.train(module.training)
        set_module(qmodel, name, q)
    if calibration is not None:
        with torch.no_grad():
            was = qmodel.training
            qmodel.eval()
            qmodel(calibration)
            qmodel.train(was)
    return qmodel


def quantized_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, (QConv2d, QLinear))}
