"""``mpq``: the command line of mpqlib.

    mpq data                          stage and check every dataset
    mpq train  --arch resnet20        train the full-precision target model
    mpq eval   --checkpoint CKPT      top-1 on the Fashion-MNIST test set
    mpq cost   --arch resnet20 [--policy P.json]   per-layer table, BitOps and size
    mpq search --method seam --data mnist --budget w3a3   search a policy
    mpq qat    --policy P.json        fine-tune under a policy and report top-1
"""

from __future__ import annotations

import argparse
import sys

import torch


def _threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(n)


def cmd_data(args) -> int:
    from . import data as D

    for name in D.DATASETS:
        for split in ("train", "test"):
            d = D.load(name, split, args.root)
            print(f"{name:10s} {split:5s} {len(d):6d} images, {d.num_classes} classes")
    print(f"staged under {args.root or D.default_root()}")
    return 0


def cmd_train(args) -> int:
    from .train import train_fp

    meta = train_fp(args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                    out=args.out, data_root=args.root)
    print(f"{args.arch}: top-1 {meta['top1']:.2f}% on the Fashion-MNIST test set after {meta['epochs']} epochs "
          f"({meta['train_seconds'] / 60:.1f} min); saved {args.out}")
    return 0


def cmd_eval(args) -> int:
    from . import data as D
    from .train import evaluate, load_checkpoint

    model, meta = load_checkpoint(args.checkpoint, arch=args.arch)
    if args.policy:
        from .policy import Policy
        from .quant import quantize

        model = quantize(model, Policy.load(args.policy))
        if args.qat_state:
            from .train import CheckpointError

            try:
                model.load_state_dict(torch.load(args.qat_state, weights_only=True))
            except (RuntimeError, OSError) as e:
                raise CheckpointError(f"{args.qat_state} does not fit the model quantized with {args.policy}: {e}") from e
    top1 = evaluate(model, D.load("fmnist", "test", args.root))
    print(f"{meta['arch']}{' under ' + args.policy if args.policy else ''}: top-1 {top1:.2f}%")
    return 0


def _model(args):
    from .train import load_checkpoint

    return load_checkpoint(args.checkpoint, arch=args.arch)


def cmd_cost(args) -> int:
    from .cost import budget, cost_model
    from .policy import Policy

    model, _ = _model(args)
    cm = cost_model(model)
    print(f"{'layer':26s} {'kind':6s} {'shape':28s} {'MACs':>11s} {'params':>8s}  bits")
    policy = Policy.load(args.policy).validate(model) if args.policy else None
    for row in cm.table():
        bits = policy.all_bits[row["layer"]] if policy else ((8, 8) if row["fixed (8-bit)"] else None)
        tag = f"W{bits[0]}A{bits[1]}" if bits else "searched"
        print(f"{row['layer']:26s} {row['kind']:6s} {row['shape']:28s} {row['MACs']:11,d} {row['params']:8,d}  {tag}")
    print(f"total: {cm.macs:,} MACs, {cm.params:,} weights; searchable layers: {len(cm.searchable)}")
    for name in ("w2a2", "w3a3", "w4a4", "w8a8"):
        print(f"  uniform {name} budget: {budget(cm, name):,} BitOps")
    if policy:
        print(f"policy {args.policy}: {cm.bitops(policy):,} BitOps, {cm.size_bytes(policy):,.0f} bytes")
    return 0


def cmd_search(args) -> int:
    from . import data as D
    from .cost import budget as parse_budget, cost_model
    from .search import search

    model, _ = _model(args)
    b = parse_budget(cost_model(model), args.budget) if args.budget != "none" else None
    data = D.search_data(args.data, seed=args.data_seed, root=args.root) if args.method not in ("uniform", "random") else None
    kw = {"seed": args.seed}
    if args.method in ("seam", "ce", "target"):
        kw.update(epochs=args.epochs, readout=args.readout, gamma=args.gamma, margin=args.margin,
                  likelihood_weight=args.likelihood_weight, freeze_backbone=not args.unfreeze)
    elif args.method == "limpq":
        kw.update(epochs=args.epochs)
    res = search(args.method, model, data, b, **kw)
    res.save(args.out)
    res.policy.save(args.policy_out or args.out.replace(".json", ".policy.json"))
    r = res.record
    print(f"{r['method']} on {r['search_data']}: {r['bitops']:,} BitOps (budget {b:,}), {r['size_bytes']:,.0f} bytes; "
          f"{r['seconds']:.1f} s, {r['images']:,} images, peak {r['peak_memory_mb']:.0f} MB" if b else
          f"{r['method']} on {r['search_data']}: {r['bitops']:,} BitOps; {r['seconds']:.1f} s")
    for n, (w, a) in res.policy.bits.items():
        print(f"  {n:26s} W{w}A{a}")
    print(f"saved {args.out}")
    return 0


def cmd_qat(args) -> int:
    from . import data as D
    from ._io import torch_save, write_json
    from .policy import Policy
    from .qat import QATConfig, qat

    model, _ = _model(args)
    policy = Policy.load(args.policy).validate(model)
    cfg = QATConfig(epochs=args.epochs, lr=args.lr, train_images=args.train_images)
    qmodel, rec = qat(model, policy, D.load("fmnist", "train", args.root), D.load("fmnist", "test", args.root), cfg,
                      seed=args.seed)
    if args.out:
        torch_save(args.out, qmodel.state_dict())
        write_json(args.out + ".json", {**rec, "policy": args.policy})
    print(f"QAT under {args.policy}: top-1 {rec['top1']:.2f}% ({rec['seconds'] / 60:.1f} min)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mpq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--root", default=None, help="data folder (default: $MPQLIB_DATA or ~/.cache/mpqlib/data)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("data", help="stage and verify Fashion-MNIST, MNIST and optdigits")
    s.set_defaults(func=cmd_data)

    s = sub.add_parser("train", help="train the full-precision model on Fashion-MNIST")
    s.add_argument("--arch", default="resnet20", choices=["resnet20", "resnet8"])
    s.add_argument("--epochs", type=int, default=15)
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--lr", type=float, default=0.1)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default="checkpoints/resnet20-fmnist.pt", help="checkpoint to write (atomically)")
    s.set_defaults(func=cmd_train)

    def model_args(s):
        s.add_argument("--checkpoint", default="checkpoints/resnet20-fmnist.pt", help="full-precision model (default: %(default)s)")
        s.add_argument("--arch", default=None, help="expected architecture of the checkpoint (checked)")

    s = sub.add_parser("cost", help="per-layer MACs/params table; BitOps and size of a policy")
    model_args(s)
    s.add_argument("--policy", default=None, help="policy JSON to cost")
    s.set_defaults(func=cmd_cost)

    from .search import METHODS

    s = sub.add_parser("search", help="search a mixed-precision policy",
                       description="Search a policy; writes the result (policy + cost record) as JSON.")
    model_args(s)
    s.add_argument("--method", default="seam", choices=METHODS)
    s.add_argument("--data", default="mnist",
                   help="search data: mnist (240/class proxy), optdigits, fmnist4 (4%% control), fmnist (target), NAME:N")
    s.add_argument("--budget", default="w3a3", help="BitOps budget: w3a3, w2.5a2.5, a number like 2.8e8, or none")
    s.add_argument("--epochs", type=int, default=8)
    s.add_argument("--readout", default="ilp", choices=["ilp", "argmax"])
    s.add_argument("--gamma", type=float, default=1.0, help="weight of the expected-BitOps term")
    s.add_argument("--margin", type=float, default=0.2, help="L-GM margin m")
    s.add_argument("--likelihood-weight", type=float, default=0.05, help="L-GM likelihood weight lambda")
    s.add_argument("--unfreeze", action="store_true", help="also train the backbone weights during the search")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--data-seed", type=int, default=0, help="seed of the proxy subset")
    s.add_argument("--out", default="search.json")
    s.add_argument("--policy-out", default=None, help="where to write the policy alone (default: OUT.policy.json)")
    s.set_defaults(func=cmd_search)

    s = sub.add_parser("qat", help="LSQ fine-tuning under a policy; top-1 on the Fashion-MNIST test set")
    model_args(s)
    s.add_argument("--policy", required=True)
    s.add_argument("--epochs", type=int, default=1)
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--train-images", type=int, default=None, help="class-balanced subset of the training set")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", default=None, help="write the quantized model's state dict here")
    s.set_defaults(func=cmd_qat)

    s = sub.add_parser("eval", help="top-1 of a checkpoint (optionally under a policy) on the Fashion-MNIST test set")
    model_args(s)
    s.add_argument("--policy", default=None, help="policy JSON to quantize with")
    s.add_argument("--qat-state", default=None, help="state dict of the quantized model after `mpq qat`")
    s.set_defaults(func=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _threads(args.threads)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"mpq {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
