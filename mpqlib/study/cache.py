"""Steps on disk: each stored once under the hash of (step, step version, fully resolved
configuration), with the configuration inside the file (see :class:`Cache`), and the hashes of
what a step reads (a file's sha256, a data set's fingerprint)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .. import data as D
from .._io import create_json, host, read_json, sha256_file
from ..config import Config
from ..errors import ConfigError, ReadOnlyError
from .steps import STEPS, kind

READ_ONLY_ENV = "MPQ_READ_ONLY"  # set (to anything but "" or "0"): every Cache reads, none computes


def read_only_default() -> bool:
    """Whether ``$MPQ_READ_ONLY`` asks for read-only caches (a reader's rerun of the chapters)."""
    return os.environ.get(READ_ONLY_ENV, "") not in ("", "0")

# Each kind's version, from its declaration (mpqlib.study.steps): bump it there when the kind's code
# changes what it computes, and every cached record of that kind recomputes.
STEP_VERSIONS = {name: s.version for name, s in STEPS.items()}


# --------------------------------------------------------------------------- hashing
def fingerprint(images: D.Images) -> dict:
    """Name, size and a hash of the tensor bytes: two data sets with the same fingerprint are the same."""
    h = hashlib.sha256(images.x.contiguous().numpy().tobytes())
    h.update(images.y.contiguous().numpy().tobytes())
    return {"name": images.name, "size": len(images), "sha256": h.hexdigest()[:20]}


def config_dict(cfg: Config) -> dict:
    """A config with its type: two configs of different methods never share a key."""
    return {"type": type(cfg).__name__, **cfg.to_dict()}


class Missing(Exception):
    """A step the cache lacks, met while the pipeline only *plans* (``Experiments.plan`` set)."""

    def __init__(self, task: "Task"):
        super().__init__(f"{task.step} of {task.model} is not cached")
        self.task = task


def attempt(fn: Callable, *args, **kwargs):
    """``fn(...)``, or None where it needs a step the cache lacks while the pipeline plans (that
    step is noted in the plan; :class:`Missing` is raised only then). So one loop both lists a
    part's steps and computes its result."""
    try:
        return fn(*args, **kwargs)
    except Missing:
        return None


@dataclass(frozen=True)
class Task:
    """One missing step, as sent to a worker: its model, step, key and the arguments that
    compute it (see :meth:`Experiments.execute`).

    ``needs``: the keys of the missing steps whose results it takes as input (a QAT run of a
    policy not searched yet needs that search). Such a task is *blocked*: its own cache key is
    known only once its inputs are, so ``key`` names it by them (``<search key>>qat:...``), and
    its ``args`` hold a :class:`SearchRef` where the policy will be. The engine hands it to a
    worker with its inputs' records (Dask futures), so that a run resolves the whole graph."""

    model: str
    step: str
    key: str
    args: tuple
    needs: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return bool(self.needs)


@dataclass(frozen=True)
class SearchRef:
    """A step's input that is the policy of a search: ``Experiments.search(name, **kw)``, read
    from the cache once that search is computed (see :attr:`Task.needs`)."""

    name: str
    kw: tuple  # the search's keyword arguments, as sorted (name, value) pairs (hashable, picklable)

    @classmethod
    def of(cls, name: str, **kw) -> "SearchRef":
        return cls(name, tuple(sorted(kw.items())))

    def policy(self, ex) -> "object":
        """The searched policy, from ``ex``'s cache (where the search now is)."""
        return ex.search(self.name, **dict(self.kw)).policy


class Cache:
    """Steps on disk keyed by the hash of (step, step version, resolved configuration).

    A record, once written, is never overwritten: :meth:`put` creates the file only where none
    is (atomically, so a half-written record never appears under its name).

    A read-only cache (``read_only``, default ``$MPQ_READ_ONLY``) raises
    :class:`~mpqlib.errors.ReadOnlyError` on a miss instead of computing: ``hint`` names the
    command that computes what is missing."""

    def __init__(self, root: str | os.PathLike, *, read_only: bool | None = None, hint: str = "mpq study run"):
        self.root = Path(root)
        self.hits = 0  # records read by this object (the pipeline's status counts them)
        self.read_only = read_only_default() if read_only is None else read_only
        self.hint = hint

    def _refuse(self, step: str, key: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{step} record {key} is not in {self.root}, and this run is read-only "
                                f"(${READ_ONLY_ENV}): nothing is computed. Compute it first with `{self.hint}`, "
                                f"or unset {READ_ONLY_ENV}")

    @staticmethod
    def key(step: str, config: dict) -> str:
        kind(step)  # an unknown kind: a ConfigError naming the known ones
        blob = json.dumps({"step": step, "version": STEP_VERSIONS[step], "config": config}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def path(self, step: str, config: dict, suffix: str = ".json") -> Path:
        return self.root / step / f"{self.key(step, config)}{suffix}"

    def load(self, step: str, config: dict) -> dict | None:
        path = self.path(step, config)
        if not path.exists():
            return None
        stored = read_json(path)
        if stored.get("config") != json.loads(json.dumps(config, default=str)):  # a hash collision or a hand edit
            raise ConfigError(f"{path} holds another configuration than its key says (edited by hand?): "
                              "move it away and run the step again")
        self.hits += 1
        return stored

    def by_key(self, step: str, key: str) -> dict | None:
        """The stored record of ``step`` under the hash ``key`` (None when there is none)."""
        path = self.root / step / f"{key}.json"
        return read_json(path) if path.exists() else None

    def record(self, step: str, config: dict, compute: Callable[[], dict]) -> dict:
        """``compute()``'s result as a record of ``step`` under ``config`` (not stored)."""
        self._refuse(step, self.key(step, config))
        start = time.perf_counter()
        result = compute()
        stored = {"step": step, "version": STEP_VERSIONS[step], "key": self.key(step, config), "config": config,
                  # what the step took here, and when it ended: `mpq study status` sums a run from these
                  "elapsed_s": round(time.perf_counter() - start, 2),
                  "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  # where it ran: the CPU capability and settings that decide its last bits (not in the key)
                  "host": host(), **result}
        return json.loads(json.dumps(stored, default=str))

    def put(self, stored: dict) -> dict:
        """Store a record unless its file exists; returns the record now on disk."""
        path = self.root / stored["step"] / f"{stored['key']}.json"
        if not path.exists():
            self._refuse(stored["step"], stored["key"])
        if not create_json(path, stored):
            return read_json(path)
        return stored

    def get(self, step: str, config: dict, compute: Callable[[], dict]) -> dict:
        """The stored result of ``step`` under ``config``, computed (and stored) if missing."""
        stored = self.load(step, config)
        if stored is not None:
            return stored
        return self.put(self.record(step, config, compute))


class Overlay(Cache):
    """A worker's cache: reads ``root``; keeps what it computes in :attr:`new` (the driver
    stores it), so a worker needs no write access to, or even a copy of, the driver's cache."""

    def __init__(self, root: str | os.PathLike):
        super().__init__(root, read_only=False)  # a worker computes what the driver sent it
        self.new: dict[tuple[str, str], dict] = {}

    def load(self, step: str, config: dict) -> dict | None:
        return self.new.get((step, self.key(step, config))) or super().load(step, config)

    def put(self, stored: dict) -> dict:
        return self.new.setdefault((stored["step"], stored["key"]), stored)


__all__ = ["STEP_VERSIONS", "Cache", "Overlay", "Task", "SearchRef", "Missing", "attempt", "sha256_file", "fingerprint", "config_dict"]
