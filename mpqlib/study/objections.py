"""The three answers a paper author would give first, as cached steps of the study (chapter 7):

* **a tuned SEAM** (:func:`tuning`): SEAM and its cross-entropy ablation each over a grid of
  their own settings, every configuration scored by QAT on a validation split held out of the
  target's *training* images (never the test set); the best of each then runs the protocol's
  seeds on the test set (policies ``seam-mnist-tuned`` and ``ce-mnist-tuned``);
* **a converged QAT** (:func:`long_qat`): QAT top-1 of uniform and the target search's policy
  after 1, 2, 5, 10 epochs on every training image; at the plateau length SEAM, the target
  search and uniform run again (``seam-mnist-long``, ``target-fmnist-long``, ``uniform-long``);
* **proxies ordered by distance** (:func:`proxies`): SEAM on noise with random labels (the
  negative control, ``seam-noise``), and a class-disjoint proxy from the target's own domain: a
  model trained on Fashion-MNIST classes 0-4 (a cached ``train`` step), searched by SEAM on
  classes 5-9 (``seam-disjoint``) and by the target search on classes 0-4.

Settings: :class:`mpqlib.study.profiles.Objections`; the protocol: book/method.md, "Protocol of the
final run (version 3)". Every step goes through :class:`~mpqlib.study.experiments.Experiments`, so
the pipeline plans, caches and distributes them like the rest of the study.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .._io import atomic_write_bytes, write_json
from .cache import Cache, Missing, SearchRef, Task, config_dict, fingerprint
from ..config import QATConfig, TrainConfig
from .experiments import Experiments
from .profiles import Profile

# --------------------------------------------------------------------------- the derived model


def disjoint_name(p: Profile) -> str:
    """The class-subset model's name (its cache directory): ``mobilenetv1-c0-4``."""
    o = p.objections
    cls = o.disjoint_classes
    return f"{p.objections_model()}-c{cls[0]}-{cls[-1]}"


def _training(p: Profile) -> tuple[Cache, dict, Callable[[], dict]]:
    """The cached training of the class-subset model: its cache, key and computation. The
    recipe is the base checkpoint's own (epochs, batch size, lr, weight decay, seed from its
    metadata), ``disjoint_epochs`` replacing the epochs where the profile sets it (smoke)."""
    from .. import data as D

    base = p.objections_model()
    meta = json.loads(p.checkpoint(base).with_suffix(".json").read_text())
    o = p.objections
    cfg = TrainConfig(epochs=o.disjoint_epochs or meta["epochs"], batch_size=meta["batch_size"], lr=meta["lr"],
                      weight_decay=meta["weight_decay"], seed=meta.get("seed", 0))
    classes = o.disjoint_classes
    name = disjoint_name(p)
    train = D.search_data(D.on_classes(p.target_data, classes))
    test = D.load_split(D.with_classes("fmnist", classes), "test")
    key_config = {"model": name, "arch": meta["arch"], "train_config": config_dict(cfg),
                  "train": fingerprint(train), "test": fingerprint(test)}

    def compute() -> dict:
        from ..train import train_fp

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / f"{name}.pt"
            record = train_fp(meta["arch"], cfg, train=train, test=test, out=out, progress=p.progress)
            blob = out.read_bytes()
        record.pop("history", None)
        return {"record": {**record, "classes": list(classes)}, "checkpoint": base64.b64encode(blob).decode(),
                "checkpoint_sha256": hashlib.sha256(blob).hexdigest()}

    return Cache(p.cache_path() / name), key_config, compute


def trained_checkpoint(p: Profile, plan: dict | None = None) -> Path:
    """The class-subset model's checkpoint file: from its cached ``train`` record (the weights
    travel inside the record, so a remote worker's result needs nothing else), written beside
    it once. Missing while the pipeline plans: noted as a ``train`` task (``plan``)."""
    cache, key_config, compute = _training(p)
    stored = cache.load("train", key_config)
    if stored is None:
        if plan is not None:
            task = Task(disjoint_name(p), "train", Cache.key("train", key_config), ())
            plan[task.key] = task
            raise Missing(task)
        stored = cache.put(cache.record("train", key_config, compute))
    path = cache.root / f"checkpoint-{stored['checkpoint_sha256'][:16]}.pt"
    if not path.exists():
        blob = base64.b64decode(stored["checkpoint"])
        if hashlib.sha256(blob).hexdigest() != stored["checkpoint_sha256"]:
            raise ValueError(f"the train record {stored['key']} holds a checkpoint whose sha256 does not match: "
                             "the record is corrupt; move it away and run the step again")
        atomic_write_bytes(path, blob)
    return path


def train_record(p: Profile) -> dict:
    """Compute the class-subset model's training (a pipeline task); the new cache record."""
    cache, key_config, compute = _training(p)
    return cache.record("train", key_config, compute)


def experiments(p: Profile, model: str, plan: dict | None = None) -> Experiments:
    """The :class:`Experiments` of ``model``: one of the profile's models, or the class-subset
    model (whose checkpoint may first have to be trained: :class:`Missing` while planning)."""
    if model in p.models or model != disjoint_name(p):
        return Experiments(p, model)
    ex = Experiments(p, model, checkpoint=trained_checkpoint(p, plan), classes=p.objections.disjoint_classes)
    ex._budget_name = p.main_budget(p.objections_model())  # the base model's main budget
    return ex


# --------------------------------------------------------------------------- a tuned SEAM
TUNED = {"seam": ("seam-mnist", "seam-mnist-tuned"), "ce": ("ce-mnist", "ce-mnist-tuned")}


def _grid(p: Profile, method: str) -> tuple[dict, ...]:
    return p.objections.seam_grid if method == "seam" else p.objections.ce_grid


def _is_default(p: Profile, method: str, changes: dict) -> bool:
    """Whether ``changes`` leave the method's version-2 setting as it is."""
    cfg = getattr(p, method)
    return cfg.replace(**changes) == cfg


def tuning(ex: Experiments) -> dict:
    """Each grid configuration's validation top-1 (search seeds x QAT seeds, QAT on the training
    images outside the validation split, scored on the split) and each method's choice: the
    highest mean, a tie within ``tie_pp`` going to the version-2 setting. Missing steps leave a
    configuration incomplete and its method's choice None."""
    o = ex.p.objections
    fit, val = f"{ex.target}-fit", f"{ex.target}-val"
    out: dict = {"validation": {"images": o.val_per_class * 10, "per_class": o.val_per_class, "seed": 0,
                                "of": "the target's training images"},
                 "search_seeds": list(o.tuning_search_seeds), "qat_seeds": list(o.tuning_qat_seeds),
                 "tie_pp": o.tie_pp, "grid": {}, "chosen": {}}
    for method, (name, _) in TUNED.items():
        rows = []
        for changes in _grid(ex.p, method):
            vals = []
            for s in o.tuning_search_seeds:
                try:
                    res = ex.search(name, None, s, **changes)
                except Missing as missing:  # planning: its QAT runs wait for it
                    ex.after(missing, SearchRef.of(name, budget=None, seed=s, **changes), o.tuning_qat_seeds,
                             (None, fit, val))
                    continue
                for q in o.tuning_qat_seeds:
                    try:
                        vals.append(ex.qat(res.policy, q, None, fit, val)["top1"])
                    except Missing:
                        continue
            n = len(o.tuning_search_seeds) * len(o.tuning_qat_seeds)
            rows.append({"config": dict(changes), "default": _is_default(ex.p, method, changes), "val_top1": vals,
                         "mean": float(np.mean(vals)) if len(vals) == n else None})
        out["grid"][method] = rows
        out["chosen"][method] = choose(rows, o.tie_pp)
    return out


def choose(rows: list[dict], tie_pp: float) -> dict | None:
    """The configuration with the highest mean validation top-1; the default instead when it is
    within ``tie_pp`` of the best. None while a configuration lacks its runs."""
    if not rows or any(r["mean"] is None for r in rows):
        return None
    best = max(rows, key=lambda r: r["mean"])
    default = next((r for r in rows if r["default"]), None)
    if default is not None and best["mean"] - default["mean"] <= tie_pp:
        best = default
    return dict(best["config"])


def tuned_runs(ex: Experiments, tuned: dict) -> list[dict]:
    """The chosen configurations on the test set with the protocol's seeds."""
    rows = []
    for method, (name, label) in TUNED.items():
        if tuned["chosen"].get(method) is not None:
            rows += ex.runs(name, None, ex.p.search_seeds, ex.p.qat_seeds, label=label,
                            changes=tuned["chosen"][method])
    return rows


# --------------------------------------------------------------------------- a converged QAT
def long_config(p: Profile, epochs: int) -> QATConfig:
    return p.qat.replace(epochs=epochs, train_images=p.objections.long_train_images)


def long_qat(ex: Experiments) -> dict:
    """QAT top-1 after each of ``long_epochs`` (QAT seeds ``long_qat_seeds``) of uniform and the
    target search's policy (seed 0), and the plateau: the fewest epochs whose mean lies within
    ``plateau_pp`` of the longest run's mean for both policies (None while steps are missing)."""
    o = ex.p.objections
    curve: dict = {}
    for name in ("uniform", "target-fmnist"):
        try:
            pol = ex.search(name, None, 0).policy
        except Missing as missing:  # planning: its QAT runs wait for it
            for e in o.long_epochs:
                ex.after(missing, SearchRef.of(name, budget=None, seed=0), o.long_qat_seeds, (long_config(ex.p, e),))
            continue
        curve[name] = {}
        for e in o.long_epochs:
            vals = []
            for q in o.long_qat_seeds:
                try:
                    vals.append(ex.qat(pol, q, long_config(ex.p, e))["top1"])
                except Missing:
                    continue
            curve[name][str(e)] = vals
    return {"epochs": list(o.long_epochs), "qat_seeds": list(o.long_qat_seeds),
            "train_images": o.long_train_images, "plateau_pp": o.plateau_pp, "curve": curve,
            "plateau_epochs": plateau(curve, o.long_epochs, o.long_qat_seeds, o.plateau_pp)}


def plateau(curve: dict, epochs, seeds, tol_pp: float) -> int | None:
    """The fewest epochs whose mean top-1 is within ``tol_pp`` of the longest run's mean, for
    every policy of ``curve``; None while a value is missing."""
    if len(curve) < 2 or any(len(c.get(str(e), [])) != len(seeds) for c in curve.values() for e in epochs):
        return None
    last = str(max(epochs))
    for e in sorted(epochs):
        if all(abs(np.mean(c[str(e)]) - np.mean(c[last])) <= tol_pp for c in curve.values()):
            return int(e)
    return int(max(epochs))


def long_runs(ex: Experiments, epochs: int) -> list[dict]:
    """SEAM on the proxy, the target search (search seeds of the profile) and uniform, each under
    the converged recipe (``epochs``; QAT seeds ``long_qat_seeds``)."""
    cfg = long_config(ex.p, epochs)
    seeds = ex.p.objections.long_qat_seeds
    return [r for name in ("seam-mnist", "target-fmnist", "uniform")
            for r in ex.runs(name, None, ex.p.search_seeds if name != "uniform" else (0,), seeds,
                             label=f"{name}-long", qat=(cfg,))]


# --------------------------------------------------------------------------- proxies
def proxies(ex: Experiments, dex: Experiments | None) -> list[dict]:
    """SEAM on noise (``seam-noise``, same model and size as the MNIST proxy) and, on the
    class-subset model ``dex``, SEAM on the disjoint classes against the target search."""
    # SEAM on MNIST and the target search too (the protocol's own runs, the same cached steps):
    # the proxy ladder and the noise control compare against them, so the part stands on its own
    rows = ex.runs("seam-noise") + ex.runs("seam-mnist") + ex.runs("target-fmnist")
    if dex is not None:
        rows += dex.runs("seam-disjoint") + dex.runs("target-fmnist")
    return rows


# --------------------------------------------------------------------------- the whole part
def walk(ex: Experiments, plan: dict | None) -> dict:
    """Every step of the objections (the pipeline's part ``objections``): their rows of runs.json
    (saved unless planning), the tuning and the QAT curve, and the class-subset experiment (None
    while its model is missing)."""
    rows: list[dict] = []
    tuned = tuning(ex)
    rows += tuned_runs(ex, tuned)
    longq = long_qat(ex)
    if longq["plateau_epochs"] is not None:
        rows += long_runs(ex, longq["plateau_epochs"])
    try:
        dex = experiments(ex.p, disjoint_name(ex.p), plan)
        dex.plan = plan
    except Missing:
        dex = None
    rows += proxies(ex, dex)
    ex.save(rows)
    if dex is not None:
        dex.save([])  # its policies into policies.json (rows already merged above)
    return {"rows": rows, "tuning": tuned, "long_qat": longq, "disjoint": dex}


def summary(ex: Experiments) -> dict:
    """The part's results once every step is cached: its rows into runs.json (:func:`walk`) and
    objections.json: the grid's validation scores and choices, the QAT plateau curve and the
    proxy ladder (each proxy's SEAM minus the target search, with its CI)."""
    from . import report
    from .experiments import load_runs

    walked = walk(ex, None)
    rows = load_runs(ex.p)
    dex = walked["disjoint"]
    ladder = []
    budget = ex.budget_name
    for label, e, policy in (("F-MNIST 4%, same classes", ex, "seam-fmnist4"),
                             ("F-MNIST, other classes", dex, "seam-disjoint"),
                             ("MNIST digits", ex, "seam-mnist"), ("optdigits", ex, "seam-optdigits"),
                             ("noise, random labels", ex, "seam-noise")):
        table = e.table(rows, budget)
        try:
            c = report.claim(f"ladder-{policy}", e.model_name, budget, table, policy, "target-fmnist", "difference",
                             n_boot=ex.p.bootstrap)
        except Exception:  # noqa: BLE001  (a proxy not run in this profile)
            continue
        ladder.append({"proxy": label, "policy": policy, "model": e.model_name, **{k: c[k] for k in (
            "estimate_pp", "ci_low", "ci_high", "a_units", "b_units")}})
    doc = {"model": ex.model_name, "budget": budget, "tuning": walked["tuning"], "long_qat": walked["long_qat"],
           "ladder": ladder, "disjoint": {"model": dex.model_name, "classes": list(ex.p.objections.disjoint_classes),
                                          "proxy_classes": list(ex.p.objections.disjoint_proxy_classes),
                                          "fp_top1": dex.meta.get("top1")}}
    write_json(ex.p.path("objections.json"), doc)
    return doc


__all__ = ["disjoint_name", "trained_checkpoint", "train_record", "experiments", "tuning", "choose", "tuned_runs",
           "long_qat", "plateau", "long_runs", "proxies", "walk", "summary", "TUNED"]
