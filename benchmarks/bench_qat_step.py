"""Training step of the LSQ-quantized ResNet-20 vs the full-precision one, measured in one run.

    python benchmarks/bench_qat_step.py [--batch 128] [--steps 20] [--threads 2]

Goal: quantized step <= 1.5x the full-precision step on this CPU. Also times the search
supernet step (5 candidate quantizers per weight and per input, mixed) for reference.
"""

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mpqlib.models import resnet20
from mpqlib.policy import Policy
from mpqlib.quant import quantize
from mpqlib.search.supernet import arch_parameters, step_parameters, supernet


def step_time(model, params, x, y, steps):
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    times = []
    for i in range(steps + 3):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:  # warm-up steps excluded
            times.append(time.perf_counter() - t)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x, y = torch.randn(args.batch, 1, 28, 28), torch.randint(0, 10, (args.batch,))
    fp = resnet20().train()
    q = quantize(fp, Policy.uniform(fp, 4), calibration=x).train()
    sn, mixed = supernet(fp.eval(), calibration=x)
    for p in sn.parameters():
        p.requires_grad_(False)
    search_params = arch_parameters(mixed) + step_parameters(sn)
    for p in search_params:
        p.requires_grad_(True)
    t_fp, t_q, t_s = [], [], []
    for _ in range(2):  # interleave rounds so background load hits all alike
        t_fp += step_time(fp, fp.parameters(), x, y, args.steps // 2)
        t_q += step_time(q, q.parameters(), x, y, args.steps // 2)
        t_s += step_time(sn.eval(), search_params, x, y, args.steps // 2)
    m_fp, m_q, m_s = (statistics.median(t) for t in (t_fp, t_q, t_s))
    print(f"batch {args.batch}, {torch.get_num_threads()} threads, median of {len(t_fp)} steps each")
    print(f"full precision step       : {m_fp * 1000:7.1f} ms  ({args.batch / m_fp:6.0f} img/s)")
    print(f"LSQ W4A4 (QAT) step       : {m_q * 1000:7.1f} ms  ({args.batch / m_q:6.0f} img/s)  ratio {m_q / m_fp:.2f}x (goal <= 1.5x)")
    print(f"search supernet step      : {m_s * 1000:7.1f} ms  ({args.batch / m_s:6.0f} img/s)  ratio {m_s / m_fp:.2f}x")


if __name__ == "__main__":
    main()
