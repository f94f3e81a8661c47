"""``mpq search``."""

from __future__ import annotations

from pathlib import Path

from .. import distributed as dist
from ..config import METHOD_CONFIGS
from ..errors import ConfigError

from .common import (_positive_int, say, say_err, add_config_flags, build_config, load_model, check_default_size, check_writable,
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
    if args.seeds > 1 and "p_w" not in _EXTRAS.get(cfg.method, ()):
        raise ConfigError(f"--seeds averages the mixing weights of a differentiable search (seam, ce, target); "
                          f"{cfg.method} has none: run it once per --seed instead")
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
        if cfg.method in LABELLED and not args.labels_are_the_models:
            _check_labels_are_the_models(cfg.method, meta, data, args)
    val = load_data(args.eval_data, "test", size, args) if args.eval_data else None
    if cfg.method == "hawq":
        _hawq_note(cfg, data, args.quiet)
    data = with_workers(data, args, cfg) if data is not None else None
    runs = []
    for k in range(args.seeds):
        one = cfg.replace(seed=cfg.seed + k) if args.seeds > 1 else cfg
        runs.append(dist.broadcast(search(model, data, budget, one, device=args.device, input_size=(1, *size),
                                          val_data=val, progress=not args.quiet)))  # rank 0's on every process
    res = runs[0] if len(runs) == 1 else _combine(runs, cm, budget, cfg)
    res.record["input_size"] = list(size)
    with dist.main_process_writes() as writer:
        if writer:
            res.save(record_path)
            res.policy.save(policy_path)
    r = res.record
    on = f" on {r['search_data']}" if data is not None else ""
    head = f"{r['method']}{on} at input {_dims(size)}: {r['bitops']:,} BitOps"
    sure = r.get("decisiveness")
    agree = r.get("agreement")
    say(head + (f" (budget {budget:,}), {r['size_bytes']:,.0f} bytes; {r['seconds']:.1f} s, {r['images']:,} images"
                if budget else f"; {r['seconds']:.1f} s"),
        *[f"  {n:26s} W{w}A{a}" + (f"   margin w {sure['per_layer'][n]['w']:.2f} a {sure['per_layer'][n]['a']:.2f}"
                                    if sure and n in sure["per_layer"] else "")
          + (f"   {agree['per_layer'][n]:.0%} of seeds" if agree else "")
          for n, (w, a) in res.policy.bits.items()],
        f"saved {record_path} (record) and {policy_path} (policy)")
    if sure:
        _say_how_sure(sure, agree, args)
    return 0


# The searches that score the model's own classifier on the data's labels: on a proxy whose
# classes are not the model's they read digit 3 as whatever the model's class 3 is.
LABELLED = ("target", "hawq", "limpq", "joint", "evaluation")


def _check_labels_are_the_models(method: str, meta: dict, data, args) -> None:
    """Refuse a label-reading search on data whose class names are not the model's (where both
    are known: stored by `mpq train`, or the built-in data set a checkpoint was trained on)."""
    from .. import data as D

    model_classes = meta.get("classes")
    base = str(meta.get("dataset") or "").split("-")[0].split("[")[0]
    if model_classes is None and base in D.DATASETS:
        model_classes = D.class_names(D.load(base, "test", args.root))
    names = D.class_names(data)
    if not model_classes or not names or tuple(model_classes) == tuple(names):
        return
    raise ConfigError(f"--method {method} scores the model's own classifier on the labels of {D.describe(data)}, "
                      f"whose classes ({', '.join(names[:3])}, ...) are not the model's ({', '.join(model_classes[:3])}, "
                      "...): label k would be read as the model's class k. Search a proxy with seam or ce, give data "
                      "with the model's classes, or pass --labels-are-the-models if they are the same classes "
                      "under other names")


# which searches learn mixing weights (p_w, p_a per layer and candidate)
_EXTRAS = {"seam": ("p_w", "p_a"), "ce": ("p_w", "p_a"), "target": ("p_w", "p_a")}


def _combine(runs, cost, budget, cfg):
    """N seeds' searches as one: the policy read out of the averaged mixing weights (the same
    readout as one search), with each layer's agreement across the seeds' own policies and the
    averaged weights' decisiveness in the record."""
    import numpy as np

    from ..search import SearchResult
    from ..search.differentiable import read_policy
    from ..search.result import decisiveness

    layers = runs[0].extras["layers"]
    pw = np.mean([r.extras["p_w"] for r in runs], axis=0)
    pa = np.mean([r.extras["p_a"] for r in runs], axis=0)
    seeds = [r.record["seed"] for r in runs]
    policy = read_policy(cost, pw, pa, cfg.candidates, budget, cfg.readout, method=runs[0].policy.provenance["method"],
                         fill=cfg.fill, search_data=runs[0].record["search_data"], seeds=seeds)
    per = {n: float(np.mean([r.policy.bits[n] == policy.bits[n] for r in runs])) for n in layers}
    record = {**runs[0].record, "seeds": seeds, "seed": None, "bitops": cost.bitops(policy),
              "size_bytes": cost.size_bytes(policy), "seconds": round(sum(r.record["seconds"] for r in runs), 3),
              "images": sum(r.record["images"] for r in runs), "decisiveness": decisiveness(layers, pw, pa),
              "agreement": {"per_layer": per, "unanimous": sum(v == 1.0 for v in per.values()), "layers": len(per)}}
    return SearchResult(policy, record, {"layers": layers, "candidates": list(cfg.candidates),
                                         "p_w": pw.round(5).tolist(), "p_a": pa.round(5).tolist(),
                                         "per_seed": [r.policy.to_dict()["bits"] for r in runs]})


def _say_how_sure(sure: dict, agree: dict | None, args) -> None:
    """One line on how determined the policy is, and a warning where it is not."""
    n, k = sure["layers"], sure["determined"]
    line = (f"decisiveness: {k} of {n} layers determined (best candidate ahead of the next by >= {sure['threshold']:g} "
            f"for weights and activations); median margin {sure['median_margin']:.2f}, "
            f"{sure['no_preference']:.2f} = no preference")
    if agree:
        line += f"; {agree['unanimous']} of {agree['layers']} layers the same in every seed"
    say(line)
    if k < n / 2:
        say_err(f"mpq: warning: the policy is not determined: {n - k} of {n} layers are close to a tie, so another "
                "seed, thread count or process count may pick other bits there. Search longer (--epochs), on more "
                "proxy images (--data NAME:N, --data-per-class), or over several seeds (--seeds 3: the policy of "
                "their averaged mixing weights)")


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
    s.add_argument("--budget", default="w3a3", help="BitOps budget: w3a3 (the default: uniform W3A3's BitOps on the searched layers), w2.5a2.5, a "
                        "number like 2.8e8, or none")
    s.add_argument("--out", default="search.json", help="search record (.json; default: search.json)")
    s.add_argument("--policy-out", default=None, help="the policy alone (default: OUT without .json + .policy.json)")
    s.add_argument("--labels-are-the-models", action="store_true",
                   help="target/hawq/limpq/joint/evaluation: use --data's labels as the model's classes although "
                        "their names differ (refused otherwise)")
    s.add_argument("--seeds", type=_positive_int("--seeds"), default=1, metavar="N",
                   help="seam/ce/target: search seeds SEED..SEED+N-1 and write the policy of their averaged mixing "
                        "weights, with each layer's agreement across the seeds (default 1)")
    add_config_flags(s, METHOD_CONFIGS)
    s.set_defaults(func=cmd_search)
