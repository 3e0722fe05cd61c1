#!/usr/bin/env bash
# One H200 device call: nemotron-h-8b's triton held-out grid (issue 12; fla-core autotunes on first use, so the
# first triton measure of a fresh machine needs minutes) and proxy training speed, torch scan eager vs compiled
# (MODEL_COMPILE_SCAN, issue 13 item 4). $OUT gets one tarball.
source "$(dirname "$0")/setup.sh"
timeout 230 python3 -m designer.cli measure nemotron-h-8b --device cuda --kernels triton --prompts 4096,16384,65536 \
  --contexts 4096,16384,65536 --batches 1,16,64 --iters 2 --save "$W/nemotron-h-8b_cuda_triton.json" > "$W/measure.log" 2>&1
echo "measure rc=$? at $(el) s" >> "$W/calls.log"; pack
for C in 0 1; do
  MODEL_KERNELS=torch MODEL_COMPILE_SCAN=$C timeout 75 python3 bench/proxy_text.py --device cuda --seeds 1 --steps 60 \
    --only hybrid,mamba2 --budget-s 60 --out "$W/proxy_text_speed_compile$C.json" > "$W/proxy_speed_$C.log" 2>&1
  echo "proxy speed compile=$C rc=$? at $(el) s" >> "$W/calls.log"; pack
done
cat "$W/calls.log"; tail -3 "$W"/proxy_speed_*.log
