#!/usr/bin/env bash
# Install PyTorch 2.13.0 (plus numpy and safetensors) into .venv at the
# repository root, for scripts/pytorch_reference.py and for the tch (libtorch)
# build of trainer/ (LIBTORCH = `--print-libtorch`). Idempotent: does nothing
# when `import torch` already works at that version.
#
#   scripts/install-torch.sh          minimal: torch without triton, cusolver,
#                                     cuda-bindings; only the CUDA runtime
#                                     libraries that torch's shared objects
#                                     link against (needed even on CPU: the
#                                     registry's torch wheel is a CUDA build)
#   scripts/install-torch.sh --full   the full torch==2.13.0 with all its
#                                     dependencies (GPU machines)
#   scripts/install-torch.sh --print-libtorch
#                                     print the torch package directory, which
#                                     is what LIBTORCH must name for the tch
#                                     build of trainer/ (installs nothing;
#                                     exits 1 if torch is not installed)
#
# Uses pip with its configured index; VENV=path overrides the location.
set -euo pipefail

TORCH_VERSION=2.13.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
mode=minimal
case "${1:-}" in
  --full) mode=full ;;
  "" | --minimal) ;;
  --print-libtorch)
    exec "$venv/bin/python" -c "import os, torch; print(os.path.dirname(torch.__file__))" 2>/dev/null ;;
  -h | --help) sed -n '2,21p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--full | --print-libtorch]" >&2; exit 2 ;;
esac

if [ -x "$venv/bin/python" ] &&
   "$venv/bin/python" -c "import sys, torch, numpy, safetensors; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  echo "torch $TORCH_VERSION already usable in $venv"
  exit 0
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/pip" install --disable-pip-version-check -q)

if [ "$mode" = full ]; then
  "${pip[@]}" "torch==$TORCH_VERSION" numpy safetensors
else
  # The libraries libtorch_cuda.so / libtorch_python.so name as NEEDED,
  # at the versions torch 2.13.0 pins (cuda-toolkit 13.0.3).
  "${pip[@]}" --no-deps "torch==$TORCH_VERSION" \
    "nvidia-cuda-runtime==13.0.96.*" "nvidia-cuda-cupti==13.0.85.*" \
    "nvidia-cuda-nvrtc==13.0.88.*" "nvidia-cublas==13.1.1.*" "nvidia-cufft==12.0.0.*" \
    "nvidia-cufile==1.15.1.*" "nvidia-curand==10.4.0.*" "nvidia-cusparse==12.6.3.*" \
    "nvidia-nvjitlink==13.*" "nvidia-cudnn-cu13==9.20.0.48" "nvidia-cusparselt-cu13==0.8.1" \
    "nvidia-nccl-cu13==2.29.7" "nvidia-nvshmem-cu13==3.4.5"
  "${pip[@]}" typing_extensions sympy mpmath networkx jinja2 MarkupSafe filelock fsspec numpy safetensors
fi

"$venv/bin/python" -c "import torch; print('torch', torch.__version__, 'ready in $venv')"
