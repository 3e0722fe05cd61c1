#!/usr/bin/env bash
# Issue 16, session of 2026-12-03 16:00 UTC, third call: the GPU tests not yet run on a GPU (default decode-attention
# launches for bf16 head 128 / bf16 head 256 / float32, the fused decode step and whole models after the dt clamp was
# dropped), then the triton refit of issue 12's calibration for decode_attention_settings (micro-benchmarks and the
# four held-out grids), as issue16_merge_next.sh refit does:
#   bash bench/gpu_calls/issue16_tests_refit.sh
source "$(dirname "$0")/setup.sh"
TRITON_CACHE_DIR=/tmp/triton_tests_$(date +%s) timeout 200 python3 -m pytest -q -p no:cacheprovider \
  tests/test_export_fast_path.py -k "default_settings or fused_decode or prefill_then_decode or generate or launch_settings" \
  > "$W/tests.log" 2>&1
echo "tests rc=$? at $(el) s" >> "$W/calls.log"; pack
export TRITON_CACHE_AUTOTUNING=1
timeout 230 python3 -m designer.cli calibrate --hardware h200 --kernels triton --layouts nemotron-h-8b,llama-3.1-8b \
  --device cuda --budget-s 150 --out "$W/calibration_h200_micro_triton.json" > "$W/calibrate.log" 2>&1
echo "calibrate rc=$? at $(el) s" >> "$W/calls.log"; pack
for L in llama-3.1-8b nemotron-h-8b bench/heldout/hybrid-3b-heldout.yaml mamba2-2.7b; do
  left=$(( 585 - $(el) )); [ "$left" -lt 40 ] && { echo "skip $L: $left s left" >> "$W/calls.log"; continue; }
  n=$(basename "$L" .yaml)
  timeout "$left" python3 -m designer.cli measure "$L" --device cuda --kernels triton --prompts 4096,16384,65536 \
    --contexts 4096,16384,65536 --batches 1,16,64 --iters 2 --save "$W/${n}_cuda_triton.json" > "$W/measure_$n.log" 2>&1
  echo "measure $n rc=$? at $(el) s" >> "$W/calls.log"; pack
done
cat "$W/calls.log"; tail -n 3 "$W/tests.log"; tail -n 4 "$W"/calibrate.log "$W"/measure_*.log
