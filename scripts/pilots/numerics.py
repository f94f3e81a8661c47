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
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    runs: dict[tuple[str, str], list[dict]] = {}
    for r in range(args.rounds):
        for setting in args.settings:
            for cap in CAPABILITIES:
                res = run_one(setting, cap, args)
                runs.setdefault((setting, cap), []).append(res)
                print(f"round {r}  {setting:24s} {cap:8s} FP {res['fp_cpu_s']:6.1f} cpu-s  QAT {res['qat_cpu_s']:6.1f} cpu-s  "
                      f"weights {res['fp_weights']} {res['qat_weights']}", flush=True)
    native = statistics.median(x["fp_cpu_s"] + x["qat_cpu_s"] for x in runs[("native", "avx512")]) \
        if ("native", "avx512") in runs else None
    summary = {}
    for setting in args.settings:
        rows = {cap: runs[(setting, cap)] for cap in CAPABILITIES}
        same = lambda f: len({rows[c][0][f] for c in CAPABILITIES}) == 1  # noqa: E731
        stable = all(len({(x["fp_weights"], x["qat_weights"]) for x in rows[c]}) == 1 for c in CAPABILITIES)
        secs = {c: statistics.median(x["fp_cpu_s"] + x["qat_cpu_s"] for x in rows[c]) for c in CAPABILITIES}
        summary[setting] = {
            "identical_across_capabilities": {f: same(f) for f in ("fp_weights", "fp_logits", "qat_weights",
                                                                    "qat_logits")},
            "repeatable_within_capability": stable,
            "cpu_seconds": secs,
            "cost_vs_native_avx512": {c: round(s / native, 2) for c, s in secs.items()} if native else None,
        }
    from mpqlib._io import write_json
    import platform
    import torch

    write_json(args.out, {"workload": {"model": "resnet20", "policy": "the committed SEAM policy", "batch": 128,
                                       "steps": args.steps, "threads": args.threads, "rounds": args.rounds},
                          "host": {"cpu": platform.processor() or _cpu_model(), "capability":
                                   torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__},
                          "settings": {k: {"env": SETTINGS[k][0], "mkldnn": SETTINGS[k][1]} for k in args.settings},
                          "host_caps": HOST_CAPS, "summary": summary})
    print(json.dumps(summary, indent=1))
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
