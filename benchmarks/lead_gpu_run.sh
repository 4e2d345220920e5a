#!/usr/bin/env bash
# The kit's own GPU figures in one device call (issues 20 and 21): how long the default
# certification of the full-size Wan decoders takes (benchmarks/kit_speed.py), the CUDA
# tests of the kit and the Wan decoders, and the published flashdreams 0.1.0 decoders
# certified on CUDA with the framework's CUDA graphs on.
#
# Run from the repository root on the GPU machine, with the wheels of flashdreams==0.1.0
# and its missing pure-Python requirements in .whl/ (see the device notes); results go
# to $OUT (default /tmp/out).
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
REPO=$PWD
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" | tee -a "$OUT/gpu.txt"

echo "== 1. kit speed: default certification of the full-size Wan 2.1 and Wan 2.2 decoders"
timeout 200 python3 benchmarks/kit_speed.py --cases gpu --repeats 1 --out "$OUT/kit_speed_gpu.json" 2>&1 | tee "$OUT/kit_speed_gpu.log"

echo "== 2. wheels: flashdreams 0.1.0 (+ what the GPU image lacks), diffusers; the kit as a wheel"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target /tmp/kit . 2>&1 | tail -3

echo "== 3. CUDA tests of the kit and the Wan decoders"
PYTHONPATH=/tmp/site timeout 80 python3 -m pytest -q -p no:cacheprovider -m "cuda and not slow" tests/wan tests/zoo 2>&1 | tee "$OUT/cuda_tests.log" | tail -15

echo "== 4. flashdreams 0.1.0 on CUDA, CUDA graphs on (from outside the checkout: its flashdreams/ would shadow the framework)"
cd /tmp && PYTHONPATH=/tmp/kit:/tmp/site timeout 150 python3 -m conformance certify \
  conformance.ecosystem.flashdreams:all_cuda_graph --seed 1 \
  --report "$OUT/flashdreams_cuda_graph.json" --markdown "$OUT/flashdreams_cuda_graph.md" 2>&1 | tee "$OUT/flashdreams_cuda_graph.log"
echo "exit ${PIPESTATUS[0]}"
