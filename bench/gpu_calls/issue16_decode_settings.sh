#!/usr/bin/env bash
# H200 call for issue 16: the decode attention kernel's launch settings. The first sweep (issue16_decode.sh) timed
# single eager calls, which adds each launch's CPU time; this one times ten calls inside a CUDA graph, as decode
# runs them. Then llama-3.1-8b's and nemotron-h-8b's graph TPOT (batch 1 and 64 @4k) under candidate settings,
# each in a fresh process and an empty Triton cache:
#   bash bench/gpu_calls/issue16_decode_settings.sh
source "$(dirname "$0")/setup.sh"
export TRITON_CACHE_DIR=/tmp/triton_fresh_$(date +%s)
timeout 150 python3 bench/decode_attention_sweep.py --out "$W/decode_attention_sweep_h200.json" > "$W/sweep.log" 2>&1
echo "sweep rc=$? at $(el) s" >> "$W/calls.log"; pack
for S in default block_t=64,programs=264,num_warps=4,num_stages=4 block_t=64,programs=264,num_warps=4,num_stages=3 \
         block_t=128,programs=264,num_warps=4,num_stages=2 block_t=32,programs=528,num_warps=4,num_stages=4; do
  left=$(( 560 - $(el) )); [ "$left" -lt 60 ] && { echo "skip $S: $left s left" >> "$W/calls.log"; continue; }
  arg=""; [ "$S" != default ] && arg="--decode-attention $S"
  timeout "$left" python3 bench/gpu_fast_path.py --points --kernels triton --point-names tpot_b1_c4096,tpot_b64_c4096 \
    $arg --out "$W/tpot_${S//[=,]/_}.json" > "$W/tpot_${S//[=,]/_}.log" 2>&1
  echo "tpot $S rc=$? at $(el) s" >> "$W/calls.log"; pack
done
cat "$W/calls.log"; cat "$W/sweep.log"; for f in "$W"/tpot_*.log; do echo "$f"; grep -v eager "$f" | grep ms; done
