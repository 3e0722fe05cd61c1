"""The Nemotron-H family's published layout rules (arXiv 2504.03624 §2.1; summary in shared/reference).

An MoE block (E) counts as an FFN here: Nemotron-3 MoE hybrids follow the same placement."""
from __future__ import annotations

from typing import Iterator

from designer.layout import ATTENTION, MAMBA
from designer.rules.engine import Context, Fix, Hit, rule
from designer.rules.graph import FFN_SYMBOLS, is_ffn, layers, layers_of, next_block

EVEN_SPREAD_TOLERANCE = 0.5   # widest minus narrowest gap between attention layers, as a share of L/n_attention
EDGE_TOLERANCE = 1.5          # the first/last attention may sit at most 1.5 ideal gaps from the ends


@rule("NH001", "nemotron-h", "error", "first layer is Mamba",
      "Nemotron-H starts with a Mamba-2 layer: the first block sees raw embeddings and a mixer, not an FFN or "
      "attention without prior context mixing, works best there (paper §2.1).")
def first_is_mamba(ctx: Context) -> Iterator[Hit]:
    g = ctx.graph
    first = layers(g)[0]
    if g.nodes[first]["symbol"] != MAMBA:
        yield Hit(first, f"layer 0 is {g.nodes[first]['kind']}; expected mamba (M)",
                  Fix("insert", 0, MAMBA, "insert a Mamba layer (M) before layer 0"))


@rule("NH002", "nemotron-h", "error", "last layer is an FFN",
      "Nemotron-H ends with an FFN so the final representation is refined per token before the LM head (§2.1).")
def last_is_ffn(ctx: Context) -> Iterator[Hit]:
    g = ctx.graph
    last = layers(g)[-1]
    if not is_ffn(g, last):
        yield Hit(last, f"layer {last} (the last) is {g.nodes[last]['kind']}; expected an FFN (- or E)",
                  Fix("append", last + 1, "-", f"append an MLP layer (-) after layer {last}"))


@rule("NH003", "nemotron-h", "error", "attention is followed by an FFN",
      "Every self-attention layer sits immediately before an FFN layer in Nemotron-H (§2.1), as in a Transformer "
      "block.")
def attention_then_ffn(ctx: Context) -> Iterator[Hit]:
    g = ctx.graph
    for i in layers_of(g, ATTENTION):
        nxt = next_block(g, i)
        if not is_ffn(g, nxt):
            what = "the LM head (it is the last layer)" if nxt == "head" else f"layer {nxt} ({g.nodes[nxt]['kind']})"
            yield Hit(i, f"attention layer {i} is followed by {what}; expected an FFN (- or E)",
                      Fix("insert", i + 1, "-", f"insert an MLP layer (-) after attention layer {i}"))


@rule("NH004", "nemotron-h", "warning", "attention share near the target",
      "About 8% of Nemotron-H layers are attention (4 of 52, 10 of 118): enough for in-context recall, few enough "
      "that the KV cache stays small. Target and tolerance: constraints.attention_fraction(_tolerance).")
def attention_share(ctx: Context) -> Iterator[Hit]:
    lay = ctx.layout
    c = lay.constraints
    n_att, n = lay.count(ATTENTION), lay.num_layers
    share = n_att / n
    if abs(share - c.attention_fraction) > c.attention_fraction_tolerance:
        ideal = max(1, round(c.attention_fraction * n))
        yield Hit(None, f"{n_att} of {n} layers are attention ({share:.1%}); expected "
                  f"{c.attention_fraction:.0%} ± {c.attention_fraction_tolerance:.0%}, i.e. about {ideal}")


@rule("NH005", "nemotron-h", "warning", "attention layers evenly spread",
      "Nemotron-H spreads its few attention layers evenly through the depth so every part of the stack can "
      "retrieve from the context (§2.1).")
def attention_spread(ctx: Context) -> Iterator[Hit]:
    att = layers_of(ctx.graph, ATTENTION)
    n = ctx.layout.num_layers
    if not att:
        return
    ideal = n / len(att)
    gaps = [b - a for a, b in zip(att, att[1:])]
    lead, tail = att[0] + 1, n - att[-1]
    if gaps and (max(gaps) - min(gaps)) / ideal > EVEN_SPREAD_TOLERANCE:
        unevenness = (max(gaps) - min(gaps)) / ideal
        widest = max(range(len(gaps)), key=lambda k: gaps[k])
        yield Hit(att[widest + 1], f"attention gaps range {min(gaps)}..{max(gaps)} layers (ideal {ideal:.1f}): "
                  f"uneven by {unevenness:.0%} of the ideal gap (tolerance {EVEN_SPREAD_TOLERANCE:.0%}); the widest "
                  f"is {att[widest]}->{att[widest + 1]}")
    if lead > EDGE_TOLERANCE * ideal:
        yield Hit(att[0], f"first attention at layer {att[0]}: {lead} layers from the start, more than "
                  f"{EDGE_TOLERANCE} x the ideal gap {ideal:.1f}")
    if tail > EDGE_TOLERANCE * ideal:
        yield Hit(att[-1], f"last attention at layer {att[-1]}: {tail} layers from the end, more than "
                  f"{EDGE_TOLERANCE} x the ideal gap {ideal:.1f}")


@rule("NH006", "nemotron-h", "warning", "remaining layers split evenly between Mamba and FFN",
      "Apart from attention, Nemotron-H alternates Mamba-2 and FFN layers, so their counts match (§2.1).")
def mamba_ffn_balance(ctx: Context) -> Iterator[Hit]:
    lay = ctx.layout
    n_m = lay.count(MAMBA)
    n_f = sum(lay.count(s) for s in FFN_SYMBOLS)
    if abs(n_m - n_f) > 1:
        yield Hit(None, f"{n_m} Mamba vs {n_f} FFN layers (difference {abs(n_m - n_f)}); expected equal counts "
                  f"(difference at most 1)")


@rule("NH007", "nemotron-h", "info", "FP8 recipe keeps the edge GEMM layers in BF16",
      "Nemotron-H trains in FP8 (E4M3 forward, E5M2 gradients, per-tensor current scaling) but keeps the first "
      "and last 4 GEMM layers in BF16 for stability (§2.4).")
def fp8_edges(ctx: Context) -> Iterator[Hit]:
    lay = ctx.layout
    if lay.training.precision != "fp8":
        return
    k = lay.training.bf16_edge_layers
    n = lay.num_layers
    first = list(range(min(k, n)))
    last = list(range(max(0, n - k), n))
    yield Hit(None, f"FP8 training: layers {first} and {last} keep BF16 GEMMs (training.bf16_edge_layers = {k}); "
              f"the exporter's Megatron flags say so")
