"""The first page's answer: the paper's two questions in two sentences, each with its numbers, and
one table of at most eight rows (paper / ours / verdict). Computed from ``claims.json``,
``efficiency.json`` and ``power.json`` alone (README.md and book/intro.md, through
``scripts/readme_results.py``)."""

from __future__ import annotations

from typing import Mapping

from ..study import report
from ..study.facts import PAPER
from .display import fmt_ratio, model_label
from .verdicts import claim_caveat, stance_text

# The headline claims, newest protocol first: version 4's sized tests where they exist, else version 3's.
ONE_EPOCH = ("headline-1epoch", "proxy-vs-target")
PLATEAU = ("headline-plateau", "proxy-vs-target-long")
MAIN_MODEL = "mobilenetv1"


def _claim(doc: Mapping, ids: tuple[str, ...], model: str = MAIN_MODEL) -> dict | None:
    """The first of ``ids`` that ``model`` has at its main budget."""
    main = (doc.get("budgets") or {}).get(model)
    for cid in ids:
        for c in doc["claims"]:
            if c["id"] == cid and c["model"] == model and main in (None, c["budget"]):
                return c
    return None


def _existing_power(power: Mapping | None, test: str) -> float | None:
    """P(equivalent | 0) of the design a claim actually ran, from the power analysis."""
    t = ((power or {}).get("tests") or {}).get(test)
    if not t:
        return None
    have = tuple(t["have"]["a"])
    return next((d["power_equivalent"] for d in t["designs"] if (d["search_seeds"], d["qat_seeds"]) == have), None)


def _diff(c: Mapping) -> str:
    return report.fmt_diff(c["estimate_pp"], c["ci_low"], c["ci_high"])


def transfer_sentence(doc: Mapping, power: Mapping | None = None) -> str:
    """Does a search on the proxy find policies as good as the search on the target? The answer the
    headline claims allow, with their numbers and, for a test that could not have shown a match,
    its power."""
    margin = doc.get("margin_pp", report.MARGIN_PP)
    parts, answers = [], []
    for ids, regime, test in ((ONE_EPOCH, "after the one-epoch QAT", "headline-1epoch"),
                              (PLATEAU, "after the long QAT of 10 epochs on all 60,000 images", "headline-plateau")):
        c = _claim(doc, ids)
        if c is None:
            continue
        notes = []
        if c.get("collapsed_runs") and (c["collapsed_runs"]["a"] or c["collapsed_runs"]["b"]):
            notes.append(f"{report.fmt_diff(c['estimate_without_outliers'], *c['ci_without_outliers'])} without its "
                         "collapsed QAT runs")
        p = c.get("power_equivalent", _existing_power(power, test) if c["id"] in ("proxy-vs-target",
                                                                                   "proxy-vs-target-long") else None)
        if p is not None and not c["verdict"].startswith("equivalent"):
            notes.append(f"had there been no difference, this test would have shown a match with probability {p:.2f}")
        text = f"{_diff(c)} {regime}" + (f" ({'; '.join(notes)})" if notes else "")
        parts.append(text)
        answers.append("yes" if c["verdict"].startswith("equivalent") else
                       "no" if c["ci_high"] < -margin else "open")
    if not parts:
        return "**Does a search on the proxy match the search on the target?** Not tested yet."
    word = ("Yes" if set(answers) == {"yes"} else "No" if set(answers) == {"no"} else
            "Not shown" if "yes" not in answers else "In one regime")
    return (f"**Does a search on the proxy match the search on the target?** {word}, at this scale: on "
            f"{model_label(MAIN_MODEL)}, SEAM on MNIST minus the target search is " + "; ".join(parts)
            + f". A match means the 95% CI lies within ±{margin:g} pp.")


def cost_sentence(eff: Mapping | None) -> str:
    """At what cost? The ratios measured on one host and the projection's range to ImageNet."""
    if not eff:
        return "**At what cost?** Not measured yet."
    ratios = eff.get("ratios") or {}
    seam = (eff.get("methods") or {}).get("seam") or {}

    def r(key: str) -> str | None:
        v = (ratios.get(key) or {}).get("value")
        return fmt_ratio(v) if v is not None else None

    measured = [f"the search on the target {r(k)} SEAM's time {what}" if i == 0 else f"{r(k)} {what}"
                for i, (k, what) in enumerate((k, w) for k, w in (("target-equal-epochs/seam", "at equal epochs"),
                                                                   ("target-equal-steps/seam", "at equal optimiser steps"))
                                              if r(k))]
    if r("joint/seam"):
        measured.append(f"a joint weights-and-bits search (the class of FracBits) {r('joint/seam')}")
    arch = ((eff.get("imagenet") or {}).get("archs") or {}).get(MAIN_MODEL, {})
    text = "**At what cost?** "
    if seam.get("seconds") is not None:
        text += f"SEAM's search took {report.fmt_seconds(seam['seconds'])}"
        text += (f"; on the same host ({eff.get('ratios_host')}), " + ", ".join(measured)) if measured else \
            " (no other search timed on its host yet)"
    if arch.get("low") is not None:
        text += (f". Projected to ImageNet, a joint search costs {fmt_ratio(arch['low'])}-{fmt_ratio(arch['high'])} "
                 f"SEAM's for 30-90 epochs, against the paper's {fmt_ratio(PAPER['joint_over_seam'])}")
    return text + "."


def table_rows(doc: Mapping, eff: Mapping | None, pilot: Mapping | None = None) -> list[dict]:
    """At most eight rows: the transfer tests that decide the headline, SEAM against uniform and
    LIMPQ, and the two cost ratios the paper gives."""
    from .verdicts import paper_fill
    from ..study.facts import CLAIM_TEXT

    fill = paper_fill()
    picks = [(ONE_EPOCH, MAIN_MODEL, "Transfer, one-epoch QAT"), (PLATEAU, MAIN_MODEL, "Transfer, long QAT"),
             (("disjoint-classes-vs-target",), MAIN_MODEL, "Transfer, other classes of the target's domain"),
             (("proxy-vs-target",), "resnet20", "Transfer"),
             (("seam-vs-uniform",), MAIN_MODEL, "SEAM vs uniform precision"),
             (("seam-vs-limpq",), MAIN_MODEL, "SEAM vs LIMPQ")]
    rows = []
    for ids, model, label in picks:
        c = _claim(doc, ids, model) or next((c for c in doc["claims"] if c["id"] in ids and c["model"] == model), None)
        if c is None:
            continue
        caveat = claim_caveat(doc, c, pilot, short=True)
        verdict = f"{c['verdict']}: {stance_text(c)}"
        bp = doc.get("budget_pilot") or {}
        if model == bp.get("model") and bp.get("budgets") and bp.get("chosen") is None:
            verdict = ("out of the tally: no budget passed the entry rules (no room for mixed precision at this "
                       "scale)")
        if c.get("mc_flip_fraction"):
            verdict += " (knife-edge)"
        ours = _diff(c) + (f"; {caveat}" if caveat else "")
        second = next((x for x in doc.get("second_budget_claims") or [] if x["id"] == c["id"] and x["model"] == model),
                      None)
        if second is not None:  # the same test at the second budget (W3A3, the paper's), in the same row
            ours = f"{c['budget'].upper()}: {ours}; {second['budget'].upper()}: {_diff(second)}"
            verdict += f"; {second['budget'].upper()}: {second['verdict']}: {stance_text(second)}"
        rows.append({"claim": f"{label} ({model_label(model)})",
                     "paper": CLAIM_TEXT.get(c["id"], ("", "—"))[1].format(**fill), "ours": ours, "verdict": verdict})
    arch = (((eff or {}).get("imagenet") or {}).get("archs") or {}).get(MAIN_MODEL, {})
    if arch.get("low") is not None:
        lo, hi, paper = arch["low"], arch["high"], PAPER["joint_over_seam"]
        rows.append({"claim": "Cost, joint search / SEAM (ImageNet, projected)", "paper": fmt_ratio(paper),
                     "ours": f"{fmt_ratio(lo)}-{fmt_ratio(hi)} (30-90 joint epochs)",
                     "verdict": "within our range" if lo <= paper <= hi else
                     f"{'above' if paper > hi else 'below'} our range"})
    limpq = (arch.get("ratios") or {}).get("limpq/seam")
    if limpq is not None:
        lo, hi = PAPER["limpq_over_seam"]
        rows.append({"claim": "Cost, LIMPQ / SEAM (ImageNet, projected)", "paper": f"{lo:g}-{hi:g}x",
                     "ours": fmt_ratio(limpq),
                     "verdict": "agrees within a factor of 2" if lo / 2 <= limpq <= hi * 2 else
                     f"{limpq / hi:.1f} times above" if limpq > hi else f"{lo / limpq:.1f} times below"})
    return rows[:8]


__all__ = ["transfer_sentence", "cost_sentence", "table_rows"]
