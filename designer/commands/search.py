"""`designer search --base LAYOUT ...`: the Pareto front of layouts derived from a base under rules and
budgets (designer.search; docs/search.md). Writes the top layouts as YAML under -o, an HTML report with
--html; --json prints `SearchResult.to_dict()`; a bad budget, space or option exits 2 with one message
(with --json: `{"error": {"message", "file", "key", "layer"}}`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from designer.cliutil import emit_json, progress_bar
from designer.layout import LayoutError
from designer.present.format import GIB



def build_parser(parser: argparse.ArgumentParser) -> None:
    from designer.profile.memory import PRECISIONS
    from designer.search.assumptions import EMBEDDINGS, KV_DTYPES
    from designer.search.engine import OBJECTIVES
    parser.add_argument("--base", required=True, metavar="LAYOUT", help="layout YAML, HF config.json or preset")
    g = parser.add_argument_group("serving assumptions")
    g.add_argument("--hardware", default="h100-sxm", metavar="NAME", help="GPU profile (default h100-sxm)")
    g.add_argument("--precision", default="bf16", help=f"GEMM weight precision: {', '.join(PRECISIONS)} (default bf16)")
    g.add_argument("--kv-dtype", default=None,
                   help=f"KV-cache dtype: {', '.join(KV_DTYPES)} (fp4 = NVFP4, 0.5625 B per element); default the "
                        "activation dtype")
    g.add_argument("--state-dtype", default="fp32", help="SSM state dtype: fp32 (default), bf16, fp16")
    g.add_argument("--embeddings", default="bf16",
                   help=f"embedding and LM head storage: {', '.join(EMBEDDINGS)} (quantized: like the GEMM weights)")
    g.add_argument("--context", default=65536 + 1024,
                   help="tokens per sequence at the end: prompt + generated (default 66560)")
    g.add_argument("--gen", default=1024, help="generated tokens (default 1024)")
    g.add_argument("--batch", default=1, help="concurrent sequences (default 1)")
    g.add_argument("--tp", default=None, help="tensor-parallel GPUs (default the base's)")
    g.add_argument("--prefill-mode", default="chunked", help="parallel, chunked (default) or sequential")
    g.add_argument("--prefill-chunk", default=8192, help="tokens per chunked-prefill pass")
    g.add_argument("--reserve", default=None, metavar="BYTES",
                   help="memory resident besides the model (CUDA context, workspaces), e.g. 0.5GiB")
    b = parser.add_argument_group("budgets")
    b.add_argument("--max-memory", metavar="BYTES", help="per-GPU memory budget, e.g. 31.7GiB (default 0.9 x GPU)")
    b.add_argument("--max-params", metavar="N", help="most parameters, e.g. 50B")
    b.add_argument("--min-params", metavar="N", help="fewest parameters, e.g. 40B")
    b.add_argument("--min-throughput", metavar="TOKENS_PER_S", help="lowest output tokens/s")
    b.add_argument("--max-ttft", metavar="SECONDS", help="longest time to first token, e.g. 2s")
    b.add_argument("--max-tpot", metavar="SECONDS", help="longest time per output token, e.g. 40ms")
    s = parser.add_argument_group("search")
    s.add_argument("--objective", default="throughput,params",
                   help=f"comma-separated, each optionally :max/:min; from {', '.join(OBJECTIVES)} "
                        "(default throughput,params)")
    s.add_argument("--rules", default=None, help="rule sets or ids every candidate must pass (default the base's)")
    s.add_argument("--strict", action="store_true",
                   help="rule warnings fail a candidate too (e.g. NH004 attention share, NH005 spread, NH006 balance)")
    s.add_argument("--space", metavar="YAML", help="search space overrides (docs/search.md)")
    s.add_argument("--importance", metavar="JSON", help="per-layer importance scores of the base")
    s.add_argument("--reference", action="append", default=[], metavar="LAYOUT",
                   help="layouts to place against the front (repeatable), e.g. nemotron-h-47b")
    s.add_argument("--top", default=20, help="layouts to emit along the front (default 20)")
    o = parser.add_argument_group("output")
    o.add_argument("-o", "--out", metavar="DIR", help="write the emitted layouts as YAML files here")
    o.add_argument("--html", metavar="PATH", help="write an HTML report (front in 2-D/3-D, pattern strips)")
    o.add_argument("--json", action="store_true", help="print one JSON document")
    o.add_argument("--quiet", action="store_true", help="no progress bars")


def _progress_bar(enabled: bool):
    """(callback, context manager) drawing one rich bar per stage on stderr."""
    import contextlib
    if not enabled:
        return (lambda stage, done, total: None), contextlib.nullcontext()
    bar = progress_bar(description="{task.description:<9}")
    tasks: dict[str, int] = {}
    labels = {"prepare": "prepare", "search": "score", "place": "place"}

    def cb(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(labels.get(stage, stage), total=total)
        bar.update(tasks[stage], completed=done, total=total)
    return cb, bar


def _positive(value: object, key: str) -> int:
    """Integer options are checked here, not by argparse, so that --json gets its error document too."""
    try:
        n = int(str(value))
    except ValueError:
        raise LayoutError(f"expected a positive integer, got {value!r}", key=key) from None
    if n < 1:
        raise LayoutError(f"expected a positive integer, got {n}", key=key)
    return n


def run(args: argparse.Namespace) -> int:
    from designer.layout import load_layout, save_layout
    for name in ("context", "gen", "batch", "prefill_chunk", "top"):
        setattr(args, name, _positive(getattr(args, name), name.replace("_", "-")))
    if args.tp is not None:
        args.tp = _positive(args.tp, "tp")
    from designer.search import search
    from designer.search.units import parse_bytes
    base = load_layout(args.base)
    reserve = parse_bytes(args.reserve, "reserve") if args.reserve is not None else 0.0
    rules = [r.strip() for r in args.rules.split(",") if r.strip()] if args.rules else None
    cb, bar = _progress_bar(not args.quiet and not args.json and sys.stderr.isatty())
    with bar:
        result = search(base, hardware=args.hardware, space=args.space, objectives=args.objective, rules=rules,
                        importance=args.importance, top=args.top, references=args.reference, progress=cb,
                        strict=args.strict,
                        max_memory=args.max_memory, max_params=args.max_params, min_params=args.min_params,
                        min_throughput=args.min_throughput, max_ttft=args.max_ttft, max_tpot=args.max_tpot,
                        precision=args.precision, kv_dtype=args.kv_dtype, state_dtype=args.state_dtype,
                        embeddings=args.embeddings, context=args.context, gen=args.gen, batch=args.batch,
                        tp=args.tp, prefill_mode=args.prefill_mode, prefill_chunk=args.prefill_chunk,
                        reserve_bytes=reserve)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for i, cand in enumerate(result.front):
            path = out / f"{i + 1:02d}-{cand.layout.name}.yaml"
            save_layout(cand.layout, path)
            cand.file = str(path)
    doc = result.to_dict()
    doc["command"] = "designer search " + " ".join(_argv(args))
    if args.html:
        from designer.present.search import write_report
        refs = {r.name: r.pattern for r in (load_layout(x) for x in args.reference)}
        write_report(args.html, result.to_dict(plot_data=True) | {"front": doc["front"]}, base.pattern, refs)
        doc["html"] = args.html
    if args.out:
        from designer.layout import atomic_write_text
        atomic_write_text(Path(args.out) / "search.json", json.dumps(doc, indent=1, default=str) + "\n")
    if args.json:
        emit_json(doc)
        return 0
    _print(result, doc, args)
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    """The options as given (for the record in the JSON), reconstructed from sys.argv when it is this command."""
    argv = sys.argv[1:]
    if argv and argv[0] == "search":
        return argv[1:]
    return [f"--base {args.base}"]


def _print(result, doc: dict, args: argparse.Namespace) -> None:
    from rich.console import Console
    console = Console()
    a = result.assumptions
    console.print(f"[bold]search from {doc['base']}[/bold] on {a.hardware}: method {doc['method']}, "
                  f"{doc['evaluated']:,} candidates ({doc['candidates_per_s']:,.0f}/s), {doc['feasible']:,} within "
                  f"rules and budgets, {doc['front_size']:,} on the front")
    for sentence in a.sentences():
        console.print(f"  · {sentence}", style="dim")
    base_tps = doc["base_metrics"]["throughput_tokens_per_s"]
    from designer.present.tables import record_tables
    headers = ["#", "layers", "M/*/-", "FFN", "Mamba heads", "params", "memory", "tokens/s", "vs base", "file"]
    bm = doc["base_metrics"]
    records = [["base", str(bm["layers"]), f"{bm['mamba_layers']}/{bm['attention_layers']}/{bm['ffn_layers']}",
                str(bm["mlp_intermediate_size"]), str(bm["mamba_heads"]), f"{bm['params'] / 1e9:.2f} B",
                f"{bm['memory_bytes'] / GIB:.2f} GiB", f"{bm['throughput_tokens_per_s']:.4g}", "x1.00", doc["base"]]]
    for i, r in enumerate(doc["front"]):
        records.append([str(i + 1), str(r["layers"]), f"{r['mamba_layers']}/{r['attention_layers']}/{r['ffn_layers']}",
                        str(r["mlp_intermediate_size"]), str(r["mamba_heads"]), f"{r['params'] / 1e9:.2f} B",
                        f"{r['memory_bytes'] / GIB:.2f} GiB", f"{r['throughput_tokens_per_s']:.4g}",
                        f"x{r['throughput_tokens_per_s'] / base_tps:.2f}", r["file"] or r["name"]])
    if any(r.get("importance") is not None for r in doc["front"]):   # --importance: the exact choice vs greedy
        headers.insert(9, "importance MIP / greedy")
        records[0].insert(9, "1.000")
        for rec, r in zip(records[1:], doc["front"]):
            g = (r.get("greedy") or {}).get("importance")
            rec.insert(9, f"{r['importance']:.3f} / " + ("stuck" if g is None else f"{g:.3f}"))
    for table in record_tables("Pareto front (emitted layouts)", headers, records, console.width,
                               text_columns=(len(headers) - 1,)):
        console.print(table)
    from designer.present.search import reference_line
    for ref in doc["references"]:
        console.print(reference_line(ref))
    if doc["rejected"]:
        console.print(f"{len(doc['rejected'])} front points not emitted (first: {doc['rejected'][0]})", style="yellow")
    if args.out:
        console.print(f"wrote {len(doc['front'])} layouts and search.json to {args.out}")
    if args.html:
        console.print(f"wrote {args.html}")
    if not doc["front"]:
        console.print("no candidate meets the rules and budgets: loosen a budget or widen the space", style="red")


__all__ = ["build_parser", "run"]
