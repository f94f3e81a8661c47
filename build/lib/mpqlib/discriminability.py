"""Feature discriminability: how compact classes are and how far apart, and the L-GM loss.

SEAM's premise is that a poor bit-width policy blurs the penultimate features (classes spread
out and move together) on any dataset. This file measures that on pooled penultimate features
(:func:`features`) and provides the two classifier heads a proxy search can train:

- :class:`LGMLoss`: the large-margin Gaussian-mixture loss (Wan et al., CVPR 2018) that SEAM's
  poster equations describe, with our reconstruction choices (identity or learned diagonal
  covariance, margin on the true class only, likelihood term = Mahalanobis distance weighted by
  ``likelihood_weight``); see the book's method page;
- :class:`LinearCEHead`: the ablation, a plain linear classifier with cross entropy;
- :class:`Normaliser`: the frozen per-dimension z-score both heads can put in front of the
  features (statistics fitted once, never per batch).

Both heads share ``forward(features, labels) -> (loss, logits)`` and ``logits(features)``;
:mod:`mpqlib.search.heads` builds and pre-fits them for a search.

All metrics take features ``f`` of shape (N, D) and integer labels ``y`` of shape (N,), compute
in float64, and return python floats. Only the classes present in ``y`` count.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .hooks import capture_inputs
from .models import head

__all__ = [
    "features",
    "centroids",
    "compactness",
    "separation",
    "fisher_ratio",
    "logit_margin",
    "normalised_compactness",
    "summary",
    "Normaliser",
    "LGMLoss",
    "LinearCEHead",
]


# --------------------------------------------------------------------------- features


@torch.no_grad()
def features(
    model: nn.Module,
    x,
    *,
    batch_size: int = 1000,
    device: str | torch.device | None = None,
    return_logits: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Pooled penultimate features of ``x``: the input of the model's classifier.

    ``x`` is a tensor of images, or any data :func:`mpqlib.data.in_order` reads (``Images``, a
    dataset of (image, label), a DataLoader): then rows follow :func:`mpqlib.data.labels_of`.
    ``device`` None: the model's device.

    The classifier is ``mpqlib.models.head(model)``, the last ``nn.Linear`` in module order
    (``fc`` of ResNets, ``classifier.1`` of MobileNetV2). A forward pre-hook on it records its
    input; the hook is removed afterwards, also when the forward raises. The model runs in eval
    mode (BatchNorm uses running statistics, dropout is off) under ``torch.no_grad`` in batches of
    ``batch_size``; its previous train/eval mode is restored afterwards. Each batch is moved to
    ``device``, where the model must already live.

    Returns features (N, D) on the CPU, and with ``return_logits=True`` also the model's outputs
    (N, K) as ``(features, logits)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    name, fc = head(model)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else "cpu"
    if isinstance(x, torch.Tensor):
        batches = (x[start : start + batch_size] for start in range(0, len(x), batch_size))
    else:
        from . import data as D

        batches = (images for images, _ in D.in_order(x, batch_size))
    feats, logits = [], []
    was_training = model.training
    try:
        model.eval()
        for batch in batches:
            with capture_inputs(model, [name], detach=True) as captured:
                out = model(batch.to(device))
            if captured.calls.get(name, 0) != 1:
                raise RuntimeError(f"classifier {name!r} ran {captured.calls.get(name, 0)} times in one forward pass, "
                                   "expected once")
            g = captured[name]
            if g.dim() != 2:
                raise RuntimeError(f"classifier {name!r} received input of shape {tuple(g.shape)}, expected (batch, features)")
            feats.append(g.cpu())
            if return_logits:
                logits.append(out.detach().cpu())
    finally:
        model.train(was_training)
    f = torch.cat(feats) if feats else torch.empty(0, fc.in_features)
    if return_logits:
        return f, (torch.cat(logits) if logits else torch.empty(0, fc.out_features))
    return f


# --------------------------------------------------------------------------- metrics


def _check(f: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate (N, D) features and (N,) integer labels; return ``f`` as float64 and ``y``."""
    if f.dim() != 2:
        raise ValueError(f"features must have shape (N, D), got {tuple(f.shape)}")
    if y.dim() != 1 or len(y) != len(f):
        raise ValueError(f"labels must have shape ({len(f)},), got {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got {y.dtype}")
    if len(f) == 0:
        raise ValueError("no samples")
    return f.detach().to(torch.float64), y.detach().to(f.device)


def _class_stats(f: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class means (K, D) of float64 ``f``, per-sample class index (N,), class counts (K,)."""
    _, inverse, counts = torch.unique(y, sorted=True, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), f.shape[1], dtype=f.dtype, device=f.device).index_add_(0, inverse, f)
    return sums / counts[:, None].to(f.dtype), inverse, counts


def _pairwise_centroid_distances(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between all pairs of class means (K*(K-1)/2,), float64."""
    mu, _, _ = _class_stats(f, y)
    if len(mu) < 2:
        raise ValueError("separation needs at least two classes")
    i, j = torch.triu_indices(len(mu), len(mu), offset=1, device=mu.device)
    return (mu[i] - mu[j]).norm(dim=1)


def centroids(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Class means mu_k = mean of f_i over y_i == k, shape (K, D), for the K classes present in
    ``y``, rows in increasing label order; dtype of ``f``."""
    f64, y = _check(f, y)
    return _class_stats(f64, y)[0].to(f.dtype if f.dtype.is_floating_point else torch.float64)


def compactness(f: torch.Tensor, y: torch.Tensor) -> float:
    """Intra-class spread: mean over samples of ||f_i - mu_{y_i}||_2 (smaller = more compact)."""
    f, y = _check(f, y)
    mu, inverse, _ = _class_stats(f, y)
    return (f - mu[inverse]).norm(dim=1).mean().item()


def separation(f: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Inter-class separation: ``{"mean": mean, "min": minimum}`` over all pairs of classes of
    the Euclidean distance ||mu_j - mu_k||_2 between class means. Needs two classes."""
    f, y = _check(f, y)
    d = _pairwise_centroid_distances(f, y)
    return {"mean": d.mean().item(), "min": d.min().item()}


def fisher_ratio(f: torch.Tensor, y: torch.Tensor) -> float:
    """tr(S_B) / tr(S_W) with S_B = sum_k n_k (mu_k - mu)(mu_k - mu)^T (mu the overall mean) and
    S_W = sum_i (f_i - mu_{y_i})(f_i - mu_{y_i})^T. Invariant to scaling and shifting the features;
    larger = more discriminable. ``inf`` when every sample sits on its class mean."""
    f, y = _check(f, y)
    mu_k, inverse, counts = _class_stats(f, y)
    between = (counts.to(f.dtype) * ((mu_k - f.mean(0)) ** 2).sum(1)).sum()
    within = ((f - mu_k[inverse]) ** 2).sum()
    return (between / within).item() if within > 0 else math.inf


def logit_margin(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over samples of (logit of the true class - largest logit of the other classes);
    positive where the sample is classified correctly."""
    logits, y = _check(logits, y)
    if logits.shape[1] < 2:
        raise ValueError("logit_margin needs at least two classes (columns)")
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], -math.inf).max(1).values
    return (true - others).mean().item()


def normalised_compactness(f: torch.Tensor, y: torch.Tensor) -> float:
    """compactness(f, y) / separation(f, y)["mean"]: intra-class spread in units of the mean
    distance between class means. Scale-free, so models with different feature scales compare."""
    return compactness(f, y) / separation(f, y)["mean"]


def summary(f: torch.Tensor, y: torch.Tensor, logits: torch.Tensor | None = None) -> dict[str, float]:
    """All metrics in one flat dict: ``compactness``, ``separation_mean``, ``separation_min``,
    ``fisher_ratio``, ``normalised_compactness`` and, when ``logits`` is given, ``logit_margin``."""
    sep = separation(f, y)
    comp = compactness(f, y)
    out = {
        "compactness": comp,
        "separation_mean": sep["mean"],
        "separation_min": sep["min"],
        "fisher_ratio": fisher_ratio(f, y),
        "normalised_compactness": comp / sep["mean"],
    }
    if logits is not None:
        out["logit_margin"] = logit_margin(logits, y)
    return out


# --------------------------------------------------------------------------- heads


def _check_batch(features: torch.Tensor, labels: torch.Tensor | None, dim: int) -> None:
    if features.dim() != 2 or features.shape[1] != dim:
        raise ConfigError(f"features must have shape (batch, {dim}), got {tuple(features.shape)}")
    if labels is not None and (labels.dim() != 1 or len(labels) != len(features)):
        raise ConfigError(f"labels must have shape ({len(features)},), got {tuple(labels.shape)}")


def _check_sizes(num_classes: int, dim: int) -> None:
    if num_classes < 2:
        raise ConfigError(f"the data have {num_classes} class: a discriminative head separates classes, so the "
                          "proxy needs at least 2 (give a proxy with two or more labelled classes)")
    if dim < 1:
        raise ConfigError(f"the features have {dim} dimensions: the head needs at least 1")


class Normaliser(nn.Module):
    """A frozen per-dimension affine map z = (g - shift) / scale in front of a head.

    The statistics are buffers, fitted once (:meth:`fit`) on the features the search starts
    from and never updated: a search that shrinks its features then sees smaller z, so it cannot
    hide shrinkage behind a renormalisation, and no batch statistics couple the samples.
    """

    def __init__(self, dim: int, shift: torch.Tensor | None = None, scale: torch.Tensor | None = None):
        super().__init__()
        shift = torch.zeros(dim) if shift is None else shift.detach().clone().float()
        scale = torch.ones(dim) if scale is None else scale.detach().clone().float()
        if shift.shape != (dim,) or scale.shape != (dim,):
            raise ConfigError(f"shift and scale must have shape ({dim},), got {tuple(shift.shape)} and {tuple(scale.shape)}")
        if not (scale > 0).all():
            raise ConfigError("scale must be positive in every dimension")
        self.dim = dim
        self.register_buffer("shift", shift)
        self.register_buffer("scale", scale)

    @classmethod
    def fit(cls, feats: torch.Tensor, normalise: bool = True, *, floor: float = 0.01) -> "Normaliser":
        """z-score statistics of ``feats`` (N, D): per-dimension mean and standard deviation,
        the latter floored at ``floor`` times the mean standard deviation (a dimension that is
        constant on ``feats`` would otherwise blow up any other value); ``normalise=False``
        gives the identity map."""
        if feats.dim() != 2 or len(feats) < 2:
            raise ConfigError(f"need features of shape (N >= 2, D) to fit a normaliser, got {tuple(feats.shape)}")
        if not normalise:
            return cls(feats.shape[1])
        f = feats.detach().double()
        std = f.std(0)
        return cls(feats.shape[1], f.mean(0), std.clamp_min(max(floor * std.mean().item(), 1e-12)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.shift.to(features.dtype)) / self.scale.to(features.dtype)


COVARIANCES = ("identity", "diagonal")


class LGMLoss(nn.Module):
    """Large-margin Gaussian-mixture head (Wan et al., CVPR 2018) on frozen-normalised features.

    The features g pass through a frozen :class:`Normaliser` (identity unless given): z = (g - s) / t.
    Class k is a Gaussian N(mu_k, Sigma_k) with learnable mean ``means[k]`` and, with
    ``covariance="diagonal"``, a learnable diagonal Sigma_k = diag(exp(log_var[k])) (positive by
    construction); with ``"identity"``, Sigma_k = I. With the Mahalanobis distance
    d_k(z) = 0.5 * (z - mu_k)^T Sigma_k^{-1} (z - mu_k):

    - logits h_k = -(1 + m * [k == y]) * d_k(z) - 0.5 * log|Sigma_k| (equal priors): the margin m
      enlarges the true class's distance; with m = 0 softmax(h) is the mixture's posterior;
    - classification loss = cross entropy of h against y (mean over the batch);
    - likelihood loss = mean over the batch of d_y(z), the data-dependent part of
      -log N(z; mu_y, Sigma_y). The log-determinant is left out on purpose: it does not depend on
      the features, and with it a search could lower the loss by shrinking the features and
      letting the variances follow (-D * log c for a shrink by c);
    - loss = classification_weight * classification + likelihood_weight * likelihood
      (``classification_weight`` 0: the likelihood term alone).

    ``forward(features, labels)`` applies the margin and returns ``(loss, logits)`` with the
    margin-free logits -d_k - 0.5 log|Sigma_k| for accuracy. ``logits(features)`` needs no labels.
    The means start as N(0, init_std^2) draws or a copy of ``means`` (in normalised units), the
    log-variances as zeros or a copy of ``log_var``.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        margin: float = 0.2,
        likelihood_weight: float = 0.05,
        *,
        means: torch.Tensor | None = None,
        init_std: float = 0.01,
        covariance: str = "identity",
        log_var: torch.Tensor | None = None,
        normaliser: Normaliser | None = None,
        classification_weight: float = 1.0,
    ):
        super().__init__()
        _check_sizes(num_classes, dim)
        if classification_weight < 0:
            raise ConfigError(f"classification_weight must be >= 0, not {classification_weight}")
        self.classification_weight = float(classification_weight)
        if margin < 0:
            raise ConfigError(f"margin must be >= 0, not {margin}")
        if likelihood_weight < 0:
            raise ConfigError(f"likelihood_weight must be >= 0, not {likelihood_weight}")
        if covariance not in COVARIANCES:
            raise ConfigError(f"covariance must be one of {COVARIANCES}, not {covariance!r}")
        if means is None:
            means = torch.randn(num_classes, dim) * init_std
        elif tuple(means.shape) != (num_classes, dim):
            raise ConfigError(f"means must have shape ({num_classes}, {dim}), got {tuple(means.shape)}")
        if not means.dtype.is_floating_point:
            means = means.to(torch.get_default_dtype())
        self.num_classes, self.dim, self.covariance = num_classes, dim, covariance
        self.margin, self.likelihood_weight = float(margin), float(likelihood_weight)
        self.normaliser = normaliser if normaliser is not None else Normaliser(dim)
        if self.normaliser.dim != dim:
            raise ConfigError(f"normaliser has dim {self.normaliser.dim}, the head {dim}")
        self.means = nn.Parameter(means.detach().clone())
        if covariance == "diagonal":
            log_var = torch.zeros_like(self.means) if log_var is None else log_var.detach().clone().to(self.means.dtype)
            if log_var.shape != self.means.shape:
                raise ConfigError(f"log_var must have shape ({num_classes}, {dim}), got {tuple(log_var.shape)}")
            self.log_var = nn.Parameter(log_var)
        elif log_var is not None:
            raise ConfigError("log_var is only used with covariance='diagonal'")
        else:
            self.log_var = None

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, dim={self.dim}, margin={self.margin}, "
                f"likelihood_weight={self.likelihood_weight}, covariance={self.covariance!r}")

    def variances(self) -> torch.Tensor:
        """Diagonal of every Sigma_k, shape (K, D); all ones for identity covariance."""
        if self.log_var is None:
            return torch.ones_like(self.means)
        return self.log_var.exp()

    def log_det(self) -> torch.Tensor:
        """log|Sigma_k| for every class, shape (K,)."""
        if self.log_var is None:
            return torch.zeros(self.num_classes, dtype=self.means.dtype, device=self.means.device)
        return self.log_var.sum(1)

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """d_k(z) = 0.5 * (z - mu_k)^T Sigma_k^{-1} (z - mu_k) of the normalised features, (N, K)."""
        _check_batch(features, None, self.dim)
        z = self.normaliser(features)
        if self.log_var is None:
            sq = (z**2).sum(1, keepdim=True) - 2 * z @ self.means.T + (self.means**2).sum(1)
            return 0.5 * sq.clamp_min(0)
        prec = (-self.log_var).exp()  # (K, D)
        sq = (z**2) @ prec.T - 2 * z @ (self.means * prec).T + (self.means**2 * prec).sum(1)
        return 0.5 * sq.clamp_min(0)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Margin-free logits -d_k(z) - 0.5 log|Sigma_k|, shape (N, K)."""
        return -self.distances(features) - 0.5 * self.log_det()

    def likelihood(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of d_{y_i}(z_i) (the Mahalanobis part of -log N(z_i; mu_y, Sigma_y))."""
        _check_batch(features, labels, self.dim)
        z = self.normaliser(features)
        return 0.5 * ((z - self.means[labels]) ** 2 / self.variances()[labels]).sum(1).mean()

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cross_entropy(h, y) + likelihood_weight * likelihood, margin-free logits)``."""
        _check_batch(features, labels, self.dim)
        d = self.distances(features)
        log_det = 0.5 * self.log_det()
        scale = 1 + self.margin * F.one_hot(labels, self.num_classes).to(d.dtype)
        loss = F.cross_entropy(-scale * d - log_det, labels)
        if self.classification_weight != 1.0:
            loss = self.classification_weight * loss
        if self.likelihood_weight:
            loss = loss + self.likelihood_weight * d.gather(1, labels[:, None]).mean()
        return loss, -d - log_det


class LinearCEHead(nn.Module):
    """The ablation head: ``nn.Linear(dim, num_classes)`` with plain cross entropy (no margin,
    no likelihood), on the same frozen :class:`Normaliser` as the L-GM head. Same interface as
    :class:`LGMLoss`."""

    def __init__(self, num_classes: int, dim: int, *, normaliser: Normaliser | None = None):
        super().__init__()
        _check_sizes(num_classes, dim)
        self.num_classes, self.dim = num_classes, dim
        self.normaliser = normaliser if normaliser is not None else Normaliser(dim)
        if self.normaliser.dim != dim:
            raise ConfigError(f"normaliser has dim {self.normaliser.dim}, the head {dim}")
        self.fc = nn.Linear(dim, num_classes)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """W z + b with z the normalised features, shape (N, K)."""
        _check_batch(features, None, self.dim)
        return self.fc(self.normaliser(features))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cross_entropy(W z + b, y), W z + b)``."""
        _check_batch(features, labels, self.dim)
        logits = self.logits(features)
        return F.cross_entropy(logits, labels), logits
