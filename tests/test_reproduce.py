"""The reproducibility contract (mpqlib.study.reproduce): bitwise where the committed steps' numerics
(CPU capability and model) are the host's, within a measured tolerance elsewhere; host metadata in
every cached record."""

import json
import math

import pytest

from mpqlib.study import reproduce
from mpqlib._io import host
from mpqlib.study.experiments import Cache
from mpqlib.study.profiles import resolve

POLICY = {"a": [3, 3], "b": [2, 4], "c": [4, 2]}
AMD = reproduce.numerics({"capability": "AVX512", "cpu": "AMD EPYC"})


def judge(**changes):
    args = dict(host_numerics=AMD, run_numerics=AMD, committed_policy=POLICY, policy=dict(POLICY),
                committed_top1=92.24, top1_committed_policy=92.24, top1_own_policy=None,
                seed_range=(92.06, 92.24), tolerance=0.3)
    return reproduce.judge(**{**args, **changes})


def test_same_capability_demands_identity():
    assert judge().ok and judge().mode == "bitwise"
    v = judge(policy={**POLICY, "a": [2, 3]})
    assert not v.ok and "differs in 1 layers" in v.failures[0]
    assert not judge(top1_committed_policy=92.30).ok          # 0.06 pp: beyond float noise
    assert judge(top1_committed_policy=92.25).ok              # within the printed precision


@pytest.mark.parametrize("elsewhere", [{"capability": "AVX2", "cpu": "AMD EPYC"},
                                       {"capability": "AVX512", "cpu": "Intel(R) Xeon(R) Processor"}])
def test_other_numerics_are_judged_within_the_tolerance(elsewhere):
    # another capability, or the same capability on another CPU model (MKL and oneDNN dispatch by it)
    other = dict(host_numerics=reproduce.numerics(elsewhere), policy={**POLICY, "a": [2, 3]})
    v = judge(**other, top1_committed_policy=92.40, top1_own_policy=92.33)
    assert v.ok and v.mode == "statistical", v.failures
    assert not judge(**other, top1_committed_policy=92.60, top1_own_policy=92.2).ok     # QAT moved 0.36 > 0.3
    v = judge(**other, top1_committed_policy=92.24, top1_own_policy=91.70)             # a worse policy
    assert not v.ok and "outside the committed search seeds' range" in v.failures[0]
    assert not judge(**other, top1_own_policy=92.6).ok                                 # nor a better one


def test_unknown_run_numerics_are_statistical_and_a_changed_key_fails():
    assert judge(run_numerics=None).mode == "statistical"
    assert not judge(key_matches=False).ok


def test_the_run_numerics_come_from_records_then_host_json(tmp_path):
    p = resolve("smoke", {"cache_dir": str(tmp_path / "cache"), "results_dir": str(tmp_path / "results")})
    missing = tmp_path / "missing.json"
    assert reproduce.run_numerics(p, [missing]) is None
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "host.json").write_text(json.dumps({"capability": "AVX2", "cpu": "AMD EPYC"}))
    # records that predate the metadata (or are missing) fall back to host.json
    assert reproduce.run_numerics(p, [missing]) == "AVX2 on AMD EPYC"
    cache = Cache(tmp_path / "cache" / "resnet8")
    cache.get("qat", {"x": 1}, lambda: {"record": {"top1": 1.0}})
    one = cache.root / "qat" / f"{Cache.key('qat', {'x': 1})}.json"
    here = reproduce.numerics(host())
    assert reproduce.run_numerics(p, [one, missing]) == here                 # records win over host.json
    other = cache.put({**cache.record("qat", {"x": 3}, lambda: {"record": {}}),
                       "host": {**host(), "cpu": "Another CPU"}})
    two = cache.root / "qat" / f"{other['key']}.json"
    assert reproduce.run_numerics(p, [two]) == f"{host()['capability']} on Another CPU"
    # records from two hosts: mixed, so no bitwise promise
    assert reproduce.run_numerics(p, [one, two]).startswith("mixed: ")


def test_every_cached_record_carries_the_host(tmp_path):
    stored = Cache(tmp_path).get("qat", {"x": 2}, lambda: {"record": {}})
    h = stored["host"]
    assert {"capability", "cpu", "threads", "torch", "numpy", "env"} <= set(h)
    assert h["capability"] in {"DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256"}
    # the host is not part of the key: the same config is the same step on any machine
    assert Cache.key("qat", {"x": 2}) == stored["key"]


def test_committed_tolerance_is_measured_and_finite():
    if not reproduce.CROSS_CAPABILITY.exists():
        pytest.skip("results/pilots/cross_capability.json not measured in this checkout")
    doc = json.loads(reproduce.CROSS_CAPABILITY.read_text())
    deltas = doc["qat_deltas_pp"]
    rms = math.sqrt(sum(d * d for d in deltas) / len(deltas))
    assert math.isclose(doc["tolerance_pp"], math.ceil(300 * rms) / 100)
