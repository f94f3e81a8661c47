"""The study's whole-run steps over every model of a profile: the pilot that picks the main
budget, the efficiency harness, and claims.json (each reads its cached steps through
:class:`~mpqlib.study.experiments.Experiments`; :mod:`mpqlib.study.pipeline` computes what is missing)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from .._io import read_json, write_json
from ..errors import ConfigError
from .cache import SearchRef, attempt
from .experiments import Experiments, Missing, load_runs, save_runs
from .profiles import Profile, resolve
from .facts import POWER_RULE
from .objections import disjoint_name, experiments

# The tests of protocol version 4 whose design and power a claim carries (claim id -> the design
# field of Profile.v4, the test of results/power.json).
V4_DESIGNS = {"headline-1epoch": ("headline_1epoch", "headline-1epoch"),
              "headline-plateau": ("headline_plateau", "headline-plateau"),
              "deficit-data": ("deficit", "deficit-data"), "deficit-head": ("deficit", "deficit-head"),
              "deficit-classes": ("deficit", None)}


def with_design(claim: dict, p: Profile, power: dict | None) -> dict:
    """A version-4 claim with its ``design`` (search seeds a side, QAT seeds) and the
    ``power_equivalent`` the power analysis gave that design (None where it has none)."""
    if claim["id"] not in V4_DESIGNS:
        return claim
    field, test = V4_DESIGNS[claim["id"]]
    n, q = getattr(p.v4, field)
    designs = (((power or {}).get("tests") or {}).get(test) or {}).get("designs", [])
    row = next((d for d in designs if (d["search_seeds"], d["qat_seeds"]) == (n, q)), None)
    return {**claim, "design": {"search_seeds": n, "qat_seeds": q},
            "power_equivalent": None if row is None else row["power_equivalent"],
            "power_different": None if row is None else row["power_different"]}


# The claims the second budget's policies (SEAM on MNIST, the target search, uniform and the
# random policies) can make.
SECOND_CLAIMS = ("positive-control", "proxy-vs-target", "seam-vs-uniform")


def budget_pilot(p: Profile, rows: list[dict]) -> dict:
    """Protocol version 4's entry rules for the budget pilot's model at each candidate budget: the
    control (the target search beats uniform, superiority) and the power ratio, and whether the
    budget passes both; the first budget that does is ``chosen`` (None: the model leaves the tally)."""
    from . import report

    on = p.v4.budget_pilot_on
    if on not in p.models:
        return {}
    ex = Experiments(p, on)
    out: dict = {"model": on, "budgets": {}, "chosen": None}
    for b in p.v4.budget_pilot_budgets:
        table = ex.table(rows, b)
        try:
            control = report.claim("budget-control", on, b, table, "target-fmnist-pilot", "uniform", "superiority",
                                   n_boot=p.bootstrap)
            pw = ex.power(rows, b)
        except ConfigError:  # the pilot's steps are not run yet at this budget
            continue
        passes = control["verdict"] == "better" and pw.ratio >= POWER_RULE
        out["budgets"][b] = {"control": control, "power_ratio": pw.ratio, "passes": bool(passes)}
        if passes and out["chosen"] is None:
            out["chosen"] = b
    return out


def _power_entry(pw) -> dict:
    """A :class:`~mpqlib.study.report.Power` as claims.json stores it."""
    return {"seed_sd_pp": pw.seed_sd_pp, "policy_sd_pp": pw.policy_sd_pp, "ratio": pw.ratio}


def claims_file(profile: Profile | str = "full", overrides: dict | None = None) -> dict:
    """``claims.json`` for every model of the profile from ``runs.json`` (mpqlib.study.claims_doc checks the schema)."""
    from . import claims_doc, report
    from .outliers import scan

    p = resolve(profile, overrides)
    rows = load_runs(p)
    power_doc = read_json(p.path("power.json")) if p.path("power.json").exists() else None
    claims, power, head, budgets, second = [], {}, {}, {}, []
    for model in p.models:
        ex = Experiments(p, model)
        claims += [with_design(c, p, power_doc) for c in ex.claims(rows)]
        if p.second_budget != ex.budget_name:  # the few policies kept at the second budget (W3A3, the paper's)
            second += ex.claims(rows, p.second_budget, ids=SECOND_CLAIMS)
        power[model] = _power_entry(ex.power(rows))
        head[model] = ex.head_accuracy()
        budgets[model] = ex.budget_name
    derived = disjoint_name(p)
    extra = {}
    if any(r["model"] == derived for r in rows):  # chapter 7's class-subset model: its claims under the base model
        dex = experiments(p, derived)
        for c in dex.claims(rows, ids=("disjoint-classes-vs-target",)):  # its random policies serve its power only
            claims.append({**c, "model": p.objections_model(), "experiment": derived})
        try:  # its own power ratio (protocol version 4 runs its random policies)
            extra["experiment_power"] = {derived: _power_entry(dex.power(rows))}
        except ConfigError:  # no random policies run on it yet
            pass
    if p.protocol_version >= 4:
        extra["budget_pilot"] = budget_pilot(p, rows)
    if second:  # apart from "claims", which hold one budget per model (the main one)
        extra["second_budget_claims"] = second
    return claims_doc.claims_json(claims, power, head, p.path("claims.json"), margin_pp=report.MARGIN_PP, budgets=budgets,
                              outliers=scan(rows), **extra)


def pilot_runs(ex: Experiments, budget: str) -> list[dict]:
    """The pilot's runs of one model at ``budget``: the random policies and uniform precision under
    the first two QAT seeds (while the pipeline plans, its missing steps are noted)."""
    seeds = ex.p.qat_seeds[:2]
    return ex.random_runs(budget, qat_seeds=seeds) + ex.runs("uniform", budget, (0,), seeds)


def pilot(profile: Profile | str = "full", overrides: dict | None = None, models: Iterable[str] | None = None) -> dict:
    """Pick the main budget per model: at each of the profile's pilot budgets, ``n_random`` random
    policies and the exact uniform policy under the first two QAT seeds; the budget with the
    largest ratio (SD across random policies) / (seed SD) is chosen, and ``power`` says whether
    that ratio reaches the pre-registered 2. Writes results_dir/pilot.json."""
    p = resolve(profile, overrides)
    out: dict = {"rule": f"largest policy SD / seed SD over the pilot budgets; power if >= {POWER_RULE:g}", "budgets": {},
                 "chosen": {}, "power": {}}
    for model in (models or p.models):
        ex = Experiments(p, model)
        per_budget = {}
        for b in p.pilot_budgets:
            rows = pilot_runs(ex, b)
            save_runs(p, rows, ex.policies)
            pw = ex.power(rows, b)
            per_budget[b] = {"seed_sd_pp": pw.seed_sd_pp, "policy_sd_pp": pw.policy_sd_pp, "ratio": pw.ratio,
                             "bitops": ex.bitops_of(b),
                             "uniform_top1": [r["top1"] for r in rows if r["policy"] == "uniform"],
                             "random_top1_mean": float(np.mean([r["top1"] for r in rows if r["policy"] != "uniform"]))}
        best = max(per_budget, key=lambda b: np.nan_to_num(per_budget[b]["ratio"], nan=-1.0))
        out["budgets"][model] = per_budget
        out["chosen"][model] = best
        out["power"][model] = bool(per_budget[best]["ratio"] >= POWER_RULE)
    write_json(p.path("pilot.json"), out)
    return out


def efficiency_plan(p: Profile, ex: Experiments) -> dict[str, dict[str, tuple[str, dict]]]:
    """The efficiency harness's searches (chapter 4): per part of efficiency.json (``methods``,
    ``search_length``, ``proxy_size``) entry -> (policy name, search options)."""
    e = p.efficiency
    steps = p.seam.epochs * -(-len(ex.data("proxy")) // p.seam.batch_size)
    return {
        "methods": {
            "seam": ("seam-mnist", {}),
            "target-equal-epochs": ("target-fmnist", {"epochs": p.seam.epochs}),
            "target-equal-steps": ("target-fmnist", {"epochs": p.seam.epochs, "max_steps": steps}),
            "joint": ("joint-fmnist", {}),
            "evaluation": ("evaluation-fmnist", {}),
            "orthogonality": ("orthogonality-mnist", {}),
            "orthogonality-target": ("orthogonality-fmnist", {}),
            "limpq": ("limpq-fmnist", {}),
            "hawq": ("hawq-fmnist", {}),
        },
        "search_length": {f"{kind}@{n}": (name, {"epochs": n})
                          for kind, name in (("seam", "seam-mnist"), ("target", "target-fmnist")) for n in e.epochs_curve},
        "proxy_size": {str(n): ("seam-mnist", {"data": f"{p.proxy}:{n}"}) for n in e.proxy_sizes},
    }


def timing_plan(p: Profile, ex: Experiments) -> list[tuple[str, dict]]:
    """The searches of chapter 4's table that the timing stage re-times (:mod:`mpqlib.study.timing`),
    cheapest first by the protocol's record where there is one, so that a stage cut short has
    timed the most searches."""
    plan = list(efficiency_plan(p, ex)["methods"].values())

    def known_seconds(item: tuple[str, dict]) -> float:
        try:
            return ex.search(item[0], **item[1]).record["seconds"]
        except Missing:  # not searched yet (the pipeline is planning): last
            return float("inf")

    return sorted(plan, key=known_seconds)


def efficiency_run(profile: Profile | str = "full", overrides: dict | None = None, model: str | None = None,
                   remeasure: bool = False) -> dict:
    """Every class of search, each followed by the common QAT, measured in one run on one machine
    (chapter 4), plus search length and proxy size against policy quality. Writes efficiency.json
    through :func:`mpqlib.study.efficiency.efficiency_table`, with the start-up / memory benchmark
    results_dir/lean-MODEL.json where it exists (``benchmarks/bench_search_lean.py --out``; the
    book's run script makes it). ``remeasure``: searches whose cost was measured under contention
    run again (same policy, new cost record); run it on a quiet machine."""
    from . import efficiency

    p = resolve(profile, overrides)
    ex = Experiments(p, model or p.efficiency_model())
    parts = efficiency_parts(ex, remeasure)
    for k, (name, kw) in efficiency_plan(p, ex)["methods"].items():  # the timing stage's repeats, where stored
        parts["methods"][k]["timing"] = timed(ex, name, kw, p.timing.repeats)
    lean = p.path(f"lean-{ex.model_name}.json")
    return efficiency.efficiency_table(**parts, lean=lean if lean.exists() else None,
                                       gpu_steps=[read_json(f) for f in p.gpu_step_files()],
                                       path=p.path("efficiency.json"), profile=p.name, model=ex.model_name,
                                       fp_train_seconds=ex.meta.get("train_seconds"))


def timed(ex: Experiments, name: str, kw: dict, repeats: int) -> dict | None:
    """The stored timing repeats of a search (:func:`mpqlib.study.timing.summary`); read only:
    nothing is measured here (the timing stage does that)."""
    from .timing import summary

    key = ex.search(name, **kw).record["cache_key"]
    found = [ex.cache.load("timing", {"search": key, "repeat": r}) for r in range(repeats)]
    return summary([f for f in found if f is not None])


def efficiency_parts(ex: Experiments, remeasure: bool = False) -> dict[str, dict[str, dict | None]]:
    """Every search of :func:`efficiency_plan` measured (:func:`_measured`), by part and entry;
    while the pipeline plans, an entry with a missing step is None (its steps noted)."""
    return {part: {k: _measured(ex, name, kw, remeasure) for k, (name, kw) in plan.items()}
            for part, plan in efficiency_plan(ex.p, ex).items()}


def _measured(ex: Experiments, name: str, kw: dict, remeasure: bool = False) -> dict | None:
    """A search's cost record (with the host its stored step ran on) and its policy's QAT top-1
    per seed of the efficiency harness (None while planning with a step missing)."""
    from .timing import host_label

    seeds = ex.p.efficiency.qat_seeds
    try:
        res = ex.search(name, remeasure=remeasure, **kw)
    except Missing as missing:  # planning: its QAT runs wait for it
        ex.after(missing, SearchRef.of(name, **kw), seeds)
        return None
    recs = [attempt(ex.qat, res.policy, s) for s in seeds]
    if None in recs:
        return None
    stored = ex.cache.by_key("search", res.record.get("cache_key", ""))
    return {"record": {**res.record, "host": host_label((stored or {}).get("host"))}, "policy": res.policy.to_dict(), "top1": [r["top1"] for r in recs],
            "qat_seconds": [r.get("seconds") for r in recs], "qat_seeds": list(seeds),
            "bitops": int(ex.cost.bitops(res.policy))}


__all__ = ["claims_file", "pilot", "pilot_runs", "efficiency_plan", "efficiency_parts", "timing_plan", "efficiency_run", "timed"]
