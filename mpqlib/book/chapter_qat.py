"""Chapter 3's tables and figures (QAT): every policy's top-1 after quantization-aware training with
its CI and paired difference to uniform, the paper's Table 2 beside ours, the budget sweep, the
power of the design (seed SD against policy SD) and the positive control."""

from __future__ import annotations

import math

import numpy as np

from . import chapter_robustness as robustness, display
from ..study import report
from .display import FIG_WIDTH, METHOD_COLOURS, budget_label, fmt_pct, fmt_ratio, model_label, policy_label
from ..study.facts import PAPER, PAPER_ROWS
from .results import Reader
from .verdicts import claim_label, controls, power_verdict


class QATChapter(Reader):
    """Chapter 3: the main table, the QAT sentences, the paper's table, the sweep, power, the
    positive control and protocol version 4's collapsed runs and budget pilot."""

    collapsed_table = staticmethod(robustness.collapsed_table)
    budget_pilot_table = staticmethod(robustness.budget_pilot_table)

    def main_table(self, model: str):
        """Every policy at ``model``'s main budget: top-1 mean and 95% CI over its per-seed values
        (search seeds x QAT seeds), the paired difference to uniform, BitOps, runs."""
        import pandas as pd

        ex = self.r.ex(model)
        stats = ex.qat_stats()["main"]  # computed by the study (mpqlib.study.stored.qat_facts)
        out = []
        for n, st in stats.items():
            est, diff = st["mean"], st["vs_uniform"]
            out.append({"policy": policy_label(n), "top-1": est["estimate"],
                        "95% CI": report.fmt_ci(est["ci_low"], est["ci_high"]).replace(" pp", "").replace("+", ""),
                        "vs uniform": "—" if diff is None else f"{report.fmt_pp(diff['estimate'])} "
                        f"{report.fmt_ci(diff['ci_low'], diff['ci_high']).replace(' pp', '')}",
                        "BitOps": st["bitops"], "runs": est["n"]})
        df = pd.DataFrame(out)
        return self.table(df, {"top-1": lambda v: fmt_pct(v), "BitOps": report.fmt_bitops},
                          nowrap=("95% CI", "vs uniform", "BitOps"),
                          caption=f"{model_label(model)} at {budget_label(ex.budget_name)} "
                                  f"({report.fmt_bitops(ex.budget)} BitOps); full precision "
                                  f"{fmt_pct(ex.meta['top1'])}" + self._caveat_caption(model))

    def qat_summary(self, doc: dict) -> None:
        """Glue chapter 3's sentences from claims.json (every model)."""
        by = {(c["model"], c["id"]): c for c in doc["claims"]}

        def claim(m, cid):
            c = by.get((m, cid))
            if c is None:
                return "not run"
            return f"{report.fmt_diff(c['estimate_pp'], c['ci_low'], c['ci_high'])} ({c['verdict']})"

        display.glue("qat_budgets", self.r.joined(lambda m: budget_label(self.r.ex(m).budget_name)))
        display.glue("qat_fp", self.r.joined(lambda m: fmt_pct(self.r.ex(m).meta["top1"])))
        display.glue("qat_seam_uniform", self.r.joined(
            lambda m: f"{claim(m, 'seam-vs-uniform')} at {budget_label(self.r.ex(m).budget_name)}"))
        display.glue("qat_proxy_target", self.r.joined(
            lambda m: f"{claim(m, 'proxy-vs-target')} at {budget_label(self.r.ex(m).budget_name)}"))
        display.glue("qat_seeds", str(len(self.p.qat_seeds)))
        def seeds(m):
            n = len({r["search_seed"] for r in self.r.model_rows(m) if r["policy"] == "seam-mnist"})
            return f"{n} (extended: the CI rule of the protocol)" if n > len(self.p.search_seeds) else str(n)
        display.glue("qat_search_seeds", self.r.joined(seeds))
        display.glue("qat_n_random", str(self.p.n_random))

    def paper_table(self, model: str):
        """The paper's Table 2 (MobileNetV1, ImageNet) beside our policies at ``model``'s main budget:
        top-1 and the gain over uniform precision."""
        import pandas as pd

        stats = self.r.ex(model).qat_stats()["main"]
        t = PAPER["table2"]
        base = t["LSQ uniform W3A3"][0]
        out = []
        for method, ours in PAPER_ROWS.items():
            top, bitops, _ = t[method]
            row = {"paper method": method, "paper top-1": fmt_pct(top, 1),
                   "paper vs uniform": "—" if method.startswith("LSQ") else report.fmt_pp(top - base, 1),
                   "ours": (f"uniform {budget_label(self.r.ex(model).budget_name)}" if ours == "uniform" else
                            policy_label(ours) if ours else "chapter 4 (joint search)"), "ours vs uniform": "—"}
            if ours and ours != "uniform" and ours in stats:
                d = stats[ours]["vs_uniform"]
                row["ours vs uniform"] = report.fmt_diff(d["estimate"], d["ci_low"], d["ci_high"])
            out.append(row)
        return self.table(pd.DataFrame(out), nowrap=("paper top-1", "paper vs uniform", "ours vs uniform"),
                          caption=f"{model_label(model)} at {budget_label(self.r.ex(model).budget_name)}: each row "
                                  "of the paper's Table 2 (MobileNetV1 on ImageNet) beside our policy in the same role"
                                  + self._caveat_caption(model))

    def _caveat_caption(self, model: str) -> str:
        """" (underpowered: ...)" for the caption of a table comparing ``model``'s policies, or ""."""
        caveat = self.r.model_caveat(model)
        return f" ({caveat})" if caveat else ""

    def sweep_points(self, model: str | None = None) -> list[dict]:
        """Per sweep budget and policy: mean BitOps and top-1 with 95% CI (report.mean_ci)."""
        model = model or self.p.sweep_models()[0]
        pts = self.r.ex(model).qat_stats().get("sweep", [])  # computed by the study
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
        gains = [(q["budget"], self.sweep_gain(model, q["budget"])) for q in seam if q["budget"] in unif]
        display.glue("sweep_model", model_label(model))
        display.glue("sweep_budgets", ", ".join(budget_label(b) for b in self.p.sweep_budgets))
        display.glue("sweep_gain", "; ".join(f"{budget_label(b)} {g}" for b, g in gains) if gains else "n/a")
        display.glue("sweep_seeds", str(len(self.p.sweep_qat_seeds)))

    def sweep_gain(self, model: str, budget: str) -> str:
        """SEAM minus uniform at one sweep budget: the paired difference within QAT seeds with its 95%
        CI and verdict ("+0.12 [-0.10, +0.30] pp, within noise"); the mean difference, labelled as
        such, where one QAT seed leaves nothing to pair over."""
        d = self.r.ex(model).qat_stats().get("sweep_gain", {}).get(budget)  # computed by the study
        if d is None:
            return "not run"
        if d["ci_low"] is None:  # a single run per side: no CI
            return f"{report.fmt_pp(d['estimate'])} (one run each, no CI)"
        return (f"{report.fmt_diff(d['estimate'], d['ci_low'], d['ci_high'])}, "
                f"{report.verdict(d['estimate'], (d['ci_low'], d['ci_high']), 'difference')}")

    def power_rows(self) -> list[dict]:
        """Seed SD and policy SD (random policies) per model and budget: the pilot's budgets where
        pilot.json exists, the main and second budget otherwise."""
        out = []
        doc = self.r.pilot()
        if doc is not None:
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
            ex = self.r.ex(m)
            for b in dict.fromkeys((ex.budget_name, self.p.second_budget)):
                if (m, b) in seen:
                    continue
                try:
                    pw = ex.power(self.r.runs(), b)
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
        main = [{**r, "budget": self.r.ex(r["model"]).budget_name} for r in rows
                if self.r.ex(r["model"]).budget_name in r["names"]]
        display.glue("power_ratios", "; ".join(f"{model_label(r['model'])} {budget_label(r['budget'])}: "
                                               f"{fmt_ratio(r['policy_sd'] / r['seed_sd'] if r['seed_sd'] else math.nan, 2)} "
                                               f"(in the {'pilot' if r['source'] == 'pilot' else 'protocol run'})"
                                               for r in main) or "n/a")

    def show_control(self, doc: dict | None = None) -> None:
        """The positive control and SEAM's comparisons, per model: paired differences with CIs."""
        import matplotlib.pyplot as plt

        doc = doc or self.r.claims()
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
        pc = controls(doc)
        display.glue("control_text", "; ".join(f"{model_label(m)}: {report.fmt_diff(c['estimate_pp'], c['ci_low'], c['ci_high'])} "
                                               f"({c['verdict']})"
                                               for m, c in pc.items()) or "not run")
        display.glue("control_power", self.r.joined(
            lambda m: power_verdict(self.r.pilot(), m, self.r.ex(m).budget_name, pc.get(m),
                                   (doc.get("power", {}).get(m) or {}).get("ratio")),
            list(pc) or None))


__all__ = ["QATChapter"]
