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
        plot_bgcolor="white", paper_bgcolor="white", bargap=0,
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


# --------------------------------------------------------------------------------------------------
# Profile and Compare figures: they take `analytic.profile(...).to_dict()` and `analytic.sweep(...)` output
# and only change units (bytes -> GiB, s -> ms) for the axes.

GIB = 2 ** 30
LAYOUT_COLOURS = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#9D755D", "#FF9DA6")
# memory stack: same order and meaning as the HTML report of `designer compare --html`
MEMORY_STACK = (("weights_bytes", "weights", "#8C8C8C"), ("kv_cache_bytes", "KV cache", "#E45756"),
                ("ssm_state_bytes", "SSM + conv state", "#54A24B"), ("activation_bytes", "activations", "#EECA3B"))
PARAM_PARTS = (("embedding", "embedding"), ("lm_head", "LM head"), ("mamba", "Mamba"), ("attention", "attention"),
               ("mlp", "MLP"), ("moe", "MoE"))


def _style(fig: go.Figure, *, height: int, title: str, legend: bool = True, top: int | None = None) -> go.Figure:
    """Title at the top, then (optionally) a one-row legend under it, then the plot: nothing overlaps."""
    top = top if top is not None else (92 if legend else 48)
    fig.update_layout(
        title=dict(text=title, x=0, xanchor="left", y=1 - 10 / height, yanchor="top", yref="container",
                   font=dict(size=15)),
        height=height, font=FONT, margin=dict(l=10, r=16, t=top, b=10), plot_bgcolor="white",
        paper_bgcolor="white", showlegend=legend, hovermode="closest",
        legend=dict(orientation="h", yref="container", y=1 - 40 / height, yanchor="top", x=0, font=dict(size=12)))
    fig.update_xaxes(showgrid=True, gridcolor="#EEEEEE", zeroline=False, linecolor="#999999", automargin=True)
    fig.update_yaxes(showgrid=True, gridcolor="#EEEEEE", zeroline=False, linecolor="#999999", automargin=True)
    return fig


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """1-2-5 tick values between lo and hi with short labels (1, 2, 5, 10, ..., 1k, 2k, ...)."""
    vals, labels = [], []
    decade = 10.0 ** math.floor(math.log10(lo)) if lo > 0 else 1.0
    while decade <= hi * 10:
        for m in (1, 2, 5):
            v = m * decade
            if lo / 1.01 <= v <= hi * 1.01:
                vals.append(v)
                labels.append(_short(v))
        decade *= 10
    return vals, labels


def _short(v: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{unit}"
    return f"{v:.3g}"


def layout_colour(i: int) -> str:
    return LAYOUT_COLOURS[i % len(LAYOUT_COLOURS)]


def params_figure(profile: dict) -> go.Figure:
    """Parameters by part (billions): embedding, LM head and each block kind."""
    p = profile["params"]
    parts = [(label, p["by_kind"].get(key, p.get(key, 0)) or 0) for key, label in PARAM_PARTS]
    parts = [(label, v) for label, v in parts if v]
    colours = {"Mamba": KIND_COLOURS["M"], "attention": KIND_COLOURS["*"], "MLP": KIND_COLOURS["-"],
               "MoE": KIND_COLOURS["E"]}
    fig = go.Figure(go.Bar(
        y=[label for label, _ in parts], x=[v / 1e9 for _, v in parts], orientation="h",
        marker_color=[colours.get(label, "#8C8C8C") for label, _ in parts],
        text=[f"{v / 1e9:.2f} B" for _, v in parts], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.3f} billion parameters<extra></extra>"))
    fig = _style(fig, height=300, title=f"Parameters: {p['total'] / 1e9:.2f} B total"
                 + (f", {p['active'] / 1e9:.2f} B active" if p["active"] != p["total"] else ""), legend=False)
    fig.update_layout(margin=dict(r=60))
    fig.update_xaxes(title_text="parameters (billions)")
    fig.update_yaxes(autorange="reversed")
    return fig


def memory_breakdown_figure(profile: dict) -> go.Figure:
    """Per-GPU memory at the chosen batch and context, one bar per part and the total, against usable memory."""
    m, s = profile["memory"], profile["setup"]
    rows = [(label, m[key] / GIB, colour) for key, label, colour in MEMORY_STACK]
    rows.append(("total", m["total_bytes"] / GIB, "#333333" if m["fits"] else "#D62728"))
    fig = go.Figure(go.Bar(
        y=[r[0] for r in rows], x=[r[1] for r in rows], orientation="h", marker_color=[r[2] for r in rows],
        text=[f"{r[1]:.2f} GiB" for r in rows], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.3f} GiB<extra></extra>"))
    cap = m["capacity_bytes"] / GIB
    fig.add_vline(x=cap, line=dict(color="black", dash="dash", width=2))
    fig.add_annotation(x=cap, y=1.0, yref="paper", text=f"usable {cap:.1f} GiB", showarrow=False,
                       xanchor="right", yanchor="bottom", font=dict(size=12))
    verdict = "fits" if m["fits"] else "does NOT fit"
    fig = _style(fig, height=300, title=f"Memory per GPU: {verdict} (batch {s['batch']:,}, "
                 f"{m['context_tokens']:,} tokens)", legend=False, top=60)
    fig.update_layout(margin=dict(r=70))
    fig.update_xaxes(title_text="GiB per GPU", range=[0, max(cap, m["total_bytes"] / GIB) * 1.12])
    fig.update_yaxes(autorange="reversed")
    return fig


def memory_vs_context_figure(sweeps: list[dict], names: list[str] | None = None) -> go.Figure:
    """One panel per layout: weights / KV cache / SSM state / activations stacked over the context."""
    from plotly.subplots import make_subplots
    names = names or [s["layout"] for s in sweeps]
    cols = len(sweeps) if len(sweeps) <= 3 else 2
    rows = -(-len(sweeps) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, shared_yaxes=False,
                        horizontal_spacing=0.08, vertical_spacing=0.16 if rows > 1 else 0.1)
    for i, s in enumerate(sweeps):
        r, c = i // cols + 1, i % cols + 1
        m = s["memory_vs_context"]
        for key, label, colour in MEMORY_STACK:
            fig.add_trace(go.Scatter(x=m["context"], y=[v / GIB for v in m[key]], name=label, legendgroup=label,
                                     showlegend=i == 0, stackgroup=f"s{i}", mode="lines", line=dict(color=colour),
                                     hovertemplate=f"{names[i]}<br>{label}: %{{y:.1f}} GiB<extra></extra>"),
                          row=r, col=c)
        fig.add_trace(go.Scatter(x=m["context"], y=[m["capacity_bytes"] / GIB] * len(m["context"]),
                                 name="usable GPU memory", legendgroup="cap", showlegend=i == 0, mode="lines",
                                 line=dict(color="black", dash="dash", width=1.5),
                                 hovertemplate="usable: %{y:.1f} GiB<extra></extra>"), row=r, col=c)
        fig.update_xaxes(type="log", title_text="context (tokens)" if r == rows else None, row=r, col=c,
                         dtick=1, tickformat="~s")
        fig.update_yaxes(title_text="GiB per GPU" if c == 1 else None, row=r, col=c, rangemode="tozero")
    fig = _style(fig, height=130 + 300 * rows, title="Memory vs context, stacked by weights / KV cache / SSM state",
                 top=110)
    fig.update_annotations(font_size=13)
    return fig


def latency_vs_context_figure(sweeps: list[dict], names: list[str] | None = None) -> go.Figure:
    """TTFT (s) of a prompt of each length and TPOT (ms) of a decode step at that context."""
    from plotly.subplots import make_subplots
    names = names or [s["layout"] for s in sweeps]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=["time to first token vs prompt length", "time per output token vs context"])
    for i, s in enumerate(sweeps):
        lat, colour = s["latency_vs_context"], layout_colour(i)
        fig.add_trace(go.Scatter(x=lat["context"], y=lat["ttft_s"], name=names[i], legendgroup=names[i],
                                 mode="lines", line=dict(color=colour, width=2.5),
                                 hovertemplate=f"{names[i]}: %{{y:.3g}} s<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=lat["context"], y=[t * 1e3 for t in lat["tpot_s"]], name=names[i],
                                 legendgroup=names[i], showlegend=False, mode="lines",
                                 line=dict(color=colour, width=2.5),
                                 hovertemplate=f"{names[i]}: %{{y:.3g}} ms<extra></extra>"), row=1, col=2)
    fig.update_xaxes(type="log", dtick=1, tickformat="~s")
    fig.update_xaxes(title_text="prompt (tokens)", row=1, col=1)
    fig.update_xaxes(title_text="context (tokens)", row=1, col=2)
    ttft = [v for s in sweeps for v in s["latency_vs_context"]["ttft_s"] if v and v > 0]
    vals, labels = log_ticks(min(ttft), max(ttft)) if ttft else ([], [])
    fig.update_yaxes(type="log", title_text="TTFT (s)", row=1, col=1, tickvals=vals, ticktext=labels)
    fig.update_yaxes(title_text="TPOT (ms)", row=1, col=2, rangemode="tozero")
    fig = _style(fig, height=430, title="Latency vs context", top=104)
    fig.update_annotations(font_size=13)
    return fig


def throughput_vs_batch_figure(sweeps: list[dict], names: list[str] | None = None, *, prompt: int,
                               gen: int) -> go.Figure:
    names = names or [s["layout"] for s in sweeps]
    fig = go.Figure()
    for i, s in enumerate(sweeps):
        t = s["throughput_vs_batch"]
        pts = [(b, v) for b, v in zip(t["batch"], t["output_tokens_per_s_per_gpu"]) if v is not None]
        fig.add_trace(go.Scatter(x=[b for b, _ in pts], y=[v for _, v in pts], mode="lines+markers",
                                 name=f"{names[i]} (max batch {t['max_batch']:,})", line=dict(color=layout_colour(i)),
                                 hovertemplate=f"{names[i]}<br>batch %{{x}}: %{{y:,.0f}} tokens/s per GPU"
                                               "<extra></extra>"))
    top = max([1] + [s["throughput_vs_batch"]["max_batch"] for s in sweeps])
    vals, labels = log_ticks(1, top)
    fig.update_xaxes(type="log", title_text="batch (concurrent requests)", tickvals=vals, ticktext=labels)
    fig.update_yaxes(title_text="output tokens/s per GPU", rangemode="tozero")
    fig = _style(fig, height=400, title=f"Throughput vs batch ({prompt:,} in / {gen:,} out tokens)")
    return fig


def max_batch_vs_context_figure(sweeps: list[dict], names: list[str] | None = None, *, gen: int) -> go.Figure:
    names = names or [s["layout"] for s in sweeps]
    fig = go.Figure()
    for i, s in enumerate(sweeps):
        m = s["max_batch_vs_context"]
        fig.add_trace(go.Scatter(x=m["context"], y=[b if b > 0 else None for b in m["max_batch"]], name=names[i],
                                 mode="lines", line=dict(color=layout_colour(i), width=2.5),
                                 hovertemplate=f"{names[i]}<br>%{{x:,}} tokens: batch %{{y:,}}<extra></extra>"))
    fig.update_xaxes(type="log", title_text="prompt (tokens)", dtick=1, tickformat="~s")
    batches = [b for s in sweeps for b in s["max_batch_vs_context"]["max_batch"] if b > 0]
    vals, labels = log_ticks(min(batches), max(batches)) if batches else ([], [])
    fig.update_yaxes(type="log", title_text="max batch (sequences)", tickvals=vals, ticktext=labels)
    fig = _style(fig, height=400, title=f"What fits: max batch vs prompt (+{gen:,} generated)")
    return fig


def throughput_at_max_batch_figure(profiles: list[dict], names: list[str]) -> go.Figure:
    """Output tokens/s per GPU at the largest batch that fits, one bar per layout."""
    vals = [p["throughput"]["max_batch_output_tokens_per_s_per_gpu"] for p in profiles]
    batches = [p["throughput"]["max_batch"] for p in profiles]
    fig = go.Figure(go.Bar(
        x=names, y=vals, marker_color=[layout_colour(i) for i in range(len(names))],
        text=[f"{v:,.0f}<br>batch {b:,}" if b else "does not fit" for v, b in zip(vals, batches)],
        textposition="outside", cliponaxis=False,
        hovertemplate="%{x}: %{y:,.1f} output tokens/s per GPU<extra></extra>"))
    s = profiles[0]["setup"]
    fig = _style(fig, height=400, title=f"Throughput at max batch ({s['prompt']:,} in / {s['gen']:,} out tokens)",
                 legend=False, top=60)
    fig.update_yaxes(title_text="output tokens/s per GPU", rangemode="tozero",
                     range=[0, max(vals + [1]) * 1.25])
    fig.update_xaxes(title_text=None)
    return fig
