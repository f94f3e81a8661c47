"""A FracBits-class search: weights, BatchNorm and bit-width parameters trained together on the
full target data, for as long as the search needs to converge.

FracBits (Yang & Jin, AAAI 2021) learns fractional bit-widths jointly with the network's weights
on ImageNet; the paper's 297x compares SEAM against this class of method. Reconstructed here
in the project's machinery: the supernet of :mod:`mpqlib.search.supernet` (softmax mixing of
the candidate bit-widths, EdMIPS style, instead of FracBits' interpolation between two
neighbouring integer bit-widths), *every* parameter trainable (weights, BatchNorm, LSQ step
sizes, mixing logits; BatchNorm in training mode), the model's own classifier with
cross-entropy plus the hinge complexity term ``gamma * max(0, E[BitOps] / budget - 1)`` of the
other searches, and the ILP readout over ``-log p`` (:func:`~mpqlib.search.differentiable.read_policy`).

Convergence is judged on held-out target data (``val_data``, or ``cfg.val_images`` images split
off the training data, seeded): after every epoch the search loss (cross-entropy + complexity
term) of the supernet is measured on them; the search stops when it has not improved for
``cfg.patience`` epochs (``"patience"``) or after ``cfg.epochs`` (``"epochs"``). The mixing
weights of the epoch with the lowest held-out loss are read out (early stopping restores the
best epoch). The jointly trained weights are discarded: every policy gets the common QAT from
the full-precision model, so that policies are compared and not fine-tunes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from .. import data as D
from ..config import JointConfig, register_runner
from ..cost import cost_model
from ..errors import ConfigError, DataError
from ..models import head as find_head
from ..train import fit, seed_everything
from .result import Meter, SearchResult, make_record
from .differentiable import read_policy
from .supernet import arch_parameters, expected_bitops, search_optimiser, step_parameters, supernet


def split_off(data, n: int, seed: int = 0):
    """``(rest, held)``: ``n`` seeded random items of ``data`` held out, the rest to train on.

    An :class:`~mpqlib.data.Images` splits into two ``Images``; any other dataset (or a
    DataLoader's dataset) into two ``Subset`` views that read lazily."""
    base = data.dataset if isinstance(data, DataLoader) else data
    total = len(base)
    if not 0 < n < total:
        raise ConfigError(f"cannot hold out {n} of the {total} images of {D.describe(data)}: ask for val_images "
                          f"between 1 and {total - 1}, or pass val_data")
    perm = torch.randperm(total, generator=torch.Generator().manual_seed(seed))
    held, rest = torch.sort(perm[:n]).values, torch.sort(perm[n:]).values
    if isinstance(base, D.Images):
        return base.subset(rest, f"{base.name}-train{len(rest)}"), base.subset(held, f"{base.name}-val{n}")
    return Subset(base, rest.tolist()), Subset(base, held.tolist())


def train_and_held_out(data, val_data, val_images: int, seed: int):
    """The search's training data and its held-out data: ``val_data`` when given, else a split."""
    if val_data is None:
        return split_off(data, val_images, seed)
    if len(val_data) == 0:
        raise DataError(f"val_data {D.describe(val_data)} holds no images")
    return data, val_data


@torch.no_grad()
def held_out_score(net: nn.Module, data, *, batch_size: int = 256, device="cpu") -> tuple[float, float]:
    """Mean cross-entropy and top-1 (percent) of ``net`` (eval mode) on every image of ``data``."""
    net.eval()
    loss, correct, seen = 0.0, 0, 0
    for x, y in D.as_loader(data, batch_size, shuffle=False):
        x, y = x.to(device), y.to(device)
        logits = net(x)
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return loss / seen, 100.0 * correct / seen


def patience_exhausted(losses: list[float], patience: int) -> bool:
    """True when the last ``patience`` held-out losses did not improve on the best before them."""
    return len(losses) - 1 - int(np.argmin(losses)) >= patience


def refuse_sampler(sampler, method: str) -> None:
    """The searches that split held-out data off their training data order their own batches."""
    if sampler is not None:
        raise ConfigError(f"{method} splits held-out data off the search data and orders its own batches: "
                          "it takes no sampler (run it in one process)")


def check_classes(model: nn.Module, data, method: str) -> None:
    """The model's classifier must predict ``data``'s classes (searches on the target)."""
    out, k = find_head(model)[1].out_features, D.num_classes(data)
    if out != k:
        raise DataError(f"{method} trains with the model's own classifier ({out} classes) but {D.describe(data)} "
                        f"has {k}: search on the target data (use 'seam' or 'orthogonality' for proxy data)")


def prepare_target_search(model: nn.Module, data, cfg, config_type: type, method: str, *, device, sampler, input_size):
    """The checks and set-up every search on the target data starts with: the config's type, no
    outside sampler, seeding, the device (None: the model's), the input size, the classes, the
    cost model. Returns ``(model in eval mode on the device, device, input_size, cost, data name)``."""
    if not isinstance(cfg, config_type):
        raise ConfigError(f"{method}() takes a {config_type.__name__}, not {type(cfg).__name__}")
    refuse_sampler(sampler, method)
    seed_everything(cfg.seed)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else "cpu"
    device = torch.device(device)
    input_size = D.check_fits(data, input_size)
    check_classes(model, data, method)
    model = model.to(device).eval()
    return model, device, input_size, cost_model(model, input_size), D.describe(data)


@register_runner(JointConfig)
def joint(model: nn.Module, data, budget: int | None, cfg: JointConfig | None = None, *, device=None,
          progress: bool = True, input_size=None, val_data=None, sampler=None) -> SearchResult:
    """Train weights and bit-width parameters together on the target ``data`` until the held-out
    loss stops improving; read the best epoch's mixing weights out with the ILP under ``budget``."""
    cfg = cfg or JointConfig()
    model, device, input_size, cost, name = prepare_target_search(model, data, cfg, JointConfig, "joint", device=device,
                                                                  sampler=sampler, input_size=input_size)
    with Meter() as meter:
        train, held = train_and_held_out(data, val_data, cfg.val_images, cfg.seed)
        calib, _ = D.take(train, cfg.batch_size, seed=cfg.seed)
        net, mixed = supernet(model, cfg.candidates, cost=cost, calibration=calib.to(device))
        arch, steps = arch_parameters(mixed), step_parameters(net)
        opt = search_optimiser(net, (arch, cfg.lr_arch), (steps, cfg.lr_step), backbone_lr=cfg.lr_backbone)

        def complexity() -> torch.Tensor:
            if not (cfg.gamma and budget):
                return torch.zeros((), device=device)
            return cfg.gamma * F.relu(expected_bitops(mixed) / budget - 1)

        def step(net_, x, y):
            logits = net_(x)
            return F.cross_entropy(logits, y) + complexity(), logits

        def probs() -> tuple[np.ndarray, np.ndarray]:
            return tuple(torch.stack([m.probs()[i] for m in mixed.values()]).detach().cpu().numpy() for i in (0, 1))

        history, best, best_epoch, best_probs, reason, images = [], math.inf, 0, probs(), "epochs", 0
        for epoch in range(cfg.epochs):
            loader = D.as_loader(train, cfg.batch_size, seed=cfg.seed * 1000 + epoch)
            hist = fit(net, loader, opt, epochs=1, step=step, seed=cfg.seed * 1000 + epoch, device=device,
                       desc=f"joint on {name}, epoch {epoch + 1}", progress=progress)
            images += hist.images
            ce, top1 = held_out_score(net, held, batch_size=max(cfg.batch_size, 256), device=device)
            with torch.no_grad():
                loss = ce + complexity().item()
            history.append({"epoch": epoch + 1, "train_loss": hist.epochs[0]["loss"],
                            "train_top1": hist.epochs[0]["train_top1"], "held_out_loss": loss, "held_out_ce": ce,
                            "held_out_top1": top1, "expected_bitops": float(expected_bitops(mixed).item()),
                            "seconds": hist.seconds})
            if loss < best:
                best, best_epoch, best_probs = loss, epoch + 1, probs()
            if patience_exhausted([h["held_out_loss"] for h in history], cfg.patience):
                reason = "patience"
                break
        pw, pa = best_probs
        policy = read_policy(cost, pw, pa, cfg.candidates, budget, cfg.readout, method="joint", fill=cfg.fill,
                             search_data=name, seed=cfg.seed)
    record = make_record("joint", name, meter, epochs=len(history), images=images + len(calib), seed=cfg.seed,
                         budget=budget, cost=cost, policy=policy, config=cfg.to_dict())
    record["held_out_images"] = len(held) * len(history)
    record["convergence"] = {"reason": reason, "best_epoch": best_epoch, "epochs_run": len(history),
                             "patience": cfg.patience, "max_epochs": cfg.epochs, "held_out": D.describe(held),
                             "judged_on": "held-out cross-entropy + complexity term, after every epoch"}
    policy.provenance["code_version"] = record["code_version"]
    extras = {"layers": list(mixed), "candidates": list(cfg.candidates), "p_w": pw.round(5).tolist(),
              "p_a": pa.round(5).tolist(), "history": history}
    return SearchResult(policy, record, extras)
