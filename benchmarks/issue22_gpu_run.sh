#!/usr/bin/env bash
# The final GPU session of issue 22, in two parts that each fit one device call:
#   A: the CUDA tests of tests/wan and the kit's certification of both full-size specs
#      (run side by side: correctness only, no timing), then the Wan 2.1 benchmark;
#   B: the Wan 2.2 benchmark.
# Each benchmark runs ours, diffusers eager and diffusers channels_last_3d +
# torch.compile (dynamo's recompile limit raised to 64 per function, 1024 accumulated)
# in one process. Logs and reports go to a tarball in $OUT.
# Usage (repo root; diffusers wheels in .whl/ where it is not installed):
#   OUT=/some/dir bash benchmarks/issue22_gpu_run.sh A|B [seconds for B's benchmark]
set -u
part=${1:?A or B}
OUT=${OUT:-gpu_out}
R=$(mktemp -d)
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import diffusers" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, triton, diffusers; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'triton', triton.__version__, 'diffusers', diffusers.__version__)"
} > "$R/versions.txt" 2>&1
cat "$R/versions.txt"
step() {  # step NAME SECONDS COMMAND...
  local name=$1 seconds=$2; shift 2
  local t0=$SECONDS
  timeout "$seconds" "$@" > "$R/$name.log" 2>&1
  echo "$name: exit $? in $((SECONDS - t0)) s" | tee -a "$R/steps.txt"
}
bench() {  # bench MODEL SECONDS EXTRA...
  local model=$1 seconds=$2; shift 2
  step "bench_${model}" "$seconds" python3 benchmarks/wan_decode.py --model "$model" --dtype bf16 \
    --no-cold-start --no-channels-last-eager --diffusers-compile --recompile-limit 64 \
    --profile-dir "$R/profile_${model}" --json "$R/bench_${model}.json" "$@"
  grep -v USDT "$R/bench_${model}.log" | tail -22
}
if [ "$part" = A ]; then
  step pytest_wan_cuda 230 python3 -m pytest -q -p no:cacheprovider -m "cuda and not slow" -rs tests/wan &
  step certify_wan21_full_cuda 230 python3 -m conformance certify reference_decoders.wan.specs:full_cuda \
    --seed 0 --report "$R/kit_wan21.json" --markdown "$R/kit_wan21.md" &
  step certify_wan22_full_cuda 230 python3 -m conformance certify reference_decoders.wan.specs:wan22_full_cuda \
    --profile quick --seed 0 --report "$R/kit_wan22.json" --markdown "$R/kit_wan22.md" &
  wait
  tail -3 "$R/pytest_wan_cuda.log"; tail -4 "$R/certify_wan21_full_cuda.log"; tail -4 "$R/certify_wan22_full_cuda.log"
  bench wan2.1 250
else
  bench wan2.2 "${2:-400}" --repeats 3 --warmup 1
fi
cat "$R/steps.txt"
tar czf "$OUT/part_$part.tgz" -C "$R" .
