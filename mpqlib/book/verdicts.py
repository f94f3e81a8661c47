"""The claims in words: each claim named by its two sides, what its verdict says about the paper
("reproduced", "not reproduced at this scale", "undecided"), the caveat of an underpowered model,
the power checks in words and the rows of the claims tables. Read by the chapters and by
``scripts/readme_results.py`` (the README's results block); the words themselves live in
:mod:`mpqlib.study.facts`."""

from __future__ import annotations

from typing import Mapping

from ..study import report
from .display import fmt_pct, fmt_ratio, policy_label
from ..study.facts import CLAIM_TEXT, CLAIMS, MATCH_CLAIMS, PAPER, PAPER_STANCE, POWER_NOTES

STANCE_WORDS = {"supports": "reproduced", "contradicts": "not reproduced at this scale", "undecided": "undecided"}
"""What a stance says to a reader ("not reproduced at this scale": on this book's small data,
models and fine-tuning, not a statement about the paper's ImageNet result)."""

from ..study.facts import POWER_RULE  # noqa: E402  (one home: the pre-registered power rule)


def claim_label(cid: str) -> str:
    """A claim named by its two sides, in the reader's words (claim ids never reach the prose)."""
    if cid not in CLAIMS:
        return cid
    a, b, _ = CLAIMS[cid]
    return f"{policy_label(a)} vs {policy_label(b)}"


def claim_stance(claim: Mapping) -> str | None:
    """What ``claim``'s verdict says about the paper: "supports", "contradicts" or "undecided"
    (:data:`PAPER_STANCE`); None for a check of the design or a claim the paper does not make.

    A claim of a match (:data:`MATCH_CLAIMS`: the same accuracy, "matches or beats") is contradicted
    only by a deficit beyond the margin: a 95% CI wholly below -margin. A CI that excludes 0 but
    reaches into the margin ("different" at [-0.45, -0.05]) may still be a match, so it is undecided."""
    if claim["id"] not in PAPER_STANCE:
        return None
    supports, contradicts = PAPER_STANCE[claim["id"]]
    verdict = claim["verdict"].split(" (")[0]
    if verdict in supports:
        return "supports"
    if verdict in contradicts:
        if claim["id"] in MATCH_CLAIMS and not claim["ci_high"] < -report.MARGIN_PP:
            return "undecided"
        return "contradicts"
    return "undecided"


def stance_text(claim: Mapping) -> str:
    """What a claim's verdict says about the paper, for a reader: "reproduced", "not reproduced at
    this scale", "undecided"; "design check" for the positive control; "no claim in the paper"."""
    stance = claim_stance(claim)
    if stance is None:
        return "design check" if claim["id"] == "positive-control" else "no claim in the paper"
    return STANCE_WORDS[stance]


def pilot_ratio(pilot: Mapping | None, model: str, budget: str) -> float | None:
    """The power ratio the pilot measured for ``model`` at ``budget`` (None without a pilot)."""
    return ((pilot or {}).get("budgets", {}).get(model, {}).get(budget) or {}).get("ratio")


def power_ratios(doc: Mapping, model: str, pilot: Mapping | None = None) -> dict[str, float]:
    """The power ratios measured for ``model``: {"run": ..., "pilot": ...}, each where it exists."""
    out = {"run": (doc.get("power", {}).get(model) or {}).get("ratio"),
           "pilot": pilot_ratio(pilot, model, (doc.get("budgets") or {}).get(model, ""))}
    return {k: float(v) for k, v in out.items() if v is not None}


def power_words(doc: Mapping, model: str, pilot: Mapping | None = None) -> str:
    """"power ratio 1.24 in the run, 1.69 in the pilot": each ratio measured, named."""
    r = power_ratios(doc, model, pilot)
    if not r:
        return "power ratio not measured"
    return "power ratio " + ", ".join(f"{v:.2f} in the {k}" for k, v in r.items())


def power_short(doc: Mapping, model: str, pilot: Mapping | None = None) -> str:
    """The caveat in a few words for a table cell ("underpowered (ratio 1.24 < 2)"), "" if powered."""
    r = power_ratios(doc, model, pilot)
    if not r:
        return "underpowered (power not measured)"
    low = [f"{'ratio' if k == 'run' else 'pilot ratio'} {v:.2f} < {POWER_RULE:g}" for k, v in r.items() if v < POWER_RULE]
    return f"underpowered ({'; '.join(low)})" if low else ""


def power_caveat(doc: Mapping, model: str, pilot: Mapping | None = None) -> str:
    """The caveat every verdict of an underpowered model carries ("" when the rule is met).

    One rule for every table, the README and the chapters' sentences: a model is underpowered
    when its power ratio misses the pre-registered 2 in the protocol run or in the pilot (either
    one), or when none was measured."""
    ratios = power_ratios(doc, model, pilot)
    where = [k for k, v in ratios.items() if v < POWER_RULE]
    if ratios and not where:
        return ""
    return (f"underpowered: {power_words(doc, model, pilot)}, below the rule's {POWER_RULE:g}"
            + (f" in the {' and the '.join(where)}" if where else ""))


def claim_caveat(doc: Mapping, claim: Mapping, pilot: Mapping | None = None, short: bool = False) -> str:
    """Every caveat of one claim's verdict: its model's power caveat and, where the model's power
    ratio does not cover the claim (another model, another QAT recipe), that note; "" if none."""
    model = power_short(doc, claim["model"], pilot) if short else power_caveat(doc, claim["model"], pilot)
    return "; ".join(x for x in (model, POWER_NOTES.get(claim["id"], "")) if x)


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
                   "disjoint-classes-vs-target", "headline-1epoch", "headline-plateau")
"""The tests of the paper's transfer claim (a proxy's policy matches the target search's)."""
OBJECTION_CLAIMS = ("tuned-seam-vs-target", "tuned-seam-vs-ce", "proxy-vs-target-long", "seam-vs-uniform-long",
                    "noise-control", "disjoint-classes-vs-target")
"""The claims chapter 7 tests (mpqlib.study.facts), in the order the chapter shows them."""


def controls(doc: Mapping) -> dict[str, dict]:
    """The positive-control claim of claims.json, by model."""
    return {c["model"]: c for c in doc["claims"] if c["id"] == "positive-control"}


def power_verdict(pilot: Mapping | None, model: str, budget: str, control: Mapping | None,
                  run_ratio: float | None = None) -> str:
    """The power checks of ``model`` at its main ``budget`` in words: the pilot's rule (policy SD
    >= 2x seed SD, ``pilot``: pilot.json or None), the positive control of the protocol run and,
    given, the protocol run's own ratio; where they disagree the sentence says so. The caveat
    follows :func:`power_caveat`'s rule: a ratio below 2 in the pilot or in the run."""
    doc = pilot or {}
    ratio = pilot_ratio(doc, model, budget)
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
    text = f"{pilot_words}, {control_words}"
    if run_ratio is not None:
        text += (f"; the protocol run's ratio {fmt_ratio(run_ratio)} "
                 + ("misses" if run_ratio < POWER_RULE else "meets") + " the rule")
        pilot_misses = ratio is not None and ratio < POWER_RULE
        if run_ratio < POWER_RULE and not pilot_misses:
            text += ", so every verdict of this model carries the underpowered caveat"
        elif run_ratio >= POWER_RULE and pilot_misses:
            text += ", but the pilot's miss keeps the underpowered caveat on every verdict"
    return text


def claims_rows(doc: Mapping, model: str, pilot: Mapping | None = None, budget: str | None = None) -> list[dict]:
    """One row per claim of ``model`` (at ``budget``; None: every budget): claim, the paper's number
    (and where), ours with its CI, the verdict with its stance, and the caveat (every verdict of
    an underpowered model has one)."""
    fill = paper_fill()
    rows = []
    for c in doc["claims"]:
        if c["model"] != model or (budget is not None and c["budget"] != budget):
            continue
        words, paper = CLAIM_TEXT.get(c["id"], (c["id"], "—"))
        rows.append({"claim": words.format(**fill), "paper": paper.format(**fill),
                     "ours": report.fmt_diff(c["estimate_pp"], c["ci_low"], c["ci_high"]),
                     "verdict": f"{c['verdict']}: {stance_text(c)}", "caveat": claim_caveat(doc, c, pilot) or "—",
                     "id": c["id"]})
    return rows


__all__ = ["STANCE_WORDS", "POWER_RULE", "TRANSFER_CLAIMS", "OBJECTION_CLAIMS", "claim_label", "claim_stance",
           "stance_text", "pilot_ratio", "power_ratios", "power_words", "power_short", "power_caveat", "claim_caveat",
           "paper_fill", "controls", "power_verdict", "claims_rows"]
