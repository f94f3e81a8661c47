"""scripts/run_time.py sums what the cached steps of a run took."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mpqlib.study.experiments import Cache

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_time", ROOT / "scripts" / "run_time.py")
run_time = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_time)


def test_steps_are_summed_per_model_and_step(tmp_path):
    import time

    Cache(tmp_path / "m1").get("qat", {"seed": 0}, lambda: (time.sleep(0.05), {"record": {"seconds": 99.0}})[1])
    Cache(tmp_path / "m1").get("qat", {"seed": 1}, lambda: {"record": {"seconds": 1.0}})
    old = Cache(tmp_path / "m2")  # a step stored before elapsed_s existed: the record's seconds count
    old.get("search", {"seed": 0}, lambda: {"record": {"seconds": 7.5}})
    path = old.path("search", {"seed": 0})
    path.write_text(path.read_text().replace('"elapsed_s"', '"was_elapsed"'))
    rows = run_time.summarise(tmp_path)
    assert rows[("m1", "qat")]["n"] == 2 and 0.05 <= rows[("m1", "qat")]["seconds"] < 5  # wall time, not the record's 99 s
    assert rows[("m1", "qat")]["approximate"] == 0
    assert rows[("m2", "search")] == {"n": 1, "seconds": 7.5, "approximate": 1}


def test_expected_time_counts_a_qat_run_by_its_epochs_and_images(tmp_path):
    """`mpq study status` costs a missing QAT run by its work: ten epochs on all 60,000 images
    are 40 runs of the common recipe (one epoch on 15,000), not one."""
    import json

    from mpqlib.study.cache import Task
    from mpqlib.study.pipeline import expected_seconds, step_seconds, work

    common = {"qat": {"epochs": 1, "train_images": 15000}, "train": {"size": 60000}}
    long = {"qat": {"epochs": 10, "train_images": None}, "train": {"size": 60000}}
    assert work("qat", long) == 40 * work("qat", common) and work("search", long) == 1.0
    cache = Cache(tmp_path / "m")
    cache.get("qat", common, lambda: {"record": {}})
    path = cache.path("qat", common)
    stored = json.loads(path.read_text())
    path.write_text(json.dumps({**stored, "elapsed_s": 30.0}))
    recorded = step_seconds(tmp_path)
    task = Task("m", "qat", "k", ())
    assert expected_seconds([task], recorded, lambda t: work("qat", common)) == 30.0
    assert expected_seconds([task], recorded, lambda t: work("qat", long)) == 1200.0
    assert expected_seconds([Task("m", "search", "k", ())], recorded) is None  # never recorded
