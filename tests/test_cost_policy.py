import json

import pytest
import torchvision

from mpqlib.cost import budget, cost_model
from mpqlib.models import resnet20
from mpqlib.policy import Policy, PolicyError


def _conv(h, cout, cin, k):
    return h * h * cout * cin * k * k


def test_resnet20_counts_match_hand_computation():
    cm = cost_model(resnet20())
    expect = _conv(28, 16, 1, 3) + 6 * _conv(28, 16, 16, 3)
    expect += _conv(14, 32, 16, 3) + 5 * _conv(14, 32, 32, 3) + _conv(14, 32, 16, 1)
    expect += _conv(7, 64, 32, 3) + 5 * _conv(7, 64, 64, 3) + _conv(7, 64, 32, 1)
    expect += 64 * 10
    assert cm.macs == expect
    assert cm["layer2.0.downsample.0"].macs == 14 * 14 * 32 * 16
    assert cm["layer2.0.conv1"].params == 32 * 16 * 9
    assert cm["fc"].macs == 640 and cm["fc"].fixed and cm["conv1"].fixed
    assert len(cm.searchable) == 20
    assert sum(r["params"] for r in cm.table()) == cm.params


def test_resnet18_imagenet_macs():
    cm = cost_model(torchvision.models.resnet18(), (1, 3, 224, 224))
    assert abs(cm.macs / 1e9 - 1.82) < 0.01


def test_bitops_and_size_of_policies():
    model = resnet20()
    cm = cost_model(model)
    p3 = Policy.uniform(model, 3)
    fixed_macs = cm["conv1"].macs + cm["fc"].macs
    assert cm.bitops(p3) == fixed_macs * 64 + (cm.macs - fixed_macs) * 9
    assert cm.bitops(p3) == budget(cm, "w3a3") == budget(cm, 3)
    assert cm.bitops(Policy.uniform(model, 4)) > cm.bitops(p3)
    fixed_params = cm["conv1"].params + cm["fc"].params
    assert cm.size_bits(p3) == fixed_params * 8 + (cm.params - fixed_params) * 3
    assert budget(cm, "w2.5a2.5") < budget(cm, "w3a3") < budget(cm, "w4a4")
    assert budget(cm, 1.5e8) == 150_000_000
    with pytest.raises(ValueError, match="w3a3"):
        budget(cm, "three bits")


def test_policy_json_roundtrip_and_exports(tmp_path):
    model = resnet20()
    p = Policy.uniform(model, 4, 3, method="uniform", seed=0)
    path = tmp_path / "p.json"
    p.save(path)
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == 1 and raw["provenance"]["seed"] == 0
    q = Policy.load(path)
    assert q == p and q.provenance == p.provenance
    hawq = q.to_hawq()
    assert hawq["layer1.0.conv1"] == {"weight_bit": 4, "activation_bit": 3}
    assert hawq["conv1"] == {"weight_bit": 8, "activation_bit": 8}
    w, a = q.to_limpq()
    assert len(w) == 20 and set(w) == {4} and set(a) == {3}


def test_policy_validation_names_the_problem(tmp_path):
    model = resnet20()
    p = Policy.uniform(model, 4)
    with pytest.raises(PolicyError, match="layer4.0.conv1"):
        Policy({**p.bits, "layer4.0.conv1": (4, 4)}, p.fixed).validate(model)
    with pytest.raises(PolicyError, match="outside the candidates"):
        Policy({**p.bits, "layer1.0.conv1": (8, 4)}, p.fixed).validate(model, candidates=range(2, 7))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 99, "bits": {}}))
    with pytest.raises(PolicyError, match="schema version"):
        Policy.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        Policy.load(bad)


def test_policy_bits_below_two_are_rejected():
    from mpqlib import errors

    model = resnet20()
    p = Policy.uniform(model, 4)
    assert PolicyError is errors.PolicyError
    with pytest.raises(PolicyError, match="2"):
        Policy({**p.bits, "layer1.0.conv1": (1, 4)}, p.fixed)
    with pytest.raises(PolicyError):
        Policy(p.bits, {**p.fixed, "conv1": (8, 0)})
    with pytest.raises(PolicyError):
        Policy.uniform(model, 1)


@pytest.mark.parametrize("doc,match", [
    ({"schema_version": 1, "bits": []}, "'bits' must be an object"),
    ({"schema_version": 1, "bits": {}, "fixed": None}, "'fixed' must be an object"),
    ({"schema_version": 1}, "not a policy"),
    ([1, 2], "not a policy"),
    ({"schema_version": 1, "bits": {"layer1.0.conv1": [4, "4"]}}, "pair of ints"),
    ({"schema_version": 1, "bits": {"layer1.0.conv1": [4.5, 4]}}, "pair of ints"),
    ({"schema_version": 1, "bits": {"layer1.0.conv1": 4}}, "pair of ints"),
    ({"schema_version": 1, "bits": {"layer1.0.conv1": [1, 4]}}, "outside 2..16"),
    ({"schema_version": 1, "bits": {}, "provenance": "me"}, "provenance"),
])
def test_malformed_policy_files_give_a_policy_error_that_names_the_file(tmp_path, doc, match):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PolicyError, match=match) as info:
        Policy.load(path)
    assert "mine.json" in str(info.value) and "delete" not in str(info.value)


def test_unreadable_or_missing_policy_files(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text('{"bits": {')
    with pytest.raises(PolicyError, match="not valid JSON") as info:
        Policy.load(bad)
    assert "delete" not in str(info.value)
    with pytest.raises(PolicyError, match="does not exist"):
        Policy.load(tmp_path / "absent.json")


def test_policy_messages_are_one_short_complete_line():
    """A policy for another model names a few of its layers and how many more, not all of them;
    a policy without schema_version says what to add."""
    r18 = torchvision.models.resnet18(num_classes=10)
    wrong = Policy.uniform(r18, 4)
    with pytest.raises(PolicyError) as e:
        wrong.validate(resnet20())
    msg = str(e.value)
    assert len(msg) < 400 and "\n" not in msg and "more" in msg and "another model" in msg
    doc = Policy.uniform(resnet20(), 4).to_dict()
    del doc["schema_version"]
    with pytest.raises(PolicyError, match="no 'schema_version'; add"):
        Policy.from_dict(doc)


def test_a_one_class_proxy_is_refused_in_words():
    from mpqlib.discriminability import LGMLoss
    from mpqlib.errors import ConfigError

    with pytest.raises(ConfigError, match="needs at least 2"):
        LGMLoss(1, 512)
