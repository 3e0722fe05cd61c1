"""`designer profile FILE|PRESET`: parameters, FLOPs, memory, latency and throughput of one layout.

--json prints the `Profile.to_dict()` document (docs/profiler.md lists its keys); the text form is a
few rich tables. Options shared with `designer compare` are added by `add_profile_options`.
"""
from __future__ import annotations

import argparse
from typing import Any

from designer.cliutil import emit_json, load_or_fail, positive_int
from designer.profile.analytic import DEFAULT_GEN, DEFAULT_HARDWARE, DEFAULT_PROMPT, PREFILL_MODES, profile
from designer.profile.hardware import hardware_names
from designer.profile.memory import DTYPE_BYTES, PRECISIONS

GIB = 2 ** 30


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return value


def add_profile_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hardware", default=DEFAULT_HARDWARE, metavar="NAME",
                        help=f"GPU profile from profiles/hardware/ ({', '.join(hardware_names())}) or a YAML path; "
                             f"default {DEFAULT_HARDWARE}")
    parser.add_argument("--precision", default="bf16", choices=list(PRECISIONS),
                        help="weight/GEMM precision (default bf16)")
    parser.add_argument("--kv-dtype", default=None, choices=list(DTYPE_BYTES),
                        help="KV cache dtype (default: bf16, fp32 for an fp32 model)")
    parser.add_argument("--batch", type=positive_int, default=1, help="concurrent sequences (default 1)")
    parser.add_argument("--prompt", type=positive_int, default=DEFAULT_PROMPT,
                        help=f"prompt tokens (default {DEFAULT_PROMPT}, the Nemotron-H paper's setting)")
    parser.add_argument("--gen", type=positive_int, default=DEFAULT_GEN,
                        help=f"generated tokens (default {DEFAULT_GEN})")
    parser.add_argument("--tp", type=positive_int, default=None, help="tensor-parallel GPUs (default: the layout's)")
    parser.add_argument("--pp", type=positive_int, default=None, help="pipeline stages (default: the layout's)")
    parser.add_argument("--prefill-mode", default="chunked", choices=list(PREFILL_MODES),
                        help="parallel (whole prompt at once), chunked (default) or sequential")
    parser.add_argument("--prefill-chunk", type=positive_int, default=8192, help="tokens per chunked-prefill pass")
    parser.add_argument("--memory-utilization", type=_fraction, default=0.9,
                        help="share of GPU memory the server may fill (default 0.9)")


def profile_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(precision=args.precision, kv_dtype=args.kv_dtype, batch=args.batch, prompt=args.prompt, gen=args.gen,
                tp=args.tp, pp=args.pp, prefill_mode=args.prefill_mode, prefill_chunk=args.prefill_chunk,
                memory_utilization=args.memory_utilization)


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", help="layout YAML, HF config.json, or preset name")
    add_profile_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")


# --------------------------------------------------------------------------------------------------
# Formatting (shared with compare)


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
    s = d["setup"]
    return (f"{d['hardware']}, {s['precision']} weights, KV {s['kv_dtype']}, SSM state {s['state_dtype']}, "
            f"tp {s['tp']} pp {s['pp']}, batch {s['batch']}, prompt {s['prompt']:,} + gen {s['gen']:,}, "
            f"{s['prefill_mode']} prefill")


def run(args: argparse.Namespace) -> int:
    layout = load_or_fail(args.layout)
    d = profile(layout, args.hardware, **profile_kwargs(args)).to_dict()
    if args.json:
        emit_json(d)
        return 0
    from rich.console import Console
    from rich.table import Table
    console = Console()
    table = Table(title=f"{d['layout']} — {setup_line(d)}", show_lines=False)
    table.add_column("section")
    table.add_column("metric")
    table.add_column("value", justify="right")
    last = None
    for section, label, path, fmt in ROWS:
        table.add_row(section if section != last else "", label, row_value(d, path, fmt))
        last = section
    console.print(table)
    kinds = Table(title="parameters by block kind")
    kinds.add_column("kind")
    kinds.add_column("blocks", justify="right")
    kinds.add_column("parameters", justify="right")
    from designer.layout import KIND_TO_SYMBOL
    for kind, n in d["params"]["by_kind"].items():
        kinds.add_row(kind, str(layout.count(KIND_TO_SYMBOL[kind])), fmt_count(n))
    console.print(kinds)
    if not d["memory"]["fits"]:
        console.print(f"[yellow]does not fit: {fmt_bytes(d['memory']['total_bytes'])} needed, "
                      f"{fmt_bytes(d['memory']['capacity_bytes'])} usable per GPU[/yellow]")
    for line in d["assumptions"]:
        console.print(f"[dim]- {line}[/dim]")
    return 0
