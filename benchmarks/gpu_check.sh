#!/usr/bin/env bash
# The GPU checks of the static engine on a lent CUDA machine (issue 6's GPU half), sized for a 15-minute device
# budget and a 10-minute limit per command: two calls, each stage under its own time limit so that a slow one
# cannot eat the rest. Results land in $OUT (or /tmp/gpu_check): device.txt, tests.log, static_kernels.md,
# engine_static.md/.log.
#
# Here first:   bash scripts/gpu_wheels.sh                       (wheels the device image lacks, into .whl/, ~21 MB)
# Then, there:  bash benchmarks/gpu_check.sh tests kernels       (carry: .whl; <= 5.5 min)
#               bash benchmarks/gpu_check.sh engine              (at once, while the machine is warm; <= 5.5 min)
# (no argument: all three stages, for a machine without the 10-minute limit)
#
# tests:   the Triton kernels compiled for the GPU against the torch ops, op by op; the engine on the kernels
#          against the torch ops token for token (fp32); the kernels inside a compiled decode step; the compiled
#          bf16 engine (CUDA graphs) on the kernels and on the torch ops against transformers;
# kernels: benchmarks/static_kernels.py, each kernel against the torch ops it replaces (eager and compiled), in
#          CUDA graphs, with its achieved bandwidth;
# engine:  benchmarks/engine_static.py --quick: batch 1 and 32 concurrent against transformers generate, the
#          decode steps' share of the memory-bandwidth peak, Triton kernels against torch ops.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [ -d .whl ] && [ ! -d /tmp/site ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
fi
if [ -d /tmp/site ]; then export PYTHONPATH="/tmp/site:$PWD"; else export PYTHONPATH="$PWD"; fi
STAGES=" ${*:-tests kernels engine} "
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv
  "$PY" -c "import torch, triton, transformers; print('torch', torch.__version__, '| triton', triton.__version__,
'| transformers', transformers.__version__, '| device', torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/device.txt"

stage() {  # name, seconds, command...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0))s"
}

case "$STAGES" in *" tests "*)
  stage tests 200 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" --timeout 150 \
    tests/engine/test_triton_kernels.py \
    "tests/engine/test_static_engine.py::test_cuda_bf16_compiled_decode_follows_transformers" \
    2>&1 | tee "$OUT/tests.log";;
esac
case "$STAGES" in *" kernels "*)
  stage kernels 120 "$PY" benchmarks/static_kernels.py --markdown "$OUT/static_kernels.md";;
esac
case "$STAGES" in *" engine "*)
  stage engine 300 "$PY" benchmarks/engine_static.py --quick --size 1b --new-tokens 48 --rounds 2 \
    --markdown "$OUT/engine_static.md" 2>&1 | tee "$OUT/engine_static.log";;
esac
