"""`designer export FILE|PRESET [-o DIR] [--force] [--allow-violations] [--rules ...] [--json]
[--proxy-hidden N] [--proxy-layers N | --proxy-scale S] [--proxy-task T] [--proxy-steps N] [--proxy-seq-len N]`.

Exit codes: 0 written, 1 refused because of rule errors, 2 bad input (unknown layout, target exists, ...).
"""
from __future__ import annotations

import argparse
import sys

from designer.cliutil import EXIT_OK, EXIT_VIOLATIONS, UsageError, emit_json, load_or_fail, positive_int
from designer.commands.validate import add_rules_option, check_rules, parse_rules


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", help="layout YAML, HF config.json, or preset name")
    parser.add_argument("-o", "--output", metavar="DIR", help="export directory (default: exported/NAME)")
    parser.add_argument("--force", action="store_true", help="replace an existing export directory")
    parser.add_argument("--allow-violations", action="store_true",
                        help="export even when the layout has rule errors (they are listed in README.md)")
    add_rules_option(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--kernels", choices=("auto", "torch", "triton"), default="auto",
                        help="model.py's default kernel path: auto (Triton on CUDA when fla-core is installed), "
                             "torch (the reference) or triton (docs/fast_path.md)")
    proxy = parser.add_argument_group("proxy-training job (train_proxy.py, proxy.yaml; docs/proxy.md)")
    proxy.add_argument("--proxy-hidden", type=positive_int, metavar="N", help="proxy hidden size (default 256)")
    proxy.add_argument("--proxy-layers", type=positive_int, metavar="N", help="about this many proxy layers (default 12)")
    proxy.add_argument("--proxy-scale", type=float, metavar="S",
                       help="instead of the two above: keep about a fraction S of the parameters")
    proxy.add_argument("--proxy-task", metavar="T[,T]", help="synthetic tasks (default mqar)")
    proxy.add_argument("--proxy-steps", type=positive_int, metavar="N", help="optimizer steps (default 300)")
    proxy.add_argument("--proxy-seq-len", type=positive_int, metavar="N", help="tokens per sequence (default 128)")


def proxy_options(args: argparse.Namespace) -> dict:
    """The export's proxy options; None values keep the trainer's defaults."""
    from designer.measure.proxy import size_flags_error
    if error := size_flags_error(args.proxy_hidden, args.proxy_layers, args.proxy_scale):
        raise UsageError(error)
    tasks = None
    if args.proxy_task:
        tasks = {t.strip(): {} for t in args.proxy_task.split(",") if t.strip()}
        if not tasks:
            raise UsageError("--proxy-task: give at least one task name")
    options = {"hidden": args.proxy_hidden, "layers": args.proxy_layers, "scale": args.proxy_scale,
               "tasks": tasks, "steps": args.proxy_steps, "seq_len": args.proxy_seq_len}
    return {k: v for k, v in options.items() if v is not None}


def run(args: argparse.Namespace) -> int:
    from designer.export.model_export import ExportError, ExportRefused, export_layout

    layout = load_or_fail(args.layout)
    rules = parse_rules(args.rules)
    check_rules(layout, args)            # an unknown rule set is bad input (exit 2), named where it was written
    try:
        result = export_layout(layout, args.output, force=args.force, allow_violations=args.allow_violations,
                               rule_sets=rules, proxy_options=proxy_options(args), kernels=args.kernels)
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
