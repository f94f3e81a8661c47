#!/usr/bin/env python
"""The "what the reproduction found" block of README.md and book/intro.md, from the results alone.

The block between ``<!-- results:begin -->`` and ``<!-- results:end -->`` is generated from
``results/claims.json`` (paired differences, CIs, verdicts, what each says for the paper, power),
``results/pilot.json`` (the pilot's power ratios), ``results/efficiency.json`` (cost ratios of one
host) and ``results/power.json`` (the power of each test's design), so neither the README nor the
book's first page carries a number typed by hand: the paper's two questions answered in two
sentences and one table (:mod:`mpqlib.book.headline`); every verdict of an underpowered model
carries the caveat. The block between ``<!-- power:begin -->`` and ``<!-- power:end -->`` of
book/method.md is protocol version 4's designs, from ``results/power.json``.

    python scripts/readme_results.py            # rewrite the block in both files
    python scripts/readme_results.py --check    # exit 1 if a block is not what the results give
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _results(results: Path):
    """The results in the folder ``results``, read as the chapters read them (:class:`mpqlib.book.results.Results`)."""
    from mpqlib.book.results import Results

    return Results("full", {"results_dir": str(results)})


def term(word: str, glossary: str | None) -> str:
    """``word`` linked to its glossary entry: a MyST role in the book, a plain link elsewhere."""
    if glossary is None:
        return f"{{term}}`{word}`"
    return f"[{word}]({glossary})"


def block(results: Path, glossary: str | None = "book/glossary.md") -> str:
    """The generated markdown (without the markers): the paper's two questions answered in two
    sentences with their numbers (:mod:`mpqlib.book.headline`), then one table of at most eight rows,
    the details linked. ``glossary``: the link to the glossary page from the file that holds the
    block; None inside the book (MyST ``{term}`` roles)."""
    from mpqlib.book import headline

    r = _results(results)
    claims = r.claims_or_none()
    if claims is None:
        return ("No full run has been committed yet: `bash scripts/reproduce.sh` computes the study, and this "
                "section shows what it found.")
    eff, pilot, power = r.efficiency_or_none(), r.pilot(), r.power()
    t = lambda w: term(w, glossary)  # noqa: E731
    book = glossary is None
    link = (lambda page, text: f"[{text}]({page})") if book else \
        (lambda page, text: f"[{text}](book/{page})")
    lines = [headline.transfer_sentence(claims, power), "", headline.cost_sentence(eff), "",
             f"| claim | the paper | ours, a − b ({t('pp')}, {t('95% CI')}) | {t('verdict')} |", "|---|---|---|---|"]
    for r in headline.table_rows(claims, eff, pilot):
        lines.append(f"| {r['claim']} | {r['paper']} | {r['ours']} | {r['verdict']} |")
    lines += ["", "Each difference is a " + t("paired difference") + " within QAT seeds under rules fixed before the "
              "runs. Every claim with its power and caveats: " + link("chapters/06_claims.ipynb", "chapter 6") +
              "; cost: " + link("chapters/04_efficiency.ipynb", "chapter 4") + "; the objections: "
              + link("chapters/07_objections.ipynb", "chapter 7") + "; the protocol and what is scaled down: "
              + link("method.md", "the method page") + "."]
    return "\n".join(lines).rstrip()


def glossary_link(path: Path) -> str | None:
    """How the block in ``path`` links to the glossary: None (MyST roles) for a page of the book,
    else the relative path of book/glossary.md."""
    path = Path(path).resolve()
    book = REPO / "book"
    if path.is_relative_to(book):
        return None
    return os.path.relpath(book / "glossary.md", path.parent)


def render(readme: str, generated: str, path: Path | str = "README.md") -> str:
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"readme_results: {path} has no {BEGIN} ... {END} block; add the two markers where "
                         "the results should go")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{generated}\n{END}{tail}"


POWER_BEGIN, POWER_END = "<!-- power:begin -->", "<!-- power:end -->"


def power_block(results: Path) -> str:
    """Protocol version 4's designs (book/method.md), from results/power.json alone."""
    doc = _results(results).power()
    if doc is None:
        return "*(results/power.json is not computed yet: `python scripts/power_analysis.py`)*"
    names = {"headline-1epoch": "SEAM on MNIST vs target search, 1-epoch QAT",
             "headline-plateau": "SEAM on MNIST vs target search, QAT to the plateau",
             "deficit-data": "2x2: target search on the 4% proxy vs on all images",
             "deficit-head": "2x2: SEAM vs the target search, both on the 4% proxy",
             "other-classes": "class-disjoint model: SEAM on classes 5-9 vs target search"}
    lines = ["| test | SD between search seeds (a / b, pp) | SD of a QAT run (a / b, pp) | have | design | "
             "P(equivalent \\| 0) | P(different \\| −0.6) | added compute |", "|---|---|---|---|---|---|---|---|"]
    for tid, t in doc["tests"].items():
        ca, cb, c = t["components"]["a"], t["components"]["b"], t["chosen"]
        have = " / ".join(f"{n}x{q}" for n, q in (t["have"]["a"], t["have"]["b"]))
        lines.append(f"| {names.get(tid, tid)} (`{tid}`) | {ca['search_sd']:.2f} / {cb['search_sd']:.2f} | "
                     f"{ca['residual_sd']:.2f} / {cb['residual_sd']:.2f} | {have} | "
                     f"{c['search_seeds']} x {c['qat_seeds']} | {c['power_equivalent']:.2f} | {c['power_different']:.2f} | "
                     f"{c['added_seconds'] / 3600:.1f} h{'' if c['reaches_goal'] else ' (below the goal)'} |")
    lines.append("")
    lines.append(f"Design: search seeds a side x QAT seeds; have: what version 3 ran (a / b). Added compute in all: "
                 f"{doc['added_hours']:g} h of the {doc['cap_hours']:g} h cap, from the step times recorded in the cache "
                 f"({doc['n_sims']:,} simulated tests per design and true difference; runs {doc['computed_from']['sha256']}). "
                 "Where a side has no runs yet its variance is that of the policy standing in for it "
                 "(`components_of` in power.json).")
    return "\n".join(lines)


def render_power(text: str, generated: str, path: Path | str) -> str:
    if POWER_BEGIN not in text or POWER_END not in text:
        raise SystemExit(f"readme_results: {path} has no {POWER_BEGIN} ... {POWER_END} block")
    head, rest = text.split(POWER_BEGIN, 1)
    _, tail = rest.split(POWER_END, 1)
    return f"{head}{POWER_BEGIN}\n{generated}\n{POWER_END}{tail}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a file's block is stale")
    ap.add_argument("--readme", type=Path, nargs="+", default=[REPO / "README.md", REPO / "book" / "intro.md"],
                    help="files holding the block (default: README.md and book/intro.md)")
    ap.add_argument("--results", type=Path, default=REPO / "results")
    args = ap.parse_args(argv)
    stale = []
    for path in args.readme:
        text = path.read_text()
        new = render(text, block(args.results, glossary_link(path)), path)
        if args.check:
            stale += [path] if new != text else []
        elif new != text:
            path.write_text(new)
    method = REPO / "book" / "method.md"
    if args.results == REPO / "results" and method.exists():  # protocol version 4's designs
        text = method.read_text()
        new = render_power(text, power_block(args.results), method)
        if args.check:
            stale += [method] if new != text else []
        elif new != text:
            method.write_text(new)
    if stale:
        print(f"readme_results: the results block of {', '.join(map(str, stale))} is stale; "
              "run python scripts/readme_results.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
