#!/usr/bin/env bash
# PANN evaluation of a ResNet-20 backbone exported by scripts/gpu/train_backbones.py (issue 16):
#
#     scripts/gpu/evaluate_backbone.sh DIR NAME [TEST_IMAGES]
#
# DIR holds NAME.safetensors and NAME.json (the trainer's export, on a GPU or on the CPU). Writes
# into DIR, in this order (each step is skipped when its output exists, so a stopped run resumes):
#   NAME.card.json                     model card: weights digest, CIFAR-10 normalisation, provenance
#   NAME-cal.card.json                 per-layer bounds, 1.1 x the largest |ReLU input| over the first
#                                      2,000 images of data_batch_1.bin (pann calibrate)
#   pann-accuracy-NAME.{md,json}       exact ReLU and the PANN at 2^-9 and 2^-12 with Lee et al.'s
#                                      single global bound and with per-layer bounds, f64, on the
#                                      first TEST_IMAGES (default all 10,000) test images
#   sides-NAME-{per-layer,global}.json error on negative inputs only against positive inputs only
#                                      (pann-train sides), alphas 5, 7, 9, first 1,000 test images
# Needs ../shared/data/cifar-10-jpeg and libtorch for pann-train (scripts/install-torch.sh).
# CPU-heavy (tens of minutes on 2 cores); run it alone.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:?usage: scripts/gpu/evaluate_backbone.sh DIR NAME [TEST_IMAGES]}"
name="${2:?usage: scripts/gpu/evaluate_backbone.sh DIR NAME [TEST_IMAGES]}"
test_images="${3:-10000}"
sides_images="${SIDES_IMAGES:-1000}"   # smaller for a smoke test
data=../shared/data/cifar-10-jpeg
for f in "$dir/$name.safetensors" "$dir/$name.json" "$data/data_batch_1.bin" "$data/test_batch.bin"; do
    [[ -f $f ]] || { echo "missing $f" >&2; exit 2; }
done
export LIBTORCH="${LIBTORCH:-$(scripts/install-torch.sh --print-libtorch)}"
cargo build --release -q -p pann-bin -p pann-trainer
cargo build --release -q -p pann-models --example pann_accuracy
bin=target/release

card="$dir/$name.card.json"
if [[ ! -f $card ]]; then
    python3 - "$dir" "$name" <<'EOF'
import hashlib, json, sys
d, name = sys.argv[1], sys.argv[2]
log = json.load(open(f"{d}/{name}.json"))
weights = f"{name}.safetensors"
digest = hashlib.sha256(open(f"{d}/{weights}", "rb").read()).hexdigest()
acc = log["history"][-1]["test_accuracy"] if log.get("history") else None
device = log.get("device", {}).get("name") if isinstance(log.get("device"), dict) else log.get("device")
card = {
    "name": name,
    "architecture": {"kind": "resnet", "depth": 20, "num_classes": 10, "in_channels": 3, "image_size": 32,
                     "widths": [16, 32, 64], "bn_eps": 1e-05},
    "input": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.247, 0.2435, 0.2616]},
    "weights": weights,
    "weights_sha256": digest,
    "default_alpha": 9,
    "relu_bounds": {},
    "provenance": {
        "source": f"scripts/gpu/train_backbones.py, recipe {log.get('recipe_name')} "
                  f"({json.dumps(log.get('recipe'), sort_keys=True)}), {log.get('epochs_done')} epochs, "
                  f"seed {log.get('seed', '?')}, device {device}; the full log is {name}.json",
        "license": "same as this repository",
        "notes": (f"exact-ReLU accuracy on the JPEG-derived CIFAR-10 test set at the last epoch: {100 * acc:.2f}%; "
                  if acc is not None else "") + "not calibrated: see NAME-cal.card.json",
    },
}
json.dump(card, open(f"{d}/{name}.card.json", "w"), indent=2)
print(f"wrote {d}/{name}.card.json")
EOF
fi
cal="$dir/$name-cal.card.json"
[[ -f $cal ]] || "$bin/pann" calibrate --model "$card" --data "$data/data_batch_1.bin" --images 2000 --margin 1.1 \
    --holdout 0 --out "$cal"
acc="$dir/pann-accuracy-$name"
[[ -f $acc.json ]] || "$bin/examples/pann_accuracy" --card "$card" --data "$data" --test "$test_images" --calib 2000 \
    --alphas 9,12 --md "$acc.md" --json "$acc.json"
for mode in per-layer global; do
    out="$dir/sides-$name-$mode.json"
    flag=(); [[ $mode == global ]] && flag=(--global-bound)
    [[ -f $out ]] || "$bin/pann-train" sides --card "$cal" --threads 2 --images "$sides_images" --alphas 5,7,9 "${flag[@]}" --json "$out"
done
echo "done: $dir/{$name.card.json,$name-cal.card.json,pann-accuracy-$name.md,sides-$name-*.json}"
