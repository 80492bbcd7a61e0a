#!/usr/bin/env bash
# Exercise every CUDA code path of training and evaluation once (benchmarks/gpu_check.py), in a few
# minutes on one GPU; exit status 1 when a part failed.  Run from the repository root:
#
#     bash benchmarks/gpu_check.sh                       # GPU
#     GPU_CHECK_DEVICE=cpu bash benchmarks/gpu_check.sh  # the same code on the CPU, small sizes
#
# Python: $PYTHON, else .venv/bin/python when present, else python3.  Needs torch, timm, numpy,
# scipy, pandas, scikit-learn; tqdm and jsonschema are stubbed when missing (see gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
export TQDM_DISABLE=1
exec "$PYTHON" benchmarks/gpu_check.py "$@"
