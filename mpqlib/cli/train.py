"""``mpq train``."""

from __future__ import annotations

from pathlib import Path

from .. import distributed as dist
from ..config import TrainConfig
from ..errors import ConfigError

from .common import (check_model_classes, DEFAULT_CHECKPOINT, say, add_config_flags, build_config, default_size, check_default_size,
                     check_writable, check_labels, record_path, check_record_slot, _probe, train_data,
                     with_workers, eval_data, _dims, _common, _model_args, _data_args)


def cmd_train(args) -> int:
    from .. import data as D
    from ..models import build
    from ..train import init_from, seed_everything, train_fp

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
    check_model_classes(test, {"classes": D.folder_classes(train)}, "--eval-data")  # the classes of --data
    D.scan(test, progress=not args.quiet)  # a corrupt evaluation image stops it now, not after the training
    seed_everything(cfg.seed)  # before the model is built: its initial weights come from the seed too
    model = build(args.model, args.num_classes or D.num_classes(train), size[0])
    _probe(model, size, args.model)
    check_labels(model, train, "pass --num-classes with the number of classes of --data")
    if args.init:  # checked (and the skipped head named) before the training starts
        skipped = init_from(model, args.init, cfg.seed)
        say(f"--init {args.init}: loaded {len(model.state_dict()) - len(skipped)} tensors"
            + (f"; skipped {', '.join(skipped)} (a classifier head of another size in the file), re-initialised "
               f"from seed {cfg.seed}" if skipped else ""))
    meta = train_fp(model, cfg, arch=args.model, train=with_workers(train, args, cfg), test=test, out=args.out,
                    device=args.device, progress=not args.quiet, restart=args.restart,
                    init=args.init)
    say(f"{meta['arch']}: top-1 {meta['top1']:.2f}% on {D.describe(test)} at input {_dims(size)} after {meta['epochs']} epochs "
        f"({meta['train_seconds'] / 60:.1f} min, {dist.world()} process{'es' if dist.world() > 1 else ''}); "
        f"saved {args.out}")
    return 0


def add(sub) -> None:
    """The ``train`` command's parser."""
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
    s.add_argument("--init", default=None, metavar="PATH",
                   help="fine-tune from these weights instead of random ones: a state_dict saved with "
                        "torch.save(model.state_dict(), PATH) (torchvision's or your own); a classifier head of another "
                        "size is re-initialised (seeded) and named, any other mismatch is an error")
    s.add_argument("--force", action="store_true",
                   help="replace a finished --out (without it, a finished model is never trained over)")
    add_config_flags(s, {"train": TrainConfig})
    s.set_defaults(func=cmd_train)
