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
from . import distributed as dist
from ._io import code_version, torch_save, write_json
from .config import TrainConfig
from .errors import CheckpointError, ConfigError, TrainingError

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


def fit(model: nn.Module, loader, optimizer: torch.optim.Optimizer, *,
        epochs: int, step: Step = cross_entropy, scheduler=None, augment: bool = False, seed: int = 0,
        device: torch.device | str = "cpu", state_path: str | os.PathLike | None = None,
        desc: str = "train", progress: bool = True, train_mode: bool = True, sync_bn: bool = False,
        settings: dict | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs; returns per-epoch loss, accuracy, seconds and images.

    ``loader`` is a DataLoader or anything :func:`mpqlib.data.as_loader` reads (an ``Images``,
    a Dataset). ``scheduler`` steps once per batch. ``train_mode=False`` keeps the model in eval
    mode (frozen BatchNorm statistics, as in a search over a frozen backbone). With
    ``state_path`` the model, optimizer and scheduler state are saved atomically after every
    epoch and a rerun resumes after the last finished one. The first non-finite loss stops the
    run with a :class:`TrainingError` before it reaches the weights.

    Under ``torchrun`` (:mod:`mpqlib.distributed`) each process trains on its share of every
    global batch, the gradients are averaged (DDP, or by hand for optimised parameters outside
    ``model``), loss and accuracy are summed over all processes, rank 0 writes the state.
    """
    device = torch.device(device)
    loader = dist.shard(D.as_loader(loader))
    history, start = History(), 0
    if state_path is not None and Path(state_path).exists():
        start = _resume(state_path, model, optimizer, scheduler, history, device, settings)
    net, outside = _parallel(model, optimizer, device, sync_bn)
    parts = dist.emulated()  # one process computing as `parts` would
    if parts > 1:
        sampler = loader.batch_sampler if isinstance(loader.batch_sampler, D.ShuffledBatches) else loader.sampler
        dist.check_split(getattr(sampler, "batch_size", 0), parts, "emulated ")
    samplers = [s for s in (loader.sampler, loader.batch_sampler) if hasattr(s, "set_epoch")]
    for epoch in range(start, epochs):
        for s in samplers:
            s.set_epoch(epoch)
        g = torch.Generator().manual_seed(seed * 1000 + epoch)
        net.train(train_mode)
        t0, totals = time.perf_counter(), torch.zeros(3, dtype=torch.float64, device=device)
        bar = tqdm(loader, desc=f"{desc} {epoch + 1}/{epochs}", disable=not (progress and dist.is_main()), leave=False)
        for batch, (x, y) in enumerate(bar):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if augment:
                x = _augment_share(x, g)
            buffers = [b.clone() for b in model.buffers()]  # BatchNorm statistics before this batch
            optimizer.zero_grad(set_to_none=True)
            shares = _shares(x, y, parts)
            if not shares:  # fewer images than processes: N processes take no step here either
                continue
            batch_totals, first = torch.zeros(3, dtype=torch.float64, device=device), None
            for part, (xs, ys) in enumerate(shares):
                loss, logits = step(net, xs, ys)
                part_totals = _batch_totals(loss, logits, ys)
                if not torch.isfinite(part_totals[0]):
                    _copy(model.buffers(), buffers)
                    raise TrainingError(f"{desc}: the loss is not finite ({part_totals[0].item()}) at epoch {epoch + 1}, "
                                        f"batch {batch + 1}: look for NaN or inf in the input data, or lower the "
                                        "learning rate; weights and BatchNorm statistics keep their last finite values, nothing is saved")
                loss.backward()
                batch_totals += part_totals
                if part == 0 and parts > 1:
                    first = [b.clone() for b in model.buffers()]
            trained = [p for group in optimizer.param_groups for p in group["params"]]
            if first is not None:  # N processes keep rank 0's statistics (DDP broadcasts its buffers)
                _copy(model.buffers(), first)
                for p in trained:
                    if p.grad is not None:
                        p.grad /= parts
            if outside:
                dist.average_gradients(trained)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            totals += batch_totals
            bar.set_postfix(loss=f"{totals[0].item() / totals[2].item():.3f}",
                            acc=f"{100 * totals[1].item() / totals[2].item():.1f}")
        loss_sum, correct, seen = totals.tolist()
        history.epochs.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_top1": 100 * correct / seen,
                               "seconds": time.perf_counter() - t0, "images": int(seen)})
        if state_path is not None:
            state = {"model": state_dict(model), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else {},
                     "history": history.epochs, "epoch": epoch + 1, "settings": settings or {}}
            with dist.main_process_writes() as writer:
                if writer:
                    torch_save(state_path, state)
    return history


def _shares(x: torch.Tensor, y: torch.Tensor, parts: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``parts`` equal shares of a global batch that ``parts`` processes would take (the
    images that do not split evenly left out, as :class:`mpqlib.data.ShuffledBatches` does)."""
    if parts == 1:
        return [(x, y)]
    share = len(x) // parts
    return [(x[r * share:(r + 1) * share], y[r * share:(r + 1) * share]) for r in range(parts) if share]


@torch.no_grad()
def _copy(targets, sources) -> None:
    for t, s in zip(targets, sources):
        t.copy_(s)


def _batch_totals(loss: torch.Tensor, logits: torch.Tensor | None, y: torch.Tensor) -> torch.Tensor:
    """(summed loss, correct, images) of one batch, summed over every process."""
    n = len(y)
    correct = (logits.argmax(1) == y).sum() if logits is not None else torch.zeros((), device=y.device)
    totals = torch.stack([loss.detach().double() * n, correct.double(),
                          torch.tensor(float(n), dtype=torch.float64, device=y.device)])
    return dist.all_reduce_sum(totals)


def _augment_share(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Crop+flip this process's share of a global batch with the random numbers one process
    would draw for those images (so N processes augment exactly as one does)."""
    if dist.world() == 1:
        return D.augment(x, g)
    n, r = len(x), dist.rank()
    full = x.new_zeros((n * dist.world(), *x.shape[1:]))
    full[r * n:(r + 1) * n] = x
    return D.augment(full, g)[r * n:(r + 1) * n]


def _parallel(model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
              sync_bn: bool) -> tuple[nn.Module, bool]:
    """The module to run (DDP around ``model`` under torchrun) and whether the gradients must be
    averaged by hand because the optimiser holds parameters outside ``model`` (a search head)."""
    inside = {id(p) for p in model.parameters()}
    outside = any(id(p) not in inside for group in optimizer.param_groups for p in group["params"])
    if outside:
        if sync_bn and dist.active():
            raise ConfigError("sync_bn needs the trained parameters inside the model (DDP); this run also optimises "
                              "parameters outside it, whose gradients are averaged by hand: leave sync_bn off")
        return model, True
    return dist.wrap(model, device, sync_bn=sync_bn), False


def _resume(state_path, model: nn.Module, optimizer, scheduler, history: History, device: torch.device,
            settings: dict | None = None) -> int:
    """Load the training state saved by :func:`fit` (by one process or many); the next epoch.
    ``settings`` must equal the ones saved with the state."""
    try:
        state = torch.load(state_path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file: say which and how to go on
        raise CheckpointError(f"cannot resume from {state_path} ({type(e).__name__}); it is damaged: "
                              "delete it (or pass --restart) to start this run afresh") from e
    if settings is not None:
        _check_settings(state_path, state.get("settings") if isinstance(state, dict) else None, settings)
    try:
        model.load_state_dict(dist.strip_prefix(state["model"]))
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file: say which and how to go on
        raise CheckpointError(f"cannot resume from {state_path} ({type(e).__name__}: {e}); it belongs to another "
                              "run or is damaged: delete it to start this run afresh") from e
    history.epochs = state["history"]
    return int(state["epoch"])


def _check_settings(state_path, saved: dict | None, settings: dict) -> None:
    """A resumed run continues the interrupted one only with the same settings."""
    if not saved:
        raise CheckpointError(f"{state_path} holds an interrupted run whose settings were not recorded: pass "
                              "--restart to start over (restart=True)")
    differ = [f"{k} {saved.get(k)!r} -> {settings.get(k)!r}" for k in sorted(set(saved) | set(settings))
              if saved.get(k) != settings.get(k)]
    if differ:
        raise CheckpointError(f"{state_path} holds an interrupted run with other settings ({'; '.join(differ[:4])}"
                              f"{'; ...' if len(differ) > 4 else ''}): rerun with its settings to resume it, or pass "
                              "--restart to start over (restart=True)")


def state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state without DDP's ``module.`` prefix (loads in one process or many)."""
    return dist.strip_prefix(dist.unwrap(model).state_dict())


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

def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: dict) -> Path:
    """Write ``{"state_dict", "meta"}`` atomically (rank 0 only under torchrun); ``meta`` gains
    the code version. Keys carry no ``module.`` prefix; non-finite weights are refused."""
    path = Path(path)
    state = state_dict(model)
    _check_finite(state, f"refusing to save {path}")
    meta = {**meta, "code_version": meta.get("code_version", code_version()), "torch": str(torch.__version__)}
    if dist.is_main():
        torch_save(path, {"state_dict": state, "meta": meta})
    return path


def _check_finite(state: dict, what: str) -> None:
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{what}: {len(bad)} tensors hold NaN or inf ({', '.join(bad[:3])}"
                              f"{', ...' if len(bad) > 3 else ''}); the training that made them diverged: "
                              "retrain (lower learning rate, check the input data)")


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *, arch: str | None = None,
                    num_classes: int | None = None, in_channels: int | None = None,
                    map_location: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Load a model's weights (``weights_only=True``): an mpqlib checkpoint (:func:`save_checkpoint`),
    a plain ``state_dict`` file, or a dict holding one under ``state_dict`` or ``model``.

    DDP's ``module.`` prefix is stripped. Without ``model`` one is built with
    :func:`mpqlib.models.build` from the checkpoint's ``arch`` (mpqlib checkpoints) or ``arch``
    (a plain state dict); ``num_classes`` and ``in_channels`` default to the checkpoint's (read
    from the classifier and stem weights for a plain state dict). A missing, corrupt or
    non-finite file, an architecture other than ``arch``, or weights that do not fit the model
    raise :class:`CheckpointError` saying what is wrong.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; train one with `mpq train --out {path}` "
                              "(or pass the path of an existing checkpoint)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e}); "
                              "it is corrupt or not a torch checkpoint: retrain it or restore it from git") from e
    state, meta = _unpack(ckpt, path)
    _check_finite(state, f"checkpoint {path}")
    if meta:
        if arch is not None and meta.get("arch") != arch:
            raise CheckpointError(f"{path} holds a {meta.get('arch')!r} model, not {arch!r}")
    else:
        if model is None and arch is None:
            raise CheckpointError(f"{path} is a plain state dict without mpqlib's metadata: say which architecture it "
                                  "holds (--model NAME, or load_checkpoint(path, arch=NAME))")
        meta = {"arch": arch or type(model).__name__, "source": "state_dict"}
    if model is None:
        model = _build_for(state, meta, num_classes, in_channels)
    missing, unexpected = _diff_keys(model.state_dict(), state)
    if missing or unexpected:
        raise CheckpointError(f"{path} ({meta.get('arch')}) does not match {type(model).__name__}: "
                              f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                              f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit the model (check --num-classes / --input-size): {e}") from e
    return model, meta


def _unpack(ckpt, path: Path) -> tuple[dict, dict]:
    """(state dict without ``module.``, mpqlib metadata or {}) of whatever ``torch.load`` gave."""
    if isinstance(ckpt, dict) and "state_dict" in ckpt and isinstance(ckpt.get("meta"), dict):
        state, meta = ckpt["state_dict"], ckpt["meta"]
    elif isinstance(ckpt, dict) and any(isinstance(ckpt.get(k), dict) for k in ("state_dict", "model")):
        state, meta = ckpt["state_dict"] if isinstance(ckpt.get("state_dict"), dict) else ckpt["model"], {}
    else:
        state, meta = ckpt, {}
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path} holds no model weights: expected an mpqlib checkpoint, a state_dict "
                              "(name -> tensor) or a dict with one under 'state_dict' or 'model'")
    return dist.strip_prefix(state), meta


def _build_for(state: dict, meta: dict, num_classes: int | None, in_channels: int | None) -> nn.Module:
    """The model ``meta['arch']`` shaped like ``state``: classes and input channels from the
    arguments, else the metadata, else the classifier's and the stem's weights."""
    from .models import ARCHS, build, head

    arch = meta["arch"]
    if in_channels is None:
        in_channels = meta.get("in_channels") or (state["conv1.weight"].shape[1] if arch in ARCHS and
                                                  "conv1.weight" in state else (1 if arch in ARCHS else 3))
    classes = num_classes or meta.get("num_classes") or 10
    model = build(arch, classes, in_channels)
    if num_classes is None and not meta.get("num_classes"):
        weight = state.get(f"{head(model)[0]}.weight")
        if weight is not None and weight.shape[0] != classes:
            model = build(arch, int(weight.shape[0]), in_channels)
    return model


def init_from(model: nn.Module, path: str | os.PathLike, seed: int = 0) -> list[str]:
    """Start ``model`` from the weights in ``path`` (a plain ``state_dict`` saved with
    ``torch.save(model.state_dict(), path)``, a dict holding one under ``state_dict``/``model``, or an
    mpqlib checkpoint), read with ``weights_only=True``, to fine-tune it.

    A classifier head of another size (torchvision's 1000-class ``fc`` for a model of 10 classes)
    is the one difference allowed: its keys are skipped and the head is re-initialised from
    ``seed``. Returns the skipped keys (empty when everything was loaded). Any other missing,
    unexpected or differently shaped key, a missing or corrupt file, or a file without a state dict
    raises :class:`CheckpointError` naming the keys and how to fix it.
    """
    from .models import head

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"--init {path} not found: pass a state dict saved with "
                              "torch.save(model.state_dict(), PATH)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise CheckpointError(f"--init {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120]}): it is "
                              "corrupt or not a torch file; save the weights with torch.save(model.state_dict(), PATH)") from e
    state, _ = _unpack(ckpt, path)
    _check_finite(state, f"--init {path}")
    want = model.state_dict()
    head_name, head_module = head(model)
    head_keys = sorted(f"{head_name}.{k}" for k in head_module.state_dict())
    missing, unexpected = _diff_keys(want, state)
    shapes = [k for k in want if k in state and tuple(want[k].shape) != tuple(state[k].shape)]
    other = [k for k in shapes if k not in head_keys]
    if missing or unexpected or other:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")

        parts = ([f"missing {few(missing)}"] if missing else []) + ([f"unexpected {few(unexpected)}"] if unexpected else []) \
            + ([f"other shapes {few(other)} ({tuple(state[other[0]].shape)} in the file, "
                f"{tuple(want[other[0]].shape)} in the model)"] if other else [])
        raise CheckpointError(f"--init {path} does not fit {type(model).__name__}: {'; '.join(parts)}; pass the --model "
                              "(and --input-size channels) the weights were trained as, or save the state_dict of that model")
    skipped = head_keys if any(k in head_keys for k in shapes) else []
    model.load_state_dict({k: v for k, v in state.items() if k not in skipped}, strict=False)
    if skipped:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            head_module.reset_parameters()
    return skipped


def _diff_keys(want: dict, got: dict) -> tuple[list[str], list[str]]:
    return sorted(set(want) - set(got)), sorted(set(got) - set(want))


# --------------------------------------------------------------------------- full-precision recipe

def data_meaning(data) -> dict:
    """What gives a model's numbers their meaning when it was trained on an image folder: the class
    names in label order and the preprocessing (``{}`` for built-in data sets)."""
    names, prep = D.folder_classes(data), D.preprocessing(data)
    return {**({"classes": list(names)} if names else {}), **({"preprocessing": prep} if prep else {})}


def train_fp(model: str | nn.Module = "resnet20", cfg: TrainConfig | None = None, *, train=None, test=None,
             out: str | os.PathLike = "checkpoints/resnet20-fmnist.pt", arch: str | None = None,
             data_root: str | None = None, device: torch.device | str = "cpu", progress: bool = True,
             restart: bool = False, init: str | os.PathLike | None = None, **options) -> dict:
    """Train a model (SGD + Nesterov, one-cycle cosine, crop+flip) and save it as a checkpoint.

    ``model`` is an architecture name (:func:`mpqlib.models.build`, sized to ``train``'s classes
    and channels) or a module, recorded as ``arch`` (its :func:`~mpqlib.models.build` name, so that
    :func:`load_checkpoint` rebuilds it). ``cfg`` is a :class:`~mpqlib.config.TrainConfig`; keyword
    ``options`` (``epochs=2``, ...) replace its fields. ``train``/``test`` are any datasets or
    loaders (default: Fashion-MNIST's splits). Resumable: the training state after each epoch
    lives beside ``out`` until the run ends; a rerun with other settings (data, input size,
    config) refuses to resume unless ``restart`` (which starts over). Under torchrun the processes share every batch and
    rank 0 writes. ``init`` starts from a state dict (:func:`init_from`; a classifier head of another
    size is re-initialised) instead of random weights; it is recorded and is part of the resume settings. Returns the checkpoint's metadata (accuracy, time, ...).
    """
    from .models import build

    cfg = (cfg or TrainConfig()).replace(**options) if options else (cfg or TrainConfig())
    out = Path(out)
    if out.suffix == ".json":
        raise ConfigError(f"--out {out}: the checkpoint needs a name of its own (such as model.pt); "
                          "its metadata goes beside it as .json")
    seed_everything(cfg.seed)
    train = train if train is not None else D.load("fmnist", "train", data_root)
    test = test if test is not None else D.load("fmnist", "test", data_root)
    classes, shape = D.num_classes(train), D.sample_shape(train)
    name = arch or (model if isinstance(model, str) else type(model).__name__)
    model = (build(model, classes, shape[0]) if isinstance(model, str) else model).to(device)
    init_record = None
    if init is not None:
        from ._io import sha256_file

        skipped = init_from(model, init, cfg.seed)
        init_record = {"path": str(init), "sha256": sha256_file(init), "reinitialised": skipped}
    dl = D.as_loader(train, cfg.batch_size, seed=cfg.seed)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * len(dl), pct_start=0.15,
                                                anneal_strategy="cos", div_factor=10, final_div_factor=100)
    state = out.with_name(out.name + ".state")
    if restart and dist.is_main():
        state.unlink(missing_ok=True)
    dist.barrier()
    settings = {"arch": name, "data": D.describe(train), "train_images": len(D.as_loader(train).dataset),
                "input_size": list(shape), **cfg.to_dict(), **({"init": init_record} if init_record else {})}
    hist = fit(model, dl, opt, epochs=cfg.epochs, scheduler=sched, augment=True, seed=cfg.seed, device=device,
               state_path=state, desc=f"{name} fp", progress=progress, sync_bn=cfg.sync_bn, settings=settings)
    top1 = evaluate(model, test, device=device)
    meta = {"arch": name, "dataset": D.describe(train), "num_classes": classes, "in_channels": shape[0],
            "input_size": list(shape), **cfg.to_dict(), "processes": dist.world(), "top1": round(top1, 2),
            "train_seconds": round(hist.seconds, 1), "train_images": hist.images, "history": hist.epochs,
            **data_meaning(train), **({"init": init_record} if init_record else {})}
    with dist.main_process_writes() as writer:
        save_checkpoint(out, model, meta)
        if writer:
            write_json(out.with_suffix(".json"), {**meta, "code_version": code_version(), "checkpoint": out.name})
            state.unlink(missing_ok=True)
    return meta
