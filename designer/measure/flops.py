"""Measured FLOPs of the exported model's prefill, beside the analytic profiler's (`designer measure --flops`).

Two counters run the exported model (designer/export/templates/model.py, torch path) over one prompt with
the logits of the last token, as `designer.profile.flops.forward_flops(layout, T, logits_tokens=1)` counts:

- fvcore `FlopCountAnalysis` (a jit trace; one handle per op, fvcore's habit), with our handles for what it
  does not count or counts differently: `scaled_dot_product_attention` (the causal triangle, GQA aware),
  `einsum` (the multiply-adds of the contractions along numpy's optimal path; a pairwise step that
  contracts nothing is an elementwise product and costs nothing, as everywhere else), `addcmul` (the
  Mamba-1 recurrence, below); norms, top-k routing, sorting, cumulative sums, exponentials and every other
  elementwise op are explicitly zero, as in the analytic model.
- `torch.utils.flop_counter.FlopCounterMode` (dispatch level: einsum arrives as bmm/mul), with SDPA counted
  by the same causal handle (intercepted before it decomposes) and `addcmul` added. It also runs on the
  meta device, which is how `--full` counts real widths without memory.

Both count one multiply-add as 1; the results here are 2x that (FLOPs). KIND is the analytic split of
`prefill_by_kind`: gemm (every weight matrix: in/out projections, q/k/v/o, MLP, router, the experts a
token is routed to, LM head), attention (SDPA: QKᵀ and PV), scan (the Mamba conv, the SSD einsums, the
Mamba-1 recurrence and readout). Ops are classified by what they are, so the two sides add up exactly.

The Mamba-1 reference scan is a log-depth (Hillis-Steele) scan, O(T log T) elementwise work: an
implementation choice, not the model's arithmetic. While counting, `linear_scan` ends with the recurrence
it computes applied once to its states (s_t = a_t s_{t-1} + b_t as one `addcmul`: one multiply-add per state
element and token), which is what the analytic 4·I·N per token (update + readout) counts.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from designer.export.model_export import model_args
from designer.export.template import load_template
from designer.layout import Layout
from designer.profile.flops import forward_flops
from designer.measure import relative_error

KINDS = ("gemm", "attention", "scan")
_LINEAR_SCAN: Callable | None = None   # the exported module's own linear_scan, while counting

# fvcore (jit) op names -> kind; a counted op missing here is a bug (raised, never dropped)
_FVCORE_KIND = {"linear": "gemm", "matmul": "gemm", "mm": "gemm", "addmm": "gemm", "bmm": "gemm",
                "scaled_dot_product_attention": "attention",
                "einsum": "scan", "conv": "scan", "_convolution": "scan", "addcmul": "scan"}
# FlopCounterMode (dispatch) op names -> kind: matmuls of 2-D weights arrive as mm/addmm; einsum as bmm
_DISPATCH_KIND = {"mm": "gemm", "addmm": "gemm", "bmm": "scan", "baddbmm": "scan", "convolution": "scan",
                  "_convolution": "scan", "addcmul": "scan", "sdpa": "attention"}
# ops that do arithmetic fvcore would warn about, counted as zero on both sides (and in docs/profiler.md)
_ZERO_OPS = ("rms_norm", "topk", "sort", "argsort", "cumsum", "exp", "softplus", "sigmoid", "silu", "relu",
             "gelu", "softmax", "rsqrt", "mean", "pow", "square", "mul", "add", "sub", "div", "neg", "sum",
             "bincount", "index_add_", "scatter_add_", "gather", "clamp", "masked_fill", "tril", "cos", "sin",
             "outer", "embedding", "repeat_interleave", "expand", "pad", "constant_pad_nd", "cat", "where")


# --------------------------------------------------------------------------------------------------
# the width-reduced copy


def reduced(layout: Layout, hidden: int = 64) -> Layout:
    """The same pattern, block kinds, activations and flags at toy widths (ModelArgs.tiny's sizes), so a
    whole model's prefill is counted in a second on a CPU; the analytic side is computed on this copy too."""
    changes: dict[str, Any] = {"name": layout.name + "-reduced", "hidden_size": hidden, "vocab_size": 256}
    if layout.mamba is not None:
        m = layout.mamba
        # Mamba-2: a 16-token SSD chunk (several chunks and a padded one at small prompts); Mamba-1 keeps its
        # chunk (it only bounds the reference scan's memory; fewer chunks trace faster)
        changes["mamba"] = dataclasses.replace(m, num_heads=4, head_dim=16, n_groups=2 if m.version == 2 else 1,
                                               state_size=16, dt_rank="auto",
                                               chunk_size=16 if m.version == 2 else m.chunk_size)
    if layout.attention is not None:
        a = layout.attention
        changes["attention"] = dataclasses.replace(a, num_heads=4, num_kv_heads=2, head_dim=16,
                                                   sliding_window=a.sliding_window and 32)
    if layout.mlp is not None:
        changes["mlp"] = dataclasses.replace(layout.mlp, intermediate_size=2 * hidden)
    if layout.moe is not None:
        e = layout.moe
        changes["moe"] = dataclasses.replace(e, num_experts=8, top_k=min(2, e.top_k), intermediate_size=hidden,
                                             shared_intermediate_size=hidden if e.shared_intermediate_size else 0)
    changes["parallel"] = dataclasses.replace(layout.parallel, tensor=1, pipeline=1)
    return layout.replace(**changes)


# --------------------------------------------------------------------------------------------------
# handles (multiply-adds; the totals are doubled at the end)


def sdpa_macs(q_shape, k_shape, *, causal: bool, masked: bool) -> float:
    """QKᵀ and PV multiply-adds of one SDPA call: 2·d per (query, key) pair and query head. Causal (a
    prefill from an empty cache, Tq = Tk): the triangle Tq(Tq+1)/2; a mask (queries after Tk - Tq cached
    keys): the bottom-right causal pairs Tq·Tk - Tq(Tq-1)/2, what the analytic model counts; else Tq·Tk."""
    b, hq, tq, d = (int(x) for x in q_shape)
    tk = int(k_shape[-2])
    if causal:
        pairs = tq * (tq + 1) / 2
    elif masked:
        pairs = tq * tk - tq * (tq - 1) / 2
    else:
        pairs = tq * tk
    return 2.0 * b * hq * d * pairs


def einsum_macs(equation: str, shapes: list[tuple[int, ...]]) -> float:
    """Multiply-adds of an einsum along numpy's optimal pairwise path, counting only the steps that sum
    over an index (a step that sums nothing is an elementwise product: zero, like every elementwise op)."""
    equation = equation.replace(" ", "")
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        for ch, n in zip(term, shape):
            sizes[ch] = max(sizes.get(ch, 1), int(n))
    path = np.einsum_path(equation, *[np.broadcast_to(np.zeros(()), s) for s in shapes], optimize="optimal")[0][1:]
    ops = list(terms)
    macs = 0.0
    for step in path:
        picked = [ops[i] for i in step]
        for i in sorted(step, reverse=True):
            del ops[i]
        union = set("".join(picked))
        rest = set(out).union(*ops) if ops else set(out)
        kept = "".join(sorted(union & rest))
        if union - rest:
            macs += math.prod(sizes[ch] for ch in union)
        ops.append(kept)
    return macs


def _fvcore_handles() -> dict[str, Callable | None]:
    from fvcore.nn.jit_handles import get_shape

    def sdpa(inputs, outputs):
        mask = inputs[3].type().kind() != "NoneType"
        causal = bool(inputs[5].toIValue())
        return sdpa_macs(get_shape(inputs[0]), get_shape(inputs[1]), causal=causal, masked=mask)

    def einsum(inputs, outputs):
        equation = inputs[0].toIValue()
        shapes = [get_shape(v) for v in inputs[1].node().inputs()]
        return einsum_macs(equation, shapes)

    def addcmul(inputs, outputs):
        return float(math.prod(get_shape(outputs[0])))

    handles: dict[str, Callable | None] = {f"aten::{op}": None for op in _ZERO_OPS}
    handles.update({"aten::scaled_dot_product_attention": sdpa, "aten::einsum": einsum, "aten::addcmul": addcmul})
    return handles


# --------------------------------------------------------------------------------------------------
# running the exported model


class _Prefill(nn.Module):
    """model(ids) with the logits of the last position only (what a server's prefill computes)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(ids, logits_to_keep=1)


def _recurrence_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """linear_scan's result, its last step written as the recurrence itself: the exported log-depth scan
    gives every state, then s_t = a_t·s_{t-1} + b_t is applied once to all of them (one `addcmul`: one
    multiply-add per state element and token; the scan's own muls and adds count zero, as all elementwise
    ops do). The same values, and the count of the sequential recurrence without a loop over tokens."""
    states = _LINEAR_SCAN(a, b)
    previous = torch.cat([torch.zeros_like(states[:, :1]), states[:, :-1]], dim=1)
    return torch.addcmul(b, a, previous)


def _balanced_experts_forward(self, x, weights, idx):
    """Experts.forward for the meta device, where the routing cannot be read: the same ops with the
    T·top_k routed rows spread evenly over the experts (the rows, hence the FLOPs, do not depend on it)."""
    rows = idx.numel()
    counts = [rows // self.num_experts + (1 if e < rows % self.num_experts else 0) for e in range(self.num_experts)]
    return self.grouped(x, weights, idx, counts)


class _TraceableF:
    """torch.nn.functional as the exported module sees it while fvcore traces it: under a jit trace
    `t > 1` is a 0-d tensor, which SDPA refuses as is_causal (and enable_gqa); it is passed on as the bool it holds."""

    def __getattr__(self, name: str):
        return getattr(F, name)

    @staticmethod
    def scaled_dot_product_attention(*args, **kwargs):
        kwargs = {k: bool(v) if k in ("is_causal", "enable_gqa") else v for k, v in kwargs.items()}
        return F.scaled_dot_product_attention(*args, **kwargs)


@contextlib.contextmanager
def counting_patches(meta: bool = False):
    """The exported module's torch path with the Mamba-1 recurrence made countable (and, on meta, balanced
    routing); restored on exit."""
    mod = load_template("model.py")
    saved = (mod.linear_scan, mod.Experts.forward, mod.F)
    previous = mod.set_kernels("torch")
    global _LINEAR_SCAN
    _LINEAR_SCAN = saved[0]
    mod.linear_scan = _recurrence_scan
    mod.F = _TraceableF()
    if meta:
        mod.Experts.forward = _balanced_experts_forward
    try:
        yield mod
    finally:
        mod.linear_scan, mod.Experts.forward, mod.F = saved
        mod.set_kernels(previous)


def build(layout: Layout, device: str = "cpu") -> nn.Module:
    """The exported model of `layout` (random weights, fp32; on meta nothing is allocated), as a prefill."""
    mod = load_template("model.py")
    torch.manual_seed(0)
    return _Prefill(mod.build_model(args=model_args(layout), device=device)).eval()


def fvcore_by_kind(layout: Layout, prompt: int) -> dict[str, float]:
    """FLOPs (2 per multiply-add) by kind from fvcore's FlopCountAnalysis on the CPU."""
    from fvcore.nn import FlopCountAnalysis
    with counting_patches():
        prefill = build(layout, "cpu")
        ids = torch.randint(0, layout.vocab_size, (1, prompt))
        fa = FlopCountAnalysis(prefill, (ids,))
        fa.set_op_handle(**_fvcore_handles())
        fa.unsupported_ops_warnings(False)
        fa.uncalled_modules_warnings(False)
        fa.tracer_warnings("none")
        with torch.no_grad():
            by_op = fa.by_operator()
    return _by_kind(by_op, _FVCORE_KIND, "fvcore")


class _SdpaHandle(torch.overrides.TorchFunctionMode):
    """Counts each scaled_dot_product_attention call with `sdpa_macs` and runs it with every mode off, so
    FlopCounterMode neither misses it (CPU flash kernel) nor counts its decomposition's full square (meta).
    On meta, torch.bincount (MoE load statistics, no meta kernel) returns zeros of its length."""

    def __init__(self):
        super().__init__()
        self.macs = 0.0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k = args[0], args[1]
            mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
            causal = kwargs.get("is_causal", args[5] if len(args) > 5 else False)
            self.macs += sdpa_macs(q.shape, k.shape, causal=bool(causal), masked=mask is not None)
            from torch.utils._python_dispatch import _disable_current_modes
            with _disable_current_modes():
                return func(*args, **kwargs)
        if func is torch.bincount and args[0].is_meta:   # MoE load statistics: no meta kernel, no FLOPs
            n = max(kwargs.get("minlength", 0), 1)
            return torch.zeros(n, dtype=torch.long, device="meta")
        return func(*args, **kwargs)


def flop_counter_by_kind(layout: Layout, prompt: int, device: str = "cpu") -> dict[str, float]:
    """FLOPs by kind from torch.utils.flop_counter.FlopCounterMode (device "meta": real widths, no memory)."""
    from torch.utils.flop_counter import FlopCounterMode

    def addcmul(self_shape, t1, t2, *args, out_shape=None, **kwargs):
        return 2 * math.prod(out_shape)   # FlopCounterMode's unit is FLOPs (mm: 2·m·n·k)

    with counting_patches(meta=device == "meta"):
        prefill = build(layout, device)
        ids = torch.randint(0, layout.vocab_size, (1, prompt), device=device) if device != "meta" else \
            torch.zeros((1, prompt), dtype=torch.long, device="meta")
        counter = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.addcmul: addcmul})
        sdpa = _SdpaHandle()
        with torch.no_grad(), counter, sdpa:
            prefill(ids)
    by_op = {str(op).split(".")[-1]: n / 2 for op, n in counter.get_flop_counts()["Global"].items()}
    by_op["sdpa"] = sdpa.macs
    return _by_kind(by_op, _DISPATCH_KIND, "FlopCounterMode")


def _by_kind(by_op: dict[str, float], kinds: dict[str, str], counter: str) -> dict[str, float]:
    out = dict.fromkeys(KINDS, 0.0)
    for op, macs in by_op.items():
        op = op.split("::")[-1]
        if not macs:
            continue
        if op not in kinds:
            raise RuntimeError(f"{counter} counted {macs:g} multiply-adds in op {op!r}, which has no kind; "
                               f"known: {sorted(kinds)}")
        out[kinds[op]] += 2.0 * macs
    return out


# --------------------------------------------------------------------------------------------------
# the report


def analytic_by_kind(layout: Layout, prompt: int) -> dict[str, float]:
    split = forward_flops(layout, prompt, logits_tokens=1)
    return {"gemm": split.gemm, "attention": split.attention, "scan": split.scan}


def measure_flops(layout: Layout, prompt: int = 256, *, full: bool = False) -> dict[str, Any]:
    """{"layout", "prompt", "widths", "counter", "total": {analytic, measured}, "by_kind": {KIND: {analytic,
    measured}}, "cross_check": {KIND: FlopCounterMode's FLOPs}}. Default: the width-reduced copy, fvcore on
    the CPU (measured) and FlopCounterMode (cross-check). full: real widths on the meta device, where only
    FlopCounterMode can count (a jit trace needs real tensors); it is then the measured column."""
    target = layout if full else reduced(layout)
    analytic = analytic_by_kind(target, prompt)
    if full:
        measured = flop_counter_by_kind(target, prompt, device="meta")
        cross, counter = None, "torch.utils.flop_counter.FlopCounterMode (meta device)"
    else:
        measured = fvcore_by_kind(target, prompt)
        cross, counter = flop_counter_by_kind(target, prompt), "fvcore.nn.FlopCountAnalysis (cpu)"
    by_kind = {k: {"analytic": analytic[k], "measured": measured[k], "error": _error(analytic[k], measured[k])}
               for k in KINDS}
    total_a, total_m = sum(analytic.values()), sum(measured.values())
    out = {"layout": layout.name, "measured_on": target.name, "prompt": prompt,
           "widths": "full" if full else "reduced", "counter": counter,
           "total": {"analytic": total_a, "measured": total_m, "error": _error(total_a, total_m)},
           "by_kind": by_kind}
    if cross is not None:
        out["cross_check"] = {"counter": "torch.utils.flop_counter.FlopCounterMode (cpu)", **cross}
    return out


def _error(analytic: float, measured: float) -> float | None:
    """The timing report's relative error, plus: 0 when both counts are 0 (a kind the layout lacks)."""
    return 0.0 if analytic == measured == 0 else relative_error(analytic, measured)
