"""Quantization-aware training (LSQ) of the full-precision target model under a policy.

One short recipe for every policy, so that policies are compared and not recipes: SGD with
Nesterov momentum, cosine learning rate from ``lr`` to 0, weight decay on weights only (none on
step sizes, BN, biases), crop+flip augmentation, steps initialised on one calibration batch.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import torch
from torch import nn

from . import data as D
from .policy import Policy
from .quant import quantize
from .train import evaluate, fit, seed_everything


@dataclass
class QATConfig:
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.01
    lr_step: float = 0.001
    weight_decay: float = 5e-5
    train_images: int | None = None  # a class-balanced subset of the training set; None = all

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise TypeError(f"epochs must be a positive int, not {self.epochs!r}")


def qat(model: nn.Module, policy: Policy, train: D.Images, test: D.Images, cfg: QATConfig | None = None, *,
        seed: int = 0, device: str = "cpu", state_path: str | os.PathLike | None = None,
        progress: bool = True) -> tuple[nn.Module, dict]:
    """Fine-tune a quantized copy of ``model`` under ``policy``; returns it and a record with
    top-1 on ``test`` (percent), wall time and images. Resumable through ``state_path``."""
    cfg = cfg or QATConfig()
    seed_everything(seed)
    if cfg.train_images is not None:
        train = D.balanced_subset(train, size=cfg.train_images, seed=seed)
    g = torch.Generator().manual_seed(seed)
    calib = train.x[torch.randperm(len(train), generator=g)[: cfg.batch_size]]
    qmodel = quantize(model, policy, calibration=calib).to(device)
    steps = [p for n, p in qmodel.named_parameters() if n.endswith(".step")]
    weights = [p for n, p in qmodel.named_parameters() if not n.endswith(".step") and p.ndim > 1]
    others = [p for n, p in qmodel.named_parameters() if not n.endswith(".step") and p.ndim <= 1]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": cfg.weight_decay},
                           {"params": others, "weight_decay": 0.0},
                           {"params": steps, "weight_decay": 0.0, "lr": cfg.lr_step}],
                          lr=cfg.lr, momentum=0.9, nesterov=True)
    dl = D.loader(train, cfg.batch_size, seed=seed)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * len(dl))
    hist = fit(qmodel, dl, opt, epochs=cfg.epochs, scheduler=sched, augment=True, seed=seed, device=device,
               state_path=state_path, desc="qat", progress=progress)
    top1 = evaluate(qmodel, test, device=device)
    return qmodel, {"top1": top1, "seed": seed, "seconds": hist.seconds, "images": hist.images, "config": asdict(cfg)}
