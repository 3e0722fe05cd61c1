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


# --------------------------------------------------------------------------------------------------
# Sweeps: several seeds and a learning-rate grid per candidate, with a significance test between candidates


def heldout_metric(m: dict[str, Any]) -> float:
    """The number a sweep ranks by, lower is better: the evaluation loss (nats per answer; per byte on the
    text task) averaged over the tasks, measured on the fixed held-out set at the end of the run."""
    losses = [v["loss"] for v in m["eval"].values()]
    return sum(losses) / len(losses)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by its continued fraction (modified Lentz; Numerical Recipes
    §6.4): the Student-t tail below needs it, and scipy is not a dependency."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):          # the fraction converges fast only below this point
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-12:
            break
    return front * (f - 1.0)


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if not math.isfinite(t):
        return 0.0
    return _betainc(df / 2.0, 0.5, df / (df + t * t))


def welch_t_test(a: list[float], b: list[float]) -> dict[str, Any]:
    """Welch's unequal-variance t-test of mean(a) vs mean(b): {"t", "df", "p"} (two-sided); p is None with
    fewer than 2 values on a side. Equal, constant samples give p = 1; different constant samples p = 0."""
    if len(a) < 2 or len(b) < 2:
        return {"t": None, "df": None, "p": None}
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    if va + vb == 0.0:
        return {"t": None, "df": None, "p": 1.0 if ma == mb else 0.0}
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    return {"t": t, "df": df, "p": student_t_two_sided_p(t, df)}


def sweep_jobs(layouts: list[Layout], root: Path, *, seeds: int, lrs: list[float], seed: int = 0,
               nproc: int = 1, hidden: int | None = None, layers: int | None = None, scale: float | None = None,
               **options: Any) -> list[tuple[str, list[tuple[float, int, Path, dict[str, Any]]]]]:
    """Job directories root/NAME/lrX-seedS for every candidate, learning rate and seed:
    [(name, [(lr, seed, directory, config)])]."""
    out = []
    jobs = prepare_jobs(layouts, root, nproc=nproc, hidden=hidden, layers=layers, scale=scale, seed=seed,
                        lr=lrs[0], **options)    # checks the options and names the candidates
    for layout, (name, first_dir, _) in zip(layouts, jobs):
        runs = []
        for lr in lrs:
            for s in range(seed, seed + seeds):
                job_dir = first_dir / f"lr{lr:g}-seed{s}"
                cfg = write_proxy_files(layout, job_dir, hidden=hidden, layers=layers, scale=scale, copy_model=True,
                                        **{**options, "seed": s, "lr": lr})
                runs.append((lr, s, job_dir, cfg))
        out.append((name, runs))
    return out


def run_sweep(sweeps: list[tuple[str, list[tuple[float, int, Path, dict[str, Any]]]]], nproc: int = 1,
              quiet: bool = False, progress: ProgressFn | None = None,
              alpha: float = 0.05) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Train every (candidate, lr, seed); per candidate keep the lr with the lowest mean held-out metric
    (heldout_metric); rank candidates by that mean. Returns (ranking rows, best first; pairwise Welch
    t-tests over the seeds of each candidate's best lr, "significant" at `alpha`)."""
    rows = []
    for name, runs in sweeps:
        by_lr: dict[float, list[dict[str, Any]]] = {}
        for lr, s, job_dir, config in runs:
            label = f"{name} lr {lr:g} seed {s}"
            step_fn = None
            if progress is not None:
                progress("start", label, 0, config["steps"], None)
                step_fn = lambda step, steps, loss, label=label: progress("step", label, step, steps, loss)  # noqa: E731
            m = run_job(job_dir, nproc, quiet, step_fn)
            if progress is not None:
                progress("done", label, config["steps"], config["steps"], lambda m=m: m["final_loss"])
            by_lr.setdefault(lr, []).append(m)

        def score(lr: float) -> float:
            v = mean_std([heldout_metric(m) for m in by_lr[lr]])[0]
            return v if math.isfinite(v) else math.inf
        best = min(by_lr, key=score)
        ms = by_lr[best]
        pattern = json.loads((runs[0][2] / "proxy_layout.json").read_text())["pattern"]
        row = summary(name, pattern, ms[0])
        values = [heldout_metric(m) for m in ms]
        mean, std = mean_std(values)
        tasks = list(ms[0]["accuracy"])
        row.update({
            "accuracy": {t: mean_std([m["accuracy"][t] for m in ms])[0] for t in tasks},
            "mean_accuracy": mean_std([m["mean_accuracy"] for m in ms])[0],
            "final_loss": mean_std([m["final_loss"] for m in ms])[0],
            "tokens_per_s": mean_std([m["tokens_per_s"] for m in ms])[0],
            "loss": [sum(c) / len(c) for c in zip(*(m["loss"] for m in ms))],   # mean learning curve
            "sweep": {"metric": "heldout_loss", "lr": best, "seeds": [m["seed"] for m in ms], "values": values,
                      "mean": mean, "std": std, "curves": [m["loss"] for m in ms],
                      "accuracy_std": {t: mean_std([m["accuracy"][t] for m in ms])[1] for t in tasks},
                      "per_lr": {f"{lr:g}": dict(zip(("mean", "std"), mean_std([heldout_metric(m) for m in v])),
                                                 values=[heldout_metric(m) for m in v]) for lr, v in by_lr.items()},
                      "corpus": ms[0].get("corpus")},
        })
        rows.append(row)
    rows.sort(key=lambda r: r["sweep"]["mean"] if math.isfinite(r["sweep"]["mean"]) else math.inf)
    pairs = []
    for i, a in enumerate(rows):
        for b in rows[i + 1:]:
            test = welch_t_test(a["sweep"]["values"], b["sweep"]["values"])
            pairs.append({"better": a["name"], "worse": b["name"], "test": "welch_t", **test,
                          "significant": test["p"] is not None and test["p"] < alpha, "alpha": alpha})
    return rows, pairs
