#!/usr/bin/env bash
# Regenerate the ONNX test models and their reference outputs in
# models/tests/data/onnx/ (see the README there): small PyTorch models exported
# with torch.onnx (TorchScript exporter at opset 13, dynamo exporter at its
# default opset), run by onnxruntime on fixed inputs.
#
#   scripts/onnx/make-models.sh [make_models.py options]
#
# The Python environment is a venv at $VENV (default .venv-onnx in the
# repository root), made if missing. torch is installed the way
# scripts/install-torch.sh --python installs it (the same pinned version), then
# the pinned onnx, onnxruntime and onnxscript; an existing venv that already has
# these versions is used as it is. pip uses its configured index.
# Data: Debian's dataset-fashion-mnist (installed here if missing) or
# FMNIST=<dir with the four IDX files>. CPU only; THREADS (default 1) torch threads.
set -euo pipefail

ONNX_VERSION=1.23.2
ONNXRUNTIME_VERSION=1.32.0
ONNXSCRIPT_VERSION=0.7.2
ONNX_IR_VERSION=1.1.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${VENV:-$root/.venv-onnx}"
case "$venv" in /*) ;; *) venv="$root/$venv" ;; esac
export FMNIST="${FMNIST:-/usr/share/datasets/fashion-mnist}"

if [ ! -f "$FMNIST/t10k-images-idx3-ubyte.gz" ]; then
  (apt-get update && apt-get install -y dataset-fashion-mnist) || sudo sh -c 'apt-get update && apt-get install -y dataset-fashion-mnist'
fi

# torch (pinned in install-torch.sh), numpy, safetensors
VENV="$venv" "$root/scripts/install-torch.sh" --python

py="$venv/bin/python"
if ! "$py" - "$ONNX_VERSION" "$ONNXRUNTIME_VERSION" "$ONNXSCRIPT_VERSION" <<'PY' 2>/dev/null; then
import sys, onnx, onnxruntime, onnxscript
sys.exit(0 if [onnx.__version__, onnxruntime.__version__, onnxscript.__version__] == sys.argv[1:4] else 1)
PY
  "$venv/bin/pip" install --disable-pip-version-check -q \
    "onnx==$ONNX_VERSION" "onnxruntime==$ONNXRUNTIME_VERSION" \
    "onnxscript==$ONNXSCRIPT_VERSION" "onnx-ir==$ONNX_IR_VERSION"
fi

cd "$root"
exec "$py" scripts/onnx/make_models.py "$@"
