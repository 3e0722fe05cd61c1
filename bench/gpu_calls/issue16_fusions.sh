#!/usr/bin/env bash
# H200 device call for issue 16 (branch issue16-fusions): the fast path's new fusions checked and timed.
# Fusions: q/k/v and gate/up as one GEMM each (packed weights, inference), RoPE + KV-cache write in one decode
# kernel, fla-core's swiglu, relu² in place, y + D x as one addcmul, the conv's cached inputs as fla's initial
# state (no copy of the sequence). 1. the CUDA fast-path tests; 2. the triton points of both models.
#   bash bench/gpu_calls/issue16_fusions.sh      then merge gpu_fast_path_fusions_h200.json's points on the CPU
source "$(dirname "$0")/setup.sh"
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_export_fast_path.py > "$W/tests.log" 2>&1
echo "tests rc=$? at $(el) s" >> "$W/calls.log"; pack
timeout $(( 550 - $(el) )) python3 bench/gpu_fast_path.py --points --models llama-3.1-8b,nemotron-h-8b --kernels triton \
  --point-names tpot_b1_c4096,tpot_b64_c4096,ttft_4096,ttft_16384,ttft_65536 \
  --out "$W/gpu_fast_path_fusions_h200.json" > "$W/fast_path.log" 2>&1
echo "fast path rc=$? at $(el) s" >> "$W/calls.log"; pack
cat "$W/calls.log"; tail -n 5 "$W/tests.log"; tail -n 25 "$W/fast_path.log"
