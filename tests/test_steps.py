"""The step registry (mpqlib.study.steps): every kind of cached step declared once, with the
version its records carry, the order a wave hands it out in and how a worker computes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpqlib.errors import ConfigError
from mpqlib.study import steps as S
from mpqlib.study.cache import STEP_VERSIONS, Cache, Task

ROOT = Path(__file__).resolve().parents[1]


def test_every_committed_kind_is_declared_with_the_version_its_records_carry():
    """The committed cache's kinds are the registry's, and each record's version is its kind's:
    a version typed twice could drift, and every key of that kind would change."""
    dirs = [d for model in (ROOT / "cache" / "full").iterdir() if model.is_dir() for d in model.iterdir() if d.is_dir()]
    assert dirs and {d.name for d in dirs} <= set(S.STEPS)
    for d in dirs:
        record = json.loads(next(d.glob("*.json")).read_text())
        assert record["version"] == S.STEPS[d.name].version == STEP_VERSIONS[d.name], d


def test_an_unknown_kind_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="unknown cached step 'qta'; known: .*qat"):
        Cache.key("qta", {})
    with pytest.raises(ConfigError, match="declared twice"):
        S.step("qat", version=9, order=0)(lambda ex, args: None)
    assert S.STEPS["qat"].version == 2  # the refused declaration changed nothing


def test_waves_hand_out_models_then_searches_then_qat():
    order = sorted(["qat", "timing", "search", "proxy-metrics", "train", "observation"], key=lambda k: S.kind(k).order)
    assert order.index("train") < order.index("search") < order.index("qat") < order.index("proxy-metrics")


def test_a_worker_dispatches_through_the_registry():
    """Experiments.execute calls the kind's declared function; the engine's own kind (train) is refused."""
    from mpqlib.study.experiments import Experiments

    calls = []

    class Fake:
        def run_search(self, *args):
            calls.append(("search", args))

    Experiments.execute(Fake(), Task("m", "search", "k", ("seam-mnist", None, 0)))
    assert calls == [("search", ("seam-mnist", None, 0))]
    with pytest.raises(ConfigError, match="not computed by an Experiments"):
        Experiments.execute(Fake(), Task("m", "train", "k", ()))


def test_a_qat_run_of_a_missing_search_is_noted_blocked_on_it():
    """While planning, the QAT runs of a policy not searched yet are tasks that need that search:
    one per QAT seed and recipe, whatever the row's label (a search shared by two labels gives
    one task per run), and `mpq study status` counts them."""
    from mpqlib.study.cache import Missing, SearchRef
    from mpqlib.study.experiments import Experiments

    class Fake:
        model_name, plan = "m", {}

    search = Missing(Task("m", "search", "S", ()))
    ref = SearchRef.of("seam-mnist", seed=1, budget=None)
    Experiments.after(Fake(), search, ref, (0, 1))
    Experiments.after(Fake(), search, ref, (1, 2))  # the same search under another label
    tasks = list(Fake.plan.values())
    assert len(tasks) == 3 and all(t.step == "qat" and t.needs == ("S",) and t.blocked for t in tasks)
    assert {t.args[1] for t in tasks} == {0, 1, 2} and all(t.args[0] == ref for t in tasks)
    assert ref.kw == (("budget", None), ("seed", 1))  # sorted: one ref per search, hashable


def test_a_blocked_qat_run_trains_the_policy_its_search_found():
    from mpqlib.policy import Policy
    from mpqlib.study.cache import SearchRef

    policy = Policy({"conv": (3, 4)})
    calls = []

    class Fake:
        def search(self, name, **kw):
            calls.append(("search", name, kw))
            return type("Res", (), {"policy": policy})()

        def qat(self, *args):
            calls.append(("qat", *args))

    S.STEPS["qat"].execute(Fake(), (SearchRef.of("target-fmnist", seed=2), 1))
    assert calls == [("search", "target-fmnist", {"seed": 2}), ("qat", policy, 1)]


def test_a_worker_reads_the_records_of_the_steps_a_task_needs_and_returns_only_its_own(tmp_path):
    """The engine hands a blocked task its inputs' records (Dask futures): the worker reads them
    from memory, not from a cache it may not see, and sends back only what it computed."""
    from mpqlib.study import engine
    from mpqlib.study.cache import Overlay
    from mpqlib.study.profiles import resolve

    p = resolve("smoke")
    search = {"step": "search", "key": "S", "policy": {"bits": {}}}
    seen = []

    class Fake:
        cache = Overlay(tmp_path)

        def execute(self, task):
            seen.append(self.cache.new.get(("search", "S")))
            self.cache.put({"step": "qat", "key": "Q", "top1": 90.0})

    engine._WORKER[(repr(p), "m")] = Fake()
    try:
        out = engine.compute(p, Task("m", "qat", "S>qat", (), needs=("S",)), [{"model_name": "m", "stored": search}])
    finally:
        del engine._WORKER[(repr(p), "m")]
    assert seen == [search]
    assert out == [{"model_name": "m", "stored": {"step": "qat", "key": "Q", "top1": 90.0}}]
