"""Analytic profiler bench: speed targets and the source articles' claims, printed and saved as JSON.

    .venv/bin/python bench/bench_profile.py

Writes bench/results/profile_speed.json (targets: one profile of a 118-layer layout < 5 ms; three layouts
x 64 context points of every chart series < 100 ms) and bench/results/profile_claims.json (parameter
counts vs published figures, the Nemotron-H throughput ratios, the Falcon Mamba article's two points).
"""
from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from designer.layout import load_layout, preset_names  # noqa: E402
from designer.profile.analytic import context_points, profile, sweep  # noqa: E402
from designer.profile.claims import (CLAIMS, PAPER_GEN, PAPER_PROMPT, evaluate, falcon_generation,  # noqa: E402
                                     falcon_max_prompt, setup_grid)
from designer.profile.params import count_params  # noqa: E402

RESULTS = ROOT / "bench" / "results"
COMPARE = ("nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b")


def timed(fn, repeats: int) -> dict[str, float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"median_ms": statistics.median(times) * 1e3, "max_ms": max(times) * 1e3, "repeats": repeats}


def speed() -> dict:
    big = load_layout("nemotron-h-56b")
    assert big.num_layers == 118
    first = timed(lambda: profile(big), 1)                      # first call: hardware YAML read, cold caches
    prof = timed(lambda: profile(big), 200)
    layouts = [load_layout(n) for n in COMPARE]
    contexts = context_points(n=64)
    cmp = timed(lambda: [(profile(lay), sweep(lay, contexts=contexts)) for lay in layouts], 30)
    with_load = timed(lambda: [(profile(lay := load_layout(n)), sweep(lay, contexts=contexts)) for n in COMPARE], 10)
    cli = timed(lambda: subprocess.run([sys.executable, "-m", "designer.cli", "compare", "--json"], cwd=ROOT,
                                       check=True, capture_output=True), 3)
    return {
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
        "profile_118_layers": {"layout": big.name, **prof, "first_call_ms": first["median_ms"], "target_ms": 5.0,
                               "pass": prof["median_ms"] < 5.0},
        "compare_3_layouts_64_contexts": {"layouts": list(COMPARE), "context_points": len(contexts),
                                          "work": "profile() + sweep() of each: memory_vs_context, "
                                                  "latency_vs_context, throughput_vs_batch, max_batch_vs_context",
                                          **cmp, "including_yaml_load_ms": with_load["median_ms"],
                                          "cli_compare_json_wall_ms": cli["median_ms"],
                                          "target_ms": 100.0, "pass": cmp["median_ms"] < 100.0},
    }


# Published totals (model cards / papers), billions
PUBLISHED = {"llama-3.1-8b": 8.03, "llama-3.1-70b": 70.6, "falcon-mamba-7b": 7.27, "qwen2.5-7b": 7.61,
             "qwen2.5-72b": 72.7, "mamba2-2.7b": 2.7, "nemotron-3-nano-30b-a3b": 31.6}


def claims() -> dict:
    params = [{"layout": n, "total": (p := count_params(load_layout(n))).total, "active": p.active,
               "published_billions": PUBLISHED.get(n)} for n in preset_names()]
    return {
        "scenario": {"hardware": "h100-sxm", "prompt_tokens": PAPER_PROMPT, "gen_tokens": PAPER_GEN,
                     "metric": "output tokens/s per GPU at the largest batch that fits",
                     "serving": "static batch; chunked prefill 8192 tokens/pass, then decode; 0.9 of GPU memory"},
        "params": params,
        "nemotron_h_claims": [evaluate(c) for c in CLAIMS],
        "nemotron_h_47b_vs_56b_setup_grid": setup_grid("nemotron-h-47b", "nemotron-h-56b"),
        "falcon_mamba_a10_max_prompt": {"fp32": falcon_max_prompt("fp32"), "bf16": falcon_max_prompt("bf16")},
        "falcon_mamba_generation_h100": falcon_generation(),
    }


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    s = speed()
    (RESULTS / "profile_speed.json").write_text(json.dumps(s, indent=2) + "\n")
    p, c = s["profile_118_layers"], s["compare_3_layouts_64_contexts"]
    print(f"profile of {p['layout']} (118 layers): median {p['median_ms']:.3f} ms (first call "
          f"{p['first_call_ms']:.2f} ms), target < 5 ms: {'PASS' if p['pass'] else 'FAIL'}")
    print(f"compare {', '.join(c['layouts'])} over {c['context_points']} contexts: median {c['median_ms']:.2f} ms "
          f"(with YAML loads {c['including_yaml_load_ms']:.2f} ms), target < 100 ms: "
          f"{'PASS' if c['pass'] else 'FAIL'}; "
          f"`designer compare --json` wall time incl. interpreter start {c['cli_compare_json_wall_ms']:.0f} ms")

    cl = claims()
    (RESULTS / "profile_claims.json").write_text(json.dumps(cl, indent=2) + "\n")
    print(f"\nthroughput claims ({PAPER_PROMPT:,} in / {PAPER_GEN:,} out, H100, max batch, tokens/s/GPU):")
    for r in cl["nemotron_h_claims"]:
        num, den = r["numerator_row"], r["denominator_row"]
        print(f"  {r['text']:<52} predicted {r['predicted_ratio']:.2f}x (band {r['band'][0]:.2f}-{r['band'][1]:.2f}: "
              f"{'ok' if r['within'] else 'OUT'}); batch {num['max_batch']} vs {den['max_batch']}, "
              f"{num['output_tokens_per_s_per_gpu']:.0f} vs {den['output_tokens_per_s_per_gpu']:.0f} tok/s/GPU; "
              f"{r['assumption']}")
    print("  47B/56B by setup: " + ", ".join(
        f"{g['precision']} tp{g['tp']}: {g['ratio']:.2f}" if g["ratio"] else f"{g['precision']} tp{g['tp']}: no fit"
        for g in cl["nemotron_h_47b_vs_56b_setup_grid"]))
    print("\nFalcon Mamba article, A10 24 GB, batch 1, longest prompt:")
    for prec, rows in cl["falcon_mamba_a10_max_prompt"].items():
        for r in rows:
            mp = r["max_prompt_tokens"]
            print(f"  {prec} {r['layout']:<26} {r['prefill_mode']:<10} "
                  f"{'unbounded' if mp is None else f'{mp:,}'} (weights {r['weights_bytes'] / 2**30:.1f} GiB "
                  f"of {r['capacity_bytes'] / 2**30:.1f} GiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
