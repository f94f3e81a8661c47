"""``claims.json``: its schema, checked before it is written (atomically), and its writer. A claim
is one paired difference of :func:`mpqlib.study.report.claim`; the document adds the power and
head-fit blocks the book's verdicts read."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TypedDict, get_type_hints

import numpy as np

from .._io import read_json, write_json
from ..errors import ConfigError
from .report import RULES, Power


class _ClaimCore(TypedDict):
    id: str
    model: str
    budget: str
    estimate_pp: float
    ci_low: float
    ci_high: float
    n: int
    verdict: str
    rule: str


class Claim(_ClaimCore, total=False):
    """One claim of claims.json: a paired difference a - b (percentage points) with its 95% CI and
    the verdict of its rule. The keys of ``_ClaimCore`` are required (:func:`validate_claims`); the
    rest are written by the study since protocol version 4."""

    a_units: int                      # search seeds (outer units) of each side
    b_units: int
    t_ci_low: float                   # the t-interval beside the bootstrap CI
    t_ci_high: float
    mc_flip_fraction: float           # share of 20 bootstrap seeds whose verdict differs from the reported one
    n_boot: int
    collapsed_runs: dict              # the runs the outlier rule flags, by side
    estimate_without_outliers: float
    ci_without_outliers: list[float]
    verdict_without_outliers: str
    design: dict                      # search seeds per side and QAT seeds (protocol version 4's tests)
    power_equivalent: float           # P(equivalent | true difference 0) of that design
    experiment: str


class _ClaimsCore(TypedDict):
    claims: list[Claim]
    power: dict                       # per model: seed SD, policy SD, their ratio
    head: dict                        # per model: SEAM's head against a linear probe


class ClaimsDoc(_ClaimsCore, total=False):
    """claims.json: the claims, the power and head-fit blocks (required), and what the book adds."""

    margin_pp: float
    budgets: dict                     # per model: its main budget
    outliers: dict                    # the outlier rule and the runs it flags
    budget_pilot: dict                # protocol version 4's budget pilot
    second_budget_claims: list[Claim]
    experiment_power: dict


_CLAIM_FIELDS = get_type_hints(_ClaimCore)  # the required keys and their types: {"id": str, ...}
_POWER_FIELDS = ("seed_sd_pp", "policy_sd_pp")
_HEAD_FIELDS = ("seam_proxy_acc", "linear_probe_acc")


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(float(v))


def _check_block(name: str, block, fields: tuple[str, ...], models: set[str]) -> None:
    """``block`` holds ``fields`` as numbers, either itself or once per model of the claims."""
    if not isinstance(block, Mapping):
        raise ConfigError(f"claims.json: {name!r} must be an object, not {type(block).__name__}")
    per_model = all(isinstance(v, Mapping) for v in block.values()) and bool(block)
    parts = {m: block.get(m) for m in models} if per_model else {"": block}
    for model, part in parts.items():
        where = f"{name}[{model!r}]" if model else name
        if not isinstance(part, Mapping):
            raise ConfigError(f"claims.json: {where} is missing (one entry per model of the claims)")
        for f in fields:
            if not _is_number(part.get(f)):
                raise ConfigError(f"claims.json: {where} needs a finite number {f!r}, got {part.get(f)!r}")


def validate_claims(doc: Mapping) -> None:
    """Raise :class:`ConfigError` unless ``doc`` has the schema of claims.json:
    ``{"claims": [{id, model, budget, estimate_pp, ci_low, ci_high, n, verdict, rule}],
    "power": {seed_sd_pp, policy_sd_pp}, "head": {seam_proxy_acc, linear_probe_acc}}``.

    ``power`` and ``head`` may instead hold one such object per model named in the claims.
    Extra keys are allowed; missing or mistyped ones are not.
    """
    for key in ("claims", "power", "head"):
        if key not in doc:
            raise ConfigError(f"claims.json needs a top-level {key!r}")
    claims = doc["claims"]
    if not isinstance(claims, list) or not claims:
        raise ConfigError("claims.json: 'claims' must be a non-empty list")
    for i, c in enumerate(claims):
        for f, kind in _CLAIM_FIELDS.items():
            if f not in c:
                raise ConfigError(f"claims.json: claim {i} ({c.get('id', '?')}) lacks {f!r}")
            ok = _is_number(c[f]) if kind is float else (isinstance(c[f], kind) and not isinstance(c[f], bool))
            if not ok:
                raise ConfigError(f"claims.json: claim {c.get('id', i)}: {f!r} must be {kind.__name__}, got {c[f]!r}")
        if c["ci_low"] > c["ci_high"] or c["n"] < 1:
            raise ConfigError(f"claims.json: claim {c['id']}: needs ci_low <= ci_high and n >= 1")
        if c["rule"] not in RULES:
            raise ConfigError(f"claims.json: claim {c['id']}: unknown rule {c['rule']!r}, use one of {sorted(RULES)}")
    ids = [(c["model"], c["budget"], c["id"]) for c in claims]
    if len(set(ids)) != len(ids):
        raise ConfigError("claims.json: a (model, budget, id) appears twice")
    models = {c["model"] for c in claims}
    _check_block("power", doc["power"], _POWER_FIELDS, models)
    _check_block("head", doc["head"], _HEAD_FIELDS, models)


def _plain(obj):
    """numpy scalars and dataclasses -> JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "__dataclass_fields__"):
        return _plain(asdict(obj))
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def read_claims(path: str | os.PathLike) -> ClaimsDoc:
    """claims.json at ``path``, checked against its schema (:func:`validate_claims`)."""
    doc = read_json(Path(path))
    validate_claims(doc)
    return doc


def claims_json(claims: list[dict], power: Mapping | Power, head: Mapping, path: str | os.PathLike = "results/claims.json",
                **extra) -> dict:
    """Validate and write ``claims.json`` atomically; returns the document.

    ``power``: a :class:`Power` or ``{"seed_sd_pp", "policy_sd_pp"}`` (or one per model);
    ``head``: ``{"seam_proxy_acc", "linear_probe_acc"}`` (or one per model). ``extra``
    top-level keys (``margin_pp``, ...) are written after the three of the schema.
    """
    if isinstance(power, Power):
        power = {"seed_sd_pp": power.seed_sd_pp, "policy_sd_pp": power.policy_sd_pp}
    doc = _plain({"claims": list(claims), "power": power, "head": head, **extra})
    validate_claims(doc)
    write_json(Path(path), doc)
    return doc


__all__ = ["Claim", "ClaimsDoc", "validate_claims", "claims_json", "read_claims"]
