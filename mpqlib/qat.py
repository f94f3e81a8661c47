"""Quantization-aware training (LSQ) of the full-precision target model under a policy.

One short recipe for every policy, so that policies are compared and not recipes: SGD with
Nesterov momentum, cosine learning rate from ``lr`` to 0, weight decay on weights only (none on
step sizes, BN, biases), crop+flip augmentation, steps initialised on one calibration batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from . import data as D
from .config import QATConfig
from .errors import CheckpointError
from ._io import sha256_file
from .policy import Policy
from .quant import quantize
from .train import evaluate, fit, seed_everything

__all__ = ["QATConfig", "qat", "save_state", "load_state", "check_state"]


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


# --------------------------------------------------------------------------- the fine-tuned state
def save_state(path: str | os.PathLike, qmodel: nn.Module, policy: Policy, input_size: tuple[int, ...],
               checkpoint: str | os.PathLike | None, record: dict | None = None, *,
               classes: list[str] | None = None, preprocessing: dict | None = None, arch: str | None = None,
               num_classes: int | None = None) -> Path:
    """Write a fine-tuned quantized model with what it was trained with: ``{"state_dict", "meta"}``,
    ``meta`` holding the policy, the input size (C, H, W) and the sha256 of the full-precision
    checkpoint it started from, so that :func:`load_state` can refuse any other combination, the
    architecture and its classes (a plain state dict's checkpoint does not say them), and
    (image folders) the class names in label order and the preprocessing (crop, resize,
    normalisation) that every later reading of data must match."""
    from ._io import torch_save
    from .train import state_dict

    meta = {"kind": "qat", "policy": policy.to_dict(), "input_size": [int(v) for v in tuple(input_size)[-3:]],
            "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
            "checkpoint_sha256": sha256_file(checkpoint) if checkpoint else None,
            **({"top1": round(float(record["top1"]), 2)} if record and "top1" in record else {}),
            **({"classes": list(classes)} if classes else {}), **({"preprocessing": preprocessing} if preprocessing else {}),
            **({"arch": arch} if arch else {}), **({"num_classes": int(num_classes)} if num_classes else {})}
    return torch_save(path, {"state_dict": state_dict(qmodel), "meta": meta})


def load_state(path: str | os.PathLike) -> tuple[dict, dict]:
    """(state dict, meta) of a QAT state; a plain state dict (older files) has empty ``meta``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"QAT state {path} not found; write one with `mpq qat --out {path}`")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise CheckpointError(f"QAT state {path} cannot be read ({type(e).__name__}); it is damaged or not a "
                              "torch file: rerun `mpq qat --out`") from None
    if isinstance(obj, dict) and isinstance(obj.get("meta"), dict) and obj["meta"].get("kind") == "qat":
        return obj["state_dict"], obj["meta"]
    return obj, {}


def check_state(meta: dict, path: str | os.PathLike, *, policy: Policy | None, policy_path: str | None,
                input_size: tuple[int, ...] | None, checkpoint: str | os.PathLike | None) -> None:
    """Refuse a QAT state used with another policy, input size or checkpoint than it was trained with."""
    if policy is not None:
        theirs = Policy.from_dict(meta["policy"])
        if theirs != policy:
            differ = [n for n in theirs.all_bits if theirs.all_bits.get(n) != policy.all_bits.get(n)]
            raise CheckpointError(f"{path} was fine-tuned under another policy than {policy_path} ({len(differ)} layers "
                                  f"differ, first {differ[0]}: W{theirs.all_bits[differ[0]][0]}A{theirs.all_bits[differ[0]][1]} "
                                  "there); drop --policy to use the policy the state carries")
    size = tuple(meta["input_size"])
    if input_size is not None and tuple(input_size)[-3:] != size:
        raise CheckpointError(f"{path} was fine-tuned at input {'x'.join(map(str, size))}, not "
                              f"{'x'.join(map(str, tuple(input_size)[-3:]))}: drop --input-size or pass "
                              f"--input-size {','.join(map(str, size))}")
    want = meta.get("checkpoint_sha256")
    if want and checkpoint is not None and sha256_file(checkpoint) != want:
        raise CheckpointError(f"{path} was fine-tuned from another checkpoint than {checkpoint} (sha256 differs; it "
                              f"started from {meta.get('checkpoint')}): pass --checkpoint {meta.get('checkpoint')}")
