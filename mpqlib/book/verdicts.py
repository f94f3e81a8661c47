"""The claims in words: each claim named by its two sides, what its verdict says about the paper
("reproduced", "not reproduced at this scale", "undecided"), the caveat of an underpowered model,
the rows of the claims tables and the book's bottom line. Read by the chapters and by
``scripts/readme_results.py`` (the README's results block); the words themselves live in
:mod:`mpqlib.study.facts`."""

from __future__ import annotations

from typing import Mapping

from ..study import report
from .display import fmt_pct, fmt_ratio, model_label, policy_label
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


def _named(claims: list) -> str:
    return "; ".join(f"{claim_label(c['id']).split(' vs ')[0]}, {model_label(c['model'])}" for c in claims)


def bottom_line(doc: Mapping, eff: Mapping | None = None, pilot: Mapping | None = None) -> list[str]:
    """The book's bottom line in a few plain sentences, computed from claims.json, efficiency.json
    and pilot.json: transfer (how many tests matched, fell short beyond the margin, or stayed
    undecided), cost against the paper's 297x, chapter 7's objections, and the scale."""
    transfer = [c for c in doc["claims"] if c["id"] in TRANSFER_CLAIMS]
    matched = [c for c in transfer if claim_stance(c) == "supports"]
    short = [c for c in transfer if claim_stance(c) == "contradicts"]
    open_ = [c for c in transfer if claim_stance(c) == "undecided"]
    text = (f"**Transfer:** a policy searched on a proxy matched the search on the target (equivalent within "
            f"±{report.MARGIN_PP:g} pp) in {len(matched)} of {len(transfer)} tests"
            + (f" ({_named(matched)})" if matched else ""))
    if short:
        text += (f"; in {len(short)} it fell short by more than the margin ({_named(short)})")
    if open_:
        text += (f"; {len(open_)} {'is' if len(open_) == 1 else 'are'} undecided, the CI allowing both "
                 f"({_named(open_)})")
    out = [text + "."]
    ratios = (eff or {}).get("ratios", {})
    arch = ((eff or {}).get("imagenet") or {}).get("archs", {}).get("mobilenetv1", {})

    def measured(key: str) -> str | None:
        v = (ratios.get(key) or {}).get("value")
        return fmt_ratio(v) if v is not None else None

    target = [(measured(k), what) for k, what in (("target-equal-epochs/seam", "at SEAM's epochs"),
                                                  ("target-equal-steps/seam", "at SEAM's number of steps"))
              if measured(k)]
    target = [f"{r} SEAM's time {what}" if i == 0 else f"{r} {what}" for i, (r, what) in enumerate(target)]
    parts = [f"the search on the whole target took {' and '.join(target)}" if target else None,
             f"a joint weights-and-bits search (the class of FracBits) {measured('joint/seam')}"
             if measured("joint/seam") else None]
    parts = [x for x in parts if x]
    if parts:
        cost = f"**Cost:** measured on one host ({eff.get('ratios_host')}), " + "; ".join(parts)
        if arch.get("low") is not None:
            cost += (f"; projected to ImageNet (MobileNetV1), the joint search costs {fmt_ratio(arch['low'])}-"
                     f"{fmt_ratio(arch['high'])} SEAM's for a joint search of 30-90 epochs")
        out.append(cost + f", against the paper's {fmt_ratio(PAPER['joint_over_seam'])} (FracBits "
                   f"{PAPER['table2']['FracBits'][2]:g} h against SEAM's {PAPER['table2']['SEAM, proxy S'][2]:g} h).")
    objections = [c for cid in OBJECTION_CLAIMS for c in doc["claims"] if c["id"] == cid]
    if objections:
        out.append("**Objections** (chapter 7): " + "; ".join(
            f"{claim_label(c['id'])}, {model_label(c['model'])}: "
            f"{report.fmt_diff(c['estimate_pp'], c['ci_low'], c['ci_high'])} ({c['verdict']}: {stance_text(c)})"
            for c in objections) + ".")
    weak = [m for m in dict.fromkeys(c["model"] for c in doc["claims"]) if power_caveat(doc, m, pilot)]
    scale = ("**Scale:** Fashion-MNIST with an MNIST proxy, small networks and a short fine-tuning on a 2-core CPU, "
             "not ImageNet: a claim marked not reproduced is not reproduced at this scale")
    if weak:
        scale += "; " + "; ".join(f"{model_label(m)} is underpowered ({power_words(doc, m, pilot)}, below the "
                                  f"pre-registered {POWER_RULE:g}), so its verdicts are weak evidence" for m in weak)
    out.append(scale + ".")
    return out


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
           "paper_fill", "bottom_line", "claims_rows"]
