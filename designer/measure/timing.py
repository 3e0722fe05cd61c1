"""Whole-model timing: the exported model (random weights; bf16 on CUDA, fp32 on the CPU) timed at a grid
of prompt / context / batch points, beside the analytic profiler's prediction (`designer measure --device`).

TTFT: one prefill of `batch` prompts of `prompt` tokens into a fresh cache, logits of the last position
(what `Roofline.prefill_s` predicts). TPOT: one decode step of `batch` sequences whose cache already holds
`context` tokens (`Roofline.tpot_s(batch, context)`). The cache is not prefilled: its position is set to
`context` over zero-filled tensors, since attending over zeros costs what attending over real keys costs and a
batch of 64 long prompts would take minutes to prefill. On CUDA the step is a captured CUDA graph (what
`generate()` serves with; `measured_eager_s` beside it), on the CPU eager. Peak memory (CUDA) is
torch.cuda.max_memory_allocated over the point beside `Roofline.memory`; for a prefill over its timed runs
only (after the warm-up, whose first call may run an autotuner's trial buffers: fla-core's on a new shape).
The prediction is for the same backend (`Scenario(kernels=...)`) and one prefill pass of the whole batch
(prefill_mode "parallel", as the model runs it). Points whose predicted memory exceeds the free GPU memory are listed under "skipped". Each
point: the median of `iters` runs after `warmup` runs, synchronised on CUDA. error = (predicted - measured) / measured.

Predictions are for `hardware` (a GPU profile); on the CPU they are printed for the structure only, not
as a claim (the CPU is not a profiled device).
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from designer.export.model_export import model_args
from designer.export.template import load_template
from designer.layout import Layout, atomic_write_text, layout_to_dict
from designer.measure import error_summary, measured_path, relative_error
from designer.profile.analytic import prepare

KERNELS = ("torch", "triton")
DEVICES = ("cuda", "cpu")
# (prompts, contexts, batches): CUDA is the held-out grid (trimmed to what one run does in minutes)
GRIDS = {"cuda": ((1024, 4096, 16384), (4096, 16384), (1, 16)),
         "cpu": ((8, 16), (16,), (1, 2))}
# TTFT points above this many prompt tokens in one batch are skipped (the torch SSD path's chunk tensors grow
# with batch x prompt); TPOT contexts are prefilled one sequence at a time, so they are not limited
MAX_PREFILL_TOKENS = {"cuda": 65536, "cpu": 1 << 30}


class MeasureError(ValueError):
    """A device or backend that cannot run here (the CLI's exit 2)."""


def check_device(device: str, kernels: str) -> None:
    if device not in DEVICES:
        raise MeasureError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
    if kernels not in KERNELS:
        raise MeasureError(f"unknown kernel backend {kernels!r}; allowed: {', '.join(KERNELS)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise MeasureError("--device cuda: no CUDA device is available here (torch "
                           f"{torch.__version__}, cuda {torch.version.cuda}); use --device cpu")
    if device == "cuda" and kernels == "triton":
        mod = load_template("model.py")
        if mod.triton is None or mod.fla_kernels() is None:
            raise MeasureError("--kernels triton needs triton and fla-core on CUDA (pip install fla-core); "
                               "or use --kernels torch")


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_s(fn, device: str, warmup: int, iters: int) -> float:
    """Median seconds of `iters` calls of `fn` after `warmup` calls, synchronised on CUDA."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _room(device: str, predicted_bytes: float) -> bool:
    """Whether a point predicted to need `predicted_bytes` can run (CUDA: below 95% of the free memory)."""
    if device != "cuda":
        return True
    free, _total = torch.cuda.mem_get_info()
    return predicted_bytes < 0.95 * free + torch.cuda.memory_allocated()


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _free(device: str) -> None:
    if device == "cuda":
        torch.cuda.empty_cache()


def _peak(device: str, predicted_bytes: float) -> dict[str, Any]:
    """Peak allocated bytes of the point beside the predicted total (weights, caches, workspace)."""
    if device != "cuda":
        return {"predicted_peak_bytes": predicted_bytes}
    measured = torch.cuda.max_memory_allocated()
    return {"predicted_peak_bytes": predicted_bytes, "measured_peak_bytes": measured,
            "peak_error": relative_error(predicted_bytes, measured)}


def measure_timing(layout: Layout, *, device: str = "cpu", kernels: str = "torch", hardware: str = "h200",
                   prompts: tuple[int, ...] | None = None, contexts: tuple[int, ...] | None = None,
                   batches: tuple[int, ...] | None = None, warmup: int = 1, iters: int = 3,
                   decode_steps: int = 3) -> dict[str, Any]:
    """{"layout", "layout_spec" (the layout itself: a file reads back without its YAML), "device", "kernels",
    "kernels_in_use", "dtype", "hardware", "precision", "grid", "points":
    [{"metric": "ttft"|"tpot", "batch", "prompt"|"context", "predicted_s", "measured_s", "error"}],
    "summary": {"median_abs_error", "max_abs_error"}, "environment"}."""
    check_device(device, kernels)
    default = GRIDS[device]
    prompts, contexts, batches = prompts or default[0], contexts or default[1], batches or default[2]
    mod = load_template("model.py")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    precision = "bf16" if device == "cuda" else "fp32"
    roof = prepare(layout, hardware, precision=precision, tp=1, pp=1, kernels=kernels, prefill_mode="parallel")
    previous = mod.set_kernels(kernels)
    points: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    try:
        torch.manual_seed(0)
        model = mod.build_model(args=model_args(layout), device=device, dtype=dtype).eval()
        in_use = mod.kernels_in_use(device)
        vocab = layout.vocab_size
        with torch.no_grad():
            for batch in batches:
                for prompt in prompts:
                    if batch * prompt > MAX_PREFILL_TOKENS[device]:
                        skipped.append({"metric": "ttft", "batch": batch, "prompt": prompt,
                                        "reason": f"over {MAX_PREFILL_TOKENS[device]} prompt tokens"})
                        continue
                    predicted_bytes = roof.memory(batch, prompt + 1, prompt=prompt).total_bytes
                    if not _room(device, predicted_bytes):
                        skipped.append({"metric": "ttft", "batch": batch, "prompt": prompt,
                                        "reason": f"predicted {predicted_bytes / 2**30:.1f} GiB does not fit"})
                        continue
                    ids = torch.randint(0, vocab, (batch, prompt), device=device)

                    def prefill():
                        cache = model.new_cache(batch, prompt + 1)
                        return model(ids, cache=cache, logits_to_keep=1)

                    for _ in range(warmup):      # first calls: compiles, and autotuners' trial buffers
                        prefill()
                    _reset_peak(device)          # so the peak is a steady-state prefill's
                    measured = median_s(prefill, device, 0, iters)
                    predicted = roof.prefill_s(batch, prompt)
                    points.append({"metric": "ttft", "batch": batch, "prompt": prompt, "predicted_s": predicted,
                                   "measured_s": measured, "error": relative_error(predicted, measured),
                                   **_peak(device, predicted_bytes)})
                    del ids
                for context in contexts:
                    steps = warmup + max(iters, decode_steps)
                    predicted_bytes = roof.memory(batch, context + steps + 1, prompt=1).total_bytes
                    if not _room(device, predicted_bytes):
                        skipped.append({"metric": "tpot", "batch": batch, "context": context,
                                        "reason": f"predicted {predicted_bytes / 2**30:.1f} GiB does not fit"})
                        continue
                    _reset_peak(device)
                    cache = model.new_cache(batch, mod.aligned_cache_len(context + 2 * steps + 8))
                    nxt = torch.randint(0, vocab, (batch, 1), device=device)
                    graph = mod.DecodeGraph(model, cache) if device == "cuda" else None

                    def at_context():
                        cache.seq_len = context
                        cache.position.fill_(context)

                    at_context()
                    eager = median_s(lambda: model(nxt, cache=cache), device, warmup, steps - warmup)
                    measured = eager
                    if graph is not None:
                        at_context()
                        measured = median_s(lambda: graph(nxt), device, warmup, steps - warmup)
                    predicted = roof.tpot_s(batch, context)
                    points.append({"metric": "tpot", "batch": batch, "context": context, "predicted_s": predicted,
                                   "measured_s": measured, "measured_eager_s": eager,
                                   "decode": "cuda graph" if graph is not None else "eager",
                                   "error": relative_error(predicted, measured), **_peak(device, predicted_bytes)})
                    del graph, cache
                    _free(device)
    finally:
        mod.set_kernels(previous)
    return {"layout": layout.name, "layout_spec": layout_to_dict(layout), "device": device, "kernels": kernels,
            "kernels_in_use": in_use, "dtype": str(dtype).removeprefix("torch."), "hardware": hardware, "precision": precision,
            "grid": {"prompts": list(prompts), "contexts": list(contexts), "batches": list(batches),
                     "warmup": warmup, "iters": iters, "decode_steps": decode_steps},
            "points": points, "skipped": skipped,
            "summary": error_summary([p["error"] for p in points]),
            "environment": environment(device),
            "note": None if device == "cuda" else
            f"predictions are for the {hardware} profile; CPU times only check the pipeline"}


def environment(device: str) -> dict[str, Any]:
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if device == "cuda":
        env.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda)
    return env


def default_save_path(result: dict[str, Any]) -> Path:
    """Where `--save` writes: bench/results/measured/LAYOUT_DEVICE_KERNELS.json (read by the app later)."""
    return measured_path(result["layout"], result["kernels"], device=result["device"])


def save(result: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps(result, indent=1) + "\n")
    return path
