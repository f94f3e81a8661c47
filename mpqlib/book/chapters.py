"""The book's chapters, one reader each: what a chapter shows, computed, one call per table,
figure or sentence.

The chapter notebooks are thin. Each holds one papermill parameter (``profile``, plus
``overrides``), opens its chapter's reader and then calls one method per table or figure::

    ch = ObservationChapter(profile, overrides)   # the profile's results, display settings
    obs = ch.observation()                        # chapter 1's metrics (cached QAT models, features)
    ch.table(obs.target)                          # an HTML table that fits the book's text column
    ch.show_tsne(obs, "target")                   # a figure sized for the column

Numbers that the prose quotes are *glued* (myst-nb ``glue``) by these methods under documented
names and shown in the Markdown with ``{glue:text}`NAME```: no number in the book is typed by
hand. The paper's own numbers live in :data:`PAPER` (from the poster's Table 2 and figures).
Statistics (CIs, paired differences, power, correlations) come from :mod:`mpqlib.study.report`,
computed by the study: a chapter only reads ``results/`` (:class:`~mpqlib.book.results.Results`).

The code is split by job, and each file imports only the ones below it (no import circle):

* :mod:`mpqlib.book.display`: the display kit (figure and table settings, colours, labels, number
  formats, the table renderer :func:`~mpqlib.book.display.table` and ``glue``);
* :mod:`mpqlib.book.verdicts`: the claims in words (stances, power caveats and checks, the claims
  tables' rows);
* :mod:`mpqlib.book.results`: :class:`~mpqlib.book.results.Results`, the read-only access to one
  profile's results files and stored models, and :class:`~mpqlib.book.results.Reader`, what every
  chapter's reader holds (its ``Results`` as ``r``, the profile, the table renderer);
* one module per chapter, each with one reader class: :class:`ObservationChapter` (chapter 1),
  :class:`SearchChapter` (2), :class:`QATChapter` (3), :class:`EfficiencyChapter` (4),
  :class:`DiscriminabilityChapter` (5), :class:`ClaimsChapter` (6), :class:`ObjectionsChapter` (7),
  and :mod:`~mpqlib.book.chapter_robustness` (protocol version 4's tables and figures, which
  chapters 3, 6 and 7 show). No reader inherits from another; chapter 6 shows chapter 4's cost
  table through a chapter-4 reader over the same results (``ClaimsChapter.cost``);
* this module: the index, :data:`CHAPTERS`, and the names the notebooks, tests and scripts
  import (re-exported from their homes).
"""

from __future__ import annotations

from . import display  # noqa: F401  (first: display imports tqdm.auto without its warning, before anything else does)
from .chapter_claims import ClaimsChapter
from .chapter_discriminability import DiscriminabilityChapter
from .chapter_efficiency import EfficiencyChapter
from .chapter_objections import ObjectionsChapter
from .chapter_observation import Observation, ObservationChapter
from .chapter_qat import QATChapter
from .chapter_search import SearchChapter
from .results import Reader, Results, open_results

# Re-exported from their homes (see above): the labels and formats, the paper's numbers and the
# claims' words (mpqlib.study.facts, mpqlib.book.verdicts).
from .display import budget_label, fmt_pct, fmt_ratio, model_label, policy_label, setup_display
from ..study.facts import CLAIM_TEXT, CLAIMS, LABELS, PAPER, PAPER_ROWS, PAPER_STANCE
from .verdicts import claim_stance, stance_text

CHAPTERS: dict[int, type[Reader]] = {1: ObservationChapter, 2: SearchChapter, 3: QATChapter, 4: EfficiencyChapter,
                                     5: DiscriminabilityChapter, 6: ClaimsChapter, 7: ObjectionsChapter}
"""Each chapter's reader, by the chapter's number (``book/chapters/NN_*.ipynb``)."""


__all__ = ["CHAPTERS", "ObservationChapter", "SearchChapter", "QATChapter", "EfficiencyChapter",
           "DiscriminabilityChapter", "ClaimsChapter", "ObjectionsChapter", "Observation", "Results", "Reader",
           "open_results", "PAPER", "PAPER_ROWS", "LABELS", "CLAIM_TEXT", "PAPER_STANCE", "CLAIMS", "setup_display",
           "fmt_pct", "fmt_ratio", "policy_label", "model_label", "budget_label", "claim_stance", "stance_text"]
