"""``mpq train --init PATH`` / :func:`mpqlib.train.init_from`: fine-tuning from a plain state dict
(torchvision's or the user's own), with a classifier head of another size re-initialised and named,
and every other mismatch a clear error."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision

from mpqlib.cli import main
from mpqlib.models import build
from mpqlib.train import CheckpointError, init_from


def _r18(classes: int) -> torch.nn.Module:
    torch.manual_seed(1)
    return torchvision.models.resnet18(num_classes=classes)


def test_a_head_of_another_size_is_reinitialised_from_the_seed_and_the_rest_loaded(tmp_path):
    src = _r18(1000)  # torchvision's 1000-class head
    torch.save(src.state_dict(), tmp_path / "r18.pth")
    heads = []
    for _ in range(2):
        torch.manual_seed(123)  # a different starting model each time: the head must come from the seed only
        model = torchvision.models.resnet18(num_classes=4)
        assert init_from(model, tmp_path / "r18.pth", seed=7) == ["fc.bias", "fc.weight"]
        heads.append(model.fc.weight.detach().clone())
        for k, v in src.state_dict().items():
            if not k.startswith("fc."):
                assert torch.equal(model.state_dict()[k], v), k
    assert torch.equal(heads[0], heads[1])
    model = torchvision.models.resnet18(num_classes=4)
    init_from(model, tmp_path / "r18.pth", seed=8)
    assert not torch.equal(model.fc.weight, heads[0])


def test_the_users_own_state_dict_loads_whole(tmp_path):
    src = _r18(3)
    torch.save(src.state_dict(), tmp_path / "own.pth")
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, tmp_path / "wrapped.pth")
    for name in ("own.pth", "wrapped.pth"):
        model = torchvision.models.resnet18(num_classes=3)
        assert init_from(model, tmp_path / name) == []
        assert all(torch.equal(model.state_dict()[k], v) for k, v in src.state_dict().items())


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("layer1.0.conv1.weight"), r"missing layer1\.0\.conv1\.weight"),
    (lambda s: s.update(extra=torch.zeros(2)), r"unexpected extra"),
    (lambda s: s.update({"conv1.weight": torch.zeros(64, 1, 7, 7)}), r"other shapes conv1\.weight \(\(64, 1, 7, 7\) in the file, \(64, 3, 7, 7\) in the model\)"),
])
def test_any_other_mismatch_is_an_error_naming_the_keys(tmp_path, damage, message):
    state = _r18(1000).state_dict()
    damage(state)
    torch.save(state, tmp_path / "bad.pth")
    model = torchvision.models.resnet18(num_classes=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=message + r".*pass the --model"):
        init_from(model, tmp_path / "bad.pth")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())  # untouched


def test_a_corrupt_or_non_state_dict_file_is_a_clear_error(tmp_path):
    model = torchvision.models.resnet18(num_classes=4)
    (tmp_path / "corrupt.pth").write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match=r"corrupt or not a torch file; save the weights with torch\.save"):
        init_from(model, tmp_path / "corrupt.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="holds no model weights"):
        init_from(model, tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not found"):
        init_from(model, tmp_path / "absent.pth")


def test_cli_train_init_names_the_skipped_head_and_records_the_init(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(build("resnet8", 1000, 1).state_dict(), tmp_path / "r8.pth")
    out = tmp_path / "m.pt"
    args = ["train", "--quiet", "--model", "resnet8", "--data", "fmnist:4", "--eval-data", "optdigits", "--epochs", "1",
            "--batch-size", "20", "--device", "cpu", "--out", str(out), "--init", str(tmp_path / "r8.pth")]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "skipped fc.bias, fc.weight (a classifier head of another size in the file), re-initialised from seed 0" in text
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["init"]["reinitialised"] == ["fc.bias", "fc.weight"] and rec["num_classes"] == 10
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    assert main(args[:-1] + [str(tmp_path / "bad.pth"), "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mpq: error: --init") and "missing" in err[0]
