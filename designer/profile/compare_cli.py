"""`designer compare A B C ...`: layouts side by side with ratios against the first; --html writes a
report with plotly charts (designer.profile.report). With no layouts: nemotron-h-8b, -47b, -56b.
"""
from __future__ import annotations

import argparse
from typing import Any

from designer.cliutil import UsageError, emit_json, load_or_fail
from designer.profile.analytic import profile, sweep
from designer.profile.cli import ROWS, add_profile_options, profile_kwargs, row_value, setup_line, value_at

DEFAULT_LAYOUTS = ("nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b")


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layouts", nargs="*", metavar="LAYOUT",
                        help="layout YAMLs, HF config.json files or preset names "
                             f"(default: {' '.join(DEFAULT_LAYOUTS)})")
    add_profile_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--html", metavar="PATH", help="write an HTML report with plotly charts")


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


def run(args: argparse.Namespace) -> int:
    refs = args.layouts or list(DEFAULT_LAYOUTS)
    layouts = [load_or_fail(ref) for ref in refs]
    names = [lay.name for lay in layouts]
    if len(set(names)) != len(names):
        raise UsageError(f"the same layout is named twice: {', '.join(names)}")
    kwargs = profile_kwargs(args)
    profiles = [profile(lay, args.hardware, **kwargs).to_dict() for lay in layouts]
    ratios = ratios_against_first(profiles)
    if args.html:
        from designer.profile.report import write_report
        sweeps = [sweep(lay, args.hardware, **kwargs) for lay in layouts]
        write_report(args.html, profiles, sweeps)
    if args.json:
        emit_json({"layouts": names, "hardware": profiles[0]["hardware"], "setup": profiles[0]["setup"],
                   "profiles": profiles, "ratios": ratios, "html": args.html})
        return 0
    from rich.console import Console
    from rich.table import Table
    console = Console()
    table = Table(title=f"compare — {setup_line(profiles[0])} (ratio against {names[0]})")
    table.add_column("metric")
    for name in names:
        table.add_column(name, justify="right")
    for _, label, path, fmt in ROWS:
        cells = []
        for p, r in zip(profiles, ratios[".".join(path)]):
            text = row_value(p, path, fmt)
            cells.append(text if p is profiles[0] or r is None else f"{text} (x{r:.2f})")
        table.add_row(label, *cells)
    console.print(table)
    if args.html:
        console.print(f"wrote {args.html}")
    return 0
