"""bench/measured_vs_predicted.py's per-point summary: each held-out point once, at the median of its runs."""
from __future__ import annotations


def row(measured_ms, predicted_ms=101.0, metric="ttft", batch=1, n=4096, held_out=True, peak_gib=None):
    r = {"metric": metric, "batch": batch, ("prompt" if metric == "ttft" else "context"): n,
         "measured_ms": measured_ms, "predicted_after_ms": predicted_ms,
         "error_after": round((predicted_ms - measured_ms) / measured_ms, 4), "held_out_grid": held_out}
    return r if peak_gib is None else {**r, "measured_peak_gib": peak_gib, "predicted_peak_gib": 5.8}


def test_each_point_counts_once_at_the_median_of_its_runs(bench_script):
    mvp = bench_script("measured_vs_predicted")
    runs = [{"layout": "m", "points": [row(142.0, peak_gib=5.726), row(3.0, 3.2, metric="tpot")]},
            {"layout": "m", "points": [row(99.0, peak_gib=5.975), row(117.0, held_out=False)]},   # off the grid
            {"layout": "m", "points": [row(102.5, peak_gib=5.726)]},
            {"layout": "m", "points": [row(50.0, predicted_ms=60.0)]}]             # another model under one name
    s = mvp.point_medians(runs)
    # 4k TTFT: median of 142, 99, 102.5 = 102.5 -> (101 - 102.5) / 102.5; TPOT once: +6.7%; the 60 ms model: +20%
    assert s["points"] == 3
    assert abs(s["max_abs_error"] - 0.2) < 1e-9
    assert abs(s["median_abs_error"] - 0.2 / 3) < 1e-4
    # one prefill peak point: the median of 5.726, 5.975, 5.726 against 5.8 (the 5.975 run alone would be 2.9%)
    assert s["peak_memory_prefill"]["points"] == 1
    assert abs(s["peak_memory_prefill"]["max_abs_error"] - round((5.8 - 5.726) / 5.726, 4)) < 1e-4
    assert s["peak_memory_decode"]["points"] == 0
    [repeated] = s["repeated_points"]
    assert repeated["measured_ms"] == [142.0, 99.0, 102.5] and repeated["median_ms"] == 102.5
    assert repeated["error_after_of_median"] == round((101.0 - 102.5) / 102.5, 4)
    assert repeated["error_after_by_run"] == [row(142.0)["error_after"], row(99.0)["error_after"],
                                              row(102.5)["error_after"]]
