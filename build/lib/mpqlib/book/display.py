"""The book's display kit: figure and table settings sized for its text column, colours, the
names and number formats a reader sees, the HTML table renderer and ``glue``. Every chapter
(:mod:`mpqlib.book.chapters`, its ``chapter_*`` parts, :mod:`mpqlib.book.chapter_objections`) shows
through these and calls ``display.glue`` by its module, so that replacing :func:`glue` here (a
test capturing what a chapter glues) reaches every caller."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np


def _quiet_tqdm() -> None:
    """Import tqdm.auto without its IProgress warning: a chapter's kernel has no ipywidgets (and
    progress bars are off in every profile); the warning would print a local path in the book."""
    import warnings

    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        import tqdm.auto  # noqa: F401


_quiet_tqdm()

from ..study.facts import LABELS  # noqa: E402

MODEL_NAMES = {"resnet20": "ResNet-20", "resnet8": "ResNet-8", "mobilenetv1": "MobileNetV1", "resnet18": "ResNet-18"}

FIG_WIDTH = 6.8      # inches: the 688 px text column at 100 dpi (the size a figure is shown at)
DPI = 200            # drawn at twice the size it is shown at: sharp on phones and high-density screens
# Colour-blind-safe discrete colours (Okabe and Ito): one per bit-width, and one per method.
# Bit-widths go from cool to warm, each a distinct hue (neighbours never two blues).
BIT_COLOURS = {2: "#0072B2", 3: "#009E73", 4: "#F0E442", 5: "#E69F00", 6: "#D55E00", 7: "#CC79A7", 8: "#56B4E9"}
METHOD_COLOURS = {"seam-mnist": "#D55E00", "target-fmnist": "#0072B2", "uniform": "#000000",
                  "paper-seam": "#CC79A7", "paper-edmips": "#009E73"}


def model_label(name: str) -> str:
    return MODEL_NAMES.get(name, name)


def budget_label(name: str) -> str:
    """``w3a2`` -> ``W3A2``."""
    return str(name).upper()


def policy_label(name: str) -> str:
    if name.startswith("random-"):
        return f"random {name.split('-', 1)[1]}"
    return LABELS.get(name, name)


def fmt_pct(x: float | None, digits: int = 2) -> str:
    """``92.31%``; ``n/a`` for a missing value."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}%"


def fmt_ratio(x: float | None, digits: int = 1) -> str:
    """``6.2x``; ``n/a``."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if 0 < abs(x) < 0.1:  # two significant digits, never scientific notation: 0.000055x
        return np.format_float_positional(x, precision=2, unique=False, fractional=False, trim="-") + "x"
    return f"{x:,.{digits}f}x" if x < 100 else f"{x:,.0f}x"


def fmt_num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(float(x)) else f"{x:.{digits}f}"


# --------------------------------------------------------------------------- display setup
def setup_display() -> None:
    """Figures sized for the book's text column with text >= 9 pt at that size, drawn at 2x;
    tables never truncated."""
    import matplotlib as mpl
    import pandas as pd

    mpl.rcParams.update({
        "figure.figsize": (FIG_WIDTH, 3.4), "figure.dpi": DPI, "savefig.dpi": DPI,
        "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 9,
        "xtick.labelsize": 9, "ytick.labelsize": 9, "figure.constrained_layout.use": True,
        "axes.spines.top": False, "axes.spines.right": False,
    })
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_columns", 8)
    pd.set_option("display.precision", 2)


def glue(name: str, value: Any) -> Any:
    """Store ``value`` for ``{glue:text}`name``` in the chapter's Markdown (shown nowhere else)."""
    from myst_nb import glue as _glue

    _glue(name, value, display=False)
    return value


# --------------------------------------------------------------------------- tables
_tables = 0  # tables shown so far in this kernel: each gets its own HTML id


def table(df, formats: Mapping | None = None, caption: str | None = None, nowrap: Iterable[str] = ()):
    """An HTML table without the index, numbers formatted (``formats``: column -> format):
    text left, numbers right; ``nowrap`` columns (CIs, differences) never break inside."""
    global _tables
    _tables += 1
    sty = df.style.set_uuid(f"t{_tables}").hide(axis="index")  # unique ids in one page
    if formats:
        sty = sty.format({k: v for k, v in formats.items() if k in df.columns}, na_rep="n/a")
    if caption:
        sty = sty.set_caption(caption)
    # One selector per rule: pandas prefixes each rule with this table's id, not each part of a list.
    base = "padding: 2px 8px; text-align: left; vertical-align: top;"
    styles = [{"selector": "td", "props": base}, {"selector": "th", "props": base},
              {"selector": "td.col0", "props": "min-width: 9em;"}]  # names wrap less on a phone
    for i, col in enumerate(df.columns):
        numeric = df[col].dtype.kind in "if" or col in (formats or {})
        props = ("text-align: right;" if numeric and i else "") + (" white-space: nowrap;" if col in nowrap else "")
        if props:
            styles += [{"selector": f"td.col{i}", "props": props}, {"selector": f"th.col_heading.col{i}", "props": props}]
    return Table(sty.set_table_styles(styles))


class Table:
    """A styled table as a page shows it: HTML for the book, a stable one-line text otherwise
    (a pandas Styler's text form names its memory address, which would change the executed
    notebook on every run). ``data`` is the DataFrame, ``styler`` the pandas Styler."""

    def __init__(self, styler):
        self.styler = styler
        self.data = styler.data

    def to_html(self) -> str:
        return self.styler.to_html()

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        caption = self.styler.caption
        return f"<table: {len(self.data)} rows x {len(self.data.columns)} columns{': ' + caption if caption else ''}>"


__all__ = ["MODEL_NAMES", "FIG_WIDTH", "DPI", "BIT_COLOURS", "METHOD_COLOURS", "model_label", "budget_label",
           "policy_label", "fmt_pct", "fmt_ratio", "fmt_num", "setup_display", "glue", "table", "Table"]
