"""Micro-benchmarks for calibrating the roofline per kernel backend (`designer calibrate`, docs/calibrate.md).

Two kinds of measurement, both at the real widths of the given layouts (bf16 on CUDA, fp32 on the CPU):

- single-block models: for each block kind a layout uses, a copy of the layout whose pattern is that one
  symbol (`single_block_layout`), built with the exported model (random weights) and timed end to end:
  prefill of `batch` prompts into a fresh cache (logits of the last position: what `Roofline.prefill_s`
  predicts) and one decode step of `batch` sequences whose cache holds `context` tokens (eager, and replayed
  as a CUDA graph on CUDA: `Roofline.tpot_s`). Decode runs in steady state (DECODE_REPEAT): its model
  repeats the block `decode_repeat` times (fewer where the caches do not fit; the point's "repeat") and each
  timed sample is `replays` steps back to back, divided by them. The decode cache is not prefilled: its
  length is set to the context (attending over zeros costs what attending over real keys does). Beside them,
  per layout, the
  "shell": the same model with no block (embedding, final norm, LM head, the graph's input copies), at the
  same shapes: the fixed cost in every single-block time, which `fit` (designer.measure.calibrate) takes
  out before matching the roofline to the block's own time.
- components, for diagnosis and the report: the blocks' projection GEMMs, SDPA prefill and decode, the SSD
  scan alone, the causal conv, the gated RMSNorm, the decode state update, an empty kernel's launch cost
  and a device copy, each with its analytic FLOPs and bytes where they are plain.

Every point is failure-isolated: an error (out of memory, a kernel that does not build) is recorded as
{"error": ...} and the run goes on; a point whose memory estimate does not fit is {"skipped": ...}, and so
is every point after the time budget is spent. Timings are medians: CUDA events on CUDA
(designer.measure.gpu.bench), perf_counter on the CPU.
"""
from __future__ import annotations

import dataclasses
import gc
import importlib.metadata
import math
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch
import torch.nn.functional as F

from designer.export.model_export import model_args
from designer.export.template import load_template
from designer.layout import Constraints, Layout, layout_to_dict
from designer.measure.flops import reduced
from designer.measure.timing import check_device, environment, median_s
from designer.profile.blocks import ssd_chunked_flops

FORMAT = "designer.micro/1"
BLOCK_KIND = {"M": "mamba", "*": "attention", "-": "mlp", "E": "moe"}
# The single-block models keep every width but a small vocabulary: the LM head is the same in each of them
# and at 131,072 x 4,096 it is a 1 GiB read per decode step, five times an MLP block's weights, which would
# hide the block's own decode cost. The roofline is evaluated on the same reduced layout.
SINGLE_BLOCK_VOCAB = 4096
# Decode is timed in steady state. A one-block decode step is a ~0.2 ms burst whose per-block fixed costs
# (clocks and latency of a short replay, the graph launch, no overlap with a next block) do not carry over to
# a deep stack: on an H200, llama-3.1-8b's one-block `*` and `-` decode steps came to 413 us per layer, the
# whole 32-layer model to 290 us per layer. So a decode point's model repeats its block DECODE_REPEAT times
# (fewer where the caches do not fit: the point records its "repeat"), and each timed sample runs
# DECODE_REPLAYS steps back to back between one pair of CUDA events (the point's "replays").
DECODE_REPEAT = 8
DECODE_REPLAYS = 10
DEFAULT_BUDGET_S = 150.0   # per backend: the budget is 2.5 minutes on an H200
ProgressFn = Callable[[int, int, str], None]   # (done, total, what is running now)


@dataclass(frozen=True)
class Grid:
    """Shapes of one micro run. (batch, prompt) pairs for prefill; decode batches x contexts."""

    prefill: tuple[tuple[int, int], ...]
    mamba_prefill: tuple[tuple[int, int], ...]     # extra (batch, prompt) for M blocks
    decode_batches: tuple[int, ...]
    attention_contexts: tuple[int, ...]            # decode contexts of attention blocks
    contexts: tuple[int, ...]                      # decode contexts of the others (context does not matter)
    gemm_tokens: tuple[int, ...]
    sdpa_prompts: tuple[int, ...]
    scan_tokens: tuple[int, ...]
    warmup: int
    iters: int
    copy_bytes: int
    vocab: int | None                              # single-block vocabulary (None: the layout's)
    decode_repeat: int = 1                         # blocks in a decode point's model (DECODE_REPEAT says why)
    replays: int = 1                               # decode steps run back to back per timed sample


FULL = Grid(prefill=((1, 1024), (1, 4096), (1, 16384), (1, 65536)), mamba_prefill=((4, 4096), (16, 1024)),
            decode_batches=(1, 16, 64), attention_contexts=(4096, 16384, 65536), contexts=(4096,),
            gemm_tokens=(1, 16, 64, 1024, 16384), sdpa_prompts=(1024, 4096, 16384, 65536),
            scan_tokens=(1024, 4096, 16384, 65536), warmup=1, iters=3, copy_bytes=2 * 2**30,
            vocab=SINGLE_BLOCK_VOCAB, decode_repeat=DECODE_REPEAT, replays=DECODE_REPLAYS)
QUICK = Grid(prefill=((1, 16), (1, 64)), mamba_prefill=((2, 16),), decode_batches=(1, 2), attention_contexts=(32, 64),
             contexts=(32,), gemm_tokens=(1, 16), sdpa_prompts=(16, 64), scan_tokens=(16, 64), warmup=1, iters=2,
             copy_bytes=2**20, vocab=None, decode_repeat=2, replays=2)


def single_block_layout(layout: Layout, symbol: str, vocab: int | None = SINGLE_BLOCK_VOCAB) -> Layout:
    """`layout` with the pattern `symbol` alone (every width kept; the family re-inferred, so a llama `*` is
    one attention block, not half a decoder layer), no parallelism, rules or constraints, and the
    vocabulary cut to `vocab` (SINGLE_BLOCK_VOCAB says why)."""
    return layout.replace(name=f"{layout.name}-block-{BLOCK_KIND[symbol]}", pattern=symbol, family=None,
                          vocab_size=min(layout.vocab_size, vocab or layout.vocab_size), rules=(),
                          constraints=Constraints(),
                          parallel=dataclasses.replace(layout.parallel, tensor=1, pipeline=1))


def repeated_layout(single: Layout, repeat: int) -> Layout:
    """A single-block layout with its block repeated `repeat` times (a decode point's model)."""
    return single.with_pattern(single.pattern * repeat)


def block_key(layout: Layout, symbol: str) -> str:
    return f"{layout.name}:{symbol}"


def shell_key(layout: Layout) -> str:
    return f"{layout.name}:shell"


# --------------------------------------------------------------------------------------------------
# timing


def _timer(device: str) -> Callable[[Callable[[], Any], int, int], float]:
    """(fn, warmup, iters) -> median seconds: CUDA events on CUDA, perf_counter on the CPU."""
    if device == "cuda":
        from designer.measure.gpu import bench
        return lambda fn, warmup, iters: bench(fn, warmup=warmup, iters=iters)
    return lambda fn, warmup, iters: median_s(fn, "cpu", warmup, iters)


def _free_bytes(device: str) -> float:
    """Bytes a new allocation can get: free on the device plus what torch's caching allocator holds unused."""
    if device == "cuda":
        cached = torch.cuda.memory_reserved() - torch.cuda.memory_allocated()
        return float(torch.cuda.mem_get_info()[0] + max(cached, 0))
    return math.inf


def _cleanup(device: str) -> None:
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".strip()[:300]


class _Runner:
    """Runs the points one by one: progress, the time budget, and failure isolation (an exception is
    recorded in the point as "error" and the run goes on)."""

    def __init__(self, device: str, total: int, budget_s: float | None, progress: ProgressFn | None):
        self.device, self.total, self.budget_s, self.progress = device, total, budget_s, progress
        self.done, self.start = 0, time.perf_counter()

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.start

    def run(self, point: dict[str, Any], label: str, measure: Callable[[], dict[str, Any] | float],
            need_bytes: float = 0.0) -> dict[str, Any]:
        if self.progress:
            self.progress(self.done, self.total, label)
        try:
            if self.budget_s is not None and self.elapsed_s() > self.budget_s:
                point["skipped"] = f"time budget of {self.budget_s:g} s spent"
            elif need_bytes > 0.9 * _free_bytes(self.device):
                point["skipped"] = (f"needs about {need_bytes / 2**30:.1f} GiB, "
                                    f"{_free_bytes(self.device) / 2**30:.1f} GiB free")
            else:
                result = measure()
                point.update(result if isinstance(result, dict) else {"measured_s": float(result)})
        except Exception as e:   # noqa: BLE001 - one failed point must not end the run
            point["error"] = _error_text(e)
            _cleanup(self.device)      # an out-of-memory error leaves cached blocks behind
        self.done += 1
        return point


# --------------------------------------------------------------------------------------------------
# single-block models


def _block_points(symbol: str, grid: Grid, graphs: bool) -> list[dict[str, Any]]:
    """The (unmeasured) points of one single-block model."""
    prefill = grid.prefill + (grid.mamba_prefill if symbol == "M" else ())
    points = [{"metric": "prefill", "batch": b, "prompt": p} for b, p in prefill]
    contexts = grid.attention_contexts if symbol == "*" else grid.contexts
    modes = ("eager", "graph") if graphs else ("eager",)
    for batch in grid.decode_batches:
        for context in contexts:
            for mode in modes:
                points.append({"metric": "decode", "mode": mode, "batch": batch, "context": context})
    return points


def _ensure_cache_tensor(cache: Any, batch: int, device: str) -> None:
    """DecodeGraph sizes its input from the cache's first tensor; an MLP/MoE-only model (or the shell, with
    no block) caches nothing, so give it a placeholder layer (blocks ignore their cache entry)."""
    if not cache.tensors():
        from types import SimpleNamespace
        placeholder = SimpleNamespace(placeholder=torch.zeros(batch, 1, device=device))
        if cache.layers:
            cache.layers[0] = placeholder
        else:
            cache.layers.append(placeholder)


def _prefill_s(model: Any, batch: int, prompt: int, vocab: int, device: str, timer, grid: Grid) -> float:
    ids = torch.randint(0, vocab, (batch, prompt), device=device)
    cache = model.new_cache(batch, prompt + 1)

    def run() -> None:
        cache.seq_len = 0            # rewound, not cleared: attention overwrites, the scan's cost is the same
        cache.position.zero_()
        model(ids, cache=cache, logits_to_keep=1)

    return timer(run, grid.warmup, grid.iters)


def _replays(grid: Grid) -> int:
    return max(1, int(grid.replays))


def _decode_steps(grid: Grid) -> int:
    """Decode steps one point runs (the cache is sized for them): every sample's replays, and a margin."""
    return (grid.warmup + grid.iters) * _replays(grid) + 2


def _decode_cache_len(context: int, grid: Grid) -> int:
    """Positions of a decode point's cache: the context and the steps it runs, aligned by the model file's rule
    (model.aligned_cache_len, as generate() and the whole-model measurement). The old margin of 42 steps made it
    2 mod 8, suspected to be why llama's micro decode at batch 1 read the KV cache at 0.37 TB/s against the whole
    model's 1.8 (not yet re-measured)."""
    return load_template("model.py").aligned_cache_len(context + _decode_steps(grid))


def _decode_s(mod: Any, model: Any, batch: int, context: int, mode: str, vocab: int, device: str, timer,
              grid: Grid) -> float:
    """Seconds per decode step: each timed sample runs `grid.replays` steps back to back (one pair of CUDA
    events around them), divided by the replays."""
    replays = _replays(grid)
    cache = model.new_cache(batch, _decode_cache_len(context, grid))
    step = None
    if mode == "graph":
        _ensure_cache_tensor(cache, batch, device)
        step = mod.DecodeGraph(model, cache)        # captured right after new_cache, as it asks
    cache.seq_len = context
    cache.position.fill_(context)
    nxt = torch.randint(0, vocab, (batch, 1), device=device)
    one = (lambda: step(nxt)) if step is not None else (lambda: model(nxt, cache=cache))

    def fn() -> None:
        for _ in range(replays):
            one()

    return timer(fn, grid.warmup, grid.iters) / replays


def _memory_estimate(layout: Layout, precision: str, batch: int, context: int, prompt: int) -> float:
    """Bytes a point needs: the roofline's weights, caches and prefill workspace (x3 for the torch reference's
    intermediates); any profile will do, only bytes are read. 0 (no check) if the estimate itself fails."""
    from designer.profile.hardware import Hardware, load_hardware
    from designer.profile.roofline import Roofline
    from designer.profile.scenario import Scenario
    try:
        hw: Hardware = load_hardware("h200")
        roof = Roofline(layout, hw, Scenario(precision=precision, tp=1, pp=1, prefill_mode="parallel"))
        return 3.0 * roof.memory(batch, context, prompt=prompt).total_bytes
    except Exception:   # noqa: BLE001 - an estimate only; the point's own errors are caught when it runs
        return 0.0


def _shell_points(layout: Layout, grid: Grid, graphs: bool) -> list[dict[str, Any]]:
    """The shell's points: every prefill shape of the layout's blocks, one decode context (it caches nothing)."""
    prefill = list(dict.fromkeys(grid.prefill + (grid.mamba_prefill if "M" in layout.pattern else ())))
    points = [{"metric": "prefill", "batch": b, "prompt": p} for b, p in prefill]
    modes = ("eager", "graph") if graphs else ("eager",)
    points += [{"metric": "decode", "mode": mode, "batch": batch, "context": grid.contexts[0]}
               for batch in grid.decode_batches for mode in modes]
    return points


def _decode_repeat(grid: Grid, symbol: str | None) -> int:
    """Blocks in a decode point's model: the grid's decode_repeat; the shell has none."""
    return 1 if symbol is None else max(1, int(grid.decode_repeat))


def _fitting_repeat(single: Layout, precision: str, batch: int, context: int, repeat: int,
                    device: str) -> tuple[int, float]:
    """(the most blocks, up to `repeat`, whose decode point (cache length `context`) fits in free memory; the
    bytes it needs). The weights of the loaded model are counted again (as for a single block): the estimate
    errs on the safe side. None fit: (1, the single block's need), which the runner skips."""
    free = 0.9 * _free_bytes(device)
    need = 0.0
    for r in range(repeat, 0, -1):
        need = _memory_estimate(repeated_layout(single, r), precision, batch, context, 1)
        if need <= free:
            return r, need
    return 1, need


def _run_block(mod: Any, layout: Layout, symbol: str | None, grid: Grid, device: str, dtype: torch.dtype,
               graphs: bool, runner: _Runner, timer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A single-block model's points; symbol None: the layout's shell (`shell_key`), the same model with no
    block (embedding, final norm, LM head): the fixed cost every single-block time includes. Prefill points
    run the single-block model; decode points a model with the block repeated `grid.decode_repeat` times
    (DECODE_REPEAT says why; the point's "repeat" is the number it ran, fewer where the caches did not fit),
    each timed over `grid.replays` back-to-back steps (its "replays")."""
    shell = symbol is None
    single = single_block_layout(layout, symbol or next(s for s in BLOCK_KIND if s in layout.pattern), grid.vocab)
    key = shell_key(layout) if shell else block_key(layout, symbol)
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    repeat = _decode_repeat(grid, symbol)
    block: dict[str, Any] = {"key": key, "layout": layout.name, "symbol": symbol,
                             "kind": "shell" if shell else BLOCK_KIND[symbol]}
    if not shell:
        block["single_block"] = layout_to_dict(single, full=True)
        block["decode_repeat"] = repeat
    points = [{"block": key, **p} for p in (_shell_points(layout, grid, graphs) if shell
                                            else _block_points(symbol, grid, graphs))]

    def build(lay: Layout) -> Any:
        torch.manual_seed(0)
        built = mod.build_model(args=model_args(lay), device=device, dtype=dtype).eval()
        if shell:
            built.body.layers = torch.nn.ModuleList()
        return built

    model, model_error, decode_model = None, "the single-block model did not build", False
    try:
        t0 = time.perf_counter()
        model = build(single)
        block["params"] = model.num_params()
        block["build_s"] = time.perf_counter() - t0
    except Exception as e:   # noqa: BLE001 - the other blocks still run
        block["error"] = _error_text(e)
    with torch.no_grad():
        for p in points:
            where = p.get("prompt", p.get("context"))
            if p["metric"] == "decode":
                p["replays"] = _replays(grid)
                if not decode_model and repeat > 1 and model is not None:
                    # the prefill points are done: the single-block model makes way for the repeated one
                    del model
                    model = None
                    _cleanup(device)
                    model_error = f"the {repeat}-block decode model did not build"
                    try:
                        t0 = time.perf_counter()
                        model = build(repeated_layout(single, repeat))
                        block["decode_params"] = model.num_params()
                        block["decode_build_s"] = time.perf_counter() - t0
                    except Exception as e:   # noqa: BLE001 - recorded; its points get the error
                        block["decode_error"] = _error_text(e)
                        _cleanup(device)
                decode_model = True
            label = f"{key} {p['metric']} {p.get('mode', '')} b{p['batch']} x {where}".replace("  ", " ")
            if model is None:
                runner.run(p, label, lambda: {"error": model_error})
                continue
            if p["metric"] == "prefill":
                need = 0.0 if shell else _memory_estimate(single, precision, p["batch"], p["prompt"] + 1, p["prompt"])
                runner.run(p, label, lambda p=p: _prefill_s(model, p["batch"], p["prompt"], single.vocab_size,
                                                            device, timer, grid), need)
                continue
            if not shell:
                p["repeat"], need = (_fitting_repeat(single, precision, p["batch"], _decode_cache_len(p["context"], grid),
                                                     repeat, device) if repeat > 1 else
                                     (1, _memory_estimate(single, precision, p["batch"],
                                                          _decode_cache_len(p["context"], grid), 1)))
                if p["repeat"] > 1:
                    label += f" ({p['repeat']} blocks)"
            else:
                need = 0.0
            if p["mode"] == "graph" and symbol == "E":
                runner.run(p, label, lambda: {"skipped": "MoE routing syncs with the host: no CUDA graph"})
                continue
            layers = model.body.layers
            if not shell and p["repeat"] < len(layers):      # the caches of every block do not fit: fewer
                model.body.layers = torch.nn.ModuleList(list(layers)[:p["repeat"]])
            try:
                runner.run(p, label, lambda p=p: _decode_s(mod, model, p["batch"], p["context"], p["mode"],
                                                           single.vocab_size, device, timer, grid), need)
            finally:
                model.body.layers = layers
    del model
    _cleanup(device)
    return block, points


# --------------------------------------------------------------------------------------------------
# components


def _gemm_shapes(layout: Layout, symbol: str) -> list[tuple[str, int, int]]:
    """(name, in features, out features) of a block's projections, as the exported model runs them."""
    h = layout.hidden_size
    if symbol == "M":
        m = layout.mamba
        if m.version == 2:
            inner = m.num_heads * m.head_dim
            return [("in_proj", h, 2 * inner + 2 * m.n_groups * m.state_size + m.num_heads), ("out_proj", inner, h)]
        inner, r = m.expand * h, m.dt_rank_value(h)
        return [("in_proj", h, 2 * inner), ("x_proj", inner, r + 2 * m.state_size), ("dt_proj", r, inner),
                ("out_proj", inner, h)]
    if symbol == "*":
        a = layout.attention
        return [("q_proj", h, a.num_heads * a.head_dim), ("k_proj", h, a.num_kv_heads * a.head_dim),
                ("v_proj", h, a.num_kv_heads * a.head_dim), ("o_proj", a.num_heads * a.head_dim, h)]
    if symbol == "-":
        f = layout.mlp
        ups = [("gate_proj", h, f.intermediate_size)] if f.gated else []
        return ups + [("up_proj", h, f.intermediate_size), ("down_proj", f.intermediate_size, h)]
    e = layout.moe
    up = (2 if e.gated else 1) * e.intermediate_size
    shapes = [("router", h, e.num_experts), ("expert_up", h, up), ("expert_down", e.intermediate_size, h)]
    if e.shared_intermediate_size:
        shared = (2 if e.gated else 1) * e.shared_intermediate_size
        shapes += [("shared_up", h, shared), ("shared_down", e.shared_intermediate_size, h)]
    return shapes


def _gemm(tokens: int, k: int, n: int, *, device: str, dtype: torch.dtype, timer, grid: Grid) -> dict[str, Any]:
    x = torch.randn(tokens, k, device=device, dtype=dtype)
    w = torch.randn(n, k, device=device, dtype=dtype)
    t = timer(lambda: F.linear(x, w), grid.warmup, grid.iters)
    size = x.element_size()
    return {"measured_s": t, "flops": 2.0 * tokens * n * k, "bytes": float((tokens * k + n * k + tokens * n) * size)}


def _sdpa_prefill(mod: Any, layout: Layout, tokens: int, kernels: str, *, device: str, dtype, timer,
                  grid: Grid) -> dict[str, Any]:
    a = layout.attention
    q = torch.randn(1, a.num_heads, tokens, a.head_dim, device=device, dtype=dtype)
    k = torch.randn(1, a.num_kv_heads, tokens, a.head_dim, device=device, dtype=dtype)
    v = torch.randn_like(k)
    gqa_native = getattr(mod, "_SDPA_HAS_GQA", False) and kernels == "torch"
    if not gqa_native and a.num_kv_heads != a.num_heads:   # the fast path hands SDPA full heads (cuDNN)
        k = k.repeat_interleave(a.num_heads // a.num_kv_heads, dim=1)
        v = v.repeat_interleave(a.num_heads // a.num_kv_heads, dim=1)
    extra = {"enable_gqa": True} if gqa_native and k.shape[1] != a.num_heads else {}
    restrict = kernels == "torch" and device == "cuda" and getattr(mod, "sdpa_kernel", None) is not None

    def run():
        if restrict:   # a prefill with a cache runs under the template's cached-attention backends
            with mod.sdpa_kernel(mod._CACHE_SDPA_BACKENDS):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, **extra)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, **extra)

    t = timer(run, grid.warmup, grid.iters)
    size = q.element_size()
    flops = 4.0 * a.num_heads * a.head_dim * tokens * (tokens + 1) / 2
    bytes_ = (2 * q.numel() + 2 * tokens * a.num_kv_heads * a.head_dim) * size
    return {"measured_s": t, "flops": flops, "bytes": float(bytes_)}


def _sdpa_decode(mod: Any, layout: Layout, batch: int, context: int, kernels: str, *, device: str, dtype, timer,
                 grid: Grid) -> dict[str, Any]:
    a = layout.attention
    k = torch.randn(batch, a.num_kv_heads, context + 1, a.head_dim, device=device, dtype=dtype)
    v = torch.randn_like(k)
    kv_bytes = float(2 * k.numel() * k.element_size())
    flops = 4.0 * batch * a.num_heads * a.head_dim * (context + 1)
    if kernels == "triton" and device == "cuda":
        q = torch.randn(batch, a.num_heads, a.head_dim, device=device, dtype=dtype)
        pos = torch.full((), context, dtype=torch.long, device=device)
        run = lambda: mod.decode_attention_triton(q, k, v, pos, a.sliding_window)   # noqa: E731
    else:
        q = torch.randn(batch, a.num_heads, 1, a.head_dim, device=device, dtype=dtype)
        if not getattr(mod, "_SDPA_HAS_GQA", False) and a.num_kv_heads != a.num_heads:
            k = k.repeat_interleave(a.num_heads // a.num_kv_heads, dim=1)
            v = v.repeat_interleave(a.num_heads // a.num_kv_heads, dim=1)
        extra = {"enable_gqa": True} if k.shape[1] != a.num_heads else {}
        restrict = device == "cuda" and getattr(mod, "sdpa_kernel", None) is not None

        def run():
            if restrict:
                with mod.sdpa_kernel(mod._CACHE_SDPA_BACKENDS):
                    return F.scaled_dot_product_attention(q, k, v, **extra)
            return F.scaled_dot_product_attention(q, k, v, **extra)
    return {"measured_s": timer(run, grid.warmup, grid.iters), "flops": flops, "bytes": kv_bytes}


def _ssd_inputs(layout: Layout, batch: int, tokens: int, device: str, dtype):
    m = layout.mamba
    x = torch.randn(batch, tokens, m.num_heads, m.head_dim, device=device, dtype=dtype)
    dt = torch.rand(batch, tokens, m.num_heads, device=device, dtype=torch.float32) * 0.1 + 1e-3
    A = -torch.rand(m.num_heads, device=device, dtype=torch.float32) - 0.5
    B = torch.randn(batch, tokens, m.n_groups, m.state_size, device=device, dtype=dtype)
    C = torch.randn_like(B)
    return x, dt, A, B, C


def _ssd_scan(mod: Any, layout: Layout, tokens: int, kernels: str, *, device: str, dtype, timer,
              grid: Grid) -> dict[str, Any]:
    m = layout.mamba
    x, dt, A, B, C = _ssd_inputs(layout, 1, tokens, device, dtype)
    if kernels == "triton" and device == "cuda":
        run = lambda: mod.ssd_chunked_scan_triton(x, dt, A, B, C)   # noqa: E731
    else:
        run = lambda: mod.ssd_chunked_scan(x, dt, A, B, C, m.chunk_size)   # noqa: E731
    t = timer(run, grid.warmup, grid.iters)
    size = x.element_size()
    bytes_ = 2 * x.numel() * size + dt.numel() * 4 + 2 * B.numel() * size + m.num_heads * m.head_dim * m.state_size * 4
    return {"measured_s": t, "flops": ssd_chunked_flops(tokens, m.num_heads, m.head_dim, m.state_size, m.chunk_size),
            "bytes": float(bytes_)}


def _conv_dim(layout: Layout) -> int:
    return layout.mamba.conv_dim(layout.hidden_size)


def _causal_conv(mod: Any, layout: Layout, tokens: int, kernels: str, *, device: str, dtype, timer,
                 grid: Grid) -> dict[str, Any]:
    m, c = layout.mamba, _conv_dim(layout)
    conv = torch.nn.Conv1d(c, c, m.conv_kernel, groups=c, padding=m.conv_kernel - 1, bias=m.conv_bias).to(device, dtype)
    x = torch.randn(1, tokens, c, device=device, dtype=dtype)
    fn = mod.causal_conv1d_triton if kernels == "triton" and device == "cuda" else mod.causal_conv1d
    t = timer(lambda: fn(x, conv), grid.warmup, grid.iters)
    return {"measured_s": t, "flops": 2.0 * c * m.conv_kernel * tokens,
            "bytes": float(2 * x.numel() * x.element_size())}


def _gated_norm(mod: Any, layout: Layout, tokens: int, *, device: str, dtype, timer,
                grid: Grid) -> dict[str, Any]:
    m = layout.mamba
    inner = m.num_heads * m.head_dim
    norm = mod.GatedRMSNorm(inner, m.n_groups, eps=layout.norm_eps).to(device, dtype)
    y = torch.randn(1, tokens, inner, device=device, dtype=dtype)
    z = torch.randn_like(y)
    t = timer(lambda: norm(y, z), grid.warmup, grid.iters)
    return {"measured_s": t, "flops": 0.0, "bytes": float(3 * y.numel() * y.element_size())}


def _state_update(mod: Any, layout: Layout, batch: int, kernels: str, *, device: str, dtype, timer,
                  grid: Grid) -> dict[str, Any]:
    m = layout.mamba
    H, P, N, G = m.num_heads, m.head_dim, m.state_size, m.n_groups
    state = torch.zeros(batch, H, P, N, device=device, dtype=torch.float32)
    x = torch.randn(batch, H, P, device=device, dtype=dtype)
    dt = torch.randn(batch, H, device=device, dtype=dtype)
    B = torch.randn(batch, G, N, device=device, dtype=dtype)
    C = torch.randn_like(B)
    if kernels == "triton" and device == "cuda":
        dt_bias = torch.zeros(H, device=device, dtype=dtype)
        A_log = torch.zeros(H, device=device, dtype=dtype)
        D = torch.ones(H, device=device, dtype=dtype)
        run = lambda: mod.ssd_step_triton(state, x, dt, dt_bias, A_log, B, C, D)   # noqa: E731
    else:
        A = -torch.ones(H, device=device)
        dtf = F.softplus(dt.float())
        run = lambda: mod.ssd_step(state, x, dtf, A, B, C)   # noqa: E731
    t = timer(run, grid.warmup, grid.iters)
    return {"measured_s": t, "flops": 4.0 * batch * H * P * N, "bytes": float(2 * state.numel() * 4)}


def _launch(device: str, timer, grid: Grid) -> dict[str, Any]:
    """The cost of one tiny kernel: launched eagerly, and replayed inside a CUDA graph (per kernel)."""
    if device != "cuda":
        x = torch.zeros(1024)
        n = 200
        t0 = time.perf_counter()
        for _ in range(n):
            x.add_(1.0)
        return {"eager_small_kernel_s": (time.perf_counter() - t0) / n, "graph_small_kernel_s": None}
    from designer.measure.gpu import capture_graph, launch_overhead
    out = {"eager_small_kernel_s": launch_overhead()["eager_small_kernel_s"]}
    x = torch.zeros(1024, device="cuda")
    n = 100

    def kernels():
        for _ in range(n):
            x.add_(1.0)
    graph = capture_graph(kernels)
    out["graph_small_kernel_s"] = timer(graph.replay, grid.warmup + 2, grid.iters + 2) / n
    return out


def _copy(device: str, timer, grid: Grid) -> dict[str, Any]:
    src = torch.randn(grid.copy_bytes // 2, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    t = timer(lambda: dst.copy_(src), grid.warmup + 2, grid.iters + 2)
    moved = 2.0 * src.numel() * src.element_size()   # read + write
    return {"measured_s": t, "flops": 0.0, "bytes": moved}


def _component_plan(layouts: list[Layout], grid: Grid, kernels: str, device: str, dtype, mod: Any,
                    timer) -> list[tuple[dict[str, Any], Callable[[], dict[str, Any]], float]]:
    """(point, measure, bytes needed) of every component benchmark (partials: each binds its own shapes)."""
    plan: list[tuple[dict[str, Any], Callable[[], dict[str, Any]], float]] = []
    size = torch.finfo(dtype).bits // 8
    env = dict(device=device, dtype=dtype, timer=timer, grid=grid)
    plan.append(({"name": "launch"}, partial(_launch, device, timer, grid), 0.0))
    plan.append(({"name": "copy", "bytes_copied": grid.copy_bytes}, partial(_copy, device, timer, grid),
                 2.0 * grid.copy_bytes))
    for layout in layouts:
        for symbol in [s for s in BLOCK_KIND if s in layout.pattern]:
            key = block_key(layout, symbol)
            for op, k, n in _gemm_shapes(layout, symbol):
                for tokens in grid.gemm_tokens:
                    point = {"name": "gemm", "block": key, "op": op, "tokens": tokens, "in": k, "out": n}
                    plan.append((point, partial(_gemm, tokens, k, n, **env), (tokens * k + k * n + tokens * n) * size))
            if symbol == "*":
                a = layout.attention
                for tokens in grid.sdpa_prompts:
                    plan.append(({"name": "sdpa_prefill", "block": key, "tokens": tokens},
                                 partial(_sdpa_prefill, mod, layout, tokens, kernels, **env),
                                 12.0 * tokens * a.num_heads * a.head_dim * size))
                for batch in grid.decode_batches:
                    for context in grid.attention_contexts:
                        plan.append(({"name": "sdpa_decode", "block": key, "batch": batch, "context": context},
                                     partial(_sdpa_decode, mod, layout, batch, context, kernels, **env),
                                     6.0 * batch * context * a.num_kv_heads * a.head_dim * size))
            if symbol == "M" and layout.mamba.version == 2:
                m = layout.mamba
                for tokens in grid.scan_tokens:
                    # the torch reference's chunk tensors: (heads, chunks, chunk, chunk) fp32, a few of them
                    plan.append(({"name": "ssd_scan", "block": key, "tokens": tokens},
                                 partial(_ssd_scan, mod, layout, tokens, kernels, **env),
                                 8.0 * m.num_heads * tokens * m.chunk_size * 4))
                    plan.append(({"name": "causal_conv", "block": key, "tokens": tokens},
                                 partial(_causal_conv, mod, layout, tokens, kernels, **env),
                                 3.0 * tokens * _conv_dim(layout) * size))
                    plan.append(({"name": "gated_rmsnorm", "block": key, "tokens": tokens},
                                 partial(_gated_norm, mod, layout, tokens, **env),
                                 8.0 * tokens * m.num_heads * m.head_dim * 4))
                for batch in grid.decode_batches:
                    plan.append(({"name": "state_update", "block": key, "batch": batch},
                                 partial(_state_update, mod, layout, batch, kernels, **env),
                                 3.0 * batch * m.num_heads * m.head_dim * m.state_size * 4))
        # the LM head at the real vocabulary, at decode-like token counts (diagnosis only: not in the fit)
        for tokens in [t for t in grid.gemm_tokens if t <= 64]:
            point = {"name": "gemm", "block": f"{layout.name}:head", "op": "lm_head", "tokens": tokens,
                     "in": layout.hidden_size, "out": layout.vocab_size}
            plan.append((point, partial(_gemm, tokens, layout.hidden_size, layout.vocab_size, **env),
                         layout.vocab_size * layout.hidden_size * size))
    return plan


# --------------------------------------------------------------------------------------------------
# environment and the entry


def _package_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def micro_environment(device: str, kernels_in_use: str) -> dict[str, Any]:
    """Where the run happened: GPU, driver (nvidia-smi; else the CUDA runtime torch was built with), torch,
    triton and fla-core versions, the kernels actually in use, the date."""
    env = {"gpu": None, **environment(device)}
    env.update(driver=_driver() if device == "cuda" else None, cuda=torch.version.cuda,
               packages={"torch": torch.__version__, "triton": _package_version("triton"),
                         "fla-core": _package_version("fla-core", "flash-linear-attention")},
               kernels_in_use=kernels_in_use)
    if device == "cuda" and env["driver"] is None:
        env["driver"] = f"unknown (CUDA runtime {torch.version.cuda})"
    return env


def run_micro(layouts: list[Layout], kernels: str, device: str = "cuda", quick: bool = False, *,
              budget_s: float | None = DEFAULT_BUDGET_S, progress: ProgressFn | None = None,
              checkpoint: Callable[[dict[str, Any]], None] | None = None, grid: Grid | None = None) -> dict[str, Any]:
    """Micro-benchmarks of `kernels` (torch | triton) on `device` at the layouts' shapes (module docstring).
    quick: the layouts' width-reduced copies (designer.measure.flops.reduced) at tiny shapes: the pipeline
    in seconds on a CPU. `checkpoint(result so far)` is called after the components and after each block
    (`"complete": false` until the end), so a caller can save partial results. Returns the documented
    JSON-ready dict (docs/calibrate.md):

    {"format", "kernels", "kernels_in_use", "device", "dtype", "quick", "layouts", "settings", "environment",
     "blocks": [{"key", "layout", "symbol", "kind", "single_block" (the layout dict), "decode_repeat", "params",
                 "build_s", "decode_params", "decode_build_s" (the repeated decode model; "decode_error" if it
                 did not build)}
                | {"key": "LAYOUT:shell", "layout", "symbol": None, "kind": "shell", "params", "build_s"}],
     "points": [{"block", "metric": "prefill", "batch", "prompt", "measured_s"} |
                {"block", "metric": "decode", "mode": "eager"|"graph", "batch", "context", "repeat" (blocks in
                 its model; not in the shell's), "replays", "measured_s" (per step)}],
     "components": [{"name", ..., "measured_s", "flops", "bytes"}], "elapsed_s", "complete"}
    A point that failed has "error" instead of "measured_s"; one not run has "skipped" (the reason).
    """
    check_device(device, kernels)
    grid = grid or (QUICK if quick else FULL)
    if quick:
        layouts = [reduced(lay) for lay in layouts]
    mod = load_template("model.py")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    graphs = device == "cuda"
    timer = _timer(device)
    previous = mod.set_kernels(kernels)
    try:
        in_use = mod.kernels_in_use(device)
        result: dict[str, Any] = {
            "format": FORMAT, "kernels": kernels, "kernels_in_use": in_use, "device": device,
            "dtype": str(dtype).removeprefix("torch."), "quick": quick, "layouts": [lay.name for lay in layouts],
            "settings": {**dataclasses.asdict(grid), "budget_s": budget_s, "graphs": graphs},
            "environment": micro_environment(device, in_use),
            "blocks": [], "points": [], "components": [], "elapsed_s": 0.0, "complete": False}
        # each layout's shell first (cheap), then its single-block models
        blocks_todo = [(lay, s) for lay in layouts for s in (None, *[s for s in BLOCK_KIND if s in lay.pattern])]
        comp_plan = _component_plan(layouts, grid, kernels, device, dtype, mod, timer)
        total = len(comp_plan) + sum(len(_shell_points(lay, grid, graphs) if s is None else
                                         _block_points(s, grid, graphs)) for lay, s in blocks_todo)
        runner = _Runner(device, total, budget_s, progress)

        def save() -> None:
            result["elapsed_s"] = runner.elapsed_s()
            if checkpoint is not None:
                checkpoint(result)

        with torch.no_grad():
            for point, measure, need in comp_plan:
                label = " ".join(str(v) for k, v in point.items() if k not in ("in", "out"))
                result["components"].append(runner.run(point, label, measure, need))
        save()
        for lay, symbol in blocks_todo:
            block, block_points = _run_block(mod, lay, symbol, grid, device, dtype, graphs, runner, timer)
            result["blocks"].append(block)
            result["points"].extend(block_points)
            save()
        if progress:
            progress(runner.done, total, "done")
    finally:
        mod.set_kernels(previous)
    result.update(elapsed_s=runner.elapsed_s(), complete=True)
    return result
