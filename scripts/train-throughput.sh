#!/usr/bin/env bash
# Training throughput, pann-train (tch) vs plain PyTorch, on the same model
# (ResNet-20), batch (128), recipe (SGD momentum 0.9, weight decay 1e-4, crop +
# flip, exact ReLU), machine and number of threads. Alternates the two
# REPEAT times and prints each figure and the ratio of the medians.
#
#   VENV=/path/to/venv scripts/install-torch.sh --python   # once: an importable torch 2.13.0
#   PYTHON=/path/to/venv/bin/python scripts/train-throughput.sh [DATA] [THREADS] [IMAGES] [REPEAT]
#
# Needs target/release/pann-train (make build). Both figures include the
# first (warm-up) steps; stop other work on the machine first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data="${1:-$root/../shared/data/cifar-10-jpeg}"
threads="${2:-2}"
images="${3:-6400}"
repeat="${4:-3}"
python="${PYTHON:-$root/.venv/bin/python}"
train="$root/target/release/pann-train"
[ -x "$train" ] || { echo "build pann-train first (make build)" >&2; exit 1; }
"$python" -c "import torch" 2>/dev/null || { echo "$python cannot import torch: run scripts/install-torch.sh --python (VENV=...)" >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
pann=(); py=()
for r in $(seq "$repeat"); do
  "$train" --threads "$threads" train --data "$data" --run "$tmp/run$r" --preset baseline --epochs 1 \
    --train-limit "$images" --test-limit 128 --device cpu --no-progress 2> "$tmp/pann$r.log"
  v=$(sed -n 's/.*, \([0-9.]*\) img\/s, .*/\1/p' "$tmp/pann$r.log" | tail -1)
  pann+=("$v"); echo "pann-train  run $r: $v img/s"
  v=$("$python" "$root/scripts/train_throughput.py" --data "$data" --images "$images" --threads "$threads" | tee /dev/stderr | sed -n 's/.*: \([0-9.]*\) img\/s overall.*/\1/p')
  py+=("$v"); echo "pytorch     run $r: $v img/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mp=$(median "${pann[@]}"); my=$(median "${py[@]}")
echo "threads $threads, $images images per run, $repeat runs each: pann-train median $mp img/s, PyTorch median $my img/s, ratio pann-train/PyTorch $(awk -v a="$mp" -v b="$my" 'BEGIN {printf "%.3f", a/b}')"
