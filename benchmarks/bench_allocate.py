"""Time :func:`mpqlib.allocate.allocate` and :func:`~mpqlib.allocate.sweep` on a ResNet-50-sized problem.

    python benchmarks/bench_allocate.py [--repeats 20] [--seed 0]

54 searched layers, 25 choices each (w, a in {2..6}), MACs log-uniform in 1e6..1e8, bundled CBC.
Two cost tables: ``random`` (uniform positive, as asked) and ``structured`` (a per-layer sensitivity
times a noise term that falls with the bit-widths, like Hessian-trace x quantization-error costs),
the harder one for the solver. Prints the numbers beside the goals; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time

import numpy as np
import pulp

from mpqlib.allocate import allocate, sweep

GOAL_SOLVE_S = 0.1  # median per solve (LIMPQ reports 0.35 s)
GOAL_SWEEP_S = 2.0  # 20-budget sweep, total
CHOICES = list(itertools.product(range(2, 7), repeat=2))


def instance(seed: int, n_layers: int = 54) -> dict:
    """Layers, MACs and parameter counts shaped like ResNet-50's 3x3/1x1 convolutions."""
    rng = np.random.default_rng(seed)
    macs = [int(m) for m in np.exp(rng.uniform(np.log(1e6), np.log(1e8), n_layers))]
    pixels = rng.choice([49, 196, 784, 3136], n_layers)  # output H*W per stage
    params = [max(1, m // int(p)) for m, p in zip(macs, pixels)]
    sens = np.exp(rng.normal(0.0, 1.5, n_layers))
    noise = np.array([4.0**-w + 0.5 * 4.0**-a for w, a in CHOICES])
    return {"layers": [f"layer{i}" for i in range(n_layers)], "choices": CHOICES, "macs": macs, "params": params,
            "costs": {"random": rng.uniform(0.01, 1.0, (n_layers, len(CHOICES))),
                      "structured": sens[:, None] * noise[None, :] * rng.uniform(0.9, 1.1, (n_layers, len(CHOICES)))}}


def uniform_bitops(inst: dict, bits: int) -> int:
    return sum(m * bits * bits for m in inst["macs"])


def time_solves(inst: dict, cost: np.ndarray, budget: int, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        t = time.perf_counter()
        r = allocate(inst["layers"], inst["choices"], cost, inst["macs"], inst["params"], max_bitops=budget)
        seconds.append(time.perf_counter() - t)
        assert r.bitops <= budget
    return seconds


def sweep_budgets(inst: dict, cost: np.ndarray, n: int = 20) -> list[int]:
    """``n`` budgets strictly between W2A2 and the unconstrained optimum's BitOps: every one binds."""
    free = allocate(inst["layers"], inst["choices"], cost, inst["macs"], inst["params"])
    return [int(b) for b in np.linspace(uniform_bitops(inst, 2), free.bitops, n + 2)[1:-1]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    inst = instance(args.seed)
    print(f"{len(inst['layers'])} layers x {len(CHOICES)} choices, pulp {pulp.__version__} bundled CBC, "
          f"python {platform.python_version()}, {platform.machine()}")
    print(f"goals: median solve <= {GOAL_SOLVE_S} s, 20-budget sweep <= {GOAL_SWEEP_S} s\n")
    for name, cost in inst["costs"].items():
        for bits in (4, 3):
            s = time_solves(inst, cost, uniform_bitops(inst, bits), args.repeats)
            print(f"{name:10s} budget W{bits}A{bits}: median {statistics.median(s):.4f} s  min {min(s):.4f}  "
                  f"max {max(s):.4f}  over {len(s)} solves  (goal {GOAL_SOLVE_S} s)")
        budgets = sweep_budgets(inst, cost)
        t = time.perf_counter()
        curve = sweep(inst["layers"], inst["choices"], cost, inst["macs"], inst["params"], budgets)
        total = time.perf_counter() - t
        t = time.perf_counter()
        for b in budgets:
            allocate(inst["layers"], inst["choices"], cost, inst["macs"], inst["params"], max_bitops=b)
        separate = time.perf_counter() - t
        assert all(r.bitops <= b for r, b in zip(curve, budgets))
        print(f"{name:10s} sweep of {len(budgets)} binding budgets: {total:.3f} s total "
              f"({separate:.3f} s as separate allocate calls)  (goal {GOAL_SWEEP_S} s)\n")


if __name__ == "__main__":
    main()
