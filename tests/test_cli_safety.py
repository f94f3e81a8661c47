"""No silent wrong answer, and every bad input one line and exit 2 before the work.

Real data throughout: a small image folder written from Fashion-MNIST test images (32x32 RGB
PNG), the committed ResNet-8 checkpoint, and QAT states made with mpqlib's own quantizer.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mpqlib import data as D
from mpqlib.cli import main
from mpqlib.models import build
from mpqlib.policy import Policy, split_layers
from mpqlib.qat import save_state
from mpqlib.quant import quantize
from mpqlib.train import evaluate, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "checkpoints" / "resnet8-fmnist.pt"
CKPT20 = ROOT / "checkpoints" / "resnet20-fmnist.pt"
TORCHRUN = Path(sys.executable).with_name("torchrun")


def _error(argv, capsys) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mpq: error: "), err
    return err[0]


def write_folder(root: Path, per_class: int = 3, classes: int = 10, size: int = 32) -> Path:
    """Fashion-MNIST test images as size x size RGB PNGs, one sub-folder per class."""
    from PIL import Image

    test = D.load("fmnist", "test")
    raw = (test.x * D.STD + D.MEAN).clamp(0, 1).mul(255).round().to(torch.uint8)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for k, i in enumerate(torch.nonzero(test.y == c % 10).flatten()[:per_class].tolist()):
            Image.fromarray(raw[i, 0].numpy()).convert("RGB").resize((size, size)).save(root / f"c{c}" / f"{k}.png")
    return root


def mixed_policy(model) -> Policy:
    searchable, _ = split_layers(model)
    return Policy({n: ((2, 4, 6, 3)[i % 4], (4, 3, 5, 8)[i % 4]) for i, n in enumerate(searchable)})


@pytest.fixture(scope="module")
def qat_state(tmp_path_factory):
    """A QAT state of ResNet-8 under a mixed policy (steps calibrated on real images, no training
    needed for these checks), with the policy file and the expected top-1 on optdigits."""
    tmp = tmp_path_factory.mktemp("qat")
    model, _ = load_checkpoint(CKPT)
    policy = mixed_policy(model)
    policy.save(tmp / "p.json")
    qmodel = quantize(model, policy, calibration=D.load("fmnist", "test").x[:64])
    save_state(tmp / "q.pt", qmodel, policy, (1, 28, 28), CKPT)
    top1 = evaluate(qmodel, D.load("optdigits", "test"))
    fp = evaluate(model, D.load("optdigits", "test"))
    assert abs(top1 - fp) > 1  # the cases below tell the two apart
    return tmp, policy, top1


# --------------------------------------------------------------------------- no silent wrong answer
def test_eval_of_a_qat_state_without_policy_uses_the_policy_it_carries(qat_state, capsys):
    tmp, _, top1 = qat_state
    assert main(["eval", "--checkpoint", str(CKPT), "--qat-state", str(tmp / "q.pt"), "--eval-data", "optdigits"]) == 0
    out = capsys.readouterr().out
    assert f"top-1 {top1:.2f}%" in out and "at input 1x28x28" in out
    # the checkpoint it came from is recorded: no --checkpoint needed
    assert main(["eval", "--qat-state", str(tmp / "q.pt"), "--eval-data", "optdigits"]) == 0
    assert f"top-1 {top1:.2f}%" in capsys.readouterr().out


def test_a_qat_state_under_another_policy_size_or_checkpoint_is_refused(qat_state, tmp_path, capsys):
    tmp, policy, _ = qat_state
    other = Policy({n: (4, 4) for n in policy.bits})
    other.save(tmp_path / "other.json")
    q = str(tmp / "q.pt")
    line = _error(["eval", "--checkpoint", CKPT, "--qat-state", q, "--policy", tmp_path / "other.json"], capsys)
    assert "another policy" in line and "drop --policy" in line
    assert "fine-tuned at input 1x28x28" in _error(["eval", "--checkpoint", CKPT, "--qat-state", q,
                                                    "--input-size", "1,32,32"], capsys)
    copy = tmp_path / "copy.pt"
    model, meta = load_checkpoint(CKPT)
    torch.save({"state_dict": build("resnet8").state_dict(), "meta": meta}, copy)  # same model, other weights
    assert "another checkpoint" in _error(["eval", "--checkpoint", copy, "--qat-state", q], capsys)
    # the policy it carries, given explicitly, is fine
    assert main(["eval", "--checkpoint", str(CKPT), "--qat-state", q, "--policy", str(tmp / "p.json"),
                 "--eval-data", "optdigits", "--quiet"]) == 0


def test_an_old_qat_state_without_policy_needs_one(qat_state, tmp_path, capsys):
    tmp, _, _ = qat_state
    plain = tmp_path / "plain.pt"
    torch.save(torch.load(tmp / "q.pt", weights_only=True)["state_dict"], plain)
    assert "--policy" in _error(["eval", "--checkpoint", CKPT, "--qat-state", plain], capsys)


def test_torchvision_model_at_default_224_on_small_images_is_refused(tmp_path, capsys):
    folder = write_folder(tmp_path / "imgs", per_class=1)
    plain = tmp_path / "r18.pth"
    torch.save(build("resnet18", 10, 3).state_dict(), plain)  # a plain state dict: no input size
    line = _error(["eval", "--model", "resnet18", "--checkpoint", plain, "--eval-data", f"imagefolder:{folder}"], capsys)
    assert "--input-size 3,32,32" in line and "32x32" in line
    # at any image size, not only far smaller ones: 128-px images once ran at 224 px with exit 0
    big = write_folder(tmp_path / "big", per_class=1, size=128)
    line = _error(["eval", "--model", "resnet18", "--checkpoint", plain, "--eval-data", f"imagefolder:{big}"], capsys)
    assert "128x128" in line and "--input-size C,H,W" in line and "trained at" in line
    assert main(["eval", "--model", "resnet18", "--checkpoint", str(plain), "--eval-data", f"imagefolder:{folder}",
                 "--input-size", "3,32,32"]) == 0
    assert "at input 3x32x32" in capsys.readouterr().out


def _interrupted_train(argv, monkeypatch, capsys) -> None:
    """Run `mpq train argv` and press Ctrl-C after its last epoch (before the evaluation)."""
    import mpqlib.train as T

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(T, "evaluate", ctrl_c)
        assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "interrupted" in err[0]


def test_resume_only_with_the_interrupted_runs_settings(tmp_path, monkeypatch, capsys):
    out = tmp_path / "m.pt"
    base = ["train", "--model", "resnet8", "--data", "fmnist:2", "--eval-data", "optdigits", "--epochs", "1",
            "--batch-size", "10", "--out", str(out), "--quiet"]
    _interrupted_train(base, monkeypatch, capsys)
    assert (tmp_path / "m.pt.state").exists() and not out.exists()  # nothing half-written, the state kept
    line = _error([*base, "--lr", "0.05", "--data", "mnist:2"], capsys)
    assert "other settings" in line and "lr 0.1 -> 0.05" in line and "data 'fmnist-20' -> 'mnist-20'" in line
    assert "--restart" in line
    assert main([*base, "--lr", "0.05", "--data", "mnist:2", "--restart"]) == 0
    rec = json.loads((tmp_path / "m.json").read_text())
    assert rec["lr"] == 0.05 and rec["dataset"] == "mnist-20" and len(rec["history"]) == 1


# --------------------------------------------------------------------------- one line, exit 2, before the work
@pytest.mark.parametrize("workers", ["0", "1"])
def test_a_corrupt_image_is_refused_by_name(tmp_path, workers, capsys):
    folder = write_folder(tmp_path / "imgs", per_class=2)
    bad = folder / "c3" / "1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    line = _error(["eval", "--checkpoint", CKPT, "--eval-data", f"imagefolder:{folder}", "--workers", workers], capsys)
    assert str(bad) in line and "remove or replace" in line and "Traceback" not in line


def test_labels_outside_the_models_classes_are_refused_before_training(tmp_path, capsys):
    folder = write_folder(tmp_path / "imgs", per_class=1)
    line = _error(["train", "--model", "resnet8", "--num-classes", "5", "--data", f"imagefolder:{folder}",
                   "--eval-data", f"imagefolder:{folder}", "--input-size", "1,28,28", "--out", tmp_path / "m.pt"], capsys)
    assert "labels 0..9" in line and "5 classes" in line and "--num-classes" in line
    wide = write_folder(tmp_path / "wide", per_class=1, classes=12)
    policy = mixed_policy(load_checkpoint(CKPT)[0])
    policy.save(tmp_path / "p.json")
    line = _error(["qat", "--checkpoint", CKPT, "--policy", tmp_path / "p.json", "--data", f"imagefolder:{wide}",
                   "--eval-data", "optdigits"], capsys)
    assert "labels 0..11" in line and "10 classes" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "p.json", "wide"]


@pytest.mark.parametrize("argv", [
    ["search", "--checkpoint", CKPT, "--method", "uniform", "--out", "{blocked}/s.json"],
    ["search", "--checkpoint", CKPT, "--method", "uniform", "--out", "{tmp}/s.json", "--policy-out", "{blocked}/p.json"],
    ["qat", "--checkpoint", CKPT, "--policy", "{tmp}/p.json", "--data", "fmnist:2", "--out", "{blocked}/q.pt"],
    ["train", "--model", "resnet8", "--data", "fmnist:2", "--out", "{blocked}/m.pt"],
])
def test_unwritable_outputs_are_refused_before_the_work(argv, tmp_path, capsys):
    (tmp_path / "blocked").write_text("a file where a folder is needed")
    Policy.uniform(load_checkpoint(CKPT)[0], 4).save(tmp_path / "p.json")
    argv = [str(a).format(tmp=tmp_path, blocked=tmp_path / "blocked") for a in argv]
    line = _error(argv, capsys)
    assert "cannot write into" in line and "blocked" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked", "p.json"]  # nothing else written


def test_records_never_overwrite_another_commands_record(tmp_path, capsys):
    record = tmp_path / "r18.json"
    record.write_text(json.dumps({"arch": "resnet18", "checkpoint": "r18.pt", "top1": 66.0}))  # `mpq train --out r18.pt`
    line = _error(["search", "--checkpoint", CKPT, "--method", "uniform", "--out", record], capsys)
    assert "already holds a train record" in line
    assert json.loads(record.read_text())["top1"] == 66.0


def test_a_loader_worker_error_is_one_line():
    from mpqlib.cli import _one_line
    from mpqlib.errors import DataError

    wrapped = DataError("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
                        '  File "x.py", line 1, in f\nmpqlib.errors.DataError: image a.png cannot be read (truncated)')
    assert _one_line(wrapped) == "image a.png cannot be read (truncated)"


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_under_torchrun_an_error_is_reported_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "mpqlib.cli", "search",
                          "--checkpoint", str(CKPT), "--data", "nosuchdata", "--device", "cpu"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode != 0
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith(("mpq:", "mpq ("))]  # not torchrun's own summary
    assert lines == ["mpq: error: unknown search data 'nosuchdata'; choose mnist, optdigits, fmnist4, fmnist, "
                     "or NAME:N (e.g. mnist:50)"], run.stderr[-2000:]


def test_an_out_of_reach_budget_says_so(tmp_path, capsys):
    assert main(["search", "--checkpoint", str(CKPT), "--method", "uniform", "--budget", "w16a16",
                 "--out", str(tmp_path / "u.json"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "out of reach" in captured.err and "W6A6" in captured.err
    assert " on none" not in captured.out and "at input 1x28x28" in captured.out


def test_hawq_says_what_it_does_and_on_how_many_images(tmp_path, capsys):
    assert main(["search", "--checkpoint", str(CKPT), "--method", "hawq", "--data", "fmnist:3", "--iters", "1",
                 "--budget", "w4a4", "--out", str(tmp_path / "h.json"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "hawq: Hessian traces on 30 images (all of 30: fewer than --images 512)" in err


# --------------------------------------------------------------------------- seeded, and nothing finished is replaced
def test_train_is_seeded_before_the_model_is_built_and_never_trains_over_a_finished_model(tmp_path, capsys):
    """Two identical `mpq train` commands give identical weights (the initial ones come from the
    seed too); a rerun over the finished output is refused without --force."""
    base = ["train", "--model", "resnet8", "--data", "fmnist:1", "--eval-data", "optdigits", "--epochs", "1",
            "--batch-size", "10", "--lr", "0.01", "--quiet"]
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    assert main([*base, "--out", str(a)]) == 0 and main([*base, "--out", str(b)]) == 0
    wa, wb = load_checkpoint(a)[0].state_dict(), load_checkpoint(b)[0].state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    capsys.readouterr()
    before = a.read_bytes()
    line = _error([*base, "--out", a, "--lr", "0.05"], capsys)
    assert "finished model" in line and "--force" in line and a.read_bytes() == before
    assert main([*base, "--out", str(a), "--lr", "0.05", "--force"]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["lr"] == 0.05



# --------------------------------------------------------------------------- what gives a model's numbers their meaning
@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
    """ResNet-8 trained (1 epoch) on an image folder of 10 classes read with --crop center, and
    a QAT state fine-tuned from it: both carry the class names and the preprocessing."""
    tmp = tmp_path_factory.mktemp("folders")
    train, val = write_folder(tmp / "train", per_class=3), write_folder(tmp / "val", per_class=2)
    ckpt, q = tmp / "m.pt", tmp / "q.pt"
    common = ["--model", "resnet8", "--input-size", "1,28,28", "--crop", "center", "--batch-size", "10", "--quiet"]
    assert main(["train", *common, "--data", f"imagefolder:{train}", "--eval-data", f"imagefolder:{val}",
                 "--epochs", "1", "--out", str(ckpt)]) == 0
    model, meta = load_checkpoint(ckpt)
    mixed_policy(model).save(tmp / "p.json")
    assert main(["qat", "--checkpoint", str(ckpt), "--policy", str(tmp / "p.json"), "--data", f"imagefolder:{train}",
                 "--eval-data", f"imagefolder:{val}", "--epochs", "1", "--batch-size", "10", "--crop", "center",
                 "--out", str(q), "--quiet"]) == 0
    return tmp, ckpt, q


def test_a_checkpoint_and_a_qat_state_carry_their_classes_and_preprocessing(folder_model):
    tmp, ckpt, q = folder_model
    _, meta = load_checkpoint(ckpt)
    names = [f"c{c}" for c in range(10)]
    assert meta["classes"] == names and meta["preprocessing"]["crop"] == "center"
    assert meta["preprocessing"]["input_size"] == [1, 28, 28] and len(meta["preprocessing"]["mean"]) == 1
    qmeta = torch.load(q, weights_only=True)["meta"]
    assert qmeta["classes"] == names and qmeta["preprocessing"]["crop"] == "center"


def test_class_folders_that_are_not_the_models_are_refused_before_any_work(folder_model, tmp_path, capsys):
    """A missing folder renumbered the classes (11.67% with exit 0); an 11th folder gave 71.27%."""
    import shutil

    tmp, ckpt, q = folder_model
    missing = tmp_path / "missing"
    shutil.copytree(tmp / "val", missing)
    shutil.rmtree(missing / "c3")
    line = _error(["eval", "--qat-state", q, "--eval-data", f"imagefolder:{missing}"], capsys)
    assert "missing c3" in line and "class folders" in line
    extra = write_folder(tmp_path / "extra", per_class=1, classes=11)
    assert "extra c10" in _error(["eval", "--checkpoint", ckpt, "--eval-data", f"imagefolder:{extra}"], capsys)
    assert "extra c10" in _error(["export", "--qat-state", q, "--eval-data", f"imagefolder:{extra}", "--out",
                                  tmp_path / "m"], capsys)
    assert not list(tmp_path.glob("m.*"))
    assert "extra c10" in _error(["qat", "--checkpoint", ckpt, "--policy", tmp / "p.json", "--data",
                                  f"imagefolder:{extra}", "--eval-data", f"imagefolder:{tmp / 'val'}",
                                  "--out", tmp_path / "q2.pt"], capsys)
    renamed = tmp_path / "renamed"
    shutil.copytree(tmp / "val", renamed)
    (renamed / "c9").rename(renamed / "z9")
    line = _error(["eval", "--qat-state", q, "--eval-data", f"imagefolder:{renamed}"], capsys)
    assert "missing c9" in line and "extra z9" in line


def test_the_crop_a_model_was_trained_with_is_used_and_another_is_refused(folder_model, capsys):
    """--crop was not stored: `eval --qat-state ... --crop resize` gave another top-1 under the same line."""
    tmp, ckpt, q = folder_model
    top1 = json.loads((tmp / "q.json").read_text())["top1"]
    assert main(["eval", "--qat-state", str(q), "--eval-data", f"imagefolder:{tmp / 'val'}"]) == 0
    assert f"top-1 {top1:.2f}%" in capsys.readouterr().out  # read with the stored crop, as QAT measured it
    line = _error(["eval", "--qat-state", q, "--eval-data", f"imagefolder:{tmp / 'val'}", "--crop", "resize"], capsys)
    assert "--crop center" in line and "not resize" in line


def test_a_qat_state_whose_checkpoint_moved_says_so(folder_model, tmp_path, capsys):
    """It once fell back to the repository's ResNet-20 and reported a size mismatch."""
    import shutil

    tmp, ckpt, q = folder_model
    moved = tmp_path / "m.pt"
    shutil.copy(ckpt, moved)
    state = torch.load(q, weights_only=True)
    state["meta"]["checkpoint"] = str(tmp_path / "gone.pt")
    torch.save(state, tmp_path / "q.pt")
    line = _error(["eval", "--qat-state", tmp_path / "q.pt", "--eval-data", f"imagefolder:{tmp / 'val'}"], capsys)
    assert "gone.pt" in line and "not there" in line and "--checkpoint" in line and "size mismatch" not in line
    assert main(["eval", "--qat-state", str(tmp_path / "q.pt"), "--checkpoint", str(moved),
                 "--eval-data", f"imagefolder:{tmp / 'val'}"]) == 0
    assert "random weights" not in capsys.readouterr().err


# --------------------------------------------------------------------------- a search that says how sure it is
def test_a_search_says_how_sure_it_is_and_several_seeds_agree_or_not(tmp_path, capsys):
    """Per-layer margins between the best and the next candidate, a warning where the policy is
    not determined, and --seeds N: the policy of the averaged mixing weights with each layer's
    agreement across the seeds."""
    base = ["search", "--checkpoint", CKPT, "--method", "seam", "--data", "mnist:5", "--epochs", "1", "--budget",
            "w3a3", "--quiet"]
    assert main([*map(str, base), "--out", str(tmp_path / "one.json")]) == 0
    out = capsys.readouterr()
    sure = json.loads((tmp_path / "one.json").read_text())["record"]["decisiveness"]
    assert sure["layers"] == len(sure["per_layer"]) and 0 <= sure["determined"] <= sure["layers"]
    assert sure["no_preference"] == 0.2 and all(0 <= v["w"] <= 1 and 0 <= v["a"] <= 1 for v in sure["per_layer"].values())
    assert "decisiveness:" in out.out and "margin w" in out.out
    assert sure["determined"] < sure["layers"] / 2 and "not determined" in out.err and "--seeds" in out.err
    assert main([*map(str, base), "--seeds", "2", "--out", str(tmp_path / "two.json")]) == 0
    rec = json.loads((tmp_path / "two.json").read_text())
    agree = rec["record"]["agreement"]
    assert rec["record"]["seeds"] == [0, 1] and len(rec["extras"]["per_seed"]) == 2
    assert set(agree["per_layer"].values()) <= {0.0, 0.5, 1.0} and agree["layers"] == sure["layers"]
    assert "of seeds" in capsys.readouterr().out
    assert "--seeds" in _error(["search", "--checkpoint", CKPT, "--method", "hawq", "--data", "fmnist:2", "--seeds",
                                "2", "--out", tmp_path / "h.json"], capsys)


def test_a_label_reading_search_on_a_proxy_with_other_classes_is_refused(tmp_path, capsys):
    """hawq/target on the MNIST proxy once read digit labels as Fashion-MNIST classes, silently."""
    line = _error(["search", "--checkpoint", CKPT, "--method", "hawq", "--data", "mnist:2", "--out",
                   tmp_path / "h.json"], capsys)
    assert "not the model's" in line and "--labels-are-the-models" in line and not (tmp_path / "h.json").exists()
    assert main(["search", "--checkpoint", str(CKPT), "--method", "hawq", "--data", "fmnist:2", "--quiet",
                 "--out", str(tmp_path / "h.json")]) == 0  # the model's own classes
    assert main(["search", "--checkpoint", str(CKPT), "--method", "hawq", "--data", "mnist:2", "--quiet",
                 "--labels-are-the-models", "--out", str(tmp_path / "h2.json")]) == 0


def test_a_corrupt_evaluation_image_stops_qat_before_the_fine_tuning(folder_model, tmp_path, monkeypatch, capsys):
    """It was found only after all the QAT work, and the fine-tuned weights were lost."""
    import shutil

    import mpqlib.qat as Q

    tmp, ckpt, _ = folder_model
    val = tmp_path / "val"
    shutil.copytree(tmp / "val", val)
    bad = val / "c7" / "1.png"
    bad.write_bytes(bad.read_bytes()[:50])
    trained = []
    monkeypatch.setattr(Q, "fit", lambda *a, **k: trained.append(1))  # reaching the fine-tuning is the failure
    line = _error(["qat", "--checkpoint", ckpt, "--policy", tmp / "p.json", "--data", f"imagefolder:{tmp / 'train'}",
                   "--eval-data", f"imagefolder:{val}", "--epochs", "1", "--out", tmp_path / "q.pt"], capsys)
    assert str(bad) in line and not trained
