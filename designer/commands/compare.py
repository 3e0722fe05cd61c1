"""`designer compare A B C ...`: layouts side by side with ratios against the first; --html writes a
report with plotly charts (designer.present.report, the charts of the app's Compare page). With no layouts: nemotron-h-8b, -47b, -56b.
"""
from __future__ import annotations

import argparse

from designer.cliutil import UsageError, emit_json, load_or_fail
from designer.commands.profile import add_scenario_options, scenario_from_args
from designer.present.format import ROWS, ratios_against_first, row_value, setup_line
from designer.profile.analytic import profile, sweep

DEFAULT_LAYOUTS = ("nemotron-h-8b", "nemotron-h-47b", "nemotron-h-56b")


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layouts", nargs="*", metavar="LAYOUT",
                        help="layout YAMLs, HF config.json files or preset names "
                             f"(default: {' '.join(DEFAULT_LAYOUTS)})")
    add_scenario_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--html", metavar="PATH", help="write an HTML report with plotly charts")


def run(args: argparse.Namespace) -> int:
    refs = args.layouts or list(DEFAULT_LAYOUTS)
    layouts = [load_or_fail(ref) for ref in refs]
    names = [lay.name for lay in layouts]
    if len(set(names)) != len(names):
        raise UsageError(f"the same layout is named twice: {', '.join(names)}")
    scenario = scenario_from_args(args)
    profiles = [profile(lay, args.hardware, scenario).to_dict() for lay in layouts]
    ratios = ratios_against_first(profiles)
    if args.html:
        from designer.present.report import write_report
        sweeps = [sweep(lay, args.hardware, scenario) for lay in layouts]
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
