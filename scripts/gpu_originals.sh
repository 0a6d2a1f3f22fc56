#!/usr/bin/env bash
# The GPU-original rows of the benchmark: PyTorch fp32, fp16 and fp16 + torch.compile on CUDA
# (and ONNX Runtime CUDA/TensorRT providers when onnxruntime-gpu is installed), appended to each
# export folder's bench/results.json so that the report shows them next to the CPU and device rows.
#
#   scripts/gpu_originals.sh EXPORT_FOLDER [EXPORT_FOLDER ...]
#
# Each folder needs its manifest's PyTorch checkpoint and the test data (--data or $EDGEDERM_DATA).
# Without a GPU, `edgederm bench --gpu only` stops with a one-line error and exit 2.
set -euo pipefail
cd "$(dirname "$0")/.."
EDGEDERM=${EDGEDERM:-.venv/bin/edgederm}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
for folder in "$@"; do
  results="$folder/bench/results.json"
  append=()
  [ -f "$results" ] && append=(--append "$results")
  "$EDGEDERM" bench "$folder" --gpu only --threads 1 --runs 200 --warmup 50 --no-peers --no-peak \
    "${append[@]}" --out "$folder/bench"
done
