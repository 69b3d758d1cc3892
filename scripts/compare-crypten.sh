#!/usr/bin/env bash
# PANN against CrypTen 0.4.1, side by side, from one invocation: same model
# (the shipped ResNet-20 `resnet20-akamaster`, BN folded), same images (the
# first N of ../shared/data/cifar-10-jpeg/test_batch.bin), same machine.
#
#   scripts/compare-crypten.sh                 # 16 images, batches 1 and 8, 2 repetitions
#   scripts/compare-crypten.sh --images 2 --batches 1,2 --repeat 1   # a smoke run
#
# Options:
#   --images N       images per configuration (default 16; a multiple of every batch)
#   --batches B,..   batch sizes (default 1,8)
#   --repeat R       repetitions of each configuration on both sides (default 2);
#                    medians are over all runs (batches x repetitions)
#   --threads T      torch threads in each CrypTen process (default 1; 0: torch's own choice,
#                    one per core). Three processes share the cores: with torch's default,
#                    OpenMP threads spinning in one process starve the others (on 2 cores a
#                    batch of 4 ran about 5x slower than with 1 thread)
#   --skip-pann      measure CrypTen only (BENCHMARKS.md is then left alone)
#   --skip-crypten   measure PANN only (idem)
#   --no-build       use target/release/pann and pann-party as they are (default: cargo build first)
#   -h, --help       this text
#
# What it does:
#   1. installs CrypTen 0.4.1 into .venv-crypten (its own virtual environment,
#      git-ignored, never part of `make test`; idempotent): torch 2.13.0 as
#      scripts/install-torch.sh --python installs it, CrypTen without its
#      pinned dependencies (it names `sklearn`, which no longer installs, and
#      torchvision, tensorboard, pandas, scipy, which the inference path does
#      not import), then the ones it does import (onnx, omegaconf, PyYAML);
#   2. builds pann and pann-party (release) and runs
#      `pann bench --alphas 9 --batches B --images N --repeat R --verify`:
#      three pann-party processes over TLS on loopback;
#   3. runs scripts/compare_crypten.py: CrypTen with its trusted third party,
#      party 0 (the model), party 1 (the images) and the TTP each in its own
#      process over loopback; per batch, a run with material made on demand
#      and a run with every tuple prepared by TupleProvider.fill_cache()
#      (see that file for how each number is obtained);
#   4. writes docs/results/compare-crypten.{md,json} (machine, commit, date,
#      load average, this command) and splices the table into BENCHMARKS.md
#      between <!-- compare-crypten:begin --> and <!-- compare-crypten:end -->
#      (`pann bench-report` keeps that block when it regenerates the file).
#
# Without ../shared/data/cifar-10-jpeg it says so and exits 0 (nothing measured).
# Uses pip with its configured index; the machine should be otherwise idle.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

CRYPTEN_VERSION=0.4.1
venv="$root/.venv-crypten"
records="../shared/data/cifar-10-jpeg/test_batch.bin"  # relative to the repository root (the cwd)
card="models/assets/resnet20-akamaster.card.json"
alpha=9
images=16
batches=1,8
repeat=2
threads=1
skip_pann=0
skip_crypten=0
build=1
command_line="scripts/compare-crypten.sh${*:+ $*}"

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --images) images="$2"; shift 2 ;;
    --batches) batches="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --skip-pann) skip_pann=1; shift ;;
    --skip-crypten) skip_crypten=1; shift ;;
    --no-build) build=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$images" =~ ^[1-9][0-9]*$ && "$repeat" =~ ^[1-9][0-9]*$ && "$threads" =~ ^[0-9]+$ ]] ||
  { echo "--images and --repeat take positive integers, --threads a count" >&2; exit 2; }
[[ "$batches" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "--batches takes a comma-separated list of positive integers" >&2; exit 2; }
for b in ${batches//,/ }; do
  [ $((images % b)) -eq 0 ] || { echo "--images $images is not a multiple of batch $b" >&2; exit 2; }
done
if [ "$skip_pann" = 1 ] && [ "$skip_crypten" = 1 ]; then
  echo "--skip-pann and --skip-crypten together leave nothing to measure" >&2; exit 2
fi
if [ ! -f "$records" ]; then
  echo "compare-crypten: skipped: $records is missing (the CIFAR-10 test set in ../shared); nothing measured"
  exit 0
fi

# ------------------------------------------------------------------ CrypTen's environment
crypten_ready() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$CRYPTEN_VERSION" <<'EOF' 2>/dev/null
import importlib, sys
import torch, numpy, safetensors, onnx, omegaconf, yaml  # noqa: F401
# CrypTen 0.4.1 imports a module that torch 2.13 moved (compare_crypten.py aliases it the same way).
try:
    importlib.import_module("torch.onnx._internal.registration")
except ImportError:
    sys.modules["torch.onnx._internal.registration"] = importlib.import_module(
        "torch.onnx._internal.torchscript_exporter.registration")
import crypten
sys.exit(0 if crypten.__version__ == sys.argv[1] and torch.__version__.split("+")[0] == "2.13.0" else 1)
EOF
}

install_crypten() {
  if crypten_ready; then
    echo "CrypTen $CRYPTEN_VERSION already importable in $venv"
    return
  fi
  echo "installing torch 2.13.0 and CrypTen $CRYPTEN_VERSION into $venv"
  command -v python3 >/dev/null && python3 -m venv --help >/dev/null 2>&1 || {
    echo "python3 with venv is needed (make torch installs it)" >&2; exit 1; }
  VENV="$venv" scripts/install-torch.sh --python
  local pip=("$venv/bin/pip" install --disable-pip-version-check -q)
  "${pip[@]}" --no-deps "crypten==$CRYPTEN_VERSION"
  "${pip[@]}" "onnx==1.23.2" "omegaconf==2.4.0" "PyYAML==6.0.4"
  crypten_ready || { echo "CrypTen $CRYPTEN_VERSION does not import in $venv after installing it" >&2; exit 1; }
  echo "CrypTen $CRYPTEN_VERSION ready in $venv"
}

# ------------------------------------------------------------------ run
work="target/compare-crypten"
mkdir -p "$work" docs/results
pann_json="$work/pann-bench.json"
crypten_json="$work/crypten.json"
rm -f "$pann_json" "$crypten_json"

[ "$skip_crypten" = 1 ] || install_crypten
if [ "$skip_pann" = 0 ]; then
  if [ "$build" = 1 ]; then
    cargo build --release -p pann-bin --bin pann --bin pann-party
  elif [ ! -x target/release/pann ] || [ ! -x target/release/pann-party ]; then
    echo "--no-build: target/release/pann or pann-party is missing" >&2; exit 1
  fi
fi

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
cpu="$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
cores="$(nproc)"
commit="$(git rev-parse --short HEAD)"
date_utc="$(date -u '+%Y-%m-%d %H:%M UTC')"
load_start="$(loadavg)"
start_s=$(date +%s)
echo "compare-crypten: $images images, batches $batches, $repeat repetition(s); load average $load_start"

if [ "$skip_pann" = 0 ]; then
  echo "== PANN: pann bench (alpha $alpha, TLS on loopback)"
  target/release/pann bench --model "$card" --data "$records" --alphas "$alpha" --batches "$batches" \
    --images "$images" --repeat "$repeat" --verify --out "$pann_json"
fi
if [ "$skip_crypten" = 0 ]; then
  echo "== CrypTen $CRYPTEN_VERSION (TTP), three processes on loopback"
  "$venv/bin/python" scripts/compare_crypten.py crypten --card "$card" --records "$records" \
    --images "$images" --batches "$batches" --repeat "$repeat" --threads "$threads" --out "$crypten_json"
fi

report=(python3 scripts/compare_crypten.py report --alpha "$alpha" --batches "$batches" --images "$images" --repeat "$repeat"
  --records "$records"
  --cpu "$cpu" --cores "$cores" --commit "$commit" --date "$date_utc"
  --load-start "$load_start" --load-end "$(loadavg)" --command "$command_line" --wall-s "$(($(date +%s) - start_s))"
  --out-md docs/results/compare-crypten.md --out-json docs/results/compare-crypten.json
  --results-rel docs/results --benchmarks BENCHMARKS.md)
[ "$skip_pann" = 1 ] || report+=(--pann "$pann_json")
[ "$skip_crypten" = 1 ] || report+=(--crypten "$crypten_json")
"${report[@]}"
echo
sed -n '/^| per image/,/^$/p' docs/results/compare-crypten.md
echo "compare-crypten: done in $(($(date +%s) - start_s)) s"
