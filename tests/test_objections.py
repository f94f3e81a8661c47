"""Chapter 7's objections: the tuning grid's choice, the QAT plateau, the proxies of other classes
and of noise, the options added without moving a cache key, and the part on the smoke study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mpqlib import data as D
from mpqlib.config import CEConfig, SeamConfig
from mpqlib.discriminability import LGMLoss
from mpqlib.errors import ConfigError
from mpqlib.study.profiles import CE_GRID, SEAM_GRID, resolve
from mpqlib.study import facts as F
from mpqlib.study import objections as O

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- keys and options
def test_an_option_added_later_leaves_the_keys_of_cached_searches_alone():
    """A committed SEAM search was keyed by the options of its day; the default config today
    must write exactly those options (else every cached search would silently run again)."""
    stored = next(json.loads(p.read_text()) for p in sorted((REPO / "cache/full").glob("*/search/*.json"))
                  if json.loads(p.read_text())["config"]["search"]["type"] == "SeamConfig")
    committed = stored["config"]["search"]
    today = {"type": "SeamConfig", **SeamConfig(seed=committed["seed"], epochs=committed["epochs"]).to_dict()}
    assert set(today) == set(committed)
    assert "classification_weight" in SeamConfig(classification_weight=0.0).to_dict()


def test_likelihood_only_head_has_no_cross_entropy_and_refuses_no_loss_at_all():
    torch.manual_seed(0)
    f, y = torch.randn(32, 8), torch.arange(4).repeat(8)
    both = LGMLoss(4, 8, 0.0, 1.0)
    alone = LGMLoss(4, 8, 0.0, 1.0, means=both.means.detach(), classification_weight=0.0)
    lik = 0.5 * ((f - both.means[y]) ** 2).sum(1).mean()
    assert torch.allclose(alone(f, y)[0], lik, atol=1e-6)
    assert not torch.allclose(both(f, y)[0], lik, atol=1e-3)
    with pytest.raises(ConfigError, match="both 0"):
        SeamConfig(likelihood_weight=0.0, classification_weight=0.0)


def test_grids_are_the_preregistered_ones_and_hold_the_version_two_settings():
    assert len(SEAM_GRID) == 13 and len(CE_GRID) == 13
    for grid, cfg in ((SEAM_GRID, SeamConfig()), (CE_GRID, CEConfig())):
        configs = [cfg.replace(**g) for g in grid]  # every point is a valid config
        assert cfg in configs  # the version-2 setting is one of them


# --------------------------------------------------------------------------- data
def test_class_subsets_relabel_and_splits_never_share_an_image():
    full = D.load("fmnist", "train")
    other = D.search_data("fmnist[5-9]:12")
    assert other.counts() == [12] * 5 and other.classes == full.classes[5:]
    mine = D.classes_of(D.load("fmnist", "test"), (0, 1, 2, 3, 4))
    assert set(mine.y.tolist()) == {0, 1, 2, 3, 4} and len(mine) == 5000
    rest, held = D.split_off(full, 50, seed=0)
    assert len(rest) + len(held) == len(full) and held.counts() == [50] * 10
    a = {bytes(x.numpy().tobytes()) for x in held.x[:200]}
    assert not a & {bytes(x.numpy().tobytes()) for x in rest.x[:5000]}
    with pytest.raises(ConfigError, match="distinct classes"):
        D.classes_of(full, (3, 3))
    with pytest.raises(ConfigError, match="NAME\\[LO-HI\\]"):
        D.search_data("fmnist[a-b]")


def test_noise_proxy_is_seeded_balanced_and_uninformative():
    like = D.load("fmnist", "train")
    a, b, c = D.noise(20, like, seed=0), D.noise(20, like, seed=0), D.noise(20, like, seed=1)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and not torch.equal(a.x, c.x)
    assert a.counts() == [20] * 10 and a.x.shape[1:] == like.x.shape[1:]
    assert a.y[:20].unique().numel() > 1  # labels in a random order, not blocks
    assert D.search_data("noise:20").counts() == [20] * 10


# --------------------------------------------------------------------------- rules
def _row(config, mean, default=False):
    return {"config": config, "mean": mean, "default": default, "val_top1": [mean]}


def test_the_tuning_keeps_the_best_mean_and_a_tie_goes_to_the_earlier_setting():
    rows = [_row({"margin": 0.1}, 80.00, True), _row({"margin": 0.3}, 80.04), _row({"margin": 1.0}, 79.0)]
    assert O.choose(rows, 0.05) == {"margin": 0.1}
    rows[1]["mean"] = 80.2
    assert O.choose(rows, 0.05) == {"margin": 0.3}
    rows[2]["mean"] = None
    assert O.choose(rows, 0.05) is None  # a configuration still missing runs decides nothing


def test_the_plateau_is_the_fewest_epochs_within_the_tolerance_for_both_policies():
    curve = {"uniform": {"1": [85.0, 85.2], "2": [86.0, 86.2], "5": [86.5, 86.7], "10": [86.6, 86.8]},
             "target-fmnist": {"1": [87.0, 87.0], "2": [88.3, 88.5], "5": [88.6, 88.6], "10": [88.7, 88.7]}}
    assert O.plateau(curve, (1, 2, 5, 10), (0, 1), 0.2) == 5
    assert O.plateau(curve, (1, 2, 5, 10), (0, 1), 0.65) == 2
    curve["uniform"]["5"] = [86.5]
    assert O.plateau(curve, (1, 2, 5, 10), (0, 1), 0.2) is None


def test_both_sides_carry_seeds_and_the_extension_stays_on_the_main_policies():
    for name in ("target-fmnist", "limpq-fmnist", "hawq-fmnist"):
        assert name in F.SEARCH_SEEDED
    ids = {c.id for c in F.CLAIM_FACTS}
    assert {"tuned-seam-vs-target", "tuned-seam-vs-ce", "proxy-vs-target-long", "seam-vs-uniform-long",
            "noise-control", "disjoint-classes-vs-target"} <= ids
    p = resolve("full")
    assert O.disjoint_name(p) == "mobilenetv1-c0-4" and p.objections_model() == "mobilenetv1"


def test_objections_overrides_are_checked():
    p = resolve("smoke", {"objections": {"long_epochs": [1, 3]}})
    assert p.objections.long_epochs == (1, 3)
    with pytest.raises(ConfigError, match="no option"):
        resolve("smoke", {"objections": {"epochs_long": [1]}})


# --------------------------------------------------------------------------- the part, on the smoke study
@pytest.mark.slow
def test_objections_part_on_the_smoke_study(smoke_study):
    """The whole part on tiny settings (the shared smoke study, tests/conftest.py): a 5-class model
    trained and cached (its weights inside the record), the grid scored on the validation split,
    the plateau found, the claims written."""
    tmp_path = Path(smoke_study["cache_dir"]).parent
    doc = json.loads((tmp_path / "results" / "objections.json").read_text())
    assert doc["tuning"]["chosen"]["seam"] is not None and doc["tuning"]["chosen"]["ce"] is not None
    assert doc["long_qat"]["plateau_epochs"] in (1, 2)
    assert {r["policy"] for r in doc["ladder"]} >= {"seam-noise", "seam-disjoint", "seam-mnist"}
    claims = json.loads((tmp_path / "results" / "claims.json").read_text())["claims"]
    got = {c["id"] for c in claims}
    assert {"tuned-seam-vs-target", "tuned-seam-vs-ce", "proxy-vs-target-long", "seam-vs-uniform-long",
            "noise-control", "disjoint-classes-vs-target"} <= got
    disjoint = next(c for c in claims if c["id"] == "disjoint-classes-vs-target")
    assert disjoint["model"] == "resnet8" and disjoint["experiment"] == "resnet8-c0-4"
    trained = list((tmp_path / "cache" / "resnet8-c0-4" / "train").glob("*.json"))
    assert len(trained) == 1 and json.loads(trained[0].read_text())["record"]["num_classes"] == 5
    # The validation split was never the test set: every tuning QAT names the split it scored on.
    tuning = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "resnet8" / "qat").glob("*.json")]
    assert any(t["config"]["test"]["name"].startswith("fmnist-val") for t in tuning)
