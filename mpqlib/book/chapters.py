"""What each chapter of the book shows, computed: one call per table, figure or sentence.

The chapter notebooks are thin. Each holds one papermill parameter (``profile``, plus
``overrides``), makes one :class:`Chapter` and then calls one method per table or figure::

    ch = Chapter(profile, overrides)      # threads, display settings, the profile, the models
    obs = ch.observation()                # chapter 1's metrics (cached QAT models, features)
    ch.table(obs.target)                  # an HTML table that fits the book's text column
    ch.show_tsne(obs, "target")           # a figure sized for the column

Numbers that the prose quotes are *glued* (myst-nb ``glue``) by these methods under documented
names and shown in the Markdown with ``{glue:text}`NAME```: no number in the book is typed by
hand. The paper's own numbers live in :data:`PAPER` (from the poster's Table 2 and figures).
Statistics (CIs, paired differences, power, correlations) come from :mod:`mpqlib.study.report`;
every experiment from :mod:`mpqlib.study.experiments` (cached, so a chapter of the full profile only
reads what the full run computed, and a smoke chapter computes what it needs).

The code is split by job, and each file imports only the ones below it (no import circle):

* :mod:`mpqlib.book.display`: the display kit (figure and table settings, colours, labels, number
  formats, the table renderer :func:`~mpqlib.book.display.table` and ``glue``);
* :mod:`mpqlib.book.verdicts`: the claims in words (stances, power caveats, the claims tables' rows,
  the bottom line);
* one module per chapter for its tables and figures, each a mixin class:
  :mod:`~mpqlib.book.chapter_observation` (chapter 1), :mod:`~mpqlib.book.chapter_search` (2),
  :mod:`~mpqlib.book.chapter_qat` (3), :mod:`~mpqlib.book.chapter_efficiency` (4),
  :mod:`~mpqlib.book.chapter_discriminability` (5) and :mod:`~mpqlib.book.chapter_claims` (6). A mixin
  reads the results through :class:`Chapter`'s methods (``self.ex``, ``self.runs``,
  ``self.table``, ...) and never imports this module;
* this module: :class:`Chapter`, the six mixins combined with the construction (profile, display
  settings, the glued numbers every chapter quotes) and the access to the results that the
  chapters share (the models' experiments, the per-seed runs, claims.json, efficiency.json, the
  correlations). :mod:`mpqlib.book.chapter_objections` (chapter 7) subclasses it.

The names the notebooks, tests and scripts import from here (``Chapter``, ``ensure``, the labels
and formats, the paper's numbers, the claims' words) stay importable from here: they are
re-exported from their homes.
"""

from __future__ import annotations

from typing import Iterable, Mapping


from . import display  # first: display imports tqdm.auto without its warning, before anything else does
from ..study import report
from . import chapter_robustness as robustness
from .._io import read_json
from .chapter_claims import ClaimsMixin
from .chapter_discriminability import DiscriminabilityMixin
from .chapter_efficiency import EfficiencyMixin
from .chapter_observation import Observation, ObservationMixin
from .chapter_qat import QATMixin
from .chapter_search import HEAD_THRESHOLD, SearchMixin  # noqa: F401
from .display import fmt_pct, fmt_ratio, model_label, setup_display
from ..study.experiments import CLAIMS, load_runs
from ..study.profiles import Profile, resolve
from ..study.stored import StoredModel, matrix, require

# Re-exported from their homes (see above).
from .display import (BIT_COLOURS, DPI, FIG_WIDTH, METHOD_COLOURS, MODEL_NAMES, budget_label,  # noqa: F401
                      fmt_num, glue, policy_label)
# The paper's numbers, the policies' names and the claims' words: one home, mpqlib.study.facts.
from ..study.facts import CLAIM_TEXT, LABELS, PAPER, PAPER_ROWS, PAPER_STANCE  # noqa: F401
from .verdicts import (POWER_RULE, STANCE_WORDS, TRANSFER_CLAIMS, bottom_line, claim_label,  # noqa: F401
                       claims_rows, paper_fill, pilot_ratio, power_caveat, power_words, stance_text)


class Chapter(ObservationMixin, SearchMixin, QATMixin, EfficiencyMixin, DiscriminabilityMixin, ClaimsMixin):
    """One chapter's access to the book's results under ``profile`` (``smoke`` or ``full``)."""

    def __init__(self, profile: str | Profile = "full", overrides: Mapping | str | None = None):
        self.p = resolve(profile, overrides)
        setup_display()
        self.models = list(self.p.models)
        self._ex: dict[str, StoredModel] = {}
        self._rows: list[dict] | None = None
        self._agree: dict = {}
        self._groups: dict = {}
        self._corr: dict = {}
        self._searched: dict = {}
        display.glue("profile", self.p.name)
        display.glue("margin", f"{report.MARGIN_PP:g} pp")
        display.glue("level", f"{report.LEVEL:.0%}")
        display.glue("models", " and ".join(model_label(m) for m in self.models))
        display.glue("model", model_label(self.models[0]))
        self._glue_paper()

    # ------------------------------------------------------------------ plumbing
    def ex(self, model: str | None = None) -> StoredModel:
        """What the study stored of ``model`` (default: the profile's first; results/models.json)."""
        model = model or self.models[0]
        if model not in self._ex:
            self._ex[model] = StoredModel(self.p, model)
        return self._ex[model]

    table = staticmethod(display.table)  # an HTML table that fits the text column (:func:`mpqlib.book.display.table`)

    def _glue_paper(self) -> None:
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
        s = PAPER["resnet18_seam"]
        e = PAPER["resnet18_edmips"]
        display.glue("paper_r18_seam", ", ".join(fmt_pct(a, 1) for _, a in s))
        display.glue("paper_r18_edmips", ", ".join(fmt_pct(a, 1) for _, a in e))
        display.glue("paper_r18_bitops", ", ".join(f"{g:g}" for g, _ in s) + " G")

    # ------------------------------------------------------------------ the long table of runs
    def runs(self) -> list[dict]:
        """Every per-seed run of the protocol (every model) and the sweep (its models), as the
        study wrote them (runs.json; a missing file names the `mpq study run` that writes it)."""
        if self._rows is None:
            require(self.p, "runs.json", ("protocol", "sweep"))
            self._rows = load_runs(self.p)
        return self._rows

    def model_rows(self, model: str, budget: str | None = None) -> list[dict]:
        return self.ex(model).table(self.runs(), budget)

    matrix = staticmethod(matrix)  # per-seed top-1, policies x QAT seeds (mpqlib.study.stored.matrix)

    # ------------------------------------------------------------------ the results files
    def claims(self) -> dict:
        """claims.json of the profile, as the study computed it from the per-seed runs (mpqlib.study.report)."""
        return read_json(require(self.p, "claims.json", ("protocol", "sweep", "claims")))

    # protocol version 4's robustness readers (mpqlib.book.chapter_robustness)
    def collapsed_table(self, doc: dict):
        return robustness.collapsed_table(doc)

    def stability_table(self, doc: dict):
        return robustness.stability_table(doc)

    def show_power_curves(self) -> None:
        robustness.show_power_curves(robustness.power_doc(self.p))

    def show_deficit_split(self, doc: dict) -> None:
        robustness.show_deficit_split(doc)

    def budget_pilot_table(self, doc: dict):
        return robustness.budget_pilot_table(doc)

    def pilot(self) -> dict | None:
        """results_dir/pilot.json (the pilot's power ratios), None where the pilot has not run."""
        path = self.p.path("pilot.json")
        return read_json(path) if path.exists() else None

    def model_caveat(self, model: str) -> str:
        """The power caveat of ``model``'s verdicts (:func:`mpqlib.book.verdicts.power_caveat`; "" when
        powered or before claims.json exists), for the captions of tables that compare policies."""
        path = self.p.path("claims.json")
        return power_caveat(read_json(path), model, self.pilot()) if path.exists() else ""

    def efficiency(self) -> dict:
        """results_dir/efficiency.json, as the study wrote it."""
        eff = read_json(require(self.p, "efficiency.json", ("efficiency",)))
        display.glue("eff_model", model_label(eff.get("model") or self.p.efficiency_model()))
        return eff

    def correlations(self) -> list[dict]:
        """Chapter 5's result for each of its models (the profile's ``correlation_on``)."""
        display.glue("corr_models", " and ".join(model_label(m) for m in self.p.correlation_models()))
        return [self.correlation(m) for m in self.p.correlation_models()]

    def correlation(self, model: str | None = None) -> dict:
        """Chapter 5's result for ``model`` (results/correlation.json, written by the study)."""
        return self.ex(model).correlation()

    # ------------------------------------------------------------------ every model in one sentence
    def joined(self, fn, models: Iterable[str] | None = None) -> str:
        """``fn(model)`` for every model of the profile (or of ``models``): "ResNet-20: ...;
        MobileNetV1: ..." (just the value when there is one model)."""
        models = list(self.models if models is None else models)
        if len(models) == 1:
            return str(fn(models[0]))
        return "; ".join(f"{model_label(m)}: {fn(m)}" for m in models)


__all__ = ["PAPER", "PAPER_ROWS", "LABELS", "CLAIM_TEXT", "PAPER_STANCE", "Chapter", "Observation", "setup_display", "glue",
           "fmt_pct", "fmt_ratio", "policy_label", "model_label", "budget_label", "CLAIMS"]
