#!/usr/bin/env bash
# Issue 16, 2026-12-03 from 16:05 UTC, on one H200 after branch issue16-group-states was merged (the run's calls, in
# order: issue16_next.sh on main before the merge; issue16_group_states.sh on the branch; issue16_tests_refit.sh; then
# this script's two modes; each was one device call, its command typed inline as below):
#   bash bench/gpu_calls/issue16_final_group_states.sh bench   # every triton point (seven timed 64k prefills) in an
#                                                              # empty Triton cache, then the paper workload (408 s)
#   bash bench/gpu_calls/issue16_final_group_states.sh tests   # the GPU tests that no other call of the run ran (188 s)
source "$(dirname "$0")/setup.sh"
if [ "${1:-}" = bench ]; then
  export TRITON_CACHE_DIR=/tmp/triton_fresh_$(date +%s)
  timeout 240 python3 bench/gpu_fast_path.py --points --kernels triton --long-repeats 7 --out "$W/gpu_fast_path_h200.json" \
    > "$W/fast_path.log" 2>&1
  echo "fast path rc=$? at $(el) s" >> "$W/calls.log"; pack
  timeout $(( 585 - $(el) )) python3 bench/gpu_fast_path.py --paper nemotron-h-8b,llama-3.1-8b \
    --out "$W/gpu_fast_path_h200.json" > "$W/paper.log" 2>&1
  echo "paper rc=$? at $(el) s" >> "$W/calls.log"; pack
  cat "$W/calls.log"; grep -v eager "$W/fast_path.log" | grep ms; cat "$W/paper.log"
else
  TRITON_CACHE_DIR=/tmp/triton_tests_$(date +%s) timeout 330 python3 -m pytest -q -p no:cacheprovider \
    tests/test_export_fast_path.py -k "not (default_settings or fused_decode or prefill_then_decode or generate or \
launch_settings or chunk_states or ssd_scan or slots)" > "$W/tests.log" 2>&1
  echo "tests rc=$? at $(el) s" >> "$W/calls.log"; pack
  cat "$W/calls.log"; grep -E "passed|failed|Error" "$W/tests.log" | tail -n 15
fi
