"""Search cost: SEAM on the 2,400-image MNIST proxy vs the same search on all 60,000
Fashion-MNIST training images, same epochs, one run, one machine.

    python benchmarks/bench_search.py [--epochs 1] [--checkpoint checkpoints/resnet20-fmnist.pt]

Prints wall time, images processed and peak memory of both, and the cost ratio (goal >= 20x;
the data ratio is 25x), plus the two policies at the uniform-W3A3 BitOps budget.
"""

import argparse

import torch

from mpqlib import data as D
from mpqlib.cost import budget, cost_model
from mpqlib.search import search
from mpqlib.train import load_checkpoint


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="checkpoints/resnet20-fmnist.pt")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="folder to save both search results as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.checkpoint)
    cm = cost_model(model)
    b = budget(cm, "w3a3")
    proxy, target = D.search_data("mnist"), D.search_data("fmnist")
    runs = {"seam on mnist proxy": search("seam", model, proxy, b, epochs=args.epochs),
            "search on fmnist target": search("target", model, target, b, epochs=args.epochs)}
    print(f"{meta['arch']} ({meta['top1']:.2f}% FP), budget uniform W3A3 = {b:,} BitOps, {args.epochs} epoch(s)")
    for name, r in runs.items():
        rec = r.record
        print(f"{name:26s}: {rec['seconds']:8.1f} s  {rec['images']:8,d} images  peak {rec['peak_memory_mb']:6.0f} MB"
              f"  policy {rec['bitops']:,} BitOps")
    p, t = (r.record for r in runs.values())
    print(f"cost ratio target/proxy: {t['seconds'] / p['seconds']:.1f}x wall time, {t['images'] / p['images']:.1f}x images "
          f"(goal >= 20x; data ratio {len(target) / len(proxy):.0f}x)")
    for name, r in runs.items():
        print(f"{name}: " + " ".join(f"{n.replace('layer', 'L').replace('.downsample.0', '.ds')}=W{w}A{a}"
                                     for n, (w, a) in r.policy.bits.items()))
    if args.out:
        for name, r in runs.items():
            r.save(f"{args.out}/{name.split()[0]}-{r.record['search_data']}.json")


if __name__ == "__main__":
    main()
