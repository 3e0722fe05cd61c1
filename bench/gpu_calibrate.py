"""Measure the achieved fractions of a GPU's datasheet peaks that the analytic profiler's `efficiency`
block uses (designer.measure.gpu: large bf16/fp8 GEMMs, skinny decode GEMMs, device-to-device copy, flash
attention prefill, decode attention over a long KV cache, one small kernel launch) and write them as JSON.

Needs torch (+ CUDA). Run on the device machine:
    python bench/gpu_calibrate.py --out $OUT/gpu_calibration.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from designer.measure.gpu import calibrate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="gpu_calibration.json")
    p.add_argument("--peak-bf16-tflops", type=float, default=989.0)
    p.add_argument("--peak-fp8-tflops", type=float, default=1979.0)
    p.add_argument("--peak-hbm-tb-per-s", type=float, default=3.35)
    args = p.parse_args()
    res = calibrate(args.peak_bf16_tflops, args.peak_fp8_tflops, args.peak_hbm_tb_per_s)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res["efficiency"], indent=2))


if __name__ == "__main__":
    main()
