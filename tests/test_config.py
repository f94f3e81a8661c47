"""Typed configs: types and ranges checked on construction, YAML files, stable keys."""

import dataclasses

import pytest

from mpqlib import config as C
from mpqlib.errors import ConfigError, MpqlibError


@pytest.mark.parametrize("cls, field, value, message", [
    (C.SeamConfig, "epochs", 1.5, "must be an integer"),
    (C.SeamConfig, "epochs", 0, "must be > 0"),
    (C.SeamConfig, "epochs", "4", "must be an integer"),
    (C.SeamConfig, "epochs", True, "must be an integer"),
    (C.SeamConfig, "lr_arch", float("nan"), "finite"),
    (C.SeamConfig, "readout", "best", "one of 'ilp', 'argmax'"),
    (C.SeamConfig, "fill", 1.5, r"in \(0, 1\]"),
    (C.SeamConfig, "margin", -0.1, ">= 0"),
    (C.SeamConfig, "candidates", (1, 2, 3), "outside 2..16"),
    (C.SeamConfig, "candidates", (), "is empty"),
    (C.SeamConfig, "candidates", (4, 4), "duplicates"),
    (C.SeamConfig, "candidates", "2345", "must be a list"),
    (C.CEConfig, "max_steps", 0, "must be > 0"),
    (C.LimpqConfig, "epochs", -1, "must be > 0"),
    (C.LimpqConfig, "alpha", "auto", "number or null"),
    (C.HawqConfig, "images", 0, "must be > 0"),
    (C.QATConfig, "train_images", 0, "must be > 0"),
    (C.TrainConfig, "weight_decay", -1e-4, ">= 0"),
    (C.TrainConfig, "seed", -1, ">= 0"),
])
def test_wrong_types_and_ranges_fail_at_construction(cls, field, value, message):
    with pytest.raises(ConfigError, match=message) as e:
        cls(**{field: value})
    assert f"{cls.__name__}.{field}" in str(e.value)
    assert isinstance(e.value, MpqlibError) and isinstance(e.value, ValueError)


def test_values_are_coerced_to_their_declared_types():
    c = C.SeamConfig(candidates=[2, 4], lr_arch=1, epochs=2.0)
    assert c.candidates == (2, 4) and isinstance(c.lr_arch, float) and c.epochs == 2 and isinstance(c.epochs, int)
    assert C.LimpqConfig(alpha=None).alpha is None and C.LimpqConfig(alpha=2).alpha == 2.0


def test_configs_are_frozen_and_replace_checks_names():
    c = C.SeamConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.epochs = 3
    assert c.replace(epochs=3).epochs == 3 and c.epochs == 8
    with pytest.raises(ConfigError, match="no option epoch"):
        c.replace(epoch=3)
    with pytest.raises(ConfigError, match="must be > 0"):
        c.replace(epochs=0)


def test_each_method_has_one_config_with_its_defaults():
    assert C.METHODS == tuple(C.METHOD_CONFIGS)
    for name, cls in C.METHOD_CONFIGS.items():
        assert cls.method == name and cls().candidates == C.CANDIDATES
    assert C.method_config("ce", epochs=2) == C.CEConfig(epochs=2)
    with pytest.raises(ConfigError, match="unknown search method 'fracbits'"):
        C.method_config("fracbits")
    with pytest.raises(ConfigError, match="HawqConfig has no option epochs"):
        C.method_config("hawq", epochs=2)


def test_round_trip_through_dicts():
    for cls in (*C.METHOD_CONFIGS.values(), C.TrainConfig, C.QATConfig):
        c = cls()
        assert cls.from_dict(c.to_dict()) == c
    with pytest.raises(ConfigError, match="from a mapping"):
        C.SeamConfig.from_dict([("epochs", 1)])


def test_yaml_files_build_configs_and_overrides_win(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("method: seam\nepochs: 4\ncandidates: [2, 4, 8]\nreadout: argmax\n")
    c = C.load_config(f)
    assert c == C.SeamConfig(epochs=4, candidates=(2, 4, 8), readout="argmax")
    assert C.load_config(f, epochs=2).epochs == 2
    q = tmp_path / "qat.yaml"
    q.write_text("epochs: 2\ntrain_images: 1000\n")
    assert C.load_config(q, kind="qat") == C.QATConfig(epochs=2, train_images=1000)


@pytest.mark.parametrize("text, message", [
    ("epochs: 4\n", "does not say which search"),
    ("method: seam\nepochs: four\n", "must be an integer"),
    ("method: seam\nepoch: 4\n", "no option epoch"),
    ("- method: seam\n", "must hold a mapping"),
    ("method: seam\n  epochs: [\n", "not valid YAML"),
])
def test_bad_yaml_files_fail_clearly(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=message):
        C.load_config(f)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        C.load_config("/nonexistent/run.yaml")


def test_keys_are_stable_and_tell_configs_apart():
    a, b = C.SeamConfig(), C.SeamConfig()
    assert a.key() == b.key() and len(a.key()) == 16
    assert C.SeamConfig(epochs=4).key() != a.key()
    assert C.CEConfig().key() != C.SeamConfig().key()          # the type is part of the key
    assert C.SeamConfig(candidates=[2, 3]).key() == C.SeamConfig(candidates=(2, 3)).key()
    assert C.SeamConfig(lr_arch=1).key() == C.SeamConfig(lr_arch=1.0).key()


def test_registered_runner_is_found_for_subclasses():
    from mpqlib import search  # noqa: F401  (registers the runners)

    @dataclasses.dataclass(frozen=True)
    class MySeam(C.SeamConfig):
        pass

    assert C.runner_for(MySeam()) is C.RUNNERS[C.SeamConfig]

    @dataclasses.dataclass(frozen=True)
    class Unregistered(C.SearchConfig):
        method = "mine"

    with pytest.raises(ConfigError, match="no search is registered for Unregistered"):
        C.runner_for(Unregistered())


def test_uniform_config_takes_its_bits_from_a_budget_name():
    from mpqlib.config import UniformConfig

    assert UniformConfig().at_budget("w3a2") == UniformConfig(weight_bits=3, act_bits=2)
    assert UniformConfig().at_budget("w2.5a2.5") == UniformConfig()      # no uniform counterpart
    assert UniformConfig().at_budget("w8a8") == UniformConfig()          # 8 bits is no candidate
    assert UniformConfig(weight_bits=4, act_bits=2).at_budget("w3a3").weight_bits == 4  # set bits win
