"""The exported model on one GPU, --kernels torch against --kernels triton (issue 16).

    python bench/gpu_fast_path.py --points            # TTFT 4k/16k/64k, TPOT batch 1 and 64 @4k, both backends
    python bench/gpu_fast_path.py --paper nemotron-h-8b,llama-3.1-8b   # 65,536 in / 1,024 out, max batch

Random weights in bf16 (the preset layouts in profiles/models/). Times are CUDA-event medians after a warm-up.
TTFT: one prompt into an empty cache, the last position's logits and the greedy token. TPOT: one decode step
through the captured CUDA graph (DecodeGraph) on a static cache holding `context` positions; the cache is
filled with random values (a decode step's cost does not depend on them), eager steps are timed too. The
paper workload is measured end to end: every prompt prefilled into its slot of one batched cache, then
1,023 graph decode steps (1,024 output tokens a sequence, the first from the prefill), at the largest batch
whose cache fits beside the weights and the prefill's workspace. Results merge into --out (JSON, the format
issue 16 gives: gpu, torch, packages, command, points, paper_workload).
"""
from __future__ import annotations

import argparse
import functools
import importlib.metadata
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("exported_model", ROOT / "designer/export/templates/model.py")
M = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)   # dataclasses look the module up
_spec.loader.exec_module(M)

MODELS = ("nemotron-h-8b", "llama-3.1-8b")
PROMPT, OUTPUT = 65536, 1024


def versions() -> dict:
    out = {}
    for name in ("torch", "triton", "fla-core", "einops"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def load(name: str) -> M.CausalLM:
    args = M.ModelArgs.from_file(ROOT / "profiles/models" / f"{name}.yaml")
    torch.manual_seed(0)
    return M.build_model(args=args, device="cuda", dtype=torch.bfloat16).eval()


def timed(fn, repeat: int, warmup: int = 1, before=None) -> list[float]:
    """Seconds of each of `repeat` calls of fn (CUDA events), after `warmup` untimed calls; `before` runs
    untimed ahead of every call (resetting a cache)."""
    out = []
    for i in range(warmup + repeat):
        if before is not None:
            before()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        if i >= warmup:
            out.append(start.elapsed_time(end) / 1e3)
    return out


def fill_random(cache: M.InferenceCache, context: int) -> None:
    """A cache as if `context` tokens had been seen: random keys/values/states (decode cost ignores values)."""
    gen = torch.Generator(device="cuda").manual_seed(0)
    for t in cache.tensors():
        t.normal_(0, 0.5 if t.dtype == torch.float32 else 1.0, generator=gen)
    cache.seq_len = context


@torch.no_grad()
def ttft(model, prompt: int, repeat: int) -> tuple[float, int]:
    cache = model.new_cache(1, prompt + 16)
    ids = torch.randint(0, model.args.vocab_size, (1, prompt), device="cuda")

    def run():
        model(ids, cache=cache, logits_to_keep=1).argmax(-1)

    model(ids[:, :512], cache=cache, logits_to_keep=1)   # compile / autotune at a small size first
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    secs = timed(run, repeat, before=cache.reset)
    peak = torch.cuda.max_memory_allocated()
    del cache
    return (statistics.median(secs) if secs else None), peak


def tpot_point(point: str) -> tuple[int, int]:
    """(batch, context) of a point named tpot_b{batch}_c{context}."""
    batch, context = (int(p[1:]) for p in point.split("_")[1:3])
    return batch, context


def graph_decode(model, batch: int, context: int, steps: int = 40):
    """(cache, captured decode graph, ids) for `steps` decode steps of `batch` sequences after `context` positions
    (random values: a decode step's cost does not depend on them)."""
    cache = model.new_cache(batch, context + steps + 16)
    graph = M.DecodeGraph(model, cache)
    fill_random(cache, context)
    return cache, graph, torch.randint(0, model.args.vocab_size, (batch, 1), device="cuda")


@torch.no_grad()
def tpot(model, batch: int, context: int, steps: int = 40) -> tuple[float, float, int]:
    """(graph seconds, eager seconds, peak bytes) of one decode step at `context`."""
    torch.cuda.reset_peak_memory_stats()
    cache, graph, ids = graph_decode(model, batch, context, steps)
    graph_s = statistics.median(timed(lambda: graph(ids), steps, warmup=3))
    cache.seq_len = context
    eager_s = statistics.median(timed(lambda: model(ids, cache=cache), 8, warmup=2))
    peak = torch.cuda.max_memory_allocated()
    del graph, cache
    return graph_s, eager_s, peak


def decode_attention_override(kernels: str) -> dict:
    """{"decode_attention": settings} when --decode-attention replaced the kernel's launch defaults (triton only)."""
    if kernels == "triton" and isinstance(M.decode_attention_triton, functools.partial):
        return {"decode_attention": M.decode_attention_triton.keywords}
    return {}


def run_points(models, backends, results: dict, points: list[str], long_repeats: int = 2) -> None:
    for name in models:
        model = load(name)
        for kernels in backends:
            M.set_kernels(kernels)
            for point in points:
                t0 = time.time()
                if point.startswith("ttft_"):
                    prompt = int(point.split("_")[1])
                    repeats = long_repeats if prompt > 16384 else 4
                    secs, peak = ttft(model, prompt, repeat=repeats)
                    rows = [dict(point=point, batch=1, prompt=prompt, seconds=secs, peak_bytes=peak, repeats=repeats)]
                else:   # tpot_b{batch}_c{context}
                    batch, context = tpot_point(point)
                    graph_s, eager_s, peak = tpot(model, batch, context)
                    rows = [dict(point=point, batch=batch, context=context, seconds=graph_s, peak_bytes=peak,
                                 decode="cuda_graph"),
                            dict(point=point + "_eager", batch=batch, context=context, seconds=eager_s,
                                 peak_bytes=peak, decode="eager")]
                for row in rows:
                    row = dict(model=name, kernels=kernels, **row)
                    row.update(decode_attention_override(kernels))
                    results["points"] = [r for r in results["points"] if (r["model"], r["kernels"], r["point"])
                                         != (name, kernels, row["point"])] + [row]
                    print(f"{name:15s} {kernels:7s} {row['point']:22s} {row['seconds'] * 1e3:10.2f} ms  "
                          f"peak {row['peak_bytes'] / 2**30:6.1f} GiB  ({time.time() - t0:.0f} s)", flush=True)
                torch.cuda.empty_cache()
        del model
        torch.cuda.empty_cache()


@torch.no_grad()
def paper_workload(name: str, kernels: str, results: dict, budget_s: float) -> None:
    """65,536-token prompts, 1,024 output tokens each, at the largest batch that fits; end to end."""
    model = load(name)
    M.set_kernels(kernels)
    weights = torch.cuda.memory_allocated()
    per_seq = model.new_cache(1, PROMPT + OUTPUT, device="meta").nbytes()
    known = [r for r in results["points"] if (r["model"], r["kernels"], r["point"]) == (name, kernels, "ttft_65536")]
    if known:   # the measured 64k prefill: its time and peak memory; warm the kernels on a shorter prompt
        prefill_s, prefill_peak = known[0]["seconds"], known[0]["peak_bytes"]
        ttft(model, 8192, repeat=0)
    else:
        prefill_s, prefill_peak = ttft(model, PROMPT, repeat=1)   # also warms every kernel at this size
    workspace = prefill_peak - weights - model.new_cache(1, PROMPT + 16, device="meta").nbytes()
    free = torch.cuda.get_device_properties(0).total_memory * 0.95 - weights - workspace - 3 * 2**30
    batch = int(free // (per_seq * 1.02))
    est = batch * prefill_s + (OUTPUT - 1) * 0.03
    print(f"{name} {kernels}: batch {batch} ({per_seq / 2**30:.2f} GiB cache a sequence, prefill workspace "
          f"{workspace / 2**30:.1f} GiB), estimated {est:.0f} s", flush=True)
    if est > budget_s:
        print(f"skipped: the estimate {est:.0f} s exceeds the budget {budget_s:.0f} s", flush=True)
        return
    torch.cuda.reset_peak_memory_stats()
    cache = model.new_cache(batch, PROMPT + OUTPUT)
    graph = M.DecodeGraph(model, cache)
    gen = torch.Generator(device="cuda").manual_seed(1)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    first = []
    for i in range(batch):
        ids = torch.randint(0, model.args.vocab_size, (1, PROMPT), device="cuda", generator=gen)
        first.append(model(ids, cache=cache.slot(i), logits_to_keep=1)[:, -1].argmax(-1, keepdim=True))
    cache.seq_len = PROMPT
    torch.cuda.synchronize()
    t1 = time.perf_counter()
    nxt = torch.cat(first)
    for _ in range(OUTPUT - 1):
        nxt = graph(nxt)[:, -1].argmax(-1, keepdim=True)
    torch.cuda.synchronize()
    t2 = time.perf_counter()
    row = dict(model=name, kernels=kernels, batch=batch, prompt=PROMPT, output=OUTPUT,
               output_tokens_per_s=batch * OUTPUT / (t2 - t0), seconds=t2 - t0, prefill_seconds=t1 - t0,
               decode_seconds=t2 - t1, decode_step_seconds=(t2 - t1) / (OUTPUT - 1),
               peak_bytes=torch.cuda.max_memory_allocated(), measured=True, **decode_attention_override(kernels))
    results["paper_workload"] = [r for r in results["paper_workload"]
                                 if (r["model"], r["kernels"]) != (name, kernels)] + [row]
    print(f"{name} {kernels}: batch {batch}: {row['output_tokens_per_s']:.1f} output tokens/s "
          f"(prefill {t1 - t0:.1f} s, decode {t2 - t1:.1f} s = {row['decode_step_seconds'] * 1e3:.1f} ms/step)",
          flush=True)
    del graph, cache, model
    torch.cuda.empty_cache()


@torch.no_grad()
def profile(spec: str, out_dir: Path) -> None:
    """MODEL:KERNELS:PROMPT or MODEL:KERNELS:tpot_b{batch}_c{context}: the kernels of one prefill, or of ten
    decode steps through the captured graph (divide by ten for a step), by total CUDA time (a table on stdout
    and in a file)."""
    name, kernels, what = spec.split(":")
    model = load(name)
    M.set_kernels(kernels)
    if what.startswith("tpot_"):   # the point's cache and graph, as tpot() times them
        batch, context = tpot_point(what)
        cache, graph, ids = graph_decode(model, batch, context)
        for _ in range(3):
            graph(ids)
        cache.seq_len = context
        run = lambda: [graph(ids) for _ in range(10)]   # noqa: E731
    else:
        ttft(model, int(what), repeat=1)   # warm-up and autotune
        cache = model.new_cache(1, int(what) + 16)
        ids = torch.randint(0, model.args.vocab_size, (1, int(what)), device="cuda")
        run = lambda: model(ids, cache=cache, logits_to_keep=1)   # noqa: E731
    torch.cuda.synchronize()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=70)
    print(f"profile {spec}\n{table}", flush=True)
    (out_dir / f"profile_{name}_{kernels}_{what}.txt").write_text(table)
    del model, cache
    torch.cuda.empty_cache()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", action="store_true")
    ap.add_argument("--point-names", default="ttft_4096,ttft_16384,ttft_65536,tpot_b1_c4096,tpot_b64_c4096")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--kernels", default="torch,triton")
    ap.add_argument("--long-repeats", type=int, default=2, help="timed prefills of a prompt over 16k (4 below)")
    ap.add_argument("--paper", default="", help="models for the paper workload (kernels triton)")
    ap.add_argument("--paper-kernels", default="triton")
    ap.add_argument("--budget", type=float, default=450.0, help="seconds a paper workload may take")
    ap.add_argument("--profile", default="", help="MODEL:KERNELS:PROMPT or MODEL:KERNELS:tpot_b64_c4096 [,...]: "
                    "kernel tables of one prefill or of ten graph decode steps")
    ap.add_argument("--decode-attention", default="", help="launch settings of decode_attention_triton instead of "
                    "its defaults, e.g. block_t=64,programs=264,num_warps=4,num_stages=4 (rows record them)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/gpu_fast_path_h200.json"))
    opts = ap.parse_args(argv)
    if opts.decode_attention:
        setting = {key: int(val) for key, val in (kv.split("=") for kv in opts.decode_attention.split(","))}
        M.decode_attention_triton = functools.partial(M.decode_attention_triton, **setting)
    out = Path(opts.out)
    results = json.loads(out.read_text()) if out.exists() else {"points": [], "paper_workload": []}
    results.update(gpu=torch.cuda.get_device_name(0), torch=torch.__version__, packages=versions(),
                   dtype="bfloat16", weights="random", cuda=torch.version.cuda)
    results.setdefault("commands", [])
    results["command"] = "python bench/gpu_fast_path.py " + " ".join(sys.argv[1:] if argv is None else argv)
    results["commands"] = sorted(set(results["commands"]) | {results["command"]})
    for spec in filter(None, opts.profile.split(",")):
        profile(spec, out.parent)
    if opts.points:
        run_points(opts.models.split(","), opts.kernels.split(","), results, opts.point_names.split(","),
                   opts.long_repeats)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    for name in filter(None, opts.paper.split(",")):
        for kernels in opts.paper_kernels.split(","):
            paper_workload(name, kernels, results, opts.budget)
            out.write_text(json.dumps(results, indent=1) + "\n")
    out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
