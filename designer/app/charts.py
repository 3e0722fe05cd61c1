"""Plotly figure builders for the app. They draw what the library computed; they compute nothing themselves."""
from __future__ import annotations

import math
import plotly.graph_objects as go

from designer.layout import SYMBOLS, Layout

# colour-blind-safe (Tableau 10) and the same hue for a kind on every page
KIND_COLOURS = {"M": "#4C9F70", "*": "#F58518", "-": "#4C78A8", "E": "#B279A2"}
KIND_LABELS = {"M": "Mamba (M)", "*": "Attention (*)", "-": "MLP (-)", "E": "MoE (E)"}
SEVERITY_COLOURS = {"error": "#D62728", "warning": "#E8B000", "info": "#7F7F7F"}
ROW_RANGE = (8, 16)    # layers per row of the strip: wide enough cells for 3-digit indices at 1280 px
FONT = dict(family="Source Sans Pro, sans-serif", size=13)


def block_summary(layout: Layout, symbol: str) -> str:
    """One or two lines with the sizes of a block kind, for hover text (HTML line breaks)."""
    h = layout.hidden_size
    if symbol == "M" and layout.mamba is not None:
        m = layout.mamba
        if m.version == 2:
            return (f"Mamba-2: {m.num_heads} heads × {m.head_dim} (d_inner {m.d_inner(h)})<br>"
                    f"state {m.state_size}, {m.n_groups} groups, conv {m.conv_kernel}")
        return (f"Mamba-1: d_inner {m.d_inner(h)} (expand {m.expand}), state {m.state_size}<br>"
                f"dt_rank {m.dt_rank_value(h)}, conv {m.conv_kernel}")
    if symbol == "*" and layout.attention is not None:
        a = layout.attention
        pos = "no position embedding" if a.rope_theta is None else f"RoPE θ={a.rope_theta:g}"
        return f"attention: {a.num_heads} Q / {a.num_kv_heads} KV heads × {a.head_dim}<br>{pos}"
    if symbol == "-" and layout.mlp is not None:
        f = layout.mlp
        return f"MLP ({f.activation}): {h} → {f.intermediate_size} → {h}"
    if symbol == "E" and layout.moe is not None:
        e = layout.moe
        shared = f", shared expert {e.shared_intermediate_size}" if e.shared_intermediate_size else ""
        return f"MoE: {e.num_experts} experts, top-{e.top_k}<br>expert FFN {e.intermediate_size}{shared}"
    return f"{SYMBOLS.get(symbol, symbol)}: no sizes"


def strip_row_length(pattern: str, lo: int = ROW_RANGE[0], hi: int = ROW_RANGE[1]) -> int:
    """Layers per row: the width in lo..hi at which the pattern repeats best, so a periodic layout lines up.

    Nemotron-H repeats every 11 layers (M-M-M-M-M*-), so its attention layers form one column; a
    Transformer (*-) repeats every 2 and gets the widest even row. Ties go to the wider row."""
    n = len(pattern)
    if n <= hi:
        return max(1, n)
    hi = max(hi, -(-n // 24))            # very deep stacks: at most ~24 rows

    def score(p: int) -> float:
        return sum(pattern[i] == pattern[i + p] for i in range(n - p)) / (n - p)
    return max(range(lo, hi + 1), key=lambda p: (round(score(p), 3), p))


def pattern_strip(layout: Layout, *, selected: tuple[int, int] | None = None,
                  flagged: dict[int, str] | None = None, per_row: int | None = None) -> go.Figure:
    """The pattern as rows of coloured cells, one per layer, labelled with its index.

    `selected`: an inclusive layer range, outlined. `flagged`: layer -> worst rule severity, marked with a
    coloured dot in the cell's corner. Each bar carries its layer index as customdata (for click selection)."""
    pattern, flagged = layout.pattern, flagged or {}
    n = len(pattern)
    per_row = per_row or strip_row_length(pattern)
    rows = -(-n // per_row)
    summaries = {s: block_summary(layout, s) for s in SYMBOLS}
    fig = go.Figure()
    for sym in SYMBOLS:
        idx = [i for i, s in enumerate(pattern) if s == sym]
        if not idx:
            continue
        fig.add_trace(go.Bar(
            name=KIND_LABELS[sym], x=[i % per_row for i in idx], y=[0.84] * len(idx),
            base=[i // per_row + 0.08 for i in idx], width=0.92, customdata=idx,
            marker=dict(color=KIND_COLOURS[sym], line=dict(width=0)),
            text=[str(i) for i in idx], textposition="inside", insidetextanchor="middle", textangle=0,
            textfont=dict(color="white", size=12), constraintext="none",
            hovertext=[f"<b>layer {i}</b> · {KIND_LABELS[sym]}<br>{summaries[sym]}" for i in idx],
            hoverinfo="text", hoverlabel=dict(align="left")))
    for severity in ("info", "warning", "error"):
        idx = [i for i, s in flagged.items() if s == severity and 0 <= i < n]
        if not idx:
            continue
        fig.add_trace(go.Scatter(
            name=f"rule {severity}", x=[i % per_row + 0.33 for i in idx], y=[i // per_row + 0.24 for i in idx],
            mode="markers", marker=dict(color=SEVERITY_COLOURS[severity], size=10, symbol="circle",
                                        line=dict(color="white", width=1.5)),
            customdata=idx, hovertext=[f"layer {i}: rule {severity}, see Rules" for i in idx], hoverinfo="text"))
    if selected is not None:
        lo, hi = max(0, min(selected)), min(n - 1, max(selected))
        for r in range(lo // per_row, hi // per_row + 1):      # one outline per row the selection spans
            c0 = max(lo, r * per_row) - r * per_row
            c1 = min(hi, (r + 1) * per_row - 1) - r * per_row
            fig.add_shape(type="rect", x0=c0 - 0.5, x1=c1 + 0.5, y0=r + 0.02, y1=r + 0.98,
                          line=dict(color="#111111", width=3), fillcolor="rgba(0,0,0,0)", layer="above")
    fig.update_layout(
        barmode="overlay", height=70 + 34 * rows, margin=dict(l=64, r=8, t=6, b=8), font=FONT,
        plot_bgcolor="white", paper_bgcolor="white", dragmode="select", bargap=0, clickmode="event+select",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, font=dict(size=12)),
        uniformtext=dict(minsize=9, mode="show"))
    fig.update_xaxes(range=[-0.55, per_row - 0.45], showgrid=False, zeroline=False, fixedrange=True,
                     showticklabels=False)
    fig.update_yaxes(range=[rows + 0.02, -0.02], showgrid=False, zeroline=False, fixedrange=True,
                     tickmode="array", tickvals=[r + 0.5 for r in range(rows)],
                     ticktext=[f"{r * per_row}–{min(n, (r + 1) * per_row) - 1}" for r in range(rows)])
    return fig


def selected_layers(selection: dict | None) -> list[int]:
    """Layer indices from a plotly_chart selection event on the strip (points carry customdata = layer)."""
    if not selection:
        return []
    out = []
    for p in selection.get("points", []) or []:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)):
            cd = cd[0] if cd else None
        if isinstance(cd, (int, float)):
            out.append(int(cd))
    return sorted(set(out))
