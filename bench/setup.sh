#!/usr/bin/env bash
# Sets up the speed peer (PyTorch + diffusers on the CPU) in bench/.venv. Idempotent: a second
# run only checks. Offline-capable from the package registries: PyTorch is Debian's
# python3-torch (1.13, CPU; PyPI's wheels pull 3 GB of CUDA libraries and do not import
# without them), with OpenBLAS (Debian's default reference BLAS is far slower); diffusers and
# its helpers come from PyPI at pinned versions, in a virtual environment that sees the system's
# packages.
set -euo pipefail
cd "$(dirname "$0")"
PY=/usr/bin/python3
need=()
"$PY" -c 'import torch' 2>/dev/null || need+=(python3-torch)
dpkg -s libopenblas0-pthread >/dev/null 2>&1 || need+=(libopenblas0-pthread)
"$PY" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  echo "bench/setup.sh: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -x .venv/bin/python ] || "$PY" -m venv --system-site-packages .venv
if ! .venv/bin/python -c 'import diffusers, huggingface_hub, numpy, sys
sys.exit(not (diffusers.__version__ == "0.30.3" and huggingface_hub.__version__ == "0.25.2" and int(numpy.__version__.split(".")[0]) < 2))' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "diffusers==0.30.3" "huggingface_hub==0.25.2" "numpy<2"
fi
.venv/bin/python -c 'import torch, diffusers; print(f"peer: torch {torch.__version__}, diffusers {diffusers.__version__}")'
