"""A training-free search in the style of OMPQ (Ma et al., "OMPQ: Orthogonal Mixed Precision
Quantization", AAAI 2023): layer orthogonality from one batch of features, then an integer program.

What follows OMPQ (its public code, ``mixed_bit/feature_extract.py`` and ``ORM.py``):

* one batch of images through the full-precision model; each layer's output feature map,
  flattened per image, is that layer's feature matrix (N x d_l);
* the orthogonality matrix is linear CKA between every pair of layers (centred Gram matrices,
  the biased HSIC estimator);
* a layer's orthogonality score is ``theta_l = exp(-beta * sum_{j != l} CKA(l, j))``: a layer
  whose features repeat the others' is less important, one that adds an orthogonal view more;
* the objective weight of layer ``l`` is the mean of ``theta`` over layers ``l..L`` (a change to
  an early layer reaches every later one);
* the bits then maximise the importance-weighted bit-width under the budget.

What is reconstructed here: OMPQ gives each layer one weight width (continuous fractions solved
by SLSQP under a model-size limit, then rounded) and keeps activations at one uniform width; here
the project's ILP (:func:`mpqlib.search.readout`) picks exact widths under the BitOps budget,
like every other search in the harness, maximising ``sum_l importance_l * (w_l + a_l)``. With
``pairs="shared"`` (the default) a layer's weights and activations take the same width, one
number per layer as in OMPQ; with ``"independent"`` any (w, a) pair is allowed, and since BitOps
grow with w x a while the objective grows with w + a, the ILP then prefers lopsided pairs such
as W2A6 (a property of the linear objective, not of the importance). The features are those of the searchable layers only (the fixed
first conv and last FC stay at 8 bits). Nothing is trained, so the data may be the proxy or
the target: only the images are used, never the labels.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from .. import data as D
from ..config import OrthogonalityConfig, register_runner
from ..cost import cost_model
from ..errors import ConfigError
from ..train import seed_everything
from .result import Meter, SearchResult, make_record, readout


@torch.no_grad()
def layer_outputs(model: nn.Module, x: torch.Tensor, layers: list[str]) -> list[torch.Tensor]:
    """The output of each of ``layers`` for the batch ``x``, flattened per image (N x d_l)."""
    out: dict[str, torch.Tensor] = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, a, y, n=n: out.__setitem__(n, y.detach()))
             for n in layers]
    try:
        model.eval()
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return [out[n].reshape(len(x), -1).double() for n in layers]


def _centred_gram(f: torch.Tensor) -> torch.Tensor:
    """The linear-kernel Gram matrix of the rows of ``f``, double-centred (H K H)."""
    k = f @ f.T
    return k - k.mean(0, keepdim=True) - k.mean(1, keepdim=True) + k.mean()


def cka_matrix(features: list[torch.Tensor]) -> np.ndarray:
    """Linear CKA between every pair of feature matrices (rows: the same images), L x L, in [0, 1].

    A layer whose features are all constant on the batch has no Gram structure: its CKA with
    every layer is taken as 0 (it says nothing about the others)."""
    grams = [_centred_gram(f) for f in features]
    norms = torch.stack([g.norm() for g in grams])
    flat = torch.stack([g.reshape(-1) for g in grams])
    hsic = flat @ flat.T
    denom = norms[:, None] * norms[None, :]
    cka = torch.where(denom > 0, hsic / denom.clamp_min(1e-300), torch.zeros_like(hsic))
    return cka.clamp(0, 1).numpy()


def orthogonality_scores(cka: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """OMPQ's per-layer score ``exp(-beta * sum_{j != l} CKA(l, j))``: high for a layer orthogonal
    to the others, low for one whose features the others already carry."""
    cka = np.asarray(cka, dtype=float)
    overlap = cka.sum(1) - np.diag(cka)
    return np.exp(-beta * overlap)


def ompq_importance(theta: np.ndarray) -> np.ndarray:
    """OMPQ's objective weight of layer ``l``: the mean of ``theta`` over layers ``l`` .. last."""
    theta = np.asarray(theta, dtype=float)
    tail_sums = np.cumsum(theta[::-1])[::-1]
    return tail_sums / np.arange(len(theta), 0, -1)


def importance_cost(importance: np.ndarray, choices: list[tuple[int, int]]) -> np.ndarray:
    """The ILP cost (to minimise) of every layer and (w, a) choice: -importance x (w + a)."""
    bits = np.array([w + a for w, a in choices], dtype=float)
    return -np.asarray(importance, dtype=float)[:, None] * bits[None, :]


def pair_choices(candidates, pairs: str = "shared") -> list[tuple[int, int]]:
    """The (w, a) choices of a layer: equal widths (``shared``) or every pair (``independent``)."""
    if pairs == "shared":
        return [(b, b) for b in candidates]
    return list(itertools.product(candidates, candidates))


@register_runner(OrthogonalityConfig)
def orthogonality(model: nn.Module, data, budget: int | None, cfg: OrthogonalityConfig | None = None, *,
                  device=None, progress: bool = True, input_size=None, val_data=None, sampler=None) -> SearchResult:
    """OMPQ-style search: CKA between the searchable layers' outputs on ``cfg.images`` images of
    ``data`` (proxy or target; labels unused), OMPQ's importance, then the ILP under ``budget``.
    ``val_data`` and ``sampler`` are unused (nothing is trained or scored)."""
    cfg = cfg or OrthogonalityConfig()
    if not isinstance(cfg, OrthogonalityConfig):
        raise ConfigError(f"orthogonality() takes an OrthogonalityConfig, not {type(cfg).__name__}")
    seed_everything(cfg.seed)
    device = torch.device(device or "cpu")
    input_size = D.check_fits(data, input_size)
    model = model.to(device).eval()
    cost = cost_model(model, input_size)
    choices = pair_choices(cfg.candidates, cfg.pairs)
    name = D.describe(data)
    with Meter() as meter:
        x, _ = D.take(data, cfg.images, seed=cfg.seed)
        if len(x) < 3:
            raise ConfigError(f"orthogonality needs at least 3 images for CKA, {name} gave {len(x)}")
        feats = [f.cpu() for f in layer_outputs(model, x.to(device), cost.names)]
        cka = cka_matrix(feats)
        theta = orthogonality_scores(cka, cfg.beta)
        importance = ompq_importance(theta)
        policy = readout(cost, importance_cost(importance, choices), choices, budget, method="orthogonality",
                         search_data=name, seed=cfg.seed)
    record = make_record("orthogonality", name, meter, epochs=0, images=len(x), seed=cfg.seed, budget=budget,
                         cost=cost, policy=policy, config=cfg.to_dict())
    policy.provenance["code_version"] = record["code_version"]
    extras = {"layers": cost.names, "cka": cka.round(5).tolist(), "theta": theta.round(6).tolist(),
              "importance": importance.round(6).tolist(), "candidates": list(cfg.candidates)}
    return SearchResult(policy, record, extras)
