"""The efficiency table and the ImageNet cost model on synthetic records (numbers chosen by hand)."""

import json

import pytest

from mpqlib.study import efficiency as E
from mpqlib.errors import ConfigError

MACHINE = "x86_64 2 cores, torch 2.x, 2 threads"
HOST = "AMD EPYC (AVX512, 2 threads)"


def rec(seconds, images, *, epochs=1, contended=False, held=0, peak=100.0, bitops=1000, **extra):
    r = {"seconds": seconds, "images": images, "epochs": epochs, "peak_memory_mb": peak, "bitops": bitops,
         "machine": MACHINE, "host": HOST, "contended": contended, "contention": "load 5.00 > 2 threads + 0.5" if contended else None,
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
    for key in ("ratios_host", "methods", "ratios", "startup_fraction", "search_vs_fp_peak_memory"):
        assert key in out
    assert set(out["methods"]) == set(methods)
    for row in out["methods"].values():
        assert tuple(row) == E.METHOD_KEYS
        assert row["host"] == HOST and row["repeats"] == 1 and row["timed"] is False
    assert out["ratios_host"] == HOST
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
    assert r["target-equal-epochs/seam"] == {"value": 10.0, "low": 10.0, "high": 10.0, "contended": False, "note": None}
    assert r["joint/seam"]["value"] is None and r["joint/seam"]["contended"]
    assert "load 9.00" in r["joint/seam"]["note"]
    assert r["joint/seam"]["contended_value"] == pytest.approx((2000 + 20) / 80, rel=1e-3)
    assert r["limpq/seam"]["value"] is None and "re-measure" in r["limpq/seam"]["note"]
    assert r["evaluation/seam"]["value"] is not None
    # a contended reference spoils every ratio
    methods["seam"]["record"]["contended"] = True
    r = E.efficiency_table(methods, projection=False)["ratios"]
    assert all(v["value"] is None for v in r.values())


def test_a_ratio_of_two_hosts_is_refused(methods):
    """The committed study's mistake: SEAM timed on one CPU, the joint search on another."""
    from mpqlib.study.timing import HostMismatch, same_host_ratio

    methods["joint"]["record"]["host"] = "Intel(R) Xeon(R) Processor (AVX512, 2 threads)"
    del methods["hawq"]["record"]["host"]  # a record that names no host
    r = E.efficiency_table(methods, projection=False)["ratios"]
    assert r["joint/seam"]["value"] is None and "different hosts" in r["joint/seam"]["note"]
    assert "contended_value" not in r["joint/seam"]  # no figure at all, not even flagged
    assert r["hawq/seam"]["value"] is None and "unknown" in r["hawq/seam"]["note"]
    assert r["limpq/seam"]["value"] == pytest.approx(0.6)
    with pytest.raises(HostMismatch, match="different hosts"):
        same_host_ratio(E.cost_of(methods["joint"]), E.cost_of(methods["seam"]))
    # the per-image cost of training the weights is not taken from the other host either
    c = E.per_image_seconds(methods, host=HOST)
    assert "unfrozen" not in c and "Xeon" in c["missing"]["unfrozen"]


def timing(seconds, host=HOST, alone=True, images=8000):
    return {"host": host, "hosts": [host], "repeats": len(seconds), "seconds": sorted(seconds)[len(seconds) // 2],
            "low": min(seconds), "high": max(seconds), "all_seconds": seconds, "measured_alone": alone,
            "same_policy": True, "images": images, "held_out_images": 0, "epochs": 8}


def test_timed_repeats_replace_the_protocol_record(methods):
    """The timing stage's median over its repeats is the cost; the ratio's range divides the extremes."""
    methods["seam"]["timing"] = timing([70.0, 72.0, 75.0])
    methods["limpq"]["timing"] = timing([50.0, 49.0, 52.0], images=6000)
    methods["joint"]["record"]["host"] = "elsewhere"  # the protocol's record on another CPU: not used
    out = E.efficiency_table(methods, projection=False)
    seam = out["methods"]["seam"]
    assert (seam["seconds"], seam["seconds_low"], seam["seconds_high"], seam["repeats"]) == (72.0, 70.0, 75.0, 3)
    assert seam["timed"] and seam["protocol_seconds"] == 80.0
    r = out["ratios"]["limpq/seam"]
    assert r["value"] == pytest.approx(50 / 72, abs=1e-3)
    assert r["low"] == pytest.approx(49 / 75, abs=1e-3) and r["high"] == pytest.approx(52 / 70, abs=1e-3)
    assert out["ratios"]["joint/seam"]["value"] is None
    methods["limpq"]["timing"] = timing([50.0, 49.0, 52.0], alone=False)
    assert E.efficiency_table(methods, projection=False)["ratios"]["limpq/seam"]["value"] is None


def test_the_frozen_backbone_cost_falls_back_to_a_clean_record(methods):
    """A contended 8-epoch target search must not leave the frozen-backbone factor unmeasured."""
    methods["target-equal-epochs"]["record"]["contended"] = True
    c = E.per_image_seconds(methods)
    assert c["frozen"] == pytest.approx(0.01) and c["from"]["frozen"] == "target-equal-steps"
    assert "frozen" not in c["missing"]
    p = E.imagenet_projection(c)
    assert p["archs"]["mobilenetv1"]["factors"]["joint/seam"]["frozen_backbone"] == pytest.approx(2)


def test_per_image_costs_take_scoring_out(methods):
    c = E.per_image_seconds(methods)
    assert c["seam"] == pytest.approx(0.01)
    assert c["frozen"] == pytest.approx(0.01)
    assert c["unfrozen"] == pytest.approx(0.02)
    assert c["limpq"] == pytest.approx(0.008)
    assert c["finetune"] == pytest.approx(0.015)
    assert c["forward"] == pytest.approx(0.01 / 3)
    assert c["missing"] == {} and c["from"]["frozen"] == "target-equal-epochs"
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
    r = E.imagenet_projection(costs, per_arch={"resnet18": {"unfrozen": 0.03}, "mobilenetv1": {}})
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
    costs = E.per_image_seconds(methods)
    own = {k: v for k, v in costs.items() if k not in ("missing", "from")}
    p = E.imagenet_projection(costs, per_arch={"mobilenetv1": own}, gpu_steps=[gpu])
    r18, mb = p["archs"]["resnet18"], p["archs"]["mobilenetv1"]
    assert r18["factors"]["joint/seam"]["frozen_backbone"] == pytest.approx(3)
    assert mb["factors"]["joint/seam"]["frozen_backbone"] == pytest.approx(2)
    assert "H200" in r18["per_image_from"] and "measured on this architecture" in mb["per_image_from"]


def test_an_architecture_measured_nowhere_is_not_projected(methods):
    """Without a GPU measurement, ResNet-18 would only repeat MobileNetV1's column: it is left out."""
    costs = E.per_image_seconds(methods)
    own = {k: v for k, v in costs.items() if k not in ("missing", "from")}
    p = E.imagenet_projection(costs, per_arch={"mobilenetv1": own})
    assert set(p["archs"]) == {"mobilenetv1"} and "resnet18" in p["not_projected"]


def test_the_projection_is_a_range_over_the_joint_search_length(methods):
    p = E.imagenet_projection(E.per_image_seconds(methods))
    mb = p["archs"]["mobilenetv1"]
    at30 = mb["ratios"]["joint/seam"]  # the point assumption, 30 epochs
    lo_e, hi_e = p["assumptions"]["joint_epochs_range"]["value"]
    assert mb["low"] == pytest.approx(at30 * lo_e / 30, rel=1e-4) and mb["high"] == pytest.approx(at30 * hi_e / 30, rel=1e-4)
    assert (p["low"], p["high"]) == (mb["low"], mb["high"])
    assert mb["joint_curve"]["30"] == pytest.approx(at30, rel=1e-4)
    epochs = sorted(int(e) for e in mb["joint_curve"])
    assert all(mb["joint_curve"][str(a)] < mb["joint_curve"][str(b)] for a, b in zip(epochs, epochs[1:]))


def test_the_committed_ratios_divide_times_of_one_host():
    """results/efficiency.json: every ratio it gives divides two costs of ``ratios_host``, each the
    median of the timing stage's repeats; a method of another host has no ratio."""
    from pathlib import Path

    doc = json.loads((Path(__file__).resolve().parents[1] / "results" / "efficiency.json").read_text())
    host = doc["ratios_host"]
    assert host and all("host" in m for m in doc["methods"].values())
    for key, r in doc["ratios"].items():
        name, ref = key.split("/")
        a, b = doc["methods"][name], doc["methods"][ref]
        if r["value"] is None:
            assert a["host"] != host or r["contended"] or a["seconds"] is None, key
            continue
        assert a["host"] == b["host"] == host, key
        assert r["value"] == pytest.approx(a["seconds"] / b["seconds"], abs=1e-3), key
        assert r["low"] <= r["value"] <= r["high"], key
    imagenet = doc["imagenet"]
    assert imagenet["low"] <= imagenet["high"]
