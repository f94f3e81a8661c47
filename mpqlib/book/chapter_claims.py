"""Chapter 6's tables and sentences (the claims): every claim beside the paper's number, with its
verdict, its stance on the paper and the caveat of an underpowered model; what was and was not
reproduced."""

from __future__ import annotations

from . import display
from ..study import report
from .display import budget_label, model_label
from . import chapter_robustness as robustness
from .chapter_efficiency import EfficiencyChapter
from .results import Reader
from .verdicts import claim_caveat, claim_label, claim_stance, claims_rows, controls, power_verdict


class ClaimsChapter(Reader):
    """Chapter 6: claims.json in tables and sentences, the verdicts' stability and the power curves
    of protocol version 4; ``cost`` is chapter 4's reader over the same results (its cost table)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cost = EfficiencyChapter(results=self.r)

    stability_table = staticmethod(robustness.stability_table)

    def show_power_curves(self) -> None:
        """The a-priori power curves of results/power.json."""
        robustness.show_power_curves(self.r.power())

    def claims_tables(self, doc: dict):
        """One table per model: claim, the paper's number (and where), ours (paired difference, 95%
        CI), the verdict with its stance, and the caveat of an underpowered model on every row."""
        import pandas as pd

        pilot = self.r.pilot()
        out = {}
        for m in dict.fromkeys(c["model"] for c in doc["claims"]):
            rows = [{k: v for k, v in r.items() if k != "id"} for r in claims_rows(doc, m, pilot)]
            budget = next(c["budget"] for c in doc["claims"] if c["model"] == m)
            out[m] = self.table(pd.DataFrame(rows), caption=f"{model_label(m)} at {budget_label(budget)}",
                                nowrap=("ours",))
        second = {**doc, "claims": doc.get("second_budget_claims") or []}
        for m, budget in dict.fromkeys((c["model"], c["budget"]) for c in second["claims"]):
            rows = [{k: v for k, v in r.items() if k != "id"} for r in claims_rows(second, m, pilot, budget)]
            out[f"{m}@{budget}"] = self.table(pd.DataFrame(rows), nowrap=("ours",), caption=(
                f"{model_label(m)} at {budget_label(budget)}, the second budget (the paper's), fewer policies"))
        return out

    stance = staticmethod(claim_stance)  # :func:`mpqlib.book.verdicts.claim_stance`

    def claims_summary(self, doc: dict) -> None:
        """Glue the sentences of the closing section: what was and was not reproduced."""
        pilot = self.r.pilot()

        def names(stance):
            def one(c):
                caveat = claim_caveat(doc, c, pilot, short=True)
                at = "" if c["budget"] == (doc.get("budgets") or {}).get(c["model"], c["budget"]) else \
                    f" at {budget_label(c['budget'])}"
                return f"{model_label(c['model'])}{at}, {claim_label(c['id'])} ({c['verdict']}" + \
                    (f"; {caveat})" if caveat else ")")
            return "; ".join(one(c) for c in doc["claims"] if self.stance(c) == stance) or "none"

        display.glue("claims_yes", names("supports"))
        display.glue("claims_no", names("contradicts"))
        display.glue("claims_open", names("undecided"))
        display.glue("claims_n", str(len(doc["claims"])))
        heads = doc.get("head", {})
        models = [m for m in self.models if m in heads] if isinstance(heads, dict) else []

        def head(m):
            h = heads[m]
            if h.get("seam_proxy_acc") is None or not h.get("linear_probe_acc"):
                return "not measured"
            return (f"{h['seam_proxy_acc']:.1f}% against {h['linear_probe_acc']:.1f}% "
                    f"({h['seam_proxy_acc'] / h['linear_probe_acc']:.0%})")
        display.glue("claims_head", self.r.joined(head, models) if models else "not measured")
        pw = doc.get("power", {})
        pc = controls(doc)
        pmodels = [m for m in self.models if m in pw]

        def power(m):
            p = pw[m]
            return (f"policy SD {report.fmt_pp(p['policy_sd_pp'], sign=False)} against seed SD "
                    f"{report.fmt_pp(p['seed_sd_pp'], sign=False)} in the protocol run; "
                    + power_verdict(self.r.pilot(), m, self.r.ex(m).budget_name, pc.get(m), p.get("ratio")))
        display.glue("claims_power", self.r.joined(power, pmodels) if pmodels else "n/a")


__all__ = ["ClaimsChapter"]
