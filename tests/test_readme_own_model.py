"""README's "Your own model" commands, run as written (train -> search -> cost -> qat -> eval ->
export) on tiny folders of real images: Fashion-MNIST as the user's classes, MNIST digits as the
proxy, 3x32x32 PNGs. Only ``$DATA``, ``$SIZE`` and the epoch counts are set to tiny values; a wrong
command, flag or file name in the README fails here."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch

from mpqlib.cli import main

from test_recipe import CLASSES, PER_CLASS, _image_folder

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> tuple[dict[str, str], list[list[str]]]:
    """(the block's variables, its ``mpq`` commands as argument lists without ``mpq``), joined over
    backslash continuations, from the code block between README's own-model markers."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- own-model:begin -->\s*```bash\n(.*?)```\s*<!-- own-model:end -->", text, re.S)
    assert block, "README.md has no own-model block (<!-- own-model:begin --> ... <!-- own-model:end -->)"
    lines = block.group(1).replace("\\\n", " ").splitlines()
    variables, commands = {}, []
    for line in lines:
        line = line.split("#")[0].strip()
        if re.fullmatch(r"\w+=\S+", line):
            k, v = line.split("=", 1)
            variables[k] = v
        elif line:
            args = shlex.split(line)
            assert args[0] == "mpq", f"README own-model block: not an mpq command: {line}"
            commands.append(args[1:])
    return variables, commands


def test_the_readme_block_is_the_pipeline_in_order():
    variables, commands = readme_commands()
    assert set(variables) == {"DATA", "SIZE"}
    assert [c[0] for c in commands] == ["train", "search", "cost", "qat", "eval", "export"]


@pytest.mark.slow  # six mpq commands, resnet18 at 3x32x32 on 40-image folders: about a minute
def test_readme_own_model_commands_run_as_written(tmp_path, monkeypatch, capsys):
    import torchvision

    data = tmp_path / "data"
    _image_folder(data / "train", "fmnist", "test")
    _image_folder(data / "val", "fmnist", "test", offset=PER_CLASS)
    _image_folder(data / "proxy", "mnist", "test")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)  # torchvision's architecture with its 1000-class head, as `--init resnet18.pth` expects
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), tmp_path / "resnet18.pth")

    _, commands = readme_commands()
    values = {"DATA": str(data), "SIZE": "3,32,32"}
    outputs = {}
    for args in commands:
        args = [re.sub(r"\$(\w+)", lambda m: values[m.group(1)], a) for a in args]
        args = [("1" if prev == "--epochs" else a) for prev, a in zip([""] + args, args)]
        args += ["--device", "cpu", "--quiet"] if args[0] != "cost" else []
        rc = main(args)
        out, err = capsys.readouterr()
        assert rc == 0, f"README command `mpq {' '.join(args)}` failed: {err.strip()}"
        outputs[args[0]] = out
    assert "skipped fc.bias, fc.weight" in outputs["train"]
    eval_top1 = float(outputs["eval"].split("top-1 ")[1].split("%")[0])
    rec = json.loads((tmp_path / "mine-w4a4.json").read_text())
    assert rec["form"] == "int"
    assert round(rec["torch_top1"], 2) == eval_top1 and abs(rec["onnx_top1"] - eval_top1) <= 0.1
    assert set(rec["latency"]["ms_per_image"]) == {"1", "64"}
    for name in ("mine.pt", "mine-seam.json", "mine-seam.policy.json", "mine-qat.pt", "mine-w4a4.onnx",
                 "mine-w4a4.mpqw"):
        assert (tmp_path / name).is_file(), name
    assert CLASSES == len(json.loads((tmp_path / "mine.json").read_text())["classes"])
