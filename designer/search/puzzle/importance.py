"""Layer and FFN-neuron importance of a trained model: MiniPuzzle's first stage (Nemotron-H paper, Sec. 4.1).

Layer importance: zero one block's output (its mixer returns zeros, so the residual stream skips the block)
and measure, over the samples, the mean squared change of the pre-LM-head hidden states (after the final
norm) and the change of the next-token loss. Neuron importance (Minitron's activation-based score): the mean
|activation| of each intermediate neuron of every MLP block, the input of its down projection.

A sample is a row of token ids (N, T): the model reads its first T - 1 tokens and predicts its last T - 1.
`importance_doc` writes the result in the format `designer search --importance` reads
(designer/search/importance.py).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from designer.layout import SYMBOLS, Layout

Progress = Callable[[int, int], None]   # progress(done, total)


def block_parts(model: nn.Module) -> list[tuple[str, nn.Module, nn.Module]]:
    """(symbol, norm, mixer) for every pattern symbol in order: a Block is one symbol; a llama/qwen2
    DecoderLayer is two (`*` = input_layernorm + self_attn, `-` = post_attention_layernorm + mlp)."""
    parts: list[tuple[str, nn.Module, nn.Module]] = []
    for layer in model.body.layers:
        if hasattr(layer, "symbol"):
            parts.append((layer.symbol, layer.norm, layer.mixer))
        else:
            parts.append(("*", layer.input_layernorm, layer.self_attn))
            parts.append(("-", layer.post_attention_layernorm, layer.mlp))
    return parts


def _zero_output(module: nn.Module, inputs, output):
    return torch.zeros_like(output)


@contextlib.contextmanager
def ablated(model: nn.Module, index: int) -> Iterator[None]:
    """Within the block, pattern layer `index` adds nothing to the residual stream (x + 0): the model runs as
    if the block were replaced by the identity."""
    handle = block_parts(model)[index][2].register_forward_hook(_zero_output)
    try:
        yield
    finally:
        handle.remove()


def _check_samples(model: nn.Module, samples: torch.Tensor) -> None:
    if samples.dim() != 2 or samples.shape[1] < 2 or samples.shape[0] < 1:
        raise ValueError(f"samples must be token ids (N, T) with N >= 1 and T >= 2, got {tuple(samples.shape)}")
    vocab = model.lm_head.weight.shape[0]
    if samples.dtype.is_floating_point or int(samples.min()) < 0 or int(samples.max()) >= vocab:
        raise ValueError(f"samples must be integer token ids in [0, {vocab}), got {samples.dtype} in "
                         f"[{samples.min().item()}, {samples.max().item()}]")


def _batches(samples: torch.Tensor, batch_size: int, device: torch.device) -> Iterator[torch.Tensor]:
    for start in range(0, samples.shape[0], batch_size):
        yield samples[start:start + batch_size].to(device)


@torch.no_grad()
def layer_importance(model: nn.Module, samples: torch.Tensor, *, batch_size: int = 16,
                     progress: Progress | None = None) -> dict:
    """Per pattern layer, in order: {"index", "kind", "mse", "loss", "loss_change"}.

    mse: mean over samples, positions and hidden units of (h_ablated - h)^2, h the pre-LM-head hidden states
    (after the final norm); loss: the mean next-token cross-entropy (nats per token) with the layer ablated;
    loss_change = loss - base_loss. Returns {"base_loss", "samples", "seq_len", "tokens", "pattern",
    "mse": [...], "loss_change": [...], "layers": [...]}. progress(done, total) after each forward pass."""
    _check_samples(model, samples)
    was_training = model.training
    model.eval()
    device = model.lm_head.weight.device
    parts = block_parts(model)
    n_layers = len(parts)
    total_batches = math.ceil(samples.shape[0] / batch_size)
    sq_err = torch.zeros(n_layers, dtype=torch.float64)
    loss_sum = torch.zeros(n_layers, dtype=torch.float64)
    base_sum = 0.0
    n_values = n_tokens = 0
    done = 0
    try:
        for batch in _batches(samples, batch_size, device):
            x, y = batch[:, :-1], batch[:, 1:]
            h0 = model.body(x).float()
            base_sum += float(F.cross_entropy(model.lm_head(h0.to(model.lm_head.weight.dtype)).float()
                                              .flatten(0, 1), y.flatten(), reduction="sum"))
            n_values += h0.numel()
            n_tokens += y.numel()
            done += 1
            if progress:
                progress(done, total_batches * (n_layers + 1))
            for i in range(n_layers):
                with ablated(model, i):
                    h = model.body(x).float()
                sq_err[i] += float(((h - h0) ** 2).sum())
                loss_sum[i] += float(F.cross_entropy(model.lm_head(h.to(model.lm_head.weight.dtype)).float()
                                                     .flatten(0, 1), y.flatten(), reduction="sum"))
                done += 1
                if progress:
                    progress(done, total_batches * (n_layers + 1))
    finally:
        model.train(was_training)
    base_loss = base_sum / n_tokens
    layers = []
    for i, (kind, _, _) in enumerate(parts):
        loss = float(loss_sum[i]) / n_tokens
        layers.append({"index": i, "kind": kind, "mse": float(sq_err[i]) / n_values, "loss": loss,
                       "loss_change": loss - base_loss})
    return {"base_loss": base_loss, "samples": int(samples.shape[0]), "seq_len": int(samples.shape[1] - 1),
            "tokens": n_tokens, "pattern": "".join(p[0] for p in parts),
            "mse": [r["mse"] for r in layers], "loss_change": [r["loss_change"] for r in layers], "layers": layers}


@torch.no_grad()
def neuron_importance(model: nn.Module, samples: torch.Tensor, *, batch_size: int = 16) -> dict[int, list[float]]:
    """{pattern index of each MLP (`-`) block: [mean |activation| of each intermediate neuron]}: the input of
    the block's down projection (act(up(x)), or silu(gate(x)) * up(x) for SwiGLU), averaged over every sample
    position (the first T - 1 tokens of each sample, as layer_importance reads them)."""
    _check_samples(model, samples)
    was_training = model.training
    model.eval()
    device = model.lm_head.weight.device
    mlps = {i: mixer for i, (kind, _, mixer) in enumerate(block_parts(model)) if kind == "-"}
    sums = {i: torch.zeros(m.down_proj.in_features, dtype=torch.float64) for i, m in mlps.items()}
    count = [0]

    def hook_for(i: int):
        def hook(module: nn.Module, inputs: tuple) -> None:
            a = inputs[0].detach().float().abs()
            sums[i] += a.reshape(-1, a.shape[-1]).sum(0).double().cpu()
        return hook

    handles = [m.down_proj.register_forward_pre_hook(hook_for(i)) for i, m in mlps.items()]
    try:
        for batch in _batches(samples, batch_size, device):
            x = batch[:, :-1]
            model.body(x)
            count[0] += x.numel()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {i: (s / count[0]).tolist() for i, s in sums.items()}


def rank_by_kind(pattern: str, scores: list[float]) -> dict[str, dict]:
    """Per kind present: its layer indices in depth order, their scores, and the indices most important first."""
    from designer.search.puzzle.pipeline import kind_ranking
    ranked = kind_ranking(pattern, scores)
    out: dict[str, dict] = {}
    for kind in SYMBOLS:
        idx = [i for i, s in enumerate(pattern) if s == kind]
        if idx:
            out[kind] = {"name": SYMBOLS[kind], "indices": idx, "scores": [scores[i] for i in idx],
                         "ranked": ranked[kind]}
    return out


def importance_doc(layout: Layout, layer: dict, neurons: dict[int, list[float]] | None, metric_text: str) -> dict:
    """The importance JSON: what designer.search.importance.load_importance reads ("base", "metric",
    "scores" = the MSE per layer), with the details beside it (ignored by the loader): "layers" (per layer
    index, kind, score, mse, loss, loss_change; a valid `layers` form on its own), "by_kind" (per kind, the
    indices ranked most important first), "neurons" ({layer index as a string: mean |activation| per neuron}),
    "base_loss", "samples", "seq_len"."""
    if layer["pattern"] != layout.pattern:
        raise ValueError(f"the scores are for pattern {layer['pattern']!r}, the layout {layout.name} has "
                         f"{layout.pattern!r}")
    scores = [float(s) for s in layer["mse"]]
    rows = [{"index": r["index"], "kind": r["kind"], "score": r["mse"], "mse": r["mse"], "loss": r["loss"],
             "loss_change": r["loss_change"]} for r in layer["layers"]]
    return {"base": layout.name, "metric": metric_text, "scores": scores, "layers": rows,
            "by_kind": rank_by_kind(layout.pattern, scores),
            "neurons": {str(i): v for i, v in sorted((neurons or {}).items())},
            "base_loss": layer["base_loss"], "samples": layer["samples"], "seq_len": layer["seq_len"]}


def samples_from_task(task: str = "text", n: int = 128, seq_len: int = 256, seed: int = 0, *,
                      vocab_size: int = 256) -> torch.Tensor:
    """n held-out samples (n, seq_len + 1) of a proxy task (designer/export/templates/proxy_tasks.py): for
    `text`, windows of seq_len + 1 bytes of the held-out standard-library files (the model reads seq_len and
    predicts seq_len); for a synthetic task, its evaluation-form inputs plus the last target where there is
    one (else the last input again). ValueError for an unknown task or parameters it refuses."""
    from designer.export.template import load_template
    tasks = load_template("proxy_tasks.py")
    if task not in tasks.TASKS:
        raise ValueError(f"unknown task {task!r}; tasks: {', '.join(tasks.TASKS)}")
    gen = torch.Generator().manual_seed(seed)
    x, y = tasks.make_batch(task, n, vocab_size=vocab_size, seq_len=seq_len, gen=gen, seed=seed, train=False)
    last = torch.where(y[:, -1:] == tasks.IGNORE, x[:, -1:], y[:, -1:])
    return torch.cat([x, last], dim=1)
