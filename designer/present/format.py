"""Unit formatters, the metric rows of the profile and compare tables, and ratios between layouts.

Used by `designer profile`/`compare` (rich tables), the app's Profile and Compare pages and the HTML
report: a metric has one label, one path in `Profile.to_dict()` and one formatter.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from designer.layout import Layout

GIB = 2 ** 30

# The one default comparison: `designer compare` with no layouts and the app's Compare page. Nemotron-H
# 8B / 47B / 56B with Llama-3.1-8B as the Transformer reference, FP8 weights (the Nemotron-H paper's 47B/56B
# throughput figures use FP8 weights; in BF16 neither 47B nor 56B fits one 80 GB H100).
COMPARE_LAYOUTS = ("nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b", "llama-3.1-8b")
COMPARE_PRECISION = "fp8"

# Blocks vs layers: a pattern symbol is one pre-norm residual block (what Nemotron-H and Megatron-LM call a
# layer); a Transformer paper's layer is a mixer with its FFN (Llama-3.1-8B: 64 blocks, 32 layers).
MIXERS, FFNS = "M*", "-E"


def conventional_layers(pattern: str) -> int:
    """Layers as a Transformer paper counts them: a mixer (M or *) together with the FFN (- or E) right after
    it is one layer; a mixer without an FFN after it, or an FFN without a mixer before it, is one too.
    Llama-3.1-8B's 64 blocks (*-) are its 32 layers; a pure Mamba stack counts every block."""
    n = i = 0
    while i < len(pattern):
        i += 2 if pattern[i] in MIXERS and pattern[i + 1:i + 2] in tuple(FFNS) else 1
        n += 1
    return n


def blocks_and_layers(layout: "Layout") -> str:
    """'52 blocks · 28 layers' (one figure when they agree)."""
    blocks, layers = layout.num_layers, conventional_layers(layout.pattern)
    return f"{blocks} blocks" if blocks == layers else f"{blocks} blocks · {layers} layers"


def fmt_count(n: float) -> str:
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f}"


def fmt_flops(n: float) -> str:
    for div, unit in ((1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1e6, "MFLOP")):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f} FLOP"


def fmt_bytes(n: float) -> str:
    for div, unit in ((GIB, "GiB"), (2 ** 20, "MiB"), (2 ** 10, "KiB")):
        if abs(n) >= div:
            return f"{n / div:.2f} {unit}"
    return f"{n:.0f} B"


def fmt_seconds(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.2f} ms"


def fmt_context(n: int | None) -> str:
    return "unbounded" if n is None else f"{n:,}"


# (section, label, path in the profile dict, formatter); the rows of both the profile and compare tables
ROWS: list[tuple[str, str, tuple[str, ...], Any]] = [
    ("params", "parameters", ("params", "total"), fmt_count),
    ("params", "active parameters", ("params", "active"), fmt_count),
    ("params", "embedding table", ("params", "embedding"), fmt_count),
    ("flops", "prefill FLOPs (one prompt)", ("flops", "prefill"), fmt_flops),
    ("flops", "decode FLOPs / token", ("flops", "decode_per_token"), fmt_flops),
    ("flops", "training FLOPs / token", ("flops", "train_per_token"), fmt_flops),
    ("flops", "training FLOPs / token, full recompute", ("flops", "train_per_token_full_recompute"), fmt_flops),
    ("memory", "weights (per GPU)", ("memory", "weights_bytes"), fmt_bytes),
    ("memory", "KV cache / token", ("memory", "kv_cache_bytes_per_token"), fmt_bytes),
    ("memory", "SSM state / sequence", ("memory", "ssm_state_bytes_per_sequence"), fmt_bytes),
    ("memory", "conv state / sequence", ("memory", "conv_state_bytes_per_sequence"), fmt_bytes),
    ("memory", "total at batch, prompt + gen (per GPU)", ("memory", "total_bytes"), fmt_bytes),
    ("memory", "fits in usable memory", ("memory", "fits"), lambda v: "yes" if v else "no"),
    ("latency", "TTFT", ("latency", "ttft_s"), fmt_seconds),
    ("latency", "TPOT (mean)", ("latency", "tpot_s"), fmt_seconds),
    ("latency", "end-to-end", ("latency", "e2e_s"), fmt_seconds),
    ("throughput", "output tokens/s", ("throughput", "output_tokens_per_s"), lambda v: f"{v:,.1f}"),
    ("throughput", "max batch at prompt + gen", ("throughput", "max_batch"), lambda v: f"{v:,}"),
    ("throughput", "output tokens/s/GPU at max batch", ("throughput", "max_batch_output_tokens_per_s_per_gpu"),
     lambda v: f"{v:,.1f}"),
    ("throughput", "longest context at batch 1", ("throughput", "max_context_tokens"), fmt_context),
]


DOES_NOT_FIT = "does not fit"
# rows that describe serving at the chosen batch: meaningless when that batch does not fit in memory
AT_BATCH = {("latency", "ttft_s"), ("latency", "tpot_s"), ("latency", "e2e_s"), ("throughput", "output_tokens_per_s")}
# rows that describe the largest batch (or context) that fits: meaningless when not one sequence fits
AT_MAX_BATCH = {("throughput", "max_batch"), ("throughput", "max_batch_output_tokens_per_s_per_gpu"),
                ("throughput", "max_context_tokens")}


def value_at(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        d = d[key]
    return d


def fits(d: dict[str, Any], path: tuple[str, ...]) -> bool:
    """False when the row at `path` describes a set-up that does not fit in memory (so it has no number)."""
    if tuple(path) in AT_BATCH:
        return bool(d["memory"]["fits"])
    if tuple(path) in AT_MAX_BATCH:
        return d["throughput"]["max_batch"] > 0
    return True


def shown_value(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path`, or None where the set-up does not fit (see `fits`)."""
    return value_at(d, path) if fits(d, path) else None


def row_value(d: dict[str, Any], path: tuple[str, ...], fmt: Any) -> str:
    """The formatted value, or "does not fit" in place of a latency or throughput that has no meaning."""
    return fmt(value_at(d, path)) if fits(d, path) else DOES_NOT_FIT


def setup_line(d: dict[str, Any]) -> str:
    """One line naming the hardware and serving scenario of a profile dict."""
    s = d["setup"]
    return (f"{d['hardware']}, {s['precision']} weights, KV {s['kv_dtype']}, SSM state {s['state_dtype']}, "
            f"tp {s['tp']} pp {s['pp']}, batch {s['batch']}, prompt {s['prompt']:,} + gen {s['gen']:,}, "
            f"{s['prefill_mode']} prefill")


def ratio(value: Any, base: Any) -> float | None:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (value, base))
    if not numbers or base == 0:
        return None
    return value / base


def ratios_against_first(profiles: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """metric path ("latency.ttft_s") -> each layout's value divided by the first layout's (None where either
    does not fit)."""
    out = {}
    for _, _, path, _ in ROWS:
        base = shown_value(profiles[0], path)
        out[".".join(path)] = [ratio(shown_value(p, path), base) for p in profiles]
    return out
