"""The packed form of a fine-tuned quantized model: its weights at their own bit-widths.

:func:`save_packed` writes the weights bit-packed at their bit-widths (``w_bits`` bits per weight,
each layer's codes offset to 0..2^b-1, least significant bit first, each layer starting on a
byte), with each layer's bits, sign and two step sizes in a 11-byte header entry. Its size is
the cost model's size of the policy (:meth:`mpqlib.cost.CostModel.size_bytes`: weights x
w_bits / 8) plus 11 bytes a layer and 12 bytes of file header. The 32-bit tensors the cost
model leaves out (biases, BatchNorm) go beside it in ``NAME.rest.pt``. :func:`load_packed`
restores the quantized model from the two files and the float architecture: its outputs are
bitwise those of the model that was saved.

Layer names and shapes are not stored: they come from the model the files are loaded into,
checked against a CRC-32 of the layer names and weight shapes kept in the header. Both files are
written atomically. (:mod:`mpqlib.export` writes the ONNX forms and re-exports these functions.)
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._io import atomic_write, torch_save
from .errors import CheckpointError, ConfigError
from .quant import QLayer, quantized_layers

MAGIC = b"MPQW"
VERSION = 1
_HEAD = struct.Struct("<4sBHII")       # magic, version, layers, total weights, CRC-32 of names and shapes
_LAYER = struct.Struct("<BBBff")       # w_bits, a_bits, a_signed, w_step, a_step
REST_SUFFIX = ".rest.pt"


# --------------------------------------------------------------------------- shared
def qlayers(qmodel: nn.Module) -> dict[str, QLayer]:
    layers = quantized_layers(qmodel)
    if not layers:
        raise ConfigError(f"{type(qmodel).__name__} holds no quantized layers: export a model from "
                          "mpqlib.quant.quantize (after `mpq qat`)")
    unready = [n for n, m in layers.items() if not (m.w_quant.ready and m.a_quant.ready)]
    if unready:
        raise ConfigError(f"quantized layers {unready[:3]} have no step sizes yet: calibrate or fine-tune the "
                          "model (mpqlib.qat.qat) before exporting it")
    return layers


def _fingerprint(layers: dict[str, QLayer]) -> int:
    text = ";".join(f"{n}:{tuple(m.weight.shape)}" for n, m in layers.items())
    return zlib.crc32(text.encode())


def weight_codes(layer: QLayer) -> torch.Tensor:
    """The integer codes of ``layer``'s weight (int64, in [-Q_N, Q_P]): what its forward pass multiplies."""
    return layer.w_quant.integers(layer.weight.detach()).to(torch.int64).cpu()


# --------------------------------------------------------------------------- packed integers
@dataclass(frozen=True)
class PackedInfo:
    path: Path
    rest_path: Path
    bytes: int             # of the packed file: header + integer weights + step sizes
    weight_bytes: int      # of the packed weights alone
    rest_bytes: int        # of the 32-bit remainder (biases, BatchNorm)


def _pack(codes: np.ndarray, bits: int) -> bytes:
    """Unsigned ``codes`` (< 2^bits) as a bit stream, least significant bit first."""
    planes = ((codes[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little").tobytes()


def _unpack(blob: bytes, bits: int, n: int) -> np.ndarray:
    planes = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), bitorder="little")[:n * bits].reshape(n, bits)
    return (planes.astype(np.int64) << np.arange(bits, dtype=np.int64)).sum(1)


def _packed_len(n: int, bits: int) -> int:
    return (n * bits + 7) // 8


def rest_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + REST_SUFFIX)


def save_packed(qmodel: nn.Module, path: str | os.PathLike) -> PackedInfo:
    """Write ``qmodel``'s weights as packed integers with their step sizes to ``path``, and its
    remaining 32-bit tensors (biases, BatchNorm) to ``path + '.rest.pt'``."""
    layers = qlayers(qmodel)
    heads, blobs, total = [], [], 0
    for m in layers.values():
        qn, _ = m.w_quant.qrange
        codes = (weight_codes(m).flatten() + qn).numpy().astype(np.uint64)
        blobs.append(_pack(codes, m.w_quant.bits))
        total += codes.size
        heads.append(_LAYER.pack(m.w_quant.bits, m.a_quant.bits, int(bool(m.a_quant.signed)),
                                 m.w_quant.step.item(), m.a_quant.step.item()))
    data = _HEAD.pack(MAGIC, VERSION, len(layers), total, _fingerprint(layers)) + b"".join(heads) + b"".join(blobs)
    path = Path(path)
    atomic_write(path, lambda p: p.write_bytes(data))
    skip = {f"{n}.{k}" for n in layers for k in ("weight", "w_quant.step", "a_quant.step", "w_quant.initialised",
                                                "a_quant.initialised", "w_quant._sign", "a_quant._sign")}
    rest = {k: v.detach().cpu() for k, v in qmodel.state_dict().items() if k not in skip}
    rp = torch_save(rest_path(path), rest)
    return PackedInfo(path, rp, len(data), sum(map(len, blobs)), rp.stat().st_size)


def load_packed(path: str | os.PathLike, model: nn.Module) -> nn.Module:
    """The quantized model saved by :func:`save_packed`, rebuilt on ``model`` (the float
    architecture, e.g. the checkpoint the policy was searched on; its weights are replaced).
    Its forward pass gives exactly the saved model's outputs."""
    from .policy import Policy, split_layers
    from .quant import quantize

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"packed model {path} not found; write it with `mpq export --out ...`")
    data = path.read_bytes()
    try:
        magic, version, count, total, crc = _HEAD.unpack_from(data)
    except struct.error:
        magic = b""
    if magic != MAGIC or version != VERSION:
        raise CheckpointError(f"{path} is not an mpqlib packed model (version {VERSION}); write it with `mpq export`")
    entries = [_LAYER.unpack_from(data, _HEAD.size + i * _LAYER.size) for i in range(count)]
    names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(names) != count:
        raise CheckpointError(f"{path} holds {count} quantized layers but {type(model).__name__} has {len(names)}: "
                              "load it into the model it was exported from")
    searchable, fixed = split_layers(model)
    bits = {n: (e[0], e[1]) for n, e in zip(names, entries)}
    policy = Policy({n: bits[n] for n in searchable}, {n: bits[n] for n in fixed})
    qmodel = quantize(model, policy)
    layers = quantized_layers(qmodel)
    if _fingerprint(layers) != crc:
        raise CheckpointError(f"{path} was exported from a model with other layer names or shapes than "
                              f"{type(model).__name__}: load it into the model it was exported from")
    offset = _HEAD.size + count * _LAYER.size
    with torch.no_grad():
        for (n, m), (wb, _, signed, w_step, a_step) in zip(layers.items(), entries):
            size = _packed_len(m.weight.numel(), wb)
            codes = _unpack(data[offset:offset + size], wb, m.weight.numel()) - m.w_quant.qrange[0]
            offset += size
            m.w_quant.step.fill_(w_step)
            m.a_quant.step.fill_(a_step)
            m.a_quant.signed = bool(signed)
            for q in (m.w_quant, m.a_quant):
                q.initialised.fill_(True)
                q._ready = True
            m.weight.copy_(torch.from_numpy(codes).reshape(m.weight.shape).to(m.weight.dtype) * m.w_quant.step)
    rp = rest_path(path)
    if not rp.is_file():
        raise CheckpointError(f"{rp} (biases and BatchNorm of {path}) not found: it is written beside the packed file")
    rest = torch.load(rp, map_location="cpu", weights_only=True)
    _, unexpected = qmodel.load_state_dict(rest, strict=False)
    if unexpected:
        raise CheckpointError(f"{rp} holds tensors {unexpected[:3]} that {type(model).__name__} does not have")
    return qmodel.eval()

__all__ = ["MAGIC", "VERSION", "REST_SUFFIX", "PackedInfo", "qlayers", "weight_codes", "rest_path", "save_packed",
           "load_packed"]
