"""`designer fix FILE -o OUT`: apply the minimal fixes one at a time, re-validate, report each change."""
from __future__ import annotations

import argparse

from designer.cliutil import EXIT_OK, EXIT_VIOLATIONS, emit_json, load_or_fail
from designer.commands.validate import add_rules_option, check_rules, print_violations
from designer.layout import LayoutError, save_layout
from designer.rules import has_errors


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", help="layout YAML, HF config.json, or preset name")
    parser.add_argument("-o", "--output", required=True, help="where to write the fixed layout YAML")
    add_rules_option(parser)
    parser.add_argument("--errors-only", action="store_true", help="fix errors only, leave warnings")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def unapplied_fixes(layout, remaining) -> list[dict[str, str]]:
    """Fixes that were left out because their result would not be a valid layout, and why (e.g. NH001 would
    insert a Mamba layer into a layout with no `mamba:` block)."""
    out = []
    for v in remaining:
        if v.fix is None:
            continue
        try:
            v.fix.apply(layout)
        except LayoutError as e:
            out.append({"rule": v.rule, "fix": v.fix.description, "reason": e.message + "; add the block to the file "
                        "(or edit in the app, which adds default sizes) and run fix again"})
    return out


def run(args: argparse.Namespace) -> int:
    from designer.commands._paths import check_output_file
    check_output_file(args.output, "-o")
    layout = load_or_fail(args.layout)
    severities = ("error",) if args.errors_only else ("error", "warning")
    fixed, changes, remaining = check_rules(layout, args, fix=True, severities=severities)
    save_layout(fixed, args.output)
    not_applied = unapplied_fixes(fixed, remaining)
    if args.json:
        emit_json({"layout": layout.name, "output": args.output, "pattern_before": layout.pattern,
                   "pattern_after": fixed.pattern, "changes": changes, "ok": not has_errors(remaining),
                   "not_applied": not_applied, "violations": [v.to_dict() for v in remaining]})
    else:
        from rich.console import Console
        console = Console()
        if changes:
            for c in changes:
                console.print(f"[green]fixed[/] {c}")
            console.print(f"pattern: {layout.pattern}\n     ->  {fixed.pattern}")
        else:
            console.print("nothing to fix automatically")
        for n in not_applied:
            console.print(f"[yellow]not applied[/] {n['rule']} ({n['fix']}): {n['reason']}", soft_wrap=True)
        console.print(f"wrote {args.output}")
        print_violations(fixed, remaining)
    return EXIT_VIOLATIONS if has_errors(remaining) else EXIT_OK
