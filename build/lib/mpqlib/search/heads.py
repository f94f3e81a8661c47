"""The heads a proxy search trains on frozen pooled penultimate features, and how well they fit.

With the backbone frozen, only the mixing logits, the LSQ step sizes and the head move, so the
head has to fit features it cannot change. :func:`build_head` builds it on the features of the
supernet *at the start of the search* (the proxy passed once through the supernet before any
mixing weight moves) and pre-fits it there, the same way for SEAM and its ablation:

- every head sees the features through a frozen z-score (:class:`~mpqlib.discriminability.Normaliser`
  with the per-dimension mean and standard deviation of those starting features; ``normalise=False``
  turns it off);
- ``lgm`` (SEAM): :class:`~mpqlib.discriminability.LGMLoss` with the means at the class centroids
  of the normalised starting features, unit variances, ``covariance`` ``diagonal`` (learned,
  per class) or ``identity``, margin ``margin``, likelihood weight ``likelihood_weight``;
- ``linear`` (the CE ablation): :class:`~mpqlib.discriminability.LinearCEHead` from zero weights;
- ``model`` (search on the target): no head, the model's own classifier is used.

Both heads then take ``head_prefit_steps`` full-batch Adam steps (learning rate
:data:`PREFIT_LR`) on those features. :func:`head_report` says how well a head fits, beside a
linear probe (:func:`linear_probe`) on the same features: the measure the book uses to show the
SEAM head is not the bottleneck of the search.

Calibrated on the MNIST proxy with ResNet-20 supernet features (``results/pilots/head.json``):
z-score on, diagonal covariance (the only variant whose best reachable loss does not reward
shrinking features), margin 0.1 (the largest of 0, 0.05, 0.1, 0.2 that keeps >= 90% of the
probe's held-out accuracy after pre-fit and after a short search), likelihood weight 0.01 (the
likelihood term sums over D = 64 normalised dimensions, d_y ~ D/2, so 0.05 outweighs the
classification term and costs 2-5 points of accuracy).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..discriminability import LGMLoss, LinearCEHead, Normaliser, centroids
from ..errors import ConfigError, DataError

__all__ = ["PREFIT_LR", "PROBE_STEPS", "PROBE_WEIGHT_DECAY", "build_head", "prefit", "accuracy", "linear_probe", "head_report"]

PREFIT_LR = 0.05           # Adam learning rate of the full-batch head pre-fit (both heads)
PROBE_STEPS = 300          # L-BFGS iterations of the linear probe (converged well before)
PROBE_WEIGHT_DECAY = 1e-3  # L2 penalty of the probe on z-scored features: its best held-out accuracy


def _check_features(feats: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    if feats.dim() != 2 or not feats.dtype.is_floating_point:
        raise DataError(f"features must be a float tensor of shape (N, D), got {tuple(feats.shape)} {feats.dtype}")
    if labels.dim() != 1 or len(labels) != len(feats):
        raise DataError(f"labels must have shape ({len(feats)},), got {tuple(labels.shape)}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels must lie in [0, {num_classes}), got {labels.min().item()}..{labels.max().item()}")
    missing = sorted(set(range(num_classes)) - set(labels.tolist()))
    if missing:
        raise DataError(f"the head is fitted on every class, but classes {missing} have no sample; "
                        "search on class-balanced data (mpqlib.data.balanced_subset)")


def build_head(cfg, feats: torch.Tensor, labels: torch.Tensor, num_classes: int) -> nn.Module | None:
    """The search head for ``cfg`` (a differentiable-search config), pre-fitted on ``feats``.

    ``feats`` (N, D) are the pooled penultimate features of the supernet at the start of the
    search on the search data, ``labels`` (N,) their classes in [0, ``num_classes``). Returns
    None for ``cfg.head == "model"``; otherwise the head (``forward(features, labels) -> (loss,
    logits)``) on ``feats.device``, after ``cfg.head_prefit_steps`` Adam steps on ``feats``.
    The options read from ``cfg``: ``head``, ``normalise``, ``covariance``, ``margin``,
    ``likelihood_weight``, ``head_prefit_steps`` (defaults where a config lacks one: True,
    ``"diagonal"``, 0.1, 0.01, 200: the values calibrated in ``scripts/pilots/head_pilot.py``).
    """
    kind = cfg.head
    if kind == "model":
        return None
    if kind not in ("lgm", "linear"):
        raise ConfigError(f"head must be 'lgm', 'linear' or 'model', not {kind!r}")
    labels = labels.to(feats.device)
    _check_features(feats, labels, num_classes)
    feats = feats.detach()
    normaliser = Normaliser.fit(feats, getattr(cfg, "normalise", True)).to(feats.device)
    if kind == "lgm":
        head = LGMLoss(num_classes, feats.shape[1], getattr(cfg, "margin", 0.1), getattr(cfg, "likelihood_weight", 0.01),
                       means=centroids(normaliser(feats), labels), covariance=getattr(cfg, "covariance", "diagonal"),
                       normaliser=normaliser, classification_weight=getattr(cfg, "classification_weight", 1.0))
    else:
        head = LinearCEHead(num_classes, feats.shape[1], normaliser=normaliser)
        nn.init.zeros_(head.fc.weight)  # a convex fit: start from zero, independent of the RNG
        nn.init.zeros_(head.fc.bias)
    head = head.to(device=feats.device, dtype=feats.dtype)
    prefit(head, feats, labels, getattr(cfg, "head_prefit_steps", 200))
    return head


def prefit(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor, steps: int, lr: float = PREFIT_LR) -> list[float]:
    """``steps`` full-batch Adam steps of ``head`` on fixed ``feats``; returns the losses."""
    if steps < 0:
        raise ConfigError(f"head_prefit_steps must be >= 0, not {steps}")
    losses = []
    if steps == 0:
        return losses
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(steps):
        loss, _ = head(feats, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * (logits.argmax(1) == labels.to(logits.device)).double().mean().item()


def linear_probe(feats: torch.Tensor, labels: torch.Tensor, *, steps: int = PROBE_STEPS,
                 weight_decay: float = PROBE_WEIGHT_DECAY) -> Callable[[torch.Tensor], torch.Tensor]:
    """Multinomial logistic regression fitted on ``feats`` (z-scored with their own statistics),
    L2 penalty ``weight_decay / 2 * ||W||^2``, full-batch L-BFGS for ``steps`` iterations, from
    zero (deterministic). Returns a function from features to logits."""
    if feats.dim() != 2 or labels.dim() != 1 or len(labels) != len(feats):
        raise DataError(f"need features (N, D) and labels (N,), got {tuple(feats.shape)} and {tuple(labels.shape)}")
    with torch.no_grad():
        norm = Normaliser.fit(feats.detach().cpu().double())
        z = norm(feats.detach().cpu().double())
    y = labels.detach().cpu()
    k = int(y.max()) + 1
    w = torch.zeros(z.shape[1], k, dtype=z.dtype, requires_grad=True)
    b = torch.zeros(k, dtype=z.dtype, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + b, y) + 0.5 * weight_decay * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w, b = w.detach(), b.detach()
    return lambda f: norm(f.detach().cpu().double()) @ w + b


@torch.no_grad()
def _head_logits(head: nn.Module, feats: torch.Tensor) -> torch.Tensor:
    """The head's margin-free logits of ``feats``, on the CPU (the head's mode is left alone:
    its logits do not depend on it)."""
    p = next(head.parameters())
    return head.logits(feats.to(device=p.device, dtype=p.dtype)).cpu()


def head_report(head: nn.Module | None, feats_train: torch.Tensor, y_train: torch.Tensor,
                feats_val: torch.Tensor | None = None, y_val: torch.Tensor | None = None) -> dict[str, float | None]:
    """How well ``head`` fits, beside a linear probe on the same features (percent, 2 decimals).

    ``head_train_acc`` / ``head_val_acc``: the head's margin-free accuracy on ``feats_train`` (the
    search data) and ``feats_val`` (a held-out split of the same dataset); ``probe_train_acc`` /
    ``probe_val_acc``: a :func:`linear_probe` fitted on ``feats_train``, evaluated on both. With
    ``head=None`` (the model's own classifier) the head entries are None, without ``feats_val``
    the held-out entries.
    """
    if (feats_val is None) != (y_val is None):
        raise DataError("give both feats_val and y_val, or neither")
    probe = linear_probe(feats_train, y_train)
    splits = {"train": (feats_train, y_train.cpu())}
    if feats_val is not None:
        splits["val"] = (feats_val, y_val.cpu())
    report: dict[str, float | None] = {f"{who}_{split}_acc": None for who in ("head", "probe") for split in ("train", "val")}
    for split, (f, y) in splits.items():
        if head is not None:
            report[f"head_{split}_acc"] = round(accuracy(_head_logits(head, f), y), 2)
        report[f"probe_{split}_acc"] = round(accuracy(probe(f), y), 2)
    return report
