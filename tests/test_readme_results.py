"""README's results block is generated from results/ and checked to be current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mpqlib import report

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
    assert "| SEAM vs uniform | +0.50 | [+0.4" in text and "| better | supports |" in text
    assert "Reproduced (supports the paper): SEAM vs uniform." in text
    assert intro.read_text().startswith("# book\n\n<!-- results:begin -->\nGenerated from")
    assert "ratio 3.00" in text and "85.0%" in text and "W3A2" in text
    assert readme_results.main([*args, "--check"]) == 0


def test_a_file_without_the_markers_is_named(tmp_path):
    (tmp_path / "results").mkdir()
    plain = tmp_path / "plain.md"
    plain.write_text("# no markers\n")
    with pytest.raises(SystemExit, match=r"plain\.md has no <!-- results:begin -->"):
        readme_results.main(["--readme", str(plain), "--results", str(tmp_path / "results")])


def test_the_committed_readme_is_current():
    assert readme_results.main(["--check"]) == 0, "run python scripts/readme_results.py and commit README.md and book/intro.md"
