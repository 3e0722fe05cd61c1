#!/usr/bin/env bash
# One H200 call (issue 13): (1) MQAR training speed with batches drawn by CPU threads vs on the GPU
# (--data-device cpu|auto), 300 steps of width-128 attention and Mamba-2 alone on the GPU; (2) the 8,000-step
# MQAR grid in side-by-side lanes (see mqar_grid.sh) with the time left. One tarball comes back.
# As run on 2026-12-02 (session 14). --data-device was removed afterwards: batches drawn on the GPU took ~880 kernel
# launches each in the training thread, so training was slower (831k vs 1.60M tokens/s); see bench/results/mqar_batch_speed_h200.json.
# The lanes here were all cut by their timeout: five 8,000-step runs side by side did not finish in 370 s.
source "$(dirname "$0")/setup.sh"
Z="python3 bench/proxy_zoology.py --device cuda --widths 128 --state-sizes 16 --steps 300"
for dd in cpu auto; do
  timeout 100 $Z --only attention,mamba2 --data-device $dd --out "$W/speed_$dd.json" > "$W/speed_$dd.log" 2>&1
  echo "speed $dd rc=$? at $(el) s" >> "$W/calls.log"
done
grep -h accuracy $W/speed_*.log; python3 - "$W" <<'PY'
import json, sys, glob
for f in sorted(glob.glob(sys.argv[1] + "/speed_*.json")):
    for r in json.load(open(f))["runs"]:
        print(f.rsplit("/", 1)[1], r["family"], r["data"], round(r["tokens_per_s"]))
PY
pack
B=$(( ${TOTAL:-570} - $(el) ))
for lane in "$@"; do
  name=${lane%%:*}; args=${lane#*:}
  ( timeout $(( B - 5 )) python3 bench/proxy_zoology.py --device cuda --append --steps 8000 --budget-s $(( B - 120 )) $args \
      --out "$W/zoo_$name.json" > "$W/zoo_$name.log" 2>&1; echo "lane $name rc=$? at $(el) s" >> "$W/calls.log" ) &
done
wait; pack
cat "$W/calls.log"; grep -h "accuracy" $W/zoo_*.log
