"""LSQ quantization (Esser et al., ICLR 2020), the quantized layers, and ``quantize(model, policy)``.

* :class:`LSQ`: a learnable-step uniform quantizer. Weights are signed, levels
  [-2^(b-1), 2^(b-1)-1]; activations after a ReLU are unsigned, [0, 2^b-1]; activations that
  can be negative (the normalised image, a linear bottleneck's output) are signed. Rounding is
  straight-through; the step's gradient is scaled by 1/sqrt(numel * Q_P). The step is
  initialised from data on the first batch it sees: the step with the least quantization MSE,
  found exactly on a sorted sample (:class:`StepSearch`), and the sign of an activation
  quantizer is read from that batch unless given.
* :class:`QuantLayer`: the base of every quantized layer (Brevitas style). A subclass of a torch
  conv/linear that quantizes the input and the weight in :meth:`QuantLayer._quantized_inputs`
  and then runs the torch op unchanged. :class:`QConv2d` / :class:`QLinear` (one quantizer per
  tensor, fixed bits) are defined here; the search supernet's mixed layers reuse the same base.
* :func:`quantize`: one verb, a copy of the model whose searchable layers run at the policy's
  bits and whose first conv and last FC run at 8 bits (configurable).

Every tensor a quantizer creates lives on the wrapped layer's device and dtype; nothing in a
forward or backward pass reads a value back to the CPU once the steps are initialised.
"""

from __future__ import annotations

import copy
import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from .config import FIXED_BITS
from .policy import Policy, quantizable, split_layers

__all__ = ["LSQ", "StepSearch", "QuantLayer", "QLayer", "QConv2d", "QLinear", "levels", "quantize", "quantizable",
           "split_layers", "set_module", "quantized_layers"]

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


# --------------------------------------------------------------------------- step initialisation
_SAMPLE = 1 << 17          # elements of a tensor the step search looks at (a seeded random sample)
_GRID = torch.logspace(-3, 0, 96, dtype=torch.float64)  # candidate steps, as fractions of max|x| / Q_P
_REFINE = 33               # points of the second, finer grid between the best coarse point's neighbours
_EXACT_LEVELS = 1 << 10    # up to this many levels the MSE is computed exactly from prefix sums


class StepSearch:
    """The step with the least quantization MSE on one tensor, for any number of levels.

    The tensor is sampled (at most 2^17 elements drawn with a fixed seed), sorted once and summarised by
    prefix sums of x and x^2; the MSE of a step s with levels [-Q_N, Q_P] is then, exactly,
    sum_k sum_{x in cell k} (x - k s)^2 = S2 - 2 s sum_k k S1_k + s^2 sum_k k^2 n_k, with the cell
    edges found by binary search. One search serves every candidate bit-width of the tensor, so
    initialising a supernet costs one sort per layer input and weight instead of a grid of
    full-tensor passes per candidate. The steps tried are 96 log-spaced fractions of max|x| / Q_P
    in [0.001, 1] (wide enough for heavy-tailed tensors), then 33 points between the best one's
    neighbours.
    """

    def __init__(self, x: torch.Tensor):
        x = x.detach().flatten()
        lo, hi = torch.aminmax(x)
        self.negative = bool(lo < 0)
        self.top = torch.maximum(-lo, hi).to(torch.float64).clamp_min(1e-8)  # of the whole tensor: the grid's scale
        if x.numel() > _SAMPLE:  # a seeded random sample: a stride would alias with the feature maps' layout
            g = torch.Generator(device=x.device).manual_seed(0)
            x = x[torch.randint(x.numel(), (_SAMPLE,), generator=g, device=x.device)]
        self.sorted = x.to(torch.float64).sort().values
        self.p1 = torch.cat([self.sorted.new_zeros(1), self.sorted.cumsum(0)])
        self.s2 = (self.sorted ** 2).sum()

    def mse(self, steps: torch.Tensor, qn: int, qp: int) -> torch.Tensor:
        """Mean squared quantization error of the sample for each step in ``steps`` (1-D)."""
        n = len(self.sorted)
        if qn + qp + 1 > _EXACT_LEVELS:  # many levels: evaluate directly, a few steps at a time
            return torch.cat([((torch.clamp(torch.round(self.sorted / s[:, None]), -qn, qp) * s[:, None]
                                - self.sorted) ** 2).mean(1) for s in steps.split(8)])
        k = torch.arange(-qn, qp + 1, dtype=torch.float64, device=steps.device)       # levels
        bounds = (k[:-1] + 0.5) * steps[:, None]                                       # (G, L-1) cell edges
        edges = torch.searchsorted(self.sorted, bounds)
        full = lambda e: torch.cat([e.new_zeros(len(steps), 1), e, e.new_full((len(steps), 1), n)], 1)  # noqa: E731
        edges = full(edges)
        counts = (edges[:, 1:] - edges[:, :-1]).to(torch.float64)                      # n_k
        sums = self.p1[edges[:, 1:]] - self.p1[edges[:, :-1]]                          # S1_k
        err = self.s2 - 2 * steps * (sums * k).sum(1) + steps ** 2 * (counts * k * k).sum(1)
        return err.clamp_min(0) / n

    def best_step(self, qn: int, qp: int) -> torch.Tensor:
        """The MSE-best step (a 0-d float64 tensor) for levels [-Q_N, Q_P]."""
        grid = _GRID.to(self.sorted.device) * self.top / max(qp, 1)
        i = int(self.mse(grid, qn, qp).argmin())
        lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
        fine = torch.cat([grid[i:i + 1], torch.linspace(0, 1, _REFINE, dtype=torch.float64, device=grid.device) * (hi - lo) + lo])
        return fine[int(self.mse(fine, qn, qp).argmin())]


class LSQ(nn.Module):
    """Learned step size quantizer with ``bits`` bits; ``signed=None`` reads the sign from data.

    ``device`` / ``dtype``: where the step lives (the wrapped layer's). The sign and whether the
    step is initialised are kept as buffers (saved with the state) and mirrored in Python, so a
    forward pass never reads a device tensor back.
    """

    def __init__(self, bits: int, signed: bool | None = None, per_weight: bool = False, *,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.bits = bits
        self.per_weight = per_weight  # a weight quantizer: numel is the tensor's, fixed
        levels(bits, True)  # validate
        self.step = nn.Parameter(torch.ones(1, device=device, dtype=dtype))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool, device=device))
        # -1: not known yet (read from the first batch), 0: unsigned, 1: signed; saved with the state.
        self.register_buffer("_sign", torch.tensor(-1 if signed is None else int(signed), dtype=torch.int8, device=device))
        self._signed: bool | None = signed
        self._ready = False

    @property
    def signed(self) -> bool | None:
        return self._signed

    @signed.setter
    def signed(self, value: bool) -> None:
        self._signed = bool(value)
        self._sign.fill_(int(value))

    @property
    def ready(self) -> bool:
        """Whether the step has been initialised (from data or a loaded state)."""
        return self._ready

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if not self._sign.is_meta:  # refresh the Python mirrors from the loaded buffers
            sign = int(self._sign.item())
            self._signed = None if sign < 0 else bool(sign)
            self._ready = bool(self.initialised.item())

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"

    @property
    def qrange(self) -> tuple[int, int]:
        return levels(self.bits, bool(self.signed))

    def grad_scale(self, x: torch.Tensor) -> float:
        """LSQ's step-gradient scale 1 / sqrt(numel * Q_P); numel per sample for activations."""
        numel = x.numel() if self.per_weight else x[0].numel()
        return 1.0 / math.sqrt(numel * max(self.qrange[1], 1))

    @torch.no_grad()
    def initialise(self, x: torch.Tensor, search: StepSearch | None = None) -> None:
        """Set the sign (if unknown) and the step that minimises the quantization MSE on ``x``.

        ``search``: a :class:`StepSearch` of ``x`` already built (shared by several quantizers)."""
        search = search or StepSearch(x)
        if self.signed is None:
            self.signed = search.negative
        self.step.copy_(search.best_step(*self.qrange).reshape(1))
        self.initialised.fill_(True)
        self._ready = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._ready:
            self.initialise(x)
        qn, qp = self.qrange
        return _LSQFunction.apply(x, self.step, qn, qp, self.grad_scale(x))

    @torch.no_grad()
    def integers(self, x: torch.Tensor) -> torch.Tensor:
        """The integer codes of ``x`` (what an integer kernel would multiply)."""
        qn, qp = self.qrange
        return torch.clamp(torch.round(x / self.step), -qn, qp)


def initialise_all(quantizers: Iterable[LSQ], x: torch.Tensor) -> None:
    """Initialise several quantizers of the same tensor ``x`` from one sorted sample."""
    search = StepSearch(x)
    for q in quantizers:
        q.initialise(x, search)


# --------------------------------------------------------------------------- quantized layers
def _check_bits(bits) -> Bits:
    try:
        w, a = (int(b) for b in bits)
    except (TypeError, ValueError):
        raise TypeError(f"bits must be a (w_bits, a_bits) pair of ints, not {bits!r}") from None
    return w, a


class QuantLayer:
    """Base of every quantized layer: mixed into a torch ``nn.Conv2d`` / ``nn.Linear`` subclass.

    A subclass says how the input and the weight are quantized (:meth:`_quantized_inputs`); the
    forward pass then runs the torch op on them, so convolutions of any stride, padding and
    groups (depthwise included) and linear layers share one code path. :meth:`_twin` builds a
    layer with a float module's geometry, device, dtype and a copy of its weights.
    """

    def _quantized_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(quantized input, quantized weight)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xq, wq = self._quantized_inputs(x)
        if isinstance(self, nn.Conv2d):
            return self._conv_forward(xq, wq, self.bias)
        return F.linear(xq, wq, self.bias)

    @property
    def factory(self) -> dict:
        """``device`` and ``dtype`` of the layer's weight: where its quantizers' tensors belong."""
        return {"device": self.weight.device, "dtype": self.weight.dtype}

    @classmethod
    def _twin(cls, module: nn.Module, **kwargs):
        """A ``cls`` with ``module``'s geometry, device and dtype, holding a copy of its weights."""
        if isinstance(module, nn.Conv2d):
            args = (module.in_channels, module.out_channels, module.kernel_size, module.stride, module.padding,
                    module.dilation, module.groups, module.bias is not None, module.padding_mode)
        elif isinstance(module, nn.Linear):
            args = (module.in_features, module.out_features, module.bias is not None)
        else:
            raise TypeError(f"only nn.Conv2d and nn.Linear can be quantized, not {type(module).__name__}")
        layer = cls(*args, device=module.weight.device, dtype=module.weight.dtype, **kwargs)
        layer.load_state_dict(module.state_dict(), strict=False)
        layer.train(module.training)
        return layer


class QLayer(QuantLayer):
    """One LSQ quantizer for the weight (signed) and one for the input, at fixed bits."""

    def __init__(self, *args, w_bits: int = 8, a_bits: int = 8, a_signed: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_quant = LSQ(w_bits, signed=True, per_weight=True, **self.factory)
        self.a_quant = LSQ(a_bits, signed=a_signed, **self.factory)

    @classmethod
    def from_float(cls, module: nn.Module, bits: Bits, a_signed: bool | None = None):
        w, a = _check_bits(bits)
        return cls._twin(module, w_bits=w, a_bits=a, a_signed=a_signed)

    @property
    def bits(self) -> Bits:
        return self.w_quant.bits, self.a_quant.bits

    def _quantized_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.a_quant(x), self.w_quant(self.weight)


class QConv2d(QLayer, nn.Conv2d):
    """An ``nn.Conv2d`` whose weight and input are LSQ-quantized."""


class QLinear(QLayer, nn.Linear):
    """An ``nn.Linear`` whose weight and input are LSQ-quantized."""


def quantized_twin(kinds: dict[type, type], module: nn.Module) -> type:
    """The class in ``kinds`` ({nn.Conv2d: ..., nn.Linear: ...}) that quantizes ``module``."""
    for base, cls in kinds.items():
        if isinstance(module, base):
            return cls
    raise TypeError(f"only nn.Conv2d and nn.Linear can be quantized, not {type(module).__name__}")


QUANTIZED = {nn.Conv2d: QConv2d, nn.Linear: QLinear}


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def fixed_pair(fixed_bits: int | Bits) -> Bits:
    return (fixed_bits, fixed_bits) if isinstance(fixed_bits, int) else _check_bits(fixed_bits)


@torch.no_grad()
def run_calibration(model: nn.Module, x: torch.Tensor) -> None:
    """One forward pass of ``x`` in eval mode (initialises every lazy quantizer); mode restored."""
    was = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was)


def quantize(model: nn.Module, policy, *, fixed_bits: int | Bits = FIXED_BITS, inplace: bool = False,
             calibration: torch.Tensor | None = None) -> nn.Module:
    """A copy of ``model`` whose searchable layers run at ``policy``'s (w_bits, a_bits).

    ``policy`` is a :class:`mpqlib.policy.Policy` or a ``{layer: (w, a)}`` mapping that names
    every searchable layer. The first conv and the last FC run at ``fixed_bits`` (or at the
    policy's ``fixed`` entry). ``calibration`` (a batch of inputs) initialises every step size
    now; otherwise each quantizer initialises on the first batch it sees.
    """
    pol = Policy.from_bits(policy)
    pol.validate(model)
    pair = fixed_pair(fixed_bits)
    _, fixed = split_layers(model)
    qmodel = model if inplace else copy.deepcopy(model)
    plan = {**{n: pol.fixed.get(n, pair) for n in fixed}, **pol.bits}
    for name in quantizable(qmodel):
        module = qmodel.get_submodule(name)
        set_module(qmodel, name, quantized_twin(QUANTIZED, module).from_float(module, plan[name]))
    if calibration is not None:
        run_calibration(qmodel, calibration)
    return qmodel


def quantized_layers(model: nn.Module) -> dict[str, QLayer]:
    """The fixed-bit quantized layers of ``model`` by name, in module order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, QLayer)}
