#!/usr/bin/env bash
# The CUDA path, checked on a machine with an NVIDIA GPU (CI has none, so these paths skip there):
#   1. the tests that exercise devices, with the CLI defaulting to CUDA (--device auto);
#   2. a SEAM search on the MNIST proxy, QAT of its policy and evaluation, all on CUDA, and the
#      same search on the CPU beside it (same seed: the policies should agree or nearly);
#   3. torchrun with NCCL (one process per GPU) for search and QAT;
#   4. the torchvision recipe (resnet18 on an ImageFolder) on CUDA.
# Usage: bash scripts/gpu_check.sh OUTDIR     (staged data under $MPQLIB_DATA; see data.md)
set -u
OUT=${1:-_build/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
CKPT=checkpoints/resnet20-fmnist.pt
status=0
step() { echo; echo "=== $1"; }
check() { local name=$1; shift; local t0=$SECONDS
  if "$@" >"$OUT/$name.log" 2>&1; then echo "ok   $name ($((SECONDS - t0)) s)"
  else echo "FAIL $name ($((SECONDS - t0)) s)"; tail -25 "$OUT/$name.log"; status=1; fi; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version(), torch.cuda.get_device_name(0))"

step "tests (device, search, QAT, training, CLI on CUDA, distributed, recipe, measure)"
check tests timeout 300 $PY -m pytest -q -rs -p no:cacheprovider tests/test_device.py tests/test_search.py \
    tests/test_qat.py tests/test_train.py tests/test_cli.py tests/test_distributed.py tests/test_recipe.py tests/test_measure.py
tail -6 "$OUT/tests.log"

step "SEAM search, QAT and eval on CUDA; the same search on the CPU"
for dev in cuda cpu; do
  check "search-$dev" $PY -m mpqlib.cli search --checkpoint $CKPT --data mnist --method seam --budget w3a2 \
      --epochs 1 --seed 0 --device $dev --quiet --out "$OUT/seam-$dev.json"
done
check qat-cuda $PY -m mpqlib.cli qat --checkpoint $CKPT --data fmnist --policy "$OUT/seam-cuda.policy.json" \
    --epochs 1 --train-images 15000 --seed 0 --device cuda --quiet --out "$OUT/qat-cuda.pt"
check eval-cuda $PY -m mpqlib.cli eval --checkpoint $CKPT --policy "$OUT/seam-cuda.policy.json" \
    --qat-state "$OUT/qat-cuda.pt" --device cuda
$PY - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
try:
    g, c = (json.load(open(f"{out}/seam-{d}.policy.json"))["bits"] for d in ("cuda", "cpu"))
    rec = {d: json.load(open(f"{out}/seam-{d}.json"))["record"] for d in ("cuda", "cpu")}
    same = sum(g[k] == c[k] for k in g)
    print(f"policy: {same}/{len(g)} layers agree between CUDA and CPU; search seconds cuda "
          f"{rec['cuda']['seconds']:.1f}, cpu {rec['cpu']['seconds']:.1f}")
    print("qat top-1 on CUDA:", json.load(open(f"{out}/qat-cuda.json"))["top1"])
except (OSError, KeyError) as e:
    print("comparison skipped:", e)
EOF
cat "$OUT/eval-cuda.log" 2>/dev/null | tail -1

step "torchrun + NCCL (1 process per visible GPU)"
NGPU=$($PY -c "import torch; print(torch.cuda.device_count())")
check torchrun-search timeout 240 $PY -m torch.distributed.run --standalone --nproc_per_node=$NGPU -m mpqlib.cli search \
    --checkpoint $CKPT --data mnist --method seam --budget w3a2 --epochs 1 --seed 0 --device cuda --quiet \
    --out "$OUT/seam-ddp.json"
check torchrun-qat timeout 240 $PY -m torch.distributed.run --standalone --nproc_per_node=$NGPU -m mpqlib.cli qat \
    --checkpoint $CKPT --data fmnist --policy "$OUT/seam-cuda.policy.json" --epochs 1 --train-images 15000 --seed 0 \
    --device cuda --sync-bn --quiet --out "$OUT/qat-ddp.pt"
grep -h -i "nccl\|backend" "$OUT"/torchrun-*.log | head -5
$PY -c "import json; print('ddp qat top-1:', json.load(open('$OUT/qat-ddp.json'))['top1'])" 2>/dev/null

step "the torchvision recipe on CUDA: resnet18, ImageFolders of real 32x32 images"
check recipe-cuda $PY - "$OUT" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests")
from test_recipe import _image_folder
from mpqlib.cli import main
base = Path(sys.argv[1]) / "recipe"
proxy, train, val = (_image_folder(base / n, d, "test", o) for n, d, o in
                     (("proxy", "mnist", 0), ("train", "fmnist", 0), ("val", "fmnist", 10)))
args = ["--model", "resnet18", "--num-classes", "10", "--input-size", "3,32,32", "--device", "cuda", "--quiet"]
assert main(["search", *args, "--data", f"imagefolder:{proxy}", "--method", "seam", "--budget", "w4a4",
             "--epochs", "1", "--out", str(base / "r18.json")]) == 0
assert main(["qat", *args, "--data", f"imagefolder:{train}", "--eval-data", f"imagefolder:{val}",
             "--policy", str(base / "r18.policy.json"), "--epochs", "1", "--batch-size", "20",
             "--out", str(base / "r18-q.pt")]) == 0
EOF

step "summary"
[ $status -eq 0 ] && echo "all CUDA checks passed" || echo "some CUDA checks FAILED (logs in $OUT)"
exit $status
