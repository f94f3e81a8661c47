"""What the book's chapters know of each model, as the study stored it: ``results/models.json``.

The study (:meth:`mpqlib.study.pipeline.Study.finish`) writes, per model, the facts a chapter
shows beside ``runs.json`` and ``claims.json``: the checkpoint's metrics, the main budget, the
per-layer cost table, the policy and record of every search a chapter shows (the main budget's
methods at search seed 0 and the random policies, whose ILP the study solved), SEAM's head fit
over its search seeds, and the path of chapter 1's observation record. A chapter reads them
through :class:`StoredModel`, which answers the questions a chapter asks of
:class:`~mpqlib.study.experiments.Experiments` without a model, data or solver: nothing is computed
while a page renders, and a missing file says which ``mpq study run`` makes it."""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

import numpy as np

from .._io import read_json, write_json
from ..cost import CostModel, LayerCost
from ..errors import ReadOnlyError
from ..policy import Policy

if TYPE_CHECKING:  # annotations only: experiments imports this module
    from .experiments import Experiments
    from .profiles import Profile

MODELS_FILE = "models.json"
# The searches a chapter shows at the main budget (chapter 2's policies, chapter 3's table).
SHOWN = ("seam-mnist", "seam-mnist-argmax", "seam-optdigits", "seam-fmnist4", "ce-mnist", "target-fmnist",
         "limpq-fmnist", "hawq-fmnist", "uniform")
META_KEYS = ("arch", "dataset", "num_classes", "epochs", "top1", "seed")
# What a chapter may show of a search's record: what ran and what it found, not what it took (a
# uniform or random policy is found again on each read, with new timings).
RECORD_KEYS = ("method", "search_data", "seed", "epochs", "images", "budget_bitops", "bitops", "size_bytes",
               "cache_key")


def study_command(p: "Profile", parts: Iterable[str] = ()) -> str:
    """The command that writes ``p``'s results files (``parts`` of the study, or all of them)."""
    parts = list(parts)
    return f"mpq study run --profile {p.name}" + (f" --parts {' '.join(parts)}" if parts else "")


def require(p: "Profile", name: str, parts: Iterable[str] = ()) -> Path:
    """``p``'s results file ``name``; a :class:`~mpqlib.errors.ReadOnlyError` naming the study
    command that writes it where it is missing (a chapter never computes it)."""
    path = p.path(name)
    if not path.exists():
        raise ReadOnlyError(f"{path} does not exist: the chapters only read the study's results. "
                            f"Write it with `{study_command(p, parts)}`")
    return path


class RunsView:
    """The per-seed rows of one model (``runs.json``), and its claims' sides: shared by the
    study's :class:`~mpqlib.study.experiments.Experiments` and the book's :class:`StoredModel`.
    Needs ``model_name``, ``budget_name`` and ``p`` (the profile)."""

    model_name: str
    budget_name: str

    def table(self, rows: list[dict], budget: str | None = None) -> list[dict]:
        """This model's rows of the long table at ``budget`` (None: the main budget)."""
        b = budget or self.budget_name
        return [r for r in rows if r["model"] == self.model_name and r["budget"] == b]

    def side(self, name: str) -> str | list[str]:
        """A claim's side: a policy name, or ``random``: every random policy of the profile."""
        return [f"random-{i}" for i in range(self.p.n_random)] if name == "random" else name

    def power(self, rows: list[dict], budget: str | None = None):
        """Seed SD and policy SD over the random policies at ``budget`` (:func:`mpqlib.study.report.power`)."""
        from . import report

        return report.power(self.table(rows, budget), self.side("random"))


# --------------------------------------------------------------------------- the study writes
def model_facts(ex: "Experiments") -> dict:
    """The checkpoint's metrics, the main budget and the per-layer cost of ``ex``'s model."""
    return {"meta": {k: ex.meta[k] for k in META_KEYS if k in ex.meta},
            "budget": {"name": ex.budget_name, "bitops": ex.budget},
            "cost": {"input_size": list(ex.cost.input_size), "layers": [asdict(c) for c in ex.cost.layers]}}


def _untimed(doc):
    """``doc`` without its wall-clock fields (``ilp_seconds``, ...): a policy's provenance says how
    long its ILP took, which differs from one solve to the next."""
    if isinstance(doc, dict):
        return {k: _untimed(v) for k, v in doc.items() if not k.endswith("seconds")}
    return doc


def search_facts(ex: "Experiments", runs: list[dict] | None = None) -> dict:
    """The searches a chapter shows and SEAM's head fit (every step they read is cached by the
    protocol part; the random policies' and readouts' ILPs are solved here, once)."""
    names = list(SHOWN) + [f"random-{i}" for i in range(ex.p.n_random)]
    searches = {}
    for n in names:
        res = ex.search(n)
        record = {k: res.record[k] for k in RECORD_KEYS if k in res.record}  # no timings: the same bytes each run
        searches[n] = {"policy": _untimed(res.policy.to_dict()), "record": record}
        if "p_w" in res.extras and not n.endswith("-argmax"):
            seeds = sorted({r["search_seed"] for r in runs or [] if r["model"] == ex.model_name
                            and r["budget"] == ex.budget_name and r["policy"] == n}, key=str) or [0]
            searches[n]["decisiveness"] = decisiveness_facts(ex, n, seeds)
    return {"searches": searches, "head_accuracy": ex.head_accuracy()}


def decisiveness_facts(ex: "Experiments", name: str, seeds: Iterable[int]) -> dict:
    """How sure a differentiable search was of its policy, over the search ``seeds`` the protocol
    ran (:func:`mpqlib.search.result.decisiveness` of each seed's final mixing weights): per seed the
    layers determined and the median margin, and seed 0's margins per layer."""
    from ..search.result import decisiveness

    layers = [c.name for c in ex.cost.searchable]
    per_seed = {}
    for s in seeds:
        extras = ex.search(name, seed=s).extras
        d = decisiveness(layers, extras["p_w"], extras["p_a"])
        per_seed[str(s)] = d if s == 0 else {k: v for k, v in d.items() if k != "per_layer"}
    return per_seed


def matrix(rows: list[dict], policies: str | Iterable[str]) -> np.ndarray:
    """Per-seed top-1 of ``policies``: one row per (policy, search seed), one column per QAT seed."""
    names = [policies] if isinstance(policies, str) else list(policies)
    units: dict = {}
    for r in rows:
        if r["policy"] in names:
            units.setdefault((r["policy"], r["search_seed"]), {})[r["qat_seed"]] = r["top1"]
    seeds = sorted({q for u in units.values() for q in u})
    return np.array([[u.get(q, np.nan) for q in seeds] for _, u in sorted(units.items(), key=str)], float)


def _estimate(e) -> dict | None:
    return None if e is None else {"estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "n": e.n}


def qat_facts(ex: "Experiments", rows: list[dict]) -> dict:
    """Chapter 3's statistics of ``ex``'s model from the per-seed runs, computed once by the study:
    per policy at the main budget the mean top-1 with its bootstrap CI and the paired difference to
    uniform (``main``); on a sweep model, per sweep budget each policy's mean and CI (``sweep``) and
    SEAM minus uniform (``sweep_gain``; ``ci_low`` None where one run per side leaves no CI)."""
    from ..errors import ConfigError
    from . import report

    p = ex.p
    own = ex.table(rows)
    main = {}
    for n in [x for x in SHOWN if x != "seam-mnist-argmax"] + ["random"]:
        side = ex.side(n)
        if not len(matrix(own, side)):
            continue
        est = report.mean_ci(matrix(own, side), n_boot=p.bootstrap)
        diff = None if n == "uniform" else report.paired_difference(own, side, "uniform", n_boot=p.bootstrap)
        bitops = [r["bitops"] for r in own if r["policy"] in ([side] if isinstance(side, str) else side)]
        main[n] = {"mean": _estimate(est), "vs_uniform": _estimate(diff), "bitops": float(np.mean(bitops))}
    out = {"main": main}
    if ex.model_name in p.sweep_models():
        sweep, gains = [], {}
        for b in p.sweep_budgets:
            at = ex.table(rows, b)
            for n in ("seam-mnist", "target-fmnist", "uniform"):
                m = matrix(at, n)
                if not len(m):
                    continue
                est = report.mean_ci(m, n_boot=p.bootstrap) if np.isfinite(m).sum() > 1 else \
                    report.Estimate(float(np.nanmean(m)), math.nan, math.nan, 1)
                bitops = float(np.mean([r["bitops"] for r in at if r["policy"] == n]))
                sweep.append({"budget": b, "policy": n, "bitops": bitops, "top1": est.estimate, "lo": est.ci_low,
                              "hi": est.ci_high})
            a, u = matrix(at, "seam-mnist"), matrix(at, "uniform")
            if not (len(a) and len(u)):
                continue
            try:
                gains[b] = _estimate(report.paired_difference(at, "seam-mnist", "uniform", n_boot=p.bootstrap))
            except ConfigError:  # a single run per side: no CI
                gains[b] = {"estimate": float(np.nanmean(a) - np.nanmean(u)), "ci_low": None, "ci_high": None, "n": 1}
        out.update(sweep=sweep, sweep_gain=gains)
    return out


def write_models(p: "Profile", exs: "dict[str, Experiments]", parts: Iterable[str]) -> Path:
    """Merge into ``results/models.json`` what the study's ``parts`` let a chapter read of each
    model: the model's facts always, its searches with the protocol, chapter 1's record with the
    observation (first model). Keys sorted: the same content gives the same bytes."""
    from .._io import write_json

    parts = set(parts)
    runs = read_json(p.path("runs.json"))["runs"] if p.path("runs.json").exists() else []
    path = p.path(MODELS_FILE)
    doc = read_json(path) if path.exists() else {}
    first = next(iter(p.models))
    for model, ex in exs.items():
        entry = {**doc.get(model, {}), **model_facts(ex)}
        if {"protocol", "claims"} & parts:
            entry.update(search_facts(ex, runs))
            entry["qat"] = qat_facts(ex, runs)
        if "observation" in parts and model == first:
            entry["observation"] = ex.observation_path()
        doc[model] = dict(sorted(entry.items()))
    return write_json(path, {m: doc[m] for m in sorted(doc)})


# --------------------------------------------------------------------------- the chapters read
class StoredSearch:
    """A search as a chapter sees it: its policy and its record."""

    def __init__(self, doc: dict):
        self.policy = Policy.from_dict(doc["policy"])
        self.record = doc["record"]
        self.decisiveness: dict | None = doc.get("decisiveness")  # per search seed (differentiable searches)


class StoredModel(RunsView):
    """One model's stored facts (``results/models.json``): what a chapter asks of it, read."""

    def __init__(self, p: "Profile", model: str):
        self.p = p
        self.model_name = model
        doc = read_json(require(p, MODELS_FILE, ("protocol",)))
        if model not in doc:
            raise ReadOnlyError(f"{p.path(MODELS_FILE)} has no model {model!r} (it has {', '.join(doc) or 'none'}): "
                                f"write it with `{study_command(p, ('protocol',))}`")
        self.doc = doc[model]
        self.meta = self.doc["meta"]
        self.budget_name = self.doc["budget"]["name"]
        self.budget = self.doc["budget"]["bitops"]
        c = self.doc["cost"]
        self.cost = CostModel([LayerCost(**layer) for layer in c["layers"]], tuple(c["input_size"]))
        self._searches = {n: StoredSearch(s) for n, s in self.doc.get("searches", {}).items()}

    def search(self, name: str) -> StoredSearch:
        if name not in self._searches:
            raise ReadOnlyError(f"{self.p.path(MODELS_FILE)} holds no search {name!r} of {self.model_name} "
                                f"(it holds {', '.join(self._searches) or 'none'}): "
                                f"write it with `{study_command(self.p, ('protocol',))}`")
        return self._searches[name]

    def qat_stats(self) -> dict:
        """Chapter 3's statistics (:func:`qat_facts`), as the study computed them."""
        if "qat" not in self.doc:
            raise ReadOnlyError(f"{self.p.path(MODELS_FILE)} holds no QAT statistics of {self.model_name}: "
                                f"write them with `{study_command(self.p, ('protocol', 'sweep', 'claims'))}`")
        return self.doc["qat"]

    def head_accuracy(self) -> dict:
        if "head_accuracy" not in self.doc:
            raise ReadOnlyError(f"{self.p.path(MODELS_FILE)} holds no head fit of {self.model_name}: "
                                f"write it with `{study_command(self.p, ('protocol',))}`")
        return self.doc["head_accuracy"]

    def observation(self) -> dict:
        """Chapter 1's observation: the cached record the study names (computes nothing)."""
        rel = self.doc.get("observation")
        if rel is None:
            raise ReadOnlyError(f"{self.p.path(MODELS_FILE)} names no observation for {self.model_name}: "
                                f"write it with `{study_command(self.p, ('observation',))}`")
        path = self.p.cache_path() / rel
        if not path.exists():
            raise ReadOnlyError(f"{path} (chapter 1's observation) does not exist: "
                                f"compute it with `{study_command(self.p, ('observation',))}`")
        return read_json(path)


# --------------------------------------------------------------------------- runs.json
def load_runs(profile: "Profile") -> list[dict]:
    """The per-seed rows of ``runs.json`` (none before the study wrote it)."""
    path = profile.path("runs.json")
    return read_json(path)["runs"] if path.exists() else []


def save_runs(profile: "Profile", rows: list[dict], policies: dict | None = None) -> Path:
    """Merge ``rows`` into ``runs.json`` (one row per model, budget, policy, search seed, QAT seed)
    and the searched policies they name (by search cache key) into ``policies.json``."""
    from .cache import config_dict

    ident = ("model", "budget", "policy", "search_seed", "qat_seed")
    merged = {tuple(r[k] for k in ident): r for r in load_runs(profile)}
    merged.update({tuple(r[k] for k in ident): r for r in rows})
    out = sorted(merged.values(), key=lambda r: tuple(str(r[k]) for k in ident))
    if policies:
        path = profile.path("policies.json")
        write_json(path, {**(read_json(path) if path.exists() else {}), **policies})
    return write_json(profile.path("runs.json"), {"profile": profile.name, "qat": config_dict(profile.qat),
                                                  "runs": out})


__all__ = ["MODELS_FILE", "SHOWN", "RunsView", "StoredModel", "StoredSearch", "matrix", "model_facts", "qat_facts", "search_facts", "write_models", "require",
           "load_runs", "save_runs", "study_command"]
