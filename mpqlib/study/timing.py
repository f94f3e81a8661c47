"""Chapter 4's costs measured on one host: every search the chapter times, run again back to back.

A cost ratio divides two wall-clock times, so both must come from one machine, measured alone.
The protocol's own search records do not promise that: they were computed wherever a step
happened to run (on two CPUs, in the committed study) and some shared the cores with other jobs.
So the study has a *timing* stage: each search of chapter 4's table is run again,
``Profile.timing.repeats`` times, one after another in one process, with nothing else computing
(the stage runs after every other step, never on parallel workers). A repeat the
:class:`~mpqlib.measure.Meter` flags as contended is refused and run again (up to
``attempts``); the cached record names its host (CPU model, capability, threads).

The accuracies stay those of the protocol's records: a timing repeat recomputes the same search
(same configuration, data and seed) only to measure it, and records whether it found the same
policy.

Ratios are taken only between records of one host (:func:`same_host_ratio` refuses otherwise).
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import ConfigError, TrainingError
from ..measure import LOAD_MARGIN, load_1min
from .profiles import Timing

if TYPE_CHECKING:  # pragma: no cover
    from .experiments import Experiments

# What a timing record keeps of the search's own record: its cost, not its policy or config.
TIMING_KEYS = ("seconds", "cpu_seconds", "cpu_utilisation", "threads", "load_start", "load_end", "load_max",
               "runqueue_share", "peak_memory_mb", "start_memory_mb", "images", "epochs", "held_out_images",
               "contended", "contention")


class HostMismatch(ConfigError):
    """Two times measured on different hosts (or on an unknown one) were about to be divided."""


class Contended(TrainingError):
    """Every attempt of a timing repeat shared the machine with other work."""


def host_label(host: Mapping | None) -> str | None:
    """A stored step's ``host`` (:func:`mpqlib._io.host`) as one label: CPU model, the CPU
    capability torch dispatched to and the threads; None where the record names no host."""
    if not host or not host.get("cpu"):
        return None
    return f"{host['cpu']} ({host.get('capability', '?')}, {host.get('threads', '?')} threads)"


def same_host_ratio(num: Mapping[str, Any], den: Mapping[str, Any], what: str = "ratio") -> float:
    """``num["seconds"] / den["seconds"]`` for two cost entries of one host; raises
    :class:`HostMismatch` when their ``host`` differs or is unknown: such a ratio mixes CPUs."""
    a, b = num.get("host"), den.get("host")
    if not a or not b or a != b:
        raise HostMismatch(f"{what}: the two times were measured on different hosts ({a or 'unknown'} vs "
                           f"{b or 'unknown'}); time both on one host (`mpq study run --parts timing`)")
    return num["seconds"] / den["seconds"]


def wait_for_quiet(threads: int, limit_s: float, poll_s: float = 5.0) -> float:
    """Wait until the 1-minute load average falls below what our own threads leave behind
    (``threads + LOAD_MARGIN - 1``), so that the load of earlier work does not flag the next
    repeat; at most ``limit_s``. Returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        load = load_1min()
        if load is None or load < threads + LOAD_MARGIN - 1:
            break
        time.sleep(poll_s)
    return round(time.monotonic() - start, 1)


def measure(ex: "Experiments", cfg, spec: str | None, bitops: int | None, policy, t: Timing, label: str) -> dict:
    """One timing repeat: the search ``cfg`` on ``spec`` under ``bitops``, run until a run is not
    contended (at most ``t.attempts``). Returns the step's result: the cost record, every
    attempt's time and contention, and whether the policy is the protocol's ``policy``."""
    import torch

    from ..search import search

    data = ex.data(spec) if spec else None
    val = ex.held_out_spec(cfg, spec)
    val_data = ex.data(val) if val else None
    attempts: list[dict] = []
    for _ in range(t.attempts):
        waited = wait_for_quiet(torch.get_num_threads(), t.quiet_wait_s)
        res = search(ex.model, data, bitops, cfg, progress=ex.p.progress, val_data=val_data)
        rec = res.record
        attempts.append({"seconds": rec["seconds"], "contention": rec.get("contention"), "waited_s": waited})
        if not rec.get("contended"):
            break
    else:
        if not t.accept_contended:
            raise Contended(f"timing of {label}: every one of {t.attempts} attempts shared the machine "
                            f"({'; '.join(a['contention'] or '' for a in attempts)}); stop the other jobs and run "
                            f"`mpq study run --profile {ex.p.name} --parts timing` again")
    return {"record": {k: rec[k] for k in TIMING_KEYS if k in rec}, "attempts": attempts,
            "same_policy": res.policy.bits == policy.bits}


def summary(records: list[Mapping]) -> dict | None:
    """Median and range of the timed repeats of one search (``records``: its stored timing steps),
    over the repeats measured alone where there is one (``measured_alone`` False: every repeat
    shared the machine, kept only by a profile that accepts it); None when none is stored yet."""
    if not records:
        return None
    quiet = [r for r in records if not r["record"].get("contended")]
    used = quiet or list(records)
    hosts = sorted({host_label(r.get("host")) or "unknown" for r in used})
    secs = [r["record"]["seconds"] for r in used]
    first = used[0]["record"]
    return {"host": hosts[0] if len(hosts) == 1 and hosts[0] != "unknown" else None, "hosts": hosts,
            "repeats": len(secs), "contended_repeats": len(records) - len(quiet),
            "seconds": round(statistics.median(secs), 3), "low": round(min(secs), 3), "high": round(max(secs), 3),
            "all_seconds": [round(s, 3) for s in secs], "measured_alone": bool(quiet),
            "same_policy": all(r.get("same_policy", True) for r in records),
            "images": first.get("images"), "held_out_images": first.get("held_out_images", 0),
            "epochs": first.get("epochs")}


__all__ = ["TIMING_KEYS", "Timing", "HostMismatch", "Contended", "host_label", "same_host_ratio", "wait_for_quiet",
           "measure", "summary"]
