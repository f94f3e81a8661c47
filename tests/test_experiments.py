"""The cached experiment steps behind the book: an honest cache, paired per-seed runs, claims' inputs."""

import json
from pathlib import Path

import pytest
import torch

import mpqlib.study.experiments as E
from mpqlib.errors import ConfigError
from mpqlib.study.experiments import Cache, Experiments, exact_uniform
from mpqlib.study.features import recalibrate_bn

ROOT = Path(__file__).resolve().parents[1]


class Recomputed(Exception):
    """Raised by a spy in place of a step: proves the step would have been computed again."""


def _refuse(*a, **k):
    raise Recomputed()


# ------------------------------------------------------------------ the cache alone
def test_cache_key_covers_config_and_step_version(tmp_path, monkeypatch):
    cache, calls = Cache(tmp_path), []

    def compute():
        calls.append(1)
        return {"value": len(calls)}

    cfg = {"search": {"type": "SeamConfig", "margin": 0.2}, "data": {"name": "mnist-100", "sha256": "ab"}}
    first = cache.get("search", cfg, compute)
    assert cache.get("search", cfg, compute)["value"] == first["value"] == 1 and len(calls) == 1  # hit
    stored = json.loads(cache.path("search", cfg).read_text())
    assert stored["config"] == cfg and stored["version"] == E.STEP_VERSIONS["search"]  # the config is in the file
    assert stored["elapsed_s"] >= 0 and stored["finished"].endswith("+00:00")  # what the step took, and when
    cache.get("search", {**cfg, "search": {"type": "SeamConfig", "margin": 0.1}}, compute)  # another margin
    assert len(calls) == 2
    cache.get("search", {**cfg, "data": {"name": "mnist-100", "sha256": "cd"}}, compute)  # other data bytes
    assert len(calls) == 3
    monkeypatch.setitem(E.STEP_VERSIONS, "search", E.STEP_VERSIONS["search"] + 1)  # the step's code changed
    assert cache.get("search", cfg, compute)["value"] == 4
    with pytest.raises(ConfigError, match="unknown cached step"):
        cache.get("no-such-step", cfg, compute)


def test_fingerprint_sees_the_bytes():
    from mpqlib.data import Images

    x = torch.zeros(4, 1, 28, 28)
    a = Images("d", x, torch.tensor([0, 1, 0, 1]), ("a", "b"))
    b = Images("d", x.clone(), torch.tensor([0, 1, 1, 0]), ("a", "b"))
    assert E.fingerprint(a) == E.fingerprint(Images("d", x.clone(), a.y.clone(), a.classes))
    assert E.fingerprint(a)["sha256"] != E.fingerprint(b)["sha256"]


# ------------------------------------------------------------------ real steps, tiny sizes
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("exp")
    return dict(cache_dir=str(tmp / "cache"), results_dir=str(tmp / "results"), proxy_per_class=5,
                target_data="fmnist:5", limpq_per_class=5, qat={"train_images": 100}, test_images=500,
                n_random=2, search_seeds=[0], qat_seeds=[0, 1])


@pytest.fixture(scope="module")
def ex(tiny):
    return Experiments("smoke", **tiny)


def test_identical_config_hits_changed_hyperparameter_recomputes(ex, tiny, monkeypatch):
    res = ex.search("seam-mnist")
    assert res.record["bitops"] <= ex.budget
    rec = ex.qat(res.policy, seed=0)
    again = Experiments("smoke", **tiny)  # a new process would start like this
    monkeypatch.setattr(E, "_run_search", _refuse)
    monkeypatch.setattr(E, "qat", _refuse)
    assert again.search("seam-mnist").policy == res.policy
    assert again.qat(res.policy, seed=0)["top1"] == rec["top1"]
    argmax = again.search("seam-mnist-argmax")  # read out of the same search: no second run
    assert argmax.extras == res.extras
    with pytest.raises(Recomputed):
        again.search("seam-mnist", margin=0.05)  # a SEAM hyperparameter (the default is 0.1)
    with pytest.raises(Recomputed):
        again.search("seam-mnist", budget="w3a3")  # another budget
    with pytest.raises(Recomputed):
        Experiments("smoke", **{**tiny, "qat": {"train_images": 100, "lr": 0.02}}).qat(res.policy, seed=0)  # QAT lr
    with pytest.raises(Recomputed):
        again.qat(res.policy, seed=2)
    monkeypatch.setitem(E.STEP_VERSIONS, "qat", E.STEP_VERSIONS["qat"] + 1)
    with pytest.raises(Recomputed):
        again.qat(res.policy, seed=0)


def test_per_seed_runs_are_stored_and_paired(ex):
    rows = ex.runs("seam-mnist") + ex.runs("uniform") + ex.random_runs()
    E.save_runs(ex.p, rows, ex.policies)
    stored = E.load_runs(ex.p)
    assert len(stored) == len(rows) == 2 + 2 + 2 * 2
    assert {(r["policy"], r["qat_seed"]) for r in stored} >= {("seam-mnist", 0), ("seam-mnist", 1), ("uniform", 1)}
    assert all(r["bitops"] <= r["budget_bitops"] for r in stored)
    policies = json.loads(ex.p.path("policies.json").read_text())
    seam = next(r for r in stored if r["policy"] == "seam-mnist")
    assert policies[seam["search"]]["bits"] == ex.search("seam-mnist").policy.to_dict()["bits"]
    from mpqlib.study import report

    table = ex.table(stored)
    d = report.paired_matrix(table, "seam-mnist", "uniform")
    by = {(r["policy"], r["qat_seed"]): r["top1"] for r in stored if r["search_seed"] == 0}
    assert d.shape == (1, 2) and d[0, 1] == pytest.approx(by["seam-mnist", 1] - by["uniform", 1])
    assert report.paired_matrix(table, "uniform", ex.side("random")).shape == (2, 2)  # one row per random policy
    claims = {c["id"]: c for c in ex.claims(stored)}
    assert "seam-vs-uniform" in claims and "positive-control" not in claims  # no target search was run
    c = claims["seam-vs-uniform"]
    assert c["ci_low"] <= c["estimate_pp"] <= c["ci_high"] and c["n"] == 2 and c["budget"] == ex.budget_name
    assert ex.power(stored).n_policies == 2


def test_extra_search_seeds_only_where_the_proxy_vs_target_ci_is_wide(tiny):
    """The protocol's extension reads the CI of the first search seeds' runs (synthetic here)."""
    def rows(spread):
        out = []
        for q in range(4):
            out.append({"model": "resnet8", "budget": "w3a2", "policy": "target-fmnist", "search_seed": 0,
                        "qat_seed": q, "top1": 90.0 + 0.1 * q})
            for s in range(3):
                out.append({"model": "resnet8", "budget": "w3a2", "policy": "seam-mnist", "search_seed": s,
                            "qat_seed": q, "top1": 90.0 + 0.1 * q + spread * (s - 1)})
        return out

    ex = Experiments("smoke", **{**tiny, "search_seeds": [0, 1, 2], "extra_search_seeds": [3, 4]})
    assert ex.extra_seeds(rows(spread=1.0)) == (3, 4)       # search seeds 1 pp apart: CI far wider than +-0.3
    assert ex.extra_seeds(rows(spread=0.01)) == ()          # tight: no extension
    # rows of the extension itself do not move the decision
    wide_plus = rows(spread=1.0) + [{**r, "search_seed": 3, "top1": 90.0} for r in rows(0.0) if r["policy"] == "seam-mnist"]
    assert ex.extra_seeds(wide_plus) == (3, 4)
    assert Experiments("smoke", **tiny).extra_seeds(rows(spread=1.0)) == ()  # smoke has no extension


def test_uniform_meets_the_budget_exactly_and_poor_policies_differ(ex):
    assert exact_uniform("w3a2") == (3, 2) and exact_uniform("w2.5a2.5") is None
    assert ex.cost.bitops(ex.uniform("w3a2").policy) == ex.bitops_of("w3a2")
    good = ex.search("seam-mnist").policy
    poor = ex.poor_policy("seam-mnist")
    assert ex.cost.bitops(poor) <= ex.budget and poor != good
    assert ex.interpolated_policy("seam-mnist", 1.0) == ex.interpolated_policy("seam-mnist", 1.0)


def test_unknown_policy_name(ex):
    with pytest.raises(ConfigError, match="unknown searched policy"):
        ex.search("fracbits-fmnist")


# ------------------------------------------------------------------ BatchNorm recalibration
def test_recalibrate_bn_matches_the_data_statistics():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    x = 3 + 2 * torch.randn(256, 1, 8, 8)
    recalibrate_bn(net, x)
    with torch.no_grad():
        h = net[0](x)
    assert torch.allclose(net[1].running_mean, h.mean((0, 2, 3)), atol=1e-4)
    assert torch.allclose(net[1].running_var, h.var((0, 2, 3)), rtol=1e-2)
    assert not net.training and net[1].momentum == 0.1
