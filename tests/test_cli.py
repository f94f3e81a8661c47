import json
import subprocess
import sys

import pytest

from mpqlib.cli import main

CKPT = "checkpoints/resnet8-fmnist.pt"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[1])


def test_help_reads_well():
    out = subprocess.run([sys.executable, "-m", "mpqlib.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("search", "cost", "qat", "eval", "train", "data"):
        assert cmd in out


def test_cost_prints_the_layer_table(capsys):
    assert main(["cost", "--checkpoint", CKPT]) == 0
    out = capsys.readouterr().out
    assert "layer2.0.downsample.0" in out and "uniform w3a3 budget" in out


def test_search_uniform_writes_policy_and_record(tmp_path, capsys):
    out = tmp_path / "u.json"
    assert main(["search", "--checkpoint", CKPT, "--method", "uniform", "--budget", "w3a3", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["record"]["method"] == "uniform" and rec["record"]["bitops"] <= rec["record"]["budget_bitops"]
    pol = tmp_path / "u.policy.json"
    assert json.loads(pol.read_text())["schema_version"] == 1
    assert main(["cost", "--checkpoint", CKPT, "--policy", str(pol)]) == 0
    assert "W3A3" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["search", "--checkpoint", CKPT, "--method", "seam", "--data", "cifar10"], "unknown search data"),
    (["search", "--checkpoint", CKPT, "--method", "uniform", "--budget", "1000"], "smallest feasible|needs"),
    (["search", "--checkpoint", CKPT, "--budget", "lots"], "cannot read budget"),
    (["search", "--checkpoint", CKPT, "--arch", "resnet20"], "not 'resnet20'"),
    (["eval", "--checkpoint", "nowhere.pt"], "not found"),
])
def test_bad_arguments_give_clear_errors(argv, message, capsys):
    assert main(argv) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_unknown_method_is_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", "--method", "fracbits"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err
