"""The book's experiments as cached steps: searches, QAT runs, proxy metrics.

Every setting comes from one :class:`~mpqlib.study.profiles.Profile` (``smoke`` or ``full``). Each
expensive step is stored under ``cache_dir/<model>/<step>/<key>.json`` where ``key`` hashes the
step's *fully resolved* configuration (the search or QAT config's ``to_dict()``, the candidate
set, the data fingerprint, the checkpoint's sha256, the budget) together with the step's
version in :data:`STEP_VERSIONS`: change any of them and the step is computed again. The
resolved configuration is stored inside the file, so a cached number says what produced it.

The protocol (book/method.md, "Protocol (fixed before the run)") is paired: a QAT seed fixes
the training subset, its order and its augmentation for every policy (:func:`mpqlib.qat.qat`
draws them from the seed alone), so policies are compared within a seed. Every per-seed value
goes into a long table (``runs.json``: model, budget, policy, search seed, QAT seed, top-1,
BitOps, cache keys); claims are paired differences computed from it by :mod:`mpqlib.study.report`.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from .. import data as D
from .._io import torch_save
from .cache import STEP_VERSIONS, Cache, Missing, Overlay, SearchRef, Task, config_dict, fingerprint, sha256_file  # noqa: F401
from . import features
from .steps import kind, work
from ..config import DifferentiableConfig, QATConfig, RandomConfig, SearchConfig, UniformConfig
from ..cost import Budget, CostModel, cost_model, exact_uniform
from ..errors import ConfigError, TrainingError
from ..policy import Policy
from .profiles import Profile, resolve
from ..qat import qat
from ..search import SearchResult, search
from .stored import RunsView, load_runs, save_runs  # noqa: F401  (runs.json, its home is stored)
from .facts import CLAIMS, HARNESS, MAIN_POLICIES, POLICIES, SEARCH_SEEDED, SECOND_POLICIES, SEEDED_SINCE_V3
from ..train import load_checkpoint


def _run_search(model: torch.nn.Module, data: D.Images | None, budget: int | None, cfg: SearchConfig, *,
                progress: bool, val_data: D.Images | None = None) -> SearchResult:
    """``cfg``'s search through the typed API (``search(model, data, budget, config)``)."""
    return search(model, data, budget, cfg, progress=progress, val_data=val_data)


class Experiments(RunsView):
    """Cached access to every result the book shows, for one model of one profile."""

    def __init__(self, profile: Profile | str = "full", model: str | None = None, overrides: dict | None = None,
                 *, checkpoint: str | os.PathLike | None = None, classes: tuple[int, ...] | None = None, **more):
        self.p = resolve(profile, overrides, **more)
        self.model_name = model or next(iter(self.p.models))
        if self.p.threads:
            torch.set_num_threads(self.p.threads)
        # A model of a class subset of the target (the class-disjoint proxy's experiment): its
        # target is ``fmnist[lo-hi]`` (train, test and the target search), its checkpoint given.
        self.classes = tuple(classes) if classes else None
        self.target = D.with_classes("fmnist", self.classes) if self.classes else "fmnist"
        path = Path(checkpoint) if checkpoint is not None else self.p.checkpoint(self.model_name)
        self.model, self.meta = load_checkpoint(path)
        self.model.eval()
        self.checkpoint_sha256 = sha256_file(path)
        self.cost: CostModel = cost_model(self.model)
        self.cache = Cache(self.p.cache_path() / self.model_name, hint=f"mpq study run --profile {self.p.name}")
        self._data: dict[str, D.Images] = {}
        self._fingerprints: dict[str, dict] = {}
        self._budget_name: str | None = None
        self._budgets: dict[str | int, Budget] = {}
        self.policies: dict[str, dict] = {}  # search cache key -> policy of every searched run (policies.json)
        # While the pipeline plans (mpqlib.study), a step the cache lacks is noted here (key ->
        # task) and raises Missing instead of being computed.
        self.plan: dict[str, Task] | None = None

    # ------------------------------------------------------------------ steps
    def step(self, step: str, key_config: dict, compute: Callable[[], dict], args: tuple) -> dict:
        """The cached record of ``step`` under ``key_config``; computed and stored when missing,
        unless the pipeline is planning: then the missing step is noted as a :class:`Task`
        (``args``: what :meth:`execute` needs to compute it) and :class:`Missing` is raised."""
        stored = self.cache.load(step, key_config)
        if stored is not None:
            return stored
        if self.plan is not None:
            task = Task(self.model_name, step, Cache.key(step, key_config), args)
            self.plan[task.key] = task
            raise Missing(task)
        return self.cache.put(self.cache.record(step, key_config, compute))

    def after(self, search: Missing, ref: SearchRef, qat_seeds: Iterable[int], qat: tuple = ()) -> None:
        """While planning: the QAT runs of the policy that the missing ``search`` will find (``ref``
        names it), under each of ``qat_seeds`` and :meth:`qat`'s extra arguments ``qat``, noted as
        tasks blocked on it (:attr:`Task.needs`)."""
        if self.plan is None:
            return
        for q in qat_seeds:
            args = (ref, int(q), *qat)
            tag = hashlib.sha256(repr((int(q), qat)).encode()).hexdigest()[:12]
            task = Task(self.model_name, "qat", f"{search.task.key}>qat:{tag}", args, needs=(search.task.key,))
            self.plan.setdefault(task.key, task)

    def qat_work(self, cfg: QATConfig | None = None, train: str | None = None) -> float:
        """A QAT run's work (:func:`mpqlib.study.steps.work`: epochs x training images) under
        recipe ``cfg`` on ``train``, whatever its policy."""
        return work("qat", {"qat": config_dict(cfg or self.p.qat), "train": self.fingerprint(train or self.target)})

    def execute(self, task: Task) -> None:
        """Compute ``task`` (a step noted while planning) into this object's cache."""
        run = kind(task.step).execute  # the kind's declared execution (mpqlib.study.steps)
        if run is None:
            raise ConfigError(f"a {task.step} step is not computed by an Experiments (see mpqlib.study.steps)")
        run(self, task.args)

    # ------------------------------------------------------------------ budgets
    @property
    def budget_name(self) -> str:
        """The main budget's name (fixed by the profile, or the pilot's choice)."""
        return self.budget_of(None).name

    @property
    def budget(self) -> int:
        """The main budget in BitOps."""
        return self.budget_of(None).bitops

    def budget_of(self, budget: "str | int | Budget | None") -> Budget:
        """``budget`` (a name like ``w3a2``, BitOps, or None: the main budget) resolved once for
        this model; pass the result along instead of the name."""
        if isinstance(budget, Budget):
            return budget
        if budget is None:
            if self._budget_name is None:
                self._budget_name = self.p.main_budget(self.model_name)
            budget = self._budget_name
        if budget not in self._budgets:
            self._budgets[budget] = Budget.of(self.cost, budget)
        return self._budgets[budget]

    def bitops_of(self, budget: "str | int | Budget | None") -> int:
        return self.budget_of(budget).bitops

    def budget_label(self, budget: "str | int | Budget | None") -> str:
        return self.budget_of(budget).name

    # ------------------------------------------------------------------ data
    def data(self, spec: str) -> D.Images:
        """Search data by name: ``proxy`` (the main proxy at the profile's size), ``mnist``,
        ``fmnist4`` (the same-distribution control), ``optdigits``, ``target``, ``limpq``,
        ``fmnist`` (all 60,000) or ``NAME:N`` (N images per class)."""
        p = self.p
        spec = {"proxy": f"{p.proxy}:{p.proxy_per_class}", "mnist": f"mnist:{p.proxy_per_class}",
                "fmnist4": f"fmnist:{p.proxy_per_class}", "target": self.on_target(p.target_data),
                "limpq": f"fmnist:{p.limpq_per_class}", "noise": f"noise:{p.proxy_per_class}",
                "disjoint": f"{self.disjoint_proxy()}:{p.proxy_per_class}",
                "optdigits": p.second_proxy_data}.get(spec, spec)
        if spec not in self._data:
            if spec in (f"{self.target}-fit", f"{self.target}-val"):  # the tuning's validation split of the train set
                fit, val = D.split_off(self.data(self.target), self.p.objections.val_per_class, seed=0)
                self._data[f"{self.target}-fit"], self._data[f"{self.target}-val"] = fit, val
            elif spec == "noise-heldout":  # noise of another seed: held out as much as noise can be
                self._data[spec] = D.noise(100, D.load("fmnist", "train"), seed=1)
            elif spec.endswith("-heldout"):
                base = {"proxy": p.proxy, "fmnist4": "fmnist", "disjoint": self.disjoint_proxy()}.get(
                    spec.removesuffix("-heldout"), spec.removesuffix("-heldout"))
                self._data[spec] = D.balanced_subset(D.load_split(base, "test"), per_class=100, seed=0)
            else:
                self._data[spec] = D.search_data(spec)
        return self._data[spec]

    def disjoint_proxy(self) -> str:
        """The class-disjoint proxy's classes of Fashion-MNIST (``fmnist[5-9]``)."""
        return D.with_classes("fmnist", self.p.objections.disjoint_proxy_classes)

    def on_target(self, spec: str) -> str:
        """A Fashion-MNIST data spec restricted to this experiment's classes (``fmnist:50`` ->
        ``fmnist[0-4]:50``); unchanged for the usual 10-class target."""
        return D.on_classes(spec, self.classes)

    def images(self, spec: str) -> D.Images:
        """The images of a data spec: ``NAME-test`` a test split (:meth:`test_set`), else :meth:`data`."""
        return self.test_set(spec[:-5]) if spec.endswith("-test") else self.data(spec)

    def test_set(self, name: str | None = None) -> D.Images:
        """``name``'s test split (default: the target's); for the target, the profile's
        class-balanced share of it (``test_images``)."""
        name = name or self.target
        key = f"{name}-test"
        if key not in self._data:
            test = D.load_split(name, "test")
            if name == self.target and self.p.test_images:
                test = D.balanced_subset(test, size=min(self.p.test_images, len(test)), seed=0)
            self._data[key] = test
        return self._data[key]

    def fingerprint(self, spec: str) -> dict:
        if spec not in self._fingerprints:
            self._fingerprints[spec] = fingerprint(self.images(spec))
        return self._fingerprints[spec]

    # ------------------------------------------------------------------ searches
    def search_config(self, name: str, seed: int = 0, **changes) -> tuple[SearchConfig, str]:
        """The resolved config and data spec behind policy ``name``."""
        table = {**POLICIES, **HARNESS}
        if name not in table or table[name][0] is None:
            raise ConfigError(f"unknown searched policy {name!r}; choose one of "
                              f"{', '.join(n for n in table if table[n][0])}, uniform, random-N")
        attr, spec = table[name]
        cfg: SearchConfig = getattr(self.p, attr)
        cfg = cfg.replace(seed=seed, **changes)
        return cfg, spec

    def search(self, name: str, budget: str | int | None = None, seed: int = 0, *, data: str | None = None,
               remeasure: bool = False, **changes) -> SearchResult:
        """The search behind policy ``name`` (see :data:`POLICIES`, :data:`HARNESS`) at ``budget``
        (a name like ``w3a2`` or BitOps; None: the main budget) with search ``seed``. ``changes``
        override config options (e.g. ``epochs=2``); ``data`` another search data spec; ``remeasure``
        runs a cached search again when its cost was measured under contention (or without load figures)."""
        if name.startswith("random"):
            return self.random_policy(int(name.split("-")[1]) if "-" in name else seed, budget)
        if name.startswith("uniform"):
            return self.uniform(budget if name == "uniform" else name.removeprefix("uniform-"))
        argmax = name.endswith("-argmax")
        cfg, spec = self.search_config(name.removesuffix("-argmax"), seed, **changes)
        res = self.run_search(cfg, data or spec, self.bitops_of(budget), remeasure=remeasure)
        return self.readout(res, "argmax", seed) if argmax else res

    def timing(self, name: str, repeat: int, **kw) -> dict:
        """Repeat ``repeat`` of the timing stage (:mod:`mpqlib.study.timing`) of the search
        ``self.search(name, **kw)``: the same search run again to measure its cost on this host."""
        from . import timing

        res = self.search(name, **kw)
        changes = {k: v for k, v in kw.items() if k not in ("data", "budget", "seed")}
        cfg, spec = self.search_config(name, kw.get("seed", 0), **changes)
        spec, bitops = kw.get("data") or spec, self.bitops_of(kw.get("budget"))
        key_config = {"search": res.record["cache_key"], "repeat": repeat}
        return self.step("timing", key_config, lambda: timing.measure(
            self, cfg, spec, bitops, res.policy, self.p.timing, f"{name} {kw or ''}"),
            (name, repeat, kw))

    def search_key_config(self, cfg: SearchConfig, spec: str | None, bitops: int | None) -> dict:
        val = self.held_out_spec(cfg, spec)
        return {"model": self.model_name, "checkpoint_sha256": self.checkpoint_sha256, "search": config_dict(cfg),
                "data": self.fingerprint(spec) if spec else None, "val_data": self.fingerprint(val) if val else None,
                "budget_bitops": bitops, "api": "typed"}  # "api": kept so that keys of cached searches stay valid

    @staticmethod
    def held_out_spec(cfg: SearchConfig, spec: str | None) -> str | None:
        """Where a proxy head's held-out accuracy is measured: 100 images per class of the test
        split of the search data's dataset (never seen by the search)."""
        if spec is None or not isinstance(cfg, DifferentiableConfig) or getattr(cfg, "head", "model") == "model":
            return None
        return f"{spec.partition(':')[0]}-heldout"

    def run_search(self, cfg: SearchConfig, spec: str | None, bitops: int | None, remeasure: bool = False) -> SearchResult:
        """One cached search: ``cfg`` on data ``spec`` under ``bitops`` (``remeasure``: see :meth:`search`)."""
        key_config = self.search_key_config(cfg, spec, bitops)
        old = self.cache.load("search", key_config) if remeasure else None
        if old is not None and old["record"].get("contended", True):
            self.cache.path("search", key_config).unlink()

        def compute() -> dict:
            data = self.data(spec) if spec else None
            val = self.held_out_spec(cfg, spec)
            res = _run_search(self.model, data, bitops, cfg, progress=self.p.progress,
                              val_data=self.data(val) if val else None)
            return {"policy": res.policy.to_dict(), "record": res.record, "extras": res.extras}

        stored = self.step("search", key_config, compute, (cfg, spec, bitops))
        if old is not None and old["policy"]["bits"] != stored["policy"]["bits"]:
            raise TrainingError(f"{cfg.method} search {stored['key']} found another policy when measured again: "
                                "the search is not deterministic on this machine")
        record = {**stored["record"], "cache_key": stored["key"]}
        return SearchResult(Policy.from_dict(stored["policy"]), record, stored.get("extras", {}))

    def readout(self, res: SearchResult, readout: str, seed: int = 0, budget: int | None = None) -> SearchResult:
        """The policy read out of a differentiable search's mixing weights again (``argmax``: the paper's)."""
        from ..search.differentiable import read_policy

        ex = res.extras
        if "p_w" not in ex:
            raise ConfigError(f"{res.record['method']} has no mixing weights to read out with {readout}")
        budget = res.record.get("budget_bitops") if budget is None else budget
        policy = read_policy(self.cost, np.array(ex["p_w"]), np.array(ex["p_a"]), ex["candidates"], budget, readout,
                             method=res.record["method"], search_data=res.record["search_data"], seed=seed)
        record = {**res.record, "method": policy.provenance["method"], "readout": readout,
                  "bitops": self.cost.bitops(policy), "size_bytes": self.cost.size_bytes(policy)}
        return SearchResult(policy, record, ex)

    def uniform(self, budget: str | int | None = None) -> SearchResult:
        """Uniform precision at ``budget``: the budget's own (w, a) where its name gives one
        (equal BitOps), else the highest w = a within it."""
        b = self.budget_of(budget)
        return _run_search(self.model, None, b.bitops, UniformConfig().at_budget(b.name), progress=False)

    def random_policy(self, seed: int, budget: str | int | None = None) -> SearchResult:
        """A random policy that meets the budget (the ILP over seeded random costs; not cached: it is cheap)."""
        return _run_search(self.model, None, self.bitops_of(budget), RandomConfig(seed=seed), progress=False)

    def poor_policy(self, name: str = "seam-mnist", budget: str | int | None = None, strength: float = 1.0,
                    seed: int = 0) -> Policy:
        """A deliberately poor policy: the ILP over the *negated* learned costs of ``name``'s search
        (``strength`` 1: the least likely policy; between 0 and 1 mixed with seeded random costs)."""
        return self.interpolated_policy(name, -strength, budget, seed)

    def interpolated_policy(self, name: str, alpha: float, budget: str | int | None = None, seed: int = 0) -> Policy:
        """The ILP over ``alpha`` x ``name``'s learned per-layer costs + (1 - |alpha|) x random costs
        (both scaled to unit spread): alpha = 1 the search's own choice, -1 its opposite, 0 random."""
        from ..search import readout as ilp
        from ..search.baselines import limpq_cost
        from ..search.differentiable import mixing_cost

        res = self.search(name)
        ex = res.extras
        if "p_w" in ex:
            cost = mixing_cost(ex["p_w"], ex["p_a"])
        elif "step_w" in ex:
            cost = limpq_cost(ex["step_w"], ex["step_a"], ex.get("alpha") or res.record.get("alpha") or res.record["config"]["alpha"])
        else:
            raise ConfigError(f"{name} has no learned per-layer costs to read out again")
        cost = (cost - cost.mean()) / (cost.std() + 1e-12)
        rnd = np.random.default_rng(seed).standard_normal(cost.shape)
        choices = list(itertools.product(ex["candidates"], ex["candidates"]))
        mixed = alpha * cost + (1 - abs(alpha)) * rnd
        method = f"anti-{name}" if alpha < 0 else f"{name}"
        return ilp(self.cost, mixed, choices, self.bitops_of(budget), method=method, alpha=alpha, seed=seed,
                   search_data=res.record["search_data"])

    # ------------------------------------------------------------------ QAT
    def qat_key_config(self, policy: Policy, seed: int, cfg: QATConfig | None = None, train: str | None = None,
                       test: str | None = None) -> dict:
        return {"model": self.model_name, "checkpoint_sha256": self.checkpoint_sha256,
                "policy": policy.to_dict()["bits"], "fixed": policy.to_dict()["fixed"], "seed": seed,
                "qat": config_dict(cfg or self.p.qat), "train": self.fingerprint(train or self.target),
                "test": self.fingerprint(test or f"{self.target}-test")}

    def qat(self, policy: Policy, seed: int = 0, cfg: QATConfig | None = None, train: str | None = None,
            test: str | None = None) -> dict:
        """QAT of the FP model under ``policy`` with QAT ``seed`` (cached); top-1 in percent. By
        default the profile's recipe on the target's training images, scored on its test split;
        ``cfg`` another recipe (the converged QAT), ``train``/``test`` other data specs (the
        tuning trains on ``fmnist-fit`` and scores on ``fmnist-val``, never on the test set)."""
        key_config = self.qat_key_config(policy, seed, cfg, train, test)

        def run() -> dict:
            return {"record": self._train_qat(policy, seed, cfg, train, test)[1]}

        stored = self.step("qat", key_config, run, (policy.to_dict(), seed, cfg, train, test))
        return {**stored["record"], "cache_key": stored["key"]}

    def _train_qat(self, policy: Policy, seed: int, cfg: QATConfig | None = None, train: str | None = None,
                   test: str | None = None) -> tuple[torch.nn.Module, dict]:
        score = self.images(test or f"{self.target}-test")
        return qat(self.model, policy, self.data(train or self.target), score, cfg or self.p.qat, seed=seed,
                   progress=self.p.progress)

    def qat_model(self, policy: Policy, seed: int = 0) -> torch.nn.Module:
        """The QAT model of ``policy`` and ``seed``: its weights kept beside the record
        (``<key>.pt``, not committed) or trained again into them. The cached record is never
        replaced: a model trained again on another host may differ from it in the last digits,
        so whoever reports its numbers measures them on this model (see :meth:`observation`)."""
        from ..quant import quantize

        path = self.cache.path("qat", self.qat_key_config(policy, seed), ".pt")
        if not path.exists():
            qmodel, _ = self._train_qat(policy, seed)
            torch_save(path, qmodel.state_dict())
        qmodel = quantize(self.model, policy, calibration=self.data(self.target).x[:8])
        qmodel.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
        return qmodel.eval()

    # ------------------------------------------------------------------ chapters 1 and 5 (mpqlib.study.features)
    def observation(self) -> dict:
        """Chapter 1 as one cached step (:func:`mpqlib.study.features.observation`)."""
        return features.observation(self)

    def observation_path(self) -> str:
        """Where chapter 1's observation record lies, relative to the profile's cache directory."""
        return features.observation_path(self)

    def correlation_policies(self, budget: str | int | None = None) -> dict[str, Policy]:
        """Chapter 5's policies (:func:`mpqlib.study.features.correlation_policies`)."""
        return features.correlation_policies(self, budget)

    def proxy_metrics(self, policy: Policy) -> dict:
        """Chapter 5's proxy metrics of ``policy``, one cached step (:func:`mpqlib.study.features.proxy_metrics`)."""
        return features.proxy_metrics(self, policy)

    def correlation(self, budget: str | int | None = None) -> dict | None:
        """Chapter 5's result (:func:`mpqlib.study.features.correlation`; None while planning)."""
        return features.correlation(self, budget)

    # ------------------------------------------------------------------ per-seed runs
    def runs(self, name: str, budget: str | int | None = None, search_seeds: Iterable[int] | None = None,
             qat_seeds: Iterable[int] | None = None, *, label: str | None = None, changes: dict | None = None,
             qat: tuple = ()) -> list[dict]:
        """Every (search seed, QAT seed) value of policy ``name`` at ``budget``: rows of runs.json.
        While the pipeline plans, the runs whose steps are missing are left out (and noted).
        ``label``: the rows' policy name (default ``name``); ``changes``: search options (a
        tuned configuration); ``qat``: :meth:`qat`'s extra arguments (another recipe)."""
        if search_seeds is None:
            search_seeds = self.p.search_seeds if name in self.seeded() else (0,)
        budget = self.budget_of(budget)
        rows = []
        for s in search_seeds:
            try:
                res = self.search(name, budget, s, **(changes or {}))
            except Missing as missing:  # planning: its QAT runs wait for it
                self.after(missing, SearchRef.of(name, budget=budget, seed=s, **(changes or {})),
                           self.p.qat_seeds if qat_seeds is None else qat_seeds, qat)
                continue
            if res.record.get("cache_key"):  # one entry per search: a search shared by two labels keeps its own name
                self.policies[res.record["cache_key"]] = {"model": self.model_name,
                                                          "policy": (label or name) if changes else name,
                                                          "budget": self.budget_label(budget), "search_seed": int(s),
                                                          **res.policy.to_dict()}
            for q in (self.p.qat_seeds if qat_seeds is None else qat_seeds):
                try:
                    rec = self.qat(res.policy, q, *qat)
                except Missing:
                    continue
                rows.append({"model": self.model_name, "budget": self.budget_label(budget),
                             "budget_bitops": self.bitops_of(budget), "policy": label or name, "search_seed": int(s),
                             "qat_seed": int(q), "top1": rec["top1"], "bitops": int(self.cost.bitops(res.policy)),
                             "search": res.record.get("cache_key"), "qat": rec["cache_key"]})
        return rows

    def seeded(self) -> tuple[str, ...]:
        """The searches that run every search seed under this profile's protocol version."""
        if self.p.protocol_version >= 3:
            return SEARCH_SEEDED
        return tuple(n for n in SEARCH_SEEDED if n not in SEEDED_SINCE_V3)

    def random_runs(self, budget: str | int | None = None, n: int | None = None,
                    qat_seeds: Iterable[int] | None = None) -> list[dict]:
        """``n`` random policies at ``budget`` under every QAT seed (search_seed = policy index)."""
        return [r for i in range(self.p.n_random if n is None else n)
                for r in self.runs(f"random-{i}", budget, (i,), qat_seeds)]

    def protocol(self) -> list[dict]:
        """The main comparison: every policy of :data:`MAIN_POLICIES` and the random policies at the
        main budget, and the few of :data:`SECOND_POLICIES` at the second (W3A3). Written to runs.json."""
        rows = [r for n in MAIN_POLICIES for r in self.runs(n)] + self.random_runs()
        extra = self.extra_seeds(rows)
        if extra:
            rows += [r for n in self.seeded() if n in MAIN_POLICIES for r in self.runs(n, search_seeds=extra)]
        second = self.p.second_budget
        if second != self.budget_name:
            rows += [r for n in SECOND_POLICIES for r in self.runs(n, second)] + self.random_runs(second)
        self.save(rows)
        return rows

    def save(self, rows: list[dict]) -> None:
        """``rows`` into runs.json (unless the pipeline is only planning: then nothing is written)."""
        if self.plan is None:
            save_runs(self.p, rows, self.policies)

    def extra_seeds(self, rows: list[dict]) -> tuple[int, ...]:
        """The protocol's extension (book/method.md): the profile's ``extra_search_seeds`` when the
        ``proxy-vs-target`` CI at the main budget, from the runs of the first search seeds, is
        wider than +-``ci_goal_pp``; none otherwise. The search seeds are the outer units of
        that CI, so they are what narrows it; every proxy search of the model gets them alike."""
        if not self.p.extra_search_seeds or self.plan:  # steps missing: decided once they are computed
            return ()
        base = [r for r in rows if r["policy"] not in SEARCH_SEEDED or r["search_seed"] in self.p.search_seeds]
        claim = next(iter(self.claims(base, ids=("proxy-vs-target",))), None)
        if claim is None or (claim["ci_high"] - claim["ci_low"]) / 2 <= self.p.ci_goal_pp:
            return ()
        return tuple(self.p.extra_search_seeds)

    def sweep(self) -> list[dict]:
        """The trade-off curve: SEAM on the proxy and the target search, each *searched* at every
        sweep budget, beside uniform at that budget where its BitOps are equal (budget ``wXaY``)."""
        rows = []
        for b in self.p.sweep_budgets:
            for name in ("seam-mnist", "target-fmnist"):
                rows += self.runs(name, b, self.p.search_seeds[:1], self.p.sweep_qat_seeds)
            if exact_uniform(b):
                rows += self.runs("uniform", b, (0,), self.p.sweep_qat_seeds)
        self.save(rows)
        return rows

    # ------------------------------------------------------------------ claims
    def claims(self, rows: list[dict] | None = None, budget: str | None = None,
               ids: Iterable[str] | None = None) -> list[dict]:
        """This model's claims (:data:`CLAIMS`, or those of ``ids``) at ``budget``: paired differences
        within QAT seeds with bootstrap CIs (search seeds and QAT seeds resampled) and verdicts, by
        mpqlib.study.report. A claim whose policies have no runs yet is left out."""
        from . import report

        table = self.table(load_runs(self.p) if rows is None else rows, budget)
        out = []
        for cid, (a, b, rule) in CLAIMS.items():
            if ids is not None and cid not in ids:
                continue
            try:
                out.append(report.claim(cid, self.model_name, budget or self.budget_name, table, self.side(a),
                                        self.side(b), rule, n_boot=self.p.bootstrap))
            except ConfigError:  # policies not run (yet) at this budget
                continue
        return out

    def head_accuracy(self) -> dict:
        """SEAM's head on the proxy beside a linear probe on the same features (held-out split,
        mean over search seeds): the book's check that the head fits."""
        reports = [self.search("seam-mnist", seed=s).record.get("head") or {} for s in self.p.search_seeds]
        mean = lambda k: float(np.mean([r[k] for r in reports])) if all(r.get(k) is not None for r in reports) else None  # noqa: E731
        return {"seam_proxy_acc": mean("head_val_acc"), "linear_probe_acc": mean("probe_val_acc"),
                "seam_proxy_train_acc": mean("head_train_acc"), "linear_probe_train_acc": mean("probe_train_acc")}


__all__ = ["STEP_VERSIONS", "POLICIES", "HARNESS", "CLAIMS", "Cache", "Overlay", "Task", "Missing", "Experiments",
           "fingerprint", "load_runs", "save_runs", "exact_uniform"]
