"""Held-out validation of the calibrated analytic profiler (issue 12): whole-model points measured on the GPU
(`designer measure LAYOUT --device cuda --kernels K --save`, bench/results/measured/*.json) beside the
prediction before calibration (the profile's general `efficiency`) and after (its fitted `kernels: K` block).
The whole-model points were never used for fitting: `designer calibrate` fits single-block models only.

    python bench/measured_vs_predicted.py            # -> bench/results/measured_vs_predicted_h200.json

Predictions use the measured set-up: bf16 weights and caches, tp = pp = 1, one prefill pass per batch
(prefill_mode "parallel", as the exported model prefills), decode as a captured CUDA graph.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from designer.layout import atomic_write_text, layout_from_dict, load_layout  # noqa: E402
from designer.measure import MEASURED_DIR, error_summary, relative_error  # noqa: E402
from designer.profile.analytic import prepare  # noqa: E402
from designer.profile.hardware import load_hardware  # noqa: E402

OUT = ROOT / "bench" / "results" / "measured_vs_predicted_h200.json"
DECODE_STEPS = 3          # decode_steps of runs saved before the grid recorded it (timing.py's default then)
# the held-out grid: TTFT at batch 1, TPOT at batch 1/16/64 (other measured points are reported too)
HELD_OUT = {("ttft", 1), ("tpot", 1), ("tpot", 16), ("tpot", 64)}
# more runs of points of the grids above (other machines, other settings such as Triton's autotune cache): each
# run is a sample of the per-run figures, and every run of a point goes into that point's median
REPEATS = MEASURED_DIR / "repeats"


def summarise(errors: list[float]) -> dict[str, float | int | None]:
    s = error_summary(errors)
    return {"points": len(errors), **{k: None if v is None else round(v, 4) for k, v in s.items()}}


def compare(measured: dict, hardware: str) -> dict:
    hw = load_hardware(hardware)
    backend = measured["kernels"]
    uncalibrated = dataclasses.replace(hw, kernels={})
    # a measurement saved since the timing JSON carried its layout reads it from there (a designed layout
    # has no preset); older ones name a preset
    spec = measured.get("layout_spec")
    layout = layout_from_dict(spec, source=measured["layout"]) if spec else load_layout(measured["layout"])
    common = dict(precision="bf16", tp=1, pp=1, prefill_mode="parallel")
    before = prepare(layout, uncalibrated, **common)
    after = prepare(layout, hw, kernels=backend, **common)
    rows = []
    for p in measured["points"]:
        n = p.get("prompt", p.get("context"))
        pred = {}
        for name, roof in (("before", before), ("after", after)):
            pred[name] = roof.prefill_s(p["batch"], n) if p["metric"] == "ttft" else roof.tpot_s(p["batch"], n)
        row = {"metric": p["metric"], "batch": p["batch"], ("prompt" if p["metric"] == "ttft" else "context"): n,
               "measured_ms": round(1e3 * p["measured_s"], 3),
               "predicted_before_ms": round(1e3 * pred["before"], 3), "predicted_after_ms": round(1e3 * pred["after"], 3),
               "error_before": round(relative_error(pred["before"], p["measured_s"]), 4),
               "error_after": round(relative_error(pred["after"], p["measured_s"]), 4),
               "held_out_grid": (p["metric"], p["batch"]) in HELD_OUT}
        if "measured_peak_bytes" in p:
            # the peak predicted by today's profile for the point's set-up (as designer/measure/timing.py asks it:
            # prefill of the prompt; decode at context + steps), beside the one saved when it was measured
            if p["metric"] == "ttft":
                peak = after.memory(p["batch"], n + 1, prompt=n).total_bytes
            else:
                g = measured["grid"]
                steps = g["warmup"] + max(g["iters"], g.get("decode_steps", DECODE_STEPS))
                peak = after.memory(p["batch"], n + steps + 1, prompt=1).total_bytes
            row.update(measured_peak_gib=round(p["measured_peak_bytes"] / 2**30, 3),
                       predicted_peak_gib=round(peak / 2**30, 3),
                       predicted_peak_when_measured_gib=round(p["predicted_peak_bytes"] / 2**30, 3),
                       peak_error=round(relative_error(peak, p["measured_peak_bytes"]), 4))
        rows.append(row)
    grid = [r for r in rows if r["held_out_grid"]]
    return {"layout": layout.name, "kernels": backend, "gpu": measured["environment"].get("gpu"),
            "measured_on": measured["environment"].get("date"), "source": None, "points": rows,
            "skipped": measured.get("skipped", []),
            "summary": {"before": summarise([r["error_before"] for r in grid]),
                        "after": summarise([r["error_after"] for r in grid]),
                        "peak_memory_decode": summarise([r["peak_error"] for r in rows
                                                         if "peak_error" in r and r["metric"] == "tpot"]),
                        "peak_memory_prefill": summarise([r["peak_error"] for r in rows
                                                          if "peak_error" in r and r["metric"] == "ttft"])}}


def point_medians(models: list[dict]) -> dict:
    """Each held-out point once: its measured value the median over every run that measured it (a launch-bound
    point moves with the host: one machine's run is one sample), against the prediction; the same for peak
    memory. Summary, plus the points measured more than once with each run's value."""
    runs: dict[tuple, list[dict]] = {}
    for m in models:
        for r in m["points"]:
            if r["held_out_grid"]:   # the prediction is in the key: two layouts under one name stay apart
                key = (m["layout"], r["metric"], r["batch"], r.get("prompt", r.get("context")), r["predicted_after_ms"])
                runs.setdefault(key, []).append(r)
    errors, peak_errors, repeated = [], {"ttft": [], "tpot": []}, []
    for (layout, metric, batch, n, predicted_ms), rows in runs.items():
        measured_ms = statistics.median(r["measured_ms"] for r in rows)
        errors.append(relative_error(predicted_ms, measured_ms))
        peaks = [r["measured_peak_gib"] for r in rows if "measured_peak_gib" in r]
        if peaks:   # today's predicted peak is the same in every run of the point
            predicted_peak = next(r["predicted_peak_gib"] for r in rows if "predicted_peak_gib" in r)
            peak_errors[metric].append(relative_error(predicted_peak, statistics.median(peaks)))
        if len(rows) > 1:
            repeated.append({"layout": layout, "metric": metric, "batch": batch, "n": n,
                             "measured_ms": [r["measured_ms"] for r in rows], "median_ms": round(measured_ms, 3),
                             "predicted_after_ms": predicted_ms,
                             "error_after_of_median": round(errors[-1], 4),
                             "error_after_by_run": [r["error_after"] for r in rows],
                             **({"measured_peak_gib": peaks} if peaks else {})})
    return {**summarise(errors), "peak_memory_prefill": summarise(peak_errors["ttft"]),
            "peak_memory_decode": summarise(peak_errors["tpot"]), "repeated_points": repeated}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hardware", default="h200")
    ap.add_argument("-o", "--out", default=str(OUT))
    args = ap.parse_args(argv)
    hw = load_hardware(args.hardware)
    models = []
    for path in sorted(MEASURED_DIR.glob("*_cuda_*.json")) + sorted(REPEATS.glob("*_cuda_*.json")):
        doc = json.loads(path.read_text())
        doc = doc.get("timing", doc)
        m = compare(doc, args.hardware)
        m["source"] = str(path.relative_to(ROOT))
        m["repeat"] = path.parent == REPEATS
        models.append(m)
    by_backend: dict[str, dict] = {}
    for backend in sorted({m["kernels"] for m in models}):
        ms = [m for m in models if m["kernels"] == backend]
        pts = [r for m in ms for r in m["points"] if r["held_out_grid"]]
        by_backend[backend] = {
            "layouts": [m["layout"] for m in ms],
            "fitted_on": (hw.calibration.get(backend) or {}).get("layouts"),
            "before": summarise([r["error_before"] for r in pts]),
            "after": summarise([r["error_after"] for r in pts]),
            "after_by_metric": {k: summarise([r["error_after"] for r in pts if r["metric"] == k])
                                for k in ("ttft", "tpot")},
            "after_point_median": point_medians(ms)}
    result = {"command": "python bench/measured_vs_predicted.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "hardware": args.hardware, "calibration": hw.calibration,
              "note": "whole-model points are held out: `designer calibrate` fits single-block models only; "
                      "'before' = the profile's general efficiency (H100-derived), 'after' = its fitted kernels block",
              "summary": by_backend, "models": models}
    atomic_write_text(Path(args.out), json.dumps(result, indent=1) + "\n")
    for m in models:
        s = m["summary"]
        print(f"{m['layout']:>16} {m['kernels']:>6}: median |error| {s['before']['median_abs_error']:.1%} -> "
              f"{s['after']['median_abs_error']:.1%}, max {s['before']['max_abs_error']:.1%} -> "
              f"{s['after']['max_abs_error']:.1%}  (peak memory, decode: max {s['peak_memory_decode']['max_abs_error']})")
        for r in m["points"]:
            n = r.get("prompt", r.get("context"))
            print(f"    {r['metric']} b{r['batch']:<3} {n:>6}: measured {r['measured_ms']:>9.2f} ms  before "
                  f"{r['predicted_before_ms']:>9.2f} ({r['error_before']:+.0%})  after {r['predicted_after_ms']:>9.2f} "
                  f"({r['error_after']:+.0%})")
    for backend, s in by_backend.items():
        pm = s["after_point_median"]
        print(f"{backend}: held-out median |error| {s['before']['median_abs_error']:.1%} -> {s['after']['median_abs_error']:.1%}, "
              f"max {s['before']['max_abs_error']:.1%} -> {s['after']['max_abs_error']:.1%} over {s['after']['points']} "
              f"measurements; each point once (median over its runs): median {pm['median_abs_error']:.1%}, "
              f"max {pm['max_abs_error']:.1%} over {pm['points']} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
