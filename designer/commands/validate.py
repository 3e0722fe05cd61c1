"""`designer validate FILE|PRESET [--rules ...] [--json]`: exit 0 no errors, 1 errors, 2 bad input."""
from __future__ import annotations

import argparse

from designer.cliutil import EXIT_OK, EXIT_VIOLATIONS, emit_json, load_or_fail
from designer.layout import LayoutError
from designer.rules import check, has_errors, violations_to_json

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def add_rules_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rules", action="append", default=None, metavar="SET",
                        help="rule sets, ids or id prefixes (comma-separated or repeated): nemotron-h, NH003, NH; "
                             "default: the layout's own `rules:`; structural and constraints are always on")


def parse_rules(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", help="layout YAML, HF config.json, or preset name")
    add_rules_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def print_violations(layout, violations) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console()
    if not violations:
        console.print(f"[green]{layout.name}: ok[/] ({layout.num_layers} layers, no violations)")
        return
    table = Table(title=f"{layout.name}: {len(violations)} finding(s)", show_lines=False)
    for col in ("rule", "severity", "layer", "message", "fix"):
        table.add_column(col, overflow="fold")
    for v in violations:
        table.add_row(v.rule, f"[{SEVERITY_STYLE[v.severity]}]{v.severity}[/]",
                      "-" if v.layer is None else str(v.layer), v.message, v.fix.description if v.fix else "")
    console.print(table)
    n_err = sum(v.severity == "error" for v in violations)
    console.print(f"[{'red' if n_err else 'green'}]{n_err} error(s)[/], "
                  f"{sum(v.severity == 'warning' for v in violations)} warning(s)")


def check_rules(layout, args: argparse.Namespace, **kw):
    """`check` (or, with fix=True, `fix_all`) under `--rules` or the layout's own `rules:`; an unknown rule set
    is reported against the file it is named in (or against --rules)."""
    from designer.rules import fix_all
    fix = kw.pop("fix", False)
    try:
        return (fix_all if fix else check)(layout, parse_rules(args.rules), **kw)
    except LayoutError as e:
        raise e.at(None if args.rules else args.layout) from None


def run(args: argparse.Namespace) -> int:
    layout = load_or_fail(args.layout)
    violations = check_rules(layout, args)
    if args.json:
        emit_json(violations_to_json(layout, violations))
    else:
        print_violations(layout, violations)
    return EXIT_VIOLATIONS if has_errors(violations) else EXIT_OK
