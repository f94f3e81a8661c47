"""``mpq study``: the study's command group (one place that parses ``--profile``).

    mpq study run    --profile smoke [--workers 2 | --cluster tcp://HOST:8786] [--parts protocol claims]
    mpq study status --profile full            # cached / to compute / expected time per part
    mpq study time   --profile full            # what the cached steps took, by model and step
    mpq study pilot  --profile full            # the pilot's table (runs its steps where missing)
    mpq study check  --profile full            # recompute one committed number from an empty cache
    mpq study readme [--check]                 # README's and the book's results block
"""

from __future__ import annotations

import argparse
import importlib.util
import json

from ..errors import ConfigError
from .profiles import PROFILES, REPO
from .facts import POWER_RULE


def _overrides(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"--override takes a JSON object such as '{{\"n_random\": 6}}', not {text!r} ({e})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--override takes a JSON object, not {text!r}")
    return value


def _script(name: str):
    """One of the repository's scripts/NAME.py as a module (the README block and, until the
    library has its own, the reproducibility check are scripts of the checkout)."""
    path = REPO / "scripts" / f"{name}.py"
    if not path.exists():
        raise ConfigError(f"{path} does not exist: `mpq study {name.split('_')[0]}` runs from a checkout of the repository")
    spec = importlib.util.spec_from_file_location(f"mpq_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cmd_run(args) -> int:
    from .pipeline import run

    plan = run(args.profile, _overrides(args.override), args.parts, workers=args.workers, cluster=args.cluster)
    print(f"study {args.profile}: every step of {', '.join(args.parts)} is cached; results written"
          if plan.done else "study: incomplete")
    return 0


def cmd_status(args) -> int:
    from .pipeline import status

    plan, text = status(args.profile, _overrides(args.override), args.parts)
    print(text)
    return 0 if plan.done else 1


def cmd_time(args) -> int:
    from .profiles import resolve
    from .pipeline import summarise

    p = resolve(args.profile, _overrides(args.override))
    rows = summarise(p.cache_path())
    if not rows:
        print(f"study time: no cached steps under {p.cache_path()}")
        return 1
    print(f"{'model':12s} {'step':14s} {'steps':>6s} {'hours':>7s}  note")
    for (model, step), r in sorted(rows.items()):
        note = f"{r['approximate']} from the record's own seconds" if r["approximate"] else ""
        print(f"{model:12s} {step:14s} {r['n']:6d} {r['seconds'] / 3600:7.2f}  {note}")
    total = sum(r["seconds"] for r in rows.values())
    print(f"{'total':12s} {'':14s} {sum(r['n'] for r in rows.values()):6d} {total / 3600:7.2f}")
    return 0


def cmd_pilot(args) -> int:
    from .runs import pilot

    out = pilot(args.profile, _overrides(args.override), models=args.models or None)
    for model, budgets in out["budgets"].items():
        print(f"{model}:")
        for b, r in budgets.items():
            print(f"  {b:6s} {r['bitops']:>14,} BitOps  policy SD {r['policy_sd_pp']:.3f} pp  seed SD "
                  f"{r['seed_sd_pp']:.3f} pp  ratio {r['ratio']:.2f}  uniform {r['uniform_top1']}")
        print(f"  chosen: {out['chosen'][model]} ({'has' if out['power'][model] else 'NO'} power: ratio >= {POWER_RULE:g})")
    return 0


def cmd_check(args) -> int:
    argv = ["--profile", args.profile, "--override", args.override, "--threads", str(args.threads)]
    if args.model:
        argv += ["--model", args.model]
    try:
        from . import reproduce  # type: ignore[attr-defined]
    except ImportError:
        return _script("check_reproducible").main(argv)
    return reproduce.check(args.profile, model=args.model, threads=args.threads, overrides=_overrides(args.override))


def cmd_readme(args) -> int:
    return _script("readme_results").main(["--check"] if args.check else [])


def add_parser(sub) -> None:
    """Register ``mpq study`` on the ``mpq`` command line's subparsers."""
    from . import PARTS

    study = sub.add_parser("study", help="the book's study: run, status, check, readme",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    study.set_defaults(device="cpu")
    verbs = study.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, func, help: str, parts: bool = False) -> argparse.ArgumentParser:
        s = verbs.add_parser(name, help=help)
        s.add_argument("--profile", default="full", choices=PROFILES)
        s.add_argument("--override", default="{}", help="profile overrides as JSON, e.g. '{\"n_random\": 6}'")
        if parts:
            s.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, metavar="PART",
                           help=f"parts of the study (default: all): {', '.join(PARTS)}")
        s.set_defaults(func=func, device="cpu")
        return s

    s = verb("run", cmd_run, "compute every missing step, then write results/", parts=True)
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="a local Dask cluster of N processes (one thread each; steps use the profile's threads)")
    where.add_argument("--cluster", default=None, metavar="ADDRESS", help="a running Dask scheduler, tcp://HOST:8786")
    verb("status", cmd_status, "what is cached, what remains, the expected time (exit 1: steps remain)", parts=True)
    verb("time", cmd_time, "what the cached steps took, by model and step")
    s = verb("pilot", cmd_pilot, "the pilot that picks the main budget (computes its missing steps)")
    s.add_argument("--models", nargs="*", help="models of the profile to pilot (default: all)")
    s = verb("check", cmd_check, "recompute one committed number from an empty cache; exit 1 if it differs")
    s.add_argument("--model", default=None, help="model of the profile (default: its first)")
    s.add_argument("--threads", type=int, default=2)
    s = verbs.add_parser("readme", help="write (or --check) the results block of README.md and book/intro.md")
    s.add_argument("--check", action="store_true", help="exit 1 if a block is not what the results give")
    s.set_defaults(func=cmd_readme, device="cpu")


__all__ = ["add_parser"]
