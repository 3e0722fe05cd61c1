"""FLOP counts (one multiply-add = 2 FLOPs) of prefill, decode and training, from the block registry.

GEMMs: 2 x (weights a token passes through) per token, the LM head included where logits are computed.
Sequence mixing: attention's causal QK/AV terms and the Mamba conv + SSD/selective-scan terms
(`BlockCost.prefill_core` / `decode_core_*`). Norms, activation functions, softmax, rotary and biases
are not counted (they are memory-bound and a fraction of a percent of the FLOPs).
"""
from __future__ import annotations

from dataclasses import dataclass

from designer.layout import Layout, LayoutError
from designer.profile.blocks import BlockCost, block_costs, vocab_per_rank

# Training: backward = 2x forward (weight and input gradients); recomputation adds forward work.
TRAIN_FORWARD_MULTIPLIER = {"none": 3.0, "full": 4.0}


@dataclass(frozen=True)
class FlopSplit:
    """FLOPs of one pass split by which efficiency they run at."""

    gemm: float
    attention: float
    scan: float

    @property
    def total(self) -> float:
        return self.gemm + self.attention + self.scan


def lm_head_flops_per_token(layout: Layout, tp: int = 1) -> float:
    return 2.0 * vocab_per_rank(layout, tp) * layout.hidden_size


def forward_flops(layout: Layout, tokens: int, *, cached: int = 0, logits_tokens: int = 1, tp: int = 1,
                  costs: dict[str, BlockCost] | None = None) -> FlopSplit:
    """One sequence's forward over `tokens` new tokens after `cached` tokens already in the cache."""
    costs = block_costs(layout, tp) if costs is None else costs
    gemm = attention = scan = 0.0
    for s, c in costs.items():
        n = layout.count(s)
        gemm += n * 2.0 * c.active_matmul_params * tokens
        core = n * c.prefill_core(tokens, cached)
        if c.core_kind == "attention":
            attention += core
        else:
            scan += core
    gemm += lm_head_flops_per_token(layout, tp) * logits_tokens
    return FlopSplit(gemm, attention, scan)


def prefill_flops(layout: Layout, prompt: int, *, logits: str = "last", tp: int = 1,
                  costs: dict[str, BlockCost] | None = None) -> float:
    """Prefill of one prompt. logits="last" (what a server computes) or "all" (a plain HF forward)."""
    if logits not in ("last", "all"):
        raise LayoutError(f"logits must be 'last' or 'all', got {logits!r}")
    return forward_flops(layout, prompt, logits_tokens=1 if logits == "last" else prompt, tp=tp,
                         costs=costs).total


def decode_flops_split(layout: Layout, context: int, *, tp: int = 1,
                       costs: dict[str, BlockCost] | None = None) -> FlopSplit:
    """One decoded token that attends to `context` keys (the cache plus itself)."""
    costs = block_costs(layout, tp) if costs is None else costs
    gemm = lm_head_flops_per_token(layout, tp)
    attention = scan = 0.0
    for s, c in costs.items():
        n = layout.count(s)
        gemm += n * 2.0 * c.active_matmul_params
        core = n * (c.decode_core_flops + c.decode_core_flops_per_key * context)
        if c.core_kind == "attention":
            attention += core
        else:
            scan += core
    return FlopSplit(gemm, attention, scan)


def decode_flops_per_token(layout: Layout, context: int, *, tp: int = 1,
                           costs: dict[str, BlockCost] | None = None) -> float:
    return decode_flops_split(layout, context, tp=tp, costs=costs).total


def train_flops_per_token(layout: Layout, *, seq_len: int = 8192, recompute: str = "none", tp: int = 1,
                          costs: dict[str, BlockCost] | None = None) -> float:
    """Forward + backward FLOPs per trained token for sequences of `seq_len` (logits at every position).

    none: 3x forward; full: 4x (the forward is run again before backward); selective: 3x forward plus
    the sequence-mixing cores (attention, SSD/scan, conv) run again.
    """
    fwd = forward_flops(layout, seq_len, logits_tokens=seq_len, tp=tp, costs=costs)
    if recompute == "selective":
        total = 3.0 * fwd.total + fwd.attention + fwd.scan
    elif recompute in TRAIN_FORWARD_MULTIPLIER:
        total = TRAIN_FORWARD_MULTIPLIER[recompute] * fwd.total
    else:
        raise LayoutError(f"unknown recompute mode {recompute!r}; allowed: none, selective, full")
    return total / seq_len
