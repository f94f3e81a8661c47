"""One profile parameter resolved into every setting; overrides typed and checked."""

import json

import pytest

from mpqlib.config import QATConfig, SeamConfig
from mpqlib.errors import ConfigError
from mpqlib.study.profiles import PILOT_BUDGETS, resolve


def test_full_is_the_preregistered_protocol():
    p = resolve("full")
    assert set(p.models) == {"resnet20", "mobilenetv1"}
    assert len(p.search_seeds) >= 3 and len(p.qat_seeds) >= 4 and p.n_correlation >= 30
    assert p.budget == "pilot" and p.second_budget == "w3a3" and p.pilot_budgets == PILOT_BUDGETS
    assert isinstance(p.seam, SeamConfig) and isinstance(p.qat, QATConfig)
    assert p.efficiency.proxy_sizes == (10, 30, 100, 240, 600) and p.efficiency.epochs_curve == (1, 2, 4, 8)


def test_smoke_is_small_with_two_seeds():
    p = resolve("smoke")
    assert list(p.models) == ["resnet8"] and p.checkpoint("resnet8").exists()
    assert len(p.search_seeds) == len(p.qat_seeds) == 2 and p.qat.train_images <= 1000
    assert p.main_budget("resnet8") == "w3a2"


def test_overrides_are_typed():
    p = resolve("smoke", {"qat_seeds": "[3, 4]", "seam": {"margin": 0.05}}, qat={"lr": 0.02})
    assert p.qat_seeds == (3, 4) and p.seam.margin == 0.05 and p.qat.lr == 0.02 and p.qat.train_images == 300
    assert resolve(p).seam.margin == 0.05  # a resolved profile resolves to itself
    json.dumps(p.to_dict())
    with pytest.raises(ConfigError, match="unknown profile setting"):
        resolve("smoke", serach_seeds=[0])
    with pytest.raises(ConfigError, match="margn"):
        resolve("smoke", seam={"margn": 0.1})
    with pytest.raises(ConfigError):
        resolve("smoke", seam={"margin": "wide"})
    with pytest.raises(ConfigError, match="integer"):
        resolve("smoke", n_random="many")
    with pytest.raises(ConfigError, match="unknown profile"):
        resolve("huge")
    with pytest.raises(ConfigError, match="no model"):
        resolve("smoke").checkpoint("vgg")


def test_main_budget_comes_from_the_pilot(tmp_path):
    p = resolve("full", results_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="mpq study pilot"):
        p.main_budget("resnet20")
    (tmp_path / "pilot.json").write_text(json.dumps({"chosen": {"resnet20": "w2a4"}}))
    assert p.main_budget("resnet20") == "w2a4"
    with pytest.raises(ConfigError, match="mobilenetv1"):
        p.main_budget("mobilenetv1")


def test_settings_with_defaults_can_be_overridden():
    p = resolve("smoke", threads=1, progress=True, efficiency={"qat_seeds": [0]})
    assert p.threads == 1 and p.progress is True and p.efficiency.qat_seeds == (0,)
    with pytest.raises(ConfigError, match="name"):
        resolve("smoke", name="full")


def test_which_model_runs_the_sweep_chapter_5_and_the_harness():
    full = resolve("full")
    assert full.sweep_models() == ["resnet20"] and full.correlation_models() == ["mobilenetv1"]
    assert full.efficiency_model() == "mobilenetv1"
    # a profile without the named models falls back to its first model
    smoke = resolve("smoke")
    assert smoke.sweep_models() == smoke.correlation_models() == ["resnet8"] and smoke.efficiency_model() == "resnet8"
    two = resolve("smoke", models={"resnet8": "checkpoints/resnet8-fmnist.pt",
                                   "mobilenetv1": "checkpoints/mobilenetv1-fmnist.pt"})
    assert two.sweep_models() == ["resnet8"] and two.correlation_models() == ["mobilenetv1"]
    assert resolve("full", correlation_on=["resnet20", "mobilenetv1"]).correlation_models() == ["resnet20", "mobilenetv1"]
