"""``mpq cost``."""

from __future__ import annotations

from .common import (say, load_model, _common, _model_args)


def cmd_cost(args) -> int:
    from ..config import FIXED_PAIR
    from ..cost import budget, cost_model
    from ..policy import Policy

    model, _, size = load_model(args)
    cm = cost_model(model, (1, *size))
    policy = Policy.load(args.policy).validate(model) if args.policy else None
    lines = [f"{'layer':26s} {'kind':6s} {'shape':28s} {'MACs':>13s} {'params':>10s}  bits"]
    for row in cm.table():
        bits = policy.all_bits[row["layer"]] if policy else (FIXED_PAIR if row["fixed (8-bit)"] else None)
        tag = f"W{bits[0]}A{bits[1]}" if bits else "searched"
        lines.append(f"{row['layer']:26s} {row['kind']:6s} {row['shape']:28s} {row['MACs']:13,d} {row['params']:10,d}  {tag}")
    lines.append(f"total: {cm.macs:,} MACs, {cm.params:,} weights at input {'x'.join(map(str, size))}; "
                 f"searchable layers: {len(cm.searchable)}")
    lines += [f"  uniform {name} budget: {budget(cm, name):,} BitOps" for name in ("w2a2", "w3a3", "w4a4", "w8a8")]
    if policy:
        lines.append(f"policy {args.policy}: {cm.bitops(policy):,} BitOps, {cm.size_bytes(policy):,.0f} bytes")
    say(*lines)
    return 0


def add(sub) -> None:
    """The ``cost`` command's parser."""
    s = sub.add_parser("cost", help="per-layer MACs/params table; BitOps and size of a policy")
    _common(s)
    _model_args(s)
    s.add_argument("--policy", default=None, help="policy JSON to cost")
    s.set_defaults(func=cmd_cost)
