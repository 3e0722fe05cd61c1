#!/usr/bin/env bash
# H200 device call for issue 12 after the shared RoPE tables / aligned decode caches changed the decode step:
# the triton micro-benchmarks again (then on the CPU: `designer calibrate --from ... --write`), and the triton
# held-out grids of the three whole models re-measured on today's code. Everything under one 560 s cap.
#   bash bench/gpu_calls/issue12_triton_refresh.sh      then on the CPU: refit and python bench/measured_vs_predicted.py
source "$(dirname "$0")/setup.sh"
export TRITON_CACHE_AUTOTUNING=1     # Triton >= 3.3 keeps autotune results on disk: later processes skip the sweeps
timeout 230 python3 -m designer.cli calibrate --hardware h200 --kernels triton --layouts nemotron-h-8b,llama-3.1-8b \
  --device cuda --budget-s 150 --out "$W/calibration_h200_micro_triton.json" > "$W/calibrate.log" 2>&1
echo "calibrate rc=$? at $(el) s" >> "$W/calls.log"; pack
for M in llama-3.1-8b mamba2-2.7b nemotron-h-8b; do
  left=$(( 560 - $(el) )); [ "$left" -lt 40 ] && { echo "skip $M: $left s left" >> "$W/calls.log"; continue; }
  timeout "$left" python3 -m designer.cli measure $M --device cuda --kernels triton --prompts 4096,16384,65536 \
    --contexts 4096,16384,65536 --batches 1,16,64 --iters 2 --save "$W/${M}_cuda_triton.json" > "$W/measure_$M.log" 2>&1
  echo "measure $M rc=$? at $(el) s" >> "$W/calls.log"; pack
done
cat "$W/calls.log"; tail -n 8 "$W/calibrate.log"; tail -n 14 "$W"/measure_*.log
