"""mpqlib as a user installs it: a wheel in a fresh venv, no checkout on the path.

The wheel is built from this checkout and installed into a new virtual environment. Its
third-party packages are the pinned ones of the checkout's ``.venv`` (one path entry, so that
torch is not copied again; pip checks the wheel's requirements against them with no index),
and everything outside the library's required dependencies (torch, torchvision, numpy, PuLP,
tqdm, PyYAML) is made unimportable: dask, scipy, scikit-learn, matplotlib, pandas, the book's
packages and, except for ``mpq export`` (the ``[export]`` extra), onnx and onnxruntime. There,
from a folder outside the checkout, the README's Python snippet runs on a torchvision ResNet-18
and image folders, and so do ``mpq search``, ``mpq qat`` and ``mpq export``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("dask", "distributed", "scipy", "sklearn", "matplotlib", "pandas", "seaborn", "papermill", "nbformat",
           "myst_nb", "jupyter_book", "playwright")
EXPORT = ("onnx", "onnxruntime")

BLOCKER = '''"""Make the packages outside mpqlib's required dependencies unimportable (tests/test_wheel.py):
found, as far as importlib.util.find_spec asks, but importing one raises ModuleNotFoundError."""
import importlib.abc, importlib.util, os, sys

BLOCKED = set(os.environ.get("MPQ_TEST_BLOCK", "").split(","))


class _Absent(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name.split(".")[0] in BLOCKED else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise ModuleNotFoundError(f"No module named {module.__name__!r} (not a required dependency of mpqlib)",
                                  name=module.__name__)


sys.meta_path.insert(0, _Absent())
'''


def _run(cmd, cwd, env, timeout=600):
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def _snippet() -> str:
    """The README's Python snippet, pointed at the test's files and sized for a CPU."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(import torch, torchvision\n.*?)```", text, re.S).group(1)
    for a, b in (('"/data/proxy/train"', '"proxy"'), ('"/data/train"', '"train"'), ('"/data/val"', '"val"'),
                 ("(3, 224, 224)", "(3, 32, 32)"), ("per_class=50", "per_class=4"), ("SeamConfig(epochs=8)",
                 "SeamConfig(epochs=1)"), ("QATConfig(epochs=1)", "QATConfig(epochs=1, batch_size=10)")):
        assert a in code, f"the README's snippet no longer has {a}"
        code = code.replace(a, b)
    return code


@pytest.mark.slow
def test_the_wheel_works_in_a_fresh_venv_without_the_checkout(tmp_path):
    from test_cli_safety import write_folder

    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MPQ_ROOT", "VIRTUAL_ENV")}
    # built from a copy of the package's sources: setuptools leaves build/ beside what it builds
    src = tmp_path / "src"
    shutil.copytree(ROOT / "mpqlib", src / "mpqlib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, src], src, env)
    wheel = next(dist.glob("mpqlib-*.whl"))
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path, env)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site / "_mpq_test_block.py").write_text(BLOCKER)
    # the checkout's .venv packages by one path line (its .pth files, the editable mpqlib among
    # them, are not processed: the checkout is not on the path), then the blocker
    deps = Path(sysconfig.get_path("purelib"))
    (site / "_mpq_test_deps.pth").write_text(f"{deps}\nimport _mpq_test_block\n")
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "--no-index", "-q", wheel], tmp_path, env)

    work.mkdir()
    env = {**env, "MPQ_TEST_BLOCK": ",".join(BLOCKED + EXPORT), "MPQLIB_DATA": os.environ.get(
        "MPQLIB_DATA", str(Path.home() / ".cache" / "mpqlib" / "data"))}
    where = _run([py, "-c", "import mpqlib, sys; print(mpqlib.__file__); print('\\n'.join(sys.path))"], work, env)
    first, *path = where.splitlines()
    assert Path(first).is_relative_to(site) and not Path(first).is_relative_to(ROOT / "mpqlib"), where
    assert str(ROOT) not in path and "" not in path[1:], where  # the checkout is not on the path
    blocked = subprocess.run([py, "-c", "import scipy"], cwd=work, env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "not a required dependency" in blocked.stderr  # the blocker holds

    for name, per in (("proxy", 4), ("train", 4), ("val", 3)):
        write_folder(work / name, per_class=per)
    import torch
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), work / "r18.pth")

    # the README's snippet: search, QAT, QDQ ONNX and packed weights (export needs the [export] extra)
    (work / "snippet.py").write_text(_snippet())
    out = _run([py, "snippet.py"], work, {**env, "MPQ_TEST_BLOCK": ",".join(BLOCKED)})
    top1, onnx_top1 = map(float, out.split()[-2:])
    assert abs(top1 - onnx_top1) <= 0.1 and (work / "r18-w3a3.onnx").exists() and (work / "r18-w3a3.mpqw").exists()

    # the command line: search and qat with the required dependencies only, export with [export]
    mpq = venv / "bin" / "mpq"
    common = ["--model", "resnet18", "--checkpoint", "r18.pth", "--input-size", "3,32,32", "--num-classes", "10"]
    _run([mpq, "search", *common, "--data", "imagefolder:proxy", "--method", "seam", "--epochs", "1", "--budget",
          "w4a4", "--out", "seam.json"], work, env)
    _run([mpq, "qat", *common, "--policy", "seam.policy.json", "--data", "imagefolder:train", "--eval-data",
          "imagefolder:val", "--epochs", "1", "--batch-size", "10", "--out", "seam-qat.pt"], work, env)
    out = _run([mpq, "export", "--qat-state", "seam-qat.pt", "--eval-data", "imagefolder:val", "--out", "seam-w3a3"], work,
               {**env, "MPQ_TEST_BLOCK": ",".join(BLOCKED)})
    assert (work / "seam-w3a3.onnx").exists() and "top-1" in out
