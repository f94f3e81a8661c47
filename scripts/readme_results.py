#!/usr/bin/env python
"""README's "What the reproduction found" block, written from the results files alone.

The block between ``<!-- results:begin -->`` and ``<!-- results:end -->`` is generated from
``results/claims.json`` (paired differences, CIs, verdicts, power, the SEAM head's fit),
``results/pilot.json`` (the main budget per model) and ``results/efficiency.json`` (measured
search-cost ratios), so the README never carries a number typed by hand.

    python scripts/readme_results.py            # rewrite the block
    python scripts/readme_results.py --check    # exit 1 if the block is not what the results give
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
LABELS = {
    "positive-control": "target search vs random policies (positive control)",
    "proxy-vs-target": "SEAM on MNIST vs target search",
    "seam-vs-ce": "SEAM vs CE ablation",
    "seam-vs-uniform": "SEAM vs uniform",
    "seam-vs-limpq": "SEAM vs LIMPQ",
    "seam-vs-hawq": "SEAM vs HAWQ",
    "second-proxy": "SEAM on optdigits vs target search",
    "fmnist4-control": "SEAM on Fashion-MNIST 4% vs SEAM on MNIST",
}
RATIOS = ("evaluation/seam", "joint/seam", "target-equal-epochs/seam", "target-equal-steps/seam", "limpq/seam")


def _load(results: Path, name: str) -> dict | None:
    path = results / name
    return json.loads(path.read_text()) if path.exists() else None


def block(results: Path) -> str:
    """The generated markdown (without the markers)."""
    from mpqlib.report import fmt_ci, fmt_pp

    claims = _load(results, "claims.json")
    if claims is None:
        return ("No full run has been committed yet: `bash scripts/reproduce.sh` writes `results/claims.json`, "
                "and this section is generated from it (`python scripts/readme_results.py`).")
    lines = ["Generated from `results/` by `scripts/readme_results.py`; every difference is paired within QAT "
             "seeds, with a 95% bootstrap CI (protocol on the book's method page).", ""]
    budgets = claims.get("budgets", {})
    models = list(dict.fromkeys([*budgets, *(c["model"] for c in claims["claims"])]))
    for model in models:
        pw = claims["power"].get(model, {})
        head = claims["head"].get(model, {})
        lines.append(f"**{model}** at the {budgets.get(model, '?').upper()} budget: policy SD "
                     f"{pw.get('policy_sd_pp', float('nan')):.2f} pp against seed SD {pw.get('seed_sd_pp', float('nan')):.2f} pp "
                     f"(ratio {pw.get('ratio', float('nan')):.2f}; power needs 2).")
        if head.get("seam_proxy_acc") is not None:
            lines[-1] += (f" SEAM's head on held-out proxy images: {head['seam_proxy_acc']:.1f}% against a linear "
                          f"probe's {head['linear_probe_acc']:.1f}%.")
        lines += ["", "| claim | a - b | 95% CI | verdict |", "|---|---:|---|---|"]
        for c in claims["claims"]:
            if c["model"] == model:
                lines.append(f"| {LABELS.get(c['id'], c['id'])} | {fmt_pp(c['estimate_pp'])} | "
                             f"{fmt_ci(c['ci_low'], c['ci_high'])} | {c['verdict']} |")
        lines.append("")
    eff = _load(results, "efficiency.json")
    if eff and eff.get("ratios"):
        parts = []
        for key in RATIOS:
            r = eff["ratios"].get(key)
            if r and r.get("value") is not None:
                parts.append(f"{key.split('/')[0]} {r['value']:.1f}x")
        if parts:
            lines.append("Measured search cost against SEAM's on the same machine (`results/efficiency.json`): "
                         + ", ".join(parts) + ". The book's efficiency chapter projects these to ImageNet beside "
                         "the paper's 297x.")
    return "\n".join(lines).rstrip()


def render(readme: str, generated: str) -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"readme_results: README.md has no {BEGIN} ... {END} block")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated}\n{END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if README.md's block is stale")
    ap.add_argument("--readme", type=Path, default=REPO / "README.md")
    ap.add_argument("--results", type=Path, default=REPO / "results")
    args = ap.parse_args(argv)
    text = args.readme.read_text()
    new = render(text, block(args.results))
    if args.check:
        if new != text:
            print("readme_results: README.md's results block is stale; run python scripts/readme_results.py",
                  file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
