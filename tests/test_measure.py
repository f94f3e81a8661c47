import subprocess
import sys
import time

import pytest
import torch

from mpqlib import measure
from mpqlib.measure import Meter, contention


def _busy(seconds: float) -> None:
    t = time.perf_counter()
    x = 0
    while time.perf_counter() - t < seconds:
        x += 1


def test_busy_loop_cpu_time_close_to_wall():
    with Meter() as m:
        _busy(0.4)
    assert m.seconds >= 0.4
    # one Python thread computing: it is always either on a core (CPU time) or waiting for one
    waited = 0.0 if m.runqueue_share is None else m.runqueue_share * m.seconds * m.threads
    assert m.cpu_seconds + waited == pytest.approx(m.seconds, rel=0.15)
    assert m.cpu_seconds > 0.02
    if m.runqueue_share is not None and m.cpu_seconds < 0.5 * m.seconds:
        assert m.contended  # a busy thread that got less than half a core was preempted: flagged
    assert m.cpu_utilisation == pytest.approx(m.cpu_seconds / m.seconds / m.threads)


def test_sleeping_block_has_low_cpu_share():
    with Meter(expected_utilisation=1.0) as m:
        time.sleep(0.3)
    assert m.seconds >= 0.3
    assert m.cpu_seconds < 0.1 * m.seconds
    assert m.cpu_utilisation < 0.1
    assert m.contended and "CPU share" in m.contention  # asked to expect a CPU-bound block


def test_record_fields_and_types():
    with Meter() as m:
        torch.ones(1000, 1000).sum()
    r = m.record()
    for k in ("seconds", "cpu_seconds", "cpu_utilisation", "threads", "load_start", "load_end", "load_max",
              "runqueue_share", "peak_memory_mb", "cuda_peak_mb", "contended", "contention"):
        assert k in r
    assert r["threads"] == torch.get_num_threads()
    assert r["peak_memory_mb"] > 10
    assert isinstance(r["contended"], bool)
    assert (r["contention"] is None) == (not r["contended"])
    if not torch.cuda.is_available():
        assert r["cuda_peak_mb"] is None


@pytest.mark.slow
def test_peak_memory_sees_a_temporary_allocation():
    # In a fresh interpreter: inside a long pytest run the allocator may hand back pages that
    # are still resident from earlier tests, and the process's RSS would not grow at all.
    code = """
import time, torch
from mpqlib.measure import Meter
with Meter() as base:
    time.sleep(0.1)
with Meter() as m:
    x = torch.ones(64, 2 ** 20)  # 64 Mi float32 = 256 MiB
    x.add_(1)
    time.sleep(0.1)
    del x
print(m.peak_mb - base.peak_mb)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout.split()[-1]) > 200


def test_contention_rule_on_synthetic_inputs():
    assert contention(load_max=1.9, threads=2) is None
    assert contention(load_max=2.5, threads=2) is None  # exactly at the margin: not yet
    assert "load" in contention(load_max=2.6, threads=2)
    assert "load" in contention(load_max=1.6, threads=1)  # a neighbour on the second vCPU
    assert contention(load_max=None, threads=2) is None  # unknown load: no verdict from load
    assert "waited" in contention(load_max=1.0, threads=2, runqueue_share=0.3)
    assert contention(load_max=1.0, threads=2, runqueue_share=0.05) is None
    # the CPU-share criterion only with an expectation
    assert contention(load_max=1.0, threads=2, utilisation=0.2) is None
    assert "CPU share" in contention(load_max=1.0, threads=2, utilisation=0.2, expected_utilisation=0.9)
    assert contention(load_max=1.0, threads=2, utilisation=0.6, expected_utilisation=0.9) is None
    both = contention(load_max=5.0, threads=2, runqueue_share=0.5)
    assert "load" in both and "waited" in both


def test_meter_flags_a_busy_machine(monkeypatch):
    """The load the meter reads during the run decides the flag (load faked; the rule is the real one)."""
    loads = iter([0.5] + [6.0] * 1000)
    monkeypatch.setattr(measure, "load_1min", lambda: next(loads))
    with Meter() as m:
        time.sleep(0.05)
    assert m.load_start == 0.5 and m.load_max == 6.0
    assert m.contended and "load 6.00" in m.contention
    assert m.record()["contended"] is True
