#!/usr/bin/env bash
# Prepared for the next H200 session (not run yet): issue 16's two 64k prefill points, which sat on their targets
# (nemotron-h-8b 1889 then 1913 ms against 1900; llama-3.1-8b 3473 then 3509 ms against 3500), each the median of
# two timed prefills. Here seven timed prefills a point, in an empty Triton cache with nothing run before, then a
# kernel profile of each 64k prefill:
#   bash bench/gpu_calls/issue16_next.sh            # about 200 s warm
# then, for the triton calibration (its decode attention predates decode_attention_settings):
#   bash bench/gpu_calls/issue16_merge_next.sh refit
source "$(dirname "$0")/setup.sh"
export TRITON_CACHE_DIR=/tmp/triton_fresh_$(date +%s)
timeout 240 python3 bench/gpu_fast_path.py --points --kernels triton --point-names ttft_4096,ttft_65536 --long-repeats 7 \
  --out "$W/gpu_fast_path_long_h200.json" > "$W/fast_path.log" 2>&1
echo "fast path rc=$? at $(el) s" >> "$W/calls.log"; pack
timeout $(( 560 - $(el) )) python3 bench/gpu_fast_path.py \
  --profile nemotron-h-8b:triton:65536,llama-3.1-8b:triton:65536 --out "$W/profile.json" > "$W/profile.log" 2>&1
echo "profile rc=$? at $(el) s" >> "$W/calls.log"; pack
cat "$W/calls.log"; grep ms "$W/fast_path.log"; grep -A 14 "^profile" "$W/profile.log" | cut -c1-72,150-200
