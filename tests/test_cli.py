import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mpqlib.cli import main
from mpqlib.models import build

ROOT = Path(__file__).resolve().parents[1]
CKPT = "checkpoints/resnet8-fmnist.pt"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _error(argv, capsys) -> str:
    """Run ``mpq argv``; it must fail with exit code 2 and exactly one line `mpq: error: ...`."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mpq: error: "), err
    return err[0]


@pytest.mark.slow
def test_help_reads_well():
    out = subprocess.run([sys.executable, "-m", "mpqlib.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("search", "cost", "qat", "eval", "train", "data", "torchrun", "imagefolder:PATH"):
        assert cmd in out
    out = subprocess.run([sys.executable, "-m", "mpqlib.cli", "search", "--help"], capture_output=True, text=True,
                         check=True).stdout
    # one flag per config field, generated from the dataclasses, with their defaults
    assert "--margin" in out and "--likelihood-weight" in out and "--lr-step" in out and "--iters" in out
    assert re.search(r"--epochs INT\s+default 8 \[seam", out)


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


@pytest.mark.parametrize("budget,bits", [("w3a2", (3, 2)), ("w2a4", (2, 4)), ("w2.5a2.5", (2, 2))])
def test_uniform_meets_a_wxay_budget_exactly(tmp_path, budget, bits):
    """--budget w3a2 means uniform W3A2 (6 bit-products, on the budget), not W2A2 at 2/3 of it;
    a budget with no uniform counterpart gets the highest w = a within it."""
    out = tmp_path / "u.json"
    assert main(["search", "--checkpoint", CKPT, "--method", "uniform", "--budget", budget, "--out", str(out),
                 "--quiet"]) == 0
    rec = json.loads(out.read_text())["record"]
    assert set(map(tuple, json.loads((tmp_path / "u.policy.json").read_text())["bits"].values())) == {bits}
    assert rec["bits"] == list(bits) and rec["bitops"] <= rec["budget_bitops"]
    assert (rec["bitops"] == rec["budget_bitops"]) == (budget != "w2.5a2.5")


def test_config_file_and_flags_build_the_method_config(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("method: uniform\ncandidates: [2, 3, 4]\nseed: 3\n")
    out = tmp_path / "c.json"
    assert main(["search", "--checkpoint", CKPT, "--config", str(cfg), "--seed", "5", "--budget", "w8a8",
                 "--out", str(out)]) == 0
    rec = json.loads(out.read_text())["record"]
    assert rec["config_type"] == "UniformConfig"
    assert rec["config"]["candidates"] == [2, 3, 4] and rec["config"]["seed"] == 5  # the flag wins over the file
    # w8a8 is above the largest candidate: the highest uniform precision within it is W4A4
    assert set(map(tuple, json.loads((tmp_path / "c.policy.json").read_text())["bits"].values())) == {(4, 4)}


@pytest.mark.parametrize("argv,message", [
    (["search", "--checkpoint", CKPT, "--method", "seam", "--data", "cifar10"], "unknown search data"),
    (["search", "--checkpoint", CKPT, "--method", "uniform", "--budget", "1000"], "smallest feasible|needs"),
    (["search", "--checkpoint", CKPT, "--budget", "lots"], "cannot read budget"),
    (["search", "--checkpoint", CKPT, "--arch", "resnet20"], "not 'resnet20'"),
    (["eval", "--checkpoint", "nowhere.pt"], "not found"),
    # bad inputs, each one line
    (["search", "--checkpoint", CKPT, "--method", "uniform", "--budget", "-5"], "positive"),
    (["search", "--checkpoint", CKPT, "--method", "uniform", "--budget=-1e9"], "positive"),
    (["search", "--checkpoint", CKPT, "--method", "uniform", "--budget", "-1e9"], "--budget=-5"),
    (["search", "--checkpoint", CKPT, "--method", "uniform", "--budget", "w-3a-3"], "budget"),
    (["search", "--checkpoint", CKPT, "--method", "uniform", "--budget", "inf"], "positive finite"),
    (["search", "--checkpoint", CKPT, "--method", "seam", "--epochs", "0"], r"epochs must be > 0"),
    (["search", "--checkpoint", CKPT, "--method", "limpq", "--epochs", "-1"], r"epochs must be > 0"),
    (["search", "--checkpoint", CKPT, "--method", "seam", "--epochs", "two"], r"--epochs takes a whole number"),
    (["search", "--checkpoint", CKPT, "--method", "seam", "--gamma", "inf"], r"gamma must be finite"),
    (["search", "--checkpoint", CKPT, "--method", "seam", "--candidates", "1,2,3"], r"outside 2\.\.16"),
    (["search", "--checkpoint", CKPT, "--method", "seam", "--iters", "3"], r"SeamConfig has no option iters"),
    (["search", "--checkpoint", CKPT, "--method", "seam", "--data", "mnist:0"], r"at least 1 image per class"),
    (["--threads", "-1", "cost", "--checkpoint", CKPT], r"--threads must be >= 1"),
    (["--threads", "0", "cost", "--checkpoint", CKPT], r"--threads must be >= 1"),
    (["train", "--epochs", "0"], r"TrainConfig\.epochs must be > 0"),
    (["qat", "--checkpoint", CKPT, "--policy", "p.json", "--epochs", "0"], r"QATConfig\.epochs must be > 0"),
    (["search", "--checkpoint", CKPT, "--out", "result"], r"--out result must end with \.json"),
    (["search", "--checkpoint", CKPT, "--out", "a.json", "--policy-out", "a.json"], "same file"),
    (["search", "--method", "fracbits"], "invalid choice"),
    (["search", "--checkpoint", CKPT, "--input-size", "3,28"], "C,H,W"),
    (["cost", "--checkpoint", CKPT, "--input-size", "3,28,28"], "does not fit.*--input-size"),
    (["cost", "--model", "resnet18", "--input-size", "1,32,32"], "3-channel"),
    (["cost", "--model", "nosuchnet"], "unknown architecture"),
    (["cost", "--checkpoint", CKPT, "--device", "tpu"], "device must be cpu, cuda or auto"),
    (["cost", "--checkpoint", CKPT, "--policy", "nowhere.json"], "does not exist"),
])
def test_bad_arguments_give_one_line_errors(argv, message, capsys):
    assert re.search(message, _error(argv, capsys))


def test_search_never_writes_policy_over_record(tmp_path, capsys):
    _error(["search", "--checkpoint", CKPT, "--method", "uniform", "--out", str(tmp_path / "r")], capsys)
    _error(["search", "--checkpoint", CKPT, "--method", "uniform", "--out", str(tmp_path / "r.json"),
            "--policy-out", str(tmp_path / "." / "r.json")], capsys)
    assert not list(tmp_path.iterdir())  # nothing written
    rec = tmp_path / "r.json"
    assert main(["search", "--checkpoint", CKPT, "--method", "uniform", "--out", str(rec)]) == 0
    assert "record" in json.loads(rec.read_text()) and "bits" in json.loads((tmp_path / "r.policy.json").read_text())


@pytest.mark.parametrize("policy", ['{"schema_version": 1, "bits": [], "fixed": {}}',
                                    '{"schema_version": 1, "bits": {}, "fixed": null}', "{not json"])
def test_malformed_policies_are_one_line_errors(policy, tmp_path, capsys):
    p = tmp_path / "p.json"
    p.write_text(policy)
    line = _error(["cost", "--checkpoint", CKPT, "--policy", str(p)], capsys)
    assert str(p) in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_cuda_without_gpu_is_refused(capsys):
    assert "no CUDA GPU" in _error(["cost", "--checkpoint", CKPT, "--device", "cuda"], capsys)


def test_root_is_never_a_users_folder(tmp_path, capsys):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"\xff\xd8")
    assert "holiday.jpg" in _error(["--root", str(mine), "data"], capsys)
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.jpg"]  # nothing staged into it
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "is a file" in _error(["--root", str(a_file), "data"], capsys)


def test_data_root_from_environment_pointing_at_a_file(tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    monkeypatch.setenv("MPQLIB_DATA", str(a_file))
    assert "MPQLIB_DATA" in _error(["search", "--checkpoint", CKPT, "--data", "mnist:5"], capsys)


def test_plain_state_dicts_load_with_model_flags(tmp_path, capsys):
    """A torchvision-style state dict (with DDP's module. prefix, or under 'model') needs only --model;
    classes come from its classifier."""
    net = build("resnet8", 7, 1)
    plain, wrapped = tmp_path / "plain.pth", tmp_path / "wrapped.pth"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, plain)
    torch.save({"model": net.state_dict(), "epoch": 3}, wrapped)
    for path in (plain, wrapped):
        assert main(["cost", "--model", "resnet8", "--checkpoint", str(path)]) == 0
        out = capsys.readouterr().out
        assert re.search(r"fc\s+linear.*\b448\b", out)  # 64 x 7 classifier weights
    assert "--model" in _error(["cost", "--checkpoint", str(plain)], capsys)
    bad = tmp_path / "nan.pth"
    state = net.state_dict()
    state["fc.weight"][0, 0] = float("nan")
    torch.save(state, bad)
    assert "NaN" in _error(["cost", "--model", "resnet8", "--checkpoint", str(bad)], capsys)


def test_torchvision_model_at_any_input_size(capsys):
    assert main(["cost", "--model", "mobilenet_v2", "--num-classes", "10", "--input-size", "3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "features.0.0" in out and "input 3x32x32" in out


def test_root_may_be_new_empty_or_mpqlibs_own(tmp_path):
    from mpqlib.cli import check_root

    check_root(str(tmp_path / "new"))
    check_root(str(tmp_path))  # empty
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    (tmp_path / "FashionMNIST").mkdir()
    check_root(str(tmp_path))  # what `mpq data` stages
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", ["train", "qat"])
def test_train_and_qat_read_their_config_file_and_flags_win(command, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("epochs: 2\nbatch_size: 64\nmomentum: 0.9\n")
    extra = ["--checkpoint", CKPT, "--policy", "p.json"] if command == "qat" else []
    assert "has no option momentum" in _error([command, *extra, "--config", str(cfg)], capsys)
    cfg.write_text("epochs: 0\n")
    assert "epochs must be > 0, not 0" in _error([command, *extra, "--config", str(cfg)], capsys)
    # the flag wins over the file: epochs fine now, the flag's bad lr is what fails
    assert "lr must be > 0" in _error([command, *extra, "--config", str(cfg), "--epochs", "1", "--lr", "-1"], capsys)
