"""What every command of ``mpq`` shares: flags, parsing, model and data loading, and the
checks that refuse a wrong input before the work."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import types
import typing
from pathlib import Path

import torch

from .. import distributed as dist
from ..config import METHOD_CONFIGS, QATConfig, TrainConfig, load_config, method_config
from ..errors import CheckpointError, ConfigError, DataError

DEFAULT_CHECKPOINT = "checkpoints/resnet20-fmnist.pt"

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the checkout mpqlib runs from

MPQLIB_LAYOUT = {"FashionMNIST", "MNIST"}  # what `mpq data` stages under --root

def say(*lines: str) -> None:
    """Print on rank 0 only (one report, however many processes)."""
    if dist.is_main():
        print(*lines, sep="\n", flush=True)

def say_err(line: str) -> None:
    """A note on stderr, from rank 0 only."""
    if dist.is_main():
        print(line, file=sys.stderr, flush=True)

# --------------------------------------------------------------------------- values
def _positive_int(flag: str, low: int = 1):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes a whole number, not {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{flag} must be >= {low}, not {v}")
        return v
    return parse

def _input_size(text: str) -> tuple[int, int, int]:
    parts = text.replace("x", ",").split(",")
    try:
        c, h, w = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input-size takes C,H,W such as 3,224,224 or 1,28,28, not {text!r}") from None
    if min(c, h, w) < 1:
        raise argparse.ArgumentTypeError(f"--input-size {text}: channels, height and width must be >= 1")
    return c, h, w

def _parse(tp, text: str, flag: str):
    """``text`` read as the annotated type ``tp`` of a config field (the config checks ranges)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if text.strip().lower() in ("none", "null"):
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)][:1]
        return _parse(inner, text, flag)
    if origin is tuple:
        (inner, *_) = typing.get_args(tp)
        return tuple(_parse(inner, t.strip(), flag) for t in text.split(",") if t.strip())
    if tp is bool:
        low = text.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{flag} takes true or false, not {text!r}")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise ConfigError(f"{flag} takes {'a whole number' if tp is int else 'a number'}, not {text!r}") from None
    return text

# --------------------------------------------------------------------------- config flags
def _fields(configs) -> dict[str, tuple[object, list[str]]]:
    """Every field of ``configs``: name -> (annotated type, names of the configs that have it)."""
    out: dict[str, tuple[object, list[str]]] = {}
    for name, cls in configs.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            out.setdefault(f.name, (hints[f.name], []))[1].append(name)
    return out

def add_config_flags(s: argparse.ArgumentParser, configs: dict[str, type]) -> None:
    """One ``--field-name`` flag per field of the config dataclasses (``--lr-step``, ...): not set,
    it stays out of the config, so the file (``--config``) or the dataclass default stands."""
    g = s.add_argument_group("options (fields of " + ", ".join(c.__name__ for c in configs.values()) + ")")
    for name, (tp, owners) in _fields(configs).items():
        by_default: dict[str, list[str]] = {}
        for o in owners:
            d = configs[o].__dataclass_fields__[name].default
            by_default.setdefault(str(list(d) if isinstance(d, tuple) else d), []).append(o)
        if len(owners) == len(configs) and len(by_default) == 1:
            where = next(iter(by_default))
        else:
            where = "; ".join(f"{d} [{', '.join(os_)}]" for d, os_ in by_default.items())
        flag = "--" + name.replace("_", "-")
        kw = {"nargs": "?", "const": "true"} if tp is bool else {}
        g.add_argument(flag, dest=f"cfg__{name}", default=argparse.SUPPRESS, metavar=_metavar(tp),
                       help=f"default {where}", **kw)

def _metavar(tp) -> str:
    if typing.get_origin(tp) is typing.Literal:
        return "{" + ",".join(map(str, typing.get_args(tp))) + "}"
    if typing.get_origin(tp) is tuple:
        return "B,B,..."
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return _metavar([a for a in typing.get_args(tp) if a is not type(None)][0])
    return getattr(tp, "__name__", "X").upper()

def config_options(args, configs: dict[str, type], owner: str | None = None) -> dict:
    """The config fields given as flags, parsed to their types (``owner``: the one config to read)."""
    fields = _fields(configs)
    opts = {}
    for key, text in vars(args).items():
        if key.startswith("cfg__"):
            name = key[len("cfg__"):]
            tp = typing.get_type_hints(configs[owner])[name] if owner and name in configs[owner].__dataclass_fields__ \
                else fields[name][0]
            opts[name] = _parse(tp, text, "--" + name.replace("_", "-"))
    return opts

def build_config(args, kind: str):
    """The typed config of this command: ``--config`` file, then flags on top."""
    if kind == "search":
        opts = config_options(args, METHOD_CONFIGS, args.method)
        if args.method:
            opts["method"] = args.method
        if args.config:
            return load_config(args.config, **opts)
        return method_config(opts.pop("method", "seam"), **opts)
    cls = TrainConfig if kind == "train" else QATConfig
    opts = config_options(args, {kind: cls}, kind)
    return load_config(args.config, kind, **opts) if args.config else cls(**opts)

# --------------------------------------------------------------------------- models and data
def _is_mpqlib_arch(name: str | None) -> bool:
    from ..models import ARCHS

    return name in ARCHS

def default_checkpoint() -> str:
    """The default checkpoint: in the current folder, else beside the mpqlib package (a checkout)."""
    for p in (Path(DEFAULT_CHECKPOINT), PACKAGE_ROOT / DEFAULT_CHECKPOINT):
        if p.is_file():
            return str(p)
    raise CheckpointError(f"no --checkpoint given and the default {DEFAULT_CHECKPOINT} is neither here nor in "
                          f"{PACKAGE_ROOT}: pass --checkpoint PATH (or --model NAME for an untrained model)")

def checkpoint_path(args) -> str | None:
    """The checkpoint file this command reads (None: an untrained --model)."""
    if args.checkpoint:
        return args.checkpoint
    return None if args.model else default_checkpoint()

def load_model(args, classes_hint: int | None = None) -> tuple[torch.nn.Module, dict, tuple[int, int, int]]:
    """(model on the CPU, its metadata, input size C,H,W) from --checkpoint / --model /
    --num-classes / --input-size; the input size is checked with one forward pass. ``meta``
    says where the size came from (``input_size_from``: flag, checkpoint or default)."""
    from ..models import build
    from ..train import load_checkpoint

    channels = args.input_size[0] if args.input_size else None
    path = checkpoint_path(args)
    if path:
        model, meta = load_checkpoint(path, arch=args.model, num_classes=args.num_classes, in_channels=channels)
    else:
        classes = args.num_classes or classes_hint or 10
        model = build(args.model, classes, channels or (1 if _is_mpqlib_arch(args.model) else 3))
        meta = {"arch": args.model, "num_classes": classes, "source": "untrained"}
        if not getattr(args, "qat_state", None):  # a QAT state brings every weight
            say_err(f"mpq: note: no --checkpoint: {args.model} starts from random weights")
    use_stored_crop(args, meta, path)
    size = args.input_size or tuple(meta.get("input_size") or ())
    meta["input_size_from"] = "flag" if args.input_size else "checkpoint" if size else "default"
    if not size:
        size = default_size(meta.get("arch"))
    _probe(model, tuple(size), meta.get("arch"))
    return model, meta, tuple(size)

def use_stored_crop(args, meta: dict, source) -> None:
    """The crop a checkpoint or QAT state was trained with becomes --crop's default; another
    --crop is refused (the same images cropped otherwise give another accuracy)."""
    crop = (meta.get("preprocessing") or {}).get("crop")
    if crop is None or not hasattr(args, "crop"):
        return
    if args.crop is None:
        args.crop = crop
    elif args.crop != crop:
        raise ConfigError(f"{source} was trained on images read with --crop {crop}, not {args.crop}: drop --crop "
                          f"(or pass --crop {crop})")


def check_model_classes(data, meta: dict, flag: str) -> None:
    """An image folder given as ``flag`` must hold the classes the model was trained on (class
    names stored by `mpq train` / `mpq qat`), checked before any work."""
    from .. import data as D

    D.check_classes(data, meta.get("classes"), f"Give {flag} a folder with exactly these class folders")


def default_size(arch: str | None) -> tuple[int, int, int]:
    return (1, 28, 28) if _is_mpqlib_arch(arch) else (3, 224, 224)

def check_default_size(arch: str | None, size: tuple[int, ...], size_from: str, data) -> None:
    """The input size of a torchvision model is never guessed for an image folder: where neither
    --input-size nor the checkpoint says it, the command stops and names the sizes of the folder's
    images (the model must run at the size it was trained at, which only the user knows)."""
    from .. import data as D

    if size_from != "default" or _is_mpqlib_arch(arch):
        return
    seen = D.image_sizes(data)
    if not seen:
        return
    shown = ", ".join(f"{h}x{w}" for h, w in seen[:4]) + (f" and {len(seen) - 4} more" if len(seen) > 4 else "")
    raise ConfigError(f"{arch}: no input size given and none in the checkpoint; the images of {D.describe(data)} "
                      f"are {shown} pixels. Pass --input-size C,H,W: the size the model was trained at (for "
                      f"torchvision's ImageNet weights {','.join(map(str, size))}; for the images as they are, e.g. "
                      f"--input-size {size[0]},{seen[0][0]},{seen[0][1]})")


def check_writable(*paths: tuple[str, str | os.PathLike | None]) -> None:
    """Each (flag, path) must be writable, checked before any work: the folder exists or can be
    made, and a file can be created in it."""
    for flag, path in paths:
        if path is None:
            continue
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".mpq-write-check-"):
                pass
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(f"{flag} {path}: cannot write into {folder}: a file is in the way of that folder; "
                              "give a path in a writable folder") from None
        except OSError as e:
            raise ConfigError(f"{flag} {path}: cannot write into {folder} ({e.strerror or e}); "
                              "give a path in a writable folder") from None

def check_labels(model: torch.nn.Module, data, fix: str) -> None:
    from .. import data as D
    from ..models import head

    D.check_labels(data, head(model)[1].out_features, fix)

def record_path(out: str | os.PathLike) -> Path:
    """The JSON record beside a model file: OUT.json for OUT.pt (one rule for every command)."""
    out = Path(out)
    if out.suffix == ".json":
        raise ConfigError(f"--out {out}: the model file needs a name of its own (such as model.pt); "
                          "its record goes beside it as .json")
    return out.with_suffix(".json")

def check_record_slot(path: Path, kind: str) -> None:
    """Never overwrite another command's record: ``path`` is new or a record of ``kind``."""
    if not path.is_file():
        return
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        d = None
    other = _record_kind(d)
    if other != kind:
        raise ConfigError(f"{path} already holds {'a ' + other + ' record' if other else 'a file mpq did not write'}; "
                          f"choose another --out so that the {kind} record does not overwrite it")

def _record_kind(d) -> str | None:
    if not isinstance(d, dict):
        return None
    if "command" in d:
        return str(d["command"])
    if "record" in d and "policy" in d:
        return "search"
    if "checkpoint" in d and "arch" in d:
        return "train"
    if "schema_version" in d and "bits" in d:
        return "policy"
    return None

def _probe(model: torch.nn.Module, size: tuple[int, ...], arch) -> None:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *size))
    except RuntimeError as e:
        raise ConfigError(f"{arch} does not take {'x'.join(map(str, size))} input (--input-size C,H,W): "
                          f"{str(e).splitlines()[0]}") from None
    finally:
        model.train(was)

def load_data(spec: str, split: str, size: tuple[int, ...], args):
    """A dataset by name: built-ins (``mnist``, ``fmnist``, ``optdigits``, ``fmnist4``, ``NAME:N``:
    training split; NAME alone for ``test``) or ``imagefolder:PATH`` read at ``size``."""
    from .. import data as D

    kind, sep, rest = spec.partition(":")
    if kind == "imagefolder":
        if not rest:
            raise ConfigError("imagefolder:PATH needs the folder, e.g. --data imagefolder:/data/imagenet/train")
        return D.imagefolder(rest, size, crop=getattr(args, "crop", None))
    if split == "test":
        if spec not in D.DATASETS:
            raise ConfigError(f"unknown evaluation data {spec!r}; choose {', '.join(D.DATASETS)} (their test split) "
                              "or imagefolder:PATH")
        return D.load(spec, "test", args.root)
    return D.search_data(spec, seed=args.data_seed, root=args.root)

def train_data(args, size):
    """--data, narrowed to a class-balanced subset by --data-per-class / --data-fraction."""
    from .. import data as D

    data = load_data(args.data, "train", size, args)
    if args.data_per_class is not None or args.data_fraction is not None:
        data = D.proxy_subset(data, per_class=args.data_per_class, fraction=args.data_fraction, seed=args.data_seed)
    return data

def with_workers(data, args, cfg):
    """``data`` in a DataLoader whose ``--workers`` processes decode images (the order stays the
    seeded :class:`~mpqlib.data.ShuffledBatches` of ``cfg``'s batch size and seed); as it is without."""
    from .. import data as D

    if not args.workers:
        return data
    seed = cfg.seed if hasattr(cfg, "seed") else args.seed  # QATConfig has none: `mpq qat --seed`
    return D.as_loader(data, cfg.batch_size, seed=seed, num_workers=args.workers, pin_memory=args.device.type == "cuda")

def eval_data(args, size):
    """--eval-data, or the test split of --data's built-in dataset (Fashion-MNIST by default)."""
    if args.eval_data:
        return load_data(args.eval_data, "test", size, args)
    base = (getattr(args, "data", None) or "fmnist").partition(":")[0]
    if base == "imagefolder":
        raise ConfigError("--data imagefolder:PATH needs --eval-data too (imagefolder:VALPATH or a built-in name)")
    return load_data(base if base in ("fmnist", "mnist", "optdigits") else "fmnist", "test", size, args)

def check_root(root: str | None) -> None:
    """--root must be new, empty, or a folder mpqlib staged (FashionMNIST/, MNIST/): never a user's
    folder that would silently fill with dataset files."""
    if root is None:
        return
    p = Path(root)
    if p.exists() and not p.is_dir():
        raise DataError(f"--root {p} is a file, not a folder; give a folder for mpqlib's datasets")
    foreign = sorted(e.name for e in p.iterdir() if e.name not in MPQLIB_LAYOUT) if p.is_dir() else []
    if foreign:
        raise DataError(f"--root {p} already holds other files ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); "
                        "mpq stages datasets only into an empty folder or one it made: give a new folder such as "
                        f"{p / 'mpqlib-data'}")

def _dims(size) -> str:
    return "x".join(map(str, tuple(size)[-3:]))

def quantized_model(args):
    """(model, meta, input size, what it runs under) for eval and export: the checkpoint, quantized
    with --policy or the policy a --qat-state carries, with the QAT state's weights; a QAT state
    used with another policy, input size or checkpoint than it was trained with is refused."""
    from ..policy import Policy
    from ..qat import check_state, load_state
    from ..quant import quantize

    state, qmeta = load_state(args.qat_state) if args.qat_state else (None, {})
    if qmeta and not args.checkpoint and qmeta.get("checkpoint"):
        if not Path(qmeta["checkpoint"]).is_file():  # moved: never another checkpoint in its place
            raise CheckpointError(f"{args.qat_state} was fine-tuned from {qmeta['checkpoint']}, which is not there any "
                                  f"more: pass --checkpoint PATH with that file (sha256 "
                                  f"{str(qmeta.get('checkpoint_sha256'))[:12]}...)")
        args.checkpoint = qmeta["checkpoint"]  # the checkpoint the state was fine-tuned from
    given_size = args.input_size
    if qmeta and not given_size:
        args.input_size = tuple(qmeta["input_size"])  # the size it was fine-tuned at
    if qmeta:
        use_stored_crop(args, qmeta, args.qat_state)
        if not args.model and qmeta.get("arch"):  # the architecture a plain state dict's checkpoint does not say
            args.model = qmeta["arch"]
        if not args.num_classes and qmeta.get("num_classes"):
            args.num_classes = qmeta["num_classes"]
    model, meta, size = load_model(args)
    if qmeta and not given_size:
        meta["input_size_from"] = "qat-state"
    if qmeta.get("classes"):
        meta["classes"] = qmeta["classes"]
    if state is None and not args.policy:
        return model, meta, size, None
    policy = Policy.load(args.policy).validate(model) if args.policy else None
    if qmeta:
        check_state(qmeta, args.qat_state, policy=policy, policy_path=args.policy, input_size=given_size,
                    checkpoint=checkpoint_path(args))
        policy = policy or Policy.from_dict(qmeta["policy"]).validate(model)
    elif state is not None and policy is None:
        raise CheckpointError(f"{args.qat_state} carries no policy (an older QAT state): pass the --policy it was "
                              "fine-tuned under")
    qmodel = quantize(model, policy)
    if state is not None:
        try:
            qmodel.load_state_dict(dist.strip_prefix(state))
        except (RuntimeError, AttributeError) as e:
            raise CheckpointError(f"{args.qat_state} does not fit {meta.get('arch')} under "
                                  f"{args.policy or 'its policy'}: {_first_mismatch(str(e))}") from None
    under = args.policy or f"the policy of {args.qat_state}"
    if args.policy and args.qat_state:
        under += f" ({args.qat_state})"
    return qmodel, meta, size, under

def _first_mismatch(text: str) -> str:
    """The first specific line of torch's load_state_dict error (not its heading)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    detail = lines[1] if len(lines) > 1 else lines[0] if lines else text
    return detail[:200] + ("..." if len(detail) > 200 else "")

def _name(data) -> str:
    from .. import data as D

    return D.describe(data)

def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: cuda when a GPU is visible)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

def _model_args(s: argparse.ArgumentParser, checkpoint: bool = True) -> None:
    g = s.add_argument_group("model")
    g.add_argument("--model", "--arch", dest="model", default=None,
                   help="resnet20, resnet8, mobilenetv1 or a torchvision model (resnet18, mobilenet_v2, ...); "
                        "with --checkpoint: what it must hold")
    g.add_argument("--num-classes", type=_positive_int("--num-classes"), default=None,
                   help="classes of the model's classifier (default: the checkpoint's or the data's)")
    g.add_argument("--input-size", type=_input_size, default=None, metavar="C,H,W",
                   help="model input (default: the checkpoint's; 1,28,28 for mpqlib's models, 3,224,224 for torchvision's)")
    if checkpoint:
        g.add_argument("--checkpoint", default=None,
                       help=f"mpqlib checkpoint or plain state_dict file (default without --model: {DEFAULT_CHECKPOINT})")

def _data_args(s: argparse.ArgumentParser, default: str, eval_data: bool = True) -> None:
    g = s.add_argument_group("data")
    g.add_argument("--data", default=default,
                   help="mnist (240/class), optdigits, fmnist4 (4%% of Fashion-MNIST), fmnist, NAME:N (N per class) "
                        "or imagefolder:PATH (default: %(default)s)")
    if eval_data:
        g.add_argument("--eval-data", default=None,
                       help="test data: fmnist, mnist, optdigits (test split) or imagefolder:PATH "
                            "(default: the test split of --data's dataset)")
    g.add_argument("--data-seed", type=int, default=0, help="seed of a class-balanced subset (NAME:N, mnist, below)")
    g.add_argument("--crop", choices=("center", "resize"), default=None,
                   help="image folders: center = short side to H/0.875, central HxW (torchvision's ImageNet "
                        "evaluation); resize = the whole image to HxW; both bilinear with antialiasing (default: "
                        "the crop a checkpoint or QAT state was trained with, else center from 64 px, resize below)")
    g.add_argument("--workers", type=_positive_int("--workers", 0), default=0, metavar="N",
                   help="loader processes decoding --data images (image folders on GPUs: 8 or so; default 0: none)")
    pick = g.add_mutually_exclusive_group()
    pick.add_argument("--data-per-class", type=_positive_int("--data-per-class"), default=None, metavar="N",
                      help="use a class-balanced subset of --data: N images of each class (a proxy from a big folder)")
    pick.add_argument("--data-fraction", type=float, default=None, metavar="F",
                      help="use a class-balanced fraction F of --data (0.04: the paper's 4%% proxy)")

def _eval_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--eval-data", default=None, help="fmnist (default), mnist, optdigits (test split) or imagefolder:PATH")
    s.add_argument("--crop", choices=("center", "resize"), default=None,
                   help="image folders: center or resize, bilinear with antialiasing (default: the crop the "
                        "checkpoint or QAT state was trained with, else center from 64 px, resize below)")
    s.add_argument("--workers", type=_positive_int("--workers", 0), default=0, metavar="N",
                   help="loader processes decoding --eval-data images (default 0: none)")
