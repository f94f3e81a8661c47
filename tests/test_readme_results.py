"""README's results block is generated from results/ and checked to be current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mpqlib.study import claims_doc, report

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_results", ROOT / "scripts" / "readme_results.py")
readme_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_results)


def _table() -> list[dict]:
    """Two policies under three QAT seeds; 'a' is 0.5 pp better within every seed, give or take 0.05."""
    rows = []
    for q, base in enumerate((91.0, 91.4, 90.8)):
        for p, delta in (("a", 0.5 + 0.05 * (q - 1)), ("b", 0.0)):
            rows.append({"model": "m", "budget": "w3a2", "policy": p, "search_seed": 0, "qat_seed": q,
                         "top1": base + delta})
    return rows


def _rows(model: str = "mobilenetv1") -> list[dict]:
    return [{**r, "model": model} for r in _table()]


def test_block_comes_from_claims_json_and_check_sees_staleness(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    rows = _rows()
    cs = [report.claim("seam-vs-uniform", "mobilenetv1", "w2a4", rows, "a", "b", "difference", n_boot=500),
          report.claim("proxy-vs-target", "mobilenetv1", "w2a4", rows, "b", "a", "equivalence", n_boot=500)]
    claims_doc.claims_json(cs, {"mobilenetv1": {"seed_sd_pp": 0.3, "policy_sd_pp": 0.9, "ratio": 3.0}},
                       {"mobilenetv1": {"seam_proxy_acc": 85.0, "linear_probe_acc": 88.0}}, results / "claims.json",
                       budgets={"mobilenetv1": "w2a4"})
    readme, intro = tmp_path / "README.md", tmp_path / "intro.md"
    readme.write_text("# x\n\n<!-- results:begin -->\nold numbers\n<!-- results:end -->\n\nrest\n")
    intro.write_text("# book\n\n<!-- results:begin -->\n<!-- results:end -->\n")
    args = ["--readme", str(readme), str(intro), "--results", str(results)]
    assert readme_results.main([*args, "--check"]) == 1          # "old numbers" are not what results give
    assert readme_results.main(args) == 0
    text = readme.read_text()
    assert "old numbers" not in text and text.endswith("rest\n")
    # the first question, answered with its numbers: b - a is about -0.5 pp, a CI wholly below -0.3
    assert "**Does a search on the proxy match the search on the target?** No, at this scale" in text
    assert "-0.50 [-0.5" in text and "after the one-epoch QAT" in text
    assert "**At what cost?** Not measured yet." in text          # no efficiency.json
    table = [line for line in text.splitlines() if line.startswith("| ") and "the paper |" not in line]
    assert len(table) == 2 and len(table) <= 8
    assert table[0].startswith("| Transfer, one-epoch QAT (MobileNetV1) | same accuracy as a search on the target")
    assert "| SEAM vs uniform precision (MobileNetV1) | +1.6 pp (69.9% vs 68.3%), Table 2 | +0.50 [+0.4" in table[1]
    assert table[1].endswith("| better: reproduced |")         # powered (ratio 3): no caveat
    assert "[paired difference](" in text                        # README: plain links to the glossary
    assert "Generated from" not in text and "scripts/" not in text  # no process text on a reader's page
    book_block = readme_results.block(results, None)          # inside the book: glossary roles, book-relative links
    assert "{term}`paired difference`" in book_block and "](chapters/06_claims.ipynb)" in book_block
    assert readme_results.glossary_link(ROOT / "book" / "intro.md") is None   # the book: glossary roles
    assert readme_results.main([*args, "--check"]) == 0


def test_a_file_without_the_markers_is_named(tmp_path):
    (tmp_path / "results").mkdir()
    plain = tmp_path / "plain.md"
    plain.write_text("# no markers\n")
    with pytest.raises(SystemExit, match=r"plain\.md has no <!-- results:begin -->"):
        readme_results.main(["--readme", str(plain), "--results", str(tmp_path / "results")])


def test_the_committed_readme_is_current():
    assert readme_results.main(["--check"]) == 0, "run python scripts/readme_results.py and commit README.md and book/intro.md"


def test_an_underpowered_model_carries_the_caveat_on_every_row(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    rows = _rows()
    cs = [report.claim(cid, "mobilenetv1", "w2a4", rows, "a", "b", "difference", n_boot=500)
          for cid in ("seam-vs-uniform", "seam-vs-limpq")]
    claims_doc.claims_json(cs, {"mobilenetv1": {"seed_sd_pp": 0.3, "policy_sd_pp": 0.45, "ratio": 1.5}},
                       {"mobilenetv1": {"seam_proxy_acc": 85.0, "linear_probe_acc": 88.0}}, results / "claims.json",
                       budgets={"mobilenetv1": "w2a4"})
    text = readme_results.block(results)
    table = [line for line in text.splitlines() if line.startswith("| ") and "the paper |" not in line]
    assert len(table) == 2 and all("underpowered (ratio 1.50 < 2)" in line for line in table)
    assert "Not tested yet" in text                              # no transfer claim: the question stays open
    assert "contradicts" not in text and "-0.00" not in text
