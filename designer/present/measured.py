"""Saved timing runs (`designer measure LAYOUT --device cuda --kernels K --save`) as the app draws them: the
file for a layout and kernel backend, read and checked, and whether it can sit beside the curves of a set-up.

A file is bench/results/measured/LAYOUT_DEVICE_KERNELS.json, the timing JSON of designer/measure/timing.py:
{"layout", "device", "kernels", "hardware", "precision", "points": [{"metric": "ttft"|"tpot", "batch",
"prompt"|"context", "predicted_s", "measured_s", "error"}], ...}. Nothing here imports torch.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from designer.measure import MEASURED_DIR, measured_path

X_KEY = {"ttft": "prompt", "tpot": "context"}     # the length each metric is drawn over


class MeasuredFileError(ValueError):
    """A saved timing run that cannot be read; the message names the file and what is wrong."""


def load_measured(layout: str, kernels: str, *, device: str = "cuda", directory: Path | None = None) -> dict | None:
    """The saved run of `layout` with `kernels` (None when there is none), its points checked."""
    path = measured_path(layout, kernels, device=device, directory=directory or MEASURED_DIR)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MeasuredFileError(f"{path}: cannot read: {e}") from None
    if isinstance(doc, dict) and isinstance(doc.get("timing"), dict):     # the whole `--json` document
        doc = doc["timing"]
    return check_measured(doc, str(path))


def check_measured(doc: Any, source: str = "<dict>") -> dict:
    """`doc` if it is a timing run with well-formed points, else MeasuredFileError naming what is wrong."""
    if not isinstance(doc, dict) or not isinstance(doc.get("points"), list):
        raise MeasuredFileError(f"{source}: not a timing run (expected a mapping with a 'points' list)")
    for key in ("layout", "kernels", "hardware"):
        if not isinstance(doc.get(key), str):
            raise MeasuredFileError(f"{source}: '{key}' must be a string, got {doc.get(key)!r}")
    for i, p in enumerate(doc["points"]):
        metric = p.get("metric") if isinstance(p, dict) else None
        if metric not in X_KEY:
            raise MeasuredFileError(f"{source}: points[{i}].metric must be ttft or tpot, got {metric!r}")
        for key in ("batch", X_KEY[metric]):
            if isinstance(p.get(key), bool) or not isinstance(p.get(key), int) or p[key] < 1:
                raise MeasuredFileError(f"{source}: points[{i}].{key} must be an integer >= 1, got {p.get(key)!r}")
        for key in ("measured_s", "predicted_s"):
            v = p.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise MeasuredFileError(f"{source}: points[{i}].{key} must be seconds >= 0, got {v!r}")
    return doc


def mismatch(measured: dict, *, layout: str, hardware: str, precision: str, tp: int, pp: int) -> str | None:
    """Why the run cannot be drawn over the curves of this set-up (None: it can). A run is one GPU at its file's
    precision, predicted for its file's hardware profile."""
    checks = (("layout", measured["layout"] == layout), ("hardware", measured["hardware"] == hardware),
              ("precision", measured.get("precision", precision) == precision),
              ("parallelism", tp == 1 and pp == 1))
    differ = [name for name, same in checks if not same]
    if not differ:
        return None
    return (f"the measured run is {measured['layout']} on {measured['hardware']} ({measured.get('precision', '?')}, "
            f"one GPU, {measured['kernels']} kernels); this set-up differs in {', '.join(differ)}")


def points_at(measured: dict, metric: str, batch: int) -> list[dict]:
    """The run's points of `metric` (ttft | tpot) at `batch`, in order of their length."""
    key = X_KEY[metric]
    pts = [p for p in measured["points"] if p["metric"] == metric and p["batch"] == batch and p["measured_s"] > 0]
    return sorted(pts, key=lambda p: p[key])


def overlay(profile: dict, *, device: str = "cuda", directory: Path | None = None) -> tuple[dict | None, str | None]:
    """(the saved run to draw over the latency curves of `profile` (a `Profile.to_dict()`), or None; a line for
    the page saying what is drawn or why not, or None when there is no run for its layout and kernel backend)."""
    s, layout = profile["setup"], profile["layout"]
    path = measured_path(layout, s["kernels"], device=device, directory=directory or MEASURED_DIR)
    try:
        run = load_measured(layout, s["kernels"], device=device, directory=directory)
    except MeasuredFileError as e:
        return None, f"Measured points not drawn: {e}"
    if run is None:
        return None, None
    why = mismatch(run, layout=layout, hardware=profile["hardware"], precision=s["precision"], tp=s["tp"], pp=s["pp"])
    if why:
        return None, f"Measured points ({path.name}) not drawn: {why}."
    n = len(points_at(run, "ttft", s["batch"])) + len(points_at(run, "tpot", s["batch"]))
    if not n:
        batches = sorted({p["batch"] for p in run["points"]})
        return None, (f"Measured points ({path.name}) not drawn: none at batch {s['batch']}; the run has batch "
                      + ", ".join(map(str, batches)) + ".")
    return run, f"Markers: {n} points measured at batch {s['batch']} ({path.name})."
