#!/usr/bin/env bash
# H200 device call for issue 13 item 4: proxy training speed of the three text-task proxies (Transformer, pure
# Mamba-2, nemotron-h hybrid; ~7M parameters each, batch 64 x 512 bytes, bf16) on the default kernels the proxy
# jobs use on CUDA (fla-core's conv and norms, the compiled torch scan where fla's scan backward is refused),
# each role in its own process so one compile does not slow another. $OUT gets one tarball.
#   bash bench/gpu_calls/issue13_proxy_speed.sh
source "$(dirname "$0")/setup.sh"
for R in transformer mamba2 hybrid; do
  timeout 200 python3 bench/proxy_text.py --device cuda --seeds 1 --steps 150 --only $R --budget-s 170 \
    --out "$W/proxy_text_speed_$R.json" > "$W/proxy_speed_$R.log" 2>&1
  echo "proxy speed $R rc=$? at $(el) s" >> "$W/calls.log"; pack
done
cat "$W/calls.log"; tail -n 4 "$W"/proxy_speed_*.log
