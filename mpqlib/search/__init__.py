"""Policy searches: SEAM and its baselines, all returning a :class:`SearchResult`.

============  =====================================================================
method        what it does
============  =====================================================================
seam          differentiable search on (proxy) data, L-GM head (margin + likelihood)
ce            the same search with a plain linear head and cross-entropy (ablation)
target        the same search on the target data with the model's own classifier
limpq         LIMPQ-style importance indicators (one step size per bit), then the ILP
hawq          HAWQ-style Hessian trace x quantization perturbation, then the ILP
uniform       the highest uniform precision within the budget
random        random policies that meet the budget (ILP over random costs)
============  =====================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .._io import code_version, machine, read_json, write_json
from ..allocate import allocate
from ..cost import CostModel
from ..measure import Meter
from ..policy import Policy

METHODS = ("seam", "ce", "target", "limpq", "hawq", "uniform", "random")


@dataclass
class SearchResult:
    """A policy and the record of what it cost to find."""

    policy: Policy
    record: dict
    extras: dict = field(default_factory=dict)  # learned weights, indicators, history: for plots

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``{policy, record, extras}`` as one JSON file (atomically)."""
        return write_json(path, {"policy": self.policy.to_dict(), "record": self.record, "extras": self.extras})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SearchResult":
        d = read_json(path)
        return cls(Policy.from_dict(d["policy"]), d["record"], d.get("extras", {}))


def make_record(method: str, search_data: str, meter: Meter, *, epochs: float, images: int, seed: int,
                budget: int | None, cost: CostModel, policy: Policy, config: dict) -> dict:
    return {"method": method, "search_data": search_data, "epochs": epochs, "images": int(images),
            **meter.record(), "machine": machine(),
            "budget_bitops": budget, "bitops": cost.bitops(policy), "size_bytes": cost.size_bytes(policy),
            "seed": seed, "config": config, "code_version": code_version()}


def readout(cost: CostModel, layer_cost: np.ndarray, choices: Sequence[tuple[int, int]], budget: int | None,
            fixed_bits: int = 8, **provenance) -> Policy:
    """The policy minimising the summed per-layer, per-choice ``layer_cost`` (L x C) under a
    BitOps ``budget`` (None: per-layer argmin), fixed layers at ``fixed_bits``."""
    layers = cost.searchable
    alloc = allocate([c.name for c in layers], list(choices), layer_cost, [c.macs for c in layers],
                     [c.params for c in layers], max_bitops=budget,
                     fixed_bitops=cost.fixed_bitops((fixed_bits, fixed_bits)),
                     fixed_size_bits=cost.fixed_size_bits((fixed_bits, fixed_bits)))
    fixed = {c.name: (fixed_bits, fixed_bits) for c in cost.layers if c.fixed}
    return Policy(dict(alloc.choice), fixed, {**provenance, "budget_bitops": budget, "bitops": alloc.bitops,
                                             "size_bytes": alloc.size_bits / 8, "ilp_seconds": round(alloc.seconds, 4)})


def search(method: str, model: torch.nn.Module, data, budget: int | None, **kw) -> SearchResult:
    """Run ``method`` (one of :data:`METHODS`) on ``model`` with search ``data`` under ``budget``."""
    if method in ("seam", "ce", "target"):
        from .differentiable import SearchConfig, differentiable_search

        cfg_fields = set(SearchConfig.__dataclass_fields__)
        cfg = SearchConfig(head={"seam": "lgm", "ce": "linear", "target": "model"}[method],
                           **{k: v for k, v in kw.items() if k in cfg_fields})
        rest = {k: v for k, v in kw.items() if k not in cfg_fields}
        return differentiable_search(model, data, budget, cfg, method=method, **rest)
    from . import baselines

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    return getattr(baselines, method)(model, data, budget, **kw)
