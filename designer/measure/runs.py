"""Proxy-training runs: one job directory per candidate layout (`prepare_jobs`), each trained in this
process or under torchrun (`run_job`), then ranked by mean answer accuracy over the tasks, then by final
loss (`rank`). `designer proxy` is the command-line shell over these.
"""
from __future__ import annotations

import collections
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from designer.layout import Layout
from designer.measure.proxy import load_trainer, write_proxy_files

# progress(event, name, step, steps, loss): event "start" (before the job), "step" (after a training step;
# `loss` a function giving the last loss, which waits for the device), "done" (metrics written)
ProgressFn = Callable[[str, str, int, int, Any], None]


class RunError(ValueError):
    """A proxy job cannot be prepared or did not finish; the message says which and why."""


def prepare_jobs(layouts: list[Layout], root: Path, *, nproc: int = 1, hidden: int | None = None,
                 layers: int | None = None, scale: float | None = None,
                 **options: Any) -> list[tuple[str, Path, dict[str, Any]]]:
    """One proxy-job directory per candidate under `root`: (name, directory, config). `options` are the
    trainer's ProxyConfig fields (tasks, steps, batch_size, ...); a name used twice gets a suffix."""
    jobs, seen = [], set()
    for layout in layouts:
        name, k = layout.name, 2
        while name in seen:
            name, k = f"{layout.name}-{k}", k + 1
        seen.add(name)
        job_dir = root / name
        config = write_proxy_files(layout, job_dir, hidden=hidden, layers=layers, scale=scale, copy_model=True,
                                   **options)
        for key, flag in (("batch_size", "--batch-size"), ("eval_batch_size", "eval_batch_size")):
            if config[key] % nproc:
                raise RunError(f"{flag} {config[key]} must be divisible by --nproc {nproc} "
                               "(each process takes an equal slice of the global batch)")
        jobs.append((name, job_dir, config))
    return jobs


def run_job(job_dir: Path, nproc: int = 1, quiet: bool = False,
            progress: Callable[[int, int, Any], None] | None = None) -> dict[str, Any]:
    """Train one proxy: in this process, or under torchrun with `nproc` processes; returns its metrics.
    progress(step, steps, loss) follows the training (the trainer's own progress line is then off)."""
    if nproc == 1:
        trainer = load_trainer()
        try:
            return trainer.train(trainer.load_config(job_dir / "proxy.yaml"), root=job_dir, quiet=quiet,
                                 progress=progress)
        except trainer.ConfigError as e:
            raise RunError(str(e)) from None
    if progress is None:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "train_proxy.py"] + (["--quiet"] if quiet else [])
        done = subprocess.run(cmd, cwd=job_dir, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        code, lines = done.returncode, done.stderr.strip().splitlines()
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "train_proxy.py", "--quiet", "--progress-json"]
        code, lines = _run_with_progress(cmd, job_dir, progress)
    if code != 0:
        ours = [line for line in lines if "train_proxy.py: error:" in line]   # the trainer's own message
        tail = "\n".join(dict.fromkeys(ours) if ours else lines[-5:])
        raise RunError(f"{' '.join(cmd)} in {job_dir} failed (exit {code}):\n{tail}")
    return json.loads((job_dir / "metrics.json").read_text())


def _run_with_progress(cmd: list[str], cwd: Path, progress: Callable[[int, int, Any], None]) -> tuple[int, list[str]]:
    """Run the trainer under torchrun, its output merged into one pipe: JSON progress lines go to
    `progress`, the rest is kept (the last 200 lines, for the error message)."""
    kept: collections.deque[str] = collections.deque(maxlen=200)
    with subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            if line.startswith('{"step"'):
                try:
                    event = json.loads(line)
                    progress(event["step"], event["steps"], lambda v=event["loss"]: v)
                    continue
                except (json.JSONDecodeError, KeyError, TypeError):
                    pass
            kept.append(line)
    return proc.returncode, [line for line in kept if line.strip()]


def rank(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Best first: higher mean accuracy, then lower final loss; a diverged run (NaN loss) goes last."""

    def key(r: dict[str, Any]) -> tuple[float, float]:
        acc, loss = r["mean_accuracy"], r["final_loss"]
        return (-acc if math.isfinite(acc) else math.inf, loss if math.isfinite(loss) else math.inf)
    return sorted(results, key=key)


def summary(name: str, layout_pattern: str, m: dict[str, Any]) -> dict[str, Any]:
    """One candidate's row of the ranking, from its metrics.json."""
    keys = ("params", "initial_loss", "final_loss", "accuracy", "mean_accuracy", "tokens_per_s",
            "peak_memory_bytes", "peak_memory_kind", "train_s", "device", "world_size", "loss")
    return {"name": name, "proxy": m["name"], "proxy_pattern": layout_pattern, **{k: m[k] for k in keys}}


def run_all(jobs: list[tuple[str, Path, dict[str, Any]]], nproc: int = 1, quiet: bool = False,
            progress: ProgressFn | None = None) -> list[dict[str, Any]]:
    """Train every job and return the ranking rows, best first. progress(event, name, step, steps, loss)
    follows the run (see ProgressFn); without it each trainer shows its own progress line."""
    results = []
    for name, job_dir, config in jobs:
        step_fn = None
        if progress is not None:
            progress("start", name, 0, config["steps"], None)
            step_fn = lambda step, steps, loss, name=name: progress("step", name, step, steps, loss)  # noqa: E731
        metrics = run_job(job_dir, nproc, quiet, step_fn)
        pattern = json.loads((job_dir / "proxy_layout.json").read_text())["pattern"]
        results.append(summary(name, pattern, metrics))
        if progress is not None:
            progress("done", name, config["steps"], config["steps"], lambda m=metrics: m["final_loss"])
    return rank(results)
