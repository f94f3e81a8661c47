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
Statistics (CIs, paired differences, power, correlations) come from :mod:`mpqlib.report`;
every experiment from :mod:`mpqlib.experiments` (cached, so a chapter of the full profile only
reads what the full run computed, and a smoke chapter computes what it needs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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

from . import report  # noqa: E402
from ._io import read_json  # noqa: E402
from .experiments import CLAIMS, Experiments, load_runs  # noqa: E402
from .profiles import Profile, resolve  # noqa: E402
from .study.pipeline import ensure  # noqa: E402

# The paper's numbers, the policies' names and the claims' words: one home, mpqlib.study.facts.
from .study.facts import CLAIM_TEXT, LABELS, PAPER, PAPER_ROWS, PAPER_STANCE  # noqa: E402

STANCE_WORDS = {"supports": "reproduced", "contradicts": "not reproduced at this scale", "undecided": "undecided"}
"""What a stance says to a reader ("not reproduced at this scale": on this book's small data,
models and fine-tuning, not a statement about the paper's ImageNet result)."""

POWER_RULE = 2.0  # the pre-registered rule: policy SD >= 2 x seed SD (book/method.md, Protocol)

MODEL_NAMES = {"resnet20": "ResNet-20", "resnet8": "ResNet-8", "mobilenetv1": "MobileNetV1", "resnet18": "ResNet-18"}

HEAD_THRESHOLD = 0.9  # the protocol: the SEAM head must reach 90% of the linear probe's accuracy
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


# --------------------------------------------------------------------------- claims in words
def claim_label(cid: str) -> str:
    """A claim named by its two sides, in the reader's words (claim ids never reach the prose)."""
    if cid not in CLAIMS:
        return cid
    a, b, _ = CLAIMS[cid]
    return f"{policy_label(a)} vs {policy_label(b)}"


def stance_text(claim: Mapping) -> str:
    """What a claim's verdict says about the paper, for a reader: "reproduced", "not reproduced at
    this scale", "undecided"; "design check" for the positive control; "no claim in the paper"."""
    stance = Chapter.stance(claim)
    if stance is None:
        return "design check" if claim["id"] == "positive-control" else "no claim in the paper"
    return STANCE_WORDS[stance]


def pilot_ratio(pilot: Mapping | None, model: str, budget: str) -> float | None:
    """The power ratio the pilot measured for ``model`` at ``budget`` (None without a pilot)."""
    return ((pilot or {}).get("budgets", {}).get(model, {}).get(budget) or {}).get("ratio")


def power_words(doc: Mapping, model: str, pilot: Mapping | None = None) -> str:
    """"power ratio 1.24 in the run (pilot 1.69)": the run's ratio, and the pilot's, each named."""
    ratio = (doc.get("power", {}).get(model) or {}).get("ratio")
    if ratio is None:
        return "power ratio not measured"
    pr = pilot_ratio(pilot, model, (doc.get("budgets") or {}).get(model, ""))
    return f"power ratio {ratio:.2f} in the run" + (f", {pr:.2f} in the pilot" if pr is not None else "")


def power_caveat(doc: Mapping, model: str, pilot: Mapping | None = None) -> str:
    """The caveat every verdict of an underpowered model carries ("" when the rule is met)."""
    ratio = (doc.get("power", {}).get(model) or {}).get("ratio")
    if ratio is not None and ratio >= POWER_RULE:
        return ""
    return f"underpowered: {power_words(doc, model, pilot)}, below the rule's {POWER_RULE:g}"


def paper_fill() -> dict[str, str]:
    """The paper's numbers that :data:`CLAIM_TEXT` quotes."""
    t = PAPER["table2"]
    return {"margin": f"{report.MARGIN_PP:g}",
            "seam_uniform": f"{report.fmt_pp(t['SEAM, proxy C'][0] - t['LSQ uniform W3A3'][0], 1)} "
                            f"({fmt_pct(t['SEAM, proxy C'][0], 1)} vs {fmt_pct(t['LSQ uniform W3A3'][0], 1)})",
            "seam_limpq": f"{report.fmt_pp(t['SEAM, proxy C'][0] - t['LIMPQ'][0], 1)} "
                          f"({fmt_pct(t['SEAM, proxy C'][0], 1)} vs {fmt_pct(t['LIMPQ'][0], 1)})",
            "proxy_s": fmt_pct(t["SEAM, proxy S"][0], 1), "proxy_c": fmt_pct(t["SEAM, proxy C"][0], 1)}


TRANSFER_CLAIMS = ("proxy-vs-target", "second-proxy", "tuned-seam-vs-target", "proxy-vs-target-long",
                   "disjoint-classes-vs-target")
"""The tests of the paper's transfer claim (a proxy's policy matches the target search's)."""


def bottom_line(doc: Mapping, eff: Mapping | None = None, pilot: Mapping | None = None) -> list[str]:
    """The book's bottom line in two or three plain sentences, computed from claims.json,
    efficiency.json and pilot.json: transfer (X of Y tests), cost against the paper's 297x, scale."""
    transfer = [c for c in doc["claims"] if c["id"] in TRANSFER_CLAIMS]
    matched = [c for c in transfer if c["verdict"].startswith("equivalent")]
    out = [f"**Transfer:** a policy searched on a proxy matched the search on the target (equivalent within "
           f"±{report.MARGIN_PP:g} pp) in {len(matched)} of {len(transfer)} tests"
           + (" (" + "; ".join(f"{claim_label(c['id']).split(' vs ')[0]}, {model_label(c['model'])}"
                              for c in matched) + ")" if matched else "") + "."]
    ratios = (eff or {}).get("ratios", {})
    proj = ((eff or {}).get("imagenet") or {}).get("archs", {}).get("mobilenetv1", {}).get("ratios", {})

    def measured(key: str) -> str | None:
        v = (ratios.get(key) or {}).get("value")
        return fmt_ratio(v) if v is not None else None

    parts = [f"the search on the whole target at SEAM's epochs took {measured('target-equal-epochs/seam')} SEAM's "
             "time" if measured("target-equal-epochs/seam") else None,
             f"a joint weights-and-bits search (the class of FracBits) {measured('joint/seam')}"
             if measured("joint/seam") else None]
    parts = [x for x in parts if x]
    if parts:
        cost = "**Cost:** measured here, " + " and ".join(parts)
        if proj.get("joint/seam") is not None:
            cost += (f"; projected to ImageNet (MobileNetV1), the joint search costs {fmt_ratio(proj['joint/seam'])} "
                     "SEAM's")
        out.append(cost + f", against the paper's {fmt_ratio(PAPER['joint_over_seam'])} (FracBits "
                   f"{PAPER['table2']['FracBits'][2]:g} h against SEAM's {PAPER['table2']['SEAM, proxy S'][2]:g} h).")
    weak = [m for m in dict.fromkeys(c["model"] for c in doc["claims"]) if power_caveat(doc, m, pilot)]
    scale = ("**Scale:** Fashion-MNIST with an MNIST proxy, small networks and a short fine-tuning on a 2-core CPU, "
             "not ImageNet: a claim marked not reproduced is not reproduced at this scale")
    if weak:
        scale += "; " + "; ".join(f"{model_label(m)} is underpowered ({power_words(doc, m, pilot)}, below the "
                                  f"pre-registered {POWER_RULE:g}), so its verdicts are weak evidence" for m in weak)
    out.append(scale + ".")
    return out


def claims_rows(doc: Mapping, model: str, pilot: Mapping | None = None) -> list[dict]:
    """One row per claim of ``model``: claim, the paper's number (and where), ours with its CI,
    the verdict with its stance, and the caveat (every verdict of an underpowered model has one)."""
    fill = paper_fill()
    caveat = power_caveat(doc, model, pilot)
    rows = []
    for c in doc["claims"]:
        if c["model"] != model:
            continue
        words, paper = CLAIM_TEXT.get(c["id"], (c["id"], "—"))
        rows.append({"claim": words.format(**fill), "paper": paper.format(**fill),
                     "ours": report.fmt_diff(c["estimate_pp"], c["ci_low"], c["ci_high"]),
                     "verdict": f"{c['verdict']}: {stance_text(c)}", "caveat": caveat or "—", "id": c["id"]})
    return rows


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


# --------------------------------------------------------------------------- results of chapter 1
@dataclass
class Observation:
    """Chapter 1: per model (FP, uniform, two mixed) and dataset the discriminability metrics."""

    rows: list[dict]
    embedding: dict = field(repr=False)    # (model name, dataset) -> (2-D t-SNE of the features, labels)
    models: list[str]

    def frame(self, data: str):
        import pandas as pd

        return pd.DataFrame([r for r in self.rows if r["data"] == data])


class Chapter:
    """One chapter's access to the book's results under ``profile`` (``smoke`` or ``full``)."""

    def __init__(self, profile: str | Profile = "full", overrides: Mapping | str | None = None):
        self.p = resolve(profile, overrides)
        setup_display()
        self.models = list(self.p.models)
        self._ex: dict[str, Experiments] = {}
        self._rows: list[dict] | None = None
        self._agree: dict = {}
        self._groups: dict = {}
        self._corr: dict = {}
        self._searched: dict = {}
        glue("profile", self.p.name)
        glue("margin", f"{report.MARGIN_PP:g} pp")
        glue("level", f"{report.LEVEL:.0%}")
        glue("models", " and ".join(model_label(m) for m in self.models))
        glue("model", model_label(self.models[0]))
        self._glue_paper()

    # ------------------------------------------------------------------ plumbing
    def ex(self, model: str | None = None) -> Experiments:
        """The cached experiments of ``model`` (default: the profile's first)."""
        model = model or self.models[0]
        if model not in self._ex:
            self._ex[model] = Experiments(self.p, model)
        return self._ex[model]

    _tables = 0  # tables shown so far in this kernel: each gets its own HTML id

    @staticmethod
    def table(df, formats: Mapping | None = None, caption: str | None = None, nowrap: Iterable[str] = ()):
        """An HTML table without the index, numbers formatted (``formats``: column -> format):
        text left, numbers right; ``nowrap`` columns (CIs, differences) never break inside."""
        Chapter._tables += 1
        sty = df.style.set_uuid(f"t{Chapter._tables}").hide(axis="index")  # unique ids in one page
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
        return sty.set_table_styles(styles)

    def _glue_paper(self) -> None:
        t = PAPER["table2"]
        glue("paper_seam_c", fmt_pct(t["SEAM, proxy C"][0], 1))
        glue("paper_seam_s", fmt_pct(t["SEAM, proxy S"][0], 1))
        glue("paper_uniform", fmt_pct(t["LSQ uniform W3A3"][0], 1))
        glue("paper_limpq", fmt_pct(t["LIMPQ"][0], 1))
        glue("paper_fracbits", fmt_pct(t["FracBits"][0], 1))
        glue("paper_seam_gain", report.fmt_pp(t["SEAM, proxy C"][0] - t["LSQ uniform W3A3"][0], 1))
        glue("paper_budget", f"{PAPER['budget_g']:g} G")
        glue("paper_argmax_bitops", f"{t['SEAM, proxy C'][1]:g} G and {t['SEAM, proxy S'][1]:g} G")
        glue("paper_argmax_over", f"{100 * (t['SEAM, proxy C'][1] / PAPER['budget_g'] - 1):.0f}%")
        glue("paper_hours_fracbits", f"{t['FracBits'][2]:g} h")
        glue("paper_hours_limpq", f"{t['LIMPQ'][2]:g} h")
        glue("paper_hours_seam", f"{t['SEAM, proxy S'][2]:g}-{t['SEAM, proxy C'][2]:g} h")
        glue("paper_joint_ratio", fmt_ratio(PAPER["joint_over_seam"]))
        lo, hi = PAPER["limpq_over_seam"]
        glue("paper_limpq_ratio", f"{lo:g}-{hi:g}x")
        s = PAPER["resnet18_seam"]
        e = PAPER["resnet18_edmips"]
        glue("paper_r18_seam", ", ".join(fmt_pct(a, 1) for _, a in s))
        glue("paper_r18_edmips", ", ".join(fmt_pct(a, 1) for _, a in e))
        glue("paper_r18_bitops", ", ".join(f"{g:g}" for g, _ in s) + " G")

    # ------------------------------------------------------------------ the long table of runs
    def runs(self) -> list[dict]:
        """Every per-seed run of the protocol (every model) and the sweep (its models), as the
        pipeline computed them (runs.json; :func:`mpqlib.study.ensure` computes what is missing)."""
        if self._rows is None:
            ensure(self.p, parts=("protocol", "sweep"))
            self._rows = load_runs(self.p)
        return self._rows

    def model_rows(self, model: str, budget: str | None = None) -> list[dict]:
        return self.ex(model).table(self.runs(), budget)

    @staticmethod
    def matrix(rows: list[dict], policies: str | Iterable[str]) -> np.ndarray:
        """Per-seed top-1 of ``policies``: one row per (policy, search seed), one column per QAT seed."""
        names = [policies] if isinstance(policies, str) else list(policies)
        units: dict = {}
        for r in rows:
            if r["policy"] in names:
                units.setdefault((r["policy"], r["search_seed"]), {})[r["qat_seed"]] = r["top1"]
        seeds = sorted({q for u in units.values() for q in u})
        return np.array([[u.get(q, np.nan) for q in seeds] for _, u in sorted(units.items(), key=str)], float)

    # ================================================================== chapter 1
    def observation(self, model: str | None = None) -> Observation:
        """FP, uniform W8A8/W4A4/W3A3/W2A2 and two mixed policies at the main budget (SEAM's and a
        deliberately poor one), each after the common QAT (seed 0); metrics of the pooled
        penultimate features on target and proxy test images (one cached step,
        :meth:`Experiments.observation`)."""
        ex = self.ex(model)
        doc = ex.observation()
        embedding = {tuple(k.rsplit("|", 1)): (np.array(xy), np.array(doc["labels"][k.rsplit("|", 1)[1]]))
                     for k, xy in doc["embedding"].items()}
        obs = Observation(doc["rows"], embedding, doc["models"])
        self._glue_observation(obs, ex)
        return obs

    def _glue_observation(self, obs: Observation, ex: Experiments) -> None:
        t, p = obs.frame("target").set_index("model"), obs.frame("proxy").set_index("model")
        glue("obs_budget", budget_label(ex.budget_name))
        glue("obs_n_points", f"{self.p.n_points:,}")
        for name, key in (("FP", "fp"), ("W3A3", "w3a3"), ("W2A2", "w2a2"), ("mixed, SEAM", "good"),
                          ("mixed, poor", "poor")):
            glue(f"obs_margin_{key}", fmt_num(t.loc[name, "logit_margin"]))
            glue(f"obs_fisher_target_{key}", fmt_num(t.loc[name, "fisher_ratio"]))
            glue(f"obs_fisher_proxy_{key}", fmt_num(p.loc[name, "fisher_ratio"]))
            glue(f"obs_top1_{key}", fmt_pct(t.loc[name, "top1"]))
        rho_t = report.spearman(t["fisher_ratio"], t["top1"])
        rho_p = report.spearman(p.loc[t.index, "fisher_ratio"], t["top1"])
        rho_m = report.spearman(t["logit_margin"], t["top1"])
        glue("obs_rho_margin", fmt_num(rho_m))
        glue("obs_rho_fisher_target", fmt_num(rho_t))
        glue("obs_rho_fisher_proxy", fmt_num(rho_p))
        glue("obs_n_models", str(len(t)))
        glue("obs_margin_verdict", self.margin_trend(t["logit_margin"]))
        glue("obs_proxy_verdict", "lowers" if p.loc["W2A2", "fisher_ratio"] < p.loc["FP", "fisher_ratio"] else
             "does not lower")

    @staticmethod
    def margin_trend(margin) -> str:
        """Does the target margin fall with every step down in bits (FP, W8A8, W4A4, W3A3, W2A2)?
        Computed, with each exception named."""
        steps = [n for n in ("FP", "W8A8", "W4A4", "W3A3", "W2A2") if n in margin.index]
        up = [(a, b) for a, b in zip(steps, steps[1:]) if margin[b] >= margin[a]]
        if not up:
            return "falls with every step down in bits"
        return ("falls from FP to W2A2 overall, but not at every step: "
                + ", ".join(f"{b} keeps {fmt_num(margin[b])} against {a}'s {fmt_num(margin[a])}" for a, b in up))

    def observation_tables(self, obs: Observation):
        """(target table, proxy table): the margin columns the prose discusses first, <= 6 columns."""
        t = obs.frame("target")[["model", "logit_margin", "fisher_ratio", "separation_min", "top1", "bitops"]]
        t = t.rename(columns={"logit_margin": "logit margin", "fisher_ratio": "Fisher ratio",
                              "separation_min": "min. separation", "top1": "top-1", "bitops": "BitOps"})
        p = obs.frame("proxy")[["model", "fisher_ratio", "normalised_compactness", "separation_min", "compactness"]]
        p = p.rename(columns={"fisher_ratio": "Fisher ratio", "normalised_compactness": "norm. compactness",
                              "separation_min": "min. separation", "compactness": "compactness"})
        num = "{:.2f}"
        return (self.table(t, {"logit margin": num, "Fisher ratio": num, "min. separation": num,
                               "top-1": lambda v: fmt_pct(v), "BitOps": lambda v: "FP (32 bits)" if v is None
                               or (isinstance(v, float) and math.isnan(v)) else report.fmt_bitops(v)}),
                self.table(p, {"Fisher ratio": num, "norm. compactness": num, "min. separation": num,
                               "compactness": num}))

    def show_observation(self, obs: Observation) -> None:
        """Logit margin on the target, Fisher ratio on the target and on the proxy, per model: three
        panels stacked, each on its own axis (the proxy's ratio is an order of magnitude smaller)."""
        import matplotlib.pyplot as plt

        t, p = obs.frame("target"), obs.frame("proxy")
        x = np.arange(len(obs.models))
        fig, axes = plt.subplots(3, 1, figsize=(FIG_WIDTH, 5.6), sharex=True)
        panels = ((t["logit_margin"], "logit margin", "mean logit margin, target (Fashion-MNIST)", "#0072B2"),
                  (t["fisher_ratio"], "Fisher ratio", "Fisher ratio, target (Fashion-MNIST)", "#0072B2"),
                  (p["fisher_ratio"], "Fisher ratio", "Fisher ratio, proxy (MNIST), its own scale", "#E69F00"))
        for ax, (values, ylabel, title, colour) in zip(axes, panels):
            ax.bar(x, values, color=colour)
            ax.set_ylabel(ylabel)
            ax.set_title(title, loc="left")
        axes[-1].set_xticks(x, obs.models, rotation=30, ha="right")
        plt.show()

    def show_tsne(self, obs: Observation, data: str) -> None:
        """2-D t-SNE of the features of every model on ``data`` (``target`` or ``proxy``), one
        colour per class: one figure per dataset, two rows of four panels."""
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 4, figsize=(FIG_WIDTH, 3.9))
        for ax, name in zip(axes.flat, obs.models):
            xy, y = obs.embedding[name, data]
            ax.scatter(xy[:, 0], xy[:, 1], c=y, cmap="tab10", s=2, vmin=0, vmax=9)
            ax.set_title(name)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle({"target": "target: Fashion-MNIST test images", "proxy": "proxy: MNIST test images"}.get(data, data))
        last = axes.flat[-1]
        last.axis("off")
        for k in range(10):
            last.scatter([], [], color=plt.get_cmap("tab10")(k), s=12, label=str(k))
        last.legend(title="class", ncols=2, loc="center", frameon=False, handletextpad=0.1)
        plt.show()

    # ================================================================== chapter 2
    MAIN = ("seam-mnist", "seam-mnist-argmax", "seam-optdigits", "seam-fmnist4", "ce-mnist", "target-fmnist",
            "limpq-fmnist", "hawq-fmnist", "uniform")

    def searched(self, model: str | None = None) -> dict:
        """The main budget's policies of ``model`` (search seed 0) and the random ones."""
        ex = self.ex(model)
        if ex.model_name not in self._searched:  # random policies and readouts solve an ILP each: once
            names = list(self.MAIN) + [f"random-{i}" for i in range(self.p.n_random)]
            self._searched[ex.model_name] = {n: ex.search(n) for n in names}
        return self._searched[ex.model_name]

    def policy_table(self, model: str | None = None):
        ex = self.ex(model)
        res = self.searched(model)
        rows = []
        for n in self.MAIN:
            pol = res[n].policy
            w, a = pol.mean_bits()
            rows.append({"policy": policy_label(n), "search data": res[n].record.get("search_data", "none"),
                         "BitOps": ex.cost.bitops(pol), "of budget": ex.cost.bitops(pol) / ex.budget,
                         "mean bits w / a": f"{w:.2f} / {a:.2f}"})
        import pandas as pd

        return self.table(pd.DataFrame(rows), {"BitOps": report.fmt_bitops, "of budget": "{:.1%}"},
                          caption=f"{model_label(ex.model_name)} at {budget_label(ex.budget_name)} "
                                  f"({report.fmt_bitops(ex.budget)} BitOps)")

    def joined(self, fn, models: Iterable[str] | None = None) -> str:
        """``fn(model)`` for every model of the profile (or of ``models``): "ResNet-20: ...;
        MobileNetV1: ..." (just the value when there is one model)."""
        models = list(self.models if models is None else models)
        if len(models) == 1:
            return str(fn(models[0]))
        return "; ".join(f"{model_label(m)}: {fn(m)}" for m in models)

    def search_summary(self) -> None:
        """Glue chapter 2's sentences (every model): budgets, readout shares, agreement."""
        def share(m, name):
            ex = self.ex(m)
            return f"{100 * ex.cost.bitops(ex.search(name).policy) / ex.budget:.1f}%"

        glue("search_budgets", self.joined(lambda m: f"{budget_label(self.ex(m).budget_name)} "
                                                     f"({report.fmt_bitops(self.ex(m).budget)} BitOps)"))
        glue("search_ilp_share", self.joined(lambda m: share(m, "seam-mnist")))
        glue("search_argmax_share", self.joined(lambda m: share(m, "seam-mnist-argmax")))

    @staticmethod
    def short_layer(name: str) -> str:
        return (name.replace("layer", "L").replace(".conv", ".c").replace(".downsample.0", ".sc")
                .replace("features.", "f").replace(".depthwise", ".dw").replace(".pointwise", ".pw"))

    def show_policies(self, model: str | None = None) -> None:
        """Bits per layer (columns, network order) of each searched policy (rows): weights and
        activations in two figures, no numbers in the cells (the colour bar reads them)."""
        import matplotlib.pyplot as plt
        from matplotlib.colors import BoundaryNorm, ListedColormap

        ex = self.ex(model)
        res = self.searched(model)
        names = [n for n in self.MAIN]
        layers = ex.cost.names
        top = max(max(res[n].policy.bits[l]) for n in names for l in layers)
        cmap = ListedColormap([BIT_COLOURS.get(b, "#999999") for b in range(2, top + 1)])
        norm = BoundaryNorm(np.arange(1.5, top + 1), cmap.N)
        for k, what in ((0, "weight bits"), (1, "activation bits")):
            m = np.array([[res[n].policy.bits[l][k] for l in layers] for n in names])
            fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.3 * len(names) + 1.6))
            im = ax.imshow(m, cmap=cmap, norm=norm, aspect="auto")
            ax.set_yticks(range(len(names)), [policy_label(n) for n in names])
            ax.set_xticks(range(len(layers)), [self.short_layer(l) for l in layers], rotation=90)
            ax.set_title(f"{model_label(ex.model_name)}: {what} per layer")
            fig.colorbar(im, ax=ax, ticks=range(2, top + 1), label="bits", fraction=0.04)
            plt.show()

    def layer_groups(self, model: str | None = None):
        """Mean weight / activation bits of SEAM's policy per kind of layer (the paper: shortcut
        1x1 convs get up to 6 bits, most 3x3 convs 2-4)."""
        import pandas as pd

        ex = self.ex(model)
        pol = ex.search("seam-mnist").policy
        kinds = {c.name: ("shortcut 1x1" if "downsample" in c.name else "depthwise" if c.kind == "dwconv" else
                          "1x1 conv" if "pointwise" in c.name or "pw" in c.name else "3x3 conv")
                 for c in ex.cost.searchable}
        rows = []
        for kind in dict.fromkeys(kinds.values()):
            bits = [pol.bits[n] for n, k in kinds.items() if k == kind]
            rows.append({"layers": kind, "count": len(bits), "mean w bits": np.mean([b[0] for b in bits]),
                         "mean a bits": np.mean([b[1] for b in bits]), "max w bits": max(b[0] for b in bits)})
        self._groups[ex.model_name] = rows
        return self.table(pd.DataFrame(rows), {"mean w bits": "{:.2f}", "mean a bits": "{:.2f}"})

    def layer_groups_summary(self) -> None:
        """Glue SEAM's mean (weight, activation) bits per kind of layer, every model."""
        for m in self.models:
            if m not in self._groups:
                self.layer_groups(m)
        def groups(m):
            text = ", ".join(f"{r['layers']} W{r['mean w bits']:.1f}/A{r['mean a bits']:.1f}" for r in self._groups[m])
            short = [r for r in self._groups[m] if r["layers"] == "shortcut 1x1"]
            if short:
                text += (f" (shortcut 1x1 weights at most {short[0]['max w bits']} bits, where the paper's ResNet-18 "
                         "policy gives them up to 6)")
            return text
        glue("groups_text", self.joined(groups))

    def agreement(self, model: str | None = None):
        """Each policy against the target-searched one: share of layers with the same (w, a),
        mean |bit difference| per layer, Spearman of the per-layer bits; random policies give chance."""
        import pandas as pd

        ex = self.ex(model)
        res = self.searched(model)
        layers = ex.cost.names
        ref = res["target-fmnist"].policy
        vec = lambda p: np.array([b for l in layers for b in p.bits[l]], float)  # noqa: E731
        rows = []
        for n, r in res.items():
            if n in ("target-fmnist", "seam-mnist-argmax"):
                continue
            p = r.policy
            rows.append({"policy": n, "same (w, a)": np.mean([p.bits[l] == ref.bits[l] for l in layers]),
                         "mean |bit diff|": np.mean([abs(p.bits[l][0] - ref.bits[l][0]) +
                                                     abs(p.bits[l][1] - ref.bits[l][1]) for l in layers]),
                         "Spearman of bits": self._rank_agreement(vec(p), vec(ref))})
        df = pd.DataFrame(rows)
        rnd = df[df.policy.str.startswith("random")]
        seam = df.set_index("policy").loc["seam-mnist"]
        closer = [policy_label(n) for n, d in zip(df.policy, df["mean |bit diff|"])
                  if not n.startswith("random") and n != "seam-mnist" and d < seam["mean |bit diff|"]]
        self._agree[ex.model_name] = (seam["mean |bit diff|"], rnd["mean |bit diff|"].mean(),
                                      bool(seam["mean |bit diff|"] < rnd["mean |bit diff|"].min()), len(rnd), closer)
        df["policy"] = df["policy"].map(policy_label)
        return self.table(df, {"same (w, a)": "{:.0%}", "mean |bit diff|": "{:.2f}",
                               "Spearman of bits": lambda v: fmt_num(v)},
                          caption=f"{model_label(ex.model_name)}: each policy against the search on the target")

    def agreement_summary(self) -> None:
        """Glue the agreement sentence after :meth:`agreement` ran for every model."""
        for m in self.models:
            if m not in self._agree:
                self.agreement(m)
        glue("agree_text", self.joined(lambda m: f"SEAM {self._agree[m][0]:.2f} against "
                                                 f"{self._agree[m][1]:.2f} for {self._agree[m][3]} random policies"))
        def verdict(m):
            seam, mean, best, _, closer = self._agree[m]
            words = ("closer than every random policy" if best else "closer than the random policies' mean, "
                     "not than every one" if seam < mean else "no closer than random policies")
            return words + (f", but {', '.join(closer)} {'is' if len(closer) == 1 else 'are'} closer still"
                            if closer else ", and closer than every other method")
        glue("agree_verdict", self.joined(verdict))

    @staticmethod
    def _rank_agreement(a: np.ndarray, b: np.ndarray) -> float:
        """Spearman of two bit vectors; NaN (shown n/a) where one is constant (uniform)."""
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            return math.nan
        return report.spearman(a, b)

    def head_fit(self):
        """SEAM's L-GM head and a linear probe on the same frozen features (held-out proxy split),
        per model: the head must reach >= 90% of the probe."""
        import pandas as pd

        rows = []
        for m in self.models:
            h = self.ex(m).head_accuracy()
            head, probe = h.get("seam_proxy_acc"), h.get("linear_probe_acc")
            ratio = head / probe if head is not None and probe else math.nan
            rows.append({"model": model_label(m), "SEAM head": head, "linear probe": probe, "head / probe": ratio,
                         "train: head": h.get("seam_proxy_train_acc"), "train: probe": h.get("linear_probe_train_acc")})
        df = pd.DataFrame(rows)
        by = df.set_index("model")

        def text(m):
            r = by.loc[model_label(m)]
            ratio = f"{r['head / probe']:.0%}" if math.isfinite(r["head / probe"]) else "n/a"
            return f"{fmt_pct(r['SEAM head'], 1)} against {fmt_pct(r['linear probe'], 1)} ({ratio})"

        glue("head_text", self.joined(text))
        ok = all(math.isfinite(r) and r >= HEAD_THRESHOLD for r in df["head / probe"])
        glue("head_verdict", "reaches" if ok else "does not reach")
        glue("head_threshold", f"{HEAD_THRESHOLD:.0%}")
        pct = lambda v: fmt_pct(v, 1)  # noqa: E731  (head_report gives percent)
        return self.table(df, {"SEAM head": pct, "linear probe": pct, "head / probe": "{:.0%}",
                               "train: head": pct, "train: probe": pct})

    # ================================================================== chapter 3
    def main_table(self, model: str):
        """Every policy at ``model``'s main budget: top-1 mean and 95% CI over its per-seed values
        (search seeds x QAT seeds), the paired difference to uniform, BitOps, runs."""
        import pandas as pd

        ex = self.ex(model)
        rows = self.model_rows(model)
        names = [n for n in self.MAIN if n != "seam-mnist-argmax"] + ["random"]
        out = []
        for n in names:
            side = ex.side(n)
            if not len(self.matrix(rows, side)):
                continue
            est = report.mean_ci(self.matrix(rows, side), n_boot=self.p.bootstrap)
            diff = None if n == "uniform" else report.paired_difference(rows, side, "uniform", n_boot=self.p.bootstrap)
            bitops = [r["bitops"] for r in rows if r["policy"] in ([side] if isinstance(side, str) else side)]
            out.append({"policy": policy_label(n), "top-1": est.estimate, "95% CI": report.fmt_ci(est.ci_low, est.ci_high)
                        .replace(" pp", "").replace("+", ""),
                        "vs uniform": "—" if diff is None else f"{report.fmt_pp(diff.estimate)} "
                        f"{report.fmt_ci(diff.ci_low, diff.ci_high).replace(' pp', '')}",
                        "BitOps": float(np.mean(bitops)), "runs": est.n})
        df = pd.DataFrame(out)
        return self.table(df, {"top-1": lambda v: fmt_pct(v), "BitOps": report.fmt_bitops},
                          nowrap=("95% CI", "vs uniform", "BitOps"),
                          caption=f"{model_label(model)} at {budget_label(ex.budget_name)} "
                                  f"({report.fmt_bitops(ex.budget)} BitOps); full precision "
                                  f"{fmt_pct(ex.meta['top1'])}")

    def qat_summary(self, doc: dict) -> None:
        """Glue chapter 3's sentences from claims.json (every model)."""
        by = {(c["model"], c["id"]): c for c in doc["claims"]}

        def claim(m, cid):
            c = by.get((m, cid))
            if c is None:
                return "not run"
            return f"{report.fmt_diff(c['estimate_pp'], c['ci_low'], c['ci_high'])} ({c['verdict']})"

        glue("qat_budgets", self.joined(lambda m: budget_label(self.ex(m).budget_name)))
        glue("qat_fp", self.joined(lambda m: fmt_pct(self.ex(m).meta["top1"])))
        glue("qat_seam_uniform", self.joined(lambda m: f"{claim(m, 'seam-vs-uniform')} at {budget_label(self.ex(m).budget_name)}"))
        glue("qat_proxy_target", self.joined(lambda m: f"{claim(m, 'proxy-vs-target')} at {budget_label(self.ex(m).budget_name)}"))
        glue("qat_seeds", str(len(self.p.qat_seeds)))
        def seeds(m):
            n = len({r["search_seed"] for r in self.model_rows(m) if r["policy"] == "seam-mnist"})
            return f"{n} (extended: the CI rule of the protocol)" if n > len(self.p.search_seeds) else str(n)
        glue("qat_search_seeds", self.joined(seeds))
        glue("qat_n_random", str(self.p.n_random))

    def paper_table(self, model: str):
        """The paper's Table 2 (MobileNetV1, ImageNet) beside our policies at ``model``'s main budget:
        top-1 and the gain over uniform precision."""
        import pandas as pd

        rows = self.model_rows(model)
        t = PAPER["table2"]
        base = t["LSQ uniform W3A3"][0]
        out = []
        for method, ours in PAPER_ROWS.items():
            top, bitops, _ = t[method]
            row = {"paper method": method, "paper top-1": fmt_pct(top, 1),
                   "paper vs uniform": "—" if method.startswith("LSQ") else report.fmt_pp(top - base, 1),
                   "ours": (f"uniform {budget_label(self.ex(model).budget_name)}" if ours == "uniform" else
                            policy_label(ours) if ours else "chapter 4 (joint search)"), "ours vs uniform": "—"}
            if ours and len(self.matrix(rows, ours)):
                if ours != "uniform":
                    d = report.paired_difference(rows, ours, "uniform", n_boot=self.p.bootstrap)
                    row["ours vs uniform"] = report.fmt_diff(d.estimate, d.ci_low, d.ci_high)
            out.append(row)
        return self.table(pd.DataFrame(out), nowrap=("paper top-1", "paper vs uniform", "ours vs uniform"),
                          caption=f"{model_label(model)} at {budget_label(self.ex(model).budget_name)}: each row "
                                  "of the paper's Table 2 (MobileNetV1 on ImageNet) beside our policy in the same role")

    def sweep_points(self, model: str | None = None) -> list[dict]:
        """Per sweep budget and policy: mean BitOps and top-1 with 95% CI (report.mean_ci)."""
        model = model or self.p.sweep_models()[0]
        pts = []
        for b in self.p.sweep_budgets:
            rows = self.model_rows(model, b)
            for n in ("seam-mnist", "target-fmnist", "uniform"):
                m = self.matrix(rows, n)
                if not len(m):
                    continue
                est = report.mean_ci(m, n_boot=self.p.bootstrap) if np.isfinite(m).sum() > 1 else \
                    report.Estimate(float(np.nanmean(m)), math.nan, math.nan, 1)
                bitops = float(np.mean([r["bitops"] for r in rows if r["policy"] == n]))
                pts.append({"budget": b, "policy": n, "bitops": bitops, "top1": est.estimate, "lo": est.ci_low,
                            "hi": est.ci_high})
        return pts

    def show_sweep(self, model: str | None = None) -> None:
        """Top-1 against BitOps with 95% CIs, each budget searched on its own (left), beside the
        paper's ResNet-18 curves read off the poster (right)."""
        import matplotlib.pyplot as plt

        model = model or self.p.sweep_models()[0]
        pts = self.sweep_points(model)
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.4), gridspec_kw={"width_ratios": [3, 2]})
        style = {n: (METHOD_COLOURS[n], mk) for n, mk in (("seam-mnist", "o"), ("target-fmnist", "s"), ("uniform", "^"))}
        for n, (c, mk) in style.items():
            p = sorted((q for q in pts if q["policy"] == n), key=lambda q: q["bitops"])
            if not p:
                continue
            x = np.array([q["bitops"] / 1e6 for q in p])
            y = np.array([q["top1"] for q in p])
            err = np.array([[q["top1"] - q["lo"], q["hi"] - q["top1"]] for q in p]).T
            err = np.where(np.isfinite(err), err, 0)
            ax.errorbar(x, y, yerr=err, color=c, marker=mk, capsize=3, label=policy_label(n),
                        ls="-" if n != "uniform" else ":")
        ticks = {}
        for q in pts:
            ticks.setdefault(q["budget"], []).append(q["bitops"] / 1e6)
        ax.set_xticks([float(np.median(v)) for v in ticks.values()],
                      [f"{budget_label(b)}\n{np.median(v):.0f}" for b, v in ticks.items()])
        ax.set_xlabel("budget and BitOps (M)")
        ax.set_ylabel("top-1 after QAT (%)")
        ax.set_title(f"ours: {model_label(model)}, Fashion-MNIST")
        for key, c, mk, lab in (("resnet18_seam", METHOD_COLOURS["paper-seam"], "D", "SEAM (paper)"),
                                ("resnet18_edmips", METHOD_COLOURS["paper-edmips"], "v", "EdMIPS (paper)")):
            g, a = zip(*PAPER[key])
            ax2.plot(g, a, color=c, marker=mk, label=lab)
        ax2.set_xlabel("BitOps (G)")
        ax2.set_ylabel("top-1, ImageNet (%)")
        ax2.set_title("paper: ResNet-18, ImageNet")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        fig.legend(h1 + h2, l1 + l2, loc="outside lower center", ncols=3, frameon=False)
        plt.show()
        seam = [q for q in pts if q["policy"] == "seam-mnist"]
        unif = {q["budget"]: q for q in pts if q["policy"] == "uniform"}
        gains = [(q["budget"], q["top1"] - unif[q["budget"]]["top1"]) for q in seam if q["budget"] in unif]
        glue("sweep_model", model_label(model))
        glue("sweep_budgets", ", ".join(budget_label(b) for b in self.p.sweep_budgets))
        glue("sweep_gain", "; ".join(f"{budget_label(b)} {report.fmt_pp(g)}" for b, g in gains) if gains else "n/a")
        glue("sweep_seeds", str(len(self.p.sweep_qat_seeds)))

    def power_rows(self) -> list[dict]:
        """Seed SD and policy SD (random policies) per model and budget: the pilot's budgets where
        pilot.json exists, the main and second budget otherwise."""
        out = []
        pilot = self.p.path("pilot.json")
        if pilot.exists():
            doc = read_json(pilot)
            for m, per in doc.get("budgets", {}).items():
                if m not in self.models:
                    continue
                by_cost: dict = {}  # budgets of equal Bitops (W3A2, W2A3) share their random policies: one row
                for b, v in per.items():
                    by_cost.setdefault(v.get("bitops", b), []).append((b, v))
                out += [{"model": m, "budget": same[0][0], "names": [b for b, _ in same],
                         "seed_sd": same[0][1]["seed_sd_pp"], "policy_sd": same[0][1]["policy_sd_pp"], "source": "pilot"}
                        for same in by_cost.values()]
        seen = {(r["model"], b) for r in out for b in r["names"]}
        for m in self.models:
            ex = self.ex(m)
            for b in dict.fromkeys((ex.budget_name, self.p.second_budget)):
                if (m, b) in seen:
                    continue
                try:
                    pw = ex.power(self.runs(), b)
                except Exception:  # no random runs at this budget
                    continue
                out.append({"model": m, "budget": b, "names": [b], "seed_sd": pw.seed_sd_pp,
                            "policy_sd": pw.policy_sd_pp, "source": "protocol"})
        return out

    def show_power(self) -> None:
        """Seed SD against policy SD (random policies) per model and budget; the rule asks 2x."""
        import matplotlib.pyplot as plt

        rows = self.power_rows()
        labels = [f"{model_label(r['model'])}\n{' / '.join(budget_label(b) for b in r['names'])}" for r in rows]
        x = np.arange(len(rows))
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.2))
        ax.bar(x - 0.2, [r["seed_sd"] for r in rows], 0.4, label="seed SD (same policy, QAT seeds)", color="C7")
        ax.bar(x + 0.2, [r["policy_sd"] for r in rows], 0.4, label="policy SD (random policies)", color="C0")
        ax.set_xticks(x, labels, fontsize=9)
        ax.set_ylabel("SD of top-1 (pp)")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        plt.show()
        main = [{**r, "budget": self.ex(r["model"]).budget_name} for r in rows
                if self.ex(r["model"]).budget_name in r["names"]]
        glue("power_ratios", "; ".join(f"{model_label(r['model'])} {budget_label(r['budget'])}: "
                                       f"{fmt_ratio(r['policy_sd'] / r['seed_sd'] if r['seed_sd'] else math.nan, 2)} "
                                       f"(in the {'pilot' if r['source'] == 'pilot' else 'protocol run'})"
                                       for r in main) or "n/a")

    def claims(self) -> dict:
        """claims.json of the profile, computed from the per-seed runs (mpqlib.report)."""
        ensure(self.p, parts=("protocol", "sweep", "claims"))
        return read_json(self.p.path("claims.json"))

    def show_control(self, doc: dict | None = None) -> None:
        """The positive control and SEAM's comparisons, per model: paired differences with CIs."""
        import matplotlib.pyplot as plt

        doc = doc or self.claims()
        ids = ["positive-control", "proxy-vs-target", "seam-vs-uniform", "seam-vs-ce"]
        cl = [c for c in doc["claims"] if c["id"] in ids]
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.35 * len(cl) + 1.3))
        y = np.arange(len(cl))[::-1]
        for yi, c in zip(y, cl):
            col = "C3" if c["id"] == "positive-control" else "C0"
            ax.errorbar(c["estimate_pp"], yi, xerr=[[c["estimate_pp"] - c["ci_low"]], [c["ci_high"] - c["estimate_pp"]]],
                        fmt="o", color=col, capsize=3)
        ax.axvline(0, color="grey", lw=1)
        ax.axvspan(-report.MARGIN_PP, report.MARGIN_PP, color="grey", alpha=0.12, lw=0)
        ax.set_yticks(y, [f"{model_label(c['model'])}: {claim_label(c['id'])}" for c in cl])
        ax.set_xlabel(f"paired difference in top-1 (pp), {report.LEVEL:.0%} CI; shaded: ±{report.MARGIN_PP:g} pp")
        plt.show()
        pc = self.controls(doc)
        glue("control_text", "; ".join(f"{model_label(m)}: {report.fmt_diff(c['estimate_pp'], c['ci_low'], c['ci_high'])} "
                                       f"({c['verdict']})"
                                       for m, c in pc.items()) or "not run")
        glue("control_power", self.joined(lambda m: self.power_verdict(m, pc.get(m)), list(pc) or None))

    @staticmethod
    def controls(doc: dict) -> dict[str, dict]:
        """The positive-control claim of claims.json, by model."""
        return {c["model"]: c for c in doc["claims"] if c["id"] == "positive-control"}

    def power_verdict(self, model: str, control: dict | None) -> str:
        """Both power checks of ``model`` in words: the pilot's rule (policy SD >= 2x seed SD) and the
        positive control of the protocol run; where they disagree the sentence says so."""
        pilot = self.p.path("pilot.json")
        doc = read_json(pilot) if pilot.exists() else {}
        main = self.ex(model).budget_name
        ratio = doc.get("budgets", {}).get(model, {}).get(main, {}).get("ratio")
        powered = bool(doc.get("power", {}).get(model))
        passed = control is not None and control["ci_low"] > 0
        if ratio is None:
            pilot_words = "no pilot ratio"
        else:
            pilot_words = (f"pilot ratio {fmt_ratio(ratio)} "
                           + ("(≥ 2: powered by the pre-registered rule)" if powered
                              else "(< 2: underpowered by the pre-registered rule)"))
        control_words = "the positive control passes" if passed else "the positive control fails (no power)"
        if ratio is not None and passed != powered:
            control_words += (" nevertheless" if passed else "") + \
                "; read its other claims with the pilot's verdict in mind"
        return f"{pilot_words}, {control_words}"

    # ================================================================== chapter 4
    def efficiency(self) -> dict:
        """results_dir/efficiency.json (written by the full run), computed if missing."""
        path = self.p.path("efficiency.json")
        if not path.exists():
            ensure(self.p, parts=("efficiency",))
        eff = read_json(path)
        glue("eff_model", model_label(eff.get("model") or self.p.efficiency_model()))
        return eff

    EFF_NAMES = {"seam": "SEAM on the proxy", "target-equal-epochs": "target, equal epochs",
                 "target-equal-steps": "target, equal steps", "joint": "joint weights + bits (FracBits class)",
                 "evaluation": "evaluation-based", "orthogonality": "orthogonality (OMPQ class), proxy",
                 "orthogonality-target": "orthogonality, target", "limpq": "LIMPQ", "hawq": "HAWQ"}

    def efficiency_tables(self, eff: dict):
        """(methods table, ratios table): cost and QAT accuracy of every class of search; measured
        ratios to SEAM beside the paper's (a contended figure is flagged, not given as a result)."""
        import pandas as pd

        rows = []
        fp = eff.get("fp_train_seconds")
        for name, m in eff["methods"].items():
            why = (eff.get("contention") or {}).get(name)
            whole = self.pipeline_seconds(fp, m)
            rows.append({"method": self.EFF_NAMES.get(name, name), "top-1": fmt_pct(m.get("top1_mean")),
                         "95% CI": report.fmt_ci(m["ci_low"], m["ci_high"]).replace(" pp", "").replace("+", "")
                         if m.get("ci_low") is not None else "n/a",
                         "BitOps": report.fmt_bitops(m["bitops"]) if m.get("bitops") else "n/a",
                         "search time": report.fmt_seconds(m["seconds"]) if m.get("seconds") is not None else "n/a",
                         "whole pipeline": report.fmt_seconds(whole) if whole is not None else "n/a",
                         "memory (MB)": self.memory_text(m),
                         "measured alone": "no (contended)" if why else "yes"})
        seam_m = eff["methods"].get("seam", {})
        whole = self.pipeline_seconds(fp, seam_m)
        glue("eff_pipeline", (f"{seam_m['seconds'] / whole:.0%} of SEAM's whole pipeline (full-precision training "
                              f"{report.fmt_seconds(fp)}, search, QAT {report.fmt_seconds(seam_m['qat_seconds'])})")
             if whole else "not measured in this run")
        paper = {"joint/seam": fmt_ratio(PAPER["joint_over_seam"]),
                 "limpq/seam": "{:g}-{:g}x".format(*PAPER["limpq_over_seam"])}
        rat = []
        for key, r in eff.get("ratios", {}).items():
            val = fmt_ratio(r["value"]) if r.get("value") is not None else \
                (f"{fmt_ratio(r['contended_value'])} (contended)" if r.get("contended_value") is not None else "n/a")
            a = key.split("/")[0]
            rat.append({"search": self.EFF_NAMES.get(a, a), "cost / SEAM (ours)": val,
                        "paper": paper.get(key, "—")})
        ratios = eff.get("ratios", {})
        def measured(key: str) -> str:
            r = ratios.get(key) or {}
            if r.get("value") is not None:
                return fmt_ratio(r["value"])
            if r.get("contended_value") is not None:
                return f"{fmt_ratio(r['contended_value'])} (measured under contention)"
            return "not measured"

        glue("eff_eval_ratio", measured("evaluation/seam"))
        glue("eff_joint_ratio", measured("joint/seam"))
        glue("eff_target_ratio", measured("target-equal-epochs/seam"))
        glue("eff_limpq_ratio", measured("limpq/seam"))
        glue("eff_machine", str(eff.get("machine") or "this machine"))
        sf, mem = eff.get("startup_fraction"), eff.get("search_vs_fp_peak_memory")
        glue("eff_startup", f"{sf:.0%} of a one-epoch proxy search" if sf is not None else "not measured in this run")
        glue("eff_memory", f"{fmt_ratio(mem, 2)} the peak of a full-precision training step" if mem is not None
             else "not measured in this run")
        seam = eff["methods"].get("seam", {})
        glue("eff_seam_seconds", report.fmt_seconds(seam["seconds"]) if seam.get("seconds") is not None else "n/a")
        glue("eff_all_rows", "; ".join(
            f"{self.EFF_NAMES.get(n, n)} {measured(f'{n}/seam') if n != 'seam' else '1x'} at "
            f"{fmt_pct(m.get('top1_mean'))}" for n, m in eff["methods"].items()))
        glue("eff_seam_top1", fmt_pct(seam.get("top1_mean")))
        return self.table(pd.DataFrame(rows)), self.table(pd.DataFrame(rat))

    @staticmethod
    def memory_text(m: Mapping) -> str:
        """The process's peak resident memory during the search, and what the search itself added
        to what the process already held (recorded from protocol version 3 on)."""
        if m.get("peak_mb") is None:
            return "n/a"
        return f"{m['peak_mb']:,.0f}" + (f" (+{m['added_mb']:,.0f})" if m.get("added_mb") is not None else "")

    @staticmethod
    def pipeline_seconds(fp: float | None, m: Mapping) -> float | None:
        """Full-precision training + the search + one QAT run (mean over seeds): what a user pays
        for a policy, of which the search is the part the paper's cost ratios compare."""
        if fp is None or m.get("seconds") is None or m.get("qat_seconds") is None:
            return None
        return fp + m["seconds"] + m["qat_seconds"]

    def show_cost_accuracy(self, eff: dict) -> None:
        """Search cost (log) against the QAT top-1 of the policy found, with 95% CIs; one marker per
        class of search, contended costs hollow."""
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 4.6))
        markers = "osD^vP*Xh"
        for i, (name, m) in enumerate(eff["methods"].items()):
            if m.get("seconds") is None or m.get("top1_mean") is None:
                continue
            lo, hi = m.get("ci_low"), m.get("ci_high")
            err = [[m["top1_mean"] - lo], [hi - m["top1_mean"]]] if lo is not None else None
            contended = bool((eff.get("contention") or {}).get(name))
            ax.errorbar(max(m["seconds"], 1e-2), m["top1_mean"], yerr=err, fmt=markers[i % len(markers)],
                        color=f"C{i}", mfc="none" if contended else f"C{i}", capsize=3, ms=7,
                        label=self.EFF_NAMES.get(name, name))
        ax.set_xscale("log")
        if any((eff.get("contention") or {}).values()):
            ax.set_title("hollow: cost measured while other jobs shared the cores")
        ax.set_xlabel("search wall time (s, log scale)")
        ax.set_ylabel("top-1 after QAT (%)")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        plt.show()

    @staticmethod
    def ci_errors(points: list[dict]) -> np.ndarray:
        """Error bars (2 x n) from each point's 95% CI around its mean; 0 where a point has none."""
        err = [[p["top1_mean"] - p["ci_low"], p["ci_high"] - p["top1_mean"]] if p.get("ci_low") is not None
               else [0.0, 0.0] for p in points]
        return np.array(err, float).T

    def show_curves(self, eff: dict) -> None:
        """Search length (SEAM and the target search read out after N epochs) and proxy size
        (images per class) against the QAT top-1 of the policy and the search time."""
        import matplotlib.pyplot as plt
        from matplotlib.ticker import NullFormatter

        fig, (a1, a2) = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.3))
        curve = eff.get("search_length") or {}
        for kind, c in (("seam", "C3"), ("target", "C0")):
            pts = sorted(((int(k.split("@")[1]), v) for k, v in curve.items() if k.startswith(kind + "@")))
            if pts:
                x = [v["seconds"] for _, v in pts]
                y = [v["top1_mean"] for _, v in pts]
                a1.errorbar(x, y, yerr=self.ci_errors([v for _, v in pts]), capsize=3, marker="o", color=c, label=self.EFF_NAMES["seam" if kind == "seam" else
                                                                         "target-equal-epochs"].split(",")[0])
                for (n, _), xi, yi in zip(pts, x, y):
                    a1.annotate(f"{n} ep", (xi, yi), textcoords="offset points", xytext=(0, 6), fontsize=8,
                                ha="center", color=c)
        a1.set_xscale("log")
        a1.xaxis.set_minor_formatter(NullFormatter())
        a1.set_xlabel("search time (s, log)")
        a1.set_ylabel("top-1 after QAT (%)")
        a1.set_title("search length")
        sizes = sorted(((int(k), v) for k, v in (eff.get("proxy_size") or {}).items()))
        if sizes:
            a2.errorbar([n for n, _ in sizes], [v["top1_mean"] for _, v in sizes], capsize=3,
                        yerr=self.ci_errors([v for _, v in sizes]), marker="o", color="C3", label="top-1 (95% CI)")
            a2.set_ylabel("top-1 after QAT (%)")
            tw = a2.twinx()
            tw.plot([n for n, _ in sizes], [v["seconds"] for _, v in sizes], marker="s", ls=":", color="C7")
            tw.set_ylabel("search time (s)", color="C7")
            tw.spines["right"].set_visible(True)
            a2.set_xscale("log")
            a2.xaxis.set_minor_formatter(NullFormatter())
        a2.set_xlabel("proxy images per class (log)")
        a2.set_title("proxy size")
        fig.legend(loc="outside lower center", ncols=2, frameon=False)
        plt.show()

    def projection_table(self, eff: dict):
        """The cost model's ImageNet ratios to SEAM per architecture beside the paper's, and the
        factors each ratio is made of (MobileNetV1)."""
        import pandas as pd

        proj = eff.get("imagenet") or {}
        archs = proj.get("archs", {})
        paper = {"joint/seam": fmt_ratio(PAPER["joint_over_seam"]),
                 "limpq/seam": "{:g}-{:g}x".format(*PAPER["limpq_over_seam"])}
        keys = sorted({k for a in archs.values() for k in a.get("ratios", {})})
        rows = []
        for k in keys:
            a = k.split("/")[0]
            rows.append({"search": self.EFF_NAMES.get(a, a),
                         **{f"{model_label(arch)} (projected)": fmt_ratio(archs[arch]["ratios"].get(k))
                            for arch in archs}, "paper": paper.get(k, "—")})
        fac = []
        first = next(iter(archs.values()), {})
        for k, f in (first.get("factors") or {}).items():
            if f:
                a = k.split("/")[0]
                fac.append({"search": self.EFF_NAMES.get(a, a), "data size": fmt_ratio(f["data_size"], 2),
                            "epochs": fmt_ratio(f["epochs"], 2), "frozen backbone": fmt_ratio(f["frozen_backbone"], 2),
                            "method": fmt_ratio(f["method"], 2)})
        mb = archs.get("mobilenetv1", first).get("ratios", {})
        glue("proj_joint", fmt_ratio(mb.get("joint/seam")))
        glue("proj_limpq", fmt_ratio(mb.get("limpq/seam")))
        glue("proj_eval", fmt_ratio(mb.get("evaluation/seam")))
        implied = archs.get("mobilenetv1", first).get("implied_joint_epochs")
        glue("proj_implied_epochs", f"about {implied:.0f}" if implied else "n/a")
        share = (proj.get("assumptions") or {}).get("proxy_share", {}).get("value")
        glue("proj_proxy_share", f"{share:.0%}" if share is not None else "n/a")
        glue("proj_verdict", self.cost_verdict(mb))
        missing = proj.get("missing") or {}
        glue("proj_missing", ", ".join(missing) + " (their projections are n/a; the reasons are in efficiency.json)"
             if missing else "none")
        return self.table(pd.DataFrame(rows)), self.table(pd.DataFrame(fac))

    @staticmethod
    def cost_verdict(ratios: Mapping) -> str:
        """The cost claim judged on the projection: each of the paper's ratios against ours (within a
        factor of 2 counts as agreeing; the projection rests on stated assumptions, not on runs)."""
        parts = []
        for key, paper, who in (("joint/seam", (PAPER["joint_over_seam"],) * 2, "joint (FracBits class)"),
                                ("limpq/seam", PAPER["limpq_over_seam"], "LIMPQ")):
            ours = ratios.get(key)
            if ours is None:
                parts.append(f"{who}: not projected")
                continue
            lo, hi = paper
            if lo / 2 <= ours <= hi * 2:
                word = "agrees within a factor of 2 with"
            elif ours < lo:
                word = f"is {lo / ours:.1f} times below"
            else:
                word = f"is {ours / hi:.1f} times above"
            paper_text = fmt_ratio(lo) if lo == hi else f"{lo:g}-{hi:g}x"
            parts.append(f"{who} over SEAM, projected {fmt_ratio(ours)}, {word} the paper's {paper_text}")
        return "; ".join(parts)

    def transfer_table(self, eff: dict):
        """The per-image ratios the projection carries to ImageNet (assumption per_image_transfers),
        as measured by the harness here (CPU, 28 x 28) beside the same ratios measured at 224 x 224
        on a GPU (benchmarks/bench_gpu_steps.py; its committed results, benchmarks/gpu_steps-*.json)."""
        import pandas as pd

        per = (eff.get("imagenet") or {}).get("per_image_seconds", {})
        frozen = per.get("frozen")
        rows = {"joint step / search step": ("unfrozen", "joint"),
                "QAT step / search step": ("finetune", "qat"),
                "forward pass / search step": ("forward", "eval")}
        cols = {f"{model_label(eff.get('model') or self.p.efficiency_model())}, here, 28 px":
                {k: (per[c] / frozen if per.get(c) is not None and frozen else None) for k, (c, _) in rows.items()}}
        devices = []
        for path in self.p.gpu_step_files():  # the profile's gpu_steps
            g = read_json(path)
            devices.append(g.get("device", path.stem))
            for arch, m in g.get("models", {}).items():
                st = m["steps"]
                cols[f"{arch}, {g.get('device', 'GPU').removeprefix('NVIDIA ')}, {g.get('size', 224)} px"] = {
                    k: st[gk]["ms_per_step"] / st["search"]["ms_per_step"] for k, (_, gk) in rows.items()}
        table = [{"per-image cost": k, **{c: fmt_ratio(v[k], 2) for c, v in cols.items()}} for k in rows]
        here = next(iter(cols))
        table[-1][here] += " (assumed)"  # the harness measures no bare forward pass: efficiency's forward_share
        glue("transfer_devices", ", ".join(dict.fromkeys(devices)) if devices else "no GPU measurement committed")
        return self.table(pd.DataFrame(table))

    # ================================================================== chapter 5
    def correlations(self) -> list[dict]:
        """Chapter 5's result for each of its models (the profile's ``correlation_on``)."""
        glue("corr_models", " and ".join(model_label(m) for m in self.p.correlation_models()))
        return [self.correlation(m) for m in self.p.correlation_models()]

    def correlation(self, model: str | None = None) -> dict:
        """Chapter 5's result for ``model`` (cached steps; :meth:`Experiments.correlation`)."""
        ensure(self.p, parts=("correlation",))
        return self.ex(model).correlation()

    PREDICTORS = {"fisher_ratio": "Fisher ratio on the proxy", "-normalised_compactness": "compactness on the proxy (negated)",
                  "ptq_top1_target": "target top-1 before fine-tuning (trivial)", "mean_bits": "mean bits (trivial)"}

    def correlation_table(self, corr: dict):
        import pandas as pd

        rows = [{"predictor": self.PREDICTORS.get(k, k), "Spearman": v["rho"],
                 "95% CI": report.fmt_ci(v["ci_low"], v["ci_high"]).replace(" pp", "")}
                for k, v in corr["spearman"].items()]
        nc = corr.get("noise_ceiling")
        if nc:
            rows.append({"predictor": "noise ceiling (a perfect predictor)", "Spearman": nc["ceiling"],
                         "95% CI": report.fmt_ci(nc["ci_low"], nc["ci_high"]).replace(" pp", "")})
        top = np.array([r["top1_mean"] for r in corr["policies"]])
        fr = corr["spearman"].get("fisher_ratio", {})
        self._corr[corr["model"]] = {
            "n": str(corr["n_policies"]), "range": f"{fmt_pct(top.min())} to {fmt_pct(top.max())}",
            "sd": report.fmt_pp(float(np.std(top, ddof=1)), sign=False),
            "fisher": f"{fr.get('rho', math.nan):+.2f} "
                      f"{report.fmt_ci(fr.get('ci_low', math.nan), fr.get('ci_high', math.nan)).replace(' pp', '')}",
            "ptq": f"{corr['spearman'].get('ptq_top1_target', {}).get('rho', math.nan):+.2f}",
            "bits": f"{corr['spearman'].get('mean_bits', {}).get('rho', math.nan):+.2f}",
            "ceiling": f"{nc['ceiling']:.2f}" if nc else "n/a",
            "verdict": "supported (its CI lies above zero)" if fr.get("ci_low", -1) > 0 else
                       "not supported (its CI reaches zero or below)"}
        return self.table(pd.DataFrame(rows), {"Spearman": "{:+.2f}"},
                          caption=f"{model_label(corr['model'])}: {corr['n_policies']} policies at "
                                  f"{budget_label(corr['budget'])}")

    def correlation_summary(self) -> None:
        """Glue chapter 5's sentences after :meth:`correlation_table` ran for every model."""
        for key in ("n", "range", "sd", "fisher", "ptq", "bits", "ceiling", "verdict"):
            glue(f"corr_{key}", self.joined(lambda m: self._corr[m][key], self._corr))

    def show_correlation(self, corr: dict) -> None:
        """Top-1 after QAT (mean over seeds) against the proxy's Fisher ratio after BN
        recalibration (left) and against the target top-1 before fine-tuning (right)."""
        import matplotlib.pyplot as plt

        pol = corr["policies"]
        fig, axes = plt.subplots(1, 2, figsize=(FIG_WIDTH, 3.2), sharey=True)
        for ax, k, lab in ((axes[0], "fisher_ratio", "Fisher ratio on the proxy"),
                           (axes[1], "ptq_top1_target", "target top-1 before QAT (%)")):
            kinds = [("target search, mixed", "C0", [r for r in pol if r["policy"].startswith("mix")]),
                     ("random", "C7", [r for r in pol if r["policy"].startswith("random")]),
                     ("uniform", "k", [r for r in pol if r["policy"] == "uniform"])]
            for lab2, c, rs in kinds:
                ax.scatter([r[k] for r in rs], [r["top1_mean"] for r in rs], s=16, color=c, label=lab2)
            ax.set_xlabel(lab)
        axes[0].set_ylabel("top-1 after QAT (%)")
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3, frameon=False)
        fig.suptitle(f"{model_label(corr['model'])}, {corr['n_policies']} policies at {budget_label(corr['budget'])}")
        plt.show()

    # ================================================================== chapter 6
    def claims_tables(self, doc: dict):
        """One table per model: claim, the paper's number (and where), ours (paired difference, 95%
        CI), the verdict with its stance, and the caveat of an underpowered model on every row."""
        import pandas as pd

        pilot_path = self.p.path("pilot.json")
        pilot = read_json(pilot_path) if pilot_path.exists() else None
        out = {}
        for m in dict.fromkeys(c["model"] for c in doc["claims"]):
            rows = [{k: v for k, v in r.items() if k != "id"} for r in claims_rows(doc, m, pilot)]
            budget = next(c["budget"] for c in doc["claims"] if c["model"] == m)
            out[m] = self.table(pd.DataFrame(rows), caption=f"{model_label(m)} at {budget_label(budget)}",
                                nowrap=("ours",))
        return out

    @staticmethod
    def stance(claim: dict) -> str | None:
        """What ``claim``'s verdict says about the paper: "supports", "contradicts" or "undecided"
        (:data:`PAPER_STANCE`); None for the positive control, a check of the design, not a claim."""
        if claim["id"] not in PAPER_STANCE:
            return None
        supports, contradicts = PAPER_STANCE[claim["id"]]
        verdict = claim["verdict"].split(" (")[0]
        return "supports" if verdict in supports else "contradicts" if verdict in contradicts else "undecided"

    def claims_summary(self, doc: dict) -> None:
        """Glue the sentences of the closing section: what was and was not reproduced."""
        def names(stance):
            return "; ".join(f"{model_label(c['model'])}, {claim_label(c['id'])} ({c['verdict']})"
                             for c in doc["claims"] if self.stance(c) == stance) or "none"

        glue("claims_yes", names("supports"))
        glue("claims_no", names("contradicts"))
        glue("claims_open", names("undecided"))
        glue("claims_n", str(len(doc["claims"])))
        heads = doc.get("head", {})
        models = [m for m in self.models if m in heads] if isinstance(heads, dict) else []

        def head(m):
            h = heads[m]
            if h.get("seam_proxy_acc") is None or not h.get("linear_probe_acc"):
                return "not measured"
            return (f"{h['seam_proxy_acc']:.1f}% against {h['linear_probe_acc']:.1f}% "
                    f"({h['seam_proxy_acc'] / h['linear_probe_acc']:.0%})")
        glue("claims_head", self.joined(head, models) if models else "not measured")
        pw = doc.get("power", {})
        pc = self.controls(doc)
        pmodels = [m for m in self.models if m in pw]

        def power(m):
            p = pw[m]
            return (f"policy SD {report.fmt_pp(p['policy_sd_pp'], sign=False)} against seed SD "
                    f"{report.fmt_pp(p['seed_sd_pp'], sign=False)} in the protocol run; "
                    + self.power_verdict(m, pc.get(m)))
        glue("claims_power", self.joined(power, pmodels) if pmodels else "n/a")


__all__ = ["PAPER", "PAPER_ROWS", "LABELS", "CLAIM_TEXT", "PAPER_STANCE", "Chapter", "Observation", "setup_display", "glue",
           "fmt_pct", "fmt_ratio", "policy_label", "model_label", "budget_label", "CLAIMS"]
