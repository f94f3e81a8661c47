"""What one training step of each kind costs at ImageNet resolution on a GPU, and what that
makes the GPU recipe cost (README, "On GPUs").

    python benchmarks/bench_gpu_steps.py [--models resnet18 mobilenet_v2] [--batch 128] [--out steps.json]

For each torchvision model (random weights: timing does not depend on them) at 3x224x224, on
real images (Fashion-MNIST test images, resized and repeated to three channels), it times with
CUDA events, after warm-up, one optimiser step of:

* ``fp``: full-precision training (SGD, train mode), the baseline;
* ``search``: the frozen-backbone supernet step of SEAM and of the target search (mixing logits
  and every candidate's LSQ step size trained by Adam; the backbone and BatchNorm frozen);
* ``joint``: the same supernet with the weights trained too (the FracBits class);
* ``qat``: LSQ fine-tuning under a uniform W4A4 policy (every weight and step size trained);
* ``eval``: a forward pass of the W4A4 model (scoring a candidate in an evaluation-based search).

It prints milliseconds per step, images per second and peak GPU memory, then the hours each
part of the recipe takes at that speed on ImageNet (1,281,167 training images; the 4% proxy
is 51,247 images): SEAM (8 epochs on the proxy), the target search (8 epochs on ImageNet),
a joint search (8 epochs on ImageNet) and one epoch of QAT. Needs a CUDA device.
"""

from __future__ import annotations

import argparse
import copy
import sys

import torch
import torch.nn.functional as F

IMAGENET, PROXY_SHARE, EPOCHS = 1_281_167, 0.04, 8


def images(batch: int, size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` real images at 3 x size x size with labels in 0..999 (class k of Fashion-MNIST -> k)."""
    from mpqlib import data as D

    test = D.load("fmnist", "test")
    x = F.interpolate(test.x[:batch], size=(size, size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return x.to(device), test.y[:batch].to(device)


def timed(step, n: int, warmup: int = 3) -> float:
    """Mean milliseconds of ``step()`` over ``n`` runs after ``warmup`` (CUDA events)."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(n):
        step()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / n


def steps_of(arch: str, x: torch.Tensor, y: torch.Tensor) -> dict:
    """The five kinds of step for torchvision ``arch``, each a closure doing one optimiser step."""
    import torchvision

    from mpqlib.cost import budget as parse_budget, cost_model
    from mpqlib.policy import Policy
    from mpqlib.quant import quantize
    from mpqlib.search.supernet import arch_parameters, expected_bitops, step_parameters, supernet

    size = tuple(x.shape[1:])
    base = getattr(torchvision.models, arch)(num_classes=1000).to(x.device)
    cost = cost_model(base.cpu(), (1, *size))
    base.to(x.device)
    b = parse_budget(cost, "w4a4")
    out = {}

    def make(params, opt_cls, loss_of):
        opt = opt_cls(params, lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            loss_of().backward()
            opt.step()
        return step

    fp = copy.deepcopy(base).train()
    out["fp"] = make(fp.parameters(), torch.optim.SGD, lambda: F.cross_entropy(fp(x), y))
    for kind, frozen in (("search", True), ("joint", False)):
        net, mixed = supernet(base.eval() if frozen else base.train(), cost=cost, input_size=(1, *size), calibration=x)
        net = net.eval() if frozen else net.train()
        for p in net.parameters():
            p.requires_grad_(not frozen)
        params = arch_parameters(mixed) + step_parameters(net)
        for p in params:
            p.requires_grad_(True)
        if not frozen:
            params = list(dict.fromkeys(params + [p for p in net.parameters()]))
        out[kind] = make(params, torch.optim.Adam,
                         lambda net=net, mixed=mixed: F.cross_entropy(net(x), y) + F.relu(expected_bitops(mixed) / b - 1))
    cpu = copy.deepcopy(base).cpu()
    q = quantize(cpu, Policy.uniform(cpu, 4, 4), calibration=x[:16].cpu()).to(x.device).train()
    out["qat"] = make(q.parameters(), torch.optim.SGD, lambda: F.cross_entropy(q(x), y))

    def evaluate():
        with torch.no_grad():
            q.eval()(x)
    out["eval"] = evaluate
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default=None, help="write the measurements as JSON")
    ap.add_argument("--device", default="cuda", help="cuda (the point); cpu only to check the script")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench_gpu_steps: no CUDA device visible", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    x, y = images(args.batch, args.size, device)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "batch": args.batch, "size": args.size, "models": {}}
    for arch in args.models:
        rows = {}
        for kind, step in steps_of(arch, x, y).items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
                ms = timed(step, args.steps)
                peak = torch.cuda.max_memory_allocated(device) / 2 ** 20
            else:
                import time
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step()
                ms, peak = (time.perf_counter() - t0) * 1000 / args.steps, float("nan")
            rows[kind] = {"ms_per_step": round(ms, 2), "images_per_s": round(args.batch / ms * 1000, 1),
                          "peak_mb": round(peak, 1)}
            print(f"{arch:13s} {kind:7s} {ms:8.1f} ms/step  {args.batch / ms * 1000:9.1f} img/s  peak {peak:8.0f} MB",
                  flush=True)
        per_img = {k: v["ms_per_step"] / 1000 / args.batch for k, v in rows.items()}
        hours = {"seam (8 epochs, 4% proxy)": per_img["search"] * PROXY_SHARE * IMAGENET * EPOCHS / 3600,
                 "target search (8 epochs, ImageNet)": per_img["search"] * IMAGENET * EPOCHS / 3600,
                 "joint search (8 epochs, ImageNet)": per_img["joint"] * IMAGENET * EPOCHS / 3600,
                 "QAT (1 epoch, ImageNet)": per_img["qat"] * IMAGENET / 3600}
        for k, h in hours.items():
            print(f"{arch:13s} {k:36s} {h:7.2f} GPU-h (compute only, no data loading)")
        result["models"][arch] = {"steps": rows, "hours": {k: round(h, 3) for k, h in hours.items()},
                                  "search_over_fp_per_image": round(per_img["search"] / per_img["fp"], 3),
                                  "joint_over_search_per_image": round(per_img["joint"] / per_img["search"], 3)}
    if args.out:
        from mpqlib._io import write_json

        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
