#!/usr/bin/env bash
# Set up designer in .venv at the project root (idempotent: a second run with nothing changed is quick).
#   scripts/setup.sh          runtime: the CLI and the app
#   scripts/setup.sh --dev    also test tools (pytest, hypothesis, transformers, playwright + Debian chromium;
#                             with a CPU torch, triton for its interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=runtime
[ "${1:-}" = "--dev" ] && mode=dev

PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for c in python3.11 python3.12 python3; do command -v "$c" >/dev/null 2>&1 && { PY=$c; break; }; done
fi
[ -n "$PY" ] || { echo "setup: no python3 found (need Python >= 3.11)" >&2; exit 2; }

[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
stamp=.venv/.setup-stamp-$mode
want=$(cat pyproject.toml requirements*.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/designer ]; then
  :
else
  # torch first: the local CPU wheel where there is one (an unpinned torch would pull a multi-GB CUDA build)
  if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    "$VPY" -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
    "$VPY" -c "import torch" || { echo "setup: could not install torch" >&2; exit 2; }
  fi
  extra=""
  [ "$mode" = dev ] && extra="[dev]"
  "$VPY" -m pip install -q -e ".$extra" 2>&1 | grep -v "^WARNING: Location" || true
  if [ "$mode" = dev ] && "$VPY" -c "import sys, torch; v = torch.version
sys.exit(any(getattr(v, n, None) for n in ('cuda', 'hip', 'xpu')))"; then
    # a CPU torch: Triton's interpreter runs the exported model's own kernels in the tests (3.9 works with NumPy
    # 2.4); a CUDA, ROCm or XPU torch brings its own pinned triton and runs them on the device instead
    "$VPY" -m pip install -q "triton>=3.9" 2>&1 | grep -v "^WARNING: Location" || true
  fi
  "$VPY" -c "import designer, yaml, networkx, streamlit, plotly" || { echo "setup: install failed" >&2; exit 2; }
  echo "$want" > "$stamp"
fi

if [ "$mode" = dev ] && ! command -v chromium >/dev/null 2>&1; then
  # browser tests drive Debian's chromium through playwright (never `playwright install`)
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
      || echo "setup: could not install chromium; browser tests will be skipped" >&2
  else
    echo "setup: chromium not found and cannot apt-get it; browser tests will be skipped" >&2
  fi
fi
exit 0
