#!/usr/bin/env bash
# Issue 14's measurements in one sitting (docs/results/performance.md):
#
#     scripts/performance.sh BEFORE_DIR [OUT_DIR]
#
# BEFORE_DIR holds `pann` and `pann-party` of an earlier build, e.g.
#     git worktree add ../before <commit> && (cd ../before && cargo build --release -p pann-bin)
#     scripts/performance.sh ../before/target/release
# Measures this checkout's release build ("after") against it, interleaved
# (before, after, before, after) so that drifts of the machine's load hit
# both alike, on ResNet-20 (resnet20-akamaster) at alpha 9 over TLS on
# loopback: batches 1 and 8 (16 images, predictions checked against the
# fixed-point reference) and 64 (64 images, one run); then a perf profile of
# a batch-8 run of each build per role and category (scripts/perf_breakdown.py,
# DWARF call graphs), and the dealer and expansion throughput of this
# build (protocols/examples/dealer_throughput). Needs perf. About 15 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
before="${1:?usage: scripts/performance.sh BEFORE_DIR [OUT_DIR]}"
out="${2:-docs/results/performance}"
[[ -x "$before/pann" && -x "$before/pann-party" ]] || { echo "no pann and pann-party in $before" >&2; exit 2; }
cargo build --release -p pann-bin
cargo build --release -p pann-protocols --example dealer_throughput
mkdir -p "$out"
model=models/assets/resnet20-akamaster.card.json
for rep in 1 2; do
    for side in before after; do
        pann="$before/pann"; [[ $side == after ]] && pann=target/release/pann
        echo "== $side, repetition $rep" >&2
        "$pann" bench --model "$model" --alphas 9 --batches 1,8 --images 16 --verify --out "$out/bench-$side-$rep.json" >/dev/null
        "$pann" bench --model "$model" --alphas 9 --batches 64 --images 64 --out "$out/bench64-$side-$rep.json" >/dev/null
    done
done
for side in before after; do
    pann="$before/pann"; [[ $side == after ]] && pann=target/release/pann
    perf record -q -F 499 --call-graph dwarf,32768 -o "$out/perf.data" -- \
        "$pann" bench --model "$model" --alphas 9 --batches 8 --images 8 --out "$out/perf-bench-$side.json" >/dev/null 2>&1
    perf script -i "$out/perf.data" -F pid,tid,comm,ip,sym --show-task-events 2>/dev/null \
        | python3 scripts/perf_breakdown.py --title "$side, batch 8" --json "$out/profile-$side.json" > "$out/profile-$side.md"
    rm -f "$out/perf.data" "$out/perf-bench-$side.json" "$out/perf-bench-$side.md"
done
target/release/examples/dealer_throughput --alpha 9 --batch 8 --repeat 5 > "$out/throughput.md"
echo "written: $out" >&2
