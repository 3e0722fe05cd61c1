#!/usr/bin/env bash
# Issue 16, session of 2026-12-03 16:00 UTC, third call: the GPU tests not yet run on a GPU (default decode-attention
# launches for bf16 head 128 / bf16 head 256 / float32, the fused decode step and whole models after the dt clamp was
# dropped), then the triton refit of issue 12's calibration for decode_attention_settings (micro-benchmarks and the
# four held-out grids), as issue16_merge_next.sh refit does:
#   bash bench/gpu_calls/issue16_tests_refit.sh
source "$(dirname "$0")/setup.sh"
source "$(dirname "$0")/triton_refit.sh"
TRITON_CACHE_DIR=/tmp/triton_tests_$(date +%s) timeout 200 python3 -m pytest -q -p no:cacheprovider \
  tests/test_export_fast_path.py -k "default_settings or fused_decode or prefill_then_decode or generate or launch_settings" \
  > "$W/tests.log" 2>&1
echo "tests rc=$? at $(el) s" >> "$W/calls.log"; pack
export TRITON_CACHE_AUTOTUNING=1
triton_refit 585
cat "$W/calls.log"; tail -n 3 "$W/tests.log"; tail -n 4 "$W"/calibrate.log "$W"/measure_*.log
