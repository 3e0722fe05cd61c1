#!/usr/bin/env bash
# Issue 13's GPU half in one 10-minute device call (one H200), plus issue 16's unverified GPU checks:
#   1. the CUDA-only fast-path tests (prefill, graph decode, backward) -> gpu_tests.log
#   2. proxy training speed, torch vs triton kernels, on the real-text proxies (100 steps each, alone on the GPU)
#   3. Zoology's MQAR grid (bench/proxy_zoology.py) split over 8 processes by family / state size / width, and
#      the real-text ranking (bench/proxy_text.py, 3 seeds), all 8 at once: 2-layer proxies leave an H200 mostly
#      idle, so they share it (9 processes) (tokens/s of these runs are therefore not speed figures; step 2 is).
# Usage (device call):  SPEED=0 MODEL_KERNELS=torch OUT=... bash bench/gpu_proxy_session.sh [BUDGET_S]
#       CPU check of the plumbing:                       DEVICE=cpu TINY=1 OUT=/tmp/x bash bench/gpu_proxy_session.sh 20
set -u
BUDGET=${1:-430}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:?set OUT}
W=$(mktemp -d)
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
TINYARG=""; ZSET="--steps 2000 --lrs 1e-3,3e-3 --min-kv-pairs 4"; SPEEDSTEPS=100
if [ "${TINY:-0}" = 1 ]; then TINYARG="--tiny"; ZSET="--steps 20"; SPEEDSTEPS=10; fi

if [ "$DEVICE" = cuda ] && [ "${SPEED:-1}" = 1 ]; then
  $PY -m pytest -q -p no:cacheprovider tests/test_export_fast_path.py tests/test_export_kernels.py -x \
    >"$OUT/gpu_tests.log" 2>&1; echo "gpu tests rc=$?"; tail -3 "$OUT/gpu_tests.log"
fi

for k in torch triton; do
  [ "${SPEED:-1}" = 1 ] || break
  MODEL_KERNELS=$k $PY bench/proxy_text.py --device "$DEVICE" $TINYARG --seeds 1 --steps $SPEEDSTEPS \
    --out "$W/speed_$k.json" --budget-s 120 | sed "s/^/[speed $k] /"
done

cat >"$W/merge.py" <<'EOF'
import glob, json, os, sys
w, out, budget = sys.argv[1:]
parts = sorted(glob.glob(os.path.join(w, "z_*.json")))
merged = None
for p in parts:
    d = json.load(open(p))
    if merged is None:
        merged = {**d, "runs": [], "skipped": [], "parts": []}
    merged["runs"] += d["runs"]; merged["skipped"] += d.get("skipped", [])
    merged["parts"].append({"command": d["command"], "elapsed_s": d.get("elapsed_s"), "runs": len(d["runs"])})
if merged:
    merged["command"] = f"bash bench/gpu_proxy_session.sh {budget}  # 8 concurrent bench/proxy_zoology.py parts"
    json.dump(merged, open(os.path.join(out, "proxy_zoology.json"), "w"), indent=1)
if os.path.exists(os.path.join(w, "text.json")):
    t = json.load(open(os.path.join(w, "text.json")))
    t["command"] += f"  # via bash bench/gpu_proxy_session.sh {budget}, beside the 8 MQAR parts"
    json.dump(t, open(os.path.join(out, "proxy_text.json"), "w"), indent=1)
speed = {}
for k in ("torch", "triton"):
    p = os.path.join(w, f"speed_{k}.json")
    if os.path.exists(p):
        d = json.load(open(p))
        speed[k] = {c["role"]: {"tokens_per_s": c["tokens_per_s"], "kernels": c.get("kernels"), "params": c["params"]}
                    for c in d["candidates"]}
        speed["settings"], speed["gpu"], speed["torch_version"] = d["settings"], d["gpu"], d["torch"]
speed["command"] = "MODEL_KERNELS={torch,triton} python3 bench/proxy_text.py --seeds 1 --steps 100 (alone on the GPU)"
json.dump(speed, open(os.path.join(out, "proxy_speed.json"), "w"), indent=1)
print(json.dumps({k: v for k, v in speed.items() if k in ("torch", "triton")}, indent=1))
if merged:
    for r in merged["runs"]:
        print(r["family"], r["width"], r["state_size"], r["lr"], round(r["accuracy"], 3), r.get("kernels"))
    print("skipped:", len(merged["skipped"]))
EOF
z() {  # name, then proxy_zoology.py arguments
  local name=$1; shift
  $PY bench/proxy_zoology.py --device "$DEVICE" $TINYARG $ZSET --budget-s "$BUDGET" --out "$W/z_$name.json" "$@" \
    >"$W/z_$name.log" 2>&1 &
}
# the training runs take KERNELS from the environment: on the H200 with Triton 3.6, fla-core 0.6.0 refuses the
# gated SSD backward on Hopper (wrong results below Triton 3.7.1, fla issue #640), so MODEL_KERNELS=torch there
z attention --only attention
z hybrid_a --only hybrid --state-sizes 16 --widths 64,128
z hybrid_b --only hybrid --state-sizes 16 --widths 256,512
z mamba16_a --only mamba2 --state-sizes 16 --widths 64,128
z mamba16_b --only mamba2 --state-sizes 16 --widths 256
z mamba16_c --only mamba2 --state-sizes 16 --widths 512
z mamba64_a --only mamba2 --state-sizes 64 --widths 64,128
z mamba64_b --only mamba2 --state-sizes 64 --widths 256
$PY bench/proxy_text.py --device "$DEVICE" $TINYARG --seeds 3 --budget-s "$BUDGET" --out "$W/text.json" \
  >"$W/text.log" 2>&1 &
# a device call killed at its limit returns only what is under $OUT: merge the parts there every 20 s
(while sleep 20; do $PY "$W/merge.py" "$W" "$OUT" "$BUDGET" >/dev/null 2>&1;
   for f in "$W"/*.log; do sed "s|^|[$(basename "$f" .log)] |" "$f"; done >"$OUT/proxy_runs.log"; done) &
MERGER=$!
wait $(jobs -p | grep -v "^$MERGER$")
kill $MERGER 2>/dev/null
for f in "$W"/*.log; do sed "s|^|[$(basename "$f" .log)] |" "$f"; done >"$OUT/proxy_runs.log"
grep -v "^\[.*\] *$" "$OUT/proxy_runs.log" | tail -60
$PY "$W/merge.py" "$W" "$OUT" "$BUDGET"
