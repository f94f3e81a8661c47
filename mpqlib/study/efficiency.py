"""Search cost against policy quality: the table of chapter 4 and the cost model to ImageNet.

Two things live here:

* :func:`efficiency_table` turns the measured records of every class of search (each with the
  QAT top-1 of its policy) into ``results/efficiency.json``::

      {"ratios_host", "methods": {NAME: {"seconds", "seconds_low", "seconds_high", "repeats", "host",
       "timed", "images", "epochs", "peak_mb", "top1_mean", "ci_low", "ci_high", "bitops", ...}},
       "ratios": {"NAME/seam": {"value", "low", "high", "contended", "note"}}, "startup_fraction",
       "search_vs_fp_peak_memory", "imagenet": {..., "low", "high"}}

  A method's cost is the median of the timing stage's repeats on one host
  (:mod:`mpqlib.study.timing`; ``timed``), else its protocol record (one run, wherever it ran).
  Ratios of cost are taken only between costs of one host (``ratios_host``, SEAM's) measured
  alone: a pair of hosts gives no ratio at all (:func:`~mpqlib.study.timing.same_host_ratio`
  refuses it), and a contended cost gives ``None`` with the contended value and the reason beside it.

* :func:`imagenet_projection`: cost = images x epochs x seconds per image for each class of
  method, with the per-image costs measured here (frozen-backbone supernet step, unfrozen
  supernet step, LIMPQ pass, brief QAT fine-tune, forward pass) and the paper's settings for
  ImageNet (proxy 4% of 1.28 M images, ...). Each ratio to SEAM is split into the factors it
  is made of: data size (images), epochs (passes), frozen backbone (the per-image cost of
  training the weights too) and method (the rest: passes per batch, head, fine-tune and
  scoring). Whatever the paper does not say is an entry of :data:`ASSUMPTIONS`, with its reason;
  the joint search's unknown length gives the projection as a range (``low``, ``high``) and a curve.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from .._io import read_json, write_json
from .facts import PAPER_HOURS as PAPER  # what the paper reports: FracBits 237.2 h / SEAM 0.8 h = 297x, ...

ASSUMPTIONS: dict[str, dict[str, Any]] = {
    "imagenet_images": {"value": 1_281_167, "why": "ImageNet-1k training set (paper: the target)"},
    "proxy_share": {"value": 0.04, "why": "paper: the proxy holds about 4% of ImageNet's images"},
    "seam_epochs": {"value": 8, "why": "paper silent; the proxy search length of this reproduction"},
    "joint_epochs": {"value": 30, "why": "paper silent on FracBits' schedule; FracBits learns the bits during a "
                                         "quantization-aware training run on all of ImageNet, taken as 30 epochs "
                                         "(see implied_joint_epochs for the value that gives the paper's 297x)"},
    "joint_epochs_range": {"value": (30, 90), "why": "the same unknown as a range: ImageNet quantization-aware "
                                                     "training runs from about 30 epochs (a fine-tune of a "
                                                     "pretrained model) to 90 (LSQ's schedule); the projection's "
                                                     "low and high are the joint search at these two lengths"},
    "limpq_share": {"value": 0.98, "why": "LIMPQ's own recipe (github.com/1hunters/LIMPQ, "
                                          "indicators_pretraining/config_resnet18.yaml): the ImageNet training set "
                                          "less a 2% validation split (val_split 0.02)"},
    "limpq_epochs": {"value": 5, "why": "LIMPQ's own recipe (the same file): epochs 5"},
    "limpq_trains_weights": {"value": True, "why": "LIMPQ's own recipe (the same file): freeze_weights False, so "
                                                   "its passes cost what a supernet step with trained weights costs "
                                                   "(the unfrozen / frozen ratio); this reproduction freezes them"},
    "limpq_passes": {"value": 6, "why": "LIMPQ: every batch runs each uniform bit-width (5 candidates) plus one "
                                        "random mix; counted in the per-pass cost here"},
    "evaluation_candidates": {"value": 100, "why": "evaluation-based searches (HAQ/AutoQ-style loops) score on the "
                                                   "order of 10^2 policies; not in the paper"},
    "evaluation_finetune_images": {"value": 51_200, "why": "a brief fine-tune per candidate: as many images as "
                                                           "the 4% proxy (0.04 epochs of ImageNet)"},
    "evaluation_val_images": {"value": 10_000, "why": "held-out images scoring each candidate (HAQ holds out 10k)"},
    "orthogonality_images": {"value": 64, "why": "OMPQ: one batch of features"},
    "forward_share": {"value": 1 / 3, "why": "a forward pass costs about a third of forward + backward; used to "
                                             "separate held-out scoring from training in the measured seconds"},
    "per_image_transfers": {"value": True, "why": "the ratios between per-image costs measured on the small "
                                                  "model here (frozen vs unfrozen supernet, QAT, LIMPQ pass) are taken "
                                                  "to hold for MobileNetV1 / ResNet-18 at 224 x 224, except where a "
                                                  "GPU measured that architecture at 224 x 224 (its own ratios)"},
}
"""Every number of the projection the paper does not give, with the reason it was chosen."""

ARCHS = ("mobilenetv1", "resnet18")
JOINT_CURVE_EPOCHS = (1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 150)  # the joint search's length, for the curve
METHOD_KEYS = ("seconds", "seconds_low", "seconds_high", "repeats", "host", "timed", "images", "epochs", "peak_mb",
               "top1_mean", "ci_low", "ci_high", "bitops", "qat_seconds", "added_mb", "protocol_seconds",
               "protocol_host")
REFERENCE = "seam"


# --------------------------------------------------------------------------- the measured table
def top1_summary(values) -> tuple[float | None, float | None, float | None]:
    """Mean top-1 over QAT seeds and its 95% bootstrap CI (:func:`mpqlib.study.report.mean_ci`), rounded
    for efficiency.json; one value gives no interval, none gives no mean."""
    if values is None:
        return None, None, None
    v = np.atleast_1d(np.asarray(values, dtype=float))
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return None, None, None
    if len(v) < 2:
        return round(float(v.mean()), 3), None, None
    from .report import mean_ci

    e = mean_ci(v, n_boot=10_000, seed=0)
    return round(e.estimate, 3), round(e.ci_low, 3), round(e.ci_high, 3)


def _record(entry: Mapping) -> Mapping:
    """The search record of an entry: ``{"record": ..., "top1": [...]}`` or the record itself."""
    return entry.get("record", entry)


def cost_of(entry: Mapping) -> dict:
    """What an entry's search cost, and where it was measured: the timing stage's median over its
    repeats on one host where the entry has them (``source`` "timing", with ``low``/``high``), else
    the protocol's own search record (``source`` "protocol", one run)."""
    t = entry.get("timing")
    if t and t.get("repeats"):
        return {"seconds": t["seconds"], "low": t["low"], "high": t["high"], "repeats": t["repeats"],
                "host": t.get("host"), "images": t.get("images"), "held_out_images": t.get("held_out_images") or 0,
                "source": "timing",
                "contention": None if t.get("measured_alone") else "a timing repeat shared the machine"}
    rec = _record(entry)
    why = ("no load figures in the record (measured before mpqlib.measure): re-measure" if "contended" not in rec
           else (rec.get("contention") or "flagged contended") if rec["contended"] else None)
    return {"seconds": rec.get("seconds"), "low": rec.get("seconds"), "high": rec.get("seconds"), "repeats": 1,
            "host": rec.get("host"), "images": rec.get("images"), "held_out_images": rec.get("held_out_images", 0),
            "source": "protocol", "contention": why}


def method_row(entry: Mapping) -> dict:
    """One row of ``methods``: the search's cost (see :func:`cost_of`), where it was measured,
    and its policy's QAT top-1 (mean, 95% CI) from the protocol's records."""
    rec = _record(entry)
    cost = cost_of(entry)
    top1_mean, ci_low, ci_high = top1_summary(entry.get("top1", rec.get("top1")))
    qat = [s for s in entry.get("qat_seconds") or [] if s is not None]
    return {"seconds": cost["seconds"], "seconds_low": cost["low"], "seconds_high": cost["high"],
            "repeats": cost["repeats"], "host": cost["host"], "timed": cost["source"] == "timing",
            "images": rec.get("images"), "epochs": rec.get("epochs"),
            "peak_mb": rec.get("peak_memory_mb", rec.get("peak_mb")), "top1_mean": top1_mean, "ci_low": ci_low,
            "ci_high": ci_high, "bitops": entry.get("bitops", rec.get("bitops")),
            "qat_seconds": round(float(np.mean(qat)), 1) if qat else None,
            "added_mb": (round(rec["peak_memory_mb"] - rec["start_memory_mb"], 1)
                         if rec.get("start_memory_mb") is not None and rec.get("peak_memory_mb") is not None else None),
            "protocol_seconds": rec.get("seconds"), "protocol_host": rec.get("host")}


def contention_of(entry: Mapping) -> str | None:
    """Why an entry's cost is not a result measured alone (None when it is)."""
    return cost_of(entry)["contention"]


def ratios_host(methods: Mapping[str, Mapping], reference: str = REFERENCE) -> str | None:
    """The host every ratio is measured on: the reference's (SEAM's) timing host, else the host
    of its protocol record; None when unknown (then no ratio is given)."""
    return cost_of(methods[reference])["host"] if reference in methods else None


def cost_ratios(methods: Mapping[str, Mapping], reference: str = REFERENCE) -> dict:
    """``NAME/reference`` search seconds for every method, only between costs measured alone on
    one host (:func:`ratios_host`, via :func:`~mpqlib.study.timing.same_host_ratio`):
    ``{"value", "low", "high", "contended", "note"}``; the range divides the extremes of the
    repeats. A contended pair keeps its figure as ``contended_value``; a pair of two hosts gets
    no figure at all."""
    from .timing import HostMismatch, same_host_ratio

    if reference not in methods:
        return {}
    ref = cost_of(methods[reference])
    out = {}
    for name, entry in methods.items():
        if name == reference:
            continue
        cost = cost_of(entry)
        key = f"{name}/{reference}"
        try:
            value = same_host_ratio(cost, ref, key) if cost["seconds"] and ref["seconds"] else None
        except HostMismatch as e:
            out[key] = {"value": None, "low": None, "high": None, "contended": False, "note": str(e)}
            continue
        reasons = [f"{n}: {c['contention']}" for n, c in ((name, cost), (reference, ref)) if c["contention"]]
        row = {"value": None if reasons or value is None else round(value, 3),
               "low": None if reasons or value is None else round(cost["low"] / ref["high"], 3),
               "high": None if reasons or value is None else round(cost["high"] / ref["low"], 3),
               "contended": bool(reasons), "note": "; ".join(reasons) or None}
        if reasons and value is not None:
            row["contended_value"] = round(value, 3)
        out[key] = row
    return out


def _lean(lean) -> dict:
    """The start-up / memory benchmark (``benchmarks/bench_search_lean.py --out``): a dict or a path."""
    if lean is None:
        return {}
    return read_json(lean) if isinstance(lean, (str, os.PathLike)) else dict(lean)


def efficiency_table(methods: Mapping[str, Mapping], *, search_length: Mapping[str, Mapping] | None = None,
                     proxy_size: Mapping[str, Mapping] | None = None, lean=None, projection: bool = True,
                     gpu_steps: list[Mapping] | None = None, path: str | os.PathLike | None = None, **about) -> dict:
    """``results/efficiency.json`` from the measured ``methods`` (NAME -> ``{"record", "top1": [per
    QAT seed], "bitops"}`` or a record with ``top1``), optionally the search-length and proxy-size
    curves (same entries), the start-up / memory benchmark ``lean``, and the ImageNet projection
    from the per-image costs of the runs measured alone. ``about`` (profile, model, ...) is kept
    as it is. Written atomically to ``path`` when given."""
    lean = _lean(lean)
    host = ratios_host(methods)
    out: dict[str, Any] = {
        "ratios_host": host,
        "methods": {name: method_row(e) for name, e in methods.items()},
        "ratios": cost_ratios(methods),
        "startup_fraction": lean.get("startup_fraction"),
        "search_vs_fp_peak_memory": lean.get("search_vs_fp_peak_memory"),
        "contention": {name: contention_of(e) for name, e in methods.items()},
        **about,
    }
    for key, curve in (("search_length", search_length), ("proxy_size", proxy_size)):
        if curve:
            out[key] = {k: {**method_row(e), "contended": contention_of(e) is not None} for k, e in curve.items()}
    if projection:
        per_image = per_image_seconds(methods, host=host)
        own = about.get("model")  # the harness ran this architecture itself (at 28 x 28): its costs are its own
        per_arch = {own: _costs(per_image)} if own in ARCHS else None
        out["imagenet"] = imagenet_projection(per_image, per_arch=per_arch, gpu_steps=gpu_steps)
    if path is not None:
        write_json(path, out)
    return out


# --------------------------------------------------------------------------- the cost model
def _assumed(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    values = {k: v["value"] for k, v in ASSUMPTIONS.items()}
    unknown = set(overrides or {}) - set(values)
    if unknown:
        from ..errors import ConfigError

        raise ConfigError(f"unknown assumption(s) {sorted(unknown)}; the cost model knows {sorted(values)}")
    return {**values, **(overrides or {})}


def _costs(per_image: Mapping[str, Any]) -> dict[str, float]:
    """The per-image costs of :func:`per_image_seconds` without its notes."""
    return {k: v for k, v in per_image.items() if k not in ("missing", "from")}


def per_image_seconds(methods: Mapping[str, Mapping], assumptions: Mapping[str, Any] | None = None,
                      host: str | None = None) -> dict:
    """Seconds per image of each kind of work, from costs measured alone on ``host`` (None: any
    one host's, that of the first usable record); a kind with no usable record is left out, the
    reason of every record tried under ``"missing"``. For each kind the candidates are tried in
    order and the first usable one serves (so a contended 8-epoch target search falls back to the
    equal-steps one, which runs the same step on fewer images):

    ``seam``: a SEAM step on the proxy (frozen backbone, L-GM head); ``frozen``: a supernet step
    with the frozen backbone and the model's classifier (the target search); ``unfrozen``: a
    supernet step that trains the weights too (joint), held-out scoring taken out;
    ``limpq``: one LIMPQ pass of one image; ``finetune``: a brief-QAT image of the evaluation
    search, held-out scoring taken out; ``forward``: a forward pass (``frozen`` x forward_share).
    Start-up (calibration, step-size init) is included: short runs overstate the per-image cost.
    ``"from"`` names the record each kind came from."""
    a = _assumed(assumptions)
    fwd = a["forward_share"]
    sources = {"seam": ("seam",), "frozen": ("target-equal-epochs", "target-equal-steps", "target"),
               "unfrozen": ("joint",), "limpq": ("limpq",), "finetune": ("evaluation",)}
    out: dict[str, Any] = {"missing": {}, "from": {}}
    for kind, names in sources.items():
        tried = []
        for name in names:
            if name not in methods:
                continue
            cost = cost_of(methods[name])
            work = (cost["images"] or 0) + fwd * (cost["held_out_images"] or 0)  # training-image equivalents
            why = (cost["contention"] or (f"measured on {cost['host'] or 'an unknown host'}, not {host}"
                                          if host is not None and cost["host"] != host else None)
                   or (None if work else "no images"))
            if why:
                tried.append(f"{name}: {why}")
                continue
            host = host if host is not None else cost["host"]
            out[kind], out["from"][kind] = cost["seconds"] / work, name
            break
        else:
            out["missing"][kind] = "; ".join(tried) or "no record"
    base = out.get("frozen", out.get("seam"))
    if base is not None:
        out["forward"] = fwd * base
    return out


# A GPU step of benchmarks/bench_gpu_steps.py standing for each kind of per-image cost.
GPU_KINDS = {"frozen": "search", "unfrozen": "joint", "finetune": "qat", "forward": "eval"}  # SEAM: the harness's ratio
GPU_ARCHS = {"resnet18": "resnet18", "mobilenet_v2": None}  # its name there -> ARCHS (None: not projected)


def gpu_per_arch(per_image: Mapping[str, Any], gpu_steps: list[Mapping]) -> tuple[dict, dict]:
    """Per-image costs of the architectures a GPU measured at 224 x 224 (``gpu_steps``: files of
    benchmarks/bench_gpu_steps.py), in the harness's units: the harness's frozen-search cost times
    the GPU's ratio of each step to its search step (a kind the GPU did not measure, LIMPQ's pass,
    keeps the harness's ratio). Returns (costs per arch, where each came from)."""
    base = per_image.get("frozen")
    out, source = {}, {}
    if base is None:
        return out, source
    for g in gpu_steps:
        for name, m in (g.get("models") or {}).items():
            arch = GPU_ARCHS.get(name)
            st = m.get("steps") or {}
            if arch not in ARCHS or "search" not in st:
                continue
            ref = st["search"]["ms_per_step"]
            out[arch] = {kind: base * st[step]["ms_per_step"] / ref for kind, step in GPU_KINDS.items() if step in st}
            source[arch] = f"measured on {g.get('device', 'a GPU')} at {g.get('size', 224)} x {g.get('size', 224)}"
    return out, source


def imagenet_projection(per_image: Mapping[str, Any], assumptions: Mapping[str, Any] | None = None,
                        per_arch: Mapping[str, Mapping[str, float]] | None = None,
                        gpu_steps: list[Mapping] | None = None) -> dict:
    """Projected ImageNet search costs relative to SEAM on its 4% proxy, for each of :data:`ARCHS`
    whose per-image costs were measured: ``per_arch[arch]`` (the harness's own model) or a GPU's
    step times (``gpu_steps``). An architecture measured nowhere is not projected (its reason
    under ``not_projected``): copying another model's costs would only repeat that model's column.
    Without ``per_arch`` and GPU steps, the per-image costs serve every architecture alike.

    cost(method) = images x epochs x seconds per image; each ratio is the product of its factors
    ``data_size`` x ``epochs`` x ``frozen_backbone`` x ``method``. The joint search's epochs are
    unknown (the paper is silent): ``joint_curve`` gives joint/SEAM over a range of them, and
    ``low``/``high`` the ratio at the ends of the assumed range ``joint_epochs_range``."""
    a = _assumed(assumptions)
    out = {"paper": PAPER, "assumptions": {k: {"value": a[k], "why": ASSUMPTIONS[k]["why"]} for k in a},
           "per_image_seconds": _costs(per_image), "per_image_from": dict(per_image.get("from", {})),
           "missing": dict(per_image.get("missing", {})), "archs": {}, "not_projected": {}}
    gpu, gpu_source = gpu_per_arch(per_image, gpu_steps or [])
    for arch in ARCHS:
        own = (per_arch or {}).get(arch)
        if per_arch is not None or gpu_steps:
            if own is None and arch not in gpu:
                out["not_projected"][arch] = ("no per-image cost measured on this architecture (the harness runs "
                                              "another model; a GPU run of benchmarks/bench_gpu_steps.py gives one)")
                continue
        costs = {**_costs(per_image), **(own or gpu.get(arch, {}))}
        out["archs"][arch] = _project(costs, a)
        out["archs"][arch]["per_image_from"] = (
            "measured on this architecture (its 28 x 28 version)" if own else gpu_source.get(arch)
            or "the model measured here (assumption per_image_transfers)")
    first = next(iter(out["archs"].values()), {})
    out["low"], out["high"] = first.get("low"), first.get("high")
    return out


def _work(a: Mapping[str, Any]) -> dict[str, tuple[float, float, str]]:
    """Per method: (images per pass, passes, kind of per-image cost) at ImageNet scale."""
    n = a["imagenet_images"]
    fwd = a["forward_share"]
    per_candidate = a["evaluation_finetune_images"] + fwd * a["evaluation_val_images"]
    return {
        "seam": (a["proxy_share"] * n, a["seam_epochs"], "seam"),
        "target-equal-epochs": (n, a["seam_epochs"], "frozen"),
        "joint": (n, a["joint_epochs"], "unfrozen"),
        "limpq": (a["limpq_share"] * n, a["limpq_epochs"] * a["limpq_passes"], "limpq"),
        "evaluation": (per_candidate, a["evaluation_candidates"], "finetune"),
        "orthogonality": (a["orthogonality_images"], 1, "forward"),
    }


def _sig(x: float, digits: int = 5) -> float:
    """``x`` to ``digits`` significant digits (ratios span 1e-5 .. 1e3)."""
    return float(f"{x:.{digits}g}")


def _backbone(name: str, costs: Mapping[str, float], a: Mapping[str, Any]) -> float:
    """The unfrozen / frozen per-image cost for a method that trains the weights too (joint; LIMPQ
    by its own recipe, ``limpq_trains_weights``), else 1."""
    trains = name == "joint" or (name == "limpq" and a.get("limpq_trains_weights"))
    return costs["unfrozen"] / costs["frozen"] if trains and costs.get("frozen") and costs.get("unfrozen") else 1.0


def _project(costs: Mapping[str, float], a: Mapping[str, Any]) -> dict:
    work = _work(a)
    methods, ratios, factors = {}, {}, {}
    backbone = {name: _backbone(name, costs, a) for name in work}
    for name, (images, epochs, kind) in work.items():
        c = costs.get(kind)
        if c is not None and kind != "unfrozen" and backbone[name] != 1.0:  # LIMPQ's recipe trains the weights
            c = c * costs["unfrozen"] / costs["frozen"]
        methods[name] = {"images": round(images), "epochs": epochs, "cost_kind": kind,
                         "seconds_per_image": c, "seconds": None if c is None else images * epochs * c}
    ref = methods[REFERENCE]
    for name, m in methods.items():
        if name == REFERENCE:
            continue
        key = f"{name}/{REFERENCE}"
        if m["seconds"] is None or not ref["seconds"]:
            ratios[key], factors[key] = None, None
            continue
        ratio = m["seconds"] / ref["seconds"]
        data = m["images"] / ref["images"]
        passes = m["epochs"] / ref["epochs"]
        frozen = backbone[name]
        ratios[key] = _sig(ratio)
        factors[key] = {"data_size": _sig(data), "epochs": _sig(passes), "frozen_backbone": _sig(frozen),
                        "method": _sig(ratio / (data * passes * frozen))}
    implied, curve, low, high = None, {}, None, None
    if ratios.get("joint/seam"):  # the joint search's cost grows with its epochs, all else fixed
        per_epoch = ratios["joint/seam"] / a["joint_epochs"]
        implied = round(PAPER["ratios"]["joint/seam"] / per_epoch, 1)
        curve = {str(e): _sig(per_epoch * e) for e in JOINT_CURVE_EPOCHS}
        lo_e, hi_e = a["joint_epochs_range"]
        low, high = _sig(per_epoch * lo_e), _sig(per_epoch * hi_e)
    return {"methods": methods, "ratios": ratios, "factors": factors, "implied_joint_epochs": implied,
            "joint_curve": curve, "low": low, "high": high, "paper_ratios": PAPER["ratios"]}


__all__ = ["PAPER", "ASSUMPTIONS", "ARCHS", "METHOD_KEYS", "top1_summary", "cost_of", "method_row", "contention_of",
           "ratios_host", "cost_ratios",
           "efficiency_table", "per_image_seconds", "imagenet_projection"]
