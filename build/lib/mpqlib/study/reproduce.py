"""The study's reproducibility contract, and the check that enforces it.

A step's last bits depend on the CPU kernels torch dispatches to: the same search or QAT run sums
in another order under AVX2 than under AVX-512, and training amplifies the difference (a search
can end in another policy, a QAT run a few tenths of a point away). The contract has two tiers:

* **Bitwise** on a host with the numerics of the committed step: the same CPU capability
  (``torch.backends.cpu.get_cpu_capability()``) *and* the same CPU model, since MKL and oneDNN
  choose their kernels by vendor and model as well (an Intel AVX-512 host finds another policy
  than the AMD AVX-512 host of the run). There a search from an empty cache gives the committed
  policy, and the QAT of that policy the committed top-1 (to the 0.02 pp of its printed precision).
* **Statistical** on any other x86-64 host: the committed policy's QAT lands within
  ``tolerance_pp`` of the committed top-1, and the search's own policy (which may differ in a few
  layers) trains to a top-1 inside the committed search seeds' range widened by the same
  tolerance: as good as another search seed's policy, no better, no worse. ``tolerance_pp`` is
  measured, not chosen: ``scripts/pilots/cross_capability.py`` reruns the committed QAT steps
  under each capability and stores 3x the root-mean-square of the differences
  (``results/pilots/cross_capability.json``).

Portable bitwise settings were measured too (``scripts/pilots/numerics.py``,
``results/pilots/numerics.json``); the book's reproduce page gives both measurements.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .._io import host, read_json
from .profiles import REPO, Profile, resolve

EXACT_PP = 0.02          # the same QAT step on the same numerics: equal to the printed precision
CROSS_CAPABILITY = REPO / "results" / "pilots" / "cross_capability.json"
RUN_HOST = "host.json"   # in the results directory: where the committed run ran


@dataclass
class Verdict:
    """What the check found; ``ok`` decides the exit status."""
    mode: str                                   # "bitwise" or "statistical"
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def numerics(h: dict) -> str:
    """A host's numerics as one label: its CPU capability and CPU model (``mpqlib._io.host()``)."""
    return f"{h['capability']} on {h.get('cpu') or 'an unknown CPU'}"


def run_numerics(p: Profile, records: list[Path]) -> str | None:
    """Where the committed steps stored in ``records`` ran, as a :func:`numerics` label: from their
    host metadata, else from the results directory's ``host.json`` (written for runs whose records
    predate the metadata); ``mixed: ...`` when they ran on hosts with different numerics, None when
    nothing says."""
    labels = {numerics(rec["host"]) for rec in (read_json(f) for f in records if f.exists()) if "host" in rec}
    if len(labels) > 1:
        return "mixed: " + " + ".join(sorted(labels))
    if labels:
        return labels.pop()
    path = p.path(RUN_HOST)
    return numerics(read_json(path)) if path.exists() else None


def tolerance_pp(path: Path = CROSS_CAPABILITY) -> float:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run scripts/pilots/cross_capability.py to measure the "
                                "tolerance of QAT results across CPU capabilities")
    return float(read_json(path)["tolerance_pp"])


def judge(*, host_numerics: str, run_numerics: str | None, committed_policy: dict, policy: dict,
          committed_top1: float, top1_committed_policy: float, top1_own_policy: float | None,
          seed_range: tuple[float, float], tolerance: float, key_matches: bool = True) -> Verdict:
    """The contract as a pure function of what was measured (see the module docstring).

    ``top1_committed_policy``: QAT of the committed policy here; ``top1_own_policy``: QAT of the
    policy the search found here (None when it equals the committed one); ``seed_range``: the
    committed top-1 (QAT seed 0) over the committed search seeds."""
    same_numerics = run_numerics is not None and host_numerics == run_numerics
    v = Verdict("bitwise" if same_numerics else "statistical")
    if not key_matches:
        v.failures.append("the search's configuration changed since the full run (another cache key): rerun the "
                          "full profile")
    differing = sorted(n for n, b in policy.items() if committed_policy.get(n) != b)
    qat_delta = top1_committed_policy - committed_top1
    v.lines.append(f"this host: {host_numerics}; the committed steps': {run_numerics or 'unknown'}: "
                   f"{v.mode} contract")
    v.lines.append(f"search: policy differs from the committed one in {len(differing)} of {len(policy)} layers"
                   + (f" ({', '.join(differing[:4])}{', ...' if len(differing) > 4 else ''})" if differing else ""))
    v.lines.append(f"QAT of the committed policy: {top1_committed_policy:.2f}% (committed {committed_top1:.2f}%, "
                   f"difference {qat_delta:+.2f} pp)")
    if same_numerics:
        if differing:
            v.failures.append(f"on the committed steps' own numerics the search must give the committed policy; it differs "
                              f"in {len(differing)} layers")
        if abs(qat_delta) > EXACT_PP:
            v.failures.append(f"on the committed steps' own numerics the QAT top-1 must be the committed one within "
                              f"{EXACT_PP} pp; it is {qat_delta:+.2f} pp away")
        return v
    if abs(qat_delta) > tolerance:
        v.failures.append(f"the committed policy's QAT differs by {qat_delta:+.2f} pp, beyond the measured "
                          f"cross-host tolerance of {tolerance:.2f} pp")
    if differing and top1_own_policy is not None:
        lo, hi = seed_range[0] - tolerance, seed_range[1] + tolerance
        v.lines.append(f"QAT of this host's policy: {top1_own_policy:.2f}% (committed search seeds "
                       f"{seed_range[0]:.2f}-{seed_range[1]:.2f}%, accepted {lo:.2f}-{hi:.2f}%)")
        if not lo <= top1_own_policy <= hi:
            v.failures.append(f"this host's policy trains to {top1_own_policy:.2f}%, outside the committed search "
                              f"seeds' range widened by the tolerance ({lo:.2f}-{hi:.2f}%)")
    return v


def check(profile: str | Profile = "full", overrides: dict | None = None, model: str | None = None,
          threads: int = 2, policy_name: str = "seam-mnist") -> int:
    """Recompute one committed number from an empty cache and judge it (exit status: 0 pass, 1 fail,
    2 nothing to check). Prints what it measured."""
    from .experiments import Experiments, load_runs

    p = resolve(profile, overrides)
    model = model or next(iter(p.models))
    rows = load_runs(p)
    if not rows:
        print(f"study check: {p.path('runs.json')} holds no runs yet; nothing to check", file=sys.stderr)
        return 2
    budget = p.main_budget(model)
    mine = [r for r in rows if (r["model"], r["budget"], r["policy"], r["qat_seed"]) == (model, budget, policy_name, 0)]
    row = next((r for r in mine if r["search_seed"] == 0), None)
    if row is None:
        print(f"study check: no committed {policy_name} run (search seed 0, QAT seed 0) for {model} at {budget}",
              file=sys.stderr)
        return 2
    committed = json.loads(p.path("policies.json").read_text())[row["search"]]["bits"]
    seed_top1 = [r["top1"] for r in mine]
    # the numerics of the two committed steps the check recomputes (the search and its QAT)
    mine_here = numerics(host())
    theirs = run_numerics(p, [p.cache_path() / model / kind / f"{row[kind]}.json" for kind in ("search", "qat")])
    elsewhere = mine_here != theirs
    with tempfile.TemporaryDirectory(prefix="mpq-reproduce-") as cache:
        ex = Experiments(p, model, cache_dir=cache, threads=threads)
        t0 = time.perf_counter()
        res = ex.search(policy_name, budget, 0)
        print(f"search: {time.perf_counter() - t0:.0f} s, {res.record['bitops']:,} BitOps")
        policy = res.policy.to_dict()["bits"]
        from ..policy import Policy

        committed_policy = Policy.from_dict(json.loads(p.path("policies.json").read_text())[row["search"]])
        t0 = time.perf_counter()
        top1_committed = ex.qat(committed_policy, 0)["top1"]
        print(f"QAT of the committed policy: {time.perf_counter() - t0:.0f} s")
        own = None
        if policy != committed and elsewhere:
            own = ex.qat(res.policy, 0)["top1"]
        verdict = judge(host_numerics=mine_here, run_numerics=theirs, committed_policy=committed, policy=policy,
                        committed_top1=row["top1"], top1_committed_policy=top1_committed, top1_own_policy=own,
                        seed_range=(min(seed_top1), max(seed_top1)),
                        tolerance=tolerance_pp() if elsewhere else math.nan,
                        key_matches=res.record["cache_key"] == row["search"])
    for line in verdict.lines:
        print(line)
    for f in verdict.failures:
        print(f"study check: FAIL: {f}", file=sys.stderr)
    if verdict.ok:
        print(f"study check: {model} at {budget}: reproduced under the {verdict.mode} contract")
    return 0 if verdict.ok else 1
