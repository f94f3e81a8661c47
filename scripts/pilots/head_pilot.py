"""Pilot: does the SEAM head fit the frozen features of the supernet?

On the MNIST proxy (240 images/class, ``search_data("mnist")``) and a held-out MNIST split (240
images/class of the MNIST *test* set, disjoint from the proxy by construction), with the ResNet-20
supernet built from ``checkpoints/resnet20-fmnist.pt`` and calibrated as the search does:

1. ``prefit``: every head variant is built and pre-fitted by :func:`mpqlib.search.heads.build_head`
   on the supernet's starting features; head vs linear-probe accuracy (train and held-out);
2. ``shrink``: the loss of scaled-down features c * g (c = 0.5, 0.8, 1) at the fitted head, and
   after the head has been refitted to them (``refit_steps`` more steps, the frozen normaliser
   kept), i.e. whether a search could lower the loss by shrinking features;
3. ``search``: a short search emulated as :func:`mpqlib.search.differentiable.differentiable_search`
   runs it (mixing logits, LSQ steps and head trained jointly, Adam, the hinge BitOps term at the
   uniform W3A3 budget) for ``epochs`` epochs; the head and a probe refitted on the supernet's
   features afterwards.

Writes ``results/pilots/head.json`` (atomically). Single-threaded; the pre-fit stage takes a few minutes, each searched variant a few more.
Run: ``.venv/bin/python scripts/pilots/head_pilot.py [--stage prefit|search|all] [--epochs 2] [--search NAME ...]``.
"""

from __future__ import annotations

import argparse
import copy
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from mpqlib import data as D
from mpqlib._io import read_json, write_json
from mpqlib.config import CEConfig, SeamConfig
from mpqlib.cost import cost_model
from mpqlib.discriminability import LGMLoss, centroids, features, fisher_ratio
from mpqlib.models import head as find_head
from mpqlib.search.heads import build_head, head_report, prefit
from mpqlib.search.supernet import arch_parameters, expected_bitops, step_parameters, supernet
from mpqlib.train import load_checkpoint

CHECKPOINT = "checkpoints/resnet20-fmnist.pt"
OUT = "results/pilots/head.json"
BASE = SeamConfig()

# name -> config (or "as-built": the head of the committed runs, raw features, identity
# covariance, FP-centroid-like start without pre-fit, margin 0.2)
PREFIT_VARIANTS = {
    "linear-ce": CEConfig(),
    **{f"lgm-{'z' if n else 'raw'}-{c}-m{m:g}-l{lam:g}": replace(BASE, normalise=n, covariance=c, margin=m, likelihood_weight=lam)
       for lam in (0.05, 0.01, 0.0) for n in (True, False) for c in ("diagonal", "identity") for m in (0.0, 0.05, 0.1, 0.2)},
}
SEARCH_VARIANTS = ["lgm-z-diagonal-m0.1-l0.01", "linear-ce", "lgm-z-diagonal-m0.1-l0.05", "as-built"]
SHRINK_VARIANTS = ["as-built", "linear-ce", "lgm-z-identity-m0.1-l0.01", "lgm-raw-identity-m0.1-l0.01",
                   "lgm-z-diagonal-m0.1-l0.01", "lgm-raw-diagonal-m0.1-l0.01"]


def as_built_head(feats: torch.Tensor, labels: torch.Tensor) -> LGMLoss:
    """The head as first built: identity covariance on raw features, means at the centroids,
    margin 0.2, likelihood 0.05, no pre-fit."""
    return LGMLoss(10, feats.shape[1], 0.2, 0.05, means=centroids(feats, labels))


def make_head(name: str, feats, labels):
    return as_built_head(feats, labels) if name == "as-built" else build_head(PREFIT_VARIANTS[name], feats, labels, 10)


def fresh_supernet(model, proxy, cfg):
    calib, _ = D.take(proxy, cfg.batch_size, cfg.seed) if hasattr(D, "take") else (proxy.x[:cfg.batch_size], None)
    net, mixed = supernet(model, cfg.candidates, calibration=calib)
    return net.eval(), mixed


def shrink_test(name, feats, labels, refit_steps=300):
    """Loss of c * feats at the head fitted on feats, and after refitting it to c * feats."""
    torch.manual_seed(0)
    head = make_head(name, feats, labels)
    out = {}
    for c in (0.5, 0.8, 1.0):
        with torch.no_grad():
            fixed = head(c * feats, labels)[0].item()
        h2 = copy.deepcopy(head)
        prefit(h2, c * feats, labels, refit_steps)
        with torch.no_grad():
            refit = h2(c * feats, labels)[0].item()
        out[f"c={c:g}"] = {"fixed_head_loss": round(fixed, 4), "refit_loss": round(refit, 4)}
    return out


def short_search(name, model, proxy, val, budget, cfg, epochs):
    """The search loop of differentiable_search, for ``epochs`` epochs, with head ``name``."""
    torch.manual_seed(cfg.seed)
    net, mixed = fresh_supernet(model, proxy, cfg)
    start = features(net, proxy.x)
    head = make_head(name, start, proxy.y)
    for p in net.parameters():
        p.requires_grad_(False)
    groups = [{"params": arch_parameters(mixed), "lr": cfg.lr_arch}, {"params": step_parameters(net), "lr": cfg.lr_step},
              {"params": list(head.parameters()), "lr": cfg.lr_head}]
    for g in groups[:2]:
        for p in g["params"]:
            p.requires_grad_(True)
    opt = torch.optim.Adam(groups)
    tapped = {}
    handle = find_head(net)[1].register_forward_pre_hook(lambda m, a: tapped.__setitem__("g", a[0]))
    gen = torch.Generator().manual_seed(cfg.seed)
    losses = []
    try:
        for _ in range(epochs):
            order = torch.randperm(len(proxy), generator=gen)
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i:i + cfg.batch_size]
                net(proxy.x[idx])
                loss = head(tapped["g"], proxy.y[idx])[0] + cfg.gamma * F.relu(expected_bitops(mixed) / budget - 1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
    finally:
        handle.remove()
    f_tr, f_va = features(net, proxy.x), features(net, val.x)
    return {**head_report(head, f_tr, proxy.y, f_va, val.y),
            "loss_first_epoch": round(sum(losses[:len(losses) // epochs]) / (len(losses) // epochs), 4),
            "loss_last_epoch": round(sum(losses[-(len(losses) // epochs):]) / (len(losses) // epochs), 4),
            "feature_norm_start": round(start.norm(dim=1).mean().item(), 3),
            "feature_norm_end": round(f_tr.norm(dim=1).mean().item(), 3),
            "fisher_start": round(fisher_ratio(start, proxy.y), 4), "fisher_end": round(fisher_ratio(f_tr, proxy.y), 4),
            "expected_bitops_over_budget": round(expected_bitops(mixed).item() / budget, 4)}


def setup(model, proxy, val, cfg, epochs) -> tuple[dict, torch.Tensor, torch.Tensor, int]:
    net, _ = fresh_supernet(model, proxy, cfg)
    f_tr, f_va = features(net, proxy.x), features(net, val.x)
    budget = cost_model(model, (1, 1, 28, 28)).uniform_bitops(3, 3)
    info = {"checkpoint": CHECKPOINT, "proxy": f"{proxy.name} (search_data('mnist'), seed 0)",
            "held_out": "MNIST test split, 240/class, seed 0", "features": "input of fc, supernet at its start",
            "feature_norm_supernet": round(f_tr.norm(dim=1).mean().item(), 3),
            "feature_norm_fp": round(features(model, proxy.x).norm(dim=1).mean().item(), 3),
            "budget_bitops": budget, "prefit_steps": cfg.head_prefit_steps, "search_epochs": epochs,
            "search_lrs": {"arch": cfg.lr_arch, "step": cfg.lr_step, "head": cfg.lr_head}}
    return info, f_tr, f_va, budget


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--stage", choices=("prefit", "search", "all"), default="all",
                    help="prefit: pre-fit and shrink tables; search: the short searches (kept results stay)")
    ap.add_argument("--search", nargs="*", default=SEARCH_VARIANTS, help="variants searched")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    model, _ = load_checkpoint(CHECKPOINT)
    model.eval()
    proxy = D.search_data("mnist")
    val = D.balanced_subset(D.load("mnist", "test"), per_class=240, seed=0)
    cfg = BASE
    result = read_json(OUT) if Path(OUT).exists() else {"prefit": {}, "shrink": {}, "search": {}}
    if args.stage in ("prefit", "all"):
        result["setup"], f_tr, f_va, budget = setup(model, proxy, val, cfg, args.epochs)
        for name in ["as-built", *PREFIT_VARIANTS]:
            torch.manual_seed(0)
            result["prefit"][name] = head_report(make_head(name, f_tr, proxy.y), f_tr, proxy.y, f_va, val.y)
            print(name, result["prefit"][name], flush=True)
        for name in SHRINK_VARIANTS:
            result["shrink"][name] = shrink_test(name, f_tr, proxy.y)
            print("shrink", name, result["shrink"][name], flush=True)
        write_json(OUT, result)
    if args.stage in ("search", "all"):
        budget = cost_model(model, (1, 1, 28, 28)).uniform_bitops(3, 3)
        for name in args.search:
            t = time.time()
            result["search"][name] = {**short_search(name, model, proxy, val, budget, cfg, args.epochs),
                                      "epochs": args.epochs, "seconds": round(time.time() - t)}
            print("search", name, result["search"][name], flush=True)
            write_json(OUT, result)
    print(f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
