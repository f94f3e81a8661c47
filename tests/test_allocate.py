"""mpqlib.allocate against brute force, plus budgets, errors and the solver-status checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pulp
import pytest

import mpqlib.allocate as A
from mpqlib.allocate import Allocation, InfeasibleBudget, allocate, sweep

GRID = list(itertools.product(range(2, 9), repeat=2))


def make(seed: int, n_layers: int = 4, n_choices: int = 6, *, scale: float = 1.0, fixed: bool = False) -> dict:
    """A small random instance; ``scale`` multiplies the costs (per layer, spanning decades if < 1)."""
    rng = np.random.default_rng(seed)
    choices = [GRID[i] for i in rng.choice(len(GRID), n_choices, replace=False)]
    cost = rng.uniform(0.0, 1.0, (n_layers, n_choices))
    if scale != 1.0:
        cost *= scale ** rng.uniform(0.0, 1.0, (n_layers, 1))
    return {"layers": [f"conv{i}" for i in range(n_layers)], "choices": choices, "cost": cost,
            "macs": [int(m) for m in rng.integers(1, 10**6, n_layers)],
            "params": [int(p) for p in rng.integers(1, 10**4, n_layers)],
            "fixed_bitops": int(rng.integers(0, 10**6)) if fixed else 0,
            "fixed_size_bits": int(rng.integers(0, 10**4)) if fixed else 0}


def totals(p: dict, assign) -> tuple[int, int]:
    """Exact (BitOps, size in bits) of an assignment, fixed parts included."""
    chosen = [(l, p["choices"][c]) for l, c in enumerate(assign)]
    bitops = p["fixed_bitops"] + sum(p["macs"][l] * w * a for l, (w, a) in chosen)
    size = p["fixed_size_bits"] + sum(p["params"][l] * w for l, (w, _) in chosen)
    return bitops, size


def brute(p: dict, max_bitops=None, max_size_bits=None) -> float | None:
    """The optimal objective over every assignment (None: infeasible); inf/nan entries not allowed."""
    best = None
    for assign in itertools.product(range(len(p["choices"])), repeat=len(p["layers"])):
        value = sum(p["cost"][l][c] for l, c in enumerate(assign))
        if not math.isfinite(value):
            continue
        bitops, size = totals(p, assign)
        if (max_bitops is None or bitops <= max_bitops) and (max_size_bits is None or size <= max_size_bits):
            best = value if best is None else min(best, value)
    return best


def extremes(p: dict, which: int) -> tuple[int, int]:
    """Smallest and largest total BitOps (which=0) or size (which=1) over all assignments."""
    values = [totals(p, a)[which] for a in itertools.product(range(len(p["choices"])), repeat=len(p["layers"]))]
    return min(values), max(values)


def run(p: dict, **budgets) -> Allocation:
    return allocate(p["layers"], p["choices"], p["cost"], p["macs"], p["params"],
                    fixed_bitops=p["fixed_bitops"], fixed_size_bits=p["fixed_size_bits"], **budgets)


def check(p: dict, r: Allocation, **budgets) -> None:
    """``r`` is optimal (vs brute force), within budget and self-consistent."""
    assert list(r.choice) == p["layers"]
    assign = [p["choices"].index(r.choice[n]) for n in p["layers"]]
    assert (r.bitops, r.size_bits) == totals(p, assign)
    assert r.objective == pytest.approx(sum(p["cost"][l][c] for l, c in enumerate(assign)), abs=1e-12)
    assert r.objective == pytest.approx(brute(p, **budgets), abs=1e-9)
    assert budgets.get("max_bitops") is None or r.bitops <= budgets["max_bitops"]
    assert budgets.get("max_size_bits") is None or r.size_bits <= budgets["max_size_bits"]
    assert r.status == "Optimal"


# --------------------------------------------------------------------------- optimality


def draw_budget(p: dict, which: int, rng: np.random.Generator, binding: bool) -> int:
    """A budget in [min, max] over all assignments or, if ``binding``, below what the argmin needs."""
    lo, hi = extremes(p, which)
    if binding:
        hi = max(lo, totals(p, np.argmin(p["cost"], axis=1))[which] - 1)
    return int(rng.integers(lo, hi, endpoint=True))


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("mode", ["bitops", "size", "both"])
@pytest.mark.parametrize("binding", [True, False], ids=["binding", "any"])
def test_matches_brute_force(seed: int, mode: str, binding: bool) -> None:
    p = make(seed, n_layers=3 + seed % 2, n_choices=4 + seed % 6, fixed=seed % 2 == 1)
    rng = np.random.default_rng(100 + seed)
    budgets = {}
    if mode in ("bitops", "both"):
        budgets["max_bitops"] = draw_budget(p, 0, rng, binding)
    if mode in ("size", "both"):
        budgets["max_size_bits"] = draw_budget(p, 1, rng, binding)
    if brute(p, **budgets) is None:
        with pytest.raises(InfeasibleBudget):
            run(p, **budgets)
    else:
        check(p, run(p, **budgets), **budgets)


@pytest.mark.parametrize("seed", range(6))
def test_tiny_costs_spanning_decades_stay_optimal(seed: int) -> None:
    """On these raw costs with its default tolerances CBC returns clearly suboptimal answers."""
    p = make(seed, n_layers=4, n_choices=8, scale=1e-9)
    p["cost"] *= 1e-6
    lo, hi = extremes(p, 0)
    budget = lo + (hi - lo) // 3
    check(p, run(p, max_bitops=budget), max_bitops=budget)


def highs(p: dict, max_bitops: int) -> tuple[float, int]:
    """An independent optimum from HiGHS (scipy.optimize.milp): its objective and BitOps."""
    opt = pytest.importorskip("scipy.optimize")
    n_layers, n_choices = np.shape(p["cost"])
    wa = np.array([w * a for w, a in p["choices"]], dtype=float)
    res = opt.milp(np.ravel(p["cost"]), integrality=np.ones(n_layers * n_choices), bounds=opt.Bounds(0, 1),
                   constraints=[opt.LinearConstraint(np.kron(np.eye(n_layers), np.ones(n_choices)), 1, 1),
                                opt.LinearConstraint(np.outer(p["macs"], wa).reshape(1, -1), -np.inf, max_bitops)],
                   options={"mip_rel_gap": 0, "time_limit": 60})
    assert res.success, res.message
    assign = res.x.reshape(n_layers, n_choices).argmax(axis=1)
    return float(sum(p["cost"][l][c] for l, c in enumerate(assign))), totals(p, assign)[0]


# seeds on which CBC went wrong without the budget-row scaling (25, 33, 52, 55, 58, 88) or without the
# tightened tolerances (13, 46, 63), plus three others
@pytest.mark.parametrize("seed", [0, 1, 2, 13, 25, 33, 46, 52, 55, 58, 63, 88])
def test_matches_highs_with_macs_spanning_decades(seed: int) -> None:
    """8-20 layers x 25 choices, MACs from 1e4 to 1e9, Hessian-like costs: with such budget rows as
    they are, CBC returned wrong optima and even fractional "optimal" points."""
    rng = np.random.default_rng(seed)
    n_layers = int(rng.integers(8, 21))
    choices = list(itertools.product(range(2, 7), repeat=2))
    sens = np.exp(rng.normal(0.0, 1.5, (n_layers, 1)))
    noise = np.array([[4.0**-w + 0.5 * 4.0**-a for w, a in choices]])
    p = {"layers": [f"l{i}" for i in range(n_layers)], "choices": choices,
         "cost": sens * noise * rng.uniform(0.9, 1.1, (n_layers, len(choices))),
         "macs": [int(m) for m in np.exp(rng.uniform(np.log(1e4), np.log(1e9), n_layers))],
         "params": [1] * n_layers, "fixed_bitops": 0, "fixed_size_bits": 0}
    lo, free = totals(p, [0] * n_layers)[0], totals(p, np.argmin(p["cost"], axis=1))[0]
    budget = int(rng.integers(lo, free))
    r = run(p, max_bitops=budget)
    assert r.bitops <= budget
    objective, bitops = highs(p, budget)
    if bitops <= budget:  # HiGHS's own tolerance may let it slip over; then it proves nothing
        assert r.objective <= objective * (1 + 1e-9)


def test_budget_equal_to_minimum_is_feasible() -> None:
    p = make(1, fixed=True)
    lo_b, lo_s = extremes(p, 0)[0], extremes(p, 1)[0]
    r = run(p, max_bitops=lo_b)
    assert r.bitops == lo_b
    check(p, r, max_bitops=lo_b)
    r = run(p, max_size_bits=lo_s)
    assert r.size_bits == lo_s
    check(p, r, max_size_bits=lo_s)


def test_unconstrained_is_per_layer_argmin() -> None:
    p = make(2, n_layers=5, n_choices=9)
    r = run(p)
    assert [p["choices"].index(r.choice[n]) for n in p["layers"]] == list(np.argmin(p["cost"], axis=1))
    assert r.status == "Optimal"


def test_loose_budget_gives_argmin_and_tight_budget_binds() -> None:
    p = make(3, n_choices=9)
    free = run(p)
    assert run(p, max_bitops=free.bitops).choice == free.choice
    tight = run(p, max_bitops=free.bitops - 1)
    assert tight.bitops < free.bitops and tight.objective > free.objective


def test_excluded_entries_are_never_chosen() -> None:
    p = make(4, n_layers=4, n_choices=6)
    p["cost"][0, np.argmin(p["cost"][0])] = np.inf
    p["cost"][1, np.argmin(p["cost"][1])] = np.nan
    p["cost"][2, :] = np.nan
    p["cost"][2, 3] = 0.5  # layer 2 may only take choice 3
    r = run(p)
    assert r.choice["conv2"] == p["choices"][3]
    check(p, r)
    lo, hi = extremes(p, 0)
    budget = lo + (hi - lo) // 4
    if brute(p, max_bitops=budget) is not None:
        check(p, run(p, max_bitops=budget), max_bitops=budget)


def test_minimum_skips_excluded_choices() -> None:
    p = make(5, n_layers=2, n_choices=4)
    cheapest = min(range(4), key=lambda c: p["choices"][c][0] * p["choices"][c][1])
    p["cost"][:, cheapest] = np.inf
    allowed_min = p["fixed_bitops"] + sum(min(m * w * a for c, (w, a) in enumerate(p["choices"]) if c != cheapest)
                                          for m in p["macs"])
    with pytest.raises(InfeasibleBudget) as e:
        run(p, max_bitops=allowed_min - 1)
    assert e.value.min_bitops == allowed_min
    check(p, run(p, max_bitops=allowed_min), max_bitops=allowed_min)


def test_cost_as_torch_tensor_and_nested_lists() -> None:
    torch = pytest.importorskip("torch")
    p = make(6)
    budget = sum(extremes(p, 0)) // 2
    expected = run(p, max_bitops=budget).objective
    for cost in (torch.tensor(p["cost"], requires_grad=True), p["cost"].tolist()):
        assert run({**p, "cost": cost}, max_bitops=budget).objective == pytest.approx(expected, abs=1e-12)


def test_fixed_parts_count_against_the_budget() -> None:
    p = make(7)
    free = run({**p, "fixed_bitops": 0})
    moved = run({**p, "fixed_bitops": 1000}, max_bitops=free.bitops + 1000)
    assert moved.bitops == free.bitops + 1000 and moved.choice == free.choice
    assert run({**p, "fixed_bitops": 1001}, max_bitops=free.bitops + 1000).bitops <= free.bitops + 1000


# --------------------------------------------------------------------------- infeasible budgets


def test_infeasible_bitops_names_the_minimum() -> None:
    p = make(8, fixed=True)
    lo = extremes(p, 0)[0]
    with pytest.raises(InfeasibleBudget) as e:
        run(p, max_bitops=lo - 1)
    assert e.value.min_bitops == lo
    assert str(lo) in str(e.value) and "raise the budget" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_infeasible_size_names_bits_and_bytes() -> None:
    p = make(9, fixed=True)
    lo = extremes(p, 1)[0]
    with pytest.raises(InfeasibleBudget) as e:
        run(p, max_size_bits=lo - 1)
    assert e.value.min_size_bits == lo
    assert f"{lo} bits" in str(e.value)
    assert f"{lo // 8 if lo % 8 == 0 else lo / 8} bytes" in str(e.value)


def test_jointly_infeasible_budgets_raise() -> None:
    """Each budget alone is met by a different choice; together by none (found by CBC)."""
    p = {"layers": ["a", "b"], "choices": [(2, 6), (6, 1)], "cost": [[0.0, 1.0], [0.0, 1.0]],
         "macs": [10, 20], "params": [10, 20], "fixed_bitops": 0, "fixed_size_bits": 0}
    min_bitops, min_size = 6 * 10 + 6 * 20, 2 * 10 + 2 * 20
    check(p, run(p, max_bitops=min_bitops), max_bitops=min_bitops)
    check(p, run(p, max_size_bits=min_size), max_size_bits=min_size)
    with pytest.raises(InfeasibleBudget, match="together") as e:
        run(p, max_bitops=min_bitops, max_size_bits=min_size)
    assert (e.value.min_bitops, e.value.min_size_bits) == (min_bitops, min_size)


# --------------------------------------------------------------------------- exactness and solver status


def test_over_budget_cbc_answer_is_cut_and_resolved(monkeypatch) -> None:
    """If CBC's tolerance let an assignment slip over budget, it is cut off and the LP solved again."""
    p = make(10, n_choices=8)
    lo, hi = extremes(p, 0)
    budget = lo + (hi - lo) // 3
    over = [max(range(8), key=lambda c: p["choices"][c][0] * p["choices"][c][1])] * 4  # surely over budget
    real, calls = A._solve_once, []

    def sloppy(model, time_limit):
        calls.append(1)
        return (over, "Optimal") if len(calls) == 1 else real(model, time_limit)

    monkeypatch.setattr(A, "_solve_once", sloppy)
    check(p, run(p, max_bitops=budget), max_bitops=budget)
    assert len(calls) == 2


def test_gcd_scaled_budget_row_rounds_down(monkeypatch) -> None:
    """BitOps 8g, 20g or 32g, budget 20g - 1: the row divided by gcd 4g must round the budget down,
    so CBC's first answer already fits (no cut needed)."""
    g = 1000
    p = {"layers": ["a", "b"], "choices": [(2, 2), (4, 4)], "cost": [[1.0, 0.0], [1.0, 0.0]],
         "macs": [g, g], "params": [1, 1], "fixed_bitops": 0, "fixed_size_bits": 0}
    real, calls = A._solve_once, []
    monkeypatch.setattr(A, "_solve_once", lambda model, t: calls.append(1) or real(model, t))
    r = run(p, max_bitops=20 * g - 1)
    assert r.bitops == 8 * g and len(calls) == 1
    check(p, r, max_bitops=20 * g - 1)


def test_budget_beyond_mps_precision_warns_and_stays_within() -> None:
    p = {"layers": ["a", "b"], "choices": [(2, 2), (4, 4)], "cost": [[1.0, 0.0], [2.0, 0.0]],
         "macs": [10**13 + 1, 10**13 + 7], "params": [1, 1], "fixed_bitops": 0, "fixed_size_bits": 0}
    budget = totals(p, [0, 1])[0]  # layer b, the costlier one, gets (4, 4)
    with pytest.warns(UserWarning, match="13 digits"):
        r = run(p, max_bitops=budget)
    check(p, r, max_bitops=budget)


def test_persistently_over_budget_fails_loudly(monkeypatch) -> None:
    p = make(10, n_choices=8)
    over = [max(range(8), key=lambda c: p["choices"][c][0] * p["choices"][c][1])] * 4
    monkeypatch.setattr(A, "_solve_once", lambda model, time_limit: (over, "Optimal"))
    with pytest.raises(RuntimeError, match="over-budget"):
        run(p, max_bitops=extremes(p, 0)[0] + 1)


@pytest.mark.parametrize("status, sol_status", [(pulp.LpStatusOptimal, pulp.LpSolutionIntegerFeasible),
                                                 (pulp.LpStatusNotSolved, pulp.LpSolutionNoSolutionFound),
                                                 (pulp.LpStatusUndefined, pulp.LpSolutionNoSolutionFound)])
def test_non_optimal_status_raises(monkeypatch, status: int, sol_status: int) -> None:
    """E.g. a time limit hit with a feasible but unproven solution: PuLP says 'Optimal', we refuse."""

    class Stopped(pulp.LpSolver):
        def actualSolve(self, lp, **kwargs):
            lp.assignStatus(status, sol_status)
            return status

    monkeypatch.setattr(A, "_solver", lambda time_limit: Stopped())
    p = make(11)
    with pytest.raises(RuntimeError, match="did not prove optimality"):
        run(p, max_bitops=extremes(p, 0)[0] + 1)


def test_solver_is_bundled_cbc_with_time_limit() -> None:
    solver = A._solver(3.5)
    assert isinstance(solver, pulp.PULP_CBC_CMD) and solver.timeLimit == 3.5 and not solver.msg


def test_time_limit_is_accepted() -> None:
    p = make(12)
    budget = sum(extremes(p, 0)) // 2
    check(p, run(p, max_bitops=budget, time_limit=30), max_bitops=budget)


# --------------------------------------------------------------------------- validation


def test_invalid_inputs_raise_value_error() -> None:
    p = make(13, n_layers=3, n_choices=4)
    args = (p["layers"], p["choices"], p["cost"], p["macs"], p["params"])
    bad = [
        ((p["layers"][:2], *args[1:]), {}, "shape"),
        ((args[0], p["choices"][:3], *args[2:]), {}, "shape"),
        ((*args[:3], [1, -2, 3], args[4]), {}, r"macs\[1\] must be >= 0"),
        ((*args[:3], [1, 2], args[4]), {}, "macs has 2 entries"),
        ((*args[:3], [1.0, 2, 3], args[4]), {}, "must be an integer"),
        ((*args[:4], [1, 2, -1]), {}, r"params\[2\]"),
        ((["a", "b", "a"], *args[1:]), {}, "duplicated layer names"),
        ((args[0], [(2, 2), (2, 2), (4, 4), (8, 8)], *args[2:]), {}, "duplicated choices"),
        ((args[0], [(0, 2), (3, 3), (4, 4), (8, 8)], *args[2:]), {}, "w_bits must be >= 1"),
        ((args[0], [(2, 2, 2), (3, 3), (4, 4), (8, 8)], *args[2:]), {}, r"\(w_bits, a_bits\)"),
        ((args[0], [4, (3, 3), (4, 4), (8, 8)], *args[2:]), {}, r"\(w_bits, a_bits\)"),
        (([], [], [], [], []), {}, "empty"),
        ((*args[:2], np.full((3, 4), -np.inf), *args[3:]), {}, "-inf"),
        ((*args[:2], np.full((3, 4), np.nan), *args[3:]), {}, "no allowed choice"),
        ((*args[:2], [[1.0, 2.0], [1.0]], *args[3:]), {}, "cost"),
        (args, {"max_bitops": 1e9}, "max_bitops must be an integer"),
        (args, {"max_bitops": True}, "bool"),
        (args, {"max_size_bits": "100"}, "max_size_bits must be an integer"),
        (args, {"fixed_bitops": -1}, "fixed_bitops must be >= 0"),
        (args, {"fixed_size_bits": 1.5}, "fixed_size_bits must be an integer"),
        (args, {"time_limit": 0}, "time_limit"),
    ]
    for positional, kw, message in bad:
        with pytest.raises(ValueError, match=message):
            allocate(*positional, **kw)


def test_infeasible_is_not_raised_for_bad_input() -> None:
    p = make(14, n_layers=3, n_choices=4)
    with pytest.raises(ValueError) as e:
        allocate(p["layers"], p["choices"], p["cost"][:2], p["macs"], p["params"], max_bitops=0)
    assert not isinstance(e.value, InfeasibleBudget)


# --------------------------------------------------------------------------- sweep


@pytest.mark.parametrize("seed", range(3))
def test_sweep_bitops_is_monotone_and_optimal(seed: int) -> None:
    p = make(20 + seed, n_choices=7, fixed=True)
    lo, hi = extremes(p, 0)
    budgets = [int(b) for b in np.linspace(lo, hi, 9)]
    budgets = budgets[::2] + budgets[1::2]  # not in order
    curve = sweep(p["layers"], p["choices"], p["cost"], p["macs"], p["params"], budgets,
                  fixed_bitops=p["fixed_bitops"], fixed_size_bits=p["fixed_size_bits"])
    assert len(curve) == len(budgets)
    for r, b in zip(curve, budgets):
        check(p, r, max_bitops=b)
    by_budget = [r.objective for _, r in sorted(zip(budgets, curve), key=lambda t: t[0])]
    assert all(later <= earlier + 1e-12 for earlier, later in zip(by_budget, by_budget[1:]))
    assert by_budget[0] > by_budget[-1]


def test_sweep_builds_the_lp_once(monkeypatch) -> None:
    p = make(33, n_choices=8)
    lo, free = extremes(p, 0)[0], totals(p, np.argmin(p["cost"], axis=1))[0]
    budgets = [int(b) for b in np.linspace(lo, free - 1, 5)]
    built = []

    class Counted(A._Model):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(A, "_Model", Counted)
    curve = sweep(p["layers"], p["choices"], p["cost"], p["macs"], p["params"], budgets)
    assert len(built) == 1
    for r, b in zip(curve, budgets):
        check(p, r, max_bitops=b)


def test_cuts_are_dropped_when_the_budget_grows(monkeypatch) -> None:
    """A no-good cut made under a small budget must not forbid that assignment under a larger one."""
    p = make(34, n_choices=8)
    lo, free = extremes(p, 0)[0], totals(p, np.argmin(p["cost"], axis=1))[0]
    small, large = lo + (free - lo) // 4, free - 1
    best_large = run(p, max_bitops=large)
    assign = [p["choices"].index(best_large.choice[n]) for n in p["layers"]]
    assert best_large.bitops > small
    inst = A._instance(p["layers"], p["choices"], p["cost"], p["macs"], p["params"], 0, 0)
    real, calls = A._solve_once, []

    def sloppy(model, time_limit):  # first answer: the large budget's optimum, over the small budget
        calls.append(1)
        return (assign, "Optimal") if len(calls) == 1 else real(model, time_limit)

    monkeypatch.setattr(A, "_solve_once", sloppy)
    models = {}
    A._optimum(inst, {"max_bitops": small, "max_size_bits": None}, None, models)
    assert len(calls) == 2  # the cut was made
    again, _ = A._optimum(inst, {"max_bitops": large, "max_size_bits": None}, None, models)
    assert inst.allocation(again, "Optimal", 0.0).objective == pytest.approx(best_large.objective, abs=1e-12)


def test_sweep_size_with_a_bitops_budget() -> None:
    p = make(30, n_choices=8)
    lo_b, hi_b = extremes(p, 0)
    max_bitops = (lo_b + hi_b) // 2
    lo, hi = extremes(p, 1)
    budgets = [int(b) for b in np.linspace(lo, hi, 6)]
    feasible = [b for b in budgets if brute(p, max_bitops=max_bitops, max_size_bits=b) is not None]
    curve = sweep(p["layers"], p["choices"], p["cost"], p["macs"], p["params"], feasible, kind="size",
                  max_bitops=max_bitops)
    for r, b in zip(curve, feasible):
        check(p, r, max_bitops=max_bitops, max_size_bits=b)
    assert all(b.objective <= a.objective + 1e-12 for a, b in zip(curve, curve[1:]))


def test_sweep_infeasible_budget_is_named() -> None:
    p = make(31)
    lo = extremes(p, 0)[0]
    with pytest.raises(InfeasibleBudget) as e:
        sweep(p["layers"], p["choices"], p["cost"], p["macs"], p["params"], [lo * 2, lo - 7])
    assert f"max_bitops={lo - 7}" in str(e.value) and str(lo) in str(e.value)
    assert e.value.min_bitops == lo


def test_sweep_rejects_bad_arguments() -> None:
    p = make(32)
    args = (p["layers"], p["choices"], p["cost"], p["macs"], p["params"])
    with pytest.raises(ValueError, match="kind"):
        sweep(*args, [10**9], kind="latency")
    with pytest.raises(ValueError, match="max_bitops"):
        sweep(*args, [10**9], kind="bitops", max_bitops=10**9)
    with pytest.raises(ValueError, match="must be an integer"):
        sweep(*args, [1.5e9])
