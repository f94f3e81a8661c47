"""The differentiable search shared by SEAM, its cross-entropy ablation and the target search.

One code path (registered for :class:`SeamConfig`, :class:`CEConfig` and :class:`TargetConfig`);
the three differ only in the head (``cfg.head``) on the pooled penultimate features:

* ``lgm``   (SEAM): a large-margin Gaussian-mixture head over the *search data's* classes;
* ``linear`` (ablation): a linear head with cross-entropy over the search data's classes;
* ``model`` (search on the target): the model's own classifier with cross-entropy.

The supernet is built first; the proxy heads are built and pre-fitted on the supernet's own
starting features of the search data (:func:`mpqlib.search.heads.build_head`), and at the end
the record's ``head`` entry says how well the head and a linear probe fit the final supernet's
features of the search data and of ``val_data`` (:func:`mpqlib.search.heads.head_report`).
``max_steps`` ends the search after that many optimiser steps (runs compared at equal steps).

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
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import data as D
from ..config import FIXED_PAIR, CEConfig, DifferentiableConfig, SeamConfig, TargetConfig, register_runner
from ..cost import cost_model
from ..discriminability import features
from ..errors import ConfigError
from ..models import head as find_head
from ..policy import Policy
from ..train import fit, seed_everything
from . import heads
from .result import Meter, SearchResult, decisiveness, make_record, readout as readout_ilp
from .supernet import arch_parameters, expected_bitops, search_optimiser, step_parameters, supernet

class _FeatureTap:
    """Keeps the input of the classifier (pooled penultimate features) of the last forward."""

    def __init__(self, classifier: nn.Module):
        self.value: torch.Tensor | None = None
        self.handle = classifier.register_forward_pre_hook(self)

    def __call__(self, module, args) -> None:
        self.value = args[0]


def _search_loader(cfg: DifferentiableConfig, data, sampler) -> tuple[object, int]:
    """The search's batches and how many epochs they run for (``max_steps`` caps both)."""
    loader = D.as_loader(data, cfg.batch_size, seed=cfg.seed, sampler=sampler, max_batches=cfg.max_steps)
    if cfg.max_steps is None:
        return loader, cfg.epochs
    return loader, min(cfg.epochs, math.ceil(cfg.max_steps / max(len(loader), 1)))


def _optimiser(cfg: DifferentiableConfig, net: nn.Module, mixed: dict, head: nn.Module | None) -> torch.optim.Optimizer:
    """Adam over the mixing logits, the LSQ steps, the head and (unfrozen) the backbone."""
    groups = [(arch_parameters(mixed), cfg.lr_arch), (step_parameters(net), cfg.lr_step)]
    if head is not None:
        groups.append(([p for p in head.parameters() if p.requires_grad], cfg.lr_head))
    return search_optimiser(net, *groups, backbone_lr=None if cfg.freeze_backbone else cfg.lr_backbone)


def _head_report(head, net: nn.Module, data, labels: torch.Tensor, val_data, device, batch_size: int) -> dict:
    """Head and linear-probe accuracies on the final supernet's features of the search data and
    of ``val_data`` (:func:`mpqlib.search.heads.head_report`)."""
    f_train = features(net, data, device=device, batch_size=batch_size)
    if val_data is None:
        return heads.head_report(head, f_train, labels, None, None)
    f_val = features(net, val_data, device=device, batch_size=batch_size)
    return heads.head_report(head, f_train, labels, f_val, D.labels_of(val_data))


@register_runner(SeamConfig, CEConfig, TargetConfig)
def differentiable_search(model: nn.Module, data, budget: int | None, cfg: DifferentiableConfig, *,
                          device: torch.device | str = "cpu", progress: bool = True, input_size=None,
                          val_data=None, sampler=None) -> SearchResult:
    """The differentiable search of :data:`cfg.head <mpqlib.config.DifferentiableConfig.head>`
    (SEAM, CE ablation, target) on ``data``; see the module docstring. Usually called through
    :func:`mpqlib.search.search`."""
    method = cfg.method
    labels, k = D.labels_of(data), D.num_classes(data)
    out_features = find_head(model)[1].out_features
    if cfg.head == "model" and k != out_features:
        raise ConfigError(f"{type(cfg).__name__} searches with the model's own classifier ({out_features} classes) but "
                          f"{D.describe(data)} has {k}; use SeamConfig or CEConfig for proxy data")
    seed_everything(cfg.seed)
    cost = cost_model(model, input_size or D.check_fits(data, None))
    with Meter() as meter:
        calib, _ = D.take(data, cfg.batch_size, cfg.seed)
        net, mixed = supernet(model, cfg.candidates, cost=cost, calibration=calib.to(device))
        net = net.to(device).eval()
        head, head_images = None, 0
        if cfg.head != "model":
            # the supernet's own starting features, in search-sized batches (every candidate of every layer
            # is materialised per batch: 1,000-image batches ran 4x slower on a CPU)
            start_feats = features(net, data, device=device, batch_size=cfg.batch_size)
            head, head_images = heads.build_head(cfg, start_feats, labels, k).to(device), len(start_feats)
        opt = _optimiser(cfg, net, mixed, head)
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

        loader, epochs = _search_loader(cfg, data, sampler)
        try:
            hist = fit(net, loader, opt, epochs=epochs, step=step, seed=cfg.seed, device=device,
                       train_mode=not cfg.freeze_backbone, desc=f"{method} on {D.describe(data)}", progress=progress)
        finally:
            tap.handle.remove()
        names = list(mixed)
        pw = torch.stack([m.probs()[0] for m in mixed.values()]).detach().cpu().numpy()
        pa = torch.stack([m.probs()[1] for m in mixed.values()]).detach().cpu().numpy()
        policy = read_policy(cost, pw, pa, cfg.candidates, budget, cfg.readout, method=method, fill=cfg.fill,
                             search_data=D.describe(data), seed=cfg.seed)
    report = _head_report(head, net, data, labels, val_data, device, cfg.batch_size)
    record = make_record(policy.provenance["method"], data, meter, epochs=epochs, images=hist.images + head_images,
                         seed=cfg.seed, budget=budget, cost=cost, policy=policy, config=cfg)
    record.update(steps=sum(-(-e["images"] // cfg.batch_size) for e in hist.epochs), head=report,
                  decisiveness=decisiveness(names, pw, pa))
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
        raise ConfigError(f"readout must be 'ilp' or 'argmax', not {readout!r}")
    bits = {n: (candidates[int(np.argmax(pw[i]))], candidates[int(np.argmax(pa[i]))]) for i, n in enumerate(names)}
    policy = Policy(bits, {c.name: FIXED_PAIR for c in cost.layers if c.fixed},
                    {"method": f"{method}-argmax", "readout": "argmax", **provenance})
    policy.provenance.update(budget_bitops=budget, bitops=cost.bitops(policy), size_bytes=cost.size_bytes(policy))
    return policy
