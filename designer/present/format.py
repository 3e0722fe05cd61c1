"""Unit formatters, the metric rows of the profile and compare tables, and ratios between layouts.

Used by `designer profile`/`compare` (rich tables), the app's Profile and Compare pages and the HTML
report: a metric has one label, one path in `Profile.to_dict()` and one formatter.
"""
from __future__ import annotations

from typing import Any

GIB = 2 ** 30


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


def value_at(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        d = d[key]
    return d


def row_value(d: dict[str, Any], path: tuple[str, ...], fmt: Any) -> str:
    return fmt(value_at(d, path))


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
    """metric path ("latency.ttft_s") -> each layout's value divided by the first layout's."""
    out = {}
    for _, _, path, _ in ROWS:
        base = value_at(profiles[0], path)
        out[".".join(path)] = [ratio(value_at(p, path), base) for p in profiles]
    return out
