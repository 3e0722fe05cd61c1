#!/usr/bin/env bash
# H200 device call(s) for issue 13's must-show 1: Zoology's MQAR grid (bench/proxy_zoology.py defaults: vocab 8192,
# 512 tokens, 64 pairs, lr 1e-3, 8,000 steps, separate output head, curriculum from 4 pairs at 16 tokens a pair), split over LANES that run
# side by side as separate processes (each 2-layer model leaves the GPU mostly idle between kernel launches).
# Each lane is "name:args" and writes $W/zoo_<name>.json; every lane resumes (--append) from
# bench/results/proxy_zoology_parts/zoo_<name>.json when that exists. Merge on the CPU afterwards:
#   python bench/proxy_zoology.py --merge bench/results/proxy_zoology_parts/zoo_*.json -o bench/results/proxy_zoology.json
# usage: bash bench/gpu_calls/mqar_grid.sh BUDGET_S "a:--only attention --widths 64,128,256" "b:..." ...
source "$(dirname "$0")/setup.sh"
budget=$1; shift
# one OpenMP thread per batch-drawing thread: each lane's 4 workers would otherwise start a team of nproc threads
# each, and 4 lanes oversubscribe 16 cores many times over
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for lane in "$@"; do
  name=${lane%%:*}; args=${lane#*:}
  [ -f "bench/results/proxy_zoology_parts/zoo_$name.json" ] && cp "bench/results/proxy_zoology_parts/zoo_$name.json" "$W/"
  ( timeout $(( budget + ${SLACK:-150} )) python3 bench/proxy_zoology.py --device cuda --append --budget-s "$budget" $args \
      --out "$W/zoo_$name.json" > "$W/zoo_$name.log" 2>&1; echo "lane $name rc=$? at $(el) s" >> "$W/calls.log" ) &
done
wait; pack
cat "$W/calls.log"; grep -h "accuracy" $W/zoo_*.log; tail -n 3 $W/zoo_*.log
