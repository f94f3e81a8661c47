"""One ``profile`` (``smoke`` or ``full``) resolved into every setting of the book's run.

The notebooks take a single papermill parameter, ``profile``, plus optional ``overrides``;
everything else (checkpoints per model, budgets, seeds, the search and QAT configs, the
numbers of random policies, the sweep, the efficiency harness) is decided here, once::

    from mpqlib.study.profiles import resolve
    p = resolve("smoke")                                   # tiny: ResNet-8, tiny data, 2 seeds
    p = resolve("full", qat_seeds=[0, 1], seam={"margin": 0.1})   # overrides win

Search and QAT settings are :mod:`mpqlib.config` objects, so a typo or a wrong type in an
override fails at once with a :class:`~mpqlib.errors.ConfigError`. ``full`` is the book's
pre-registered protocol (see "Protocol (fixed before the run)" in book/method.md); ``smoke``
keeps the same structure at a size that runs in minutes, to check the plumbing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import (CEConfig, Config, EvaluationConfig, HawqConfig, JointConfig, LimpqConfig, OrthogonalityConfig, QATConfig, SeamConfig, TargetConfig)
from ..errors import ConfigError
from .facts import PROXY_PER_CLASS

PROFILES = ("smoke", "full")


def _root() -> Path:
    """Where a profile's relative paths (cache, results, checkpoints) resolve: ``$MPQ_ROOT`` when
    set, else the checkout mpqlib is imported from. Never the working directory: a chapter run
    with ``papermill --cwd book/chapters`` reads the same committed results as one run from the top."""
    if os.environ.get("MPQ_ROOT"):
        return Path(os.environ["MPQ_ROOT"]).expanduser().resolve()
    return Path(__file__).resolve().parents[2]


REPO = _root()

# Budgets whose BitOps a uniform policy meets exactly (bit-products 6, 8, 9): the pilot's candidates.
PILOT_BUDGETS = ("w3a2", "w2a3", "w2a4", "w3a3")


@dataclass(frozen=True)
class Efficiency:
    """The efficiency harness (chapter 4): search length and proxy size against policy quality."""

    epochs_curve: tuple[int, ...] = (1, 2, 4, 8)          # seam / target read out after N epochs
    proxy_sizes: tuple[int, ...] = (10, 30, 100, 240, 600)  # proxy images per class
    qat_seeds: tuple[int, ...] = (0, 1)                   # QAT seeds behind each harness policy


@dataclass(frozen=True)
class Timing:
    """Chapter 4's timing stage (:mod:`mpqlib.study.timing`): every search of its table run again
    back to back on one host, nothing else computing."""

    repeats: int = 3                  # timed runs of each search, reported as median and range
    attempts: int = 3                 # runs of one repeat before a contended machine stops the stage
    accept_contended: bool = False    # keep a repeat contended after every attempt (flagged) instead of stopping
    quiet_wait_s: float = 300.0       # wait this long at most for the load of earlier work to decay


@dataclass(frozen=True)
class Version4:
    """Protocol version 4's designs (book/method.md): search seeds a side x QAT seeds of each test,
    as the a-priori power analysis chose them (``results/power.json``; a test checks they agree),
    and the budget pilot of the model that failed the transfer tally's entry rules."""

    headline_1epoch: tuple[int, int] = (18, 8)
    headline_plateau: tuple[int, int] = (6, 4)
    deficit: tuple[int, int] = (9, 8)               # deficit-data and deficit-head (deficit-classes: the same runs)
    other_classes: tuple[int, int] = (6, 4)
    budget_pilot_on: str = "resnet20"
    budget_pilot_budgets: tuple[str, ...] = ("w2a3", "w3a2", "w2a4")
    budget_pilot_design: tuple[int, int] = (3, 2)


SEAM_GRID = tuple({"margin": m, "likelihood_weight": w} for m in (0.0, 0.1, 0.3, 1.0) for w in (0.01, 0.1, 1.0)) + (
    {"margin": 0.0, "likelihood_weight": 1.0, "classification_weight": 0.0},)  # the likelihood term alone
CE_GRID = tuple({"lr_arch": a, "lr_head": h} for a in (0.005, 0.01, 0.02, 0.05) for h in (0.003, 0.01, 0.03)) + (
    {"head_prefit_steps": 0},)  # no head pre-fit


@dataclass(frozen=True)
class Objections:
    """The objections of chapter 7 (book/method.md, protocol version 3): a tuned SEAM, a
    converged QAT, proxies ordered by distance; all on one model at its main budget."""

    on: str = "mobilenetv1"
    val_per_class: int = 500                       # the validation split held out of the training images
    seam_grid: tuple = SEAM_GRID                   # SeamConfig changes, one configuration each
    ce_grid: tuple = CE_GRID                       # CEConfig changes
    tuning_search_seeds: tuple[int, ...] = (0, 1, 2)
    tuning_qat_seeds: tuple[int, ...] = (0, 1)
    tie_pp: float = 0.05                           # a tie with the version-2 setting goes to it
    long_epochs: tuple[int, ...] = (1, 2, 5, 10)
    long_qat_seeds: tuple[int, ...] = (0, 1)
    long_train_images: int | None = None           # None: all 60,000
    plateau_pp: float = 0.2
    disjoint_classes: tuple[int, ...] = (0, 1, 2, 3, 4)
    disjoint_proxy_classes: tuple[int, ...] = (5, 6, 7, 8, 9)
    disjoint_epochs: int | None = None             # None: the base checkpoint's own recipe


@dataclass(frozen=True)
class Profile:
    """Every setting of one run. Field names are the override keys of :func:`resolve`."""

    name: str
    models: dict                      # model name -> checkpoint path (relative to the repository)
    cache_dir: str
    results_dir: str                  # runs.json, claims.json, pilot.json, efficiency.json land here
    budget: str                       # the main budget, or "pilot": the one results_dir/pilot.json picked
    second_budget: str                # W3A3, the first run's budget, kept as a second point
    pilot_budgets: tuple[str, ...]
    sweep_budgets: tuple[str, ...]    # each searched on its own; uniform only where it meets the BitOps exactly
    search_seeds: tuple[int, ...]     # proxy searches (seam, ce, second proxy, control)
    qat_seeds: tuple[int, ...]        # QAT seeds of every searched policy (paired: same data per seed)
    sweep_qat_seeds: tuple[int, ...]
    n_random: int                     # random policies at each budget (positive control, pilot)
    n_correlation: int                # chapter 5: policies spanning target accuracy (>= 30 in full)
    correlation_qat_seeds: tuple[int, ...]  # two seeds give the noise ceiling
    bootstrap: int                    # bootstrap resamples of every CI
    proxy: str                        # the main proxy (per-class sizes below)
    proxy_per_class: int
    target_data: str                  # the target search's data
    limpq_per_class: int              # LIMPQ's share of the target data
    bn_recalibration_images: int      # chapter 5: BatchNorm statistics re-estimated on the proxy
    n_points: int                     # chapter 1: images per dataset for metrics and t-SNE
    test_images: int | None           # QAT top-1 on a class-balanced subset of the 10,000 test images (None: all)
    seam: SeamConfig
    ce: CEConfig
    target: TargetConfig
    limpq: LimpqConfig
    hawq: HawqConfig
    joint: JointConfig
    evaluation: EvaluationConfig
    orthogonality: OrthogonalityConfig
    qat: QATConfig
    efficiency: Efficiency = field(default_factory=Efficiency)
    timing: Timing = field(default_factory=Timing)  # chapter 4's searches timed again on one host
    v4: Version4 = field(default_factory=Version4)   # protocol version 4's designs (part "v4")
    objections: Objections = field(default_factory=Objections)
    # The protocol's one extension: where the proxy-vs-target CI is wider than +-ci_goal_pp, the
    # model's proxy searches (all four alike) also run these search seeds (book/method.md).
    ci_goal_pp: float = 0.3
    extra_search_seeds: tuple[int, ...] = ()
    # The pre-registered protocol's version (book/method.md). 4: the tests sized by the power
    # analysis (part "v4", designs in ``v4``); 3: the target search, LIMPQ and HAWQ run every search
    # seed too (and the extension's), and the objections of chapter 7 run; 2: those three once
    # (seed 0), as the committed version-2 run did.
    protocol_version: int = 4
    # Which model runs which part (a name not in ``models`` falls back to the first model):
    sweep_on: tuple[str, ...] = ("resnet20",)            # the budget sweep (the paper's ResNet-18 figure)
    correlation_on: tuple[str, ...] = ("mobilenetv1",)   # chapter 5 (allocation moves its accuracy most)
    efficiency_on: str = "mobilenetv1"                   # the efficiency harness (the paper's Table 2 model)
    threads: int | None = 2
    progress: bool = False
    # Step times measured on GPUs at 224 x 224 (chapter 4's transfer table): files of
    # benchmarks/bench_gpu_steps.py, a glob relative to the repository (or absolute).
    gpu_steps: str = "benchmarks/gpu_steps-*.json"
    # The second proxy's data (``optdigits``: all 3,823 training images; the smoke profile a subset).
    second_proxy_data: str = "optdigits"

    def checkpoint(self, model: str) -> Path:
        if model not in self.models:
            raise ConfigError(f"profile {self.name!r} has no model {model!r}; it has {', '.join(self.models)}")
        return (REPO / self.models[model]) if not Path(self.models[model]).is_absolute() else Path(self.models[model])

    def _pick(self, names) -> list[str]:
        return [m for m in names if m in self.models] or [next(iter(self.models))]

    def sweep_models(self) -> list[str]:
        """The models whose budget sweep runs (:attr:`sweep_on` within :attr:`models`)."""
        return self._pick(self.sweep_on)

    def correlation_models(self) -> list[str]:
        """The models of chapter 5 (:attr:`correlation_on` within :attr:`models`)."""
        return self._pick(self.correlation_on)

    def objections_model(self) -> str:
        """The model of chapter 7's objections (:attr:`Objections.on`, else the first model)."""
        return self._pick((self.objections.on,))[0]

    def efficiency_model(self) -> str:
        """The efficiency harness's model (:attr:`efficiency_on`, else the first model)."""
        return self._pick((self.efficiency_on,))[0]

    def gpu_step_files(self) -> list[Path]:
        """The files :attr:`gpu_steps` names, sorted."""
        pattern = Path(self.gpu_steps)
        base = Path(pattern.anchor) if pattern.is_absolute() else REPO
        return sorted(base.glob(str(pattern.relative_to(pattern.anchor)) if pattern.is_absolute() else self.gpu_steps))

    def path(self, name: str) -> Path:
        """A results file of this profile (``runs.json``, ``claims.json``, ...)."""
        return self.results_path() / name

    def results_path(self) -> Path:
        """:attr:`results_dir`, resolved against the repository (``$MPQ_ROOT``), not the working directory."""
        d = Path(self.results_dir)
        return d if d.is_absolute() else REPO / d

    def cache_path(self) -> Path:
        """:attr:`cache_dir`, resolved against the repository (``$MPQ_ROOT``), not the working directory."""
        d = Path(self.cache_dir)
        return d if d.is_absolute() else REPO / d

    def main_budget(self, model: str) -> str:
        """The main budget's name: fixed, or the pilot's choice for ``model`` (results_dir/pilot.json)."""
        if self.budget != "pilot":
            return self.budget
        path = self.path("pilot.json")
        if not path.exists():
            raise ConfigError(f"profile {self.name!r} takes its main budget from the pilot, but {path} does not exist: "
                              f"run `mpq study pilot --profile {self.name}` first, or pass budget='w3a2'")
        chosen = json.loads(path.read_text()).get("chosen", {})
        if model not in chosen:
            raise ConfigError(f"{path} picks no budget for {model!r}; rerun `mpq study pilot --profile {self.name}`")
        return chosen[model]

    def to_dict(self) -> dict:
        """Plain JSON-able settings (configs as their ``to_dict``), stored beside every result."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Config):
                v = {"type": type(v).__name__, **v.to_dict()}
            elif dataclasses.is_dataclass(v):
                v = dataclasses.asdict(v)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


def _full() -> dict:
    """The book's protocol (pre-registered in book/method.md)."""
    return dict(
        name="full",
        models={"resnet20": "checkpoints/resnet20-fmnist.pt", "mobilenetv1": "checkpoints/mobilenetv1-fmnist.pt"},
        cache_dir="cache/full", results_dir="results",
        budget="pilot", second_budget="w3a3", pilot_budgets=PILOT_BUDGETS,
        sweep_budgets=("w3a2", "w2a4", "w3a3", "w4a4"),
        search_seeds=(0, 1, 2), qat_seeds=(0, 1, 2, 3), sweep_qat_seeds=(0, 1, 2, 3),
        n_random=8, n_correlation=30, correlation_qat_seeds=(0, 1), bootstrap=2000,
        proxy="mnist", proxy_per_class=PROXY_PER_CLASS, target_data="fmnist", limpq_per_class=600,
        bn_recalibration_images=2400, n_points=1000, test_images=None,
        seam=SeamConfig(epochs=8), ce=CEConfig(epochs=8), target=TargetConfig(epochs=2),
        limpq=LimpqConfig(epochs=1), hawq=HawqConfig(images=512),
        joint=JointConfig(), evaluation=EvaluationConfig(), orthogonality=OrthogonalityConfig(),
        qat=QATConfig(epochs=1, train_images=15000),
        efficiency=Efficiency(qat_seeds=(0, 1, 2)), extra_search_seeds=(3, 4, 5),  # v3: 3 QAT seeds behind each CI
    )


def _smoke() -> dict:
    """The same structure at plumbing size: ResNet-8, tiny data, two seeds of each kind."""
    return dict(
        _full(),
        name="smoke",
        models={"resnet8": "checkpoints/resnet8-fmnist.pt"},
        cache_dir="cache/smoke", results_dir="cache/smoke/results",
        budget="w3a2", sweep_budgets=("w2a4", "w3a3"),
        search_seeds=(0, 1), qat_seeds=(0, 1), sweep_qat_seeds=(0,),
        n_random=3, n_correlation=6, correlation_qat_seeds=(0, 1), bootstrap=200,
        proxy_per_class=20, target_data="fmnist:50", limpq_per_class=20, second_proxy_data="optdigits:20",
        bn_recalibration_images=200, n_points=100, test_images=500,
        seam=SeamConfig(epochs=1), ce=CEConfig(epochs=1),
        target=TargetConfig(epochs=1), limpq=LimpqConfig(epochs=1), hawq=HawqConfig(images=64, iters=2),
        joint=JointConfig(epochs=1, val_images=200),
        evaluation=EvaluationConfig(candidates_to_try=2, finetune_images=128, val_images=200, population=2),
        orthogonality=OrthogonalityConfig(images=32),
        qat=QATConfig(epochs=1, train_images=300),
        efficiency=Efficiency(epochs_curve=(1, 2), proxy_sizes=(10, 20), qat_seeds=(0,)), extra_search_seeds=(),
        timing=Timing(attempts=1, accept_contended=True, quiet_wait_s=0),  # CI shares machines: flagged, not redone
        v4=Version4(headline_1epoch=(3, 2), headline_plateau=(2, 2), deficit=(2, 2), other_classes=(2, 2),
                    budget_pilot_on="resnet8", budget_pilot_budgets=("w2a4",), budget_pilot_design=(2, 2)),
        objections=Objections(val_per_class=20, seam_grid=SEAM_GRID[3:5] + SEAM_GRID[-1:],
                              ce_grid=CE_GRID[7:8] + CE_GRID[-1:], tuning_search_seeds=(0,), tuning_qat_seeds=(0,),
                              long_epochs=(1, 2), long_qat_seeds=(0,), long_train_images=500, disjoint_epochs=1),
    )


_BASE = {"smoke": _smoke, "full": _full}


_OPTIONAL_INTS = {"test_images"}


def _override(name: str, current, value):
    """``value`` applied to the setting ``name`` (a config takes a mapping of its own options)."""
    if isinstance(current, Config):
        if isinstance(value, Config):
            if type(value) is not type(current):
                raise ConfigError(f"override {name!r} must be a {type(current).__name__}, not {type(value).__name__}")
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"override {name!r} takes a mapping of {type(current).__name__} options, not {value!r}")
        return current.replace(**value)
    if isinstance(current, (Efficiency, Objections, Timing, Version4)):
        if not isinstance(value, dict):
            raise ConfigError(f"override {name!r} takes a mapping, not {value!r}")
        unknown = set(value) - {f.name for f in dataclasses.fields(current)}
        if unknown:
            raise ConfigError(f"{name} has no option {', '.join(sorted(unknown))}")
        return dataclasses.replace(current, **{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
    if isinstance(current, tuple):
        if isinstance(value, str):
            try:
                value = json.loads(value)  # papermill passes lists as strings
            except json.JSONDecodeError:
                value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"override {name!r} takes a list, not {value!r}")
        return tuple(value)
    if isinstance(current, dict) and not isinstance(value, dict):
        raise ConfigError(f"override {name!r} takes a mapping, not {value!r}")
    optional = name in _OPTIONAL_INTS and value is None
    if (isinstance(current, int) or name in _OPTIONAL_INTS) and not isinstance(value, int) and not optional:
        raise ConfigError(f"override {name!r} takes an integer, not {value!r}")
    return value


def resolve(profile: "str | Profile" = "full", overrides: dict | None = None, **more) -> Profile:
    """The :class:`Profile` named ``profile`` with ``overrides`` (a mapping, e.g. papermill's
    ``overrides`` parameter) and keyword overrides applied. Unknown names raise ConfigError."""
    if isinstance(profile, Profile):
        base = {f.name: getattr(profile, f.name) for f in dataclasses.fields(Profile)}
    elif profile in _BASE:
        base = _BASE[profile]()
    else:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if isinstance(overrides, str):
        overrides = json.loads(overrides) if overrides.strip() else {}
    changes = {**(overrides or {}), **more}
    fields = {f.name: f for f in dataclasses.fields(Profile)}
    unknown = set(changes) - set(fields) | ({"name"} & set(changes))
    if unknown:
        raise ConfigError(f"unknown profile setting(s) {', '.join(sorted(unknown))}; "
                          f"settings: {', '.join(sorted(set(fields) - {'name'}))}")
    for k, v in changes.items():
        f = fields[k]
        current = base[k] if k in base else (f.default_factory() if f.default_factory is not dataclasses.MISSING
                                             else f.default)
        base[k] = _override(k, current, v)
    return Profile(**base)


__all__ = ["PROFILES", "PILOT_BUDGETS", "SEAM_GRID", "CE_GRID", "Efficiency", "Objections", "Timing", "Version4", "Profile", "resolve"]
