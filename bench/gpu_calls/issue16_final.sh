#!/usr/bin/env bash
# H200 calls closing issue 16, back to back on one machine (2026-12-03), after decode attention's launch settings
# changed (decode_attention_settings, from bench/decode_attention_sweep.py):
#   bash bench/gpu_calls/issue16_final.sh bench   # every triton point of both models in an empty Triton cache, a
#                                                 # profile of llama's batch-64 graph decode, then the paper workload
#   bash bench/gpu_calls/issue16_final.sh tests   # the fast-path GPU tests (their own Triton cache)
source "$(dirname "$0")/setup.sh"
if [ "${1:-}" = bench ]; then
  export TRITON_CACHE_DIR=/tmp/triton_fresh_$(date +%s)
  timeout 200 python3 bench/gpu_fast_path.py --points --kernels triton --out "$W/gpu_fast_path_h200.json" \
    > "$W/fast_path.log" 2>&1
  echo "fast path rc=$? at $(el) s" >> "$W/calls.log"; pack
  timeout 40 python3 bench/gpu_fast_path.py --profile llama-3.1-8b:triton:tpot_b64_c4096 --out "$W/profile.json" \
    > "$W/profile.log" 2>&1
  echo "profile rc=$? at $(el) s" >> "$W/calls.log"; pack
  timeout $(( 585 - $(el) )) python3 bench/gpu_fast_path.py --paper nemotron-h-8b,llama-3.1-8b \
    --out "$W/gpu_fast_path_h200.json" > "$W/paper.log" 2>&1
  echo "paper rc=$? at $(el) s" >> "$W/calls.log"; pack
  cat "$W/calls.log"; grep -v eager "$W/fast_path.log" | grep ms; head -n 14 "$W/profile.log"; cat "$W/paper.log"
else
  export TRITON_CACHE_DIR=/tmp/triton_tests_$(date +%s)
  timeout 560 python3 -m pytest -q -p no:cacheprovider tests/test_export_fast_path.py > "$W/tests.log" 2>&1
  echo "tests rc=$? at $(el) s" >> "$W/calls.log"; pack
  cat "$W/calls.log"; grep -E "passed|failed|Error" "$W/tests.log" | tail -n 15
fi
