"""README's results block is generated from results/ and checked to be current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mpqlib.study import report

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


def test_block_comes_from_claims_json_and_check_sees_staleness(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    c = report.claim("seam-vs-uniform", "m", "w3a2", _table(), "a", "b", "difference", n_boot=500)
    report.claims_json([c], {"m": {"seed_sd_pp": 0.3, "policy_sd_pp": 0.9, "ratio": 3.0}},
                       {"m": {"seam_proxy_acc": 85.0, "linear_probe_acc": 88.0}}, results / "claims.json",
                       budgets={"m": "w3a2"})
    readme, intro = tmp_path / "README.md", tmp_path / "intro.md"
    readme.write_text("# x\n\n<!-- results:begin -->\nold numbers\n<!-- results:end -->\n\nrest\n")
    intro.write_text("# book\n\n<!-- results:begin -->\n<!-- results:end -->\n")
    args = ["--readme", str(readme), str(intro), "--results", str(results)]
    assert readme_results.main([*args, "--check"]) == 1          # "old numbers" are not what results give
    assert readme_results.main(args) == 0
    text = readme.read_text()
    assert "old numbers" not in text and text.endswith("rest\n")
    assert "| SEAM vs uniform | +1.6 pp (69.9% vs 68.3%), Table 2 | +0.50 [+0.4" in text
    assert "| better: reproduced | — |" in text                  # powered (ratio 3): no caveat
    assert "power ratio 3.00 in the run" in text and "85.0%" in text and "W3A2" in text
    assert "- **Transfer:** a policy searched on a proxy matched the search on the target" in text
    assert "[paired difference](" in text                        # README: plain links to the glossary
    book_block = intro.read_text()
    assert book_block.startswith("# book\n\n<!-- results:begin -->\nGenerated from")
    assert readme_results.glossary_link(ROOT / "book" / "intro.md") is None   # the book: glossary roles
    assert "{term}`paired difference`" in readme_results.block(results, None)
    assert readme_results.main([*args, "--check"]) == 0


def test_a_file_without_the_markers_is_named(tmp_path):
    (tmp_path / "results").mkdir()
    plain = tmp_path / "plain.md"
    plain.write_text("# no markers\n")
    with pytest.raises(SystemExit, match=r"plain\.md has no <!-- results:begin -->"):
        readme_results.main(["--readme", str(plain), "--results", str(tmp_path / "results")])


def test_the_committed_readme_is_current():
    assert readme_results.main(["--check"]) == 0, "run python scripts/readme_results.py and commit README.md and book/intro.md"


def test_an_underpowered_model_carries_the_caveat_on_every_row_and_no_stance_without_a_claim(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    rows = _table()
    cs = [report.claim(cid, "m", "w3a2", rows, "a", "b", "difference", n_boot=500)
          for cid in ("seam-vs-uniform", "seam-vs-hawq", "fmnist4-control")]
    report.claims_json(cs, {"m": {"seed_sd_pp": 0.3, "policy_sd_pp": 0.45, "ratio": 1.5}},
                       {"m": {"seam_proxy_acc": 85.0, "linear_probe_acc": 88.0}}, results / "claims.json",
                       budgets={"m": "w3a2"})
    text = readme_results.block(results)
    table = [line for line in text.splitlines() if line.startswith("| ") and "claim |" not in line]
    assert len(table) == 3 and all(line.endswith("| underpowered (ratio 1.50 < 2) |") for line in table)
    assert "**underpowered**" in text and "is underpowered (power ratio 1.50 in the run" in text
    hawq, control = table[1], table[2]
    assert "Table 2 has no HAWQ row" in hawq and "a diagnostic" in control and "better: no claim in the paper" in hawq
    assert "better: no claim in the paper" in control          # the MNIST deficit is not counted twice
    assert "contradicts" not in text and "-0.00" not in text
