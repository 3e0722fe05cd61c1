"""Launch settings of the exported model's decode attention kernel on one GPU (issue 16's batch-64 decode point).

    python bench/decode_attention_sweep.py --out bench/results/decode_attention_sweep_h200.json

decode_attention_triton (flash-decoding over a static cache) for the attention shapes of llama-3.1-8b and
nemotron-h-8b (32 query heads, 8 KV heads, head size 128, bf16) at the batches and contexts the benchmarks
decode at, over a grid of block lengths, program counts (splits of the cache), warps and pipeline stages.
Each setting: ten calls captured in one CUDA graph (as a decode step runs them), the median of `--iters`
timed replays divided by ten, and the bandwidth it reaches on the live keys and values it must read. For scale,
SDPA's default backend on a contiguous copy of the same live keys and values (no cache, no position tensor),
the plain-torch reference's attention.
Prints a table and writes JSON with the command, GPU and versions.
"""
from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from gpu_fast_path import M, timed, versions  # noqa: E402   (the exported model file, loaded once)

HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
# (batch, live context, cache capacity): the TPOT points (cache = context + 40 steps + 16) and the paper workload's
# decode (65,536 + 1,024 positions, llama at batch 12, nemotron-h-8b at batch 91)
SHAPES = ((1, 4096, 4152), (16, 4096, 4152), (64, 4096, 4152), (64, 16384, 16440), (12, 66000, 66560),
          (91, 66000, 66560))
GRID = dict(block_t=(32, 64, 128), programs=(132, 264, 528, 1056), num_warps=(4, 8), num_stages=(2, 3, 4))
BEFORE = dict(block_t=64, programs=528, num_warps=4, num_stages=3)   # the settings before this sweep


def time_s(fn, iters: int, calls: int = 10) -> float:
    """Seconds of one call of fn on the GPU alone: `calls` calls captured in one CUDA graph (as the decode step
    runs them; timing single eager calls would add the launch's CPU time), the median of `iters` timed replays."""
    fn()   # compile
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    return statistics.median(timed(graph.replay, iters)) / calls


@torch.no_grad()
def sweep_shape(batch: int, context: int, capacity: int, iters: int) -> dict:
    gen = torch.Generator(device="cuda").manual_seed(0)
    k = torch.randn(batch, KV_HEADS, capacity, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
    v = torch.randn(k.shape, device="cuda", dtype=torch.bfloat16, generator=gen)
    q = torch.randn(batch, HEADS, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=gen)
    pos = torch.tensor(context - 1, device="cuda")
    live_bytes = 2 * batch * KV_HEADS * context * HEAD_DIM * k.element_size()
    want = M.decode_attention_triton(q, k, v, pos).float()
    chosen_setting = M.decode_attention_settings(0, HEAD_DIM)
    rows = []
    settings = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    for setting in settings + ([] if chosen_setting in settings else [chosen_setting]):   # chosen off the grid: too
        try:
            got = M.decode_attention_triton(q, k, v, pos, **setting).float()
            err = ((got - want).norm() / want.norm()).item()
            assert err < 1e-2, f"result differs from the default setting's (relative error {err:.2g})"
            secs = time_s(lambda: M.decode_attention_triton(q, k, v, pos, **setting), iters)
        except Exception as e:   # a setting Triton cannot compile (shared memory) is reported, not fatal
            rows.append(dict(setting, error=f"{type(e).__name__}: {str(e)[:160]}"))
            continue
        rows.append(dict(setting, seconds=secs, tb_per_s=live_bytes / secs / 1e12))
    ok = [r for r in rows if "seconds" in r]
    best = min(ok, key=lambda r: r["seconds"])
    pick = lambda setting: next(r for r in ok if all(r[key] == val for key, val in setting.items()))   # noqa: E731
    before, chosen = pick(BEFORE), pick(chosen_setting)
    kl, vl = k[:, :, :context].contiguous(), v[:, :, :context].contiguous()
    sdpa_s = time_s(lambda: F.scaled_dot_product_attention(q[:, :, None], kl, vl, enable_gqa=True), iters)
    out = dict(batch=batch, context=context, capacity=capacity, live_kv_bytes=live_bytes, before=before, chosen=chosen,
               best=best, sdpa_default_backend_seconds=sdpa_s, settings=rows)
    print(f"b{batch:<3d} ctx {context:6d}: before {before['seconds'] * 1e6:8.1f} us  "
          f"chosen {chosen['seconds'] * 1e6:8.1f} us ({chosen['tb_per_s']:.2f} TB/s)  "
          f"best {best['seconds'] * 1e6:8.1f} us ({best['tb_per_s']:.2f} TB/s) "
          f"{ {key: best[key] for key in GRID} }  sdpa {sdpa_s * 1e6:8.1f} us", flush=True)
    del k, v, kl, vl
    torch.cuda.empty_cache()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--out", default=str(ROOT / "bench/results/decode_attention_sweep_h200.json"))
    opts = ap.parse_args(argv)
    results = dict(command="python bench/decode_attention_sweep.py " + " ".join(sys.argv[1:] if argv is None else argv),
                   gpu=torch.cuda.get_device_name(0), torch=torch.__version__, packages=versions(),
                   heads=HEADS, kv_heads=KV_HEADS, head_dim=HEAD_DIM, dtype="bfloat16", grid=GRID, before=BEFORE,
                   chosen=M.decode_attention_settings(0, HEAD_DIM),   # on this GPU
                   shapes=[sweep_shape(*shape, opts.iters) for shape in SHAPES])
    Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
    Path(opts.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
