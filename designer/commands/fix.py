"""`designer fix FILE -o OUT`: apply the minimal fixes one at a time, re-validate, report each change."""
from __future__ import annotations

import argparse

from designer.cliutil import EXIT_OK, EXIT_VIOLATIONS, emit_json, load_or_fail
from designer.commands.validate import add_rules_option, parse_rules, print_violations
from designer.layout import save_layout
from designer.rules import fix_all, has_errors


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", help="layout YAML, HF config.json, or preset name")
    parser.add_argument("-o", "--output", required=True, help="where to write the fixed layout YAML")
    add_rules_option(parser)
    parser.add_argument("--errors-only", action="store_true", help="fix errors only, leave warnings")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    layout = load_or_fail(args.layout)
    severities = ("error",) if args.errors_only else ("error", "warning")
    fixed, changes, remaining = fix_all(layout, parse_rules(args.rules), severities=severities)
    save_layout(fixed, args.output)
    if args.json:
        emit_json({"layout": layout.name, "output": args.output, "pattern_before": layout.pattern,
                   "pattern_after": fixed.pattern, "changes": changes, "ok": not has_errors(remaining),
                   "violations": [v.to_dict() for v in remaining]})
    else:
        from rich.console import Console
        console = Console()
        if changes:
            for c in changes:
                console.print(f"[green]fixed[/] {c}")
            console.print(f"pattern: {layout.pattern}\n     ->  {fixed.pattern}")
        else:
            console.print("nothing to fix automatically")
        console.print(f"wrote {args.output}")
        print_violations(fixed, remaining)
    return EXIT_VIOLATIONS if has_errors(remaining) else EXIT_OK
