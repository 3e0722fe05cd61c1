"""Search benchmarks and the "why the 47B exists" reproduction.

    .venv/bin/python bench/bench_search.py            # both
    .venv/bin/python bench/bench_search.py --speed    # bench/results/search_speed.json only

1. Speed (bench/results/search_speed.json): candidates scored per second by the vectorised scorer on the
   Nemotron-H-56B default space (1M random candidates, median of 5), the whole enumerated search of that space
   (every candidate, 352,800), and the two evolutionary paths (pymoo NSGA-II, Optuna NSGA-II); target >= 10,000
   candidates/s on the 2-core dev machine.
2. The 56B -> 47B story (bench/results/search_56b_47b.json and bench/results/search_56b_47b/): the fit of the
   released 56B and 47B under a grid of memory assumptions (the profiler's numbers), then
   `designer search --base nemotron-h-56b ...` under the assumptions where the 56B does not fit and the 47B
   does, its JSON (with the command), the HTML report and the top YAMLs; plus the predicted 47B-vs-56B
   speed-up in the paper's own throughput scenario (8 H100, TP 8, 65,536 in / 1,024 out, max batch).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
GIB = 2 ** 30
BUDGET = 31.7 * GIB

from designer.layout import load_layout  # noqa: E402
from designer.search import search  # noqa: E402
from designer.search.assumptions import Assumptions, evaluate  # noqa: E402
from designer.search.space import default_space  # noqa: E402
from designer.search.vector import VectorScorer  # noqa: E402

STORY = dict(hardware="rtx-5090", precision="fp4", kv_dtype="fp4", embeddings="quantized", context=1 << 20,
             prefill_chunk=2048)
STORY_CMD = ["search", "--base", "nemotron-h-56b", "--hardware", "rtx-5090", "--precision", "fp4", "--kv-dtype",
             "fp4", "--embeddings", "quantized", "--context", "1048576", "--prefill-chunk", "2048",
             "--max-memory", "31.7GiB", "--strict", "--objective", "throughput,params", "--reference",
             "nemotron-h-47b", "--top", "20", "-o", "bench/results/search_56b_47b",
             "--html", "bench/results/search_56b_47b/report.html", "--json"]


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for pkg in ("numpy", "optuna", "pulp", "plotly", "designer"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"platform": platform.platform(), "cpu": cpu, "cpus": os.cpu_count(),
            "python": platform.python_version(), "versions": versions,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def speed() -> dict:
    base = load_layout("nemotron-h-56b")
    space = default_space(base)
    a = Assumptions(**STORY)
    t = time.perf_counter()
    scorer = VectorScorer(space.variants(), a)
    prep_s = time.perf_counter() - t
    rng = np.random.default_rng(0)
    n = 1_000_000
    counts = np.stack([rng.integers(r.start, r.stop, n) if len(r) else np.zeros(n, int)
                       for r in space.count_ranges()], axis=1)
    variant = rng.integers(0, space.num_variants, n)
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        scorer.score(counts, variant)
        rates.append(n / (time.perf_counter() - t))
    r_enum = search(base, max_memory="31.7GiB", strict=True, top=20, **STORY)
    r_nsga = search(base, max_memory="31.7GiB", strict=True, top=5,
                    space={"method": "nsga2", "trials": 20000, "population": 200}, **STORY)
    r_optuna = search(base, max_memory="31.7GiB", strict=True, top=5,
                      space={"method": "optuna", "trials": 2000, "population": 200}, **STORY)
    return {
        "what": "candidates per second: vectorised scorer (numpy) of the analytic profiler's numbers, "
                "Nemotron-H-56B default space (45 width variants x layer counts), RTX 5090 / NVFP4 / 1M context",
        "command": ".venv/bin/python bench/bench_search.py --speed",
        "machine": machine(),
        "target_candidates_per_s": 10_000,
        "scorer": {"candidates": n, "repeats": len(rates), "median_candidates_per_s": statistics.median(rates),
                   "min_candidates_per_s": min(rates), "prepare_s": prep_s,
                   "note": "score() alone: params, memory, TTFT, TPOT, throughput for every candidate"},
        "enumerate": {"evaluated": r_enum.evaluated, "feasible": r_enum.feasible,
                      "candidates_per_s": r_enum.candidates_per_s, "search_seconds": r_enum.search_seconds,
                      "total_seconds": r_enum.seconds, "front_size": r_enum.front_size,
                      "note": "generation + scoring + rule/budget filtering of the whole space; total_seconds adds "
                              "the Pareto front, 20 integer programs, rule checks and profile() re-checks"},
        "nsga2": {"evaluated": r_nsga.evaluated, "candidates_per_s": r_nsga.candidates_per_s,
                  "search_seconds": r_nsga.search_seconds, "front_size": r_nsga.front_size,
                  "front_size_exhaustive": r_enum.front_size,
                  "note": "pymoo NSGA-II, population 200, one vectorised score per generation: pymoo's selection "
                          "and duplicate elimination, not the scoring, set this rate"},
        "optuna": {"evaluated": r_optuna.evaluated, "candidates_per_s": r_optuna.candidates_per_s,
                   "search_seconds": r_optuna.search_seconds, "front_size": r_optuna.front_size,
                   "note": "Optuna NSGA-II ask/tell (method: optuna): per-trial bookkeeping limits it"},
        "pass": statistics.median(rates) >= 10_000 and r_enum.candidates_per_s >= 10_000,
    }


FIT_GRID = [
    ("profiler defaults at fp4: NVFP4 GEMM weights, bf16 embedding/head, bf16 KV, chunk 8192",
     dict(kv_dtype=None, embeddings="bf16", prefill_chunk=8192)),
    ("+ fp8 KV cache", dict(kv_dtype="fp8", embeddings="bf16", prefill_chunk=8192)),
    ("+ NVFP4 KV cache", dict(kv_dtype="fp4", embeddings="bf16", prefill_chunk=8192)),
    ("+ NVFP4 embedding and LM head", dict(kv_dtype="fp4", embeddings="quantized", prefill_chunk=8192)),
    ("+ prefill chunk 2048 (the search's assumptions)", dict(kv_dtype="fp4", embeddings="quantized",
                                                               prefill_chunk=2048)),
    ("same, sequential prefill (no chunk workspace)", dict(kv_dtype="fp4", embeddings="quantized",
                                                           prefill_mode="sequential")),
    ("same as the search, + 0.5 GiB CUDA context inside the budget", dict(kv_dtype="fp4", embeddings="quantized",
                                                                         prefill_chunk=2048, reserve_bytes=0.5 * GIB)),
    ("same as the search, fp8 KV cache instead", dict(kv_dtype="fp8", embeddings="quantized", prefill_chunk=2048)),
    ("same as the search, bf16 SSM state", dict(kv_dtype="fp4", embeddings="quantized", prefill_chunk=2048,
                                                state_dtype="bf16")),
]


def fit_table() -> list[dict]:
    rows = []
    for label, over in FIT_GRID:
        a = Assumptions(hardware="rtx-5090", precision="fp4", context=1 << 20, **over)
        row = {"assumptions": label, "settings": {k: v for k, v in a.to_dict().items()
                                                  if k in ("kv_dtype", "embeddings", "prefill_mode", "prefill_chunk",
                                                           "state_dtype", "reserve_bytes")}}
        for name in ("nemotron-h-56b", "nemotron-h-47b"):
            m = evaluate(load_layout(name), a)
            row[name] = {"memory_gib": m.memory_bytes / GIB, "weights_gib": m.weights_bytes / GIB,
                         "kv_cache_gib": m.kv_cache_bytes / GIB, "state_gib": m.state_bytes / GIB,
                         "activation_gib": m.activation_bytes / GIB, "fits_31_7_gib": m.memory_bytes <= BUDGET}
        row["56b_out_47b_in"] = (not row["nemotron-h-56b"]["fits_31_7_gib"]) and row["nemotron-h-47b"]["fits_31_7_gib"]
        rows.append(row)
    return rows


def paper_scenario() -> dict:
    """47B vs 56B in the paper's throughput setting (docs/profiler.md), and the search's 47B-class points."""
    from designer.profile.analytic import max_batch_throughput
    kw = dict(precision="bf16", tp=8, prompt=65536, gen=1024)
    t56 = max_batch_throughput("nemotron-h-56b", "h100-sxm", **kw)
    t47 = max_batch_throughput("nemotron-h-47b", "h100-sxm", **kw)
    return {"scenario": "8 x H100 SXM, TP 8, bf16, 65,536 in / 1,024 out, largest batch that fits (the paper's "
                        "throughput setting; docs/profiler.md)",
            "nemotron-h-56b_tokens_per_s_per_gpu": t56.output_tokens_per_s_per_gpu, "max_batch_56b": t56.batch,
            "nemotron-h-47b_tokens_per_s_per_gpu": t47.output_tokens_per_s_per_gpu, "max_batch_47b": t47.batch,
            "speedup_47b_vs_56b": t47.output_tokens_per_s_per_gpu / t56.output_tokens_per_s_per_gpu,
            "paper": "~1.2x (47B is 20% faster to infer)"}


def story() -> dict:
    out_dir = RESULTS / "search_56b_47b"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    exe = ROOT / ".venv" / "bin" / "designer"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "designer.cli"]
    proc = subprocess.run(cmd + STORY_CMD, capture_output=True, text=True, cwd=ROOT, check=True)
    doc = json.loads(proc.stdout)
    doc["command"] = "designer " + " ".join(STORY_CMD)
    doc["fit_table"] = fit_table()
    doc["paper_scenario"] = paper_scenario()
    klass = [r for r in doc["front"] if r["attention_layers"] <= 5 and abs(r["params"] / 46.8e9 - 1) <= 0.10]
    from designer.profile.analytic import max_batch_throughput
    t56 = max_batch_throughput("nemotron-h-56b", "h100-sxm", precision="bf16", tp=8)
    for r in klass:
        t = max_batch_throughput(r["file"], "h100-sxm", precision="bf16", tp=8)
        r["paper_scenario_speedup_vs_56b"] = t.output_tokens_per_s_per_gpu / t56.output_tokens_per_s_per_gpu
    doc["class_47b"] = {"definition": "<= 5 attention layers and parameters within 10% of 46.8B",
                        "count": len(klass), "files": [r["file"] for r in klass]}
    doc["machine"] = machine()
    return doc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", action="store_true", help="only the speed benchmark")
    ap.add_argument("--story", action="store_true", help="only the 56B -> 47B reproduction")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.story:
        s = speed()
        (RESULTS / "search_speed.json").write_text(json.dumps(s, indent=1) + "\n")
        print(f"scorer {s['scorer']['median_candidates_per_s']:,.0f} candidates/s; enumerate "
              f"{s['enumerate']['candidates_per_s']:,.0f}/s ({s['enumerate']['evaluated']:,} in "
              f"{s['enumerate']['total_seconds']:.2f} s total); nsga2 {s['nsga2']['candidates_per_s']:,.0f}/s; "
              f"optuna {s['optuna']['candidates_per_s']:,.0f}/s")
    if not args.speed:
        d = story()
        (RESULTS / "search_56b_47b.json").write_text(json.dumps(d, indent=1) + "\n")
        print(f"front {d['front_size']} points, {len(d['front'])} emitted, 47B class: {d['class_47b']['count']}")
        for ref in d["references"]:
            print(f"{ref['name']}: {ref['memory_bytes'] / GIB:.2f} GiB, x{ref['speedup_vs_base']:.2f} vs 56B at the "
                  f"search scenario, dominated by {ref.get('dominated_by_front_points')} front points")
        print(f"paper scenario 47B/56B: x{d['paper_scenario']['speedup_47b_vs_56b']:.2f}")


if __name__ == "__main__":
    main()
