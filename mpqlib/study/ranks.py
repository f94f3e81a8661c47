"""Rank correlation with its uncertainty (chapter 5): Spearman's rho with a bootstrap CI over the
policies, and the noise ceiling, the best rho any predictor could reach against accuracies that
are means over a few QAT seeds. Intervals at :data:`mpqlib.study.report.LEVEL`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from ..errors import ConfigError
from .report import LEVEL, _interval


@dataclass(frozen=True)
class Correlation:
    rho: float
    ci_low: float
    ci_high: float
    n: int
    level: float = LEVEL


@dataclass(frozen=True)
class NoiseCeiling:
    """The Spearman a perfect predictor could reach against seed-averaged accuracies."""

    ceiling: float
    ci_low: float
    ci_high: float
    reliability: float    # share of the variance of the k-seed means that is between policies
    split_half: float     # Spearman between the means of two halves of the seeds
    n_policies: int
    n_seeds: int


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (average ranks for ties; NaN where a row is constant)."""
    rx, ry = rankdata(x, axis=-1), rankdata(y, axis=-1)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx ** 2).sum(-1) * (ry ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(-1) / den


def spearman(x, y) -> float:
    return float(_spearman_rows(np.asarray(x, float), np.asarray(y, float)))


def spearman_ci(x, y, n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> Correlation:
    """Spearman's rho of (x, y) with a percentile-bootstrap CI over the pairs (policies)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ConfigError(f"spearman_ci needs two 1-D arrays of the same length >= 3, got {x.shape} and {y.shape}")
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    reps = _spearman_rows(x[idx], y[idx])
    reps = reps[np.isfinite(reps)]  # a resample of tied values has no rank correlation
    return Correlation(spearman(x, y), *_interval(reps, level), len(x), level)


def _pearson_to_spearman(r):
    """Spearman's rho of a bivariate normal with Pearson correlation r (and back below)."""
    return 6 / np.pi * np.arcsin(np.clip(r, -1, 1) / 2)


def _spearman_to_pearson(rho):
    return 2 * np.sin(np.pi / 6 * np.clip(rho, -1, 1))


def _ceiling_from_split(rho_half: np.ndarray, steps: float) -> tuple[np.ndarray, np.ndarray]:
    """(ceiling, reliability) from the Spearman between two half means; ``steps``: how many
    times longer the full k-seed mean is than a half (2 for even k)."""
    r_half = np.clip(_spearman_to_pearson(rho_half), 0, 1)
    # Spearman-Brown: reliability of a mean ``steps`` times as long as the halves
    reliability = steps * r_half / (1 + (steps - 1) * r_half)
    return _pearson_to_spearman(np.sqrt(reliability)), reliability


def noise_ceiling(per_seed, n_boot: int = 2000, seed: int = 0, level: float = LEVEL) -> NoiseCeiling:
    """The best Spearman any predictor can reach against the seed-averaged accuracies.

    ``per_seed``: policies x QAT seeds (>= 2 seeds). A perfect predictor knows each policy's
    true (infinite-seed) accuracy; its correlation with the observed k-seed means is the square
    root of their reliability (classical attenuation). The reliability comes from a split half:
    the Spearman between the means of the first and second half of the seeds, turned into a
    Pearson correlation (bivariate-normal relation r = 2 sin(pi rho / 6)), stepped up to k
    seeds by Spearman-Brown (f r / (1 + (f - 1) r), f = k / half, i.e. 2r / (1 + r) for even k);
    the root goes back to the Spearman scale. The halves are the first and the last k // 2
    seeds (one fixed split: deterministic). The CI resamples policies. With two seeds the split
    half is simply seed 0 against seed 1.
    """
    m = np.asarray(per_seed, float)
    if m.ndim != 2 or m.shape[1] < 2 or m.shape[0] < 3 or not np.isfinite(m).all():
        raise ConfigError(f"noise_ceiling needs a complete policies x seeds matrix with >= 3 policies and >= 2 "
                          f"seeds, got shape {m.shape}")
    k = m.shape[1]
    half = k // 2
    first, second = m[:, :half].mean(axis=1), m[:, k - half:].mean(axis=1)
    rho = spearman(first, second)
    ceiling, reliability = _ceiling_from_split(np.array(rho), k / half)
    idx = np.random.default_rng(seed).integers(0, len(m), size=(n_boot, len(m)))
    reps = _spearman_rows(first[idx], second[idx])
    reps, _ = _ceiling_from_split(reps[np.isfinite(reps)], k / half)
    return NoiseCeiling(float(ceiling), *_interval(reps, level), float(reliability), float(rho), len(m), k)


__all__ = ["Correlation", "NoiseCeiling", "spearman", "spearman_ci", "noise_ceiling"]
