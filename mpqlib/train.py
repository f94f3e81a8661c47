"""The one training loop (full precision, search and QAT share it), evaluation, checkpoints.

The loop takes everything it depends on as arguments (model, loader with its sampler, device,
optimizer, loss): nothing global, so the same function runs under ``torchrun`` with the model
wrapped in ``DistributedDataParallel`` and a sampler built with the process's rank.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import data as D
from ._io import code_version, torch_save, write_json

Step = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch, and make torch's CPU kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(x)
    return F.cross_entropy(logits, y), logits


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(e["seconds"] for e in self.epochs)

    @property
    def images(self) -> int:
        return sum(e["images"] for e in self.epochs)


def fit(model: nn.Module, loader: torch.utils.data.DataLoader, optimizer: torch.optim.Optimizer, *,
        epochs: int, step: Step = cross_entropy, scheduler=None, augment: bool = False, seed: int = 0,
        device: torch.device | str = "cpu", state_path: str | os.PathLike | None = None,
        desc: str = "train", progress: bool = True, train_mode: bool = True) -> History:
    """Train ``model`` for ``epochs`` epochs; returns per-epoch loss, accuracy, seconds and images.

    ``scheduler`` steps once per batch. ``train_mode=False`` keeps the model in eval mode
    (frozen BatchNorm statistics, as in a search over a frozen backbone). With ``state_path`` the model, optimizer and scheduler
    state are saved atomically after every epoch and a rerun resumes after the last finished one.
    """
    device = torch.device(device)
    history, start = History(), 0
    if state_path is not None and Path(state_path).exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        history.epochs, start = state["history"], state["epoch"]
    sampler = loader.sampler
    for epoch in range(start, epochs):
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        model.train(train_mode)
        t0, seen, correct, total_loss = time.perf_counter(), 0, 0, 0.0
        bar = tqdm(loader, desc=f"{desc} {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            if augment:
                x = D.augment(x, g)
            loss, logits = step(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            seen += len(y)
            total_loss += loss.item() * len(y)
            if logits is not None:
                correct += (logits.argmax(1) == y).sum().item()
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
        history.epochs.append({"epoch": epoch + 1, "loss": total_loss / seen, "train_top1": 100 * correct / seen,
                               "seconds": time.perf_counter() - t0, "images": seen})
        if state_path is not None:
            torch_save(state_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                    "scheduler": scheduler.state_dict() if scheduler is not None else {},
                                    "history": history.epochs, "epoch": epoch + 1})
    return history


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000, device: torch.device | str = "cpu") -> torch.Tensor:
    """Logits of ``model`` (in eval mode) for every row of ``x``."""
    model.eval()
    return torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


@torch.no_grad()
def evaluate(model: nn.Module, data, batch_size: int = 1000, device: torch.device | str | None = None) -> float:
    """Top-1 accuracy in percent on ``data`` (Images, a dataset of (image, label), or a
    DataLoader), read once in batches; ``device`` None: the model's device."""
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else "cpu"
    was = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in D.in_order(data, batch_size):
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
            total += len(y)
    finally:
        model.train(was)
    if total == 0:
        raise D.DataError(f"{D.describe(data)} holds no images to evaluate on")
    return 100.0 * correct / total


# --------------------------------------------------------------------------- checkpoints

class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not belong to the model asked for."""


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict) -> Path:
    """Write ``{"state_dict", "meta"}`` atomically; ``meta`` gains the code version."""
    meta = {**meta, "code_version": meta.get("code_version", code_version()), "torch": str(torch.__version__)}
    return torch_save(path, {"state_dict": model.state_dict(), "meta": meta})


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *, arch: str | None = None) -> tuple[nn.Module, dict]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Without ``model`` one is built from the checkpoint's ``arch``. A missing or corrupt file,
    an architecture other than ``arch``, or weights that do not fit ``model`` raise
    :class:`CheckpointError` saying what is wrong.
    """
    from .models import build

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found; train one with `mpq train --out {path}` "
                              "(or pass the path of an existing checkpoint)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); "
                              "it is corrupt or not a torch checkpoint: retrain it or restore it from git") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "meta" not in ckpt:
        raise CheckpointError(f"{path} is not an mpqlib checkpoint (expected keys 'state_dict' and 'meta')")
    meta = ckpt["meta"]
    if arch is not None and meta.get("arch") != arch:
        raise CheckpointError(f"{path} holds a {meta.get('arch')!r} model, not {arch!r}")
    if model is None:
        model = build(meta["arch"], meta.get("num_classes", 10))
    missing, unexpected = _diff_keys(model.state_dict(), ckpt["state_dict"])
    if missing or unexpected:
        raise CheckpointError(f"{path} ({meta.get('arch')}) does not match {type(model).__name__}: "
                              f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                              f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the model: {e}") from e
    return model, meta


def _diff_keys(want: dict, got: dict) -> tuple[list[str], list[str]]:
    return sorted(set(want) - set(got)), sorted(set(got) - set(want))


# --------------------------------------------------------------------------- full-precision recipe

def train_fp(arch: str = "resnet20", *, epochs: int = 15, batch_size: int = 128, lr: float = 0.1,
             weight_decay: float = 5e-4, seed: int = 0, out: str | os.PathLike = "checkpoints/resnet20-fmnist.pt",
             data_root: str | None = None, device: str = "cpu", progress: bool = True) -> dict:
    """Train ``arch`` on Fashion-MNIST (SGD + Nesterov, one-cycle cosine, crop+flip) and save it.

    Resumable: the training state after each epoch lives beside ``out`` until the run ends.
    Returns the checkpoint's metadata (accuracy, time, ...).
    """
    from .models import build

    seed_everything(seed)
    train_set, test_set = D.load("fmnist", "train", data_root), D.load("fmnist", "test", data_root)
    model = build(arch, train_set.num_classes).to(device)
    dl = D.loader(train_set, batch_size, seed=seed)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(dl), pct_start=0.15,
                                                anneal_strategy="cos", div_factor=10, final_div_factor=100)
    out = Path(out)
    state = out.with_name(out.name + ".state")
    hist = fit(model, dl, opt, epochs=epochs, scheduler=sched, augment=True, seed=seed, device=device,
               state_path=state, desc=f"{arch} fp", progress=progress)
    top1 = evaluate(model, test_set, device=device)
    meta = {"arch": arch, "dataset": "fmnist", "num_classes": train_set.num_classes, "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed, "top1": round(top1, 2),
            "train_seconds": round(hist.seconds, 1), "train_images": hist.images, "history": hist.epochs}
    save_checkpoint(out, model, meta)
    write_json(out.with_suffix(".json"), {**meta, "code_version": code_version(), "checkpoint": out.name})
    state.unlink(missing_ok=True)
    return meta
