"""`designer export FILE|PRESET [-o DIR] [--force] [--allow-violations] [--rules ...] [--json]`.

Exit codes: 0 written, 1 refused because of rule errors, 2 bad input (unknown layout, target exists, ...).
"""
from __future__ import annotations

import argparse
import sys

from designer.cliutil import EXIT_OK, EXIT_VIOLATIONS, UsageError, emit_json, load_or_fail


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", help="layout YAML, HF config.json, or preset name")
    parser.add_argument("-o", "--output", metavar="DIR", help="export directory (default: exported/NAME)")
    parser.add_argument("--force", action="store_true", help="replace an existing export directory")
    parser.add_argument("--allow-violations", action="store_true",
                        help="export even when the layout has rule errors (they are listed in README.md)")
    parser.add_argument("--rules", action="append", default=None, metavar="SET",
                        help="rule sets / ids to check (default: the layout's own `rules:`)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    from designer.export.model_export import ExportError, ExportRefused, export_layout

    layout = load_or_fail(args.layout)
    rules = [s.strip() for v in args.rules for s in v.split(",") if s.strip()] if args.rules else None
    try:
        result = export_layout(layout, args.output, force=args.force, allow_violations=args.allow_violations,
                               rule_sets=rules)
    except ExportRefused as e:
        if args.json:
            emit_json({"layout": layout.name, "ok": False, "error": str(e), "violations": e.violations})
        else:
            print(f"designer: error: {e}", file=sys.stderr)
        return EXIT_VIOLATIONS
    except ExportError as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"export failed: {e}") from None
    if args.json:
        emit_json({"layout": layout.name, "ok": True, **result.to_dict()})
        return EXIT_OK
    print(f"wrote {result.out_dir}/ ({layout.name}: {result.params:,} parameters, family {result.family})")
    for f in result.files:
        print(f"  {result.out_dir / f}")
    for note in result.notes:
        print(f"  note: {note}")
    n_warn = sum(v["severity"] != "error" for v in result.violations)
    n_err = len(result.violations) - n_warn
    if result.violations:
        print(f"  rules: {n_err} error(s), {n_warn} warning/info finding(s) (listed in README.md)")
    return EXIT_OK
