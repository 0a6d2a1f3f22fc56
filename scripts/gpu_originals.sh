#!/usr/bin/env bash
# The GPU-original rows of the benchmark: PyTorch fp32, fp16 and fp16 + torch.compile on CUDA
# (and ONNX Runtime CUDA/TensorRT providers when onnxruntime-gpu is installed and the folder has
# its model.onnx), measured on the same test images as the CPU rows.
#
#   scripts/gpu_originals.sh [--out DIR] EXPORT_FOLDER [EXPORT_FOLDER ...]
#
# Without --out the rows are appended to each folder's bench/results.json (the report then shows
# them next to the CPU and device rows); with --out each model's GPU rows go to DIR/<model>/ and
# are merged later with `edgederm results merge`. The deltas of the GPU rows are against the
# original on the CPU (its accuracy is recomputed there). Each folder needs its manifest's PyTorch
# checkpoint and the test data (--data or $EDGEDERM_DATA). Without a GPU, `edgederm bench --gpu only`
# stops with a one-line error and exit 2.
set -uo pipefail
cd "$(dirname "$0")/.."
EDGEDERM=${EDGEDERM:-.venv/bin/edgederm}
out=""
if [ "${1:-}" = "--out" ]; then out=$2; shift 2; fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
status=0
for folder in "$@"; do
  if [ -n "$out" ]; then
    name=$(basename "$folder"); [ "$name" = export ] && name=$(basename "$(dirname "$folder")")
    dest="$out/$name"
    append=()
  else
    dest="$folder/bench"; results="$dest/results.json"
    append=(); [ -f "$results" ] && append=(--append "$results")
  fi
  # batch 1 over 200 runs in interleaved rounds; throughput at batch 64, where a GPU earns its keep
  timeout "${GPU_BENCH_TIMEOUT:-300}" $EDGEDERM bench "$folder" --gpu only --threads 1 --runs 200 --warmup 50 \
    --throughput-batch 64 --no-peers --no-peak "${append[@]}" --out "$dest" || status=1
done
exit $status
