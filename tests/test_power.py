"""Protocol version 4's statistics: variance components, the outlier rule, the power simulation,
the committed power analysis and the claims' stability fields."""

import json
from pathlib import Path

import numpy as np
import pytest

from mpqlib.study import outliers as O
from mpqlib.study import power as P

ROOT = Path(__file__).resolve().parents[1]


def _side(rng, n, q, search_sd, resid_sd, mean=90.0):
    return mean + search_sd * rng.standard_normal((n, 1)) + resid_sd * rng.standard_normal((n, q))


def test_components_recover_the_variance_they_were_drawn_with():
    rng = np.random.default_rng(0)
    m = _side(rng, 400, 6, 0.4, 0.2) + 0.3 * rng.standard_normal((1, 6))  # a QAT seed's common effect too
    c = P.components(m)
    assert c.search_sd == pytest.approx(0.4, rel=0.1) and c.residual_sd == pytest.approx(0.2, rel=0.05)
    assert (c.n_search, c.n_qat) == (400, 6)
    with pytest.raises(ValueError, match="complete"):
        P.components(np.array([[1.0, np.nan], [2.0, 3.0]]))


def test_the_outlier_rule_finds_a_collapse_and_nothing_else():
    rng = np.random.default_rng(1)
    m = _side(rng, 6, 4, 0.3, 0.25)
    assert not O.collapsed(m).any()  # ordinary spread: nothing
    m[2, 1] -= 5.0
    mask = O.collapsed(m)
    assert mask.sum() == 1 and mask[2, 1]
    clean = O.without_collapsed(m)
    assert clean[2, 1] == pytest.approx(np.median(np.delete(m[2], 1)))
    assert (clean[~mask] == m[~mask]).all()


def test_the_committed_collapse_is_found_by_the_rule():
    """The run that moved five verdicts of version 3: MobileNetV1 W2A4, SEAM on MNIST, search seed 2, QAT seed 1."""
    rows = json.loads((ROOT / "results" / "runs.json").read_text())["runs"]
    found = O.scan(rows)
    hit = [r for r in found["runs"] if r["policy"] == "seam-mnist" and r["budget"] == "w2a4"]
    assert [(r["search_seed"], r["qat_seed"], r["top1"]) for r in hit] == [(2, 1, 83.15)]
    assert found["rate"]["seam-mnist"]["collapsed"] == 1 and found["rate"]["seam-mnist"]["runs"] >= 24


def test_simulated_power_behaves():
    a = b = P.Components(0.2, 0.2, 0.0, 6, 4)
    big = P.simulate(a, b, 24, 8, 0.0, n_sims=100, n_boot=300)
    small = P.simulate(a, b, 3, 2, 0.0, n_sims=100, n_boot=300)
    assert big["equivalent"] > 0.8 > small["equivalent"]
    far = P.simulate(a, b, 6, 4, -1.5, n_sims=100, n_boot=300)
    assert far["different"] > 0.95 and far["equivalent"] == 0


def test_design_cost_reuses_what_exists():
    s = {"search_a": 10.0, "search_b": 100.0, "qat": 1.0}
    assert P.design_cost(6, 4, (6, 4), (6, 4), s) == 0
    # 3 new searches a side and their 4 QAT runs each, plus 4 new QAT seeds on all 9 units, both sides
    assert P.design_cost(9, 8, (6, 4), (6, 4), s) == 3 * 110 + 2 * (72 - 24)
    assert P.design_cost(2, 2, (0, 0), (6, 4), s) == 2 * 10 + 4 + 0


def test_the_committed_power_analysis_is_consistent():
    """power.json's choices follow from its own table under the cap, in its order; one design re-simulated agrees."""
    doc = json.loads((ROOT / "results" / "power.json").read_text())
    left = (doc["cap_hours"] - sum(doc["reserved_hours"].values())) * 3600
    tests = {t.id: t for t in P.V4_TESTS}
    assert list(doc["tests"]) == list(tests)
    for tid, t in doc["tests"].items():
        grid = {(n, q) for n in tests[tid].search_seeds for q in tests[tid].qat_seeds}
        chosen = P.choose([d for d in t["designs"] if (d["search_seeds"], d["qat_seeds"]) in grid], left)
        assert chosen == t["chosen"], tid
        left -= chosen["added_seconds"]
    t = doc["tests"]["headline-1epoch"]
    comp = {k: P.Components(**v) for k, v in t["components"].items()}
    c = t["chosen"]
    again = P.simulate(comp["a"], comp["b"], c["search_seeds"], c["qat_seeds"], 0.0, n_sims=200, seed=7)
    se = np.sqrt(c["power_equivalent"] * (1 - c["power_equivalent"]) / 200)
    assert abs(again["equivalent"] - c["power_equivalent"]) < 4 * se + 0.02


def test_every_claim_carries_its_stability():
    doc = json.loads((ROOT / "results" / "claims.json").read_text())
    for c in doc["claims"]:
        assert c["t_ci_low"] <= c["estimate_pp"] <= c["t_ci_high"], c["id"]
        assert 0 <= c["mc_flip_fraction"] <= 1 and c["n_boot"] >= 1000
        lo, hi = c["ci_without_outliers"]
        assert lo <= c["estimate_without_outliers"] <= hi
        if not (c["collapsed_runs"]["a"] or c["collapsed_runs"]["b"]):
            assert c["estimate_without_outliers"] == c["estimate_pp"] and [lo, hi] == [c["ci_low"], c["ci_high"]]
    assert doc["outliers"]["rule"]["k"] == O.COLLAPSE_K
