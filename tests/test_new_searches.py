"""The joint (FracBits-class), evaluation-based and orthogonality (OMPQ-style) searches on the
committed ResNet-8 and a few real Fashion-MNIST / MNIST images."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mpqlib import data as D
from mpqlib.config import EvaluationConfig, JointConfig, OrthogonalityConfig
from mpqlib.cost import budget as parse_budget, cost_model
from mpqlib.errors import ConfigError, DataError
from mpqlib.search.evaluation import best_so_far, evaluation
from mpqlib.search.joint import joint, patience_exhausted, split_off
from mpqlib.search.orthogonality import (cka_matrix, ompq_importance, orthogonality, orthogonality_scores,
                                         pair_choices)

COST_FIELDS = ("seconds", "cpu_seconds", "cpu_utilisation", "threads", "load_start", "load_end", "load_max",
               "peak_memory_mb", "contended", "images", "epochs", "bitops", "budget_bitops", "seed", "config")


@pytest.fixture(scope="module")
def model():
    from mpqlib.train import load_checkpoint

    return load_checkpoint(Path(__file__).resolve().parents[1] / "checkpoints" / "resnet8-fmnist.pt")[0].eval()


@pytest.fixture(scope="module")
def target():
    return D.search_data("fmnist:10", seed=0)  # 100 images


@pytest.fixture(scope="module")
def budget(model):
    return parse_budget(cost_model(model), "w4a4")


def _within(result, budget):
    assert result.record["bitops"] <= budget
    assert result.policy.provenance["bitops"] == result.record["bitops"]
    for k in COST_FIELDS:
        assert k in result.record, k


# --------------------------------------------------------------------------- orthogonality
def test_cka_is_one_on_itself_and_invariant_to_scale_and_rotation():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 20, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=torch.float64))
    b = torch.randn(50, 30, generator=g, dtype=torch.float64)
    cka = cka_matrix([a, 3 * a @ q, b])
    assert np.allclose(np.diag(cka), 1)
    assert np.allclose(cka, cka.T)
    assert cka[0, 1] == pytest.approx(1, abs=1e-9)  # linear CKA ignores isotropic scale and rotation
    assert cka[0, 2] < 0.9


def test_duplicated_features_make_a_layer_less_important():
    g = torch.Generator().manual_seed(1)
    n = 64
    feats = [torch.randn(n, 40, generator=g, dtype=torch.float64) for _ in range(4)]
    feats.insert(2, feats[1] * 2 + 0.01 * torch.randn(n, 40, generator=g, dtype=torch.float64))  # layer 2 ~ layer 1
    theta = orthogonality_scores(cka_matrix(feats))
    # the two layers that repeat each other score lower than every layer with features of its own
    assert max(theta[1], theta[2]) < min(theta[0], theta[3], theta[4])
    # OMPQ's objective weight: the mean of theta over the layer and the ones after it
    imp = ompq_importance(theta)
    assert imp[-1] == pytest.approx(theta[-1])
    assert imp[0] == pytest.approx(theta.mean())


def test_orthogonality_meets_budget_deterministic_on_target_and_proxy(model, target, budget):
    cfg = OrthogonalityConfig(images=32)
    a = orthogonality(model, target, budget, cfg, progress=False)
    b = orthogonality(model, target, budget, cfg, progress=False)
    _within(a, budget)
    assert a.policy == b.policy and a.extras["cka"] == b.extras["cka"]
    assert a.record["images"] == 32 and a.record["epochs"] == 0
    assert a.record["bitops"] >= 0.9 * budget  # maximising bits spends the budget
    proxy = orthogonality(model, D.search_data("mnist:10", seed=0), budget, cfg, progress=False)  # labels unused
    _within(proxy, budget)
    assert proxy.record["search_data"].startswith("mnist")
    assert len(a.extras["importance"]) == len(cost_model(model).names)
    assert all(w == act for w, act in a.policy.bits.values())  # pairs="shared": one width per layer, as OMPQ


def test_pair_choices():
    assert pair_choices((2, 4)) == [(2, 2), (4, 4)]
    assert pair_choices((2, 4), "independent") == [(2, 2), (2, 4), (4, 2), (4, 4)]


# --------------------------------------------------------------------------- joint
def test_patience_rule():
    assert not patience_exhausted([1.0], 1)
    assert not patience_exhausted([1.0, 0.9], 1)
    assert patience_exhausted([1.0, 0.9, 0.95], 1)
    assert not patience_exhausted([1.0, 0.9, 0.95], 2)
    assert patience_exhausted([1.0, 0.9, 0.95, 0.91], 2)
    assert patience_exhausted([1.0, 1.0], 1)  # equal is no improvement


def test_split_off_is_seeded_and_disjoint(target):
    rest, held = split_off(target, 30, seed=3)
    rest2, held2 = split_off(target, 30, seed=3)
    assert len(held) == 30 and len(rest) == len(target) - 30
    assert torch.equal(held.x, held2.x)
    keys = {x.numpy().tobytes() for x in held.x}
    assert len(keys) == 30 and not keys & {x.numpy().tobytes() for x in rest.x}
    with pytest.raises(ConfigError, match="val_images"):
        split_off(target, len(target), seed=0)


def test_joint_stops_on_patience_and_is_deterministic(model, target, budget):
    cfg = JointConfig(epochs=3, patience=1, val_images=40, batch_size=30)
    a = joint(model, target, budget, cfg, progress=False)
    b = joint(model, target, budget, cfg.replace(epochs=1), progress=False)
    _within(a, budget)
    assert b.extras["history"][0] == {**a.extras["history"][0], "seconds": b.extras["history"][0]["seconds"]}
    conv, hist = a.record["convergence"], a.extras["history"]
    losses = [h["held_out_loss"] for h in hist]
    # it stops exactly when the rule says so: at the first epoch where patience is exhausted, else at cfg.epochs
    assert not patience_exhausted(losses[:-1], cfg.patience)
    if conv["reason"] == "patience":
        assert patience_exhausted(losses, cfg.patience) and len(hist) <= cfg.epochs
    else:
        assert conv["reason"] == "epochs" and len(hist) == cfg.epochs and not patience_exhausted(losses, cfg.patience)
    assert b.record["convergence"]["reason"] == "epochs"
    assert conv["best_epoch"] == int(np.argmin(losses)) + 1
    assert all({"held_out_loss", "held_out_top1", "train_loss"} <= set(h) for h in hist)
    assert a.record["held_out_images"] == 40 * len(hist)
    assert a.record["epochs"] == len(hist)


def test_joint_refuses_data_of_other_classes_and_frozen_backbone(target, budget):
    from mpqlib.models import resnet8

    with pytest.raises(DataError, match="classifier"):  # a 5-class model cannot train on 10 classes
        joint(resnet8(num_classes=5), target, budget, JointConfig(epochs=1, val_images=10), progress=False)
    with pytest.raises(ConfigError, match="TargetConfig"):
        JointConfig(freeze_backbone=True)


# --------------------------------------------------------------------------- evaluation
def test_evaluation_best_so_far_curve_and_budget(model, target, budget):
    cfg = EvaluationConfig(candidates_to_try=4, population=2, finetune_images=40, val_images=30, batch_size=20)
    a = evaluation(model, target, budget, cfg, progress=False)
    b = evaluation(model, target, budget, cfg.replace(candidates_to_try=2), progress=False)
    _within(a, budget)
    first = [{k: t[k] for k in ("top1", "bitops", "source")} for t in a.extras["trials"][:2]]
    assert first == [{k: t[k] for k in ("top1", "bitops", "source")} for t in b.extras["trials"]]  # same seed
    assert a.extras["policies"][:2] == b.extras["policies"]
    trials = a.extras["trials"]
    curve = a.record["best_so_far"]
    assert len(curve) == len(trials) == 4
    assert all(x <= y for x, y in zip(curve, curve[1:]))  # non-decreasing
    assert curve == best_so_far([t["top1"] for t in trials])
    assert curve[-1] == max(t["top1"] for t in trials) == a.policy.provenance["held_out_top1"]
    assert [t["source"] for t in trials] == ["random", "random", "mutation", "mutation"]
    assert all(t["bitops"] <= budget for t in trials)
    assert len(a.record["candidate_seconds"]) == 4
    assert a.record["images"] == 40 * sum(not t["repeat"] for t in trials)


def test_best_so_far():
    assert best_so_far([3.0, 1.0, 4.0, 2.0]) == [3.0, 3.0, 4.0, 4.0]
    assert best_so_far([]) == []
