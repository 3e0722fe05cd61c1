"""`designer measure LAYOUT`: the exported model measured beside the analytic profiler (docs/measure.md).

--flops   FLOPs of a prefill of --prompt tokens by kind (gemm / attention / scan), fvcore on a width-reduced
          copy (default) or FlopCounterMode at the real widths on the meta device (--full)
--memory  the bytes of the exported model's inference cache (meta device) beside the analytic ones
--device  cuda|cpu: TTFT / TPOT at a grid of points, predicted vs measured (--html, --save)
With none of the three: --flops --memory. torch is imported only here, on use (validate stays torch-free).
"""
from __future__ import annotations

import argparse

from designer.cliutil import UsageError, emit_json, load_or_fail, positive_int


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layout", help="layout YAML, HF config.json, or preset name")
    parser.add_argument("--flops", action="store_true", help="measured vs analytic prefill FLOPs by kind")
    parser.add_argument("--prompt", type=positive_int, default=256, help="prefill tokens for --flops (default 256)")
    parser.add_argument("--full", action="store_true",
                        help="--flops at the real widths (meta device, FlopCounterMode) instead of a reduced copy")
    parser.add_argument("--memory", action="store_true", help="measured vs analytic cache bytes")
    parser.add_argument("--device", metavar="cuda|cpu", help="time the exported model on this device")
    parser.add_argument("--kernels", default="torch", metavar="torch|triton",
                        help="kernel backend for --device (default torch)")
    parser.add_argument("--hardware", default="h200", metavar="NAME",
                        help="GPU profile the timings are predicted for (default h200)")
    parser.add_argument("--prompts", type=_int_list, help="TTFT prompt lengths, e.g. 1024,4096 (default: per device)")
    parser.add_argument("--contexts", type=_int_list, help="TPOT context lengths (default: per device)")
    parser.add_argument("--batches", type=_int_list, help="batch sizes (default: per device)")
    parser.add_argument("--iters", type=positive_int, default=3, help="timed runs per point (median; default 3)")
    parser.add_argument("--reduced", action="store_true", help="time the width-reduced copy instead")
    parser.add_argument("--html", metavar="PATH", help="with --device: an HTML report, predicted vs measured")
    parser.add_argument("--save", nargs="?", const="", metavar="PATH",
                        help="with --device: save the timing JSON (default bench/results/measured/"
                             "LAYOUT_DEVICE_KERNELS.json)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def run(args: argparse.Namespace) -> int:
    if (args.html or args.save is not None) and not args.device:
        raise UsageError("--html and --save need --device cuda|cpu (they report a timing run)")
    if args.device is not None and args.device not in ("cuda", "cpu"):
        raise UsageError(f"--device: unknown device {args.device!r}; allowed: cuda, cpu")
    if args.kernels not in ("torch", "triton"):
        raise UsageError(f"--kernels: unknown backend {args.kernels!r}; allowed: torch, triton")
    from designer.commands._paths import check_output_file
    if args.html:
        check_output_file(args.html, "--html")
    if args.save:
        check_output_file(args.save, "--save")
    layout = load_or_fail(args.layout)
    from designer.profile.hardware import load_hardware
    if args.device:
        load_hardware(args.hardware)   # a bad name is a LayoutError: exit 2 before any work

    doc: dict = {"layout": layout.name}
    flops = args.flops or not (args.memory or args.device)
    memory = args.memory or not (args.flops or args.device)
    if args.device:
        from designer.measure.timing import MeasureError, check_device
        try:
            check_device(args.device, args.kernels)
        except MeasureError as e:
            raise UsageError(str(e)) from None
    if flops:
        from designer.measure.flops import measure_flops
        doc["flops"] = measure_flops(layout, args.prompt, full=args.full)
    if memory:
        from designer.measure.memory import measure_memory
        doc["memory"] = measure_memory(layout)["memory"]
    if args.device:
        from designer.measure import timing
        target = layout
        if args.reduced:
            from designer.measure.flops import reduced
            target = reduced(layout)
        result = timing.measure_timing(target, device=args.device, kernels=args.kernels, hardware=args.hardware,
                                       prompts=args.prompts, contexts=args.contexts, batches=args.batches,
                                       iters=args.iters)
        if args.html:
            from designer.present.measure import write_timing_report
            write_timing_report(args.html, result)
            result["html"] = args.html
        if args.save is not None:
            result["saved"] = str(timing.save(result, args.save or timing.default_save_path(result)))
        doc["timing"] = result
    if args.json:
        emit_json(doc)
        return 0
    _print_text(doc)
    return 0


def _print_text(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console()
    if "flops" in doc:
        f = doc["flops"]
        t = Table(title=f"{doc['layout']}: prefill FLOPs of {f['prompt']} tokens ({f['widths']} widths, "
                        f"{f['counter']})")
        for col in ("kind", "analytic", "measured", "error"):
            t.add_column(col, justify="left" if col == "kind" else "right")
        for kind, v in [*f["by_kind"].items(), ("total", f["total"])]:
            err = "n/a" if v["error"] is None else f"{100 * v['error']:+.2f}%"
            t.add_row(kind, f"{v['analytic']:.4g}", f"{v['measured']:.4g}", err)
        console.print(t)
    if "memory" in doc:
        t = Table(title=f"{doc['layout']}: cache bytes (KV and conv bf16, SSM state fp32)")
        for col in ("", "analytic", "measured"):
            t.add_column(col, justify="left" if not col else "right")
        for key, v in doc["memory"].items():
            t.add_row(key, f"{v['analytic']:,}", f"{v['measured']:,}")
        console.print(t)
    if "timing" in doc:
        r = doc["timing"]
        t = Table(title=f"{r['layout']}: predicted ({r['hardware']}) vs measured ({r['device']}, "
                        f"{r['kernels_in_use']} kernels, {r['dtype']})")
        for col in ("metric", "batch", "prompt / context", "predicted ms", "measured ms", "error"):
            t.add_column(col, justify="right")
        for p in r["points"]:
            err = "n/a" if p["error"] is None else f"{100 * p['error']:+.1f}%"
            t.add_row(p["metric"], str(p["batch"]), str(p.get("prompt", p.get("context"))),
                      f"{1e3 * p['predicted_s']:.3f}", f"{1e3 * p['measured_s']:.3f}", err)
        console.print(t)
        if r.get("note"):
            console.print(r["note"])
        for key in ("html", "saved"):
            if r.get(key):
                console.print(f"wrote {r[key]}")
