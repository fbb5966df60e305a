#!/usr/bin/env bash
# The GPU checks of the speed work as one command on the device machine (one GPU; its python3 holds torch,
# transformers and ved's other packages; run from the repository's root there): the tests marked `cuda` (CUDA graphs
# against the static steps, CUDA against the CPU reference, pinned memory), then benchmarks/gpu_bench.py. Everything
# goes to $OUT: the machine, the test log, the bench's table and its JSON lines.
#
#   device run: bash benchmarks/gpu_check.sh     timeout_s: 590     (no carry: the bench writes its checkpoints)
set -uo pipefail
O=${OUT:-/tmp/gpu-check}
PY=${PY:-python3}
TEST_S=${TEST_S:-150}
BENCH_S=${BENCH_S:-380}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$O"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; nproc;
  "$PY" -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } \
  > "$O/machine.txt" 2>&1
cat "$O/machine.txt"
timeout -k 10 "$TEST_S" "$PY" -m pytest -m cuda -p no:cacheprovider -q tests > "$O/cuda-tests.log" 2>&1
echo "cuda tests: exit $? ($(tail -1 "$O/cuda-tests.log"))"
timeout -k 10 "$BENCH_S" "$PY" benchmarks/gpu_bench.py --json "$O/gpu.jsonl" ${BENCH_ARGS:-} \
  > "$O/bench.md" 2> "$O/bench.log"
echo "bench: exit $?"
cat "$O/bench.md"
