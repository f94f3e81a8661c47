"""The pre-registered outlier rule (protocol version 4): which QAT runs *collapsed*.

One collapsed QAT run (MobileNetV1 W2A4, SEAM on MNIST, search seed 2, QAT seed 1: 83.15%
where the same policy's other QAT seeds give 88.40-89.09%) moved five verdicts of the
version-3 run. The rule below was fixed before the runs it judges; every claim reports its
estimate with all runs (the primary result) and without the collapsed ones (a sensitivity
analysis), and chapter 3 shows each collapsed run.
"""

from __future__ import annotations

import itertools

import numpy as np

# The outlier rule (protocol version 4, fixed before its runs): a QAT run has *collapsed* when it
# lies more than COLLAPSE_K robust SDs below the median of the other runs of its own policy and
# search seed, and at least COLLAPSE_FLOOR_PP below it. The robust SD is 1.4826 x the median
# absolute deviation of all runs of that policy from their own unit's median (over every search
# seed), so one collapse does not widen the yardstick that judges it.
COLLAPSE_K = 5.0
COLLAPSE_FLOOR_PP = 1.0


def unit_medians(m: np.ndarray) -> np.ndarray:
    """Each run's reference: the median of the *other* runs of its row (its policy and search seed)."""
    m = np.asarray(m, float)
    out = np.full_like(m, np.nan)
    for i, j in itertools.product(*map(range, m.shape)):
        others = np.delete(m[i], j)
        others = others[np.isfinite(others)]
        if len(others):
            out[i, j] = np.median(others)
    return out


def robust_sd(m: np.ndarray) -> float:
    """1.4826 x the median absolute deviation of every run from its own row's median."""
    m = np.asarray(m, float)
    dev = m - np.nanmedian(m, axis=1, keepdims=True)
    dev = np.abs(dev[np.isfinite(dev)])
    return float(1.4826 * np.median(dev)) if len(dev) else float("nan")


def collapsed(m: np.ndarray, k: float = COLLAPSE_K, floor_pp: float = COLLAPSE_FLOOR_PP) -> np.ndarray:
    """The outlier rule: a boolean mask of the runs (search seeds x QAT seeds) that collapsed."""
    m = np.asarray(m, float)
    ref = unit_medians(m)
    gap = ref - m
    limit = max(k * robust_sd(m), floor_pp)
    with np.errstate(invalid="ignore"):
        return np.isfinite(gap) & (gap > limit)


def without_collapsed(m: np.ndarray, **rule) -> np.ndarray:
    """``m`` with each collapsed run replaced by the median of its row's other runs."""
    m = np.asarray(m, float).copy()
    mask = collapsed(m, **rule)
    m[mask] = unit_medians(m)[mask]
    return m




def runs_matrix(runs: list[dict]) -> tuple[list, list, np.ndarray]:
    """One policy's runs (rows of runs.json) as (search seeds, QAT seeds, top-1 matrix of search
    seeds x QAT seeds; NaN where a run is missing)."""
    seeds = sorted({r["search_seed"] for r in runs}, key=str)
    qats = sorted({r["qat_seed"] for r in runs}, key=str)
    m = np.full((len(seeds), len(qats)), np.nan)
    for r in runs:
        m[seeds.index(r["search_seed"]), qats.index(r["qat_seed"])] = r["top1"]
    return seeds, qats, m


def scan(rows: list[dict]) -> dict:
    """Every collapsed run of a results table (``runs.json``'s rows), with the rule and, per
    method, how often it collapsed: ``{"rule", "runs": [{model, budget, policy, search_seed,
    qat_seed, top1, reference, gap_pp, robust_sd_pp}], "rate": {policy: {"collapsed", "runs"}}}``.
    A method's rate counts its runs in units of two or more QAT seeds (the rule needs a reference)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], str(r["budget"]), r["policy"]), []).append(r)
    found, rate = [], {}
    for (model, budget, policy), runs in sorted(groups.items(), key=str):
        seeds, qats, m = runs_matrix(runs)
        mask, ref, sd = collapsed(m), unit_medians(m), robust_sd(m)
        method = policy.split("-")[0] if policy.startswith("random") else policy
        counted = rate.setdefault(method, {"collapsed": 0, "runs": 0})
        counted["runs"] += int(np.isfinite(ref).sum())
        counted["collapsed"] += int(mask.sum())
        for i, j in np.argwhere(mask):
            found.append({"model": model, "budget": budget, "policy": policy, "search_seed": seeds[i],
                          "qat_seed": qats[j], "top1": float(m[i, j]), "reference": float(ref[i, j]),
                          "gap_pp": round(float(ref[i, j] - m[i, j]), 3), "robust_sd_pp": round(sd, 3)})
    return {"rule": {"k": COLLAPSE_K, "floor_pp": COLLAPSE_FLOOR_PP,
                     "text": f"a QAT run more than {COLLAPSE_K:g} robust SDs (and at least {COLLAPSE_FLOOR_PP:g} pp) "
                             "below the median of the other QAT runs of its policy and search seed"},
            "runs": found, "rate": rate}


__all__ = ["COLLAPSE_K", "COLLAPSE_FLOOR_PP", "unit_medians", "robust_sd", "collapsed", "without_collapsed", "runs_matrix", "scan"]
