"""Bit-width allocation: one (w_bits, a_bits) choice per layer under a BitOps and/or size budget.

The problem is a multiple-choice knapsack written as an integer linear program, as in HAWQ-V3
and LIMPQ: binary ``x[l, c]`` = layer ``l`` takes choice ``c``;

    minimise    sum_lc cost[l, c] * x[l, c]
    subject to  sum_c x[l, c] = 1                                  for every layer l
                fixed_bitops    + sum_lc macs[l]   * w_c * a_c * x[l, c] <= max_bitops
                fixed_size_bits + sum_lc params[l] * w_c       * x[l, c] <= max_size_bits

solved with the CBC bundled with PuLP. Budgets are Python ints and are met exactly: the solution
is checked in integer arithmetic after solving, and an assignment that CBC's tolerances let slip
over a budget is cut off (a no-good cut) and the problem solved again.

What makes it fast and exact (each point was found necessary by checking against brute force and
against HiGHS on random instances; PuLP's CBC 2.10.3 gets this problem wrong otherwise):

* choices that another choice of the same layer dominates (no more cost, BitOps or size) are
  dropped before building the LP: it changes no optimum and shrinks the LP;
* the objective handed to CBC is shifted per layer (a constant, since every layer takes exactly
  one choice) and scaled to [0, 1], and CBC's dual tolerance and cutoff increment are tightened;
* budget rows are shifted by each layer's cheapest choice, divided by their gcd (both exact for
  binary variables) and by a power of ten, so their coefficients lie in [1, 10);
* CBC's preprocessing is off (``_CBC_OPTIONS``): it returned wrong optima, even "Infeasible";
* when every layer's cheapest-cost choice already fits, that is the answer and no LP is built;
* :func:`sweep` builds the LP once and only changes the budget row's right-hand side.
"""

from __future__ import annotations

import math
import operator
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pulp

from .errors import BudgetError

Choice = tuple[int, int]  # (w_bits, a_bits)

# PuLP's CBC is 2.10.3. Checked against brute force and against HiGHS (scipy.optimize.milp) on
# random instances of this problem: its default preprocessing (CglPreProcess) returns wrong optima,
# even "Infeasible", on ~1% of small instances (cf. coin-or/Cbc#283, #720), so it is off; its default
# dual tolerance (1e-7) and cutoff increment (1e-5) lose the optimum when cost differences are small.
_CBC_OPTIONS = ("preprocess off", "dualT 1e-10", "increment 1e-12")
_FRACTIONAL = 1e-4  # a binary further than this from 0 and 1 means CBC's answer is broken
_MAX_CUTS = 20  # no-good cuts per solve before giving up on an over-budget CBC answer
_EXACT_MPS = 10**13  # PuLP writes numbers with 13 significant digits: integers below this are exact
_KINDS = {"bitops": "max_bitops", "size": "max_size_bits"}


class InfeasibleBudget(BudgetError):
    """Raised when no assignment meets the budget; the message states the smallest feasible BitOps
    and/or size (in bytes and bits) — i.e. every layer at its cheapest choice — and what to do."""

    def __init__(self, message: str, *, min_bitops: int, min_size_bits: int):
        super().__init__(message)
        self.min_bitops = min_bitops
        self.min_size_bits = min_size_bits


@dataclass(frozen=True)
class Allocation:
    """The chosen bit-widths and what they cost."""

    choice: dict[str, Choice]  # layer name -> (w, a), in the layers' order
    objective: float  # summed cost of the chosen entries
    bitops: int  # total incl. fixed
    size_bits: int  # total incl. fixed
    status: str  # PuLP status string, e.g. "Optimal"
    seconds: float  # solve wall time (building + solving)


def _solver(time_limit: float | None) -> pulp.LpSolver:
    """The one place that picks the solver: PuLP's bundled CBC (pulp>=3.3,<4 is pinned)."""
    with warnings.catch_warnings():  # its PuLP-4 deprecation notice; we pin pulp<4
        warnings.filterwarnings("ignore", message="PULP_CBC_CMD is deprecated", category=DeprecationWarning)
        return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit, gapRel=0, gapAbs=0,
                                 options=list(_CBC_OPTIONS))


# --------------------------------------------------------------------------- validation


def _as_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """``value`` as a Python int (numpy/torch integers accepted; floats and bools refused)."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got bool {value!r}")
    try:
        out = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    return out


def _check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    layers = tuple(layers)
    if not layers:
        raise ValueError("layers is empty: nothing to allocate")
    bad = [n for n in layers if not isinstance(n, str)]
    if bad:
        raise ValueError(f"layer names must be str, got {bad[:3]!r}")
    dup = sorted(n for n, k in Counter(layers).items() if k > 1)
    if dup:
        raise ValueError(f"duplicated layer names: {dup}")
    return layers


def _check_choices(choices: Sequence[Choice]) -> tuple[Choice, ...]:
    out = []
    for ch in choices:
        try:
            w, a = ch
        except (TypeError, ValueError):
            raise ValueError(f"a choice is (w_bits, a_bits), got {ch!r}") from None
        out.append((_as_int("w_bits", w, minimum=1), _as_int("a_bits", a, minimum=1)))
    if not out:
        raise ValueError("choices is empty")
    dup = sorted(c for c, k in Counter(out).items() if k > 1)
    if dup:
        raise ValueError(f"duplicated choices: {dup}")
    return tuple(out)


def _check_counts(name: str, values: Sequence[int], n: int) -> tuple[int, ...]:
    values = tuple(values)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but there are {n} layers")
    return tuple(_as_int(f"{name}[{i}]", v, minimum=0) for i, v in enumerate(values))


def _check_cost(cost: Any, layers: tuple[str, ...], n_choices: int) -> np.ndarray:
    """``cost`` as a float (L, C) array with +inf where a choice is not allowed (nan or +inf)."""
    if hasattr(cost, "detach"):  # a torch tensor, without importing torch
        cost = cost.detach().cpu().numpy()
    try:
        arr = np.array(cost, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"cost must be an (L, C) array of floats: {e}") from None
    if arr.shape != (len(layers), n_choices):
        raise ValueError(f"cost has shape {arr.shape}, expected (layers, choices) = ({len(layers)}, {n_choices})")
    if np.any(arr == -np.inf):
        raise ValueError("cost contains -inf (use +inf or nan to mark a choice as not allowed)")
    arr[np.isnan(arr)] = np.inf
    empty = [layers[i] for i in np.flatnonzero(np.isinf(arr).all(axis=1))]
    if empty:
        raise ValueError(f"layers with no allowed choice (all cost entries inf/nan): {empty}")
    return arr


def _check_budget(name: str, value: int | None) -> int | None:
    return None if value is None else _as_int(name, value)


def _check_time_limit(time_limit: float | None) -> float | None:
    if time_limit is None:
        return None
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not time_limit > 0:
        raise ValueError(f"time_limit must be a positive number of seconds or None, got {time_limit!r}")
    return float(time_limit)


# --------------------------------------------------------------------------- the instance


@dataclass(frozen=True)
class _Instance:
    """Validated inputs; BitOps and sizes are Python ints."""

    layers: tuple[str, ...]
    choices: tuple[Choice, ...]
    cost: np.ndarray  # (L, C) float, +inf = not allowed
    macs: tuple[int, ...]
    params: tuple[int, ...]
    fixed_bitops: int
    fixed_size_bits: int

    def bitops(self, l: int, c: int) -> int:
        w, a = self.choices[c]
        return self.macs[l] * w * a

    def size_bits(self, l: int, c: int) -> int:
        return self.params[l] * self.choices[c][0]

    def allowed(self, l: int) -> np.ndarray:
        return np.flatnonzero(np.isfinite(self.cost[l]))

    def totals(self, assign: Sequence[int]) -> tuple[int, int]:
        """(BitOps, size in bits) of an assignment, fixed parts included."""
        bitops = self.fixed_bitops + sum(self.bitops(l, c) for l, c in enumerate(assign))
        size = self.fixed_size_bits + sum(self.size_bits(l, c) for l, c in enumerate(assign))
        return bitops, size

    def min_bitops(self) -> int:
        return self.fixed_bitops + sum(min(self.bitops(l, c) for c in self.allowed(l)) for l in range(len(self.layers)))

    def min_size_bits(self) -> int:
        return self.fixed_size_bits + sum(min(self.size_bits(l, c) for c in self.allowed(l))
                                          for l in range(len(self.layers)))

    def argmin(self) -> list[int]:
        """Every layer at its cheapest-cost choice (the unconstrained optimum)."""
        return [int(c) for c in np.argmin(self.cost, axis=1)]

    def allocation(self, assign: Sequence[int], status: str, seconds: float) -> Allocation:
        bitops, size = self.totals(assign)
        return Allocation(choice={n: self.choices[c] for n, c in zip(self.layers, assign)},
                          objective=float(sum(self.cost[l, c] for l, c in enumerate(assign))),
                          bitops=bitops, size_bits=size, status=status, seconds=seconds)


def _instance(layers, choices, cost, macs, params, fixed_bitops, fixed_size_bits) -> _Instance:
    layers = _check_layers(layers)
    choices = _check_choices(choices)
    return _Instance(layers=layers, choices=choices, cost=_check_cost(cost, layers, len(choices)),
                     macs=_check_counts("macs", macs, len(layers)),
                     params=_check_counts("params", params, len(layers)),
                     fixed_bitops=_as_int("fixed_bitops", fixed_bitops, minimum=0),
                     fixed_size_bits=_as_int("fixed_size_bits", fixed_size_bits, minimum=0))


def _si(x: float, unit: str) -> str:
    """``x`` with an SI prefix, e.g. ``_si(4.1e9, "BitOps") == "4.1 GBitOps"``."""
    for prefix in ("", "k", "M", "G", "T"):
        if abs(x) < 1000 or prefix == "T":
            return f"{x:.4g} {prefix}{unit}"
        x /= 1000
    raise AssertionError


def _bitops_text(bitops: int) -> str:
    return f"{bitops} ({_si(bitops, 'BitOps')})"


def _bits_text(bits: int) -> str:
    byte = bits // 8 if bits % 8 == 0 else bits / 8
    return f"{bits} bits = {byte} bytes ({_si(bits / 8, 'B')})"


def _infeasible(inst: _Instance, message: str) -> InfeasibleBudget:
    return InfeasibleBudget(message, min_bitops=inst.min_bitops(), min_size_bits=inst.min_size_bits())


def _check_feasible(inst: _Instance, max_bitops: int | None, max_size_bits: int | None) -> None:
    """Raise :class:`InfeasibleBudget` if a budget is below its own minimum (every layer cheapest)."""
    problems = []
    if max_bitops is not None and max_bitops < (m := inst.min_bitops()):
        problems.append(f"max_bitops={max_bitops} is below the smallest feasible BitOps {_bitops_text(m)}, "
                        f"fixed_bitops={inst.fixed_bitops} included")
    if max_size_bits is not None and max_size_bits < (m := inst.min_size_bits()):
        problems.append(f"max_size_bits={max_size_bits} is below the smallest feasible size "
                        f"{_bits_text(m)}, fixed_size_bits={inst.fixed_size_bits} included")
    if problems:
        raise _infeasible(inst, "; ".join(problems) + ". Every searched layer is already at its cheapest "
                          "allowed choice: raise the budget, add lower bit-widths to the choices, "
                          "or quantize more of the fixed layers.")


# --------------------------------------------------------------------------- the LP


def _pareto(inst: _Instance, use_bitops: bool, use_size: bool) -> list[np.ndarray]:
    """Per layer, the allowed choices that no other allowed choice dominates.

    ``k`` dominates ``j`` when it costs no more and needs no more BitOps (``w*a``) and size (``w``)
    among the budgets in use, and is strictly better somewhere or, on a full tie, comes first.
    That relation is a strict order, so every dropped choice keeps a dominator: no optimum is lost.
    """
    w = np.array([c[0] for c in inst.choices])
    wa = np.array([c[0] * c[1] for c in inst.choices])
    res_le = np.ones((len(w), len(w)), dtype=bool)  # [k, j]: k needs no more than j
    res_lt = np.zeros_like(res_le)
    for r, used in ((wa, use_bitops), (w, use_size)):
        if used:
            res_le &= r[:, None] <= r[None, :]
            res_lt |= r[:, None] < r[None, :]
    first = np.arange(len(w))[:, None] < np.arange(len(w))[None, :]
    cost = inst.cost[:, :, None], inst.cost[:, None, :]  # [l, k, j] views
    dominated = (res_le & (cost[0] <= cost[1]) & (res_lt | (cost[0] < cost[1]) | first)
                 & np.isfinite(cost[0])).any(axis=1)
    return [np.flatnonzero(np.isfinite(inst.cost[l]) & ~dominated[l]) for l in range(len(inst.layers))]


@dataclass
class _Row:
    """A budget row as CBC sees it: ``sum x * (coeff - layer min) / (gcd * scale) <= rhs``."""

    constraint: pulp.LpConstraint
    gcd: int
    scale: int
    base: int  # fixed part + every layer's minimum


class _Model:
    """The PuLP problem for one instance, built once; budgets are set by changing right-hand sides."""

    def __init__(self, inst: _Instance, use_bitops: bool, use_size: bool):
        self.inst = inst
        self.keep = _pareto(inst, use_bitops, use_size)
        self.entries = [(l, int(c)) for l, cs in enumerate(self.keep) for c in cs]
        ends = np.cumsum([len(cs) for cs in self.keep])
        self.by_layer = [range(int(e) - len(cs), int(e)) for cs, e in zip(self.keep, ends)]  # positions in entries
        self.prob = pulp.LpProblem("allocate", pulp.LpMinimize)
        self.x = [self.prob.add_variable(f"x{l}_{c}", 0, 1, pulp.LpBinary) for l, c in self.entries]
        self.prob.setObjective(pulp.LpAffineExpression(zip(self.x, self._scaled_cost())))
        for l, idx in enumerate(self.by_layer):  # exactly one choice per layer
            row = pulp.LpAffineExpression((self.x[i], 1) for i in idx)
            self.prob.addConstraint(pulp.LpConstraint(row, pulp.LpConstraintEQ, rhs=1), f"one{l}")
        self.rows: dict[str, _Row] = {}
        if use_bitops:
            self._add_budget_row("max_bitops", [inst.bitops(l, c) for l, c in self.entries], inst.fixed_bitops)
        if use_size:
            self._add_budget_row("max_size_bits", [inst.size_bits(l, c) for l, c in self.entries],
                                 inst.fixed_size_bits)
        self.cuts: list[pulp.LpConstraint] = []  # active no-good cuts
        self.n_cuts = 0

    def _scaled_cost(self) -> list[float]:
        """Costs shifted so each layer's cheapest kept choice is 0, then scaled to at most 1."""
        shifted = [self.inst.cost[l, c] - self.inst.cost[l, self.keep[l]].min() for l, c in self.entries]
        top = max(shifted)
        return [float(s / top) if top > 0 else 0.0 for s in shifted]

    def _add_budget_row(self, name: str, coeffs: list[int], fixed: int) -> None:
        """``fixed + sum coeffs * x <= budget``, written as ``sum (coeffs - layer min) / (g * 10**k) * x``
        ``<= floor((budget - fixed - sum of layer mins) / g) / 10**k``: exact for binary x (``g`` is the
        gcd), the largest coefficient in [1, 10). CBC 2.10 returns wrong optima, even fractional "optimal"
        points, on the raw row (coefficients up to ~1e10); scaled, it does not."""
        low = [min(coeffs[i] for i in idx) for idx in self.by_layer]
        shifted = [c - low[l] for c, (l, _) in zip(coeffs, self.entries)]
        g = math.gcd(*shifted)
        if g == 0:  # every layer's choices cost the same here: the pre-check already covers the budget
            return
        scale = 10 ** (len(str(max(shifted) // g)) - 1)
        expr = pulp.LpAffineExpression((v, c // g / scale) for v, c in zip(self.x, shifted) if c)
        self.prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, rhs=0), name)
        self.rows[name] = _Row(self.prob.get_constraint_by_name(name), g, scale, fixed + sum(low))

    def set_budget(self, name: str, budget: int) -> None:
        """Set the row ``name`` (if the LP has it) to ``total <= budget``, fixed part included."""
        if name not in self.rows:
            return
        row = self.rows[name]
        units = (budget - row.base) // row.gcd
        if units >= _EXACT_MPS:
            warnings.warn(f"{name} row reaches {units} >= 1e13 after dividing by its gcd {row.gcd}: CBC reads it "
                          "rounded to 13 digits, so the optimum may be missed slightly (never the budget)",
                          stacklevel=3)
        rhs = units / row.scale
        if self.cuts and rhs > -row.constraint.constant:  # cuts were found under a tighter budget: drop them
            for cut in self.cuts:
                cut.changeRHS(len(self.inst.layers))
            self.cuts.clear()
        row.constraint.changeRHS(rhs)

    def solve(self, budgets: dict[str, int | None], time_limit: float | None) -> tuple[list[int], str]:
        """An optimal assignment (choice index per layer) meeting ``budgets`` exactly, and its status."""
        for _ in range(_MAX_CUTS + 1):
            assign, status = _solve_once(self, time_limit)
            over = _over_budget(self.inst, assign, budgets)
            if not over:
                return assign, status
            self._cut(assign)
        raise RuntimeError(f"CBC kept returning over-budget assignments ({over}) after {_MAX_CUTS} no-good cuts; "
                           "the budget rows are numerically too hard for it")

    def _cut(self, assign: list[int]) -> None:
        """Forbid exactly this assignment: sum of its x <= L - 1."""
        chosen = set(enumerate(assign))
        expr = pulp.LpAffineExpression((v, 1) for v, e in zip(self.x, self.entries) if e in chosen)
        name = f"cut{self.n_cuts}"
        self.n_cuts += 1
        self.prob.addConstraint(pulp.LpConstraint(expr, pulp.LpConstraintLE, rhs=len(assign) - 1), name)
        self.cuts.append(self.prob.get_constraint_by_name(name))


def _solve_once(model: _Model, time_limit: float | None) -> tuple[list[int], str]:
    """Run CBC once; the assignment it found (rounded) and PuLP's status, or raise on any non-optimum."""
    model.prob.solve(_solver(time_limit))
    status = pulp.LpStatus[model.prob.status]
    if model.prob.status == pulp.LpStatusInfeasible:
        raise _infeasible(model.inst, "no assignment meets max_bitops and max_size_bits together, although each "
                          f"alone is feasible (smallest BitOps {_bitops_text(model.inst.min_bitops())}, smallest size "
                          f"{_bits_text(model.inst.min_size_bits())}); relax one of the two budgets")
    if model.prob.status != pulp.LpStatusOptimal or model.prob.sol_status != pulp.LpSolutionOptimal:
        raise RuntimeError(f"CBC did not prove optimality: status {status!r}, solution "
                           f"{pulp.LpSolution[model.prob.sol_status]!r} (time_limit={time_limit})")
    return _decode(model), status


def _decode(model: _Model) -> list[int]:
    """The choice per layer whose binary is 1; raise if the solution is not one-hot per layer."""
    assign: list[int | None] = [None] * len(model.inst.layers)
    for v, (l, c) in zip(model.x, model.entries):
        if _FRACTIONAL < (v.varValue or 0.0) < 1 - _FRACTIONAL:
            raise RuntimeError(f"CBC reported an optimum with {v.name} = {v.varValue} (not 0 or 1)")
        if (v.varValue or 0.0) > 0.5:
            if assign[l] is not None:
                raise RuntimeError(f"CBC chose two choices for layer {model.inst.layers[l]!r}")
            assign[l] = c
    missing = [model.inst.layers[l] for l, c in enumerate(assign) if c is None]
    if missing:
        raise RuntimeError(f"CBC chose no choice for layers {missing}")
    return assign  # type: ignore[return-value]


def _over_budget(inst: _Instance, assign: Sequence[int], budgets: dict[str, int | None]) -> str:
    """'' if ``assign`` meets every budget in exact integer arithmetic, else what it exceeds."""
    bitops, size = inst.totals(assign)
    over = []
    if budgets.get("max_bitops") is not None and bitops > budgets["max_bitops"]:
        over.append(f"BitOps {bitops} > {budgets['max_bitops']}")
    if budgets.get("max_size_bits") is not None and size > budgets["max_size_bits"]:
        over.append(f"size {size} > {budgets['max_size_bits']} bits")
    return ", ".join(over)


def _optimum(inst: _Instance, budgets: dict[str, int | None], time_limit: float | None,
             models: dict[tuple[bool, bool], _Model]) -> tuple[list[int], str]:
    """The per-layer argmin if it fits the budgets, else the LP's optimum; ``models`` caches the LP
    per set of budgets in use, so a sweep builds it once."""
    if not _over_budget(inst, inst.argmin(), budgets):  # the unconstrained optimum already fits
        return inst.argmin(), "Optimal"
    key = (budgets["max_bitops"] is not None, budgets["max_size_bits"] is not None)
    if key not in models:
        models[key] = _Model(inst, use_bitops=key[0], use_size=key[1])
    for name, value in budgets.items():
        if value is not None:
            models[key].set_budget(name, value)
    return models[key].solve(budgets, time_limit)


# --------------------------------------------------------------------------- public API


def allocate(layers: Sequence[str], choices: Sequence[Choice], cost, macs: Sequence[int], params: Sequence[int], *,
             max_bitops: int | None = None, max_size_bits: int | None = None,
             fixed_bitops: int = 0, fixed_size_bits: int = 0, time_limit: float | None = None) -> Allocation:
    """Pick one (w_bits, a_bits) per layer minimising the summed ``cost`` within the budgets.

    ``cost`` is an (L, C) array-like (numpy, torch or nested lists): rows follow ``layers``, columns
    ``choices``; an entry of +inf or nan means that choice is not allowed for that layer. BitOps of
    layer l at (w, a) is ``macs[l] * w * a``; its size in bits is ``params[l] * w``. ``max_bitops`` and
    ``max_size_bits`` are whole-model totals (ints), of which ``fixed_bitops`` / ``fixed_size_bits``
    (the non-searched layers) are already spent; ``None`` = no such budget. The result meets the
    budgets exactly (never over, checked with Python ints). Raises :class:`InfeasibleBudget` when no
    assignment fits, ``ValueError`` on bad inputs, ``RuntimeError`` if CBC does not prove optimality
    (e.g. ``time_limit`` seconds ran out).
    """
    start = time.perf_counter()
    inst = _instance(layers, choices, cost, macs, params, fixed_bitops, fixed_size_bits)
    budgets = {"max_bitops": _check_budget("max_bitops", max_bitops),
               "max_size_bits": _check_budget("max_size_bits", max_size_bits)}
    time_limit = _check_time_limit(time_limit)
    _check_feasible(inst, budgets["max_bitops"], budgets["max_size_bits"])
    assign, status = _optimum(inst, budgets, time_limit, {})
    return inst.allocation(assign, status, time.perf_counter() - start)


def sweep(layers: Sequence[str], choices: Sequence[Choice], cost, macs: Sequence[int], params: Sequence[int],
          budgets: Sequence[int], *, kind: str = "bitops", **kw) -> list[Allocation]:
    """:func:`allocate` for each of several BitOps (``kind="bitops"``) or size (``kind="size"``) budgets.

    ``kw`` takes :func:`allocate`'s other keywords (the other budget, fixed parts, time_limit). The LP
    is built once and only its budget row changes between solves. Returns one :class:`Allocation`
    per budget, in ``budgets``' order; the first solved one's ``seconds`` also counts validation and
    building. Raises :class:`InfeasibleBudget` naming the first infeasible budget, before solving any.
    """
    start = time.perf_counter()
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    name = _KINDS[kind]
    other = _KINDS["size" if kind == "bitops" else "bitops"]
    unknown = set(kw) - {other, "fixed_bitops", "fixed_size_bits", "time_limit"}
    if unknown:
        raise ValueError(f"sweep over {kind} does not take {sorted(unknown)}")
    inst = _instance(layers, choices, cost, macs, params, kw.get("fixed_bitops", 0), kw.get("fixed_size_bits", 0))
    values = [_as_int(f"budgets[{i}]", b) for i, b in enumerate(budgets)]
    fixed = {other: _check_budget(other, kw.get(other))}
    time_limit = _check_time_limit(kw.get("time_limit"))
    for value in values:
        try:
            _check_feasible(inst, **{name: value}, **fixed)
        except InfeasibleBudget as e:
            raise _infeasible(inst, f"sweep budget {name}={value}: {e}") from None
    models: dict[tuple[bool, bool], _Model] = {}
    out: dict[int, Allocation] = {}
    for i in sorted(range(len(values)), key=lambda i: -values[i]):  # descending: no-good cuts stay valid
        limits = {"max_bitops": None, "max_size_bits": None, **fixed, name: values[i]}
        try:
            assign, status = _optimum(inst, limits, time_limit, models)
        except InfeasibleBudget as e:
            raise _infeasible(inst, f"sweep budget {name}={values[i]}: {e}") from None
        out[i] = inst.allocation(assign, status, time.perf_counter() - start)
        start = time.perf_counter()
    return [out[i] for i in range(len(values))]
