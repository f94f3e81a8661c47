"""An evaluation-based search: candidate policies under the budget, each briefly fine-tuned on the
target and scored on held-out target data; the best one wins.

This is the class of search (AutoQ, HAQ-style evaluation loops, evolutionary MPQ searches) whose
cost grows with the number of candidates x the fine-tune each one needs. Here:

* a candidate is read out of per-layer probability tables with the same ILP as the
  differentiable searches (:func:`~mpqlib.search.differentiable.read_policy`: the most likely
  policy under the budget, filled to >= 99% of it), so every candidate meets the budget and
  spends it;
* ``strategy="random"``: the tables are seeded Dirichlet draws (random policies under the
  budget); ``"evolution"``: the first ``population`` candidates are random, then each new one
  mutates a parent drawn from the best ``population`` so far (the parent's bits kept with high
  probability, about two layers redrawn) and the ILP re-projects it onto the budget;
* the fine-tune is the project's LSQ QAT (:func:`mpqlib.qat.qat`, one epoch over the same
  ``cfg.finetune_images`` target images for every candidate, learning rates ``cfg.lr`` /
  ``cfg.lr_step``) and the score its top-1 on ``cfg.val_images`` held-out target images
  (``val_data``, or split off the training data, seeded);
* the record holds, per candidate, its top-1, the best top-1 found so far (the curve "best-found
  accuracy vs number of candidates"), its BitOps and its seconds. A policy drawn twice is scored
  once (its repeat costs nothing and is marked).
"""

from __future__ import annotations

import copy
import time

import numpy as np
from torch import nn

from .. import data as D
from ..config import EvaluationConfig, QATConfig, register_runner
from ..measure import cpu_seconds
from ..policy import Policy
from ..qat import qat
from .result import Meter, SearchResult, make_record
from .differentiable import read_policy
from .joint import prepare_target_search, train_and_held_out

EPS = 1e-3  # probability left to the other bit-widths of a layer a mutation keeps


def as_images(data, n: int | None, seed: int, name: str) -> D.Images:
    """``n`` seeded random images of ``data`` (all when None) in memory, for the brief fine-tunes."""
    if isinstance(data, D.Images) and (n is None or n >= len(data)):
        return data
    x, y = D.take(data, len(data) if n is None else n, seed=seed)
    return D.Images(name, x, y, tuple(str(c) for c in range(D.num_classes(data))))


def random_tables(rng: np.random.Generator, layers: int, choices: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer probability tables over the candidate bits (weights, activations): Dirichlet(1)."""
    return rng.dirichlet(np.ones(choices), size=layers), rng.dirichlet(np.ones(choices), size=layers)


def mutated_tables(rng: np.random.Generator, parent: Policy, names: list[str], candidates: tuple[int, ...],
                   rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Tables that keep ``parent``'s bits (probability ~1) except in the layers redrawn at random
    (each with probability ``rate``, at least one)."""
    k = len(candidates)
    tables = [np.full((len(names), k), EPS), np.full((len(names), k), EPS)]
    for i, n in enumerate(names):
        for t, bits in zip(tables, parent.bits[n]):
            t[i, candidates.index(bits)] = 1.0
    redraw = rng.random(len(names)) < rate
    if not redraw.any():
        redraw[rng.integers(len(names))] = True
    for t in tables:
        t[redraw] = rng.dirichlet(np.ones(k), size=int(redraw.sum()))
    return tables[0] / tables[0].sum(1, keepdims=True), tables[1] / tables[1].sum(1, keepdims=True)


def best_so_far(scores: list[float]) -> list[float]:
    """The running maximum of ``scores``: the best-found accuracy after each candidate."""
    return np.maximum.accumulate(np.asarray(scores, dtype=float)).tolist() if scores else []


@register_runner(EvaluationConfig)
def evaluation(model: nn.Module, data, budget: int | None, cfg: EvaluationConfig | None = None, *, device=None,
               progress: bool = True, input_size=None, val_data=None, sampler=None) -> SearchResult:
    """Evaluate ``cfg.candidates_to_try`` policies under ``budget`` by a brief QAT on the target
    ``data`` and their top-1 on held-out target data; return the best."""
    cfg = cfg or EvaluationConfig()
    model, device, input_size, cost, name = prepare_target_search(model, data, cfg, EvaluationConfig, "evaluation",
                                                                  device=device, sampler=sampler, input_size=input_size)
    names, candidates = cost.names, tuple(cfg.candidates)
    rng = np.random.default_rng(cfg.seed)
    # qat() calibrates its quantized copy on a CPU batch before moving it to ``device``
    source = model if device.type == "cpu" else copy.deepcopy(model).cpu()
    finetune_cfg = QATConfig(epochs=1, batch_size=cfg.batch_size, lr=cfg.lr, lr_step=cfg.lr_step)
    with Meter() as meter:
        train, held = train_and_held_out(data, val_data, cfg.val_images, cfg.seed)
        finetune = as_images(train, min(cfg.finetune_images, len(train)), cfg.seed, f"{name}-finetune")
        held = as_images(held, min(cfg.val_images, len(held)), cfg.seed, f"{name}-held-out")
        scored: dict[str, float] = {}
        trials: list[dict] = []
        policies: list[Policy] = []
        for i in range(cfg.candidates_to_try):
            evolve = cfg.strategy == "evolution" and i >= cfg.population
            if evolve:
                ranked = sorted(range(len(trials)), key=lambda j: (-trials[j]["top1"], j))[: cfg.population]
                parent = ranked[int(rng.integers(len(ranked)))]
                pw, pa = mutated_tables(rng, policies[parent], names, candidates, rate=2 / len(names))
            else:
                parent, (pw, pa) = None, random_tables(rng, len(names), len(candidates))
            policy = read_policy(cost, pw, pa, candidates, budget, "ilp", method="evaluation", search_data=name,
                                 seed=cfg.seed)
            key = repr(sorted(policy.bits.items()))
            t0, c0, repeat = time.perf_counter(), cpu_seconds(), key in scored
            if not repeat:
                _, rec = qat(source, policy, finetune, held, finetune_cfg, seed=cfg.seed, device=device, progress=False)
                scored[key] = rec["top1"]
            policies.append(policy)
            trials.append({"candidate": i + 1, "source": "mutation" if evolve else "random",
                           "parent": None if parent is None else parent + 1, "repeat": repeat, "top1": scored[key],
                           "bitops": cost.bitops(policy),
                           "seconds": round(time.perf_counter() - t0, 3), "cpu_seconds": round(cpu_seconds() - c0, 3),
                           "images": 0 if repeat else len(finetune) + len(held)})
            trials[-1]["best_top1"] = best_so_far([tr["top1"] for tr in trials])[-1]
        best = max(range(len(trials)), key=lambda j: (trials[j]["top1"], -j))
        policy = policies[best]
        policy.provenance.update(candidate=best + 1, held_out_top1=trials[best]["top1"])
    finetuned = sum(0 if tr["repeat"] else len(finetune) for tr in trials)
    record = make_record("evaluation", name, meter, epochs=finetuned / len(train), images=finetuned, seed=cfg.seed,
                         budget=budget, cost=cost, policy=policy, config=cfg.to_dict())
    record["held_out_images"] = sum(0 if tr["repeat"] else len(held) for tr in trials)
    record["candidates_evaluated"] = len(trials)
    record["best_so_far"] = [tr["best_top1"] for tr in trials]
    record["candidate_seconds"] = [tr["seconds"] for tr in trials]
    policy.provenance["code_version"] = record["code_version"]
    extras = {"layers": names, "candidates": list(candidates), "trials": trials,
              "policies": [p.bits for p in policies]}
    return SearchResult(policy, record, extras)
