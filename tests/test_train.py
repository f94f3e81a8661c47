from pathlib import Path

import pytest
import torch

from mpqlib import data as D
from mpqlib.models import resnet8, resnet20
from mpqlib.train import CheckpointError, evaluate, fit, load_checkpoint, save_checkpoint, seed_everything

ROOT = Path(__file__).resolve().parents[1]


def _tiny_run(state_path=None, epochs=2):
    seed_everything(0)
    model = resnet8()
    data = D.search_data("fmnist:10", seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    hist = fit(model, D.loader(data, 50, seed=0), opt, epochs=epochs, augment=True, seed=0,
               state_path=state_path, progress=False)
    return model, hist


def test_training_is_deterministic_and_resumable(tmp_path):
    a, ha = _tiny_run()
    b, _ = _tiny_run()
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    # stop after one epoch, then resume: same result as the uninterrupted run
    state = tmp_path / "run.state"
    _tiny_run(state, epochs=1)
    c, hc = _tiny_run(state, epochs=2)
    assert [e["epoch"] for e in hc.epochs] == [1, 2]
    for (k, va), vc in zip(a.state_dict().items(), c.state_dict().values()):
        assert torch.allclose(va, vc), k
    assert ha.images == 200


def test_checkpoint_roundtrip_and_errors(tmp_path):
    model = resnet8()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, {"arch": "resnet8", "dataset": "fmnist", "top1": 0.0})
    loaded, meta = load_checkpoint(path)
    assert meta["arch"] == "resnet8" and "code_version" in meta
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(CheckpointError, match="not found.*mpq train"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="resnet8.*not 'resnet20'"):
        load_checkpoint(path, arch="resnet20")
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(path, resnet20())
    bad = tmp_path / "bad.pt"
    bad.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("name,minimum", [("resnet20-fmnist", 92.5), ("resnet8-fmnist", 88.0)])
def test_committed_checkpoints_reach_their_accuracy(name, minimum, fmnist_test):
    path = ROOT / "checkpoints" / f"{name}.pt"
    model, meta = load_checkpoint(path)
    top1 = evaluate(model, fmnist_test)
    assert top1 >= minimum
    assert abs(top1 - meta["top1"]) < 0.05  # the recorded metric is the measured one
