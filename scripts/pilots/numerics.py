#!/usr/bin/env python
"""Numerics pilot: which CPU settings make a search and a QAT step bitwise identical across the
ATen CPU capabilities (default / AVX2 / AVX-512), and at what speed cost.

Each setting runs in a fresh interpreter (the capabilities are read once, at import) with the
profile's fixed thread count. The workload holds the kernels of the study's two kinds of step
on ResNet-20: SGD steps of the full-precision network (a search's supernet) and of its
LSQ-quantized twin (QAT). A setting is *portable* when every capability gives the same hashes
of the weights after the steps and of the test logits; its cost is the CPU time of the steps
against the native setting on this host's own capability. Writes results/pilots/numerics.json.

    python scripts/pilots/numerics.py                 # all settings x capabilities, 2 rounds
    python scripts/pilots/numerics.py --rounds 1 --settings native portable
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CAPABILITIES = ("default", "avx2", "avx512")
# A setting: environment variables, and whether torch's oneDNN (mkldnn) path is used.
SETTINGS = {
    "native": ({}, True),
    "onednn-sse41+mkl-cbwr": ({"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"}, True),
    "onednn-off+mkl-cbwr": ({"MKL_CBWR": "COMPATIBLE"}, False),
}
# What an AVX2 host sees: the capability caps of every library that dispatches on the CPU.
HOST_CAPS = {"avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
             "default": {"ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}, "avx512": {}}


def digest(t) -> str:
    return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:16]


def worker(args) -> dict:
    """``args.steps`` SGD steps of the full-precision ResNet-20 (the kernels of a search's supernet)
    and of its LSQ-quantized twin under the committed mixed policy (the kernels of QAT), on real
    Fashion-MNIST batches; hashes of the weights after the steps and of the test logits, and the
    CPU time of the steps."""
    import torch

    torch.backends.mkldnn.enabled = args.mkldnn
    torch.set_num_threads(args.threads)
    from mpqlib import data as D
    from mpqlib.policy import Policy
    from mpqlib.quant import quantize
    from mpqlib.train import load_checkpoint

    torch.manual_seed(0)
    model, _ = load_checkpoint(REPO / "checkpoints/resnet20-fmnist.pt")
    train, test = D.load("fmnist", "train"), D.load("fmnist", "test")
    policies = json.loads((REPO / "results/policies.json").read_text())
    policy = Policy.from_dict(next(v for v in policies.values() if v.get("provenance", {}).get("method") == "seam"))
    out = {"capability": torch.backends.cpu.get_cpu_capability(), "mkldnn": torch.backends.mkldnn.enabled}
    for kind, net in (("fp", model), ("qat", quantize(model, policy, calibration=train.x[:64]))):
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        t0 = time.process_time()  # CPU time of all threads: robust to a shared machine, unlike wall time
        for step in range(args.steps):
            x, y = train.x[step * 128:(step + 1) * 128], train.y[step * 128:(step + 1) * 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
        out[f"{kind}_cpu_s"] = round(time.process_time() - t0, 3)
        net.eval()
        with torch.no_grad():
            out[f"{kind}_logits"] = digest(net(test.x[:512]))
        out[f"{kind}_weights"] = digest(torch.cat([v.flatten().double() for v in net.state_dict().values()
                                                   if v.is_floating_point()]))
    return out


def run_one(setting: str, capability: str, args) -> dict:
    env_extra, mkldnn = SETTINGS[setting]
    env = {**os.environ, **HOST_CAPS[capability], **env_extra, "ATEN_CPU_CAPABILITY": capability,
           "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--worker", "--steps", str(args.steps), "--threads", str(args.threads)] + ([] if mkldnn else ["--no-mkldnn"])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"{setting}/{capability} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-mkldnn", dest="mkldnn", action="store_false", help=argparse.SUPPRESS)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--rounds", type=int, default=2, help="timing rounds (settings interleaved)")
    ap.add_argument("--steps", type=int, default=20, help="SGD steps of each kind (batch 128)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "results/pilots/numerics.json"))
    ap.add_argument("--summarise", metavar="LOG", help="summarise the runs printed in LOG instead of running")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    runs: dict[tuple[str, str], list[dict]] = parse_log(args.summarise) if args.summarise else {}
    for r in range(0 if args.summarise else args.rounds):
        for setting in args.settings:
            for cap in CAPABILITIES:
                res = run_one(setting, cap, args)
                runs.setdefault((setting, cap), []).append(res)
                print(f"round {r}  {setting:24s} {cap:8s} FP {res['fp_cpu_s']:6.1f} cpu-s  QAT {res['qat_cpu_s']:6.1f} cpu-s  "
                      f"weights {res['fp_weights']} {res['qat_weights']}", flush=True)
    summary = summarise(runs)
    import torch

    from mpqlib._io import cpu_model, write_json

    write_json(args.out, {"workload": {"model": "resnet20", "policy": "the committed SEAM policy", "batch": 128,
                                       "steps": args.steps, "threads": args.threads, "rounds": args.rounds,
                                       "log": args.summarise and Path(args.summarise).name},
                          "host": {"cpu": cpu_model(), "capability":
                                   torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__},
                          "settings": {k: {"env": SETTINGS[k][0], "mkldnn": SETTINGS[k][1]} for k in summary},
                          "host_caps": HOST_CAPS, "summary": summary})
    print(json.dumps(summary, indent=1))
    return 0


LINE = re.compile(r"round (\d+)\s+(\S+)\s+(\S+)\s+FP\s+([\d.]+) cpu-s\s+QAT\s+([\d.]+) cpu-s\s+weights (\w+) (\w+)")


def parse_log(path: str) -> dict[tuple[str, str], list[dict]]:
    """The runs a previous invocation printed (a run stopped early keeps what it measured)."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for m in LINE.finditer(Path(path).read_text()):
        _, setting, cap, fp, qat, wf, wq = m.groups()
        runs.setdefault((setting, cap), []).append({"fp_cpu_s": float(fp), "qat_cpu_s": float(qat),
                                                    "fp_weights": wf, "qat_weights": wq})
    return runs


def summarise(runs: dict[tuple[str, str], list[dict]]) -> dict:
    """Per setting: identical weights across the capabilities measured, and CPU cost against
    the native setting on AVX-512 (the full run's)."""
    cpu = lambda rows: statistics.median(x["fp_cpu_s"] + x["qat_cpu_s"] for x in rows)  # noqa: E731
    native = cpu(runs[("native", "avx512")]) if ("native", "avx512") in runs else None
    summary = {}
    for setting in dict.fromkeys(s for s, _ in runs):
        rows = {c: runs[(setting, c)] for c in CAPABILITIES if (setting, c) in runs}
        summary[setting] = {
            "capabilities_measured": list(rows),
            "identical_across_capabilities": (len({(r[0]["fp_weights"], r[0]["qat_weights"]) for r in rows.values()}) == 1
                                              if len(rows) > 1 else None),
            "cpu_seconds": {c: cpu(r) for c, r in rows.items()},
            "cost_vs_native_avx512": {c: round(cpu(r) / native, 2) for c, r in rows.items()} if native else None,
        }
    return summary


if __name__ == "__main__":
    sys.exit(main())
