"""``mpq export``."""

from __future__ import annotations

import json
from pathlib import Path

from .. import distributed as dist
from ..errors import ConfigError

from .common import (check_model_classes, say, checkpoint_path, check_writable, check_record_slot, eval_data, _dims, quantized_model,
                     _name, _common, _model_args, _eval_args)

E_FORMS = ("qdq", "int")  # mpqlib.export.FORMS, without importing onnx for --help


def cmd_export(args) -> int:
    from .. import data as D
    from .. import export as E

    if not args.qat_state:
        raise ConfigError("export needs the fine-tuned model: --qat-state Q.pt (written by `mpq qat --out Q.pt`)")
    stem = Path(args.out)
    stem = stem.with_suffix("") if stem.suffix in (".onnx", ".mpqw", ".json") else stem
    onnx_path, packed, record = (stem.with_name(stem.name + ext) for ext in (".onnx", ".mpqw", ".json"))
    check_writable(("--out", onnx_path))
    check_record_slot(record, "export")
    qmodel, meta, size, _ = quantized_model(args)
    qmodel = qmodel.cpu().eval()
    data = None
    if not args.no_check:  # the evaluation images are read (and decoded) before anything is written
        data = eval_data(args, size)
        check_model_classes(data, meta, "--eval-data")
        D.check_fits(data, (1, *size))
    written = [p for p in (onnx_path, packed, E.rest_path(packed), record) if not p.exists()]
    try:
        rec, lines = _export(args, qmodel, meta, size, data, onnx_path, packed, record)
    except BaseException:  # an error or Ctrl-C: none of this command's new files stays behind
        for p in written:
            p.unlink(missing_ok=True)
        raise
    say(*lines, f"saved {record}")
    return 0


def _export(args, qmodel, meta, size, data, onnx_path: Path, packed: Path, record: Path) -> tuple[dict, list[str]]:
    """Write the ONNX model, the packed weights and the record; check onnxruntime against PyTorch."""
    from .. import export as E
    from ..cost import cost_model
    from ..train import evaluate

    policy = E.policy_of(qmodel)
    cost_bytes = cost_model(qmodel, (1, *size)).size_bytes(policy)
    metadata = {"mpqlib.policy": json.dumps(policy.to_dict()["bits"]), "mpqlib.input_size": _dims(size),
                "mpqlib.form": args.form}
    containers = E.to_onnx(qmodel, size, onnx_path, metadata=metadata, form=args.form)
    info = E.save_packed(qmodel, packed)
    rec = {"command": "export", "form": args.form, "onnx": str(onnx_path), "packed": str(packed), "rest": str(info.rest_path),
           "input_size": list(size), "qat_state": args.qat_state, "checkpoint": checkpoint_path(args),
           "containers": containers, "packed_bytes": info.bytes, "cost_model_bytes": cost_bytes,
           "rest_bytes": info.rest_bytes}
    what = "QDQ" if args.form == "qdq" else "integer kernels"
    lines = [f"{meta['arch']} at input {_dims(size)}: wrote {onnx_path} ({what}: "
             + ", ".join(f"{n} {k if k.endswith('Integer') else k.lower()}" for k, n in sorted(containers.items())) + ")",
             f"  {packed}: {info.bytes:,} bytes of packed integer weights and step sizes (cost model: "
             f"{cost_bytes:,.0f} bytes, {100 * (info.bytes / cost_bytes - 1):+.2f}%), plus {info.rest_bytes:,} bytes "
             f"of 32-bit biases and BatchNorm in {info.rest_path}"]
    if data is not None:
        rec["torch_top1"] = evaluate(qmodel, data, device="cpu")
        rec["onnx_top1"] = E.onnx_top1(onnx_path, data)
        gap = abs(rec["onnx_top1"] - rec["torch_top1"])
        if gap > 0.1:
            raise ConfigError(f"onnxruntime gives top-1 {rec['onnx_top1']:.2f}% but PyTorch {rec['torch_top1']:.2f}% "
                              f"on {_name(data)}: the exported model does not compute what the QAT model does; "
                              "no file was kept")
        lines.append(f"  top-1 on {_name(data)}: onnxruntime {rec['onnx_top1']:.2f}%, PyTorch {rec['torch_top1']:.2f}%")
    if args.latency:
        rec["latency"] = _latency(args, qmodel, size, data, onnx_path)
        for b, row in rec["latency"]["ms_per_image"].items():
            lines.append(f"  latency at batch {b}, {rec['latency']['threads']} threads (ms/image): "
                         + ", ".join(f"{k} {v:.3f}" for k, v in row.items())
                         + f"; fastest: {rec['latency']['fastest'][b]}")
    with dist.main_process_writes() as writer:
        if writer:
            from .._io import write_json

            write_json(record, rec)
    return rec, lines


def _latency(args, qmodel, size, data, onnx_path: Path) -> dict:
    """Milliseconds per image at batch 1 and 64: the written model, the other form (written to a
    temporary folder, not kept) in onnxruntime, and the float checkpoint in PyTorch, same threads."""
    import tempfile

    import torch

    from .. import data as D
    from .. import export as E
    from .common import load_model

    fmodel, _, _ = load_model(args)  # the float model the QAT state was fine-tuned from
    if data is not None:
        images = next(iter(D.in_order(data, 64)))[0]
    else:
        images = torch.randn(64, *size, generator=torch.Generator().manual_seed(0))
    other = "int" if args.form == "qdq" else "qdq"
    with tempfile.TemporaryDirectory() as tmp:
        E.to_onnx(qmodel, size, Path(tmp) / "other.onnx", form=other)
        return E.compare_latency({f"{args.form} (onnxruntime)": onnx_path, f"{other} (onnxruntime)": Path(tmp) / "other.onnx"},
                                 fmodel, images, threads=args.threads)


def add(sub) -> None:
    """The ``export`` command's parser."""
    s = sub.add_parser("export", help="ONNX (QDQ at each layer's bits, or integer kernels) and packed integer "
                                      "weights of a QAT state",
                       description="Write NAME.onnx (--form qdq or int), NAME.mpqw (+ NAME.mpqw.rest.pt) and the record "
                                   "NAME.json from a checkpoint and the QAT state fine-tuned from it; check onnxruntime's "
                                   "top-1 against PyTorch's on --eval-data; --latency times both forms and the float "
                                   "model.")
    _common(s)
    _model_args(s)
    _eval_args(s)
    s.add_argument("--qat-state", required=True, help="the fine-tuned model written by `mpq qat --out`")
    s.add_argument("--policy", default=None, help="must be the policy the QAT state carries (default: that one)")
    s.add_argument("--out", required=True, help="NAME of the files to write (NAME.onnx, NAME.mpqw, NAME.json)")
    s.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch top-1 check")
    s.add_argument("--form", choices=E_FORMS, default="qdq",
                   help="qdq: QuantizeLinear/DequantizeLinear at each layer's bits (4-bit containers where they fit, "
                        "the smaller file); int: 8-bit containers on the same integer grid, each layer an integer "
                        "kernel (ConvInteger/MatMulInteger) in onnxruntime (default: %(default)s)")
    s.add_argument("--latency", action="store_true",
                   help="add to the record the ms per image at batch 1 and 64 of both forms in onnxruntime and of the "
                        "float model in PyTorch (same threads; median of 10 runs after 2 warm-up runs)")
    s.set_defaults(func=cmd_export)
