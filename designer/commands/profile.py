"""`designer profile FILE|PRESET`: parameters, FLOPs, memory, latency and throughput of one layout.

--json prints the `Profile.to_dict()` document (docs/profiler.md lists its keys); the text form is a
few rich tables (rows and formatters from designer.present.format). The serving options, shared with
`designer compare`, are added by `add_scenario_options` and read back as one `Scenario` by `scenario_from_args`.
"""
from __future__ import annotations

import argparse

from designer.cliutil import emit_json, load_or_fail, positive_int
from designer.layout import KIND_TO_SYMBOL
from designer.present.format import ROWS, fmt_bytes, fmt_count, row_value, setup_line
from designer.profile.analytic import DEFAULT_HARDWARE, profile
from designer.profile.hardware import DEFAULT_KERNELS, KERNEL_BACKENDS, hardware_names
from designer.profile.memory import DTYPE_BYTES, PRECISIONS
from designer.profile.scenario import PREFILL_MODES, Scenario

DEFAULT = Scenario()


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return value


def add_scenario_options(parser: argparse.ArgumentParser, *, precision: str | None = None) -> None:
    """--hardware and one option per Scenario field (their defaults are Scenario's, except `precision` when
    given)."""
    d = DEFAULT if precision is None else DEFAULT.replace(precision=precision)
    parser.add_argument("--hardware", default=DEFAULT_HARDWARE, metavar="NAME",
                        help=f"GPU profile from profiles/hardware/ ({', '.join(hardware_names())}) or a YAML path; "
                             f"default {DEFAULT_HARDWARE}")
    parser.add_argument("--precision", default=d.precision, choices=list(PRECISIONS),
                        help=f"weight/GEMM precision (default {d.precision})")
    parser.add_argument("--kv-dtype", default=d.kv_dtype, choices=list(DTYPE_BYTES),
                        help="KV cache dtype (default: bf16, fp32 for an fp32 model)")
    parser.add_argument("--state-dtype", default=d.state_dtype, choices=list(DTYPE_BYTES),
                        help=f"SSM recurrent state dtype (default {d.state_dtype})")
    parser.add_argument("--batch", type=positive_int, default=d.batch, help=f"concurrent sequences (default {d.batch})")
    parser.add_argument("--prompt", type=positive_int, default=d.prompt,
                        help=f"prompt tokens (default {d.prompt}, the Nemotron-H paper's setting)")
    parser.add_argument("--gen", type=positive_int, default=d.gen, help=f"generated tokens (default {d.gen})")
    parser.add_argument("--tp", type=positive_int, default=d.tp, help="tensor-parallel GPUs (default: the layout's)")
    parser.add_argument("--pp", type=positive_int, default=d.pp, help="pipeline stages (default: the layout's)")
    parser.add_argument("--prefill-mode", default=d.prefill_mode, choices=list(PREFILL_MODES),
                        help="parallel (whole prompt at once), chunked (default) or sequential")
    parser.add_argument("--prefill-chunk", type=positive_int, default=d.prefill_chunk,
                        help=f"tokens per chunked-prefill pass (default {d.prefill_chunk})")
    parser.add_argument("--memory-utilization", type=_fraction, default=d.memory_utilization,
                        help=f"share of GPU memory the server may fill (default {d.memory_utilization:g})")
    parser.add_argument("--kernels", default=d.kernels, choices=list(KERNEL_BACKENDS),
                        help="kernel backend of the exported model whose efficiency terms the roofline uses: "
                             f"torch (plain PyTorch) or triton (fla-core); default {DEFAULT_KERNELS} (the "
                             "hardware profile's kernels.triton block, or its general efficiency)")


def scenario_from_args(args: argparse.Namespace) -> Scenario:
    """The Scenario the options of `add_scenario_options` describe."""
    return Scenario(**{name: getattr(args, name) for name in Scenario.fields()})


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", help="layout YAML, HF config.json, or preset name")
    add_scenario_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    layout = load_or_fail(args.layout)
    d = profile(layout, args.hardware, scenario_from_args(args)).to_dict()
    if args.json:
        emit_json(d)
        return 0
    from rich.console import Console
    from rich.table import Table

    from designer.present.tables import Row, metric_tables
    console = Console()
    rows = [Row(label, [row_value(d, path, fmt)], [None]) for _, label, path, fmt in ROWS]
    for table in metric_tables(f"{d['layout']} — {setup_line(d)}", "metric", ["value"], rows, console.width):
        console.print(table)
    kinds = Table(title="parameters by block kind")
    kinds.add_column("kind")
    kinds.add_column("blocks", justify="right")
    kinds.add_column("parameters", justify="right")
    for kind, n in d["params"]["by_kind"].items():
        kinds.add_row(kind, str(layout.count(KIND_TO_SYMBOL[kind])), fmt_count(n))
    console.print(kinds)
    if not d["memory"]["fits"]:
        console.print(f"[yellow]does not fit: {fmt_bytes(d['memory']['total_bytes'])} needed, "
                      f"{fmt_bytes(d['memory']['capacity_bytes'])} usable per GPU[/yellow]", soft_wrap=False)
        if d["throughput"]["max_batch"] == 0:
            from designer.present.fits import not_fit_message
            console.print(f"[yellow]{not_fit_message(layout, args.hardware, scenario_from_args(args))}[/yellow]")
    for line in d["assumptions"]:
        console.print(f"[dim]- {line}[/dim]")
    return 0
