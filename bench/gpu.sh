#!/usr/bin/env bash
# One script for a lent GPU machine (H100/H200): set up, run the GPU tests, then
# the pipeline benchmark on CUDA. Budget: under five minutes after set-up.
# Usage: bash bench/gpu.sh [OUT_DIR]   (results land in OUT_DIR, default bench/results)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench/results}
mkdir -p "$out"
if [ ! -x .venv/bin/python ]; then
    bash installer/setup-dev.sh
fi
{
    echo "# GPU run $(date -u +%Y-%m-%dT%H:%MZ)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    .venv/bin/python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
} | tee "$out/gpu-machine.txt"
timeout 120 .venv/bin/python -m pytest -q -m gpu -p no:cacheprovider 2>&1 | tail -n 25 | tee "$out/gpu-tests.txt"
timeout 240 .venv/bin/python bench/pipeline.py --device cuda --sizes 512,1024,2048,4096 \
    --reps 10 --markdown "$out/pipeline-cuda.md" 2>&1 | tee "$out/pipeline-cuda.log"
