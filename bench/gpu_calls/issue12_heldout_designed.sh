#!/usr/bin/env bash
# H200 device call for issue 12: the held-out grid of a layout designed here and never used to fit
# (bench/heldout/hybrid-3b-heldout.yaml: Mamba-2 + GQA attention + SwiGLU MLP, 3.05 B), on both backends; then,
# in the time left, mamba2-2.7b's triton TTFT three times on one machine (autotune cache off, on cold, on warm)
# to tell the cache from the host behind its 99 vs 142 ms 4k prefill. Everything under one 570 s cap.
#   bash bench/gpu_calls/issue12_heldout_designed.sh     then on the CPU: python bench/measured_vs_predicted.py
source "$(dirname "$0")/setup.sh"
L=bench/heldout/hybrid-3b-heldout.yaml
for K in triton torch; do
  left=$(( 570 - $(el) )); [ "$left" -lt 60 ] && { echo "skip $K: $left s left" >> "$W/calls.log"; continue; }
  timeout "$left" python3 -m designer.cli measure $L --device cuda --kernels $K --prompts 4096,16384,65536 \
    --contexts 4096,16384,65536 --batches 1,16,64 --iters 2 --save "$W/hybrid-3b-heldout_cuda_$K.json" > "$W/measure_$K.log" 2>&1
  echo "measure $K rc=$? at $(el) s" >> "$W/calls.log"; pack
done
ab() {  # name, then env assignments
  local name=$1; shift
  left=$(( 570 - $(el) )); [ "$left" -lt 40 ] && { echo "skip $name: $left s left" >> "$W/calls.log"; return; }
  env "$@" timeout $(( left < 120 ? left : 120 )) python3 -m designer.cli measure mamba2-2.7b --device cuda --kernels triton \
    --prompts 4096,16384 --contexts 4096 --batches 1 --iters 5 --save "$W/mamba2_$name.json" > "$W/$name.log" 2>&1
  echo "$name rc=$? at $(el) s" >> "$W/calls.log"; pack
}
ab plain TRITON_CACHE_AUTOTUNING=0
ab cache_cold TRITON_CACHE_AUTOTUNING=1
ab cache_warm TRITON_CACHE_AUTOTUNING=1
cat "$W/calls.log"; tail -n 14 "$W"/measure_*.log; grep -h "ttft" "$W"/plain.log "$W"/cache_*.log 2>/dev/null
