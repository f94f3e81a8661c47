"""Chapters 1 and 5's steps on features: what quantization does to the penultimate features
(chapter 1's observation, one cached step per model) and how well the proxy's discriminability
ranks policies by their accuracy after QAT (chapter 5: the proxy metrics, one cached step per
policy, and the rank correlations). Each function takes the model's
:class:`~mpqlib.study.experiments.Experiments`, whose searches, QAT runs, data and cache it uses;
``Experiments.observation``, ``proxy_metrics`` and ``correlation`` call them."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import data as D
from ..policy import Policy
from .cache import attempt, config_dict, fingerprint

if TYPE_CHECKING:  # pragma: no cover
    from .experiments import Experiments


# --------------------------------------------------------------------------- chapter 1
OBSERVED_BITS = (8, 4, 3, 2)


def observation_policies(ex: "Experiments") -> dict[str, Policy]:
    """Chapter 1's quantized models: uniform W8A8 ... W2A2 and two mixed policies at the main
    budget, SEAM's and a deliberately poor one."""
    policies = {f"W{b}A{b}": Policy.uniform(ex.model, b) for b in OBSERVED_BITS}
    policies["mixed, SEAM"] = ex.search("seam-mnist").policy
    policies["mixed, poor"] = ex.poor_policy("seam-mnist")
    return policies


def observation_sets(ex: "Experiments") -> dict[str, D.Images]:
    """Chapter 1's images: ``n_points`` class-balanced test images of the target and the proxy."""
    n = ex.p.n_points
    return {"target": D.balanced_subset(ex.test_set("fmnist"), size=n, seed=0),
            "proxy": D.balanced_subset(ex.test_set("mnist"), size=n, seed=0)}


def observation_inputs(ex: "Experiments") -> tuple[dict[str, Policy], dict[str, D.Images], dict]:
    policies = observation_policies(ex)
    sets = observation_sets(ex)
    key_config = {"model": ex.model_name, "checkpoint_sha256": ex.checkpoint_sha256,
                  "policies": {n: pol.to_dict()["bits"] for n, pol in policies.items()},
                  "fixed": {n: pol.to_dict()["fixed"] for n, pol in policies.items()},
                  "qat": config_dict(ex.p.qat), "qat_seed": 0, "train": ex.fingerprint("fmnist"),
                  "test": ex.fingerprint("fmnist-test"),
                  "sets": {d: fingerprint(images) for d, images in sets.items()}}
    return policies, sets, key_config


def observation_path(ex: "Experiments") -> str:
    """Where chapter 1's observation record lies, relative to the profile's cache directory."""
    path = ex.cache.path("observation", observation_inputs(ex)[2])
    return path.relative_to(ex.p.cache_path()).as_posix()


def observation(ex: "Experiments") -> dict:
    """Chapter 1 as one cached step: per model (FP and each of :func:`observation_policies`
    after the common QAT, seed 0) and dataset the discriminability metrics of the pooled
    penultimate features, the model's top-1 on the target's test set, and a 2-D t-SNE of the
    features. The record keeps these small results, so the QAT weights are needed only once."""
    policies, sets, key_config = observation_inputs(ex)

    def compute() -> dict:
        from sklearn.manifold import TSNE

        from ..discriminability import features, summary
        from ..train import evaluate

        nets = {"FP": ex.model, **{n: ex.qat_model(pol) for n, pol in policies.items()}}
        rows, embedding = [], {}
        for name, net in nets.items():
            pol = policies.get(name)
            top1 = ex.meta["top1"] if pol is None else evaluate(net, ex.test_set())
            bitops = None if pol is None else int(ex.cost.bitops(pol))
            for d, images in sets.items():
                with torch.no_grad():
                    f, logits = features(net, images.x, return_logits=True)
                m = summary(f, images.y, logits if d == "target" else None)
                rows.append({"model": name, "data": d, "bitops": bitops, "top1": float(top1),
                             **{k: float(v) for k, v in m.items()}})
                xy = TSNE(n_components=2, perplexity=min(30, (len(f) - 1) / 3), init="pca",
                          random_state=0).fit_transform(f.numpy())
                embedding[f"{name}|{d}"] = np.round(xy, 2).tolist()
        return {"rows": rows, "models": list(nets), "embedding": embedding,
                "labels": {d: images.y.tolist() for d, images in sets.items()}}

    return ex.step("observation", key_config, compute, ())


# --------------------------------------------------------------------------- chapter 5
def correlation_policies(ex: "Experiments", budget: str | int | None = None) -> dict[str, Policy]:
    """>= ``n_correlation`` policies spanning target accuracy: the target search's choice,
    its opposite and mixtures in between, uniform, and random policies."""
    n = ex.p.n_correlation
    pols: dict[str, Policy] = {}
    alphas = np.linspace(-1, 1, max(2, n // 3))
    for a in alphas:
        pols[f"mix{a:+.2f}"] = ex.interpolated_policy("target-fmnist", float(a), budget, seed=0)
    pols["uniform"] = ex.uniform(budget).policy
    i = 0
    while len(pols) < n:
        pols[f"random-{i}"] = ex.random_policy(i, budget).policy
        i += 1
    return pols


def proxy_metrics(ex: "Experiments", policy: Policy) -> dict:
    """Discriminability of ``policy``'s quantized model (no fine-tuning) on the proxy after
    re-estimating BatchNorm statistics on proxy images; target accuracy before fine-tuning."""
    from ..discriminability import features, summary
    from ..quant import quantize
    from ..train import evaluate

    proxy = ex.data("proxy")
    n_bn = min(ex.p.bn_recalibration_images, len(proxy))
    key_config = {"model": ex.model_name, "checkpoint_sha256": ex.checkpoint_sha256,
                  "policy": policy.to_dict()["bits"], "fixed": policy.to_dict()["fixed"],
                  "proxy": ex.fingerprint("proxy"), "bn_images": n_bn, "test": ex.fingerprint(f"{ex.target}-test")}

    def compute() -> dict:
        q = quantize(ex.model, policy, calibration=proxy.x[:128]).eval()
        ptq = evaluate(q, ex.test_set())
        recalibrate_bn(q, proxy.x[:n_bn])
        f, logits = features(q, proxy.x, return_logits=True)
        return {"metrics": {**summary(f, proxy.y), "ptq_top1_target": ptq,
                            "mean_bits": float(np.mean(policy.mean_bits()))}}

    return ex.step("proxy-metrics", key_config, compute, (policy.to_dict(),))["metrics"]


def correlation(ex: "Experiments", budget: str | int | None = None) -> dict | None:
    """Chapter 5: per policy the proxy metrics (BN recalibrated) and the QAT top-1 per seed;
    Spearman with bootstrap CIs beside the noise ceiling and trivial predictors (:mod:`~mpqlib.study.ranks`).
    None while the pipeline plans and a step is missing (every missing step is noted)."""
    from . import ranks

    pols = correlation_policies(ex, budget)
    seeds = ex.p.correlation_qat_seeds
    table = []
    for name, pol in pols.items():
        m = attempt(proxy_metrics, ex, pol)
        recs = [attempt(ex.qat, pol, s) for s in seeds]
        if m is None or None in recs:  # the pipeline plans: the missing steps are noted
            continue
        top = [r["top1"] for r in recs]
        table.append({"policy": name, "bitops": int(ex.cost.bitops(pol)), "top1": top,
                      "top1_mean": float(np.mean(top)), **m})
    if len(table) < len(pols):
        return None
    y = np.array([r["top1_mean"] for r in table])
    predictors = {"fisher_ratio": 1, "normalised_compactness": -1, "ptq_top1_target": 1, "mean_bits": 1}
    rho = {}
    for k, sign in predictors.items():
        x = sign * np.array([r[k] for r in table])
        rho[("-" if sign < 0 else "") + k] = asdict(ranks.spearman_ci(x, y, n_boot=ex.p.bootstrap))
    per_seed = np.array([r["top1"] for r in table])
    ceiling = asdict(ranks.noise_ceiling(per_seed)) if per_seed.shape[1] > 1 else None
    return {"model": ex.model_name, "budget": ex.budget_label(budget), "n_policies": len(table),
            "policies": table, "spearman": rho, "noise_ceiling": ceiling}


# --------------------------------------------------------------------------- BN recalibration
@torch.no_grad()
def recalibrate_bn(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 128) -> torch.nn.Module:
    """Re-estimate every BatchNorm's running statistics from ``x`` (cumulative average), weights
    untouched: the quantized network's own statistics instead of the full-precision ones."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.eval()
    for m in bns:
        m.train()
    for start in range(0, len(x), batch_size):
        model(x[start:start + batch_size])
    for m, (mom, tr) in zip(bns, saved):
        m.momentum = mom
        m.train(tr)
    return model.eval()


__all__ = ["OBSERVED_BITS", "observation_policies", "observation_sets", "observation_inputs", "observation_path",
           "observation", "correlation_policies", "proxy_metrics", "correlation", "recalibrate_bn"]
