#!/usr/bin/env python
"""The "what the reproduction found" block of README.md and book/intro.md, from the results alone.

The block between ``<!-- results:begin -->`` and ``<!-- results:end -->`` is generated from
``results/claims.json`` (paired differences, CIs, verdicts, what each says for the paper, power,
the SEAM head's fit) and ``results/efficiency.json`` (measured search-cost ratios), so neither
the README nor the book's first page carries a number typed by hand.

    python scripts/readme_results.py            # rewrite the block in both files
    python scripts/readme_results.py --check    # exit 1 if a block is not what the results give
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
    from mpqlib.chapters import Chapter, model_label

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
        lines.append(f"**{model_label(model)}** at the {budgets.get(model, '?').upper()} budget: policy SD "
                     f"{pw.get('policy_sd_pp', float('nan')):.2f} pp against seed SD {pw.get('seed_sd_pp', float('nan')):.2f} pp "
                     f"(ratio {pw.get('ratio', float('nan')):.2f}; power needs 2).")
        if head.get("seam_proxy_acc") is not None:
            lines[-1] += (f" SEAM's head on held-out proxy images: {head['seam_proxy_acc']:.1f}% against a linear "
                          f"probe's {head['linear_probe_acc']:.1f}%.")
        lines += ["", "| claim | a − b (pp) | 95% CI (pp) | verdict | for the paper |", "|---|---:|---|---|---|"]
        mine = [c for c in claims["claims"] if c["model"] == model]
        for c in mine:
            lines.append(f"| {LABELS.get(c['id'], c['id'])} | {c['estimate_pp']:+.2f} | "
                         f"[{c['ci_low']:+.2f}, {c['ci_high']:+.2f}] | {c['verdict']} | "
                         f"{Chapter.stance(c) or 'design check'} |")
        by = {s: [LABELS.get(c["id"], c["id"]) for c in mine if Chapter.stance(c) == s]
              for s in ("supports", "contradicts", "undecided")}
        lines += ["", f"Reproduced (supports the paper): {'; '.join(by['supports']) or 'none'}. "
                      f"Not reproduced (contradicts it): {'; '.join(by['contradicts']) or 'none'}. "
                      f"Inside the noise: {'; '.join(by['undecided']) or 'none'}.", ""]
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


def render(readme: str, generated: str, path: Path | str = "README.md") -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"readme_results: {path} has no {BEGIN} ... {END} block; add the two markers where "
                         "the results should go")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated}\n{END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file's block is stale")
    ap.add_argument("--readme", type=Path, nargs="+", default=[REPO / "README.md", REPO / "book" / "intro.md"],
                    help="files holding the block (default: README.md and book/intro.md)")
    ap.add_argument("--results", type=Path, default=REPO / "results")
    args = ap.parse_args(argv)
    generated = block(args.results)
    stale = []
    for path in args.readme:
        text = path.read_text()
        new = render(text, generated, path)
        if args.check:
            stale += [path] if new != text else []
        elif new != text:
            path.write_text(new)
    if stale:
        print(f"readme_results: the results block of {', '.join(map(str, stale))} is stale; "
              "run python scripts/readme_results.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
