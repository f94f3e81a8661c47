"""Chapter 5's tables and figures (discriminability): how well the proxy's Fisher ratio and the
trivial predictors rank policies by their top-1 after QAT (Spearman with CIs, the noise ceiling)."""

from __future__ import annotations

import math

import numpy as np

from . import display
from ..study import report
from .display import FIG_WIDTH, budget_label, fmt_pct, model_label
from .results import Reader


class DiscriminabilityChapter(Reader):
    """Chapter 5: the correlations in tables, sentences and a figure."""

    PREDICTORS = {"fisher_ratio": "Fisher ratio on the proxy", "-normalised_compactness": "compactness on the proxy (negated)",
                  "ptq_top1_target": "target top-1 before fine-tuning (trivial)", "mean_bits": "mean bits (trivial)"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._corr: dict[str, dict] = {}  # per model: the numbers correlation_summary quotes, by correlation_table

    def correlations(self) -> list[dict]:
        """Chapter 5's result for each of its models (the profile's ``correlation_on``)."""
        display.glue("corr_models", " and ".join(model_label(m) for m in self.p.correlation_models()))
        return [self.r.correlation(m) for m in self.p.correlation_models()]

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
            "verdict": self.corr_verdict(corr["spearman"])}
        return self.table(pd.DataFrame(rows), {"Spearman": "{:+.2f}"},
                          caption=f"{model_label(corr['model'])}: {corr['n_policies']} policies at "
                                  f"{budget_label(corr['budget'])}")

    @staticmethod
    def corr_verdict(spearman: dict) -> str:
        """The assumption (the proxy's Fisher ratio predicts top-1 after QAT) in the words its CI
        allows: "supported" only where the CI lies above zero, "contradicted" where it lies below,
        "not shown" where it reaches zero; and, where a trivial predictor (target top-1 before QAT,
        mean bits) ranks the policies better, that predictor is named."""
        fr = spearman.get("fisher_ratio", {})
        lo, hi = fr.get("ci_low", math.nan), fr.get("ci_high", math.nan)
        words = ("supported (its CI lies above zero)" if lo > 0 else
                 "contradicted (its CI lies below zero)" if hi < 0 else
                 "not shown (its CI reaches zero)")
        rho = fr.get("rho", math.nan)
        better = [f"{name} ({spearman[k]['rho']:+.2f})" for k, name in
                  (("ptq_top1_target", "the target top-1 before fine-tuning"), ("mean_bits", "the mean bits"))
                  if k in spearman and math.isfinite(rho) and spearman[k].get("rho", -math.inf) > rho]
        return words + (f"; {' and '.join(better)} rank{'s' if len(better) == 1 else ''} the policies better"
                        if better else "")

    def correlation_summary(self) -> None:
        """Glue chapter 5's sentences after :meth:`correlation_table` ran for every model."""
        for key in ("n", "range", "sd", "fisher", "ptq", "bits", "ceiling", "verdict"):
            display.glue(f"corr_{key}", self.r.joined(lambda m: self._corr[m][key], self._corr))

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


__all__ = ["DiscriminabilityChapter"]
