"""The claims in words: each claim named by its two sides, what its verdict says about the paper
("reproduced", "not reproduced at this scale", "undecided"), the caveat of an underpowered model,
the rows of the claims tables and the book's bottom line. Read by the chapters and by
``scripts/readme_results.py`` (the README's results block); the words themselves live in
:mod:`mpqlib.study.facts`."""

from __future__ import annotations

from typing import Mapping

from . import report
from .display import fmt_pct, fmt_ratio, model_label, policy_label
from .study.facts import CLAIM_TEXT, CLAIMS, PAPER, PAPER_STANCE

STANCE_WORDS = {"supports": "reproduced", "contradicts": "not reproduced at this scale", "undecided": "undecided"}
"""What a stance says to a reader ("not reproduced at this scale": on this book's small data,
models and fine-tuning, not a statement about the paper's ImageNet result)."""

POWER_RULE = 2.0  # the pre-registered rule: policy SD >= 2 x seed SD (book/method.md, Protocol)


def claim_label(cid: str) -> str:
    """A claim named by its two sides, in the reader's words (claim ids never reach the prose)."""
    if cid not in CLAIMS:
        return cid
    a, b, _ = CLAIMS[cid]
    return f"{policy_label(a)} vs {policy_label(b)}"


def claim_stance(claim: dict) -> str | None:
    """What ``claim``'s verdict says about the paper: "supports", "contradicts" or "undecided"
    (:data:`PAPER_STANCE`); None for the positive control, a check of the design, not a claim."""
    if claim["id"] not in PAPER_STANCE:
        return None
    supports, contradicts = PAPER_STANCE[claim["id"]]
    verdict = claim["verdict"].split(" (")[0]
    return "supports" if verdict in supports else "contradicts" if verdict in contradicts else "undecided"


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


__all__ = ["STANCE_WORDS", "POWER_RULE", "TRANSFER_CLAIMS", "claim_label", "claim_stance", "stance_text", "pilot_ratio",
           "power_words", "power_caveat", "paper_fill", "bottom_line", "claims_rows"]
