"""How far the verdicts can be trusted (protocol version 4): collapsed QAT runs (chapter 3), each
claim's stability (t-interval, bootstrap seeds, without collapsed runs) and the power of the next
tests (chapter 6). Plain functions over what the study wrote: ``claims.json`` and ``power.json``.
"""

from __future__ import annotations

from typing import Mapping

from . import display
from ..study import report
from .display import FIG_WIDTH, budget_label, model_label, policy_label
from .verdicts import claim_label


def collapsed_table(claims: Mapping):
    """Every QAT run the outlier rule calls collapsed, beside the median of its unit's other runs,
    and how often each method collapsed."""
    import pandas as pd

    out = claims.get("outliers") or {"runs": [], "rate": {}}
    rows = [{"model": model_label(r["model"]), "budget": budget_label(r["budget"]), "policy": policy_label(r["policy"]),
             "search seed": r["search_seed"], "QAT seed": r["qat_seed"], "top-1": f"{r['top1']:.2f}%",
             "its other QAT runs (median)": f"{r['reference']:.2f}%", "below by": f"{r['gap_pp']:.2f} pp",
             "robust SD": f"{r['robust_sd_pp']:.2f} pp"} for r in out["runs"]]
    rate = {m: v for m, v in out["rate"].items() if v["runs"]}
    n, total = sum(v["collapsed"] for v in rate.values()), sum(v["runs"] for v in rate.values())
    display.glue("collapse_rule", (out.get("rule") or {}).get("text", "not applied"))
    display.glue("collapse_count", f"{n} of {total:,} QAT runs ({n / total:.1%})" if total else "none")
    display.glue("collapse_methods", "; ".join(f"{policy_label(m)} {v['collapsed']} of {v['runs']}"
                                              for m, v in rate.items() if v["collapsed"]) or "none")
    return display.table(pd.DataFrame(rows) if rows else pd.DataFrame({"collapsed runs": ["none"]}))


def stability_table(claims: Mapping):
    """Per claim: the bootstrap CI beside the t-interval, the share of bootstrap seeds whose verdict
    differs (``mc_flip_fraction``), and the estimate, CI and verdict without collapsed runs."""
    import pandas as pd

    rows = []
    for c in claims["claims"]:
        if "mc_flip_fraction" not in c:
            continue
        gone = c["collapsed_runs"]["a"] + c["collapsed_runs"]["b"]
        rows.append({"model": model_label(c["model"]), "claim": claim_label(c["id"]),
                     "95% CI (bootstrap)": report.fmt_ci(c["ci_low"], c["ci_high"]),
                     "95% t-interval": report.fmt_ci(c["t_ci_low"], c["t_ci_high"]),
                     "verdict": c["verdict"] + (" (knife-edge)" if c["mc_flip_fraction"] > 0 else ""),
                     "flips over 20 bootstrap seeds": f"{c['mc_flip_fraction']:.0%}",
                     "collapsed runs": gone,
                     "without them": (f"{report.fmt_diff(c['estimate_without_outliers'], *c['ci_without_outliers'])}, "
                                      f"{c['verdict_without_outliers']}") if gone else "—"})
    stable = [c for c in claims["claims"] if "mc_flip_fraction" in c]
    knife = [c for c in stable if c["mc_flip_fraction"] > 0]
    moved = [c for c in stable if c["verdict_without_outliers"] != c["verdict"]]
    where = lambda c: f"{model_label(c['model'])}, {claim_label(c['id'])}"  # noqa: E731
    display.glue("knife_edge", "; ".join(f"{where(c)} ({c['mc_flip_fraction']:.0%} of seeds)" for c in knife) or "none")
    display.glue("outlier_moves", "; ".join(f"{where(c)} ({c['verdict']} → {c['verdict_without_outliers']})"
                                            for c in moved) or "none")
    return display.table(pd.DataFrame(rows), nowrap=("95% CI (bootstrap)", "95% t-interval"))


TEST_NAMES = {"headline-1epoch": "headline,\n1-epoch QAT", "headline-plateau": "headline,\nlong QAT",
              "deficit-data": "2x2:\nthe images", "deficit-head": "2x2:\nthe head", "other-classes": "other\nclasses"}


def show_power_curves(power: Mapping | None) -> None:
    """P(equivalent | true difference 0) against search seeds a side, one line per number of QAT
    seeds, for each test of protocol version 4; the chosen design marked, the goal dashed."""
    import matplotlib.pyplot as plt

    display.glue("power_goal", f"{power['goal']['power']:g} on both" if power else "none: not computed")
    if power is None:
        print("No power analysis for this profile: results/power.json is computed for the full profile, "
              "before its runs, by scripts/power_analysis.py.")
        return
    tests = power["tests"]
    fig, axes = plt.subplots(1, len(tests), figsize=(FIG_WIDTH, 2.9), sharey=True)
    for ax, (tid, t) in zip(axes, tests.items()):
        qats = sorted({d["qat_seeds"] for d in t["designs"]})
        for i, q in enumerate(qats):
            pts = sorted((d["search_seeds"], d["power_equivalent"]) for d in t["designs"] if d["qat_seeds"] == q)
            ax.plot([n for n, _ in pts], [p for _, p in pts], marker="o", ms=3, color=f"C{i}",
                    label=f"{q} QAT seeds")
        c = t["chosen"]
        ax.plot([c["search_seeds"]], [c["power_equivalent"]], marker="*", ms=12, color="k", ls="none",
                label="chosen design")
        ax.axhline(power["goal"]["power"], color="C7", ls="--", lw=1)
        ax.set_title(TEST_NAMES.get(tid, tid), fontsize=8)
    axes[len(axes) // 2].set_xlabel("search seeds a side")
    axes[0].set_ylabel("P(equivalent | no difference)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(dict(zip(labels, handles)).values(), dict(zip(labels, handles)).keys(), loc="outside lower center",
               ncols=len(labels), frameon=False)
    plt.show()


DEFICIT_PARTS = (("deficit-classes", "the classes (MNIST vs the target's own)"),
                 ("deficit-head", "the head (L-GM vs the model's own)"),
                 ("deficit-data", "the images (4% of the target's vs all of them)"))


def show_deficit_split(claims: Mapping) -> None:
    """SEAM on MNIST's gap to the target search split into its three parts (protocol version 4's
    2x2): each part's paired difference with its 95% CI, and their sum, the whole gap."""
    import matplotlib.pyplot as plt

    found = {c["id"]: c for c in claims["claims"] if c["id"] in dict(DEFICIT_PARTS) and not c.get("experiment")}
    display.glue("deficit_parts", "; ".join(f"{words}: {report.fmt_diff(found[cid]['estimate_pp'], found[cid]['ci_low'], found[cid]['ci_high'])}"
                                            for cid, words in DEFICIT_PARTS if cid in found) or "not run yet")
    if len(found) < len(DEFICIT_PARTS):
        print("The 2x2 of protocol version 4 has not run yet in this profile's results: "
              f"{', '.join(cid for cid, _ in DEFICIT_PARTS if cid not in found)} missing.")
        return
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 2.8))
    total = 0.0
    for i, (cid, words) in enumerate(DEFICIT_PARTS):
        c = found[cid]
        ax.barh(i, c["estimate_pp"], left=total, color=f"C{i}", alpha=0.8)
        ax.errorbar(total + c["estimate_pp"], i, xerr=[[c["estimate_pp"] - c["ci_low"]], [c["ci_high"] - c["estimate_pp"]]],
                    color="k", capsize=3)
        total += c["estimate_pp"]
    ax.barh(len(DEFICIT_PARTS), total, color="C7")
    ax.set_yticks(range(len(DEFICIT_PARTS) + 1), [w for _, w in DEFICIT_PARTS] + ["the whole gap (sum)"])
    ax.axvline(0, color="k", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("top-1 difference after QAT (pp), 95% CI")
    plt.show()


def budget_pilot_table(claims: Mapping):
    """Protocol version 4's entry rules for the model whose transfer tests were underpowered: at
    each candidate budget the target search minus uniform precision (it must be better) and the
    power ratio (it must reach the rule), and the budget chosen (none: the model leaves the tally)."""
    import pandas as pd

    from ..study.facts import POWER_RULE

    bp = claims.get("budget_pilot") or {}
    rows = [{"budget": budget_label(b), "target search minus uniform": report.fmt_diff(
                v["control"]["estimate_pp"], v["control"]["ci_low"], v["control"]["ci_high"]),
             "control": v["control"]["verdict"], "power ratio": f"{v['power_ratio']:.2f}",
             "passes": "yes" if v["passes"] else "no"} for b, v in (bp.get("budgets") or {}).items()]
    model = model_label(bp["model"]) if bp.get("model") else "the pilot's model"
    if not rows:
        display.glue("budget_pilot", f"{model}'s budget pilot has not run yet")
    elif bp.get("chosen"):
        display.glue("budget_pilot", f"{model} passes both rules at {budget_label(bp['chosen'])}")
    else:
        display.glue("budget_pilot", f"{model} passes both rules (the target search better than uniform, a power "
                                     f"ratio of at least {POWER_RULE:g}) at none of the budgets: it leaves the transfer "
                                     "tally, since at this scale there is no room for mixed precision to matter")
    return display.table(pd.DataFrame(rows) if rows else pd.DataFrame({"budget pilot": ["not run yet"]}))


__all__ = ["collapsed_table", "stability_table", "show_power_curves", "TEST_NAMES", "DEFICIT_PARTS",
           "show_deficit_split", "budget_pilot_table"]
