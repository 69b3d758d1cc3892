#!/usr/bin/env bash
# Install PyTorch 2.13.0 into .venv at the repository root: libtorch for the
# tch build of trainer/ and, with --python, an importable torch for
# scripts/pytorch_reference.py. Idempotent.
#
#   scripts/install-torch.sh          tch only (what `make test` needs): the
#                                     torch wheel without dependencies, plus the
#                                     CUDA runtime and CUPTI libraries that
#                                     libtorch_cpu links against (the registry's
#                                     torch wheel is a CUDA build). About 1.2 GB.
#                                     `import torch` does not work with this.
#   scripts/install-torch.sh --python also every CUDA library torch's Python
#                                     module loads, and torch's pure-Python
#                                     dependencies, numpy and safetensors
#                                     (several GB; CPU machines)
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

torch_dir() {
  local d
  for d in "$venv"/lib/python3*/site-packages/torch; do
    [ -f "$d/lib/libtorch_cpu.so" ] && [ -f "$d/version.py" ] && grep -q "__version__ = '$TORCH_VERSION" "$d/version.py" && { echo "$d"; return 0; }
  done
  return 1
}

mode=tch
case "${1:-}" in
  "" | --tch) ;;
  --python) mode=python ;;
  --full) mode=full ;;
  --print-libtorch) torch_dir || { echo "torch $TORCH_VERSION is not installed in $venv: run $0" >&2; exit 1; }; exit 0 ;;
  -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--tch | --python | --full | --print-libtorch]" >&2; exit 2 ;;
esac

if [ "$mode" = tch ] && torch_dir >/dev/null; then
  echo "libtorch $TORCH_VERSION already in $(torch_dir)"
  exit 0
fi
if [ "$mode" != tch ] && [ -x "$venv/bin/python" ] &&
   "$venv/bin/python" -c "import sys, torch, numpy, safetensors; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  echo "torch $TORCH_VERSION already importable in $venv"
  exit 0
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/pip" install --disable-pip-version-check -q)

case "$mode" in
  full) "${pip[@]}" "torch==$TORCH_VERSION" numpy safetensors ;;
  tch)
    "${pip[@]}" --no-deps "torch==$TORCH_VERSION" "nvidia-cuda-runtime==13.0.96.*" "nvidia-cuda-cupti==13.0.85.*" ;;
  python)
    # The libraries libtorch_cuda.so / libtorch_python.so name as NEEDED,
    # at the versions torch 2.13.0 pins (cuda-toolkit 13.0.3).
    "${pip[@]}" --no-deps "torch==$TORCH_VERSION" \
      "nvidia-cuda-runtime==13.0.96.*" "nvidia-cuda-cupti==13.0.85.*" \
      "nvidia-cuda-nvrtc==13.0.88.*" "nvidia-cublas==13.1.1.*" "nvidia-cufft==12.0.0.*" \
      "nvidia-cufile==1.15.1.*" "nvidia-curand==10.4.0.*" "nvidia-cusparse==12.6.3.*" \
      "nvidia-nvjitlink==13.*" "nvidia-cudnn-cu13==9.20.0.48" "nvidia-cusparselt-cu13==0.8.1" \
      "nvidia-nccl-cu13==2.29.7" "nvidia-nvshmem-cu13==3.4.5"
    "${pip[@]}" typing_extensions sympy mpmath networkx jinja2 MarkupSafe filelock fsspec numpy safetensors ;;
esac

echo "libtorch $TORCH_VERSION ready in $(torch_dir)"
