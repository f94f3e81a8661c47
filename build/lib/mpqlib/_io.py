"""Atomic writes and provenance shared by every module that saves results."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` in one step.

    A crash mid-write leaves the previous file (or none), never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: str | os.PathLike, blob: bytes) -> Path:
    """``blob`` into ``path`` atomically (a temporary file renamed into place)."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(blob))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` atomically; a file that already holds exactly this text is left untouched
    (so regenerating a result that did not change changes no file, not even its time stamp)."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return path
    return atomic_write(path, lambda p: p.write_text(text))


def create_json(path: str | os.PathLike, obj: Any) -> bool:
    """Write ``obj`` to ``path`` only if no file is there, atomically: the text goes to a temporary
    file that is then linked to ``path`` in one step, which fails if ``path`` exists. Returns
    whether this call created the file (False: another writer's file was there and is kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it and rerun the step that writes it") from e


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (a checkpoint's identity)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def torch_save(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write(path, lambda p: torch.save(obj, p))


def code_version() -> str:
    """mpqlib's version plus the git commit of the checkout it runs from, when there is one."""
    from ._version import __version__

    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--", "."],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        return f"{__version__}+g{rev}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


# The environment variables that change which CPU kernels torch and its libraries dispatch to.
NUMERICS_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR",
                "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS")


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host() -> dict:
    """What decides a result's last bits: the CPU capability torch dispatches to, the CPU, threads,
    library versions and the numerics settings in the environment. Stored beside every cached step."""
    import numpy

    return {"capability": torch.backends.cpu.get_cpu_capability(), "cpu": cpu_model(),
            "machine": platform.machine(), "threads": torch.get_num_threads(),
            "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
            "torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version(),
            "env": {k: os.environ[k] for k in NUMERICS_ENV if k in os.environ}}
