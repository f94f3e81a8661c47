"""Per-layer MACs and parameters, measured from one forward pass; BitOps and size of a policy.

Conventions (one place for the whole project):

* MACs of a conv = H_out x W_out x C_out x (C_in / groups) x k_h x k_w; of a linear
  = in x out (per sample; for batch size 1). Biases, BN, pooling and additions are not counted.
* params = weight elements (biases stay in 32-bit and are not part of the size budget).
* BitOps of a layer = MACs x w_bits x a_bits; the fixed first conv and last FC count at their
  own bits (8 x 8 by default).
* Model size = sum params x w_bits / 8 bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .errors import BudgetError
from .config import FIXED_PAIR, exact_uniform  # noqa: F401  (a budget name's exact (w, a); cost's API too)
from .quant import quantizable, split_layers


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str          # conv, dwconv (groups == channels), linear
    shape: str         # "C_in->C_out kxk /s" or "in->out", and the output map
    macs: int
    params: int
    fixed: bool        # first conv / last FC: not searched


@dataclass
class CostModel:
    """The per-layer table of a model at one input size."""

    layers: list[LayerCost]
    input_size: tuple[int, ...]

    @property
    def searchable(self) -> list[LayerCost]:
        return [c for c in self.layers if not c.fixed]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.searchable]

    @property
    def macs(self) -> int:
        return sum(c.macs for c in self.layers)

    @property
    def params(self) -> int:
        return sum(c.params for c in self.layers)

    def __getitem__(self, name: str) -> LayerCost:
        for c in self.layers:
            if c.name == name:
                return c
        raise KeyError(f"no layer {name!r} in the cost model")

    def _bits(self, policy) -> dict[str, tuple[int, int]]:
        from .policy import Policy

        pol = policy if isinstance(policy, Policy) else Policy.from_bits(policy)
        bits = {c.name: pol.fixed.get(c.name, FIXED_PAIR) for c in self.layers if c.fixed}
        unknown = sorted(set(pol.bits) - {c.name for c in self.layers})
        missing = [c.name for c in self.searchable if c.name not in pol.bits]
        if unknown or missing:
            from .policy import PolicyError

            raise PolicyError(f"policy does not fit the cost model: unknown layers {unknown}, missing layers {missing}")
        return {**bits, **pol.bits}

    def bitops(self, policy) -> int:
        """Total BitOps of ``policy`` (fixed layers at their bits, 8x8 unless the policy says)."""
        bits = self._bits(policy)
        return sum(c.macs * bits[c.name][0] * bits[c.name][1] for c in self.layers)

    def size_bits(self, policy) -> int:
        bits = self._bits(policy)
        return sum(c.params * bits[c.name][0] for c in self.layers)

    def size_bytes(self, policy) -> float:
        return self.size_bits(policy) / 8

    def fixed_bitops(self, fixed_bits: tuple[int, int] = FIXED_PAIR) -> int:
        return sum(c.macs * fixed_bits[0] * fixed_bits[1] for c in self.layers if c.fixed)

    def fixed_size_bits(self, fixed_bits: tuple[int, int] = FIXED_PAIR) -> int:
        return sum(c.params * fixed_bits[0] for c in self.layers if c.fixed)

    def uniform_bitops(self, w_bits: float, a_bits: float | None = None, fixed_bits: tuple[int, int] = FIXED_PAIR) -> int:
        """BitOps of uniform w/a bits on the searchable layers (fractional bits give in-between budgets)."""
        a_bits = w_bits if a_bits is None else a_bits
        return self.fixed_bitops(fixed_bits) + round(sum(c.macs for c in self.searchable) * w_bits * a_bits)

    def table(self) -> list[dict]:
        """Rows for a book table: name, kind, shape, MACs, params, fixed."""
        return [{"layer": c.name, "kind": c.kind, "shape": c.shape, "MACs": c.macs, "params": c.params,
                 "fixed (8-bit)": c.fixed} for c in self.layers]


INPUT_SIZE: tuple[int, ...] = (1, 1, 28, 28)  # the default model input (batch 1): Fashion-MNIST's
BUDGET_FORMS = "a budget looks like 'w3a3' or 'w2.5a2.5' (uniform bits), 3 (= w3a3) or a BitOps number like 1.2e8"


def budget(cost: CostModel, spec: str | int | float) -> int:
    """A BitOps budget from ``w3a3`` (uniform 3/3 on the searchable layers), ``w2.5a2.5``,
    ``3`` (= w3a3), or a plain BitOps number (``5.78e9``, ``12000000``).

    Numbers up to 16 are bit-widths, larger ones BitOps. Zero, negative, infinite or NaN
    budgets raise :class:`~mpqlib.errors.BudgetError` saying what a budget looks like."""
    if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
        raise BudgetError(f"cannot read budget {spec!r}: {BUDGET_FORMS}")
    given = spec
    if isinstance(spec, str):
        s = spec.strip().lower()
        w, sep, a = s[1:].partition("a")
        if s.startswith("w") and sep:
            return cost.uniform_bitops(_bits(w, spec), _bits(a, spec))
        try:
            spec = float(s)
        except ValueError:
            raise BudgetError(f"cannot read budget {spec!r}: {BUDGET_FORMS}") from None
    if not math.isfinite(spec) or spec <= 0:
        raise BudgetError(f"budget {given!r} must be a positive finite number: {BUDGET_FORMS}")
    if spec <= 16:
        return cost.uniform_bitops(spec)
    return int(spec)


@dataclass(frozen=True)
class Budget:
    """A budget resolved once for one model: its name (``w3a2``, or the BitOps as text), its
    BitOps, and the uniform (w, a) that meets it exactly where its name gives one."""

    name: str
    bitops: int
    exact: tuple[int, int] | None

    @classmethod
    def of(cls, cost: "CostModel", spec: "str | int | Budget") -> "Budget":
        if isinstance(spec, Budget):
            return spec
        if isinstance(spec, str):
            return cls(spec, budget(cost, spec), exact_uniform(spec))
        return cls(str(int(spec)), int(spec), None)


def _bits(text: str, spec) -> float:
    """One bit-width of a ``wXaY`` budget: a positive number up to 16."""
    try:
        b = float(text)
    except ValueError:
        raise BudgetError(f"cannot read budget {spec!r}: {BUDGET_FORMS}") from None
    if not math.isfinite(b) or not 0 < b <= 16:
        raise BudgetError(f"budget {spec!r}: bit-widths must be in (0, 16], not {text}; {BUDGET_FORMS}")
    return b


def _describe(m: nn.Module, out: torch.Tensor) -> tuple[str, str, int, int]:
    if isinstance(m, nn.Conv2d):
        kh, kw = m.kernel_size
        h, w = out.shape[-2:]
        macs = h * w * m.out_channels * (m.in_channels // m.groups) * kh * kw
        kind = "dwconv" if m.groups > 1 and m.groups == m.in_channels else "conv"
        shape = f"{m.in_channels}->{m.out_channels} {kh}x{kw}/{m.stride[0]}{' g' + str(m.groups) if m.groups > 1 else ''} @{h}x{w}"
        return kind, shape, macs, m.weight.numel()
    rows = out.numel() // out.shape[-1] // out.shape[0] if out.dim() > 1 else 1
    return "linear", f"{m.in_features}->{m.out_features}", rows * m.in_features * m.out_features, m.weight.numel()


@torch.no_grad()
def cost_model(model: nn.Module, input_size: tuple[int, ...] = INPUT_SIZE) -> CostModel:
    """Measure MACs and params of every Conv2d / Linear with one forward pass of a zero batch."""
    names = quantizable(model)
    _, fixed = split_layers(model)
    found: dict[str, tuple] = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: found.__setitem__(n, _describe(m, o)))
             for n in names]
    was = model.training
    try:
        model.eval()
        param = next(model.parameters())
        model(torch.zeros(input_size, device=param.device, dtype=param.dtype))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    unused = [n for n in names if n not in found]
    if unused:
        raise ValueError(f"layers {unused} did not run in the forward pass; a cost model needs every layer used")
    return CostModel([LayerCost(n, *found[n], fixed=n in fixed) for n in names], tuple(input_size))
