#!/usr/bin/env bash
# ResNet-20 on Fashion-MNIST (1x28x28), end to end and resumable: the results of
# docs/results/fashion-mnist.md.
#   1. `baseline` training on the 60,000 training images (EPOCHS epochs), export;
#   2. one epoch of polynomial-in-the-loop fine-tuning at alpha 4 from it, export;
#   3. PANN accuracy (f64 executor, per-layer bounds) of both at alpha 4..14 on the
#      first 2,000 test images;
#   4. both over TLS: three pann-party processes on the first 8 test images of the
#      IDX file, checked against the fixed-point reference (`pann bench --verify`).
#
#   scripts/fashion-mnist.sh [OUT_DIR] [EPOCHS]
#
# Data: Debian's dataset-fashion-mnist (installed here if missing) or DATA=<dir with
# the four IDX files>. Defaults: OUT_DIR=target/fashion-mnist, EPOCHS=4. Needs `make build`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
R="${1:-target/fashion-mnist}"
EPOCHS="${2:-4}"
D="${DATA:-/usr/share/datasets/fashion-mnist}"
T=target/release/pann-train
P=target/release/pann
RES=docs/results/fashion-mnist
THREADS="${THREADS:-1}"
mkdir -p "$R/export" "$RES"
[ -x "$T" ] && [ -x "$P" ] || { echo "build first: make build" >&2; exit 1; }
if [ ! -d "$D" ] && [ -z "${DATA:-}" ]; then
  (apt-get update && apt-get install -y dataset-fashion-mnist) || sudo sh -c 'apt-get update && apt-get install -y dataset-fashion-mnist'
fi

# 1. Backbone.
if [ ! -f "$R/export/fmnist-resnet20-baseline.card.json" ]; then
  resume=(); [ -f "$R/baseline/checkpoint.json" ] && resume=(--resume)
  "$T" --threads "$THREADS" train --data "$D" --run "$R/baseline" --preset baseline --epochs "$EPOCHS" \
    --test-limit 2000 --seed 7 --device cpu --no-progress "${resume[@]}" \
    --export fmnist-resnet20-baseline --export-dir "$R/export" --calib-images 5000
fi

# 2. One epoch with the alpha-4 PANN ReLU in the forward pass.
if [ ! -f "$R/export/fmnist-resnet20-ft4.card.json" ]; then
  resume=(); [ -f "$R/ft4/checkpoint.json" ] && resume=(--resume)
  "$T" --threads "$THREADS" train --data "$D" --run "$R/ft4" --preset finetune --init "$R/baseline" \
    --ft-alpha 4 --epochs 1 --test-limit 2000 --seed 7 --device cpu --no-progress "${resume[@]}" \
    --export fmnist-resnet20-ft4 --export-dir "$R/export"
fi

# 3. Accuracy as a PANN.
for m in baseline ft4; do
  "$T" --threads 2 eval --card "$R/export/fmnist-resnet20-$m.card.json" --data "$D" --images 2000 --alphas 4-14 \
    --json "$RES/eval-$m.json"
done

# 4. Over TLS.
"$P" bench --model "$R/export/fmnist-resnet20-baseline.card.json" --alphas 9,12 --batches 1 --images 8 \
  --verify --data "$D/t10k-images-idx3-ubyte.gz" --out "$RES/tls-baseline.json"
"$P" bench --model "$R/export/fmnist-resnet20-ft4.card.json" --alphas 4 --batches 1 --images 8 \
  --verify --data "$D/t10k-images-idx3-ubyte.gz" --out "$RES/tls-ft4.json"

# 5. With SHIP=1: the fine-tuned model becomes models/assets/fmnist-resnet20-alpha4 (what
#    the Fashion-MNIST process test runs).
if [ "${SHIP:-0}" = 1 ]; then
  "$T" --threads 2 export --run "$R/ft4" --data "$D" --name fmnist-resnet20-alpha4 --out-dir models/assets --default-alpha 4
fi
