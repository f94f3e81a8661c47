#!/usr/bin/env python
"""Measure how far the committed full-run numbers move on another CPU capability.

For each capability (a fresh interpreter with ``ATEN_CPU_CAPABILITY`` and the oneDNN / MKL
instruction caps an AVX2 or a pre-AVX host would have), from an empty cache: the QAT of the
committed ResNet-20 SEAM-on-MNIST policy (search seed 0, main budget) with the given QAT seeds,
compared with the committed per-seed top-1; and the search itself (seed 0), compared with the
committed policy layer by layer, with the QAT top-1 of the policy it found. The run's own
capability is the control: there every difference must be zero.

The tolerance of the statistical contract (``mpqlib.study.reproduce``) is 3x the root-mean-square of
the QAT differences on the other capabilities. Writes results/pilots/cross_capability.json.

    python scripts/pilots/cross_capability.py                          # avx2, default; seeds 0-3
    python scripts/pilots/cross_capability.py --capabilities avx512 --qat-seeds 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from numerics import HOST_CAPS  # noqa: E402  (one definition of what each host's libraries see)


def worker(args) -> dict:
    import torch

    from mpqlib.study.experiments import Experiments, load_runs
    from mpqlib.policy import Policy
    from mpqlib.study.profiles import resolve

    p = resolve("full")
    model = "resnet20"
    budget = p.main_budget(model)
    rows = [r for r in load_runs(p) if (r["model"], r["budget"], r["policy"], r["search_seed"]) ==
            (model, budget, "seam-mnist", 0)]
    committed_top1 = {r["qat_seed"]: r["top1"] for r in rows}
    committed = json.loads(p.path("policies.json").read_text())[rows[0]["search"]]
    out = {"capability": torch.backends.cpu.get_cpu_capability(), "qat": {}, "search": None}
    with tempfile.TemporaryDirectory() as cache:
        ex = Experiments(p, model, cache_dir=cache, threads=args.threads)
        for s in args.qat_seeds:
            top1 = ex.qat(Policy.from_dict(committed), s)["top1"]
            out["qat"][s] = {"top1": top1, "committed": committed_top1[s], "delta": round(top1 - committed_top1[s], 4)}
            print(f"  {out['capability']} QAT seed {s}: {top1:.2f} (committed {committed_top1[s]:.2f})", file=sys.stderr)
        if args.search:
            res = ex.search("seam-mnist", budget, 0)
            bits = res.policy.to_dict()["bits"]
            differing = {n: [b, committed["bits"][n]] for n, b in bits.items() if committed["bits"][n] != b}
            own = ex.qat(res.policy, 0)["top1"] if differing else committed_top1[0]
            out["search"] = {"layers_differing": len(differing), "layers": len(bits), "differing": differing,
                             "top1_own_policy": own, "committed_top1": committed_top1[0]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--capabilities", nargs="+", default=["avx2", "default"], choices=list(HOST_CAPS))
    ap.add_argument("--qat-seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    ap.add_argument("--no-search", dest="search", action="store_false")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "results/pilots/cross_capability.json"))
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    from mpqlib._io import host, read_json, write_json

    out_path = Path(args.out)
    result = read_json(out_path) if out_path.exists() else {"runs": {}}
    for cap in args.capabilities:
        env = {**os.environ, **HOST_CAPS[cap], "ATEN_CPU_CAPABILITY": cap, "OMP_NUM_THREADS": str(args.threads)}
        cmd = [sys.executable, __file__, "--worker", "--threads", str(args.threads), "--qat-seeds",
               *map(str, args.qat_seeds)] + ([] if args.search else ["--no-search"])
        run = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
        if run.returncode != 0:
            raise SystemExit(f"{cap} failed:\n{run.stderr[-3000:]}")
        result["runs"][cap] = {**json.loads(run.stdout.strip().splitlines()[-1]), "env": HOST_CAPS[cap]}
        print(json.dumps(result["runs"][cap]), flush=True)
    h = host()
    result["host"] = {k: h[k] for k in ("capability", "cpu", "torch", "threads")}
    native = h["capability"]
    deltas = [q["delta"] for cap, r in result["runs"].items() if r["capability"] != native for q in r["qat"].values()]
    if deltas:
        rms = math.sqrt(sum(d * d for d in deltas) / len(deltas))
        result["qat_deltas_pp"] = deltas
        result["rms_pp"] = round(rms, 4)
        result["max_abs_pp"] = max(abs(d) for d in deltas)
        result["tolerance_pp"] = math.ceil(300 * rms) / 100  # 3x RMS, rounded up to 0.01 pp
    write_json(out_path, result)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
