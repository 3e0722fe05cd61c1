"""Measure the achieved fractions of a GPU's datasheet peaks that the analytic profiler's `efficiency`
block uses: large bf16/fp8 GEMMs, skinny decode GEMMs (memory-bound), device-to-device copy, flash
attention prefill, decode attention over a long KV cache, and the fixed cost of one small kernel launch.

Needs torch and CUDA. `calibrate()` runs them all; bench/gpu_calibrate.py is the script that writes the
JSON (bench/results/gpu_calibration_h100.json). Peaks default to the H100 SXM datasheet (989 TFLOP/s bf16
dense, 1979 fp8, 3.35 TB/s HBM3).
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F


def bench(fn, *, warmup: int = 5, iters: int = 30) -> float:
    """Median seconds per call, timed with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def gemm(m: int, n: int, k: int, dtype=torch.bfloat16) -> dict:
    sets = [(torch.randn(m, k, device="cuda", dtype=dtype), torch.randn(k, n, device="cuda", dtype=dtype))
            for _ in range(3)]
    i = [0]

    def run():
        a, b = sets[i[0] % 3]
        i[0] += 1
        return a @ b

    t = bench(run)
    flops = 2 * m * n * k
    bytes_ = (m * k + k * n + m * n) * torch.finfo(dtype).bits // 8
    return {"m": m, "n": n, "k": k, "s": t, "tflops": flops / t / 1e12, "tb_per_s": bytes_ / t / 1e12}


def gemm_fp8(m: int, n: int, k: int) -> dict | None:
    if not hasattr(torch, "_scaled_mm") or not hasattr(torch, "float8_e4m3fn"):
        return None
    a = torch.randn(m, k, device="cuda").to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device="cuda").to(torch.float8_e4m3fn).t()
    one = torch.tensor(1.0, device="cuda")
    try:
        t = bench(lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
    except Exception as e:  # noqa: BLE001 - report, don't die: fp8 support varies by build
        return {"error": f"{type(e).__name__}: {e}"[:200]}
    return {"m": m, "n": n, "k": k, "s": t, "tflops": 2 * m * n * k / t / 1e12}


def copy_bandwidth(gib: float = 4.0) -> dict:
    n = int(gib * 2**30) // 2
    src = torch.randn(n, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    t = bench(lambda: dst.copy_(src), iters=20)
    return {"bytes_moved": 2 * src.numel() * 2, "s": t, "tb_per_s": 2 * src.numel() * 2 / t / 1e12}


def attention_prefill(t_len: int = 8192, heads: int = 32, kv_heads: int = 8, d: int = 128) -> dict:
    q = torch.randn(1, heads, t_len, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, heads, t_len, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    t = bench(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), iters=20)
    flops = 4 * heads * d * t_len * t_len / 2   # QK^T and PV, causal half
    return {"tokens": t_len, "heads": heads, "head_dim": d, "s": t, "tflops": flops / t / 1e12}


def attention_decode(batch: int = 16, ctx: int = 32768, heads: int = 32, kv_heads: int = 8, d: int = 128) -> dict:
    q = torch.randn(batch, heads, 1, d, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(batch, kv_heads, ctx, d, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)

    def run():
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

    t = bench(run, iters=20)
    kv_bytes = 2 * k.numel() * 2
    return {"batch": batch, "context": ctx, "s": t, "kv_bytes": kv_bytes, "tb_per_s": kv_bytes / t / 1e12}


def capture_graph(fn) -> torch.cuda.CUDAGraph:
    """One CUDA graph of `fn`, after a warm-up run on a side stream (as capture requires and the exported
    model's DecodeGraph does); replay() runs it."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def launch_overhead() -> dict:
    x = torch.randn(1024, device="cuda")
    n = 2000
    for _ in range(50):
        x.add_(1.0)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        x.add_(1.0)
    torch.cuda.synchronize()
    eager = (time.perf_counter() - t0) / n
    return {"eager_small_kernel_s": eager}


def calibrate(peak_bf16_tflops: float = 989.0, peak_fp8_tflops: float = 1979.0,
              peak_hbm_tb_per_s: float = 3.35) -> dict:
    """Every measurement above on GPU 0, and the `efficiency` fractions of a hardware profile they give
    (achieved / datasheet peak; the defaults are the H100 SXM's: 989 TFLOP/s bf16 dense, 1979 fp8, 3.35 TB/s)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    dev = torch.cuda.get_device_properties(0)
    res: dict = {"device": dev.name, "torch": torch.__version__, "memory_bytes": dev.total_memory,
                 "peaks": {"bf16_tflops": peak_bf16_tflops, "fp8_tflops": peak_fp8_tflops,
                           "hbm_tb_per_s": peak_hbm_tb_per_s}}
    res["gemm_bf16_large"] = [gemm(8192, 8192, 8192), gemm(16384, 4096, 4096), gemm(4096, 21504, 4096)]
    res["gemm_bf16_decode"] = [gemm(m, 21504, 4096) for m in (1, 8, 32, 128, 256)]
    res["gemm_fp8_large"] = gemm_fp8(8192, 8192, 8192)
    res["copy"] = copy_bandwidth()
    res["attention_prefill"] = attention_prefill()
    res["attention_decode"] = attention_decode()
    res["launch"] = launch_overhead()
    best_bf16 = max(g["tflops"] for g in res["gemm_bf16_large"])
    decode_bw = max(g["tb_per_s"] for g in res["gemm_bf16_decode"])
    fp8 = res["gemm_fp8_large"]
    res["efficiency"] = {
        "gemm": best_bf16 / peak_bf16_tflops,
        "gemm_fp8": (fp8["tflops"] / peak_fp8_tflops) if fp8 and "tflops" in fp8 else None,
        "memory": res["copy"]["tb_per_s"] / peak_hbm_tb_per_s,
        "decode_gemm_memory": decode_bw / peak_hbm_tb_per_s,
        "attention": res["attention_prefill"]["tflops"] / peak_bf16_tflops,
        "attention_decode_memory": res["attention_decode"]["tb_per_s"] / peak_hbm_tb_per_s,
        "kernel_overhead_s": res["launch"]["eager_small_kernel_s"],
    }
    return res
