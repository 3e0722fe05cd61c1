"""Structural rules (always on): a layout that breaks these cannot be built or sharded as written."""
from __future__ import annotations

from typing import Iterator

from designer.layout import (ATTENTION, BLOCK_OF_SYMBOL, MAMBA, MLP, MOE, SYMBOLS, divisors_near, size_fields,
                             tensor_parallel_sizes)
from designer.rules.engine import Context, Fix, Hit, rule

ALIGN = 64  # tensor-core friendly multiple for GEMM dimensions


def _first(layout, symbol: str) -> int | None:
    i = layout.pattern.find(symbol)
    return i if i >= 0 else None


@rule("ST001", "structural", "error", "unknown layer symbol",
      "Each pattern symbol must be one of M (Mamba), * (attention), - (MLP), E (MoE), as in Megatron-LM.")
def unknown_symbol(ctx: Context) -> Iterator[Hit]:
    for i, ch in enumerate(ctx.layout.pattern):
        if ch not in SYMBOLS:
            yield Hit(i, f"layer {i} has unknown symbol {ch!r}; expected one of M * - E",
                      Fix("delete", i, None, f"delete layer {i} ({ch!r})"))


@rule("ST002", "structural", "error", "symbol used without its config block",
      "A block kind needs its sizes (mamba:, attention:, mlp:, moe:) before it can be built or profiled.")
def block_missing(ctx: Context) -> Iterator[Hit]:
    lay = ctx.layout
    for sym, block in BLOCK_OF_SYMBOL.items():
        first = _first(lay, sym)
        if first is not None and getattr(lay, block) is None:
            yield Hit(first, f"layer {first} is {SYMBOLS[sym]} ('{sym}') but the layout has no '{block}:' block")


def _int_fields(cfg) -> Iterator[tuple[str, object]]:
    """The size fields of a config block (the layout schema's positive integers) that hold a number."""
    for name in size_fields(type(cfg)):
        value = getattr(cfg, name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            yield name, value


@rule("ST003", "structural", "error", "non-positive or non-integer size",
      "Every width, head count and kernel size must be a positive integer.")
def bad_sizes(ctx: Context) -> Iterator[Hit]:
    lay = ctx.layout
    for key in ("hidden_size", "vocab_size"):
        v = getattr(lay, key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            yield Hit(None, f"{key} must be a positive integer, got {v!r}")
    for sym, block in BLOCK_OF_SYMBOL.items():
        cfg = getattr(lay, block)
        if cfg is None or sym not in lay.pattern:
            continue
        for name, v in _int_fields(cfg):
            if not float(v).is_integer() or v < 1:
                yield Hit(_first(lay, sym), f"{block}.{name} must be a positive integer, got {v!r}")


@rule("ST004", "structural", "error", "query heads not divisible by KV heads",
      "Grouped-query attention shares each KV head among num_heads / num_kv_heads query heads.")
def gqa_divisible(ctx: Context) -> Iterator[Hit]:
    a = ctx.layout.attention
    if a is not None and ATTENTION in ctx.layout.pattern and a.num_kv_heads > 0 and a.num_heads % a.num_kv_heads:
        yield Hit(_first(ctx.layout, ATTENTION), f"attention.num_heads {a.num_heads} is not divisible by "
                  f"attention.num_kv_heads {a.num_kv_heads}; expected a divisor, e.g. "
                  f"{_divisors_near(a.num_heads, a.num_kv_heads)}")


@rule("ST005", "structural", "error", "Mamba heads not divisible by groups",
      "Mamba-2 shares B and C within a group of heads: num_heads must be a multiple of n_groups.")
def mamba_groups(ctx: Context) -> Iterator[Hit]:
    m = ctx.layout.mamba
    if m is not None and m.version == 2 and MAMBA in ctx.layout.pattern and m.n_groups > 0 and m.num_heads % m.n_groups:
        yield Hit(_first(ctx.layout, MAMBA), f"mamba.num_heads {m.num_heads} is not divisible by mamba.n_groups "
                  f"{m.n_groups}; expected a divisor, e.g. {_divisors_near(m.num_heads, m.n_groups)}")


@rule("ST006", "structural", "error", "top_k greater than the number of experts",
      "The router picks top_k distinct experts per token; it cannot pick more than exist.")
def moe_topk(ctx: Context) -> Iterator[Hit]:
    e = ctx.layout.moe
    if e is not None and MOE in ctx.layout.pattern and e.top_k > e.num_experts:
        yield Hit(_first(ctx.layout, MOE), f"moe.top_k {e.top_k} > moe.num_experts {e.num_experts}; "
                  f"expected top_k <= {e.num_experts}")


@rule("ST007", "structural", "error", "not divisible by the tensor-parallel size",
      "Tensor parallelism splits heads, groups and FFN columns evenly across GPUs (Megatron-LM).")
def tensor_parallel(ctx: Context) -> Iterator[Hit]:
    lay, tp = ctx.layout, ctx.layout.parallel.tensor
    if tp <= 1:
        return
    for sym, name, value in tensor_parallel_sizes(lay):
        if value % tp:
            yield Hit(_first(lay, sym), f"{name} {value} is not divisible by parallel.tensor {tp}; "
                      f"expected a multiple of {tp}")


@rule("ST008", "structural", "warning", f"dimension not a multiple of {ALIGN}",
      f"GEMM dimensions that are multiples of {ALIGN} keep tensor cores fully used; others waste work on padding.")
def alignment(ctx: Context) -> Iterator[Hit]:
    lay = ctx.layout
    dims: list[tuple[int | None, str, int]] = [(None, "hidden_size", lay.hidden_size),
                                               (None, "vocab_size", lay.vocab_size)]
    if lay.mlp is not None and MLP in lay.pattern:
        dims.append((_first(lay, MLP), "mlp.intermediate_size", lay.mlp.intermediate_size))
    if lay.moe is not None and MOE in lay.pattern:
        dims.append((_first(lay, MOE), "moe.intermediate_size", lay.moe.intermediate_size))
    if lay.mamba is not None and MAMBA in lay.pattern:
        dims.append((_first(lay, MAMBA), "mamba d_inner", lay.mamba.d_inner(lay.hidden_size)))
    for layer, name, value in dims:
        if value % ALIGN:
            yield Hit(layer, f"{name} {value} is not a multiple of {ALIGN} "
                      f"(nearest: {max(ALIGN, round(value / ALIGN) * ALIGN)})")


@rule("ST009", "structural", "error", "more pipeline stages than layers",
      "Each pipeline stage needs at least one layer.")
def pipeline(ctx: Context) -> Iterator[Hit]:
    lay = ctx.layout
    if lay.parallel.pipeline > lay.num_layers:
        yield Hit(None, f"parallel.pipeline {lay.parallel.pipeline} > {lay.num_layers} layers; expected at most "
                  f"{lay.num_layers}")


def _divisors_near(n: int, target: int) -> str:
    return ", ".join(map(str, sorted(divisors_near(n, target)[:3])))
