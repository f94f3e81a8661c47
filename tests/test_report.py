"""mpqlib.study.report on synthetic per-seed tables whose true answers are known."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from mpqlib.study import claims_doc as CD, ranks as RK, report as R
from mpqlib.errors import ConfigError


def synthetic(rng, *, true=0.4, n_search=8, n_qat=6, search_sd=0.15, seed_sd=0.3, noise=0.1, shared=True):
    """Policy ``a`` (searched: ``n_search`` search seeds) against a fixed policy ``b`` (one
    "search seed"), both under the same QAT seeds; ``shared``: a QAT seed's effect hits both."""
    u = rng.normal(0, seed_sd, n_qat)
    v = u if shared else rng.normal(0, seed_sd, n_qat)
    rows = []
    for s in range(n_search):
        sa = rng.normal(0, search_sd)
        rows += [dict(policy="a", search_seed=s, qat_seed=q, top1=92 + true + sa + u[q] + rng.normal(0, noise))
                 for q in range(n_qat)]
    rows += [dict(policy="b", search_seed=0, qat_seed=q, top1=92 + v[q] + rng.normal(0, noise)) for q in range(n_qat)]
    return rows


def test_paired_difference_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits, reps = 0, 200
    for rep in range(reps):
        d = R.paired_difference(synthetic(rng), "a", "b", n_boot=500, seed=rep)
        hits += d.ci_low <= 0.4 <= d.ci_high
        assert d.n == 8 * 6 and d.level == 0.95
    assert 0.90 <= hits / reps <= 0.99, hits / reps


def test_paired_difference_estimate_and_exact_cases():
    rows = synthetic(np.random.default_rng(0), true=0.4)
    d = R.paired_difference(rows, "a", "b", n_boot=2000)
    a = np.mean([r["top1"] for r in rows if r["policy"] == "a"])
    b = np.mean([r["top1"] for r in rows if r["policy"] == "b"])
    assert d.estimate == pytest.approx(a - b)  # balanced table: the plain difference of means
    assert d.ci_low < d.estimate < d.ci_high
    # same seed -> same interval; a DataFrame gives what the list of dicts gives
    assert R.paired_difference(pd.DataFrame(rows), "a", "b", n_boot=2000) == d
    # the differences can be passed directly (outer units x QAT seeds)
    m = R.paired_matrix(rows, "a", "b")
    assert m.shape == (8, 6)
    assert R.paired_difference(m, n_boot=2000).estimate == pytest.approx(d.estimate)
    # a constant difference has a zero-width interval at that value
    flat = [dict(policy=p, search_seed=0, qat_seed=q, top1=90 + q + (0.5 if p == "a" else 0)) for p in "ab" for q in range(4)]
    c = R.paired_difference(flat, "a", "b", n_boot=200)
    assert (c.estimate, c.ci_low, c.ci_high) == pytest.approx((0.5, 0.5, 0.5))


def test_pairing_narrows_the_interval_when_seed_effects_are_shared():
    rows = synthetic(np.random.default_rng(3), seed_sd=0.5, noise=0.05, search_sd=0.05)
    paired = R.paired_difference(rows, "a", "b", n_boot=2000)
    unpaired = R.paired_difference(rows, "a", "b", n_boot=2000, paired=False)
    assert paired.estimate == pytest.approx(unpaired.estimate)
    assert (paired.ci_high - paired.ci_low) < 0.5 * (unpaired.ci_high - unpaired.ci_low)
    assert paired.ci_low > 0 and unpaired.ci_low < 0  # only the paired analysis sees the difference


def test_random_group_side_and_missing_seeds():
    rng = np.random.default_rng(4)
    rows = [dict(policy="target", search_seed=0, qat_seed=q, top1=93.0 + 0.1 * q) for q in range(3)]
    for i in range(5):
        rows += [dict(policy=f"random-{i}", search_seed=0, qat_seed=q, top1=92.0 + rng.normal(0, 0.1)) for q in range(4)]
    m = R.paired_matrix(rows, "target", [f"random-{i}" for i in range(5)])
    assert m.shape == (5, 3)  # five random policies, the three QAT seeds both sides ran
    d = R.paired_difference(rows, "target", [f"random-{i}" for i in range(5)], n_boot=1000)
    assert 0.9 < d.estimate < 1.3 and d.ci_low > 0.5
    with pytest.raises(ConfigError, match="no runs of policy 'hawq'.*random-0"):
        R.paired_matrix(rows, "target", "hawq")
    with pytest.raises(ConfigError, match="lacks columns.*qat_seed"):
        R.paired_matrix([{"policy": "a", "search_seed": 0, "top1": 1.0}], "a", "a")
    with pytest.raises(ConfigError, match="share no QAT seed"):
        R.paired_matrix([dict(policy="a", search_seed=0, qat_seed=0, top1=1.0),
                         dict(policy="b", search_seed=0, qat_seed=1, top1=1.0)], "a", "b")


@pytest.mark.parametrize("true,expect", [(0.0, "equivalent (±0.3 pp)"), (1.0, "different"), (0.25, "not shown equivalent")])
def test_equivalence_accepts_and_rejects(true, expect):
    noise = 0.3 if expect == "not shown equivalent" else 0.05
    rows = synthetic(np.random.default_rng(5), true=true, noise=noise, search_sd=0.02)
    e = R.equivalence(rows, "a", "b", margin=0.3, n_boot=2000)
    assert e.verdict == expect, e
    assert e.margin == 0.3 and e.level == 0.95


def test_verdict_rules():
    assert R.verdict(0.3, (0.1, 0.5)) == "better"
    assert R.verdict(-0.3, (-0.5, -0.1)) == "worse"
    assert R.verdict(0.1, (-0.1, 0.3)) == "within noise"
    assert R.verdict(0.1, (-0.1, 0.3), "superiority") == "no power"
    assert R.verdict(0.3, (0.1, 0.5), "superiority") == "better"
    assert R.verdict(0.0, (-0.29, 0.29), "equivalence") == "equivalent (±0.3 pp)"
    assert R.verdict(0.0, (-0.31, 0.29), "equivalence") == "not shown equivalent"
    assert R.verdict(0.5, (0.35, 0.6), "equivalence") == "different"
    assert R.verdict(0.1, (0.05, 0.15), "equivalence", margin=0.1) == "different"
    assert R.verdict(0.1, (0.05, 0.15), "equivalence", margin=0.2) == "equivalent (±0.2 pp)"
    assert "+-0.3 pp" in R.rule_text("equivalence")
    with pytest.raises(ConfigError, match="unknown verdict rule 'maybe'"):
        R.verdict(0.0, (-1, 1), "maybe")
    with pytest.raises(ConfigError, match="low <= high"):
        R.verdict(0.0, (1, -1))


def test_claim_row():
    rows = synthetic(np.random.default_rng(6), true=0.6, noise=0.05)
    c = R.claim("seam-vs-uniform", "resnet20", "w3a2", rows, "a", "b", n_boot=1000)
    assert c["verdict"] == "better" and c["rule"] == "difference" and c["n"] == 48
    assert c["ci_low"] < c["estimate_pp"] < c["ci_high"]


def test_power_matches_hand_computation():
    v = {"random-0": [91.0, 91.2, 91.4], "random-1": [92.0, 91.6], "random-2": [91.5, 91.5, 91.8], "uniform": [80.0, 90.0]}
    rows = [dict(policy=p, search_seed=0, qat_seed=q, top1=x) for p, xs in v.items() for q, x in enumerate(xs)]
    p = R.power(rows)  # random policies only by default
    rnd = [np.array(v[f"random-{i}"]) for i in range(3)]
    pooled = math.sqrt(sum(((x - x.mean()) ** 2).sum() for x in rnd) / sum(len(x) - 1 for x in rnd))
    assert p.seed_sd_pp == pytest.approx(pooled)
    assert p.policy_sd_pp == pytest.approx(np.std([x.mean() for x in rnd], ddof=1))
    assert p.n_policies == 3 and p.ratio == pytest.approx(p.policy_sd_pp / p.seed_sd_pp)
    assert R.power(rows, ["uniform"]).seed_sd_pp == pytest.approx(np.std([80.0, 90.0], ddof=1))
    with pytest.raises(ConfigError, match="two or more QAT seeds"):
        R.power([dict(policy="random-0", search_seed=0, qat_seed=0, top1=1.0)])


def test_spearman_ci():
    x = np.arange(20.0)
    r = RK.spearman_ci(x, x ** 3, n_boot=500)
    assert (r.rho, r.ci_low, r.ci_high) == pytest.approx((1.0, 1.0, 1.0))
    assert RK.spearman(x, -x) == pytest.approx(-1.0)
    rng = np.random.default_rng(7)
    a = rng.normal(size=60)
    b = a + rng.normal(size=60)
    r = RK.spearman_ci(a, b, n_boot=1000)
    assert r.ci_low < r.rho < r.ci_high and 0.4 < r.rho < 0.9 and r.n == 60
    with pytest.raises(ConfigError, match="same length"):
        RK.spearman_ci(a, b[:10])


@pytest.mark.parametrize("k", [2, 3, 4])
def test_noise_ceiling_is_what_a_perfect_predictor_reaches(k):
    rng = np.random.default_rng(8)
    n, policy_sd, seed_sd = 3000, 0.2, 0.25
    truth = rng.normal(0, policy_sd, n)
    per_seed = truth[:, None] + rng.normal(0, seed_sd, (n, k))
    perfect = RK.spearman(truth, per_seed.mean(axis=1))  # known only in a simulation
    c = RK.noise_ceiling(per_seed, n_boot=200)
    assert c.ceiling == pytest.approx(perfect, abs=0.03)
    assert c.ci_low < c.ceiling < c.ci_high
    reliability = policy_sd ** 2 / (policy_sd ** 2 + seed_sd ** 2 / k)
    assert c.reliability == pytest.approx(reliability, abs=0.04)
    # no signal: the ceiling is ~0; no noise: ~1
    assert RK.noise_ceiling(rng.normal(size=(3000, 2)), n_boot=50).ceiling < 0.1
    assert RK.noise_ceiling(np.repeat(truth[:, None], 2, axis=1), n_boot=50).ceiling == pytest.approx(1.0)


def _doc():
    claim = {"id": "positive-control", "model": "resnet20", "budget": "w3a2", "estimate_pp": 0.4, "ci_low": 0.1,
             "ci_high": 0.7, "n": 16, "verdict": "better", "rule": "superiority"}
    return [claim], {"seed_sd_pp": 0.2, "policy_sd_pp": 0.5}, {"seam_proxy_acc": 0.88, "linear_probe_acc": 0.9}


def test_claims_json_writes_the_schema(tmp_path):
    claims, power, head = _doc()
    path = tmp_path / "results" / "claims.json"
    doc = CD.claims_json(claims, R.Power(np.float64(0.2), 0.5, 8), head, path)
    assert json.loads(path.read_text()) == doc
    assert set(doc) == {"claims", "power", "head"}
    assert set(doc["claims"][0]) == {"id", "model", "budget", "estimate_pp", "ci_low", "ci_high", "n", "verdict", "rule"}
    assert doc["power"] == {"seed_sd_pp": 0.2, "policy_sd_pp": 0.5}
    # one power / head block per model is accepted too
    two = [claims[0], {**claims[0], "model": "mobilenetv1"}]
    CD.claims_json(two, {"resnet20": power, "mobilenetv1": power}, {"resnet20": head, "mobilenetv1": head}, path)
    assert not list(path.parent.glob(".*.tmp"))
    with pytest.raises(ConfigError, match=r"power\['resnet20'\] is missing"):
        CD.validate_claims({"claims": claims, "power": {"resnet8": power}, "head": head})
    with pytest.raises(ConfigError, match="top-level 'head'"):
        CD.validate_claims({"claims": claims, "power": power})


@pytest.mark.parametrize("damage,match", [
    (lambda c, p, h: c[0].pop("ci_high"), "lacks 'ci_high'"),
    (lambda c, p, h: c[0].update(n=1.5), "'n' must be int"),
    (lambda c, p, h: c[0].update(estimate_pp=float("nan")), "'estimate_pp' must be float"),
    (lambda c, p, h: c[0].update(ci_low=1.0), "ci_low <= ci_high"),
    (lambda c, p, h: c[0].update(rule="vibes"), "unknown rule 'vibes'"),
    (lambda c, p, h: c.append(dict(c[0])), "appears twice"),
    (lambda c, p, h: p.pop("policy_sd_pp"), "power needs a finite number 'policy_sd_pp'"),
    (lambda c, p, h: h.pop("linear_probe_acc"), "head needs a finite number 'linear_probe_acc'"),
])
def test_claims_json_rejects_a_broken_document(tmp_path, damage, match):
    claims, power, head = _doc()
    damage(claims, power, head)
    path = tmp_path / "claims.json"
    with pytest.raises(ConfigError, match=match):
        CD.claims_json(claims, power, head, path)
    assert not path.exists()  # nothing written when the schema fails


def test_formatting():
    assert R.fmt_pp(0.4234) == "+0.42 pp" and R.fmt_pp(-1.0, 1) == "-1.0 pp" and R.fmt_pp(float("nan")) == "n/a"
    assert R.fmt_ci(-0.123, 0.35) == "[-0.12, +0.35] pp"
    assert R.fmt_diff(0.4213, -0.123, 0.96) == "+0.42 [-0.12, +0.96] pp"
    assert R.fmt_diff(0.5, math.nan, 1.0) == "+0.50 pp" and R.fmt_diff(math.nan, 0, 1) == "n/a"
    assert R.fmt_bitops(285_442_048) == "285.4 M" and R.fmt_bitops(1.5e9) == "1.5 G" and R.fmt_bitops(512) == "512"
    assert R.fmt_seconds(42) == "42 s" and R.fmt_seconds(600) == "10.0 min" and R.fmt_seconds(3 * 3600) == "3.0 h"


def test_mean_ci():
    rng = np.random.default_rng(9)
    hits = 0
    for rep in range(200):
        e = R.mean_ci(92.0 + rng.normal(0, 0.2, 8), n_boot=500, seed=rep)
        hits += e.ci_low <= 92.0 <= e.ci_high
    assert 0.88 <= hits / 200 <= 0.99, hits / 200  # eight QAT seeds, one search
    e = R.mean_ci([[1.0, 2.0], [3.0, np.nan]], n_boot=200)
    assert e.estimate == pytest.approx((1.5 + 3.0) / 2) and e.n == 3
    with pytest.raises(ConfigError, match="at least two per-seed values"):
        R.mean_ci([92.0])


def test_both_sides_of_a_claim_are_resampled():
    """A side with one unit is not drawn (identical to resampling the rows a_i - b); with search
    seeds on both sides, b's own variance widens the interval and a_units/b_units count them."""
    import numpy as np

    from mpqlib.study import report

    rng = np.random.default_rng(1)
    seeds = range(4)
    rows = [{"policy": "a", "search_seed": s, "qat_seed": q, "top1": 90 + 0.3 * s + rng.normal(0, 0.1)}
            for s in range(3) for q in seeds]
    fixed = rows + [{"policy": "b", "search_seed": 0, "qat_seed": q, "top1": 90.2 + rng.normal(0, 0.1)} for q in seeds]
    one = report.paired_difference(fixed, "a", "b", n_boot=2000)
    rows_minus_b = report.paired_difference(report.paired_matrix(fixed, "a", "b"), n_boot=2000)
    assert one.ci == pytest.approx(rows_minus_b.ci, abs=1e-9)
    spread = rows + [{"policy": "b", "search_seed": s, "qat_seed": q, "top1": 90 + 0.6 * s} for s in range(3)
                     for q in seeds]
    d = report.paired_difference(spread, "a", "b", n_boot=2000)
    assert d.ci_high - d.ci_low > one.ci_high - one.ci_low
    c = report.claim("x", "m", "w3a3", spread, "a", "b")
    assert (c["a_units"], c["b_units"]) == (3, 3)
    assert report.claim("x", "m", "w3a3", fixed, "a", "b")["b_units"] == 1


def test_numbers_are_formatted_for_people():
    assert R.fmt_pp(-0.001) == "0.00 pp" and R.fmt_pp(0.004) == "0.00 pp"          # never -0.00 or +0.00
    assert R.fmt_ci(-0.004, 0.2) == "[0.00, +0.20] pp" and R.fmt_diff(-0.0, -0.3, 0.3) == "0.00 [-0.30, +0.30] pp"
    assert R.fmt_seconds(0.012) == "12 ms" and R.fmt_seconds(0.0004) == "under 1 ms"  # never 0.0 s
    assert R.fmt_seconds(3) == "3.0 s"
