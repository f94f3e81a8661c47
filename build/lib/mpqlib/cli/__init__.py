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
import os
import sys
import time
from importlib.metadata import entry_points

import torch

from .. import distributed as dist
from ..errors import ConfigError, MpqlibError

from . import cost, data, eval, export, qat, search, train
from .common import _input_size, _positive_int, check_root  # noqa: F401  (the API tests and scripts use)

COMMANDS = (data, train, cost, search, qat, eval, export)
"""One module per command, each with ``add(sub)``; other packages add theirs through the
``mpqlib.commands`` entry points (the study's ``mpq study``), so this package imports none of them."""


# --------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line like every other error: one line, exit code 2."""

    def error(self, message: str):
        if message.endswith("expected one argument"):
            message += " (a value that starts with '-' is written --flag=VALUE, e.g. --budget=-5)"
        raise ConfigError(f"{message} (see `{self.prog} --help`)")


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
    for command in COMMANDS:
        command.add(sub)
    for ep in sorted(entry_points(group="mpqlib.commands"), key=lambda e: e.name):
        ep.load()(sub)
    return p


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
