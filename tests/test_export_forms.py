"""`mpq export --form int` (integer kernels on 8-bit containers) beside the default QDQ form, and
`--latency`: the same top-1 as `mpq eval` and as the QDQ form on real images, integer convolutions in
onnxruntime's optimised graph, and a latency record of both forms and the float model."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
import torch

from mpqlib import export as E
from mpqlib.cli import main
from mpqlib.quant import quantize, quantized_layers

from test_export import _cli_qat_state, mixed_policy


def _optimised_ops(path, tmp_path) -> collections.Counter:
    """The op types of onnxruntime's optimised graph of the model at ``path`` (all portable optimisations)."""
    import onnx
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / f"{path.stem}.optimised.onnx")
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return collections.Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)


@pytest.mark.slow  # about 75 s: three passes over 10,000 images (eval, two exports) and the latency runs
def test_int_form_gives_the_top1_of_eval_and_of_qdq_with_integer_convolutions(tmp_path, capsys):
    q = _cli_qat_state(tmp_path, 4)
    capsys.readouterr()
    slice_ = ["--eval-data", "fmnist"]  # the 10,000 real Fashion-MNIST test images: the model's own classes
    assert main(["eval", "--qat-state", q, *slice_]) == 0
    eval_top1 = float(capsys.readouterr().out.split("top-1 ")[1].split("%")[0])
    recs = {}
    for form in ("qdq", "int"):
        assert main(["export", "--qat-state", q, *slice_, "--form", form,
                     "--out", str(tmp_path / form)] + (["--latency"] if form == "int" else [])) == 0
        recs[form] = json.loads((tmp_path / f"{form}.json").read_text())
        assert recs[form]["form"] == form
    out = capsys.readouterr().out
    assert "integer kernels: 9 ConvInteger, 11 int8, 1 MatMulInteger, 9 uint8" in out
    # the same images classified the same: the two forms and PyTorch agree to the image count
    assert recs["int"]["onnx_top1"] == recs["qdq"]["onnx_top1"] == recs["int"]["torch_top1"]
    assert round(recs["int"]["onnx_top1"], 2) == eval_top1 and eval_top1 > 50  # a real model on its own classes
    assert set(recs["int"]["containers"]) == {"INT8", "UINT8", "ConvInteger", "MatMulInteger"}
    assert {"INT4", "UINT4"} <= set(recs["qdq"]["containers"])  # the 4-bit containers only in the QDQ form

    ops = _optimised_ops(tmp_path / "int.onnx", tmp_path)
    assert ops["ConvInteger"] == 9 and ops["MatMulInteger"] == 1 and ops["Conv"] == 0 and ops["Gemm"] == 0, ops
    assert ops["DequantizeLinear"] == 0
    qdq_ops = _optimised_ops(tmp_path / "qdq.onnx", tmp_path)
    assert qdq_ops["ConvInteger"] == 0 and qdq_ops["Conv"] == 9  # QDQ with 4-bit zero points stays float Conv

    lat = recs["int"]["latency"]
    names = {"int (onnxruntime)", "qdq (onnxruntime)", "float (PyTorch)"}
    assert set(lat["ms_per_image"]) == {"1", "64"} and lat["threads"] >= 1
    for b, row in lat["ms_per_image"].items():
        assert set(row) == names and all(v > 0 for v in row.values())
        assert lat["fastest"][b] == min(row, key=row.get)
    assert "latency" not in recs["qdq"]
    assert not any(p.name.startswith("other") for p in tmp_path.iterdir())  # the other form was not kept


def test_int_form_holds_exactly_the_low_bit_codes(tmp_path, one_thread):
    """Each layer's weight codes in the 8-bit container are LSQ's codes, inside its own bits' range,
    and the int form, the QDQ form and PyTorch give the same top-1 on real images (the committed
    ResNet-20 under a mixed 2-8 bit policy)."""
    import onnx
    from onnx import numpy_helper

    from mpqlib import data as D
    from mpqlib.train import evaluate, load_checkpoint

    from test_export import ROOT

    model, _ = load_checkpoint(ROOT / "checkpoints" / "resnet20-fmnist.pt")
    images = D.load("fmnist", "test").x[:256]
    qmodel = quantize(model, mixed_policy(model), calibration=images).eval()
    E.to_onnx(qmodel, (1, 28, 28), tmp_path / "int.onnx", form="int")
    E.to_onnx(qmodel, (1, 28, 28), tmp_path / "qdq.onnx")
    # codes stored as raw bytes: the QDQ form's 2-4 bit weights two a byte, smaller than the int form's one a byte
    assert (tmp_path / "qdq.onnx").stat().st_size < 0.8 * (tmp_path / "int.onnx").stat().st_size
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(tmp_path / "int.onnx").graph.initializer}
    codes = [v for k, v in inits.items() if k.endswith("_w_codes")]
    layers = quantized_layers(qmodel)
    assert len(codes) == len(layers)
    for (name, layer), c in zip(layers.items(), codes):
        want = E.weight_codes(layer).numpy()
        want = want.T if want.ndim == 2 else want
        assert c.dtype in (np.int8, np.uint8) and np.array_equal(c.astype(np.int64), want), name
        qn, qp = layer.w_quant.qrange
        assert c.min() >= -qn and c.max() <= qp
    # a real slice: 1,000 Fashion-MNIST test images the calibration did not see
    slice_ = D.load("fmnist", "test").subset(torch.arange(1000, 2000), name="fmnist-test-1000")
    top1 = {form: E.onnx_top1(tmp_path / f"{form}.onnx", slice_, threads=1) for form in ("int", "qdq")}
    assert top1["int"] == top1["qdq"] == evaluate(qmodel, slice_, device="cpu") and top1["int"] > 50, top1


def test_an_interrupted_int_export_with_latency_leaves_no_file(tmp_path, monkeypatch, capsys):
    q = _cli_qat_state(tmp_path, 2)
    before = {p.name for p in tmp_path.iterdir()}

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(E, "compare_latency", ctrl_c)
    assert main(["export", "--qat-state", q, "--eval-data", "optdigits", "--form", "int", "--latency",
                 "--out", str(tmp_path / "m")]) == 130
    assert {p.name for p in tmp_path.iterdir()} == before and "no file was left" in capsys.readouterr().err
    from mpqlib.cli.export import E_FORMS

    assert E_FORMS == E.FORMS  # the parser's choices are the library's forms
    assert main(["export", "--qat-state", q, "--form", "int8", "--out", str(tmp_path / "m")]) == 2
    assert "--form" in capsys.readouterr().err and {p.name for p in tmp_path.iterdir()} == before
