"""``mpq eval``."""

from __future__ import annotations


import torch

from .common import (check_model_classes, say, check_default_size, eval_data, _dims, quantized_model, _name, _common, _model_args,
                     _eval_args)


def cmd_eval(args) -> int:
    from .. import data as D
    from ..train import evaluate

    qmodel, meta, size, under = quantized_model(args)
    data = eval_data(args, size)
    check_default_size(meta.get("arch"), size, meta["input_size_from"], data)
    check_model_classes(data, meta, "--eval-data")
    D.check_fits(data, (1, *size))
    if args.workers:
        data = torch.utils.data.DataLoader(data, num_workers=args.workers)
    top1 = evaluate(qmodel.to(args.device), data, device=args.device)
    say(f"{meta['arch']}{' under ' + under if under else ''}: top-1 {top1:.2f}% on {_name(data)} at input {_dims(size)}")
    return 0


def add(sub) -> None:
    """The ``eval`` command's parser."""
    s = sub.add_parser("eval", help="top-1 of a checkpoint (optionally under a policy) on --eval-data")
    _common(s)
    _model_args(s)
    _eval_args(s)
    s.add_argument("--policy", default=None, help="policy JSON to quantize with (default: the one --qat-state carries)")
    s.add_argument("--qat-state", default=None, help="the fine-tuned model written by `mpq qat --out` (it carries its "
                   "policy, input size and checkpoint hash; another combination is refused)")
    s.set_defaults(func=cmd_eval)
