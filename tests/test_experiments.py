"""The cached experiment steps behind the book: a rerun loads, never recomputes."""

from pathlib import Path

import pytest

import mpqlib.experiments as E
from mpqlib.experiments import Experiments, Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def ex(tmp_path):
    s = Settings.from_params(checkpoint=str(ROOT / "checkpoints" / "resnet8-fmnist.pt"), cache_dir=str(tmp_path),
                             search_epochs=1, proxy_per_class=10, limpq_per_class=10, hawq_images=32,
                             target_data="fmnist:10", qat_train_images=200, seeds="[0, 1]", progress=False)
    return Experiments(s)


def test_settings_from_notebook_parameters():
    s = Settings.from_params(checkpoint="c.pt", seeds="[3, 4]", qat_epochs=2, qat_train_images=0, target_epochs=0)
    assert s.seeds == (3, 4) and s.qat["epochs"] == 2 and s.qat["train_images"] is None and s.target_epochs is None
    with pytest.raises(TypeError, match="unknown parameters"):
        Settings.from_params(checkpoint="c.pt", serach_epochs=3)


def test_searches_and_qat_are_cached_and_resumed(ex, monkeypatch):
    first = ex.search("seam-mnist")
    assert first.record["bitops"] <= ex.budget
    argmax = ex.search("seam-mnist-argmax")  # read out of the same run: no second search
    assert argmax.extras == first.extras and argmax.record["method"] == "seam-argmax"
    rec = ex.qat(first.policy, seed=0)

    def boom(*a, **k):
        raise AssertionError("recomputed a cached step")

    monkeypatch.setattr(E, "search", boom)
    monkeypatch.setattr(E, "qat", boom)
    again = Experiments(ex.s)  # a new process would start like this
    assert again.search("seam-mnist").policy == first.policy
    assert again.qat(first.policy, seed=0)["top1"] == rec["top1"]


def test_reread_meets_other_budgets_and_poor_policy_differs(ex):
    from mpqlib.cost import budget

    good = ex.search("seam-mnist").policy
    low = budget(ex.cost, "w2.5a2.5")
    assert ex.cost.bitops(ex.reread("seam-mnist", low)) <= low
    poor = ex.poor_policy("seam-mnist")
    assert ex.cost.bitops(poor) <= ex.budget and poor != good


def test_unknown_policy_name(ex):
    with pytest.raises(ValueError, match="unknown policy"):
        ex.search("fracbits-fmnist")
