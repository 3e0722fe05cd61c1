"""`designer minipuzzle --teacher DIR --budget-gib X | --keep-fraction F`: the five MiniPuzzle stages chained on
a trained model directory (designer.search.puzzle.pipeline; docs/minipuzzle.md): importance, per-kind
ranking, the layer selection under the memory budget (integer programs and greedy, both reported), short
distillations of the top candidates, the winner's long distillation beside the same student from scratch.
"""
from __future__ import annotations

import argparse
import sys

from designer.cliutil import UsageError, emit_json, progress_bar


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, metavar="DIR",
                        help="trained model directory (layout + model.py + model.pt)")
    b = parser.add_mutually_exclusive_group(required=True)
    b.add_argument("--budget-gib", type=float, metavar="X", help="memory budget of the student in GiB, at the "
                                                                 "serving scenario")
    b.add_argument("--keep-fraction", type=float, metavar="F", help="budget = F x the parent's memory, F in (0, 1)")
    parser.add_argument("--samples", type=int, default=128, help="importance samples (default 128)")
    parser.add_argument("--candidates", type=int, default=3, help="Pareto candidates distilled briefly (default 3)")
    parser.add_argument("--short-steps", type=int, default=50, help="steps per candidate (default 50)")
    parser.add_argument("--distill-steps", type=int, default=200, help="steps of the winner's distillation and of "
                                                                       "the from-scratch baseline (default 200)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--hidden-mse", type=float, default=0.0)
    parser.add_argument("--hardware", default="h100-sxm", help="GPU profile of the serving scenario")
    parser.add_argument("--context", type=int, default=65536 + 1024, help="tokens per sequence (default 66560)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, metavar="DIR", help="checkpoints, student.pt/.yaml, minipuzzle.json")
    parser.add_argument("--html", default=None, metavar="FILE", help="HTML report (plotly)")
    parser.add_argument("--quiet", action="store_true", help="no progress")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")


def _bars(enabled: bool, plain: bool = False):
    """A rich progress display: bar(name) gives a step callback for one run; close() stops it. Not enabled:
    no bars, and with plain=True the stage lines printed as plain lines on stderr (not a terminal)."""
    if not enabled:
        say = (lambda text: print(text, file=sys.stderr, flush=True)) if plain else (lambda text: None)
        return (lambda name: None), say, (lambda: None)
    prog = progress_bar(loss=True)
    prog.start()

    def bar(name: str):
        task = prog.add_task(name, total=None, loss="")

        def report(step: int, steps: int, loss) -> None:
            prog.update(task, total=steps, completed=step, loss=f"loss {loss():.4f}" if step == steps or
                        step % 10 == 0 else prog.tasks[task].fields["loss"])
        return report
    return bar, (lambda text: prog.console.print(text)), prog.stop


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from designer.commands._paths import check_output_dir, check_output_file
    if args.out is not None:
        check_output_dir(args.out, "--out")
    if args.html is not None:
        check_output_file(args.html, "--html")
    if not Path(args.teacher).is_dir():
        raise UsageError(f"--teacher {args.teacher}: no such model directory (expected layout, model.py and "
                         "model.pt, e.g. a proxy trained with train_proxy.py --save-weights model.pt)")
    for name in ("samples", "candidates", "short_steps", "distill_steps", "batch_size", "seq_len"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.budget_gib is not None and not args.budget_gib > 0:
        raise UsageError(f"--budget-gib must be > 0, got {args.budget_gib}")
    if args.keep_fraction is not None and not 0 < args.keep_fraction < 1:
        raise UsageError(f"--keep-fraction must be in (0, 1), got {args.keep_fraction}")
    from designer.search.assumptions import Assumptions
    from designer.search.puzzle.distill import DistillError
    from designer.search.puzzle.modeldir import check_device
    from designer.search.puzzle.pipeline import check_settings, PuzzleSettings, run_minipuzzle, write_outputs
    check_device(args.device)
    settings = PuzzleSettings(samples=args.samples, sample_len=args.seq_len, candidates=args.candidates,
                              short_steps=args.short_steps, long_steps=args.distill_steps,
                              batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr,
                              temperature=args.temperature, hidden_mse_weight=args.hidden_mse, device=args.device,
                              seed=args.seed, assumptions=Assumptions(hardware=args.hardware, context=args.context))
    from designer.commands.distill import OPTION_NAMES
    try:
        check_settings(settings, {**OPTION_NAMES, "steps": "--short-steps/--distill-steps"})
    except DistillError as e:
        raise UsageError(str(e)) from None
    quiet = args.quiet or args.json
    bar, say, close = _bars(not quiet and sys.stderr.isatty(), plain=not quiet)
    try:
        doc = run_minipuzzle(args.teacher, budget_bytes=args.budget_gib * 2**30 if args.budget_gib else None,
                             keep_fraction=args.keep_fraction, settings=settings, out_dir=args.out, say=say, bar=bar)
    except DistillError as e:
        raise UsageError(str(e)) from None
    finally:
        close()
    doc["command"] = "designer minipuzzle " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["minipuzzle"] else None
    for note in write_outputs(doc, args.out, args.html):
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        emit_json(doc)
        return 0
    from designer.present.puzzle import summary_rows
    for k, v in summary_rows(doc):
        print(f"{k:>14}: {v}")
    return 0

