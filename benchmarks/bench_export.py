"""Inference latency of an exported model: onnxruntime (QDQ ONNX from `mpq export`) vs PyTorch
(the fake-quantized QAT model it came from), measured in one run on the same images.

    python benchmarks/bench_export.py [--model resnet20|mobilenetv1] [--batches 1,256] [--threads 2]

Prints the median latency of each and the ratio onnxruntime / PyTorch per batch size (below 1:
onnxruntime is faster). The model is the committed checkpoint under a mixed 2-8 bit policy, its
step sizes calibrated on real Fashion-MNIST images; latency does not depend on fine-tuning.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from mpqlib import data as D
from mpqlib import export as E
from mpqlib.policy import Policy, split_layers
from mpqlib.quant import quantize
from mpqlib.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BITS = ((2, 4), (3, 3), (4, 8), (5, 2), (6, 5), (8, 6))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20", choices=["resnet20", "mobilenetv1", "resnet8"])
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model, _ = load_checkpoint(ROOT / "checkpoints" / f"{args.model}-fmnist.pt")
    searchable, _ = split_layers(model)
    policy = Policy({n: BITS[i % len(BITS)] for i, n in enumerate(searchable)})
    test = D.load("fmnist", "test")
    qmodel = quantize(model, policy, calibration=test.x[:256]).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        E.to_onnx(qmodel, (1, 28, 28), path)
        sess = E.onnx_session(path, threads=args.threads)
        print(f"{args.model}, mixed 2-8 bit policy, {args.threads} threads, median of {args.repeats}")
        print(f"{'batch':>6s} {'PyTorch ms':>11s} {'onnxruntime ms':>15s} {'ratio ort/torch':>16s}")
        for b in (int(v) for v in args.batches.split(",")):
            x = test.x[:b]
            with torch.no_grad():
                t_torch = E.latency(qmodel, x, args.repeats)
            xn = x.numpy().astype(np.float32)
            t_ort = E.latency(lambda a: sess.run(["logits"], {"input": a}), xn, args.repeats)
            print(f"{b:6d} {1e3 * t_torch:11.2f} {1e3 * t_ort:15.2f} {t_ort / t_torch:16.2f}")


if __name__ == "__main__":
    main()
