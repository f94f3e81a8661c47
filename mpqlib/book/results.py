"""What a chapter reads: one profile's results, as the study wrote them, and nothing else.

Every chapter of the book is a small reader class of its own module (``chapter_search``,
``chapter_qat``, ...). None inherits from another or from a shared mixin: each holds a
:class:`Results` (``self.r``) and reads the study's files through it::

    r = Results("full")          # the profile, the models, results/*.json read on first use
    r.claims()["claims"]         # results/claims.json
    r.ex("mobilenetv1")          # what the study stored of one model (results/models.json)

A chapter opened by the notebook (``SearchChapter(profile, overrides)``) makes its own
:class:`Results` with :func:`open_results`, which also sets the display up and glues the names
every chapter quotes (the profile, the margin, the models, the paper's numbers). A reader that
needs another chapter's tables makes that chapter over the same :class:`Results` (chapter 6 shows
chapter 4's cost table: ``ClaimsChapter.cost``).

A :class:`Results` remembers a file once read (the files do not change while a page renders) and
never computes a step: a missing file raises a :class:`~mpqlib.errors.ReadOnlyError` that names the
``mpq study run`` command writing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

from . import display
from .._io import read_json
from ..study import report
from ..study.claims_doc import ClaimsDoc, read_claims
from ..errors import ReadOnlyError
from ..study.documents import (DOCS, Correlation, CorrelationDoc, EfficiencyDoc, ObjectionsDoc, PilotDoc, PowerDoc,
                                RunRow, read_doc)
from ..study.facts import PAPER
from ..study.profiles import Profile, resolve
from ..study.stored import StoredModel, matrix, require, study_command
from .display import fmt_pct, fmt_ratio, model_label
from .verdicts import power_caveat


class Results:
    """Profile ``p``'s results files (``p.results_dir``) and stored models, read-only."""

    def __init__(self, profile: str | Profile = "full", overrides: Mapping | str | None = None):
        self.p = resolve(profile, overrides)
        self.models: list[str] = list(self.p.models)
        self._stored: dict[str, StoredModel] = {}
        self._files: dict[str, dict | None] = {}

    def ex(self, model: str | None = None) -> StoredModel:
        """What the study stored of ``model`` (default: the profile's first; results/models.json)."""
        model = model or self.models[0]
        if model not in self._stored:
            self._stored[model] = StoredModel(self.p, model)
        return self._stored[model]

    def _read(self, name: str, parts: Iterable[str] | None, load: Callable[[Path], dict] = read_json) -> dict | None:
        """``results_dir/name`` read by ``load``: required (``parts`` name the study parts writing
        it) or, with ``parts`` None, None where it does not exist."""
        if name not in self._files:
            path = self.p.path(name)
            self._files[name] = load(path) if path.exists() else None
        if self._files[name] is None and parts is not None:  # required: a ReadOnlyError naming the command
            require(self.p, name, parts)
        return self._files[name]

    def runs(self) -> list[RunRow]:
        """Every per-seed run of the protocol (every model) and the sweep (its models): runs.json."""
        return self._doc("runs.json", required=True)["runs"]

    def model_rows(self, model: str, budget: str | None = None) -> list[dict]:
        """``model``'s rows of runs.json at ``budget`` (default: its main budget)."""
        return self.ex(model).table(self.runs(), budget)

    matrix = staticmethod(matrix)  # per-seed top-1, policies x QAT seeds (mpqlib.study.stored.matrix)

    def claims(self) -> ClaimsDoc:
        """claims.json: the claims the study computed from the per-seed runs, checked against its
        schema (:class:`~mpqlib.study.claims_doc.ClaimsDoc`)."""
        return self._read("claims.json", ("protocol", "sweep", "claims"), read_claims)

    def claims_or_none(self) -> ClaimsDoc | None:
        """claims.json, None before the study wrote it."""
        return self._read("claims.json", None, read_claims)

    def _doc(self, name: str, required: bool = False):
        """A typed results file (:mod:`mpqlib.study.documents`), checked against its schema."""
        hint = f"mpq study run --profile {self.p.name}"
        parts = DOCS[name][1]
        return self._read(name, parts if required and not isinstance(parts, str) else None,
                          lambda path: read_doc(path, hint=hint))

    def pilot(self) -> PilotDoc | None:
        """pilot.json (the pilot's power ratios), None where the pilot has not run."""
        return self._doc("pilot.json")

    def power(self) -> PowerDoc | None:
        """power.json (protocol version 4's a-priori power analysis), None where it was not computed."""
        return self._doc("power.json")

    def efficiency(self) -> EfficiencyDoc:
        """efficiency.json (chapter 4's costs of one host)."""
        return self._doc("efficiency.json", required=True)

    def efficiency_or_none(self) -> EfficiencyDoc | None:
        """efficiency.json, None before the study wrote it."""
        return self._doc("efficiency.json")

    def objections(self) -> ObjectionsDoc | None:
        """objections.json (chapter 7), None before the study's objections part ran."""
        return self._doc("objections.json")

    def correlations(self) -> CorrelationDoc:
        """correlation.json: chapter 5's result per model."""
        return self._doc("correlation.json", required=True)

    def correlation(self, model: str | None = None) -> Correlation:
        """Chapter 5's result for ``model`` (correlation.json)."""
        model = model or self.models[0]
        doc = self.correlations()
        if model not in doc:
            raise ReadOnlyError(f"{self.p.path('correlation.json')} has no model {model!r}: "
                                f"write it with `{study_command(self.p, ('correlation',))}`")
        return doc[model]

    def model_caveat(self, model: str) -> str:
        """The power caveat of ``model``'s verdicts (:func:`mpqlib.book.verdicts.power_caveat`; ""
        when powered or before claims.json exists), for captions of tables comparing policies."""
        doc = self.claims_or_none()
        return power_caveat(doc, model, self.pilot()) if doc is not None else ""

    def joined(self, fn: Callable[[str], object], models: Iterable[str] | None = None) -> str:
        """``fn(model)`` for every model of the profile (or of ``models``): "ResNet-20: ...;
        MobileNetV1: ..." (just the value when there is one model)."""
        models = list(self.models if models is None else models)
        if len(models) == 1:
            return str(fn(models[0]))
        return "; ".join(f"{model_label(m)}: {fn(m)}" for m in models)


def glue_common(r: Results) -> None:
    """Glue the names every chapter may quote: the profile, the margin, the models, the paper's numbers."""
    display.glue("profile", r.p.name)
    display.glue("margin", f"{report.MARGIN_PP:g} pp")
    display.glue("level", f"{report.LEVEL:.0%}")
    display.glue("models", " and ".join(model_label(m) for m in r.models))
    display.glue("model", model_label(r.models[0]))
    t = PAPER["table2"]
    display.glue("paper_seam_c", fmt_pct(t["SEAM, proxy C"][0], 1))
    display.glue("paper_seam_s", fmt_pct(t["SEAM, proxy S"][0], 1))
    display.glue("paper_uniform", fmt_pct(t["LSQ uniform W3A3"][0], 1))
    display.glue("paper_limpq", fmt_pct(t["LIMPQ"][0], 1))
    display.glue("paper_fracbits", fmt_pct(t["FracBits"][0], 1))
    display.glue("paper_seam_gain", report.fmt_pp(t["SEAM, proxy C"][0] - t["LSQ uniform W3A3"][0], 1))
    display.glue("paper_budget", f"{PAPER['budget_g']:g} G")
    display.glue("paper_argmax_bitops", f"{t['SEAM, proxy C'][1]:g} G and {t['SEAM, proxy S'][1]:g} G")
    display.glue("paper_argmax_over", f"{100 * (t['SEAM, proxy C'][1] / PAPER['budget_g'] - 1):.0f}%")
    display.glue("paper_hours_fracbits", f"{t['FracBits'][2]:g} h")
    display.glue("paper_hours_limpq", f"{t['LIMPQ'][2]:g} h")
    display.glue("paper_hours_seam", f"{t['SEAM, proxy S'][2]:g}-{t['SEAM, proxy C'][2]:g} h")
    display.glue("paper_joint_ratio", fmt_ratio(PAPER["joint_over_seam"]))
    lo, hi = PAPER["limpq_over_seam"]
    display.glue("paper_limpq_ratio", f"{lo:g}-{hi:g}x")
    s, e = PAPER["resnet18_seam"], PAPER["resnet18_edmips"]
    display.glue("paper_r18_seam", ", ".join(fmt_pct(a, 1) for _, a in s))
    display.glue("paper_r18_edmips", ", ".join(fmt_pct(a, 1) for _, a in e))
    display.glue("paper_r18_bitops", ", ".join(f"{g:g}" for g, _ in s) + " G")


def open_results(profile: str | Profile = "full", overrides: Mapping | str | None = None) -> Results:
    """A notebook's :class:`Results`: the display set up for the book and the common names glued."""
    r = Results(profile, overrides)
    display.setup_display()
    glue_common(r)
    return r


class Reader:
    """What every chapter's reader is made of: its :class:`Results` (``r``), the profile (``p``) and
    its models, and the book's table renderer. ``results`` shares one :class:`Results` between
    readers (a chapter showing another chapter's table); without it the reader opens its own."""

    def __init__(self, profile: str | Profile = "full", overrides: Mapping | str | None = None, *,
                 results: Results | None = None):
        self.r = results if results is not None else open_results(profile, overrides)
        self.p = self.r.p
        self.models = self.r.models

    table = staticmethod(display.table)  # an HTML table that fits the text column (:func:`mpqlib.book.display.table`)


__all__ = ["Results", "Reader", "open_results", "glue_common"]
