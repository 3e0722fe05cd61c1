#!/usr/bin/env bash
# The H200 calls that merged branch issue16-fusions (run 2026-12-03 12:52 and 12:58 UTC, back to back on one machine):
#   bash bench/gpu_calls/issue16_merge_next.sh check   # the fast-path tests (its 240 s cut them short: they ran again
#                                                      # alone, 27 passed), both models' triton points, a profile of
#                                                      # nemotron-h-8b's 16k prefill when time is left
#   bash bench/gpu_calls/issue16_merge_next.sh refit   # triton micro-benchmarks and the four triton held-out grids (250 s)
# then on the CPU: designer calibrate --hardware h200 --kernels triton --from bench/results/calibration_h200_micro_triton.json
# --write; the grids replace bench/results/measured/*_cuda_triton.json (the earlier ones, other kernels, moved to
# measured/superseded/) and python bench/measured_vs_predicted.py. The tests ran first and cached fla's autotune choices
# for small shapes (they no longer do): issue16_fresh_autotune.sh re-times nemotron's prefill with an empty cache.
source "$(dirname "$0")/setup.sh"
source "$(dirname "$0")/triton_refit.sh"
export TRITON_CACHE_AUTOTUNING=1
if [ "${1:-}" = check ]; then
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_export_fast_path.py > "$W/tests.log" 2>&1
  echo "tests rc=$? at $(el) s" >> "$W/calls.log"; pack
  timeout $(( 560 - $(el) )) python3 bench/gpu_fast_path.py --points --models llama-3.1-8b,nemotron-h-8b --kernels triton \
    --out "$W/gpu_fast_path_fusions_h200.json" > "$W/fast_path.log" 2>&1
  echo "fast path rc=$? at $(el) s" >> "$W/calls.log"; pack
  left=$(( 585 - $(el) ))
  [ "$left" -gt 45 ] && timeout "$left" python3 bench/gpu_fast_path.py --profile nemotron-h-8b:triton:16384 \
    --out "$W/profile.json" > "$W/profile.log" 2>&1
  echo "profile at $(el) s" >> "$W/calls.log"; pack
else
  triton_refit 570
fi
cat "$W/calls.log"; tail -n 4 "$W"/*.log
