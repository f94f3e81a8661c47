"""A lean search: how much of a short proxy search is start-up, and what a search step costs in
memory against a full-precision training step of the same model and batch.

    python benchmarks/bench_search_lean.py [--checkpoint checkpoints/resnet20-fmnist.pt]
        [--threads 2] [--batch 128] [--data mnist] --out lean.json

Time: one SEAM search of 1 epoch on the proxy (2,400 MNIST images, batch 128), run through the
public ``search`` API; the pieces are timed by wrapping the functions the search calls:

* ``startup``: supernet construction and calibration (every candidate's step size
  initialised) -- ``supernet(...)``, the issue's definition of start-up;
* ``head``: the search head's initialisation pass over the proxy (SEAM's L-GM centroids);
* ``steps``: the search epoch (``fit``); ``other``: the rest (cost model, ILP readout, record).

Each piece is timed in wall seconds and in process CPU seconds (all threads). On a shared
machine the wall split is distorted by other jobs, so ``startup_fraction`` = startup / whole
search is taken from CPU time (goal <= 0.10); the wall-time fraction and the 1-minute load
average at the end are reported beside it.

Memory: each step is measured in a fresh subprocess with ``torch.profiler`` memory profiling
(the CPU allocator is not visible to tracemalloc): peak of live tensor bytes during one step =
bytes of the tensors alive at its start that it touches (parameters, buffers, optimiser state,
the batch) + the largest excess of allocations over frees during the step. The full-precision
step trains every weight (SGD with momentum, train mode); the search step is SEAM's (frozen
backbone, mixing logits and all candidates' step sizes trained by Adam, cross-entropy on the
model's logits + the BitOps hinge). Each follows one warm-up step. The subprocess's peak RSS
is printed too, for reference (it includes the Python and torch runtime and the set-up).
``search_vs_fp_peak_memory`` = search peak / FP peak (goal <= 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpqlib import data as D  # noqa: E402
from mpqlib._io import machine, write_json  # noqa: E402
from mpqlib.cost import budget as parse_budget, cost_model  # noqa: E402
from mpqlib.train import load_checkpoint  # noqa: E402


# --------------------------------------------------------------------------- time split
def clocks() -> tuple[float, float]:
    """(wall seconds, process CPU seconds) now."""
    return time.perf_counter(), time.process_time()


@contextlib.contextmanager
def timing(module, name: str, seconds: dict, key: str):
    """Add the (wall, CPU) time of every call of ``module.name`` to ``seconds[key]`` within the block."""
    real = getattr(module, name)

    def timed(*args, **kwargs):
        start = clocks()
        try:
            return real(*args, **kwargs)
        finally:
            wall, cpu = seconds.get(key, (0.0, 0.0))
            now = clocks()
            seconds[key] = (wall + now[0] - start[0], cpu + now[1] - start[1])

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, real)


def time_split(model, proxy, budget: int, batch: int) -> dict:
    """Wall time of a 1-epoch SEAM search on ``proxy``, split into start-up, head, steps and other."""
    import mpqlib.search.differentiable as diff
    from mpqlib.search import search

    seconds: dict[str, tuple[float, float]] = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(timing(diff, "supernet", seconds, "startup"))
        stack.enter_context(timing(diff, "fit", seconds, "steps"))
        for name in ("features", "_build_head"):  # the head's set-up: starting features, then the head
            if hasattr(diff, name):
                stack.enter_context(timing(diff, name, seconds, "head"))
        start = clocks()
        result = search(model, proxy, budget, "seam", epochs=1, batch_size=batch, progress=False)
        end = clocks()
    out = {"steps": result.record.get("steps"), "images": result.record.get("images"), "load_1min": os.getloadavg()[0]}
    for i, clock in enumerate(("wall", "cpu")):
        total = end[i] - start[i]
        split = {k: round(seconds.get(k, (0.0, 0.0))[i], 3) for k in ("startup", "head", "steps")}
        split["other"] = round(total - sum(split.values()), 3)
        out[clock] = {"seconds": round(total, 3), "split": split, "startup_fraction": round(split["startup"] / total, 4)}
    out["startup_fraction"] = out["cpu"]["startup_fraction"]
    return out


# --------------------------------------------------------------------------- memory of one step
def peak_live_bytes(run) -> int:
    """Peak of live tensor bytes while ``run()`` executes, from torch.profiler's memory timeline."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        run()
    live = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        kind = action.name
        if kind in ("PREEXISTING", "CREATE"):
            live += size
        elif kind == "DESTROY":
            live -= size
        peak = max(peak, live)
    return peak


def step_memory(kind: str, checkpoint: str, data: str, batch: int, threads: int) -> dict:
    """Peak memory of one ``kind`` ('fp' or 'search') step; meant to run in a fresh process."""
    from mpqlib.search.supernet import arch_parameters, expected_bitops, step_parameters, supernet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, _ = load_checkpoint(checkpoint)
    x, y = D.take(D.search_data(data), batch, 0)
    if kind == "fp":
        net = model.train()
        opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

        def loss_of():
            return F.cross_entropy(net(x), y)
    else:
        budget = parse_budget(cost_model(model), "w3a3")
        net, mixed = supernet(model.eval(), calibration=x)
        for p in net.parameters():
            p.requires_grad_(False)
        params = arch_parameters(mixed) + step_parameters(net)
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.Adam(params, lr=1e-3)

        def loss_of():
            return F.cross_entropy(net(x), y) + F.relu(expected_bitops(mixed) / budget - 1)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_of().backward()
        opt.step()

    step()  # warm-up: optimiser state, lazy initialisation
    peak = peak_live_bytes(step)
    return {"kind": kind, "peak_mb": round(peak / 2 ** 20, 1),
            "process_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def measure_in_subprocess(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--measure", kind, "--checkpoint", args.checkpoint, "--data", args.data,
           "--batch", str(args.batch), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "resnet20-fmnist.pt"))
    ap.add_argument("--data", default="mnist", help="proxy search data (default: 2,400 MNIST images)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the numbers to this JSON file")
    ap.add_argument("--measure", choices=("fp", "search"), default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(step_memory(args.measure, args.checkpoint, args.data, args.batch, args.threads)))
        return
    torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.checkpoint)
    proxy = D.search_data(args.data)
    budget = parse_budget(cost_model(model), "w3a3")
    print(f"{meta.get('arch', 'model')} on {args.data} ({len(proxy):,} images), batch {args.batch}, "
          f"{torch.get_num_threads()} threads; {machine()}", flush=True)
    times = time_split(model, proxy, budget, args.batch)
    for clock in ("wall", "cpu"):
        t = times[clock]
        s = t["split"]
        print(f"1-epoch proxy search, {clock} time: {t['seconds']:.2f} s = start-up {s['startup']:.2f} s (supernet + "
              f"calibration) + head {s['head']:.2f} s + steps {s['steps']:.2f} s ({times['steps']} steps) + other "
              f"{s['other']:.2f} s; start-up share {t['startup_fraction']:.3f}")
    print(f"startup_fraction (CPU time): {times['startup_fraction']:.3f} (goal <= 0.10); load average at the end "
          f"{times['load_1min']:.1f}", flush=True)
    fp, srch = measure_in_subprocess("fp", args), measure_in_subprocess("search", args)
    ratio = round(srch["peak_mb"] / fp["peak_mb"], 3)
    print(f"peak live tensor memory of one step (torch.profiler): FP training {fp['peak_mb']:.1f} MB, "
          f"search {srch['peak_mb']:.1f} MB")
    print(f"search_vs_fp_peak_memory: {ratio:.2f} (goal <= 2); process peak RSS: FP {fp['process_peak_rss_mb']:.0f} MB, "
          f"search {srch['process_peak_rss_mb']:.0f} MB")
    if args.out:
        write_json(args.out, {"machine": machine(), "model": meta.get("arch"), "data": args.data, "images": len(proxy),
                              "batch": args.batch, "threads": torch.get_num_threads(), "search": times,
                              "startup_fraction": times["startup_fraction"],
                              "memory_method": "torch.profiler memory timeline, one step after a warm-up step, "
                                               "fresh subprocess per measurement",
                              "fp_step": fp, "search_step": srch, "search_vs_fp_peak_memory": ratio})


if __name__ == "__main__":
    main()
