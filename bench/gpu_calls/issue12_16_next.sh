#!/usr/bin/env bash
# Planned H200 call for the next session (issues 12 and 16; written on the CPU, not yet run):
# 1. the alignment question: the torch static-cache attention at caches of context + 16 / 42 / 48 positions;
# 2. the torch micro-benchmarks again (decode caches now aligned, attention layers share their tables) and the
#    torch held-out grid of llama-3.1-8b, whose TPOT the calibration over-predicted by 20-49%;
# 3. the issue-16 decode points of both models on triton after the shared RoPE tables (tpot_b1_c4096 etc.).
#   bash bench/gpu_calls/issue12_16_next.sh        then on the CPU: refit and python bench/measured_vs_predicted.py
source "$(dirname "$0")/setup.sh"
timeout 90 python3 bench/attention_alignment.py --device cuda --out "$W/attention_alignment_h200.json" > "$W/alignment.log" 2>&1
echo "alignment rc=$? at $(el) s" >> "$W/calls.log"; pack
timeout 120 python3 -m designer.cli calibrate --hardware h200 --kernels torch --layouts nemotron-h-8b,llama-3.1-8b \
  --device cuda --budget-s 90 --out "$W/calibration_h200_micro_torch.json" > "$W/calibrate.log" 2>&1
echo "calibrate rc=$? at $(el) s" >> "$W/calls.log"; pack
timeout 150 python3 -m designer.cli measure llama-3.1-8b --device cuda --kernels torch --prompts 4096,16384,65536 \
  --contexts 4096,16384,65536 --batches 1,16,64 --iters 2 --save "$W/llama-3.1-8b_cuda_torch.json" > "$W/measure.log" 2>&1
echo "measure rc=$? at $(el) s" >> "$W/calls.log"; pack
timeout $(( 560 - $(el) )) python3 bench/gpu_fast_path.py --points --point-names tpot_b1_c4096,tpot_b64_c4096 \
  --kernels torch,triton --out "$W/gpu_fast_path_decode_h200.json" > "$W/fast_path.log" 2>&1
echo "fast path rc=$? at $(el) s" >> "$W/calls.log"; pack
cat "$W/calls.log"; cat "$W/alignment.log"; tail -n 15 "$W/fast_path.log"
