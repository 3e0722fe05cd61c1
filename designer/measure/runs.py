"""Proxy-training runs: one job directory per candidate layout (`prepare_jobs`), each trained in this
process or under torchrun (`run_job`), then ranked by mean answer accuracy over the tasks, then by final
loss (`rank`). `designer proxy` is the command-line shell over these.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from designer.layout import Layout
from designer.measure.proxy import load_trainer, write_proxy_files


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


def run_job(job_dir: Path, nproc: int = 1, quiet: bool = False) -> dict[str, Any]:
    """Train one proxy: in this process, or under torchrun with `nproc` processes; returns its metrics."""
    if nproc == 1:
        trainer = load_trainer()
        try:
            return trainer.train(trainer.load_config(job_dir / "proxy.yaml"), root=job_dir, quiet=quiet)
        except trainer.ConfigError as e:
            raise RunError(str(e)) from None
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "train_proxy.py"] + (["--quiet"] if quiet else [])
    done = subprocess.run(cmd, cwd=job_dir, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        ours = [line for line in lines if "train_proxy.py: error:" in line]   # the trainer's own message
        tail = "\n".join(dict.fromkeys(ours) if ours else lines[-5:])
        raise RunError(f"{' '.join(cmd)} in {job_dir} failed (exit {done.returncode}):\n{tail}")
    return json.loads((job_dir / "metrics.json").read_text())


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


def run_all(jobs: list[tuple[str, Path, dict[str, Any]]], nproc: int = 1, quiet: bool = False) -> list[dict[str, Any]]:
    """Train every job and return the ranking rows, best first."""
    results = []
    for name, job_dir, _config in jobs:
        metrics = run_job(job_dir, nproc, quiet)
        pattern = json.loads((job_dir / "proxy_layout.json").read_text())["pattern"]
        results.append(summary(name, pattern, metrics))
    return rank(results)
