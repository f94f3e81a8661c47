"""The book's experiments as cached steps: searches, QAT runs and feature sets.

Each step is stored on disk under ``cache_dir`` keyed by its parameters (and the checkpoint's
sha256), written atomically. A rerun loads what is done and an interrupted run resumes at the
first missing step. The notebooks are thin: they call these functions and plot.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import data as D
from ._io import read_json, torch_save, write_json
from .cost import CostModel, budget as parse_budget, cost_model
from .policy import Policy
from .qat import QATConfig, qat
from .search import SearchResult, search
from .train import load_checkpoint

# name -> (method, search data, readout): the policies compared at one budget
POLICIES = {
    "seam-mnist": ("seam", "mnist", "ilp"),
    "seam-mnist-argmax": ("seam", "mnist", "argmax"),
    "seam-optdigits": ("seam", "optdigits", "ilp"),
    "seam-fmnist4": ("seam", "fmnist4", "ilp"),
    "ce-mnist": ("ce", "mnist", "ilp"),
    "target-fmnist": ("target", "fmnist", "ilp"),
    "limpq-fmnist": ("limpq", "fmnist", "ilp"),
    "hawq-fmnist": ("hawq", "fmnist", "ilp"),
    "uniform": ("uniform", None, "ilp"),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _key(params: dict) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Settings:
    """Parameters of a whole reproduction (the notebooks' papermill parameters map onto these)."""

    checkpoint: str = "checkpoints/resnet20-fmnist.pt"
    cache_dir: str = "cache/full"
    budget: str = "w3a3"
    search_epochs: int = 8
    target_epochs: int | None = 2             # the target search's epochs (None: search_epochs)
    limpq_per_class: int | None = 600         # LIMPQ's one-time training data (images per class)
    hawq_images: int = 512
    target_data: str = "fmnist"               # the target search's data (fmnist:N for smoke runs)
    proxy_per_class: int = 240                # the proxy subsets: 240/class = 4% of Fashion-MNIST train
    qat: dict = field(default_factory=lambda: asdict(QATConfig(epochs=1, train_images=15000)))
    seeds: tuple[int, ...] = (0, 1)
    threads: int | None = 2
    progress: bool = True


    @classmethod
    def from_params(cls, *, qat_epochs: int = 1, qat_train_images: int | None = 15000, target_epochs: int = 2,
                    limpq_per_class: int = 600, seeds=(0, 1), **params) -> "Settings":
        """Settings from a notebook's flat papermill parameters (0 means 'default' for the ints)."""
        if isinstance(seeds, str):  # `papermill -p seeds "[0, 1]"` passes a string
            seeds = json.loads(seeds)
        unknown = set(params) - set(cls.__dataclass_fields__)
        if unknown:
            raise TypeError(f"unknown parameters {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(qat={**asdict(QATConfig()), "epochs": int(qat_epochs), "train_images": qat_train_images or None},
                   target_epochs=target_epochs or None, limpq_per_class=limpq_per_class or None,
                   seeds=tuple(int(s) for s in seeds), **params)


class Experiments:
    """Cached access to every result the book shows."""

    def __init__(self, settings: Settings | None = None, **overrides):
        self.s = settings or Settings(**overrides)
        if self.s.threads:
            torch.set_num_threads(self.s.threads)
        self.cache = Path(self.s.cache_dir)
        self.model, self.meta = load_checkpoint(self.s.checkpoint)
        self.model.eval()
        self.ckpt_sha = _sha256(Path(self.s.checkpoint))[:16]
        self.cost: CostModel = cost_model(self.model)
        self.budget = parse_budget(self.cost, self.s.budget)
        self._data: dict[str, D.Images] = {}

    # ------------------------------------------------------------------ caching
    def _path(self, kind: str, params: dict, suffix: str = ".json") -> Path:
        return self.cache / kind / f"{_key({**params, 'checkpoint': self.ckpt_sha})}{suffix}"

    def cached(self, kind: str, params: dict, compute: Callable[[], dict]) -> dict:
        path = self._path(kind, params)
        if path.exists():
            return read_json(path)
        result = {"params": params, **compute()}
        write_json(path, result)
        return result

    # ------------------------------------------------------------------ data
    def data(self, spec: str) -> D.Images:
        if spec not in self._data:
            if spec in ("mnist", "fmnist4"):
                base = "mnist" if spec == "mnist" else "fmnist"
                self._data[spec] = D.search_data(f"{base}:{self.s.proxy_per_class}")
            else:
                self._data[spec] = D.search_data(spec)
        return self._data[spec]

    def test_set(self, name: str = "fmnist") -> D.Images:
        key = f"{name}-test"
        if key not in self._data:
            self._data[key] = D.load(name, "test")
        return self._data[key]

    # ------------------------------------------------------------------ searches
    def search(self, name: str, budget: int | None = None, seed: int = 0) -> SearchResult:
        """The search result behind policy ``name`` (see :data:`POLICIES`) at ``budget``."""
        if name.startswith("random"):
            return self.random_policy(int(name.split("-")[1]) if "-" in name else seed, budget)
        if name not in POLICIES:
            raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)} or random-N")
        method, spec, readout = POLICIES[name]
        budget = self.budget if budget is None else budget
        if readout == "argmax":  # the same search, read out per layer with argmax: no second run
            return self._argmax(name.removesuffix("-argmax"), budget, seed)
        kw: dict = {"seed": seed, "progress": self.s.progress}
        data = None
        if method in ("seam", "ce", "target"):
            epochs = self.s.target_epochs if method == "target" and self.s.target_epochs else self.s.search_epochs
            kw.update(epochs=epochs)
            data = self.data(self.s.target_data if method == "target" else spec)
        elif method == "limpq":
            data = self.data(f"fmnist:{self.s.limpq_per_class}" if self.s.limpq_per_class else "fmnist")
            kw.update(epochs=1)
        elif method == "hawq":
            data = self.data("fmnist")
            kw.update(images=self.s.hawq_images)
        params = {"name": name, "method": method, "data": data.name if data is not None else None,
                  "budget": budget, **{k: v for k, v in kw.items() if k != "progress"}}
        path = self._path("search", params)
        if path.exists():
            result = SearchResult.load(path)
            if "p_w" in result.extras:  # the cached artefact is the learned weights: read out with today's code
                result = self._readout(result, budget, "ilp", seed)
            return result
        result = search(method, self.model, data, budget, **kw)
        result.save(path)
        return result

    def _readout(self, res: SearchResult, budget: int, readout: str, seed: int) -> SearchResult:
        from .search.differentiable import read_policy

        ex = res.extras
        base = res.record["method"].removesuffix("-argmax")
        policy = read_policy(self.cost, np.array(ex["p_w"]), np.array(ex["p_a"]), ex["candidates"], budget, readout,
                             method=base, search_data=res.record["search_data"], seed=seed)
        record = {**res.record, "method": policy.provenance["method"], "bitops": self.cost.bitops(policy),
                  "size_bytes": self.cost.size_bytes(policy)}
        return SearchResult(policy, record, ex)

    def _argmax(self, base: str, budget: int, seed: int) -> SearchResult:
        return self._readout(self.search(base, budget, seed), budget, "argmax", seed)

    def random_policy(self, seed: int, budget: int | None = None) -> SearchResult:
        return search("random", self.model, None, self.budget if budget is None else budget, seed=seed)

    def reread(self, name: str, budget: int) -> Policy:
        """Policy ``name``'s search (run at the headline budget) read out again at ``budget``:
        the learned mixing weights / indicators are reused, only the ILP is solved again."""
        return self._reread(name, budget, sign=1.0)

    def poor_policy(self, name: str = "seam-mnist", budget: int | None = None) -> Policy:
        """The *least* likely policy under ``name``'s learned weights that meets the budget
        (the ILP over the negated costs): a deliberately bad mixed policy for chapter 1."""
        policy = self._reread(name, self.budget if budget is None else budget, sign=-1.0)
        policy.provenance["method"] = f"anti-{name}"
        return policy

    def _reread(self, name: str, budget: int, sign: float) -> Policy:
        import itertools

        from .search import readout as ilp
        from .search.baselines import limpq_cost
        from .search.differentiable import mixing_cost

        res = self.search(name)
        ex = res.extras
        if "p_w" in ex and sign > 0:  # the search's own readout, at another budget
            policy = self._readout(res, budget, "ilp", seed=res.record["seed"]).policy
            policy.provenance["reread_from"] = self.budget
            return policy
        if "p_w" in ex:
            cost = mixing_cost(ex["p_w"], ex["p_a"])
        elif "step_w" in ex:
            cost = limpq_cost(ex["step_w"], ex["step_a"], res.record["config"]["alpha"])
        else:
            raise ValueError(f"{name} has no learned per-layer weights to read out again")
        choices = list(itertools.product(ex["candidates"], ex["candidates"]))
        return ilp(self.cost, sign * cost, choices, budget, method=res.record["method"], search_data=res.record["search_data"],
                   reread_from=self.budget)

    # ------------------------------------------------------------------ QAT
    def _qat_params(self, policy: Policy, seed: int) -> dict:
        return {"policy": policy.to_dict()["bits"], "fixed": policy.to_dict()["fixed"], "seed": seed, "qat": self.s.qat}

    def qat(self, policy: Policy, seed: int = 0, keep_model: bool = False) -> dict:
        """QAT of the FP model under ``policy`` (cached); top-1 in percent on the test set."""
        params = self._qat_params(policy, seed)
        weights = self._path("qat", params, ".pt")

        def run() -> dict:
            qmodel, rec = qat(self.model, policy, self.data("fmnist"), self.test_set(), QATConfig(**self.s.qat),
                              seed=seed, progress=self.s.progress)
            if keep_model:
                torch_save(weights, qmodel.state_dict())
            return rec

        rec = self.cached("qat", params, run)
        if keep_model and not weights.exists():  # cached without weights: run again to keep them
            self._path("qat", params).unlink()
            rec = self.cached("qat", params, run)
        return rec

    def qat_model(self, policy: Policy, seed: int = 0) -> torch.nn.Module:
        from .quant import quantize

        self.qat(policy, seed, keep_model=True)
        params = self._qat_params(policy, seed)
        qmodel = quantize(self.model, policy, calibration=self.data("fmnist").x[:8])
        qmodel.load_state_dict(torch.load(self._path("qat", params, ".pt"), weights_only=True))
        return qmodel.eval()

    def accuracy(self, policy: Policy, seeds=None) -> dict:
        runs = [self.qat(policy, s) for s in (seeds or self.s.seeds)]
        top = np.array([r["top1"] for r in runs])
        return {"top1_mean": float(top.mean()), "top1_std": float(top.std(ddof=1)) if len(top) > 1 else 0.0,
                "top1": top.tolist(), "seeds": list(seeds or self.s.seeds),
                "qat_seconds": float(sum(r["seconds"] for r in runs))}

    # ------------------------------------------------------------------ summary
    def row(self, name: str, seeds=None) -> dict:
        """One policy's line of results/summary.json: search record and QAT accuracy."""
        res = self.search(name)
        acc = self.accuracy(res.policy, seeds)
        rec = res.record
        return {"method": rec["method"], "search_data": rec["search_data"], "bitops": int(self.cost.bitops(res.policy)),
                "size_bytes": float(self.cost.size_bytes(res.policy)), "top1_mean": round(acc["top1_mean"], 2),
                "top1_std": round(acc["top1_std"], 2), "seeds": acc["seeds"], "search_seconds": rec["seconds"],
                "search_images": rec["images"]}

    def random_row(self, n: int, seed: int = 0) -> dict:
        """The random baseline: ``n`` random policies at the budget, one QAT seed each;
        top-1 mean and spread are over the policies."""
        pols = [self.random_policy(i).policy for i in range(n)]
        top = np.array([self.qat(p, seed)["top1"] for p in pols])
        return {"method": "random", "search_data": "none", "bitops": int(np.mean([self.cost.bitops(p) for p in pols])),
                "size_bytes": float(np.mean([self.cost.size_bytes(p) for p in pols])), "top1_mean": round(float(top.mean()), 2),
                "top1_std": round(float(top.std(ddof=1)), 2) if n > 1 else 0.0, "seeds": [seed], "policies": n,
                "search_seconds": 0.0, "search_images": 0}

    def summary(self, names, n_random: int, path: str | os.PathLike = "results/summary.json") -> dict:
        out = {"fp": {"top1": self.meta["top1"], "arch": self.meta["arch"], "checkpoint": self.s.checkpoint},
               "budget": {"name": self.s.budget, "bitops": int(self.budget)},
               "settings": asdict(self.s),
               "policies": {n: self.row(n) for n in names}}
        out["policies"]["random"] = self.random_row(n_random)
        write_json(path, out)
        return out
