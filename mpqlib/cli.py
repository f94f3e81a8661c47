"""``mpq``: the command line of mpqlib (also ``python -m mpqlib.cli``).

    mpq data                                        stage and check the built-in datasets
    mpq train  --model resnet20 --data fmnist       train a full-precision model
    mpq eval   --checkpoint CKPT [--policy P.json]  top-1 on --eval-data (default: Fashion-MNIST test)
    mpq cost   --checkpoint CKPT [--policy P.json]  per-layer table, BitOps and size
    mpq search --method seam --data mnist --budget w3a3   search a policy
    mpq qat    --policy P.json --out Q.pt           fine-tune under a policy and report top-1
    mpq eval   --qat-state Q.pt                     top-1 of the fine-tuned model (its policy and input size)
    mpq export --qat-state Q.pt --out NAME          NAME.onnx (QDQ) and NAME.mpqw (packed integer weights)

Models: mpqlib's (resnet20, resnet8, mobilenetv1) or torchvision's by name (--model resnet18
--num-classes 1000 --input-size 3,224,224); --checkpoint reads an mpqlib checkpoint or a plain
state_dict. Data: built-in names (mnist, fmnist, optdigits, fmnist4, NAME:N) or
imagefolder:PATH (one sub-folder per class). Method, training and QAT options are the fields of
their configs in mpqlib.config, one flag each (--epochs, --margin, --lr-step, ...), also read
from --config run.yaml; flags win over the file.

Many processes: torchrun --standalone --nproc_per_node=N -m mpqlib.cli train|search|qat ...
(the batch size stays the global one; rank 0 writes every file and reports every error).
Every error is one line `mpq: error: ...` and exit code 2, found before the work where it can be
(unwritable outputs, labels outside the model's classes, a mismatching QAT state); an image
file that cannot be decoded stops the run when it is read, naming the file. Ctrl-C: exit 130.
Records: OUT.json beside OUT.pt (train, qat); a command never overwrites another one's record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
import types
import typing
from pathlib import Path

import torch

from . import distributed as dist
from .config import METHOD_CONFIGS, QATConfig, TrainConfig, load_config, method_config
from .errors import CheckpointError, ConfigError, DataError, MpqlibError

DEFAULT_CHECKPOINT = "checkpoints/resnet20-fmnist.pt"
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the checkout mpqlib runs from
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
    from .models import ARCHS

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
    from .models import build
    from .train import load_checkpoint

    channels = args.input_size[0] if args.input_size else None
    path = checkpoint_path(args)
    if path:
        model, meta = load_checkpoint(path, arch=args.model, num_classes=args.num_classes, in_channels=channels)
    else:
        classes = args.num_classes or classes_hint or 10
        model = build(args.model, classes, channels or (1 if _is_mpqlib_arch(args.model) else 3))
        meta = {"arch": args.model, "num_classes": classes, "source": "untrained"}
        say_err(f"mpq: note: no --checkpoint: {args.model} starts from random weights")
    size = args.input_size or tuple(meta.get("input_size") or ())
    meta["input_size_from"] = "flag" if args.input_size else "checkpoint" if size else "default"
    if not size:
        size = default_size(meta.get("arch"))
    _probe(model, tuple(size), meta.get("arch"))
    return model, meta, tuple(size)


def default_size(arch: str | None) -> tuple[int, int, int]:
    return (1, 28, 28) if _is_mpqlib_arch(arch) else (3, 224, 224)


def check_default_size(arch: str | None, size: tuple[int, ...], size_from: str, data) -> None:
    """A torchvision model at its default 224 px on images far smaller is refused: the checkpoint
    did not say what it was trained at, and an upscaled small image gives a wrong accuracy."""
    from . import data as D

    if size_from != "default" or _is_mpqlib_arch(arch):
        return
    native = D.native_size(data)
    if native and 2 * min(native) <= min(size[-2:]):
        h, w = native
        raise ConfigError(f"{arch}: no input size given and none in the checkpoint, so torchvision's default "
                          f"{'x'.join(map(str, size))} would upscale the {h}x{w} images of {D.describe(data)}; pass "
                          f"--input-size {size[0]},{h},{w} (the size it was trained at), or --input-size "
                          f"{','.join(map(str, size))} to upscale on purpose")


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
    from . import data as D
    from .models import head

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
    from . import data as D

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
    from . import data as D

    data = load_data(args.data, "train", size, args)
    if args.data_per_class is not None or args.data_fraction is not None:
        data = D.proxy_subset(data, per_class=args.data_per_class, fraction=args.data_fraction, seed=args.data_seed)
    return data


def with_workers(data, args, cfg):
    """``data`` in a DataLoader whose ``--workers`` processes decode images (the order stays the
    seeded :class:`~mpqlib.data.ShuffledBatches` of ``cfg``'s batch size and seed); as it is without."""
    from . import data as D

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


# --------------------------------------------------------------------------- commands
def cmd_data(args) -> int:
    from . import data as D

    for name in D.DATASETS:
        for split in ("train", "test"):
            d = D.load(name, split, args.root)
            say(f"{name:10s} {split:5s} {len(d):6d} images, {d.num_classes} classes")
    say(f"staged under {args.root or D.default_root()}")
    return 0


def cmd_train(args) -> int:
    from . import data as D
    from .models import build
    from .train import seed_everything, train_fp

    cfg = build_config(args, "train")
    record = record_path(args.out)
    check_writable(("--out", args.out))
    check_record_slot(record, "train")
    if Path(args.out).is_file() and not args.force:
        raise ConfigError(f"{args.out} is a finished model already: pass --force to train over it, or choose "
                          "another --out")
    size = args.input_size or default_size(args.model)
    train = train_data(args, size)
    check_default_size(args.model, size, "flag" if args.input_size else "default", train)
    test = eval_data(args, size)
    seed_everything(cfg.seed)  # before the model is built: its initial weights come from the seed too
    model = build(args.model, args.num_classes or D.num_classes(train), size[0])
    _probe(model, size, args.model)
    check_labels(model, train, "pass --num-classes with the number of classes of --data")
    meta = train_fp(model, cfg, arch=args.model, train=with_workers(train, args, cfg), test=test, out=args.out,
                    device=args.device, progress=not args.quiet, restart=args.restart)
    say(f"{meta['arch']}: top-1 {meta['top1']:.2f}% on {D.describe(test)} at input {_dims(size)} after {meta['epochs']} epochs "
        f"({meta['train_seconds'] / 60:.1f} min, {dist.world()} process{'es' if dist.world() > 1 else ''}); "
        f"saved {args.out}")
    return 0


def _dims(size) -> str:
    return "x".join(map(str, tuple(size)[-3:]))


def cmd_eval(args) -> int:
    from . import data as D
    from .train import evaluate

    qmodel, meta, size, under = quantized_model(args)
    data = eval_data(args, size)
    check_default_size(meta.get("arch"), size, meta["input_size_from"], data)
    D.check_fits(data, (1, *size))
    if args.workers:
        data = torch.utils.data.DataLoader(data, num_workers=args.workers)
    top1 = evaluate(qmodel.to(args.device), data, device=args.device)
    say(f"{meta['arch']}{' under ' + under if under else ''}: top-1 {top1:.2f}% on {_name(data)} at input {_dims(size)}")
    return 0


def quantized_model(args):
    """(model, meta, input size, what it runs under) for eval and export: the checkpoint, quantized
    with --policy or the policy a --qat-state carries, with the QAT state's weights; a QAT state
    used with another policy, input size or checkpoint than it was trained with is refused."""
    from .policy import Policy
    from .qat import check_state, load_state
    from .quant import quantize

    state, qmeta = load_state(args.qat_state) if args.qat_state else (None, {})
    if qmeta and not args.checkpoint and not args.model and qmeta.get("checkpoint") and Path(qmeta["checkpoint"]).is_file():
        args.checkpoint = qmeta["checkpoint"]  # the checkpoint the state was fine-tuned from
    given_size = args.input_size
    if qmeta and not given_size:
        args.input_size = tuple(qmeta["input_size"])  # the size it was fine-tuned at
    model, meta, size = load_model(args)
    if qmeta and not given_size:
        meta["input_size_from"] = "qat-state"
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
    from . import data as D

    return D.describe(data)


def cmd_cost(args) -> int:
    from .cost import budget, cost_model
    from .policy import Policy

    model, _, size = load_model(args)
    cm = cost_model(model, (1, *size))
    policy = Policy.load(args.policy).validate(model) if args.policy else None
    lines = [f"{'layer':26s} {'kind':6s} {'shape':28s} {'MACs':>13s} {'params':>10s}  bits"]
    for row in cm.table():
        bits = policy.all_bits[row["layer"]] if policy else ((8, 8) if row["fixed (8-bit)"] else None)
        tag = f"W{bits[0]}A{bits[1]}" if bits else "searched"
        lines.append(f"{row['layer']:26s} {row['kind']:6s} {row['shape']:28s} {row['MACs']:13,d} {row['params']:10,d}  {tag}")
    lines.append(f"total: {cm.macs:,} MACs, {cm.params:,} weights at input {'x'.join(map(str, size))}; "
                 f"searchable layers: {len(cm.searchable)}")
    lines += [f"  uniform {name} budget: {budget(cm, name):,} BitOps" for name in ("w2a2", "w3a3", "w4a4", "w8a8")]
    if policy:
        lines.append(f"policy {args.policy}: {cm.bitops(policy):,} BitOps, {cm.size_bytes(policy):,.0f} bytes")
    say(*lines)
    return 0


def search_paths(out: str, policy_out: str | None) -> tuple[Path, Path]:
    """(search record path, policy path): both JSON, never the same file."""
    record = Path(out)
    if record.suffix != ".json":
        raise ConfigError(f"--out {out} must end with .json (the search record; the policy goes beside it as "
                          f"{record.name}.policy.json unless --policy-out says otherwise): try --out {out}.json")
    policy = Path(policy_out) if policy_out else record.with_name(record.stem + ".policy.json")
    if policy.suffix != ".json":
        raise ConfigError(f"--policy-out {policy_out} must end with .json")
    if policy.resolve() == record.resolve():
        raise ConfigError(f"--policy-out and --out are the same file ({record}); the policy would overwrite the "
                          "search record: give them different names")
    return record, policy


def cmd_search(args) -> int:
    from .cost import budget as parse_budget, cost_model
    from .search import search

    cfg = build_config(args, "search")
    record_path, policy_path = search_paths(args.out, args.policy_out)
    check_writable(("--out", record_path), ("--policy-out", policy_path))
    check_record_slot(record_path, "search")
    check_record_slot(policy_path, "policy")
    model, meta, size = load_model(args)
    cm = cost_model(model, (1, *size))
    budget = None if args.budget == "none" else parse_budget(cm, args.budget)
    top = max(cfg.candidates)
    if budget is not None and budget > cm.uniform_bitops(top):
        say_err(f"mpq: note: budget {args.budget} ({budget:,} BitOps) is out of reach: every searched layer at the "
                f"largest candidate, W{top}A{top}, takes {cm.uniform_bitops(top):,}; the policy will be W{top}A{top} "
                "throughout (add larger bits to --candidates to use more)")
    if cfg.method == "uniform":
        cfg = cfg.at_budget(args.budget)  # --budget w3a2: uniform W3A2, exactly on it
    data = None if cfg.method in ("uniform", "random") else train_data(args, size)
    if data is not None:
        check_default_size(meta.get("arch"), size, meta["input_size_from"], data)
    val = load_data(args.eval_data, "test", size, args) if args.eval_data else None
    if cfg.method == "hawq":
        _hawq_note(cfg, data, args.quiet)
    data = with_workers(data, args, cfg) if data is not None else None
    res = search(model, data, budget, cfg, device=args.device, input_size=(1, *size), val_data=val,
                 progress=not args.quiet)
    res = dist.broadcast(res)  # one policy, rank 0's, on every process
    res.record["input_size"] = list(size)
    with dist.main_process_writes() as writer:
        if writer:
            res.save(record_path)
            res.policy.save(policy_path)
    r = res.record
    on = f" on {r['search_data']}" if data is not None else ""
    head = f"{r['method']}{on} at input {_dims(size)}: {r['bitops']:,} BitOps"
    say(head + (f" (budget {budget:,}), {r['size_bytes']:,.0f} bytes; {r['seconds']:.1f} s, {r['images']:,} images"
                if budget else f"; {r['seconds']:.1f} s"),
        *[f"  {n:26s} W{w}A{a}" for n, (w, a) in res.policy.bits.items()],
        f"saved {record_path} (record) and {policy_path} (policy)")
    return 0


def _hawq_note(cfg, data, quiet: bool) -> None:
    """HAWQ runs its Hessian traces without a progress bar: say what it does and on how many images."""
    n = min(cfg.images, len(data))
    fewer = f" (all of {len(data)}: fewer than --images {cfg.images})" if n < cfg.images else ""
    if not quiet or fewer:
        say_err(f"mpq: hawq: Hessian traces on {n} images{fewer}, {cfg.iters} Hutchinson iterations per layer "
                f"({1 + 2 * cfg.iters} passes over them); no progress bar until it ends")


def cmd_qat(args) -> int:
    from ._io import write_json
    from .policy import Policy
    from .qat import qat, save_state

    cfg = build_config(args, "qat")
    record = record_path(args.out) if args.out else None
    check_writable(("--out", args.out))
    if record:
        check_record_slot(record, "qat")
    model, meta, size = load_model(args)
    policy = Policy.load(args.policy).validate(model)
    train = train_data(args, size)
    check_default_size(meta.get("arch"), size, meta["input_size_from"], train)
    check_labels(model, train, "give data with the checkpoint's classes (or a checkpoint trained on these)")
    test = eval_data(args, size)
    qmodel, rec = qat(model, policy, with_workers(train, args, cfg), test, cfg, seed=args.seed, device=args.device,
                      progress=not args.quiet, input_size=(1, *size))
    if args.out:
        with dist.main_process_writes() as writer:
            if writer:
                save_state(args.out, qmodel, policy, size, checkpoint_path(args), rec)
                write_json(record, {"command": "qat", **rec, "policy": args.policy, "input_size": list(size),
                                    "checkpoint": checkpoint_path(args), "qat_state": str(args.out),
                                    "processes": dist.world()})
    say(f"QAT under {args.policy} at input {_dims(size)}: top-1 {rec['top1']:.2f}% ({rec['seconds'] / 60:.1f} min)"
        + (f"; saved {args.out} and {record}" if args.out else ""))
    return 0


def cmd_export(args) -> int:
    from . import data as D
    from . import export as E
    from .cost import cost_model
    from .train import evaluate

    if not args.qat_state:
        raise ConfigError("export needs the fine-tuned model: --qat-state Q.pt (written by `mpq qat --out Q.pt`)")
    stem = Path(args.out)
    stem = stem.with_suffix("") if stem.suffix in (".onnx", ".mpqw", ".json") else stem
    onnx_path, packed, record = (stem.with_name(stem.name + ext) for ext in (".onnx", ".mpqw", ".json"))
    check_writable(("--out", onnx_path))
    check_record_slot(record, "export")
    qmodel, meta, size, _ = quantized_model(args)
    qmodel = qmodel.cpu().eval()
    policy = E.policy_of(qmodel)
    cost_bytes = cost_model(qmodel, (1, *size)).size_bytes(policy)
    containers = E.to_onnx(qmodel, size, onnx_path, metadata={"mpqlib.policy": json.dumps(policy.to_dict()["bits"]),
                                                             "mpqlib.input_size": _dims(size)})
    info = E.save_packed(qmodel, packed)
    rec = {"command": "export", "onnx": str(onnx_path), "packed": str(packed), "rest": str(info.rest_path),
           "input_size": list(size), "qat_state": args.qat_state, "checkpoint": checkpoint_path(args),
           "containers": containers, "packed_bytes": info.bytes, "cost_model_bytes": cost_bytes,
           "rest_bytes": info.rest_bytes}
    lines = [f"{meta['arch']} at input {_dims(size)}: wrote {onnx_path} (QDQ: "
             + ", ".join(f"{n} {k.lower()}" for k, n in sorted(containers.items())) + ")",
             f"  {packed}: {info.bytes:,} bytes of packed integer weights and step sizes (cost model: "
             f"{cost_bytes:,.0f} bytes, {100 * (info.bytes / cost_bytes - 1):+.2f}%), plus {info.rest_bytes:,} bytes "
             f"of 32-bit biases and BatchNorm in {info.rest_path}"]
    if not args.no_check:
        data = eval_data(args, size)
        D.check_fits(data, (1, *size))
        rec["torch_top1"] = evaluate(qmodel, data, device="cpu")
        rec["onnx_top1"] = E.onnx_top1(onnx_path, data)
        gap = abs(rec["onnx_top1"] - rec["torch_top1"])
        if gap > 0.1:
            onnx_path.unlink(missing_ok=True)
            raise ConfigError(f"onnxruntime gives top-1 {rec['onnx_top1']:.2f}% but PyTorch {rec['torch_top1']:.2f}% "
                              f"on {_name(data)}: the exported model does not compute what the QAT model does; "
                              f"{onnx_path} was removed")
        lines.append(f"  top-1 on {_name(data)}: onnxruntime {rec['onnx_top1']:.2f}%, PyTorch {rec['torch_top1']:.2f}%")
    with dist.main_process_writes() as writer:
        if writer:
            from ._io import write_json

            write_json(record, rec)
    say(*lines, f"saved {record}")
    return 0


# --------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line like every other error: one line, exit code 2."""

    def error(self, message: str):
        if message.endswith("expected one argument"):
            message += " (a value that starts with '-' is written --flag=VALUE, e.g. --budget=-5)"
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


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
                        "evaluation); resize = the whole image to HxW (default: center from 64 px, resize below)")
    g.add_argument("--workers", type=_positive_int("--workers", 0), default=0, metavar="N",
                   help="loader processes decoding --data images (image folders on GPUs: 8 or so; default 0: none)")
    pick = g.add_mutually_exclusive_group()
    pick.add_argument("--data-per-class", type=_positive_int("--data-per-class"), default=None, metavar="N",
                      help="use a class-balanced subset of --data: N images of each class (a proxy from a big folder)")
    pick.add_argument("--data-fraction", type=float, default=None, metavar="F",
                      help="use a class-balanced fraction F of --data (0.04: the paper's 4%% proxy)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="mpq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=_positive_int("--threads"), default=None,
                   help="torch CPU threads (default: torch's choice)")
    p.add_argument("--as-processes", type=_positive_int("--as-processes"), default=1, metavar="N",
                   help="train, search or QAT in one process as N torchrun processes would: each global batch in "
                        "N shares, their gradients summed in rank order; with --threads 1 a search takes "
                        "the steps of `torchrun --nproc_per_node=N` exactly (default 1)")
    p.add_argument("--root", default=None,
                   help="data folder: new, empty or made by mpq (default: $MPQLIB_DATA or ~/.cache/mpqlib/data)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("data", help="stage and verify Fashion-MNIST, MNIST and optdigits")
    _common(s)
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("train", help="train a full-precision model (default: ResNet-20 on Fashion-MNIST)")
    _common(s)
    _model_args(s, checkpoint=False)
    s.set_defaults(model="resnet20")
    _data_args(s, "fmnist")
    s.add_argument("--config", default=None, help="YAML file of TrainConfig fields (flags win)")
    s.add_argument("--out", default=DEFAULT_CHECKPOINT, help="checkpoint to write (atomically, rank 0); its record "
                   "goes beside it as OUT.json")
    s.add_argument("--restart", action="store_true",
                   help="start over instead of resuming an interrupted run of --out (which resumes only with "
                        "the same settings)")
    s.add_argument("--force", action="store_true",
                   help="replace a finished --out (without it, a finished model is never trained over)")
    add_config_flags(s, {"train": TrainConfig})
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("cost", help="per-layer MACs/params table; BitOps and size of a policy")
    _common(s)
    _model_args(s)
    s.add_argument("--policy", default=None, help="policy JSON to cost")
    s.set_defaults(func=cmd_cost)

    s = sub.add_parser("search", help="search a mixed-precision policy",
                       description="Search a policy; writes the search record and the policy as two JSON files.")
    _common(s)
    _model_args(s)
    _data_args(s, "mnist")
    s.add_argument("--method", default=None, choices=list(METHOD_CONFIGS),
                   help="search method (default: the --config file's, else seam)")
    s.add_argument("--config", default=None, help="YAML file naming the method and its options (flags win)")
    s.add_argument("--budget", default="w3a3", help="BitOps budget: w3a3, w2.5a2.5, a number like 2.8e8, or none")
    s.add_argument("--out", default="search.json", help="search record (.json)")
    s.add_argument("--policy-out", default=None, help="the policy alone (default: OUT without .json + .policy.json)")
    add_config_flags(s, METHOD_CONFIGS)
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("qat", help="LSQ fine-tuning under a policy; top-1 on --eval-data")
    _common(s)
    _model_args(s)
    _data_args(s, "fmnist")
    s.add_argument("--policy", required=True)
    s.add_argument("--config", default=None, help="YAML file of QATConfig fields (flags win)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="write the fine-tuned quantized model here, with its policy, input "
                   "size and checkpoint hash (record: OUT.json beside it)")
    add_config_flags(s, {"qat": QATConfig})
    s.set_defaults(func=cmd_qat)

    s = sub.add_parser("eval", help="top-1 of a checkpoint (optionally under a policy) on --eval-data")
    _common(s)
    _model_args(s)
    _eval_args(s)
    s.add_argument("--policy", default=None, help="policy JSON to quantize with (default: the one --qat-state carries)")
    s.add_argument("--qat-state", default=None, help="the fine-tuned model written by `mpq qat --out` (it carries its "
                   "policy, input size and checkpoint hash; another combination is refused)")
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("export", help="ONNX (QDQ at each layer's bits) and packed integer weights of a QAT state",
                       description="Write NAME.onnx, NAME.mpqw (+ NAME.mpqw.rest.pt) and the record NAME.json from "
                                   "a checkpoint and the QAT state fine-tuned from it; check onnxruntime's top-1 "
                                   "against PyTorch's on --eval-data.")
    _common(s)
    _model_args(s)
    _eval_args(s)
    s.add_argument("--qat-state", default=None, help="the fine-tuned model written by `mpq qat --out` (required)")
    s.add_argument("--policy", default=None, help="must be the policy the QAT state carries (default: that one)")
    s.add_argument("--out", required=True, help="NAME of the files to write (NAME.onnx, NAME.mpqw, NAME.json)")
    s.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch top-1 check")
    s.set_defaults(func=cmd_export)

    from .study.cli import add_parser as add_study
    add_study(sub)
    return p


def _eval_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--eval-data", default=None, help="fmnist (default), mnist, optdigits (test split) or imagefolder:PATH")
    s.add_argument("--crop", choices=("center", "resize"), default=None,
                   help="image folders: center or resize (default: center from 64 px, resize below)")
    s.add_argument("--workers", type=_positive_int("--workers", 0), default=0, metavar="N",
                   help="loader processes decoding --eval-data images (default 0: none)")


def main(argv: list[str] | None = None) -> int:
    """Run one command; an :class:`~mpqlib.errors.MpqlibError` becomes one line on stderr and exit code 2."""
    try:
        args = build_parser().parse_args(argv)
        if args.threads:
            torch.set_num_threads(args.threads)
        check_root(args.root)
        args.device = dist.init_from_env(args.device)
        with dist.emulate(args.as_processes):
            code = args.func(args)
        dist.shutdown()
        return code
    except MpqlibError as e:
        dist.shutdown(wait=False)
        _report(f"mpq: error: {_one_line(e)}")
        return 2
    except KeyboardInterrupt:
        dist.shutdown(wait=False)
        _report("mpq: interrupted; no file was left half-written (an interrupted `mpq train` resumes from its last "
                "finished epoch)")
        return 130


def _one_line(e: BaseException) -> str:
    """The message of ``e`` on one line; an error raised in a loader worker loses torch's traceback."""
    text = str(e)
    if "Original Traceback" in text:
        last = [ln for ln in text.splitlines() if ln.strip()][-1]
        text = last.split("Error: ", 1)[1] if last.startswith("mpqlib.errors.") and "Error: " in last else last
    return " ".join(text.split())


def _report(line: str) -> None:
    """One line on stderr from one process: rank 0 under torchrun. Another rank reports only when
    rank 0 did not (its error was its own): it waits, and torchrun stops it if rank 0 has failed."""
    rank = int(os.environ.get("RANK", "0")) if dist.launched() else 0
    if rank:
        time.sleep(5)
        line = line.replace("mpq: ", f"mpq (process {rank}): ", 1)
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
