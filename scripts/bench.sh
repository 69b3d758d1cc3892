#!/usr/bin/env bash
# Regenerate BENCHMARKS.md and every file it quotes (docs/results/bench-*.json,
# docs/results/bench-*.svg) from a fresh clone:
#
#     scripts/bench.sh            # full sweep (about 20 minutes on 2 busy cores)
#     scripts/bench.sh --quick    # a smoke run into docs/results/bench-quick-*.json only
#
# Secure inference runs as three pann-party processes over mutually
# authenticated TLS on loopback. LAN and WAN are emulated in userspace by
# pann bench itself (bin/src/netem.rs: a TCP relay per pair of roles with a
# one-way delay of RTT/2 and a rate limit per direction; no root, no tc):
#   lan = 1 Gbit/s each direction, 0.5 ms RTT;  wan = 100 Mbit/s, 40 ms RTT.
# Accuracy comes from docs/results/plaintext-accuracy.json (the models
# engineer's pann_accuracy run on 10000 test images; not re-run here: it
# takes ~30 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p pann-bin
PANN=target/release/pann
R=docs/results
if [[ "${1:-}" == "--quick" ]]; then
    $PANN bench --quick --net lan --out "$R/bench-quick.json"
    exit 0
fi
# 1. Alpha sweep on direct loopback: batch 1 (8 runs, median) and batch 8
#    (one run), every secure prediction checked against the fixed-point reference.
$PANN bench --net loopback --alphas 7,8,9,10,11,12,13,14 --batches 1,8 --images 8 --verify --out "$R/bench-loopback.json"
# 2. LAN: alphas 9 and 12 (plus 7 and 14), batch 1 (4 runs a session) and
#    batch 4 (one run a session); each configuration is also measured on
#    direct loopback (compute term of the bound) and through the relay with no
#    delay (the emulator's overhead); 3 interleaved repetitions of the three.
$PANN bench --net lan --alphas 7,9,12,14 --batches 1,4 --images 4 --repeat 3 --out "$R/bench-lan.json"
# 3. WAN: alphas 9 and 12, batch 1, 2 images a session, 2 repetitions.
$PANN bench --net wan --alphas 9,12 --batches 1 --images 2 --repeat 2 --out "$R/bench-wan.json"
# 4. ResNet-32 costs on loopback (needs the trainer: make torch). Costs do not
#    depend on the weights' values: a one-epoch model on 5,000 images is enough.
LIBTORCH="$(scripts/install-torch.sh --print-libtorch)" cargo build --release -p pann-trainer
R32=target/bench-resnet32
rm -rf "$R32"
target/release/pann-train --threads 2 train --data ../shared/data/cifar-10-jpeg --run "$R32/run" --preset baseline \
    --depth 32 --epochs 1 --train-limit 5000 --test-limit 500 --calib-images 1000 --export resnet32-smoke --export-dir "$R32"
$PANN bench --net loopback --model "$R32/resnet32-smoke.card.json" --alphas 9,12 --batches 1 --images 4 --verify --out "$R/bench-resnet32.json"
# 5. Render BENCHMARKS.md and the SVG plots from the JSON files.
$PANN bench-report --results "$R" --out BENCHMARKS.md
