"""``mpq qat``."""

from __future__ import annotations

from .. import distributed as dist
from ..config import QATConfig

from .common import (check_model_classes, say, add_config_flags, build_config, checkpoint_path, load_model, check_default_size,
                     check_writable, check_labels, record_path, check_record_slot, train_data, with_workers,
                     eval_data, _dims, _common, _model_args, _data_args)


def cmd_qat(args) -> int:
    from .. import data as D
    from .._io import write_json
    from ..policy import Policy
    from ..qat import qat, save_state

    cfg = build_config(args, "qat")
    record = record_path(args.out) if args.out else None
    check_writable(("--out", args.out))
    if record:
        check_record_slot(record, "qat")
    model, meta, size = load_model(args)
    policy = Policy.load(args.policy).validate(model)
    train = train_data(args, size)
    check_default_size(meta.get("arch"), size, meta["input_size_from"], train)
    check_model_classes(train, meta, "--data")
    check_labels(model, train, "give data with the checkpoint's classes (or a checkpoint trained on these)")
    test = eval_data(args, size)
    classes = meta.get("classes") or D.folder_classes(train)  # the model's, else those it is fine-tuned on
    check_model_classes(test, {"classes": classes}, "--eval-data")
    D.scan(test, progress=not args.quiet)  # a corrupt evaluation image stops it now, not after the fine-tuning
    qmodel, rec = qat(model, policy, with_workers(train, args, cfg), test, cfg, seed=args.seed, device=args.device,
                      progress=not args.quiet, input_size=(1, *size))
    if args.out:
        with dist.main_process_writes() as writer:
            if writer:
                save_state(args.out, qmodel, policy, size, checkpoint_path(args), rec,
                           classes=list(classes) if classes else None, preprocessing=D.preprocessing(train),
                           arch=meta.get("arch"), num_classes=meta.get("num_classes"))
                write_json(record, {"command": "qat", **rec, "policy": args.policy, "input_size": list(size),
                                    "checkpoint": checkpoint_path(args), "qat_state": str(args.out),
                                    "processes": dist.world()})
    say(f"QAT under {args.policy} at input {_dims(size)}: top-1 {rec['top1']:.2f}% ({rec['seconds'] / 60:.1f} min)"
        + (f"; saved {args.out} and {record}" if args.out else ""))
    return 0


def add(sub) -> None:
    """The ``qat`` command's parser."""
    s = sub.add_parser("qat", help="LSQ fine-tuning under a policy; top-1 on --eval-data")
    _common(s)
    _model_args(s)
    _data_args(s, "fmnist")
    s.add_argument("--policy", required=True, help="the policy to fine-tune under (a JSON file of `mpq search`)")
    s.add_argument("--config", default=None, help="YAML file of QATConfig fields (flags win)")
    s.add_argument("--seed", type=int, default=0,
                   help="fixes the training subset, its order and augmentation (paired comparisons; default 0)")
    s.add_argument("--out", default=None, help="write the fine-tuned quantized model here, with its policy, input "
                   "size and checkpoint hash (record: OUT.json beside it)")
    add_config_flags(s, {"qat": QATConfig})
    s.set_defaults(func=cmd_qat)
