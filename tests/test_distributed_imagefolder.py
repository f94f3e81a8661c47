"""One process and two (torchrun, gloo) on a real image folder with a BatchNorm model.

ResNet-18 (torchvision, a plain state dict, BatchNorm frozen in eval mode during the search) on
Fashion-MNIST test images written as 32x32 RGB PNGs. The two processes read the same global
batches (each half of every one), start from the same features and pre-fitted head, and average
their gradients; they differ from one process only by the float rounding of that average (at the
first step at most 2e-4 relative on gradients of 1e-7, 1e-5 on the larger ones). LSQ's rounding
amplifies such differences step by step (a step size differing in the 7th digit flips single
weights to the next level), so the check is a short search: same policy, mixing probabilities
within 1e-5.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mpqlib.cli import main
from mpqlib.models import build

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside this Python")
def test_one_and_two_processes_agree_on_an_image_folder_with_batchnorm(tmp_path):
    from test_cli_safety import write_folder

    folder = write_folder(tmp_path / "imgs", per_class=6)
    torch.manual_seed(0)
    torch.save(build("resnet18", 10, 3).state_dict(), tmp_path / "r18.pth")
    args = ["search", "--model", "resnet18", "--checkpoint", str(tmp_path / "r18.pth"), "--input-size", "3,32,32",
            "--method", "seam", "--data", f"imagefolder:{folder}", "--epochs", "1", "--batch-size", "30",
            "--head-prefit-steps", "10", "--budget", "w4a4", "--device", "cpu", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node=2", "-m", "mpqlib.cli", *args,
                          "--out", str(tmp_path / "two.json")], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert main([*args, "--out", str(tmp_path / "one.json")]) == 0
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert one["policy"]["bits"] == two["policy"]["bits"]
    for key in ("p_w", "p_a"):
        assert np.abs(np.array(one["extras"][key]) - np.array(two["extras"][key])).max() <= 1e-5
    assert one["record"]["images"] == two["record"]["images"]
    assert one["record"]["head"]["head_train_acc"] == two["record"]["head"]["head_train_acc"]
