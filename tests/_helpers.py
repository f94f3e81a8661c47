"""Small helpers shared by test modules (pytest puts this folder on sys.path)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a process group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_model_facts(results_dir, profile: str = "smoke") -> None:
    """results_dir/models.json with each model's facts (checkpoint metrics, main budget, cost),
    as the study writes them, and a runs.json without runs: chapter tests on synthetic results
    (no search or run is stored)."""
    from mpqlib._io import write_json
    from mpqlib.study.experiments import Experiments
    from mpqlib.study.profiles import resolve
    from mpqlib.study.stored import MODELS_FILE, model_facts

    p = resolve(profile, {"results_dir": str(results_dir)})
    write_json(p.path(MODELS_FILE), {m: model_facts(Experiments(p, m)) for m in p.models})
    if not p.path("runs.json").exists():
        write_json(p.path("runs.json"), {"profile": p.name, "runs": []})
