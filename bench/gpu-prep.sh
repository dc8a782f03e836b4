#!/usr/bin/env bash
# Prepare, on a developer machine, what bench/gpu.sh needs on a lent GPU machine.
# That machine has python3 (3.12) with torch, numpy, Pillow, msgpack, onnx,
# scikit-image and pytest, but reaches no package registry: the few missing
# wheels and the verified model files travel with the working tree in .device/
# (git-ignored, well under the 64 MiB a call may carry).
#
#   bash bench/gpu-prep.sh
#   then with the device tool: run(command="bash bench/gpu.sh", carry=[".device"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
rm -rf .device && mkdir -p .device/whl .device/weights
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .device/whl pyzmq platformdirs tflite
cache=$(.venv/bin/python -c 'from portrait_style.paths import weights_cache_dir; print(weights_cache_dir())')
.venv/bin/portrait-style weights fetch >/dev/null
for name in selfie_segmentation selfie_segmentation_landscape face_detection_short_range \
            face_landmark magenta_predict magenta_transform converted; do
    cp -r "$cache/$name" .device/weights/
done
du -sh .device
