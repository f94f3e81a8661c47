"""From a fine-tuned quantized model to files that run outside mpqlib.

Two outputs, both written atomically:

* :func:`to_onnx`: an ONNX model (opset 21) in which every quantized layer reads its input
  through ``QuantizeLinear -> DequantizeLinear`` and its weight as integer codes through
  ``DequantizeLinear``, at the layer's own bit-width: 2-4 bits in ``int4``/``uint4`` tensors,
  5-8 bits in ``int8``/``uint8`` ones. A range narrower than its container (3 bits in int4, 6 in
  int8) is enforced by ``Max``/``Min`` to [-Q_N s, Q_P s] in front of the ``QuantizeLinear``, so the
  integer codes are exactly the ones LSQ computes: round(x / s) clamped to [-Q_N, Q_P]. Weights
  are stored as codes only; the float weights are not in the file.
* :func:`to_onnx` with ``form="int"``: the same codes in 8-bit containers (``int8``/``uint8``, zero
  point 0, the layer's own step as the scale, clamped to its range as above, so a 3-bit layer holds
  exactly its 8 codes) and every quantized layer as an integer kernel: ``QuantizeLinear ->
  ConvInteger`` (``MatMulInteger`` for a linear layer) accumulating in int32, then one ``Cast``
  and a ``Mul`` by the product of the two step sizes (and the bias). onnxruntime runs these as
  integer kernels as they are (its optimised graph keeps them).
* :func:`save_packed` (:mod:`mpqlib.packed`, re-exported here): the weights bit-packed at their
  bit-widths, with the 32-bit rest beside them; :func:`load_packed` restores the model bitwise.

"""

from __future__ import annotations

import os
import time

import numpy as np
import torch
from torch import nn

from ._io import atomic_write
from .errors import ConfigError
from .packed import PackedInfo, load_packed, qlayers, rest_path, save_packed, weight_codes  # noqa: F401  (the packed form)
from .quant import QLayer

OPSET = 21


# --------------------------------------------------------------------------- ONNX
class _FakeQuant(torch.autograd.Function):
    """LSQ's forward, exported as one placeholder node ``mpq::FakeQuant`` that :func:`to_onnx`
    turns into standard QDQ nodes."""

    @staticmethod
    def forward(ctx, x, step, qn: int, qp: int):
        return torch.clamp(torch.round(x / step), -qn, qp) * step

    @staticmethod
    def symbolic(g, x, step, qn: int, qp: int):
        out = g.op("mpq::FakeQuant", x, step, qn_i=qn, qp_i=qp)
        out.setType(x.type())
        return out


def _export_forward(self: QLayer, x: torch.Tensor) -> torch.Tensor:
    xq = _FakeQuant.apply(x, self.a_quant.step, *self.a_quant.qrange)
    wq = _FakeQuant.apply(self.weight, self.w_quant.step, *self.w_quant.qrange)
    if isinstance(self, nn.Conv2d):
        return self._conv_forward(xq, wq, self.bias)
    return nn.functional.linear(xq, wq, self.bias)


def _container(qn: int, qp: int) -> tuple[int, int, int]:
    """(ONNX element type, its lowest, its highest value) holding the integers -qn..qp."""
    from onnx import TensorProto

    signed = qn > 0
    if qn + qp + 1 <= 16:
        return (TensorProto.INT4, -8, 7) if signed else (TensorProto.UINT4, 0, 15)
    return (TensorProto.INT8, -128, 127) if signed else (TensorProto.UINT8, 0, 255)


def _codes_tensor(codes: np.ndarray, ctype: int, name: str):
    """``codes`` as an ONNX initializer of container type ``ctype``, stored as raw bytes (two 4-bit
    codes or one 8-bit code a byte; 4-bit numpy types come from ml_dtypes, which onnx >= 1.17
    installs; without it, as a list of integers, the same values in a larger file)."""
    from onnx import TensorProto, helper, numpy_helper

    types = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8}
    try:
        import ml_dtypes

        types.update({TensorProto.INT4: ml_dtypes.int4, TensorProto.UINT4: ml_dtypes.uint4})
    except ImportError:
        pass
    if ctype in types:
        return numpy_helper.from_array(codes.astype(types[ctype]), name)
    return helper.make_tensor(name, ctype, list(codes.shape), codes.flatten().tolist())


def _rewrite_qdq(model) -> dict[str, int]:
    """Replace every ``mpq::FakeQuant`` by QDQ nodes; returns how many of each container type."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = _initializers(graph)
    nodes, new_inits, counts = [], [], {}
    for node in graph.node:
        if node.domain != "mpq":
            nodes.append(node)
            continue
        a = {at.name: at.i for at in node.attribute}
        qn, qp = a["qn"], a["qp"]
        x, step_name = node.input
        step = numpy_helper.to_array(inits[step_name]).astype(np.float32).reshape(())
        ctype, low, high = _container(qn, qp)
        kind = TensorProto.DataType.Name(ctype)
        counts[kind] = counts.get(kind, 0) + 1
        base = node.output[0].strip("/").replace("/", "_")
        scale, zero = f"{base}_scale", f"{base}_zero_point"
        new_inits += [numpy_helper.from_array(step, scale), helper.make_tensor(zero, ctype, [], [0])]
        if x in inits:  # a weight: stored as its integer codes
            w = numpy_helper.to_array(inits[x]).astype(np.float32)
            codes = np.clip(np.round(w / step), -qn, qp).astype(np.int64)
            new_inits.append(_codes_tensor(codes, ctype, f"{x}_codes"))
            nodes.append(helper.make_node("DequantizeLinear", [f"{x}_codes", scale, zero], list(node.output),
                                          name=f"{base}_dq"))
            continue
        src = x
        if -qn > low or qp < high:  # a range narrower than the container: clamp first, as LSQ does
            lo, hi = f"{base}_low", f"{base}_high"
            new_inits += [numpy_helper.from_array(np.float32(-qn) * step, lo), numpy_helper.from_array(np.float32(qp) * step, hi)]
            nodes.append(helper.make_node("Max", [x, lo], [f"{base}_above"], name=f"{base}_max"))
            nodes.append(helper.make_node("Min", [f"{base}_above", hi], [f"{base}_clamped"], name=f"{base}_min"))
            src = f"{base}_clamped"
        nodes.append(helper.make_node("QuantizeLinear", [src, scale, zero], [f"{base}_q"], name=f"{base}_q"))
        nodes.append(helper.make_node("DequantizeLinear", [f"{base}_q", scale, zero], list(node.output), name=f"{base}_dq"))
    nodes = _clip_as_max_min(nodes)
    _finish_graph(model, nodes, new_inits)
    return counts


def _container8(qn: int, qp: int) -> tuple[int, int, int]:
    """(ONNX 8-bit element type, its lowest, its highest value) holding the integers -qn..qp."""
    from onnx import TensorProto

    return (TensorProto.INT8, -128, 127) if qn > 0 else (TensorProto.UINT8, 0, 255)


def _rewrite_int(model) -> dict[str, int]:
    """Replace every quantized ``Conv``/``Gemm`` (and its two ``mpq::FakeQuant`` inputs) by an
    integer kernel on 8-bit codes: ``[Max, Min] -> QuantizeLinear -> ConvInteger | MatMulInteger
    -> Cast -> Mul(s_a * s_w) [-> Add(bias)]``. Returns the count of each container type (one per
    quantized activation and weight) and of each integer op."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = _initializers(graph)
    fake = {n.output[0]: n for n in graph.node if n.domain == "mpq"}
    nodes, new_inits, counts = [], [], {}

    def step_and_range(fq) -> tuple[np.float32, int, int]:
        a = {at.name: at.i for at in fq.attribute}
        return numpy_helper.to_array(inits[fq.input[1]]).astype(np.float32).reshape(()), a["qn"], a["qp"]

    for node in graph.node:
        if node.domain == "mpq":
            continue  # consumed by the layer it feeds, below
        if node.op_type not in ("Conv", "Gemm") or node.input[0] not in fake:
            nodes.append(node)
            continue
        attrs = {at.name: helper.get_attribute_value(at) for at in node.attribute}
        if node.op_type == "Gemm" and (attrs.get("transA", 0) or not attrs.get("transB", 0)
                                       or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0):
            raise ConfigError(f"linear layer {node.name} was exported as a Gemm with {attrs}: the integer form "
                              "handles x @ W.T + b only; export it with form='qdq'")
        xq, wq = fake[node.input[0]], fake[node.input[1]]
        base = node.name.strip("/").replace("/", "_") or node.output[0]
        a_step, a_qn, a_qp = step_and_range(xq)
        w_step, w_qn, w_qp = step_and_range(wq)
        a_type, low, high = _container8(a_qn, a_qp)
        w_type = _container8(w_qn, w_qp)[0]
        for t in (a_type, w_type):
            kind = TensorProto.DataType.Name(t)
            counts[kind] = counts.get(kind, 0) + 1
        # the activation: clamped to the layer's range where it is narrower than 8 bits, then its codes
        src = xq.input[0]
        if -a_qn > low or a_qp < high:
            lo, hi = f"{base}_a_low", f"{base}_a_high"
            new_inits += [numpy_helper.from_array(np.float32(-a_qn) * a_step, lo),
                          numpy_helper.from_array(np.float32(a_qp) * a_step, hi)]
            nodes.append(helper.make_node("Max", [src, lo], [f"{base}_a_above"], name=f"{base}_a_max"))
            nodes.append(helper.make_node("Min", [f"{base}_a_above", hi], [f"{base}_a_clamped"], name=f"{base}_a_min"))
            src = f"{base}_a_clamped"
        new_inits += [numpy_helper.from_array(a_step, f"{base}_a_scale"),
                      helper.make_tensor(f"{base}_a_zero_point", a_type, [], [0]),
                      helper.make_tensor(f"{base}_w_zero_point", w_type, [], [0])]
        nodes.append(helper.make_node("QuantizeLinear", [src, f"{base}_a_scale", f"{base}_a_zero_point"],
                                      [f"{base}_a_codes"], name=f"{base}_a_q"))
        # the weight: its integer codes, as LSQ computes them
        w = numpy_helper.to_array(inits[wq.input[0]]).astype(np.float32)
        codes = np.clip(np.round(w / w_step), -w_qn, w_qp).astype(np.int64)
        if node.op_type == "Gemm":
            codes = codes.T  # MatMulInteger multiplies x @ W, torch's Linear x @ W.T
        new_inits.append(_codes_tensor(codes, w_type, f"{base}_w_codes"))
        ins = [f"{base}_a_codes", f"{base}_w_codes", f"{base}_a_zero_point", f"{base}_w_zero_point"]
        if node.op_type == "Conv":
            op, kept = "ConvInteger", {k: v for k, v in attrs.items()
                                        if k in ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")}
        else:
            op, kept = "MatMulInteger", {}
        counts[op] = counts.get(op, 0) + 1
        nodes.append(helper.make_node(op, ins, [f"{base}_acc"], name=f"{base}_{op}", **kept))
        nodes.append(helper.make_node("Cast", [f"{base}_acc"], [f"{base}_accf"], name=f"{base}_cast", to=TensorProto.FLOAT))
        new_inits.append(numpy_helper.from_array(np.float32(a_step * w_step), f"{base}_scale"))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        out = node.output[0]
        nodes.append(helper.make_node("Mul", [f"{base}_accf", f"{base}_scale"], [f"{base}_scaled" if bias else out],
                                      name=f"{base}_rescale"))
        if bias:
            b = numpy_helper.to_array(inits[bias]).astype(np.float32)
            b = b.reshape(1, -1, *[1] * len(attrs.get("kernel_shape", []))) if node.op_type == "Conv" else b
            new_inits.append(numpy_helper.from_array(b, f"{base}_bias"))
            nodes.append(helper.make_node("Add", [f"{base}_scaled", f"{base}_bias"], [out], name=f"{base}_bias_add"))
    nodes = _clip_as_max_min(nodes)
    consumed = [n for n in nodes if any(i in fake for i in n.input)]
    if consumed:
        raise ConfigError(f"quantized values feed {consumed[0].op_type} node {consumed[0].name}, which the integer form "
                          "cannot run on integer codes: export this model with form='qdq'")
    _finish_graph(model, nodes, new_inits)
    return counts


FORMS = ("qdq", "int")


def _initializers(graph) -> dict:
    """The graph's initializers by name, and every name an ``Identity`` chain gives one: torch's
    exporter keeps one copy of equal parameters (two layers whose calibrated steps coincide) and
    feeds the others through ``Identity`` nodes."""
    inits = {t.name: t for t in graph.initializer}
    aliases = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and len(n.input) == 1}
    for name in aliases:
        src, seen = name, set()
        while src in aliases and src not in seen:
            seen.add(src)
            src = aliases[src]
        if src in inits:
            inits[name] = inits[src]
    return inits


def _finish_graph(model, nodes: list, new_inits: list) -> None:
    """Put the rewritten ``nodes`` into ``model``'s graph, keep the initializers they still read
    plus ``new_inits``, drop the export's private ``mpq`` opset, and check the model."""
    import onnx

    graph = model.graph
    del graph.node[:]
    graph.node.extend(nodes)
    still = {i for n in nodes for i in n.input}
    keep = [t for t in graph.initializer if t.name in still]
    del graph.initializer[:]
    graph.initializer.extend(keep + new_inits)
    for imp in list(model.opset_import):
        if imp.domain == "mpq":
            model.opset_import.remove(imp)
    onnx.checker.check_model(model)


def _clip_as_max_min(nodes: list) -> list:
    """Every ``Clip`` (ReLU6 and the like) as ``Max`` then ``Min`` on the same bounds: the same
    values, but onnxruntime's Clip/QuantizeLinear fusion, which fails on 4-bit zero points
    ("Unexpected data type for QuantizeLinear input y_zero_point of 21"), no longer applies."""
    from onnx import helper

    out = []
    for node in nodes:
        if node.op_type != "Clip" or node.attribute:  # opset >= 11: min and max are inputs
            out.append(node)
            continue
        x, lo, hi = (list(node.input) + ["", ""])[:3]
        src = x
        if lo:
            out.append(helper.make_node("Max", [src, lo], [f"{node.output[0]}_max"], name=f"{node.name}_max"))
            src = f"{node.output[0]}_max"
        out.append(helper.make_node("Min", [src, hi], list(node.output), name=f"{node.name}_min") if hi else
                   helper.make_node("Identity", [src], list(node.output), name=f"{node.name}_id"))
    return out


def to_onnx(qmodel: nn.Module, input_size: tuple[int, ...], path: str | os.PathLike,
            metadata: dict[str, str] | None = None, form: str = "qdq") -> dict[str, int]:
    """Write ``qmodel`` (a quantized model, see :mod:`mpqlib.quant`) as an ONNX model; input
    ``input`` of shape (batch, C, H, W), output ``logits``. ``form="qdq"``: QDQ nodes at each
    layer's bit-width, returning the count of QDQ pairs by container type (``INT4``, ``UINT8``,
    ...); ``form="int"``: integer kernels on 8-bit containers (``ConvInteger``/``MatMulInteger``),
    returning the count of each container type and integer op. Both compute the same codes."""
    import copy
    import io
    import types
    import warnings

    import onnx

    if form not in FORMS:
        raise ConfigError(f"export form {form!r}: choose one of {', '.join(FORMS)}")
    layers = qlayers(qmodel)
    model = copy.deepcopy(qmodel).cpu().eval()
    for name in layers:
        m = model.get_submodule(name)
        m.forward = types.MethodType(_export_forward, m)
    size = tuple(input_size)[-3:]
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, *size),), buf, dynamo=False, opset_version=OPSET,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, custom_opsets={"mpq": 1})
    proto = onnx.load_from_string(buf.getvalue())
    counts = _rewrite_int(proto) if form == "int" else _rewrite_qdq(proto)
    for k, v in (metadata or {}).items():
        proto.metadata_props.add(key=k, value=str(v))
    atomic_write(path, lambda p: p.write_bytes(proto.SerializeToString()))
    return counts


def onnx_session(path: str | os.PathLike, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_top1(path: str | os.PathLike, data, batch_size: int = 1000, threads: int | None = None) -> float:
    """Top-1 in percent of the ONNX model at ``path`` under onnxruntime on ``data`` (any dataset
    mpqlib reads), in the order :func:`mpqlib.train.evaluate` reads it."""
    from . import data as D

    sess = onnx_session(path, threads)
    correct = total = 0
    for x, y in D.in_order(data, batch_size):
        logits = sess.run(["logits"], {"input": x.numpy().astype(np.float32)})[0]
        correct += int((logits.argmax(1) == y.numpy()).sum())
        total += len(y)
    return 100.0 * correct / total


def latency(run, x, repeats: int = 20) -> float:
    """Median seconds of ``run(x)`` over ``repeats`` calls after two warm-up calls."""
    for _ in range(2):
        run(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def compare_latency(models: dict[str, str | os.PathLike], float_model: nn.Module, images: torch.Tensor,
                    batches: tuple[int, ...] = (1, 64), threads: int | None = None, repeats: int = 10) -> dict:
    """Milliseconds per image of each ONNX model in ``models`` (name -> path) under onnxruntime and
    of ``float_model`` in PyTorch, with the same number of threads (``threads``, default torch's),
    on the first ``b`` of ``images`` for each batch size ``b`` (repeated to fill it where there are
    fewer): the median of ``repeats`` timed runs after two warm-up runs (:func:`latency`).

    Returns ``{"threads", "repeats", "ms_per_image": {batch: {name: ms, "float (PyTorch)": ms}},
    "fastest": {batch: name}}``, batch sizes as strings (JSON keys)."""
    threads = threads or torch.get_num_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        sessions = {name: onnx_session(path, threads) for name, path in models.items()}
        float_model = float_model.cpu().eval()
        table, fastest = {}, {}
        for b in batches:
            x = images[torch.arange(b) % len(images)].float().contiguous()
            xn = x.numpy().astype(np.float32)
            row = {}
            for name, sess in sessions.items():
                row[name] = 1e3 * latency(lambda a, s=sess: s.run(["logits"], {"input": a}), xn, repeats) / b
            with torch.inference_mode():
                row["float (PyTorch)"] = 1e3 * latency(float_model, x, repeats) / b
            table[str(b)] = {k: round(v, 4) for k, v in row.items()}
            fastest[str(b)] = min(row, key=row.get)
    finally:
        torch.set_num_threads(before)
    return {"threads": threads, "repeats": repeats, "ms_per_image": table, "fastest": fastest}


def policy_of(qmodel: nn.Module):
    """The :class:`~mpqlib.policy.Policy` a quantized model runs under (read from its layers)."""
    from .policy import Policy, split_layers

    layers = qlayers(qmodel)
    searchable, fixed = split_layers(qmodel)
    return Policy({n: layers[n].bits for n in searchable}, {n: layers[n].bits for n in fixed})
