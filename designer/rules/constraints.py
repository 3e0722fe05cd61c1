"""User constraints from the layout file's `constraints:` block, checked like any other rule."""
from __future__ import annotations

from typing import Iterator

from designer.layout import ATTENTION, SYMBOLS, pattern_runs
from designer.rules.engine import Context, Hit, rule


@rule("UC001", "constraints", "error", "attention layer count within bounds",
      "Set by the user: constraints.min_attention_layers / max_attention_layers.")
def attention_bounds(ctx: Context) -> Iterator[Hit]:
    c, lay = ctx.layout.constraints, ctx.layout
    n = lay.count(ATTENTION)
    if c.min_attention_layers is not None and n < c.min_attention_layers:
        yield Hit(None, f"{n} attention layers; constraints.min_attention_layers is {c.min_attention_layers}")
    if c.max_attention_layers is not None and n > c.max_attention_layers:
        extra = lay.indices(ATTENTION)[c.max_attention_layers]
        yield Hit(extra, f"{n} attention layers; constraints.max_attention_layers is {c.max_attention_layers} "
                  f"(layer {extra} is the first one over)")


@rule("UC002", "constraints", "error", "layer count within bounds",
      "Set by the user: constraints.min_layers / max_layers.")
def layer_bounds(ctx: Context) -> Iterator[Hit]:
    c, n = ctx.layout.constraints, ctx.layout.num_layers
    if c.min_layers is not None and n < c.min_layers:
        yield Hit(None, f"{n} layers; constraints.min_layers is {c.min_layers}")
    if c.max_layers is not None and n > c.max_layers:
        yield Hit(c.max_layers, f"{n} layers; constraints.max_layers is {c.max_layers}")


@rule("UC003", "constraints", "error", "no run of one kind longer than allowed",
      "Set by the user: constraints.max_consecutive, e.g. {M: 4} forbids five Mamba layers in a row.")
def max_consecutive(ctx: Context) -> Iterator[Hit]:
    limits = ctx.layout.constraints.max_consecutive
    for sym, start, length in pattern_runs(ctx.layout.pattern):
        limit = limits.get(sym)
        if limit is not None and length > limit:
            yield Hit(start, f"layers {start}..{start + length - 1} are {length} {SYMBOLS[sym]} layers in a row; "
                      f"constraints.max_consecutive allows {limit}")


def _params(layout):
    from designer.profile.params import count_params  # the profiler is the one source of parameter counts
    return count_params(layout)


@rule("UC004", "constraints", "error", "parameter budget",
      "Set by the user: constraints.max_params (total) and max_active_params (per token, MoE).")
def param_budget(ctx: Context) -> Iterator[Hit]:
    c = ctx.layout.constraints
    if c.max_params is None and c.max_active_params is None:
        return
    p = _params(ctx.layout)
    if c.max_params is not None and p.total > c.max_params:
        yield Hit(None, f"{p.total / 1e9:.3f}B parameters; constraints.max_params is {c.max_params / 1e9:.3f}B")
    if c.max_active_params is not None and p.active > c.max_active_params:
        yield Hit(None, f"{p.active / 1e9:.3f}B active parameters; constraints.max_active_params is "
                  f"{c.max_active_params / 1e9:.3f}B")
