"""Every statistic and verdict rule of the book, in one tested module.

Rank correlations live in :mod:`mpqlib.study.ranks`, the ``claims.json`` schema and writer in
:mod:`mpqlib.study.claims_doc`.

Inputs are the stored per-seed values: a *long table* (a list of dicts or a pandas DataFrame)
with one row per run and at least the columns ``policy``, ``search_seed``, ``qat_seed`` and
``top1`` (percent). Nothing here trains or reads files; notebooks call these functions and
hold no statistics of their own.

The design the statistics follow (book/method.md, protocol version 2):

* **Pairing.** Within a QAT seed every policy is fine-tuned on the same data subset in the
  same order, so a policy difference is taken *within* a QAT seed before anything is averaged
  or resampled; the seed's shared luck cancels.
* **Hierarchy.** A searched policy varies with its search seed, and its accuracy with the QAT
  seed. The bootstrap resamples both: search seeds (the outer units, of each side of a
  comparison on its own: ``a_units`` and ``b_units`` in ``claims.json``) and QAT seeds. Because
  a QAT seed is shared by every search seed (crossed, not nested), one draw of QAT seeds
  serves all units of a replicate (:func:`bootstrap_means` says why and what coverage that
  gives).
* **Verdicts are rules stated in advance** (:data:`RULES`), applied to the 95% CI only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError

LEVEL = 0.95
"""Confidence level of every interval in the book."""

MARGIN_PP = 0.3
"""Pre-registered equivalence margin in percentage points (protocol version 2)."""

RULES: dict[str, str] = {
    "difference": "a - b per QAT seed; 'better' if the 95% CI lies above 0, 'worse' if below, "
                  "else 'within noise'.",
    "superiority": "a - b per QAT seed, a must beat b (positive control); 'better' if the 95% CI lies "
                   "above 0, else 'no power' (the budget cannot tell policies apart).",
    "equivalence": "a - b per QAT seed; 'equivalent (+-{margin} pp)' if the whole 95% CI lies within "
                   "+-{margin} pp (two one-sided tests at 2.5% each), 'different' if it excludes 0 and "
                   "is not within the margin, else 'not shown equivalent'.",
}
"""Verdict rules by id; claims name the rule they were judged by (``{margin}`` is filled in)."""

COLUMNS = ("policy", "search_seed", "qat_seed", "top1")


# --------------------------------------------------------------------------- result types

@dataclass(frozen=True)
class Estimate:
    """A mean or a paired difference a - b in percentage points with its bootstrap CI."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int          # paired differences (search unit x QAT seed) it rests on
    level: float = LEVEL

    @property
    def ci(self) -> tuple[float, float]:
        return self.ci_low, self.ci_high


Difference = Estimate


@dataclass(frozen=True)
class Equivalence(Estimate):
    margin: float = MARGIN_PP
    verdict: str = ""


@dataclass(frozen=True)
class Power:
    """How well the design can separate policies (percentage points)."""

    seed_sd_pp: float     # SD of one policy's top-1 across QAT seeds, pooled over policies
    policy_sd_pp: float   # SD across the policies' seed-mean top-1
    n_policies: int

    @property
    def ratio(self) -> float:
        """policy SD / seed SD: the pre-registered pilot rule asks for >= 2."""
        return self.policy_sd_pp / self.seed_sd_pp if self.seed_sd_pp > 0 else math.nan


# --------------------------------------------------------------------------- the long table

def _rows(table) -> list[dict]:
    """The table as a list of dicts, checked for the columns every statistic needs."""
    rows = table.to_dict("records") if hasattr(table, "to_dict") and not isinstance(table, Mapping) else list(table)
    if not rows:
        raise ConfigError("the table of per-seed results is empty: run the protocol first")
    missing = [c for c in COLUMNS if c not in rows[0]]
    if missing:
        raise ConfigError(f"the table lacks columns {missing}: it needs one row per run with {list(COLUMNS)}")
    return rows


def _names(b: str | Sequence[str]) -> list[str]:
    return [b] if isinstance(b, str) else list(b)


def _runs(rows: list[dict], policy: str) -> dict[Any, dict[Any, float]]:
    """{search_seed: {qat_seed: top1}} of one policy."""
    out: dict[Any, dict[Any, float]] = {}
    for r in rows:
        if r["policy"] == policy:
            out.setdefault(r["search_seed"], {})[r["qat_seed"]] = float(r["top1"])
    return out


def _units(rows: list[dict], policies: str | Sequence[str]) -> list[dict[Any, float]]:
    """The outer units of one side: every (policy, search seed) as {qat_seed: top1}, in a fixed order."""
    units = []
    for name in _names(policies):
        runs = _runs(rows, name)
        units += [runs[s] for s in sorted(runs, key=str)]
    if not units:
        known = sorted({str(r["policy"]) for r in rows})
        raise ConfigError(f"no runs of policy {policies!r} in the table; it holds {known}")
    return units


def paired_matrix(table, a: str | Sequence[str], b: str | Sequence[str]) -> np.ndarray:
    """Differences a - b within QAT seeds: one row per outer unit, one column per QAT seed.

    A side is one policy (its search seeds are its units) or several (each policy's search
    seeds, e.g. all random policies). Units of a and b are paired in order, the shorter side
    repeating: a fixed policy (uniform) against three search seeds gives three rows. Only QAT
    seeds that both sides ran are used; a missing cell is NaN.
    """
    rows = _rows(table)
    ua, ub = _units(rows, a), _units(rows, b)
    seeds = sorted(set().union(*ua) & set().union(*ub), key=str)
    if not seeds:
        raise ConfigError(f"{a!r} and {b!r} share no QAT seed: a paired difference needs the same seeds for both")
    n = max(len(ua), len(ub))
    return np.array([[ua[i % len(ua)].get(q, np.nan) - ub[i % len(ub)].get(q, np.nan) for q in seeds]
                     for i in range(n)], dtype=float)


def _side_matrix(table, side: str | Sequence[str]) -> np.ndarray:
    rows = _rows(table)
    units = _units(rows, side)
    seeds = sorted(set().union(*units), key=str)
    return np.array([[u.get(q, np.nan) for q in seeds] for u in units], dtype=float)


# --------------------------------------------------------------------------- the bootstrap

def _grand_mean(m: np.ndarray) -> float:
    """Mean over outer units of each unit's mean over its QAT seeds (NaN cells ignored)."""
    return float(np.nanmean(np.nanmean(m, axis=1)))


def bootstrap_means(m: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap replicates of :func:`_grand_mean` of ``m`` (outer units x QAT seeds).

    Each replicate draws the outer units (search seeds, random policies) with replacement and
    the QAT seeds with replacement, *one draw of QAT seeds for all units*: a QAT seed fixes the
    data for every policy and search seed, so the seeds are crossed with the units, not nested
    in them, and a seed's luck is common to all rows (resampling seeds per row would average it
    away and give intervals that cover ~80% instead of 95%). The replicates are then spread by
    sqrt(n / (n - 1)) for the smaller of the two counts, the usual correction of the bootstrap
    variance of a mean (it is (n - 1) / n too small); in tests this brings coverage to 91-97%
    with 3-8 search units and 4-8 QAT seeds. With one outer unit the interval shows QAT-seed
    noise only: the variation between searches is not seen.
    """
    m = np.asarray(m, float)
    if m.ndim != 2:
        raise ConfigError(f"expected a 2-D array (outer units x QAT seeds), got shape {m.shape}")
    m = m[np.isfinite(m).any(axis=1)][:, np.isfinite(m).any(axis=0)]
    n_units, n_seeds = m.shape
    if n_units * n_seeds < 2:
        raise ConfigError(f"a bootstrap CI needs at least two per-seed values, got {n_units * n_seeds}: "
                          "run more QAT seeds or search seeds")
    units = rng.integers(0, n_units, size=(n_boot, n_units))
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    drawn = m[units[:, :, None], seeds[:, None, :]]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a unit whose drawn seeds are all missing
        reps = np.nanmean(np.nanmean(drawn, axis=2), axis=1)
    reps = reps[np.isfinite(reps)]
    n_small = min(n for n in (n_units, n_seeds) if n > 1)
    return _grand_mean(m) + (reps - _grand_mean(m)) * math.sqrt(n_small / (n_small - 1))


def _interval(reps: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(reps, [tail, 100 - tail])
    return float(lo), float(hi)


def side_matrices(table, a: str | Sequence[str], b: str | Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each side's per-seed top-1 over the QAT seeds both ran: rows its outer units (policy x
    search seed), columns the shared QAT seeds, in the same column order for both."""
    rows = _rows(table)
    ua, ub = _units(rows, a), _units(rows, b)
    seeds = sorted(set().union(*ua) & set().union(*ub), key=str)
    if not seeds:
        raise ConfigError(f"{a!r} and {b!r} share no QAT seed: a paired difference needs the same seeds for both")
    return tuple(np.array([[u.get(q, np.nan) for q in seeds] for u in side], dtype=float) for side in (ua, ub))


def bootstrap_difference(ma: np.ndarray, mb: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Replicates of mean(a) - mean(b) where *both* sides' outer units are resampled, each on its
    own (a's search seeds are not b's), and one draw of QAT seeds serves both, so the difference
    stays paired within a QAT seed (see :func:`bootstrap_means`). A side with one unit is not
    drawn: with b fixed this is exactly :func:`bootstrap_means` of the rows a_i - b."""
    (na, q), nb = ma.shape, mb.shape[0]
    if (na * q < 2 and nb * q < 2) or q < 1:
        raise ConfigError(f"a bootstrap CI needs at least two per-seed values per side, got {na}x{q} and {nb}x{q}: "
                          "run more QAT seeds or search seeds")
    first, second = (ma, mb) if na > 1 or nb == 1 else (mb, ma)
    draws = {}
    n1 = first.shape[0]
    draws[id(first)] = rng.integers(0, n1, size=(n_boot, n1)) if n1 > 1 else np.zeros((n_boot, 1), int)
    seeds = rng.integers(0, q, size=(n_boot, q))
    n2 = second.shape[0]
    draws[id(second)] = rng.integers(0, n2, size=(n_boot, n2)) if n2 > 1 else np.zeros((n_boot, 1), int)

    def side_means(m: np.ndarray) -> np.ndarray:
        drawn = m[draws[id(m)][:, :, None], seeds[:, None, :]]
        return np.nanmean(np.nanmean(drawn, axis=2), axis=1)

    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a unit whose drawn seeds are all missing
        reps = side_means(ma) - side_means(mb)
    reps = reps[np.isfinite(reps)]
    centre = _grand_mean(ma) - _grand_mean(mb)
    n_small = min((n for n in (na, nb, q) if n > 1), default=2)
    return centre + (reps - centre) * math.sqrt(n_small / (n_small - 1))


def paired_difference(table, a=None, b=None, *, n_boot: int = 10000, seed: int = 0, level: float = LEVEL,
                      paired: bool = True) -> Difference:
    """a - b in percentage points with a two-level percentile-bootstrap CI.

    ``table`` is the long table with policy names ``a`` and ``b`` (each a name or a list of
    names, see :func:`side_matrices`): both sides' outer units are resampled, each on its own,
    with one draw of QAT seeds for both (:func:`bootstrap_difference`). ``table`` may instead be
    a matrix of paired differences (rows: outer units, columns: QAT seeds). ``paired=False``
    (for comparison only) resamples each side's QAT seeds on their own too, ignoring that a
    QAT seed is shared; with shared seed effects its CI is wider.
    """
    rng = np.random.default_rng(seed)
    if a is None and b is None:
        d = np.asarray(table, float)
        reps = bootstrap_means(d, n_boot, rng)
        return Difference(_grand_mean(d), *_interval(reps, level), int(np.isfinite(d).sum()), level)
    ma, mb = side_matrices(table, a, b) if paired else (_side_matrix(table, a), _side_matrix(table, b))
    if not paired:
        ra, rb = bootstrap_means(ma, n_boot, rng), bootstrap_means(mb, n_boot, rng)
        reps = ra[:len(rb)] - rb[:len(ra)]
        return Difference(_grand_mean(ma) - _grand_mean(mb), *_interval(reps, level),
                          int(np.isfinite(ma).sum() + np.isfinite(mb).sum()), level)
    reps = bootstrap_difference(ma, mb, n_boot, rng)
    n = int(np.isfinite(paired_matrix(table, a, b)).sum())
    return Difference(_grand_mean(ma) - _grand_mean(mb), *_interval(reps, level), n, level)


def units(table, side: str | Sequence[str]) -> int:
    """How many outer units (policy x search seed) one side of a claim rests on."""
    return len(_units(_rows(table), side))


def mean_ci(values, *, n_boot: int = 10000, seed: int = 0, level: float = LEVEL) -> Estimate:
    """One policy's mean top-1 with its bootstrap CI: ``values`` are its QAT seeds (1-D) or
    search seeds x QAT seeds (2-D, resampled like :func:`paired_difference`)."""
    m = np.atleast_2d(np.asarray(values, float))
    reps = bootstrap_means(m, n_boot, np.random.default_rng(seed))
    return Estimate(_grand_mean(m), *_interval(reps, level), int(np.isfinite(m).sum()), level)


# --------------------------------------------------------------------------- verdicts

def rule_text(rule: str, margin: float = MARGIN_PP) -> str:
    if rule not in RULES:
        raise ConfigError(f"unknown verdict rule {rule!r}: use one of {sorted(RULES)}")
    return RULES[rule].format(margin=margin)


def verdict(estimate: float, ci: tuple[float, float], rule: str = "difference", margin: float = MARGIN_PP) -> str:
    """The words :data:`RULES` give a difference with 95% CI ``ci``.

    The CI alone decides; ``estimate`` is taken so that a call reads like the claim it judges.
    """
    lo, hi = (float(c) for c in ci)
    rule_text(rule, margin)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise ConfigError(f"the CI must be two finite numbers, low <= high, not {ci!r}")
    if rule == "equivalence":
        if -margin <= lo and hi <= margin:
            return f"equivalent (±{margin:g} pp)"
        return "different" if lo > 0 or hi < 0 else "not shown equivalent"
    if lo > 0:
        return "better"
    if rule == "superiority":
        return "no power"
    return "worse" if hi < 0 else "within noise"


def equivalence(table, a=None, b=None, margin: float = MARGIN_PP, *, n_boot: int = 10000, seed: int = 0) -> Equivalence:
    """Is a - b within +-``margin`` pp? TOST-style, on the 95% CI.

    Two one-sided tests at 2.5% each: equivalence is shown when the whole 95% CI of the
    paired difference lies inside +-margin. The 95% (not the textbook 90%) CI is used so
    that the interval the book prints is the one that decides: a reader never sees a CI
    that crosses the margin beside the word "equivalent". This is the stricter choice.
    """
    d = paired_difference(table, a, b, n_boot=n_boot, seed=seed)
    return Equivalence(**asdict(d), margin=margin, verdict=verdict(d.estimate, d.ci, "equivalence", margin))


def t_interval(ma: np.ndarray, mb: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """A t-interval for mean(a) - mean(b) beside the bootstrap's: Welch's over the two sides'
    unit means (search seeds x policies; a side of one unit adds no variance), or, with one unit
    a side, Student's over the QAT seeds' paired differences."""
    from scipy.stats import t as student

    ra, rb = np.nanmean(ma, axis=1), np.nanmean(mb, axis=1)
    est = float(ra.mean() - rb.mean())
    na, nb = len(ra), len(rb)
    if na > 1 or nb > 1:
        va = float(ra.var(ddof=1)) / na if na > 1 else 0.0
        vb = float(rb.var(ddof=1)) / nb if nb > 1 else 0.0
        se2 = va + vb
        df = se2 ** 2 / sum(v ** 2 / (n - 1) for v, n in ((va, na), (vb, nb)) if n > 1 and v > 0) if se2 > 0 else 1.0
    else:
        d = (ma[0] - mb[0])[np.isfinite(ma[0] - mb[0])]
        if len(d) < 2:
            return est, est
        se2, df = float(d.var(ddof=1)) / len(d), len(d) - 1
    half = float(student.ppf(0.5 + level / 2, df)) * math.sqrt(se2)
    return est - half, est + half


MC_SEEDS = 20  # bootstrap seeds over which a verdict's Monte Carlo stability is measured


def claim(claim_id: str, model: str, budget: str, table, a, b, rule: str = "difference", *,
          n_boot: int = 10000, seed: int = 0, margin: float = MARGIN_PP) -> dict:
    """One row of ``claims.json``: the paired difference a - b, its bootstrap CI and its verdict
    by ``rule``; beside them (protocol version 4) a t-interval, the share of :data:`MC_SEEDS`
    bootstrap seeds whose verdict differs from the one reported (``mc_flip_fraction``), and the
    estimate, CI and verdict without the runs the outlier rule calls collapsed."""
    from .outliers import collapsed, without_collapsed

    d = paired_difference(table, a, b, n_boot=n_boot, seed=seed)
    word = verdict(d.estimate, d.ci, rule, margin)
    ma, mb = side_matrices(table, a, b)

    def verdict_at(s: int, xa=ma, xb=mb) -> tuple[float, float, str]:
        lo, hi = _interval(bootstrap_difference(xa, xb, n_boot, np.random.default_rng(s)), LEVEL)
        return lo, hi, verdict(_grand_mean(xa) - _grand_mean(xb), (lo, hi), rule, margin)

    # the reported seed is one of the MC_SEEDS: its CI is d's, so only the others can flip
    flips = sum(verdict_at(s)[2] != word for s in range(seed + 1, seed + MC_SEEDS))
    t_lo, t_hi = t_interval(ma, mb)
    out_a, out_b = collapsed(ma), collapsed(mb)
    ca, cb = without_collapsed(ma), without_collapsed(mb)
    c_lo, c_hi, c_word = verdict_at(seed, ca, cb) if (out_a.any() or out_b.any()) else (d.ci_low, d.ci_high, word)
    return {"id": claim_id, "model": model, "budget": str(budget), "estimate_pp": round(d.estimate, 4),
            "ci_low": round(d.ci_low, 4), "ci_high": round(d.ci_high, 4), "n": d.n,
            "a_units": units(table, a), "b_units": units(table, b),
            "verdict": word, "rule": rule,
            "t_ci_low": round(t_lo, 4), "t_ci_high": round(t_hi, 4),
            "mc_flip_fraction": round(flips / MC_SEEDS, 4), "n_boot": n_boot,
            "collapsed_runs": {"a": int(out_a.sum()), "b": int(out_b.sum())},
            "estimate_without_outliers": round(_grand_mean(ca) - _grand_mean(cb), 4),
            "ci_without_outliers": [round(c_lo, 4), round(c_hi, 4)], "verdict_without_outliers": c_word}


# --------------------------------------------------------------------------- power

def power(table, policies: str | Sequence[str] | None = None) -> Power:
    """Seed SD and policy SD in pp from the runs of ``policies`` (default: every policy whose
    name starts with ``random``, else every policy in the table).

    ``seed_sd_pp``: the pooled within-unit SD across QAT seeds, sqrt(sum (k_i - 1) s_i^2 /
    sum (k_i - 1)) over units (policy x search seed) with k_i >= 2 seeds. ``policy_sd_pp``: the
    SD (ddof 1) of the units' seed means. Note that it still contains seed noise of size
    seed_sd / sqrt(k).
    """
    rows = _rows(table)
    if policies is None:
        names = sorted({str(r["policy"]) for r in rows})
        policies = [n for n in names if n.startswith("random")] or names
    m = _side_matrix(rows, policies)
    counts = np.isfinite(m).sum(axis=1)
    multi = counts >= 2
    if not multi.any():
        raise ConfigError("no policy has two or more QAT seeds: the seed SD needs repeated seeds")
    ss = np.nansum((m[multi] - np.nanmean(m[multi], axis=1, keepdims=True)) ** 2)
    seed_sd = math.sqrt(ss / (counts[multi] - 1).sum())
    means = np.nanmean(m[counts > 0], axis=1)
    policy_sd = float(np.std(means, ddof=1)) if len(means) > 1 else math.nan
    return Power(seed_sd, policy_sd, len(means))


# --------------------------------------------------------------------------- formatting

def fmt_signed(x: float, digits: int = 2, sign: bool = True) -> str:
    """``+0.42``, ``-0.42``; a value that rounds to zero is ``0.00``, never ``-0.00`` or ``+0.00``."""
    text = f"{x:.{digits}f}"
    if float(text) == 0:
        return f"{0:.{digits}f}"
    return f"+{text}" if sign and x > 0 else text


def fmt_pp(x: float, digits: int = 2, sign: bool = True) -> str:
    """``+0.42 pp``; ``n/a`` for a missing value."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{fmt_signed(x, digits, sign)} pp"


def fmt_ci(lo: float, hi: float, digits: int = 2) -> str:
    """``[-0.12, +0.35] pp``."""
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "n/a"
    return f"[{fmt_signed(lo, digits)}, {fmt_signed(hi, digits)}] pp"


def fmt_diff(estimate: float, lo: float, hi: float, digits: int = 2) -> str:
    """A difference with its CI, the unit once: ``+0.42 [-0.12, +0.96] pp``."""
    if estimate is None or not math.isfinite(estimate):
        return "n/a"
    ci = fmt_ci(lo, hi, digits)
    return f"{fmt_signed(estimate, digits)} {ci}" if ci != "n/a" else fmt_pp(estimate, digits)


def fmt_bitops(n: float, digits: int = 1) -> str:
    """``285.4 M`` (k, M, G, T; 1000-based as BitOps are counted)."""
    n = float(n)
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f} {unit}"
    return f"{n:.0f}"


def fmt_seconds(s: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``; under 0.05 s ``40 ms`` (never ``0.0 s``)."""
    s = float(s)
    if s < 0.05:
        return f"{1000 * s:.2g} ms" if s >= 0.001 else "under 1 ms"
    if s < 90:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


__all__ = ["t_interval", "MC_SEEDS", "LEVEL", "MARGIN_PP", "RULES", "fmt_diff", "Estimate", "Difference", "Equivalence",
           "Power", "paired_matrix", "bootstrap_means", "mean_ci", "paired_difference", "rule_text", "verdict",
           "equivalence", "claim", "power", "fmt_pp", "fmt_ci", "fmt_signed", "fmt_bitops", "fmt_seconds"]
