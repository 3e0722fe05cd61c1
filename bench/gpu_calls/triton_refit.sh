# Sourced by issue16_merge_next.sh and issue16_tests_refit.sh (after setup.sh): `triton_refit END` runs the triton
# micro-benchmarks of both fitted models, then the four triton held-out grids while the call is under END seconds.
triton_refit() {
  local end=$1 L n left
  timeout 230 python3 -m designer.cli calibrate --hardware h200 --kernels triton --layouts nemotron-h-8b,llama-3.1-8b \
    --device cuda --budget-s 150 --out "$W/calibration_h200_micro_triton.json" > "$W/calibrate.log" 2>&1
  echo "calibrate rc=$? at $(el) s" >> "$W/calls.log"; pack
  for L in llama-3.1-8b nemotron-h-8b bench/heldout/hybrid-3b-heldout.yaml mamba2-2.7b; do
    left=$(( end - $(el) )); [ "$left" -lt 40 ] && { echo "skip $L: $left s left" >> "$W/calls.log"; continue; }
    n=$(basename "$L" .yaml)
    timeout "$left" python3 -m designer.cli measure "$L" --device cuda --kernels triton --prompts 4096,16384,65536 \
      --contexts 4096,16384,65536 --batches 1,16,64 --iters 2 --save "$W/${n}_cuda_triton.json" > "$W/measure_$n.log" 2>&1
    echo "measure $n rc=$? at $(el) s" >> "$W/calls.log"; pack
  done
}
