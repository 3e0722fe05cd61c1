"""Measurements on real hardware: proxy-training runs (`proxy`: proxy layouts and job files; `runs`: train
the jobs in-process or under torchrun and rank them) and GPU benchmarking. Measuring imports torch; the
analytic profiler (designer.profile) never does. This file holds the torch-free pieces every measurement
and its readers share: the relative error, its summary, and where saved timing runs live.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from designer.layout import REPO_ROOT

MEASURED_DIR = REPO_ROOT / "bench" / "results" / "measured"


def relative_error(predicted: float, measured: float) -> float | None:
    """(predicted - measured) / measured; None when nothing was measured (strict JSON: no Infinity)."""
    return None if measured <= 0 else (predicted - measured) / measured


def error_summary(errors: "list[float | None]") -> dict[str, float | None]:
    """{"median_abs_error", "max_abs_error"} of relative errors (None entries left out; None when none)."""
    a = [abs(e) for e in errors if e is not None]
    return {"median_abs_error": statistics.median(a) if a else None, "max_abs_error": max(a) if a else None}


def measured_path(layout: str, kernels: str, *, device: str = "cuda", directory: Path | None = None) -> Path:
    """Where `designer measure LAYOUT --device DEVICE --kernels KERNELS --save` writes its timing run (and
    where the app's Profile page looks for it)."""
    return Path(directory or MEASURED_DIR) / f"{layout}_{device}_{kernels}.json"
