"""A mixed-precision policy: layer name -> (w_bits, a_bits), with provenance, as JSON.

A policy names every *searchable* layer (``bits``) and the bits of the *fixed* layers
(``fixed``: first conv and last FC, 8/8 by default), so it fully describes the deployed
model. ``provenance`` records how it was found (method, search data, budget, achieved BitOps
and size, seed, code version).

Which layers a policy covers is decided here too (:func:`quantizable`, :func:`split_layers`),
so that :mod:`mpqlib.quant` depends on this module and not the other way round.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from torch import nn

from ._io import write_json
from .config import FIXED_BITS, MAX_BITS, MIN_BITS
from .errors import PolicyError

SCHEMA_VERSION = 1
CANDIDATE_BITS = (2, 3, 4, 5, 6)

Bits = tuple[int, int]

__all__ = ["Policy", "PolicyError", "quantizable", "split_layers", "SCHEMA_VERSION"]


def quantizable(model: nn.Module) -> list[str]:
    """Names of every Conv2d and Linear, in module order: the layers a policy gives bits to."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def split_layers(model: nn.Module) -> tuple[list[str], list[str]]:
    """(searchable, fixed): the first conv and the last FC are fixed, the layers between searched."""
    names = quantizable(model)
    if len(names) < 3:
        raise PolicyError(f"{type(model).__name__} has {len(names)} conv/linear layers; at least 3 are needed "
                          "(a fixed first conv, searchable layers, a fixed classifier)")
    return names[1:-1], [names[0], names[-1]]


def _is_int(b) -> bool:
    return isinstance(b, int) and not isinstance(b, bool)


def _pair(name: str, bits) -> Bits:
    """``bits`` as a (w_bits, a_bits) pair of ints in MIN_BITS..MAX_BITS, or PolicyError."""
    if not (isinstance(bits, (tuple, list)) and len(bits) == 2 and all(_is_int(b) for b in bits)):
        raise PolicyError(f"layer {name!r}: bits must be a (w_bits, a_bits) pair of ints, not {bits!r}")
    if not all(MIN_BITS <= b <= MAX_BITS for b in bits):
        raise PolicyError(f"layer {name!r}: bits {tuple(bits)} outside {MIN_BITS}..{MAX_BITS} (a signed 1-bit "
                          f"quantizer has only the levels {{-s, 0}}; use at least {MIN_BITS} bits)")
    return int(bits[0]), int(bits[1])


def _layer_table(d: dict, key: str, required: bool) -> dict[str, Bits]:
    """``d[key]`` read as a {layer: [w_bits, a_bits]} object, with a PolicyError naming what is wrong."""
    if key not in d:
        if required:
            raise PolicyError(f"policy has no {key!r} entry; expected {{\"{key}\": {{layer: [w_bits, a_bits], ...}}}}")
        return {}
    table = d[key]
    if not isinstance(table, dict):
        raise PolicyError(f"policy {key!r} must be an object {{layer: [w_bits, a_bits], ...}}, "
                          f"not {type(table).__name__} {table!r:.60}")
    return {n: _pair(n, b) for n, b in table.items()}


@dataclass
class Policy:
    bits: dict[str, Bits]
    fixed: dict[str, Bits] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bits = {n: _pair(n, b) for n, b in self.bits.items()}
        self.fixed = {n: _pair(n, b) for n, b in self.fixed.items()}
        both = set(self.bits) & set(self.fixed)
        if both:
            raise PolicyError(f"layers both searchable and fixed: {sorted(both)}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_bits(cls, bits: Mapping[str, Bits], **provenance) -> "Policy":
        if isinstance(bits, Policy):
            return bits
        if not isinstance(bits, Mapping):
            raise TypeError(f"a policy is a Policy or a {{layer: (w_bits, a_bits)}} mapping, not {type(bits).__name__}")
        return cls(dict(bits), provenance=provenance)

    @classmethod
    def uniform(cls, model: nn.Module, w_bits: int, a_bits: int | None = None, fixed_bits: int = FIXED_BITS, **provenance) -> "Policy":
        a_bits = w_bits if a_bits is None else a_bits
        searchable, fixed = split_layers(model)
        return cls({n: (w_bits, a_bits) for n in searchable}, {n: (fixed_bits, fixed_bits) for n in fixed},
                   {"method": "uniform", **provenance})

    # ------------------------------------------------------------------ views
    @property
    def all_bits(self) -> dict[str, Bits]:
        return {**self.fixed, **self.bits}

    def __len__(self) -> int:
        return len(self.bits)

    def __eq__(self, other) -> bool:
        return isinstance(other, Policy) and self.bits == other.bits and self.fixed == other.fixed

    def mean_bits(self) -> Bits:
        w = [b[0] for b in self.bits.values()]
        a = [b[1] for b in self.bits.values()]
        return sum(w) / len(w), sum(a) / len(a)

    # ------------------------------------------------------------------ validation
    def validate(self, model: nn.Module, candidates: Iterable[int] | None = None) -> "Policy":
        """Check the policy against ``model``: every searchable layer named, no unknown layer,
        bits within ``candidates`` (searchable layers only). Raises :class:`PolicyError`."""
        searchable, fixed = split_layers(model)
        known = set(quantizable(model))
        unknown = sorted(set(self.all_bits) - known)
        if unknown:
            raise PolicyError(f"policy names {len(unknown)} layer(s) the model ({type(model).__name__}) does not have "
                              f"({_few(unknown)}): was it searched for another model? Its layers are "
                              f"{_few(quantizable(model))}")
        missing = [n for n in searchable if n not in self.bits]
        if missing:
            raise PolicyError(f"policy gives no bits for {len(missing)} searchable layer(s) ({_few(missing)})")
        misplaced = sorted(set(self.bits) & set(fixed))
        if misplaced:
            raise PolicyError(f"{misplaced} are fixed layers (first conv / last FC); put them under 'fixed', not 'bits'")
        allowed = set(candidates) if candidates is not None else None
        bad = {n: b for n, b in self.all_bits.items() if not all(MIN_BITS <= x <= MAX_BITS for x in b)}
        if allowed is not None:
            bad.update({n: b for n, b in self.bits.items() if not set(b) <= allowed})
        if bad:
            raise PolicyError(f"bits outside the candidates {sorted(allowed) if allowed else f'{MIN_BITS}..{MAX_BITS}'}: {bad}")
        return self

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION,
                "bits": {n: list(b) for n, b in self.bits.items()},
                "fixed": {n: list(b) for n, b in self.fixed.items()},
                "provenance": self.provenance}

    @classmethod
    def from_dict(cls, d: dict) -> "Policy":
        """A policy from its JSON object; every malformed part raises a PolicyError naming it."""
        if not isinstance(d, dict) or "bits" not in d:
            raise PolicyError("not a policy: expected a JSON object with 'schema_version' and 'bits'")
        version = d.get("schema_version")
        if version is None:
            raise PolicyError(f"the policy has no 'schema_version'; add \"schema_version\": {SCHEMA_VERSION} "
                              "(the layout this mpqlib writes) or write the policy anew with Policy.save")
        if version != SCHEMA_VERSION:
            raise PolicyError(f"policy schema version {version!r} is not supported (this mpqlib reads {SCHEMA_VERSION})")
        provenance = d.get("provenance", {})
        if not isinstance(provenance, dict):
            raise PolicyError(f"policy 'provenance' must be an object, not {type(provenance).__name__}")
        return cls(_layer_table(d, "bits", True), _layer_table(d, "fixed", False), provenance)

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Policy":
        """Read a policy file. A user's file is never to be deleted: errors say what to fix in it."""
        path = Path(path)
        if not path.is_file():
            raise PolicyError(f"policy file {path} does not exist" if not path.exists() else f"{path} is not a file")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise PolicyError(f"policy {path} is not valid JSON ({e}); fix the file or write it anew "
                              "(e.g. with Policy.save or `mpq search --out`)") from None
        try:
            return cls.from_dict(d)
        except PolicyError as e:
            raise PolicyError(f"policy {path}: {e}") from None

    # ------------------------------------------------------------------ exports
    def to_hawq(self) -> dict[str, dict[str, int]]:
        """HAWQ-style ``{module: {"weight_bit": w, "activation_bit": a}}`` for every layer."""
        return {n: {"weight_bit": w, "activation_bit": a} for n, (w, a) in self.all_bits.items()}

    def to_limpq(self, order: Iterable[str] | None = None) -> tuple[list[int], list[int]]:
        """LIMPQ-style bit lists ``(w_bits, a_bits)`` over the searchable layers in ``order``."""
        names = list(order) if order is not None else list(self.bits)
        return [self.bits[n][0] for n in names], [self.bits[n][1] for n in names]

    def table(self) -> list[dict]:
        return [{"layer": n, "w_bits": w, "a_bits": a, "fixed": n in self.fixed} for n, (w, a) in self.all_bits.items()]


def _few(names, k: int = 3) -> str:
    """The first ``k`` of ``names`` and how many more: error messages stay one short line."""
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")

