#!/usr/bin/env bash
# Installs EdgeDerm and its pinned toolchain into .venv at the repository root.
# Offline after this step: nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
.venv/bin/pip install -q -r requirements.txt
.venv/bin/pip install -q --no-deps onnx2tf==1.29.24
# torch's wheel ships triton; with TensorFlow in the same process it segfaults (docs/toolchain.md).
.venv/bin/pip uninstall -y -q triton 2>/dev/null || true
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
# Optional: onnxruntime-web for `edgederm embed --platform web`, from npm once (EDGEDERM_NO_WEB=1 skips it).
if [ -z "${EDGEDERM_NO_WEB:-}" ] && command -v npm >/dev/null; then
  .venv/bin/python -m edgederm.embed.vendor || echo "onnxruntime-web not fetched: edgederm embed --platform web says how"
fi
echo "EdgeDerm installed in $(pwd)/.venv"
