"""Chapter 1's tables and figures (the observation): what quantization does to the penultimate
features, on the target and on the proxy, for FP, uniform and two mixed policies."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import display
from ..study import ranks, report
from .display import FIG_WIDTH, budget_label, fmt_num, fmt_pct
from ..study.experiments import Experiments
from .results import Reader


@dataclass
class Observation:
    """Chapter 1: per model (FP, uniform, two mixed) and dataset the discriminability metrics."""

    rows: list[dict]
    embedding: dict = field(repr=False)    # (model name, dataset) -> (2-D t-SNE of the features, labels)
    models: list[str]

    def frame(self, data: str):
        import pandas as pd

        return pd.DataFrame([r for r in self.rows if r["data"] == data])


class ObservationChapter(Reader):
    """Chapter 1: the observation's metrics, tables and figures."""

    def observation(self, model: str | None = None) -> Observation:
        """FP, uniform W8A8/W4A4/W3A3/W2A2 and two mixed policies at the main budget (SEAM's and a
        deliberately poor one), each after the common QAT (seed 0); metrics of the pooled
        penultimate features on target and proxy test images (one cached step,
        :meth:`Experiments.observation`)."""
        ex = self.r.ex(model)
        doc = ex.observation()
        embedding = {tuple(k.rsplit("|", 1)): (np.array(xy), np.array(doc["labels"][k.rsplit("|", 1)[1]]))
                     for k, xy in doc["embedding"].items()}
        obs = Observation(doc["rows"], embedding, doc["models"])
        self._glue_observation(obs, ex)
        return obs

    def _glue_observation(self, obs: Observation, ex: Experiments) -> None:
        t, p = obs.frame("target").set_index("model"), obs.frame("proxy").set_index("model")
        display.glue("obs_budget", budget_label(ex.budget_name))
        display.glue("obs_n_points", f"{self.p.n_points:,}")
        for name, key in (("FP", "fp"), ("W3A3", "w3a3"), ("W2A2", "w2a2"), ("mixed, SEAM", "good"),
                          ("mixed, poor", "poor")):
            display.glue(f"obs_margin_{key}", fmt_num(t.loc[name, "logit_margin"]))
            display.glue(f"obs_fisher_target_{key}", fmt_num(t.loc[name, "fisher_ratio"]))
            display.glue(f"obs_fisher_proxy_{key}", fmt_num(p.loc[name, "fisher_ratio"]))
            display.glue(f"obs_top1_{key}", fmt_pct(t.loc[name, "top1"]))
        rho_t = ranks.spearman(t["fisher_ratio"], t["top1"])
        rho_p = ranks.spearman(p.loc[t.index, "fisher_ratio"], t["top1"])
        rho_m = ranks.spearman(t["logit_margin"], t["top1"])
        display.glue("obs_rho_margin", fmt_num(rho_m))
        display.glue("obs_rho_fisher_target", fmt_num(rho_t))
        display.glue("obs_rho_fisher_proxy", fmt_num(rho_p))
        display.glue("obs_n_models", str(len(t)))
        display.glue("obs_margin_verdict", self.margin_trend(t["logit_margin"]))
        display.glue("obs_proxy_verdict", "lowers" if p.loc["W2A2", "fisher_ratio"] < p.loc["FP", "fisher_ratio"] else
                     "does not lower")

    @staticmethod
    def margin_trend(margin) -> str:
        """Does the target margin fall with every step down in bits (FP, W8A8, W4A4, W3A3, W2A2)?
        Computed, with each exception named."""
        steps = [n for n in ("FP", "W8A8", "W4A4", "W3A3", "W2A2") if n in margin.index]
        up = [(a, b) for a, b in zip(steps, steps[1:]) if margin[b] >= margin[a]]
        if not up:
            return "falls with every step down in bits"
        first, last = steps[0], steps[-1]
        overall = (f"falls from {first} to {last} overall" if margin[last] < margin[first] else
                   f"does not fall from {first} to {last} ({fmt_num(margin[last])} against {fmt_num(margin[first])})")
        return (f"{overall}, but not at every step: "
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


__all__ = ["Observation", "ObservationChapter"]
