"""The differentiable search shared by SEAM, its cross-entropy ablation and the target search.

One code path; the three differ only in the head on the pooled penultimate features:

* ``lgm``   (SEAM): a large-margin Gaussian-mixture head over the *search data's* classes;
* ``linear`` (ablation): a linear head with cross-entropy over the search data's classes;
* ``model`` (search on the target): the model's own classifier with cross-entropy.

Loss = head loss + gamma x max(0, E[BitOps] / budget - 1), E[BitOps] under the softmax mixing
weights: the complexity term pushes only while the expected cost is above the budget, so the
search settles at the budget instead of collapsing below it. Without a budget it is off.
The backbone keeps its target-trained weights and BatchNorm statistics (frozen) unless
``freeze_backbone=False``; LSQ step sizes of every candidate and the mixing logits are learned.
Readout: ``ilp`` (the allocator over -log p_w - log p_a, meets the budget exactly) or
``argmax`` (per layer, the paper's).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import data as D
from ..cost import cost_model
from ..discriminability import LGMLoss, LinearCEHead, centroids, features
from ..models import head as find_head
from ..policy import Policy
from ..train import fit, seed_everything
from . import Meter, SearchResult, make_record, readout as readout_ilp
from .supernet import arch_parameters, expected_bitops, step_parameters, supernet


@dataclass
class SearchConfig:
    head: str = "lgm"                 # lgm | linear | model
    candidates: tuple[int, ...] = (2, 3, 4, 5, 6)
    epochs: int = 8
    batch_size: int = 128
    lr_arch: float = 0.02
    lr_step: float = 1e-3
    lr_head: float = 1e-2
    lr_backbone: float = 1e-3
    margin: float = 0.2
    likelihood_weight: float = 0.05
    gamma: float = 1.0
    readout: str = "ilp"              # ilp | argmax
    freeze_backbone: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.head not in ("lgm", "linear", "model"):
            raise ValueError(f"head must be lgm, linear or model, not {self.head!r}")
        if self.readout not in ("ilp", "argmax"):
            raise ValueError(f"readout must be 'ilp' or 'argmax', not {self.readout!r}")
        for name in ("epochs", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise TypeError(f"{name} must be a positive int, not {getattr(self, name)!r}")
        if self.gamma < 0 or self.margin < 0 or self.likelihood_weight < 0:
            raise ValueError("gamma, margin and likelihood_weight must be >= 0")
        self.candidates = tuple(int(b) for b in self.candidates)


class _FeatureTap:
    """Keeps the input of the classifier (pooled penultimate features) of the last forward."""

    def __init__(self, classifier: nn.Module):
        self.value: torch.Tensor | None = None
        self.handle = classifier.register_forward_pre_hook(self)

    def __call__(self, module, args) -> None:
        self.value = args[0]


def _head(cfg: SearchConfig, model: nn.Module, data: D.Images, device) -> tuple[nn.Module | None, int]:
    """The search head, initialised on the full-precision features (one pass over the data)."""
    if cfg.head == "model":
        return None, 0
    f = features(model, data.x, device=device)
    if cfg.head == "lgm":
        head = LGMLoss(data.num_classes, f.shape[1], cfg.margin, cfg.likelihood_weight, means=centroids(f, data.y))
    else:
        head = LinearCEHead(data.num_classes, f.shape[1])
        opt = torch.optim.Adam(head.parameters(), lr=0.05)
        for _ in range(200):  # fit the linear head on the fixed full-precision features
            loss, _ = head(f, data.y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.to(device), len(data)


def differentiable_search(model: nn.Module, data: D.Images, budget: int | None, cfg: SearchConfig | None = None, *,
                          method: str = "seam", device: str = "cpu", progress: bool = True,
                          input_size=(1, 1, 28, 28)) -> SearchResult:
    cfg = cfg or SearchConfig()
    if cfg.head == "model" and data.num_classes != find_head(model)[1].out_features:
        raise ValueError(f"head='model' searches with the model's own classifier ({find_head(model)[1].out_features} "
                         f"classes) but {data.name} has {data.num_classes}; use head='lgm' or 'linear' for proxy data")
    seed_everything(cfg.seed)
    model = model.to(device).eval()
    cost = cost_model(model, input_size)
    with Meter() as meter:
        head, head_images = _head(cfg, model, data, device)
        g = torch.Generator().manual_seed(cfg.seed)
        calib = data.x[torch.randperm(len(data), generator=g)[: cfg.batch_size]].to(device)
        net, mixed = supernet(model, cfg.candidates, cost=cost, calibration=calib)
        for p in net.parameters():
            p.requires_grad_(False)
        for p in arch_parameters(mixed) + step_parameters(net):
            p.requires_grad_(True)
        groups = [{"params": arch_parameters(mixed), "lr": cfg.lr_arch},
                  {"params": step_parameters(net), "lr": cfg.lr_step}]
        if head is not None:
            groups.append({"params": list(head.parameters()), "lr": cfg.lr_head})
        if not cfg.freeze_backbone:
            backbone = [p for n, p in net.named_parameters() if not n.endswith((".step", "alpha_w", "alpha_a"))]
            for p in backbone:
                p.requires_grad_(True)
            groups.append({"params": backbone, "lr": cfg.lr_backbone})
        opt = torch.optim.Adam(groups)
        tap = _FeatureTap(find_head(net)[1])

        def step(net_, x, y):
            logits = net_(x)
            if head is None:
                loss, out = F.cross_entropy(logits, y), logits
            else:
                loss, out = head(tap.value, y)
            if cfg.gamma and budget:
                loss = loss + cfg.gamma * F.relu(expected_bitops(mixed) / budget - 1)
            return loss, out

        loader = D.loader(data, cfg.batch_size, seed=cfg.seed)
        hist = fit(net, loader, opt, epochs=cfg.epochs, step=step, seed=cfg.seed, device=device,
                   train_mode=not cfg.freeze_backbone, desc=f"{method} on {data.name}", progress=progress)
        tap.handle.remove()
        names = list(mixed)
        pw = torch.stack([m.probs()[0] for m in mixed.values()]).detach().cpu().numpy()
        pa = torch.stack([m.probs()[1] for m in mixed.values()]).detach().cpu().numpy()
        policy = read_policy(cost, pw, pa, cfg.candidates, budget, cfg.readout, method=method,
                             search_data=data.name, seed=cfg.seed)
    record = make_record(policy.provenance["method"], data.name, meter, epochs=cfg.epochs, images=hist.images + head_images,
                         seed=cfg.seed, budget=budget, cost=cost, policy=policy, config=asdict(cfg))
    policy.provenance["code_version"] = record["code_version"]
    extras = {"layers": names, "candidates": list(cfg.candidates), "p_w": pw.round(5).tolist(), "p_a": pa.round(5).tolist(),
              "history": hist.epochs}
    return SearchResult(policy, record, extras)


def mixing_cost(pw: np.ndarray, pa: np.ndarray) -> np.ndarray:
    """-log p_w(w) - log p_a(a) for every layer (rows) and (w, a) pair in product order."""
    nll_w, nll_a = -np.log(np.asarray(pw) + 1e-12), -np.log(np.asarray(pa) + 1e-12)
    return (nll_w[:, :, None] + nll_a[:, None, :]).reshape(len(nll_w), -1)


def read_policy(cost, pw, pa, candidates, budget: int | None, readout: str = "ilp", *, method: str = "seam",
                fill: float = 0.99, **provenance) -> Policy:
    """Read a policy out of learned mixing weights ``pw``/``pa`` (layers x candidates).

    ``ilp``: the most likely policy that meets ``budget`` (the allocator over
    :func:`mixing_cost`) and, where the per-layer argmax leaves budget unused, spends it: the ILP
    then minimises ``-log p - lambda * BitOps / budget`` with the smallest ``lambda`` (found by
    bisection) whose policy uses at least ``fill`` of the budget, so that policies are compared at
    the same cost. ``argmax``: per layer the most likely bits (the paper's readout); its BitOps
    are whatever they come to.
    """
    candidates = tuple(candidates)
    names = cost.names
    if readout == "ilp":
        choices = list(itertools.product(candidates, candidates))
        nll = mixing_cost(pw, pa)
        prov = dict(method=method, readout="ilp", **provenance)
        policy = readout_ilp(cost, nll, choices, budget, **prov)
        if budget is None or cost.bitops(policy) >= fill * budget:
            return policy
        share = np.array([[c.macs * w * a for w, a in choices] for c in cost.searchable], dtype=float) / budget

        def solve(lam: float) -> Policy:
            return readout_ilp(cost, nll - lam * share, choices, budget, **prov)

        lo, hi = 0.0, 1.0
        while cost.bitops(solve(hi)) < fill * budget and hi < 1e6:
            lo, hi = hi, hi * 4
        for _ in range(24):
            mid = (lo + hi) / 2
            if cost.bitops(solve(mid)) >= fill * budget:
                hi = mid
            else:
                lo = mid
        policy = solve(hi)
        policy.provenance["fill_lambda"] = round(hi, 6)
        return policy
    if readout != "argmax":
        raise ValueError(f"readout must be 'ilp' or 'argmax', not {readout!r}")
    bits = {n: (candidates[int(np.argmax(pw[i]))], candidates[int(np.argmax(pa[i]))]) for i, n in enumerate(names)}
    policy = Policy(bits, {c.name: (8, 8) for c in cost.layers if c.fixed},
                    {"method": f"{method}-argmax", "readout": "argmax", **provenance})
    policy.provenance.update(budget_bitops=budget, bitops=cost.bitops(policy), size_bytes=cost.size_bytes(policy))
    return policy
