#!/usr/bin/env bash
# One script for a lent GPU machine (H100/H200): the GPU tests, then the
# pipeline benchmark on CUDA. Budget: under five minutes (the timeouts below sum
# to 270 s; set-up and the pip installs take seconds).
#
# On the device tool's machine (no package registry there) prepare first with
# bench/gpu-prep.sh and carry .device; elsewhere it uses .venv (or makes it).
# Usage: bash bench/gpu.sh [OUT_DIR]   (default $OUT, else bench/results)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-bench/results}}
mkdir -p "$out"
if [ -d .device ]; then
    # the device machine: its python3 holds torch; add what is missing, offline
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --target /tmp/site .device/whl/*.whl || exit 1
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
        --target /tmp/site . || exit 1
    export PYTHONPATH=/tmp/site PORTRAIT_STYLE_WEIGHTS_CACHE=$PWD/.device/weights
    py=python3
else
    [ -x .venv/bin/python ] || bash installer/setup-dev.sh
    py=.venv/bin/python
fi
export PYTHONUNBUFFERED=1
{
    echo "# GPU run $(date -u +%Y-%m-%dT%H:%MZ)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    $py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} | tee "$out/gpu-machine.txt"
timeout 110 $py -m pytest -q -m gpu -p no:cacheprovider -o addopts="-ra" --import-mode=importlib \
    tests/test_gpu.py tests/test_magenta.py tests/test_sanet.py 2>&1 | tail -n 25 | tee "$out/gpu-tests.txt"
timeout 160 $py bench/pipeline.py --device cuda --sizes 512,1024,2048,4096 \
    --engines magenta,sanet --reps 5 --markdown "$out/pipeline-cuda.md" 2>&1 | tee "$out/pipeline-cuda.log"
