#!/bin/bash
# Device-machine driver for scripts/gpu/train_backbones.py (see
# docs/results/low-precision/gpu-60ep/README.md). The packed CIFAR-10
# (scripts/gpu/pack_cifar.py) travels in two calls made back to back, since
# one call carries at most 64 MiB; /tmp on the device survives between them
# while the machine stays warm.
#
#   part1: carry .gpu-carry/a (data_batch_1..3): unpack into /tmp/cifar, then
#          a short benchmark (3 recipes at once, 2 epochs on batches 1-2,
#          batch 3 standing in as test set) -> /tmp/bench, $OUT/bench-*.json
#   part2: carry .gpu-carry/b (data_batch_4, 5, test_batch): unpack, choose the
#          recipes that fit TRAIN_BUDGET seconds from the benchmark, train
#          EPOCHS epochs concurrently, results under $OUT.
# Env: PY (python), OUT, EPOCHS (60), TRAIN_BUDGET (s, for training), EXTRA
# (more train_backbones.py flags, e.g. for a local smoke test).
set -u
PY=${PY:-python3}
EPOCHS=${EPOCHS:-60}
C=/tmp/cifar
export PYTHONUNBUFFERED=1
mkdir -p "$C" "$OUT"
echo "== $1 $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'gpu', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
case "$1" in
part1)
    t=$(date +%s)
    $PY scripts/gpu/pack_cifar.py unpack .gpu-carry/a "$C" || exit 1
    echo "unpack part a: $(( $(date +%s) - t )) s"
    B=/tmp/bench; rm -rf $B; mkdir -p $B/data
    ln -s $C/data_batch_1.bin $C/data_batch_2.bin $B/data/ && ln -s $C/data_batch_3.bin $B/data/test_batch.bin
    $PY scripts/gpu/train_backbones.py --data $B/data --recipes standard,paper,paper-no-ngnv --epochs 2 \
        --out $B/out --ckpt-dir $B/ckpt --ckpt-every 100 --name-prefix bench- ${EXTRA:-}
    for f in $B/out/*.json; do cp "$f" "$OUT/$(basename "$f")"; done
    ;;
part2)
    t=$(date +%s)
    $PY scripts/gpu/pack_cifar.py unpack .gpu-carry/b "$C" || exit 1
    echo "unpack part b: $(( $(date +%s) - t )) s"
    ls -l $C
    # Recipes that fit: the benchmark's steady epoch (epoch 2, 3 at once) scaled to the full set.
    R=$($PY - "$EPOCHS" "${TRAIN_BUDGET:-480}" <<'PYEOF'
import glob, json, sys
epochs, budget = int(sys.argv[1]), float(sys.argv[2])
est = []
for f in glob.glob("/tmp/bench/out/*.json"):
    j = json.load(open(f)); h = j["history"][-1]
    full = 50000 / h["images_per_second"] + h["eval_seconds"]
    est.append(full); print(f"{j['recipe_name']}: {full:.2f} s per full epoch (3 at once), {epochs * full:.0f} s for {epochs}", file=sys.stderr)
three = bool(est) and epochs * max(est) * 1.1 < budget
print("standard,paper,paper-no-ngnv" if three else "standard,paper")
PYEOF
)
    echo "recipes: $R (training budget ${TRAIN_BUDGET:-480} s)"
    $PY scripts/gpu/train_backbones.py --data $C --recipes "$R" --epochs "$EPOCHS" --out "$OUT" --ckpt-dir /tmp/ckpt \
        --ckpt-every 5 --time-budget "${TRAIN_BUDGET:-480}" ${EXTRA:-}
    rc=$?
    # Unfinished runs: their checkpoints come back in one file, to resume with --ckpt-dir.
    if ls "$OUT" | grep -q 'of[0-9]*ep'; then tar -C /tmp -cf "$OUT/ckpt.tar" ckpt && echo "checkpoints -> ckpt.tar"; fi
    exit $rc
    ;;
*) echo "usage: $0 part1|part2"; exit 2 ;;
esac
