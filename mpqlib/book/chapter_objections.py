"""Chapter 7's presentation: the three first objections to a "not reproduced" (a tuned SEAM, a
converged QAT, proxies ordered by distance), read from ``objections.json`` and ``claims.json``
(computed by :mod:`mpqlib.study.objections`; nothing here computes a step)."""

from __future__ import annotations

import numpy as np

from . import display
from ..study import report
from . import chapter_robustness as robustness
from .results import Reader
from .display import FIG_WIDTH, model_label, policy_label
from .verdicts import OBJECTION_CLAIMS, claim_caveat, claim_label, stance_text


def config_text(config: dict) -> str:
    """A grid configuration in words: ``m 0.1, λ 0.01``; ``likelihood only``; ``no head pre-fit``."""
    if config.get("classification_weight") == 0:
        return f"likelihood only (λ {config.get('likelihood_weight', 0.01):g})"
    if config.get("head_prefit_steps") == 0:
        return "no head pre-fit"
    names = {"margin": "m", "likelihood_weight": "λ", "lr_arch": "lr arch", "lr_head": "lr head"}
    return ", ".join(f"{names.get(k, k)} {v:g}" for k, v in config.items()) or "version-2 setting"


class ObjectionsChapter(Reader):
    """Chapter 7: reads what the study's ``objections`` part wrote, and the 2x2 of protocol
    version 4 that splits the transfer deficit (claims.json)."""

    show_deficit_split = staticmethod(robustness.show_deficit_split)

    PENDING = "pending: the study's objections part has not run yet"
    GLUED = ("obj_model", "obj_budget", "obj_val", "obj_tuning_seeds", "obj_seam_n", "obj_ce_n", "obj_seam_chosen",
             "obj_ce_chosen", "obj_seam_spread", "obj_ce_spread", "obj_plateau", "obj_long_images", "obj_ladder",
             "obj_fp_disjoint")

    def objections(self) -> dict | None:
        """objections.json, its numbers glued for the text; None (every number "pending") where
        the study has not computed the part (``mpq study run --profile full`` does)."""
        o = self.p.objections
        display.glue("obj_premise", self.premise())
        display.glue("obj_tie", f"{o.tie_pp:g} pp")
        display.glue("obj_plateau_pp", f"{o.plateau_pp:g} pp")
        doc = self.r.objections()
        if doc is None:
            for name in self.GLUED:
                display.glue(name, self.PENDING)
            print(f"{self.p.path('objections.json').name} does not exist yet: the objections part of the study has not been run "
                  f"(`mpq study run --profile {self.p.name}`); the protocol is fixed on the method page.")
            return None
        display.glue("obj_model", model_label(doc["model"]))
        display.glue("obj_budget", doc["budget"].upper())
        t = doc["tuning"]
        display.glue("obj_val", f"{t['validation']['images']:,} images ({t['validation']['per_class']} per class)")
        display.glue("obj_tuning_seeds", f"search seeds {_seeds(t['search_seeds'])} x QAT seeds {_seeds(t['qat_seeds'])}")
        for m in ("seam", "ce"):
            chosen = t["chosen"].get(m)
            display.glue(f"obj_{m}_n", str(len(t["grid"].get(m, []))))
            display.glue(f"obj_{m}_chosen", "not decided (runs missing)" if chosen is None else config_text(chosen))
            spread = [r["mean"] for r in t["grid"].get(m, []) if r["mean"] is not None]
            display.glue(f"obj_{m}_spread", f"{min(spread):.2f}–{max(spread):.2f}%" if spread else "n/a")
        lq = doc["long_qat"]
        display.glue("obj_plateau", self.plateau_words(lq))
        display.glue("obj_long_images", "all 60,000" if lq["train_images"] is None else f"{lq['train_images']:,}")
        display.glue("obj_ladder", self.ladder_words(doc))
        display.glue("obj_fp_disjoint", f"{doc['disjoint']['fp_top1']:.2f}%" if doc["disjoint"].get("fp_top1") else "n/a")
        return doc

    def premise(self) -> str:
        """What chapters 3 and 6 found for the transfer claim (SEAM on MNIST vs the target search),
        per model, with CI, verdict and stance: the finding this chapter's objections answer."""
        doc = self.r.claims_or_none()
        found = [c for c in doc["claims"] if c["id"] == "proxy-vs-target"] if doc is not None else []
        return "; ".join(f"{model_label(c['model'])} {report.fmt_diff(c['estimate_pp'], c['ci_low'], c['ci_high'])} "
                         f"({c['verdict']}: {stance_text(c)})" for c in found) or "not run yet"

    # ------------------------------------------------------------------ tuning
    def tuning_table(self, doc: dict | None):
        if doc is None:
            return None
        import pandas as pd

        rows = []
        for method, label in (("seam", "SEAM"), ("ce", "CE ablation")):
            chosen = doc["tuning"]["chosen"].get(method)
            for r in doc["tuning"]["grid"].get(method, []):
                vals = r["val_top1"]
                rows.append({"method": label, "configuration": config_text(r["config"]) + (" (v2)" if r["default"] else ""),
                             "validation top-1 (%)": r["mean"],
                             "seed range (%)": f"{min(vals):.2f}–{max(vals):.2f}" if vals else "n/a",
                             "chosen": "yes" if chosen is not None and r["config"] == chosen else ""})
        return self.table(pd.DataFrame(rows), {"validation top-1 (%)": "{:.2f}"},
                          caption="Each configuration's mean validation top-1 (QAT on the training images outside the "
                                  "validation split); v2: the setting of the earlier runs.", nowrap=("seed range (%)",))

    def show_tuning(self, doc: dict | None) -> None:
        """Every grid configuration's validation top-1 (mean and each run), per method."""
        if doc is None:
            return None
        import matplotlib.pyplot as plt

        grid = doc["tuning"]["grid"]
        fig, axes = plt.subplots(1, 2, figsize=(FIG_WIDTH, 4.2), sharey=True)
        for ax, (method, label, color) in zip(axes, (("seam", "SEAM", "C3"), ("ce", "CE ablation", "C1"))):
            rows = grid.get(method, [])
            for i, r in enumerate(rows):
                ax.plot([i] * len(r["val_top1"]), r["val_top1"], ".", color=color, alpha=0.45, ms=5)
                if r["mean"] is not None:
                    ax.plot(i, r["mean"], "D" if r["default"] else "o", color=color, ms=6)
            ax.set_xticks(range(len(rows)), [config_text(r["config"]) for r in rows], rotation=70, ha="right",
                          fontsize=9)
            ax.set_title(label)
        axes[0].set_ylabel("validation top-1 (%)")
        fig.suptitle("dots: one search seed x QAT seed; large: mean (diamond: the earlier setting)", fontsize=9)
        plt.show()

    # ------------------------------------------------------------------ converged QAT
    @staticmethod
    def plateau_words(lq: dict) -> str:
        """The QAT length the plateau rule chose, in words that say whether a plateau was shown: the
        rule takes the longest length when no shorter one comes within the tolerance, and that
        length is then the longest measured, not a plateau. A point rule on the mean over QAT
        seeds, without a CI."""
        e = lq.get("plateau_epochs")
        if e is None:
            return "not decided (runs missing)"
        n = len(lq.get("qat_seeds") or [])
        rule = f"a point rule on the mean of {n} QAT seed{'s' if n != 1 else ''}, without a CI"
        epochs = sorted(int(x) for x in lq["epochs"])
        if e == epochs[-1] and len(epochs) > 1:
            return (f"no plateau shown within {e} epochs (the {epochs[-2]}-epoch mean still differs from the "
                    f"{e}-epoch mean by more than {lq['plateau_pp']:g} pp for a policy), so the comparisons run "
                    f"at {e} epochs, the longest measured ({rule})")
        return f"{e} epoch{'s' if e > 1 else ''} ({rule})"

    def show_plateau(self, doc: dict | None) -> None:
        if doc is None:
            return None
        import matplotlib.pyplot as plt

        lq = doc["long_qat"]
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 3.4))
        for (name, curve), color in zip(lq["curve"].items(), ("C7", "C0")):
            pts = [(int(e), v) for e, v in curve.items() if v]
            if not pts:
                continue
            ax.errorbar([e for e, _ in pts], [np.mean(v) for _, v in pts],
                        yerr=[[np.mean(v) - min(v) for _, v in pts], [max(v) - np.mean(v) for _, v in pts]],
                        marker="o", capsize=3, color=color, label=policy_label(name))
        if lq["plateau_epochs"] is not None:
            ax.axvline(lq["plateau_epochs"], ls=":", color="C2", label=f"plateau ({lq['plateau_epochs']} ep)")
        ax.set_xscale("log")
        ax.set_xticks(lq["epochs"], [str(e) for e in lq["epochs"]])
        ax.set_xlabel("QAT epochs (log scale)")
        ax.set_ylabel("top-1 after QAT (%)")
        fig.legend(loc="outside lower center", ncols=3, frameon=False)
        plt.show()

    # ------------------------------------------------------------------ proxies
    @staticmethod
    def ladder_words(doc: dict) -> str:
        """The proxies in their order of distance (closest first), each with SEAM's difference to the
        target search, then whether the differences follow that order: each step where they do not is
        named, and so is each where the two CIs overlap (the order is then not resolved)."""
        rows = doc.get("ladder") or []
        if not rows:
            return "not measured yet"
        text = "; ".join(f"{r['proxy']} {report.fmt_diff(r['estimate_pp'], r['ci_low'], r['ci_high'])}" for r in rows)
        if len(rows) < 2:
            return text
        pairs = list(zip(rows, rows[1:]))
        against = [f"{b['proxy']} above {a['proxy']}" for a, b in pairs if b["estimate_pp"] > a["estimate_pp"]]
        overlap = [f"{a['proxy']} / {b['proxy']}" for a, b in pairs
                   if not (a["ci_low"] > b["ci_high"] or b["ci_low"] > a["ci_high"])]
        text += (". The estimates " + ("fall with distance at every step" if not against else
                                       "do not follow the distance order: " + ", ".join(against)))
        if overlap:
            text += f"; the CIs overlap (order not resolved) for {', '.join(overlap)}"
        return text

    def show_ladder(self, doc: dict | None) -> None:
        """Each proxy's SEAM policy minus the target search (95% CI), from the closest proxy to no information."""
        if doc is None:
            return None
        import matplotlib.pyplot as plt

        rows = doc.get("ladder") or []
        if not rows:
            print("no proxy of the ladder has runs in this profile")
            return
        fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.55 * len(rows) + 1.4))
        y = np.arange(len(rows))[::-1]
        est = np.array([r["estimate_pp"] for r in rows])
        err = np.array([[r["estimate_pp"] - r["ci_low"], r["ci_high"] - r["estimate_pp"]] for r in rows]).T
        ax.errorbar(est, y, xerr=err, fmt="o", capsize=3, color="C3")
        ax.axvline(0, color="C7", lw=0.8)
        for lim in (-report.MARGIN_PP, report.MARGIN_PP):
            ax.axvline(lim, color="C2", ls=":", lw=0.8)
        ax.set_yticks(y, [r["proxy"] for r in rows], fontsize=9)
        ax.set_xlabel("SEAM on the proxy minus the target search (pp, 95% CI); dotted: ±margin")
        plt.show()

    # ------------------------------------------------------------------ claims
    def objection_claims(self, doc: dict | None = None):
        import pandas as pd

        doc = doc or self.r.claims()
        pilot = self.r.pilot()
        rows = []
        for cid in OBJECTION_CLAIMS:
            for c in (c for c in doc["claims"] if c["id"] == cid):
                rows.append({"claim": claim_label(cid), "model": model_label(c["model"]),
                             "difference (pp, 95% CI)": report.fmt_diff(c["estimate_pp"], c["ci_low"], c["ci_high"]),
                             "units a / b": f"{c.get('a_units', '?')} / {c.get('b_units', '?')}",
                             "verdict": f"{c['verdict']}: {stance_text(c)}",
                             "caveat": claim_caveat(doc, c, pilot, short=True) or "—"})
        if not rows:
            print("none of chapter 7's claims has runs in this profile yet")
            return None
        display.glue("obj_claims_n", str(len(rows)))
        return self.table(pd.DataFrame(rows), caption="Chapter 7's claims: a − b within QAT seeds; units: search seeds "
                                                      "(or policies) behind each side.",
                          nowrap=("difference (pp, 95% CI)",))


def _seeds(seeds) -> str:
    seeds = list(seeds)
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)) else \
        ", ".join(map(str, seeds))


__all__ = ["OBJECTION_CLAIMS", "ObjectionsChapter", "config_text"]
