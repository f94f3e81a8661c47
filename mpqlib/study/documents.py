"""The study's results files as types: one ``TypedDict`` per file (and per nested record the
book reads), checked against the file when it is read (:func:`read_doc`).

A schema lists what a reader relies on: the required keys (and their types) of each level. A file
that lacks one, or holds a value of another type, is refused with the path to the value and the
command that writes the file again, instead of failing later in a chapter as a ``KeyError``.
Extra keys are allowed (the study may write more than the book reads). claims.json has its own
schema, with value checks of its own (:mod:`mpqlib.study.claims_doc`).

    >>> check({"seconds": 1.5, "repeats": 3}, Timed, "t")
    >>> check({"seconds": "1.5"}, Timed, "t")
    Traceback (most recent call last):
    ...
    mpqlib.errors.ConfigError: t['seconds'] must be a number, not str '1.5'
"""

from __future__ import annotations

import math
import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, Union, get_args, get_origin, get_type_hints, is_typeddict

from .._io import read_json
from ..errors import ConfigError


# --------------------------------------------------------------------------- runs.json
class RunRow(TypedDict):
    """One per-seed run of runs.json: a policy (searched with ``search_seed``, or fixed) trained
    by QAT under ``qat_seed``; ``search`` and ``qat`` are the cache keys of its two steps."""

    model: str
    budget: str
    budget_bitops: int
    policy: str
    search_seed: int
    qat_seed: int
    top1: float
    bitops: int
    search: str | None
    qat: str


class RunsDoc(TypedDict):
    """runs.json: every per-seed run of the study, and the QAT recipe of the profile."""

    profile: str
    runs: list[RunRow]


# --------------------------------------------------------------------------- pilot.json
class BudgetPilot(TypedDict):
    """One budget of the pilot for one model: the two standard deviations and their ratio."""

    seed_sd_pp: float
    policy_sd_pp: float
    ratio: float


class PilotDoc(TypedDict):
    """pilot.json: per model and budget the pilot's spreads, the budget chosen and whether the
    model passes the power rule there."""

    rule: str
    budgets: dict[str, dict[str, BudgetPilot]]
    chosen: dict[str, str]
    power: dict[str, bool]


# --------------------------------------------------------------------------- power.json
class Design(TypedDict):
    search_seeds: int
    qat_seeds: int
    power_equivalent: float


class PowerTest(TypedDict):
    """One test of the a-priori power analysis (what the book reads of
    :class:`mpqlib.study.power.TransferTest` and its simulation): its sides, the runs each had,
    the variance components it was simulated from, the designs tried and the one chosen."""

    id: str
    model: str
    a: str
    b: str
    have: dict[str, list[int]]
    components: dict[str, dict[str, float]]
    designs: list[Design]
    chosen: Design


class PowerGoal(TypedDict):
    power: float
    margin_pp: float
    delta_pp: float


class PowerDoc(TypedDict):
    """power.json: protocol version 4's power analysis (:mod:`mpqlib.study.power`)."""

    protocol_version: int
    goal: PowerGoal
    cap_hours: float
    n_sims: int
    tests: dict[str, PowerTest]


# --------------------------------------------------------------------------- efficiency.json
class _TimedCore(TypedDict):
    seconds: float


class Timed(_TimedCore, total=False):
    """One timed search: the median of its repeats (seconds) with their range, where it ran."""

    seconds_low: float
    seconds_high: float
    repeats: int
    host: str | None
    timed: bool
    images: int
    epochs: float


class _RatioCore(TypedDict):
    value: float | None  # None: not measured on one host


class Ratio(_RatioCore, total=False):
    low: float | None
    high: float | None
    contended: bool
    note: str | None


class _EfficiencyCore(TypedDict):
    methods: dict[str, Timed]
    model: str


class EfficiencyDoc(_EfficiencyCore, total=False):
    """efficiency.json: chapter 4's costs (:func:`mpqlib.study.runs.efficiency_run`); the ratios
    of one host (``ratios_host``) where the timing stage ran."""

    ratios_host: str | None
    ratios: dict[str, Ratio]
    search_length: dict[str, Timed]
    proxy_size: dict[str, Timed]
    imagenet: dict[str, Any]
    contention: dict[str, Any]
    fp_train_seconds: float


# --------------------------------------------------------------------------- objections.json
class _RungCore(TypedDict):
    proxy: str
    estimate_pp: float
    ci_low: float
    ci_high: float


class LadderRung(_RungCore, total=False):
    """One proxy of the class-shift ladder: SEAM on it minus the target search."""

    policy: str
    model: str
    a_units: int
    b_units: int


class LongQAT(TypedDict):
    epochs: list[int]
    curve: dict[str, dict[str, Any]]
    plateau_epochs: int | None


class ObjectionsDoc(TypedDict):
    """objections.json: chapter 7's tuning, long QAT, class-shift ladder and class-subset model."""

    model: str
    budget: str
    tuning: dict[str, Any]
    long_qat: LongQAT
    ladder: list[LadderRung]
    disjoint: dict[str, Any] | None


# --------------------------------------------------------------------------- correlation.json
class Spearman(TypedDict):
    rho: float
    ci_low: float
    ci_high: float


class Correlation(TypedDict):
    """One model's chapter 5 result: its policies, their proxy metrics and the rank correlations."""

    model: str
    budget: str
    n_policies: int
    policies: list[dict[str, Any]]
    spearman: dict[str, Spearman]
    noise_ceiling: dict[str, Any]


CorrelationDoc = dict[str, Correlation]
"""correlation.json: one :class:`Correlation` per model."""


# --------------------------------------------------------------------------- checking
def _name(tp) -> str:
    return {float: "a number", int: "an integer", str: "a string", bool: "true or false"}.get(tp, getattr(tp, "__name__", str(tp)))


def _is(value, tp) -> bool:
    if tp is Any:
        return True
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is type(None):
        return value is None
    return isinstance(value, tp)


def check(value, tp, where: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` has type ``tp`` (a TypedDict, ``dict[str, T]``,
    ``list[T]``, ``T | None``, a number, a string...), naming where in the document it failed."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return
        rest = [o for o in options if o is not type(None)]
        if len(rest) == 1:
            return check(value, rest[0], where)
        if not any(_is(value, o) for o in rest):
            raise ConfigError(f"{where} must be one of {', '.join(_name(o) for o in rest)}, not {value!r}")
        return
    if is_typeddict(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be an object, not {type(value).__name__}")
        hints = get_type_hints(tp)
        for key in sorted(tp.__required_keys__):
            if key not in value:
                raise ConfigError(f"{where} lacks {key!r}")
        for key, sub in hints.items():
            if key in value:
                check(value[key], sub, f"{where}[{key!r}]")
        return
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be an object, not {type(value).__name__}")
        args = get_args(tp)
        if args:
            for key, sub in value.items():
                check(sub, args[1], f"{where}[{key!r}]")
        return
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, not {type(value).__name__}")
        args = get_args(tp)
        if args:
            for i, sub in enumerate(value):
                check(sub, args[0], f"{where}[{i}]")
        return
    if not _is(value, tp):
        raise ConfigError(f"{where} must be {_name(tp)}, not {type(value).__name__} {value!r}")


DOCS: dict[str, tuple[Any, tuple[str, ...] | str]] = {
    "runs.json": (RunsDoc, ("protocol", "sweep")),
    "pilot.json": (PilotDoc, ("pilot",)),
    "power.json": (PowerDoc, "python scripts/power_analysis.py"),
    "efficiency.json": (EfficiencyDoc, ("efficiency", "timing")),
    "objections.json": (ObjectionsDoc, ("objections",)),
    "correlation.json": (CorrelationDoc, ("correlation",)),
}
"""Each typed results file: its schema, and the study parts that write it (or the command)."""


def read_doc(path: str | os.PathLike, schema=None, hint: str = "mpq study run"):
    """The results file at ``path`` (a name of :data:`DOCS`, or any file with its ``schema``),
    checked against its schema; a mismatch is a :class:`ConfigError` naming the value and the
    command (``hint``) that writes the file again."""
    path = Path(path)
    if schema is None:
        schema, parts = DOCS[path.name]
        hint = parts if isinstance(parts, str) else f"{hint} --parts {','.join(parts)}"
    doc = read_json(path)
    try:
        check(doc, schema, path.stem)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err} (written by another version of the study? run `{hint}` again)") from None
    return doc


__all__ = ["RunRow", "RunsDoc", "BudgetPilot", "PilotDoc", "Design", "PowerTest", "PowerDoc", "Timed", "Ratio", "EfficiencyDoc",
           "LadderRung", "LongQAT", "ObjectionsDoc", "Spearman", "Correlation", "CorrelationDoc", "DOCS",
           "check", "read_doc"]
