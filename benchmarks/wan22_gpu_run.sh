#!/usr/bin/env bash
# One GPU session for the Wan 2.2 decoder (issue 12): CUDA tests, the kit's CUDA
# certification of the full-size spec, and the benchmark in bf16 and fp32. Every step is
# time-boxed and logs to $OUT (default ./gpu_out), so a step cut short still reports.
# Usage (repo root, diffusers wheels in .whl/ where it is not installed):
#   OUT=/some/dir bash benchmarks/wan22_gpu_run.sh
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import diffusers" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, diffusers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'diffusers', diffusers.__version__)"
} > "$OUT/versions.txt" 2>&1
step() {  # step NAME SECONDS COMMAND...
  local name=$1 seconds=$2; shift 2
  local t0=$SECONDS
  timeout "$seconds" "$@" > "$OUT/$name.log" 2>&1
  echo "$name: exit $? in $((SECONDS - t0)) s" | tee -a "$OUT/steps.txt"
}
step pytest_wan22_cuda 100 python3 -m pytest -q -p no:cacheprovider -m "cuda and not slow" -rs \
  tests/wan/test_fast.py tests/wan/test_specs.py -k wan2.2
step certify_wan22_full_cuda 60 python3 -m conformance certify \
  reference_decoders.wan.specs:wan22_full_cuda --profile quick --seed 0 \
  --report "$OUT/kit22.json" --markdown "$OUT/kit22.md"
step bench_wan22_bf16 160 python3 benchmarks/wan_decode.py --model wan2.2 --dtype bf16 \
  --no-channels-last --json "$OUT/bench22_bf16.json"
step bench_wan22_fp32 100 python3 benchmarks/wan_decode.py --model wan2.2 --dtype fp32 \
  --no-channels-last --no-cold-start --no-streaming --warmup 1 --repeats 1 \
  --json "$OUT/bench22_fp32.json"
