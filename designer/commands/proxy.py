"""`designer proxy A B C [--task mqar] [--steps N] [--device cuda] [--json]`: train each layout's proxy on
synthetic tasks, rank them (rich table, plotly HTML report, or one JSON document).

Each candidate gets a proxy-job directory like the one `designer export` writes (model.py, train_proxy.py,
proxy_tasks.py, proxy_layout.json, proxy.yaml); the job runs in this process, or under torchrun with
--nproc N. Candidates are ranked by mean answer accuracy over the tasks, then by final loss
(designer.measure.runs does the work; this module reads the options and prints).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from designer.cliutil import UsageError, emit_json, load_or_fail, nonnegative_int, positive_int
from designer.measure.proxy import DEFAULT_HIDDEN, DEFAULT_LAYERS, load_trainer, size_flags_error
from designer.measure.runs import RunError, prepare_jobs, rank, run_all  # noqa: F401  (rank: re-exported)
from designer.present.report import write_proxy_report

def build_parser(parser: argparse.ArgumentParser) -> None:
    trainer = load_trainer()
    d = trainer.ProxyConfig()
    parser.add_argument("layouts", nargs="+", metavar="LAYOUT", help="layout YAML, HF config.json, or preset name")
    parser.add_argument("--task", default="mqar",
                        help=f"comma-separated tasks, or 'all' (default: mqar); tasks: {', '.join(trainer.tasks.TASKS)}")
    parser.add_argument("--task-param", action="append", default=[], metavar="TASK.KEY=VALUE",
                        help="a task parameter, e.g. mqar.num_kv_pairs=32 (repeatable; docs/proxy.md lists them)")
    parser.add_argument("--steps", type=positive_int, help=f"optimizer steps (default {d.steps})")
    parser.add_argument("--batch-size", type=positive_int, help=f"global batch in sequences (default {d.batch_size})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr:g})")
    parser.add_argument("--seq-len", type=positive_int, help=f"tokens per sequence (default {d.seq_len})")
    parser.add_argument("--vocab", type=positive_int, help=f"task vocabulary = proxy vocab_size (default {d.vocab_size})")
    parser.add_argument("--seed", type=nonnegative_int, help=f"seed for weights and data (default {d.seed})")
    parser.add_argument("--device", help="auto | cpu | cuda (default auto: cuda when available)")
    parser.add_argument("--proxy-hidden", type=positive_int, help=f"proxy hidden size (default {DEFAULT_HIDDEN})")
    parser.add_argument("--proxy-layers", type=positive_int, help=f"about this many proxy layers (default {DEFAULT_LAYERS})")
    parser.add_argument("--proxy-scale", type=float, metavar="S",
                        help="keep about a fraction S of the parameters: width and depth x S^(1/3) each")
    parser.add_argument("--nproc", type=positive_int, default=1,
                        help="processes per job (torchrun, DDP; NCCL on GPU, gloo on CPU)")
    parser.add_argument("--out", metavar="DIR", help="keep the proxy jobs and their metrics.json here "
                                                     "(default: a temporary directory, removed afterwards)")
    parser.add_argument("--report", default="proxy_report.html", metavar="HTML",
                        help="plotly HTML report (default proxy_report.html; '' for none)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def parse_tasks(task: str, params: list[str]) -> dict[str, dict[str, Any]]:
    known = list(load_trainer().tasks.TASKS)
    names = known if task.strip() == "all" else [t.strip() for t in task.split(",") if t.strip()]
    if not names:
        raise UsageError(f"--task: give at least one task or 'all'; tasks: {', '.join(known)}")
    tasks: dict[str, dict[str, Any]] = {n: {} for n in names}
    for item in params:
        key, sep, value = item.partition("=")
        name, dot, param = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--task-param: expected TASK.KEY=VALUE (e.g. mqar.num_kv_pairs=32), got {item!r}")
        if name not in tasks:
            raise UsageError(f"--task-param {item!r}: task {name!r} is not among the tasks run ({', '.join(tasks)})")
        try:
            tasks[name][param] = json.loads(value)
        except json.JSONDecodeError:
            raise UsageError(f"--task-param {item!r}: the value must be a number") from None
    return tasks


def trainer_options(args: argparse.Namespace) -> dict[str, Any]:
    """The trainer's ProxyConfig fields the options set (None keeps the trainer's default)."""
    return {"tasks": parse_tasks(args.task, args.task_param), "steps": args.steps, "batch_size": args.batch_size,
            "lr": args.lr, "seq_len": args.seq_len, "vocab_size": args.vocab, "seed": args.seed,
            "device": args.device}


def print_table(ranked: list[dict[str, Any]], tasks: list[str], settings: str) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"Proxy ranking ({settings})", title_justify="left")
    for col in ("#", "layout", "proxy pattern", "params", "loss start -> end", *tasks, "tokens/s", "peak mem"):
        table.add_column(col, justify="left" if col in ("layout", "proxy pattern") else "right")
    for i, r in enumerate(ranked, start=1):
        acc = [f"{r['accuracy'][t]:.1%}" for t in tasks]
        table.add_row(str(i), r["name"], r["proxy_pattern"], f"{r['params'] / 1e6:.2f}M",
                      f"{r['initial_loss']:.3f} -> {r['final_loss']:.3f}", *acc,
                      f"{r['tokens_per_s']:,.0f}", f"{r['peak_memory_bytes'] / 2**20:,.0f} MiB")
    Console(highlight=False).print(table)


def run(args: argparse.Namespace) -> int:
    if error := size_flags_error(args.proxy_hidden, args.proxy_layers, args.proxy_scale):
        raise UsageError(error)
    layouts = [load_or_fail(ref) for ref in args.layouts]
    options = trainer_options(args)
    with tempfile.TemporaryDirectory(prefix="designer-proxy-") as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        try:
            jobs = prepare_jobs(layouts, root, nproc=args.nproc, hidden=args.proxy_hidden, layers=args.proxy_layers,
                                scale=args.proxy_scale, **options)
            ranked = run_all(jobs, args.nproc, args.quiet)
        except RunError as e:
            raise UsageError(str(e)) from None
    config = jobs[0][2]
    tasks = list(config["tasks"])
    settings = (f"{', '.join(tasks)}; {config['steps']} steps x {config['batch_size']} x {config['seq_len']} "
                f"tokens, vocab {config['vocab_size']}, seed {config['seed']}, {ranked[0]['device']}")
    report = args.report or None
    if report:
        write_proxy_report(report, ranked, tasks, settings)
    if args.json:
        emit_json({"settings": {k: config[k] for k in ("tasks", "steps", "batch_size", "seq_len", "vocab_size",
                                                       "lr", "seed")},
                   "nproc": args.nproc, "report": report, "out": args.out,
                   "ranking": [{"rank": i, **r} for i, r in enumerate(ranked, start=1)]})
        return 0
    print_table(ranked, tasks, settings)
    if report:
        print(f"report: {report}")
    if args.out:
        print(f"proxy jobs and metrics: {args.out}/")
    return 0

