"""Plotly figure builders for the app and the HTML reports (`designer compare --html`, `designer proxy`).
They draw what the library computed; they compute nothing themselves (only units change: bytes -> GiB,
seconds -> ms). `compare_figures` is the one set of comparison charts: the app's Compare page and the
HTML report both draw it.

Figures are built as plain trace/layout dicts and wrapped without plotly's per-property validation
(`figure()`): validating ~30 traces of 64 points costs 40-50 ms a figure, a sixth of the 300 ms an
interaction may take. tests/test_app_charts.py re-validates every builder's output with plotly instead.
"""
from __future__ import annotations

import copy
import math
from typing import Any

import plotly.graph_objects as go

from designer.layout import SYMBOLS, Layout
from designer.present.format import GIB
from designer.present.measured import points_at

# colour-blind-safe (Tableau 10) and the same hue for a kind on every page
KIND_COLOURS = {"M": "#4C9F70", "*": "#F58518", "-": "#4C78A8", "E": "#B279A2"}
KIND_LABELS = {"M": "Mamba (M)", "*": "Attention (*)", "-": "MLP (-)", "E": "MoE (E)"}
SEVERITY_COLOURS = {"error": "#D62728", "warning": "#E8B000", "info": "#7F7F7F"}
ROW_RANGE = (8, 16)    # layers per row of the strip: wide enough cells for 3-digit indices at 1280 px
FONT = {"family": "Source Sans Pro, sans-serif", "size": 13}
LAYOUT_COLOURS = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#9D755D", "#FF9DA6")
# memory stack, bottom to top
MEMORY_STACK = (("weights_bytes", "weights", "#8C8C8C"), ("kv_cache_bytes", "KV cache", "#E45756"),
                ("ssm_state_bytes", "SSM + conv state", "#54A24B"), ("activation_bytes", "activations", "#EECA3B"))
PARAM_PARTS = (("embedding", "embedding"), ("lm_head", "LM head"), ("mamba", "Mamba"), ("attention", "attention"),
               ("mlp", "MLP"), ("moe", "MoE"))
AXIS = {"showgrid": True, "gridcolor": "#EEEEEE", "zeroline": False, "linecolor": "#999999", "automargin": True}


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A Figure from trace/layout dicts, skipping plotly's validation (see the module docstring)."""
    try:
        return go.Figure(data=data, layout=layout, _validate=False)
    except TypeError:           # a plotly without the private switch: validate
        return go.Figure(data=data, layout=layout)


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def base_layout(*, height: int, title: str, legend: bool = True, top: int | None = None) -> dict:
    """Title at the top, then (optionally) a one-row legend under it, then the plot: nothing overlaps."""
    top = top if top is not None else (92 if legend else 48)
    return {
        "title": {"text": title, "x": 0, "xanchor": "left", "y": 1 - 10 / height, "yanchor": "top",
                  "yref": "container", "font": {"size": 15}},
        "height": height, "font": FONT, "margin": {"l": 10, "r": 16, "t": top, "b": 10},
        "plot_bgcolor": "white", "paper_bgcolor": "white", "showlegend": legend, "hovermode": "closest",
        "legend": {"orientation": "h", "yref": "container", "y": 1 - 40 / height, "yanchor": "top", "x": 0,
                   "font": {"size": 12}},
        "xaxis": dict(AXIS), "yaxis": dict(AXIS),
    }


def grid(rows: int, cols: int, *, hgap: float = 0.08, vgap: float = 0.16,
         titles: list[str] | None = None) -> tuple[dict, list[tuple[str, str]]]:
    """Axis layout for a rows x cols grid of subplots (what make_subplots does, without its cost).

    Returns (layout entries: axes and title annotations, [(xref, yref) per cell, row-major])."""
    if rows < 1 or cols < 1 or not (0 <= hgap * (cols - 1) < 1 and 0 <= vgap * (rows - 1) < 1):
        raise ValueError(f"no room for a {rows} x {cols} grid with gaps {hgap:g} x {vgap:g}")
    entries: dict[str, Any] = {}
    cells, notes = [], []
    for r in range(rows):
        for c in range(cols):
            k = r * cols + c + 1
            suffix = "" if k == 1 else str(k)
            # each edge from its own index (not by adding up widths and gaps, whose rounding put the bottom
            # row's lower edge at -1e-16, which plotly rejects), then held inside [0, 1]
            x0, x1 = _edge(c, cols, hgap), _edge(c + 1, cols, hgap, end=True)
            y0, y1 = _edge(rows - 1 - r, rows, vgap), _edge(rows - r, rows, vgap, end=True)
            entries[f"xaxis{suffix}"] = {**AXIS, "domain": [x0, x1], "anchor": f"y{suffix}"}
            entries[f"yaxis{suffix}"] = {**AXIS, "domain": [y0, y1], "anchor": f"x{suffix}"}
            cells.append((f"x{suffix}", f"y{suffix}"))
            if titles and k <= len(titles):
                notes.append({"text": titles[k - 1], "x": (x0 + x1) / 2, "y": y1, "xref": "paper", "yref": "paper",
                              "xanchor": "center", "yanchor": "bottom", "showarrow": False,
                              "font": {"size": 13, "color": "#555555"}})
    entries["annotations"] = notes
    return entries, cells


def _edge(i: int, n: int, gap: float, *, end: bool = False) -> float:
    """Paper coordinate of cell edge `i` of `n` cells separated by `gap`: the start of cell i, or with `end`
    the end of cell i - 1. Always inside [0, 1]; the outer edges are exactly 0 and 1."""
    if i <= 0:
        return 0.0
    if i >= n and end:
        return 1.0
    size = (1 - gap * (n - 1)) / n
    x = i * size + (i - 1) * gap if end else i * (size + gap)
    return min(1.0, max(0.0, x))


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """1-2-5 tick values between lo and hi with short labels (0.1, 0.2, 0.5, 1, ..., 1k, 2k, ...)."""
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


def _tokens_axis(title: str | None) -> dict:
    """Log axis for token counts: ticks at decades, labelled 1k, 10k, 100k, 1M."""
    return {**AXIS, "type": "log", "dtick": 1, "tickformat": "~s", "title": {"text": title}}


def layout_colour(i: int) -> str:
    return LAYOUT_COLOURS[i % len(LAYOUT_COLOURS)]


# --------------------------------------------------------------------------------------------------
# Editor: the pattern strip


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
    data: list[dict] = []
    for sym in SYMBOLS:
        idx = [i for i, s in enumerate(pattern) if s == sym]
        if not idx:
            continue
        summary = block_summary(layout, sym)
        data.append({
            "type": "bar", "name": KIND_LABELS[sym], "x": [i % per_row for i in idx], "y": [0.84] * len(idx),
            "base": [i // per_row + 0.08 for i in idx], "width": 0.92, "customdata": idx,
            "marker": {"color": KIND_COLOURS[sym], "line": {"width": 0}},
            "text": [str(i) for i in idx], "textposition": "inside", "insidetextanchor": "middle", "textangle": 0,
            "textfont": {"color": "white", "size": 12}, "constraintext": "none",
            "hovertext": [f"<b>layer {i}</b> · {KIND_LABELS[sym]}<br>{summary}" for i in idx],
            "hoverinfo": "text", "hoverlabel": {"align": "left", "font": {"size": 13}}})
    for severity in ("info", "warning", "error"):
        idx = [i for i, s in flagged.items() if s == severity and 0 <= i < n]
        if idx:
            data.append({
                "type": "scatter", "name": f"rule {severity}", "x": [i % per_row + 0.33 for i in idx],
                "y": [i // per_row + 0.24 for i in idx], "mode": "markers", "customdata": idx,
                "marker": {"color": SEVERITY_COLOURS[severity], "size": 10, "line": {"color": "white", "width": 1.5}},
                "hovertext": [f"layer {i}: rule {severity}, see Rules" for i in idx], "hoverinfo": "text"})
    shapes = []
    if selected is not None:
        lo, hi = max(0, min(selected)), min(n - 1, max(selected))
        for r in range(lo // per_row, hi // per_row + 1):      # one outline per row the selection spans
            c0 = max(lo, r * per_row) - r * per_row
            c1 = min(hi, (r + 1) * per_row - 1) - r * per_row
            shapes.append({"type": "rect", "x0": c0 - 0.5, "x1": c1 + 0.5, "y0": r + 0.02, "y1": r + 0.98,
                           "line": {"color": "#111111", "width": 3}, "fillcolor": "rgba(0,0,0,0)", "layer": "above"})
    layout_ = {
        "barmode": "overlay", "height": 70 + 34 * rows, "margin": {"l": 64, "r": 8, "t": 6, "b": 8}, "font": FONT,
        "plot_bgcolor": "white", "paper_bgcolor": "white", "bargap": 0, "shapes": shapes,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0, "font": {"size": 12}},
        "uniformtext": {"minsize": 9, "mode": "show"},
        "xaxis": {"range": [-0.55, per_row - 0.45], "showgrid": False, "zeroline": False, "fixedrange": True,
                  "showticklabels": False},
        "yaxis": {"range": [rows + 0.02, -0.02], "showgrid": False, "zeroline": False, "fixedrange": True,
                  "tickmode": "array", "tickvals": [r + 0.5 for r in range(rows)],
                  "ticktext": [f"{r * per_row}–{min(n, (r + 1) * per_row) - 1}" for r in range(rows)]},
    }
    return figure(data, layout_)


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
# Profile and Compare: they take `analytic.profile(...).to_dict()` and `analytic.sweep(...)` output


def params_figure(profile: dict) -> go.Figure:
    """Parameters by part (billions): embedding, LM head and each block kind."""
    p = profile["params"]
    parts = [(label, p["by_kind"].get(key, p.get(key, 0)) or 0) for key, label in PARAM_PARTS]
    parts = [(label, v) for label, v in parts if v]
    colours = {"Mamba": KIND_COLOURS["M"], "attention": KIND_COLOURS["*"], "MLP": KIND_COLOURS["-"],
               "MoE": KIND_COLOURS["E"]}
    data = [{"type": "bar", "orientation": "h", "y": [label for label, _ in parts], "x": [v / 1e9 for _, v in parts],
             "marker": {"color": [colours.get(label, "#8C8C8C") for label, _ in parts]},
             "text": [f"{v / 1e9:.2f} B" for _, v in parts], "textposition": "outside", "cliponaxis": False,
             "hovertemplate": "%{y}: %{x:.3f} billion parameters<extra></extra>"}]
    title = f"Parameters: {p['total'] / 1e9:.2f} B total" + (
        f", {p['active'] / 1e9:.2f} B active" if p["active"] != p["total"] else "")
    lay = _merge(base_layout(height=300, title=title, legend=False),
                 {"margin": {"r": 60}, "xaxis": {"title": {"text": "parameters (billions)"}},
                  "yaxis": {"autorange": "reversed"}})
    return figure(data, lay)


def memory_breakdown_figure(profile: dict) -> go.Figure:
    """Per-GPU memory at the chosen batch and context, one bar per part and the total, against usable memory."""
    m, s = profile["memory"], profile["setup"]
    rows = [(label, m[key] / GIB, colour) for key, label, colour in MEMORY_STACK]
    rows.append(("total", m["total_bytes"] / GIB, "#333333" if m["fits"] else "#D62728"))
    cap = m["capacity_bytes"] / GIB
    data = [{"type": "bar", "orientation": "h", "y": [r[0] for r in rows], "x": [r[1] for r in rows],
             "marker": {"color": [r[2] for r in rows]}, "text": [f"{r[1]:.2f} GiB" for r in rows],
             "textposition": "outside", "cliponaxis": False, "hovertemplate": "%{y}: %{x:.3f} GiB<extra></extra>"}]
    verdict = "fits" if m["fits"] else "does NOT fit"
    lay = _merge(base_layout(height=300, legend=False, top=60, title=f"Memory per GPU: {verdict} "
                             f"(batch {s['batch']:,}, {m['context_tokens']:,} tokens)"),
                 {"margin": {"r": 70}, "yaxis": {"autorange": "reversed"},
                  "xaxis": {"title": {"text": "GiB per GPU"}, "range": [0, max(cap, m["total_bytes"] / GIB) * 1.12]}})
    lay["shapes"] = [{"type": "line", "x0": cap, "x1": cap, "y0": 0, "y1": 1, "yref": "paper", "xref": "x",
                      "line": {"color": "black", "dash": "dash", "width": 2}}]
    lay["annotations"] = [{"x": cap, "y": 1.0, "xref": "x", "yref": "paper", "text": f"usable {cap:.1f} GiB",
                           "showarrow": False, "xanchor": "right", "yanchor": "bottom", "font": {"size": 12}}]
    return figure(data, lay)


def memory_vs_context_figure(sweeps: list[dict], names: list[str] | None = None) -> go.Figure:
    """One panel per layout: weights / KV cache / SSM state / activations stacked over the context."""
    names = names or [s["layout"] for s in sweeps]
    cols = len(sweeps) if len(sweeps) <= 3 else 2
    rows = -(-len(sweeps) // cols)
    height = 130 + 300 * rows
    # an 80-pixel gap between rows (panel title and tick labels), whatever the number of rows
    entries, cells = grid(rows, cols, titles=names, vgap=80 / (height - 120) if rows > 1 else 0.1)
    data: list[dict] = []
    for i, s in enumerate(sweeps):
        xref, yref = cells[i]
        m = s["memory_vs_context"]
        for key, label, colour in MEMORY_STACK:
            data.append({"type": "scatter", "x": m["context"], "y": [v / GIB for v in m[key]], "name": label,
                         "legendgroup": label, "showlegend": i == 0, "stackgroup": f"s{i}", "mode": "lines",
                         "line": {"color": colour}, "xaxis": xref, "yaxis": yref,
                         "hovertemplate": f"{names[i]}<br>{label}: %{{y:.1f}} GiB<extra></extra>"})
        data.append({"type": "scatter", "x": m["context"], "y": [m["capacity_bytes"] / GIB] * len(m["context"]),
                     "name": "usable GPU memory", "legendgroup": "cap", "showlegend": i == 0, "mode": "lines",
                     "line": {"color": "black", "dash": "dash", "width": 1.5}, "xaxis": xref, "yaxis": yref,
                     "hovertemplate": "usable: %{y:.1f} GiB<extra></extra>"})
        r, c = divmod(i, cols)
        suffix = "" if i == 0 else str(i + 1)
        entries[f"xaxis{suffix}"].update(_tokens_axis("context (tokens)" if r == rows - 1 else None))
        entries[f"yaxis{suffix}"].update({"title": {"text": "GiB per GPU" if c == 0 else None},
                                          "rangemode": "tozero"})
    lay = base_layout(height=height, top=110,
                      title="Memory vs context, stacked by weights / KV cache / SSM state")
    lay.update(entries)
    return figure(data, lay)


def latency_vs_context_figure(sweeps: list[dict], names: list[str] | None = None) -> go.Figure:
    """TTFT (s) of a prompt of each length and TPOT (ms) of a decode step at that context."""
    return figure(*_latency_parts(sweeps, names))


def latency_with_measured_figure(sweep: dict, measured: dict, *, batch: int, name: str | None = None) -> go.Figure:
    """The latency chart of one layout with a saved timing run's points (designer.present.measured) drawn over
    its predicted curves as markers: TTFT at each measured prompt, TPOT at each measured context. Only the
    run's points at `batch` (the batch the curves are drawn for) are drawn."""
    ttft, tpot = points_at(measured, "ttft", batch), points_at(measured, "tpot", batch)
    data, lay = _latency_parts([sweep], [name] if name else None, extra_ttft=[p["measured_s"] for p in ttft])
    env = measured.get("environment")
    gpu = env.get("gpu") if isinstance(env, dict) else None
    label = f"measured, {measured['kernels']} kernels" + (f" on {gpu}" if gpu else "")
    marker = {"color": "black", "symbol": "x", "size": 9}
    panels = ((ttft, "prompt", 1.0, "s", {}), (tpot, "context", 1e3, "ms", {"xaxis": "x2", "yaxis": "y2"}))
    for pts, key, scale, unit, axes in panels:
        if not pts:
            continue
        data.append({"type": "scatter", "x": [p[key] for p in pts], "y": [p["measured_s"] * scale for p in pts],
                     "name": label, "legendgroup": "measured", "showlegend": key == "prompt" or not ttft,
                     "mode": "markers", "marker": marker, **axes,
                     "customdata": [[p["predicted_s"] * scale] for p in pts],
                     "hovertemplate": f"batch {batch}, %{{x:,}} tokens<br>measured %{{y:.3g}} {unit}<br>"
                                      f"predicted in the run %{{customdata[0]:.3g}} {unit}<extra></extra>"})
    return figure(data, lay)


def _latency_parts(sweeps: list[dict], names: list[str] | None,
                   extra_ttft: list[float] | None = None) -> tuple[list[dict], dict]:
    """Traces and layout of the latency chart; `extra_ttft`: more TTFT values (s) the axis ticks must cover."""
    names = names or [s["layout"] for s in sweeps]
    entries, _ = grid(1, 2, hgap=0.12, titles=["time to first token vs prompt length",
                                                "time per output token vs context"])
    data: list[dict] = []
    for i, s in enumerate(sweeps):
        lat, colour = s["latency_vs_context"], layout_colour(i)
        data.append({"type": "scatter", "x": lat["context"], "y": lat["ttft_s"], "name": names[i],
                     "legendgroup": names[i], "mode": "lines", "line": {"color": colour, "width": 2.5},
                     "hovertemplate": f"{names[i]}: %{{y:.3g}} s<extra></extra>"})
        data.append({"type": "scatter", "x": lat["context"], "y": [t * 1e3 for t in lat["tpot_s"]],
                     "name": names[i], "legendgroup": names[i], "showlegend": False, "mode": "lines",
                     "line": {"color": colour, "width": 2.5}, "xaxis": "x2", "yaxis": "y2",
                     "hovertemplate": f"{names[i]}: %{{y:.3g}} ms<extra></extra>"})
    ttft = [v for s in sweeps for v in s["latency_vs_context"]["ttft_s"] if v and v > 0] \
        + [v for v in extra_ttft or [] if v > 0]
    vals, labels = log_ticks(min(ttft), max(ttft)) if ttft else ([], [])
    entries["xaxis"].update(_tokens_axis("prompt (tokens)"))
    entries["xaxis2"].update(_tokens_axis("context (tokens)"))
    entries["yaxis"].update({"type": "log", "title": {"text": "TTFT (s)"}, "tickvals": vals, "ticktext": labels})
    entries["yaxis2"].update({"title": {"text": "TPOT (ms)"}, "rangemode": "tozero"})
    lay = base_layout(height=430, title="Latency vs context", top=104)
    lay.update(entries)
    return data, lay


def throughput_vs_batch_figure(sweeps: list[dict], names: list[str] | None = None, *, prompt: int,
                               gen: int) -> go.Figure:
    names = names or [s["layout"] for s in sweeps]
    data = []
    for i, s in enumerate(sweeps):
        t = s["throughput_vs_batch"]
        pts = [(b, v) for b, v in zip(t["batch"], t["output_tokens_per_s_per_gpu"]) if v is not None]
        data.append({"type": "scatter", "x": [b for b, _ in pts], "y": [v for _, v in pts], "mode": "lines+markers",
                     "name": f"{names[i]} (max batch {t['max_batch']:,})", "line": {"color": layout_colour(i)},
                     "hovertemplate": f"{names[i]}<br>batch %{{x}}: %{{y:,.0f}} tokens/s per GPU<extra></extra>"})
    vals, labels = log_ticks(1, max([1] + [s["throughput_vs_batch"]["max_batch"] for s in sweeps]))
    lay = _merge(base_layout(height=400, title=f"Throughput vs batch ({prompt:,} in / {gen:,} out tokens)"),
                 {"xaxis": {"type": "log", "title": {"text": "batch (concurrent requests)"}, "tickvals": vals,
                            "ticktext": labels},
                  "yaxis": {"title": {"text": "output tokens/s per GPU"}, "rangemode": "tozero"}})
    return figure(data, lay)


def max_batch_vs_context_figure(sweeps: list[dict], names: list[str] | None = None, *, gen: int) -> go.Figure:
    names = names or [s["layout"] for s in sweeps]
    data = []
    for i, s in enumerate(sweeps):
        m = s["max_batch_vs_context"]
        never = not any(b > 0 for b in m["max_batch"])
        data.append({"type": "scatter", "x": m["context"], "y": [b if b > 0 else None for b in m["max_batch"]],
                     "name": f"{names[i]} (does not fit)" if never else names[i], "mode": "lines",
                     "line": {"color": layout_colour(i), "width": 2.5},
                     "hovertemplate": f"{names[i]}<br>%{{x:,}} tokens: batch %{{y:,}}<extra></extra>"})
    batches = [b for s in sweeps for b in s["max_batch_vs_context"]["max_batch"] if b > 0]
    vals, labels = log_ticks(min(batches), max(batches)) if batches else ([], [])
    lay = _merge(base_layout(height=400, title=f"What fits: Max batch vs prompt length (+{gen:,} generated)"),
                 {"xaxis": _tokens_axis("prompt (tokens)"),
                  "yaxis": {"type": "log", "title": {"text": "max batch (sequences)"}, "tickvals": vals,
                            "ticktext": labels}})
    absent = absent_from_fits(sweeps, names)
    if absent:                           # a layout with no line is named, never silently dropped
        shortest = min(sweeps[0]["max_batch_vs_context"]["context"])
        text = (("Nothing fits" if len(absent) == len(sweeps) else "No line: " + ", ".join(absent))
                + f": not one sequence fits at any prompt length ({shortest:,} tokens or more) on this set-up")
        lay["annotations"] = [{"text": text, "x": 0.5, "y": 0.5 if len(absent) == len(sweeps) else 1.0,
                               "xref": "paper", "yref": "paper", "xanchor": "center",
                               "yanchor": "middle" if len(absent) == len(sweeps) else "bottom", "showarrow": False,
                               "font": {"size": 13, "color": "#D62728"}}]
    return figure(data, lay)


def absent_from_fits(sweeps: list[dict], names: list[str]) -> list[str]:
    """Names of the layouts that draw no line in the "What fits" chart: no batch fits at any prompt length."""
    return [n for n, s in zip(names, sweeps) if not any(b > 0 for b in s["max_batch_vs_context"]["max_batch"])]


def throughput_at_max_batch_figure(profiles: list[dict], names: list[str]) -> go.Figure:
    """Output tokens/s per GPU at the largest batch that fits, one bar per layout."""
    vals = [p["throughput"]["max_batch_output_tokens_per_s_per_gpu"] for p in profiles]
    batches = [p["throughput"]["max_batch"] for p in profiles]
    data = [{"type": "bar", "orientation": "h", "y": names, "x": vals,
             "marker": {"color": [layout_colour(i) for i in range(len(names))]},
             "text": [f"{v:,.0f} at batch {b:,}" if b else "does not fit" for v, b in zip(vals, batches)],
             "textposition": "outside", "cliponaxis": False,
             "hovertemplate": "%{y}: %{x:,.1f} output tokens/s per GPU<extra></extra>"}]
    s = profiles[0]["setup"]
    lay = _merge(base_layout(height=110 + 48 * len(names), legend=False, top=60,
                             title=f"Throughput vs batch: at the largest batch that fits ({s['prompt']:,} in / "
                                   f"{s['gen']:,} out tokens)"),
                 {"margin": {"r": 20}, "yaxis": {"autorange": "reversed"},
                  "xaxis": {"title": {"text": "output tokens/s per GPU"}, "rangemode": "tozero",
                            "range": [0, max(vals + [1]) * 1.35]}})
    return figure(data, lay)


def compare_figures(profiles: list[dict], sweeps: list[dict], names: list[str] | None = None) -> list[go.Figure]:
    """The comparison charts, in page order: memory vs context, latency vs context, throughput at the largest
    batch that fits, max batch vs prompt length. The app's Compare page and `designer compare --html` draw
    exactly these."""
    names = names or [p["layout"] for p in profiles]
    gen = profiles[0]["setup"]["gen"]
    # latency of a set-up where not one sequence fits is hypothetical: its legend says so
    latency_names = [n if p["throughput"]["max_batch"] > 0 else f"{n} (does not fit: latency if it did)"
                     for n, p in zip(names, profiles)]
    return [memory_vs_context_figure(sweeps, names), latency_vs_context_figure(sweeps, latency_names),
            throughput_at_max_batch_figure(profiles, names), max_batch_vs_context_figure(sweeps, names, gen=gen)]


# --------------------------------------------------------------------------------------------------
# Proxy training: loss curves and accuracy per task


def proxy_figure(ranked: list[dict], tasks: list[str], settings: str) -> go.Figure:
    """Training loss (log) per step and accuracy per task, one colour per candidate."""
    entries, _ = grid(1, 2, hgap=0.1, titles=["training loss (answer positions)", "accuracy on answer positions"])
    data: list[dict] = []
    for i, r in enumerate(ranked):
        colour = layout_colour(i)
        sweep = r.get("sweep")
        for curve in (sweep["curves"] if sweep else []):   # every seed faintly, the mean below in full
            data.append({"type": "scatter", "x": list(range(1, len(curve) + 1)), "y": curve, "name": r["name"],
                         "legendgroup": r["name"], "showlegend": False, "mode": "lines", "opacity": 0.3,
                         "line": {"color": colour, "width": 1}, "hoverinfo": "skip"})
        name = r["name"] + (f" (lr {sweep['lr']:g}, {sweep['mean']:.3f} ± {sweep['std']:.3f})" if sweep else "")
        data.append({"type": "scatter", "x": list(range(1, len(r["loss"]) + 1)), "y": r["loss"], "name": name,
                     "legendgroup": r["name"], "mode": "lines", "line": {"color": colour}})
        bar = {"type": "bar", "x": tasks, "y": [r["accuracy"][t] for t in tasks], "name": r["name"],
               "legendgroup": r["name"], "showlegend": False, "marker": {"color": colour},
               "xaxis": "x2", "yaxis": "y2"}
        if sweep:
            bar["error_y"] = {"type": "data", "array": [sweep["accuracy_std"][t] for t in tasks]}
        data.append(bar)
    entries["xaxis"].update({"title": {"text": "step"}})
    entries["yaxis"].update({"type": "log", "title": {"text": "cross-entropy"}})
    entries["yaxis2"].update({"range": [0, 1], "tickformat": ".0%", "title": {"text": "accuracy"}})
    lay = base_layout(height=500, title=f"Proxy training: {settings}", top=104)
    lay.update(entries)
    lay["barmode"] = "group"
    return figure(data, lay)


def figure_divs(figures: list[Any]) -> list[str]:
    """HTML divs for a self-contained report: plotly.js is embedded once, in the first (reports open offline)."""
    import plotly.io as pio
    return [pio.to_html(f, full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures)]
