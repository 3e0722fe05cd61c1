#!/usr/bin/env bash
# Planned H200 call (issue 12, written on the CPU, not yet run): why mamba2-2.7b's triton 4k prefill measured
# 99 ms in one run and 142 ms in two others (predicted 101 ms, launch-bound). The same TTFT grid three times on
# one machine: without the autotune cache, with TRITON_CACHE_AUTOTUNING=1 (cold, then warm). If the cache
# is the difference, the 4k point moves with it; if the host is, all three agree here.
#   bash bench/gpu_calls/issue12_autotune_ab.sh      then compare the ttft rows of the three files
source "$(dirname "$0")/setup.sh"
run() {  # name, then env assignments
  local name=$1; shift
  env "$@" timeout 120 python3 -m designer.cli measure mamba2-2.7b --device cuda --kernels triton \
    --prompts 4096,16384 --contexts 4096 --batches 1 --iters 5 --save "$W/mamba2_$name.json" > "$W/$name.log" 2>&1
  echo "$name rc=$? at $(el) s" >> "$W/calls.log"; pack
}
run plain TRITON_CACHE_AUTOTUNING=0
run cache_cold TRITON_CACHE_AUTOTUNING=1
run cache_warm TRITON_CACHE_AUTOTUNING=1
cat "$W/calls.log"; grep -h "ttft" $W/*.log
