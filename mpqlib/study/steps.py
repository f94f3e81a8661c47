"""The study's kinds of cached step, declared once.

Each kind is registered with :func:`step`, which gives it everything the study needs to know of it:

* ``version``: part of every record's cache key (:meth:`mpqlib.study.cache.Cache.key`). Bump it when
  the kind's code changes what it computes: every cached record of that kind then recomputes;
* ``order``: when a wave of missing steps is handed out, lower first (the model a step trains,
  then searches, then the QAT runs; the engine hands the longest kinds out first so that the
  last wave is not one long step);
* ``costs_like``: how ``mpq study status`` estimates a kind never recorded yet (``("qat", 6)``: as
  six QAT runs; ``(None, 1)``: the task's own work is its seconds, see
  :func:`mpqlib.study.pipeline.expected_seconds`); None: from its own recorded times;
* the decorated function: how a worker computes a missing step of the kind from the
  :class:`~mpqlib.study.cache.Task` the planner noted (``fn(ex, args)``, ``ex`` the worker's
  :class:`~mpqlib.study.experiments.Experiments`). A kind whose function is None is not a step of an
  ``Experiments`` (the class-subset model of chapter 7 is trained by
  :func:`mpqlib.study.engine.compute` itself).

    >>> STEPS["qat"].version, STEPS["qat"].order
    (2, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import ConfigError
from ..policy import Policy

if TYPE_CHECKING:  # pragma: no cover
    from .experiments import Experiments


@dataclass(frozen=True)
class StepKind:
    """One kind of cached step (see the module's docstring)."""

    name: str
    version: int
    order: int
    execute: "Callable[[Experiments, tuple], Any] | None"
    costs_like: tuple[str | None, float] | None = None
    doc: str = ""


STEPS: dict[str, StepKind] = {}
"""Every kind of cached step, by name."""


def step(name: str, *, version: int, order: int, costs_like: tuple[str | None, float] | None = None,
         worker: bool = True) -> Callable:
    """Register the decorated ``fn(ex, args)`` as the execution of step kind ``name`` (``worker``
    False: the engine computes it itself, and the function only documents the kind)."""
    def register(fn: Callable) -> Callable:
        if name in STEPS:
            raise ConfigError(f"step kind {name!r} is declared twice")
        STEPS[name] = StepKind(name, version, order, fn if worker else None, costs_like, (fn.__doc__ or "").strip())
        return fn
    return register


def kind(name: str) -> StepKind:
    """The registered kind ``name``; a :class:`~mpqlib.errors.ConfigError` naming the known ones otherwise."""
    if name not in STEPS:
        raise ConfigError(f"unknown cached step {name!r}; known: {', '.join(STEPS)}")
    return STEPS[name]


@step("train", version=1, order=0, costs_like=("qat", 40), worker=False)
def _train(ex: "Experiments", args: tuple) -> None:
    """Chapter 7's class-subset model, trained from scratch (:func:`mpqlib.study.objections.train_record`);
    7 epochs of 30,000 images, about 40 QAT runs' time (7.7 ms per image on one thread)."""


@step("observation", version=1, order=0, costs_like=("qat", 6))
def _observation(ex: "Experiments", args: tuple) -> None:
    """Chapter 1's six quantized models and their features (their weights are not kept in git)."""
    ex.observation()


@step("search", version=2, order=1)
def _search(ex: "Experiments", args: tuple) -> None:
    """One policy search (a method, its data, seed and budget)."""
    ex.run_search(*args)


@step("qat", version=2, order=2)
def _qat(ex: "Experiments", args: tuple) -> None:
    """Quantization-aware training of one policy under one QAT seed and recipe (the policy given,
    or a :class:`~mpqlib.study.cache.SearchRef`: the policy its search found)."""
    policy = Policy.from_dict(args[0]) if isinstance(args[0], dict) else args[0].policy(ex)
    ex.qat(policy, *args[1:])


@step("proxy-metrics", version=2, order=3)
def _proxy_metrics(ex: "Experiments", args: tuple) -> None:
    """Chapter 5's discriminability metrics of one policy on the proxy (BN recalibrated)."""
    ex.proxy_metrics(Policy.from_dict(args[0]))


@step("timing", version=1, order=4, costs_like=(None, 1))
def _timing(ex: "Experiments", args: tuple) -> None:
    """Chapter 4's timing stage: one repeat of a search, run again on a quiet host (its work is
    the search's recorded seconds)."""
    ex.timing(args[0], args[1], **args[2])


def work(step: str, config: Mapping | None) -> float:
    """A step's work relative to others of its kind, from its cache key's configuration: a QAT
    run's epochs x training images (the converged QAT's 10 epochs on 60,000 images are 40 times
    the common recipe's one on 15,000), 1 for every other step."""
    if step != "qat" or not config:
        return 1.0
    qat = config.get("qat") or {}
    images = qat.get("train_images") or (config.get("train") or {}).get("size") or 1
    return float(qat.get("epochs") or 1) * images


__all__ = ["StepKind", "STEPS", "step", "kind", "work"]
