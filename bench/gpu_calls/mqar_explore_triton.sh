#!/usr/bin/env bash
# One H200 device call: (1) which MQAR set-up gets a 2-layer Transformer past the ln(V/2) plateau within 2,000
# steps (issue 13); (2) nemotron-h-8b's triton held-out grid; (3) the triton micro-benchmarks with what time is
# left (fla-core autotunes each new shape: 80 s covered 13 of 98 points). $OUT gets one tarball (8 files at most).
# As run on 2026-12-02; bench/proxy_zoology.py's defaults changed afterwards (now lr 1e-3, 8000 steps, --min-kv-pairs 4
# --tokens-per-pair 16, a separate output head), so a rerun needs those flags spelt out to repeat it.
source "$(dirname "$0")/setup.sh"
Z="python3 bench/proxy_zoology.py --device cuda --steps 2000 --pairs 64 --seq-len 512 --budget-s 1000"
run() { tag=$1; shift; MODEL_KERNELS=torch timeout ${T:-90} $Z "$@" --out "$W/mqar_$tag.json" > "$W/mqar_$tag.log" 2>&1
        echo "mqar $tag rc=$? at $(el) s" >> "$W/calls.log"; pack; }
run a_lr1e-2 --only attention --widths 128 --lrs 1e-2 --min-kv-pairs 4
run b_tpp16 --only attention --widths 128 --lrs 3e-3 --min-kv-pairs 4 --tokens-per-pair 16
run c_tpp16_lr1e-2 --only attention --widths 128 --lrs 1e-2 --min-kv-pairs 4 --tokens-per-pair 16
T=130 run d_mamba_tpp16 --only mamba2 --widths 128 --state-sizes 64 --lrs 3e-3 --min-kv-pairs 4 --tokens-per-pair 16
timeout 90 python3 -m designer.cli measure nemotron-h-8b --device cuda --kernels triton --prompts 4096,16384,65536 \
  --contexts 4096,16384,65536 --batches 1,16,64 --iters 2 --save "$W/nemotron-h-8b_cuda_triton.json" > "$W/measure.log" 2>&1
echo "measure rc=$? at $(el) s" >> "$W/calls.log"; pack
B=$(( 540 - $(el) - 25 ))
[ $B -gt 30 ] && timeout $(( B + 20 )) python3 -m designer.cli calibrate --hardware h200 --kernels triton --layouts nemotron-h-8b,llama-3.1-8b \
  --device cuda --budget-s $B --out "$W/calibration_h200_micro_triton.json" > "$W/calibrate.log" 2>&1
echo "calibrate rc=$? budget $B at $(el) s" >> "$W/calls.log"; pack
cat "$W/calls.log"; grep -h "accuracy" $W/mqar_*.log
