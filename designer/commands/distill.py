"""`designer distill --teacher DIR --student LAYOUT | --keep 0,1,3,...`: a pruned student distilled from a trained
model directory with logit KL (optionally hidden-state MSE) on a proxy task (designer.search.puzzle.distill;
docs/minipuzzle.md). Writes the student's weights, layout and metrics JSON under --out; --resume continues
from the checkpoint there.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from designer.cliutil import UsageError, emit_json, progress_bar


# RunSettings fields as the distill and minipuzzle commands name them, for distill.check_run's messages
OPTION_NAMES = {"steps": "--steps", "batch_size": "--batch-size", "seq_len": "--seq-len",
                "checkpoint_every": "--checkpoint-every", "lr": "--lr", "temperature": "--temperature",
                "hidden_mse_weight": "--hidden-mse"}


def build_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, metavar="DIR",
                        help="trained model directory (layout + model.py + model.pt)")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--student", metavar="LAYOUT", help="student layout file (its pattern a subsequence of the "
                                                         "teacher's: initialised from those layers)")
    who.add_argument("--keep", metavar="I,J,...", help="teacher layer indices to keep (0-based)")
    parser.add_argument("--steps", type=int, default=200, help="distillation steps (default 200)")
    parser.add_argument("--batch-size", type=int, default=16, help="sequences per step (default 16)")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per sequence (default 256)")
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    parser.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the KL (default 1)")
    parser.add_argument("--hidden-mse", type=float, default=0.0,
                        help="weight of the final-hidden-state MSE term (default 0: logits only)")
    parser.add_argument("--task", default="text", help="proxy task (default text)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (default 50)")
    parser.add_argument("--out", default="distilled", metavar="DIR",
                        help="student.pt, student.yaml, distill.json, checkpoint.pt (default ./distilled)")
    parser.add_argument("--resume", action="store_true", help="continue from --out/checkpoint.pt")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")


def parse_keep(text: str, n_layers: int) -> list[int]:
    try:
        keep = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--keep {text!r}: expected comma-separated layer indices, e.g. 0,1,3") from None
    if not keep or any(not 0 <= i < n_layers for i in keep) or len(set(keep)) != len(keep):
        raise UsageError(f"--keep {text!r}: expected distinct layer indices in 0..{n_layers - 1}")
    return sorted(keep)


def subsequence(pattern: str, of: str) -> list[int] | None:
    """The first (leftmost) indices of `of` whose symbols spell `pattern`, or None."""
    out, j = [], 0
    for i, c in enumerate(of):
        if j < len(pattern) and c == pattern[j]:
            out.append(i)
            j += 1
    return out if j == len(pattern) else None


def bar_progress(label: str, quiet: bool):
    """A rich progress bar on stderr for one run of steps: returns (callback, close)."""
    if quiet:
        return None, lambda: None
    bar = progress_bar(remaining=True, loss=True)
    task = bar.add_task(label, total=None, loss="")
    bar.start()

    def report(step: int, steps: int, loss) -> None:
        bar.update(task, total=steps, completed=step, loss=f"loss {loss():.4f}")
    return report, bar.stop


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from designer.commands._paths import check_output_dir
    from designer.layout import LayoutError, load_layout, save_layout
    out = check_output_dir(args.out, "--out")
    from designer.search.puzzle.distill import DistillError, RunSettings, check_run
    try:
        check_run(RunSettings(kind="distill", steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len,
                              checkpoint_every=args.checkpoint_every, lr=args.lr, temperature=args.temperature,
                              hidden_mse_weight=args.hidden_mse), OPTION_NAMES)
    except DistillError as e:
        raise UsageError(str(e)) from None
    import torch

    from designer.search.puzzle.distill import distill, heldout_loss, save_atomic
    from designer.search.puzzle.modeldir import check_device, load_model_dir
    from designer.search.puzzle.student import init_student
    check_device(args.device)
    teacher_layout, teacher, model_py = load_model_dir(args.teacher, device=args.device)
    notes: list[str] = []
    if args.keep is not None:
        keep = parse_keep(args.keep, teacher_layout.num_layers)
    else:
        wanted = load_layout(args.student)
        for field in ("vocab_size", "hidden_size"):
            if getattr(wanted, field) != getattr(teacher_layout, field):
                raise UsageError(f"--student {args.student}: {field} {getattr(wanted, field)} differs from the "
                                 f"teacher's {getattr(teacher_layout, field)}: a student must share the teacher's "
                                 "vocabulary and hidden size")
        keep = subsequence(wanted.pattern, teacher_layout.pattern)
        if keep is None:
            notes.append(f"{wanted.pattern} is not a subsequence of the teacher's {teacher_layout.pattern}: "
                         "the student starts from a random initialisation")
    try:
        if keep is not None:
            student_layout, student = init_student(teacher, teacher_layout, keep, model_py=model_py)
            notes.append(f"initialised from teacher layers {keep}")
        else:
            from designer.search.puzzle.modeldir import model_args
            student_layout = wanted
            torch.manual_seed(args.seed)
            student = model_py.build_model(args=model_args(model_py, wanted), device=args.device)
        report, close = bar_progress("distill", args.quiet or args.json or not sys.stderr.isatty())
        try:
            teacher_loss = heldout_loss(teacher, RunSettings(kind="distill", task=args.task, seq_len=args.seq_len,
                                                             seed=args.seed), args.device)
            result = distill(teacher, student, task=args.task, steps=args.steps, batch_size=args.batch_size,
                             seq_len=args.seq_len, lr=args.lr, temperature=args.temperature,
                             hidden_mse_weight=args.hidden_mse, out_dir=out, resume=args.resume, progress=report,
                             device=args.device, seed=args.seed, checkpoint_every=args.checkpoint_every,
                             run_id={"student": student_layout.pattern, "keep": keep})
        finally:
            close()
    except (DistillError, ValueError) as e:
        if isinstance(e, LayoutError):
            raise
        raise UsageError(str(e)) from None
    from designer.layout import atomic_write_text
    save_atomic(Path(out) / "student.pt", {k: v.detach().cpu() for k, v in student.state_dict().items()})
    save_layout(student_layout, Path(out) / "student.yaml", full=True)
    doc: dict[str, Any] = {"command": "designer distill " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["distill"]
                           else None,
                           "teacher": {"layout": teacher_layout.name, "pattern": teacher_layout.pattern,
                                       "heldout_loss": teacher_loss},
                           "student": {"layout": student_layout.name, "pattern": student_layout.pattern,
                                       "keep": keep, "params": sum(p.numel() for p in student.parameters())},
                           "notes": notes, **{k: v for k, v in result.items()},
                           "files": [str(Path(out) / f) for f in ("student.pt", "student.yaml", "distill.json",
                                                                  "checkpoint.pt")]}
    atomic_write_text(Path(out) / "distill.json", json.dumps(doc, indent=1, default=str) + "\n")
    if args.json:
        emit_json(doc)
        return 0
    for n in notes:
        print(f"note: {n}")
    print(f"student {student_layout.pattern} ({doc['student']['params']:,} params): held-out loss "
          f"{result['heldout_loss_before']:.4f} -> {result['heldout_loss_after']:.4f} after {result['steps']} steps "
          f"({result['tokens']:,} tokens); teacher {teacher_loss:.4f}; written to {out}")
    return 0
