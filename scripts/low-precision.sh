#!/usr/bin/env bash
# The low-precision experiments of docs/results/trainer-resnet20.md and
# docs/results/mixed-precision.md, end to end and resumable (every training step
# is skipped when its export exists; an interrupted run resumes from its
# checkpoint):
#   1. ResNet-20 trained with `baseline`, `paper` and `baseline` at weight decay 5e-3;
#   2. polynomial-in-the-loop fine-tuning of the baseline and paper models at alpha 4..7;
#   3. PANN accuracy (f64 executor) of every model: alpha 4..14, per-layer and global bound;
#   4. the paper's insight (1) probe (`pann-train sides`);
#   5. `pann plan` cards (0.5 and 1 point below exact ReLU) and `pann frontier`;
#   6. the planned card and uniform 2^-9 / 2^-12 over TLS with pann-party (`pann bench`).
#
#   scripts/low-precision.sh [OUT_DIR] [EPOCHS]
#
# Defaults: OUT_DIR=target/low-precision, EPOCHS=10 (what the committed results used:
# about 50 to 90 minutes per model on 2 shared CPU cores). Needs `make build`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
R="${1:-target/low-precision}"
EPOCHS="${2:-10}"
D="${DATA:-../shared/data/cifar-10-jpeg}"
T=target/release/pann-train
P=target/release/pann
RES=docs/results
mkdir -p "$R/export" "$RES/low-precision"
[ -x "$T" ] && [ -x "$P" ] || { echo "build first: make build" >&2; exit 1; }

train() { # name preset [extra args]: train (or resume) and export
  local name=$1 preset=$2; shift 2
  [ -f "$R/export/resnet20-$name.card.json" ] && return 0
  local resume=(); [ -f "$R/r20-$name/checkpoint.json" ] && resume=(--resume)
  "$T" --threads 1 train --data "$D" --run "$R/r20-$name" --preset "$preset" --epochs "$EPOCHS" \
    --test-limit 2000 --seed 7 --device cpu --no-progress "${resume[@]}" \
    --export "resnet20-$name" --export-dir "$R/export" --calib-images 5000 "$@"
}

finetune() { # base alpha: one epoch of 25,000 images with the PANN ReLU at alpha in the loop
  local base=$1 a=$2 name="$1-ft$2"
  [ -f "$R/export/resnet20-$name.card.json" ] && return 0
  local resume=(); [ -f "$R/r20-$name/checkpoint.json" ] && resume=(--resume)
  "$T" --threads 1 train --data "$D" --run "$R/r20-$name" --preset finetune --init "$R/r20-$base" \
    --ft-alpha "$a" --epochs 1 --train-limit 25000 --test-limit 2000 --seed 7 --device cpu --no-progress \
    "${resume[@]}" --export "resnet20-$name" --export-dir "$R/export"
}

# 1. Backbones (two at a time on two cores).
train baseline baseline &
train wd5e-3 baseline --weight-decay 5e-3 &
wait
train paper paper

# 1b. From the akamaster weights: 2 epochs with the alpha-4 PANN ReLU in the loop (the shipped
#     models/assets/resnet20-alpha4) and, as its fair exact-ReLU reference, 2 epochs with exact ReLU.
[ -f "$R/export/resnet20-aka-ft4.card.json" ] || "$T" --threads 1 train --data "$D" --run "$R/aka-ft4x2" --preset finetune \
  --init models/assets/resnet20-akamaster.card.json --norm imagenet --ft-alpha 4 --epochs 2 --test-limit 2000 --seed 7 \
  --device cpu --no-progress --export resnet20-aka-ft4 --export-dir "$R/export"
[ -f "$R/export/resnet20-aka-exact2.card.json" ] || "$T" --threads 1 train --data "$D" --run "$R/aka-exact2" --preset baseline \
  --init models/assets/resnet20-akamaster.card.json --norm imagenet --lr 0.01 --weight-decay 0 --epochs 2 --test-limit 2000 \
  --seed 7 --device cpu --no-progress --export resnet20-aka-exact2 --export-dir "$R/export"

# 2. Polynomial in the loop at alpha 4..7, two at a time.
for a in 4 5 6 7; do
  finetune baseline "$a" &
  finetune paper "$a" &
  wait
done
# ... and at a stage-wise mixture (layer1 alpha 4, layer2 5, layer3 6), 1 epoch of 50,000 images.
[ -f "$R/export/resnet20-baseline-ftmix.card.json" ] || "$T" --threads 1 train --data "$D" --run "$R/r20-baseline-ftmix" \
  --preset finetune --init "$R/r20-baseline" --ft-alphas 4,4,4,4,4,4,4,5,5,5,5,5,5,6,6,6,6,6,6 --epochs 1 --test-limit 2000 \
  --seed 7 --device cpu --no-progress --export resnet20-baseline-ftmix --export-dir "$R/export"

# 3. Accuracy as a PANN, per-layer and global bound, first 2,000 test images.
# (the baseline's rows come from the frontier below; the paper model's for the claim:)
"$T" --threads 2 eval --card "$R/export/resnet20-paper.card.json" --data "$D" --images 1000 --alphas 7,8,9,10,12,14 \
  --global-bound --json "$RES/low-precision/eval-paper-global.json"
for base in baseline paper aka; do
  for a in 4 5 6 7 mix; do
    [ -f "$R/export/resnet20-$base-ft$a.card.json" ] || continue
    "$T" --threads 2 eval --card "$R/export/resnet20-$base-ft$a.card.json" --data "$D" --images 2000 --alphas 4-9 \
      --json "$RES/low-precision/eval-$base-ft$a-per-layer.json"
  done
done

# 4. Insight (1): error on negative inputs only vs positive inputs only.
for m in baseline paper wd5e-3; do
  "$T" --threads 2 sides --card "$R/export/resnet20-$m.card.json" --data "$D" --images 1000 --alphas 4-9 \
    --json "$RES/low-precision/sides-$m.json"
done

# 5. Planner cards and the frontier (calibration: test records 5000..5999;
#    reported accuracy: test records 0..1999, disjoint).
for drop in 0.5 1; do
  "$P" plan --model "$R/export/resnet20-baseline.card.json" --data "$D/test_batch.bin" --first 5000 --images 500 \
    --max-drop "$drop" --alphas 4-9 --out "$R/export/resnet20-baseline-plan$drop.card.json" \
    --report "$RES/low-precision/plan-baseline-$drop.json"
done
"$P" frontier --model "$R/export/resnet20-baseline.card.json" models/assets/resnet20-alpha4.card.json \
  --plans "$R"/export/resnet20-baseline-plan{0.5,1}.card.json \
  --data "$D/test_batch.bin" --first 0 --images 1000 --alphas 4-14 --out "$RES/frontier"

# 6. Over TLS, three pann-party processes: the planned card (alpha 0 = its own
#    per-layer alphas) next to uniform 2^-9 and 2^-12 of the same model.
"$P" bench --model "$R/export/resnet20-baseline-plan0.5.card.json" --alphas 0,9,12 --batches 1 --images 4 \
  --verify --data "$D/test_batch.bin" --out "$RES/mixed-precision-tls.json"
"$P" bench --model models/assets/resnet20-alpha4.card.json --alphas 4 --batches 1 --images 8 \
  --verify --data "$D/test_batch.bin" --out "$RES/alpha4-tls.json"
