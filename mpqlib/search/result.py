"""What every search returns and shares: :class:`SearchResult`, its record
(:func:`make_record`) and the ILP readout of per-layer costs (:func:`readout`). The runners
(``baselines``, ``differentiable``, ...) import these from here, not from the package, so that
the package imports its runners and no runner imports the package (no import circle)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import data as D
from .._io import code_version, machine, read_json, write_json
from ..allocate import allocate
from ..config import FIXED_BITS, SearchConfig
from ..cost import CostModel
from ..measure import Meter
from ..policy import Policy


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


def make_record(method: str, search_data, meter: Meter, *, epochs: float, images: int, seed: int,
                budget: int | None, cost: CostModel, policy: Policy, config: SearchConfig | dict) -> dict:
    """The record of one search: what ran (method, data, config and its type), what it cost
    (time, memory, images) and what it found (BitOps and size of the policy)."""
    typed = isinstance(config, SearchConfig)
    return {"method": method, "search_data": search_data if isinstance(search_data, str) else D.describe(search_data),
            "epochs": epochs, "images": int(images),
            **meter.record(), "machine": machine(),
            "budget_bitops": budget, "bitops": cost.bitops(policy), "size_bytes": cost.size_bytes(policy),
            "seed": seed, "config": config.to_dict() if typed else config,
            "config_type": type(config).__name__ if typed else None, "code_version": code_version()}


def readout(cost: CostModel, layer_cost: np.ndarray, choices: Sequence[tuple[int, int]], budget: int | None,
            fixed_bits: int = FIXED_BITS, **provenance) -> Policy:
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


DECISIVE = 0.1
"""A layer's choice is determined when the best candidate's probability leads the next by at
least this much (for weights and for activations)."""


def decisiveness(layers: Sequence[str], p_w, p_a, threshold: float = DECISIVE) -> dict:
    """How sure a differentiable search is of its policy: per layer the margin between the most
    and the second most likely candidate (weights ``w``, activations ``a``), and a summary: how
    many layers are determined (both margins >= ``threshold``), the median and smallest margin,
    and the probability that means no preference (1 / candidates)."""
    per = {}
    for name, w, a in zip(layers, np.asarray(p_w, float), np.asarray(p_a, float)):
        sw, sa = np.sort(w)[::-1], np.sort(a)[::-1]
        per[name] = {"w": round(float(sw[0] - sw[1]), 4), "a": round(float(sa[0] - sa[1]), 4),
                     "top_w": round(float(sw[0]), 4), "top_a": round(float(sa[0]), 4)}
    margins = [min(v["w"], v["a"]) for v in per.values()]
    return {"threshold": threshold, "no_preference": round(1 / np.asarray(p_w).shape[1], 4),
            "layers": len(per), "determined": sum(m >= threshold for m in margins),
            "median_margin": round(float(np.median(margins)), 4) if margins else None,
            "min_margin": round(float(min(margins)), 4) if margins else None, "per_layer": per}


__all__ = ["DECISIVE", "Meter", "SearchResult", "decisiveness", "make_record", "readout"]
