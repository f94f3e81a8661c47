"""``mpq search``."""

from __future__ import annotations

from pathlib import Path

from .. import distributed as dist
from ..config import METHOD_CONFIGS
from ..errors import ConfigError

from .common import (say, say_err, add_config_flags, build_config, load_model, check_default_size, check_writable,
                     check_record_slot, load_data, train_data, with_workers, _dims, _common, _model_args,
                     _data_args)


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
    from ..cost import budget as parse_budget, cost_model
    from ..search import search

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


def add(sub) -> None:
    """The ``search`` command's parser."""
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
