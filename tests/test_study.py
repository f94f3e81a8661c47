"""The study as a pipeline: create-only cache records, one home for its facts, the smoke study
on a real local Dask cluster, and chapters that read without writing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from mpqlib.book import chapters as C
from mpqlib.study import efficiency as Eff
from mpqlib.study import experiments as E
from mpqlib._io import create_json, write_json
from mpqlib.errors import ConfigError
from mpqlib.errors import ReadOnlyError
from mpqlib.study.experiments import Cache, Overlay
from mpqlib.study.stored import write_models
from mpqlib.study import facts as F

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- nothing moves
def test_a_record_is_never_overwritten(tmp_path):
    cache = Cache(tmp_path)
    first = cache.get("qat", {"seed": 0}, lambda: {"record": {"top1": 90.17}})
    path = cache.path("qat", {"seed": 0})
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    again = cache.put(cache.record("qat", {"seed": 0}, lambda: {"record": {"top1": 89.61}}))  # a rerun elsewhere
    assert again["record"]["top1"] == first["record"]["top1"] == 90.17
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert not create_json(path, {"other": 1}) and json.loads(path.read_text())["record"]["top1"] == 90.17


def test_a_half_written_record_is_never_read(tmp_path):
    cache = Cache(tmp_path)
    path = cache.path("search", {"seed": 0})
    path.parent.mkdir(parents=True)
    (path.parent / f".{path.name}.abc.tmp").write_text('{"step": "search", "trunc')  # a writer killed mid-write
    assert cache.load("search", {"seed": 0}) is None
    assert cache.get("search", {"seed": 0}, lambda: {"v": 1})["v"] == 1 and cache.hits == 0
    assert cache.load("search", {"seed": 0})["v"] == 1 and cache.hits == 1


def test_a_record_under_another_configuration_is_an_error(tmp_path):
    cache = Cache(tmp_path)
    cache.get("search", {"seed": 0}, lambda: {"v": 1})
    path = cache.path("search", {"seed": 0})
    path.write_text(path.read_text().replace('"seed": 0', '"seed": 5'))  # edited by hand
    with pytest.raises(ConfigError, match="another configuration"):
        cache.get("search", {"seed": 0}, lambda: {"v": 2})


def test_rewriting_identical_results_touches_no_file(tmp_path):
    path = write_json(tmp_path / "claims.json", {"a": [1, 2]})
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp - 10**9, stamp - 10**9))
    write_json(path, {"a": [1, 2]})
    assert path.stat().st_mtime_ns == stamp - 10**9
    write_json(path, {"a": [1, 3]})
    assert json.loads(path.read_text()) == {"a": [1, 3]}


def test_a_worker_keeps_what_it_computes_in_memory(tmp_path):
    Cache(tmp_path).get("qat", {"seed": 0}, lambda: {"v": 0})
    overlay = Overlay(tmp_path)
    assert overlay.get("qat", {"seed": 0}, lambda: {"v": 9})["v"] == 0  # read from disk
    new = overlay.get("qat", {"seed": 1}, lambda: {"v": 1})
    assert not Cache(tmp_path).path("qat", {"seed": 1}).exists()  # nothing written by the worker
    assert list(overlay.new.values()) == [new] and overlay.get("qat", {"seed": 1}, lambda: {"v": 2})["v"] == 1


def test_a_read_only_cache_raises_on_a_miss_and_computes_nothing(tmp_path, monkeypatch):
    ran = []
    cache = Cache(tmp_path, read_only=True, hint="mpq study run --profile smoke")
    with pytest.raises(ReadOnlyError, match="mpq study run --profile smoke"):
        cache.get("qat", {"seed": 0}, lambda: ran.append(1) or {"v": 1})
    assert not ran and not list(tmp_path.rglob("*.json"))
    Cache(tmp_path).get("qat", {"seed": 0}, lambda: {"v": 1})  # a writer stores it...
    assert cache.get("qat", {"seed": 0}, lambda: ran.append(1) or {"v": 2})["v"] == 1 and not ran  # ...a reader reads it
    monkeypatch.setenv("MPQ_READ_ONLY", "1")  # what scripts/run_notebooks.sh sets for the chapters
    with pytest.raises(ReadOnlyError, match="MPQ_READ_ONLY"):
        Cache(tmp_path).get("qat", {"seed": 1}, lambda: ran.append(1) or {"v": 3})
    assert not ran
    assert Overlay(tmp_path).get("qat", {"seed": 1}, lambda: {"v": 3})["v"] == 3  # a worker computes what it is sent
    monkeypatch.setenv("MPQ_READ_ONLY", "0")
    assert not Cache(tmp_path).read_only


def test_a_read_only_experiment_raises_on_a_missing_step(tmp_path, monkeypatch):
    monkeypatch.setenv("MPQ_READ_ONLY", "1")
    ex = E.Experiments("smoke", overrides={"cache_dir": str(tmp_path / "cache")})
    with pytest.raises(ReadOnlyError, match="mpq study run --profile smoke"):
        ex.search("seam-mnist")
    assert not (tmp_path / "cache").exists()


def test_paths_resolve_against_the_repository_whatever_the_working_directory(tmp_path, monkeypatch):
    from mpqlib.study.profiles import resolve

    monkeypatch.chdir(tmp_path)  # papermill --cwd book/chapters, say
    p = resolve("full")
    assert p.path("runs.json") == ROOT / "results" / "runs.json" and p.cache_path() == ROOT / "cache" / "full"
    assert p.checkpoint("resnet20") == ROOT / "checkpoints" / "resnet20-fmnist.pt"


def test_a_chapter_without_results_names_the_study_command(tmp_path):
    r = C.Results("smoke", {"results_dir": str(tmp_path)})
    with pytest.raises(ReadOnlyError, match="mpq study run --profile smoke --parts protocol"):
        r.runs()
    with pytest.raises(ReadOnlyError, match="mpq study run --profile smoke --parts protocol"):
        r.ex()
    with pytest.raises(ReadOnlyError, match="--parts efficiency"):
        C.EfficiencyChapter(results=r).efficiency()


# --------------------------------------------------------------------------- one home for the facts
def test_each_fact_has_one_home():
    assert E.CLAIMS is F.CLAIMS and C.CLAIM_TEXT is F.CLAIM_TEXT and C.PAPER_STANCE is F.PAPER_STANCE
    assert C.PAPER is F.PAPER and Eff.PAPER is F.PAPER_HOURS and C.LABELS is F.LABELS and E.POLICIES is F.POLICIES
    assert set(F.CLAIM_TEXT) == set(F.CLAIMS) == set(F.CLAIM_LABELS) == set(F.CLAIM_WHERE)
    for c in F.CLAIM_FACTS:
        assert c.a in F.LABELS and (c.b in F.LABELS), c.id
        assert c.where == F.NO_CLAIM or c.where.startswith(("Table", "Figure", "the ")), c.id
        assert (c.supports is None) == (c.where == F.NO_CLAIM), c.id  # a stance only where the paper claims
    t2 = F.PAPER["table2"]
    assert F.PAPER_HOURS["hours"]["fracbits"] == t2["FracBits"][2]
    assert F.paper_ratio_text() == "297x" and round(t2["FracBits"][2] / t2["SEAM, proxy S"][2]) in (296, 297)
    assert "297x" not in (ROOT / "scripts" / "readme_results.py").read_text()


def test_the_readme_script_reads_the_results_as_the_chapters_do(tmp_path):
    """The README's block comes from the chapters' own reader (mpqlib.book.results.Results), so a
    claims.json that breaks its schema stops it as it stops a chapter."""
    import importlib.util
    import json

    from mpqlib.book.results import Results
    from mpqlib.errors import ConfigError

    spec = importlib.util.spec_from_file_location("readme_results", ROOT / "scripts" / "readme_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert isinstance(mod._results(ROOT / "results"), Results)
    doc = json.loads((ROOT / "results" / "claims.json").read_text())
    del doc["claims"][0]["ci_low"]
    (tmp_path / "claims.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="lacks 'ci_low'"):
        mod.block(tmp_path)


# --------------------------------------------------------------------------- the pipeline
# Parts of the full study whose steps are still being computed on main (each finished step is
# committed as it arrives): protocol version 4's tests (about 15 h of steps, sized by
# results/power.json). The tests below check everything else is complete, and
# that these really are not: empty the tuple when they are.
PENDING = ("v4",)


def _done_parts() -> list[str]:
    from mpqlib.study import PARTS

    return [p for p in PARTS if p not in PENDING]


def test_status_of_the_committed_full_run_has_nothing_to_compute():
    """Every step of the committed full run is found under its key (the pending parts aside)."""
    from mpqlib.study import status

    plan, text = status("full", parts=_done_parts())
    assert plan.done and plan.cached > 800, text
    if PENDING:
        pending, text = status("full", parts=PENDING)
        assert not pending.done, f"{PENDING} complete: empty PENDING\n{text}"


def test_the_committed_full_results_regenerate_byte_identical_from_the_cache(tmp_path, monkeypatch):
    """The chapters' pipeline on the committed full run: zero steps computed, every results file
    it writes byte-identical to the committed one, nothing under cache/full touched."""
    from mpqlib.study import ensure

    results = tmp_path / "results"
    shutil.copytree(ROOT / "results", results)
    before = _files(ROOT / "cache" / "full"), _files(results)

    def computed(*args, **kwargs):
        raise AssertionError("a step was computed although the committed run has it")

    monkeypatch.setattr(Cache, "record", computed)
    # written afresh (runs.json: merged)
    for name in ("claims.json", "correlation.json", "efficiency.json", "objections.json"):
        (results / name).unlink()
    plan = ensure("full", {"results_dir": str(results), "cache_dir": str(ROOT / "cache" / "full")}, _done_parts())
    assert plan.done
    assert _files(ROOT / "cache" / "full") == before[0]
    for name in ("runs.json", "correlation.json", "efficiency.json", "objections.json", "policies.json", "pilot.json"):
        assert (results / name).read_bytes() == (ROOT / "results" / name).read_bytes(), name
    # claims.json: the same claims from the same runs; its CIs follow mpqlib.study.report's bootstrap as
    # it is now (the committed file is regenerated when that changes).
    new, old = (json.loads((d / "claims.json").read_text()) for d in (results, ROOT / "results"))
    same = ("id", "model", "budget", "estimate_pp", "n")
    assert [{k: c[k] for k in same} for c in new["claims"]] == [{k: c[k] for k in same} for c in old["claims"]]
    assert {k: v for k, v in new.items() if k != "claims"} == {k: v for k, v in old.items() if k != "claims"}


def _files(root: Path) -> dict[str, tuple[str, int]]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def _untimed(doc):
    """A result without its wall-clock fields (``seconds``, ``ilp_seconds``, ...) and the code
    version that found it: what was found, not how long finding it took (the ILP's solve time
    differs by 0.1 ms between two runs) or which commit's checkout ran it."""
    if isinstance(doc, dict):
        return {k: _untimed(v) for k, v in doc.items() if not k.endswith("seconds") and k != "code_version"}
    if isinstance(doc, list):
        return [_untimed(v) for v in doc]
    return doc


def _results(results_dir: Path) -> dict:
    """What the study found, without what it took: policies, accuracies and claims."""
    read = lambda name: json.loads((Path(results_dir) / name).read_text())  # noqa: E731
    return {"runs": _untimed(read("runs.json")), "policies": _untimed(read("policies.json")),
            "claims": read("claims.json")}


@pytest.mark.slow
def test_steps_spread_over_two_workers_give_what_one_worker_gave(smoke_study, tmp_path):
    """The smallest grid that still schedules steps across workers: two searches of the shared
    smoke study (one worker) are removed with the QAT runs of their policies, and a local Dask
    cluster of 2 workers recomputes them (the searches side by side, then the QAT runs that wait on
    them). Every per-seed top-1, every policy and every claim is what the one worker found."""
    from mpqlib.study import run, status

    src_cache, src_results = Path(smoke_study["cache_dir"]), Path(smoke_study["results_dir"])
    over = {"cache_dir": str(tmp_path / "cache"), "results_dir": str(tmp_path / "results")}
    shutil.copytree(src_cache, over["cache_dir"])
    shutil.copytree(src_results, over["results_dir"])
    runs = json.loads((src_results / "runs.json").read_text())["runs"]
    models = json.loads((src_results / "models.json").read_text())
    picked = [r for r in runs if r["policy"] in ("seam-mnist", "target-fmnist") and r["search_seed"] == 0
              and r["model"] in models and r["budget"] == models[r["model"]]["budget"]["name"]]
    removed = {Path(over["cache_dir"]) / r["model"] / kind / f"{r[kind]}.json" for r in picked for kind in ("search", "qat")}
    assert len({p for p in removed if p.parent.name == "search"}) == 2 and len(removed) >= 4
    for path in removed:
        path.unlink()
    # A dry resolution of the graph: the two searches ready, the QAT runs of their policies blocked
    # on them (a removed QAT run whose policy another cached search also found is ready itself).
    plan, _ = status("smoke", over)
    searches = {t.key for t in plan.ready if t.step == "search"}
    assert len(searches) == 2 and {t.step for t in plan.ready} <= {"search", "qat"}
    assert plan.blocked and all(t.step == "qat" and set(t.needs) <= searches for t in plan.blocked)
    run("smoke", over, workers=2, log=None)  # every part: the results files are written as the shared run wrote them
    assert all(path.exists() for path in removed)  # recomputed, on the workers
    assert _results(Path(over["results_dir"])) == _results(src_results)


@pytest.mark.slow
def test_chapters_read_the_smoke_study_and_compute_nothing(smoke_study, monkeypatch):
    """Every chapter's reads on the shared smoke study: nothing is computed, no file changes."""
    import matplotlib

    matplotlib.use("Agg")
    before = _files(Path(smoke_study["cache_dir"])), _files(Path(smoke_study["results_dir"]))

    def computed(*args, **kwargs):
        raise AssertionError("a chapter computed a step although the study stored every result")

    monkeypatch.setattr(Cache, "record", computed)
    monkeypatch.setattr(E.Experiments, "__init__", computed)  # a chapter never builds an experiment
    r = C.Results("smoke", smoke_study)
    model = r.models[0]
    assert len(r.runs()) > 15 and r.claims()["claims"]
    search = C.SearchChapter(results=r)
    assert len(search.policy_table(model).data) == len(search.MAIN) and len(C.QATChapter(results=r).main_table(model).data) > 5
    assert C.ObservationChapter(results=r).observation().models[0] == "FP"
    assert C.DiscriminabilityChapter(results=r).correlations()[0]["n_policies"] > 3
    assert C.EfficiencyChapter(results=r).efficiency()["methods"]
    assert (_files(Path(smoke_study["cache_dir"])), _files(Path(smoke_study["results_dir"]))) == before


@pytest.mark.slow
def test_pilot_on_a_local_cluster_of_two_workers_equals_one(tmp_path):
    """The pilot's QAT steps (no search) spread over 2 processes or run in 1: the same per-seed
    accuracies, the same choice (small QAT runs: what is compared is the scheduling)."""
    from mpqlib.study import run

    small = {"budget": "pilot", "pilot_budgets": ["w3a3", "w2a4"], "n_random": 2, "qat_seeds": [0, 1],
             "qat": {"train_images": 100}, "test_images": 200}
    out = {}
    for workers in (1, 2):
        d = tmp_path / str(workers)
        run("smoke", {**small, "cache_dir": str(d / "cache"), "results_dir": str(d / "results")}, parts=("pilot",),
            workers=workers, log=None)
        out[workers] = {n: json.loads((d / "results" / n).read_text()) for n in ("runs.json", "pilot.json")}
    assert out[1] == out[2] and len(out[1]["runs.json"]["runs"]) == 2 * 2 * 3


def test_chapter_one_is_one_cached_step_that_needs_no_weights_once_stored(tmp_path, monkeypatch):
    """Chapter 1's metrics, top-1 and t-SNE come from one cached record: with the QAT weights
    gone (they are not committed), reading it again trains nothing."""
    tiny = {"cache_dir": str(tmp_path / "cache"), "results_dir": str(tmp_path / "results"), "n_points": 40,
            "proxy_per_class": 10, "seam": {"epochs": 1, "max_steps": 2}, "qat": {"train_images": 100}}
    ex = E.Experiments("smoke", overrides=tiny)
    doc = ex.observation()
    write_models(ex.p, {ex.model_name: ex}, ("observation",))  # what the study's finish writes
    assert doc["models"] == ["FP", "W8A8", "W4A4", "W3A3", "W2A2", "mixed, SEAM", "mixed, poor"]
    assert len(doc["rows"]) == 2 * len(doc["models"]) and all(len(xy) == 40 for xy in doc["embedding"].values())
    weights = list((tmp_path / "cache").rglob("*.pt"))
    assert len(weights) == 6
    for w in weights:
        w.unlink()

    def computed(*args, **kwargs):
        raise AssertionError("chapter 1 computed a step although its record is cached")

    monkeypatch.setattr(Cache, "record", computed)
    monkeypatch.setattr(E.Experiments, "_train_qat", computed)
    obs = C.ObservationChapter("smoke", tiny).observation()
    assert obs.models == doc["models"] and obs.rows == doc["rows"]
    xy, labels = obs.embedding["mixed, SEAM", "target"]
    assert xy.shape == (40, 2) and labels.shape == (40,)
