"""Stage 5 of MiniPuzzle (and stage 4's short runs): distil a pruned student from its teacher on a proxy task.

    distill(teacher, student, task="text", steps=200, batch_size=16, seq_len=256, lr=1e-3, out_dir="d/")
    train_from_scratch(student_layout, <same settings>)      # the comparison: same tokens, no teacher

Loss: KL(teacher || student) of the next-token distributions, both softened by the temperature T and scaled
by T^2 (Hinton et al. 2015, so the gradient scale does not depend on T), averaged over the task's answer
positions; plus hidden_mse_weight x MSE between the final hidden states (after the final norm, before the LM
head). The teacher runs in eval mode under no_grad. The optimiser, the warmup + cosine schedule, the batches
and the held-out evaluation are the proxy trainer's own (designer/export/templates/train_proxy.py, loaded as a
module): the held-out loss is its `evaluate` (next-token cross-entropy on the task's held-out split: nats per
byte for `text`) for teacher, student and from-scratch model alike.

Checkpoints (student weights, optimiser, step, data-generator and torch RNG states, the loss curve) are
written atomically to out_dir/checkpoint.pt every `checkpoint_every` steps and at the end; with resume=True
a run continues from it, and ends with the same weights as an uninterrupted run (same seed; bitwise on CPU).
A checkpoint also records which run it is (the settings, fingerprints of the teacher's weights and of the
student's initial weights, and the caller's run_id: student pattern, kept layers); resuming another is refused
with a DistillError naming what differs.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

CHECKPOINT = "checkpoint.pt"
Progress = Callable[[int, int, Callable[[], float]], None]     # (step, steps, loss()) like the proxy trainer's


class DistillError(ValueError):
    """A bad distillation setting or a checkpoint that belongs to another run (reported as one line, exit 2)."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a distillation (or from-scratch) run is; a checkpoint is only resumed by the same settings."""

    kind: str                     # "distill" | "scratch"
    task: str = "text"
    steps: int = 200
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 1e-3
    temperature: float = 1.0
    hidden_mse_weight: float = 0.0
    seed: int = 0
    checkpoint_every: int = 50
    eval_batches: int = 4
    eval_batch_size: int = 16

    def trainer_config(self, vocab_size: int = 256):
        """The proxy trainer's ProxyConfig for these settings (its schedule, optimiser, batches, evaluation)."""
        trainer = _trainer()
        data = {"name": f"{self.kind}", "tasks": {self.task: {}}, "vocab_size": vocab_size, "seq_len": self.seq_len,
                "steps": self.steps, "batch_size": self.batch_size, "lr": self.lr, "seed": self.seed,
                "eval_batches": self.eval_batches, "eval_batch_size": self.eval_batch_size, "metrics": ""}
        try:
            return trainer.config_from_dict(data, source=f"{self.kind} settings")
        except trainer.ConfigError as e:
            raise DistillError(str(e)) from None

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with its checkpoint (checkpoint_every may change)."""
        d = dataclasses.asdict(self)
        d.pop("checkpoint_every")
        return d


def _trainer():
    from designer.export.template import load_template
    return load_template("train_proxy.py")


def check_run(settings: RunSettings, names: dict[str, str] | None = None) -> None:
    """DistillError naming the first bad setting; `names` maps fields to what the caller calls them (a
    command's options, e.g. {"hidden_mse_weight": "--hidden-mse"})."""
    def name(field: str) -> str:
        return (names or {}).get(field, field)
    for field in ("steps", "batch_size", "seq_len", "checkpoint_every"):
        v = getattr(settings, field)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise DistillError(f"{name(field)} must be an integer >= 1, got {v!r}")
    if not 0 < settings.lr < float("inf"):
        raise DistillError(f"{name('lr')} must be > 0 and finite, got {settings.lr!r}")
    if not settings.temperature > 0:
        raise DistillError(f"{name('temperature')} must be > 0, got {settings.temperature!r}")
    if not settings.hidden_mse_weight >= 0:
        raise DistillError(f"{name('hidden_mse_weight')} must be >= 0, got {settings.hidden_mse_weight!r}")


# --------------------------------------------------------------------------------------------------
# Losses


def kl_loss(student_logits, teacher_logits, mask, temperature: float = 1.0):
    """KL(teacher || student) per answer position (mask), softmax at `temperature`, scaled by T^2."""
    import torch.nn.functional as F
    t = temperature
    s = F.log_softmax(student_logits[mask].float() / t, dim=-1)
    p = F.log_softmax(teacher_logits[mask].float() / t, dim=-1)
    return F.kl_div(s, p, log_target=True, reduction="batchmean") * (t * t)


def _forward(model, x):
    """(final hidden states before the LM head, logits); models without `.body` give (None, logits)."""
    if hasattr(model, "body") and hasattr(model, "lm_head"):
        h = model.body(x)
        return h, model.lm_head(h).float()
    return None, model(x).float()


def heldout_loss(model, settings: RunSettings, device: str = "cpu") -> float:
    """Next-token cross-entropy on the task's held-out split: the proxy trainer's `evaluate` (one function for
    teacher, student and from-scratch model); leaves the model in eval mode."""
    import torch
    trainer = _trainer()
    cfg = settings.trainer_config(_vocab(model))
    dev = torch.device(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu",
                                                                                                     enabled=False)
    out = trainer.evaluate(model.to(dev), cfg, dev, 0, 1, autocast)
    model.eval()
    return float(out[settings.task]["loss"])


def _vocab(model) -> int:
    """The task vocabulary: the proxy tasks use 256 tokens (bytes for `text`); never more than the model has."""
    return min(256, getattr(getattr(model, "args", None), "vocab_size", 256))


# --------------------------------------------------------------------------------------------------
# Checkpoints


def save_atomic(path: Path, state: dict) -> None:
    """torch.save to a temporary file beside `path`, then rename: a reader never sees half a checkpoint."""
    import torch
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def fingerprint(model) -> str:
    """A short hash of a model's parameter names, shapes and values (sum and sum of squares per tensor, in
    float64): tells two teachers, or two students' initial weights, apart without hashing every byte."""
    import hashlib

    import torch
    state = model.state_dict()
    h = hashlib.sha1()
    sums = []
    for name, t in state.items():
        h.update(f"{name}{tuple(t.shape)};".encode())
        if t.numel():
            t = t.detach().double()
            sums.append(torch.stack([t.sum(), (t * t).sum()]))
    if sums:
        h.update(torch.stack(sums).cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def _identity_diff(saved: dict | None, want: dict) -> list[str]:
    saved = saved or {}
    return sorted(k for k in set(want) | set(saved) if saved.get(k) != want.get(k))


def load_checkpoint(path: Path) -> dict | None:
    import torch
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:   # a truncated or foreign file: say so rather than train over it
        raise DistillError(f"{path}: not a readable checkpoint ({e.__class__.__name__}: {e}); remove it or "
                           "run without --resume") from None


# --------------------------------------------------------------------------------------------------
# The loop (distillation and from-scratch share it)


def _run(model, loss_fn, settings: RunSettings, *, out_dir, resume: bool, progress: Progress | None,
         device: str, stop_at: int | None, run_id: dict | None = None) -> dict:
    """run_id: which student (and teacher) this is, beside the settings: a checkpoint of another is refused."""
    import torch
    check_run(settings)
    trainer = _trainer()
    cfg = settings.trainer_config(_vocab(model))
    dev = torch.device(device)
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT if out is not None else None
    model.to(dev).train()
    optimizer = trainer.make_optimizer(model, cfg, dev)
    gen = torch.Generator().manual_seed(settings.seed)
    start, curve, before, t_spent = 0, [], None, 0.0
    state = load_checkpoint(ckpt_path) if (resume and ckpt_path is not None) else None
    if state is not None:
        diff = _identity_diff(state.get("settings"), settings.identity())
        if diff:
            raise DistillError(f"{ckpt_path}: the checkpoint is of another run (differs in {', '.join(diff)}); "
                               "use another --out or run without --resume")
        diff = _identity_diff(state.get("run"), run_id or {})
        if diff:
            raise DistillError(f"{ckpt_path}: the checkpoint is of another student or teacher (differs in "
                               f"{', '.join(diff)}); use another --out or run without --resume")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start, curve, before, t_spent = state["step"], list(state["loss_curve"]), state["heldout_before"], \
            state.get("train_s", 0.0)
    if before is None:
        before = heldout_loss(model, settings, device)
        model.train()
    use_bf16 = dev.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16) if use_bf16 \
        else torch.autocast("cpu", enabled=False)
    end = settings.steps if stop_at is None else min(settings.steps, stop_at)

    def checkpoint(step: int) -> None:
        if ckpt_path is None:
            return
        save_atomic(ckpt_path, {"settings": settings.identity(), "step": step, "model": model.state_dict(),
                                     "optimizer": optimizer.state_dict(), "generator": gen.get_state(),
                                     "torch_rng": torch.get_rng_state(), "loss_curve": curve,
                                     "heldout_before": before, "train_s": t_spent + time.perf_counter() - t0,
                                     "run": dict(run_id or {})})

    t0 = time.perf_counter()
    model.train()
    for step in range(start, end):
        lr = trainer.lr_at(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = trainer.global_batch(cfg, settings.batch_size, gen)
        x, y = x.to(dev), y.to(dev)
        with autocast:
            loss = loss_fn(model, x, y)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        curve.append(float(loss.detach()))
        if progress is not None:
            progress(step + 1, settings.steps, lambda: curve[-1])
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == end:
            checkpoint(step + 1)
    train_s = t_spent + time.perf_counter() - t0
    done = end >= settings.steps
    after = heldout_loss(model, settings, device) if done else None
    return {"kind": settings.kind, "steps": end, "steps_total": settings.steps, "finished": done,
            "loss_curve": curve, "heldout_loss_before": before, "heldout_loss_after": after,
            "tokens": end * settings.batch_size * settings.seq_len, "train_s": train_s,
            "settings": dataclasses.asdict(settings)}


def distill(teacher, student, *, task: str = "text", steps: int, batch_size: int, seq_len: int, lr: float,
            temperature: float = 1.0, hidden_mse_weight: float = 0.0, out_dir=None, resume: bool = True,
            progress: Progress | None = None, device: str = "cpu", seed: int = 0, checkpoint_every: int = 50,
            stop_at: int | None = None, eval_batches: int = 4, eval_batch_size: int = 16,
            run_id: dict | None = None) -> dict:
    """Train `student` (in place) to match `teacher`'s next-token distributions on `task`; see the module doc.
    stop_at=N stops after step N (a run to resume later); the result then has finished False. A checkpoint is
    resumed only by the same settings, teacher (its weights' fingerprint), student initial weights and run_id
    (what the caller says the student is, e.g. {"student": pattern, "keep": [...], "teacher": path})."""
    import torch
    import torch.nn.functional as F
    settings = RunSettings(kind="distill", task=task, steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr,
                           temperature=temperature, hidden_mse_weight=hidden_mse_weight, seed=seed,
                           checkpoint_every=checkpoint_every, eval_batches=eval_batches,
                           eval_batch_size=eval_batch_size)
    check_run(settings)
    ident = {"teacher_weights": fingerprint(teacher), "student_init": fingerprint(student), **(run_id or {})}
    teacher.to(torch.device(device)).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    ignore = _trainer().tasks.IGNORE

    def loss_fn(model, x, y):
        with torch.no_grad():
            h_t, logits_t = _forward(teacher, x)
        h_s, logits_s = _forward(model, x)
        mask = y != ignore
        loss = kl_loss(logits_s, logits_t, mask, temperature)
        if hidden_mse_weight > 0 and h_s is not None and h_t is not None:
            loss = loss + hidden_mse_weight * F.mse_loss(h_s[mask].float(), h_t[mask].float())
        return loss

    result = _run(student, loss_fn, settings, out_dir=out_dir, resume=resume, progress=progress, device=device,
                  stop_at=stop_at, run_id=ident)
    teacher.eval()
    return result


def train_from_scratch(layout, *, task: str = "text", steps: int, batch_size: int, seq_len: int, lr: float,
                       out_dir=None, resume: bool = True, progress: Progress | None = None, device: str = "cpu",
                       seed: int = 0, checkpoint_every: int = 50, stop_at: int | None = None, eval_batches: int = 4,
                       eval_batch_size: int = 16, model=None, **_ignored) -> dict:
    """Plain next-token training of a fresh model of `layout` (initialised from `seed`) on the same batches
    and schedule as `distill` with the same settings: the from-scratch baseline of the comparison. Returns the
    same keys as `distill` plus "model" (the trained module). Distillation-only keywords are ignored."""
    import torch

    from designer.export.model_export import model_args
    from designer.export.template import load_template
    if model is None:
        torch.manual_seed(seed)
        model = load_template("model.py").build_model(args=model_args(layout), device="cpu")
    settings = RunSettings(kind="scratch", task=task, steps=steps, batch_size=batch_size, seq_len=seq_len, lr=lr,
                           seed=seed, checkpoint_every=checkpoint_every, eval_batches=eval_batches,
                           eval_batch_size=eval_batch_size)
    trainer = _trainer()

    def loss_fn(m, x, y):
        _, logits = _forward(m, x)
        loss_sum, _ = trainer.answer_loss(logits, y)
        return loss_sum / max(int((y != trainer.tasks.IGNORE).sum()), 1)

    ident = {"student": getattr(layout, "pattern", None), "student_init": fingerprint(model)}
    result = _run(model, loss_fn, settings, out_dir=out_dir, resume=resume, progress=progress, device=device,
                  stop_at=stop_at, run_id=ident)
    result["model"] = model
    return result


def mean_kl(teacher, student, *, task: str = "text", batches: int = 2, batch_size: int = 8, seq_len: int = 64,
            temperature: float = 1.0, device: str = "cpu", seed: int = 1234) -> float:
    """KL(teacher || student) averaged over held-out batches of the task (what the tests and reports compare)."""
    import torch
    trainer = _trainer()
    settings = RunSettings(kind="distill", task=task, steps=1, batch_size=batch_size, seq_len=seq_len)
    cfg = settings.trainer_config(_vocab(student))
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    teacher.to(dev).eval()
    student.to(dev).eval()
    total = 0.0
    with torch.no_grad():
        for _ in range(batches):
            x, y = trainer.tasks.make_batch(task, batch_size, vocab_size=cfg.vocab_size, seq_len=seq_len, gen=gen,
                                            seed=0, train=False, **cfg.tasks[task])
            x, y = x.to(dev), y.to(dev)
            total += float(kl_loss(_forward(student, x)[1], _forward(teacher, x)[1], y != trainer.tasks.IGNORE,
                                   temperature))
    return total / batches
