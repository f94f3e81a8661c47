"""Searches on a small model and small real data (each runs in seconds)."""

from pathlib import Path

import pytest
import torch

from mpqlib import data as D
from mpqlib.allocate import InfeasibleBudget
from mpqlib.config import (RUNNERS, CEConfig, HawqConfig, LimpqConfig, RandomConfig, SeamConfig, TargetConfig,
                           UniformConfig, method_config)
from mpqlib.cost import budget as parse_budget, cost_model
from mpqlib.errors import BudgetError, ConfigError, DataError, MpqlibError
from mpqlib.search import METHODS, SearchResult, search

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "resnet8-fmnist.pt"


@pytest.fixture(scope="module")
def model():
    from mpqlib.train import load_checkpoint

    # the committed ResNet-8 trained on Fashion-MNIST (90% top-1): small and fast
    return load_checkpoint(CHECKPOINT)[0].eval()


@pytest.fixture(scope="module")
def proxy():
    return D.search_data("mnist:20", seed=0)


@pytest.fixture(scope="module")
def target():
    return D.search_data("fmnist:20", seed=0)


@pytest.fixture(scope="module")
def w3a3(model):
    return parse_budget(cost_model(model), "w3a3")


FAST = dict(epochs=1, batch_size=100)


@pytest.fixture(scope="module")
def seam(model, proxy, w3a3):
    return search(model, proxy, w3a3, SeamConfig(**FAST), progress=False)


@pytest.fixture(scope="module")
def free(model, proxy):
    """A search with nothing pushing the bits down (no budget, no cost term)."""
    return search(model, proxy, None, SeamConfig(gamma=0.0, epochs=3, batch_size=50, lr_arch=0.1, readout="argmax"),
                  progress=False)


def test_seam_ilp_meets_and_fills_the_budget_and_is_deterministic(model, proxy, w3a3, seam):
    a = seam
    b = search(model, proxy, w3a3, "seam", progress=False, **FAST)  # a method name with options: the same config
    assert a.policy == b.policy and a.extras["p_w"] == b.extras["p_w"]
    assert 0.99 * w3a3 <= a.record["bitops"] <= w3a3  # the readout spends the budget (fill=0.99)
    assert a.record["bitops"] == cost_model(model).bitops(a.policy)
    assert a.record["images"] == 200 + 200  # starting features for the head + one epoch
    assert a.record["search_data"] == "mnist-200" and a.record["method"] == "seam"
    # what ran is in the record: the whole config and its type
    assert a.record["config_type"] == "SeamConfig" and a.record["config"] == SeamConfig(**FAST).to_dict()
    assert b.record["config"] == a.record["config"]
    assert set(a.record["head"]) == {"head_train_acc", "head_val_acc", "probe_train_acc", "probe_val_acc"}
    assert a.record["head"]["head_val_acc"] is None  # no val_data given


def test_the_former_call_still_works_with_a_warning(model, w3a3):
    with pytest.warns(DeprecationWarning):
        old = search("uniform", model, None, w3a3)
    assert old.policy == search(model, None, w3a3, UniformConfig()).policy


def test_every_method_has_a_runner():
    from mpqlib.config import METHOD_CONFIGS

    assert set(METHOD_CONFIGS.values()) <= set(RUNNERS)
    assert set(METHODS) == set(METHOD_CONFIGS)


def test_max_steps_and_val_data(model, proxy, w3a3):
    test = D.load("mnist", "test")
    val = D.Images("mnist-val", test.x[:100], test.y[:100], proxy.classes)
    res = search(model, proxy, w3a3, CEConfig(epochs=3, batch_size=50, max_steps=5), progress=False, val_data=val)
    assert res.record["steps"] == 5 and res.record["epochs"] == 2
    assert res.record["images"] == 200 + 5 * 50
    assert res.record["bitops"] <= w3a3
    assert 0 <= res.record["head"]["head_val_acc"] <= 100 and res.record["head"]["probe_val_acc"] > 50


def test_without_cost_term_search_prefers_high_bits(free):
    # uniform mixing weights expect 4 bits; with nothing pushing down, the learned weights move up
    bits = torch.arange(2.0, 7.0)
    expected_w = (torch.tensor(free.extras["p_w"]) @ bits).mean()
    expected_a = (torch.tensor(free.extras["p_a"]) @ bits).mean()
    assert expected_a > 4.1 and (expected_w + expected_a) / 2 > 4.05, (expected_w, expected_a)


def test_cost_term_pulls_expected_bitops_to_the_budget(model, proxy, free):
    tight = parse_budget(cost_model(model), "w2.5a2.5")
    pushed = search(model, proxy, tight, SeamConfig(gamma=5.0, epochs=3, batch_size=50, lr_arch=0.1, readout="argmax"),
                    progress=False)
    assert pushed.record["method"] == "seam-argmax"  # the argmax readout may miss the budget, but reports it
    assert pushed.record["bitops"] == cost_model(model).bitops(pushed.policy)
    assert pushed.record["bitops"] < free.record["bitops"]
    assert sum(pushed.policy.mean_bits()) < sum(free.policy.mean_bits())


def test_target_and_proxy_search_share_one_runner(model, proxy, target, w3a3):
    assert RUNNERS[SeamConfig] is RUNNERS[CEConfig] is RUNNERS[TargetConfig]
    assert (SeamConfig.head, CEConfig.head, TargetConfig.head) == ("lgm", "linear", "model")
    t = search(model, target, w3a3, TargetConfig(**FAST), progress=False)
    assert t.record["bitops"] <= w3a3
    assert t.record["images"] == 200  # no head to fit: one epoch only
    three = D.Images("x", proxy.x, proxy.y % 3, ("a", "b", "c"))
    with pytest.raises(ConfigError, match="own classifier"):
        search(model, three, w3a3, TargetConfig(**FAST), progress=False)


@pytest.mark.parametrize("cfg", [LimpqConfig(epochs=1, batch_size=100), HawqConfig(images=64, iters=2),
                                 UniformConfig(), RandomConfig()], ids=lambda c: c.method)
def test_baselines_meet_the_budget(cfg, model, target, w3a3, tmp_path):
    res = search(model, target, w3a3, cfg, progress=False)
    assert res.record["bitops"] <= w3a3
    if cfg.method == "limpq":  # the alpha balancing weights and activations is recorded
        assert res.record["config"]["alpha"] is None and res.record["alpha"] > 1
    assert res.record["config_type"] == type(cfg).__name__ and res.record["config"] == cfg.to_dict()
    res.save(tmp_path / "r.json")
    back = SearchResult.load(tmp_path / "r.json")
    assert back.policy == res.policy and back.record == res.record


def test_hawq_probes_are_seeded(model, target):
    from mpqlib.search.baselines import hutchinson_traces

    x, y = D.take(target, 32, seed=0)
    names = cost_model(model).names
    a, b, c = (hutchinson_traces(model, x, y, names, iters=2, seed=s) for s in (0, 0, 1))
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all() and not (a[0] == c[0]).all()


def test_uniform_is_w3a3_at_the_w3a3_budget(model, w3a3):
    res = search(model, None, w3a3, UniformConfig())
    assert set(res.policy.bits.values()) == {(3, 3)}
    assert res.record["bitops"] == w3a3


def test_uniform_with_named_bits_and_its_errors(model, w3a3):
    res = search(model, None, w3a3, UniformConfig(weight_bits=4, act_bits=2))
    assert set(res.policy.bits.values()) == {(4, 2)} and res.record["bitops"] < w3a3
    with pytest.raises(BudgetError, match="W4A4 needs .* over the budget"):
        search(model, None, w3a3, UniformConfig(weight_bits=4, act_bits=4))
    with pytest.raises(ConfigError, match="together"):
        UniformConfig(weight_bits=3)
    with pytest.raises(ConfigError, match="outside 2..16"):
        UniformConfig(weight_bits=1, act_bits=3)
    assert cost_model(model).bitops(res.policy) == res.record["bitops"]


def test_random_policies_differ_by_seed(model, w3a3):
    a, b = (search(model, None, w3a3, RandomConfig(seed=s)).policy for s in (0, 1))
    assert a != b


# --------------------------------------------------------------------------- any dataset
def _png_folder(root: Path, images: D.Images, per_class: int = 5) -> Path:
    """A tiny ImageFolder of real MNIST digits written as PNG files (one folder per class)."""
    from PIL import Image

    for c in range(images.num_classes):
        (root / f"class{c}").mkdir(parents=True)
        idx = torch.nonzero(images.y == c).flatten()[:per_class]
        for i in idx.tolist():
            pix = ((images.x[i, 0] * D.STD + D.MEAN) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
            Image.fromarray(pix, mode="L").save(root / f"class{c}" / f"{i}.png")
    return root


def test_search_takes_an_imagefolder_and_a_dataloader(model, proxy, w3a3, tmp_path):
    folder = D.imagefolder(_png_folder(tmp_path / "pngs", proxy, per_class=10), input_size=(1, 28, 28))
    assert len(folder) == 100 and D.num_classes(folder) == 10
    a = search(model, folder, w3a3, CEConfig(**FAST), progress=False)
    assert a.record["bitops"] <= w3a3 and a.record["search_data"].startswith("imagefolder:")
    assert a.record["images"] == 100 + 100
    # the same images in memory search to the same policy: the folder holds exactly them
    same = D.Images("same", torch.stack([folder[i][0] for i in range(100)]), D.labels_of(folder), folder.classes)
    b = search(model, same, w3a3, CEConfig(**FAST), progress=False)
    assert b.policy.bits == a.policy.bits
    hawq = HawqConfig(images=20, iters=1)
    c = search(model, D.as_loader(folder, 100, seed=0), w3a3, hawq, progress=False)
    d = search(model, same, w3a3, hawq, progress=False)
    assert c.policy.bits == d.policy.bits and c.extras["trace_w"] == d.extras["trace_w"]
    e = search(model, torch.utils.data.Subset(folder, range(0, 100, 2)), w3a3, hawq, progress=False)
    assert e.record["bitops"] <= w3a3 and e.record["search_data"].endswith("-50")


def test_images_that_do_not_fit_the_model_name_input_size(model, proxy, w3a3, tmp_path):
    folder = D.imagefolder(_png_folder(tmp_path / "pngs", proxy, per_class=2), input_size=(3, 32, 32))
    with pytest.raises(DataError, match="--input-size 3,32,32"):
        search(model, folder, w3a3, CEConfig(**FAST), input_size=(1, 1, 28, 28), progress=False)


# --------------------------------------------------------------------------- bad requests
def test_bad_requests_fail_clearly(model, proxy):
    with pytest.raises(ConfigError, match="unknown search method"):
        search(model, proxy, None, "fracbits")
    with pytest.raises(ConfigError, match="no option"):
        search(model, proxy, None, "seam", epoch=1)
    with pytest.raises(ConfigError, match="go into the config"):
        search(model, proxy, None, SeamConfig(), epochs=1)
    with pytest.raises(InfeasibleBudget):
        search(model, proxy, 1000, SeamConfig(**FAST), progress=False)
    with pytest.raises(ConfigError, match="epochs"):
        SeamConfig(epochs=1.5)
    with pytest.raises(ConfigError, match="epochs"):
        method_config("limpq", epochs=-1)
    for bad in (-5, float("inf"), float("nan"), 0, "w3a3", True):
        with pytest.raises(BudgetError):
            search(model, None, bad, UniformConfig())
    assert issubclass(InfeasibleBudget, BudgetError) and issubclass(BudgetError, MpqlibError)


@pytest.mark.parametrize("spec", [-5, -1e9, "w-3a-3", "-5", "inf", float("inf"), float("nan"), "nan", 0, "0", "w0a3",
                                  "w3a17", "three", "", True, None])
def test_bad_budgets_say_what_a_budget_looks_like(model, spec):
    with pytest.raises(BudgetError, match="a budget looks like 'w3a3'"):
        parse_budget(cost_model(model), spec)


def test_good_budgets_parse(model):
    cost = cost_model(model)
    assert parse_budget(cost, "w3a3") == parse_budget(cost, 3) == parse_budget(cost, "3") == cost.uniform_bitops(3)
    assert parse_budget(cost, " W2.5A2.5 ") == cost.uniform_bitops(2.5, 2.5)
    assert parse_budget(cost, "1.2e8") == parse_budget(cost, 1.2e8) == 120_000_000


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_searches_run_on_the_models_device(model, proxy, target, w3a3):
    import copy

    gpu = copy.deepcopy(model).cuda()
    res = search(gpu, proxy, w3a3, SeamConfig(**FAST), progress=False)  # device=None: the model's device
    assert res.record["bitops"] <= w3a3
    assert search(gpu, target, w3a3, HawqConfig(images=64, iters=2)).record["bitops"] <= w3a3
    assert search(gpu, target, w3a3, LimpqConfig(epochs=1, batch_size=100), progress=False).record["bitops"] <= w3a3


def test_a_model_that_cannot_take_the_images_names_input_size(model, w3a3):
    rgb = D.Images("rgb", torch.zeros(20, 3, 32, 32), torch.arange(20) % 10, tuple("abcdefghij"))
    with pytest.raises(DataError, match="cannot run on rgb's images of shape 3x32x32.*--input-size"):
        search(model, rgb, w3a3, HawqConfig(images=8, iters=1))
