"""How many seeds a transfer test needs: variance components, a pre-registered outlier rule, and
an a-priori power analysis by simulation (``results/power.json``, protocol version 4).

A transfer test compares the QAT top-1 of policies searched on a proxy (side a) with those
searched on the target (side b): a matrix per side, one row per search seed, one column per QAT
seed, the QAT seeds shared (paired). Its verdict is the equivalence rule on the 95% CI of
:func:`mpqlib.study.report.bootstrap_difference`: "equivalent" when the whole CI lies within
+-margin, "different" when it excludes 0. Before spending compute on seeds, this module asks,
from the variance the committed runs show:

* :func:`components`: each side's between-search-seed SD and its residual (QAT-run) SD, from a
  two-way layout without interaction (the QAT seed's own effect, common to both sides, cancels
  in a paired difference and is reported apart);
* :func:`~mpqlib.study.outliers.collapsed`: which runs collapsed (the outlier rule, fixed before the runs it judges);
* :func:`simulate`: P(verdict "equivalent" | true difference 0) and P(verdict "different" |
  true difference ``delta``) for a design (search seeds per side, QAT seeds), by simulating the
  matrices from the components and running the very bootstrap and rule of the claims;
* :func:`choose`: the cheapest design that reaches the power goal, or, where a compute cap
  binds, the best design within it, with the power it achieves.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

import numpy as np

from .outliers import COLLAPSE_FLOOR_PP, COLLAPSE_K, collapsed, robust_sd, runs_matrix, unit_medians, without_collapsed  # noqa: F401
from .report import MARGIN_PP, _interval, bootstrap_difference, verdict

POWER_GOAL = 0.8          # both P(equivalent | 0) and P(different | DELTA_PP) at least this
DELTA_PP = -0.6           # the deficit a test must detect: twice the equivalence margin
SEARCH_SEEDS = (3, 6, 9, 12, 18, 24)
QAT_SEEDS = (2, 4, 8)


@dataclass(frozen=True)
class Components:
    """One side's variance: between search seeds (``search_sd``), within (``residual_sd``: a QAT
    run's own noise beyond its seed's common effect), the QAT seed's common effect
    (``qat_seed_sd``, cancels in a paired difference), from ``n_search`` x ``n_qat`` runs."""

    search_sd: float
    residual_sd: float
    qat_seed_sd: float
    n_search: int
    n_qat: int


def components(m: np.ndarray) -> Components:
    """Variance components of one side's complete matrix (two-way, no interaction; method of
    moments, negative estimates set to 0)."""
    m = np.asarray(m, float)
    if not np.isfinite(m).all() or m.ndim != 2:
        raise ValueError(f"components need a complete 2-D matrix of runs, got shape {m.shape} with gaps")
    n, q = m.shape
    rows, cols, grand = m.mean(1), m.mean(0), m.mean()
    resid = m - rows[:, None] - cols[None, :] + grand
    mse = float((resid ** 2).sum() / max((n - 1) * (q - 1), 1))
    search = max(0.0, float(rows.var(ddof=1)) - mse / q) if n > 1 else float("nan")
    seed = max(0.0, float(cols.var(ddof=1)) - mse / n) if q > 1 else float("nan")
    return Components(math.sqrt(search), math.sqrt(mse), math.sqrt(seed), n, q)


def simulate(a: Components, b: Components, n_search: int, n_qat: int, delta: float, *, margin: float = MARGIN_PP,
             n_sims: int = 400, n_boot: int = 500, seed: int = 0) -> dict:
    """Share of simulated tests of ``n_search`` search seeds per side x ``n_qat`` QAT seeds whose
    verdict is "equivalent" and "different", when the true difference a - b is ``delta`` pp.
    Each simulated side is (its search seed's effect) + (a run's residual), drawn from the
    side's :class:`Components`; the CI is :func:`bootstrap_difference`'s (``n_boot`` resamples)."""
    rng = np.random.default_rng(seed)
    eq = diff = 0
    for _ in range(n_sims):
        ma = delta + a.search_sd * rng.standard_normal((n_search, 1)) + a.residual_sd * rng.standard_normal((n_search, n_qat))
        mb = b.search_sd * rng.standard_normal((n_search, 1)) + b.residual_sd * rng.standard_normal((n_search, n_qat))
        ci = _interval(bootstrap_difference(ma, mb, n_boot, rng), 0.95)
        word = verdict(float(ma.mean() - mb.mean()), ci, "equivalence", margin)
        eq += word.startswith("equivalent")
        diff += word == "different"
    return {"equivalent": eq / n_sims, "different": diff / n_sims, "n_sims": n_sims}


def design_cost(n_search: int, n_qat: int, have_a: tuple[int, int], have_b: tuple[int, int],
                seconds: Mapping[str, float]) -> float:
    """Compute seconds of the runs a design adds to what exists (``have_a``/``have_b``: search
    seeds x QAT seeds each side has run already; existing records are reused, new seeds only add
    steps). ``seconds``: ``search_a``, ``search_b``, ``qat`` (one run of each)."""
    total = 0.0
    for (n0, q0), search in ((have_a, seconds["search_a"]), (have_b, seconds["search_b"])):
        total += max(0, n_search - n0) * search
        total += (n_search * n_qat - min(n_search, n0) * min(n_qat, q0)) * seconds["qat"]
    return total


def designs(a: Components, b: Components, have_a: tuple[int, int], have_b: tuple[int, int],
            seconds: Mapping[str, float], *,
            search_seeds: Iterable[int] = SEARCH_SEEDS, qat_seeds: Iterable[int] = QAT_SEEDS,
            delta: float = DELTA_PP, margin: float = MARGIN_PP, n_sims: int = 400, seed: int = 0) -> list[dict]:
    """Power and cost of every design of the grid (the existing design included)."""
    out = []
    grid = sorted(set(itertools.product(search_seeds, qat_seeds)) | ({tuple(have_a)} if have_a[0] else set()))
    for i, (n, q) in enumerate(grid):
        null = simulate(a, b, n, q, 0.0, margin=margin, n_sims=n_sims, seed=seed + 2 * i)
        alt = simulate(a, b, n, q, delta, margin=margin, n_sims=n_sims, seed=seed + 2 * i + 1)
        out.append({"search_seeds": n, "qat_seeds": q, "power_equivalent": null["equivalent"],
                    "power_different": alt["different"], "false_different": null["different"],
                    "added_seconds": round(design_cost(n, q, have_a, have_b, seconds), 1),
                    "existing": (n, q) == tuple(have_a) == tuple(have_b)})
    return out


def choose(rows: list[dict], cap_seconds: float | None, goal: float = POWER_GOAL) -> dict:
    """The cheapest design reaching ``goal`` on both powers within ``cap_seconds``; where none
    does, the design within the cap with the highest P(equivalent | 0) (then the cheaper), whose
    achieved power the claim carries (``reaches_goal`` False)."""
    affordable = [r for r in rows if cap_seconds is None or r["added_seconds"] <= cap_seconds]
    good = [r for r in affordable if r["power_equivalent"] >= goal and r["power_different"] >= goal]
    if good:
        return {**min(good, key=lambda r: (r["added_seconds"], -r["power_equivalent"])), "reaches_goal": True}
    best = max(affordable, key=lambda r: (r["power_equivalent"], r["power_different"], -r["added_seconds"]))
    return {**best, "reaches_goal": False}


__all__ = ["COLLAPSE_K", "COLLAPSE_FLOOR_PP", "POWER_GOAL", "DELTA_PP", "Components", "unit_medians", "robust_sd",
           "collapsed", "without_collapsed", "components", "simulate", "design_cost", "designs", "choose", "asdict"]


# --------------------------------------------------------------------------- protocol version 4's tests
def median_elapsed(cache_dir, step: str, **match) -> float | None:
    """The median recorded time (``elapsed_s``) of the cached ``step`` records under ``cache_dir``
    whose configuration matches ``match`` (keys are paths into the configuration joined by
    ``__``: ``search__type="SeamConfig"``, ``data__name="mnist-2400"``, ``qat__epochs=10``)."""
    import json
    from pathlib import Path

    def get(cfg, path):
        for part in path.split("__"):
            cfg = cfg.get(part) if isinstance(cfg, Mapping) else None
        return cfg

    times = []
    for f in sorted((Path(cache_dir) / step).glob("*.json")):
        stored = json.loads(f.read_text())
        if all(get(stored.get("config") or {}, k) == v for k, v in match.items()) and stored.get("elapsed_s"):
            times.append(stored["elapsed_s"])
    return float(np.median(times)) if times else None


@dataclass(frozen=True)
class TransferTest:
    """One test of protocol version 4: side a minus side b on ``model`` at ``budget``, QAT
    ``regime`` ("1epoch" or "plateau"); ``components_of``: the policies whose committed runs
    stand in for a side's variance where that side has no runs yet."""

    id: str
    model: str
    budget: str
    a: str
    b: str
    regime: str
    search_a: dict
    search_b: dict
    components_of: tuple[str, str] | None = None
    search_seeds: tuple[int, ...] = SEARCH_SEEDS  # the designs considered
    qat_seeds: tuple[int, ...] = QAT_SEEDS


QAT_STEP = {"1epoch": {"qat__epochs": 1, "qat__train_images": 15000}, "plateau": {"qat__epochs": 10}}
SEAM_MNIST = {"search__type": "SeamConfig", "search__epochs": 8, "data__name": "mnist-2400"}
TARGET = {"search__type": "TargetConfig", "search__epochs": 2, "data__name": "fmnist"}
SEAM_FMNIST4 = {"search__type": "SeamConfig", "search__epochs": 8, "data__name": "fmnist-2400"}

V4_TESTS = (  # in the order the compute cap serves them
    TransferTest("headline-1epoch", "mobilenetv1", "w2a4", "seam-mnist", "target-fmnist", "1epoch", SEAM_MNIST, TARGET),
    # the 2x2 of search data x head: D = the target search (the model's own head) on the 4%
    # Fashion-MNIST proxy (costed like SEAM on it), B = the target search on all 60,000 images,
    # A = SEAM (L-GM head) on the 4% proxy; D has no runs yet: SEAM on the 4% proxy stands in
    TransferTest("deficit-data", "mobilenetv1", "w2a4", "target-fmnist4", "target-fmnist", "1epoch", SEAM_FMNIST4, TARGET,
                 components_of=("seam-fmnist4", "target-fmnist")),
    TransferTest("deficit-head", "mobilenetv1", "w2a4", "seam-fmnist4", "target-fmnist4", "1epoch", SEAM_FMNIST4,
                 SEAM_FMNIST4, components_of=("seam-fmnist4", "seam-fmnist4")),
    # the class-disjoint model: search seeds 3-5 added on both sides (6 a side), its power as it comes
    TransferTest("other-classes", "mobilenetv1-c0-4", "w2a4", "seam-disjoint", "target-fmnist", "1epoch",
                 {"search__type": "SeamConfig", "data__name": "fmnist[5-9]-1200"},
                 {"search__type": "TargetConfig", "data__name": "fmnist[0-4]"}, search_seeds=(6,), qat_seeds=(4,)),
    TransferTest("headline-plateau", "mobilenetv1", "w2a4", "seam-mnist-long", "target-fmnist-long", "plateau",
                 SEAM_MNIST, TARGET),
)
CAP_HOURS = 16.0
RESERVED_HOURS = {"resnet20-budget-pilot": 1.0}  # taken off the cap before the tests are served


def side_matrix(rows: list[dict], model: str, budget: str, policy: str) -> np.ndarray:
    """A policy's runs as search seeds x QAT seeds (an empty 0 x 0 matrix where it has none)."""
    return runs_matrix([r for r in rows if r["model"] == model and str(r["budget"]) == budget
                        and r["policy"] == policy])[2]


def power_analysis(rows: list[dict], cache_root, *, cap_hours: float = CAP_HOURS, n_sims: int = 1000,
                   tests: tuple[TransferTest, ...] = V4_TESTS, seed: int = 0) -> dict:
    """``results/power.json``: for each test of protocol version 4, its variance components
    (collapsed runs replaced by the rule), the power and added compute of every design of the
    grid, and the design chosen under the compute cap (served in the order of ``tests``)."""
    from pathlib import Path

    left = cap_hours * 3600 - sum(RESERVED_HOURS.values()) * 3600
    out: dict = {"goal": {"power": POWER_GOAL, "margin_pp": MARGIN_PP, "delta_pp": DELTA_PP,
                          "rule": "equivalence on the 95% bootstrap CI"},
                 "cap_hours": cap_hours, "reserved_hours": RESERVED_HOURS, "n_sims": n_sims, "tests": {}}
    for i, t in enumerate(tests):
        cache = Path(cache_root) / t.model
        seconds = {"search_a": median_elapsed(cache, "search", **t.search_a),
                   "search_b": median_elapsed(cache, "search", **t.search_b),
                   "qat": median_elapsed(cache, "qat", **QAT_STEP[t.regime])}
        if None in seconds.values():
            raise ValueError(f"power analysis {t.id}: no cached step to time {seconds}")
        ma, mb = (side_matrix(rows, t.model, t.budget, s) for s in (t.a, t.b))
        sa, sb = t.components_of or (t.a, t.b)
        ca, cb = (components(without_collapsed(side_matrix(rows, t.model, t.budget, s))) for s in (sa, sb))
        have_a, have_b = ma.shape if ma.size else (0, 0), mb.shape if mb.size else (0, 0)
        rows_t = designs(ca, cb, have_a, have_b, seconds, search_seeds=t.search_seeds, qat_seeds=t.qat_seeds,
                         n_sims=n_sims, seed=seed + 1000 * i)
        chosen = choose([r for r in rows_t if (r["search_seeds"], r["qat_seeds"]) in
                         set(itertools.product(t.search_seeds, t.qat_seeds))], left)
        left -= chosen["added_seconds"]
        out["tests"][t.id] = {**asdict(t), "components": {"a": asdict(ca), "b": asdict(cb)},
                              "have": {"a": list(have_a), "b": list(have_b)}, "seconds": seconds,
                              "designs": rows_t, "chosen": chosen}
    out["added_hours"] = round(sum(v["chosen"]["added_seconds"] for v in out["tests"].values()) / 3600, 2)
    return out
