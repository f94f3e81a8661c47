"""Typed configurations: one frozen dataclass per search method, and for training and QAT.

Every option and its default lives here once. The search API, the command line, the
experiments and YAML files all build these objects::

    from mpqlib import search
    from mpqlib.config import SeamConfig
    result = search(model, proxy, budget, SeamConfig(epochs=4, margin=0.1))

    # run.yaml:  method: seam
    #            epochs: 4
    cfg = load_config("run.yaml")

:func:`search` dispatches on the config's type through :data:`RUNNERS` (filled by
:func:`register_runner` in the search modules). Values are checked against the field types
when a config is built, so a wrong type or range fails at once with a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from .errors import ConfigError

CANDIDATES: tuple[int, ...] = (2, 3, 4, 5, 6)
MIN_BITS, MAX_BITS = 2, 16  # a signed 1-bit LSQ quantizer has only {-s, 0}: 2 bits is the floor
FIXED_BITS = 8  # the first conv and the last FC, outside the search (the paper's and the common convention)
FIXED_PAIR = (FIXED_BITS, FIXED_BITS)  # their (weight, activation) bits


# --------------------------------------------------------------------------- checking
def _check_value(owner: str, name: str, tp: Any, value: Any) -> Any:
    """``value`` coerced to the annotated type ``tp`` (ints to floats, lists to tuples), or ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _check_value(owner, name, a, value)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{owner}.{name} must be {_type_name(tp)}, not {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{owner}.{name} must be one of {', '.join(map(repr, typing.get_args(tp)))}, not {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{owner}.{name} must be a list, not {value!r}")
        (inner, *_rest) = typing.get_args(tp) or (Any,)
        return tuple(_check_value(owner, name, inner, v) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{owner}.{name} must be a mapping, not {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{owner}.{name} must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{owner}.{name} must be an integer, not {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{owner}.{name} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{owner}.{name} must be finite, not {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{owner}.{name} must be a string, not {value!r}")
        return value
    return value


_FRIENDLY = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    names = [_FRIENDLY.get(a, getattr(a, "__name__", str(a))) for a in args]
    return " or ".join(names) + (" or null" if type(None) in typing.get_args(tp) else "")


def later_option(default: Any) -> Any:
    """A config option added after results were cached: at ``default`` it is left out of
    :meth:`Config.to_dict` (and so of every cache key), elsewhere it is written like any other."""
    return dataclasses.field(default=default, metadata={"later": True})


class Config:
    """Mixin of every config dataclass: type checks, ``replace``, ``to_dict``, ``from_dict``, ``key``."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        owner = type(self).__name__
        for f in dataclasses.fields(self):
            value = _check_value(owner, f.name, hints[f.name], getattr(self, f.name))
            object.__setattr__(self, f.name, value)
        self.validate()

    def validate(self) -> None:
        """Range checks beyond types (override and call super())."""

    def _positive(self, *names: str, allow_zero: bool = False) -> None:
        for n in names:
            v = getattr(self, n)
            if v is not None and (v < 0 or (v == 0 and not allow_zero)):
                raise ConfigError(f"{type(self).__name__}.{n} must be {'>= 0' if allow_zero else '> 0'}, not {v!r}")

    def replace(self, **changes):
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no option {', '.join(sorted(unknown))}; "
                              f"options: {', '.join(f.name for f in dataclasses.fields(self))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Every option, except an option added after results were keyed by it (declared with
        :func:`later_option`) while it is at its default: so adding one keeps every cache key."""
        d = dataclasses.asdict(self)
        later = {f.name: f.default for f in dataclasses.fields(self) if f.metadata.get("later")}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()
                if not (k in later and v == later[k])}

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict):
            raise ConfigError(f"a {cls.__name__} must be built from a mapping, not {d!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"{cls.__name__} has no option {', '.join(sorted(unknown))}; options: {', '.join(sorted(names))}")
        return cls(**d)

    def key(self) -> str:
        """A stable hash of the whole resolved configuration (type included)."""
        blob = json.dumps({"type": type(self).__name__, **self.to_dict()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check_candidates(owner: str, candidates: tuple[int, ...]) -> None:
    if not candidates:
        raise ConfigError(f"{owner}.candidates is empty; give bit-widths such as [2, 3, 4, 5, 6]")
    bad = [b for b in candidates if not MIN_BITS <= b <= MAX_BITS]
    if bad:
        raise ConfigError(f"{owner}.candidates {bad} outside {MIN_BITS}..{MAX_BITS} bits "
                          f"(a signed 1-bit LSQ quantizer has only the levels {{-s, 0}})")
    if len(set(candidates)) != len(candidates):
        raise ConfigError(f"{owner}.candidates has duplicates: {list(candidates)}")


# --------------------------------------------------------------------------- searches
@dataclass(frozen=True)
class SearchConfig(Config):
    """Options every search shares."""

    method: ClassVar[str] = ""
    candidates: tuple[int, ...] = CANDIDATES
    batch_size: int = 128
    seed: int = 0

    def validate(self) -> None:
        _check_candidates(type(self).__name__, self.candidates)
        self._positive("batch_size")
        self._positive("seed", allow_zero=True)


@dataclass(frozen=True)
class DifferentiableConfig(SearchConfig):
    """The differentiable supernet search (SEAM, its CE ablation, the search on the target).

    The backbone and BatchNorm stay frozen unless ``freeze_backbone=False``; LSQ step sizes of
    every candidate and the mixing logits learn. Loss = head loss + gamma * max(0, E[BitOps] /
    budget - 1). Readout ``ilp`` meets the budget (and fills it to >= ``fill``), ``argmax`` is the paper's.
    """

    head: ClassVar[str] = "model"
    epochs: int = 8
    lr_arch: float = 0.02
    lr_step: float = 1e-3
    lr_head: float = 1e-2
    lr_backbone: float = 1e-3
    gamma: float = 1.0
    readout: typing.Literal["ilp", "argmax"] = "ilp"
    fill: float = 0.99
    freeze_backbone: bool = True
    head_prefit_steps: int = 200           # head fitted on the supernet's starting features first
    max_steps: int | None = None           # stop after this many optimiser steps (equal-steps runs)

    def validate(self) -> None:
        super().validate()
        self._positive("epochs", "lr_arch", "lr_step", "lr_head", "lr_backbone")
        self._positive("gamma", "head_prefit_steps", allow_zero=True)
        self._positive("max_steps")
        if not 0 < self.fill <= 1:
            raise ConfigError(f"{type(self).__name__}.fill must be in (0, 1], not {self.fill!r}")


@dataclass(frozen=True)
class SeamConfig(DifferentiableConfig):
    """SEAM: a large-margin Gaussian-mixture head over the proxy classes (see the book's method page)."""

    method: ClassVar[str] = "seam"
    head: ClassVar[str] = "lgm"
    margin: float = 0.1                    # calibrated: results/pilots/head.json (mpqlib.search.heads)
    likelihood_weight: float = 0.01        # calibrated likewise: d_y sums over 64 z-scored dims
    normalise: bool = True                 # frozen z-score with the supernet's starting features
    covariance: typing.Literal["identity", "diagonal"] = "diagonal"
    # 0: the likelihood term alone (no cross entropy over the margin logits): a point of the tuning grid
    classification_weight: float = later_option(1.0)

    def validate(self) -> None:
        super().validate()
        self._positive("margin", "likelihood_weight", "classification_weight", allow_zero=True)
        if self.classification_weight == 0 and self.likelihood_weight == 0:
            raise ConfigError("SeamConfig: classification_weight and likelihood_weight are both 0, so the head has "
                              "no loss; keep one of them above 0")


@dataclass(frozen=True)
class CEConfig(DifferentiableConfig):
    """The ablation: the same proxy search with a linear head and cross-entropy."""

    method: ClassVar[str] = "ce"
    head: ClassVar[str] = "linear"
    normalise: bool = True


@dataclass(frozen=True)
class TargetConfig(DifferentiableConfig):
    """The same search on the target data with the model's own classifier."""

    method: ClassVar[str] = "target"
    head: ClassVar[str] = "model"


@dataclass(frozen=True)
class JointConfig(DifferentiableConfig):
    """FracBits-class: weights, BatchNorm and bit-width parameters trained together on the target
    until the validation loss stops improving (``patience`` epochs) or ``epochs`` is reached."""

    method: ClassVar[str] = "joint"
    head: ClassVar[str] = "model"
    freeze_backbone: bool = False
    epochs: int = 8
    patience: int = 1
    val_images: int = 5000

    def validate(self) -> None:
        super().validate()
        self._positive("patience", "val_images")
        if self.freeze_backbone:
            raise ConfigError("JointConfig trains the backbone with the bit-widths (FracBits class); for a search over "
                              "a frozen backbone on the target use TargetConfig")
        if self.max_steps is not None:
            raise ConfigError("JointConfig stops on the held-out loss (patience) or at epochs, not at max_steps")


@dataclass(frozen=True)
class EvaluationConfig(SearchConfig):
    """Evaluation-based search: sample policies under the budget, fine-tune each briefly on the
    target and score it on held-out target data; keep the best."""

    method: ClassVar[str] = "evaluation"
    candidates_to_try: int = 16            # policies evaluated
    finetune_images: int = 2048            # images of the brief fine-tune per candidate
    val_images: int = 2000                 # held-out target images scoring each candidate
    lr: float = 0.01
    lr_step: float = 1e-3
    strategy: typing.Literal["random", "evolution"] = "evolution"
    population: int = 4

    def validate(self) -> None:
        super().validate()
        self._positive("candidates_to_try", "finetune_images", "val_images", "lr", "lr_step", "population")


@dataclass(frozen=True)
class OrthogonalityConfig(SearchConfig):
    """OMPQ-style training-free search: layer orthogonality (linear CKA between layer features)
    from one batch, then the ILP."""

    method: ClassVar[str] = "orthogonality"
    images: int = 64                       # one batch (OMPQ: one batch of the training loader)
    beta: float = 1.0                      # OMPQ's theta_l = exp(-beta * summed CKA with the other layers)
    pairs: typing.Literal["shared", "independent"] = "shared"  # one width per layer (w = a), or any (w, a)

    def validate(self) -> None:
        super().validate()
        self._positive("images")
        self._positive("beta", allow_zero=True)


@dataclass(frozen=True)
class LimpqConfig(SearchConfig):
    """LIMPQ: one LSQ step size per candidate bit-width as importance indicators, then the ILP."""

    method: ClassVar[str] = "limpq"
    epochs: int = 1
    lr_step: float = 1e-3
    alpha: float | None = None             # None: balance weight and activation indicators automatically

    def validate(self) -> None:
        super().validate()
        self._positive("epochs", "lr_step")


@dataclass(frozen=True)
class HawqConfig(SearchConfig):
    """HAWQ-V3 style: Hutchinson Hessian traces x quantization perturbation, then the ILP."""

    method: ClassVar[str] = "hawq"
    images: int = 512
    iters: int = 16

    def validate(self) -> None:
        super().validate()
        self._positive("images", "iters")


@dataclass(frozen=True)
class UniformConfig(SearchConfig):
    """Uniform precision: W``weight_bits``A``act_bits`` when both are given (the budget must hold
    it), else the highest w = a within the budget. ``mpq search --method uniform --budget w3a2``
    fills them from the budget's name, so a uniform policy meets a ``wXaY`` budget exactly."""

    method: ClassVar[str] = "uniform"
    weight_bits: int | None = None
    act_bits: int | None = None

    def validate(self) -> None:
        super().validate()
        given = [b for b in (self.weight_bits, self.act_bits) if b is not None]
        if len(given) == 1:
            raise ConfigError("UniformConfig takes weight_bits and act_bits together (e.g. 3 and 2), or neither")
        bad = [b for b in given if not MIN_BITS <= b <= MAX_BITS]
        if bad:
            raise ConfigError(f"UniformConfig bits {bad} outside {MIN_BITS}..{MAX_BITS} "
                              f"(a signed 1-bit quantizer has no non-zero level)")

    def at_budget(self, name) -> "UniformConfig":
        """This config with its bits taken from a budget name like ``w3a2`` (both among the
        candidates, none set yet): the uniform policy that meets that budget exactly."""
        wa = exact_uniform(name)
        if self.weight_bits is not None or not wa or not set(wa) <= set(self.candidates):
            return self
        return self.replace(weight_bits=wa[0], act_bits=wa[1])


def exact_uniform(spec) -> tuple[int, int] | None:
    """(w, a) of a budget name like ``w3a2`` whose uniform policy meets it exactly, else None."""
    m = re.fullmatch(r"w(\d+)a(\d+)", str(spec).strip().lower())
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class RandomConfig(SearchConfig):
    """A random policy that meets the budget (the ILP over random costs, seeded)."""

    method: ClassVar[str] = "random"


METHOD_CONFIGS: dict[str, type[SearchConfig]] = {
    c.method: c for c in (SeamConfig, CEConfig, TargetConfig, JointConfig, EvaluationConfig, OrthogonalityConfig,
                          LimpqConfig, HawqConfig, UniformConfig, RandomConfig)
}
METHODS: tuple[str, ...] = tuple(METHOD_CONFIGS)

# type(config) -> runner(model, data, budget, config, *, device, progress, input_size, val_data, sampler)
#                 -> SearchResult; mpqlib.search.search resolves device and input size before calling it
RUNNERS: dict[type, Callable[..., Any]] = {}


def register_runner(*config_types: type[SearchConfig]):
    """Decorator: the function that runs searches configured by any of ``config_types``."""

    def deco(fn):
        for t in config_types:
            RUNNERS[t] = fn
        return fn

    return deco


def runner_for(config: SearchConfig) -> Callable[..., Any]:
    """The runner registered for ``type(config)`` (or its nearest registered base class)."""
    for cls in type(config).__mro__:
        if cls in RUNNERS:
            return RUNNERS[cls]
    raise ConfigError(f"no search is registered for {type(config).__name__}; import the module that defines it "
                      f"(registered: {', '.join(sorted(c.__name__ for c in RUNNERS))})")


def method_config(method: str, **options) -> SearchConfig:
    """The config of ``method`` with ``options`` (unknown method or option: ConfigError)."""
    if method not in METHOD_CONFIGS:
        raise ConfigError(f"unknown search method {method!r}; choose one of {', '.join(METHODS)}")
    return METHOD_CONFIGS[method].from_dict(options)


# --------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainConfig(Config):
    """Full-precision training: SGD + Nesterov, cosine schedule, crop+flip augmentation."""

    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    seed: int = 0
    sync_bn: bool = False

    def validate(self) -> None:
        self._positive("epochs", "batch_size", "lr")
        self._positive("weight_decay", "seed", allow_zero=True)


@dataclass(frozen=True)
class QATConfig(Config):
    """One short LSQ recipe for every policy, so that policies are compared and not recipes."""

    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.01
    lr_step: float = 0.001
    weight_decay: float = 5e-5
    train_images: int | None = None  # a class-balanced subset of the training set; None = all
    sync_bn: bool = False

    def validate(self) -> None:
        self._positive("epochs", "batch_size", "lr", "lr_step", "train_images")
        self._positive("weight_decay", allow_zero=True)


# --------------------------------------------------------------------------- files
def load_config(path: str | os.PathLike, kind: str | None = None, **overrides) -> Config:
    """A config from a YAML (or JSON) file. Search configs name their ``method``; ``kind`` may be
    ``train`` or ``qat`` for those configs. ``overrides`` (e.g. from CLI flags) win over the file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML: {e}") from None
    if not isinstance(d, dict):
        raise ConfigError(f"{p} must hold a mapping of options, not {type(d).__name__}")
    d = {**d, **overrides}
    if kind in ("train", "qat"):
        d.pop("method", None)
        return (TrainConfig if kind == "train" else QATConfig).from_dict(d)
    method = d.pop("method", None)
    if method is None:
        raise ConfigError(f"{p} does not say which search it configures: add 'method: seam' (one of {', '.join(METHODS)})")
    return method_config(method, **d)


__all__ = [n for n in dir() if n.endswith("Config") or n in (
    "CANDIDATES", "FIXED_BITS", "FIXED_PAIR", "MIN_BITS", "MAX_BITS", "METHODS", "METHOD_CONFIGS", "RUNNERS", "register_runner", "runner_for", "method_config", "load_config")]
