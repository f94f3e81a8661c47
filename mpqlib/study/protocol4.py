"""Protocol version 4's steps (book/method.md, "Protocol version 4"): the tests sized by the a-priori
power analysis (``results/power.json``), as cached steps of the study (the pipeline's part ``v4``).

Every test reuses the records that exist: its rows take the same searches and QAT runs under the
same keys and only add search seeds and QAT seeds. Its rows carry labels of their own, so that a
version-3 claim keeps its design and a version-4 claim has exactly the design the power analysis
chose (:class:`mpqlib.study.profiles.Version4`):

* ``headline-1epoch``: ``seam-mnist-h1`` minus ``target-fmnist-h1`` (the common QAT);
* ``headline-plateau``: ``seam-mnist-hp`` minus ``target-fmnist-hp`` (the long QAT of version 3, at
  its plateau length);
* the 2x2 of search data x head: ``target-fmnist4`` (the target search, with the model's own head,
  on the 4% Fashion-MNIST proxy for SEAM's epochs, cell D) beside ``seam-fmnist4-d`` (A),
  ``target-fmnist-d`` (B) and ``seam-mnist-d``: claims ``deficit-data`` = D - B, ``deficit-head``
  = A - D, ``deficit-classes`` = SEAM on MNIST - A;
* the class-disjoint model: its two policies at the design of ``other-classes``, and its random
  policies for its own power ratio;
* ResNet-20's budget pilot: the target search (``target-fmnist-pilot``) against uniform and the
  random policies at each candidate budget (the control a model must pass to enter the transfer
  tally, and its power ratio there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .experiments import Experiments


def _design(d: tuple[int, int]) -> tuple[range, range]:
    return range(d[0]), range(d[1])


def headline_runs(ex: "Experiments") -> list[dict]:
    """The headline at the common QAT: SEAM on MNIST and the target search at the chosen design."""
    seeds, qats = _design(ex.p.v4.headline_1epoch)
    return [r for name in ("seam-mnist", "target-fmnist") for r in ex.runs(name, None, seeds, qats, label=f"{name}-h1")]


def plateau_runs(ex: "Experiments", epochs: int) -> list[dict]:
    """The headline at the long QAT's plateau length ``epochs``, at the chosen design."""
    from .objections import long_config

    seeds, qats = _design(ex.p.v4.headline_plateau)
    cfg = long_config(ex.p, epochs)
    return [r for name in ("seam-mnist", "target-fmnist")
            for r in ex.runs(name, None, seeds, qats, label=f"{name}-hp", qat=(cfg,))]


def deficit_runs(ex: "Experiments") -> list[dict]:
    """The 2x2 of search data x head, and SEAM on MNIST beside it, at the design of the deficits.
    Cell D, the target search on the 4% proxy, runs SEAM's epochs (the same passes over the same
    images as cell A): only the head differs from A, only the images from B."""
    seeds, qats = _design(ex.p.v4.deficit)
    rows = ex.runs("target-fmnist4", None, seeds, qats, label="target-fmnist4",
                   changes={"epochs": ex.p.seam.epochs})
    for name in ("seam-fmnist4", "target-fmnist", "seam-mnist"):
        rows += ex.runs(name, None, seeds, qats, label=f"{name}-d")
    return rows


def disjoint_runs(dex: "Experiments") -> list[dict]:
    """The class-disjoint model at the design of ``other-classes``, and its random policies and
    uniform precision under two QAT seeds: its own power ratio."""
    seeds, qats = _design(dex.p.v4.other_classes)
    rows = [r for name in ("seam-disjoint", "target-fmnist") for r in dex.runs(name, None, seeds, qats)]
    two = dex.p.qat_seeds[:2]
    return rows + dex.random_runs(qat_seeds=two) + dex.runs("uniform", None, (0,), two)


def budget_pilot_runs(ex: "Experiments") -> list[dict]:
    """A model's budget pilot of version 4: at each candidate budget, the target search against
    uniform precision (the control: the target search beats uniform) and the random policies
    (the power ratio), under the pilot's seeds."""
    seeds, qats = _design(ex.p.v4.budget_pilot_design)
    rows = []
    for b in ex.p.v4.budget_pilot_budgets:  # labelled apart: the sweep's seed-0 rows keep their design
        rows += ex.runs("target-fmnist", b, seeds, qats, label="target-fmnist-pilot")
        rows += ex.runs("uniform", b, (0,), qats)
        rows += ex.random_runs(b, qat_seeds=qats)
    return rows


def walk(ex: "Experiments", dex: "Experiments | None", pilot_ex: "Experiments | None",
         plateau_epochs: int | None) -> list[dict]:
    """Every step of the part (the objections model ``ex``, the class-disjoint model ``dex`` and
    the budget pilot's model ``pilot_ex``, each None where absent): their rows, saved to runs.json
    unless the pipeline is planning."""
    rows = headline_runs(ex) + deficit_runs(ex)
    if plateau_epochs is not None:
        rows += plateau_runs(ex, plateau_epochs)
    ex.save(rows)
    if dex is not None:
        dex_rows = disjoint_runs(dex)
        dex.save(dex_rows)
        rows += dex_rows
    if pilot_ex is not None:
        pilot_rows = budget_pilot_runs(pilot_ex)
        pilot_ex.save(pilot_rows)
        rows += pilot_rows
    return rows


__all__ = ["headline_runs", "plateau_runs", "deficit_runs", "disjoint_runs", "budget_pilot_runs", "walk"]
