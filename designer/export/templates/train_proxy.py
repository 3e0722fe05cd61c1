"""Proxy training: train a small copy of a layout on synthetic tasks, write a metrics JSON.

    python train_proxy.py [--config proxy.yaml] [--steps N] [--device cuda] [--quiet] [--progress-json]
                          [--save-weights model.pt]
    torchrun --nproc_per_node N train_proxy.py [...]        (torch.distributed DDP: NCCL on GPU, gloo on CPU)

Needs only torch and two files beside this one: model.py (`build_model(path)` -> a module whose forward takes
input_ids [B, T] and returns logits [B, T, V]) and proxy_tasks.py (the task generators). proxy.yaml is written
as JSON (JSON is valid YAML), so the standard library reads it; its keys are the fields of ProxyConfig below.

The job: AdamW (no weight decay on 1-D parameters), linear warmup then cosine decay, gradient clipping, bf16
autocast on CUDA only. Deterministic given the seed: the model is initialised from the seed, and every rank
draws the same global batch from one generator and keeps its own slice, so 1 process and N processes with the
same global batch follow the same loss curve (up to float summation order). The loss is the mean over the
answer positions of the global batch; accuracy is measured on answer positions only, per task, on a fixed
evaluation set drawn from another seed.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent


def load_module(path: str | os.PathLike, name: str | None = None):
    """Import a .py file by path (model.py, proxy_tasks.py): works in an export directory and in the package."""
    path = Path(path)
    name = name or f"_proxy_{path.stem}_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class ConfigError(ValueError):
    """A bad proxy.yaml value or option; main() reports it in one line with exit status 2."""


tasks = load_module(HERE / "proxy_tasks.py")


@dataclass
class ProxyConfig:
    name: str = "proxy"
    layout: str = "proxy_layout.json"     # the proxy's layout file, read by model.py (relative to proxy.yaml)
    model: str = "model.py"               # the model file with build_model(path)
    metrics: str = "metrics.json"         # where rank 0 writes the metrics
    save_weights: str = ""                # after training, rank 0 saves model.state_dict() here ("" = not saved)
    # data: every task shares vocab_size and seq_len; {task: {param: value}} overrides proxy_tasks.TASKS
    tasks: dict = field(default_factory=lambda: {"mqar": {}})
    vocab_size: int = 256
    seq_len: int = 128
    # optimisation (batch_size is the global batch, split evenly over the ranks)
    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-3
    min_lr_ratio: float = 0.1             # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 30
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0                # 0 = no clipping
    # evaluation: eval_batches x eval_batch_size sequences per task, at the end and every eval_every steps
    eval_batches: int = 4
    eval_batch_size: int = 64
    eval_every: int = 0
    # runtime
    seed: int = 0
    device: str = "auto"                  # auto | cpu | cuda | cuda:N
    dtype: str = "bf16"                   # autocast dtype on CUDA (bf16 | fp32); the CPU always runs fp32
    deterministic: bool = True            # torch.use_deterministic_algorithms (warn-only)
    timing_skip: int = 10                 # tokens/s leaves out this many first steps (warm-up, allocator)


def load_config(path: str | os.PathLike, **overrides) -> ProxyConfig:
    """Read proxy.yaml (JSON text) into a ProxyConfig; `overrides` with value None are ignored."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (write it with `designer export` or `designer proxy`)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read it: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not JSON (proxy.yaml is written as JSON): {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of ProxyConfig fields")
    if isinstance(overrides.get("tasks"), (list, tuple)):   # --task a,b keeps the parameters a and b had
        had = data.get("tasks") if isinstance(data.get("tasks"), dict) else {}
        overrides["tasks"] = {name: had.get(name) or {} for name in overrides["tasks"]}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(data, source=str(path))


def config_from_dict(data: dict, source: str = "proxy config") -> ProxyConfig:
    allowed = {f.name: f for f in dataclasses.fields(ProxyConfig)}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{source}: unknown key {key!r}; allowed: {', '.join(allowed)}")
    cfg = ProxyConfig(**data)
    for key, f in allowed.items():   # types: int fields must be ints, float fields numbers
        value, default = getattr(cfg, key), f.default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {value!r}")
        if isinstance(default, int) and not isinstance(default, bool) and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f"{source}: {key} must be an integer >= 0, got {value!r}")
        if isinstance(default, float) and (isinstance(value, bool) or not isinstance(value, (int, float))
                                           or not math.isfinite(value) or value < 0):
            raise ConfigError(f"{source}: {key} must be a number >= 0, got {value!r}")
        if isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
    for key in ("steps", "batch_size", "vocab_size", "seq_len", "eval_batches", "eval_batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{source}: {key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.min_lr_ratio > 1:
        raise ConfigError(f"{source}: min_lr_ratio must be in [0, 1] (the cosine decays to lr * min_lr_ratio), "
                          f"got {cfg.min_lr_ratio}")
    if cfg.dtype not in ("bf16", "fp32"):
        raise ConfigError(f"{source}: dtype must be bf16 or fp32, got {cfg.dtype!r}")
    if isinstance(cfg.tasks, (list, tuple)):
        cfg.tasks = {name: {} for name in cfg.tasks}
    if not isinstance(cfg.tasks, dict) or not cfg.tasks:
        raise ConfigError(f"{source}: tasks must map task names to parameters; tasks: {', '.join(tasks.TASKS)}")
    if not all(isinstance(p, dict) or p is None for p in cfg.tasks.values()):
        raise ConfigError(f"{source}: tasks must map each task name to a mapping of its parameters")
    try:
        cfg.tasks = {name: tasks.check_task(name, cfg.vocab_size, cfg.seq_len, params or {})
                     for name, params in cfg.tasks.items()}
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None
    return cfg


# --------------------------------------------------------------------------------------------------
# Data: every rank draws the same global batch and keeps its slice


class Prefetcher:
    """Batches make(step) for steps 0, 1, 2, ... drawn ahead by `workers` background threads and handed out in
    step order. Each step's batch comes from its own generator (step_generator), so the data do not depend on
    how many threads drew them: runs stay bit-identical. torch's CPU ops release the GIL, so drawing the next
    MQAR or text batches overlaps the GPU's step instead of adding to it (on the H200 a 2-layer MQAR proxy
    spent more time drawing batches than training). `pin`: page-locked, for asynchronous copies."""

    def __init__(self, make, workers: int = 1, depth: int = 2, pin: bool = False):
        import collections
        import concurrent.futures
        self._make, self._pin, self._step = make, pin, 0
        self._pool = concurrent.futures.ThreadPoolExecutor(max(1, workers), thread_name_prefix="batches")
        self._ahead = collections.deque()
        for _ in range(max(depth, workers + 1)):
            self._submit()

    def _submit(self) -> None:
        self._ahead.append(self._pool.submit(self._one, self._step))
        self._step += 1

    def _one(self, step: int):
        x, y = self._make(step)
        return (x.pin_memory(), y.pin_memory()) if self._pin else (x, y)

    def next(self):
        batch = self._ahead.popleft().result()
        self._submit()
        return batch

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one training step's batch: a function of (seed, step) only."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % 2**63)


def batch_workers(device: torch.device) -> int:
    """Threads that draw training batches: up to 4 on a GPU machine (the CPU is otherwise idle), 1 on the
    CPU (its cores train the model)."""
    return 1 if device.type == "cpu" else max(1, min(4, (os.cpu_count() or 2) // 2))


def global_batch(cfg: ProxyConfig, batch_size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """batch_size sequences split as evenly as possible over the tasks (task blocks in config order)."""
    names = list(cfg.tasks)
    xs, ys = [], []
    for i, name in enumerate(names):
        n = batch_size // len(names) + (i < batch_size % len(names))
        if n:
            x, y = tasks.make_batch(name, n, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len, gen=gen,
                                    seed=cfg.seed, **cfg.tasks[name])
            xs.append(x)
            ys.append(y)
    return torch.cat(xs), torch.cat(ys)


def rank_slice(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    n = t.size(0) // world
    return t[rank * n:(rank + 1) * n]


# --------------------------------------------------------------------------------------------------
# Optimisation


def warmup_steps(cfg: ProxyConfig) -> int:
    """warmup_steps, but at most a tenth of the run: a short run still reaches the peak and decays."""
    return min(cfg.warmup_steps, cfg.steps // 10)


def lr_at(step: int, cfg: ProxyConfig) -> float:
    """Linear warmup (warmup_steps above), then cosine from lr down to lr * min_lr_ratio at the last step."""
    warmup = warmup_steps(cfg)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    span = max(1, cfg.steps - 1 - warmup)
    progress = min(1.0, (step - warmup) / span)
    min_lr = cfg.lr * cfg.min_lr_ratio
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - min_lr)


def make_optimizer(model: torch.nn.Module, cfg: ProxyConfig, device: torch.device) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=device.type == "cuda")


def answer_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of cross-entropy, number of correct argmax) over the answer positions (targets != IGNORE)."""
    mask = y != tasks.IGNORE
    picked = logits[mask].float()
    target = y[mask]
    return F.cross_entropy(picked, target, reduction="sum"), (picked.argmax(-1) == target).sum()


# --------------------------------------------------------------------------------------------------
# Runtime


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} asked for, but torch sees no CUDA device")
        return torch.device(name if ":" in name else f"cuda:{local_rank}")
    if name != "cpu":
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return torch.device("cpu")


def peak_memory(device: torch.device) -> tuple[int, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device), "cuda_max_memory_allocated"
    try:
        import resource
    except ImportError:     # not on Unix
        return 0, "unavailable"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss * (1 if sys.platform == "darwin" else 1024), "process_max_rss"


class Progress:
    """One carriage-return line on stderr; silent when stderr is not a terminal or quiet is set."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label, self.last = total, label, 0.0
        self.enabled = enabled and sys.stderr.isatty()

    def update(self, step: int, text) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and step < self.total):
            return
        self.last = now
        filled = int(20 * step / self.total)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (20 - filled)}] {step}/{self.total} {text()}\033[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def build_model(cfg: ProxyConfig, root: Path) -> torch.nn.Module:
    model_file, layout_file = root / cfg.model, root / cfg.layout
    for f in (model_file, layout_file):
        if not f.is_file():
            raise ConfigError(f"{f}: no such file (an export directory holds model.py and the proxy layout)")
    try:   # the layout's vocabulary must hold the task tokens
        vocab = json.loads(layout_file.read_text()).get("vocab_size")
    except (json.JSONDecodeError, AttributeError):
        vocab = None
    if isinstance(vocab, int) and vocab < cfg.vocab_size:
        raise ConfigError(f"{layout_file}: vocab_size {vocab} is smaller than the tasks' vocab_size "
                          f"{cfg.vocab_size}")
    return load_module(model_file).build_model(str(layout_file))


def kernels_of(model: torch.nn.Module, device: torch.device) -> str:
    """'triton' or 'torch': the kernel path model.py takes on `device` in training; 'triton (torch scan)' where
    fla-core's scan backward is known to be wrong and training takes the torch scan (model.fla_scan_backward_ok)."""
    module = sys.modules.get(type(model).__module__)
    kernels = module.kernels_in_use(device) if hasattr(module, "kernels_in_use") else "torch"
    mixer = getattr(module, "Mamba2Mixer", None)                  # the layer whose scan compile_scan_on covers
    has_scan = mixer is not None and any(isinstance(m, mixer) for m in model.modules())
    compiled = " compiled" if has_scan and hasattr(module, "compile_scan_on") and module.compile_scan_on(device) else ""
    if kernels == "triton" and hasattr(module, "fla_kernels") and not module.fla_kernels().scan_backward:
        return f"triton (torch{compiled} scan)"
    return "torch (compiled scan)" if kernels == "torch" and compiled else kernels


@torch.no_grad()
def evaluate(model, cfg: ProxyConfig, device, rank: int, world: int, autocast) -> dict:
    """Loss and accuracy on answer positions, per task, over a fixed set drawn from seed + 1000003."""
    model.eval()
    gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)
    out = {}
    for name, params in cfg.tasks.items():
        if name == "text":   # the same held-out windows for every seed: a fixed budget of held-out bytes
            gen = torch.Generator().manual_seed(1_000_003)
        stats = torch.zeros(3, dtype=torch.float64, device=device)   # loss sum, correct, answers
        for _ in range(cfg.eval_batches):
            x, y = tasks.make_batch(name, cfg.eval_batch_size, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len,
                                    gen=gen, seed=cfg.seed, train=False, **params)
            x, y = rank_slice(x, rank, world).to(device), rank_slice(y, rank, world).to(device)
            with autocast:
                logits = model(x)
            loss_sum, correct = answer_loss(logits, y)
            stats += torch.stack([loss_sum.double(), correct.double(), (y != tasks.IGNORE).sum().double()])
        if world > 1:
            dist.all_reduce(stats)
        loss_sum, correct, n = stats.tolist()
        out[name] = {"accuracy": correct / max(n, 1), "loss": loss_sum / max(n, 1), "answers": int(n)}
        if name == "text":   # nats per byte on the held-out files, and what the corpus was
            out[name]["corpus"] = tasks.stdlib_corpus(params["heldout_percent"])["info"]
    model.train()
    return out


def train(cfg: ProxyConfig, *, root: str | os.PathLike = ".", model: torch.nn.Module | None = None,
          quiet: bool = False, progress=None) -> dict:
    """Run the job; returns the metrics (every rank) and writes them to root/cfg.metrics (rank 0).

    progress(step, steps, loss) is called on rank 0 after every step (loss: a function giving the last
    loss, which waits for the device: call it sparingly); it replaces the progress line."""
    root = Path(root)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(cfg.device, local_rank)
    rank = 0
    if world > 1:
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank = dist.get_rank()
    for key in ("batch_size", "eval_batch_size"):
        if getattr(cfg, key) % world:
            raise ConfigError(f"{key} {getattr(cfg, key)} must be divisible by the number of processes {world}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # cuBLAS needs it for determinism
        torch.use_deterministic_algorithms(True, warn_only=True)
        warnings.filterwarnings("ignore", message=".*deterministic.*")
    try:
        return _train(cfg, root, model, quiet, device, rank, world, progress)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def _train(cfg, root, model, quiet, device, rank, world, progress=None) -> dict:
    torch.manual_seed(cfg.seed)
    if model is None:
        model = build_model(cfg, root)
    model = model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                                    else None) if world > 1 else model
    optimizer = make_optimizer(model, cfg, device)
    use_bf16 = device.type == "cuda" and cfg.dtype == "bf16"
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16) if device.type == "cuda" \
        else torch.autocast("cpu", enabled=False)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    skip = min(cfg.timing_skip, cfg.steps // 2)
    losses: list[torch.Tensor] = []
    history = []
    bar = Progress(cfg.steps, cfg.name, enabled=not quiet and rank == 0 and progress is None)
    report = progress if progress is not None and rank == 0 else None
    eval_s = data_wait_s = 0.0   # data_wait_s: timed steps' seconds spent waiting for their batch
    batches = Prefetcher(lambda step: global_batch(cfg, cfg.batch_size, step_generator(cfg.seed, step)),
                         workers=batch_workers(device), pin=device.type == "cuda")
    try:
        t_start = t_timed = time.perf_counter()
        for step in range(cfg.steps):
            if step == skip:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t_timed = time.perf_counter()
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            t_batch = time.perf_counter()
            x, y = batches.next()
            if step >= skip:
                data_wait_s += time.perf_counter() - t_batch
            n_answers = int((y != tasks.IGNORE).sum())       # the same on every rank: no communication needed
            x = rank_slice(x, rank, world).to(device, non_blocking=True)
            y = rank_slice(y, rank, world).to(device, non_blocking=True)
            with autocast:
                logits = net(x)
            loss_sum, _ = answer_loss(logits, y)
            # DDP averages gradients over ranks: scale by world so the result is the global-batch mean
            loss = loss_sum * (world / max(n_answers, 1))
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            logged = loss.detach() / world
            if world > 1:
                dist.all_reduce(logged)
            losses.append(logged)
            if cfg.eval_every and (step + 1) % cfg.eval_every == 0 and step + 1 < cfg.steps:
                t_eval = time.perf_counter()
                history.append({"step": step + 1, **{k: v["accuracy"] for k, v in
                                                     evaluate(model, cfg, device, rank, world, autocast).items()}})
                if step >= skip:   # evaluation is not training: keep it out of tokens/s
                    eval_s += time.perf_counter() - t_eval
            bar.update(step + 1, lambda: f"loss {losses[-1].item():.4f} lr {lr:.2e}")
            if report is not None:
                report(step + 1, cfg.steps, lambda: losses[-1].item())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t_end = time.perf_counter()
    finally:
        batches.close()
    bar.close()
    timed_steps = cfg.steps - skip
    tokens_per_s = timed_steps * cfg.batch_size * cfg.seq_len / max(t_end - t_timed - eval_s, 1e-9)

    results = evaluate(model, cfg, device, rank, world, autocast)
    history.append({"step": cfg.steps, **{k: v["accuracy"] for k, v in results.items()}})
    peak, peak_kind = peak_memory(device)
    if world > 1:
        peak_t = torch.tensor([peak], dtype=torch.float64, device=device)
        dist.all_reduce(peak_t, op=dist.ReduceOp.MAX)
        peak = int(peak_t.item())
    curve = torch.stack(losses).float().cpu().tolist()
    tail = curve[-max(1, len(curve) // 10):]
    accuracy = {k: v["accuracy"] for k, v in results.items()}
    metrics = {
        "name": cfg.name,
        "params": n_params,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "world_size": world,
        "dtype": "bf16" if use_bf16 else "fp32",
        "kernels": kernels_of(model, device),
        "torch": torch.__version__,
        "seed": cfg.seed,
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "seq_len": cfg.seq_len,
        "vocab_size": cfg.vocab_size,
        "tasks": cfg.tasks,
        "loss": curve,
        "initial_loss": curve[0],
        "final_loss": sum(tail) / len(tail),        # mean over the last 10% of steps
        "eval": results,
        "accuracy": accuracy,
        "mean_accuracy": sum(accuracy.values()) / len(accuracy),
        "accuracy_history": history,
        "tokens_per_s": tokens_per_s,
        # the share of the timed training time the loop waited for batches (near 1: the data bound the speed)
        "data_wait_share": round(data_wait_s / max(t_end - t_timed - eval_s, 1e-9), 4),
        "timed_steps": timed_steps,
        "train_s": t_end - t_start,
        "peak_memory_bytes": peak,
        "peak_memory_kind": peak_kind,
        "heldout_loss": {k: v["loss"] for k, v in results.items()},   # nats per answer (per byte for text)
        "corpus": results["text"]["corpus"] if "text" in results else None,
        "config": dataclasses.asdict(cfg),
    }
    if rank == 0 and cfg.save_weights:
        metrics["weights"] = str(save_weights(model, root / cfg.save_weights))
    if rank == 0 and cfg.metrics:
        out = root / cfg.metrics
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(metrics, indent=1))
        os.replace(tmp, out)
    return metrics


def save_weights(model: torch.nn.Module, path: Path) -> Path:
    """model.state_dict() on the CPU, written with torch.save to a temporary file beside `path`, then renamed:
    a reader never sees half a checkpoint. Load it with model.load_state_dict(torch.load(path))."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def json_progress(every_s: float = 0.5):
    """A progress callback printing {"step", "steps", "loss"} lines on stdout, flushed, at most every_s apart."""
    last = [-math.inf]

    def report(step: int, steps: int, loss) -> None:
        now = time.perf_counter()
        if now - last[0] >= every_s or step == steps:
            last[0] = now
            print(json.dumps({"step": step, "steps": steps, "loss": loss()}), flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="train_proxy.py", description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(HERE / "proxy.yaml"), help="proxy.yaml (JSON); default: beside this file")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch-size", type=int, help="global batch (split over the processes)")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--device", help="auto | cpu | cuda")
    ap.add_argument("--task", help="comma-separated task names (their default parameters); "
                                   f"tasks: {', '.join(tasks.TASKS)}")
    ap.add_argument("--metrics", help="metrics JSON path (relative to the config's directory)")
    ap.add_argument("--save-weights", metavar="PATH",
                    help="save the trained model.state_dict() here (relative to the config's directory)")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    ap.add_argument("--progress-json", action="store_true",
                    help='progress as JSON lines on stdout ({"step", "steps", "loss"}, about twice a second), '
                         "for a program that runs this job")
    ap.add_argument("--kernels", choices=("auto", "torch", "triton"),
                    help="model.py's kernel path (sets MODEL_KERNELS; default: what the export chose)")
    args = ap.parse_args(argv)
    if args.kernels:
        os.environ["MODEL_KERNELS"] = args.kernels
    overrides = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "device": args.device, "metrics": args.metrics,
                 "save_weights": args.save_weights,
                 "tasks": args.task.split(",") if args.task else None}
    try:
        cfg = load_config(args.config, **overrides)
        metrics = train(cfg, root=Path(args.config).parent, quiet=args.quiet,
                        progress=json_progress() if args.progress_json else None)
    except ConfigError as e:
        print(f"train_proxy.py: error: {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0 and not args.quiet:
        acc = ", ".join(f"{k} {v:.3f}" for k, v in metrics["accuracy"].items())
        print(f"{metrics['name']}: {metrics['params']:,} params, loss {metrics['initial_loss']:.3f} -> "
              f"{metrics['final_loss']:.3f}, accuracy {acc}, {metrics['tokens_per_s']:,.0f} tokens/s, "
              f"peak memory {metrics['peak_memory_bytes'] / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
