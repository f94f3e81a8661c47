from pathlib import Path

import pytest
import torch

from mpqlib import data as D
from mpqlib.models import resnet8, resnet20
from mpqlib.train import CheckpointError, evaluate, fit, load_checkpoint, save_checkpoint, seed_everything, train_fp

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


@pytest.mark.slow
@pytest.mark.parametrize("name,minimum", [("resnet20-fmnist", 92.5), ("resnet8-fmnist", 88.0)])
def test_committed_checkpoints_reach_their_accuracy(name, minimum, fmnist_test):
    path = ROOT / "checkpoints" / f"{name}.pt"
    model, meta = load_checkpoint(path)
    top1 = evaluate(model, fmnist_test)
    assert top1 >= minimum
    assert abs(top1 - meta["top1"]) < 0.05  # the recorded metric is the measured one


def test_a_nan_in_the_input_stops_training_before_it_reaches_the_weights(tmp_path):
    from mpqlib.errors import TrainingError

    data = D.search_data("fmnist:10", seed=0)
    data.x[7, 0, 3, 3] = float("nan")  # one pixel of one image
    seed_everything(0)
    model = resnet8()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    state = tmp_path / "run.state"
    with pytest.raises(TrainingError, match=r"not finite.*epoch 1, batch \d+.*NaN"):
        fit(model, D.loader(data, 100, shuffle=False), opt, epochs=1, state_path=state, progress=False)
    assert not state.exists()  # nothing saved
    assert all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point())
    assert torch.equal(model.conv1.weight, before["conv1.weight"])  # the NaN batch was the first: no step taken


def test_non_finite_weights_are_never_saved_nor_loaded(tmp_path):
    model = resnet8()
    with torch.no_grad():
        model.fc.bias[0] = float("inf")
    path = tmp_path / "m.pt"
    with pytest.raises(CheckpointError, match="refusing to save.*NaN or inf.*fc.bias"):
        save_checkpoint(path, model, {"arch": "resnet8"})
    assert not path.exists()
    torch.save({"state_dict": model.state_dict(), "meta": {"arch": "resnet8"}}, path)  # written by hand
    with pytest.raises(CheckpointError, match="NaN or inf"):
        load_checkpoint(path)


def test_plain_state_dicts_and_ddp_prefixes_load(tmp_path):
    net = resnet8(num_classes=4)
    for i, obj in enumerate([net.state_dict(), {"state_dict": net.state_dict()},
                             {"model": {f"module.{k}": v for k, v in net.state_dict().items()}}]):
        path = tmp_path / f"{i}.pth"
        torch.save(obj, path)
        loaded, meta = load_checkpoint(path, arch="resnet8")
        assert loaded.fc.out_features == 4 and meta["source"] == "state_dict"  # classes read from fc.weight
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), loaded.state_dict().values()))
    with pytest.raises(CheckpointError, match="plain state dict.*--model"):
        load_checkpoint(tmp_path / "0.pth")
    torch.save({"epoch": 3}, tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="holds no model weights"):
        load_checkpoint(tmp_path / "junk.pth", arch="resnet8")


def test_train_fp_takes_a_config_and_any_dataset(tmp_path):
    from mpqlib.config import TrainConfig
    from mpqlib.errors import ConfigError

    train, test = D.search_data("fmnist:8", seed=0), D.search_data("fmnist:5", seed=1)
    out = tmp_path / "m.pt"
    ds = torch.utils.data.TensorDataset(train.x, train.y)  # a plain Dataset, not Images
    ds.classes = train.classes
    meta = train_fp("resnet8", TrainConfig(epochs=1, batch_size=40), train=ds, test=test, out=out, progress=False)
    assert meta["epochs"] == 1 and meta["batch_size"] == 40 and meta["train_images"] == 80
    model, saved = load_checkpoint(out)
    assert saved["top1"] == meta["top1"] and saved["in_channels"] == 1
    assert not (tmp_path / "m.pt.state").exists()
    with pytest.raises(ConfigError, match="epochs must be > 0"):
        train_fp("resnet8", epochs=0, train=train, test=test, out=out)
    with pytest.raises(ConfigError, match="checkpoint needs a name of its own"):
        train_fp("resnet8", epochs=1, train=train, test=test, out=tmp_path / "m.json")
