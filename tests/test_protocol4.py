"""Protocol version 4 in the study: its designs follow the power analysis, its steps reuse what
exists, its claims carry their design, and its rows keep version 3's claims as they were."""

import json
from pathlib import Path

import pytest

from mpqlib.study import power as P
from mpqlib.study.profiles import resolve

ROOT = Path(__file__).resolve().parents[1]


def test_the_full_profile_runs_the_designs_the_power_analysis_chose():
    doc = json.loads((ROOT / "results" / "power.json").read_text())
    v4 = resolve("full").v4
    chosen = {tid: (t["chosen"]["search_seeds"], t["chosen"]["qat_seeds"]) for tid, t in doc["tests"].items()}
    assert chosen["headline-1epoch"] == v4.headline_1epoch
    assert chosen["headline-plateau"] == v4.headline_plateau
    assert chosen["other-classes"] == v4.other_classes
    # deficit-data and deficit-head share their rows: the larger of their two designs
    assert v4.deficit == max(chosen["deficit-data"], chosen["deficit-head"])
    assert resolve("full").protocol_version == 4


def test_a_v4_claim_carries_its_design_and_power():
    from mpqlib.study.runs import with_design

    p = resolve("full")
    doc = json.loads((ROOT / "results" / "power.json").read_text())
    c = with_design({"id": "headline-1epoch"}, p, doc)
    assert c["design"] == {"search_seeds": 18, "qat_seeds": 8}
    assert c["power_equivalent"] == doc["tests"]["headline-1epoch"]["chosen"]["power_equivalent"]
    assert with_design({"id": "proxy-vs-target"}, p, doc) == {"id": "proxy-vs-target"}  # version 3: as it was


def test_v4_steps_are_planned_and_reuse_the_committed_records():
    """The part's missing steps are new seeds only: every committed search and QAT run is found."""
    from mpqlib.study import status

    plan, text = status("full", parts=("v4",))
    assert not plan.done and plan.cached > 100, text
    kinds = {t.step for t in plan.missing.values()}
    assert kinds <= {"search", "qat", "train"}, kinds


@pytest.mark.slow
def test_the_smoke_study_runs_version_4(smoke_study):
    """On the smoke study (tiny designs): the headline, 2x2 and budget-pilot rows exist at their
    designs, the claims carry their design, and the version-3 claims keep their own rows."""
    p = resolve("smoke", smoke_study)
    runs = json.loads(p.path("runs.json").read_text())["runs"]
    claims = {c["id"]: c for c in json.loads(p.path("claims.json").read_text())["claims"] if not c.get("experiment")}
    n, q = p.v4.headline_1epoch
    h1 = [r for r in runs if r["policy"] == "seam-mnist-h1"]
    assert {(r["search_seed"], r["qat_seed"]) for r in h1} == {(s, k) for s in range(n) for k in range(q)}
    for cid in ("headline-1epoch", "deficit-data", "deficit-head", "deficit-classes"):
        assert claims[cid]["design"]["search_seeds"] >= 2, cid
    v3 = [r for r in runs if r["policy"] == "seam-mnist" and r["budget"] == claims["proxy-vs-target"]["budget"]]
    assert {r["search_seed"] for r in v3} == set(p.search_seeds)  # version 3's claim keeps its design
