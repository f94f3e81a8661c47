"""The study as a pipeline of cached steps: pilot -> budget -> searches -> QAT -> claims,
efficiency, correlation, and chapter 1's observation.

A step is one cached record of :class:`~mpqlib.study.experiments.Cache` (a search, a QAT run, the
proxy metrics of a policy, chapter 1's observation): a pure function of its resolved inputs
(configuration, data fingerprint, checkpoint hash, budget, seeds, the profile's thread count),
stored under the hash of those inputs. The graph is not written out by hand: :meth:`Study.walk`
runs the study's own code (:class:`~mpqlib.study.experiments.Experiments`) in *planning* mode, where a
step the cache lacks is noted as a :class:`~mpqlib.study.experiments.Task` instead of being computed.
A step that takes a missing step's result as input (the QAT runs of a policy not searched yet) is
noted too, *blocked* on it (:attr:`~mpqlib.study.cache.Task.needs`); the engine hands the graph to
Dask, whose futures carry each search's records to the QAT runs that need them. So the keys the
pipeline computes are, by construction, the keys the study reads, and `mpq study status` is a dry
resolution of the same graph. What the walk cannot see is a step whose existence a result decides
(the protocol's extra search seeds, the pilot's budget, the class-subset model's experiment):
:func:`run` walks again after each graph, until nothing is missing, then writes the results files
from the cache (a file whose content did not change is not touched).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from .._io import write_json
from ..errors import ConfigError
from .cache import Cache, attempt
from .experiments import Experiments, Missing, Task
from . import objections
from .runs import claims_file, efficiency_parts, efficiency_run, pilot, pilot_runs, timing_plan
from .profiles import Profile, resolve
from .steps import kind, work
from .stored import write_models


from . import PARTS
CHAPTER_PARTS = {1: ("observation",), 2: ("protocol",), 3: ("protocol", "sweep", "v4", "claims"),
                 4: ("efficiency", "timing"), 5: ("correlation",), 6: ("protocol", "sweep", "v4", "claims"),
                 7: ("protocol", "objections", "v4", "claims")}


@dataclass
class Plan:
    """One walk of the study, a graph of steps: how many cached records it read, and the missing
    steps, each *ready* (every input cached) or *blocked* (it takes the result of a missing step
    as input, :attr:`~mpqlib.study.cache.Task.needs`). A run hands the whole graph to the engine,
    which resolves it (Dask futures). Steps whose very existence is decided by results (the
    protocol's extra search seeds, the pilot's budget, the class-subset model's experiment) are
    found by the walk after those results exist."""

    cached: int
    missing: dict[str, Task] = field(default_factory=dict)
    by_part: dict[str, Counter] = field(default_factory=dict)  # part -> {"cached": n, "missing": n, "blocked": n}

    @property
    def done(self) -> bool:
        return not self.missing

    @property
    def ready(self) -> list[Task]:
        return [t for t in self.missing.values() if not t.needs]

    @property
    def blocked(self) -> list[Task]:
        return [t for t in self.missing.values() if t.needs]


class Study:
    """One profile's study: its :class:`Experiments` per model, walked or finished as a whole."""

    def __init__(self, profile: Profile | str = "full", overrides: Mapping | str | None = None,
                 parts: Iterable[str] = PARTS):
        self.p = resolve(profile, overrides)
        self.parts = tuple(parts)
        unknown = set(self.parts) - set(PARTS)
        if unknown:
            raise ConfigError(f"unknown part(s) of the study {', '.join(sorted(unknown))}; parts: {', '.join(PARTS)}")
        self._ex: dict[str, Experiments] = {}

    def ex(self, model: str) -> Experiments:
        if model not in self._ex:
            self._ex[model] = objections.experiments(self.p, model)
        return self._ex[model]

    def cache_root(self) -> Path:
        return self.p.cache_path()

    # ------------------------------------------------------------------ planning
    def walk(self, write: bool = True) -> Plan:
        """Every step the parts need, read from the cache where it is there; the rest noted.
        ``write`` False (status): nothing is written, not even the pilot's choice of budget."""
        missing: dict[str, Task] = {}
        counts: dict[str, Counter] = defaultdict(Counter)
        hits = 0

        def part(name: str, fn: Callable[[], object]) -> None:
            nonlocal hits
            before_hits, before = self._hits(), set(missing)
            attempt(fn)
            new = [missing[k] for k in missing if k not in before]
            counts[name]["cached"] += self._hits() - before_hits
            counts[name]["missing"] += len(new)
            counts[name]["blocked"] += sum(t.blocked for t in new)
            hits += self._hits() - before_hits

        for model in self.p.models:
            self.ex(model).plan = missing
        try:
            if self.p.budget == "pilot" and not self.p.path("pilot.json").exists():
                for model in self.p.models:
                    part("pilot", lambda m=model: [pilot_runs(self.ex(m), b) for b in self.p.pilot_budgets])
                if missing or not write:  # the main budget is unknown until the pilot's steps are computed
                    return Plan(hits, missing, dict(counts))
                pilot(self.p)  # every step cached: writes pilot.json, computes nothing
            for model in self.p.models:
                ex = self.ex(model)
                if {"protocol", "claims"} & set(self.parts):
                    part("protocol", ex.protocol)
                if "sweep" in self.parts and model in self.p.sweep_models():
                    part("sweep", ex.sweep)
                if "correlation" in self.parts and model in self.p.correlation_models():
                    part("correlation", ex.correlation)
                if "observation" in self.parts and model == next(iter(self.p.models)):
                    part("observation", ex.observation)
                if "objections" in self.parts and model == self.p.objections_model() and self.p.protocol_version >= 3:
                    part("objections", lambda e=ex: objections.walk(e, missing))
            if "v4" in self.parts and self.p.protocol_version >= 4:
                part("v4", lambda: self._v4(missing))
            if "efficiency" in self.parts:
                part("efficiency", lambda: efficiency_parts(self.ex(self.p.efficiency_model())))
            if "timing" in self.parts:
                part("timing", lambda: self._timing_steps(self.ex(self.p.efficiency_model())))
        finally:
            for ex in self._ex.values():
                ex.plan = None
        return Plan(hits, missing, dict(counts))

    def _hits(self) -> int:
        return sum(ex.cache.hits for ex in self._ex.values())

    def _v4(self, plan: dict | None) -> list[dict]:
        """Protocol version 4's steps (:func:`mpqlib.study.protocol4.walk`): on the objections model,
        its class-disjoint twin and the budget pilot's model; the plateau length from chapter 7's
        QAT curve (its steps first)."""
        from . import protocol4

        ex = self.ex(self.p.objections_model())
        plateau = objections.long_qat(ex)["plateau_epochs"]
        try:
            dex = objections.experiments(self.p, objections.disjoint_name(self.p), plan)
            dex.plan = plan
        except Missing:
            dex = None
        on = self.p.v4.budget_pilot_on
        pilot_ex = self.ex(on) if on in self.p.models else None
        return protocol4.walk(ex, dex, pilot_ex, plateau)

    def _timing_steps(self, ex: Experiments) -> None:
        for name, kw in timing_plan(self.p, ex):
            for r in range(self.p.timing.repeats):
                attempt(ex.timing, name, r, **kw)

    def compute_timing(self, tasks: Iterable[Task], log: Callable[[str], None] | None = print) -> None:
        """The timing stage's steps, one after another in this process (never beside other work:
        a parallel worker would share the cores it measures)."""
        from tqdm.auto import tqdm

        for task in tqdm(list(tasks), desc="timing", disable=log is None):
            self.ex(task.model).execute(task)

    # ------------------------------------------------------------------ results
    def finish(self) -> list[Path]:
        """Write the results files of the parts from the cache (computes nothing when the walk
        found nothing missing); files whose content is unchanged are left untouched."""
        written = []
        for model in self.p.models:
            ex = self.ex(model)
            if {"protocol", "claims"} & set(self.parts):
                ex.protocol()
            if "sweep" in self.parts and model in self.p.sweep_models():
                ex.sweep()
        if {"protocol", "sweep"} & set(self.parts):
            written.append(self.p.path("runs.json"))
        if "correlation" in self.parts:
            corr = {m: self.ex(m).correlation() for m in self.p.correlation_models()}
            written.append(write_json(self.p.path("correlation.json"), corr))
        if {"efficiency", "timing"} & set(self.parts):
            efficiency_run(self.p)
            written.append(self.p.path("efficiency.json"))
        if "objections" in self.parts and self.p.protocol_version >= 3:
            objections.summary(self.ex(self.p.objections_model()))
            written += [self.p.path("runs.json"), self.p.path("objections.json")]
        if "v4" in self.parts and self.p.protocol_version >= 4:
            self._v4(None)
            written.append(self.p.path("runs.json"))
        if "claims" in self.parts:
            claims_file(self.p)
            written.append(self.p.path("claims.json"))
        if {"protocol", "claims", "observation"} & set(self.parts):  # what the chapters read of each model
            written.append(write_models(self.p, {m: self.ex(m) for m in self.p.models}, self.parts))
        return written


# --------------------------------------------------------------------------- expected time
def step_seconds(cache_root: Path) -> dict[tuple[str, str], list[float]]:
    """Recorded wall time of every cached step under ``cache_root`` per unit of its work
    (:func:`work`), by (model, step): the record's ``elapsed_s``, else (steps cached before it
    existed) its own ``seconds``."""
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (model, step), seconds, _, config in _timed(cache_root):
        out[(model, step)].append(seconds / work(step, config))
    return dict(out)


def summarise(cache_root: Path) -> dict[tuple[str, str], dict]:
    """``{(model, step): {"n", "seconds", "approximate"}}``: ``approximate`` counts the steps
    timed by their record's own seconds (without the set-up around the step)."""
    out: dict = defaultdict(lambda: {"n": 0, "seconds": 0.0, "approximate": 0})
    for ident, seconds, whole, _ in _timed(cache_root):
        out[ident]["n"] += 1
        out[ident]["seconds"] += seconds
        out[ident]["approximate"] += not whole
    return dict(out)


def _timed(cache_root: Path):
    for path in sorted(Path(cache_root).glob("*/*/*.json")):
        stored = json.loads(path.read_text())
        whole = stored.get("elapsed_s") is not None
        seconds = stored["elapsed_s"] if whole else (stored.get("record") or {}).get("seconds") or 0.0
        yield (path.parts[-3], path.parts[-2]), float(seconds), whole, stored.get("config")


def expected_seconds(tasks: Iterable[Task], recorded: Mapping[tuple[str, str], list[float]],
                     work_of: Callable[[Task], float] = lambda task: 1.0) -> float | None:
    """The sum over ``tasks`` of the recorded mean time per unit of work of each task's kind of
    step (its model's, else any model's) times the task's work (``work_of``, see :func:`work`);
    None when some kind of step has never been recorded."""
    by_step: dict[str, list[float]] = defaultdict(list)
    for (_, step), times in recorded.items():
        by_step[step] += times
    total = 0.0
    for t in tasks:
        step, n = kind(t.step).costs_like or (t.step, 1)
        if step is None:  # the task's work is its time (a timing repeat: its search's recorded seconds)
            total += n * work_of(t)
            continue
        times = recorded.get((t.model, step)) or by_step.get(step)
        if not times:
            return None
        total += n * work_of(t) * sum(times) / len(times)
    return total


def _task_work(study: "Study", task: Task) -> float:
    """:func:`work` of a missing step, from the configuration its cache key will hold; a step
    costed like QAT (its kind's ``costs_like``, :mod:`mpqlib.study.steps`) counts in runs of the
    profile's common recipe."""
    if task.step == "timing":
        name, _, kw = task.args
        return study.ex(task.model).search(name, **kw).record["seconds"]
    if task.step == "qat":  # args: (policy or SearchRef, seed, recipe, train, test); the policy does not count
        cfg, train = (tuple(task.args[2:4]) + (None, None))[:2]
        return study.ex(task.model).qat_work(cfg, train)
    if (kind(task.step).costs_like or ("",))[0] == "qat":
        return study.ex(task.model if task.model in study.p.models else study.p.objections_model()).qat_work()
    return 1.0


def describe(plan: Plan, study: Study) -> str:
    """``mpq study status``'s report: per part what is cached and what remains, and the time."""
    lines = [f"profile {study.p.name}: {plan.cached} cached step records read, {len(plan.missing)} steps to compute"
             + (f" ({len(plan.ready)} ready, {len(plan.blocked)} blocked on a missing step)" if plan.missing else "")]
    for name, c in plan.by_part.items():
        lines.append(f"  {name:12s} cached {c['cached']:5d}   to compute {c['missing']:4d}"
                     + (f" ({c['blocked']} blocked)" if c.get("blocked") else ""))
    if plan.missing:
        recorded = step_seconds(study.cache_root())
        for label, tasks in (("ready", plan.ready), ("blocked", plan.blocked)):
            if not tasks:
                continue
            kinds = Counter(t.step for t in tasks)
            secs = expected_seconds(tasks, recorded, lambda task: _task_work(study, task))
            when = "unknown (no such step recorded yet)" if secs is None else f"{secs / 3600:.2f} h on one worker"
            lines.append(f"  {label + ':':8s} {', '.join(f'{n} {k}' for k, n in kinds.items())}; expected {when}")
        lines.append("  steps decided by results not computed yet (extra seeds, the pilot's budget) are not counted")
    else:
        lines.append("  every step is cached: nothing to compute")
    return "\n".join(lines)


# --------------------------------------------------------------------------- run / ensure
def run(profile: Profile | str = "full", overrides: Mapping | str | None = None, parts: Iterable[str] = PARTS, *,
        workers: int | None = None, cluster: str | None = None, log: Callable[[str], None] | None = print) -> Plan:
    """Compute every missing step of ``parts`` (on ``workers`` local processes, on the Dask
    scheduler at ``cluster``, or here, one after another), then write the results files.
    A killed run resumes: every finished step is stored as soon as it arrives."""
    from .engine import executor

    study = Study(profile, overrides, parts)
    previous: set[str] = set()
    with executor(study.p, workers=workers, cluster=cluster) as execute:
        while True:
            plan = study.walk()
            if plan.done:
                break
            if set(plan.missing) == previous:
                raise ConfigError("the pipeline computed steps whose records it then did not find "
                                  f"({', '.join(sorted(previous)[:3])}, ...): is the cache directory writable?")
            previous = set(plan.missing)
            if log:
                log(f"computing {len(plan.missing)} steps: "
                    + ", ".join(f"{n} {k}" for k, n in Counter(t.step for t in plan.missing.values()).items())
                    + f" ({len(plan.blocked)} of them wait for a search of this run)")
            # each kind in its declared order (the engine's); within a kind the cheapest first, so
            # that a run stopped part-way has finished as many steps as it could
            others = sorted((t for t in plan.missing.values() if t.step != "timing"),
                            key=lambda t: (kind(t.step).order, _task_work(study, t)))
            if not others:  # the timing stage: last, alone, one step at a time, here
                study.compute_timing(plan.missing.values(), log)
                continue
            for record in execute(others):
                Cache(study.cache_root() / record["model_name"]).put(record["stored"])
    study.finish()
    return plan


_ENSURED: dict[str, set[str]] = {}  # per process: profile -> parts already ensured (nothing missing)


def ensure(profile: Profile | str = "full", overrides: Mapping | str | None = None, parts: Iterable[str] = PARTS,
           *, chapter: int | None = None, workers: int | None = None) -> Plan | None:
    """What a chapter's first cell calls: the study's ``parts`` (or those ``chapter`` shows)
    computed where steps are missing (only those steps; on ``workers`` local processes, default
    ``$MPQ_WORKERS``, else here), nothing at all where everything is cached. Parts already
    ensured in this process are not walked again (None); with ``$MPQ_READ_ONLY`` set nothing is
    walked or computed (None): the chapters show what the study's files hold."""
    if os.environ.get("MPQ_READ_ONLY"):  # a reader's chapters read what the study computed, nothing more
        return None
    p = resolve(profile, overrides)
    wanted = set(CHAPTER_PARTS[chapter] if chapter is not None else parts)
    done = _ENSURED.setdefault(repr(p), set())
    if wanted <= done:
        return None
    if workers is None and os.environ.get("MPQ_WORKERS"):
        workers = int(os.environ["MPQ_WORKERS"])
    plan = run(p, None, sorted(wanted - done, key=PARTS.index), workers=workers, log=None)
    done |= wanted
    return plan


def status(profile: Profile | str = "full", overrides: Mapping | str | None = None,
           parts: Iterable[str] = PARTS) -> tuple[Plan, str]:
    study = Study(profile, overrides, parts)
    plan = study.walk(write=False)
    return plan, describe(plan, study)


__all__ = ["PARTS", "CHAPTER_PARTS", "Plan", "Study", "run", "ensure", "status", "describe", "step_seconds",
           "summarise", "expected_seconds"]
