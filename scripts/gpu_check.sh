#!/usr/bin/env bash
# One prepared GPU check: TensorRT engines (fp32, fp16, int8 from the QDQ file, and the uncalibrated
# int8 that `trtexec --int8` would build) with accuracy, ONNX Runtime's CUDA and TensorRT providers,
# and ONNX Runtime on the host CPU as the ratio's denominator, for every bundle of a pack, in one
# results.json + report per model. The same bundle + `python -m device_bench run` is what a Jetson
# user runs (docs/devices.md).
#
#   CPU side:  scripts/gpu_check.sh pack --out PACK [--images N] [--data DIR] EXPORT_FOLDER [...]
#              adds the TensorRT-ready int8_qdq ONNX file to each export (if absent) and packs a Jetson
#              bundle of it (ONNX files + bundled labelled test images, no PyTorch), without its .tar.gz
#   GPU side:  scripts/gpu_check.sh run PACK [--out OUT] [--no-install] [--dry-run]
#              installs requirements-gpu.txt (unless --no-install), then for each PACK/bundles/<name>:
#              OUT/<name>/results.json and OUT/<name>/report/ (Markdown + HTML)
#
# Budget: under 8 minutes for a classifier and a segmenter on one GPU (install ~2-3 min when the
# wheels download, engine builds ~20-60 s each, 200 timed runs per row). GPU_CHECK_TIMEOUT caps each
# bundle's device_bench run (default 200 s). PyTorch originals on the GPU (fp32, fp16, fp16 +
# torch.compile) come from scripts/gpu_originals.sh, which needs the export folders, checkpoints and
# test data: set GPU_CHECK_EXPORTS="exp/lite0 exp/unet" (with EDGEDERM_DATA) to run it here too.
# Exit: 0 all rows ran or were skipped with a reason, 1 a row failed, 2 usage.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EDGEDERM=${EDGEDERM:-.venv/bin/edgederm}

usage() {
  echo "usage: scripts/gpu_check.sh pack --out PACK [--images N] [--data DIR] EXPORT...  |  run PACK [--out OUT] [--no-install] [--dry-run]" >&2
  exit 2
}
die() { echo "gpu_check: error: $*" >&2; exit 2; }
dry=0
step() {  # print the command; run it unless --dry-run
  echo "+ $*"
  [ "$dry" = 1 ] && return 0
  "$@"
}

pack() {
  local out="" images=200 data=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --out) out=${2:-}; shift 2 ;;
      --images) images=${2:-}; shift 2 ;;
      --data) data=(--data "${2:-}"); shift 2 ;;
      --dry-run) dry=1; shift ;;
      -*) die "unknown option $1 for pack: use --out PACK, --images N, --data DIR" ;;
      *) break ;;
    esac
  done
  [ -n "$out" ] || die "pack needs --out PACK (a folder outside the repository, or one .git/info/exclude ignores)"
  [ $# -gt 0 ] || die "pack needs one or more export folders (made by edgederm export --to onnx)"
  for folder in "$@"; do
    [ -f "$folder/manifest.json" ] || die "$folder has no manifest.json: pass an export folder made by edgederm export"
  done
  mkdir -p "$out/bundles"
  for folder in "$@"; do
    if ! grep -q '"onnx_int8_qdq"' "$folder/manifest.json"; then
      step $EDGEDERM quantize "$folder" --scheme int8_qdq:onnx --format onnx "${data[@]}"
      case $? in  # 1 is a gate verdict: the file exists, its CPU verdict is in the manifest, the GPU measures it
        0) ;;
        1) echo "gpu_check: $folder: onnx_int8_qdq failed its CPU parity gate (recorded in the manifest); packed anyway" ;;
        *) exit 1 ;;
      esac
    fi
    step $EDGEDERM bundle "$folder" --target jetson --images "$images" --out "$out/bundles" "${data[@]}" || exit 1
  done
  [ "$dry" = 1 ] || rm -f "$out"/bundles/*.tar.gz  # the folders travel; the archives would double the size
  [ "$dry" = 1 ] || du -sh "$out" | sed 's/^/gpu_check: pack size /'
}

run() {
  local packdir="" out="" install=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --out) out=${2:-}; shift 2 ;;
      --no-install) install=0; shift ;;
      --dry-run) dry=1; shift ;;
      -*) die "unknown option $1 for run: use --out OUT, --no-install, --dry-run" ;;
      *) [ -z "$packdir" ] || die "run takes one pack folder"; packdir=$1; shift ;;
    esac
  done
  [ -n "$packdir" ] || die "run needs the pack folder made by: scripts/gpu_check.sh pack --out PACK EXPORT..."
  local bundles=("$packdir"/bundles/*/)
  [ -f "${bundles[0]}manifest.json" ] || die "$packdir/bundles holds no bundle: make the pack with scripts/gpu_check.sh pack"
  out=${out:-$packdir/gpu_results}
  mkdir -p "$out"
  local t0=$SECONDS status=0 gpu
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  gpu=${gpu:-no-nvidia-gpu}
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null \
    || echo "gpu_check: nvidia-smi not found: TensorRT and CUDA rows will be skipped with the reason"
  if [ "$install" = 1 ]; then
    # onnxruntime-gpu and onnxruntime both own the onnxruntime module: never leave both installed
    step $PY -m pip uninstall -q -y onnxruntime || true
    step timeout 300 $PY -m pip install -q -r requirements-gpu.txt \
      || echo "gpu_check: installing requirements-gpu.txt failed (offline?); rows name what is missing"
  fi
  for b in "${bundles[@]}"; do
    b=${b%/}
    local name
    name=$(basename "$b")
    mkdir -p "$out/$name"
    # batch 1: 200 timed runs after 50 warm-up; ORT CPU at 1 thread is the same run's CPU row
    step timeout "${GPU_CHECK_TIMEOUT:-200}" $PY -m device_bench run "$b" --runtime onnxruntime,tensorrt \
      --threads 1 --trt-precisions fp32,fp16,int8 --warmup 50 --runs 200 --max-seconds 10 --bootstrap 1000 \
      --device "$gpu" --engines "$out/$name/engines" --out "$out/$name/results.json"
    local rc=$?
    [ "$rc" = 0 ] || { echo "gpu_check: $name: device_bench exit $rc"; status=1; }
    [ "$dry" = 1 ] || [ -f "$out/$name/results.json" ] || continue
    step $PY -m edgederm report "$out/$name/results.json" --out "$out/$name/report" \
      || echo "gpu_check: $name: the report needs edgederm's own requirements; results.json is complete without it"
  done
  if [ -n "${GPU_CHECK_EXPORTS:-}" ]; then  # word splitting on purpose: a list of folders
    # shellcheck disable=SC2086
    step env EDGEDERM="$PY -m edgederm" scripts/gpu_originals.sh --out "$out/originals" $GPU_CHECK_EXPORTS || status=1
  else
    echo "gpu_check: PyTorch GPU originals not run (set GPU_CHECK_EXPORTS and EDGEDERM_DATA; see docs/benchmarks.md)"
  fi
  local spent=$((SECONDS - t0))
  echo "gpu_check: done in ${spent} s on ${gpu}; results under $out"
  [ "$spent" -le 480 ] || echo "gpu_check: over the 8-minute budget (${spent} s): lower --runs or GPU_CHECK_TIMEOUT"
  return $status
}

mode=${1:-}
[ $# -gt 0 ] && shift
case "$mode" in
  pack) pack "$@" ;;
  run) run "$@" ;;
  *) usage ;;
esac
