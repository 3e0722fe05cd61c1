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
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from designer.cliutil import (EXIT_BAD_INPUT, UsageError, emit_json, load_or_fail, nonnegative_int, positive_int,
                              progress_bar)
from designer.commands._paths import check_output_dir, check_output_file
from designer.layout import umask
from designer.measure.proxy import DEFAULT_HIDDEN, DEFAULT_LAYERS, load_trainer, size_flags_error
from designer.measure.runs import (RunError, prepare_jobs, rank, run_all, run_sweep,  # noqa: F401  (rank: re-exported)
                                   sweep_jobs)
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
    parser.add_argument("--seeds", type=positive_int, default=1, metavar="N",
                        help="train each candidate with N seeds (--seed, --seed+1, ...); with N >= 2 the ranking "
                             "gives mean ± standard deviation and a Welch t-test between each pair of candidates")
    parser.add_argument("--lr-grid", metavar="A,B,C",
                        help="peak learning rates to try per candidate; the one with the lowest mean held-out "
                             "loss is kept (instead of --lr)")
    parser.add_argument("--nproc", type=positive_int, default=1,
                        help="processes per job (torchrun, DDP; NCCL on GPU, gloo on CPU)")
    parser.add_argument("--out", metavar="DIR", help="keep the proxy jobs and their metrics.json here "
                                                     "(default: a temporary directory, removed afterwards)")
    parser.add_argument("--report", default="proxy_report.html", metavar="HTML",
                        help="plotly HTML report (default proxy_report.html; '' for none)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress (a rich progress bar on a terminal, else a line per stage on stderr)")
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


def parse_lr_grid(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        lrs = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--lr-grid: expected comma-separated numbers such as 3e-4,1e-3,3e-3, got {text!r}") from None
    if not lrs or not all(math.isfinite(v) and v > 0 for v in lrs):
        raise UsageError(f"--lr-grid: expected positive learning rates such as 3e-4,1e-3,3e-3, got {text!r}")
    return list(dict.fromkeys(lrs))


def print_sweep_table(ranked: list[dict[str, Any]], pairs: list[dict[str, Any]], tasks: list[str],
                      settings: str) -> None:
    from rich.console import Console
    from rich.table import Table
    console = Console(highlight=False)
    table = Table(title=f"Proxy ranking by held-out loss, mean ± std over seeds ({settings})", title_justify="left")
    for col in ("#", "layout", "proxy pattern", "params", "best lr", "held-out loss", *tasks, "tokens/s"):
        table.add_column(col, justify="left" if col in ("layout", "proxy pattern") else "right")
    for i, r in enumerate(ranked, start=1):
        sw = r["sweep"]
        acc = [f"{r['accuracy'][t]:.1%} ± {sw['accuracy_std'][t]:.1%}" for t in tasks]
        table.add_row(str(i), r["name"], r["proxy_pattern"], f"{r['params'] / 1e6:.2f}M", f"{sw['lr']:g}",
                      f"{sw['mean']:.4f} ± {sw['std']:.4f} (n={len(sw['values'])})", *acc,
                      f"{r['tokens_per_s']:,.0f}")
    console.print(table)
    for p in pairs:
        verdict = ("n/a (one seed)" if p["p"] is None else
                   f"p = {p['p']:.3g}: {'significant' if p['significant'] else 'not significant'} at {p['alpha']:g}")
        console.print(f"{p['better']} < {p['worse']} (held-out loss, Welch t-test): {verdict}")


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


class LineProgress:
    """Progress as plain lines on stderr (output is not a terminal): one when a candidate starts, one at
    every tenth of its steps (at most every 2 s), one when it is done; each flushed."""

    def __init__(self, total: int):
        self.total, self.index, self.started, self.last, self.next_tenth = total, 0, 0.0, 0.0, 1

    def _say(self, text: str) -> None:
        print(f"proxy: {text}", file=sys.stderr, flush=True)

    def __call__(self, event: str, name: str, step: int, steps: int, loss: Any) -> None:
        now = time.perf_counter()
        tag = f"[{self.index + (event == 'start')}/{self.total}] {name}"
        if event == "start":
            self.index += 1
            self.started, self.last, self.next_tenth = now, now, 1
            self._say(f"{tag}: training {steps} steps")
        elif event == "step":
            if step >= self.next_tenth * steps / 10 and (now - self.last >= 2.0 or step == steps):
                self.last = now
                while self.next_tenth * steps / 10 <= step:
                    self.next_tenth += 1
                self._say(f"{tag}: step {step}/{steps}, loss {loss():.4f}")
        elif event == "done":
            self._say(f"{tag}: done in {now - self.started:.1f} s, final loss {loss():.4f}")

    def close(self) -> None:
        pass


class BarProgress:
    """A rich progress bar on stderr: the candidates done, and the steps of the one training now."""

    def __init__(self, total: int):
        self.bar = progress_bar(remaining=True, loss=True)
        self.overall = self.bar.add_task("candidates", total=total, loss="")
        self.current = None
        self.last = 0.0
        self.bar.start()

    def __call__(self, event: str, name: str, step: int, steps: int, loss: Any) -> None:
        if event == "start":
            self.current = self.bar.add_task(f"  {name}", total=steps, loss="")
        elif event == "step" and self.current is not None:
            now = time.perf_counter()
            fields = {}
            if now - self.last >= 0.5 or step == steps:      # loss() waits for the device: not every step
                self.last = now
                fields["loss"] = f"loss {loss():.4f}"
            self.bar.update(self.current, completed=step, **fields)
        elif event == "done" and self.current is not None:
            self.bar.update(self.current, completed=steps, loss=f"loss {loss():.4f}")
            self.bar.advance(self.overall)

    def close(self) -> None:
        self.bar.stop()


def make_progress(total: int, quiet: bool):
    """The progress reporter for `total` candidates: a bar on a terminal, lines otherwise, None if quiet."""
    if quiet:
        return None
    return BarProgress(total) if sys.stderr.isatty() else LineProgress(total)


def save_results(doc: dict[str, Any], out: str | None) -> Path:
    """Write the ranking as JSON where it survives: --out/proxy_results.json, else a file in the system
    temporary directory. Returns the path."""
    text = json.dumps(doc, indent=1, default=str)
    if out:
        try:
            path = Path(out) / "proxy_results.json"
            path.write_text(text)
            return path
        except OSError:
            pass
    fd, name = tempfile.mkstemp(prefix="designer-proxy-results-", suffix=".json")
    os.fchmod(fd, 0o666 & ~umask())
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return Path(name)


def run(args: argparse.Namespace) -> int:
    if error := size_flags_error(args.proxy_hidden, args.proxy_layers, args.proxy_scale):
        raise UsageError(error)
    # output paths first: a bad one must not cost a training run
    if args.report:
        check_output_file(args.report, "--report")
    if args.out:
        check_output_dir(args.out, "--out")
    layouts = [load_or_fail(ref) for ref in args.layouts]
    options = trainer_options(args)
    lrs = parse_lr_grid(args.lr_grid)
    if lrs and args.lr is not None:
        raise UsageError("--lr and --lr-grid: give one (--lr-grid a,b,c tries each)")
    sweep = args.seeds > 1 or lrs is not None
    lrs = lrs or [args.lr if args.lr is not None else load_trainer().ProxyConfig().lr]
    with tempfile.TemporaryDirectory(prefix="designer-proxy-") as tmp:
        root = Path(args.out) if args.out else Path(tmp)
        pairs = None
        try:
            if sweep:
                sweeps = sweep_jobs(layouts, root, seeds=args.seeds, lrs=lrs, seed=args.seed or 0, nproc=args.nproc,
                                    hidden=args.proxy_hidden, layers=args.proxy_layers, scale=args.proxy_scale,
                                    **{k: v for k, v in options.items() if k not in ("seed", "lr")})
                jobs = [(name, runs[0][2], runs[0][3]) for name, runs in sweeps]
            else:
                jobs = prepare_jobs(layouts, root, nproc=args.nproc, hidden=args.proxy_hidden,
                                    layers=args.proxy_layers, scale=args.proxy_scale, **options)
        except RunError as e:
            raise UsageError(str(e)) from None
        except OSError as e:
            raise UsageError(f"--out {args.out or tmp}: cannot write the proxy jobs: {e.strerror or e}") from None
        progress = make_progress(sum(len(r) for _, r in sweeps) if sweep else len(jobs), args.quiet)
        try:
            if sweep:
                ranked, pairs = run_sweep(sweeps, args.nproc, args.quiet, progress)
            else:
                ranked = run_all(jobs, args.nproc, args.quiet, progress)
        except RunError as e:
            raise UsageError(str(e)) from None
        finally:
            if progress is not None:
                progress.close()
    config = jobs[0][2]
    tasks = list(config["tasks"])
    settings = (f"{', '.join(tasks)}; {config['steps']} steps x {config['batch_size']} x {config['seq_len']} "
                f"tokens, vocab {config['vocab_size']}, seed {config['seed']}, {ranked[0]['device']}")
    report = args.report or None
    doc = {"settings": {k: config[k] for k in ("tasks", "steps", "batch_size", "seq_len", "vocab_size", "lr",
                                               "seed")},
           "nproc": args.nproc, "report": report, "out": args.out,
           "ranking": [{"rank": i, **r} for i, r in enumerate(ranked, start=1)]}
    if sweep:
        settings += f"; {args.seeds} seed(s), lr grid {', '.join(f'{v:g}' for v in lrs)}"
        doc["sweep"] = {"seeds": args.seeds, "lr_grid": lrs, "metric": "heldout_loss (mean eval loss over the tasks, "
                        "nats per answer)", "test": "Welch's t-test, two-sided, over the seeds of each best lr",
                        "pairs": pairs}
    code, saved = 0, None
    if report:
        try:
            write_proxy_report(report, ranked, tasks, settings, pairs=pairs)
        except OSError as e:   # checked before training, but the disk can still fill up or change under us
            saved = save_results(doc, args.out)
            doc.update(report=None, report_error=f"{report}: {e.strerror or e}", results=str(saved))
            print(f"designer: error: --report {report}: cannot write it ({e.strerror or e}); "
                  f"the results are saved in {saved}", file=sys.stderr)
            code, report = EXIT_BAD_INPUT, None
    if args.json:
        emit_json(doc)
        return code
    if sweep:
        print_sweep_table(ranked, pairs, tasks, settings)
    else:
        print_table(ranked, tasks, settings)
    if report:
        print(f"report: {report}")
    if saved:
        print(f"results (JSON): {saved}")
    if args.out:
        print(f"proxy jobs and metrics: {args.out}/")
    return code

