"""The efficiency table and the ImageNet cost model on synthetic records (numbers chosen by hand)."""

import json

import pytest

from mpqlib.study import efficiency as E
from mpqlib.errors import ConfigError

MACHINE = "x86_64 2 cores, torch 2.x, 2 threads"


def rec(seconds, images, *, epochs=1, contended=False, held=0, peak=100.0, bitops=1000, **extra):
    r = {"seconds": seconds, "images": images, "epochs": epochs, "peak_memory_mb": peak, "bitops": bitops,
         "machine": MACHINE, "contended": contended, "contention": "load 5.00 > 2 threads + 0.5" if contended else None,
         "cpu_seconds": seconds * 1.8, "threads": 2}
    if held:
        r["held_out_images"] = held
    r.update(extra)
    return r


def entry(record, top1=(90.0, 90.4, 90.2)):
    return {"record": record, "top1": list(top1), "bitops": record["bitops"]}


@pytest.fixture
def methods():
    # seconds per image: seam 0.01, target 0.01, joint 0.02 (+ held-out scoring), limpq 0.008 per pass,
    # evaluation 0.015 per fine-tune image (+ scoring)
    return {
        "seam": entry(rec(80.0, 8000, epochs=8)),
        "target-equal-epochs": entry(rec(800.0, 80000, epochs=8)),
        "target-equal-steps": entry(rec(80.0, 8000, epochs=0.8)),
        "joint": entry(rec(2000.0 + 0.02 / 3 * 3000, 100000, epochs=2, held=3000)),
        "evaluation": entry(rec(0.015 * (20000 + 2000 / 3), 20000, epochs=0.4, held=2000)),
        "orthogonality": entry(rec(0.5, 64, epochs=0)),
        "limpq": entry(rec(48.0, 6000, epochs=1)),
        "hawq": entry(rec(30.0, 16896, epochs=0), top1=(89.9,)),
    }


def test_table_has_exactly_the_issue_schema(methods, tmp_path):
    out = E.efficiency_table(methods, lean={"startup_fraction": 0.08, "search_vs_fp_peak_memory": 1.6},
                             path=tmp_path / "efficiency.json")
    for key in ("machine", "methods", "ratios", "startup_fraction", "search_vs_fp_peak_memory"):
        assert key in out
    assert set(out["methods"]) == set(methods)
    for row in out["methods"].values():
        assert tuple(row) == E.METHOD_KEYS
    assert out["machine"] == MACHINE
    assert out["startup_fraction"] == 0.08 and out["search_vs_fp_peak_memory"] == 1.6
    assert json.loads((tmp_path / "efficiency.json").read_text()) == json.loads(json.dumps(out))
    seam = out["methods"]["seam"]
    assert seam["seconds"] == 80.0 and seam["images"] == 8000 and seam["peak_mb"] == 100.0
    assert seam["top1_mean"] == pytest.approx(90.2)
    assert seam["ci_low"] < 90.2 < seam["ci_high"]
    hawq = out["methods"]["hawq"]  # one QAT seed: a mean, no interval
    assert hawq["top1_mean"] == 89.9 and hawq["ci_low"] is None and hawq["ci_high"] is None


def test_ratios_only_from_runs_measured_alone(methods):
    methods["joint"]["record"]["contended"] = True
    methods["joint"]["record"]["contention"] = "load 9.00 > 2 threads + 0.5"
    del methods["limpq"]["record"]["contended"]  # an old record without load figures
    r = E.efficiency_table(methods, projection=False)["ratios"]
    assert r["target-equal-epochs/seam"] == {"value": 10.0, "contended": False, "note": None}
    assert r["joint/seam"]["value"] is None and r["joint/seam"]["contended"]
    assert "load 9.00" in r["joint/seam"]["note"]
    assert r["joint/seam"]["contended_value"] == pytest.approx((2000 + 20) / 80, rel=1e-3)
    assert r["limpq/seam"]["value"] is None and "re-measure" in r["limpq/seam"]["note"]
    assert r["evaluation/seam"]["value"] is not None
    # a contended reference spoils every ratio
    methods["seam"]["record"]["contended"] = True
    r = E.efficiency_table(methods, projection=False)["ratios"]
    assert all(v["value"] is None for v in r.values())


def test_mixed_machines_are_called_out(methods):
    methods["hawq"]["record"]["machine"] = "another box"
    assert E.efficiency_table(methods, projection=False)["machine"].startswith("MIXED")


def test_per_image_costs_take_scoring_out(methods):
    c = E.per_image_seconds(methods)
    assert c["seam"] == pytest.approx(0.01)
    assert c["frozen"] == pytest.approx(0.01)
    assert c["unfrozen"] == pytest.approx(0.02)
    assert c["limpq"] == pytest.approx(0.008)
    assert c["finetune"] == pytest.approx(0.015)
    assert c["forward"] == pytest.approx(0.01 / 3)
    assert c["missing"] == {}
    methods["joint"]["record"]["contended"] = True
    c = E.per_image_seconds(methods)
    assert "unfrozen" not in c and "joint" in c["missing"]["unfrozen"]


def test_projection_factors_multiply_to_the_ratio(methods):
    p = E.imagenet_projection(E.per_image_seconds(methods))
    assert set(p["archs"]) == set(E.ARCHS)
    a = p["assumptions"]
    assert a["proxy_share"]["value"] == 0.04 and a["proxy_share"]["why"]
    mb = p["archs"]["mobilenetv1"]
    for key, f in mb["factors"].items():
        product = f["data_size"] * f["epochs"] * f["frozen_backbone"] * f["method"]
        assert product == pytest.approx(mb["ratios"][key], rel=1e-3)
    # target on all of ImageNet at SEAM's epochs: data size alone (1 / 0.04 = 25), same per-image cost
    t = mb["factors"]["target-equal-epochs/seam"]
    assert t["data_size"] == pytest.approx(25, rel=1e-3) and t["epochs"] == 1 and t["method"] == pytest.approx(1)
    assert mb["ratios"]["target-equal-epochs/seam"] == pytest.approx(25, rel=1e-3)
    # joint: 25 (data) x 30/8 (epochs) x 2 (unfrozen backbone costs twice a frozen step)
    j = mb["factors"]["joint/seam"]
    assert j["frozen_backbone"] == pytest.approx(2) and j["epochs"] == pytest.approx(30 / 8)
    assert mb["ratios"]["joint/seam"] == pytest.approx(25 * 30 / 8 * 2, rel=1e-3)
    # the FracBits epochs that would give the paper's 297x
    assert mb["implied_joint_epochs"] == pytest.approx(30 * 297 / (25 * 30 / 8 * 2), abs=0.1)
    # limpq by its own recipe: 98% / 4% data, 5 epochs x 6 passes / 8, 0.8 per-image cost, weights
    # trained with the indicators (the unfrozen / frozen factor 2)
    assert mb["ratios"]["limpq/seam"] == pytest.approx(0.98 / 0.04 * 5 * 6 / 8 * 0.8 * 2, rel=1e-3)
    assert mb["factors"]["limpq/seam"]["frozen_backbone"] == pytest.approx(2)
    frozen_limpq = E.imagenet_projection(E.per_image_seconds(methods), {"limpq_trains_weights": False})
    assert frozen_limpq["archs"]["mobilenetv1"]["ratios"]["limpq/seam"] == pytest.approx(mb["ratios"]["limpq/seam"] / 2)
    assert mb["paper_ratios"] == {"joint/seam": 297.0, "limpq/seam": [3.4, 4.25]}
    assert mb["ratios"]["orthogonality/seam"] < 1e-3


def test_projection_overrides_and_missing_costs(methods):
    costs = E.per_image_seconds(methods)
    p = E.imagenet_projection(costs, {"joint_epochs": 60})
    q = E.imagenet_projection(costs)
    doubled = p["archs"]["resnet18"]["ratios"]["joint/seam"]
    assert doubled == pytest.approx(2 * q["archs"]["resnet18"]["ratios"]["joint/seam"])
    with pytest.raises(ConfigError, match="unknown assumption"):
        E.imagenet_projection(costs, {"jiont_epochs": 60})
    del costs["unfrozen"]
    r = E.imagenet_projection(costs, per_arch={"resnet18": {"unfrozen": 0.03}})
    assert r["archs"]["mobilenetv1"]["ratios"]["joint/seam"] is None
    assert r["archs"]["resnet18"]["ratios"]["joint/seam"] == pytest.approx(25 * 30 / 8 * 3, rel=1e-3)
    assert r["archs"]["resnet18"]["per_image_from"].startswith("measured on this architecture")


def test_table_with_curves(methods):
    out = E.efficiency_table(methods, search_length={"seam@1": methods["seam"]},
                             proxy_size={"10": methods["seam"]}, profile="smoke", model="resnet8")
    assert out["search_length"]["seam@1"]["contended"] is False
    assert out["proxy_size"]["10"]["seconds"] == 80.0
    assert out["profile"] == "smoke" and out["model"] == "resnet8"
    assert out["imagenet"]["archs"]["mobilenetv1"]["ratios"]["joint/seam"] > 100


def test_an_architecture_a_gpu_measured_keeps_its_own_ratios(methods):
    """ResNet-18's ratios come from its GPU step times at 224 px, not from the harness's model."""
    gpu = {"device": "NVIDIA H200", "size": 224, "models": {"resnet18": {"steps": {
        "search": {"ms_per_step": 100.0}, "joint": {"ms_per_step": 300.0}, "qat": {"ms_per_step": 40.0},
        "eval": {"ms_per_step": 10.0}}}}}
    p = E.imagenet_projection(E.per_image_seconds(methods), gpu_steps=[gpu])
    r18, mb = p["archs"]["resnet18"], p["archs"]["mobilenetv1"]
    assert r18["factors"]["joint/seam"]["frozen_backbone"] == pytest.approx(3)
    assert mb["factors"]["joint/seam"]["frozen_backbone"] == pytest.approx(2)
    assert "H200" in r18["per_image_from"] and "assumption" in mb["per_image_from"]
