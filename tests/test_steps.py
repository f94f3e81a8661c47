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
