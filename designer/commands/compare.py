"""`designer compare A B C ...`: layouts side by side with ratios against the first; --html writes a
report with plotly charts (designer.present.report, the charts of the app's Compare page). With no layouts:
the app's default comparison (designer.present.format.COMPARE_LAYOUTS: Nemotron-H 8B / 47B / 56B and
Llama-3.1-8B), and FP8 weights unless --precision says otherwise.

A layout that does not fit at any batch shows "does not fit" in place of its latency and throughput, with
the first change that would fit (designer.present.fits).
"""
from __future__ import annotations

import argparse

from designer.cliutil import UsageError, emit_json, load_or_fail
from designer.commands.profile import add_scenario_options, scenario_from_args
from designer.present.format import (COMPARE_LAYOUTS, COMPARE_PRECISION, ROWS, ratios_against_first, row_value,
                                     setup_line)
from designer.profile.analytic import profile, sweep

DEFAULT_LAYOUTS = COMPARE_LAYOUTS


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layouts", nargs="*", metavar="LAYOUT",
                        help="layout YAMLs, HF config.json files or preset names "
                             f"(default: {' '.join(DEFAULT_LAYOUTS)}, as the app's Compare page)")
    add_scenario_options(parser, precision=COMPARE_PRECISION)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--html", metavar="PATH", help="write an HTML report with plotly charts")


def run(args: argparse.Namespace) -> int:
    if args.html:
        from designer.commands._paths import check_output_file
        check_output_file(args.html, "--html")
    refs = args.layouts or list(DEFAULT_LAYOUTS)
    layouts = [load_or_fail(ref) for ref in refs]
    names = [lay.name for lay in layouts]
    if len(set(names)) != len(names):
        raise UsageError(f"the same layout is named twice: {', '.join(names)}")
    scenario = scenario_from_args(args)
    profiles = [profile(lay, args.hardware, scenario).to_dict() for lay in layouts]
    ratios = ratios_against_first(profiles)
    from designer.present.fits import not_fit_message
    not_fit = {lay.name: not_fit_message(lay, args.hardware, scenario)
               for lay, p in zip(layouts, profiles) if p["throughput"]["max_batch"] == 0}
    if args.html:
        from designer.present.report import write_report
        sweeps = [sweep(lay, args.hardware, scenario) for lay in layouts]
        write_report(args.html, profiles, sweeps, notes=list(not_fit.values()))
    if args.json:
        emit_json({"layouts": names, "hardware": profiles[0]["hardware"], "setup": profiles[0]["setup"],
                   "profiles": profiles, "ratios": ratios, "does_not_fit": not_fit, "html": args.html})
        return 0
    from rich.console import Console

    from designer.present.tables import Row, metric_tables
    console = Console()
    rows = []
    for _, label, path, fmt in ROWS:
        notes = [None if p is profiles[0] or r is None else f"(x{r:.2f})"
                 for p, r in zip(profiles, ratios[".".join(path)])]
        rows.append(Row(label, [row_value(p, path, fmt) for p in profiles], notes))
    title = f"compare — {setup_line(profiles[0])} (ratio against {names[0]})"
    for table in metric_tables(title, "metric", names, rows, console.width):
        console.print(table)
    for message in not_fit.values():
        console.print(f"[yellow]{message}[/yellow]")
    if args.html:
        console.print(f"wrote {args.html}")
    return 0
