"""Labelled images, and what mpqlib reads of any labelled dataset.

:class:`Images` holds a small labelled set in memory, normalised with :data:`MEAN` and
:data:`STD` (the target's statistics, the models' fixed input pipeline). Any other map-style
dataset returning ``(image tensor, int label)`` (an ``ImageFolder``, a ``Subset``, ...) or a
``DataLoader`` of one is read through the functions here, which read only what they need:
its labels (:func:`labels_of`), classes (:func:`num_classes`), name (:func:`describe`) and image
shape (:func:`sample_shape`), and the checks that a model fits its images and labels
(:func:`check_fits`, :func:`check_model_takes`, :func:`check_labels`). The public names are
also :mod:`mpqlib.data`'s, the module to import.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .errors import DataError

# Fashion-MNIST training-set statistics: every dataset fed to the target model uses them.
MEAN, STD = 0.2860, 0.3530


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


def image_sizes(data, limit: int = 200) -> list[tuple[int, int]]:
    """The distinct (height, width) of up to ``limit`` image files of an image folder (spread over
    its classes), most frequent first; [] for data not read from image files."""
    samples = getattr(_base(data), "samples", None)
    if not samples:
        return []
    from collections import Counter

    from PIL import Image

    step = max(1, len(samples) // limit)
    seen: Counter = Counter()
    for path, _ in samples[::step][:limit]:
        try:
            with Image.open(path) as im:
                w, h = im.size
        except OSError:
            continue
        seen[(h, w)] += 1
    return [size for size, _ in seen.most_common()]


def class_names(data) -> tuple[str, ...] | None:
    """The class names of ``data`` in label order, where it names them (image folders, the
    built-in data sets); None otherwise."""
    names = getattr(_base(data), "classes", None)
    return None if names is None else tuple(str(c) for c in names)


def folder_classes(data) -> tuple[str, ...] | None:
    """The class names of an image folder (its sub-folders, in label order); None for other data."""
    return class_names(data) if getattr(_base(data), "samples", None) is not None else None


def preprocessing(data) -> dict | None:
    """How an image folder's files become tensors (input size, crop, resize, normalisation); None
    for other data."""
    return getattr(_base(data), "preprocessing", None)


def check_classes(data, expected, fix: str) -> None:
    """An image folder's classes must be ``expected`` (the model's, in label order): a missing,
    extra, renamed or reordered class folder would give every image another label, and a wrong
    accuracy with exit code 0. Refused in one line naming the difference; nothing to check where
    either side is unknown (a built-in data set, a checkpoint without class names)."""
    names = folder_classes(data)
    if not expected or names is None or tuple(names) == tuple(expected):
        return
    expected = tuple(str(c) for c in expected)
    missing = [c for c in expected if c not in names]
    extra = [c for c in names if c not in expected]
    what = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                        f"extra {', '.join(extra)}" if extra else "") if part) or \
        "the same names in another order"
    shown = ", ".join(expected[:12]) + (", ..." if len(expected) > 12 else "")
    raise DataError(f"{describe(data)} does not hold the model's classes ({what}); the model's {len(expected)} "
                    f"classes, in label order: {shown}. {fix}")


# --------------------------------------------------------------------------- whole batches
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


__all__ = ["MEAN", "STD", "Images", "labels_of", "num_classes", "describe", "sample_shape", "check_fits",
           "image_sizes", "class_names", "folder_classes", "check_classes", "preprocessing",
           "check_model_takes", "check_labels", "native_size"]
