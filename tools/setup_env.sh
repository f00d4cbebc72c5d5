#!/usr/bin/env bash
# Create (or update) a virtual environment with CI2P-MM installed as the
# README describes. Idempotent: a second run only checks.
#   bash tools/setup_env.sh            # -> .venv
#   CI2P_VENV=/path/venv bash tools/setup_env.sh
#   TORCH_PACKAGES="torch torchvision" bash tools/setup_env.sh  # other torch
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CI2P_VENV:-.venv}
PYTHON=${PYTHON:-python3}
# The versions CI tests with; any torch >= 2.1 with its torchvision works.
TORCH_PACKAGES=${TORCH_PACKAGES:-"torch==2.14.1 torchvision==0.29.1"}

if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
echo "[setup] installing $TORCH_PACKAGES"
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q $TORCH_PACKAGES
# deploy: onnx, onnxruntime, onnxscript for tools/deployment/ and its tests
# (resolved with CompressAI's numpy<2; see setup.py).
echo "[setup] installing ci2p-mm with mmcv-lite (pip install -e '.[lite,tests,deploy]')"
"$VENV/bin/python" -m pip install -q -e ".[lite,tests,deploy]"
"$VENV/bin/python" -m pip check
echo "[setup] ready: $VENV/bin/python"
