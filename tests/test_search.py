"""Searches on a small model and small real data (each runs in seconds)."""

import pytest
import torch

from mpqlib import data as D
from mpqlib.allocate import InfeasibleBudget
from mpqlib.cost import budget as parse_budget, cost_model
from mpqlib.models import resnet8
from mpqlib.search import METHODS, SearchResult, search
from mpqlib.search.differentiable import SearchConfig


@pytest.fixture(scope="module")
def model():
    from pathlib import Path

    from mpqlib.train import load_checkpoint

    # the committed ResNet-8 trained on Fashion-MNIST (90% top-1): small and fast
    return load_checkpoint(Path(__file__).resolve().parents[1] / "checkpoints" / "resnet8-fmnist.pt")[0].eval()


@pytest.fixture(scope="module")
def proxy():
    return D.search_data("mnist:20", seed=0)


@pytest.fixture(scope="module")
def target():
    return D.search_data("fmnist:20", seed=0)


@pytest.fixture(scope="module")
def w3a3(model):
    return parse_budget(cost_model(model), "w3a3")


FAST = dict(epochs=1, batch_size=100, progress=False)


def test_seam_ilp_meets_budget_and_is_deterministic(model, proxy, w3a3):
    a = search("seam", model, proxy, w3a3, **FAST)
    b = search("seam", model, proxy, w3a3, **FAST)
    assert a.policy == b.policy
    assert a.record["bitops"] <= w3a3
    assert a.record["bitops"] == cost_model(model).bitops(a.policy)
    assert a.record["images"] == 200 + 200  # head initialisation pass + one epoch
    assert a.record["search_data"] == "mnist-200" and a.record["method"] == "seam"
    assert a.extras["p_w"] == b.extras["p_w"]


def test_without_cost_term_search_prefers_high_bits(model, proxy):
    # uniform mixing weights expect 4 bits; with nothing pushing down, the learned weights move up
    res = search("seam", model, proxy, None, gamma=0.0, epochs=3, batch_size=50, lr_arch=0.1, progress=False)
    w, a = res.policy.mean_bits()
    assert (w + a) / 2 > 4, res.policy.bits
    pw = torch.tensor(res.extras["p_w"])
    assert (pw @ torch.arange(2.0, 7.0)).mean() > 4


def test_cost_term_pulls_expected_bitops_to_the_budget(model, proxy):
    tight = parse_budget(cost_model(model), "w2.5a2.5")
    free = search("seam", model, proxy, None, gamma=0.0, epochs=3, batch_size=50, lr_arch=0.1, readout="argmax", progress=False)
    pushed = search("seam", model, proxy, tight, gamma=5.0, epochs=3, batch_size=50, lr_arch=0.1, readout="argmax",
                    progress=False)
    assert pushed.record["bitops"] < free.record["bitops"]
    assert sum(pushed.policy.mean_bits()) < sum(free.policy.mean_bits())


def test_target_and_proxy_search_share_one_code_path(model, proxy, target, w3a3, monkeypatch):
    import mpqlib.search.differentiable as diff

    calls = []
    real = diff.differentiable_search
    monkeypatch.setattr(diff, "differentiable_search", lambda *a, **k: calls.append(a[3].head) or real(*a, **k))
    t = search("target", model, target, w3a3, **FAST)
    p = search("ce", model, proxy, w3a3, **FAST)
    assert calls == ["model", "linear"]
    assert t.record["bitops"] <= w3a3 and p.record["bitops"] <= w3a3
    with pytest.raises(ValueError, match="own classifier"):
        search("target", model, D.search_data("optdigits:5"), w3a3, **FAST) if False else \
            search("target", model, D.Images("x", proxy.x, proxy.y % 3, ("a", "b", "c")), w3a3, **FAST)


def test_argmax_readout_may_miss_the_budget_but_reports_it(model, proxy, w3a3):
    res = search("seam", model, proxy, w3a3, readout="argmax", **FAST)
    assert res.record["method"] == "seam-argmax"
    assert res.record["bitops"] == cost_model(model).bitops(res.policy)


@pytest.mark.parametrize("method", ["limpq", "hawq", "uniform", "random"])
def test_baselines_meet_the_budget(method, model, target, w3a3, tmp_path):
    kw = {"limpq": dict(epochs=1, batch_size=100, progress=False), "hawq": dict(images=64, iters=2)}.get(method, {})
    res = search(method, model, target, w3a3, **kw)
    assert res.record["bitops"] <= w3a3
    res.save(tmp_path / "r.json")
    back = SearchResult.load(tmp_path / "r.json")
    assert back.policy == res.policy and back.record == res.record


def test_uniform_is_w3a3_at_the_w3a3_budget(model, w3a3):
    res = search("uniform", model, None, w3a3)
    assert set(res.policy.bits.values()) == {(3, 3)}
    assert res.record["bitops"] == w3a3


def test_random_policies_differ_by_seed(model, w3a3):
    a, b = (search("random", model, None, w3a3, seed=s).policy for s in (0, 1))
    assert a != b


def test_bad_requests_fail_clearly(model, proxy):
    with pytest.raises(ValueError, match="unknown method"):
        search("fracbits", model, proxy, None)
    with pytest.raises(InfeasibleBudget):
        search("seam", model, proxy, 1000, **FAST)
    with pytest.raises(TypeError, match="epochs"):
        SearchConfig(epochs=1.5)
    assert "seam" in METHODS
