"""Latency of the two export forms against the float model: torchvision's resnet18 at 3x32x32
under a mixed 2-8 bit policy, exported as QDQ (``mpq export``, the default) and as integer kernels
(``mpq export --form int``), timed in onnxruntime beside the float model in PyTorch, in one run,
with the same threads, on real images (Fashion-MNIST test images as 3x32x32 RGB).

    python benchmarks/bench_export_latency.py [--model resnet18|mobilenet_v2] [--threads 2] [--repeats 10]

Prints ms per image at batch 1 and batch 64 (median of the timed runs after two warm-up runs,
:func:`mpqlib.export.compare_latency`), each form's ratio to the float model (below 1: faster
than float), each file's size, and the share of 256 real images on which each exported form
predicts the class the quantized PyTorch model predicts. The weights are untrained (latency does
not depend on them); the step sizes are calibrated on the same real images.
"""

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision

from mpqlib import data as D
from mpqlib import export as E
from mpqlib.policy import Policy, split_layers
from mpqlib.quant import quantize

BITS = ((2, 4), (3, 3), (4, 8), (5, 2), (6, 5), (8, 6))


def same_predictions(paths: dict, qmodel: torch.nn.Module, images: torch.Tensor) -> dict[str, float]:
    """Per exported form, the share of ``images`` whose predicted class in onnxruntime is the one
    the quantized PyTorch model predicts."""
    import onnxruntime as ort

    with torch.no_grad():
        ref = qmodel(images).argmax(1).numpy()
    out = {}
    for form, path in paths.items():
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        pred = sess.run(None, {sess.get_inputs()[0].name: images.numpy()})[0].argmax(1)
        out[form] = float((pred == ref).mean())
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("resnet18", "mobilenet_v2"), default="resnet18")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    grey = D.load("fmnist", "test").x[:256] * D.STD + D.MEAN  # real images in [0, 1]
    rgb = F.interpolate(grey, size=(32, 32), mode="bilinear", antialias=True).repeat(1, 3, 1, 1)
    images = ((rgb - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
              / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))  # ImageNet's normalisation, as mpqlib's folders
    model = getattr(torchvision.models, args.model)(num_classes=10).eval()
    searchable, _ = split_layers(model)
    policy = Policy({n: BITS[i % len(BITS)] for i, n in enumerate(searchable)})
    qmodel = quantize(model, policy, calibration=images[:128]).eval()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {form: Path(tmp) / f"{form}.onnx" for form in E.FORMS}
        for form, path in paths.items():
            E.to_onnx(qmodel, (3, 32, 32), path, form=form)
        sizes = {form: path.stat().st_size for form, path in paths.items()}
        res = E.compare_latency({form: path for form, path in paths.items()}, model, images[:64],
                                threads=args.threads, repeats=args.repeats)
        agree = same_predictions(paths, qmodel, images)
    ms = res["ms_per_image"]
    print(f"{args.model} at 3x32x32, mixed 2-8 bit policy, {res['threads']} threads, median of {res['repeats']} runs")
    print("| form | file (bytes) | batch 1 (ms/image) | batch 64 (ms/image) | vs float, batch 1 | vs float, batch 64 "
          "| same class as PyTorch's quantized model |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for form in (*E.FORMS, "float (PyTorch)"):
        size = f"{sizes[form]:,}" if form in sizes else "-"
        r1, r64 = ms["1"][form] / ms["1"]["float (PyTorch)"], ms["64"][form] / ms["64"]["float (PyTorch)"]
        name = f"{form} (onnxruntime)" if form in sizes else form
        same = f"{agree[form]:.1%}" if form in agree else "-"
        print(f"| {name} | {size} | {ms['1'][form]:.3f} | {ms['64'][form]:.3f} | {r1:.2f} | {r64:.2f} | {same} |")
    print(f"fastest: batch 1 {res['fastest']['1']}, batch 64 {res['fastest']['64']}")


if __name__ == "__main__":
    main()
