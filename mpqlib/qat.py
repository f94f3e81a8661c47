"""Quantization-aware training (LSQ) of the full-precision target model under a policy.

One short recipe for every policy, so that policies are compared and not recipes: SGD with
Nesterov momentum, cosine learning rate from ``lr`` to 0, weight decay on weights only (none on
step sizes, BN, biases), crop+flip augmentation, steps initialised on one calibration batch.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from . import data as D
from .config import QATConfig
from .policy import Policy
from .quant import quantize
from .train import evaluate, fit, seed_everything

__all__ = ["QATConfig", "qat"]


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def qat(model: nn.Module, policy: Policy, train, test, cfg: QATConfig | None = None, *, seed: int = 0,
        device: str | torch.device | None = None, state_path: str | os.PathLike | None = None,
        progress: bool = True, sampler=None, input_size: tuple[int, ...] | None = None) -> tuple[nn.Module, dict]:
    """Fine-tune a quantized copy of ``model`` under ``policy``; returns it and a record with
    top-1 on ``test`` (percent), wall time and images. Resumable through ``state_path``.

    ``train`` and ``test`` are :class:`~mpqlib.data.Images`, datasets of (image, label) or
    DataLoaders, streamed in batches; ``cfg.train_images`` takes a class-balanced subset of
    ``train`` (:func:`~mpqlib.data.proxy_subset`). ``device`` None: the model's device.
    ``sampler`` orders the training batches (a ``DistributedSampler``, say; see
    :func:`~mpqlib.data.as_loader`). Images that do not fit ``input_size`` raise a DataError."""
    cfg = cfg or QATConfig()
    device = torch.device(device) if device is not None else _model_device(model)
    seed_everything(seed)
    input_size = D.check_fits(test, D.check_fits(train, input_size))
    D.check_model_takes(model, input_size, train)
    if cfg.train_images is not None:
        train = D.proxy_subset(train, size=cfg.train_images, seed=seed)
    calib, _ = D.take(train, cfg.batch_size, seed)
    qmodel = quantize(model, policy, calibration=calib.to(_model_device(model))).to(device)
    steps = [p for n, p in qmodel.named_parameters() if n.endswith(".step")]
    weights = [p for n, p in qmodel.named_parameters() if not n.endswith(".step") and p.ndim > 1]
    others = [p for n, p in qmodel.named_parameters() if not n.endswith(".step") and p.ndim <= 1]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": cfg.weight_decay},
                           {"params": others, "weight_decay": 0.0},
                           {"params": steps, "weight_decay": 0.0, "lr": cfg.lr_step}],
                          lr=cfg.lr, momentum=0.9, nesterov=True)
    dl = D.as_loader(train, cfg.batch_size, seed=seed, sampler=sampler)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * len(dl))
    hist = fit(qmodel, dl, opt, epochs=cfg.epochs, scheduler=sched, augment=True, seed=seed, device=device,
               state_path=state_path, desc="qat", progress=progress, sync_bn=cfg.sync_bn)
    top1 = evaluate(qmodel, test, device=device)
    return qmodel, {"top1": top1, "seed": seed, "seconds": hist.seconds, "images": hist.images,
                    "config": cfg.to_dict(), "config_type": type(cfg).__name__}
